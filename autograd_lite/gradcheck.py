"""Finite-difference checks of gradients, in float64, for users' own functions.

`gradcheck(f, *inputs)` compares the reverse-mode vector-Jacobian product v^T J (one
backward pass, a fixed random v) with central differences of v^T f, element by element,
and says which input and which element disagree, and by how much.
"""
from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np

from .engine import grad as _grad
from .tensor import Tensor


class GradcheckError(AssertionError):
    """The analytic and the numeric gradient disagree."""


def _as_float64_leaf(x: Any, i: int) -> Tensor:
    data = np.array(x.data if isinstance(x, Tensor) else x, dtype=np.float64)
    if data.dtype.kind != "f":
        raise TypeError(f"gradcheck: input {i} is not floating point")
    return Tensor(data, requires_grad=True)


def _projected(f: Callable, inputs: Sequence[Tensor], v: np.ndarray) -> float:
    out = f(*inputs)
    return float(np.sum(np.asarray(out.data if isinstance(out, Tensor) else out) * v))


def gradcheck(f: Callable[..., Tensor], *inputs: Any, eps: float = 1e-6, atol: float = 1e-5,
              rtol: float = 1e-3, seed: int = 0) -> bool:
    """Check the gradients of `f` at `inputs` against central finite differences in float64.

    `f` maps Tensors to one Tensor of any shape. Returns True, or raises `GradcheckError`
    naming the input, the element index, the analytic and the numeric value.

    Example:
        >>> gradcheck(lambda x: (x.sin() * x).sum(), np.random.rand(3, 4))
        True
    """
    leaves = [_as_float64_leaf(x, i) for i, x in enumerate(inputs)]
    out = f(*leaves)
    if not isinstance(out, Tensor):
        raise TypeError(f"gradcheck: f must return a Tensor, got {type(out).__name__}")
    if out.dtype != np.float64:
        raise GradcheckError(f"gradcheck: f returned dtype {out.dtype} for float64 inputs; "
                             "a float64 check needs float64 all the way through")
    v = np.random.default_rng(seed).standard_normal(out.shape)
    if out.requires_grad:
        analytic = [g.data for g in _grad(out, leaves, grad_outputs=v)]
    else:
        analytic = [np.zeros_like(x.data) for x in leaves]
    constants = [Tensor(x.data) for x in leaves]
    for i, x in enumerate(constants):
        flat = x.data.reshape(-1)
        for k in range(flat.size):
            original = flat[k]
            flat[k] = original + eps
            plus = _projected(f, constants, v)
            flat[k] = original - eps
            minus = _projected(f, constants, v)
            flat[k] = original
            numeric = (plus - minus) / (2 * eps)
            exact = float(analytic[i].reshape(-1)[k])
            if not abs(exact - numeric) <= atol + rtol * abs(numeric):
                index = np.unravel_index(k, x.shape) if x.ndim else ()
                raise GradcheckError(
                    f"gradcheck: input {i} (shape {x.shape}), element {tuple(int(j) for j in index)}: "
                    f"analytic {exact!r}, numeric {numeric!r} "
                    f"(difference {abs(exact - numeric):.3g} > atol {atol} + rtol {rtol} * |numeric|)")
    return True
