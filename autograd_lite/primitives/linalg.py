"""Linear algebra: the matrix product (1-D, 2-D and batched, like np.matmul) and what is built on it.

The lecture's layer Z = A W is one `matmul`; its VJP gives the two products of backprop,
delta W^T (to the layer below) and A^T delta (the weight gradient).
"""
from __future__ import annotations

from typing import Any

import numpy as np

from ..batching import batch_size, example_ndim
from ..declaration import expose, linear_jvp, primitive, public
from ..tensor import Tensor, as_tensor
from .elementwise import multiply as multiply_p
from .shape import reshape, reshape_p, transpose_p


def _matmul(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    _check_matmul(x.shape, y.shape)
    return np.matmul(x, y)


def _check_matmul(x_shape: tuple, y_shape: tuple) -> None:
    """Refuse operands whose shapes (one example's, inside vmap) matmul cannot contract."""
    if not x_shape or not y_shape:
        raise ValueError(f"matmul: operands must have at least 1 dimension, got shapes "
                         f"{x_shape} and {y_shape}; use * to multiply by a scalar")
    inner_x = x_shape[-1]
    inner_y = y_shape[0] if len(y_shape) == 1 else y_shape[-2]
    if inner_x != inner_y:
        raise ValueError(f"matmul: shapes {x_shape} and {y_shape} do not align: "
                         f"{inner_x} != {inner_y}")


def _mT(a: Any) -> Any:
    """Swap the last two axes."""
    if a.ndim == 2:
        return a.T
    axes = tuple(range(a.ndim - 2)) + (a.ndim - 1, a.ndim - 2)
    return transpose_p(a, axes=axes)


def _matmul_vjp_x(g: Any, ans: Any, x: Any, y: Any) -> Any:
    if x.ndim == 1 and y.ndim == 1:
        return g * y
    if y.ndim == 1:                       # (..., m, n) @ (n,) -> (..., m)
        return g.reshape(g.shape + (1,)) * y
    if x.ndim == 1:                       # (n,) @ (..., n, k) -> (..., k)
        return (g.reshape(g.shape[:-1] + (1,) + g.shape[-1:]) @ _mT(y)).reshape(
            g.shape[:-1] + (x.shape[0],))
    return g @ _mT(y)


def _matmul_vjp_y(g: Any, ans: Any, x: Any, y: Any) -> Any:
    if x.ndim == 1 and y.ndim == 1:
        return g * x
    if x.ndim == 1:                       # (n,) @ (..., n, k): outer product x g
        return x.reshape((x.shape[0], 1)) * g.reshape(g.shape[:-1] + (1,) + g.shape[-1:])
    if y.ndim == 1:                       # (..., m, n) @ (n,): sum over m and batch of x * g
        return _mT(x) @ g.reshape(g.shape + (1,))
    return _mT(x) @ g


def _matmul_vjp_y_vector(g, ans, x, y):
    out = _matmul_vjp_y(g, ans, x, y)
    if y.ndim == 1 and x.ndim > 1:
        out = out.reshape(out.shape[:-1])
    return out


matmul_p = primitive(_matmul, "matmul")
matmul_p.defvjp(_matmul_vjp_x, _matmul_vjp_y_vector, text="g @ W^T, X^T @ g")
matmul_p.fresh_cotangents = True
# two matrices: the forward and both rules are one np.matmul each, which can write into a given
# array by the same BLAS call (ag.compile's buffer plan)
matmul_p.into = {
    "when": lambda x, y: x.ndim == 2 and y.ndim == 2,
    "forward": lambda x, y, out: np.matmul(x, y, out=out),
    "vjps": (lambda g, ans, x, y, out: np.matmul(g, y.T, out=out),
             lambda g, ans, x, y, out: np.matmul(x.T, g, out=out)),
}
linear_jvp(matmul_p, (0, 1), jointly=False)  # bilinear: t @ y and x @ t


def _batch_matmul(args, dims):
    """matmul of a batch. One operand unbatched and at most 2-D: one big product (the examples'
    rows side by side), which is what makes per-example gradients and Jacobians fast; otherwise
    a stacked matmul, 1-D examples promoted to matrices and the padding axes removed after."""
    x, y = args
    dx, dy = dims
    _check_matmul(tuple(x.shape[1:] if dx is not None else x.shape),
                  tuple(y.shape[1:] if dy is not None else y.shape))
    kx, ky = example_ndim(x, dx), example_ndim(y, dy)
    if dy is None and ky <= 2 and kx >= 1:        # (B, ..., n) @ (n, m): rows of every example
        lead = tuple(x.shape[:-1])
        if kx > 1:
            x = reshape_p(x, shape=(int(np.prod(lead)), x.shape[-1]))
        out = matmul_p(x, y)
        return (reshape_p(out, shape=lead + tuple(y.shape[1:])) if kx > 1 else out), 0
    if dx is None and kx <= 2 and ky == 1:        # A @ y_b for each b: (B, n) @ A^T
        return matmul_p(y, x if kx == 1 else transpose_p(x, axes=(1, 0))), 0
    if dx is None and kx <= 2 and ky == 2:        # A @ Y_b: A @ [Y_1 ... Y_B] side by side
        b, n, p = y.shape
        side = reshape_p(transpose_p(y, axes=(1, 0, 2)), shape=(n, b * p))
        out = matmul_p(x, side)
        if kx == 1:
            return reshape_p(out, shape=(b, p)), 0
        return reshape_p(out, shape=(x.shape[0], b, p)), 1
    size = batch_size(args, dims)
    drop_rows = dx is not None and kx == 1
    drop_cols = dy is not None and ky == 1
    if drop_rows:
        x, kx = reshape_p(x, shape=(size, 1, x.shape[-1])), 2
    if drop_cols:
        y, ky = reshape_p(y, shape=(size, y.shape[-1], 1)), 2
    rank = max(kx, ky)
    if dx is not None and kx < rank:
        x = reshape_p(x, shape=(size,) + (1,) * (rank - kx) + tuple(x.shape[1:]))
    if dy is not None and ky < rank:
        y = reshape_p(y, shape=(size,) + (1,) * (rank - ky) + tuple(y.shape[1:]))
    if x.shape[-1] == 1:  # outer products (a per-example weight gradient x_i^T delta_i of one row):
        out = multiply_p(x, y)  # the same numbers (a sum of one product); NumPy's stacked matmul is slower
    else:
        out = matmul_p(x, y)
    if drop_rows or drop_cols:
        shape = list(out.shape)
        if drop_cols:
            del shape[-1]
        if drop_rows:
            del shape[-1 if drop_cols else -2]
        out = reshape_p(out, shape=tuple(shape))
    return out, 0


matmul_p.defbatch(_batch_matmul)
expose(matmul_p, "matmul", "x @ y for 1-D, 2-D and batched (broadcast leading axes) operands, like np.matmul.",
       method=False, operator="__matmul__")


def _matmul_domain(c: Any) -> tuple:
    kind = c.choice(["vv", "mv", "vm", "mm", "batched", "broadcast"])
    n, m, k, b = c.integer(1, 4), c.integer(1, 4), c.integer(1, 4), c.integer(1, 3)
    sx, sy = {"vv": ((n,), (n,)), "mv": ((m, n), (n,)), "vm": ((n,), (n, k)), "mm": ((m, n), (n, k)),
              "batched": ((b, m, n), (b, n, k)), "broadcast": ((b, 1, m, n), (2, n, k))}[kind]
    return (lambda x, y: x @ y), [c.array(sx), c.array(sy)]


matmul_p.domain = _matmul_domain


@public(method=True)
def dot(x: Any, y: Any) -> Tensor:
    """The dot product of vectors, or the matrix product for 1-D and 2-D operands."""
    x, y = as_tensor(x), as_tensor(y)
    if x.ndim > 2 or y.ndim > 2:
        raise ValueError(f"dot: operands of at most 2 dimensions expected, got shapes {x.shape} and "
                         f"{y.shape}; use matmul for batched products")
    if x.ndim == 0 or y.ndim == 0:
        return x * y
    return matmul_p(x, y)


@public
def outer(x: Any, y: Any) -> Tensor:
    """The outer product of two vectors (flattened first, like np.outer)."""
    x, y = as_tensor(x), as_tensor(y)
    return reshape(x, (-1, 1)) * reshape(y, (1, -1))
