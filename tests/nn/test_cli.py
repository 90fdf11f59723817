"""The command line, run in a subprocess as a user would: python -m nn train | evaluate | predict."""
import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import nn
from nn.datasets import load_digits, write_idx

REPO = Path(__file__).resolve().parents[2]
FAST = ["--epochs", "3", "--hidden", "20"]


def run_cli(*args, cwd=None):
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    env.pop("AUTOGRAD_LITE_DATA", None)
    proc = subprocess.run([sys.executable, "-m", "nn", *map(str, args)], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
    return proc


def assert_user_error(proc, pattern, code=1):
    assert proc.returncode == code, proc.stderr
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert re.search(pattern, proc.stderr), proc.stderr
    if code == 1:
        assert len(lines) == 1 and lines[0].startswith("error: ")


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """(the path of a model that `train --save` wrote, what that train printed)."""
    path = tmp_path_factory.mktemp("model") / "model.npz"
    proc = run_cli("train", *FAST, "--quiet", "--save", path)
    assert proc.returncode == 0, proc.stderr
    return path, proc.stdout


@pytest.fixture(scope="module")
def saved_model(trained):
    return trained[0]


def test_train_prints_progress_per_epoch_and_the_test_accuracy():
    proc = run_cli("train", *FAST, "--validation", "0.1")
    assert proc.returncode == 0, proc.stderr
    assert re.search(r"^epoch 1/3 +loss [0-9.]+ +acc [0-9.]+ +val_loss", proc.stdout, re.M)
    assert "training on 1295, validating on 143, testing on 359" in proc.stdout
    assert re.search(r"^test accuracy: \d+\.\d\d% \(\d+/359\)", proc.stdout, re.M)
    assert "\r" not in proc.stdout                   # no progress bar when not on a terminal
    assert "MLP(64 -> 20 -> 10, activation='sigmoid', output_activation='sigmoid')" in proc.stdout


def test_train_logs_every_n_epochs_when_not_a_terminal_and_writes_the_history(tmp_path, capsys):
    from nn.cli import main      # in-process: capsys is not a terminal, as a log file is not
    assert main(["train", "--epochs", "30", "--hidden", "10", "--batch-size", "256", "--validation", "0.1",
                 "--history", str(tmp_path / "h.csv")]) == 0
    out = capsys.readouterr().out
    epochs = re.findall(r"^epoch +(\d+)/30 ", out, re.M)
    assert epochs == ["1"] + [str(e) for e in range(2, 31, 2)]      # about 20 lines a run: every 2nd of 30
    assert re.search(r"^best epoch \d+/30: val_loss [0-9.]+  val_acc [0-9.]+$", out, re.M)
    rows = (tmp_path / "h.csv").read_text().splitlines()
    assert rows[0] == "epoch,loss,accuracy,val_loss,val_accuracy,lr,seconds" and len(rows) == 31
    assert main(["train", *FAST, "--verbose", "2", "--log-every", "2"]) == 0
    assert re.findall(r"^epoch (\d)/3 ", capsys.readouterr().out, re.M) == ["1", "2", "3"]
    assert main(["train", *FAST, "--verbose", "0"]) == 0
    out = capsys.readouterr().out
    assert not re.search(r"^epoch ", out, re.M) and "test accuracy" in out


def test_train_quiet_prints_only_the_result():
    proc = run_cli("train", *FAST, "--quiet")
    assert proc.returncode == 0 and proc.stdout.strip().startswith("test accuracy:")
    assert len(proc.stdout.strip().splitlines()) == 1


def test_train_is_seeded():
    a = run_cli("train", *FAST, "--quiet", "--seed", "5").stdout
    b = run_cli("train", *FAST, "--quiet", "--seed", "5").stdout
    assert re.sub(r"in [0-9.]+s", "", a) == re.sub(r"in [0-9.]+s", "", b)


def test_train_options_for_a_deeper_relu_net_with_adam_dropout_and_early_stopping():
    proc = run_cli("train", "--epochs", "4", "--hidden", "32", "--hidden", "16", "--activation", "relu",
                   "--loss", "ce", "--optimizer", "adam", "--dropout", "0.1", "--early-stopping", "2",
                   "--batch-size", "64", "--schedule", "step", "--l2", "0")
    assert proc.returncode == 0, proc.stderr
    assert "MLP(64 -> 32 -> 16 -> 10, activation='relu', dropout=0.1)" in proc.stdout


def test_ensemble_reports_each_model_and_the_average():
    # one after another: the members on worker processes report alike (test_sweep_cli compares
    # the two), at the price of a Python, NumPy and Numba start-up per worker
    proc = run_cli("train", *FAST, "--quiet", "--ensemble", "2", "--workers", "1")
    assert proc.returncode == 0, proc.stderr
    assert re.search(r"^model 1 test accuracy", proc.stdout, re.M)
    assert re.search(r"^model 2 test accuracy", proc.stdout, re.M)
    assert re.search(r"^ensemble of 2 \(averaged probabilities\) test accuracy: \d+\.\d\d%", proc.stdout, re.M)


def test_save_then_evaluate_reproduces_the_test_accuracy(trained):
    path, printed = trained
    accuracy = re.search(r"test accuracy: (\d+\.\d\d)%", printed).group(1)
    proc = run_cli("evaluate", "--model", path)
    assert proc.returncode == 0, proc.stderr
    assert f"accuracy {accuracy}%" in proc.stdout and "confusion matrix" in proc.stdout


def test_evaluate_with_a_model_that_does_not_match_hidden(saved_model):
    assert_user_error(run_cli("evaluate", "--model", saved_model, "--hidden", "50"),
                      r"hidden layers \[20\], which does not match --hidden 50")


def test_evaluate_a_missing_or_corrupt_model_file(tmp_path):
    assert_user_error(run_cli("evaluate", "--model", tmp_path / "nope.npz"), "no model file at")
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"not a zip file")
    assert_user_error(run_cli("evaluate", "--model", bad), "not an .npz archive")


def test_predict_from_npy_arrays(saved_model, tmp_path):
    ds = load_digits()
    np.save(tmp_path / "one.npy", ds.x_test[0])
    np.save(tmp_path / "three.npy", ds.x_test[:3].reshape(3, 64).astype(np.float64))
    proc = run_cli("predict", "--model", saved_model, tmp_path / "one.npy", tmp_path / "three.npy")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.strip().splitlines()
    assert len(lines) == 4 and re.match(r".*one\.npy: \d \(probability 0\.\d{3}\)", lines[0])
    assert re.match(r".*three\.npy\[2\]: \d", lines[3])


def test_predict_warns_when_an_npy_looks_already_scaled_or_the_model_is_unsure(saved_model, tmp_path):
    np.save(tmp_path / "scaled.npy", load_digits().x_test[:2] / 16)
    proc = run_cli("predict", "--model", saved_model, tmp_path / "scaled.npy")
    assert proc.returncode == 0, proc.stderr
    assert re.search(r"warning: .*scaled\.npy: the pixel values are all within 0\.\.1 .*look already scaled "
                     r"\(multiply by 16", proc.stderr)
    np.save(tmp_path / "blank.npy", np.zeros(64))            # no digit at all: a 3-epoch model is unsure
    proc = run_cli("predict", "--model", saved_model, tmp_path / "blank.npy")
    assert proc.returncode == 0 and "the model is unsure (best probability 0." in proc.stderr


def test_a_model_file_records_its_data_set_and_evaluate_uses_it(saved_model, tmp_path):
    from nn.images import Preprocessing
    header = nn.load_header(saved_model)["preprocessing"]
    assert header == {"input_shape": [8, 8], "pixel_max": 16, "scale_to": [-1.0, 1.0],
                      "class_names": list("0123456789"), "dataset": "digits"}
    model = nn.load(saved_model)
    nn.save(model, tmp_path / "mnist-named.npz", Preprocessing((8, 8), 16, dataset="mnist"))
    proc = run_cli("evaluate", "--model", tmp_path / "mnist-named.npz", "--no-download", "--data-dir", tmp_path)
    assert proc.returncode == 1 and "mnist" in proc.stderr.lower()    # it looked for MNIST, not the digits
    # a file without the record (written before it existed) evaluates as before, on the digits
    model.preprocessing = None
    nn.save(model, tmp_path / "old.npz")
    assert nn.load(tmp_path / "old.npz").preprocessing is None
    old, new = run_cli("evaluate", "--model", tmp_path / "old.npz", "--quiet"), run_cli("evaluate", "--model",
                                                                                       saved_model, "--quiet")
    assert old.returncode == 0, old.stderr
    assert old.stdout.split("accuracy")[1] == new.stdout.split("accuracy")[1]


def test_predict_refuses_arrays_of_the_wrong_size_or_range(saved_model, tmp_path):
    np.save(tmp_path / "wide.npy", np.zeros((2, 784)))
    assert_user_error(run_cli("predict", "--model", saved_model, tmp_path / "wide.npy"),
                      r"shape \(2, 784\), images of 784 pixels \(28x28\), but the model takes 8x8 images \(64 "
                      r"pixels\); give an array of shape \(64,\), \(8, 8\), \(n, 64\) or \(n, 8, 8\)$")
    np.save(tmp_path / "big.npy", np.full(64, 255))
    assert_user_error(run_cli("predict", "--model", saved_model, tmp_path / "big.npy"), "outside 0..16")


@pytest.mark.skipif(importlib.util.find_spec("PIL") is not None, reason="Pillow is installed")
def test_predict_an_image_without_pillow_says_what_to_install(saved_model, tmp_path):
    (tmp_path / "digit.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    assert_user_error(run_cli("predict", "--model", saved_model, tmp_path / "digit.png"),
                      r"needs Pillow \(pip install pillow\)")


@pytest.mark.skipif(importlib.util.find_spec("PIL") is None, reason="Pillow is not installed")
def test_predict_an_image_file_with_pillow(saved_model, tmp_path):
    from PIL import Image
    digit = load_digits().x_test[0].astype(np.float64)
    paper = 255 - digit / 16 * 255                     # dark ink on white paper, 4x larger
    Image.fromarray(np.kron(paper, np.ones((4, 4))).astype(np.uint8)).save(tmp_path / "digit.png")
    np.save(tmp_path / "digit.npy", load_digits().x_test[0])
    from_png = run_cli("predict", "--model", saved_model, tmp_path / "digit.png")
    from_npy = run_cli("predict", "--model", saved_model, tmp_path / "digit.npy")
    assert from_png.returncode == 0, from_png.stderr
    # the drawing is cropped to its ink and counted in 4x4 blocks as the UCI digits were, so its
    # pixels differ from the array's; both give the top 3 classes
    for proc in (from_png, from_npy):
        assert re.match(r".*: \d \(probability 0\.\d{3}\); then \d \(0\.\d{3}\), \d \(0\.\d{3}\)$", proc.stdout.strip())
    (tmp_path / "broken.png").write_bytes(b"\x89PNG broken")
    assert_user_error(run_cli("predict", "--model", saved_model, tmp_path / "broken.png"),
                      "not an image Pillow can read")


@pytest.mark.skipif(importlib.util.find_spec("matplotlib") is not None, reason="matplotlib is installed")
def test_plot_without_matplotlib_says_what_to_install():
    assert_user_error(run_cli("train", *FAST, "--plot", "curves.png"),
                      r"--plot needs matplotlib.*autograd-lite\[plot\]")


@pytest.mark.skipif(importlib.util.find_spec("matplotlib") is None, reason="matplotlib is not installed")
def test_plot_writes_the_curves(tmp_path):
    proc = run_cli("train", *FAST, "--quiet", "--plot", tmp_path / "curves.png")
    assert proc.returncode == 0 and (tmp_path / "curves.png").stat().st_size > 1000


def test_unknown_dataset_is_one_sentence():
    assert_user_error(run_cli("train", "--dataset", "cifar"), "unknown data set 'cifar'")


def test_missing_mnist_with_downloads_impossible_is_one_sentence(tmp_path):
    assert_user_error(run_cli("train", "--dataset", "mnist", "--data-dir", tmp_path / "empty", "--no-download"),
                      "train-images-idx3-ubyte.gz is not in .* downloading is turned off")


def test_images_and_labels_of_different_counts_is_one_sentence(tmp_path):
    write_idx(tmp_path / "train-images-idx3-ubyte.gz", np.zeros((4, 2, 2), np.uint8))
    write_idx(tmp_path / "train-labels-idx1-ubyte.gz", np.zeros(3, np.uint8))
    write_idx(tmp_path / "t10k-images-idx3-ubyte.gz", np.zeros((2, 2, 2), np.uint8))
    write_idx(tmp_path / "t10k-labels-idx1-ubyte.gz", np.zeros(2, np.uint8))
    assert_user_error(run_cli("train", "--dataset", tmp_path), "train set has 4 images but 3 labels")


def test_evaluate_on_a_dataset_of_another_image_size(saved_model, tmp_path):
    write_idx(tmp_path / "train-images-idx3-ubyte.gz", np.zeros((4, 3, 3), np.uint8))
    write_idx(tmp_path / "train-labels-idx1-ubyte.gz", np.zeros(4, np.uint8))
    write_idx(tmp_path / "t10k-images-idx3-ubyte.gz", np.zeros((2, 3, 3), np.uint8))
    write_idx(tmp_path / "t10k-labels-idx1-ubyte.gz", np.zeros(2, np.uint8))
    assert_user_error(run_cli("evaluate", "--model", saved_model, "--dataset", tmp_path),
                      "takes 64 inputs .* has 9 pixels per image")


@pytest.mark.parametrize("args, pattern", [
    (["--lr", "-1"], "--lr: expected a positive number"),
    (["--epochs", "0"], "--epochs: expected a positive integer"),
    (["--dropout", "1.5"], r"--dropout: expected a probability in \[0, 1\)"),
    (["--optimizer", "rmsprop"], "invalid choice: 'rmsprop'"),
])
def test_bad_option_values_are_usage_errors(args, pattern):
    assert_user_error(run_cli("train", *args), pattern, code=2)


def test_save_into_a_missing_folder_fails_before_training(tmp_path):
    proc = run_cli("train", *FAST, "--save", tmp_path / "no" / "m.npz")
    assert_user_error(proc, r"--save: the folder '.*no' of '.*m\.npz' does not exist; create it first")
    assert "epoch" not in proc.stdout


def test_bad_hidden_value_is_one_sentence():
    assert_user_error(run_cli("train", "--hidden", "10,x"), "--hidden takes positive integers")


def test_no_command_prints_help_and_fails():
    proc = run_cli()
    assert proc.returncode == 2 and "train" in proc.stdout
