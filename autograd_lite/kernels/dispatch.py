"""Which implementation of a kernel runs: the NumPy twin, the serial Numba loop or its parallel one.

The choice is per call, by the backend (`set_kernels`, or AUTOGRAD_LITE_KERNELS at import), the
array's dtype and layout, its size against `THRESHOLDS`, and whether a core is free for the
parallel loop. Numba is imported, and a kernel compiled, on the first call that picks one.
`kernels/__init__.py` holds the public functions and their checks; the helpers here
(`unary`, `binary`, `by_rows`) run the common shapes of call.
"""
from __future__ import annotations

import os
import warnings
from types import ModuleType
from typing import Callable, Dict, Optional

import numpy as np

BACKENDS = ("numba", "numpy")

# (serial_from, parallel_from): the number of elements from which the serial kernel runs instead
# of the NumPy twin, and from which the parallel kernel runs (None: never); a dict gives them
# per dtype. Measured with `python benchmarks/kernels.py` on 2 cores. Kernels that compute
# exp / log beat their twins from the first element, except softplus, whose twin below 256
# elements is one np.logaddexp call: its kernel pays from 32. Those that only move memory pay
# from about 1000 elements (below, the twin's lower call overhead wins). NumPy's SIMD tanh
# beats the serial kernel at every size, and its float32 exp / log1p (the softplus and
# log_sigmoid twins) from about 10^4 elements: there only the parallel kernel runs. The
# parallel kernels run from 10^6 elements, and only when a core is free (`core_to_spare`); a
# memory-bound loop gains little from a second core.
_INF = float("inf")
_PARALLEL_FROM = 1_000_000
THRESHOLDS: Dict[str, object] = {
    "sigmoid": (1, _PARALLEL_FROM),
    "sigmoid_backward": (1_000, None),
    "tanh": {"float32": (_INF, None), "float64": (_INF, _PARALLEL_FROM)},
    "tanh_backward": (1_000, None),
    "relu": (1_000, None),
    "relu_backward": (1_000, None),
    "softplus": {"float32": (_INF, _PARALLEL_FROM), "float64": (32, _PARALLEL_FROM)},
    "log_sigmoid": {"float32": (_INF, _PARALLEL_FROM), "float64": (1, _PARALLEL_FROM)},
    "dropout": (1_000, None),
    "uniform_fill_float32": (1, None),
    "uniform_fill_float64": (1, None),
    "softmax": (1, _PARALLEL_FROM),
    "log_softmax": (1, _PARALLEL_FROM),
    "logsumexp": (1, _PARALLEL_FROM),
    "softmax_cross_entropy": (1, _PARALLEL_FROM),
    "bce_with_logits": (1, _PARALLEL_FROM),
    "bce_with_logits_loss": (1, None),
    "softmax_cross_entropy_loss": (1, None),
    "sum_of_squares": (1, None),
    "bias_add": (1, _PARALLEL_FROM),
    "bias_sigmoid": (1, _PARALLEL_FROM),
    "bias_tanh": (1, _PARALLEL_FROM),
    "bias_relu": (1, _PARALLEL_FROM),
    "linear_backward": (1, None),
    "sgd_update": (1, None),
    "add_scaled": (1, None),
    "adam_update": (1, None),
}
_FLOAT_NAMES = {"f": "float32", "d": "float64"}  # dtype.char -> name (dtype.name is slow)
_CORES = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def _backend_from_environment() -> str:
    """The starting backend. An unknown value warns and falls back to the default rather than
    raising: it is read at import, where an exception would make the package unimportable."""
    value = os.environ.get("AUTOGRAD_LITE_KERNELS", "")
    name = value.strip().lower() or BACKENDS[0]
    if name not in BACKENDS:
        warnings.warn(f"AUTOGRAD_LITE_KERNELS={value!r} is not a kernel backend: the accepted values "
                      f"are {' and '.join(map(repr, BACKENDS))}; using {BACKENDS[0]!r}",
                      RuntimeWarning, stacklevel=2)
        return BACKENDS[0]
    return name


_backend = _backend_from_environment()
_jitted: Optional[ModuleType] = None  # the module of Numba kernels, imported on first use


def set_kernels(name: str) -> str:
    """Run the Numba kernels ("numba", the default) or their NumPy twins ("numpy") from now on.

    Returns the previous setting, so a caller can restore it. The environment variable
    AUTOGRAD_LITE_KERNELS sets the starting value.

        >>> previous = set_kernels("numpy")
        >>> ...                                  # everything runs the twins
        >>> set_kernels(previous)
    """
    global _backend
    if name not in BACKENDS:
        raise ValueError(f"set_kernels: expected one of {BACKENDS}, got {name!r}")
    previous, _backend = _backend, name
    return previous


def get_kernels() -> str:
    """"numba" or "numpy": which implementation the kernels run."""
    return _backend


def _jit() -> Optional[ModuleType]:
    """The jitted module, imported on first use; without Numba, fall back to the twins."""
    global _jitted, _backend
    if _jitted is None:
        try:
            from . import jitted
        except ImportError as error:
            warnings.warn(f"autograd_lite.kernels: Numba is not usable ({error}); "
                          "running the NumPy twins instead", RuntimeWarning, stacklevel=3)
            _backend = "numpy"
            return None
        _jitted = jitted
    return _jitted


def kernel(name: str, x: np.ndarray, *others: np.ndarray) -> Optional[Callable]:
    """The Numba kernel to run on x (by its size and dtype), or None for the NumPy twin. The
    kernels take ndarrays of one dtype, float32 or float64: x, and `others` of x's shape."""
    if _backend != "numba" or type(x) is not np.ndarray:
        return None
    dtype = x.dtype
    char = dtype.char
    if char != "f" and char != "d":
        return None
    for other in others:
        if type(other) is not np.ndarray or other.dtype != dtype or other.shape != x.shape:
            return None
    limits = THRESHOLDS[name]
    serial_from, parallel_from = limits[_FLOAT_NAMES[char]] if type(limits) is dict else limits
    size = x.size
    if parallel_from is not None and size >= parallel_from and core_to_spare():
        variant = 1
    elif size >= serial_from:
        variant = 0
    else:
        return None
    pair = _RESOLVED.get(name)
    if pair is None:
        module = _jitted or _jit()
        if module is None:
            return None
        pair = _RESOLVED[name] = (getattr(module, name), getattr(module, name + "_parallel", None))
    return pair[variant]


_RESOLVED: Dict[str, tuple] = {}  # name -> (serial kernel, parallel kernel or None), once imported


def core_to_spare() -> bool:
    """Whether a parallel loop would get a second core now: fewer threads ready to run than
    cores (Linux counts them, this one included, in /proc/loadavg). With every core busy the
    loop's threads wait for time slices (milliseconds each) and it runs far slower than the
    serial loop; the 1-minute load average reacts too slowly to tell."""
    try:
        with open("/proc/loadavg", "rb") as f:
            running = int(f.read().split()[3].split(b"/")[0])
    except (OSError, ValueError, IndexError):  # not Linux: fall back on the load average
        try:
            return os.getloadavg()[0] < _CORES - 0.5
        except (AttributeError, OSError):
            return _CORES > 1
    return running < _CORES


def contiguous(x: np.ndarray) -> np.ndarray:
    """x, or a C-contiguous copy of it (np.ascontiguousarray would make a 0-d array 1-d)."""
    return x if x.flags.c_contiguous else np.ascontiguousarray(x)


# ---------------------------------------------------------------- the common shapes of call
def unary(name: str, twin: Callable, x: np.ndarray) -> np.ndarray:
    """out = f(x) elementwise: kernel `name` over the flattened array, else `twin(x)`."""
    run = kernel(name, x)
    if run is None:
        return twin(x)
    x = contiguous(x)
    out = np.empty(x.shape, x.dtype)
    run(x.reshape(-1), out.reshape(-1))
    return out


def binary(name: str, twin: Callable, g: np.ndarray, a: np.ndarray) -> np.ndarray:
    """out = f(g, a) elementwise for g and a of one shape: kernel `name`, else `twin(g, a)`."""
    run = kernel(name, g, a)
    if run is None:
        return twin(g, a)
    g, a = contiguous(g), contiguous(a)
    out = np.empty(g.shape, g.dtype)
    run(g.reshape(-1), a.reshape(-1), out.reshape(-1))
    return out


def by_rows(name: str, x: np.ndarray, axis: int, reduce: bool) -> Optional[np.ndarray]:
    """f(x) along one axis by the row kernel `name`, or None where the twin is to run.
    `reduce`: one value per row (the axis dropped) instead of one per element.

    The row kernels take a C-contiguous (rows, last axis) array, so they run for the last axis
    of a non-empty array of at least one dimension (copied first when not contiguous: the copy
    is one pass, the twin several); any other axis runs the twin."""
    ndim = x.ndim
    if ndim == 0 or axis != ndim - 1 or not x.size:
        return None
    run = kernel(name, x)
    if run is None:
        return None
    shape = x.shape
    rows = contiguous(x).reshape(-1, shape[-1])               # (rows, last axis)
    out = np.empty(rows.shape[:1] if reduce else rows.shape, x.dtype)
    run(rows, out)
    return out.reshape(shape[:-1] if reduce else shape)
