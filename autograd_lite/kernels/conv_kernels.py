"""The Numba kernels of convolution and pooling, compiled on first call and cached on disk.

Convolution is im2col + BLAS: a Numba loop copies x's windows, in one pass, into columns
(C kh kw, N Ho Wo) whose rows are already grouped (group g owns rows g K .. (g + 1) K,
K = C / groups kh kw), so each of conv2d, its transposed convolution and its weight gradient is
one GEMM per group over all N Ho Wo positions; col2im adds columns back in one pass. Max
pooling is one pass per direction. Importing this module imports Numba but compiles nothing;
the arrays come in C-contiguous and of one float dtype (`kernels/convolution.py` sees to it).
"""
from __future__ import annotations

import numpy as np
from numba import njit

from .conv_reference import Pair, Padding, output_size

_JIT = dict(cache=True, nogil=True, error_model="numpy")


# ---------------------------------------------------------------- the loops
@njit(**_JIT)
def _span(offset: int, stride: int, count: int, size: int) -> tuple:
    """The output indices i in [lo, hi) with 0 <= i stride + offset < size."""
    lo = 0
    if offset < 0:
        lo = (-offset + stride - 1) // stride
    hi = count
    last = size - 1 - offset          # i stride <= last
    if last < 0:
        hi = 0
    elif last // stride + 1 < hi:
        hi = last // stride + 1
    if hi < lo:
        hi = lo
    return lo, hi


@njit(**_JIT)
def _im2col(x, kh, kw, sh, sw, top, left, dh, dw, ho, wo, cols):
    """cols[(c kh + a) kw + b, (n Ho + i) Wo + j] = x_pad[n, c, i sh + a dh, j sw + b dw]."""
    n_, c_, h_, w_ = x.shape
    plane = ho * wo
    for c in range(c_):
        for a in range(kh):
            i_lo, i_hi = _span(a * dh - top, sh, ho, h_)
            for b in range(kw):
                row = cols[(c * kh + a) * kw + b]
                j_lo, j_hi = _span(b * dw - left, sw, wo, w_)
                for n in range(n_):
                    base = n * plane
                    for k in range(base, base + i_lo * wo):
                        row[k] = 0
                    for i in range(i_lo, i_hi):
                        start = base + i * wo
                        src = x[n, c, i * sh + a * dh - top]
                        for j in range(0, j_lo):
                            row[start + j] = 0
                        shift = b * dw - left
                        for j in range(j_lo, j_hi):
                            row[start + j] = src[j * sw + shift]
                        for j in range(j_hi, wo):
                            row[start + j] = 0
                    for k in range(base + i_hi * wo, base + plane):
                        row[k] = 0


@njit(**_JIT)
def _col2im(cols, kh, kw, sh, sw, top, left, dh, dw, ho, wo, dx):
    """dx[n, c, i sh + a dh - top, j sw + b dw - left] += cols[(c kh + a) kw + b, (n Ho + i) Wo + j]
    (the transpose of `_im2col`; dx starts at zero)."""
    n_, c_, h_, w_ = dx.shape
    plane = ho * wo
    for c in range(c_):
        for a in range(kh):
            i_lo, i_hi = _span(a * dh - top, sh, ho, h_)
            for b in range(kw):
                row = cols[(c * kh + a) * kw + b]
                j_lo, j_hi = _span(b * dw - left, sw, wo, w_)
                shift = b * dw - left
                for n in range(n_):
                    base = n * plane
                    for i in range(i_lo, i_hi):
                        dst = dx[n, c, i * sh + a * dh - top]
                        start = base + i * wo
                        for j in range(j_lo, j_hi):
                            dst[j * sw + shift] += row[start + j]


@njit(**_JIT)
def _max_pool(x, kh, kw, sh, sw, top, left, out, arg):
    """out = each window's maximum, arg = its flat index in x's plane (r W + c): the first
    in-bounds element starts, a larger value or a NaN takes over (PyTorch's CPU rule)."""
    n_, c_, h_, w_ = x.shape
    ho, wo = out.shape[2], out.shape[3]
    for n in range(n_):
        for c in range(c_):
            plane = x[n, c]
            for i in range(ho):
                r0 = i * sh - top
                r_lo, r_hi = max(r0, 0), min(r0 + kh, h_)
                for j in range(wo):
                    c0 = j * sw - left
                    c_lo, c_hi = max(c0, 0), min(c0 + kw, w_)
                    best = -np.inf
                    where = r_lo * w_ + c_lo
                    for r in range(r_lo, r_hi):
                        for col in range(c_lo, c_hi):
                            v = plane[r, col]
                            if v > best or np.isnan(v):
                                best = v
                                where = r * w_ + col
                    out[n, c, i, j] = best
                    arg[n, c, i, j] = where


@njit(**_JIT)
def _max_pool_scatter(g, arg, dx):
    """dx[n, c] (flat) [arg[n, c, i, j]] += g[n, c, i, j]; dx starts at zero."""
    n_, c_, ho, wo = g.shape
    w_ = dx.shape[3]
    for n in range(n_):
        for c in range(c_):
            for i in range(ho):
                for j in range(wo):
                    k = arg[n, c, i, j]
                    dx[n, c, k // w_, k % w_] += g[n, c, i, j]


@njit(**_JIT)
def _max_pool_gather(h, arg, out):
    """out[n, c, i, j] = h[n, c] (flat) [arg[n, c, i, j]]."""
    n_, c_, ho, wo = out.shape
    w_ = h.shape[3]
    for n in range(n_):
        for c in range(c_):
            for i in range(ho):
                for j in range(wo):
                    k = arg[n, c, i, j]
                    out[n, c, i, j] = h[n, c, k // w_, k % w_]


# ---------------------------------------------------------------- the kernels
def _columns(x: np.ndarray, kernel: Pair, stride: Pair, padding: Padding, dilation: Pair,
             ho: int, wo: int) -> np.ndarray:
    n, c = x.shape[:2]
    cols = np.empty((c * kernel[0] * kernel[1], n * ho * wo), x.dtype)
    _im2col(x, kernel[0], kernel[1], stride[0], stride[1], padding[0][0], padding[1][0],
            dilation[0], dilation[1], ho, wo, cols)
    return cols


def conv2d(x: np.ndarray, w: np.ndarray, stride: Pair, padding: Padding, dilation: Pair,
           groups: int) -> np.ndarray:
    """conv2d by im2col and one GEMM per group: out (G, Og, N Ho Wo) = w (G, Og, K) @ cols."""
    n = x.shape[0]
    o = w.shape[0]
    ho = output_size(x.shape[2], w.shape[2], stride[0], padding[0], dilation[0])
    wo = output_size(x.shape[3], w.shape[3], stride[1], padding[1], dilation[1])
    cols = _columns(x, w.shape[2:], stride, padding, dilation, ho, wo)
    out = np.matmul(w.reshape(groups, o // groups, -1), cols.reshape(groups, -1, n * ho * wo))
    return np.ascontiguousarray(out.reshape(o, n, ho, wo).transpose(1, 0, 2, 3))


def _grouped(g: np.ndarray, groups: int) -> np.ndarray:
    """g (N, O, Ho, Wo) as (G, Og, N Ho Wo), one copy."""
    n, o, ho, wo = g.shape
    return np.ascontiguousarray(g.transpose(1, 0, 2, 3)).reshape(groups, o // groups, n * ho * wo)


def conv2d_input_grad(g: np.ndarray, w: np.ndarray, size: Pair, stride: Pair, padding: Padding,
                      dilation: Pair, groups: int) -> np.ndarray:
    """The transposed convolution: cols (G, K, N Ho Wo) = w^T @ g, then col2im."""
    n, o, ho, wo = g.shape
    _, cg, kh, kw = w.shape
    weights = w.reshape(groups, o // groups, -1)
    cols = np.matmul(weights.transpose(0, 2, 1), _grouped(g, groups))
    dx = np.zeros((n, groups * cg) + tuple(size), g.dtype)
    _col2im(cols.reshape(groups * cg * kh * kw, n * ho * wo), kh, kw, stride[0], stride[1],
            padding[0][0], padding[1][0], dilation[0], dilation[1], ho, wo, dx)
    return dx


def conv2d_weight_grad(x: np.ndarray, g: np.ndarray, kernel: Pair, stride: Pair, padding: Padding,
                       dilation: Pair, groups: int) -> np.ndarray:
    """w_bar (G, Og, K) = g (G, Og, N Ho Wo) @ cols^T."""
    n, o, ho, wo = g.shape
    cols = _columns(x, kernel, stride, padding, dilation, ho, wo)
    out = np.matmul(_grouped(g, groups), cols.reshape(groups, -1, n * ho * wo).transpose(0, 2, 1))
    return out.reshape(o, x.shape[1] // groups, *kernel)


def _pool(x: np.ndarray, kernel: Pair, stride: Pair, padding: Padding) -> tuple:
    ho = output_size(x.shape[2], kernel[0], stride[0], padding[0], 1)
    wo = output_size(x.shape[3], kernel[1], stride[1], padding[1], 1)
    out = np.empty(x.shape[:2] + (ho, wo), x.dtype)
    arg = np.empty(out.shape, np.int64)
    _max_pool(x, kernel[0], kernel[1], stride[0], stride[1], padding[0][0], padding[1][0], out, arg)
    return out, arg


def max_pool2d(x: np.ndarray, kernel: Pair, stride: Pair, padding: Padding) -> np.ndarray:
    return _pool(x, kernel, stride, padding)[0]


def max_pool2d_scatter(g: np.ndarray, x: np.ndarray, kernel: Pair, stride: Pair,
                       padding: Padding) -> np.ndarray:
    arg = _pool(x, kernel, stride, padding)[1]
    dx = np.zeros(x.shape, g.dtype)
    _max_pool_scatter(g, arg, dx)
    return dx


def max_pool2d_gather(h: np.ndarray, x: np.ndarray, kernel: Pair, stride: Pair,
                      padding: Padding) -> np.ndarray:
    arg = _pool(x, kernel, stride, padding)[1]
    out = np.empty(arg.shape, h.dtype)
    _max_pool_gather(h, arg, out)
    return out

