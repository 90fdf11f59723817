"""Per-example gradients of the 784-100-10 MLP for a batch of 100: vmap against a loop.

Times, in one run and in turns: `nn.per_example_grads` (one batched pass through
`ag.vmap(ag.grad(...))`), a loop of 100 single-example backward passes, PyTorch's
`torch.func.vmap(torch.func.grad(...))` on the same weights and batch (when torch is installed),
one ordinary batch gradient (what a plain SGD step costs), and the memory floor: writing the
100 x 79,510 gradient entries alone (into a preallocated array, and into a freshly allocated
one as a batched pass must). Every result is checked against the loop first (float64, 1e-12).

    python benchmarks/per_example.py [--repeats 7] [--json out.json] [--plot out.png]
"""
from __future__ import annotations

import argparse
import os
import platform
import sys
from typing import Any, Callable, Dict

# One BLAS thread unless told otherwise (as the other benchmarks): set before NumPy loads.
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import numpy as np  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import nn  # noqa: E402
from forward_vs_reverse import best_times  # noqa: E402
from report import pyplot, save_figure, write_json  # noqa: E402

SIZES = [784, 100, 10]
BATCH = 100


def make_case(seed: int = 0) -> Dict[str, Any]:
    rng = np.random.default_rng(seed)
    model = nn.MLP(SIZES, activation="sigmoid", seed=seed)
    X = rng.uniform(0.0, 1.0, (BATCH, SIZES[0]))
    Y = rng.integers(0, SIZES[-1], BATCH)
    return {"model": model, "X": X, "Y": Y}


def vmapped(case: Dict[str, Any]) -> Callable[[], Dict[str, np.ndarray]]:
    return lambda: nn.per_example_grads(case["model"], nn.sparse_categorical_cross_entropy, case["X"], case["Y"])


def loop(case: Dict[str, Any]) -> Callable[[], Dict[str, np.ndarray]]:
    model, X, Y = case["model"], case["X"], case["Y"]
    named = list(model.named_parameters())

    def run() -> Dict[str, np.ndarray]:
        out = {name: np.empty((len(X),) + p.data.shape) for name, p in named}
        for i in range(len(X)):
            for _, p in named:
                p.grad = None
            nn.sparse_categorical_cross_entropy(model(X[i:i + 1]), Y[i:i + 1]).backward()
            for name, p in named:
                out[name][i] = p.grad.data
        return out
    return run


def batch_gradient(case: Dict[str, Any]) -> Callable[[], None]:
    model, X, Y = case["model"], case["X"], case["Y"]

    def run() -> None:
        for p in model.parameters():
            p.grad = None
        nn.sparse_categorical_cross_entropy(model(X), Y).backward()
    return run


def torch_func(case: Dict[str, Any]) -> Callable[[], Dict[str, np.ndarray]]:
    """torch.func.vmap(torch.func.grad(loss)) over the same float64 weights and batch (ImportError
    when torch is missing)."""
    import torch
    from torch.func import functional_call, grad, vmap
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    model = case["model"]
    net = torch.nn.Sequential(torch.nn.Linear(SIZES[0], SIZES[1]), torch.nn.Sigmoid(),
                              torch.nn.Linear(SIZES[1], SIZES[2])).double()
    ours = dict(model.named_parameters())
    params = {"0.weight": ours["hidden.0.weight"].data.T, "0.bias": ours["hidden.0.bias"].data,
              "2.weight": ours["output.weight"].data.T, "2.bias": ours["output.bias"].data}
    params = {k: torch.tensor(np.ascontiguousarray(v)) for k, v in params.items()}
    X, Y = torch.tensor(case["X"]), torch.tensor(case["Y"])

    def example_loss(p: Dict[str, Any], x: Any, y: Any) -> Any:
        logits = functional_call(net, p, (x.unsqueeze(0),))
        return torch.nn.functional.cross_entropy(logits, y.unsqueeze(0))

    per_example = vmap(grad(example_loss), in_dims=(None, 0, 0))
    names = {"0.weight": "hidden.0.weight", "0.bias": "hidden.0.bias",
             "2.weight": "output.weight", "2.bias": "output.bias"}

    def run() -> Dict[str, np.ndarray]:
        g = per_example(params, X, Y)
        return {names[k]: (v.transpose(1, 2) if v.ndim == 3 else v).numpy() for k, v in g.items()}
    return run


def write_floor(n_entries: int) -> Dict[str, Callable[[], Any]]:
    """Writing the per-example gradients' entries and nothing else."""
    buffer = np.empty((BATCH, n_entries))
    return {"write into a preallocated array": lambda: buffer.fill(1.0),
            "allocate and write": lambda: np.full((BATCH, n_entries), 1.0)}


def check(name: str, got: Dict[str, np.ndarray], want: Dict[str, np.ndarray], tol: float) -> float:
    worst = max(float(np.max(np.abs(got[k] - want[k]))) for k in want)
    if not worst <= tol:
        raise SystemExit(f"{name}: per-example gradients differ from the loop's by {worst:.3g} (> {tol:g})")
    return worst


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=7, help="timed batches per method (best kept)")
    parser.add_argument("--json", help="write the results to this JSON file")
    parser.add_argument("--plot", help="write a bar chart to this PNG file")
    args = parser.parse_args()

    case = make_case()
    n_entries = sum(p.data.size for p in case["model"].parameters())
    methods: Dict[str, Callable[[], Any]] = {"vmap (nn.per_example_grads)": vmapped(case),
                                              "loop of 100 backward passes": loop(case)}
    reference = methods["loop of 100 backward passes"]()
    errors = {"vmap (nn.per_example_grads)": check("vmap", methods["vmap (nn.per_example_grads)"](),
                                                   reference, 1e-12)}
    try:
        methods["torch.func vmap(grad)"] = torch_func(case)
        errors["torch.func vmap(grad)"] = check("torch.func", methods["torch.func vmap(grad)"](), reference, 1e-10)
    except ImportError:
        print("note: torch is not installed; the torch.func column is left out (pip install torch)")
    methods["one batch gradient (mean loss)"] = batch_gradient(case)
    methods.update(write_floor(n_entries))

    times = dict(zip(methods, best_times(list(methods.values()), args.repeats)))
    batch = times["one batch gradient (mean loss)"]
    load = os.getloadavg()
    print(f"per-example gradients: MLP {'-'.join(map(str, SIZES))} ({n_entries:,} parameters), batch {BATCH}, "
          f"float64; OPENBLAS_NUM_THREADS={os.environ.get('OPENBLAS_NUM_THREADS')}, "
          f"OPENBLAS_CORETYPE={os.environ.get('OPENBLAS_CORETYPE', '(unset)')}; load {load[0]:.1f}")
    print(f"{'method':<34} {'ms':>9} {'x batch grad':>13} {'max |diff| to loop':>19}")
    for name, seconds in times.items():
        diff = f"{errors[name]:.1e}" if name in errors else ""
        print(f"{name:<34} {seconds * 1e3:>9.2f} {seconds / batch:>13.1f} {diff:>19}")
    v = times["vmap (nn.per_example_grads)"]
    ratios = {"loop / vmap": times["loop of 100 backward passes"] / v}
    if "torch.func vmap(grad)" in times:
        ratios["vmap / torch.func"] = v / times["torch.func vmap(grad)"]
    ratios["vmap / one batch gradient"] = v / batch
    ratios["allocate-and-write floor / one batch gradient"] = times["allocate and write"] / batch
    targets = {"loop / vmap": (">=", 10.0), "vmap / torch.func": ("<=", 1.5)}
    for name, ratio in ratios.items():
        goal = targets.get(name)
        verdict = ""
        if goal:
            met = ratio >= goal[1] if goal[0] == ">=" else ratio <= goal[1]
            verdict = f"   (target {goal[0]} {goal[1]:g}: {'met' if met else 'MISSED'})"
        print(f"{name:<46} {ratio:>7.2f}{verdict}")

    if args.json:
        write_json(args.json, {"sizes": SIZES, "batch": BATCH, "parameters": n_entries, "load": load,
                               "machine": platform.machine(), "seconds": times, "ratios": ratios,
                               "max_abs_diff_to_loop": errors,
                               "env": {k: os.environ.get(k) for k in ("OPENBLAS_NUM_THREADS",
                                                                      "OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")}})
    if args.plot:
        plt = pyplot()
        if plt is not None:
            fig, ax = plt.subplots(figsize=(7, 3.5))
            names = list(times)
            ax.barh(names, [times[k] * 1e3 for k in names], color="tab:blue")
            ax.set_xscale("log")
            ax.set_xlabel("milliseconds per batch of 100 (log scale)")
            ax.set_title(f"Per-example gradients, MLP {'-'.join(map(str, SIZES))}")
            ax.invert_yaxis()
            fig.tight_layout()
            save_figure(fig, args.plot)


if __name__ == "__main__":
    main()
