"""Hostile files and careless use of `python -m nn`: each ends with one sentence on stderr and a
non-zero exit code, before any training where it can be known before; Ctrl-C keeps what was trained.

Most cases call the command line's `main` in this process; Ctrl-C and the memory-hungry cases run
in a child process, as a user would meet them."""
import re
import signal
import struct
import subprocess
import sys
import threading
import time
import zlib

import numpy as np
import pytest

import nn
from nn.cli import main
from nn.datasets import load_digits, write_idx
from tests.budget import run_with_memory_budget
from tests.nn.test_cli import REPO

def run_main(capsys, *args):
    """main(args) in this process: (exit code, stdout, stderr)."""
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def assert_one_sentence(code, err, pattern, expected_code=1):
    assert code == expected_code, err
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert re.search(pattern, lines[0]), lines[0]


@pytest.fixture(scope="module")
def digits_model(tmp_path_factory):
    path = tmp_path_factory.mktemp("model") / "digits.npz"
    assert main(["train", "--epochs", "1", "--hidden", "8", "--quiet", "--save", str(path)]) == 0
    return path


def write_idx_folder(folder, train_images, test_images):
    write_idx(folder / "train-images-idx3-ubyte.gz", train_images)
    write_idx(folder / "train-labels-idx1-ubyte.gz", np.zeros(len(train_images), np.uint8))
    write_idx(folder / "t10k-images-idx3-ubyte.gz", test_images)
    write_idx(folder / "t10k-labels-idx1-ubyte.gz", np.zeros(len(test_images), np.uint8))
    return folder


def png_of_zeros(path, side):
    """A valid 1-bit PNG of side x side black pixels, written without decoding it (30000 x 30000
    compresses to about 0.5 MB)."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    row = bytes(1 + (side + 7) // 8)               # filter byte 0, then side bits
    packer = zlib.compressobj(1)
    body = b"".join(packer.compress(row) for _ in range(side)) + packer.flush()
    header = struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", body) + chunk(b"IEND", b""))
    return path


# ---------------------------------------------------------------- a loss that turns NaN or inf
def test_a_learning_rate_that_makes_the_loss_nan_is_named_as_the_option(capsys):
    code, out, err = run_main(capsys, "train", "--epochs", "3", "--hidden", "20", "--quiet", "--lr", "1e30",
                              "--l2", "0", "--activation", "relu", "--loss", "ce")
    assert_one_sentence(code, err, r"^error: the loss became nan at epoch 1, batch 2: the learning rate --lr 1e\+30 "
                                   "is likely too large$")
    assert "test accuracy" not in out


@pytest.mark.parametrize("options, lower", [(["--l2", "10"], "--l2"), (["--l2", "10", "--lr", "3"], "--lr or --l2")])
def test_an_l2_whose_weight_decay_overshoots_names_the_option_to_lower(capsys, options, lower):
    code, _, err = run_main(capsys, "train", "--epochs", "30", "--hidden", "20", "--quiet", *options)
    assert_one_sentence(code, err, r"^error: the L2 penalty became inf at epoch 1, batch \d+: --lr \d times --l2 10 "
                                   rf"is \d+, so large that each step's weight decay overshoots; lower {lower}$")


def test_an_l2_whose_penalty_overflows_is_named(capsys):
    code, _, err = run_main(capsys, "train", "--epochs", "3", "--hidden", "20", "--quiet", "--l2", "1e40")
    assert_one_sentence(code, err, r"^error: the L2 penalty became inf at epoch 1, batch 1: --l2 1e\+40 is too large")


# ---------------------------------------------------------------- NaN or inf at prediction
def test_predict_refuses_nan_or_inf_pixels_naming_the_first(capsys, digits_model, tmp_path):
    images = load_digits().x_test[:3].astype(np.float64)
    images[1, 3, 5] = np.nan
    np.save(tmp_path / "stack.npy", images)
    code, out, err = run_main(capsys, "predict", "--model", digits_model, tmp_path / "stack.npy")
    assert_one_sentence(code, err, r"stack\.npy: image 1 has nan at pixel \(row 3, column 5\); pixel values must "
                                   r"be finite numbers in 0\.\.16$")
    assert out == ""                                  # not "0 (probability 0.100)"
    np.save(tmp_path / "one.npy", np.full(64, np.inf))
    code, _, err = run_main(capsys, "predict", "--model", digits_model, tmp_path / "one.npy")
    assert_one_sentence(code, err, r"one\.npy: has inf at pixel \(row 0, column 0\)")


# ---------------------------------------------------------------- files that are not what they say
def test_an_npz_named_npy_is_one_sentence_without_unpickling_advice(capsys, digits_model, tmp_path):
    np.savez(tmp_path / "archive.npz", x=np.zeros(64))
    (tmp_path / "archive.npz").rename(tmp_path / "pixels.npy")
    code, _, err = run_main(capsys, "predict", "--model", digits_model, tmp_path / "pixels.npy")
    assert_one_sentence(code, err, r"pixels\.npy is a zip archive \(an \.npz file\?\), not a \.npy array; save one "
                                   "array of pixels with numpy.save$")
    assert "pickle" not in err


def test_a_text_file_named_npy_is_one_sentence_without_unpickling_advice(capsys, digits_model, tmp_path):
    (tmp_path / "pixels.npy").write_text("0 0 0 16 16 0 0 0\n" * 8)
    code, _, err = run_main(capsys, "predict", "--model", digits_model, tmp_path / "pixels.npy")
    assert_one_sentence(code, err, r"pixels\.npy is not a \.npy array \(it does not start with NumPy's \.npy "
                                   r"signature\); save the pixels with numpy\.save$")
    assert "pickle" not in err


def test_an_npy_of_objects_or_with_a_lying_header_is_refused_unread(capsys, digits_model, tmp_path):
    np.save(tmp_path / "objects.npy", np.array([{"a": 1}] * 64, dtype=object), allow_pickle=True)
    code, _, err = run_main(capsys, "predict", "--model", digits_model, tmp_path / "objects.npy")
    assert_one_sentence(code, err, r"objects\.npy holds object values; expected numbers \(pixel values\)$")
    assert "pickle" not in err
    # a header that claims 10**12 pixels, followed by 64 bytes: refused before NumPy allocates them
    with open(tmp_path / "lying.npy", "wb") as f:
        np.lib.format.write_array_header_1_0(f, {"descr": "|u1", "fortran_order": False, "shape": (10**12,)})
        f.write(bytes(64))
    code, _, err = run_main(capsys, "predict", "--model", digits_model, tmp_path / "lying.npy")
    assert_one_sentence(code, err, r"lying\.npy is truncated: its header says shape \(1000000000000,\) "
                                   r"\(1,000,000,000,000 bytes\) but 64 bytes follow$")


def test_an_npy_stack_of_the_wrong_image_size_is_refused_naming_both_sizes(capsys, digits_model, tmp_path):
    # a stack of four 28x28 arrays holds 49 x 64 values: it was once read as 49 digits
    np.save(tmp_path / "mnist-like.npy", np.zeros((4, 28, 28)))
    code, _, err = run_main(capsys, "predict", "--model", digits_model, tmp_path / "mnist-like.npy")
    assert_one_sentence(code, err, r"has shape \(4, 28, 28\), images of 28x28 pixels, but the model takes 8x8 "
                                   r"images \(64 pixels\)")


def test_an_image_file_of_any_size_is_resized_to_the_model(capsys, digits_model, tmp_path):
    pytest.importorskip("PIL", reason="Pillow is not installed")
    from PIL import Image
    Image.fromarray(np.zeros((30, 47), np.uint8)).save(tmp_path / "photo.png")
    code, out, err = run_main(capsys, "predict", "--model", digits_model, tmp_path / "photo.png")
    assert code == 0, err
    assert "probability" in out


def test_a_30000x30000_png_is_refused_before_it_is_decoded(digits_model, tmp_path):
    pytest.importorskip("PIL", reason="Pillow is not installed")
    # the real thing, in a child whose memory is capped: decoding it would need 900 MB
    bomb = png_of_zeros(tmp_path / "bomb.png", 30000)
    assert bomb.stat().st_size < 2_000_000
    proc = run_with_memory_budget(f"sys.exit(main(['predict', '--model', {str(digits_model)!r}, {str(bomb)!r}]))",
                                  budget_mb=300, setup="import sys\nfrom nn.cli import main\n", cwd=str(REPO))
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
    assert re.search(r"^error: .*bomb\.png has 900,000,000 pixels, more than the 178,956,970 Pillow opens safely "
                     r"\(it may be a decompression bomb\); give a smaller image of one digit$",
                     proc.stderr), proc.stderr


def test_an_image_past_pillows_warning_limit_is_refused_too(capsys, digits_model, tmp_path, monkeypatch):
    # between Pillow's limit and twice that Pillow only warns; the same sentence as past 2x
    pytest.importorskip("PIL", reason="Pillow is not installed")
    from PIL import Image
    Image.fromarray(np.zeros((40, 40), np.uint8)).save(tmp_path / "big.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    code, out, err = run_main(capsys, "predict", "--model", digits_model, tmp_path / "big.png")
    assert_one_sentence(code, err, r"big\.png has 1,600 pixels, more than the 1,000 Pillow opens safely")
    assert out == ""


# ---------------------------------------------------------------- options and data checked before training
def test_hidden_too_large_for_memory_is_one_sentence(tmp_path):
    proc = run_with_memory_budget("sys.exit(main(['train', '--hidden', '100000000', '--epochs', '1', '--quiet']))",
                                  budget_mb=300, setup="import sys\nfrom nn.cli import main\n", cwd=str(REPO))
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    # MLP refuses it with the memory it would need, or the allocation fails: either way, named
    assert re.search(r"^error: .*100000000", proc.stderr), proc.stderr


@pytest.mark.parametrize("part", ["train", "test"])
def test_an_empty_training_or_test_set_is_refused_before_training(capsys, tmp_path, part):
    empty, some = np.zeros((0, 2, 2), np.uint8), np.zeros((3, 2, 2), np.uint8)
    folder = write_idx_folder(tmp_path, *((empty, some) if part == "train" else (some, empty)))
    code, out, err = run_main(capsys, "train", "--dataset", folder, "--epochs", "1")
    assert_one_sentence(code, err, rf"^error: {folder.name}: the {part} set is empty: .* holds no images")
    assert "epoch" not in out


def test_training_and_test_images_of_different_sizes_are_refused_before_training(capsys, tmp_path):
    folder = write_idx_folder(tmp_path, np.zeros((4, 2, 2), np.uint8), np.zeros((2, 3, 3), np.uint8))
    code, out, err = run_main(capsys, "train", "--dataset", folder, "--epochs", "1")
    assert_one_sentence(code, err, rf"^error: {folder.name}: the training images .* are 2x2 but the test images "
                                   ".* are 3x3; both sets must have images of one size$")
    assert "epoch" not in out


@pytest.mark.parametrize("option, target, pattern", [
    ("--save", "folder", r"^error: --save: '.*folder' is a directory, not a regular file; give a file path$"),
    ("--plot", "folder.png", r"^error: --plot: '.*folder\.png' is a directory, not a regular file"),
    ("--plot", "curves.xyz", r"^error: --plot .*curves\.xyz: matplotlib cannot write '\.xyz' files; use one of .*\.png"),
    ("--plot", "curves", r"^error: --plot .*curves: matplotlib cannot write a file name without an extension"),
    ("--data-dir", "file", r"^error: --data-dir .*file is a file; give the folder where data sets are kept$"),
])
def test_output_paths_and_the_data_folder_are_checked_before_training(capsys, tmp_path, option, target, pattern):
    if option == "--plot":
        pytest.importorskip("matplotlib")
    (tmp_path / "folder").mkdir()
    (tmp_path / "folder.png").mkdir()
    (tmp_path / "file").write_text("")
    code, out, err = run_main(capsys, "train", "--epochs", "1", "--hidden", "8", option, tmp_path / target)
    assert_one_sentence(code, err, pattern)
    assert "epoch" not in out


def test_each_ensemble_members_file_is_checked_before_training(capsys, tmp_path):
    (tmp_path / "m-2.npz").mkdir()
    code, out, err = run_main(capsys, "train", "--epochs", "1", "--hidden", "8", "--ensemble", "2",
                              "--save", tmp_path / "m.npz")
    assert_one_sentence(code, err, r"^error: --save: '.*m-2\.npz' is a directory")
    assert "epoch" not in out and not (tmp_path / "m-1.npz").exists()


def test_explain_dot_into_a_directory_is_refused_before_the_work(capsys, tmp_path):
    code, out, err = run_main(capsys, "explain", "--dot", tmp_path)
    assert_one_sentence(code, err, r"^error: --dot: '.*' is a directory, not a regular file")
    assert out == ""


@pytest.mark.parametrize("suffix", ["png", "svg"])
def test_plot_writes_the_format_its_extension_names(capsys, tmp_path, suffix):
    pytest.importorskip("matplotlib")
    path = tmp_path / f"curves.{suffix}"
    code, _, err = run_main(capsys, "train", "--epochs", "2", "--hidden", "8", "--quiet", "--plot", path)
    assert code == 0, err
    head = path.read_bytes()[:200]
    assert head.startswith(b"\x89PNG") if suffix == "png" else b"<svg" in head
    assert [p.name for p in tmp_path.iterdir()] == [path.name]       # no temporary file left


# ---------------------------------------------------------------- Ctrl-C
def start_training(*args):
    env_args = [sys.executable, "-m", "nn", "train", *map(str, args)]
    return subprocess.Popen(env_args, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            stdin=subprocess.DEVNULL)


def interrupt_after(proc, *markers, limit=60):
    """Wait for stdout lines matching each marker in turn, then send SIGINT; (exit code, stdout, stderr).
    A run still going after `limit` seconds is killed, so that a broken Ctrl-C fails instead of hanging."""
    watchdog = threading.Timer(limit, proc.kill)
    watchdog.start()
    try:
        seen = []
        for marker in markers:
            for line in proc.stdout:
                seen.append(line)
                if re.search(marker, line):
                    break
            else:
                raise AssertionError(f"training ended before {marker!r}: {''.join(seen)} {proc.stderr.read()}")
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate()
    finally:
        watchdog.cancel()
        proc.kill()
    return proc.returncode, "".join(seen) + out, err


def test_ctrl_c_during_train_save_saves_the_weights_so_far(tmp_path):
    path = tmp_path / "m.npz"
    proc = start_training("--epochs", "2000", "--hidden", "20", "--save", path)
    code, out, err = interrupt_after(proc, r"^epoch +1/2000 ")
    assert_one_sentence(code, err, r"^interrupted \(Ctrl-C\) after epoch \d+/2000, batch \d+/45: saved .*m\.npz "
                                   r"\(the weights so far\)$", expected_code=130)
    model = nn.load(path)
    assert all(np.isfinite(p.data).all() for p in model.parameters())
    assert model.sizes == [64, 20, 10]


def test_ctrl_c_during_an_ensemble_says_which_members_were_saved(tmp_path):
    # --workers 1: the members one after another in this process (on workers they train at once)
    proc = start_training("--epochs", "8", "--batch-size", "1", "--hidden", "10", "--ensemble", "3",
                          "--workers", "1", "--save", tmp_path / "m.npz")
    code, out, err = interrupt_after(proc, r"^-- ensemble member 2/3", r"^epoch 1/8 ")
    assert_one_sentence(code, err, r"^interrupted \(Ctrl-C\) after epoch \d/8, batch \d+/1438 of ensemble member 2/3: "
                                   r"saved .*m-1\.npz, .*m-2\.npz \(the last one as trained so far\); member 3 was not "
                                   "saved$", expected_code=130)
    assert "model 1 test accuracy" in out and "model 2 test accuracy" not in out
    for name in ("m-1.npz", "m-2.npz"):
        nn.load(tmp_path / name)
    assert not (tmp_path / "m-3.npz").exists()


def test_ctrl_c_without_save_says_nothing_was_saved():
    proc = start_training("--epochs", "2000", "--hidden", "20")
    code, _, err = interrupt_after(proc, r"^epoch +1/2000 ")
    assert_one_sentence(code, err, r"^interrupted \(Ctrl-C\) after epoch \d+/2000, batch \d+/45: nothing was saved "
                                   r"\(no --save\)$", expected_code=130)


def test_ctrl_c_while_loading_the_data_is_one_sentence(capsys, monkeypatch):
    def interrupted_load(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr("nn.commands.train.load_dataset", interrupted_load)
    code, _, err = run_main(capsys, "train", "--epochs", "1")
    assert_one_sentence(code, err, r"^interrupted \(Ctrl-C\) while loading the data set: nothing was saved \(no "
                                   r"--save\)$", expected_code=130)


def test_a_second_ctrl_c_during_training_says_it_stopped_while_training(capsys, monkeypatch, tmp_path):
    def interrupted_fit(*args, **kwargs):   # what fit raises on a second Ctrl-C: a plain KeyboardInterrupt
        raise KeyboardInterrupt

    monkeypatch.setattr("nn.commands.train.fit", interrupted_fit)
    code, _, err = run_main(capsys, "train", "--epochs", "1", "--save", str(tmp_path / "m.npz"))
    assert_one_sentence(code, err, r"^interrupted \(Ctrl-C\) while training: nothing was saved$", expected_code=130)
    assert not (tmp_path / "m.npz").exists()


def test_ctrl_c_in_evaluate_is_one_sentence(capsys, monkeypatch, digits_model):
    def interrupted_load(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr("nn.commands.evaluate.load_dataset", interrupted_load)
    code, _, err = run_main(capsys, "evaluate", "--model", digits_model)
    assert_one_sentence(code, err, r"^interrupted \(Ctrl-C\)$", expected_code=130)


def _main_with_cli_import(interruption: str) -> subprocess.CompletedProcess:
    """`python -m nn train` in a new process whose import of nn.cli runs `interruption` (lines
    of a finder's find_spec, indented for it) instead, as a Ctrl-C during start-up would."""
    code = ("import os, runpy, signal, sys, time\n"
            "class Interrupting:\n"
            "    def find_spec(self, name, path=None, target=None):\n"
            "        if name == 'nn.cli':\n" + interruption +
            "sys.meta_path.insert(0, Interrupting())\n"
            "sys.argv = ['nn', 'train']\n"
            "runpy.run_module('nn', run_name='__main__', alter_sys=True)\n")
    return subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True,
                          timeout=60, stdin=subprocess.DEVNULL)


def test_ctrl_c_while_the_command_line_loads_is_one_sentence():
    proc = _main_with_cli_import("            raise KeyboardInterrupt\n")
    assert proc.returncode == 130 and proc.stderr == "interrupted (Ctrl-C) while starting\n", proc.stderr


def test_a_ctrl_c_swallowed_by_an_extensions_import_is_one_sentence():
    # NumPy's C import of `datetime` turns a KeyboardInterrupt into an ImportError with no trace
    # of it ('PyCapsule_Import could not import module "datetime"'): the SIGINT itself is noted
    proc = _main_with_cli_import(
        "            try:\n"
        "                os.kill(os.getpid(), signal.SIGINT)\n"
        "                time.sleep(5)\n"
        "            except KeyboardInterrupt:\n"
        "                pass\n"
        "            raise ImportError('PyCapsule_Import could not import module \"datetime\"')\n")
    assert proc.returncode == 130 and proc.stderr == "interrupted (Ctrl-C) while starting\n", proc.stderr


# CPython's stderr when SIGINT arrives while `python -m` is still importing runpy (Modules/main.c)
CPYTHON_INTERRUPTED_BEFORE_RUNPY = ["Could not import runpy module", "KeyboardInterrupt"]
# ... its first line when SIGINT arrives earlier still, while CPython imports `site`
CPYTHON_INTERRUPTED_IN_SITE = "Fatal Python error: init_import_site: Failed to import the site module"


def interrupted_before_project_code(returncode, err):
    """Whether CPython itself reported the SIGINT before running any of the project's code, exit
    code 1: its two runpy lines; its fatal site-import error; or a KeyboardInterrupt raised while
    runpy was still finding and compiling nn/__main__ (the first frame runpy's). In the last two
    the traceback holds frames of CPython's start-up (and of site-packages' .pth hooks) but none
    of nn or autograd_lite."""
    lines = err.splitlines()
    if returncode != 1 or lines[-1:] != ["KeyboardInterrupt"]:
        return False
    if lines == CPYTHON_INTERRUPTED_BEFORE_RUNPY:
        return True
    frames = [line.split(",")[0] for line in lines if line.startswith('  File "')]
    in_site = lines[0] == CPYTHON_INTERRUPTED_IN_SITE and '  File "<frozen site>"' in frames
    in_runpy = lines[0] == "Traceback (most recent call last):" and frames[:1] == ['  File "<frozen runpy>"']
    project = [f for f in frames for package in ("nn", "autograd_lite") if str(REPO / package) in f]
    return (in_site or in_runpy) and not project


@pytest.mark.parametrize("delay", [0.05, 0.15, 0.3, 0.6])
def test_a_real_ctrl_c_early_in_start_up_never_prints_a_traceback(delay):
    # the nn package imports nothing heavy (names load on first use), so the guard in nn/__main__
    # is in place before NumPy, Numba and the layers load; a signal before Python has started
    # ends the process without output, or (on a loaded machine, the signal landing while CPython
    # imports runpy, before any project code runs) with CPython's own two lines and exit code 1
    proc = start_training("--epochs", "1", "--quiet")
    time.sleep(delay)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    if interrupted_before_project_code(proc.returncode, err):
        return
    assert "Traceback" not in err, err
    assert proc.returncode in (130, -signal.SIGINT, 0), (proc.returncode, err)
    assert len(err.strip().splitlines()) <= 1, err


def test_ctrl_c_while_the_options_are_parsed_is_one_sentence(monkeypatch, capsys):
    import nn.cli

    def interrupted():
        raise KeyboardInterrupt

    monkeypatch.setattr(nn.cli, "build_parser", interrupted)
    assert main(["train"]) == 130
    assert capsys.readouterr().err == "interrupted (Ctrl-C) while starting\n"


def test_an_import_error_raised_by_a_ctrl_c_inside_an_extension_import_counts_as_the_ctrl_c():
    # a Ctrl-C inside NumPy's C import surfaces as "ImportError: PyCapsule_Import could not import
    # module 'datetime'" whose context is the KeyboardInterrupt; python -m nn must treat it as Ctrl-C
    import importlib.util
    from pathlib import Path
    spec = importlib.util.spec_from_file_location("nn_main_for_test", Path(nn.__file__).with_name("__main__.py"))
    source = spec.loader.get_source("nn_main_for_test")
    namespace = {}
    exec(compile(source.split("\ntry:\n")[0], "nn/__main__.py", "exec"), namespace)
    caused_by_ctrl_c = namespace["_caused_by_ctrl_c"]
    try:
        try:
            raise KeyboardInterrupt
        except KeyboardInterrupt:
            raise ImportError('PyCapsule_Import could not import module "datetime"')
    except ImportError as error:
        assert caused_by_ctrl_c(error)
    assert not caused_by_ctrl_c(ImportError("No module named 'numpy'"))
    assert caused_by_ctrl_c(KeyboardInterrupt())
