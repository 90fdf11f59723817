"""The Tensor's operators and methods, attached once, after the table of primitives is built.

Every route from a Tensor operation to its primitive is the same: the declaration's public
function (or, for an operator, the primitive itself) hands the Tensors to `engine.apply`.
The operators and methods are read from the declarations (`declaration.OPERATORS`,
`declaration.METHODS`); the few written here differ from their function only in signature
(`x.reshape(2, 3)`), or are the in-place operators, which write into the tensor's array.
NumPy's functions reach the same public functions by name (`np.exp(t)` is `ag.exp(t)`, see
`__array_ufunc__` and `__array_function__` below), so the graph is kept or an error says why not.
"""
from __future__ import annotations

import inspect
import re
from typing import Any, Callable, Dict, Optional

import numpy as np

from . import creation  # noqa: F401  (registers ag.zeros, ag.randn, ...: before functions reads PUBLIC)
from . import engine
from . import functions as F
from . import primitives as P
from .arguments import normalize_index
from .declaration import _NO_PARAMS, METHODS, OPERATORS, PUBLIC
from .tensor import ArrayLike, Tensor, tracers


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
        return engine.apply(P.power_scalar, (self,), {"p": exponent})
    return engine.apply(P.power, (self, exponent), _NO_PARAMS)


def __rpow__(self: Tensor, base: Any) -> Tensor:
    return engine.apply(P.power, (base, self), _NO_PARAMS)


def __getitem__(self: Tensor, index: Any) -> Tensor:
    return engine.apply(P.getitem, (self,), {"index": normalize_index(index, self.shape)})


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


# ---------------------------------------------------------------- NumPy's functions on Tensors
# NEP 13 (ufuncs: np.exp(t), and `a + t` with an array a) and NEP 18 (np.sum(t), np.concatenate):
# a NumPy function runs the public function of the same name, read from PUBLIC at call time, so
# every declared op is reachable. Boolean-valued ones (np.isnan, np.greater) and a few that read
# values only (np.shape, np.allclose) give plain arrays; anything else raises rather than
# compute on the arrays and quietly drop the graph.

def __array_ufunc__(self: Tensor, ufunc: np.ufunc, method: str, *inputs: Any, **kwargs: Any) -> Any:
    if method == "__call__" and not kwargs:  # the common case, `a + t`: keep it short
        fn = _UFUNC_ROUTES.get(ufunc) or _ufunc_target(ufunc)
        if fn is not None:
            return fn(*inputs)
    if ufunc in _PREDICATES:
        if tracers and method == "__call__" and not kwargs:  # np.isnan(t) inside ag.compile
            return tracers[-1].predicate(ufunc, inputs)
        return getattr(ufunc, method)(*_arrays(inputs), **_arrays(kwargs))
    name = f"np.{ufunc.__name__}" + ("" if method == "__call__" else f".{method}")
    if "out" in kwargs:
        raise TypeError(f"{name}: out= cannot hold a Tensor's result, since an array would drop the "
                        "graph (an in-place operator on an array, `a += t`, is such a call); bind "
                        "the result instead: `a = a + t`")
    if method == "__call__":
        if _ufunc_target(ufunc) is None:
            raise TypeError(_no_counterpart(name))
        raise TypeError(f"{name}: {'=, '.join(kwargs)}= not supported with Tensors; call it "
                        "without (and convert the result with .astype where a dtype was meant)")
    if method == "outer":
        return _outer(name, ufunc, inputs, kwargs)
    handler = _UFUNC_METHODS.get(method, {}).get(ufunc.__name__)
    if handler is None:
        raise TypeError(_no_counterpart(name))
    return handler(name, inputs, kwargs)


def __array_function__(self: Tensor, func: Callable, types: tuple, args: tuple, kwargs: dict) -> Any:
    if not all(issubclass(t, (Tensor, np.ndarray)) for t in types):
        return NotImplemented
    name = _qualified_name(func)
    target = _function_target(func)
    if target is not None:
        positional, keywords = _translate(name, func, target, args, kwargs)
        return target(*positional, **keywords)
    if func in _READS_VALUES or (func is np.where and len(args) == 1 and not kwargs):
        return func(*_arrays(args), **_arrays(kwargs))
    raise TypeError(_no_counterpart(name))


def _ufunc_target(ufunc: np.ufunc) -> Optional[Callable]:
    """The public function a NumPy ufunc runs on Tensors (remembered in _UFUNC_ROUTES), or None."""
    name = ufunc.__name__
    if getattr(np, name, None) is not ufunc:  # another library's ufunc (scipy.special): not ours
        return None
    fn = _UFUNC_HERE.get(name) or PUBLIC.get(_UFUNC_ALIASES.get(name, name))
    if fn is not None:  # a public name is never rebound, so a route found stays right
        _UFUNC_ROUTES[ufunc] = fn
    return fn


def _function_target(func: Callable) -> Optional[Callable]:
    name = getattr(func, "__name__", "")
    if getattr(np, name, None) is func:
        return PUBLIC.get(_FUNCTION_ALIASES.get(name, name))
    alias = _SUBMODULE_ALIASES.get(func)
    return None if alias is None else PUBLIC.get(alias)


def _power(x: Any, y: Any) -> Tensor:
    """np.power(x, y): a Python-number exponent takes x ** p's cheaper primitive, as `**` does."""
    return __pow__(x, y) if isinstance(x, Tensor) else F.power(x, y)


_UFUNC_ROUTES: Dict[np.ufunc, Callable] = {}
_UFUNC_HERE: Dict[str, Callable] = {"power": _power, "positive": F.as_tensor}
_UFUNC_ALIASES = {"true_divide": "divide", "fabs": "absolute", "rint": "round",
                  "degrees": "rad2deg", "radians": "deg2rad"}
_FUNCTION_ALIASES = {"amax": "max", "amin": "min", "around": "round", "round_": "round",
                     "concat": "concatenate", "permute_dims": "transpose"}
# functions outside NumPy's namespace (or unlike their namesake there) that mean what ag's do
_SUBMODULE_ALIASES = {getattr(np.linalg, name): name for name in
                      ("norm", "matmul", "tensordot", "outer", "cross") if hasattr(np.linalg, name)}
_PREDICATES = frozenset(  # boolean-valued ufuncs: comparisons, isnan, ...; no gradient to keep
    u for u in vars(np).values()
    if isinstance(u, np.ufunc) and {t.split("->")[1] for t in u.types} - {"O"} == {"?"})
_READS_VALUES = frozenset(getattr(np, name) for name in (  # results that carry no gradient
    "shape", "ndim", "size", "result_type", "iscomplexobj", "isrealobj", "iscomplex", "isreal",
    "isposinf", "isneginf", "allclose", "isclose", "array_equal", "array_equiv", "any", "all",
    "count_nonzero", "nonzero", "flatnonzero", "argwhere", "argsort", "argmax", "argmin",
    "searchsorted", "digitize", "may_share_memory", "shares_memory", "array_repr", "array_str",
    "array2string", "save", "savez", "savez_compressed", "savetxt") if hasattr(np, name))
# suggestions for NumPy functions without a counterpart of the same name; one is offered only
# when every ag.NAME it mentions exists
_ALTERNATIVES = {
    "np.add.at": "x + ag.scatter_add(values, index, x.shape) is its out-of-place form",
    "np.copy": "t * 1 makes a recorded copy; t.detach() a leaf sharing t's array",
    "np.ptp": "ag.max(x, axis) - ag.min(x, axis)",
    "np.average": "ag.mean(x, axis), or ag.sum(x * w, axis) / ag.sum(w, axis) with weights w",
    "np.linalg.diagonal": "ag.diagonal(x, offset, axis1=-2, axis2=-1)",
    "np.linalg.trace": "ag.trace(x, offset, axis1=-2, axis2=-1)",
    "np.linalg.vecdot": "ag.sum(x * y, axis=-1)",
    "np.linalg.matrix_transpose": "ag.swapaxes(x, -1, -2)",
    "np.float_power": "ag.power(x.astype(np.float64), y)",
}


def _no_counterpart(name: str) -> str:
    alternative = _ALTERNATIVES.get(name)
    if alternative and all(n in PUBLIC for n in re.findall(r"ag\.(\w+)", alternative)):
        return f"{name} has no autograd-lite counterpart of that name: {alternative}"
    return (f"{name} has no autograd-lite counterpart: it would drop the graph; convert explicitly "
            "with t.numpy() if you mean to")


def _qualified_name(func: Callable) -> str:
    name = func.__name__
    for prefix, namespace in (("np.", np), ("np.linalg.", np.linalg), ("np.fft.", np.fft)):
        if getattr(namespace, name, None) is func:
            return prefix + name
    return f"{func.__module__}.{name}"


def _arrays(value: Any) -> Any:
    """value with every Tensor inside (lists, tuples, dicts) replaced by its array."""
    if isinstance(value, Tensor):
        return value.data
    if isinstance(value, (list, tuple)):
        return type(value)(_arrays(v) for v in value)
    if isinstance(value, dict):
        return {k: _arrays(v) for k, v in value.items()}
    return value


# ---- NumPy's arguments in ag's signature
_POSITIONAL = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)


class _Plan:
    """How one NumPy function's arguments reach one ag function, worked out once per pair: the
    name each NumPy parameter takes in ag's signature (the same name; or, for the array argument
    and positional ones named differently, ag's parameter at the same position: a -> x,
    a_min -> lo), and which leading positions and keywords pass through unchanged."""

    def __init__(self, theirs: inspect.Signature, ours: inspect.Signature) -> None:
        self.theirs, self.ours = theirs, ours
        params = list(theirs.parameters.values())
        our_positional = [p.name for p in ours.parameters.values() if p.kind in _POSITIONAL]
        self.names = {p.name: _our_name(i, p, params, ours.parameters, our_positional)
                      for i, p in enumerate(params)}
        self.direct_keywords = frozenset(n for n, ours_name in self.names.items()
                                         if n == ours_name and n in ours.parameters)
        self.direct_positions = 0
        for i, p in enumerate(params):
            if p.kind not in _POSITIONAL or i >= len(our_positional) or self.names[p.name] != our_positional[i]:
                break
            self.direct_positions += 1


_PLANS: Dict[tuple, Optional[_Plan]] = {}


def _plan(func: Callable, target: Callable) -> Optional[_Plan]:
    key = (func, target)
    if key not in _PLANS:
        try:
            _PLANS[key] = _Plan(inspect.signature(func), inspect.signature(target))
        except (TypeError, ValueError):  # a C function without a signature (NumPy < 2)
            _PLANS[key] = None
    return _PLANS[key]


def _translate(name: str, func: Callable, target: Callable, args: tuple, kwargs: dict) -> tuple:
    """NumPy's arguments as `target`'s (see `_Plan`); NumPy's defaults dropped; out= and any
    argument target has no place for refused."""
    if kwargs.get("out") is not None:
        raise TypeError(f"{name}: out= cannot hold a Tensor's result, since an array would drop "
                        "the graph; use the Tensor it returns")
    plan = _plan(func, target)
    if plan is None:
        return args, {k: v for k, v in kwargs.items() if k != "out"}
    if len(args) <= plan.direct_positions and plan.direct_keywords.issuperset(kwargs):
        return args, kwargs  # np.sum(t, axis=0): nothing to rename
    try:
        bound = plan.theirs.bind(*args, **kwargs).arguments
    except TypeError as error:
        raise TypeError(f"{name}: {error}") from None
    positional: list = []
    keywords: dict = {}
    for param in plan.theirs.parameters.values():
        if param.name not in bound:
            continue
        value = bound[param.name]
        if param.kind is inspect.Parameter.VAR_POSITIONAL:  # np.einsum(*operands)
            positional.extend(value)
            continue
        if param.kind is inspect.Parameter.VAR_KEYWORD:  # np.pad(..., constant_values=0)
            pairs = [(key, key, v) for key, v in value.items()]
        else:
            pairs = [(param.name, plan.names[param.name], value)]
        for their_name, our_name, value in pairs:
            if our_name in plan.ours.parameters:
                keywords[our_name] = value
            elif not _is_default(value, param.default):
                raise TypeError(f"{name}: the argument {their_name}={value!r:.40} has no counterpart "
                                f"in ag.{target.__name__}({', '.join(plan.ours.parameters)})")
    return positional, keywords


def _our_name(index: int, param: inspect.Parameter, theirs: list, ours: Any, our_positional: list) -> str:
    """The name in ours that receives NumPy's `param` (its own name when none does). A positional
    parameter named differently goes to ours at the same position only when that one is required
    or defaults to None: a named option such as requires_grad=False is never filled by position."""
    if param.kind in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD):
        return param.name
    if index == 0 and our_positional:  # the array (or arrays) operated on
        return our_positional[0]
    if param.name in ours:
        return param.name
    if param.kind in _POSITIONAL and index < len(our_positional):
        candidate = ours[our_positional[index]]
        # theirs[0] went to ours[0]: its name is free (np.swapaxes(a, axis1, axis2) -> (x, a, b))
        if all(candidate.name != p.name for p in theirs[1:]) and candidate.default in (None, candidate.empty):
            return candidate.name
    return param.name


def _is_default(value: Any, default: Any) -> bool:
    if value is default:
        return True
    simple = (bool, int, float, str, type(None))
    return type(value) is type(default) and isinstance(value, simple) and value == default


# ---- ufunc methods other than __call__: the reductions and scans ag has as functions, and outer
def _along_axis(target_name: str, options: tuple) -> Callable:
    """np.add.reduce -> ag.sum and the like: NumPy's axis (default 0) and the given `options`."""
    def method(name: str, inputs: tuple, kwargs: dict) -> Tensor:
        target = PUBLIC.get(target_name)
        if target is None:
            raise TypeError(_no_counterpart(name))
        unsupported = [k for k, v in kwargs.items()
                       if k not in ("axis",) + options and not (k == "dtype" and v is None)]
        if unsupported:
            raise TypeError(f"{name}: {', '.join(unsupported)}= not supported with Tensors; use "
                            f"ag.{target_name}(x, axis{''.join(', ' + o for o in options)})")
        given = {k: kwargs[k] for k in options if k in kwargs}
        return target(inputs[0], axis=kwargs.get("axis", 0), **given)
    return method


_UFUNC_METHODS = {
    "reduce": {"add": _along_axis("sum", ("keepdims",)), "multiply": _along_axis("prod", ("keepdims",)),
               "maximum": _along_axis("max", ("keepdims",)), "minimum": _along_axis("min", ("keepdims",)),
               "logaddexp": _along_axis("logsumexp", ("keepdims",))},
    "accumulate": {"add": _along_axis("cumsum", ()), "multiply": _along_axis("cumprod", ())},
}


def _outer(name: str, ufunc: np.ufunc, inputs: tuple, kwargs: dict) -> Tensor:
    """ufunc.outer(x, y): the ufunc of x, with y.ndim new trailing axes, and y."""
    x, y = inputs
    fn = _ufunc_target(ufunc)
    if fn is None or kwargs:
        raise TypeError(_no_counterpart(name))
    return fn(F.reshape(x, np.shape(_arrays(x)) + (1,) * np.ndim(_arrays(y))), y)


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
    Tensor.__array_ufunc__ = __array_ufunc__
    Tensor.__array_function__ = __array_function__


@engine.replayed   # ag.compile replays the change instead of freezing its result
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
                         f"another array); change a copy instead (`t = t {symbol[:-1]} x`)")
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
