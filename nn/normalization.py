"""Normalization layers: BatchNorm1d, BatchNorm2d and LayerNorm, with PyTorch's semantics.

Batch normalization standardises each channel over the batch (and the spatial positions),
y = (x - mean) / sqrt(var + eps) * weight + bias, with the biased variance. In training it uses
the batch's statistics and moves the running statistics towards them,
running = (1 - momentum) * running + momentum * batch (the running variance takes the unbiased
batch variance; `momentum=None` keeps a cumulative average instead); in `eval()` it uses the
running statistics. Layer normalization standardises each sample over its last dimensions, the
same in training and evaluation.
"""
from __future__ import annotations

import math
import numbers
import operator
from typing import Any, Optional, Sequence, Tuple, Union

import numpy as np

import autograd_lite as ag
from autograd_lite import Tensor
from autograd_lite.engine import guard, replayed

from .layers import float_dtype
from .module import Module, Parameter

MAX_FEATURES = 10**7
"""The most channels (features) a normalization layer may have: far beyond any network here, so
that an absurd count in a model file is refused before anything is allocated."""


class _BatchNorm(Module):
    """What BatchNorm1d and BatchNorm2d share; they differ in the input ranks they accept."""

    ranks: Tuple[int, ...] = ()
    expected: str = ""

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: Optional[float] = 0.1,
                 affine: bool = True, track_running_stats: bool = True, dtype: Any = np.float64) -> None:
        super().__init__()
        name = type(self).__name__
        self.num_features = check_count(num_features, "num_features", name)
        self.eps = check_real(eps, "eps", name, low=0.0, low_open=True)
        self.momentum = None if momentum is None else check_real(momentum, "momentum", name, 0.0, 1.0)
        self.affine = check_flag(affine, "affine", name)
        self.track_running_stats = check_flag(track_running_stats, "track_running_stats", name)
        self.dtype = float_dtype(dtype, name)
        shape = (self.num_features,)
        # gamma and beta are not penalised by l2_penalty (kind "bias"), as batch norm undoes any
        # shrinking of the weights before it anyway
        self.weight = Parameter(np.ones(shape, self.dtype), kind="bias") if self.affine else None
        self.bias = Parameter(np.zeros(shape, self.dtype), kind="bias") if self.affine else None
        if self.track_running_stats:
            self.register_buffer("running_mean", np.zeros(shape, self.dtype))
            self.register_buffer("running_var", np.ones(shape, self.dtype))
            self.register_buffer("num_batches_tracked", np.zeros((), self.dtype))

    def forward(self, x: Any) -> Tensor:
        """x normalized per channel (axis 1): by the batch's statistics in training (or without
        running statistics), by the running statistics in eval mode."""
        x = x if isinstance(x, Tensor) else Tensor(np.asarray(x, dtype=self.dtype))
        shape = x.shape
        if len(shape) not in self.ranks or shape[1] != self.num_features:
            raise ValueError(f"{self.short_name()}: expected an input of shape {self.expected} with "
                             f"C = {self.num_features}, got shape {shape}")
        guard(self, "training")   # ag.compile traces train and eval apart
        axes = (0,) + tuple(range(2, len(shape)))
        broadcast = (1, self.num_features) + (1,) * (len(shape) - 2)
        if self.training or not self.track_running_stats:
            count = math.prod(shape[a] for a in axes)
            if self.training and count < 2:
                raise ValueError(f"{self.short_name()}: training needs more than one value per channel "
                                 f"to estimate a variance, got an input of shape {shape}; use a larger "
                                 "batch, or eval() mode")
            mean = ag.mean(x, axis=axes, keepdims=True)
            centred = x - mean
            var = ag.mean(centred * centred, axis=axes, keepdims=True)
            if self.training and self.track_running_stats:
                _update_running_stats(self, mean, var, count)
            x_hat = centred / ag.sqrt(var + self.eps)
        else:
            # the buffers as leaf Tensors sharing their memory, so that a compiled step reads
            # the current statistics at every replay instead of those of its trace
            mean = ag.reshape(Tensor._wrap(self.running_mean), broadcast)
            var = ag.reshape(Tensor._wrap(self.running_var), broadcast)
            x_hat = (x - mean) / ag.sqrt(var + self.eps)
        if self.affine:
            x_hat = x_hat * ag.reshape(self.weight, broadcast) + ag.reshape(self.bias, broadcast)
        return x_hat

    def architecture(self) -> dict:
        """The constructor arguments as JSON data (see nn/architecture.py)."""
        return {"class": type(self).__name__, "num_features": self.num_features, "eps": self.eps,
                "momentum": self.momentum, "affine": self.affine,
                "track_running_stats": self.track_running_stats, "dtype": self.dtype.name}

    def short_name(self) -> str:
        return f"{type(self).__name__}({self.num_features})"

    def extra_repr(self) -> str:
        return (f"{self.num_features}, eps={self.eps:g}, momentum={self.momentum}, affine={self.affine}, "
                f"track_running_stats={self.track_running_stats}")


@replayed
def _update_running_stats(layer: _BatchNorm, mean: Tensor, var: Tensor, count: int) -> None:
    """Move `layer`'s running statistics towards the batch's `mean` and biased `var`, in place (the
    state keeps these arrays); an effect that ag.compile replays at every step."""
    layer.num_batches_tracked += 1
    momentum = 1.0 / float(layer.num_batches_tracked) if layer.momentum is None else layer.momentum
    unbiased = var.data.reshape(-1) * (count / (count - 1))
    layer.running_mean *= 1.0 - momentum
    layer.running_mean += momentum * mean.data.reshape(-1)
    layer.running_var *= 1.0 - momentum
    layer.running_var += momentum * unbiased


class BatchNorm1d(_BatchNorm):
    """Batch normalization of (N, C) or (N, C, L) inputs, per channel C.

    Example:
        >>> bn = BatchNorm1d(100)
        >>> bn(np.random.randn(32, 100)).shape
        (32, 100)
    """

    ranks = (2, 3)
    expected = "(N, C) or (N, C, L)"


class BatchNorm2d(_BatchNorm):
    """Batch normalization of (N, C, H, W) images, per channel C (over the batch and the pixels).

    Example:
        >>> bn = BatchNorm2d(6)
        >>> bn(np.random.randn(8, 6, 28, 28)).shape
        (8, 6, 28, 28)
    """

    ranks = (4,)
    expected = "(N, C, H, W)"


class LayerNorm(Module):
    """Layer normalization: each sample standardised over its last `len(normalized_shape)` axes,
    y = (x - mean) / sqrt(var + eps) * weight + bias (biased variance), the same in training and
    evaluation.

    Example:
        >>> LayerNorm(64)(np.random.randn(8, 64)).shape
        (8, 64)
    """

    def __init__(self, normalized_shape: Union[int, Sequence[int]], eps: float = 1e-5,
                 elementwise_affine: bool = True, dtype: Any = np.float64) -> None:
        super().__init__()
        dims = [normalized_shape] if isinstance(normalized_shape, numbers.Integral) else normalized_shape
        if isinstance(dims, (str, bytes, dict)) or not hasattr(dims, "__len__") or not 1 <= len(dims) <= 8:
            raise ValueError(f"LayerNorm: normalized_shape must be a positive int or a list of 1 to 8 of "
                             f"them, got {normalized_shape!r:.80}")
        self.normalized_shape = tuple(check_count(n, "normalized_shape", "LayerNorm") for n in dims)
        if math.prod(self.normalized_shape) > MAX_FEATURES:
            raise ValueError(f"LayerNorm: normalized_shape {self.normalized_shape} has more than "
                             f"{MAX_FEATURES:,} elements")
        self.eps = check_real(eps, "eps", "LayerNorm", low=0.0, low_open=True)
        self.elementwise_affine = check_flag(elementwise_affine, "elementwise_affine", "LayerNorm")
        self.dtype = float_dtype(dtype, "LayerNorm")
        affine = self.elementwise_affine
        self.weight = Parameter(np.ones(self.normalized_shape, self.dtype), kind="bias") if affine else None
        self.bias = Parameter(np.zeros(self.normalized_shape, self.dtype), kind="bias") if affine else None

    def forward(self, x: Any) -> Tensor:
        """x standardised over its trailing `normalized_shape` axes."""
        x = x if isinstance(x, Tensor) else Tensor(np.asarray(x, dtype=self.dtype))
        k = len(self.normalized_shape)
        if tuple(x.shape[-k:]) != self.normalized_shape or x.ndim < k:
            raise ValueError(f"{self.short_name()}: expected an input whose last axes have shape "
                             f"{self.normalized_shape}, got shape {x.shape}")
        axes = tuple(range(x.ndim - k, x.ndim))
        centred = x - ag.mean(x, axis=axes, keepdims=True)
        var = ag.mean(centred * centred, axis=axes, keepdims=True)
        y = centred / ag.sqrt(var + self.eps)
        if self.elementwise_affine:
            y = y * self.weight + self.bias
        return y

    def architecture(self) -> dict:
        """The constructor arguments as JSON data (see nn/architecture.py)."""
        return {"class": "LayerNorm", "normalized_shape": list(self.normalized_shape), "eps": self.eps,
                "elementwise_affine": self.elementwise_affine, "dtype": self.dtype.name}

    def short_name(self) -> str:
        return f"LayerNorm({', '.join(map(str, self.normalized_shape))})"

    def extra_repr(self) -> str:
        return f"{self.normalized_shape}, eps={self.eps:g}, elementwise_affine={self.elementwise_affine}"


# ---------------------------------------------------------------- argument checks
def check_count(value: Any, what: str, op: str, maximum: int = MAX_FEATURES) -> int:
    """`value` as an int in 1..maximum, or a ValueError naming `op`, `what` and the value."""
    if not isinstance(value, (bool, np.bool_)):
        try:
            n = operator.index(value)
        except TypeError:
            n = None
        if n is not None and 1 <= n <= maximum:
            return n
    raise ValueError(f"{op}: {what} must be a whole number from 1 to {maximum:,}, got {value!r:.80}")


def check_real(value: Any, what: str, op: str, low: float = -math.inf, high: float = math.inf,
               low_open: bool = False) -> float:
    """`value` as a finite float in [low, high] ((low, high] with `low_open`), or a ValueError."""
    if isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_)):
        v = float(value)
        if math.isfinite(v) and (v > low if low_open else v >= low) and v <= high:
            return v
    interval = f"{'(' if low_open else '['}{low:g}, {high:g}]"
    raise ValueError(f"{op}: {what} must be a finite number in {interval}, got {value!r:.80}")


def check_flag(value: Any, what: str, op: str) -> bool:
    """`value` if it is a bool, else a ValueError naming `op` and `what`."""
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    raise ValueError(f"{op}: {what} must be True or False, got {value!r:.80}")
