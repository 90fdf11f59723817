"""The Numba kernels: each hot path in one pass over memory, compiled on first call, cached on disk.

Importing this module imports Numba but compiles nothing. Every kernel takes C-contiguous
arrays of one float dtype (float32 or float64) and writes into outputs its caller allocates
(`kernels/__init__.py` does the checks, `kernels/dispatch.py` the choice of kernel and the
copies). The kernels that compute (exp, log, tanh) come twice: a serial loop, and a `prange`
loop (`_parallel`) for large arrays; those that only move memory (the backward passes, relu,
dropout, the optimizer updates) are serial: a second core adds little memory bandwidth.

Transcendental functions are computed in float64 by `_exp`, `_log1p_unit` and `_tanh` below,
written with arithmetic only, so that LLVM vectorizes the loops that call them; Numba's own
`np.exp` calls libm one element at a time, several times slower than NumPy's SIMD loops.
"""
from __future__ import annotations

import math

import numpy as np
from llvmlite import ir
from numba import njit, prange, types, uint32
from numba.extending import intrinsic, overload

# error_model="numpy": x / 0 gives inf or nan like NumPy, without a check that stops vectorization
_JIT = dict(cache=True, nogil=True, error_model="numpy")
# the transcendental kernels may fuse a * b + c into one FMA (more accurate, and about 1.7x
# faster here); the others stay operation for operation like their NumPy twins
_FAST = dict(_JIT, fastmath={"contract"})
_INLINE = dict(inline="always", error_model="numpy")

# activation codes of `linear_backward` (kernels._ACTIVATION_CODES)
IDENTITY, SIGMOID, TANH, RELU = 0, 1, 2, 3

# ---------------------------------------------------------------- scalar building blocks
_LOG2E = 1.4426950408889634
_LN2 = 0.6931471805599453
_LN2_HI = 6.93147180369123816490e-01   # ln 2 in two parts: k * _LN2_HI is exact for |k| < 2**11
_LN2_LO = 1.90821492927058770002e-10
# Taylor coefficients 1/n! of exp on |r| <= ln(2)/2: the truncation error is below 1e-17
_E2, _E3, _E4, _E5, _E6, _E7, _E8, _E9, _E10, _E11, _E12, _E13 = (
    1.0 / math.factorial(n) for n in range(2, 14))
# log1p(v) = 2 s (1 + z P(z)), s = v / (2 + v), z = s*s, P(z) = sum_k z^k / (2k + 3); |s| <= 0.2
_L = tuple(1.0 / (2 * k + 3) for k in range(12))
_L0, _L1, _L2, _L3, _L4, _L5, _L6, _L7, _L8, _L9, _L10, _L11 = _L
# tanh(x) = x + x^3 (T3 + T5 x^2 + ...) for |x| < 0.1: the terms left out are below 1e-17 |x|
_T3, _T5, _T7, _T9 = -1.0 / 3.0, 2.0 / 15.0, -17.0 / 315.0, 62.0 / 2835.0
_T11, _T13, _T15 = -1382.0 / 155925.0, 21844.0 / 6081075.0, -929569.0 / 638512875.0


@intrinsic
def _float64_from_bits(typingctx, bits):
    """The float64 whose bit pattern is the int64 `bits` (to build 2**k without libm)."""
    if not isinstance(bits, types.Integer):
        return None

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.DoubleType())
    return types.float64(types.int64), codegen


@njit(**_INLINE)
def _exp(x):
    """e**x to about 1 ulp: x = k ln2 + r, e**r by its Taylor polynomial, times 2**k."""
    finite = x if x == x else 0.0
    xc = min(max(finite, -746.0), 710.0)           # beyond these e**x is 0 or inf anyway
    kf = np.floor(xc * _LOG2E + 0.5)
    r = xc - kf * _LN2_HI - kf * _LN2_LO
    p = _E13
    p = p * r + _E12
    p = p * r + _E11
    p = p * r + _E10
    p = p * r + _E9
    p = p * r + _E8
    p = p * r + _E7
    p = p * r + _E6
    p = p * r + _E5
    p = p * r + _E4
    p = p * r + _E3
    p = p * r + _E2
    p = p * r + 1.0
    p = p * r + 1.0
    k = np.int64(kf)
    half = k >> 1                                   # 2**k in two factors: no overflow of the
    rest = k - half                                 # exponent field, one rounding for subnormals
    y = p * _float64_from_bits((half + 1023) << 52) * _float64_from_bits((rest + 1023) << 52)
    return y if x == x else x


@njit(**_INLINE)
def _log1p_unit(u):
    """log(1 + u) for u in [0, 1] (what softplus needs: u = e**-|x|), to a few ulp."""
    big = u > 0.5
    v = (u - 1.0) * 0.5 if big else u               # 1 + u = 2 (1 + v) when u > 1/2
    s = v / (2.0 + v)
    z = s * s
    p = _L11
    p = p * z + _L10
    p = p * z + _L9
    p = p * z + _L8
    p = p * z + _L7
    p = p * z + _L6
    p = p * z + _L5
    p = p * z + _L4
    p = p * z + _L3
    p = p * z + _L2
    p = p * z + _L1
    p = p * z + _L0
    log1p_v = 2.0 * s + 2.0 * s * z * p
    return log1p_v + _LN2 if big else log1p_v


@njit(**_INLINE)
def _sigmoid(x):
    e = _exp(-abs(x))
    s = 1.0 / (1.0 + e)
    return s if x >= 0 else e * s


# float32 sigmoid: the same construction in float32 arithmetic (twice the SIMD lanes of float64).
# e**r by its Taylor polynomial to r**7 on |r| <= ln(2)/2 (truncation below 6e-9, under float32's
# 6e-8 half-ulp), ln 2 split so that k * _LN2_HI32 is exact for the |k| <= 150 used here.
_LOG2E32 = np.float32(_LOG2E)
_LN2_HI32 = np.float32(0.693359375)
_LN2_LO32 = np.float32(_LN2 - 0.693359375)
_F2, _F3, _F4, _F5, _F6, _F7 = (np.float32(1.0 / math.factorial(n)) for n in range(2, 8))
_ONE32, _HALF32, _FLOOR32 = np.float32(1.0), np.float32(0.5), np.float32(-104.0)


@intrinsic
def _float32_from_bits(typingctx, bits):
    """The float32 whose bit pattern is the int32 `bits` (to build 2**k without libm)."""
    if not isinstance(bits, types.Integer):
        return None

    def codegen(context, builder, signature, args):
        return builder.bitcast(builder.trunc(args[0], ir.IntType(32)), ir.FloatType())
    return types.float32(types.int64), codegen


@njit(**_INLINE)
def _exp_nonpositive32(x):
    """e**x for a float32 x <= 0 (0 below -104, where float32 underflows anyway)."""
    xc = max(x, _FLOOR32)
    kf = np.floor(xc * _LOG2E32 + _HALF32)
    r = xc - kf * _LN2_HI32 - kf * _LN2_LO32
    p = _F7
    p = p * r + _F6
    p = p * r + _F5
    p = p * r + _F4
    p = p * r + _F3
    p = p * r + _F2
    p = p * r + _ONE32
    p = p * r + _ONE32
    k = np.int64(kf)
    half = k >> 1                                   # 2**k in two normal factors, k >= -150
    rest = k - half
    return p * _float32_from_bits((half + 127) << 23) * _float32_from_bits((rest + 127) << 23)


@njit(**_INLINE)
def _sigmoid32(x):
    if x != x:
        return x
    e = _exp_nonpositive32(-abs(x))
    return (_ONE32 if x >= 0 else e) / (_ONE32 + e)


def _sigmoid_in_kind(x):
    """sigmoid(x) computed in float32 for a float32 x, in float64 otherwise (jitted code only)."""
    raise NotImplementedError


@overload(_sigmoid_in_kind, inline="always")
def _sigmoid_in_kind_overload(x):
    if x == types.float32:
        return lambda x: _sigmoid32(x)
    return lambda x: _sigmoid(np.float64(x))


@njit(**_INLINE)
def _tanh(x):
    """tanh(x): a Taylor polynomial near 0, (1 - e) / (1 + e) with e = e**(-2|x|) elsewhere."""
    ax = abs(x)
    z = x * x
    p = _T15
    p = p * z + _T13
    p = p * z + _T11
    p = p * z + _T9
    p = p * z + _T7
    p = p * z + _T5
    p = p * z + _T3
    near_zero = x + x * z * p
    e = _exp(-2.0 * ax)
    far = math.copysign((1.0 - e) / (1.0 + e), x)
    return near_zero if ax < 0.1 else far


@njit(**_INLINE)
def _softplus(x):
    return max(x, 0.0) + _log1p_unit(_exp(-abs(x))) if x == x else x


@njit(**_INLINE)
def _log_sigmoid(x):
    return min(x, 0.0) - _log1p_unit(_exp(-abs(x))) if x == x else x


# ---------------------------------------------------------------- elementwise: x -> out
@njit(**_FAST)
def sigmoid(x, out):
    for i in range(x.size):
        out[i] = _sigmoid_in_kind(x[i])


@njit(parallel=True, **_FAST)
def sigmoid_parallel(x, out):
    for i in prange(x.size):
        out[i] = _sigmoid_in_kind(x[i])


@njit(**_FAST)
def tanh(x, out):
    for i in range(x.size):
        out[i] = _tanh(np.float64(x[i]))


@njit(parallel=True, **_FAST)
def tanh_parallel(x, out):
    for i in prange(x.size):
        out[i] = _tanh(np.float64(x[i]))


@njit(**_JIT)
def relu(x, out):
    zero = x.dtype.type(0)
    for i in range(x.size):
        v = x[i]
        out[i] = zero if v <= zero else v


@njit(**_FAST)
def softplus(x, out):
    for i in range(x.size):
        out[i] = _softplus(np.float64(x[i]))


@njit(parallel=True, **_FAST)
def softplus_parallel(x, out):
    for i in prange(x.size):
        out[i] = _softplus(np.float64(x[i]))


@njit(**_FAST)
def log_sigmoid(x, out):
    for i in range(x.size):
        out[i] = _log_sigmoid(np.float64(x[i]))


@njit(parallel=True, **_FAST)
def log_sigmoid_parallel(x, out):
    for i in prange(x.size):
        out[i] = _log_sigmoid(np.float64(x[i]))


# ---------------------------------------------------------------- elementwise: (g, a) -> out
# in the arrays' own dtype, operation for operation like the NumPy twins
@njit(**_JIT)
def sigmoid_backward(g, a, out):
    one = a.dtype.type(1)
    for i in range(g.size):
        out[i] = g[i] * a[i] * (one - a[i])


@njit(**_JIT)
def tanh_backward(g, a, out):
    one = a.dtype.type(1)
    for i in range(g.size):
        out[i] = g[i] * (one - a[i] * a[i])


@njit(**_JIT)
def relu_backward(g, x, out):
    zero, one = g.dtype.type(0), g.dtype.type(1)
    for i in range(g.size):
        out[i] = g[i] * (one if x[i] > zero else zero)


@njit(**_JIT)
def dropout(x, u, p, scale, out):
    """out = x * scale where u >= p (kept, probability 1 - p), else 0."""
    zero = x.dtype.type(0)
    for i in range(x.size):
        out[i] = x[i] * scale if u[i] >= p else zero


# ---------------------------------------------------------------- uniforms from a counter
# Dropout's uniform numbers: element j of a block with the 64-bit key (hi, lo) is a hash of
# (j, key), two rounds of MurmurHash3's 32-bit finaliser, rather than the next number of a
# bit generator's sequence: no state but the key, and it vectorises (about 0.25 ns a number
# against 2.5-4 for Generator.random's loop).
@njit(**_INLINE)
def _fmix32(h):
    h = h ^ (h >> uint32(16))
    h = uint32(h * uint32(0x85EBCA6B))
    h = h ^ (h >> uint32(13))
    h = uint32(h * uint32(0xC2B2AE35))
    return h ^ (h >> uint32(16))


# one small function per dtype, one loop each: a generic one (both dtypes' loops, block views)
# took about 2 s to compile cold
@njit(**_JIT)
def uniform_fill_float32(block, lo, hi):
    # block: a C-contiguous 1-D float32 array; lo, hi: the key's two halves (uint32); 24 bits
    for j in range(block.size):
        h = _fmix32(_fmix32(uint32(uint32(j) * uint32(0x9E3779B9) + lo)) ^ hi)
        block[j] = np.float32(np.int32(h >> uint32(8))) * np.float32(1.0 / 16777216.0)


@njit(**_JIT)
def uniform_fill_float64(block, lo, hi):
    # the same in float64, 31 bits (a signed int32 converts in SIMD)
    for j in range(block.size):
        h = _fmix32(_fmix32(uint32(uint32(j) * uint32(0x9E3779B9) + lo)) ^ hi)
        block[j] = np.float64(np.int32(h >> uint32(1))) * (1.0 / 2147483648.0)


# ---------------------------------------------------------------- blocks of rows
# A (batch, classes) array is processed in blocks of about _BLOCK elements that stay in cache:
# row by row where rows differ (the max, the sums), and over the whole flattened block where
# they do not (e**x), since a row of 10 alone would leave most of a SIMD register empty.
# Block helpers index views from 0: with a variable start, Numba's check for negative
# indices would stay in the loop and stop it from vectorizing.
_BLOCK = 4096


@njit(**_INLINE)
def _blocks(rows, classes):
    """(rows per block, number of blocks)."""
    per_block = max(1, _BLOCK // max(classes, 1))
    return per_block, (rows + per_block - 1) // per_block


@njit(**_INLINE)
def _row_max(row):
    """max(row), NaN if the row holds one (like np.max), -inf for an empty row."""
    m = -np.inf
    nan = False
    for j in range(row.size):                       # branch-free: random logits would
        v = np.float64(row[j])                      # mispredict an if
        m = v if v > m else m
        nan |= v != v
    return np.nan if nan else m


@njit(**_INLINE)
def _exp_block(x, shift, e):
    """e (flat, float64) = e**(x[i, j] - shift[i]) for the block x (rows, c)."""
    c = x.shape[1]
    for i in range(x.shape[0]):
        row, e_row, m = x[i], e[i * c:(i + 1) * c], shift[i]
        for j in range(c):
            e_row[j] = np.float64(row[j]) - m
    for k in range(x.size):
        e[k] = _exp(e[k])


@njit(**_INLINE)
def _row_maxima(x, row_max):
    for i in range(x.shape[0]):
        row_max[i] = _row_max(x[i])


@njit(**_INLINE)
def _softmax_block(x, out, row_max, e):
    _row_maxima(x, row_max)
    _exp_block(x, row_max, e)
    c = x.shape[1]
    for i in range(x.shape[0]):
        e_row, out_row = e[i * c:(i + 1) * c], out[i]
        inverse = 1.0 / np.sum(e_row)
        for j in range(c):
            out_row[j] = e_row[j] * inverse


@njit(**_INLINE)
def _log_softmax_block(x, out, row_max, e):
    _row_maxima(x, row_max)
    _exp_block(x, row_max, e)
    c = x.shape[1]
    for i in range(x.shape[0]):
        row, out_row, m = x[i], out[i], row_max[i]
        log_s = math.log(np.sum(e[i * c:(i + 1) * c]))
        for j in range(c):
            out_row[j] = (np.float64(row[j]) - m) - log_s


@njit(**_INLINE)
def _logsumexp_block(x, out, row_max, e):
    """log(sum(e**(x - m))) + m, m the row max, or 0 where that is not finite (like the twin)."""
    _row_maxima(x, row_max)
    for i in range(x.shape[0]):
        if not np.isfinite(row_max[i]):
            row_max[i] = 0.0
    _exp_block(x, row_max, e)
    c = x.shape[1]
    for i in range(x.shape[0]):
        out[i] = math.log(np.sum(e[i * c:(i + 1) * c])) + row_max[i]


@njit(**_INLINE)
def _softmax_cross_entropy_block(x, labels, losses, delta, row_max, e):
    """losses = logsumexp(x) - x[label] per row; delta = softmax(x) - onehot(label)."""
    _row_maxima(x, row_max)
    _exp_block(x, row_max, e)
    c = x.shape[1]
    for i in range(x.shape[0]):
        e_row, delta_row, label = e[i * c:(i + 1) * c], delta[i], labels[i]
        s = np.sum(e_row)
        inverse = 1.0 / s
        for j in range(c):
            delta_row[j] = e_row[j] * inverse
        delta_row[label] -= 1
        losses[i] = math.log(s) - (np.float64(x[i, label]) - row_max[i])


@njit(**_INLINE)
def _bce_units(x, y, delta, per_unit):
    """delta = sigmoid(x) - y and per_unit (float64) = softplus(x) - x y for flat x, y;
    returns the number of targets outside [0, 1]."""
    outside = 0
    for k in range(x.size):
        xk, yk = np.float64(x[k]), np.float64(y[k])
        outside += (yk < 0.0) | (yk > 1.0)
        e = _exp(-abs(xk))
        s = 1.0 / (1.0 + e)
        delta[k] = (s if xk >= 0 else e * s) - yk
        per_unit[k] = max(xk, 0.0) - xk * yk + _log1p_unit(e)
    return outside


@njit(**_INLINE)
def _bce_with_logits_block(x, y, c, losses, delta, per_unit):
    """For flat blocks x, y, delta of rows of c units: delta = sigmoid(x) - y, and losses =
    row sums of softplus(x) - x y (= -y log s - (1 - y) log(1 - s), s = sigmoid(x)).
    Returns (the sum of the losses, the number of targets outside [0, 1])."""
    outside = _bce_units(x, y, delta, per_unit)
    total = 0.0
    for i in range(losses.size):
        row = np.sum(per_unit[i * c:(i + 1) * c])
        losses[i] = row
        total += row
    return total, outside


@njit(**_INLINE)
def _add_bias(z, b):
    """z (rows, out) += b, row by row."""
    for i in range(z.shape[0]):
        row = z[i]
        for j in range(row.size):
            row[j] += b[j]


@njit(**_INLINE)
def _sigmoid_all(x):
    for k in range(x.size):
        x[k] = _sigmoid_in_kind(x[k])


@njit(**_INLINE)
def _tanh_all(x):
    for k in range(x.size):
        x[k] = _tanh(np.float64(x[k]))


@njit(**_INLINE)
def _relu_all(x):
    zero = x.dtype.type(0)
    for k in range(x.size):
        x[k] = zero if x[k] <= zero else x[k]


# ---------------------------------------------------------------- row-wise kernels (batch, classes)
@njit(**_FAST)
def softmax(x, out):
    per_block, blocks = _blocks(x.shape[0], x.shape[1])
    row_max, e = np.empty(per_block), np.empty(per_block * x.shape[1])
    for b in range(blocks):
        rows = slice(b * per_block, (b + 1) * per_block)
        _softmax_block(x[rows], out[rows], row_max, e)


@njit(parallel=True, **_FAST)
def softmax_parallel(x, out):
    per_block, blocks = _blocks(x.shape[0], x.shape[1])
    for b in prange(blocks):
        row_max, e = np.empty(per_block), np.empty(per_block * x.shape[1])
        rows = slice(b * per_block, (b + 1) * per_block)
        _softmax_block(x[rows], out[rows], row_max, e)


@njit(**_FAST)
def log_softmax(x, out):
    per_block, blocks = _blocks(x.shape[0], x.shape[1])
    row_max, e = np.empty(per_block), np.empty(per_block * x.shape[1])
    for b in range(blocks):
        rows = slice(b * per_block, (b + 1) * per_block)
        _log_softmax_block(x[rows], out[rows], row_max, e)


@njit(parallel=True, **_FAST)
def log_softmax_parallel(x, out):
    per_block, blocks = _blocks(x.shape[0], x.shape[1])
    for b in prange(blocks):
        row_max, e = np.empty(per_block), np.empty(per_block * x.shape[1])
        rows = slice(b * per_block, (b + 1) * per_block)
        _log_softmax_block(x[rows], out[rows], row_max, e)


@njit(**_FAST)
def logsumexp(x, out):
    per_block, blocks = _blocks(x.shape[0], x.shape[1])
    row_max, e = np.empty(per_block), np.empty(per_block * x.shape[1])
    for b in range(blocks):
        rows = slice(b * per_block, (b + 1) * per_block)
        _logsumexp_block(x[rows], out[rows], row_max, e)


@njit(parallel=True, **_FAST)
def logsumexp_parallel(x, out):
    per_block, blocks = _blocks(x.shape[0], x.shape[1])
    for b in prange(blocks):
        row_max, e = np.empty(per_block), np.empty(per_block * x.shape[1])
        rows = slice(b * per_block, (b + 1) * per_block)
        _logsumexp_block(x[rows], out[rows], row_max, e)


@njit(**_FAST)
def softmax_cross_entropy(logits, labels, losses, delta):
    per_block, blocks = _blocks(logits.shape[0], logits.shape[1])
    row_max, e = np.empty(per_block), np.empty(per_block * logits.shape[1])
    for b in range(blocks):
        rows = slice(b * per_block, (b + 1) * per_block)
        _softmax_cross_entropy_block(logits[rows], labels[rows], losses[rows], delta[rows], row_max, e)


@njit(parallel=True, **_FAST)
def softmax_cross_entropy_parallel(logits, labels, losses, delta):
    per_block, blocks = _blocks(logits.shape[0], logits.shape[1])
    for b in prange(blocks):
        row_max, e = np.empty(per_block), np.empty(per_block * logits.shape[1])
        rows = slice(b * per_block, (b + 1) * per_block)
        _softmax_cross_entropy_block(logits[rows], labels[rows], losses[rows], delta[rows], row_max, e)


@njit(**_FAST)
def bce_with_logits(logits, targets, losses, delta):
    """Returns (the sum of the losses, the number of targets outside [0, 1])."""
    n, c = logits.shape
    per_block, blocks = _blocks(n, c)
    per_unit = np.empty(per_block * c)
    x, y, d = logits.reshape(-1), targets.reshape(-1), delta.reshape(-1)
    total, outside = 0.0, 0
    for b in range(blocks):
        units = slice(b * per_block * c, (b + 1) * per_block * c)
        part, bad = _bce_with_logits_block(x[units], y[units], c,
                                           losses[b * per_block:(b + 1) * per_block], d[units], per_unit)
        total += part
        outside += bad
    return total, outside


@njit(parallel=True, **_FAST)
def bce_with_logits_parallel(logits, targets, losses, delta):
    n, c = logits.shape
    per_block, blocks = _blocks(n, c)
    x, y, d = logits.reshape(-1), targets.reshape(-1), delta.reshape(-1)
    total, outside = 0.0, 0
    for b in prange(blocks):
        per_unit = np.empty(per_block * c)
        units = slice(b * per_block * c, (b + 1) * per_block * c)
        part, bad = _bce_with_logits_block(x[units], y[units], c,
                                           losses[b * per_block:(b + 1) * per_block], d[units], per_unit)
        total += part
        outside += bad
    return total, outside


# ---------------------------------------------------------------- sums in float64, in chunks
# A float64 sum vectorizes only if its additions may be reassociated (several partial sums,
# one per SIMD lane). These two functions alone carry fastmath={"reassoc"}: the elementwise
# values their callers compute stay operation for operation, and only the order of the
# additions changes, over chunks of _CHUNK elements whose totals are added in turn.
_CHUNK = 512


@njit(fastmath={"reassoc"}, **_JIT)
def _sum_chunk(x):
    total = 0.0
    for i in range(x.size):
        total += x[i]
    return total


@njit(fastmath={"reassoc"}, **_JIT)
def _sum_of_squares_chunk(x):
    total = 0.0
    for i in range(x.size):
        v = np.float64(x[i])
        total += v * v
    return total


@njit(**_JIT)
def sum_of_squares(x):
    """sum(x**2) over a C-contiguous array of any shape, each square and the sum in float64."""
    flat = x.reshape(-1)
    n = flat.size
    total, start = 0.0, 0
    while start < n:
        stop = min(start + _CHUNK, n)
        total += _sum_of_squares_chunk(flat[start:stop])
        start = stop
    return total


@njit(**_FAST)
def bce_with_logits_loss(logits, targets, buffer, rows):
    """The fused loss's forward in one pass over C-contiguous logits and targets (any shape):
    buffer[1:] = sigmoid(z) - y, buffer[0] = the sum of softplus(z) - z y over all elements
    (in float64), divided by `rows` when rows > 0. Returns the number of targets outside [0, 1]."""
    x, y = logits.reshape(-1), targets.reshape(-1)
    delta = buffer[1:]
    n = x.size
    per_unit = np.empty(min(n, _CHUNK))
    total, outside, start = 0.0, 0, 0
    while start < n:
        stop = min(start + _CHUNK, n)
        m = stop - start
        outside += _bce_units(x[start:stop], y[start:stop], delta[start:stop], per_unit[:m])
        total += _sum_chunk(per_unit[:m])
        start = stop
    buffer[0] = total / rows if rows > 0 else total
    return outside


@njit(**_FAST)
def softmax_cross_entropy_loss(logits, labels, buffer, rows):
    """The fused loss's forward in one pass over C-contiguous logits (n, C): buffer[1:] (n C
    elements) = softmax(z) - onehot(label), buffer[0] = the sum of the rows' losses
    logsumexp(z) - z[label] (each and the sum in float64), divided by `rows` when rows > 0.
    Returns -1, or the first row whose label is outside 0..C-1 (then nothing is written)."""
    n, c = logits.shape
    for i in range(n):
        if labels[i] < 0 or labels[i] >= c:
            return i
    delta = buffer[1:].reshape((n, c))
    per_block, blocks = _blocks(n, c)
    row_max, e = np.empty(per_block), np.empty(per_block * c)
    losses = np.empty(n)
    for b in range(blocks):
        block = slice(b * per_block, (b + 1) * per_block)
        _softmax_cross_entropy_block(logits[block], labels[block], losses[block], delta[block],
                                     row_max, e)
    total, start = 0.0, 0
    while start < n:
        stop = min(start + _CHUNK, n)
        total += _sum_chunk(losses[start:stop])
        start = stop
    buffer[0] = total / rows if rows > 0 else total
    return -1


# ---------------------------------------------------------------- the linear layer's elementwise part
# z = activation(z + b), in place over the matmul's output z (batch, out), block by block: the bias
# row by row, then the activation over the block while it is in cache. One kernel per activation
# (each with its parallel version), so that a model compiles only the one it uses: one kernel
# taking the activation as an argument compiled all four loops, 1.3 s on a cold cache against
# 0.9 s for sigmoid's alone and 0.45 s for relu's.
@njit(**_FAST)
def bias_add(z, b):
    """z = z + b (no activation)."""
    _add_bias(z, b)


@njit(parallel=True, **_FAST)
def bias_add_parallel(z, b):
    per_block, blocks = _blocks(z.shape[0], z.shape[1])
    for block in prange(blocks):
        _add_bias(z[block * per_block:(block + 1) * per_block], b)


@njit(**_FAST)
def bias_sigmoid(z, b):
    """z = sigmoid(z + b)."""
    per_block, blocks = _blocks(z.shape[0], z.shape[1])
    for block in range(blocks):
        part = z[block * per_block:(block + 1) * per_block]
        _add_bias(part, b)
        _sigmoid_all(part.reshape(-1))


@njit(parallel=True, **_FAST)
def bias_sigmoid_parallel(z, b):
    per_block, blocks = _blocks(z.shape[0], z.shape[1])
    for block in prange(blocks):
        part = z[block * per_block:(block + 1) * per_block]
        _add_bias(part, b)
        _sigmoid_all(part.reshape(-1))


@njit(**_FAST)
def bias_tanh(z, b):
    """z = tanh(z + b)."""
    per_block, blocks = _blocks(z.shape[0], z.shape[1])
    for block in range(blocks):
        part = z[block * per_block:(block + 1) * per_block]
        _add_bias(part, b)
        _tanh_all(part.reshape(-1))


@njit(parallel=True, **_FAST)
def bias_tanh_parallel(z, b):
    per_block, blocks = _blocks(z.shape[0], z.shape[1])
    for block in prange(blocks):
        part = z[block * per_block:(block + 1) * per_block]
        _add_bias(part, b)
        _tanh_all(part.reshape(-1))


@njit(**_FAST)
def bias_relu(z, b):
    """z = max(z + b, 0)."""
    per_block, blocks = _blocks(z.shape[0], z.shape[1])
    for block in range(blocks):
        part = z[block * per_block:(block + 1) * per_block]
        _add_bias(part, b)
        _relu_all(part.reshape(-1))


@njit(parallel=True, **_FAST)
def bias_relu_parallel(z, b):
    per_block, blocks = _blocks(z.shape[0], z.shape[1])
    for block in prange(blocks):
        part = z[block * per_block:(block + 1) * per_block]
        _add_bias(part, b)
        _relu_all(part.reshape(-1))


@njit(**_JIT)
def linear_backward(g, a, code, delta, db):
    """delta = g * activation'(z) from the output a (batch, out), and db = its column sums."""
    one, zero = a.dtype.type(1), a.dtype.type(0)
    db[:] = zero
    for i in range(g.shape[0]):
        for j in range(g.shape[1]):
            ga, aa = g[i, j], a[i, j]
            if code == SIGMOID:
                d = ga * aa * (one - aa)
            elif code == TANH:
                d = ga * (one - aa * aa)
            elif code == RELU:
                d = ga * (one if aa > zero else zero)
            else:
                d = ga
            delta[i, j] = d
            db[j] += d


# ---------------------------------------------------------------- total += alpha * x, in place
@njit(**_JIT)
def add_scaled(total, alpha, x):
    """total (C-contiguous, any shape) += alpha * x (x of its shape, C-contiguous)."""
    alpha_ = total.dtype.type(alpha)
    t, v = total.reshape(-1), x.reshape(-1)
    for i in range(t.size):
        t[i] = t[i] + alpha_ * v[i]


# ---------------------------------------------------------------- optimizer updates, in place
# scalars arrive as Python floats (the cheapest arguments to dispatch on) and are rounded to the
# parameters' dtype first, so float32 stays float32 like in the NumPy twins
@njit(**_JIT)
def sgd_update(param, grad, velocity, lr, momentum, nesterov, weight_decay):
    to = param.dtype.type
    lr_, momentum_, weight_decay_ = to(lr), to(momentum), to(weight_decay)
    zero = to(0)
    for i in range(param.size):
        d = grad[i]
        if weight_decay_ != zero:
            d = d + weight_decay_ * param[i]
        if momentum_ != zero:
            v = momentum_ * velocity[i] + d
            velocity[i] = v
            d = d + momentum_ * v if nesterov else v
        param[i] = param[i] - lr_ * d


@njit(**_JIT)
def adam_update(param, grad, m, v, step_size, beta1, one_minus_beta1, beta2, one_minus_beta2,
                bias_correction2_sqrt, eps, weight_decay):
    to = param.dtype.type
    step_size_, beta1_, one_minus_beta1_ = to(step_size), to(beta1), to(one_minus_beta1)
    beta2_, one_minus_beta2_ = to(beta2), to(one_minus_beta2)
    # sqrt(v) times 1 / the bias correction rather than divided by it: one division per element
    # instead of two (within an ulp of PyTorch's order; float64's divisions made this loop 40%
    # slower than its memory traffic, float32's are hidden by it)
    correction_, eps_, weight_decay_ = to(1.0 / bias_correction2_sqrt), to(eps), to(weight_decay)
    zero = to(0)
    for i in range(param.size):
        d = grad[i]
        if weight_decay_ != zero:
            d = d + weight_decay_ * param[i]
        mi = beta1_ * m[i] + one_minus_beta1_ * d
        vi = beta2_ * v[i] + one_minus_beta2_ * d * d
        m[i] = mi
        v[i] = vi
        param[i] = param[i] - step_size_ * (mi / (np.sqrt(vi) * correction_ + eps_))
