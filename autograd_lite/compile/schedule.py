"""Scheduling: the order of a captured program's steps before it is fused and planned.

Two rewrites that change no value the program computes:
- dead steps go: a step that only computes (a primitive's forward, a derivative rule, a sum of
  cotangents, a comparison, a fused kernel) and whose results nothing later reads nor the
  function returns does not run, as XLA drops it under jit. It is done after fusion, where a
  kernel reads only the values its elements use: so the whole forward of
  `(a * b + c).sum().backward()`, whose rules need the inputs only, goes;
- elementwise steps move down to their use: each to just before the first step that reads its
  value, where that step is elementwise too, so fusion (fuse.py) can join them. The L2
  gradient `2 * W * g`, computed early in the reverse sweep, then meets the `add_into` of W's
  matrix-product gradient: one pass over W instead of two.
"""
from __future__ import annotations

import copy
from typing import List

import numpy as np

from .fuse import _element
from .program import PURE_KINDS, Program, Step, _template_slots

__all__ = ["schedule", "drop_dead"]

# steps nothing moves across: they may write any array (except an effect that only draws
# random numbers, `Step.draw`, such as dropout's mask)
BARRIERS = ("effect", "grad")
ENABLED = True


def schedule(program: Program) -> None:
    """Move elementwise steps to their use (before fusion); `program.steps` is rewritten in
    place. The dead steps are dropped after fusion (`drop_dead`)."""
    if not ENABLED:
        return
    _sink(program)


def drop_dead(fused: Program, program: Program) -> Program:
    """The fused program without its dead steps (itself when none is); `program.dropped` gets
    the indices of `program`'s steps that will not run, for explain."""
    kept = _live(fused)
    if len(kept) == len(fused.steps):
        return fused
    gone = {id(step) for step in fused.steps} - {id(step) for step in kept}
    program.dropped = {n for n, step in enumerate(program.steps) if id(step) in gone}
    program.dropped |= {n for group in program.fusion or () if id(group.step) in gone
                        for n in group.steps}
    result = copy.copy(fused)
    result.steps = kept
    return result


def _live(program: Program) -> List[Step]:
    """The steps that are not dead: walking back from the returned values, a pure step none of
    whose results is read later is left out."""
    live = set(_template_slots(program.result))
    kept: List[Step] = []
    for step in reversed(program.steps):
        outs = set(step.outputs())
        if step.kind in PURE_KINDS and outs and not outs & live:
            continue
        live -= outs
        live |= set(step.ins)
        kept.append(step)
    return kept[::-1]


def _sink(program: Program) -> None:
    """Move elementwise steps later, each to just before the first step that reads its value,
    where that step is elementwise too and of the same shape. A step moves only across steps
    that do not read its value, redefine what it reads, or may write arrays (effects other
    than draws, gradient accumulation), so every value it computes is the same."""
    env, steps = program.env, program.steps
    elements = [_element(n, s, env) for n, s in enumerate(steps)]
    order = list(range(len(steps)))
    pos = len(order) - 2
    while pos >= 0:
        n = order[pos]
        e = elements[n]
        out = env[e.out] if e is not None else None
        if e is not None and not e.reduce and isinstance(out, (np.ndarray, np.generic)):
            q = pos + 1
            ins = set(steps[n].ins)
            while q < len(order) and e.out not in steps[order[q]].ins and \
                    (steps[order[q]].kind not in BARRIERS or steps[order[q]].draw) and \
                    not ins.intersection(steps[order[q]].outputs()):
                q += 1
            if pos + 1 < q < len(order) and e.out in steps[order[q]].ins:
                consumer = elements[order[q]]
                value = env[consumer.out] if consumer is not None else None
                source = env[consumer.names.get("v", -1)] if consumer is not None and consumer.reduce \
                    else value
                if isinstance(source, (np.ndarray, np.generic)) and source.shape == out.shape and \
                        source.dtype == out.dtype:
                    order.insert(q - 1, order.pop(pos))
        pos -= 1
    if order != list(range(len(steps))):
        program.steps = [steps[n] for n in order]
