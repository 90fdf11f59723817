"""The NumPy shape functions built from the shape primitives (repeat, tile, flip, rot90, moveaxis,
split, the stacks, atleast_nd, ravel, diff) and the shape primitives roll, tril/triu, pad and
index_update: equal to NumPy on many shapes, gradients against finite differences, JVPs, and
errors that name the operation and the value at fault. (The primitives' rules are also checked by
test_table.py from their declared domains.)
"""
from __future__ import annotations

from typing import Any, Callable

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import autograd_lite as ag
from autograd_lite.forward import jvp
from autograd_lite.testing import Cases

SOME = settings(max_examples=30, deadline=None)


def _check_derivatives(fn: Callable, *inputs: np.ndarray) -> None:
    """gradcheck (VJP vs finite differences) and the JVP: these ops are linear, so the tangent
    of fn is fn applied to the tangent (an affine op: its difference from fn at zero)."""
    assert ag.gradcheck(fn, *inputs)
    rng = np.random.default_rng(1)
    tangents = tuple(rng.standard_normal(x.shape) for x in inputs)
    value, tangent = jvp(fn, inputs, tangents)
    np.testing.assert_allclose(value, fn(*inputs).data, rtol=1e-12)
    at_zero = fn(*[np.zeros_like(x) for x in inputs]).data
    np.testing.assert_allclose(tangent, fn(*tangents).data - at_zero, rtol=1e-12, atol=1e-12)


def _pieces(fn: Callable) -> Callable:
    """A list-valued op as one tensor (each piece weighted apart, so a piece's gradient landing in
    the wrong place would show)."""
    def joined(*ts: Any) -> ag.Tensor:
        parts = [p.ravel() * (i + 1) for i, p in enumerate(fn(*ts))]
        return ag.concatenate(parts) if parts else ag.tensor(np.zeros(0))
    return joined


# ---------------------------------------------------------------- equal to NumPy
@SOME
@given(data=st.data())
def test_repeat_matches_numpy(data):
    c = Cases(data)
    x = c.array(c.shape())
    axis = c.choice([None] + list(range(-x.ndim, x.ndim)))
    n = x.size if axis is None else x.shape[axis]
    repeats = c.choice([c.integer(0, 3), [c.integer(0, 3) for _ in range(n)], [c.integer(0, 3)]])
    np.testing.assert_array_equal(ag.repeat(x, repeats, axis).data, np.repeat(x, repeats, axis))
    np.testing.assert_array_equal(ag.tensor(x).repeat(repeats, axis=axis).data, x.repeat(repeats, axis))
    _check_derivatives(lambda t: ag.repeat(t, repeats, axis), x)


@SOME
@given(data=st.data())
def test_tile_matches_numpy(data):
    c = Cases(data)
    x = c.array(c.shape())
    reps = c.choice([c.integer(0, 3), tuple(c.integer(0, 3) for _ in range(c.integer(0, 4)))])
    np.testing.assert_array_equal(ag.tile(x, reps).data, np.tile(x, reps))
    _check_derivatives(lambda t: ag.tile(t, reps), x)


@SOME
@given(data=st.data())
def test_roll_matches_numpy(data):
    c = Cases(data)
    x = c.array(c.shape())
    if x.ndim == 0:
        axis = None
    else:
        axis = c.choice([None, c.integer(-x.ndim, x.ndim - 1),
                         tuple(c.integer(-x.ndim, x.ndim - 1) for _ in range(c.integer(1, 3)))])
    shift = c.choice([c.integer(-7, 7), tuple(c.integer(-7, 7) for _ in range(
        len(axis) if isinstance(axis, tuple) else c.integer(1, 2)))])
    np.testing.assert_array_equal(ag.roll(x, shift, axis).data, np.roll(x, shift, axis))


@SOME
@given(data=st.data())
def test_flips_and_rot90_match_numpy(data):
    c = Cases(data)
    x = c.array(c.shape(min_dims=2))
    axis = c.choice([None, c.integer(-x.ndim, x.ndim - 1), tuple(c.permutation(x.ndim))[:2]])
    k = c.integer(-5, 5)
    axes = tuple(c.permutation(x.ndim))[:2]
    for ours, theirs in [(ag.flip(x, axis), np.flip(x, axis)), (ag.fliplr(x), np.fliplr(x)),
                         (ag.flipud(x), np.flipud(x)), (ag.rot90(x, k, axes), np.rot90(x, k, axes))]:
        np.testing.assert_array_equal(ours.data, theirs)
    _check_derivatives(lambda t: ag.flip(t, axis), x)
    _check_derivatives(lambda t: ag.rot90(t, k, axes), x)
    _check_derivatives(ag.fliplr, x)
    _check_derivatives(ag.flipud, x)


@SOME
@given(data=st.data())
def test_moveaxis_matches_numpy(data):
    c = Cases(data)
    x = c.array(c.shape(min_dims=1))
    count = c.integer(1, x.ndim)
    source = tuple(c.permutation(x.ndim))[:count]
    destination = tuple(a - x.ndim * c.integer(0, 1) for a in tuple(c.permutation(x.ndim))[:count])
    if count == 1 and c.boolean():
        source, destination = source[0], destination[0]
    np.testing.assert_array_equal(ag.moveaxis(x, source, destination).data,
                                  np.moveaxis(x, source, destination))
    _check_derivatives(lambda t: ag.moveaxis(t, source, destination), x)


@SOME
@given(data=st.data())
def test_pad_matches_numpy(data):
    c = Cases(data)
    x = c.array(c.shape(min_dims=1))
    width = c.choice([c.integer(0, 2), (c.integer(0, 2), c.integer(0, 2)),
                      tuple((c.integer(0, 2), c.integer(0, 2)) for _ in range(x.ndim))])
    value = c.choice([0, -1.5, tuple((float(c.integer(0, 3)), float(c.integer(0, 3))) for _ in range(x.ndim))])
    np.testing.assert_array_equal(ag.pad(x, width, constant_values=value).data,
                                  np.pad(x, width, constant_values=value))
    _check_derivatives(lambda t: ag.pad(t, width, constant_values=value), x)


@SOME
@given(data=st.data())
def test_tril_and_triu_match_numpy(data):
    c = Cases(data)
    x = c.array(c.shape(min_dims=1))
    k = c.integer(-3, 3)
    np.testing.assert_array_equal(ag.tril(x, k).data, np.tril(x, k))
    np.testing.assert_array_equal(ag.triu(x, k).data, np.triu(x, k))


@SOME
@given(data=st.data())
def test_splits_match_numpy(data):
    c = Cases(data)
    x = c.array(c.shape(min_dims=1, max_side=6))
    axis = c.integer(-x.ndim, x.ndim - 1)
    n = x.shape[axis]
    divisors = [k for k in range(1, n + 1) if n % k == 0]
    indices = sorted(c.integer(-n - 1, n + 1) for _ in range(c.integer(0, 3)))
    cases = [(ag.split, np.split, c.choice(divisors)), (ag.split, np.split, indices),
             (ag.array_split, np.array_split, c.integer(1, n + 2)),
             (ag.array_split, np.array_split, indices)]
    for ours, theirs, how in cases:
        got, want = ours(x, how, axis), theirs(x, how, axis)
        assert isinstance(got, list) and len(got) == len(want)
        for g, w in zip(got, want):
            np.testing.assert_array_equal(g.data, w)
            assert g.shape == w.shape
        _check_derivatives(_pieces(lambda t: ours(t, how, axis)), x)
    along = {ag.hsplit: 1 if x.ndim > 1 else 0, ag.vsplit: 0, ag.dsplit: 2}
    for ours, theirs, need in [(ag.hsplit, np.hsplit, 1), (ag.vsplit, np.vsplit, 2), (ag.dsplit, np.dsplit, 3)]:
        if x.ndim >= need:
            sections = x.shape[along[ours]]
            got, want = ours(x, sections), theirs(x, sections)
            assert len(got) == len(want)
            for g, w in zip(got, want):
                np.testing.assert_array_equal(g.data, w)


@SOME
@given(data=st.data())
def test_stacks_match_numpy(data):
    c = Cases(data)
    shape = c.shape(max_dims=3)
    count = c.integer(1, 3)
    nd = len(shape)
    # the axis of the inputs' own shape that each joins along (None: they must be equal)
    along = {ag.vstack: 0 if nd >= 2 else None, ag.hstack: (0 if nd == 1 else 1) if nd else None,
             ag.dstack: 2 if nd >= 3 else None, ag.column_stack: 1 if nd >= 2 else None}
    for ours, theirs in [(ag.vstack, np.vstack), (ag.hstack, np.hstack), (ag.dstack, np.dstack),
                         (ag.column_stack, np.column_stack)]:
        xs = []
        for _ in range(count):
            s = list(shape)
            if along[ours] is not None:
                s[along[ours]] = c.integer(1, 3)
            xs.append(c.array(tuple(s)))
        np.testing.assert_array_equal(ours(xs).data, theirs(xs))
        _check_derivatives(lambda *ts: ours(ts), *xs)


@SOME
@given(data=st.data())
def test_atleast_nd_and_ravel_match_numpy(data):
    c = Cases(data)
    xs = [c.array(c.shape(max_dims=4)) for _ in range(c.integer(1, 3))]
    for ours, theirs in [(ag.atleast_1d, np.atleast_1d), (ag.atleast_2d, np.atleast_2d),
                         (ag.atleast_3d, np.atleast_3d)]:
        got, want = ours(*xs), theirs(*xs)
        if len(xs) == 1:
            got, want = (got,), (want,)
        assert isinstance(got, tuple) and len(got) == len(want)
        for g, w in zip(got, want):
            np.testing.assert_array_equal(g.data, w)
            assert g.shape == w.shape
        _check_derivatives(lambda t: ours(t), xs[0])
    np.testing.assert_array_equal(ag.ravel(xs[0]).data, np.ravel(xs[0]))
    np.testing.assert_array_equal(ag.tensor(xs[0]).ravel().data, xs[0].ravel())
    _check_derivatives(ag.ravel, xs[0])


@SOME
@given(data=st.data())
def test_diff_matches_numpy(data):
    c = Cases(data)
    x = c.array(c.shape(min_dims=1))
    n = c.integer(0, 4)
    axis = c.integer(-x.ndim, x.ndim - 1)
    ends = {}
    if c.boolean():
        ends["prepend"] = c.choice([1.5, c.array(x.shape[:axis % x.ndim] + (2,) + x.shape[axis % x.ndim + 1:])])
    if c.boolean():
        ends["append"] = -2.0
    np.testing.assert_allclose(ag.diff(x, n, axis, **ends).data, np.diff(x, n, axis, **ends), rtol=1e-12)
    _check_derivatives(lambda t: ag.diff(t, n, axis, **ends), x)


@SOME
@given(data=st.data())
def test_index_update_matches_numpy_assignment(data):
    c = Cases(data)
    x = c.array(c.shape(min_dims=1))
    n = x.shape[0]
    index = c.choice([c.integer(-n, n - 1), slice(c.integer(0, n), None, c.choice([1, -2])),
                      [c.integer(-n, n - 1) for _ in range(c.integer(0, 6))], c.array(x.shape) > 0,
                      (Ellipsis, c.integer(0, x.shape[-1] - 1))])
    selection = x[index if not isinstance(index, list) else np.asarray(index, dtype=np.intp)].shape
    values = c.array(selection[c.integer(0, len(selection)):])
    expected = x.copy()
    expected[index if not isinstance(index, list) else np.asarray(index, dtype=np.intp)] = values
    before = x.copy()
    np.testing.assert_array_equal(ag.index_update(x, index, values).data, expected)
    np.testing.assert_array_equal(x, before)  # out of place
    _check_derivatives(lambda t, v: ag.index_update(t, index, v), x, values)


# ---------------------------------------------------------------- gradients, by hand
def test_each_piece_of_a_split_sends_its_gradient_to_its_slice():
    x = ag.tensor(np.arange(10.0), requires_grad=True)
    a, b, c = ag.array_split(x, 3)  # lengths 4, 3, 3
    (a.sum() * 1 + (b * b).sum() + c.sum() * 3).backward()
    np.testing.assert_array_equal(x.grad.data, [1, 1, 1, 1, 8, 10, 12, 3, 3, 3])
    assert ag.gradcheck(lambda t: (ag.split(t, [2, 5])[1] ** 3).sum(), np.linspace(-1, 1, 7))


def test_index_update_gradients_with_repeated_indices_go_to_the_write_that_lands():
    x = ag.tensor(np.arange(5.0), requires_grad=True)
    v = ag.tensor([10.0, 20.0, 30.0, 40.0], requires_grad=True)
    y = ag.index_update(x, [1, 3, 1, 1], v)  # position 1 takes 40 (the last write), 3 takes 20
    np.testing.assert_array_equal(y.data, [0, 40, 2, 20, 4])
    (y * ag.tensor([1.0, 2.0, 3.0, 4.0, 5.0])).sum().backward()
    np.testing.assert_array_equal(x.grad.data, [1, 0, 3, 0, 5])
    np.testing.assert_array_equal(v.grad.data, [0, 4, 0, 2])


def test_index_update_values_broadcast_and_their_gradient_sums_back():
    x = ag.tensor(np.zeros((3, 4)), requires_grad=True)
    v = ag.tensor([1.0, 2.0, 3.0, 4.0], requires_grad=True)
    y = ag.index_update(x, np.array([True, False, True]), v)
    np.testing.assert_array_equal(y.data, [[1, 2, 3, 4], [0, 0, 0, 0], [1, 2, 3, 4]])
    y.sum().backward()
    np.testing.assert_array_equal(v.grad.data, [2, 2, 2, 2])
    np.testing.assert_array_equal(x.grad.data, [[0] * 4, [1] * 4, [0] * 4])


def test_second_derivatives_through_the_composed_ops():
    # the composed ops are primitives underneath: grad-of-grad goes through them
    def f(t):
        pieces = ag.split(ag.tile(ag.flip(t, 0), 2), 2)
        return (ag.diff(pieces[0] * pieces[1], 1) ** 2).sum() + (ag.repeat(t, [1, 2, 0]) ** 3).sum()

    x = ag.tensor([0.5, -1.0, 2.0], requires_grad=True)
    (g,) = ag.autograd_grad(f(x), [x], create_graph=True)
    (h0,) = ag.autograd_grad(g[0], [x])
    eps = 1e-6
    row = []  # d/dx_j of the first gradient's element 0, by central differences
    for e in np.eye(3):
        plus = ag.tensor(x.data + eps * e, requires_grad=True)
        minus = ag.tensor(x.data - eps * e, requires_grad=True)
        gp = ag.autograd_grad(f(plus), [plus])[0].data[0]
        gm = ag.autograd_grad(f(minus), [minus])[0].data[0]
        row.append((gp - gm) / (2 * eps))
    np.testing.assert_allclose(h0.data, row, rtol=1e-5, atol=1e-6)


def test_float32_stays_float32_through_the_composed_ops():
    x = ag.tensor(np.ones((2, 3), np.float32), requires_grad=True)
    outs = [ag.repeat(x, 2, 1), ag.repeat(x, [1, 0, 2], 1), ag.tile(x, (2, 1)), ag.flip(x),
            ag.rot90(x), ag.moveaxis(x, 0, 1), ag.vstack([x, x]), ag.hstack([x, x]),
            ag.dstack([x, x]), ag.column_stack([x, x]), ag.atleast_3d(x), ag.ravel(x),
            ag.diff(x), ag.pad(x, 1, constant_values=2.5), ag.roll(x, 1), ag.tril(x),
            ag.index_update(x, (0, [1, 1]), 3.0), *ag.split(x, 3, axis=1)]
    for out in outs:
        assert out.dtype == np.float32
        x.grad = None
        out.sum().backward()
        assert x.grad.dtype == np.float32


# ---------------------------------------------------------------- errors
@pytest.mark.parametrize("call, error, message", [
    (lambda x: ag.repeat(x, -1), ValueError, r"repeat: repeats must be non-negative"),
    (lambda x: ag.repeat(x, [1, 2], axis=1), ValueError, r"repeat: 2 repeats for axis 1 of length 3"),
    (lambda x: ag.repeat(x, 1.5), TypeError, r"repeat: repeats must be an integer"),
    (lambda x: ag.repeat(x, 2, axis=2), ValueError, r"repeat: axis 2 is out of range"),
    (lambda x: ag.tile(x, (2, -1)), ValueError, r"tile: reps must be non-negative"),
    (lambda x: ag.tile(x, 2.0), TypeError, r"tile: reps must be an integer"),
    (lambda x: ag.roll(x, (1, 2), axis=(0, 1, 1)), ValueError, r"roll: shift \(1, 2\) and axis"),
    (lambda x: ag.roll(x, 1.5, axis=0), TypeError, r"roll: shift and axis must be integers"),
    (lambda x: ag.flip(x, (0, 0)), ValueError, r"flip: repeated axis"),
    (lambda x: ag.flip(x, 2), ValueError, r"flip: axis 2 is out of range"),
    (lambda x: ag.fliplr(x[0]), ValueError, r"fliplr: needs a tensor of at least 2 dimensions"),
    (lambda x: ag.flipud(x[0, 0]), ValueError, r"flipud: needs a tensor of at least 1 dimension"),
    (lambda x: ag.rot90(x, axes=(0, 0)), ValueError, r"rot90: repeated axis"),
    (lambda x: ag.rot90(x, axes=(0,)), ValueError, r"rot90: axes must name two axes"),
    (lambda x: ag.rot90(x[0]), ValueError, r"rot90: needs a tensor of at least 2 dimensions"),
    (lambda x: ag.moveaxis(x, (0, 1), 0), ValueError, r"moveaxis: source \(0, 1\) and destination 0"),
    (lambda x: ag.moveaxis(x, 0, 5), ValueError, r"moveaxis: axis 5 is out of range"),
    (lambda x: ag.transpose(x, (0, 3)), ValueError, r"transpose: axis 3 is out of range"),
    (lambda x: ag.transpose(x, (0, 0)), ValueError, r"transpose: repeated axis"),
    (lambda x: x.transpose(1), ValueError, r"transpose: axes \(1,\) are not a permutation"),
    (lambda x: ag.pad(x, 1, mode="reflect"), ValueError, r"pad: mode 'reflect' is not supported"),
    (lambda x: ag.pad(x, -1), ValueError, r"pad: pad widths must be non-negative"),
    (lambda x: ag.pad(x, 1.5), TypeError, r"pad: pad_width must be integers"),
    (lambda x: ag.pad(x, ((1, 2), (3, 4), (5, 6))), ValueError, r"pad: pad_width .* one pair per axis"),
    (lambda x: ag.tril(x[0, 0]), ValueError, r"tril: needs a tensor of at least 1 dimension"),
    (lambda x: ag.triu(x, 0.5), TypeError, r"triu: k must be an integer"),
    (lambda x: ag.split(x, 2, axis=1), ValueError, r"split: axis 1 of length 3 .* 2 equal sections"),
    (lambda x: ag.array_split(x, 0), ValueError, r"array_split: the number of sections must be positive"),
    (lambda x: ag.split(x, [1.5]), TypeError, r"split: each index must be an integer"),
    (lambda x: ag.vsplit(x[0], 1), ValueError, r"vsplit: needs a tensor of at least 2 dimensions"),
    (lambda x: ag.dsplit(x, 1), ValueError, r"dsplit: needs a tensor of at least 3 dimensions"),
    (lambda x: ag.hsplit(x[0, 0], 1), ValueError, r"hsplit: needs a tensor of at least 1 dimension"),
    (lambda x: ag.vstack([x, x[:, :2]]), ValueError, r"vstack: tensor 1 has shape \(2, 2\)"),
    (lambda x: ag.hstack([]), ValueError, r"hstack: needs at least one tensor"),
    (lambda x: ag.diff(x, -1), ValueError, r"diff: the order n must be non-negative"),
    (lambda x: ag.diff(x[0, 0]), ValueError, r"diff: needs a tensor of at least 1 dimension"),
    (lambda x: ag.diff(x, prepend=np.zeros((2, 2, 2))), ValueError, r"diff: prepend of shape \(2, 2, 2\) does not match x's shape \(2, 3\) outside axis 1"),
    (lambda x: ag.index_update(x, 0, np.zeros(2)), ValueError,
     r"index_update: values of shape \(2,\) do not broadcast to the shape \(3,\)"),
    (lambda x: ag.index_update(x, (0, 5), 1.0), IndexError, r"index 5 is out of range for axis 1"),
])
def test_bad_arguments_name_the_operation_and_the_value(call, error, message):
    with pytest.raises(error, match=message):
        call(ag.tensor(np.zeros((2, 3))))
