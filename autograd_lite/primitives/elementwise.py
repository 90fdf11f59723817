"""Elementwise primitives: out[i] = f(x[i], y[i], ...) with NumPy broadcasting.

Most are declared by their slope, the local derivative d out / d in (the lecture's
phi'(z) = a (1 - a) for the sigmoid): VJP = g * slope, JVP = t * slope. `Values` is each
input's test domain: where finite differences are meaningful (away from kinks and poles).
"""
from __future__ import annotations

from typing import Any, Callable

import numpy as np

from .. import kernels
from ..declaration import PUBLIC, Values, elementwise, expose, linear_jvp, primitive, public
from ..tensor import Tensor, _data, as_tensor

POSITIVE = Values(0.1, 4.0)
AWAY_FROM_0 = Values(away_from=(0.0,))

# ---------------------------------------------------------------- arithmetic (the operators)
# linear: no slope to multiply by, the cotangent passes (negated) as it is
add = primitive(np.add, "add")
add.defvjp(lambda g, ans, x, y: g, lambda g, ans, x, y: g, text="g, g")
add.defjvp(lambda t, ans, x, y: t, lambda t, ans, x, y: t)
add.domain = (Values(), Values())
expose(add, "add", "x + y with broadcasting.", method=False, operator="__add__")

subtract = primitive(np.subtract, "subtract")
subtract.defvjp(lambda g, ans, x, y: g, lambda g, ans, x, y: -g, text="g, -g")
subtract.defjvp(lambda t, ans, x, y: t, lambda t, ans, x, y: -t)
subtract.domain = (Values(), Values())
expose(subtract, "subtract", "x - y with broadcasting.", method=False, operator="__sub__")

multiply = elementwise("multiply", np.multiply, lambda ans, x, y: y, lambda ans, x, y: x,
                       text="g * y, g * x", operator="__mul__", method=False,
                       doc="x * y with broadcasting.")
multiply.fresh_cotangents = True

divide = elementwise("divide", np.true_divide, lambda ans, x, y: 1 / y, lambda ans, x, y: -ans / y,
                     text="g / y, -g * x / y**2", domain=[Values(), Values(0.5, 3.0)],
                     operator="__truediv__", method=False, doc="x / y with broadcasting.")
divide.defvjp(lambda g, ans, x, y: g / y, lambda g, ans, x, y: -g * ans / y,
              text="g / y, -g * x / y**2")


def _log_base(x: Any) -> Any:
    """log(x) where x > 0, 0 where x == 0 (d/dy x**y = x**y log x, taken as 0 at x = 0)."""
    return log(where(_data(x) == 0, 1.0, x))


def _power_slope_x(ans: Any, x: Any, y: Any) -> Any:
    """d/dx x**y = y x**(y-1); 0 at x == y == 0, where x**(y-1) is inf but x**0 is constant."""
    both_zero = (_data(x) == 0) & (_data(y) == 0)
    if not both_zero.any():
        return y * x ** (y - 1)
    return y * where(both_zero, 1.0, x) ** (y - 1)


power = elementwise("power", np.power, _power_slope_x, lambda ans, x, y: ans * _log_base(x),
                    text="g * y * x**(y-1), g * x**y * log(x)",
                    domain=[Values(0.2, 3.0), Values(-2.0, 2.0)], method=False,
                    doc="x ** y with broadcasting; both may carry gradients.")


def _power_scalar_derivative(x: Any, p: float) -> Any:
    """d/dx x**p = p x**(p-1) (and 0 for p == 0, even at x == 0)."""
    if p == 0:
        return x * 0
    if p == 1:
        return x * 0 + 1
    return p * power_scalar(x, p=p - 1)


def _power_scalar_domain(c: Any) -> tuple:
    p = c.choice([0, 1, 2, 3, -1, 0.5, 2.5])
    return (lambda x: x ** p), [c.array(c.shape(), 0.2, 3.0)]


power_scalar = primitive(lambda x, p: np.power(x, p), "power_scalar")  # x ** p, p a Python number
power_scalar.defvjp(lambda g, ans, x, p: g * _power_scalar_derivative(x, p), text="g * p * x**(p-1)")
power_scalar.defjvp(lambda t, ans, x, p: t * _power_scalar_derivative(x, p))
power_scalar.domain = _power_scalar_domain


def _tie_weight(x: Any, y: Any, dtype: np.dtype) -> np.ndarray:
    """1 where x wins, 1/2 on a tie, 0 where y wins: the share of the gradient x receives."""
    x, y = _data(x), _data(y)
    weight = np.asarray(x > y, dtype=dtype)
    weight[np.broadcast_to(x == y, weight.shape)] = 0.5
    return weight


# the second input stays near 0 and the first away from it: no ties, where the slope jumps
_APART = [Values(away_from=(0.0,), margin=0.1), Values(-0.04, 0.04)]
maximum = elementwise("maximum", np.maximum, lambda ans, x, y: _tie_weight(x, y, ans.dtype),
                      lambda ans, x, y: _tie_weight(y, x, ans.dtype), text="g * [x > y], g * [y > x]",
                      domain=_APART, method=False,
                      doc="Elementwise max; on ties the gradient is split evenly.")
minimum = elementwise("minimum", np.minimum, lambda ans, x, y: _tie_weight(y, x, ans.dtype),
                      lambda ans, x, y: _tie_weight(x, y, ans.dtype), text="g * [x < y], g * [y < x]",
                      domain=_APART, method=False,
                      doc="Elementwise min; on ties the gradient is split evenly.")


def _where_domain(c: Any) -> tuple:
    sc, sx, sy = c.shapes(3)
    condition = c.array(sc) > 0
    return (lambda x, y: where(condition, x, y)), [c.array(sx), c.array(sy)]


where_p = primitive(np.where, "where")  # where(condition, x, y); the condition carries no gradient
where_p.defvjp(None,
              lambda g, ans, c, x, y: where(c, g, 0.0),
              lambda g, ans, c, x, y: where(c, 0.0, g), text="where(c, g, 0), where(c, 0, g)")
linear_jvp(where_p, (1, 2))  # jointly: x's share is where(c, t, 0)
where_p.domain = _where_domain


@public
def where(condition: Any, x: Any, y: Any) -> Any:
    """x where condition holds, else y (broadcasting). The condition carries no gradient."""
    if isinstance(x, Tensor) or isinstance(y, Tensor):
        return where_p(np.asarray(_data(condition), dtype=bool), x, y)
    if isinstance(condition, Tensor):
        return where_p(np.asarray(condition.data, dtype=bool), as_tensor(x), y)
    return where_p(condition, x, y)  # arrays in, an array out: the rules call it that way


# ---------------------------------------------------------------- unary
negative = primitive(np.negative, "negative")
negative.defvjp(lambda g, ans, x: -g, text="-g")
linear_jvp(negative)
negative.domain = (Values(),)
expose(negative, "negative", "-x, elementwise.", method=False, operator="__neg__")

absolute = elementwise("absolute", np.abs, lambda ans, x: np.sign(_data(x)), text="g * sign(x)",
                       domain=[AWAY_FROM_0], operator="__abs__", method="abs",
                       doc="|x|, elementwise (the gradient at 0 is 0).")
public(PUBLIC["absolute"], name="abs")

sqrt = elementwise("sqrt", np.sqrt, lambda ans, x: 0.5 / ans, text="g / (2 sqrt(x))",
                   domain=[POSITIVE], doc="Square root, elementwise.")
exp = elementwise("exp", np.exp, lambda ans, x: ans, text="g * exp(x)", doc="e**x, elementwise.")
log = elementwise("log", np.log, lambda ans, x: 1 / x, text="g / x", domain=[POSITIVE],
                  doc="Natural logarithm, elementwise.")
log.defvjp(lambda g, ans, x: g / x, text="g / x")
log1p = elementwise("log1p", np.log1p, lambda ans, x: 1 / (1 + x), text="g / (1 + x)",
                    domain=[Values(-0.9, 3.0)], doc="log(1 + x), accurate for small x.")
expm1 = elementwise("expm1", np.expm1, lambda ans, x: ans + 1, text="g * exp(x)",
                    doc="exp(x) - 1, accurate for small x.")
sin = elementwise("sin", np.sin, lambda ans, x: cos(x), text="g * cos(x)", doc="Sine, elementwise.")
cos = elementwise("cos", np.cos, lambda ans, x: -sin(x), text="-g * sin(x)", doc="Cosine, elementwise.")


def _one_pass(kernel: Callable, rule: Callable) -> Callable:
    """A VJP rule: `kernel` (one fused pass, autograd_lite/kernels) for a plain backward on
    arrays, the readable `rule` on Tensors (create_graph=True, forward mode)."""
    def vjp(g: Any, ans: Any, x: Any) -> Any:
        if type(g) is np.ndarray and type(ans) is np.ndarray:
            return kernel(g, ans, x)
        return rule(g, ans, x)
    return vjp


# the forwards are kernels.tanh / sigmoid / relu: Numba loops on large arrays, NumPy otherwise;
# so are their plain backwards (one pass instead of g * slope's two)
tanh = elementwise("tanh", kernels.tanh, lambda ans, x: 1 - ans * ans, text="g * (1 - a**2)",
                   doc="Hyperbolic tangent, elementwise.")
tanh.vjps = (_one_pass(lambda g, ans, x: kernels.tanh_backward(g, ans), tanh.vjps[0]),)

sigmoid = elementwise("sigmoid", kernels.sigmoid, lambda ans, x: ans * (1 - ans), text="g * a * (1 - a)",
                      doc="The logistic function 1 / (1 + exp(-x)), stable for large |x|.")
sigmoid.vjps = (_one_pass(lambda g, ans, x: kernels.sigmoid_backward(g, ans), sigmoid.vjps[0]),)

relu = elementwise("relu", kernels.relu, lambda ans, x: _data(x) > 0, text="g * [x > 0]",
                   domain=[AWAY_FROM_0], doc="max(x, 0), elementwise (the gradient at 0 is 0).")
relu.vjps = (_one_pass(lambda g, ans, x: kernels.relu_backward(g, x), relu.vjps[0]),)

softplus = elementwise("softplus", lambda x: np.logaddexp(0, x), lambda ans, x: sigmoid(x),
                       text="g * sigmoid(x)", doc="log(1 + exp(x)), stable for large |x|.")


# ---------------------------------------------------------------- with parameters
def _clip_mask(x: Any, lo: Any, hi: Any) -> np.ndarray:
    x = _data(x)
    inside = np.ones(x.shape, dtype=bool)
    if lo is not None:
        inside &= x >= lo
    if hi is not None:
        inside &= x <= hi
    return inside


def _clip_domain(c: Any) -> tuple:
    x = c.array(c.shape(), -3, 3, away_from=(-1.0, 1.0))
    lo, hi = c.choice([(-1.0, 1.0), (None, 1.0), (-1.0, None)])
    return (lambda t: clip(t, lo, hi)), [x]


clip_p = primitive(lambda x, lo, hi: np.clip(x, lo, hi), "clip")
clip_p.defvjp(lambda g, ans, x, lo, hi: g * _clip_mask(x, lo, hi), text="g * [lo <= x <= hi]")
clip_p.defjvp(lambda t, ans, x, lo, hi: t * _clip_mask(x, lo, hi))
clip_p.domain = _clip_domain


@public(method=True)
def clip(x: Any, lo: Any = None, hi: Any = None) -> Tensor:
    """x limited to [lo, hi]; the gradient is 0 outside the interval."""
    if lo is None and hi is None:
        raise ValueError("clip: give at least one of lo and hi")
    if lo is not None and hi is not None and np.any(np.asarray(lo) > np.asarray(hi)):
        raise ValueError(f"clip: lo ({lo}) is greater than hi ({hi})")
    return clip_p(as_tensor(x), lo=lo, hi=hi)


def _astype_domain(c: Any) -> tuple:
    return (lambda t: astype(astype(t, np.float32) * 2, np.float64)), [c.array(c.shape())]


astype_p = primitive(lambda x, dtype: x.astype(dtype), "astype")
astype_p.defvjp(lambda g, ans, x, dtype: g.astype(x.dtype), text="g in the input's dtype")
astype_p.defjvp(lambda t, ans, x, dtype: t.astype(dtype))
astype_p.domain = _astype_domain
# float32 rounding inside: wider steps; its output dtype is its parameter, not its input's
astype_p.check = dict(eps=1e-2, atol=1e-4, rtol=1e-4, keeps_float32=False)


@public(method=True)
def astype(x: Any, dtype: Any) -> Tensor:
    """x converted to dtype (the gradient comes back in x's dtype)."""
    x = as_tensor(x)
    dtype = np.dtype(dtype)
    if dtype == x.dtype:
        return x
    return astype_p(x, dtype=dtype)
