"""From pixels to a model's inputs: the preprocessing a model was trained with, and the reading of
image files and .npy arrays of raw pixels, with photos and drawings prepared the way the data sets were.

`Preprocessing` is stored in a model file's header (nn.save) and applied by nn.predict, nn.evaluate
and the command line, so raw pixels (0..16 for the 8x8 digits, 0..255 for MNIST) go straight in.
An image file is made to look like the data set: grayscale, light ink on black, cropped to the ink,
scaled and centred as MNIST (20x20 box, centre of mass at the middle of 28x28) or the UCI digits
(32x32 bitmap of the digit's box, 4x4 blocks counted, 0..16) were.
"""
from __future__ import annotations

import os
import re
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Optional, Sequence, Tuple

import numpy as np

from .data import preprocess

# the pixel range of the data sets by input width, for model files that do not record theirs
MAX_VALUE_BY_WIDTH = {64: 16, 784: 255}


class ImageError(ValueError):
    """Pixels that cannot be a model's input: an unreadable file, a wrong shape or range."""


@dataclass(frozen=True)
class Preprocessing:
    """How raw pixels become a model's inputs: images of `input_shape` with values 0..`pixel_max`
    are flattened and scaled linearly to `scale_to`. `class_names` and `dataset` say what the
    outputs mean and what the model was trained on (None: unknown).

    Example:
        >>> prep = Preprocessing((8, 8), pixel_max=16, class_names=tuple("0123456789"), dataset="digits")
        >>> x = prep.apply(raw_digits)          # (n, 8, 8) in 0..16 -> (n, 64) in [-1, 1]
    """

    input_shape: Tuple[int, ...]
    pixel_max: float
    scale_to: Tuple[float, float] = (-1.0, 1.0)
    class_names: Optional[Tuple[str, ...]] = None
    dataset: Optional[str] = None

    def __post_init__(self) -> None:
        shape = tuple(self.input_shape)
        if not shape or not all(isinstance(n, (int, np.integer)) and n > 0 for n in shape):
            raise ValueError(f"Preprocessing: input_shape must be positive integers, got {self.input_shape!r}")
        if not (isinstance(self.pixel_max, (int, float, np.number)) and np.isfinite(self.pixel_max)
                and self.pixel_max > 0):
            raise ValueError(f"Preprocessing: pixel_max must be a positive number, got {self.pixel_max!r}")
        lo, hi = self.scale_to
        if not (np.isfinite(lo) and np.isfinite(hi) and lo < hi):
            raise ValueError(f"Preprocessing: scale_to must be (low, high) with low < high, got {self.scale_to!r}")
        object.__setattr__(self, "input_shape", tuple(int(n) for n in shape))
        object.__setattr__(self, "scale_to", (float(lo), float(hi)))
        if self.class_names is not None:
            object.__setattr__(self, "class_names", tuple(str(c) for c in self.class_names))

    @property
    def width(self) -> int:
        return int(np.prod(self.input_shape))

    def apply(self, images: Any, where: str = "predict") -> np.ndarray:
        """(n, width) float32 inputs from raw pixels: one image or a stack, flat or of `input_shape`.
        Values outside 0..pixel_max are refused (ValueError); values that look already scaled
        (all within 0..1 where pixel_max is larger) give a warning."""
        x = np.asarray(images)
        if x.dtype.kind not in "fiub":
            raise ValueError(f"{where}: expected raw pixel values (numbers), got dtype {x.dtype}")
        width, shape = self.width, self.input_shape
        if x.shape in ((width,), shape):
            x = x.reshape(1, width)
        elif x.ndim >= 2 and (x.shape[1:] == shape or x.shape[1:] == (width,)):
            x = x.reshape(len(x), width)
        else:
            raise ValueError(f"{where}: inputs of shape {x.shape} do not fit the model, which takes raw "
                             f"images of shape {shape} ({width} pixels); give (n, {width}) or "
                             f"(n, {', '.join(map(str, shape))})")
        if x.size and x.dtype.kind == "f" and np.isfinite(x).all() and (x.min() < 0 or x.max() > self.pixel_max):
            raise ValueError(f"{where}: the inputs hold values in [{x.min():g}, {x.max():g}], outside the raw pixel "
                             f"range 0..{self.pixel_max:g} the model was trained on; pass raw pixels (the model "
                             f"scales them to {list(self.scale_to)} itself), or set model.preprocessing = None "
                             "to pass inputs already scaled")
        if x.size and x.dtype.kind != "f" and (x.min() < 0 or x.max() > self.pixel_max):
            raise ValueError(f"{where}: the inputs hold values in [{x.min()}, {x.max()}], outside the raw pixel "
                             f"range 0..{self.pixel_max:g} the model was trained on")
        hint = looks_scaled(x, self.pixel_max)
        if hint:
            warnings.warn(f"{where}: {hint}", UserWarning, stacklevel=3)
        if x.dtype.kind == "f" and not np.isfinite(x).all():
            return x.astype(np.float32)      # left for the caller's NaN check, which names the pixel
        return preprocess(x, self.pixel_max, self.scale_to)

    @classmethod
    def for_dataset(cls, dataset: Any, scale_to: Tuple[float, float] = (-1.0, 1.0)) -> "Preprocessing":
        """The preprocessing of a model trained on `dataset` (an nn.datasets.Dataset) scaled to `scale_to`."""
        return cls(dataset.image_shape, dataset.max_value, scale_to, dataset.classes, dataset.name)

    @classmethod
    def guess(cls, width: int, pixel_max: Optional[float] = None,
              scale_to: Tuple[float, float] = (-1.0, 1.0)) -> Optional["Preprocessing"]:
        """What a model file without a record most likely expects (the command line's convention
        before files recorded it): square images of `width` pixels, 0..16 for 64 and 0..255 for 784
        unless `pixel_max` is given; None when the pixel range cannot be told."""
        pixel_max = pixel_max or MAX_VALUE_BY_WIDTH.get(width)
        if pixel_max is None:
            return None
        side = int(round(width ** 0.5))
        return cls((side, side) if side * side == width else (width,), pixel_max, scale_to)

    def to_json(self) -> Dict[str, Any]:
        return {"input_shape": list(self.input_shape), "pixel_max": self.pixel_max,
                "scale_to": list(self.scale_to),
                "class_names": None if self.class_names is None else list(self.class_names),
                "dataset": self.dataset}

    @classmethod
    def from_json(cls, value: Any) -> "Preprocessing":
        """The record from a header's "preprocessing" object (ValueError if malformed)."""
        if not isinstance(value, dict):
            raise ValueError(f"preprocessing must be a JSON object, got {type(value).__name__}")
        names = value.get("class_names")
        dataset = value.get("dataset")
        if names is not None and not (isinstance(names, list) and all(isinstance(n, str) for n in names)):
            raise ValueError("preprocessing's class_names must be a list of strings")
        if dataset is not None and not isinstance(dataset, str):
            raise ValueError("preprocessing's dataset must be a string")
        shape, scale = value.get("input_shape"), value.get("scale_to", [-1.0, 1.0])
        if not isinstance(shape, list) or not isinstance(scale, list) or len(scale) != 2 \
                or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in [*shape, *scale]):
            raise ValueError("preprocessing's input_shape and scale_to must be lists of numbers")
        if not all(isinstance(n, int) for n in shape):
            raise ValueError("preprocessing's input_shape must be whole numbers")
        pixel_max = value.get("pixel_max")
        if isinstance(pixel_max, bool) or not isinstance(pixel_max, (int, float)):
            raise ValueError("preprocessing's pixel_max must be a number")
        return cls(tuple(shape), pixel_max, tuple(scale), None if names is None else tuple(names), dataset)


def looks_scaled(images: np.ndarray, pixel_max: float) -> Optional[str]:
    """A sentence when raw pixels 0..pixel_max (> 1) were expected but every value is within 0..1."""
    x = np.asarray(images)
    if pixel_max > 1 and x.size and x.dtype.kind == "f" and np.isfinite(x).all() \
            and x.min() >= 0 and 0 < x.max() <= 1:
        return (f"the pixel values are all within 0..1 (largest {x.max():g}) where 0..{pixel_max:g} is expected; "
                f"they look already scaled (multiply by {pixel_max:g} to give raw pixels)")
    return None


# ---------------------------------------------------------------- reading files
def read_images(path: "os.PathLike[str] | str", input_shape: Tuple[int, ...], max_value: float,
                option: str = "--max-value") -> np.ndarray:
    """(n, width) raw pixel values 0..max_value from a .npy file (one image or a stack), or from one
    image file (read with Pillow and prepared like the data set's images, see `prepare_image`)."""
    path = Path(path)
    width = int(np.prod(input_shape))
    side = input_shape[0] if len(input_shape) == 2 and input_shape[0] == input_shape[1] else 0
    if not path.is_file():
        raise ImageError(f"no such file: {path}")
    if path.suffix.lower() == ".npy":
        images = image_stack(path, load_npy(path), width, side)
        first = _first_nonfinite(images)
        if first is not None:
            i, pixel = first
            where = f"image {i} has" if len(images) > 1 else "has"
            at = f"pixel (row {pixel // side}, column {pixel % side})" if side else f"pixel {pixel}"
            raise ImageError(f"{path}: {where} {images[i, pixel]} at {at}; pixel values must be finite numbers "
                             f"in 0..{max_value:g}")
        if images.min() < 0 or images.max() > max_value:
            raise ImageError(f"{path} has values in [{images.min()}, {images.max()}], outside 0..{max_value:g}; "
                             f"give raw pixel values or set {option}")
        return images
    if not side:
        raise ImageError(f"the model takes {width} inputs, which is no square image; give {path}'s pixels as a "
                         ".npy array")
    return prepare_image(open_gray(path), side, max_value).reshape(1, width)


def open_gray(path: "os.PathLike[str] | str") -> np.ndarray:
    """An image file's pixels as a 2-D float64 grayscale array 0..255 (Pillow, with its decompression
    bomb limit enforced from the first pixel past it)."""
    try:
        from PIL import Image, UnidentifiedImageError
    except ImportError:
        raise ImageError(f"reading the image file {path} needs Pillow (pip install pillow), the extra "
                         "autograd-lite[images]; or pass the pixels as a .npy array") from None
    try:
        with warnings.catch_warnings():
            # Pillow only warns between its limit and twice that; an image that large is refused too
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as image:
                if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
                    # a transparent background reads as white paper, not as black
                    rgba = image.convert("RGBA")
                    paper = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
                    image = Image.alpha_composite(paper, rgba)
                return np.asarray(image.convert("L"), dtype=np.float64)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as error:
        pixels = re.search(r"\((\d+) pixels\) exceeds limit of (\d+)", str(error))
        size = f"{int(pixels[1]):,} pixels, more than the {int(pixels[2]):,} " if pixels else "more pixels than the "
        raise ImageError(f"{path} has {size}Pillow opens safely (it may be a decompression bomb); give a smaller "
                         "image of one digit") from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, EOFError) as error:
        raise ImageError(f"{path} is not an image Pillow can read ({_one_sentence(error)})") from None


def prepare_image(gray: np.ndarray, side: int, max_value: float) -> np.ndarray:
    """A photo or drawing of one digit (2-D grayscale 0..255, any size) as a (side, side) image in
    0..max_value the way the data set's images were made: light ink on black (inverted when the
    paper is light), cropped to the ink's bounding box, then
      - 28x28 (MNIST): the longer side scaled to 20 pixels keeping the aspect ratio, placed so that
        its centre of mass is at the centre of the 28x28 field;
      - 8x8 (UCI digits): the box scaled to fill a 32x32 bitmap (longer side 32, centred), the
        bitmap's 4x4 blocks counted (0..16);
      - any other size: the longer side scaled to fill the field, centred.
    An image without ink gives a black field."""
    ink = _ink(np.asarray(gray, dtype=np.float64))
    box = _ink_box(ink)
    if box is None:
        return np.zeros((side, side))
    top, bottom, left, right = box
    ink = ink[top:bottom, left:right]
    if side == 8:
        bitmap = _fit(ink, 32, 32) >= 0.5          # UCI: 32x32 bitmaps, normalised to the box
        return bitmap.reshape(8, 4, 8, 4).sum(axis=(1, 3)).astype(np.float64) * (max_value / 16)
    if side == 28:
        digit = _scaled(ink, 20)
        return _centred_by_mass(digit, 28) * max_value
    return _fit(ink, side, side) * max_value


def load_npy(path: Path) -> np.ndarray:
    """A .npy file's array, checked before it is read: its signature, a numeric dtype, and a header
    whose shape fits the file's size (NumPy's own errors would suggest unpickling, and a header
    claiming a huge shape would make it allocate that much)."""
    with open(path, "rb") as f:
        start = f.read(len(np.lib.format.MAGIC_PREFIX))
        if start.startswith(b"PK\x03\x04"):
            raise ImageError(f"{path} is a zip archive (an .npz file?), not a .npy array; save one array of "
                             "pixels with numpy.save")
        if start != np.lib.format.MAGIC_PREFIX:
            raise ImageError(f"{path} is not a .npy array (it does not start with NumPy's .npy signature); "
                             "save the pixels with numpy.save")
        f.seek(0)
        try:
            version = np.lib.format.read_magic(f)
            read_header = {(1, 0): np.lib.format.read_array_header_1_0,
                           (2, 0): np.lib.format.read_array_header_2_0}.get(version)
            if read_header is None:
                raise ImageError(f"{path} is a .npy file of format version {version[0]}.{version[1]}, which holds "
                                 "text-named fields, not pixels; save a plain array of numbers with numpy.save")
            shape, _, dtype = read_header(f)
        except ImageError:
            raise
        except ValueError as error:
            raise ImageError(f"{path} has a broken .npy header ({_one_sentence(error)})") from None
        if dtype.hasobject or dtype.kind not in "fiub":
            raise ImageError(f"{path} holds {dtype} values; expected numbers (pixel values)")
        needed = int(np.prod(shape, dtype=object)) * dtype.itemsize
        available = os.fstat(f.fileno()).st_size - f.tell()
        if needed > available:
            raise ImageError(f"{path} is truncated: its header says shape {shape} ({needed:,} bytes) but "
                             f"{available:,} bytes follow")
    try:
        return np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as error:
        raise ImageError(f"{path} is not a readable .npy array ({_one_sentence(error)})") from None


def image_stack(path: Path, array: np.ndarray, width: int, side: int) -> np.ndarray:
    """`array` as (n, width): one image or a stack, flat or square; any other shape is refused."""
    shape = array.shape
    if array.size == 0:
        raise ImageError(f"{path} holds no images (shape {shape})")
    if shape == (width,) or (len(shape) == 2 and shape[1] == width):
        return array.reshape(-1, width)
    if side and (shape == (side, side) or (len(shape) == 3 and shape[1:] == (side, side))):
        return array.reshape(-1, width)
    if len(shape) in (2, 3) and shape[-1] == shape[-2]:
        holds = f"images of {shape[-2]}x{shape[-1]} pixels"
    elif len(shape) in (1, 2):
        k = int(round(shape[-1] ** 0.5))
        holds = f"images of {shape[-1]} pixels" + (f" ({k}x{k})" if k * k == shape[-1] else "")
    else:
        holds = "no image layout the model knows"
    forms = (f"({width},), ({side}, {side}), (n, {width}) or (n, {side}, {side})" if side
             else f"({width},) or (n, {width})")
    raise ImageError(f"{path} has shape {shape}, {holds}, but the model takes {model_input(width, side)}; "
                     f"give an array of shape {forms}")


def model_input(width: int, side: int) -> str:
    """'8x8 images (64 pixels)' or '10 inputs'."""
    return f"{side}x{side} images ({width} pixels)" if side and side * side == width else f"{width} inputs"


def describe_top(probabilities: np.ndarray, class_names: Optional[Sequence[str]] = None, k: int = 3) -> str:
    """'3 (probability 0.912); then 8 (0.050), 5 (0.011)': the k likeliest classes of one row."""
    order = np.argsort(-probabilities, kind="stable")[:k]
    names = [str(class_names[i]) if class_names is not None and i < len(class_names) else str(i) for i in order]
    text = f"{names[0]} (probability {probabilities[order[0]]:.3f})"
    if len(order) > 1:
        text += "; then " + ", ".join(f"{n} ({probabilities[i]:.3f})" for n, i in zip(names[1:], order[1:]))
    return text


# ---------------------------------------------------------------- helpers
def _ink(gray: np.ndarray) -> np.ndarray:
    """Ink 0..1 on a black background: the paper's level (the median of the border) is taken away,
    light paper inverted, and the strongest ink stretched to 1."""
    border = np.concatenate([gray[0], gray[-1], gray[:, 0], gray[:, -1]])
    paper = float(np.median(border))
    ink = paper - gray if paper > 127 else gray - paper
    ink = np.clip(ink, 0, None)
    top = ink.max(initial=0)
    return ink / top if top >= 16 else np.zeros_like(ink)     # less contrast than that is noise


def _ink_box(ink: np.ndarray, threshold: float = 0.25) -> Optional[Tuple[int, int, int, int]]:
    """(top, bottom, left, right), bottom and right exclusive, of the pixels above `threshold`."""
    rows = np.flatnonzero((ink > threshold).any(axis=1))
    cols = np.flatnonzero((ink > threshold).any(axis=0))
    if not len(rows):
        return None
    return int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1


def _resize(ink: np.ndarray, height: int, width: int) -> np.ndarray:
    """`ink` (0..1) resized with Pillow's antialiasing filter (area averaging when shrinking)."""
    from PIL import Image
    image = Image.fromarray(ink.astype(np.float32), mode="F")
    shrinking = height <= ink.shape[0] and width <= ink.shape[1]
    resample = Image.Resampling.BOX if shrinking else Image.Resampling.BILINEAR
    return np.clip(np.asarray(image.resize((width, height), resample), dtype=np.float64), 0, 1)


def _scaled(ink: np.ndarray, longest: int) -> np.ndarray:
    """`ink` with its longer side scaled to `longest`, keeping the aspect ratio."""
    h, w = ink.shape
    scale = longest / max(h, w)
    return _resize(ink, max(1, round(h * scale)), max(1, round(w * scale)))


def _fit(ink: np.ndarray, height: int, width: int) -> np.ndarray:
    """`ink` scaled to fill a (height, width) field along its longer side, centred."""
    digit = _scaled(ink, min(height, width))
    field = np.zeros((height, width))
    top, left = (height - digit.shape[0]) // 2, (width - digit.shape[1]) // 2
    field[top:top + digit.shape[0], left:left + digit.shape[1]] = digit
    return field


def _centred_by_mass(digit: np.ndarray, side: int) -> np.ndarray:
    """`digit` placed in a (side, side) field so that its centre of mass falls on the field's centre
    (as MNIST's 20x20 digits were placed in 28x28), shifted back where it would leave the field."""
    h, w = digit.shape
    rows, cols = np.indices(digit.shape)
    mass = digit.sum()
    cy, cx = (float((rows * digit).sum() / mass), float((cols * digit).sum() / mass)) if mass else (h / 2, w / 2)
    top = int(np.clip(round(side / 2 - 0.5 - cy), 0, side - h))
    left = int(np.clip(round(side / 2 - 0.5 - cx), 0, side - w))
    field = np.zeros((side, side))
    field[top:top + h, left:left + w] = digit
    return field


def _first_nonfinite(images: np.ndarray) -> Optional[Tuple[int, int]]:
    if images.dtype.kind != "f":
        return None
    finite = np.isfinite(images)
    if finite.all():
        return None
    i, pixel = np.unravel_index(int(np.argmin(finite)), images.shape)
    return int(i), int(pixel)


def _one_sentence(error: BaseException) -> str:
    text = str(error).strip() or type(error).__name__
    return " ".join(line.strip() for line in text.splitlines() if line.strip())
