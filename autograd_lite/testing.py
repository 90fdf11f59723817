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
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp


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
