"""Getting a published file into the local cache: mirrors, checksums, atomic writes.

`fetch` returns the path of a verified file in `root`, downloading it from the first
mirror that delivers the published bytes. A download is streamed into a temporary file
beside the target and renamed only once its size and SHA-256 match, so a failed,
partial or tampered download leaves nothing in the cache. Each download has a deadline
for the whole file, so a server that trickles bytes cannot hold it for ever.
"""
from __future__ import annotations

import hashlib
import http.client
import os
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional, Sequence, Union

from autograd_lite.files import atomic_path

from .errors import ChecksumError, DatasetNotFoundError, DownloadError

PathLike = Union[str, os.PathLike]
ENV_DATA_DIR = "AUTOGRAD_LITE_DATA"
_CHUNK = 1 << 16
# The slowest transfer rate (bytes per second) the default deadline allows for, after a minute
# of grace: 60 s + 9.9 MB / 20 kB/s, about 9 minutes, for MNIST's largest file.
MIN_RATE = 20_000


@dataclass(frozen=True)
class RemoteFile:
    """A published file: its name, size in bytes, SHA-256 and (optionally) MD5."""

    name: str
    size: int
    sha256: str
    md5: Optional[str] = None


def default_root() -> Path:
    """Where data sets are cached: `$AUTOGRAD_LITE_DATA`, else `~/.cache/autograd-lite`."""
    env = os.environ.get(ENV_DATA_DIR)
    if env:
        return Path(env).expanduser()
    return Path.home() / ".cache" / "autograd-lite"


def fetch(file: RemoteFile, root: PathLike, mirrors: Sequence[str], download: bool = True,
          timeout: float = 30.0, log: Optional[Callable[[str], None]] = None,
          deadline: Optional[float] = None) -> Path:
    """The path of `file` in `root`, verified; downloaded from `mirrors` first if missing.

    A file already in `root` is checked (size and SHA-256) before it is used. Mirrors are
    base URLs tried in order (`mirror + file.name`). `timeout` bounds each wait for the server
    (seconds); `deadline` bounds each mirror's whole download (default
    `default_deadline(file)`: 60 s plus the file's size at `MIN_RATE`), so a server that
    trickles bytes fails too. Raises `DatasetNotFoundError` when the file is missing and
    `download` is False, `DownloadError` when no mirror delivers it (each mirror's failure is
    listed), `ChecksumError` for a cached file that is corrupt.
    """
    root = Path(root)
    path = root / file.name
    if path.is_file():
        problem = verify(path, file)
        if problem:
            raise ChecksumError(f"{path} is in the cache but {problem}; delete it so that it is "
                                "downloaded again")
        return path
    if not download:
        raise DatasetNotFoundError(
            f"{file.name} is not in {root} and downloading is turned off; put the file there "
            "or allow the download")
    if not mirrors:
        raise DownloadError(f"{file.name} is not in {root} and no mirror is configured")
    if deadline is None:
        deadline = default_deadline(file)
    created = _make_dirs(root)
    failures = []
    for mirror in mirrors:
        url = mirror.rstrip("/") + "/" + file.name
        if log:
            log(f"downloading {url}")
        try:
            _download(url, path, file, timeout, deadline)
            return path
        except (OSError, ValueError, http.client.HTTPException, ChecksumError) as error:
            failures.append(f"{url}: {_describe(error)}")
    for folder in created:  # leave the disk as it was
        try:
            folder.rmdir()
        except OSError:
            break
    raise DownloadError(f"could not download {file.name} into {root} from any of "
                        f"{len(failures)} mirror(s): " + "; ".join(failures))


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


def _download(url: str, path: Path, file: RemoteFile, timeout: float, deadline: float) -> None:
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
