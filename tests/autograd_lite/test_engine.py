"""The reverse-mode engine: ordering, accumulation, graph release, grad modes, create_graph."""
import gc
import sys
import threading
import weakref

import numpy as np
import pytest

import autograd_lite as ag
from autograd_lite.engine import GraphReleasedError


def test_a_chain_of_a_million_operations_backpropagates():
    x = ag.tensor(np.array([1.0]), requires_grad=True)
    y = x
    for _ in range(1_000_000):
        y = y * 1.0
    assert sys.getrecursionlimit() < 1_000_000
    y.sum().backward()
    assert x.grad.data[0] == 1.0


def test_gradients_accumulate_across_backward_calls():
    x = ag.tensor([1.0, 2.0], requires_grad=True)
    (x * x).sum().backward()
    (3 * x).sum().backward()
    np.testing.assert_allclose(x.grad.data, 2 * x.data + 3)


def test_a_reused_value_gets_the_sum_of_its_paths():
    x = ag.tensor(3.0, requires_grad=True)
    y = x * x + x          # dy/dx = 2x + 1
    z = y * y              # dz/dx = 2y (2x + 1)
    z.backward()
    assert x.grad.item() == pytest.approx(2 * 12 * 7)


def test_graph_is_released_after_backward():
    x = ag.tensor(np.ones(3), requires_grad=True)
    hidden = x * 2
    ref = weakref.ref(hidden)
    loss = (hidden.exp()).sum()
    del hidden
    gc.collect()
    assert ref() is not None          # the graph keeps the intermediate alive...
    loss.backward()
    gc.collect()
    assert ref() is None              # ...until backward() releases it


def test_a_kept_output_holds_no_graph_after_backward():
    x = ag.tensor(np.ones(3), requires_grad=True)
    y = (x * 2).sin()
    y.sum().backward()
    assert y._inputs is None and y._params is None


def test_second_backward_through_freed_graph_raises():
    x = ag.tensor(2.0, requires_grad=True)
    y = (x * x).exp()
    y.backward()
    with pytest.raises(GraphReleasedError, match="second time.*retain_graph=True"):
        y.backward()


def test_a_backward_that_meets_a_released_graph_changes_nothing():
    x = ag.tensor([1.0, 2.0], requires_grad=True)
    shared = x * x
    shared.sum().backward()                  # releases `shared`'s node
    x.grad = None
    h = (shared * 3).retain_grad()           # a new branch on top of the released node
    loss = (h * h).sum()
    with pytest.raises(GraphReleasedError):
        loss.backward()
    # nothing was stored and the new branch still holds its graph
    assert x.grad is None and h.grad is None
    assert h._inputs is not None and loss._inputs is not None


def test_nodes_are_visited_newest_first_the_reverse_of_the_forward_order():
    x = ag.tensor([0.5, 1.5], requires_grad=True)
    a = x.exp()
    b = x.sin()              # made after a, consumed before it in the expression below
    c = x.tanh()
    y = (c * (b + a)).sum()
    seen = []
    ag.engine.backward_hooks.append(lambda node, g, produced: seen.append(node._op.name))
    try:
        y.backward()
    finally:
        ag.engine.backward_hooks.pop()
    assert seen == ["sum", "multiply", "add", "tanh", "sin", "exp"]
    np.testing.assert_allclose(x.grad.data, (1 - np.tanh(x.data) ** 2) * (np.sin(x.data) + np.exp(x.data))
                               + np.tanh(x.data) * (np.cos(x.data) + np.exp(x.data)))


def test_retain_graph_allows_a_second_backward():
    x = ag.tensor(2.0, requires_grad=True)
    y = x * x
    y.backward(retain_graph=True)
    y.backward()
    assert x.grad.item() == 8.0


def test_no_grad_records_nothing_and_restores_the_mode():
    x = ag.tensor(1.0, requires_grad=True)
    with ag.no_grad():
        y = x * 2
        with ag.enable_grad():
            z = x * 2
    assert not y.requires_grad and y.is_leaf
    assert z.requires_grad and not z.is_leaf
    assert ag.is_grad_enabled()


def test_no_grad_works_as_a_decorator():
    @ag.no_grad()
    def infer(t):
        return t * 3
    x = ag.tensor(1.0, requires_grad=True)
    assert not infer(x).requires_grad
    assert (x * 3).requires_grad


def test_no_grad_is_thread_local():
    seen = {}
    entered, release = threading.Event(), threading.Event()

    def other_thread():
        x = ag.tensor(1.0, requires_grad=True)
        entered.wait()
        seen["other"] = (x * 2).requires_grad
        release.set()

    t = threading.Thread(target=other_thread)
    t.start()
    with ag.no_grad():
        entered.set()
        release.wait()
    t.join()
    assert seen["other"] is True


def test_retain_grad_keeps_the_gradient_of_a_non_leaf():
    x = ag.tensor([1.0, 2.0], requires_grad=True)
    h = (x * 3).retain_grad()
    (h * h).sum().backward()
    np.testing.assert_allclose(h.grad.data, 2 * h.data)
    np.testing.assert_allclose(x.grad.data, 18 * x.data)


def test_grad_of_grad_of_x_cubed():
    x = ag.tensor(1.5, requires_grad=True)
    (d1,) = ag.autograd_grad(x ** 3, x, create_graph=True)
    (d2,) = ag.autograd_grad(d1, x, create_graph=True)
    (d3,) = ag.autograd_grad(d2, x)
    assert d1.item() == pytest.approx(3 * 1.5 ** 2)
    assert d2.item() == pytest.approx(6 * 1.5)
    assert d3.item() == pytest.approx(6.0)


def test_grad_of_grad_of_tanh_via_backward_create_graph():
    x = ag.tensor(0.7, requires_grad=True)
    ag.tanh(x).backward(create_graph=True)
    first = x.grad
    x.grad = None
    first.backward()
    t = np.tanh(0.7)
    assert first.item() == pytest.approx(1 - t ** 2)
    assert x.grad.item() == pytest.approx(-2 * t * (1 - t ** 2))


def test_plain_backward_builds_no_second_graph():
    x = ag.tensor([0.3, 0.4], requires_grad=True)
    (ag.sigmoid(x) * x).sum().backward()
    assert not x.grad.requires_grad and x.grad.is_leaf


def test_engine_grad_does_not_touch_dot_grad_and_gives_zeros_for_unused_inputs():
    x = ag.tensor([1.0, 2.0], requires_grad=True)
    unused = ag.tensor([5.0], requires_grad=True)
    gx, gu = ag.autograd_grad((x * x).sum(), [x, unused])
    np.testing.assert_allclose(gx.data, [2.0, 4.0])
    np.testing.assert_allclose(gu.data, [0.0])
    assert x.grad is None


def test_engine_grad_gives_each_input_an_array_of_its_own():
    a = ag.tensor(np.ones(3), requires_grad=True)
    b = ag.tensor(np.ones(3), requires_grad=True)
    seed = np.array([1.0, 2.0, 3.0])
    ga, gb = ag.autograd_grad(a + b, [a, b], grad_outputs=seed)  # add hands both the seed itself
    ga.data *= 10
    np.testing.assert_array_equal(gb.data, [1.0, 2.0, 3.0])
    np.testing.assert_array_equal(seed, [1.0, 2.0, 3.0])
    g1, g2 = ag.autograd_grad((a * b).sum(), [a, a])          # the same input asked for twice
    g1.data *= 10
    np.testing.assert_array_equal(g2.data, [1.0, 1.0, 1.0])


def test_vjp_pullback_does_not_hand_back_the_callers_cotangent():
    _, pullback = ag.vjp(lambda x, y: x + y, np.ones(3), np.ones(3))
    c = np.array([1.0, 2.0, 3.0])
    gx, gy = pullback(c)
    gx *= 10
    np.testing.assert_array_equal(gy, [1.0, 2.0, 3.0])
    np.testing.assert_array_equal(c, [1.0, 2.0, 3.0])


def test_backward_with_an_explicit_gradient():
    x = ag.tensor([1.0, 2.0, 3.0], requires_grad=True)
    (x * x).backward(gradient=np.array([1.0, 0.0, -1.0]))
    np.testing.assert_allclose(x.grad.data, [2.0, 0.0, -6.0])


def test_broadcast_gradients_are_summed_back_to_the_input_shape():
    a = ag.tensor(np.ones((3, 1)), requires_grad=True)
    b = ag.tensor(np.ones(4), requires_grad=True)
    (a * b).sum().backward()
    assert a.grad.shape == (3, 1) and b.grad.shape == (4,)
    np.testing.assert_allclose(a.grad.data, 4.0)
    np.testing.assert_allclose(b.grad.data, 3.0)


def test_leaf_gradient_is_a_writeable_array_of_its_own():
    x = ag.tensor(np.ones((2, 3)), requires_grad=True)
    x.sum().backward()           # the rule broadcasts a scalar: a read-only view
    assert x.grad.data.flags.writeable
    x.grad.data[0, 0] = 5.0      # must not raise


FLOAT32_OPS = {
    "arithmetic": lambda a, b: ((a + b) * a - b / (b * b + 1)) ** 2 + 2.0 * a,
    "power": lambda a, b: ag.sqrt(a * a + 1) ** (b * 0 + 1.5),
    "unary": lambda a, b: ag.exp(ag.sin(a)) + ag.cos(b) + ag.tanh(a) + ag.sigmoid(b) + ag.relu(a)
    + ag.softplus(b) + ag.log1p(a * a) + ag.expm1(b * 0.1) + abs(a) + ag.log(b * b + 1),
    "select": lambda a, b: ag.maximum(a, b) + ag.minimum(a, b) + ag.where(a > 0, a, b) + ag.clip(a, -1, 1),
    "reduce": lambda a, b: a.sum(0) + a.mean(1).sum() + a.max() + b.min(0) + a.var(0) + ag.logsumexp(b, 1).sum()
    + ag.softmax(a, 0).sum(0) + ag.log_softmax(b, 1).sum(1).sum(),
    "shape": lambda a, b: (a.reshape(-1).reshape(3, 4).T.transpose(1, 0) + ag.broadcast_to(b[0], (3, 4))
                           + ag.concatenate([a[:1], b[1:]], 0) + ag.stack([a, b], 0).sum(0)
                           + ag.expand_dims(a, 0).squeeze(0)),
    "linalg": lambda a, b: (a @ b.T).sum() + ag.dot(a[0], b[0]) + ag.outer(a[0], b[1]).sum(),
}


@pytest.mark.parametrize("name", sorted(FLOAT32_OPS))
def test_float32_stays_float32_through_forward_and_backward(name):
    rng = np.random.default_rng(0)
    a = ag.tensor(rng.standard_normal((3, 4)).astype(np.float32), requires_grad=True)
    b = ag.tensor(rng.standard_normal((3, 4)).astype(np.float32), requires_grad=True)
    out = FLOAT32_OPS[name](a, b)
    assert out.dtype == np.float32
    out.sum().backward()
    assert a.grad.dtype == np.float32 and b.grad.dtype == np.float32


def test_unbroadcast_sums_stretched_axes_and_stretches_missing_ones():
    from autograd_lite.engine import unbroadcast
    np.testing.assert_array_equal(unbroadcast(np.ones((2, 3, 4)), (3, 1)), np.full((3, 1), 8.0))
    np.testing.assert_array_equal(unbroadcast(np.ones((3, 1)), (3, 4)), np.ones((3, 4)))
    np.testing.assert_array_equal(unbroadcast(np.ones((1, 4)), (3, 1)), np.full((3, 1), 4.0))
    assert unbroadcast(np.ones(()), (2, 2)).shape == (2, 2)


@pytest.mark.parametrize("order", ["shared first", "fresh first"])
def test_summing_cotangents_in_place_never_touches_a_shared_one(order):
    a = ag.tensor(np.ones(3), requires_grad=True)
    b = ag.tensor(np.ones(3), requires_grad=True)
    shared = (a + b) * 1.0           # add hands the same cotangent array to a and b
    fresh = a * 2.0                  # multiply gives a a new array of its own
    parts = [shared, fresh] if order == "shared first" else [fresh, shared]
    (parts[0] + parts[1] + a * a).sum().backward()
    np.testing.assert_array_equal(a.grad.data, [5.0, 5.0, 5.0])   # 1 + 2 + 2a
    np.testing.assert_array_equal(b.grad.data, [1.0, 1.0, 1.0])


def test_copies_of_a_recorded_tensor_backpropagate_like_the_original():
    # a copy keeps the node's creation number: the sweep's heap must not compare Tensors on a tie
    import copy
    x = ag.tensor(np.arange(3.0), requires_grad=True)
    y = ag.tanh(x)
    (y * 2.0 + copy.copy(y)).sum().backward()
    np.testing.assert_allclose(x.grad.data, 3 * (1 - np.tanh(x.data) ** 2), rtol=1e-14)


def test_backward_from_an_integer_or_boolean_output_is_refused():
    t = ag.tensor([1.0, 2.0], requires_grad=True)
    with pytest.raises(TypeError, match=r"backward: the output has dtype int64, not floating point"):
        (t * 2).astype(np.int64).sum().backward()
    assert t.grad is None
