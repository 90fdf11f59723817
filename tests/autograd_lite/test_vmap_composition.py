"""vmap composed with grad, vjp, jvp, jacobian, hessian and itself, in both nesting orders: each
against the loop of the unbatched transform, float64, 1e-12."""
import numpy as np
import pytest

import autograd_lite as ag
from autograd_lite import vmap

TOL = dict(rtol=1e-12, atol=1e-12)
rng = np.random.default_rng(1)


def close(got, want):
    got = got.data if isinstance(got, ag.Tensor) else got
    assert np.shape(got) == np.shape(want)
    np.testing.assert_allclose(got, want, **TOL)


def loss(w, x):
    """A per-example loss with broadcasting inside: w (3,) against x (2, 3)."""
    return (ag.tanh(x * w) ** 2).sum() + ag.logsumexp(x @ w)


def test_vmap_of_grad_gives_per_example_gradients_never_summed_over_the_batch():
    w, X = rng.normal(size=3), rng.normal(size=(5, 2, 3))
    got = vmap(ag.grad(loss), in_axes=(None, 0))(w, X)
    close(got, np.stack([ag.grad(loss)(w, x) for x in X]))
    got_x = vmap(ag.grad(loss, argnums=1), in_axes=(None, 0))(w, X)
    close(got_x, np.stack([ag.grad(loss, argnums=1)(w, x) for x in X]))


def test_grad_of_vmap_is_the_gradient_of_the_summed_losses():
    w, X = rng.normal(size=3), rng.normal(size=(5, 2, 3))
    total = lambda w_: vmap(loss, in_axes=(None, 0))(w_, X).sum()
    close(ag.grad(total)(w), sum(ag.grad(loss)(w, x) for x in X))


def test_grad_of_vmap_of_grad_second_order():
    w, X = rng.normal(size=3), rng.normal(size=(4, 2, 3))
    norms = lambda w_: (vmap(ag.grad(loss), in_axes=(None, 0))(w_, X) ** 2).sum()
    want = sum(ag.grad(lambda v: (ag.grad(loss)(v, x) ** 2).sum())(w) for x in X)
    close(ag.grad(norms)(w), want)


def test_vmap_of_jvp_and_jvp_of_vmap():
    X, T = rng.normal(size=(4, 2, 3)), rng.normal(size=(4, 2, 3))
    w = rng.normal(size=3)
    f = lambda x: loss(w, x)
    tangents = vmap(lambda x, t: ag.jvp(f, (x,), (t,))[1])(X, T)
    close(tangents, np.stack([ag.jvp(f, (x,), (t,))[1] for x, t in zip(X, T)]))
    _, tangent = ag.jvp(vmap(f), (X,), (T,))
    close(tangent, np.stack([ag.jvp(f, (x,), (t,))[1] for x, t in zip(X, T)]))


def test_vmap_of_vjp_pullback_over_cotangents():
    x = rng.normal(size=4)
    f = lambda v: ag.sin(v) * v.sum()
    _, pullback = ag.vjp(f, x)
    V = rng.normal(size=(6, 4))
    close(vmap(lambda v: pullback(v)[0])(V), np.stack([pullback(v)[0] for v in V]))


def test_vmap_of_jacobian_and_hessian():
    X = rng.normal(size=(3, 4))
    f = lambda x: ag.tanh(x) * x.sum()
    s = lambda x: (ag.sin(x) * x ** 2).sum()
    close(vmap(ag.jacobian(f, mode="rev"))(X), np.stack([ag.jacobian(f, mode="rev")(x) for x in X]))
    close(vmap(ag.jacobian(f, mode="fwd"))(X), np.stack([ag.jacobian(f, mode="fwd")(x) for x in X]))
    close(vmap(ag.hessian(s))(X), np.stack([ag.hessian(s)(x) for x in X]))


def test_vmap_of_vmap_of_grad_and_vmap_inside_grad():
    W, X = rng.normal(size=(2, 3)), rng.normal(size=(4, 2, 3))
    per_pair = vmap(vmap(ag.grad(loss), in_axes=(0, None)), in_axes=(None, 0))(W, X)
    close(per_pair, np.stack([np.stack([ag.grad(loss)(w, x) for w in W]) for x in X]))
    inner = ag.grad(lambda w: vmap(lambda x: loss(w, x))(X).mean())
    close(vmap(inner)(W), np.stack([np.mean([ag.grad(loss)(w, x) for x in X], axis=0) for w in W]))


def mlp_loss(W1, b1, W2, b2, x, y):
    """Cross-entropy of a 2-layer MLP on ONE example: x (1, 8), y (1,) integer label."""
    h = ag.fused.linear(x, W1, b1, activation="tanh")
    return ag.fused.softmax_cross_entropy(h @ W2 + b2, y)


def test_per_example_gradients_of_an_mlp_equal_a_loop_of_backward_passes():
    params = [rng.normal(size=(8, 5)) * 0.5, rng.normal(size=5), rng.normal(size=(5, 3)) * 0.5,
              rng.normal(size=3)]
    X, Y = rng.normal(size=(7, 1, 8)), rng.integers(0, 3, size=(7, 1))
    got = vmap(ag.grad(mlp_loss, argnums=(0, 1, 2, 3)), in_axes=(None,) * 4 + (0, 0))(*params, X, Y)
    for k in range(len(X)):
        leaves = [ag.tensor(p, requires_grad=True) for p in params]
        mlp_loss(*leaves, X[k], Y[k]).backward()
        for g, leaf in zip(got, leaves):
            np.testing.assert_allclose(g[k], leaf.grad.data, **TOL)


@pytest.mark.parametrize("activation", [None, "relu", "sigmoid"])
def test_fused_primitives_batched_in_grad(activation):
    W, b = rng.normal(size=(4, 3)), rng.normal(size=3)
    X, T = rng.normal(size=(5, 2, 4)), rng.uniform(0, 1, size=(5, 2, 3))
    f = lambda W_, x, t: ag.fused.bce_with_logits(ag.fused.linear(x, W_, b, activation=activation), t) + \
        ag.fused.half_lambda_sum_of_squares(W_, lam=0.1)
    close(vmap(ag.grad(f), in_axes=(None, 0, 0))(W, X, T), np.stack([ag.grad(f)(W, x, t) for x, t in zip(X, T)]))


# ---------------------------------------------------------------- jacobian / hessian through vmap
@pytest.mark.parametrize("mode", ["fwd", "rev"])
def test_jacobian_vectorized_equals_the_loop_with_tuples(mode):
    x, y = rng.normal(size=(2, 3)), rng.normal(size=4)
    f = lambda a, b: (ag.tanh(a @ ag.ones((3, 4))) * b, (a ** 2).sum() * ag.sin(b).sum())
    fast = ag.jacobian(f, argnums=(0, 1), mode=mode)(x, y)
    slow = ag.jacobian(f, argnums=(0, 1), mode=mode, vectorize=False)(x, y)
    for row_fast, row_slow in zip(fast, slow):
        for a, b in zip(row_fast, row_slow):
            close(a, b)


def test_hessian_vectorized_equals_the_loop_and_keeps_a_graph_for_tensors():
    x = rng.normal(size=6)
    s = lambda v: (ag.sin(v) * v ** 2).sum() + ag.logsumexp(ag.outer(v, v))
    close(ag.hessian(s)(x), ag.hessian(s, vectorize=False)(x))
    t = ag.tensor(x, requires_grad=True)
    ag.hessian(s)(t).sum().backward()                      # third derivatives through vmap
    t2 = ag.tensor(x, requires_grad=True)
    ag.hessian(s, vectorize=False)(t2).sum().backward()
    close(t.grad, t2.grad.data)


def test_checkpoint_inside_vmap_runs_f_and_gradients_are_right():
    w, X = rng.normal(size=(3, 3)), rng.normal(size=(5, 2, 3))
    block = lambda h, w_: ag.tanh(h @ w_) @ w_
    f = lambda w_, x: (ag.checkpoint(block)(x, w_) ** 2).sum()
    g = lambda w_, x: (block(x, w_) ** 2).sum()
    close(vmap(ag.grad(f), in_axes=(None, 0))(w, X), np.stack([ag.grad(g)(w, x) for x in X]))
    close(ag.grad(lambda w_: vmap(lambda x: f(w_, x))(X).sum())(w), sum(ag.grad(g)(w, x) for x in X))
