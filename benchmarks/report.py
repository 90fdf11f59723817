"""What the benchmark scripts share for their output files: JSON and PNG written atomically
(autograd_lite.files), and matplotlib only when installed."""
from __future__ import annotations

import json
from typing import Any

from autograd_lite.files import atomic_path, atomic_write


def write_json(path: str, payload: Any, indent: int = 2) -> None:
    """Write `payload` as JSON to `path`; an interrupted write leaves no half-written file."""
    with atomic_write(path, "write_json", "w") as f:
        json.dump(payload, f, indent=indent)


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
    try:
        with atomic_path(path, "save_figure") as tmp:
            fig.savefig(tmp, dpi=dpi, format=path.rsplit(".", 1)[-1] if "." in path else "png")
    finally:
        import matplotlib.pyplot as plt
        plt.close(fig)
