"""Replay: run a captured program on a new call's arguments.

The program is turned once into the source of one Python function (`runner`), a straight list
of calls on local variables, one per step, e.g. `s7 = f4(s2, s5)`: no graph, no dispatch on
types, no list of slots to index. Parameters are read from their Tensors when it starts.
Results planned into buffers (plan.py) are written with `out=`, e.g. `s7 = f4(s2, s5, out=b0)`;
a replay that starts while another replay of the same program runs (another thread, or a
recursive call) uses the plain function, which allocates every result, so no buffer is shared.
"""
from __future__ import annotations

import threading
from typing import Any, Callable, Dict, List, Optional

from ..tensor import Tensor
from .fuse import fused_program
from .plan import Plan, plan
from .program import CONST, OBJECT, VALUE, Program, _last_uses


def replay(program: Program, flat: List[Any]) -> Any:
    """Run the program on the flattened arguments; returns what the function returned."""
    run = program.runner
    if run is None:
        with _BUILDING:   # two threads' first replays: one builds, the other waits for it
            if program.runner is None:
                _build(program)
        run = program.runner
    if not program.busy.acquire(blocking=False):
        return program.plain_runner(flat)
    try:
        return run(flat)
    finally:
        program.busy.release()


_BUILDING = threading.Lock()


def _build(program: Program) -> None:
    """Fuse, plan and generate the runners; `program.runner` is set last, when all is ready."""
    steps = fused_program(program)   # the same program, runs of elementwise steps fused
    program.plan = plan(steps)
    run = runner(steps, program.plan)
    program.plain_runner = runner(steps) if program.plan.buffers else run
    program.busy = threading.Lock()
    # the runners hold the constants; the traced call's arrays (its arguments, every
    # intermediate) are not needed again and would stay alive as long as the program
    program.env = [x if v.kind in (CONST, OBJECT) else None
                   for x, v in zip(program.env, program.values)]
    program.runner = run


def runner(program: Program, buffers: Optional[Plan] = None) -> Callable[[List[Any]], Any]:
    """The program as one generated Python function of the flattened arguments (writing the
    results that `buffers` plans into arrays allocated here, once)."""
    names: Dict[str, Any] = {"wrap": Tensor._wrap}
    writers = buffers.writers if buffers is not None else {}
    if buffers is not None:
        for i, array in enumerate(buffers.allocate()):
            names[f"b{i}"] = array
    lines = ["def run(args):"]
    for i, (data, obj) in enumerate(program.inputs):
        if obj >= 0:
            lines.append(f"    s{obj} = args[{i}]")
            lines.append(f"    s{data} = s{obj}.data")
        else:
            lines.append(f"    s{data} = args[{i}]")
    for slot, leaf in program.params:
        names[f"leaf{slot}"] = leaf
        lines.append(f"    s{slot} = leaf{slot}.data")
    bound = {s for s, _ in program.inputs} | {o for _, o in program.inputs if o >= 0}
    bound |= {s for s, _ in program.params}
    for slot, value in enumerate(program.values):
        if value.kind in (CONST, OBJECT) and slot not in bound:
            names[f"s{slot}"] = program.env[slot]   # constants: globals of the function
    last = _last_uses(program)   # a step's result is dropped after its last use, as eager does
    for n, step in enumerate(program.steps):
        names[f"f{n}"] = writers.get(n, step.fn)
        args = ", ".join(f"s{i}" for i in step.ins)
        if n in writers:   # planned: out= a buffer, or one buffer or None per result
            if isinstance(step.out, int):
                args = f"{args}, out=b{buffers.buffer_of[step.out]}"
            else:
                outs = "".join((f"b{buffers.buffer_of[s]}" if s in buffers.buffer_of else "None")
                               + ", " for s in step.out)
                args = f"{args}, out=({outs})"
            if step.kw:
                names[f"kw{n}"] = step.kw
                args = f"{args}, **kw{n}"
        elif step.kw:
            names[f"kw{n}"] = step.kw
            args = f"{args}, **kw{n}" if args else f"**kw{n}"
        call = f"f{n}({args})"
        if step.out is None:
            lines.append(f"    {call}")
        elif isinstance(step.out, int):
            lines.append(f"    s{step.out} = {call}")
        else:
            targets = ", ".join(f"s{s}" if s >= 0 else "_" for s in step.out)
            lines.append(f"    {targets}, = {call}")
        dead = sorted({s for s in step.ins + step.outputs()
                       if program.values[s].kind == VALUE and last.get(s, -1) <= n})
        if dead:
            lines.append("    del " + ", ".join(f"s{s}" for s in dead))
    lines.append(f"    return {_expression(program.result, names)}")
    source = "\n".join(lines) + "\n"
    code = compile(source, f"<ag.compile replay of {program.name}>", "exec")
    exec(code, names)
    run = names["run"]
    run.source = source
    return run


def holds(program: Program) -> bool:
    """Whether the program still fits: every guard (a module's settings: training, dropout's p)
    has its traced value and every leaf read by reference kept its shape, dtype and
    requires_grad."""
    for ref, attribute, value in program.guards:
        obj = ref()
        if obj is None:
            return False
        if attribute is None:   # the settings seen while tracing, looked up one by one
            found = vars(obj)
            for key, setting in value:
                if setting != found.get(key, _MISSING):   # setting first: it may be a capture.Same
                    return False
        elif getattr(obj, attribute) != value:
            return False
    for (_, leaf), (shape, dtype, requires_grad) in zip(program.params, program.param_facts):
        data = leaf.data
        if data.shape != shape or data.dtype != dtype or leaf.requires_grad != requires_grad:
            return False
    return True


_MISSING = object()


def _expression(template: Any, names: Dict[str, Any]) -> str:
    """Python source that rebuilds the function's result from the local variables."""
    kind, what = template
    if kind == "tensor":
        return f"wrap(s{what})"
    if kind in ("array", "object"):
        return f"s{what}"
    if kind == "tuple":
        inner = "".join(_expression(t, names) + ", " for t in what)
        return f"({inner})"
    if kind == "list":
        return "[" + ", ".join(_expression(t, names) for t in what) + "]"
    if kind == "dict":
        key = f"r{len(names)}"
        names[key] = list(what)
        parts = ", ".join(f"{key}[{i}]: {_expression(t, names)}" for i, t in enumerate(what.values()))
        return "{" + parts + "}"
    key = f"r{len(names)}"
    names[key] = what
    return key
