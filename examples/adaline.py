"""Adaline, the single-layer recap, built with autograd-lite and trained two ways.

Adaline (ADAptive LInear NEuron, Widrow & Hoff 1960) has a linear activation z = x w + b and
the cost J(w) = 1/2 sum_i (y_i - z_i)^2; the class is the sign of z. Here it tells the digit
3 from the digit 8 in the bundled 8x8 digits (labels +1 / -1), trained by batch gradient
descent (one step per epoch, on the whole training set) and by stochastic gradient descent
(one step per sample, in a new random order each epoch). It prints the cost per epoch of both.

    python examples/adaline.py [--epochs 15]
"""
import argparse

import numpy as np

import nn
from nn.data import batches, preprocess
from nn.datasets import load_digits

POSITIVE, NEGATIVE = 3, 8


def adaline_cost(model: nn.Module, x: np.ndarray, y: np.ndarray):
    """J = 1/2 sum (y - z)^2 with z = x w + b (a Tensor, so it can be differentiated)."""
    z = model(x).reshape(-1)
    return 0.5 * nn.mse(z.reshape(-1, 1), y.reshape(-1, 1), reduction="sum")


def train(x: np.ndarray, y: np.ndarray, lr: float, epochs: int, batch_size, seed: int = 0):
    """Adaline trained with the given batch size (None: batch GD, 1: SGD); the cost after each epoch."""
    model = nn.Linear(x.shape[1], 1, seed=seed)
    optimizer = nn.SGD(model, lr=lr)
    costs = []
    iterator = batches(x, y, batch_size=batch_size, seed=seed)
    for _ in range(epochs):
        for xb, yb in iterator:
            cost = adaline_cost(model, xb, yb)
            optimizer.zero_grad()
            cost.backward()
            optimizer.step()
        costs.append(float(adaline_cost(model, x, y).data))
    return model, costs


def accuracy(model: nn.Module, x: np.ndarray, y: np.ndarray) -> float:
    return float(np.mean(np.where(model(x).data.reshape(-1) >= 0, 1.0, -1.0) == y))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=15)
    args = parser.parse_args()

    ds = load_digits()
    def pick(images, labels):
        keep = (labels == POSITIVE) | (labels == NEGATIVE)
        return preprocess(images[keep], 16, dtype=np.float64), np.where(labels[keep] == POSITIVE, 1.0, -1.0)
    x_train, y_train = pick(ds.x_train, ds.y_train)
    x_test, y_test = pick(ds.x_test, ds.y_test)
    mean, std = x_train.mean(axis=0), x_train.std(axis=0) + 1e-8   # standardise: GD converges faster
    x_train, x_test = (x_train - mean) / std, (x_test - mean) / std

    # the batch gradient sums over all n samples: its step must stay below 2 / (the largest
    # eigenvalue of X^T X), about 8e-4 here, or the cost diverges; SGD takes n small steps instead
    batch_model, batch_costs = train(x_train, y_train, lr=5e-4, epochs=args.epochs, batch_size=None)
    sgd_model, sgd_costs = train(x_train, y_train, lr=1e-3, epochs=args.epochs, batch_size=1)

    print(f"Adaline, digit {POSITIVE} (+1) against digit {NEGATIVE} (-1): {len(y_train)} training and "
          f"{len(y_test)} test images, 64 standardised pixels")
    print(f"{'epoch':>5}  {'batch GD cost':>14}  {'SGD cost':>10}")
    for epoch, (a, b) in enumerate(zip(batch_costs, sgd_costs), 1):
        print(f"{epoch:>5}  {a:>14.3f}  {b:>10.3f}")
    print(f"test accuracy: batch GD {100 * accuracy(batch_model, x_test, y_test):.1f}%, "
          f"SGD {100 * accuracy(sgd_model, x_test, y_test):.1f}%")


if __name__ == "__main__":
    main()
