"""nn.per_example_grads against a loop of single-example backward passes, and clip_per_example."""
import functools

import numpy as np
import pytest

import autograd_lite as ag
import nn
from nn.data import one_hot
from nn.per_example import clip_per_example, functional_call, per_example_grads

rng = np.random.default_rng(7)


def loop_grads(model, loss, X, Y, l2=0.0):
    """One backward pass per example: the definition per_example_grads must reproduce."""
    out = {name: [] for name, _ in model.named_parameters()}
    for i in range(len(X)):
        for p in model.parameters():
            p.grad = None
        value = loss(model(X[i:i + 1]), Y[i:i + 1])
        if l2:
            value = value + nn.l2_penalty(model, l2)
        value.backward()
        for name, p in model.named_parameters():
            out[name].append(np.array(p.grad.data))
    return {name: np.stack(g) for name, g in out.items()}


def assert_equal_to_loop(model, loss, X, Y, l2=0.0):
    got = per_example_grads(model, loss, X, Y, l2=l2)
    want = loop_grads(model, loss, X, Y, l2=l2)
    assert list(got) == list(want)
    for name in want:
        assert got[name].shape == (len(X),) + model.state_dict()[name].shape
        np.testing.assert_allclose(got[name], want[name], rtol=0, atol=1e-12, err_msg=name)
    # the examples really differ: a batch-mean gradient broadcast to every row would fail here
    first = next(iter(got.values()))
    assert np.abs(first[0] - first[1]).max() > 1e-6


@pytest.mark.parametrize("l2", [0.0, 0.05])
@pytest.mark.parametrize("activation", ["relu", "tanh", "sigmoid"])
def test_mlp_per_example_grads_equal_loop_with_dropout_off(activation, l2):
    model = nn.MLP([6, 5, 4, 3], activation=activation, dropout=0.3, seed=1).eval()
    X = rng.normal(size=(9, 6))
    Y = rng.integers(0, 3, 9)
    assert_equal_to_loop(model, nn.sparse_categorical_cross_entropy, X, Y, l2=l2)


def test_sigmoid_outputs_with_float_targets_and_a_loss_written_with_operations():
    model = nn.MLP([4, 6, 2], activation="tanh", output_activation="sigmoid", seed=2)
    X = rng.normal(size=(5, 4))
    Y = rng.uniform(0.0, 1.0, (5, 2))
    assert_equal_to_loop(model, lambda p, y: ((p - y) ** 2).sum(), X, Y, l2=0.1)
    assert_equal_to_loop(model, lambda p, y: -(y * p.log() + (1 - y) * (1 - p).log()).mean(), X, Y)


@pytest.mark.parametrize("loss", [nn.mse, nn.binary_cross_entropy, nn.binary_cross_entropy_with_logits])
def test_losses_with_float_targets_under_vmap(loss):
    # they read their targets' arrays: inside vmap those are the whole batch, not one example's
    model = nn.MLP([4, 6, 2], activation="tanh", output_activation="sigmoid", seed=2)
    X = rng.normal(size=(5, 4))
    Y = rng.uniform(0.0, 1.0, (5, 2))
    assert_equal_to_loop(model, loss, X, Y, l2=0.1)


@pytest.mark.parametrize("soft", [False, True])
def test_categorical_cross_entropy_with_one_hot_or_soft_targets_under_vmap(soft):
    model = nn.MLP([4, 6, 3], activation="relu", seed=3)
    X = rng.normal(size=(6, 4))
    Y = rng.dirichlet(np.ones(3), 6) if soft else one_hot(rng.integers(0, 3, 6), 3)
    assert_equal_to_loop(model, nn.categorical_cross_entropy, X, Y)


@pytest.mark.parametrize("loss, targets", [
    (nn.mse, lambda shape: rng.normal(size=shape)),
    (nn.binary_cross_entropy, lambda shape: rng.uniform(0.0, 1.0, shape)),
    (nn.binary_cross_entropy_with_logits, lambda shape: rng.uniform(0.0, 1.0, shape)),
    (nn.categorical_cross_entropy, lambda shape: one_hot(rng.integers(0, 3, shape[:-1]).ravel(), 3)
     .reshape(shape)),
])
def test_loss_values_under_vmap_equal_a_loop_batched_or_shared_targets(loss, targets):
    probs = rng.uniform(0.05, 0.95, (4, 2, 3))
    Y = targets((4, 2, 3))
    for reduction in ("sum", "mean"):
        reduced = functools.partial(loss, reduction=reduction)
        got = ag.vmap(reduced)(probs, Y)
        want = [loss(probs[i], Y[i], reduction=reduction).data for i in range(4)]
        np.testing.assert_allclose(got, want, rtol=1e-13, atol=0)
        shared = ag.vmap(reduced, in_axes=(0, None))(probs, Y[0])
        np.testing.assert_allclose(shared, [loss(probs[i], Y[0], reduction=reduction).data
                                            for i in range(4)], rtol=1e-13, atol=0)
    with pytest.raises(ValueError, match="targets have shape \\(2, 2\\) but predictions have shape \\(2, 3\\)"):
        ag.vmap(loss)(probs, Y[..., :2])


def test_sequential_of_layers():
    model = nn.Sequential(nn.Linear(3, 4, seed=0), nn.Tanh(), nn.Linear(4, 2, seed=1))
    X = rng.normal(size=(6, 3))
    Y = rng.integers(0, 2, 6)
    assert_equal_to_loop(model, nn.sparse_categorical_cross_entropy, X, Y, l2=0.2)


def test_small_conv_net():
    model = nn.Sequential(nn.Conv2d(1, 3, 3, seed=0), nn.ReLU(), nn.Flatten(), nn.Linear(3 * 6 * 6, 4, seed=1))
    X = rng.normal(size=(5, 1, 8, 8))
    Y = rng.integers(0, 4, 5)
    assert_equal_to_loop(model, nn.sparse_categorical_cross_entropy, X, Y, l2=0.01)


def test_float32_model_gives_float32_gradients():
    model = nn.MLP([6, 5, 3], activation="relu", seed=0, dtype=np.float32)
    grads = per_example_grads(model, nn.sparse_categorical_cross_entropy, rng.normal(size=(4, 6)), np.array([0, 1, 2, 0]))
    assert {g.dtype for g in grads.values()} == {np.dtype(np.float32)}
    assert grads["output.weight"].shape == (4, 5, 3)


def test_model_keeps_its_own_parameters():
    model = nn.MLP([3, 4, 2], activation="relu", seed=3)
    before = [id(p) for p in model.parameters()]
    per_example_grads(model, nn.sparse_categorical_cross_entropy, rng.normal(size=(4, 3)), np.array([0, 1, 1, 0]))
    assert [id(p) for p in model.parameters()] == before
    assert all(p.grad is None for p in model.parameters())
    with pytest.raises(ValueError, match="label 5 at position 2"):
        per_example_grads(model, nn.sparse_categorical_cross_entropy, rng.normal(size=(4, 3)), np.array([0, 1, 5, 0]))
    assert [id(p) for p in model.parameters()] == before


def test_functional_call_computes_with_the_given_parameters():
    model = nn.Linear(2, 1, seed=0)
    x = np.array([[1.0, 2.0]])
    with functional_call(model, {"weight": np.array([[3.0], [4.0]]), "bias": np.array([0.5])}):
        assert model(x).data[0, 0] == 11.5
    assert model.weight.data.shape == (2, 1) and model(x).data[0, 0] != 11.5
    with pytest.raises(KeyError, match="no parameter named 'wieght'"):
        with functional_call(model, {"wieght": np.zeros((2, 1))}):
            pass


def test_clipped_norms_are_at_most_max_norm_and_small_ones_untouched():
    model = nn.MLP([6, 8, 3], activation="relu", seed=4)
    X = rng.normal(size=(20, 6)) * 3.0
    Y = rng.integers(0, 3, 20)
    grads = per_example_grads(model, nn.sparse_categorical_cross_entropy, X, Y)
    max_norm = float(np.median(clip_per_example(grads, 1e9)[1]))   # about half the examples get clipped
    clipped, norms = clip_per_example(grads, max_norm)
    flat = lambda g, i: np.concatenate([v[i].ravel() for v in g.values()])
    for i in range(len(X)):
        assert np.isclose(np.linalg.norm(flat(grads, i)), norms[i], rtol=1e-12)
        after = np.linalg.norm(flat(clipped, i))
        assert after <= max_norm * (1 + 1e-12)
        if norms[i] <= max_norm:
            np.testing.assert_array_equal(flat(clipped, i), flat(grads, i))
        else:
            assert np.isclose(after, max_norm, rtol=1e-12)
            np.testing.assert_allclose(flat(clipped, i) * norms[i] / max_norm, flat(grads, i), rtol=1e-12)
    assert 5 <= np.count_nonzero(norms > max_norm) <= 15


def test_bad_arguments_in_one_sentence():
    model = nn.Linear(2, 2, seed=0)
    with pytest.raises(ValueError, match=r"per_example_grads: X and Y must hold the same .* \(3, 2\) and \(2,\)"):
        per_example_grads(model, nn.sparse_categorical_cross_entropy, np.zeros((3, 2)), np.zeros(2, int))
    with pytest.raises(TypeError, match="per_example_grads: model must be an nn.Module"):
        per_example_grads(lambda x: x, nn.mse, np.zeros((3, 2)), np.zeros((3, 2)))
    with pytest.raises(ValueError, match="clip_per_example: max_norm must be a positive finite number, got -1.0"):
        clip_per_example({"w": np.ones((2, 3))}, -1)
    with pytest.raises(ValueError, match="same leading"):
        clip_per_example({"w": np.ones((2, 3)), "b": np.ones(3)}, 1.0)


def test_dp_sgd_example_trains_one_epoch_above_chance(capsys):
    import importlib.util
    import pathlib
    path = pathlib.Path(__file__).resolve().parents[2] / "examples" / "dp_sgd.py"
    spec = importlib.util.spec_from_file_location("dp_sgd_example", path)
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    example.main(["--epochs", "1"])
    lines = capsys.readouterr().out.splitlines()
    assert lines[1].split() == ["epoch", "DP-SGD", "acc", "clipped", "SGD", "acc", "DP", "s/epoch"]
    epoch, private_acc, clipped, plain_acc, _ = lines[2].split()
    assert epoch == "1" and len(lines) == 3
    assert float(private_acc) > 0.3 and float(plain_acc) > 0.3   # ten classes: chance is 0.1
    assert 0 <= int(clipped.rstrip("%")) <= 100
