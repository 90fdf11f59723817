"""The record of a sweep's finished trials, and running trials on an executor so that none is lost
or scored twice.

A trial is one training run, keyed by its configuration, its fold and its seed. The results file
holds one JSON object per line and is only ever appended to, one whole line per finished trial
(a single `write` of the line, flushed to disk), so a crash or a Ctrl-C leaves every finished trial
on record and at most a torn last line, which reading skips. `run_trials` submits the trials not yet
on record, records each once as it finishes, resubmits a trial whose worker died, and on Ctrl-C
cancels the rest and returns what is done.
"""
from __future__ import annotations

import concurrent.futures as cf
import hashlib
import json
import os
from typing import Any, Callable, Dict, List, Mapping, Optional

__all__ = ["trial_key", "TrialLog", "TrialsInterrupted", "TrialFailed", "run_trials"]


def trial_key(config: Mapping[str, Any], fold: int, seed: int, setting: Mapping[str, Any]) -> str:
    """A stable text key for one trial: the configuration (options sorted), the fold, the seed and
    the setting that makes scores comparable (data set, number of folds or validation share).

    Example:
        >>> trial_key({"lr": 2.0, "hidden": [100]}, 0, 0, {"dataset": "digits", "cv": 3})[:12]
        'cfg-...'
    """
    text = json.dumps({"config": config, "fold": fold, "seed": seed, "setting": setting},
                      sort_keys=True, separators=(",", ":"))
    return "cfg-" + hashlib.sha256(text.encode()).hexdigest()[:20]


class TrialLog:
    """An append-only JSON-lines file of finished trials, each a dict with at least "key".

    Example:
        >>> log = TrialLog("sweep.jsonl")
        >>> log.append({"key": "cfg-1", "val_accuracy": 0.97})
        >>> "cfg-1" in log.done()
        True
    """

    def __init__(self, path: "os.PathLike[str] | str") -> None:
        self.path = os.fspath(path)
        folder = os.path.dirname(os.path.abspath(self.path))
        if not os.path.isdir(folder):
            raise ValueError(f"sweep: the folder {folder!r} of the results file {self.path!r} does not "
                             "exist; create it first")
        if os.path.exists(self.path) and not os.path.isfile(self.path):
            raise ValueError(f"sweep: the results file {self.path!r} is not a regular file; give a file path")

    def done(self) -> Dict[str, Dict[str, Any]]:
        """{key: record} of the trials on record; the first record of a key wins, and a line that is
        not a whole JSON object (the torn end of a killed write) is skipped."""
        records: Dict[str, Dict[str, Any]] = {}
        if not os.path.exists(self.path):
            return records
        with open(self.path, "r", encoding="utf-8") as f:
            for line in f:
                try:
                    record = json.loads(line)
                except json.JSONDecodeError:
                    continue
                if isinstance(record, dict) and isinstance(record.get("key"), str):
                    records.setdefault(record["key"], record)
        return records

    def append(self, record: Mapping[str, Any]) -> None:
        """Add one finished trial: one line, written with one `write` call and flushed to disk."""
        line = json.dumps(record, sort_keys=True, separators=(",", ":")) + "\n"
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            if os.fstat(fd).st_size:
                _end_torn_line(fd, self.path)
            os.write(fd, line.encode("utf-8"))
            os.fsync(fd)
        finally:
            os.close(fd)


class TrialsInterrupted(KeyboardInterrupt):
    """Ctrl-C during `run_trials`: the trials still running were stopped and not recorded; `done`
    holds the records of the finished ones (all also in the results file, if there is one)."""

    def __init__(self, message: str, done: Dict[str, Dict[str, Any]], total: int) -> None:
        super().__init__(message)
        self.done, self.total = done, total


class TrialFailed(RuntimeError):
    """A trial raised an error in its own code (not a lost worker): retrying would fail again."""


def run_trials(trials: Mapping[str, Any], run: Callable[[Any], Dict[str, Any]], where: Any,
               log: Optional[TrialLog] = None, retries: int = 3,
               on_done: Optional[Callable[[Dict[str, Any], int, int], None]] = None) -> Dict[str, Dict[str, Any]]:
    """Run `run(trial)` for every {key: trial} not yet in `log`, on `where` (an nn.executors.Workers);
    return {key: record} for all keys. Each record gets its "key" and is appended to `log` once.

    A trial whose worker died (killed, out of memory) is resubmitted, up to `retries` times; an
    error raised by the trial itself is raised as TrialFailed at once, after stopping the trials
    still running (as does running out of retries). `on_done(record, done,
    total)` is called as each trial finishes. Ctrl-C cancels what is still queued or running and
    raises TrialsInterrupted with the finished trials.
    """
    done = dict(log.done()) if log is not None else {}
    done = {k: v for k, v in done.items() if k in trials}
    pending = [k for k in trials if k not in done]
    total = len(trials)
    attempts: Dict[str, int] = {k: 0 for k in pending}
    futures: Dict[cf.Future, str] = {}

    def submit(key: str) -> None:
        attempts[key] += 1
        futures[where.submit(run, trials[key])] = key

    try:
        for key in pending:
            submit(key)
        while futures:
            finished, _ = cf.wait(list(futures), return_when=cf.FIRST_COMPLETED)
            lost: List[str] = []
            for future in finished:
                key = futures.pop(future)
                error = future.exception()
                if error is None:
                    record = dict(future.result(), key=key)
                    if key not in done:                 # a retried trial can finish twice: keep one
                        done[key] = record
                        if log is not None:
                            log.append(record)
                        if on_done is not None:
                            on_done(record, len(done), total)
                elif where.worker_lost(error):
                    lost.append(key)
                else:
                    raise TrialFailed(f"sweep: trial {key} failed: {type(error).__name__}: {error}") from error
            if lost:
                if where.needs_restart():
                    # a broken local pool takes its other running trials down with it: resubmit them too
                    lost += [futures.pop(f) for f in list(futures)]
                    where.restart()
                for key in lost:
                    if attempts[key] > retries:
                        raise TrialFailed(f"sweep: trial {key} lost its worker {attempts[key]} times; "
                                          "giving up (is a trial running out of memory?)")
                    submit(key)
    except TrialFailed:
        # the sweep ends here: the trials still running would never be recorded, so do not wait for them
        where.stop()
        raise
    except KeyboardInterrupt:
        for future in futures:
            future.cancel()
        where.stop()
        raise TrialsInterrupted(f"sweep: interrupted (Ctrl-C) with {len(done)} of {total} trials done"
                                + (f", kept in {log.path}" if log is not None else ""), done, total) from None
    return done


def _end_torn_line(fd: int, path: str) -> None:
    """If the file does not end with a newline (a write cut short), end that line so the next
    record starts on its own line (the torn one is then skipped on reading)."""
    with open(path, "rb") as f:
        f.seek(-1, os.SEEK_END)
        if f.read(1) != b"\n":
            os.write(fd, b"\n")

