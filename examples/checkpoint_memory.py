"""Checkpointing trades compute for memory: the peak memory and the time of one forward and
backward of a deep tanh MLP, without checkpoints and with one every k layers.

Without checkpoints the graph keeps every layer's activation until the backward reaches it;
`checkpoint(block)` keeps only each block's input and computes the block's interior again when
the backward gets there (one extra forward in all). Peak memory is measured with tracemalloc
(NumPy reports its arrays to it); the gradients are checked to be the same in every row.

    python examples/checkpoint_memory.py [--layers 20] [--width 128] [--batch 512] [--every 1 4 5 10]
"""
import argparse
import time
import tracemalloc

import numpy as np

import autograd_lite as ag
import nn
from autograd_lite.checkpoint import checkpoint


def run_block(h, layers):
    for layer in layers:
        h = layer(h, activation="tanh")
    return h


def forward_backward(layers, x, every):
    """Peak traced bytes and seconds of one forward and backward; the weights' gradients."""
    for layer in layers:
        layer.zero_grad()
    tracemalloc.start()
    start = time.perf_counter()
    try:
        h = x
        for i in range(0, len(layers), every or len(layers)):
            block = layers[i:i + every] if every else layers
            h = checkpoint(run_block)(h, block) if every else run_block(h, block)
        h.sum().backward()
        seconds = time.perf_counter() - start
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    return peak, seconds, [layer.weight.grad.data.copy() for layer in layers]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--layers", type=int, default=20)
    parser.add_argument("--width", type=int, default=128)
    parser.add_argument("--batch", type=int, default=512)
    parser.add_argument("--every", type=int, nargs="+", default=[1, 2, 4, 5, 10],
                        help="checkpoint every k layers (one row each)")
    args = parser.parse_args()
    layers = [nn.Linear(args.width, args.width, seed=i) for i in range(args.layers)]
    x = ag.tensor(np.random.default_rng(0).standard_normal((args.batch, args.width)))
    forward_backward(layers, x[:2], None)   # first use: kernels compile

    base_peak, base_seconds, reference = forward_backward(layers, x, None)
    print(f"{args.layers} tanh layers of {args.width} units, batch {args.batch}, float64")
    print(f"{'checkpoint':>16}  {'peak MiB':>9}  {'ratio':>6}  {'seconds':>8}  max |grad diff|")
    print(f"{'none':>16}  {base_peak / 2**20:9.1f}  {1:6.2f}  {base_seconds:8.3f}  -")
    for every in args.every:
        peak, seconds, grads = forward_backward(layers, x, every)
        diff = max(float(np.abs(a - b).max()) for a, b in zip(grads, reference))
        print(f"{'every ' + str(every) + ' layers':>16}  {peak / 2**20:9.1f}  "
              f"{peak / base_peak:6.2f}  {seconds:8.3f}  {diff:.1e}")


if __name__ == "__main__":
    main()
