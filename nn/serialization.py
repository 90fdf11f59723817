"""Model files: a module's parameters in a .npz archive, plus a small JSON header.

The archive holds one .npy member per parameter, named by its dotted name, and a member
`__header__` (the UTF-8 bytes of a JSON object, as a uint8 array) with the library version,
the module's class, its architecture when it knows one (`MLP.architecture()`), and the
name, shape and dtype of each parameter. Writes are atomic (a temporary file in the same
directory, then `os.replace`), and reading never unpickles (`allow_pickle=False`).
"""
from __future__ import annotations

import json
import os
import zipfile
import zlib
from typing import Any, Dict, Optional, Tuple

import numpy as np

import autograd_lite
from autograd_lite.files import atomic_write

from .layers import MLP
from .module import Module

HEADER_KEY = "__header__"
FORMAT = "autograd-lite-model"
FORMAT_VERSION = 1

# classes that `load(path)` can rebuild from the header alone
_BUILDERS = {"MLP": MLP.from_architecture}


class ModelFileError(ValueError):
    """A model file that cannot be read: not an .npz archive, truncated, or without a usable header."""


def save(module: Module, path: "os.PathLike[str] | str") -> str:
    """Write `module`'s parameters and a JSON header to the .npz file `path`, atomically: the
    previous file at `path` stays intact until the new one is complete. Returns the path.

    Example:
        >>> nn.save(model, "model.npz"); model2 = nn.load("model.npz")
    """
    if not isinstance(module, Module):
        raise TypeError(f"save: expected a Module, got {type(module).__name__}")
    path = os.fspath(path)
    state = module.state_dict()
    if HEADER_KEY in state:
        raise ValueError(f"save: a parameter is named {HEADER_KEY!r}, which the file format reserves")
    architecture = module.architecture() if hasattr(module, "architecture") else None
    header = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "library_version": autograd_lite.__version__,
        "class": type(module).__name__,
        "architecture": architecture,
        "parameters": {name: {"shape": list(a.shape), "dtype": a.dtype.name} for name, a in state.items()},
    }
    members = {HEADER_KEY: np.frombuffer(json.dumps(header).encode("utf-8"), dtype=np.uint8)}
    members.update(state)
    _atomic_write_npz(path, members)
    return path


def load(path: "os.PathLike[str] | str", module: Optional[Module] = None, strict: bool = True) -> Module:
    """Read a model file written by `save`.

    With `module`, its parameters are replaced in place (checked as `load_state_dict(strict)`
    does: a wrong name or shape raises and changes nothing) and it is returned. Without, the
    module is rebuilt from the header's architecture (an MLP) and returned.
    """
    header, params = _read(path)
    if module is None:
        module = _rebuild(path, header)
    elif not isinstance(module, Module):
        raise TypeError(f"load: module must be a Module, got {type(module).__name__}")
    try:
        module.load_state_dict(params, strict=strict)
    except ValueError as error:
        raise ValueError(f"load: the parameters in {os.fspath(path)!r} do not fit the module:\n"
                         f"{error}") from None
    return module


def load_header(path: "os.PathLike[str] | str") -> Dict[str, Any]:
    """The JSON header of a model file (library version, class, architecture, parameter shapes)."""
    header, _ = _read(path)
    if header is None:
        raise ModelFileError(f"load_header: {os.fspath(path)!r} has no {HEADER_KEY!r} member; it was "
                             "not written by nn.save")
    return header


def _atomic_write_npz(path: str, members: Dict[str, np.ndarray]) -> None:
    with atomic_write(path, "save") as f:
        # the layout of np.savez, written by hand so that no parameter name can clash with
        # savez's own keyword arguments, and with pickling refused
        with zipfile.ZipFile(f, mode="w", compression=zipfile.ZIP_STORED, allowZip64=True) as archive:
            for name, array in members.items():
                with archive.open(name + ".npy", mode="w", force_zip64=True) as member:
                    np.lib.format.write_array(member, np.ascontiguousarray(array), allow_pickle=False)


def _read(path: "os.PathLike[str] | str") -> Tuple[Optional[Dict[str, Any]], Dict[str, np.ndarray]]:
    """(header or None, {parameter name: array}); a ModelFileError for anything unreadable."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"load: no model file at {path!r}")
    try:
        archive = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as error:
        raise ModelFileError(f"load: {path!r} is not an .npz archive written by nn.save "
                             f"(truncated, corrupted or another format): {error}") from None
    if not isinstance(archive, np.lib.npyio.NpzFile):
        raise ModelFileError(f"load: {path!r} holds a single array (.npy), not an .npz archive of "
                             "named parameters written by nn.save")
    try:
        with archive:
            arrays = {name: archive[name] for name in archive.files}
    except (ValueError, OSError, EOFError, KeyError, zipfile.BadZipFile, zlib.error) as error:
        raise ModelFileError(f"load: {path!r} is a damaged .npz archive (truncated or corrupted): "
                             f"{error}") from None
    raw = arrays.pop(HEADER_KEY, None)
    return (None if raw is None else _parse_header(path, raw)), arrays


def _parse_header(path: str, raw: np.ndarray) -> Dict[str, Any]:
    if raw.dtype != np.uint8 or raw.ndim != 1:
        raise ModelFileError(f"load: the {HEADER_KEY!r} of {path!r} should be a 1-D uint8 array "
                             f"(JSON bytes), got dtype {raw.dtype} and shape {raw.shape}")
    try:
        header = json.loads(raw.tobytes().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ModelFileError(f"load: the header of {path!r} is not valid JSON: {error}") from None
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        raise ModelFileError(f"load: the header of {path!r} does not describe an {FORMAT!r} file")
    version = header.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise ModelFileError(f"load: {path!r} uses format version {version!r}; this library "
                             f"(autograd-lite {autograd_lite.__version__}) reads up to {FORMAT_VERSION}")
    return header


def _rebuild(path: "os.PathLike[str] | str", header: Optional[Dict[str, Any]]) -> Module:
    arch = None if header is None else header.get("architecture")
    if not isinstance(arch, dict) or arch.get("class") not in _BUILDERS:
        saved_class = None if header is None else header.get("class")
        raise ModelFileError(
            f"load: {os.fspath(path)!r} does not record an architecture that can be rebuilt "
            f"(saved from {saved_class or 'an unknown module'}; only {sorted(_BUILDERS)} can be); "
            "pass the module to load into: nn.load(path, model)")
    try:
        return _BUILDERS[arch["class"]](arch)
    except (TypeError, ValueError) as error:
        raise ModelFileError(f"load: the architecture in {os.fspath(path)!r} is invalid: {error}") from None
