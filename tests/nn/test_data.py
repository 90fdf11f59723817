"""Data: the bundled digits, the IDX reader, preprocessing, stratified splits, mini-batches."""
import gzip
import struct

import numpy as np
import pytest
from hypothesis import given, strategies as st

from nn.data import batches, check_labels, one_hot, preprocess, stratified_split
from nn.datasets import (DatasetError, IDXFormatError, load_dataset, load_digits, load_idx_folder,
                         read_idx, write_idx)
from nn.datasets import catalog


# ---------------------------------------------------------------- bundled digits
def test_bundled_digits_have_the_published_shape_counts_and_range():
    ds = load_digits()
    x = np.concatenate([ds.x_train, ds.x_test])
    y = np.concatenate([ds.y_train, ds.y_test])
    assert x.shape == (1797, 8, 8) and x.dtype == np.uint8
    assert x.min() == 0 and x.max() == 16 and ds.max_value == 16
    assert np.bincount(y).tolist() == [178, 182, 177, 183, 181, 182, 181, 179, 174, 180]


def test_bundled_digits_test_split_is_stratified_and_fixed():
    a, b = load_digits(), load_digits()
    assert np.array_equal(a.x_test, b.x_test) and np.array_equal(a.y_train, b.y_train)
    share = np.bincount(a.y_test) / np.bincount(np.concatenate([a.y_train, a.y_test]))
    assert np.all(np.abs(share - 0.2) < 0.01)


def test_bundled_digits_with_a_wrong_checksum_are_refused(monkeypatch):
    monkeypatch.setattr(catalog, "DIGITS_SHA256", "0" * 64)
    with pytest.raises(DatasetError, match="SHA-256"):
        load_digits()


def test_unknown_dataset_name_lists_the_choices():
    with pytest.raises(DatasetError, match="unknown data set 'cifar'.*digits, mnist, fashion-mnist"):
        load_dataset("cifar")


# ---------------------------------------------------------------- IDX reader
@pytest.mark.parametrize("suffix", ["", ".gz"])
@pytest.mark.parametrize("dtype", [np.uint8, np.int16, np.float32, np.float64])
def test_idx_round_trip_raw_and_gzip(tmp_path, suffix, dtype):
    array = (np.arange(24) - (0 if dtype == np.uint8 else 5)).astype(dtype).reshape(2, 3, 4)
    path = tmp_path / f"a-idx3{suffix}"
    write_idx(path, array)
    assert (path.read_bytes()[:2] == b"\x1f\x8b") == (suffix == ".gz")
    out = read_idx(path)
    assert out.dtype == np.dtype(dtype) and np.array_equal(out, array)


def test_idx_header_is_the_mnist_magic_number(tmp_path):
    write_idx(tmp_path / "x", np.zeros((5, 28, 28), np.uint8))
    write_idx(tmp_path / "y", np.zeros(5, np.uint8))
    assert struct.unpack(">IIIII", (tmp_path / "x").read_bytes()[:20]) == (2051, 5, 28, 28, 0)
    assert struct.unpack(">II", (tmp_path / "y").read_bytes()[:8]) == (2049, 5)


def test_idx_bad_magic_number_is_named(tmp_path):
    path = tmp_path / "bad"
    path.write_bytes(b"\x12\x34\x08\x01" + b"\x00" * 8)
    with pytest.raises(IDXFormatError, match="magic number 0x12340801"):
        read_idx(path)


def test_idx_truncated_data_names_expected_and_actual_size(tmp_path):
    path = tmp_path / "short"
    write_idx(path, np.ones((10, 4, 4), np.uint8))
    path.write_bytes(path.read_bytes()[:-7])
    with pytest.raises(IDXFormatError, match=r"truncated.*\(10, 4, 4\).*160 data bytes.*153"):
        read_idx(path)


def test_idx_truncated_header_is_reported(tmp_path):
    path = tmp_path / "hdr"
    path.write_bytes(b"\x00\x00\x08\x03" + b"\x00\x00\x00\x05")
    with pytest.raises(IDXFormatError, match="inside its header"):
        read_idx(path)


def test_idx_extra_bytes_are_reported(tmp_path):
    path = tmp_path / "long"
    write_idx(path, np.ones(3, np.uint8))
    path.write_bytes(path.read_bytes() + b"xx")
    with pytest.raises(IDXFormatError, match="2 bytes more"):
        read_idx(path)


def test_idx_truncated_gzip_is_reported(tmp_path):
    path = tmp_path / "t.gz"
    write_idx(path, np.random.default_rng(0).integers(0, 255, (50, 28, 28), dtype=np.uint8))
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(IDXFormatError, match="truncated gzip"):
        read_idx(path)


def test_idx_corrupt_gzip_is_reported(tmp_path):
    path = tmp_path / "c.gz"
    body = bytearray(gzip.compress(b"\x00\x00\x08\x01\x00\x00\x00\x03abc"))
    body[-8] ^= 0xFF  # break the CRC
    path.write_bytes(bytes(body))
    with pytest.raises(IDXFormatError, match="corrupt gzip"):
        read_idx(path)


def test_idx_folder_with_different_image_and_label_counts_is_refused(tmp_path):
    write_idx(tmp_path / "train-images-idx3-ubyte.gz", np.zeros((4, 2, 2), np.uint8))
    write_idx(tmp_path / "train-labels-idx1-ubyte.gz", np.zeros(3, np.uint8))
    write_idx(tmp_path / "t10k-images-idx3-ubyte", np.zeros((2, 2, 2), np.uint8))
    write_idx(tmp_path / "t10k-labels-idx1-ubyte", np.zeros(2, np.uint8))
    with pytest.raises(IDXFormatError, match="train set has 4 images but 3 labels"):
        load_idx_folder(tmp_path)


def test_idx_folder_loads_raw_and_gzip_files(tmp_path):
    write_idx(tmp_path / "train-images-idx3-ubyte.gz", np.full((4, 2, 2), 7, np.uint8))
    write_idx(tmp_path / "train-labels-idx1-ubyte.gz", np.array([0, 1, 2, 1], np.uint8))
    write_idx(tmp_path / "t10k-images-idx3-ubyte", np.zeros((2, 2, 2), np.uint8))
    write_idx(tmp_path / "t10k-labels-idx1-ubyte", np.array([2, 0], np.uint8))
    ds = load_dataset(str(tmp_path))
    assert ds.x_train.shape == (4, 2, 2) and ds.num_classes == 3 and ds.y_test.tolist() == [2, 0]


# ---------------------------------------------------------------- preprocessing
def test_preprocess_scales_to_the_range_and_flattens():
    images = np.array([[[0, 8], [16, 4]]], np.uint8)
    assert np.allclose(preprocess(images, 16), [[0, 0.5, 1, 0.25]])
    assert np.allclose(preprocess(images, 16, (-1, 1)), [[-1, 0, 1, -0.5]])
    assert preprocess(images, 16, flatten=False).shape == (1, 2, 2)
    assert preprocess(images, 16).dtype == np.float32
    assert preprocess(images, 16, dtype=np.float64).dtype == np.float64


def test_one_hot_and_label_checks():
    assert one_hot(np.array([2, 0]), 3).tolist() == [[0, 0, 1], [1, 0, 0]]
    with pytest.raises(ValueError, match="label 3 at position 1 is outside 0..2"):
        check_labels(np.array([0, 3]), 3, "one_hot")
    with pytest.raises(ValueError, match="must be integers"):
        check_labels(np.array([0.5]), 3, "fit")


def test_check_labels_refuses_float_labels_even_whole_numbered_ones():
    with pytest.raises(ValueError, match=r"fit: labels must be integers \(class indices\), got dtype "
                                         r"float64; convert whole-number float labels with .astype\(int\)"):
        check_labels(np.array([0.0, 2.0]), 3, "fit")
    with pytest.raises(ValueError, match="got dtype float32; for one-hot rows, pass their argmax"):
        check_labels(np.eye(3, dtype=np.float32), 3, "fit")


def test_check_labels_names_the_first_bad_label_its_position_and_how_many_are_bad():
    with pytest.raises(ValueError, match=r"evaluate: label -2 at position 1 is outside 0..2 "
                                         r"\(3 classes; out-of-range labels: 2 of 4\)"):
        check_labels(np.array([0, -2, 3, 1], np.int8), 3, "evaluate")


def test_check_labels_with_n_samples_wants_one_label_per_sample():
    with pytest.raises(ValueError, match=r"loss: labels must have shape \(4,\), one per sample, got \(3,\)"):
        check_labels([0, 1, 2], 3, "loss", n_samples=4)
    assert check_labels([0, 1, 2], 3, "loss", n_samples=3).tolist() == [0, 1, 2]


def test_check_labels_returns_contiguous_int64_and_accepts_an_empty_list():
    y = check_labels(np.array([2, 0, 1, 1], np.uint8)[::2], 3, "fit")
    assert y.dtype == np.int64 and y.flags.c_contiguous and y.tolist() == [2, 1]
    assert check_labels([], 3, "fit").shape == (0,)


# ---------------------------------------------------------------- stratified split
@given(counts=st.lists(st.integers(2, 40), min_size=2, max_size=6),
       fraction=st.floats(0.05, 0.95), seed=st.integers(0, 2**31))
def test_stratified_split_keeps_every_class_proportion(counts, fraction, seed):
    y = np.repeat(np.arange(len(counts)), counts)
    x = np.arange(len(y))
    (xa, ya), (xb, yb) = stratified_split(x, y, fraction, seed=seed)
    assert sorted(np.concatenate([xa, xb]).tolist()) == x.tolist()      # a partition
    assert np.array_equal(y[xa], ya) and np.array_equal(y[xb], yb)      # labels travel with rows
    for label, n in enumerate(counts):
        assert int(np.sum(yb == label)) == min(max(round(fraction * n), 1), n - 1)


def test_stratified_split_is_seeded():
    y = np.repeat(np.arange(3), 20)
    a = stratified_split(np.arange(60), y, 0.3, seed=1)[1][0]
    b = stratified_split(np.arange(60), y, 0.3, seed=1)[1][0]
    c = stratified_split(np.arange(60), y, 0.3, seed=2)[1][0]
    assert np.array_equal(a, b) and not np.array_equal(a, c)


# ---------------------------------------------------------------- batches
@given(n=st.integers(1, 60), batch_size=st.integers(1, 70), seed=st.integers(0, 100))
def test_batches_cover_every_sample_once_per_pass(n, batch_size, seed):
    x = np.arange(n) * 10
    y = np.arange(n)
    it = batches(x, y, batch_size, seed=seed)
    seen = []
    for xb, yb in it:
        assert np.array_equal(xb, yb * 10) and 1 <= len(yb) <= batch_size
        seen.extend(yb.tolist())
    assert sorted(seen) == list(range(n)) and len(it) == -(-n // batch_size)


def test_batches_same_seed_same_order_and_reshuffled_each_pass():
    x = np.arange(50)
    first = [b.tolist() for b in batches(x, batch_size=7, seed=3)]
    again = [b.tolist() for b in batches(x, batch_size=7, seed=3)]
    it = batches(x, batch_size=7, seed=3)
    pass1, pass2 = [b.tolist() for b in it], [b.tolist() for b in it]
    assert first == again == pass1 and pass1 != pass2


def test_batch_sizes_n_b_and_1_are_batch_minibatch_and_stochastic():
    x = np.arange(10)
    assert len(batches(x, batch_size=None)) == 1
    assert len(batches(x, batch_size=4)) == 3 and len(batches(x, batch_size=4, drop_last=True)) == 2
    assert [len(b) for b in batches(x, batch_size=1)] == [1] * 10
    assert [b.tolist() for b in batches(x, batch_size=4, shuffle=False)] == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]


def test_batches_reject_mismatched_lengths_and_bad_sizes():
    with pytest.raises(ValueError, match="5 samples but 4 labels"):
        batches(np.zeros(5), np.zeros(4))
    with pytest.raises(ValueError, match="batch_size must be a positive integer"):
        batches(np.zeros(5), batch_size=0)
