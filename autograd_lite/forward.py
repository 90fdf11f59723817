"""Forward mode: tangents carried alongside the primal values, one pass, no graph kept.

`jvp(f, primals, tangents)` pushes a `JVPTrace` on `engine.jvp_traces`; after every primitive
application the trace sums the primitive's JVP rules (from the one table, `declaration.PRIMITIVES`)
over the inputs that carry a tangent, and stores the output's tangent in its `_jvp` slot.
Rules run on Tensors whenever someone else is watching (an outer trace, a graph being
recorded), so forward mode nests with itself and with reverse mode (forward-over-reverse
Hessian-vector products, grad of jvp, jvp of jvp).
"""
from __future__ import annotations

import threading
from typing import Any, Callable, Sequence, Tuple

import numpy as np

from . import engine, primitives
from .batching import Batched
from .tensor import Tensor


class JVPTrace:
    """One forward-mode transform in flight: the key under which its tangents live in `_jvp`."""

    __slots__ = ("__weakref__",)

    def process(self, prim: Any, args: Sequence[Any], params: dict, result: Tensor) -> None:
        """Give `result` its tangent: the sum over inputs of (input's JVP rule)(input's tangent)."""
        tangents = None
        for i, a in enumerate(args):
            if isinstance(a, Tensor) and a._jvp:
                t = a._jvp.get(self)
                if t is not None:
                    if tangents is None:
                        tangents = [None] * len(args)
                    tangents[i] = t
        if tangents is None:
            return
        traces = engine.jvp_traces
        position = traces.index(self)
        del traces[position]  # a trace must not see the operations of its own rules
        try:
            tangent = self._output_tangent(prim, args, params, result, tangents)
        finally:
            traces.insert(position, self)
        if result._jvp is None:
            result._jvp = {}
        result._jvp[self] = tangent

    def _output_tangent(self, prim: Any, args: Sequence[Any], params: dict, result: Tensor,
                        tangents: list) -> Tensor:
        on_tensors = _watched(args, tangents)
        if on_tensors:
            values, ans = args, result
        else:  # nobody can see the rule's operations: run it on plain arrays
            values = [a.data if isinstance(a, Tensor) else a for a in args]
            ans = result.data
        rules = prim.jvps
        total = None
        for i, t in enumerate(tangents):
            if t is None:
                continue
            rule = (rules[0] if rules else None) if prim.variadic else (rules[i] if i < len(rules) else None)
            if rule is None:
                raise NotImplementedError(
                    f"jvp: primitive '{prim.name}' has no JVP rule for argument {i}; "
                    f"define one with {prim.name}.defjvp(...) (one rule per input)")
            if not on_tensors:
                t = t.data
            if prim.variadic:
                c = rule(t, ans, *values, argnum=i, **params)
            else:
                c = rule(t, ans, *values, **params)
            if not isinstance(c, Tensor) and type(c) is not np.ndarray:
                c = np.asarray(c)
            if c.shape != result.shape:  # the rule returned less than the output: stretch it
                c = engine.broadcast_array_or_tensor(c, result.shape)
            total = c if total is None else total + c
        if isinstance(total, Tensor):
            if total.dtype != result.dtype and result.dtype.kind == "f":
                total = total.astype(result.dtype)
            return total
        if total.dtype != result.dtype and result.dtype.kind == "f":
            total = total.astype(result.dtype)
        return Tensor._wrap(total)


def _watched(args: Sequence[Any], tangents: list) -> bool:
    """Whether a rule's operations must be recorded: an outer trace or a graph may need them."""
    if engine.jvp_traces or engine.apply_hooks or engine.in_vmap():
        return True  # (inside vmap, values and tangents may be batched: only Tensors carry that)
    if not engine.is_grad_enabled():
        return False
    for a in args:
        if isinstance(a, Tensor) and a.requires_grad:
            return True
    for t in tangents:
        if t is not None and t.requires_grad:
            return True
    return False


def jvp(f: Callable[..., Any], primals: Any, tangents: Any) -> Tuple[Any, Any]:
    """Evaluate `f(*primals)` and its directional derivative J(primals) @ tangents in one pass.

    `primals` and `tangents` are tuples (or lists) of equal length whose entries have equal
    shapes; a single array or Tensor is taken as a 1-tuple. Returns `(outputs, output_tangents)`
    with the structure of f's result (one value or a tuple). Arrays in give arrays out; Tensors
    in give Tensors out. No graph is recorded unless the primals themselves carry one.

    Like `grad` and `vjp`, it refuses an output that is not floating-point (a boolean or integer
    result has no derivative) with a TypeError naming the output and its dtype.

    Example:
        >>> y, dy = jvp(lambda x: (x * x).sum(), (np.array([1.0, 2.0]),), (np.array([1.0, 0.0]),))
        >>> float(dy)
        2.0
    """
    return jvp_for(f, primals, tangents, "jvp")


def jvp_for(f: Callable[..., Any], primals: Any, tangents: Any, op: str) -> Tuple[Any, Any]:
    """`jvp`, naming the transform `op` (jvp, or jacobian in forward mode) when it refuses an output."""
    primals, _ = _as_tuple(primals)
    tangents, _ = _as_tuple(tangents)
    if len(primals) != len(tangents):
        raise ValueError(f"jvp: got {len(primals)} primals but {len(tangents)} tangents; "
                         "give one tangent per primal")
    trace = JVPTrace()
    inputs = [attach_tangent(trace, p, t, i) for i, (p, t) in enumerate(zip(primals, tangents))]
    any_tensor = any(isinstance(p, Tensor) for p in primals)
    keep_graph = carries_graph(primals) or carries_graph(tangents)
    engine.jvp_traces.append(trace)
    try:
        out = f(*inputs)
    finally:
        engine.jvp_traces.remove(trace)
    outs, out_tuple = _as_tuple(out)
    for k, o in enumerate(outs):
        check_float_output(o, op, f"output {k}")
    tangents_out = [tangent_of(trace, o) for o in outs]
    for o in outs:  # the outputs leave without this trace's tangents
        if isinstance(o, Tensor) and o._jvp:
            o._jvp.pop(trace, None)
    values = [export(o, any_tensor, keep_graph) for o in outs]
    out_tangents = [export(t, any_tensor, keep_graph) for t in tangents_out]
    if out_tuple:
        return tuple(values), tuple(out_tangents)
    return values[0], out_tangents[0]


def attach_tangent(trace: JVPTrace, primal: Any, tangent: Any, i: int = 0) -> Tensor:
    """A Tensor with `primal`'s value (and graph, and outer tangents) carrying `tangent` for `trace`."""
    data = primal.data if isinstance(primal, Tensor) else np.asarray(primal)
    shape = primal.shape if isinstance(primal, Tensor) else data.shape  # one example's, in vmap
    if data.dtype.kind != "f":
        raise TypeError(f"jvp: primal {i} has dtype {data.dtype}; forward mode needs floating-point "
                        "primals (convert with .astype(np.float64))")
    t_shape = tangent.shape if isinstance(tangent, Tensor) else np.shape(tangent)
    if tuple(t_shape) != shape:
        raise ValueError(f"jvp: tangent {i} has shape {tuple(t_shape)} but primal {i} has shape "
                         f"{shape}; each tangent must have its primal's shape")
    if isinstance(primal, Tensor) and (primal.requires_grad or has_live_tangent(primal)
                                       or isinstance(primal, Batched)):
        # a fresh node linked to the primal, so that outer transforms still see through it
        x = primitives.reshape(primal, shape=shape)
        x._jvp = dict(x._jvp) if x._jvp else {}
    else:
        x = Tensor._wrap(data)
        x._jvp = {}
    if isinstance(tangent, Tensor):
        if tangent.dtype != data.dtype:
            tangent = tangent.astype(data.dtype)
    else:
        tangent = Tensor._wrap(np.asarray(tangent, dtype=data.dtype))
    x._jvp[trace] = tangent
    return x


def check_float_output(out: Any, op: str, which: str) -> None:
    """Refuse an output of transform `op` that has no derivative: not a Tensor, array or number,
    or not floating-point (booleans, integers), as PyTorch and JAX refuse them."""
    if isinstance(out, Tensor):
        dtype = out.dtype
    elif isinstance(out, (np.ndarray, np.generic, float, int)):
        dtype = np.asarray(out).dtype
    else:
        raise TypeError(f"{op}: f must return Tensors, arrays or numbers (or a tuple of them), "
                        f"{which} is {type(out).__name__}")
    if dtype.kind != "f":
        raise TypeError(f"{op}: {which} has dtype {dtype}, but only floating-point outputs can be "
                        "differentiated (convert with .astype(np.float64))")


def tangent_of(trace: JVPTrace, out: Any) -> Tensor:
    """The tangent `trace` gave `out` (zeros when out does not depend on the primals)."""
    if not isinstance(out, Tensor):
        return Tensor._wrap(np.zeros_like(np.asarray(out, dtype=float)))
    t = out._jvp.get(trace) if out._jvp else None
    if t is None:
        return Tensor._wrap(np.zeros(out.shape, out.dtype))
    return t


class _Nesting(threading.local):
    depth = 0  # how many transforms are evaluating a user's function right now


nesting = _Nesting()


def enclosed() -> bool:
    """Whether an enclosing transform is running (so values it may differentiate stay Tensors)."""
    return nesting.depth > 0 or bool(engine.jvp_traces)


def has_live_tangent(t: Tensor) -> bool:
    """Whether `t` carries a tangent of a forward-mode transform that is still running."""
    if not t._jvp:
        return False
    for trace in t._jvp:
        if trace in engine.jvp_traces:
            return True
    return False


def carries_graph(values: Sequence[Any]) -> bool:
    """Whether any of `values` is a Tensor with a graph or a live tangent behind it."""
    return any(isinstance(v, Tensor) and (v.requires_grad or has_live_tangent(v)) for v in values)


def export(value: Any, as_tensor: bool, keep_graph: bool) -> Any:
    """A transform's result as the caller gave its inputs: Tensors for Tensors, arrays for arrays.

    The graph or tangent behind the value is kept when an enclosing transform may need it, or
    when the caller's own inputs carried a graph (`keep_graph`); otherwise it is cut off.
    """
    if not isinstance(value, Tensor):
        return Tensor._wrap(np.asarray(value)) if as_tensor else value
    if (keep_graph or enclosed()) and (value.requires_grad or has_live_tangent(value)):
        return value
    if as_tensor or isinstance(value, Batched):  # (a batched value stays one, inside vmap)
        return value if value._op is None and not value._jvp else value.detach()
    data = value.data
    return data if data.flags.writeable else np.array(data)


def _as_tuple(x: Any) -> Tuple[tuple, bool]:
    if isinstance(x, (tuple, list)):
        return tuple(x), True
    return (x,), False
