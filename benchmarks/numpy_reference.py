"""The hand-written NumPy training step (the lecture's backprop equations) and the BLAS floor,
used by mlp_training.py as the baselines. Not part of the package.

Forward: Z(h) = A(h-1) W(h) + b(h), A(h) = phi(Z(h)). Backward: delta(out) = (a(out) - y) / n
(for the logistic cost or softmax cross-entropy, both from logits), delta(h) = delta(h+1)
W(h+1)^T (.) phi'(Z(h)); Delta(h) = A(h-1)^T delta(h) + lam W(h); update W := W - eta Delta.
"""
from __future__ import annotations

from typing import Callable, List, Tuple

import numpy as np

NETS = {
    "A": dict(name="A", sizes=[784, 100, 10], activation="sigmoid", loss="bce", l2=1e-4,
              optimizer="sgd", lr=0.1, dropout=0.0),
    "B": dict(name="B", sizes=[784, 256, 128, 10], activation="relu", loss="ce", l2=0.0,
              optimizer="adam", lr=1e-3, dropout=0.2),
}


def make_batch(net: dict, batch: int, dtype: np.dtype, seed: int = 0) -> Tuple[np.ndarray, np.ndarray]:
    """Pixel-like inputs in [0, 1] and integer labels."""
    rng = np.random.default_rng(seed)
    X = rng.random((batch, net["sizes"][0])).astype(dtype)
    y = rng.integers(0, net["sizes"][-1], batch)
    return X, y


def initial_weights(net: dict, dtype: np.dtype, seed: int = 1) -> List[Tuple[np.ndarray, np.ndarray]]:
    """Glorot-uniform weights (in, out) and zero biases, the same for every implementation."""
    rng = np.random.default_rng(seed)
    out = []
    for n_in, n_out in zip(net["sizes"][:-1], net["sizes"][1:]):
        limit = np.sqrt(6.0 / (n_in + n_out))
        out.append((rng.uniform(-limit, limit, (n_in, n_out)).astype(dtype), np.zeros(n_out, dtype)))
    return out


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 0.5 * (np.tanh(0.5 * z) + 1)


class NumpyStep:
    """One training step written out by hand in NumPy; calling it returns the loss."""

    def __init__(self, net: dict, W: list, X: np.ndarray, y: np.ndarray, dropout: float) -> None:
        self.net, self.X, self.y, self.p = net, X, y, dropout
        self.W = [w for w, _ in W]
        self.b = [b for _, b in W]
        self.Y = np.eye(net["sizes"][-1], dtype=X.dtype)[y]
        self.rng = np.random.default_rng(0)
        self.t = 0
        self.m = [np.zeros_like(p) for p in self.W + self.b]
        self.v = [np.zeros_like(p) for p in self.W + self.b]

    def __call__(self) -> float:
        net, X, n, lam = self.net, self.X, self.X.shape[0], self.net["l2"]
        sigmoid = net["activation"] == "sigmoid"
        A, masks = [X], []
        for W, b in zip(self.W[:-1], self.b[:-1]):
            Z = A[-1] @ W + b
            a = _sigmoid(Z) if sigmoid else np.maximum(Z, 0)
            if self.p:
                mask = (self.rng.random(a.shape) >= self.p) * np.asarray(1 / (1 - self.p), X.dtype)
                a = a * mask
                masks.append(mask)
            A.append(a)
        z = A[-1] @ self.W[-1] + self.b[-1]
        if net["loss"] == "bce":
            loss = np.sum(np.logaddexp(0, z) - self.Y * z) / n
            delta = (_sigmoid(z) - self.Y) / n                         # delta(out) = a(out) - y
        else:
            shifted = z - z.max(axis=1, keepdims=True)
            e = np.exp(shifted)
            s = e.sum(axis=1, keepdims=True)
            loss = -np.sum(shifted[np.arange(n), self.y] - np.log(s[:, 0])) / n
            delta = (e / s - self.Y) / n
        if lam:
            loss += lam / 2 * sum(np.sum(W * W) for W in self.W)
        grads_W, grads_b = [], []
        for layer in range(len(self.W) - 1, -1, -1):
            grads_W.append(A[layer].T @ delta + lam * self.W[layer])   # Delta = A^T delta + lam W
            grads_b.append(delta.sum(axis=0))
            if layer:
                delta = delta @ self.W[layer].T                        # delta W^T (.) phi'(Z)
                if self.p:
                    delta = delta * masks[layer - 1]
                a = A[layer]
                delta = delta * (a * (1 - a)) if sigmoid else delta * (a > 0)
        grads = grads_W[::-1] + grads_b[::-1]
        params = self.W + self.b
        if net["optimizer"] == "sgd":
            for p, g in zip(params, grads):
                p -= net["lr"] * g
        else:
            self.t += 1
            b1, b2, eps, lr = 0.9, 0.999, 1e-8, net["lr"]
            for p, g, m, v in zip(params, grads, self.m, self.v):
                m *= b1
                m += (1 - b1) * g
                v *= b2
                v += (1 - b2) * g * g
                p -= lr * (m / (1 - b1 ** self.t)) / (np.sqrt(v / (1 - b2 ** self.t)) + eps)
        return float(loss)


def _check_net_a(who: str, net: dict, dropout: float) -> None:
    """The two yardstick steps below are written for net A only (sigmoid, logistic cost, SGD,
    no dropout)."""
    if net["activation"] != "sigmoid" or net["loss"] != "bce" or net["optimizer"] != "sgd" or dropout:
        raise ValueError(f"{who}: written for net A only (sigmoid, logistic cost, SGD, no dropout)")


class FusedKernelStep:
    """Net A's step with no framework at all: autograd-lite's Numba kernels called directly on
    preallocated buffers, the L2 sum of squares and the SGD update fused into one pass per
    weight. What the kernels give with all graph, dispatch and allocation cost removed: the
    best this step can do around the BLAS floor on this machine, a yardstick for the targets."""

    def __init__(self, net: dict, W: list, X: np.ndarray, y: np.ndarray, dropout: float) -> None:
        _check_net_a("FusedKernelStep", net, dropout)
        from autograd_lite.kernels import jitted
        self.jitted = jitted
        self.update = _fused_sgd_l2()
        (self.W1, self.b1), (self.W2, self.b2) = W
        self.X, self.n = X, X.shape[0]
        self.Y = np.eye(net["sizes"][-1], dtype=X.dtype)[y]
        self.lr, self.lam = net["lr"], net["l2"]
        n, h, o = self.n, self.W1.shape[1], self.W2.shape[1]
        self.A1, self.Z2, self.D2 = (np.empty((n, h), X.dtype), np.empty((n, o), X.dtype),
                                     np.empty((n, o), X.dtype))
        self.G1, self.D1 = np.empty((n, h), X.dtype), np.empty((n, h), X.dtype)
        self.losses, self.db1 = np.empty(n, X.dtype), np.empty(h, X.dtype)
        self.dW1, self.dW2 = np.empty_like(self.W1), np.empty_like(self.W2)

    def __call__(self) -> float:
        k = self.jitted
        np.dot(self.X, self.W1, out=self.A1)
        k.bias_sigmoid(self.A1, self.b1)                                 # a_h = sigmoid(X W1 + b1)
        np.dot(self.A1, self.W2, out=self.Z2)
        self.Z2 += self.b2
        total, _ = k.bce_with_logits(self.Z2, self.Y, self.losses, self.D2)   # D2 = a_out - y
        self.D2 *= self.D2.dtype.type(1 / self.n)                         # delta_out
        np.dot(self.A1.T, self.D2, out=self.dW2)
        db2 = self.D2.sum(axis=0)
        np.dot(self.D2, self.W2.T, out=self.G1)
        k.linear_backward(self.G1, self.A1, k.SIGMOID, self.D1, self.db1)  # delta_h and its sums
        np.dot(self.X.T, self.D1, out=self.dW1)
        squares = (self.update(self.W1.reshape(-1), self.dW1.reshape(-1), self.lr, self.lam)
                   + self.update(self.W2.reshape(-1), self.dW2.reshape(-1), self.lr, self.lam))
        self.b1 -= self.b1.dtype.type(self.lr) * self.db1
        self.b2 -= self.b2.dtype.type(self.lr) * db2
        return float(total / self.n + self.lam / 2 * squares)


class StraightLinePrimitivesStep:
    """Net A's step as straight-line code over autograd-lite's own primitives: each primitive's
    forward and VJP rule called directly on arrays, in the order the engine would call them,
    then the SGD kernel per parameter. No Tensors, no graph, no sweep, no nn wrappers: the
    difference to the eager step is what recording and walking the graph costs, the
    difference to `FusedKernelStep` what the primitives' own Python layers cost."""

    def __init__(self, net: dict, W: list, X: np.ndarray, y: np.ndarray, dropout: float) -> None:
        _check_net_a("StraightLinePrimitivesStep", net, dropout)
        from autograd_lite import fused, kernels, primitives
        self.linear, self.bce, self.add = fused._linear, fused._bce_with_logits, primitives.add
        self.l2, self.sgd = fused.half_lambda_sum_of_squares, kernels.sgd_update
        (self.W1, self.b1), (self.W2, self.b2) = W
        self.X, self.Y = X, np.eye(net["sizes"][-1], dtype=X.dtype)[y]
        self.lr, self.lam = net["lr"], net["l2"]

    def __call__(self) -> float:
        linear, bce, add, l2 = self.linear, self.bce, self.add, self.l2
        X, Y, W1, b1, W2, b2, lam = self.X, self.Y, self.W1, self.b1, self.W2, self.b2, self.lam
        a1 = linear.forward(X, W1, b1, activation="sigmoid")
        z2 = linear.forward(a1, W2, b2, activation=None)
        cost = bce.forward(z2, Y, reduction="mean")
        penalty = l2.forward(W1, W2, lam=lam)
        J = add.forward(cost, penalty)
        g = np.ones((), J.dtype)
        g_cost, g_penalty = add.vjps[0](g, J, cost, penalty), add.vjps[1](g, J, cost, penalty)
        g_z2 = bce.vjps[0](g_cost, cost, z2, Y, reduction="mean")
        g_a1, gW2, gb2 = linear.vjp_joint(g_z2, z2, a1, W2, b2, activation=None, wanted=(True, True, True))
        _, gW1, gb1 = linear.vjp_joint(g_a1, a1, X, W1, b1, activation="sigmoid", wanted=(False, True, True))
        l2.vjp_into(gW1, g_penalty, penalty, W1, W2, lam=lam, argnum=0)
        l2.vjp_into(gW2, g_penalty, penalty, W1, W2, lam=lam, argnum=1)
        for param, grad in ((W1, gW1), (b1, gb1), (W2, gW2), (b2, gb2)):
            self.sgd(param, grad, None, self.lr, 0.0, False, 0.0)
        return float(J)


def _fused_sgd_l2():
    """A Numba kernel: sum(W**2) of the weights before the step, and W -= lr (dW + lam W),
    in one pass."""
    from numba import njit

    # "reassoc" lets the sum of squares vectorize (a strict left-to-right float64 sum is one
    # long dependency chain: 70 us instead of 4 for 78,400 weights)
    @njit(cache=False, fastmath={"contract", "reassoc"})
    def update(w, dw, lr, lam):
        to = w.dtype.type
        lr_, lam_ = to(lr), to(lam)
        squares = 0.0
        for i in range(w.size):
            wi = w[i]
            squares += np.float64(wi) * np.float64(wi)
            w[i] = wi - lr_ * (dw[i] + lam_ * wi)
        return squares
    return update


def blas_floor(net: dict, W: list, X: np.ndarray) -> Callable[[], float]:
    """Only the matrix products of one step, into preallocated outputs: the time no
    implementation of this step can beat."""
    Ws = [w for w, _ in W]
    n = X.shape[0]
    acts = [X] + [np.empty((n, w.shape[1]), X.dtype) for w in Ws]
    deltas = [np.empty((n, w.shape[0]), X.dtype) for w in Ws]
    dWs = [np.empty_like(w) for w in Ws]

    def step() -> float:
        for i, w in enumerate(Ws):                         # forward: A W
            np.dot(acts[i], w, out=acts[i + 1])
        for i in range(len(Ws) - 1, -1, -1):               # backward: A^T delta, delta W^T
            np.dot(acts[i].T, acts[i + 1], out=dWs[i])
            if i:
                np.dot(acts[i + 1], Ws[i].T, out=deltas[i])
        return 0.0
    return step
