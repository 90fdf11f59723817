"""kernels.uniform: dropout's uniform numbers from a counter-based hash of (key, position)."""
import numpy as np
import pytest

import autograd_lite as ag
from autograd_lite import kernels


def _both(shape, dtype, keys):
    fast = kernels.uniform(shape, dtype, keys)
    previous = ag.set_kernels("numpy")
    try:
        twin = kernels.uniform(shape, dtype, keys)
    finally:
        ag.set_kernels(previous)
    return fast, twin


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_the_numba_kernel_and_its_numpy_twin_give_the_same_bits(dtype):
    keys = np.array([0, 2**64 - 1, 0x9E3779B97F4A7C15], np.uint64)
    fast, twin = _both((3, 40, 7), dtype, keys)
    assert fast.dtype == twin.dtype == dtype and fast.shape == (3, 40, 7)
    assert fast.tobytes() == twin.tobytes()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_the_numbers_are_uniform_on_0_1_and_uncorrelated(dtype):
    n = 200_000
    u = kernels.uniform((n,), dtype, np.array([12345], np.uint64))
    assert u.min() >= 0 and u.max() < 1
    se = np.sqrt(1 / 12 / n)
    assert abs(u.mean() - 0.5) < 5 * se
    assert abs(u.var() - 1 / 12) < 5 * np.sqrt(1 / 180 / n)
    counts = np.histogram(u, bins=20, range=(0, 1))[0]
    assert abs(counts - n / 20).max() < 5 * np.sqrt(n / 20)
    assert abs(np.corrcoef(u[:-1], u[1:])[0, 1]) < 5 / np.sqrt(n)   # neighbours
    v = kernels.uniform((n,), dtype, np.array([12346], np.uint64))   # the next key
    assert abs(np.corrcoef(u, v)[0, 1]) < 5 / np.sqrt(n)


def test_each_block_depends_on_its_key_only():
    keys = np.array([7, 8, 9], np.uint64)
    whole = kernels.uniform((3, 4, 5), np.float32, keys)
    for k, key in enumerate(keys):
        np.testing.assert_array_equal(whole[k], kernels.uniform((4, 5), np.float32, [key]))
    assert not np.array_equal(whole[0], whole[1])


def test_bad_arguments_are_refused_in_one_sentence():
    with pytest.raises(ValueError, match="3 keys cannot split shape"):
        kernels.uniform((4, 5), np.float32, np.arange(3, dtype=np.uint64))
    with pytest.raises(TypeError, match="uniform: dtype must be float32 or float64"):
        kernels.uniform((4,), np.int32, [1])


def test_dropout_masks_repeat_with_the_seed_and_keep_1_minus_p():
    x = np.ones((400, 250))
    a = ag.fused.dropout(x, 0.3, np.random.default_rng(1)).data
    b = ag.fused.dropout(x, 0.3, np.random.default_rng(1)).data
    np.testing.assert_array_equal(a, b)
    kept = (a != 0).mean()
    assert abs(kept - 0.7) < 5 * np.sqrt(0.21 / a.size)
