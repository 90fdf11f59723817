"""Anomaly mode names the first primitive that made a NaN or Inf, and where it was created."""
import numpy as np
import pytest

import autograd_lite as ag
from autograd_lite import engine


def _two_layer_loss(X, W1, W2, y):
    a_h = ag.sigmoid(X @ W1)
    a_out = ag.sigmoid(a_h @ W2)
    return -(y * ag.log(a_out) + (1 - y) * ag.log(1 - a_out)).sum()


def test_forward_nan_names_the_primitive_the_line_and_the_inputs():
    x = ag.tensor(np.array([1.0, 0.0]), requires_grad=True)
    with pytest.raises(ag.AnomalyError) as info, np.errstate(divide="ignore"):
        with ag.detect_anomaly():
            y = ag.log(x * 1.0)  # the offending line
    message = str(info.value)
    assert "forward of 'log'" in message
    assert f"{__file__}:" in message and "test_forward_nan_names" in message
    assert "input 0: shape (2,), all finite" in message


def test_log_of_zero_inside_a_network_is_reported_at_log():
    rng = np.random.default_rng(0)
    X = ag.tensor(rng.standard_normal((4, 3)) * 100)
    W1 = ag.tensor(rng.standard_normal((3, 5)) * 10, requires_grad=True)
    W2 = ag.tensor(rng.standard_normal((5, 2)) * 1000, requires_grad=True)  # saturates a_out to 0 or 1
    y = np.eye(2)[[0, 1, 0, 1]]
    with pytest.raises(ag.AnomalyError, match="forward of 'log'"), np.errstate(all="ignore"):
        with ag.detect_anomaly():
            _two_layer_loss(X, W1, W2, y)


def test_backward_nan_names_the_primitive():
    x = ag.tensor(np.array([0.0, 4.0]), requires_grad=True)
    with ag.detect_anomaly():
        y = ag.sqrt(x)           # finite forward, infinite derivative at 0
        with pytest.raises(ag.AnomalyError, match=r"backward of 'sqrt' produced a NaN/Inf gradient"), \
                np.errstate(divide="ignore"):
            y.sum().backward()


def test_non_finite_inputs_are_pointed_out():
    x = ag.tensor(np.array([np.inf, 1.0]))
    with pytest.raises(ag.AnomalyError, match=r"input 0: shape \(2,\), 1 non-finite value"):
        with ag.detect_anomaly():
            x * 2


def test_anomaly_mode_is_off_by_default_and_removed_after_the_block():
    assert not engine.apply_hooks and not engine.backward_hooks
    with ag.detect_anomaly():
        with ag.detect_anomaly():
            assert ag.is_anomaly_enabled()
        assert ag.is_anomaly_enabled()
    assert not ag.is_anomaly_enabled()
    assert not engine.apply_hooks and not engine.backward_hooks
    with np.errstate(divide="ignore"):
        out = ag.log(ag.tensor([0.0]))
    assert out._trace is None and np.isneginf(out.data[0])
