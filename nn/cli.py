"""The command line: `python -m nn train | evaluate | predict | explain | sweep` (or `autograd-lite ...`).

This module parses the options and dispatches: each command's work is `nn.commands.<command>.run`.
The error boundary is here too: a user error (a bad option, a missing file, a model that does not
fit) ends with its one-sentence message on stderr and exit code 1 (2 for usage errors); Ctrl-C ends
with one sentence and exit code 130.
"""
from __future__ import annotations

import argparse
import importlib
import math
import sys
from pathlib import Path
from typing import Optional, Sequence

import autograd_lite as ag

from .datasets import DatasetError
from .datasets.defaults import defaults_text
from .optim import OPTIMIZERS, SCHEDULES
from .serialization import ModelFileError
from .sweep import OPTIONS as SWEEP_OPTIONS

COMMANDS = ("train", "evaluate", "predict", "explain", "sweep")
# shown by the options whose default is the data set's (the table is in `train --help`'s epilog)
PER_DATASET = "(default: the data set's, see below)"


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run the command line with `argv` (default sys.argv[1:]); returns the exit code."""
    try:      # Ctrl-C before a command runs: the sentence nn/__main__ says while the modules load
        parser = build_parser()
        args = parser.parse_args(argv)
        from .commands.common import Interrupted, UserError, one_sentence
    except KeyboardInterrupt:
        print("interrupted (Ctrl-C) while starting", file=sys.stderr)
        return 130
    if args.command is None:
        parser.print_help()
        return 2
    try:
        return importlib.import_module(f".commands.{args.command}", __package__).run(args)
    except Interrupted as stop:
        print(stop, file=sys.stderr)
        return 130
    except KeyboardInterrupt:
        print("interrupted (Ctrl-C)", file=sys.stderr)
        return 130
    except MemoryError as error:
        print(f"error: not enough memory: {one_sentence(error)}", file=sys.stderr)
        return 1
    except (UserError, DatasetError, ModelFileError, FileNotFoundError, ValueError, FloatingPointError,
            OSError) as error:
        print(f"error: {one_sentence(error)}", file=sys.stderr)
        return 1


def build_parser() -> argparse.ArgumentParser:
    """The parser of every command; `args.command` names the module in nn/commands that runs it."""
    prog = _prog()
    parser = argparse.ArgumentParser(
        prog=prog, description="Train, evaluate and use neural networks (multilayer perceptrons and "
        "convolutional networks) built with autograd-lite, and search their hyperparameters. "
        f"Run '{prog} train' to train on the bundled 8x8 digits.",
        formatter_class=_HelpFormatter)
    parser.add_argument("--version", action="version", version=f"autograd-lite {ag.__version__}",
                        help="print the version and exit")
    sub = parser.add_subparsers(dest="command", metavar="{" + ",".join(COMMANDS) + "}")
    _add_train(sub)
    _add_evaluate(sub)
    _add_predict(sub)
    _add_explain(sub)
    _add_sweep(sub)
    return parser


# ---------------------------------------------------------------- the commands' options
def _add_train(sub: argparse._SubParsersAction) -> None:
    train = sub.add_parser("train", help="train a network and report its test accuracy",
                           description="Train a multilayer perceptron (--arch mlp) or a LeNet-5-style "
                           "convolutional network (--arch cnn). Without options: the lecture's "
                           "network (one hidden sigmoid layer, logistic cost, L2, mini-batch SGD with a cosine "
                           "learning-rate schedule) on the bundled digits, with the defaults below.",
                           epilog="the defaults of each data set, chosen on its training set (never its test\n"
                           "set); an option given on the command line wins:\n" + defaults_text(),
                           formatter_class=_HelpFormatter)
    _add_data_options(train, dataset_default="digits")
    train.set_defaults(dataset="digits")
    train.add_argument("--arch", choices=("mlp", "cnn"), default="mlp",
                       help="mlp: a multilayer perceptron (the lecture's network); cnn: convolution blocks "
                            "(conv, [batch norm], ReLU, 2x2 max pooling) then dense ReLU layers, trained with ce")
    train.add_argument("--hidden", action="append", metavar="N[,N...]",
                       help="hidden layer widths (with --arch cnn: the dense layers after the convolutions), "
                            f"repeatable or a comma list {PER_DATASET}")
    train.add_argument("--channels", metavar="N[,N...]",
                       help=f"--arch cnn: output channels of each convolution block, a comma list {PER_DATASET}")
    train.add_argument("--kernel-size", type=_positive_int, metavar="K",
                       help=f"--arch cnn: the (odd) side of the convolution kernels {PER_DATASET}")
    train.add_argument("--padding", metavar="P[,P...]",
                       help="--arch cnn: zero padding of each convolution block, a comma list (default: the "
                            "data set's, see below; else half the kernel, keeping the image's size)")
    train.add_argument("--batch-norm", action=argparse.BooleanOptionalAction, default=None,
                       help="--arch cnn: batch normalization after each convolution and dense layer, or none; "
                            "each data set's choice is listed below")
    train.add_argument("--activation", choices=("sigmoid", "tanh", "relu"),
                       help=f"activation of the hidden layers {PER_DATASET}")
    train.add_argument("--loss", choices=("bce", "ce"),
                       help="bce: the lecture's logistic cost on sigmoid outputs; ce: softmax cross-entropy "
                            f"on logits (the output layer is built to match) {PER_DATASET}")
    train.add_argument("--optimizer", choices=tuple(OPTIMIZERS),
                       help="; ".join(f"{k}: {v}" for k, v in OPTIMIZERS.items()) + f" {PER_DATASET}")
    train.add_argument("--lr", type=_positive_float,
                       help=f"learning rate {PER_DATASET[:-1]}, for the optimizer chosen)")
    train.add_argument("--l2", type=_nonnegative_float,
                       help="L2 penalty lam: adds lam/2 * sum of squared weights to each batch's mean loss "
                            + PER_DATASET)
    train.add_argument("--dropout", type=_probability,
                       help=f"dropout probability after each hidden layer {PER_DATASET}")
    train.add_argument("--epochs", type=_positive_int, help=f"passes over the training set {PER_DATASET}")
    train.add_argument("--batch-size", type=_positive_int,
                       help=f"1 = stochastic, the training set size = batch gradient descent {PER_DATASET}")
    train.add_argument("--schedule", choices=tuple(SCHEDULES),
                       help="learning-rate schedule: " + "; ".join(f"{k}: {v}" for k, v in SCHEDULES.items())
                            + f" {PER_DATASET}")
    train.add_argument("--validation", type=_fraction, metavar="FRACTION",
                       help="share of the training set held out (stratified) for validation; 0 = none "
                            f"{PER_DATASET[:-1]}; 0.1 with --early-stopping)")
    train.add_argument("--early-stopping", type=_positive_int, metavar="N",
                       help="stop after N epochs without a better validation loss; keep the best weights "
                            "(default: off, train all --epochs)")
    train.add_argument("--seed", type=int, default=0,
                       help="seed of the weights, the validation split, the batch order and dropout")
    train.add_argument("--ensemble", type=_positive_int, default=1, metavar="K",
                       help="train K models (seeds seed..seed+K-1) and average their probabilities")
    train.add_argument("--workers", type=_positive_int, metavar="N",
                       help="with --ensemble: train the members on N local worker processes at once; 1 = one "
                            "after another in this process (default: the number of cores, at most K)")
    train.add_argument("--scheduler", metavar="ADDRESS",
                       help="with --ensemble: train the members on the Dask cluster whose scheduler is at ADDRESS "
                            "(needs the distributed extra)")
    train.add_argument("--data-parallel", action="store_true",
                       help="under 'mpiexec -n N': split every mini-batch across the N ranks and average their "
                            "gradients (needs the mpi extra); rank 0 prints and saves")
    train.add_argument("--save", metavar="MODEL.npz",
                       help="write the trained model (with --ensemble: MODEL-1.npz ... MODEL-K.npz) "
                            "(default: not saved)")
    train.add_argument("--plot", metavar="CURVES.png",
                       help="plot loss and accuracy per epoch (needs matplotlib; .png, .svg, .pdf, ...) "
                            "(default: no plot)")
    train.add_argument("--confusion", action="store_true", help="print the test confusion matrix")
    train.add_argument("--verbose", type=int, choices=(0, 1, 2), default=1,
                       help="0: silent; 1: a progress bar (tqdm's with the progress extra) with a line every "
                            "--log-every epochs above it; 2: a line per epoch. Output that is not a terminal "
                            "gets a line every --log-every epochs")
    train.add_argument("--log-every", type=_positive_int, metavar="N",
                       help="log every N epochs (default: about 20 lines per run, e.g. every 25 of 500 "
                            "epochs; every epoch with --verbose 2 on a terminal), plus the first, the last and, with a "
                            "validation set, the best")
    train.add_argument("--history", metavar="LOG.csv",
                       help="write the per-epoch log (loss, accuracy, validation, lr, seconds) as CSV (with "
                            "--ensemble: LOG-1.csv ... LOG-K.csv) (default: not written)")
    train.add_argument("--quiet", action="store_true", help="print only the final result (--verbose 0, no "
                                                            "set-up lines)")
    train.add_argument("--diagnostics", action="store_true",
                       help="per layer and epoch: gradient norm, weight norm, share of saturated units; "
                            "warn when a layer saturates or its gradients vanish or explode")
    train.add_argument("--detect-anomaly", action="store_true",
                       help="stop at the first operation that makes a NaN or Inf and name it (slower)")
    train.add_argument("--no-compile", action="store_true",
                       help="run each batch op by op instead of replaying the step that ag.compile "
                            "captured at the first batch (same numbers, slower; for debugging)")


def _add_evaluate(sub: argparse._SubParsersAction) -> None:
    ev = sub.add_parser("evaluate", help="test accuracy and confusion matrix of a saved model",
                        formatter_class=_HelpFormatter)
    ev.add_argument("--model", action="append", required=True, metavar="MODEL.npz",
                    help="a model file from 'train --save'; repeat to evaluate an averaged ensemble")
    _add_data_options(ev, dataset_default="the data set the model file names, else digits")
    ev.add_argument("--hidden", action="append", metavar="N[,N...]",
                    help="check that the model has these hidden widths (default: not checked)")
    ev.add_argument("--quiet", action="store_true", help="print only the accuracy")


def _add_predict(sub: argparse._SubParsersAction) -> None:
    pr = sub.add_parser("predict", help="classify images (.npy arrays, or image files with Pillow)",
                        formatter_class=_HelpFormatter)
    pr.add_argument("--model", action="append", required=True, metavar="MODEL.npz",
                    help="a model file from 'train --save'; repeat to average an ensemble")
    pr.add_argument("files", nargs="+", metavar="FILE",
                    help="a .npy array of raw pixel values (one image or a stack, the model's size), or an "
                         "image file of one digit of any size (cropped, scaled and centred as the data set's)")
    pr.add_argument("--max-value", type=_positive_float, default=None,
                    help="the largest pixel value of the .npy data (default: the one the model file records; "
                         "for files without a record 16 for 8x8 and 255 for 28x28 images)")


def _add_explain(sub: argparse._SubParsersAction) -> None:
    ex = sub.add_parser("explain", help="print the reverse pass of a tiny network step by step",
                        description="Print autograd_lite.explain for the lecture's network made tiny: a "
                        "2-layer sigmoid MLP with the logistic cost on a few bundled digits, the reverse "
                        "pass right to left with each operation's local rule and shapes.",
                        formatter_class=_HelpFormatter)
    ex.add_argument("--hidden", type=_positive_int, default=5, metavar="N", help="hidden units")
    ex.add_argument("--samples", type=_positive_int, default=4, metavar="N", help="digits in the batch")
    ex.add_argument("--seed", type=int, default=0, help="seed of the weights")
    ex.add_argument("--dot", metavar="FILE.dot",
                    help="also write the graph as Graphviz DOT text (then: dot -Tsvg FILE.dot -o graph.svg) "
                         "(default: not written)")


def _add_sweep(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("sweep", help="search hyperparameters by cross-validation, on local workers or Dask",
                       description="Train many configurations, each scored by stratified K-fold cross-"
                       "validation on the training set (the test set is never looked at), in parallel on "
                       "local worker processes or a Dask cluster. Options not swept take train's defaults for "
                       "the data set. Ctrl-C stops cleanly; the trials finished are kept in --results.",
                       epilog="examples:\n"
                              "  %(prog)s --grid lr=1,2,4 --grid l2=1e-4,1e-3 --grid hidden=100,200\n"
                              "  %(prog)s --random 20 --range lr=0.1:10 --range l2=1e-5:1e-2 --grid epochs=100\n"
                              "  %(prog)s --space sweep.toml --scheduler tcp://10.0.0.5:8786 --results s.jsonl",
                       formatter_class=_HelpFormatter)
    _add_data_options(p, dataset_default="digits")
    p.set_defaults(dataset="digits")
    p.add_argument("--grid", action="append", metavar="OPTION=V1,V2",
                   help="values of one training option, repeatable: every combination is tried (hidden widths "
                        "as 200 or 256-128; options: " + ", ".join(SWEEP_OPTIONS) + ")")
    p.add_argument("--random", type=_positive_int, metavar="N",
                   help="draw N configurations from the --range options (lr and l2 log-uniformly); a --grid "
                        "option is then a list to draw from")
    p.add_argument("--range", action="append", metavar="OPTION=LOW:HIGH",
                   help="a range (or a comma list of choices) for --random, repeatable")
    p.add_argument("--space", metavar="FILE",
                   help="a JSON or TOML file: a 'grid' table, or 'random' (a count) and 'ranges'; optional 'fixed'")
    p.add_argument("--cv", type=_positive_int, default=3, metavar="K", help="stratified folds of the training set")
    p.add_argument("--validation", type=_fraction, metavar="FRACTION",
                   help="score on one stratified held-out share instead of --cv folds")
    p.add_argument("--seeds", type=_positive_int, default=1, metavar="N",
                   help="train each fold with seeds 0..N-1 (weights and batch order)")
    p.add_argument("--workers", type=_positive_int, metavar="N",
                   help="local worker processes, each on one core (default: the number of cores)")
    p.add_argument("--scheduler", metavar="ADDRESS",
                   help="run on the Dask cluster whose scheduler is at ADDRESS, e.g. tcp://host:8786 "
                        "(needs the distributed extra)")
    p.add_argument("--results", metavar="FILE.jsonl",
                   help="append each finished trial to this file, so that --resume can continue the sweep")
    p.add_argument("--resume", action="store_true", help="skip the trials already in --results")
    p.add_argument("--out", metavar="FILE.csv|FILE.json",
                   help="write the results table (.csv) or the table and every trial (.json)")
    p.add_argument("--refit", action="store_true",
                   help="train the best configuration on the whole training set and report its test accuracy")
    p.add_argument("--quiet", action="store_true", help="print only the table and the best command")


def _add_data_options(p: argparse.ArgumentParser, dataset_default: str) -> None:
    """--dataset, --data-dir, --no-download; `dataset_default` says in words what happens without --dataset."""
    p.add_argument("--dataset", metavar="NAME",
                   help=f"digits (bundled), mnist, fashion-mnist, or a folder of IDX files (default: {dataset_default})")
    p.add_argument("--data-dir", default=None, metavar="DIR",
                   help="where mnist / fashion-mnist are cached (default: $AUTOGRAD_LITE_DATA or "
                        "~/.cache/autograd-lite)")
    p.add_argument("--no-download", action="store_true", help="never download; fail if files are missing")


# ---------------------------------------------------------------- parsing helpers
class _HelpFormatter(argparse.HelpFormatter):
    """Each option's default shown once: '(default: X)' is added unless the help text says it
    already; flags (store_true) and options whose default is None (their help says what happens
    instead) get none. In descriptions and epilogs each line is a paragraph, wrapped to the
    terminal, and indented lines (the defaults table) are kept as they are."""

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        return "\n".join(line if line.startswith(" ") else super(_HelpFormatter, self)._fill_text(line, width, indent)
                         for line in text.splitlines())

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if ("(default" in text or not action.option_strings or action.nargs == 0 or action.required
                or action.default is None or action.default is argparse.SUPPRESS):
            return text
        return text + " (default: %(default)s)"


def _prog() -> str:
    """The command's name in usage lines: the console script's, or `python -m nn`."""
    return "autograd-lite" if Path(sys.argv[0]).stem == "autograd-lite" else "python -m nn"


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def _float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
    return value


def _positive_float(text: str) -> float:
    value = _float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
    return value


def _nonnegative_float(text: str) -> float:
    value = _float(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got {text!r}")
    return value


def _probability(text: str) -> float:
    value = _float(text)
    if not 0 <= value < 1:
        raise argparse.ArgumentTypeError(f"expected a probability in [0, 1), got {text!r}")
    return value


def _fraction(text: str) -> float:
    value = _float(text)
    if not 0 <= value < 1:
        raise argparse.ArgumentTypeError(f"expected a fraction in [0, 1), got {text!r}")
    return value
