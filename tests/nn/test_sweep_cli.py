"""`python -m nn sweep`, `train --ensemble K` on workers and `train --data-parallel` under mpiexec:
the command line's side of issue 18, and its one-sentence messages when an extra is missing."""
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from nn.cli import main

TINY = ["--grid", "hidden=4", "--grid", "epochs=1", "--grid", "batch_size=64"]


def test_sweep_prints_the_table_and_the_best_train_command_resumes_and_refuses_to_mix_runs(tmp_path, capsys):
    results, table, trials = str(tmp_path / "r.jsonl"), str(tmp_path / "r.csv"), str(tmp_path / "r.json")
    code = main(["sweep", "--grid", "lr=0.5,2", *TINY, "--cv", "2", "--workers", "1", "--results", results,
                 "--out", trials, "--quiet"])
    out = capsys.readouterr().out
    assert code == 0
    assert out.splitlines()[0].split() == ["rank", "val", "acc", "+-", "worst", "lr", "seconds"]
    assert "best: python -m nn train --hidden 4 --lr " in out and "--epochs 1 --batch-size 64" in out
    lines = Path(results).read_text().splitlines()
    assert len(lines) == 4 and len({json.loads(line)["key"] for line in lines}) == 4
    assert len(json.loads(Path(trials).read_text())["trials"]) == 4
    # resumed with every trial done: nothing runs again, the same table
    assert main(["sweep", "--grid", "lr=0.5,2", *TINY, "--cv", "2", "--results", results, "--resume",
                 "--out", table, "--quiet"]) == 0
    assert capsys.readouterr().out == out and Path(results).read_text().splitlines() == lines
    assert Path(table).read_text().startswith("rank,mean_val_accuracy,std_val_accuracy,worst_val_accuracy")
    assert main(["sweep", "--grid", "lr=0.5,2", *TINY, "--cv", "2", "--results", results]) == 1
    assert "holds trials already; pass resume=True (--resume)" in capsys.readouterr().err


@pytest.mark.parametrize("argv, message", [
    (["sweep", "--grid", "lr=1", "--space", "space.json"], "give the configurations one way"),
    (["sweep", "--grid", "lrr=1"], "unknown option 'lrr'"),
    (["sweep", "--grid", "lr=1", "--resume"], "--resume continues the sweep recorded in --results"),
])
def test_sweep_option_errors_are_one_sentence(argv, message, capsys):
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


def _without(module, argv):
    code = textwrap.dedent(f"""
        import sys
        sys.modules[{module!r}] = None
        from nn.cli import main
        sys.exit(main({argv!r}))
    """)
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)


def test_missing_extras_are_named_in_one_sentence():
    done = _without("distributed", ["sweep", "--grid", "lr=1", "--scheduler", "tcp://127.0.0.1:8786"])
    assert done.returncode == 1
    assert done.stderr == ("error: sweep on a Dask cluster needs Dask's distributed scheduler, which is not "
                           "installed: pip install 'autograd-lite[distributed]'\n")
    done = _without("mpi4py", ["train", "--data-parallel", "--epochs", "1"])
    assert done.returncode == 1
    assert done.stderr == ("error: --data-parallel needs mpi4py and an MPI runtime, which are not installed: "
                           "pip install 'autograd-lite[mpi]'\n")


def test_ensemble_members_on_two_workers_train_as_they_do_one_after_another(capsys):
    argv = ["train", "--hidden", "8", "--epochs", "2", "--ensemble", "2", "--quiet"]
    assert main(argv + ["--workers", "1"]) == 0
    one = capsys.readouterr().out
    assert main(argv + ["--workers", "2"]) == 0
    two = capsys.readouterr().out

    def accuracies(text):
        return [line.split(", ")[0] for line in text.splitlines() if "test accuracy" in line]
    assert len(accuracies(two)) == 3                        # two members and the ensemble
    assert accuracies(one) == accuracies(two)


def test_data_parallel_train_under_mpiexec_prints_and_saves_once(tmp_path):
    pytest.importorskip("mpi4py", reason="needs the mpi extra")
    mpiexec = Path(sys.executable).parent / "mpiexec"
    if not mpiexec.exists():
        pytest.skip("no mpiexec (the mpich wheel of the mpi extra provides one)")
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1", NUMBA_NUM_THREADS="1")
    done = subprocess.run([str(mpiexec), "-n", "2", sys.executable, "-m", "nn", "train", "--data-parallel",
                           "--hidden", "8", "--epochs", "2", "--save", str(tmp_path / "m.npz")],
                          capture_output=True, text=True, env=env, timeout=120, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.count("test accuracy") == 1 and done.stdout.count("epoch 2/2") == 1
    assert "2 ranks" in done.stdout
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.npz"]


@pytest.mark.parametrize("compiled", [True, False])
def test_an_ensemble_member_on_a_worker_trains_compiled_or_not_as_train_was_told(monkeypatch, compiled):
    # `train --ensemble K --no-compile` hands "compile": False to each member's job, and the worker's
    # fit must get it (it compiled regardless before)
    import nn.sweep
    import nn.train

    seen_jobs, seen_compile = [], []
    real_fit = nn.train.fit

    def recording_fit(*args, **kwargs):
        seen_compile.append(kwargs.get("compile", True))
        return real_fit(*args, **kwargs)

    def members_here(jobs, **kwargs):
        seen_jobs.extend(jobs)
        return [nn.sweep.train_member(job) for job in jobs]

    monkeypatch.setattr(nn.train, "fit", recording_fit)
    monkeypatch.setattr(nn.sweep, "train_members", members_here)
    argv = ["train", "--hidden", "8", "--epochs", "1", "--ensemble", "2", "--workers", "2", "--quiet"]
    assert main(argv + ([] if compiled else ["--no-compile"])) == 0
    assert [job["compile"] for job in seen_jobs] == [compiled, compiled]
    assert seen_compile == [compiled, compiled]
