"""Batched values and the helpers batching rules are written with (the third rule of a primitive).

Inside `vmap`, a value that differs from example to example is a `Batched`: a Tensor whose
`.shape` is ONE example's shape while its `payload` holds the whole batch, batch axis first.
A primitive applied to a Batched runs its batching rule on the payloads instead of its forward:

    batch rule:  (args, dims, **params) -> (out, out_dim)

`args` are the payloads of the batched inputs (batch axis `dims[i] == 0`) and the unbatched inputs
as they are (`dims[i] is None`); `out` is the whole batch of outputs, its batch axis at `out_dim`.
A payload is an array, a Tensor (when a graph is being recorded through vmap) or a Batched of an
outer vmap, so a rule computes with primitives and the methods arrays and Tensors share, never
with NumPy functions on `.data`. Helpers for the common kinds: `elementwise_batch` (broadcasting),
`reduction_batch` (per-example axes shifted by one), `batch_by_loop` (one call per example).
"""
from __future__ import annotations

import warnings
from typing import Any, Callable, List, Optional, Sequence, Tuple

import numpy as np

from .tensor import Tensor


class Batched(Tensor):
    """A value inside `vmap`: the batch of one value per example, seen as one example.

    `.shape`, `.ndim` and `.size` are an example's; `payload` is the whole batch (an array, a
    Tensor, or the Batched of an enclosing vmap) with the batch axis first; `level` tells nested
    vmaps apart (the innermost has the highest). Primitives applied to it run their batching rules.
    """

    __slots__ = ("payload", "level", "batch_size")

    @classmethod
    def make(cls, payload: Any, level: int) -> "Batched":
        """Wrap `payload` (batch axis first) as the Batched of vmap level `level`."""
        data = payload.data if isinstance(payload, Tensor) else payload
        b = cls._wrap(data if type(data) is np.ndarray else np.asarray(data))
        b.payload = payload
        b.level = level
        b.batch_size = payload.shape[0]
        return b

    @property
    def shape(self) -> tuple:
        return tuple(self.payload.shape[1:])

    @property
    def ndim(self) -> int:
        return len(self.payload.shape) - 1

    @property
    def size(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64))

    def _constant(self) -> "Batched":
        """The values without graph or tangents, still batched (what `_data` gives rules)."""
        payload = self.payload
        return Batched.make(payload._constant() if isinstance(payload, Tensor) else payload, self.level)

    def detach(self) -> "Batched":
        payload = self.payload
        return Batched.make(payload.detach() if isinstance(payload, Tensor) else payload, self.level)

    def __repr__(self) -> str:
        return (f"Batched(level {self.level}, {self.batch_size} examples of shape {self.shape}, "
                f"dtype {self.dtype})")

    def _no_single_value(self, what: str) -> TypeError:
        return TypeError(f"vmap: {what} of a batched value (one per example, shape {self.shape}) "
                         "has no single value inside vmap; compute with operations (ag.where "
                         "instead of an if) and let vmap return the values")

    def item(self) -> Any:
        raise self._no_single_value("item()")

    def numpy(self) -> np.ndarray:
        raise self._no_single_value("numpy()")

    def tolist(self) -> Any:
        raise self._no_single_value("tolist()")

    def __array__(self, dtype=None, copy=None):
        raise self._no_single_value("np.asarray")

    def __bool__(self) -> bool:
        raise self._no_single_value("the truth value")

    def __float__(self) -> float:
        raise self._no_single_value("float()")

    def __int__(self) -> int:
        raise self._no_single_value("int()")

    def __len__(self) -> int:
        if not self.shape:
            raise TypeError("len() of a 0-d tensor")
        return self.shape[0]

    # comparisons give batched boolean values (masks), without gradient
    def __lt__(self, other): return _compare(np.less, self, other)
    def __le__(self, other): return _compare(np.less_equal, self, other)
    def __gt__(self, other): return _compare(np.greater, self, other)
    def __ge__(self, other): return _compare(np.greater_equal, self, other)
    def __eq__(self, other): return _compare(np.equal, self, other)
    def __ne__(self, other): return _compare(np.not_equal, self, other)
    __hash__ = Tensor.__hash__

    def __array_ufunc__(self, ufunc: np.ufunc, method: str, *inputs: Any, **kwargs: Any) -> Any:
        if method == "__call__" and not kwargs and ufunc.nout == 1 and all(
                t.endswith("?") for t in ufunc.types if "O" not in t):
            return _compare(ufunc, *inputs)  # np.isnan, np.isfinite, np.logical_and...: masks
        return Tensor.__array_ufunc__(self, ufunc, method, *inputs, **kwargs)

    def __array_function__(self, func: Callable, types: tuple, args: tuple, kwargs: dict) -> Any:
        if func is np.shape:
            return args[0].shape if isinstance(args[0], Tensor) else np.shape(args[0])
        if func is np.ndim:
            return args[0].ndim if isinstance(args[0], Tensor) else np.ndim(args[0])
        if func is np.size and len(args) == 1 and not kwargs:
            return args[0].size if isinstance(args[0], Tensor) else np.size(args[0])
        if func in _LIKE and isinstance(args[0], Batched):  # zeros_like(x): one per example
            like = args[0]
            return Batched.make(func(_payload_array(like), *args[1:], **kwargs), like.level)
        if func in (np.argmax, np.argmin):
            from .declaration import PUBLIC
            return PUBLIC[func.__name__](*args, **kwargs)
        if func in _WHOLE_BATCH:
            raise TypeError(f"vmap: np.{func.__name__} of a batched value would read the whole batch "
                            "as one array, not one example; compute with autograd-lite's operations "
                            "(ag.where, ag.argmax, comparisons) inside vmap")
        return Tensor.__array_function__(self, func, types, args, kwargs)


_LIKE = frozenset((np.zeros_like, np.ones_like, np.full_like, np.empty_like))
# NumPy functions that read values and would see the whole batch as one array (np.any and np.all
# are allowed: the rules use them to pick a formula valid for every example)
_WHOLE_BATCH = frozenset(getattr(np, name) for name in (
    "nonzero", "flatnonzero", "argwhere", "argsort", "searchsorted", "digitize", "count_nonzero",
    "isclose", "allclose", "array_equal", "array_equiv", "unique") if hasattr(np, name))


def table(name: str) -> Any:
    """The primitive `name` of the table (looked up when a rule runs: the table imports this)."""
    from .declaration import PRIMITIVES
    return PRIMITIVES[name]


def batched_like(x: Batched, full: np.ndarray) -> Batched:
    """An array of x's whole-batch shape (`x.data.shape`: every enclosing vmap's batch axis, then
    an example's axes) as a value batched at x's levels, like x."""
    levels = []
    while isinstance(x, Batched):
        levels.append(x.level)
        x = x.payload
    for level in reversed(levels):
        full = Batched.make(full, level)
    return full


def _payload_array(b: Batched) -> np.ndarray:
    payload = b.payload
    while isinstance(payload, Tensor):
        payload = payload.payload if isinstance(payload, Batched) else payload.data
    return payload


def _compare(ufunc: np.ufunc, *inputs: Any) -> Any:
    """A boolean ufunc of values some of which are batched: a batched mask (no gradient)."""
    level = max(v.level for v in inputs if isinstance(v, Batched))
    args, dims = [], []
    for v in inputs:
        if isinstance(v, Batched) and v.level == level:
            args.append(v.payload)
            dims.append(0)
        else:
            args.append(v)
            dims.append(None)
    args = broadcast_batch(args, dims)
    result = ufunc(*[_constant(a) for a in args])
    return Batched.make(result, level)


def _constant(a: Any) -> Any:
    """A value without graph: arrays for Tensors, batched masks for Batched."""
    if isinstance(a, Batched):
        return a._constant()
    return a.data if isinstance(a, Tensor) else a


# ---------------------------------------------------------------- helpers for writing rules
def example_ndim(arg: Any, dim: Optional[int]) -> int:
    """The number of axes of one example of `arg` (its payload has one more when batched)."""
    n = arg.ndim if hasattr(arg, "ndim") else np.ndim(arg)
    return n - 1 if dim is not None else n


def broadcast_batch(args: Sequence[Any], dims: Sequence[Optional[int]]) -> List[Any]:
    """The payloads with length-1 axes inserted after the batch axis so that NumPy broadcasting
    of the examples' shapes stays right: an example of rank 1 beside an unbatched value of
    rank 2 must be (B, 1, n), not (B, n)."""
    rank = max(example_ndim(a, d) for a, d in zip(args, dims))
    out = []
    for a, d in zip(args, dims):
        if d is not None:
            k = example_ndim(a, d)
            if k < rank:
                shape = tuple(a.shape)
                a = table("reshape")(a, shape=(shape[0],) + (1,) * (rank - k) + shape[1:])
        out.append(a)
    return out


def elementwise_batch(prim: Any) -> Callable:
    """The batching rule of an elementwise primitive: broadcasting does the work."""
    def rule(args: Sequence[Any], dims: Sequence[Optional[int]], **params: Any) -> Tuple[Any, int]:
        try:
            return prim(*broadcast_batch(args, dims), **params), 0
        except ValueError:
            shapes = [tuple(a.shape[1:]) if d is not None else np.shape(a) for a, d in zip(args, dims)]
            try:
                np.broadcast_shapes(*shapes)
            except ValueError:  # named by one example's shapes, as the loop would name them
                raise ValueError(f"{prim.name}: operands could not be broadcast together with shapes "
                                 f"{' '.join(map(str, shapes))} (one example's, inside vmap)") from None
            raise
    return rule


def shift_axes(axis: Any, ndim: int) -> Any:
    """Per-example axes (None: all, an int or a tuple, negative allowed) as axes of the payload."""
    if axis is None:
        return tuple(range(1, ndim + 1))
    if isinstance(axis, (tuple, list)):
        return tuple(a % ndim + 1 for a in axis) if ndim else tuple(axis)
    return axis % ndim + 1 if ndim else axis


def reduction_batch(prim: Any, param: str = "axis") -> Callable:
    """The batching rule of a primitive with one batched input acting along the axes in
    `params[param]` (reductions, scans, softmax): the axes move up by one."""
    def rule(args: Sequence[Any], dims: Sequence[Optional[int]], **params: Any) -> Tuple[Any, int]:
        x = args[0]
        params[param] = shift_axes(params[param], example_ndim(x, dims[0]))
        return prim(x, *args[1:], **params), 0
    return rule


def with_batch(a: Any, dim: Optional[int], size: int) -> Any:
    """`a` with a batch axis first: moved there, or (unbatched) repeated `size` times."""
    broadcast_to, reshape, transpose = table("broadcast_to"), table("reshape"), table("transpose")
    if dim == 0:
        return a
    if dim is not None:
        axes = (dim,) + tuple(i for i in range(len(a.shape)) if i != dim)
        return transpose(a, axes=axes) if isinstance(a, Tensor) else np.transpose(a, axes)
    shape = tuple(np.shape(a)) if not isinstance(a, Tensor) else tuple(a.shape)
    if not isinstance(a, Tensor):
        return np.broadcast_to(np.asarray(a), (size,) + shape)
    return broadcast_to(reshape(a, shape=(1,) + shape), shape=(size,) + shape)


def batch_size(args: Sequence[Any], dims: Sequence[Optional[int]]) -> int:
    """The number of examples (the length of any batched payload's batch axis)."""
    for a, d in zip(args, dims):
        if d is not None:
            return a.shape[d]
    raise ValueError("vmap: a batching rule was called without a batched input")


def batch_by_loop(prim: Any) -> Callable:
    """A batching rule that calls the primitive once per example and stacks the results (for
    primitives whose batched form would be as slow or no simpler; also the fallback)."""
    def rule(args: Sequence[Any], dims: Sequence[Optional[int]], **params: Any) -> Tuple[Any, int]:
        n = batch_size(args, dims)
        outs = [prim(*[a[i] if d is not None else a for a, d in zip(args, dims)], **params)
                for i in range(n)]
        return stack(outs), 0
    return rule


def stack(values: Sequence[Any]) -> Any:
    """np.stack along a new first axis, recorded when any value is a Tensor."""
    if any(isinstance(v, Tensor) for v in values):
        concatenate, reshape = table("concatenate"), table("reshape")
        return concatenate(*[reshape(v, shape=(1,) + tuple(v.shape)) for v in values], axis=0)
    return np.stack([np.asarray(v) for v in values])


_warned: set = set()


def fallback_rule(prim: Any) -> Callable:
    """For a primitive without a batching rule: a loop over the batch, with a one-time warning."""
    if prim.name not in _warned:
        _warned.add(prim.name)
        warnings.warn(f"vmap: primitive '{prim.name}' has no batching rule, so it runs once per "
                      f"example (slow); declare one with {prim.name}.defbatch(rule)",
                      RuntimeWarning, stacklevel=4)
    return batch_by_loop(prim)
