"""Shape primitives: reshape, transpose, broadcast_to, concatenate, indexing and its adjoint.

All are linear: each moves elements without changing them, so its JVP is the op itself applied
to the tangent, and its VJP moves the cotangent back (reshape back, permute back, sum over the
broadcast axes, slice, scatter).
"""
from __future__ import annotations

from typing import Any, Optional, Sequence

import numpy as np

from ..arguments import Axis, normalize_axis, normalize_index, one_axis, resolve_shape
from ..declaration import linear_jvp, primitive, public
from ..tensor import Tensor, as_tensor

# ---------------------------------------------------------------- reshape, transpose
reshape_p = primitive(lambda x, shape: np.reshape(x, shape), "reshape")
reshape_p.defvjp(lambda g, ans, x, shape: g.reshape(x.shape), text="g reshaped to the input's shape")
linear_jvp(reshape_p)


@public
def reshape(x: Any, shape: Any) -> Tensor:
    """The same elements in a new shape (one entry may be -1)."""
    x = as_tensor(x)
    shape = (int(shape),) if isinstance(shape, (int, np.integer)) else tuple(int(n) for n in shape)
    if shape == x.shape:
        return x
    try:
        new_shape = resolve_shape(shape, x.size)
    except ValueError:
        raise ValueError(f"reshape: cannot reshape a tensor of shape {x.shape} ({x.size} elements) "
                         f"into shape {shape}") from None
    return reshape_p(x, shape=new_shape)


def _reshape_domain(c: Any) -> tuple:
    x = c.array(c.shape())
    target = c.choice([(-1,), (1, -1), (x.size, 1), x.shape[::-1] if x.ndim else ()])
    if target == () and x.size != 1:
        target = (-1,)
    return (lambda t: reshape(t, target)), [x]


reshape_p.domain = _reshape_domain


@public
def expand_dims(x: Any, axis: int) -> Tensor:
    """Insert an axis of length 1 at `axis` (a reshape)."""
    x = as_tensor(x)
    a = one_axis(axis, x.ndim + 1, "expand_dims")
    return reshape_p(x, shape=x.shape[:a] + (1,) + x.shape[a:])


@public
def squeeze(x: Any, axis: Axis = None) -> Tensor:
    """Remove axes of length 1 (all of them when `axis` is None) (a reshape)."""
    x = as_tensor(x)
    if axis is None:
        axes = tuple(i for i, n in enumerate(x.shape) if n == 1)
    else:
        axes = normalize_axis(axis, x.ndim, "squeeze") or ()
        for a in axes:
            if x.shape[a] != 1:
                raise ValueError(f"squeeze: axis {a} of shape {x.shape} has length {x.shape[a]}, not 1")
    return reshape_p(x, shape=tuple(n for i, n in enumerate(x.shape) if i not in axes))


transpose_p = primitive(lambda x, axes: np.transpose(x, axes), "transpose")  # axes: a full permutation
transpose_p.defvjp(lambda g, ans, x, axes: transpose_p(g, axes=tuple(np.argsort(axes))),
                   text="g with the axes permuted back")
linear_jvp(transpose_p)


@public
def transpose(x: Any, axes: Optional[Sequence[int]] = None) -> Tensor:
    """Permute the axes (reverse them when `axes` is None)."""
    x = as_tensor(x)
    if axes is None:
        axes = tuple(range(x.ndim))[::-1]
    else:
        axes = tuple(int(a) % max(x.ndim, 1) for a in axes)
        if sorted(axes) != list(range(x.ndim)):
            raise ValueError(f"transpose: axes {tuple(axes)} are not a permutation of the "
                             f"{x.ndim} axes of a tensor of shape {x.shape}")
    if x.ndim < 2:
        return x
    return transpose_p(x, axes=axes)


public(transpose, name="permute")


@public
def swapaxes(x: Any, a: int, b: int) -> Tensor:
    """Exchange two axes."""
    x = as_tensor(x)
    axes = list(range(x.ndim))
    a, b = one_axis(a, x.ndim, "swapaxes"), one_axis(b, x.ndim, "swapaxes")
    axes[a], axes[b] = axes[b], axes[a]
    return transpose(x, axes)


def _transpose_domain(c: Any) -> tuple:
    x = c.array(c.shape(min_dims=2, max_dims=4))
    axes = c.permutation(x.ndim)
    return (lambda t: transpose(t, axes)), [x]


transpose_p.domain = _transpose_domain


# ---------------------------------------------------------------- broadcast_to
def _broadcast_to(x: np.ndarray, shape: tuple) -> np.ndarray:
    """x repeated to `shape`, as an array of its own (np.broadcast_to's read-only view is slower
    to make for small arrays, and would hand users gradients they cannot write to)."""
    out = np.empty(shape, dtype=np.result_type(x))
    out[...] = x
    return out


broadcast_to_p = primitive(_broadcast_to, "broadcast_to")
broadcast_to_p.defvjp(lambda g, ans, x, shape: g, text="g summed over the broadcast axes")
linear_jvp(broadcast_to_p)


@public(method=True)
def broadcast_to(x: Any, shape: Sequence[int]) -> Tensor:
    """x repeated along new or length-1 axes to `shape` (gradients are summed back)."""
    x = as_tensor(x)
    shape = tuple(int(n) for n in shape)
    try:
        if np.broadcast_shapes(x.shape, shape) != shape:
            raise ValueError
    except ValueError:
        raise ValueError(f"broadcast_to: a tensor of shape {x.shape} cannot be broadcast to {shape}") from None
    return broadcast_to_p(x, shape=shape)


def _broadcast_domain(c: Any) -> tuple:
    x = c.array(c.shape(max_dims=2))
    target = tuple(c.integer(1, 3) for _ in range(c.integer(0, 2))) + \
        tuple(n if n != 1 else c.integer(1, 3) for n in x.shape)
    return (lambda t: broadcast_to(t, target)), [x]


broadcast_to_p.domain = _broadcast_domain


# ---------------------------------------------------------------- concatenate, stack
def _concatenate(*xs: np.ndarray, axis: int) -> np.ndarray:
    return np.concatenate(xs, axis=axis)


def _concat_slice(g: Any, xs: tuple, axis: int, argnum: int) -> Any:
    start = 0
    for x in xs[:argnum]:
        start += x.shape[axis]
    index = (slice(None),) * axis + (slice(start, start + xs[argnum].shape[axis]),)
    return getitem_p(g, index=index)


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
    parts = [t if i == argnum else np.zeros(x.shape, dtype=t.dtype) for i, x in enumerate(xs)]
    return concatenate_p(*parts, axis=axis)


concatenate_p = primitive(_concatenate, "concatenate", variadic=True)
concatenate_p.defvjp(lambda g, ans, *xs, axis, argnum: _concat_slice(g, xs, axis, argnum),
                     text="the input's slice of g")
concatenate_p.defvjp_joint(_concat_slices)
concatenate_p.defjvp(lambda t, ans, *xs, axis, argnum: _concat_tangent(t, xs, axis, argnum))


@public
def concatenate(tensors: Sequence[Any], axis: int = 0) -> Tensor:
    """Join tensors along an existing axis."""
    ts = [as_tensor(t) for t in tensors]
    if not ts:
        raise ValueError("concatenate: needs at least one tensor")
    ndim = ts[0].ndim
    if ndim == 0:
        raise ValueError("concatenate: 0-d tensors cannot be concatenated; use stack")
    a = one_axis(axis, ndim, "concatenate")
    for i, t in enumerate(ts):
        if t.ndim != ndim or t.shape[:a] + t.shape[a + 1:] != ts[0].shape[:a] + ts[0].shape[a + 1:]:
            raise ValueError(f"concatenate: tensor {i} has shape {t.shape}, which does not match "
                             f"{ts[0].shape} outside axis {a}")
    return concatenate_p(*ts, axis=a)


@public
def stack(tensors: Sequence[Any], axis: int = 0) -> Tensor:
    """Join tensors of equal shape along a new axis."""
    ts = [as_tensor(t) for t in tensors]
    if not ts:
        raise ValueError("stack: needs at least one tensor")
    for i, t in enumerate(ts):
        if t.shape != ts[0].shape:
            raise ValueError(f"stack: tensor {i} has shape {t.shape}, expected {ts[0].shape} like tensor 0")
    a = one_axis(axis, ts[0].ndim + 1, "stack")
    return concatenate_p(*[expand_dims(t, a) for t in ts], axis=a)


def _concatenate_domain(c: Any) -> tuple:
    base = c.shape(min_dims=1)
    axis = c.integer(0, len(base) - 1)
    parts = []
    for _ in range(c.integer(1, 3)):
        s = list(base)
        s[axis] = c.integer(1, 3)
        parts.append(c.array(tuple(s)))
    weights = np.arange(1.0, 1 + sum(p.shape[axis] for p in parts)).reshape((-1,) + (1,) * (len(base) - 1 - axis))
    # weights tell the parts' places apart (a sum alone would not see a wrong slice)
    return (lambda *ts: concatenate(ts, axis=axis) * weights.astype(ts[0].dtype)), parts


concatenate_p.domain = _concatenate_domain


# ---------------------------------------------------------------- indexing and its adjoint
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


getitem_p = primitive(lambda x, index: x[index], "getitem")
getitem_p.defvjp(lambda g, ans, x, index: scatter_add_p(g, index=index, shape=x.shape),
                 text="g scattered back to the indexed positions (repeats add up)")
linear_jvp(getitem_p)

scatter_add_p = primitive(_scatter_add, "scatter_add")
scatter_add_p.defvjp(lambda g, ans, v, index, shape: getitem_p(g, index=index), text="g at the index")
linear_jvp(scatter_add_p)


def getitem(x: Any, index: Any) -> Tensor:
    """x[index]: slices, integers, None, Ellipsis, integer and boolean arrays, as NumPy."""
    x = as_tensor(x)
    return getitem_p(x, index=normalize_index(index, x.shape))


@public
def scatter_add(values: Any, index: Any, shape: Sequence[int]) -> Tensor:
    """zeros(shape) with `values` added at `index` (repeated indices add up): the adjoint of
    indexing, `scatter_add(g, index, x.shape)` is d/dx of <g, x[index]>."""
    shape = tuple(int(n) for n in shape)
    return scatter_add_p(as_tensor(values), index=normalize_index(index, shape), shape=shape)


def _getitem_domain(c: Any) -> tuple:
    x = c.array(c.shape(min_dims=1))
    n = x.shape[0]
    kind = c.choice(["slice", "int", "array", "mask", "ellipsis"])
    if kind == "slice":
        index = slice(c.integer(0, n - 1), None, c.choice([1, 2, -1]))
    elif kind == "int":
        index = c.integer(-n, n - 1)
    elif kind == "array":  # repeated indices must add up
        index = np.asarray([c.integer(-n, n - 1) for _ in range(c.integer(1, 6))])
    elif kind == "mask":
        index = c.array(x.shape) > 0
    else:
        index = (Ellipsis, 0)
    return (lambda t: t[index]), [x]


def _scatter_add_domain(c: Any) -> tuple:
    shape = c.shape(min_dims=1)
    index = np.asarray([c.integer(0, shape[0] - 1) for _ in range(c.integer(1, 5))])
    g = c.array((len(index),) + shape[1:])
    return (lambda v: scatter_add(v, index, shape)), [g]


getitem_p.domain = _getitem_domain
scatter_add_p.domain = _scatter_add_domain
