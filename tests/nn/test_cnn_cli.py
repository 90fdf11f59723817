"""`python -m nn train --arch cnn`, and evaluate / predict with the CNN model files it saves (run
in-process through nn.cli.main, as the command line runs them)."""
import re

import numpy as np
import pytest

import nn
from nn.cli import main
from nn.datasets import load_digits

SMALL = ["--arch", "cnn", "--channels", "4", "--hidden", "8", "--epochs", "1", "--batch-size", "256"]


@pytest.fixture(scope="module")
def saved_cnn(tmp_path_factory):
    path = tmp_path_factory.mktemp("cnn") / "cnn.npz"
    assert main(["train", *SMALL, "--quiet", "--save", str(path)]) == 0
    return path


def test_train_arch_cnn_builds_the_cnn_and_saves_a_file_that_loads_as_one(saved_cnn, capsys):
    model = nn.load(saved_cnn)
    assert isinstance(model, nn.CNN)
    assert model.architecture()["channels"] == [4] and model.architecture()["hidden"] == [8]
    assert model.architecture()["batch_norm"] is True          # the digits' CNN default
    assert model.preprocessing.input_shape == (8, 8) and model.preprocessing.dataset == "digits"


def test_evaluate_and_predict_take_a_cnn_model_file(saved_cnn, tmp_path, capsys):
    assert main(["evaluate", "--model", str(saved_cnn), "--quiet"]) == 0
    line = capsys.readouterr().out.strip()
    accuracy = float(re.search(r"accuracy (\d+\.\d\d)%", line).group(1))
    ds = load_digits()
    model = nn.load(saved_cnn)
    assert accuracy == pytest.approx(100 * np.mean(nn.predict(model, ds.x_test) == ds.y_test), abs=0.005)
    np.save(tmp_path / "two.npy", ds.x_test[:2])
    assert main(["predict", "--model", str(saved_cnn), str(tmp_path / "two.npy")]) == 0
    out = capsys.readouterr().out.splitlines()
    expected = nn.predict(model, ds.x_test[:2])
    assert [int(re.search(r": (\d) \(probability", line).group(1)) for line in out] == list(expected)


@pytest.mark.parametrize("options, message", [
    (["--arch", "cnn", "--activation", "tanh"], "--activation tanh applies to --arch mlp only; the CNN uses ReLU"),
    (["--arch", "cnn", "--loss", "bce"], "--loss bce applies to --arch mlp only; the CNN gives logits"),
    (["--channels", "4"], "--channels applies to --arch cnn only"),
    (["--no-batch-norm"], "--batch-norm applies to --arch cnn only"),
    (["--arch", "cnn", "--channels", "4,x"], "--channels takes positive integers, e.g. --channels 6,16; got '4,x'"),
    (["--arch", "cnn", "--channels", "4,4,4,4"], "4 blocks of 3x3 convolution and 2x2 pooling leave nothing of a 8x8"),
    (["--arch", "cnn", "--kernel-size", "4"], "kernel_size must be odd"),
])
def test_options_that_do_not_fit_the_architecture_are_one_sentence(options, message, capsys):
    assert main(["train", *options, "--epochs", "1", "--quiet"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and message in err[0], err


def test_train_help_lists_the_cnn_defaults_of_each_data_set(capsys):
    from nn.datasets.defaults import TRAINING_DEFAULTS
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    table = " ".join(capsys.readouterr().out.split())
    for name, defaults in TRAINING_DEFAULTS["cnn"].items():
        assert f"{name} (cnn): {defaults.chosen}" in table
        assert defaults.options() in table
    assert "not measured" in TRAINING_DEFAULTS["cnn"]["fashion-mnist"].chosen
