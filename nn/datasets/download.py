"""Getting a published file into the local cache: mirrors, checksums, atomic writes.

`fetch` returns the path of a verified file in `root`, downloading it from the first
mirror that delivers the published bytes. A file already there is accepted as published
(`.gz`), re-compressed by another tool, or uncompressed, when its decompressed content has the
published content checksum; one that differs is refused by name, with both checksums, and
never silently downloaded over. A download is streamed into a temporary file beside the
target and renamed only once its size and SHA-256 match, so a failed, partial or tampered
download leaves nothing in the cache. Each download has a deadline for the whole file, so a
server that trickles bytes cannot hold it for ever.
"""
from __future__ import annotations

import gzip
import hashlib
import http.client
import os
import stat
import sys
import time
import zlib
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional, Sequence, Tuple, Union

from autograd_lite.files import atomic_path, file_kind

from .errors import ChecksumError, DatasetNotFoundError, DownloadError

PathLike = Union[str, os.PathLike]
ENV_DATA_DIR = "AUTOGRAD_LITE_DATA"
_CHUNK = 1 << 16
# The slowest transfer rate (bytes per second) the default deadline allows for, after a minute
# of grace: 60 s + 9.9 MB / 20 kB/s, about 9 minutes, for MNIST's largest file.
MIN_RATE = 20_000


@dataclass(frozen=True)
class RemoteFile:
    """A published file: its name, size in bytes, SHA-256 and (optionally) MD5, and where known
    the size and SHA-256 of its decompressed content (which a re-compressed copy shares)."""

    name: str
    size: int
    sha256: str
    md5: Optional[str] = None
    content_size: Optional[int] = None
    content_sha256: Optional[str] = None

    @property
    def raw_name(self) -> str:
        """The name of the uncompressed file: `name` without `.gz`."""
        return self.name[:-len(".gz")] if self.name.endswith(".gz") else self.name


def default_root() -> Path:
    """Where data sets are cached: `$AUTOGRAD_LITE_DATA`, else `~/.cache/autograd-lite`."""
    env = os.environ.get(ENV_DATA_DIR)
    if env:
        return Path(env).expanduser()
    return Path.home() / ".cache" / "autograd-lite"


def fetch(file: RemoteFile, root: PathLike, mirrors: Sequence[str], download: bool = True,
          timeout: float = 30.0, log: Optional[Callable[[str], None]] = None,
          deadline: Optional[float] = None, progress: Optional[bool] = None) -> Path:
    """The path of `file` in `root`, verified; downloaded from `mirrors` first if missing.

    A copy already in `root` (`file.name`, or the uncompressed `file.raw_name`) is checked by
    `find_local` before it is used. Mirrors are base URLs tried in order (`mirror + file.name`).
    `timeout` bounds each wait for the server (seconds); `deadline` bounds each mirror's whole
    download (default `default_deadline(file)`: 60 s plus the file's size at `MIN_RATE`), so a
    server that trickles bytes fails too. `progress` shows a byte count on stderr (default: when
    `log` is given and stderr is a terminal). Raises `DatasetNotFoundError` when the file is
    missing and `download` is False, `DownloadError` when no mirror delivers it (one sentence;
    each mirror's failure in its `failures`), `ChecksumError` for a copy in `root` that differs.
    """
    root = Path(root)
    found = find_local(file, root)
    if found is not None:
        return found
    if not download:
        raise DatasetNotFoundError(
            f"{file.name} is not in {root} and downloading is turned off; put the file there "
            "or allow the download")
    if not mirrors:
        raise DownloadError(f"{file.name} is not in {root} and no mirror is configured")
    if deadline is None:
        deadline = default_deadline(file)
    if progress is None:
        progress = log is not None and _is_terminal(sys.stderr)
    path = root / file.name
    created = _make_dirs(root)
    failures, unreachable = [], 0
    for mirror in mirrors:
        url = mirror.rstrip("/") + "/" + file.name
        if log:
            log(f"downloading {url}")
        bar = _Progress(file) if progress else None
        try:
            _download(url, path, file, timeout, deadline, bar)
            return path
        except (OSError, ValueError, http.client.HTTPException, ChecksumError) as error:
            failures.append((url, _describe(error)))
            unreachable += _is_unreachable(error)
        finally:
            if bar:
                bar.close()   # ends the progress line, complete or not
    for folder in created:  # leave the disk as it was
        try:
            folder.rmdir()
        except OSError:
            break
    if unreachable == len(failures):
        message = (f"could not download {file.name}: none of the {len(failures)} mirror(s) could be "
                   "reached (offline?); put the files in a folder and pass --data-dir")
    else:
        message = (f"could not download {file.name} from any of {len(failures)} mirror(s); the last, "
                   f"{failures[-1][0]}, said: {failures[-1][1]}")
    raise DownloadError(message, failures)


def find_local(file: RemoteFile, root: PathLike) -> Optional[Path]:
    """The verified copy of `file` in `root` (`file.name` or `file.raw_name`), None if neither is there.

    Raises `ChecksumError`, naming the file and both checksums, for a copy that `check_copy`
    refuses: it is not downloaded over, since it may be the user's only copy.
    """
    for path in local_candidates(file, root):
        problem = check_copy(path, file)
        if problem:
            raise ChecksumError(f"{path} is not the published {file.name}: {problem}; delete or "
                                "replace it (nothing is downloaded while it is there)")
        return path
    return None


def local_candidates(file: RemoteFile, root: PathLike) -> list:
    """The copies of `file` present in `root`: `file.name`, then the uncompressed `file.raw_name`."""
    root = Path(root)
    names = dict.fromkeys((file.name, file.raw_name))
    return [root / name for name in names if os.path.lexists(root / name)]


def check_copy(path: Path, file: RemoteFile) -> Optional[str]:
    """None if `path` holds `file`'s data, else what differs, in words (both checksums).

    Accepted: the published bytes (size and SHA-256), or, where `file.content_sha256` is known,
    any gzip file or uncompressed file whose content has that SHA-256.
    """
    try:
        info = os.stat(path)
    except OSError as error:
        return f"it cannot be read ({error.strerror or error})"
    if not stat.S_ISREG(info.st_mode):
        return f"it is {file_kind(info.st_mode)}, not a regular file"
    sha256 = None
    if info.st_size == file.size:
        sha256, md5 = _digests(path)
        if sha256 == file.sha256 and (file.md5 is None or md5 == file.md5):
            return None
    if file.content_sha256 is None:
        # Only the published .gz's checksum is known (Fashion-MNIST): another gzip of the same data,
        # or the uncompressed file, cannot be told from a corrupt one.
        sha256 = sha256 or _digests(path)[0]
        return (f"its SHA-256 is {sha256}, expected {file.sha256} (the published .gz; another "
                "compression or an uncompressed copy cannot be checked, since the checksum of the "
                "decompressed data is not known here)")
    content, problem = _content_sha256(path, file.content_size)
    if problem:
        sha256 = sha256 or _digests(path)[0]
        return f"its SHA-256 is {sha256}, expected {file.sha256} as published, and {problem}"
    if content != file.content_sha256:
        return f"the SHA-256 of its decompressed content is {content}, expected {file.content_sha256}"
    return None


def default_deadline(file: RemoteFile) -> float:
    """Seconds allowed for downloading `file`: a minute, plus its size at `MIN_RATE` bytes/s."""
    return 60.0 + file.size / MIN_RATE


def verify(path: Path, file: RemoteFile) -> Optional[str]:
    """None if `path` has the published size, SHA-256 and MD5; else what differs, in words."""
    size = path.stat().st_size
    if size != file.size:
        return f"has {size} bytes where the published file has {file.size}"
    sha256, md5 = _digests(path)
    if sha256 != file.sha256:
        return f"has SHA-256 {sha256} where the published value is {file.sha256}"
    if file.md5 is not None and md5 != file.md5:
        return f"has MD5 {md5} where the published value is {file.md5}"
    return None


def _download(url: str, path: Path, file: RemoteFile, timeout: float, deadline: float,
              progress: Optional["_Progress"]) -> None:
    """Stream `url` into a temporary file beside `path`; rename it only once verified.

    Gives up once `deadline` seconds have passed; a silent server is cut off after `timeout`
    (or `deadline`, if shorter) seconds without a byte.
    """
    # a fresh opener reads the proxy settings (and no_proxy) of the environment now
    opener = urllib.request.build_opener()
    started = time.monotonic()
    with atomic_path(path, "download") as tmp_name:
        tmp = Path(tmp_name)
        with open(tmp, "wb") as out, opener.open(url, timeout=min(timeout, deadline)) as response:
            received = 0
            while True:
                # read1 returns what has arrived instead of waiting for a full chunk, so the
                # deadline is checked while a slow server trickles
                try:
                    chunk = response.read1(_CHUNK)
                except TimeoutError:
                    _check_deadline(started, deadline, received, file)
                    raise
                if not chunk:
                    break
                received += len(chunk)
                if received > file.size:
                    raise ChecksumError(f"the server sent more than the published {file.size} bytes")
                out.write(chunk)
                if progress:
                    progress.update(received)
                _check_deadline(started, deadline, received, file)
            announced = response.headers.get("Content-Length")
            if announced is not None and announced.isdigit() and received < int(announced):
                raise http.client.IncompleteRead(b"", int(announced) - received)
        problem = verify(tmp, file)
        if problem:
            raise ChecksumError(f"the downloaded file {problem}")


def _check_deadline(started: float, deadline: float, received: int, file: RemoteFile) -> None:
    elapsed = time.monotonic() - started
    if elapsed > deadline:
        raise DownloadError(f"received {received} of {file.size} bytes in {elapsed:.1f} s, past the "
                            f"deadline of {deadline:g} s for the whole file (the server is too slow; "
                            "pass a larger deadline for a slow connection)")


def _digests(path: Path) -> tuple:
    sha256, md5 = hashlib.sha256(), hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(_CHUNK), b""):
            sha256.update(chunk)
            md5.update(chunk)
    return sha256.hexdigest(), md5.hexdigest()


def _content_sha256(path: Path, content_size: Optional[int]) -> Tuple[str, Optional[str]]:
    """The SHA-256 of the file's content, decompressed if it is gzip, and None; or "" and a problem.

    Reads no more than `content_size` + 1 bytes of content, so a gzip bomb is cut short.
    """
    limit = None if content_size is None else content_size + 1
    sha256, size = hashlib.sha256(), 0
    with open(path, "rb") as raw:
        compressed = raw.read(2) == b"\x1f\x8b"
        raw.seek(0)
        stream = gzip.GzipFile(fileobj=raw) if compressed else raw
        try:
            while limit is None or size < limit:
                chunk = stream.read(_CHUNK if limit is None else min(_CHUNK, limit - size))
                if not chunk:
                    break
                size += len(chunk)
                sha256.update(chunk)
        except (EOFError, gzip.BadGzipFile, zlib.error) as error:
            return "", f"it is not a readable gzip file ({error or 'it ends early'})"
    if content_size is not None and size != content_size:
        more = "more than " if size > content_size else ""
        return "", (f"its {'decompressed ' if compressed else ''}content has {more}{size} bytes, "
                    f"expected {content_size}")
    return sha256.hexdigest(), None


class _Progress:
    """A byte count on stderr, rewritten in place a few times a second: `name: 4.2 / 9.9 MB (42%)`."""

    def __init__(self, file: RemoteFile, stream=None, interval: float = 0.2):
        self.file, self.stream, self.interval = file, stream or sys.stderr, interval
        self.next_at, self.shown = 0.0, False

    def update(self, received: int) -> None:
        now = time.monotonic()
        if now >= self.next_at or received == self.file.size:
            self.next_at = now + self.interval
            self.shown = True
            self.stream.write(f"\r{self.file.name}: {received / 1e6:.1f} / {self.file.size / 1e6:.1f} MB "
                              f"({100 * received // max(self.file.size, 1)}%)")
            self.stream.flush()

    def close(self) -> None:
        if self.shown:
            self.stream.write("\n")
            self.stream.flush()


def _is_terminal(stream) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def _is_unreachable(error: BaseException) -> bool:
    """True when the mirror did not answer at all (no network, no such host, refused, silent)."""
    if isinstance(error, urllib.error.HTTPError):
        return False
    return isinstance(error, (urllib.error.URLError, TimeoutError, ConnectionError))


def _make_dirs(root: Path) -> list:
    """Create `root` and its missing parents; return the folders created, deepest first."""
    created = []
    folder = root
    while not folder.exists():
        created.append(folder)
        folder = folder.parent
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise DownloadError(f"cannot create the data folder {root}: {error.strerror or error}") from None
    return created


def _describe(error: BaseException) -> str:
    if isinstance(error, urllib.error.HTTPError):
        return f"HTTP {error.code} {error.reason}"
    if isinstance(error, urllib.error.URLError):
        return f"cannot connect ({getattr(error.reason, 'strerror', None) or error.reason})"
    if isinstance(error, http.client.IncompleteRead):
        return (f"the connection closed {error.expected} bytes before the end of the file "
                "(truncated transfer)")
    if isinstance(error, TimeoutError):
        return "timed out"
    return str(error) or type(error).__name__
