"""NumPy's functions on Tensors (NEP 13 ufuncs, NEP 18 functions): each runs the public function
of the same name and keeps the graph; boolean results are plain arrays; a function without a
counterpart, or an out= that would hold a Tensor's result, is a TypeError instead of a silent
conversion that drops the graph."""
from __future__ import annotations

import numpy as np
import pytest

import autograd_lite as ag
from autograd_lite.declaration import PUBLIC
from autograd_lite.forward import jvp
from autograd_lite.tensor import Tensor

RNG = np.random.default_rng(0)
X = RNG.uniform(0.2, 0.8, (2, 3))
Y = RNG.uniform(0.2, 0.8, (2, 3))


def _leaf(a: np.ndarray) -> Tensor:
    return ag.tensor(a.copy(), requires_grad=True)


def _needs(*names: str) -> pytest.MarkDecorator:
    """Skip until the ops named are declared (others are adding them)."""
    missing = [n for n in names if n not in PUBLIC]
    return pytest.mark.skipif(bool(missing), reason=f"not yet declared: {missing}")


# ---------------------------------------------------------------- ufuncs
def _numpy_ufuncs_with_a_public_namesake() -> list:
    ufuncs = {u.__name__: u for u in vars(np).values()  # np.abs and np.absolute: one ufunc
              if isinstance(u, np.ufunc) and getattr(np, u.__name__) is u and u.__name__ in PUBLIC}
    return [ufuncs[name] for name in sorted(ufuncs)]


@pytest.mark.parametrize("ufunc", _numpy_ufuncs_with_a_public_namesake(), ids=lambda u: u.__name__)
def test_every_ufunc_with_a_public_namesake_runs_it_and_keeps_the_graph(ufunc):
    inputs = [X, Y.T if ufunc is np.matmul else Y][:ufunc.nin]
    with np.errstate(all="ignore"):
        out = ufunc(*[_leaf(a) for a in inputs])
        expected = ufunc(*inputs)
    assert isinstance(out, Tensor) and out.requires_grad
    np.testing.assert_allclose(out.data, expected, rtol=1e-12, equal_nan=True)


def test_exp_of_a_tensor_is_ag_exp_with_its_gradient():
    t = _leaf(X)
    y = np.exp(t)
    assert y.op_name == "exp"
    y.sum().backward()
    np.testing.assert_allclose(t.grad, np.exp(X))


@pytest.mark.parametrize("expr, dx", [
    (lambda a, t: a + t, lambda a, x: np.ones_like(x)),
    (lambda a, t: a - t, lambda a, x: -np.ones_like(x)),
    (lambda a, t: a * t, lambda a, x: a),
    (lambda a, t: a / t, lambda a, x: -a / x ** 2),
    (lambda a, t: a ** t, lambda a, x: a ** x * np.log(a)),
    (lambda a, t: np.add(a, t), lambda a, x: np.ones_like(x)),
], ids=["+", "-", "*", "/", "**", "np.add"])
def test_an_array_on_the_left_of_an_operator_gives_a_tensor_with_the_gradient(expr, dx):
    t = _leaf(X)
    out = expr(Y, t)
    assert isinstance(out, Tensor) and out.requires_grad
    out.sum().backward()
    np.testing.assert_allclose(t.grad, dx(Y, X))


def test_an_array_at_the_left_of_matmul_gives_a_tensor_with_the_gradient():
    a, t = RNG.standard_normal((4, 2)), _leaf(X)
    out = a @ t
    assert out.op_name == "matmul"
    out.sum().backward()
    np.testing.assert_allclose(t.grad, a.T @ np.ones((4, 3)))


def test_a_numpy_scalar_on_the_left_gives_a_tensor():
    t = _leaf(X)
    for out in (np.float64(2.0) * t, np.float32(2.0) + t, np.int64(3) - t):
        assert isinstance(out, Tensor) and out.requires_grad


def test_float32_stays_float32_with_an_array_on_the_left():
    t = ag.tensor(X.astype(np.float32), requires_grad=True)
    assert (Y.astype(np.float32) * t).dtype == np.float32
    assert np.exp(t).dtype == np.float32


def test_power_with_a_number_exponent_takes_the_scalar_primitive_like_the_operator():
    t = _leaf(X)
    assert np.power(t, 2).op_name == (t ** 2).op_name == "power_scalar"
    assert np.power(2.0, t).op_name == "power"
    assert np.power(t, _leaf(Y)).op_name == "power"


def test_positive_and_the_absolute_aliases_keep_the_graph():
    t = _leaf(X - 0.5)
    assert np.positive(t) is t
    assert np.abs(t).op_name == np.fabs(t).op_name == "absolute"


@pytest.mark.parametrize("call", [
    lambda t: np.greater(t, 0.5), lambda t: t > 0.5, lambda t: Y < t, lambda t: Y == t,
    lambda t: np.isnan(t), lambda t: np.isfinite(t), lambda t: np.logical_and(t > 0.3, t < 0.7),
], ids=["np.greater", ">", "array <", "array ==", "isnan", "isfinite", "logical_and"])
def test_comparisons_and_predicates_give_plain_boolean_arrays(call):
    out = call(_leaf(X))
    assert type(out) is np.ndarray and out.dtype == bool


# ---------------------------------------------------------------- other NumPy functions
CALLS = [  # (numpy call, the ag call it must equal, the ops it needs)
    (lambda t, u: np.sum(t, axis=0), lambda t, u: ag.sum(t, axis=0), ()),
    (lambda t, u: np.sum(t), lambda t, u: ag.sum(t), ()),
    (lambda t, u: np.mean(t, axis=1, keepdims=True), lambda t, u: ag.mean(t, axis=1, keepdims=True), ()),
    (lambda t, u: np.max(t, axis=-1), lambda t, u: ag.max(t, axis=-1), ()),
    (lambda t, u: np.amin(t, 0), lambda t, u: ag.min(t, 0), ()),
    (lambda t, u: np.var(t, axis=0, ddof=1), lambda t, u: ag.var(t, axis=0, ddof=1), ()),
    (lambda t, u: np.matmul(t, u.T), lambda t, u: t @ u.T, ()),
    (lambda t, u: np.dot(t, u.T), lambda t, u: ag.dot(t, u.T), ()),
    (lambda t, u: np.concatenate([t, u]), lambda t, u: ag.concatenate([t, u]), ()),
    (lambda t, u: np.concatenate((t, Y), axis=1), lambda t, u: ag.concatenate([t, Y], axis=1), ()),
    (lambda t, u: np.stack([t, u], axis=1), lambda t, u: ag.stack([t, u], axis=1), ()),
    (lambda t, u: np.reshape(t, (3, 2)), lambda t, u: ag.reshape(t, (3, 2)), ()),
    (lambda t, u: np.transpose(t), lambda t, u: t.T, ()),
    (lambda t, u: np.swapaxes(t, 0, 1), lambda t, u: ag.swapaxes(t, 0, 1), ()),
    (lambda t, u: np.expand_dims(t, 0), lambda t, u: ag.expand_dims(t, 0), ()),
    (lambda t, u: np.where(X > 0.5, t, u), lambda t, u: ag.where(X > 0.5, t, u), ()),
    (lambda t, u: np.clip(t, 0.3, 0.6), lambda t, u: ag.clip(t, 0.3, 0.6), ()),
    (lambda t, u: np.clip(t, a_min=0.3, a_max=0.6), lambda t, u: ag.clip(t, 0.3, 0.6), ()),
    (lambda t, u: np.maximum(t, u), lambda t, u: ag.maximum(t, u), ()),
    (lambda t, u: np.outer(t, u), lambda t, u: ag.outer(t, u), ()),
    (lambda t, u: np.linalg.norm(t), lambda t, u: ag.norm(t), ("norm",)),
    (lambda t, u: np.einsum("ij,kj->ik", t, u), lambda t, u: t @ u.T, ("einsum",)),
    (lambda t, u: np.einsum("ij,kj", t, u), lambda t, u: t @ u.T, ("einsum",)),
    (lambda t, u: np.tensordot(t, u, axes=([1], [1])), lambda t, u: t @ u.T, ("tensordot",)),
    (lambda t, u: np.prod(t, axis=1), lambda t, u: ag.prod(t, axis=1), ("prod",)),
    (lambda t, u: np.cumsum(t, axis=1), lambda t, u: ag.cumsum(t, axis=1), ("cumsum",)),
    (lambda t, u: np.sort(t, axis=0), lambda t, u: ag.sort(t, axis=0), ("sort",)),
    (lambda t, u: np.tile(t, (2, 1)), lambda t, u: ag.tile(t, (2, 1)), ("tile",)),
    (lambda t, u: np.repeat(t, 2, axis=0), lambda t, u: ag.repeat(t, 2, axis=0), ("repeat",)),
    (lambda t, u: np.pad(t, 1, constant_values=0.5), lambda t, u: ag.pad(t, 1, constant_values=0.5),
     ("pad",)),
    (lambda t, u: np.tan(t), lambda t, u: ag.tan(t), ("tan",)),
    (lambda t, u: np.cosh(t), lambda t, u: ag.cosh(t), ("cosh",)),
    (lambda t, u: np.mod(t, 0.3), lambda t, u: ag.mod(t, 0.3), ("mod",)),
    (lambda t, u: np.round(t, 0), lambda t, u: ag.round(t), ("round",)),
]


@pytest.mark.parametrize("numpy_call, ag_call, needs", CALLS, ids=range(len(CALLS)))
def test_numpy_functions_on_tensors_run_the_public_function_and_keep_the_graph(numpy_call, ag_call, needs):
    if any(n not in PUBLIC for n in needs):
        pytest.skip(f"not yet declared: {needs}")
    t, u = _leaf(X), _leaf(Y)
    out, expected = numpy_call(t, u), ag_call(t, u)
    assert isinstance(out, Tensor) and out.requires_grad
    np.testing.assert_allclose(out.data, expected.data, rtol=1e-12)
    out.sum().backward()
    grads = t.grad, u.grad
    t.grad = u.grad = None
    expected.sum().backward()
    for g, want in zip(grads, (t.grad, u.grad)):
        np.testing.assert_allclose(np.zeros(X.shape) if g is None else g,
                                   np.zeros(X.shape) if want is None else want, rtol=1e-12)


def test_a_function_written_with_numpy_is_differentiable_to_second_order():
    W = RNG.standard_normal((3, 3))

    def f(x):
        return np.sum(np.tanh(np.matmul(W, x)) ** 2) + np.mean(np.exp(x))

    assert ag.gradcheck(f, RNG.standard_normal(3))
    assert ag.gradcheck(ag.grad(f), RNG.standard_normal(3))
    _, tangent = jvp(f, (np.ones(3),), (np.ones(3),))
    assert np.isfinite(tangent)


def test_asarray_and_the_value_readers_give_plain_values():
    t = _leaf(X)
    assert np.asarray(t) is t.data
    assert np.shape(t) == (2, 3) and np.ndim(t) == 2 and np.size(t) == 6
    assert np.allclose(t, X) and np.array_equal(t, X)
    assert type(np.argsort(t)) is np.ndarray
    assert type(np.where(t > 0.5)) is tuple


def test_zeros_like_of_a_tensor_is_a_new_leaf_of_its_dtype():
    t = ag.tensor(X.astype(np.float32), requires_grad=True)
    z = np.zeros_like(t)
    assert isinstance(z, Tensor) and z.dtype == np.float32 and z.is_leaf and not z.requires_grad


# ---------------------------------------------------------------- ufunc methods
def test_add_reduce_is_sum_along_numpy_s_default_axis_0():
    t = _leaf(X)
    out = np.add.reduce(t)
    assert out.op_name == "sum"
    np.testing.assert_allclose(out.data, X.sum(axis=0))
    np.testing.assert_allclose(np.add.reduce(t, axis=None).data, X.sum())
    np.testing.assert_allclose(np.maximum.reduce(t, axis=1, keepdims=True).data, X.max(1, keepdims=True))
    np.testing.assert_allclose(np.logaddexp.reduce(t, axis=1).data, np.logaddexp.reduce(X, axis=1))


@_needs("cumsum")
def test_add_accumulate_is_cumsum():
    np.testing.assert_allclose(np.add.accumulate(_leaf(X)).data, np.cumsum(X, axis=0))


def test_a_ufunc_outer_keeps_the_graph():
    t, u = _leaf(X[0]), _leaf(Y[1])
    out = np.multiply.outer(t, u)
    np.testing.assert_allclose(out.data, np.multiply.outer(X[0], Y[1]))
    out.sum().backward()
    np.testing.assert_allclose(t.grad, np.full(3, Y[1].sum()))


@pytest.mark.parametrize("call, message", [
    (lambda t: np.add.at(t, [0], 1.0), r"np\.add\.at has no autograd-lite counterpart of that name: "
                                       r"x \+ ag\.scatter_add"),
    (lambda t: np.add.reduceat(t, [0, 1]), r"np\.add\.reduceat has no autograd-lite counterpart"),
    (lambda t: np.add.reduce(t, initial=1.0), r"np\.add\.reduce: initial= not supported with Tensors; "
                                              r"use ag\.sum\(x, axis, keepdims\)"),
])
def test_ufunc_methods_without_a_counterpart_raise(call, message):
    with pytest.raises(TypeError, match=message):
        call(_leaf(X))


# ---------------------------------------------------------------- refusals
@pytest.mark.parametrize("call, message", [
    (lambda t: np.linalg.svd(t), r"^np\.linalg\.svd has no autograd-lite counterpart: it would drop "
                                 r"the graph; convert explicitly with t\.numpy\(\) if you mean to$"),
    (lambda t: np.fmod(t, 0.3), r"^np\.fmod has no autograd-lite counterpart"),
    (lambda t: np.nancumsum(t), r"^np\.nancumsum has no autograd-lite counterpart"),
    (lambda t: np.copy(t), r"^np\.copy has no autograd-lite counterpart of that name: t \* 1 makes a "
                           r"recorded copy"),
    (lambda t: np.ptp(t), r"^np\.ptp has no autograd-lite counterpart of that name: ag\.max"),
])
def test_a_numpy_function_without_a_counterpart_raises_naming_it(call, message):
    with pytest.raises(TypeError, match=message):
        call(_leaf(X))


def test_out_is_refused_for_ufuncs_functions_and_in_place_operators_on_arrays():
    t, a = _leaf(X), np.zeros((2, 3))
    with pytest.raises(TypeError, match=r"np\.add: out= cannot hold a Tensor's result"):
        np.add(t, 1.0, out=a)
    with pytest.raises(TypeError, match=r"np\.exp: out= cannot hold a Tensor's result"):
        np.exp(X, out=t)
    with pytest.raises(TypeError, match=r"np\.sum: out= cannot hold a Tensor's result"):
        np.sum(t, axis=0, out=np.zeros(3))
    with pytest.raises(TypeError, match=r"`a \+= t`"):
        a += t
    np.testing.assert_array_equal(a, 0)


def test_an_argument_ag_has_no_place_for_is_refused_not_misplaced():
    t = _leaf(X)
    with pytest.raises(TypeError, match=r"np\.sum: the argument dtype=.*float32.* has no counterpart "
                                        r"in ag\.sum\(x, axis, keepdims\)"):
        np.sum(t, axis=0, dtype=np.float32)
    # positionally, NumPy's third argument is dtype, ag.mean's is keepdims
    with pytest.raises(TypeError, match=r"np\.mean: the argument dtype="):
        np.mean(t, 0, np.float32)
    with pytest.raises(TypeError, match=r"np\.reshape: the argument order='F'"):
        np.reshape(t, (3, 2), order="F")
    with pytest.raises(TypeError, match=r"np\.exp: dtype= not supported with Tensors"):
        np.exp(t, dtype=np.float32)


def test_numpy_s_defaults_given_explicitly_are_accepted():
    t = _leaf(X)
    np.testing.assert_allclose(np.sum(t, 0, None, None, False).data, X.sum(0))
    np.testing.assert_allclose(np.reshape(t, (6,), order="C").data, X.reshape(6))


# ---------------------------------------------------------------- speed: the fast paths stay
def test_tensor_operators_with_tensors_numbers_and_arrays_never_dispatch(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("went through NumPy's dispatch")

    monkeypatch.setattr(Tensor, "__array_ufunc__", refuse)
    monkeypatch.setattr(Tensor, "__array_function__", refuse)
    t, u = _leaf(X), _leaf(Y)
    loss = ((t * u + 1.0) / (t - Y) + (t @ Y.T) ** 2.0 @ u).sum() + ag.tanh(-t).mean()
    loss.backward()
    ag.grad(lambda x: (ag.exp(x) * x).sum())(X)
