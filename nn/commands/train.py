"""`python -m nn train`: train a network (or an ensemble) on a data set with that data set's
defaults for every option not given, report the test accuracy, and save the model and its curves.

Everything that can be checked without training (output paths, the data folder) is checked
first, so no run is lost to it. Ctrl-C stops after the current batch and saves the weights so far
(with --save); a NaN or an Inf ends with one sentence naming the option to change.
"""
from __future__ import annotations

import argparse
import contextlib
import os
import sys
import time
import warnings
from pathlib import Path
from typing import Any, Iterator, List, Optional

import numpy as np

import autograd_lite as ag
from autograd_lite.files import check_output_path

from ..data import preprocess, stratified_split
from ..datasets import load_dataset
from ..datasets.defaults import FEATURE_RANGE, training_defaults
from ..diagnostics import TrainingWarning
from ..distributed import fit_data_parallel
from ..images import Preprocessing
from ..cnn import CNN
from ..layers import MLP
from ..module import Module
from ..optim import get_optimizer, get_schedule
from ..serialization import save
from ..train import Evaluation, History, NonFiniteError, TrainingInterrupted, evaluate, fit, predict_proba
from .common import Interrupted, UserError, check_data_dir, one_sentence, parse_hidden

# --early-stopping without --validation holds out this share, as scikit-learn's early_stopping does
EARLY_STOPPING_VALIDATION = 0.1
# the options whose default depends on the data set (nn/datasets/defaults.py)
PER_DATASET = ("activation", "loss", "optimizer", "l2", "dropout", "epochs", "batch_size", "schedule",
               "kernel_size", "batch_norm")
# the options that only the CNN takes
CNN_ONLY = ("channels", "kernel_size", "padding", "batch_norm")


def run(args: argparse.Namespace) -> int:
    """Train as `args` say (options left None take the data set's defaults); exit code 0.

    With --data-parallel (under mpiexec) every rank runs this; rank 0 alone prints and saves."""
    comm = _data_parallel_world(args) if getattr(args, "data_parallel", False) else None
    if comm is not None and comm.Get_rank() != 0:
        args.save = args.plot = None
        with open(os.devnull, "w") as quiet, contextlib.redirect_stdout(quiet):
            return _train(args, comm)
    return _train(args, comm)


def _train(args: argparse.Namespace, comm: Any) -> int:
    plot_path = _check_plot_path(args.plot) if args.plot else None
    save_paths = [_member_path(args.save, m, args.ensemble) for m in range(args.ensemble)] if args.save else []
    for path in save_paths:
        check_output_path(path, "--save")
    history_paths = ([_member_path(args.history, m, args.ensemble, ".csv") for m in range(args.ensemble)]
                     if args.history else [])
    for path in history_paths:
        check_output_path(path, "--history")
    check_data_dir(args.data_dir)
    hidden = parse_hidden(args.hidden)
    say = (lambda *a: None) if args.quiet else print
    saved: List[str] = []
    doing = "while loading the data set"
    try:
        ds = load_dataset(args.dataset, root=args.data_dir, download=not args.no_download, verbose=not args.quiet)
        s = resolve(args, ds.name, ds.image_shape, hidden)
        if s.arch == "cnn" and len(ds.image_shape) != 2:
            raise UserError(f"--arch cnn needs images; {ds.name} holds samples of shape {ds.image_shape}")
        x_train = preprocess(ds.x_train, ds.max_value, FEATURE_RANGE)
        x_test = preprocess(ds.x_test, ds.max_value, FEATURE_RANGE)
        y_train, y_test = ds.y_train, ds.y_test
        validation = None
        if args.validation is None and args.early_stopping:
            print(f"warning: --early-stopping without --validation: holding out {s.validation:.0%} of the training "
                  "set (stratified) to watch; set --validation to choose the share", file=sys.stderr)
        if s.validation > 0:
            (x_train, y_train), validation = stratified_split(x_train, y_train, s.validation, seed=args.seed)
        sizes = [x_train.shape[1], *s.hidden, ds.num_classes]
        say(f"{ds!r}: training on {len(x_train)}, validating on "
            f"{0 if validation is None else len(validation[1])}, testing on {len(x_test)}")
        probabilities, histories = [], []
        trained = None
        if _members_on_workers(args, s):
            doing = "while training the ensemble on workers"
            trained = _train_members(args, s, ds)
        for member in range(args.ensemble):
            seed = args.seed + member
            label = f" of ensemble member {member + 1}/{args.ensemble}" if args.ensemble > 1 else ""
            doing = "while building the model" + label
            model = make_model(s, sizes, ds.image_shape, seed)
            if member == 0:
                say(f"{model!r}\nloss {s.loss}, optimizer {s.optimizer} (lr {s.lr:g}, {s.schedule} "
                    f"schedule), l2 {s.l2:g}, batch size {s.batch_size}, {s.epochs} epochs")
            if args.ensemble > 1:
                say(f"-- ensemble member {member + 1}/{args.ensemble} (seed {seed})")
            optimizer = get_optimizer(s.optimizer, model, s.lr)
            schedule = get_schedule(s.schedule, optimizer, s.epochs)
            started = time.perf_counter()
            doing = "while training" + label   # a second Ctrl-C stops fit at once, unsaved
            try:
                with _training_messages(model, args, s):
                    if trained is not None:           # trained on a worker: its weights and history
                        history = _trained_member(model, trained[member])
                    elif comm is not None:
                        history = fit_data_parallel(model, s.loss, optimizer, (x_train, y_train), comm,
                                                    validation=validation, epochs=s.epochs,
                                                    batch_size=s.batch_size, l2=s.l2, schedule=schedule,
                                                    seed=seed, verbose=not args.quiet)
                    else:
                        history = fit(model, s.loss, optimizer, (x_train, y_train), validation=validation,
                                      epochs=s.epochs, batch_size=s.batch_size, l2=s.l2, schedule=schedule,
                                      early_stopping=args.early_stopping, seed=seed,
                                      verbose=0 if args.quiet else args.verbose, log_every=args.log_every,
                                      anomaly=args.detect_anomaly, diagnostics=args.diagnostics,
                                      compile=not args.no_compile)
            except TrainingInterrupted as stop:
                doing = f"while saving the weights after epoch {stop.epoch}, batch {stop.batch}{label}"
                if save_paths:
                    save(model, save_paths[member], Preprocessing.for_dataset(ds, FEATURE_RANGE))
                    saved.append(save_paths[member])
                raise Interrupted(f"interrupted (Ctrl-C) after epoch {stop.epoch}/{stop.epochs}, batch "
                                  f"{stop.batch}/{stop.batches}{label}: "
                                  f"{_saved_summary(args.save, save_paths, saved, partial=True)}") from None
            seconds = trained[member]["seconds"] if trained is not None else time.perf_counter() - started
            if history_paths:
                history.write_csv(history_paths[member])
            if save_paths:
                doing = "while saving" + label
                save(model, save_paths[member], Preprocessing.for_dataset(ds, FEATURE_RANGE))
                saved.append(save_paths[member])
            doing = "while testing" + label
            histories.append(history)
            result = evaluate(model, x_test, y_test, loss=s.loss)
            probabilities.append(predict_proba(model, x_test))
            name = f"model {member + 1} " if args.ensemble > 1 else ""
            print(f"{name}test accuracy: {100 * result.accuracy:.2f}% ({result.correct}/{result.samples}), "
                  f"test loss {result.loss:.4f}, {history.epochs} epochs in {seconds:.1f}s")
            if save_paths:
                say(f"saved {save_paths[member]}")
        doing = "after training"
        ensemble = Evaluation.of_predictions(y_test, np.argmax(np.mean(probabilities, axis=0), axis=1),
                                             ds.num_classes)
        if args.ensemble > 1:
            print(f"ensemble of {args.ensemble} (averaged probabilities) test accuracy: "
                  f"{100 * ensemble.accuracy:.2f}% ({ensemble.correct}/{ensemble.samples})")
        if args.confusion:
            print("confusion matrix (rows: true class)\n" + ensemble.confusion_table(ds.classes))
        if plot_path:
            doing = "while plotting"
            histories[0].plot(plot_path, others=histories[1:])
            say(f"saved {plot_path}")
    except KeyboardInterrupt:
        raise Interrupted(f"interrupted (Ctrl-C) {doing}: {_saved_summary(args.save, save_paths, saved)}") from None
    return 0


def _data_parallel_world(args: argparse.Namespace) -> Any:
    """MPI's world for --data-parallel, after refusing the options it does not combine with."""
    for flag, given in (("--ensemble", args.ensemble > 1), ("--early-stopping", args.early_stopping),
                        ("--diagnostics", args.diagnostics), ("--detect-anomaly", args.detect_anomaly),
                        ("--arch cnn", getattr(args, "arch", "mlp") != "mlp")):
        if given:
            raise UserError(f"--data-parallel trains one MLP with plain epochs; {flag} is not supported with it")
    from ..distributed import world
    try:
        return world()
    except ImportError as error:
        raise UserError(str(error)) from None


def _members_on_workers(args: argparse.Namespace, s: argparse.Namespace) -> bool:
    """An MLP ensemble trains its members in parallel on --workers (default: the cores) or a Dask
    --scheduler, unless --workers 1 or an option that reports during training asks for one process."""
    if args.ensemble < 2 or s.arch != "mlp" or args.diagnostics or args.detect_anomaly:
        return False
    return args.scheduler is not None or args.workers != 1


def _train_members(args: argparse.Namespace, s: argparse.Namespace, ds: Any) -> List[dict]:
    """Each member's weights, history and seconds, trained on local workers or a Dask cluster."""
    from ..executors import default_workers
    from ..sweep import OPTIONS, train_members
    from ..trials import TrialsInterrupted
    config = {name: getattr(s, name) for name in OPTIONS}     # the options a worker's trial takes
    jobs = [{"config": config, "dataset": args.dataset, "data_dir": args.data_dir, "seed": args.seed + member,
             "validation": s.validation, "split_seed": args.seed, "early_stopping": args.early_stopping,
             "classes": ds.num_classes, "compile": not args.no_compile} for member in range(args.ensemble)]
    workers = args.workers or min(default_workers(), args.ensemble)
    if not args.quiet:
        where = f"the Dask cluster at {args.scheduler}" if args.scheduler else f"{workers} local worker processes"
        print(f"training the {args.ensemble} members on {where}")
    try:
        return train_members(jobs, workers=None if args.scheduler else workers, scheduler=args.scheduler)
    except TrialsInterrupted:
        raise KeyboardInterrupt from None
    except ImportError as error:
        raise UserError(str(error)) from None


def _trained_member(model: Module, trained: dict) -> History:
    """Load a member trained on a worker into `model`; its History."""
    model.load_state_dict(trained["state"])
    history = History(history=trained["history"], best_epoch=trained["best_epoch"],
                      stopped_early=trained["stopped_early"])
    return history


def make_model(s: argparse.Namespace, sizes: List[int], image_shape: tuple, seed: int) -> Module:
    """The network the settings `s` describe, in float32: an MLP of `sizes`, or a CNN for images of
    `image_shape` with as many classes as the MLP would have outputs."""
    if s.arch == "cnn":
        return CNN(image_shape, sizes[-1], channels=s.channels, kernel_size=s.kernel_size, padding=s.padding,
                   hidden=s.hidden,
                   batch_norm=s.batch_norm, dropout=s.dropout, seed=seed, dtype=np.float32)
    return MLP(sizes, activation=s.activation, dropout=s.dropout,
               output_activation="sigmoid" if s.loss == "bce" else None, seed=seed, dtype=np.float32)


def resolve(args: argparse.Namespace, dataset: str, image_shape: tuple, hidden: List[int]) -> argparse.Namespace:
    """The training settings: each option the user gave, else the data set's default for the
    architecture (the learning rate that of the chosen optimizer; the validation share 10% with
    --early-stopping, else the default). Options that the architecture does not take are refused."""
    arch = getattr(args, "arch", "mlp")
    if arch == "mlp":
        given = [name for name in CNN_ONLY if getattr(args, name, None) is not None]
        if given:
            raise UserError(f"--{given[0].replace('_', '-')} applies to --arch cnn only; the MLP is set by "
                            "--hidden and --activation")
    else:
        if args.activation not in (None, "relu"):
            raise UserError(f"--activation {args.activation} applies to --arch mlp only; the CNN uses ReLU")
        if args.loss not in (None, "ce"):
            raise UserError(f"--loss {args.loss} applies to --arch mlp only; the CNN gives logits and trains "
                            "with --loss ce")
    d = training_defaults(dataset, arch=arch, image_shape=image_shape)
    s = argparse.Namespace(**{key: getattr(d, key) if getattr(args, key, None) is None else getattr(args, key)
                              for key in PER_DATASET})
    s.arch = arch
    s.hidden = hidden or list(d.hidden)
    s.channels = _widths(args.channels, "--channels", 1) if getattr(args, "channels", None) else list(d.channels)
    if getattr(args, "padding", None):
        s.padding = _widths(args.padding, "--padding", 0)
    else:   # the data set's, when it is for as many blocks; else half the kernel (None)
        s.padding = list(d.padding) if len(d.padding) == len(s.channels) and s.kernel_size == d.kernel_size else None
    s.lr = args.lr if args.lr is not None else d.lr[s.optimizer]
    s.validation = (args.validation if args.validation is not None
                    else EARLY_STOPPING_VALIDATION if args.early_stopping else d.validation)
    return s


def _widths(value: str, option: str, minimum: int) -> List[int]:
    """A comma list option (--channels, --padding) as a list of whole numbers >= `minimum`."""
    parts = [part.strip() for part in value.split(",")]
    if not all(part.isdigit() and int(part) >= minimum for part in parts):
        kind = "positive integers" if minimum else "whole numbers"
        raise UserError(f"{option} takes {kind}, e.g. {option} {'6,16' if minimum else '2,0'}; got {value!r}")
    return [int(part) for part in parts]


def _member_path(path: str, member: int, count: int, suffix: str = ".npz") -> str:
    """`path` itself for one model; for an ensemble member m, PATH-m (with `suffix` when `path` has none)."""
    if count == 1:
        return path
    p = Path(path)
    return str(p.with_name(f"{p.stem}-{member + 1}{p.suffix or suffix}"))


def _check_plot_path(path: str) -> str:
    """`path`, checked before any training: matplotlib is there and can write its extension."""
    try:
        formats = History.plot_formats()
    except ImportError:
        raise UserError("--plot needs matplotlib, which is not installed: pip install 'autograd-lite[plot]'") from None
    extension = Path(path).suffix.lower().lstrip(".")
    if extension not in formats:
        what = f"'.{extension}' files" if extension else "a file name without an extension"
        raise UserError(f"--plot {path}: matplotlib cannot write {what}; use one of "
                        f"{', '.join('.' + e for e in sorted(formats))}")
    check_output_path(path, "--plot")
    return path


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


@contextlib.contextmanager
def _training_messages(model: Module, args: argparse.Namespace, s: argparse.Namespace) -> Iterator[None]:
    """Around fit: each TrainingWarning printed as a 'warning: ...' line on stderr when it comes,
    NumPy's overflow warnings silenced (fit reports a non-finite loss itself), and a NaN or an Inf
    said in one sentence that names the option to change."""
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
            broken = [name for name, p in model.named_parameters() if not np.all(np.isfinite(p.data))]
            because = (f", because {', '.join(broken)} had become NaN/Inf in the previous update: the learning "
                       f"rate ({s.lr:g}) is far too large" if broken else "")
            raise UserError(f"anomaly mode: {error.summary}{because}") from None
        except NonFiniteError as error:
            raise UserError(_non_finite_sentence(error, args, s)) from None
        except FloatingPointError as error:
            if args.detect_anomaly:
                raise
            raise UserError(f"{one_sentence(error)}; --detect-anomaly names the operation that made it") from None


def _non_finite_sentence(error: NonFiniteError, args: argparse.Namespace, s: argparse.Namespace) -> str:
    """fit's NonFiniteError composed from its fields (what, where, cause) with the cause said as the
    option to change (the one the user set, when the product of --lr and --l2 is at fault)."""
    lr_set, l2_set = args.lr is not None, args.l2 is not None
    lower = "--lr" if lr_set and not l2_set else "--l2" if l2_set and not lr_set else "--lr or --l2"
    reasons = {
        "lr": f"the learning rate --lr {s.lr:g} is likely too large",
        "lr_l2": (f"--lr {s.lr:g} times --l2 {s.l2:g} is {s.lr * s.l2:g}, so large that each step's weight decay "
                  f"overshoots; lower {lower}"),
        "l2_penalty": f"--l2 {s.l2:g} is too large (the penalty overflows before any update)",
    }
    if error.cause not in reasons:
        return f"{one_sentence(error)}; --detect-anomaly names the operation that made it"
    return f"{error.what} {error.where}: {reasons[error.cause]}"
