"""Hypothesis strategies for property-based tests of differentiable code.

Needs the `test` extra (hypothesis). Example:

    from hypothesis import given
    from autograd_lite.testing import arrays, shapes
    @given(arrays(shapes()))
    def test_my_op(x): assert gradcheck(my_op, x)
"""
from __future__ import annotations

from typing import Any, Tuple

import numpy as np

try:
    from hypothesis import strategies as st
    from hypothesis.extra import numpy as hnp
except ImportError:
    raise ImportError("autograd_lite.testing needs hypothesis, which is not installed: "
                      "pip install 'autograd-lite[test]'") from None


def shapes(min_dims: int = 0, max_dims: int = 3, min_side: int = 1, max_side: int = 4) -> st.SearchStrategy:
    """Array shapes, including 0-d () and size-1 axes."""
    return hnp.array_shapes(min_dims=min_dims, max_dims=max_dims, min_side=min_side, max_side=max_side)


def broadcastable_shapes(num_shapes: int = 2, min_dims: int = 0, max_dims: int = 3,
                         max_side: int = 4) -> st.SearchStrategy:
    """Tuples of shapes that broadcast together (stretched size-1 axes, missing leading axes)."""
    return hnp.mutually_broadcastable_shapes(num_shapes=num_shapes, min_dims=min_dims,
                                             max_dims=max_dims, max_side=max_side).map(
        lambda b: tuple(b.input_shapes))


def arrays(shape: Any, dtype: Any = np.float64, low: float = -3.0, high: float = 3.0,
           away_from: float | None = None, margin: float = 0.05, unique: bool = False) -> st.SearchStrategy:
    """Well-conditioned float arrays: values in [low, high], optionally at least `margin`
    away from the kink `away_from` (e.g. 0 for abs/relu), optionally all distinct (max/min).
    `shape` is a shape or a strategy of shapes."""
    elements = st.floats(low, high, allow_nan=False, allow_infinity=False, width=64)
    if away_from is not None:
        elements = elements.filter(lambda v: abs(v - away_from) >= margin)
    shape_strategy = shape if isinstance(shape, st.SearchStrategy) else st.just(tuple(shape))
    return shape_strategy.flatmap(
        lambda s: hnp.arrays(np.float64, s, elements=elements, unique=unique)).map(
        lambda a: a.astype(dtype))


def positive_arrays(shape: Any, low: float = 0.1, high: float = 4.0, dtype: Any = np.float64) -> st.SearchStrategy:
    """Arrays with values in [low, high], for log, sqrt and division."""
    return arrays(shape, dtype=dtype, low=low, high=high)


def spread_arrays(shape: Any, low: float = -3.0, high: float = 3.0, gap: float = 1e-3,
                  dtype: Any = np.float64) -> st.SearchStrategy:
    """Arrays whose elements differ pairwise by at least `gap` (no ties for max/min/maximum)."""
    def spread(a: np.ndarray) -> np.ndarray:
        flat = a.reshape(-1)
        order = np.argsort(flat, kind="stable")
        ranks = np.empty_like(order)
        ranks[order] = np.arange(flat.size)
        return (flat + ranks * gap).reshape(a.shape).astype(dtype)
    return arrays(shape, low=low, high=high).map(spread)


def index_pairs(shape: Tuple[int, ...]) -> st.SearchStrategy:
    """Integer index arrays (with repeats) into the first axis of `shape`."""
    n = shape[0]
    return hnp.arrays(np.intp, st.integers(1, 6), elements=st.integers(-n, n - 1))


# ---------------------------------------------------------------- random programs
def _broadcasts(a: tuple, b: tuple) -> bool:
    try:
        np.broadcast_shapes(a, b)
        return True
    except ValueError:
        return False


class RandomProgram:
    """A random expression graph over the primitive table, replayable on any inputs.

    `inputs` are float64 arrays; calling the program on Tensors (or arrays) replays the
    recorded instructions. Intermediate values may be reused, so the graph is a DAG.
    """

    def __init__(self, inputs: list, steps: list) -> None:
        self.inputs = inputs
        self.steps = steps            # (name, operand indices, options)

    def __call__(self, *xs: Any) -> Any:
        from . import functions as F
        values = list(xs)
        ops = _operations()
        for name, operands, options in self.steps:
            values.append(ops[name][1](F, *[values[i] for i in operands], **options))
        return values[-1]

    def __repr__(self) -> str:
        n = len(self.inputs)
        lines = [f"inputs: {[a.shape for a in self.inputs]}"]
        for k, (name, operands, options) in enumerate(self.steps):
            lines.append(f"  v{n + k} = {name}({', '.join(f'v{i}' for i in operands)}"
                         + (f", {options}" if options else "") + ")")
        return "RandomProgram(\n" + "\n".join(lines) + ")"


def _last_axis(shape: tuple) -> dict:
    return {"axis": len(shape) - 1}


# name -> (number of operands, replay(F, *operands, **options), options(draw, shapes) or None when
# the operand shapes do not allow the op). Each keeps values moderate so that finite differences
# stay meaningful over 50 steps; kinks (relu, abs, max, clip) are met at random points only.
_OPS = {
    "add": (2, lambda F, a, b: a + b, None),
    "subtract": (2, lambda F, a, b: a - b, None),
    "multiply": (2, lambda F, a, b: a * F.tanh(b), None),
    "divide": (2, lambda F, a, b: a / (1.5 + F.sin(b)), None),
    "maximum": (2, lambda F, a, b: F.maximum(a, b), None),
    "minimum": (2, lambda F, a, b: F.minimum(a, b), None),
    "where": (2, lambda F, a, b: F.where(np.asarray(a) > np.asarray(b), a, b * 0.5), None),
    "power": (2, lambda F, a, b: F.power(F.sigmoid(a) + 0.5, F.tanh(b)), None),
    "power_scalar": (1, lambda F, a, p: (F.sigmoid(a) + 0.5) ** p, None),
    "negative": (1, lambda F, a: -a, None),
    "absolute": (1, lambda F, a: F.absolute(a), None),
    "sqrt": (1, lambda F, a: F.sqrt(a * a + 1), None),
    "exp": (1, lambda F, a: F.exp(F.tanh(a)), None),
    "log": (1, lambda F, a: F.log(F.sigmoid(a)), None),
    "log1p": (1, lambda F, a: F.log1p(a * a), None),
    "expm1": (1, lambda F, a: F.expm1(F.sin(a)), None),
    "sin": (1, lambda F, a: F.sin(a), None),
    "cos": (1, lambda F, a: F.cos(a), None),
    "tanh": (1, lambda F, a: F.tanh(a), None),
    "sigmoid": (1, lambda F, a: F.sigmoid(a), None),
    "relu": (1, lambda F, a: F.relu(a), None),
    "softplus": (1, lambda F, a: F.softplus(a), None),
    "clip": (1, lambda F, a: F.clip(a, -1.0, 1.0), None),
    "sum": (1, lambda F, a, axis: F.tanh(F.sum(a, axis=axis, keepdims=True)), None),
    "mean": (1, lambda F, a, axis: F.mean(a, axis=axis, keepdims=True), None),
    "max": (1, lambda F, a, axis: F.max(a, axis=axis, keepdims=True), None),
    "min": (1, lambda F, a, axis: F.min(a, axis=axis), None),
    "logsumexp": (1, lambda F, a, axis: F.logsumexp(a, axis=axis, keepdims=True), None),
    "var": (1, lambda F, a, axis: F.var(a, axis=axis), None),
    "softmax": (1, lambda F, a, axis: F.softmax(a, axis=axis), None),
    "log_softmax": (1, lambda F, a, axis: F.log_softmax(a, axis=axis), None),
    "reshape": (1, lambda F, a: F.reshape(a, np.shape(a)[::-1]), None),
    "transpose": (1, lambda F, a: F.transpose(a), None),
    "broadcast_to": (1, lambda F, a: F.broadcast_to(a, (2,) + np.shape(a)), None),
    "getitem": (1, lambda F, a: a[np.array([0, -1, 0])], None),
    "concatenate": (2, lambda F, a, b: F.concatenate([a, b], axis=0), None),
    "matmul": (2, lambda F, a, b: F.matmul(a, F.tanh(b)), None),
}


def _operations() -> dict:
    """_OPS, and every other elementwise primitive of the table whose test domain is an interval
    without kinks inside: its operands squashed into that interval (low + (high - low) sigmoid(v)),
    so a primitive declared later is fuzzed too."""
    from .declaration import PRIMITIVES, Values
    ops = dict(_OPS)
    for name, prim in PRIMITIVES.items():
        domain = prim.domain
        if name in ops or not isinstance(domain, tuple) or not all(
                isinstance(v, Values) and not v.integer and
                not any(v.low < point < v.high for point in v.away_from) for v in domain):
            continue
        ops[name] = (len(domain), _squashed(prim, domain), None)
    return ops


def _squashed(prim: Any, domain: tuple) -> Any:
    def replay(F: Any, *operands: Any) -> Any:
        return prim(*[v.low + (v.high - v.low) * F.sigmoid(x) for v, x in zip(domain, operands)])
    return replay


def _allowed(name: str, shapes: list) -> bool:
    if name in ("sum", "mean", "max", "min", "logsumexp", "var", "softmax", "log_softmax",
                "getitem", "transpose"):
        return len(shapes[0]) >= 1
    if name == "broadcast_to":
        return len(shapes[0]) <= 3
    if name == "concatenate":
        a, b = shapes
        return len(a) >= 1 and len(a) == len(b) and a[1:] == b[1:]
    if name == "matmul":
        a, b = shapes
        return len(a) >= 1 and len(b) >= 1 and a[-1] == (b[0] if len(b) == 1 else b[-2]) and (
            len(a) < 2 or len(b) < 2 or _broadcasts(a[:-2], b[:-2]))
    if len(shapes) == 2:
        return _broadcasts(*shapes)
    return True


@st.composite
def programs(draw: Any, max_steps: int = 50, max_inputs: int = 3) -> RandomProgram:
    """Random expression graphs from the primitive table: mixed shapes with broadcasting,
    reused subexpressions, chains of up to `max_steps` operations. Input values are drawn
    uniformly in [-2, 2] from a seed (so kinks are met only at random points)."""
    n_inputs = draw(st.integers(1, max_inputs))
    input_shapes = draw(broadcastable_shapes(n_inputs, min_dims=0, max_dims=3, max_side=3))
    rng = np.random.default_rng(draw(st.integers(0, 2 ** 32 - 1)))
    inputs = [rng.uniform(-2, 2, s) for s in input_shapes]
    program = RandomProgram(inputs, [])
    values = [np.asarray(a) for a in inputs]
    ops = _operations()
    names = sorted(ops)
    for _ in range(draw(st.integers(1, max_steps))):
        name = draw(st.sampled_from(names))
        arity = ops[name][0]
        # mostly extend the latest value (deep chains), sometimes reuse an earlier one
        first = draw(st.one_of(st.just(len(values) - 1), st.integers(0, len(values) - 1)))
        operands = [first] + [draw(st.integers(0, len(values) - 1)) for _ in range(arity - 1)]
        shapes = [values[i].shape for i in operands]
        if not _allowed(name, shapes):
            continue
        options = {}
        if name in ("sum", "mean", "max", "min", "logsumexp", "var", "softmax", "log_softmax"):
            options["axis"] = draw(st.integers(-len(shapes[0]), len(shapes[0]) - 1))
        if name == "power_scalar":
            options["p"] = draw(st.sampled_from([2, 3, 0.5, -1, 1.5]))
        from . import functions as F
        out = ops[name][1](F, *[values[i] for i in operands], **options)
        out = np.asarray(out.data)
        if out.size == 0 or out.size > 200 or not np.all(np.isfinite(out)):
            continue
        program.steps.append((name, operands, options))
        values.append(out)
    if not program.steps:
        program.steps.append(("sin", [0], {}))
    return program


class Cases:
    """What a primitive's test domain draws its inputs with (`Primitive.domain`, in the table):
    shapes, well-conditioned arrays, axes and choices, from hypothesis' `st.data()`.

    Keeps hypothesis out of the table: a domain is a function `domain(c) -> (fn, inputs)` that
    calls only these methods, where `fn(*tensors)` applies the primitive to the inputs.
    """

    def __init__(self, data: Any) -> None:
        self.data = data

    def shape(self, min_dims: int = 0, max_dims: int = 3, min_side: int = 1, max_side: int = 4) -> tuple:
        """A shape, including 0-d () and size-1 axes."""
        return self.data.draw(shapes(min_dims, max_dims, min_side, max_side))

    def shapes(self, n: int) -> tuple:
        """n shapes that broadcast together."""
        return self.data.draw(broadcastable_shapes(n))

    def array(self, shape: tuple, low: float = -3.0, high: float = 3.0, away_from: Tuple[float, ...] = (),
              margin: float = 0.05, spread: bool = False, integer: bool = False) -> np.ndarray:
        """float64 values in [low, high]: at least `margin` from each point of `away_from`
        (kinks, poles), pairwise apart when `spread` (no ties), whole numbers when `integer`."""
        if spread:
            return self.data.draw(spread_arrays(shape, low, high, gap=0.05))
        if integer:
            elements = st.integers(int(np.ceil(low)), int(np.floor(high))).map(float)
            return self.data.draw(hnp.arrays(np.float64, shape, elements=elements))
        x = self.data.draw(arrays(shape, low=low, high=high))
        for point in away_from:
            near = np.abs(x - point) < margin
            x = np.where(near, point + np.where(x >= point, 2, -2) * margin, x)
        return x

    def integer(self, low: int, high: int) -> int:
        return self.data.draw(st.integers(low, high))

    def boolean(self) -> bool:
        return self.data.draw(st.booleans())

    def choice(self, options: Any) -> Any:
        return self.data.draw(st.sampled_from(list(options)))

    def permutation(self, n: int) -> tuple:
        return tuple(self.data.draw(st.permutations(range(n))))

    def axis_argument(self, ndim: int) -> Any:
        """An `axis=` argument for a reduction over a tensor of `ndim` axes: None, an int or a tuple."""
        if ndim == 0:
            return self.choice([None, 0, -1])
        return self.data.draw(st.one_of(
            st.none(), st.integers(-ndim, ndim - 1),
            st.lists(st.integers(0, ndim - 1), min_size=1, max_size=ndim, unique=True).map(tuple)))


def draw_case(prim: Any, data: Any) -> Tuple[Any, list]:
    """(fn, inputs) from a primitive's declared test domain: a function of `Cases`, or, for an
    elementwise op, the `Values` of each input (on shapes that broadcast together)."""
    c = Cases(data)
    if callable(prim.domain):
        fn, inputs = prim.domain(c)
        return fn, list(inputs)
    values = prim.domain
    shapes_ = c.shapes(len(values))
    inputs = [c.array(s, v.low, v.high, v.away_from, v.margin, integer=v.integer)
              for s, v in zip(shapes_, values)]
    return (lambda *ts: prim(*ts)), inputs


# ---------------------------------------------------------------- certifying a primitive
def check_primitive(prim: Any, max_examples: int = 50, shrink: bool = True) -> None:
    """Certify a primitive, a built-in one or your own, on inputs drawn from its declared domain
    (`prim.domain`: `Values` per input of an elementwise op, or a function of `Cases`).

    Runs every check in `PRIMITIVE_CHECKS`: the VJP against finite differences (float64), the JVP
    against finite differences, the JVP against the VJP (<v, J u> = <J^T v, u>), both second
    orders (forward over forward, reverse over reverse), float32 kept, any fast path
    (`defvjp_joint`, `defvjp_into`) against the defining rules, and the batching rule
    (`defbatch`, for `vmap`) against a loop over examples. hypothesis shrinks a failure to
    the smallest failing input it can find and reports it with the AssertionError (`shrink=False`
    reports the first failing input at once: shrinking can take tens of seconds).

    Example:
        >>> cube = primitive(lambda x: x ** 3, name="cube")
        >>> cube.defvjp(lambda g, ans, x: g * 3 * x ** 2)
        >>> cube.defjvp(lambda t, ans, x: t * 3 * x ** 2)
        >>> cube.domain = (Values(-2.0, 2.0),)
        >>> check_primitive(cube)
    """
    from hypothesis import HealthCheck, Phase, given, settings

    if prim.domain is None:
        raise ValueError(f"check_primitive: '{prim.name}' has no test domain; set prim.domain to one "
                         "Values(low, high) per input, or to a function of a Cases drawer")

    phases = [p for p in Phase if p is not Phase.explain and (shrink or p is not Phase.shrink)]

    @settings(max_examples=max_examples, deadline=None, database=None, report_multiple_bugs=False,
              phases=phases, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(data=st.data())
    def certify(data: Any) -> None:
        for name in sorted(PRIMITIVE_CHECKS):
            PRIMITIVE_CHECKS[name](prim, data)

    certify()


def _tolerances(prim: Any) -> Tuple[float, float, float]:
    return tuple(prim.check.get(k, d) for k, d in (("eps", 1e-6), ("rtol", 1e-5), ("atol", 1e-7)))


def _finite_difference(fn: Any, inputs: list, directions: list, eps: float) -> np.ndarray:
    plus = fn(*[x + eps * u for x, u in zip(inputs, directions)])
    minus = fn(*[x - eps * u for x, u in zip(inputs, directions)])
    return (np.asarray(plus, dtype=np.float64) - np.asarray(minus, dtype=np.float64)) / (2 * eps)


def _seeded(data: Any) -> np.random.Generator:
    return np.random.default_rng(data.draw(st.integers(0, 2 ** 32 - 1), label="seed"))


def check_vjp(prim: Any, data: Any) -> None:
    """The VJP rules against central finite differences, in float64."""
    from .gradcheck import gradcheck
    fn, inputs = draw_case(prim, data)
    options = {"atol": 1e-5, "rtol": 1e-4,
               **{k: v for k, v in prim.check.items() if k in ("eps", "atol", "rtol")}}
    assert gradcheck(fn, *inputs, **options)


def check_jvp(prim: Any, data: Any) -> None:
    """The JVP rules against central finite differences, in float64."""
    from .forward import jvp
    fn, inputs = draw_case(prim, data)
    eps, rtol, atol = _tolerances(prim)
    tangents = [_seeded(data).standard_normal(np.shape(x)) for x in inputs]
    value, tangent = jvp(fn, tuple(inputs), tuple(tangents))
    np.testing.assert_allclose(value, np.asarray(fn(*inputs)), rtol=1e-12, atol=0)
    assert np.shape(tangent) == np.shape(value), f"{prim.name}: tangent shape {np.shape(tangent)}"
    np.testing.assert_allclose(tangent, _finite_difference(fn, inputs, tangents, eps), rtol=rtol, atol=atol)


def check_transpose_identity(prim: Any, data: Any) -> None:
    """<v, J u> == <J^T v, u>: the forward and reverse rules describe the same linear map."""
    from .forward import jvp
    from .functional import vjp
    fn, inputs = draw_case(prim, data)
    rng = _seeded(data)
    us = tuple(rng.standard_normal(np.shape(x)) for x in inputs)
    value, j_u = jvp(fn, tuple(inputs), us)
    v = rng.standard_normal(np.shape(value)).astype(np.asarray(value).dtype)
    jt_v = vjp(fn, *inputs)[1](v)
    left = float(np.sum(np.asarray(j_u, dtype=np.float64) * v))
    right = sum(float(np.sum(np.asarray(g, dtype=np.float64) * u)) for g, u in zip(jt_v, us))
    scale = 1 + abs(left) + sum(float(np.sum(np.abs(g))) for g in jt_v)
    assert abs(left - right) <= 1e-5 * scale, f"{prim.name}: <v, J u> = {left}, <J^T v, u> = {right}"


def check_forward_over_forward(prim: Any, data: Any) -> None:
    """jvp of jvp: under an outer trace the rules run on Tensors; they must give the same first
    derivative, and a second derivative that matches finite differences of the first."""
    from .forward import jvp
    fn, inputs = draw_case(prim, data)
    rng = _seeded(data)
    us = tuple(rng.standard_normal(np.shape(x)) for x in inputs)
    ws = tuple(rng.standard_normal(np.shape(x)) for x in inputs)

    def first(*xs: Any) -> Any:
        return jvp(fn, xs, us)[1]

    j_u, second = jvp(first, tuple(inputs), ws)
    np.testing.assert_allclose(j_u, first(*inputs), rtol=1e-12, atol=1e-12)
    eps, rtol, atol = _tolerances(prim)
    expected = _finite_difference(first, inputs, list(ws), 10 * eps)
    np.testing.assert_allclose(second, expected, rtol=10 * rtol, atol=100 * atol)


def check_reverse_over_reverse(prim: Any, data: Any) -> None:
    """grad of grad (the VJP rules recorded under create_graph=True) against finite differences
    of the gradient."""
    from .engine import grad
    from .tensor import Tensor
    fn, inputs = draw_case(prim, data)
    rng = _seeded(data)
    v = None

    def gradient(*xs: Any) -> tuple:
        nonlocal v
        leaves = [Tensor(x, requires_grad=True) for x in xs]
        out = fn(*leaves)
        if v is None:
            v = rng.standard_normal(out.shape)
        if not out.requires_grad:
            return [Tensor(np.zeros_like(x)) for x in xs], leaves
        return grad((out * v).sum(), leaves, create_graph=True, allow_unused=True), leaves

    grads, leaves = gradient(*inputs)
    ws = [rng.standard_normal(np.shape(x)) for x in inputs]
    us = [rng.standard_normal(np.shape(x)) for x in inputs]
    total = sum((g * w).sum() for g, w in zip(grads, ws) if g is not None and g.requires_grad)
    if isinstance(total, Tensor):
        second = grad(total, leaves, allow_unused=True)
        measured = sum(float(np.sum(s.data * u)) for s, u in zip(second, us) if s is not None)
    else:
        # no recorded gradient depends on the inputs: right for a linear op, and what a rule that
        # computes on raw arrays would give too; the finite differences below tell them apart
        measured = 0.0

    def directional(*xs: Any) -> float:
        gs, _ = gradient(*xs)
        return sum(float(np.sum(g.data * w)) for g, w in zip(gs, ws) if g is not None)

    eps = 10 * prim.check.get("eps", 1e-6)
    expected = (directional(*[x + eps * u for x, u in zip(inputs, us)]) -
                directional(*[x - eps * u for x, u in zip(inputs, us)])) / (2 * eps)
    assert abs(measured - expected) <= 1e-4 * (1 + abs(expected)), \
        f"{prim.name}: second derivative {measured}, finite differences of the first {expected}"


def check_float32(prim: Any, data: Any) -> None:
    """float32 inputs give a float32 output and float32 gradients (unless the op's output dtype
    is its parameter: prim.check['keeps_float32'] = False)."""
    from .tensor import Tensor
    fn, inputs = draw_case(prim, data)
    wide = fn(*[Tensor(x) for x in inputs])
    leaves = [Tensor(x.astype(np.float32), requires_grad=True) for x in inputs]
    out = fn(*leaves)
    if wide.dtype == np.float64 and prim.check.get("keeps_float32", True):
        assert out.dtype == np.float32, f"{prim.name}: float32 inputs gave {out.dtype}"
    if out.requires_grad:
        (out.astype(np.float64) * 1.0).sum().backward()
        for leaf in leaves:
            assert leaf.grad is None or leaf.grad.dtype == np.float32, prim.name


def check_fast_paths(prim: Any, data: Any) -> None:
    """`defvjp_joint` and `defvjp_into` rules against the per-input rules that define them, at
    every application of the primitive in a drawn case."""
    if prim.vjp_joint is None and prim.vjp_into is None:
        return
    from .engine import unbroadcast
    from .tensor import Tensor
    fn, inputs = draw_case(prim, data)
    rng = _seeded(data)
    out = fn(*[Tensor(x, requires_grad=True) for x in inputs])
    for node in _nodes_of(out, prim):
        arrays, params, ans = node._arrays, node._params, node.data
        g = rng.standard_normal(ans.shape).astype(ans.dtype)
        wanted = tuple(node._needs)
        rules = [(i, _rule(prim, i)) for i in range(len(arrays)) if wanted[i]]
        defined = {i: unbroadcast(np.asarray(rule(g, ans, *arrays, **_argnum(prim, i), **params)),
                                  np.shape(arrays[i])) for i, rule in rules}
        if prim.vjp_joint is not None:
            joint = prim.vjp_joint(g, ans, *arrays, wanted=wanted, **params)
            for i in defined:
                np.testing.assert_allclose(unbroadcast(np.asarray(joint[i]), np.shape(arrays[i])), defined[i],
                                           rtol=1e-10, atol=1e-12, err_msg=f"{prim.name}: joint rule, input {i}")
        if prim.vjp_into is not None:
            for i in defined:
                start = rng.standard_normal(np.shape(arrays[i])).astype(np.result_type(arrays[i]))
                total = start.copy()
                prim.vjp_into(total, g, ans, *arrays, argnum=i, **params)
                np.testing.assert_allclose(total, start + defined[i], rtol=1e-10, atol=1e-12,
                                           err_msg=f"{prim.name}: in-place rule, input {i}")


def check_batching(prim: Any, data: Any) -> None:
    """The batching rule against the loop it replaces: a drawn case made into a batch of 1 to 3
    examples (the drawn inputs with their elements shuffled, so each stays in the domain), each
    input batched or not along a drawn axis; `vmap` of the case must equal the stack of the
    per-example results to 1e-12 (relative to their size), in shape and dtype. Skipped for a
    primitive without a batching rule (vmap then runs that very loop)."""
    if prim.batch is None:
        return
    from .tensor import Tensor
    from .vmap import vmap
    fn, inputs = draw_case(prim, data)
    rng = _seeded(data)
    n = data.draw(st.integers(1, 3), label="batch size")
    batched = [data.draw(st.booleans(), label=f"input {i} batched") for i in range(len(inputs))]
    if not any(batched):
        batched[0] = True
    axes = tuple(data.draw(st.integers(0, np.ndim(x)), label=f"input {i} batch axis") if b else None
                 for i, (x, b) in enumerate(zip(inputs, batched)))
    examples = [list(inputs)] + [
        [_shuffled(x, rng) if b else x for x, b in zip(inputs, batched)] for _ in range(n - 1)]
    stacked = [np.stack([np.asarray(e[i]) for e in examples], axis=a) if a is not None else x
               for i, (x, a) in enumerate(zip(inputs, axes))]
    want = np.stack([np.asarray(fn(*[Tensor(x) for x in e]).data) for e in examples])
    got = vmap(fn, in_axes=axes)(*[Tensor(x) for x in stacked])
    got = np.asarray(got.data if isinstance(got, Tensor) else got)
    assert got.shape == want.shape and got.dtype == want.dtype, (
        f"{prim.name}: vmap gave {got.dtype}{got.shape}, the loop {want.dtype}{want.shape} "
        f"(in_axes {axes})")
    scale = 1.0 + (float(np.max(np.abs(want))) if want.size and want.dtype.kind == "f" else 0.0)
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12 * scale,
                               err_msg=f"{prim.name}: batching rule against the loop, in_axes {axes}")


def _shuffled(x: Any, rng: np.random.Generator) -> Any:
    """x with its elements in another order (the same values: still inside the domain)."""
    x = np.asarray(x)
    return rng.permutation(x.reshape(-1)).reshape(x.shape)


def _nodes_of(out: Any, prim: Any) -> list:
    """The recorded applications of `prim` in the graph that made `out`."""
    found, seen, stack = [], set(), [out]
    while stack:
        t = stack.pop()
        if id(t) in seen or getattr(t, "_op", None) is None:
            continue
        seen.add(id(t))
        if t._op is prim:
            found.append(t)
        stack.extend(a for a in t._inputs if hasattr(a, "_op"))
    return found


def _rule(prim: Any, i: int) -> Any:
    return prim.vjps[0] if prim.variadic else prim.vjps[i]


def _argnum(prim: Any, i: int) -> dict:
    return {"argnum": i} if prim.variadic else {}


PRIMITIVE_CHECKS = {
    "vjp_matches_finite_differences": check_vjp,
    "jvp_matches_finite_differences": check_jvp,
    "transpose_identity_between_jvp_and_vjp": check_transpose_identity,
    "forward_over_forward_matches_finite_differences": check_forward_over_forward,
    "reverse_over_reverse_matches_finite_differences": check_reverse_over_reverse,
    "float32_stays_float32": check_float32,
    "fast_paths_match_the_defining_rules": check_fast_paths,
    "batching_rule_matches_a_loop": check_batching,
}
