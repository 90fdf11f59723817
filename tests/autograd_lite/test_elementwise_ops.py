"""The elementwise ops of NumPy's kind (tan ... rad2deg) at the points the table-driven tests
(test_table.py) stay away from: sinc at 0, non-finite values, logits of +-1000, NaN in fmax/fmin,
negative operands of mod, the jumps of the step functions."""
import math

import numpy as np
import pytest

import autograd_lite as ag

UNARY = ["tan", "arcsin", "arccos", "arctan", "sinh", "cosh", "arcsinh", "arccosh", "arctanh",
         "log2", "log10", "exp2", "square", "reciprocal", "sign", "floor", "ceil", "round", "sinc",
         "nan_to_num", "log_sigmoid", "deg2rad", "rad2deg"]
BINARY = ["arctan2", "hypot", "logaddexp", "logaddexp2", "fmax", "fmin", "mod", "remainder"]
# where each unary op is defined; log_sigmoid is NumPy-less
UNARY_AT = {"arccosh": 1.5, "log2": 1.5, "log10": 1.5}
NUMPY_TWIN = {"log_sigmoid": lambda x: -np.logaddexp(0, -x)}


@pytest.mark.parametrize("name", UNARY)
def test_unary_op_is_a_function_and_a_method_with_numpy_values(name):
    x = np.array([[0.3, -0.45], [0.7, 0.2]]) + UNARY_AT.get(name, 0.0)
    expected = NUMPY_TWIN.get(name, getattr(np, name, None))(x)
    np.testing.assert_allclose(getattr(ag, name)(x).data, expected, rtol=1e-12)
    np.testing.assert_allclose(getattr(ag.tensor(x), name)().data, expected, rtol=1e-12)


@pytest.mark.parametrize("name", BINARY)
def test_binary_op_is_a_function_with_numpy_values_and_broadcasting(name):
    x, y = np.array([[2.5], [-1.2]]), np.array([0.7, -1.9, 1.3])
    out = getattr(ag, name)(x, y)
    assert out.shape == (2, 3)
    np.testing.assert_allclose(out.data, getattr(np, name)(x, y), rtol=1e-12)


@pytest.mark.parametrize("name", UNARY + BINARY)
def test_float32_stays_float32(name):
    x = np.array([0.3, 0.6], np.float32) + np.float32(UNARY_AT.get(name, 0.0))
    args = (x,) if name in UNARY else (x, np.float32(0.8))
    assert getattr(ag, name)(*args).dtype == np.float32


def test_sinc_at_0_is_1_with_slope_0_and_the_second_derivative_of_its_series():
    x = ag.tensor([0.0, 0.0], requires_grad=True)
    out = ag.sinc(x)
    np.testing.assert_array_equal(out.data, [1.0, 1.0])
    (g,) = ag.autograd_grad(out.sum(), [x], create_graph=True)
    np.testing.assert_array_equal(g.data, [0.0, 0.0])
    (second,) = ag.autograd_grad(g.sum(), [x])
    np.testing.assert_allclose(second.data, [-math.pi ** 2 / 3] * 2, rtol=1e-12)


@pytest.mark.parametrize("dtype, x", [(np.float64, 1e-6), (np.float64, 0.0099), (np.float64, 0.0101),
                                      (np.float32, 2e-4), (np.float32, 0.05)])
def test_sinc_slope_is_accurate_near_0_where_the_formula_cancels(dtype, x):
    # d/dx sinc = (pi x cos(pi x) - sin(pi x)) / (pi x**2), in float64 from its series near 0
    t = ag.tensor(np.array([x, -x], dtype), requires_grad=True)
    ag.sinc(t).sum().backward()
    u = math.pi * x
    exact = (u * math.cos(u) - math.sin(u)) / (math.pi * x * x) if x > 1e-3 else \
        -math.pi ** 2 * x / 3 + math.pi ** 4 * x ** 3 / 30
    tolerance = 1e-12 if dtype == np.float64 else 1e-5
    np.testing.assert_allclose(t.grad.data, [exact, -exact], rtol=tolerance, atol=tolerance * 1e-3)


def test_sinc_jvp_at_0_is_0():
    _, tangent = ag.jvp(ag.sinc, (np.array([0.0, 0.5]),), (np.array([1.0, 1.0]),))
    np.testing.assert_allclose(tangent, [0.0, -4 / math.pi], rtol=1e-12)


def test_nan_to_num_passes_the_gradient_where_x_is_finite_only():
    x = ag.tensor([1.0, np.nan, np.inf, -np.inf, -2.0], requires_grad=True)
    out = ag.nan_to_num(x, nan=7.0, posinf=8.0, neginf=-9.0)
    np.testing.assert_array_equal(out.data, [1.0, 7.0, 8.0, -9.0, -2.0])
    (out * np.arange(1.0, 6.0)).sum().backward()
    np.testing.assert_array_equal(x.grad.data, [1.0, 0.0, 0.0, 0.0, 5.0])
    _, tangent = ag.jvp(ag.nan_to_num, (x.data,), (np.full(5, 3.0),))
    np.testing.assert_array_equal(tangent, [3.0, 0.0, 0.0, 0.0, 3.0])


def test_nan_to_num_defaults_are_numpys_in_the_input_dtype():
    x = np.array([np.nan, np.inf, -np.inf], np.float32)
    out = ag.tensor(x).nan_to_num()
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out.data, np.nan_to_num(x))


@pytest.mark.parametrize("argument", ["nan", "posinf", "neginf"])
def test_nan_to_num_refuses_a_replacement_that_is_not_a_number(argument):
    with pytest.raises(TypeError, match=f"nan_to_num: {argument} must be a real number"):
        ag.nan_to_num(np.array([1.0]), **{argument: "big"})


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_log_sigmoid_is_finite_at_logits_of_1000_with_finite_first_and_second_derivatives(dtype):
    x = ag.tensor(np.array([-1000.0, 1000.0, 0.0], dtype), requires_grad=True)
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        out = ag.log_sigmoid(x)
        (g,) = ag.autograd_grad(out.sum(), [x], create_graph=True)
        (second,) = ag.autograd_grad(g.sum(), [x])
    np.testing.assert_allclose(out.data, [-1000.0, 0.0, -math.log(2)], rtol=1e-6)
    np.testing.assert_allclose(g.data, [1.0, 0.0, 0.5], rtol=1e-6)
    np.testing.assert_allclose(second.data, [0.0, 0.0, -0.25], rtol=1e-6)
    assert out.dtype == g.dtype == dtype


def test_mod_operator_between_tensor_and_number_both_ways():
    x = ag.tensor([7.5, -7.5, 2.0], requires_grad=True)
    left = x % 3
    np.testing.assert_array_equal(left.data, np.mod([7.5, -7.5, 2.0], 3))
    left.sum().backward()
    np.testing.assert_array_equal(x.grad.data, [1.0, 1.0, 1.0])

    y = ag.tensor([2.0, -2.0, 4.0], requires_grad=True)
    right = 7.5 % y
    np.testing.assert_array_equal(right.data, np.mod(7.5, [2.0, -2.0, 4.0]))
    right.sum().backward()
    np.testing.assert_array_equal(y.grad.data, -np.floor(7.5 / np.array([2.0, -2.0, 4.0])))


def test_mod_of_negative_operands_takes_the_divisors_sign_as_numpy():
    x = np.array([-7.0, 7.0, -7.0, 7.0, -6.0])
    y = np.array([3.0, -3.0, -3.0, 3.0, 3.0])
    np.testing.assert_array_equal(ag.mod(x, y).data, [2.0, -2.0, -1.0, 1.0, 0.0])
    np.testing.assert_array_equal(ag.remainder(x, y).data, np.remainder(x, y))
    assert ag.remainder is ag.mod


def test_mod_gradients_are_1_and_minus_floor_of_the_quotient():
    x = ag.tensor([-7.2, 7.2, -7.2, 7.2], requires_grad=True)
    y = ag.tensor([3.0, -3.0, -3.0, 3.0], requires_grad=True)
    ag.mod(x, y).sum().backward()
    np.testing.assert_array_equal(x.grad.data, [1.0] * 4)
    np.testing.assert_array_equal(y.grad.data, [3.0, 3.0, -2.0, -2.0])
    assert ag.gradcheck(lambda a, b: a % b, x.data, y.data)


@pytest.mark.parametrize("name, values", [("fmax", [1.0, 1.0, 3.0]), ("fmin", [1.0, 1.0, 2.0])])
def test_fmax_and_fmin_give_the_gradient_to_the_input_that_is_not_nan(name, values):
    x = ag.tensor([np.nan, 1.0, 2.0, np.nan], requires_grad=True)
    y = ag.tensor([1.0, np.nan, 3.0, np.nan], requires_grad=True)
    out = getattr(ag, name)(x, y)
    np.testing.assert_array_equal(out.data[:3], values)
    assert np.isnan(out.data[3])
    out.sum().backward()
    x_wins = {"fmax": 0.0, "fmin": 1.0}[name]
    np.testing.assert_array_equal(x.grad.data, [0.0, 1.0, x_wins, 0.0])
    np.testing.assert_array_equal(y.grad.data, [1.0, 0.0, 1 - x_wins, 0.0])


@pytest.mark.parametrize("name", ["fmax", "fmin"])
def test_fmax_and_fmin_split_the_gradient_on_ties(name):
    x = ag.tensor([2.0], requires_grad=True)
    y = ag.tensor([2.0], requires_grad=True)
    getattr(ag, name)(x, y).sum().backward()
    assert x.grad.data[0] == y.grad.data[0] == 0.5


@pytest.mark.parametrize("name", ["sign", "floor", "ceil", "round"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_step_functions_have_a_zero_gradient_of_the_inputs_dtype_at_the_jumps_too(name, dtype):
    x = ag.tensor(np.array([-1.0, -0.5, 0.0, 0.5, 2.5], dtype), requires_grad=True)
    out = getattr(ag, name)(x)
    np.testing.assert_array_equal(out.data, getattr(np, name)(x.data))
    out.sum().backward()
    assert x.grad.dtype == dtype
    np.testing.assert_array_equal(x.grad.data, np.zeros(5))


def test_round_takes_decimals_as_numpy():
    x = np.array([1.2345, -12.5, 149.0, 0.25])
    for decimals in (0, 2, -1):
        np.testing.assert_array_equal(ag.round(x, decimals).data, np.round(x, decimals))
        np.testing.assert_array_equal(ag.tensor(x).round(decimals).data, np.round(x, decimals))


def test_round_refuses_decimals_that_are_not_an_integer():
    with pytest.raises(TypeError, match="round: decimals must be an integer, got 0.5"):
        ag.round(np.array([1.25]), 0.5)


def test_hypot_at_the_origin_has_gradient_0_not_nan():
    x = ag.tensor([0.0, 3.0], requires_grad=True)
    y = ag.tensor([0.0, 4.0], requires_grad=True)
    ag.hypot(x, y).sum().backward()
    np.testing.assert_allclose(x.grad.data, [0.0, 0.6])
    np.testing.assert_allclose(y.grad.data, [0.0, 0.8])


def test_logaddexp_is_stable_at_1000_in_both_orders():
    x = ag.tensor([1000.0, -1000.0, 1000.0], requires_grad=True)
    y = ag.tensor([1000.0, 0.0, -1000.0], requires_grad=True)
    with np.errstate(over="raise", invalid="raise"):
        out = ag.logaddexp(x, y)
        out.sum().backward()
    np.testing.assert_allclose(out.data, [1000 + math.log(2), 0.0, 1000.0])
    np.testing.assert_allclose(x.grad.data, [0.5, 0.0, 1.0])
    np.testing.assert_allclose(y.grad.data, [0.5, 1.0, 0.0])


def test_arctan2_takes_numpys_argument_order():
    y, x = ag.tensor(1.0, requires_grad=True), ag.tensor(-1.0, requires_grad=True)
    out = ag.arctan2(y, x)
    assert float(out.data) == pytest.approx(3 * math.pi / 4)
    out.backward()
    # d/dy atan2(y, x) = x / (x**2 + y**2), d/dx = -y / (x**2 + y**2)
    assert float(y.grad.data) == pytest.approx(-0.5) and float(x.grad.data) == pytest.approx(-0.5)


def test_power_of_a_negative_base_to_a_fractional_exponent_is_nan_as_in_numpy():
    with np.errstate(invalid="ignore"):
        out = ag.power(ag.tensor([-2.0, 2.0]), 0.5)
        expected = np.power([-2.0, 2.0], 0.5)
    np.testing.assert_array_equal(np.isnan(out.data), [True, False])
    np.testing.assert_allclose(out.data[1], expected[1])


@pytest.mark.parametrize("condition", [np.array([True, False]), [True, False],
                                       ag.tensor(np.array([1.0, 0.0]))])
def test_where_of_arrays_and_numbers_is_a_tensor_like_every_public_op(condition):
    out = ag.where(condition, np.array([1.0, 2.0]), 0.5)
    assert isinstance(out, ag.Tensor)
    np.testing.assert_array_equal(out.data, [1.0, 0.5])


@pytest.mark.parametrize("size", [7, 2000])   # the NumPy twin and the Numba kernel
def test_relu_gradient_reads_the_output_and_is_the_input_mask(size):
    from autograd_lite.declaration import PRIMITIVES
    special = np.array([np.nan, -0.0, 0.0, -1.0, 2.0, np.inf, -np.inf], np.float32)
    x = np.resize(special, size)
    a = ag.relu(x).data
    g = np.arange(1, size + 1, dtype=np.float32)
    unused = np.full_like(x, np.nan)   # the rule must not need the input
    expected = g * (x > 0)
    np.testing.assert_array_equal(PRIMITIVES["relu"].vjps[0](g, a, unused), expected)
    xt = ag.tensor(x, requires_grad=True)
    ag.relu(xt).backward(ag.tensor(g))
    np.testing.assert_array_equal(xt.grad.data, expected)
