"""What the benchmark scripts share for their output files: JSON and PNG written atomically
(a temporary file beside the target, then os.replace), and matplotlib only when installed."""
from __future__ import annotations

import json
import os
import tempfile
from typing import Any


def write_json(path: str, payload: Any, indent: int = 2) -> None:
    """Write `payload` as JSON to `path`; an interrupted write leaves no half-written file."""
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=directory, suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(payload, f, indent=indent)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def pyplot() -> Any:
    """matplotlib.pyplot on the Agg backend, or None (with a note) when matplotlib is missing."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("note: --plot needs matplotlib (pip install -e '.[plot]'); no plot written")
        return None
    return plt


def save_figure(fig: Any, path: str, dpi: int = 120) -> None:
    """Save a matplotlib figure to `path` atomically, then close it."""
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=directory, suffix=os.path.splitext(path)[1] or ".png")
    os.close(fd)
    try:
        fig.savefig(tmp, dpi=dpi)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise
    finally:
        import matplotlib.pyplot as plt
        plt.close(fig)
