"""Shape primitives: reshape, transpose, broadcast_to, concatenate, indexing and its adjoint,
roll, tril/triu, pad and index_update; and the NumPy shape functions built on them (ravel,
atleast_nd, moveaxis, tile, the stacks, flip, rot90, repeat, split, diff).

All are linear: each moves elements without changing them, so its JVP is the op itself applied
to the tangent, and its VJP moves the cotangent back (reshape back, permute back, sum over the
broadcast axes, slice, scatter, roll back).
"""
from __future__ import annotations

from typing import Any, List, Optional, Sequence, Tuple, Union

import numpy as np

from ..arguments import (Axis, distinct_axes, integer_argument, normalize_axis, normalize_index,
                         one_axis, resolve_shape)
from ..batching import batch_by_loop, batch_size, example_ndim, shift_axes, with_batch
from ..declaration import linear_jvp, primitive, public
from ..tensor import Tensor, _data, as_tensor

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


@public(method=True)
def ravel(x: Any) -> Tensor:
    """The elements as a 1-d tensor, in C order (a reshape)."""
    return reshape(x, (-1,))


def _at_least(x: Any, ndim: int) -> Tensor:
    """x with length-1 axes added as np.atleast_{1,2,3}d does: (n,) -> (1, n) -> (1, n, 1),
    (m, n) -> (m, n, 1)."""
    x = as_tensor(x)
    if x.ndim >= ndim:
        return x
    if x.ndim == 0:
        shape = (1,) * ndim
    elif x.ndim == 1:
        shape = ((1,) + x.shape + (1,))[:ndim]
    else:
        shape = x.shape + (1,)
    return reshape_p(x, shape=shape)


@public
def atleast_1d(*tensors: Any) -> Union[Tensor, Tuple[Tensor, ...]]:
    """Each input with at least one axis (a 0-d tensor becomes shape (1,)); one tensor for one
    input, a tuple for several."""
    out = tuple(_at_least(t, 1) for t in tensors)
    return out[0] if len(out) == 1 else out


@public
def atleast_2d(*tensors: Any) -> Union[Tensor, Tuple[Tensor, ...]]:
    """Each input with at least two axes: () -> (1, 1), (n,) -> (1, n)."""
    out = tuple(_at_least(t, 2) for t in tensors)
    return out[0] if len(out) == 1 else out


@public
def atleast_3d(*tensors: Any) -> Union[Tensor, Tuple[Tensor, ...]]:
    """Each input with at least three axes: () -> (1, 1, 1), (n,) -> (1, n, 1), (m, n) -> (m, n, 1)."""
    out = tuple(_at_least(t, 3) for t in tensors)
    return out[0] if len(out) == 1 else out


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
        # in range and none repeated; one int is one axis, as in NumPy (x.transpose(0) of a 1-d x)
        axes = distinct_axes(axes if isinstance(axes, (int, np.integer)) else tuple(axes), x.ndim,
                             "transpose")
        if len(axes) != x.ndim:
            raise ValueError(f"transpose: axes {axes} are not a permutation of the "
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


@public
def moveaxis(x: Any, source: Union[int, Sequence[int]], destination: Union[int, Sequence[int]]) -> Tensor:
    """Move the axes `source` to the places `destination`, the others keeping their order
    (a transpose). Example: moveaxis(x, 0, -1) turns (3, 4, 5) into (4, 5, 3)."""
    x = as_tensor(x)
    src = distinct_axes(source, x.ndim, "moveaxis")
    dst = distinct_axes(destination, x.ndim, "moveaxis")
    if len(src) != len(dst):
        raise ValueError(f"moveaxis: source {source} and destination {destination} must name as "
                         "many axes")
    order = [a for a in range(x.ndim) if a not in src]
    for d, a in sorted(zip(dst, src)):
        order.insert(d, a)
    return transpose(x, order)


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


@public
def tile(x: Any, reps: Union[int, Sequence[int]]) -> Tensor:
    """x repeated `reps[i]` times along axis i, as whole blocks (np.tile): tile([1, 2], 2) is
    [1, 2, 1, 2]. Shorter `reps` are padded with 1s in front; so is x's shape when `reps` is
    longer. A reshape, a broadcast and a reshape: the gradient sums over the copies."""
    x = as_tensor(x)
    reps = tuple(integer_argument(r, "tile", "reps")
                 for r in (reps if isinstance(reps, (tuple, list, np.ndarray)) else (reps,)))
    if any(r < 0 for r in reps):
        raise ValueError(f"tile: reps must be non-negative, got {reps}")
    ndim = max(x.ndim, len(reps))
    shape = (1,) * (ndim - x.ndim) + x.shape
    reps = (1,) * (ndim - len(reps)) + reps
    # (s0, s1) -> (1, s0, 1, s1) -> (r0, s0, r1, s1) -> (r0 * s0, r1 * s1)
    spaced = reshape_p(x, shape=tuple(v for n in shape for v in (1, n)))
    blocks = broadcast_to_p(spaced, shape=tuple(v for r, n in zip(reps, shape) for v in (r, n)))
    return reshape_p(blocks, shape=tuple(r * n for r, n in zip(reps, shape)))


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


concatenate_p = primitive(_concatenate, "concatenate", variadic=True)
concatenate_p.defvjp(lambda g, ans, *xs, axis, argnum: _concat_slice(g, xs, axis, argnum),
                     text="the input's slice of g")
concatenate_p.defvjp_joint(_concat_slices)
linear_jvp(concatenate_p)


@public
def concatenate(tensors: Sequence[Any], axis: int = 0) -> Tensor:
    """Join tensors along an existing axis."""
    return _join(_tensors(tensors, "concatenate"), axis, "concatenate")


@public
def stack(tensors: Sequence[Any], axis: int = 0) -> Tensor:
    """Join tensors of equal shape along a new axis."""
    ts = _tensors(tensors, "stack")
    for i, t in enumerate(ts):
        if t.shape != ts[0].shape:
            raise ValueError(f"stack: tensor {i} has shape {t.shape}, expected {ts[0].shape} like tensor 0")
    a = one_axis(axis, ts[0].ndim + 1, "stack")
    return concatenate_p(*[expand_dims(t, a) for t in ts], axis=a)


@public
def vstack(tensors: Sequence[Any]) -> Tensor:
    """Join along the first axis, 1-d tensors as rows: vstack([a, b]) of (n,)s is (2, n)."""
    return _join([_at_least(t, 2) for t in _tensors(tensors, "vstack")], 0, "vstack")


@public
def hstack(tensors: Sequence[Any]) -> Tensor:
    """Join along the second axis (the first for 1-d tensors): hstack([a, b]) of (n,)s is (2n,)."""
    ts = [_at_least(t, 1) for t in _tensors(tensors, "hstack")]
    return _join(ts, 0 if ts[0].ndim == 1 else 1, "hstack")


@public
def dstack(tensors: Sequence[Any]) -> Tensor:
    """Join along the third axis, after atleast_3d: dstack([a, b]) of (m, n)s is (m, n, 2)."""
    return _join([_at_least(t, 3) for t in _tensors(tensors, "dstack")], 2, "dstack")


@public
def column_stack(tensors: Sequence[Any]) -> Tensor:
    """Join as columns: 1-d tensors (n,) become (n, 1) columns, 2-d ones join along axis 1."""
    ts = [t if t.ndim >= 2 else reshape_p(t, shape=(t.size, 1))
          for t in _tensors(tensors, "column_stack")]
    return _join(ts, 1, "column_stack")


def _tensors(tensors: Sequence[Any], op: str) -> List[Tensor]:
    ts = [as_tensor(t) for t in tensors]
    if not ts:
        raise ValueError(f"{op}: needs at least one tensor")
    return ts


def _join(ts: List[Tensor], axis: int, op: str) -> Tensor:
    """concatenate_p after checking that the shapes agree outside `axis`."""
    ndim = ts[0].ndim
    if ndim == 0:
        raise ValueError(f"{op}: 0-d tensors cannot be concatenated; use stack")
    a = one_axis(axis, ndim, op)
    for i, t in enumerate(ts):
        if t.ndim != ndim or t.shape[:a] + t.shape[a + 1:] != ts[0].shape[:a] + ts[0].shape[a + 1:]:
            raise ValueError(f"{op}: tensor {i} has shape {t.shape}, which does not match "
                             f"{ts[0].shape} outside axis {a}")
    return concatenate_p(*ts, axis=a)


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


# ---------------------------------------------------------------- built from indexing
@public
def flip(x: Any, axis: Axis = None) -> Tensor:
    """The elements in reverse order along `axis` (all axes when None): a slice with step -1."""
    x = as_tensor(x)
    axes = distinct_axes(axis, x.ndim, "flip")
    return getitem_p(x, index=tuple(slice(None, None, -1) if a in axes else slice(None)
                                    for a in range(x.ndim)))


@public
def fliplr(x: Any) -> Tensor:
    """Columns in reverse order: flip(x, 1) for a tensor of at least two axes."""
    x = as_tensor(x)
    if x.ndim < 2:
        raise ValueError(f"fliplr: needs a tensor of at least 2 dimensions, got shape {x.shape}")
    return flip(x, 1)


@public
def flipud(x: Any) -> Tensor:
    """Rows in reverse order: flip(x, 0) for a tensor of at least one axis."""
    x = as_tensor(x)
    if x.ndim < 1:
        raise ValueError("flipud: needs a tensor of at least 1 dimension, got a 0-d tensor")
    return flip(x, 0)


@public
def rot90(x: Any, k: int = 1, axes: Sequence[int] = (0, 1)) -> Tensor:
    """Rotate by 90 degrees k times in the plane of `axes`, from the first axis towards the
    second (np.rot90): a flip and a transpose."""
    x = as_tensor(x)
    k = integer_argument(k, "rot90", "k") % 4
    axes = tuple(axes)
    if len(axes) != 2:
        raise ValueError(f"rot90: axes must name two axes, got {axes}")
    if x.ndim < 2:
        raise ValueError(f"rot90: needs a tensor of at least 2 dimensions, got shape {x.shape}")
    a, b = distinct_axes(axes, x.ndim, "rot90")
    if k == 0:
        return x
    if k == 2:
        return flip(x, (a, b))
    swapped = list(range(x.ndim))
    swapped[a], swapped[b] = b, a
    if k == 1:
        return transpose(flip(x, b), swapped)
    return flip(transpose(x, swapped), b)


@public(method=True)
def repeat(x: Any, repeats: Union[int, Sequence[int]], axis: Optional[int] = None) -> Tensor:
    """Each element repeated `repeats` times along `axis` (of the flattened x when None), or
    element i `repeats[i]` times: repeat([1, 2], [1, 3]) is [1, 2, 2, 2]. The gradient of an
    element is the sum over its copies."""
    x = as_tensor(x)
    if axis is None or x.ndim == 0:
        normalize_axis(axis, x.ndim, "repeat")  # a 0-d tensor accepts axis 0 and -1, as in NumPy
        x, a = ravel(x), 0
    else:
        a = one_axis(axis, x.ndim, "repeat")
    counts = np.asarray(repeats)
    n = x.shape[a]
    if counts.dtype.kind not in "iu" or counts.ndim > 1:
        raise TypeError(f"repeat: repeats must be an integer or a 1-d sequence of integers, got {repeats!r}")
    if (counts < 0).any():
        raise ValueError(f"repeat: repeats must be non-negative, got {repeats!r}")
    if counts.ndim == 1 and counts.size not in (1, n):
        raise ValueError(f"repeat: {counts.size} repeats for axis {a} of length {n} (shape {x.shape}); "
                         f"give one count, or one per element")
    lead, rest = x.shape[:a], x.shape[a + 1:]
    if counts.size == 1:  # (.., n, ..) -> (.., n, 1, ..) -> (.., n, r, ..) -> (.., n * r, ..)
        r = int(counts.reshape(()))
        spaced = reshape_p(x, shape=lead + (n, 1) + rest)
        copies = broadcast_to_p(spaced, shape=lead + (n, r) + rest)
        return reshape_p(copies, shape=lead + (n * r,) + rest)
    return getitem_p(x, index=(slice(None),) * a + (np.repeat(np.arange(n), counts),))


@public
def split(x: Any, indices_or_sections: Union[int, Sequence[int]], axis: int = 0) -> List[Tensor]:
    """x cut along `axis` into that many equal pieces, or at the given indices (x[:i0], x[i0:i1],
    ..., x[ik:]); each piece is a slice, so its gradient flows back to its place in x."""
    return _split(x, indices_or_sections, axis, "split", equal=True)


@public
def array_split(x: Any, indices_or_sections: Union[int, Sequence[int]], axis: int = 0) -> List[Tensor]:
    """split, allowing pieces of unequal length: n elements in k sections give n % k pieces of
    n // k + 1 elements first, then pieces of n // k."""
    return _split(x, indices_or_sections, axis, "array_split", equal=False)


@public
def hsplit(x: Any, indices_or_sections: Union[int, Sequence[int]]) -> List[Tensor]:
    """split along the second axis (the first for a 1-d tensor)."""
    x = as_tensor(x)
    if x.ndim == 0:
        raise ValueError("hsplit: needs a tensor of at least 1 dimension, got a 0-d tensor")
    return _split(x, indices_or_sections, 1 if x.ndim > 1 else 0, "hsplit", equal=True)


@public
def vsplit(x: Any, indices_or_sections: Union[int, Sequence[int]]) -> List[Tensor]:
    """split along the first axis of a tensor of at least two axes."""
    x = as_tensor(x)
    if x.ndim < 2:
        raise ValueError(f"vsplit: needs a tensor of at least 2 dimensions, got shape {x.shape}")
    return _split(x, indices_or_sections, 0, "vsplit", equal=True)


@public
def dsplit(x: Any, indices_or_sections: Union[int, Sequence[int]]) -> List[Tensor]:
    """split along the third axis of a tensor of at least three axes."""
    x = as_tensor(x)
    if x.ndim < 3:
        raise ValueError(f"dsplit: needs a tensor of at least 3 dimensions, got shape {x.shape}")
    return _split(x, indices_or_sections, 2, "dsplit", equal=True)


def _split(x: Any, indices_or_sections: Any, axis: int, op: str, equal: bool) -> List[Tensor]:
    x = as_tensor(x)
    if x.ndim == 0:
        raise ValueError(f"{op}: a 0-d tensor cannot be split")
    a = one_axis(axis, x.ndim, op)
    n = x.shape[a]
    if isinstance(indices_or_sections, (int, np.integer)):
        sections = int(indices_or_sections)
        if sections <= 0:
            raise ValueError(f"{op}: the number of sections must be positive, got {sections}")
        if equal and n % sections:
            raise ValueError(f"{op}: axis {a} of length {n} (shape {x.shape}) does not split into "
                             f"{sections} equal sections; array_split allows unequal ones")
        size, extra = divmod(n, sections)
        bounds = np.cumsum([0] + [size + 1] * extra + [size] * (sections - extra)).tolist()
    else:
        bounds = [0, *(integer_argument(i, op, "each index") for i in indices_or_sections), n]
    lead = (slice(None),) * a
    return [getitem_p(x, index=lead + (slice(start, stop),))
            for start, stop in zip(bounds[:-1], bounds[1:])]


@public
def diff(x: Any, n: int = 1, axis: int = -1, prepend: Any = None, append: Any = None) -> Tensor:
    """The n-th forward difference along `axis`: out[i] = x[i + 1] - x[i], applied n times, after
    joining `prepend` and `append` (numbers, or tensors of length-matching shape) to x's ends."""
    x = as_tensor(x)
    n = integer_argument(n, "diff", "n")
    if n < 0:
        raise ValueError(f"diff: the order n must be non-negative, got {n}")
    if n == 0:  # as in NumPy, x itself, without prepend and append
        return x
    if x.ndim == 0:
        raise ValueError("diff: needs a tensor of at least 1 dimension, got a 0-d tensor")
    a = one_axis(axis, x.ndim, "diff")
    parts = [x]
    if prepend is not None:
        parts.insert(0, _diff_end(prepend, x, a, "prepend"))
    if append is not None:
        parts.append(_diff_end(append, x, a, "append"))
    if len(parts) > 1:
        x = _join(parts, a, "diff")
    if x.dtype == bool:  # NumPy's difference of booleans is "not equal"
        return as_tensor(np.diff(x.data, n=n, axis=a))
    lead = (slice(None),) * a
    for _ in range(n):
        x = getitem_p(x, index=lead + (slice(1, None),)) - getitem_p(x, index=lead + (slice(None, -1),))
    return x


def _diff_end(value: Any, x: Tensor, axis: int, name: str) -> Tensor:
    """diff's prepend or append: a number stands for a slice of x's shape with length 1 on `axis`."""
    end = as_tensor(value)
    if end.ndim == 0:
        return broadcast_to_p(end, shape=x.shape[:axis] + (1,) + x.shape[axis + 1:])
    if end.ndim != x.ndim or end.shape[:axis] + end.shape[axis + 1:] != x.shape[:axis] + x.shape[axis + 1:]:
        raise ValueError(f"diff: {name} of shape {end.shape} does not match x's shape {x.shape} "
                         f"outside axis {axis}")
    return end


# ---------------------------------------------------------------- roll
roll_p = primitive(lambda x, shift, axis: np.roll(x, shift, axis), "roll")  # shift, axis: tuples
roll_p.defvjp(lambda g, ans, x, shift, axis: roll_p(g, shift=tuple(-s for s in shift), axis=axis),
              text="g rolled back")
linear_jvp(roll_p)


@public
def roll(x: Any, shift: Union[int, Sequence[int]], axis: Axis = None) -> Tensor:
    """The elements shifted by `shift` places along `axis`, those pushed off one end coming back at
    the other (of the flattened x when `axis` is None); shifts and axes pair up, and shifts on
    the same axis add up, as in NumPy."""
    x = as_tensor(x)
    if axis is None:
        return reshape(roll(ravel(x), shift, 0), x.shape)
    shifts, axes = np.asarray(shift), np.asarray(axis)
    if shifts.dtype.kind not in "iu" or axes.dtype.kind not in "iu":
        raise TypeError(f"roll: shift and axis must be integers, got shift={shift!r}, axis={axis!r}")
    try:
        pairs = np.broadcast(shifts, axes)
    except ValueError:
        raise ValueError(f"roll: shift {shift!r} and axis {axis!r} must be as long as each other "
                         "(or one of them a single number)") from None
    total: dict = {}
    for s, a in pairs:
        a = one_axis(a, x.ndim, "roll")
        total[a] = total.get(a, 0) + int(s)
    axes_ = tuple(sorted(total))
    return roll_p(x, shift=tuple(total[a] for a in axes_), axis=axes_)


def _roll_domain(c: Any) -> tuple:
    x = c.array(c.shape(min_dims=1))
    axis = c.choice([None, c.integer(-x.ndim, x.ndim - 1), tuple(range(x.ndim))])
    shift = c.integer(-5, 5) if not isinstance(axis, tuple) else tuple(c.integer(-5, 5) for _ in axis)
    return (lambda t: roll(t, shift, axis)), [x]


roll_p.domain = _roll_domain


# ---------------------------------------------------------------- tril, triu
# the triangle of the last two axes; a 1-d x is taken as the rows of an (n, n) matrix, as in
# NumPy (the engine sums the cotangent back over them)
tril_p = primitive(lambda x, k: np.tril(x, k), "tril")
tril_p.defvjp(lambda g, ans, x, k: tril_p(g, k=k), text="g on and below the k-th diagonal")
linear_jvp(tril_p)
triu_p = primitive(lambda x, k: np.triu(x, k), "triu")
triu_p.defvjp(lambda g, ans, x, k: triu_p(g, k=k), text="g on and above the k-th diagonal")
linear_jvp(triu_p)


@public
def tril(x: Any, k: int = 0) -> Tensor:
    """x with the elements above the k-th diagonal of its last two axes set to zero (k > 0: above
    the main diagonal, k < 0: below it)."""
    return _triangle(tril_p, x, k)


@public
def triu(x: Any, k: int = 0) -> Tensor:
    """x with the elements below the k-th diagonal of its last two axes set to zero."""
    return _triangle(triu_p, x, k)


def _triangle(prim: Any, x: Any, k: int) -> Tensor:
    x = as_tensor(x)
    if x.ndim == 0:
        raise ValueError(f"{prim.name}: needs a tensor of at least 1 dimension, got a 0-d tensor")
    return prim(x, k=integer_argument(k, prim.name, "k"))


def _triangle_domain(fn: Any) -> Any:
    def domain(c: Any) -> tuple:
        x = c.array(c.shape(min_dims=1))
        k = c.integer(-2, 2)
        return (lambda t: fn(t, k)), [x]
    return domain


tril_p.domain = _triangle_domain(tril)
triu_p.domain = _triangle_domain(triu)


# ---------------------------------------------------------------- pad
pad_p = primitive(lambda x, pad_width, constant_values:  # one (before, after) pair per axis
                  np.pad(x, pad_width, constant_values=constant_values), "pad")
pad_p.defvjp(lambda g, ans, x, pad_width, constant_values:
             getitem_p(g, index=tuple(slice(b, b + n) for (b, _), n in zip(pad_width, x.shape))),
             text="g inside the padding")
# affine: the constants carry no tangent
pad_p.defjvp(lambda t, ans, x, pad_width, constant_values:
             pad_p(t, pad_width=pad_width, constant_values=0))


@public
def pad(x: Any, pad_width: Any, mode: str = "constant", constant_values: Any = 0) -> Tensor:
    """x with `pad_width` = ((before, after), ...) elements added on each axis (one pair for all
    axes, or one number for both sides of all), filled with `constant_values` (a number, or pairs
    like pad_width; not differentiated). Only mode='constant'."""
    if mode != "constant":
        raise ValueError(f"pad: mode {mode!r} is not supported; only mode='constant' is "
                         "(padding with constant_values)")
    x = as_tensor(x)
    if x.ndim == 0:
        return x  # no axes to pad
    widths = np.asarray(pad_width)
    if widths.dtype.kind not in "iu":
        raise TypeError(f"pad: pad_width must be integers, got {pad_width!r}")
    values = np.asarray(_data(constant_values))
    try:
        widths = np.broadcast_to(widths, (x.ndim, 2))
        values = np.broadcast_to(values, (x.ndim, 2))
    except ValueError:
        raise ValueError(f"pad: pad_width {pad_width!r} and constant_values {constant_values!r} must "
                         f"be one number, one (before, after) pair or one pair per axis for a tensor "
                         f"of shape {x.shape}") from None
    if (widths < 0).any():
        raise ValueError(f"pad: pad widths must be non-negative, got {pad_width!r}")
    return pad_p(x, pad_width=tuple(map(tuple, widths.tolist())),
                 constant_values=tuple(map(tuple, values.tolist())))


def _pad_domain(c: Any) -> tuple:
    x = c.array(c.shape(min_dims=1))
    widths = c.choice([c.integer(0, 2), (c.integer(0, 2), c.integer(0, 2)),
                       tuple((c.integer(0, 2), c.integer(0, 2)) for _ in range(x.ndim))])
    value = c.choice([0.0, 1.5])
    return (lambda t: pad(t, widths, constant_values=value)), [x]


pad_p.domain = _pad_domain


# ---------------------------------------------------------------- index_update
def _index_update(x: np.ndarray, values: np.ndarray, index: tuple, last: Optional[tuple]) -> np.ndarray:
    out = x.copy()
    if last is None:
        out[index] = values
    else:  # a position selected more than once takes the last value written to it
        kept, at = last
        out.reshape(-1)[at] = np.broadcast_to(values, kept.shape)[kept]
    return out


def _written(g: Any, last: Optional[tuple]) -> Any:
    """g over the selection, zero where a write was overwritten by a later one."""
    return g if last is None else g * last[0].astype(g.dtype)


index_update_p = primitive(_index_update, "index_update")
index_update_p.defvjp(
    lambda g, ans, x, values, index, last: index_update_p(g, np.zeros((), g.dtype), index=index, last=None),
    lambda g, ans, x, values, index, last: _written(getitem_p(g, index=index), last),
    text="g with zeros at the index, g at the index (of the writes that landed)")
linear_jvp(index_update_p, (0, 1))


@public
def index_update(x: Any, index: Any, values: Any) -> Tensor:
    """x with x[index] replaced by `values` (broadcast to the selection), out of place (JAX's
    x.at[index].set(values)). The gradient goes to x outside the index and to `values` from
    the index. Where the index selects a position more than once, the last value written to
    it wins, as in NumPy's x[index] = values, and only that value receives its gradient.

    Example: index_update(np.zeros(4), [1, 3], 1.0) is [0, 1, 0, 1].
    """
    x = as_tensor(x)
    index = normalize_index(index, x.shape)
    values = as_tensor(values)
    selection = np.broadcast_to(np.zeros((), bool), x.shape)[index].shape
    try:
        fits = np.broadcast_shapes(values.shape, selection) == selection
    except ValueError:
        fits = False
    if not fits:
        raise ValueError(f"index_update: values of shape {values.shape} do not broadcast to the "
                         f"shape {selection} of the selection x[index] (x of shape {x.shape})")
    return index_update_p(x, values, index=index, last=_last_writes(x.shape, index))


def _last_writes(shape: tuple, index: tuple) -> Optional[tuple]:
    """For an index that selects some position more than once (integer arrays with repeats):
    (kept, at), where `kept` marks over the selection the last write to each position (in the
    selection's C order) and `at` holds their flat positions in x; None when none repeats."""
    if not any(isinstance(i, np.ndarray) and i.dtype != bool for i in index):
        return None
    # the flat position of each selected element: the sum over axes of (coordinate * stride),
    # each term a broadcast view of a 1-d range, so nothing of x's size is allocated
    strides = np.cumprod((shape[1:] + (1,))[::-1])[::-1]
    flat = sum(np.broadcast_to(np.arange(n).reshape((n,) + (1,) * (len(shape) - 1 - k)) * s, shape)[index]
               for k, (n, s) in enumerate(zip(shape, strides)))
    order = flat.reshape(-1)
    _, first_from_end = np.unique(order[::-1], return_index=True)
    if first_from_end.size == order.size:
        return None
    kept = np.zeros(order.size, dtype=bool)
    kept[order.size - 1 - first_from_end] = True
    kept = kept.reshape(flat.shape)
    return kept, flat[kept]


def _index_update_domain(c: Any) -> tuple:
    x = c.array(c.shape(min_dims=1))
    n = x.shape[0]
    kind = c.choice(["slice", "int", "array", "mask"])
    if kind == "slice":
        index = slice(c.integer(0, n - 1), None, c.choice([1, 2, -1]))
    elif kind == "int":
        index = c.integer(-n, n - 1)
    elif kind == "array":  # repeated positions: the last write wins
        index = np.asarray([c.integer(-n, n - 1) for _ in range(c.integer(1, 6))])
    else:
        index = c.array(x.shape) > 0
    selection = x[index].shape
    values = c.array(selection[c.integer(0, len(selection)):])  # the full selection or its trailing axes
    return (lambda t, v: index_update(t, index, v)), [x, values]


index_update_p.domain = _index_update_domain


# ---------------------------------------------------------------- batching rules (vmap)
# Each sees the batch of x with the batch axis first (see declaration.py): the example's axes
# are the batch's axes + 1, and a shape or index about one example gains the batch axis in front.
def _batch_reshape(args, dims, shape):
    x, = args
    return reshape_p(x, shape=(x.shape[0],) + tuple(shape)), 0


def _batch_transpose(args, dims, axes):
    x, = args
    n = example_ndim(x, 0)
    axes = tuple(range(n))[::-1] if axes is None else tuple(a % n for a in axes) if n else ()
    return transpose_p(x, axes=(0,) + tuple(a + 1 for a in axes)), 0


def _batch_broadcast_to(args, dims, shape):
    x, = args
    k = example_ndim(x, 0)
    lead = (x.shape[0],) + (1,) * (len(shape) - k)
    if len(shape) > k:
        x = reshape_p(x, shape=lead + tuple(x.shape[1:]))
    return broadcast_to_p(x, shape=(x.shape[0],) + tuple(shape)), 0


def _batch_concatenate(args, dims, axis):
    n = batch_size(args, dims)
    xs = [with_batch(a, d, n) for a, d in zip(args, dims)]
    return concatenate_p(*xs, axis=shift_axes(axis, example_ndim(xs[0], 0))), 0


def batched_index(index: tuple) -> Tuple[tuple, int]:
    """An index of one example as an index of the batch (a full slice in front), and where the
    batch axis lands in the result: first, unless the example's advanced indices (integer or
    boolean arrays, and any integers among them) are not next to each other, in which case NumPy
    puts their axes first and the batch axis after them."""
    out_dim = 0
    if any(isinstance(i, np.ndarray) for i in index):
        advanced = [k for k, i in enumerate(index) if _is_advanced(i)]
        if advanced[-1] - advanced[0] + 1 != len(advanced):
            shapes = [(int(np.count_nonzero(i)),) if i.dtype == bool else i.shape
                      for i in (np.asarray(index[k]) for k in advanced)]
            out_dim = len(np.broadcast_shapes(*shapes))
    return (slice(None),) + tuple(index), out_dim


def _is_advanced(i: Any) -> bool:
    return isinstance(i, np.ndarray) or (isinstance(i, (int, np.integer)) and not isinstance(i, bool))


def _batch_getitem(args, dims, index):
    x, = args
    index, out_dim = batched_index(index)
    return getitem_p(x, index=index), out_dim


def _batch_scatter_add(args, dims, index, shape):
    g, = args
    index, at = batched_index(index)
    if at:  # the cotangent's batch axis where indexing the batch would have put it
        n = len(g.shape)
        g = transpose_p(g, axes=tuple(range(1, at + 1)) + (0,) + tuple(range(at + 1, n)))
    return scatter_add_p(g, index=index, shape=(batch_size(args, dims),) + tuple(shape)), 0


def _batch_roll(args, dims, shift, axis):
    x, = args
    return roll_p(x, shift=shift, axis=shift_axes(axis, example_ndim(x, 0))), 0


def _batch_pad(args, dims, pad_width, constant_values):
    x, = args
    values = np.asarray(constant_values)
    if values.ndim == 2:  # one (before, after) pair of constants per axis: none for the batch axis
        pairs = np.broadcast_to(values, (len(pad_width), 2))
        constant_values = np.concatenate([np.zeros((1, 2), values.dtype), pairs])
    return pad_p(x, pad_width=((0, 0),) + tuple(pad_width), constant_values=constant_values), 0


reshape_p.defbatch(_batch_reshape)
transpose_p.defbatch(_batch_transpose)
broadcast_to_p.defbatch(_batch_broadcast_to)
concatenate_p.defbatch(_batch_concatenate)
getitem_p.defbatch(_batch_getitem)
scatter_add_p.defbatch(_batch_scatter_add)
roll_p.defbatch(_batch_roll)
pad_p.defbatch(_batch_pad)
def _batch_triangle(prim):
    def rule(args, dims, k):
        x, = args
        if example_ndim(x, 0) == 1:  # NumPy takes a vector for the matrix with that vector as rows
            b, n = x.shape
            x = broadcast_to_p(reshape_p(x, shape=(b, 1, n)), shape=(b, n, n))
        return prim(x, k=k), 0  # otherwise it acts on the last two axes: the batch axis rides along
    return rule


tril_p.defbatch(_batch_triangle(tril_p))
triu_p.defbatch(_batch_triangle(triu_p))
# x and the values may each be batched, and repeated positions keep the last write: per example
index_update_p.defbatch(batch_by_loop(index_update_p))
