"""Function transforms: grad, value_and_grad, vjp, jvp, jacobian, hessian, hvp.

Each takes a function of Tensors and returns a function (or values) in the JAX style.
Arrays in give arrays out, Tensors in give Tensors out; `argnums` may be an int or a tuple,
and `f` may return a tuple. Transforms nest: an inner gradient is recorded
(`create_graph=True`) whenever an outer transform may differentiate it again, so
`grad(grad(grad(tanh)))` is the third derivative and `hvp` is forward-over-reverse.
"""
from __future__ import annotations

from typing import Any, Callable, Sequence, Tuple, Union

import numpy as np

from . import engine
from . import functions as F
from . import primitives as P
from .batching import Batched
from .forward import (_as_tuple, carries_graph, check_float_output, enclosed, export,
                      has_live_tangent, jvp, jvp_for, nesting)
from .tensor import Tensor

__all__ = ["grad", "value_and_grad", "vjp", "jvp", "jacobian", "hessian", "hvp"]

Argnums = Union[int, Sequence[int]]


def grad(f: Callable[..., Any], argnums: Argnums = 0, has_aux: bool = False) -> Callable[..., Any]:
    """The gradient of a scalar-valued `f` with respect to its argument(s) `argnums`.

    Returns a function with f's signature that returns the gradient (a tuple of them when
    `argnums` is a tuple; `(gradient, aux)` when `has_aux=True`).

    Example:
        >>> grad(lambda x: (x ** 3).sum())(np.array([1.0, 2.0]))
        array([ 3., 12.])
    """
    value_and_grad_f = value_and_grad(f, argnums, has_aux)

    def grad_f(*args: Any) -> Any:
        value, gradient = value_and_grad_f(*args)
        if has_aux:
            return gradient, value[1]
        return gradient

    grad_f.__name__ = f"grad_{getattr(f, '__name__', 'f')}"
    grad_f.__doc__ = f"The gradient of {getattr(f, '__name__', 'f')} with respect to argument(s) {argnums}."
    return grad_f


def value_and_grad(f: Callable[..., Any], argnums: Argnums = 0,
                   has_aux: bool = False) -> Callable[..., Tuple[Any, Any]]:
    """Like `grad`, but the function returns `(value, gradient)` from one forward pass.

    With `has_aux=True`, `f` returns `(scalar, aux)` and the function returns
    `((scalar, aux), gradient)`; aux is passed through untouched.

    Example:
        >>> loss, g = value_and_grad(lambda w, x: ((x @ w) ** 2).mean())(w, x)
    """
    def value_and_grad_f(*args: Any) -> Tuple[Any, Any]:
        nums, single = _argnums(argnums, len(args), "grad")
        call_args, xs, tensors_in = _differentiable_args(args, nums, "grad")
        keep_graph = carries_graph(args)
        nested = keep_graph or enclosed()
        with engine.enable_grad(), _Nested():
            out = f(*call_args)
        if has_aux:
            if not (isinstance(out, (tuple, list)) and len(out) == 2):
                raise TypeError("grad: with has_aux=True, f must return a pair (scalar, aux), "
                                f"got {type(out).__name__}")
            out, aux = out
        _check_scalar(out, "grad")
        check_float_output(out, "grad", "f's output")
        if isinstance(out, Tensor) and out.requires_grad:
            grads = engine.grad(out, xs, create_graph=nested)
        else:  # f does not depend on its inputs
            grads = tuple(Tensor._wrap(np.zeros(x.shape, x.dtype)) for x in xs)
        grads = tuple(export(g, tensors_in, keep_graph) for g in grads)
        if not isinstance(out, Tensor):
            out = Tensor._wrap(np.asarray(out))
        value = export(out, tensors_in, keep_graph)
        if has_aux:
            value = (value, aux)
        return value, (grads[0] if single else grads)

    value_and_grad_f.__name__ = f"value_and_grad_{getattr(f, '__name__', 'f')}"
    return value_and_grad_f


def vjp(f: Callable[..., Any], *primals: Any) -> Tuple[Any, Callable[..., tuple]]:
    """Evaluate `f(*primals)` and return `(outputs, vjp_fn)`, where `vjp_fn(cotangent)` gives the
    cotangent of every primal (always a tuple, one entry per primal): v^T J in one backward pass.

    For a function with a tuple of outputs, pass a tuple of cotangents. `vjp_fn` may be called
    many times (the graph is kept until it is garbage-collected).

    Example:
        >>> y, pullback = vjp(lambda x: x * 2.0, np.ones(3))
        >>> pullback(np.array([1.0, 2.0, 3.0]))
        (array([2., 4., 6.]),)
    """
    return _vjp(f, primals, "vjp")


def _vjp(f: Callable[..., Any], primals: Sequence[Any], op: str) -> Tuple[Any, Callable[..., tuple]]:
    """`vjp` for the transform named `op` (vjp, or jacobian in reverse mode)."""
    nums = tuple(range(len(primals)))
    call_args, xs, tensors_in = _differentiable_args(primals, nums, op)
    keep_graph = carries_graph(primals)
    nested = keep_graph or enclosed()
    with engine.enable_grad(), _Nested():
        out = f(*call_args)
    outs, out_tuple = _as_tuple(out)
    for k, o in enumerate(outs):
        check_float_output(o, op, f"output {k}")
    outs = tuple(o if isinstance(o, Tensor) else Tensor._wrap(np.asarray(o)) for o in outs)

    def vjp_fn(cotangents: Any) -> tuple:
        cts, _ = _as_tuple(cotangents) if out_tuple else ((cotangents,), False)
        if len(cts) != len(outs):
            raise ValueError(f"{op}: f has {len(outs)} outputs but {len(cts)} cotangents were given")
        seeds = []
        for k, (o, c) in enumerate(zip(outs, cts)):
            shape = c.shape if isinstance(c, Tensor) else np.shape(c)
            if tuple(shape) != o.shape:
                raise ValueError(f"{op}: cotangent {k} has shape {tuple(shape)} but output {k} has "
                                 f"shape {o.shape}; each cotangent must have its output's shape")
            seeds.append(c if isinstance(c, Tensor) else np.asarray(c, dtype=o.dtype))
        keep = keep_graph or carries_graph(seeds)
        create_graph = nested or keep or enclosed()
        live = [(o, c) for o, c in zip(outs, seeds) if o.requires_grad]
        if live:
            grads = engine.grad([o for o, _ in live], xs, grad_outputs=[c for _, c in live],
                                retain_graph=True, create_graph=create_graph)
        else:
            grads = tuple(Tensor._wrap(np.zeros(x.shape, x.dtype)) for x in xs)
        return tuple(export(g, tensors_in, keep) for g in grads)

    values = tuple(export(o, tensors_in, keep_graph) for o in outs)
    return (values if out_tuple else values[0]), vjp_fn


def jacobian(f: Callable[..., Any], argnums: Argnums = 0, mode: str = "auto",
             vectorize: bool = True) -> Callable[..., Any]:
    """The Jacobian of `f` with respect to argument(s) `argnums`, of shape output.shape + input.shape.

    `mode="fwd"` pushes the columns of the identity through the JVP (cheap when inputs are
    few), `mode="rev"` pulls its rows back through the VJP (cheap when outputs are few); with
    `vectorize=True` (the default) all of them go through in one batched pass (`vmap` of the JVP
    or of the VJP), with `vectorize=False` one pass per column or row, a Python loop (slower,
    for comparison; both give the same numbers). `mode="auto"` evaluates f once, then
    picks "rev" when f has fewer output elements than input elements and "fwd" otherwise
    (square Jacobians, Hessians included, go forward: no graph to keep).
    With a tuple `argnums` the result is a tuple over arguments; with a tuple of outputs, a
    tuple over outputs (of tuples over arguments).

    Example:
        >>> jacobian(lambda x: x.sin())(np.zeros(3))  # the 3 x 3 identity
    """
    if mode not in ("fwd", "rev", "auto"):
        raise ValueError(f"jacobian: mode must be 'fwd', 'rev' or 'auto', got {mode!r}")

    def jacobian_f(*args: Any) -> Any:
        nums, single = _argnums(argnums, len(args), "jacobian")
        chosen = mode
        pulled = None
        if mode != "fwd":
            pulled = _pullback(f, args, nums)
            if mode == "auto":
                outs = pulled[0]
                n_out = sum(int(np.prod(_shape(o), dtype=np.int64)) for o in outs)
                n_in = sum(int(np.prod(_shape(args[i]), dtype=np.int64)) for i in nums)
                chosen = "rev" if n_out < n_in else "fwd"
        if chosen == "rev":
            table, out_tuple = (_jacobian_rev_vmap if vectorize else _jacobian_rev)(*pulled, args, nums)
        else:
            table, out_tuple = (_jacobian_fwd_vmap if vectorize else _jacobian_fwd)(f, args, nums)
        rows = [row[0] if single else tuple(row) for row in table]
        return tuple(rows) if out_tuple else rows[0]

    jacobian_f.__name__ = f"jacobian_{getattr(f, '__name__', 'f')}"
    return jacobian_f


def hessian(f: Callable[..., Any], argnums: Argnums = 0, vectorize: bool = True) -> Callable[..., Any]:
    """The Hessian of a scalar `f`: the forward-mode Jacobian of its reverse-mode gradient,
    of shape x.shape + x.shape (nested tuples H[i][j] for a tuple `argnums`). With
    `vectorize=True` every Hessian-vector product (forward over reverse) runs in one batched
    pass, `vmap` over the identity's columns; `vectorize=False` loops over them.

    Example:
        >>> hessian(lambda x: (x ** 3).sum())(np.array([1.0, 2.0]))  # diag(6 x)
    """
    return jacobian(grad(f, argnums), argnums, mode="fwd", vectorize=vectorize)


def hvp(f: Callable[..., Any], primals: Any, tangents: Any) -> Any:
    """The Hessian-vector product H(x) v of a scalar `f`, forward-over-reverse: one JVP of the
    gradient, never the full Hessian (cost: a few evaluations of f, whatever the size of x).

    `primals` and `tangents` are one array/Tensor each, or equal-length tuples (then f takes
    several arguments and the result is a tuple).

    Example:
        >>> hvp(lambda x: (x ** 3).sum(), np.array([1.0, 2.0]), np.array([1.0, 1.0]))
        array([ 6., 12.])
    """
    primal_tuple, is_tuple = _as_tuple(primals)
    tangent_tuple, _ = _as_tuple(tangents)
    nums = tuple(range(len(primal_tuple))) if is_tuple else 0
    _, product = jvp(grad(f, nums), primal_tuple, tangent_tuple)
    return product


# ---------------------------------------------------------------- helpers
class _Nested:
    """Marks that a transform is evaluating the user's function (so inner transforms record)."""

    def __enter__(self) -> None:
        nesting.depth += 1

    def __exit__(self, *exc: Any) -> None:
        nesting.depth -= 1


def _argnums(argnums: Argnums, n_args: int, op: str) -> Tuple[tuple, bool]:
    single = isinstance(argnums, (int, np.integer))
    nums = (int(argnums),) if single else tuple(int(a) for a in argnums)
    if not nums:
        raise ValueError(f"{op}: argnums is empty; name at least one argument to differentiate")
    for a in nums:
        if not -n_args <= a < n_args:
            raise ValueError(f"{op}: argnums {a} is out of range for a call with {n_args} "
                             "positional argument(s)")
    return tuple(a % n_args for a in nums), single


def _differentiable_args(args: Sequence[Any], nums: tuple, op: str) -> Tuple[list, list, bool]:
    """The call's arguments with those in `nums` replaced by fresh Tensors that require grad."""
    call_args = list(args)
    xs = []
    tensors_in = False
    for i in nums:
        x = args[i]
        tensors_in = tensors_in or isinstance(x, Tensor)
        data = _float_argument(x, i, op)
        if isinstance(x, Tensor) and (x.requires_grad or has_live_tangent(x) or isinstance(x, Batched)):
            # a fresh node linked to x: outer transforms still see through it, and an argument
            # passed twice gets two separate partial derivatives (a batched one stays batched)
            with engine.enable_grad():
                leaf = P.reshape(x, shape=x.shape)
            leaf.requires_grad = True
        else:
            leaf = Tensor._wrap(data)
            leaf.requires_grad = True
        call_args[i] = leaf
        xs.append(leaf)
    return call_args, xs, tensors_in


def _float_argument(x: Any, i: int, op: str) -> np.ndarray:
    """The array of argument i, refused unless it is floating-point."""
    data = x.data if isinstance(x, Tensor) else np.asarray(x)
    if data.dtype.kind != "f":
        raise TypeError(f"{op}: argument {i} has dtype {data.dtype}; only floating-point "
                        "arguments can be differentiated (convert with .astype(np.float64))")
    return data


def _check_scalar(out: Any, op: str) -> None:
    if isinstance(out, (tuple, list)):
        raise TypeError(f"{op}: f must return one scalar, got a {type(out).__name__} of "
                        f"{len(out)}; use jacobian or vjp for several outputs, or has_aux=True")
    size = out.size if isinstance(out, Tensor) else np.size(out)
    if size != 1:
        shape = out.shape if isinstance(out, Tensor) else np.shape(out)
        raise ValueError(f"{op}: f must return a scalar (one element) to have a gradient, got shape "
                         f"{shape}; reduce it first (e.g. .sum()), or use jacobian / vjp")


def _of_some(f: Callable[..., Any], args: Sequence[Any], nums: tuple) -> Callable[..., Any]:
    """f as a function of args[nums] only, the other arguments fixed at their values in args."""
    def partial(*xs: Any) -> Any:
        full = list(args)
        for i, x in zip(nums, xs):
            full[i] = x
        return f(*full)
    return partial


def _pullback(f: Callable[..., Any], args: Sequence[Any], nums: tuple) -> Tuple[tuple, Callable, bool]:
    """f evaluated at args as a function of args[nums] only: (outputs, vjp_fn, outputs were a tuple)."""
    out, vjp_fn = _vjp(_of_some(f, args, nums), [args[i] for i in nums], "jacobian")
    outs, out_tuple = _as_tuple(out)
    return outs, vjp_fn, out_tuple


def _jacobian_rev(outs: tuple, vjp_fn: Callable, out_tuple: bool, args: Sequence[Any],
                  nums: tuple) -> Tuple[list, bool]:
    """One VJP per output element: row k of J is e_k^T J."""
    table = []
    shapes = [_shape(o) for o in outs]
    for k, shape in enumerate(shapes):
        dtype = _dtype(outs[k])
        rows = [[] for _ in nums]
        for j in range(int(np.prod(shape, dtype=np.int64))):
            cts = []
            for kk, s in enumerate(shapes):
                c = np.zeros(s, dtype=_dtype(outs[kk]))
                if kk == k:
                    c.reshape(-1)[j] = 1
                cts.append(c)
            pulled = vjp_fn(tuple(cts) if out_tuple else cts[0])
            for a, row in zip(rows, pulled):
                a.append(row)
        table.append([_assemble(r, shape, _shape(args[i]), dtype, rows_first=True)
                      for r, i in zip(rows, nums)])
    return table, out_tuple


def _jacobian_fwd(f: Callable[..., Any], args: Sequence[Any], nums: tuple) -> Tuple[list, bool]:
    """One JVP per input element: column k of J is J e_k."""
    partial = _of_some(f, args, nums)
    for i in nums:  # an empty integer argument would never reach jvp's own check
        _float_argument(args[i], i, "jacobian")
    primals = [args[i] for i in nums]
    columns = []  # columns[a] = list over input elements of tuples over outputs
    out_shapes = None
    out_tuple = False
    for a, p in enumerate(primals):
        shape = _shape(p)
        cols = []
        for j in range(int(np.prod(shape, dtype=np.int64))):
            tangents = [np.zeros(_shape(q), dtype=_dtype(q)) for q in primals]
            tangents[a].reshape(-1)[j] = 1
            out, dout = jvp_for(partial, tuple(primals), tuple(tangents), "jacobian")
            douts, out_tuple = _as_tuple(dout)
            if out_shapes is None:
                outs, _ = _as_tuple(out)
                out_shapes = [(_shape(o), _dtype(o)) for o in outs]
            cols.append(douts)
        if out_shapes is None:  # an empty input: evaluate once for the output shapes
            outs, out_tuple = _as_tuple(partial(*primals))
            for k, o in enumerate(outs):
                check_float_output(o, "jacobian", f"output {k}")
            out_shapes = [(_shape(o), _dtype(o)) for o in outs]
        columns.append((cols, shape))
    table = []
    for k, (oshape, dtype) in enumerate(out_shapes):
        table.append([_assemble([c[k] for c in cols], oshape, ishape, dtype, rows_first=False)
                      for cols, ishape in columns])
    return table, out_tuple


def _jacobian_rev_vmap(outs: tuple, vjp_fn: Callable, out_tuple: bool, args: Sequence[Any],
                       nums: tuple) -> Tuple[list, bool]:
    """All rows of J at once: the VJP vmapped over the rows of the identity (e_k^T J for every k)."""
    from .vmap import vmap
    shapes = [_shape(o) for o in outs]
    table = []
    in_shapes = [_shape(args[i]) for i in nums]
    for k, shape in enumerate(shapes):
        m = int(np.prod(shape, dtype=np.int64))
        if m == 0:
            table.append([np.zeros(tuple(shape) + tuple(s), _dtype(outs[k])) for s in in_shapes])
            continue
        cts = [np.eye(m, dtype=_dtype(o)).reshape((m,) + tuple(s)) if kk == k else np.zeros(s, _dtype(o))
               for kk, (o, s) in enumerate(zip(outs, shapes))]

        def pull(*cotangents: Any) -> tuple:
            return vjp_fn(tuple(cotangents) if out_tuple else cotangents[0])

        rows = vmap(pull, in_axes=tuple(0 if kk == k else None for kk in range(len(outs))))(*cts)
        table.append([_reshape(r, tuple(shape) + tuple(s)) for r, s in zip(rows, in_shapes)])
    return table, out_tuple


def _jacobian_fwd_vmap(f: Callable[..., Any], args: Sequence[Any], nums: tuple) -> Tuple[list, bool]:
    """All columns of J at once: the JVP vmapped over the columns of the identity (J e_k for every k)."""
    from .vmap import vmap
    partial = _of_some(f, args, nums)
    for i in nums:
        _float_argument(args[i], i, "jacobian")
    primals = tuple(args[i] for i in nums)
    outs, out_tuple = _as_tuple(partial(*primals))
    for k, o in enumerate(outs):
        check_float_output(o, "jacobian", f"output {k}")
    out_shapes = [_shape(o) for o in outs]
    columns = []  # per input: per output, out_shape + in_shape
    for a, p in enumerate(primals):
        shape = _shape(p)
        n = int(np.prod(shape, dtype=np.int64))
        if n == 0:
            columns.append([np.zeros(tuple(s) + tuple(shape), _dtype(o)) for o, s in zip(outs, out_shapes)])
            continue
        tangents = [np.eye(n, dtype=_dtype(q)).reshape((n,) + tuple(shape)) if b == a
                    else np.zeros(_shape(q), _dtype(q)) for b, q in enumerate(primals)]

        def push(*ts: Any) -> tuple:
            return _as_tuple(jvp_for(partial, primals, ts, "jacobian")[1])[0]

        cols = vmap(push, in_axes=tuple(0 if b == a else None for b in range(len(primals))),
                    out_axes=-1)(*tangents)
        columns.append([_reshape(c, tuple(s) + tuple(shape)) for c, s in zip(cols, out_shapes)])
    table = [[columns[a][k] for a in range(len(primals))] for k in range(len(outs))]
    return table, out_tuple


def _reshape(x: Any, shape: tuple) -> Any:
    return F.reshape(x, shape) if isinstance(x, Tensor) else np.reshape(x, shape)


def _assemble(pieces: list, out_shape: tuple, in_shape: tuple, dtype: Any, rows_first: bool) -> Any:
    """Stack VJP rows (each of in_shape) or JVP columns (each of out_shape) into out_shape + in_shape."""
    full = tuple(out_shape) + tuple(in_shape)
    if not pieces:
        return np.zeros(full, dtype=dtype)
    if any(isinstance(p, Tensor) for p in pieces):
        flat = [F.reshape(F.as_tensor(p), (-1,)) for p in pieces]
        stacked = F.stack(flat, axis=0 if rows_first else 1)
        return F.reshape(stacked, full)
    flat = [np.reshape(p, -1) for p in pieces]
    return np.stack(flat, axis=0 if rows_first else 1).reshape(full)


def _shape(x: Any) -> tuple:
    return x.shape if isinstance(x, Tensor) else np.shape(x)


def _dtype(x: Any) -> Any:
    if isinstance(x, Tensor):
        return x.dtype
    dtype = np.asarray(x).dtype
    return dtype if dtype.kind == "f" else np.float64
