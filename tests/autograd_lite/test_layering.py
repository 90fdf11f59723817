"""The core's modules import each other as a DAG (no circle, so any import order works), the Tensor
depends on nothing in the package, and autograd_lite never imports nn."""
import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "autograd_lite"


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> set:
    """The package modules that `path` imports at module level (function-level imports excluded)."""
    name = _module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.ImportFrom):
            base = package
            for _ in range(node.level - 1):
                base = base.rpartition(".")[0]
            target = (base + "." + node.module if node.module else base) if node.level else node.module
            if node.module is None or not node.level:
                found.update(target + "." + a.name if node.level else target for a in node.names)
            found.add(target)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
    modules = {_module_name(p) for p in PACKAGE.rglob("*.py")}
    return {m for m in found if m in modules and m != name}


GRAPH = {_module_name(p): _imports(p) for p in PACKAGE.rglob("*.py")}


def test_tensor_imports_nothing_from_the_package():
    assert GRAPH["autograd_lite.tensor"] == set()


def test_the_core_modules_import_each_other_without_a_circle():
    # the package's __init__ files gather their children; circles through them are not real
    graph = {m: {d for d in deps if d not in ("autograd_lite",)} for m, deps in GRAPH.items()}
    state = {}

    def visit(m, path):
        if state.get(m) == "done":
            return
        if state.get(m) == "open":
            pytest.fail("import circle: " + " -> ".join(path + [m]))
        state[m] = "open"
        for d in sorted(graph.get(m, ())):
            if not (d.startswith(m + ".") and m.count(".") < d.count(".")):
                visit(d, path + [m])
        state[m] = "done"

    for m in sorted(graph):
        visit(m, [])


def test_autograd_lite_never_imports_nn():
    for path in PACKAGE.rglob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) and not node.level else []
            assert not any(n == "nn" or n.startswith("nn.") for n in names), path


@pytest.mark.parametrize("first", ["engine", "primitives", "functions", "tensor_methods", "forward",
                                   "declaration", "tensor"])
def test_any_module_can_be_imported_first(first):
    code = f"import autograd_lite.{first}; import autograd_lite as ag; print((ag.tensor(2.0) * 3).item())"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and result.stdout.strip() == "6.0", result.stderr
