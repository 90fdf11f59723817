"""Fast kernels for the hot paths: Numba loops that make one pass over memory, with NumPy twins.

Each function here takes and returns NumPy arrays and runs, per call, one of three
implementations: the NumPy twin (`kernels.reference`), the serial Numba kernel, or its
parallel (`prange`) version; `kernels.dispatch` decides which, by the array's dtype, layout and
size against `THRESHOLDS` (sizes measured with `benchmarks/kernels.py` on a 2-core machine).
`set_kernels("numpy")`, or the environment variable AUTOGRAD_LITE_KERNELS=numpy, runs the twins
everywhere, for debugging and comparison.

Nothing is compiled, nor is Numba imported, until a kernel first runs; compiled code is
cached on disk (`cache=True`), so the next process starts warm. The kernels take float32 and
float64; other dtypes, and shapes they do not cover, go to the twins. Non-contiguous inputs
are copied first.

    >>> from autograd_lite import kernels
    >>> kernels.sigmoid_backward(g, a)        # g * a * (1 - a), one pass
    >>> kernels.softmax(z, axis=1)            # the table's softmax forward
"""
from __future__ import annotations

import math
from types import ModuleType
from typing import Dict, Optional, Sequence, Tuple

import numpy as np

from . import reference
from .dispatch import BACKENDS, THRESHOLDS, get_kernels, set_kernels
from .dispatch import binary as _binary
from .dispatch import by_rows as _by_rows
from .dispatch import contiguous as _contiguous
from .dispatch import _PARALLEL_FROM, _jit
from .dispatch import kernel as _kernel
from .dispatch import unary as _unary

__all__ = ["BACKENDS", "THRESHOLDS", "ACTIVATIONS", "set_kernels", "get_kernels",
           "sigmoid", "sigmoid_backward", "tanh", "tanh_backward", "relu", "relu_backward",
           "softplus", "log_sigmoid", "dropout", "uniform", "softmax", "log_softmax", "logsumexp",
           "check_labels", "softmax_cross_entropy", "bce_with_logits", "bce_with_logits_total",
           "bce_with_logits_loss", "softmax_cross_entropy_loss", "sum_of_squares",
           "linear", "bias_activation", "activation_backward", "linear_backward",
           "linear_backward_codes", "add_scaled", "sgd_update", "sgd_update_many", "adam_update",
           "adam_update_many"]

ACTIVATIONS = (None, "sigmoid", "tanh", "relu")
_ACTIVATION_CODES = {None: 0, "sigmoid": 1, "tanh": 2, "relu": 3}  # as in jitted.py
# the kernel of activation(z + b) for each activation code (one kernel each: see jitted.py)
_BIAS_KERNELS = ("bias_add", "bias_sigmoid", "bias_tanh", "bias_relu")


# ---------------------------------------------------------------- elementwise
def sigmoid(x: np.ndarray) -> np.ndarray:
    """1 / (1 + e**-x), elementwise, without overflow for any x."""
    return _unary("sigmoid", reference.sigmoid, x)


def sigmoid_backward(g: np.ndarray, a: np.ndarray) -> np.ndarray:
    """g * a * (1 - a) in one pass: the cotangent of sigmoid's input, from its output a."""
    return _binary("sigmoid_backward", reference.sigmoid_backward, g, a)


def tanh(x: np.ndarray) -> np.ndarray:
    """tanh(x), elementwise."""
    return _unary("tanh", reference.tanh, x)


def tanh_backward(g: np.ndarray, a: np.ndarray) -> np.ndarray:
    """g * (1 - a**2) in one pass: the cotangent of tanh's input, from its output a."""
    return _binary("tanh_backward", reference.tanh_backward, g, a)


def relu(x: np.ndarray) -> np.ndarray:
    """max(x, 0), elementwise (NaN stays NaN)."""
    return _unary("relu", reference.relu, x)


def relu_backward(g: np.ndarray, x: np.ndarray) -> np.ndarray:
    """g * [x > 0] in one pass (x: relu's input or its output, the mask is the same)."""
    return _binary("relu_backward", reference.relu_backward, g, x)


def softplus(x: np.ndarray) -> np.ndarray:
    """log(1 + e**x), elementwise, stable for any x (the table's softplus forward)."""
    if type(x) is not np.ndarray:
        x = np.asarray(x)
    return _unary("softplus", reference.softplus, x)


def log_sigmoid(x: np.ndarray) -> np.ndarray:
    """log(sigmoid(x)) = -softplus(-x), elementwise, stable for any x."""
    if type(x) is not np.ndarray:
        x = np.asarray(x)
    return _unary("log_sigmoid", reference.log_sigmoid, x)


def uniform(shape: Tuple[int, ...], dtype: np.dtype, keys: np.ndarray) -> np.ndarray:
    """Uniform numbers on [0, 1) of `shape` in dtype (float32: 24 random bits, float64: 31),
    from a counter-based hash: the flattened array is len(keys) equal blocks, element j of
    block k a hash of (j, keys[k]) (uint64 keys). The same keys give the same numbers, and a
    block's numbers do not depend on the others (dropout's masks: one key per example).
    Blocks longer than 2**32 elements repeat."""
    dtype = np.dtype(dtype)
    if dtype.char not in "fd":
        raise TypeError(f"uniform: dtype must be float32 or float64, got {dtype}")
    if type(keys) is not np.ndarray or keys.dtype != np.uint64 or keys.ndim != 1:
        keys = np.ascontiguousarray(keys, dtype=np.uint64).reshape(-1)
    size = math.prod(shape)
    if keys.size == 0 or size % keys.size:
        raise ValueError(f"uniform: {keys.size} keys cannot split shape {tuple(shape)} into equal "
                         "blocks; expected a number of keys that divides its size")
    out = np.empty(shape, dtype)
    kernel = _kernel("uniform_fill_" + dtype.name, out)
    if kernel is None:
        return reference.uniform(tuple(shape), dtype, keys)
    flat = out.reshape(-1)
    per_key = size // keys.size
    for k, key in enumerate(keys.tolist()):   # one call per block (per example under vmap)
        kernel(flat[k * per_key:(k + 1) * per_key], np.uint32(key & 0xFFFFFFFF), np.uint32(key >> 32))
    return out


def dropout(x: np.ndarray, u: np.ndarray, p: float) -> np.ndarray:
    """Inverted dropout with given uniforms: x / (1 - p) where u >= p, else 0, in one pass.

    `u` holds uniform draws on [0, 1) of x's shape (`rng.random(x.shape, dtype=x.dtype)`),
    so each element is kept with probability 1 - p; the same `u` applied to the cotangent
    gives the backward pass.
    """
    if not 0 <= p <= 1:
        raise ValueError(f"dropout: p must be in [0, 1], got {p}")
    if np.shape(u) != np.shape(x):
        raise ValueError(f"dropout: the uniforms have shape {np.shape(u)}, the input {np.shape(x)}; "
                         "they must be equal")
    if p == 1:
        return np.zeros_like(x)
    kernel = _kernel("dropout", x, u)
    if kernel is None:
        return reference.dropout(x, u, p)
    x, u = _contiguous(x), _contiguous(u)
    out = np.empty(x.shape, x.dtype)
    scalar = x.dtype.type
    kernel(x.reshape(-1), u.reshape(-1), scalar(p), scalar(1 / (1 - p)), out.reshape(-1))
    return out


# ---------------------------------------------------------------- along an axis
def softmax(x: np.ndarray, axis: int) -> np.ndarray:
    """e**x / sum(e**x) along `axis` (a non-negative int; any for a 0-d x, whose softmax is 1),
    stable for logits of +-1000. A size-0 x gives an empty array of its shape.

        >>> kernels.softmax(np.array([[1000.0, 0.0]]), 1)      # [[1., 0.]]
    """
    if type(x) is not np.ndarray:
        x = np.asarray(x)
    out = _by_rows("softmax", x, axis, reduce=False)
    return reference.softmax(x, axis) if out is None else out


def log_softmax(x: np.ndarray, axis: int) -> np.ndarray:
    """x - logsumexp(x) along `axis`, taken as `softmax` takes it (log_softmax of a 0-d x is 0);
    stable for logits of +-1000."""
    if type(x) is not np.ndarray:
        x = np.asarray(x)
    out = _by_rows("log_softmax", x, axis, reduce=False)
    return reference.log_softmax(x, axis) if out is None else out


def logsumexp(x: np.ndarray, axis: Optional[Tuple[int, ...]], keepdims: bool) -> np.ndarray:
    """log(sum(e**x)) over `axis` (None: all axes, or a tuple of non-negative ints), the reduced
    axes kept with length 1 if `keepdims`. Stable for logits of +-1000; an empty sum gives
    -inf, as does a row of -inf.

        >>> kernels.logsumexp(np.array([[1000.0, 1000.0]]), (1,), False)   # [1000.693...]
    """
    if type(x) is not np.ndarray:
        x = np.asarray(x)
    out = None
    if axis is not None and len(axis) == 1:
        out = _by_rows("logsumexp", x, axis[0], reduce=True)
    elif axis is None and x.ndim == 1:           # all axes of a 1-D x: its one row
        out = _by_rows("logsumexp", x, 0, reduce=True)
    if out is None:
        return reference.logsumexp(x, axis, keepdims)
    return out.reshape(out.shape + (1,)) if keepdims else out


def check_labels(op: str, labels: np.ndarray, n_samples: int, n_classes: int) -> np.ndarray:
    """Labels as a contiguous intp array; raises naming the first label outside 0..C-1."""
    labels = np.asarray(labels)
    if labels.dtype.kind not in "iu":
        raise TypeError(f"{op}: labels must be integers (class indices), got dtype {labels.dtype}")
    if labels.shape != (n_samples,):
        raise ValueError(f"{op}: labels have shape {labels.shape}, expected ({n_samples},), "
                         f"one per row of the logits")
    if labels.size and (labels.min() < 0 or labels.max() >= n_classes):
        bad = labels[(labels < 0) | (labels >= n_classes)][0]
        raise ValueError(f"{op}: label {bad} is outside 0..{n_classes - 1} "
                         f"(the logits have C = {n_classes} classes)")
    return np.ascontiguousarray(labels, dtype=np.intp)


def softmax_cross_entropy(logits: np.ndarray, labels: np.ndarray,
                          out: Optional[np.ndarray] = None) -> Tuple[np.ndarray, np.ndarray]:
    """Per-row losses logsumexp(z) - z[label] (shape (batch,)), and softmax(z) - onehot(label)
    (shape (batch, C), written into `out` if given), in one pass over the logits.

    Stable for logits of +-1000; raises for a label outside 0..C-1.
    """
    if np.ndim(logits) != 2:
        raise ValueError(f"softmax_cross_entropy: logits must be 2-D (batch, classes), "
                         f"got shape {np.shape(logits)}")
    n, classes = logits.shape
    labels = check_labels("softmax_cross_entropy", labels, n, classes)
    kernel = _kernel("softmax_cross_entropy", logits)
    if kernel is None or (out is not None and not _writable_like(out, logits)):
        return reference.softmax_cross_entropy(logits, labels, out)
    logits = _contiguous(logits)
    delta = np.empty(logits.shape, logits.dtype) if out is None else out
    losses = np.empty(n, logits.dtype)
    kernel(logits, labels, losses, delta)
    return losses, delta


def bce_with_logits(logits: np.ndarray, targets: np.ndarray,
                    out: Optional[np.ndarray] = None) -> Tuple[np.ndarray, np.ndarray]:
    """Per-row losses sum_k softplus(z) - z y (= -y log s - (1 - y) log(1 - s), s = sigmoid(z)),
    and s - y (into `out` if given), in one pass. Rows are the first axis (a 1-D input has one
    output unit per row). Stable for logits of +-1000. A target outside [0, 1] raises a
    ValueError (checked in the same pass)."""
    return bce_with_logits_total(logits, targets, out)[1:]


def bce_with_logits_total(logits: np.ndarray, targets: np.ndarray, out: Optional[np.ndarray] = None
                          ) -> Tuple[float, np.ndarray, np.ndarray]:
    """`bce_with_logits` with the sum of the per-row losses in front: (total, losses, s - y),
    the total taken in the same pass (what the fused loss needs)."""
    if type(logits) is not np.ndarray:
        logits = np.asarray(logits)
    if logits.ndim not in (1, 2):
        raise ValueError(f"bce_with_logits: logits must be 1-D (batch,) or 2-D (batch, units), "
                         f"got shape {logits.shape}")
    if type(targets) is not np.ndarray or targets.dtype != logits.dtype:
        targets = np.asarray(targets, dtype=logits.dtype)
    if targets.shape != logits.shape:
        raise ValueError(f"bce_with_logits: targets have shape {targets.shape}, the logits "
                         f"{logits.shape}; they must be equal")
    kernel = _kernel("bce_with_logits", logits)
    if kernel is None or (out is not None and not _writable_like(out, logits)):
        if targets.size and (targets.min() < 0 or targets.max() > 1):
            raise _targets_outside_error(targets)
        losses, delta = reference.bce_with_logits(logits, targets, out)
        return losses.sum(), losses, delta
    rows = (len(logits), -1 if logits.size else 0)              # (batch, units)
    z = _contiguous(logits).reshape(rows)
    delta = np.empty(logits.shape, logits.dtype) if out is None else out
    losses = np.empty(logits.shape[0], logits.dtype)
    total, outside = kernel(z, _contiguous(targets).reshape(rows), losses, delta.reshape(rows))
    if outside:
        raise _targets_outside_error(targets)
    return total, losses, delta


def bce_with_logits_loss(logits: np.ndarray, targets: np.ndarray, rows: int) -> Optional[np.ndarray]:
    """[loss, sigmoid(z) - y ...] in one new array of 1 + logits.size elements, from one pass:
    loss = the sum over all elements of softplus(z) - z y (accumulated in float64), divided by
    `rows` when rows > 0 (reduction "mean"). For the fused loss's forward, which keeps the
    derivative behind the loss. None, having done nothing, where the kernel does not take the
    arrays (Numba off, not ndarrays of one float dtype and shape, non-contiguous, empty, or
    large enough for the parallel kernel of `bce_with_logits_total`): the caller then takes
    that general path. A target outside [0, 1] raises a ValueError."""
    if type(logits) is not np.ndarray or type(targets) is not np.ndarray:
        return None
    size = logits.size
    if (not size or size >= _PARALLEL_FROM or targets.dtype != logits.dtype
            or targets.shape != logits.shape or not logits.flags.c_contiguous
            or not targets.flags.c_contiguous):
        return None
    kernel = _kernel("bce_with_logits_loss", logits)
    if kernel is None:
        return None
    buffer = np.empty(1 + size, logits.dtype)
    if kernel(logits, targets, buffer, rows):
        raise _targets_outside_error(targets)
    return buffer


def softmax_cross_entropy_loss(logits: np.ndarray, labels: np.ndarray, rows: int
                               ) -> Optional[np.ndarray]:
    """[loss, softmax(z) - onehot(label) ...] in one new array of 1 + logits.size elements,
    from one pass: loss = the sum of the rows' losses logsumexp(z) - z[label] (in float64),
    divided by `rows` when rows > 0 (reduction "mean"). For the fused loss's forward. None,
    having done nothing, where the kernel does not take the arrays (Numba off, logits not a
    non-empty C-contiguous float (n, C) array, labels not an intp array of shape (n,), or large
    enough for the parallel kernel): the caller then takes the general path. A label outside
    0..C-1 raises the ValueError of `check_labels`."""
    if type(logits) is not np.ndarray or type(labels) is not np.ndarray or logits.ndim != 2:
        return None
    size = logits.size
    if (not size or size >= _PARALLEL_FROM or labels.dtype != np.intp
            or labels.shape != logits.shape[:1] or not logits.flags.c_contiguous):
        return None
    kernel = _kernel("softmax_cross_entropy_loss", logits)
    if kernel is None:
        return None
    buffer = np.empty(1 + size, logits.dtype)
    if kernel(logits, labels, buffer, rows) >= 0:
        check_labels("softmax_cross_entropy", labels, *logits.shape)   # raises, naming the label
    return buffer


def sum_of_squares(x: np.ndarray) -> float:
    """sum(x**2) over all elements as a Python float: each square and the sum in float64 (one
    pass, the additions in chunks of SIMD partial sums), whatever x's float dtype."""
    kernel = _kernel("sum_of_squares", x) if type(x) is np.ndarray else None
    if kernel is None:
        flat = np.asarray(x, dtype=np.float64).reshape(-1)
        return float(np.dot(flat, flat))
    return kernel(_contiguous(x))


def _targets_outside_error(targets: np.ndarray) -> ValueError:
    bad = np.flatnonzero((targets < 0) | (targets > 1))
    return ValueError(f"bce_with_logits: targets must be in [0, 1], got values in "
                      f"[{np.min(targets)}, {np.max(targets)}] ({bad.size} outside, the first "
                      f"at flat position {bad[0]})")


def _writable_like(out: np.ndarray, like: np.ndarray) -> bool:
    return (type(out) is np.ndarray and out.shape == like.shape and out.dtype == like.dtype
            and out.flags.c_contiguous and out.flags.writeable)


# ---------------------------------------------------------------- the linear layer
def _activation_code(op: str, activation: Optional[str]) -> int:
    code = _ACTIVATION_CODES.get(activation, -1)
    if code < 0:
        raise ValueError(f"{op}: activation must be one of {ACTIVATIONS}, got {activation!r}")
    return code


def linear(x: np.ndarray, W: np.ndarray, b: Optional[np.ndarray] = None,
           activation: Optional[str] = None) -> np.ndarray:
    """activation(x @ W + b): the matmul through BLAS (np.dot), then bias and activation in one
    pass over its output. x (batch, in), W (in, out), b (out,) or None."""
    code = _activation_code("linear", activation)
    z = np.dot(x, W)
    kernel = _kernel(_BIAS_KERNELS[code], z) if b is not None or code else None
    if (kernel is None or z.ndim != 2 or b is None or type(b) is not np.ndarray
            or b.shape != z.shape[1:] or b.dtype != z.dtype or not b.flags.c_contiguous):
        return bias_activation(z, b, activation, in_place=True)
    kernel(z, b)             # np.dot's fresh output is C-contiguous: activation(z + b) in place
    return z


def bias_activation(z: np.ndarray, b: Optional[np.ndarray], activation: Optional[str],
                    in_place: bool = False) -> np.ndarray:
    """activation(z + b) in one pass over z (batch, out); b (out,) or None.
    `in_place=True` may overwrite z (linear's own matmul output)."""
    code = _activation_code("bias_activation", activation)
    if (in_place and type(z) is np.ndarray and type(b) is np.ndarray and z.ndim == 2
            and b.shape == z.shape[1:] and b.dtype == z.dtype):   # the common case, fewer steps
        kernel = _kernel(_BIAS_KERNELS[code], z)
        if kernel is not None:
            flags = z.flags
            if flags.c_contiguous and flags.writeable and b.flags.c_contiguous:
                kernel(z, b)
                return z
    if b is not None and np.shape(b) != z.shape[-1:]:
        raise ValueError(f"linear: the bias has shape {np.shape(b)}, expected ({z.shape[-1]},) "
                         f"for an output of shape {z.shape}")
    kernel = _kernel(_BIAS_KERNELS[code], z) if z.ndim == 2 else None
    if kernel is None or (b is None and code == 0):
        return reference.bias_activation(z, b, activation)
    out = z if in_place and z.flags.c_contiguous and z.flags.writeable else np.array(z, order="C")
    bias = np.zeros(z.shape[1], z.dtype) if b is None else np.ascontiguousarray(b, dtype=z.dtype)
    kernel(out, bias)
    return out


def activation_backward(g: np.ndarray, a: np.ndarray, activation: Optional[str]) -> np.ndarray:
    """delta = g * activation'(z), from the activation's output a, in one pass."""
    return _activation_backward(g, a, _activation_code("activation_backward", activation))


def _activation_backward(g: np.ndarray, a: np.ndarray, code: int) -> np.ndarray:
    """`activation_backward` with the activation as its code (0: the identity, g itself)."""
    return g if code == 0 else _binary(_BACKWARD_NAMES[code], _BACKWARD_TWINS[code], g, a)


def linear_backward(g: np.ndarray, a: np.ndarray, x: np.ndarray, W: np.ndarray,
                    activation: Optional[str],
                    wrt: Sequence[str] = ("x", "W", "b")) -> Tuple[np.ndarray, ...]:
    """The cotangents of x, W and b (those named in `wrt`, in that order) for
    a = activation(x @ W + b) and the output cotangent g: delta = g * activation'(z) with the
    bias gradient db = sum_rows(delta) in one pass, then dx = delta W^T, dW = x^T delta (BLAS)."""
    code = _activation_code("linear_backward", activation)
    grads = dict(zip("xWb", linear_backward_codes(g, a, x, W, code, "x" in wrt, "W" in wrt,
                                                  "b" in wrt)))
    return tuple(grads[name] for name in wrt)


def linear_backward_codes(g: np.ndarray, a: np.ndarray, x: np.ndarray, W: np.ndarray, code: int,
                          want_x: bool, want_W: bool, want_b: bool,
                          out: Optional[Tuple[Optional[np.ndarray], ...]] = None
                          ) -> Tuple[Optional[np.ndarray], ...]:
    """`linear_backward` for the engine's hot path: the activation as its code (see
    `_ACTIVATION_CODES`), and (dx, dW, db) with None for each one not wanted.

    `out` (ag.compile's buffer plan): (dx, dW, db) arrays of the results' shapes and dtype,
    C-contiguous, or None each, to write the products into (the same BLAS calls, `np.dot(...,
    out=)`) and db into (the same kernel); the others are new arrays."""
    dx_out, dW_out, db_out = out if out is not None else (None, None, None)
    kernel = _kernel("linear_backward", g, a) if g.ndim == 2 else None
    if kernel is None:
        delta = _activation_backward(g, a, code)
        db = delta.sum(axis=0, out=db_out) if want_b else None
    else:
        if not (g.flags.c_contiguous and a.flags.c_contiguous):
            g, a = _contiguous(g), _contiguous(a)
        delta = np.empty(g.shape, g.dtype)
        db = np.empty(g.shape[1], g.dtype) if db_out is None else db_out
        kernel(g, a, code, delta, db)
    return (np.dot(delta, W.T, out=dx_out) if want_x else None,
            np.dot(x.T, delta, out=dW_out) if want_W else None,
            db if want_b else None)


_BACKWARD_NAMES = {code: f"{name}_backward" for name, code in _ACTIVATION_CODES.items() if code}
_BACKWARD_TWINS = {code: getattr(reference, name) for code, name in _BACKWARD_NAMES.items()}


# ---------------------------------------------------------------- total += alpha * x
def add_scaled(total: np.ndarray, alpha: float, x: np.ndarray) -> None:
    """total += alpha * x, in place and in one pass (no temporary for alpha * x): how an
    in-place VJP rule (e.g. the L2 penalty's lam * W) adds into a leaf's cotangent. total and
    x of one shape; total a writable float array."""
    if type(total) is np.ndarray and type(x) is np.ndarray and x.shape == total.shape:
        kernel = _kernel("add_scaled", total, x)   # the common case first, with fewer checks
        if kernel is not None:
            flags = total.flags
            if flags.c_contiguous and flags.writeable and x.flags.c_contiguous:
                kernel(total, float(alpha), x)
                return
    if (type(total) is not np.ndarray or not total.flags.writeable
            or _shape(x) != total.shape):
        raise ValueError(f"add_scaled: total must be a writable array of x's shape, got "
                         f"{type(total).__name__} of shape {np.shape(total)} and x of shape {np.shape(x)}")
    kernel = (_kernel("add_scaled", total, x)
              if total.flags.c_contiguous and type(x) is np.ndarray and x.flags.c_contiguous else None)
    if kernel is None:
        reference.add_scaled(total, alpha, x)
        return
    kernel(total, float(alpha), x)


# ---------------------------------------------------------------- optimizer updates, in place
def _check_state(op: str, param: np.ndarray, **arrays: Optional[np.ndarray]) -> None:
    if type(param) is not np.ndarray or param.dtype.kind != "f":
        raise TypeError(f"{op}: param must be a float ndarray, got {type(param).__name__}"
                        + (f" of dtype {param.dtype}" if isinstance(param, np.ndarray) else ""))
    for name, array in arrays.items():
        if array is not None and np.shape(array) != param.shape:
            raise ValueError(f"{op}: {name} has shape {np.shape(array)}, param {param.shape}; "
                             "they must be equal")


def _shape(x: object) -> tuple:
    """np.shape(x), without its dispatch cost for an ndarray."""
    return x.shape if type(x) is np.ndarray else np.shape(x)


def _in_place_ok(*arrays: np.ndarray) -> bool:
    for a in arrays:
        if type(a) is not np.ndarray:
            return False
        flags = a.flags
        if not (flags.c_contiguous and flags.writeable):
            return False
    return True


def sgd_update(param: np.ndarray, grad: np.ndarray, velocity: Optional[np.ndarray], lr: float,
               momentum: float = 0.0, nesterov: bool = False, weight_decay: float = 0.0) -> None:
    """One SGD step, in place, with PyTorch's conventions (dampening 0):

        d = grad + weight_decay * param
        velocity = momentum * velocity + d              (when momentum != 0)
        d = d + momentum * velocity  (Nesterov)   or   d = velocity
        param -= lr * d

    `velocity` (zeros before the first step) is updated in place; it may be None when
    momentum is 0.
    """
    if momentum and velocity is None:
        raise ValueError("sgd_update: momentum != 0 needs a velocity array (zeros at the start)")
    if not (type(param) is np.ndarray and param.dtype.kind == "f" and _shape(grad) == param.shape
            and (velocity is None or _shape(velocity) == param.shape)):
        _check_state("sgd_update", param, grad=grad, velocity=velocity)   # raises, naming the fault
    arrays = (param, grad) if velocity is None else (param, grad, velocity)
    kernel = _kernel("sgd_update", *arrays) if _in_place_ok(*arrays) else None
    if kernel is None:
        reference.sgd_update(param, grad, velocity, float(lr), float(momentum), nesterov,
                             float(weight_decay))
        return
    v = _no_velocity(param.dtype) if velocity is None else velocity.reshape(-1)
    kernel(param.reshape(-1), grad.reshape(-1), v, float(lr), float(momentum), bool(nesterov),
           float(weight_decay))


def sgd_update_many(params: Sequence[np.ndarray], grads: Sequence[np.ndarray],
                    velocities: Optional[Sequence[np.ndarray]], lr: float, momentum: float = 0.0,
                    nesterov: bool = False, weight_decay: float = 0.0, check: bool = True) -> bool:
    """`sgd_update` on several parameters (an optimizer's step): the arguments checked once for
    all, then the Numba kernel of sgd_update called on each in turn, straight away (the same
    arithmetic, bit for bit; the per-call checks and dispatch of sgd_update cost more than the
    kernel on small arrays). No kernel of its own: no compile for a new number of parameters.

    params, grads and velocities (None when momentum is 0) are sequences of 1-D C-contiguous
    arrays of one float dtype (flattened views), params and velocities writable. Returns False,
    changing nothing, where they are not (or Numba is off): the caller then updates them one by
    one. A gradient or velocity of another size than its parameter raises a ValueError, before
    anything is changed. `check=False` skips the checks of types, dtypes and layouts (not of
    sizes), for a caller that has made them.
    """
    module = _many_kernels(params)
    if module is None:
        return False
    n, dtype = len(params), params[0].dtype
    if velocities is None:
        if momentum:
            raise ValueError("sgd_update_many: momentum != 0 needs velocities (zeros at the start)")
        velocities = (_no_velocity(dtype),) * n
    if len(grads) != n or len(velocities) != n:
        raise ValueError(f"sgd_update_many: {n} parameters, {len(grads)} gradients and "
                         f"{len(velocities)} velocities; expected one of each per parameter")
    if check and not (_flat_arrays(dtype, params, True) and _flat_arrays(dtype, grads, False)
                      and _flat_arrays(dtype, velocities, True)):
        return False
    for p, g, v in zip(params, grads, velocities):
        if g.size != p.size or (v.size != p.size and (momentum or v.size)):
            raise ValueError(f"sgd_update_many: a gradient ({g.size} elements) or a velocity "
                             f"({v.size}) has another size than its parameter ({p.size})")
    run = module.sgd_update
    lr, momentum, nesterov, weight_decay = float(lr), float(momentum), bool(nesterov), float(weight_decay)
    for p, g, v in zip(params, grads, velocities):
        run(p, g, v, lr, momentum, nesterov, weight_decay)
    return True


def adam_update_many(params: Sequence[np.ndarray], grads: Sequence[np.ndarray],
                     ms: Sequence[np.ndarray], vs: Sequence[np.ndarray], steps: Sequence[int],
                     lr: float = 1e-3, beta1: float = 0.9, beta2: float = 0.999, eps: float = 1e-8,
                     weight_decay: float = 0.0, check: bool = True) -> bool:
    """`adam_update` on several parameters (an optimizer's step), `steps[k]` (from 1) the update
    count of parameter k: the arguments checked once for all, then the Numba kernel of
    adam_update called on each in turn, straight away (the same arithmetic, bit for bit).

    params, grads, ms and vs are sequences of 1-D C-contiguous arrays of one float dtype
    (flattened views), params, ms and vs writable. Returns False, changing nothing, where they
    are not (or Numba is off): the caller then updates them one by one. A gradient or moment of
    another size than its parameter raises a ValueError, before anything is changed.
    `check=False` skips the checks of types, dtypes and layouts (not of sizes), for a caller
    that has made them.
    """
    module = _many_kernels(params)
    if module is None:
        return False
    n, dtype = len(params), params[0].dtype
    if not len(grads) == len(ms) == len(vs) == len(steps) == n:
        raise ValueError(f"adam_update_many: {n} parameters, {len(grads)} gradients, {len(ms)} "
                         f"and {len(vs)} moments, {len(steps)} step counts; expected one of each "
                         "per parameter")
    if check and not (_flat_arrays(dtype, params, True) and _flat_arrays(dtype, grads, False)
                      and _flat_arrays(dtype, ms, True) and _flat_arrays(dtype, vs, True)):
        return False
    for p, g, m, v, step in zip(params, grads, ms, vs, steps):
        if not g.size == m.size == v.size == p.size:
            raise ValueError(f"adam_update_many: a gradient ({g.size} elements) or a moment "
                             f"({m.size}, {v.size}) has another size than its parameter ({p.size})")
        if int(step) != step or step < 1:
            raise ValueError(f"adam_update_many: step counts updates from 1, got {step}")
    run = module.adam_update
    lr, beta1, beta2 = float(lr), float(beta1), float(beta2)
    eps, weight_decay = float(eps), float(weight_decay)
    last = None
    for p, g, m, v, step in zip(params, grads, ms, vs, steps):
        if step != last:   # as adam_update computes them, once per distinct count
            size, correction, last = lr / (1 - beta1 ** step), math.sqrt(1 - beta2 ** step), step
        run(p, g, m, v, size, beta1, 1 - beta1, beta2, 1 - beta2, correction, eps, weight_decay)
    return True


def _many_kernels(params: Sequence[np.ndarray]) -> Optional[ModuleType]:
    """The jitted module, for a call over a non-empty list of parameters; None where the kernels
    run their NumPy twins (set_kernels("numpy"), or no Numba)."""
    return _jit() if params and get_kernels() == "numba" else None


def _flat_arrays(dtype: np.dtype, arrays: Sequence[np.ndarray], writable: bool) -> bool:
    """Whether each array is a 1-D C-contiguous ndarray of `dtype` (float32 or float64), and
    writable if asked."""
    if dtype.char not in "fd":
        return False
    for a in arrays:
        if type(a) is not np.ndarray or a.dtype != dtype or a.ndim != 1:
            return False
        flags = a.flags
        if not flags.c_contiguous or (writable and not flags.writeable):
            return False
    return True


_NO_VELOCITY: Dict[str, np.ndarray] = {}


def _no_velocity(dtype: np.dtype) -> np.ndarray:
    """An empty array that stands for "no velocity" in the SGD kernel (one per dtype, never written)."""
    empty = _NO_VELOCITY.get(dtype.char)
    if empty is None:
        empty = _NO_VELOCITY[dtype.char] = np.empty(0, dtype)
    return empty


def adam_update(param: np.ndarray, grad: np.ndarray, m: np.ndarray, v: np.ndarray, step: int,
                lr: float = 1e-3, beta1: float = 0.9, beta2: float = 0.999, eps: float = 1e-8,
                weight_decay: float = 0.0) -> None:
    """One Adam step, in place, with PyTorch's conventions (torch.optim.Adam, not AdamW):

        d = grad + weight_decay * param
        m = beta1 * m + (1 - beta1) * d
        v = beta2 * v + (1 - beta2) * d**2
        param -= lr / (1 - beta1**step) * m / (sqrt(v) / sqrt(1 - beta2**step) + eps)

    `step` counts from 1 (the first update); m and v (zeros before it) are updated in place.
    """
    if int(step) != step or step < 1:
        raise ValueError(f"adam_update: step counts updates from 1, got {step}")
    lr, beta1, beta2 = float(lr), float(beta1), float(beta2)
    eps, weight_decay = float(eps), float(weight_decay)
    _check_state("adam_update", param, grad=grad, m=m, v=v)
    kernel = _kernel("adam_update", param, grad, m, v) if _in_place_ok(param, grad, m, v) else None
    if kernel is None:
        reference.adam_update(param, grad, m, v, int(step), lr, beta1, beta2, eps, weight_decay)
        return
    kernel(param.reshape(-1), grad.reshape(-1), m.reshape(-1), v.reshape(-1),
           lr / (1 - beta1 ** step), beta1, 1 - beta1, beta2, 1 - beta2,
           math.sqrt(1 - beta2 ** step), eps, weight_decay)
