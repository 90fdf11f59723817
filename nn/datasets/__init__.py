"""Data sets: the bundled 8x8 digits, MNIST and Fashion-MNIST (downloaded, verified, cached).

    >>> from nn.datasets import load_digits, load_mnist
    >>> ds = load_digits()                 # offline, shipped with the package
    >>> ds = load_mnist()                  # cached in $AUTOGRAD_LITE_DATA or ~/.cache/autograd-lite
"""
from .errors import ChecksumError, DatasetError, DatasetNotFoundError, DownloadError, IDXFormatError
from .idx import MAX_IDX_BYTES, read_idx, write_idx
from .download import (MIN_RATE, RemoteFile, check_copy, default_deadline, default_root, fetch,
                       find_local, verify)
from .catalog import (
    Dataset, LOADERS, MAX_CLASSES, load_dataset, load_digits, load_fashion_mnist, load_idx_folder,
    load_mnist, MNIST_FILES, MNIST_MIRRORS, FASHION_MNIST_FILES, FASHION_MNIST_MIRRORS,
)
