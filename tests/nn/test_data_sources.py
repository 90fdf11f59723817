"""Data files from other sources: re-compressed or uncompressed copies accepted by the checksum
of their content with no download attempted, a copy that differs named with both checksums,
Fashion-MNIST's unverifiable copies refused, the offline error in one sentence, download progress."""
import gzip
import hashlib
import shutil

import numpy as np
import pytest

from nn.datasets import (FASHION_MNIST_FILES, MNIST_FILES, ChecksumError, DownloadError, RemoteFile,
                         fetch, load_mnist)
from nn.datasets import catalog
from tests.nn.test_download import SHARED_MNIST, _closed_port_url, _Handler, _serving

needs_mnist = pytest.mark.skipif(not (SHARED_MNIST / "t10k-labels-idx1-ubyte.gz").is_file(),
                                 reason=f"MNIST files not found in {SHARED_MNIST}")


@pytest.fixture
def mirror(monkeypatch):
    """A local HTTP server on 127.0.0.1: yields (base_url, {path: bytes})."""
    handler = type("Handler", (_Handler,), {"files": {}, "cut_transfer": set()})
    with _serving(handler, monkeypatch) as base:
        yield base, handler.files


def _idx(array: np.ndarray) -> bytes:
    """The uncompressed IDX bytes of `array`."""
    header = bytes([0, 0, 8, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    return header + array.astype(np.uint8).tobytes()


def _published(name: str, content: bytes) -> RemoteFile:
    """A RemoteFile as published: gzip of `content` (level 6, mtime 0), with both checksums."""
    body = gzip.compress(content, compresslevel=6, mtime=0)
    return RemoteFile(name, len(body), hashlib.sha256(body).hexdigest(), hashlib.md5(body).hexdigest(),
                      len(content), hashlib.sha256(content).hexdigest())


def _tiny_set(seed: int) -> dict:
    """Four small IDX files (content bytes) under MNIST's names, keyed like MNIST_FILES."""
    rng = np.random.default_rng(seed)
    return {"train_images": _idx(rng.integers(0, 256, (6, 4, 4))), "train_labels": _idx(np.arange(6) % 3),
            "test_images": _idx(rng.integers(0, 256, (3, 4, 4))), "test_labels": _idx(np.arange(3))}


@pytest.fixture
def tiny_mnist(monkeypatch):
    """MNIST's catalog entry replaced by a tiny published set: yields {key: (RemoteFile, content)}."""
    contents = _tiny_set(0)
    files = {key: _published(MNIST_FILES[key].name, content) for key, content in contents.items()}
    monkeypatch.setattr(catalog, "MNIST_FILES", files)
    monkeypatch.setitem(catalog.IDX_SETS, "mnist", files)
    return {key: (files[key], contents[key]) for key in files}


@pytest.mark.parametrize("form", ["level 9, another mtime", "level 1 with a file name", "uncompressed"])
def test_copies_from_other_sources_are_loaded_with_no_download(tiny_mnist, tmp_path, form):
    for f, content in tiny_mnist.values():
        if form == "uncompressed":
            (tmp_path / f.raw_name).write_bytes(content)
            continue
        if form.startswith("level 9"):
            body = gzip.compress(content, compresslevel=9, mtime=1234567890)
        else:
            with gzip.GzipFile(f.raw_name, "wb", compresslevel=1, fileobj=(tmp_path / f.name).open("wb")) as g:
                g.write(content)
            body = (tmp_path / f.name).read_bytes()
        assert hashlib.sha256(body).hexdigest() != f.sha256
        (tmp_path / f.name).write_bytes(body)
    # the only mirror is down: any download attempt would fail
    ds = load_mnist(tmp_path, mirrors=[_closed_port_url()], verbose=False)
    assert ds.x_train.shape == (6, 4, 4) and ds.y_test.tolist() == [0, 1, 2]
    assert not (tmp_path / "mnist").exists()


def test_mismatching_copy_is_named_with_both_checksums_and_nothing_is_downloaded(tiny_mnist, mirror, tmp_path):
    base, files = mirror
    for f, content in tiny_mnist.values():
        files["/" + f.name] = gzip.compress(content, mtime=0)   # a mirror that would deliver them
        (tmp_path / f.raw_name).write_bytes(content)
    f, content = tiny_mnist["test_labels"]
    altered = content[:-1] + b"\x07"
    (tmp_path / f.raw_name).write_bytes(altered)
    with pytest.raises(ChecksumError) as caught:
        load_mnist(tmp_path, mirrors=[base], verbose=False)
    message = str(caught.value)
    assert str(tmp_path / f.raw_name) in message and "\n" not in message
    assert f"is {hashlib.sha256(altered).hexdigest()}, expected {f.content_sha256}" in message
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(f.raw_name for f, _ in tiny_mnist.values())


def test_file_of_no_known_data_set_in_the_data_folder_is_refused_not_downloaded_around(tiny_mnist, tmp_path):
    f, _ = tiny_mnist["train_images"]
    (tmp_path / f.name).write_bytes(gzip.compress(b"not an idx file"))
    with pytest.raises(ChecksumError, match=rf"mnist: .*{f.name} is not the published {f.name}: its SHA-256 is "
                                            rf"[0-9a-f]{{64}}, expected {f.sha256} as published, and its "
                                            rf"decompressed content has 15 bytes, expected 112; .*move it out of"):
        load_mnist(tmp_path, mirrors=[_closed_port_url()], verbose=False)


def test_gzip_bomb_posing_as_a_copy_is_cut_short(tmp_path):
    content = bytes(100)
    f = _published("x.gz", content)
    (tmp_path / "x.gz").write_bytes(gzip.compress(bytes(50_000_000), compresslevel=1))
    with pytest.raises(ChecksumError, match="its decompressed content has more than 101 bytes, expected 100"):
        fetch(f, tmp_path, [])


def test_corrupt_gzip_copy_names_the_checksums_and_the_fault(tmp_path):
    f = _published("x.gz", bytes(range(200)))
    (tmp_path / "x.gz").write_bytes(b"\x1f\x8b" + bytes(30))
    with pytest.raises(ChecksumError, match=f"its SHA-256 is [0-9a-f]{{64}}, expected {f.sha256} as published, "
                                            "and it is not a readable gzip file"):
        fetch(f, tmp_path, [])


@needs_mnist
@pytest.mark.parametrize("key", ["test_labels", "train_labels"])
def test_real_mnist_labels_recompressed_or_uncompressed_pass_the_content_checksum(tmp_path, key):
    f = MNIST_FILES[key]
    content = gzip.decompress((SHARED_MNIST / f.name).read_bytes())
    assert hashlib.sha256(content).hexdigest() == f.content_sha256 and len(content) == f.content_size
    (tmp_path / "regzip").mkdir()
    (tmp_path / "regzip" / f.name).write_bytes(gzip.compress(content, compresslevel=9, mtime=1))
    (tmp_path / "raw").mkdir()
    (tmp_path / "raw" / f.raw_name).write_bytes(content)
    assert fetch(f, tmp_path / "regzip", [], download=False) == tmp_path / "regzip" / f.name
    assert fetch(f, tmp_path / "raw", [], download=False) == tmp_path / "raw" / f.raw_name


@needs_mnist
def test_fashion_mnist_does_not_take_uncompressed_mnist_files_either(tmp_path):
    from nn.datasets import DatasetNotFoundError, load_fashion_mnist
    for f in MNIST_FILES.values():
        if f.name.startswith("t10k") or "labels" in f.name:
            (tmp_path / f.raw_name).write_bytes(gzip.decompress((SHARED_MNIST / f.name).read_bytes()))
        else:
            shutil.copy(SHARED_MNIST / f.name, tmp_path / f.name)
    with pytest.raises(DatasetNotFoundError, match="fashion-mnist and downloading is turned off"):
        load_fashion_mnist(tmp_path, download=False)


@pytest.mark.parametrize("name", ["t10k-labels-idx1-ubyte.gz", "t10k-labels-idx1-ubyte"])
def test_fashion_mnist_copy_that_is_not_the_published_gz_is_refused_honestly(tmp_path, name):
    f = FASHION_MNIST_FILES["test_labels"]
    content = _idx(np.arange(10_000) % 10)
    (tmp_path / name).write_bytes(gzip.compress(content, compresslevel=9) if name.endswith(".gz") else content)
    with pytest.raises(ChecksumError, match=f"expected {f.sha256} \\(the published .gz; another compression "
                                            "or an uncompressed copy cannot be checked"):
        fetch(f, tmp_path, [_closed_port_url()])


def test_offline_is_one_short_sentence_that_suggests_data_dir_with_details_kept(tiny_mnist, tmp_path):
    mirrors = [_closed_port_url() + part for part in ("a/", "b/", "c/")]
    with pytest.raises(DownloadError) as caught:
        load_mnist(tmp_path / "cache", mirrors=mirrors, verbose=False)
    message = str(caught.value)
    assert "\n" not in message and len(message) < 160 and "--data-dir" in message, message
    assert message.count(". ") == 0 and "none of the 3 mirror(s) could be reached" in message
    assert [url for url, _ in caught.value.failures] == [m + "train-images-idx3-ubyte.gz" for m in mirrors]
    assert not (tmp_path / "cache").exists()


def test_download_shows_a_byte_progress_line_only_when_asked(mirror, tmp_path, capsys):
    base, files = mirror
    f = _published("x.gz", bytes(300_000))
    files["/x.gz"] = gzip.compress(bytes(300_000), compresslevel=6, mtime=0)
    fetch(f, tmp_path / "a", [base], progress=True)
    err = capsys.readouterr().err
    assert err.startswith("\rx.gz: ") and err.endswith("(100%)\n") and err.count("\n") == 1
    fetch(f, tmp_path / "b", [base], log=lambda message: None)   # stderr is not a terminal here
    assert capsys.readouterr().err == ""
