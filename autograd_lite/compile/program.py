"""The captured program: a flat list of steps over numbered values (slots), and its printout.

A value is an argument of the call (an array, or the Tensor object itself when the function
may write its `.grad`), a leaf read by reference at every replay (a parameter's array), a
constant, or the result of a step. A step is one call: a primitive's forward, one derivative
rule of the reverse sweep, a sum of cotangents, a gradient accumulated into a leaf, or an
effect replayed by calling it again (an optimizer's update, a random draw).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Tuple

import numpy as np

INPUT, PARAM, CONST, VALUE, OBJECT = "input", "param", "const", "value", "object"
# the kinds of steps that only read their inputs and return new values: no effect on any array,
# no reference kept to their inputs after returning
PURE_KINDS = ("primitive", "rule", "sum", "compare", "fused")


@dataclass
class Value:
    """What one slot holds: its kind (one of the names above), shape and dtype when it is an
    array (as seen while tracing), and a name for the printout."""
    kind: str
    shape: Optional[tuple] = None
    dtype: Optional[np.dtype] = None
    name: str = ""
    where: str = ""   # for a constant or a tensor made inside: the user's line that made it

    @property
    def nbytes(self) -> int:
        if self.shape is None or self.dtype is None:
            return 0
        return int(np.prod(self.shape, dtype=np.int64)) * np.dtype(self.dtype).itemsize


@dataclass
class Step:
    """One call of the program: `env[out] = fn(*(env[i] for i in ins), **kw)`.

    `out` is a slot, a tuple of slots (the call returns a tuple; -1 drops an element) or None
    (an effect whose result is not used). `kind` and `label` are for the printout."""
    kind: str
    label: str
    fn: Callable
    ins: Tuple[int, ...]
    out: Any
    kw: Dict[str, Any] = field(default_factory=dict)
    fixed: tuple = ()   # an effect's arguments taken by reference (compared by `differences`)
    prim: Any = None    # the primitive whose forward (or rule `argnum`) this step runs (fusion)
    argnum: int = -1
    draw: bool = False  # an effect that only draws random numbers: it writes no array of the program
    fold: Any = None    # an optimizer step's declaration of its update, for fold.py

    def outputs(self) -> Tuple[int, ...]:
        if self.out is None:
            return ()
        if isinstance(self.out, int):
            return (self.out,)
        return tuple(s for s in self.out if s >= 0)


@dataclass
class Program:
    """Everything a replay needs, fixed at trace time.

    `values[i]` describes slot i; `env` holds the slot contents seen while tracing (after the
    first replay only the constants and objects, which the generated runner took as its
    globals: a replay's values are its local variables); `inputs` pairs each flattened
    argument with its slot (and the slot of the Tensor object, or -1); `params` pairs slots
    with the leaf Tensors read by reference; `result` is the template of what the function
    returned.
    """
    name: str
    values: List[Value]
    steps: List[Step]
    env: List[Any]
    inputs: List[Tuple[int, int]]
    params: List[Tuple[int, Any]]
    result: Any
    guards: List[Tuple[Any, Optional[str], Any]]   # (weak reference, attribute or None, settings)
    param_facts: List[Tuple[tuple, np.dtype, bool]]   # each param's shape, dtype, requires_grad
    checked: bool = False   # traced a second time and found the same (see `differences`)
    runner: Optional[Callable] = None   # the generated replay function (replay.runner)
    plain_runner: Optional[Callable] = None   # the same without planned buffers (re-entry)
    plan: Any = None   # the buffer plan (plan.Plan), made with the runner at the first replay
    busy: Any = None   # a lock held while the planned runner runs
    fusion: Any = None   # the groups of steps fused into kernels (fuse.Group), for explain
    returned_at: str = ""   # the line where the function returned, while traced
    dropped: Any = ()   # indices of steps that do not run (their results unused; schedule.py)
    written: tuple = ()   # slots of parameters a kernel updates in place (fold.py): writeable

    def peak_bytes(self) -> int:
        """The largest total size of the step results alive at once (each freed after its
        last use; parameters, inputs and constants not counted)."""
        last = _last_uses(self)
        alive, peak = 0, 0
        live: Dict[int, int] = {}
        for n, step in enumerate(self.steps):
            for s in step.outputs():
                if self.values[s].kind == VALUE and s not in live:
                    live[s] = self.values[s].nbytes
                    alive += live[s]
            peak = max(peak, alive)
            for s in [s for s in live if last.get(s, -1) <= n]:
                alive -= live.pop(s)
        return peak

    def explain(self) -> str:
        """The program as text, jaxpr-like: arguments and parameters, one line per step with
        the shapes of its results, what it returns and the peak memory of the values."""
        names = [_slot_name(i, v) for i, v in enumerate(self.values)]
        lines = [f"compiled {self.name}: {len(self.steps)} steps"]
        head = [f"{names[s]}:{_type(self.values[s])}" for s, _ in self.inputs]
        lines.append("  arguments: " + (" ".join(head) or "none"))
        params = [f"{names[s]}:{_type(self.values[s])}" for s, _ in self.params]
        lines.append("  read by reference: " + (" ".join(params) or "none"))
        lines.append("  let")
        buffer_of = self.plan.buffer_of if self.plan is not None else {}
        kernel_of = {n: k for k, group in enumerate(self.fusion or ()) for n in group.steps}
        defined: set = set()
        for n, step in enumerate(self.steps):
            outs = step.outputs()
            left = " ".join(f"{names[s]}:{_type(self.values[s])}" for s in outs) or "_"
            args = " ".join(names[i] for i in step.ins)
            into = "".join(f"   -> buffer b{buffer_of[s]}" for s in outs
                           if s in buffer_of and s not in defined)
            if n in kernel_of:
                into += f"   [kernel {kernel_of[n]}]"
            if n in self.dropped:
                into += "   (unused: not run)"
            defined.update(outs)
            lines.append(f"    {left} = {step.label} {args}".rstrip() + into)
        lines.append(f"  in {_template_text(self.result, names)}")
        lines.append(f"  values: {sum(1 for v in self.values if v.kind == VALUE)} results, "
                     f"peak {_bytes(self.peak_bytes())} alive at once")
        for k, group in enumerate(self.fusion or ()):
            kind = _type(Value(VALUE, group.shape, group.dtype))
            unused = " (unused: not run)" if group.steps[0] in self.dropped else ""
            after = [names[e.out] for e in getattr(group, "members", ()) if e.after]
            if after:
                unused += f", then updates {' '.join(after)} after the pass"
            how = f"in one pass over {kind}" if group.shape else f"on {kind} values, one Python function"
            lines.append(f"  kernel {k}: {len(group.steps)} steps {how}, reads "
                         f"{' '.join(names[s] for s in group.reads)}, writes "
                         f"{' '.join(names[s] for s in group.writes)}{unused}")
        if self.plan is not None:
            lines.append("  " + self.plan.text(self))
        else:
            lines.append("  buffer plan: made at the first replay")
        return "\n".join(lines)


def to_dot(program: Program, title: Optional[str] = None) -> str:
    """Graphviz DOT text of the program: a box per argument or parameter, an ellipse per step
    (its label and result shapes), an edge for every value a step reads."""
    names = [_slot_name(i, v) for i, v in enumerate(program.values)]
    lines = ["digraph compiled {", "  rankdir=LR;", '  node [fontname="Helvetica", fontsize=10];']
    if title:
        lines.append(f"  label={_quote(title)};")
    source: Dict[int, str] = {}
    for slot, _ in program.inputs:
        source[slot] = f"s{slot}"
        lines.append(f"  s{slot} [label={_quote(names[slot] + chr(10) + _type(program.values[slot]))}, shape=box];")
    for slot, _ in program.params:
        source[slot] = f"s{slot}"
        lines.append(f"  s{slot} [label={_quote(names[slot] + chr(10) + _type(program.values[slot]))}, "
                     'shape=box, style=filled, fillcolor="#dbe9f6"];')
    for n, step in enumerate(program.steps):
        shapes = " ".join(_type(program.values[s]) for s in step.outputs())
        style = ', style=filled, fillcolor="#fde8c8"' if step.kind == "effect" else ""
        lines.append(f"  t{n} [label={_quote(step.label + chr(10) + shapes)}, shape=ellipse{style}];")
        for i in dict.fromkeys(step.ins):
            if i in source:
                lines.append(f"  {source[i]} -> t{n};")
        for s in step.outputs():
            source[s] = f"t{n}"
    lines.append("}")
    return "\n".join(lines) + "\n"


def _quote(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{escaped}"'


def differences(first: Program, second: Program) -> Optional[str]:
    """Why two traces of the same signature are not the same program (None if they are):
    another sequence of steps, or a constant or parameter of another value. Either means that
    the function computed something from its arguments' values where the tracer could not see
    it (NumPy on `t.data`, a Python branch on a value), so a replay would be wrong."""
    if len(first.steps) != len(second.steps) or len(first.values) != len(second.values):
        return (f"the second call ran {len(second.steps)} steps where the first ran "
                f"{len(first.steps)}")
    for n, (a, b) in enumerate(zip(first.steps, second.steps)):
        if a.label != b.label or a.ins != b.ins or a.out != b.out:
            return f"step {n} was `{a.label}` in the first call and `{b.label}` in the second"
        if not _same(a.kw, b.kw) or not _same(a.fixed, b.fixed):
            return f"step {n} (`{a.label}`) got other fixed arguments in the second call"
    if not _same(first.result, second.result):
        return ("the function returned a value made outside the recorded operations (a number or "
                "array computed from t.data or with NumPy) that differs between the two calls, at "
                f"{second.returned_at or 'its return'}")
    params_a = dict(first.params)
    for slot, v in enumerate(first.values):
        x, y = first.env[slot], second.env[slot]
        if v.kind == CONST and not _same(x, y):
            return (f"the constant {_slot_name(slot, v)}:{_type(v)} used at {v.where} had another "
                    "value in the second call")
        if v.kind == PARAM and params_a.get(slot) is not dict(second.params).get(slot) \
                and not _same(x, y):
            return (f"the tensor {_slot_name(slot, v)}:{_type(v)}, made inside the function and "
                    f"used at {v.where}, had another value in the second call")
    return None


def _same(a: Any, b: Any) -> bool:
    if a is b:
        return True
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return (isinstance(a, np.ndarray) and isinstance(b, np.ndarray) and a.shape == b.shape
                and a.dtype == b.dtype and np.array_equal(a, b, equal_nan=a.dtype.kind in "fc"))
    if isinstance(a, (tuple, list)) and isinstance(b, (tuple, list)):
        return type(a) is type(b) and len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if hasattr(a, "data") and hasattr(b, "data") and type(a) is type(b) and \
            isinstance(a.data, np.ndarray):
        return _same(a.data, b.data)   # Tensors
    try:
        return bool(a == b) and type(a) is type(b)
    except (TypeError, ValueError):   # objects whose == is not a truth value
        return False


def _last_uses(program: Program) -> Dict[int, int]:
    last: Dict[int, int] = {}
    for n, step in enumerate(program.steps):
        for i in step.ins:
            last[i] = n
    for s in _template_slots(program.result):
        last[s] = len(program.steps)
    return last


def _template_slots(template: Any) -> List[int]:
    kind = template[0]
    if kind in ("tensor", "array", "object"):
        return [template[1]]
    if kind in ("tuple", "list"):
        return [s for t in template[1] for s in _template_slots(t)]
    if kind == "dict":
        return [s for t in template[1].values() for s in _template_slots(t)]
    return []


def _template_text(template: Any, names: List[str]) -> str:
    kind = template[0]
    if kind in ("tensor", "array", "object"):
        return names[template[1]]
    if kind in ("tuple", "list"):
        inner = ", ".join(_template_text(t, names) for t in template[1])
        return f"({inner})" if kind == "tuple" else f"[{inner}]"
    if kind == "dict":
        return "{" + ", ".join(f"{k!r}: {_template_text(t, names)}" for k, t in template[1].items()) + "}"
    return repr(template[1])


def _slot_name(i: int, v: Value) -> str:
    if v.name:
        return v.name
    return {INPUT: "x", PARAM: "p", CONST: "k", VALUE: "v", OBJECT: "o"}[v.kind] + str(i)


def _type(v: Value) -> str:
    if v.shape is None:
        return v.kind
    short = {"float32": "f32", "float64": "f64", "int64": "i64", "int32": "i32", "bool": "bool"}
    dtype = str(np.dtype(v.dtype))
    return f"{short.get(dtype, dtype)}[{','.join(str(n) for n in v.shape)}]"


def _bytes(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} B"
