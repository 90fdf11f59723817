"""Fused primitives, one each: a linear layer, two cross-entropies, dropout, the L2 penalty.

Each is a primitive in the one table (`primitives.PRIMITIVES`) like any other, with a VJP and a
JVP rule, but its forward and its first-order backward run the one-pass kernels of
`autograd_lite.kernels` instead of a chain of NumPy operations. Where a rule gets Tensors
(create_graph=True, forward mode) it is written with ordinary differentiable operations
instead, so grad-of-grad works through these primitives too.

    >>> h = linear(x, W1, b1, activation="sigmoid")          # sigmoid(x @ W1 + b1)
    >>> loss = softmax_cross_entropy(linear(h, W2, b2), labels)
"""
from __future__ import annotations

from typing import Any, Optional

import numpy as np

from . import engine, kernels
from . import primitives as P
from .batching import Batched, batch_by_loop, batch_size, batched_like, elementwise_batch, with_batch
from .tensor import Tensor, _data

_ACTIVATION_CODES = kernels._ACTIVATION_CODES

REDUCTIONS = ("mean", "sum")


def _on_arrays(*values: Any) -> bool:
    """True for a plain backward (the engine hands rules arrays), False under create_graph."""
    for v in values:
        if type(v) is not np.ndarray:
            return False
    return True


def _as_input(x: Any) -> Any:
    """Tensors stay Tensors (they may carry gradients); anything else becomes an ndarray."""
    return x if isinstance(x, Tensor) else np.asarray(x)


def _shape(x: Any) -> tuple:
    """The shape of a Tensor or an ndarray (without the Tensor.shape property's call)."""
    return x.data.shape if type(x) is Tensor else x.shape


def _check_float(op: str, x: Any, name: str = "logits") -> None:
    if x.dtype.kind != "f":
        raise TypeError(f"{op}: {name} must be floating point, got dtype {x.dtype}")


def _check_reduction(op: str, reduction: str) -> None:
    if reduction not in REDUCTIONS:
        raise ValueError(f"{op}: reduction must be one of {REDUCTIONS}, got {reduction!r}")


# ---------------------------------------------------------------- linear: activation(x @ W + b)
def _activation_slope(ans: Any, activation: Optional[str]) -> Any:
    """activation'(z) from a = activation(z): sigmoid a (1 - a), tanh 1 - a**2, relu [a > 0]."""
    if activation == "sigmoid":
        return ans * (1 - ans)
    if activation == "tanh":
        return 1 - ans * ans
    if activation == "relu":
        return (_data(ans) > 0).astype(_data(ans).dtype)
    return None


def _delta(g: Any, ans: Any, activation: Optional[str]) -> Any:
    """g * activation'(z): one fused pass on arrays, differentiable Tensor operations otherwise."""
    if _on_arrays(g, ans):
        return kernels.activation_backward(g, ans, activation)
    slope = _activation_slope(ans, activation)
    return g if slope is None else g * slope


def _tangent(dz: Any, ans: Any, activation: Optional[str]) -> Any:
    """activation'(z) * dz: the output tangent for a tangent dz of the pre-activation."""
    slope = _activation_slope(ans, activation)
    return dz if slope is None else slope * dz


def _linear_vjp_joint(g, ans, x, W, b, activation, wanted):
    """The plain backward for all inputs at once: delta = g * act'(z) once (with db in the same
    pass), then dx = delta W^T and dW = x^T delta through BLAS, each only if wanted."""
    return kernels.linear_backward_codes(g, ans, x, W, _ACTIVATION_CODES[activation], *wanted)


_linear = P.primitive(kernels.linear, "linear")
_linear.defvjp(lambda g, ans, x, W, b, activation: _delta(g, ans, activation) @ W.T,
               lambda g, ans, x, W, b, activation: x.T @ _delta(g, ans, activation),
               lambda g, ans, x, W, b, activation: _delta(g, ans, activation).sum(axis=0),
               text="delta = g * act'(z): delta @ W^T, x^T @ delta, sum_rows(delta)")
_linear.defvjp_joint(_linear_vjp_joint)
_linear.fresh_cotangents = True  # dx, dW, db are new arrays: the engine may sum into them
# ag.compile's buffer plan: the forward's product and the joint backward's products written
# into given arrays by the same BLAS calls (np.dot(..., out=)), then the same bias/activation
# and delta/db kernels: eager's bits
_linear.into = {
    "when": lambda x, W, b, activation: x.ndim == 2 and W.ndim == 2 and x.dtype == W.dtype,
    "forward": lambda x, W, b, out, activation:
        kernels.bias_activation(np.dot(x, W, out=out), b, activation, in_place=True),
    "joint": lambda g, ans, x, W, b, out, activation, wanted:
        kernels.linear_backward_codes(g, ans, x, W, _ACTIVATION_CODES[activation], *wanted, out=out),
}
_linear.defjvp(lambda t, ans, x, W, b, activation: _tangent(t @ W, ans, activation),
               lambda t, ans, x, W, b, activation: _tangent(x @ t, ans, activation),
               lambda t, ans, x, W, b, activation: _tangent(P.broadcast_to(t, shape=ans.shape),
                                                            ans, activation))


def linear(x: Any, W: Any, b: Any = None, activation: Optional[str] = None) -> Tensor:
    """activation(x @ W + b) as one primitive: x (batch, in), W (in, out), b (out,) or None,
    activation None, "sigmoid", "tanh" or "relu".

    The matmul goes through BLAS; the bias and the activation are one pass over its output,
    and the backward folds the activation's derivative into delta = g * act'(z) before
    dx = delta W^T, dW = x^T delta, db = sum(delta).

    Example:
        >>> h = linear(x, W, b, activation="relu")   # relu(x @ W + b)
    """
    if activation not in _ACTIVATION_CODES:
        raise ValueError(f"linear: activation must be one of {kernels.ACTIVATIONS}, got {activation!r}")
    x, W = _as_input(x), _as_input(W)
    x_shape, W_shape = _shape(x), _shape(W)
    if len(x_shape) != 2 or len(W_shape) != 2:
        raise ValueError(f"linear: x must be 2-D (batch, in) and W 2-D (in, out), got shapes "
                         f"{x_shape} and {W_shape}")
    if x_shape[1] != W_shape[0]:
        raise ValueError(f"linear: shapes {x_shape} and {W_shape} do not align: "
                         f"{x_shape[1]} != {W_shape[0]}")
    if b is not None:
        b = _as_input(b)
        if _shape(b) != (W_shape[1],):
            raise ValueError(f"linear: the bias has shape {_shape(b)}, expected ({W_shape[1]},) "
                             f"for W of shape {W_shape}")
    if not isinstance(x, Tensor) and not isinstance(W, Tensor) and not isinstance(b, Tensor):
        x = Tensor(x)
    return _linear(x, W, b, activation=activation)


# ---------------------------------------------------------------- the cross-entropies
# The forward's kernel computes the loss and, in the same pass, the derivative the backward
# needs (softmax - onehot, sigmoid - y). It is kept behind the loss: the forward returns the
# loss as a 0-d view of a buffer that holds [loss, derivative...], and the plain backward finds
# the derivative through `ans.base` instead of computing it again.
def _with_residual(compute, like: np.ndarray) -> np.ndarray:
    """Run compute(out) with `out` a slot of like's shape; return the 0-d loss it gives, as a
    view whose .base carries the slot."""
    buffer = np.empty(1 + like.size, dtype=like.dtype)
    buffer[0] = compute(buffer[1:].reshape(like.shape))
    return buffer[:1].reshape(())


def _residual(ans: np.ndarray, like: np.ndarray) -> Optional[np.ndarray]:
    base = ans.base
    if type(base) is not np.ndarray or base.size != 1 + like.size or base.dtype != like.dtype:
        return None
    return base[1:].reshape(like.shape)


def _scale(reduction: str, rows: int) -> float:
    return 1.0 / rows if reduction == "mean" and rows else 1.0


def _reduce(losses: np.ndarray, reduction: str) -> Any:
    """The reduction of per-row losses."""
    return _total(losses.sum(), losses.shape[0], reduction)


def _total(total: float, rows: int, reduction: str) -> float:
    """The reduction of per-row losses that sum to `total` over `rows` rows."""
    if reduction == "mean":
        return total / rows if rows else np.nan
    return total


def _onehot(labels: Any, like: Any) -> Any:
    """onehot[i, c] = (labels[i] == c), in like's dtype (batched inside vmap, like the labels)."""
    classes = np.arange(like.shape[-1])
    return (P.reshape(labels, shape=tuple(labels.shape) + (1,)) == classes).astype(like.dtype)


def _softmax_cross_entropy_forward(logits, labels, reduction):
    buffer = kernels.softmax_cross_entropy_loss(logits, labels,
                                                logits.shape[0] if reduction == "mean" else 0)
    if buffer is not None:   # one kernel call: [loss, softmax - onehot ...]
        return buffer[0, ...]   # the loss as a 0-d view whose .base is the buffer
    return _with_residual(
        lambda out: _reduce(kernels.softmax_cross_entropy(logits, labels, out=out)[0], reduction),
        logits)


def _softmax_cross_entropy_vjp(g, ans, logits, labels, reduction):
    scale = _scale(reduction, logits.shape[0])
    if _on_arrays(g, ans, logits):
        delta = _residual(ans, logits)
        if delta is None:
            delta = kernels.softmax_cross_entropy(logits, labels)[1]
        return delta * (g * scale)
    return g * (P.softmax(logits, axis=1) - _onehot(labels, logits)) * scale


_softmax_cross_entropy = P.primitive(_softmax_cross_entropy_forward, "softmax_cross_entropy")
_softmax_cross_entropy.defvjp(_softmax_cross_entropy_vjp, None,
                              text="g * (softmax(z) - onehot(labels)) / n")
_softmax_cross_entropy.defjvp(
    lambda t, ans, logits, labels, reduction:
        ((P.softmax(logits, axis=1) - _onehot(labels, logits)) * t).sum()
        * _scale(reduction, logits.shape[0]),
    None)


def softmax_cross_entropy(logits: Any, labels: Any, reduction: str = "mean") -> Tensor:
    """-log softmax(logits)[label], summed over the rows, divided by the number of rows for
    "mean" (not for "sum"). logits (batch, C); labels integers (batch,) in 0..C-1.

    One pass computes the loss and softmax - onehot for the backward; stable for logits of
    +-1000. A label outside 0..C-1 raises a ValueError naming it and C.
    """
    _check_reduction("softmax_cross_entropy", reduction)
    logits = _as_input(logits)
    if logits.ndim != 2:
        raise ValueError(f"softmax_cross_entropy: logits must be 2-D (batch, classes), "
                         f"got shape {logits.shape}")
    _check_float("softmax_cross_entropy", logits)
    if isinstance(labels, Batched):  # inside vmap: one row of labels per example
        kernels.check_labels("softmax_cross_entropy", labels.data.reshape(-1),
                             labels.data.size, logits.shape[1])
        if labels.shape != (logits.shape[0],):
            raise ValueError(f"softmax_cross_entropy: labels have shape {labels.shape} per example, "
                             f"expected ({logits.shape[0]},), one per row of the logits")
    else:
        labels = _data(labels)
        # intp labels, one per row, go straight to the forward, whose kernel checks their range
        # in its own pass (and its general path calls check_labels): the same error either way
        if not (type(labels) is np.ndarray and labels.dtype == np.intp
                and labels.shape == logits.shape[:1] and labels.flags.c_contiguous):
            labels = kernels.check_labels("softmax_cross_entropy", labels, *logits.shape)
    return _softmax_cross_entropy(logits if isinstance(logits, Tensor) else Tensor(logits),
                                  labels, reduction=reduction)


def _bce_with_logits_forward(logits, targets, reduction):
    buffer = kernels.bce_with_logits_loss(logits, targets, logits.shape[0] if reduction == "mean" else 0)
    if buffer is not None:   # one kernel call: [loss, s - y ...]
        return buffer[0, ...]   # the loss as a 0-d view whose .base is the buffer
    return _with_residual(
        lambda out: _total(kernels.bce_with_logits_total(logits, targets, out=out)[0],
                           logits.shape[0], reduction),
        logits)


def _bce_with_logits_vjp_logits(g, ans, logits, targets, reduction):
    scale = _scale(reduction, logits.shape[0])
    if _on_arrays(g, ans, logits, targets):
        delta = _residual(ans, logits)
        if delta is None:
            delta = kernels.bce_with_logits(logits, targets)[1]
        return delta * (g * scale)
    return g * (P.sigmoid(logits) - targets) * scale


_bce_with_logits = P.primitive(_bce_with_logits_forward, "bce_with_logits")
_bce_with_logits.defvjp(
    _bce_with_logits_vjp_logits,
    lambda g, ans, logits, targets, reduction: -g * logits * _scale(reduction, logits.shape[0]),
    text="g * (sigmoid(z) - y) / n, -g * z / n")
_bce_with_logits.defjvp(
    lambda t, ans, logits, targets, reduction:
        ((P.sigmoid(logits) - targets) * t).sum() * _scale(reduction, logits.shape[0]),
    lambda t, ans, logits, targets, reduction:
        (-logits * t).sum() * _scale(reduction, logits.shape[0]))


def bce_with_logits(logits: Any, targets: Any, reduction: str = "mean") -> Tensor:
    """Binary cross-entropy of sigmoid(logits) against targets in [0, 1], from the logits:
    -sum[y log s + (1 - y) log(1 - s)], s = sigmoid(logits), summed over the output units and
    the rows, divided by the number of rows (samples) for "mean". logits (batch,) or
    (batch, units), targets of the same shape. Stable for logits of +-1000.
    """
    _check_reduction("bce_with_logits", reduction)
    logits, targets = _as_input(logits), _as_input(targets)
    if logits.ndim not in (1, 2):
        raise ValueError(f"bce_with_logits: logits must be (batch,) or (batch, units), "
                         f"got shape {logits.shape}")
    if targets.shape != logits.shape:
        raise ValueError(f"bce_with_logits: targets have shape {targets.shape}, the logits "
                         f"{logits.shape}; they must be equal")
    _check_float("bce_with_logits", logits)
    if not isinstance(targets, Tensor) and targets.dtype != logits.dtype:
        targets = targets.astype(logits.dtype)
    if not isinstance(logits, Tensor) and not isinstance(targets, Tensor):
        logits = Tensor(logits)
    return _bce_with_logits(logits, targets, reduction=reduction)


# ---------------------------------------------------------------- dropout
def _dropout_rule(g, ans, x, u, p):
    if _on_arrays(g):
        return kernels.dropout(g, u, p)
    return g * kernels.dropout(np.ones_like(u), u, p)


_dropout = P.primitive(kernels.dropout, "dropout")
_dropout.defvjp(_dropout_rule, None, text="g / (1 - p) where kept, 0 where dropped")
_dropout.defjvp(_dropout_rule, None)
# one element, for ag.compile's fused kernels: kernels.dropout's arithmetic (u and p compared
# in the dtype, the kept scaled by 1 / (1 - p) rounded to the dtype); y is u
_dropout.scalar = {"forward": "x * scale if y >= p else 0",
                   "vjps": ("g * scale if y >= p else 0", None),
                   "constants": {"p": "p", "scale": "1 / (1 - p)"}}


def dropout(x: Any, p: float, rng: np.random.Generator) -> Tensor:
    """Inverted dropout: each element kept with probability 1 - p and scaled by 1 / (1 - p),
    the others set to 0, so the expected value is unchanged. The mask comes from one 64-bit
    key drawn from `rng` (`_uniform`): the same seed gives the same mask. p = 0 returns x itself.
    """
    if not isinstance(p, (int, float, np.floating, np.integer)) or not 0 <= p <= 1:
        raise ValueError(f"dropout: p must be a probability in [0, 1], got {p!r}")
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"dropout: rng must be a numpy.random.Generator "
                        f"(np.random.default_rng(seed)), got {type(rng).__name__}")
    x = x if isinstance(x, Tensor) else Tensor(x)
    _check_float("dropout", x, "x")
    if p == 0:
        return x
    if isinstance(x, Batched):  # inside vmap: one mask per example, the numbers a loop draws in turn
        shape = x.data.shape    # the batch axes of every nested vmap first, outermost first:
        examples = int(np.prod(shape[:len(shape) - x.ndim], dtype=np.int64))   # one key each
        return _dropout(x, batched_like(x, _uniform(rng, shape, x.dtype, examples)), p=float(p))
    return _dropout(x, _uniform(rng, x.shape, x.dtype), p=float(p))


def _draw_uniform(rng: np.random.Generator, shape: tuple, dtype: np.dtype,
                  examples: int = 1) -> np.ndarray:
    """Uniform numbers on [0, 1) of `shape` in dtype: one 64-bit key per example (equal blocks
    along the first axis) drawn from `rng`, each block filled by `kernels.uniform`, a hash of
    the key and the position (about 0.25 ns a number, against 2.5-4 ns for rng.random), so a
    loop over the examples draws the same numbers as one call."""
    keys = rng.bit_generator.random_raw(examples)
    u = kernels.uniform(shape, dtype if dtype.char in "fd" else np.float64, keys)
    return u.astype(dtype, copy=False)


_draw_uniform.draw = True   # for ag.compile: it changes no array, only the generator's state
_uniform = engine.replayed(_draw_uniform)   # inside ag.compile: a fresh mask at every replay


# ---------------------------------------------------------------- the L2 penalty
def _half_lambda_sum_of_squares(*weights: np.ndarray, lam: float) -> np.ndarray:
    total = 0.0
    dtype = weights[0].dtype if weights else np.float64
    for w in weights:
        total += kernels.sum_of_squares(w)   # one pass in float64, no temporary the size of w
        if w.dtype != dtype:
            dtype = np.result_type(dtype, w)
    return np.asarray(lam / 2 * total, dtype=dtype)


# half_lambda_sum_of_squares(*weights, lam=lam) = lam/2 * sum_l ||W_l||^2 as one primitive over
# all the weights (nn.l2_penalty): its gradient for W_l is lam * W_l in one pass.
# `(w * w).sum()` per weight would make three temporaries the size of w forward and backward,
# and one graph node per weight plus the adds between them.
half_lambda_sum_of_squares = P.primitive(_half_lambda_sum_of_squares, "l2_penalty", variadic=True)
half_lambda_sum_of_squares.defvjp(lambda g, ans, *ws, lam, argnum: (g * lam) * ws[argnum],
                                  text="lam * g * W")
half_lambda_sum_of_squares.fresh_cotangents = True  # g * lam * W is a new array per weight
# in a plain backward, lam * g * W goes straight into the weight's cotangent A^T delta: one
# pass, no temporary the size of W
half_lambda_sum_of_squares.defvjp_into(
    lambda total, g, ans, *ws, lam, argnum: kernels.add_scaled(total, float(g * lam), ws[argnum]))
# the same as one element, for ag.compile's fused kernels: t is the cotangent added into, w the
# weight; g * lam is rounded to the dtype first (NumPy's g * lam), as add_scaled's alpha
half_lambda_sum_of_squares.scalar = {"into": "t + g * lam * w", "constants": {"lam": "lam"}}
half_lambda_sum_of_squares.defjvp(lambda t, ans, *ws, lam, argnum: (ws[argnum] * t).sum() * lam)


PRIMITIVE_NAMES = tuple(p.name for p in (_linear, _softmax_cross_entropy, _bce_with_logits, _dropout,
                                         half_lambda_sum_of_squares))


# ---------------------------------------------------------------- batching rules (vmap)
def _batch_linear(args, dims, activation):
    """The examples' rows stacked into one product (W and b unbatched); a loop otherwise."""
    x, W, b = args
    if dims[1] is not None or dims[2] is not None:
        return batch_by_loop(_linear)(args, dims, activation=activation)
    n, rows, width = x.shape
    out = _linear(P.reshape(x, shape=(n * rows, width)), W, b, activation=activation)
    return P.reshape(out, shape=(n, rows, W.shape[1])), 0


def _batch_softmax_cross_entropy(args, dims, reduction):
    """Each example's loss: -sum over its rows of log_softmax(z)[label], / rows for "mean"."""
    n = batch_size(args, dims)
    logits, labels = (with_batch(a, d, n) for a, d in zip(args, dims))
    picked = P.multiply(P.log_softmax(logits, axis=2), _onehot(labels, logits))
    return P.multiply(P.sum(picked, axis=(1, 2), keepdims=False),
                      -_scale(reduction, logits.shape[1])), 0


def _batch_bce_with_logits(args, dims, reduction):
    """Each example's loss: sum of softplus(z) - y z over its elements, / rows for "mean"."""
    n = batch_size(args, dims)
    logits, targets = (with_batch(a, d, n) for a, d in zip(args, dims))
    each = P.subtract(P.softplus(logits), P.multiply(logits, targets))
    total = P.sum(each, axis=tuple(range(1, len(logits.shape))), keepdims=False)
    return P.multiply(total, _scale(reduction, logits.shape[1])), 0


def _batch_l2_penalty(args, dims, lam):
    """lam / 2 * sum of squares, per example (unbatched weights add the same to each)."""
    total = None
    for w, d in zip(args, dims):
        axes = tuple(range(1 if d is not None else 0, len(w.shape)))
        term = P.sum(P.multiply(w, w), axis=axes, keepdims=False)
        total = term if total is None else P.add(total, term)
    return P.multiply(total, lam / 2), 0


_linear.defbatch(_batch_linear)
_softmax_cross_entropy.defbatch(_batch_softmax_cross_entropy)
_bce_with_logits.defbatch(_batch_bce_with_logits)
_dropout.defbatch(elementwise_batch(_dropout))
half_lambda_sum_of_squares.defbatch(_batch_l2_penalty)
