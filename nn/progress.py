"""What `fit` prints while it trains, as Keras does: `verbose=0` nothing, `1` a progress bar, `2` one
line per epoch; output that is not a terminal (a log file, a pipe, CI) gets a line every `log_every`
epochs instead of one per epoch, so a 500-epoch run prints about 20 lines, and the last epoch's.

The bar is tqdm's (`tqdm.auto`, which draws a widget in Jupyter) when the `progress` extra is
installed, else a built-in one: one line redrawn in place, cut to the terminal's width so that it
never wraps, with the overall ETA. When the first batch is slow because Numba is compiling the
kernels (its on-disk cache is empty), a line says so instead of leaving an epoch that looks 100x slower.
"""
from __future__ import annotations

import glob
import math
import os
import shutil
import sys
import threading
import time
from typing import IO, Any, Dict, Optional

# about this many epoch lines in a run when the output is not a terminal (plus the last epoch's)
LINES_PER_RUN = 20
# a first batch still running after this many seconds with the kernel cache empty: say it is compiling
COMPILE_NOTICE_AFTER = 1.0
COMPILE_MESSAGE = "compiling kernels (first run only; later runs load them from Numba's cache)"
# the modules of autograd_lite/kernels whose Numba kernels are cached on disk (cache=True)
KERNEL_MODULES = ("jitted", "conv_kernels")


def default_log_every(epochs: int) -> int:
    """Every how many epochs a run of `epochs` logs a line when the output is not a terminal: about
    LINES_PER_RUN lines in all (1 up to 20 epochs, 25 for 500)."""
    return max(1, round(epochs / LINES_PER_RUN))


def epoch_line(epoch: int, epochs: int, logs: Dict[str, float]) -> str:
    """'epoch  3/10  loss 0.1234  acc 0.9612  val_loss ...  val_acc ...  lr 0.5  0.21s'."""
    width = len(str(epochs))
    parts = [f"epoch {epoch:>{width}}/{epochs}", f"loss {logs['loss']:.4f}", f"acc {logs['accuracy']:.4f}"]
    if "val_loss" in logs:
        parts += [f"val_loss {logs['val_loss']:.4f}", f"val_acc {logs['val_accuracy']:.4f}"]
    parts += [f"lr {logs['lr']:.3g}", f"{logs['seconds']:.2f}s"]
    return "  ".join(parts)


def duration(seconds: float) -> str:
    """'8.2s', '3m05s', '1h02m'."""
    if not math.isfinite(seconds):
        return "?"
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(int(round(seconds)), 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    return f"{minutes // 60}h{minutes % 60:02d}m"


def kernel_cache_is_empty() -> bool:
    """Whether Numba's on-disk cache lacks the compiled kernels of one of KERNEL_MODULES (it holds
    no index file `<module>.*.nbi` where Numba keeps them: $NUMBA_CACHE_DIR, the kernels'
    __pycache__, or the user's cache folder). False when that cannot be told, so that no compile
    notice is made up."""
    try:
        import autograd_lite.kernels as kernels
    except ImportError:
        return False
    if os.environ.get("AUTOGRAD_LITE_KERNELS", "numba") == "numpy":
        return False
    source = os.path.dirname(kernels.__file__)
    if os.environ.get("NUMBA_CACHE_DIR"):          # Numba's own order: this folder when set,
        places = [os.environ["NUMBA_CACHE_DIR"]]
    elif os.access(source, os.W_OK):              # else next to the source, else the user's cache
        places = [os.path.join(source, "__pycache__")]
    else:
        places = [os.path.join(os.path.expanduser("~"), ".cache", "numba")]
    return not all(any(glob.glob(os.path.join(place, "**", f"{module}.*.nbi"), recursive=True) for place in places)
                   for module in KERNEL_MODULES)


def is_interactive(stream: IO[str]) -> bool:
    """A terminal, or a Jupyter notebook's output (which redraws a line on '\\r' as a terminal does)."""
    try:
        if stream.isatty():
            return True
    except (AttributeError, ValueError):
        return False
    return "ipykernel" in sys.modules and stream in (sys.stdout, sys.stderr)


class Progress:
    """The output of one `fit` run; `fit` calls `batch` after each batch, `epoch` after each epoch,
    `line` for any other message and `close` at the end.

    verbose 0: nothing. 1: a progress bar (tqdm's if installed) on a terminal or in Jupyter, with a
    line every `log_every` epochs kept above it. 2: one line per epoch on a terminal. Output that is
    not interactive gets, at 1 or 2, a line every `log_every` epochs and the last epoch's.
    """

    def __init__(self, verbose: int, epochs: int, batches: int, file: Optional[IO[str]] = None,
                 log_every: Optional[int] = None) -> None:
        self.out = sys.stdout if file is None else file
        self.verbose, self.epochs, self.batches = int(verbose), epochs, max(batches, 1)
        interactive = is_interactive(self.out)
        if log_every is None:
            log_every = 1 if (interactive and self.verbose == 2) else default_log_every(epochs)
        self.log_every = log_every
        self.bar: Any = None
        if self.verbose == 1 and interactive:
            self.bar = _tqdm_bar(self.out, epochs * self.batches) or _Bar(self.out, epochs, self.batches)
        self.started = time.perf_counter()
        self.last_logs: Dict[str, float] = {}
        self._compile_timer: Optional[threading.Timer] = None
        self._compile_started = 0.0
        self._compile_said = False
        # the notice comes from the timer's thread: without the lock it could be printed just
        # after the first batch ended, and never followed by how long the compile took
        self._compile_lock = threading.Lock()
        if self.verbose and kernel_cache_is_empty():
            self._compile_timer = threading.Timer(COMPILE_NOTICE_AFTER, self._compiling)
            self._compile_timer.daemon = True
            self._compile_started = time.perf_counter()
            self._compile_timer.start()

    def _compiling(self) -> None:
        with self._compile_lock:
            if self._compile_timer is not None:      # the first batch has not ended meanwhile
                self.line(COMPILE_MESSAGE + " ...")
                self._compile_said = True

    def batch(self, epoch: int, done: int, loss: float, samples: int, epoch_seconds: float) -> None:
        """After batch `done` of epoch `epoch`: the running mean loss, samples seen this epoch."""
        if self._compile_timer is not None:
            with self._compile_lock:
                self._compile_timer.cancel()
                self._compile_timer = None
            if self._compile_said:
                self.line(f"compiled the kernels in {duration(time.perf_counter() - self._compile_started)}")
        if self.bar is not None:
            self.bar.update(epoch, done, loss, samples / max(epoch_seconds, 1e-9), self.last_logs)

    def epoch(self, epoch: int, logs: Dict[str, float], last: bool = False) -> bool:
        """After epoch `epoch` (`last`: no more will come): its line, when one is due; whether it was shown."""
        self.last_logs = logs
        due = bool(self.verbose) and (epoch % self.log_every == 0 or last or epoch == 1)
        if due:
            self.line(epoch_line(epoch, self.epochs, logs))
        return due

    def line(self, text: str) -> None:
        """A line of its own (above the bar, which is redrawn after it)."""
        if not self.verbose:
            return
        if self.bar is not None:
            self.bar.write(text)
        else:
            print(text, file=self.out, flush=True)

    def close(self) -> None:
        if self._compile_timer is not None:
            with self._compile_lock:
                self._compile_timer.cancel()
                self._compile_timer = None
        if self.bar is not None:
            self.bar.close()
            self.bar = None


class _Bar:
    """The built-in bar: 'epoch 3/10 [#####.....] 12/45  loss 0.1234  val_acc 0.9612  850 samples/s
    ETA 1m05s', one line redrawn with '\\r' at most 10 times a second, cut to the terminal's width."""

    def __init__(self, stream: IO[str], epochs: int, batches: int) -> None:
        self.stream, self.epochs, self.batches = stream, epochs, batches
        self.started = time.perf_counter()
        self.last_draw = 0.0
        self.drawn = False

    def update(self, epoch: int, done: int, loss: float, rate: float, last_logs: Dict[str, float]) -> None:
        now = time.perf_counter()
        if done < self.batches and now - self.last_draw < 0.1:
            return
        self.last_draw = now
        fraction = ((epoch - 1) * self.batches + done) / (self.epochs * self.batches)
        eta = (now - self.started) * (1 - fraction) / fraction if fraction > 0 else float("nan")
        width = shutil.get_terminal_size((80, 24)).columns - 1      # the last column would wrap some terminals
        filled = int(10 * done / self.batches)
        head = f"epoch {epoch}/{self.epochs} [{'#' * filled}{'.' * (10 - filled)}] {done}/{self.batches}"
        tail = f"ETA {duration(eta)}"
        middle = [f"loss {loss:.4f}"]
        if "val_accuracy" in last_logs:
            middle.append(f"val_acc {last_logs['val_accuracy']:.4f}")
        middle.append(f"{rate:,.0f} samples/s")
        text = head[:max(width - len(tail) - 2, 0)]
        for part in middle:      # drop what does not fit, keeping the ETA
            if len(text) + 2 + len(part) + 2 + len(tail) <= width:
                text += "  " + part
        text = (text + "  " + tail)[:width]
        self.stream.write("\r" + text.ljust(width if self.drawn else len(text)))
        self.stream.flush()
        self.drawn = True

    def write(self, text: str) -> None:
        self._erase()
        print(text, file=self.stream, flush=True)

    def _erase(self) -> None:
        if self.drawn:
            width = shutil.get_terminal_size((80, 24)).columns - 1
            self.stream.write("\r" + " " * width + "\r")
            self.drawn = False

    def close(self) -> None:
        self._erase()
        self.stream.flush()


class _TqdmBar:
    """tqdm.auto's bar over every batch of the run (so its ETA is the run's), epoch and loss beside it."""

    def __init__(self, tqdm: Any, stream: IO[str], total: int) -> None:
        self.tqdm = tqdm
        self.bar = tqdm(total=total, file=stream, unit="batch", dynamic_ncols=True, leave=False)
        self.position = 0
        self.batches_per_epoch = 0

    def update(self, epoch: int, done: int, loss: float, rate: float, last_logs: Dict[str, float]) -> None:
        self.batches_per_epoch = max(self.batches_per_epoch, done)
        target = (epoch - 1) * self.batches_per_epoch + done
        self.bar.set_description(f"epoch {epoch}", refresh=False)
        post = f"loss {loss:.4f}" + (f" val_acc {last_logs['val_accuracy']:.4f}" if "val_accuracy" in last_logs else "")
        self.bar.set_postfix_str(post, refresh=False)
        self.bar.update(target - self.position)
        self.position = target

    def write(self, text: str) -> None:
        self.tqdm.write(text, file=self.bar.fp)

    def close(self) -> None:
        self.bar.close()


def _tqdm_bar(stream: IO[str], total: int) -> Optional[_TqdmBar]:
    """tqdm.auto's bar when tqdm is installed (the `progress` extra) and not turned off with
    AUTOGRAD_LITE_PROGRESS=builtin, else None (the built-in bar is used)."""
    if os.environ.get("AUTOGRAD_LITE_PROGRESS") == "builtin":
        return None
    try:
        from tqdm.auto import tqdm
    except ImportError:
        return None
    return _TqdmBar(tqdm, stream, total)
