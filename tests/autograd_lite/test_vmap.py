"""ag.vmap: every batched result equals the loop over examples (float64, 1e-12); in_axes/out_axes;
errors; nesting; the loop fallback for a primitive without a batching rule."""
import warnings

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import autograd_lite as ag
from autograd_lite import vmap

TOL = dict(rtol=1e-12, atol=1e-12)
rng = np.random.default_rng(0)


def loop(f, in_axes, args, out_axis=0):
    """The definition: f on each example, stacked."""
    axes = in_axes if isinstance(in_axes, tuple) else (in_axes,) * len(args)
    n = next(np.shape(a)[ax] for a, ax in zip(args, axes) if ax is not None)
    outs = [np.asarray(f(*[a if ax is None else np.take(a, i, axis=ax) for a, ax in zip(args, axes)]))
            for i in range(n)]
    return np.stack(outs, axis=out_axis)


def check(f, in_axes, *args, out_axes=0):
    got = vmap(f, in_axes=in_axes, out_axes=out_axes)(*args)
    want = loop(f, in_axes, args, out_axes)
    assert isinstance(got, np.ndarray), type(got)
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, **TOL)


# ---------------------------------------------------------------- elementwise and broadcasting
@settings(max_examples=30, deadline=None)
@given(st.integers(1, 3), st.integers(0, 2), st.integers(0, 2), st.integers(1, 3),
       st.sampled_from(["mul", "add", "sub", "div", "maximum", "where", "pow"]))
def test_elementwise_broadcasts_per_example_shapes(batch, rank_x, rank_y, n, op):
    x = rng.uniform(0.5, 2.0, (batch,) + (n,) * rank_x)
    y = rng.uniform(0.5, 2.0, (n,) * rank_y)
    fns = {"mul": lambda a, b: a * b, "add": lambda a, b: a + b, "sub": lambda a, b: b - a,
           "div": lambda a, b: a / b, "maximum": ag.maximum, "pow": lambda a, b: a ** b,
           "where": lambda a, b: ag.where(a > 1.0, a, b)}
    check(fns[op], (0, None), x, y)
    check(fns[op], (None, 0), y, x)  # the batched one second


def test_example_of_rank_one_beside_unbatched_matrix():
    x = rng.normal(size=(4, 3))     # 4 examples of shape (3,)
    y = rng.normal(size=(2, 3))     # unbatched (2, 3): each example's x broadcasts to (2, 3)
    check(lambda a, b: ag.sin(a) * b + ag.exp(b), (0, None), x, y)


def test_both_batched_different_ranks():
    check(lambda a, b: a * b - ag.tanh(a), (0, 0), rng.normal(size=(5, 3)), rng.normal(size=(5, 2, 3)))


# ---------------------------------------------------------------- reductions, scans, shapes
@pytest.mark.parametrize("axis", [None, 0, -1, (0, 2), 1])
@pytest.mark.parametrize("keepdims", [False, True])
@pytest.mark.parametrize("name", ["sum", "mean", "max", "min", "logsumexp", "var", "std", "prod"])
def test_reductions_shift_axes(name, axis, keepdims):
    fn = getattr(ag, name)
    x = rng.normal(size=(3, 2, 4, 3))
    check(lambda a: fn(a, axis=axis, keepdims=keepdims), 0, x)
    check(lambda a: fn(a, axis=axis, keepdims=keepdims), 2, x)


@pytest.mark.parametrize("fn", [
    lambda a: ag.softmax(a, axis=-1), lambda a: ag.log_softmax(a, axis=0), lambda a: ag.cumsum(a, axis=1),
    lambda a: ag.cumprod(a, axis=0), lambda a: ag.sort(a, axis=-1), lambda a: ag.norm(a),
    lambda a: ag.norm(a, ord=1, axis=1), lambda a: a.reshape(-1), lambda a: a.reshape(3, 2),
    lambda a: a.T, lambda a: ag.transpose(a, (1, 0)), lambda a: ag.broadcast_to(a, (4, 2, 3)),
    lambda a: ag.concatenate([a, 2 * a], axis=1), lambda a: ag.concatenate([a, np.ones((2, 3))], axis=0),
    lambda a: ag.stack([a, a], axis=-1), lambda a: a[1], lambda a: a[:, ::2], lambda a: a[None, ..., 1],
    lambda a: a[[0, 1, 1]], lambda a: a[[1, 0], [2, 2]], lambda a: a[:, [True, False, True]],
    lambda a: ag.roll(a, 1, axis=1), lambda a: ag.roll(a, 2), lambda a: ag.pad(a, ((1, 0), (0, 2))),
    lambda a: ag.tril(a), lambda a: ag.triu(a, 1), lambda a: ag.flip(a, 0),
    lambda a: ag.scatter_add(a, ([0, 0], slice(None)), (3, 3)),
    lambda a: ag.scatter_add(a, (slice(None), [2, 0, 2]), (2, 4)),
    lambda a: ag.index_update(a, (0, 1), 5.0),
])
def test_shape_reduction_and_scan_ops(fn):
    check(fn, 0, rng.normal(size=(5, 2, 3)))


def test_getitem_with_split_advanced_indices_puts_batch_where_numpy_does():
    x = rng.normal(size=(4, 3, 5, 6))
    f = lambda a: a[[0, 2], :, [1, 3]]    # advanced indices apart: their axis comes first
    check(f, 0, x)
    check(lambda a: ag.grad(lambda b: (f(b) ** 2).sum())(a), 0, x)


def test_index_that_differs_per_example_is_refused_in_one_sentence():
    x = np.array([[1.0, -1.0, 2.0], [3.0, 4.0, -5.0]])
    with pytest.raises(IndexError, match=r"getitem: the index is batched .* shape \(3,\) per example"):
        vmap(lambda a: a[a > 0])(x)
    check(lambda a: ag.where(a > 0, a, 0.0), 0, x)


# ---------------------------------------------------------------- products
@pytest.mark.parametrize("shapes", [((3,), (3,)), ((2, 3), (3,)), ((3,), (3, 4)), ((2, 3), (3, 4)),
                                    ((5, 2, 3), (3, 4)), ((2, 3), (5, 3, 4)), ((5, 2, 3), (5, 3, 4)),
                                    ((4, 1), (1, 5)), ((2, 4, 1), (1, 5))])
@pytest.mark.parametrize("in_axes", [(0, None), (None, 0), (0, 0)])
def test_matmul_every_batched_unbatched_pairing(shapes, in_axes):
    sx, sy = shapes
    x = rng.normal(size=((6,) if in_axes[0] == 0 else ()) + sx)
    y = rng.normal(size=((6,) if in_axes[1] == 0 else ()) + sy)
    check(lambda a, b: a @ b, in_axes, x, y)


@pytest.mark.parametrize("spec,shapes", [("ij,jk->ik", ((2, 3), (3, 4))), ("i,i->", ((3,), (3,))),
                                         ("ii->i", ((3, 3),)), ("ij->ji", ((2, 3),)),
                                         ("...j,jk->...k", ((2, 3), (3, 4)))])
def test_einsum_gets_a_batch_letter(spec, shapes):
    args = [rng.normal(size=(4,) + s) for s in shapes]
    check(lambda *xs: ag.einsum(spec, *xs), 0, *args)
    if len(args) == 2:
        check(lambda a, b: ag.einsum(spec, a, b), (0, None), args[0], args[1][0])


# ---------------------------------------------------------------- in_axes, out_axes, nesting
def test_in_axes_negative_none_and_nested_structures():
    x, y, w = rng.normal(size=(3, 4)), rng.normal(size=(4, 3)), rng.normal(size=(3,))
    check(lambda a, b: a * b, (-1, 0), x, y)
    got = vmap(lambda p, v: p["w"] * v[0] + v[1], in_axes=({"w": None}, (1, 0)))({"w": w}, (x, y))
    want = np.stack([w * x[:, i] + y[i] for i in range(4)])
    np.testing.assert_allclose(got, want, **TOL)


def test_out_axes_places_batch_axis_and_tuples():
    x = rng.normal(size=(5, 2, 3))
    got_a, got_b = vmap(lambda a: (a.sum(0), a * 2), out_axes=(0, -1))(x)
    np.testing.assert_allclose(got_a, x.sum(1), **TOL)
    np.testing.assert_allclose(got_b, np.moveaxis(2 * x, 0, -1), **TOL)
    check(lambda a: a.T, 0, x, out_axes=1)


def test_output_that_does_not_depend_on_the_batch_is_repeated():
    out = vmap(lambda a, c: c * 2.0, in_axes=(0, None))(np.ones((4, 2)), np.arange(3.0))
    np.testing.assert_allclose(out, np.tile(np.arange(3.0) * 2, (4, 1)))


def test_nested_vmap_is_the_double_loop():
    x, y = rng.normal(size=(3, 5)), rng.normal(size=(4, 5))
    pairwise = vmap(vmap(lambda a, b: ((a - b) ** 2).sum(), in_axes=(None, 0)), in_axes=(0, None))
    want = ((x[:, None, :] - y[None, :, :]) ** 2).sum(-1)
    np.testing.assert_allclose(pairwise(x, y), want, **TOL)
    inner_first = vmap(vmap(lambda a, b: a @ b, in_axes=(0, None)), in_axes=(None, 0))
    np.testing.assert_allclose(inner_first(x, y), y @ x.T, **TOL)


def test_tensors_in_give_tensors_out_and_grad_flows_through_vmap():
    x = ag.tensor(rng.normal(size=(4, 3)), requires_grad=True)
    w = rng.normal(size=3)
    out = vmap(lambda a: (ag.sin(a) * w).sum())(x)
    assert isinstance(out, ag.Tensor) and out.shape == (4,)
    out.sum().backward()
    np.testing.assert_allclose(x.grad.data, np.cos(x.data) * w, **TOL)


# ---------------------------------------------------------------- errors: one sentence each
def test_errors_name_vmap_the_argument_and_what_was_expected():
    x, y = np.ones((3, 2)), np.ones((4, 2))
    with pytest.raises(ValueError, match=r"vmap: the arguments of .* disagree .*argument 0 has 3, argument 1 has 4"):
        vmap(lambda a, b: a + b)(x, y)
    with pytest.raises(ValueError, match=r"disagree .*argument 0 has 2, argument 1 has 3"):  # inner vmap: per outer example
        vmap(lambda a, b: vmap(lambda u, v: u * v)(a, b))(np.ones((5, 2)), np.ones((5, 3)))
    with pytest.raises(ValueError, match=r"vmap: in_axes of .* argument 0 is 2, out of range for its shape \(3, 2\)"):
        vmap(lambda a: a, in_axes=2)(x)
    with pytest.raises(ValueError, match=r"vmap: in_axes of .* has 1 entries but 2 argument"):
        vmap(lambda a, b: a, in_axes=(0,))(x, x)
    with pytest.raises(ValueError, match=r"vmap: in_axes of .* argument 0 is \(0, 0\), but the argument is a tuple of 3"):
        vmap(lambda t: t[0], in_axes=((0, 0),))((x, x, x))
    with pytest.raises(ValueError, match=r"vmap: in_axes .* None for every argument"):
        vmap(lambda a: a, in_axes=None)(x)
    with pytest.raises(TypeError, match=r"vmap: the truth value of a batched value"):
        vmap(lambda a: a if a.sum() > 0 else -a)(x)
    # broadcasting and matmul name one example's shapes, as the loop would, and refuse what it refuses
    with pytest.raises(ValueError, match=r"add: operands could not be broadcast together with shapes \(2,\) \(3,\)"):
        vmap(lambda a: a + np.ones(3))(x)
    with pytest.raises(ValueError, match=r"matmul: shapes \(2,\) and \(3, 2\) do not align: 2 != 3"):
        vmap(lambda a: a @ np.ones((3, 2)))(x)
    with pytest.raises(ValueError, match=r"matmul: shapes \(5, 3\) and \(2,\) do not align"):
        vmap(lambda a: np.ones((5, 3)) @ a)(x)
    with pytest.raises(ValueError, match=r"matmul: operands must have at least 1 dimension, got shapes \(\) and \(3,\)"):
        vmap(lambda a: a.sum() @ np.ones(3))(x)


# ---------------------------------------------------------------- a primitive without a rule
def test_primitive_without_batching_rule_loops_with_one_warning():
    outer = ag.primitive(lambda x, y: np.multiply.outer(x, y), name="outer_no_batch_rule")
    x, y = rng.normal(size=(4, 3)), rng.normal(size=2)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        got = vmap(lambda a: outer(a, y))(x)
        vmap(lambda a: outer(a, y))(x)
    assert [str(w.message) for w in caught].count(
        "vmap: primitive 'outer_no_batch_rule' has no batching rule, so it runs once per example "
        "(slow); declare one with outer_no_batch_rule.defbatch(rule)") == 1
    np.testing.assert_allclose(got, np.stack([np.multiply.outer(r, y) for r in x]), **TOL)


# ---------------------------------------------------------------- functions outside the table
@pytest.mark.parametrize("fn", [lambda a: ag.argmax(a, axis=1), lambda a: ag.argmax(a, axis=-1, keepdims=True),
                                lambda a: ag.argmin(a), lambda a: ag.argmin(a, keepdims=True),
                                lambda a: ag.norm(a, ord=0, axis=1)])
def test_index_valued_and_counting_functions_search_each_example(fn):
    x = rng.normal(size=(4, 3, 5))
    x[0, 1, 2] = 0.0
    got = vmap(fn)(x)
    want = np.stack([fn(ag.tensor(e)).data for e in x])
    assert got.shape == want.shape and np.array_equal(got, want)
    np.testing.assert_array_equal(vmap(vmap(lambda a: ag.argmax(a)))(x), np.argmax(x, axis=2))


def test_numpy_functions_that_read_the_whole_batch_are_refused_or_routed():
    x = rng.normal(size=(4, 5))
    np.testing.assert_array_equal(vmap(lambda a: np.argmax(a))(x), np.argmax(x, axis=1))
    with pytest.raises(TypeError, match=r"vmap: np.nonzero of a batched value would read the whole batch"):
        vmap(lambda a: a[np.nonzero(a > 0)])(x)
    with pytest.raises(TypeError, match=r"vmap: np.asarray of a batched value"):
        vmap(lambda a: np.asarray(a) * 2)(x)


def test_a_new_tensor_from_a_batched_value_is_refused_not_silently_the_whole_batch():
    with pytest.raises(TypeError, match=r"vmap: np.asarray of a batched value"):
        vmap(lambda a: ag.tensor(a) * 2)(rng.normal(size=(3, 2)))


def test_dropout_draws_one_mask_per_example_the_numbers_a_loop_draws():
    x = rng.normal(size=(6, 4, 5))
    got = vmap(lambda a: ag.fused.dropout(a, 0.5, np.random.default_rng(7)))(x)
    stream = np.random.default_rng(7)
    want = np.stack([ag.fused.dropout(e, 0.5, stream).data for e in x])
    np.testing.assert_array_equal(got, want)
    assert not np.array_equal(got[0] == 0, got[1] == 0)   # not one mask shared by all examples
    # nested: one key per innermost example, as the loop of loops (and the loop of the inner
    # vmaps) draws them; with one key per outer example it drew the outer vmap's masks instead
    nested = vmap(vmap(lambda a: ag.fused.dropout(a, 0.5, np.random.default_rng(7))))(x)
    stream = np.random.default_rng(7)
    loops = np.stack([[ag.fused.dropout(r, 0.5, stream).data for r in e] for e in x])
    np.testing.assert_array_equal(nested, loops)
    stream = np.random.default_rng(7)
    inner = np.stack([vmap(lambda a: ag.fused.dropout(a, 0.5, stream))(e) for e in x])
    np.testing.assert_array_equal(nested, inner)


def test_a_vmap_on_one_thread_leaves_other_threads_eager():
    import threading

    from autograd_lite import engine
    inside, done = threading.Event(), threading.Event()
    seen = {}

    def example(x):
        seen["vmap thread"] = engine.in_vmap()
        inside.set()
        done.wait(10)
        return x * 2.0

    worker = threading.Thread(target=lambda: seen.setdefault("out", vmap(example)(np.ones((3, 2)))))
    worker.start()
    try:
        assert inside.wait(10)
        # this thread's operations and backward pass run eagerly (arrays, not batched Tensors)
        seen["main thread"] = engine.in_vmap()
        w = ag.Tensor(np.arange(3.0), requires_grad=True)
        (w * w).sum().backward()
        np.testing.assert_array_equal(w.grad.data, 2 * np.arange(3.0))
    finally:
        done.set()
        worker.join(10)
    assert seen["vmap thread"] and not seen["main thread"] and not engine.in_vmap()
    np.testing.assert_array_equal(seen["out"], np.full((3, 2), 2.0))
