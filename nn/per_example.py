"""Per-example gradients of a model's loss, and clipping them (the core of DP-SGD).

`per_example_grads(model, loss, X, Y)` gives one gradient per example in one batched pass:
`ag.vmap(ag.grad(...), in_axes=(None, 0, 0))` over a functional view of the model (the
parameters are passed in as arguments and substituted for the module's own for the duration
of the call), instead of a loop of one backward pass per example.
"""
from __future__ import annotations

import contextlib
from typing import Any, Callable, Dict, Iterator, List, Mapping, Sequence, Tuple

import numpy as np

import autograd_lite as ag
from autograd_lite import Tensor
from autograd_lite.fused import half_lambda_sum_of_squares

from .module import Module

__all__ = ["per_example_grads", "clip_per_example", "functional_call"]


def per_example_grads(model: Module, loss: Callable[[Any, Any], Any], X: Any, Y: Any,
                      l2: float = 0.0) -> Dict[str, np.ndarray]:
    """d loss(model(x_i), y_i) / d theta for every example i, one batched pass.

    `loss(outputs, targets)` is any loss written for a batch (e.g.
    `nn.sparse_categorical_cross_entropy`); each example is passed to the model and the loss as
    a batch of one (x_i[None], Y[i][None]), so its value is that example's own loss whatever
    the reduction. `l2` adds the lecture's penalty l2/2 * sum of the squared weights to every
    example's loss (so each gradient gains l2 * W). Returns {parameter name: array of shape
    (n, *parameter.shape)}, in `named_parameters()` order. The model is run in its current mode:
    call `model.eval()` first for dropout to be off (in training mode the dropout masks of the
    batch are drawn in one go, not as a loop of single-example calls would draw them).

    Example:
        >>> model = MLP([64, 32, 10], activation="relu", seed=0).eval()
        >>> g = per_example_grads(model, sparse_categorical_cross_entropy, X[:8], y[:8])
        >>> g["output.weight"].shape
        (8, 32, 10)
    """
    names, params = _named_parameters(model, "per_example_grads")
    X, Y = _check_batch(X, Y)
    l2 = float(l2)
    if not l2 >= 0.0:
        raise ValueError(f"per_example_grads: l2 must be a non-negative number, got {l2}")
    weights = [i for i, (_, p) in enumerate(zip(names, params)) if getattr(p, "kind", "weight") == "weight"]

    def example_loss(*args: Any) -> Any:
        theta, x, y = args[:-2], args[-2], args[-1]
        with functional_call(model, dict(zip(names, theta))):
            value = loss(model(ag.reshape(x, (1,) + tuple(x.shape))), _one(y))
        if l2:
            value = value + half_lambda_sum_of_squares(*[theta[i] for i in weights], lam=l2)
        return value

    gradient = ag.grad(example_loss, argnums=tuple(range(len(params))))

    def gradient_of_example(theta: Sequence[np.ndarray], x: Any, y: Any) -> tuple:
        return gradient(*theta, x, y)

    arrays = tuple(p.data for p in params)
    grads = ag.vmap(gradient_of_example, in_axes=(None, 0, 0))(arrays, X, Y)
    return {name: np.asarray(g) for name, g in zip(names, grads)}


def clip_per_example(grads: Mapping[str, np.ndarray], max_norm: float
                     ) -> Tuple[Dict[str, np.ndarray], np.ndarray]:
    """Scale each example's gradient (all parameters together) to a global L2 norm of at most
    `max_norm`: g_i * min(1, max_norm / ||g_i||). Returns (clipped grads, the norms before).

    Example:
        >>> clipped, norms = clip_per_example(per_example_grads(model, loss, X, Y), 1.0)
    """
    max_norm = float(max_norm)
    if not max_norm > 0.0 or not np.isfinite(max_norm):
        raise ValueError(f"clip_per_example: max_norm must be a positive finite number, got {max_norm}")
    if not grads:
        raise ValueError("clip_per_example: grads is empty; expected {name: array of shape (n, ...)}")
    sizes = {name: np.shape(g)[0] if np.ndim(g) else None for name, g in grads.items()}
    if None in sizes.values() or len(set(sizes.values())) != 1:
        raise ValueError(f"clip_per_example: every gradient must have the same leading (example) "
                         f"axis, got {sizes}")
    n = next(iter(sizes.values()))
    squares = np.zeros(n, dtype=np.result_type(*[np.asarray(g).dtype for g in grads.values()]))
    for g in grads.values():
        squares += np.einsum("ij,ij->i", *(np.reshape(g, (n, -1)),) * 2)
    norms = np.sqrt(squares)
    scale = max_norm / np.maximum(norms, max_norm)   # 1 where ||g_i|| <= max_norm
    clipped = {name: g * scale.reshape((n,) + (1,) * (np.ndim(g) - 1)) for name, g in grads.items()}
    return clipped, norms


@contextlib.contextmanager
def functional_call(model: Module, params: Mapping[str, Any]) -> Iterator[Module]:
    """Within the block, `model` computes with `params` ({dotted name: array or Tensor}) in place
    of its own parameters, which are put back on exit (also after an error).

    Example:
        >>> with functional_call(model, {"output.bias": b}):
        ...     z = model(x)
    """
    slots = _parameter_slots(model)
    unknown = sorted(set(params) - set(slots))
    if unknown:
        raise KeyError(f"functional_call: {type(model).__name__} has no parameter named {unknown[0]!r}; "
                       f"its parameters are {sorted(slots)}")
    saved = []
    try:
        for name, value in params.items():
            owner, attr, index = slots[name]
            saved.append((owner, attr, index, _get(owner, attr, index)))
            _set(owner, attr, index, value)
        yield model
    finally:
        for owner, attr, index, value in reversed(saved):
            _set(owner, attr, index, value)


# ---------------------------------------------------------------- helpers
def _named_parameters(model: Module, op: str) -> Tuple[List[str], List[Any]]:
    if not isinstance(model, Module):
        raise TypeError(f"{op}: model must be an nn.Module, got {type(model).__name__}")
    pairs = list(model.named_parameters())
    if not pairs:
        raise ValueError(f"{op}: {type(model).__name__} has no parameters to differentiate")
    return [n for n, _ in pairs], [p for _, p in pairs]


def _check_batch(X: Any, Y: Any) -> Tuple[np.ndarray, np.ndarray]:
    X, Y = np.asarray(X), np.asarray(Y)
    if X.ndim < 1 or Y.ndim < 1 or len(X) != len(Y) or len(X) == 0:
        raise ValueError(f"per_example_grads: X and Y must hold the same positive number of examples "
                         f"along axis 0, got shapes {X.shape} and {Y.shape}")
    return X, Y


def _one(y: Any) -> Any:
    """One example's target as a batch of one: a label () -> (1,), a target row (k,) -> (1, k)."""
    if isinstance(y, Tensor):
        return ag.reshape(y, (1,) + tuple(y.shape))
    return np.reshape(y, (1,) + np.shape(y))


def _parameter_slots(model: Module) -> Dict[str, Tuple[Module, str, Any]]:
    """{dotted name: (owning module, attribute, index in a list attribute or None)}, as
    `named_parameters()` names them (a shared parameter under its first name only)."""
    wanted = {id(p): name for name, p in model.named_parameters()}
    slots: Dict[str, Tuple[Module, str, Any]] = {}
    for module_name, module in model.named_modules():
        for attr, value in vars(module).items():
            items = enumerate(value) if isinstance(value, (list, tuple)) else [(None, value)]
            for index, item in items:
                name = wanted.get(id(item))
                local = attr if index is None else f"{attr}.{index}"
                if name is not None and name == (f"{module_name}.{local}" if module_name else local):
                    slots[name] = (module, attr, index)
    return slots


def _get(owner: Module, attr: str, index: Any) -> Any:
    value = vars(owner)[attr]
    return value if index is None else value[index]


def _set(owner: Module, attr: str, index: Any, value: Any) -> None:
    # around Module.__setattr__ on purpose: a temporary swap is not a change of the tree's structure
    if index is None:
        object.__setattr__(owner, attr, value)
    elif isinstance(vars(owner)[attr], list):
        vars(owner)[attr][index] = value
    else:
        items = list(vars(owner)[attr])
        items[index] = value
        object.__setattr__(owner, attr, tuple(items))
