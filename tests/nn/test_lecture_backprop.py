"""The lecture's equations, exactly: a 2-layer sigmoid network with the logistic cost and the
L2 penalty, where backward() must equal the hand-derived backprop written out in NumPy."""
import numpy as np
import pytest

import nn


def _sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def _lecture_backprop(X, Y, W_h, b_h, W_out, b_out, lam):
    """Forward and backward by hand, as in the lecture (rows are samples):
    A_h = sigma(X W_h + b_h), A_out = sigma(A_h W_out + b_out),
    J = -sum[Y log A_out + (1 - Y) log(1 - A_out)] + lam/2 (|W_h|^2 + |W_out|^2),
    delta_out = A_out - Y, delta_h = delta_out W_out^T * A_h (1 - A_h),
    Delta_out = A_h^T delta_out + lam W_out, Delta_h = X^T delta_h + lam W_h, biases: column sums."""
    A_h = _sigmoid(X @ W_h + b_h)
    A_out = _sigmoid(A_h @ W_out + b_out)
    J = -np.sum(Y * np.log(A_out) + (1 - Y) * np.log(1 - A_out)) \
        + lam / 2 * (np.sum(W_h ** 2) + np.sum(W_out ** 2))
    delta_out = A_out - Y
    delta_h = (delta_out @ W_out.T) * A_h * (1 - A_h)
    return J, {
        "hidden.0.weight": X.T @ delta_h + lam * W_h,
        "hidden.0.bias": delta_h.sum(axis=0),
        "output.weight": A_h.T @ delta_out + lam * W_out,
        "output.bias": delta_out.sum(axis=0),
    }


def _lecture_problem(seed, n=20, n_in=6, n_h=5, n_out=3):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, n_in))
    Y = np.eye(n_out)[rng.integers(0, n_out, n)]
    model = nn.MLP([n_in, n_h, n_out], activation="sigmoid", output_activation="sigmoid", seed=seed)
    return X, Y, model


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("lam", [0.0, 0.1, 3.0])
def test_backward_equals_the_lectures_backprop_to_1e_12(seed, lam):
    X, Y, model = _lecture_problem(seed)
    J = nn.binary_cross_entropy(model(X), Y, reduction="sum") + nn.l2_penalty(model, lam)
    J.backward()
    p = dict(model.named_parameters())
    J_hand, grads_hand = _lecture_backprop(X, Y, p["hidden.0.weight"].data, p["hidden.0.bias"].data,
                                           p["output.weight"].data, p["output.bias"].data, lam)
    np.testing.assert_allclose(J.item(), J_hand, rtol=1e-12)
    for name, expected in grads_hand.items():
        np.testing.assert_allclose(p[name].grad.data, expected, rtol=1e-12, atol=1e-12, err_msg=name)


def test_mean_reduction_is_the_lectures_cost_divided_by_n():
    X, Y, model = _lecture_problem(3)
    lam = 0.5
    n = X.shape[0]
    J = nn.binary_cross_entropy(model(X), Y, reduction="mean") + nn.l2_penalty(model, lam / n)
    J.backward()
    p = dict(model.named_parameters())
    J_hand, grads_hand = _lecture_backprop(X, Y, p["hidden.0.weight"].data, p["hidden.0.bias"].data,
                                           p["output.weight"].data, p["output.bias"].data, lam)
    np.testing.assert_allclose(J.item(), J_hand / n, rtol=1e-12)
    for name, expected in grads_hand.items():
        np.testing.assert_allclose(p[name].grad.data, expected / n, rtol=1e-12, atol=1e-12, err_msg=name)


def test_one_sgd_step_is_the_lectures_update_w_minus_lr_delta():
    X, Y, model = _lecture_problem(4)
    lam, lr = 0.1, 0.05
    before = model.state_dict()
    _, grads_hand = _lecture_backprop(X, Y, before["hidden.0.weight"], before["hidden.0.bias"],
                                      before["output.weight"], before["output.bias"], lam)
    optimizer = nn.SGD(model, lr=lr)
    (nn.binary_cross_entropy(model(X), Y, reduction="sum") + nn.l2_penalty(model, lam)).backward()
    optimizer.step()
    after = model.state_dict()
    for name, delta in grads_hand.items():
        np.testing.assert_allclose(after[name], before[name] - lr * delta, rtol=1e-12, atol=1e-12)
