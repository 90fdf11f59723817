"""From arrays of images and labels to training batches: preprocessing, splits, mini-batches.

Batch, mini-batch and stochastic gradient descent differ only in the batch size:
`batches(x, y, batch_size=len(x))`, `batch_size=b` and `batch_size=1`.
"""
from __future__ import annotations

import sys
from typing import Any, Iterator, Optional, Tuple, Union

import numpy as np

Seed = Union[None, int, np.random.Generator]


def preprocess(images: np.ndarray, max_value: float, feature_range: Tuple[float, float] = (0.0, 1.0),
               flatten: bool = True, dtype: np.dtype = np.float32) -> np.ndarray:
    """Scale pixel values 0..max_value linearly to `feature_range` and flatten each image.

    Example:
        >>> x = preprocess(images, max_value=255)              # (n, 28, 28) uint8 -> (n, 784) in [0, 1]
        >>> x = preprocess(images, 16, feature_range=(-1, 1))  # digits in [-1, 1]
    """
    lo, hi = feature_range
    if not hi > lo:
        raise ValueError(f"preprocess: feature_range must be (low, high) with low < high, got {feature_range}")
    if max_value <= 0:
        raise ValueError(f"preprocess: max_value must be positive, got {max_value}")
    x = np.asarray(images)
    if x.ndim == 0:
        raise ValueError("preprocess: expected an array of images, got a scalar")
    dtype = np.dtype(dtype)
    x = x.astype(dtype) * dtype.type((hi - lo) / max_value) + dtype.type(lo)
    if flatten:
        x = x.reshape(len(x), -1)
    return x


def one_hot(labels: np.ndarray, num_classes: int, dtype: np.dtype = np.float32) -> np.ndarray:
    """Integer labels (n,) as rows of a (n, num_classes) identity; labels must be in 0..num_classes-1."""
    labels = check_labels(labels, num_classes, "one_hot")
    out = np.zeros((len(labels), num_classes), dtype=dtype)
    out[np.arange(len(labels)), labels] = 1
    return out


def check_labels(labels: Any, num_classes: int, where: str, *,
                 n_samples: Optional[int] = None) -> np.ndarray:
    """`labels` as a contiguous 1-D int64 array of class indices in 0..num_classes-1, or a
    ValueError that names `where`, the first bad label and its position.

    The project's one label check: one_hot, evaluate, the losses and the data-set loaders use it.
    Integer (or bool) dtypes only: float labels are refused, even whole-numbered ones, rather
    than silently truncated. An empty array passes whatever its dtype (`np.asarray([])` is
    float64). With `n_samples`, the labels must number exactly that many, one per sample.

    Example:
        >>> check_labels([2, 0, 1], 3, "fit")
        array([2, 0, 1])
    """
    batching = sys.modules.get("autograd_lite.batching")   # loaded whenever labels can be batched
    if batching is not None and isinstance(labels, batching.Batched):
        # inside ag.vmap: check every example's labels at once and keep them batched
        if labels.ndim != 1 or (n_samples is not None and labels.shape[0] != n_samples):
            expected = "(samples,)" if n_samples is None else f"({n_samples},)"
            raise ValueError(f"{where}: labels must have shape {expected}, one per sample, "
                             f"got {labels.shape} per example")
        whole = labels
        while not isinstance(whole, np.ndarray):
            whole = whole.payload if isinstance(whole, batching.Batched) else whole.data
        check_labels(np.reshape(whole, -1), num_classes, where)
        return labels
    y = np.asarray(labels)
    if y.size and y.dtype.kind not in "iub":
        hint = ("; for one-hot rows, pass their argmax(axis=1)" if y.ndim == 2 else
                "; convert whole-number float labels with .astype(int)" if y.dtype.kind == "f" else "")
        raise ValueError(f"{where}: labels must be integers (class indices), got dtype {y.dtype}{hint}")
    if y.ndim != 1 or (n_samples is not None and len(y) != n_samples):
        expected = "(samples,)" if n_samples is None else f"({n_samples},)"
        raise ValueError(f"{where}: labels must have shape {expected}, one per sample, got {y.shape}")
    y = np.ascontiguousarray(y, dtype=np.int64)
    # min and max first: one cheap pass when every label is in range, which is almost always
    if y.size and (y.min() < 0 or y.max() >= num_classes):
        bad = (y < 0) | (y >= num_classes)
        i = int(np.argmax(bad))
        raise ValueError(f"{where}: label {y[i]} at position {i} is outside 0..{num_classes - 1} "
                         f"({num_classes} classes; out-of-range labels: "
                         f"{np.count_nonzero(bad)} of {len(y)})")
    return y


def stratified_split(x: np.ndarray, y: np.ndarray, fraction: float, seed: Seed = 0
                     ) -> Tuple[Tuple[np.ndarray, np.ndarray], Tuple[np.ndarray, np.ndarray]]:
    """Split (x, y) into (x_a, y_a), (x_b, y_b) with `fraction` of each class in b.

    Each class keeps its proportion in both parts (rounded per class, at least one sample of a
    class with two or more in each part). Rows keep their original order inside each part.

    Example:
        >>> (x_train, y_train), (x_val, y_val) = stratified_split(x, y, 0.1, seed=0)
    """
    x, y = np.asarray(x), np.asarray(y)
    if len(x) != len(y):
        raise ValueError(f"stratified_split: {len(x)} samples but {len(y)} labels; they must be equal")
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"stratified_split: fraction must be between 0 and 1 (exclusive), got {fraction}")
    rng = np.random.default_rng(seed)
    in_b = np.zeros(len(y), dtype=bool)
    for label in np.unique(y):
        members = np.flatnonzero(y == label)
        rng.shuffle(members)
        k = int(round(fraction * len(members)))
        if len(members) >= 2:
            k = min(max(k, 1), len(members) - 1)
        in_b[members[:k]] = True
    return (x[~in_b], y[~in_b]), (x[in_b], y[in_b])


class batches:
    """Mini-batches of (x, y), reshuffled on every pass; the same seed gives the same batches.

    `batch_size=None` (or >= len(x)) is batch gradient descent, 1 is stochastic gradient
    descent. The last batch is smaller when the batch size does not divide the sample count
    (unless `drop_last`). `len()` is the number of batches per pass.

    Example:
        >>> for xb, yb in batches(x, y, batch_size=100, seed=0):
        ...     ...
    """

    def __init__(self, x: np.ndarray, y: Optional[np.ndarray] = None, batch_size: Optional[int] = 32,
                 shuffle: bool = True, seed: Seed = None, drop_last: bool = False) -> None:
        self.x = np.asarray(x)
        self.y = None if y is None else np.asarray(y)
        n = len(self.x)
        if self.y is not None and len(self.y) != n:
            raise ValueError(f"batches: {n} samples but {len(self.y)} labels; they must be equal")
        if batch_size is None:
            batch_size = max(n, 1)
        if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
            raise ValueError(f"batches: batch_size must be a positive integer or None, got {batch_size!r}")
        self.batch_size = int(batch_size)
        self.shuffle = shuffle
        self.drop_last = drop_last
        self.rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)

    def __len__(self) -> int:
        n = len(self.x)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def __iter__(self) -> Iterator:
        n = len(self.x)
        order = self.rng.permutation(n) if self.shuffle else None
        for start in range(0, len(self) * self.batch_size, self.batch_size):
            stop = start + self.batch_size
            index = slice(start, stop) if order is None else order[start:stop]
            xb = self.x[index]
            yield xb if self.y is None else (xb, self.y[index])
