"""The training loop: `fit` a model on (x, labels), with progress, history, validation and early
stopping; `evaluate` it (loss, accuracy, confusion matrix); `predict` and `predict_proba`.

One pass over the training set is an epoch; each mini-batch does forward, loss (+ the L2
penalty lam/2 sum W**2), backward, optimizer step. Everything random (batch order, dropout
masks) comes from seeded generators, so the same seeds give the same history.
"""
from __future__ import annotations

import contextlib
import math
import sys
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, IO, List, Optional, Sequence, Tuple, Union

import numpy as np

import autograd_lite as ag
from autograd_lite import Tensor

from .data import batches, check_labels, one_hot
from .diagnostics import EpochDiagnostics, TrainingMonitor
from .losses import (binary_cross_entropy, binary_cross_entropy_with_logits, l2_penalty, mse,
                     sparse_categorical_cross_entropy)
from .module import Module

LossFn = Callable[[Tensor, np.ndarray], Tensor]
Callback = Callable[[int, Dict[str, float]], Optional[bool]]


# ---------------------------------------------------------------- losses by name
def _bce(outputs: Tensor, labels: np.ndarray) -> Tensor:
    return binary_cross_entropy(outputs, one_hot(labels, outputs.shape[-1], outputs.dtype))


def _bce_logits(outputs: Tensor, labels: np.ndarray) -> Tensor:
    return binary_cross_entropy_with_logits(outputs, one_hot(labels, outputs.shape[-1], outputs.dtype))


def _ce(outputs: Tensor, labels: np.ndarray) -> Tensor:
    return sparse_categorical_cross_entropy(outputs, labels)


def _mse(outputs: Tensor, labels: np.ndarray) -> Tensor:
    return mse(outputs, one_hot(labels, outputs.shape[-1], outputs.dtype))


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


# ---------------------------------------------------------------- the loop
def fit(model: Module, loss: Union[str, LossFn], optimizer: Any, train: Tuple[np.ndarray, np.ndarray],
        validation: Optional[Tuple[np.ndarray, np.ndarray]] = None, epochs: int = 10,
        batch_size: Optional[int] = 32, l2: float = 0.0, schedule: Any = None,
        early_stopping: Optional[int] = None, restore_best_weights: bool = True,
        callbacks: Sequence[Callback] = (), seed: Optional[int] = 0, verbose: bool = True,
        file: Optional[IO[str]] = None, anomaly: bool = False, diagnostics: bool = False) -> History:
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
    - `verbose`: one line per epoch on `file` (stdout), plus a live progress bar on a terminal.
    - `anomaly`: train inside `autograd_lite.detect_anomaly()`, which stops at the first primitive
      that makes a NaN or an Inf and names it (slower; for finding where a loss turns NaN).
    - `diagnostics`: per layer and epoch, the gradient norm, the weight norm and the share of
      saturated (sigmoid/tanh) or dead (ReLU) units, in `history.diagnostics` (and printed when
      verbose); a `TrainingWarning` when a layer saturates, its gradients vanish or explode, or
      the loss sits on a plateau (see nn/diagnostics.py).

    Example:
        >>> model = nn.MLP([64, 100, 10], activation="sigmoid", output_activation="sigmoid", seed=0)
        >>> history = nn.fit(model, "bce", nn.SGD(model, lr=2.0), (x, y), epochs=20, l2=3e-4)
    """
    loss_fn = get_loss(loss)
    x, y = _check_xy("fit", *train)
    val = None if validation is None else _check_xy("fit (validation)", *validation)
    epochs = int(epochs)
    if epochs < 0:
        raise ValueError(f"fit: epochs must be >= 0, got {epochs}")
    if l2 < 0:
        raise ValueError(f"fit: l2 must be non-negative, got {l2}")
    if early_stopping is not None and int(early_stopping) < 1:
        raise ValueError(f"fit: early_stopping is a patience in epochs and must be >= 1, got {early_stopping}")
    batch_iter = batches(x, y, batch_size, shuffle=True, seed=seed)
    out = sys.stdout if file is None else file
    bar = _ProgressBar(out, len(batch_iter)) if verbose and _is_terminal(out) else None
    history = History()
    monitor = "val_loss" if val is not None else "loss"
    best, best_epoch, best_state, waited = math.inf, None, None, 0
    watcher = TrainingMonitor(model, l2=l2) if diagnostics else None
    with ag.detect_anomaly(enabled=anomaly), (watcher or contextlib.nullcontext()):
        for epoch in range(1, epochs + 1):
            model.train()
            started = time.perf_counter()
            total_loss, correct, seen = 0.0, 0, 0
            lr = float(getattr(optimizer, "lr", float("nan")))
            if watcher:
                watcher.start_epoch()
            for i, (xb, yb) in enumerate(batch_iter, 1):
                outputs = model(xb)
                cost = loss_fn(outputs, yb)
                if l2:
                    cost = cost + l2_penalty(model, l2)
                optimizer.zero_grad()
                cost.backward()
                if watcher:
                    watcher.after_backward()
                optimizer.step()
                value = float(cost.data)
                if not math.isfinite(value):
                    raise FloatingPointError(
                        f"fit: the loss became {value} at epoch {epoch}, batch {i}; the learning rate "
                        f"({lr}) is probably too large")
                total_loss += value * len(yb)
                correct += int(np.sum(np.argmax(outputs.data, axis=-1) == yb))
                seen += len(yb)
                if bar:
                    bar.update(epoch, epochs, i, total_loss / seen, seen, time.perf_counter() - started)
            logs = {"loss": total_loss / max(seen, 1), "accuracy": correct / max(seen, 1)}
            if watcher:
                history.diagnostics.append(watcher.end_epoch(epoch, logs["loss"], lr))
            if val is not None:
                result = evaluate(model, val[0], val[1], loss=loss_fn)
                logs.update(val_loss=result.loss, val_accuracy=result.accuracy)
            logs.update(lr=lr, seconds=time.perf_counter() - started)
            history.append(logs)
            if schedule is not None:
                schedule.step()
            if bar:
                bar.clear()
            if verbose:
                print(_epoch_line(epoch, epochs, logs), file=out, flush=True)
                if watcher:
                    print(history.diagnostics[-1].table(), file=out, flush=True)
            stop = False
            if logs[monitor] < best:
                best, best_epoch, waited = logs[monitor], epoch, 0
                if early_stopping is not None and restore_best_weights:
                    best_state = model.state_dict()
            else:
                waited += 1
                stop = early_stopping is not None and waited >= int(early_stopping)
            for callback in callbacks:
                stop = bool(callback(epoch, dict(logs))) or stop
            if stop:
                history.stopped_early = True
                break
    history.best_epoch = history.epochs or None
    if best_state is not None and best_epoch != history.epochs:
        model.load_state_dict(best_state)
        history.best_epoch = best_epoch
        if verbose:
            print(f"restored the weights of epoch {best_epoch} ({monitor} {best:.4f})", file=out, flush=True)
    model.eval()
    return history


# ---------------------------------------------------------------- using a trained model
def predict_proba(model: Module, x: np.ndarray, batch_size: int = 1024) -> np.ndarray:
    """Class probabilities (samples, classes), rows summing to 1, in eval mode without a graph.

    Softmax outputs are returned as they are; sigmoid outputs (the lecture's network, one unit
    per class) are divided by their row sum; logits (no output activation) go through softmax.
    """
    outputs = _forward(model, x, batch_size)
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
    """The predicted class of each sample (argmax of the outputs), as int64."""
    return np.argmax(_forward(model, x, batch_size), axis=-1).astype(np.int64)


def evaluate(model: Module, x: np.ndarray, labels: np.ndarray, loss: Union[str, LossFn, None] = None,
             batch_size: int = 1024, num_classes: Optional[int] = None) -> Evaluation:
    """Loss (mean over samples; NaN when `loss` is None), accuracy and confusion matrix on (x, labels).

    Example:
        >>> result = nn.evaluate(model, x_test, y_test, loss="bce")
        >>> result.accuracy, result.confusion[3, 5]   # how many 3s were taken for 5s
    """
    x, labels = _check_xy("evaluate", x, labels)
    loss_fn = None if loss is None else get_loss(loss)
    was_training = getattr(model, "training", False)
    model.eval()
    total, outputs = 0.0, []
    try:
        with ag.no_grad():
            for start in range(0, len(x), batch_size):
                out = model(x[start:start + batch_size])
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
    confusion = np.zeros((classes, classes), dtype=np.int64)
    np.add.at(confusion, (labels, predicted), 1)
    n = len(labels)
    return Evaluation(loss=total / n if (loss_fn is not None and n) else float("nan"),
                      accuracy=float(np.mean(predicted == labels)) if n else float("nan"),
                      confusion=confusion, samples=n)


def format_confusion(confusion: np.ndarray, classes: Optional[Sequence[str]] = None) -> str:
    """The confusion matrix as a text table: rows are the true classes, columns the predictions."""
    k = len(confusion)
    names = [str(c) for c in (classes if classes is not None else range(k))]
    width = max(max(len(n) for n in names), len(str(int(confusion.max(initial=0)))), 3)
    label_width = max(len(n) for n in names) + 1
    lines = [" " * label_width + "predicted ->",
             " " * label_width + " ".join(n[:width].rjust(width) for n in names)]
    for name, row in zip(names, confusion):
        lines.append(name.rjust(label_width - 1) + " " + " ".join(str(int(v)).rjust(width) for v in row))
    return "\n".join(lines)


# ---------------------------------------------------------------- helpers
def _forward(model: Module, x: np.ndarray, batch_size: int) -> np.ndarray:
    was_training = getattr(model, "training", False)
    model.eval()
    try:
        with ag.no_grad():
            parts = [model(x[s:s + batch_size]).data for s in range(0, len(x), batch_size)]
    finally:
        model.train(was_training)
    return np.concatenate(parts) if parts else np.zeros((0,))


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


def _is_terminal(stream: IO[str]) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def _epoch_line(epoch: int, epochs: int, logs: Dict[str, float]) -> str:
    width = len(str(epochs))
    parts = [f"epoch {epoch:>{width}}/{epochs}", f"loss {logs['loss']:.4f}", f"acc {logs['accuracy']:.4f}"]
    if "val_loss" in logs:
        parts += [f"val_loss {logs['val_loss']:.4f}", f"val_acc {logs['val_accuracy']:.4f}"]
    parts += [f"lr {logs['lr']:.3g}", f"{logs['seconds']:.2f}s"]
    return "  ".join(parts)


class _ProgressBar:
    """One line, redrawn in place: epoch, a bar of batches, running loss, samples/s, ETA."""

    def __init__(self, stream: IO[str], total: int, width: int = 24) -> None:
        self.stream, self.total, self.width = stream, max(total, 1), width
        self.last_draw = 0.0

    def update(self, epoch: int, epochs: int, done: int, loss: float, samples: int, elapsed: float) -> None:
        now = time.perf_counter()
        if done < self.total and now - self.last_draw < 0.1:
            return
        self.last_draw = now
        filled = int(self.width * done / self.total)
        rate = samples / max(elapsed, 1e-9)
        remaining = elapsed / done * (self.total - done)
        self.stream.write(f"\repoch {epoch}/{epochs} [{'#' * filled}{'.' * (self.width - filled)}] "
                          f"{done}/{self.total}  loss {loss:.4f}  {rate:,.0f} samples/s  ETA {remaining:.1f}s")
        self.stream.flush()

    def clear(self) -> None:
        self.stream.write("\r" + " " * 100 + "\r")
        self.stream.flush()
