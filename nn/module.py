"""Module and Parameter: the containers a model is written with.

A `Module` finds its parameters and sub-modules from its attributes (also inside lists,
tuples and dicts of modules), names them with dotted paths (`hidden.0.weight`), switches
training behaviour on and off for the whole tree, and reads and writes its state as a
dict of arrays. A `Parameter` is a leaf Tensor that requires a gradient and knows whether
it is a weight (penalised by `l2_penalty`) or a bias (not penalised). A buffer
(`register_buffer`) is an array that belongs to the state but is not trained, such as
BatchNorm's running statistics.
"""
from __future__ import annotations

from collections import OrderedDict
from typing import Any, Iterator, List, Mapping, NamedTuple, Optional, Tuple

import numpy as np

from autograd_lite import Tensor
from autograd_lite.engine import guard

PARAMETER_KINDS = ("weight", "bias")


class Parameter(Tensor):
    """A trainable leaf tensor (requires_grad=True) with a `kind`: "weight" or "bias".

    `kind` decides whether `l2_penalty` includes it: weights yes, biases no (the lecture's
    penalty term sums the squared weights only).

    Example:
        >>> W = Parameter(np.zeros((3, 2)), kind="weight")
    """

    __slots__ = ("kind",)

    def __init__(self, data: Any, kind: str = "weight", dtype: Any = None,
                 name: Optional[str] = None) -> None:
        if kind not in PARAMETER_KINDS:
            raise ValueError(f"Parameter: kind must be one of {PARAMETER_KINDS}, got {kind!r}")
        array = np.array(data.data if isinstance(data, Tensor) else data, dtype=dtype)
        if array.dtype.kind != "f":
            raise TypeError(f"Parameter: needs floating-point data, got dtype {array.dtype}; "
                            "pass float data or dtype=np.float64 / np.float32")
        super().__init__(array, requires_grad=True, name=name)
        self.kind = kind

    def __repr__(self) -> str:
        body = np.array2string(self.data, separator=", ", prefix="Parameter(")
        return f"Parameter({body}, kind={self.kind!r}, dtype={self.dtype})"


class IncompatibleKeys(NamedTuple):
    """What `load_state_dict(strict=False)` skipped: keys the module has but the state lacks,
    and keys the state has but the module does not."""
    missing_keys: List[str]
    unexpected_keys: List[str]


class Module:
    """Base class of every layer and model: subclass it, assign parameters and sub-modules as
    attributes in `__init__`, and write `forward`.

    Example:
        >>> class TwoLayer(Module):
        ...     def __init__(self):
        ...         super().__init__()
        ...         self.hidden = Linear(4, 8, seed=0)
        ...         self.output = Linear(8, 1, seed=1)
        ...     def forward(self, x):
        ...         return self.output(self.hidden(x).tanh())
        >>> [name for name, _ in TwoLayer().named_parameters()]
        ['hidden.weight', 'hidden.bias', 'output.weight', 'output.bias']
    """

    def __init__(self) -> None:
        self.training = True

    # ---- running -----------------------------------------------------------------------
    def forward(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError(f"{type(self).__name__}: subclasses of Module must define forward()")

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        guard(self)   # inside ag.compile: another train()/eval() or setting (dropout p) retraces
        return self.forward(*args, **kwargs)

    def short_name(self) -> str:
        """How error messages name this module (the class name unless a subclass says more)."""
        return type(self).__name__

    def train(self, mode: bool = True) -> "Module":
        """Training mode (dropout active) for this module and every sub-module; returns self."""
        for module in self.modules():
            module.training = bool(mode)
        return self

    def eval(self) -> "Module":
        """Evaluation mode (dropout is the identity) for the whole tree; returns self."""
        return self.train(False)

    # ---- the tree ----------------------------------------------------------------------
    def named_children(self) -> Iterator[Tuple[str, "Module"]]:
        """(name, module) for each direct sub-module; modules in a list `layers` are `layers.0`, ..."""
        for attr, value in vars(self).items():
            if isinstance(value, Module):
                yield attr, value
            elif isinstance(value, (list, tuple)):
                for i, item in enumerate(value):
                    if isinstance(item, Module):
                        yield f"{attr}.{i}", item
            elif isinstance(value, dict):
                for key, item in value.items():
                    if isinstance(item, Module):
                        yield f"{attr}.{key}", item

    def children(self) -> Iterator["Module"]:
        """The direct sub-modules."""
        for _, module in self.named_children():
            yield module

    def named_modules(self, prefix: str = "") -> Iterator[Tuple[str, "Module"]]:
        """(dotted name, module) for this module ("" for itself) and every descendant, depth first."""
        seen = set()
        stack = [(prefix, self)]
        while stack:
            name, module = stack.pop()
            if id(module) in seen:
                continue
            seen.add(id(module))
            yield name, module
            children = [(f"{name}.{child_name}" if name else child_name, child)
                        for child_name, child in module.named_children()]
            stack.extend(reversed(children))

    def modules(self) -> Iterator["Module"]:
        """This module and every descendant, each once."""
        for _, module in self.named_modules():
            yield module

    def _own_parameters(self) -> Iterator[Tuple[str, Parameter]]:
        for attr, value in vars(self).items():
            if isinstance(value, Parameter):
                yield attr, value
            elif isinstance(value, (list, tuple)):
                for i, item in enumerate(value):
                    if isinstance(item, Parameter):
                        yield f"{attr}.{i}", item

    def named_parameters(self) -> Iterator[Tuple[str, Parameter]]:
        """(dotted name, parameter) for every parameter in the tree, each shared one once."""
        seen = set()
        for module_name, module in self.named_modules():
            for name, param in module._own_parameters():
                if id(param) in seen:
                    continue
                seen.add(id(param))
                yield (f"{module_name}.{name}" if module_name else name), param

    def register_buffer(self, name: str, value: Any) -> None:
        """Keep the array `value` as attribute `name`: part of `state_dict()` (so saved with the model
        and restored by `load_state_dict`), never returned by `parameters()` (so never trained).
        Update it in place (`self.name[...] = new`) so that the state keeps pointing at it."""
        if not isinstance(name, str) or not name.isidentifier():
            raise ValueError(f"register_buffer: the name must be an identifier, got {name!r:.80}")
        array = np.asarray(value)
        if array.dtype.kind != "f":
            raise TypeError(f"register_buffer: {name!r} needs floating-point data, got dtype {array.dtype}")
        names = self.__dict__.get("_buffer_names", ())
        object.__setattr__(self, "_buffer_names", names if name in names else names + (name,))
        object.__setattr__(self, name, array)

    def named_buffers(self) -> Iterator[Tuple[str, np.ndarray]]:
        """(dotted name, array) for every buffer in the tree, e.g. `1.running_mean`."""
        for module_name, module in self.named_modules():
            for name in module.__dict__.get("_buffer_names", ()):
                yield (f"{module_name}.{name}" if module_name else name), getattr(module, name)

    def _named_state(self) -> "OrderedDict[str, Any]":
        """{dotted name: Parameter or buffer array}: what `state_dict()` holds."""
        state: "OrderedDict[str, Any]" = OrderedDict(self.named_parameters())
        state.update(self.named_buffers())
        return state

    def parameters(self) -> List[Parameter]:
        """Every parameter in the tree (what an optimizer updates), in `named_parameters()` order.

        Losses such as `l2_penalty` call it every training step, so the answer is kept until the tree's
        structure changes: any module attribute set or deleted to or from a module, a
        parameter or a container (`Module.__setattr__` counts those), or any list, tuple or
        dict the walk went through changing its contents. Checking that costs one comparison
        per container instead of a walk over every attribute. Changes made around
        `Module.__setattr__` (`object.__setattr__`, writing into `vars(module)`) are not seen."""
        cached = self.__dict__.get("_parameter_cache")
        if cached is not None and cached.version == _STRUCTURE[0]:
            for container, ids, _ in cached.containers:
                if tuple(map(id, container.values() if type(container) is dict else container)) != ids:
                    break
            else:
                return list(cached.parameters)
        version = _STRUCTURE[0]
        out, containers = self._walk_parameters()
        # stored with the module itself (not in a global table: no hashing of modules, and no
        # reference from outside that could keep a module alive); bypasses __setattr__
        self.__dict__["_parameter_cache"] = _ParameterCache(version, tuple(out), containers)
        return out

    def _walk_parameters(self) -> Tuple[List[Parameter], list]:
        """(parameters, [(container, ids of its items, its items)]): the parameters by the
        `named_parameters()` walk, and every list, tuple and dict attribute of the tree's modules."""
        out = [param for _, param in self.named_parameters()]
        containers = []
        for module in self.modules():
            for value in vars(module).values():
                if isinstance(value, (list, tuple, dict)):
                    items = tuple(value.values() if isinstance(value, dict) else value)
                    containers.append((value, tuple(map(id, items)), items))
        return out, containers

    def __setattr__(self, name: str, value: Any) -> None:
        if _structural(value) or _structural(self.__dict__.get(name)):
            _STRUCTURE[0] += 1
        object.__setattr__(self, name, value)

    def __delattr__(self, name: str) -> None:
        if _structural(self.__dict__.get(name)):
            _STRUCTURE[0] += 1
        object.__delattr__(self, name)

    def num_parameters(self) -> int:
        """The number of trainable scalars."""
        return int(sum(p.size for p in self.parameters()))

    def zero_grad(self) -> None:
        """Forget every parameter's gradient (sets `.grad` to None)."""
        for p in self.parameters():
            p.grad = None

    # ---- state -------------------------------------------------------------------------
    def state_dict(self) -> "OrderedDict[str, np.ndarray]":
        """{dotted name: a copy of the parameter's array}, in `named_parameters()` order, then the
        buffers (`named_buffers()`)."""
        return OrderedDict((name, _array(p).copy()) for name, p in self._named_state().items())

    def load_state_dict(self, state: Mapping[str, Any], strict: bool = True) -> IncompatibleKeys:
        """Copy arrays from `state` into the parameters with the same names, in place.

        Every key is checked before anything is copied: a shape mismatch (always) or a
        missing or unexpected key (when `strict`) raises a ValueError that lists every
        offending key with both shapes, and the module is left unchanged. Values are cast
        to each parameter's dtype. Returns the missing and unexpected keys.
        """
        own = self._named_state()
        values = {k: (v.data if isinstance(v, Tensor) else np.asarray(v)) for k, v in state.items()}
        missing, unexpected, problems = self._state_problems({k: v.shape for k, v in values.items()}, strict)
        problems += [f"{k!r} has dtype {v.dtype}, expected a numeric array" for k, v in values.items()
                     if k in own and v.shape == own[k].shape and v.dtype.kind not in "fiub"]
        if problems:
            raise self._state_error(problems)
        for k, p in own.items():
            if k in values:
                np.copyto(_array(p), values[k], casting="unsafe")
        return IncompatibleKeys(missing, unexpected)

    def check_state_shapes(self, shapes: Mapping[str, Tuple[int, ...]],
                           strict: bool = True) -> IncompatibleKeys:
        """Check a state's names and shapes, {name: shape}, as `load_state_dict` would, without the
        arrays (a loader can refuse a file before reading it): the same ValueError, or the
        missing and unexpected keys."""
        missing, unexpected, problems = self._state_problems(shapes, strict)
        if problems:
            raise self._state_error(problems)
        return IncompatibleKeys(missing, unexpected)

    def _state_problems(self, shapes: Mapping[str, Tuple[int, ...]],
                        strict: bool) -> Tuple[List[str], List[str], List[str]]:
        """(missing keys, unexpected keys, a sentence for each name or shape that cannot be loaded)."""
        own = {k: _array(v) for k, v in self._named_state().items()}
        missing = [k for k in own if k not in shapes]
        unexpected = [k for k in shapes if k not in own]
        problems = []
        if strict:
            problems += [f"missing key {k!r} (the module's parameter has shape {own[k].shape})"
                         for k in missing]
            problems += [f"unexpected key {k!r} (shape {tuple(shapes[k])}; the module has no "
                         f"parameter of that name)" for k in unexpected]
        problems += [f"shape mismatch for {k!r}: the state has {tuple(shapes[k])}, the module's "
                     f"parameter has {p.shape}" for k, p in own.items()
                     if k in shapes and tuple(shapes[k]) != p.shape]
        return missing, unexpected, problems

    def _state_error(self, problems: List[str]) -> ValueError:
        return ValueError(f"load_state_dict: {type(self).__name__} cannot load this state "
                          f"({len(problems)} problem{'s' if len(problems) > 1 else ''}; "
                          "nothing was changed):\n  " + "\n  ".join(problems))

    # ---- printing ----------------------------------------------------------------------
    def extra_repr(self) -> str:
        """The text inside the parentheses of this module's repr (its settings)."""
        return ""

    def __repr__(self) -> str:
        count = self.num_parameters()
        head = f"{type(self).__name__}({self.extra_repr()})"
        if count:
            head += f": {count:,} parameter{'s' if count != 1 else ''}"
        lines = [head]
        for name, child in self.named_children():
            lines.append(f"  ({name}): " + repr(child).replace("\n", "\n  "))
        return "\n".join(lines)


# bumped by every structural attribute change of any module; `parameters()` answers from its
# cache only while it is unchanged
_STRUCTURE = [0]


class _ParameterCache:
    """What `Module.parameters()` found, the structure version it found it at, and for every
    container it walked: (the container, the ids of its items, the items). Holding the items
    keeps their ids from being reused by new objects while the snapshot is compared. Copies
    and pickles of a module do not carry it (they start without a cache)."""

    __slots__ = ("version", "parameters", "containers")

    def __init__(self, version: int, parameters: tuple, containers: list) -> None:
        self.version = version
        self.parameters = parameters
        self.containers = containers

    def __reduce__(self):
        return (_no_cache, ())


def _no_cache() -> None:
    return None


def _array(value: Any) -> np.ndarray:
    """A Parameter's array, or a buffer (already an array)."""
    return value.data if isinstance(value, Tensor) else value


def _structural(value: Any) -> bool:
    """Whether an attribute holding `value` can change which parameters a tree has."""
    return isinstance(value, (Module, Parameter, list, tuple, dict))
