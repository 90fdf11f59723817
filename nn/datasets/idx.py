"""The IDX file format of MNIST and Fashion-MNIST: read (raw or gzip) and write.

An IDX file is a 4-byte magic number (two zero bytes, a type code, the number of
dimensions), one big-endian uint32 per dimension, then the values in C order, big-endian.
The reader checks each of these against the file's size and says what is wrong; it reads a
hostile file (a gzip bomb, a FIFO, /dev/zero, a header of absurd dimensions) no further than
its header promises, and never past `MAX_IDX_BYTES` unless asked.
"""
from __future__ import annotations

import gzip
import math
import os
import stat
import struct
import zlib
from pathlib import Path
from typing import BinaryIO, Tuple, Union

import numpy as np

from autograd_lite.files import atomic_write, file_kind, read_into

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

# The most data bytes read_idx reads unless its caller passes a larger max_bytes: 4 GiB, about
# 90 times MNIST's largest file (47 MB), and far below what dimensions of 2**32 - 1 would ask for.
MAX_IDX_BYTES = 1 << 32
# deflate never expands more than 1032:1 (zlib's technical notes), so a gzip file of n bytes
# cannot hold more than 1032 n bytes: a header promising more is refused before any allocation
_DEFLATE_MAX_RATIO = 1032


def read_idx(path: PathLike, max_bytes: int = MAX_IDX_BYTES) -> np.ndarray:
    """Read an IDX file (raw, or gzip-compressed: detected from its first bytes).

    Returns an array of the file's shape in native byte order (uint8 for MNIST).
    Raises `IDXFormatError` naming the file and the fault: not a regular file (a directory,
    FIFO or device), a wrong magic number, an unknown type code, a header promising more than
    `max_bytes` data bytes (default `MAX_IDX_BYTES`, 4 GiB) or more than the file can hold, or a
    size that does not match the dimensions in the header. The size checks come before the data
    is read, and a gzip file is decompressed no further than one byte past what its header
    promises, so a gzip bomb costs no more memory than the array it claims to be.

    Example:
        >>> images = read_idx("train-images-idx3-ubyte.gz")   # (60000, 28, 28) uint8
    """
    path = Path(path)
    with _open_regular_file(path) as file:
        file_size = os.fstat(file.fileno()).st_size
        compressed = file.read(2) == _GZIP_MAGIC
        file.seek(0)
        if not compressed:
            return _read_idx_stream(path, file, file_size, compressed, max_bytes)
        try:
            with gzip.GzipFile(fileobj=file) as stream:
                return _read_idx_stream(path, stream, file_size, compressed, max_bytes)
        except EOFError:
            raise IDXFormatError(f"read_idx: {path} is a truncated gzip file (the compressed stream "
                                 "ends early); delete it and download it again") from None
        except (gzip.BadGzipFile, zlib.error) as error:
            raise IDXFormatError(f"read_idx: {path} is a corrupt gzip file ({error}); delete it and "
                                 "download it again") from None


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


def _open_regular_file(path: Path) -> BinaryIO:
    """`path` opened for reading, once os.stat has shown it is a regular file.

    The check comes before the open because opening a FIFO blocks until a writer appears, and
    reading a device such as /dev/zero never ends.
    """
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        raise IDXFormatError(f"read_idx: no such file: {path}") from None
    except OSError as error:
        raise IDXFormatError(f"read_idx: cannot read {path}: {error.strerror or error}") from None
    if not stat.S_ISREG(mode):
        raise IDXFormatError(f"read_idx: {path} is {file_kind(mode)}, not a regular file; an IDX file "
                             "is a regular file, raw or gzip-compressed")
    return open(path, "rb")


def _read_idx_stream(path: Path, stream: BinaryIO, file_size: int, compressed: bool,
                     max_bytes: int) -> np.ndarray:
    """The array in `stream` (the file, or its decompressed gzip stream) of `file_size` bytes."""
    shape, dtype, header_size = _read_header(path, stream)
    # Python integers: the product of dimensions of 2**32 - 1 cannot wrap around as int64 would
    expected = math.prod(shape) * dtype.itemsize
    promised = f"shape {shape} of {dtype.newbyteorder('=')} = {expected} data bytes"
    if expected > max_bytes:
        raise IDXFormatError(
            f"read_idx: {path} has a header that promises {promised}, more than the limit of "
            f"max_bytes = {max_bytes}; the header is corrupt, or pass a larger max_bytes for a "
            "file that big")
    if compressed and expected > file_size * _DEFLATE_MAX_RATIO:
        raise IDXFormatError(
            f"read_idx: {path} has a header that promises {promised}, more than a gzip file of "
            f"{file_size} bytes can hold ({_DEFLATE_MAX_RATIO} times its size at most); the file "
            "is truncated or corrupt")
    if not compressed:
        follows = file_size - header_size
        if follows < expected:
            raise _truncated(path, promised, follows)
        if follows > expected:
            raise IDXFormatError(
                f"read_idx: {path} has {follows - expected} bytes more than its header promises "
                f"({promised}); the file is corrupt or not an IDX file")
    try:
        data = np.empty(shape, dtype)
    except ValueError:  # a zero dimension beside dimensions whose product overflows
        raise IDXFormatError(f"read_idx: {path} has a header that promises shape {shape}, which no "
                             "array can have; the file is corrupt") from None
    # the bytes of the array, flat (memoryview.cast refuses shapes with a zero)
    received = read_into(stream, memoryview(data.reshape(-1).view(np.uint8)))
    if received < expected:  # a gzip stream that ends early, or a raw file that shrank
        raise _truncated(path, promised, received)
    if compressed and stream.read(1):
        raise IDXFormatError(
            f"read_idx: {path} decompresses to more than its header promises ({promised}); "
            "reading stopped there: the file is corrupt, or a gzip bomb")
    return data.astype(dtype.newbyteorder("="), copy=False)


def _read_header(path: Path, stream: BinaryIO) -> Tuple[Tuple[int, ...], np.dtype, int]:
    """The shape, dtype and byte size of the IDX header at the start of `stream`."""
    magic_bytes = stream.read(4)
    if len(magic_bytes) < 4:
        raise IDXFormatError(f"read_idx: {path} is {len(magic_bytes)} bytes long, too short for the "
                             "4-byte IDX magic number; the file is empty or truncated")
    zero0, zero1, code, ndim = magic_bytes
    if zero0 != 0 or zero1 != 0 or code not in IDX_TYPES:
        raise IDXFormatError(
            f"read_idx: {path} has magic number 0x{int.from_bytes(magic_bytes, 'big'):08x}, which "
            f"is not an IDX header (expected 0x0000TTDD with type code TT in "
            f"{', '.join(f'0x{c:02x}' for c in IDX_TYPES)}, e.g. 0x00000803 = 2051 for "
            "MNIST images, 0x00000801 = 2049 for labels)")
    header_size = 4 + 4 * ndim
    dims = stream.read(4 * ndim)
    if len(dims) < 4 * ndim:
        raise IDXFormatError(f"read_idx: {path} is truncated inside its header: {ndim} dimensions "
                             f"need {header_size} header bytes, the file has {4 + len(dims)}")
    return struct.unpack(f">{ndim}I", dims), IDX_TYPES[code], header_size


def _truncated(path: Path, promised: str, received: int) -> IDXFormatError:
    return IDXFormatError(f"read_idx: {path} is truncated: its header promises {promised}, but only "
                          f"{received} follow the header")
