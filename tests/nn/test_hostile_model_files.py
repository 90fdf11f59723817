"""Hostile model files: zip bombs, lying sizes, huge architectures, wrong dtypes, non-finite numbers.

`nn.load` checks the whole archive before it inflates anything, so a file costs no more memory
than the parameters it claims; each refusal is one ModelFileError sentence naming the file.
The memory tests run the load in a child Python capped at a budget (tests/budget.py).
"""
import io
import json
import os
import struct
import zipfile

import numpy as np
import pytest

import nn
from nn import layers, serialization
from tests.budget import MEMORY_ERROR_EXIT, run_with_memory_budget

BOMB_BYTES = 256 * 2**20      # inflated size of a bomb member; more than the budget below
BUDGET_MB = 200


def _model(seed=0):
    return nn.MLP([5, 6, 4, 3], activation="tanh", seed=seed, dtype=np.float32).eval()


def _npy(array):
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    return buffer.getvalue()


def _rewrite(source, target, replace=(), drop=(), compression=zipfile.ZIP_STORED):
    """Copy the archive `source` to `target`, member by member: `replace` maps a member name to
    its new bytes (or to a function that writes the member into the open archive); `drop` omits."""
    replace = dict(replace)
    with zipfile.ZipFile(source) as old, \
            zipfile.ZipFile(target, "w", compression=compression, compresslevel=1) as new:
        for name in old.namelist():
            if name in drop:
                continue
            content = replace.pop(name, None) or old.read(name)
            if callable(content):
                content(new, name)
            else:
                new.writestr(name, content)
        for name, content in replace.items():
            content(new, name) if callable(content) else new.writestr(name, content)
    return target


def _zeros_member(header):
    """A writer of a member: the .npy header `header`, then BOMB_BYTES of zeros, streamed (the
    test never holds the inflated bytes); deflated, it takes about 1 MB."""
    def write(archive, name):
        with archive.open(name, "w") as member:
            np.lib.format.write_array_header_1_0(member, header)
            chunk = bytes(2**20)
            for _ in range(BOMB_BYTES // len(chunk)):
                member.write(chunk)
    return write


def _declare_sizes(path, member, file_size, compress_size=None):
    """Make the zip entries of `member` (local header and central directory) lie about its sizes."""
    data = bytearray(path.read_bytes())
    name = member.encode()
    local = data.index(b"PK\x03\x04")
    while data[local + 30:local + 30 + len(name)] != name:
        local = data.index(b"PK\x03\x04", local + 4)
    central = data.index(b"PK\x01\x02")
    while data[central + 46:central + 46 + len(name)] != name:
        central = data.index(b"PK\x01\x02", central + 4)
    for offset in (local + 22, central + 24):
        struct.pack_into("<I", data, offset, file_size)
    if compress_size is not None:
        for offset in (local + 18, central + 20):
            struct.pack_into("<I", data, offset, compress_size)
    path.write_bytes(bytes(data))
    return path


def _load_within_budget(path, call="nn.load(path)"):
    """Load `path` in a child capped at BUDGET_MB: the ModelFileError's message, or a failure."""
    body = f"""
path = {str(path)!r}
try:
    {call}
except ValueError as error:     # a ModelFileError, or a module that does not fit
    print(error)
else:
    print("LOADED")
"""
    proc = run_with_memory_budget(body, BUDGET_MB, setup="import nn\n", timeout=60)
    assert proc.returncode != MEMORY_ERROR_EXIT, f"load went over {BUDGET_MB} MB on {path.name}"
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip()


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    path = tmp_path_factory.mktemp("model") / "model.npz"
    nn.save(_model(), path)
    return path


@pytest.fixture(scope="module")
def bomb(saved):
    """The saved model with `output.weight.npy` replaced by BOMB_BYTES of zeros behind the .npy
    header of the (4, 3) float32 array that belongs there; honest zip entry sizes."""
    header = {"descr": "<f4", "fortran_order": False, "shape": (4, 3)}
    path = _rewrite(saved, saved.parent / "bomb.npz", {"output.weight.npy": _zeros_member(header)},
                    compression=zipfile.ZIP_DEFLATED)
    assert path.stat().st_size < 2 * 2**20
    return path


# ---------------------------------------------------------------- zip bombs, within a memory budget
def test_a_zip_bomb_member_is_refused_before_it_is_inflated(bomb):
    message = _load_within_budget(bomb)
    assert "member 'output.weight.npy'" in message and "declares 268,435,584 bytes" in message
    assert "(4, 3) and dtype float32 takes 176" in message and str(bomb) in message


def test_a_bomb_whose_zip_entry_understates_its_size_is_refused_by_the_compressed_size(bomb, tmp_path):
    liar = tmp_path / "liar.npz"
    liar.write_bytes(bomb.read_bytes())
    _declare_sizes(liar, "output.weight.npy", 176)
    message = _load_within_budget(liar)
    assert "compressed bytes for 176 bytes of .npy, more than any deflated member needs" in message


def test_a_bomb_whose_zip_entry_lies_about_both_sizes_is_refused_while_decompressing(bomb, tmp_path):
    liar = tmp_path / "liar.npz"
    liar.write_bytes(bomb.read_bytes())
    _declare_sizes(liar, "output.weight.npy", 176, compress_size=180)
    message = _load_within_budget(liar)
    assert "damaged .npz archive" in message and "CRC" in message


def test_a_bomb_under_a_name_the_module_lacks_is_never_inflated_by_a_lenient_load(saved, tmp_path):
    header = {"descr": "<f4", "fortran_order": False, "shape": (BOMB_BYTES // 4,)}
    plain = tmp_path / "plain.npz"
    _rewrite(saved, plain, {"extra.npy": _zeros_member(header)}, drop=("__header__.npy",),
             compression=zipfile.ZIP_DEFLATED)
    assert _load_within_budget(plain, "nn.load(path, nn.MLP([5, 6, 4, 3], dtype='float32'), "
                                      "strict=False)") == "LOADED"
    message = _load_within_budget(plain, "nn.load(path, nn.MLP([5, 6, 4, 3], dtype='float32'))")
    assert "unexpected key 'extra' (shape (67108864,)" in message


def test_a_small_header_describing_huge_layers_allocates_nothing(saved, tmp_path):
    header = nn.load_header(saved)
    header["architecture"]["sizes"] = [5, 20000, 20000, 3]      # 4e8 parameters, 1.6 GB as float32
    path = _rewrite(saved, tmp_path / "huge.npz",
                    {"__header__.npy": _npy(np.frombuffer(json.dumps(header).encode(), np.uint8))})
    assert path.stat().st_size < 10_000
    message = _load_within_budget(path)
    assert "parameter 'hidden.0.weight'" in message and "is stored with shape (5, 6)" in message
    assert "the architecture needs shape (5, 20000)" in message


def test_an_architecture_over_the_parameter_cap_is_refused_before_anything_is_built(saved, tmp_path):
    header = nn.load_header(saved)
    header["architecture"]["sizes"] = [5, 100000, 100000, 3]
    path = _rewrite(saved, tmp_path / "huge.npz",
                    {"__header__.npy": _npy(np.frombuffer(json.dumps(header).encode(), np.uint8))})
    message = _load_within_budget(path)
    assert "architecture in" in message and "needs 10,001,000,003 parameters (40 GB as float32)" in message
    assert "more than the cap of 1,000,000,000 parameters" in message


# ---------------------------------------------------------------- the architecture and the cap
def test_max_parameters_caps_what_load_rebuilds(saved):
    assert nn.load(saved).num_parameters() == 79
    with pytest.raises(nn.ModelFileError, match="needs 79 parameters .* more than the cap of 78 parameters"):
        nn.load(saved, max_parameters=78)
    assert nn.load(saved, max_parameters=79).num_parameters() == 79
    with pytest.raises(ValueError, match="load: max_parameters must be a positive int, got 0"):
        nn.load(saved, max_parameters=0)


def test_load_draws_no_random_numbers_and_builds_the_arrays_from_the_file(saved, monkeypatch):
    class NoRandomness:
        def __getattr__(self, name):
            raise AssertionError(f"load used the random generator ({name})")

    saved_state = _model().state_dict()
    monkeypatch.setattr(layers, "make_rng", lambda rng=None, seed=None: NoRandomness())
    rebuilt = nn.load(saved)
    assert list(rebuilt.state_dict()) == list(saved_state)
    for name, array in rebuilt.state_dict().items():
        np.testing.assert_array_equal(array, saved_state[name])


@pytest.mark.parametrize("architecture, expected", [
    ({"class": "MLP", "sizes": [5, -6, 3]}, "sizes must be positive whole numbers"),
    ({"class": "MLP", "sizes": [5, 6.5, 3]}, "sizes must be positive whole numbers"),
    ({"class": "MLP", "sizes": [5, True, 3]}, "sizes must be positive whole numbers"),
    ({"class": "MLP", "sizes": "5,6,3"}, "sizes must be a list of layer widths"),
    ({"class": "MLP", "sizes": [2] * 1002}, "at most 1001 widths"),
    ({"class": "MLP", "sizes": [5, 3], "dtype": "int64"}, "dtype must be a floating-point type"),
    ({"class": "MLP", "sizes": [5, 3], "dtype": {"names": ["a"], "formats": ["f8"]}},
     "dtype must be a floating-point type"),
    ({"class": "MLP", "sizes": [5, 3], "bias": "yes"}, "bias must be True or False"),
    ({"class": "MLP", "sizes": [5, 3], "layers": 3}, "accepts only"),
    ({"class": ["MLP"], "sizes": [5, 3]}, "does not record an architecture that can be rebuilt"),
])
def test_a_header_architecture_that_is_not_a_valid_mlp_is_one_clear_error(saved, tmp_path, architecture,
                                                                        expected):
    header = nn.load_header(saved)
    header["architecture"] = architecture
    path = _rewrite(saved, tmp_path / "bad.npz",
                    {"__header__.npy": _npy(np.frombuffer(json.dumps(header).encode(), np.uint8))})
    with pytest.raises(nn.ModelFileError, match=expected):
        nn.load(path)


# ---------------------------------------------------------------- the header itself
@pytest.mark.parametrize("size, found", [(2**24, "16,777,344"), (2**20 + 1, "1,048,577")])
def test_an_absurdly_large_header_is_refused_before_it_is_parsed(saved, tmp_path, size, found):
    big = np.full(size, ord(" "), np.uint8)
    path = _rewrite(saved, tmp_path / "big.npz", {"__header__.npy": _npy(big)},
                    compression=zipfile.ZIP_DEFLATED)
    expected = rf"the header of .* takes {found} bytes; a model file's header is at most 1,048,576"
    with pytest.raises(nn.ModelFileError, match=expected):
        nn.load(path)
    with pytest.raises(nn.ModelFileError, match=expected):
        nn.load_header(path)


def test_a_header_nested_deeply_enough_to_exhaust_the_json_parser_is_a_clear_error(saved, tmp_path):
    nested = np.frombuffer(b"[" * 200_000 + b"]" * 200_000, np.uint8)
    path = _rewrite(saved, tmp_path / "deep.npz", {"__header__.npy": _npy(nested)})
    with pytest.raises(nn.ModelFileError, match="header of .* is JSON nested too deeply"):
        nn.load(path)


def test_members_must_be_the_parameters_the_header_lists(saved, tmp_path):
    missing = _rewrite(saved, tmp_path / "missing.npz", drop=("output.bias.npy",))
    with pytest.raises(nn.ModelFileError, match=r"does not match its arrays: listed but absent "
                                                r"\['output.bias'\]"):
        nn.load(missing)
    extra = _rewrite(saved, tmp_path / "extra.npz", {"spare.npy": _npy(np.zeros(3, np.float32))})
    with pytest.raises(nn.ModelFileError, match=r"present but not listed \['spare'\]"):
        nn.load(extra, _model(), strict=False)
    not_npy = _rewrite(saved, tmp_path / "readme.npz", {"README.txt": b"hello"})
    with pytest.raises(nn.ModelFileError, match="holds 'README.txt', which is not a .npy array"):
        nn.load(not_npy)


def test_a_member_whose_npy_header_claims_gigabytes_of_header_is_refused(saved, tmp_path):
    claim = b"\x93NUMPY\x02\x00" + struct.pack("<I", 2**31) + b" " * 64
    path = _rewrite(saved, tmp_path / "claim.npz", {"output.weight.npy": claim})
    with pytest.raises(nn.ModelFileError, match="runs past the 10,012 bytes a .npy header may take"):
        nn.load(path)


def test_bzip2_and_lzma_members_are_refused_since_zipfile_inflates_them_without_bound(saved, tmp_path):
    for method in (zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA):
        path = _rewrite(saved, tmp_path / f"{method}.npz", compression=method)
        with pytest.raises(nn.ModelFileError, match=f"compressed with zip method {method}; model files "
                                                    "are stored or deflated"):
            nn.load(path)


# ---------------------------------------------------------------- the numbers
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_parameters_are_refused_naming_the_file_and_the_parameter(saved, tmp_path, bad):
    weight = _model().output.weight.data.copy()
    weight[1, 2] = bad
    path = _rewrite(saved, tmp_path / "nan.npz", {"output.weight.npy": _npy(weight)})
    expected = rf"parameter 'output.weight' in '{path}' holds 1 NaN or infinite value \(of 12\)"
    with pytest.raises(nn.ModelFileError, match=expected):
        nn.load(path)
    target = _model(seed=1)
    before = target.state_dict()
    with pytest.raises(nn.ModelFileError, match=expected):
        nn.load(path, target)
    for name, array in target.state_dict().items():
        np.testing.assert_array_equal(array, before[name])


@pytest.mark.parametrize("dtype", [np.int32, np.bool_, np.float64, np.complex64])
def test_parameters_stored_with_another_dtype_than_the_header_says_are_refused(saved, tmp_path, dtype):
    path = _rewrite(saved, tmp_path / "int.npz", {"output.weight.npy": _npy(np.ones((4, 3), dtype))})
    found = np.dtype(dtype).name
    with pytest.raises(nn.ModelFileError, match=rf"'output.weight' .* is stored with shape \(4, 3\) and "
                                                rf"dtype {found}, but the header lists shape \[4, 3\] and "
                                                r"dtype 'float32'"):
        nn.load(path)


def test_integer_parameters_in_a_file_without_header_are_refused(saved, tmp_path):
    state = {name + ".npy": _npy(array) for name, array in _model().state_dict().items()}
    state["output.bias.npy"] = _npy(np.array([1, 0, 1], dtype=np.int64))
    path = _rewrite(saved, tmp_path / "plain.npz", state, drop=("__header__.npy",))
    with pytest.raises(nn.ModelFileError, match="'output.bias' of .* is stored as int64; model parameters "
                                                r"are floating-point \(float32 or float64\)"):
        nn.load(path, _model())


def test_a_fortran_ordered_member_loads_in_the_right_order(saved, tmp_path):
    weight = _model().output.weight.data
    path = _rewrite(saved, tmp_path / "fortran.npz", {"output.weight.npy": _npy(np.asfortranarray(weight))})
    np.testing.assert_array_equal(nn.load(path).output.weight.data, weight)
    np.testing.assert_array_equal(nn.load(path, _model(seed=2)).output.weight.data, weight)


# ---------------------------------------------------------------- not a model file at all
def test_files_that_are_not_model_archives_are_one_sentence_without_pickling_advice(saved, tmp_path):
    data = saved.read_bytes()
    text = tmp_path / "text.npz"
    text.write_text("weights: 1 2 3\n")
    single = tmp_path / "single.npz"
    np.save(single.with_suffix(".npy"), np.zeros(3))
    os.rename(single.with_suffix(".npy"), single)
    truncated = tmp_path / "truncated.npz"
    truncated.write_bytes(data[:len(data) // 2])
    corrupt = tmp_path / "corrupt.npz"
    corrupt.write_bytes(data.replace(b"\x93NUMPY", b"\x93NUMPZ"))
    pickled = tmp_path / "pickled.npz"
    np.savez(pickled, **{"output.weight": np.array([{"payload": 1}], dtype=object)})
    for path, expected in ((text, "is not an .npz archive written by nn.save"),
                           (single, r"holds a single array \(.npy\)"),
                           (truncated, "truncated"),
                           (corrupt, "damaged .npz archive"),
                           (pickled, "holds Python objects")):
        for load in (lambda: nn.load(path), lambda: nn.load(path, _model())):
            with pytest.raises(nn.ModelFileError, match=expected) as caught:
                load()
            message = str(caught.value)
            assert str(path) in message and "\n" not in message and "allow_pickle" not in message
