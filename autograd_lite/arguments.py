"""Argument checking shared by the public functions: axes, shapes and indices in the normal
form the primitives take, with errors that name the operation and the value at fault."""
from __future__ import annotations

import builtins
from typing import Any, Optional, Sequence, Tuple, Union

import numpy as np

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
    if not -ndim <= axis < ndim:
        raise ValueError(f"{op}: axis {axis} is out of range for a tensor with {ndim} dimensions")
    return axis % ndim


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
