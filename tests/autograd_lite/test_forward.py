"""Forward mode, primitive by primitive: every JVP rule in the table against finite differences,
and against its VJP rule through the transpose identity <v, J u> == <J^T v, u>.

`CASES` maps a primitive's name to a hypothesis strategy of `Case`s (a function of the
differentiable inputs that applies that primitive, and valid inputs for it). A new primitive
needs one entry here (the coverage test fails for a built-in primitive without one); fused
primitives (autograd_lite/fused.py) are tested as soon as they have an entry.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Tuple

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import autograd_lite as ag
from autograd_lite import engine
from autograd_lite import primitives as P
from autograd_lite.forward import jvp
from autograd_lite.functional import vjp
from autograd_lite.testing import arrays, broadcastable_shapes, positive_arrays, shapes, spread_arrays

try:  # fused kernels live beside the table; their primitives are tested when they have a case
    import autograd_lite.fused  # noqa: F401
except ImportError:
    pass


@dataclass
class Case:
    """`fn(*inputs)` applies one primitive; `inputs` are float64 arrays inside its domain."""
    fn: Callable[..., Any]
    inputs: Tuple[np.ndarray, ...]
    eps: float = 1e-6         # finite-difference step
    rtol: float = 1e-5
    atol: float = 1e-7
    extra: Dict[str, Any] = field(default_factory=dict)


CASES: Dict[str, st.SearchStrategy] = {}


def case(name: str):
    """Register a composite strategy of Cases for primitive `name`."""
    def register(builder):
        CASES[name] = st.composite(builder)()
        return builder
    return register


# ---------------------------------------------------------------- input helpers
def _away(x: np.ndarray, *kinks: float, margin: float = 0.05) -> np.ndarray:
    """Move values within `margin` of a kink by 2 margins (kinks are further apart than that)."""
    for k in kinks:
        if k is not None:
            x = np.where(np.abs(x - k) < margin, x + 2 * margin, x)
    return x


def _axes(draw, ndim: int):
    """None, or a sorted tuple of distinct axes (what functions.py hands the primitives)."""
    if ndim == 0 or draw(st.booleans()):
        return None
    return tuple(sorted(draw(st.sets(st.integers(0, ndim - 1), min_size=1, max_size=ndim))))


def _binary(name: str, left=arrays, right=arrays):
    def build(draw):
        sx, sy = draw(broadcastable_shapes(2))
        return Case(lambda x, y: P.PRIMITIVES[name](x, y), (draw(left(sx)), draw(right(sy))))
    case(name)(build)


def _unary(name: str, values=lambda s: arrays(s), **tolerances):
    def build(draw):
        return Case(lambda x: P.PRIMITIVES[name](x), (draw(values(shapes())),), **tolerances)
    case(name)(build)


# ---------------------------------------------------------------- the cases
_binary("add")
_binary("subtract")
_binary("multiply")
_binary("divide", right=lambda s: arrays(s, away_from=0.0, margin=0.5))
_binary("power", left=positive_arrays, right=lambda s: arrays(s, low=-2.0, high=2.0))

for _name in ("negative", "exp", "expm1", "sin", "cos", "tanh", "sigmoid", "softplus"):
    _unary(_name)
_unary("absolute", lambda s: arrays(s, away_from=0.0))
_unary("relu", lambda s: arrays(s, away_from=0.0))
_unary("sqrt", positive_arrays)
_unary("log", positive_arrays)
_unary("log1p", lambda s: arrays(s, low=-0.5, high=3.0))


@case("power_scalar")
def _power_scalar(draw):
    p = draw(st.sampled_from([0, 1, 2, 3, 0.5, -1.5]))
    return Case(lambda x: P.power_scalar(x, p=p), (draw(positive_arrays(shapes())),))


def _separated(a: np.ndarray, offset: float) -> np.ndarray:
    """Values in [k + offset, k + offset + 0.3] for integers k: two such arrays with offsets
    0 and 0.5 differ by at least 0.2 everywhere, so maximum/minimum have no ties."""
    return np.floor(a) + offset + 0.3 * (a - np.floor(a))


@case("maximum")
def _maximum(draw):
    sx, sy = draw(broadcastable_shapes(2))
    x, y = draw(arrays(sx)), draw(arrays(sy))
    return Case(lambda x, y: P.maximum(x, y), (_separated(x, 0.0), _separated(y, 0.5)))


@case("minimum")
def _minimum(draw):
    sx, sy = draw(broadcastable_shapes(2))
    x, y = draw(arrays(sx)), draw(arrays(sy))
    return Case(lambda x, y: P.minimum(x, y), (_separated(x, 0.5), _separated(y, 0.0)))


@case("where")
def _where(draw):
    sc, sx, sy = draw(broadcastable_shapes(3))
    condition = draw(arrays(sc)) > 0
    return Case(lambda x, y: P.where(condition, x, y), (draw(arrays(sx)), draw(arrays(sy))))


@case("clip")
def _clip(draw):
    lo, hi = draw(st.sampled_from([(-1.0, 1.0), (None, 0.5), (-0.5, None)]))
    x = _away(draw(arrays(shapes())), lo, hi)
    return Case(lambda x: P.clip(x, lo=lo, hi=hi), (x,))


@case("astype")
def _astype(draw):
    # to float32 and back is a linear map up to rounding: a large step keeps rounding small
    x = draw(arrays(shapes()))
    return Case(lambda x: P.astype(x, dtype=np.dtype(np.float32)), (x,), eps=1e-2, rtol=1e-4, atol=1e-4)


def _reduction(name: str, values=lambda s: arrays(s)):
    def build(draw):
        x = draw(values(shapes()))
        axis, keepdims = _axes(draw, x.ndim), draw(st.booleans())
        return Case(lambda x: P.PRIMITIVES[name](x, axis=axis, keepdims=keepdims), (x,))
    case(name)(build)


_reduction("sum")
_reduction("mean")
_reduction("max", lambda s: spread_arrays(s, gap=0.05))
_reduction("min", lambda s: spread_arrays(s, gap=0.05))
_reduction("logsumexp")


@case("var")
def _var(draw):
    x = draw(arrays(shapes()))
    axis, keepdims = _axes(draw, x.ndim), draw(st.booleans())
    count = x.size if axis is None else int(np.prod([x.shape[a] for a in axis]))
    ddof = draw(st.sampled_from([0, 1])) if count > 1 else 0
    return Case(lambda x: P.var(x, axis=axis, keepdims=keepdims, ddof=ddof), (x,))


def _along_axis(name: str):
    def build(draw):
        x = draw(arrays(shapes(min_dims=1)))
        axis = draw(st.integers(0, x.ndim - 1))
        return Case(lambda x: P.PRIMITIVES[name](x, axis=axis), (x,))
    case(name)(build)


_along_axis("softmax")
_along_axis("log_softmax")


@case("reshape")
def _reshape(draw):
    x = draw(arrays(shapes()))
    shape = draw(st.sampled_from([(x.size,), x.shape[::-1], (1,) + x.shape, (x.size, 1)]))
    return Case(lambda x: P.reshape(x, shape=shape), (x,))


@case("transpose")
def _transpose(draw):
    x = draw(arrays(shapes(min_dims=2)))
    axes = tuple(draw(st.permutations(range(x.ndim))))
    return Case(lambda x: P.transpose(x, axes=axes), (x,))


@case("broadcast_to")
def _broadcast_to(draw):
    sx, sy = draw(broadcastable_shapes(2))
    shape = np.broadcast_shapes(sx, sy)
    return Case(lambda x: P.broadcast_to(x, shape=shape), (draw(arrays(sx)),))


@case("concatenate")
def _concatenate(draw):
    base = draw(shapes(min_dims=1))
    axis = draw(st.integers(0, len(base) - 1))
    lengths = draw(st.lists(st.integers(1, 3), min_size=1, max_size=3))
    xs = tuple(draw(arrays(base[:axis] + (n,) + base[axis + 1:])) for n in lengths)
    return Case(lambda *xs: P.concatenate(*xs, axis=axis), xs)


def _index(draw, shape: tuple) -> tuple:
    """A basic (slices, ints) or an advanced (integer arrays with repeats, boolean mask) index."""
    n = shape[0]
    kind = draw(st.sampled_from(["slice", "int", "array", "mask"]))
    if kind == "slice":
        start = draw(st.integers(0, n - 1))
        return (slice(start, None, draw(st.integers(1, 2))),)
    if kind == "int":
        return (draw(st.integers(-n, n - 1)),)
    if kind == "array":
        return (np.asarray(draw(st.lists(st.integers(-n, n - 1), min_size=1, max_size=5)), dtype=np.intp),)
    return (np.asarray(draw(st.lists(st.booleans(), min_size=n, max_size=n)), dtype=bool),)


@case("getitem")
def _getitem(draw):
    x = draw(arrays(shapes(min_dims=1)))
    index = _index(draw, x.shape)
    return Case(lambda x: P.getitem(x, index=index), (x,))


@case("scatter_add")
def _scatter_add(draw):
    shape = draw(shapes(min_dims=1))
    index = _index(draw, shape)
    v = draw(arrays(np.zeros(shape)[index].shape))
    return Case(lambda v: P.scatter_add(v, index=index, shape=shape), (v,))


@case("matmul")
def _matmul(draw):
    m, n, k = draw(st.integers(1, 4)), draw(st.integers(1, 4)), draw(st.integers(1, 4))
    batch = draw(st.sampled_from([(), (2,), (3, 1)]))
    pairs = {
        "vector.vector": ((n,), (n,)),
        "matrix.vector": (batch + (m, n), (n,)),
        "vector.matrix": ((n,), batch + (n, k)),
        "matrix.matrix": (batch + (m, n), (n, k)),
        # (3, 1, m, n) @ (2, n, k) broadcasts the batch axes to (3, 2)
        "batched": (batch + (m, n), ((2,) if len(batch) == 2 else (1,)) * bool(batch) + (n, k)),
    }
    sx, sy = pairs[draw(st.sampled_from(sorted(pairs)))]
    return Case(lambda x, y: P.matmul(x, y), (draw(arrays(sx)), draw(arrays(sy))))


# ---------------------------------------------------------------- the tests
TESTED = sorted(name for name in CASES if name in P.PRIMITIVES)


def _finite_difference(fn: Callable, inputs: tuple, tangents: tuple, eps: float) -> np.ndarray:
    plus = fn(*[x + eps * u for x, u in zip(inputs, tangents)])
    minus = fn(*[x - eps * u for x, u in zip(inputs, tangents)])
    return (np.asarray(plus, dtype=np.float64) - np.asarray(minus, dtype=np.float64)) / (2 * eps)


def _random_like(rng: np.random.Generator, x: Any) -> np.ndarray:
    return rng.standard_normal(np.shape(x))


def test_every_builtin_primitive_has_a_case():
    missing = sorted(P.BUILTIN_PRIMITIVES - set(CASES))
    assert not missing, f"add a case to CASES in {__file__} for: {missing}"


def test_every_primitive_has_a_jvp_rule_per_input():
    for name in P.BUILTIN_PRIMITIVES:
        prim = P.PRIMITIVES[name]
        assert prim.jvps, f"{name} has no JVP rules"
        assert len(prim.jvps) == len(prim.vjps), f"{name}: {len(prim.jvps)} JVP vs {len(prim.vjps)} VJP rules"
        for vjp_rule, jvp_rule in zip(prim.vjps, prim.jvps):
            assert (vjp_rule is None) == (jvp_rule is None), \
                f"{name}: VJP and JVP rules differ in which inputs they cover"


@pytest.mark.parametrize("name", TESTED)
@given(data=st.data())
def test_jvp_matches_finite_differences(name, data):
    c = data.draw(CASES[name], label="case")
    rng = np.random.default_rng(data.draw(st.integers(0, 2 ** 32 - 1), label="seed"))
    tangents = tuple(_random_like(rng, x) for x in c.inputs)
    value, tangent = jvp(c.fn, c.inputs, tangents)
    np.testing.assert_allclose(value, c.fn(*c.inputs), rtol=1e-12, atol=0)
    assert np.shape(tangent) == np.shape(value)
    expected = _finite_difference(c.fn, c.inputs, tangents, c.eps)
    np.testing.assert_allclose(tangent, expected, rtol=c.rtol, atol=c.atol)


@pytest.mark.parametrize("name", TESTED)
@given(data=st.data())
def test_jvp_rule_is_itself_differentiable(name, data):
    # jvp of jvp: under an outer trace the inner rules run on Tensors, so they must give the same
    # first derivative, and a second derivative that matches finite differences of the first
    c = data.draw(CASES[name], label="case")
    rng = np.random.default_rng(data.draw(st.integers(0, 2 ** 32 - 1), label="seed"))
    us = tuple(_random_like(rng, x) for x in c.inputs)
    ws = tuple(_random_like(rng, x) for x in c.inputs)

    def first(*xs):
        return jvp(c.fn, xs, us)[1]

    j_u, second = jvp(first, c.inputs, ws)
    np.testing.assert_allclose(j_u, first(*c.inputs), rtol=1e-12, atol=1e-12)
    expected = _finite_difference(first, c.inputs, ws, 10 * c.eps)
    np.testing.assert_allclose(second, expected, rtol=10 * c.rtol, atol=100 * c.atol)


@pytest.mark.parametrize("name", TESTED)
@given(data=st.data())
def test_transpose_identity_between_jvp_and_vjp(name, data):
    # <v, J u> == <J^T v, u>: forward and reverse rules describe the same linear map
    c = data.draw(CASES[name], label="case")
    rng = np.random.default_rng(data.draw(st.integers(0, 2 ** 32 - 1), label="seed"))
    us = tuple(_random_like(rng, x) for x in c.inputs)
    value, j_u = jvp(c.fn, c.inputs, us)
    v = rng.standard_normal(np.shape(value)).astype(np.asarray(value).dtype)
    _, pullback = vjp(c.fn, *c.inputs)
    jt_v = pullback(v)
    left = float(np.sum(np.asarray(j_u, dtype=np.float64) * v))
    right = sum(float(np.sum(np.asarray(g, dtype=np.float64) * u)) for g, u in zip(jt_v, us))
    scale = 1 + abs(left) + sum(float(np.sum(np.abs(g))) for g in jt_v)
    assert abs(left - right) <= 1e-5 * scale, f"{name}: <v, J u> = {left}, <J^T v, u> = {right}"


# ---------------------------------------------------------------- forward mode itself
def test_jvp_tangent_of_broadcast_input_is_stretched_to_the_output_shape():
    x, y = np.ones((3, 1)), np.arange(12.0).reshape(3, 4)
    _, t = jvp(lambda x: x + y, (x,), (np.full((3, 1), 2.0),))
    np.testing.assert_array_equal(t, np.full((3, 4), 2.0))


def test_jvp_of_an_output_that_ignores_the_input_is_zero():
    _, t = jvp(lambda x: ag.tensor(np.ones(3)) * 2.0, (np.ones(2),), (np.ones(2),))
    np.testing.assert_array_equal(t, np.zeros(3))


def test_jvp_with_several_primals_and_outputs():
    x, y = np.array([1.0, 2.0]), np.array([3.0, 4.0])
    (s, p), (ds, dp) = jvp(lambda x, y: (x + y, x * y), (x, y), (np.ones(2), np.zeros(2)))
    np.testing.assert_array_equal(ds, np.ones(2))
    np.testing.assert_array_equal(dp, y)


def test_jvp_keeps_no_graph_and_leaves_no_trace_behind():
    x = ag.tensor(np.array([0.5, 1.5]))
    y, t = jvp(lambda x: (x.sin() * x).sum(), (x,), (np.ones(2),))
    assert isinstance(y, ag.Tensor) and isinstance(t, ag.Tensor)
    assert not y.requires_grad and y.is_leaf
    assert engine.jvp_traces == []


def test_jvp_arrays_in_give_arrays_out():
    y, t = jvp(lambda x: x.exp(), np.zeros(2), np.ones(2))
    assert type(y) is np.ndarray and type(t) is np.ndarray


def test_jvp_mismatched_tangent_shape_raises_with_both_shapes():
    with pytest.raises(ValueError, match=r"tangent 0 has shape \(3,\) but primal 0 has shape \(2,\)"):
        jvp(lambda x: x * 2.0, (np.ones(2),), (np.ones(3),))


def test_jvp_mismatched_number_of_tangents_raises():
    with pytest.raises(ValueError, match="2 primals but 1 tangents"):
        jvp(lambda x, y: x * y, (np.ones(2), np.ones(2)), (np.ones(2),))


def test_jvp_of_integer_primal_raises():
    with pytest.raises(TypeError, match="primal 0 has dtype int"):
        jvp(lambda x: x * 2, (np.arange(3),), (np.ones(3),))


def test_jvp_keeps_float32():
    x = np.ones(3, dtype=np.float32)
    y, t = jvp(lambda x: (x * 2.0).tanh(), x, np.ones(3))
    assert y.dtype == np.float32 and t.dtype == np.float32


def test_jvp_error_names_the_primitive_without_a_jvp_rule():
    no_jvp = P.Primitive("test_no_jvp_rule", lambda x: x * 2, register=False)
    no_jvp.defvjp(lambda g, ans, x: g * 2)
    with pytest.raises(NotImplementedError, match="'test_no_jvp_rule' has no JVP rule"):
        jvp(lambda x: no_jvp(x), np.ones(2), np.ones(2))
    assert engine.jvp_traces == []


def test_nested_jvp_gives_the_second_derivative():
    x = np.array([0.3, -1.2])
    _, second = jvp(lambda x: jvp(ag.tanh, x, np.ones(2))[1], x, np.ones(2))
    np.testing.assert_allclose(second, -2 * np.tanh(x) * (1 - np.tanh(x) ** 2), rtol=1e-12)


def test_nested_jvp_tangents_do_not_get_confused():
    # d/dy [ d/dx (x * y) ] at x = y = 1 is 1; perturbation confusion would give 2
    def inner(y):
        return jvp(lambda x: x * y, np.array(1.0), np.array(1.0))[1]
    _, t = jvp(inner, np.array(1.0), np.array(1.0))
    assert float(t) == 1.0


def test_jvp_under_no_grad_still_carries_tangents():
    with ag.no_grad():
        _, t = jvp(lambda x: (x * x).sum(), np.array([1.0, 2.0]), np.array([1.0, 1.0]))
    assert float(t) == 6.0


def test_jvp_of_one_output_returned_twice_gives_its_tangent_twice():
    _, (t1, t2) = jvp(lambda x: (x * 3.0,) * 2, np.ones(2), np.ones(2))
    np.testing.assert_array_equal(t1, [3.0, 3.0])
    np.testing.assert_array_equal(t2, [3.0, 3.0])
