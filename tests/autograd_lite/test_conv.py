"""conv2d, conv1d and the pooling functions: shapes, padding modes, ties, dtypes, second
derivatives through the public functions, and the one-sentence argument errors. (Each primitive's
rules are checked against finite differences by the table-driven tests; PyTorch's outputs and
gradients in test_conv_torch.py.)"""
import numpy as np
import pytest

import autograd_lite as ag
from autograd_lite.engine import grad
from autograd_lite.gradcheck import gradcheck

rng = np.random.default_rng(0)


def naive_conv2d(x, w, stride, padding, dilation, groups):
    """The definition, one output element at a time."""
    n, c, h, wd = x.shape
    o, cg, kh, kw = w.shape
    xp = np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    ho = (h + 2 * padding - dilation * (kh - 1) - 1) // stride + 1
    wo = (wd + 2 * padding - dilation * (kw - 1) - 1) // stride + 1
    out = np.zeros((n, o, ho, wo))
    og = o // groups
    for b in range(n):
        for k in range(o):
            first = (k // og) * cg
            for i in range(ho):
                for j in range(wo):
                    window = xp[b, first:first + cg, i * stride:i * stride + dilation * (kh - 1) + 1:dilation,
                                j * stride:j * stride + dilation * (kw - 1) + 1:dilation]
                    out[b, k, i, j] = np.sum(window * w[k])
    return out


@pytest.mark.parametrize("backend", ["numba", "numpy"])
@pytest.mark.parametrize("stride, padding, dilation, groups", [(1, 0, 1, 1), (2, 1, 1, 1), (1, 2, 2, 2),
                                                               (3, 1, 2, 2), (2, 0, 1, 4)])
def test_conv2d_matches_the_definition(backend, stride, padding, dilation, groups):
    x = rng.standard_normal((2, 4, 9, 8))
    w = rng.standard_normal((4, 4 // groups, 3, 2))
    previous = ag.kernels.set_kernels(backend)
    try:
        out = ag.conv2d(x, w, stride=stride, padding=padding, dilation=dilation, groups=groups)
    finally:
        ag.kernels.set_kernels(previous)
    np.testing.assert_allclose(out.data, naive_conv2d(x, w, stride, padding, dilation, groups),
                               rtol=1e-12, atol=1e-12)


def test_same_padding_keeps_the_size_and_puts_an_odd_pad_at_the_end():
    x = rng.standard_normal((1, 2, 6, 7))
    w = rng.standard_normal((3, 2, 4, 3))           # even kernel height: 3 rows of padding, 1 + 2
    out = ag.conv2d(x, w, padding="same").data
    assert out.shape == (1, 3, 6, 7)
    xp = np.pad(x, ((0, 0), (0, 0), (1, 2), (1, 1)))
    np.testing.assert_allclose(out, naive_conv2d(xp, w, 1, 0, 1, 1), rtol=1e-12, atol=1e-12)
    assert ag.conv2d(x, w, padding="valid").shape == (1, 3, 3, 5)


def test_bias_is_added_per_output_channel():
    x, w, b = rng.standard_normal((2, 1, 5, 5)), rng.standard_normal((3, 1, 3, 3)), np.array([1.0, -2.0, 5.0])
    np.testing.assert_allclose(ag.conv2d(x, w, b).data, ag.conv2d(x, w).data + b.reshape(3, 1, 1), rtol=1e-14)


def test_conv1d_is_conv2d_of_height_one():
    x, w, b = rng.standard_normal((2, 4, 11)), rng.standard_normal((6, 2, 3)), rng.standard_normal(6)
    out = ag.conv1d(x, w, b, stride=2, padding=1, dilation=2, groups=2)
    expected = ag.conv2d(x[:, :, None, :], w[:, :, None, :], b, stride=(1, 2), padding=(0, 1),
                         dilation=(1, 2), groups=2)
    assert out.shape == (2, 6, 5)
    np.testing.assert_allclose(out.data, expected.data[:, :, 0, :], rtol=1e-14)
    assert ag.conv1d(x, w, groups=2, padding="same").shape == (2, 6, 11)


def test_max_pool2d_gives_the_gradient_to_the_first_of_tied_maxima():
    x = ag.Tensor(np.array([[[[1.0, 3.0, 3.0, 0.0],
                              [3.0, 2.0, 1.0, 3.0]]]]), requires_grad=True)
    out = ag.max_pool2d(x, 2)
    np.testing.assert_array_equal(out.data, [[[[3.0, 3.0]]]])
    out.sum().backward()
    np.testing.assert_array_equal(x.grad, [[[[0, 1, 1, 0], [0, 0, 0, 0]]]])


@pytest.mark.parametrize("backend", ["numba", "numpy"])
def test_max_pool2d_with_padding_and_overlap(backend):
    x = rng.standard_normal((2, 3, 7, 6))
    previous = ag.kernels.set_kernels(backend)
    try:
        out = ag.max_pool2d(x, (3, 2), stride=(2, 1), padding=(1, 1)).data
    finally:
        ag.kernels.set_kernels(previous)
    xp = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)), constant_values=-np.inf)
    expected = np.array([[[[xp[n, c, 2 * i:2 * i + 3, j:j + 2].max() for j in range(7)] for i in range(4)]
                          for c in range(3)] for n in range(2)])
    np.testing.assert_array_equal(out, expected)


def test_avg_pool2d_counts_the_padding():
    x = np.ones((1, 1, 2, 2))
    out = ag.avg_pool2d(x, 2, stride=1, padding=1).data
    np.testing.assert_allclose(out[0, 0], [[0.25, 0.5, 0.25], [0.5, 1.0, 0.5], [0.25, 0.5, 0.25]])


def test_adaptive_avg_pool2d_to_one_is_the_channel_mean():
    x = rng.standard_normal((2, 3, 4, 5))
    out = ag.adaptive_avg_pool2d(x, 1)
    assert out.shape == (2, 3, 1, 1)
    np.testing.assert_allclose(out.data[..., 0, 0], x.mean(axis=(2, 3)), rtol=1e-14)
    with pytest.raises(NotImplementedError, match="adaptive_avg_pool2d: output_size 2"):
        ag.adaptive_avg_pool2d(x, 2)


@pytest.mark.parametrize("op", [
    lambda x, w, b: ag.conv2d(x, w, b, stride=2, padding=1, groups=2),
    lambda x, w, b: ag.max_pool2d(ag.conv2d(x, w, padding="same", groups=2), 2, stride=1).tanh(),
    lambda x, w, b: ag.avg_pool2d(x, 3, stride=2, padding=1) * 2.0,
])
def test_float32_stays_float32(op):
    x = ag.Tensor(rng.standard_normal((2, 4, 7, 7)).astype(np.float32), requires_grad=True)
    w = ag.Tensor(rng.standard_normal((2, 2, 3, 3)).astype(np.float32), requires_grad=True)
    b = ag.Tensor(rng.standard_normal(2).astype(np.float32), requires_grad=True)
    out = op(x, w, b)
    assert out.dtype == np.float32
    out.sum().backward()
    assert x.grad.dtype == np.float32


def test_gradients_of_the_public_functions_match_finite_differences():
    x, w, b = rng.standard_normal((2, 2, 5, 6)), rng.standard_normal((2, 1, 3, 2)), rng.standard_normal(2)
    assert gradcheck(lambda x, w, b: ag.conv2d(x, w, b, stride=(2, 1), padding="valid", groups=2), x, w, b)
    assert gradcheck(lambda x, w: ag.conv1d(x, w, padding="same", dilation=2, groups=2), x[:, :, 0], w[:, :, 0])
    assert gradcheck(lambda x: ag.avg_pool2d(x, 2, padding=1), x)
    assert gradcheck(lambda x: ag.adaptive_avg_pool2d(x, 1), x)


def test_hessian_vector_product_through_a_conv_net():
    """grad of grad through conv2d, max pooling and tanh, on Tensors (create_graph)."""
    x = rng.standard_normal((1, 1, 6, 6))
    w0 = rng.standard_normal((2, 1, 3, 3))
    v = rng.standard_normal(w0.shape)

    def loss(w):
        return ag.max_pool2d(ag.conv2d(x, w, padding=1).tanh(), 2).sum() ** 2

    def directional_gradient(w):
        wt = ag.Tensor(w, requires_grad=True)
        (g,) = grad(loss(wt), [wt], create_graph=True)
        return g

    wt = ag.Tensor(w0, requires_grad=True)
    (g,) = grad(loss(wt), [wt], create_graph=True)
    (hv,) = grad((g * v).sum(), [wt])
    eps = 1e-6
    expected = (directional_gradient(w0 + eps * v).data - directional_gradient(w0 - eps * v).data) / (2 * eps)
    np.testing.assert_allclose(hv, expected, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("call, message", [
    (lambda: ag.conv2d(np.ones((3, 5, 5)), np.ones((2, 3, 3, 3))),
     r"conv2d: the input must have 4 dimensions \(N, C, H, W\), got shape \(3, 5, 5\)"),
    (lambda: ag.conv2d(np.ones((1, 3, 5, 5)), np.ones((2, 3, 3))),
     r"conv2d: the weight must have 4 dimensions"),
    (lambda: ag.conv2d(np.ones((1, 3, 5, 5)), np.ones((2, 1, 3, 3)), groups=2),
     r"conv2d: groups=2 must divide both the input's 3 channels"),
    (lambda: ag.conv2d(np.ones((1, 4, 5, 5)), np.ones((2, 1, 3, 3)), groups=2),
     r"conv2d: the weight of shape \(2, 1, 3, 3\) takes 1 channels per group, but the input"),
    (lambda: ag.conv2d(np.ones((1, 1, 2, 5)), np.ones((1, 1, 3, 3))),
     r"conv2d: the kernel spans 3 along the height \(dilation included\), more than the padded input's 2"),
    (lambda: ag.conv2d(np.ones((1, 1, 5, 5)), np.ones((1, 1, 3, 3)), dilation=3),
     r"conv2d: the kernel spans 7 along the height"),
    (lambda: ag.conv2d(np.ones((1, 1, 5, 5)), np.ones((1, 1, 3, 3)), stride=0),
     r"conv2d: stride must be positive, got 0"),
    (lambda: ag.conv2d(np.ones((1, 1, 5, 5)), np.ones((1, 1, 3, 3)), padding=-1),
     r"conv2d: padding must be non-negative, got -1"),
    (lambda: ag.conv2d(np.ones((1, 1, 5, 5)), np.ones((1, 1, 3, 3)), padding="full"),
     r"conv2d: padding must be an int, 2 ints, 'same' or 'valid', got 'full'"),
    (lambda: ag.conv2d(np.ones((1, 1, 5, 5)), np.ones((1, 1, 3, 3)), stride=2, padding="same"),
     r"conv2d: padding='same' needs stride 1, got stride 2"),
    (lambda: ag.conv2d(np.ones((1, 1, 5, 5)), np.ones((2, 1, 3, 3)), np.ones(3)),
     r"conv2d: the bias must have shape \(2,\), one per output channel, got shape \(3,\)"),
    (lambda: ag.conv1d(np.ones((1, 1, 5, 5)), np.ones((1, 1, 3))),
     r"conv1d: the input must have 3 dimensions \(N, C, L\)"),
    (lambda: ag.conv1d(np.ones((1, 1, 2)), np.ones((1, 1, 3))),
     r"conv1d: the kernel spans 3 along the length"),
    (lambda: ag.max_pool2d(np.ones((1, 1, 4, 4)), 2, stride=0),
     r"max_pool2d: stride must be positive, got 0"),
    (lambda: ag.max_pool2d(np.ones((1, 1, 4, 4)), 2, padding=2),
     r"max_pool2d: padding must be between 0 and half the kernel size \(2, 2\), got 2"),
    (lambda: ag.max_pool2d(np.ones((1, 1, 1, 4)), 3),
     r"max_pool2d: the kernel spans 3 along the height, more than the padded input's 1"),
    (lambda: ag.avg_pool2d(np.ones((4, 4)), 2),
     r"avg_pool2d: the input must have 4 dimensions \(N, C, H, W\), got shape \(4, 4\)"),
    (lambda: ag.max_pool2d(np.ones((1, 1, 4, 4)), 2.5),
     r"max_pool2d: kernel_size must be an int or 2 ints, got 2.5"),
])
def test_bad_arguments_are_one_sentence_naming_the_op_and_the_value(call, message):
    with pytest.raises((ValueError, TypeError), match=message):
        call()


@pytest.mark.parametrize("backend", ["numba", "numpy"])
def test_an_empty_batch_gives_empty_outputs_and_gradients(backend):
    previous = ag.kernels.set_kernels(backend)
    try:
        x = ag.Tensor(np.zeros((0, 2, 5, 5)), requires_grad=True)
        w = ag.Tensor(np.ones((3, 2, 3, 3)), requires_grad=True)
        out = ag.max_pool2d(ag.conv2d(x, w, padding=1), 2)
        out.sum().backward()
    finally:
        ag.kernels.set_kernels(previous)
    assert out.shape == (0, 3, 2, 2) and x.grad.shape == (0, 2, 5, 5)
    np.testing.assert_array_equal(w.grad, np.zeros((3, 2, 3, 3)))


def test_max_pool2d_pads_integers_with_their_minimum():
    x = np.arange(32).reshape(1, 2, 4, 4)
    out = ag.max_pool2d(x, 2, padding=1).data
    assert out.dtype == x.dtype
    np.testing.assert_array_equal(out[0, 0], [[0, 2, 3], [8, 10, 11], [12, 14, 15]])


def test_avg_pool2d_of_integers_is_their_float64_mean():
    x = np.arange(32).reshape(1, 2, 4, 4)
    out = ag.avg_pool2d(x, 2).data
    assert out.dtype == np.float64
    np.testing.assert_array_equal(out, x.reshape(1, 2, 2, 2, 2, 2).mean(axis=(3, 5)))


def test_mixed_float_dtypes_promote_to_float64_alike_on_both_backends(monkeypatch):
    """float32 x with float64 w: float64 out, as ag.matmul and NumPy promote (the Numba path
    converts x rather than falling back to the twin); each gradient keeps its input's dtype."""
    from autograd_lite.kernels import conv_reference
    rng = np.random.default_rng(3)
    x32, w64 = rng.standard_normal((2, 2, 6, 5)).astype(np.float32), rng.standard_normal((3, 2, 3, 2))
    results = {}
    for backend in ("numba", "numpy"):
        previous = ag.kernels.set_kernels(backend)
        try:
            with monkeypatch.context() as patch:
                if backend == "numba":   # the twins must not run on the Numba backend
                    for name in ("conv2d", "conv2d_input_grad", "conv2d_weight_grad"):
                        patch.setattr(conv_reference, name, None)
                x, w = ag.Tensor(x32, requires_grad=True), ag.Tensor(w64, requires_grad=True)
                y = ag.conv2d(x, w, padding=1, stride=(1, 2))
                (y * y).sum().backward()
                results[backend] = (y.data, x.grad, w.grad)
        finally:
            ag.kernels.set_kernels(previous)
    exact = ag.conv2d(x32.astype(np.float64), w64, padding=1, stride=(1, 2)).data
    for y, x_bar, w_bar in results.values():
        assert (y.dtype, x_bar.dtype, w_bar.dtype) == (np.float64, np.float32, np.float64)
        np.testing.assert_allclose(y, exact, rtol=1e-12, atol=1e-12)
    for a, b in zip(results["numba"], results["numpy"]):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-6)
