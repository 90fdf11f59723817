"""Contractions: einsum, and the products built on it (tensordot, inner, kron, trace, diagonal,
diag, cross), so that one derivative rule serves them all.

einsum is multilinear: the cotangent of operand k is the einsum of g with the other operands onto
operand k's indices, and its tangent is the einsum with t in place of operand k. The public
function parses NumPy's subscripts once into an explicit form with plain letters ('...ij,...jk'
for batch shapes (2, 1) and (5,) becomes 'ABij,Bjk->ABik'), which is the primitive's parameter.
"""
from __future__ import annotations

import functools
import math
import string
from typing import Any, Optional, Sequence, Tuple, Union

import numpy as np

from ..arguments import integer_argument, one_axis
from ..declaration import linear_jvp, primitive, public
from ..tensor import Tensor, as_tensor
from .shape import getitem_p, reshape, scatter_add_p

# NumPy's labels in the sublist form: 0..25 are 'A'..'Z', 26..51 are 'a'..'z' (so sorting the
# letters sorts the labels, as the implicit output does)
LETTERS = string.ascii_uppercase + string.ascii_lowercase

# Above this many index combinations np.einsum's nested loops (about 1 ns each) cost more than
# its search for a pairwise order (about 25 us for three operands), so the search pays
OPTIMIZE_ABOVE = 20_000


# ---------------------------------------------------------------- einsum
def _einsum(*xs: np.ndarray, subscripts: str) -> np.ndarray:
    plan = _plan(subscripts, tuple(x.shape for x in xs))
    if type(plan) is bool:
        return np.einsum(subscripts, *xs, optimize=plan)
    perm_x, shape_x, perm_y, shape_y, shape_out, perm_out = plan
    x, y = xs
    product = np.matmul(x.transpose(perm_x).reshape(shape_x), y.transpose(perm_y).reshape(shape_y))
    return product.reshape(shape_out).transpose(perm_out)


def _einsum_vjp(g: Any, ans: Any, *xs: Any, subscripts: str, argnum: int) -> Any:
    """d/dx_k <g, einsum(xs)>: the einsum of g with the other operands onto x_k's indices.

    An index repeated in x_k ('ii->i') gets a fresh letter tied to it by an identity matrix (the
    cotangent lives on the diagonal); an index of x_k found in no other operand and not in the
    output ('ij->i') is carried by a vector of ones (the cotangent is constant along it).
    """
    terms, out = _terms(subscripts)
    target, x = terms[argnum], xs[argnum]
    operands = [g] + [y for i, y in enumerate(xs) if i != argnum]
    subs = [out] + [t for i, t in enumerate(terms) if i != argnum]
    elsewhere = "".join(subs)
    fresh = iter(c for c in LETTERS if c not in subscripts)
    result = ""
    for letter, n in zip(target, x.shape):
        if letter in result:  # x_k[..., i, ..., i, ...]: cotangent on the diagonal
            tied = next(fresh, None)
            if tied is None:
                raise ValueError(f"einsum: differentiating {subscripts!r} needs a letter for the "
                                 f"repeated index {letter!r}, but all 52 are in use")
            operands.append(np.eye(n, dtype=g.dtype))
            subs.append(letter + tied)
            letter = tied
        elif letter not in elsewhere and target.count(letter) == 1:
            operands.append(np.ones(n, dtype=g.dtype))
            subs.append(letter)
        result += letter
    return einsum_p(*operands, subscripts=",".join(subs) + "->" + result)


einsum_p = primitive(_einsum, "einsum", variadic=True)
einsum_p.defvjp(_einsum_vjp, text="einsum of g with the other operands onto the operand's indices")
linear_jvp(einsum_p, jointly=False)  # multilinear: operand k's share is the einsum with t for x_k


@public
def einsum(subscripts: Union[str, Any], *operands: Any, optimize: Any = False) -> Tensor:
    """Einstein summation, like np.einsum: 'ij,jk->ik' is a matrix product, 'ii->' a trace,
    'ii->i' a diagonal, '...ij,...jk->...ik' a batched product (the '...' axes broadcast); without
    '->' the output is the indices that appear once, in alphabetical order. The sublist form
    einsum(x, [0, 1], y, [1, 2], [0, 2]) is accepted too. `optimize` is accepted as NumPy's
    (False, True, 'greedy', 'optimal' or a path) and changes nothing: the order of the
    contraction is chosen here (a pair with a summed index is one matmul; three or more operands
    take np.einsum's path search when the sizes make it pay).

    Example:
        >>> ag.einsum("ij,jk->ik", a, b)      # a @ b
        >>> ag.einsum("bi,bi->b", x, y)       # a dot product per row
    """
    if not isinstance(subscripts, str):
        subscripts, operands = _from_sublists((subscripts,) + operands)
    if not operands:
        raise ValueError("einsum: needs at least one operand after the subscripts")
    if not (isinstance(optimize, (bool, list)) or optimize in ("greedy", "optimal")):
        raise ValueError(f"einsum: optimize must be False, True, 'greedy', 'optimal' or a "
                         f"contraction path (a list), as in np.einsum, got {optimize!r}")
    ts = [as_tensor(x) for x in operands]
    return einsum_p(*ts, subscripts=_normalize(subscripts, tuple(t.shape for t in ts)))


# ---------------------------------------------------------------- parsing the subscripts
def _terms(subscripts: str) -> Tuple[list, str]:
    """'ab,bc->ac' -> (['ab', 'bc'], 'ac')."""
    inputs, out = subscripts.split("->")
    return inputs.split(","), out


@functools.lru_cache(maxsize=1024)
def _normalize(subscripts: str, shapes: tuple) -> str:
    """NumPy's subscripts for operands of these shapes, in explicit form with plain letters: the
    '...' of each operand become unused letters (right-aligned, as broadcasting aligns axes), and
    an implicit output is spelled out. Refuses what np.einsum refuses, naming the operand."""
    spec = subscripts.replace(" ", "")
    lhs, arrow, rhs = spec.partition("->")
    if any(c in lhs + rhs for c in "->"):
        raise ValueError(f"einsum: '-' and '>' may appear only together, once, as the '->' before "
                         f"the output, in {subscripts!r}")
    terms = lhs.split(",")
    if len(terms) != len(shapes):
        raise ValueError(f"einsum: the subscripts {subscripts!r} name {len(terms)} operand(s), but "
                         f"{len(shapes)} were given")
    ellipsis_shapes = []
    for i, (term, shape) in enumerate(zip(terms, shapes)):
        named = _letters_of(term, f"operand {i}")
        if "..." in term and len(named) <= len(shape):
            start = term.index("...")
            ellipsis_shapes.append((i, shape[start:len(shape) - (len(named) - start)]))
        elif len(named) != len(shape):
            raise ValueError(f"einsum: operand {i} has {len(shape)} dimension(s) (shape {shape}), "
                             f"but its subscripts {term!r} name {len(named)}"
                             + ("" if "..." in term else " (a '...' can stand for the others)"))
    try:
        ellipsis = np.broadcast_shapes(*(s for _, s in ellipsis_shapes))
    except ValueError:
        raise ValueError("einsum: the axes under '...' do not broadcast together: " + ", ".join(
            f"{s} in operand {i}" for i, s in ellipsis_shapes)) from None
    if arrow:
        out_named = _letters_of(rhs, "the output")
        for letter in out_named:
            if out_named.count(letter) > 1:
                raise ValueError(f"einsum: the output {rhs!r} repeats the index {letter!r}")
            if letter not in lhs:
                raise ValueError(f"einsum: the output index {letter!r} appears in no operand's "
                                 f"subscripts in {subscripts!r}")
        if ellipsis and "..." not in rhs:
            raise ValueError(f"einsum: the operands have axes under '...' (shape {ellipsis}), but "
                             f"the output {rhs!r} has no '...' to hold them")
    else:
        once = sorted(c for c in set(lhs) if c.isalpha() and lhs.count(c) == 1)
        rhs = "..." + "".join(once)
    unused = [c for c in LETTERS if c not in spec]
    if len(unused) < len(ellipsis):
        raise ValueError(f"einsum: {subscripts!r} with '...' over {len(ellipsis)} axes needs more "
                         "than the 52 letters")
    batch = "".join(unused[:len(ellipsis)])
    expanded = []
    for term, shape in zip(terms, shapes):
        if "..." in term:
            n = len(shape) - len(term.replace("...", ""))
            term = term.replace("...", batch[len(batch) - n:] if n else "")
        expanded.append(term)
    _check_sizes(expanded, shapes)
    return ",".join(expanded) + "->" + rhs.replace("...", batch)


def _letters_of(term: str, where: str) -> str:
    """The letters of one operand's (or the output's) subscripts, the '...' removed."""
    named = term.replace("...", "", 1)
    for c in named:
        if c == ".":
            raise ValueError(f"einsum: the subscripts of {where}, {term!r}, have a '.' outside "
                             "a single '...'")
        if c not in LETTERS:
            raise ValueError(f"einsum: the subscripts of {where}, {term!r}, contain {c!r}; "
                             "indices are the letters a-z and A-Z")
    return named


def _check_sizes(terms: Sequence[str], shapes: Sequence[tuple]) -> None:
    """An index has one size: the same within an operand (a diagonal), and across operands the
    same or 1 (broadcast)."""
    seen: dict = {}
    for i, (term, shape) in enumerate(zip(terms, shapes)):
        for letter, n in zip(term, shape):
            if letter not in seen:
                seen[letter] = (n, i)
                continue
            m, j = seen[letter]
            if j == i and m != n:
                raise ValueError(f"einsum: operand {i} repeats the index {letter!r} over axes of "
                                 f"sizes {m} and {n} (shape {shape}); a diagonal needs equal sizes")
            if m != n and 1 not in (m, n):
                raise ValueError(f"einsum: the index {letter!r} has size {m} in operand {j} but "
                                 f"size {n} in operand {i}")
            if m == 1:
                seen[letter] = (n, i)


def _from_sublists(args: tuple) -> Tuple[str, tuple]:
    """einsum(x, [0, 1], y, [1, 2], [0, 2]) -> ('AB,BC->AC', (x, y))."""
    out = args[-1] if len(args) % 2 else None
    operands, labels = args[0:len(args) - len(args) % 2:2], args[1::2]
    if not operands:
        raise ValueError("einsum: needs subscripts, as a string before the operands or as a list of "
                         "labels after each operand")

    def spell(sublist: Any, where: str) -> str:
        text = ""
        for label in sublist:
            if label is Ellipsis:
                text += "..."
            elif isinstance(label, (int, np.integer)) and 0 <= label < len(LETTERS):
                text += LETTERS[label]
            else:
                raise ValueError(f"einsum: a label in the sublist form is an int in 0..51 or "
                                 f"Ellipsis, got {label!r} for {where}")
        return text

    terms = ",".join(spell(s, f"operand {i}") for i, s in enumerate(labels))
    return terms + ("" if out is None else "->" + spell(out, "the output")), operands


# ---------------------------------------------------------------- how the forward runs
@functools.lru_cache(maxsize=1024)
def _plan(subscripts: str, shapes: tuple) -> Any:
    """How to run an einsum: a matmul plan (two operands with an index summed: BLAS), else the
    `optimize` argument of np.einsum (True for three or more operands over many combinations)."""
    terms, out = _terms(subscripts)
    if len(terms) == 2:
        plan = _matmul_plan(terms[0], terms[1], out, shapes[0], shapes[1])
        if plan is not None:
            return plan
    size: dict = {}
    for term, shape in zip(terms, shapes):
        for letter, n in zip(term, shape):
            size[letter] = max(size.get(letter, 1), n)
    return len(terms) > 2 and math.prod(size.values()) > OPTIMIZE_ABOVE


def _matmul_plan(a: str, b: str, out: str, shape_a: tuple, shape_b: tuple) -> Optional[tuple]:
    """x @ y after permuting x to (batch..., kept of x, summed) and y to (batch..., summed, kept
    of y), then the product's axes to the output's order; None when the einsum is no such
    product: nothing summed (np.einsum's own loop is faster for outer and elementwise products),
    an index repeated in an operand or summed within one, or a summed index stretched from 1."""
    size_a, size_b = dict(zip(a, shape_a)), dict(zip(b, shape_b))
    summed = [c for c in a if c in b and c not in out]
    if (len(set(a)) < len(a) or len(set(b)) < len(b) or any(c not in out for c in a + b
                                                              if c not in summed)
            or any(size_a[c] != size_b[c] for c in summed)):
        return None
    k = math.prod(size_a[c] for c in summed)
    if k < 2:
        return None
    batch = [c for c in out if c in a and c in b]
    kept_a = [c for c in a if c not in b]
    kept_b = [c for c in b if c not in a]
    m = math.prod(size_a[c] for c in kept_a)
    n = math.prod(size_b[c] for c in kept_b)
    order = batch + kept_a + kept_b
    # a batch index of size 1 in one operand takes the other's size (also 0)
    size = {c: size_a[c] if size_b.get(c, 1) == 1 and c in a else size_b[c] for c in order}
    return (tuple(a.index(c) for c in batch + kept_a + summed),
            tuple(size_a[c] for c in batch) + (m, k),
            tuple(b.index(c) for c in batch + summed + kept_b),
            tuple(size_b[c] for c in batch) + (k, n),
            tuple(size[c] for c in order),
            tuple(order.index(c) for c in out))


def _einsum_domain(c: Any) -> tuple:
    """A representative pattern (products, traces, diagonals, sums, three operands, broadcast
    '...', implicit output) at random sizes."""
    i, j, k, l, b = (c.integer(1, 4) for _ in range(5))
    b2 = c.integer(1, 3)
    patterns = {
        "ij,jk->ik": [(i, j), (j, k)],
        "ij,jk": [(i, j), (j, k)],
        "bij,bjk->bik": [(b, i, j), (b, j, k)],
        "...ij,...jk->...ik": [(b, 1, i, j), (b2, j, k)],
        "ii->": [(i, i)],
        "ii->i": [(i, i)],
        "iij,j->ji": [(i, i, j), (j,)],
        "i,j->ij": [(i,), (j,)],
        "ij->": [(i, j)],
        "ij->ji": [(i, j)],
        "ij,ij->i": [(i, j), (i, j)],
        "ij,jk,kl->il": [(i, j), (j, k), (k, l)],
    }
    pattern = c.choice(sorted(patterns))
    return (lambda *ts: einsum(pattern, *ts)), [c.array(s) for s in patterns[pattern]]


einsum_p.domain = _einsum_domain


# ---------------------------------------------------------------- products built on einsum
@public
def tensordot(a: Any, b: Any, axes: Union[int, Sequence[Any]] = 2) -> Tensor:
    """Sum over pairs of axes, like np.tensordot: `axes` is N (the last N axes of a with the
    first N of b) or a pair (axes of a, axes of b). The output has a's remaining axes, then b's.

    Example:
        >>> ag.tensordot(x, w, axes=([1, 2], [0, 1]))   # x (n, h, w) with w (h, w, k) -> (n, k)
    """
    a, b = as_tensor(a), as_tensor(b)
    axes_a, axes_b = _tensordot_axes(axes, a, b)
    letters = _letters(a.ndim + b.ndim, "tensordot")
    sub_a, sub_b = letters[:a.ndim], list(letters[a.ndim:])
    for i, j in zip(axes_a, axes_b):
        if a.shape[i] != b.shape[j]:
            raise ValueError(f"tensordot: axis {i} of a (shape {a.shape}) and axis {j} of b (shape "
                             f"{b.shape}) are summed together, so they need equal sizes")
        sub_b[j] = sub_a[i]
    out = [c for i, c in enumerate(sub_a) if i not in axes_a] + \
        [c for j, c in enumerate(sub_b) if j not in axes_b]
    return einsum_p(a, b, subscripts=f"{sub_a},{''.join(sub_b)}->{''.join(out)}")


def _tensordot_axes(axes: Any, a: Tensor, b: Tensor) -> Tuple[list, list]:
    """The summed axes of a and of b, paired, non-negative."""
    if isinstance(axes, (int, np.integer)) and not isinstance(axes, bool):
        if not 0 <= axes <= min(a.ndim, b.ndim):
            raise ValueError(f"tensordot: axes={axes} must be between 0 and the smaller number of "
                             f"dimensions of shapes {a.shape} and {b.shape}")
        return list(range(a.ndim - axes, a.ndim)), list(range(axes))
    try:
        axes_a, axes_b = axes
    except (TypeError, ValueError):
        raise ValueError(f"tensordot: axes must be an int or a pair (axes of a, axes of b), got "
                         f"{axes!r}") from None
    pairs = []
    for named, x in ((axes_a, a), (axes_b, b)):
        named = [named] if isinstance(named, (int, np.integer)) else list(named)
        normal = [one_axis(int(n), x.ndim, "tensordot") for n in named]
        if len(set(normal)) != len(normal):
            raise ValueError(f"tensordot: axes {tuple(named)} repeat an axis of shape {x.shape}")
        pairs.append(normal)
    if len(pairs[0]) != len(pairs[1]):
        raise ValueError(f"tensordot: {len(pairs[0])} axes of a but {len(pairs[1])} of b in "
                         f"axes={axes!r}; they are summed in pairs")
    return pairs[0], pairs[1]


@public
def inner(a: Any, b: Any) -> Tensor:
    """Sum over the last axes, like np.inner: out[i..., j...] = sum_k a[i..., k] b[j..., k];
    a product when either is 0-d."""
    a, b = as_tensor(a), as_tensor(b)
    if a.ndim == 0 or b.ndim == 0:
        return a * b
    if a.shape[-1] != b.shape[-1]:
        raise ValueError(f"inner: the last axes of shapes {a.shape} and {b.shape} are summed "
                         "together, so they need equal sizes")
    return tensordot(a, b, axes=([-1], [-1]))


@public
def kron(a: Any, b: Any) -> Tensor:
    """The Kronecker product, like np.kron: blocks a[i, j] * b (the shorter shape is padded with
    leading 1s); out[i*p + k, j*q + l] = a[i, j] b[k, l] for b of shape (p, q)."""
    a, b = as_tensor(a), as_tensor(b)
    ndim = max(a.ndim, b.ndim)
    a = reshape(a, (1,) * (ndim - a.ndim) + a.shape)
    b = reshape(b, (1,) * (ndim - b.ndim) + b.shape)
    letters = _letters(2 * ndim, "kron")
    sub_a, sub_b = letters[:ndim], letters[ndim:]
    blocks = einsum_p(a, b, subscripts=f"{sub_a},{sub_b}->{''.join(p + q for p, q in zip(sub_a, sub_b))}")
    return reshape(blocks, tuple(p * q for p, q in zip(a.shape, b.shape)))


@public(method=True)
def diagonal(x: Any, offset: int = 0, axis1: int = 0, axis2: int = 1) -> Tensor:
    """The `offset` diagonal over axes axis1 and axis2 (above the main one when offset > 0),
    like np.diagonal: those two axes are removed and the diagonal becomes the last axis."""
    block, sub, others, on_diagonal = _diagonal_block(as_tensor(x), offset, axis1, axis2, "diagonal")
    return einsum_p(block, subscripts=f"{sub}->{others}{on_diagonal}")


@public(method=True)
def trace(x: Any, offset: int = 0, axis1: int = 0, axis2: int = 1) -> Tensor:
    """The sum along the `offset` diagonal over axes axis1 and axis2, like np.trace."""
    block, sub, others, _ = _diagonal_block(as_tensor(x), offset, axis1, axis2, "trace")
    return einsum_p(block, subscripts=f"{sub}->{others}")


def _diagonal_block(x: Tensor, offset: int, axis1: int, axis2: int,
                    op: str) -> Tuple[Tensor, str, str, str]:
    """x cut to the square block whose main diagonal over (axis1, axis2) is x's `offset`
    diagonal; its subscripts with both axes under one letter; the other axes' letters; that
    letter. For x of shape (5, 3, 4), axes 0 and 2, offset 1: x[:3, :, 1:4], 'ABA', 'B', 'A'."""
    if x.ndim < 2:
        raise ValueError(f"{op}: needs at least 2 dimensions, got shape {x.shape}")
    a1, a2 = one_axis(axis1, x.ndim, op), one_axis(axis2, x.ndim, op)
    if a1 == a2:
        raise ValueError(f"{op}: axis1 and axis2 must be different axes, both are {a1}")
    offset = integer_argument(offset, op, "offset")
    start1, start2 = max(-offset, 0), max(offset, 0)
    length = max(0, min(x.shape[a1] - start1, x.shape[a2] - start2))
    if (x.shape[a1], x.shape[a2]) != (length, length):
        index = [slice(None)] * x.ndim
        index[a1], index[a2] = slice(start1, start1 + length), slice(start2, start2 + length)
        x = getitem_p(x, index=tuple(index))
    sub = list(_letters(x.ndim, op))
    sub[a2] = sub[a1]
    others = "".join(c for i, c in enumerate(sub) if i not in (a1, a2))
    return x, "".join(sub), others, sub[a1]


@public
def diag(v: Any, k: int = 0) -> Tensor:
    """Like np.diag: a 1-D v becomes a square matrix with v on diagonal k (above the main one
    when k > 0); a 2-D v gives its diagonal k."""
    v = as_tensor(v)
    k = integer_argument(k, "diag", "k")
    if v.ndim == 2:
        return diagonal(v, offset=k)
    if v.ndim != 1:
        raise ValueError(f"diag: v must be 1-D (to build a matrix) or 2-D (to take a diagonal), "
                         f"got shape {v.shape}")
    n = v.shape[0] + abs(k)
    i = np.arange(v.shape[0])
    return scatter_add_p(v, index=(i + max(-k, 0), i + max(k, 0)), shape=(n, n))


# The Levi-Civita symbol: cross(a, b)_k = sum_ij eps_ijk a_i b_j
_LEVI_CIVITA = np.zeros((3, 3, 3))
for _i, _j, _k in ((0, 1, 2), (1, 2, 0), (2, 0, 1)):
    _LEVI_CIVITA[_i, _j, _k], _LEVI_CIVITA[_j, _i, _k] = 1.0, -1.0


@public
def cross(a: Any, b: Any, axis: int = -1) -> Tensor:
    """The cross product of 3-vectors along `axis` (of a, of b and of the result), broadcast over
    the other axes, like np.cross. As in NumPy, a 2-vector is taken with a zero third component,
    and two 2-vectors give the third component alone (one number per pair)."""
    a, b = as_tensor(a), as_tensor(b)
    if a.ndim == 0 or b.ndim == 0:
        raise ValueError(f"cross: needs vectors, got shapes {a.shape} and {b.shape}")
    axis_a, axis_b = one_axis(axis, a.ndim, "cross"), one_axis(axis, b.ndim, "cross")
    n_a, n_b = a.shape[axis_a], b.shape[axis_b]
    if n_a not in (2, 3) or n_b not in (2, 3):
        raise ValueError(f"cross: the vectors along axis {axis} must have 2 or 3 components, got "
                         f"shapes {a.shape} and {b.shape}")
    rest_a, rest_b = a.shape[:axis_a] + a.shape[axis_a + 1:], b.shape[:axis_b] + b.shape[axis_b + 1:]
    try:
        batch = np.broadcast_shapes(rest_a, rest_b)
    except ValueError:
        raise ValueError(f"cross: shapes {a.shape} and {b.shape} do not broadcast outside axis "
                         f"{axis}") from None
    letters = _letters(len(batch) + 3, "cross")
    i, j, k, batch_letters = letters[0], letters[1], letters[2], letters[3:]
    sub_a = list(batch_letters[len(batch) - len(rest_a):])
    sub_a.insert(axis_a, i)
    sub_b = list(batch_letters[len(batch) - len(rest_b):])
    sub_b.insert(axis_b, j)
    levi = _LEVI_CIVITA[:n_a, :n_b].astype(np.result_type(a.dtype, b.dtype))
    if n_a == n_b == 2:
        levi, sub_levi, out = levi[..., 2], i + j, batch_letters
    else:
        out = list(batch_letters)
        out.insert(one_axis(axis, len(batch) + 1, "cross"), k)
        sub_levi, out = i + j + k, "".join(out)
    return einsum_p(a, b, levi, subscripts=f"{''.join(sub_a)},{''.join(sub_b)},{sub_levi}->{out}")


# ---------------------------------------------------------------- helpers
def _letters(n: int, op: str) -> str:
    """n distinct index letters for an einsum that names every axis."""
    if n > len(LETTERS):
        raise ValueError(f"{op}: the operands have {n} axes in all, more than the 52 that einsum "
                         "can name")
    return LETTERS[:n]


def _batch_einsum(args, dims, subscripts):
    """einsum of a batch: the batch axis gets a letter of its own, on the batched operands and
    first in the output."""
    terms, out = _terms(subscripts)
    b = next(c for c in LETTERS if c not in subscripts)
    terms = [b + t if d is not None else t for t, d in zip(terms, dims)]
    return einsum_p(*args, subscripts=",".join(terms) + "->" + b + out), 0


einsum_p.defbatch(_batch_einsum)
