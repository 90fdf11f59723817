"""Training diagnostics: per layer and epoch, the gradient norm, the weight norm and the share of
saturated units, and warnings in plain words when a layer saturates, its gradients vanish or
explode, or the loss sits on a plateau.

`fit(..., diagnostics=True)` runs a `TrainingMonitor`. It sees each layer's outputs through
`autograd_lite.engine.apply_hooks` while the training batches run, and reads the gradients after
each backward; nothing is added to the forward pass itself, and nothing runs without it.
"""
from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from typing import Any, List, Optional, Tuple

import numpy as np

from autograd_lite import Tensor, engine

from .module import Module

# A sigmoid output within this of 0 or 1 (tanh: of -1 or 1) counts as saturated: its slope
# a (1 - a) (tanh: 1 - a**2) is below 0.01 (0.02), so almost no gradient gets through it.
SATURATION_MARGIN = 0.01
# Warn when more than this share of a hidden layer's outputs are saturated (ReLU: units dead).
SATURATED_SHARE = 0.5
# Warn that a layer's gradients vanish when their norm falls below this share of the first epoch's,
# or (a hidden layer) below this share of the output layer's.
VANISHING_RATIO = 1e-3
# Warn that gradients explode when a layer's gradient norm grows this many times past its first epoch's.
EXPLODING_GROWTH = 100.0
# Warn that the weights grew very big when a layer's weight norm reaches this many times its start.
WEIGHT_GROWTH = 10.0
# The loss is on a plateau when one epoch changes it by less than this share while some layer is
# saturated or its gradients vanish.
PLATEAU_CHANGE = 1e-2

SATURATING = ("sigmoid", "tanh", "relu")


class TrainingWarning(UserWarning):
    """A training run looks unhealthy: saturated or dead units, vanishing or exploding gradients,
    weights growing very big, or a plateau. Issued by `fit(..., diagnostics=True)`."""


@dataclass(frozen=True)
class LayerStats:
    """One layer's numbers for one epoch.

    - `grad_norm`: the mean over the epoch's batches of the norm of the loss's gradient,
      sqrt(|dJ/dW|**2 + |dJ/db|**2), without the L2 penalty's part lam * W (which would hide a
      vanishing gradient behind the weights' own size).
    - `weight_norm`: |W| (Frobenius norm, bias excluded) at the end of the epoch.
    - `saturated`: for sigmoid / tanh, the share of the epoch's outputs (samples x units) within
      SATURATION_MARGIN of the activation's limits; for ReLU, the share of units that output 0 for
      every sample of the epoch (dead); None for a layer without such an activation.
    """

    layer: str
    activation: Optional[str]
    grad_norm: float
    weight_norm: float
    saturated: Optional[float]


@dataclass
class EpochDiagnostics:
    """The diagnostics of one epoch: a LayerStats per layer (input side first) and the warnings
    (plain sentences) this epoch raised. `report["hidden.0"]` gives one layer's stats."""

    epoch: int
    layers: List[LayerStats]
    warnings: List[str] = field(default_factory=list)

    def __getitem__(self, layer: str) -> LayerStats:
        for stats in self.layers:
            if stats.layer == layer:
                return stats
        raise KeyError(f"EpochDiagnostics: no layer {layer!r}; the layers are "
                       f"{', '.join(s.layer for s in self.layers)}")

    def table(self) -> str:
        """The per-layer table, as `fit` and `python -m nn train --diagnostics` print it."""
        width = max([len("layer")] + [len(s.layer) for s in self.layers])
        lines = [f"  {'layer':<{width}}  {'activation':<10}  {'|grad|':>9}  {'|W|':>9}  saturated"]
        for s in self.layers:
            if s.saturated is None:
                share = "-"
            else:
                share = f"{100 * s.saturated:.1f}%" + (" dead" if s.activation == "relu" else "")
            lines.append(f"  {s.layer:<{width}}  {s.activation or '-':<10}  {s.grad_norm:>9.3g}  "
                         f"{s.weight_norm:>9.3g}  {share}")
        return "\n".join(lines)


class TrainingMonitor:
    """Collects the diagnostics of a training run, epoch by epoch, for every layer of `model` (a
    module with a `weight` Parameter, e.g. each Linear of an MLP, named by its dotted name).

    Use: `start_epoch()`, then `after_backward()` after each batch's backward, then
    `end_epoch(epoch, loss, lr)` before validating; as a context manager, so that the hook it
    installs is always removed. The last layer found is the output layer; it is not warned about
    for saturation, since a confident sigmoid output near 0 or 1 is what a classifier is trained for.

    Example:
        >>> with TrainingMonitor(model) as monitor:
        ...     monitor.start_epoch()
        ...     for x, y in batches:
        ...         loss = ...; loss.backward(); monitor.after_backward(); optimizer.step()
        ...     print(monitor.end_epoch(1, loss=float(loss.data)).table())
    """

    def __init__(self, model: Module, l2: float = 0.0, warn: bool = True) -> None:
        self.l2, self.warn = float(l2), warn
        self._layers: List[_Layer] = []
        for name, module in model.named_modules():
            weight = getattr(module, "weight", None)
            if isinstance(weight, Tensor) and weight.requires_grad:
                params = [p for _, p in module.named_parameters()]
                self._layers.append(_Layer(name or type(module).__name__, weight, params))
        if not self._layers:
            raise ValueError(f"diagnostics: {type(model).__name__} has no layers with a 'weight' "
                             "parameter (such as Linear) to report on")
        self._by_weight = {id(layer.weight): layer for layer in self._layers}
        self._output = self._layers[-1]
        self._previous_loss: Optional[float] = None
        self._warned: set = set()
        self._watching = False
        self.epochs: List[EpochDiagnostics] = []

    # ---- the run -----------------------------------------------------------------------
    def start_epoch(self) -> None:
        """Reset the epoch's counts and start watching the layers' outputs."""
        for layer in self._layers:
            layer.reset()
        if not self._watching:
            engine.apply_hooks.append(self._observe)
            self._watching = True

    def after_backward(self) -> None:
        """Add this batch's gradient norm of each layer (call after backward, before the step)."""
        for layer in self._layers:
            squares = 0.0
            for p in layer.params:
                if p.grad is not None:
                    g = p.grad.data
                    if self.l2 and getattr(p, "kind", "weight") == "weight":
                        g = g - self.l2 * p.data   # the penalty's part, lam * W, is not the loss's
                    g = g.ravel()
                    squares += float(np.dot(g, g))
            layer.grad_norms += math.sqrt(squares)
            layer.batches += 1

    def end_epoch(self, epoch: int, loss: float, lr: float = float("nan")) -> EpochDiagnostics:
        """Stop watching, compute the epoch's LayerStats, issue TrainingWarnings; returns them."""
        self._stop_watching()
        stats = [layer.stats() for layer in self._layers]
        report = EpochDiagnostics(epoch, stats)
        for layer, s in zip(self._layers, stats):
            if layer.first_grad_norm is None and layer.batches:
                layer.first_grad_norm = s.grad_norm
        report.warnings = self._diagnose(report, loss, lr)
        self._previous_loss = loss
        self.epochs.append(report)
        if self.warn:
            for message in report.warnings:   # stacklevel 3: the line that called fit
                warnings.warn(message, TrainingWarning, stacklevel=3)
        return report

    def close(self) -> None:
        """Remove the hook (also done on leaving a `with` block)."""
        self._stop_watching()

    def __enter__(self) -> "TrainingMonitor":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # ---- helpers -----------------------------------------------------------------------
    def _stop_watching(self) -> None:
        if self._watching:
            engine.apply_hooks.remove(self._observe)
            self._watching = False

    def _observe(self, prim: Any, args: tuple, params: dict, result: Tensor) -> None:
        """apply hook: a layer's output, from the fused linear (activation folded in) or from a
        sigmoid / tanh / relu applied to a linear's output. Evaluation (no_grad) is not counted."""
        name = prim.name
        if name == "linear":
            layer = self._by_weight.get(id(args[1]))
            activation = params.get("activation")
            if layer is not None and activation is not None and engine.is_grad_enabled():
                layer.observe(activation, result.data)
        elif name in SATURATING:
            z = args[0]
            if (isinstance(z, Tensor) and z._op is not None and z._op.name == "linear"
                    and z._inputs is not None and engine.is_grad_enabled()):
                layer = self._by_weight.get(id(z._inputs[1]))
                if layer is not None:
                    layer.observe(name, result.data)

    def _diagnose(self, report: EpochDiagnostics, loss: float, lr: float) -> List[str]:
        """A sentence for each problem found this epoch; each kind is told once per layer."""
        found: List[Tuple[str, str, str]] = []   # (layer, kind, sentence)
        when = f"epoch {report.epoch}: "
        rate = f"the learning rate ({lr:g})" if math.isfinite(lr) else "the learning rate"
        output_grad = report.layers[-1].grad_norm
        stuck = []
        for layer, s in zip(self._layers, report.layers):
            start_w, first_g = layer.first_weight_norm, layer.first_grad_norm
            grown = start_w > 0 and s.weight_norm > WEIGHT_GROWTH * start_w
            grew = f"from |W| = {start_w:.3g} to {s.weight_norm:.3g}"
            saturated = (layer is not self._output and s.saturated is not None
                         and s.saturated > SATURATED_SHARE)
            if saturated and s.activation == "relu":
                found.append((s.layer, "dead", when + (
                    f"layer {s.layer} has {100 * s.saturated:.0f}% dead ReLU units (they output 0 "
                    f"for every sample of the epoch, so they get no gradient and do not recover); "
                    f"{rate} is probably too large.")))
            elif saturated:
                limits = "0 or 1" if s.activation == "sigmoid" else "-1 or 1"
                found.append((s.layer, "saturated", when + (
                    f"layer {s.layer} is saturated: {100 * s.saturated:.0f}% of its {s.activation} "
                    f"outputs are within {SATURATION_MARGIN} of {limits}, where the slope is almost 0 "
                    f"and the units barely learn; its weights went {grew}. Too big a learning rate "
                    f"makes the weights very big: try a smaller learning rate"
                    + (f" than {lr:g}" if math.isfinite(lr) else "") + ", or a larger L2 penalty.")))
            elif grown:
                found.append((s.layer, "weights", when + (
                    f"the weights of layer {s.layer} grew very big, {grew}; {rate} is probably too "
                    f"large, or the L2 penalty too small.")))
            if saturated:
                stuck.append(s.layer)
            if not math.isfinite(s.grad_norm) or (first_g and s.grad_norm > EXPLODING_GROWTH * first_g):
                since = (f", up from {first_g:.3g} in the first epoch"
                         if first_g is not None and math.isfinite(first_g) else "")
                found.append((s.layer, "exploding", when + (
                    f"the gradients of layer {s.layer} explode: |grad| = {s.grad_norm:.3g}{since}; "
                    f"lower {rate}.")))
            elif first_g and s.grad_norm < VANISHING_RATIO * first_g:
                stuck.append(s.layer)
                found.append((s.layer, "vanishing", when + (
                    f"the gradients of layer {s.layer} vanish: |grad| fell from {first_g:.3g} in the "
                    f"first epoch to {s.grad_norm:.3g}, so its weights hardly move.")))
            elif layer is not self._output and 0 < s.grad_norm < VANISHING_RATIO * output_grad:
                stuck.append(s.layer)
                found.append((s.layer, "vanishing", when + (
                    f"the gradients of layer {s.layer} vanish: |grad| = {s.grad_norm:.3g} is "
                    f"{output_grad / s.grad_norm:.0f} times smaller than the output layer's, shrunk "
                    f"on the way back through the layers after it (a sigmoid's slope is at most "
                    f"0.25), so it barely learns.")))
        previous = self._previous_loss
        if (stuck and previous is not None and math.isfinite(loss)
                and abs(previous - loss) <= PLATEAU_CHANGE * abs(previous)):
            found.append(("", "plateau", when + (
                f"the loss has almost stopped changing ({previous:.4g} -> {loss:.4g}) while "
                f"{_layers_text(stuck)} barely learn{'s' if len(set(stuck)) == 1 else ''} (saturated "
                f"units or vanishing gradients): this is likely a plateau, not a local minimum. "
                f"Training longer, a smaller learning rate or a different initialisation can get "
                f"off it.")))
        fresh = [text for layer, kind, text in found if (layer, kind) not in self._warned]
        self._warned.update((layer, kind) for layer, kind, _ in found)
        return fresh


class _Layer:
    """One layer's running counts for the current epoch."""

    def __init__(self, name: str, weight: Tensor, params: List[Tensor]) -> None:
        self.name, self.weight, self.params = name, weight, params
        self.activation: Optional[str] = None
        self.first_weight_norm = _norm(weight.data)
        self.first_grad_norm: Optional[float] = None
        self.reset()

    def reset(self) -> None:
        self.grad_norms, self.batches = 0.0, 0
        self.saturated_count, self.output_count = 0, 0
        self.ever_active: Optional[np.ndarray] = None

    def observe(self, activation: str, a: np.ndarray) -> None:
        self.activation = activation
        if activation == "relu":
            active = (a.reshape(-1, a.shape[-1]) > 0).any(axis=0)
            self.ever_active = active if self.ever_active is None else self.ever_active | active
            return
        low = 0.0 if activation == "sigmoid" else -1.0
        self.saturated_count += int(np.count_nonzero((a < low + SATURATION_MARGIN)
                                                     | (a > 1.0 - SATURATION_MARGIN)))
        self.output_count += a.size

    def stats(self) -> LayerStats:
        if self.activation == "relu" and self.ever_active is not None:
            saturated: Optional[float] = 1.0 - float(np.mean(self.ever_active))
        elif self.output_count:
            saturated = self.saturated_count / self.output_count
        else:
            saturated = None
        grad_norm = self.grad_norms / self.batches if self.batches else float("nan")
        return LayerStats(self.name, self.activation, grad_norm, _norm(self.weight.data), saturated)


def _layers_text(names: List[str]) -> str:
    names = list(dict.fromkeys(names))
    return ("layer " if len(names) == 1 else "layers ") + ", ".join(names)


def _norm(a: np.ndarray) -> float:
    flat = a.ravel()
    return math.sqrt(float(np.dot(flat, flat)))
