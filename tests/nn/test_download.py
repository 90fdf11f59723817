"""Downloads against a local HTTP server on 127.0.0.1 (good file, wrong checksum, truncated file,
truncated transfer, a server that trickles, server down), and MNIST from ../shared/data/mnist
when it exists."""
import contextlib
import hashlib
import http.server
import re
import shutil
import socket
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from nn.datasets import (FASHION_MNIST_MIRRORS, MNIST_FILES, MNIST_MIRRORS, ChecksumError,
                         DatasetNotFoundError, DownloadError, RemoteFile, fetch, load_mnist, read_idx,
                         write_idx)
from nn.datasets import download

SHARED_MNIST = Path(__file__).resolve().parents[3] / "shared" / "data" / "mnist"


class _Handler(http.server.BaseHTTPRequestHandler):
    files: dict = {}          # path -> bytes
    cut_transfer: set = set()  # paths whose transfer stops halfway (Content-Length stays full)

    def do_GET(self):
        body = self.files.get(self.path)
        if body is None:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body[: len(body) // 2] if self.path in self.cut_transfer else body)

    def log_message(self, *args):
        pass


class _TricklingHandler(http.server.BaseHTTPRequestHandler):
    """Announces the whole body, then sends it one byte a second."""
    body = b""

    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Length", str(len(self.body)))
        self.end_headers()
        try:
            for i in range(len(self.body)):
                self.wfile.write(self.body[i:i + 1])
                time.sleep(1)
        except OSError:      # the client gave up, as it should
            pass

    def log_message(self, *args):
        pass


@contextlib.contextmanager
def _serving(handler, monkeypatch):
    """Serve `handler` on 127.0.0.1 (bypassing any proxy); yield the base URL; stop afterwards."""
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/"
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join()


@pytest.fixture
def server(monkeypatch):
    """A local HTTP server: yields (base_url, files dict, cut set); stopped after the test."""
    handler = type("Handler", (_Handler,), {"files": {}, "cut_transfer": set()})
    with _serving(handler, monkeypatch) as base:
        yield base, handler.files, handler.cut_transfer


TRICKLED = bytes(range(40))   # 40 s at one byte a second


@pytest.fixture
def trickling_server(monkeypatch):
    """A local HTTP server that sends TRICKLED one byte a second: yields its base URL."""
    handler = type("Handler", (_TricklingHandler,), {"body": TRICKLED})
    with _serving(handler, monkeypatch) as base:
        yield base


def _published(name: str, body: bytes) -> RemoteFile:
    return RemoteFile(name, len(body), hashlib.sha256(body).hexdigest(), hashlib.md5(body).hexdigest())


def _closed_port_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/"


def _idx_bytes(tmp_path: Path) -> bytes:
    write_idx(tmp_path / "src.gz", np.arange(60, dtype=np.uint8).reshape(3, 4, 5))
    return (tmp_path / "src.gz").read_bytes()


def test_good_file_is_downloaded_verified_and_readable(server, tmp_path):
    base, files, _ = server
    body = _idx_bytes(tmp_path)
    files["/data.gz"] = body
    root = tmp_path / "cache" / "deep"
    path = fetch(_published("data.gz", body), root, [base])
    assert path == root / "data.gz" and path.read_bytes() == body
    assert read_idx(path).shape == (3, 4, 5)
    assert sorted(p.name for p in root.iterdir()) == ["data.gz"]   # no temporary file left


def test_second_mirror_is_used_when_the_first_fails(server, tmp_path):
    base, files, _ = server
    body = _idx_bytes(tmp_path)
    files["/good/data.gz"] = body
    path = fetch(_published("data.gz", body), tmp_path / "c", [base + "missing/", base + "good/"])
    assert path.read_bytes() == body


def test_wrong_checksum_leaves_nothing_in_the_cache(server, tmp_path):
    base, files, _ = server
    body = _idx_bytes(tmp_path)
    files["/data.gz"] = body[:-1] + bytes([body[-1] ^ 1])   # same size, one bit flipped
    root = tmp_path / "cache"
    with pytest.raises(DownloadError, match="SHA-256 [0-9a-f]{64} where the published value is"):
        fetch(_published("data.gz", body), root, [base])
    assert not root.exists()


def test_truncated_file_leaves_nothing_in_the_cache(server, tmp_path):
    base, files, _ = server
    body = _idx_bytes(tmp_path)
    files["/data.gz"] = body[: len(body) // 2]
    root = tmp_path / "cache"
    root.mkdir()
    with pytest.raises(DownloadError, match=f"has {len(body) // 2} bytes where the published file has {len(body)}"):
        fetch(_published("data.gz", body), root, [base])
    assert list(root.iterdir()) == []


def test_truncated_transfer_leaves_nothing_in_the_cache(server, tmp_path):
    base, files, cut = server
    body = _idx_bytes(tmp_path)
    files["/data.gz"] = body
    cut.add("/data.gz")
    root = tmp_path / "cache"
    root.mkdir()
    with pytest.raises(DownloadError, match="truncated transfer"):
        fetch(_published("data.gz", body), root, [base])
    assert list(root.iterdir()) == []


def test_trickling_server_fails_within_the_deadline_and_leaves_nothing(trickling_server, tmp_path):
    root = tmp_path / "cache"
    root.mkdir()
    started = time.monotonic()
    with pytest.raises(DownloadError, match=rf"{re.escape(trickling_server)}data.gz, said: received \d+ of "
                                            rf"{len(TRICKLED)} bytes in [\d.]+ s, past the deadline of 2 s"):
        fetch(_published("data.gz", TRICKLED), root, [trickling_server], deadline=2)
    assert time.monotonic() - started < 5   # the deadline, the next byte, slack for a busy machine; not 40 s
    assert list(root.iterdir()) == []


def test_default_deadline_applies_when_none_is_given(trickling_server, tmp_path, monkeypatch):
    monkeypatch.setattr(download, "default_deadline", lambda file: 1.0)
    started = time.monotonic()
    with pytest.raises(DownloadError, match="past the deadline of 1 s"):
        fetch(_published("data.gz", TRICKLED), tmp_path / "cache", [trickling_server])
    assert time.monotonic() - started < 4


def test_default_deadline_allows_the_file_at_the_minimum_rate_plus_a_minute():
    for f in MNIST_FILES.values():
        assert download.default_deadline(f) == pytest.approx(60 + f.size / download.MIN_RATE)


@pytest.mark.parametrize("mirrors", [MNIST_MIRRORS, FASHION_MNIST_MIRRORS])
def test_builtin_mirrors_list_https_before_plain_http(mirrors):
    schemes = [mirror.split("://")[0] for mirror in mirrors]
    assert set(schemes) <= {"https", "http"}
    assert schemes == sorted(schemes, key=lambda scheme: scheme != "https")


def test_server_down_is_one_sentence_and_keeps_every_mirror_in_failures(tmp_path):
    url = _closed_port_url()
    root = tmp_path / "cache"
    with pytest.raises(DownloadError, match=r"none of the 2 mirror\(s\) could be reached") as caught:
        fetch(RemoteFile("x.gz", 1, "0" * 64), root, [url, url + "other/"], timeout=5)
    assert [u for u, _ in caught.value.failures] == [url + "x.gz", url + "other/x.gz"]
    assert all(reason.startswith("cannot connect") for _, reason in caught.value.failures)
    assert not root.exists()


def test_missing_file_with_download_off_says_so(tmp_path):
    with pytest.raises(DatasetNotFoundError, match="not in .* downloading is turned off"):
        fetch(RemoteFile("x.gz", 1, "0" * 64), tmp_path, ["http://127.0.0.1:9/"], download=False)


def test_corrupt_cached_file_is_not_used(tmp_path):
    (tmp_path / "x.gz").write_bytes(b"abc")
    actual = hashlib.sha256(b"abc").hexdigest()
    with pytest.raises(ChecksumError, match=f"x.gz is not the published x.gz: its SHA-256 is {actual}, "
                                            f"expected {'0' * 64}.*delete or replace it"):
        fetch(RemoteFile("x.gz", 4, "0" * 64), tmp_path, [])


def test_load_mnist_offline_without_files_fails_clearly(tmp_path):
    with pytest.raises(DatasetNotFoundError, match="train-images-idx3-ubyte.gz is not in"):
        load_mnist(tmp_path, download=False)


def test_load_mnist_root_defaults_to_the_environment_variable(tmp_path, monkeypatch):
    monkeypatch.setenv("AUTOGRAD_LITE_DATA", str(tmp_path / "env-root"))
    with pytest.raises(DatasetNotFoundError, match="env-root"):
        load_mnist(download=False)


needs_mnist = pytest.mark.skipif(not (SHARED_MNIST / "train-images-idx3-ubyte.gz").is_file(),
                                 reason=f"MNIST files not found in {SHARED_MNIST}")


@needs_mnist
def test_load_mnist_reads_the_official_files():
    ds = load_mnist(SHARED_MNIST, download=False)
    assert ds.x_train.shape == (60000, 28, 28) and ds.x_test.shape == (10000, 28, 28)
    assert np.bincount(ds.y_test).tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
    assert np.bincount(ds.y_train)[1] == 6742
    assert abs(ds.x_train.mean() - 33.318) < 1e-3


@needs_mnist
def test_load_mnist_downloads_the_official_files_from_a_mirror(server, tmp_path):
    base, files, _ = server
    for f in MNIST_FILES.values():
        files["/mnist/" + f.name] = (SHARED_MNIST / f.name).read_bytes()
    ds = load_mnist(tmp_path, mirrors=["http://127.0.0.1:1/", base + "mnist/"], verbose=False)
    assert len(ds.x_train) == 60000 and len(ds.y_test) == 10000
    assert sorted(p.name for p in (tmp_path / "mnist").iterdir()) == sorted(
        f.name for f in MNIST_FILES.values())


@needs_mnist
def test_load_mnist_refuses_a_cached_file_that_was_altered(tmp_path):
    for f in MNIST_FILES.values():
        shutil.copy(SHARED_MNIST / f.name, tmp_path / f.name)
    body = bytearray((tmp_path / "t10k-labels-idx1-ubyte.gz").read_bytes())
    body[100] ^= 1
    (tmp_path / "t10k-labels-idx1-ubyte.gz").write_bytes(bytes(body))
    with pytest.raises(ChecksumError, match="t10k-labels-idx1-ubyte.gz is not the published "
                                            "t10k-labels-idx1-ubyte.gz: its SHA-256 is [0-9a-f]{64}, "
                                            "expected f7ae60f9.*not a readable gzip file"):
        load_mnist(tmp_path, download=False)


@needs_mnist
def test_fashion_mnist_does_not_take_mnist_files_with_the_same_names():
    from nn.datasets import load_fashion_mnist
    with pytest.raises(DatasetNotFoundError, match="fashion-mnist"):
        load_fashion_mnist(SHARED_MNIST, download=False)
