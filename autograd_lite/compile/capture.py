"""Tracing: run the function once, eagerly, and record every call that touches a traced value.

The tracer watches every primitive application (`engine.apply_hooks`), records the reverse
sweep that `loss.backward()` starts (one step per derivative rule, sum and accumulation, in the
same order and with the same in-place choices as `engine._run`), the effects marked
`engine.replayed` (optimizer updates, `zero_grad`, dropout draws, in-place operators) and the
comparisons that give plain boolean arrays. A Python read of a traced value (`float(t)`,
`t.item()`, `bool(t)`, `np.asarray(t)`) would freeze one call's value into the program, so it
raises `TracingError` naming the user's line.
"""
from __future__ import annotations

import os
import sys
import threading
import weakref
from heapq import heapify, heappop, heappush
from typing import Any, Callable, Dict, List, Optional, Tuple

import numpy as np

from .. import engine
from ..batching import Batched
from ..tensor import Tensor, tracers
from .program import (CONST, INPUT, OBJECT, PARAM, VALUE, Program, Step, Value, _slot_name,
                      _type)
from .replay import holds

_PACKAGE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class TracingError(RuntimeError):
    """Raised while `ag.compile` traces a function that reads a traced value from Python, or
    that does something the program could not replay."""


class Tracer:
    """Records one eager run of a compiled function as a `Program`."""

    def __init__(self, name: str, fallback: bool) -> None:
        self.name = name
        self.fallback = fallback
        self.refused: Optional[str] = None   # with fallback: why this signature runs eagerly
        self.values: List[Value] = []
        self.env: List[Any] = []
        self.steps: List[Step] = []
        self.tensor_slot: Dict[int, int] = {}   # id(Tensor) -> slot of its array
        self.array_slot: Dict[int, int] = {}    # id(ndarray) -> slot
        self.object_slot: Dict[int, int] = {}   # id(leaf or argument Tensor) -> slot of the object
        self.const_slot: Dict[int, int] = {}    # id(constant) -> slot
        self.keep: List[Any] = []               # everything whose id is a key above stays alive
        self.inputs: List[Tuple[int, int]] = []
        self.params: List[Tuple[int, Tensor]] = []
        self.guards: List[Tuple[Any, str, Any]] = []
        self.depth = 0                          # > 0 inside a replayed effect: record nothing
        # the hooks are global (tensor.tracers): calls from other threads are not this trace's
        self.thread = threading.get_ident()
        # (slot, leaf, its array, version, a copy) when first read: a leaf whose values change
        # while its version does not was written outside the operations a replay repeats
        self.snapshots: List[Tuple[int, Tensor, np.ndarray, int, np.ndarray]] = []

    # ---- the run -------------------------------------------------------------------------
    def run(self, fn: Callable, args: tuple, kwargs: dict, flat: List[Any]) -> Tuple[Any, Program]:
        """Call fn(*args, **kwargs) eagerly under this tracer; return its result and the program."""
        if engine.jvp_traces:
            raise TracingError(f"ag.compile: {self.name} was called inside forward mode (ag.jvp); "
                               "compile the function that jvp differentiates instead, or call it uncompiled")
        for x in flat:
            self._input(x)
        engine.apply_hooks.append(self.on_apply)
        tracers.append(self)
        returned = _ReturnLine(fn)
        try:
            with returned:
                result = fn(*args, **kwargs)
        finally:
            tracers.remove(self)
            engine.apply_hooks.remove(self.on_apply)
        template = self._template(result)
        self._check_constants(flat)
        self._check_leaves()
        program = Program(
            name=self.name, values=self.values, steps=self.steps, env=self.env, inputs=self.inputs,
            params=self.params, result=template, guards=self.guards,
            param_facts=[(t.data.shape, t.data.dtype, t.requires_grad) for _, t in self.params],
            returned_at=returned.where)
        self.keep = []
        if not holds(program):
            self._refuse_changed_settings()
        return result, program

    def _refuse_changed_settings(self) -> None:
        """Refuse a program that does not fit the state the function left (`model.eval()` or a
        new layer inside it): a replay runs no Python, so it would not repeat the change, and
        the module would be left as before the call instead of as eager leaves it."""
        changed = [type(ref()).__name__ for ref, attribute, value in self.guards
                   if ref() is not None and value != settings(ref(), attribute)]
        what = (f"a setting (train()/eval(), dropout's p) or a layer or Parameter of "
                f"{changed[0]}" if changed else "the shape, dtype or requires_grad of a Parameter")
        message = (f"ag.compile: {self.name} changed {what} while it ran, which a replay (no Python "
                   "runs) would neither repeat nor leave as eager does; make that change outside "
                   "the compiled function, or pass fallback=True to run it eagerly")
        if not self.fallback:
            raise TracingError(message)
        self.refused = self.refused or message

    # ---- slots -----------------------------------------------------------------------------
    def _new(self, kind: str, value: Any, name: str = "") -> int:
        shape = getattr(value, "shape", None) if isinstance(value, np.ndarray) else None
        dtype = value.dtype if isinstance(value, np.ndarray) else None
        self.values.append(Value(kind, shape, dtype, name))
        self.env.append(value)
        return len(self.values) - 1

    def _input(self, x: Any) -> None:
        if isinstance(x, Tensor):
            data = self._new(INPUT, x.data)
            obj = self._new(OBJECT, x)
            self.values[obj].kind = INPUT
            self.tensor_slot[id(x)] = data
            self.array_slot[id(x.data)] = data
            self.object_slot[id(x)] = obj
            self.keep.append(x)
            self.inputs.append((data, obj))
        else:
            slot = self._new(INPUT, x)
            self.array_slot[id(x)] = slot
            self.keep.append(x)
            self.inputs.append((slot, -1))

    def _value(self, array: Any, tensor: Optional[Tensor] = None) -> int:
        slot = self._new(VALUE, array)
        self.array_slot[id(array)] = slot
        self.keep.append(array)
        if tensor is not None:
            self.tensor_slot[id(tensor)] = slot
            self.keep.append(tensor)
        return slot

    def _leaf(self, t: Tensor) -> int:
        """The slot of a Tensor met for the first time: an argument's array, or a leaf read by
        reference at every replay (a parameter, a tensor made outside the function)."""
        slot = self.array_slot.get(id(t.data))
        if slot is None:
            slot = self._new(PARAM, t.data, t.name or "")
            self.values[slot].where = _where()
            self.params.append((slot, t))
            self.snapshots.append((slot, t, t.data, t._version, t.data.copy()))
            self.array_slot[id(t.data)] = slot
            self.keep.append(t.data)
        self.tensor_slot[id(t)] = slot
        self.keep.append(t)
        return slot

    def _object(self, t: Tensor) -> int:
        """The slot holding the Tensor object itself (an argument's, or a leaf by reference)."""
        slot = self.object_slot.get(id(t))
        if slot is None:
            slot = self._new(OBJECT, t, t.name or "")
            self.object_slot[id(t)] = slot
            self.keep.append(t)
        return slot

    def slot(self, x: Any) -> int:
        """The slot of an operand: a traced Tensor or array, else a constant."""
        if isinstance(x, Tensor):
            slot = self.tensor_slot.get(id(x))
            return self._leaf(x) if slot is None else slot
        if isinstance(x, np.ndarray):
            slot = self.array_slot.get(id(x))
            if slot is None and x.base is not None and _same_memory(x, x.base):
                slot = self.array_slot.get(id(x.base))   # np.asarray(mask): a plain view of it
            if slot is not None:
                return slot
        slot = self.const_slot.get(id(x))
        if slot is None:
            slot = self._new(CONST, x)
            if isinstance(x, np.ndarray):
                self.values[slot].where = _where()
            self.const_slot[id(x)] = slot
            self.keep.append(x)
        return slot

    def traced(self, x: Any) -> bool:
        if isinstance(x, Tensor):
            return (id(x) in self.tensor_slot or id(x.data) in self.array_slot
                    or (x.requires_grad and x._op is None))
        return isinstance(x, np.ndarray) and id(x) in self.array_slot

    def record(self, kind: str, label: str, fn: Callable, ins: Tuple[int, ...], out: Any,
               kw: Optional[dict] = None) -> Any:
        """Add a step and run it now on the traced values (so tracing computes what a replay
        computes); returns its result."""
        step = Step(kind, label, fn, tuple(ins), out, kw or {})
        self.steps.append(step)
        self.depth += 1
        try:
            return fn(*[self.env[i] for i in ins], **step.kw)
        finally:
            self.depth -= 1

    def _store(self, slot: int, value: Any) -> None:
        self.env[slot] = value

    # ---- hooks: the forward, reads, comparisons ------------------------------------------
    def on_apply(self, prim: Any, args: tuple, params: dict, result: Tensor) -> None:
        if self.depth or threading.get_ident() != self.thread:
            return
        if isinstance(result, Batched):   # vmap's per-example node (its rule's ops come too)
            self.unsupported(
                "ag.vmap inside a compiled function", "a replay would run its per-example "
                "graph nodes on the whole batch with one example's parameters (wrong values, "
                "or a crash in the backward), so call ag.vmap outside ag.compile, pass "
                "fallback=True")
        ins = tuple(self.slot(a) for a in args)
        out = self._value(result.data, result)
        self.steps.append(Step("primitive", prim.name + _params_text(params), _forward(prim), ins,
                               out, params, prim=prim))
        self.env[out] = result.data

    def read(self, t: Optional[Tensor], what: str, shape: tuple = ()) -> None:
        if t is not None and (self.depth or not self.traced(t)):
            return
        if threading.get_ident() != self.thread:
            return
        where, line = _user_line()
        shape = t.shape if t is not None else shape
        kind = "tensor" if t is not None else "mask (a comparison of traced values)"
        message = (f"ag.compile: {what} reads the value of a traced {kind} (shape {shape}) at "
                   f"{where}: `{line}`; a compiled function is traced once and replayed, so a "
                   "Python value or decision taken from one call's numbers would be frozen into "
                   "every later call. Move the read outside the compiled function (return the "
                   "tensor and read it there), use ag.where(condition, a, b) for a choice per "
                   "element, or pass ag.compile(fn, fallback=True) to run such a function eagerly")
        if self.fallback:
            self.refused = self.refused or message
            return
        raise TracingError(message)

    def unsupported(self, what: str, fix: str) -> None:
        if self.depth or threading.get_ident() != self.thread:
            return
        where, line = _user_line()
        message = (f"ag.compile: {what} at {where} (`{line}`) cannot be captured; {fix}, or call "
                   "the function uncompiled")
        if self.fallback:
            self.refused = self.refused or message
            return
        raise TracingError(message)

    def predicate(self, relation: Callable, operands: tuple) -> Any:
        """A comparison (or another NumPy ufunc on a mask made by one) of traced values:
        recorded, and handed back as a `TracedArray`, which refuses `if mask:`."""
        arrays = [x.data if isinstance(x, Tensor) else x for x in operands]
        arrays = [a.view(np.ndarray) if isinstance(a, TracedArray) else a for a in arrays]
        if self.depth or threading.get_ident() != self.thread or \
                not any(self.traced(x) for x in operands):
            return relation(*arrays)
        ins = tuple(self.slot(x) for x in operands)
        out = relation(*arrays)
        if not isinstance(out, np.ndarray):
            out = np.asarray(out)
            relation = _as_array(relation)
        plain, out = out, out.view(TracedArray)
        slot = self._value(out)
        self.array_slot[id(plain)] = slot   # np.asarray(mask) is a view of `plain`
        self.keep.append(plain)
        name = getattr(relation, "__name__", "compare")
        self.steps.append(Step("compare", name, relation, ins, slot))
        self.env[slot] = out
        return out

    def read_array(self, a: np.ndarray, what: str) -> None:
        if not self.depth:
            self.read(None, what, a.shape)

    def guard(self, obj: Any, attribute: Optional[str]) -> None:
        if threading.get_ident() != self.thread:
            return
        if not any(o() is obj and a == attribute for o, a, _ in self.guards):
            self.guards.append((_weak(obj), attribute, settings(obj, attribute)))

    # ---- effects replayed by calling them again ------------------------------------------
    def set_grad(self, t: Tensor, value: Optional[Tensor]) -> None:
        if self.depth or threading.get_ident() != self.thread:
            t._grad = value
            return
        spec = self._argument(t) if value is None else ("", None)
        if spec[0] == "object":   # `t.grad = None` (zero_grad): a plain call at replay
            self.steps.append(Step("effect", "_assign_grad", _clear_grad, (spec[1],), None,
                                   fixed=(None,)))
            t._grad = None
        else:
            self.replayed_call(_assign_grad, (t, value), {})

    def replayed_call(self, fn: Callable, args: tuple, kwargs: dict) -> Any:
        if self.depth or threading.get_ident() != self.thread:
            return fn(*args, **kwargs)
        specs = [self._argument(a) for a in args]
        kwspecs = {k: self._argument(v) for k, v in kwargs.items()}
        self.depth += 1
        try:
            result = fn(*args, **kwargs)
        finally:
            self.depth -= 1
        ins = tuple(s for kind, s in specs + list(kwspecs.values()) if kind != "value")
        call = _replay_call(fn, specs, kwspecs, engine.is_grad_enabled())
        prepare = getattr(fn, "prepare_replay", None)
        fold = None
        if prepare is not None and not ins and not kwargs and result is None:
            # an effect of objects only (an optimizer's step) may offer a cheaper function
            # to replay, which reads the objects' settings and state at each call itself,
            # and declare its update of each parameter for folding (fold.py)
            call = prepare(*args) or call
            declare = getattr(fn, "fold_replay", None)
            fold = declare(*args) if declare is not None else None
            for name in fold["settings"] if fold else ():   # what the declaration assumed
                self.guard(fold["optimizer"], name)
        out = None
        if isinstance(result, Tensor):
            same = [i for i, a in enumerate(args) if a is result]
            if same and specs[same[0]][0] == "wrap":   # an in-place operator on a traced value
                out = specs[same[0]][1]
                self.tensor_slot[id(result)] = out
                call = _data_of(call)
            elif id(result) not in self.object_slot:
                out = self._value(result.data, result)
                call = _data_of(call)
        elif isinstance(result, np.ndarray):
            out = self._value(result)
        name = getattr(fn, "__qualname__", getattr(fn, "__name__", "effect"))
        fixed = tuple(a for kind, a in specs + list(kwspecs.values()) if kind == "value")
        self.steps.append(Step("effect", name, call, ins, out, fixed=fixed,
                               draw=getattr(fn, "draw", False), fold=fold))
        if out is not None:
            self.env[out] = result.data if isinstance(result, Tensor) else result
        return result

    def _argument(self, a: Any) -> Tuple[str, Any]:
        """How an effect's argument is found at replay: ('object', slot) the Tensor object
        itself (an argument or a leaf), ('wrap', slot) a traced value as a new Tensor,
        ('array', slot) a traced array, ('value', a) anything else, by reference."""
        if isinstance(a, Tensor):
            if id(a) in self.object_slot:
                return "object", self.object_slot[id(a)]
            slot = self.tensor_slot.get(id(a))
            if slot is not None and self.values[slot].kind == VALUE:
                return "wrap", slot
            if slot is None and a._op is not None:
                return "value", a
            return "object", self._object(a)
        if isinstance(a, np.ndarray) and id(a) in self.array_slot:
            return "array", self.array_slot[id(a)]
        return "value", a

    # ---- the reverse sweep ---------------------------------------------------------------
    def backward(self, root: Tensor, gradient: Any, retain_graph: bool, create_graph: bool) -> None:
        """engine.backward, recorded: mirrors engine._run (no targets, arrays, no hooks)."""
        if threading.get_ident() != self.thread:
            return _eager_backward(root, gradient, retain_graph, create_graph)
        if self.depth:   # an effect's own backward runs eagerly, unrecorded
            return _eager_backward(root, gradient, retain_graph, create_graph)
        if create_graph or engine.backward_hooks:
            self.unsupported("backward(create_graph=True)" if create_graph else
                             "backward() under anomaly mode or explain", "differentiate once")
            self.depth += 1
            try:
                return _eager_backward(root, gradient, retain_graph, create_graph)
            finally:
                self.depth -= 1
        if not root.requires_grad:
            _no_graph_error()
        if gradient is None:
            seed = self.slot(engine._seed(root, None, False, "backward"))
        elif isinstance(gradient, Tensor) or (isinstance(gradient, np.ndarray)
                                              and id(gradient) in self.array_slot):
            seed = self.slot(gradient)
            engine._seed(root, gradient, False, "backward")   # its checks
        else:
            seed = self.slot(engine._seed(root, gradient, False, "backward"))
        env = self.env
        owned: set = set()
        grads: Dict[int, int] = {id(root): seed}
        ends: Dict[int, Tensor] = {}
        heap: List[Tuple[int, int, Tensor]] = []
        if root._op is None:
            ends[id(root)] = root
        else:
            heap.append((-root._seq, id(root), root))
        heapify(heap)
        changed = engine._last_change
        deferred: Dict[int, list] = {}
        swept: List[Tensor] = []
        retained: List[Tuple[Tensor, int]] = []
        while heap:
            node = heappop(heap)[2]
            inputs = node._inputs
            if inputs is None:
                raise engine._released_error(node)
            if node._seq < changed:
                engine._check_unchanged(node)
            swept.append(node)
            g = grads.pop(id(node))
            owned.discard(g)
            if node._retain:
                retained.append((node, g))
            prim, wanted, params = node._op, node._needs, node._params
            ans = self.slot(node)
            values = tuple(self.slot(x) for x in node._arrays)
            if prim.vjp_into is not None:
                wanted = self._defer(node, g, wanted, deferred, ends)
                cotangents = self._pull_back(prim, g, ans, values, wanted, params)
            elif prim.vjp_joint is not None:
                outs = tuple(self._new(VALUE, None) if w else -1 for w in wanted)
                result = self.record("rule", f"vjp_joint[{prim.name}]", _joint(prim, wanted),
                                     (g, ans) + values, outs, params)
                self.steps[-1].prim = prim   # the buffer plan: prim.into["joint"], if declared
                cotangents = []
                for s, c in zip(outs, result):
                    if s >= 0:
                        self._fill(s, c)
                    cotangents.append(s)
            else:
                cotangents = self._pull_back(prim, g, ans, values, wanted, params)
            fresh = prim.fresh_cotangents
            for i, x in enumerate(inputs):
                if not wanted[i]:
                    continue
                c = cotangents[i]
                shape = x.data.shape
                if env[c].shape != shape:
                    out = self._new(VALUE, None)
                    self._fill(out, self.record("sum", f"unbroadcast{shape}", _unbroadcast(shape),
                                                (c,), out))
                    c, new = out, True
                else:
                    new = fresh
                key = id(x)
                prev = grads.get(key)
                if prev is None:
                    grads[key] = c
                    if new:
                        owned.add(c)
                    if x._op is None:
                        ends[key] = x
                    else:
                        heappush(heap, (-x._seq, id(x), x))
                else:
                    grads[key] = self._sum_into(prev, c, owned)
        for key, pending in deferred.items():
            grads[key] = self._add_deferred(grads.get(key), pending, owned)
        for node, g in retained:
            self._accumulate(node, g, False)
        if not (retain_graph or create_graph):
            for node in swept:
                node._inputs = node._arrays = node._needs = node._params = node._versions = None
        for key, x in ends.items():
            self._accumulate(x, grads[key], grads[key] in owned)

    def _fill(self, slot: int, array: Any) -> None:
        """Give a step's result slot its array (shape and dtype for the printout)."""
        self.env[slot] = array
        if isinstance(array, (np.ndarray, np.generic)):
            self.values[slot].shape, self.values[slot].dtype = array.shape, array.dtype
        if isinstance(array, np.ndarray):
            self.array_slot.setdefault(id(array), slot)
            self.keep.append(array)

    def _pull_back(self, prim: Any, g: int, ans: int, values: tuple, wanted: tuple,
                   params: dict) -> List[Optional[int]]:
        out: List[Optional[int]] = []
        for i, want in enumerate(wanted):
            if not want:
                out.append(None)
                continue
            rule = engine.vjp_rule(prim, i)
            kw = dict(params, argnum=i) if prim.variadic else params
            slot = self._new(VALUE, None)
            self._fill(slot, self.record("rule", f"vjp[{prim.name}].{i}", rule, (g, ans) + values,
                                         slot, kw))
            self.steps[-1].prim, self.steps[-1].argnum = prim, i
            out.append(slot)
        return out

    def _defer(self, node: Tensor, g: int, wanted: tuple, deferred: Dict[int, list],
               ends: Dict[int, Tensor]) -> tuple:
        left = list(wanted)
        for i, x in enumerate(node._inputs):
            if wanted[i] and x._op is None:
                ends[id(x)] = x
                deferred.setdefault(id(x), []).append((node, g, i))
                left[i] = False
        return tuple(left)

    def _add_deferred(self, total: Optional[int], pending: list, owned: set) -> int:
        env = self.env
        for node, g, i in pending:
            prim, params = node._op, node._params
            ans = self.slot(node)
            values = tuple(self.slot(x) for x in node._arrays)
            x = env[values[i]]
            if (total is not None and type(env[total]) is np.ndarray and total in owned
                    and env[total].shape == x.shape and env[total].dtype == x.dtype):
                self.record("sum", f"vjp_into[{prim.name}].{i}", _into(prim, i),
                            (total, g, ans) + values, total, params)
                self.steps[-1].prim, self.steps[-1].argnum = prim, i   # fusion: prim.scalar["into"]
                continue
            wanted = tuple(j == i for j in range(len(values)))
            c = self._pull_back(prim, g, ans, values, wanted, params)[i]
            if env[c].shape != x.shape:
                out = self._new(VALUE, None)
                self._fill(out, self.record("sum", f"unbroadcast{x.shape}", _unbroadcast(x.shape),
                                            (c,), out))
                c = out
            if total is None:
                total = c
                if prim.fresh_cotangents:
                    owned.add(c)
            else:
                total = self._sum_into(total, c, owned)
        return total

    def _sum_into(self, total: int, c: int, owned: set) -> int:
        a, b = self.env[total], self.env[c]
        if (total in owned and type(a) is np.ndarray and type(b) is np.ndarray and a.shape == b.shape
                and (a.dtype == b.dtype or a.dtype == np.result_type(a, b))):
            self.record("sum", "add_into", _add_into, (total, c), total)
            return total
        owned.discard(total)
        out = self._new(VALUE, None)
        self._fill(out, self.record("sum", "add", _add, (total, c), out))
        if type(self.env[out]) is np.ndarray:
            owned.add(out)
        return out

    def _accumulate(self, leaf: Tensor, g: int, exclusive: bool) -> None:
        """leaf.grad += cotangent, as engine._accumulate_grad does, reading leaf.grad at replay."""
        obj = self.object_slot.get(id(leaf))
        if obj is None:
            obj = self._object(leaf)
        out = self._new(VALUE, None, (leaf.name or "") + ".grad" if leaf.name else "")
        self._fill(out, self.record("grad", "accumulate_grad", _accumulate(exclusive), (obj, g), out))
        self.tensor_slot[id(leaf.grad)] = out
        self.keep.append(leaf.grad)

    # ---- after the run ---------------------------------------------------------------------
    def _template(self, result: Any) -> Any:
        """How to rebuild the function's result from the slots at replay."""
        if isinstance(result, Tensor):
            if id(result) in self.object_slot:
                return ("object", self.object_slot[id(result)])
            slot = self.tensor_slot.get(id(result))
            if (slot is None and result.requires_grad and result._op is None) or \
                    (slot is not None and self.values[slot].kind == PARAM):
                return ("object", self._object(result))   # a leaf: the same object
            return ("value", result) if slot is None else ("tensor", slot)
        if isinstance(result, np.ndarray):
            slot = self.array_slot.get(id(result))
            return ("value", result) if slot is None else ("array", slot)
        if isinstance(result, tuple) and not hasattr(result, "_fields"):
            return ("tuple", [self._template(r) for r in result])
        if isinstance(result, list):
            return ("list", [self._template(r) for r in result])
        if isinstance(result, dict):
            return ("dict", {k: self._template(v) for k, v in result.items()})
        return ("value", result)

    def _check_leaves(self) -> None:
        """Refuse a leaf changed in place without its version counting up (`W.data -= ...`,
        NumPy on `p.grad.data`): no step of the program would repeat that change."""
        for slot, t, array, version, copy in self.snapshots:
            if t.data is array and t._version == version and not np.array_equal(
                    array, copy, equal_nan=array.dtype.kind in "fc"):
                v = self.values[slot]
                message = (f"ag.compile: the tensor {_slot_name(slot, v)}:{_type(v)} (first used at "
                           f"{v.where}) was changed in place outside the recorded operations (through "
                           "`.data` or NumPy); a replay would not repeat that change. Update it with "
                           "an optimizer, or `with ag.no_grad(): W -= lr * W.grad`, or mark your own "
                           "update function with autograd_lite.engine.replayed")
                if self.fallback:
                    self.refused = self.refused or message
                    return
                raise TracingError(message)
        self.snapshots = []

    def _check_constants(self, flat: List[Any]) -> None:
        """Refuse a constant that is an argument converted outside the recorded operations
        (np.asarray(x, dtype=...), x.copy()): it would be frozen at this call's values."""
        args = [x.data if isinstance(x, Tensor) else x for x in flat]
        for slot, v in enumerate(self.values):
            c = self.env[slot]
            if v.kind not in (CONST, PARAM) or not isinstance(c, np.ndarray) or c.size < 2:
                continue
            if c.dtype.kind not in "biuf" or not np.any(c.reshape(-1) != c.reshape(-1)[0]):
                continue   # a constant of one value everywhere is no argument's copy
            for i, a in enumerate(args):
                if a.shape == c.shape and a is not c and a.dtype.kind in "biuf":
                    with np.errstate(all="ignore"):
                        if np.array_equal(a.astype(c.dtype), c):
                            where = f"argument {i} (shape {a.shape}, {a.dtype})"
                            message = (
                                f"ag.compile: {where} reached an operation as a copy made outside "
                                f"the recorded operations ({c.dtype}); the copy would be frozen at "
                                "this call's values. Pass the argument in the dtype the function "
                                "uses, or convert it inside with ag.astype / t.astype")
                            if self.fallback:
                                self.refused = self.refused or message
                                return
                            raise TracingError(message)


def _weak(obj: Any) -> Callable[[], Any]:
    """A weak reference to obj where it allows one (a program must not keep a model alive)."""
    try:
        return weakref.ref(obj)
    except TypeError:
        return lambda: obj


def settings(obj: Any, attribute: Optional[str]) -> Any:
    """What a guard compares: `obj.<attribute>`, or with None every plain setting of obj (its
    numbers, strings, booleans and None, e.g. a module's `training` and dropout's `p`) and,
    by identity, the Tensors and modules (objects with `parameters()`) it holds, alone or in a
    list or tuple: the program reads the traced ones, so a layer or a Parameter replaced by
    another object must trace again rather than replay with the old one."""
    if attribute is not None:
        v = getattr(obj, attribute)
        return Same(v) if _held_objects(v) else v
    found = []
    for k, v in vars(obj).items():
        if v is None or isinstance(v, (bool, int, float, str)):
            found.append((k, v))
        elif _held_objects(v):
            found.append((k, Same(v)))
    return found


def _held_objects(v: Any) -> bool:
    """Whether v is a Tensor or a module, or a non-empty list or tuple of them: what a guard
    compares by identity."""
    return _held(v) or (isinstance(v, (list, tuple)) and bool(v) and all(_held(x) for x in v))


def _held(x: Any) -> bool:
    return isinstance(x, Tensor) or callable(getattr(type(x), "parameters", None))


class Same:
    """A guard's setting met by the same object (or a list/tuple of the same objects, in
    order), never by an equal one: `Same(v) != found` is False only for those."""
    __slots__ = ("many", "objects")

    def __init__(self, value: Any) -> None:
        self.many = isinstance(value, (list, tuple))
        self.objects = tuple(value) if self.many else value

    def __ne__(self, other: Any) -> bool:
        if isinstance(other, Same):   # the settings now, as settings() reads them
            other = other.objects
        if not self.many:
            return other is not self.objects
        return not isinstance(other, (list, tuple)) or len(other) != len(self.objects) or \
            any(a is not b for a, b in zip(other, self.objects))

    def __eq__(self, other: Any) -> bool:
        return not self.__ne__(other)

    __hash__ = None  # type: ignore[assignment]


class TracedArray(np.ndarray):
    """A comparison's result while a trace runs: a NumPy array whose truth value and Python
    conversions are refused (`if (t > 0).any():` would freeze one call's branch) and whose
    ufuncs are recorded (`(a > 0) & (b < 1)`). Outside a trace it behaves as a plain array."""

    def __bool__(self) -> bool:
        if tracers:
            tracers[-1].read_array(self, "bool(mask)")
        return bool(self.view(np.ndarray))

    def __float__(self) -> float:
        if tracers:
            tracers[-1].read_array(self, "float(mask)")
        return float(self.view(np.ndarray))

    def __int__(self) -> int:
        if tracers:
            tracers[-1].read_array(self, "int(mask)")
        return int(self.view(np.ndarray))

    def item(self, *args: Any) -> Any:
        if tracers:
            tracers[-1].read_array(self, "mask.item()")
        return self.view(np.ndarray).item(*args)

    def tolist(self) -> Any:
        if tracers:
            tracers[-1].read_array(self, "mask.tolist()")
        return self.view(np.ndarray).tolist()

    def __array_ufunc__(self, ufunc: np.ufunc, method: str, *inputs: Any, **kwargs: Any) -> Any:
        if tracers and method in ("__call__", "reduce") and "out" not in kwargs:
            if method == "__call__" and not kwargs:
                return tracers[-1].predicate(ufunc, inputs)
            return tracers[-1].predicate(_ufunc_method(ufunc, method, kwargs), inputs)
        plain = [x.view(np.ndarray) if isinstance(x, TracedArray) else x for x in inputs]
        return getattr(ufunc, method)(*plain, **kwargs)


# ---------------------------------------------------------------- step functions
def _ufunc_method(ufunc: np.ufunc, method: str, kwargs: dict) -> Callable:
    call = getattr(ufunc, method)

    def run(*arrays: Any) -> Any:
        return call(*arrays, **kwargs)
    run.__name__ = f"{ufunc.__name__}.{method}"
    return run


def _same_memory(view: np.ndarray, base: np.ndarray) -> bool:
    return (view.shape == base.shape and view.dtype == base.dtype and view.strides == base.strides
            and view.__array_interface__["data"][0] == base.__array_interface__["data"][0])


def _forward(prim: Any) -> Callable:
    forward = prim.forward

    def run(*arrays: Any, **params: Any) -> np.ndarray:
        out = forward(*arrays, **params)
        return out if type(out) is np.ndarray else np.asarray(out)
    run.__name__ = prim.name
    run.forward = forward   # the buffer plan calls a ufunc forward with out=
    run.inline = "forward"   # replay writes the call of `forward` and the asarray as lines
    return run


def _as_array(fn: Callable) -> Callable:
    def run(*a: Any) -> np.ndarray:
        return np.asarray(fn(*a))
    return run


def _joint(prim: Any, wanted: tuple) -> Callable:
    joint = prim.vjp_joint

    def rule(g: Any, ans: Any, *values: Any, **params: Any) -> tuple:
        return joint(g, ans, *values, wanted=wanted, **params)
    rule.wanted = wanted
    return rule


def _into(prim: Any, i: int) -> Callable:
    into = prim.vjp_into

    def rule(total: np.ndarray, g: Any, ans: Any, *values: Any, **params: Any) -> np.ndarray:
        into(total, g, ans, *values, argnum=i, **params)
        return total
    return rule


def _unbroadcast(shape: tuple) -> Callable:
    def run(c: Any) -> Any:
        return engine.unbroadcast(c, shape)
    run.shape = shape   # fusion: a sum over the leading axis
    return run


def _add_into(total: np.ndarray, c: np.ndarray) -> np.ndarray:
    np.add(total, c, out=total)
    return total


def _add(total: Any, c: Any) -> Any:
    return total + c


def _accumulate(exclusive: bool) -> Callable:
    """leaf.grad += g as engine._accumulate_grad computes it; where leaf.grad already holds an
    array that nothing else can see (`_sole_grad_array`), the sum is written into that array
    (the same np.add, so the same bits) and wrapped in a new Tensor, as eager's new array is."""
    wrap, add, copy, ndarray = Tensor._wrap, np.add, np.array, np.ndarray

    def run(leaf: Tensor, g: Any) -> np.ndarray:
        if leaf._grad is None and type(g) is ndarray and g.dtype == leaf.data.dtype:
            # engine._accumulate_grad's first gradient, without its general checks: g itself
            # when nothing else refers to it, else a copy
            data = g if exclusive and g.flags.writeable else copy(g)
            leaf._grad = wrap(data)
            return data
        data = _sole_grad_array(leaf)
        if data is not None and type(g) is np.ndarray and g.shape == data.shape and \
                g.dtype == data.dtype == leaf.data.dtype:
            leaf._grad = wrap(add(data, g, out=data))
            return data
        engine._accumulate_grad(leaf, g, False, exclusive)
        return leaf.grad.data
    run.inline, run.exclusive = "accumulate", exclusive   # replay writes the first branch as lines
    return run


def _grad_references(leaf: Tensor) -> Tuple[int, int]:
    old = leaf._grad
    data = old.data
    return sys.getrefcount(old), sys.getrefcount(data)


def _sole_grad_array(leaf: Tensor) -> Optional[np.ndarray]:
    """leaf.grad's array when writing into it cannot be seen: a plain writeable ndarray that
    owns its memory, referenced only by the grad Tensor, which only the leaf references (no
    other name, view, exported buffer or weak reference), so eager's new array and this one
    differ only in their address. None otherwise."""
    old = leaf._grad
    if old is None:
        return None
    data = old.data
    if type(data) is not np.ndarray or data.base is not None or not data.flags.writeable or \
            sys.getrefcount(old) != _SOLE[0] or sys.getrefcount(data) != _SOLE[1] or \
            weakref.getweakrefcount(old) or weakref.getweakrefcount(data):
        return None
    return data


def _calibrate() -> Tuple[int, int]:
    """The reference counts `_sole_grad_array` sees for a grad that only its leaf holds (the
    same locals as there; measured, since they depend on the Python version)."""
    leaf = Tensor._wrap(np.zeros(1))
    leaf._grad = Tensor._wrap(np.zeros(1))
    return _grad_references(leaf)


_SOLE = _calibrate()


def _assign_grad(t: Tensor, value: Optional[Tensor]) -> None:
    t._grad = value


def _clear_grad(t: Tensor) -> None:
    t._grad = None


_clear_grad.inline = "clear_grad"   # replay writes `t._grad = None` as a line


def _data_of(call: Callable) -> Callable:
    def run(*a: Any) -> Any:
        return call(*a).data
    return run


def _replay_call(fn: Callable, specs: list, kwspecs: dict, grad_mode: bool) -> Callable:
    """fn called with its arguments found as `Tracer._argument` says, from the slot values
    passed in order (one per non-'value' argument), in the grad mode it was traced in."""
    mode = engine._grad_mode

    def call(args: Any, kwargs: dict) -> Any:
        if mode.enabled == grad_mode:
            return fn(*args, **kwargs)
        mode.enabled = grad_mode
        try:
            return fn(*args, **kwargs)
        finally:
            mode.enabled = not grad_mode

    if all(kind == "value" for kind, _ in specs + list(kwspecs.values())):
        # every argument taken by reference (an optimizer's zero_grad): built once
        fixed_args = tuple(what for _, what in specs)
        fixed_kwargs = {k: what for k, (_, what) in kwspecs.items()}
        return lambda: call(fixed_args, fixed_kwargs)

    def build(spec: Tuple[str, Any], it: Any) -> Any:
        kind, what = spec
        if kind == "value":
            return what
        v = next(it)
        return Tensor._wrap(v) if kind == "wrap" else v

    def run(*slot_values: Any) -> Any:
        it = iter(slot_values)
        return call([build(s, it) for s in specs], {k: build(s, it) for k, s in kwspecs.items()})
    return run


def _params_text(params: dict) -> str:
    if not params:
        return ""
    return "[" + ", ".join(f"{k}={_short(v)}" for k, v in params.items()) + "]"


def _short(v: Any) -> str:
    if isinstance(v, np.ndarray):
        return f"array{v.shape}"
    text = repr(v)
    return text if len(text) <= 30 else text[:27] + "..."


def _user_line() -> Tuple[str, str]:
    """'file:line' and the source line of the innermost frame outside autograd_lite."""
    import linecache
    frame = sys._getframe(1)
    while frame is not None and os.path.abspath(frame.f_code.co_filename).startswith(_PACKAGE + os.sep):
        frame = frame.f_back
    if frame is None:
        return "an unknown line", ""
    path, number = frame.f_code.co_filename, frame.f_lineno
    return f"{path}:{number}", linecache.getline(path, number).strip()


class _ReturnLine:
    """`with _ReturnLine(fn):` notes the line where fn's own frame returns ('file:line:
    `source`'), with a profile hook that only runs while tracing and only when no profiler
    is installed."""

    def __init__(self, fn: Callable) -> None:
        self.code = getattr(fn, "__code__", None)
        self.where = ""
        self.installed = False

    def _watch(self, frame: Any, event: str, arg: Any) -> None:
        if event == "return" and frame.f_code is self.code:
            import linecache
            path, number = frame.f_code.co_filename, frame.f_lineno
            source = linecache.getline(path, number).strip()
            self.where = f"{path}:{number}: `{source}`"

    def __enter__(self) -> "_ReturnLine":
        if self.code is not None and sys.getprofile() is None:
            sys.setprofile(self._watch)
            self.installed = True
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.installed:
            sys.setprofile(None)


def _eager_backward(root: Tensor, gradient: Any, retain_graph: bool, create_graph: bool) -> None:
    """engine.backward's own sweep (for calls the trace does not record)."""
    if not root.requires_grad:
        _no_graph_error()
    seed = engine._seed(root, gradient, create_graph, "backward")
    ends = engine._run([root], [seed], None, retain_graph or create_graph, create_graph).values()
    with engine._grad_lock:
        for leaf, g, exclusive in ends:
            engine._accumulate_grad(leaf, g, create_graph, exclusive)


def _where() -> str:
    """'file:line: `source`' of the user's line that is running."""
    where, line = _user_line()
    return f"{where}: `{line}`" if line else where


def _no_graph_error() -> None:
    raise RuntimeError(
        "backward: this tensor does not require grad and has no graph: none of the tensors "
        "it was computed from had requires_grad=True (or it was computed under no_grad())")
