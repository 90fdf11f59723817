"""Layers: Linear (shapes, initialisation, errors), activations, Dropout, Sequential, MLP."""
import numpy as np
import pytest
from hypothesis import given, strategies as st

import autograd_lite as ag
import nn


# ---------------------------------------------------------------- Linear
def test_linear_computes_a_w_plus_b_with_w_shaped_in_by_out():
    layer = nn.Linear(3, 2, seed=0)
    assert layer.weight.shape == (3, 2) and layer.bias.shape == (2,)
    layer.bias.data[:] = [0.5, -1.0]
    x = np.random.default_rng(1).standard_normal((4, 3))
    np.testing.assert_allclose(layer(x).data, x @ layer.weight.data + layer.bias.data, rtol=1e-15)


def test_linear_without_bias_has_only_a_weight():
    layer = nn.Linear(3, 2, bias=False, seed=0)
    assert [n for n, _ in layer.named_parameters()] == ["weight"]
    x = np.ones((1, 3))
    np.testing.assert_allclose(layer(x).data, x @ layer.weight.data)


def test_linear_backward_gives_the_lectures_gradients():
    layer = nn.Linear(3, 2, seed=0)
    rng = np.random.default_rng(0)
    x = ag.tensor(rng.standard_normal((4, 3)), requires_grad=True)
    g = rng.standard_normal((4, 2))
    layer(x).backward(g)
    np.testing.assert_allclose(layer.weight.grad.data, x.data.T @ g, rtol=1e-14)   # A^T delta
    np.testing.assert_allclose(layer.bias.grad.data, g.sum(axis=0), rtol=1e-14)
    np.testing.assert_allclose(x.grad.data, g @ layer.weight.data.T, rtol=1e-14)   # delta W^T


@pytest.mark.parametrize("shape", [(3,), (2, 5, 3)])
@pytest.mark.parametrize("activation", [None, "tanh"])
def test_linear_on_a_single_sample_or_a_stack_of_batches(shape, activation):
    layer = nn.Linear(3, 2, seed=0)
    layer.bias.data[:] = [0.5, -1.0]
    x = np.random.default_rng(1).standard_normal(shape)
    z = x @ layer.weight.data + layer.bias.data
    expected = z if activation is None else np.tanh(z)
    np.testing.assert_allclose(layer(x, activation=activation).data, expected, rtol=1e-14)


def test_linear_given_the_wrong_width_names_the_expected_width():
    layer = nn.Linear(784, 100, seed=0)
    with pytest.raises(ValueError, match=r"Linear\(784 -> 100\): expected an input whose last axis "
                                         r"has 784 features, got shape \(32, 100\)"):
        layer(np.zeros((32, 100)))


def test_linear_turns_integer_input_into_its_own_dtype():
    layer = nn.Linear(3, 2, seed=0, dtype=np.float32)
    out = layer(np.array([[1, 2, 3]], dtype=np.uint8))
    assert out.dtype == np.float32


def test_same_seed_gives_the_same_weights_and_different_seeds_differ():
    a, b, c = nn.Linear(5, 4, seed=7), nn.Linear(5, 4, seed=7), nn.Linear(5, 4, seed=8)
    np.testing.assert_array_equal(a.weight.data, b.weight.data)
    assert not np.array_equal(a.weight.data, c.weight.data)
    rng1, rng2 = np.random.default_rng(3), np.random.default_rng(3)
    np.testing.assert_array_equal(nn.Linear(5, 4, rng=rng1).weight.data, nn.Linear(5, 4, rng=rng2).weight.data)


def test_glorot_init_is_uniform_within_its_limit_with_the_right_variance():
    fan_in, fan_out = 400, 200
    w = nn.Linear(fan_in, fan_out, init="glorot", seed=0).weight.data
    limit = np.sqrt(6 / (fan_in + fan_out))
    assert np.abs(w).max() <= limit and np.abs(w).max() > 0.99 * limit
    assert abs(w.var() / (2 / (fan_in + fan_out)) - 1) < 0.03   # var of U(-r, r) = r^2 / 3
    assert np.all(nn.Linear(fan_in, fan_out, seed=0).bias.data == 0)


def test_he_init_is_normal_with_variance_two_over_fan_in():
    fan_in, fan_out = 400, 200
    w = nn.Linear(fan_in, fan_out, init="he", seed=0).weight.data
    assert abs(w.var() / (2 / fan_in) - 1) < 0.03
    assert abs(w.mean()) < 5 * np.sqrt(2 / fan_in / w.size)


def test_mlp_uses_he_for_relu_and_glorot_for_sigmoid():
    relu = nn.MLP([400, 300, 10], activation="relu", seed=0)
    sigmoid = nn.MLP([400, 300, 10], activation="sigmoid", seed=0)
    assert abs(relu.hidden[0].weight.data.var() / (2 / 400) - 1) < 0.03
    assert abs(sigmoid.hidden[0].weight.data.var() / (2 / 700) - 1) < 0.03


def test_unknown_init_and_non_generator_rng_are_refused():
    with pytest.raises(ValueError, match="init must be one of"):
        nn.Linear(2, 2, init="lecun")
    with pytest.raises(TypeError, match="numpy.random.Generator"):
        nn.Linear(2, 2, rng=42)


def test_float32_layers_stay_float32_through_forward_and_backward():
    model = nn.MLP([3, 4, 2], seed=0, dtype=np.float32)
    out = model(np.ones((2, 3), dtype=np.float32))
    assert out.dtype == np.float32
    out.sum().backward()
    assert all(p.grad.dtype == np.float32 for p in model.parameters())


# ---------------------------------------------------------------- activations
@pytest.mark.parametrize("module, reference", [
    (nn.Sigmoid(), lambda z: 1 / (1 + np.exp(-z))),
    (nn.Tanh(), np.tanh),
    (nn.ReLU(), lambda z: np.maximum(z, 0)),
    (nn.Softmax(), lambda z: np.exp(z) / np.exp(z).sum(axis=-1, keepdims=True)),
])
def test_activation_modules_match_their_formulas(module, reference):
    z = np.random.default_rng(0).standard_normal((4, 5))
    np.testing.assert_allclose(module(z).data, reference(z), rtol=1e-12, atol=1e-15)


# ---------------------------------------------------------------- Dropout
@pytest.mark.parametrize("p", [-0.1, 1.0, 1.5])
def test_dropout_refuses_p_outside_zero_to_one(p):
    with pytest.raises(ValueError, match=r"must be in \[0, 1\)"):
        nn.Dropout(p)


@pytest.mark.parametrize("p", [0.1, 0.5, 0.8])
def test_dropout_zeroes_a_fraction_p_within_statistical_bounds(p):
    n = 100_000
    out = nn.Dropout(p, seed=0)(np.ones(n)).data
    zeros = np.mean(out == 0)
    # the count of zeros is Binomial(n, p): 5 standard deviations
    assert abs(zeros - p) < 5 * np.sqrt(p * (1 - p) / n)
    np.testing.assert_allclose(out[out != 0], 1 / (1 - p))


def test_dropout_preserves_the_mean_in_expectation():
    x = np.random.default_rng(1).uniform(0.5, 1.5, size=200_000)
    p = 0.3
    out = nn.Dropout(p, seed=2)(x).data
    # each output element has mean x_i and variance x_i^2 p / (1 - p)
    se = np.sqrt(np.sum(x ** 2) * p / (1 - p)) / x.size
    assert abs(out.mean() - x.mean()) < 5 * se


def test_dropout_in_eval_mode_is_the_identity():
    layer = nn.Dropout(0.5, seed=0).eval()
    x = ag.tensor(np.random.default_rng(0).standard_normal((3, 4)), requires_grad=True)
    assert layer(x) is x


def test_dropout_with_the_same_seed_gives_the_same_mask():
    x = np.ones((50, 20))
    a, b = nn.Dropout(0.4, seed=5)(x).data, nn.Dropout(0.4, seed=5)(x).data
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, nn.Dropout(0.4, seed=6)(x).data)


def test_dropout_gradient_is_the_mask_scaled():
    x = ag.tensor(np.ones((10, 10)), requires_grad=True)
    y = nn.Dropout(0.5, seed=0)(x)
    y.sum().backward()
    np.testing.assert_array_equal(x.grad.data, y.data)


def test_dropout_keeps_float32():
    out = nn.Dropout(0.5, seed=0)(np.ones(10, dtype=np.float32))
    assert out.dtype == np.float32


# ---------------------------------------------------------------- Sequential and MLP
def test_sequential_applies_modules_in_order_and_names_by_position():
    model = nn.Sequential(nn.Linear(3, 4, seed=0), nn.Tanh(), nn.Linear(4, 2, seed=1))
    x = np.ones((2, 3))
    expected = np.tanh(x @ model[0].weight.data) @ model[2].weight.data
    np.testing.assert_allclose(model(x).data, expected, rtol=1e-14)
    assert [n for n, _ in model.named_parameters()] == ["0.weight", "0.bias", "2.weight", "2.bias"]
    assert len(model) == 3
    with pytest.raises(TypeError, match="argument 1 is a int"):
        nn.Sequential(nn.Tanh(), 3)


@given(sizes=st.lists(st.integers(1, 5), min_size=2, max_size=4),
       activation=st.sampled_from(["sigmoid", "tanh", "relu"]),
       output_activation=st.sampled_from([None, "sigmoid", "softmax"]))
def test_mlp_matches_the_layer_by_layer_formula(sizes, activation, output_activation):
    model = nn.MLP(sizes, activation=activation, output_activation=output_activation, seed=0)
    x = np.random.default_rng(0).standard_normal((3, sizes[0]))
    f = {"sigmoid": lambda z: 1 / (1 + np.exp(-z)), "tanh": np.tanh, "relu": lambda z: np.maximum(z, 0),
         "softmax": lambda z: np.exp(z) / np.exp(z).sum(axis=-1, keepdims=True), None: lambda z: z}
    a = x
    for layer in model.hidden:
        a = f[activation](a @ layer.weight.data + layer.bias.data)
    expected = f[output_activation](a @ model.output.weight.data + model.output.bias.data)
    np.testing.assert_allclose(model(x).data, expected, rtol=1e-12, atol=1e-14)


def test_mlp_on_a_single_sample_equals_its_row_in_a_batch():
    model = nn.MLP([4, 5, 3], activation="relu", output_activation="softmax", seed=0)
    batch = np.random.default_rng(0).standard_normal((6, 4))
    np.testing.assert_allclose(model(batch[2]).data, model(batch).data[2], rtol=1e-13)


def test_mlp_parameter_names_follow_the_lecture_layers():
    model = nn.MLP([784, 100, 50, 10], seed=0)
    assert [n for n, _ in model.named_parameters()] == [
        "hidden.0.weight", "hidden.0.bias", "hidden.1.weight", "hidden.1.bias",
        "output.weight", "output.bias"]
    assert model.output.weight.shape == (50, 10)


def test_mlp_dropout_acts_in_training_only():
    model = nn.MLP([5, 50, 2], dropout=0.5, seed=0)
    x = np.ones((4, 5))
    assert not np.array_equal(model(x).data, model(x).data)
    model.eval()
    np.testing.assert_array_equal(model(x).data, model(x).data)


def test_mlp_refuses_bad_settings_and_inputs():
    with pytest.raises(ValueError, match="at least an input and an output"):
        nn.MLP([10])
    with pytest.raises(ValueError, match="activation must be one of"):
        nn.MLP([2, 2], activation="gelu")
    with pytest.raises(ValueError, match="output_activation must be one of"):
        nn.MLP([2, 2], output_activation="linear")
    with pytest.raises(ValueError, match=r"must be in \[0, 1\)"):
        nn.MLP([2, 3, 2], dropout=1.0)
    with pytest.raises(ValueError, match=r"MLP\(4 -> \.\.\. -> 2\): expected an input whose last axis has 4 "
                                         r"features, got shape \(3, 5\)"):
        nn.MLP([4, 3, 2], seed=0)(np.zeros((3, 5)))


def test_mlp_architecture_rebuilds_the_same_shape():
    model = nn.MLP([6, 5, 4, 3], activation="tanh", dropout=0.25, output_activation="softmax",
                   seed=0, dtype=np.float32)
    copy = nn.MLP.from_architecture(model.architecture())
    assert copy.architecture() == model.architecture()
    assert [(n, p.shape, p.dtype) for n, p in copy.named_parameters()] == \
        [(n, p.shape, p.dtype) for n, p in model.named_parameters()]
    with pytest.raises(ValueError, match="accepts only"):
        nn.MLP.from_architecture({"class": "MLP", "sizes": [2, 2], "depth": 3})


# ---------------------------------------------------------------- sizes, the parameter cap, memory
def test_an_mlp_over_the_parameter_cap_is_refused_before_allocating_with_count_and_gigabytes():
    with pytest.raises(ValueError, match=r"^MLP: the network \[784, 100000000, 10\] needs 79,500,000,010 "
                                         r"parameters \(318 GB as float32\), more than the cap of "
                                         r"1,000,000,000 parameters"):
        nn.MLP([784, 100_000_000, 10], dtype=np.float32)
    with pytest.raises(ValueError, match=r"^Linear: a 100000 x 100000 layer needs 10,000,100,000 parameters "
                                         r"\(80 GB as float64\)"):
        nn.Linear(100_000, 100_000)
    assert nn.layers.MAX_PARAMETERS == 10**9


def test_max_parameters_moves_the_cap_both_ways():
    with pytest.raises(ValueError, match=r"needs 67 parameters \(5.36e-07 GB as float64\), more than the "
                                         r"cap of 66"):
        nn.MLP([4, 8, 3], max_parameters=66)
    assert nn.MLP([4, 8, 3], max_parameters=67, seed=0).num_parameters() == 67
    with pytest.raises(ValueError, match="MLP: max_parameters must be a positive int, got 1.5"):
        nn.MLP([4, 8, 3], max_parameters=1.5)


def test_an_mlp_larger_than_the_machines_memory_is_refused(monkeypatch):
    monkeypatch.setattr(nn.layers, "_physical_memory_bytes", lambda: 10**6)
    with pytest.raises(ValueError, match=r"MLP: the network \[500, 300, 10\] needs 153,310 parameters "
                                         r"\(0.00123 GB as float64\), more than this machine's "
                                         r"0.001 GB of memory"):
        nn.MLP([500, 300, 10])
    assert nn.MLP([500, 300, 10], dtype=np.float32, seed=0).num_parameters() == 153_310   # 0.6 MB


@pytest.mark.parametrize("sizes, expected", [
    ([5, 6.5, 3], "sizes must be positive whole numbers"),
    ([5, True, 3], "sizes must be positive whole numbers"),
    ([5, 0, 3], "sizes must be positive whole numbers"),
    ("563", "sizes must be a list of layer widths"),
    ([2] * 1002, r"at most 1001 widths \(1000 layers\).*got 1002 widths"),
])
def test_mlp_sizes_must_be_a_bounded_list_of_positive_whole_numbers(sizes, expected):
    with pytest.raises(ValueError, match=expected):
        nn.MLP(sizes)


def test_mlp_takes_sizes_as_numpy_integers_and_refuses_non_float_dtypes():
    assert nn.MLP(np.array([3, 4, 2]), seed=0).sizes == [3, 4, 2]
    with pytest.raises(ValueError, match="MLP: dtype must be a floating-point type such as float32 or "
                                         "float64, got int64"):
        nn.MLP([3, 2], dtype=np.int64)


def test_parameter_specs_describe_the_mlp_from_architecture_builds():
    model = nn.MLP([6, 5, 4, 3], bias=False, dtype=np.float32, seed=0)
    specs = nn.MLP.parameter_specs(model.architecture())
    assert specs == {name: (p.shape, p.dtype) for name, p in model.named_parameters()}
    assert nn.layers.mlp_parameter_shapes([784, 100, 10]) == {
        "hidden.0.weight": (784, 100), "hidden.0.bias": (100,),
        "output.weight": (100, 10), "output.bias": (10,)}
    with pytest.raises(ValueError, match="more than the cap of 10 parameters"):
        nn.MLP.parameter_specs(model.architecture(), max_parameters=10)


def test_empty_init_draws_no_random_numbers():
    class NoRandomness:
        def __getattr__(self, name):
            raise AssertionError(f"the empty init used the generator ({name})")

    weight = nn.init_weight(3, 2, "empty", NoRandomness(), np.float32)
    assert weight.shape == (3, 2) and weight.dtype == np.float32
    model = nn.MLP.from_architecture(nn.MLP([4, 3, 2]).architecture(), init="empty")
    assert [p.shape for p in model.parameters()] == [(4, 3), (3,), (3, 2), (2,)]
