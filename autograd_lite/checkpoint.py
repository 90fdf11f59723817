"""Rematerialization: `checkpoint(f)` keeps only f's inputs in the graph and computes f's interior
again during the backward (PyTorch's non-reentrant torch.utils.checkpoint, JAX's jax.checkpoint).

The forward runs f without recording and records one node, 'checkpoint', whose inputs are the
tensors f reads from outside: its Tensor arguments and the tensors it closes over that require a
gradient (a model's parameters, values computed before the call). Its VJP runs f again, this time
recording, and pulls the cotangent back through that fresh graph to those inputs with
`engine.grad`; the outer sweep carries it on, into `.grad` or to the tensors `grad(outputs,
inputs)` asks for, as it would for the un-checkpointed f. Memory falls from every intermediate of
f to f's inputs and outputs, at the price of a second forward of f in the backward.
"""
from __future__ import annotations

import contextlib
import functools
import threading
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence, Tuple

import numpy as np

from . import engine
from .declaration import Primitive
from .tensor import Tensor


def checkpoint(f: Callable[..., Any], *, rngs: Sequence[np.random.Generator] = ()) -> Callable[..., Any]:
    """`f`, differentiated by recomputing it in the backward instead of keeping its intermediates.

    `f` takes any arguments (Tensors, arrays, numbers, keywords) and returns a Tensor or a tuple
    (or list) of Tensors and other values. Gradients are those of `f` itself, for its arguments
    and for the tensors it closes over (e.g. a layer's parameters), with `backward()`,
    `retain_graph`, `create_graph=True` (the recompute then records, for grad-of-grad), `grad`
    and `autograd_grad`. Under `jvp`, inside `vmap` and where nothing is recorded (`no_grad()`)
    f just runs (no memory is saved there).

    f must compute the same outputs from the same inputs twice. A random f (dropout) must draw
    only from the generators passed as `rngs`: their states are saved before the forward, set
    back for the recompute and then restored, so the recompute sees the same numbers. The
    recomputed outputs are compared with the forward's (shape, dtype, and a sample of values);
    a mismatch raises instead of giving a wrong gradient. Inputs changed in place between the
    forward and the backward raise as for any recorded operation. Interior tensors of f are
    recomputed copies: `retain_grad()` on them has no effect.

    Example:
        >>> block = checkpoint(lambda h: ag.tanh(layer2(ag.tanh(layer1(h)))))
        >>> loss = (block(x) ** 2).sum()     # keeps x and block's output, not its interior
        >>> loss.backward()                  # runs block's layers again, then their backward
        >>> drop = nn.Dropout(0.5, seed=0)
        >>> noisy = checkpoint(lambda h: drop(layer1(h)), rngs=[drop.rng])
    """
    if not callable(f):
        raise TypeError(f"checkpoint: f must be a callable, got {type(f).__name__}")
    generators = tuple(rngs)
    for i, generator in enumerate(generators):
        if not isinstance(generator, np.random.Generator):
            raise TypeError(f"checkpoint: rngs[{i}] must be a numpy.random.Generator (the one f "
                            f"draws from, e.g. nn.Dropout's .rng), got {type(generator).__name__}")

    @functools.wraps(f)
    def checkpointed(*args: Any, **kwargs: Any) -> Any:
        if engine.jvp_traces or engine.in_vmap() or not engine.is_grad_enabled():
            # nothing to keep: forward mode carries no graph; inside vmap f just runs (its
            # values are batched, which the recompute's one node cannot hold: no memory saved)
            return f(*args, **kwargs)
        return _record(f, args, kwargs, generators)
    return checkpointed


# ---------------------------------------------------------------- the forward
def _record(f: Callable[..., Any], args: tuple, kwargs: dict,
            generators: Tuple[np.random.Generator, ...]) -> Any:
    """Run f without recording, then record one 'checkpoint' node for its float outputs."""
    states = [g.bit_generator.state for g in generators]
    out, read = _run_unrecorded(f, args, kwargs)
    outs, is_sequence = _flatten(out)
    differentiable = [i for i, o in enumerate(outs) if isinstance(o, Tensor) and o.dtype.kind == "f"]
    explicit = [a for a in (*args, *kwargs.values()) if isinstance(a, Tensor)]
    # the arguments f used, and those that need no gradient (for their version counters), then
    # the tensors it closed over
    inputs: Dict[int, Tensor] = {id(a): a for a in explicit if not a.requires_grad or id(a) in read}
    for key, t in read.items():
        inputs.setdefault(key, t)
    if not differentiable or not any(t.requires_grad for t in inputs.values()):
        return out
    arrays = [outs[i].data for i in differentiable]
    if len(arrays) == 1:
        packed, layout = arrays[0], [(differentiable[0], None, None, arrays[0].shape, arrays[0].dtype)]
    else:   # several outputs: one node holds them end to end, each output is a slice of it
        dtype = np.result_type(*arrays)
        packed = np.concatenate([a.reshape(-1) for a in arrays], dtype=dtype)
        layout, start = [], 0
        for i, a in zip(differentiable, arrays):
            layout.append((i, start, start + a.size, a.shape, a.dtype))
            start += a.size
    call = _Call(f, args, kwargs, tuple(inputs.values()), len(outs), layout,
                 list(zip(generators, states)), packed)
    node = engine.apply(_checkpoint, call.inputs, {"call": call})
    result = list(outs)
    for i, start, stop, shape, dtype in layout:
        if start is None:
            result[i] = node
            continue
        piece = node[start:stop].reshape(shape)
        result[i] = piece if piece.dtype == dtype else piece.astype(dtype)
    if not is_sequence:
        return result[0]
    return type(out)(result) if isinstance(out, (tuple, list)) else tuple(result)


def _run_unrecorded(f: Callable[..., Any], args: tuple, kwargs: dict) -> Tuple[Any, Dict[int, Tensor]]:
    """f(*args, **kwargs) with recording off, and the tensors requiring a gradient that its
    primitives read: nothing f computes requires one here, so these come from outside f."""
    read: Dict[int, Tensor] = {}
    thread = threading.get_ident()

    def watch(prim: Any, prim_args: tuple, params: dict, result: Tensor) -> None:
        if threading.get_ident() != thread:
            return
        for a in prim_args:
            if isinstance(a, Tensor) and a.requires_grad:
                read.setdefault(id(a), a)

    engine.apply_hooks.append(watch)
    try:
        with engine.no_grad():
            out = f(*args, **kwargs)
    finally:
        engine.apply_hooks.remove(watch)
    if isinstance(out, Tensor) and out.requires_grad:
        read.setdefault(id(out), out)   # f returned one of its inputs itself
    elif isinstance(out, (tuple, list)):
        for o in out:
            if isinstance(o, Tensor) and o.requires_grad:
                read.setdefault(id(o), o)
    return out, read


def _flatten(out: Any) -> Tuple[list, bool]:
    if isinstance(out, (tuple, list)):
        return list(out), True
    return [out], False


# ---------------------------------------------------------------- the backward
class _Call:
    """What one checkpointed call needs for its backward. It rides in the node's parameters, so
    the graph's release (after backward) lets go of f's arguments too."""

    __slots__ = ("f", "args", "kwargs", "inputs", "n_outputs", "layout", "rng_states", "packed",
                 "cache")

    def __init__(self, f: Callable[..., Any], args: tuple, kwargs: dict, inputs: tuple,
                 n_outputs: int, layout: list, rng_states: list, packed: np.ndarray) -> None:
        self.f = f
        self.args = args
        self.kwargs = kwargs
        self.inputs = inputs
        self.n_outputs = n_outputs
        # per differentiable output: (index in f's result, start, stop in the node, shape, dtype);
        # start is None when the node is that output itself
        self.layout = layout
        self.rng_states = rng_states
        self.packed: Optional[np.ndarray] = packed  # handed to the node once, then dropped
        self.cache: Optional[tuple] = None          # (g, cotangents) between per-input rule calls

    def __repr__(self) -> str:
        return f"<checkpoint of {getattr(self.f, '__qualname__', repr(self.f))}>"

    def take_output(self) -> np.ndarray:
        packed, self.packed = self.packed, None
        return packed

    def pull_back(self, g: Any, ans: Any, wanted: Sequence[bool], on_tensors: bool) -> List[Any]:
        """Recompute f (recording) and pull `g` back to the inputs that are `wanted`."""
        with _rng_states(self.rng_states), engine.enable_grad():
            outs, _ = _flatten(self.f(*self.args, **self.kwargs))
        if len(outs) != self.n_outputs:
            raise RuntimeError(f"checkpoint: recomputing f in the backward gave {len(outs)} outputs, "
                               f"but the forward gave {self.n_outputs}; f must be deterministic")
        saved = ans.data if isinstance(ans, Tensor) else ans
        roots, seeds = [], []
        for i, start, stop, shape, dtype in self.layout:
            o = outs[i]
            forward = saved if start is None else saved[start:stop].reshape(shape)
            _check_same(i, o, forward, dtype)
            if not o.requires_grad:
                continue
            seed = g if start is None else g[start:stop].reshape(shape)
            roots.append(o)
            seeds.append(seed if seed.dtype == dtype else seed.astype(dtype))
        targets = [x for x, w in zip(self.inputs, wanted) if w]
        if on_tensors:
            found = iter(engine.grad(roots, targets, grad_outputs=seeds, create_graph=True)
                         if roots else [Tensor._wrap(np.zeros_like(x.data)) for x in targets])
        else:
            found = iter(_fresh_cotangents(roots, seeds, targets))
        return [next(found) if w else None for w in wanted]


def _fresh_cotangents(roots: List[Tensor], seeds: List[Any], targets: List[Tensor]) -> List[np.ndarray]:
    """The plain backward from `roots` to `targets`, each cotangent a new array of the target's
    dtype that nothing else refers to: the outer sweep may then keep it as a leaf's `.grad`
    without a copy (with several large weights in a block, copies would double their memory)."""
    swept = engine._run(roots, seeds, targets, False, False) if roots else {}
    out = []
    for x in targets:
        entry = swept.get(id(x))
        if entry is None:
            out.append(np.zeros_like(x.data))
            continue
        _, c, exclusive = entry
        if c.dtype != x.dtype:
            c = c.astype(x.dtype)
        elif not (exclusive and type(c) is np.ndarray and c.flags.writeable):
            c = np.array(c)
        out.append(c)
    return out


def _check_same(i: int, new: Any, forward: np.ndarray, dtype: np.dtype) -> None:
    """Raise if the recomputed output i differs from the forward's (shape, dtype, or a sample of
    up to about a thousand values, to a tolerance of sqrt(eps) of its dtype)."""
    what = None
    if not isinstance(new, Tensor):
        what = f"a {type(new).__name__}, not a Tensor"
    elif new.shape != forward.shape or new.dtype != dtype:
        what = (f"shape {new.shape} and dtype {new.dtype}, but the forward gave shape "
                f"{forward.shape} and dtype {dtype}")
    else:
        step = max(1, forward.size // 1024)
        where = np.unravel_index(np.arange(0, forward.size, step), forward.shape) if forward.ndim else ()
        tol = float(np.sqrt(np.finfo(dtype).eps))
        if not np.allclose(new.data[where], forward[where].astype(dtype), rtol=tol, atol=tol,
                           equal_nan=True):
            what = "values that differ from the forward's"
    if what is not None:
        raise RuntimeError(
            f"checkpoint: recomputing f in the backward gave output {i} with {what}; f must "
            "compute the same outputs from the same inputs (pass the generators it draws random "
            "numbers from as checkpoint(f, rngs=[...]))")


@contextlib.contextmanager
def _rng_states(saved: list) -> Iterator[None]:
    """The generators at their states of the forward, then back where they were."""
    now = [g.bit_generator.state for g, _ in saved]
    for g, state in saved:
        g.bit_generator.state = state
    try:
        yield
    finally:
        for (g, _), state in zip(saved, now):
            g.bit_generator.state = state


def _forward(*arrays: Any, call: _Call) -> np.ndarray:
    return call.take_output()   # f already ran: the node only takes its result


def _vjp_joint(g: Any, ans: Any, *arrays: Any, call: _Call, wanted: Sequence[bool]) -> List[Any]:
    """The plain backward: one recompute for all inputs."""
    return call.pull_back(g, ans, wanted, on_tensors=False)


def _vjp(g: Any, ans: Any, *inputs: Any, argnum: int, call: _Call) -> Any:
    """Under create_graph=True (or forward-over-reverse) the engine asks input by input: the
    first request recomputes f once for every input that requires a gradient."""
    if call.cache is None or call.cache[0] is not g:
        needs = [isinstance(x, Tensor) and x.requires_grad for x in call.inputs]
        call.cache = (g, call.pull_back(g, ans, needs, on_tensors=True))
    cotangents = call.cache[1]
    if all(c is None for c in cotangents[argnum + 1:]):
        call.cache = None   # the last input that can ask
    return cotangents[argnum]


_checkpoint = Primitive("checkpoint", _forward, variadic=True, register=False)
_checkpoint.defvjp(_vjp, text="f recomputed from the saved inputs, then its own backward")
_checkpoint.defvjp_joint(_vjp_joint)
_checkpoint.fresh_cotangents = True   # see _fresh_cotangents
