"""Losses: the lecture's logistic cost, cross-entropies from logits, squared error, the L2 penalty.

Every loss sums over the output units of a sample, then over the samples:
`reduction="sum"` is the lecture's J = sum_i sum_k loss(i, k); `reduction="mean"` is J / n,
divided by the number of samples n (the rows of the batch), not by the number of entries.
The cross-entropies from logits and the L2 penalty run as the fused primitives of
`autograd_lite.fused` (one kernel pass for the loss and its gradient); the others are
compositions of primitives.
"""
from __future__ import annotations

from typing import Any, Optional

import numpy as np

import autograd_lite as ag
from autograd_lite import Tensor, fused
from autograd_lite.batching import Batched, batched_like
from autograd_lite.fused import half_lambda_sum_of_squares

from .data import check_labels
from .module import Module

REDUCTIONS = ("mean", "sum")


def binary_cross_entropy(probs: Any, targets: Any, reduction: str = "mean") -> Tensor:
    """The lecture's logistic cost for sigmoid outputs a and targets y in [0, 1] (one-hot for
    several output units): J = -sum_i sum_k [y log a + (1 - y) log(1 - a)].

    `reduction="sum"` gives J, `"mean"` gives J / n (n = number of samples). Its gradient with
    respect to the pre-activation z of a sigmoid output is exactly a - y (delta_out). For
    numerical safety from raw logits use `binary_cross_entropy_with_logits`.
    """
    a = ag.as_tensor(probs)
    y = _targets_like("binary_cross_entropy", a, targets)
    _check_reduction("binary_cross_entropy", reduction)
    _check_rows("binary_cross_entropy", a, reduction)
    if a.size and (np.min(a.data) < 0 or np.max(a.data) > 1):
        raise ValueError(f"binary_cross_entropy: predictions must be probabilities in [0, 1] (sigmoid "
                         f"outputs), got values in [{np.min(a.data)}, {np.max(a.data)}]; for raw "
                         "scores use binary_cross_entropy_with_logits")
    _check_unit_interval("binary_cross_entropy", y)
    # log of 0 is clamped to log(tiny), so a saturated unit gives a large finite cost, not inf
    tiny = np.finfo(a.dtype).tiny
    log_a = ag.log(ag.clip(a, tiny, None))
    log_1ma = ag.log(ag.clip(1 - a, tiny, None))
    return _reduce(-(y * log_a + (1 - y) * log_1ma), reduction)


def binary_cross_entropy_with_logits(logits: Any, targets: Any, reduction: str = "mean") -> Tensor:
    """The logistic cost of sigmoid(z) against y, computed from z directly:
    sum over units of softplus(z) - y z (= -[y log a + (1 - y) log(1 - a)]), finite for any z.

    Same reductions as `binary_cross_entropy`; the gradient with respect to z is sigmoid(z) - y.
    """
    z = ag.as_tensor(logits)
    _check_reduction("binary_cross_entropy_with_logits", reduction)
    _check_rows("binary_cross_entropy_with_logits", z, reduction)
    if z.ndim in (1, 2):   # the fused loss, with the targets checked here so that errors name this function
        if isinstance(targets, Batched):   # inside ag.vmap: one example's targets, kept batched
            y = _targets_like("binary_cross_entropy_with_logits", z, targets)
        else:
            y = targets.data if isinstance(targets, Tensor) else np.asarray(targets)
            if y.shape != z.shape:
                _targets_like("binary_cross_entropy_with_logits", z, y)   # raises, naming both shapes
        _check_unit_interval("binary_cross_entropy_with_logits", y)
        return fused.bce_with_logits(z, y, reduction=reduction)
    y = _targets_like("binary_cross_entropy_with_logits", z, targets)
    _check_unit_interval("binary_cross_entropy_with_logits", y)
    return _reduce(ag.softplus(z) - y * z, reduction)


def categorical_cross_entropy(logits: Any, targets: Any, reduction: str = "mean") -> Tensor:
    """Softmax cross-entropy from logits z (samples, classes) and one-hot (or probability) targets:
    J = -sum_i sum_k y_ik log softmax(z_i)_k. Stable for logits of +-1000.

    `reduction="sum"` gives J, `"mean"` gives J / n (n = number of samples).
    """
    z = ag.as_tensor(logits)
    _check_logits("categorical_cross_entropy", z)
    y = _targets_like("categorical_cross_entropy", z, targets)
    _check_reduction("categorical_cross_entropy", reduction)
    _check_rows("categorical_cross_entropy", z, reduction)
    labels = None if isinstance(y, Batched) else _one_hot_labels(y.data)
    if labels is not None:
        return fused.softmax_cross_entropy(z, labels, reduction=reduction)
    return _reduce(-(y * ag.log_softmax(z, axis=-1)), reduction)


def sparse_categorical_cross_entropy(logits: Any, labels: Any, reduction: str = "mean") -> Tensor:
    """Softmax cross-entropy from logits z (samples, classes) and integer labels (samples,) in
    0..classes-1: J = -sum_i log softmax(z_i)[label_i]. Stable for logits of +-1000.

    `reduction="sum"` gives J, `"mean"` gives J / n (n = number of samples).
    """
    z = ag.as_tensor(logits)
    _check_logits("sparse_categorical_cross_entropy", z)
    labels = check_labels(labels, z.shape[1], "sparse_categorical_cross_entropy", n_samples=z.shape[0])
    _check_reduction("sparse_categorical_cross_entropy", reduction)
    _check_rows("sparse_categorical_cross_entropy", z, reduction)
    return fused.softmax_cross_entropy(z, labels, reduction=reduction)


def mse(predictions: Any, targets: Any, reduction: str = "mean") -> Tensor:
    """Squared error, sum over units of (prediction - target)**2 (no factor 1/2).

    `reduction="sum"` sums over everything; `"mean"` divides that by the number of samples
    (rows), so it is the mean over samples of each sample's squared distance.
    """
    p = ag.as_tensor(predictions)
    y = _targets_like("mse", p, targets)
    _check_reduction("mse", reduction)
    _check_rows("mse", p, reduction)
    diff = p - y
    return _reduce(diff * diff, reduction)


def l2_penalty(module: Module, lam: float) -> Tensor:
    """The lecture's penalty term lam/2 * sum of the squared weights of `module` (parameters of
    kind "weight"; biases are excluded), so that its gradient is exactly lam * W.

    Add it to a loss computed with `reduction="sum"` for the lecture's cost; with "mean" scale
    lam accordingly (the lecture's J / n has the penalty lam / (2n) sum W**2).
    """
    lam = float(lam)
    if lam < 0:
        raise ValueError(f"l2_penalty: lam must be non-negative, got {lam}")
    weights = [p for p in module.parameters() if getattr(p, "kind", "weight") == "weight"]
    if not weights:
        raise ValueError(f"l2_penalty: {type(module).__name__} has no weight parameters to penalise")
    return half_lambda_sum_of_squares(*weights, lam=lam)   # one fused primitive: autograd_lite.fused


def _check_reduction(op: str, reduction: str) -> None:
    if reduction not in REDUCTIONS:
        raise ValueError(f"{op}: reduction must be one of {REDUCTIONS}, got {reduction!r}")


def _one_hot_labels(y: np.ndarray) -> Optional[np.ndarray]:
    """The class of each row when every row of y is exactly one-hot, else None (soft targets)."""
    if y.ndim != 2 or y.shape[1] == 0:
        return None
    labels = np.argmax(y, axis=1)
    hot = y[np.arange(y.shape[0]), labels]
    if not (np.all(hot == 1) and np.count_nonzero(y) == y.shape[0]):
        return None
    return labels


def _check_rows(op: str, prediction: Tensor, reduction: str) -> None:
    if reduction == "mean" and prediction.ndim and prediction.shape[0] == 0:
        raise ValueError(f"{op}: the batch is empty (0 samples), so reduction='mean' is undefined")


def _check_logits(op: str, z: Tensor) -> None:
    if z.ndim != 2:
        raise ValueError(f"{op}: logits must have shape (samples, classes), got {z.shape}")


def _targets_like(op: str, prediction: Tensor, targets: Any) -> Tensor:
    """Targets as a constant of the prediction's dtype, refused unless the shapes are equal.

    Inside ag.vmap, batched targets are compared by one example's shape and stay batched (their
    `.data` is the whole batch)."""
    if isinstance(targets, Batched):
        shape = targets.shape
    else:
        targets = targets.data if isinstance(targets, Tensor) else np.asarray(targets)
        shape = targets.shape
    if shape != prediction.shape:
        raise ValueError(f"{op}: targets have shape {shape} but predictions have shape "
                         f"{prediction.shape}; they must be equal (one-hot encode integer labels, "
                         "or use sparse_categorical_cross_entropy)")
    if isinstance(targets, Batched):
        return batched_like(targets, np.asarray(targets.data, dtype=prediction.dtype))
    return Tensor(np.asarray(targets, dtype=prediction.dtype))


def _check_unit_interval(op: str, y: Any) -> None:
    """Targets in [0, 1] (inside ag.vmap, every example's: `.data` is the whole batch)."""
    values = y.data if isinstance(y, Tensor) else y
    if values.size and (np.min(values) < 0 or np.max(values) > 1):
        bad = np.flatnonzero((values < 0) | (values > 1))
        raise ValueError(f"{op}: targets must be in [0, 1], got values in [{np.min(values)}, {np.max(values)}] "
                         f"({bad.size} outside, the first at flat position {bad[0]})")


def _reduce(per_entry: Tensor, reduction: str) -> Tensor:
    """Sum over everything; for "mean" divide by the number of samples (the first axis)."""
    total = per_entry.sum()
    if reduction == "sum":
        return total
    return total / (per_entry.shape[0] if per_entry.ndim else 1)
