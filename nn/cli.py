"""The command line: `python -m nn train | evaluate | predict | explain`.

`python -m nn train` with no arguments trains the lecture's network (one hidden sigmoid layer,
logistic cost on one-hot targets, L2 penalty, mini-batch SGD) on the bundled 8x8 digits and
prints the progress per epoch and the test accuracy. User errors (a bad option, a missing
file, a model that does not fit) end with one sentence on stderr and exit code 1 or 2, and
files to be written are checked before training starts. Ctrl-C ends with one sentence and exit
code 130; during `train --save` it stops after the current batch and saves the weights so far.
`python -m nn explain` prints the reverse pass of a tiny network step by step.
"""
from __future__ import annotations

import argparse
import contextlib
import os
import re
import sys
import time
import warnings
from pathlib import Path
from typing import List, Optional, Sequence

import numpy as np

import autograd_lite as ag
from autograd_lite.files import atomic_path, atomic_write, check_output_path

from .data import one_hot, preprocess, stratified_split
from .datasets import DatasetError, load_dataset
from .diagnostics import TrainingWarning
from .images import Preprocessing, describe_top, looks_scaled, model_input, read_images
from .layers import MLP
from .losses import binary_cross_entropy
from .optim import SGD, Adam, CosineDecay, StepDecay
from .serialization import ModelFileError, load, save
from .train import Evaluation, NonFiniteError, TrainingInterrupted, evaluate, fit, predict_proba

# Inputs are scaled from 0..max_value to this range, in training and in prediction alike.
FEATURE_RANGE = (-1.0, 1.0)
# below this best probability, predict warns that the model is unsure
UNSURE_BELOW = 0.5

# The defaults: the lecture's network on the bundled digits, chosen by 5-fold cross-validation
# on the digits' training set only (10 seeds x 5 folds, under both kernel settings; hidden size,
# lr, L2, epochs, batch size, schedule, momentum, input range): 98.2% validation accuracy against
# 97.8% for the previous defaults (100 units, lr 2.0, l2 1e-3, 300 epochs). On the whole training
# set: 97.2-98.1% test accuracy over seeds 0-9 with the Numba kernels (mean 97.7%), 96.7-98.1%
# with AUTOGRAD_LITE_KERNELS=numpy (mean 97.5%); seed 0 gives 97.77% (Numba) or 97.49% (NumPy),
# in ~4 s. (At lr 4 rounding-level kernel changes move a digit or two: the Numba mean was 97.9%
# before the speed work of issue 7 changed summation orders in small kernels.)
DEFAULTS = dict(dataset="digits", hidden=[200], activation="sigmoid", loss="bce", optimizer="sgd",
                lr=4.0, l2=1.5e-4, dropout=0.0, epochs=500, batch_size=32, schedule="cosine",
                validation=0.0, seed=0)
DEFAULT_LR = {"sgd": 4.0, "momentum": 0.2, "adam": 1e-3}
# --early-stopping without --validation holds out this share, as scikit-learn's early_stopping does
EARLY_STOPPING_VALIDATION = 0.1
# plain SGD's rate depends on the input width: 0.25 is the rate chosen on a validation split
# for the lecture's 784-100-10 network on MNIST (4.0 saturates its sigmoid layer there)
DEFAULT_LR_28X28 = {"sgd": 0.25}


class UserError(Exception):
    """A problem with the user's input: printed as one sentence, exit code 1."""


class Interrupted(Exception):
    """Ctrl-C, with what was saved: printed as one sentence, exit code 130."""


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run the command line with `argv` (default sys.argv[1:]); returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    try:
        return args.run(args)
    except Interrupted as stop:
        print(stop, file=sys.stderr)
        return 130
    except KeyboardInterrupt:
        print("interrupted (Ctrl-C)", file=sys.stderr)
        return 130
    except MemoryError as error:
        print(f"error: not enough memory: {_one_sentence(error)}", file=sys.stderr)
        return 1
    except (UserError, DatasetError, ModelFileError, FileNotFoundError, ValueError, FloatingPointError,
            OSError) as error:
        print(f"error: {_one_sentence(error)}", file=sys.stderr)
        return 1


def build_parser() -> argparse.ArgumentParser:
    prog = _prog()
    parser = argparse.ArgumentParser(
        prog=prog, description="Train, evaluate and use multilayer perceptrons built "
        f"with autograd-lite. Run '{prog} train' to train on the bundled 8x8 digits.",
        formatter_class=_HelpFormatter)
    parser.add_argument("--version", action="version", version=f"autograd-lite {ag.__version__}",
                        help="print the version and exit")
    sub = parser.add_subparsers(dest="command", metavar="{train,evaluate,predict,explain}")

    train = sub.add_parser("train", help="train a network and report its test accuracy",
                           description="Train a multilayer perceptron. Without options: the lecture's "
                           "network (64-200-10, sigmoid, logistic cost, L2, mini-batch SGD with a cosine "
                           "learning-rate schedule) on the bundled digits.",
                           formatter_class=_HelpFormatter)
    _add_data_options(train)
    train.add_argument("--hidden", action="append", metavar="N[,N...]",
                       help="hidden layer widths, repeatable or a comma list (default: 200)")
    train.add_argument("--activation", choices=("sigmoid", "tanh", "relu"), default=DEFAULTS["activation"],
                       help="activation of the hidden layers")
    train.add_argument("--loss", choices=("bce", "ce"), default=DEFAULTS["loss"],
                       help="bce: the lecture's logistic cost on sigmoid outputs; ce: softmax cross-entropy "
                            "on logits (the output layer is built to match)")
    train.add_argument("--optimizer", choices=("sgd", "momentum", "adam"), default=DEFAULTS["optimizer"],
                       help="sgd: plain; momentum: SGD with Nesterov momentum 0.9; adam")
    train.add_argument("--lr", type=_positive_float, default=None,
                       help="learning rate (default: 4.0 for sgd (0.25 on MNIST and Fashion-MNIST), "
                            "0.2 for momentum, 0.001 for adam)")
    train.add_argument("--l2", type=_nonnegative_float, default=DEFAULTS["l2"],
                       help="L2 penalty lam: adds lam/2 * sum of squared weights to each batch's mean loss")
    train.add_argument("--dropout", type=_probability, default=DEFAULTS["dropout"],
                       help="dropout probability after each hidden layer")
    train.add_argument("--epochs", type=_positive_int, default=DEFAULTS["epochs"],
                       help="passes over the training set")
    train.add_argument("--batch-size", type=_positive_int, default=DEFAULTS["batch_size"],
                       help="1 = stochastic, the training set size = batch gradient descent")
    train.add_argument("--schedule", choices=("cosine", "step", "constant"), default=DEFAULTS["schedule"],
                       help="learning-rate schedule over the epochs")
    train.add_argument("--validation", type=_fraction, default=None, metavar="FRACTION",
                       help="share of the training set held out (stratified) for validation; 0 = none "
                            f"(default: {DEFAULTS['validation']:g}, or {EARLY_STOPPING_VALIDATION:g} with "
                            "--early-stopping)")
    train.add_argument("--early-stopping", type=_positive_int, default=None, metavar="N",
                       help="stop after N epochs without a better validation loss; keep the best weights "
                            "(default: off, train all --epochs)")
    train.add_argument("--seed", type=int, default=DEFAULTS["seed"],
                       help="seed of the weights, the validation split, the batch order and dropout")
    train.add_argument("--ensemble", type=_positive_int, default=1, metavar="K",
                       help="train K models (seeds seed..seed+K-1) and average their probabilities")
    train.add_argument("--save", metavar="MODEL.npz",
                       help="write the trained model (with --ensemble: MODEL-1.npz ... MODEL-K.npz) "
                            "(default: not saved)")
    train.add_argument("--plot", metavar="CURVES.png",
                       help="plot loss and accuracy per epoch (needs matplotlib; .png, .svg, .pdf, ...) "
                            "(default: no plot)")
    train.add_argument("--confusion", action="store_true", help="print the test confusion matrix")
    train.add_argument("--quiet", action="store_true", help="print only the final result")
    train.add_argument("--diagnostics", action="store_true",
                       help="per layer and epoch: gradient norm, weight norm, share of saturated units; "
                            "warn when a layer saturates or its gradients vanish or explode")
    train.add_argument("--detect-anomaly", action="store_true",
                       help="stop at the first operation that makes a NaN or Inf and name it (slower)")
    train.set_defaults(run=run_train)

    ev = sub.add_parser("evaluate", help="test accuracy and confusion matrix of a saved model",
                        formatter_class=_HelpFormatter)
    ev.add_argument("--model", action="append", required=True, metavar="MODEL.npz",
                    help="a model file from 'train --save'; repeat to evaluate an averaged ensemble")
    _add_data_options(ev, dataset_default="the data set the model file names, else digits")
    ev.add_argument("--hidden", action="append", metavar="N[,N...]",
                    help="check that the model has these hidden widths (default: not checked)")
    ev.add_argument("--quiet", action="store_true", help="print only the accuracy")
    ev.set_defaults(run=run_evaluate, dataset=None)   # by default the data set the model file names

    pr = sub.add_parser("predict", help="classify images (.npy arrays, or image files with Pillow)",
                        formatter_class=_HelpFormatter)
    pr.add_argument("--model", action="append", required=True, metavar="MODEL.npz",
                    help="a model file from 'train --save'; repeat to average an ensemble")
    pr.add_argument("files", nargs="+", metavar="FILE",
                    help="a .npy array of raw pixel values (one image or a stack, the model's size), or an "
                         "image file of one digit of any size (cropped, scaled and centred as the data set's)")
    pr.add_argument("--max-value", type=_positive_float, default=None,
                    help="the largest pixel value of the .npy data (default: 16 for 8x8, 255 for 28x28)")
    pr.set_defaults(run=run_predict)

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
    ex.set_defaults(run=run_explain)
    return parser


# ---------------------------------------------------------------- train
def run_train(args: argparse.Namespace) -> int:
    # everything that can be checked without training is checked first, so no run is lost to it
    plot_format = _check_plot_path(args.plot) if args.plot else None
    save_paths = [_member_path(args.save, m, args.ensemble) for m in range(args.ensemble)] if args.save else []
    for path in save_paths:
        check_output_path(path, "--save")
    _check_data_dir(args.data_dir)
    hidden = _parse_hidden(args.hidden) or DEFAULTS["hidden"]
    lr = args.lr
    if lr is None and args.dataset in ("mnist", "fashion-mnist"):
        lr = DEFAULT_LR_28X28.get(args.optimizer)
    if lr is None:
        lr = DEFAULT_LR[args.optimizer]
    say = (lambda *a: None) if args.quiet else print
    saved: List[str] = []
    doing = "while loading the data set"
    try:
        ds = load_dataset(args.dataset, root=args.data_dir, download=not args.no_download, verbose=not args.quiet)
        x_train = preprocess(ds.x_train, ds.max_value, FEATURE_RANGE)
        x_test = preprocess(ds.x_test, ds.max_value, FEATURE_RANGE)
        y_train, y_test = ds.y_train, ds.y_test
        validation, share = None, args.validation
        if share is None:
            share = EARLY_STOPPING_VALIDATION if args.early_stopping else DEFAULTS["validation"]
            if args.early_stopping:
                print(f"warning: --early-stopping without --validation: holding out {share:.0%} of the training "
                      "set (stratified) to watch; set --validation to choose the share", file=sys.stderr)
        if share > 0:
            (x_train, y_train), validation = stratified_split(x_train, y_train, share, seed=args.seed)
        sizes = [x_train.shape[1], *hidden, ds.num_classes]
        say(f"{ds!r}: training on {len(x_train)}, validating on "
            f"{0 if validation is None else len(validation[1])}, testing on {len(x_test)}")
        probabilities, histories = [], []
        for member in range(args.ensemble):
            seed = args.seed + member
            label = f" of ensemble member {member + 1}/{args.ensemble}" if args.ensemble > 1 else ""
            doing = "while building the model" + label
            model = MLP(sizes, activation=args.activation, dropout=args.dropout,
                        output_activation="sigmoid" if args.loss == "bce" else None, seed=seed, dtype=np.float32)
            if member == 0:
                say(f"{model!r}\nloss {args.loss}, optimizer {args.optimizer} (lr {lr:g}, {args.schedule} "
                    f"schedule), l2 {args.l2:g}, batch size {args.batch_size}, {args.epochs} epochs")
            if args.ensemble > 1:
                say(f"-- ensemble member {member + 1}/{args.ensemble} (seed {seed})")
            optimizer = make_optimizer(args.optimizer, model, lr)
            schedule = make_schedule(args.schedule, optimizer, args.epochs)
            started = time.perf_counter()
            doing = "while training" + label   # a second Ctrl-C stops fit at once, unsaved
            try:
                with _training_messages(model, args, lr):
                    history = fit(model, args.loss, optimizer, (x_train, y_train), validation=validation,
                                  epochs=args.epochs, batch_size=args.batch_size, l2=args.l2, schedule=schedule,
                                  early_stopping=args.early_stopping, seed=seed, verbose=not args.quiet,
                                  anomaly=args.detect_anomaly, diagnostics=args.diagnostics)
            except TrainingInterrupted as stop:
                doing = f"while saving the weights after epoch {stop.epoch}, batch {stop.batch}{label}"
                if save_paths:
                    save(model, save_paths[member], Preprocessing.for_dataset(ds, FEATURE_RANGE))
                    saved.append(save_paths[member])
                raise Interrupted(f"interrupted (Ctrl-C) after epoch {stop.epoch}/{stop.epochs}, batch "
                                  f"{stop.batch}/{stop.batches}{label}: "
                                  f"{_saved_summary(args.save, save_paths, saved, partial=True)}") from None
            seconds = time.perf_counter() - started
            if save_paths:
                doing = "while saving" + label
                save(model, save_paths[member], Preprocessing.for_dataset(ds, FEATURE_RANGE))
                saved.append(save_paths[member])
            doing = "while testing" + label
            histories.append(history)
            result = evaluate(model, x_test, y_test, loss=args.loss)
            probabilities.append(predict_proba(model, x_test))
            name = f"model {member + 1} " if args.ensemble > 1 else ""
            print(f"{name}test accuracy: {100 * result.accuracy:.2f}% "
                  f"({int(round(result.accuracy * result.samples))}/{result.samples}), test loss "
                  f"{result.loss:.4f}, {history.epochs} epochs in {seconds:.1f}s")
            if save_paths:
                say(f"saved {save_paths[member]}")
        doing = "after training"
        if args.ensemble > 1:
            averaged = np.mean(probabilities, axis=0)
            accuracy = float(np.mean(np.argmax(averaged, axis=1) == y_test))
            print(f"ensemble of {args.ensemble} (averaged probabilities) test accuracy: {100 * accuracy:.2f}% "
                  f"({int(round(accuracy * len(y_test)))}/{len(y_test)})")
        if args.confusion:
            predicted = np.argmax(np.mean(probabilities, axis=0), axis=1)
            table = Evaluation.of_predictions(y_test, predicted, ds.num_classes).confusion_table(ds.classes)
            print("confusion matrix (rows: true class)\n" + table)
        if args.plot:
            doing = "while plotting"
            _plot(histories, args.plot, plot_format)
            say(f"saved {args.plot}")
    except KeyboardInterrupt:
        raise Interrupted(f"interrupted (Ctrl-C) {doing}: {_saved_summary(args.save, save_paths, saved)}") from None
    return 0


def _saved_summary(save_option: Optional[str], paths: List[str], saved: List[str], partial: bool = False) -> str:
    """What an interrupted `train` leaves behind, e.g. 'saved m-1.npz, m-2.npz (the last one as trained
    so far); member 3 was not saved'."""
    if not save_option:
        return "nothing was saved (no --save)"
    if not saved:
        return "nothing was saved"
    text = "saved " + ", ".join(saved)
    if partial:
        text += " (the last one as trained so far)" if len(paths) > 1 else " (the weights so far)"
    missing = len(paths) - len(saved)
    if missing:
        first = len(saved) + 1
        text += (f"; member {first} was not saved" if missing == 1 else
                 f"; members {first}-{len(paths)} were not saved")
    return text


def _check_data_dir(data_dir: Optional[str]) -> None:
    """--data-dir may be missing (a download creates it) but not a file."""
    if data_dir and Path(data_dir).expanduser().exists() and not Path(data_dir).expanduser().is_dir():
        raise UserError(f"--data-dir {data_dir} is a file; give the folder where data sets are kept")


@contextlib.contextmanager
def _training_messages(model: MLP, args: argparse.Namespace, lr: float):
    """Around fit: each TrainingWarning printed as a 'warning: ...' line on stderr when it comes,
    NumPy's overflow warnings silenced (fit reports a non-finite loss itself), and a NaN or an Inf
    explained in one sentence that names the option to change."""
    with warnings.catch_warnings(), np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        warnings.simplefilter("always", TrainingWarning)
        show_others = warnings.showwarning

        def show(message, category, filename, lineno, file=None, line=None):
            if issubclass(category, TrainingWarning):
                print(f"warning: {message}", file=sys.stderr, flush=True)
            else:
                show_others(message, category, filename, lineno, file, line)

        warnings.showwarning = show
        try:
            yield
        except ag.AnomalyError as error:
            raise UserError(_anomaly_sentence(error, model, lr)) from None
        except NonFiniteError as error:
            raise UserError(_non_finite_sentence(error, args, lr)) from None
        except FloatingPointError as error:
            if args.detect_anomaly:
                raise
            raise UserError(f"{_one_sentence(error)}; --detect-anomaly names the operation that "
                            "made it") from None


def _non_finite_sentence(error: NonFiniteError, args: argparse.Namespace, lr: float) -> str:
    """fit's NonFiniteError with its cause said as the option to change (the one the user set, when
    the product of --lr and --l2 is at fault)."""
    l2 = args.l2
    lr_set, l2_set = args.lr is not None, args.l2 != DEFAULTS["l2"]
    lower = "--lr" if lr_set and not l2_set else "--l2" if l2_set and not lr_set else "--lr or --l2"
    reasons = {
        "lr": f"the learning rate --lr {lr:g} is likely too large",
        "lr_l2": (f"--lr {lr:g} times --l2 {l2:g} is {lr * l2:g}, so large that each step's weight decay "
                  f"overshoots; lower {lower}"),
        "l2_penalty": f"--l2 {l2:g} is too large (the penalty overflows before any update)",
    }
    if error.cause not in reasons:
        return f"{_one_sentence(error)}; --detect-anomaly names the operation that made it"
    return f"{error.what} {error.where}: {reasons[error.cause]}"


def _anomaly_sentence(error: BaseException, model: MLP, lr: float) -> str:
    """The anomaly report's first line, without the code location (inside this command), and why."""
    first = str(error).strip().splitlines()[0]
    for cut in (", created at", ". The '"):
        first = first.split(cut)[0]
    first = first.removeprefix("anomaly: ")
    broken = [name for name, p in model.named_parameters() if not np.all(np.isfinite(p.data))]
    if broken:
        first += (f", because {', '.join(broken)} had become NaN/Inf in the previous update: the "
                  f"learning rate ({lr:g}) is far too large")
    return f"anomaly mode: {first}"


# ---------------------------------------------------------------- evaluate
def run_evaluate(args: argparse.Namespace) -> int:
    models = _load_models(args.model, _parse_hidden(args.hidden))
    _check_data_dir(args.data_dir)
    recorded = models[0].preprocessing
    name = args.dataset or (recorded and recorded.dataset) or DEFAULTS["dataset"]
    ds = load_dataset(name, root=args.data_dir, download=not args.no_download, verbose=not args.quiet)
    width, pixels = models[0].sizes[0], int(np.prod(ds.image_shape))
    if pixels != width or models[0].sizes[-1] != ds.num_classes:
        raise UserError(f"{args.model[0]} takes {width} inputs and gives {models[0].sizes[-1]} classes, "
                        f"but {ds.name} has {pixels} pixels per image and {ds.num_classes} classes")
    for m in models:      # a file without a record: the scaling train has always used
        m.preprocessing = m.preprocessing or Preprocessing.for_dataset(ds, FEATURE_RANGE)
    probs = np.mean([predict_proba(m, ds.x_test * (m.preprocessing.pixel_max / ds.max_value)) for m in models],
                    axis=0)
    predicted = np.argmax(probs, axis=1)
    accuracy = float(np.mean(predicted == ds.y_test))
    what = "ensemble of %d" % len(models) if len(models) > 1 else args.model[0]
    print(f"{what} on {ds.name} test set: accuracy {100 * accuracy:.2f}% "
          f"({int(np.sum(predicted == ds.y_test))}/{len(ds.y_test)})")
    if not args.quiet:
        table = Evaluation.of_predictions(ds.y_test, predicted, ds.num_classes).confusion_table(ds.classes)
        print("confusion matrix (rows: true class)\n" + table)
    return 0


# ---------------------------------------------------------------- predict
def run_predict(args: argparse.Namespace) -> int:
    models = _load_models(args.model, None)
    width = models[0].sizes[0]
    for m in models:      # a file without a record: the scaling train has always used
        m.preprocessing = m.preprocessing or Preprocessing.guess(width, args.max_value, FEATURE_RANGE)
    prep = models[0].preprocessing
    if prep is None:
        raise UserError(f"the model takes {width} inputs, which is no known image size; give --max-value")
    if prep.width != width:
        raise UserError(f"{args.model[0]} records images of shape {prep.input_shape} but takes "
                        f"{model_input(width, 0)}; the file is inconsistent")
    data_max = args.max_value or prep.pixel_max
    for name in args.files:
        images = read_images(name, prep.input_shape, data_max)
        if name.lower().endswith(".npy") and looks_scaled(images, data_max):
            print(f"warning: {name}: {looks_scaled(images, data_max)}", file=sys.stderr)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)      # said once above
            probs = np.mean([predict_proba(m, images * (m.preprocessing.pixel_max / data_max)) for m in models],
                            axis=0)
        for i, p in enumerate(probs):
            where = name if len(probs) == 1 else f"{name}[{i}]"
            print(f"{where}: {describe_top(p, prep.class_names)}")
            if p.max() < UNSURE_BELOW:
                print(f"warning: {where}: the model is unsure (best probability {p.max():.3f}); is it one "
                      "object, centred, on a plain background?", file=sys.stderr)
    return 0


# ---------------------------------------------------------------- explain
def run_explain(args: argparse.Namespace) -> int:
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
        _write_text(args.dot, ag.to_dot(J, names=model, title="the logistic cost of " + network))
    text = ag.explain(J, names=model, file=False)
    print(text, end="")
    print(_lecture_legend(text, args.samples, args.hidden, ds.num_classes))
    if args.dot:
        print(f"wrote the graph to {args.dot} (draw it with: dot -Tsvg {args.dot} -o graph.svg)")
    return 0


def _lecture_legend(text: str, samples: int, hidden: int, classes: int) -> str:
    """How the printed steps map to the lecture's delta_out / delta_h equations."""
    steps = [int(n) for n, name in re.findall(r"^\s*(\d+)\. (\S+)", text, re.M) if name.startswith("linear")]
    if len(steps) != 2:
        return ""
    out, hid = steps
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


def _write_text(path: str, text: str) -> None:
    """Write text to path atomically (a temporary file in the same folder, then os.replace)."""
    with atomic_write(path, "explain --dot", "w") as f:
        f.write(text)


# ---------------------------------------------------------------- helpers
class _HelpFormatter(argparse.HelpFormatter):
    """Each option's default shown once: '(default: X)' is added unless the help text says it
    already; flags (store_true) and options whose default is None (their help says what happens
    instead) get none."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if ("(default" in text or not action.option_strings or action.nargs == 0 or action.required
                or action.default is None or action.default is argparse.SUPPRESS):
            return text
        return text + " (default: %(default)s)"


def _prog() -> str:
    """The command's name in usage lines: the console script's, or `python -m nn`."""
    return "autograd-lite" if Path(sys.argv[0]).stem == "autograd-lite" else "python -m nn"


def _add_data_options(p: argparse.ArgumentParser, dataset_default: Optional[str] = None) -> None:
    """--dataset, --data-dir, --no-download; `dataset_default` says in words what a command that
    sets --dataset's default to None does without it."""
    p.add_argument("--dataset", default=DEFAULTS["dataset"], metavar="NAME",
                   help="digits (bundled), mnist, fashion-mnist, or a folder of IDX files"
                        + (f" (default: {dataset_default})" if dataset_default else ""))
    p.add_argument("--data-dir", default=None, metavar="DIR",
                   help="where mnist / fashion-mnist are cached (default: $AUTOGRAD_LITE_DATA or "
                        "~/.cache/autograd-lite)")
    p.add_argument("--no-download", action="store_true", help="never download; fail if files are missing")


def _parse_hidden(values: Optional[List[str]]) -> List[int]:
    widths = []
    for value in values or []:
        for part in value.split(","):
            part = part.strip()
            if not part.isdigit() or int(part) < 1:
                raise UserError(f"--hidden takes positive integers (e.g. --hidden 100 or --hidden 256,128), "
                                f"got {value!r}")
            widths.append(int(part))
    return widths


def _load_models(paths: Sequence[str], hidden: Optional[List[int]]) -> List[MLP]:
    models = []
    for path in paths:
        if not os.path.isfile(path):
            raise UserError(f"no model file at {path}")
        model = load(path)
        if not isinstance(model, MLP):
            raise UserError(f"{path} does not hold an MLP written by 'python -m nn train --save'")
        if hidden and model.sizes[1:-1] != hidden:
            raise UserError(f"{path} has hidden layers {model.sizes[1:-1]}, which does not match "
                            f"--hidden {','.join(map(str, hidden))}")
        if models and model.sizes != models[0].sizes:
            raise UserError(f"{path} has layer sizes {model.sizes} but {paths[0]} has {models[0].sizes}; "
                            "an ensemble needs models of the same inputs and classes")
        models.append(model)
    return models


def make_optimizer(name: str, model: MLP, lr: float):
    """The CLI's optimizers: "sgd" (plain), "momentum" (Nesterov, 0.9), "adam"."""
    if name == "sgd":
        return SGD(model, lr=lr)
    if name == "momentum":
        return SGD(model, lr=lr, momentum=0.9, nesterov=True)
    return Adam(model, lr=lr)


def make_schedule(name: str, optimizer, epochs: int):
    """The CLI's schedules: "cosine" (to 0 over the epochs), "step" (x0.1 every third), "constant"."""
    if name == "cosine":
        return CosineDecay(optimizer, total_epochs=epochs)
    if name == "step":
        return StepDecay(optimizer, step_size=max(1, epochs // 3), gamma=0.1)
    return None


def _member_path(path: str, member: int, count: int) -> str:
    if count == 1:
        return path
    p = Path(path)
    return str(p.with_name(f"{p.stem}-{member + 1}{p.suffix or '.npz'}"))


def _check_plot_path(path: str) -> str:
    """The format matplotlib will write `path` in (its extension), or a UserError before any training."""
    try:
        from matplotlib.backend_bases import FigureCanvasBase
    except ImportError:
        raise UserError("--plot needs matplotlib, which is not installed: "
                        "pip install 'autograd-lite[plot]'") from None
    supported = FigureCanvasBase.get_supported_filetypes()
    extension = Path(path).suffix.lower().lstrip(".")
    if extension not in supported:
        what = f"'.{extension}' files" if extension else "a file name without an extension"
        raise UserError(f"--plot {path}: matplotlib cannot write {what}; use one of "
                        f"{', '.join('.' + e for e in sorted(supported))}")
    check_output_path(path, "--plot")
    return extension


def _plot(histories, path: str, file_format: str) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(10, 4))
    for i, h in enumerate(histories):
        tag = f" (model {i + 1})" if len(histories) > 1 else ""
        epochs = range(1, h.epochs + 1)
        for key, style in (("loss", "-"), ("val_loss", "--")):
            if key in h.history:
                ax_loss.plot(epochs, h[key], style, label=key + tag)
        for key, style in (("accuracy", "-"), ("val_accuracy", "--")):
            if key in h.history:
                ax_acc.plot(epochs, h[key], style, label=key + tag)
    ax_loss.set(xlabel="epoch", ylabel="loss", title="loss")
    ax_acc.set(xlabel="epoch", ylabel="accuracy", title="accuracy")
    ax_loss.legend()
    ax_acc.legend()
    fig.tight_layout()
    with atomic_path(path, "--plot") as tmp:
        fig.savefig(tmp, format=file_format, dpi=100)
    plt.close(fig)


def _one_sentence(error: BaseException) -> str:
    """The error's message on one line (multi-line messages, e.g. from load_state_dict, joined)."""
    text = str(error).strip() or type(error).__name__
    return " ".join(line.strip() for line in text.splitlines() if line.strip())


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
    if not np.isfinite(value):
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
