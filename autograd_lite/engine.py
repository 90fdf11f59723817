"""Reverse mode: apply primitives while recording the graph, then walk it right to left.

`apply` runs a primitive's forward on arrays and records its inputs (and a creation number, and
the inputs' versions) when one of them requires a gradient. `backward` visits the recorded nodes
newest first (a heap keyed by creation order is a topological order, iterative, so depth is
unlimited), pulls each cotangent back through the primitive's VJP rules, sums it back over
broadcast axes (`unbroadcast`), accumulates into the leaves and releases the graph. A node whose
saved arrays were changed in place since it was recorded (`increment_version`) stops the sweep
with an error instead of differentiating at the new values.
"""
from __future__ import annotations

import functools
import itertools
import threading
from heapq import heapify, heappop, heappush
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence, Tuple

import numpy as np

from .tensor import Tensor, tracers


class _GradMode(threading.local):
    enabled = True


_grad_mode = _GradMode()

# Hooks that watch every primitive application (forward-mode traces, anomaly mode).
# Module-level lists so that the common case costs one truth test.
jvp_traces: List[Any] = []
apply_hooks: List[Any] = []
# One entry per vmap running on any thread: while it is empty (the common case) a primitive's
# apply pays one truth test for vmap, and only then looks up this thread's interpreters.
batching: List[Any] = []


class _Batching(threading.local):
    def __init__(self) -> None:
        # vmap's interpreters on this thread (`vmap.interpret`, innermost last): a primitive
        # applied to a batched value runs its batching rule instead of its forward, and this
        # thread's reverse sweeps run their rules on Tensors (cotangents may be batched)
        self.interpreters: List[Any] = []


_batching = _Batching()
# Sequence numbers of recorded nodes, in creation order: a node is always newer than its inputs,
# so newest-first is an order in which the reverse sweep can visit them.
_sequence = itertools.count()
# Hooks that watch every step of the reverse sweep: callables
# (node, cotangent_in, [(argnum, input, cotangent_out), ...]) (anomaly mode, explain()).
backward_hooks: List[Any] = []
# Held while gradients are added into `.grad`: backward passes on two threads whose graphs share
# a leaf would otherwise both read its old `.grad` and one of the two sums would be lost.
_grad_lock = threading.Lock()
# The creation number (from `_sequence`) of the latest in-place change to any tensor. A node
# recorded after it has seen no change since, so the reverse sweep compares saved versions only
# for nodes older than it: in a training loop (forward, backward, step) that is none of them.
_last_change = -1
_change_lock = threading.Lock()


def increment_version(t: Tensor) -> None:
    """Record that `t`'s array was changed in place (as PyTorch's version counter does).

    The in-place operators (`+=`, ...) and the optimizers call it; code that writes into a
    tensor's array some other way should too. A backward through a graph recorded before the
    change then raises instead of computing the gradient at the new values.
    """
    global _last_change
    with _change_lock:  # two threads: the later change must win
        t._version += 1
        _last_change = next(_sequence)


def increment_versions(tensors: Iterable[Tensor]) -> None:
    """`increment_version` on each of `tensors` (changed together, e.g. by an optimizer's step),
    taking the lock once."""
    global _last_change
    with _change_lock:
        for t in tensors:
            t._version += 1
        _last_change = next(_sequence)


def replayed(fn: Any) -> Any:
    """Mark `fn` as an effect that `ag.compile` replays by calling it again at every replay.

    For code that changes state outside the graph or draws random numbers (an optimizer's
    `step` and `zero_grad`, a dropout mask, a running statistic, an in-place operator): while a
    compiled function is traced, the call is recorded with its arguments (traced Tensors as
    their values at replay, everything else by reference) instead of being frozen, and its
    array or Tensor result becomes a value of the program. Outside a trace it is `fn` itself.
    """
    @functools.wraps(fn)
    def effect(*args: Any, **kwargs: Any) -> Any:
        if tracers:
            return tracers[-1].replayed_call(fn, args, kwargs)
        return fn(*args, **kwargs)
    return effect


def guard(obj: Any, attribute: Optional[str] = None) -> None:
    """Tell a running `ag.compile` trace that the program depends on `obj.<attribute>` (a mode
    flag such as a module's `training`), or with None on every plain setting of obj (numbers,
    strings, booleans): a later call where one differs traces again."""
    if tracers:
        tracers[-1].guard(obj, attribute)


def enter_batching(interpreter: Any) -> None:
    """Route this thread's primitives through `interpreter` (vmap's) until `leave_batching`."""
    _batching.interpreters.append(interpreter)
    batching.append(interpreter)


def leave_batching() -> None:
    """End the innermost `enter_batching` of this thread."""
    batching.pop()
    _batching.interpreters.pop()


def in_vmap() -> bool:
    """Whether this thread is inside a vmap (values, cotangents and tangents may be batched)."""
    return bool(batching) and bool(_batching.interpreters)


def _interpret(prim, args: tuple, params: dict) -> Any:
    """This thread's innermost vmap interpreter applied to `prim`, or None outside vmap."""
    interpreters = _batching.interpreters
    return interpreters[-1](prim, args, params) if interpreters else None


def is_grad_enabled() -> bool:
    """Whether operations on this thread record a graph."""
    return _grad_mode.enabled


class set_grad_enabled:
    """`with set_grad_enabled(mode):` turns graph recording on or off on this thread.

    Also a decorator: `@no_grad()` runs the whole function without recording.
    """

    def __init__(self, mode: bool) -> None:
        self.mode = bool(mode)
        self.prev: List[bool] = []

    def __enter__(self) -> None:
        self.prev.append(_grad_mode.enabled)
        _grad_mode.enabled = self.mode

    def __exit__(self, *exc: Any) -> None:
        _grad_mode.enabled = self.prev.pop()

    def __call__(self, fn):
        import functools
        mode = self.mode

        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            with set_grad_enabled(mode):
                return fn(*args, **kwargs)
        return wrapper


class no_grad(set_grad_enabled):
    """`with no_grad():` records nothing on this thread (inference, parameter updates)."""

    def __init__(self) -> None:
        super().__init__(False)


class enable_grad(set_grad_enabled):
    """`with enable_grad():` records again inside a `no_grad()` block."""

    def __init__(self) -> None:
        super().__init__(True)


def apply(prim, args: tuple, params: dict) -> Tensor:
    """Run `prim` forward on the arrays inside `args`; record the node if a gradient is needed."""
    arrays = []
    needs = []
    versions = []
    for a in args:
        if isinstance(a, Tensor):
            arrays.append(a.data)
            needs.append(a.requires_grad)
            versions.append(a._version)
        else:
            arrays.append(a)
            needs.append(False)
            versions.append(None)
    record = True in needs
    result = _interpret(prim, args, params) if batching else None
    if result is None:
        try:
            out = prim.forward(*arrays, **params)
        except (ValueError, IndexError, TypeError) as error:
            message = str(error)
            if not message.startswith(prim.name + ":"):
                shapes = ", ".join(str(np.shape(a)) for a in arrays)
                message = f"{prim.name}: {message} (input shapes {shapes})"
            raise type(error)(message) from None
        if type(out) is not np.ndarray:
            out = np.asarray(out)
        result = Tensor._wrap(out)
    if record and _grad_mode.enabled:
        result.requires_grad = True
        result._op = prim
        result._inputs = args
        result._arrays = arrays
        result._needs = tuple(needs)
        result._params = params
        result._seq = next(_sequence)
        result._versions = versions
    if jvp_traces:
        for trace in tuple(jvp_traces):
            trace.process(prim, args, params, result)
    if apply_hooks:
        for hook in tuple(apply_hooks):
            hook(prim, args, params, result)
    return result


def unbroadcast(cotangent: Any, shape: tuple) -> Any:
    """Sum a cotangent over the axes that broadcasting added or stretched, back to `shape`.

    Works on arrays and on Tensors alike (it only uses `.sum` and `.reshape`).
    """
    cshape = cotangent.shape
    if cshape == shape:
        return cotangent
    lead = len(cshape) - len(shape)
    if lead < 0 or any(c == 1 and n != 1 for c, n in zip(cshape[lead:], shape)):
        # a rule returned less than the target on some axis: stretch it first
        full = np.broadcast_shapes(cshape, shape)
        cotangent = broadcast_array_or_tensor(cotangent, full)
        cshape = full
        lead = len(cshape) - len(shape)
    axes = tuple(range(lead)) + tuple(
        lead + i for i, n in enumerate(shape) if n == 1 and cshape[lead + i] != 1)
    if axes:
        cotangent = cotangent.sum(axis=axes, keepdims=True)
    if cotangent.shape != shape:
        cotangent = cotangent.reshape(shape)
    return cotangent


def broadcast_array_or_tensor(value: Any, shape: tuple) -> Any:
    """`value` repeated to `shape`: a new array of its own for arrays (the sweep may add into it),
    the recorded broadcast for Tensors."""
    if isinstance(value, Tensor):
        return value.broadcast_to(tuple(shape))
    out = np.empty(shape, dtype=np.result_type(value))
    out[...] = value
    return out


class GraphReleasedError(RuntimeError):
    """Raised by a second backward through a graph that the first backward released."""


def _check_unchanged(node: Tensor) -> None:
    """Raise if an array that `node` keeps for its backward was changed in place since it was
    recorded: its output (a fresh tensor is at version 0) or one of its inputs."""
    if node._version:
        raise _modified_error(node, None, node, 0)
    for i, (x, recorded) in enumerate(zip(node._inputs, node._versions)):
        if recorded is not None and x._version != recorded:
            raise _modified_error(node, i, x, recorded)


def _modified_error(node: Tensor, argnum: Optional[int], x: Tensor, recorded: int) -> RuntimeError:
    op = node._op.name
    which = f"the output of '{op}'" if argnum is None else f"input {argnum} of '{op}'"
    tensor = f"tensor {x.name!r}" if x.name else "a tensor"
    return RuntimeError(
        f"backward: {which} ({tensor} of shape {x.shape}) was modified in place after '{op}' "
        f"recorded it (version {recorded} then, version {x._version} now): the gradient would be "
        "computed from the changed values. Change it only after backward(), change a copy, or "
        "recompute the forward pass after the change")


def _released_error(node: Tensor) -> GraphReleasedError:
    return GraphReleasedError(
        f"backward: trying to backward through the graph a second time: the graph behind "
        f"'{node._op.name}' (output shape {node.shape}) was released by an earlier backward(). "
        "Pass retain_graph=True to the first backward() if you need to go through it again, "
        "or recompute the forward pass.")


def _leading_to(roots: Sequence[Tensor], stop: set) -> set:
    """ids of the tensors from which a path leads to one of `stop` (ids of tensors), stop
    included: only those need their cotangents pulled back by `grad(outputs, inputs)`."""
    nodes: List[Tensor] = []
    seen = set()
    stack = list(roots)
    while stack:
        node = stack.pop()
        key = id(node)
        if key in seen:
            continue
        seen.add(key)
        if node._op is None or key in stop:
            continue
        if node._inputs is None:
            raise _released_error(node)
        nodes.append(node)
        stack.extend(x for x in node._inputs if isinstance(x, Tensor) and x.requires_grad)
    nodes.sort(key=_creation_order)   # inputs before the nodes that use them
    leads = set(stop)
    for node in nodes:
        for x in node._inputs:
            if isinstance(x, Tensor) and id(x) in leads:
                leads.add(id(node))
                break
    return leads


def _creation_order(node: Tensor) -> int:
    return node._seq


def _as_cotangent(value: Any, like: Tensor, create_graph: bool, where: str) -> Any:
    if isinstance(value, Tensor):
        array = value.data
        shape = value.shape  # one example's, for a batched cotangent inside vmap
    else:
        array = np.asarray(value, dtype=like.dtype)
        shape = array.shape
    if shape != like.shape:
        raise ValueError(f"{where}: the gradient has shape {shape} but the tensor it starts "
                         f"from has shape {like.shape}; they must be equal")
    if create_graph or in_vmap():
        return value if isinstance(value, Tensor) else Tensor._wrap(array)
    return array


def _seed(root: Tensor, gradient: Any, create_graph: bool, where: str) -> Any:
    if root.data.dtype.kind != "f":
        # an integer or boolean output is piecewise constant: its "gradient" would be noise
        raise TypeError(f"{where}: the output has dtype {root.data.dtype}, not floating point, so it "
                        "has no gradient; differentiate the float value before it was converted")
    if gradient is None:
        if root.size != 1:
            raise RuntimeError(
                f"{where}: the tensor has shape {root.shape}, not a single element; a gradient "
                f"can only be created implicitly for a scalar. Pass gradient= (an array of shape "
                f"{root.shape}), or reduce first, e.g. loss.sum().backward()")
        shape, dtype = root.shape, root.data.dtype  # (inside vmap, one example's shape)
        # np.array(1, dtype) costs a quarter of np.ones((), dtype) for the usual 0-d loss
        ones = np.array(1, dtype) if not shape else np.ones(shape, dtype)
        return Tensor._wrap(ones) if create_graph else ones
    return _as_cotangent(gradient, root, create_graph, where)


_NOWHERE: frozenset = frozenset()


def _run(roots: Sequence[Tensor], seeds: Sequence[Any], targets: Optional[Sequence[Tensor]],
         retain_graph: bool, create_graph: bool) -> Dict[int, tuple]:
    """The reverse sweep. Returns {id(tensor): (tensor, cotangent, whether the cotangent is an
    array of the sweep's own that nothing else refers to)} for leaves (or for `targets`).

    Nodes are visited newest first (by `_seq`, their creation order), from a heap that holds the
    nodes that have received a cotangent: every node that uses a tensor is newer than it, so when
    a node is popped all of its cotangent has arrived. No separate topological sort is needed,
    and nodes that receive no cotangent are never visited. The graph is released, and retained
    gradients are stored, only once the whole sweep has succeeded.
    """
    if tracers:
        tracers[-1].unsupported("a reverse sweep other than loss.backward() (ag.grad, "
                                "value_and_grad, checkpoint, ...)", "call loss.backward() instead")
    stop = _NOWHERE if targets is None else {id(t) for t in targets}
    leads = None if targets is None else _leading_to(roots, stop)
    tensor_mode = create_graph or bool(jvp_traces) or in_vmap()
    hooks = tuple(backward_hooks)
    # ids of cotangent arrays that this sweep allocated and that nothing else refers to: a
    # second cotangent for the same tensor can be added into them in place
    owned: set = set()
    grads: Dict[int, Any] = {}      # the cotangent of every tensor that has received one
    ends: Dict[int, Tensor] = {}    # the leaves (or targets) among them, where the sweep stops
    heap: List[Tuple[int, int, Tensor]] = []
    for root, seed in zip(roots, seeds):
        key = id(root)
        if key in grads:
            grads[key] = grads[key] + seed
            continue
        grads[key] = seed
        if root._op is None or key in stop:
            ends[key] = root
        else:
            heap.append((-root._seq, id(root), root))
    heapify(heap)
    changed = _last_change  # nodes older than the latest in-place change must check their versions
    # leaf cotangents from primitives with an in-place rule (`vjp_into`), added at the end
    deferred: Dict[int, list] = {}
    swept: List[Tensor] = []
    retained: List[Tuple[Tensor, Any]] = []
    prev_mode = _grad_mode.enabled
    _grad_mode.enabled = create_graph
    try:
        while heap:
            node = heappop(heap)[2]
            inputs = node._inputs
            if inputs is None:
                raise _released_error(node)
            if node._seq < changed:
                _check_unchanged(node)
            swept.append(node)
            g = grads.pop(id(node))
            owned.discard(id(g))  # the rules may hand g itself on
            if node._retain and leads is None:
                retained.append((node, g))
            prim = node._op
            wanted = node._needs
            if leads is not None:
                wanted = tuple(w and id(x) in leads for w, x in zip(wanted, inputs))
            if tensor_mode:
                cotangents = _pull_back(prim, g, node, inputs, wanted, node._params)
                fresh = False
            elif prim.vjp_into is not None and not hooks:
                wanted = _defer_to_leaves(node, g, wanted, stop, deferred, ends)
                cotangents = _pull_back(prim, g, node.data, node._arrays, wanted, node._params)
                fresh = prim.fresh_cotangents
            elif prim.vjp_joint is not None:
                # one call for all inputs: a fused kernel shares its work (e.g. delta) between them
                cotangents = prim.vjp_joint(g, node.data, *node._arrays, wanted=wanted, **node._params)
                fresh = prim.fresh_cotangents
            else:
                cotangents = _pull_back(prim, g, node.data, node._arrays, wanted, node._params)
                fresh = prim.fresh_cotangents
            produced = [] if hooks else None
            for i, x in enumerate(inputs):
                if not wanted[i]:
                    continue
                c = cotangents[i]
                shape = x.shape if tensor_mode else x.data.shape  # one example's, in vmap
                if c.shape != shape:
                    c = unbroadcast(c, shape)
                    new = not tensor_mode  # summed (or stretched) into an array of its own
                else:
                    new = fresh
                if hooks:
                    produced.append((i, x, c))
                key = id(x)
                prev = grads.get(key)
                if prev is None:
                    grads[key] = c
                    if new:
                        owned.add(id(c))
                    if x._op is None or key in stop:
                        ends[key] = x
                    else:
                        heappush(heap, (-x._seq, id(x), x))   # id: ties (copies of a node)
                else:
                    grads[key] = _sum_into(prev, c, owned)
            if hooks:
                for hook in hooks:
                    hook(node, g, produced)
        for key, pending in deferred.items():
            grads[key] = _add_deferred(grads.get(key), pending, owned)
    finally:
        _grad_mode.enabled = prev_mode
    if retained:
        with _grad_lock:
            for node, g in retained:
                _accumulate_grad(node, g, create_graph, False)
    if not retain_graph:
        for node in swept:
            node._inputs = None
            node._arrays = None
            node._needs = None
            node._params = None
            node._versions = None
    return {key: (x, grads[key], id(grads[key]) in owned) for key, x in ends.items()}


def _defer_to_leaves(node: Tensor, g: Any, wanted: Sequence[bool], stop: Any,
                     deferred: Dict[int, list], ends: Dict[int, Tensor]) -> tuple:
    """Set aside the cotangents that `node` sends to leaves (to be added in place at the end
    of the sweep by its primitive's `vjp_into`); returns `wanted` for the inputs left."""
    inputs = node._inputs
    left = list(wanted)
    for i, x in enumerate(inputs):
        if wanted[i] and (x._op is None or id(x) in stop):
            key = id(x)
            ends[key] = x
            deferred.setdefault(key, []).append((node, g, i))
            left[i] = False
    return tuple(left)


def _add_deferred(total: Any, pending: list, owned: set) -> Any:
    """total + the set-aside cotangents: each added in place by its primitive's `vjp_into` when
    `total` is an array this sweep owns, through the ordinary rule otherwise."""
    for node, g, i in pending:
        prim, values, ans = node._op, node._arrays, node.data
        x = values[i]                     # the leaf's array (only Tensor inputs are deferred)
        if (total is not None and type(total) is np.ndarray and id(total) in owned
                and total.shape == x.shape and total.dtype == x.dtype):
            prim.vjp_into(total, g, ans, *values, argnum=i, **node._params)
            continue
        wanted = tuple(j == i for j in range(len(values)))
        c = _pull_back(prim, g, ans, values, wanted, node._params)[i]
        if c.shape != x.shape:
            c = unbroadcast(c, x.shape)
        if total is None:
            total = c
            if prim.fresh_cotangents:
                owned.add(id(c))
        else:
            total = _sum_into(total, c, owned)
    return total


def vjp_rule(prim, i: int) -> Callable:
    """`prim`'s VJP rule for input i (a variadic primitive's one rule serves every input);
    NotImplementedError naming the primitive and the input when it has none."""
    try:
        rule = prim.vjps[0] if prim.variadic else prim.vjps[i]
    except IndexError:  # defvjp was given fewer rules than the primitive has inputs
        rule = None
    if rule is None:
        raise NotImplementedError(
            f"backward: primitive '{prim.name}' has no VJP rule for argument {i}; define one "
            f"with {prim.name}.defvjp(...) (one rule per input, in order)")
    return rule


def _pull_back(prim, g: Any, ans: Any, values: Sequence[Any], wanted: Sequence[bool],
               params: dict) -> List[Any]:
    """One VJP rule call per input that wants a cotangent (None for the others)."""
    out: List[Any] = []
    for i, want in enumerate(wanted):
        if not want:
            out.append(None)
            continue
        rule = vjp_rule(prim, i)
        out.append(rule(g, ans, *values, argnum=i, **params) if prim.variadic
                   else rule(g, ans, *values, **params))
    return out


def _sum_into(total: Any, c: Any, owned: set) -> Any:
    """total + c, in place when `total` is an array this sweep owns and the sum fits in it."""
    if (id(total) in owned and type(total) is np.ndarray and type(c) is np.ndarray
            and total.shape == c.shape
            and (total.dtype == c.dtype or total.dtype == np.result_type(total, c))):
        np.add(total, c, out=total)
        return total
    owned.discard(id(total))  # replaced: its id may be reused once it is freed
    total = total + c
    if type(total) is np.ndarray:
        owned.add(id(total))
    return total


def _accumulate_grad(t: Tensor, g: Any, create_graph: bool, exclusive: bool) -> None:
    """`t.grad += g`, out of place, keeping t's dtype and shape. `exclusive`: g is an array that
    nothing else refers to; otherwise (the same cotangent may reach several leaves, e.g. both
    inputs of an add, or be a read-only view) t gets a copy, so that an in-place change to one
    `.grad` cannot reach another."""
    if isinstance(g, Tensor):
        if g.dtype != t.dtype:
            g = g.astype(t.dtype)
        t.grad = g if t.grad is None else t.grad + g
        return
    if g.dtype != t.data.dtype:
        g = g.astype(t.data.dtype)
    elif t.grad is None and not (exclusive and g.flags.writeable):
        g = np.array(g)
    t.grad = Tensor._wrap(g) if t.grad is None else Tensor._wrap(t.grad.data + g)


def backward(root: Tensor, gradient: Any = None, retain_graph: bool = False,
             create_graph: bool = False) -> None:
    """Accumulate d(root)/d(leaf) into `.grad` of every leaf that requires a gradient."""
    if not isinstance(root, Tensor):
        raise TypeError(f"backward: expected a Tensor, got {type(root).__name__}")
    if tracers:   # inside ag.compile: the sweep is recorded as part of the program
        return tracers[-1].backward(root, gradient, retain_graph, create_graph)
    if not root.requires_grad:
        raise RuntimeError(
            "backward: this tensor does not require grad and has no graph: none of the tensors "
            "it was computed from had requires_grad=True (or it was computed under no_grad())")
    seed = _seed(root, gradient, create_graph, "backward")
    ends = _run([root], [seed], None, retain_graph or create_graph, create_graph).values()
    with _grad_lock:
        for leaf, g, exclusive in ends:
            _accumulate_grad(leaf, g, create_graph, exclusive)


def grad(outputs: Any, inputs: Any, grad_outputs: Any = None, retain_graph: Optional[bool] = None,
         create_graph: bool = False, allow_unused: bool = True) -> Tuple[Any, ...]:
    """Cotangents of `inputs` (d outputs / d inputs, times `grad_outputs`), without touching `.grad`.

    Like `torch.autograd.grad`: `outputs` and `inputs` are Tensors or sequences of them. An input
    the outputs do not depend on gets zeros.
    """
    outs = [outputs] if isinstance(outputs, Tensor) else list(outputs)
    ins = [inputs] if isinstance(inputs, Tensor) else list(inputs)
    if grad_outputs is None:
        gouts = [None] * len(outs)
    elif isinstance(grad_outputs, (Tensor, np.ndarray)) and len(outs) == 1:
        gouts = [grad_outputs]
    else:
        gouts = list(grad_outputs)
    if retain_graph is None:
        retain_graph = create_graph
    roots, seeds = [], []
    for out, gout in zip(outs, gouts):
        if not isinstance(out, Tensor):
            raise TypeError(f"grad: outputs must be Tensors, got {type(out).__name__}")
        if not out.requires_grad:
            continue
        roots.append(out)
        seeds.append(_seed(out, gout, create_graph, "grad"))
    results = _run(roots, seeds, ins, retain_graph, create_graph) if roots else {}
    answer = []
    for x in ins:
        entry = results.get(id(x))
        if entry is None:
            answer.append(Tensor._wrap(np.zeros(x.shape, x.dtype)))
            continue
        _, c, exclusive = entry
        if c.dtype != x.dtype:
            c = c.astype(x.dtype)
        elif not isinstance(c, Tensor) and not (exclusive and c.flags.writeable):
            # the caller's grad_outputs, or a cotangent another input also got (both inputs of
            # an add), or a read-only view: an array of its own, as backward() gives `.grad`
            c = np.array(c)
        if not isinstance(c, Tensor):
            results[id(x)] = (x, c, False)  # the same input asked for twice gets a second array
            c = Tensor._wrap(c)
        answer.append(c)
    return tuple(answer)
