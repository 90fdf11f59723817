"""The training loop: `fit` a model on (x, labels), with progress, history, validation and early
stopping; `evaluate` it (loss, accuracy, confusion matrix); `predict` and `predict_proba`.

One pass over the training set is an epoch; each mini-batch does forward, loss (+ the L2
penalty lam/2 sum W**2), backward, optimizer step. Everything random (batch order, dropout
masks) comes from seeded generators, so the same seeds give the same history.
"""
from __future__ import annotations

import contextlib
import math
import numbers
import signal
import sys
import threading
import time
import warnings
import weakref
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, IO, List, Optional, Sequence, Tuple, Union

import numpy as np

import autograd_lite as ag
from autograd_lite import Tensor
from autograd_lite.engine import replayed
from autograd_lite.files import atomic_path, atomic_write

from .data import batches, check_labels, one_hot
from .diagnostics import EpochDiagnostics, TrainingMonitor, TrainingWarning
from .losses import (binary_cross_entropy, binary_cross_entropy_with_logits, l2_penalty, mse,
                     sparse_categorical_cross_entropy)
from .module import Module
from .progress import Progress
from .optim import SGD

LossFn = Callable[[Tensor, np.ndarray], Tensor]
Callback = Callable[[int, Dict[str, float]], Optional[bool]]


# ---------------------------------------------------------------- losses by name
# The labels' one-hot rows are NumPy work on an argument: inside ag.compile it is replayed at
# every call (engine.replayed) instead of being frozen at the first batch's labels.
_one_hot = replayed(one_hot)


def _bce(outputs: Tensor, labels: np.ndarray) -> Tensor:
    return binary_cross_entropy(outputs, _one_hot(labels, outputs.shape[-1], outputs.dtype))


def _bce_logits(outputs: Tensor, labels: np.ndarray) -> Tensor:
    return binary_cross_entropy_with_logits(outputs, _one_hot(labels, outputs.shape[-1], outputs.dtype))


def _ce(outputs: Tensor, labels: np.ndarray) -> Tensor:
    return sparse_categorical_cross_entropy(outputs, labels)


def _mse(outputs: Tensor, labels: np.ndarray) -> Tensor:
    return mse(outputs, _one_hot(labels, outputs.shape[-1], outputs.dtype))


# name -> (loss of (model outputs, integer labels), mean over samples; the output activation it expects)
LOSSES: Dict[str, Tuple[LossFn, Optional[str]]] = {
    "bce": (_bce, "sigmoid"),               # the lecture's logistic cost on one-hot targets
    "bce_logits": (_bce_logits, None),      # the same cost computed from logits (stable)
    "ce": (_ce, None),                      # softmax cross-entropy from logits
    "mse": (_mse, None),                    # squared error on one-hot targets
}


def get_loss(loss: Union[str, LossFn]) -> LossFn:
    """A loss function `(outputs, labels) -> scalar Tensor` from a name in LOSSES or a callable."""
    if callable(loss):
        return loss
    if loss not in LOSSES:
        raise ValueError(f"fit: unknown loss {loss!r}; choose one of {', '.join(LOSSES)} or pass a "
                         "function (outputs, labels) -> scalar Tensor")
    return LOSSES[loss][0]


# ---------------------------------------------------------------- results
@dataclass
class History:
    """Per-epoch records of a `fit` run: `history["loss"]`, `["accuracy"]`, `["val_loss"]`,
    `["val_accuracy"]`, `["lr"]`, `["seconds"]` (lists, one entry per epoch)."""

    history: Dict[str, List[float]] = field(default_factory=dict)
    best_epoch: Optional[int] = None     # 1-based; the epoch whose weights the model has after
    stopped_early: bool = False          # early stopping (restore_best_weights)
    diagnostics: List[EpochDiagnostics] = field(default_factory=list)  # per epoch, with diagnostics=True

    def append(self, logs: Dict[str, float]) -> None:
        for key, value in logs.items():
            self.history.setdefault(key, []).append(float(value))

    @property
    def epochs(self) -> int:
        return len(self.history.get("loss", []))

    def __getitem__(self, key: str) -> List[float]:
        return self.history[key]

    def __repr__(self) -> str:
        last = {k: round(v[-1], 4) for k, v in self.history.items() if v}
        return f"History(epochs={self.epochs}, best_epoch={self.best_epoch}, last={last})"

    def write_csv(self, path: str) -> None:
        """Write the per-epoch log as CSV (a header `epoch,loss,accuracy,...`, one row per epoch),
        atomically: a temporary file in the same folder, then renamed over `path`."""
        keys = list(self.history)
        with atomic_write(path, "History.write_csv", "w") as f:
            f.write(",".join(["epoch", *keys]) + "\n")
            for i in range(self.epochs):
                f.write(",".join([str(i + 1)] + [repr(self.history[k][i]) if i < len(self.history[k]) else ""
                                                 for k in keys]) + "\n")

    @staticmethod
    def plot_formats() -> Dict[str, str]:
        """The file formats `plot` can write: extension -> description (matplotlib's list); an
        ImportError naming the `plot` extra when matplotlib is not installed."""
        try:
            from matplotlib.backend_bases import FigureCanvasBase
        except ImportError:
            raise ImportError("plotting needs matplotlib, which is not installed: "
                              "pip install 'autograd-lite[plot]'") from None
        return dict(FigureCanvasBase.get_supported_filetypes())

    def plot(self, path: Optional[str] = None, *, others: Sequence["History"] = ()) -> Any:
        """Loss and accuracy per epoch, side by side: training solid, validation dashed, the epoch
        of the lowest validation loss marked; labelled axes, whole-number epoch ticks. `others` (an ensemble's other
        members) are drawn on the same axes, each labelled by model. Written to `path` in the format
        its extension names (atomically) when given, on a Figure of its own that leaves pyplot and
        its backend untouched; else a pyplot figure left open to show. Returns the matplotlib Figure.
        Needs matplotlib (the `plot` extra).

        Example:
            >>> history = nn.fit(...); history.plot("curves.png")
        """
        formats = History.plot_formats()
        file_format = None
        if path is not None:
            file_format = Path(path).suffix.lower().lstrip(".")
            if file_format not in formats:
                what = f"'.{file_format}' files" if file_format else "a file name without an extension"
                raise ValueError(f"History.plot: matplotlib cannot write {what} ({path}); use one of "
                                 f"{', '.join('.' + e for e in sorted(formats))}")
            from matplotlib.figure import Figure
            fig = Figure(figsize=(10, 4))
            axes = fig.subplots(1, 2)
        else:
            import matplotlib.pyplot as plt
            fig, axes = plt.subplots(1, 2, figsize=(10, 4))
        from matplotlib.ticker import MaxNLocator
        runs = [self, *others]
        for i, h in enumerate(runs):
            tag = f" (model {i + 1})" if len(runs) > 1 else ""
            epochs = range(1, h.epochs + 1)
            for ax, (train_key, val_key) in zip(axes, (("loss", "val_loss"), ("accuracy", "val_accuracy"))):
                for key, style, name in ((train_key, "-", "training"), (val_key, "--", "validation")):
                    if key in h.history:
                        ax.plot(epochs, h[key], style, color=f"C{i}", label=name + tag)
                if "val_loss" in h.history and len(runs) == 1:
                    best = int(np.argmin(h["val_loss"])) + 1
                    ax.axvline(best, color="0.6", linewidth=0.8, label=f"lowest validation loss (epoch {best})")
        for ax, what in zip(axes, ("loss (mean per sample)", "accuracy")):
            ax.set(xlabel="epoch", ylabel=what, title=what.split(" ")[0])
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
            ax.grid(alpha=0.3)
            ax.legend()
        fig.tight_layout()
        if path is not None:
            with atomic_path(path, "History.plot") as tmp:
                fig.savefig(tmp, format=file_format, dpi=100)
        return fig


@dataclass
class Evaluation:
    """`evaluate`'s result: mean loss, accuracy, and the confusion matrix (rows: true class,
    columns: predicted class)."""

    loss: float
    accuracy: float
    confusion: np.ndarray
    samples: int

    def __repr__(self) -> str:
        return f"Evaluation(loss={self.loss:.4f}, accuracy={self.accuracy:.4f}, samples={self.samples})"

    @classmethod
    def of_predictions(cls, labels: np.ndarray, predicted: np.ndarray, num_classes: int,
                       loss: float = float("nan")) -> "Evaluation":
        """The Evaluation of predicted classes against labels (e.g. the argmax of an ensemble's
        averaged probabilities); `loss` is NaN unless given."""
        labels, predicted = np.asarray(labels, np.int64), np.asarray(predicted, np.int64)
        n = len(labels)
        return cls(loss=loss, accuracy=float(np.mean(predicted == labels)) if n else float("nan"),
                   confusion=confusion_matrix(labels, predicted, num_classes), samples=n)

    @property
    def correct(self) -> int:
        """How many samples were classified right (the confusion matrix's diagonal)."""
        return int(np.trace(self.confusion))

    def confusion_table(self, classes: Optional[Sequence[str]] = None) -> str:
        """The confusion matrix as a text table: rows are the true classes, columns the predictions."""
        confusion = self.confusion
        names = [str(c) for c in (classes if classes is not None else range(len(confusion)))]
        width = max(max(len(n) for n in names), len(str(int(confusion.max(initial=0)))), 3)
        label_width = max(len(n) for n in names) + 1
        lines = [" " * label_width + "predicted ->",
                 " " * label_width + " ".join(n[:width].rjust(width) for n in names)]
        for name, row in zip(names, confusion):
            lines.append(name.rjust(label_width - 1) + " " + " ".join(str(int(v)).rjust(width) for v in row))
        return "\n".join(lines)


# ---------------------------------------------------------------- why training stopped early
class NonFiniteError(FloatingPointError):
    """`fit` stopped because a batch's loss or gradients, or the weights, became NaN or inf.

    That batch's step was not applied, and the model has its last finite weights, in eval mode.
    `what` and `where` say what happened ("the loss became inf", "at epoch 3, batch 7"; `epoch`
    and `batch` are 1-based); `cause` names the culprit: "lr" (likely: the learning rate), "lr_l2"
    (lr * l2 so large that SGD's weight decay alone overshoots, e.g. >= 2 without momentum),
    "l2_penalty" (the penalty itself overflowed before any update) or "inputs" (no update had been
    applied yet, so the scale of the inputs or the initial weights).
    """

    def __init__(self, message: str, what: str, where: str, epoch: int, batch: int, cause: str) -> None:
        super().__init__(message)
        self.what, self.where, self.epoch, self.batch, self.cause = what, where, epoch, batch, cause


class TrainingInterrupted(KeyboardInterrupt):
    """Ctrl-C during `fit`: training stopped after a whole batch, so no update is half-applied and
    the model (in eval mode) can be saved (if that batch's update overflowed, `fit` raises a
    `NonFiniteError` instead). `epoch` of `epochs` and `batch` of `batches` (1-based;
    the last batch done) say how far it got; `history` holds the epochs completed."""

    def __init__(self, message: str, epoch: int, epochs: int, batch: int, batches: int,
                 history: "History") -> None:
        super().__init__(message)
        self.epoch, self.epochs, self.batch, self.batches, self.history = epoch, epochs, batch, batches, history


# ---------------------------------------------------------------- the loop
def fit(model: Module, loss: Union[str, LossFn], optimizer: Any, train: Tuple[np.ndarray, np.ndarray],
        validation: Optional[Tuple[np.ndarray, np.ndarray]] = None, epochs: int = 10,
        batch_size: Optional[int] = 32, l2: float = 0.0, schedule: Any = None,
        early_stopping: Optional[int] = None, restore_best_weights: bool = True,
        callbacks: Sequence[Callback] = (), seed: Optional[int] = 0, verbose: Union[bool, int] = True,
        file: Optional[IO[str]] = None, anomaly: bool = False, diagnostics: bool = False,
        log_every: Optional[int] = None,
        compile: bool = True) -> History:
    """Train `model` on `train = (x, labels)` for `epochs` passes of mini-batches; return a History.

    - `loss`: a name in LOSSES ("bce" is the lecture's logistic cost for sigmoid outputs, "ce"
      softmax cross-entropy from logits) or a function (outputs, integer labels) -> scalar Tensor,
      averaged over the batch's samples.
    - `l2`: adds the lecture's penalty lam/2 * sum of squared weights (biases excluded) to each
      batch's loss, so each step moves W by lr * (dJ/dW + l2 * W).
    - `batch_size`: None = batch gradient descent, b = mini-batch, 1 = stochastic.
    - `schedule`: an LRSchedule (e.g. `CosineDecay(optimizer, epochs)`), stepped after each epoch.
    - `early_stopping=N`: stop after N epochs without a better validation loss (training loss
      when there is no validation set) and, with `restore_best_weights`, go back to the best.
    - `callbacks`: functions (epoch, logs) called after each epoch; returning True stops training.
    - `seed`: the batch order; the same seeds (here and in the model) give the same history.
    - `verbose`: as Keras has it, on `file` (stdout): 0 (or False) silent; 1 (or True) a progress
      bar with the run's ETA on a terminal or in Jupyter (tqdm's when installed); 2 one line per
      epoch. Output that is not a terminal gets a line every `log_every` epochs (default: about 20
      lines per run) and the last; the first run says when Numba is compiling (see nn/progress.py).
    - `anomaly`: train inside `autograd_lite.detect_anomaly()`, which stops at the first primitive
      that makes a NaN or an Inf and names it (slower; for finding where a loss turns NaN).
    - `diagnostics`: per layer and epoch, the gradient norm, the weight norm and the share of
      saturated (sigmoid/tanh) or dead (ReLU) units, in `history.diagnostics` (and printed when
      verbose); a `TrainingWarning` when a layer saturates, its gradients vanish or explode, or
      the loss sits on a plateau (see nn/diagnostics.py).

    `compile=True` (the default) runs each batch's forward, loss and backward as a program
    captured by `ag.compile` at the first batch and replayed after (same numbers as eager, less
    Python per batch); `compile=False` runs them eagerly, op by op, for debugging. `anomaly` and
    `diagnostics` need the eager path and turn compilation off; a custom loss that reads values
    from Python makes it fall back to eager with one CompileWarning.

    Inputs with NaN or inf are refused before training (ValueError). A batch whose loss or
    gradients are NaN or inf is not applied: training stops with a `NonFiniteError` that says
    where and names the likely cause, and the model keeps its last finite weights. Ctrl-C stops
    after the current batch with a `TrainingInterrupted` (a KeyboardInterrupt); a second Ctrl-C
    stops at once. Either way the model is left in eval mode.

    Example:
        >>> model = nn.MLP([64, 100, 10], activation="sigmoid", output_activation="sigmoid", seed=0)
        >>> history = nn.fit(model, "bce", nn.SGD(model, lr=2.0), (x, y), epochs=20, l2=3e-4)
    """
    loss_fn = get_loss(loss)
    if isinstance(loss, str):
        _check_output_activation(model, loss)
    x, y = _check_xy("fit", *_labels_as_indices("fit", train))
    _check_finite("fit", x, "remove or replace them before training")
    val = None
    if validation is not None:
        val = _check_xy("fit (validation)", *_labels_as_indices("fit (validation)", validation))
        _check_finite("fit (validation)", val[0], "remove or replace them before training")
    epochs = _whole_number("fit", "epochs", epochs, minimum=0)
    if batch_size is not None:
        batch_size = _whole_number("fit", "batch_size", batch_size, minimum=1)
    if early_stopping is not None:
        early_stopping = _whole_number("fit", "early_stopping (a patience in epochs)", early_stopping, minimum=1)
        if val is None:
            warnings.warn("fit: early_stopping without a validation set watches the training loss, which "
                          "keeps falling as the model overfits; pass validation=(x_val, y_val), e.g. from "
                          "nn.data.stratified_split(x, y, 0.1)", TrainingWarning, stacklevel=2)
    if isinstance(l2, bool) or not isinstance(l2, numbers.Real) or not (math.isfinite(l2) and l2 >= 0):
        raise ValueError(f"fit: l2 must be a finite number >= 0, got {l2!r}")
    rate = getattr(optimizer, "lr", None)
    if rate is not None and not (isinstance(rate, numbers.Real) and math.isfinite(rate) and rate >= 0):
        raise ValueError(f"fit: the optimizer's learning rate lr must be a finite number >= 0, got {rate!r}")
    batch_iter = batches(x, y, batch_size, shuffle=True, seed=seed)
    verbose = _verbosity(verbose)
    if log_every is not None:
        log_every = _whole_number("fit", "log_every", log_every, minimum=1)
    out = sys.stdout if file is None else file
    progress = Progress(verbose, epochs, len(batch_iter), out, log_every)
    history = History()
    monitor = "val_loss" if val is not None else "loss"
    best, best_epoch, best_state, waited = math.inf, None, None, 0
    watcher = TrainingMonitor(model, l2=l2) if diagnostics else None
    guard = _FiniteGuard(model, optimizer, l2, custom_loss=callable(loss))
    forward_backward = (_compiled_forward_backward(model, loss_fn, l2, optimizer)
                        if compile and not anomaly and not diagnostics else None)
    try:
        with ag.detect_anomaly(enabled=anomaly), (watcher or contextlib.nullcontext()), _CtrlC() as ctrl_c:
            for epoch in range(1, epochs + 1):
                model.train()
                started = time.perf_counter()
                total_loss, correct, seen = 0.0, 0, 0
                lr = float(getattr(optimizer, "lr", float("nan")))
                if watcher:
                    watcher.start_epoch()
                for i, (xb, yb) in enumerate(batch_iter, 1):
                    if forward_backward is not None:   # zero_grad and backward included
                        outputs, data_loss, cost = forward_backward(xb, yb)
                    else:
                        outputs, data_loss, cost = _batch_cost(model, loss_fn, l2, xb, yb)
                    value = float(cost.data)
                    if not math.isfinite(value):
                        penalty_only = bool(l2) and math.isfinite(float(data_loss.data))
                        what = f"the {'L2 penalty' if penalty_only else 'loss'} became {value}"
                        raise guard.stop(what, epoch, i, xb, penalty_only)
                    if forward_backward is None:
                        optimizer.zero_grad()
                        cost.backward()
                    if watcher:
                        watcher.after_backward()
                    broken = guard.bad_gradient()
                    if broken:
                        raise guard.stop(f"the gradient of {broken}", epoch, i, xb)
                    optimizer.step()
                    guard.steps += 1
                    total_loss += value * len(yb)
                    correct += int(np.sum(np.argmax(outputs.data, axis=-1) == yb))
                    seen += len(yb)
                    progress.batch(epoch, i, total_loss / seen, seen, time.perf_counter() - started)
                    if ctrl_c.pressed:
                        progress.close()
                        guard.check_weights(epoch, i)   # never hand back an update that just overflowed
                        raise _interrupted(epoch, epochs, i, len(batch_iter), history)
                guard.end_epoch(epoch, len(batch_iter))
                logs = {"loss": total_loss / max(seen, 1), "accuracy": correct / max(seen, 1)}
                if watcher:
                    history.diagnostics.append(watcher.end_epoch(epoch, logs["loss"], lr))
                if val is not None:
                    result = _evaluate(model, val[0], val[1], loss_fn, 1024, None)
                    logs.update(val_loss=result.loss, val_accuracy=result.accuracy)
                logs.update(lr=lr, seconds=time.perf_counter() - started)
                history.append(logs)
                if schedule is not None:
                    schedule.step()
                shown = progress.epoch(epoch, logs, last=epoch == epochs)
                if watcher:
                    progress.line(history.diagnostics[-1].table())
                if ctrl_c.pressed:
                    raise _interrupted(epoch, epochs, len(batch_iter), len(batch_iter), history)
                stop = False
                if logs[monitor] < best:
                    best, best_epoch, waited = logs[monitor], epoch, 0
                    if early_stopping is not None and restore_best_weights:
                        best_state = model.state_dict()
                else:
                    waited += 1
                    stop = early_stopping is not None and waited >= early_stopping
                for callback in callbacks:
                    stop = bool(callback(epoch, dict(logs))) or stop
                if stop and not shown:      # the last epoch's line, when early stopping made it the last
                    progress.epoch(epoch, logs, last=True)
                if stop:
                    history.stopped_early = True
                    break
    finally:
        progress.close()
        model.eval()
    history.best_epoch = history.epochs or None
    if best_state is not None and best_epoch != history.epochs:
        model.load_state_dict(best_state)
        history.best_epoch = best_epoch
        progress.line(f"restored the weights of epoch {best_epoch} ({monitor} {best:.4f})")
    elif val is not None and best_epoch is not None and history.epochs > 1:
        logs = {k: v[best_epoch - 1] for k, v in history.history.items()}
        progress.line(f"best epoch {best_epoch}/{history.epochs}: val_loss {logs['val_loss']:.4f}  "
                      f"val_acc {logs['val_accuracy']:.4f}")
    return history


def _batch_cost(model: Module, loss_fn: LossFn, l2: float, xb: np.ndarray,
                yb: np.ndarray) -> Tuple[Tensor, Tensor, Tensor]:
    """One batch's outputs, data loss and cost J = data loss + lambda/2 ||W||^2 (biases excluded)."""
    outputs = model(xb)
    data_loss = loss_fn(outputs, yb)
    return outputs, data_loss, (data_loss + l2_penalty(model, l2) if l2 else data_loss)


def _compiled_forward_backward(model: Module, loss_fn: LossFn, l2: float, optimizer: Any) -> Callable:
    """fit's batch up to the optimizer step, compiled: (outputs, data loss, cost) from (x, labels),
    the gradients left in the parameters' .grad. The step itself stays outside, so a batch with a
    non-finite loss or gradient is still refused before it changes the weights."""
    def forward_backward(xb: np.ndarray, yb: np.ndarray) -> Tuple[Tensor, Tensor, Tensor]:
        outputs, data_loss, cost = _batch_cost(model, loss_fn, l2, xb, yb)
        optimizer.zero_grad()
        cost.backward()
        return outputs, data_loss, cost
    compiled = ag.compile(forward_backward, fallback=True)
    first = next(iter(model.parameters()), None)
    return lambda xb, yb: compiled(_in_dtype_of(first, xb), yb)


def _in_dtype_of(parameter: Optional[Tensor], x: np.ndarray) -> np.ndarray:
    """x converted to the dtype of the model's parameters before a compiled call (the model
    would convert it inside, a NumPy copy that a trace could only freeze)."""
    if parameter is None or x.dtype == parameter.dtype:
        return x
    return x.astype(parameter.dtype)


# One compiled forward per model for predict / evaluate (eval mode, no graph), dropped with the model.
_INFERENCE: "weakref.WeakKeyDictionary[Module, Callable]" = weakref.WeakKeyDictionary()


def _inference(model: Module) -> Callable:
    compiled = _INFERENCE.get(model)
    if compiled is None:
        ref = weakref.ref(model)   # the cache must not keep its key alive
        compiled = _INFERENCE[model] = ag.compile(lambda xb: ref()(xb), fallback=True)
    first = next(iter(model.parameters()), None)
    return lambda xb: compiled(_in_dtype_of(first, xb))


# ---------------------------------------------------------------- using a trained model
def predict_proba(model: Module, x: np.ndarray, batch_size: int = 1024) -> np.ndarray:
    """Class probabilities (samples, classes), rows summing to 1, in eval mode without a graph.

    Softmax outputs are returned as they are; sigmoid outputs (the lecture's network, one unit
    per class) are divided by their row sum; logits (no output activation) go through softmax.
    Inputs with NaN or inf are refused (ValueError naming the first one). A model that carries its
    `preprocessing` (one loaded from a file that records it) takes raw pixels, one image or a stack,
    flat or as images (e.g. (n, 8, 8) in 0..16, as `load_digits()` gives them), and scales them itself.
    """
    outputs = _forward("predict_proba", model, _model_inputs("predict_proba", model, x), batch_size)
    kind = getattr(model, "output_activation_name", None)
    if kind == "softmax":
        return outputs
    if kind in ("sigmoid", "relu"):
        total = outputs.sum(axis=-1, keepdims=True)
        return np.divide(outputs, total, out=np.full_like(outputs, 1.0 / outputs.shape[-1]),
                         where=total > 0)
    shifted = outputs - outputs.max(axis=-1, keepdims=True)
    e = np.exp(shifted)
    return e / e.sum(axis=-1, keepdims=True)


def predict(model: Module, x: np.ndarray, batch_size: int = 1024) -> np.ndarray:
    """The predicted class of each sample (argmax of the outputs), as int64; inputs with NaN or
    inf are refused (ValueError naming the first one). Raw pixels for a model that carries its
    `preprocessing`, as in `predict_proba`.

    Example:
        >>> model = nn.load("digits.npz"); nn.predict(model, nn.datasets.load_digits().x_test)
    """
    return np.argmax(_forward("predict", model, _model_inputs("predict", model, x), batch_size),
                     axis=-1).astype(np.int64)


def evaluate(model: Module, x: np.ndarray, labels: np.ndarray, loss: Union[str, LossFn, None] = None,
             batch_size: int = 1024, num_classes: Optional[int] = None) -> Evaluation:
    """Loss (mean over samples; NaN when `loss` is None), accuracy and confusion matrix on (x, labels).

    Inputs with NaN or inf are refused (ValueError naming the first one). Raw pixels for a model that
    carries its `preprocessing`, as in `predict_proba`.

    Example:
        >>> result = nn.evaluate(model, x_test, y_test, loss="bce")
        >>> result.accuracy, result.confusion[3, 5]   # how many 3s were taken for 5s
    """
    x, labels = _check_xy("evaluate", x, labels)
    x = _model_inputs("evaluate", model, x)
    _check_finite("evaluate", x, "a model cannot classify them")
    batch_size = _whole_number("evaluate", "batch_size", batch_size, minimum=1)
    return _evaluate(model, x, labels, None if loss is None else get_loss(loss), batch_size, num_classes)


def _evaluate(model: Module, x: np.ndarray, labels: np.ndarray, loss_fn: Optional[LossFn],
              batch_size: int, num_classes: Optional[int]) -> Evaluation:
    """`evaluate` on arguments already checked (fit checks its validation set once, not every epoch)."""
    was_training = getattr(model, "training", False)
    model.eval()
    total, outputs = 0.0, []
    try:
        forward = _inference(model)
        with ag.no_grad():
            for start in range(0, len(x), batch_size):
                out = forward(x[start:start + batch_size])
                if loss_fn is not None:
                    yb = labels[start:start + batch_size]
                    total += float(loss_fn(out, yb).data) * len(yb)
                outputs.append(out.data)
    finally:
        model.train(was_training)
    out = np.concatenate(outputs) if outputs else np.zeros((0, num_classes or 0))
    classes = num_classes or out.shape[-1]
    predicted = np.argmax(out, axis=-1)
    check_labels(labels, classes, "evaluate")
    confusion = confusion_matrix(labels, predicted, classes)
    n = len(labels)
    return Evaluation(loss=total / n if (loss_fn is not None and n) else float("nan"),
                      accuracy=float(np.mean(predicted == labels)) if n else float("nan"),
                      confusion=confusion, samples=n)


def confusion_matrix(labels: np.ndarray, predicted: np.ndarray, num_classes: int) -> np.ndarray:
    """(num_classes, num_classes) int64 counts: row the true class, column the predicted one."""
    flat = np.asarray(labels, np.int64) * num_classes + np.asarray(predicted, np.int64)
    return np.bincount(flat, minlength=num_classes * num_classes).reshape(num_classes, num_classes)


# ---------------------------------------------------------------- helpers
def _model_inputs(where: str, model: Module, x: Any) -> Any:
    """`x` scaled by the model's `preprocessing` when it has one (raw pixels in), else as given."""
    preprocessing = getattr(model, "preprocessing", None)
    return x if preprocessing is None else preprocessing.apply(x, where)


def _forward(where: str, model: Module, x: Any, batch_size: int) -> np.ndarray:
    x = np.asarray(x)
    _check_finite(where, x, "a model cannot classify them")
    batch_size = _whole_number(where, "batch_size", batch_size, minimum=1)
    was_training = getattr(model, "training", False)
    model.eval()
    try:
        forward = _inference(model)
        with ag.no_grad():
            parts = [forward(x[s:s + batch_size]).data for s in range(0, len(x), batch_size)]
    finally:
        model.train(was_training)
    return np.concatenate(parts) if parts else np.zeros((0,))


def _check_output_activation(model: Module, loss: str) -> None:
    """A TrainingWarning when a named loss meets outputs it was not made for (e.g. "ce", which
    applies softmax itself, on sigmoid outputs): training runs, but learns badly or gives NaN."""
    expected = LOSSES[loss][1]
    actual = getattr(model, "output_activation_name", expected)
    if loss not in ("bce", "bce_logits", "ce") or actual == expected:
        return
    takes = {"bce": "probabilities from one sigmoid per class", "bce_logits": "logits (it applies the sigmoid itself)",
             "ce": "logits (it applies the softmax itself)"}[loss]
    other = {"sigmoid": "bce", None: "ce"}.get(actual)
    gives = "logits (no output activation)" if actual is None else f"{actual} outputs"
    warnings.warn(f"fit: loss {loss!r} takes {takes}, but the model gives {gives}; build the model "
                  f"with output_activation={expected!r}"
                  + (f", or use loss {other!r}" if other else ""), TrainingWarning, stacklevel=3)


def _labels_as_indices(where: str, pair: Any) -> Any:
    """(x, labels) with whole-number float labels or one-hot rows turned into class indices, each
    with a one-line TrainingWarning that says how to pass them; float labels that are not whole
    numbers are refused (rounding them would invent classes). Anything else is left to _check_xy."""
    if not (isinstance(pair, (tuple, list)) and len(pair) == 2):
        return pair
    x, labels = pair
    y = np.asarray(labels)
    if y.size == 0:
        return pair
    if y.ndim == 2 and y.shape[1] >= 2 and y.dtype.kind in "iubf" and np.all((y == 0) | (y == 1)) \
            and np.all(y.sum(axis=1) == 1):
        warnings.warn(f"{where}: labels of shape {y.shape} are one-hot rows; converted them to class indices "
                      "(pass labels.argmax(axis=1) to do it yourself)", TrainingWarning, stacklevel=3)
        return x, y.argmax(axis=1)
    if y.ndim == 2 and y.shape[1] >= 2:
        raise ValueError(f"{where}: labels must be class indices of shape (samples,), got shape {y.shape} "
                         "whose rows are not one-hot; for hard labels pass labels.argmax(axis=1)")
    if y.ndim == 1 and y.dtype.kind == "f":
        whole = np.isfinite(y) & (y == np.round(y))
        if not np.all(whole):
            i = int(np.argmin(whole))
            raise ValueError(f"{where}: labels must be integer class indices, got {y.dtype} label {y[i]} at "
                             f"position {i}, which is not a whole number")
        warnings.warn(f"{where}: labels are {y.dtype} whole numbers; converted them to int64 (pass "
                      "labels.astype(int) to do it yourself)", TrainingWarning, stacklevel=3)
        return x, y.astype(np.int64)
    return pair


def _check_xy(where: str, x: Any, y: Any) -> Tuple[np.ndarray, np.ndarray]:
    x, y = np.asarray(x), np.asarray(y)
    if x.ndim == 0 or y.ndim != 1:
        raise ValueError(f"{where}: expected x of shape (samples, ...) and labels of shape (samples,), "
                         f"got {x.shape} and {y.shape}")
    if len(x) != len(y):
        raise ValueError(f"{where}: {len(x)} samples but {len(y)} labels; they must be equal")
    if len(x) == 0:
        raise ValueError(f"{where}: no samples")
    if y.dtype.kind not in "iu":
        raise ValueError(f"{where}: labels must be integer class indices, got dtype {y.dtype}")
    return x, y.astype(np.int64, copy=False)


def _check_finite(where: str, x: np.ndarray, advice: str) -> None:
    """A ValueError naming the first NaN or inf in the inputs `x` (its sample and feature), if any."""
    first = first_nonfinite(x) if x.dtype.kind in "fc" else None
    if first is None:
        return
    count = x.size - int(np.count_nonzero(np.isfinite(x)))
    feature = "" if x.ndim == 1 else f", feature {first[1] if x.ndim == 2 else first[1:]}"
    raise ValueError(f"{where}: the inputs hold {x[first]} at sample {first[0]}{feature} ({count} NaN or "
                     f"inf value{'s' if count > 1 else ''} in all); {advice}")


def _whole_number(where: str, name: str, value: Any, minimum: int) -> int:
    """`value` as an int, or a ValueError naming the argument (NaN, 2.5, True and '3' are refused)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        whole = False
    else:
        whole = isinstance(value, numbers.Integral) or (math.isfinite(value) and value == int(value))
    if not whole or value < minimum:
        raise ValueError(f"{where}: {name} must be a whole number >= {minimum}, got {value!r}")
    return int(value)


def _interrupted(epoch: int, epochs: int, batch: int, batches: int, history: History) -> TrainingInterrupted:
    return TrainingInterrupted(f"fit: interrupted (Ctrl-C) after epoch {epoch}/{epochs}, batch {batch}/{batches}",
                               epoch, epochs, batch, batches, history)


class _FiniteGuard:
    """Keeps a run's weights finite, cheaply per step: the loss is one scalar to test, and each
    gradient one dot product (its squared norm is NaN or inf when an entry is). A copy of the
    weights at each epoch's end undoes the rare update that overflows with finite gradients."""

    def __init__(self, model: Module, optimizer: Any, l2: float, custom_loss: bool) -> None:
        self.named = list(model.named_parameters())
        self.optimizer, self.l2, self.custom_loss = optimizer, l2, custom_loss
        self.steps = 0
        broken = self._broken_weight()
        if broken:
            raise ValueError(f"fit: the model's {broken[0]} holds {broken[1]} before training; "
                             "initialise or load finite weights")
        self.kept = [p.data.copy() for _, p in self.named]
        self.kept_epoch = 0

    def bad_gradient(self) -> Optional[str]:
        """'name became value' for the first parameter whose gradient holds NaN or inf, or None."""
        for name, p in self.named:
            g = p.grad
            # the squared norm also overflows for |g| > 1.8e19 in float32: then look at the entries
            if g is not None and not math.isfinite(np.vdot(g.data, g.data)):
                bad = _first_nonfinite(g.data)
                if bad is not None:
                    return f"{name} became {bad}"
        return None

    def check_weights(self, epoch: int, batch: int) -> None:
        """A NonFiniteError if an update left NaN or inf in the weights (`stop` puts back the copy)."""
        if self._broken_weight():
            raise self.stop("the weights became NaN or inf", epoch, batch)

    def end_epoch(self, epoch: int, batches: int) -> None:
        """Check the weights after the epoch's updates, and keep a copy of them."""
        self.check_weights(epoch, batches)
        for kept, (_, p) in zip(self.kept, self.named):
            np.copyto(kept, p.data)
        self.kept_epoch = epoch

    def stop(self, what: str, epoch: int, batch: int, xb: Optional[np.ndarray] = None,
             penalty_only: bool = False) -> NonFiniteError:
        """The error to raise at this batch. If an earlier update of this epoch left NaN or inf in
        the weights (which is then what went wrong), the copy from the last epoch's end is put back."""
        where = f"at epoch {epoch}, batch {batch}"
        kept = "that step was not applied"
        broken = self._broken_weight()
        if broken:
            what = f"{broken[0]} became {broken[1]}"
            where = f"in an update of epoch {epoch} (found at batch {batch})"
            for saved, (_, p) in zip(self.kept, self.named):
                np.copyto(p.data, saved)
            kept = (f"the model has the weights of the end of epoch {self.kept_epoch}" if self.kept_epoch
                    else "the model has its initial weights")
        cause, reason = self._cause(xb, penalty_only)
        return NonFiniteError(f"fit: {what} {where}; {kept}: {reason}", what, where, epoch, batch, cause)

    def _cause(self, xb: Optional[np.ndarray], penalty_only: bool) -> Tuple[str, str]:
        """The culprit and a sentence about it; only "lr" is a guess (the others follow from the numbers)."""
        lr = float(getattr(self.optimizer, "lr", float("nan")))
        if self.steps == 0:
            if penalty_only:
                return "l2_penalty", f"l2={self.l2:g} is too large (before any update, lam/2 * sum W**2 overflows)"
            largest = float(np.max(np.abs(xb))) if xb is not None and xb.size else float("nan")
            suspects = (", the model's initial weights and the loss function" if self.custom_loss
                        else " and the model's initial weights")
            return "inputs", ("this was before any update, so the learning rate is not the cause; check the "
                              f"scale of the inputs (the largest |x| in this batch is {largest:.3g}){suspects}")
        limit = _decay_limit(self.optimizer)
        if self.l2 and limit is not None and lr * self.l2 >= limit:
            return "lr_l2", (f"lr * l2 = {lr:g} * {self.l2:g} = {lr * self.l2:g} >= {limit:.3g}, so each step's "
                             "weight decay overshoots: lower the learning rate or l2")
        return "lr", f"the learning rate ({lr:g}) is likely too large"

    def _broken_weight(self) -> Optional[Tuple[str, float]]:
        for name, p in self.named:
            bad = _first_nonfinite(p.data)
            if bad is not None:
                return name, bad
        return None


def _decay_limit(optimizer: Any) -> Optional[float]:
    """The lr * l2 from which SGD's weight decay alone diverges (None for other optimizers): on the
    penalty lam/2 W**2 a plain step multiplies W by 1 - lr * lam, whose size passes 1 at lr * lam = 2;
    momentum m moves that limit to 2 (1 + m), and Nesterov's to 2 (1 + m) / (1 + 2 m)."""
    if not isinstance(optimizer, SGD):
        return None
    m = optimizer.momentum
    if not m:
        return 2.0
    return 2 * (1 + m) / (1 + 2 * m) if optimizer.nesterov else 2 * (1 + m)


def first_nonfinite(a: np.ndarray) -> Optional[Tuple[int, ...]]:
    """The index of the first NaN or inf in the float array `a` (C order), or None if all are finite."""
    finite = np.isfinite(a)
    return None if finite.all() else tuple(int(i) for i in np.unravel_index(int(np.argmin(finite)), a.shape))


def _first_nonfinite(a: np.ndarray) -> Optional[float]:
    first = first_nonfinite(a)
    return None if first is None else float(a[first])


class _CtrlC:
    """While training: the first Ctrl-C (SIGINT) is noted and `fit` stops after the current batch, so
    that no update is half-applied; a second one interrupts at once. Only in the main thread and
    when SIGINT has Python's default handler (a handler someone else installed is left alone)."""

    def __init__(self) -> None:
        self.pressed = False
        self._installed = False

    def __enter__(self) -> "_CtrlC":
        if threading.current_thread() is threading.main_thread() \
                and signal.getsignal(signal.SIGINT) is signal.default_int_handler:
            signal.signal(signal.SIGINT, self._note)
            self._installed = True
        return self

    def _note(self, signum: int, frame: Any) -> None:
        self.pressed = True
        signal.signal(signal.SIGINT, signal.default_int_handler)

    def __exit__(self, *exc: Any) -> None:
        if self._installed:
            signal.signal(signal.SIGINT, signal.default_int_handler)


def _verbosity(verbose: Any) -> int:
    """fit's `verbose` as 0, 1 or 2 (False/True are 0/1), or a ValueError."""
    if isinstance(verbose, bool):
        return int(verbose)
    if isinstance(verbose, numbers.Integral) and 0 <= verbose <= 2:
        return int(verbose)
    raise ValueError(f"fit: verbose must be 0 (silent), 1 (a progress bar) or 2 (a line per epoch), got {verbose!r}")
