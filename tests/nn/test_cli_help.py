"""The command line's help and packaging: each option's help text shows its default once and a
flag none, --version, and the console script `autograd-lite` next to `python -m nn`."""
import argparse
import importlib.metadata
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import autograd_lite as ag
from nn.cli import build_parser, main

REPO = Path(__file__).resolve().parents[2]


def _commands():
    parser = build_parser()
    subs = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return [("", parser), *subs.choices.items()]


def _option_helps():
    """(command, option, action, the help text as --help prints it) for every option."""
    for name, parser in _commands():
        formatter = parser._get_formatter()
        for action in parser._actions:
            if action.option_strings and not isinstance(action, argparse._HelpAction):
                yield name, action.option_strings[-1], action, formatter._expand_help(action)


def test_every_option_has_a_help_text():
    missing = [f"{name} {option}" for name, option, action, _ in _option_helps() if not (action.help or "").strip()]
    assert missing == []


def test_each_option_shows_its_default_at_most_once_and_flags_none():
    for name, option, action, text in _option_helps():
        shown = text.count("(default")
        if action.nargs == 0:
            assert shown == 0, f"{name} {option}: {text}"
        elif action.default is not None and not action.required:
            assert shown == 1, f"{name} {option}: {text}"
        else:
            assert shown <= 1, f"{name} {option}: {text}"


def test_options_without_a_value_default_say_what_happens_instead():
    helps = {(name, option): text for name, option, _, text in _option_helps()}
    for key in [("train", "--hidden"), ("train", "--lr"), ("train", "--validation"), ("train", "--early-stopping"),
                ("train", "--save"), ("train", "--plot"), ("train", "--data-dir"), ("explain", "--dot"),
                ("evaluate", "--dataset"), ("evaluate", "--hidden"), ("predict", "--max-value")]:
        assert helps[key].count("(default: ") == 1, (key, helps[key])


def test_train_help_shows_no_none_or_false_default(capsys):
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    out = capsys.readouterr().out
    assert "(default: None)" not in out and "(default: False)" not in out
    assert out.count("(default: 0)") == 1      # --seed


def test_train_help_shows_each_data_sets_defaults_from_the_one_table(capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "80")
    from nn.datasets.defaults import TRAINING_DEFAULTS
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    out = capsys.readouterr().out
    assert max(len(line) for line in out.splitlines()) <= 80
    table = " ".join(out.split("an option given on the command line wins:")[1].split())
    for name, defaults in TRAINING_DEFAULTS["mlp"].items():
        assert f"{name} (mlp): {defaults.chosen}" in table
        assert defaults.options() in table
    assert "not measured" in TRAINING_DEFAULTS["mlp"]["fashion-mnist"].chosen
    helps = {option: text for name, option, _, text in _option_helps() if name == "train"}
    assert "the data set's" in helps["--epochs"] and "the data set's" in helps["--lr"]


def test_version_prints_the_package_name_and_version(capsys):
    with pytest.raises(SystemExit) as stop:
        main(["--version"])
    assert stop.value.code == 0
    assert capsys.readouterr().out == f"autograd-lite {ag.__version__}\n"
    try:
        installed = importlib.metadata.version("autograd-lite")
    except importlib.metadata.PackageNotFoundError:
        return
    assert installed == ag.__version__, "pyproject's version and autograd_lite.__version__ differ"


def test_the_console_script_runs_the_command_line():
    script = shutil.which("autograd-lite", path=os.pathsep.join([str(Path(sys.executable).parent),
                                                                 os.environ.get("PATH", "")]))
    if script is None:
        pytest.skip("the console script autograd-lite is not installed (pip install -e .)")
    proc = subprocess.run([script, "train", "--help"], capture_output=True, text=True, timeout=60,
                          stdin=subprocess.DEVNULL)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("usage: autograd-lite train")


def test_both_packages_are_marked_typed():
    for package in ("autograd_lite", "nn"):
        assert (REPO / package / "py.typed").is_file()
    tomllib = pytest.importorskip("tomllib")
    project = tomllib.loads((REPO / "pyproject.toml").read_text())
    assert project["tool"]["setuptools"]["package-data"]["autograd_lite"] == ["py.typed"]
    assert "py.typed" in project["tool"]["setuptools"]["package-data"]["nn"]
    assert project["project"]["scripts"]["autograd-lite"] == "nn.cli:main"
    assert project["project"]["license"] == "MIT"
