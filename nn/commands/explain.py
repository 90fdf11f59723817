"""`python -m nn explain`: the reverse pass of the lecture's network made tiny, step by step
(autograd_lite.explain), read against the lecture's delta_out / delta_h equations."""
from __future__ import annotations

import argparse
from typing import List

import autograd_lite as ag
from autograd_lite.files import atomic_write, check_output_path
from autograd_lite.graph import ExplainStep, explain_steps

from ..data import one_hot, preprocess
from ..datasets import load_dataset
from ..datasets.defaults import FEATURE_RANGE
from ..layers import MLP
from ..losses import binary_cross_entropy
from .common import UserError


def run(args: argparse.Namespace) -> int:
    """Print the reverse pass of a 2-layer sigmoid MLP's logistic cost on a few digits; exit code 0."""
    if args.dot:
        check_output_path(args.dot, "--dot")
    ds = load_dataset("digits", download=False, verbose=False)
    if args.samples > len(ds.y_train):
        raise UserError(f"--samples {args.samples}: the digits have {len(ds.y_train)} training images")
    x = preprocess(ds.x_train[:args.samples], ds.max_value, FEATURE_RANGE)
    y = ds.y_train[:args.samples]
    model = MLP([x.shape[1], args.hidden, ds.num_classes], activation="sigmoid",
                output_activation="sigmoid", seed=args.seed)
    a_out = model(x)
    J = binary_cross_entropy(a_out, one_hot(y, ds.num_classes, a_out.dtype), reduction="sum")
    network = repr(model).splitlines()[0]
    print(f"{network}\nthe logistic cost J = -sum[y log a_out + (1 - y) log(1 - a_out)] on "
          f"{args.samples} bundled digits (labels {', '.join(map(str, y))}), J = {float(J.data):.4f}")
    if args.dot:
        with atomic_write(args.dot, "explain --dot", "w") as f:
            f.write(ag.to_dot(J, names=model, title="the logistic cost of " + network))
    print(ag.explain(J, names=model, file=False), end="")
    print(_lecture_legend(explain_steps(J, names=model), args.samples, args.hidden, ds.num_classes))
    if args.dot:
        print(f"wrote the graph to {args.dot} (draw it with: dot -Tsvg {args.dot} -o graph.svg)")
    return 0


def _lecture_legend(steps: List[ExplainStep], samples: int, hidden: int, classes: int) -> str:
    """How the printed steps map to the lecture's delta_out / delta_h equations."""
    layers = [step.number for step in steps if step.op.startswith("linear")]
    if len(layers) != 2:
        return ""
    out, hid = layers
    return "\n".join([
        "read against the lecture (a_h = sigmoid(A_in W_h + b_h), a_out = sigmoid(a_h W_out + b_out);",
        "each 'linear' is one layer with its sigmoid folded in, act'(z) = a (1 - a)):",
        f"  steps 1-{out - 1}: the cost; they hand the output layer g = dJ/da_out, ({samples}, {classes})",
        f"  step {out}: the output layer: delta_out = g * a_out (1 - a_out) (= a_out - y for this cost);",
        "      output.weight gets a_h^T delta_out, output.bias the column sums of delta_out,",
        f"      and delta_out W_out^T, ({samples}, {hidden}), goes back to the hidden layer",
        f"  step {hid}: the hidden layer: delta_h = (delta_out W_out^T) * a_h (1 - a_h);",
        "      hidden.0.weight gets A_in^T delta_h, hidden.0.bias the column sums of delta_h",
        "      (the input A_in is a constant: no gradient goes to it)"])
