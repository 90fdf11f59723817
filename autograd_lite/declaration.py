"""What a primitive is: a forward on arrays, derivative rules, a test domain, public names.

A primitive is declared once, as data, in one of the table's files (`autograd_lite/primitives/`),
and everything else is generated from that declaration: the public function (`ag.sin`), the Tensor
method (`x.sin()`) or operator (`x + y`), forward mode (the JVP rules), reverse mode (the VJP
rules) and the table-driven tests (the domain). For an elementwise op one local derivative, the
*slope* d out / d in, gives both rules: VJP = g * slope, JVP = t * slope (PyTorch's
`auto_element_wise`, HIPS autograd's 'same'). An op that is linear in an input gets its JVP from
its own forward applied to the tangent.

A rule sees the cotangent `g` (reverse mode) or the tangent `t` (forward mode), the primitive's
output `ans`, its inputs and its keyword parameters:

    vjp rule for input i:  (g, ans, *inputs, **params) -> cotangent of input i
    jvp rule for input i:  (t, ans, *inputs, **params) -> that input's share of the output tangent

Rules use only operations that NumPy arrays and Tensors share (`*`, `.sum(axis=...)`, `.T`) or
primitives, which run plain NumPy on arrays and record a graph on Tensors. So one rule serves a
fast first-order backward (arrays) and grad-of-grad / forward-over-reverse (Tensors).
Broadcasting is undone by the engine's `unbroadcast`, never in a rule.

A third rule says how the primitive acts on a batch (`vmap`): some inputs carry an extra axis,
one value per example, and the rule computes all examples' outputs at once:

    batch rule:  (args, dims, **params) -> (out, out_dim)

`args` holds the whole batch of each batched input (`dims[i] == 0`: the batch axis is first) and
the unbatched inputs unchanged (`dims[i] is None`); `out` is the batch of outputs, its batch axis
at `out_dim` (0 when it is first). The rule computes with primitives (`prim(x, axis=...)`,
`PRIMITIVES["reshape"](x, shape=...)`) because `args` may be Tensors being recorded or the batch
of an enclosing vmap. Axes of one example become axes + 1 of the batch; an unbatched input of
higher rank than a batched one needs length-1 axes after the batch axis (`broadcast_batch`). How
to write one for your primitive (helpers in `autograd_lite/batching.py`):

    >>> from autograd_lite.batching import elementwise_batch, reduction_batch
    >>> cube.defbatch(elementwise_batch(cube))        # elementwise: broadcasting does it
    >>> mysum.defbatch(reduction_batch(mysum))        # params["axis"] shifted past the batch axis
    >>> rowdot.defbatch(lambda args, dims, **p: (rowdot(*[with_batch(a, d, batch_size(args, dims))
    ...                                                   for a, d in zip(args, dims)]), 0))

`elementwise(...)` declares the first kind for you. A primitive without a batching rule still
works under vmap: it runs once per example (a warning names it once); `ag.testing.check_primitive`
checks a declared rule against that loop.

The built-in rules are trusted: the table-driven tests check each one against finite differences.
Rules declared later (a user's own primitives) are wrapped so that a rule that returns None, a
complex array or a shape the engine cannot sum back is reported where it happens, naming the
primitive, the argument and both shapes.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any, Callable, Dict, Optional, Sequence, Tuple

import numpy as np

from . import engine
from .batching import elementwise_batch
from .tensor import Tensor, as_tensor

PRIMITIVES: Dict[str, "Primitive"] = {}
_check_rules = False  # set once the built-in table is loaded: later rules (users') are checked


class Primitive:
    """An operation with a forward on arrays and derivative rules (one per input).

    Calling it on Tensors records it in the graph; calling it on arrays just runs the forward.
    Users add their own with `primitive(...)`, `.defvjp(...)` and `.defjvp(...)`.
    """

    __slots__ = ("name", "forward", "vjps", "jvps", "vjp_joint", "vjp_into", "variadic",
                 "rule_text", "fresh_cotangents", "domain", "check", "batch", "scalar", "into",
                 "__dict__")

    def __init__(self, name: str, forward: Callable, variadic: bool = False,
                 register: bool = True) -> None:
        self.name = name
        self.forward = forward
        self.vjps: tuple = ()
        self.jvps: tuple = ()
        self.vjp_joint: Optional[Callable] = None
        self.vjp_into: Optional[Callable] = None
        self.batch: Optional[Callable] = None  # the batching rule (vmap), see the module's docstring
        # True when every cotangent its VJP rules return (on arrays) is a new array, distinct
        # for each input: the engine may then accumulate into it in place
        self.fresh_cotangents = False
        self.variadic = variadic
        self.rule_text: Optional[str] = None  # the local rule in words, for explain()
        # the inputs on which the generated tests check its rules (see `Values` and `domain`)
        self.domain: Any = None
        # options of those tests: eps, rtol, atol where float32 inside needs wider; keeps_float32
        self.check: Dict[str, Any] = {}
        # one element's forward / VJP rules / reduction as Python expressions, where declared
        # ({"forward": "x * y", "vjps": ("g * y", "g * x")}, {"reduce": "+"}, an in-place rule's
        # {"into": "t + g * lam * w"}, numbers from the parameters {"constants": {"lam": "lam"}}):
        # ag.compile's fusion
        self.scalar: Optional[Dict[str, Any]] = None
        # where the forward / a VJP rule can write its result into a given array by the same
        # arithmetic (matmul: the same BLAS call with out=): {"when": test(*inputs) on arrays,
        # "forward": f(*inputs, out=), "vjps": (rule(g, ans, *inputs, out=) or None, ...)};
        # ag.compile's buffer plan writes such results into preallocated buffers
        self.into: Optional[Dict[str, Any]] = None
        if register:
            if name in PRIMITIVES:
                raise ValueError(f"primitive: a primitive named {name!r} is already in the table")
            PRIMITIVES[name] = self

    def defvjp(self, *rules: Optional[Callable], text: Optional[str] = None) -> "Primitive":
        """Set the VJP rule of each input, in order (None for an input with no gradient).

        A rule returns the input's cotangent: an array (a Tensor under create_graph=True) of
        the input's shape, or of a shape broadcasting relates to it (the output's shape, summed
        back over the broadcast axes; or fewer elements, stretched).
        """
        if _check_rules:
            rules = tuple(None if rule is None else _checked_vjp(self, i, rule)
                          for i, rule in enumerate(rules))
        self.vjps = rules
        if text is not None:
            self.rule_text = text
        return self

    def defvjp_joint(self, rule: Callable) -> "Primitive":
        """An optional faster first-order backward for all inputs at once:
        `rule(g, ans, *inputs, wanted=(bool per input), **params)` on arrays returns one
        cotangent per input (None where not wanted). The per-input rules from `defvjp` stay
        the definition: they run under create_graph=True and in forward-over-reverse, and
        tests check the joint rule against them."""
        self.vjp_joint = rule
        return self

    def defvjp_into(self, rule: Callable) -> "Primitive":
        """An optional in-place form of the VJP rules, for cotangents that end in a leaf:
        `rule(total, g, ans, *inputs, argnum=i, **params)` adds input i's cotangent into the
        array `total` (the leaf's shape and dtype, owned by the sweep) instead of returning a
        new array. A plain backward then adds, e.g., the L2 penalty's lam * W straight into
        x^T delta without a temporary the size of W. The `defvjp` rules stay the definition."""
        self.vjp_into = rule
        return self

    def defjvp(self, *rules: Optional[Callable]) -> "Primitive":
        """Set the JVP rule of each input, in order (None for an input with no tangent).

        A rule returns that input's share of the output's tangent: an array or Tensor of the
        output's shape (or of one that broadcasts to it).
        """
        if _check_rules:
            rules = tuple(None if rule is None else _checked_jvp(self, i, rule)
                          for i, rule in enumerate(rules))
        self.jvps = rules
        return self

    def defbatch(self, rule: Callable) -> "Primitive":
        """Set the batching rule used by `vmap`: `rule(args, dims, **params) -> (out, out_dim)`,
        where `dims[i]` is 0 for an input whose first axis runs over the examples and None for
        an unbatched one (see this module's docstring for how to write one)."""
        self.batch = rule
        return self

    def __call__(self, *args: Any, **params: Any) -> Any:
        for a in args:
            if isinstance(a, Tensor):
                return engine.apply(self, args, params)
        out = self.forward(*args, **params)
        return out if type(out) is np.ndarray else np.asarray(out)

    def __repr__(self) -> str:
        return f"<primitive {self.name}>"


def check_rules_declared_from_now_on() -> None:
    """Called once the built-in table is loaded: the rules of primitives declared after it (a
    user's own) are wrapped in checks of what they return."""
    global _check_rules
    _check_rules = True


def primitive(forward: Callable, name: Optional[str] = None, variadic: bool = False) -> Primitive:
    """Declare a new primitive from a forward function on NumPy arrays.

    Example (a user's own op, usable in both modes and under grad-of-grad):
        >>> cube = primitive(lambda x: x ** 3, name="cube")
        >>> cube.defvjp(lambda g, ans, x: g * 3 * x ** 2)
        >>> cube.defjvp(lambda t, ans, x: t * 3 * x ** 2)
    """
    return Primitive(name or forward.__name__, forward, variadic=variadic)


def _checked_vjp(prim: Primitive, i: int, rule: Callable) -> Callable:
    """`rule` (input i's VJP rule, or every input's for a variadic primitive), with its result
    checked against the input's shape."""
    @functools.wraps(rule)
    def checked(g: Any, ans: Any, *inputs: Any, **params: Any) -> Any:
        argnum = params["argnum"] if prim.variadic else i
        cotangent = rule(g, ans, *inputs, **params)
        expected = np.shape(inputs[argnum])
        _check_result(prim, "backward", "VJP", argnum, cotangent, expected)
        shape = cotangent.shape
        if shape != expected and not _sums_or_stretches_to(shape, expected):
            raise ValueError(
                f"backward: the VJP rule of '{prim.name}' for argument {argnum} returned shape "
                f"{shape}, but the input has shape {expected}; a cotangent must have the input's "
                "shape, or a shape that broadcasting relates to it (the input's shape broadcast "
                "up, which is summed back, or fewer elements, which are stretched)")
        return cotangent
    return checked


def _checked_jvp(prim: Primitive, i: int, rule: Callable) -> Callable:
    """`rule` (input i's JVP rule, or every input's for a variadic primitive), with its result
    checked against the output's shape."""
    @functools.wraps(rule)
    def checked(t: Any, ans: Any, *inputs: Any, **params: Any) -> Any:
        argnum = params["argnum"] if prim.variadic else i
        tangent = rule(t, ans, *inputs, **params)
        expected = np.shape(ans)
        _check_result(prim, "jvp", "JVP", argnum, tangent, expected)
        shape = tangent.shape
        if shape != expected and not _stretches_to(shape, expected):
            raise ValueError(
                f"jvp: the JVP rule of '{prim.name}' for argument {argnum} returned shape {shape}, "
                f"but the output has shape {expected}; a tangent must have the output's shape (or "
                "fewer elements, which are stretched)")
        return tangent
    return checked


def _check_result(prim: Primitive, where: str, kind: str, argnum: int, value: Any,
                  expected: tuple) -> None:
    """Refuse what no shape check can judge: a non-array (None, a list) or non-real numbers."""
    if not isinstance(value, (np.ndarray, np.generic, Tensor)):
        raise TypeError(f"{where}: the {kind} rule of '{prim.name}' for argument {argnum} returned "
                        f"{type(value).__name__}, not an array; expected an array of shape {expected}")
    if value.dtype.kind not in "biuf":
        raise TypeError(f"{where}: the {kind} rule of '{prim.name}' for argument {argnum} returned an "
                        f"array of dtype {value.dtype} (shape {value.shape}); expected real numbers, "
                        f"shape {expected}")


def _sums_or_stretches_to(shape: tuple, target: tuple) -> bool:
    """Whether broadcasting relates `shape` to `target` in one direction only: target broadcasts
    up to shape (the engine sums back), or shape up to target (stretched). A shape that would
    need both, e.g. (3, 1) for (3,), is how a wrong rule looks: unbroadcast would silently turn
    it into a sum of copies."""
    try:
        full = np.broadcast_shapes(shape, target)
    except ValueError:
        return False
    return full == shape or full == target


def _stretches_to(shape: tuple, target: tuple) -> bool:
    """Whether `shape` broadcasts up to `target`."""
    try:
        return np.broadcast_shapes(shape, target) == target
    except ValueError:
        return False


# ---------------------------------------------------------------- declarations
# What the generated layers read: the public functions (ag.NAME), the Tensor methods and the
# operators, each registered by the declaration that defines it.
PUBLIC: Dict[str, Callable] = {}
METHODS: Dict[str, Callable] = {}
OPERATORS: Dict[str, Tuple[Primitive, bool]] = {}  # dunder name -> (primitive, reflected)


@dataclass(frozen=True)
class Values:
    """The test domain of one input of an elementwise op: floats in [low, high], at least
    `margin` away from each point of `away_from` (kinks, poles), optionally whole numbers."""
    low: float = -3.0
    high: float = 3.0
    away_from: Tuple[float, ...] = ()
    margin: float = 0.05
    integer: bool = False


def public(fn: Optional[Callable] = None, *, name: Optional[str] = None,
           method: Any = None) -> Any:
    """Register `fn` as the public function `ag.<name>` (and as Tensor method `method`:
    True for the same name, a string for another). Usable as a decorator."""
    def register(f: Callable) -> Callable:
        key = name or f.__name__
        if key in PUBLIC and PUBLIC[key] is not f:
            raise ValueError(f"public: the name {key!r} is already taken by {PUBLIC[key]!r}")
        PUBLIC[key] = f
        if method:
            METHODS[key if method is True else method] = f
        return f
    return register if fn is None else register(fn)


def elementwise(name: str, forward: Callable, *slopes: Optional[Callable], text: str,
                domain: Sequence[Values] = (), method: Any = True, operator: Optional[str] = None,
                doc: Optional[str] = None, scalar: Optional[Sequence[Optional[str]]] = None) -> Primitive:
    """Declare an elementwise primitive from the local derivative of its output in each input,
    `slope_i(ans, *inputs)` (None for an input without one): VJP_i = g * slope_i and
    JVP_i = t * slope_i. `domain` gives each input's test values; `operator` the dunder name
    (`"__add__"` also installs `"__radd__"`); `doc` the public function's docstring.
    `scalar` (optional): the forward and each slope as a Python expression of one element,
    in the inputs `x, y` and the output `a` (e.g. `("x * y", "y", "x")`), from which
    ag.compile generates fused kernels (prim.scalar; see autograd_lite/compile/fuse.py).

    Example:
        >>> tan = elementwise("tan", np.tan, lambda ans, x: 1 + ans * ans, text="g * (1 + tan(x)**2)",
        ...                   domain=[Values(-1.2, 1.2)], doc="Tangent, elementwise.")
    """
    prim = Primitive(name, forward)
    rules = [None if s is None else _times_slope(s) for s in slopes]  # g * slope and t * slope
    prim.defvjp(*rules, text=text)
    prim.defjvp(*rules)
    prim.batch = elementwise_batch(prim)
    prim.domain = tuple(domain) or (Values(),) * len(slopes)
    if scalar is not None:
        forward_text, *slope_texts = scalar
        prim.scalar = {"forward": forward_text,
                       "vjps": tuple(None if s is None else f"g * ({s})" for s in slope_texts)}
    expose(prim, name, doc or text, method=method, operator=operator)
    return prim


def expose(prim: Primitive, name: str, doc: str, method: Any = True,
           operator: Optional[str] = None) -> Callable:
    """Make `ag.<name>(*xs)` (and the method / operator) for a primitive that takes Tensors
    only (no keyword parameters): the inputs become Tensors, then the primitive is applied."""
    arity = len(prim.vjps)
    if arity == 1:
        def fn(x: Any) -> Tensor:
            return engine.apply(prim, (as_tensor(x),), _NO_PARAMS)
    elif arity == 2:
        def fn(x: Any, y: Any) -> Tensor:
            if not isinstance(x, Tensor) and not isinstance(y, Tensor):
                x = Tensor(x)
            return engine.apply(prim, (x, y), _NO_PARAMS)
    else:
        def fn(*xs: Any) -> Tensor:
            return engine.apply(prim, tuple(as_tensor(x) for x in xs), _NO_PARAMS)
    fn.__name__ = fn.__qualname__ = name
    fn.__doc__ = doc
    public(fn, name=name, method=method)
    if operator:
        OPERATORS[operator] = (prim, False)
        if arity == 2:
            OPERATORS["__r" + operator[2:]] = (prim, True)
    return fn


def linear_jvp(prim: Primitive, argnums: Sequence[int] = (0,), jointly: bool = True) -> Primitive:
    """Give `prim` the JVP rules of an op that is linear in the inputs `argnums`: the tangent
    goes through the forward itself. `jointly` (add, where, concatenate): f is linear in those
    inputs together, so input i's share is f with t in place of input i and zeros in place of
    the others. Otherwise (multiply, matmul, einsum: linear in each input with the others
    fixed) input i's share is f with t in place of input i. A variadic primitive (one rule for
    every input, told which by `argnum=`) is linear in all its inputs."""
    if prim.variadic:
        prim.defjvp(_through_forward(prim, None, jointly))
    else:
        prim.defjvp(*[_through_forward(prim, i, jointly, argnums) if i in argnums else None
                      for i in range(len(prim.vjps))])
    return prim


def _through_forward(prim: Primitive, i: Optional[int], jointly: bool,
                     argnums: Sequence[int] = ()) -> Callable:
    def jvp(t: Any, ans: Any, *inputs: Any, **params: Any) -> Any:
        k = params.pop("argnum") if i is None else i
        linear_in = range(len(inputs)) if i is None else argnums
        args = [np.zeros(np.shape(x), _dtype(x)) if jointly and j in linear_in and j != k else x
                for j, x in enumerate(inputs)]
        args[k] = t
        return prim(*args, **params)
    return jvp


def _dtype(x: Any) -> np.dtype:
    return x.dtype if hasattr(x, "dtype") else np.result_type(x)


def _times_slope(slope: Callable) -> Callable:
    def rule(g: Any, ans: Any, *inputs: Any) -> Any:
        return g * slope(ans, *inputs)
    return rule


_NO_PARAMS: dict = {}  # the params of every parameterless op's node (tensor_methods' too); never mutated
