"""THE table: every primitive once, its forward and its derivative rules side by side.

A rule sees the cotangent `g` (reverse mode) or the tangent `t` (forward mode), the
primitive's output `ans`, its inputs and its keyword parameters:

    vjp rule for input i:  (g, ans, *inputs, **params) -> cotangent of input i
    jvp rule for input i:  (t, ans, *inputs, **params) -> that input's share of the output tangent

Rules use only operations that NumPy arrays and Tensors share (`*`, `.sum(axis=...)`, `.T`)
or primitives from this table, which run plain NumPy when given arrays and record a graph
when given Tensors. So one rule serves a fast first-order backward (arrays) and
grad-of-grad / forward-over-reverse (Tensors). Broadcasting is undone by the engine's
`unbroadcast`, never here. Variadic primitives (concatenate) get `argnum=` in their rules.

The rules in this file are trusted: the table-driven tests check each one against numerical
gradients. Rules declared anywhere else (a user's own primitives) are wrapped so that a rule that
returns None, a complex array or a shape the engine cannot sum back is reported where it happens,
naming the primitive, the argument and both shapes.
"""
from __future__ import annotations

import functools
from typing import Any, Callable, Dict, Optional

import numpy as np

from . import engine, kernels
from .tensor import Tensor

PRIMITIVES: Dict[str, "Primitive"] = {}
_check_rules = False  # set at the end of this file: rules declared from then on are checked


class Primitive:
    """An operation with a forward on arrays and derivative rules (one per input).

    Calling it on Tensors records it in the graph; calling it on arrays just runs the forward.
    Users add their own with `primitive(...)`, `.defvjp(...)` and `.defjvp(...)`.
    """

    __slots__ = ("name", "forward", "vjps", "jvps", "vjp_joint", "vjp_into", "variadic",
                 "rule_text", "fresh_cotangents", "__dict__")

    def __init__(self, name: str, forward: Callable, variadic: bool = False,
                 register: bool = True) -> None:
        self.name = name
        self.forward = forward
        self.vjps: tuple = ()
        self.jvps: tuple = ()
        self.vjp_joint: Optional[Callable] = None
        self.vjp_into: Optional[Callable] = None
        # True when every cotangent its VJP rules return (on arrays) is a new array, distinct
        # for each input: the engine may then accumulate into it in place
        self.fresh_cotangents = False
        self.variadic = variadic
        self.rule_text: Optional[str] = None  # the local rule in words, for explain()
        if register:
            if name in PRIMITIVES:
                raise ValueError(f"primitive: a primitive named {name!r} is already in the table")
            PRIMITIVES[name] = self

    def defvjp(self, *rules: Optional[Callable], text: Optional[str] = None) -> "Primitive":
        """Set the VJP rule of each input, in order (None for an input with no gradient).

        A rule returns the input's cotangent: an array (a Tensor under create_graph=True) of
        the input's shape, or of a shape broadcasting relates to it (the output's shape, summed
        back over the broadcast axes; or fewer elements, stretched).
        """
        if _check_rules:
            rules = tuple(None if rule is None else _checked_vjp(self, i, rule)
                          for i, rule in enumerate(rules))
        self.vjps = rules
        if text is not None:
            self.rule_text = text
        return self

    def defvjp_joint(self, rule: Callable) -> "Primitive":
        """An optional faster first-order backward for all inputs at once:
        `rule(g, ans, *inputs, wanted=(bool per input), **params)` on arrays returns one
        cotangent per input (None where not wanted). The per-input rules from `defvjp` stay
        the definition: they run under create_graph=True and in forward-over-reverse, and
        tests check the joint rule against them."""
        self.vjp_joint = rule
        return self

    def defvjp_into(self, rule: Callable) -> "Primitive":
        """An optional in-place form of the VJP rules, for cotangents that end in a leaf:
        `rule(total, g, ans, *inputs, argnum=i, **params)` adds input i's cotangent into the
        array `total` (the leaf's shape and dtype, owned by the sweep) instead of returning a
        new array. A plain backward then adds, e.g., the L2 penalty's lam * W straight into
        x^T delta without a temporary the size of W. The `defvjp` rules stay the definition."""
        self.vjp_into = rule
        return self

    def defjvp(self, *rules: Optional[Callable]) -> "Primitive":
        """Set the JVP rule of each input, in order (None for an input with no tangent).

        A rule returns that input's share of the output's tangent: an array or Tensor of the
        output's shape (or of one that broadcasts to it).
        """
        if _check_rules:
            rules = tuple(None if rule is None else _checked_jvp(self, i, rule)
                          for i, rule in enumerate(rules))
        self.jvps = rules
        return self

    def __call__(self, *args: Any, **params: Any) -> Any:
        for a in args:
            if isinstance(a, Tensor):
                return engine.apply(self, args, params)
        out = self.forward(*args, **params)
        return out if type(out) is np.ndarray else np.asarray(out)

    def __repr__(self) -> str:
        return f"<primitive {self.name}>"


def primitive(forward: Callable, name: Optional[str] = None, variadic: bool = False) -> Primitive:
    """Declare a new primitive from a forward function on NumPy arrays.

    Example (a user's own op, usable in both modes and under grad-of-grad):
        >>> cube = primitive(lambda x: x ** 3, name="cube")
        >>> cube.defvjp(lambda g, ans, x: g * 3 * x ** 2)
        >>> cube.defjvp(lambda t, ans, x: t * 3 * x ** 2)
    """
    return Primitive(name or forward.__name__, forward, variadic=variadic)


def _checked_vjp(prim: Primitive, i: int, rule: Callable) -> Callable:
    """`rule` (input i's VJP rule, or every input's for a variadic primitive), with its result
    checked against the input's shape."""
    @functools.wraps(rule)
    def checked(g: Any, ans: Any, *inputs: Any, **params: Any) -> Any:
        argnum = params["argnum"] if prim.variadic else i
        cotangent = rule(g, ans, *inputs, **params)
        expected = np.shape(inputs[argnum])
        _check_result(prim, "backward", "VJP", argnum, cotangent, expected)
        shape = cotangent.shape
        if shape != expected and not _sums_or_stretches_to(shape, expected):
            raise ValueError(
                f"backward: the VJP rule of '{prim.name}' for argument {argnum} returned shape "
                f"{shape}, but the input has shape {expected}; a cotangent must have the input's "
                "shape, or a shape that broadcasting relates to it (the input's shape broadcast "
                "up, which is summed back, or fewer elements, which are stretched)")
        return cotangent
    return checked


def _checked_jvp(prim: Primitive, i: int, rule: Callable) -> Callable:
    """`rule` (input i's JVP rule, or every input's for a variadic primitive), with its result
    checked against the output's shape."""
    @functools.wraps(rule)
    def checked(t: Any, ans: Any, *inputs: Any, **params: Any) -> Any:
        argnum = params["argnum"] if prim.variadic else i
        tangent = rule(t, ans, *inputs, **params)
        expected = np.shape(ans)
        _check_result(prim, "jvp", "JVP", argnum, tangent, expected)
        shape = tangent.shape
        if shape != expected and not _stretches_to(shape, expected):
            raise ValueError(
                f"jvp: the JVP rule of '{prim.name}' for argument {argnum} returned shape {shape}, "
                f"but the output has shape {expected}; a tangent must have the output's shape (or "
                "fewer elements, which are stretched)")
        return tangent
    return checked


def _check_result(prim: Primitive, where: str, kind: str, argnum: int, value: Any,
                  expected: tuple) -> None:
    """Refuse what no shape check can judge: a non-array (None, a list) or non-real numbers."""
    if not isinstance(value, (np.ndarray, np.generic, Tensor)):
        raise TypeError(f"{where}: the {kind} rule of '{prim.name}' for argument {argnum} returned "
                        f"{type(value).__name__}, not an array; expected an array of shape {expected}")
    if value.dtype.kind not in "biuf":
        raise TypeError(f"{where}: the {kind} rule of '{prim.name}' for argument {argnum} returned an "
                        f"array of dtype {value.dtype} (shape {value.shape}); expected real numbers, "
                        f"shape {expected}")


def _sums_or_stretches_to(shape: tuple, target: tuple) -> bool:
    """Whether broadcasting relates `shape` to `target` in one direction only: target broadcasts
    up to shape (the engine sums back), or shape up to target (stretched). A shape that would
    need both, e.g. (3, 1) for (3,), is how a wrong rule looks: unbroadcast would silently turn
    it into a sum of copies."""
    try:
        full = np.broadcast_shapes(shape, target)
    except ValueError:
        return False
    return full == shape or full == target


def _stretches_to(shape: tuple, target: tuple) -> bool:
    """Whether `shape` broadcasts up to `target`."""
    try:
        return np.broadcast_shapes(shape, target) == target
    except ValueError:
        return False


def _data(x: Any) -> Any:
    return x.data if isinstance(x, Tensor) else x


def _reduced_shape(shape: tuple, axis: Optional[tuple]) -> tuple:
    """The shape of a reduction over `axis` with keepdims=True."""
    if axis is None:
        return (1,) * len(shape)
    return tuple(1 if i in axis else n for i, n in enumerate(shape))


def _expand(g: Any, x: Any, axis: Optional[tuple], keepdims: bool) -> Any:
    """Broadcast a reduction's cotangent back over the reduced axes of x."""
    kshape = _reduced_shape(x.shape, axis)
    if g.shape != kshape:
        g = g.reshape(kshape)
    return broadcast_to(g, shape=x.shape)


def _count(shape: tuple, axis: Optional[tuple]) -> int:
    n = 1
    for i, s in enumerate(shape):
        if axis is None or i in axis:
            n *= s
    return n


# ---------------------------------------------------------------- elementwise, binary
add = primitive(np.add, "add")
add.defvjp(lambda g, ans, x, y: g,
           lambda g, ans, x, y: g, text="g, g")
add.defjvp(lambda t, ans, x, y: t,
           lambda t, ans, x, y: t)

subtract = primitive(np.subtract, "subtract")
subtract.defvjp(lambda g, ans, x, y: g,
                lambda g, ans, x, y: -g, text="g, -g")
subtract.defjvp(lambda t, ans, x, y: t,
                lambda t, ans, x, y: -t)

multiply = primitive(np.multiply, "multiply")
multiply.defvjp(lambda g, ans, x, y: g * y,
                lambda g, ans, x, y: g * x, text="g * y, g * x")
multiply.fresh_cotangents = True
multiply.defjvp(lambda t, ans, x, y: t * y,
                lambda t, ans, x, y: x * t)

divide = primitive(np.true_divide, "divide")
divide.defvjp(lambda g, ans, x, y: g / y,
              lambda g, ans, x, y: -g * ans / y, text="g / y, -g * x / y**2")
divide.defjvp(lambda t, ans, x, y: t / y,
              lambda t, ans, x, y: -t * ans / y)


def _log_base(x: Any) -> Any:
    """log(x) where x > 0, 0 where x == 0 (d/dy x**y = x**y log x, taken as 0 at x = 0)."""
    x_data = _data(x)
    return log(where(x_data == 0, 1.0, x))


power = primitive(np.power, "power")  # x ** y, both may be tensors
power.defvjp(lambda g, ans, x, y: g * y * x ** (y - 1),
             lambda g, ans, x, y: g * ans * _log_base(x), text="g * y * x**(y-1), g * x**y * log(x)")
power.defjvp(lambda t, ans, x, y: t * y * x ** (y - 1),
             lambda t, ans, x, y: t * ans * _log_base(x))


def _power_scalar_derivative(x: Any, p: float) -> Any:
    """d/dx x**p = p x**(p-1) (and 0 for p == 0, even at x == 0)."""
    if p == 0:
        return x * 0
    if p == 1:
        return x * 0 + 1
    return p * power_scalar(x, p=p - 1)


power_scalar = primitive(lambda x, p: np.power(x, p), "power_scalar")  # x ** p, p a Python number
power_scalar.defvjp(lambda g, ans, x, p: g * _power_scalar_derivative(x, p), text="g * p * x**(p-1)")
power_scalar.defjvp(lambda t, ans, x, p: t * _power_scalar_derivative(x, p))


def _tie_weight(x: Any, y: Any, dtype: np.dtype) -> np.ndarray:
    """1 where x wins, 1/2 on a tie, 0 where y wins: the share of the gradient x receives."""
    x, y = _data(x), _data(y)
    weight = np.asarray(x > y, dtype=dtype)
    weight[np.broadcast_to(x == y, weight.shape)] = 0.5
    return weight


maximum = primitive(np.maximum, "maximum")
maximum.defvjp(lambda g, ans, x, y: g * _tie_weight(x, y, ans.dtype),
               lambda g, ans, x, y: g * _tie_weight(y, x, ans.dtype), text="g * [x > y], g * [y > x]")
maximum.defjvp(lambda t, ans, x, y: t * _tie_weight(x, y, ans.dtype),
               lambda t, ans, x, y: t * _tie_weight(y, x, ans.dtype))

minimum = primitive(np.minimum, "minimum")
minimum.defvjp(lambda g, ans, x, y: g * _tie_weight(y, x, ans.dtype),
               lambda g, ans, x, y: g * _tie_weight(x, y, ans.dtype), text="g * [x < y], g * [y < x]")
minimum.defjvp(lambda t, ans, x, y: t * _tie_weight(y, x, ans.dtype),
               lambda t, ans, x, y: t * _tie_weight(x, y, ans.dtype))

where = primitive(np.where, "where")  # where(condition, x, y); the condition carries no gradient
where.defvjp(None,
             lambda g, ans, c, x, y: where(c, g, 0.0),
             lambda g, ans, c, x, y: where(c, 0.0, g), text="where(c, g, 0), where(c, 0, g)")
where.defjvp(None,
             lambda t, ans, c, x, y: where(c, t, 0.0),
             lambda t, ans, c, x, y: where(c, 0.0, t))

# ---------------------------------------------------------------- elementwise, unary
negative = primitive(np.negative, "negative")
negative.defvjp(lambda g, ans, x: -g, text="-g")
negative.defjvp(lambda t, ans, x: -t)

absolute = primitive(np.abs, "absolute")
absolute.defvjp(lambda g, ans, x: g * np.sign(_data(x)), text="g * sign(x)")
absolute.defjvp(lambda t, ans, x: t * np.sign(_data(x)))

sqrt = primitive(np.sqrt, "sqrt")
sqrt.defvjp(lambda g, ans, x: g * 0.5 / ans, text="g / (2 sqrt(x))")
sqrt.defjvp(lambda t, ans, x: t * 0.5 / ans)

exp = primitive(np.exp, "exp")
exp.defvjp(lambda g, ans, x: g * ans, text="g * exp(x)")
exp.defjvp(lambda t, ans, x: t * ans)

log = primitive(np.log, "log")
log.defvjp(lambda g, ans, x: g / x, text="g / x")
log.defjvp(lambda t, ans, x: t / x)

log1p = primitive(np.log1p, "log1p")
log1p.defvjp(lambda g, ans, x: g / (1 + x), text="g / (1 + x)")
log1p.defjvp(lambda t, ans, x: t / (1 + x))

expm1 = primitive(np.expm1, "expm1")
expm1.defvjp(lambda g, ans, x: g * (ans + 1), text="g * exp(x)")
expm1.defjvp(lambda t, ans, x: t * (ans + 1))

sin = primitive(np.sin, "sin")
sin.defvjp(lambda g, ans, x: g * cos(x), text="g * cos(x)")
sin.defjvp(lambda t, ans, x: t * cos(x))

cos = primitive(np.cos, "cos")
cos.defvjp(lambda g, ans, x: -g * sin(x), text="-g * sin(x)")
cos.defjvp(lambda t, ans, x: -t * sin(x))


def _one_pass(kernel: Callable, rule: Callable) -> Callable:
    """A VJP rule: `kernel` (one fused pass, autograd_lite/kernels) for a plain backward on
    arrays, the readable `rule` on Tensors (create_graph=True, forward mode)."""
    def vjp(g: Any, ans: Any, x: Any) -> Any:
        if type(g) is np.ndarray and type(ans) is np.ndarray:
            return kernel(g, ans, x)
        return rule(g, ans, x)
    return vjp


# the forwards are kernels.tanh / sigmoid / relu: Numba loops on large arrays, NumPy otherwise
tanh = primitive(kernels.tanh, "tanh")
tanh.defvjp(_one_pass(lambda g, ans, x: kernels.tanh_backward(g, ans),
                      lambda g, ans, x: g * (1 - ans * ans)), text="g * (1 - a**2)")
tanh.defjvp(lambda t, ans, x: t * (1 - ans * ans))

sigmoid = primitive(kernels.sigmoid, "sigmoid")  # 1 / (1 + exp(-x)), no overflow for any x
sigmoid.defvjp(_one_pass(lambda g, ans, x: kernels.sigmoid_backward(g, ans),
                         lambda g, ans, x: g * ans * (1 - ans)), text="g * a * (1 - a)")
sigmoid.defjvp(lambda t, ans, x: t * ans * (1 - ans))

relu = primitive(kernels.relu, "relu")
relu.defvjp(_one_pass(lambda g, ans, x: kernels.relu_backward(g, x),
                      lambda g, ans, x: g * (_data(x) > 0)), text="g * [x > 0]")
relu.defjvp(lambda t, ans, x: t * (_data(x) > 0))

softplus = primitive(lambda x: np.logaddexp(0, x), "softplus")  # log(1 + exp(x)), stable
softplus.defvjp(lambda g, ans, x: g * sigmoid(x), text="g * sigmoid(x)")
softplus.defjvp(lambda t, ans, x: t * sigmoid(x))


def _clip_mask(x: Any, lo: Any, hi: Any) -> np.ndarray:
    x = _data(x)
    inside = np.ones(x.shape, dtype=bool)
    if lo is not None:
        inside &= x >= lo
    if hi is not None:
        inside &= x <= hi
    return inside


clip = primitive(lambda x, lo, hi: np.clip(x, lo, hi), "clip")
clip.defvjp(lambda g, ans, x, lo, hi: g * _clip_mask(x, lo, hi), text="g * [lo <= x <= hi]")
clip.defjvp(lambda t, ans, x, lo, hi: t * _clip_mask(x, lo, hi))

astype = primitive(lambda x, dtype: x.astype(dtype), "astype")
astype.defvjp(lambda g, ans, x, dtype: g.astype(x.dtype), text="g in the input's dtype")
astype.defjvp(lambda t, ans, x, dtype: t.astype(dtype))

# ---------------------------------------------------------------- reductions
# `axis` is None (all axes) or a tuple of non-negative ints, normalized by functions.py.
# np.add.reduce is np.sum without its Python-level wrapper (half the cost on small arrays)
sum = primitive(lambda x, axis, keepdims: np.add.reduce(x, axis=axis, keepdims=keepdims), "sum")
sum.defvjp(lambda g, ans, x, axis, keepdims: _expand(g, x, axis, keepdims),
           text="g broadcast back over the summed axes")
sum.defjvp(lambda t, ans, x, axis, keepdims: t.sum(axis=axis, keepdims=keepdims))

mean = primitive(lambda x, axis, keepdims: np.mean(x, axis=axis, keepdims=keepdims), "mean")
mean.defvjp(lambda g, ans, x, axis, keepdims: _expand(g, x, axis, keepdims) / _count(x.shape, axis),
            text="g / n broadcast back over the averaged axes")
mean.defjvp(lambda t, ans, x, axis, keepdims: t.mean(axis=axis, keepdims=keepdims))


def _argmax_share(ans: Any, x: Any, axis: Optional[tuple], keepdims: bool) -> np.ndarray:
    """1/k on each of the k elements that attain the max (or min), 0 elsewhere."""
    x_data, ans_data = _data(x), _data(ans)
    hit = x_data == ans_data.reshape(_reduced_shape(x_data.shape, axis))
    count = hit.sum(axis=axis, keepdims=True)
    return (hit / count).astype(x_data.dtype)


def _reduce_extreme(fn: Callable) -> Callable:
    return lambda x, axis, keepdims: fn(x, axis=axis, keepdims=keepdims)


max = primitive(_reduce_extreme(np.max), "max")
max.defvjp(lambda g, ans, x, axis, keepdims: _expand(g, x, axis, keepdims) * _argmax_share(ans, x, axis, keepdims),
           text="g to the maximal element(s), split evenly between ties")
max.defjvp(lambda t, ans, x, axis, keepdims: (t * _argmax_share(ans, x, axis, keepdims)).sum(axis=axis, keepdims=keepdims))

min = primitive(_reduce_extreme(np.min), "min")
min.defvjp(lambda g, ans, x, axis, keepdims: _expand(g, x, axis, keepdims) * _argmax_share(ans, x, axis, keepdims),
           text="g to the minimal element(s), split evenly between ties")
min.defjvp(lambda t, ans, x, axis, keepdims: (t * _argmax_share(ans, x, axis, keepdims)).sum(axis=axis, keepdims=keepdims))


def _logsumexp(x: np.ndarray, axis: Optional[tuple], keepdims: bool) -> np.ndarray:
    """log(sum(exp(x))) = m + log(sum(exp(x - m))), m = max(x): no overflow at +-1000."""
    if x.size == 0:
        return np.log(np.sum(np.exp(x), axis=axis, keepdims=keepdims))
    m = np.max(x, axis=axis, keepdims=True)
    m = np.where(np.isfinite(m), m, 0)
    out = np.log(np.sum(np.exp(x - m), axis=axis, keepdims=True)) + m
    if keepdims:
        return out
    return out.reshape([n for i, n in enumerate(x.shape) if axis is not None and i not in axis])


def _softmax_of(x: Any, ans: Any, axis: Optional[tuple]) -> Any:
    """exp(x - logsumexp(x)), with logsumexp already computed as `ans`."""
    return exp(x - ans.reshape(_reduced_shape(x.shape, axis)))


logsumexp = primitive(_logsumexp, "logsumexp")
logsumexp.defvjp(lambda g, ans, x, axis, keepdims: _expand(g, x, axis, keepdims) * _softmax_of(x, ans, axis),
                 text="g * softmax(x)")
logsumexp.defjvp(lambda t, ans, x, axis, keepdims: (t * _softmax_of(x, ans, axis)).sum(axis=axis, keepdims=keepdims))


def _centered(x: Any, axis: Optional[tuple]) -> Any:
    return x - x.mean(axis=axis, keepdims=True)


var = primitive(lambda x, axis, keepdims, ddof: np.var(x, axis=axis, keepdims=keepdims, ddof=ddof), "var")
var.defvjp(lambda g, ans, x, axis, keepdims, ddof:
           _expand(g, x, axis, keepdims) * _centered(x, axis) * (2.0 / (_count(x.shape, axis) - ddof)),
           text="g * 2 (x - mean) / (n - ddof)")
var.defjvp(lambda t, ans, x, axis, keepdims, ddof:
           (t * _centered(x, axis)).sum(axis=axis, keepdims=keepdims) * (2.0 / (_count(x.shape, axis) - ddof)))


def _softmax(x: np.ndarray, axis: int) -> np.ndarray:
    e = np.exp(x - np.max(x, axis=axis, keepdims=True))
    return e / np.sum(e, axis=axis, keepdims=True)


def _log_softmax(x: np.ndarray, axis: int) -> np.ndarray:
    shifted = x - np.max(x, axis=axis, keepdims=True)
    return shifted - np.log(np.sum(np.exp(shifted), axis=axis, keepdims=True))


softmax = primitive(_softmax, "softmax")  # along one axis
softmax.defvjp(lambda g, ans, x, axis: ans * (g - (g * ans).sum(axis=axis, keepdims=True)),
               text="a * (g - sum(g * a))")
softmax.defjvp(lambda t, ans, x, axis: ans * (t - (t * ans).sum(axis=axis, keepdims=True)))

log_softmax = primitive(_log_softmax, "log_softmax")
log_softmax.defvjp(lambda g, ans, x, axis: g - exp(ans) * g.sum(axis=axis, keepdims=True),
                   text="g - softmax(x) * sum(g)")
log_softmax.defjvp(lambda t, ans, x, axis: t - (exp(ans) * t).sum(axis=axis, keepdims=True))

# ---------------------------------------------------------------- shape
reshape = primitive(lambda x, shape: np.reshape(x, shape), "reshape")
reshape.defvjp(lambda g, ans, x, shape: g.reshape(x.shape), text="g reshaped to the input's shape")
reshape.defjvp(lambda t, ans, x, shape: t.reshape(ans.shape))

transpose = primitive(lambda x, axes: np.transpose(x, axes), "transpose")  # axes: a full permutation
transpose.defvjp(lambda g, ans, x, axes: transpose(g, axes=tuple(np.argsort(axes))),
                 text="g with the axes permuted back")
transpose.defjvp(lambda t, ans, x, axes: transpose(t, axes=axes))

def _broadcast_to(x: np.ndarray, shape: tuple) -> np.ndarray:
    """x repeated to `shape`, as an array of its own (np.broadcast_to's read-only view is slower
    to make for small arrays, and would hand users gradients they cannot write to)."""
    out = np.empty(shape, dtype=np.result_type(x))
    out[...] = x
    return out


broadcast_to = primitive(_broadcast_to, "broadcast_to")
broadcast_to.defvjp(lambda g, ans, x, shape: g, text="g summed over the broadcast axes")
broadcast_to.defjvp(lambda t, ans, x, shape: broadcast_to(t, shape=shape))


def _concatenate(*xs: np.ndarray, axis: int) -> np.ndarray:
    return np.concatenate(xs, axis=axis)


def _concat_slice(g: Any, xs: tuple, axis: int, argnum: int) -> Any:
    start = 0
    for x in xs[:argnum]:
        start += x.shape[axis]
    index = (slice(None),) * axis + (slice(start, start + xs[argnum].shape[axis]),)
    return getitem(g, index=index)


def _concat_slices(g: np.ndarray, ans: np.ndarray, *xs: np.ndarray, axis: int,
                   wanted: tuple) -> list:
    """Every wanted input's slice of g in one call, from offsets summed once: the per-input rule
    finds its offset by walking the inputs before it, which is quadratic in their number (a
    stack of 32,000 scalars took 100 s to backpropagate)."""
    lead = (slice(None),) * axis
    out = []
    start = 0
    for x, want in zip(xs, wanted):
        stop = start + x.shape[axis]
        out.append(g[lead + (slice(start, stop),)] if want else None)
        start = stop
    return out


def _concat_tangent(t: Any, xs: tuple, axis: int, argnum: int) -> Any:
    parts = [t if i == argnum else np.zeros(x.shape, dtype=_data(t).dtype) for i, x in enumerate(xs)]
    return concatenate(*parts, axis=axis)


concatenate = primitive(_concatenate, "concatenate", variadic=True)
concatenate.defvjp(lambda g, ans, *xs, axis, argnum: _concat_slice(g, xs, axis, argnum),
                   text="the input's slice of g")
concatenate.defvjp_joint(_concat_slices)
concatenate.defjvp(lambda t, ans, *xs, axis, argnum: _concat_tangent(t, xs, axis, argnum))


def _is_basic(index: tuple) -> bool:
    """True when indexing makes a view (slices, ints, None, ...): no element repeats."""
    for i in index:
        if isinstance(i, (np.ndarray, list)):
            return False
    return True


def _scatter_add(g: np.ndarray, index: tuple, shape: tuple) -> np.ndarray:
    """zeros(shape) with g added at `index`; repeated indices add up (np.add.at)."""
    out = np.zeros(shape, dtype=g.dtype)
    if _is_basic(index):
        out[index] = g
    else:
        np.add.at(out, index, g)
    return out


getitem = primitive(lambda x, index: x[index], "getitem")
getitem.defvjp(lambda g, ans, x, index: scatter_add(g, index=index, shape=x.shape),
               text="g scattered back to the indexed positions (repeats add up)")
getitem.defjvp(lambda t, ans, x, index: getitem(t, index=index))

scatter_add = primitive(_scatter_add, "scatter_add")
scatter_add.defvjp(lambda g, ans, v, index, shape: getitem(g, index=index), text="g at the index")
scatter_add.defjvp(lambda t, ans, v, index, shape: scatter_add(t, index=index, shape=shape))

# ---------------------------------------------------------------- linear algebra


def _matmul(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    if x.ndim == 0 or y.ndim == 0:
        raise ValueError(f"matmul: operands must have at least 1 dimension, got shapes "
                         f"{x.shape} and {y.shape}; use * to multiply by a scalar")
    inner_x = x.shape[-1]
    inner_y = y.shape[0] if y.ndim == 1 else y.shape[-2]
    if inner_x != inner_y:
        raise ValueError(f"matmul: shapes {x.shape} and {y.shape} do not align: "
                         f"{inner_x} != {inner_y}")
    return np.matmul(x, y)


def _mT(a: Any) -> Any:
    """Swap the last two axes."""
    if a.ndim == 2:
        return a.T
    axes = tuple(range(a.ndim - 2)) + (a.ndim - 1, a.ndim - 2)
    return transpose(a, axes=axes)


def _matmul_vjp_x(g: Any, ans: Any, x: Any, y: Any) -> Any:
    if x.ndim == 1 and y.ndim == 1:
        return g * y
    if y.ndim == 1:                       # (..., m, n) @ (n,) -> (..., m)
        return g.reshape(g.shape + (1,)) * y
    if x.ndim == 1:                       # (n,) @ (..., n, k) -> (..., k)
        return (g.reshape(g.shape[:-1] + (1,) + g.shape[-1:]) @ _mT(y)).reshape(
            g.shape[:-1] + (x.shape[0],))
    return g @ _mT(y)


def _matmul_vjp_y(g: Any, ans: Any, x: Any, y: Any) -> Any:
    if x.ndim == 1 and y.ndim == 1:
        return g * x
    if x.ndim == 1:                       # (n,) @ (..., n, k): outer product x g
        return x.reshape((x.shape[0], 1)) * g.reshape(g.shape[:-1] + (1,) + g.shape[-1:])
    if y.ndim == 1:                       # (..., m, n) @ (n,): sum over m and batch of x * g
        return _mT(x) @ g.reshape(g.shape + (1,))
    return _mT(x) @ g


def _matmul_vjp_y_vector(g, ans, x, y):
    out = _matmul_vjp_y(g, ans, x, y)
    if y.ndim == 1 and x.ndim > 1:
        out = out.reshape(out.shape[:-1])
    return out


matmul = primitive(_matmul, "matmul")
matmul.defvjp(_matmul_vjp_x, _matmul_vjp_y_vector, text="g @ W^T, X^T @ g")
matmul.fresh_cotangents = True
matmul.defjvp(lambda t, ans, x, y: matmul(t, y),
              lambda t, ans, x, y: matmul(x, t))

BUILTIN_PRIMITIVES = frozenset(PRIMITIVES)
_check_rules = True
