"""The Tensor's operators and methods, attached once, after the table of primitives is built.

Every route from a Tensor operation to its primitive is the same: the declaration's public
function (or, for an operator, the primitive itself) hands the Tensors to `engine.apply`.
The operators and methods are read from the declarations (`declaration.OPERATORS`,
`declaration.METHODS`); the few written here differ from their function only in signature
(`x.reshape(2, 3)`), or are the in-place operators, which write into the tensor's array.
"""
from __future__ import annotations

from typing import Any, Optional

import numpy as np

from . import creation  # noqa: F401  (registers ag.zeros, ag.randn, ...: before functions reads PUBLIC)
from . import engine
from . import functions as F
from . import primitives as P
from .arguments import normalize_index
from .declaration import METHODS, OPERATORS
from .tensor import ArrayLike, Tensor

_NO_PARAMS: dict = {}  # shared by parameterless primitives; never mutated


def backward(self: Tensor, gradient: Optional[ArrayLike] = None, retain_graph: bool = False,
             create_graph: bool = False) -> None:
    """Back-propagate from this tensor: accumulate d(self)/d(leaf) into every leaf's `.grad`.

    `gradient` is the cotangent to start from (required unless self has one element).
    The graph is released afterwards unless `retain_graph=True`; `create_graph=True`
    records the backward pass itself, so the gradients can be differentiated again.
    """
    engine.backward(self, gradient, retain_graph=retain_graph, create_graph=create_graph)


def _operator(prim: Any, reflected: bool) -> Any:
    apply = engine.apply
    if len(prim.vjps) == 1:
        def op(self: Tensor) -> Tensor:
            return apply(prim, (self,), _NO_PARAMS)
    elif reflected:
        def op(self: Tensor, other: Any) -> Tensor:
            return apply(prim, (other, self), _NO_PARAMS)
    else:
        def op(self: Tensor, other: Any) -> Tensor:
            return apply(prim, (self, other), _NO_PARAMS)
    return op


def __pow__(self: Tensor, exponent: Any) -> Tensor:
    if isinstance(exponent, (int, float)) and not isinstance(exponent, bool):
        return P.power_scalar(self, p=exponent)
    return P.power(self, exponent)


def __rpow__(self: Tensor, base: Any) -> Tensor:
    return P.power(base, self)


def __getitem__(self: Tensor, index: Any) -> Tensor:
    return P.getitem(self, index=normalize_index(index, self.shape))


def __imatmul__(self: Tensor, other: Any) -> Tensor:
    raise TypeError("@=: in-place matrix multiplication is not supported (it changes the shape "
                    "unless the right operand is square); write a = a @ b")


def _in_place_operator(ufunc: np.ufunc, symbol: str) -> Any:
    def op(self: Tensor, other: Any) -> Tensor:
        return _in_place(self, ufunc, other, symbol)
    return op


_SIGNATURES = {
    # the methods whose signature differs from their function's
    "reshape": lambda self, *shape: F.reshape(self, shape[0] if len(shape) == 1 else shape),
    "transpose": lambda self, *axes: F.transpose(self, axes[0] if len(axes) == 1 else (axes or None)),
    "permute": lambda self, *axes: F.transpose(self, axes[0] if len(axes) == 1 else axes),
    "swapaxes": lambda self, a, b: F.swapaxes(self, a, b),
    "expand_dims": lambda self, axis: F.expand_dims(self, axis),
    "squeeze": lambda self, axis=None: F.squeeze(self, axis),
    "flatten": lambda self: F.reshape(self, (-1,)),
}


def attach() -> None:
    """Install the operators and methods on Tensor (idempotent)."""
    Tensor.backward = backward
    for dunder, (prim, reflected) in OPERATORS.items():
        setattr(Tensor, dunder, _operator(prim, reflected))
    Tensor.__pos__ = lambda self: self
    Tensor.__pow__ = __pow__
    Tensor.__rpow__ = __rpow__
    Tensor.__getitem__ = __getitem__
    # in place: see the Tensor docstring (without these, `W -= x` would rebind W to a new tensor)
    for dunder, ufunc, symbol in (("__iadd__", np.add, "+="), ("__isub__", np.subtract, "-="),
                                  ("__imul__", np.multiply, "*="), ("__itruediv__", np.true_divide, "/="),
                                  ("__ipow__", np.power, "**=")):
        setattr(Tensor, dunder, _in_place_operator(ufunc, symbol))
    Tensor.__imatmul__ = __imatmul__
    for name, fn in {**METHODS, **_SIGNATURES}.items():
        setattr(Tensor, name, fn)
    Tensor.T = property(lambda self: F.transpose(self, None), doc="The axes reversed (a transpose).")


def _in_place(t: Tensor, ufunc: np.ufunc, other: Any, symbol: str) -> Tensor:
    """`t <symbol> other` written into t's array, where PyTorch would allow it (see Tensor)."""
    other_is_tensor = isinstance(other, Tensor)
    if engine._grad_mode.enabled:
        if t.requires_grad and t._op is None:
            raise RuntimeError(
                f"{symbol}: a leaf Tensor that requires grad{_called(t)} is being used in an in-place "
                "operation; wrap the update in `with ag.no_grad():` (e.g. "
                f"`with ag.no_grad(): W {symbol} ...`)")
        if t.requires_grad:
            raise RuntimeError(
                f"{symbol}: the tensor{_called(t)} is the output of '{t._op.name}' in a graph being "
                "recorded, and in-place operations are not recorded; write it out of place "
                f"(`y = y {symbol[:-1]} x`), or wrap it in `with ag.no_grad():` if the change must "
                "not be differentiated")
        if other_is_tensor and other.requires_grad:
            raise RuntimeError(
                f"{symbol}: the right-hand side requires grad, so the result would have to be "
                "recorded, and in-place operations are not recorded; write it out of place "
                f"(`y = y {symbol[:-1]} x`), or wrap it in `with ag.no_grad():`")
    if engine.jvp_traces and (t._jvp or (other_is_tensor and other._jvp)):
        raise RuntimeError(f"{symbol}: in-place operations cannot carry forward-mode tangents; "
                           f"write it out of place (`y = y {symbol[:-1]} x`)")
    value = other.data if other_is_tensor else other
    array = t.data
    shape = np.shape(value)
    if shape != array.shape and shape != ():
        try:
            fits = np.broadcast_shapes(array.shape, shape) == array.shape
        except ValueError:
            fits = False
        if not fits:
            raise ValueError(f"{symbol}: the right-hand side has shape {shape}, which does not "
                             f"broadcast to the shape {array.shape} of the tensor it would be "
                             "written into; an in-place operation cannot change the shape")
    if not array.flags.writeable:
        raise ValueError(f"{symbol}: the tensor's array is read-only (e.g. a broadcast view of "
                         "another array); change a copy instead (`t = t {symbol[:-1]} x`)")
    try:
        ufunc(array, value, out=array, casting="same_kind")
    except TypeError:
        raise _dtype_error(symbol, ufunc, array, value) from None
    engine.increment_version(t)
    return t


def _called(t: Tensor) -> str:
    return f" ('{t.name}', shape {t.shape})" if t.name else f" (shape {t.shape})"


def _dtype_error(symbol: str, ufunc: np.ufunc, array: np.ndarray, value: Any) -> TypeError:
    """Why `ufunc(array, value, out=array)` failed: a result NumPy's same-kind rule will not store
    in the array's dtype (int += float), or operands it cannot combine at all."""
    sample = np.asarray(value).reshape(-1)[:1] if isinstance(value, (np.ndarray, list, tuple)) else value
    try:
        result = ufunc(array.reshape(-1)[:1], sample).dtype
    except TypeError:
        return TypeError(f"{symbol}: cannot combine this {array.dtype} tensor with "
                         f"{type(value).__name__} {value!r:.60}")
    return TypeError(f"{symbol}: the result has dtype {result}, which cannot be written into this "
                     f"{array.dtype} tensor without changing the kind of its numbers (NumPy's "
                     f"same-kind rule); convert first: t = t.astype(np.{result})")

attach()
