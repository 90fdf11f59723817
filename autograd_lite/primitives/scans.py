"""Scans and orderings along one axis: cumulative sums and products, sorting and gathering,
and the product reduction, whose gradient is built from the scans.

A scan's primitive takes one non-negative `axis` and `reverse` (scan from the end): the VJP of
a scan from the start is a scan from the end and back, so both directions are one primitive.
The public functions follow NumPy (`axis=None` scans the flattened tensor).
"""
from __future__ import annotations

import builtins
from typing import Any, Optional

import numpy as np

from ..arguments import Axis, normalize_axis, one_axis
from ..batching import reduction_batch
from ..declaration import linear_jvp, primitive, public
from ..tensor import Tensor, _data, as_tensor
from .reductions import _reduced_shape, reduction_slope
from .shape import concatenate_p, getitem_p, reshape, transpose_p


def _scan(np_scan: Any, x: np.ndarray, axis: int, reverse: bool) -> np.ndarray:
    if reverse:
        return np.flip(np_scan(np.flip(x, axis), axis=axis), axis)
    return np_scan(x, axis=axis)


def _scan_axis(x: Tensor, axis: Optional[int], op: str) -> tuple:
    """(x, axis) for a scan primitive: NumPy's axis=None scans the flattened tensor, as does
    axis 0 or -1 of a 0-d one."""
    if axis is None or x.ndim == 0:
        if axis is not None:
            one_axis(axis, 1, op)
        return reshape(x, (-1,)), 0
    return x, one_axis(axis, x.ndim, op)


def _shifted(v: Any, d: int, axis: int, reverse: bool, fill: float = 0.0) -> Any:
    """v moved d places along `axis`: w[k] = v[k - d] (v[k + d] when `reverse`), and `fill`
    where that index falls outside."""
    n = v.shape[axis]
    pad = np.full(v.shape[:axis] + (d,) + v.shape[axis + 1:], fill, dtype=_data(v).dtype)
    lead = (slice(None),) * axis
    if reverse:
        return concatenate_p(getitem_p(v, index=lead + (slice(d, None),)), pad, axis=axis)
    return concatenate_p(pad, getitem_p(v, index=lead + (slice(0, n - d),)), axis=axis)


def _linear_scan(u: Any, a: Any, axis: int, reverse: bool) -> Any:
    """y with y[k] = u[k] + a[k] y[k - 1] along `axis` (y[k + 1] when `reverse`), nothing
    before the first: y[k] = sum_{i <= k} u[i] prod_{i < j <= k} a[j].

    By doubling: with y[k] = u[k] + a[k] y[k - d], substituting y[k - d] gives the same form
    for 2d, so log2(n) steps of shifted products and sums. No division: the result is a
    polynomial in u and a, exact (and differentiable, to every order) where a has zeros.
    """
    d = 1
    while d < u.shape[axis]:
        u = u + a * _shifted(u, d, axis, reverse)
        a = a * _shifted(a, d, axis, reverse)
        d *= 2
    return u


def _with_zeros(c: Any, x: np.ndarray) -> np.ndarray:
    """x with up to two of its elements set to exactly 0 (where a division by x would fail)."""
    for _ in range(c.integer(0, 2)):
        x.flat[c.integer(0, x.size - 1)] = 0.0
    return x


def _away_from_0(c: Any, shape: tuple) -> np.ndarray:
    """Values with 0.5 <= |x| <= 1.5: products of dozens of them stay moderate."""
    return c.array(shape, -1.5, 1.5, away_from=(0.0,), margin=0.5)


def _scan_domain(fn: Any, prim: Any, values: Any) -> Any:
    """Test domain of a scan: the public function on any axis (None included), or the
    primitive scanning from the end, which the VJP rules use."""
    def domain(c: Any) -> tuple:
        x = values(c, c.shape())
        if x.ndim and c.boolean():
            axis = c.integer(0, x.ndim - 1)
            return (lambda t: prim(t, axis=axis, reverse=True)), [x]
        span = builtins.max(x.ndim, 1)
        axis = c.choice([None, *range(-span, span)])
        return (lambda t: fn(t, axis=axis)), [x]
    return domain


# ---------------------------------------------------------------- cumsum
cumsum_p = primitive(lambda x, axis, reverse: _scan(np.cumsum, x, axis, reverse), "cumsum")
cumsum_p.defvjp(lambda g, ans, x, axis, reverse: cumsum_p(g, axis=axis, reverse=not reverse),
                text="g summed from the other end (a cumsum the other way)")
linear_jvp(cumsum_p)


@public(method=True)
def cumsum(x: Any, axis: Optional[int] = None) -> Tensor:
    """Cumulative sum along `axis` (of the flattened tensor when None), as np.cumsum.

        >>> cumsum([[1.0, 2.0], [3.0, 4.0]], axis=1)      # [[1, 3], [3, 7]]
    """
    x, a = _scan_axis(as_tensor(x), axis, "cumsum")
    return cumsum_p(x, axis=a, reverse=False)


cumsum_p.domain = _scan_domain(cumsum, cumsum_p, lambda c, shape: c.array(shape))


# ---------------------------------------------------------------- cumprod
# out[k] = prod_{j <= k} x[j]. Its VJP is d/dx[i] sum_k g[k] out[k] = sum_{k >= i} g[k] out[k] / x[i]
# where x has no zero (a cumsum from the end, divided). With zeros, that division fails; then it is
# L[i] R[i], the product before i, L[i] = out[i - 1], times R[i] = sum_{k >= i} g[k] prod_{i < j <= k}
# x[j], the scan R[i] = g[i] + x[i + 1] R[i + 1]. Likewise the JVP sum_{i <= k} t[i] L[i]
# prod_{i < j <= k} x[j]. Both are polynomials in x: exact at zeros, to every order.
def _cumprod_vjp(g: Any, ans: Any, x: Any, axis: int, reverse: bool) -> Any:
    if np.all(_data(x) != 0):
        return cumsum_p(g * ans, axis=axis, reverse=not reverse) / x
    before = _shifted(ans, 1, axis, reverse, fill=1.0)
    return before * _linear_scan(g, _shifted(x, 1, axis, not reverse), axis, not reverse)


def _cumprod_jvp(t: Any, ans: Any, x: Any, axis: int, reverse: bool) -> Any:
    if np.all(_data(x) != 0):
        return ans * cumsum_p(t / x, axis=axis, reverse=reverse)
    return _linear_scan(t * _shifted(ans, 1, axis, reverse, fill=1.0), x, axis, reverse)


cumprod_p = primitive(lambda x, axis, reverse: _scan(np.cumprod, x, axis, reverse), "cumprod")
cumprod_p.defvjp(_cumprod_vjp, text="cumsum of g * out from the other end, / x (with zeros: a "
                                    "product before times a scan after, no division)")
cumprod_p.defjvp(_cumprod_jvp)


@public(method=True)
def cumprod(x: Any, axis: Optional[int] = None) -> Tensor:
    """Cumulative product along `axis` (of the flattened tensor when None), as np.cumprod.

    The gradient is exact where x has zeros too (no division by x there).

        >>> cumprod([1.0, 2.0, 3.0])                       # [1, 2, 6]
    """
    x, a = _scan_axis(as_tensor(x), axis, "cumprod")
    return cumprod_p(x, axis=a, reverse=False)


cumprod_p.domain = _scan_domain(cumprod, cumprod_p,
                                lambda c, shape: _with_zeros(c, _away_from_0(c, shape)))


# ---------------------------------------------------------------- prod
def _others_product(x: Any, axis: Optional[tuple]) -> Any:
    """For each element, the product of the others over `axis`: the products before it and
    after it (exclusive cumprods from both ends), multiplied. No division, so exact with zeros,
    and its derivative is again a product of others."""
    axes = tuple(range(x.ndim)) if axis is None else axis
    order = tuple(i for i in range(x.ndim) if i not in axes) + axes
    moved = x if order == tuple(range(x.ndim)) else transpose_p(x, axes=order)
    kept = moved.shape[:x.ndim - len(axes)]
    rows = moved.reshape(kept + (int(np.prod(moved.shape[len(kept):])),))  # (kept..., n)
    last = len(kept)
    before = _shifted(cumprod_p(rows, axis=last, reverse=False), 1, last, False, fill=1.0)
    after = _shifted(cumprod_p(rows, axis=last, reverse=True), 1, last, True, fill=1.0)
    others = (before * after).reshape(moved.shape)
    return others if moved is x else transpose_p(others, axes=tuple(np.argsort(order)))


def _prod_slope(ans: Any, x: Any, axis: Optional[tuple]) -> Any:
    """d prod / d x[i], the product of the others: prod / x[i] unless x has a zero."""
    if np.all(_data(x) != 0):
        return ans.reshape(_reduced_shape(x.shape, axis)) / x
    return _others_product(x, axis)


prod_p = primitive(lambda x, axis, keepdims: np.prod(x, axis=axis, keepdims=keepdims), "prod")
reduction_slope(prod_p, _prod_slope, text="g * the product of the others (prod / x without zeros)")


@public(method=True)
def prod(x: Any, axis: Axis = None, keepdims: bool = False) -> Tensor:
    """Product over `axis` (all axes when None); 1 over no elements, as np.prod.

    The gradient is the product of the other elements, exact with zeros: with one zero only
    that element's is non-zero, with two or more all are 0.
    """
    x = as_tensor(x)
    return prod_p(x, axis=normalize_axis(axis, x.ndim, "prod"), keepdims=bool(keepdims))


def _prod_domain(c: Any) -> tuple:
    x = _with_zeros(c, _away_from_0(c, c.shape()))
    axis, keepdims = c.axis_argument(x.ndim), c.boolean()
    return (lambda t: prod(t, axis=axis, keepdims=keepdims)), [x]


prod_p.domain = _prod_domain


# ---------------------------------------------------------------- gathering along an axis, sort
def _along(indices: np.ndarray, axis: int, shape: tuple) -> tuple:
    """The NumPy index that takes indices[..., k, ...] along `axis` of a tensor of `shape` and
    keeps its place on the other axes (np.take_along_axis's)."""
    ndim = len(shape)
    return tuple(indices if d == axis else np.arange(n).reshape((1,) * d + (n,) + (1,) * (ndim - d - 1))
                 for d, n in enumerate(shape))


@public
def take_along_axis(x: Any, indices: Any, axis: Optional[int] = -1) -> Tensor:
    """x's elements at `indices` along `axis` (of the flattened x when None), as
    np.take_along_axis: `indices` has x's number of axes, and the other axes broadcast. The
    gradient adds g back at the indices (repeated indices add up).

        >>> take_along_axis(x, np.argsort(x.data, axis=1), axis=1)   # x sorted along axis 1
    """
    x = as_tensor(x)
    indices = np.asarray(_data(indices))
    if indices.dtype.kind not in "iu":
        raise TypeError(f"take_along_axis: indices must be integers, got dtype {indices.dtype}")
    if axis is None:
        if indices.ndim != 1:
            raise ValueError(f"take_along_axis: with axis=None the indices must be 1-D, got shape "
                             f"{indices.shape}")
        x, axis = reshape(x, (-1,)), 0
    if indices.ndim != x.ndim:
        raise ValueError(f"take_along_axis: indices of shape {indices.shape} must have as many axes "
                         f"as the tensor of shape {x.shape}")
    a = one_axis(axis, x.ndim, "take_along_axis")
    n = x.shape[a]
    if indices.size and (indices.max() >= n or indices.min() < -n):
        bad = indices[(indices >= n) | (indices < -n)][0]
        raise IndexError(f"take_along_axis: index {bad} is out of range for axis {a} with size {n} "
                         f"(tensor shape {x.shape})")
    try:
        np.broadcast_shapes(indices.shape[:a] + indices.shape[a + 1:], x.shape[:a] + x.shape[a + 1:])
    except ValueError:
        raise ValueError(f"take_along_axis: indices of shape {indices.shape} do not broadcast with the "
                         f"tensor of shape {x.shape} outside axis {a}") from None
    return getitem_p(x, index=_along(indices, a, x.shape))


def _sort_order(x: Any, axis: int) -> np.ndarray:
    """Where each output element comes from: np.sort's order, ties in their original order."""
    return np.argsort(_data(x), axis=axis, kind="stable")


def _unsort_index(x: Any, axis: int) -> tuple:
    """The index that puts sorted values back in x's order (the inverse permutation)."""
    order = _sort_order(x, axis)
    inverse = np.empty_like(order)
    ranks = np.arange(order.shape[axis]).reshape((-1,) + (1,) * (order.ndim - axis - 1))
    np.put_along_axis(inverse, order, np.broadcast_to(ranks, order.shape), axis)
    return _along(inverse, axis, order.shape)


sort_p = primitive(lambda x, axis: np.sort(x, axis=axis), "sort")
sort_p.defvjp(lambda g, ans, x, axis: getitem_p(g, index=_unsort_index(x, axis)),
              text="g put back in the input's order (the inverse permutation)")
sort_p.defjvp(lambda t, ans, x, axis: getitem_p(t, index=_along(_sort_order(x, axis), axis, x.shape)))


@public(method=True)
def sort(x: Any, axis: Optional[int] = -1) -> Tensor:
    """x sorted along `axis` (the flattened x when None), as np.sort (NaN last).

    Each element's gradient is the cotangent of the place it was sorted to. Tied elements keep
    their original order (a stable sort), so the first of them gets the first tied place's
    cotangent; a tie is a kink, where any such choice is a one-sided derivative.
    """
    x = as_tensor(x)
    if axis is None:
        return sort_p(reshape(x, (-1,)), axis=0)
    return sort_p(x, axis=one_axis(axis, x.ndim, "sort"))


def _sort_domain(c: Any) -> tuple:
    x = c.array(c.shape(min_dims=1), spread=True)
    axis = c.choice([None, *range(-x.ndim, x.ndim)])
    return (lambda t: sort(t, axis=axis)), [x]


sort_p.domain = _sort_domain


# batching rules (vmap): the scanned (or reduced, or sorted) axis moves up by one
for _prim in (cumsum_p, cumprod_p, prod_p, sort_p):
    _prim.defbatch(reduction_batch(_prim))
