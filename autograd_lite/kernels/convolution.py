"""Convolution and pooling kernels: which implementation runs, the Numba loops or the NumPy twins.

The choice follows the other kernels (`kernels/dispatch.py`): the backend (`set_kernels`, or
AUTOGRAD_LITE_KERNELS), and the dtype (float32 and float64 run the Numba kernels of
`conv_kernels.py`; anything else the twins of `conv_reference.py`). Mixed float32 and float64
operands promote to float64 as NumPy (and `ag.matmul`) do, on both backends alike: the Numba
path converts the float32 operand first rather than leaving it to the slower twin. Numba is imported, and a
kernel compiled, on the first call that picks one. The arguments are checked and normalized by
the primitives (`autograd_lite/primitives/conv.py`); here only the arrays are made contiguous.
"""
from __future__ import annotations

from types import ModuleType
from typing import Optional

import numpy as np

from . import conv_reference as reference
from .conv_reference import Pair, Padding, output_size
from .dispatch import contiguous, get_kernels

__all__ = ["conv2d", "conv2d_input_grad", "conv2d_weight_grad", "max_pool2d", "max_pool2d_scatter",
           "max_pool2d_gather"]

_jitted: Optional[ModuleType] = None


def _numba(*arrays: np.ndarray) -> Optional[ModuleType]:
    """The module of Numba kernels when they are to run on these (float32 or float64) arrays, else None."""
    global _jitted
    if get_kernels() != "numba" or any(a.dtype.char not in "fd" for a in arrays):
        return None
    if _jitted is None:
        try:
            from . import conv_kernels
        except ImportError:  # no Numba: the twins (kernels.dispatch warns once for the others)
            return None
        _jitted = conv_kernels
    return _jitted


def _promoted(a: np.ndarray, b: np.ndarray) -> tuple:
    """a and b C-contiguous in their common dtype (float64 when one of them is)."""
    dtype = np.result_type(a, b)
    return contiguous(a.astype(dtype, copy=False)), contiguous(b.astype(dtype, copy=False))


def conv2d(x: np.ndarray, w: np.ndarray, stride: Pair, padding: Padding, dilation: Pair,
           groups: int) -> np.ndarray:
    """The cross-correlation of x (N, C, H, W) with w (O, C / groups, kh, kw): (N, O, Ho, Wo)."""
    if x.shape[0] == 0:   # an empty batch (the im2col reshapes cannot infer a length from 0)
        ho, wo = (output_size(x.shape[2 + i], w.shape[2 + i], stride[i], padding[i], dilation[i]) for i in (0, 1))
        return np.zeros((0, w.shape[0], ho, wo), np.result_type(x, w))
    jit = _numba(x, w)
    if jit is None:
        return reference.conv2d(x, w, stride, padding, dilation, groups)
    return jit.conv2d(*_promoted(x, w), stride, padding, dilation, groups)


def conv2d_input_grad(g: np.ndarray, w: np.ndarray, size: Pair, stride: Pair, padding: Padding,
                      dilation: Pair, groups: int) -> np.ndarray:
    """The transposed convolution of g (N, O, Ho, Wo) with w: the cotangent of conv2d's x."""
    if g.shape[0] == 0:
        return np.zeros((0, w.shape[1] * groups) + tuple(size), np.result_type(g, w))
    jit = _numba(g, w)
    if jit is None:
        return reference.conv2d_input_grad(g, w, size, stride, padding, dilation, groups)
    return jit.conv2d_input_grad(*_promoted(g, w), size, stride, padding, dilation, groups)


def conv2d_weight_grad(x: np.ndarray, g: np.ndarray, kernel: Pair, stride: Pair, padding: Padding,
                       dilation: Pair, groups: int) -> np.ndarray:
    """The cotangent of conv2d's weights, (O, C / groups, kh, kw), from x and g."""
    if x.shape[0] == 0:
        return np.zeros((g.shape[1], x.shape[1] // groups) + tuple(kernel), np.result_type(x, g))
    jit = _numba(x, g)
    if jit is None:
        return reference.conv2d_weight_grad(x, g, kernel, stride, padding, dilation, groups)
    return jit.conv2d_weight_grad(*_promoted(x, g), kernel, stride, padding, dilation, groups)


def max_pool2d(x: np.ndarray, kernel: Pair, stride: Pair, padding: Padding) -> np.ndarray:
    """The maximum of each window of x, padding counting as -inf."""
    jit = _numba(x)
    if jit is None:
        return reference.max_pool2d(x, kernel, stride, padding)
    return jit.max_pool2d(contiguous(x), kernel, stride, padding)


def max_pool2d_scatter(g: np.ndarray, x: np.ndarray, kernel: Pair, stride: Pair,
                       padding: Padding) -> np.ndarray:
    """g added, per window, to the element of x that is the window's (first) maximum."""
    jit = _numba(g, x)
    if jit is None:
        return reference.max_pool2d_scatter(g, x, kernel, stride, padding)
    return jit.max_pool2d_scatter(contiguous(g), contiguous(x), kernel, stride, padding)


def max_pool2d_gather(h: np.ndarray, x: np.ndarray, kernel: Pair, stride: Pair,
                      padding: Padding) -> np.ndarray:
    """h (x's shape) read, per window, at the element of x that is the window's (first) maximum."""
    jit = _numba(h, x)
    if jit is None:
        return reference.max_pool2d_gather(h, x, kernel, stride, padding)
    return jit.max_pool2d_gather(contiguous(h), contiguous(x), kernel, stride, padding)


output_size = output_size  # re-exported for the primitives' checks
