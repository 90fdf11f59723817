"""fit's output (nn/progress.py): silent, a bar that never wraps an 80-column terminal, a line per
epoch, a line every N epochs when the output is not a terminal, and the compile notice of a first run."""
import io
import time

import numpy as np
import pytest

import nn
from nn import progress
from nn.progress import Progress, default_log_every


class Terminal(io.StringIO):
    def isatty(self):
        return True


LOGS = {"loss": 0.25, "accuracy": 0.9, "val_loss": 0.3, "val_accuracy": 0.88, "lr": 0.5, "seconds": 0.01}


def _run(p, epochs, batches=5):
    for e in range(1, epochs + 1):
        for b in range(1, batches + 1):
            p.batch(e, b, 0.123456, 32 * b, 0.5)
        p.epoch(e, LOGS, last=e == epochs)
    p.close()


@pytest.fixture(autouse=True)
def warm_cache(monkeypatch):
    monkeypatch.setattr(progress, "kernel_cache_is_empty", lambda: False)


def test_a_500_epoch_run_logs_about_20_lines_when_not_a_terminal():
    out = io.StringIO()
    _run(Progress(1, 500, 3, out), 500, batches=3)
    lines = out.getvalue().splitlines()
    assert default_log_every(500) == 25 and len(lines) == 21       # epoch 1, then 25, 50, ..., 500
    assert lines[0].startswith("epoch   1/500") and lines[-1].startswith("epoch 500/500")
    assert "\r" not in out.getvalue()


def test_log_every_and_verbose_two_on_a_terminal():
    out = io.StringIO()
    _run(Progress(2, 10, 2, out, log_every=3), 10)
    assert [line.split()[1] for line in out.getvalue().splitlines()] == ["1/10", "3/10", "6/10", "9/10", "10/10"]
    out = Terminal()
    _run(Progress(2, 30, 2, out), 30)
    assert len(out.getvalue().splitlines()) == 30 and "\r" not in out.getvalue()


def test_verbose_zero_prints_nothing():
    out = Terminal()
    p = Progress(0, 5, 2, out)
    _run(p, 5)
    p.line("hello")
    assert out.getvalue() == ""


@pytest.mark.parametrize("columns", [80, 40])
def test_the_built_in_bar_never_wraps_the_terminal(monkeypatch, columns):
    monkeypatch.setenv("AUTOGRAD_LITE_PROGRESS", "builtin")
    monkeypatch.setenv("COLUMNS", str(columns))
    out = Terminal()
    p = Progress(1, 1000, 100_000, out)
    p.batch(1, 1, 12345.678, 10 ** 9, 0.001)
    p.batch(1, 100_000, 12345.678, 10 ** 9, 0.001)
    drawn = [seg for seg in out.getvalue().split("\r") if seg.strip()]
    assert drawn and all(len(seg) < columns for seg in drawn)
    assert all("ETA" in seg for seg in drawn) and "epoch 1/1000" in drawn[0]
    p.close()


def test_the_bar_shows_the_runs_overall_eta(monkeypatch):
    monkeypatch.setenv("AUTOGRAD_LITE_PROGRESS", "builtin")
    out = Terminal()
    p = Progress(1, 4, 10, out)
    p.bar.started = time.perf_counter() - 10.0      # 10 s spent at the end of epoch 2 of 4: 10 s left
    p.batch(2, 10, 0.5, 320, 1.0)
    assert "ETA 10.0s" in out.getvalue()
    p.close()


def test_tqdm_draws_the_bar_when_installed():
    pytest.importorskip("tqdm")
    out = Terminal()
    _run(Progress(1, 3, 4, out), 3)
    text = out.getvalue()
    assert "epoch 3" in text and "loss 0.1235" in text and "batch" in text


def test_a_cold_kernel_cache_is_said_instead_of_a_slow_first_epoch(monkeypatch):
    monkeypatch.setattr(progress, "kernel_cache_is_empty", lambda: True)
    monkeypatch.setattr(progress, "COMPILE_NOTICE_AFTER", 0.05)
    out = io.StringIO()
    p = Progress(1, 2, 1, out)
    time.sleep(0.3)                          # the first batch, compiling
    _run(p, 2, batches=1)
    lines = out.getvalue().splitlines()
    assert lines[0].startswith("compiling kernels (first run only") and lines[1].startswith("compiled the kernels in")


def test_no_compile_notice_when_the_first_batch_is_quick_or_the_cache_is_warm(monkeypatch):
    monkeypatch.setattr(progress, "kernel_cache_is_empty", lambda: True)
    out = io.StringIO()
    _run(Progress(1, 2, 1, out), 2)          # well under COMPILE_NOTICE_AFTER
    monkeypatch.setattr(progress, "kernel_cache_is_empty", lambda: False)
    monkeypatch.setattr(progress, "COMPILE_NOTICE_AFTER", 0.0)
    p = Progress(1, 2, 1, out)
    time.sleep(0.1)
    _run(p, 2, batches=1)
    assert "compil" not in out.getvalue()


def test_fit_takes_verbose_0_1_2_and_refuses_others():
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((64, 4)).astype(np.float32), rng.integers(0, 2, 64)
    model = nn.MLP([4, 3, 2], seed=0)
    for verbose, lines in ((0, 0), (2, 3), (False, 0)):
        out = io.StringIO()
        nn.fit(model, "ce", nn.SGD(model, lr=0.1), (x, y), epochs=3, verbose=verbose, file=out)
        assert len(out.getvalue().splitlines()) == lines, out.getvalue()
    with pytest.raises(ValueError, match="fit: verbose must be 0 .* got 3"):
        nn.fit(model, "ce", nn.SGD(model, lr=0.1), (x, y), epochs=1, verbose=3)


def test_the_kernel_cache_is_looked_for_where_numba_keeps_it(monkeypatch, tmp_path):
    monkeypatch.undo()                        # the real check, not the autouse stand-in
    monkeypatch.setenv("NUMBA_CACHE_DIR", str(tmp_path))
    monkeypatch.delenv("AUTOGRAD_LITE_KERNELS", raising=False)
    assert progress.kernel_cache_is_empty()
    (tmp_path / "some" / "dir").mkdir(parents=True)
    (tmp_path / "some" / "dir" / "jitted.sgd_update-40.py311.nbi").write_bytes(b"")
    assert progress.kernel_cache_is_empty()           # the conv kernels are still to compile
    (tmp_path / "some" / "dir" / "conv_kernels.im2col-30.py311.nbi").write_bytes(b"")
    assert not progress.kernel_cache_is_empty()
    monkeypatch.setenv("AUTOGRAD_LITE_KERNELS", "numpy")      # no Numba, nothing to compile
    (tmp_path / "some" / "dir" / "jitted.sgd_update-40.py311.nbi").unlink()
    assert not progress.kernel_cache_is_empty()
