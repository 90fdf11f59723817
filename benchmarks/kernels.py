"""Each Numba kernel against its NumPy twin, at 10^3 .. 10^7 elements, float32 and float64.

For every kernel and size: the median time of the NumPy twin, of the serial and the parallel
(`prange`) Numba kernel, and of what `autograd_lite.kernels` runs by default (the twin below
its size threshold, then the serial kernel, then the parallel one), and the ratio
twin / default measured in the same run. Then the startup costs, each in a fresh process with
an empty Numba cache directory: the first-call compile time of each kernel, and the warm start
(cache present): the time from `import autograd_lite` finishing to the first kernel result.

    python benchmarks/kernels.py [--sizes 3 4 5 6 7] [--dtypes float32 float64]
                                 [--kernels sigmoid ...] [--json out.json] [--plot out.png]

Row-wise kernels (softmax, cross-entropies) use rows of --classes entries (10 by default).
The elementwise parts of the linear layer are timed without their matmuls, which are the same
BLAS call in both implementations. OPENBLAS_* settings are left as the environment has them.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Callable, Dict, List, Optional, Tuple

import numpy as np

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
sys.path.insert(0, ROOT)
from autograd_lite import kernels  # noqa: E402
from autograd_lite.kernels import dispatch, reference  # noqa: E402
from report import pyplot, save_figure, write_json  # noqa: E402

Call = Callable[[], object]


def _case(name: str, n: int, dtype: np.dtype, classes: int) -> Tuple[Call, Call]:
    """(NumPy twin, the public kernel function) of kernel `name`, on n elements."""
    rng = np.random.default_rng(0)

    def arr(*shape, scale=1.0):
        return (rng.standard_normal(shape) * scale).astype(dtype)
    K, R = kernels, reference
    if name in ("sigmoid", "tanh", "relu", "softplus", "log_sigmoid"):
        x = arr(n, scale=3.0)
        return (lambda: getattr(R, name)(x)), (lambda: getattr(K, name)(x))
    if name in ("sigmoid_backward", "tanh_backward", "relu_backward"):
        g = arr(n)
        a = R.tanh(arr(n, scale=3.0)) if name == "tanh_backward" else R.sigmoid(arr(n, scale=3.0))
        return (lambda: getattr(R, name)(g, a)), (lambda: getattr(K, name)(g, a))
    if name == "dropout":
        x, u = arr(n), rng.random(n, dtype=dtype)
        return (lambda: R.dropout(x, u, 0.5)), (lambda: K.dropout(x, u, 0.5))
    rows = max(n // classes, 1)
    z = arr(rows, classes, scale=3.0)
    if name in ("softmax", "log_softmax"):  # along the rows' axis, as the loss layers use them
        return (lambda: getattr(R, name)(z, 1)), (lambda: getattr(K, name)(z, 1))
    if name == "logsumexp":
        return (lambda: R.logsumexp(z, (1,), False)), (lambda: K.logsumexp(z, (1,), False))
    if name == "softmax_cross_entropy":
        labels = rng.integers(0, classes, rows)
        return (lambda: R.softmax_cross_entropy(z, labels)), (lambda: K.softmax_cross_entropy(z, labels))
    if name == "bce_with_logits":
        y = rng.random((rows, classes)).astype(dtype)
        return (lambda: R.bce_with_logits(z, y)), (lambda: K.bce_with_logits(z, y))
    if name == "bias_sigmoid":  # linear's pass over the matmul output: sigmoid(z + b)
        b = arr(classes)
        return (lambda: R.bias_activation(z, b, "sigmoid")), (lambda: K.bias_activation(z, b, "sigmoid"))
    if name == "linear_backward":  # its elementwise part: delta = g a (1 - a) and db = sum(delta)
        g, a = arr(rows, classes), R.sigmoid(z)

        def twin():
            delta = R.sigmoid_backward(g, a)
            return delta, delta.sum(axis=0)
        return twin, (lambda: K.linear_backward(g, a, None, None, "sigmoid", wrt=("b",)))
    param, grad, m, v = arr(n), arr(n), np.zeros(n, dtype), np.zeros(n, dtype)
    if name == "sgd_update":
        return ((lambda: R.sgd_update(param, grad, m, 0.01, 0.9, True, 1e-4)),
                (lambda: K.sgd_update(param, grad, m, 0.01, 0.9, True, 1e-4)))
    if name == "adam_update":
        return ((lambda: R.adam_update(param, grad, m, v, 10, 1e-3, 0.9, 0.999, 1e-8, 1e-4)),
                (lambda: K.adam_update(param, grad, m, v, 10, 1e-3, 0.9, 0.999, 1e-8, 1e-4)))
    raise ValueError(f"unknown kernel {name!r}")


NAMES = ["sigmoid", "sigmoid_backward", "tanh", "tanh_backward", "relu", "relu_backward",
         "softplus", "log_sigmoid", "dropout", "softmax", "log_softmax", "logsumexp",
         "softmax_cross_entropy", "bce_with_logits", "bias_sigmoid", "linear_backward",
         "sgd_update", "adam_update"]


class _Forced:
    """Within `with _Forced(name, variant)`, kernel `name` runs `variant` at every size (the
    parallel one even when `kernels` would not use it because every core is busy)."""

    SETTINGS = {"serial": (0, None), "parallel": (0, 0)}

    def __init__(self, name: str, variant: str) -> None:
        self.name, self.variant = name, variant

    def __enter__(self) -> None:
        self.saved = dispatch.THRESHOLDS[self.name], dispatch.core_to_spare
        dispatch.THRESHOLDS[self.name] = self.SETTINGS[self.variant]
        dispatch.core_to_spare = lambda: True

    def __exit__(self, *exc) -> None:
        dispatch.THRESHOLDS[self.name], dispatch.core_to_spare = self.saved


def _has_parallel(name: str) -> bool:
    limits = dispatch.THRESHOLDS[name]
    return any(lim[1] is not None for lim in (limits.values() if isinstance(limits, dict) else [limits]))


def _default_variant(name: str, size: int, dtype: str) -> str:
    """What kernels runs by default on `size` elements now (as dispatch.kernel decides)."""
    limits = dispatch.THRESHOLDS[name]
    serial_from, parallel_from = limits[dtype] if isinstance(limits, dict) else limits
    if parallel_from is not None and size >= parallel_from and dispatch.core_to_spare():
        return "parallel"
    return "serial" if size >= serial_from else "numpy"


def _interleaved_medians_ms(calls: Dict[str, Tuple[Call, object]], budget_s: float,
                            min_repeats: int = 5, max_repeats: int = 200) -> Dict[str, float]:
    """Median milliseconds of each call, timed in turns (one of each per round), so that a change
    in the machine's load during the measurement affects them all alike. Each call is
    (function, context manager factory or None). The parallel kernels are timed apart: after a
    parallel loop Numba's threads keep spinning for a while, which would slow the next call."""
    def once(fn: Call, context) -> float:
        if context is None:
            t0 = time.perf_counter()
            fn()
            return time.perf_counter() - t0
        with context():
            t0 = time.perf_counter()
            fn()
            return time.perf_counter() - t0

    for fn, context in calls.values():  # warm-up (and compilation, for a kernel's first call)
        once(fn, context)
    times: Dict[str, List[float]] = {key: [] for key in calls}
    start = time.perf_counter()
    rounds = 0
    while rounds < max_repeats and (rounds < min_repeats or time.perf_counter() - start < budget_s):
        for key, (fn, context) in calls.items():
            times[key].append(once(fn, context))
        rounds += 1
    return {key: 1e3 * statistics.median(t) for key, t in times.items()}


def measure(names: List[str], sizes: List[int], dtypes: List[str], classes: int,
            budget_s: float) -> List[dict]:
    rows = []
    kernels.set_kernels("numba")
    for dtype_name in dtypes:
        dtype = np.dtype(dtype_name)
        for n in sizes:
            for name in names:
                twin, ours = _case(name, n, dtype, classes)
                calls = {"numpy": (twin, None), "serial": (ours, lambda: _Forced(name, "serial")),
                         "default": (ours, None)}
                runs = _default_variant(name, n, dtype_name)
                ms = _interleaved_medians_ms(calls, budget_s * len(calls))
                if _has_parallel(name):  # apart: its idle threads spin a while after each call
                    ms.update(_interleaved_medians_ms(
                        {"parallel": (ours, lambda: _Forced(name, "parallel"))}, budget_s))
                row = {"kernel": name, "dtype": dtype_name, "size": n, "numpy_ms": ms["numpy"],
                       "serial_ms": ms["serial"], "parallel_ms": ms.get("parallel"),
                       "default_ms": ms["default"], "runs": runs,
                       "ratio": ms["numpy"] / ms["default"],
                       "best_kernel_ratio": ms["numpy"] / min(ms["serial"], ms.get("parallel", np.inf))}
                rows.append(row)
                print(_format_row(row), flush=True)
    return rows


HEADER = (f"{'kernel':<22} {'dtype':<8} {'size':>9} {'numpy ms':>10} {'serial ms':>10} "
          f"{'parallel ms':>11} {'default ms':>10} {'runs':>9} {'numpy/default':>13} {'numpy/best':>10}")


def _format_row(r: dict) -> str:
    par = "-" if r["parallel_ms"] is None else f"{r['parallel_ms']:.4f}"
    return (f"{r['kernel']:<22} {r['dtype']:<8} {r['size']:>9.0e} {r['numpy_ms']:>10.4f} "
            f"{r['serial_ms']:>10.4f} {par:>11} {r['default_ms']:>10.4f} {r['runs']:>9} "
            f"{r['ratio']:>12.2f}x {r['best_kernel_ratio']:>9.2f}x")


# ---------------------------------------------------------------- startup, in fresh processes
_COMPILE_SCRIPT = r"""
import json, sys, time
import numpy as np
from autograd_lite import kernels
names = sys.argv[1].split(",")
dtype = np.dtype(sys.argv[2])
t0 = time.perf_counter()
from autograd_lite.kernels import jitted  # imports Numba
out = {"import numba": time.perf_counter() - t0}
sys.path.insert(0, sys.argv[3])
from kernels import _case, _Forced, _has_parallel
for name in names:
    for variant in ("serial", "parallel"):
        if variant == "parallel" and not _has_parallel(name):
            continue
        with _Forced(name, variant):
            t0 = time.perf_counter()
            _case(name, 1000, dtype, 10)[1]()
            out[name + " " + variant] = time.perf_counter() - t0
print(json.dumps(out))
"""

_WARM_SCRIPT = r"""
import json, time
import sys
t0 = time.perf_counter()
import autograd_lite
t1 = time.perf_counter()
numba_at_import = "numba" in sys.modules
import numpy as np
from autograd_lite import kernels
x = np.random.default_rng(0).standard_normal(100_000)
t2 = time.perf_counter()
a = kernels.sigmoid(x)
t3 = time.perf_counter()
kernels.sigmoid_backward(x, a); kernels.relu(x); kernels.relu_backward(x, a)
kernels.linear(x.reshape(-1, 100), np.ones((100, 100)), np.zeros(100), "sigmoid")
labels = np.zeros(1000, dtype=np.intp)
kernels.softmax_cross_entropy(x.reshape(-1, 100), labels)
kernels.sgd_update(np.zeros(100_000), x, np.zeros(100_000), 0.1, 0.9, False, 0.0)
t4 = time.perf_counter()
print(json.dumps({"import autograd_lite": t1 - t0, "first kernel result": t3 - t2,
                  "seven kernels": t4 - t2, "numba imported by import autograd_lite": numba_at_import}))
"""


def startup(names: List[str], dtype: str) -> dict:
    """Compile times (empty cache) and warm-start times (cache present), in fresh processes."""
    bench_dir = os.path.dirname(os.path.abspath(__file__))

    def run(script: str, cache: str, *args: str) -> dict:
        env = dict(os.environ, NUMBA_CACHE_DIR=cache, AUTOGRAD_LITE_KERNELS="numba",
                   PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
        done = subprocess.run([sys.executable, "-c", script, *args], env=env, capture_output=True,
                              text=True, check=True)
        return json.loads(done.stdout)

    with tempfile.TemporaryDirectory() as cache, tempfile.TemporaryDirectory() as other_cache:
        cold = run(_WARM_SCRIPT, cache)                      # compiles, and fills `cache`
        warm = [run(_WARM_SCRIPT, cache) for _ in range(3)]  # loads from `cache`
        compile_times = run(_COMPILE_SCRIPT, other_cache, ",".join(names), dtype, bench_dir)
    return {"dtype": dtype, "compile_s": compile_times, "first_process": cold, "warm_processes": warm}


def _print_startup(s: dict) -> None:
    print(f"\nFirst-call compile time, empty cache, {s['dtype']} (seconds):")
    for key, value in s["compile_s"].items():
        print(f"  {key:<34} {value:7.2f}")
    total = sum(v for k, v in s["compile_s"].items() if k != "import numba")
    print(f"  {'all of the above':<34} {total:7.2f}")
    c = s["first_process"]
    print(f"\nA first process (empty cache, so it compiles): first sigmoid result "
          f"{c['first kernel result']:.2f} s after import, seven kernels {c['seven kernels']:.2f} s")
    print("Warm processes (cache present), seconds:")
    for w in s["warm_processes"]:
        print(f"  import autograd_lite {w['import autograd_lite']:.3f}   first kernel result after "
              f"import {w['first kernel result']:.3f}   seven kernels {w['seven kernels']:.3f}")



def _plot(rows: List[dict], path: str) -> None:
    plt = pyplot()
    if plt is None:
        return
    dtypes = sorted({r["dtype"] for r in rows})
    fig, axes = plt.subplots(1, len(dtypes), figsize=(7 * len(dtypes), 5), squeeze=False)
    for ax, dtype in zip(axes[0], dtypes):
        ax.set_prop_cycle(color=plt.cm.tab20.colors)  # 18 kernels: 10 default colors repeat
        for name in dict.fromkeys(r["kernel"] for r in rows):
            pts = [(r["size"], r["ratio"]) for r in rows if r["kernel"] == name and r["dtype"] == dtype]
            ax.plot(*zip(*pts), marker="o", label=name)
        ax.axhline(1.0, color="black", linewidth=0.8)
        ax.set(xscale="log", yscale="log", xlabel="elements", ylabel="NumPy twin time / kernel time",
               title=f"autograd_lite.kernels vs NumPy, {dtype}")
    axes[0][-1].legend(fontsize=7, loc="upper left", bbox_to_anchor=(1, 1))
    fig.tight_layout()
    save_figure(fig, path)
    print(f"wrote {path}")


def main(argv: Optional[List[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[3, 4, 5, 6, 7],
                        help="powers of ten of the element counts (default 3 4 5 6 7)")
    parser.add_argument("--dtypes", nargs="+", default=["float32", "float64"],
                        choices=["float32", "float64"])
    parser.add_argument("--kernels", nargs="+", default=NAMES, choices=NAMES, metavar="NAME",
                        help=f"which kernels (default all: {' '.join(NAMES)})")
    parser.add_argument("--classes", type=int, default=10, help="row length of the row-wise kernels")
    parser.add_argument("--budget", type=float, default=0.2,
                        help="seconds of repeats per measurement (at least 5 repeats; median)")
    parser.add_argument("--no-startup", action="store_true",
                        help="skip the compile-time and warm-start measurements")
    parser.add_argument("--json", metavar="PATH", help="write all figures to PATH")
    parser.add_argument("--plot", metavar="PATH", help="write a PNG of the ratios (needs matplotlib)")
    args = parser.parse_args(argv)

    print(f"numpy {np.__version__}, Python {platform.python_version()}, {os.cpu_count()} cores, "
          f"OPENBLAS_CORETYPE={os.environ.get('OPENBLAS_CORETYPE', '(unset)')}, "
          f"load average {os.getloadavg()[0]:.2f}; a core to spare for the parallel kernels "
          f"now: {'yes' if dispatch.core_to_spare() else 'no (the default runs them serially)'}")
    # compile everything first, so that the table measures running, not compiling
    for dtype in args.dtypes:
        for name in args.kernels:
            for variant in ("serial", "parallel"):
                if variant == "serial" or _has_parallel(name):
                    with _Forced(name, variant):
                        _case(name, 1000, np.dtype(dtype), args.classes)[1]()
    print(HEADER)
    rows = measure(args.kernels, [10 ** k for k in args.sizes], args.dtypes, args.classes, args.budget)
    result = {"machine": {"python": platform.python_version(), "numpy": np.__version__,
                          "cores": os.cpu_count(), "platform": platform.platform(),
                          "OPENBLAS_CORETYPE": os.environ.get("OPENBLAS_CORETYPE")},
              "classes": args.classes, "thresholds": dispatch.THRESHOLDS, "results": rows}
    try:
        import numba
        result["machine"]["numba"] = numba.__version__
    except ImportError:
        pass
    if not args.no_startup:
        result["startup"] = startup(args.kernels, "float64")
        _print_startup(result["startup"])
    if args.json:
        write_json(args.json, result, indent=1)
        print(f"wrote {args.json}")
    if args.plot:
        _plot(rows, args.plot)


if __name__ == "__main__":
    main()
