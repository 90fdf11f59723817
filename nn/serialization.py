"""Model files: a module's parameters in a .npz archive, plus a small JSON header.

The archive holds one .npy member per parameter, named by its dotted name, and a member
`__header__` (the UTF-8 bytes of a JSON object, as a uint8 array) with the library version,
the module's class, its architecture when it is built from nn layers (a Sequential of them, an
MLP, a CNN: JSON data, see nn/architecture.py), and the name, shape and dtype of each parameter
and buffer (BatchNorm's running statistics), and the preprocessing the model expects when it is known
(`Preprocessing`: input shape, raw pixel range, scaling, class names, data set; files without it
load with `model.preprocessing = None`, "unknown"). Writes are atomic (a temporary file in the same
directory, then `os.replace`). Reading trusts nothing in the file: the header is bounded, the
architecture is checked before anything is built, every member's name, shape and dtype are
checked from its .npy header before any array is inflated, no member may inflate beyond the
bytes its shape needs, nothing is unpickled, and a rebuilt model's arrays come from the file
(no random initialisation that the file then overwrites).
"""
from __future__ import annotations

import contextlib
import json
import math
import os
import struct
import warnings
import zipfile
import zlib
from typing import Any, Dict, Iterator, NamedTuple, Optional, Tuple

import numpy as np

import autograd_lite
from autograd_lite.files import atomic_write, read_into

from .images import Preprocessing
from . import architecture as architectures
from .layers import MAX_PARAMETERS, MLP, check_max_parameters
from .module import Module

HEADER_KEY = "__header__"
FORMAT = "autograd-lite-model"
FORMAT_VERSION = 1

MAX_HEADER_BYTES = 2**20
"""The largest JSON header `save` writes and `load` reads: 1 MiB describes some 15,000
parameters, far more than a 1,000-layer MLP has (MAX_LAYERS), and parsing it costs little."""

# numpy's own bound on a .npy header (np.lib.format's default max_header_size), plus the magic
# string, version and length fields before it
_NPY_MAX_HEADER_SIZE = 10_000
_NPY_PREAMBLE_LIMIT = _NPY_MAX_HEADER_SIZE + 12


class ModelFileError(ValueError):
    """A model file that cannot be read: not an .npz archive, truncated, damaged, hostile (sizes
    that do not match the architecture, a zip bomb), or without a usable header."""


def save(module: Module, path: "os.PathLike[str] | str", preprocessing: Optional[Preprocessing] = None) -> str:
    """Write `module`'s parameters and a JSON header to the .npz file `path`, atomically: the
    previous file at `path` stays intact until the new one is complete. `path` must name a
    regular file (or a link to one) in an existing folder. Returns the path.

    The header records `preprocessing` (default: `module.preprocessing`, when set), which `load`
    gives back as the loaded model's `preprocessing`, so that nn.predict takes raw pixels.

    Example:
        >>> nn.save(model, "model.npz", nn.Preprocessing((8, 8), pixel_max=16, dataset="digits"))
        >>> model2 = nn.load("model.npz"); nn.predict(model2, raw_digits)
    """
    if not isinstance(module, Module):
        raise TypeError(f"save: expected a Module, got {type(module).__name__}")
    if preprocessing is None:
        preprocessing = getattr(module, "preprocessing", None)
    if preprocessing is not None and not isinstance(preprocessing, Preprocessing):
        raise TypeError(f"save: preprocessing must be an nn.Preprocessing or None, got {type(preprocessing).__name__}")
    path = os.fspath(path)
    state = module.state_dict()
    if HEADER_KEY in state:
        raise ValueError(f"save: a parameter is named {HEADER_KEY!r}, which the file format reserves")
    architecture = architectures.describe(module)
    subclassed = architectures.subclassed_layer(module) if architecture is None else None
    if subclassed is not None:
        where, cls, kind = subclassed
        warnings.warn(f"save: {where} is a {cls}, a subclass of nn.{kind} whose own code nn.load(path) cannot "
                      f"rebuild, so {path!r} records no architecture; load it with nn.load(path, model)",
                      UserWarning, stacklevel=2)
    header = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "library_version": autograd_lite.__version__,
        "class": type(module).__name__,
        "architecture": architecture,
        "parameters": {name: {"shape": list(a.shape), "dtype": a.dtype.name} for name, a in state.items()},
        "preprocessing": None if preprocessing is None else preprocessing.to_json(),
    }
    text = json.dumps(header).encode("utf-8")
    if len(text) > MAX_HEADER_BYTES:
        raise ValueError(f"save: the header describing {type(module).__name__}'s {len(state):,} parameters "
                         f"takes {len(text):,} bytes, more than the {MAX_HEADER_BYTES:,} that load reads")
    members = {HEADER_KEY: np.frombuffer(text, dtype=np.uint8)}
    members.update(state)
    _atomic_write_npz(path, members)
    return path


def load(path: "os.PathLike[str] | str", module: Optional[Module] = None, strict: bool = True, *,
         max_parameters: int = MAX_PARAMETERS) -> Module:
    """Read a model file written by `save`.

    With `module`, its parameters are replaced in place (checked as `load_state_dict(strict)`
    does: a wrong name or shape raises and changes nothing) and it is returned. Without, the
    module is rebuilt from the header's architecture (any model built from nn layers, of at most
    `max_parameters` parameters, 10^9 by default: the layer kinds come from a fixed registry and
    every constructor argument is checked before anything is built) with its arrays (parameters
    and buffers) read from the file, and returned.

    The whole archive is checked before any array is inflated (member names against the
    header, each member's shape and dtype against the architecture or the module, its size
    against its shape), so a hostile file costs no more memory than the parameters it claims;
    non-finite or non-float parameters are refused. Every problem with the file raises a
    ModelFileError naming the file. The model's `preprocessing` is the header's (None when the file
    records none: "unknown"; a module loaded into keeps its own then).
    """
    path = os.fspath(path)
    if module is not None and not isinstance(module, Module):
        raise TypeError(f"load: module must be a Module, got {type(module).__name__}")
    check_max_parameters(max_parameters, "load")
    with _open_archive(path) as archive:
        members = _members(path, archive)
        header = _read_header(path, archive, members.pop(HEADER_KEY, None))
        listed = _listed_parameters(path, header, members)
        layouts = {name: _read_layout(path, archive, info) for name, info in members.items()}
        _check_layouts(path, listed, layouts)
        preprocessing = _read_preprocessing(path, header)
        if module is None:
            module = _rebuild(path, archive, header, members, layouts, max_parameters,
                              None if preprocessing is None else preprocessing.input_shape)
            width = _input_width(module)
            if preprocessing is not None and width is not None and preprocessing.width != width:
                raise ModelFileError(f"load: {path!r} records inputs of shape {preprocessing.input_shape} "
                                     f"({preprocessing.width} values), but its model takes {width}")
            module.preprocessing = preprocessing
            return module
        _load_into(path, archive, module, members, layouts, strict)
        if preprocessing is not None:
            module.preprocessing = preprocessing
        return module


def load_header(path: "os.PathLike[str] | str") -> Dict[str, Any]:
    """The JSON header of a model file (library version, class, architecture, parameter shapes),
    read without inflating any parameter."""
    path = os.fspath(path)
    with _open_archive(path) as archive:
        header = _read_header(path, archive, _members(path, archive).get(HEADER_KEY))
    if header is None:
        raise ModelFileError(f"load_header: {path!r} has no {HEADER_KEY!r} member; it was "
                             "not written by nn.save")
    return header


def _atomic_write_npz(path: str, members: Dict[str, np.ndarray]) -> None:
    with atomic_write(path, "save") as f:
        # the layout of np.savez, written by hand so that no parameter name can clash with
        # savez's own keyword arguments, and with pickling refused
        with zipfile.ZipFile(f, mode="w", compression=zipfile.ZIP_STORED, allowZip64=True) as archive:
            for name, array in members.items():
                with archive.open(name + ".npy", mode="w", force_zip64=True) as member:
                    # (reshaped: ascontiguousarray turns a 0-d array, a BatchNorm's batch count, into shape (1,))
                    np.lib.format.write_array(member, np.ascontiguousarray(array).reshape(array.shape),
                                              allow_pickle=False)


# ---------------------------------------------------------------- reading
class _Layout(NamedTuple):
    """What a member's .npy header says, and how many bytes that header took."""
    shape: Tuple[int, ...]
    dtype: np.dtype
    fortran_order: bool
    header_bytes: int

    @property
    def data_bytes(self) -> int:
        return math.prod(self.shape) * self.dtype.itemsize


def _open_archive(path: str) -> zipfile.ZipFile:
    """The zip archive at `path`, or a ModelFileError saying what the file is instead."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"load: no model file at {path!r}")
    with open(path, "rb") as f:
        magic = f.read(len(np.lib.format.MAGIC_PREFIX))
    if magic == np.lib.format.MAGIC_PREFIX:
        raise ModelFileError(f"load: {path!r} holds a single array (.npy), not an .npz archive of "
                             "named parameters written by nn.save")
    try:
        return zipfile.ZipFile(path)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError, ValueError, struct.error) as error:
        raise ModelFileError(f"load: {path!r} is not an .npz archive written by nn.save "
                             f"(truncated, corrupted or another format): {error}") from None


@contextlib.contextmanager
def _damage_reported(path: str) -> Iterator[None]:
    """Turn what zipfile, zlib and numpy raise on a damaged member (a truncated stream, a bad
    CRC, a .npy header that does not parse) into one ModelFileError naming the file."""
    try:
        yield
    except ModelFileError:
        raise
    except (zipfile.BadZipFile, OSError, EOFError, ValueError, zlib.error, struct.error,
            RecursionError) as error:
        raise ModelFileError(f"load: {path!r} is a damaged .npz archive (truncated or corrupted): "
                             f"{error}") from None


def _members(path: str, archive: zipfile.ZipFile) -> Dict[str, zipfile.ZipInfo]:
    """{array name: its zip entry}, every entry a .npy file, stored or deflated, named once."""
    members: Dict[str, zipfile.ZipInfo] = {}
    for info in archive.infolist():
        if not info.filename.endswith(".npy"):
            raise ModelFileError(f"load: {path!r} holds {info.filename!r}, which is not a .npy array; "
                                 "a model file holds only .npy members")
        if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED) or info.flag_bits & 0x1:
            # zipfile inflates bzip2 and lzma members without a bound on the output, and
            # encrypted members cannot be read at all
            raise ModelFileError(f"load: member {info.filename!r} of {path!r} is encrypted or compressed "
                                 f"with zip method {info.compress_type}; model files are stored or "
                                 "deflated (np.savez / np.savez_compressed)")
        name = info.filename[:-len(".npy")]
        if name in members:
            raise ModelFileError(f"load: {path!r} holds two members named {info.filename!r}")
        members[name] = info
    return members


def _read_header(path: str, archive: zipfile.ZipFile,
                 info: Optional[zipfile.ZipInfo]) -> Optional[Dict[str, Any]]:
    """The parsed JSON header (None when the archive has none), at most MAX_HEADER_BYTES read."""
    if info is None:
        return None
    too_long = (f"load: the header of {path!r} takes {{:,}} bytes; a model file's header is at most "
                f"{MAX_HEADER_BYTES:,} (nn.save did not write this file)")
    if info.file_size > MAX_HEADER_BYTES + _NPY_PREAMBLE_LIMIT:     # refused before it is opened
        raise ModelFileError(too_long.format(info.file_size))
    layout = _read_layout(path, archive, info)
    if layout.dtype != np.uint8 or len(layout.shape) != 1:
        raise ModelFileError(f"load: the {HEADER_KEY!r} of {path!r} should be a 1-D uint8 array "
                             f"(JSON bytes), got dtype {layout.dtype} and shape {layout.shape}")
    if layout.shape[0] > MAX_HEADER_BYTES:
        raise ModelFileError(too_long.format(layout.shape[0]))
    raw = _read_array(path, archive, info, layout)
    try:
        header = json.loads(raw.tobytes().decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as error:
        raise ModelFileError(f"load: the header of {path!r} is not valid JSON: {error}") from None
    except RecursionError:
        raise ModelFileError(f"load: the header of {path!r} is JSON nested too deeply to be a model "
                             "file's header") from None
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        raise ModelFileError(f"load: the header of {path!r} does not describe an {FORMAT!r} file")
    version = header.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise ModelFileError(f"load: {path!r} uses format version {version!r}; this library "
                             f"(autograd-lite {autograd_lite.__version__}) reads up to {FORMAT_VERSION}")
    return header


def _read_layout(path: str, archive: zipfile.ZipFile, info: zipfile.ZipInfo) -> _Layout:
    """The member's .npy header, read without inflating its data, and checked against the size
    its zip entry declares."""
    # zlib's compressBound: no deflate stream of n bytes is longer, so compressed bytes beyond
    # it would be data that the declared size hides
    n, stored = info.file_size, info.compress_type == zipfile.ZIP_STORED
    if info.compress_size > (n if stored else n + (n >> 12) + (n >> 14) + (n >> 25) + 13):
        raise ModelFileError(f"load: member {info.filename!r} of {path!r} stores {info.compress_size:,} "
                             f"compressed bytes for {n:,} bytes of .npy, more than any "
                             f"{'stored' if stored else 'deflated'} member needs (a corrupted file or a "
                             "zip bomb)")
    with _damage_reported(path), archive.open(info) as stream:
        reader = _BoundedReader(stream, _NPY_PREAMBLE_LIMIT, path, info.filename)
        version = np.lib.format.read_magic(reader)
        if version == (1, 0):
            shape, fortran_order, dtype = np.lib.format.read_array_header_1_0(reader, _NPY_MAX_HEADER_SIZE)
        elif version == (2, 0):
            shape, fortran_order, dtype = np.lib.format.read_array_header_2_0(reader, _NPY_MAX_HEADER_SIZE)
        else:
            raise ModelFileError(f"load: member {info.filename!r} of {path!r} is a .npy file of version "
                                 f"{version[0]}.{version[1]}, which model files do not use")
    if dtype.hasobject:
        raise ModelFileError(f"load: member {info.filename!r} of {path!r} holds Python objects, which a "
                             "model file never does; it was not read (unpickling could run any code)")
    if any(length < 0 for length in shape):
        raise ModelFileError(f"load: member {info.filename!r} of {path!r} has the impossible shape {shape}")
    layout = _Layout(tuple(shape), dtype, fortran_order, reader.consumed)
    size = layout.header_bytes + layout.data_bytes
    if info.file_size != size:
        raise ModelFileError(f"load: member {info.filename!r} of {path!r} declares {info.file_size:,} "
                             f"bytes, but an array of shape {layout.shape} and dtype {dtype} takes {size:,} "
                             "as .npy (a corrupted file or a zip bomb)")
    return layout


def _listed_parameters(path: str, header: Optional[Dict[str, Any]],
                       members: Dict[str, zipfile.ZipInfo]) -> Optional[Dict[str, Dict[str, Any]]]:
    """The header's {name: {"shape", "dtype"}} (None without a header or list), once its names
    are checked to be exactly the archive's arrays."""
    listed = None if header is None else header.get("parameters")
    if listed is None:
        return None
    if not isinstance(listed, dict) or not all(isinstance(entry, dict) for entry in listed.values()):
        raise ModelFileError(f"load: the header of {path!r} does not list its parameters as "
                             "{name: {'shape': [...], 'dtype': ...}}")
    if set(listed) != set(members):
        raise ModelFileError(f"load: the header of {path!r} does not match its arrays: "
                             + _differences(set(listed) - set(members), set(members) - set(listed),
                                            "listed but absent", "present but not listed"))
    return listed


def _check_layouts(path: str, listed: Optional[Dict[str, Dict[str, Any]]],
                   layouts: Dict[str, _Layout]) -> None:
    """Every array has the shape and dtype the header lists, and is floating-point (never an
    int or bool array)."""
    for name, layout in layouts.items():
        if listed is not None:
            shape, dtype = listed[name].get("shape"), listed[name].get("dtype")
            if shape != list(layout.shape) or dtype != str(layout.dtype):
                raise ModelFileError(f"load: parameter {name!r} of {path!r} is stored with shape "
                                     f"{layout.shape} and dtype {layout.dtype}, but the header lists "
                                     f"shape {shape!r:.80} and dtype {dtype!r:.40}")
        if layout.dtype.kind != "f":
            raise ModelFileError(f"load: parameter {name!r} of {path!r} is stored as {layout.dtype}; "
                                 "model parameters are floating-point (float32 or float64)")


def _read_preprocessing(path: str, header: Optional[Dict[str, Any]]) -> Optional[Preprocessing]:
    """The header's preprocessing record, None when absent (files older than the record)."""
    value = None if header is None else header.get("preprocessing")
    if value is None:
        return None
    try:
        return Preprocessing.from_json(value)
    except (TypeError, ValueError) as error:
        raise ModelFileError(f"load: the preprocessing recorded in {path!r} is invalid: "
                             f"{str(error).removeprefix('Preprocessing: ')}") from None


def _rebuild(path: str, archive: zipfile.ZipFile, header: Optional[Dict[str, Any]],
             members: Dict[str, zipfile.ZipInfo], layouts: Dict[str, _Layout], max_parameters: int,
             input_shape: Optional[Tuple[int, ...]]) -> Module:
    """The module the header's architecture describes, its arrays read from the file; a Sequential's
    layers are checked to fit one another (and `input_shape`, the recorded inputs', when known)."""
    arch = None if header is None else header.get("architecture")
    arch_class = arch.get("class") if isinstance(arch, dict) else None
    if not isinstance(arch_class, str) or arch_class not in architectures.KINDS:
        saved_class = None if header is None else header.get("class")
        raise ModelFileError(
            f"load: {path!r} does not record an architecture that can be rebuilt "
            f"(saved from {saved_class or 'an unknown module'!s:.80}; only models built from nn layers "
            "can be); pass the module to load into: nn.load(path, model)")
    try:
        specs = architectures.state_specs(arch, max_parameters)
    except (TypeError, ValueError) as error:
        raise ModelFileError(f"load: the architecture in {path!r} is invalid: {error}") from None
    if set(specs) != set(layouts):
        raise ModelFileError(f"load: {path!r} does not hold the parameters its architecture needs: "
                             + _differences(set(specs) - set(layouts), set(layouts) - set(specs),
                                            "missing", "unexpected"))
    for name, (shape, dtype) in specs.items():
        if layouts[name].shape != shape or layouts[name].dtype != dtype:
            raise ModelFileError(f"load: parameter {name!r} of {path!r} is stored with shape "
                                 f"{layouts[name].shape} and dtype {layouts[name].dtype}, but the "
                                 f"architecture needs shape {shape} and dtype {dtype}")
    try:
        if arch_class == "Sequential":   # (an MLP's or a CNN's own layers fit by construction)
            architectures.check_layer_shapes(arch, input_shape)
        module = architectures.build(arch, init="empty", max_parameters=max_parameters)
    except (TypeError, ValueError) as error:
        raise ModelFileError(f"load: the architecture in {path!r} is invalid: {error}") from None
    for name, array in _state_arrays(module).items():
        _read_array(path, archive, members[name], layouts[name], out=array)
        _check_finite(path, name, array)
    return module


def _state_arrays(module: Module) -> Dict[str, np.ndarray]:
    """{name: the array itself} of every parameter and buffer, what a file fills in place."""
    arrays = {name: p.data for name, p in module.named_parameters()}
    arrays.update(module.named_buffers())
    return arrays


def _input_width(module: Module) -> Optional[int]:
    """How many values one input of `module` has, where the model says (an MLP's first width, a
    CNN's C * H * W), else None."""
    if isinstance(module, MLP):
        return module.sizes[0]
    return getattr(module, "input_size", None)


def _load_into(path: str, archive: zipfile.ZipFile, module: Module, members: Dict[str, zipfile.ZipInfo],
               layouts: Dict[str, _Layout], strict: bool) -> None:
    """Replace `module`'s parameters with the file's, changing nothing unless all of them load."""
    try:
        module.check_state_shapes({name: layout.shape for name, layout in layouts.items()}, strict)
    except ValueError as error:
        raise ValueError(f"load: the parameters in {path!r} do not fit the module:\n{error}") from None
    own = _state_arrays(module)
    arrays = {}
    for name in members:
        if name in own:
            arrays[name] = _read_array(path, archive, members[name], layouts[name])
            _check_finite(path, name, arrays[name])
    module.load_state_dict(arrays, strict=False)


def _read_array(path: str, archive: zipfile.ZipFile, info: zipfile.ZipInfo, layout: _Layout,
                out: Optional[np.ndarray] = None) -> np.ndarray:
    """The member's array, read into `out` (C-contiguous, of its shape and dtype) when given.
    zipfile never yields more than the entry's declared size, which `_read_layout` pinned to what
    the layout needs, so the member cannot inflate past it."""
    if out is not None and not layout.fortran_order:
        target = out
    else:
        target = np.empty(layout.shape, layout.dtype, order="F" if layout.fortran_order else "C")
    # the array's memory as bytes; a Fortran-ordered array's transpose is C-contiguous
    buffer = memoryview(target.T if layout.fortran_order else target).cast("B")
    with _damage_reported(path), archive.open(info) as stream:
        if len(stream.read(layout.header_bytes)) != layout.header_bytes \
                or read_into(stream, buffer) != len(buffer):
            raise ModelFileError(f"load: member {info.filename!r} of {path!r} ends early (truncated or "
                                 "corrupted)")
    if out is not None and target is not out:
        np.copyto(out, target)
        return out
    return target


def _check_finite(path: str, name: str, array: np.ndarray) -> None:
    # min and max propagate NaN and reach +-inf without a temporary array the size of `array`
    if array.size and not (np.isfinite(array.min()) and np.isfinite(array.max())):
        bad = int(np.count_nonzero(~np.isfinite(array)))
        raise ModelFileError(f"load: parameter {name!r} in {path!r} holds {bad:,} NaN or infinite "
                             f"value{'s' if bad > 1 else ''} (of {array.size:,}); a model file must hold "
                             "finite numbers (was it saved after training diverged?)")


def _differences(absent: set, present: set, absent_word: str, present_word: str) -> str:
    """The names on each side of a mismatch, the first ten of each: "missing ['a'], unexpected ['c']"."""
    sides = ((absent_word, absent), (present_word, present))
    parts = [f"{word} {sorted(names)[:10]}" for word, names in sides if names]
    return ", ".join(parts)


class _BoundedReader:
    """A member's first bytes, refused beyond `limit`: numpy reads the header length a .npy file
    declares (up to 4 GiB) before it checks it against its bound, so its parser gets this instead
    of the stream."""

    def __init__(self, stream: Any, limit: int, path: str, member: str) -> None:
        self.stream, self.limit, self.path, self.member = stream, limit, path, member
        self.consumed = 0

    def read(self, size: int) -> bytes:
        if size < 0 or self.consumed + size > self.limit:
            raise ModelFileError(f"load: member {self.member!r} of {self.path!r} runs past the "
                                 f"{self.limit:,} bytes a .npy header may take (a corrupted file or a "
                                 "zip bomb)")
        data = self.stream.read(size)
        self.consumed += len(data)
        return data
