"""The IDX file format of MNIST and Fashion-MNIST: read (raw or gzip) and write.

An IDX file is a 4-byte magic number (two zero bytes, a type code, the number of
dimensions), one big-endian uint32 per dimension, then the values in C order, big-endian.
The reader checks each of these against the file's size and says what is wrong.
"""
from __future__ import annotations

import gzip
import os
import struct
import zlib
from pathlib import Path
from typing import Union

import numpy as np

from autograd_lite.files import atomic_write

from .errors import IDXFormatError

PathLike = Union[str, os.PathLike]

# type code -> big-endian dtype (the codes of the IDX specification)
IDX_TYPES = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_TYPE_CODES = {dt.newbyteorder("="): code for code, dt in IDX_TYPES.items()}
_GZIP_MAGIC = b"\x1f\x8b"


def read_idx(path: PathLike) -> np.ndarray:
    """Read an IDX file (raw, or gzip-compressed: detected from its first bytes).

    Returns an array of the file's shape in native byte order (uint8 for MNIST).
    Raises `IDXFormatError` naming the file and the fault: a wrong magic number, an
    unknown type code, or a size that does not match the dimensions in the header.

    Example:
        >>> images = read_idx("train-images-idx3-ubyte.gz")   # (60000, 28, 28) uint8
    """
    path = Path(path)
    raw = _read_bytes(path)
    if len(raw) < 4:
        raise IDXFormatError(f"read_idx: {path} is {len(raw)} bytes long, too short for the "
                             "4-byte IDX magic number; the file is empty or truncated")
    zero0, zero1, code, ndim = raw[0], raw[1], raw[2], raw[3]
    magic = int.from_bytes(raw[:4], "big")
    if zero0 != 0 or zero1 != 0 or code not in IDX_TYPES:
        raise IDXFormatError(
            f"read_idx: {path} has magic number 0x{magic:08x}, which is not an IDX header "
            f"(expected 0x0000TTDD with type code TT in "
            f"{', '.join(f'0x{c:02x}' for c in IDX_TYPES)}, e.g. 0x00000803 = 2051 for "
            "MNIST images, 0x00000801 = 2049 for labels)")
    header_size = 4 + 4 * ndim
    if len(raw) < header_size:
        raise IDXFormatError(f"read_idx: {path} is truncated inside its header: {ndim} dimensions "
                             f"need {header_size} header bytes, the file has {len(raw)}")
    shape = struct.unpack(f">{ndim}I", raw[4:header_size])
    dtype = IDX_TYPES[code]
    expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    actual = len(raw) - header_size
    if actual < expected:
        raise IDXFormatError(
            f"read_idx: {path} is truncated: its header says shape {shape} of {dtype.newbyteorder('=')} "
            f"= {expected} data bytes, but only {actual} follow the header")
    if actual > expected:
        raise IDXFormatError(
            f"read_idx: {path} has {actual - expected} bytes more than its header promises "
            f"(shape {shape} of {dtype.newbyteorder('=')} = {expected} data bytes); "
            "the file is corrupt or not an IDX file")
    data = np.frombuffer(raw, dtype=dtype, count=expected // dtype.itemsize, offset=header_size)
    return data.reshape(shape).astype(dtype.newbyteorder("="))


def write_idx(path: PathLike, array: np.ndarray, compress: bool | None = None) -> None:
    """Write `array` as an IDX file, gzip-compressed when `compress` (default: path ends in .gz).

    The write is atomic: a temporary file in the same folder, then a rename.
    """
    path = Path(path)
    array = np.asarray(array)
    code = _TYPE_CODES.get(array.dtype.newbyteorder("="))
    if code is None:
        raise ValueError(f"write_idx: dtype {array.dtype} has no IDX type code; use one of "
                         "uint8, int8, int16, int32, float32, float64")
    if array.ndim > 255:
        raise ValueError(f"write_idx: an IDX file holds at most 255 dimensions, got {array.ndim}")
    body = (bytes([0, 0, code, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
            + np.ascontiguousarray(array, dtype=IDX_TYPES[code]).tobytes())
    if compress is None:
        compress = path.suffix == ".gz"
    if compress:
        body = gzip.compress(body, mtime=0)
    with atomic_write(path, "write_idx") as f:
        f.write(body)


def _read_bytes(path: Path) -> bytes:
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except FileNotFoundError:
        raise IDXFormatError(f"read_idx: no such file: {path}") from None
    except IsADirectoryError:
        raise IDXFormatError(f"read_idx: {path} is a directory, not an IDX file") from None
    if raw[:2] != _GZIP_MAGIC:
        return raw
    try:
        return gzip.decompress(raw)
    except EOFError:
        raise IDXFormatError(f"read_idx: {path} is a truncated gzip file (the compressed stream "
                             "ends early); delete it and download it again") from None
    except (gzip.BadGzipFile, zlib.error) as error:
        raise IDXFormatError(f"read_idx: {path} is a corrupt gzip file ({error}); delete it and "
                             "download it again") from None
