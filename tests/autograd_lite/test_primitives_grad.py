"""Every primitive's VJP against central finite differences (float64), on hypothesis-drawn
shapes, broadcasting pairs and values. The table is iterated: a primitive added without a
case here fails `test_every_builtin_primitive_has_a_gradient_case`."""
import numpy as np
import pytest
from hypothesis import given, strategies as st

import autograd_lite as ag
from autograd_lite import primitives as P
from autograd_lite.testing import (arrays, broadcastable_shapes, positive_arrays, shapes,
                                   spread_arrays)


def _axis_args(data, ndim):
    """An axis argument (None, an int, or a tuple) and keepdims for a tensor of `ndim` dims."""
    if ndim == 0:
        axis = data.draw(st.sampled_from([None, 0, -1]))
    else:
        axis = data.draw(st.one_of(
            st.none(), st.integers(-ndim, ndim - 1),
            st.lists(st.integers(0, ndim - 1), min_size=1, max_size=ndim, unique=True).map(tuple)))
    return axis, data.draw(st.booleans())


def _binary(prim_fn, left=arrays, right=arrays):
    def case(data):
        sx, sy = data.draw(broadcastable_shapes(2))
        return prim_fn, [data.draw(left(sx)), data.draw(right(sy))]
    return case


def _unary(fn, values=arrays):
    def case(data):
        return fn, [data.draw(values(shapes()))]
    return case


def _reduction(fn, values=arrays):
    def case(data):
        x = data.draw(values(shapes()))
        axis, keepdims = _axis_args(data, x.ndim)
        return (lambda t: fn(t, axis=axis, keepdims=keepdims)), [x]
    return case


def _power_case(data):
    sx, sy = data.draw(broadcastable_shapes(2))
    return (lambda x, y: x ** y), [data.draw(positive_arrays(sx, 0.2, 3.0)),
                                   data.draw(arrays(sy, low=-2, high=2))]


def _power_scalar_case(data):
    p = data.draw(st.sampled_from([0, 1, 2, 3, -1, 0.5, 2.5]))
    return (lambda x: x ** p), [data.draw(positive_arrays(shapes(), 0.2, 3.0))]


def _where_case(data):
    sc, sx, sy = data.draw(broadcastable_shapes(3))
    cond = data.draw(arrays(sc)) > 0
    return (lambda x, y: ag.where(cond, x, y)), [data.draw(arrays(sx)), data.draw(arrays(sy))]


def _clip_case(data):
    x = data.draw(arrays(shapes(), low=-3, high=3))
    # keep every value away from the bounds, where the derivative jumps
    x = np.where(np.abs(np.abs(x) - 1) < 0.05, x * 1.2, x)
    lo, hi = data.draw(st.sampled_from([(-1.0, 1.0), (None, 1.0), (-1.0, None)]))
    return (lambda t: ag.clip(t, lo, hi)), [x]


def _astype_case(data):
    return (lambda t: (t.astype(np.float32) * 2).astype(np.float64)), [data.draw(arrays(shapes()))]


def _softmax_case(fn):
    def case(data):
        x = data.draw(arrays(shapes(min_dims=1)))
        axis = data.draw(st.integers(-x.ndim, x.ndim - 1))
        return (lambda t: fn(t, axis=axis)), [x]
    return case


def _var_case(data):
    x = data.draw(arrays(shapes(min_dims=1, min_side=2)))
    axis, keepdims = _axis_args(data, x.ndim)
    ddof = data.draw(st.sampled_from([0, 1]))
    return (lambda t: ag.var(t, axis=axis, keepdims=keepdims, ddof=ddof)), [x]


def _reshape_case(data):
    x = data.draw(arrays(shapes()))
    target = data.draw(st.sampled_from([(-1,), (1, -1), (x.size, 1), x.shape[::-1] if x.ndim else ()]))
    if target == () and x.size != 1:
        target = (-1,)
    return (lambda t: t.reshape(target)), [x]


def _transpose_case(data):
    x = data.draw(arrays(shapes(min_dims=2, max_dims=4)))
    axes = data.draw(st.permutations(range(x.ndim)))
    return (lambda t: t.transpose(tuple(axes))), [x]


def _broadcast_case(data):
    x = data.draw(arrays(shapes(max_dims=2)))
    target = tuple(data.draw(st.lists(st.integers(1, 3), min_size=0, max_size=2))) + \
        tuple(n if n != 1 else data.draw(st.integers(1, 3)) for n in x.shape)
    return (lambda t: ag.broadcast_to(t, target)), [x]


def _concatenate_case(data):
    base = data.draw(shapes(min_dims=1))
    axis = data.draw(st.integers(0, len(base) - 1))
    parts = []
    for _ in range(data.draw(st.integers(1, 3))):
        s = list(base)
        s[axis] = data.draw(st.integers(1, 3))
        parts.append(data.draw(arrays(tuple(s))))
    return (lambda *ts: ag.concatenate(ts, axis=axis) * np.arange(1.0, 1 + sum(p.shape[axis] for p in parts)).reshape(
        (-1,) + (1,) * (len(base) - 1 - axis))), parts


def _getitem_case(data):
    x = data.draw(arrays(shapes(min_dims=1)))
    n = x.shape[0]
    kind = data.draw(st.sampled_from(["slice", "int", "array", "mask", "ellipsis"]))
    if kind == "slice":
        index = slice(data.draw(st.integers(0, n - 1)), None, data.draw(st.sampled_from([1, 2, -1])))
    elif kind == "int":
        index = data.draw(st.integers(-n, n - 1))
    elif kind == "array":  # repeated indices must add up
        index = np.asarray(data.draw(st.lists(st.integers(-n, n - 1), min_size=1, max_size=6)))
    elif kind == "mask":
        index = data.draw(arrays(x.shape)) > 0
    else:
        index = (Ellipsis, 0)
    return (lambda t: t[index]), [x]


def _scatter_add_case(data):
    shape = data.draw(shapes(min_dims=1))
    index = (np.asarray(data.draw(st.lists(st.integers(0, shape[0] - 1), min_size=1, max_size=5))),)
    g = data.draw(arrays((len(index[0]),) + shape[1:]))
    return (lambda v: P.scatter_add(v, index=index, shape=shape)), [g]


def _matmul_case(data):
    kind = data.draw(st.sampled_from(["vv", "mv", "vm", "mm", "batched", "broadcast"]))
    n, m, k = (data.draw(st.integers(1, 4)) for _ in range(3))
    b = data.draw(st.integers(1, 3))
    sx, sy = {"vv": ((n,), (n,)), "mv": ((m, n), (n,)), "vm": ((n,), (n, k)), "mm": ((m, n), (n, k)),
              "batched": ((b, m, n), (b, n, k)), "broadcast": ((b, 1, m, n), (2, n, k))}[kind]
    return (lambda x, y: x @ y), [data.draw(arrays(sx)), data.draw(arrays(sy))]


GRADIENT_CASES = {
    "add": _binary(lambda x, y: x + y),
    "subtract": _binary(lambda x, y: x - y),
    "multiply": _binary(lambda x, y: x * y),
    "divide": _binary(lambda x, y: x / y, right=lambda s: positive_arrays(s, 0.5, 3.0)),
    "power": _power_case,
    "power_scalar": _power_scalar_case,
    "maximum": _binary(ag.maximum, left=lambda s: arrays(s, away_from=0.0, margin=0.1),
                       right=lambda s: arrays(s, low=-0.04, high=0.04)),
    "minimum": _binary(ag.minimum, left=lambda s: arrays(s, away_from=0.0, margin=0.1),
                       right=lambda s: arrays(s, low=-0.04, high=0.04)),
    "where": _where_case,
    "negative": _unary(lambda x: -x),
    "absolute": _unary(abs, lambda s: arrays(s, away_from=0.0)),
    "sqrt": _unary(ag.sqrt, lambda s: positive_arrays(s)),
    "exp": _unary(ag.exp),
    "log": _unary(ag.log, lambda s: positive_arrays(s)),
    "log1p": _unary(ag.log1p, lambda s: arrays(s, low=-0.9, high=3)),
    "expm1": _unary(ag.expm1),
    "sin": _unary(ag.sin),
    "cos": _unary(ag.cos),
    "tanh": _unary(ag.tanh),
    "sigmoid": _unary(ag.sigmoid),
    "relu": _unary(ag.relu, lambda s: arrays(s, away_from=0.0)),
    "softplus": _unary(ag.softplus),
    "clip": _clip_case,
    "astype": _astype_case,
    "sum": _reduction(ag.sum),
    "mean": _reduction(ag.mean),
    "max": _reduction(ag.max, lambda s: spread_arrays(s)),
    "min": _reduction(ag.min, lambda s: spread_arrays(s)),
    "logsumexp": _reduction(ag.logsumexp),
    "var": _var_case,
    "softmax": _softmax_case(ag.softmax),
    "log_softmax": _softmax_case(ag.log_softmax),
    "reshape": _reshape_case,
    "transpose": _transpose_case,
    "broadcast_to": _broadcast_case,
    "concatenate": _concatenate_case,
    "getitem": _getitem_case,
    "scatter_add": _scatter_add_case,
    "matmul": _matmul_case,
}


# float32 rounding inside the function: wider steps keep the finite difference meaningful
CHECK_OPTIONS = {"astype": dict(eps=1e-2, atol=1e-4, rtol=1e-4)}


def test_every_builtin_primitive_has_a_gradient_case():
    missing = sorted(set(P.BUILTIN_PRIMITIVES) - set(GRADIENT_CASES))
    assert not missing, f"primitives without a gradient test: {missing}"


def test_every_builtin_primitive_has_vjp_and_jvp_rules():
    for name in P.BUILTIN_PRIMITIVES:
        prim = P.PRIMITIVES[name]
        assert any(r is not None for r in prim.vjps), name
        assert len(prim.jvps) == len(prim.vjps), name


@pytest.mark.parametrize("name", sorted(GRADIENT_CASES))
@given(data=st.data())
def test_vjp_matches_finite_differences(name, data):
    fn, inputs = GRADIENT_CASES[name](data)
    options = CHECK_OPTIONS.get(name, dict(atol=1e-5, rtol=1e-4))
    assert ag.gradcheck(fn, *inputs, **options)


@pytest.mark.parametrize("name", ["max", "min"])
def test_max_min_split_the_gradient_evenly_between_ties(name):
    x = ag.tensor([[1.0, 3.0, 3.0], [2.0, 2.0, 2.0]], requires_grad=True)
    getattr(ag, name)(x, axis=1).sum().backward()
    expected = {"max": [[0, 0.5, 0.5], [1 / 3, 1 / 3, 1 / 3]], "min": [[1, 0, 0], [1 / 3, 1 / 3, 1 / 3]]}
    np.testing.assert_allclose(x.grad.data, expected[name])


def test_maximum_splits_the_gradient_on_ties():
    x = ag.tensor([1.0, 2.0], requires_grad=True)
    y = ag.tensor([1.0, 0.0], requires_grad=True)
    ag.maximum(x, y).sum().backward()
    np.testing.assert_allclose(x.grad.data, [0.5, 1.0])
    np.testing.assert_allclose(y.grad.data, [0.5, 0.0])


def test_repeated_integer_indices_add_up():
    x = ag.tensor(np.arange(4.0), requires_grad=True)
    x[np.array([0, 2, 0, 0])].sum().backward()
    np.testing.assert_array_equal(x.grad.data, [3.0, 0.0, 1.0, 0.0])


@pytest.mark.parametrize("fn", [ag.softmax, ag.log_softmax, lambda t, axis: ag.logsumexp(t, axis=axis)])
def test_softmax_family_is_finite_at_logits_of_1000(fn):
    x = ag.tensor([[1000.0, -1000.0, 0.0], [-1000.0, -1000.0, -1000.0]], requires_grad=True)
    out = fn(x, axis=1)
    assert np.all(np.isfinite(out.data))
    (out * np.arange(out.size).reshape(out.shape)).sum().backward()
    assert np.all(np.isfinite(x.grad.data))


def test_log_softmax_at_1000_equals_the_exact_value():
    x = ag.tensor([1000.0, 0.0])
    np.testing.assert_allclose(ag.log_softmax(x).data, [0.0, -1000.0])
    np.testing.assert_allclose(ag.logsumexp(ag.tensor([1000.0, 1000.0])).data, 1000 + np.log(2))


def test_sigmoid_and_softplus_are_stable_for_large_inputs():
    x = ag.tensor([-1000.0, 1000.0], requires_grad=True)
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        s = ag.sigmoid(x)
        sp = ag.softplus(x)
    np.testing.assert_allclose(s.data, [0.0, 1.0])
    np.testing.assert_allclose(sp.data, [0.0, 1000.0])
