"""conv2d and max_pool2d, forward + backward, at LeNet-5 and small-ResNet shapes (batch 64,
float32): autograd-lite's Numba kernels against their NumPy twins and against PyTorch (CPU).

Each row times one forward and the backward to every input (x and w for a convolution, x for a
pooling) from a fixed cotangent: `ag.conv2d(x, w, ...).backward(g)` with the Numba kernels, the
same with `set_kernels("numpy")` (the twins), and `F.conv2d(...).backward(g)` in PyTorch when it
is installed. The ratios twin / Numba and Numba / PyTorch are of times measured in the same run.
The whole table is measured under four settings, each in a fresh process (BLAS reads its
settings at import): one BLAS thread (OPENBLAS_NUM_THREADS=1, torch.set_num_threads(1)) or the
default, each with the environment's OPENBLAS_* variables (OPENBLAS_CORETYPE, OPENBLAS_L2_SIZE)
or with them unset.

    python benchmarks/conv.py [--quick] [--settings 1-thread default ...] [--json out.json]

The LeNet rows add up the two convolutions: the issue's target is Numba at least 2x faster than
the twins there. The last rows time one whole training step of LeNet-5 (`nn.CNN`: 5x5 convolutions
1->6 padded and 6->16 unpadded, ReLU, 2x2 max pooling, dense 400-120-84-10; without and with batch
norm) at batch 64, float32: forward, softmax cross-entropy, backward and an SGD update, against
the same network in PyTorch eager with the same weights (the two first losses are checked to agree);
the issue's target is at most 1.3x PyTorch's time. The machine's load is printed with the table: on a shared machine the
absolute times move; the ratios move less: the implementations are timed in turn, round after
round, and each one's median is taken.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from typing import Callable, Dict, List

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
HERE = os.path.dirname(os.path.abspath(__file__))

# name -> (op, input shape, (out channels, kernel) or pooling kernel, padding)
CASES = {
    "lenet conv1 1->6 5x5 p2 28x28": ("conv", (64, 1, 28, 28), (6, 5), 2),
    "lenet pool1 2x2 6x28x28": ("pool", (64, 6, 28, 28), 2, 0),
    "lenet conv2 6->16 5x5 14x14": ("conv", (64, 6, 14, 14), (16, 5), 0),
    "lenet pool2 2x2 16x10x10": ("pool", (64, 16, 10, 10), 2, 0),
    "resnet 16->16 3x3 p1 32x32": ("conv", (64, 16, 32, 32), (16, 3), 1),
    "resnet 32->32 3x3 p1 16x16": ("conv", (64, 32, 16, 16), (32, 3), 1),
    "resnet 64->64 3x3 p1 8x8": ("conv", (64, 64, 8, 8), (64, 3), 1),
}
LENET_CONVS = ("lenet conv1 1->6 5x5 p2 28x28", "lenet conv2 6->16 5x5 14x14")
SETTINGS = {
    "1-thread": {"threads": "1", "openblas_vars": True},
    "1-thread, OPENBLAS_* unset": {"threads": "1", "openblas_vars": False},
    "default": {"threads": None, "openblas_vars": True},
    "default, OPENBLAS_* unset": {"threads": None, "openblas_vars": False},
}


def interleaved(steps: Dict[str, Callable[[], object]], repeats: int, min_time: float) -> Dict[str, float]:
    """Median seconds per call of each step, the steps timed in turn within each of `repeats`
    rounds, so that a burst of load from other jobs falls on all of them alike."""
    from timing import measure
    for step in steps.values():
        measure(step, 1, min_time / 4, warmup=3)
    samples: Dict[str, List[float]] = {name: [] for name in steps}
    for _ in range(repeats):
        for name, step in steps.items():
            samples[name].append(measure(step, 1, min_time, warmup=0)[0])
    return {name: statistics.median(times) for name, times in samples.items()}


def child(repeats: int, min_time: float, threads: bool) -> Dict[str, Dict[str, float]]:
    """Time every case in this process: {case: {implementation: seconds}}."""
    sys.path.insert(0, ROOT)
    sys.path.insert(0, HERE)
    import numpy as np

    import autograd_lite as ag
    try:
        import torch
        import torch.nn.functional as F
        if threads:
            torch.set_num_threads(1)
    except ImportError:
        torch = None
    rng = np.random.default_rng(0)
    results = {}
    for name, (op, shape, spec, padding) in CASES.items():
        x = rng.standard_normal(shape).astype(np.float32)
        if op == "conv":
            w = rng.standard_normal((spec[0], shape[1], spec[1], spec[1])).astype(np.float32)
            inputs = [x, w]

            def ours(x, w):
                return ag.conv2d(x, w, padding=padding)

            def theirs(x, w):
                return F.conv2d(x, w, padding=padding)
        else:
            inputs = [x]

            def ours(x):
                return ag.max_pool2d(x, spec, padding=padding)

            def theirs(x):
                return F.max_pool2d(x, spec, padding=padding)
        g = rng.standard_normal(ours(*inputs).shape).astype(np.float32)

        def step_ours() -> None:
            leaves = [ag.Tensor(a, requires_grad=True) for a in inputs]
            ours(*leaves).backward(g)

        steps = {"numba": with_kernels("numba", step_ours), "numpy": with_kernels("numpy", step_ours)}
        if torch is not None:
            tinputs = [torch.from_numpy(a) for a in inputs]
            tg = torch.from_numpy(g)

            def step_torch() -> None:
                leaves = [t.detach().requires_grad_(True) for t in tinputs]
                theirs(*leaves).backward(tg)

            steps["torch"] = step_torch
        results[name] = interleaved(steps, repeats, min_time)
    for batch_norm in (False, True):
        results[LENET_STEPS[batch_norm]] = lenet_training_step(batch_norm, repeats, min_time, torch)
    return results


def with_kernels(backend: str, step: Callable[[], object]) -> Callable[[], object]:
    """`step` run with autograd-lite's Numba kernels ("numba") or their NumPy twins ("numpy")."""
    import autograd_lite as ag

    def run() -> object:
        previous = ag.kernels.set_kernels(backend)
        try:
            return step()
        finally:
            ag.kernels.set_kernels(previous)
    return run


LENET_STEPS = {False: "LeNet-5 training step (SGD)", True: "LeNet-5 + batch norm training step"}


def lenet_training_step(batch_norm: bool, repeats: int, min_time: float, torch) -> Dict[str, float]:
    """Seconds per training step of LeNet-5 at batch 64, float32: {"numba", "numpy", "torch"}."""
    import numpy as np

    import autograd_lite as ag
    import nn
    rng = np.random.default_rng(1)
    x = rng.standard_normal((64, 1, 28, 28)).astype(np.float32)
    y = rng.integers(0, 10, size=64)
    model = nn.CNN((1, 28, 28), 10, channels=(6, 16), kernel_size=5, padding=(2, 0), hidden=(120, 84),
                   batch_norm=batch_norm, seed=0, dtype=np.float32)
    optimizer = nn.SGD(model, lr=0.01)

    def step_ours():
        loss = nn.sparse_categorical_cross_entropy(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        return float(loss.data)

    steps = {"numba": with_kernels("numba", step_ours), "numpy": with_kernels("numpy", step_ours)}
    if torch is not None:
        tmodel = _torch_lenet(torch, model, batch_norm)
        toptimizer = torch.optim.SGD(tmodel.parameters(), lr=0.01)
        tx, ty = torch.from_numpy(x), torch.from_numpy(y)
        loss_fn = torch.nn.CrossEntropyLoss()

        def step_torch():
            toptimizer.zero_grad()
            loss = loss_fn(tmodel(tx), ty)
            loss.backward()
            toptimizer.step()
            return float(loss)

        first, tfirst = step_ours(), step_torch()
        if abs(first - tfirst) > 1e-4 * max(1.0, abs(tfirst)):
            raise SystemExit(f"conv benchmark: LeNet-5's first loss differs: {first} here, {tfirst} in PyTorch; "
                             "the two networks are not the same")
        steps["torch"] = step_torch
    return interleaved(steps, repeats, min_time)


def _torch_lenet(torch, model, batch_norm: bool):
    """The same network as `model` (an nn.CNN) in PyTorch, with its weights (Linear's transposed)."""
    tnn = torch.nn
    layers = []
    for ours in list(model.features) + list(model.classifier):
        kind = type(ours).__name__
        if kind == "Conv2d":
            layer = tnn.Conv2d(ours.in_channels, ours.out_channels, ours.kernel_size, padding=ours.padding,
                               bias=ours.bias is not None)
        elif kind == "Linear":
            layer = tnn.Linear(ours.in_features, ours.out_features, bias=ours.bias is not None)
        elif kind in ("BatchNorm2d", "BatchNorm1d"):
            layer = getattr(tnn, kind)(ours.num_features, eps=ours.eps, momentum=ours.momentum)
        else:
            layer = {"ReLU": tnn.ReLU, "MaxPool2d": lambda: tnn.MaxPool2d(2), "Flatten": tnn.Flatten}[kind]()
        with torch.no_grad():
            if kind in ("Conv2d", "BatchNorm2d", "BatchNorm1d"):
                layer.weight.copy_(torch.from_numpy(ours.weight.data))
            elif kind == "Linear":
                layer.weight.copy_(torch.from_numpy(ours.weight.data.T.copy()))
            if getattr(ours, "bias", None) is not None:
                layer.bias.copy_(torch.from_numpy(ours.bias.data))
        layers.append(layer)
    return tnn.Sequential(*layers).float().train()


def run_setting(label: str, repeats: int, min_time: float) -> Dict[str, Dict[str, float]]:
    setting = SETTINGS[label]
    env = dict(os.environ)
    if not setting["openblas_vars"]:
        for key in [k for k in env if k.startswith("OPENBLAS_")]:
            del env[key]
    if setting["threads"]:
        env.update(OPENBLAS_NUM_THREADS=setting["threads"], OMP_NUM_THREADS=setting["threads"],
                   MKL_NUM_THREADS=setting["threads"], NUMBA_NUM_THREADS=setting["threads"])
    command = [sys.executable, os.path.abspath(__file__), "--child", "--repeats", str(repeats),
               "--min-time", str(min_time)] + (["--one-thread"] if setting["threads"] else [])
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    if done.returncode:
        raise SystemExit(f"conv benchmark: the {label!r} run failed:\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def table(label: str, results: Dict[str, Dict[str, float]]) -> List[str]:
    rows = dict(results)
    lenet = {impl: sum(results[c][impl] for c in LENET_CONVS) for impl in results[LENET_CONVS[0]]}
    steps = {name: rows.pop(name) for name in LENET_STEPS.values() if name in rows}
    rows["LeNet convs together"] = lenet
    rows.update(steps)
    has_torch = "torch" in lenet
    lines = [f"## {label}", "",
             "| case (batch 64, float32, fwd + bwd) | Numba ms | twins ms | twins / Numba |"
             + (" PyTorch ms | Numba / PyTorch |" if has_torch else ""),
             "|---|---:|---:|---:|" + ("---:|---:|" if has_torch else "")]
    for name, row in rows.items():
        line = (f"| {name} | {1e3 * row['numba']:.2f} | {1e3 * row['numpy']:.2f} | "
                f"{row['numpy'] / row['numba']:.2f}x |")
        if has_torch:
            line += f" {1e3 * row['torch']:.2f} | {row['numba'] / row['torch']:.2f}x |"
        lines.append(line)
    return lines + [""]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer, shorter repeats (noisier)")
    parser.add_argument("--settings", nargs="+", choices=sorted(SETTINGS), default=list(SETTINGS),
                        metavar="SETTING", help=f"which settings to run, of {list(SETTINGS)}")
    parser.add_argument("--json", help="write the measurements to this file")
    parser.add_argument("--repeats", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--min-time", type=float, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--one-thread", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    repeats = args.repeats or (3 if args.quick else 7)
    min_time = args.min_time or (0.05 if args.quick else 0.2)
    if args.child:
        print(json.dumps(child(repeats, min_time, args.one_thread)))
        return
    load_before = os.getloadavg()
    measured = {label: run_setting(label, repeats, min_time) for label in args.settings}
    load_after = os.getloadavg()
    print(f"conv2d / max_pool2d forward + backward; {os.cpu_count()} cores; 1-min load average "
          f"{load_before[0]:.1f} before, {load_after[0]:.1f} after; OPENBLAS_* here: "
          + (", ".join(f"{k}={v}" for k, v in sorted(os.environ.items()) if k.startswith("OPENBLAS_")) or "none"))
    print()
    for label, results in measured.items():
        print("\n".join(table(label, results)))
    if args.json:
        sys.path.insert(0, HERE)
        from report import write_json
        write_json(args.json, {"load_average": [load_before, load_after], "settings": measured})


if __name__ == "__main__":
    main()
