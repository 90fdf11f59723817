"""Fusion: a run of adjacent elementwise steps (optionally ending in a sum) as ONE Numba kernel.

Which steps are elementwise, and what one element of each computes, is read from the
primitives' own declarations (`prim.scalar`: the forward, each VJP rule and a reduction as
Python expressions of one element, see `declaration.elementwise`), plus the engine's own sums
of cotangents (`t + c`) and `unbroadcast`'s sum over the leading axis. A group's steps read
each input once per element and write only the values something outside the group uses, so
the gradient of `W * W` (`2 * W * g` summed into one array), `x @ W + b` then `sigmoid`, or
`g * a * (1 - a)` with the bias gradient's sum each cost one pass over memory. A sum over all
elements may end a group too (`(W * W).sum()`, FUSE_FULL_SUMS).

Each step's value is rounded to the array's dtype, as an eager step stores it, so chains of
+ - * / give the eager bits; functions (exp, the kernels' sigmoid) and fused full sums (float64
accumulation, where NumPy sums pairwise in the dtype) agree within a few ulps.

Kernels are generated source files compiled with Numba's `cache=True` in a cache folder
(`AUTOGRAD_LITE_COMPILE_CACHE`, default `~/.cache/autograd-lite/compile`, or under
`$XDG_CACHE_HOME`), named by a hash of their text, so a new process loads them compiled.
"""
from __future__ import annotations

import ast
import copy
import functools
import hashlib
import importlib.util
import os
import sys
import tempfile
import warnings
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional, Tuple

import numpy as np

from .program import Program, Step, _template_slots

__all__ = ["fused_program", "cache_dir", "ENABLED"]

ENABLED = True   # False: no fusion (each step runs its own NumPy / Numba call)
# A sum over all elements ending a group (`(W * W).sum()`): the elements' values are written
# into a small chunk and `_chunk_sum` adds each chunk in float64 with reassociation allowed
# there only (784x100 float32 W * W then sum: about 5-8 us, against 22-30 us for NumPy's
# product and pairwise sum, and 23-36 us for a float64 loop Numba cannot vectorise). Where the
# elements are one operation on inputs (W * W), nothing but the sum can be reassociated, so the
# whole kernel may be, and adds in float64 directly (about 3 us). The sum differs from NumPy's
# pairwise one by rounding only (float64 accumulation is the closer).
FUSE_FULL_SUMS = True

# the functions an element's expression may call, as Numba source (the eager kernels' own
# scalar functions, so a fused sigmoid computes what kernels.sigmoid's Numba loop computes)
FUNCTIONS = {"exp": "np.exp({})", "log": "np.log({})", "sigmoid": "_sigmoid_in_kind({})",
             "tanh": "_tanh(np.float64({}))"}
_HEADER = ("import numpy as np\nfrom numba import njit\n"
           "from autograd_lite.kernels.jitted import _sigmoid_in_kind, _tanh\n\n\n"
           # a sum over all elements adds chunks of the elements' values (each rounded to the
           # dtype as eager stores it) in float64; only this function may reassociate, so the
           # sum vectorises and every elementwise value keeps the eager bits
           "@njit(cache=True, nogil=True, fastmath={'reassoc'})\n"
           "def _chunk_sum(chunk, m):\n"
           "    s = 0.0\n"
           "    for k in range(m):\n"
           "        s += np.float64(chunk[k])\n"
           "    return s\n")
CHUNK = 512   # elements per chunk of a full sum (in L1 while it is summed)
_FLOATS = (np.dtype(np.float32), np.dtype(np.float64))


def cache_dir() -> str:
    """The folder of the generated kernels and Numba's cache of them."""
    folder = os.environ.get("AUTOGRAD_LITE_COMPILE_CACHE")
    if not folder:
        base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
        folder = os.path.join(base, "autograd-lite", "compile")
    return folder


@dataclass
class _Element:
    """One step as the expression of one element: `tree` over variable names bound to slots
    in `names`; `reduce` is "all" (a sum of everything) or "rows" (over the leading axis)."""
    n: int
    out: int
    tree: Optional[ast.expr]
    names: Dict[str, int]
    reduce: str = ""
    inplace: bool = False   # an optimizer's update (fold.py): written into its parameter's array
    after: bool = False     # an update of a vector run in a loop after the group's pass


@dataclass
class Group:
    """Steps fused into one kernel: their indices, the slots they read from outside and the
    slots they write (values used after the group), the chain's shape and dtype."""
    steps: List[int]
    reads: List[int]
    writes: List[int]
    shape: tuple
    dtype: np.dtype
    name: str = ""
    step: Optional[Step] = None   # the fused step that runs the group


def fused_program(program: Program) -> Program:
    """A copy of `program` whose fusable runs of steps are each one `fused` step (the program
    itself when nothing fuses). `program.fusion` lists the groups, for explain."""
    program.fusion = []
    if not ENABLED:
        return program
    steps = program.steps
    groups = _groups(program)
    if not groups:
        return program
    start = {g.steps[0]: g for g in groups}
    skip = {n for g in groups for n in g.steps}
    new_steps: List[Step] = []
    for n, step in enumerate(steps):
        group = start.get(n)
        if group is not None:
            fused = _fused_step(group, program)
            if fused is None:   # other groups may not have kept values its steps read
                program.fusion = []
                return program
            program.fusion.append(group)
            new_steps.append(fused)
        elif n not in skip:
            new_steps.append(step)
    if not program.fusion:
        return program
    result = copy.copy(program)
    result.steps = new_steps
    return result


# ------------------------------------------------------------------ finding the groups
def _element(n: int, step: Step, env: List[Any]) -> Optional[_Element]:
    """Step n as one element's expression, or None when it is not elementwise (by declaration)."""
    from .capture import _add, _add_into
    if not isinstance(step.out, int):
        return None
    scalar = getattr(step.prim, "scalar", None) if step.prim is not None else None
    constants = _constants(scalar, step.kw) if scalar else None
    if step.kind == "primitive" and scalar:
        if "forward" in scalar and (not step.kw or constants):
            return _parsed(n, step, scalar["forward"], ("x", "y"), step.ins, constants)
        if scalar.get("reduce") == "+" and step.kw.get("axis") is None \
                and not step.kw.get("keepdims") and FUSE_FULL_SUMS:
            return _Element(n, step.out, None, {"v": step.ins[0]}, "all")
    if step.kind == "rule" and scalar and step.argnum >= 0:
        rules = scalar.get("vjps") or ()
        if step.argnum < len(rules) and rules[step.argnum] is not None and \
                ("forward" in scalar or step.kw.get("axis", 0) is None):
            if "constants" in scalar and not constants:
                return None
            return _parsed(n, step, rules[step.argnum], ("g", "a", "x", "y"), step.ins, constants)
    if step.kind == "sum" and step.fn in (_add, _add_into):
        return _parsed(n, step, "t + c", ("t", "c"), step.ins)
    if step.kind == "sum" and scalar and "into" in scalar and 0 <= step.argnum < len(step.ins) - 3 \
            and ("constants" not in scalar or constants):   # an in-place rule: total += ...
        ins = (step.ins[0], step.ins[1], step.ins[3 + step.argnum])   # total, g, the input
        return _parsed(n, step, scalar["into"], ("t", "g", "w"), ins, constants)
    if step.kind == "update":   # fold.py: the new value of a parameter p from its gradient g
        e = _parsed(n, step, step.prim, ("p", "g", "lr"), step.ins)
        if e is not None:
            e.inplace = True
        return e
    shape = getattr(step.fn, "shape", None)
    if step.kind == "sum" and shape is not None and len(step.ins) == 1:
        source = env[step.ins[0]]
        if isinstance(source, np.ndarray) and source.ndim == 2 and shape == source.shape[1:]:
            return _Element(n, step.out, None, {"v": step.ins[0]}, "rows")
    return None


def _constants(scalar: Dict[str, Any], kw: Dict[str, Any]) -> Optional[Dict[str, float]]:
    """The numbers a declaration's expressions use besides the inputs (`scalar["constants"]`:
    name -> Python expression of the step's keyword parameters, e.g. dropout's
    `{"p": "p", "scale": "1 / (1 - p)"}`), computed in Python floats as the eager kernel
    computes them before rounding to the dtype; None where there are none or they fail."""
    texts = scalar.get("constants")
    if not texts or not all(isinstance(v, (int, float)) and not isinstance(v, bool)
                            for v in kw.values()):
        return None
    try:
        return {name: float(eval(text, {"__builtins__": {}}, dict(kw)))   # declared text only
                for name, text in texts.items()}
    except (ArithmeticError, NameError, TypeError, ValueError):   # e.g. dropout's p = 1
        return None


def _parsed(n: int, step: Step, text: str, variables: tuple, ins: tuple,
            constants: Optional[Dict[str, float]] = None) -> Optional[_Element]:
    tree = ast.parse(text, mode="eval").body
    if constants:
        tree = _Substitute(constants).visit(tree)
    names: Dict[str, int] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Name):
            if node.id in FUNCTIONS:
                continue   # checked as its call's function
            if node.id not in variables or variables.index(node.id) >= len(ins):
                return None
            names[node.id] = ins[variables.index(node.id)]
        elif isinstance(node, ast.Call):
            if not (isinstance(node.func, ast.Name) and node.func.id in FUNCTIONS
                    and len(node.args) == 1 and not node.keywords):
                return None
        elif not isinstance(node, (ast.BinOp, ast.UnaryOp, ast.Constant, ast.Load, ast.Add,
                                   ast.Sub, ast.Mult, ast.Div, ast.USub, ast.UAdd, ast.IfExp,
                                   ast.Compare, ast.Gt, ast.GtE, ast.Lt, ast.LtE)):
            return None
        if isinstance(node, ast.Constant) and (isinstance(node.value, bool)
                                               or not isinstance(node.value, (int, float))):
            return None
    return _Element(n, step.out, tree, names)


def _kind(value: Any, shape: tuple, dtype: np.dtype) -> str:
    """How a kernel reads a value: "full" (one per element), "row" (a vector along the last
    axis), "scalar", or "" when it cannot."""
    if isinstance(value, (bool, np.bool_)):
        return ""
    if isinstance(value, (int, float)):
        return "scalar"   # a Python number: NumPy casts it to the array's dtype
    if isinstance(value, np.generic):
        return "scalar" if value.dtype == dtype else ""
    if type(value) is not np.ndarray or value.dtype != dtype:
        return ""
    if value.ndim == 0:
        return "scalar"
    if value.shape == shape:
        return "full"
    if len(shape) >= 2 and value.shape == shape[-1:]:
        return "row"
    return ""


def _fits(e: _Element, env: List[Any], shape: tuple, dtype: np.dtype, inside: set) -> bool:
    out = env[e.out]
    if e.reduce:
        source = e.names["v"]
        return (source in inside or _kind(env[source], shape, dtype) == "full") and \
            (isinstance(out, (np.ndarray, np.generic)) and out.dtype == dtype)
    if not (type(out) is np.ndarray or (not shape and isinstance(out, np.generic))) or \
            out.shape != shape or out.dtype != dtype:   # a 0-d step may give a NumPy scalar
        return False
    return all(s in inside or _kind(env[s], shape, dtype) for s in e.names.values())


def _after_update(e: Optional[_Element], env: List[Any], dtype: np.dtype, inside: set) -> bool:
    """Whether `e` is an update (fold.py) of a parameter vector from a gradient complete when
    the group's pass ends (a bias's: the group's own sum over rows, or a fused layer's joint
    rule's result from before the group), which the kernel can run after its pass."""
    if e is None or not e.inplace or set(e.names) != {"p", "g", "lr"} or e.names["g"] in inside:
        return False
    p, g, lr = (env[e.names[k]] for k in ("p", "g", "lr"))
    return type(p) is np.ndarray and type(g) is np.ndarray and p.ndim == 1 and \
        p.shape == g.shape and p.dtype == g.dtype == dtype and _kind(lr, (), dtype) == "scalar"


def _groups(program: Program) -> List[Group]:
    env, steps = program.env, program.steps
    elements = [_element(n, s, env) for n, s in enumerate(steps)]
    found: List[Tuple[List[_Element], tuple, np.dtype]] = []
    n = 0
    while n < len(steps):
        e = elements[n]
        out = env[e.out] if e is not None else None
        if e is None or e.reduce or getattr(out, "dtype", None) not in _FLOATS or not (
                type(out) is np.ndarray or (out.ndim == 0 and isinstance(out, np.generic))):
            n += 1
            continue
        shape, dtype = out.shape, out.dtype
        members: List[_Element] = []
        inside: set = set()
        m = n
        while m < len(steps) and elements[m] is not None and \
                _fits(elements[m], env, shape, dtype, inside) and \
                (shape or _arithmetic(elements[m])):
            members.append(elements[m])
            m += 1
            if members[-1].reduce or members[-1].inplace:
                # updates of vectors whose gradients are then complete may follow, as loops
                # after the pass (a bias's from the sum over rows just ended, or from before)
                while m < len(steps) and _after_update(elements[m], env, dtype, inside):
                    elements[m].after = True
                    members.append(elements[m])
                    m += 1
                if members[-1].reduce or members[-1].after:
                    break
            inside.add(members[-1].out)
        if len(members) >= 2:
            found.append((members, shape, dtype))
            n = m
        else:
            n += 1
    # which values are read outside their group (by another step, another group, the result)
    in_group = {e.n: i for i, (members, _, _) in enumerate(found) for e in members}
    read_by: Dict[int, set] = {}
    for k, step in enumerate(steps):
        if k not in in_group:
            for s in step.ins:
                read_by.setdefault(s, set()).add(("step", k))
    groups: List[Group] = []
    externals: List[List[int]] = []
    for i, (members, shape, dtype) in enumerate(found):
        defined: set = set()
        reads: List[int] = []
        for e in members:
            for s in e.names.values():
                if s not in defined and s not in reads:
                    reads.append(s)
                read_by.setdefault(s, set())
            defined.add(e.out)
        for s in reads:
            read_by[s].add(("group", i))
        externals.append(reads)
    result_slots = set(_template_slots(program.result))
    for i, (members, shape, dtype) in enumerate(found):
        writes: List[int] = []
        for e in members:
            if e.reduce or e.inplace or e.out in result_slots or \
                    any(who != ("group", i) for who in read_by.get(e.out, ())):
                if e.out not in writes:
                    writes.append(e.out)
        if not writes:   # nothing reads its values: keep the last (its steps stay fused)
            writes.append(members[-1].out)
        groups.append(Group([e.n for e in members], externals[i], writes, shape, dtype))
        groups[-1].members = members
    return groups


# ------------------------------------------------------------------ generating the kernel
def _fused_step(group: Group, program: Program) -> Optional[Step]:
    """The fused step of a group, its kernel compiled (loaded from the disk cache if there);
    None (with a warning) if Numba cannot compile it: then no step of the program is fused."""
    env = program.env
    members: List[_Element] = group.members
    shape, dtype = group.shape, group.dtype
    kinds = ["full" if s in {e.out for e in members if not e.inplace} else _kind(env[s], shape, dtype)
             for s in group.reads]
    if not shape:
        return _scalar_step(group, program, kinds)
    source, wrapper = _source(group, kinds)
    try:
        with warnings.catch_warnings():   # Numba's pedantic notes on the inlined sigmoid
            warnings.filterwarnings("ignore", message=".*is not in scope")
            kernel = _load(source)
            names: Dict[str, Any] = {"np": np, "kernel": kernel, "DT": dtype.type}
            exec(compile(wrapper, "<ag.compile fused kernel call>", "exec"), names)
            call = names["call"]
            # a promise to replay: each array result is new at every call, writeable, distinct
            # from the others and referenced by nothing else (a flat full sum's outputs are
            # views of new arrays nothing else holds), so it may become a .grad without a copy
            call.fresh = True
            # compile now (or load), not in a replay; on copies of what it writes in place
            inplace = _inplace(group)
            call(*[env[s].copy() if s in inplace else env[s] for s in group.reads])
    except Exception as error:   # numba's errors have no common base class
        warnings.warn(f"ag.compile: a fused kernel did not compile ({type(error).__name__}: "
                      f"{str(error).splitlines()[0] if str(error) else ''}); the program runs "
                      "unfused", RuntimeWarning, stacklevel=4)
        return None
    return _group_step(group, program, call)


def _group_step(group: Group, program: Program, call: Callable) -> Step:
    """The step that runs a group through `call`, named after the steps it fuses."""
    labels = [program.steps[n].label for n in group.steps]
    group.name = "fused[" + ", ".join(labels) + "]"
    out = group.writes[0] if len(group.writes) == 1 else tuple(group.writes)
    group.step = Step("fused", group.name, call, tuple(group.reads), out)
    return group.step


def _arithmetic(e: _Element) -> bool:
    """Whether an element's expression is plain arithmetic (no function, no reduction)."""
    return e.tree is not None and not any(isinstance(node, ast.Call) for node in ast.walk(e.tree))


def _scalar_step(group: Group, program: Program, kinds: List[str]) -> Step:
    """A run of 0-d steps (the loss's sum of terms, `lam / 2 *` the penalty, their rules) as
    one generated Python function on NumPy scalars of the dtype: the same IEEE operations in
    the dtype as the 0-d arrays eager computes with, without a ufunc call per step."""
    members: List[_Element] = group.members
    names: Dict[str, Any] = {"asarray": np.asarray, "DT": group.dtype.type}
    local: Dict[int, str] = {}
    lines = [f"def call({', '.join(f'p{k}' for k in range(len(group.reads)))}):"]
    for k, (s, kind) in enumerate(zip(group.reads, kinds)):
        number = isinstance(program.env[s], (int, float)) and not isinstance(program.env[s], np.generic)
        lines.append(f"    e{k} = DT(p{k})" if number else f"    e{k} = p{k}[()]")
        local[s] = f"e{k}"
    for t, e in enumerate(members):
        tree = _Constants(names, group.dtype.type).visit(
            _Rename({v: local[s] for v, s in e.names.items()}).visit(copy.deepcopy(e.tree)))
        lines.append(f"    t{t} = {ast.unparse(tree)}")
        local[e.out] = f"t{t}"
    # each value as eager had it: a 0-d array, or the NumPy scalar a ufunc gives on 0-d arrays
    outs = [local[s] if isinstance(program.env[s], np.generic) else f"asarray({local[s]})"
            for s in group.writes]
    lines.append(f"    return {outs[0]}" if len(outs) == 1 else f"    return ({', '.join(outs)},)")
    exec(compile("\n".join(lines) + "\n", "<ag.compile fused scalar steps>", "exec"), names)
    names["call"].fresh = True   # every array it returns is new (see _fused_step)
    return _group_step(group, program, names["call"])


class _Constants(ast.NodeTransformer):
    """`DT(c)` calls (from _Rename) to names bound once to the dtype's scalar."""

    def __init__(self, names: Dict[str, Any], dtype: type) -> None:
        self.names, self.dtype = names, dtype

    def visit_Call(self, node: ast.Call) -> ast.AST:
        value = self.dtype(node.args[0].value)
        key = f"c{len(self.names)}"
        self.names[key] = value
        return ast.Name(key, ast.Load())


def _one_operation(members: List[_Element]) -> bool:
    """Whether these elementwise steps are at most one arithmetic operation on inputs (no
    function, no operation on another's result): reassociation cannot change their values."""
    if len(members) > 1:
        return False
    for e in members:
        operations = [n for n in ast.walk(e.tree) if isinstance(n, (ast.BinOp, ast.UnaryOp, ast.Call,
                                                                     ast.IfExp, ast.Compare))]
        if len(operations) > 1 or any(not isinstance(n, ast.BinOp) for n in operations):
            return False
    return True


def _inplace(group: Group) -> set:
    """The slots a group's kernel writes into the array it reads them from: a parameter's
    update (fold.py), and a value the group reads and writes again, as its unfused step does
    (`add_into`, an in-place rule's total)."""
    return {e.out for e in group.members if e.inplace} | set(group.writes).intersection(group.reads)


def _source(group: Group, kinds: List[str]) -> Tuple[str, str]:
    """The kernel's module source (free of the sizes, so chains alike of the same rank share
    one compiled kernel) and the Python wrapper that calls it for this group's shape.

    The kernel indexes the arrays as they are, one loop per axis (a strided argument gets its
    own compiled variant from Numba, nothing is copied), and its source stays small: a kernel
    compiles in about 0.2 s, where reshaping or ravelling inside doubled to quadrupled that."""
    members: List[_Element] = group.members
    # a full sum without row vectors runs over the flattened arrays in chunks of CHUNK (rows
    # along the last axis can be short: 10 classes); the wrapper passes flat views
    reducer = next((e for e in members if e.reduce), None)
    # a bias's update after its gradient's sum over rows, or from a gradient computed before
    # the group: a loop after the pass
    after = [e for e in members if e.after]
    inplace = _inplace(group)   # written into the array read as it
    flat = reducer is not None and reducer.reduce == "all" and "row" not in kinds \
        and len(group.shape) > 1 and not inplace
    used = {s for e in members if e not in after for s in e.names.values()}
    shape = (int(np.prod(group.shape, dtype=np.int64)),) if flat else group.shape
    ndim = len(shape)
    index = ", ".join(f"i{d}" for d in range(ndim))
    local: Dict[int, str] = {}
    params, loads, prologue = [], [], []
    for k, (s, kind) in enumerate(zip(group.reads, kinds)):
        params.append(f"p{k}")
        if kind == "scalar":
            prologue.append(f"    e{k} = DT(p{k})")
        elif s in used:
            loads.append(f"e{k} = p{k}[{index if kind == 'full' else f'i{ndim - 1}'}]")
        local[s] = f"e{k}"
    body: List[str] = []
    outs: List[str] = []
    final: Dict[int, str] = {}
    reduce = ""
    for t, e in enumerate(members):
        if e.reduce:
            reduce, value = e.reduce, local[e.names["v"]]
            continue
        if e in after:
            continue
        tree = _Rename({v: local[s] for v, s in e.names.items()}).visit(copy.deepcopy(e.tree))
        body.append(f"t{t} = DT({ast.unparse(tree)})")
        local[e.out] = final[e.out] = f"t{t}"
    returned: Dict[int, str] = {}
    for s in group.writes:
        if s == (reducer.out if reducer is not None else None):
            continue
        if s in inplace:
            returned[s] = f"p{group.reads.index(s)}"
        else:
            returned[s] = f"o{len(outs)}"
            outs.append(returned[s])
        if s in final:
            body.append(f"{returned[s]}[{index}] = {final[s]}")
    # the sizes from an array of the group's shape (a tuple argument costs its dispatch more)
    sized = [f"p{k}" for k, kind in enumerate(kinds) if kind == "full"] + outs
    arguments = params + outs + (["r"] if reduce == "rows" else [])
    if not sized:
        arguments.insert(0, "shape")
    # a sum of one operation's results (W * W): nothing to reassociate but the sum itself, so
    # the kernel may reassociate and add in float64 directly, without chunks
    direct = reduce == "all" and _one_operation([e for e in members if not e.reduce])
    options = "error_model='numpy'" + (", fastmath={'reassoc'}" if direct else "")
    lines = [_HEADER, "", f"@njit(cache=True, nogil=True, {options})",
             f"def kernel({', '.join(arguments)}):"]
    lines.append("    " + "".join(f"n{d}, " for d in range(ndim)) + f"= {sized[0] + '.shape' if sized else 'shape'}")
    lines += prologue
    last = f"i{ndim - 1}"
    if reduce == "rows":   # a bias gradient: the sum over the leading axis of a matrix
        lines += [f"    for {last} in range(n{ndim - 1}):", f"        r[{last}] = DT(0)"]
        body.append(f"r[{last}] = r[{last}] + {value}")
    if reduce == "all":
        lines.append("    total = 0.0")
        body.append(f"total += np.float64({value})" if direct else f"chunk[c] = {value}")
    if direct:
        for d in range(ndim):
            lines.append("    " * (d + 1) + f"for i{d} in range(n{d}):")
        lines += ["    " * (ndim + 1) + line for line in loads + body]
    elif reduce == "all" and ndim == 1:   # chunks of CHUNK elements
        lines += [f"    chunk = np.empty({CHUNK}, DT)", "    start = 0", "    while start < n0:",
                  f"        m = min({CHUNK}, n0 - start)", "        for c in range(m):",
                  "            i0 = start + c"]
        lines += ["            " + line for line in loads + body]
        lines += ["        total += _chunk_sum(chunk, m)", f"        start += {CHUNK}"]
    else:   # one loop per axis; a full sum's chunk is a row along the last axis
        if reduce == "all":
            lines.append(f"    chunk = np.empty(n{ndim - 1}, DT)")
        for d in range(ndim):
            lines.append("    " * (d + 1) + f"for i{d} in range(n{d}):")
        inside = "    " * (ndim + 1)
        if reduce == "all":
            lines.append(f"{inside}c = {last}")
        lines += [inside + line for line in loads + body]
        if reduce == "all":
            lines.append("    " * ndim + f"total += _chunk_sum(chunk, n{ndim - 1})")
    for e in after:   # a bias's update, from its complete gradient
        target, g = returned[e.out], e.names["g"]
        source = "r[j]" if reducer is not None and g == reducer.out else f"p{group.reads.index(g)}[j]"
        names = {"g": source, "p": f"{target}[j]"}
        tree = _Rename({v: names.get(v, local.get(s, "")) for v, s in e.names.items()}) \
            .visit(copy.deepcopy(e.tree))
        lines += [f"    for j in range({target}.shape[0]):",
                  f"        {target}[j] = DT({ast.unparse(tree)})"]
    lines.append("    return total" if reduce == "all" else "    return 0.0")
    source = "\n".join(lines).replace("DT(", f"np.{np.dtype(group.dtype).name}(") \
        .replace(", DT)", f", np.{np.dtype(group.dtype).name})") + "\n"
    # the wrapper: the outputs, the call
    args = [f"float(p{k})" if kind == "scalar" else f"p{k}.reshape(-1)" if flat else f"p{k}"
            for k, kind in enumerate(kinds)]
    w = [f"def call({', '.join(params)}):"]
    for k in range(len(outs)):
        w.append(f"    o{k} = np.empty({shape!r}, DT)")
    extra = [f"o{k}" for k in range(len(outs))]
    if reduce == "rows":
        w.append(f"    r = np.empty({shape[-1:]!r}, DT)")
        extra.append("r")
    w.append(f"    total = kernel({'' if sized else f'{shape!r}, '}{', '.join(args + extra)})")
    results = [f"{returned[s]}.reshape({group.shape!r})" if flat else returned[s]
               for s in group.writes if s in returned]
    if reduce == "all":   # a 0-d array, as eager's sum gives (a NumPy scalar is read-only)
        results.append("np.asarray(total, DT)")
    elif reduce == "rows":
        results.append("r")
    if reduce:   # the wrapper returns the reduction's value last: so is it listed
        group.writes = [s for s in group.writes if s != reducer.out] + [reducer.out]
    w.append(f"    return {results[0]}" if len(results) == 1 else f"    return ({', '.join(results)},)")
    return source, "\n".join(w) + "\n"


class _Substitute(ast.NodeTransformer):
    """Names of declared constants to their numbers."""

    def __init__(self, constants: Dict[str, float]) -> None:
        self.constants = constants

    def visit_Name(self, node: ast.Name) -> ast.AST:
        if node.id in self.constants:
            return ast.Constant(self.constants[node.id])
        return node


class _Rename(ast.NodeTransformer):
    """Variables to the kernel's local names; numbers to the dtype; functions to Numba's."""

    def __init__(self, names: Dict[str, str]) -> None:
        self.names = names

    def visit_Name(self, node: ast.Name) -> ast.AST:
        return ast.Name(self.names.get(node.id, node.id), ast.Load())

    def visit_Constant(self, node: ast.Constant) -> ast.AST:
        return ast.Call(ast.Name("DT", ast.Load()), [ast.Constant(float(node.value))], [])

    def visit_Call(self, node: ast.Call) -> ast.AST:
        inner = ast.unparse(self.visit(node.args[0]))
        return ast.parse(FUNCTIONS[node.func.id].format(inner), mode="eval").body


_LOADED: Dict[str, Any] = {}


@functools.lru_cache(maxsize=None)
def _kernels_stamp() -> str:
    """A hash of kernels/jitted.py, whose scalar functions the kernels inline: Numba's cache
    checks only the kernel's own file, so without it a changed `_sigmoid_in_kind` would keep
    running its old machine code from a kernel compiled before the change."""
    path = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "kernels", "jitted.py")
    with open(path, "rb") as f:
        return "kernels/jitted.py " + hashlib.sha256(f.read()).hexdigest()[:20]


def _load(source: str) -> Any:
    """The kernel of a generated source: written once into the cache folder (atomically, named
    by its hash, so Numba's cache of it stays valid) and imported from there."""
    source = f"# {_kernels_stamp()}\n{source}"
    digest = hashlib.sha256(source.encode()).hexdigest()[:20]
    kernel = _LOADED.get(digest)
    if kernel is not None:
        return kernel
    folder = cache_dir()
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, f"fused_{digest}.py")
    if not os.path.exists(path):
        handle, temporary = tempfile.mkstemp(dir=folder, suffix=".tmp")
        with os.fdopen(handle, "w") as f:
            f.write(source)
        os.replace(temporary, path)
    name = f"autograd_lite_fused_{digest}"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    kernel = _LOADED[digest] = module.kernel
    return kernel
