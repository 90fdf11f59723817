"""The training loop: history, determinism, early stopping, evaluate / predict, progress output."""
import io

import numpy as np
import pytest

import nn
from nn.data import preprocess
from nn.datasets import load_digits
from nn.train import History, evaluate, fit, format_confusion, predict, predict_proba


@pytest.fixture(scope="module")
def digits():
    ds = load_digits()
    return (preprocess(ds.x_train, 16, (-1, 1)), ds.y_train), (preprocess(ds.x_test, 16, (-1, 1)), ds.y_test)


def _lecture_net(seed=0, **kwargs):
    return nn.MLP([64, 30, 10], activation="sigmoid", output_activation="sigmoid", seed=seed,
                  dtype=np.float32, **kwargs)


def test_fit_records_loss_and_accuracy_per_epoch_and_learns(digits):
    train, test = digits
    model = _lecture_net()
    history = fit(model, "bce", nn.SGD(model, lr=2.0), train, validation=test, epochs=5, l2=1e-4,
                  verbose=False)
    assert history.epochs == 5 and history.best_epoch == 5
    for key in ("loss", "accuracy", "val_loss", "val_accuracy", "lr", "seconds"):
        assert len(history[key]) == 5
    assert history["loss"][-1] < history["loss"][0]
    assert history["val_accuracy"][-1] > 0.85
    assert not model.training                      # left in eval mode


def test_same_seed_gives_the_same_history_and_weights(digits):
    train, test = digits
    runs = []
    for _ in range(2):
        model = _lecture_net(seed=3, dropout=0.2)
        h = fit(model, "bce", nn.SGD(model, lr=1.0), train, validation=test, epochs=3, batch_size=50,
                seed=7, verbose=False)
        runs.append((h["loss"], h["val_loss"], model.state_dict()))
    assert runs[0][0] == runs[1][0] and runs[0][1] == runs[1][1]
    assert all(np.array_equal(a, b) for a, b in zip(runs[0][2].values(), runs[1][2].values()))
    model = _lecture_net(seed=3, dropout=0.2)
    other = fit(model, "bce", nn.SGD(model, lr=1.0), train, epochs=3, batch_size=50, seed=8, verbose=False)
    assert other["loss"] != runs[0][0]


def test_l2_adds_the_penalty_of_the_weights_to_the_loss(digits):
    train, _ = digits
    losses = []
    for l2 in (0.0, 0.5):
        model = _lecture_net()
        h = fit(model, "bce", nn.SGD(model, lr=0.0), train, epochs=1, l2=l2, verbose=False)
        losses.append(h["loss"][0])
    model = _lecture_net()
    penalty = 0.5 / 2 * sum(float((p.data.astype(np.float64) ** 2).sum())
                            for p in model.parameters() if p.kind == "weight")
    assert losses[1] - losses[0] == pytest.approx(penalty, rel=1e-4)


def test_early_stopping_stops_and_restores_the_best_weights(digits):
    train, test = digits
    model = _lecture_net()
    snapshots = {}

    def remember(epoch, logs):
        snapshots[epoch] = model.state_dict()

    # a learning rate this large makes the validation loss jump around, so it stops early
    history = fit(model, "bce", nn.SGD(model, lr=60.0), train, validation=test, epochs=40,
                  early_stopping=2, callbacks=[remember], verbose=False)
    assert history.stopped_early and history.epochs < 40
    best = int(np.argmin(history["val_loss"])) + 1
    assert history.best_epoch == best and history.epochs - best == 2
    for name, value in model.state_dict().items():
        assert np.array_equal(value, snapshots[best][name])


def test_a_callback_returning_true_stops_training(digits):
    train, _ = digits
    model = _lecture_net()
    history = fit(model, "bce", nn.SGD(model, lr=1.0), train, epochs=10,
                  callbacks=[lambda epoch, logs: epoch == 2], verbose=False)
    assert history.epochs == 2 and history.stopped_early


def test_schedule_is_stepped_once_per_epoch(digits):
    train, _ = digits
    model = _lecture_net()
    opt = nn.SGD(model, lr=1.0)
    history = fit(model, "bce", opt, train, epochs=3, schedule=nn.StepDecay(opt, 1, gamma=0.5),
                  verbose=False)
    assert history["lr"] == [1.0, 0.5, 0.25]


def test_batch_size_none_is_one_step_per_epoch(digits):
    (x, y), _ = digits
    model = _lecture_net()
    steps = []
    opt = nn.SGD(model, lr=1.0)
    original = opt.step
    opt.step = lambda: (steps.append(1), original())
    fit(model, "bce", opt, (x[:100], y[:100]), epochs=3, batch_size=None, verbose=False)
    assert len(steps) == 3


def test_cross_entropy_model_with_logits(digits):
    train, test = digits
    model = nn.MLP([64, 30, 10], activation="relu", seed=0)
    fit(model, "ce", nn.Adam(model, lr=1e-2), train, epochs=3, verbose=False)
    proba = predict_proba(model, test[0])
    assert np.allclose(proba.sum(axis=1), 1) and np.all(proba >= 0)
    assert np.array_equal(predict(model, test[0]), proba.argmax(axis=1))
    assert evaluate(model, *test, loss="ce").accuracy > 0.85


def test_evaluate_confusion_matrix_counts_true_rows_and_predicted_columns():
    class Fixed(nn.Module):
        def forward(self, x):
            return nn.layers.ag.as_tensor(np.eye(3)[[0, 1, 1, 2]])

    result = evaluate(Fixed(), np.zeros((4, 1)), np.array([0, 1, 2, 2]))
    assert result.accuracy == 0.75 and result.samples == 4
    assert result.confusion.tolist() == [[1, 0, 0], [0, 1, 0], [0, 1, 1]]
    assert "predicted" in format_confusion(result.confusion)


def test_predict_proba_normalises_sigmoid_outputs(digits):
    _, (x, _) = digits
    model = _lecture_net()
    proba = predict_proba(model, x[:20])
    assert np.allclose(proba.sum(axis=1), 1, atol=1e-5)
    assert np.array_equal(proba.argmax(1), predict(model, x[:20]))


def test_progress_is_one_line_per_epoch_when_not_a_terminal(digits):
    train, _ = digits
    model = _lecture_net()
    out = io.StringIO()
    fit(model, "bce", nn.SGD(model, lr=1.0), train, epochs=2, file=out)
    lines = out.getvalue().splitlines()
    assert len(lines) == 2 and lines[0].startswith("epoch 1/2") and "\r" not in out.getvalue()


def test_progress_bar_is_drawn_on_a_terminal(digits):
    class Terminal(io.StringIO):
        def isatty(self):
            return True

    train, _ = digits
    model = _lecture_net()
    out = Terminal()
    fit(model, "bce", nn.SGD(model, lr=1.0), train, epochs=1, file=out)
    assert "\r" in out.getvalue() and "samples/s" in out.getvalue() and "ETA" in out.getvalue()


def test_fit_refuses_bad_input_with_clear_messages(digits):
    (x, y), _ = digits
    model = _lecture_net()
    opt = nn.SGD(model, lr=1.0)
    with pytest.raises(ValueError, match="1438 samples but 10 labels"):
        fit(model, "bce", opt, (x, y[:10]), verbose=False)
    with pytest.raises(ValueError, match="unknown loss 'hinge'"):
        fit(model, "hinge", opt, (x, y), verbose=False)
    with pytest.raises(ValueError, match="label 10 at position 0 is outside 0..9"):
        fit(model, "bce", opt, (x[:3], np.array([10, 10, 10])), verbose=False)
    with pytest.raises(ValueError, match="labels must be integer"):
        fit(model, "bce", opt, (x[:3], np.array([0.5, 0, 0])), verbose=False)


def test_a_diverging_run_names_the_learning_rate():
    model = nn.Linear(2, 2, seed=0)
    x = np.array([[1e3, -1e3], [2e3, 1e3]])
    with pytest.raises(FloatingPointError, match=r"learning rate \(1000000.0\) is probably too large"):
        with np.errstate(over="ignore", invalid="ignore"):
            fit(model, "mse", nn.SGD(model, lr=1e6), (x, np.array([0, 1])), epochs=50, verbose=False)


def test_history_repr_and_access():
    h = History()
    h.append({"loss": 1.0, "accuracy": 0.5})
    assert h.epochs == 1 and h["loss"] == [1.0] and "epochs=1" in repr(h)
