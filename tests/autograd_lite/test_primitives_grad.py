"""Gradients of particular primitives at the points the table-driven tests (test_table.py) stay
away from: ties, repeated indices, logits of +-1000."""
import numpy as np
import pytest

import autograd_lite as ag


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
