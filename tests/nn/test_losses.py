"""Losses: NumPy formulas, gradcheck, reductions, stability at +-1000 logits, bad input."""
import numpy as np
import pytest
from hypothesis import given, strategies as st

import autograd_lite as ag
import nn
from autograd_lite.testing import arrays

rng = np.random.default_rng(0)
N, C = 6, 4
LOGITS = rng.standard_normal((N, C)) * 2
LABELS = rng.integers(0, C, N)
ONE_HOT = np.eye(C)[LABELS]
PROBS = 1 / (1 + np.exp(-LOGITS))


def _log_softmax(z):
    m = z.max(axis=1, keepdims=True)
    return z - m - np.log(np.exp(z - m).sum(axis=1, keepdims=True))


# the lecture's J (reduction="sum"), written out in NumPy
FORMULAS = {
    "binary_cross_entropy": (lambda: (PROBS, ONE_HOT),
                             lambda a, y: -np.sum(y * np.log(a) + (1 - y) * np.log(1 - a))),
    "binary_cross_entropy_with_logits": (lambda: (LOGITS, ONE_HOT),
                                         lambda z, y: -np.sum(y * np.log(1 / (1 + np.exp(-z)))
                                                              + (1 - y) * np.log(1 - 1 / (1 + np.exp(-z))))),
    "categorical_cross_entropy": (lambda: (LOGITS, ONE_HOT), lambda z, y: -np.sum(y * _log_softmax(z))),
    "sparse_categorical_cross_entropy": (lambda: (LOGITS, LABELS),
                                         lambda z, k: -np.sum(_log_softmax(z)[np.arange(len(k)), k])),
    "mse": (lambda: (LOGITS, PROBS), lambda p, y: np.sum((p - y) ** 2)),
}


@pytest.mark.parametrize("name", FORMULAS)
def test_sum_reduction_is_the_numpy_formula_and_mean_divides_by_the_number_of_samples(name):
    loss = getattr(nn, name)
    inputs, formula = FORMULAS[name]
    prediction, target = inputs()
    expected = formula(prediction, target)
    np.testing.assert_allclose(loss(prediction, target, reduction="sum").item(), expected, rtol=1e-12)
    np.testing.assert_allclose(loss(prediction, target, reduction="mean").item(), expected / N, rtol=1e-12)
    np.testing.assert_allclose(loss(prediction, target).item(), expected / N, rtol=1e-12)


@pytest.mark.parametrize("name", FORMULAS)
@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_loss_gradients_pass_gradcheck(name, reduction):
    loss = getattr(nn, name)
    inputs, _ = FORMULAS[name]
    prediction, target = inputs()
    if name == "binary_cross_entropy":
        prediction = np.clip(prediction, 0.05, 0.95)
    assert ag.gradcheck(lambda p: loss(p, target, reduction=reduction), prediction)


@given(arrays((3, 4), low=-8, high=8), arrays((3, 4), low=0, high=1))
def test_bce_with_logits_equals_bce_of_the_sigmoid(z, y):
    a = ag.sigmoid(ag.tensor(z)).data
    np.testing.assert_allclose(nn.binary_cross_entropy_with_logits(z, y).item(),
                               nn.binary_cross_entropy(a, y).item(), rtol=1e-9)


def test_bce_gradient_with_respect_to_the_output_pre_activation_is_a_minus_y():
    z = ag.tensor(LOGITS, requires_grad=True)
    nn.binary_cross_entropy(ag.sigmoid(z), ONE_HOT, reduction="sum").backward()
    np.testing.assert_allclose(z.grad.data, PROBS - ONE_HOT, rtol=1e-12, atol=1e-15)
    z2 = ag.tensor(LOGITS, requires_grad=True)
    nn.binary_cross_entropy_with_logits(z2, ONE_HOT, reduction="sum").backward()
    np.testing.assert_allclose(z2.grad.data, PROBS - ONE_HOT, rtol=1e-12, atol=1e-15)


def test_softmax_cross_entropy_gradient_is_softmax_minus_one_hot_over_n():
    z = ag.tensor(LOGITS, requires_grad=True)
    nn.sparse_categorical_cross_entropy(z, LABELS).backward()
    np.testing.assert_allclose(z.grad.data, (np.exp(_log_softmax(LOGITS)) - ONE_HOT) / N, rtol=1e-12, atol=1e-15)


def test_sparse_and_one_hot_cross_entropy_agree():
    z = ag.tensor(LOGITS, requires_grad=True)
    w = ag.tensor(LOGITS, requires_grad=True)
    a = nn.sparse_categorical_cross_entropy(z, LABELS)
    b = nn.categorical_cross_entropy(w, ONE_HOT)
    a.backward()
    b.backward()
    np.testing.assert_allclose(a.item(), b.item(), rtol=1e-14)
    np.testing.assert_allclose(z.grad.data, w.grad.data, rtol=1e-14, atol=1e-16)


def test_categorical_cross_entropy_with_soft_targets_is_the_formula_and_passes_gradcheck():
    soft = np.random.default_rng(4).dirichlet(np.ones(C), size=N)
    np.testing.assert_allclose(nn.categorical_cross_entropy(LOGITS, soft, reduction="sum").item(),
                               -np.sum(soft * _log_softmax(LOGITS)), rtol=1e-12)
    assert ag.gradcheck(lambda z: nn.categorical_cross_entropy(z, soft), LOGITS)


def test_bce_with_logits_on_more_than_two_axes_is_the_formula_and_passes_gradcheck():
    z = np.random.default_rng(5).standard_normal((3, 2, 4))
    y = np.random.default_rng(6).uniform(size=(3, 2, 4))
    expected = np.sum(np.logaddexp(0, z) - y * z) / 3
    np.testing.assert_allclose(nn.binary_cross_entropy_with_logits(z, y).item(), expected, rtol=1e-12)
    assert ag.gradcheck(lambda t: nn.binary_cross_entropy_with_logits(t, y), z)


@pytest.mark.parametrize("name", ["binary_cross_entropy_with_logits", "categorical_cross_entropy",
                                  "sparse_categorical_cross_entropy"])
def test_cross_entropies_from_logits_are_finite_at_plus_minus_1000(name):
    z = ag.tensor(np.array([[1000.0, -1000.0, 0.0], [-1000.0, 1000.0, 999.0]]), requires_grad=True)
    labels = np.array([1, 1])
    target = labels if name.startswith("sparse") else np.eye(3)[labels]
    loss = getattr(nn, name)(z, target, reduction="sum")
    loss.backward()
    assert np.isfinite(loss.item()) and np.all(np.isfinite(z.grad.data))
    if name != "binary_cross_entropy_with_logits":
        # row 0: 2000 nats wrong; row 1: right but with a close runner-up, log(1 + e^-1)
        np.testing.assert_allclose(loss.item(), 2000 + np.log1p(np.exp(-1.0)), rtol=1e-12)


def test_bce_on_saturated_probabilities_is_finite():
    a = ag.tensor(np.array([[0.0, 1.0]]), requires_grad=True)
    loss = nn.binary_cross_entropy(a, np.array([[1.0, 0.0]]))
    loss.backward()
    assert np.isfinite(loss.item()) and loss.item() > 1000
    assert np.all(np.isfinite(a.grad.data))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", FORMULAS)
def test_losses_keep_the_prediction_dtype(name, dtype):
    inputs, _ = FORMULAS[name]
    prediction, target = inputs()
    p = ag.tensor(prediction.astype(dtype), requires_grad=True)
    loss = getattr(nn, name)(p, target)
    loss.backward()
    assert loss.dtype == dtype and p.grad.dtype == dtype


# ---------------------------------------------------------------- L2 penalty
def test_l2_penalty_is_half_lambda_times_squared_weights_without_biases():
    model = nn.MLP([3, 4, 2], seed=0)
    for p in model.parameters():
        p.data[...] = np.random.default_rng(1).standard_normal(p.shape)
    lam = 0.3
    penalty = nn.l2_penalty(model, lam)
    weights = [model.hidden[0].weight.data, model.output.weight.data]
    np.testing.assert_allclose(penalty.item(), lam / 2 * sum(np.sum(w ** 2) for w in weights), rtol=1e-14)
    penalty.backward()
    for w in (model.hidden[0].weight, model.output.weight):
        np.testing.assert_array_equal(w.grad.data, lam * w.data)     # exactly lam * W
    assert model.hidden[0].bias.grad is None and model.output.bias.grad is None


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("backend", ["numba", "numpy"])
@pytest.mark.parametrize("penalty_first", [False, True])
def test_l2_gradient_added_in_place_equals_the_sum_of_both_terms(dtype, backend, penalty_first):
    # the penalty's lam * W is added straight into the weight's A^T delta at the end of the
    # sweep (`vjp_into`); it must give what separate backward passes give, in either order
    previous = ag.set_kernels(backend)
    try:
        model = nn.MLP([40, 30, 3], seed=0, dtype=dtype)     # W1 has 1200 > 1000 elements: kernel
        x = np.random.default_rng(0).standard_normal((8, 40)).astype(dtype)
        y = np.eye(3, dtype=dtype)[np.arange(8) % 3]
        lam = 0.25

        def data_loss():
            return nn.binary_cross_entropy_with_logits(model(x), y)
        if penalty_first:
            penalty = nn.l2_penalty(model, lam)
            loss = penalty + data_loss()
        else:
            loss = data_loss() + nn.l2_penalty(model, lam)
        loss.backward()
        together = {name: p.grad.data.copy() for name, p in model.named_parameters()}
        model.zero_grad()
        data_loss().backward()
        nn.l2_penalty(model, lam).backward()          # accumulates into .grad
        rtol = 1e-12 if dtype == np.float64 else 1e-5
        for name, p in model.named_parameters():
            np.testing.assert_allclose(together[name], p.grad.data, rtol=rtol, atol=rtol)
            assert together[name].dtype == dtype
        # and through grad(): the weights are targets, not leaves of the sweep
        W1, W2 = model.hidden[0].weight, model.output.weight
        gW1, gW2 = ag.autograd_grad(data_loss() + nn.l2_penalty(model, lam), [W1, W2])
        np.testing.assert_allclose(gW1.data, together["hidden.0.weight"], rtol=rtol, atol=rtol)
        np.testing.assert_allclose(gW2.data, together["output.weight"], rtol=rtol, atol=rtol)
    finally:
        ag.set_kernels(previous)


def test_l2_gradient_of_a_weight_used_twice_and_under_create_graph():
    W = nn.Parameter(np.arange(6.0).reshape(2, 3) / 10)
    holder = nn.Module()
    holder.weight = W
    x = np.ones((4, 2))
    loss = (ag.tensor(x) @ W).sum() + (ag.tensor(x) @ W * 2).sum() + nn.l2_penalty(holder, 0.5)
    loss.backward()
    np.testing.assert_allclose(W.grad.data, 3 * x.T @ np.ones((4, 3)) + 0.5 * W.data, rtol=1e-14)
    W.grad = None
    (g,) = ag.autograd_grad((ag.tensor(x) @ W).sum() + nn.l2_penalty(holder, 0.5), [W], create_graph=True)
    np.testing.assert_allclose(g.data, x.T @ np.ones((4, 3)) + 0.5 * W.data, rtol=1e-14)
    assert g.requires_grad                            # differentiable again: the in-place path is off


def test_l2_penalty_refuses_negative_lambda_and_modules_without_weights():
    with pytest.raises(ValueError, match="non-negative"):
        nn.l2_penalty(nn.MLP([2, 2], seed=0), -1.0)
    with pytest.raises(ValueError, match="no weight parameters"):
        nn.l2_penalty(nn.Tanh(), 0.1)


# ---------------------------------------------------------------- bad input
def test_labels_outside_the_classes_name_the_bad_label_and_its_position():
    with pytest.raises(ValueError, match=r"sparse_categorical_cross_entropy: label 4 at position 2 is "
                                         r"outside 0..3 \(4 classes; out-of-range labels: 1 of 6\)"):
        nn.sparse_categorical_cross_entropy(LOGITS, np.array([0, 1, 4, 2, 0, 1]))
    with pytest.raises(ValueError, match="label -1 at position 0"):
        nn.sparse_categorical_cross_entropy(LOGITS, np.array([-1, 1, 3, 2, 0, 1]))


def test_sparse_cross_entropy_checks_labels_with_the_one_label_checker():
    from nn.data import check_labels
    for labels in (np.array([0, 1, 4, 2, 0, 1]), LABELS[:5], LABELS.astype(np.float64), ONE_HOT):
        with pytest.raises(ValueError) as from_loss:
            nn.sparse_categorical_cross_entropy(LOGITS, labels)
        with pytest.raises(ValueError) as from_checker:
            check_labels(labels, C, "sparse_categorical_cross_entropy", n_samples=N)
        assert str(from_loss.value) == str(from_checker.value)


def test_labels_of_the_wrong_shape_or_dtype_are_refused():
    with pytest.raises(ValueError, match=r"labels must have shape \(6,\), one per sample, got \(5,\)"):
        nn.sparse_categorical_cross_entropy(LOGITS, LABELS[:5])
    with pytest.raises(ValueError, match="labels must be integers"):
        nn.sparse_categorical_cross_entropy(LOGITS, ONE_HOT)
    with pytest.raises(ValueError, match=r"logits must have shape \(samples, classes\), got \(6,\)"):
        nn.sparse_categorical_cross_entropy(LOGITS[:, 0], LABELS)


@pytest.mark.parametrize("name", ["binary_cross_entropy", "binary_cross_entropy_with_logits",
                                  "categorical_cross_entropy", "mse"])
def test_targets_of_the_wrong_shape_name_both_shapes(name):
    prediction = PROBS if name == "binary_cross_entropy" else LOGITS
    with pytest.raises(ValueError, match=rf"{name}: targets have shape \(6,\) but predictions have shape \(6, 4\)"):
        getattr(nn, name)(prediction, LABELS)


def test_bce_refuses_values_that_are_not_probabilities():
    with pytest.raises(ValueError, match="predictions must be probabilities in \\[0, 1\\]"):
        nn.binary_cross_entropy(LOGITS, ONE_HOT)
    with pytest.raises(ValueError, match="targets must be in \\[0, 1\\]"):
        nn.binary_cross_entropy(PROBS, ONE_HOT * 2)


@pytest.mark.parametrize("backend", ["numba", "numpy"])
def test_bce_with_logits_refuses_targets_outside_the_unit_interval(backend):
    previous = ag.set_kernels(backend)
    try:
        targets = ONE_HOT.astype(float)
        targets[4, 1] = -0.5
        with pytest.raises(ValueError, match=r"binary_cross_entropy_with_logits: targets must be in "
                                             r"\[0, 1\], got values in \[-0.5, 1.0\] \(1 outside, the "
                                             r"first at flat position 17\)"):
            nn.binary_cross_entropy_with_logits(LOGITS, targets)
        with pytest.raises(ValueError, match=r"targets must be in \[0, 1\]"):
            nn.binary_cross_entropy_with_logits(LOGITS[:, 0], targets[:, 1])      # 1-D: one unit
    finally:
        ag.set_kernels(previous)


@given(st.sampled_from(["avg", "none", "Mean"]))
def test_unknown_reduction_is_refused(reduction):
    with pytest.raises(ValueError, match="reduction must be one of"):
        nn.mse(LOGITS, LOGITS, reduction=reduction)


def test_mean_of_an_empty_batch_is_refused():
    with pytest.raises(ValueError, match="empty"):
        nn.mse(np.zeros((0, 3)), np.zeros((0, 3)))
