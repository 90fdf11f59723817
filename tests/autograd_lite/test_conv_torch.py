"""conv2d, conv1d, max_pool2d and avg_pool2d against PyTorch's outputs and gradients on the same
inputs, for strides, paddings, dilations, groups and odd sizes (skipped without torch: install
the `peers` extra)."""
import numpy as np
import pytest

import autograd_lite as ag

torch = pytest.importorskip("torch")
pytestmark = pytest.mark.filterwarnings("ignore:Using padding=.same. with even kernel lengths:UserWarning")
F = torch.nn.functional
rng = np.random.default_rng(1)


def both(fn_ag, fn_torch, *arrays):
    """The output and every input's gradient, for a random cotangent, from both libraries."""
    leaves = [ag.Tensor(a, requires_grad=True) for a in arrays]
    out = fn_ag(*leaves)
    v = rng.standard_normal(out.shape).astype(arrays[0].dtype)
    (out * v).sum().backward()
    tleaves = [torch.tensor(a, requires_grad=True) for a in arrays]
    tout = fn_torch(*tleaves)
    (tout * torch.tensor(v)).sum().backward()
    assert out.shape == tuple(tout.shape)
    return [out.data] + [t.grad for t in leaves], [tout.detach().numpy()] + [t.grad.numpy() for t in tleaves]


def assert_close(ours, theirs, dtype):
    tol = 1e-4 if dtype == np.float32 else 1e-10
    for a, b in zip(ours, theirs):
        np.testing.assert_allclose(a, b, rtol=tol, atol=tol)


@pytest.mark.parametrize("backend", ["numba", "numpy"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("shape, kernel, stride, padding, dilation, groups", [
    ((2, 3, 7, 9), (3, 3), 1, 1, 1, 1),
    ((1, 4, 8, 5), (2, 3), (2, 1), (0, 2), 1, 2),
    ((3, 6, 11, 10), (3, 2), 3, 2, (2, 1), 3),
    ((2, 2, 6, 6), (4, 4), 1, "same", 1, 1),          # even kernel: the odd pad goes at the end
    ((2, 4, 9, 7), (3, 3), 1, "same", 2, 4),          # depthwise
    ((1, 1, 5, 5), (5, 5), 2, "valid", 1, 1),
    ((4, 1, 13, 13), (5, 5), 1, 2, 1, 1),              # LeNet-like
])
def test_conv2d_matches_pytorch(backend, dtype, shape, kernel, stride, padding, dilation, groups):
    x = rng.standard_normal(shape).astype(dtype)
    w = rng.standard_normal((2 * groups, shape[1] // groups) + kernel).astype(dtype)
    b = rng.standard_normal(2 * groups).astype(dtype)
    options = dict(stride=stride, padding=padding, dilation=dilation, groups=groups)
    previous = ag.kernels.set_kernels(backend)
    try:
        ours, theirs = both(lambda x, w, b: ag.conv2d(x, w, b, **options),
                            lambda x, w, b: F.conv2d(x, w, b, **options), x, w, b)
    finally:
        ag.kernels.set_kernels(previous)
    assert_close(ours, theirs, dtype)


@pytest.mark.parametrize("stride, padding, dilation, groups", [(1, 0, 1, 1), (2, 1, 2, 2), (1, "same", 3, 1)])
def test_conv1d_matches_pytorch(stride, padding, dilation, groups):
    x = rng.standard_normal((2, 4, 13))
    w = rng.standard_normal((4, 4 // groups, 3))
    b = rng.standard_normal(4)
    options = dict(stride=stride, padding=padding, dilation=dilation, groups=groups)
    ours, theirs = both(lambda x, w, b: ag.conv1d(x, w, b, **options),
                        lambda x, w, b: F.conv1d(x, w, b, **options), x, w, b)
    assert_close(ours, theirs, np.float64)


POOLS = [((2, 3, 8, 8), 2, None, 0), ((1, 2, 7, 9), (3, 2), (2, 1), (1, 1)), ((2, 1, 5, 6), 3, 2, 1),
         ((1, 2, 4, 11), (1, 3), (1, 3), (0, 1))]


@pytest.mark.parametrize("backend", ["numba", "numpy"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("shape, kernel, stride, padding", POOLS)
def test_max_pool2d_matches_pytorch(backend, dtype, shape, kernel, stride, padding):
    x = rng.standard_normal(shape).astype(dtype)
    previous = ag.kernels.set_kernels(backend)
    try:
        ours, theirs = both(lambda x: ag.max_pool2d(x, kernel, stride, padding),
                            lambda x: F.max_pool2d(x, kernel, stride, padding), x)
    finally:
        ag.kernels.set_kernels(previous)
    assert_close(ours, theirs, dtype)


@pytest.mark.parametrize("backend", ["numba", "numpy"])
def test_max_pool2d_ties_follow_pytorch(backend):
    x = rng.integers(0, 3, (2, 2, 6, 7)).astype(np.float64)   # many ties, overlapping windows
    previous = ag.kernels.set_kernels(backend)
    try:
        ours, theirs = both(lambda x: ag.max_pool2d(x, 3, 1, 1), lambda x: F.max_pool2d(x, 3, 1, 1), x)
    finally:
        ag.kernels.set_kernels(previous)
    assert_close(ours, theirs, np.float64)


@pytest.mark.parametrize("shape, kernel, stride, padding", POOLS)
def test_avg_pool2d_matches_pytorch(shape, kernel, stride, padding):
    x = rng.standard_normal(shape)
    ours, theirs = both(lambda x: ag.avg_pool2d(x, kernel, stride, padding),
                        lambda x: F.avg_pool2d(x, kernel, stride, padding), x)
    assert_close(ours, theirs, np.float64)


def test_adaptive_avg_pool2d_matches_pytorch():
    x = rng.standard_normal((2, 3, 5, 7))
    ours, theirs = both(lambda x: ag.adaptive_avg_pool2d(x, 1), lambda x: F.adaptive_avg_pool2d(x, 1), x)
    assert_close(ours, theirs, np.float64)


def test_second_derivative_of_conv2d_matches_pytorch():
    x, w = rng.standard_normal((2, 2, 6, 6)), rng.standard_normal((3, 2, 3, 3))
    v = rng.standard_normal(w.shape)
    from autograd_lite.engine import grad
    xt, wt = ag.Tensor(x, requires_grad=True), ag.Tensor(w, requires_grad=True)
    (gw,) = grad((ag.conv2d(xt, wt, stride=2, padding=1).tanh() ** 2).sum(), [wt], create_graph=True)
    hx, hw = grad((gw * v).sum(), [xt, wt])
    tx, tw = torch.tensor(x, requires_grad=True), torch.tensor(w, requires_grad=True)
    (tgw,) = torch.autograd.grad((F.conv2d(tx, tw, stride=2, padding=1).tanh() ** 2).sum(), [tw], create_graph=True)
    thx, thw = torch.autograd.grad((tgw * torch.tensor(v)).sum(), [tx, tw])
    np.testing.assert_allclose(hx, thx.numpy(), rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(hw, thw.numpy(), rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("backend", ["numba", "numpy"])
def test_max_pool2d_nans_follow_pytorch(backend):
    x = rng.standard_normal((1, 2, 4, 6))
    x[0, 0, 0, 1] = x[0, 0, 1, 0] = x[0, 1, 2, 3] = np.nan   # two NaNs in one window: the last wins
    previous = ag.kernels.set_kernels(backend)
    try:
        ours, theirs = both(lambda x: ag.max_pool2d(x, 2), lambda x: F.max_pool2d(x, 2), x)
    finally:
        ag.kernels.set_kernels(previous)
    for a, b in zip(ours, theirs):
        np.testing.assert_array_equal(a, b)
