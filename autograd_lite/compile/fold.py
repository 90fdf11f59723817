"""Folding: an optimizer's update of a parameter joins the kernel that computes its gradient.

In a training step the reverse sweep ends with a pass over each weight matrix that sums its
gradient (the product's `x^T delta` and the L2 term `lam * W`), and the optimizer's step then
reads the weights and the gradients again to write `W - lr * grad`. Where the optimizer
declares its update as one element's expression (`p - lr * g` for plain SGD: its
`folded_update()`), the update becomes a step of the program right after the gradient's last
step, so fusion (fuse.py) makes both one kernel that writes the gradient and, in place, the new
weights: one pass over memory instead of two. A bias whose gradient is a sum over rows is
updated in a loop after that kernel's pass; one whose gradient comes from another kind of step
(a fused layer's joint rule) in a loop after the pass of the next weight's kernel. The
optimizer's own step then updates only the other parameters (and counts every parameter's
version, as its step does).

A parameter's update is folded only where a replay gives the values an eager step gives:
- its gradient is cleared earlier in the program (the optimizer's `zero_grad` or `p.grad =
  None`) and gets exactly one contribution after that (so `.grad` is that one value when the
  step reads it), from an elementwise step of the parameter's shape and dtype;
- the parameter's array owns its memory and no value of the program shares it (a view such as
  `W.T`, another Parameter on its array: the kernel writes the parameter while other elements
  are read); a replay checks that it still owns it (an array made a view of another
  parameter's after the trace traces again);
- nothing after that step and before the optimizer's step reads the parameter or writes the
  gradient, and no effect other than a random draw or clearing another gradient runs before
  the optimizer's step (the learning rate, read at the replay's start, is the step's);
- the settings the declaration depends on (momentum, weight decay) are guarded from the trace
  on (capture.py): a call where one has changed traces again. The learning rate is read at
  every replay (schedules).
"""
from __future__ import annotations

import dataclasses
import operator
from typing import Any, Dict, List, Optional

import numpy as np

from .program import OBJECT, PURE_KINDS, VALUE, Program, Step, Value

__all__ = ["fold_updates", "ENABLED"]

ENABLED = True   # False: the optimizer's step updates every parameter itself


def fold_updates(program: Program) -> None:
    """Insert the folded updates into `program.steps` (in place, before fusion) and make each
    optimizer step that has some update only the others."""
    from . import fuse
    from .capture import _clear_grad
    from .fuse import _element
    if not (ENABLED and fuse.ENABLED):
        return
    done: set = set()
    while True:
        found = [n for n, step in enumerate(program.steps) if step.fold and id(step) not in done]
        if not found:
            return
        s_index = found[0]
        steps = program.steps
        step = steps[s_index]
        done.add(id(step))
        declaration: Dict[str, Any] = step.fold
        if any(other.kind == "effect" and not other.draw and other.fn is not _clear_grad
               and other.fn != declaration["zero_grad"] for other in steps[:s_index]):
            continue   # an effect before the step might change what the update reads
        elements = [_element(n, s, program.env) for n, s in enumerate(steps[:s_index])]
        updates = []
        for slot, leaf in program.params:
            if any(leaf is p for p in declaration["params"]):
                found = _foldable(program, elements, slot, leaf, declaration)
                if found is not None:
                    updates.append((found, slot, leaf))
        # each update goes right after the step that completes its gradient; a vector's whose
        # gradient comes from another kind of step, after the next update of a parameter whose
        # gradient's last step is elementwise (it runs as a loop after that kernel's pass)
        anchors = sorted(after for (after, _, how), _, _ in updates if how == "elementwise")
        placed = []
        for (after, g, how), slot, leaf in sorted(updates, key=lambda u: u[0][2] == "other"):
            if how == "other":
                after = next((a for a in anchors if a > after), None)
            if after is not None:
                placed.append((after, g, slot, leaf))
        if not placed:
            continue
        optimizer = declaration["optimizer"]
        lr = _new_slot(program, Value(VALUE, None, None, "lr"), float(optimizer.lr))
        owner = _new_slot(program, Value(OBJECT, name=type(optimizer).__name__.lower()), optimizer)
        label = f"{type(optimizer).__name__}.update"
        inserted: Dict[int, List[Step]] = {}
        for after, g, slot, leaf in placed:
            inserted.setdefault(after, []).append(
                Step("update", label, _update(declaration["apply"]), (slot, g, lr), slot, kw={},
                     prim=declaration["element"]))
        folded = [(slot, leaf) for _, _, slot, leaf in placed]
        new: List[Step] = [Step("read", "getattr[lr]", operator.attrgetter("lr"), (owner,), lr)]
        for n, old in enumerate(steps):
            if n == s_index:   # the optimizer's step, of the other parameters
                old = dataclasses.replace(old, fn=declaration["rest"]([leaf for _, leaf in folded]),
                                          label=old.label + " (the rest)")
                done.add(id(old))
            new.append(old)
            new.extend(inserted.get(n, ()))
        program.steps = new
        program.written += tuple(slot for slot, _ in folded)


def _foldable(program: Program, elements: List[Any], slot: int, leaf: Any,
              declaration: Dict[str, Any]) -> Optional[tuple]:
    """(index of the step that completes the gradient, the gradient's slot, what that step is:
    "elementwise", "rows" (a sum over rows) or "other"), or None where the update of `leaf`
    (read from `slot`) by the optimizer's step at index len(elements) cannot be folded (see the
    module docstring); `elements` are the earlier steps as fuse._element gives them. A
    vector's gradient may come from any step (a fused layer's joint rule): its update then
    follows another parameter's update, in a loop after that kernel's pass."""
    from .capture import _clear_grad
    steps, env, s_index = program.steps, program.env, len(elements)
    objects = {n for n, v in enumerate(program.values) if v.kind == OBJECT and env[n] is leaf}
    cleared = -1
    for n in range(s_index):
        step = steps[n]
        if step.fn == declaration["zero_grad"] or \
                (step.fn is _clear_grad and step.ins[0] in objects):
            cleared = n
    accumulations = [n for n in range(cleared + 1, s_index)
                     if steps[n].kind == "grad" and steps[n].ins[0] in objects]
    if cleared < 0 or len(accumulations) != 1:
        return None
    a = accumulations[0]
    g = steps[a].ins[1]
    writers = [n for n in range(cleared + 1, a) if g in steps[n].outputs()]
    if not writers:
        return None
    w = writers[-1]
    e = elements[w]
    value, data = env[g], leaf.data
    if data.base is not None or any(s != slot and isinstance(x, np.ndarray) and
                                    np.may_share_memory(x, data) for s, x in enumerate(env)):
        return None   # a view of the parameter (W.T, another Parameter on its array) is read
    if (e is None and data.ndim != 1) or (e is not None and e.reduce == "all") \
            or type(value) is not np.ndarray or type(data) is not np.ndarray \
            or value.shape != data.shape or value.dtype != data.dtype \
            or not data.flags.writeable or data.dtype.char not in "fd" or data.ndim == 0:
        return None
    for n in range(w + 1, s_index):
        step, element = steps[n], elements[n]   # an elementwise step reads what its element uses
        reads = set(element.names.values()) if element is not None else set(step.ins)
        if slot in reads or slot in step.outputs() or g in step.outputs():
            return None
        if step.kind in PURE_KINDS or step.kind == "grad" or step.draw:
            continue
        if step.fn is _clear_grad and not objects.intersection(step.ins):
            continue
        return None
    return w, g, "other" if e is None else "rows" if e.reduce else "elementwise"


def _update(apply: Any) -> Any:
    """The update as a step of its own (where fusion does not take it): the optimizer's own
    per-parameter update, in place; the step's value is the parameter's array."""
    def run(p: np.ndarray, g: np.ndarray, lr: float) -> np.ndarray:
        apply(p, g, lr)
        return p
    return run


def _new_slot(program: Program, value: Value, content: Any) -> int:
    program.values.append(value)
    program.env.append(content)
    return len(program.values) - 1
