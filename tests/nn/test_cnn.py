"""The CNN model and model files of any nn architecture: input layouts, the plan against the built
model, save / load round trips (Sequential of every layer kind, CNN with batch-norm buffers, MLP),
and hostile architectures refused in one sentence before anything is built."""
import json
import zipfile

import numpy as np
import pytest

import nn
from nn import architecture

RNG = np.random.default_rng(2)


def _every_kind():
    return nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1, seed=0), nn.BatchNorm2d(4), nn.LeakyReLU(0.1), nn.MaxPool2d(2),
        nn.Conv2d(4, 4, 3, padding="same", groups=2, dilation=1, bias=False, seed=1), nn.GELU(),
        nn.AvgPool2d(2, stride=1), nn.AdaptiveAvgPool2d(), nn.Flatten(), nn.Linear(4, 6, seed=2),
        nn.BatchNorm1d(6, momentum=None), nn.LayerNorm(6), nn.Tanh(), nn.Dropout(0.3, seed=0), nn.Identity(),
        nn.Linear(6, 3, seed=3), nn.Sigmoid(), nn.ReLU(), nn.Softmax())


def _trained_a_little(model, x):
    model.train()
    for _ in range(2):
        model(x)
    return model.eval()


def test_a_sequential_of_every_layer_kind_round_trips_with_its_buffers(tmp_path):
    model = _trained_a_little(_every_kind(), RNG.standard_normal((5, 1, 8, 8)))
    nn.save(model, tmp_path / "seq.npz")
    loaded = nn.load(tmp_path / "seq.npz").eval()
    assert [type(m) for m in loaded] == [type(m) for m in model]
    assert architecture.describe(loaded) == architecture.describe(model)
    for (name, a), (other, b) in zip(model.state_dict().items(), loaded.state_dict().items()):
        assert name == other
        np.testing.assert_array_equal(a, b)
    x = RNG.standard_normal((3, 1, 8, 8))
    np.testing.assert_array_equal(loaded(x).data, model(x).data)
    assert loaded[10].momentum is None and loaded[3].kernel_size == (2, 2) and loaded[4].groups == 2


@pytest.mark.parametrize("kwargs", [dict(), dict(batch_norm=True, dropout=0.5, dtype=np.float32)])
def test_a_cnn_round_trips_and_keeps_its_preprocessing(tmp_path, kwargs):
    model = nn.CNN((1, 8, 8), 10, channels=(4, 6), kernel_size=3, hidden=(12,), seed=0, **kwargs)
    _trained_a_little(model, RNG.standard_normal((6, 64)))
    prep = nn.Preprocessing((8, 8), pixel_max=16, dataset="digits")
    model.preprocessing = prep                    # what save records, and what predict scales raw pixels by
    nn.save(model, tmp_path / "cnn.npz")
    loaded = nn.load(tmp_path / "cnn.npz")
    assert isinstance(loaded, nn.CNN) and loaded.architecture() == model.architecture()
    assert loaded.preprocessing == prep
    raw = RNG.integers(0, 17, size=(4, 8, 8))
    np.testing.assert_array_equal(nn.predict_proba(loaded, raw), nn.predict_proba(model, raw))
    other = nn.CNN((1, 8, 8), 10, channels=(4, 6), kernel_size=3, hidden=(12,), seed=9, **kwargs)
    nn.load(tmp_path / "cnn.npz", other)          # into a module: buffers are read too
    for a, b in zip(other.state_dict().values(), model.state_dict().values()):
        np.testing.assert_array_equal(a, b)


def test_a_cnn_file_records_a_preprocessing_of_its_own_input_size(tmp_path):
    model = nn.CNN((8, 8), 10, channels=(2,), kernel_size=3, hidden=(), seed=0)
    nn.save(model, tmp_path / "m.npz", nn.Preprocessing((28, 28), pixel_max=255, dataset="mnist"))
    with pytest.raises(nn.ModelFileError, match=r"\(784 values\), but its model takes 64"):
        nn.load(tmp_path / "m.npz")


@pytest.mark.parametrize("kwargs", [dict(), dict(batch_norm=True, dropout=0.2),
                                    dict(channels=(3,), hidden=(), kernel_size=1, dtype=np.float32)])
def test_the_plan_names_every_array_the_cnn_holds_with_its_shape_and_dtype(kwargs):
    model = nn.CNN((2, 12, 10), 5, seed=0, **kwargs)
    specs = architecture.state_specs(model.architecture())
    assert set(specs) == set(model.state_dict())
    for name, array in model.state_dict().items():
        assert specs[name] == (array.shape, array.dtype), name


def test_lenet5_pads_only_its_first_convolution_and_flattens_400_features():
    model = nn.CNN((28, 28), 10, channels=(6, 16), kernel_size=5, padding=(2, 0), hidden=(120, 84), seed=0)
    assert model.classifier[0].in_features == 16 * 5 * 5
    assert model.features[0].padding == (2, 2) and model.features[3].padding == (0, 0)
    assert nn.CNN((28, 28), 10, seed=0).architecture()["padding"] == [2, 2]      # by default: the size kept


@pytest.mark.parametrize("shape", [(3, 784), (3, 28, 28), (3, 1, 28, 28)])
def test_the_cnn_takes_rows_images_or_channels_first_images(shape):
    model = nn.CNN((28, 28), 10, seed=0)
    x = RNG.standard_normal((3, 784))
    np.testing.assert_allclose(model(x.reshape(shape)).data, model(x).data)
    assert model(x).shape == (3, 10)


def test_the_cnn_names_the_shapes_it_takes():
    with pytest.raises(ValueError, match=r"CNN\(1x8x8 -> 10\): expected images of shape \(N, 1, 8, 8\) or rows of "
                                         r"64 values \(N, 64\), got shape \(2, 63\)"):
        nn.CNN((8, 8), 10, kernel_size=3, seed=0)(np.zeros((2, 63)))


@pytest.mark.parametrize("kwargs, message", [
    (dict(channels=(4, 4, 4, 4)), "4 blocks of 3x3 convolution and 2x2 pooling leave nothing of a 8x8 image"),
    (dict(kernel_size=4), "kernel_size must be odd"),
    (dict(channels=()), "channels must be a list of 1 to 16 widths"),
    (dict(dropout=1.0), r"dropout must be a finite number in \[0, 0.999999\]"),
    (dict(batch_norm=1), "batch_norm must be True or False"),
    (dict(padding=(1,)), r"padding must list one whole number per convolution block \(2\)"),
    (dict(padding=(2, 0)), r"padding must be whole numbers from 0 to 1 \(half the kernel\), got \[2, 0\]"),
])
def test_bad_cnn_arguments_are_one_sentence(kwargs, message):
    settings = dict(kernel_size=3)
    settings.update(kwargs)
    with pytest.raises(ValueError, match=message) as error:
        nn.CNN((8, 8), 10, seed=0, **settings)
    assert "\n" not in str(error.value)


def test_a_small_cnn_learns_the_digits():
    from nn.data import preprocess
    from nn.datasets import load_dataset
    ds = load_dataset("digits")
    x, y = preprocess(ds.x_train, ds.max_value, (-1.0, 1.0)), ds.y_train
    model = nn.CNN((8, 8), 10, channels=(8,), kernel_size=3, hidden=(), batch_norm=True, seed=0, dtype=np.float32)
    optimizer = nn.Adam(model, lr=3e-3)
    nn.fit(model, "ce", optimizer, (x, y), epochs=6, batch_size=32, verbose=False)
    x_test = preprocess(ds.x_test, ds.max_value, (-1.0, 1.0))
    assert nn.evaluate(model, x_test, ds.y_test).accuracy > 0.9


# ---------------------------------------------------------------- hostile architectures
@pytest.fixture
def saved(tmp_path):
    model = nn.Sequential(nn.Conv2d(1, 2, 3, seed=0), nn.BatchNorm2d(2), nn.Flatten(), nn.Linear(72, 3, seed=1))
    return nn.save(model, tmp_path / "ok.npz")


def _with_architecture(saved, target, arch):
    header = nn.load_header(saved)
    header["architecture"] = arch
    with zipfile.ZipFile(saved) as old, zipfile.ZipFile(target, "w") as new:
        for name in old.namelist():
            content = old.read(name)
            if name == "__header__.npy":
                import io
                buffer = io.BytesIO()
                np.save(buffer, np.frombuffer(json.dumps(header).encode(), np.uint8))
                content = buffer.getvalue()
            new.writestr(name, content)
    return target


def _layers(**first):
    conv = {"class": "Conv2d", "in_channels": 1, "out_channels": 2, "kernel_size": [3, 3]}
    conv.update(first)
    return {"class": "Sequential", "layers": [conv, {"class": "BatchNorm2d", "num_features": 2},
                                              {"class": "Flatten"},
                                              {"class": "Linear", "in_features": 72, "out_features": 3}]}


def _nested(depth):
    arch = {"class": "ReLU"}
    for _ in range(depth):
        arch = {"class": "Sequential", "layers": [arch]}
    return arch


@pytest.mark.parametrize("arch, message", [
    (_layers(out_channels=10**9), r"Conv2d \(layer '0'\): out_channels must be a whole number from 1 to 65,536"),
    (_layers(out_channels=-2), "out_channels must be a whole number from 1"),
    (_layers(kernel_size=[-3, 3]), r"kernel_size must be a whole number from 1 to 1024, or a list of 2"),
    (_layers(kernel_size="3"), "kernel_size must be a whole number"),
    (_layers(padding="evil"), "padding must be a whole number from 0"),
    (_layers(groups=0), "groups must be a whole number from 1"),
    (_layers(dtype="object"), "dtype must be 'float32' or 'float64'"),
    (_layers(evil=1), r"has unknown arguments \['evil'\]"),
    ({"class": "Sequential", "layers": [{"class": "os.system"}]}, "unknown layer kind 'os.system'"),
    ({"class": "Sequential", "layers": [{"class": "Conv2d"}]}, "lacks the argument 'in_channels'"),
    ({"class": "Sequential", "layers": "all"}, "must be {'class': 'Sequential', 'layers'"),
    ({"class": "Sequential", "layers": [{"class": "ReLU"}] * 1001}, "has 1,001 layers, more than 1000"),
    (_nested(9), "Sequentials nested more than 8 deep"),
    ({"class": "Sequential", "layers": [{"class": "Conv2d", "in_channels": 60000, "out_channels": 60000,
                                         "kernel_size": 1000}]}, "more than the cap of 1,000,000,000"),
    ({"class": "CNN", "input_shape": [1, 28, 28], "num_classes": 10, "channels": [65536, 65536],
      "kernel_size": 63}, "more than the cap of 1,000,000,000"),
    ({"class": "CNN", "input_shape": [1, 28, 28], "num_classes": -1}, "num_classes must be a whole number"),
    ({"class": "Sequential", "layers": [{"class": "BatchNorm2d", "num_features": 2, "momentum": 7}]},
     r"momentum must be a finite number in \[0, 1\]"),
    (_layers(out_channels=3), "does not hold the parameters its architecture needs|architecture needs shape"),
])
def test_a_hostile_architecture_is_refused_in_one_sentence_before_anything_is_built(saved, tmp_path, monkeypatch,
                                                                                    arch, message):
    path = _with_architecture(saved, tmp_path / "bad.npz", arch)

    def no_building(self, *args, **kwargs):
        raise AssertionError("a module was built from a hostile architecture")
    monkeypatch.setattr(nn.Module, "__init__", no_building)
    with pytest.raises(nn.ModelFileError, match=message) as error:
        nn.load(path)
    assert "\n" not in str(error.value) and str(error.value).startswith("load: ")


def test_a_users_own_module_is_saved_without_an_architecture_and_loads_into_a_module(tmp_path):
    class Mine(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(1, 2, 3, seed=0)

        def forward(self, x):
            return self.conv(x)
    nn.save(Mine(), tmp_path / "mine.npz")
    assert nn.load_header(tmp_path / "mine.npz")["architecture"] is None
    with pytest.raises(nn.ModelFileError, match="does not record an architecture that can be rebuilt"):
        nn.load(tmp_path / "mine.npz")
    assert isinstance(nn.load(tmp_path / "mine.npz", Mine()), Mine)
