"""Hypothesis strategies for property-based tests of differentiable code.

Needs the `test` extra (hypothesis). Example:

    from hypothesis import given
    from autograd_lite.testing import arrays, shapes
    @given(arrays(shapes()))
    def test_my_op(x): assert gradcheck(my_op, x)
"""
from __future__ import annotations

from typing import Any, Tuple

import numpy as np
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp


def shapes(min_dims: int = 0, max_dims: int = 3, min_side: int = 1, max_side: int = 4) -> st.SearchStrategy:
    """Array shapes, including 0-d () and size-1 axes."""
    return hnp.array_shapes(min_dims=min_dims, max_dims=max_dims, min_side=min_side, max_side=max_side)


def broadcastable_shapes(num_shapes: int = 2, min_dims: int = 0, max_dims: int = 3,
                         max_side: int = 4) -> st.SearchStrategy:
    """Tuples of shapes that broadcast together (stretched size-1 axes, missing leading axes)."""
    return hnp.mutually_broadcastable_shapes(num_shapes=num_shapes, min_dims=min_dims,
                                             max_dims=max_dims, max_side=max_side).map(
        lambda b: tuple(b.input_shapes))


def arrays(shape: Any, dtype: Any = np.float64, low: float = -3.0, high: float = 3.0,
           away_from: float | None = None, margin: float = 0.05, unique: bool = False) -> st.SearchStrategy:
    """Well-conditioned float arrays: values in [low, high], optionally at least `margin`
    away from the kink `away_from` (e.g. 0 for abs/relu), optionally all distinct (max/min).
    `shape` is a shape or a strategy of shapes."""
    elements = st.floats(low, high, allow_nan=False, allow_infinity=False, width=64)
    if away_from is not None:
        elements = elements.filter(lambda v: abs(v - away_from) >= margin)
    shape_strategy = shape if isinstance(shape, st.SearchStrategy) else st.just(tuple(shape))
    return shape_strategy.flatmap(
        lambda s: hnp.arrays(np.float64, s, elements=elements, unique=unique)).map(
        lambda a: a.astype(dtype))


def positive_arrays(shape: Any, low: float = 0.1, high: float = 4.0, dtype: Any = np.float64) -> st.SearchStrategy:
    """Arrays with values in [low, high], for log, sqrt and division."""
    return arrays(shape, dtype=dtype, low=low, high=high)


def spread_arrays(shape: Any, low: float = -3.0, high: float = 3.0, gap: float = 1e-3,
                  dtype: Any = np.float64) -> st.SearchStrategy:
    """Arrays whose elements differ pairwise by at least `gap` (no ties for max/min/maximum)."""
    def spread(a: np.ndarray) -> np.ndarray:
        flat = a.reshape(-1)
        order = np.argsort(flat, kind="stable")
        ranks = np.empty_like(order)
        ranks[order] = np.arange(flat.size)
        return (flat + ranks * gap).reshape(a.shape).astype(dtype)
    return arrays(shape, low=low, high=high).map(spread)


def index_pairs(shape: Tuple[int, ...]) -> st.SearchStrategy:
    """Integer index arrays (with repeats) into the first axis of `shape`."""
    n = shape[0]
    return hnp.arrays(np.intp, st.integers(1, 6), elements=st.integers(-n, n - 1))
