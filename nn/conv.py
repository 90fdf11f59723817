"""Convolution and pooling layers: Conv1d, Conv2d, MaxPool2d, AvgPool2d, AdaptiveAvgPool2d, Flatten.

Thin layers over the primitives `ag.conv2d`, `ag.conv1d`, `ag.max_pool2d`, `ag.avg_pool2d` and
`ag.adaptive_avg_pool2d`, with PyTorch's layouts: inputs (N, C, H, W) (or (N, C, L) for Conv1d),
kernels (out_channels, in_channels / groups, kh, kw). Kernels are drawn by `init_weight` with
fan_in = in_channels / groups * kh * kw and fan_out = out_channels * kh * kw: He by default
(convolutions are followed by ReLU here), Glorot on request; biases start at zero.
"""
from __future__ import annotations

import math
import operator
from typing import Any, Dict, Optional, Tuple, Union

import numpy as np

import autograd_lite as ag
from autograd_lite import Tensor

from .layers import MAX_PARAMETERS, check_parameter_count, float_dtype, init_weight, make_rng
from .module import Module, Parameter
from .normalization import check_count

MAX_CHANNELS = 65536
"""The most channels a convolution may take or give: far beyond the networks here, so an absurd
count (in a model file, or a typo) is refused before anything is allocated."""

MAX_KERNEL = 1024
"""The largest kernel side, stride, dilation or padding a layer accepts."""

IntPair = Union[int, Tuple[int, int]]


def conv_parameter_shapes(op: str, in_channels: Any, out_channels: Any, kernel_size: Any, groups: Any = 1,
                          bias: Any = True, dtype: Any = np.float64, dims: int = 2,
                          max_parameters: int = MAX_PARAMETERS) -> Dict[str, Tuple[int, ...]]:
    """{"weight": (out, in / groups, *kernel), "bias": (out,)} of a `dims`-D convolution, once the
    channel counts, kernel, groups, bias and dtype are checked and the parameter count is under
    `max_parameters` (a ValueError naming `op` otherwise). Conv layers and nn.load check here."""
    c_in = check_count(in_channels, "in_channels", op, MAX_CHANNELS)
    c_out = check_count(out_channels, "out_channels", op, MAX_CHANNELS)
    kernel = sizes(kernel_size, "kernel_size", op, dims, minimum=1)
    g = check_count(groups, "groups", op, MAX_CHANNELS)
    if c_in % g or c_out % g:
        raise ValueError(f"{op}: groups ({g}) must divide in_channels ({c_in}) and out_channels ({c_out})")
    if not isinstance(bias, (bool, np.bool_)):
        raise ValueError(f"{op}: bias must be True or False, got {bias!r:.80}")
    shapes = {"weight": (c_out, c_in // g, *kernel)}
    if bias:
        shapes["bias"] = (c_out,)
    check_parameter_count(sum(math.prod(s) for s in shapes.values()), float_dtype(dtype, op), max_parameters,
                          op, f"a {c_in} -> {c_out} channel convolution with a {kernel} kernel")
    return shapes


class _ConvNd(Module):
    """What Conv1d and Conv2d share: the checks, the kernel, the bias."""

    dims = 2

    def __init__(self, in_channels: int, out_channels: int, kernel_size: Any, stride: Any = 1,
                 padding: Any = 0, dilation: Any = 1, groups: int = 1, bias: bool = True, init: str = "he",
                 rng: Optional[np.random.Generator] = None, seed: Optional[int] = None,
                 dtype: Any = np.float64, max_parameters: int = MAX_PARAMETERS) -> None:
        super().__init__()
        op = type(self).__name__
        shapes = conv_parameter_shapes(op, in_channels, out_channels, kernel_size, groups, bias, dtype,
                                       self.dims, max_parameters)
        self.in_channels, self.out_channels = int(in_channels), int(out_channels)
        self.kernel_size = shapes["weight"][2:]
        self.stride = sizes(stride, "stride", op, self.dims, minimum=1)
        self.padding = padding if padding == "same" else sizes(padding, "padding", op, self.dims, minimum=0)
        self.dilation = sizes(dilation, "dilation", op, self.dims, minimum=1)
        if self.padding == "same" and self.stride != (1,) * self.dims:
            raise ValueError(f"{op}: padding='same' needs stride 1, got stride {stride!r}")
        self.groups = int(groups)
        self.dtype = float_dtype(dtype, op)
        receptive = math.prod(self.kernel_size)
        fan_in, fan_out = self.in_channels // self.groups * receptive, self.out_channels * receptive
        self.weight = Parameter(init_weight(fan_in, fan_out, init, make_rng(rng, seed), self.dtype,
                                            shape=shapes["weight"]), kind="weight")
        self.bias = Parameter(np.zeros(self.out_channels, self.dtype), kind="bias") if bias else None

    def _check_input(self, x: Any) -> Tensor:
        x = x if isinstance(x, Tensor) else Tensor(np.asarray(x, dtype=self.dtype))
        if x.ndim != self.dims + 2 or x.shape[1] != self.in_channels:
            layout = "(N, C, H, W)" if self.dims == 2 else "(N, C, L)"
            raise ValueError(f"{self.short_name()}: expected an input of shape {layout} with C = "
                             f"{self.in_channels}, got shape {x.shape}")
        return x

    def architecture(self) -> Dict[str, Any]:
        """The constructor arguments as JSON data (see nn/architecture.py)."""
        def one(v):
            return v if isinstance(v, str) else list(v)
        return {"class": type(self).__name__, "in_channels": self.in_channels,
                "out_channels": self.out_channels, "kernel_size": list(self.kernel_size),
                "stride": list(self.stride), "padding": one(self.padding), "dilation": list(self.dilation),
                "groups": self.groups, "bias": self.bias is not None, "dtype": self.dtype.name}

    def short_name(self) -> str:
        return f"{type(self).__name__}({self.in_channels} -> {self.out_channels}, kernel {self.kernel_size})"

    def extra_repr(self) -> str:
        text = f"{self.in_channels} -> {self.out_channels}, kernel_size={self.kernel_size}"
        if self.stride != (1,) * self.dims:
            text += f", stride={self.stride}"
        if self.padding != (0,) * self.dims:
            text += f", padding={self.padding}"
        if self.dilation != (1,) * self.dims:
            text += f", dilation={self.dilation}"
        if self.groups != 1:
            text += f", groups={self.groups}"
        return text + f", bias={self.bias is not None}"


class Conv2d(_ConvNd):
    """2-D convolution (cross-correlation, as in PyTorch) of (N, C_in, H, W) images with
    (C_out, C_in / groups, kh, kw) kernels, plus a bias per output channel.

    Example:
        >>> conv = Conv2d(1, 6, kernel_size=5, padding=2, seed=0)
        >>> conv(np.zeros((8, 1, 28, 28))).shape
        (8, 6, 28, 28)
    """

    dims = 2

    def forward(self, x: Any) -> Tensor:
        x = self._check_input(x)
        return ag.conv2d(x, self.weight, self.bias, stride=self.stride, padding=self.padding,
                         dilation=self.dilation, groups=self.groups)


class Conv1d(_ConvNd):
    """1-D convolution of (N, C_in, L) sequences with (C_out, C_in / groups, k) kernels.

    Example:
        >>> Conv1d(3, 8, kernel_size=3, padding=1, seed=0)(np.zeros((4, 3, 50))).shape
        (4, 8, 50)
    """

    dims = 1

    def forward(self, x: Any) -> Tensor:
        x = self._check_input(x)
        return ag.conv1d(x, self.weight, self.bias, stride=self.stride[0],
                         padding=self.padding if self.padding == "same" else self.padding[0],
                         dilation=self.dilation[0], groups=self.groups)


class _Pool2d(Module):
    _pool: Any   # the ag pooling function that each subclass applies

    def __init__(self, kernel_size: IntPair, stride: Optional[IntPair] = None, padding: IntPair = 0) -> None:
        super().__init__()
        op = type(self).__name__
        self.kernel_size = sizes(kernel_size, "kernel_size", op, 2, minimum=1)
        self.stride = self.kernel_size if stride is None else sizes(stride, "stride", op, 2, minimum=1)
        self.padding = sizes(padding, "padding", op, 2, minimum=0)
        if any(2 * p > k for p, k in zip(self.padding, self.kernel_size)):
            raise ValueError(f"{op}: padding {self.padding} must be at most half the kernel size "
                             f"{self.kernel_size}")

    def forward(self, x: Any) -> Tensor:
        x = ag.as_tensor(x)
        if x.ndim != 4:
            raise ValueError(f"{type(self).__name__}: expected an input of shape (N, C, H, W), got shape {x.shape}")
        return self._pool(x, self.kernel_size, stride=self.stride, padding=self.padding)

    def architecture(self) -> Dict[str, Any]:
        """The constructor arguments as JSON data (see nn/architecture.py)."""
        return {"class": type(self).__name__, "kernel_size": list(self.kernel_size),
                "stride": list(self.stride), "padding": list(self.padding)}

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"


class MaxPool2d(_Pool2d):
    """The largest value in each kernel window, per channel (padding counts as -inf).

    Example:
        >>> MaxPool2d(2)(np.zeros((8, 6, 28, 28))).shape
        (8, 6, 14, 14)
    """

    _pool = staticmethod(ag.max_pool2d)


class AvgPool2d(_Pool2d):
    """The mean of each kernel window, per channel (padding counts as zeros in the mean, as PyTorch's
    default count_include_pad=True).

    Example:
        >>> AvgPool2d(2)(np.zeros((8, 6, 28, 28))).shape
        (8, 6, 14, 14)
    """

    _pool = staticmethod(ag.avg_pool2d)


class AdaptiveAvgPool2d(Module):
    """Global average pooling: (N, C, H, W) -> (N, C, 1, 1), the mean of each channel."""

    def forward(self, x: Any) -> Tensor:
        x = ag.as_tensor(x)
        if x.ndim != 4:
            raise ValueError(f"AdaptiveAvgPool2d: expected an input of shape (N, C, H, W), got shape {x.shape}")
        return ag.adaptive_avg_pool2d(x, 1)

    def architecture(self) -> Dict[str, Any]:
        return {"class": "AdaptiveAvgPool2d"}


class Flatten(Module):
    """(N, d1, d2, ...) -> (N, d1 * d2 * ...): the bridge from convolutions to Linear layers."""

    def forward(self, x: Any) -> Tensor:
        x = ag.as_tensor(x)
        if x.ndim < 1:
            raise ValueError(f"Flatten: expected an input with a batch axis, got shape {x.shape}")
        return ag.reshape(x, (x.shape[0], math.prod(x.shape[1:])))

    def architecture(self) -> Dict[str, Any]:
        return {"class": "Flatten"}


def sizes(value: Any, what: str, op: str, dims: int, minimum: int) -> Tuple[int, ...]:
    """`value` (an int, or a list of `dims` ints) as a tuple of `dims` ints in minimum..MAX_KERNEL,
    or a ValueError naming `op`, `what` and the value."""
    items = list(value) if isinstance(value, (list, tuple)) else [value] * dims
    out = []
    for item in items:
        n = None
        if not isinstance(item, (bool, np.bool_)):
            try:
                n = operator.index(item)
            except TypeError:
                pass
        out.append(n)
    if len(out) != dims or any(n is None or not minimum <= n <= MAX_KERNEL for n in out):
        raise ValueError(f"{op}: {what} must be a whole number from {minimum} to {MAX_KERNEL}, or a list of "
                         f"{dims} of them, got {value!r:.80}")
    return tuple(out)
