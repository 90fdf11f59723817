"""The training loop: history, determinism, early stopping, evaluate / predict, progress output."""
import io
import signal

import numpy as np
import pytest

import nn
from nn.data import preprocess
from nn.datasets import load_digits
from nn.train import (History, NonFiniteError, TrainingInterrupted, evaluate, fit,
                      predict, predict_proba)


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
    assert "predicted" in result.confusion_table()


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


def test_progress_bar_is_drawn_on_a_terminal(digits, monkeypatch):
    monkeypatch.setenv("AUTOGRAD_LITE_PROGRESS", "builtin")      # tqdm's is tested in test_progress.py

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


class RecordingSGD(nn.SGD):
    """SGD that keeps a copy of the weights after each step it applies."""

    def step(self):
        super().step()
        self.after = [p.data.copy() for p in self.params]


def test_a_diverging_run_stops_before_the_bad_step_and_names_the_learning_rate():
    model = nn.Linear(2, 2, seed=0)
    model.train()
    x = np.array([[1e3, -1e3], [2e3, 1e3]])
    opt = RecordingSGD(model, lr=1e6)
    with pytest.raises(NonFiniteError, match=r"^fit: the loss became (inf|nan) at epoch \d+, batch 1; that step was "
                       r"not applied: the learning rate \(1e\+06\) is likely too large$") as caught:
        with np.errstate(over="ignore", invalid="ignore"):
            fit(model, "mse", opt, (x, np.array([0, 1])), epochs=50, verbose=False)
    assert isinstance(caught.value, FloatingPointError) and caught.value.cause == "lr"
    assert caught.value.epoch > 1 and caught.value.batch == 1
    # the model keeps the weights of the last step applied, and is in eval mode
    assert all(np.array_equal(p.data, kept) for p, kept in zip(model.parameters(), opt.after))
    assert all(np.isfinite(p.data).all() for p in model.parameters()) and not model.training


def test_training_inputs_with_nan_or_inf_are_refused_before_training_naming_the_first(digits):
    (x, y), (x_val, y_val) = digits
    model = _lecture_net()
    before = [p.data.copy() for p in model.parameters()]
    bad = x.copy()
    bad[7, 12] = np.nan
    bad[900, 3] = np.inf
    with pytest.raises(ValueError, match=r"^fit: the inputs hold nan at sample 7, feature 12 \(2 NaN or inf values "
                       r"in all\); remove or replace them before training$"):
        fit(model, "bce", nn.SGD(model, lr=1.0), (bad, y), verbose=False)
    bad_val = x_val.copy()
    bad_val[4, 0] = -np.inf
    with pytest.raises(ValueError, match=r"^fit \(validation\): the inputs hold -inf at sample 4, feature 0 "):
        fit(model, "bce", nn.SGD(model, lr=1.0), (x, y), validation=(bad_val, y_val), verbose=False)
    assert all(np.array_equal(p.data, b) for p, b in zip(model.parameters(), before))


def test_a_nan_gradient_with_a_finite_loss_is_not_applied():
    model = nn.Linear(2, 2, seed=0)
    before = [p.data.copy() for p in model.parameters()]

    def sqrt_of_zero(outputs, labels):      # value 0, but d sqrt(u)/du at u = 0 is inf: a NaN gradient
        return ((outputs * 0) ** 0.5).sum()

    with pytest.raises(NonFiniteError, match=r"the gradient of weight became nan at epoch 1, batch 1; that step "
                       r"was not applied: this was before any update, so the learning rate is not the cause; "
                       r"check the scale of the inputs \(the largest \|x\| in this batch is 4\), the model's "
                       r"initial weights and the loss function") as caught:
        with np.errstate(all="ignore"):
            fit(model, sqrt_of_zero, nn.SGD(model, lr=0.1), (np.array([[1.0, 2], [3, 4]]), np.array([0, 1])),
                verbose=False)
    assert caught.value.cause == "inputs"
    assert all(np.array_equal(p.data, b) for p, b in zip(model.parameters(), before))


def test_an_update_that_overflows_is_undone_to_the_last_epochs_weights():
    # finite loss and gradients, but lr * gradient overflows float32: the weights become inf in the
    # update, and the next batch finds them; the weights of the last epoch's end come back
    model = nn.Linear(2, 2, seed=0, dtype=np.float32)
    initial = [p.data.copy() for p in model.parameters()]
    x = np.array([[1, 2], [3, 4]], np.float32)
    with pytest.raises(NonFiniteError, match=r"^fit: (weight|bias) became -?inf in an update of epoch 1 \(found at "
                       r"batch 2\); the model has its initial weights: the learning rate \(3e\+38\) is likely "
                       "too large$"):
        with np.errstate(all="ignore"):
            fit(model, "mse", nn.SGD(model, lr=3e38), (x, np.array([0, 1])), batch_size=1, verbose=False)
    assert all(np.array_equal(p.data, b) for p, b in zip(model.parameters(), initial))


@pytest.mark.parametrize("momentum, nesterov, lr, limit", [(0.0, False, 0.4, "2"), (0.5, False, 0.4, "3"),
                                                         (0.9, True, 0.2, "1.36")])
def test_an_lr_times_l2_past_the_weight_decays_limit_is_named(momentum, nesterov, lr, limit):
    # lam/2 W**2 alone makes SGD diverge once lr * lam passes 2 (momentum m: 2 (1 + m); Nesterov:
    # 2 (1 + m) / (1 + 2 m)); just below that limit the same run trains
    x, y = np.array([[1, 2], [3, 4]], np.float32), np.array([0, 1])
    model = nn.MLP([2, 3, 2], seed=0, dtype=np.float32)
    opt = nn.SGD(model, lr=lr, momentum=momentum, nesterov=nesterov)
    fit(model, "mse", opt, (x, y), l2=0.9 * float(limit) / lr, epochs=300, batch_size=1, verbose=False)
    model = nn.MLP([2, 3, 2], seed=0, dtype=np.float32)
    opt = nn.SGD(model, lr=lr, momentum=momentum, nesterov=nesterov)
    with pytest.raises(NonFiniteError, match=rf"lr \* l2 = {lr:g} \* 10 = {lr * 10:g} >= {limit}, so each step's "
                       "weight decay overshoots: lower the learning rate or l2$") as caught:
        with np.errstate(all="ignore"):
            fit(model, "mse", opt, (x, y), l2=10.0, epochs=300, batch_size=1, verbose=False)
    assert caught.value.cause == "lr_l2"


def test_an_l2_penalty_that_overflows_before_any_update_is_named():
    x, y = np.array([[1, 2], [3, 4]], np.float32), np.array([0, 1])
    model = nn.MLP([2, 3, 2], seed=0, dtype=np.float32)
    with pytest.raises(NonFiniteError, match=r"^fit: the L2 penalty became inf at epoch 1, batch 1; that step was "
                       r"not applied: l2=1e\+39 is too large") as caught:
        with np.errstate(all="ignore"):
            fit(model, "mse", nn.SGD(model, lr=0.1), (x, y), l2=1e39, verbose=False)
    assert caught.value.cause == "l2_penalty"


def test_inputs_too_large_for_float32_blame_the_data_not_the_learning_rate():
    model = nn.Linear(2, 2, seed=0, dtype=np.float32)
    with pytest.raises(NonFiniteError, match=r"before any update, so the learning rate is not the cause; check the "
                       r"scale of the inputs \(the largest \|x\| in this batch is 4e\+30\) and the model's "
                       "initial weights$"):
        with np.errstate(all="ignore"):
            fit(model, "mse", nn.SGD(model, lr=0.1), (np.array([[1e30, 2e30], [3e30, 4e30]], np.float32),
                np.array([0, 1])), verbose=False)


def test_a_model_with_nan_weights_is_refused_before_training():
    model = nn.Linear(2, 2, seed=0)
    model.bias.data[1] = np.nan
    with pytest.raises(ValueError, match=r"^fit: the model's bias holds nan before training"):
        fit(model, "mse", nn.SGD(model, lr=0.1), (np.ones((2, 2)), np.array([0, 1])), verbose=False)


@pytest.mark.parametrize("kwargs, pattern", [
    (dict(epochs=float("nan")), r"^fit: epochs must be a whole number >= 0, got nan$"),
    (dict(epochs=2.5), "epochs must be a whole number >= 0, got 2.5"),
    (dict(epochs=-1), "epochs must be a whole number >= 0, got -1"),
    (dict(epochs="3"), "epochs must be a whole number >= 0, got '3'"),
    (dict(epochs=True), "epochs must be a whole number >= 0, got True"),
    (dict(batch_size=0), "batch_size must be a whole number >= 1, got 0"),
    (dict(batch_size=-4), "batch_size must be a whole number >= 1, got -4"),
    (dict(batch_size=1.5), "batch_size must be a whole number >= 1, got 1.5"),
    (dict(l2=float("nan")), "l2 must be a finite number >= 0, got nan"),
    (dict(l2=-1e-3), "l2 must be a finite number >= 0, got -0.001"),
    (dict(early_stopping=0), r"early_stopping \(a patience in epochs\) must be a whole number >= 1, got 0"),
])
def test_bad_fit_arguments_are_refused_naming_the_argument(kwargs, pattern):
    model = nn.Linear(2, 2, seed=0)
    with pytest.raises(ValueError, match=pattern):
        fit(model, "mse", nn.SGD(model, lr=0.1), (np.ones((2, 2)), np.array([0, 1])), verbose=False, **kwargs)


def test_whole_float_epochs_are_accepted_and_a_nan_learning_rate_is_refused():
    model = nn.Linear(2, 2, seed=0)
    opt = nn.SGD(model, lr=0.1)
    assert fit(model, "mse", opt, (np.ones((2, 2)), np.array([0, 1])), epochs=2.0, verbose=False).epochs == 2
    opt.lr = float("nan")
    with pytest.raises(ValueError, match="the optimizer's learning rate lr must be a finite number >= 0, got nan"):
        fit(model, "mse", opt, (np.ones((2, 2)), np.array([0, 1])), verbose=False)


def test_predict_and_evaluate_refuse_nan_or_inf_inputs_naming_the_first(digits):
    _, (x, y) = digits
    model = _lecture_net()
    bad = x[:5].copy()
    bad[3, 17] = np.nan
    for function, args in ((predict, ()), (predict_proba, ()), (evaluate, (y[:5],))):
        name = function.__name__
        with pytest.raises(ValueError, match=rf"^{name}: the inputs hold nan at sample 3, feature 17 \(1 NaN or inf "
                           r"value in all\); a model cannot classify them$"):
            function(model, bad, *args)
    images = np.zeros((2, 8, 8))
    images[1, 1, 2] = np.inf
    with pytest.raises(ValueError, match=r"predict: the inputs hold inf at sample 1, feature \(1, 2\)"):
        predict(model, images)
    with pytest.raises(ValueError, match="predict: batch_size must be a whole number >= 1, got 0"):
        predict(model, x[:5], batch_size=0)


def test_ctrl_c_stops_after_the_current_batch_with_the_weights_usable(digits):
    (x, y), _ = digits
    model = _lecture_net()

    def press_ctrl_c(epoch, logs):
        if epoch == 2:
            signal.raise_signal(signal.SIGINT)

    with pytest.raises(TrainingInterrupted, match=r"^fit: interrupted \(Ctrl-C\) after epoch 3/10, batch 1/45$") as caught:
        fit(model, "bce", nn.SGD(model, lr=1.0), (x, y), epochs=10, callbacks=[press_ctrl_c], verbose=False)
    stop = caught.value
    assert isinstance(stop, KeyboardInterrupt)
    assert (stop.epoch, stop.epochs, stop.batch, stop.batches, stop.history.epochs) == (3, 10, 1, 45, 2)
    assert not model.training and all(np.isfinite(p.data).all() for p in model.parameters())
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_ctrl_c_right_after_an_update_that_overflows_does_not_hand_back_inf_weights():
    model = nn.Linear(2, 2, seed=0, dtype=np.float32)
    initial = [p.data.copy() for p in model.parameters()]

    class PressedDuringTheStep(nn.SGD):
        def step(self):
            super().step()                        # lr * gradient overflows float32: the weights become inf
            signal.raise_signal(signal.SIGINT)

    x = np.array([[1, 2], [3, 4]], np.float32)
    with pytest.raises(NonFiniteError, match=r"in an update of epoch 1 \(found at batch 1\); the model has its "
                                             r"initial weights"):
        with np.errstate(all="ignore"):
            fit(model, "mse", PressedDuringTheStep(model, lr=3e38), (x, np.array([0, 1])), batch_size=1,
                verbose=False)
    assert all(np.array_equal(p.data, b) for p, b in zip(model.parameters(), initial))
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_a_second_ctrl_c_interrupts_at_once(digits):
    (x, y), _ = digits
    model = _lecture_net()

    def press_ctrl_c_twice(epoch, logs):
        signal.raise_signal(signal.SIGINT)
        signal.raise_signal(signal.SIGINT)

    with pytest.raises(KeyboardInterrupt) as caught:
        fit(model, "bce", nn.SGD(model, lr=1.0), (x, y), epochs=10, callbacks=[press_ctrl_c_twice], verbose=False)
    assert not isinstance(caught.value, TrainingInterrupted)
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler and not model.training


def test_history_repr_and_access():
    h = History()
    h.append({"loss": 1.0, "accuracy": 0.5})
    assert h.epochs == 1 and h["loss"] == [1.0] and "epochs=1" in repr(h)


def test_evaluation_of_predictions_counts_and_tabulates():
    result = nn.Evaluation.of_predictions(np.array([0, 1, 2, 2]), np.array([0, 1, 1, 2]), 3)
    assert result.accuracy == 0.75 and result.correct == 3 and np.isnan(result.loss)
    assert result.confusion.tolist() == [[1, 0, 0], [0, 1, 0], [0, 1, 1]]
    table = result.confusion_table(["a", "b", "c"]).splitlines()
    assert table[0].strip() == "predicted ->" and table[-1].split() == ["c", "0", "1", "1"]


def test_history_writes_its_per_epoch_log_as_csv(tmp_path):
    history = History()
    history.append({"loss": 0.5, "accuracy": 0.75})
    history.append({"loss": 0.25, "accuracy": 0.875})
    history.write_csv(str(tmp_path / "h.csv"))
    assert (tmp_path / "h.csv").read_text().splitlines() == ["epoch,loss,accuracy", "1,0.5,0.75", "2,0.25,0.875"]
    assert [p.name for p in tmp_path.iterdir()] == ["h.csv"]      # no temporary file left


def test_history_plot_labels_its_axes_and_ticks_whole_epochs(tmp_path):
    pytest.importorskip("matplotlib")
    history = History()
    for e in range(7):
        history.append({"loss": 1 / (e + 1), "accuracy": e / 7, "val_loss": 1.2 / (e + 1), "val_accuracy": e / 8})
    history.best_epoch = 7
    fig = history.plot(str(tmp_path / "c.png"))
    loss_ax, acc_ax = fig.axes
    assert loss_ax.get_xlabel() == "epoch" and loss_ax.get_ylabel().startswith("loss")
    assert acc_ax.get_ylabel() == "accuracy"
    assert all(float(t).is_integer() for t in loss_ax.get_xticks())
    assert {"training", "validation"} <= {line.get_label() for line in loss_ax.get_lines()}
    assert (tmp_path / "c.png").read_bytes().startswith(b"\x89PNG")
    with pytest.raises(ValueError, match=r"cannot write '\.xyz' files"):
        history.plot(str(tmp_path / "c.xyz"))


def test_history_plot_to_a_file_leaves_the_users_matplotlib_backend_as_it_was(tmp_path):
    matplotlib = pytest.importorskip("matplotlib")
    history = History()
    history.append({"loss": 0.5, "accuracy": 0.75})
    before = matplotlib.get_backend()
    matplotlib.use("svg")       # a backend of the user's, other than the Agg a file needs
    try:
        history.plot(str(tmp_path / "c.png"))
        assert matplotlib.get_backend() == "svg"
    finally:
        matplotlib.use(before)
    assert (tmp_path / "c.png").read_bytes().startswith(b"\x89PNG")
