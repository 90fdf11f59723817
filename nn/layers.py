"""Layers: Linear, the activations, Dropout, Identity, Sequential, ModuleList and the multilayer
perceptron MLP.

Shapes follow the lecture: a batch is a matrix A of shape (samples, in) and a layer
computes Z = A W + b with W of shape (in, out), so one row per sample all the way through.
Weights are initialised from a seeded `numpy.random.Generator`: Glorot/Xavier for
sigmoid and tanh, He for ReLU; biases start at zero. On 2-D batches, Linear (and in an MLP
each Linear with the activation after it) runs as the fused primitive `fused.linear`, and
Dropout as `fused.dropout`: one kernel pass around the BLAS matmul instead of several ops.
"""
from __future__ import annotations

import math
import operator
import os
from typing import Any, Dict, Iterator, Optional, Sequence, Tuple

import numpy as np

import autograd_lite as ag
from autograd_lite import Tensor, fused

from .module import Module, Parameter

ACTIVATIONS = ("sigmoid", "tanh", "relu")
OUTPUT_ACTIVATIONS = (None, "sigmoid", "tanh", "relu", "softmax")
INITS = ("glorot", "he", "empty")

MAX_PARAMETERS = 10**9
"""The most parameters a Linear layer or an MLP may hold unless `max_parameters` says otherwise
(also the default of `nn.load`): 10^9 parameters take 4 GB as float32 and 8 GB as float64, far
beyond the networks of this project, so a typo such as `--hidden 100000000` (78 billion
parameters) is an error that says so instead of a machine out of memory."""

MAX_LAYERS = 1000
"""The most Linear layers an MLP may have (sizes lists at most MAX_LAYERS + 1 widths)."""


def make_rng(rng: Optional[np.random.Generator] = None, seed: Optional[int] = None) -> np.random.Generator:
    """`rng` itself, or a new Generator from `seed` (fresh entropy when both are None)."""
    if rng is not None and seed is not None:
        raise ValueError("make_rng: give rng or seed, not both")
    if rng is not None:
        if not isinstance(rng, np.random.Generator):
            raise TypeError(f"make_rng: rng must be a numpy.random.Generator "
                            f"(np.random.default_rng(seed)), got {type(rng).__name__}")
        return rng
    return np.random.default_rng(seed)


def init_weight(fan_in: int, fan_out: int, init: str, rng: np.random.Generator,
                dtype: Any = np.float64, shape: Optional[Tuple[int, ...]] = None) -> np.ndarray:
    """A (fan_in, fan_out) weight matrix, or an array of `shape` drawn with those fans (a
    convolution's (out, in, kh, kw) kernel has fan_in = in*kh*kw and fan_out = out*kh*kw).

    "glorot": uniform on [-r, r], r = sqrt(6 / (fan_in + fan_out)) (Glorot & Bengio 2010),
    keeps the variance of sigmoid/tanh layers roughly constant in both directions.
    "he": normal with standard deviation sqrt(2 / fan_in) (He et al. 2015), for ReLU.
    "empty": uninitialised memory (np.empty) and no random numbers drawn, for a layer whose
    weights are about to be overwritten (nn.load fills them from the file).
    """
    shape = (fan_in, fan_out) if shape is None else tuple(shape)
    if init == "empty":
        return np.empty(shape, dtype=dtype)
    if init == "glorot":
        limit = np.sqrt(6.0 / (fan_in + fan_out))
        w = rng.uniform(-limit, limit, size=shape)
    elif init == "he":
        w = rng.standard_normal(shape) * np.sqrt(2.0 / fan_in)
    else:
        raise ValueError(f"init_weight: init must be one of {INITS}, got {init!r}")
    return w.astype(dtype)


def default_init(activation: Optional[str]) -> str:
    """He for ReLU, Glorot for everything else."""
    return "he" if activation == "relu" else "glorot"


def mlp_parameter_shapes(sizes: Sequence[int], bias: bool = True, dtype: Any = np.float64,
                         max_parameters: int = MAX_PARAMETERS) -> Dict[str, Tuple[int, ...]]:
    """The name and shape of every parameter of an MLP with layer widths `sizes`, in
    `named_parameters()` order, once the widths are checked: 2 to MAX_LAYERS + 1 positive whole
    numbers, at most `max_parameters` parameters in all, and no more bytes of `dtype` than this
    machine's memory. A ValueError says which limit is broken, with the parameter count and the
    gigabytes needed. `MLP(...)` and `nn.load` both check an architecture here, before allocating.

    Example:
        >>> mlp_parameter_shapes([784, 100, 10], bias=False)
        {'hidden.0.weight': (784, 100), 'output.weight': (100, 10)}
    """
    is_list = hasattr(sizes, "__len__") and hasattr(sizes, "__iter__")
    if isinstance(sizes, (str, bytes, dict)) or not is_list:
        raise ValueError(f"MLP: sizes must be a list of layer widths such as [784, 100, 10], "
                         f"got {sizes!r:.80}")
    if not 2 <= len(sizes) <= MAX_LAYERS + 1:
        raise ValueError(f"MLP: sizes must list at least an input and an output width and at most "
                         f"{MAX_LAYERS + 1} widths ({MAX_LAYERS} layers), e.g. [784, 100, 10]; "
                         f"got {len(sizes)} widths")
    widths = [_whole_number(n) for n in sizes]
    if any(n is None or n < 1 for n in widths):
        raise ValueError(f"MLP: sizes must be positive whole numbers, e.g. [784, 100, 10]; "
                         f"got {list(sizes)!r:.200}")
    if not isinstance(bias, (bool, np.bool_)):
        raise ValueError(f"MLP: bias must be True or False, got {bias!r:.80}")
    dtype = float_dtype(dtype, "MLP")
    shapes: Dict[str, Tuple[int, ...]] = {}
    names = [f"hidden.{i}" for i in range(len(widths) - 2)] + ["output"]
    for name, fan_in, fan_out in zip(names, widths[:-1], widths[1:]):
        shapes[f"{name}.weight"] = (fan_in, fan_out)
        if bias:
            shapes[f"{name}.bias"] = (fan_out,)
    count = sum(math.prod(shape) for shape in shapes.values())
    check_parameter_count(count, dtype, max_parameters, "MLP", f"the network {widths}")
    return shapes


def check_parameter_count(count: int, dtype: Any, max_parameters: int, op: str, subject: str) -> None:
    """A ValueError, before anything is allocated, when `count` parameters of `dtype` are more than
    `max_parameters` or need more bytes than this machine's memory; the message names `op` and
    `subject` (e.g. "MLP", "the network [784, 100, 10]") and gives both figures."""
    check_max_parameters(max_parameters, op)
    size = np.dtype(dtype).itemsize * count
    need = f"{count:,} parameters ({size / 1e9:.3g} GB as {np.dtype(dtype).name})"
    if count > max_parameters:
        raise ValueError(f"{op}: {subject} needs {need}, more than the cap of {max_parameters:,} "
                         "parameters; use smaller layers, or pass a larger max_parameters if this is "
                         "intended")
    memory = _physical_memory_bytes()
    if memory is not None and size > memory:
        raise ValueError(f"{op}: {subject} needs {need}, more than this machine's {memory / 1e9:.3g} GB "
                         "of memory; use smaller layers or float32")


def check_max_parameters(max_parameters: Any, op: str) -> None:
    """A ValueError naming `op` unless `max_parameters` is a positive int."""
    if isinstance(max_parameters, bool) or not isinstance(max_parameters, int) or max_parameters < 1:
        raise ValueError(f"{op}: max_parameters must be a positive int, got {max_parameters!r:.80}")


def float_dtype(dtype: Any, what: str) -> np.dtype:
    """`dtype` as a NumPy floating-point dtype, or a ValueError naming `what` and the dtype given."""
    try:
        result = np.dtype(dtype)
    except (TypeError, ValueError):
        result = None
    if result is None or result.kind != "f":
        raise ValueError(f"{what}: dtype must be a floating-point type such as float32 or float64, "
                         f"got {result if result is not None else repr(dtype)[:80]}")
    return result


def _whole_number(value: Any) -> Optional[int]:
    """`value` as an int when it is one (an int or NumPy integer, not a bool), else None."""
    if isinstance(value, (bool, np.bool_)):
        return None
    try:
        return operator.index(value)
    except TypeError:
        return None


def _physical_memory_bytes() -> Optional[int]:
    """This machine's RAM in bytes, or None where the platform does not say (no os.sysconf)."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):
        return None


def _check_features(module: Module, x: Tensor, expected: int) -> None:
    shape = x.data.shape
    if not shape or shape[-1] != expected:
        raise ValueError(f"{module.short_name()}: expected an input whose last axis has {expected} "
                         f"features, got shape {shape}")


def _as_input(x: Any, dtype: np.dtype) -> Tensor:
    """Tensors pass through; arrays (e.g. integer pixels) become constants of the layer's dtype."""
    if isinstance(x, Tensor):
        return x
    return Tensor(np.asarray(x, dtype=dtype))


class Linear(Module):
    """Z = A W + b, with W of shape (in_features, out_features) and b of shape (out_features,).

    Example:
        >>> layer = Linear(784, 100, init="glorot", seed=0)
        >>> layer(np.zeros((32, 784))).shape
        (32, 100)
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = True, init: str = "glorot",
                 rng: Optional[np.random.Generator] = None, seed: Optional[int] = None,
                 dtype: Any = np.float64, max_parameters: int = MAX_PARAMETERS) -> None:
        super().__init__()
        fan_in, fan_out = _whole_number(in_features), _whole_number(out_features)
        if fan_in is None or fan_out is None or fan_in < 1 or fan_out < 1:
            raise ValueError(f"Linear: in_features and out_features must be positive whole numbers, "
                             f"got {in_features!r} and {out_features!r}")
        dtype = float_dtype(dtype, "Linear")
        check_parameter_count(fan_in * fan_out + (fan_out if bias else 0), dtype, max_parameters,
                              "Linear", f"a {fan_in} x {fan_out} layer")
        self.in_features = fan_in
        self.out_features = fan_out
        rng = make_rng(rng, seed)
        self.weight = Parameter(init_weight(fan_in, fan_out, init, rng, dtype), kind="weight")
        self.bias = Parameter(np.zeros(fan_out, dtype=dtype), kind="bias") if bias else None

    def forward(self, x: Any, activation: Optional[str] = None) -> Tensor:
        """A W + b, then `activation` (None, "sigmoid", "tanh" or "relu") when given, fused
        into the same primitive for a 2-D batch."""
        x = _as_input(x, self.weight.dtype)
        _check_features(self, x, self.in_features)
        if x.data.ndim == 2:
            return fused.linear(x, self.weight, self.bias, activation=activation)
        z = x @ self.weight   # a single sample (in,) or a stack of batches (..., batch, in)
        if self.bias is not None:
            z = z + self.bias
        return z if activation is None else activation_module(activation)(z)

    def short_name(self) -> str:
        """How errors name this layer: `Linear(784 -> 100)`."""
        return f"Linear({self.in_features} -> {self.out_features})"

    def extra_repr(self) -> str:
        return f"{self.in_features} -> {self.out_features}, bias={self.bias is not None}"


class Sigmoid(Module):
    """a = 1 / (1 + exp(-z)), elementwise."""

    def forward(self, x: Any) -> Tensor:
        return ag.sigmoid(x)


class Tanh(Module):
    """a = tanh(z), elementwise."""

    def forward(self, x: Any) -> Tensor:
        return ag.tanh(x)


class ReLU(Module):
    """a = max(z, 0), elementwise."""

    def forward(self, x: Any) -> Tensor:
        return ag.relu(x)


class Softmax(Module):
    """a = exp(z) / sum(exp(z)) along `axis` (stable for large logits)."""

    def __init__(self, axis: int = -1) -> None:
        super().__init__()
        self.axis = axis

    def forward(self, x: Any) -> Tensor:
        return ag.softmax(x, axis=self.axis)

    def extra_repr(self) -> str:
        return f"axis={self.axis}"


class LeakyReLU(Module):
    """a = z for z > 0, negative_slope * z otherwise, elementwise."""

    def __init__(self, negative_slope: float = 0.01) -> None:
        super().__init__()
        slope = float(negative_slope) if isinstance(negative_slope, (int, float, np.floating)) \
            and not isinstance(negative_slope, bool) else math.nan
        if not (math.isfinite(slope) and 0.0 <= slope <= 1.0):
            raise ValueError(f"LeakyReLU: negative_slope must be a number in [0, 1], got {negative_slope!r:.80}")
        self.negative_slope = slope

    def forward(self, x: Any) -> Tensor:
        # relu(x) + slope * (x - relu(x)): x and slope * x exactly, and at x = 0 the slope as the
        # gradient (PyTorch's; ag.maximum(x, slope * x) splits a tie, giving (1 + slope) / 2)
        positive = ag.relu(x)
        return positive + self.negative_slope * (ag.as_tensor(x) - positive)

    def extra_repr(self) -> str:
        return f"negative_slope={self.negative_slope:g}"


class GELU(Module):
    """The Gaussian error linear unit in its tanh form (Hendrycks & Gimpel 2016),
    a = z/2 (1 + tanh(sqrt(2/pi) (z + 0.044715 z^3))): PyTorch's GELU(approximate="tanh"),
    within 1e-3 of the exact z * Phi(z) (the library has no erf primitive)."""

    def forward(self, x: Any) -> Tensor:
        x = ag.as_tensor(x)
        inner = math.sqrt(2.0 / math.pi) * (x + 0.044715 * x * x * x)
        return 0.5 * x * (1.0 + ag.tanh(inner))


class Identity(Module):
    """a = z: a placeholder where a layer is optional (e.g. no batch norm)."""

    def forward(self, x: Any) -> Any:
        return x


_ACTIVATION_MODULES = {"sigmoid": Sigmoid, "tanh": Tanh, "relu": ReLU, "softmax": Softmax}


def activation_module(name: str) -> Module:
    """The activation module for "sigmoid", "tanh", "relu" or "softmax"."""
    if name not in _ACTIVATION_MODULES:
        raise ValueError(f"activation_module: unknown activation {name!r}, "
                         f"expected one of {tuple(_ACTIVATION_MODULES)}")
    return _ACTIVATION_MODULES[name]()


class Dropout(Module):
    """Inverted dropout: in training, zero each element with probability p and scale the rest by
    1 / (1 - p), so the expected value is unchanged; in `eval()` mode, the identity.

    The mask comes from a seeded Generator (`rng` or `seed`), so a run can be repeated.
    """

    def __init__(self, p: float = 0.5, rng: Optional[np.random.Generator] = None,
                 seed: Optional[int] = None) -> None:
        super().__init__()
        p = float(p)
        if not 0.0 <= p < 1.0:
            raise ValueError(f"Dropout: p is the probability of dropping an element and must be "
                             f"in [0, 1), got {p}")
        self.p = p
        self.rng = make_rng(rng, seed)

    def forward(self, x: Any) -> Tensor:
        x = ag.as_tensor(x)
        if not self.training or self.p == 0.0:
            return x
        return fused.dropout(x, self.p, self.rng)

    def extra_repr(self) -> str:
        return f"p={self.p}"


class Sequential(Module):
    """Modules applied in order: `Sequential(Linear(4, 8), Tanh(), Linear(8, 1))`.

    Parameters are named by position: `0.weight`, `0.bias`, `2.weight`, ...
    """

    def __init__(self, *modules: Module) -> None:
        super().__init__()
        for i, m in enumerate(modules):
            if not isinstance(m, Module):
                raise TypeError(f"Sequential: argument {i} is a {type(m).__name__}, not a Module")
        self.steps = list(modules)

    def named_children(self) -> Iterator:
        for i, module in enumerate(self.steps):
            yield str(i), module

    def forward(self, x: Any) -> Tensor:
        for module in self.steps:
            x = module(x)
        return x

    def __getitem__(self, i: int) -> Module:
        return self.steps[i]

    def __len__(self) -> int:
        return len(self.steps)

    def __iter__(self) -> Iterator[Module]:
        return iter(self.steps)


class ModuleList(Module):
    """A list of modules whose parameters belong to the owner, named by position (`blocks.0.weight`),
    for a forward that calls them in its own way: `self.blocks = ModuleList([Linear(4, 4) for _ in
    range(3)])`. It has no forward of its own."""

    def __init__(self, modules: Sequence[Module] = ()) -> None:
        super().__init__()
        self.items = []
        for module in modules:
            self.append(module)

    def append(self, module: Module) -> "ModuleList":
        """Add `module` at the end; returns self."""
        if not isinstance(module, Module):
            raise TypeError(f"ModuleList: item {len(self.items)} is a {type(module).__name__}, not a Module")
        self.items = self.items + [module]   # a new list, so that parameters() sees the change
        return self

    def named_children(self) -> Iterator:
        for i, module in enumerate(self.items):
            yield str(i), module

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        raise TypeError("ModuleList: has no forward; call its modules in your own forward")

    def __getitem__(self, i: int) -> Module:
        return self.items[i]

    def __len__(self) -> int:
        return len(self.items)

    def __iter__(self) -> Iterator[Module]:
        return iter(self.items)


class MLP(Module):
    """A multilayer perceptron: sizes [n_in, h_1, ..., n_out], `activation` after every hidden
    layer (followed by dropout when `dropout > 0`), and `output_activation` (None for logits,
    "sigmoid" for the lecture's network) after the last.

    Parameters are named after the lecture's layers: `hidden.0.weight`, `hidden.0.bias`, ...,
    `output.weight`, `output.bias`. `architecture()` describes the network as plain JSON data
    and `MLP.from_architecture` rebuilds it, which is how `nn.load(path)` restores a model.

    Example (the lecture's 784-100-10 sigmoid network):
        >>> model = MLP([784, 100, 10], activation="sigmoid", output_activation="sigmoid", seed=0)
    """

    def __init__(self, sizes: Sequence[int], activation: str = "sigmoid", dropout: float = 0.0,
                 output_activation: Optional[str] = None, init: Optional[str] = None,
                 bias: bool = True, rng: Optional[np.random.Generator] = None,
                 seed: Optional[int] = None, dtype: Any = np.float64,
                 max_parameters: int = MAX_PARAMETERS) -> None:
        super().__init__()
        if activation not in ACTIVATIONS:
            raise ValueError(f"MLP: activation must be one of {ACTIVATIONS}, got {activation!r}")
        if output_activation not in OUTPUT_ACTIVATIONS:
            raise ValueError(f"MLP: output_activation must be one of {OUTPUT_ACTIVATIONS}, "
                             f"got {output_activation!r}")
        mlp_parameter_shapes(sizes, bias, dtype, max_parameters)   # before any layer is allocated
        rng = make_rng(rng, seed)
        dtype = np.dtype(dtype)
        sizes = [operator.index(n) for n in sizes]
        self.sizes = sizes
        self.activation_name = activation
        self.output_activation_name = output_activation
        self.dtype = dtype
        dropout = Dropout(dropout, rng=rng)   # checks p before the layers are allocated
        self.hidden = [Linear(a, b, bias=bias, init=init or default_init(activation), rng=rng, dtype=dtype,
                              max_parameters=max_parameters)
                       for a, b in zip(sizes[:-2], sizes[1:-1])]
        self.dropout = dropout
        self.output = Linear(sizes[-2], sizes[-1], bias=bias,
                             init=init or default_init(output_activation),
                             rng=rng, dtype=dtype, max_parameters=max_parameters)

    def forward(self, x: Any) -> Tensor:
        a = _as_input(x, self.dtype)
        _check_features(self, a, self.sizes[0])
        for layer in self.hidden:
            a = self.dropout(layer(a, activation=self.activation_name))
        if self.output_activation_name == "softmax":
            return ag.softmax(self.output(a), axis=-1)
        return self.output(a, activation=self.output_activation_name)

    def short_name(self) -> str:
        """How errors name this network: `MLP(784 -> ... -> 10)`."""
        return f"MLP({self.sizes[0]} -> ... -> {self.sizes[-1]})"

    def architecture(self) -> Dict[str, Any]:
        """The constructor arguments as JSON data: `MLP.from_architecture(m.architecture())`
        builds an MLP of the same shape (with fresh weights)."""
        return {"class": "MLP", "sizes": list(self.sizes), "activation": self.activation_name,
                "dropout": self.dropout.p, "output_activation": self.output_activation_name,
                "bias": self.output.bias is not None, "dtype": self.dtype.name}

    @classmethod
    def from_architecture(cls, arch: Dict[str, Any], seed: Optional[int] = 0, init: Optional[str] = None,
                          max_parameters: int = MAX_PARAMETERS) -> "MLP":
        """An MLP built from `architecture()` data, its weights initialised from `seed` (or left
        uninitialised with `init="empty"`, for a loader that fills every parameter)."""
        return cls(seed=seed, init=init, max_parameters=max_parameters, **_architecture_arguments(arch))

    @staticmethod
    def parameter_specs(arch: Dict[str, Any],
                        max_parameters: int = MAX_PARAMETERS) -> Dict[str, Tuple[Tuple[int, ...], np.dtype]]:
        """{name: (shape, dtype)} of the parameters `from_architecture(arch)` would hold, checked as
        the constructor checks its sizes, bias and dtype but without building anything: how
        `nn.load` knows what a file must contain before it reads the file's arrays."""
        arguments = _architecture_arguments(arch)
        dtype = float_dtype(arguments.get("dtype", np.float64), "MLP")
        shapes = mlp_parameter_shapes(arguments["sizes"], arguments.get("bias", True), dtype, max_parameters)
        return {name: (shape, dtype) for name, shape in shapes.items()}

    def extra_repr(self) -> str:
        text = " -> ".join(str(n) for n in self.sizes) + f", activation={self.activation_name!r}"
        if self.dropout.p:
            text += f", dropout={self.dropout.p}"
        if self.output_activation_name is not None:
            text += f", output_activation={self.output_activation_name!r}"
        return text


def _architecture_arguments(arch: Dict[str, Any]) -> Dict[str, Any]:
    """The MLP constructor's arguments in `architecture()` data, or a ValueError for a dict that is
    not MLP architecture data (wrong class, unknown keys, no sizes)."""
    if not isinstance(arch, dict) or arch.get("class") != "MLP":
        raise ValueError(f"MLP.from_architecture: expected a dict with 'class': 'MLP', got {arch!r:.200}")
    known = ("sizes", "activation", "dropout", "output_activation", "bias", "dtype")
    unknown = sorted(set(arch) - set(known) - {"class"})
    if unknown or "sizes" not in arch:
        raise ValueError(f"MLP.from_architecture: needs 'sizes' and accepts only {known}; "
                         f"got keys {sorted(arch)!r:.200}")
    return {k: arch[k] for k in known if k in arch}
