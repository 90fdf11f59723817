"""Forward mode itself: tangents of broadcast inputs, several primals and outputs, nesting,
dtypes and errors. Each primitive's JVP rule is checked by the table-driven tests (test_table.py).
"""
import numpy as np
import pytest

import autograd_lite as ag
from autograd_lite import engine
from autograd_lite import primitives as P
from autograd_lite.forward import jvp


# ---------------------------------------------------------------- forward mode itself
def test_jvp_tangent_of_broadcast_input_is_stretched_to_the_output_shape():
    x, y = np.ones((3, 1)), np.arange(12.0).reshape(3, 4)
    _, t = jvp(lambda x: x + y, (x,), (np.full((3, 1), 2.0),))
    np.testing.assert_array_equal(t, np.full((3, 4), 2.0))


def test_jvp_of_an_output_that_ignores_the_input_is_zero():
    _, t = jvp(lambda x: ag.tensor(np.ones(3)) * 2.0, (np.ones(2),), (np.ones(2),))
    np.testing.assert_array_equal(t, np.zeros(3))


def test_jvp_with_several_primals_and_outputs():
    x, y = np.array([1.0, 2.0]), np.array([3.0, 4.0])
    (s, p), (ds, dp) = jvp(lambda x, y: (x + y, x * y), (x, y), (np.ones(2), np.zeros(2)))
    np.testing.assert_array_equal(ds, np.ones(2))
    np.testing.assert_array_equal(dp, y)


def test_jvp_keeps_no_graph_and_leaves_no_trace_behind():
    x = ag.tensor(np.array([0.5, 1.5]))
    y, t = jvp(lambda x: (x.sin() * x).sum(), (x,), (np.ones(2),))
    assert isinstance(y, ag.Tensor) and isinstance(t, ag.Tensor)
    assert not y.requires_grad and y.is_leaf
    assert engine.jvp_traces == []


def test_jvp_arrays_in_give_arrays_out():
    y, t = jvp(lambda x: x.exp(), np.zeros(2), np.ones(2))
    assert type(y) is np.ndarray and type(t) is np.ndarray


def test_jvp_mismatched_tangent_shape_raises_with_both_shapes():
    with pytest.raises(ValueError, match=r"tangent 0 has shape \(3,\) but primal 0 has shape \(2,\)"):
        jvp(lambda x: x * 2.0, (np.ones(2),), (np.ones(3),))


def test_jvp_mismatched_number_of_tangents_raises():
    with pytest.raises(ValueError, match="2 primals but 1 tangents"):
        jvp(lambda x, y: x * y, (np.ones(2), np.ones(2)), (np.ones(2),))


def test_jvp_of_integer_primal_raises():
    with pytest.raises(TypeError, match="primal 0 has dtype int"):
        jvp(lambda x: x * 2, (np.arange(3),), (np.ones(3),))


def test_jvp_keeps_float32():
    x = np.ones(3, dtype=np.float32)
    y, t = jvp(lambda x: (x * 2.0).tanh(), x, np.ones(3))
    assert y.dtype == np.float32 and t.dtype == np.float32


def test_jvp_error_names_the_primitive_without_a_jvp_rule():
    no_jvp = P.Primitive("test_no_jvp_rule", lambda x: x * 2, register=False)
    no_jvp.defvjp(lambda g, ans, x: g * 2)
    with pytest.raises(NotImplementedError, match="'test_no_jvp_rule' has no JVP rule"):
        jvp(lambda x: no_jvp(x), np.ones(2), np.ones(2))
    assert engine.jvp_traces == []


def test_nested_jvp_gives_the_second_derivative():
    x = np.array([0.3, -1.2])
    _, second = jvp(lambda x: jvp(ag.tanh, x, np.ones(2))[1], x, np.ones(2))
    np.testing.assert_allclose(second, -2 * np.tanh(x) * (1 - np.tanh(x) ** 2), rtol=1e-12)


def test_nested_jvp_tangents_do_not_get_confused():
    # d/dy [ d/dx (x * y) ] at x = y = 1 is 1; perturbation confusion would give 2
    def inner(y):
        return jvp(lambda x: x * y, np.array(1.0), np.array(1.0))[1]
    _, t = jvp(inner, np.array(1.0), np.array(1.0))
    assert float(t) == 1.0


def test_jvp_under_no_grad_still_carries_tangents():
    with ag.no_grad():
        _, t = jvp(lambda x: (x * x).sum(), np.array([1.0, 2.0]), np.array([1.0, 1.0]))
    assert float(t) == 6.0


def test_jvp_of_one_output_returned_twice_gives_its_tangent_twice():
    _, (t1, t2) = jvp(lambda x: (x * 3.0,) * 2, np.ones(2), np.ones(2))
    np.testing.assert_array_equal(t1, [3.0, 3.0])
    np.testing.assert_array_equal(t2, [3.0, 3.0])
