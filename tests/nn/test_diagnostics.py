"""Training diagnostics: per-layer numbers checked by hand, TrainingWarnings for the lecture's
failure modes (too big a learning rate, vanishing gradients, a plateau), and fit(anomaly=True)."""
import io
import warnings

import numpy as np
import pytest

import autograd_lite as ag
import nn
from autograd_lite import engine
from nn.data import preprocess
from nn.datasets import load_digits
from nn.diagnostics import SATURATION_MARGIN, TrainingMonitor, TrainingWarning
from nn.train import fit


@pytest.fixture(scope="module")
def digits():
    ds = load_digits()
    return preprocess(ds.x_train, 16, (-1, 1)), ds.y_train


def _net(sizes, activation="sigmoid", seed=0):
    return nn.MLP(sizes, activation=activation, output_activation="sigmoid", seed=seed, dtype=np.float32)


def _fit_recording(*args, **kwargs):
    """fit, returning (history, [TrainingWarning messages])."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        history = fit(*args, verbose=False, diagnostics=True, **kwargs)
    return history, [str(w.message) for w in caught if issubclass(w.category, TrainingWarning)]


def _sigmoid(z):
    return 1 / (1 + np.exp(-z))


# ---------------------------------------------------------------- the numbers
def _hand_network():
    """A 2-2-2 sigmoid network whose hidden outputs are half saturated on the training batch."""
    model = nn.MLP([2, 2, 2], activation="sigmoid", output_activation="sigmoid", seed=0)
    model.hidden[0].weight.data[...] = [[10.0, 0.0], [0.0, -10.0]]   # z_h = +-10 or 0
    model.hidden[0].bias.data[...] = [0.0, 0.0]
    model.output.weight.data[...] = [[0.5, -0.3], [0.2, 0.4]]
    model.output.bias.data[...] = [0.1, -0.2]
    x = np.array([[1.0, 0.0], [0.0, 1.0]])
    y = np.array([0, 1])
    return model, x, y


@pytest.mark.parametrize("l2", [0.0, 0.5])
def test_diagnostics_numbers_match_a_hand_computed_step(l2):
    model, x, y = _hand_network()
    W_h, b_h = model.hidden[0].weight.data.copy(), model.hidden[0].bias.data.copy()
    W_o, b_o = model.output.weight.data.copy(), model.output.bias.data.copy()
    lr, n = 0.1, len(y)
    # the lecture's backprop for the mean logistic cost, by hand
    a_h = _sigmoid(x @ W_h + b_h)
    a_out = _sigmoid(a_h @ W_o + b_o)
    Y = np.eye(2)[y]
    delta_out = (a_out - Y) / n
    dW_o, db_o = a_h.T @ delta_out, delta_out.sum(axis=0)
    delta_h = (delta_out @ W_o.T) * a_h * (1 - a_h)
    dW_h, db_h = x.T @ delta_h, delta_h.sum(axis=0)
    # a validation set that saturates everything must not change the counts (training only)
    far = np.array([[50.0, -50.0]] * 3)
    history, _ = _fit_recording(model, "bce", nn.SGD(model, lr=lr), (x, y), validation=(far, [0, 1, 0]),
                                epochs=1, batch_size=None, l2=l2)
    report = history.diagnostics[0]
    hidden, output = report["hidden.0"], report["output"]
    assert report.epoch == 1 and [s.layer for s in report.layers] == ["hidden.0", "output"]
    # the loss's gradient, without the penalty's lam * W
    assert hidden.grad_norm == pytest.approx(np.sqrt((dW_h ** 2).sum() + (db_h ** 2).sum()), rel=1e-9)
    assert output.grad_norm == pytest.approx(np.sqrt((dW_o ** 2).sum() + (db_o ** 2).sum()), rel=1e-9)
    # the weights after the step, penalty included
    assert hidden.weight_norm == pytest.approx(np.linalg.norm(W_h - lr * (dW_h + l2 * W_h)), rel=1e-9)
    assert output.weight_norm == pytest.approx(np.linalg.norm(W_o - lr * (dW_o + l2 * W_o)), rel=1e-9)
    assert hidden.saturated == 0.5                       # sigmoid(10) and sigmoid(-10) of four
    near_limits = (a_out < SATURATION_MARGIN) | (a_out > 1 - SATURATION_MARGIN)
    assert output.saturated == np.mean(near_limits)
    assert hidden.activation == output.activation == "sigmoid"


def test_relu_units_count_as_dead_only_when_silent_on_every_sample_of_the_epoch():
    model = nn.MLP([2, 4, 2], activation="relu", output_activation="sigmoid", seed=0)
    model.hidden[0].weight.data[...] = [[1.0, 1.0, -1.0, 0.0], [-1.0, 0.0, 1.0, 0.0]]
    model.hidden[0].bias.data[...] = [0.0, -100.0, 0.0, -1.0]
    # unit 0 fires on sample 0 only, unit 2 on sample 1 only; units 1 and 3 never: 2 of 4 dead
    x = np.array([[1.0, 0.0], [0.0, 1.0]])
    history, _ = _fit_recording(model, "bce", nn.SGD(model, lr=0.01), (x, np.array([0, 1])),
                                epochs=1, batch_size=1, seed=0)
    assert history.diagnostics[0]["hidden.0"].saturated == 0.5
    assert history.diagnostics[0]["hidden.0"].activation == "relu"


def test_mostly_dead_relu_layer_is_warned_about():
    model = nn.MLP([2, 4, 2], activation="relu", output_activation="sigmoid", seed=0)
    model.hidden[0].bias.data[...] = [-100.0, -100.0, -100.0, 0.0]
    x = np.random.default_rng(0).uniform(-1, 1, (8, 2))
    _, messages = _fit_recording(model, "bce", nn.SGD(model, lr=0.01), (x, np.arange(8) % 2), epochs=1)
    assert any("75% dead ReLU units" in m and "hidden.0" in m for m in messages), messages


def test_history_carries_one_report_per_epoch_and_verbose_prints_the_table(digits):
    model = _net([64, 20, 10])
    out = io.StringIO()
    history = fit(model, "bce", nn.SGD(model, lr=2.0), digits, epochs=2, verbose=True, file=out,
                  diagnostics=True)
    assert [d.epoch for d in history.diagnostics] == [1, 2]
    text = out.getvalue()
    assert text.count("layer     activation") == 2
    assert "hidden.0  sigmoid" in text and "output    sigmoid" in text
    assert history.diagnostics[1].table() in text


def test_diagnostics_follow_layers_of_a_sequential_with_separate_activations(digits):
    model = nn.Sequential(nn.Linear(64, 20, seed=0), nn.Tanh(), nn.Linear(20, 10, seed=1))
    history, _ = _fit_recording(model, "ce", nn.SGD(model, lr=0.1), digits, epochs=1)
    report = history.diagnostics[0]
    assert [s.layer for s in report.layers] == ["0", "2"]
    assert report["0"].activation == "tanh" and 0 <= report["0"].saturated <= 1
    assert report["2"].activation is None and report["2"].saturated is None   # logits
    assert report["0"].grad_norm > 0 and report["2"].weight_norm > 0


def test_diagnostics_need_a_layer_with_weights():
    with pytest.raises(ValueError, match="no layers with a 'weight' parameter"):
        TrainingMonitor(nn.Sequential(nn.Tanh()))


# ---------------------------------------------------------------- the warnings
def test_too_large_learning_rate_warns_that_the_hidden_layer_saturates(digits):
    model = _net([64, 30, 10])
    history, messages = _fit_recording(model, "bce", nn.SGD(model, lr=30.0), digits, epochs=3, l2=1e-3)
    saturated = [m for m in messages if "hidden.0 is saturated" in m]
    assert len(saturated) == 1, messages                 # told once, not every epoch
    assert "Too big a learning rate makes the weights very big" in saturated[0]
    assert "smaller learning rate than 30" in saturated[0]
    assert history.diagnostics[0]["hidden.0"].saturated > 0.5
    assert saturated[0] in history.diagnostics[0].warnings


def test_healthy_run_gives_no_training_warning(digits):
    model = _net([64, 100, 10])
    history, messages = _fit_recording(model, "bce", nn.SGD(model, lr=2.0), digits, epochs=4, l2=1e-3)
    assert messages == []
    assert all(d.warnings == [] for d in history.diagnostics)
    assert history.diagnostics[-1]["hidden.0"].saturated < 0.5


def test_deep_sigmoid_network_warns_of_vanishing_gradients_and_a_plateau(digits):
    model = _net([64] + [32] * 6 + [10])
    history, messages = _fit_recording(model, "bce", nn.SGD(model, lr=2.0), digits, epochs=3, l2=1e-3)
    vanishing = [m for m in messages if "gradients of layer hidden.0 vanish" in m]
    assert vanishing and "times smaller than the output layer's" in vanishing[0], messages
    assert any("plateau, not a local minimum" in m for m in messages), messages
    first = history.diagnostics[0]
    assert first["hidden.0"].grad_norm < 1e-3 * first["output"].grad_norm


def test_exploding_gradients_are_warned_about():
    model = nn.MLP([2, 3, 2], seed=0)
    monitor = TrainingMonitor(model)

    def epoch(number, scale):
        monitor.start_epoch()
        for p in model.parameters():     # as if backward had given these gradients
            p.grad = ag.tensor(np.full(p.shape, scale if p is model.hidden[0].weight else 0.0))
        monitor.after_backward()
        return monitor.end_epoch(number, loss=1.0, lr=0.5)

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        epoch(1, 1.0)
        report = epoch(2, 1e4)
    messages = [str(w.message) for w in caught]
    assert any("gradients of layer hidden.0 explode" in m and "lower the learning rate (0.5)" in m
               for m in messages), messages
    assert report["hidden.0"].grad_norm == pytest.approx(1e4 * np.sqrt(6))
    assert engine.apply_hooks == []


# ---------------------------------------------------------------- hooks and anomaly mode
def test_fit_removes_its_hooks_even_when_training_fails(digits):
    model = _net([64, 20, 10])
    with np.errstate(all="ignore"), pytest.raises(FloatingPointError):
        fit(model, "bce", nn.SGD(model, lr=1e300), digits, epochs=2, verbose=False, diagnostics=True)
    assert engine.apply_hooks == [] and engine.backward_hooks == []


def test_fit_with_anomaly_names_the_primitive_that_made_a_nan(digits):
    model = _net([64, 20, 10])
    with np.errstate(all="ignore"), pytest.raises(ag.AnomalyError, match="the forward of 'linear'"):
        fit(model, "bce", nn.SGD(model, lr=1e300), digits, epochs=2, verbose=False, anomaly=True)
    assert not ag.is_anomaly_enabled()


def test_fit_with_anomaly_trains_as_without_it(digits):
    runs = []
    for anomaly in (False, True):
        model = _net([64, 20, 10])
        runs.append(fit(model, "bce", nn.SGD(model, lr=2.0), digits, epochs=1, verbose=False,
                        anomaly=anomaly)["loss"])
    assert runs[0] == runs[1]
    assert not ag.is_anomaly_enabled()
