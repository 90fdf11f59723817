"""Sweeps (nn/sweep.py, nn/trials.py, nn/executors.py): the search space, stratified folds, the
append-only results file, exactly-once scoring with retries, resume, Ctrl-C, and the local pool."""
import concurrent.futures as cf
import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time

import numpy as np
import pytest

import nn
import nn.sweep as sw
from nn.executors import ONE_THREAD, LocalWorkers, Workers
from nn.trials import TrialFailed, TrialLog, run_trials, trial_key

TINY = dict(hidden=[4], epochs=1, batch_size=64)


# ---------------------------------------------------------------- the search space
def test_grid_is_every_combination_parsed():
    configs = sw.grid(lr=["0.5", 2], hidden=[100, "256-128"])
    assert configs == [{"lr": 0.5, "hidden": [100]}, {"lr": 0.5, "hidden": [256, 128]},
                       {"lr": 2.0, "hidden": [100]}, {"lr": 2.0, "hidden": [256, 128]}]
    assert sw.parse_assignment("batch-size=16,32") == ("batch_size", [16, 32])
    with pytest.raises(ValueError, match="unknown option 'momentumm'"):
        sw.parse_assignment("momentumm=0.9")
    with pytest.raises(ValueError, match=r"expected a number >= 0, got -1 \(option l2\)"):
        sw.grid(l2=[-1])


def test_random_draws_lr_and_l2_log_uniformly_within_their_ranges():
    configs = sw.random_configs(400, {"lr": (0.01, 100.0), "l2": (1e-6, 1e-2), "hidden": (10, 20),
                                      "activation": ["relu", "tanh"]}, seed=0)
    lr = np.array([c["lr"] for c in configs])
    assert lr.min() >= 0.01 and lr.max() <= 100
    # log-uniform: about half the draws below the geometric middle (1), far from the arithmetic one
    assert 0.4 < np.mean(lr < 1.0) < 0.6
    assert {c["activation"] for c in configs} == {"relu", "tanh"}
    assert all(10 <= c["hidden"][0] <= 20 for c in configs)
    assert sw.random_configs(5, {"lr": (0.1, 1.0)}, seed=3) == sw.random_configs(5, {"lr": (0.1, 1.0)}, seed=3)
    with pytest.raises(ValueError, match="log-uniformly"):
        sw.random_configs(2, {"l2": (0.0, 1e-3)})
    with pytest.raises(ValueError, match="resume=True continues the sweep recorded in results="):
        nn.sweep(sw.grid(lr=[1]), resume=True)
    with pytest.raises(ValueError, match="activation takes a list of choices, not a range"):
        sw.random_configs(2, {"activation": sw.parse_range("activation=relu:tanh")[1]})


def test_space_files_json_and_toml(tmp_path):
    (tmp_path / "s.json").write_text(json.dumps({"grid": {"lr": [1, 2]}, "fixed": {"epochs": 7}}))
    assert sw.load_space(str(tmp_path / "s.json")) == [{"epochs": 7, "lr": 1.0}, {"epochs": 7, "lr": 2.0}]
    (tmp_path / "s.toml").write_text('random = 3\n[ranges]\nlr = [0.1, 10]\nactivation = ["relu"]\n')
    configs = sw.load_space(str(tmp_path / "s.toml"))
    assert len(configs) == 3 and all(0.1 <= c["lr"] <= 10 and c["activation"] == "relu" for c in configs)
    (tmp_path / "bad.json").write_text('{"grid": {"lr": [1, 2]}')
    with pytest.raises(ValueError, match="is not valid JSON"):
        sw.load_space(str(tmp_path / "bad.json"))
    (tmp_path / "both.json").write_text('{"grid": {"lr": [1]}, "random": 2}')
    with pytest.raises(ValueError, match="either a 'grid' table or 'random'"):
        sw.load_space(str(tmp_path / "both.json"))


def test_stratified_folds_partition_the_samples_and_keep_class_shares():
    y = np.repeat(np.arange(3), [30, 12, 9])
    folds = sw.stratified_folds(y, 3, seed=1)
    together = np.sort(np.concatenate(folds))
    assert np.array_equal(together, np.arange(len(y)))
    for fold in folds:
        assert np.array_equal(np.bincount(y[fold], minlength=3), [10, 4, 3])
    with pytest.raises(ValueError, match="smallest class has 2"):
        sw.stratified_folds(np.array([0, 0, 0, 1, 1]), 3)


# ---------------------------------------------------------------- the results file
def test_results_file_skips_a_torn_last_line_and_appends_after_it(tmp_path):
    path = tmp_path / "r.jsonl"
    log = TrialLog(path)
    log.append({"key": "a", "v": 1})
    with open(path, "a") as f:
        f.write('{"key": "b", "v"')           # a write cut short
    assert set(log.done()) == {"a"}
    log.append({"key": "c", "v": 3})
    assert set(log.done()) == {"a", "c"}
    assert trial_key({"lr": 1.0}, 0, 0, {"cv": 3}) == trial_key({"lr": 1.0}, 0, 0, {"cv": 3})
    assert trial_key({"lr": 1.0}, 0, 0, {"cv": 3}) != trial_key({"lr": 1.0}, 1, 0, {"cv": 3})


class _Lost(Exception):
    pass


class _ThreadWorkers(Workers):
    """Threads standing in for workers; the first attempt of each key in `lose` dies."""

    def __init__(self, lose=()):
        self.pool = cf.ThreadPoolExecutor(2)
        self.lose, self.calls, self.lock = set(lose), [], threading.Lock()
        self.stopped = False

    def submit(self, fn, trial):
        def call():
            with self.lock:
                self.calls.append(trial["key"])
                if trial["key"] in self.lose:
                    self.lose.discard(trial["key"])
                    raise _Lost()
            return fn(trial)
        return self.pool.submit(call)

    def worker_lost(self, error):
        return isinstance(error, _Lost)

    def stop(self):
        self.stopped = True
        self.close()

    def close(self):
        self.pool.shutdown()


def _score(trial):
    return {"value": trial["key"] * 2}


def test_each_trial_is_recorded_once_a_lost_one_retried_and_resume_runs_only_the_rest(tmp_path):
    trials = {k: {"key": k} for k in "abcdef"}
    log = TrialLog(tmp_path / "r.jsonl")
    log.append({"key": "b", "value": "bb"})          # done by an earlier run
    workers = _ThreadWorkers(lose={"d"})
    done = run_trials(trials, _score, workers, log=log)
    workers.close()
    assert sorted(workers.calls) == ["a", "c", "d", "d", "e", "f"]     # b skipped, d run twice
    assert {k: r["value"] for k, r in done.items()} == {k: k * 2 for k in "abcdef"}
    keys = [json.loads(line)["key"] for line in (tmp_path / "r.jsonl").read_text().splitlines()]
    assert sorted(keys) == list("abcdef")                               # each on record once
    workers = _ThreadWorkers()
    run_trials(trials, _score, workers, log=log)
    assert workers.calls == []


def test_a_trial_that_raises_is_not_retried():
    def broken(trial):
        raise ZeroDivisionError("division by zero")
    workers = _ThreadWorkers()
    with pytest.raises(TrialFailed, match="trial a failed: ZeroDivisionError"):
        run_trials({"a": {"key": "a"}}, broken, workers)
    assert workers.calls == ["a"]
    assert workers.stopped          # the other running trials are stopped, not waited for


# ---------------------------------------------------------------- the local pool
def _worker_environment(_):
    import numba
    return {name: os.environ.get(name) for name in ONE_THREAD}, numba.config.NUMBA_NUM_THREADS


def test_local_workers_run_with_one_blas_and_one_numba_thread():
    before = {name: os.environ.get(name) for name in ONE_THREAD}
    with LocalWorkers(2) as workers:
        env, numba_threads = workers.submit(_worker_environment, None).result(timeout=60)
    assert env == ONE_THREAD and numba_threads == 1
    assert {name: os.environ.get(name) for name in ONE_THREAD} == before    # this process untouched


def _die_once(trial):
    """Kill this worker process the first time `trial` runs (a marker file remembers)."""
    marker = trial["marker"]
    if trial["key"] == "b" and not os.path.exists(marker):
        open(marker, "w").close()
        os.kill(os.getpid(), signal.SIGKILL)
    return {"pid": os.getpid()}


def test_a_killed_local_worker_is_replaced_and_its_trial_rerun(tmp_path):
    trials = {k: {"key": k, "marker": str(tmp_path / "killed")} for k in "abcd"}
    log = TrialLog(tmp_path / "r.jsonl")
    with LocalWorkers(2) as workers:
        done = run_trials(trials, _die_once, workers, log=log)
    assert (tmp_path / "killed").exists() and sorted(done) == list("abcd")
    keys = [json.loads(line)["key"] for line in (tmp_path / "r.jsonl").read_text().splitlines()]
    assert sorted(keys) == list("abcd")


CTRL_C_BASE = {"hidden": [8], "epochs": 2, "batch_size": 32}
CTRL_C_SCRIPT = f"""
import sys
import nn, nn.sweep as sw
from nn.trials import TrialsInterrupted
if __name__ == "__main__":
    try:
        nn.sweep(sw.grid(lr=[0.5, 1, 2, 4]), cv=2, base={CTRL_C_BASE!r}, workers=2, results=sys.argv[1],
                 resume=True, verbose=False)
    except TrialsInterrupted as stop:
        print(stop, flush=True)
        sys.exit(130)
"""


def test_ctrl_c_stops_the_sweep_and_keeps_the_finished_trials(tmp_path):
    script, results = tmp_path / "sweep_script.py", tmp_path / "r.jsonl"
    script.write_text(CTRL_C_SCRIPT)
    run = subprocess.Popen([sys.executable, str(script), str(results)], stdout=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not (results.exists() and results.read_text().count("\n") >= 1):
        time.sleep(0.05)
    run.send_signal(signal.SIGINT)
    out, _ = run.communicate(timeout=30)
    kept = results.read_text().splitlines()
    assert run.returncode == 130, out
    assert 1 <= len(kept) < 8 and f"interrupted (Ctrl-C) with {len(kept)} of 8 trials done" in out
    assert all(json.loads(line)["val_accuracy"] >= 0 for line in kept)
    # resuming (here, on one worker: a second would only compete for the cores) runs only the rest,
    # and every trial is then on record once
    result = nn.sweep(sw.grid(lr=[0.5, 1, 2, 4]), cv=2, base=CTRL_C_BASE, workers=1, results=str(results),
                      resume=True, verbose=False)
    assert [s.trials for s in result.scores] == [2] * 4
    lines = results.read_text().splitlines()
    assert lines[:len(kept)] == kept and len({json.loads(line)["key"] for line in lines}) == len(lines) == 8


def test_without_distributed_the_scheduler_option_names_the_extra():
    code = textwrap.dedent("""
        import sys
        sys.modules["distributed"] = None
        from nn.executors import workers_for
        try:
            workers_for(scheduler="tcp://127.0.0.1:8786")
        except ImportError as error:
            print(error)
    """)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.stdout.strip() == ("sweep on a Dask cluster needs Dask's distributed scheduler, which is not "
                                   "installed: pip install 'autograd-lite[distributed]'")


def test_the_best_train_command_and_the_csv_give_a_drawn_value_back_exactly(tmp_path):
    drawn = sw.random_configs(1, {"lr": (0.1, 10.0)}, seed=0)[0]["lr"]
    assert f"{drawn:g}" != repr(drawn)                  # six digits would lose it
    records = [{"config": {"lr": lr, "hidden": [256, 128]}, "val_accuracy": acc, "seconds": 1.0}
               for lr, acc in ((drawn, 0.9), (2.0, 0.8))]
    result = sw.SweepResult(scores=sw._scores(records), records=records, setting={"dataset": "digits"},
                            varied=["lr"])
    assert result.train_command() == f"python -m nn train --hidden 256,128 --lr {drawn!r}"
    result.write(str(tmp_path / "s.csv"))
    rows = (tmp_path / "s.csv").read_text().splitlines()
    assert rows[1].endswith(f",256-128,{drawn!r}") and rows[2].endswith(",256-128,2")
