"""Replay: run a captured program on a new call's arguments.

The program is turned once into the source of one Python function (`runner`), a straight list
of calls on local variables, one per step, e.g. `s7 = f4(s2, s5)`: no graph, no dispatch on
types, no list of slots to index. Parameters are read from their Tensors when it starts.
Results planned into buffers (plan.py) are written with `out=`, e.g. `s7 = f4(s2, s5, out=b0)`;
a replay that starts while another replay of the same program runs (another thread, or a
recursive call) uses the plain function, which allocates every result, so no buffer is shared.
The commonest steps are lines rather than calls: `t.grad = None`, a leaf's first gradient, a
primitive's forward. `entry` puts in front of the same lines the checks that say whether a
call may replay (what `ag.compile`'s signature and `holds` check), so that such a call runs
one generated function.
"""
from __future__ import annotations

import keyword
import threading
from typing import Any, Callable, Dict, List, Optional, Tuple

import numpy as np

from .. import engine
from ..tensor import Tensor
from .fuse import fused_program
from .plan import Plan, plan
from .program import CONST, OBJECT, VALUE, Program, _last_uses, _template_slots
from .fold import fold_updates
from .schedule import drop_dead, schedule

# what an `entry` returns for a call it does not replay (the caller takes the general path)
MISS = object()

# a step's result this small is not `del`eted after its last use (it goes with the replay's
# locals at the end): the line would cost more than the memory it frees early
SMALL_BYTES = 4096


def replay(program: Program, flat: List[Any]) -> Any:
    """Run the program on the flattened arguments; returns what the function returned."""
    run = program.runner
    if run is None:
        with _BUILDING:   # two threads' first replays: one builds, the other waits for it
            if program.runner is None:
                _build(program)
        run = program.runner
    if run is program.plain_runner:   # no planned buffers: replays share nothing
        return run(flat)
    if not program.busy.acquire(blocking=False):
        return program.plain_runner(flat)
    try:
        return run(flat)
    finally:
        program.busy.release()


_BUILDING = threading.Lock()


def _build(program: Program) -> None:
    """Fuse, plan and generate the runners; `program.runner` is set last, when all is ready."""
    schedule(program)   # elementwise steps moved to their use
    fold_updates(program)   # an optimizer's update joins its parameter's gradient kernel
    steps = fused_program(program)   # the same program, runs of elementwise steps fused
    steps = drop_dead(steps, program)   # steps whose results nothing reads do not run
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
    names, body = _body(program, buffers)
    lines = ["def run(args):"]
    for i, (data, obj) in enumerate(program.inputs):
        if obj >= 0:
            lines.append(f"    s{obj} = args[{i}]")
            lines.append(f"    s{data} = s{obj}.data")
        else:
            lines.append(f"    s{data} = args[{i}]")
    for slot, _ in program.params:
        lines.append(f"    s{slot} = leaf{slot}.data")
    lines += ["    " + line for line in body]
    run = _define("run", lines, dict(names), f"<ag.compile replay of {program.name}>")
    run.parts = (names, body)   # for `entry`: the same lines and globals (buffers included)
    return run


def entry(program: Program, arguments: List[Tuple[bool, tuple, np.dtype, bool, int]],
          grad_mode: bool) -> Callable[[tuple], Any]:
    """A generated function of a call's positional arguments that replays the program, or
    returns MISS without doing anything where the call may not replay it: another number of
    arguments or grad mode, an argument of another kind (Tensor or array, by `arguments`' first
    field), shape, dtype, requires_grad or aliasing (the index of the first argument with the
    same array), or what `holds` checks (a guard's setting, a parameter's shape, dtype or
    requires_grad). Built after the first replay (it reuses the runner's lines and buffers)."""
    run = program.runner
    names, body = run.parts
    names = dict(names, MISS=MISS, mode=engine._grad_mode, Tensor=Tensor,
                 plain=program.plain_runner, busy=program.busy)
    lines = ["def call(args):",
             f"    if len(args) != {len(arguments)} or mode.enabled is not {bool(grad_mode)!r}:",
             "        return MISS"]
    if arguments:
        targets = "".join(f"s{obj if obj >= 0 else data}, " for data, obj in program.inputs)
        lines.append(f"    {targets}= args")
    for i, ((data, obj), (is_tensor, shape, dtype, requires_grad, alias)) in \
            enumerate(zip(program.inputs, arguments)):
        names[f"shape{i}"], names[f"dtype{i}"] = shape, dtype
        test = []
        if is_tensor:
            lines += [f"    if type(s{obj}) is not Tensor or "
                      f"s{obj}.requires_grad != {bool(requires_grad)!r}:",
                      "        return MISS", f"    s{data} = s{obj}.data"]
        else:
            test.append(f"type(s{data}) is not ndarray")
        test += [f"s{data}.shape != shape{i}", f"s{data}.dtype != dtype{i}"]
        for (earlier, _), facts in zip(program.inputs[:i], arguments):
            test.append(f"s{data} {'is not' if alias == facts[4] else 'is'} s{earlier}")
        lines += [f"    if {' or '.join(test)}:", "        return MISS"]
    lines += _guard_lines(program, names)
    for (slot, _), (shape, dtype, requires_grad) in zip(program.params, program.param_facts):
        names[f"pshape{slot}"], names[f"pdtype{slot}"] = shape, dtype
        writeable = f" or not s{slot}.flags.writeable or s{slot}.base is not None" \
            if slot in program.written else ""
        lines += [f"    s{slot} = leaf{slot}.data",
                  f"    if s{slot}.shape != pshape{slot} or s{slot}.dtype != pdtype{slot} or "
                  f"leaf{slot}.requires_grad != {requires_grad!r}{writeable}:", "        return MISS"]
    if program.plain_runner is run:   # no planned buffers: nothing to keep for one replay
        lines += ["    " + line for line in body]
    else:
        lines += ["    if not busy.acquire(False):", "        return plain(args)", "    try:"]
        lines += ["        " + line for line in body]
        lines += ["    finally:", "        busy.release()"]
    return _define("call", lines, names, f"<ag.compile checked replay of {program.name}>")


def holds(program: Program) -> bool:
    """Whether the program still fits: every guard (a module's settings: training, dropout's p)
    has its traced value and every leaf read by reference kept its shape, dtype and
    requires_grad (and, where a kernel updates it in place, stays writeable and owns its
    memory)."""
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
    for (slot, leaf), (shape, dtype, requires_grad) in zip(program.params, program.param_facts):
        data = leaf.data
        if data.shape != shape or data.dtype != dtype or leaf.requires_grad != requires_grad:
            return False
        if slot in program.written and (not data.flags.writeable or data.base is not None):
            return False   # updated in place (fold.py): writeable, sharing no other's memory
    return True


_MISSING = object()


def _guard_lines(program: Program, names: Dict[str, Any]) -> List[str]:
    """`holds`' test of the guards as lines of `entry` (a setting compared with `!=`, an
    object or list of objects held by a module (capture.Same) by identity)."""
    from .capture import Same   # capture imports this module
    lines = []
    for k, (ref, attribute, value) in enumerate(program.guards):
        names[f"ref{k}"] = ref
        lines += [f"    g{k} = ref{k}()", f"    if g{k} is None:", "        return MISS"]
        if attribute is not None:
            names[f"guard{k}"], names[f"attribute{k}"] = value, attribute
            lines += [f"    if getattr(g{k}, attribute{k}) != guard{k}:", "        return MISS"]
            continue
        lines += [f"    found = vars(g{k})", "    try:"]
        for j, (key, setting) in enumerate(value):
            name = f"guard{k}_{j}"
            found = f"found[{key!r}]"
            if type(setting) is Same and not setting.many:
                names[name] = setting.objects
                test = f"{found} is not {name}"
            elif type(setting) is Same:
                lines.append(f"        x = {found}")
                test = f"not isinstance(x, (list, tuple)) or len(x) != {len(setting.objects)}"
                for i, o in enumerate(setting.objects):
                    names[f"{name}_{i}"] = o
                    test += f" or x[{i}] is not {name}_{i}"
            else:
                names[name] = setting
                test = f"{name} != {found}"   # the setting first, as in `holds`
            lines += [f"        if {test}:", "            return MISS"]
        lines += ["    except KeyError:", "        return MISS"]
    return lines


def _body(program: Program, buffers: Optional[Plan]) -> Tuple[Dict[str, Any], List[str]]:
    """The runner's globals and its lines after the arguments and parameters are bound to
    their slots' names (unindented), ending with the return."""
    names: Dict[str, Any] = {"wrap": Tensor._wrap, "ndarray": np.ndarray, "asarray": np.asarray,
                             "copy": np.array}
    writers = buffers.writers if buffers is not None else {}
    if buffers is not None:
        for i, array in enumerate(buffers.allocate()):
            names[f"b{i}"] = array
    for slot, leaf in program.params:
        names[f"leaf{slot}"] = leaf
    bound = {s for s, _ in program.inputs} | {o for _, o in program.inputs if o >= 0}
    bound |= {s for s, _ in program.params}
    for slot, value in enumerate(program.values):
        if value.kind in (CONST, OBJECT) and slot not in bound:
            names[f"s{slot}"] = program.env[slot]   # constants: globals of the function
    last = _last_uses(program)   # a step's result is dropped after its last use, as eager does
    kept = _kept_alive(program)
    fresh = _fresh(program, writers)
    lines: List[str] = []
    for n, step in enumerate(program.steps):
        inline = getattr(step.fn, "inline", None) if n not in writers else None
        unbound: set = set()   # results a line leaves unassigned (nobody reads them)
        if inline == "clear_grad":   # capture._clear_grad
            lines.append(f"s{step.ins[0]}._grad = None")
        elif inline == "accumulate" and isinstance(step.out, int):   # capture._accumulate
            names[f"f{n}"] = step.fn
            used = last.get(step.out, -1) > n
            lines += _accumulate_lines(n, step, step.fn.exclusive, used, step.ins[1] in fresh)
            if not used:
                unbound.add(step.out)
        else:
            args = ", ".join(f"s{i}" for i in step.ins)
            if n in writers:   # planned: out= a buffer, or one buffer or None per result
                names[f"f{n}"] = writers[n]
                if isinstance(step.out, int):
                    args = f"{args}, out=b{buffers.buffer_of[step.out]}"
                else:
                    outs = "".join((f"b{buffers.buffer_of[s]}" if s in buffers.buffer_of else "None")
                                   + ", " for s in step.out)
                    args = f"{args}, out=({outs})"
            forward = inline == "forward" and isinstance(step.out, int)   # capture._forward
            names[f"f{n}"] = step.fn.forward if forward else writers.get(n, step.fn)
            if step.kw:
                keywords = _keywords(step.kw, names, n)
                args = f"{args}, {keywords}" if args else keywords
            call = f"f{n}({args})"
            if step.out is None:
                lines.append(call)
            elif isinstance(step.out, int):
                lines.append(f"s{step.out} = {call}")
                if forward:   # a forward may give a NumPy scalar: the step's value is an array
                    lines += [f"if type(s{step.out}) is not ndarray:",
                              f"    s{step.out} = asarray(s{step.out})"]
            else:
                targets = ", ".join(f"s{s}" if s >= 0 else "_" for s in step.out)
                lines.append(f"{targets}, = {call}")
        dead = sorted({s for s in step.ins + step.outputs()
                       if program.values[s].kind == VALUE and last.get(s, -1) <= n
                       and s in kept and s not in unbound})
        if dead:
            lines.append("del " + ", ".join(f"s{s}" for s in dead))
    lines.append(f"return {_expression(program.result, names)}")
    return names, lines


def _accumulate_lines(n: int, step: Any, exclusive: bool, used: bool, fresh: bool) -> List[str]:
    """capture._accumulate's first gradient (leaf.grad is None: g itself when nothing else
    refers to it and it is writeable, else a copy) as lines; anything else calls it. A `fresh`
    g (see `_fresh`) is known to be both."""
    leaf, g = (f"s{i}" for i in step.ins)
    if fresh:
        data = g
    else:
        data = f"{g} if {g}.flags.writeable else copy({g})" if exclusive else f"copy({g})"
    test = f"if {leaf}._grad is None and type({g}) is ndarray and {g}.dtype == {leaf}.data.dtype:"
    if used:
        out = f"s{step.out}"
        return [test, f"    {out} = {data}", f"    {leaf}._grad = wrap({out})", "else:",
                f"    {out} = f{n}({leaf}, {g})"]
    return [test, f"    {leaf}._grad = wrap({data})", "else:", f"    f{n}({leaf}, {g})"]


def _fresh(program: Program, writers: Dict[int, Any]) -> set:
    """The values that nothing but their one reader can refer to: results of a step whose
    function promises new, writeable, distinct arrays (`fn.fresh`: fuse's kernels), not written
    into a planned buffer, read by one step only and not returned. (The tracer's `exclusive`
    comes from the unfused rules: add's rule hands both inputs one cotangent, which a fused
    kernel writes into two new arrays.)"""
    readers: Dict[int, set] = {}
    writes: Dict[int, int] = {}   # how many steps assign each slot (an in-place sum: again)
    for n, step in enumerate(program.steps):
        for s in step.ins:
            readers.setdefault(s, set()).add(n)
        for s in step.outputs():
            writes[s] = writes.get(s, 0) + 1
    returned = set(_template_slots(program.result))
    return {s for n, step in enumerate(program.steps)
            if getattr(step.fn, "fresh", False) and n not in writers
            for s in step.outputs()
            if len(readers.get(s, ())) == 1 and writes[s] == 1 and s not in returned
            and program.values[s].kind == VALUE}   # not a parameter updated in place (fold.py)


def _kept_alive(program: Program) -> set:
    """The results whose `del` after their last use frees memory worth a line: all but plain
    arrays (or NumPy scalars) of at most SMALL_BYTES that own their memory, as traced. A leaf's
    gradient and the cotangent that becomes it are let go too when the same leaf gets another
    gradient later in the replay (backward twice): the in-place sum into its grad
    (capture._sole_grad_array) needs no other reference to it."""
    accumulations = [step for step in program.steps
                     if getattr(step.fn, "inline", None) == "accumulate"]
    grads = {s for k, step in enumerate(accumulations)
             if any(later.ins[0] == step.ins[0] for later in accumulations[k + 1:])
             for s in step.ins[1:] + step.outputs()}
    kept = set()
    for s, v in enumerate(program.values):
        x = program.env[s]
        small = isinstance(x, np.generic) or (type(x) is np.ndarray and x.base is None
                                              and x.nbytes <= SMALL_BYTES)
        if v.kind == VALUE and (not small or s in grads):
            kept.add(s)
    return kept


def _keywords(kw: Dict[str, Any], names: Dict[str, Any], n: int) -> str:
    """Keyword arguments as source: literals written out, other values as globals (the same
    objects), `**kw{n}` where a key is not a name."""
    if not all(isinstance(k, str) and k.isidentifier() and not keyword.iskeyword(k) for k in kw):
        names[f"kw{n}"] = kw
        return f"**kw{n}"
    parts = []
    for k, v in kw.items():
        if _literal(v):
            parts.append(f"{k}={v!r}")
        else:
            names[f"kw{n}_{k}"] = v
            parts.append(f"{k}=kw{n}_{k}")
    return ", ".join(parts)


def _literal(v: Any) -> bool:
    if v is None or type(v) in (bool, int, str):
        return True
    return type(v) is tuple and all(_literal(x) for x in v)


def _define(name: str, lines: List[str], names: Dict[str, Any], filename: str) -> Callable:
    source = "\n".join(lines) + "\n"
    exec(compile(source, filename, "exec"), names)
    fn = names[name]
    fn.source = source
    return fn


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
