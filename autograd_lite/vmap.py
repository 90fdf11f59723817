"""vmap: run a function written for one example on a whole batch, one batched pass.

`vmap(f, in_axes, out_axes)(*args)` wraps each batched argument as a `Batched` value (an example's
shape outside, the batch inside) and calls f. Every primitive f applies to a Batched runs its
batching rule (the third rule of its declaration) through `interpret`, hooked into
`engine.apply`; the outputs' batch axes are then moved to `out_axes`. Nested vmaps get increasing
levels; grad, jvp, vjp, jacobian and hessian compose with vmap in either order, because their
rules are themselves primitives applied to (possibly batched) values.
"""
from __future__ import annotations

import functools
import threading
from typing import Any, Callable, List, Optional, Sequence, Union

import numpy as np

from . import engine
from .batching import Batched, fallback_rule, with_batch
from .declaration import PRIMITIVES
from .tensor import Tensor

__all__ = ["vmap"]

Axes = Union[int, None, Sequence[Any], dict]


class _Levels(threading.local):
    def __init__(self) -> None:
        self.stack: List[int] = []


_levels = _Levels()


def vmap(f: Callable[..., Any], in_axes: Axes = 0, out_axes: Axes = 0) -> Callable[..., Any]:
    """Vectorize `f`, written for one example, over a batch: `vmap(f)(xs)` is
    `stack([f(x) for x in xs])`, computed in one pass through every primitive's batching rule.

    `in_axes`: the axis of each argument that runs over the examples: an int (every argument),
    None (not batched: the same value for every example), or a tuple with one entry per
    argument, itself an int, None or a tuple/list/dict matching that argument's structure.
    Negative axes count from the end. `out_axes` places the batch axis in each output the same
    way (an int, or a tuple matching f's tuple of outputs). Arrays in give arrays out; a Tensor
    argument (or a graph being recorded) gives Tensors, so `grad(vmap(f))` works, and
    `vmap(grad(f), in_axes=(None, 0, 0))(params, X, Y)` gives one gradient per example.

    Example:
        >>> vmap(lambda x, w: (x * w).sum(), in_axes=(0, None))(np.ones((5, 3)), np.arange(3.0))
        array([3., 3., 3., 3., 3.])
    """
    name = getattr(f, "__name__", "f")

    @functools.wraps(f)
    def batched_f(*args: Any) -> Any:
        axes = _per_argument(in_axes, len(args), name)
        flat_args, dims = [], []
        for i, (arg, axis) in enumerate(zip(args, axes)):
            _collect(arg, axis, f"argument {i}", flat_args, dims, name)
        sizes = {_length(a, d) for a, d in zip(flat_args, dims) if d is not None}
        if not sizes:
            raise ValueError(f"vmap: in_axes of {name} are None for every argument; at least one "
                             "argument must have a batch axis (an int in in_axes)")
        if len(sizes) > 1:
            found = ", ".join(f"{where} has {_length(a, d)}"
                              for a, d, where in _batched_arguments(args, axes))
            raise ValueError(f"vmap: the arguments of {name} disagree on the number of examples "
                             f"along their in_axes ({found}); all must be equal")
        level = (_levels.stack[-1] + 1) if _levels.stack else 1
        wrapped = iter([_enter(a, d, level) for a, d in zip(flat_args, dims)])
        call_args = [_rebuild(arg, axis, wrapped) for arg, axis in zip(args, axes)]
        _levels.stack.append(level)
        engine.enter_batching(interpret)
        try:
            out = f(*call_args)
        finally:
            engine.leave_batching()
            _levels.stack.pop()
        size = sizes.pop()
        arrays_in = not any(isinstance(a, Tensor) for a in flat_args)
        return _leave(out, out_axes, level, size, name, "output", arrays_in)

    batched_f.__name__ = f"vmap_{name}"
    return batched_f


def interpret(prim: Any, args: Sequence[Any], params: dict) -> Optional[Batched]:
    """`prim` applied to `args` of which some are Batched: its batching rule on the payloads of
    the innermost level, the result wrapped as a Batched of that level. None when no argument
    is batched (the ordinary forward then runs)."""
    level = 0
    for a in args:
        if isinstance(a, Batched) and a.level > level:
            level = a.level
    if not level:
        return None
    payloads, dims = [], []
    size = 0
    for a in args:
        if isinstance(a, Batched) and a.level == level:
            payloads.append(a.payload)
            dims.append(0)
            size = a.batch_size
        else:
            payloads.append(a)
            dims.append(None)
    rule = prim.batch or fallback_rule(prim)
    out, out_dim = rule(payloads, dims, **params)
    if out_dim != 0:
        out = with_batch(out, out_dim, size)
    if not isinstance(out, Tensor) and type(out) is not np.ndarray:
        out = np.asarray(out)
    return Batched.make(out, level)


# ---------------------------------------------------------------- in_axes / out_axes
def _per_argument(in_axes: Axes, n: int, name: str) -> tuple:
    if in_axes is None or isinstance(in_axes, (int, np.integer)):
        return (in_axes,) * n
    if isinstance(in_axes, list):
        in_axes = tuple(in_axes)
    if not isinstance(in_axes, tuple):
        raise TypeError(f"vmap: in_axes of {name} must be an int, None or a tuple with one entry "
                        f"per argument, got {type(in_axes).__name__}")
    if len(in_axes) != n:
        raise ValueError(f"vmap: in_axes of {name} has {len(in_axes)} entries but {n} "
                         "argument(s) were passed; give one entry (int or None) per argument")
    return in_axes


def _collect(arg: Any, axis: Any, where: str, flat: list, dims: list, name: str) -> None:
    """Walk `arg` and its in_axes entry together, appending (leaf, its batch axis or None)."""
    if isinstance(arg, (tuple, list)) and not isinstance(axis, (int, np.integer, type(None))):
        if not isinstance(axis, (tuple, list)) or len(axis) != len(arg):
            raise ValueError(f"vmap: in_axes of {name} for {where} is {axis!r}, but the argument is "
                             f"a {type(arg).__name__} of {len(arg)}; expected an int, None or a "
                             f"tuple of {len(arg)}")
        for k, (a, x) in enumerate(zip(arg, axis)):
            _collect(a, x, f"{where}[{k}]", flat, dims, name)
        return
    if isinstance(arg, dict) and not isinstance(axis, (int, np.integer, type(None))):
        if not isinstance(axis, dict) or set(axis) != set(arg):
            raise ValueError(f"vmap: in_axes of {name} for {where} is {axis!r}, but the argument is "
                             f"a dict with keys {sorted(arg)}; expected an int, None or a dict "
                             "with the same keys")
        for k in arg:
            _collect(arg[k], axis[k], f"{where}[{k!r}]", flat, dims, name)
        return
    if isinstance(arg, (tuple, list, dict)):
        for k, a in (arg.items() if isinstance(arg, dict) else enumerate(arg)):
            _collect(a, axis, f"{where}[{k!r}]", flat, dims, name)
        return
    if axis is None:
        flat.append(arg)
        dims.append(None)
        return
    if not isinstance(axis, (int, np.integer)):
        raise TypeError(f"vmap: in_axes of {name} for {where} must be an int or None, got {axis!r}")
    ndim = arg.ndim if isinstance(arg, Tensor) else np.ndim(arg)
    if not -ndim <= axis < ndim:
        shape = arg.shape if isinstance(arg, Tensor) else np.shape(arg)
        raise ValueError(f"vmap: in_axes of {name} for {where} is {axis}, out of range for its "
                         f"shape {tuple(shape)}; expected an axis in [-{ndim}, {ndim})"
                         if ndim else
                         f"vmap: in_axes of {name} for {where} is {axis}, but it is a scalar "
                         "(no axis to map over); expected None")
    flat.append(arg)
    dims.append(int(axis) % ndim)


def _length(a: Any, axis: int) -> int:
    """The length of `a` along `axis` (of one example, for the batched value of an outer vmap)."""
    return (a.shape if isinstance(a, Tensor) else np.shape(a))[axis]


def _batched_arguments(args: Sequence[Any], axes: Sequence[Any]):
    flat, dims = [], []
    for i, (arg, axis) in enumerate(zip(args, axes)):
        start = len(flat)
        _collect(arg, axis, "", flat, dims, "f")
        for a, d in zip(flat[start:], dims[start:]):
            if d is not None:
                yield a, d, f"argument {i}"


def _rebuild(arg: Any, axis: Any, wrapped: Any) -> Any:
    """`arg` with its leaves replaced, in `_collect`'s order, by the values from `wrapped`."""
    if isinstance(arg, (tuple, list)) and not isinstance(axis, (int, np.integer, type(None))):
        return type(arg)(_rebuild(a, x, wrapped) for a, x in zip(arg, axis))
    if isinstance(arg, dict) and not isinstance(axis, (int, np.integer, type(None))):
        return {k: _rebuild(arg[k], axis[k], wrapped) for k in arg}
    if isinstance(arg, (tuple, list)):
        return type(arg)(_rebuild(a, axis, wrapped) for a in arg)
    if isinstance(arg, dict):
        return {k: _rebuild(v, axis, wrapped) for k, v in arg.items()}
    return next(wrapped)


def _enter(arg: Any, dim: Optional[int], level: int) -> Any:
    """An argument as f sees it: a Batched of `level` (batch axis moved first) or itself."""
    if dim is None:
        return arg
    if not isinstance(arg, Tensor):
        arg = np.asarray(arg)
    return Batched.make(with_batch(arg, dim, 0), level)


def _leave(out: Any, out_axes: Any, level: int, size: int, name: str, where: str,
           arrays_in: bool) -> Any:
    """f's output with the batch axis of `level` at `out_axes` (nested tuples/lists/dicts)."""
    if isinstance(out, (tuple, list)):
        if isinstance(out_axes, (tuple, list)):
            if len(out_axes) != len(out):
                raise ValueError(f"vmap: out_axes of {name} has {len(out_axes)} entries but f "
                                 f"returned a {type(out).__name__} of {len(out)}; expected one "
                                 "entry per output")
            return type(out)(_leave(o, a, level, size, name, f"{where}[{k}]", arrays_in)
                             for k, (o, a) in enumerate(zip(out, out_axes)))
        return type(out)(_leave(o, out_axes, level, size, name, f"{where}[{k}]", arrays_in)
                         for k, o in enumerate(out))
    if isinstance(out, dict):
        axes = out_axes if isinstance(out_axes, dict) else {k: out_axes for k in out}
        return {k: _leave(v, axes[k], level, size, name, f"{where}[{k!r}]", arrays_in) for k, v in out.items()}
    if isinstance(out_axes, (tuple, list, dict)):
        raise ValueError(f"vmap: out_axes of {name} for {where} is {out_axes!r}, but f returned "
                         "a single value there; expected an int or None")
    if isinstance(out, Batched) and out.level == level:
        value = out.payload
    else:  # the same for every example: repeated along the batch axis
        if out_axes is None:
            return _plain(out, arrays_in)
        if not isinstance(out, Tensor):
            out = np.asarray(out)
        value = with_batch(out, None, size)
        if not isinstance(value, Tensor):
            value = np.array(value)
    if out_axes is None:
        raise ValueError(f"vmap: out_axes of {name} for {where} is None, but that output differs "
                         "from example to example; expected an int")
    ndim = len(value.shape)
    if not -ndim <= out_axes < ndim:
        raise ValueError(f"vmap: out_axes of {name} for {where} is {out_axes}, out of range for "
                         f"an output of {ndim - 1} dimension(s) per example; expected an axis in "
                         f"[-{ndim}, {ndim})")
    axis = int(out_axes) % ndim
    if axis:
        order = tuple(range(1, axis + 1)) + (0,) + tuple(range(axis + 1, ndim))
        value = PRIMITIVES["transpose"](value, axes=order)
    return _plain(value, arrays_in)


def _plain(value: Any, arrays_in: bool) -> Any:
    """A value leaving vmap: arrays in give arrays out, unless the value carries a graph or a
    tangent that someone may still use, or is the batch of an enclosing vmap."""
    if (arrays_in and type(value) is Tensor and not value.requires_grad and not value._jvp):
        return value.data
    return value
