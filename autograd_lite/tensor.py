"""The Tensor: a NumPy array that remembers the primitive that made it.

A Tensor is a leaf (made by the user) or the output of a primitive; outputs of
primitives applied to tensors that require gradients record their inputs, which is
the computation graph that `backward()` walks from right to left.

This module depends on nothing else in the package: the operators and the methods that apply
primitives (`x + y`, `x.sum()`, `x.backward()`) are attached in one place, `tensor_methods.py`,
once the table of primitives exists.
"""
from __future__ import annotations

import operator
from typing import Any, List, Optional, Sequence, Union

import numpy as np

ArrayLike = Union["Tensor", np.ndarray, float, int, Sequence]

# ag.compile's tracer while one runs (innermost last): a Python read of a traced value
# (`float(t)`, `t.item()`, `bool(t)`, `np.asarray(t)`) is refused by it, and a comparison (a plain
# boolean array, outside the graph) is recorded by it. Empty otherwise: one truth test per call.
tracers: List[Any] = []


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

    NumPy's functions keep the graph: `np.exp(t)`, `np.sum(t, axis=0)`, `a + t` with an array `a`
    run the primitive of the same name (`ag.exp`, ...) and return Tensors; comparisons and
    `np.isnan` return boolean arrays; a NumPy function without a counterpart raises a TypeError
    (convert explicitly, `t.numpy()`, to leave the graph).
    """

    __slots__ = ("data", "_grad", "requires_grad", "name",
                 "_op", "_inputs", "_arrays", "_needs", "_params", "_retain", "_jvp", "_trace",
                 "_seq", "_version", "_versions", "__weakref__")
    # replaced by tensor_methods.attach(), with __array_function__, to route NumPy's functions to
    # the primitives; until then an array on the left of an operator defers to the Tensor's
    # reflected method
    __array_ufunc__ = None
    __array_priority__ = 1000

    def __init__(self, data: ArrayLike, requires_grad: bool = False,
                 dtype: Any = None, name: Optional[str] = None) -> None:
        if isinstance(data, Tensor):
            # (a batched value inside vmap keeps its batch, and np.asarray below refuses it)
            data = data.data if type(data) is Tensor else data._constant()
        array = np.asarray(data, dtype=dtype)
        if requires_grad and array.dtype.kind != "f":
            raise TypeError(
                f"tensor: requires_grad=True needs floating-point data, got dtype {array.dtype}; "
                "pass float data or dtype=np.float64 / np.float32")
        self.data = array
        self._grad: Optional[Tensor] = None
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
        t._grad = None
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
        if tracers:
            tracers[-1].read(self, "t.numpy()")
        return self.data

    def item(self) -> Any:
        """The value of a one-element tensor as a Python number."""
        if self.data.size != 1:
            raise ValueError(f"item: only a one-element tensor converts to a Python number, "
                             f"this one has shape {self.shape}")
        if tracers:
            tracers[-1].read(self, "t.item()")
        return self.data.item()

    def tolist(self) -> Any:
        if tracers:
            tracers[-1].read(self, "t.tolist()")
        return self.data.tolist()

    def __array__(self, dtype=None, copy=None):
        if tracers:
            tracers[-1].read(self, "np.asarray(t)")
        if dtype is None:
            return self.data
        return self.data.astype(dtype)

    def __len__(self) -> int:
        if self.data.ndim == 0:
            raise TypeError("len() of a 0-d tensor")
        return len(self.data)

    def __bool__(self) -> bool:
        if tracers:
            tracers[-1].read(self, "bool(t)")
        return bool(self.data)

    def __float__(self) -> float:
        if tracers:
            tracers[-1].read(self, "float(t)")
        return float(self.data.item()) if self.data.size == 1 else float(self.item())

    def __int__(self) -> int:
        if tracers:
            tracers[-1].read(self, "int(t)")
        return int(self.data.item()) if self.data.size == 1 else int(self.item())

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
    @property
    def grad(self) -> Optional["Tensor"]:
        """The accumulated gradient (a Tensor of this shape), None before any backward()."""
        return self._grad

    @grad.setter
    def grad(self, value: Optional["Tensor"]) -> None:
        if tracers:   # `W.grad = None` inside ag.compile is replayed, not lost
            tracers[-1].set_grad(self, value)
        else:
            self._grad = value

    def zero_grad(self) -> None:
        """Forget the accumulated gradient (sets `.grad` to None)."""
        self.grad = None

    def retain_grad(self) -> "Tensor":
        """Keep the gradient of this non-leaf tensor in `.grad` during `backward()`."""
        if not self.requires_grad:
            raise RuntimeError("retain_grad: this tensor does not require grad, so it gets no gradient")
        self._retain = True
        return self

    def _constant(self) -> Any:
        """The values without graph, as `_data` gives them to rules (a batched value overrides it)."""
        return self.data

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

    # comparisons give plain boolean arrays: they carry no gradient
    def __lt__(self, other): return _compare(operator.lt, self, other)
    def __le__(self, other): return _compare(operator.le, self, other)
    def __gt__(self, other): return _compare(operator.gt, self, other)
    def __ge__(self, other): return _compare(operator.ge, self, other)
    def __eq__(self, other): return _compare(operator.eq, self, other)
    def __ne__(self, other): return _compare(operator.ne, self, other)

    def __iter__(self):
        for i in range(len(self)):
            yield self[i]


def _compare(relation: Any, x: "Tensor", other: Any) -> Any:
    """`relation(x, other)` on the arrays (recorded by a running ag.compile trace)."""
    if tracers:
        return tracers[-1].predicate(relation, (x, other))
    return relation(x.data, _data(other))


def _data(x: Any) -> Any:
    """The array inside a Tensor, or x itself (for a batched value inside vmap: its values,
    still batched, so that masks computed from them stay one per example)."""
    if isinstance(x, Tensor):
        return x.data if type(x) is Tensor else x._constant()
    return x


def as_tensor(x: Any) -> Tensor:
    """x itself if it is a Tensor, else a constant (no-gradient) Tensor around it."""
    return x if isinstance(x, Tensor) else Tensor(x)


def tensor(data: ArrayLike, requires_grad: bool = False, dtype: Any = None,
           name: Optional[str] = None) -> Tensor:
    """Make a leaf Tensor from array-like data (a float list becomes float64).

    Example: `W = tensor(np.zeros((784, 100), np.float32), requires_grad=True, name="W_h")`.
    """
    return Tensor(data, requires_grad=requires_grad, dtype=dtype, name=name)
