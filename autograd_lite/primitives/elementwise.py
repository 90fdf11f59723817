"""Elementwise primitives: out[i] = f(x[i], y[i], ...) with NumPy broadcasting.

Most are declared by their slope, the local derivative d out / d in (the lecture's
phi'(z) = a (1 - a) for the sigmoid): VJP = g * slope, JVP = t * slope. `Values` is each
input's test domain: where finite differences are meaningful (away from kinks and poles).
"""
from __future__ import annotations

import math
from typing import Any, Callable, Optional

import numpy as np

from .. import kernels
from ..batching import elementwise_batch
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
add.scalar = {"forward": "x + y", "vjps": ("g", "g")}
expose(add, "add", "x + y with broadcasting.", method=False, operator="__add__")

subtract = primitive(np.subtract, "subtract")
subtract.defvjp(lambda g, ans, x, y: g, lambda g, ans, x, y: -g, text="g, -g")
subtract.defjvp(lambda t, ans, x, y: t, lambda t, ans, x, y: -t)
subtract.domain = (Values(), Values())
subtract.scalar = {"forward": "x - y", "vjps": ("g", "-g")}
expose(subtract, "subtract", "x - y with broadcasting.", method=False, operator="__sub__")

multiply = elementwise("multiply", np.multiply, lambda ans, x, y: y, lambda ans, x, y: x,
                       text="g * y, g * x", operator="__mul__", method=False,
                       doc="x * y with broadcasting.", scalar=("x * y", "y", "x"))
multiply.fresh_cotangents = True

divide = elementwise("divide", np.true_divide, lambda ans, x, y: 1 / y, lambda ans, x, y: -ans / y,
                     text="g / y, -g * x / y**2", domain=[Values(), Values(0.5, 3.0)],
                     operator="__truediv__", method=False, doc="x / y with broadcasting.")
# one division instead of g * (1 / y)'s reciprocal and product: a pass and a temporary fewer
divide.defvjp(lambda g, ans, x, y: g / y, lambda g, ans, x, y: -g * ans / y,
              text="g / y, -g * x / y**2")
divide.scalar = {"forward": "x / y", "vjps": ("g / y", "-g * a / y")}


def _log_base(x: Any) -> Any:
    """log(x) where x > 0, 0 where x == 0 (d/dy x**y = x**y log x, taken as 0 at x = 0)."""
    return log(where_p(_data(x) == 0, 1.0, x))


def _power_slope_x(ans: Any, x: Any, y: Any) -> Any:
    """d/dx x**y = y x**(y-1); 0 at x == y == 0, where x**(y-1) is inf but x**0 is constant."""
    both_zero = (_data(x) == 0) & (_data(y) == 0)
    if not both_zero.any():
        return y * x ** (y - 1)
    return y * where_p(both_zero, 1.0, x) ** (y - 1)


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
              lambda g, ans, c, x, y: where_p(c, g, 0.0),
              lambda g, ans, c, x, y: where_p(c, 0.0, g), text="where(c, g, 0), where(c, 0, g)")
linear_jvp(where_p, (1, 2))  # jointly: x's share is where(c, t, 0)
where_p.domain = _where_domain


@public
def where(condition: Any, x: Any, y: Any) -> Tensor:
    """x where condition holds, else y (broadcasting). The condition carries no gradient."""
    if not isinstance(x, Tensor) and not isinstance(y, Tensor):
        x = as_tensor(x)
    condition = _data(condition)
    if isinstance(condition, Tensor):  # inside vmap: one mask per example
        return where_p(condition if condition.dtype == bool else condition != 0, x, y)
    return where_p(np.asarray(condition, dtype=bool), x, y)


# ---------------------------------------------------------------- more binary ops
def _mod_domain(c: Any) -> tuple:
    # mod jumps where x / y is an integer: x = y0 q with q at least 0.1 from every integer, and
    # y = y0 (1 + d) with |d| <= 0.01, which moves x / y = q / (1 + d) by at most 0.04
    sx, sy = c.shapes(2)
    y0 = c.choice([-1.0, 1.0]) * float(c.array((), 0.5, 3.0))
    q = c.array(sx, away_from=tuple(float(k) for k in range(-3, 4)), margin=0.1)
    return (lambda x, y: mod(x, y)), [y0 * q, y0 * (1 + c.array(sy, -0.01, 0.01))]


# x mod y = x - floor(x / y) y, with the divisor's sign (NumPy's and Python's convention);
# floor(x / y) is constant between the jumps
mod = elementwise("mod", np.mod, lambda ans, x, y: 1.0,
                  lambda ans, x, y: -np.floor(np.divide(_data(x), _data(y))),
                  text="g, -g * floor(x / y)", operator="__mod__", method=False,
                  doc="x mod y (x % y) with broadcasting; the result has the sign of y, as in NumPy.")
mod.domain = _mod_domain
public(PUBLIC["mod"], name="remainder")

# the angle of the point (x2, x1): d/dx1 = x2 / r**2, d/dx2 = -x1 / r**2; x1 stays away from the
# branch cut (x1 = 0, x2 < 0), which also keeps r away from 0
arctan2 = elementwise("arctan2", np.arctan2, lambda ans, x1, x2: x2 / (x1 * x1 + x2 * x2),
                      lambda ans, x1, x2: -x1 / (x1 * x1 + x2 * x2),
                      text="g * x2 / (x1**2 + x2**2), -g * x1 / (x1**2 + x2**2)",
                      domain=[Values(away_from=(0.0,), margin=0.1), Values()], method=False,
                      doc="The angle of the point (x2, x1) in (-pi, pi], elementwise.")


def divide_or_zero(x: Any, r: Any) -> Any:
    """x / r, taken as 0 where r is 0: a norm's gradient x / ||x|| (hypot's, std's, norm's) at 0,
    where x is 0 too; 0 is the subgradient, as for abs."""
    return x / where_p(_data(r) == 0, 1.0, r)


hypot = elementwise("hypot", np.hypot, lambda ans, x1, x2: divide_or_zero(x1, ans),
                    lambda ans, x1, x2: divide_or_zero(x2, ans), text="g * x1 / r, g * x2 / r",
                    domain=[Values(away_from=(0.0,), margin=0.1), Values()], method=False,
                    doc="sqrt(x1**2 + x2**2) without overflow, elementwise (the gradient at 0 is 0).")

# d/dx log(e**x + e**y) = e**x / (e**x + e**y) = e**(x - ans), never above 1
logaddexp = elementwise("logaddexp", np.logaddexp, lambda ans, x, y: exp(x - ans),
                        lambda ans, x, y: exp(y - ans), text="g * exp(x - a), g * exp(y - a)",
                        method=False, doc="log(exp(x) + exp(y)), stable for large |x| and |y|.")
logaddexp2 = elementwise("logaddexp2", np.logaddexp2, lambda ans, x, y: exp2(x - ans),
                         lambda ans, x, y: exp2(y - ans), text="g * 2**(x - a), g * 2**(y - a)",
                         method=False, doc="log2(2**x + 2**y), stable for large |x| and |y|.")


def _share_ignoring_nan(x: Any, y: Any, dtype: np.dtype, larger: bool) -> np.ndarray:
    """x's share of the gradient of fmax(x, y) (`larger`) or fmin(x, y): maximum's or minimum's,
    and all of it where only y is NaN, where fmax and fmin return x."""
    weight = _tie_weight(x, y, dtype) if larger else _tie_weight(y, x, dtype)
    x_nan, y_nan = np.isnan(_data(x)), np.isnan(_data(y))
    weight[np.broadcast_to(y_nan & ~x_nan, weight.shape)] = 1
    return weight


fmax = elementwise("fmax", np.fmax, lambda ans, x, y: _share_ignoring_nan(x, y, ans.dtype, True),
                   lambda ans, x, y: _share_ignoring_nan(y, x, ans.dtype, True),
                   text="g * [x > y or y is NaN], g * [y > x or x is NaN]", domain=_APART,
                   method=False, doc="Elementwise max ignoring NaN (NaN only where both are); "
                                     "on ties the gradient is split evenly.")
fmin = elementwise("fmin", np.fmin, lambda ans, x, y: _share_ignoring_nan(x, y, ans.dtype, False),
                   lambda ans, x, y: _share_ignoring_nan(y, x, ans.dtype, False),
                   text="g * [x < y or y is NaN], g * [y < x or x is NaN]", domain=_APART,
                   method=False, doc="Elementwise min ignoring NaN (NaN only where both are); "
                                     "on ties the gradient is split evenly.")


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
exp = elementwise("exp", np.exp, lambda ans, x: ans, text="g * exp(x)", doc="e**x, elementwise.",
                  scalar=("exp(x)", "a"))
log = elementwise("log", np.log, lambda ans, x: 1 / x, text="g / x", domain=[POSITIVE],
                  doc="Natural logarithm, elementwise.")
log.defvjp(lambda g, ans, x: g / x, text="g / x")  # g / x: one pass where g * (1 / x) takes two
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
tanh.scalar = {"forward": "tanh(x)", "vjps": ("g * (1 - a * a)",)}

sigmoid = elementwise("sigmoid", kernels.sigmoid, lambda ans, x: ans * (1 - ans), text="g * a * (1 - a)",
                      doc="The logistic function 1 / (1 + exp(-x)), stable for large |x|.")
sigmoid.vjps = (_one_pass(lambda g, ans, x: kernels.sigmoid_backward(g, ans), sigmoid.vjps[0]),)
sigmoid.scalar = {"forward": "sigmoid(x)", "vjps": ("g * a * (1 - a)",)}   # as sigmoid_backward

# relu's slope reads its output: [a > 0] is [x > 0] element for element (NaN and -0.0 included,
# as the kernel maps them), and ag.compile's fused forward need not write x for the backward
relu = elementwise("relu", kernels.relu, lambda ans, x: _data(ans) > 0, text="g * [x > 0]",
                   domain=[AWAY_FROM_0], doc="max(x, 0), elementwise (the gradient at 0 is 0).")
relu.vjps = (_one_pass(lambda g, ans, x: kernels.relu_backward(g, ans), relu.vjps[0]),)
relu.scalar = {"forward": "0 if x <= 0 else x", "vjps": ("g * (1 if a > 0 else 0)",)}   # as the kernels

softplus = elementwise("softplus", kernels.softplus, lambda ans, x: sigmoid(x),
                       text="g * sigmoid(x)", doc="log(1 + exp(x)), stable for large |x|.")


log_sigmoid = elementwise("log_sigmoid", kernels.log_sigmoid, lambda ans, x: sigmoid(-x),
                          text="g * sigmoid(-x)",
                          doc="log(sigmoid(x)) = -softplus(-x), stable for large |x|.")
square = elementwise("square", np.square, lambda ans, x: 2 * x, text="g * 2x", doc="x**2, elementwise.",
                     scalar=("x * x", "2 * x"))
reciprocal = elementwise("reciprocal", np.reciprocal, lambda ans, x: -ans * ans, text="-g / x**2",
                         domain=[Values(away_from=(0.0,), margin=0.25)], doc="1 / x, elementwise.")

# ---------------------------------------------------------------- trigonometric, hyperbolic
_BELOW_1 = Values(-0.9, 0.9)  # arcsin, arccos, arctanh: away from the poles of the slope at +-1
tan = elementwise("tan", np.tan, lambda ans, x: 1 + ans * ans, text="g * (1 + tan(x)**2)",
                  domain=[Values(-1.2, 1.2)], doc="Tangent, elementwise.")
arcsin = elementwise("arcsin", np.arcsin, lambda ans, x: 1 / sqrt(1 - x * x), text="g / sqrt(1 - x**2)",
                     domain=[_BELOW_1], doc="Inverse sine, elementwise, in [-pi/2, pi/2].")
arccos = elementwise("arccos", np.arccos, lambda ans, x: -1 / sqrt(1 - x * x),
                     text="-g / sqrt(1 - x**2)", domain=[_BELOW_1],
                     doc="Inverse cosine, elementwise, in [0, pi].")
arctan = elementwise("arctan", np.arctan, lambda ans, x: 1 / (1 + x * x), text="g / (1 + x**2)",
                     doc="Inverse tangent, elementwise, in (-pi/2, pi/2).")
sinh = elementwise("sinh", np.sinh, lambda ans, x: cosh(x), text="g * cosh(x)",
                   doc="Hyperbolic sine, elementwise.")
cosh = elementwise("cosh", np.cosh, lambda ans, x: sinh(x), text="g * sinh(x)",
                   doc="Hyperbolic cosine, elementwise.")
arcsinh = elementwise("arcsinh", np.arcsinh, lambda ans, x: 1 / sqrt(x * x + 1),
                      text="g / sqrt(x**2 + 1)", doc="Inverse hyperbolic sine, elementwise.")
arccosh = elementwise("arccosh", np.arccosh, lambda ans, x: 1 / sqrt(x * x - 1),
                      text="g / sqrt(x**2 - 1)", domain=[Values(1.1, 4.0)],
                      doc="Inverse hyperbolic cosine, elementwise, for x >= 1.")
arctanh = elementwise("arctanh", np.arctanh, lambda ans, x: 1 / (1 - x * x), text="g / (1 - x**2)",
                      domain=[_BELOW_1], doc="Inverse hyperbolic tangent, elementwise, for |x| < 1.")

# degrees to radians and back: linear, the slope is the constant factor
deg2rad = elementwise("deg2rad", np.deg2rad, lambda ans, x: math.pi / 180, text="g * pi / 180",
                      doc="Degrees to radians, elementwise.")
rad2deg = elementwise("rad2deg", np.rad2deg, lambda ans, x: 180 / math.pi, text="g * 180 / pi",
                      doc="Radians to degrees, elementwise.")

# normalized sinc: sin(pi x) / (pi x), 1 at 0. Its slope (cos(pi x) - sinc(x)) / x loses all its
# digits to cancellation near 0, where its series -pi**2 x / 3 + pi**4 x**3 / 30 - pi**6 x**5 / 840
# (next term below 3e-15 for |x| < 0.01) is used instead: 0 at x = 0, second derivative included
_SINC_SERIES = (-math.pi ** 2 / 3, math.pi ** 4 / 30, -math.pi ** 6 / 840)


def _sinc_slope(ans: Any, x: Any) -> Any:
    near_0 = np.abs(_data(x)) < 0.01
    x2 = x * x
    series = x * (_SINC_SERIES[0] + x2 * (_SINC_SERIES[1] + x2 * _SINC_SERIES[2]))
    away = where_p(near_0, 1.0, x)  # no 0 / 0 in the branch not taken (its gradient would be NaN)
    return where_p(near_0, series, (cos(math.pi * away) - ans) / away)


sinc = elementwise("sinc", np.sinc, _sinc_slope, text="g * (cos(pi x) - sinc(x)) / x (0 at x = 0)",
                   doc="The normalized sinc sin(pi x) / (pi x), elementwise (1 at x = 0).")

# ---------------------------------------------------------------- logarithms, exponentials
_LN2, _LN10 = math.log(2.0), math.log(10.0)  # Python floats: float32 stays float32
log2 = elementwise("log2", np.log2, lambda ans, x: 1 / (x * _LN2), text="g / (x ln 2)",
                   domain=[POSITIVE], doc="Base-2 logarithm, elementwise.")
log10 = elementwise("log10", np.log10, lambda ans, x: 1 / (x * _LN10), text="g / (x ln 10)",
                    domain=[POSITIVE], doc="Base-10 logarithm, elementwise.")
exp2 = elementwise("exp2", np.exp2, lambda ans, x: ans * _LN2, text="g * 2**x ln 2",
                   doc="2**x, elementwise.")

# ---------------------------------------------------------------- steps: slope 0 between the jumps
def _flat(ans: Any, *inputs: Any) -> np.ndarray:
    """The slope of a step function: 0 wherever it is differentiable (everywhere but the jumps,
    where it is taken as 0 too)."""
    return np.zeros_like(_data(ans))


_AWAY_FROM_INTEGERS = Values(away_from=tuple(float(k) for k in range(-3, 4)))
sign = elementwise("sign", np.sign, _flat, text="0", domain=[AWAY_FROM_0],
                   doc="-1, 0 or 1 by the sign of x, elementwise (the gradient is 0).")
floor = elementwise("floor", np.floor, _flat, text="0", domain=[_AWAY_FROM_INTEGERS],
                    doc="The largest integer <= x, elementwise (the gradient is 0).")
ceil = elementwise("ceil", np.ceil, _flat, text="0", domain=[_AWAY_FROM_INTEGERS],
                   doc="The smallest integer >= x, elementwise (the gradient is 0).")


# ---------------------------------------------------------------- with parameters
def _clip_mask(x: Any, lo: Any, hi: Any) -> np.ndarray:
    # not in place: inside vmap the comparisons give batched masks, which an array cannot hold
    x = _data(x)
    if lo is None and hi is None:
        return np.ones(np.shape(x), dtype=bool)
    if lo is None:
        return x <= hi
    return x >= lo if hi is None else np.logical_and(x >= lo, x <= hi)


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


def _round_domain(c: Any) -> tuple:
    decimals = c.choice([0, 1, -1])
    # round jumps where x * 10**decimals is half an integer
    halves = tuple(k + 0.5 for k in range(-4, 4))
    x = c.array(c.shape(), away_from=halves) / 10.0 ** decimals
    return (lambda t: round(t, decimals)), [x]


round_p = primitive(lambda x, decimals: np.round(x, decimals), "round")
round_p.defvjp(lambda g, ans, x, decimals: g * _flat(ans), text="0")
round_p.defjvp(lambda t, ans, x, decimals: t * _flat(ans))
round_p.domain = _round_domain


@public(method=True)
def round(x: Any, decimals: int = 0) -> Tensor:
    """x rounded to `decimals` decimal places (negative: to tens, hundreds...), halves to even as
    in NumPy; the gradient is 0."""
    if isinstance(decimals, bool) or not isinstance(decimals, (int, np.integer)):
        raise TypeError(f"round: decimals must be an integer, got {decimals!r}")
    return round_p(as_tensor(x), decimals=int(decimals))


def _nan_to_num_domain(c: Any) -> tuple:
    # some elements NaN or infinite, where the gradient is 0, as finite differences see it; the
    # replacements are moderate (the default 1.8e308 would drown the differences of the others)
    x = c.array(c.shape())
    x[c.array(x.shape) > 1.5] = c.choice([np.nan, np.inf, -np.inf])
    nan, posinf, neginf = c.choice([(0.0, 5.0, -5.0), (-1.0, 100.0, -100.0)])
    return (lambda t: nan_to_num(t, nan, posinf, neginf)), [x]


nan_to_num_p = primitive(lambda x, nan, posinf, neginf: np.nan_to_num(x, nan=nan, posinf=posinf,
                                                                      neginf=neginf), "nan_to_num")
nan_to_num_p.defvjp(lambda g, ans, x, nan, posinf, neginf: g * np.isfinite(_data(x)),
                    text="g * [x is finite]")
nan_to_num_p.defjvp(lambda t, ans, x, nan, posinf, neginf: t * np.isfinite(_data(x)))
nan_to_num_p.domain = _nan_to_num_domain


@public(method=True)
def nan_to_num(x: Any, nan: float = 0.0, posinf: Optional[float] = None,
               neginf: Optional[float] = None) -> Tensor:
    """x with NaN replaced by `nan`, +inf by `posinf` and -inf by `neginf` (None: the largest
    finite number of x's dtype, or its negative), as in NumPy. The gradient passes where x is
    finite and is 0 where a value was replaced."""
    for label, value in (("nan", nan), ("posinf", posinf), ("neginf", neginf)):
        if value is None and label != "nan":
            continue
        if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
            raise TypeError(f"nan_to_num: {label} must be a real number"
                            f"{'' if label == 'nan' else ' or None'}, got {value!r}")
    return nan_to_num_p(as_tensor(x), nan=float(nan), posinf=None if posinf is None else float(posinf),
                        neginf=None if neginf is None else float(neginf))


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


# batching rules (vmap) of the elementwise ops declared with `primitive` rather than `elementwise`
for _prim in (add, subtract, negative, power_scalar, where_p, clip_p, round_p, nan_to_num_p, astype_p):
    _prim.defbatch(elementwise_batch(_prim))
