"""One rule for what the transforms differentiate: grad, vjp, jvp and jacobian (both modes) refuse an
output that is not floating-point (a boolean or integer result has no derivative), as PyTorch
and JAX do, instead of one accepting it with zero gradients and another refusing it."""
from __future__ import annotations

import numpy as np
import pytest

import autograd_lite as ag

X = np.array([1.0, -2.0])

NON_FLOAT_OUTPUTS = {
    "numpy bool": lambda x: x.sum() > 0,
    "bool array": lambda x: np.asarray(x).sum() > 0,
    "bool tensor": lambda x: ag.tensor(np.asarray(x).sum() > 0),
    "integer tensor": lambda x: (x * 2).astype(np.int64).sum(),
    "python int": lambda x: 3,
}


@pytest.mark.parametrize("f", NON_FLOAT_OUTPUTS.values(), ids=NON_FLOAT_OUTPUTS.keys())
def test_grad_of_a_non_float_output_raises_naming_the_dtype(f):
    with pytest.raises(TypeError, match=r"grad: f's output has dtype (bool|int64), but only floating-point"):
        ag.grad(f)(X)


@pytest.mark.parametrize("f", NON_FLOAT_OUTPUTS.values(), ids=NON_FLOAT_OUTPUTS.keys())
def test_vjp_of_a_non_float_output_raises_like_grad(f):
    with pytest.raises(TypeError, match=r"vjp: output 0 has dtype (bool|int64), but only floating-point"):
        ag.vjp(f, X)


@pytest.mark.parametrize("f", NON_FLOAT_OUTPUTS.values(), ids=NON_FLOAT_OUTPUTS.keys())
def test_jvp_of_a_non_float_output_raises_like_grad(f):
    # it used to return an integer (or a float zero) tangent for it
    with pytest.raises(TypeError, match=r"jvp: output 0 has dtype (bool|int64), but only floating-point"):
        ag.jvp(f, (X,), (np.ones(2),))


def test_jvp_names_the_non_float_output_among_several_and_leaves_no_trace():
    with pytest.raises(TypeError, match="jvp: output 1 has dtype int64"):
        ag.jvp(lambda x: (x * 2, (x * 2).astype(np.int64)), (X,), (np.ones(2),))
    assert ag.engine.jvp_traces == []


def test_jvp_of_an_output_that_is_not_a_number_raises():
    with pytest.raises(TypeError, match="jvp: f must return Tensors, arrays or numbers .* is str"):
        ag.jvp(lambda x: "y", (X,), (np.ones(2),))


@pytest.mark.parametrize("mode", ["fwd", "rev", "auto"])
def test_jacobian_of_a_boolean_output_raises_in_every_mode(mode):
    with pytest.raises(TypeError, match="jacobian: output 0 has dtype bool"):
        ag.jacobian(lambda x: x > 0, mode=mode)(X)


def test_vjp_names_the_non_float_output_among_several():
    with pytest.raises(TypeError, match="vjp: output 1 has dtype bool"):
        ag.vjp(lambda x: (x * 2, x > 0), X)


def test_grad_of_an_output_that_is_not_a_number_raises():
    with pytest.raises(TypeError, match="grad: f must return Tensors, arrays or numbers .* is str"):
        ag.grad(lambda x: "loss")(X)


def test_a_boolean_aux_output_still_passes_through_grad():
    (value, positive), gradient = ag.value_and_grad(lambda x: ((x * x).sum(), x > 0), has_aux=True)(X)
    np.testing.assert_array_equal(positive, [True, False])
    np.testing.assert_allclose(gradient, 2 * X)


def test_float_outputs_that_ignore_the_input_still_have_zero_gradients():
    np.testing.assert_array_equal(ag.grad(lambda x: 3.0)(X), np.zeros(2))
    _, pullback = ag.vjp(lambda x: np.float32(1.0), X)
    np.testing.assert_array_equal(pullback(np.float32(1.0))[0], np.zeros(2))
    _, tangent = ag.jvp(lambda x: 2.0, (X,), (np.ones(2),))
    assert tangent == 0.0


def test_jacobian_in_reverse_mode_names_itself_for_an_integer_argument():
    with pytest.raises(TypeError, match="jacobian: argument 0 has dtype int64"):
        ag.jacobian(lambda x: x * 1.0, mode="rev")(np.array([1, 2]))


@pytest.mark.parametrize("x", [np.array([1, 2]), np.zeros(0, dtype=np.int64)], ids=["ints", "empty"])
def test_jacobian_in_forward_mode_names_itself_and_the_argument_for_an_integer_argument(x):
    with pytest.raises(TypeError, match="jacobian: argument 1 has dtype int64"):
        ag.jacobian(lambda y, x: x * y, argnums=1, mode="fwd")(1.0, x)
