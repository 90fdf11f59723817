"""Argument checking shared by the public functions: axes, shapes and indices in the normal
form the primitives take, with errors that name the operation and the value at fault."""
from __future__ import annotations

import builtins
import operator
from typing import Any, Optional, Sequence, Tuple, Union

import numpy as np

from .batching import Batched
from .tensor import Tensor

Axis = Union[None, int, Sequence[int]]


def normalize_axis(axis: Axis, ndim: int, op: str) -> Optional[tuple]:
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


def one_axis(axis: int, ndim: int, op: str) -> int:
    """One axis as a non-negative int; names op and ndim when out of range."""
    axis = integer_argument(axis, op, "axis")
    if not -ndim <= axis < ndim:
        raise ValueError(f"{op}: axis {axis} is out of range for a tensor with {ndim} dimensions")
    return axis % ndim


def distinct_axes(axis: Axis, ndim: int, op: str) -> tuple:
    """Distinct non-negative axes in the order given (all axes when `axis` is None); unlike a
    reduction's axis, axis 0 of a 0-d tensor is out of range (as for np.flip, np.moveaxis)."""
    if axis is None:
        return tuple(range(ndim))
    axes = tuple(axis) if isinstance(axis, (tuple, list)) else (axis,)
    out = tuple(one_axis(a, ndim, op) for a in axes)
    if len(set(out)) != len(out):
        raise ValueError(f"{op}: repeated axis in {axis}")
    return out


def integer_argument(value: Any, op: str, name: str) -> int:
    """`value` as a Python int (ints and NumPy integers only: 2.0 is refused, as NumPy does)."""
    try:
        return operator.index(value)
    except TypeError:
        raise TypeError(f"{op}: {name} must be an integer, got {value!r}") from None


def resolve_shape(shape: tuple, size: int) -> tuple:
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


def normalize_index(index: Any, shape: Tuple[int, ...]) -> tuple:
    """An index as a tuple of slices, ints, None, Ellipsis and integer/boolean arrays.

    Tensors inside become arrays, an empty list an empty integer array (NumPy's empty selection,
    where np.asarray would make it float) and a bool a 0-d boolean array (a mask over no axes);
    out-of-range integers raise an IndexError that names the axis.
    """
    if not isinstance(index, tuple):
        index = (index,)
    out = []
    for item in index:
        if isinstance(item, Tensor):
            if isinstance(item, Batched):
                raise IndexError(
                    f"getitem: the index is batched (inside vmap it differs from example to "
                    f"example, shape {item.shape} per example), so the result's shape could too; "
                    "index with values that are the same for every example, or use ag.where(mask, "
                    "x, 0) / ag.take_along_axis")
            item = item.data
        if isinstance(item, list):
            item = np.asarray(item)
            if item.size == 0:
                item = item.astype(np.intp)
        elif isinstance(item, (bool, np.bool_)):
            item = np.asarray(item)
        if isinstance(item, np.ndarray) and item.dtype.kind not in "biu":
            raise IndexError(f"getitem: index arrays must be integer or boolean, got dtype {item.dtype}")
        out.append(item)
    _check_bounds(tuple(out), shape)
    return tuple(out)


def _axes_taken(item: Any) -> int:
    """How many axes of the indexed tensor an index item consumes: a k-d boolean mask k,
    None and Ellipsis none (the Ellipsis takes what the others leave), anything else one."""
    if item is None or item is Ellipsis:
        return 0
    if isinstance(item, np.ndarray) and item.dtype == bool:
        return item.ndim
    return 1


def _check_bounds(index: tuple, shape: tuple) -> None:
    if builtins.sum(1 for i in index if i is Ellipsis) > 1:
        raise IndexError(f"getitem: an index can only have a single ellipsis ('...'), got {index}")
    n_fixed = builtins.sum(_axes_taken(i) for i in index)
    if n_fixed > len(shape):
        raise IndexError(f"getitem: too many indices for a tensor of shape {shape}")
    axis = 0
    for item in index:
        if item is Ellipsis:
            axis += len(shape) - n_fixed
            continue
        if isinstance(item, (int, np.integer)):
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
        axis += _axes_taken(item)
