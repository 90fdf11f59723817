"""The Numba kernels against their NumPy twins, the switch between them, lazy compilation and
the on-disk cache, and the optimizer updates against PyTorch's conventions.

Each kernel is forced to run (its size thresholds set to 0), as the serial and as the parallel
loop, on hypothesis-drawn shapes (empty, 0-d, one element, non-contiguous views) and values
(NaN, +-inf, +-1000). They must agree with the twin to 1e-12 (float64) or 1e-5 (float32),
relative to the result, or where the result is a difference of larger terms (log_softmax,
the cross-entropies' derivatives), relative to those terms.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from contextlib import contextmanager

import numpy as np
import pytest
from hypothesis import given, strategies as st
from hypothesis.extra import numpy as hnp

import autograd_lite as ag
from autograd_lite import fused, kernels
from autograd_lite.kernels import dispatch, jitted, reference

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DTYPES = [np.float64, np.float32]
SPECIAL = [np.nan, np.inf, -np.inf, 1000.0, -1000.0, 0.0, -0.0, 1e-8, 0.05, -0.05, 30.0, -30.0]


VARIANTS = pytest.mark.parametrize("variant", ["serial", "parallel"])


@contextmanager
def forced(variant: str):
    """Every kernel runs (thresholds 0), serial or parallel, whatever the machine's load."""
    saved = dispatch.THRESHOLDS, dispatch.core_to_spare, dispatch._backend
    dispatch.THRESHOLDS = {name: (0, 0 if variant == "parallel" and hasattr(jitted, name + "_parallel")
                                  else None) for name in saved[0]}
    dispatch.core_to_spare = lambda: True
    dispatch._backend = "numba"
    try:
        yield
    finally:
        dispatch.THRESHOLDS, dispatch.core_to_spare, dispatch._backend = saved


def assert_close(actual, expected, dtype, scale=0.0):
    """|actual - expected| <= rtol (|expected| + scale), NaN where NaN, infinities equal."""
    rtol = 1e-12 if np.dtype(dtype) == np.float64 else 1e-5
    actual = np.asarray(actual)
    assert actual.shape == np.shape(expected)
    assert actual.dtype == np.dtype(dtype), f"dtype {actual.dtype}, expected {np.dtype(dtype)}"
    a, e = actual.astype(np.float64), np.asarray(expected, dtype=np.float64)
    np.testing.assert_array_equal(np.isnan(a), np.isnan(e), err_msg="NaN positions differ")
    infinite = np.isinf(e)
    np.testing.assert_array_equal(a[infinite], e[infinite], err_msg="infinities differ")
    finite = np.isfinite(e)
    bound = rtol * (np.abs(e) + np.broadcast_to(scale, e.shape)) + np.finfo(dtype).tiny
    with np.errstate(invalid="ignore"):  # inf - inf where both are infinite
        error = np.abs(a - e)
    bad = finite & ~(error <= bound)
    assert not bad.any(), (f"{bad.sum()} elements differ, worst: actual {a[bad][:3]}, "
                           f"expected {e[bad][:3]}")


def values(dtype, shape):
    elements = st.one_of(st.sampled_from(SPECIAL), st.floats(-50, 50),
                         st.floats(allow_nan=True, allow_infinity=True, width=32))
    return hnp.arrays(np.float64, shape, elements=elements).map(lambda a: a.astype(dtype))


@st.composite
def layouts(draw, dtype, min_dims=0, max_dims=3):
    """An array as drawn, or a non-contiguous view (every other row, or transposed)."""
    shape = draw(hnp.array_shapes(min_dims=min_dims, max_dims=max_dims, min_side=0, max_side=6))
    layout = draw(st.sampled_from(["contiguous", "strided", "transposed"]))
    if layout == "strided" and len(shape) >= 1:
        base = draw(values(dtype, (2 * shape[0],) + shape[1:]))
        return base[::2]
    x = draw(values(dtype, shape))
    return x.T if layout == "transposed" else x


def _quiet(fn, *args):
    with np.errstate(all="ignore"):
        return fn(*args)


# ---------------------------------------------------------------- elementwise
@VARIANTS
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", ["sigmoid", "tanh", "relu", "softplus", "log_sigmoid"])
@given(data=st.data())
def test_elementwise_kernel_equals_its_numpy_twin(variant, name, dtype, data):
    with forced(variant):
        x = data.draw(layouts(dtype))
        assert_close(getattr(kernels, name)(x), _quiet(getattr(reference, name), x), dtype)


@VARIANTS
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", ["sigmoid_backward", "tanh_backward", "relu_backward"])
@given(data=st.data())
def test_backward_kernel_equals_its_numpy_twin(variant, name, dtype, data):
    with forced(variant):
        a = data.draw(layouts(dtype))
        g = data.draw(values(dtype, a.shape))
        assert_close(getattr(kernels, name)(g, a), _quiet(getattr(reference, name), g, a), dtype)


@VARIANTS
@pytest.mark.parametrize("dtype", DTYPES)
@given(data=st.data())
def test_dropout_kernel_equals_its_numpy_twin(variant, dtype, data):
    with forced(variant):
        x = data.draw(layouts(dtype))
        u = np.random.default_rng(data.draw(st.integers(0, 99))).random(x.shape).astype(dtype)
        p = data.draw(st.sampled_from([0.0, 0.1, 0.5, 0.9, 1.0]))
        expected = np.zeros_like(x) if p == 1 else _quiet(reference.dropout, x, u, p)
        assert_close(kernels.dropout(x, u, p), expected, dtype)


# ---------------------------------------------------------------- along an axis
def _axis_scale(x, axis):
    """|x - max| along axis: the size of the terms log_softmax subtracts, element by element."""
    with np.errstate(all="ignore"):
        finite = np.where(np.isfinite(x), x, 0).astype(np.float64)
        return 1 + np.abs(finite - finite.max(axis=axis, keepdims=True)) if x.size else 0.0


def _one_axis(data, x):
    return data.draw(st.integers(0, max(x.ndim - 1, 0)))


def _axes(data, x):
    """None, or a sorted tuple of distinct axes (what ag.logsumexp hands its primitive)."""
    if x.ndim == 0:
        return None
    return data.draw(st.one_of(st.none(), st.sets(st.integers(0, x.ndim - 1)).map(
        lambda axes: tuple(sorted(axes)))))


def _call(name, x, data):
    """The kernel `name` on x with a drawn axis (and keepdims), and the same call to its twin."""
    if name == "logsumexp":
        args = (_axes(data, x), data.draw(st.booleans()))
    else:
        args = (_one_axis(data, x),)
    return _quiet(getattr(kernels, name), x, *args), _quiet(getattr(reference, name), x, *args), args


def _scale(name, x, args):
    """What the result's error is relative to, beyond the result itself."""
    if name == "log_softmax":
        return _axis_scale(x, None if x.ndim == 0 else args[0])
    return 1.0 if name == "logsumexp" else 0.0


@VARIANTS
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", ["softmax", "log_softmax", "logsumexp"])
@given(data=st.data())
def test_kernel_along_an_axis_equals_its_numpy_twin(variant, name, dtype, data):
    with forced(variant):
        x = data.draw(layouts(dtype))
        actual, expected, args = _call(name, x, data)
        assert_close(actual, expected, dtype, _scale(name, x, args))


# The table's forwards as they were before they came to call these kernels (primitives.py at
# 53c23f4): the oracle that the kernels change no result of the primitives they now serve.
def _table_softmax(x, axis):
    e = np.exp(x - np.max(x, axis=axis, keepdims=True))
    return e / np.sum(e, axis=axis, keepdims=True)


def _table_log_softmax(x, axis):
    shifted = x - np.max(x, axis=axis, keepdims=True)
    return shifted - np.log(np.sum(np.exp(shifted), axis=axis, keepdims=True))


def _table_logsumexp(x, axis, keepdims):
    if x.size == 0:
        return np.log(np.sum(np.exp(x), axis=axis, keepdims=keepdims))
    m = np.max(x, axis=axis, keepdims=True)
    m = np.where(np.isfinite(m), m, 0)
    out = np.log(np.sum(np.exp(x - m), axis=axis, keepdims=True)) + m
    if keepdims:
        return out
    return out.reshape([n for i, n in enumerate(x.shape) if axis is not None and i not in axis])


TABLE = {"softmax": _table_softmax, "log_softmax": _table_log_softmax, "logsumexp": _table_logsumexp,
         "softplus": lambda x: np.logaddexp(0, x), "log_sigmoid": lambda x: -np.logaddexp(0, -x)}


@contextmanager
def running(name: str):
    """"default": as the package runs; "numpy": the twins everywhere."""
    previous = ag.set_kernels("numpy") if name == "numpy" else None
    try:
        yield
    finally:
        if previous is not None:
            ag.set_kernels(previous)


# what the package runs by default, and the twins; the forced kernels equal the twins (above)
SETTINGS = pytest.mark.parametrize("setting", ["default", "numpy"])


@SETTINGS
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", ["softmax", "log_softmax", "logsumexp"])
@given(data=st.data())
def test_kernel_along_an_axis_gives_what_the_table_gave(setting, name, dtype, data):
    arrays = layouts(dtype, max_dims=4)
    if name != "logsumexp":   # the table's softmax refused a size-0 axis (np.max's ValueError)
        arrays = arrays.filter(lambda x: x.size)
    x = data.draw(arrays)
    with running(setting):
        actual, _, args = _call(name, x, data)
    assert_close(actual, _quiet(TABLE[name], x, *args), dtype, _scale(name, x, args))


@SETTINGS
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", ["softplus", "log_sigmoid"])
@given(data=st.data())
def test_softplus_and_log_sigmoid_give_what_logaddexp_gives(setting, name, dtype, data):
    x = data.draw(layouts(dtype, max_dims=4))
    with running(setting):
        actual = _quiet(getattr(kernels, name), x)
    assert_close(actual, _quiet(TABLE[name], x), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n", [1, 100, 3000, 10 ** 6 + 1])
def test_forwards_on_large_arrays_give_what_the_table_gave(dtype, n):
    # the sizes where the default changes implementation (twin, serial, parallel kernel)
    x = (30 * np.random.default_rng(n).standard_normal((n // 10 + 1, 10))).astype(dtype)
    for axis in (0, 1):
        assert_close(kernels.softmax(x, axis), _table_softmax(x, axis), dtype)
        assert_close(kernels.log_softmax(x, axis), _table_log_softmax(x, axis), dtype, _axis_scale(x, axis))
        for keepdims in (False, True):
            assert_close(kernels.logsumexp(x, (axis,), keepdims), _table_logsumexp(x, (axis,), keepdims),
                         dtype, 1.0)
    assert_close(kernels.logsumexp(x, None, False), _table_logsumexp(x, None, False), dtype, 1.0)
    for name in ("softplus", "log_sigmoid"):
        assert_close(getattr(kernels, name)(x), TABLE[name](x), dtype)


@VARIANTS
@pytest.mark.parametrize("dtype", DTYPES)
def test_softmax_family_at_the_edges(variant, dtype):
    with forced(variant):
        for axis in (0, -1, 3):                  # a 0-d array: the axis is not looked at
            one = np.array(2.5, dtype)
            assert kernels.softmax(one, axis) == 1 and kernels.softmax(one, axis).dtype == dtype
            assert kernels.log_softmax(one, axis) == 0 and kernels.log_softmax(one, axis).shape == ()
        for shape, axis in [((2, 0), 1), ((0, 3), 0), ((0, 3), 1), ((3, 0, 2), 1)]:
            empty = np.zeros(shape, dtype)
            for name in ("softmax", "log_softmax"):
                out = getattr(kernels, name)(empty, axis)
                assert out.shape == shape and out.dtype == dtype
            with np.errstate(all="raise"):   # no warning for the empty sums
                sums = kernels.logsumexp(empty, (axis,), False)
            assert sums.dtype == dtype
            np.testing.assert_array_equal(sums, np.full(shape[:axis] + shape[axis + 1:], -np.inf))
        with np.errstate(divide="ignore"):
            minus_inf = np.full((2, 3), -np.inf, dtype)
            for axis in [(0,), (1,), (0, 1), None]:
                assert np.all(kernels.logsumexp(minus_inf, axis, False) == -np.inf)


@VARIANTS
@pytest.mark.parametrize("dtype", DTYPES)
def test_softmax_family_is_stable_at_plus_minus_1000_along_any_axis(variant, dtype):
    z = np.array([[1000.0, -1000.0, 0.0], [-1000.0, -1000.0, -1000.0]], dtype)
    rtol = 1e-15 if dtype == np.float64 else 1e-7
    with forced(variant):
        for axis, t in [(1, lambda a: a), (0, lambda a: a.T)]:
            zt = np.ascontiguousarray(t(z))       # the same rows, along the other axis
            np.testing.assert_allclose(t(kernels.softmax(zt, axis)), [[1, 0, 0], [1 / 3, 1 / 3, 1 / 3]],
                                       rtol=rtol, atol=1e-30)
            np.testing.assert_allclose(t(kernels.log_softmax(zt, axis)),
                                       [[0, -2000, -1000], [-np.log(3)] * 3], rtol=rtol)
            np.testing.assert_allclose(kernels.logsumexp(zt, (axis,), False),
                                       [1000.0, -1000.0 + np.log(3)], rtol=rtol)
        np.testing.assert_allclose(kernels.logsumexp(z, None, False), 1000.0, rtol=rtol)


def test_the_row_kernels_run_for_the_last_axis_only():
    x = np.ones((4, 5))
    with forced("serial"):
        assert dispatch.by_rows("softmax", x, 1, reduce=False) is not None
        assert dispatch.by_rows("softmax", x.T, 1, reduce=False) is not None     # copied first
        assert dispatch.by_rows("softmax", x, 0, reduce=False) is None
        assert dispatch.by_rows("logsumexp", np.ones((4, 0)), 1, reduce=True) is None
        assert dispatch.by_rows("softmax", np.array(1.0), 0, reduce=False) is None


@VARIANTS
@pytest.mark.parametrize("dtype", DTYPES)
@given(data=st.data())
def test_softmax_cross_entropy_kernel_equals_its_numpy_twin(variant, dtype, data):
    with forced(variant):
        logits = data.draw(layouts(dtype, min_dims=2, max_dims=2).filter(lambda z: z.shape[1] > 0))
        labels = data.draw(hnp.arrays(np.int64, logits.shape[0], elements=st.integers(0, logits.shape[1] - 1)))
        losses, delta = kernels.softmax_cross_entropy(logits, labels)
        twin_losses, twin_delta = _quiet(reference.softmax_cross_entropy, logits, labels)
        assert_close(losses, twin_losses, dtype, scale=1.0 + _axis_scale(logits, 1)[np.arange(len(labels)), labels]
                     if logits.size else 0.0)
        onehot = np.zeros(logits.shape)
        onehot[np.arange(len(labels)), labels] = 1
        assert_close(delta, twin_delta, dtype, scale=onehot)   # softmax - 1 at the label


@VARIANTS
@pytest.mark.parametrize("dtype", DTYPES)
@given(data=st.data())
def test_bce_with_logits_kernel_equals_its_numpy_twin(variant, dtype, data):
    with forced(variant):
        logits = data.draw(layouts(dtype, min_dims=1, max_dims=2))
        targets = data.draw(hnp.arrays(np.float64, logits.shape, elements=st.floats(0, 1))).astype(dtype)
        losses, delta = kernels.bce_with_logits(logits, targets)
        twin_losses, twin_delta = _quiet(reference.bce_with_logits, logits, targets)
        with np.errstate(all="ignore"):  # softplus(z) - z y: terms as large as |z| (1 + y)
            terms = 1 + 2 * np.abs(logits.astype(np.float64))
            terms = terms.reshape(len(logits), -1 if logits.size else 0).sum(axis=1)
        assert_close(losses, twin_losses, dtype, scale=terms)
        assert_close(delta, twin_delta, dtype, scale=targets)  # sigmoid(z) - y


@pytest.mark.parametrize("dtype", DTYPES)
@given(data=st.data())
def test_bce_with_logits_loss_is_the_twins_reduced_loss_and_derivative_in_one_buffer(dtype, data):
    shape = data.draw(hnp.array_shapes(min_dims=1, max_dims=2, min_side=1, max_side=40))
    logits = data.draw(hnp.arrays(np.float64, shape, elements=st.floats(-1000, 1000))).astype(dtype)
    targets = data.draw(hnp.arrays(np.float64, shape, elements=st.floats(0, 1))).astype(dtype)
    rows = data.draw(st.sampled_from([0, shape[0]]))   # "sum", "mean"
    with forced("serial"):
        buffer = kernels.bce_with_logits_loss(logits, targets, rows)
    twin_losses, twin_delta = reference.bce_with_logits(logits, targets)
    terms = (1 + 2 * np.abs(logits.astype(np.float64))).sum()   # softplus(z) - z y: terms of |z| (1 + y)
    divisor = rows or 1
    assert buffer.shape == (1 + logits.size,) and buffer.dtype == dtype
    assert_close(buffer[0], twin_losses.astype(np.float64).sum() / divisor, dtype, scale=terms / divisor)
    assert_close(buffer[1:].reshape(shape), twin_delta, dtype, scale=targets)


def test_bce_with_logits_loss_declines_what_its_kernel_does_not_take_and_refuses_bad_targets():
    z, y = np.zeros((4, 3)), np.full((4, 3), 0.5)
    with forced("serial"):
        assert kernels.bce_with_logits_loss(z[:, :2], y[:, :2], 4) is None      # not contiguous
        assert kernels.bce_with_logits_loss(z, y.astype(np.float32), 4) is None  # two dtypes
        assert kernels.bce_with_logits_loss(z[:0], y[:0], 0) is None            # empty
        y[2, 1] = 1.5
        with pytest.raises(ValueError, match=r"bce_with_logits: targets must be in \[0, 1\]"):
            kernels.bce_with_logits_loss(z, y, 4)


@pytest.mark.parametrize("dtype", DTYPES)
@given(data=st.data())
def test_softmax_cross_entropy_loss_is_the_twins_reduced_loss_and_derivative_in_one_buffer(dtype, data):
    n, c = data.draw(st.integers(1, 40)), data.draw(st.integers(1, 12))
    logits = data.draw(hnp.arrays(np.float64, (n, c), elements=st.floats(-1000, 1000))).astype(dtype)
    labels = np.asarray(data.draw(st.lists(st.integers(0, c - 1), min_size=n, max_size=n)), np.intp)
    rows = data.draw(st.sampled_from([0, n]))   # "sum", "mean"
    with forced("serial"):
        buffer = kernels.softmax_cross_entropy_loss(logits, labels, rows)
    twin_losses, twin_delta = reference.softmax_cross_entropy(logits, labels)
    terms = (1 + 2 * np.abs(logits.astype(np.float64))).sum()   # logsumexp(z) - z[label]
    divisor = rows or 1
    assert buffer.shape == (1 + logits.size,) and buffer.dtype == dtype
    assert_close(buffer[0], twin_losses.astype(np.float64).sum() / divisor, dtype, scale=terms / divisor)
    assert_close(buffer[1:].reshape(n, c), twin_delta, dtype, scale=1.0)


def test_softmax_cross_entropy_loss_refuses_a_label_by_name_and_declines_other_arrays():
    z = np.zeros((4, 3))
    with forced("serial"):
        with pytest.raises(ValueError, match=r"label 3 is outside 0\.\.2 .*C = 3"):
            kernels.softmax_cross_entropy_loss(z, np.array([0, 1, 3, 2], np.intp), 4)
        with pytest.raises(ValueError, match=r"label -1 is outside 0\.\.2"):
            kernels.softmax_cross_entropy_loss(z, np.array([0, -1, 1, 2], np.intp), 4)
        assert kernels.softmax_cross_entropy_loss(z, np.array([0, 1, 1, 2], np.int8), 4) is None
        assert kernels.softmax_cross_entropy_loss(z.T, np.array([0, 1, 1], np.intp), 3) is None
        assert kernels.softmax_cross_entropy_loss(z[:0], np.array([], np.intp), 0) is None


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("size", [0, 1, 511, 512, 513, 78_400])
def test_sum_of_squares_is_the_float64_sum_whatever_the_chunks(dtype, size):
    import math
    x = np.random.default_rng(size).standard_normal(size).astype(dtype) * 3
    exact = math.fsum(float(v) ** 2 for v in x)   # each float32 square is exact in float64
    with forced("serial"):
        total = kernels.sum_of_squares(x.reshape(-1, 1) if size else x)
    assert isinstance(total, float)
    assert abs(total - exact) <= 1e-14 * exact


@VARIANTS
def test_cross_entropy_kernels_are_stable_at_plus_minus_1000(variant):
    with forced(variant):
        z = np.array([[1000.0, -1000.0, 0.0], [-1000.0, -1000.0, -1000.0]])
        losses, delta = kernels.softmax_cross_entropy(z, np.array([1, 0]))
        np.testing.assert_allclose(losses, [2000.0, np.log(3)], rtol=1e-15)
        np.testing.assert_allclose(delta, [[1, -1, 0], [-2 / 3, 1 / 3, 1 / 3]], rtol=1e-15, atol=1e-300)
        losses, delta = kernels.bce_with_logits(np.array([1000.0, -1000.0]), np.array([0.0, 0.0]))
        np.testing.assert_allclose(losses, [1000.0, 0.0], atol=1e-300)
        np.testing.assert_allclose(delta, [1.0, 0.0], atol=1e-300)


def test_a_label_outside_the_classes_is_refused_by_name():
    with pytest.raises(ValueError, match=r"label 7 is outside 0\.\.2 .*C = 3"):
        kernels.softmax_cross_entropy(np.zeros((2, 3)), np.array([0, 7]))
    with pytest.raises(ValueError, match="label -1"):
        kernels.softmax_cross_entropy(np.zeros((2, 3)), np.array([-1, 0]))
    with pytest.raises(TypeError, match="integers"):
        kernels.softmax_cross_entropy(np.zeros((2, 3)), np.array([0.0, 1.0]))


# ---------------------------------------------------------------- the linear layer
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("activation", kernels.ACTIVATIONS)
@given(batch=st.integers(0, 9), n_in=st.integers(1, 7), n_out=st.integers(1, 12),
       with_bias=st.booleans(), seed=st.integers(0, 99))
@VARIANTS
def test_linear_and_its_backward_equal_their_numpy_twins(variant, activation, dtype, batch, n_in,
                                                         n_out, with_bias, seed):
    with forced(variant):
        rng = np.random.default_rng(seed)
        x = (3 * rng.standard_normal((batch, n_in))).astype(dtype)
        W, g = rng.standard_normal((n_in, n_out)).astype(dtype), rng.standard_normal((batch, n_out)).astype(dtype)
        b = rng.standard_normal(n_out).astype(dtype) if with_bias else None
        a = kernels.linear(x, W, b, activation)
        terms = np.abs(x) @ np.abs(W) + (0 if b is None else np.abs(b))  # what z = x W + b sums
        assert_close(a, reference.linear(x, W, b, activation), dtype, scale=terms)
        delta = reference.activation_backward(g, a, activation)
        size = np.abs(delta)                     # sums of products: errors relative to |terms|
        for got, want, scale in zip(kernels.linear_backward(g, a, x, W, activation),
                                    (delta @ W.T, x.T @ delta, delta.sum(axis=0)),
                                    (size @ np.abs(W.T), np.abs(x.T) @ size, size.sum(axis=0))):
            assert_close(got, want, dtype, scale=scale)


def test_linear_refuses_an_unknown_activation_and_a_wrong_bias():
    with pytest.raises(ValueError, match="activation must be one of"):
        kernels.linear(np.ones((2, 3)), np.ones((3, 4)), None, "softmax")
    with pytest.raises(ValueError, match=r"bias has shape \(3,\), expected \(4,\)"):
        kernels.linear(np.ones((2, 3)), np.ones((3, 4)), np.ones(3), "relu")


def test_float32_sigmoid_kernel_is_within_two_ulp_everywhere():
    # float32 inputs run a float32 polynomial (twice the SIMD lanes of float64): check it against
    # float64 over the whole range, the subnormal tail and the special values
    x = np.concatenate([np.linspace(-110, 110, 400_001), np.linspace(-1e-3, 1e-3, 1001),
                        [0.0, -0.0, np.inf, -np.inf, np.nan, 1e-30, -1e-30, 88.0, -88.0, -103.9,
                         -200.0, 200.0]]).astype(np.float32)
    out = np.empty_like(x)
    jitted.sigmoid(x, out)
    exact = 1 / (1 + np.exp(-x.astype(np.float64)))
    normal = exact >= np.finfo(np.float32).tiny
    ulp = np.spacing(exact[normal].astype(np.float32)).astype(np.float64)
    assert np.max(np.abs(out[normal] - exact[normal]) / ulp) <= 2
    assert np.max(np.abs(out[~normal & ~np.isnan(x)] - exact[~normal & ~np.isnan(x)])) <= 2 * 1.4e-45
    assert np.isnan(out[np.isnan(x)]).all()
    assert out[x == np.inf].tolist() == [1.0] and out[x == -np.inf].tolist() == [0.0]
    z = x[:1000].reshape(10, 100).copy()
    jitted.bias_sigmoid(z, np.zeros(100, np.float32))
    np.testing.assert_array_equal(z.reshape(-1), out[:1000])


@pytest.mark.parametrize("dtype", DTYPES)
def test_add_scaled_equals_its_numpy_twin_and_refuses_bad_arrays(dtype):
    rng = np.random.default_rng(3)
    total, x = rng.standard_normal(5000).astype(dtype), rng.standard_normal(5000).astype(dtype)
    twin = total.copy()
    with forced("serial"):
        kernels.add_scaled(total, 0.3, x)
    reference.add_scaled(twin, 0.3, x)
    assert_close(total, twin, dtype)
    grid, twin = total.reshape(50, 100), twin.reshape(50, 100)   # any shape, in place
    with forced("serial"):
        kernels.add_scaled(grid, -2.0, x.reshape(50, 100))
    reference.add_scaled(twin, -2.0, x.reshape(50, 100))
    assert_close(grid, twin, dtype)
    with pytest.raises(ValueError, match=r"add_scaled: total must be a writable array of x's shape"):
        kernels.add_scaled(total, 0.3, x[:10])
    frozen = total.copy()
    frozen.flags.writeable = False
    with pytest.raises(ValueError, match="writable"):
        kernels.add_scaled(frozen, 0.3, x)


# ---------------------------------------------------------------- optimizer updates
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("momentum, nesterov, weight_decay",
                         [(0.0, False, 0.0), (0.9, False, 0.0), (0.9, True, 1e-2), (0.5, False, 1e-3)])
def test_sgd_update_equals_its_numpy_twin(dtype, momentum, nesterov, weight_decay):
    with forced("serial"):  # no parallel version
        rng = np.random.default_rng(0)
        param, velocity = rng.standard_normal(1001).astype(dtype), np.zeros(1001, dtype)
        twin_param, twin_velocity = param.copy(), velocity.copy()
        for _ in range(3):
            grad = rng.standard_normal(1001).astype(dtype)
            kernels.sgd_update(param, grad, velocity, 0.1, momentum, nesterov, weight_decay)
            reference.sgd_update(twin_param, grad, twin_velocity, 0.1, momentum, nesterov, weight_decay)
        assert_close(param, twin_param, dtype)
        assert_close(velocity, twin_velocity, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("weight_decay", [0.0, 1e-2])
def test_adam_update_equals_its_numpy_twin(dtype, weight_decay):
    with forced("serial"):  # no parallel version
        rng = np.random.default_rng(1)
        param = rng.standard_normal(1001).astype(dtype)
        m, v = np.zeros(1001, dtype), np.zeros(1001, dtype)
        twin = [param.copy(), m.copy(), v.copy()]
        for step in range(1, 4):
            grad = rng.standard_normal(1001).astype(dtype)
            kernels.adam_update(param, grad, m, v, step, 1e-2, 0.9, 0.999, 1e-8, weight_decay)
            reference.adam_update(twin[0], grad, twin[1], twin[2], step, 1e-2, 0.9, 0.999, 1e-8, weight_decay)
        for got, want in zip((param, m, v), twin):
            assert_close(got, want, dtype)


def test_adam_first_step_moves_each_parameter_by_lr_against_the_gradient_sign():
    with forced("serial"):  # no parallel version
        # after one step m_hat = g and v_hat = g**2, so the step is lr * g / (|g| + eps)
        param, grad = np.array([1.0, -2.0, 3.0]), np.array([0.5, -4.0, 1e-3])
        kernels.adam_update(param, grad, np.zeros(3), np.zeros(3), 1, lr=0.1, eps=1e-8)
        np.testing.assert_allclose(param, [1.0 - 0.1 * 0.5 / (0.5 + 1e-8), -2.0 + 0.1 * 4 / (4 + 1e-8),
                                           3.0 - 0.1 * 1e-3 / (1e-3 + 1e-8)], rtol=1e-12)


def test_optimizer_updates_follow_pytorch():
    with forced("serial"):  # no parallel version
        torch = pytest.importorskip("torch")
        rng = np.random.default_rng(2)
        start, grads = rng.standard_normal(50), [rng.standard_normal(50) for _ in range(4)]
        for make, ours in [
            (lambda p: torch.optim.SGD([p], lr=0.1, momentum=0.9, nesterov=True, weight_decay=0.01),
             lambda p, g, s, t: kernels.sgd_update(p, g, s[0], 0.1, 0.9, True, 0.01)),
            (lambda p: torch.optim.SGD([p], lr=0.1, momentum=0.8, weight_decay=0.0),
             lambda p, g, s, t: kernels.sgd_update(p, g, s[0], 0.1, 0.8, False, 0.0)),
            (lambda p: torch.optim.Adam([p], lr=0.01, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.05),
             lambda p, g, s, t: kernels.adam_update(p, g, s[0], s[1], t, 0.01, 0.8, 0.99, 1e-6, 0.05)),
        ]:
            p_torch = torch.tensor(start.copy(), requires_grad=True)
            optimizer = make(p_torch)
            param, state = start.copy(), [np.zeros(50), np.zeros(50)]
            for step, g in enumerate(grads, start=1):
                p_torch.grad = torch.tensor(g)
                optimizer.step()
                ours(param, g, state, step)
            np.testing.assert_allclose(param, p_torch.detach().numpy(), rtol=1e-12, atol=1e-14)


def test_optimizer_updates_refuse_mismatched_state():
    with pytest.raises(ValueError, match=r"velocity has shape \(3,\), param \(4,\)"):
        kernels.sgd_update(np.zeros(4), np.zeros(4), np.zeros(3), 0.1, 0.9)
    with pytest.raises(ValueError, match="needs a velocity"):
        kernels.sgd_update(np.zeros(4), np.zeros(4), None, 0.1, 0.9)
    with pytest.raises(ValueError, match="step counts updates from 1"):
        kernels.adam_update(np.zeros(4), np.zeros(4), np.zeros(4), np.zeros(4), 0)


def test_updates_of_non_contiguous_parameters_happen_in_place():
    with forced("serial"):  # no parallel version
        param = np.arange(12.0).reshape(3, 4).T            # a transposed view: the twin updates it
        kernels.sgd_update(param, np.ones((4, 3)), None, 0.5)
        np.testing.assert_array_equal(param, np.arange(12.0).reshape(3, 4).T - 0.5)


@pytest.mark.parametrize("dtype", DTYPES)
def test_the_many_updates_give_each_parameter_the_bits_of_its_own_update_and_compile_nothing_new(dtype):
    # they call the per-parameter kernels: a new number of parameters compiles nothing (a kernel
    # over a tuple of arrays would be compiled anew for each length, ~0.4 s cold each)
    with forced("serial"):
        rng = np.random.default_rng(5)
        compiled = None
        for count in (1, 3, 4, 5, 11):
            sizes = rng.integers(0, 20, count)
            grads = [rng.standard_normal(n).astype(dtype) for n in sizes]
            sgd = [[rng.standard_normal(n).astype(dtype) for n in sizes], [np.zeros(n, dtype) for n in sizes]]
            adam = [[p.copy() for p in sgd[0]], [np.zeros(n, dtype) for n in sizes],
                    [np.zeros(n, dtype) for n in sizes]]
            twins = [[a.copy() for a in group] for group in sgd + adam]
            steps = [1 + k % 3 for k in range(count)]
            for _ in range(2):
                assert kernels.sgd_update_many(sgd[0], grads, sgd[1], 0.1, 0.9, True, 1e-2)
                assert kernels.adam_update_many(adam[0], grads, adam[1], adam[2], steps, 1e-2, 0.9,
                                                0.99, 1e-8, 1e-3)
                for k in range(count):
                    kernels.sgd_update(twins[0][k], grads[k], twins[1][k], 0.1, 0.9, True, 1e-2)
                    kernels.adam_update(twins[2][k], grads[k], twins[3][k], twins[4][k], steps[k],
                                        1e-2, 0.9, 0.99, 1e-8, 1e-3)
                steps = [t + 1 for t in steps]
            for got, want in zip(sgd + adam, twins):
                assert all(np.array_equal(a, b) for a, b in zip(got, want))
            signatures = (len(jitted.sgd_update.signatures), len(jitted.adam_update.signatures))
            assert compiled in (None, signatures)
            compiled = signatures


@pytest.mark.parametrize("count", [1, 5])
def test_the_many_updates_refuse_a_size_mismatch_before_changing_any_parameter(count):
    if kernels.get_kernels() != "numba":
        pytest.skip("the *_many updates run only with the Numba kernels")
    params = [np.zeros(3) for _ in range(count)]
    grads = [np.ones(3)] * (count - 1) + [np.ones(2)]
    with pytest.raises(ValueError, match="sgd_update_many: a gradient .*another size than its parameter"):
        kernels.sgd_update_many(params, grads, None, 0.1)
    moments = [np.zeros(3) for _ in range(count)]
    with pytest.raises(ValueError, match="adam_update_many: a gradient .*another size than its parameter"):
        kernels.adam_update_many(params, grads, moments, moments, [1] * count)
    assert not any(p.any() for p in params) and not any(m.any() for m in moments)
    # float32 beside float64: declined, nothing changed, the caller updates one by one
    assert not kernels.sgd_update_many([params[0], np.zeros(3, np.float32)], [np.ones(3)] * 2, None, 0.1)
    assert not params[0].any()


# ---------------------------------------------------------------- the switch
def test_set_kernels_runs_the_numpy_twins_and_returns_the_previous_setting(monkeypatch):
    monkeypatch.setattr(dispatch, "THRESHOLDS", {name: (0, None) for name in dispatch.THRESHOLDS})
    previous = ag.set_kernels("numpy")
    try:
        assert ag.get_kernels() == "numpy"
        assert dispatch.kernel("sigmoid", np.ones(10 ** 6)) is None
        x = np.linspace(-5, 5, 101)
        np.testing.assert_array_equal(kernels.sigmoid(x), reference.sigmoid(x))
    finally:
        assert ag.set_kernels(previous) == "numpy"
    assert ag.get_kernels() == previous


def test_set_kernels_refuses_an_unknown_name():
    with pytest.raises(ValueError, match=r"expected one of \('numba', 'numpy'\), got 'cuda'"):
        ag.set_kernels("cuda")


def _python(code: str, **env: str) -> subprocess.CompletedProcess:
    environment = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""), **env)
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=environment,
                          cwd=ROOT, timeout=300)


def test_environment_variable_chooses_the_implementation():
    shown = _python("import autograd_lite as ag; print(ag.get_kernels())", AUTOGRAD_LITE_KERNELS="numpy")
    assert shown.stdout.strip() == "numpy", shown.stderr
    # an unknown value: tests/autograd_lite/test_hostile_core.py


def test_import_compiles_nothing_and_first_use_compiles_one_signature(tmp_path):
    code = """
import sys, json
import numpy as np
import autograd_lite as ag
after_import = "numba" in sys.modules
ag.relu(ag.tensor(np.ones(10)))                         # small: the NumPy twin, still no Numba
after_small = "numba" in sys.modules
import numba
from autograd_lite.kernels import jitted
dispatchers = [v for v in vars(jitted).values() if isinstance(v, numba.core.dispatcher.Dispatcher)]
compiled_before = sum(len(d.signatures) for d in dispatchers)
x = np.ones(100_000)
ag.kernels.sigmoid(x)
compiled_after = {d.py_func.__name__: d.signatures for d in dispatchers if d.signatures}
print(json.dumps([after_import, after_small, len(dispatchers), compiled_before,
                  list(compiled_after), compiled_after["sigmoid"] == [(numba.typeof(x),) * 2]]))
"""
    result = _python(code, NUMBA_CACHE_DIR=str(tmp_path), AUTOGRAD_LITE_KERNELS="numba")
    assert result.returncode == 0, result.stderr
    after_import, after_small, n_kernels, compiled_before, compiled, one_signature = json.loads(result.stdout)
    assert not after_import and not after_small
    assert n_kernels > 20 and compiled_before == 0
    assert compiled == ["sigmoid"] and one_signature


def test_a_second_process_loads_the_compiled_kernels_from_the_disk_cache(tmp_path):
    code = """
import numpy as np
from autograd_lite import kernels
kernels.THRESHOLDS["sigmoid_backward"] = (0, None)
kernels.sigmoid_backward(np.ones(3, np.float32), np.ones(3, np.float32))
from autograd_lite.kernels import jitted
print(sum(jitted.sigmoid_backward.stats.cache_hits.values()),
      sum(jitted.sigmoid_backward.stats.cache_misses.values()))
"""
    first = _python(code, NUMBA_CACHE_DIR=str(tmp_path), AUTOGRAD_LITE_KERNELS="numba")
    second = _python(code, NUMBA_CACHE_DIR=str(tmp_path), AUTOGRAD_LITE_KERNELS="numba")
    assert first.returncode == 0 and second.returncode == 0, first.stderr + second.stderr
    assert first.stdout.split() == ["0", "1"]            # compiled, and written to the cache
    assert second.stdout.split() == ["1", "0"]           # loaded, not compiled


# ---------------------------------------------------------------- a whole training step
def _training_step(dtype, backend):
    """One step of a 2-layer MLP (fused linear, dropout, softmax cross-entropy, Adam + SGD)."""
    previous = ag.set_kernels(backend)
    try:
        rng = np.random.default_rng(0)
        x = rng.standard_normal((64, 30)).astype(dtype)
        labels = rng.integers(0, 10, 64)
        W1 = ag.tensor(0.3 * rng.standard_normal((30, 40)), dtype=dtype, requires_grad=True)
        b1 = ag.tensor(np.zeros(40), dtype=dtype, requires_grad=True)
        W2 = ag.tensor(0.3 * rng.standard_normal((40, 10)), dtype=dtype, requires_grad=True)
        b2 = ag.tensor(np.zeros(10), dtype=dtype, requires_grad=True)
        h = fused.dropout(fused.linear(x, W1, b1, "tanh"), 0.2, np.random.default_rng(1))
        loss = fused.softmax_cross_entropy(fused.linear(ag.sigmoid(h), W2, b2), labels)
        loss.backward()
        for p in (W1, b1):
            kernels.adam_update(p.data, p.grad.data, np.zeros_like(p.data), np.zeros_like(p.data), 1,
                                lr=0.01, weight_decay=1e-4)
        for p in (W2, b2):
            kernels.sgd_update(p.data, p.grad.data, np.zeros_like(p.data), 0.1, 0.9, True, 1e-4)
        return [loss.data] + [p.data for p in (W1, b1, W2, b2)]
    finally:
        ag.set_kernels(previous)


@VARIANTS
@pytest.mark.parametrize("dtype", DTYPES)
def test_an_mlp_training_step_gives_the_same_parameters_with_either_setting(variant, dtype):
    with forced(variant):
        for with_kernels, with_twins in zip(_training_step(dtype, "numba"), _training_step(dtype, "numpy")):
            assert_close(with_kernels, with_twins, dtype, scale=1.0)
