"""CNN: the LeNet-5-style convolutional network of `python -m nn train --arch cnn`.

Blocks of [3x3 or 5x5 convolution (padded to keep the size unless `padding` says otherwise),
optional batch norm, ReLU, 2x2 max pooling], then dense layers [Linear, optional batch norm, ReLU, optional dropout], then a Linear
layer giving logits (train it with the "ce" loss). LeNet-5 (LeCun et al. 1998) on 28x28 MNIST:
channels (6, 16), kernel 5, padding (2, 0), dense (120, 84); a smaller variant for the 8x8 digits. The model
takes images (N, C, H, W), (N, H, W) when C = 1, or flat rows (N, C*H*W), so the data sets,
`nn.fit`, `nn.evaluate` and `nn.predict` need no reshaping.
"""
from __future__ import annotations

import math
from typing import Any, Dict, List, Optional, Sequence

import numpy as np

import autograd_lite as ag
from autograd_lite import Tensor

from .layers import MAX_PARAMETERS, Sequential, float_dtype
from .module import Module
from .normalization import check_count, check_flag, check_real

MAX_SIDE = 4096
"""The largest image side (and channel count of the input) a CNN accepts."""


class CNN(Module):
    """A LeNet-5-style network for images of `input_shape` (C, H, W) and `num_classes` classes.

    Parameters are named `features.0.weight` (the first convolution), ..., `classifier.0.weight`
    (the first dense layer), ...; `architecture()` is JSON data that `nn.load` rebuilds it from.

    Example (LeNet-5 on MNIST):
        >>> model = CNN((1, 28, 28), 10, channels=(6, 16), kernel_size=5, padding=(2, 0), hidden=(120, 84),
        ...             seed=0)
        >>> model(np.zeros((2, 784))).shape
        (2, 10)
    """

    output_activation_name = None   # logits

    def __init__(self, input_shape: Sequence[int], num_classes: int, channels: Sequence[int] = (6, 16),
                 kernel_size: int = 5, hidden: Sequence[int] = (120, 84), batch_norm: bool = False,
                 dropout: float = 0.0, padding: Optional[Sequence[int]] = None, init: Optional[str] = "he", seed: Optional[int] = None,
                 dtype: Any = np.float64, max_parameters: int = MAX_PARAMETERS) -> None:
        super().__init__()
        from . import architecture   # architecture.py knows every kind, this one included
        arch = {"class": "CNN", "input_shape": list(input_shape) if _is_list(input_shape) else input_shape,
                "num_classes": num_classes, "channels": list(channels) if _is_list(channels) else channels,
                "kernel_size": kernel_size, "hidden": list(hidden) if _is_list(hidden) else hidden,
                "batch_norm": batch_norm, "dropout": dropout,
                "padding": list(padding) if _is_list(padding) else padding,
                "dtype": float_dtype(dtype, "CNN").name}
        plan = CNN.plan(arch)   # every argument checked here, before anything is allocated
        architecture.state_specs(arch, max_parameters)
        self._arch = _checked(arch)
        self.input_shape = tuple(self._arch["input_shape"])
        self.num_classes = self._arch["num_classes"]
        self.dtype = np.dtype(self._arch["dtype"])
        seeds = np.random.SeedSequence(seed).generate_state(2) if seed is not None else (None, None)

        def part(layers: List[Dict[str, Any]], base: Optional[int]) -> Sequential:
            return Sequential(*(architecture.build(layer, init=init, seed=None if base is None else int(base) + i,
                                                   max_parameters=max_parameters)
                                for i, layer in enumerate(layers)))
        self.features = part(plan["features"], seeds[0])
        self.classifier = part(plan["classifier"], seeds[1])

    @property
    def input_size(self) -> int:
        """The number of values in one input image, C * H * W."""
        return math.prod(self.input_shape)

    def forward(self, x: Any) -> Tensor:
        """Logits (N, num_classes) of images (N, C, H, W), (N, H, W) with C = 1, or rows (N, C*H*W)."""
        x = x if isinstance(x, Tensor) else Tensor(np.asarray(x, dtype=self.dtype))
        c, h, w = self.input_shape
        if x.ndim == 2 and x.shape[1] == c * h * w or x.ndim == 3 and c == 1 and x.shape[1:] == (h, w):
            x = ag.reshape(x, (x.shape[0], c, h, w))
        elif not (x.ndim == 4 and x.shape[1:] == (c, h, w)):
            raise ValueError(f"{self.short_name()}: expected images of shape (N, {c}, {h}, {w}) or rows of "
                             f"{c * h * w} values (N, {c * h * w}), got shape {x.shape}")
        return self.classifier(self.features(x))

    def architecture(self) -> Dict[str, Any]:
        """The constructor arguments as JSON data: `CNN.from_architecture(m.architecture())` builds a
        CNN of the same shape (with fresh weights)."""
        return dict(self._arch)

    @classmethod
    def from_architecture(cls, arch: Dict[str, Any], seed: Optional[int] = 0, init: Optional[str] = None,
                          max_parameters: int = MAX_PARAMETERS) -> "CNN":
        """A CNN built from `architecture()` data (uninitialised arrays with `init="empty"`)."""
        args = {k: v for k, v in _checked(arch).items() if k != "class"}
        return cls(seed=seed, init=init or "he", max_parameters=max_parameters, **args)

    @staticmethod
    def plan(arch: Dict[str, Any]) -> Dict[str, List[Dict[str, Any]]]:
        """{"features": [layer architectures], "classifier": [...]}: the layers a CNN with these
        arguments holds, as architecture data, once the arguments are checked (ValueError otherwise)."""
        a = _checked(arch)
        (c, h, w), k, dtype = a["input_shape"], a["kernel_size"], a["dtype"]
        features: List[Dict[str, Any]] = []
        for width, pad in zip(a["channels"], a["padding"]):
            features.append({"class": "Conv2d", "in_channels": c, "out_channels": width, "kernel_size": k,
                             "padding": pad, "bias": not a["batch_norm"], "dtype": dtype})
            if a["batch_norm"]:
                features.append({"class": "BatchNorm2d", "num_features": width, "dtype": dtype})
            features += [{"class": "ReLU"}, {"class": "MaxPool2d", "kernel_size": 2}]
            h, w = (h + 2 * pad - k + 1) // 2, (w + 2 * pad - k + 1) // 2
            if h < 1 or w < 1:
                raise ValueError(f"CNN: {len(a['channels'])} blocks of {k}x{k} convolution and 2x2 pooling "
                                 f"leave nothing of a {a['input_shape'][1]}x{a['input_shape'][2]} image; use "
                                 "fewer channels entries or a smaller kernel")
            c = width
        features.append({"class": "Flatten"})
        classifier: List[Dict[str, Any]] = []
        width = c * h * w
        for units in a["hidden"]:
            classifier.append({"class": "Linear", "in_features": width, "out_features": units,
                               "bias": not a["batch_norm"], "dtype": dtype})
            if a["batch_norm"]:
                classifier.append({"class": "BatchNorm1d", "num_features": units, "dtype": dtype})
            classifier.append({"class": "ReLU"})
            if a["dropout"]:
                classifier.append({"class": "Dropout", "p": a["dropout"]})
            width = units
        classifier.append({"class": "Linear", "in_features": width, "out_features": a["num_classes"],
                           "dtype": dtype})
        return {"features": features, "classifier": classifier}

    def short_name(self) -> str:
        return f"CNN({'x'.join(map(str, self.input_shape))} -> {self.num_classes})"

    def extra_repr(self) -> str:
        a = self._arch
        return (f"input_shape={self.input_shape}, channels={a['channels']}, kernel_size={a['kernel_size']}, "
                f"padding={a['padding']}, "
                f"hidden={a['hidden']}, batch_norm={a['batch_norm']}, dropout={a['dropout']}")


_KEYS = ("input_shape", "num_classes", "channels", "kernel_size", "padding", "hidden", "batch_norm", "dropout",
         "dtype")


def _is_list(value: Any) -> bool:
    return isinstance(value, (list, tuple))


def _checked(arch: Any) -> Dict[str, Any]:
    """CNN architecture data with every argument checked and in JSON form, or a ValueError naming
    the argument at fault."""
    if not isinstance(arch, dict) or arch.get("class") != "CNN":
        raise ValueError(f"CNN: expected architecture data with 'class': 'CNN', got {arch!r:.120}")
    unknown = sorted(set(arch) - set(_KEYS) - {"class"})
    if unknown or "input_shape" not in arch or "num_classes" not in arch:
        raise ValueError(f"CNN: needs 'input_shape' and 'num_classes' and accepts only {_KEYS}; "
                         f"got keys {sorted(arch)!r:.200}")
    shape = arch["input_shape"]
    if _is_list(shape) and len(shape) == 2:
        shape = [1, *shape]
    if not _is_list(shape) or len(shape) != 3:
        raise ValueError(f"CNN: input_shape must be (C, H, W) or (H, W), got {shape!r:.80}")
    out = {"class": "CNN", "input_shape": [check_count(n, "input_shape", "CNN", MAX_SIDE) for n in shape],
           "num_classes": check_count(arch["num_classes"], "num_classes", "CNN", 10**6)}
    for key, default in (("channels", [6, 16]), ("hidden", [120, 84])):
        value = arch.get(key, default)
        if not _is_list(value) or len(value) > 16 or (key == "channels" and not value):
            raise ValueError(f"CNN: {key} must be a list of {'1' if key == 'channels' else '0'} to 16 widths, "
                             f"got {value!r:.80}")
        out[key] = [check_count(n, key, "CNN", 65536) for n in value]
    kernel = arch.get("kernel_size", 5)
    out["kernel_size"] = check_count(kernel, "kernel_size", "CNN", 64)
    if out["kernel_size"] % 2 == 0:
        raise ValueError(f"CNN: kernel_size must be odd (so that padding can keep the image's size), got {kernel!r}")
    padding = arch.get("padding")
    if padding is None:
        padding = [out["kernel_size"] // 2] * len(out["channels"])
    if not _is_list(padding) or len(padding) != len(out["channels"]):
        raise ValueError(f"CNN: padding must list one whole number per convolution block "
                         f"({len(out['channels'])}), got {padding!r:.80}")
    most = out["kernel_size"] // 2
    if not all(isinstance(p, (int, np.integer)) and not isinstance(p, bool) and 0 <= p <= most for p in padding):
        raise ValueError(f"CNN: padding must be whole numbers from 0 to {most} (half the kernel), got {padding!r:.80}")
    out["padding"] = [int(p) for p in padding]
    out["batch_norm"] = check_flag(arch.get("batch_norm", False), "batch_norm", "CNN")
    out["dropout"] = check_real(arch.get("dropout", 0.0), "dropout", "CNN", 0.0, 0.999999)
    dtype = arch.get("dtype", "float64")
    if dtype not in ("float32", "float64"):
        raise ValueError(f"CNN: dtype must be 'float32' or 'float64', got {dtype!r:.80}")
    out["dtype"] = dtype
    return out

