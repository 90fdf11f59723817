"""What the commands share: the two exceptions the command line turns into one sentence and an
exit code, loading model files, and checks of the options that name files and folders."""
from __future__ import annotations

import os
from pathlib import Path
from typing import List, Optional, Sequence, Tuple

from ..cnn import CNN
from ..layers import MLP
from ..module import Module
from ..serialization import load


class UserError(Exception):
    """A problem with the user's input: printed as one sentence, exit code 1."""


class Interrupted(Exception):
    """Ctrl-C, with what was saved: printed as one sentence, exit code 130."""


def parse_hidden(values: Optional[List[str]]) -> List[int]:
    """--hidden's values (repeated, or comma lists) as a list of widths."""
    widths = []
    for value in values or []:
        for part in value.split(","):
            part = part.strip()
            if not part.isdigit() or int(part) < 1:
                raise UserError(f"--hidden takes positive integers (e.g. --hidden 100 or --hidden 256,128), "
                                f"got {value!r}")
            widths.append(int(part))
    return widths


def load_models(paths: Sequence[str], hidden: Optional[List[int]]) -> List[Module]:
    """The models in `paths` (an ensemble when several), checked to be MLPs or CNNs of the same inputs
    and classes (and of `hidden` widths, the CNN's dense layers, when given)."""
    models: List[Module] = []
    for path in paths:
        if not os.path.isfile(path):
            raise UserError(f"no model file at {path}")
        model = load(path)
        if not isinstance(model, (MLP, CNN)):
            raise UserError(f"{path} does not hold an MLP or a CNN written by 'python -m nn train --save'")
        widths = model.sizes[1:-1] if isinstance(model, MLP) else model.architecture()["hidden"]
        if hidden and widths != hidden:
            raise UserError(f"{path} has hidden layers {widths}, which does not match "
                            f"--hidden {','.join(map(str, hidden))}")
        if models and model_shape(model) != model_shape(models[0]):
            raise UserError(f"{path} takes {model_shape(model)[0]} inputs and gives {model_shape(model)[1]} classes "
                            f"but {paths[0]} takes {model_shape(models[0])[0]} and gives {model_shape(models[0])[1]}; "
                            "an ensemble needs models of the same inputs and classes")
        models.append(model)
    return models


def model_shape(model: Module) -> Tuple[int, int]:
    """(values per input, classes) of an MLP or a CNN."""
    if isinstance(model, MLP):
        return model.sizes[0], model.sizes[-1]
    return model.input_size, model.num_classes


def check_data_dir(data_dir: Optional[str]) -> None:
    """--data-dir may be missing (a download creates it) but not a file."""
    if data_dir and Path(data_dir).expanduser().exists() and not Path(data_dir).expanduser().is_dir():
        raise UserError(f"--data-dir {data_dir} is a file; give the folder where data sets are kept")


def one_sentence(error: BaseException) -> str:
    """The error's message on one line (multi-line messages, e.g. from load_state_dict, joined)."""
    text = str(error).strip() or type(error).__name__
    return " ".join(line.strip() for line in text.splitlines() if line.strip())
