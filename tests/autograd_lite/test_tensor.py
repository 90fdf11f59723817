"""The Tensor's API, NumPy interop, dtype rules, and the clear errors for bad input."""
import numpy as np
import pytest

import autograd_lite as ag


def test_basic_attributes():
    t = ag.tensor([[1.0, 2.0, 3.0]], requires_grad=True)
    assert t.shape == (1, 3) and t.ndim == 2 and t.size == 3 and t.dtype == np.float64
    assert t.T.shape == (3, 1)
    assert isinstance(t.numpy(), np.ndarray)
    assert ag.tensor([[4.0]]).item() == 4.0
    assert t.is_leaf and t.requires_grad and t.grad is None


def test_repr_shows_data_and_where_it_came_from():
    x = ag.tensor([1.0, 2.0], requires_grad=True, name="x")
    assert repr(x) == "tensor([1., 2.], requires_grad=True, name='x')"
    assert "op=multiply" in repr(x * 2)
    assert "dtype=float32" in repr(ag.tensor([1.0], dtype=np.float32))


def test_detach_shares_data_without_graph():
    x = ag.tensor([1.0], requires_grad=True)
    d = (x * 2).detach()
    assert not d.requires_grad and d.is_leaf


def test_zero_grad_forgets_the_gradient():
    x = ag.tensor([1.0], requires_grad=True)
    (x * 2).sum().backward()
    x.zero_grad()
    assert x.grad is None


def test_numpy_array_on_the_left_gives_a_tensor():
    x = ag.tensor([1.0, 2.0], requires_grad=True)
    for out in (np.ones(2) + x, np.ones(2) * x, np.ones(2) - x, np.ones(2) / x, np.ones((2, 2)) @ x):
        assert isinstance(out, ag.Tensor) and out.requires_grad


def test_np_asarray_reads_the_data():
    x = ag.tensor([1.0, 2.0])
    assert np.asarray(x) is x.data
    np.testing.assert_array_equal(np.asarray(x, dtype=np.float32), [1, 2])


def test_python_scalars_do_not_promote_float32():
    x = ag.tensor([1.0, 2.0], dtype=np.float32, requires_grad=True)
    for out in (x * 2.5, 2.5 * x, x + 1, x / 3.0, x ** 2, 2.0 ** x, x - 0.5):
        assert out.dtype == np.float32


def test_comparisons_are_plain_boolean_arrays():
    x = ag.tensor([1.0, -1.0], requires_grad=True)
    mask = x > 0
    assert isinstance(mask, np.ndarray) and mask.dtype == bool
    np.testing.assert_array_equal(x[mask].data, [1.0])


def test_tensor_exponent_and_scalar_base():
    x = ag.tensor(2.0, requires_grad=True)
    y = ag.tensor(3.0, requires_grad=True)
    (x ** y).backward()
    assert x.grad.item() == pytest.approx(3 * 4) and y.grad.item() == pytest.approx(8 * np.log(2))
    z = ag.tensor(1.5, requires_grad=True)
    (2.0 ** z).backward()
    assert z.grad.item() == pytest.approx(2 ** 1.5 * np.log(2))


def test_integer_data_cannot_require_grad():
    with pytest.raises(TypeError, match="requires_grad=True needs floating-point data, got dtype int64"):
        ag.tensor([1, 2], requires_grad=True)
    with pytest.raises(TypeError, match="bool"):
        ag.tensor([True], requires_grad=True)


def test_integer_tensors_compute_without_gradients():
    i = ag.tensor([1, 2, 3])
    x = ag.tensor([0.5, 0.5, 0.5], requires_grad=True)
    (i * x).sum().backward()
    np.testing.assert_allclose(x.grad.data, [1, 2, 3])


def test_matmul_shape_mismatch_names_both_shapes():
    a, b = ag.tensor(np.ones((100, 784))), ag.tensor(np.ones((100, 10)))
    with pytest.raises(ValueError, match=r"matmul: shapes \(100, 784\) and \(100, 10\) do not align: 784 != 100"):
        a @ b


def test_broadcasting_mismatch_names_the_op_and_shapes():
    with pytest.raises(ValueError, match=r"add: .*\(2, 3\).*\(4,\)"):
        ag.tensor(np.ones((2, 3))) + ag.tensor(np.ones(4))


def test_backward_on_a_non_scalar_without_gradient_says_what_to_do():
    x = ag.tensor([1.0, 2.0, 3.0], requires_grad=True)
    with pytest.raises(RuntimeError, match=r"shape \(3,\), not a single element.*gradient="):
        (x * 2).backward()


def test_backward_with_a_gradient_of_the_wrong_shape():
    x = ag.tensor([1.0, 2.0, 3.0], requires_grad=True)
    with pytest.raises(ValueError, match=r"gradient has shape \(2,\).*shape \(3,\)"):
        (x * 2).backward(gradient=np.ones(2))


def test_backward_on_a_tensor_without_graph_explains_why():
    with pytest.raises(RuntimeError, match="does not require grad"):
        ag.tensor(1.0).backward()


def test_indexing_out_of_range_names_axis_and_size():
    x = ag.tensor(np.zeros((3, 4)))
    with pytest.raises(IndexError, match="index 5 is out of range for axis 1 with size 4"):
        x[0, 5]
    with pytest.raises(IndexError, match="index 3 is out of range for axis 0 with size 3"):
        x[np.array([0, 3])]
    with pytest.raises(IndexError, match="too many indices"):
        x[0, 0, 0]


def test_bad_axis_names_the_op():
    with pytest.raises(ValueError, match="sum: axis 2 is out of range for a tensor with 2 dimensions"):
        ag.tensor(np.zeros((2, 2))).sum(axis=2)


def test_bad_reshape_names_both_shapes():
    with pytest.raises(ValueError, match=r"reshape: cannot reshape a tensor of shape \(2, 3\).*\(4, 2\)"):
        ag.tensor(np.zeros((2, 3))).reshape(4, 2)


def test_indexing_kinds():
    x = ag.tensor(np.arange(12.0).reshape(3, 4), requires_grad=True)
    np.testing.assert_array_equal(x[1].data, [4, 5, 6, 7])
    np.testing.assert_array_equal(x[:, 1:3].data, x.data[:, 1:3])
    np.testing.assert_array_equal(x[..., -1].data, [3, 7, 11])
    np.testing.assert_array_equal(x[[0, 2], [1, 3]].data, [1, 11])
    np.testing.assert_array_equal(x[ag.tensor([2, 0])].data, x.data[[2, 0]])
    x[1:, ::2].sum().backward()
    np.testing.assert_array_equal(x.grad.data, [[0, 0, 0, 0], [1, 0, 1, 0], [1, 0, 1, 0]])



@pytest.mark.parametrize("mask_shape", [(4,), (3, 4), (2, 3, 4)])
def test_boolean_mask_after_an_ellipsis_takes_as_many_axes_as_it_has(mask_shape):
    data = np.arange(24.0).reshape(2, 3, 4)
    mask = np.random.default_rng(0).random(mask_shape) > 0.4
    x = ag.tensor(data, requires_grad=True)
    out = x[..., mask]
    np.testing.assert_array_equal(out.data, data[..., mask])
    out.sum().backward()
    np.testing.assert_array_equal(x.grad.data, np.broadcast_to(mask, data.shape))


def test_boolean_scalars_add_an_axis_as_in_numpy():
    data = np.arange(6.0).reshape(2, 3)
    x = ag.tensor(data)
    for index in [True, False, (Ellipsis, True), (0, True, 1), (None, True)]:
        np.testing.assert_array_equal(x[index].data, data[index])


@pytest.mark.parametrize("index", [[], (slice(None), []), [[]], ([], []), (Ellipsis, [])])
def test_an_empty_list_selects_nothing_and_its_gradient_is_zero(index):
    data = np.arange(12.0).reshape(3, 4)
    x = ag.tensor(data, requires_grad=True)
    out = x[index]
    assert out.shape == data[index].shape and out.size == 0
    out.sum().backward()
    np.testing.assert_array_equal(x.grad.data, np.zeros((3, 4)))
    np.testing.assert_array_equal(ag.scatter_add(np.zeros(out.shape), index, (3, 4)).data, np.zeros((3, 4)))


def test_index_errors_name_what_is_wrong():
    x = ag.tensor(np.zeros((2, 3, 4)))
    with pytest.raises(IndexError, match="too many indices"):
        x[..., np.ones((2, 3, 4), bool), 0]
    with pytest.raises(IndexError, match="single ellipsis"):
        x[..., 0, ...]
    with pytest.raises(IndexError, match=r"boolean mask of shape \(3, 4\) does not match"):
        x[np.ones((3, 4), bool), ...]
    with pytest.raises(IndexError, match="must be integer or boolean"):
        x[np.array([], dtype=float)]

def test_matmul_shapes_one_two_and_batched():
    rng = np.random.default_rng(1)
    for sa, sb in [((3,), (3,)), ((2, 3), (3,)), ((3,), (3, 4)), ((2, 3), (3, 4)), ((5, 2, 3), (3, 4)),
                   ((5, 2, 3), (5, 3, 4))]:
        a, b = rng.standard_normal(sa), rng.standard_normal(sb)
        np.testing.assert_allclose((ag.tensor(a) @ ag.tensor(b)).data, a @ b)


def test_gradcheck_reports_input_element_and_values():
    bad = ag.primitive(lambda x: x * x, name="square_with_a_wrong_rule")
    bad.defvjp(lambda g, ans, x: g * x)          # should be 2 g x
    bad.defjvp(lambda t, ans, x: 2 * t * x)
    try:
        with pytest.raises(ag.GradcheckError, match=r"input 0 \(shape \(2,\)\), element \(0,\): analytic .* numeric"):
            ag.gradcheck(lambda x: bad(x), np.array([1.0, 2.0]))
    finally:
        del ag.PRIMITIVES["square_with_a_wrong_rule"]


def test_gradcheck_passes_a_correct_function():
    assert ag.gradcheck(lambda a, b: (a @ b).tanh().sum(1), np.random.rand(2, 3), np.random.rand(3, 4))
