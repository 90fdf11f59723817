"""Reductions and scans at the points the table-driven tests (test_table.py) avoid: products and
cumulative products with zeros, norms at 0, sorts with ties; the ops built from other primitives
(take_along_axis, the inf-norms and matrix norms), which the table does not reach; argmax and
argmin, which have no gradient; and the argument checks."""
import warnings
from itertools import combinations

import numpy as np
import pytest

import autograd_lite as ag
from autograd_lite.forward import jvp


def _check_jvp(fn, x, eps=1e-6, rtol=1e-6, atol=1e-8):
    """Forward mode against central differences, along a random tangent."""
    t = np.random.default_rng(1).standard_normal(x.shape)
    value, tangent = jvp(fn, (x,), (t,))
    np.testing.assert_allclose(value, fn(x).data, rtol=1e-12, atol=0)
    expected = (fn(x + eps * t).data - fn(x - eps * t).data) / (2 * eps)
    np.testing.assert_allclose(tangent, expected, rtol=rtol, atol=atol)


def _others(x):
    """The product of the other elements, by brute force."""
    return np.array([np.prod(np.delete(x, i)) for i in range(x.size)])


# ---------------------------------------------------------------- prod
def test_prod_gradient_with_one_zero_goes_to_that_element_only():
    x = np.array([2.0, 0.0, 3.0, -4.0])
    leaf = ag.tensor(x, requires_grad=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = ag.prod(leaf)
        out.backward()
    assert out.item() == 0.0
    np.testing.assert_array_equal(leaf.grad.data, [0.0, -24.0, 0.0, 0.0])


def test_prod_gradient_with_two_zeros_is_zero_everywhere():
    leaf = ag.tensor([[2.0, 0.0, 3.0, 0.0], [1.0, 2.0, 3.0, 4.0]], requires_grad=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = ag.prod(leaf, axis=1)
        out.sum().backward()
    np.testing.assert_array_equal(out.data, [0.0, 24.0])
    np.testing.assert_array_equal(leaf.grad.data, [[0, 0, 0, 0], [24, 12, 8, 6]])


@pytest.mark.parametrize("x", [[2.0, 0.0, 3.0, -1.5], [0.0, 0.0, 3.0, 2.0], [0.0, 0.0, 0.0, 2.0]])
def test_prod_second_derivative_with_zeros_is_the_product_of_the_other_two(x):
    # d2 prod / dx_i dx_j = prod of the elements other than i and j (0 on the diagonal)
    x = np.array(x)
    expected = np.zeros((4, 4))
    for i, j in combinations(range(4), 2):
        expected[i, j] = expected[j, i] = np.prod(np.delete(x, [i, j]))
    np.testing.assert_allclose(ag.hessian(ag.prod)(x), expected)       # forward over reverse
    leaf = ag.tensor(x, requires_grad=True)
    (g,) = ag.autograd_grad(ag.prod(leaf), [leaf], create_graph=True)
    rows = [ag.autograd_grad(g[i], [leaf], retain_graph=True)[0].data for i in range(4)]
    np.testing.assert_allclose(np.stack(rows), expected)                 # reverse over reverse


def test_prod_over_axes_with_zeros_matches_the_product_of_the_others():
    x = np.arange(24.0).reshape(2, 3, 4) % 5 - 1.0      # a few zeros
    leaf = ag.tensor(x, requires_grad=True)
    ag.prod(leaf, axis=(0, 2)).sum().backward()
    moved = np.moveaxis(x, 1, 0).reshape(3, -1)
    expected = np.moveaxis(np.stack([_others(row) for row in moved]).reshape(3, 2, 4), 0, 1)
    np.testing.assert_allclose(leaf.grad.data, expected)
    np.testing.assert_array_equal(ag.prod(x, axis=(0, 2), keepdims=True).data,
                                  np.prod(x, axis=(0, 2), keepdims=True))


def test_prod_of_no_elements_is_one_with_an_empty_gradient():
    leaf = ag.tensor(np.zeros((0, 3)), requires_grad=True)
    out = ag.prod(leaf, axis=0)
    np.testing.assert_array_equal(out.data, [1.0, 1.0, 1.0])
    out.sum().backward()
    assert leaf.grad.shape == (0, 3)


# ---------------------------------------------------------------- cumsum, cumprod
@pytest.mark.parametrize("name", ["cumsum", "cumprod"])
def test_scans_with_axis_none_flatten_as_numpy_does(name):
    x = np.random.default_rng(0).uniform(0.5, 1.5, (2, 3))
    out = getattr(ag, name)(x)
    assert out.shape == (6,)
    np.testing.assert_allclose(out.data, getattr(np, name)(x))
    np.testing.assert_allclose(getattr(ag, name)(x, axis=0).data, getattr(np, name)(x, axis=0))
    np.testing.assert_allclose(getattr(ag, name)(np.array(2.0)).data, [2.0])  # 0-d: a 1-element scan
    assert ag.gradcheck(lambda t: getattr(ag, name)(t), x)
    _check_jvp(lambda t: getattr(ag, name)(t), x)


def _cumprod_jacobian(x):
    """d out[k] / d x[i] = prod_{j <= k, j != i} x[j] for i <= k."""
    n = x.size
    return np.array([[np.prod(np.delete(x[:k + 1], i)) if i <= k else 0.0 for i in range(n)]
                     for k in range(n)])


@pytest.mark.parametrize("x", [[2.0, 0.0, 3.0, 4.0, 0.0, 5.0], [0.0, 0.0, 1.5, 2.0, 3.0, -1.0],
                               [1.5, 2.0, -3.0, 0.5, 2.0, 0.0]])
@pytest.mark.parametrize("mode", ["rev", "fwd"])
def test_cumprod_jacobian_is_exact_with_zeros(x, mode):
    x = np.array(x)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        measured = ag.jacobian(ag.cumprod, mode=mode)(x)
    np.testing.assert_allclose(measured, _cumprod_jacobian(x))


def test_cumprod_second_derivative_is_exact_with_zeros():
    # d2 sum_k w[k] out[k] / dx_i dx_l = sum_{k >= i, l} w[k] prod_{j <= k, j != i, l} x[j]
    x = np.array([2.0, 0.0, 3.0, 0.0, 1.5])
    w = np.array([1.0, -2.0, 0.5, 3.0, 1.0])
    expected = np.zeros((5, 5))
    for i, l in combinations(range(5), 2):
        expected[i, l] = expected[l, i] = sum(w[k] * np.prod(np.delete(x[:k + 1], [i, l]))
                                              for k in range(l, 5))
    np.testing.assert_allclose(ag.hessian(lambda t: (ag.cumprod(t) * w).sum())(x), expected)


def test_cumprod_gradient_along_an_axis_with_zeros_matches_each_row():
    x = np.array([[1.0, 0.0, 2.0], [0.0, 3.0, 0.0]])
    leaf = ag.tensor(x.T.copy(), requires_grad=True)
    g = np.array([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]])
    ag.cumprod(leaf, axis=0).backward(g)
    for r in range(2):
        np.testing.assert_allclose(leaf.grad.data[:, r], g[:, r] @ _cumprod_jacobian(x[r]))


# ---------------------------------------------------------------- sort, take_along_axis
def test_sort_with_ties_sends_each_place_its_cotangent_in_the_stable_order():
    # sorted: [0 (x2), 1 (x0), 1 (x1)]: the tied 1s keep their order, so x0 gets place 1's
    # cotangent and x1 place 2's
    leaf = ag.tensor([1.0, 1.0, 0.0], requires_grad=True)
    out = ag.sort(leaf)
    np.testing.assert_array_equal(out.data, [0.0, 1.0, 1.0])
    out.backward(np.array([10.0, 20.0, 30.0]))
    np.testing.assert_array_equal(leaf.grad.data, [20.0, 30.0, 10.0])
    _, tangent = jvp(ag.sort, (np.array([1.0, 1.0, 0.0]),), (np.array([1.0, 2.0, 3.0]),))
    np.testing.assert_array_equal(tangent, [3.0, 1.0, 2.0])


def test_sort_follows_numpy_on_axes_and_nan():
    x = np.array([[3.0, np.nan, 1.0], [2.0, -1.0, 5.0]])
    for axis in (-1, 0, None):
        np.testing.assert_array_equal(ag.sort(x, axis=axis).data, np.sort(x, axis=axis))
    with pytest.raises(ValueError, match="sort: axis -1 is out of range"):
        ag.sort(np.array(1.0))


def test_take_along_axis_adds_up_repeated_indices():
    x = np.random.default_rng(0).standard_normal((3, 4))
    indices = np.array([[0, 0, 3], [1, 1, 1], [-1, 2, 0]])
    out = ag.take_along_axis(x, indices, axis=1)
    np.testing.assert_array_equal(out.data, np.take_along_axis(x, indices, axis=1))
    leaf = ag.tensor(x, requires_grad=True)
    ag.take_along_axis(leaf, indices, axis=1).sum().backward()
    np.testing.assert_array_equal(leaf.grad.data, [[2, 0, 0, 1], [0, 3, 0, 0], [1, 0, 1, 1]])
    assert ag.gradcheck(lambda t: ag.take_along_axis(t, indices, axis=1) * np.arange(9.0).reshape(3, 3), x)
    _check_jvp(lambda t: ag.take_along_axis(t, indices, axis=1), x)


def test_take_along_axis_broadcasts_and_flattens_as_numpy_does():
    x = np.arange(12.0).reshape(3, 4)
    column = np.array([[2], [0], [3]])
    np.testing.assert_array_equal(ag.take_along_axis(x, column, axis=1).data,
                                  np.take_along_axis(x, column, axis=1))
    row = np.array([[2, 0, 1, 1]])
    np.testing.assert_array_equal(ag.take_along_axis(x, row, axis=0).data,
                                  np.take_along_axis(x, row, axis=0))
    flat = np.array([11, 0, 5])
    np.testing.assert_array_equal(ag.take_along_axis(x, flat, axis=None).data,
                                  np.take_along_axis(x, flat, axis=None))


@pytest.mark.parametrize("indices, axis, error, message", [
    (np.array([[0, 4]]), 1, IndexError, "take_along_axis: index 4 is out of range for axis 1 with size 4"),
    (np.array([0, 1]), 1, ValueError, "take_along_axis: indices of shape \\(2,\\) must have as many axes"),
    (np.array([[0.0]]), 1, TypeError, "take_along_axis: indices must be integers"),
    (np.array([[0], [1]]), 1, ValueError, "do not broadcast with the tensor of shape \\(3, 4\\)"),
    (np.array([[0]]), None, ValueError, "with axis=None the indices must be 1-D"),
])
def test_take_along_axis_refuses_bad_indices(indices, axis, error, message):
    with pytest.raises(error, match=message):
        ag.take_along_axis(np.zeros((3, 4)), indices, axis=axis)


# ---------------------------------------------------------------- argmax, argmin
@pytest.mark.parametrize("name", ["argmax", "argmin"])
def test_argmax_and_argmin_are_numpy_indices_without_a_gradient(name):
    x = np.array([[1.0, 5.0, 5.0], [-2.0, -7.0, 0.0]])
    leaf = ag.tensor(x, requires_grad=True)
    for axis in (None, 0, 1, -1):
        for keepdims in (False, True):
            out = getattr(ag, name)(leaf, axis=axis, keepdims=keepdims)
            assert isinstance(out, ag.Tensor) and not out.requires_grad
            assert out.dtype.kind == "i"
            np.testing.assert_array_equal(out.data, getattr(np, name)(x, axis=axis, keepdims=keepdims))
    assert getattr(leaf, name)().item() == getattr(np, name)(x)
    rows = getattr(ag, name)(leaf, axis=1)
    np.testing.assert_array_equal(leaf[np.arange(2), rows].data, getattr(np, name[3:])(x, axis=1))


@pytest.mark.parametrize("name", ["argmax", "argmin"])
def test_argmax_of_an_empty_axis_is_a_clear_error(name):
    with pytest.raises(ValueError, match=f"{name}: cannot search an empty axis"):
        getattr(ag, name)(np.zeros((2, 0)), axis=1)
    np.testing.assert_array_equal(getattr(ag, name)(np.zeros((0, 2)), axis=1).data, np.zeros(0))


# ---------------------------------------------------------------- norm
@pytest.mark.parametrize("ord", [None, 1, 2, 3, 1.5, np.inf, -np.inf, 0])
def test_vector_norms_follow_numpy(ord):
    x = np.array([[3.0, -4.0, 0.5], [1.0, 2.0, -2.5]])
    for axis in (1, 0, -1):
        for keepdims in (False, True):
            np.testing.assert_allclose(ag.norm(x, ord=ord, axis=axis, keepdims=keepdims).data,
                                       np.linalg.norm(x, ord=ord, axis=axis, keepdims=keepdims))
    np.testing.assert_allclose(ag.norm(x[0], ord=ord).data, np.linalg.norm(x[0], ord=ord))


@pytest.mark.parametrize("ord", [None, "fro", 1, -1, np.inf, -np.inf])
def test_matrix_norms_follow_numpy(ord):
    x = np.arange(24.0).reshape(2, 3, 4) % 7 - 3.0
    for axis in ((1, 2), (2, 1), (0, 2)):
        for keepdims in (False, True):
            np.testing.assert_allclose(ag.norm(x, ord=ord, axis=axis, keepdims=keepdims).data,
                                       np.linalg.norm(x, ord=ord, axis=axis, keepdims=keepdims))
    np.testing.assert_allclose(ag.norm(x[0], ord=ord).data, np.linalg.norm(x[0], ord=ord))


@pytest.mark.parametrize("ord, axis", [(np.inf, 1), (-np.inf, 0), (1, (0, 1)), (-1, (1, 0)),
                                       (np.inf, (0, 1)), (-np.inf, (1, 0))])
def test_norms_made_of_max_and_sums_have_exact_gradients(ord, axis):
    x = np.array([[0.7, -2.1, 1.3], [-0.4, 1.9, -3.2]])  # no ties in |x| or in the sums
    assert ag.gradcheck(lambda t: ag.norm(t, ord=ord, axis=axis), x)
    _check_jvp(lambda t: ag.norm(t, ord=ord, axis=axis), x)


@pytest.mark.parametrize("ord, axis", [(None, None), (2, 0), (1, 0), (3, 0), (1.5, 0), (np.inf, 0),
                                       (-np.inf, 0), ("fro", None), (1, None), (np.inf, None)])
def test_norm_at_zero_has_gradient_zero_without_nan_or_warnings(ord, axis):
    x = np.zeros((3, 2)) if ord in ("fro", 1, np.inf) and axis is None else np.zeros(3)
    leaf = ag.tensor(x, requires_grad=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = ag.norm(leaf, ord=ord, axis=axis)
        out.sum().backward()
        _, tangent = jvp(lambda t: ag.norm(t, ord=ord, axis=axis), (x,), (np.ones_like(x),))
    assert np.all(out.data == 0)
    np.testing.assert_array_equal(leaf.grad.data, np.zeros_like(x))
    np.testing.assert_array_equal(tangent, np.zeros_like(out.data))


def test_norm_second_derivative_at_a_point_with_zero_components():
    # the Hessian of ||x|| is (I - u u^T) / ||x|| with u = x / ||x||, zero components included
    x = np.array([0.0, 3.0, 0.0, 4.0])
    u = x / 5.0
    np.testing.assert_allclose(ag.hessian(ag.norm)(x), (np.eye(4) - np.outer(u, u)) / 5.0)


def test_norm_of_a_count_has_no_gradient_and_of_integers_is_float():
    assert not ag.norm(ag.tensor([1.0, 0.0, 2.0], requires_grad=True), ord=0).requires_grad
    out = ag.norm(np.array([3, 4]))
    assert out.dtype == np.float64 and out.item() == 5.0


@pytest.mark.parametrize("x, kwargs, message", [
    (np.ones((2, 2)), {"ord": 2}, "norm: ord=2 over two axes needs the singular values"),
    (np.ones((2, 2)), {"ord": "nuc"}, "norm: ord='nuc' over two axes needs the singular values"),
    (np.ones(3), {"ord": "fro"}, "norm: ord='fro' is not a vector norm"),
    (np.ones(3), {"ord": 0.5}, "norm: ord=0.5 is not a vector norm"),
    (np.ones((2, 2, 2)), {"ord": 1}, "norm: ord=1 with axis=None needs a 1-D or 2-D tensor"),
    (np.ones((2, 2, 2)), {"axis": (0, 1, 2)}, "norm: axis must be one axis or two different axes"),
    (np.ones((2, 2)), {"axis": (1, -1)}, "norm: axis must be one axis or two different axes"),
    (np.ones((2, 2)), {"ord": 3}, "norm: ord=3 is not a matrix norm"),
])
def test_norm_refuses_what_it_cannot_compute(x, kwargs, message):
    with pytest.raises(ValueError, match=message):
        ag.norm(x, **kwargs)


# ---------------------------------------------------------------- std, var
@pytest.mark.parametrize("ddof", [0, 1, 2])
def test_std_and_var_follow_numpy_with_ddof(ddof):
    x = np.random.default_rng(0).standard_normal((3, 4))
    for axis in (None, 0, (0, 1)):
        np.testing.assert_allclose(ag.std(x, axis=axis, ddof=ddof).data, np.std(x, axis=axis, ddof=ddof))
        np.testing.assert_allclose(ag.var(x, axis=axis, ddof=ddof).data, np.var(x, axis=axis, ddof=ddof))
    assert ag.gradcheck(lambda t: ag.var(t, axis=0, ddof=ddof), x)
    assert ag.gradcheck(lambda t: ag.std(t, axis=1, ddof=ddof), x)
    _check_jvp(lambda t: ag.std(t, axis=0, ddof=ddof), x)


def test_std_of_equal_values_has_gradient_zero_without_nan():
    leaf = ag.tensor([[2.0, 2.0, 2.0], [1.0, 2.0, 3.0]], requires_grad=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ag.std(leaf, axis=1).sum().backward()
    np.testing.assert_allclose(leaf.grad.data, [[0, 0, 0], [-1 / (3 * np.sqrt(2 / 3)), 0, 1 / (3 * np.sqrt(2 / 3))]])


@pytest.mark.parametrize("name", ["var", "std"])
def test_ddof_that_leaves_no_degrees_of_freedom_is_refused(name):
    with pytest.raises(ValueError, match=f"{name}: ddof=2 leaves no degrees of freedom: the reduced "
                                         "axes of the tensor of shape \\(3, 2\\) hold 2 elements"):
        getattr(ag, name)(np.ones((3, 2)), axis=1, ddof=2)
    with pytest.raises(TypeError, match=f"{name}: ddof must be a number"):
        getattr(ag, name)(np.ones(3), ddof="1")


# ---------------------------------------------------------------- softmax, log_softmax at the edges
@pytest.mark.parametrize("name", ["softmax", "log_softmax"])
def test_softmax_along_an_empty_axis_is_empty(name):
    leaf = ag.tensor(np.zeros((3, 0)), requires_grad=True)
    out = getattr(ag, name)(leaf, axis=1)
    assert out.shape == (3, 0)
    out.sum().backward()
    assert leaf.grad.shape == (3, 0)
    assert getattr(ag, name)(np.zeros((0, 2)), axis=0).shape == (0, 2)


@pytest.mark.parametrize("name, value", [("softmax", 1.0), ("log_softmax", 0.0)])
def test_softmax_of_a_scalar_is_one(name, value):
    leaf = ag.tensor(7.0, requires_grad=True)
    out = getattr(ag, name)(leaf)
    assert out.shape == () and out.item() == value
    out.backward()
    assert leaf.grad.item() == 0.0
