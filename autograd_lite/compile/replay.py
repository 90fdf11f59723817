"""Replay: run a captured program on a new call's arguments, as a flat loop over its steps."""
from __future__ import annotations

from typing import Any, List

from ..tensor import Tensor
from .capture import settings
from .program import Program


def replay(program: Program, flat: List[Any]) -> Any:
    """Fill the arguments and the leaves read by reference, run every step, rebuild the result."""
    env = program.env
    for (data, obj), x in zip(program.inputs, flat):
        if obj >= 0:
            env[data] = x.data
            env[obj] = x
        else:
            env[data] = x
    for slot, leaf in program.params:
        env[slot] = leaf.data
    for step in program.steps:
        out = step.out
        result = step.fn(*[env[i] for i in step.ins], **step.kw)
        if type(out) is int:
            env[out] = result
        elif out is not None:
            for slot, value in zip(out, result):
                if slot >= 0:
                    env[slot] = value
    return _rebuild(program.result, env)


def holds(program: Program) -> bool:
    """Whether the program still fits: every guard (a module's settings: training, dropout's p)
    has its traced value and every leaf read by reference kept its shape, dtype and
    requires_grad."""
    for ref, attribute, value in program.guards:
        obj = ref()
        if obj is None or settings(obj, attribute) != value:
            return False
    for (_, leaf), (shape, dtype, requires_grad) in zip(program.params, program.param_facts):
        data = leaf.data
        if data.shape != shape or data.dtype != dtype or leaf.requires_grad != requires_grad:
            return False
    return True


def _rebuild(template: Any, env: List[Any]) -> Any:
    kind, what = template
    if kind == "tensor":
        return Tensor._wrap(env[what])
    if kind == "array":
        return env[what]
    if kind == "object":
        return env[what]
    if kind == "tuple":
        return tuple(_rebuild(t, env) for t in what)
    if kind == "list":
        return [_rebuild(t, env) for t in what]
    if kind == "dict":
        return {k: _rebuild(t, env) for k, t in what.items()}
    return what
