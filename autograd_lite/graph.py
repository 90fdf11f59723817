"""Seeing the graph: Graphviz DOT text of a tensor's history, and a readable reverse pass.

`to_dot(t)` draws one node per primitive (its name and output shape) and one per leaf
(its name when it has one); `explain(loss)` runs the reverse pass and prints it step by
step, right to left, with each primitive's local rule and the shapes going in and out.
"""
from __future__ import annotations

import os
import shutil
import subprocess
from typing import Any, Dict, List, NamedTuple, Optional, Tuple

import numpy as np

from . import engine
from .files import atomic_path
from .tensor import Tensor


def _graph_nodes(root: Tensor) -> List[Tensor]:
    """Every Tensor in root's recorded graph (leaves included), inputs before outputs."""
    order: List[Tensor] = []
    seen = set()
    stack = [(root, False)]
    while stack:
        node, expanded = stack.pop()
        if expanded:
            order.append(node)
            continue
        if id(node) in seen:
            continue
        seen.add(id(node))
        stack.append((node, True))
        for x in node._inputs or ():
            if isinstance(x, Tensor) and id(x) not in seen:
                stack.append((x, False))
    return order


def _names_from(names: Any) -> Dict[int, str]:
    """{id(tensor): name} from a mapping name -> Tensor or an object with named_parameters()."""
    if names is None:
        return {}
    items = names.named_parameters() if hasattr(names, "named_parameters") else names.items()
    return {id(t): name for name, t in items}


def _leaf_label(t: Tensor, labels: Dict[int, str]) -> str:
    name = labels.get(id(t)) or t.name
    if name:
        return name
    return "parameter" if t.requires_grad else "constant"


def _quote(text: str) -> str:
    """A DOT string literal; newlines become DOT's \\n line breaks."""
    escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{escaped}"'


def to_dot(root: Tensor, names: Any = None, title: Optional[str] = None) -> str:
    """Graphviz DOT text of the graph that produced `root`.

    `names` labels leaves: a mapping name -> Tensor, or a module (its `named_parameters()`).
    Draw it before `backward()`, which releases the graph (or pass retain_graph=True there).

    Example: `open("graph.dot", "w").write(to_dot(loss, names=model))`, then
    `dot -Tsvg graph.dot -o graph.svg`, or `render(loss, "graph.svg", names=model)`.
    """
    if not isinstance(root, Tensor) and hasattr(root, "to_dot"):   # a function from ag.compile
        return root.to_dot(title=title)
    if not isinstance(root, Tensor):
        raise TypeError(f"to_dot: expected a Tensor, got {type(root).__name__}")
    if root._op is not None and root._inputs is None:
        raise RuntimeError(f"to_dot: the graph behind '{root._op.name}' was released by backward(); "
                           "draw it before backward(), or call backward(retain_graph=True)")
    labels = _names_from(names)
    ids: Dict[int, str] = {}
    lines = ["digraph autograd {", "  rankdir=LR;", '  node [fontname="Helvetica", fontsize=10];']
    if title:
        lines.append(f"  label={_quote(title)};")
    for k, t in enumerate(_graph_nodes(root)):
        ids[id(t)] = f"n{k}"
        shape = str(t.shape) if t.ndim else "scalar"
        if t._op is None:
            style = 'shape=box, style=filled, fillcolor="#dbe9f6"' if t.requires_grad else "shape=box"
            lines.append(f"  n{k} [label={_quote(_leaf_label(t, labels) + chr(10) + shape)}, {style}];")
        else:
            style = ', style=filled, fillcolor="#fde8c8"' if t is root else ""
            lines.append(f"  n{k} [label={_quote(t._op.name + chr(10) + shape)}, shape=ellipse{style}];")
        for i, x in enumerate(t._inputs or ()):
            if isinstance(x, Tensor):
                lines.append(f"  {ids[id(x)]} -> n{k};")
    lines.append("}")
    return "\n".join(lines) + "\n"


def render(root: Tensor, path: str, names: Any = None) -> str:
    """Write a picture of the graph to `path` (.svg, .png or .pdf) with Graphviz's `dot`.

    Raises RuntimeError with what to install when the `dot` executable is missing.
    The file is written atomically. Returns the path.
    """
    fmt = os.path.splitext(path)[1].lstrip(".").lower()
    if fmt not in ("svg", "png", "pdf"):
        raise ValueError(f"render: cannot tell the format from {path!r}; use a .svg, .png or .pdf path")
    dot = shutil.which("dot")
    if dot is None:
        raise RuntimeError("render: the Graphviz 'dot' executable is not installed (or not on PATH); "
                           "install Graphviz (e.g. `apt-get install graphviz`), or save to_dot(...) "
                           "text to a .dot file and render it elsewhere")
    text = to_dot(root, names=names)
    with atomic_path(path, "render") as tmp:
        subprocess.run([dot, f"-T{fmt}", "-o", tmp], input=text.encode(), check=True,
                       capture_output=True)
    return path


def _describe(t: Any, labels: Dict[int, str]) -> str:
    if isinstance(t, Tensor):
        if t._op is None:
            return _leaf_label(t, labels)
        return t._op.name
    return "constant"


def _shape(v: Any) -> str:
    return str(tuple(np.shape(v.data if isinstance(v, Tensor) else v)))


class ExplainStep(NamedTuple):
    """One step of the reverse pass as `explain` prints it: its 1-based `number`, the primitive's
    `op` name (a fused layer's with its activation, e.g. "linear[sigmoid]"), the `cotangent_shape`
    coming in, the local `rule`, and (description, shape) of each cotangent going out."""

    number: int
    op: str
    cotangent_shape: str
    rule: str
    outputs: List[Tuple[str, str]]

    def __str__(self) -> str:
        outs = ", ".join(f"{name} {shape}" for name, shape in self.outputs)
        return f"{self.number:3d}. {self.op:<14} g {self.cotangent_shape:<12} rule: {self.rule}\n       -> {outs}"


def explain_steps(root: Tensor, names: Any = None) -> List[ExplainStep]:
    """The steps of the reverse pass from `root`, right to left, as `explain` prints them (leaves'
    `.grad` untouched, the graph kept); for a reader that needs to find a step, e.g. a layer's."""
    if not isinstance(root, Tensor) or not root.requires_grad:
        raise ValueError("explain: expected a Tensor that requires grad (the output of a computation)")
    labels = _names_from(names)
    steps: List[ExplainStep] = []

    def record(node: Tensor, g: Any, produced: list) -> None:
        name = node._op.name
        activation = (node._params or {}).get("activation")
        if activation:  # a fused layer: say which activation its rule differentiates
            name += f"[{activation}]"
        steps.append(ExplainStep(len(steps) + 1, name, _shape(g), node._op.rule_text or "its VJP rule",
                                 [(_describe(x, labels), _shape(c)) for _, x, c in produced]))

    seed = engine._seed(root, None, False, "explain")
    engine.backward_hooks.append(record)
    try:
        engine._run([root], [seed], None, True, False)
    finally:
        engine.backward_hooks.remove(record)
    return steps


def explain(root: Tensor, names: Any = None, file: Any = None) -> str:
    """Run the reverse pass from `root` and print it step by step, right to left.

    Each step names the primitive, the shape of the cotangent coming in, the local rule it
    applies (e.g. `sigmoid: g * a * (1 - a)`) and the shape of each cotangent going out, so the
    sequence can be read against the lecture's delta_out / delta_h equations. Leaves' `.grad`
    are not touched and the graph is kept. Returns the text (and prints it unless file=False);
    `explain_steps` gives the same steps as records. Given a function compiled by `ag.compile`,
    it prints the captured program instead (`compiled.explain()`).
    """
    if not isinstance(root, Tensor) and hasattr(root, "explain"):
        text = root.explain() + "\n"
        if file is not False:
            print(text, end="", file=file)
        return text
    steps = explain_steps(root, names)
    header = (f"reverse pass from '{_describe(root, _names_from(names))}' (shape {root.shape}), right to left: "
              f"{len(steps)} steps")
    text = "\n".join([header] + [str(step) for step in steps]) + "\n"
    if file is not False:
        print(text, end="", file=file)
    return text
