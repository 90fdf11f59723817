"""The NumPy twins of the Numba kernels: the same math, written the obvious way.

They are what `set_kernels("numpy")` runs, what small arrays run (below the size where a
kernel pays), what runs where no kernel applies (softmax along an axis other than the last),
and what the tests and `benchmarks/kernels.py` compare each kernel with. The primitives'
forwards reach them through `autograd_lite.kernels`, so this is the one place their NumPy math
is written. float32 stays float32 (Python scalars do not promote it).
"""
from __future__ import annotations

import math
from typing import Optional, Tuple

import numpy as np


# ---------------------------------------------------------------- elementwise
def sigmoid(x: np.ndarray) -> np.ndarray:
    """1 / (1 + e**-x), through e**-|x| so that neither branch overflows."""
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1 / (1 + e), e / (1 + e))


def sigmoid_backward(g: np.ndarray, a: np.ndarray) -> np.ndarray:
    """g * a * (1 - a), a = sigmoid(x)."""
    return g * a * (1 - a)


tanh = np.tanh  # NumPy's own SIMD loop: no kernel here beats it on one core


def tanh_backward(g: np.ndarray, a: np.ndarray) -> np.ndarray:
    """g * (1 - a**2), a = tanh(x)."""
    return g * (1 - a * a)


def relu(x: np.ndarray) -> np.ndarray:
    return np.maximum(x, 0)


def relu_backward(g: np.ndarray, x: np.ndarray) -> np.ndarray:
    """g * [x > 0] (x may be relu's input or its output)."""
    return g * (x > 0)


# np.logaddexp(0, x) is the same formula in one ufunc call: less call overhead than the five
# calls below, but a scalar libm loop, 10x slower per element; it runs on small arrays
_ONE_CALL_BELOW = 256


def softplus(x: np.ndarray) -> np.ndarray:
    """log(1 + e**x) = max(x, 0) + log1p(e**-|x|)."""
    if x.size < _ONE_CALL_BELOW:
        return np.logaddexp(0, x)
    return np.maximum(x, 0) + np.log1p(np.exp(-np.abs(x)))


def log_sigmoid(x: np.ndarray) -> np.ndarray:
    """log(sigmoid(x)) = -softplus(-x) = min(x, 0) - log1p(e**-|x|)."""
    if x.size < _ONE_CALL_BELOW:
        return -np.logaddexp(0, -x)
    return np.minimum(x, 0) - np.log1p(np.exp(-np.abs(x)))


def uniform(shape: tuple, dtype: np.dtype, keys: np.ndarray) -> np.ndarray:
    """The twin of jitted.uniform_fill: len(keys) equal blocks of the flattened array, element
    j of block k a hash of (j, keys[k]) (two rounds of MurmurHash3's 32-bit finaliser) scaled
    to [0, 1): 24 bits in float32, 31 in float64."""
    per_key = int(np.prod(shape, dtype=np.int64)) // max(len(keys), 1)
    j = np.arange(per_key, dtype=np.uint32)
    out = np.empty((len(keys), per_key), dtype)
    for k, key in enumerate(int(key) for key in keys):
        h = _fmix32(_fmix32(j * np.uint32(0x9E3779B9) + np.uint32(key & 0xFFFFFFFF))
                    ^ np.uint32(key >> 32))
        if np.dtype(dtype).itemsize == 4:
            out[k] = (h >> np.uint32(8)).astype(np.int32).astype(np.float32) * np.float32(1 / 16777216)
        else:
            out[k] = (h >> np.uint32(1)).astype(np.int32).astype(np.float64) * (1 / 2147483648)
    return out.reshape(shape)


def _fmix32(h: np.ndarray) -> np.ndarray:
    h = h ^ (h >> np.uint32(16))
    h = h * np.uint32(0x85EBCA6B)
    h = h ^ (h >> np.uint32(13))
    h = h * np.uint32(0xC2B2AE35)
    return h ^ (h >> np.uint32(16))


def dropout(x: np.ndarray, u: np.ndarray, p: float) -> np.ndarray:
    """x / (1 - p) where u >= p (kept), 0 elsewhere; u uniform on [0, 1)."""
    scale = x.dtype.type(1 / (1 - p))
    return np.where(u >= x.dtype.type(p), x * scale, x.dtype.type(0))


# ---------------------------------------------------------------- along an axis
# `axis`: one non-negative int for softmax and log_softmax, None or a tuple of them for
# logsumexp; ignored for a 0-d x (a softmax over its one element). Each subtracts the max
# along the axis first, so that e**x cannot overflow at +-1000.
def softmax(x: np.ndarray, axis: int) -> np.ndarray:
    """e**(x - m) / sum(e**(x - m)) along `axis`, m the max along it."""
    if x.size == 0:  # nothing to normalize (np.max refuses a size-0 axis)
        return x.copy()
    if x.ndim == 0:
        axis = None
    e = np.exp(x - np.max(x, axis=axis, keepdims=True))
    return e / np.sum(e, axis=axis, keepdims=True)


def log_softmax(x: np.ndarray, axis: int) -> np.ndarray:
    """(x - m) - log(sum(e**(x - m))) along `axis`, m the max along it."""
    if x.size == 0:
        return x.copy()
    if x.ndim == 0:
        axis = None
    shifted = x - np.max(x, axis=axis, keepdims=True)
    return shifted - np.log(np.sum(np.exp(shifted), axis=axis, keepdims=True))


def logsumexp(x: np.ndarray, axis: Optional[Tuple[int, ...]], keepdims: bool) -> np.ndarray:
    """m + log(sum(e**(x - m))) over `axis` (None: all), m the max over it, or 0 where that max
    is not finite (so that a row of -inf gives -inf, not -inf - -inf = NaN)."""
    if x.size == 0:  # log(0) = -inf for each empty sum, without np.max's refusal or a warning
        with np.errstate(divide="ignore"):
            return np.log(np.sum(np.exp(x), axis=axis, keepdims=keepdims))
    if x.ndim == 0:
        axis = None
    m = np.max(x, axis=axis, keepdims=True)
    m = np.where(np.isfinite(m), m, 0)
    out = np.log(np.sum(np.exp(x - m), axis=axis, keepdims=True)) + m
    return out if keepdims else out.squeeze(axis)


def softmax_cross_entropy(logits: np.ndarray, labels: np.ndarray,
                          out: Optional[np.ndarray] = None) -> Tuple[np.ndarray, np.ndarray]:
    """Per-row losses logsumexp(z) - z[label], and softmax(z) - onehot(label) (into `out`)."""
    rows = np.arange(logits.shape[0])
    shifted = logits - np.max(logits, axis=1, keepdims=True)
    e = np.exp(shifted)
    s = np.sum(e, axis=1, keepdims=True)
    losses = np.log(s[:, 0]) - shifted[rows, labels]
    delta = np.divide(e, s, out=out)
    delta[rows, labels] -= 1
    return losses, delta


def bce_with_logits(logits: np.ndarray, targets: np.ndarray,
                    out: Optional[np.ndarray] = None) -> Tuple[np.ndarray, np.ndarray]:
    """Per-row sums of softplus(z) - z y (= -y log s - (1 - y) log(1 - s), s = sigmoid(z)),
    and s - y (into `out`). Rows are the first axis; a 1-D input has one unit per row."""
    per_unit = np.maximum(logits, 0) - logits * targets + np.log1p(np.exp(-np.abs(logits)))
    losses = per_unit.reshape(len(logits), -1 if logits.size else 0).sum(axis=1)
    delta = np.subtract(sigmoid(logits), targets, out=out)
    return losses, delta


# ---------------------------------------------------------------- the linear layer
_ACTIVATE = {None: lambda z: z, "sigmoid": sigmoid, "tanh": tanh, "relu": relu}


def linear(x: np.ndarray, W: np.ndarray, b: Optional[np.ndarray],
           activation: Optional[str]) -> np.ndarray:
    """activation(x @ W + b)."""
    return bias_activation(x @ W, b, activation)


def bias_activation(z: np.ndarray, b: Optional[np.ndarray], activation: Optional[str]) -> np.ndarray:
    """activation(z + b), z the matmul's output (batch, out)."""
    if b is not None:
        z = z + b
    return _ACTIVATE[activation](z)


def activation_backward(g: np.ndarray, a: np.ndarray, activation: Optional[str]) -> np.ndarray:
    """delta = g * activation'(z), from the activation's output a."""
    if activation == "sigmoid":
        return sigmoid_backward(g, a)
    if activation == "tanh":
        return tanh_backward(g, a)
    if activation == "relu":
        return relu_backward(g, a)
    return g


def add_scaled(total: np.ndarray, alpha: float, x: np.ndarray) -> None:
    """total += alpha * x (alpha rounded to total's dtype)."""
    total += total.dtype.type(alpha) * x


# ---------------------------------------------------------------- optimizer updates, in place
def sgd_update(param: np.ndarray, grad: np.ndarray, velocity: Optional[np.ndarray], lr: float,
               momentum: float, nesterov: bool, weight_decay: float) -> None:
    """PyTorch's SGD: d = g + wd p; v = mu v + d; d = d + mu v (Nesterov) or v; p -= lr d."""
    d = grad + weight_decay * param if weight_decay else grad
    if momentum:
        velocity *= momentum
        velocity += d
        d = d + momentum * velocity if nesterov else velocity
    param -= lr * d


def adam_update(param: np.ndarray, grad: np.ndarray, m: np.ndarray, v: np.ndarray, step: int,
                lr: float, beta1: float, beta2: float, eps: float, weight_decay: float) -> None:
    """PyTorch's Adam (weight decay added to the gradient, not decoupled), step = 1, 2, ...:
    d = g + wd p; m = b1 m + (1 - b1) d; v = b2 v + (1 - b2) d**2;
    p -= lr / (1 - b1**t) * m / (sqrt(v) / sqrt(1 - b2**t) + eps), the division by the bias
    correction made as a product with its reciprocal (within an ulp; the kernel's order)."""
    d = grad + weight_decay * param if weight_decay else grad
    m *= beta1
    m += (1 - beta1) * d
    v *= beta2
    v += (1 - beta2) * d * d
    step_size = lr / (1 - beta1 ** step)
    denom = np.sqrt(v) * (1 / math.sqrt(1 - beta2 ** step)) + eps   # the kernel's order
    param -= step_size * (m / denom)
