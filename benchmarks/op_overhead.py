"""Per-op overhead: microseconds per operation, forward + backward, on tiny tensors.

On 1-element and 4x4 tensors the arithmetic is free, so what is measured is the cost of
recording an operation and pulling a gradient back through it. Compares autograd-lite, eager
and through `ag.compile` (the step traced once and replayed), with PyTorch eager, HIPS autograd
and JAX (eager, no jit) when they are installed. The libraries of a case are timed in turns,
so a change in the machine's load falls on all of them alike.

    python benchmarks/op_overhead.py [--repeats 7] [--json out.json]
"""
from __future__ import annotations

import argparse
import functools
import os
import sys
from typing import Callable, Dict, List, Optional

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import autograd_lite as ag  # noqa: E402
from report import write_json  # noqa: E402
from timing import measure_in_turns  # noqa: E402

# each mix and the number of primitive operations in it
MIXES = {
    "a*b+c, sum": 3,
    "tanh(exp(a)*b), sum": 4,
    "relu(a@b+c), sum": 4,
}


def _ours(mix: str, shape: tuple, compiled: bool = False) -> Callable[[], None]:
    """One step of `mix` (gradients reset, forward, backward) on fresh tensors of `shape`; with
    `compiled`, through `ag.compile`: traced on the first call (in the warm-up), replayed after."""
    rng = np.random.default_rng(0)
    a, b, c = (ag.tensor(rng.standard_normal(shape), requires_grad=True) for _ in range(3))
    exprs = {
        "a*b+c, sum": lambda: (a * b + c).sum(),
        "tanh(exp(a)*b), sum": lambda: ag.tanh(ag.exp(a) * b).sum(),
        "relu(a@b+c), sum": lambda: ag.relu(a @ b + c).sum(),
    }
    f = exprs[mix]

    def step() -> None:
        a.grad = b.grad = c.grad = None
        f().backward()
    return ag.compile(step) if compiled else step


def _torch(mix: str, shape: tuple) -> Optional[Callable[[], None]]:
    try:
        import torch
    except ImportError:
        return None
    torch.set_num_threads(1)
    rng = np.random.default_rng(0)
    a, b, c = (torch.tensor(rng.standard_normal(shape), requires_grad=True) for _ in range(3))
    exprs = {
        "a*b+c, sum": lambda: (a * b + c).sum(),
        "tanh(exp(a)*b), sum": lambda: torch.tanh(torch.exp(a) * b).sum(),
        "relu(a@b+c), sum": lambda: torch.relu(a @ b + c).sum(),
    }
    f = exprs[mix]

    def step() -> None:
        a.grad = b.grad = c.grad = None
        f().backward()
    return step


def _hips(mix: str, shape: tuple) -> Optional[Callable[[], None]]:
    try:
        import autograd
        import autograd.numpy as anp
    except ImportError:
        return None
    rng = np.random.default_rng(0)
    a, b, c = (rng.standard_normal(shape) for _ in range(3))
    exprs = {
        "a*b+c, sum": lambda a, b, c: anp.sum(a * b + c),
        "tanh(exp(a)*b), sum": lambda a, b, c: anp.sum(anp.tanh(anp.exp(a) * b)),
        "relu(a@b+c), sum": lambda a, b, c: anp.sum(anp.maximum(anp.dot(a, b) + c, 0)),
    }
    grad_all = autograd.grad(lambda abc: exprs[mix](*abc))
    return lambda: grad_all((a, b, c))


def _jax(mix: str, shape: tuple) -> Optional[Callable[[], None]]:
    try:
        import jax
        import jax.numpy as jnp
    except ImportError:
        return None
    jax.config.update("jax_enable_x64", True)
    rng = np.random.default_rng(0)
    a, b, c = (jnp.asarray(rng.standard_normal(shape)) for _ in range(3))
    exprs = {
        "a*b+c, sum": lambda a, b, c: jnp.sum(a * b + c),
        "tanh(exp(a)*b), sum": lambda a, b, c: jnp.sum(jnp.tanh(jnp.exp(a) * b)),
        "relu(a@b+c), sum": lambda a, b, c: jnp.sum(jax.nn.relu(a @ b + c)),
    }
    g = jax.grad(exprs[mix], argnums=(0, 1, 2))

    def step() -> None:
        jax.block_until_ready(g(a, b, c))
    return step


LIBRARIES = {"autograd-lite": _ours, "autograd-lite compiled": functools.partial(_ours, compiled=True), "pytorch eager": _torch, "HIPS autograd": _hips,
             "jax (eager grad, no jit)": _jax}


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=7, help="timed runs per case (median)")
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    args = parser.parse_args(argv)
    rows: List[Dict] = []
    missing = set()
    print(f"{'mix':<22} {'shape':<7} {'library':<26} {'us/op':>8} {'x ours':>8}")
    for mix, n_ops in MIXES.items():
        for shape in [(1,), (4, 4)]:
            if mix.startswith("relu(a@b") and shape == (1,):
                shape_used = (1, 1)
            else:
                shape_used = shape
            steps = {}
            for name, make in LIBRARIES.items():
                step = make(mix, shape_used)
                if step is None:
                    missing.add(name)
                    continue
                steps[name] = step
            timed = measure_in_turns(steps, args.repeats, min_time=0.05, warmup=20)
            ours = timed["autograd-lite"][0] / n_ops * 1e6
            for name, (seconds, _) in timed.items():
                us_per_op = seconds / n_ops * 1e6
                rows.append(dict(mix=mix, shape=list(shape_used), library=name, ops=n_ops,
                                 us_per_op=us_per_op, ratio_to_ours=us_per_op / ours))
                print(f"{mix:<22} {str(shape_used):<7} {name:<26} {us_per_op:8.2f} {us_per_op / ours:8.2f}")
    for name in sorted(missing):
        print(f"note: {name} is not installed; skipped (pip install -e '.[peers]')")
    if args.json:
        write_json(args.json, {"unit": "microseconds per op, forward + backward", "rows": rows})
    return 0


if __name__ == "__main__":
    sys.exit(main())
