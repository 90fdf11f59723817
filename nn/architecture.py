"""Architectures as JSON data: how `nn.save` describes a model built from nn layers and how
`nn.load` rebuilds it without pickle.

An architecture is {"class": KIND, ...constructor arguments}; a Sequential's is
{"class": "Sequential", "layers": [...]}. Only the kinds in `KINDS` exist; every argument is
type- and range-checked, the names and shapes of the parameters and buffers follow from the
arguments alone (`state_specs`), and the parameter count is capped, all before anything is built.
"""
from __future__ import annotations

import math
from typing import Any, Callable, Dict, List, NamedTuple, Optional, Tuple

import numpy as np

from .cnn import CNN
from .cnn import _checked as checked_cnn
from .conv import (MAX_CHANNELS, AdaptiveAvgPool2d, AvgPool2d, Conv1d, Conv2d, Flatten, MaxPool2d, conv_parameter_shapes,
                   sizes)
from .layers import (GELU, MAX_LAYERS, MAX_PARAMETERS, MLP, Dropout, Identity, LeakyReLU, Linear, ReLU,
                     Sequential, Sigmoid, Softmax, Tanh, check_parameter_count, float_dtype)
from .module import Module
from .normalization import MAX_FEATURES, BatchNorm1d, BatchNorm2d, LayerNorm, check_count, check_flag, check_real

Specs = Dict[str, Tuple[Tuple[int, ...], np.dtype]]

REQUIRED = object()
"""The default of an argument that an architecture must give."""

MAX_DEPTH = 8
"""The deepest nesting of Sequentials an architecture may have."""


def describe(module: Module) -> Optional[Dict[str, Any]]:
    """`module`'s architecture as JSON data, or None when it (or a layer inside it) is not one of
    the nn kinds that `build` knows (a user's own Module: save it, and load into a fresh one)."""
    kind = KINDS.get(type(module).__name__)
    if kind is None or kind.cls is not type(module):
        return None
    if isinstance(module, Sequential):
        layers = [describe(m) for m in module]
        return None if any(a is None for a in layers) else {"class": "Sequential", "layers": layers}
    return kind.describe(module)


def subclassed_layer(module: Module) -> Optional[Tuple[str, str, str]]:
    """Where ("the model" or "layer 'NAME'"), its class and the nn kind, of the first layer that keeps
    `describe` from describing `module` because its class subclasses an nn kind (its own code
    may differ from the kind's, so it is not rebuilt as one); None when there is none."""
    return _subclassed(module, "")


def _subclassed(module: Module, name: str) -> Optional[Tuple[str, str, str]]:
    for kind_name, kind in KINDS.items():
        if type(module) is not kind.cls and isinstance(module, kind.cls):
            return (f"layer {name!r}" if name else "the model"), type(module).__name__, kind_name
    if type(module) is Sequential:   # describe looks into a Sequential's layers, and only there
        for child_name, child in module.named_children():
            found = _subclassed(child, f"{name}.{child_name}" if name else child_name)
            if found is not None:
                return found
    return None


def state_specs(arch: Any, max_parameters: int = MAX_PARAMETERS) -> Specs:
    """{name: (shape, dtype)} of every parameter and buffer that `build(arch)` would hold, in
    `state_dict()` order, once every kind and argument is checked and the parameter count is at
    most `max_parameters`; a ValueError naming the layer and the argument at fault otherwise."""
    counter = [0]
    specs = _specs(arch, "", 0, counter)
    total = sum(math.prod(shape) for shape, _ in specs.values())
    dtype = max((d for _, d in specs.values()), key=lambda d: d.itemsize, default=np.dtype(np.float64))
    check_parameter_count(total, dtype, max_parameters, "architecture", f"this {_kind_name(arch)}")
    return specs


def build(arch: Any, init: Optional[str] = "empty", seed: Optional[int] = 0,
          max_parameters: int = MAX_PARAMETERS) -> Module:
    """The module `arch` describes (checked by `state_specs` first). With `init="empty"` (a loader
    about to fill every array) no random numbers are drawn and the arrays are uninitialised."""
    state_specs(arch, max_parameters)
    return _build(arch, init, seed, max_parameters)


# ---------------------------------------------------------------- the kinds
class Kind(NamedTuple):
    """A layer kind: its class, its arguments' checks {name: (check, default)}, its state's shapes
    from checked arguments, and how to read the arguments back from a layer."""
    cls: type
    arguments: Dict[str, Tuple[Callable[[Any, str, str], Any], Any]]
    shapes: Callable[[Dict[str, Any]], Dict[str, Tuple[int, ...]]]
    describe: Callable[[Module], Dict[str, Any]]
    takes_init: bool = False


def _count(maximum: int) -> Callable[[Any, str, str], int]:
    return lambda value, arg, op: check_count(value, arg, op, maximum)


def _flag(value: Any, arg: str, op: str) -> bool:
    return check_flag(value, arg, op)


def _real(low: float, high: float, low_open: bool = False) -> Callable[[Any, str, str], float]:
    return lambda value, arg, op: check_real(value, arg, op, low, high, low_open)


def _optional(check: Callable[[Any, str, str], Any]) -> Callable[[Any, str, str], Any]:
    return lambda value, arg, op: None if value is None else check(value, arg, op)


def _dtype(value: Any, arg: str, op: str) -> str:
    if value not in ("float32", "float64"):
        raise ValueError(f"{op}: {arg} must be 'float32' or 'float64', got {value!r:.80}")
    return float_dtype(value, op).name


def _sizes(dims: int, minimum: int, same: bool = False) -> Callable[[Any, str, str], Any]:
    def check(value: Any, arg: str, op: str) -> Any:
        return value if same and value == "same" else list(sizes(value, arg, op, dims, minimum))
    return check


def _axis(value: Any, arg: str, op: str) -> int:
    if isinstance(value, int) and not isinstance(value, bool) and -32 <= value < 32:
        return value
    raise ValueError(f"{op}: {arg} must be a whole number from -32 to 31, got {value!r:.80}")


def _linear_shapes(a: Dict[str, Any]) -> Dict[str, Tuple[int, ...]]:
    shapes = {"weight": (a["in_features"], a["out_features"])}
    if a["bias"]:
        shapes["bias"] = (a["out_features"],)
    return shapes


def _conv_shapes(dims: int) -> Callable[[Dict[str, Any]], Dict[str, Tuple[int, ...]]]:
    return lambda a: conv_parameter_shapes(f"Conv{dims}d", a["in_channels"], a["out_channels"], a["kernel_size"],
                                           a["groups"], a["bias"], a["dtype"], dims)


def _batch_norm_shapes(a: Dict[str, Any]) -> Dict[str, Tuple[int, ...]]:
    shapes = {}
    if a["affine"]:
        shapes.update(weight=(a["num_features"],), bias=(a["num_features"],))
    if a["track_running_stats"]:
        shapes.update(running_mean=(a["num_features"],), running_var=(a["num_features"],),
                      num_batches_tracked=())
    return shapes


def _layer_norm_shapes(a: Dict[str, Any]) -> Dict[str, Tuple[int, ...]]:
    shape = tuple(a["normalized_shape"])
    if math.prod(shape) > MAX_FEATURES:
        raise ValueError(f"LayerNorm: normalized_shape {shape} has more than {MAX_FEATURES:,} elements")
    return {"weight": shape, "bias": shape} if a["elementwise_affine"] else {}


def _normalized_shape(value: Any, arg: str, op: str) -> List[int]:
    if not isinstance(value, list) or not 1 <= len(value) <= 8:
        raise ValueError(f"{op}: {arg} must be a list of 1 to 8 positive whole numbers, got {value!r:.80}")
    return [check_count(n, arg, op) for n in value]


def _no_state(a: Dict[str, Any]) -> Dict[str, Tuple[int, ...]]:
    return {}


def _plain(name: str) -> Callable[[Module], Dict[str, Any]]:
    return lambda m: {"class": name}


def _own(m: Module) -> Dict[str, Any]:
    return m.architecture()


_BATCH_NORM_ARGUMENTS = {"num_features": (_count(MAX_FEATURES), REQUIRED), "eps": (_real(0.0, 1.0, True), 1e-5),
                         "momentum": (_optional(_real(0.0, 1.0)), 0.1), "affine": (_flag, True),
                         "track_running_stats": (_flag, True), "dtype": (_dtype, "float64")}


def _conv_arguments(dims: int) -> Dict[str, Tuple[Callable[[Any, str, str], Any], Any]]:
    return {"in_channels": (_count(MAX_CHANNELS), REQUIRED), "out_channels": (_count(MAX_CHANNELS), REQUIRED),
            "kernel_size": (_sizes(dims, 1), REQUIRED), "stride": (_sizes(dims, 1), 1),
            "padding": (_sizes(dims, 0, same=True), 0), "dilation": (_sizes(dims, 1), 1),
            "groups": (_count(MAX_CHANNELS), 1), "bias": (_flag, True), "dtype": (_dtype, "float64")}


_POOL_ARGUMENTS = {"kernel_size": (_sizes(2, 1), REQUIRED), "stride": (_optional(_sizes(2, 1)), None),
                   "padding": (_sizes(2, 0), 0)}

KINDS: Dict[str, Kind] = {
    "Linear": Kind(Linear, {"in_features": (_count(10**9), REQUIRED), "out_features": (_count(10**9), REQUIRED),
                            "bias": (_flag, True), "dtype": (_dtype, "float64")}, _linear_shapes,
                   lambda m: {"class": "Linear", "in_features": m.in_features, "out_features": m.out_features,
                              "bias": m.bias is not None, "dtype": m.weight.dtype.name}, takes_init=True),
    "Conv1d": Kind(Conv1d, _conv_arguments(1), _conv_shapes(1), _own, takes_init=True),
    "Conv2d": Kind(Conv2d, _conv_arguments(2), _conv_shapes(2), _own, takes_init=True),
    "MaxPool2d": Kind(MaxPool2d, _POOL_ARGUMENTS, _no_state, _own),
    "AvgPool2d": Kind(AvgPool2d, _POOL_ARGUMENTS, _no_state, _own),
    "AdaptiveAvgPool2d": Kind(AdaptiveAvgPool2d, {}, _no_state, _own),
    "Flatten": Kind(Flatten, {}, _no_state, _own),
    "BatchNorm1d": Kind(BatchNorm1d, _BATCH_NORM_ARGUMENTS, _batch_norm_shapes, _own),
    "BatchNorm2d": Kind(BatchNorm2d, _BATCH_NORM_ARGUMENTS, _batch_norm_shapes, _own),
    "LayerNorm": Kind(LayerNorm, {"normalized_shape": (_normalized_shape, REQUIRED), "eps": (_real(0.0, 1.0, True), 1e-5),
                                  "elementwise_affine": (_flag, True), "dtype": (_dtype, "float64")},
                      _layer_norm_shapes, _own),
    "Sigmoid": Kind(Sigmoid, {}, _no_state, _plain("Sigmoid")),
    "Tanh": Kind(Tanh, {}, _no_state, _plain("Tanh")),
    "ReLU": Kind(ReLU, {}, _no_state, _plain("ReLU")),
    "GELU": Kind(GELU, {}, _no_state, _plain("GELU")),
    "Identity": Kind(Identity, {}, _no_state, _plain("Identity")),
    "LeakyReLU": Kind(LeakyReLU, {"negative_slope": (_real(0.0, 1.0), 0.01)}, _no_state,
                      lambda m: {"class": "LeakyReLU", "negative_slope": m.negative_slope}),
    "Softmax": Kind(Softmax, {"axis": (_axis, -1)}, _no_state, lambda m: {"class": "Softmax", "axis": m.axis}),
    "Dropout": Kind(Dropout, {"p": (_real(0.0, 0.999999), 0.5)}, _no_state, lambda m: {"class": "Dropout", "p": m.p}),
    # containers and whole models: their state is checked by their own code below
    "Sequential": Kind(Sequential, {}, _no_state, _own),
    "MLP": Kind(MLP, {}, _no_state, _own),
    "CNN": Kind(CNN, {}, _no_state, _own),
}


# ---------------------------------------------------------------- helpers
def _kind_name(arch: Any) -> str:
    name = arch.get("class") if isinstance(arch, dict) else None
    return name if isinstance(name, str) and name in KINDS else "architecture"


def _arguments(arch: Any, where: str) -> Tuple[Kind, Dict[str, Any]]:
    """The kind and the checked arguments (defaults filled in) of one layer's architecture."""
    if not isinstance(arch, dict):
        raise ValueError(f"architecture: {where} must be a dict {{'class': KIND, ...}}, got {arch!r:.80}")
    name = arch.get("class")
    if not isinstance(name, str) or name not in KINDS:
        raise ValueError(f"architecture: {where} has the unknown layer kind {name!r:.80}; the known kinds are "
                         f"{', '.join(sorted(KINDS))}")
    kind = KINDS[name]
    unknown = sorted(set(arch) - set(kind.arguments) - {"class"})
    if unknown:
        raise ValueError(f"architecture: {where} ({name}) has unknown arguments {unknown!r:.120}; {name} takes "
                         f"{sorted(kind.arguments)}")
    args = {}
    for arg, (check, default) in kind.arguments.items():
        if arg not in arch and default is REQUIRED:
            raise ValueError(f"architecture: {where} ({name}) lacks the argument {arg!r}")
        value = arch.get(arg, default)
        args[arg] = check(value, arg, f"{name} ({where})")
    return kind, args


def _specs(arch: Any, prefix: str, depth: int, counter: List[int]) -> Specs:
    where = f"layer {prefix.rstrip('.')!r}" if prefix else "the model"
    counter[0] += 1
    if counter[0] > MAX_LAYERS:
        raise ValueError(f"architecture: more than {MAX_LAYERS} layers")
    name = arch.get("class") if isinstance(arch, dict) else None
    if name == "MLP":
        return {prefix + k: v for k, v in MLP.parameter_specs(arch).items()}
    if name == "CNN":
        plan = CNN.plan(arch)
        specs: Specs = {}
        for part, layers in plan.items():
            specs.update(_specs({"class": "Sequential", "layers": layers}, f"{prefix}{part}.", depth + 1, counter))
        return specs
    if name == "Sequential":
        if depth >= MAX_DEPTH:
            raise ValueError(f"architecture: Sequentials nested more than {MAX_DEPTH} deep")
        layers = arch.get("layers")
        if sorted(arch) != ["class", "layers"] or not isinstance(layers, list):
            raise ValueError(f"architecture: {where} (Sequential) must be {{'class': 'Sequential', 'layers': "
                             f"[layer, ...]}}, got {arch!r:.120}")
        if len(layers) > MAX_LAYERS:
            raise ValueError(f"architecture: {where} (Sequential) has {len(layers):,} layers, more than {MAX_LAYERS}")
        specs = {}
        for i, layer in enumerate(layers):
            specs.update(_specs(layer, f"{prefix}{i}.", depth + 1, counter))
        return specs
    kind, args = _arguments(arch, where)
    dtype = np.dtype(args.get("dtype", "float64"))
    return {prefix + k: (tuple(shape), dtype) for k, shape in kind.shapes(args).items()}


def _build(arch: Dict[str, Any], init: Optional[str], seed: Optional[int], max_parameters: int) -> Module:
    name = arch["class"]
    if name == "MLP":
        return MLP.from_architecture(arch, seed=seed, init=init, max_parameters=max_parameters)
    if name == "CNN":
        return CNN.from_architecture(arch, seed=seed, init=init, max_parameters=max_parameters)
    if name == "Sequential":
        return Sequential(*(_build(layer, init, None if seed is None else seed + i, max_parameters)
                            for i, layer in enumerate(arch["layers"])))
    kind, args = _arguments(arch, "the model")
    if kind.takes_init:
        args.update(init=init or ("he" if name.startswith("Conv") else "glorot"), seed=seed)
        if name == "Linear":
            args["max_parameters"] = max_parameters
    if name == "Dropout":
        args["seed"] = seed
    if name in ("Linear", "Conv1d", "Conv2d") or kind.cls in (BatchNorm1d, BatchNorm2d, LayerNorm):
        args["dtype"] = np.dtype(args["dtype"])
    if name == "LayerNorm":
        args["normalized_shape"] = tuple(args["normalized_shape"])
    return kind.cls(**args)


# ---------------------------------------------------------------- shapes between layers
Shape = Tuple[Any, ...]
"""One example's shape as it flows through the layers: ints, None for a size not known yet, and
a leading Ellipsis while the number of leading axes is unknown ((...,) knows nothing)."""

_IMAGE_KINDS = {"Conv2d": 3, "MaxPool2d": 3, "AvgPool2d": 3, "AdaptiveAvgPool2d": 3, "BatchNorm2d": 3, "Conv1d": 2}
_SAME_SHAPE = {"Sigmoid", "Tanh", "ReLU", "GELU", "Identity", "LeakyReLU", "Softmax", "Dropout"}


def check_layer_shapes(arch: Any, input_shape: Optional[Tuple[int, ...]] = None) -> None:
    """A ValueError naming the first layer of `arch` (already checked by `state_specs`) that cannot
    take what the layers before it give (or the input), e.g. a Linear after a Flatten of the wrong width: sizes
    follow from the arguments, and from `input_shape` (one example's image or row; a model that
    starts with a convolution gets it as (C, H, W), or (1, H, W) for (H, W)) when it is known."""
    shape: Shape = (...,)
    if input_shape is not None:
        first = _first_layer(arch)
        rank = _IMAGE_KINDS.get(first, 1)
        shape = tuple(input_shape)
        if rank == 1 or first == "CNN":
            shape = (math.prod(shape),)
        elif len(shape) == rank - 1:
            shape = (1,) + shape
        elif len(shape) != rank:   # flat rows that the caller reshapes: nothing known
            shape = (...,)
    _flow(arch, shape, "")


def _first_layer(arch: Dict[str, Any]) -> str:
    while arch["class"] == "Sequential" and arch["layers"]:
        arch = arch["layers"][0]
    return arch["class"]


def _flow(arch: Dict[str, Any], shape: Shape, prefix: str) -> Shape:
    """The shape one example has after `arch`, given `shape` before it."""
    name = arch["class"]
    if name == "Sequential":
        for i, layer in enumerate(arch["layers"]):
            shape = _flow(layer, shape, f"{prefix}{i}.")
        return shape
    where = f"architecture: layer {prefix.rstrip('.')!r} ({name})" if prefix else f"architecture: the model ({name})"
    if name in _SAME_SHAPE:
        return shape
    if name == "MLP":
        return _features(shape, arch["sizes"][0], where)[:-1] + (arch["sizes"][-1],)
    if name == "CNN":   # it takes images (C, H, W), (H, W) when C = 1, or rows of C H W values
        a = checked_cnn(arch)
        width = math.prod(a["input_shape"])
        if ... not in shape and None not in shape and math.prod(shape) != width:
            raise ValueError(f"{where} takes images of shape {tuple(a['input_shape'])} ({width:,} values), but gets "
                             f"examples of shape {_text(shape)}")
        return (a["num_classes"],)
    _, args = _arguments(arch, "the model")
    if name == "Linear":
        return _features(shape, args["in_features"], where)[:-1] + (args["out_features"],)
    if name == "Flatten":
        return (math.prod(shape),) if ... not in shape and None not in shape else (None,)
    if name == "LayerNorm":
        normalized = tuple(args["normalized_shape"])
        known = shape[-len(normalized):]
        if ... not in known and len(shape) >= len(normalized) and any(
                s is not None and s != n for s, n in zip(known, normalized)):
            raise ValueError(f"{where} normalizes trailing axes of shape {normalized}, but gets "
                             f"examples of shape {_text(shape)}")
        return shape
    channels = args.get("in_channels", args.get("num_features"))
    rank = 2 if name == "BatchNorm1d" and len(shape) == 2 else _IMAGE_KINDS.get(name, 1)
    if ... not in shape and len(shape) != rank or ... in shape and len(shape) > rank + 1:
        raise ValueError(f"{where} takes examples of {rank} axes (C{', H, W' if rank == 3 else ', L' if rank == 2 else ''}), "
                         f"but gets examples of shape {_text(shape)}")
    if channels is not None and ... not in shape[:1] and shape[0] is not None and shape[0] != channels:
        raise ValueError(f"{where} takes {channels} channels, but gets examples of shape "
                         f"{_text(shape)} ({shape[0]} channels)")
    sizes_ = list(shape[1:]) if ... not in shape else [None] * (rank - 1)
    if name.startswith("BatchNorm"):
        return (channels,) + tuple(sizes_)
    if name == "AdaptiveAvgPool2d":
        return (shape[0] if ... not in shape else None, 1, 1)
    kernel = args["kernel_size"]
    stride = args["stride"] or kernel
    stride = stride if isinstance(stride, list) else [stride] * len(kernel)
    dilation = args.get("dilation", [1] * len(kernel))
    padding = args["padding"]
    out = []
    for i, size in enumerate(sizes_):
        if size is None or padding == "same":
            out.append(size)
            continue
        span, pad = dilation[i] * (kernel[i] - 1) + 1, padding[i]
        if size + 2 * pad < span:
            raise ValueError(f"{where} has a kernel spanning {span}, more than the {size + 2 * pad} of its padded "
                             f"examples of shape {_text(shape)}")
        out.append((size + 2 * pad - span) // stride[i] + 1)
    return (args.get("out_channels", shape[0] if ... not in shape else None),) + tuple(out)


def _features(shape: Shape, features: int, where: str) -> Shape:
    """`shape`, once its last axis is checked to be `features` long (when known)."""
    last = shape[-1]
    if last is not ... and last is not None and last != features:
        raise ValueError(f"{where} takes {features:,} features, but gets examples of "
                         f"shape {_text(shape)} ({last:,} features)")
    return shape[:-1] + (features,) if last is not ... else shape + (features,)


def _text(shape: Shape) -> str:
    return "(" + ", ".join("..." if s is ... else "?" if s is None else str(s) for s in shape) + \
        ("," if len(shape) == 1 else "") + ")"


