"""The Tensor: a NumPy array that remembers the primitive that made it.

A Tensor is a leaf (made by the user) or the output of a primitive; outputs of
primitives applied to tensors that require gradients record their inputs, which is
the computation graph that `backward()` walks from right to left.
"""
from __future__ import annotations

from typing import Any, Optional, Sequence, Union

import numpy as np

ArrayLike = Union["Tensor", np.ndarray, float, int, Sequence]
_NO_PARAMS: dict = {}  # shared by parameterless primitives; never mutated


class Tensor:
    """An n-dimensional array that records the graph of the primitives applied to it.

    Example:
        >>> x = tensor([1.0, 2.0], requires_grad=True)
        >>> (x * x).sum().backward()
        >>> x.grad
        tensor([2., 4.])
    """

    __slots__ = ("data", "grad", "requires_grad", "name",
                 "_op", "_inputs", "_arrays", "_needs", "_params", "_retain", "_jvp", "_trace",
                 "_seq", "__weakref__")
    # a NumPy array on the left of an operator defers to the Tensor's reflected method
    __array_ufunc__ = None
    __array_priority__ = 1000

    def __init__(self, data: ArrayLike, requires_grad: bool = False,
                 dtype: Any = None, name: Optional[str] = None) -> None:
        if isinstance(data, Tensor):
            data = data.data
        array = np.asarray(data, dtype=dtype)
        if requires_grad and array.dtype.kind != "f":
            raise TypeError(
                f"tensor: requires_grad=True needs floating-point data, got dtype {array.dtype}; "
                "pass float data or dtype=np.float64 / np.float32")
        self.data = array
        self.grad: Optional[Tensor] = None
        self.requires_grad = bool(requires_grad)
        self.name = name
        self._op = None        # the Primitive that made this tensor (None for a leaf)
        self._inputs = None    # its arguments; None once the graph is released
        self._arrays = None    # the arrays inside them, as the forward saw them
        self._needs = None     # per argument: does it want a gradient?
        self._params = None    # its keyword parameters (axis, shape, ...)
        self._retain = False
        self._jvp = None       # forward-mode tangents, {trace: tangent}
        self._trace = None     # where it was made, only in anomaly mode
        self._seq = 0          # creation order of a recorded node (set by engine.apply)

    @classmethod
    def _wrap(cls, array: np.ndarray) -> "Tensor":
        """Wrap an array without copying or checking (the engine's fast path)."""
        t = cls.__new__(cls)
        t.data = array
        t.grad = None
        t.requires_grad = False
        t.name = None
        t._op = None
        t._inputs = None
        t._arrays = None
        t._needs = None
        t._params = None
        t._retain = False
        t._jvp = None
        t._trace = None
        t._seq = 0
        return t

    # ---- array facts -------------------------------------------------------------
    @property
    def shape(self) -> tuple:
        return self.data.shape

    @property
    def ndim(self) -> int:
        return self.data.ndim

    @property
    def size(self) -> int:
        return self.data.size

    @property
    def dtype(self) -> np.dtype:
        return self.data.dtype

    @property
    def is_leaf(self) -> bool:
        """True for tensors made by the user (or by an operation that recorded nothing)."""
        return self._op is None

    @property
    def op_name(self) -> Optional[str]:
        """The name of the primitive that made this tensor, None for a leaf."""
        return None if self._op is None else self._op.name

    def numpy(self) -> np.ndarray:
        """The underlying NumPy array (shared, not copied)."""
        return self.data

    def item(self) -> Any:
        """The value of a one-element tensor as a Python number."""
        if self.data.size != 1:
            raise ValueError(f"item: only a one-element tensor converts to a Python number, "
                             f"this one has shape {self.shape}")
        return self.data.item()

    def tolist(self) -> Any:
        return self.data.tolist()

    def __array__(self, dtype=None, copy=None):
        if dtype is None:
            return self.data
        return self.data.astype(dtype)

    def __len__(self) -> int:
        if self.data.ndim == 0:
            raise TypeError("len() of a 0-d tensor")
        return len(self.data)

    def __bool__(self) -> bool:
        return bool(self.data)

    def __float__(self) -> float:
        return float(self.item())

    def __int__(self) -> int:
        return int(self.item())

    __hash__ = object.__hash__

    def __repr__(self) -> str:
        body = np.array2string(self.data, separator=", ", prefix="tensor(")
        extras = []
        if self.data.dtype not in (np.float64, np.int64, np.bool_):
            extras.append(f"dtype={self.data.dtype}")
        if self._op is not None:
            extras.append(f"op={self._op.name}")
        elif self.requires_grad:
            extras.append("requires_grad=True")
        if self.name:
            extras.append(f"name={self.name!r}")
        return "tensor(" + ", ".join([body] + extras) + ")"

    # ---- gradients -------------------------------------------------------------------
    def backward(self, gradient: Optional[ArrayLike] = None, retain_graph: bool = False,
                 create_graph: bool = False) -> None:
        """Back-propagate from this tensor: accumulate d(self)/d(leaf) into every leaf's `.grad`.

        `gradient` is the cotangent to start from (required unless self has one element).
        The graph is released afterwards unless `retain_graph=True`; `create_graph=True`
        records the backward pass itself, so the gradients can be differentiated again.
        """
        _engine.backward(self, gradient, retain_graph=retain_graph, create_graph=create_graph)

    def zero_grad(self) -> None:
        """Forget the accumulated gradient (sets `.grad` to None)."""
        self.grad = None

    def retain_grad(self) -> "Tensor":
        """Keep the gradient of this non-leaf tensor in `.grad` during `backward()`."""
        if not self.requires_grad:
            raise RuntimeError("retain_grad: this tensor does not require grad, so it gets no gradient")
        self._retain = True
        return self

    def detach(self) -> "Tensor":
        """The same data, cut from the graph (shares memory)."""
        return Tensor._wrap(self.data)

    def requires_grad_(self, requires_grad: bool = True) -> "Tensor":
        """Turn gradient tracking of a leaf on or off, in place."""
        if self._op is not None:
            raise RuntimeError("requires_grad_: only leaf tensors can change requires_grad")
        if requires_grad and self.data.dtype.kind != "f":
            raise TypeError(f"requires_grad_: needs floating-point data, got dtype {self.data.dtype}")
        self.requires_grad = requires_grad
        return self

    # ---- arithmetic -------------------------------------------------------------------
    # operators go straight to the engine (self is a Tensor, so the primitive would record anyway)
    def __add__(self, other): return _apply(_P.add, (self, other), _NO_PARAMS)
    def __radd__(self, other): return _apply(_P.add, (other, self), _NO_PARAMS)
    def __sub__(self, other): return _apply(_P.subtract, (self, other), _NO_PARAMS)
    def __rsub__(self, other): return _apply(_P.subtract, (other, self), _NO_PARAMS)
    def __mul__(self, other): return _apply(_P.multiply, (self, other), _NO_PARAMS)
    def __rmul__(self, other): return _apply(_P.multiply, (other, self), _NO_PARAMS)
    def __truediv__(self, other): return _apply(_P.divide, (self, other), _NO_PARAMS)
    def __rtruediv__(self, other): return _apply(_P.divide, (other, self), _NO_PARAMS)
    def __neg__(self): return _apply(_P.negative, (self,), _NO_PARAMS)
    def __pos__(self): return self
    def __abs__(self): return _apply(_P.absolute, (self,), _NO_PARAMS)
    def __matmul__(self, other): return _apply(_P.matmul, (self, other), _NO_PARAMS)
    def __rmatmul__(self, other): return _apply(_P.matmul, (other, self), _NO_PARAMS)

    def __pow__(self, exponent):
        if isinstance(exponent, (int, float)) and not isinstance(exponent, bool):
            return _P.power_scalar(self, p=exponent)
        return _P.power(self, exponent)

    def __rpow__(self, base): return _P.power(base, self)

    # comparisons give plain boolean arrays: they carry no gradient
    def __lt__(self, other): return self.data < _data(other)
    def __le__(self, other): return self.data <= _data(other)
    def __gt__(self, other): return self.data > _data(other)
    def __ge__(self, other): return self.data >= _data(other)
    def __eq__(self, other): return self.data == _data(other)
    def __ne__(self, other): return self.data != _data(other)

    def __getitem__(self, index):
        return _P.getitem(self, index=_F.normalize_index(index, self.shape))

    def __iter__(self):
        for i in range(len(self)):
            yield self[i]

    # ---- methods that call the primitives --------------------------------------------------
    def exp(self): return _P.exp(self)
    def log(self): return _P.log(self)
    def log1p(self): return _P.log1p(self)
    def expm1(self): return _P.expm1(self)
    def sqrt(self): return _P.sqrt(self)
    def sin(self): return _P.sin(self)
    def cos(self): return _P.cos(self)
    def tanh(self): return _P.tanh(self)
    def sigmoid(self): return _P.sigmoid(self)
    def relu(self): return _P.relu(self)
    def softplus(self): return _P.softplus(self)
    def abs(self): return _P.absolute(self)
    def clip(self, lo=None, hi=None): return _F.clip(self, lo, hi)

    def sum(self, axis=None, keepdims: bool = False): return _F.sum(self, axis, keepdims)
    def mean(self, axis=None, keepdims: bool = False): return _F.mean(self, axis, keepdims)
    def max(self, axis=None, keepdims: bool = False): return _F.max(self, axis, keepdims)
    def min(self, axis=None, keepdims: bool = False): return _F.min(self, axis, keepdims)
    def var(self, axis=None, keepdims: bool = False, ddof: int = 0):
        return _F.var(self, axis, keepdims, ddof)
    def logsumexp(self, axis=None, keepdims: bool = False): return _F.logsumexp(self, axis, keepdims)
    def softmax(self, axis: int = -1): return _F.softmax(self, axis)
    def log_softmax(self, axis: int = -1): return _F.log_softmax(self, axis)

    def reshape(self, *shape): return _F.reshape(self, shape[0] if len(shape) == 1 else shape)
    def transpose(self, *axes): return _F.transpose(self, axes[0] if len(axes) == 1 else (axes or None))
    def permute(self, *axes): return _F.transpose(self, axes[0] if len(axes) == 1 else axes)
    def swapaxes(self, a: int, b: int): return _F.swapaxes(self, a, b)
    def expand_dims(self, axis): return _F.expand_dims(self, axis)
    def squeeze(self, axis=None): return _F.squeeze(self, axis)
    def broadcast_to(self, shape): return _F.broadcast_to(self, shape)
    def flatten(self): return _F.reshape(self, (-1,))
    def astype(self, dtype): return _F.astype(self, dtype)
    def dot(self, other): return _F.dot(self, other)

    @property
    def T(self) -> "Tensor":
        return _F.transpose(self, None)


def _data(x: Any) -> Any:
    """The array inside a Tensor, or x itself."""
    return x.data if isinstance(x, Tensor) else x


def tensor(data: ArrayLike, requires_grad: bool = False, dtype: Any = None,
           name: Optional[str] = None) -> Tensor:
    """Make a leaf Tensor from array-like data (a float list becomes float64).

    Example: `W = tensor(np.zeros((784, 100), np.float32), requires_grad=True, name="W_h")`.
    """
    return Tensor(data, requires_grad=requires_grad, dtype=dtype, name=name)


# bound at the end: these modules import Tensor from here
from . import engine as _engine  # noqa: E402
from .engine import apply as _apply  # noqa: E402
from . import primitives as _P  # noqa: E402
from . import functions as _F  # noqa: E402
