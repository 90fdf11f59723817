"""What can go wrong when getting a data set, as exceptions a user can act on.

Every error of the data layer derives from `DatasetError`, so a program (the command line)
can turn them into one clear sentence and a non-zero exit code.
"""
from typing import Tuple


class DatasetError(Exception):
    """A data set could not be found, downloaded, verified or read."""


class IDXFormatError(DatasetError, ValueError):
    """An IDX file is corrupt: bad magic number, dimensions that do not match its size, ..."""


class ChecksumError(DatasetError):
    """A file's SHA-256 (or size) differs from the published value."""


class DownloadError(DatasetError, OSError):
    """No mirror could deliver a file (network down, server error, truncated transfer).

    The message is one sentence; `failures` keeps each mirror's URL and what went wrong there.
    """

    def __init__(self, message: str, failures: Tuple[Tuple[str, str], ...] = ()):
        super().__init__(message)
        self.failures = tuple(failures)   # ((url, reason), ...), one per mirror tried


class DatasetNotFoundError(DatasetError, FileNotFoundError):
    """The files are not on disk and downloading was not allowed."""
