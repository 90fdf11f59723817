"""BatchNorm1d, BatchNorm2d and LayerNorm: outputs, gradients and running statistics against PyTorch
and finite differences (float64), train / eval behaviour, buffers in the state, bad arguments."""
import numpy as np
import pytest

import autograd_lite as ag
import nn

RNG = np.random.default_rng(0)


def _torch():
    return pytest.importorskip("torch", reason="the comparison with PyTorch needs torch (the peers extra)")


def _pair(ours, theirs, torch):
    """Give the PyTorch layer our layer's affine parameters."""
    with torch.no_grad():
        if getattr(ours, "weight", None) is not None:
            theirs.weight.copy_(torch.from_numpy(ours.weight.data))
            theirs.bias.copy_(torch.from_numpy(ours.bias.data))


@pytest.mark.parametrize("cls, shape", [("BatchNorm1d", (6, 3)), ("BatchNorm1d", (5, 3, 4)),
                                        ("BatchNorm2d", (4, 3, 5, 3))])
@pytest.mark.parametrize("momentum", [0.1, 0.5, None])
def test_batch_norm_matches_pytorch_in_training_and_eval(cls, shape, momentum):
    torch = _torch()
    ours = getattr(nn, cls)(3, momentum=momentum, eps=1e-3)
    ours.weight.data[:] = RNG.standard_normal(3)
    ours.bias.data[:] = RNG.standard_normal(3)
    theirs = getattr(torch.nn, cls)(3, momentum=momentum, eps=1e-3).double()
    _pair(ours, theirs, torch)
    for step in range(3):
        x = RNG.standard_normal(shape) * 2 + 1
        g = RNG.standard_normal(shape)
        xt = ag.tensor(x, requires_grad=True)
        y = ours(xt)
        (y * g).sum().backward()
        xtt = torch.tensor(x, requires_grad=True)
        yt = theirs(xtt)
        (yt * torch.from_numpy(g)).sum().backward()
        np.testing.assert_allclose(y.data, yt.detach().numpy(), rtol=1e-10, atol=1e-10)
        np.testing.assert_allclose(xt.grad, xtt.grad.numpy(), rtol=1e-8, atol=1e-10)
        np.testing.assert_allclose(ours.weight.grad, theirs.weight.grad.numpy(), rtol=1e-8, atol=1e-10)
        np.testing.assert_allclose(ours.bias.grad, theirs.bias.grad.numpy(), rtol=1e-8, atol=1e-10)
        ours.zero_grad()
        theirs.zero_grad()
    np.testing.assert_allclose(ours.running_mean, theirs.running_mean.numpy(), rtol=1e-12)
    np.testing.assert_allclose(ours.running_var, theirs.running_var.numpy(), rtol=1e-12)
    assert float(ours.num_batches_tracked) == int(theirs.num_batches_tracked) == 3
    ours.eval()
    theirs.eval()
    x = RNG.standard_normal(shape)
    np.testing.assert_allclose(ours(x).data, theirs(torch.from_numpy(x)).detach().numpy(), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("affine, track", [(False, True), (True, False), (False, False)])
def test_batch_norm_options_match_pytorch(affine, track):
    torch = _torch()
    ours = nn.BatchNorm2d(2, affine=affine, track_running_stats=track)
    theirs = torch.nn.BatchNorm2d(2, affine=affine, track_running_stats=track).double()
    assert (ours.weight is None) == (not affine)
    assert ("running_mean" in ours.state_dict()) == track
    for mode in ("train", "eval"):
        getattr(ours, mode)()
        getattr(theirs, mode)()
        x = RNG.standard_normal((3, 2, 4, 4)) + 3
        np.testing.assert_allclose(ours(x).data, theirs(torch.from_numpy(x)).detach().numpy(), rtol=1e-10, atol=1e-10)


def test_batch_norm_gradients_match_finite_differences():
    bn = nn.BatchNorm2d(3)
    bn.weight.data[:] = [0.5, -1.0, 2.0]
    g = RNG.standard_normal((4, 3, 2, 3))

    def f(x, w, b):
        bn.weight, bn.bias = w, b
        return (bn(x) * g).sum()
    assert ag.gradcheck(f, RNG.standard_normal((4, 3, 2, 3)), bn.weight.data.copy(), bn.bias.data.copy())


def test_layer_norm_matches_pytorch_and_finite_differences():
    torch = _torch()
    ours = nn.LayerNorm([3, 4], eps=1e-4)
    ours.weight.data[:] = RNG.standard_normal((3, 4))
    ours.bias.data[:] = RNG.standard_normal((3, 4))
    theirs = torch.nn.LayerNorm([3, 4], eps=1e-4).double()
    _pair(ours, theirs, torch)
    x, g = RNG.standard_normal((2, 5, 3, 4)), RNG.standard_normal((2, 5, 3, 4))
    xt = ag.tensor(x, requires_grad=True)
    (ours(xt) * g).sum().backward()
    xtt = torch.tensor(x, requires_grad=True)
    yt = theirs(xtt)
    (yt * torch.from_numpy(g)).sum().backward()
    np.testing.assert_allclose(ours(x).data, yt.detach().numpy(), rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(xt.grad, xtt.grad.numpy(), rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(ours.weight.grad, theirs.weight.grad.numpy(), rtol=1e-8, atol=1e-10)
    assert ag.gradcheck(lambda a: (ours(a) * g).sum(), x)


def test_layer_norm_is_the_same_in_training_and_eval():
    ln = nn.LayerNorm(5)
    x = RNG.standard_normal((4, 5))
    np.testing.assert_array_equal(ln.train()(x).data, ln.eval()(x).data)


def test_batch_norm_eval_uses_the_running_statistics_not_the_batch():
    bn = nn.BatchNorm1d(2, momentum=1.0)          # the running statistics become the last batch's
    bn(np.array([[0.0, 10.0], [2.0, 30.0]]))
    np.testing.assert_allclose(bn.running_mean, [1.0, 20.0])
    np.testing.assert_allclose(bn.running_var, [2.0, 200.0])   # unbiased
    bn.eval()
    out = bn(np.array([[1.0, 20.0]])).data                    # one sample is fine in eval mode
    np.testing.assert_allclose(out, [[0.0, 0.0]], atol=1e-12)


def test_batch_norm_float32_stays_float32():
    bn = nn.BatchNorm2d(2, dtype=np.float32)
    x = RNG.standard_normal((3, 2, 2, 2)).astype(np.float32)
    assert bn(x).dtype == np.float32
    bn.eval()
    assert bn(x).dtype == np.float32
    assert bn.running_var.dtype == np.float32


def test_batch_norm_training_on_one_value_per_channel_is_refused():
    with pytest.raises(ValueError, match=r"BatchNorm1d\(3\): training needs more than one value per channel"):
        nn.BatchNorm1d(3)(np.zeros((1, 3)))


@pytest.mark.parametrize("shape", [(4, 3, 2), (4, 5, 2, 2)])
def test_batch_norm_names_the_expected_shape(shape):
    with pytest.raises(ValueError, match=r"BatchNorm2d\(3\): expected an input of shape \(N, C, H, W\) with C = 3"):
        nn.BatchNorm2d(3)(np.zeros(shape))


@pytest.mark.parametrize("kwargs, message", [
    (dict(num_features=0), "num_features must be a whole number from 1"),
    (dict(num_features=3.5), "num_features must be a whole number"),
    (dict(num_features=3, momentum=1.5), r"momentum must be a finite number in \[0, 1\]"),
    (dict(num_features=3, eps=0.0), r"eps must be a finite number in \(0"),
    (dict(num_features=3, affine="yes"), "affine must be True or False"),
])
def test_bad_batch_norm_arguments_are_one_sentence(kwargs, message):
    with pytest.raises(ValueError, match=message) as error:
        nn.BatchNorm2d(**kwargs)
    assert "\n" not in str(error.value) and str(error.value).startswith("BatchNorm2d: ")


def test_running_statistics_are_buffers_in_the_state_but_not_parameters():
    bn = nn.BatchNorm2d(2)
    assert [name for name, _ in bn.named_parameters()] == ["weight", "bias"]
    assert list(bn.state_dict()) == ["weight", "bias", "running_mean", "running_var", "num_batches_tracked"]
    bn(RNG.standard_normal((3, 2, 2, 2)))
    other = nn.BatchNorm2d(2)
    other.load_state_dict(bn.state_dict())
    np.testing.assert_array_equal(other.running_var, bn.running_var)
    assert other.running_var is not bn.running_var           # copied in place, not shared
    with pytest.raises(ValueError, match="running_mean"):
        other.load_state_dict({**bn.state_dict(), "running_mean": np.zeros(3)})


def test_fit_restores_the_best_epochs_running_statistics_too():
    x = RNG.standard_normal((40, 4))
    y = (x[:, 0] > 0).astype(int)
    model = nn.Sequential(nn.Linear(4, 8, seed=0), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 2, seed=1))
    state = {}

    def remember(epoch, logs):
        state[epoch] = (logs["val_loss"], model.state_dict())
    history = nn.fit(model, "ce", nn.SGD(model, lr=5.0), (x, y), validation=(x, y), epochs=6, batch_size=8,
                     early_stopping=6, callbacks=[remember], verbose=False)
    best = min(state, key=lambda e: state[e][0])
    assert history.best_epoch == best
    np.testing.assert_array_equal(model[1].running_mean, state[best][1]["1.running_mean"])


def test_a_compiled_training_step_moves_the_running_statistics_as_the_eager_one_does():
    rng = np.random.default_rng(3)
    xs = [rng.standard_normal((4, 1, 6, 6)) for _ in range(3)]
    results = []
    for compiled in (False, True):
        model = nn.Sequential(nn.Conv2d(1, 2, 3, seed=0), nn.BatchNorm2d(2), nn.ReLU(), nn.Flatten(),
                              nn.Linear(32, 3, seed=1), nn.BatchNorm1d(3, momentum=None))
        optimizer = nn.SGD(model, lr=0.1)

        def step(x):
            out = model(x)
            loss = (out * out).mean()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            return loss
        run = ag.compile(step) if compiled else step
        model.train()
        for x in xs:
            run(x)
        model.eval()
        results.append((model.state_dict(), model(xs[0]).data))
    for name, array in results[0][0].items():
        np.testing.assert_allclose(results[1][0][name], array, rtol=1e-12, err_msg=name)
    assert float(results[1][0]["5.num_batches_tracked"]) == 3
    np.testing.assert_allclose(results[1][1], results[0][1], rtol=1e-12)
