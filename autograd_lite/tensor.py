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

    In-place changes: `+=`, `-=`, `*=`, `/=` and `**=` write into the tensor's array (same object,
    same shape and dtype) where nothing is being recorded, as in PyTorch: under `no_grad()`
    (`with no_grad(): W -= lr * W.grad`) or when no operand requires grad. They, and the
    optimizers' steps, count up `_version`; a backward through a graph recorded before such a
    change raises instead of differentiating at the changed values. Writing into `.data` itself
    (`w.data *= 10`, `w.numpy()[0] = 1`, or through a view such as `detach()`, a reshape or a
    slice) is not counted and is outside that guarantee; assigning a new array to `.data` leaves
    recorded graphs with the old one.
    """

    __slots__ = ("data", "grad", "requires_grad", "name",
                 "_op", "_inputs", "_arrays", "_needs", "_params", "_retain", "_jvp", "_trace",
                 "_seq", "_version", "_versions", "__weakref__")
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
        self._version = 0      # in-place changes so far (engine.increment_version)
        self._versions = None  # a recorded node's inputs' versions when it was recorded

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
        t._version = 0
        t._versions = None
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

    # in place: see the class docstring (without these, `W -= x` would rebind W to a new tensor)
    def __iadd__(self, other): return _in_place(self, np.add, other, "+=")
    def __isub__(self, other): return _in_place(self, np.subtract, other, "-=")
    def __imul__(self, other): return _in_place(self, np.multiply, other, "*=")
    def __itruediv__(self, other): return _in_place(self, np.true_divide, other, "/=")
    def __ipow__(self, other): return _in_place(self, np.power, other, "**=")

    def __imatmul__(self, other):
        raise TypeError("@=: in-place matrix multiplication is not supported (it changes the shape "
                        "unless the right operand is square); write a = a @ b")

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


def _in_place(t: Tensor, ufunc: np.ufunc, other: Any, symbol: str) -> Tensor:
    """`t <symbol> other` written into t's array, where PyTorch would allow it (see Tensor)."""
    other_is_tensor = isinstance(other, Tensor)
    if _engine._grad_mode.enabled:
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
    if _engine.jvp_traces and (t._jvp or (other_is_tensor and other._jvp)):
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
    _engine.increment_version(t)
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
