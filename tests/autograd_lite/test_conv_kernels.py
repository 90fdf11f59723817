"""The Numba convolution and pooling kernels held to their NumPy twins (hypothesis draws the
geometry: groups, kernel, stride, dilation, asymmetric padding, odd sizes; ties for pooling)."""
import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from autograd_lite.kernels import conv_kernels as jitted
from autograd_lite.kernels import conv_reference as twin


@st.composite
def conv_cases(draw):
    groups, cg, og = draw(st.sampled_from([1, 2, 3])), draw(st.integers(1, 3)), draw(st.integers(1, 3))
    kernel = (draw(st.integers(1, 4)), draw(st.integers(1, 4)))
    stride = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    dilation = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    padding = tuple((draw(st.integers(0, 3)), draw(st.integers(0, 3))) for _ in range(2))
    size = tuple(max(1, d * (k - 1) + 1 - sum(p)) + draw(st.integers(0, 5))
                 for k, d, p in zip(kernel, dilation, padding))
    n = draw(st.integers(1, 3))
    dtype = draw(st.sampled_from([np.float32, np.float64]))
    rng = np.random.default_rng(draw(st.integers(0, 2 ** 32 - 1)))
    x = rng.standard_normal((n, groups * cg) + size).astype(dtype)
    w = rng.standard_normal((groups * og, cg) + kernel).astype(dtype)
    return x, w, (stride, padding, dilation, groups), rng


def close(a, b):
    tol = 1e-4 if a.dtype == np.float32 else 1e-12
    assert a.dtype == b.dtype and a.shape == b.shape
    np.testing.assert_allclose(a, b, rtol=tol, atol=tol)


@given(conv_cases())
def test_conv2d_kernels_match_their_twins(case):
    x, w, geometry, rng = case
    out = twin.conv2d(x, w, *geometry)
    close(jitted.conv2d(x, w, *geometry), out)
    g = rng.standard_normal(out.shape).astype(x.dtype)
    close(jitted.conv2d_input_grad(g, w, x.shape[2:], *geometry), twin.conv2d_input_grad(g, w, x.shape[2:], *geometry))
    close(jitted.conv2d_weight_grad(x, g, w.shape[2:], *geometry), twin.conv2d_weight_grad(x, g, w.shape[2:], *geometry))


@st.composite
def pool_cases(draw):
    kernel = (draw(st.integers(1, 4)), draw(st.integers(1, 4)))
    stride = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    pads = tuple(draw(st.integers(0, k // 2)) for k in kernel)
    size = tuple(max(1, k - 2 * p) + draw(st.integers(0, 5)) for k, p in zip(kernel, pads))
    rng = np.random.default_rng(draw(st.integers(0, 2 ** 32 - 1)))
    dtype = draw(st.sampled_from([np.float32, np.float64]))
    shape = (draw(st.integers(1, 2)), draw(st.integers(1, 3))) + size
    # few distinct values: ties in most windows
    x = rng.integers(-2, 2, shape).astype(dtype) if draw(st.booleans()) else rng.standard_normal(shape).astype(dtype)
    return x, (kernel, stride, tuple((p, p) for p in pads)), rng


@given(pool_cases())
def test_max_pool_kernels_match_their_twins(case):
    x, window, rng = case
    out = twin.max_pool2d(x, *window)
    np.testing.assert_array_equal(jitted.max_pool2d(x, *window), out)
    g = rng.standard_normal(out.shape).astype(x.dtype)
    close(jitted.max_pool2d_scatter(g, x, *window), twin.max_pool2d_scatter(g, x, *window))
    h = rng.standard_normal(x.shape).astype(x.dtype)
    np.testing.assert_array_equal(jitted.max_pool2d_gather(h, x, *window), twin.max_pool2d_gather(h, x, *window))
