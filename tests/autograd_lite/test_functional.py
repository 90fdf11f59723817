"""The functional API: grad, value_and_grad, vjp, jvp, jacobian, hessian, hvp, and their nesting."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import autograd_lite as ag
from autograd_lite import engine
from autograd_lite.functional import grad, hessian, hvp, jacobian, jvp, value_and_grad, vjp
from autograd_lite.testing import arrays, shapes


def _numeric_jacobian(f, x, eps=1e-6):
    """Central differences, column by column: shape f(x).shape + x.shape."""
    x = np.asarray(x, dtype=np.float64)
    out_shape = np.shape(f(x))
    cols = []
    for k in range(x.size):
        e = np.zeros(x.size)
        e[k] = eps
        e = e.reshape(x.shape)
        cols.append((np.asarray(f(x + e)) - np.asarray(f(x - e))).reshape(-1) / (2 * eps))
    return np.stack(cols, axis=1).reshape(out_shape + x.shape) if cols else np.zeros(out_shape + x.shape)


def _mlp_loss(w, x, y):
    """A 2-layer tanh network's squared error, with all weights packed in one vector w (26 values)."""
    W1 = w[:12].reshape((3, 4))
    b1 = w[12:16]
    W2 = w[16:24].reshape((4, 2))
    b2 = w[24:26]
    h = ag.tanh(x @ W1 + b1)
    return ((h @ W2 + b2 - y) ** 2).mean()


FUNCTIONS = {
    "elementwise": lambda x: ag.tanh(x) * x + ag.sin(x * 2.0),
    "reduce-and-broadcast": lambda x: ag.softmax(x, axis=-1) * ag.sum(x ** 2),
    "shape ops": lambda x: ag.reshape(x, (-1,))[::-1] * ag.exp(ag.reshape(x, (-1,)) * 0.1),
    "to a scalar": lambda x: ag.logsumexp(ag.sin(x)),
}


# ---------------------------------------------------------------- grad and value_and_grad
def test_grad_of_cube_sum_is_three_x_squared():
    x = np.array([1.0, -2.0, 0.5])
    np.testing.assert_allclose(grad(lambda x: (x ** 3).sum())(x), 3 * x ** 2)


def test_grad_arrays_in_arrays_out_tensors_in_tensors_out():
    f = lambda x: (x * x).sum()
    assert type(grad(f)(np.ones(3))) is np.ndarray
    g = grad(f)(ag.tensor(np.ones(3)))
    assert isinstance(g, ag.Tensor) and not g.requires_grad


def test_grad_with_tuple_argnums_gives_a_tuple():
    x, y = np.array([1.0, 2.0]), np.array([3.0, 4.0])
    gx, gy = grad(lambda x, y: (x * y).sum(), argnums=(0, 1))(x, y)
    np.testing.assert_array_equal(gx, y)
    np.testing.assert_array_equal(gy, x)


def test_grad_of_one_argument_passed_twice_gives_partial_derivatives():
    x = ag.tensor(np.array([2.0]))
    gx, gy = grad(lambda a, b: (a * a * b).sum(), argnums=(0, 1))(x, x)
    np.testing.assert_array_equal(gx.data, [8.0])   # 2 a b
    np.testing.assert_array_equal(gy.data, [4.0])   # a ** 2


def test_grad_of_non_scalar_output_raises_with_the_shape():
    with pytest.raises(ValueError, match=r"grad: f must return a scalar .* got shape \(3,\)"):
        grad(lambda x: x * 2.0)(np.ones(3))


def test_grad_of_a_tuple_output_raises():
    with pytest.raises(TypeError, match="has_aux=True"):
        grad(lambda x: (x.sum(), x.sum()))(np.ones(3))


def test_grad_of_integer_argument_raises():
    with pytest.raises(TypeError, match="grad: argument 0 has dtype int"):
        grad(lambda x: (x * 2).sum())(np.arange(3))


def test_grad_argnums_out_of_range_raises():
    with pytest.raises(ValueError, match="argnums 2 is out of range"):
        grad(lambda x, y: (x * y).sum(), argnums=2)(np.ones(2), np.ones(2))


def test_grad_of_a_function_that_ignores_its_input_is_zero():
    np.testing.assert_array_equal(grad(lambda x: ag.tensor(3.0))(np.ones(2)), np.zeros(2))


def test_grad_never_touches_dot_grad():
    x = ag.tensor(np.ones(3), requires_grad=True)
    grad(lambda x: (x * x).sum())(x)
    assert x.grad is None


def test_grad_works_inside_no_grad():
    with ag.no_grad():
        g = grad(lambda x: (x * x).sum())(np.array([1.0, 2.0]))
    np.testing.assert_array_equal(g, [2.0, 4.0])


def test_grad_keeps_float32():
    g = grad(lambda x: (x * x).sum())(np.ones(3, dtype=np.float32))
    assert g.dtype == np.float32


def test_grad_of_tensor_that_requires_grad_can_be_backpropagated_in_the_object_api():
    x = ag.tensor(np.array([1.0, 2.0]), requires_grad=True)
    g = grad(lambda x: (x ** 3).sum())(x)          # 3 x^2, recorded
    g.sum().backward()
    np.testing.assert_allclose(x.grad.data, 6 * x.data)


def test_value_and_grad_returns_the_value_and_the_aux():
    x = np.array([1.0, 2.0])
    (value, aux), g = value_and_grad(lambda x: ((x * x).sum(), "note"), has_aux=True)(x)
    assert float(value) == 5.0 and aux == "note"
    np.testing.assert_array_equal(g, 2 * x)
    g2, aux2 = grad(lambda x: ((x * x).sum(), 7), has_aux=True)(x)
    np.testing.assert_array_equal(g2, 2 * x)
    assert aux2 == 7


def test_value_and_grad_has_aux_needs_a_pair():
    with pytest.raises(TypeError, match="has_aux=True, f must return a pair"):
        value_and_grad(lambda x: x.sum(), has_aux=True)(np.ones(2))


# ---------------------------------------------------------------- vjp and jvp
def test_vjp_pullback_is_reusable_and_matches_the_jacobian():
    x = np.array([0.3, -0.7, 1.1])
    f = lambda x: ag.tanh(x) * x.sum()
    y, pullback = vjp(f, x)
    J = _numeric_jacobian(lambda a: np.tanh(a) * a.sum(), x)
    for v in (np.ones(3), np.array([1.0, -2.0, 0.5])):
        (ct,) = pullback(v)
        np.testing.assert_allclose(ct, v @ J, rtol=1e-6)


def test_vjp_of_several_outputs_takes_a_tuple_of_cotangents():
    x = np.array([1.0, 2.0])
    (s, p), pullback = vjp(lambda x: (x.sum(), x * x), x)
    (ct,) = pullback((np.array(1.0), np.array([1.0, 1.0])))
    np.testing.assert_array_equal(ct, 1.0 + 2 * x)


def test_vjp_mismatched_cotangent_shape_raises():
    _, pullback = vjp(lambda x: x * 2.0, np.ones(3))
    with pytest.raises(ValueError, match=r"cotangent 0 has shape \(2,\) but output 0 has shape \(3,\)"):
        pullback(np.ones(2))


def test_jvp_is_reexported_at_the_top():
    assert ag.jvp is jvp


# ---------------------------------------------------------------- jacobian
@pytest.mark.parametrize("name", sorted(FUNCTIONS))
@given(x=arrays(shapes(min_dims=1, max_dims=2, max_side=3), low=-2.0, high=2.0))
def test_jacobian_fwd_and_rev_agree_with_each_other_and_with_finite_differences(name, x):
    f = FUNCTIONS[name]
    forward = jacobian(f, mode="fwd")(x)
    reverse = jacobian(f, mode="rev")(x)
    numeric = _numeric_jacobian(lambda a: f(ag.tensor(a)).data, x)
    assert forward.shape == reverse.shape == numeric.shape
    np.testing.assert_allclose(forward, reverse, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(forward, numeric, rtol=1e-5, atol=1e-7)


def test_jacobian_auto_picks_the_cheaper_mode(monkeypatch):
    from autograd_lite import functional
    calls = []
    for mode in ("fwd", "rev"):
        for suffix in ("", "_vmap"):  # vectorize=False and True
            monkeypatch.setattr(functional, f"_jacobian_{mode}{suffix}",
                                lambda *a, mode=mode: calls.append(mode) or ([[np.zeros(0)]], False))
    jacobian(lambda x: x.sum())(np.ones(5))                   # 5 inputs, 1 output: reverse
    jacobian(lambda x: ag.broadcast_to(x, (5,)))(np.ones(1))  # 1 input, 5 outputs: forward
    jacobian(lambda x: x.sum(), vectorize=False)(np.ones(5))
    jacobian(lambda x: ag.broadcast_to(x, (5,)), vectorize=False)(np.ones(1))
    assert calls == ["rev", "fwd", "rev", "fwd"]


def test_jacobian_with_tuple_argnums_and_tuple_outputs():
    x, y = np.array([1.0, 2.0]), np.array([3.0, 4.0, 5.0])
    f = lambda x, y: (ag.outer(x, y), x.sum() * y.sum())
    for mode in ("fwd", "rev"):
        (dA_dx, dA_dy), (ds_dx, ds_dy) = jacobian(f, argnums=(0, 1), mode=mode)(x, y)
        assert dA_dx.shape == (2, 3, 2) and dA_dy.shape == (2, 3, 3)
        np.testing.assert_array_equal(dA_dx[:, :, 0][0], y)
        np.testing.assert_array_equal(ds_dx, np.full(2, y.sum()))
        np.testing.assert_array_equal(ds_dy, np.full(3, x.sum()))


def test_jacobian_unknown_mode_raises():
    with pytest.raises(ValueError, match="mode must be 'fwd', 'rev' or 'auto', got 'sideways'"):
        jacobian(lambda x: x, mode="sideways")


# ---------------------------------------------------------------- higher order
def test_hessian_of_quadratic_form_is_a_plus_a_transpose():
    rng = np.random.default_rng(0)
    A = rng.standard_normal((4, 4))
    H = hessian(lambda x: x @ (A @ x))(rng.standard_normal(4))
    np.testing.assert_allclose(H, A + A.T, rtol=1e-12, atol=1e-12)


def test_hessian_of_mlp_loss_is_symmetric_and_matches_finite_differences_of_the_gradient():
    rng = np.random.default_rng(1)
    w, x, y = rng.standard_normal(26) * 0.5, rng.standard_normal((5, 3)), rng.standard_normal((5, 2))
    H = hessian(_mlp_loss)(w, x, y)
    assert H.shape == (26, 26)
    np.testing.assert_allclose(H, H.T, rtol=1e-10, atol=1e-12)
    numeric = _numeric_jacobian(lambda a: grad(_mlp_loss)(a, x, y), w)
    np.testing.assert_allclose(H, numeric, rtol=1e-5, atol=1e-7)


def test_hessian_by_reverse_over_reverse_agrees():
    rng = np.random.default_rng(2)
    w, x, y = rng.standard_normal(26) * 0.5, rng.standard_normal((5, 3)), rng.standard_normal((5, 2))
    rev_rev = jacobian(grad(_mlp_loss), mode="rev")(w, x, y)
    np.testing.assert_allclose(rev_rev, hessian(_mlp_loss)(w, x, y), rtol=1e-10, atol=1e-12)


def test_hvp_equals_hessian_times_v():
    rng = np.random.default_rng(3)
    w, x, y = rng.standard_normal(26) * 0.5, rng.standard_normal((5, 3)), rng.standard_normal((5, 2))
    v = rng.standard_normal(26)
    loss = lambda w: _mlp_loss(w, x, y)
    np.testing.assert_allclose(hvp(loss, w, v), hessian(loss)(w) @ v, rtol=1e-10, atol=1e-12)


def test_hvp_never_builds_the_full_hessian():
    n = 300
    sizes = []
    hook = lambda prim, args, params, result: sizes.append(result.size)
    engine.apply_hooks.append(hook)
    try:
        hv = hvp(lambda x: (ag.tanh(x) ** 2).sum(), np.full(n, 0.5), np.ones(n))
    finally:
        engine.apply_hooks.remove(hook)
    t = np.tanh(0.5)
    np.testing.assert_allclose(hv, 2 * (1 - t ** 2) * (1 - 3 * t ** 2))  # d2/dx2 tanh(x)^2
    assert max(sizes) <= n


def test_hvp_with_several_arguments():
    x, y = np.array([1.0, 2.0]), np.array([3.0])
    hx, hy = hvp(lambda x, y: (x * x * y).sum(), (x, y), (np.ones(2), np.ones(1)))
    # H = [[2y, 0, 2x0], [0, 2y, 2x1], [2x0, 2x1, 0]] times ones
    np.testing.assert_allclose(hx, [2 * 3 + 2 * 1, 2 * 3 + 2 * 2])
    np.testing.assert_allclose(hy, [2 * 1 + 2 * 2])


def _tanh_derivatives(x):
    t = np.tanh(x)
    return 1 - t ** 2, -2 * t * (1 - t ** 2), (1 - t ** 2) * (6 * t ** 2 - 2)


@given(x=st.floats(-3, 3))
def test_third_derivative_of_tanh_by_grad_of_grad_of_grad(x):
    d1, d2, d3 = _tanh_derivatives(x)
    x = np.array(x)
    np.testing.assert_allclose(grad(ag.tanh)(x), d1, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(grad(grad(ag.tanh))(x), d2, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(grad(grad(grad(ag.tanh)))(x), d3, rtol=1e-12, atol=1e-14)


def test_third_derivative_of_tanh_by_every_mix_of_modes():
    x = np.array(0.7)
    d3 = _tanh_derivatives(0.7)[2]
    fwd = lambda f: (lambda x: jvp(f, x, np.ones_like(x))[1])
    for name, third in {"fwd-fwd-fwd": fwd(fwd(fwd(ag.tanh))),
                        "fwd-rev-rev": fwd(grad(grad(ag.tanh))),
                        "rev-fwd-rev": grad(fwd(grad(ag.tanh))),
                        "rev-rev-fwd": grad(grad(fwd(ag.tanh)))}.items():
        np.testing.assert_allclose(third(x), d3, rtol=1e-12, err_msg=name)


def test_inner_gradient_of_a_closure_over_the_outer_variable_is_differentiated():
    # d/dy [ d/dx (x * y) ] = 1
    assert float(grad(lambda y: grad(lambda x: x * y)(np.array(2.0)))(np.array(3.0))) == 1.0


def test_grad_of_grad_in_the_object_api_with_create_graph():
    x = ag.tensor(np.array([0.5, -1.0]), requires_grad=True)
    y = (x ** 3).sum()
    (g,) = ag.autograd_grad(y, x, create_graph=True)
    g.sum().backward()
    np.testing.assert_allclose(x.grad.data, 6 * x.data)


def test_hvp_forward_over_reverse_leaves_no_trace_behind():
    hvp(lambda x: (x ** 4).sum(), np.ones(3), np.ones(3))
    assert engine.jvp_traces == []
