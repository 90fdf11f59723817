"""Hyperparameter search: many independent trainings, each configuration scored by stratified
K-fold cross-validation on the training set (or a validation split), run on local worker processes
or a Dask cluster (nn/executors.py), every finished trial kept in an append-only file (nn/trials.py).

The test set is never looked at during the search; `refit=True` trains the best configuration on the
whole training set and reports its test accuracy once. The module is callable: `nn.sweep(...)` is
`nn.sweep.sweep(...)`.

Example:
    >>> result = nn.sweep(nn.sweep.grid(lr=[1, 2, 4], l2=[1e-4, 1e-3]), cv=3, workers=2)
    >>> print(result.table()); print(result.train_command())
"""
from __future__ import annotations

import csv
import io
import itertools
import json
import math
import os
import socket
import sys
import time
import types
from dataclasses import dataclass, field
from typing import IO, Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from autograd_lite.files import atomic_write

from .executors import workers_for
from .trials import TrialLog, run_trials, trial_key

__all__ = ["OPTIONS", "grid", "random_configs", "parse_assignment", "parse_range", "load_space",
           "stratified_folds", "run_trial", "sweep", "SweepResult", "ConfigScore", "refit_best", "train_member",
           "train_members"]

Config = Dict[str, Any]


def _hidden(text: Any) -> List[int]:
    """Hidden widths: 200, [256, 128] or "256-128" (one network with two hidden layers)."""
    if isinstance(text, (list, tuple)):
        widths = [int(w) for w in text]
    elif isinstance(text, (int, np.integer)) and not isinstance(text, bool):
        widths = [int(text)]
    else:
        parts = str(text).replace("x", "-").split("-")
        if not all(p.strip().isdigit() for p in parts):
            raise ValueError(f"sweep: hidden takes positive widths such as 200 or 256-128 (two layers), got {text!r}")
        widths = [int(p) for p in parts]
    if not widths or min(widths) < 1:
        raise ValueError(f"sweep: hidden takes positive widths such as 200 or 256-128, got {text!r}")
    return widths


def _choice(*names: str) -> Callable[[Any], str]:
    def parse(text: Any) -> str:
        if str(text) not in names:
            raise ValueError(f"sweep: expected one of {', '.join(names)}, got {text!r}")
        return str(text)
    return parse


def _number(minimum: float, whole: bool = False, below: Optional[float] = None) -> Callable[[Any], Any]:
    def parse(text: Any) -> Any:
        try:
            value = float(text)
        except (TypeError, ValueError):
            raise ValueError(f"sweep: expected a number, got {text!r}") from None
        if not math.isfinite(value) or value < minimum or (below is not None and value >= below) \
                or (whole and value != int(value)):
            kind = "a whole number" if whole else "a number"
            upper = f" and < {below:g}" if below is not None else ""
            raise ValueError(f"sweep: expected {kind} >= {minimum:g}{upper}, got {text!r}")
        return int(value) if whole else value
    return parse


# the training options a sweep can vary: name -> (parse one value, the `train` flag that sets it)
OPTIONS: Dict[str, Tuple[Callable[[Any], Any], str]] = {
    "hidden": (_hidden, "--hidden"),
    "activation": (_choice("sigmoid", "tanh", "relu"), "--activation"),
    "loss": (_choice("bce", "ce"), "--loss"),
    "optimizer": (_choice("sgd", "momentum", "adam"), "--optimizer"),
    "lr": (_number(1e-12), "--lr"),
    "l2": (_number(0.0), "--l2"),
    "dropout": (_number(0.0, below=1.0), "--dropout"),
    "epochs": (_number(1, whole=True), "--epochs"),
    "batch_size": (_number(1, whole=True), "--batch-size"),
    "schedule": (_choice("cosine", "step", "constant"), "--schedule"),
}
# sampled on a log scale by random_configs: a rate of 0.1 is as far from 1 as 1 is from 10
LOG_UNIFORM = ("lr", "l2")
# the options a (low, high) range can be drawn for; the others are lists of choices
_NUMERIC = ("hidden", "lr", "l2", "dropout", "epochs", "batch_size")


# ---------------------------------------------------------------- the search space
def grid(**values: Sequence[Any]) -> List[Config]:
    """Every combination of the given option values (the last option varies fastest).

    Example:
        >>> grid(lr=[1, 2], hidden=[100, 200])
        [{'lr': 1.0, 'hidden': [100]}, {'lr': 1.0, 'hidden': [200]}, {'lr': 2.0, 'hidden': [100]}, ...]
    """
    names = list(values)
    columns = [[_parse(name, v) for v in _as_list(name, values[name])] for name in names]
    return [dict(zip(names, combination)) for combination in itertools.product(*columns)]


def random_configs(n: int, ranges: Mapping[str, Any], seed: int = 0) -> List[Config]:
    """`n` configurations drawn at random: an option given as a (low, high) range is drawn uniformly
    (log-uniformly for lr and l2; whole numbers for hidden, epochs and batch_size), one given as a list
    of choices is drawn from the list.

    Example:
        >>> random_configs(20, {"lr": (0.1, 10), "l2": (1e-5, 1e-2), "hidden": [100, 200]}, seed=0)
    """
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"sweep: the number of random configurations must be a whole number >= 1, got {n!r}")
    rng = np.random.default_rng(seed)
    configs: List[Config] = []
    for _ in range(int(n)):
        config: Config = {}
        for name, spec in ranges.items():
            if isinstance(spec, tuple):
                if name not in _NUMERIC:
                    raise ValueError(f"sweep: {name} takes a list of choices, not a range; got {spec!r}")
                low, high = (_parse(name, v) if name != "hidden" else _hidden(v)[0] for v in spec)
                if not low <= high:
                    raise ValueError(f"sweep: the range of {name} must be (low, high) with low <= high, got {spec!r}")
                if name in LOG_UNIFORM:
                    if low <= 0:
                        raise ValueError(f"sweep: {name} is drawn log-uniformly, so its range must be above 0, "
                                         f"got {spec!r}")
                    value: Any = float(np.exp(rng.uniform(np.log(low), np.log(high))))
                elif name in ("hidden", "epochs", "batch_size"):
                    value = int(rng.integers(int(low), int(high) + 1))
                else:
                    value = float(rng.uniform(low, high))
                config[name] = _parse(name, value)
            else:
                choices = _as_list(name, spec)
                config[name] = _parse(name, choices[int(rng.integers(len(choices)))])
        configs.append(config)
    return configs


def parse_assignment(text: str) -> Tuple[str, List[Any]]:
    """`"lr=0.5,1,2"` -> ("lr", [0.5, 1.0, 2.0]): an option and its values, as `--grid` takes them."""
    name, values = _split_assignment(text, "--grid", "lr=0.5,1,2")
    return name, [_parse(name, v) for v in values.split(",")]


def parse_range(text: str) -> Tuple[str, Any]:
    """`"lr=0.1:10"` -> ("lr", (0.1, 10.0)), a range to draw from; `"activation=relu,tanh"` -> choices."""
    name, values = _split_assignment(text, "--range", "lr=0.1:10")
    if ":" in values:
        low, _, high = values.partition(":")
        return name, (low, high)
    return name, [_parse(name, v) for v in values.split(",")]


def load_space(path: str, seed: int = 0) -> List[Config]:
    """The configurations a JSON or TOML file describes: `{"grid": {"lr": [1, 2], ...}}` for every
    combination, or `{"random": 20, "ranges": {"lr": [0.1, 10], "activation": ["relu", "tanh"]}}`
    (a two-number list is a range, anything else a list of choices); either may add
    `"fixed": {"epochs": 100}`, options every configuration shares.

    Example (sweep.toml):
        [grid]
        lr = [1, 2, 4]
        l2 = [1e-4, 1e-3]
        [fixed]
        epochs = 100
    """
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except OSError as error:
        raise ValueError(f"sweep: cannot read the search space file {path!r}: {error.strerror}") from None
    try:
        if path.lower().endswith(".toml"):
            try:
                import tomllib
            except ImportError:        # Python 3.10
                raise ValueError(f"sweep: reading {path!r} needs Python 3.11 or later (tomllib); "
                                 "write the space as JSON instead") from None
            spec = tomllib.loads(raw.decode("utf-8"))
        else:
            spec = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as error:
        if isinstance(error, ValueError) and str(error).startswith("sweep:"):
            raise
        raise ValueError(f"sweep: {path!r} is not valid {'TOML' if path.lower().endswith('.toml') else 'JSON'}: "
                         f"{error}") from None
    if not isinstance(spec, dict) or not (("grid" in spec) ^ ("random" in spec)):
        raise ValueError(f"sweep: {path!r} must hold either a 'grid' table or 'random' (a count) with 'ranges'")
    unknown = set(spec) - {"grid", "random", "ranges", "fixed"}
    if unknown:
        raise ValueError(f"sweep: {path!r} has unknown keys {sorted(unknown)}; expected grid, random, ranges, fixed")
    if "grid" in spec:
        configs = grid(**spec["grid"])
    else:
        ranges = {name: tuple(v) if _is_range(name, v) else v for name, v in spec.get("ranges", {}).items()}
        configs = random_configs(spec["random"], ranges, seed=seed)
    fixed = {name: _parse(name, value) for name, value in spec.get("fixed", {}).items()}
    return [{**fixed, **config} for config in configs]


# ---------------------------------------------------------------- folds
def stratified_folds(labels: np.ndarray, k: int, seed: int = 0) -> List[np.ndarray]:
    """`k` disjoint index arrays (sorted) that together cover every sample, each holding close to
    1/k of every class: fold i is the validation set of the i-th trial, the rest its training set.

    Example:
        >>> folds = stratified_folds(y, 5); x_val, y_val = x[folds[0]], y[folds[0]]
    """
    y = np.asarray(labels)
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 2:
        raise ValueError(f"sweep: cv (the number of folds) must be a whole number >= 2, got {k!r}")
    counts = np.bincount(y) if y.size else np.zeros(1, dtype=np.int64)
    smallest = int(counts[counts > 0].min()) if y.size else 0
    if smallest < k:
        raise ValueError(f"sweep: cv={k} folds need at least {k} samples of every class; the smallest class "
                         f"has {smallest}")
    rng = np.random.default_rng(seed)
    assignment = np.empty(len(y), dtype=np.int64)
    offset = 0
    for label in np.unique(y):
        members = np.flatnonzero(y == label)
        rng.shuffle(members)
        # deal the class out round-robin, starting where the last class stopped, so fold sizes stay even
        assignment[members] = (np.arange(len(members)) + offset) % k
        offset += len(members)
    return [np.flatnonzero(assignment == i) for i in range(k)]


# ---------------------------------------------------------------- one trial (runs in a worker)
def run_trial(trial: Mapping[str, Any]) -> Dict[str, Any]:
    """Train one configuration on one fold (or the validation split) and score it; runs in a worker.

    `trial` holds "config" (every training option), "dataset", "data_dir", "seed", and either
    "fold" of "cv" folds (split by "split_seed") or "validation" (a share). Returns the record the
    results file keeps: the validation accuracy and loss, seconds, and where it ran.
    """
    from .train import evaluate

    started = time.perf_counter()
    config = trial["config"]
    x, y = _training_set(trial["dataset"], trial.get("data_dir"))
    if trial.get("cv"):
        folds = stratified_folds(y, trial["cv"], trial.get("split_seed", 0))
        held = np.zeros(len(y), dtype=bool)
        held[folds[trial["fold"]]] = True
        train, validation = (x[~held], y[~held]), (x[held], y[held])
    else:
        from .data import stratified_split
        train, validation = stratified_split(x, y, trial["validation"], seed=trial.get("split_seed", 0))
    model, history = _train(config, train, _dataset(trial["dataset"], trial.get("data_dir")).num_classes,
                            trial["seed"])
    scored = evaluate(model, validation[0], validation[1], loss=config["loss"])
    return {"config": dict(config), "fold": trial.get("fold", 0), "seed": trial["seed"],
            "val_accuracy": scored.accuracy, "val_loss": scored.loss,
            "train_accuracy": history["accuracy"][-1] if history.epochs else float("nan"),
            "seconds": time.perf_counter() - started, "host": socket.gethostname(), "pid": os.getpid()}


# ---------------------------------------------------------------- results
@dataclass
class ConfigScore:
    """One configuration's cross-validated score: mean and standard deviation of the validation
    accuracy over its folds (and seeds), the worst fold, and the training seconds they took."""

    config: Config
    mean: float
    std: float
    worst: float
    trials: int
    seconds: float


@dataclass
class SweepResult:
    """A finished sweep: `scores` sorted by mean validation accuracy (best first), the raw `records`
    (one per trial), and the `setting` (data set, folds) they were scored under.

    `table()` prints them, `train_command()` is the `train` command that reproduces the best,
    `write(path)` saves CSV or JSON; `test_accuracy` is set by a refit, else None.
    """

    scores: List[ConfigScore]
    records: List[Dict[str, Any]]
    setting: Dict[str, Any]
    varied: List[str]
    seconds: float = 0.0
    where: str = ""
    test_accuracy: Optional[float] = None
    defaults: Config = field(default_factory=dict)

    @property
    def best(self) -> ConfigScore:
        return self.scores[0]

    def table(self, limit: Optional[int] = None) -> str:
        """The scores as a text table, best first: rank, mean +- std validation accuracy, worst
        fold, the options that vary, and the seconds of training."""
        varied = self.varied or sorted(self.best.config)
        header = ["rank", "val acc", "+-", "worst"] + varied + ["seconds"]
        rows = []
        for rank, s in enumerate(self.scores[:limit], 1):
            rows.append([str(rank), f"{100 * s.mean:.2f}%", f"{100 * s.std:.2f}", f"{100 * s.worst:.2f}%"]
                        + [_show(s.config.get(name)) for name in varied] + [f"{s.seconds:.1f}"])
        widths = [max(len(r[i]) for r in [header] + rows) for i in range(len(header))]
        lines = ["  ".join(c.rjust(w) for c, w in zip(row, widths)) for row in [header] + rows]
        return "\n".join(lines)

    def train_command(self, prog: str = "python -m nn") -> str:
        """The `train` command that trains the best configuration on the whole training set."""
        config = self.best.config
        parts = [prog, "train"]
        if self.setting["dataset"] != "digits":
            parts += ["--dataset", str(self.setting["dataset"])]
        for name, (_, flag) in OPTIONS.items():
            if name in config and (name in self.varied or config[name] != self.defaults.get(name)):
                value = _show(config[name], exact=True)
                parts += [flag, value.replace("-", ",") if name == "hidden" else value]
        return " ".join(parts)

    def write(self, path: str) -> None:
        """Write the scores (one row per configuration, best first) as CSV, or with the setting and
        every trial as JSON when `path` ends in .json; atomically."""
        if path.lower().endswith(".json"):
            payload = {"setting": self.setting, "seconds": self.seconds, "where": self.where,
                       "test_accuracy": self.test_accuracy, "best_train_command": self.train_command(),
                       "scores": [s.__dict__ for s in self.scores], "trials": self.records}
            with atomic_write(path, "sweep --out", "w") as f:
                json.dump(payload, f, indent=1, sort_keys=True, default=_json_default)
                f.write("\n")
            return
        names = sorted({n for s in self.scores for n in s.config}, key=list(OPTIONS).index)
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow(["rank", "mean_val_accuracy", "std_val_accuracy", "worst_val_accuracy", "trials",
                         "seconds"] + names)
        for rank, s in enumerate(self.scores, 1):
            writer.writerow([rank, f"{s.mean:.6f}", f"{s.std:.6f}", f"{s.worst:.6f}", s.trials, f"{s.seconds:.2f}"]
                            + [_show(s.config.get(n), exact=True) for n in names])
        with atomic_write(path, "sweep --out", "w") as f:
            f.write(buffer.getvalue())


# ---------------------------------------------------------------- the sweep
def sweep(configs: Sequence[Mapping[str, Any]], *, dataset: str = "digits", data_dir: Optional[str] = None,
          cv: Optional[int] = 3, validation: Optional[float] = None, seeds: Sequence[int] = (0,),
          split_seed: int = 0, base: Optional[Mapping[str, Any]] = None, workers: Optional[int] = None,
          client: Any = None, scheduler: Optional[str] = None, results: Optional[str] = None,
          resume: bool = False, retries: int = 3, refit: bool = False, verbose: bool = True,
          file: Optional[IO[str]] = None) -> SweepResult:
    """Score every configuration by `cv`-fold stratified cross-validation on the training set (or,
    with `validation=share`, on one stratified validation split) for each of `seeds`, in parallel;
    return a SweepResult sorted by mean validation accuracy.

    - `configs`: dicts of training options (see OPTIONS), e.g. from `grid(...)`,
      `random_configs(...)` or `load_space(path)`; options not given take `base`'s values, else
      `train`'s defaults for the data set (e.g. `base={"epochs": 100}` for a quicker search).
    - Where: `workers` local processes (default: one per core), or a Dask `client`, or the Dask
      `scheduler` at an address (`pip install 'autograd-lite[distributed]'`).
    - `results`: an append-only JSON-lines file with one line per finished trial. If it exists
      already, `resume=True` skips the trials on record (else it is refused, so no run is mixed
      into another by accident). A trial whose worker dies is run again, up to `retries` times.
    - Ctrl-C stops the workers and raises `nn.trials.TrialsInterrupted`; finished trials stay in
      `results`.
    - `refit=True`: train the best configuration on the whole training set and set `test_accuracy`.
    """
    out = sys.stdout if file is None else file
    say = (lambda text: print(text, file=out, flush=True)) if verbose else (lambda text: None)
    if not configs:
        raise ValueError("sweep: no configurations to score; give a grid, random draws or a space file")
    if (cv is None) == (validation is None):
        raise ValueError("sweep: give exactly one of cv (a number of folds) and validation (a share held out)")
    if resume and not results:
        raise ValueError("sweep: resume=True continues the sweep recorded in results=FILE.jsonl; give that file")
    if validation is not None and not 0 < validation < 1:
        raise ValueError(f"sweep: validation must be a share between 0 and 1, got {validation!r}")
    _, y = _training_set(dataset, data_dir)       # fail here, not in every worker, if the data is missing
    train_defaults = _train_defaults(dataset, data_dir)
    full = [_complete(config, {**train_defaults, **(base or {})}) for config in configs]
    unique = {json.dumps(config, sort_keys=True): config for config in full}
    repeated = len(full) - len(unique)        # random draws from short lists of choices repeat themselves
    full = list(unique.values())
    setting = {"dataset": dataset, "cv": cv, "validation": validation, "split_seed": split_seed}
    if cv is not None:
        stratified_folds(y, cv, split_seed)
    folds = range(cv) if cv is not None else range(1)
    trials: Dict[str, Dict[str, Any]] = {}
    for config in full:
        for seed in seeds:
            for fold in folds:
                key = trial_key(config, fold, seed, setting)
                trials[key] = {"config": config, "dataset": dataset, "data_dir": data_dir, "seed": int(seed),
                               "fold": fold, **setting}
    log = TrialLog(results) if results else None
    if log is not None and not resume and log.done():
        raise ValueError(f"sweep: the results file {results!r} holds trials already; pass resume=True "
                         "(--resume) to continue that sweep, or choose another file")
    varied = [name for name in OPTIONS if len({_show(c.get(name), exact=True) for c in full}) > 1]
    started = time.perf_counter()
    where = workers_for(workers, client=client, scheduler=scheduler)
    try:
        already = len(log.done()) if log is not None else 0
        say(f"sweep: {len(full)} configurations x {len(folds)} fold{'s' if len(folds) > 1 else ''} x "
            f"{len(seeds)} seed{'s' if len(seeds) > 1 else ''} = {len(trials)} trainings on {where.description}"
            + (f" ({sum(k in trials for k in log.done())} already done)" if already else "")
            + (f"; {repeated} repeated configuration{'s' if repeated > 1 else ''} dropped" if repeated else ""))

        def progress(record: Dict[str, Any], done: int, total: int) -> None:
            say(f"  [{done}/{total}] fold {record['fold']} seed {record['seed']}: val acc "
                f"{100 * record['val_accuracy']:.2f}%  ({_describe(record['config'], varied)}, "
                f"{record['seconds']:.1f}s)")

        done = run_trials(trials, run_trial, where, log=log, retries=retries, on_done=progress)
    finally:
        where.close()
    records = [done[key] for key in trials]
    result = SweepResult(scores=_scores(records), records=records, setting=setting, varied=varied,
                         seconds=time.perf_counter() - started, where=where.description, defaults=train_defaults)
    if refit:
        result.test_accuracy = refit_best(result, data_dir)
    return result


def refit_best(result: SweepResult, data_dir: Optional[str] = None, seed: int = 0) -> float:
    """Train the best configuration on the whole training set and return its test accuracy (the one
    time a sweep looks at the test set)."""
    from .train import evaluate

    dataset = result.setting["dataset"]
    model, _ = _train(result.best.config, _training_set(dataset, data_dir), _dataset(dataset, data_dir).num_classes,
                      seed)
    x_test, y_test = _test_set(dataset, data_dir)
    return evaluate(model, x_test, y_test).accuracy


def train_member(job: Mapping[str, Any]) -> Dict[str, Any]:
    """Train one model as `train` does (runs in a worker: an ensemble's members train in parallel).

    `job` holds "config" (every training option), "dataset", "data_dir", "seed" (weights and batch
    order), "validation" (a share held out, split by "split_seed", or 0), "early_stopping" and
    "compile" (ag.compile the steps, as fit does by default; False for `train --no-compile`). Returns the trained "state" (parameter arrays), the "history" lists, "best_epoch", "seconds".
    """
    from .data import stratified_split

    started = time.perf_counter()
    config = job["config"]
    x, y = _training_set(job["dataset"], job.get("data_dir"))
    validation = None
    if job.get("validation"):
        (x, y), validation = stratified_split(x, y, job["validation"], seed=job.get("split_seed", 0))
    model, history = _train(config, (x, y), job["classes"], job["seed"], validation=validation,
                            early_stopping=job.get("early_stopping"), compile=job.get("compile", True))
    return {"state": dict(model.state_dict()), "history": history.history, "best_epoch": history.best_epoch,
            "stopped_early": history.stopped_early, "seconds": time.perf_counter() - started}


def train_members(jobs: Sequence[Mapping[str, Any]], workers: Optional[int] = None, client: Any = None,
                  scheduler: Optional[str] = None) -> List[Dict[str, Any]]:
    """`train_member` for each job, in parallel on local workers or a Dask cluster; results in order."""
    where = workers_for(workers, client=client, scheduler=scheduler)
    try:
        done = run_trials({str(i): dict(job) for i, job in enumerate(jobs)}, train_member, where)
    finally:
        where.close()
    return [done[str(i)] for i in range(len(jobs))]


# ---------------------------------------------------------------- helpers
def _complete(config: Mapping[str, Any], defaults: Mapping[str, Any]) -> Config:
    unknown = set(config) - set(OPTIONS)
    if unknown:
        raise ValueError(f"sweep: unknown training option {sorted(unknown)[0]!r}; the options are "
                         f"{', '.join(OPTIONS)}")
    full = {name: _parse(name, defaults[name]) for name in OPTIONS if name in defaults}
    full.update({name: _parse(name, value) for name, value in config.items()})
    missing = set(OPTIONS) - set(full)
    if missing:
        raise ValueError(f"sweep: no value for {sorted(missing)}; give them in the configurations or in base")
    return full


def _scores(records: Sequence[Mapping[str, Any]]) -> List[ConfigScore]:
    by_config: Dict[str, List[Mapping[str, Any]]] = {}
    for record in records:
        by_config.setdefault(json.dumps(record["config"], sort_keys=True), []).append(record)
    scores = []
    for group in by_config.values():
        accuracies = np.array([r["val_accuracy"] for r in group], dtype=np.float64)
        scores.append(ConfigScore(config=dict(group[0]["config"]), mean=float(accuracies.mean()),
                                  std=float(accuracies.std(ddof=1)) if len(accuracies) > 1 else 0.0,
                                  worst=float(accuracies.min()), trials=len(group),
                                  seconds=float(sum(r["seconds"] for r in group))))
    # best mean first; among equals the steadier, then the cheaper
    return sorted(scores, key=lambda s: (-s.mean, s.std, s.seconds))


def _parse(name: str, value: Any) -> Any:
    if name not in OPTIONS:
        raise ValueError(f"sweep: unknown training option {name!r}; the options are {', '.join(OPTIONS)}")
    try:
        return OPTIONS[name][0](value)
    except ValueError as error:
        raise ValueError(f"{str(error).rstrip('.')} (option {name})") from None


def _as_list(name: str, values: Any) -> List[Any]:
    if isinstance(values, (str, bytes)) or not isinstance(values, (list, tuple, range)):
        raise ValueError(f"sweep: the values of {name} must be a list, got {values!r}")
    if not values:
        raise ValueError(f"sweep: the list of values of {name} is empty")
    return list(values)


def _is_range(name: str, values: Any) -> bool:
    """In a space file, [low, high] of two numbers is a range (for hidden too: [50, 200])."""
    return isinstance(values, list) and len(values) == 2 and all(
        isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)


def _split_assignment(text: str, flag: str, example: str) -> Tuple[str, str]:
    name, sep, values = text.partition("=")
    name = name.strip().replace("-", "_")
    if not sep or not values.strip():
        raise ValueError(f"sweep: {flag} takes OPTION=VALUES such as {example!r}, got {text!r}")
    if name not in OPTIONS:
        raise ValueError(f"sweep: {flag} {text!r}: unknown option {name!r}; the options are {', '.join(OPTIONS)}")
    return name, values.strip()


def _show(value: Any, exact: bool = False) -> str:
    """An option's value as text: 6 significant digits, or with `exact` as many as give the value
    back (a train command and a CSV must reproduce a drawn lr such as 1.8789912, not 1.87899)."""
    if isinstance(value, list):
        return "-".join(str(v) for v in value)
    if isinstance(value, float):
        short = f"{value:g}"
        return short if not exact or float(short) == value else repr(value)
    return str(value)


def _describe(config: Mapping[str, Any], names: Sequence[str]) -> str:
    return " ".join(f"{name}={_show(config[name])}" for name in names) or "defaults"


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"cannot write {type(value).__name__} as JSON")


_DATA_CACHE: Dict[Tuple[str, Optional[str]], Any] = {}


def _dataset(name: str, data_dir: Optional[str]) -> Any:
    """The data set, loaded once per process (a worker runs many trials on it)."""
    key = (name, data_dir)
    if key not in _DATA_CACHE:
        from .datasets import load_dataset
        _DATA_CACHE[key] = load_dataset(name, root=data_dir, download=False, verbose=False)
    return _DATA_CACHE[key]


def _training_set(name: str, data_dir: Optional[str]) -> Tuple[np.ndarray, np.ndarray]:
    from .data import preprocess
    ds = _dataset(name, data_dir)
    return preprocess(ds.x_train, ds.max_value, _feature_range()), ds.y_train


def _test_set(name: str, data_dir: Optional[str]) -> Tuple[np.ndarray, np.ndarray]:
    from .data import preprocess
    ds = _dataset(name, data_dir)
    return preprocess(ds.x_test, ds.max_value, _feature_range()), ds.y_test


def _feature_range() -> Tuple[float, float]:
    from .datasets.defaults import FEATURE_RANGE
    return FEATURE_RANGE


def _train_defaults(dataset: str, data_dir: Optional[str] = None) -> Config:
    """`python -m nn train`'s defaults for `dataset` (nn/datasets/defaults.py), as sweep options."""
    from .datasets.defaults import training_defaults
    d = training_defaults(dataset, image_shape=_dataset_shape(dataset, data_dir))
    # the defaults are named as the options are; lr is the default optimizer's
    return {**{name: getattr(d, name) for name in OPTIONS}, "hidden": list(d.hidden), "lr": d.lr[d.optimizer]}


def _dataset_shape(dataset: str, data_dir: Optional[str]) -> Optional[Sequence[int]]:
    """The image shape of a data set that is not one of the named ones (a folder of IDX files)."""
    if dataset.lower().replace("_", "-") in ("digits", "mnist", "fashion-mnist"):
        return None
    return _dataset(dataset, data_dir).image_shape


def _train(config: Mapping[str, Any], train: Tuple[np.ndarray, np.ndarray], classes: int, seed: int,
           validation: Optional[Tuple[np.ndarray, np.ndarray]] = None, early_stopping: Any = None,
           compile: bool = True) -> Tuple[Any, Any]:
    """The model `train` builds for these options (an MLP in float32), trained quietly as `train`
    trains it; returns the model and its History."""
    from .layers import MLP
    from .optim import get_optimizer, get_schedule
    from .train import fit
    model = MLP([train[0].shape[1], *config["hidden"], classes], activation=config["activation"],
                dropout=config["dropout"], output_activation="sigmoid" if config["loss"] == "bce" else None,
                seed=seed, dtype=np.float32)
    optimizer = get_optimizer(config["optimizer"], model, config["lr"])
    schedule = get_schedule(config["schedule"], optimizer, config["epochs"])
    history = fit(model, config["loss"], optimizer, train, validation=validation, epochs=config["epochs"],
                  batch_size=config["batch_size"], l2=config["l2"], schedule=schedule,
                  early_stopping=early_stopping, seed=seed, verbose=False, compile=compile)
    return model, history


class _CallableModule(types.ModuleType):
    """`nn.sweep(...)` calls `nn.sweep.sweep(...)`, while `nn.sweep.grid` etc. stay reachable."""

    def __call__(self, *args: Any, **kwargs: Any) -> SweepResult:
        return sweep(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
