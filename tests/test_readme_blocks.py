"""Every Python block of the README runs as shown when pasted alone (each in a fresh interpreter,
in an empty folder, so what one block writes or sets cannot help another)."""
import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"
BLOCKS = re.findall(r"```python\n(.*?)```", README.read_text(), re.S)


def test_the_readme_has_python_blocks():
    assert len(BLOCKS) >= 5


# modules of the optional extras a block may import -> the extra that installs them
EXTRAS = {"matplotlib": "plot", "PIL": "images", "tqdm": "progress", "dask": "distributed",
          "distributed": "distributed", "mpi4py": "mpi", "torch": "peers", "jax": "peers"}


@pytest.mark.parametrize("number", range(len(BLOCKS)))
def test_readme_block_runs_alone(number, tmp_path):
    for module in re.findall(r"^(?:from|import) (\w+)", BLOCKS[number], re.M):
        if module in EXTRAS and importlib.util.find_spec(module) is None:
            pytest.skip(f"README block {number} imports {module}: the {EXTRAS[module]} extra is not installed")
    result = subprocess.run([sys.executable, "-c", BLOCKS[number]], cwd=tmp_path, capture_output=True,
                            text=True, timeout=300, stdin=subprocess.DEVNULL)
    assert result.returncode == 0, f"README block {number} failed:\n{BLOCKS[number]}\n{result.stderr}"
