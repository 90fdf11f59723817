"""`python -m nn sweep`: a hyperparameter search scored by cross-validation on the training set, run
on local worker processes or a Dask cluster (nn/sweep.py); prints the results table, the best
configuration as the `train` command that reproduces it, and with --refit its test accuracy."""
from __future__ import annotations

import argparse
import time

from .. import sweep as sw
from ..datasets import load_dataset
from ..trials import TrialsInterrupted
from .common import Interrupted, UserError, check_data_dir


def run(args: argparse.Namespace) -> int:
    check_data_dir(args.data_dir)
    if args.out:
        from autograd_lite.files import check_output_path
        check_output_path(args.out, "--out")
    if args.resume and not args.results:
        raise UserError("--resume continues the sweep recorded in --results FILE.jsonl; give that file")
    configs = _configs(args)
    say = (lambda *a: None) if args.quiet else print
    # download (MNIST) once here, not in every worker
    load_dataset(args.dataset, root=args.data_dir, download=not args.no_download, verbose=not args.quiet)
    started = time.perf_counter()
    try:
        result = sw.sweep(configs, dataset=args.dataset, data_dir=args.data_dir,
                          cv=None if args.validation else args.cv, validation=args.validation or None,
                          seeds=range(args.seeds), workers=args.workers, scheduler=args.scheduler,
                          results=args.results, resume=args.resume, refit=False, verbose=not args.quiet)
    except TrialsInterrupted as stop:
        again = " with --resume" if args.results else " with --results FILE.jsonl to keep trials across runs"
        raise Interrupted(f"{stop}; run the same command again{again}") from None
    except ImportError as error:
        raise UserError(str(error)) from None
    say(f"\n{len(result.scores)} configurations in {time.perf_counter() - started:.1f}s on {result.where}; "
        f"validation accuracy over {result.best.trials} trial{'s' if result.best.trials > 1 else ''} each "
        f"({'%d folds' % args.cv if not args.validation else '%g held out' % args.validation}), best first:")
    print(result.table())
    print(f"best: {result.train_command()}")
    if args.refit:
        say("refitting the best on the whole training set ...")
        result.test_accuracy = sw.refit_best(result, args.data_dir)
        print(f"best configuration's test accuracy: {100 * result.test_accuracy:.2f}% (the test set's only use)")
    if args.out:
        result.write(args.out)
        say(f"saved {args.out}")
    return 0


def _configs(args: argparse.Namespace) -> list:
    """The configurations from --grid, --random with --range, or --space (one of them)."""
    given = [bool(args.grid and not args.random), bool(args.random), bool(args.space)]
    if sum(given) != 1:
        raise UserError("sweep: give the configurations one way: --grid OPTION=VALUES (repeatable), "
                        "--random N with --range OPTION=LOW:HIGH, or --space FILE.json/.toml")
    if args.range and not args.random:
        raise UserError("--range sets what --random N draws from; add --random N")
    if args.space:
        return sw.load_space(args.space)
    if args.random:
        ranges = dict(sw.parse_range(text) for text in args.range or [])
        fixed = dict(sw.parse_assignment(text) for text in args.grid or [])
        ranges.update(fixed)
        return sw.random_configs(args.random, ranges, seed=0)
    return sw.grid(**dict(sw.parse_assignment(text) for text in args.grid))

