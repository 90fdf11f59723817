"""Reductions over axes (sum, mean, max, min, argmax, argmin, logsumexp, var, std, norm) and the
softmax family.

A reduction's cotangent is broadcast back over the reduced axes; `axis` reaches the primitive
as None (all axes) or a sorted tuple of non-negative ints (normalized by the public function).
"""
from __future__ import annotations

import builtins
from typing import Any, Callable, Optional

import numpy as np

from .. import kernels
from ..arguments import Axis, normalize_axis, one_axis
from ..batching import Batched, reduction_batch
from ..declaration import primitive, public
from ..tensor import Tensor, _data, as_tensor
from .elementwise import absolute, divide_or_zero, exp
from .shape import broadcast_to_p, reshape


def _reduced_shape(shape: tuple, axis: Optional[tuple]) -> tuple:
    """The shape of a reduction over `axis` with keepdims=True."""
    if axis is None:
        return (1,) * len(shape)
    return tuple(1 if i in axis else n for i, n in enumerate(shape))


def _kept(g: Any, x: Any, axis: Optional[tuple]) -> Any:
    """A reduction's cotangent with the reduced axes of x back, as length-1 axes."""
    kshape = _reduced_shape(x.shape, axis)
    return g if g.shape == kshape else g.reshape(kshape)


def _expand(g: Any, x: Any, axis: Optional[tuple]) -> Any:
    """Broadcast a reduction's cotangent back over the reduced axes of x."""
    return broadcast_to_p(_kept(g, x, axis), shape=x.shape)


def _count(shape: tuple, axis: Optional[tuple]) -> int:
    n = 1
    for i, s in enumerate(shape):
        if axis is None or i in axis:
            n *= s
    return n


def reduction_slope(prim: Any, slope: Callable, text: str) -> Any:
    """A reduction's rules from its slope, d out / d x_i (an array shaped like x, written with
    primitives): VJP = g broadcast back over the reduced axes times the slope, JVP = the sum of
    t times the slope over them. `slope(ans, x, axis, **other_params)`."""
    def vjp(g: Any, ans: Any, x: Any, axis: Optional[tuple], keepdims: bool, **params: Any) -> Any:
        # the slope has x's shape: multiplying by it broadcasts g, no copy of g at x's shape first
        return _kept(g, x, axis) * slope(ans, x, axis, **params)

    def jvp(t: Any, ans: Any, x: Any, axis: Optional[tuple], keepdims: bool, **params: Any) -> Any:
        return (t * slope(ans, x, axis, **params)).sum(axis=axis, keepdims=keepdims)

    prim.defvjp(vjp, text=text)
    prim.defjvp(jvp)
    return prim


def reduction_domain(fn: Callable, spread: bool = False, min_side: int = 1) -> Callable:
    """Test domain of a reduction: any shape, an axis argument (None, int or tuple), keepdims."""
    def domain(c: Any) -> tuple:
        x = c.array(c.shape(min_side=min_side), spread=spread)
        axis, keepdims = c.axis_argument(x.ndim), c.boolean()
        return (lambda t: fn(t, axis=axis, keepdims=keepdims)), [x]
    return domain


# ---------------------------------------------------------------- sum, mean
# np.add.reduce is np.sum without its Python-level wrapper (half the cost on small arrays)
sum_p = primitive(lambda x, axis, keepdims: np.add.reduce(x, axis=axis, keepdims=keepdims), "sum")
sum_p.defvjp(lambda g, ans, x, axis, keepdims: _expand(g, x, axis),
            text="g broadcast back over the summed axes")
sum_p.defjvp(lambda t, ans, x, axis, keepdims: t.sum(axis=axis, keepdims=keepdims))
sum_p.scalar = {"reduce": "+", "vjps": ("g",)}   # the rule as one element's: over all axes only


@public(method=True)
def sum(x: Any, axis: Axis = None, keepdims: bool = False) -> Tensor:
    """Sum over `axis` (all axes when None)."""
    x = as_tensor(x)
    return sum_p(x, axis=normalize_axis(axis, x.ndim, "sum"), keepdims=bool(keepdims))


sum_p.domain = reduction_domain(sum)

mean_p = primitive(lambda x, axis, keepdims: np.mean(x, axis=axis, keepdims=keepdims), "mean")
mean_p.defvjp(lambda g, ans, x, axis, keepdims: _expand(g, x, axis) / _count(x.shape, axis),
             text="g / n broadcast back over the averaged axes")
mean_p.defjvp(lambda t, ans, x, axis, keepdims: t.mean(axis=axis, keepdims=keepdims))


@public(method=True)
def mean(x: Any, axis: Axis = None, keepdims: bool = False) -> Tensor:
    """Mean over `axis` (all axes when None)."""
    x = as_tensor(x)
    return mean_p(x, axis=normalize_axis(axis, x.ndim, "mean"), keepdims=bool(keepdims))


mean_p.domain = reduction_domain(mean)


# ---------------------------------------------------------------- max, min
def _argmax_share(ans: Any, x: Any, axis: Optional[tuple]) -> np.ndarray:
    """1/k on each of the k elements that attain the max (or min), 0 elsewhere."""
    x_data, ans_data = _data(x), _data(ans)
    hit = x_data == ans_data.reshape(_reduced_shape(x_data.shape, axis))
    count = hit.sum(axis=axis, keepdims=True)
    return (hit / count).astype(x_data.dtype)


max_p = primitive(lambda x, axis, keepdims: np.max(x, axis=axis, keepdims=keepdims), "max")
reduction_slope(max_p, _argmax_share, text="g to the maximal element(s), split evenly between ties")
min_p = primitive(lambda x, axis, keepdims: np.min(x, axis=axis, keepdims=keepdims), "min")
reduction_slope(min_p, _argmax_share, text="g to the minimal element(s), split evenly between ties")


def _extreme(prim: Any, x: Any, axis: Axis, keepdims: bool) -> Tensor:
    x = as_tensor(x)
    axes = normalize_axis(axis, x.ndim, prim.name)
    reduced = x.shape if axes is None else tuple(x.shape[a] for a in axes)
    if 0 in reduced:
        raise ValueError(f"{prim.name}: cannot reduce over an empty axis (tensor of shape {x.shape}, "
                         f"axis {axis}): a {prim.name} of no elements has no value")
    return prim(x, axis=axes, keepdims=bool(keepdims))


@public(method=True)
def max(x: Any, axis: Axis = None, keepdims: bool = False) -> Tensor:
    """Maximum over `axis`; the gradient is split evenly between tied maxima."""
    return _extreme(max_p, x, axis, keepdims)


@public(method=True)
def min(x: Any, axis: Axis = None, keepdims: bool = False) -> Tensor:
    """Minimum over `axis`; the gradient is split evenly between tied minima."""
    return _extreme(min_p, x, axis, keepdims)


max_p.domain = reduction_domain(max, spread=True)
min_p.domain = reduction_domain(min, spread=True)


def _arg_extreme(name: str, find: Callable, x: Any, axis: Optional[int], keepdims: bool) -> Tensor:
    x = as_tensor(x)
    if isinstance(x, Batched):  # inside vmap: search each example along its axis (+1 in the batch)
        return _batched_arg_extreme(name, find, x, axis, keepdims)
    if axis is not None:
        axis = one_axis(axis, builtins.max(x.ndim, 1), name)  # NumPy takes axis 0 of a 0-d x
    if x.size == 0 and (axis is None or x.shape[axis] == 0):
        raise ValueError(f"{name}: cannot search an empty axis (tensor of shape {x.shape}, axis "
                         f"{axis}): there is no element to point to")
    return Tensor(find(x.data, axis=axis, keepdims=bool(keepdims)))


def _batched_arg_extreme(name: str, find: Callable, x: Batched, axis: Optional[int],
                         keepdims: bool) -> Tensor:
    payload, n = x.payload, x.ndim
    if axis is None:  # each example flattened, then back to keepdims' shape (1, ..., 1)
        found = _arg_extreme(name, find, reshape(payload, (x.batch_size, -1)), 1, keepdims)
        if keepdims:
            found = reshape(found, (x.batch_size,) + (1,) * n)
    else:
        found = _arg_extreme(name, find, payload, one_axis(axis, builtins.max(n, 1), name) + 1
                             if n else 1, keepdims)
    return Batched.make(found, x.level)


@public(method=True)
def argmax(x: Any, axis: Optional[int] = None, keepdims: bool = False) -> Tensor:
    """The index of the maximum along `axis` (in the flattened x when None; the first of tied
    maxima), as np.argmax. An integer Tensor that carries no gradient (it does not change
    under small changes of x): use it to index, or `max` for a differentiable value."""
    return _arg_extreme("argmax", np.argmax, x, axis, keepdims)


@public(method=True)
def argmin(x: Any, axis: Optional[int] = None, keepdims: bool = False) -> Tensor:
    """The index of the minimum along `axis` (in the flattened x when None; the first of tied
    minima), as np.argmin. An integer Tensor that carries no gradient."""
    return _arg_extreme("argmin", np.argmin, x, axis, keepdims)


# ---------------------------------------------------------------- logsumexp, var
def _softmax_of(ans: Any, x: Any, axis: Optional[tuple]) -> Any:
    """exp(x - logsumexp(x)), with logsumexp already computed as `ans`."""
    return exp(x - ans.reshape(_reduced_shape(x.shape, axis)))


logsumexp_p = primitive(kernels.logsumexp, "logsumexp")  # m + log(sum(exp(x - m))), m = max(x)
reduction_slope(logsumexp_p, _softmax_of, text="g * softmax(x)")


@public(method=True)
def logsumexp(x: Any, axis: Axis = None, keepdims: bool = False) -> Tensor:
    """log(sum(exp(x))) over `axis`, without overflow (finite for logits of +-1000)."""
    x = as_tensor(x)
    return logsumexp_p(x, axis=normalize_axis(axis, x.ndim, "logsumexp"), keepdims=bool(keepdims))


logsumexp_p.domain = reduction_domain(logsumexp)


def _centered(x: Any, axis: Optional[tuple]) -> Any:
    return x - x.mean(axis=axis, keepdims=True)


def _degrees_of_freedom(op: str, x: Tensor, axis: Optional[tuple], ddof: Any) -> None:
    """Refuse a ddof that is not a number, or that leaves n - ddof <= 0 (a division by zero
    or by a negative count, where NumPy warns and returns inf or NaN)."""
    if isinstance(ddof, bool) or not isinstance(ddof, (int, float, np.integer, np.floating)):
        raise TypeError(f"{op}: ddof must be a number, got {ddof!r}")
    n = _count(x.shape, axis)
    if n - ddof <= 0:
        raise ValueError(f"{op}: ddof={ddof} leaves no degrees of freedom: the reduced axes of the "
                         f"tensor of shape {x.shape} hold {n} elements (n - ddof must be positive)")


var_p = primitive(lambda x, axis, keepdims, ddof: np.var(x, axis=axis, keepdims=keepdims, ddof=ddof), "var")
reduction_slope(var_p, lambda ans, x, axis, ddof: _centered(x, axis) * (2.0 / (_count(x.shape, axis) - ddof)),
                text="g * 2 (x - mean) / (n - ddof)")


@public(method=True)
def var(x: Any, axis: Axis = None, keepdims: bool = False, ddof: int = 0) -> Tensor:
    """Variance over `axis`, dividing by n - ddof (which must be positive)."""
    x = as_tensor(x)
    axes = normalize_axis(axis, x.ndim, "var")
    _degrees_of_freedom("var", x, axes, ddof)
    return var_p(x, axis=axes, keepdims=bool(keepdims), ddof=ddof)


# d std / d x = (x - mean) / ((n - ddof) std): sqrt(var)'s slope, 0 where all values are equal
def _std_slope(ans: Any, x: Any, axis: Optional[tuple], ddof: Any) -> Any:
    spread = ans.reshape(_reduced_shape(x.shape, axis))
    return divide_or_zero(_centered(x, axis), spread) / (_count(x.shape, axis) - ddof)


std_p = primitive(lambda x, axis, keepdims, ddof: np.std(x, axis=axis, keepdims=keepdims, ddof=ddof), "std")
reduction_slope(std_p, _std_slope, text="g * (x - mean) / ((n - ddof) std), 0 where std = 0")


@public(method=True)
def std(x: Any, axis: Axis = None, keepdims: bool = False, ddof: int = 0) -> Tensor:
    """Standard deviation over `axis`, sqrt(var(x, axis, ddof=ddof)) as np.std. Where all the
    values are equal, the gradient is 0 (a subgradient, as for abs at 0), not NaN."""
    x = as_tensor(x)
    axes = normalize_axis(axis, x.ndim, "std")
    _degrees_of_freedom("std", x, axes, ddof)
    return std_p(x, axis=axes, keepdims=bool(keepdims), ddof=ddof)


def _moment_domain(fn: Callable, spread: bool) -> Callable:
    def domain(c: Any) -> tuple:
        x = c.array(c.shape(min_dims=1, min_side=2), spread=spread)
        axis, keepdims, ddof = c.axis_argument(x.ndim), c.boolean(), c.choice([0, 1])
        return (lambda t: fn(t, axis=axis, keepdims=keepdims, ddof=ddof)), [x]
    return domain


var_p.domain = _moment_domain(var, spread=False)
std_p.domain = _moment_domain(std, spread=True)  # no std of equal values: a kink, like |x| at 0


# ---------------------------------------------------------------- norm
def _norm(x: np.ndarray, ord: float, axis: Optional[tuple], keepdims: bool) -> np.ndarray:
    """(sum |x|**ord)**(1 / ord) over `axis`, for ord >= 1."""
    if ord == 2:
        return np.sqrt(np.add.reduce(x * x, axis=axis, keepdims=keepdims))
    if ord == 1:
        return np.add.reduce(np.abs(x), axis=axis, keepdims=keepdims)
    return np.add.reduce(np.abs(x) ** ord, axis=axis, keepdims=keepdims) ** (1.0 / ord)


def _norm_slope(ans: Any, x: Any, ord: float, axis: Optional[tuple]) -> Any:
    """d norm / d x: x / norm for ord 2, sign(x) for ord 1, sign(x) (|x| / norm)**(ord - 1)
    otherwise; 0 where the norm is 0."""
    norm = ans.reshape(_reduced_shape(x.shape, axis))
    if ord == 2:
        return divide_or_zero(x, norm)
    sign = np.sign(_data(x))
    if ord == 1:
        return sign
    return sign * divide_or_zero(absolute(x), norm) ** (ord - 1)


norm_p = primitive(_norm, "norm")
reduction_slope(norm_p, lambda ans, x, axis, ord: _norm_slope(ans, x, ord, axis),
                text="g * x / ||x|| (ord 2), g * sign(x) (|x| / ||x||)**(ord - 1); 0 where ||x|| = 0")


@public
def norm(x: Any, ord: Any = None, axis: Any = None, keepdims: bool = False) -> Tensor:
    """A vector or matrix norm, as np.linalg.norm.

    Over one axis (`axis` an int, or None for a 1-D x): ord None or 2 (Euclidean), 1, any
    number above 1 ((sum |x|**ord)**(1/ord)), inf (max |x|), -inf (min |x|) or 0 (the count of
    non-zeros, which has no gradient). Over two axes (`axis` a pair, or None for a 2-D x): ord
    None or 'fro' (Frobenius), 1 or -1 (max or min column sum of |x|), inf or -inf (the same
    for rows). With ord None and axis None, the Euclidean norm of all elements at any ndim.
    The gradient at x = 0 is 0, as for abs.

        >>> norm([3.0, 4.0])                               # 5
        >>> norm([[1.0, -2.0], [3.0, 4.0]], ord=1)         # 6: the largest column sum
    """
    x = as_tensor(x)
    if x.dtype.kind != "f":
        x = x.astype(np.float64)
    if axis is None:
        if ord is None:
            return norm_p(x, ord=2, axis=None, keepdims=bool(keepdims))
        if x.ndim not in (1, 2):
            raise ValueError(f"norm: ord={ord!r} with axis=None needs a 1-D or 2-D tensor, got shape "
                             f"{x.shape}; give the axis (or axes) to take the norm over")
        axes = tuple(range(x.ndim))
    else:
        axes = tuple(one_axis(a, x.ndim, "norm") for a in
                     ((axis,) if isinstance(axis, (int, np.integer)) else axis))
        if len(axes) not in (1, 2) or len(set(axes)) != len(axes):
            raise ValueError(f"norm: axis must be one axis or two different axes, got {axis!r}")
    out = (_vector_norm if len(axes) == 1 else _matrix_norm)(x, ord, axes)
    if keepdims:
        return out
    return reshape(out, tuple(n for i, n in enumerate(x.shape) if i not in axes))


def _vector_norm(x: Tensor, ord: Any, axes: tuple) -> Tensor:
    """The norm over the one axis in `axes`, keeping it (length 1)."""
    if ord is None or ord == 2:
        return norm_p(x, ord=2, axis=axes, keepdims=True)
    if ord == np.inf:
        return max(absolute(x), axis=axes, keepdims=True)
    if ord == -np.inf:
        return min(absolute(x), axis=axes, keepdims=True)
    if ord == 0:  # how many are non-zero: a count, constant where it is differentiable
        return as_tensor((_data(x) != 0).astype(x.dtype)).sum(axis=axes, keepdims=True).detach()
    if isinstance(ord, (int, float, np.integer, np.floating)) and not isinstance(ord, bool) and ord >= 1:
        return norm_p(x, ord=float(ord), axis=axes, keepdims=True)
    raise ValueError(f"norm: ord={ord!r} is not a vector norm autograd-lite computes; expected None, "
                     "a number >= 1, inf, -inf or 0")


def _matrix_norm(x: Tensor, ord: Any, axes: tuple) -> Tensor:
    """The norm over the (row, column) axes in `axes`, keeping them (length 1)."""
    rows, cols = axes
    if ord is None or ord == "fro":
        return norm_p(x, ord=2, axis=tuple(sorted(axes)), keepdims=True)
    if ord in (1, -1, np.inf, -np.inf):
        # ord +-1: the largest or smallest column sum of |x| (summed over the rows); inf: of a row
        summed, over = (rows, cols) if ord in (1, -1) else (cols, rows)
        sums = sum(absolute(x), axis=summed, keepdims=True)
        return (max if ord > 0 else min)(sums, axis=over, keepdims=True)
    if ord in (2, -2, "nuc"):
        raise ValueError(f"norm: ord={ord!r} over two axes needs the singular values, which "
                         "autograd-lite does not compute; use ord='fro', 1 or inf")
    raise ValueError(f"norm: ord={ord!r} is not a matrix norm; expected None, 'fro', 1, -1, inf or -inf")


def _norm_domain(c: Any) -> tuple:
    # away from 0, the kink of |x| (the inf-norms and the matrix 1- and inf-norms, made of max,
    # min, sum and abs, are tested in test_reductions_scans.py: ties of |x| are frequent here)
    x = c.array(c.shape(), away_from=(0.0,), margin=0.1)
    kind = c.choice(["all", "vector", "matrix"][:1 + builtins.min(x.ndim, 2)])
    if kind == "all":
        ord, axis = None, None
    elif kind == "vector":
        ord, axis = c.choice([None, 1, 2, 3, 1.5]), c.integer(-x.ndim, x.ndim - 1)
    else:
        ord, axis = c.choice([None, "fro"]), c.permutation(x.ndim)[:2]
    keepdims = c.boolean()
    return (lambda t: norm(t, ord=ord, axis=axis, keepdims=keepdims)), [x]


norm_p.domain = _norm_domain


# ---------------------------------------------------------------- softmax along one axis
# the forwards are kernels.softmax / log_softmax: Numba rows along the last axis, NumPy otherwise
# (a size-0 axis gives an empty result, a 0-d x a softmax over its one element)
softmax_p = primitive(kernels.softmax, "softmax")
softmax_p.defvjp(lambda g, ans, x, axis: ans * (g - (g * ans).sum(axis=axis, keepdims=True)),
                  text="a * (g - sum(g * a))")
softmax_p.defjvp(lambda t, ans, x, axis: ans * (t - (t * ans).sum(axis=axis, keepdims=True)))

log_softmax_p = primitive(kernels.log_softmax, "log_softmax")
log_softmax_p.defvjp(lambda g, ans, x, axis: g - exp(ans) * g.sum(axis=axis, keepdims=True),
                      text="g - softmax(x) * sum(g)")
log_softmax_p.defjvp(lambda t, ans, x, axis: t - (exp(ans) * t).sum(axis=axis, keepdims=True))


@public(method=True)
def softmax(x: Any, axis: int = -1) -> Tensor:
    """exp(x) / sum(exp(x)) along `axis`, stable for logits of +-1000. Along a size-0 axis the
    result is empty; the softmax of a 0-d x is 1."""
    x = as_tensor(x)
    return softmax_p(x, axis=one_axis(axis, builtins.max(x.ndim, 1), "softmax"))


@public(method=True)
def log_softmax(x: Any, axis: int = -1) -> Tensor:
    """x - logsumexp(x) along `axis`, stable for logits of +-1000. Along a size-0 axis the
    result is empty; the log_softmax of a 0-d x is 0."""
    x = as_tensor(x)
    return log_softmax_p(x, axis=one_axis(axis, builtins.max(x.ndim, 1), "log_softmax"))


def _softmax_domain(fn: Callable) -> Callable:
    def domain(c: Any) -> tuple:
        x = c.array(c.shape(min_dims=1))
        axis = c.integer(-x.ndim, x.ndim - 1)
        return (lambda t: fn(t, axis=axis)), [x]
    return domain


softmax_p.domain = _softmax_domain(softmax)
log_softmax_p.domain = _softmax_domain(log_softmax)


# batching rules (vmap): the reduced axis (or axes) of one example is that axis + 1 of the batch
for _prim in (sum_p, mean_p, max_p, min_p, logsumexp_p, var_p, std_p, norm_p, softmax_p, log_softmax_p):
    _prim.defbatch(reduction_batch(_prim))
