"""Hostile files and careless data: gzip bombs, FIFOs, devices, absurd IDX headers, labels that
would make billions of classes, empty or mismatched sets. Each is refused with one sentence,
quickly, and within a small memory budget where a blow-up is the way it would fail."""
import os
import struct
from pathlib import Path
import threading
import zlib

import numpy as np
import pytest

from nn.datasets import MAX_CLASSES, IDXFormatError, load_idx_folder, read_idx, write_idx
from tests.budget import MEMORY_ERROR_EXIT, run_with_memory_budget

REPO = Path(__file__).resolve().parents[2]
BUDGET_MB = 200
ONE_GIB_IN_MIB = 1024


def _idx_header(code: int, shape) -> bytes:
    return bytes([0, 0, code, len(shape)]) + struct.pack(f">{len(shape)}I", *shape)


def _write_gzip_bomb(path, idx_header: bytes, zero_mib: int) -> None:
    """A valid gzip file of `idx_header` then `zero_mib` MiB of zeros, about 1 KB per MiB.

    Each MiB of zeros is compressed once after a full flush, so the same compressed segment
    can be written `zero_mib` times: building a 1 GiB bomb takes a fraction of a second.
    """
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)   # raw deflate; the gzip frame is ours
    zeros = bytes(1 << 20)
    head = compressor.compress(idx_header) + compressor.flush(zlib.Z_FULL_FLUSH)
    segment = compressor.compress(zeros) + compressor.flush(zlib.Z_FULL_FLUSH)
    crc = zlib.crc32(idx_header)
    for _ in range(zero_mib):
        crc = zlib.crc32(zeros, crc)
    size = len(idx_header) + zero_mib * len(zeros)
    with open(path, "wb") as f:
        f.write(b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x02\xff" + head)
        for _ in range(zero_mib):
            f.write(segment)
        f.write(compressor.flush() + struct.pack("<II", crc, size & 0xFFFFFFFF))


def _in_budget(path, call: str = "read_idx(path)"):
    """Run `call` on `path` in a child capped at BUDGET_MB; return (exit status, its output)."""
    result = run_with_memory_budget(
        f"""
        path = {str(path)!r}
        try:
            {call}
            print("no error")
        except DatasetError as error:
            print(error)
        """, BUDGET_MB, setup="from nn.datasets import DatasetError, load_idx_folder, read_idx",
        cwd=str(REPO))
    return result.returncode, result.stdout + result.stderr


def _write_folder(folder, train_images, train_labels, test_images, test_labels):
    write_idx(folder / "train-images-idx3-ubyte.gz", train_images)
    write_idx(folder / "train-labels-idx1-ubyte.gz", train_labels)
    write_idx(folder / "t10k-images-idx3-ubyte.gz", test_images)
    write_idx(folder / "t10k-labels-idx1-ubyte.gz", test_labels)


# ---------------------------------------------------------------- IDX files
def test_gzip_bomb_stops_at_the_promised_size_within_a_small_memory_budget(tmp_path):
    bomb = tmp_path / "train-labels-idx1-ubyte.gz"
    _write_gzip_bomb(bomb, _idx_header(0x08, (10,)), ONE_GIB_IN_MIB)
    assert bomb.stat().st_size < 2 << 20            # 1 MB on disk, 1 GiB decompressed
    status, output = _in_budget(bomb)
    assert status != MEMORY_ERROR_EXIT, output
    assert status == 0 and "decompresses to more than its header promises" in output, output
    assert "shape (10,) of uint8 = 10 data bytes" in output


def test_gzip_bomb_promising_its_full_size_is_refused_by_max_bytes_before_reading(tmp_path):
    bomb = tmp_path / "images.gz"
    _write_gzip_bomb(bomb, _idx_header(0x08, (1024, 1024, 1024)), ONE_GIB_IN_MIB)
    status, output = _in_budget(bomb, "read_idx(path, max_bytes=10**8)")
    assert status == 0 and "1073741824 data bytes, more than the limit of max_bytes = 100000000" in output, output


def test_gzip_header_promising_more_than_the_file_can_hold_is_refused_before_reading(tmp_path):
    path = tmp_path / "tiny.gz"
    path.write_bytes(zlib.compress(_idx_header(0x08, (1000, 1000, 1000)), wbits=31))
    status, output = _in_budget(path)
    assert status == 0 and f"more than a gzip file of {path.stat().st_size} bytes can hold" in output, output


def test_raw_header_promising_more_than_the_file_holds_is_refused_before_reading(tmp_path):
    path = tmp_path / "short-idx1-ubyte"
    path.write_bytes(_idx_header(0x08, (2 ** 31,)) + b"\x00" * 10)
    status, output = _in_budget(path)
    assert status == 0 and "truncated" in output and "but only 10 follow the header" in output, output


def test_dimensions_whose_product_overflows_int64_are_refused_in_one_sentence(tmp_path):
    path = tmp_path / "huge-idx3-ubyte"
    path.write_bytes(_idx_header(0x08, (2 ** 32 - 1,) * 3))
    exact = (2 ** 32 - 1) ** 3               # an int64 product would wrap around to a small number
    with pytest.raises(IDXFormatError, match=rf"promises shape \(4294967295, 4294967295, 4294967295\) "
                                             rf"of uint8 = {exact} data bytes, more than the limit"):
        read_idx(path)


def test_zero_dimension_beside_overflowing_ones_is_refused(tmp_path):
    path = tmp_path / "empty-idx3-ubyte"
    path.write_bytes(_idx_header(0x08, (0, 2 ** 32 - 1, 2 ** 32 - 1)))
    with pytest.raises(IDXFormatError, match=r"shape \(0, 4294967295, 4294967295\), which no array can have"):
        read_idx(path)


@pytest.mark.parametrize("name", ["empty-idx3-ubyte", "empty-idx3-ubyte.gz"])
def test_idx_with_a_zero_dimension_reads_as_an_empty_array(tmp_path, name):
    write_idx(tmp_path / name, np.zeros((0, 28, 28), np.int16))
    empty = read_idx(tmp_path / name)
    assert empty.shape == (0, 28, 28) and empty.dtype == np.int16


def test_fifo_is_refused_without_waiting_for_a_writer(tmp_path):
    fifo = tmp_path / "labels-idx1-ubyte"
    os.mkfifo(fifo)
    outcome = []

    def read():
        try:
            read_idx(fifo)
        except IDXFormatError as error:
            outcome.append(str(error))

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    reader.join(timeout=10)
    if reader.is_alive():       # blocked in open(): give it a writer so the thread ends
        os.close(os.open(fifo, os.O_WRONLY))
        reader.join(timeout=10)
        pytest.fail("read_idx blocked on a FIFO instead of refusing it")
    assert outcome and "is a FIFO (named pipe), not a regular file" in outcome[0]


@pytest.mark.skipif(not os.path.exists("/dev/zero"), reason="no /dev/zero on this system")
def test_dev_zero_is_refused_instead_of_read_until_memory_runs_out():
    status, output = _in_budget("/dev/zero")
    assert status == 0 and "/dev/zero is a device, not a regular file" in output, output


def test_directory_is_refused(tmp_path):
    with pytest.raises(IDXFormatError, match="is a directory, not a regular file"):
        read_idx(tmp_path)


def test_gzip_file_with_data_past_its_header_is_refused_and_a_legitimate_one_reads(tmp_path):
    write_idx(tmp_path / "good.gz", np.arange(12, dtype=np.int16).reshape(3, 4))
    assert read_idx(tmp_path / "good.gz").tolist() == np.arange(12).reshape(3, 4).tolist()
    (tmp_path / "long.gz").write_bytes(zlib.compress(_idx_header(0x08, (3,)) + b"abcd", wbits=31))
    with pytest.raises(IDXFormatError, match=r"decompresses to more than its header promises \(shape \(3,\)"):
        read_idx(tmp_path / "long.gz")


# ---------------------------------------------------------------- labels and sets of a folder
def test_folder_label_of_two_billion_is_refused_naming_the_file_and_the_label(tmp_path):
    images = np.zeros((3, 2, 2), np.uint8)
    _write_folder(tmp_path, images, np.array([0, 2_000_000_000, 1], np.int32),
                  images, np.array([0, 1, 1], np.int32))
    status, output = _in_budget(tmp_path, "load_idx_folder(path)")   # not 2e9 class names
    assert status == 0, output
    assert "train-labels-idx1-ubyte.gz: label 2000000000 at position 1 is outside 0..9999" in output
    assert f"at most MAX_CLASSES = {MAX_CLASSES} classes" in output


@pytest.mark.parametrize("dtype, labels, fault", [
    (np.int8, [0, -1, 1], "label -1 at position 1 is outside"),
    (np.int16, [0, MAX_CLASSES, 1], f"label {MAX_CLASSES} at position 1 is outside"),
    (np.float32, [0.0, 1.0, 2.0], "labels must be integers (class indices), got dtype float32"),
])
def test_folder_labels_out_of_range_or_float_are_refused_naming_the_file(tmp_path, dtype, labels, fault):
    images = np.zeros((3, 2, 2), np.uint8)
    _write_folder(tmp_path, images, np.array([0, 1, 1], np.uint8), images, np.array(labels, dtype))
    with pytest.raises(IDXFormatError) as error:
        load_idx_folder(tmp_path)
    assert f"{tmp_path / 't10k-labels-idx1-ubyte.gz'}: {fault}" in str(error.value)


def test_folder_uint8_labels_up_to_255_give_256_classes(tmp_path):
    images = np.zeros((2, 2, 2), np.uint8)
    _write_folder(tmp_path, images, np.array([0, 255], np.uint8), images, np.array([3, 1], np.uint8))
    ds = load_idx_folder(tmp_path)
    assert ds.num_classes == 256 and ds.y_train.dtype == np.int64


@pytest.mark.parametrize("part", ["train", "t10k"])
def test_folder_with_an_empty_set_is_refused_naming_the_file(tmp_path, part):
    sizes = {"train": 3, "t10k": 2, part: 0}
    for name, n in sizes.items():
        write_idx(tmp_path / f"{name}-images-idx3-ubyte.gz", np.zeros((n, 2, 2), np.uint8))
        write_idx(tmp_path / f"{name}-labels-idx1-ubyte.gz", np.zeros(n, np.uint8))
    with pytest.raises(IDXFormatError, match=rf"set is empty: .*{part}-images-idx3-ubyte.gz holds no images"):
        load_idx_folder(tmp_path)


def test_folder_whose_train_and_test_images_differ_in_size_is_refused_at_load_time(tmp_path):
    _write_folder(tmp_path, np.zeros((3, 28, 28), np.uint8), np.zeros(3, np.uint8),
                  np.zeros((2, 32, 32), np.uint8), np.zeros(2, np.uint8))
    with pytest.raises(IDXFormatError, match=r"training images in .*train-images-idx3-ubyte.gz are 28x28 "
                                             r"but the test images in .*t10k-images-idx3-ubyte.gz are 32x32"):
        load_idx_folder(tmp_path)
