"""The NumPy twins of the convolution and pooling kernels: im2col (a strided window view, copied
once) and one batched BLAS GEMM per group; col2im as one strided add per kernel offset.

Layouts are PyTorch's: x (N, C, H, W), w (O, C / groups, kh, kw), out (N, O, Ho, Wo). Every
function takes the geometry already checked and normalized (`autograd_lite/primitives/conv.py`):
stride (sh, sw), padding ((top, bottom), (left, right)), dilation (dh, dw), groups. float32
stays float32.
"""
from __future__ import annotations

from typing import Tuple

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

Pair = Tuple[int, int]
Padding = Tuple[Pair, Pair]


def output_size(size: int, kernel: int, stride: int, padding: Pair, dilation: int) -> int:
    """The number of window positions along one axis: floor((n + pads - d (k - 1) - 1) / s) + 1."""
    return (size + padding[0] + padding[1] - dilation * (kernel - 1) - 1) // stride + 1


def padded(x: np.ndarray, padding: Padding, value: float = 0.0) -> np.ndarray:
    """x with its last two axes padded by `value` (x itself when there is no padding)."""
    (top, bottom), (left, right) = padding
    if not (top or bottom or left or right):
        return x
    out = np.full(x.shape[:-2] + (x.shape[-2] + top + bottom, x.shape[-1] + left + right), value, x.dtype)
    out[..., top:top + x.shape[-2], left:left + x.shape[-1]] = x
    return out


def windows(x: np.ndarray, kernel: Pair, stride: Pair, padding: Padding, dilation: Pair,
            value: float = 0.0) -> np.ndarray:
    """The (N, C, Ho, Wo, kh, kw) view of x's windows (no copy beyond the padding)."""
    (kh, kw), (sh, sw), (dh, dw) = kernel, stride, dilation
    xp = padded(x, padding, value)
    view = sliding_window_view(xp, (dh * (kh - 1) + 1, dw * (kw - 1) + 1), axis=(2, 3))
    return view[:, :, ::sh, ::sw, ::dh, ::dw]


def _columns(x: np.ndarray, kernel: Pair, stride: Pair, padding: Padding, dilation: Pair,
             groups: int) -> np.ndarray:
    """im2col: (groups, N * Ho * Wo, C / groups * kh * kw), one copy."""
    n, c = x.shape[:2]
    view = windows(x, kernel, stride, padding, dilation)          # (N, C, Ho, Wo, kh, kw)
    ho, wo = view.shape[2:4]
    view = view.reshape(n, groups, c // groups, ho, wo, *kernel)
    cols = view.transpose(1, 0, 3, 4, 2, 5, 6)                      # (G, N, Ho, Wo, Cg, kh, kw)
    return cols.reshape(groups, n * ho * wo, -1)


def conv2d(x: np.ndarray, w: np.ndarray, stride: Pair, padding: Padding, dilation: Pair,
           groups: int) -> np.ndarray:
    """out[n, o, i, j] = sum_{c, a, b} w[o, c, a, b] x_pad[n, g(o) Cg + c, i sh + a dh, j sw + b dw]."""
    n = x.shape[0]
    o = w.shape[0]
    ho = output_size(x.shape[2], w.shape[2], stride[0], padding[0], dilation[0])
    wo = output_size(x.shape[3], w.shape[3], stride[1], padding[1], dilation[1])
    cols = _columns(x, w.shape[2:], stride, padding, dilation, groups)   # (G, N Ho Wo, K)
    weights = w.reshape(groups, o // groups, -1)                          # (G, Og, K)
    out = np.matmul(cols, weights.transpose(0, 2, 1))                     # (G, N Ho Wo, Og)
    out = out.reshape(groups, n, ho, wo, o // groups).transpose(1, 0, 4, 2, 3)
    return np.ascontiguousarray(out.reshape(n, o, ho, wo))


def _grouped_cotangent(g: np.ndarray, groups: int) -> np.ndarray:
    """g (N, O, Ho, Wo) as (G, N Ho Wo, Og), the layout of conv2d's GEMM output."""
    n, o, ho, wo = g.shape
    return g.reshape(n, groups, o // groups, ho, wo).transpose(1, 0, 3, 4, 2).reshape(groups, n * ho * wo, -1)


def conv2d_input_grad(g: np.ndarray, w: np.ndarray, size: Pair, stride: Pair, padding: Padding,
                      dilation: Pair, groups: int) -> np.ndarray:
    """The transposed convolution: the cotangent of conv2d's input x (spatial size `size`),
    x_bar = sum over windows of w^T g, added back where each window came from (col2im)."""
    n, o, ho, wo = g.shape
    _, cg, kh, kw = w.shape
    (sh, sw), (dh, dw) = stride, dilation
    weights = w.reshape(groups, o // groups, -1)                               # (G, Og, K)
    cols = np.matmul(_grouped_cotangent(g, groups), weights)                   # (G, N Ho Wo, K)
    cols = cols.reshape(groups, n, ho, wo, cg, kh, kw).transpose(1, 0, 4, 5, 6, 2, 3)
    cols = cols.reshape(n, groups * cg, kh, kw, ho, wo)
    (top, bottom), (left, right) = padding
    hp, wp = size[0] + top + bottom, size[1] + left + right
    out = np.zeros((n, groups * cg, hp, wp), g.dtype)
    for a in range(kh):
        for b in range(kw):
            out[:, :, a * dh:a * dh + sh * (ho - 1) + 1:sh, b * dw:b * dw + sw * (wo - 1) + 1:sw] += cols[:, :, a, b]
    return out[:, :, top:top + size[0], left:left + size[1]]


def conv2d_weight_grad(x: np.ndarray, g: np.ndarray, kernel: Pair, stride: Pair, padding: Padding,
                       dilation: Pair, groups: int) -> np.ndarray:
    """The cotangent of conv2d's weights: w_bar[o, c, a, b] = sum over n, i, j of
    g[n, o, i, j] x_pad[n, g(o) Cg + c, i sh + a dh, j sw + b dw] (one GEMM per group)."""
    o = g.shape[1]
    cols = _columns(x, kernel, stride, padding, dilation, groups)          # (G, N Ho Wo, K)
    out = np.matmul(_grouped_cotangent(g, groups).transpose(0, 2, 1), cols)  # (G, Og, K)
    return out.reshape(o, x.shape[1] // groups, *kernel)


# ---------------------------------------------------------------- max pooling
def _pool_windows(x: np.ndarray, kernel: Pair, stride: Pair, padding: Padding,
                  value: float = -np.inf) -> np.ndarray:
    """(N, C, Ho, Wo, kh * kw) windows of x padded with `value` (a copy); -inf is the integer
    dtype's minimum for integer x."""
    if value == -np.inf and x.dtype.kind in "iub":
        value = np.iinfo(x.dtype).min if x.dtype.kind != "b" else False
    view = windows(x, kernel, stride, padding, (1, 1), value=value)
    return view.reshape(view.shape[:4] + (kernel[0] * kernel[1],))


def max_pool2d(x: np.ndarray, kernel: Pair, stride: Pair, padding: Padding) -> np.ndarray:
    """The maximum of each window (padding counts as -inf)."""
    return _pool_windows(x, kernel, stride, padding).max(axis=-1)


def max_pool2d_argmax(x: np.ndarray, kernel: Pair, stride: Pair, padding: Padding) -> np.ndarray:
    """(N, C, Ho, Wo): the offset a kw + b in its window of each window's maximum, the first one
    in row-major order among ties (PyTorch's choice); a NaN counts as the maximum (the last NaN,
    as in PyTorch's CPU loop)."""
    cells = _pool_windows(x, kernel, stride, padding)
    nan = np.isnan(cells)
    if nan.any():
        last_nan = cells.shape[-1] - 1 - nan[..., ::-1].argmax(axis=-1)
        return np.where(nan.any(axis=-1), last_nan, cells.argmax(axis=-1))
    return cells.argmax(axis=-1)


def max_pool2d_scatter(g: np.ndarray, x: np.ndarray, kernel: Pair, stride: Pair,
                       padding: Padding) -> np.ndarray:
    """max_pool2d's VJP: each g[n, c, i, j] added to the element of x that was its window's max."""
    arg = max_pool2d_argmax(x, kernel, stride, padding)
    (kh, kw), (sh, sw) = kernel, stride
    (top, bottom), (left, right) = padding
    ho, wo = g.shape[2:]
    out = np.zeros(x.shape[:2] + (x.shape[2] + top + bottom, x.shape[3] + left + right), g.dtype)
    for a in range(kh):
        for b in range(kw):
            out[:, :, a:a + sh * (ho - 1) + 1:sh, b:b + sw * (wo - 1) + 1:sw] += np.where(arg == a * kw + b, g, 0)
    return out[:, :, top:top + x.shape[2], left:left + x.shape[3]]


def max_pool2d_gather(h: np.ndarray, x: np.ndarray, kernel: Pair, stride: Pair,
                      padding: Padding) -> np.ndarray:
    """The transpose of `max_pool2d_scatter`: h (x's shape) read at each window's max of x."""
    arg = max_pool2d_argmax(x, kernel, stride, padding)
    cells = _pool_windows(h, kernel, stride, padding, value=0.0)
    return np.take_along_axis(cells, arg[..., None], axis=-1)[..., 0]
