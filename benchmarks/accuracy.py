"""Test accuracy of the CLI's configurations on real data: a table of accuracy, epochs and time.

Configurations (each the same as a `python -m nn train` command line, printed in the table):
  digits-default   the CLI defaults on the bundled 8x8 digits (the lecture's network)
  lecture          784-100-10, sigmoid, logistic cost (BCE on one-hot targets), L2, mini-batch
                   100, plain SGD with a cosine learning-rate schedule
  best             two ReLU hidden layers, dropout, softmax cross-entropy, Adam
  cnn              the CLI's `--arch cnn` defaults for the data set (nn.CNN, LeNet-5-style: conv blocks
                   with batch norm, ReLU and max pooling, dense ReLU layers, dropout, Adam)
It is a benchmark, not a test: on MNIST it takes many minutes on two cores.

    python benchmarks/accuracy.py                                   # the digits defaults (mlp, cnn)
    python benchmarks/accuracy.py --dataset mnist --data-dir DIR    # lecture, best and cnn on MNIST
        [--configs lecture,best] [--epochs N] [--seed S] [--json PATH] [--plot PATH]
"""
from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from typing import Dict, List

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, ".."))
import nn  # noqa: E402
from nn.datasets.defaults import FEATURE_RANGE, TrainingDefaults, training_defaults  # noqa: E402
from nn.optim import get_optimizer, get_schedule  # noqa: E402
from nn.data import preprocess, stratified_split  # noqa: E402
from nn.datasets import load_dataset  # noqa: E402
from report import pyplot, save_figure, write_json  # noqa: E402


def _config(d: TrainingDefaults) -> dict:
    """A data set's training defaults (nn/datasets/defaults.py) as a configuration of this script."""
    keys = ("activation", "loss", "optimizer", "l2", "dropout", "epochs", "batch_size", "schedule", "validation")
    cfg = dict(hidden=list(d.hidden), lr=d.lr[d.optimizer], **{k: getattr(d, k) for k in keys})
    if d.channels:
        cfg.update(arch="cnn", channels=list(d.channels), kernel_size=d.kernel_size, padding=list(d.padding),
                   batch_norm=d.batch_norm)
    return cfg


CONFIGS: Dict[str, dict] = {
    "digits-default": _config(training_defaults("digits")),
    # MNIST's defaults, chosen on a stratified 10,000-image validation split of its training set
    "lecture": _config(training_defaults("mnist")),
    "best": dict(hidden=[512, 256], activation="relu", loss="ce", optimizer="adam", lr=1e-3,
                 l2=0.0, dropout=0.2, epochs=20, batch_size=128, schedule="cosine", validation=0.0),
}
# the CLI's --arch cnn defaults of the data set being run (filled in by `main`)
CNN_CONFIG = "cnn"
DEFAULT_CONFIGS = {"digits": ["digits-default", CNN_CONFIG], "mnist": ["lecture", "best", CNN_CONFIG],
                   "fashion-mnist": ["lecture", "best", CNN_CONFIG]}


def command_line(name: str, cfg: dict, dataset: str) -> str:
    """The `python -m nn train` command that trains the same configuration."""
    parts = ["python -m nn train"]
    if dataset != "digits":
        parts.append(f"--dataset {dataset} --data-dir DIR")
    if name == "digits-default":
        return " ".join(parts)
    if name == CNN_CONFIG:
        default = _config(training_defaults(dataset, arch="cnn"))
        parts.append("--arch cnn")
        parts += [f"--{key.replace('_', '-')} {cfg[key]:g}" for key in ("epochs",) if cfg[key] != default[key]]
        return " ".join(parts)
    parts.append("--hidden " + ",".join(map(str, cfg["hidden"])))
    for key in ("activation", "loss", "optimizer", "lr", "l2", "dropout", "epochs", "batch_size",
                "schedule", "validation"):
        parts.append(f"--{key.replace('_', '-')} {cfg[key]:g}" if isinstance(cfg[key], float)
                     else f"--{key.replace('_', '-')} {cfg[key]}")
    return " ".join(parts)


def run(cfg: dict, ds, seed: int, verbose: bool) -> dict:
    x_train = preprocess(ds.x_train, ds.max_value, FEATURE_RANGE)
    x_test = preprocess(ds.x_test, ds.max_value, FEATURE_RANGE)
    y_train = ds.y_train
    validation = None
    if cfg["validation"] > 0:
        (x_train, y_train), validation = stratified_split(x_train, y_train, cfg["validation"], seed=seed)
    if cfg.get("arch") == "cnn":
        model = nn.CNN(ds.image_shape, ds.num_classes, channels=cfg["channels"], kernel_size=cfg["kernel_size"],
                       padding=cfg["padding"], hidden=cfg["hidden"], batch_norm=cfg["batch_norm"], dropout=cfg["dropout"], seed=seed,
                       dtype=np.float32)
    else:
        model = nn.MLP([x_train.shape[1], *cfg["hidden"], ds.num_classes], activation=cfg["activation"],
                       dropout=cfg["dropout"], output_activation="sigmoid" if cfg["loss"] == "bce" else None,
                       seed=seed, dtype=np.float32)
    optimizer = get_optimizer(cfg["optimizer"], model, cfg["lr"])
    schedule = get_schedule(cfg["schedule"], optimizer, cfg["epochs"])
    started = time.perf_counter()
    history = nn.fit(model, cfg["loss"], optimizer, (x_train, y_train), validation=validation,
                     epochs=cfg["epochs"], batch_size=cfg["batch_size"], l2=cfg["l2"], schedule=schedule,
                     seed=seed, verbose=verbose)
    seconds = time.perf_counter() - started
    result = nn.evaluate(model, x_test, ds.y_test, loss=cfg["loss"])
    return {"test_accuracy": result.accuracy, "test_loss": result.loss, "epochs": history.epochs,
            "seconds": seconds, "train_accuracy": history["accuracy"][-1]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dataset", default="digits", help="digits, mnist or fashion-mnist")
    parser.add_argument("--data-dir", default=None, help="folder with the IDX files (or the cache root)")
    parser.add_argument("--configs", default=None, help=f"comma list of {', '.join([*CONFIGS, CNN_CONFIG])}")
    parser.add_argument("--epochs", type=int, default=None, help="override every configuration's epochs")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--verbose", action="store_true", help="print the per-epoch progress")
    parser.add_argument("--json", metavar="PATH", help="write the results as JSON")
    parser.add_argument("--plot", metavar="PATH", help="write a bar chart of the accuracies (needs matplotlib)")
    args = parser.parse_args()

    names = args.configs.split(",") if args.configs else DEFAULT_CONFIGS.get(args.dataset, ["lecture"])
    unknown = [n for n in names if n not in CONFIGS and n != CNN_CONFIG]
    if unknown:
        parser.error(f"unknown configuration(s) {unknown}; choose from {', '.join([*CONFIGS, CNN_CONFIG])}")
    ds = load_dataset(args.dataset, root=args.data_dir, download=True, verbose=True)
    CONFIGS[CNN_CONFIG] = _config(training_defaults(ds.name, arch="cnn", image_shape=ds.image_shape))
    rows: List[dict] = []
    header = f"{'config':<15} {'test acc':>9} {'epochs':>6} {'time':>8}  command"
    print(f"{ds!r}, seed {args.seed}, {platform.processor() or platform.machine()}, {os.cpu_count()} cpus")
    print(header)
    print("-" * len(header))
    for name in names:
        cfg = dict(CONFIGS[name])
        if args.epochs is not None:
            cfg["epochs"] = args.epochs
        row = {"config": name, "dataset": ds.name, "seed": args.seed,
               "command": command_line(name, cfg, ds.name), **cfg}
        row.update(run(cfg, ds, args.seed, args.verbose))
        rows.append(row)
        print(f"{name:<15} {100 * row['test_accuracy']:>8.2f}% {row['epochs']:>6} "
              f"{row['seconds']:>7.1f}s  {row['command']}", flush=True)
    if args.json:
        write_json(args.json, {"machine": platform.platform(), "rows": rows})
    if args.plot:
        plt = pyplot()
        if plt is None:
            return
        fig, ax = plt.subplots(figsize=(max(4, 1.5 * len(rows)), 4))
        ax.bar([r["config"] for r in rows], [100 * r["test_accuracy"] for r in rows])
        ax.set_ylabel("test accuracy (%)")
        ax.set_ylim(min(100 * r["test_accuracy"] for r in rows) - 2, 100)
        ax.set_title(f"{ds.name}: test accuracy")
        fig.tight_layout()
        save_figure(fig, args.plot)


if __name__ == "__main__":
    main()
