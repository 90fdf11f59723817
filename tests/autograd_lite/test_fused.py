"""The fused primitives (autograd_lite/fused.py): gradients against finite differences with the
kernels and with the NumPy twins, grad-of-grad, forward mode, and each one's own behaviour
(activations, reductions, stability at +-1000, bad labels, dropout masks).

`FUSED_CASES` maps each fused primitive's name to a function of a numpy Generator returning
`(fn, inputs)`: fn applies the primitive to float64 inputs, for gradcheck. Tests that iterate
the primitive table (tests/autograd_lite/test_forward.py) can use it.
"""
from __future__ import annotations

from contextlib import contextmanager
from typing import Callable, Dict, List, Tuple

import numpy as np
import pytest
from hypothesis import given, strategies as st

import autograd_lite as ag
from autograd_lite import fused, kernels
from autograd_lite.kernels import dispatch
from autograd_lite import primitives as P
from autograd_lite.forward import jvp

Case = Tuple[Callable, List[np.ndarray]]


def _linear_case(rng: np.random.Generator) -> Case:
    batch, n_in, n_out = rng.integers(1, 6, size=3)
    activation = kernels.ACTIVATIONS[rng.integers(len(kernels.ACTIVATIONS))]
    while True:
        x = rng.standard_normal((batch, n_in))
        W, b = rng.standard_normal((n_in, n_out)), rng.standard_normal(n_out)
        if activation != "relu" or np.abs(x @ W + b).min() > 1e-3:  # away from relu's kink
            return (lambda x, W, b: fused.linear(x, W, b, activation)), [x, W, b]


def _softmax_cross_entropy_case(rng: np.random.Generator) -> Case:
    batch, classes = rng.integers(1, 6), rng.integers(1, 6)
    labels = rng.integers(0, classes, batch)
    reduction = ("mean", "sum")[rng.integers(2)]
    return ((lambda z: fused.softmax_cross_entropy(z, labels, reduction)),
            [3 * rng.standard_normal((batch, classes))])


def _bce_with_logits_case(rng: np.random.Generator) -> Case:
    shape = (rng.integers(1, 6),) if rng.integers(2) else tuple(rng.integers(1, 5, size=2))
    reduction = ("mean", "sum")[rng.integers(2)]
    return ((lambda z, y: fused.bce_with_logits(z, y, reduction)),
            [3 * rng.standard_normal(shape), rng.random(shape)])


def _dropout_case(rng: np.random.Generator) -> Case:
    p, seed = rng.uniform(0.1, 0.9), int(rng.integers(1000))
    return ((lambda x: fused.dropout(x, p, np.random.default_rng(seed))),  # same mask every call
            [rng.standard_normal(tuple(rng.integers(1, 5, size=2)))])


def _l2_penalty_case(rng: np.random.Generator) -> Case:
    lam = rng.uniform(0.0, 2.0)
    shapes = [tuple(rng.integers(1, 5, size=rng.integers(1, 3))) for _ in range(rng.integers(1, 4))]
    return ((lambda *ws: fused.half_lambda_sum_of_squares(*map(ag.as_tensor, ws), lam=lam)),
            [rng.standard_normal(shape) for shape in shapes])


FUSED_CASES: Dict[str, Callable[[np.random.Generator], Case]] = {
    "linear": _linear_case,
    "softmax_cross_entropy": _softmax_cross_entropy_case,
    "bce_with_logits": _bce_with_logits_case,
    "dropout": _dropout_case,
    "l2_penalty": _l2_penalty_case,
}


@contextmanager
def implementation(name: str):
    """"kernels": every kernel runs whatever the size; "numpy": the NumPy twins."""
    saved = dispatch.THRESHOLDS, dispatch._backend
    if name == "kernels":
        dispatch.THRESHOLDS = {k: (0, None) for k in saved[0]}
    dispatch._backend = "numba" if name == "kernels" else "numpy"
    try:
        yield
    finally:
        dispatch.THRESHOLDS, dispatch._backend = saved


IMPLEMENTATIONS = pytest.mark.parametrize("impl", ["kernels", "numpy"])


def test_every_fused_primitive_is_in_the_table_with_a_case_and_both_rules():
    assert set(fused.PRIMITIVE_NAMES) == set(FUSED_CASES)
    for name in fused.PRIMITIVE_NAMES:
        prim = P.PRIMITIVES[name]
        assert name not in P.BUILTIN_PRIMITIVES
        assert len(prim.vjps) == len(prim.jvps) >= 1
        for vjp_rule, jvp_rule in zip(prim.vjps, prim.jvps):
            assert (vjp_rule is None) == (jvp_rule is None)


@IMPLEMENTATIONS
@pytest.mark.parametrize("name", sorted(FUSED_CASES))
@given(seed=st.integers(0, 2 ** 32 - 1))
def test_gradient_of_each_fused_primitive_matches_finite_differences(impl, name, seed):
    fn, inputs = FUSED_CASES[name](np.random.default_rng(seed))
    with implementation(impl):
        assert ag.gradcheck(fn, *inputs)


@IMPLEMENTATIONS
@pytest.mark.parametrize("name", sorted(FUSED_CASES))
@given(seed=st.integers(0, 2 ** 32 - 1))
def test_jvp_of_each_fused_primitive_matches_finite_differences(impl, name, seed):
    rng = np.random.default_rng(seed)
    fn, inputs = FUSED_CASES[name](rng)
    tangents = [rng.standard_normal(x.shape) for x in inputs]
    with implementation(impl):
        value, tangent = jvp(fn, tuple(inputs), tuple(tangents))
        eps = 1e-6
        plus = fn(*[x + eps * t for x, t in zip(inputs, tangents)]).data
        minus = fn(*[x - eps * t for x, t in zip(inputs, tangents)]).data
    np.testing.assert_allclose(tangent, (plus - minus) / (2 * eps), rtol=1e-5, atol=1e-7)


@IMPLEMENTATIONS
@given(seed=st.integers(0, 2 ** 32 - 1), activation=st.sampled_from(["sigmoid", "tanh", None]))
def test_grad_of_grad_through_linear_matches_finite_differences(impl, seed, activation):
    rng = np.random.default_rng(seed)
    x, W, b = rng.standard_normal((3, 4)), rng.standard_normal((4, 2)), rng.standard_normal(2)
    v = rng.standard_normal((3, 2))
    with implementation(impl):
        first = ag.grad(lambda x, W: (fused.linear(x, W, b, activation) ** 2 * v).sum(), argnums=(0, 1))
        assert ag.gradcheck(lambda x, W: first(x, W)[0], x, W)
        assert ag.gradcheck(lambda x, W: first(x, W)[1], x, W)


@IMPLEMENTATIONS
@given(seed=st.integers(0, 2 ** 32 - 1))
def test_grad_of_grad_through_the_cross_entropies_matches_finite_differences(impl, seed):
    rng = np.random.default_rng(seed)
    z, labels, y = rng.standard_normal((4, 3)), rng.integers(0, 3, 4), rng.random((4, 3))
    with implementation(impl):
        assert ag.gradcheck(ag.grad(lambda z: fused.softmax_cross_entropy(z, labels)), z)
        assert ag.gradcheck(ag.grad(lambda z: fused.bce_with_logits(z, y, "sum")), z)


# ---------------------------------------------------------------- linear
@IMPLEMENTATIONS
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("activation", kernels.ACTIVATIONS)
def test_linear_equals_the_unfused_composition_in_value_and_gradient(impl, dtype, activation):
    rng = np.random.default_rng(0)
    x = ag.tensor(rng.standard_normal((50, 30)), dtype=dtype, requires_grad=True)
    W = ag.tensor(rng.standard_normal((30, 40)), dtype=dtype, requires_grad=True)
    b = ag.tensor(rng.standard_normal(40), dtype=dtype, requires_grad=True)
    act = {None: lambda z: z, "sigmoid": ag.sigmoid, "tanh": ag.tanh, "relu": ag.relu}[activation]
    g = rng.standard_normal((50, 40)).astype(dtype)
    with implementation(impl):
        out = fused.linear(x, W, b, activation)
        grads = ag.autograd_grad(out, [x, W, b], grad_outputs=g)
    expected = act(x @ W + b)
    expected_grads = ag.autograd_grad(expected, [x, W, b], grad_outputs=g)
    tol = dict(rtol=1e-12, atol=1e-12) if dtype == np.float64 else dict(rtol=1e-4, atol=1e-4)
    assert out.dtype == dtype and all(gr.dtype == dtype for gr in grads)
    np.testing.assert_allclose(out.data, expected.data, **tol)
    for got, want in zip(grads, expected_grads):
        np.testing.assert_allclose(got.data, want.data, **tol)


@IMPLEMENTATIONS
@pytest.mark.parametrize("activation", kernels.ACTIVATIONS)
@pytest.mark.parametrize("wanted", [(True, True, True), (False, True, True), (True, False, False)])
def test_linear_joint_backward_equals_its_per_input_rules(impl, activation, wanted):
    rng = np.random.default_rng(6)
    x, W, b = rng.standard_normal((40, 30)), rng.standard_normal((30, 50)), rng.standard_normal(50)
    g = rng.standard_normal((40, 50))
    prim = P.PRIMITIVES["linear"]
    with implementation(impl):
        ans = prim(x, W, b, activation=activation)
        joint = prim.vjp_joint(g, ans, x, W, b, activation=activation, wanted=wanted)
        for i, want in enumerate(wanted):
            if not want:
                assert joint[i] is None
                continue
            np.testing.assert_allclose(joint[i], prim.vjps[i](g, ans, x, W, b, activation=activation),
                                       rtol=1e-12, atol=1e-12)


def test_linear_without_bias_and_with_constant_inputs():
    rng = np.random.default_rng(1)
    x, W = rng.standard_normal((4, 3)), ag.tensor(rng.standard_normal((3, 2)), requires_grad=True)
    out = fused.linear(x, W, activation="sigmoid")
    out.sum().backward()
    np.testing.assert_allclose(out.data, kernels.reference.sigmoid(x @ W.data), rtol=1e-15)
    a = out.data
    np.testing.assert_allclose(W.grad.data, x.T @ (a * (1 - a)), rtol=1e-12)
    assert isinstance(fused.linear(x, W.data), ag.Tensor)


def test_linear_refuses_bad_shapes_and_activations():
    with pytest.raises(ValueError, match=r"shapes \(4, 3\) and \(2, 5\) do not align: 3 != 2"):
        fused.linear(np.ones((4, 3)), np.ones((2, 5)))
    with pytest.raises(ValueError, match=r"bias has shape \(4,\), expected \(5,\)"):
        fused.linear(np.ones((4, 3)), np.ones((3, 5)), np.ones(4))
    with pytest.raises(ValueError, match="must be 2-D"):
        fused.linear(np.ones(3), np.ones((3, 5)))
    with pytest.raises(ValueError, match="activation must be one of"):
        fused.linear(np.ones((4, 3)), np.ones((3, 5)), activation="softmax")


# ---------------------------------------------------------------- the cross-entropies
@IMPLEMENTATIONS
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_softmax_cross_entropy_is_the_mean_or_sum_of_minus_log_softmax(impl, dtype):
    rng = np.random.default_rng(2)
    z = ag.tensor(rng.standard_normal((64, 10)), dtype=dtype, requires_grad=True)
    labels = rng.integers(0, 10, 64)
    picked = ag.log_softmax(z, axis=1)[np.arange(64), labels]
    tol = dict(rtol=1e-12) if dtype == np.float64 else dict(rtol=1e-5)
    with implementation(impl):
        mean = fused.softmax_cross_entropy(z, labels)
        total = fused.softmax_cross_entropy(z, labels, reduction="sum")
        (g_mean,) = ag.autograd_grad(mean, z)
    assert mean.shape == () and mean.dtype == dtype
    np.testing.assert_allclose(mean.item(), -picked.data.astype(np.float64).mean(), **tol)
    np.testing.assert_allclose(total.item(), -picked.data.astype(np.float64).sum(), **tol)
    softmax = ag.softmax(z, axis=1).data
    onehot = np.eye(10)[labels]
    np.testing.assert_allclose(g_mean.data, (softmax - onehot) / 64, rtol=tol["rtol"], atol=1e-7)


@IMPLEMENTATIONS
def test_cross_entropies_are_stable_at_plus_minus_1000(impl):
    z = ag.tensor([[1000.0, -1000.0, 0.0], [-1000.0, 1000.0, 1000.0]], requires_grad=True)
    with implementation(impl):
        loss = fused.softmax_cross_entropy(z, [1, 2], reduction="sum")
        loss.backward()
    np.testing.assert_allclose(loss.item(), 2000.0 + np.log(2), rtol=1e-15)
    np.testing.assert_allclose(z.grad.data, [[1, -1, 0], [0, 0.5, -0.5]], atol=1e-300)
    logits = ag.tensor([1000.0, -1000.0, 1000.0, -1000.0], requires_grad=True)
    with implementation(impl):
        bce = fused.bce_with_logits(logits, [1.0, 0.0, 0.0, 1.0], reduction="sum")
        bce.backward()
    np.testing.assert_allclose(bce.item(), 2000.0, rtol=1e-15)
    np.testing.assert_allclose(logits.grad.data, [0, 0, 1, -1], atol=1e-300)


def test_a_label_outside_the_classes_names_the_label_and_the_number_of_classes():
    with pytest.raises(ValueError, match=r"label 10 is outside 0\.\.9 .*C = 10"):
        fused.softmax_cross_entropy(np.zeros((3, 10)), [0, 10, 2])
    with pytest.raises(ValueError, match=r"labels have shape \(2,\), expected \(3,\)"):
        fused.softmax_cross_entropy(np.zeros((3, 10)), [0, 1])
    with pytest.raises(TypeError, match="labels must be integers"):
        fused.softmax_cross_entropy(np.zeros((3, 10)), [0.0, 1.0, 2.0])
    with pytest.raises(ValueError, match="reduction must be one of"):
        fused.softmax_cross_entropy(np.zeros((3, 10)), [0, 1, 2], reduction="none")
    with pytest.raises(TypeError, match="logits must be floating point, got dtype int64"):
        fused.softmax_cross_entropy(np.zeros((3, 10), dtype=np.int64), [0, 1, 2])


@IMPLEMENTATIONS
def test_bce_with_logits_sums_over_units_and_averages_over_samples(impl):
    rng = np.random.default_rng(3)
    z, y = rng.standard_normal((8, 3)), rng.random((8, 3))
    s = 1 / (1 + np.exp(-z))
    per_sample = -(y * np.log(s) + (1 - y) * np.log(1 - s)).sum(axis=1)
    with implementation(impl):
        np.testing.assert_allclose(fused.bce_with_logits(z, y).item(), per_sample.mean(), rtol=1e-12)
        np.testing.assert_allclose(fused.bce_with_logits(z, y, "sum").item(), per_sample.sum(), rtol=1e-12)
        np.testing.assert_allclose(fused.bce_with_logits(z[:, 0], y[:, 0]).item(),
                                   -(y[:, 0] * np.log(s[:, 0]) + (1 - y[:, 0]) * np.log(1 - s[:, 0])).mean(),
                                   rtol=1e-12)
    with pytest.raises(ValueError, match=r"targets have shape \(8, 2\), the logits \(8, 3\)"):
        fused.bce_with_logits(z, y[:, :2])


@IMPLEMENTATIONS
def test_a_retained_graph_backpropagates_the_same_gradient_twice(impl):
    z = ag.tensor(np.random.default_rng(4).standard_normal((5, 4)), requires_grad=True)
    with implementation(impl):
        loss = fused.softmax_cross_entropy(z, [0, 1, 2, 3, 0])
        loss.backward(retain_graph=True)
        first = z.grad.data.copy()
        loss.backward()
    np.testing.assert_allclose(z.grad.data, 2 * first, rtol=1e-15)


# ---------------------------------------------------------------- dropout
@IMPLEMENTATIONS
def test_dropout_keeps_one_minus_p_and_scales_the_kept_by_its_inverse(impl):
    x = ag.tensor(np.ones((400, 500)), requires_grad=True)
    with implementation(impl):
        out = fused.dropout(x, 0.3, np.random.default_rng(0))
        out.sum().backward()
    kept = out.data != 0
    assert abs(kept.mean() - 0.7) < 0.005
    np.testing.assert_allclose(out.data[kept], 1 / 0.7, rtol=1e-15)
    np.testing.assert_array_equal(x.grad.data, out.data)       # d out / d x is the scaled mask


@IMPLEMENTATIONS
def test_dropout_masks_repeat_with_the_seed_and_agree_between_implementations(impl):
    x = np.random.default_rng(5).standard_normal((30, 20)).astype(np.float32)
    with implementation(impl):
        first = fused.dropout(x, 0.5, np.random.default_rng(42)).data
        again = fused.dropout(x, 0.5, np.random.default_rng(42)).data
        other = fused.dropout(x, 0.5, np.random.default_rng(43)).data
    with implementation("numpy"):
        twin = fused.dropout(x, 0.5, np.random.default_rng(42)).data
    assert first.dtype == np.float32
    np.testing.assert_array_equal(first, again)
    np.testing.assert_array_equal(first, twin)
    assert not np.array_equal(first != 0, other != 0)


def test_dropout_with_p_0_is_the_identity_and_with_p_1_zero():
    x = ag.tensor(np.arange(6.0), requires_grad=True)
    assert fused.dropout(x, 0.0, np.random.default_rng(0)) is x
    out = fused.dropout(x, 1.0, np.random.default_rng(0))
    out.sum().backward()
    np.testing.assert_array_equal(out.data, 0.0)
    np.testing.assert_array_equal(x.grad.data, 0.0)


def test_dropout_refuses_a_bad_probability_or_generator():
    with pytest.raises(ValueError, match=r"p must be a probability in \[0, 1\], got 1.5"):
        fused.dropout(np.ones(3), 1.5, np.random.default_rng(0))
    with pytest.raises(TypeError, match="numpy.random.Generator"):
        fused.dropout(np.ones(3), 0.5, np.random.RandomState(0))
    with pytest.raises(TypeError, match="dropout: x must be floating point"):
        fused.dropout(np.arange(3), 0.5, np.random.default_rng(0))


# ---------------------------------------------------------------- the L2 penalty
@IMPLEMENTATIONS
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("other", [0.0, 2.0], ids=["alone", "added into another gradient"])
def test_l2_penalty_is_half_lambda_times_the_squared_weights_with_gradient_lambda_w(impl, dtype, other):
    # with another term, lam * W is added in place into the weight's cotangent (add_scaled, the
    # kernel or its twin); alone, it comes from the ordinary rule
    rng = np.random.default_rng(2)
    w1 = ag.tensor(rng.standard_normal((40, 30)), dtype=dtype, requires_grad=True)  # the kernel's size
    w2 = ag.tensor(rng.standard_normal(5), dtype=dtype, requires_grad=True)
    with implementation(impl):
        penalty = fused.half_lambda_sum_of_squares(w1, w2, lam=0.3)
        loss = penalty + (w1 * other).sum() + (w2 * other).sum() if other else penalty
        loss.backward()
    rtol = 1e-14 if dtype == np.float64 else 1e-6
    assert penalty.dtype == dtype
    np.testing.assert_allclose(penalty.item(), 0.15 * (np.sum(w1.data.astype(float) ** 2)
                                                       + np.sum(w2.data.astype(float) ** 2)), rtol=rtol)
    for w in (w1, w2):
        assert w.grad.dtype == dtype
        np.testing.assert_allclose(w.grad.data, dtype(0.3) * w.data + dtype(other), rtol=rtol)


def test_l2_penalty_hessian_is_lambda_times_the_identity():
    # H v = lam v, forward-over-reverse through its rules
    rng = np.random.default_rng(2)
    w, v = rng.standard_normal((4, 3)), rng.standard_normal((4, 3))
    np.testing.assert_allclose(ag.hvp(lambda x: fused.half_lambda_sum_of_squares(x, lam=0.3), w, v), 0.3 * v,
                               rtol=1e-14)
