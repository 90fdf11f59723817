"""Files written safely, and read in bounded chunks: the project's one atomic-write helper
(autograd_lite and nn) and its one chunked reader.

A file is written under a temporary name beside its target, flushed to disk, and renamed over
the target only once complete (`os.replace` is atomic), so an exception, Ctrl-C or SIGTERM in
the middle leaves the old file (or none) and no temporary file, never half a file. Only regular
files are written: a target that is a directory, a device or a FIFO is refused before anything
is written, and a symbolic link is followed (the link stays; the file it points to is replaced).
`read_into` fills an array's memory from a (decompressing) stream a chunk at a time, so a
hostile file costs no more memory than the array it claims to be.
"""
from __future__ import annotations

import contextlib
import os
import signal
import stat
import tempfile
import threading
from typing import IO, BinaryIO, Iterator

__all__ = ["check_output_path", "atomic_path", "atomic_write", "file_kind", "read_into"]


def check_output_path(path: "os.PathLike[str] | str", op: str) -> str:
    """The real path a write to `path` replaces, or a ValueError naming `op` and what is wrong.

    Refused: an empty path, an existing target that is not a regular file (directory, device,
    FIFO, socket), and a folder that does not exist. A symbolic link resolves to its target.

    Example:
        >>> check_output_path("model.npz", "save")  # doctest: +SKIP
        '/home/me/model.npz'
    """
    raw = os.fspath(path)
    if not isinstance(raw, str):
        raise TypeError(f"{op}: the output path must be a str or a path, got {type(raw).__name__} {raw!r:.80}")
    if raw == "":
        raise ValueError(f"{op}: the output path is empty; give a file name such as 'model.npz'")
    real = os.path.realpath(raw)
    try:
        mode = os.stat(real).st_mode
    except FileNotFoundError:
        mode = None
    except OSError as error:
        raise ValueError(f"{op}: cannot write {raw!r}: {error.strerror}") from None
    if mode is not None and not stat.S_ISREG(mode):
        raise ValueError(f"{op}: {raw!r} is {file_kind(mode)}, not a regular file; give a file path")
    folder = os.path.dirname(real)
    if not os.path.isdir(folder):
        raise ValueError(f"{op}: the folder {os.path.dirname(os.path.abspath(raw))!r} of {raw!r} "
                         "does not exist; create it first")
    return real


@contextlib.contextmanager
def atomic_path(path: "os.PathLike[str] | str", op: str) -> Iterator[str]:
    """`with atomic_path(path, op) as tmp:` write the file at `tmp`; it replaces `path` on success.

    For writers that want a file name (Graphviz, matplotlib). The temporary file exists (empty)
    when the block starts; on any exception, and on SIGTERM in the main thread, it is removed.
    """
    real = check_output_path(path, op)
    folder, name = os.path.split(real)
    fd, tmp = tempfile.mkstemp(prefix="." + name + ".", suffix=".tmp", dir=folder)
    os.close(fd)
    try:
        with _sigterm_raises():
            yield tmp
            with open(tmp, "rb+") as f:
                os.fsync(f.fileno())
            os.chmod(tmp, os.stat(real).st_mode & 0o777 if os.path.exists(real) else 0o644)
            os.replace(tmp, real)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


@contextlib.contextmanager
def atomic_write(path: "os.PathLike[str] | str", op: str, mode: str = "wb") -> Iterator[IO]:
    """`with atomic_write(path, op) as f:` write to `f`; the file appears at `path` only when complete.

    Example:
        >>> with atomic_write("notes.txt", "save notes", "w") as f:  # doctest: +SKIP
        ...     f.write("hello")
    """
    if mode not in ("w", "wb"):
        raise ValueError(f"atomic_write: mode must be 'w' or 'wb', got {mode!r}")
    with atomic_path(path, op) as tmp:
        with open(tmp, mode) as f:
            yield f
            f.flush()


class _Terminated(SystemExit):
    """SIGTERM turned into an exception, so that the write's cleanup runs before the exit."""


@contextlib.contextmanager
def _sigterm_raises() -> Iterator[None]:
    """Within the block, SIGTERM raises (exit status 143) instead of killing the process outright.

    Only where Python lets us (the main thread) and only when nobody else handles SIGTERM.
    """
    if threading.current_thread() is not threading.main_thread() \
            or signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
        yield
        return

    def terminate(signum: int, frame: object) -> None:
        raise _Terminated(128 + signum)

    signal.signal(signal.SIGTERM, terminate)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)


def file_kind(mode: int) -> str:
    """What a file is, from its `st_mode`, in words for error messages ('a directory', 'a FIFO ...')."""
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISFIFO(mode):
        return "a FIFO (named pipe)"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a regular file"


def read_into(stream: BinaryIO, buffer: memoryview, chunk: int = 1 << 22) -> int:
    """Fill `buffer` (bytes) from `stream`, `chunk` bytes at a time, so that a decompressing stream
    never inflates more than one chunk ahead; return the number of bytes filled, fewer only if the
    stream ended."""
    filled = 0
    while filled < len(buffer):
        n = stream.readinto(buffer[filled:filled + chunk])
        if not n:
            break
        filled += n
    return filled
