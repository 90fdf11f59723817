"""A user's own primitive, declared with `primitive(...)`, `.defvjp(...)` and `.defjvp(...)`, works
like a built-in one: in reverse and forward mode, in gradcheck, and under grad-of-grad."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given

import autograd_lite as ag
from autograd_lite import primitives as P
from autograd_lite.functional import grad, hessian, hvp, jacobian, jvp, vjp
from autograd_lite.gradcheck import GradcheckError
from autograd_lite.testing import arrays, broadcastable_shapes, shapes

NAMES = ("user_logcosh", "user_hypot", "user_half_cube_wrong")


@pytest.fixture(scope="module")
def ops():
    """The README's example (logcosh), a two-input one with broadcasting (hypot), and one with a
    wrong rule; taken out of the table again afterwards so other tests see only the built-ins."""
    # log cosh x = |x| + log1p(exp(-2|x|)) - log 2, stable for large |x|; d/dx = tanh x
    logcosh = ag.primitive(lambda x: np.abs(x) + np.log1p(np.exp(-2 * np.abs(x))) - np.log(2.0),
                           name="user_logcosh")
    logcosh.defvjp(lambda g, ans, x: g * P.tanh(x))
    logcosh.defjvp(lambda t, ans, x: t * P.tanh(x))

    hypot = ag.primitive(lambda x, y: np.sqrt(x * x + y * y), name="user_hypot")
    hypot.defvjp(lambda g, ans, x, y: g * x / ans,
                 lambda g, ans, x, y: g * y / ans)
    hypot.defjvp(lambda t, ans, x, y: t * x / ans,
                 lambda t, ans, x, y: t * y / ans)

    wrong = ag.primitive(lambda x: 0.5 * x ** 3, name="user_half_cube_wrong")
    wrong.defvjp(lambda g, ans, x: g * 3 * x ** 2)  # should be 1.5 x^2
    wrong.defjvp(lambda t, ans, x: t * 3 * x ** 2)
    yield {"logcosh": logcosh, "hypot": hypot, "wrong": wrong}
    for name in NAMES:
        P.PRIMITIVES.pop(name, None)


def test_user_primitive_joins_the_one_table(ops):
    assert ag.PRIMITIVES["user_logcosh"] is ops["logcosh"]
    assert "user_logcosh" not in P.BUILTIN_PRIMITIVES


def test_user_primitive_with_a_taken_name_raises(ops):
    with pytest.raises(ValueError, match="'user_logcosh' is already in the table"):
        ag.primitive(np.cosh, name="user_logcosh")


def test_user_primitive_in_reverse_mode(ops):
    x = ag.tensor(np.array([-30.0, -0.5, 0.0, 2.0]), requires_grad=True)
    y = ops["logcosh"](x)
    np.testing.assert_allclose(y.data, [30 - np.log(2), np.log(np.cosh(0.5)), 0.0, np.log(np.cosh(2.0))])
    y.sum().backward()
    np.testing.assert_allclose(x.grad.data, np.tanh(x.data))


def test_user_primitive_on_arrays_just_runs_forward(ops):
    out = ops["logcosh"](np.array([0.0, 1.0]))
    assert type(out) is np.ndarray


def test_user_primitive_in_forward_mode(ops):
    x = np.array([-1.0, 0.3, 2.0])
    _, t = jvp(ops["logcosh"], x, np.array([1.0, 2.0, -1.0]))
    np.testing.assert_allclose(t, np.tanh(x) * [1.0, 2.0, -1.0])


@given(x=arrays(shapes(), low=-4.0, high=4.0))
def test_user_primitive_passes_gradcheck(ops, x):
    assert ag.gradcheck(ops["logcosh"], x)


@given(xy=broadcastable_shapes(2).flatmap(lambda s: arrays(s[0]).flatmap(
    lambda x: arrays(s[1], low=0.5, high=3.0).map(lambda y: (x, y)))))
def test_two_input_user_primitive_broadcasts_in_both_modes(ops, xy):
    x, y = xy
    assert ag.gradcheck(ops["hypot"], x, y)
    rng = np.random.default_rng(0)
    u, w = rng.standard_normal(x.shape), rng.standard_normal(y.shape)
    value, j_u = jvp(ops["hypot"], (x, y), (u, w))
    v = rng.standard_normal(value.shape)
    gx, gy = vjp(ops["hypot"], x, y)[1](v)
    np.testing.assert_allclose(np.sum(v * j_u), np.sum(gx * u) + np.sum(gy * w), rtol=1e-10, atol=1e-10)


def test_gradcheck_catches_a_wrong_user_rule(ops):
    with pytest.raises(GradcheckError, match="analytic"):
        ag.gradcheck(ops["wrong"], np.array([1.0, 2.0]))


def test_user_primitive_under_grad_of_grad(ops):
    # d/dx tanh x = 1 - tanh^2 x, d2/dx2 = -2 tanh x (1 - tanh^2 x)
    x = np.array(0.4)
    t = np.tanh(0.4)
    np.testing.assert_allclose(grad(grad(ops["logcosh"]))(x), 1 - t ** 2, rtol=1e-12)
    np.testing.assert_allclose(grad(grad(grad(ops["logcosh"])))(x), -2 * t * (1 - t ** 2), rtol=1e-12)


def test_user_primitive_hessian_and_hvp_agree(ops):
    f = lambda p: ops["hypot"](p[0], p[1:]).sum()
    p = np.array([1.0, 2.0, -0.5])
    H = hessian(f)(p)
    np.testing.assert_allclose(H, H.T, atol=1e-14)
    np.testing.assert_allclose(H, jacobian(grad(f), mode="rev")(p), rtol=1e-12)
    v = np.array([0.3, -1.0, 2.0])
    np.testing.assert_allclose(hvp(f, p, v), H @ v, rtol=1e-12)


def test_user_primitive_without_a_jvp_rule_names_itself_in_forward_mode(ops):
    only_vjp = P.Primitive("user_only_vjp", lambda x: 2 * x, register=False)
    only_vjp.defvjp(lambda g, ans, x: 2 * g)
    assert float(grad(lambda x: only_vjp(x).sum())(np.array([1.0]))[0]) == 2.0
    with pytest.raises(NotImplementedError, match="'user_only_vjp' has no JVP rule.*defjvp"):
        jvp(only_vjp, np.ones(2), np.ones(2))


def test_an_in_place_vjp_into_a_leaf_gives_what_the_ordinary_rule_gives():
    # a weighted sum of squares with an in-place rule (like nn's L2 penalty): its cotangent for a
    # leaf is added into the leaf's gradient at the end of the sweep instead of being returned
    calls = []

    def add_into(total, g, ans, x, w, argnum):
        calls.append(argnum)
        total += (2 * g) * w * x
    sq = ag.primitive(lambda x, w: np.sum(w * x * x), name="user_weighted_squares")
    try:
        sq.defvjp(lambda g, ans, x, w: 2 * g * w * x, None)
        sq.defvjp_into(add_into)
        sq.fresh_cotangents = True
        x = ag.tensor(np.linspace(-1, 1, 6).reshape(2, 3), requires_grad=True)
        w = np.arange(6.0).reshape(2, 3)
        (sq(x, w) + (x * 3).sum()).backward()            # another path to x: added in place
        np.testing.assert_allclose(x.grad.data, 2 * w * x.data + 3, rtol=1e-14)
        assert calls == [0]
        x.grad = None
        sq(x, w).backward()                              # the only path: the ordinary rule
        np.testing.assert_allclose(x.grad.data, 2 * w * x.data, rtol=1e-14)
        assert calls == [0]
        h = x * 1.0                                      # not a leaf: never deferred
        (sq(h, w) + h.sum()).backward()
        np.testing.assert_allclose(x.grad.data, 4 * w * x.data + 1, rtol=1e-14)
        assert calls == [0]
    finally:
        del ag.PRIMITIVES["user_weighted_squares"]
