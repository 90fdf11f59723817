"""Constructors: new leaf Tensors filled with constants, ranges or random numbers.

Each takes NumPy's arguments plus `requires_grad`. The default dtype is float64 (the input's for
the `*_like` ones), also where NumPy would infer integers (`arange(5)`, `full(3, 7)`), since a
Tensor is made to be differentiated. The random ones draw from a seedable generator:

    >>> W = ag.randn(784, 100, rng=0, requires_grad=True)   # the same W on every run
"""
from __future__ import annotations

from typing import Any, Optional, Sequence, Union

import numpy as np

from .declaration import public
from .tensor import Tensor

Shape = Union[int, Sequence[int]]
Seed = Union[None, int, np.random.Generator]


@public
def zeros(shape: Shape, dtype: Any = np.float64, requires_grad: bool = False) -> Tensor:
    """A tensor of zeros, like np.zeros."""
    return _leaf(np.zeros(_shape(shape, "zeros"), _dtype(dtype, "zeros")), requires_grad, "zeros")


@public
def ones(shape: Shape, dtype: Any = np.float64, requires_grad: bool = False) -> Tensor:
    """A tensor of ones, like np.ones."""
    return _leaf(np.ones(_shape(shape, "ones"), _dtype(dtype, "ones")), requires_grad, "ones")


@public
def full(shape: Shape, fill_value: Any, dtype: Any = np.float64, requires_grad: bool = False) -> Tensor:
    """A tensor filled with `fill_value` (a number, or an array broadcast to `shape`)."""
    shape, dtype = _shape(shape, "full"), _dtype(dtype, "full")
    try:
        array = np.full(shape, fill_value, dtype)
    except (ValueError, TypeError):
        raise ValueError(f"full: fill_value {fill_value!r:.60} cannot fill a tensor of shape {shape} "
                         f"and dtype {dtype}; expected a number or an array that broadcasts to "
                         "the shape") from None
    return _leaf(array, requires_grad, "full")


@public
def zeros_like(x: Any, dtype: Any = None, requires_grad: bool = False) -> Tensor:
    """Zeros of x's shape and (unless `dtype` is given) x's dtype; never part of x's graph."""
    return _leaf(np.zeros(_like_shape(x), _like_dtype(x, dtype, "zeros_like")), requires_grad, "zeros_like")


@public
def ones_like(x: Any, dtype: Any = None, requires_grad: bool = False) -> Tensor:
    """Ones of x's shape and (unless `dtype` is given) x's dtype; never part of x's graph."""
    return _leaf(np.ones(_like_shape(x), _like_dtype(x, dtype, "ones_like")), requires_grad, "ones_like")


@public
def arange(start: float, stop: Optional[float] = None, step: float = 1, dtype: Any = np.float64,
           requires_grad: bool = False) -> Tensor:
    """Evenly spaced values in [start, stop) (in [0, start) when `stop` is omitted), like np.arange.

    Example: `ag.arange(3)` is tensor([0., 1., 2.]).
    """
    if step == 0:
        raise ValueError("arange: step is 0; expected a non-zero step")
    for name, value in (("start", start), ("stop", stop), ("step", step)):
        if value is not None and not np.isfinite(value):
            raise ValueError(f"arange: {name} is {value}; expected a finite number")
    array = np.arange(start, stop, step, dtype=_dtype(dtype, "arange"))
    return _leaf(array, requires_grad, "arange")


@public
def linspace(start: float, stop: float, num: int = 50, endpoint: bool = True, dtype: Any = np.float64,
             requires_grad: bool = False) -> Tensor:
    """`num` evenly spaced values from start to stop (stop included unless `endpoint=False`)."""
    num = _count(num, "linspace", "num")
    array = np.linspace(start, stop, num, endpoint=endpoint, dtype=_dtype(dtype, "linspace"))
    return _leaf(array, requires_grad, "linspace")


@public
def eye(N: int, M: Optional[int] = None, k: int = 0, dtype: Any = np.float64,
        requires_grad: bool = False) -> Tensor:
    """An N x M matrix (N x N when M is None) with ones on diagonal k (0: the main one)."""
    N = _count(N, "eye", "N")
    M = N if M is None else _count(M, "eye", "M")
    if not isinstance(k, (int, np.integer)) or isinstance(k, bool):
        raise TypeError(f"eye: k must be an integer (the diagonal's offset), got {k!r}")
    return _leaf(np.eye(N, M, int(k), dtype=_dtype(dtype, "eye")), requires_grad, "eye")


@public
def randn(*shape: Any, rng: Seed = None, dtype: Any = np.float64, requires_grad: bool = False) -> Tensor:
    """Standard normal samples of the given shape: `randn(2, 3)` or `randn((2, 3))`.

    `rng` is None (fresh, unpredictable numbers), a seed (an int: the same numbers on every
    call) or a `np.random.Generator` (its stream advances, so successive calls differ).
    """
    shape, dtype = _varargs_shape(shape, "randn"), _float_dtype(dtype, "randn")
    array = _generator(rng, "randn").standard_normal(shape, dtype=dtype)
    return _leaf(array, requires_grad, "randn")


@public
def rand(*shape: Any, rng: Seed = None, dtype: Any = np.float64, requires_grad: bool = False) -> Tensor:
    """Samples uniform in [0, 1) of the given shape: `rand(2, 3)` or `rand((2, 3))`.

    `rng` is None (fresh, unpredictable numbers), a seed (an int: the same numbers on every
    call) or a `np.random.Generator` (its stream advances, so successive calls differ).
    """
    shape, dtype = _varargs_shape(shape, "rand"), _float_dtype(dtype, "rand")
    array = _generator(rng, "rand").random(shape, dtype=dtype)
    return _leaf(array, requires_grad, "rand")


# ---------------------------------------------------------------- helpers
def _leaf(array: np.ndarray, requires_grad: bool, op: str) -> Tensor:
    if requires_grad and array.dtype.kind != "f":
        raise TypeError(f"{op}: requires_grad=True needs a floating-point dtype, got {array.dtype}")
    return Tensor(array, requires_grad=requires_grad)


def _shape(shape: Any, op: str) -> tuple:
    """A shape as a tuple of non-negative ints (an int n means (n,))."""
    dims = (shape,) if isinstance(shape, (int, np.integer)) else shape
    try:
        if isinstance(dims, (str, bytes)):
            raise TypeError
        dims = tuple(dims)
    except TypeError:
        raise TypeError(f"{op}: shape must be an int or a sequence of ints, got {shape!r:.60}") from None
    for n in dims:
        if not isinstance(n, (int, np.integer)) or isinstance(n, bool) or n < 0:
            raise ValueError(f"{op}: shape {shape!r:.60} has the entry {n!r:.30}; expected "
                             "non-negative integers")
    return tuple(int(n) for n in dims)


def _varargs_shape(shape: tuple, op: str) -> tuple:
    """`f(2, 3)` and `f((2, 3))` alike."""
    if len(shape) == 1 and not isinstance(shape[0], (int, np.integer)):
        return _shape(shape[0], op)
    return _shape(shape, op)


def _count(n: Any, op: str, name: str) -> int:
    if not isinstance(n, (int, np.integer)) or isinstance(n, bool) or n < 0:
        raise ValueError(f"{op}: {name} must be a non-negative integer, got {n!r:.30}")
    return int(n)


def _dtype(dtype: Any, op: str) -> np.dtype:
    try:
        return np.dtype(dtype)
    except TypeError:
        raise TypeError(f"{op}: dtype {dtype!r:.40} is not a NumPy dtype") from None


def _float_dtype(dtype: Any, op: str) -> np.dtype:
    dtype = _dtype(dtype, op)
    if dtype not in (np.float32, np.float64):
        raise TypeError(f"{op}: dtype must be float32 or float64, got {dtype}")
    return dtype


def _like_shape(x: Any) -> tuple:
    return x.shape if isinstance(x, (Tensor, np.ndarray)) else np.shape(x)


def _like_dtype(x: Any, dtype: Any, op: str) -> np.dtype:
    if dtype is not None:
        return _dtype(dtype, op)
    return x.dtype if isinstance(x, (Tensor, np.ndarray)) else np.asarray(x).dtype


def _generator(rng: Seed, op: str) -> np.random.Generator:
    if isinstance(rng, np.random.Generator):
        return rng
    if rng is None or (isinstance(rng, (int, np.integer)) and not isinstance(rng, bool) and rng >= 0):
        return np.random.default_rng(rng)
    raise TypeError(f"{op}: rng must be None, a non-negative int seed or a np.random.Generator, "
                    f"got {rng!r:.40}")
