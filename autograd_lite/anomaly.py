"""Anomaly mode: find the first primitive whose forward or backward made a NaN or an Inf.

Inside `with detect_anomaly():` every primitive's output is checked as it is computed, and
every cotangent as the reverse sweep produces it; each output also remembers the file and
line of the user's code that created it. Outside the block none of this runs. The mode belongs
to the thread that entered the block: other threads keep running without checks.
"""
from __future__ import annotations

import os
import sys
import threading
from typing import Any, List, Optional, Tuple

import numpy as np

from . import engine
from .tensor import Tensor

_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))
_LIBRARY_DIRS = (_PACKAGE_DIR + os.sep,
                 os.path.join(os.path.dirname(_PACKAGE_DIR), "nn") + os.sep)


class _Mode(threading.local):
    depth = 0  # open detect_anomaly() blocks on this thread


_mode = _Mode()
# The engine's hook lists are shared by all threads (so that the common case, no hook at all,
# costs one truth test): the checks are installed while any thread has a block open, and each
# check returns at once on the threads that have none.
_lock = threading.Lock()
_open_blocks = 0


class AnomalyError(FloatingPointError):
    """A primitive produced a NaN or an Inf in anomaly mode. `op` names the primitive; `summary`
    is the message's first sentence without the code location (what a caller that adds its own
    context, such as the command line, shows); the message adds where and the inputs."""

    def __init__(self, summary: str, details: List[str], op: str = "") -> None:
        super().__init__("\n".join([f"anomaly: {summary}", *details]))
        self.summary, self.op = summary, op


def _user_frame() -> Optional[Tuple[str, int, str]]:
    """(file, line, function) of the innermost caller outside autograd_lite and nn."""
    frame = sys._getframe(1)
    while frame is not None:
        filename = frame.f_code.co_filename
        if not filename.startswith("<frozen"):  # runpy's frames are not the user's code
            filename = os.path.abspath(filename)
        if not filename.startswith(_LIBRARY_DIRS + ("<frozen",)):
            return filename, frame.f_lineno, frame.f_code.co_name
        frame = frame.f_back
    return None


def _where(t: Tensor) -> str:
    if t._trace is None:
        return "created outside anomaly mode (no location recorded)"
    filename, line, function = t._trace
    return f"created at {filename}:{line} in {function}()"


def _describe_inputs(args: tuple) -> List[str]:
    lines = []
    for i, a in enumerate(args):
        data = a.data if isinstance(a, Tensor) else a
        if isinstance(data, np.ndarray) and data.dtype.kind in "fc":
            bad = ~np.isfinite(data)
            note = (f"{int(bad.sum())} non-finite value(s) (e.g. {data[bad].flat[0]!r})"
                    if bad.any() else "all finite")
            lines.append(f"  input {i}: shape {data.shape}, {note}")
        elif isinstance(data, np.ndarray):
            lines.append(f"  input {i}: shape {data.shape}, dtype {data.dtype}")
        else:
            lines.append(f"  input {i}: {type(data).__name__} {data!r}")
    return lines


def _check_forward(prim: Any, args: tuple, params: dict, result: Tensor) -> None:
    if not _mode.depth:
        return
    result._trace = _user_frame()
    data = result.data
    if data.dtype.kind in "fc" and not np.all(np.isfinite(data)):
        count = int((~np.isfinite(data)).sum())
        summary = f"the forward of '{prim.name}' produced {count} NaN/Inf value(s) in its output of shape {data.shape}"
        raise AnomalyError(summary, [f"  {_where(result)}"] + _describe_inputs(args), prim.name)


def _check_backward(node: Tensor, g: Any, produced: list) -> None:
    if not _mode.depth:
        return
    for argnum, x, c in produced:
        c_data = c.data if isinstance(c, Tensor) else c
        if not np.all(np.isfinite(c_data)):
            g_data = g.data if isinstance(g, Tensor) else g
            incoming = "finite" if np.all(np.isfinite(g_data)) else "already non-finite"
            summary = (f"the backward of '{node._op.name}' produced a NaN/Inf gradient for its input {argnum} "
                       f"(shape {np.shape(c_data)}); the incoming cotangent (shape {np.shape(g_data)}) was {incoming}")
            raise AnomalyError(summary, [f"  the '{node._op.name}' was {_where(node)}"]
                               + _describe_inputs(tuple(node._inputs)), node._op.name)


class detect_anomaly:
    """`with detect_anomaly():` raises `AnomalyError` at the first NaN or Inf that a primitive
    produces, forward or backward, naming the primitive, where the user's code created it,
    and its input shapes and non-finite inputs. Free when not in use. Only the thread that
    enters the block is checked.

    Example:
        >>> with detect_anomaly():
        ...     loss = model_loss(batch)   # raises at e.g. 'log' if it meets a 0
        ...     loss.backward()
    """

    def __init__(self, enabled: bool = True) -> None:
        self.enabled = enabled

    def __enter__(self) -> "detect_anomaly":
        global _open_blocks
        if self.enabled:
            with _lock:
                if _open_blocks == 0:
                    engine.apply_hooks.append(_check_forward)
                    engine.backward_hooks.append(_check_backward)
                _open_blocks += 1
            _mode.depth += 1
        return self

    def __exit__(self, *exc: Any) -> None:
        global _open_blocks
        if self.enabled:
            _mode.depth -= 1
            with _lock:
                _open_blocks -= 1
                if _open_blocks == 0:
                    engine.apply_hooks.remove(_check_forward)
                    engine.backward_hooks.remove(_check_backward)


def is_anomaly_enabled() -> bool:
    """Whether a `detect_anomaly()` block is active on this thread."""
    return _mode.depth > 0
