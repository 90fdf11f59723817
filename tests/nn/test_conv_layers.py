"""Conv1d, Conv2d, the pooling layers and Flatten: outputs and gradients against PyTorch on the same
weights and finite differences (float64), initialisation, and the errors for bad arguments and inputs."""
import numpy as np
import pytest

import autograd_lite as ag
import nn

RNG = np.random.default_rng(1)


def _torch():
    return pytest.importorskip("torch", reason="the comparison with PyTorch needs torch (the peers extra)")


def _check_against_torch(ours, theirs, x, torch):
    """Same output, input gradient and parameter gradients for a random cotangent."""
    xt = ag.tensor(x, requires_grad=True)
    y = ours(xt)
    g = RNG.standard_normal(y.shape)
    (y * g).sum().backward()
    xtt = torch.tensor(x, requires_grad=True)
    yt = theirs(xtt)
    (yt * torch.from_numpy(g)).sum().backward()
    np.testing.assert_allclose(y.data, yt.detach().numpy(), rtol=1e-9, atol=1e-11)
    np.testing.assert_allclose(xt.grad, xtt.grad.numpy(), rtol=1e-9, atol=1e-11)
    for name, p in ours.named_parameters():
        np.testing.assert_allclose(p.grad, getattr(theirs, name).grad.numpy(), rtol=1e-9, atol=1e-11, err_msg=name)


@pytest.mark.parametrize("kwargs, shape", [
    (dict(in_channels=3, out_channels=4, kernel_size=3), (2, 3, 7, 6)),
    (dict(in_channels=2, out_channels=4, kernel_size=(3, 2), stride=2, padding=1), (2, 2, 9, 8)),
    (dict(in_channels=4, out_channels=6, kernel_size=3, dilation=2, groups=2, padding=(2, 1)), (1, 4, 9, 7)),
    (dict(in_channels=1, out_channels=2, kernel_size=5, padding="same", bias=False), (3, 1, 6, 5)),
])
def test_conv2d_matches_pytorch_on_the_same_weights(kwargs, shape):
    torch = _torch()
    ours = nn.Conv2d(**kwargs, seed=0)
    ours.bias is not None and ours.bias.data.__setitem__(slice(None), RNG.standard_normal(ours.out_channels))
    theirs = torch.nn.Conv2d(**kwargs).double()
    with torch.no_grad():
        theirs.weight.copy_(torch.from_numpy(ours.weight.data))
        if ours.bias is not None:
            theirs.bias.copy_(torch.from_numpy(ours.bias.data))
    _check_against_torch(ours, theirs, RNG.standard_normal(shape), torch)


@pytest.mark.parametrize("kwargs", [dict(kernel_size=3), dict(kernel_size=3, stride=2, padding=1, dilation=2),
                                    dict(kernel_size=1, groups=2)])
def test_conv1d_matches_pytorch_on_the_same_weights(kwargs):
    torch = _torch()
    ours = nn.Conv1d(4, 6, **kwargs, seed=0)
    theirs = torch.nn.Conv1d(4, 6, **kwargs).double()
    with torch.no_grad():
        theirs.weight.copy_(torch.from_numpy(ours.weight.data))
        theirs.bias.copy_(torch.from_numpy(ours.bias.data))
    _check_against_torch(ours, theirs, RNG.standard_normal((2, 4, 11)), torch)


@pytest.mark.parametrize("cls, kwargs", [("MaxPool2d", dict(kernel_size=2)),
                                         ("MaxPool2d", dict(kernel_size=3, stride=2, padding=1)),
                                         ("AvgPool2d", dict(kernel_size=2)),
                                         ("AvgPool2d", dict(kernel_size=(3, 2), stride=(2, 1), padding=1))])
def test_pooling_matches_pytorch(cls, kwargs):
    torch = _torch()
    _check_against_torch(getattr(nn, cls)(**kwargs), getattr(torch.nn, cls)(**kwargs),
                         RNG.standard_normal((2, 3, 7, 9)), torch)


def test_global_average_pooling_and_flatten_match_pytorch():
    torch = _torch()
    x = RNG.standard_normal((2, 3, 5, 4))
    _check_against_torch(nn.AdaptiveAvgPool2d(), torch.nn.AdaptiveAvgPool2d(1), x, torch)
    _check_against_torch(nn.Flatten(), torch.nn.Flatten(), x, torch)


def test_conv_layer_gradients_match_finite_differences():
    conv = nn.Conv2d(2, 3, kernel_size=3, stride=(2, 1), padding=1, dilation=(1, 2), seed=0)
    x = RNG.standard_normal((2, 2, 5, 6))

    def f(x, w, b):
        conv.weight, conv.bias = w, b
        return nn.MaxPool2d(2)(conv(x)).tanh().sum()
    assert ag.gradcheck(f, x, conv.weight.data.copy(), RNG.standard_normal(3))


def test_conv_kernels_are_drawn_with_the_fans_of_the_kernel():
    conv = nn.Conv2d(64, 128, kernel_size=3, seed=0)              # He: std sqrt(2 / (64 * 9))
    assert conv.weight.shape == (128, 64, 3, 3)
    assert abs(conv.weight.data.std() / np.sqrt(2 / (64 * 9)) - 1) < 0.02
    glorot = nn.Conv2d(64, 128, kernel_size=3, init="glorot", seed=0)   # uniform, r = sqrt(6 / (576 + 1152))
    assert abs(np.abs(glorot.weight.data).max() / np.sqrt(6 / (64 * 9 + 128 * 9)) - 1) < 0.01
    np.testing.assert_array_equal(nn.Conv2d(3, 4, 3, seed=5).weight.data, nn.Conv2d(3, 4, 3, seed=5).weight.data)
    assert not conv.bias.data.any()


def test_conv_float32_stays_float32():
    conv = nn.Conv2d(1, 2, 3, dtype=np.float32, seed=0)
    y = conv(RNG.standard_normal((2, 1, 5, 5)))    # float64 arrays become the layer's dtype
    assert y.dtype == np.float32
    assert nn.MaxPool2d(2)(y).dtype == np.float32


@pytest.mark.parametrize("kwargs, message", [
    (dict(in_channels=3, out_channels=10**9, kernel_size=3), "out_channels must be a whole number from 1 to 65,536"),
    (dict(in_channels=0, out_channels=4, kernel_size=3), "in_channels must be a whole number from 1"),
    (dict(in_channels=3, out_channels=4, kernel_size=-3), "kernel_size must be a whole number from 1"),
    (dict(in_channels=3, out_channels=4, kernel_size=(3, 3, 3)), "kernel_size must be .* a list of 2"),
    (dict(in_channels=3, out_channels=4, kernel_size=3, groups=2), r"groups \(2\) must divide in_channels \(3\)"),
    (dict(in_channels=3, out_channels=4, kernel_size=3, stride=0), "stride must be a whole number from 1"),
    (dict(in_channels=3, out_channels=4, kernel_size=3, padding=-1), "padding must be a whole number from 0"),
    (dict(in_channels=3, out_channels=4, kernel_size=3, stride=2, padding="same"), "padding='same' needs stride 1"),
    (dict(in_channels=60000, out_channels=60000, kernel_size=100, max_parameters=10**6), "more than the cap"),
])
def test_bad_conv_arguments_are_refused_in_one_sentence(kwargs, message):
    with pytest.raises(ValueError, match=message) as error:
        nn.Conv2d(**kwargs)
    assert "\n" not in str(error.value) and str(error.value).startswith("Conv2d: ")


def test_a_conv_input_of_the_wrong_shape_names_the_layer_and_the_shape():
    with pytest.raises(ValueError, match=r"Conv2d\(3 -> 4, kernel \(3, 3\)\): expected an input of shape "
                                         r"\(N, C, H, W\) with C = 3, got shape \(2, 1, 8, 8\)"):
        nn.Conv2d(3, 4, 3)(np.zeros((2, 1, 8, 8)))
    with pytest.raises(ValueError, match=r"MaxPool2d: expected an input of shape \(N, C, H, W\), got shape \(8, 8\)"):
        nn.MaxPool2d(2)(np.zeros((8, 8)))


def test_pool_padding_beyond_half_the_kernel_is_refused():
    with pytest.raises(ValueError, match=r"MaxPool2d: padding \(2, 2\) must be at most half the kernel size"):
        nn.MaxPool2d(2, padding=2)


@pytest.mark.parametrize("slope", [0.0, 0.01, 0.3, 1.0])
def test_leaky_relu_values_and_gradient_at_zero_are_pytorchs(slope):
    """x and slope * x exactly; the gradient at 0 is the slope (PyTorch's x > 0 rule), not a tie's share."""
    x = np.array([-2.5, -1e-300, 0.0, -0.0, 1e-300, 3.0, 7.25])
    xt = ag.tensor(x, requires_grad=True)
    y = nn.LeakyReLU(slope)(xt)
    y.sum().backward()
    np.testing.assert_array_equal(y.data, np.where(x > 0, x, slope * x))
    np.testing.assert_array_equal(xt.grad, np.where(x > 0, 1.0, slope))
    try:
        import torch
    except ImportError:
        return
    t = torch.tensor(x, requires_grad=True)
    torch.nn.functional.leaky_relu(t, slope).sum().backward()
    np.testing.assert_array_equal(xt.grad, t.grad.numpy())
