"""Model files: round trips bit for bit, the header, rebuilding an MLP, atomic writes, bad files."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

import autograd_lite as ag
import nn
from nn import serialization

X = np.random.default_rng(0).standard_normal((7, 5))


def _model(seed=0, **kwargs):
    settings = dict(activation="tanh", output_activation="softmax", dropout=0.3, dtype=np.float32)
    settings.update(kwargs)
    return nn.MLP([5, 6, 4, 3], seed=seed, **settings).eval()


def test_save_then_load_into_a_module_reproduces_predictions_bit_for_bit(tmp_path):
    model = _model(seed=0)
    path = tmp_path / "model.npz"
    assert nn.save(model, path) == str(path)
    other = _model(seed=1)
    assert nn.load(path, other) is other
    np.testing.assert_array_equal(other(X).data, model(X).data)


def test_load_without_a_module_rebuilds_the_mlp_from_the_header(tmp_path):
    model = _model(seed=0)
    nn.save(model, tmp_path / "m.npz")
    rebuilt = nn.load(tmp_path / "m.npz").eval()
    assert isinstance(rebuilt, nn.MLP)
    assert rebuilt.architecture() == model.architecture()
    assert rebuilt.output.weight.dtype == np.float32
    np.testing.assert_array_equal(rebuilt(X).data, model(X).data)


def test_the_file_is_an_npz_with_parameter_names_as_keys_and_a_json_header(tmp_path):
    model = _model()
    nn.save(model, tmp_path / "m.npz")
    with np.load(tmp_path / "m.npz", allow_pickle=False) as archive:
        assert sorted(archive.files) == sorted(["__header__"] + [n for n, _ in model.named_parameters()])
        np.testing.assert_array_equal(archive["output.weight"], model.output.weight.data)
        header = json.loads(archive["__header__"].tobytes().decode("utf-8"))
    assert header == nn.load_header(tmp_path / "m.npz")
    assert header["library_version"] == ag.__version__
    assert header["class"] == "MLP" and header["architecture"] == model.architecture()
    assert header["parameters"]["hidden.0.weight"] == {"shape": [5, 6], "dtype": "float32"}


def test_a_custom_module_round_trips_but_needs_the_module_to_load_into(tmp_path):
    class Custom(nn.Module):
        def __init__(self, seed):
            super().__init__()
            self.first = nn.Linear(5, 2, seed=seed)
            self.file = nn.Parameter(np.full(2, float(seed)))   # a name np.savez could not take

        def forward(self, x):
            return self.first(x) * self.file

    nn.save(Custom(0), tmp_path / "c.npz")
    loaded = nn.load(tmp_path / "c.npz", Custom(1))
    np.testing.assert_array_equal(loaded(X).data, Custom(0)(X).data)
    with pytest.raises(nn.ModelFileError, match=r"saved from Custom.*nn.load\(path, model\)"):
        nn.load(tmp_path / "c.npz")


def test_a_model_saved_in_one_process_loads_in_another(tmp_path):
    model = _model(seed=3)
    nn.save(model, tmp_path / "m.npz")
    np.save(tmp_path / "x.npy", X)
    script = ("import numpy as np, nn; m = nn.load({m!r}).eval(); "
              "np.save({out!r}, m(np.load({x!r})).data)").format(
        m=str(tmp_path / "m.npz"), x=str(tmp_path / "x.npy"), out=str(tmp_path / "out.npy"))
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    env = dict(os.environ, PYTHONPATH=root + os.pathsep + os.environ.get("PYTHONPATH", ""))
    subprocess.run([sys.executable, "-c", script], check=True, env=env, cwd=str(tmp_path), timeout=120)
    np.testing.assert_array_equal(np.load(tmp_path / "out.npy"), model(X).data)


def test_saving_over_a_file_replaces_it_and_leaves_no_temporary_files(tmp_path):
    path = tmp_path / "m.npz"
    nn.save(_model(seed=0), path)
    nn.save(_model(seed=1), path)
    np.testing.assert_array_equal(nn.load(path).eval()(X).data, _model(seed=1)(X).data)
    assert os.listdir(tmp_path) == ["m.npz"]


def test_an_interrupted_save_leaves_the_previous_file_intact(tmp_path, monkeypatch):
    path = tmp_path / "m.npz"
    nn.save(_model(seed=0), path)
    before = path.read_bytes()
    real_write = np.lib.format.write_array
    calls = []

    def write_then_die(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:                    # part of the new archive is on disk
            raise KeyboardInterrupt
        return real_write(*args, **kwargs)

    monkeypatch.setattr(np.lib.format, "write_array", write_then_die)
    with pytest.raises(KeyboardInterrupt):
        nn.save(_model(seed=1), path)
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["m.npz"]
    np.testing.assert_array_equal(nn.load(path).eval()(X).data, _model(seed=0)(X).data)


def test_a_failed_rename_leaves_the_previous_file_intact(tmp_path, monkeypatch):
    path = tmp_path / "m.npz"
    nn.save(_model(seed=0), path)
    before = path.read_bytes()

    def refuse(*args):
        raise OSError("disk went away")

    monkeypatch.setattr(serialization.os, "replace", refuse)
    with pytest.raises(OSError, match="disk went away"):
        nn.save(_model(seed=1), path)
    monkeypatch.undo()
    assert path.read_bytes() == before and os.listdir(tmp_path) == ["m.npz"]


@pytest.mark.parametrize("target, expected", [
    ("", "save: the output path is empty"),
    ("folder", r"save: '.*folder' is a directory, not a regular file"),
    ("/dev/null", "save: '/dev/null' is a device, not a regular file"),
])
def test_save_refuses_a_target_that_is_not_a_regular_file_and_writes_nothing(tmp_path, monkeypatch,
                                                                             target, expected):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "folder").mkdir()
    with pytest.raises(ValueError, match=expected) as caught:
        nn.save(_model(), target)
    assert "\n" not in str(caught.value)
    assert sorted(os.listdir(tmp_path)) == ["folder"] and os.listdir(tmp_path / "folder") == []


def test_save_through_a_symlink_replaces_the_file_it_points_to_and_keeps_the_link(tmp_path):
    real, link = tmp_path / "real.npz", tmp_path / "link.npz"
    nn.save(_model(seed=0), real)
    link.symlink_to(real)
    nn.save(_model(seed=1), link)
    assert link.is_symlink() and os.readlink(link) == str(real)
    np.testing.assert_array_equal(nn.load(real).eval()(X).data, _model(seed=1)(X).data)
    assert sorted(os.listdir(tmp_path)) == ["link.npz", "real.npz"]


# ---------------------------------------------------------------- bad files
def test_a_truncated_file_gives_a_clear_error(tmp_path):
    path = tmp_path / "m.npz"
    nn.save(_model(), path)
    data = path.read_bytes()
    for keep in (len(data) // 2, len(data) - 30, 10):
        path.write_bytes(data[:keep])
        with pytest.raises(nn.ModelFileError, match="truncated"):
            nn.load(path, _model())


def test_a_corrupted_member_gives_a_clear_error(tmp_path):
    path = tmp_path / "m.npz"
    nn.save(_model(), path)
    data = bytearray(path.read_bytes())
    start = data.index(b"\x93NUMPY", data.index(b"output.weight.npy"))
    data[start:start + 6] = b"garbag"          # the member's .npy magic
    path.write_bytes(bytes(data))
    with pytest.raises(nn.ModelFileError, match="damaged .npz archive"):
        nn.load(path, _model())


def test_files_that_are_not_npz_archives_give_a_clear_error(tmp_path):
    text = tmp_path / "notes.npz"
    text.write_text("these are not the weights you are looking for\n")
    with pytest.raises(nn.ModelFileError, match="not an .npz archive"):
        nn.load(text)
    single = tmp_path / "array.npy"
    np.save(single, np.zeros(3))
    with pytest.raises(nn.ModelFileError, match=r"single array \(.npy\)"):
        nn.load(single)
    with pytest.raises(FileNotFoundError, match="no model file at"):
        nn.load(tmp_path / "missing.npz")


class _Payload:
    """Writes a file when unpickled: proof that a load ran code from the file."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_a_pickled_member_is_never_unpickled(tmp_path):
    path, marker = tmp_path / "evil.npz", tmp_path / "unpickled"
    np.savez(path, **{"output.weight": np.array([_Payload(str(marker))], dtype=object)})
    with pytest.raises(nn.ModelFileError, match="holds Python objects, which a model file never does"):
        nn.load(path, _model())
    assert not marker.exists()


def test_a_header_that_is_not_ours_is_refused(tmp_path):
    path = tmp_path / "h.npz"
    np.savez(path, __header__=np.frombuffer(b"{not json", dtype=np.uint8))
    with pytest.raises(nn.ModelFileError, match="not valid JSON"):
        nn.load(path)
    np.savez(path, __header__=np.frombuffer(json.dumps({"format": "other"}).encode(), dtype=np.uint8))
    with pytest.raises(nn.ModelFileError, match="does not describe an 'autograd-lite-model' file"):
        nn.load(path)
    future = {"format": "autograd-lite-model", "format_version": 99}
    np.savez(path, __header__=np.frombuffer(json.dumps(future).encode(), dtype=np.uint8))
    with pytest.raises(nn.ModelFileError, match="format version 99"):
        nn.load(path)


def test_a_plain_npz_of_parameters_loads_into_a_module_but_cannot_be_rebuilt(tmp_path):
    model = _model(seed=4)
    path = tmp_path / "plain.npz"
    np.savez(path, **model.state_dict())
    np.testing.assert_array_equal(nn.load(path, _model(seed=5))(X).data, model(X).data)
    with pytest.raises(nn.ModelFileError, match="does not record an architecture"):
        nn.load(path)


def test_loading_into_a_module_of_another_shape_names_keys_and_shapes_and_changes_nothing(tmp_path):
    path = tmp_path / "m.npz"
    nn.save(nn.MLP([5, 8, 3], seed=0), path)
    target = nn.MLP([5, 6, 3], seed=1)
    before = target.state_dict()
    with pytest.raises(ValueError, match=r"shape mismatch for 'hidden.0.weight': the state has \(5, 8\), "
                                         r"the module's parameter has \(5, 6\)"):
        nn.load(path, target)
    for name, array in target.state_dict().items():
        np.testing.assert_array_equal(array, before[name])


def test_an_archive_with_an_invalid_architecture_says_so(tmp_path):
    model = _model()
    path = tmp_path / "m.npz"
    nn.save(model, path)
    header = nn.load_header(path)
    header["architecture"]["activation"] = "swish"
    raw = np.frombuffer(json.dumps(header).encode(), dtype=np.uint8)
    np.savez(path, __header__=raw, **model.state_dict())
    with pytest.raises(nn.ModelFileError, match="architecture in .* is invalid: MLP: activation must be"):
        nn.load(path)


# ---------------------------------------------------------------- the preprocessing record
def _rewrite_header(path, change):
    """The model file at `path` with its JSON header passed through `change`."""
    import io
    import json
    import zipfile
    with zipfile.ZipFile(path) as archive:
        members = {name: np.lib.format.read_array(io.BytesIO(archive.read(name))) for name in archive.namelist()}
    header = change(json.loads(members["__header__.npy"].tobytes()))
    members["__header__.npy"] = np.frombuffer(json.dumps(header).encode(), dtype=np.uint8)
    with zipfile.ZipFile(path, "w") as archive:
        for name, array in members.items():
            with archive.open(name, "w") as f:
                np.lib.format.write_array(f, array, allow_pickle=False)


def test_the_preprocessing_is_saved_in_the_header_and_given_back_by_load(tmp_path):
    from nn.images import Preprocessing
    prep = Preprocessing((8, 8), 16, (-1, 1), tuple("0123456789"), "digits")
    model = nn.MLP([64, 5, 10], seed=0)
    nn.save(model, tmp_path / "m.npz", prep)
    assert nn.load_header(tmp_path / "m.npz")["preprocessing"]["pixel_max"] == 16
    assert nn.load(tmp_path / "m.npz").preprocessing == prep
    into = nn.MLP([64, 5, 10], seed=1)
    assert nn.load(tmp_path / "m.npz", into) is into and into.preprocessing == prep


def test_a_file_without_the_preprocessing_record_loads_with_none(tmp_path):
    nn.save(nn.MLP([64, 5, 10], seed=0), tmp_path / "m.npz")
    _rewrite_header(tmp_path / "m.npz", lambda h: {k: v for k, v in h.items() if k != "preprocessing"})
    assert nn.load(tmp_path / "m.npz").preprocessing is None


def test_a_malformed_preprocessing_record_is_one_model_file_error(tmp_path):
    nn.save(nn.MLP([64, 5, 10], seed=0), tmp_path / "m.npz")
    _rewrite_header(tmp_path / "m.npz", lambda h: {**h, "preprocessing": {"input_shape": [8, 8], "pixel_max": -3}})
    with pytest.raises(nn.ModelFileError, match=r"the preprocessing recorded in .*m\.npz' is invalid: pixel_max "
                                                r"must be a positive number, got -3"):
        nn.load(tmp_path / "m.npz")
    _rewrite_header(tmp_path / "m.npz", lambda h: {**h, "preprocessing": {"input_shape": [28, 28], "pixel_max": 255}})
    with pytest.raises(nn.ModelFileError, match=r"records inputs of shape \(28, 28\) \(784 values\), but its "
                                                r"model takes 64"):
        nn.load(tmp_path / "m.npz")


def test_save_refuses_a_preprocessing_that_is_not_a_record(tmp_path):
    with pytest.raises(TypeError, match="save: preprocessing must be an nn.Preprocessing or None, got dict"):
        nn.save(nn.MLP([64, 5, 10], seed=0), tmp_path / "m.npz", {"pixel_max": 16})


def test_saving_a_subclass_of_an_nn_kind_warns_that_no_architecture_is_recorded(tmp_path):
    class Wider(nn.MLP):
        def forward(self, x):
            return super().forward(x) * 2.0

    for model, where in ((Wider([3, 2]), "the model is a Wider, a subclass of nn.MLP"),
                         (nn.Sequential(nn.Linear(3, 2), Wider([2, 2])), "layer '1' is a Wider, a subclass of nn.MLP")):
        path = tmp_path / "sub.npz"
        with pytest.warns(UserWarning, match=where):
            nn.save(model, path)
        with pytest.raises(nn.ModelFileError, match="does not record an architecture"):
            nn.load(path)
        assert nn.load(path, type(model)([3, 2]) if isinstance(model, Wider) else model) is not None
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        nn.save(nn.MLP([3, 2]), tmp_path / "plain.npz")   # an exact kind: no warning, rebuilt by load
    assert isinstance(nn.load(tmp_path / "plain.npz"), nn.MLP)


def test_a_sequential_whose_layers_do_not_fit_is_refused_at_load_naming_the_layer(tmp_path):
    path = tmp_path / "seq.npz"
    digits = nn.Preprocessing((8, 8), pixel_max=16, dataset="digits")
    # 6 channels of 6 x 6 after the convolution: the Linear needs 216 features, not 100
    nn.save(nn.Sequential(nn.Conv2d(1, 6, 3), nn.ReLU(), nn.Flatten(), nn.Linear(100, 10)), path, digits)
    with pytest.raises(nn.ModelFileError, match=r"layer '3' \(Linear\) takes 100 features, but gets examples of "
                                                r"shape \(216,\)"):
        nn.load(path)
    nn.save(nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(5, 2)), path)   # no input shape needed
    with pytest.raises(nn.ModelFileError, match=r"layer '2' \(Linear\) takes 5 features"):
        nn.load(path)
    nn.save(nn.Sequential(nn.Conv2d(1, 6, 3), nn.BatchNorm2d(5)), path)
    with pytest.raises(nn.ModelFileError, match=r"layer '1' \(BatchNorm2d\) takes 5 channels"):
        nn.load(path)
    model = nn.Sequential(nn.Conv2d(1, 6, 3, padding=1), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(96, 10))
    nn.save(model, path, digits)
    loaded = nn.load(path)
    x = np.random.default_rng(0).standard_normal((2, 1, 8, 8))
    np.testing.assert_array_equal(loaded(x).data, model(x).data)
