"""Reductions over axes (sum, mean, max, min, logsumexp, var) and the softmax family.

A reduction's cotangent is broadcast back over the reduced axes; `axis` reaches the primitive
as None (all axes) or a sorted tuple of non-negative ints (normalized by the public function).
"""
from __future__ import annotations

import builtins
from typing import Any, Callable, Optional

import numpy as np

from ..arguments import Axis, normalize_axis, one_axis
from ..declaration import primitive, public
from ..tensor import Tensor, _data, as_tensor
from .elementwise import exp
from .shape import broadcast_to_p


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
    return broadcast_to_p(g, shape=x.shape)


def _count(shape: tuple, axis: Optional[tuple]) -> int:
    n = 1
    for i, s in enumerate(shape):
        if axis is None or i in axis:
            n *= s
    return n


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
sum_p.defvjp(lambda g, ans, x, axis, keepdims: _expand(g, x, axis, keepdims),
            text="g broadcast back over the summed axes")
sum_p.defjvp(lambda t, ans, x, axis, keepdims: t.sum(axis=axis, keepdims=keepdims))


@public(method=True)
def sum(x: Any, axis: Axis = None, keepdims: bool = False) -> Tensor:
    """Sum over `axis` (all axes when None)."""
    x = as_tensor(x)
    return sum_p(x, axis=normalize_axis(axis, x.ndim, "sum"), keepdims=bool(keepdims))


sum_p.domain = reduction_domain(sum)

mean_p = primitive(lambda x, axis, keepdims: np.mean(x, axis=axis, keepdims=keepdims), "mean")
mean_p.defvjp(lambda g, ans, x, axis, keepdims: _expand(g, x, axis, keepdims) / _count(x.shape, axis),
             text="g / n broadcast back over the averaged axes")
mean_p.defjvp(lambda t, ans, x, axis, keepdims: t.mean(axis=axis, keepdims=keepdims))


@public(method=True)
def mean(x: Any, axis: Axis = None, keepdims: bool = False) -> Tensor:
    """Mean over `axis` (all axes when None)."""
    x = as_tensor(x)
    return mean_p(x, axis=normalize_axis(axis, x.ndim, "mean"), keepdims=bool(keepdims))


mean_p.domain = reduction_domain(mean)


# ---------------------------------------------------------------- max, min
def _argmax_share(ans: Any, x: Any, axis: Optional[tuple], keepdims: bool) -> np.ndarray:
    """1/k on each of the k elements that attain the max (or min), 0 elsewhere."""
    x_data, ans_data = _data(x), _data(ans)
    hit = x_data == ans_data.reshape(_reduced_shape(x_data.shape, axis))
    count = hit.sum(axis=axis, keepdims=True)
    return (hit / count).astype(x_data.dtype)


def _extreme_vjp(g: Any, ans: Any, x: Any, axis: Optional[tuple], keepdims: bool) -> Any:
    return _expand(g, x, axis, keepdims) * _argmax_share(ans, x, axis, keepdims)


def _extreme_jvp(t: Any, ans: Any, x: Any, axis: Optional[tuple], keepdims: bool) -> Any:
    return (t * _argmax_share(ans, x, axis, keepdims)).sum(axis=axis, keepdims=keepdims)


max_p = primitive(lambda x, axis, keepdims: np.max(x, axis=axis, keepdims=keepdims), "max")
max_p.defvjp(_extreme_vjp, text="g to the maximal element(s), split evenly between ties")
max_p.defjvp(_extreme_jvp)
min_p = primitive(lambda x, axis, keepdims: np.min(x, axis=axis, keepdims=keepdims), "min")
min_p.defvjp(_extreme_vjp, text="g to the minimal element(s), split evenly between ties")
min_p.defjvp(_extreme_jvp)


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


# ---------------------------------------------------------------- logsumexp, var
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


logsumexp_p = primitive(_logsumexp, "logsumexp")
logsumexp_p.defvjp(lambda g, ans, x, axis, keepdims: _expand(g, x, axis, keepdims) * _softmax_of(x, ans, axis),
                    text="g * softmax(x)")
logsumexp_p.defjvp(lambda t, ans, x, axis, keepdims:
                    (t * _softmax_of(x, ans, axis)).sum(axis=axis, keepdims=keepdims))


@public(method=True)
def logsumexp(x: Any, axis: Axis = None, keepdims: bool = False) -> Tensor:
    """log(sum(exp(x))) over `axis`, without overflow (finite for logits of +-1000)."""
    x = as_tensor(x)
    return logsumexp_p(x, axis=normalize_axis(axis, x.ndim, "logsumexp"), keepdims=bool(keepdims))


logsumexp_p.domain = reduction_domain(logsumexp)


def _centered(x: Any, axis: Optional[tuple]) -> Any:
    return x - x.mean(axis=axis, keepdims=True)


var_p = primitive(lambda x, axis, keepdims, ddof: np.var(x, axis=axis, keepdims=keepdims, ddof=ddof), "var")
var_p.defvjp(lambda g, ans, x, axis, keepdims, ddof:
            _expand(g, x, axis, keepdims) * _centered(x, axis) * (2.0 / (_count(x.shape, axis) - ddof)),
            text="g * 2 (x - mean) / (n - ddof)")
var_p.defjvp(lambda t, ans, x, axis, keepdims, ddof:
            (t * _centered(x, axis)).sum(axis=axis, keepdims=keepdims) * (2.0 / (_count(x.shape, axis) - ddof)))


@public(method=True)
def var(x: Any, axis: Axis = None, keepdims: bool = False, ddof: int = 0) -> Tensor:
    """Variance over `axis`, dividing by n - ddof."""
    x = as_tensor(x)
    return var_p(x, axis=normalize_axis(axis, x.ndim, "var"), keepdims=bool(keepdims), ddof=ddof)


def _var_domain(c: Any) -> tuple:
    x = c.array(c.shape(min_dims=1, min_side=2))
    axis, keepdims, ddof = c.axis_argument(x.ndim), c.boolean(), c.choice([0, 1])
    return (lambda t: var(t, axis=axis, keepdims=keepdims, ddof=ddof)), [x]


var_p.domain = _var_domain


# ---------------------------------------------------------------- softmax along one axis
def _softmax(x: np.ndarray, axis: int) -> np.ndarray:
    e = np.exp(x - np.max(x, axis=axis, keepdims=True))
    return e / np.sum(e, axis=axis, keepdims=True)


def _log_softmax(x: np.ndarray, axis: int) -> np.ndarray:
    shifted = x - np.max(x, axis=axis, keepdims=True)
    return shifted - np.log(np.sum(np.exp(shifted), axis=axis, keepdims=True))


softmax_p = primitive(_softmax, "softmax")
softmax_p.defvjp(lambda g, ans, x, axis: ans * (g - (g * ans).sum(axis=axis, keepdims=True)),
                  text="a * (g - sum(g * a))")
softmax_p.defjvp(lambda t, ans, x, axis: ans * (t - (t * ans).sum(axis=axis, keepdims=True)))

log_softmax_p = primitive(_log_softmax, "log_softmax")
log_softmax_p.defvjp(lambda g, ans, x, axis: g - exp(ans) * g.sum(axis=axis, keepdims=True),
                      text="g - softmax(x) * sum(g)")
log_softmax_p.defjvp(lambda t, ans, x, axis: t - (exp(ans) * t).sum(axis=axis, keepdims=True))


@public(method=True)
def softmax(x: Any, axis: int = -1) -> Tensor:
    """exp(x) / sum(exp(x)) along `axis`, stable for logits of +-1000."""
    x = as_tensor(x)
    return softmax_p(x, axis=one_axis(axis, builtins.max(x.ndim, 1), "softmax"))


@public(method=True)
def log_softmax(x: Any, axis: int = -1) -> Tensor:
    """x - logsumexp(x) along `axis`, stable for logits of +-1000."""
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
