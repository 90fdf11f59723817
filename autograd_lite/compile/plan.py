"""The buffer plan: which step results a replay writes into arrays allocated once.

A step whose call can write into a given array (a NumPy ufunc forward, the sum of two
cotangents, a forward or VJP rule declared in its primitive's `into`, e.g. matmul's 2-D
products through `np.matmul(a, b, out=)`, the same BLAS call, or a joint VJP rule declared as
`into["joint"]`, e.g. the fused linear's dx, which takes one array or None per result) gets a
buffer of its traced shape and dtype, passed as `out=`, if nothing outside
the replay can hold its result or a view of it: not returned, not handed to an effect (an
optimizer, an in-place operator) or stored as a leaf's `.grad`. Which values share memory is
read off the traced run itself (a rule that returns its cotangent unchanged, a reshape's
view), so a buffer stays busy until the last use of every value that may alias it, and is
then reused by a later step's result of the same shape and dtype. The values are the ones an
eager run computes, bit for bit: the same NumPy call, only into another array.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Tuple

import numpy as np

from .program import PURE_KINDS, VALUE, Program, _last_uses, _template_slots

__all__ = ["Plan", "plan", "ENABLED"]

ENABLED = True   # False: replays allocate every result, as eager does (to measure the plan)


@dataclass
class Plan:
    """`buffer_of[slot]` is the index of the buffer a step writes that slot into;
    `buffers[i]` its (shape, dtype); `writers[n]` the function step n calls with `out=`."""
    buffers: List[Tuple[tuple, np.dtype]] = field(default_factory=list)
    buffer_of: Dict[int, int] = field(default_factory=dict)
    writers: Dict[int, Callable] = field(default_factory=dict)

    @property
    def nbytes(self) -> int:
        """Bytes held by the planned buffers (allocated once per program)."""
        return sum(int(np.prod(s, dtype=np.int64)) * np.dtype(d).itemsize for s, d in self.buffers)

    def allocate(self) -> List[np.ndarray]:
        return [np.empty(shape, dtype) for shape, dtype in self.buffers]

    def text(self, program: Program) -> str:
        """One line for explain: how many results share how many buffers, and their size."""
        if not self.buffers:
            return "buffer plan: none (every result is a fresh array, as in eager)"
        planned = sum(program.values[s].nbytes for s in self.buffer_of)
        return (f"buffer plan: {len(self.buffer_of)} results written with out= into "
                f"{len(self.buffers)} preallocated buffers ({_kib(self.nbytes)}, "
                f"{_kib(planned)} of results; the rest, which may outlive a step, fresh)")


def plan(program: Program) -> Plan:
    """Plan the buffers of a traced program (see the module docstring)."""
    result = Plan()
    if not ENABLED:
        return result
    env, values, steps = program.env, program.values, program.steps
    group = _alias_groups(program)
    members: Dict[int, List[int]] = {}
    for s in range(len(values)):
        members.setdefault(group(s), []).append(s)
    last = _last_uses(program)
    escaped = {group(s) for s in _template_slots(program.result)}
    for step in steps:
        if step.kind not in PURE_KINDS:
            escaped |= {group(s) for s in step.ins + step.outputs()}
    for slot, v in enumerate(values):
        if v.kind != VALUE:   # an argument, a parameter or a constant lives outside the replay
            escaped.add(group(slot))
    free: Dict[Tuple[tuple, str], List[int]] = {}
    releases: Dict[int, List[Tuple[Tuple[tuple, str], int]]] = {}
    defined: set = set()
    for n, step in enumerate(steps):
        out = step.out
        fresh = isinstance(out, int) and out not in defined or \
            isinstance(out, tuple) and not defined.intersection(out)
        writer = _writer(step, env) if fresh else None
        targets = [s for s in step.outputs() if group(s) not in escaped
                   and type(env[s]) is np.ndarray and env[s].flags.c_contiguous]
        if writer is not None and targets:
            for s in targets:
                array = env[s]
                key = (array.shape, array.dtype.str)
                pool = free.get(key)
                if pool:
                    index = pool.pop()
                else:
                    index = len(result.buffers)
                    result.buffers.append((array.shape, array.dtype))
                result.buffer_of[s] = index
                # busy until the last use of every value that may share its memory
                end = max(last.get(m, n) for m in members[group(s)])
                releases.setdefault(max(end, n), []).append((key, index))
            result.writers[n] = writer
        defined.update(step.outputs())
        for key, index in releases.pop(n, ()):
            free.setdefault(key, []).append(index)
    return result


def _writer(step: Any, env: List[Any]) -> Optional[Callable]:
    """The function that computes step's result into `out=`, or None where there is none:
    a forward or VJP rule its primitive declares in `prim.into` (matmul's BLAS product), a
    ufunc forward of plain arrays without parameters, or the sum of two cotangents."""
    from .capture import _add   # capture imports program; the step functions live there
    inputs = [env[i] for i in step.ins]
    if any(isinstance(a, np.ndarray) and type(a) is not np.ndarray for a in inputs):
        return None   # a subclass (a traced mask) may handle out= its own way
    into = getattr(step.prim, "into", None)
    if isinstance(step.out, tuple):   # a joint VJP rule: out= one array or None per result
        wanted = getattr(step.fn, "wanted", None)
        if (into is None or "joint" not in into or wanted is None or step.kind != "rule"
                or not all(type(a) is np.ndarray or a is None for a in inputs)
                or not into["when"](*inputs[2:], **step.kw)):
            return None
        return functools.partial(into["joint"], wanted=wanted)
    result = env[step.out] if isinstance(step.out, int) else None
    if type(result) is not np.ndarray or result.ndim == 0 or not result.flags.c_contiguous:
        return None
    if into is not None and step.kind in ("primitive", "rule"):
        operands = inputs if step.kind == "primitive" else inputs[2:]
        if (all(type(a) is np.ndarray or a is None for a in inputs)
                and into["when"](*operands, **step.kw)):
            if step.kind == "primitive":
                return into.get("forward")
            rules = into.get("vjps", ())
            return rules[step.argnum] if 0 <= step.argnum < len(rules) else None
    if step.kind == "primitive" and not step.kw:
        forward = getattr(step.fn, "forward", None)
        if isinstance(forward, np.ufunc) and forward.nout == 1 and forward.nin == len(inputs):
            return forward
    if step.kind == "sum" and step.fn is _add and all(type(a) is np.ndarray for a in inputs):
        return np.add
    return None


def _alias_groups(program: Program) -> Callable[[int], int]:
    """Union-find over slots: two values are in one group when a step's result shares memory
    with one of its inputs in the traced run (a view, an input handed back, an in-place sum)."""
    parent = list(range(len(program.values)))

    def find(s: int) -> int:
        while parent[s] != s:
            parent[s] = parent[parent[s]]
            s = parent[s]
        return s

    env = program.env
    for step in program.steps:
        for o in step.outputs():
            a = env[o]
            if not isinstance(a, np.ndarray):
                continue
            for i in step.ins:
                b = env[i]
                if i != o and isinstance(b, np.ndarray) and np.may_share_memory(a, b):
                    parent[find(o)] = find(i)
    return find


def _kib(n: int) -> str:
    return f"{n / 1024:.1f} KiB"
