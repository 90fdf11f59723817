"""DP-SGD's core on the bundled 8x8 digits: per-example gradients, clipped, noised, averaged.

Differentially private SGD (Abadi et al. 2016) bounds how much any one example can move the
model: each step computes one gradient per example (`nn.per_example_grads`, one batched pass
through `ag.vmap(ag.grad(...))`), scales each example's gradient to a global L2 norm of at most C
(`nn.clip_per_example`), sums them, adds Gaussian noise N(0, (sigma C)^2) to every coordinate,
divides by the batch size and steps. It prints the test accuracy per epoch beside plain SGD's.
This shows the mechanism only: batches are shuffled rather than Poisson-sampled and no privacy
accountant computes the (epsilon, delta) the run would spend.

    python examples/dp_sgd.py [--epochs 15] [--clip 1.0] [--noise 1.0]
"""
import argparse
import time
from typing import Optional, Sequence

import numpy as np

import nn
from nn.data import batches, preprocess
from nn.datasets import load_digits


def private_step(model: nn.Module, xb: np.ndarray, yb: np.ndarray, lr: float, clip: float,
                 noise: float, rng: np.random.Generator) -> float:
    """One DP-SGD step on the batch (xb, yb); returns the fraction of examples that were clipped."""
    grads = nn.per_example_grads(model, nn.sparse_categorical_cross_entropy, xb, yb)
    clipped, norms = nn.clip_per_example(grads, clip)
    for name, p in model.named_parameters():
        total = clipped[name].sum(axis=0) + rng.normal(0.0, noise * clip, p.data.shape)
        p.data -= lr * total / len(xb)
    return float(np.mean(norms > clip))


def plain_step(model: nn.Module, xb: np.ndarray, yb: np.ndarray, lr: float) -> None:
    """One ordinary SGD step on the batch's mean loss, for comparison."""
    for p in model.parameters():
        p.grad = None
    nn.sparse_categorical_cross_entropy(model(xb), yb).backward()
    for p in model.parameters():
        p.data -= lr * p.grad.data


def accuracy(model: nn.Module, x: np.ndarray, y: np.ndarray) -> float:
    return float(np.mean(np.argmax(model(x).data, axis=1) == y))


def main(argv: Optional[Sequence[str]] = None) -> None:
    """Train DP-SGD and plain SGD side by side, printing a line per epoch (argv: the options)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=0.5)
    parser.add_argument("--clip", type=float, default=1.0, help="C, the largest per-example gradient norm")
    parser.add_argument("--noise", type=float, default=1.0, help="sigma, the noise multiplier")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    ds = load_digits()
    x_train, x_test = (preprocess(x, 16, dtype=np.float64) for x in (ds.x_train, ds.x_test))
    private = nn.MLP([x_train.shape[1], 32, 10], activation="relu", seed=args.seed)
    plain = nn.MLP([x_train.shape[1], 32, 10], activation="relu", seed=args.seed)
    rng = np.random.default_rng(args.seed)
    print(f"digits: {len(x_train)} training / {len(x_test)} test images; batch {args.batch_size}, "
          f"lr {args.lr}, clip C = {args.clip}, noise sigma = {args.noise}")
    print(f"{'epoch':>5} {'DP-SGD acc':>10} {'clipped':>8} {'SGD acc':>8} {'DP s/epoch':>10}")
    for epoch in range(1, args.epochs + 1):
        start = time.perf_counter()
        fractions = [private_step(private, xb, yb, args.lr, args.clip, args.noise, rng)
                     for xb, yb in batches(x_train, ds.y_train, batch_size=args.batch_size, seed=epoch)]
        seconds = time.perf_counter() - start
        for xb, yb in batches(x_train, ds.y_train, batch_size=args.batch_size, seed=epoch):
            plain_step(plain, xb, yb, args.lr)
        print(f"{epoch:>5} {accuracy(private, x_test, ds.y_test):>10.3f} {np.mean(fractions):>8.0%} "
              f"{accuracy(plain, x_test, ds.y_test):>8.3f} {seconds:>10.2f}")


if __name__ == "__main__":
    main()
