"""The data sets by name: the bundled 8x8 digits, MNIST and Fashion-MNIST.

Each loader returns a `Dataset` of raw images (uint8) and integer labels, split into the
official training and test sets (digits: a fixed stratified split, since UCI publishes
these 1,797 images as one set). Preprocessing happens later (`nn.data.preprocess`).
"""
from __future__ import annotations

import gzip
import hashlib
import io
import sys
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Callable, Dict, Optional, Sequence, Tuple

import numpy as np

from ..data import check_labels, stratified_split
from .download import PathLike, RemoteFile, check_copy, default_root, fetch, local_candidates
from .errors import ChecksumError, DatasetError, DatasetNotFoundError, IDXFormatError
from .idx import read_idx

DIGITS_FILE = "digits.csv.gz"
DIGITS_SHA256 = "09f66e6debdee2cd2b5ae59e0d6abbb73fc2b0e0185d2e1957e9ebb51e23aa22"
DIGITS_TEST_SIZE = 0.2

# The original LeCun/Cortes/Burges files: sizes, SHA-256 and MD5 as published (torchvision,
# TFDS and Keras list the same values); then the size and SHA-256 of each decompressed IDX file,
# computed here from the published files (and listed identically by third-party copies), which a
# copy re-compressed by another tool, or left uncompressed, shares.
MNIST_FILES = {
    "train_images": RemoteFile("train-images-idx3-ubyte.gz", 9912422,
                               "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
                               "f68b3c2dcbeaaa9fbdd348bbdeb94873", 47040016,
                               "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db"),
    "train_labels": RemoteFile("train-labels-idx1-ubyte.gz", 28881,
                               "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
                               "d53e105ee54ea40749a09fcbcd1e9432", 60008,
                               "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5"),
    "test_images": RemoteFile("t10k-images-idx3-ubyte.gz", 1648877,
                              "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
                              "9fb629c4189551a2d022fa330f9573f3", 7840016,
                              "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7"),
    "test_labels": RemoteFile("t10k-labels-idx1-ubyte.gz", 4542,
                              "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
                              "ec29112dd5afa0611ce80d1b7f02629c", 10008,
                              "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2"),
}
# Mirrors over https come first; plain http ones are a last resort, safe only because every
# download is checked against the published SHA-256.
MNIST_MIRRORS = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
    "http://yann.lecun.com/exdb/mnist/",
)

# Fashion-MNIST (Zalando Research): MD5 as published in the zalandoresearch/fashion-mnist
# README; sizes and SHA-256 as listed identically by independent downloaders. The checksums of
# the decompressed files are left out: the files were never at hand here to compute them, and
# Zalando publishes none, so only the published .gz files are accepted (a re-compressed copy,
# such as a distribution's package, or an uncompressed one, is refused by name, not guessed at).
FASHION_MNIST_FILES = {
    "train_images": RemoteFile("train-images-idx3-ubyte.gz", 26421880,
                               "08dc20ab1689590a0bcd66e874647b6ee8464e2d501b5a3f1f78831db19a3fdc",
                               "8d4fb7e6c68d591d4c3dfef9ec88bf0d"),
    "train_labels": RemoteFile("train-labels-idx1-ubyte.gz", 29515,
                               "b0197879cbda89f3dc7b894f9fd52b858e68ea4182b6947c9d8c2b67e5f18dcc",
                               "25c81989df183df01b3e8a0aad5dffbe"),
    "test_images": RemoteFile("t10k-images-idx3-ubyte.gz", 4422102,
                              "78dcbbfb5a27efaf1b6c1d616caca68560be8766c5bffcb2791df9273a534229",
                              "bef4ecab320f06d8554ea6380940ec79"),
    "test_labels": RemoteFile("t10k-labels-idx1-ubyte.gz", 5148,
                              "42bd18137a62d5998cdeae52bf3a0676ac6b706f5cf8439b47bb5b151ae3dccf",
                              "bb300cfdad3c16e7a12a480ee83cd310"),
}
FASHION_MNIST_MIRRORS = (
    "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/",
    "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
)
FASHION_MNIST_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
                         "Sneaker", "Bag", "Ankle boot")
DIGIT_CLASSES = tuple(str(d) for d in range(10))
# The most classes a folder of the user's own IDX files may have (its labels are 0..MAX_CLASSES-1):
# the classes are 0..the largest label, so one corrupt label must not make billions of them.
MAX_CLASSES = 10_000


@dataclass(frozen=True)
class Dataset:
    """Raw images (n, height, width) uint8 and int64 labels, as official train and test sets."""

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    classes: Tuple[str, ...]
    max_value: int                      # the largest possible pixel value (16 or 255)
    source: str = field(default="", compare=False)

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def image_shape(self) -> Tuple[int, ...]:
        return tuple(self.x_train.shape[1:])

    def __repr__(self) -> str:
        return (f"Dataset({self.name!r}, train={len(self.x_train)}, test={len(self.x_test)}, "
                f"image_shape={self.image_shape}, classes={self.num_classes}, pixels 0..{self.max_value})")


def load_digits(test_size: float = DIGITS_TEST_SIZE, seed: int = 0) -> Dataset:
    """The bundled UCI 8x8 handwritten digits: 1,797 images, pixel values 0..16, ten classes.

    Shipped inside the package (no download); its SHA-256 is checked on every load. The
    test set is a stratified `test_size` share, fixed by `seed`. Data: E. Alpaydin, C. Kaynak,
    UCI Machine Learning Repository, 1998, CC BY 4.0 (see DIGITS.md next to this file).
    """
    raw = resources.files(__package__).joinpath(DIGITS_FILE).read_bytes()
    digest = hashlib.sha256(raw).hexdigest()
    if digest != DIGITS_SHA256:
        raise DatasetError(f"load_digits: the bundled {DIGITS_FILE} has SHA-256 {digest}, expected "
                           f"{DIGITS_SHA256}; the installation is damaged, reinstall autograd-lite")
    table = np.loadtxt(io.BytesIO(gzip.decompress(raw)), delimiter=",", dtype=np.int64)
    images = table[:, :64].astype(np.uint8).reshape(-1, 8, 8)
    labels = table[:, 64]
    (x_train, y_train), (x_test, y_test) = stratified_split(images, labels, test_size, seed=seed)
    return Dataset("digits", x_train, y_train, x_test, y_test, DIGIT_CLASSES, 16,
                   source="bundled UCI 8x8 digits (CC BY 4.0)")


def load_mnist(root: Optional[PathLike] = None, download: bool = True,
               mirrors: Optional[Sequence[str]] = None, verbose: bool = True) -> Dataset:
    """MNIST: 60,000 training and 10,000 test images of 28x28, pixel values 0..255.

    Looks for the four IDX files in `root` (default `$AUTOGRAD_LITE_DATA`, else
    `~/.cache/autograd-lite`), or in `root/mnist/`; downloads missing ones into `root/mnist/`
    from `mirrors` unless `download=False`. A file may be the published `.gz`, a copy
    re-compressed by another tool, or the uncompressed `*-ubyte` file: each is checked against
    the published SHA-256 of the `.gz` or of its decompressed content before it is read, and
    one that differs is refused by name (with both checksums), not downloaded over.

    Example:
        >>> ds = load_mnist("/data/mnist", download=False)
        >>> ds.x_train.shape, ds.y_test.shape
        ((60000, 28, 28), (10000,))
    """
    return _load_idx_set("mnist", MNIST_FILES, MNIST_MIRRORS if mirrors is None else mirrors,
                         root, download, verbose, DIGIT_CLASSES)


def load_fashion_mnist(root: Optional[PathLike] = None, download: bool = True,
                       mirrors: Optional[Sequence[str]] = None, verbose: bool = True) -> Dataset:
    """Fashion-MNIST (Zalando): 60,000 + 10,000 28x28 images of clothing in ten classes.

    Same files, layout and checks as `load_mnist`; cached in `root/fashion-mnist/`. Only the
    published `.gz` files are accepted: the checksums of their decompressed content are not
    known here, so a re-compressed or uncompressed copy cannot be verified.
    """
    return _load_idx_set("fashion-mnist", FASHION_MNIST_FILES,
                         FASHION_MNIST_MIRRORS if mirrors is None else mirrors,
                         root, download, verbose, FASHION_MNIST_CLASSES)


# The downloadable IDX data sets, whose files share names: a file is told apart by its checksums.
IDX_SETS = {"mnist": MNIST_FILES, "fashion-mnist": FASHION_MNIST_FILES}

LOADERS: Dict[str, Callable[..., Dataset]] = {
    "digits": load_digits, "mnist": load_mnist, "fashion-mnist": load_fashion_mnist,
}


def load_idx_folder(folder: PathLike, max_value: int = 255) -> Dataset:
    """Your own data in MNIST's format: a folder with train-images-idx3-ubyte, train-labels-idx1-ubyte,
    t10k-images-idx3-ubyte and t10k-labels-idx1-ubyte (each raw or `.gz`). No checksums.

    Images are uint8, the same size in both sets, neither set empty. Labels are integers (IDX
    types uint8, int8, int16 or int32; floats are refused) in 0..MAX_CLASSES-1 (10,000 classes;
    uint8 labels cannot exceed 255); the classes are 0 up to the largest label.
    """
    folder = Path(folder).expanduser()
    paths = {}
    for key, f in MNIST_FILES.items():
        raw_name = f.raw_name
        candidates = [folder / f.name, folder / raw_name]
        found = next((p for p in candidates if p.is_file()), None)
        if found is None:
            raise DatasetNotFoundError(f"{folder} has neither {f.name} nor {raw_name}; a folder of "
                                       "IDX files needs the four MNIST file names")
        paths[key] = found
    return _read_idx_set(folder.name or str(folder), paths, None, max_value, str(folder))


def load_dataset(name: str, root: Optional[PathLike] = None, download: bool = True,
                 verbose: bool = True) -> Dataset:
    """Load a data set by name: 'digits' (bundled), 'mnist', 'fashion-mnist', or a folder of IDX files."""
    key = name.lower().replace("_", "-")
    if key not in LOADERS:
        if Path(name).expanduser().is_dir():
            return load_idx_folder(name)
        raise DatasetError(f"unknown data set {name!r}; choose one of {', '.join(LOADERS)} "
                           "(or give a folder of IDX files)")
    if key == "digits":
        return load_digits()
    return LOADERS[key](root=root, download=download, verbose=verbose)


def _load_idx_set(name: str, files: Dict[str, RemoteFile], mirrors: Sequence[str],
                  root: Optional[PathLike], download: bool, verbose: bool,
                  classes: Tuple[str, ...]) -> Dataset:
    base = default_root() if root is None else Path(root).expanduser()
    folder, paths = _placed_files(name, files, base)
    log = (lambda message: print(f"{name}: {message}", file=sys.stderr)) if verbose else None
    for key, f in files.items():
        if key not in paths:
            paths[key] = fetch(f, folder, mirrors, download=download, log=log)
    return _read_idx_set(name, paths, classes, 255, str(folder))


def _placed_files(name: str, files: Dict[str, RemoteFile], base: Path) -> Tuple[Path, Dict[str, Path]]:
    """The folder that holds (or is to hold) data set `name`'s files, and those verified there.

    Files the user placed directly in `base` are used when they are this data set's; since
    MNIST and Fashion-MNIST share file names, files there that are another data set's send this
    one to `base/name`, where downloads go too. A file in `base` that is no known data set's is
    refused by name rather than downloaded around. Once `base/name` holds any file, it is the
    folder.
    """
    own = base / name
    if any(local_candidates(f, own) for f in files.values()):
        return own, {}
    placed = {key: copies[0] for key, f in files.items() if (copies := local_candidates(f, base))}
    problems = {key: check_copy(path, files[key]) for key, path in placed.items()}
    if placed and not any(problems.values()):
        return base, placed
    for key, problem in problems.items():
        others = [other[key] for other_name, other in IDX_SETS.items() if other_name != name]
        if problem and not any(check_copy(placed[key], other) is None for other in others):
            raise ChecksumError(f"{name}: {placed[key]} is not the published {files[key].name}: "
                                f"{problem}; delete or replace it, or move it out of {base}")
    return own, {}


def _read_idx_set(name: str, paths: Dict[str, Path], classes: Optional[Tuple[str, ...]],
                  max_value: int, source: str) -> Dataset:
    """The four IDX files as a Dataset, every fault refused here, before any training starts.

    `classes` None (a folder of the user's own files): as many classes as the labels say, at
    most MAX_CLASSES.
    """
    arrays = {key: read_idx(path) for key, path in paths.items()}
    num_classes = MAX_CLASSES if classes is None else len(classes)
    for part in ("train", "test"):
        images_path, labels_path = paths[part + "_images"], paths[part + "_labels"]
        images, labels = arrays[part + "_images"], arrays[part + "_labels"]
        if images.ndim != 3 or images.dtype != np.uint8:
            raise IDXFormatError(f"{name}: {images_path} holds {images.dtype} of shape "
                                 f"{images.shape}, expected uint8 images (n, rows, columns)")
        if labels.ndim != 1:
            raise IDXFormatError(f"{name}: {labels_path} holds shape {labels.shape}, "
                                 "expected a 1-D array of labels")
        if len(images) != len(labels):
            raise IDXFormatError(f"{name}: the {part} set has {len(images)} images but "
                                 f"{len(labels)} labels; they must be equal")
        if len(images) == 0:
            raise IDXFormatError(f"{name}: the {part} set is empty: {images_path} holds no images; "
                                 "a data set needs at least one training and one test image")
        try:
            arrays[part + "_labels"] = check_labels(labels, num_classes, f"{name}: {labels_path}")
        except ValueError as error:
            limit = ("" if classes is not None else
                     f"; a folder of IDX files has at most MAX_CLASSES = {MAX_CLASSES} classes")
            raise IDXFormatError(f"{error}{limit}") from None
    train_size, test_size = arrays["train_images"].shape[1:], arrays["test_images"].shape[1:]
    if train_size != test_size:
        raise IDXFormatError(
            f"{name}: the training images in {paths['train_images']} are "
            f"{_image_size_text(train_size)} but the test images in {paths['test_images']} are "
            f"{_image_size_text(test_size)}; both sets must have images of one size")
    if classes is None:
        top = max(int(arrays["train_labels"].max()), int(arrays["test_labels"].max()))
        classes = tuple(str(i) for i in range(top + 1))
    return Dataset(name, arrays["train_images"], arrays["train_labels"], arrays["test_images"],
                   arrays["test_labels"], classes, max_value, source=source)


def _image_size_text(image_shape: Tuple[int, ...]) -> str:
    return "x".join(str(d) for d in image_shape)
