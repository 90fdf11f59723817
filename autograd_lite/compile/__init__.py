"""`ag.compile(fn)`: trace a function (a whole training step) once, replay the captured program.

The first call for a signature (argument shapes, dtypes, which require grad, other arguments by
value, the grad mode) runs `fn` eagerly under a tracer (`capture.py`) that records the forward,
the reverse sweep and the in-place updates as a flat program (`program.py`); later calls with
that signature run the program (`replay.py`) without building a graph. Parameters are read by
reference at every replay, and effects (optimizer updates with the current `lr`, dropout masks
from the seeded generator) are called again, so nothing that may change between calls is frozen.
"""
from __future__ import annotations

import functools
import warnings
from collections import OrderedDict
from typing import Any, Callable, Dict, List, Optional

import numpy as np

from .. import engine
from ..tensor import Tensor, tracers
from .capture import Tracer, TracingError
from .program import Program, differences, to_dot
from .replay import MISS, entry, holds, replay

__all__ = ["compile", "Compiled", "CompileWarning", "TracingError"]

RETRACE_WARNING = 8    # the trace of the 8th distinct signature warns
CACHE_SIZE = 16        # programs kept per compiled function (least recently used dropped)


class CompileWarning(UserWarning):
    """ag.compile falls back to eager execution, or traces the same function too often."""


class Compiled:
    """A function compiled by `ag.compile`: call it as the function itself.

    `trace_count` counts the traces so far, `cache_size` the programs held; `explain()` returns
    the latest program as text (ag.explain(compiled) prints it).
    """

    def __init__(self, fn: Callable, fallback: bool = False) -> None:
        if not callable(fn):
            raise TypeError(f"compile: expected a function, got {type(fn).__name__}")
        functools.update_wrapper(self, fn)
        self.fn = fn
        self.fallback = bool(fallback)
        self.trace_count = 0
        self._cache: "OrderedDict[tuple, List[Program]]" = OrderedDict()
        self._eager: set = set()   # signatures that run eagerly (fallback=True)
        self._latest: Optional[Program] = None
        # the last replayed signature's check and replay in one function (replay.entry)
        self._fast: Optional[Callable[[tuple], Any]] = None
        # (key, id(program)) -> (program, its entry): a signature met again (train and eval
        # calls taking turns) gets its entry back instead of a new one generated
        self._entries: Dict[tuple, tuple] = {}

    @property
    def cache_size(self) -> int:
        return sum(len(programs) for programs in self._cache.values())

    @property
    def program(self) -> Optional[Program]:
        """The program of the latest call (None before the first, or after an eager one)."""
        return self._latest

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if tracers:   # called while another compiled function is traced: inline
            return self.fn(*args, **kwargs)
        fast = self._fast
        if fast is not None and not kwargs:   # the last replayed signature, checked and run
            result = fast(args)                # by one generated function (replay.entry)
            if result is not MISS:
                return result
        flat = []
        key = (engine._grad_mode.enabled, _signature(args, flat),
               tuple((k, _signature(v, flat)) for k, v in kwargs.items()), _aliasing(flat))
        if key in self._eager:
            return self.fn(*args, **kwargs)
        programs = self._cache.get(key)
        if programs:
            for n, program in enumerate(programs):
                if holds(program):
                    self._cache.move_to_end(key)
                    if not program.checked:
                        return self._check(key, n, program, args, kwargs, flat)
                    self._latest = program
                    result = replay(program, flat)   # the first replay builds the runner
                    self._fast = self._entry(key, args, kwargs, flat, program)
                    return result
        return self._trace(key, args, kwargs, flat)

    def _entry(self, key: tuple, args: tuple, kwargs: dict, flat: List[Any],
               program: Program) -> Optional[Callable[[tuple], Any]]:
        """The fast entry of this signature and program (see `_fast_entry`), made once."""
        found = self._entries.get((key, id(program)))
        if found is not None and found[0] is program:
            return found[1]
        fast = _fast_entry(key, args, kwargs, flat, program)
        if fast is not None:
            self._entries[(key, id(program))] = (program, fast)
        return fast

    def _forget_entries(self) -> None:
        """Drop the entries of programs no longer in the cache (they hold its buffers)."""
        held = {id(p) for programs in self._cache.values() for p in programs}
        self._entries = {k: v for k, v in self._entries.items() if id(v[0]) in held}

    def _check(self, key: tuple, n: int, first: Program, args: tuple, kwargs: dict,
               flat: List[Any]) -> Any:
        """The second call of a signature is traced again (it runs eagerly, as the trace does)
        and its program compared with the first: if a constant or a step differs, the function
        computes something from its arguments' values out of the tracer's sight, and replaying
        the first program would be wrong."""
        self._fast = None
        name = getattr(self.fn, "__qualname__", repr(self.fn))
        tracer = Tracer(name, self.fallback)
        result, second = tracer.run(self.fn, args, kwargs, flat)
        why = tracer.refused or differences(first, second)
        if why is not None and not tracer.refused:
            why = (f"ag.compile: {name} traced twice with the same signature gave two programs: "
                   f"{why}. It computes something from its arguments' values that the tracer "
                   "cannot see (NumPy on t.data or on an argument, a Python branch on a value, "
                   "random numbers not drawn through engine.replayed), so replaying one program "
                   "would be wrong; do that work with ag operations (ag.where for a choice), "
                   "outside the function, or pass fallback=True to run it eagerly")
        if why is not None:
            del self._cache[key]
            self._forget_entries()
            self._latest = None
            if not self.fallback:
                raise TracingError(why)
            self._eager.add(key)
            warnings.warn(f"{why}. This signature now runs eagerly (fallback=True).",
                          CompileWarning, stacklevel=3)
            return result
        second.checked = True
        self._cache[key][n] = second
        self._latest = second
        return result

    def _trace(self, key: tuple, args: tuple, kwargs: dict, flat: List[Any]) -> Any:
        self._fast = None
        name = getattr(self.fn, "__qualname__", repr(self.fn))
        tracer = Tracer(name, self.fallback)
        self.trace_count += 1
        if self.trace_count == RETRACE_WARNING:
            warnings.warn(
                f"ag.compile: {name} was traced {RETRACE_WARNING} times (one trace per signature: "
                "argument shapes, dtypes, requires_grad, other arguments by value, modules' "
                "train/eval): pass values that change between calls as arrays, and keep shapes "
                "fixed (e.g. drop the last partial batch)", CompileWarning, stacklevel=3)
        result, program = tracer.run(self.fn, args, kwargs, flat)
        if tracer.refused:
            self._eager.add(key)
            self._latest = None
            warnings.warn(f"{tracer.refused}. This signature now runs eagerly (fallback=True).",
                          CompileWarning, stacklevel=3)
            return result
        self._cache.setdefault(key, []).append(program)
        self._cache.move_to_end(key)
        while self.cache_size > CACHE_SIZE:
            oldest = next(iter(self._cache))
            self._cache[oldest].pop(0)
            if not self._cache[oldest]:
                del self._cache[oldest]
            self._forget_entries()
        self._latest = program
        return result

    def explain(self) -> str:
        """The latest program as text (see Program.explain)."""
        if self._latest is None:
            return (f"compiled {getattr(self.fn, '__qualname__', self.fn)}: not traced yet "
                    "(call it once), or its latest call ran eagerly")
        return self._latest.explain()

    def to_dot(self, title: Optional[str] = None) -> str:
        """Graphviz DOT text of the latest program (ag.to_dot(compiled) calls it)."""
        if self._latest is None:
            raise RuntimeError(f"to_dot: {self.explain()}")
        return to_dot(self._latest, title)

    def __repr__(self) -> str:
        return f"<ag.compile of {getattr(self.fn, '__qualname__', self.fn)}: {self.cache_size} programs>"


def compile(fn: Optional[Callable] = None, *, fallback: bool = False) -> Any:
    """Compile `fn` (a forward, or a whole training step) into a traced, replayed program.

    Example:
        >>> @ag.compile
        ... def step(x, y):
        ...     loss = nn.binary_cross_entropy_with_logits(x @ W + b, y)
        ...     opt.zero_grad(); loss.backward(); opt.step()
        ...     return loss
        >>> loss = step(xb, yb)       # traces; later calls with the same shapes replay

    Reading a traced value from Python inside `fn` (`float(loss)`, `if loss > 0:`) raises
    `ag.TracingError`; `fallback=True` runs such a function eagerly instead, with one warning.
    Returned Tensors come back without a graph.
    """
    if fn is None:
        return lambda f: Compiled(f, fallback=fallback)
    return Compiled(fn, fallback=fallback)


FAST_ARGUMENTS = 8   # up to this many positional array/Tensor arguments get a fast entry


def _fast_entry(key: tuple, args: tuple, kwargs: dict, flat: List[Any],
                program: Program) -> Optional[Callable[[tuple], Any]]:
    """`replay.entry` for calls with the signature `key`: one generated function that checks a
    call's positional arguments (each the same kind, shape, dtype and requires_grad, the same
    aliasing, the same grad mode) and what `holds` checks, without building the signature, and
    replays the program (or returns MISS: the call takes the general path). Only for calls
    whose arguments are all arrays or Tensors of the exact types, at most FAST_ARGUMENTS."""
    if kwargs or len(args) > FAST_ARGUMENTS or len(flat) != len(args) or \
            any(a is not f or type(a) not in (Tensor, np.ndarray) for a, f in zip(args, flat)):
        return None
    grad_mode, signature, _, aliasing = key
    arguments = [(type(a) is Tensor, a.shape, a.dtype, type(a) is Tensor and sig[3], alias)
                 for a, sig, alias in zip(args, signature[1:], aliasing)]   # [0]: 'tuple'
    return entry(program, arguments, grad_mode)


def _aliasing(flat: List[Any]) -> tuple:
    """Which arguments are the same array (f(x, x) is another program than f(x, y)): for each,
    the position of its first occurrence."""
    first: Dict[int, int] = {}
    return tuple(first.setdefault(id(x.data if isinstance(x, Tensor) else x), i)
                 for i, x in enumerate(flat))


def _signature(x: Any, flat: List[Any]) -> Any:
    """The part of the cache key for one argument; arrays and Tensors go into `flat`."""
    if isinstance(x, Tensor):
        flat.append(x)
        return ("T", x.data.shape, x.data.dtype.str, x.requires_grad)
    if isinstance(x, np.ndarray):
        flat.append(x)
        return ("A", x.shape, x.dtype.str)
    if isinstance(x, (tuple, list)):
        return (type(x).__name__,) + tuple(_signature(v, flat) for v in x)
    if isinstance(x, dict):
        return ("dict",) + tuple((k, _signature(v, flat)) for k, v in x.items())
    try:
        hash(x)
    except TypeError:
        raise TypeError(f"compile: an argument of type {type(x).__name__} is neither an array, a "
                        "Tensor nor hashable, so calls cannot be told apart by it; pass arrays, "
                        "Tensors, numbers or objects that hash") from None
    return ("V", type(x).__name__, x)
