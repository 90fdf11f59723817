"""The constructors: NumPy's values and arguments, float64 unless told otherwise (the input's
dtype for *_like), requires_grad, seeded random numbers, and errors that name the constructor."""
from __future__ import annotations

import numpy as np
import pytest

import autograd_lite as ag
from autograd_lite.tensor import Tensor

CONSTANT = [
    (lambda **kw: ag.zeros((2, 3), **kw), np.zeros((2, 3))),
    (lambda **kw: ag.zeros(4, **kw), np.zeros(4)),
    (lambda **kw: ag.ones((3,), **kw), np.ones(3)),
    (lambda **kw: ag.full((2, 2), 7, **kw), np.full((2, 2), 7.0)),
    (lambda **kw: ag.full((2, 3), [1, 2, 3], **kw), np.full((2, 3), [1.0, 2.0, 3.0])),
    (lambda **kw: ag.arange(5, **kw), np.arange(5.0)),
    (lambda **kw: ag.arange(1, 2, 0.25, **kw), np.arange(1, 2, 0.25)),
    (lambda **kw: ag.arange(3, 0, -1, **kw), np.arange(3.0, 0, -1)),
    (lambda **kw: ag.linspace(0, 1, 5, **kw), np.linspace(0, 1, 5)),
    (lambda **kw: ag.linspace(0, 1, 4, endpoint=False, **kw), np.linspace(0, 1, 4, endpoint=False)),
    (lambda **kw: ag.eye(3, **kw), np.eye(3)),
    (lambda **kw: ag.eye(2, 4, k=1, **kw), np.eye(2, 4, 1)),
]


@pytest.mark.parametrize("make, expected", CONSTANT, ids=range(len(CONSTANT)))
def test_constructors_give_numpy_s_values_in_float64_by_default(make, expected):
    t = make()
    assert isinstance(t, Tensor) and t.is_leaf and not t.requires_grad
    assert t.dtype == np.float64  # also where NumPy would infer integers (arange(5), full(.., 7))
    np.testing.assert_array_equal(t.data, expected)


@pytest.mark.parametrize("make, expected", CONSTANT, ids=range(len(CONSTANT)))
def test_constructors_take_a_dtype_and_requires_grad(make, expected):
    t = make(dtype=np.float32, requires_grad=True)
    assert t.dtype == np.float32 and t.requires_grad and t.is_leaf
    np.testing.assert_array_equal(t.data, expected.astype(np.float32))
    (t * t).sum().backward()
    assert t.grad.dtype == np.float32


def test_integer_dtypes_are_allowed_without_requires_grad():
    assert ag.arange(4, dtype=np.int64).dtype == np.int64
    assert ag.zeros(3, dtype=bool).dtype == bool
    with pytest.raises(TypeError, match="ones: requires_grad=True needs a floating-point dtype, got int32"):
        ag.ones(3, dtype=np.int32, requires_grad=True)


@pytest.mark.parametrize("like", [ag.zeros_like, ag.ones_like])
def test_like_constructors_take_the_input_s_shape_and_dtype_and_never_its_graph(like):
    x = ag.tensor(np.ones((2, 3), np.float32), requires_grad=True)
    t = like(x * 2)
    assert t.shape == (2, 3) and t.dtype == np.float32 and t.is_leaf and not t.requires_grad
    assert like(np.arange(3)).dtype == np.int64
    assert like([1.0, 2.0]).shape == (2,)
    assert like(x, dtype=np.float64, requires_grad=True).requires_grad
    np.testing.assert_array_equal(ag.ones_like(x).data, 1)
    np.testing.assert_array_equal(ag.zeros_like(x).data, 0)


@pytest.mark.parametrize("random, moments", [(ag.randn, (0.0, 1.0)), (ag.rand, (0.5, 12 ** -0.5))])
def test_random_constructors_take_shapes_both_ways_and_a_seed(random, moments):
    assert random(2, 3).shape == random((2, 3)).shape == (2, 3)
    assert random().shape == ()
    np.testing.assert_array_equal(random(4, rng=7).data, random(4, rng=7).data)
    assert not np.array_equal(random(4, rng=7).data, random(4, rng=8).data)
    big = random(100_000, rng=0).data
    np.testing.assert_allclose([big.mean(), big.std()], moments, atol=0.01)


@pytest.mark.parametrize("random", [ag.randn, ag.rand])
def test_a_generator_advances_so_successive_draws_differ(random):
    rng = np.random.default_rng(3)
    first, second = random(5, rng=rng), random(5, rng=rng)
    assert not np.array_equal(first.data, second.data)
    replay = np.random.default_rng(3)
    np.testing.assert_array_equal(random(5, rng=replay).data, first.data)


@pytest.mark.parametrize("random", [ag.randn, ag.rand])
def test_random_constructors_draw_float32_directly(random):
    t = random(3, 4, rng=0, dtype=np.float32, requires_grad=True)
    assert t.dtype == np.float32 and t.requires_grad
    with pytest.raises(TypeError, match=f"{random.__name__}: dtype must be float32 or float64, got int64"):
        random(3, dtype=np.int64)


def test_rand_stays_in_the_unit_interval():
    values = ag.rand(10_000, rng=1).data
    assert values.min() >= 0.0 and values.max() < 1.0


@pytest.mark.parametrize("call, error, message", [
    (lambda: ag.zeros(-1), ValueError, r"zeros: shape -1 has the entry -1; expected non-negative integers"),
    (lambda: ag.ones((2, 2.5)), ValueError, r"ones: shape \(2, 2.5\) has the entry 2.5"),
    (lambda: ag.zeros("abc"), TypeError, r"zeros: shape must be an int or a sequence of ints, got 'abc'"),
    (lambda: ag.zeros(None), TypeError, r"zeros: shape must be an int or a sequence of ints, got None"),
    (lambda: ag.zeros(2, dtype="nope"), TypeError, r"zeros: dtype 'nope' is not a NumPy dtype"),
    (lambda: ag.full((2, 2), [1, 2, 3]), ValueError, r"full: fill_value \[1, 2, 3\] cannot fill a tensor "
                                                     r"of shape \(2, 2\)"),
    (lambda: ag.arange(0, 3, 0), ValueError, r"arange: step is 0; expected a non-zero step"),
    (lambda: ag.arange(float("inf")), ValueError, r"arange: start is inf; expected a finite number"),
    (lambda: ag.linspace(0, 1, -2), ValueError, r"linspace: num must be a non-negative integer, got -2"),
    (lambda: ag.eye(2.0), ValueError, r"eye: N must be a non-negative integer, got 2.0"),
    (lambda: ag.eye(2, k=0.5), TypeError, r"eye: k must be an integer"),
    (lambda: ag.randn(2, -3), ValueError, r"randn: shape \(2, -3\) has the entry -3"),
    (lambda: ag.rand(2, rng=-1), TypeError, r"rand: rng must be None, a non-negative int seed or a "
                                            r"np\.random\.Generator, got -1"),
    (lambda: ag.randn(2, rng="seed"), TypeError, r"randn: rng must be None"),
])
def test_bad_arguments_raise_naming_the_constructor_and_the_value(call, error, message):
    with pytest.raises(error, match=message):
        call()


def test_numpy_s_zeros_like_on_a_tensor_is_ag_zeros_like():
    x = ag.tensor(np.ones(3, np.float32), requires_grad=True)
    z = np.zeros_like(x)
    assert isinstance(z, Tensor) and z.dtype == np.float32 and not z.requires_grad
