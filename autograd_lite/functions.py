"""The public operations: argument checking and normalization in front of the primitives.

Each function takes Tensors, NumPy arrays or numbers, returns a Tensor, and calls one
primitive from the table (or, for `stack`, `outer`, `expand_dims`, `squeeze`, `dot`, a few).
"""
from __future__ import annotations

import builtins
from typing import Any, Optional, Sequence, Tuple, Union

import numpy as np

from . import primitives as P
from .tensor import Tensor, _data

Axis = Union[None, int, Sequence[int]]


def as_tensor(x: Any) -> Tensor:
    """x itself if it is a Tensor, else a constant (no-gradient) Tensor around it."""
    return x if isinstance(x, Tensor) else Tensor(x)


def _normalize_axis(axis: Axis, ndim: int, op: str) -> Optional[tuple]:
    """None, or a sorted tuple of distinct non-negative axes; names op and ndim when out of range."""
    if axis is None:
        return None
    axes = (axis,) if isinstance(axis, (int, np.integer)) else tuple(axis)
    span = builtins.max(ndim, 1)  # like NumPy, a 0-d tensor accepts axis 0 and -1
    out = []
    for a in axes:
        if not -span <= a < span:
            raise ValueError(f"{op}: axis {a} is out of range for a tensor with {ndim} dimensions")
        out.append(int(a) % span)
    if len(set(out)) != len(out):
        raise ValueError(f"{op}: repeated axis in {axis}")
    return None if ndim == 0 else tuple(sorted(out))


def _one_axis(axis: int, ndim: int, op: str) -> int:
    if not -ndim <= axis < ndim:
        raise ValueError(f"{op}: axis {axis} is out of range for a tensor with {ndim} dimensions")
    return axis % ndim


# ---------------------------------------------------------------- elementwise
def _unary(prim: P.Primitive, doc: str):
    def op(x: Any) -> Tensor:
        return prim(as_tensor(x))
    op.__name__ = op.__qualname__ = prim.name
    op.__doc__ = doc
    return op


negative = _unary(P.negative, "-x, elementwise.")
absolute = _unary(P.absolute, "|x|, elementwise (the gradient at 0 is 0).")
abs = absolute
sqrt = _unary(P.sqrt, "Square root, elementwise.")
exp = _unary(P.exp, "e**x, elementwise.")
log = _unary(P.log, "Natural logarithm, elementwise.")
log1p = _unary(P.log1p, "log(1 + x), accurate for small x.")
expm1 = _unary(P.expm1, "exp(x) - 1, accurate for small x.")
sin = _unary(P.sin, "Sine, elementwise.")
cos = _unary(P.cos, "Cosine, elementwise.")
tanh = _unary(P.tanh, "Hyperbolic tangent, elementwise.")
sigmoid = _unary(P.sigmoid, "The logistic function 1 / (1 + exp(-x)), stable for large |x|.")
relu = _unary(P.relu, "max(x, 0), elementwise (the gradient at 0 is 0).")
softplus = _unary(P.softplus, "log(1 + exp(x)), stable for large |x|.")


def _binary(prim: P.Primitive, doc: str):
    def op(x: Any, y: Any) -> Tensor:
        if not isinstance(x, Tensor) and not isinstance(y, Tensor):
            x = Tensor(x)
        return prim(x, y)
    op.__name__ = op.__qualname__ = prim.name
    op.__doc__ = doc
    return op


add = _binary(P.add, "x + y with broadcasting.")
subtract = _binary(P.subtract, "x - y with broadcasting.")
multiply = _binary(P.multiply, "x * y with broadcasting.")
divide = _binary(P.divide, "x / y with broadcasting.")
power = _binary(P.power, "x ** y with broadcasting; both may carry gradients.")
maximum = _binary(P.maximum, "Elementwise max; on ties the gradient is split evenly.")
minimum = _binary(P.minimum, "Elementwise min; on ties the gradient is split evenly.")


def matmul(x: Any, y: Any) -> Tensor:
    """x @ y for 1-D, 2-D and batched (broadcast leading axes) operands, like np.matmul."""
    if not isinstance(x, Tensor) and not isinstance(y, Tensor):
        x = Tensor(x)
    return P.matmul(x, y)


def where(condition: Any, x: Any, y: Any) -> Tensor:
    """x where condition holds, else y (broadcasting). The condition carries no gradient."""
    cond = np.asarray(_data(condition), dtype=bool)
    if not isinstance(x, Tensor) and not isinstance(y, Tensor):
        x = Tensor(x)
    return P.where(cond, x, y)


def clip(x: Any, lo: Any = None, hi: Any = None) -> Tensor:
    """x limited to [lo, hi]; the gradient is 0 outside the interval."""
    if lo is None and hi is None:
        raise ValueError("clip: give at least one of lo and hi")
    if lo is not None and hi is not None and np.any(np.asarray(lo) > np.asarray(hi)):
        raise ValueError(f"clip: lo ({lo}) is greater than hi ({hi})")
    return P.clip(as_tensor(x), lo=lo, hi=hi)


def astype(x: Any, dtype: Any) -> Tensor:
    """x converted to dtype (the gradient comes back in x's dtype)."""
    x = as_tensor(x)
    dtype = np.dtype(dtype)
    if dtype == x.dtype:
        return x
    return P.astype(x, dtype=dtype)


# ---------------------------------------------------------------- reductions
def sum(x: Any, axis: Axis = None, keepdims: bool = False) -> Tensor:
    """Sum over `axis` (all axes when None)."""
    x = as_tensor(x)
    return P.sum(x, axis=_normalize_axis(axis, x.ndim, "sum"), keepdims=bool(keepdims))


def mean(x: Any, axis: Axis = None, keepdims: bool = False) -> Tensor:
    """Mean over `axis` (all axes when None)."""
    x = as_tensor(x)
    return P.mean(x, axis=_normalize_axis(axis, x.ndim, "mean"), keepdims=bool(keepdims))


def _extreme(prim: P.Primitive, x: Any, axis: Axis, keepdims: bool) -> Tensor:
    x = as_tensor(x)
    axes = _normalize_axis(axis, x.ndim, prim.name)
    if x.size == 0:
        raise ValueError(f"{prim.name}: cannot reduce an empty tensor of shape {x.shape}")
    return prim(x, axis=axes, keepdims=bool(keepdims))


def max(x: Any, axis: Axis = None, keepdims: bool = False) -> Tensor:
    """Maximum over `axis`; the gradient is split evenly between tied maxima."""
    return _extreme(P.max, x, axis, keepdims)


def min(x: Any, axis: Axis = None, keepdims: bool = False) -> Tensor:
    """Minimum over `axis`; the gradient is split evenly between tied minima."""
    return _extreme(P.min, x, axis, keepdims)


def var(x: Any, axis: Axis = None, keepdims: bool = False, ddof: int = 0) -> Tensor:
    """Variance over `axis`, dividing by n - ddof."""
    x = as_tensor(x)
    return P.var(x, axis=_normalize_axis(axis, x.ndim, "var"), keepdims=bool(keepdims), ddof=ddof)


def logsumexp(x: Any, axis: Axis = None, keepdims: bool = False) -> Tensor:
    """log(sum(exp(x))) over `axis`, without overflow (finite for logits of +-1000)."""
    x = as_tensor(x)
    return P.logsumexp(x, axis=_normalize_axis(axis, x.ndim, "logsumexp"), keepdims=bool(keepdims))


def softmax(x: Any, axis: int = -1) -> Tensor:
    """exp(x) / sum(exp(x)) along `axis`, stable for logits of +-1000."""
    x = as_tensor(x)
    return P.softmax(x, axis=_one_axis(axis, x.ndim, "softmax"))


def log_softmax(x: Any, axis: int = -1) -> Tensor:
    """x - logsumexp(x) along `axis`, stable for logits of +-1000."""
    x = as_tensor(x)
    return P.log_softmax(x, axis=_one_axis(axis, x.ndim, "log_softmax"))


# ---------------------------------------------------------------- shape
def reshape(x: Any, shape: Any) -> Tensor:
    """The same elements in a new shape (one entry may be -1)."""
    x = as_tensor(x)
    shape = (int(shape),) if isinstance(shape, (int, np.integer)) else tuple(int(n) for n in shape)
    if shape == x.shape:
        return x
    try:
        new_shape = _resolve_shape(shape, x.size)
    except ValueError:
        raise ValueError(f"reshape: cannot reshape a tensor of shape {x.shape} ({x.size} elements) "
                         f"into shape {shape}") from None
    return P.reshape(x, shape=new_shape)


def _resolve_shape(shape: tuple, size: int) -> tuple:
    unknown = [i for i, n in enumerate(shape) if n == -1]
    known = int(np.prod([n for n in shape if n != -1], dtype=np.int64))
    if len(unknown) > 1 or builtins.any(n < -1 for n in shape):
        raise ValueError
    if unknown:
        if known == 0 or size % known:
            raise ValueError
        shape = shape[:unknown[0]] + (size // known,) + shape[unknown[0] + 1:]
    elif known != size:
        raise ValueError
    return shape


def transpose(x: Any, axes: Optional[Sequence[int]] = None) -> Tensor:
    """Permute the axes (reverse them when `axes` is None)."""
    x = as_tensor(x)
    if axes is None:
        axes = tuple(range(x.ndim))[::-1]
    else:
        axes = tuple(int(a) % builtins.max(x.ndim, 1) for a in axes)
        if sorted(axes) != list(range(x.ndim)):
            raise ValueError(f"transpose: axes {tuple(axes)} are not a permutation of the "
                             f"{x.ndim} axes of a tensor of shape {x.shape}")
    if x.ndim < 2:
        return x
    return P.transpose(x, axes=axes)


permute = transpose


def swapaxes(x: Any, a: int, b: int) -> Tensor:
    """Exchange two axes."""
    x = as_tensor(x)
    axes = list(range(x.ndim))
    a, b = _one_axis(a, x.ndim, "swapaxes"), _one_axis(b, x.ndim, "swapaxes")
    axes[a], axes[b] = axes[b], axes[a]
    return transpose(x, axes)


def expand_dims(x: Any, axis: int) -> Tensor:
    """Insert an axis of length 1 at `axis` (a reshape)."""
    x = as_tensor(x)
    a = _one_axis(axis, x.ndim + 1, "expand_dims")
    return P.reshape(x, shape=x.shape[:a] + (1,) + x.shape[a:])


def squeeze(x: Any, axis: Axis = None) -> Tensor:
    """Remove axes of length 1 (all of them when `axis` is None) (a reshape)."""
    x = as_tensor(x)
    if axis is None:
        axes = tuple(i for i, n in enumerate(x.shape) if n == 1)
    else:
        axes = _normalize_axis(axis, x.ndim, "squeeze") or ()
        for a in axes:
            if x.shape[a] != 1:
                raise ValueError(f"squeeze: axis {a} of shape {x.shape} has length {x.shape[a]}, not 1")
    return P.reshape(x, shape=tuple(n for i, n in enumerate(x.shape) if i not in axes))


def broadcast_to(x: Any, shape: Sequence[int]) -> Tensor:
    """x repeated along new or length-1 axes to `shape` (gradients are summed back)."""
    x = as_tensor(x)
    shape = tuple(int(n) for n in shape)
    try:
        np.broadcast_shapes(x.shape, shape)
        if np.broadcast_shapes(x.shape, shape) != shape:
            raise ValueError
    except ValueError:
        raise ValueError(f"broadcast_to: a tensor of shape {x.shape} cannot be broadcast to {shape}") from None
    return P.broadcast_to(x, shape=shape)


def concatenate(tensors: Sequence[Any], axis: int = 0) -> Tensor:
    """Join tensors along an existing axis."""
    ts = [as_tensor(t) for t in tensors]
    if not ts:
        raise ValueError("concatenate: needs at least one tensor")
    ndim = ts[0].ndim
    if ndim == 0:
        raise ValueError("concatenate: 0-d tensors cannot be concatenated; use stack")
    a = _one_axis(axis, ndim, "concatenate")
    for i, t in enumerate(ts):
        if t.ndim != ndim or t.shape[:a] + t.shape[a + 1:] != ts[0].shape[:a] + ts[0].shape[a + 1:]:
            raise ValueError(f"concatenate: tensor {i} has shape {t.shape}, which does not match "
                             f"{ts[0].shape} outside axis {a}")
    return P.concatenate(*ts, axis=a)


def stack(tensors: Sequence[Any], axis: int = 0) -> Tensor:
    """Join tensors of equal shape along a new axis."""
    ts = [as_tensor(t) for t in tensors]
    if not ts:
        raise ValueError("stack: needs at least one tensor")
    for i, t in enumerate(ts):
        if t.shape != ts[0].shape:
            raise ValueError(f"stack: tensor {i} has shape {t.shape}, expected {ts[0].shape} like tensor 0")
    a = _one_axis(axis, ts[0].ndim + 1, "stack")
    return P.concatenate(*[expand_dims(t, a) for t in ts], axis=a)


def dot(x: Any, y: Any) -> Tensor:
    """The dot product of vectors, or the matrix product for 1-D and 2-D operands."""
    x, y = as_tensor(x), as_tensor(y)
    if x.ndim > 2 or y.ndim > 2:
        raise ValueError(f"dot: operands of at most 2 dimensions expected, got shapes {x.shape} and "
                         f"{y.shape}; use matmul for batched products")
    if x.ndim == 0 or y.ndim == 0:
        return x * y
    return P.matmul(x, y)


def outer(x: Any, y: Any) -> Tensor:
    """The outer product of two vectors (flattened first, like np.outer)."""
    x, y = as_tensor(x), as_tensor(y)
    return reshape(x, (-1, 1)) * reshape(y, (1, -1))


# ---------------------------------------------------------------- indexing
def normalize_index(index: Any, shape: Tuple[int, ...]) -> tuple:
    """An index as a tuple of slices, ints, None, Ellipsis and integer/boolean arrays.

    Tensors inside become arrays; out-of-range integers raise an IndexError that names the axis.
    """
    if not isinstance(index, tuple):
        index = (index,)
    out = []
    for item in index:
        if isinstance(item, Tensor):
            item = item.data
        if isinstance(item, list):
            item = np.asarray(item)
        if isinstance(item, np.ndarray) and item.dtype.kind not in "biu":
            raise IndexError(f"getitem: index arrays must be integer or boolean, got dtype {item.dtype}")
        out.append(item)
    _check_bounds(tuple(out), shape)
    return tuple(out)


def _check_bounds(index: tuple, shape: tuple) -> None:
    axis = 0
    n_fixed = builtins.sum(1 for i in index if i is not None and i is not Ellipsis and
                           not (isinstance(i, np.ndarray) and i.dtype == bool))
    n_fixed += builtins.sum(i.ndim - 1 for i in index if isinstance(i, np.ndarray) and i.dtype == bool)
    for item in index:
        if item is None:
            continue
        if item is Ellipsis:
            axis += len(shape) - n_fixed
            continue
        if axis >= len(shape):
            raise IndexError(f"getitem: too many indices for a tensor of shape {shape}")
        if isinstance(item, (int, np.integer)) and not isinstance(item, bool):
            n = shape[axis]
            if not -n <= item < n:
                raise IndexError(f"getitem: index {item} is out of range for axis {axis} with size {n} "
                                 f"(tensor shape {shape})")
        elif isinstance(item, np.ndarray) and item.dtype.kind in "iu" and item.size:
            n = shape[axis]
            if item.max() >= n or item.min() < -n:
                bad = item[(item >= n) | (item < -n)][0]
                raise IndexError(f"getitem: index {bad} is out of range for axis {axis} with size {n} "
                                 f"(tensor shape {shape})")
        elif isinstance(item, np.ndarray) and item.dtype == bool:
            if item.shape != shape[axis:axis + item.ndim]:
                raise IndexError(f"getitem: boolean mask of shape {item.shape} does not match the "
                                 f"tensor's shape {shape} at axis {axis}")
            axis += item.ndim
            continue
        axis += 1
