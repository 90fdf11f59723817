"""DOT pictures of the graph (tested for structure) and the readable reverse pass."""
import re
import shutil

import numpy as np
import pytest

import autograd_lite as ag


def _lecture_network(seed=0):
    rng = np.random.default_rng(seed)
    X = ag.tensor(rng.random((5, 4)), name="A_in")
    y = np.eye(3)[rng.integers(0, 3, 5)]
    W_h = ag.tensor(rng.standard_normal((4, 6)), requires_grad=True, name="W_h")
    W_out = ag.tensor(rng.standard_normal((6, 3)), requires_grad=True, name="W_out")
    a_h = ag.sigmoid(X @ W_h)
    a_out = ag.sigmoid(a_h @ W_out)
    J = -(y * ag.log(a_out) + (1 - y) * ag.log(1 - a_out)).sum()
    return J, W_h, W_out


def test_dot_has_one_node_per_primitive_and_leaf_and_the_edges_between():
    x = ag.tensor([1.0, 2.0], requires_grad=True, name="x")
    w = ag.tensor([3.0, 4.0], name="w")
    dot = ag.to_dot((x * w).sum())
    labels = re.findall(r'n\d+ \[label="([^"]*)"', dot)
    assert sorted(labels) == sorted(["x\\n(2,)", "w\\n(2,)", "multiply\\n(2,)", "sum\\nscalar"])
    assert len(re.findall(r"n\d+ -> n\d+;", dot)) == 3
    assert dot.startswith("digraph autograd {") and dot.rstrip().endswith("}")


def test_dot_names_parameters_from_a_mapping():
    J, W_h, W_out = _lecture_network()
    W_h.name = None
    dot = ag.to_dot(J, names={"hidden.weight": W_h})
    assert '"hidden.weight\\n(4, 6)"' in dot and '"W_out\\n(6, 3)"' in dot


def test_dot_after_backward_explains_the_graph_is_gone():
    J, _, _ = _lecture_network()
    J.backward()
    with pytest.raises(RuntimeError, match="released by backward"):
        ag.to_dot(J)


def test_render_without_graphviz_says_what_to_install(tmp_path, monkeypatch):
    monkeypatch.setattr(shutil, "which", lambda name: None)
    J, _, _ = _lecture_network()
    with pytest.raises(RuntimeError, match="Graphviz 'dot' executable is not installed"):
        ag.render(J, str(tmp_path / "g.svg"))
    assert not list(tmp_path.iterdir())


@pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz is not installed")
def test_render_writes_an_svg(tmp_path):
    J, _, _ = _lecture_network()
    path = ag.render(J, str(tmp_path / "g.svg"))
    assert open(path).read().lstrip().startswith(("<?xml", "<svg"))


def test_explain_reads_right_to_left_like_the_lecture():
    J, W_h, W_out = _lecture_network()
    text = ag.explain(J, file=False)
    ops = re.findall(r"^\s*\d+\. (\w+)", text, flags=re.M)
    # delta_out at the output sigmoid, then through W_out to delta_h at the hidden sigmoid
    tail = [op for op in ops if op in ("sigmoid", "matmul")]
    assert tail == ["sigmoid", "matmul", "sigmoid", "matmul"]
    assert ops[0] == "negative" and ops.index("log") < ops.index("sigmoid")
    assert "sigmoid        g (5, 3)       rule: g * a * (1 - a)" in text
    assert re.search(r"matmul .*\n\s+-> sigmoid \(5, 6\), W_out \(6, 3\)", text)
    assert re.search(r"matmul .*\n\s+-> W_h \(4, 6\)", text)
    assert W_h.grad is None            # explain does not accumulate gradients
    J.backward()                       # and keeps the graph
    assert W_h.grad.shape == (4, 6)
