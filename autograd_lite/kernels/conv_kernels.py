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
from numba import njit, uint64

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
    """cols[n, (c kh + a) kw + b, i Wo + j] = x_pad[n, c, i sh + a dh, j sw + b dw], through flat
    indices. They are unsigned: with a signed index Numba adds the negative-index wraparound
    test to every access, which keeps LLVM from vectorizing the row copies (5x slower here)."""
    n_, c_, h_, w_ = x.shape
    xf = x.reshape(-1)
    cf = cols.reshape(-1)
    plane = ho * wo
    rows = c_ * kh * kw
    cf[:] = 0
    for n in range(n_):
        for c in range(c_):
            for a in range(kh):
                i_lo, i_hi = _span(a * dh - top, sh, ho, h_)
                for b in range(kw):
                    j_lo, j_hi = _span(b * dw - left, sw, wo, w_)
                    base = (n * rows + (c * kh + a) * kw + b) * plane
                    for i in range(i_lo, i_hi):
                        dst = uint64(base + i * wo)
                        src = uint64(((n * c_ + c) * h_ + i * sh + a * dh - top) * w_ + b * dw - left)
                        if sw == 1:
                            for j in range(uint64(j_lo), uint64(j_hi)):
                                cf[dst + j] = xf[src + j]
                        else:
                            for j in range(uint64(j_lo), uint64(j_hi)):
                                cf[dst + j] = xf[src + j * uint64(sw)]


@njit(**_JIT)
def _col2im(cols, kh, kw, sh, sw, top, left, dh, dw, ho, wo, dx):
    """dx[n, c, i sh + a dh - top, j sw + b dw - left] += cols[n, (c kh + a) kw + b, i Wo + j]
    (the transpose of `_im2col`; dx starts at zero)."""
    n_, c_, h_, w_ = dx.shape
    xf = dx.reshape(-1)
    cf = cols.reshape(-1)
    plane = ho * wo
    rows = c_ * kh * kw
    for n in range(n_):
        for c in range(c_):
            for a in range(kh):
                i_lo, i_hi = _span(a * dh - top, sh, ho, h_)
                for b in range(kw):
                    j_lo, j_hi = _span(b * dw - left, sw, wo, w_)
                    base = (n * rows + (c * kh + a) * kw + b) * plane
                    for i in range(i_lo, i_hi):
                        src = uint64(base + i * wo)
                        dst = uint64(((n * c_ + c) * h_ + i * sh + a * dh - top) * w_ + b * dw - left)
                        if sw == 1:
                            for j in range(uint64(j_lo), uint64(j_hi)):
                                xf[dst + j] += cf[src + j]
                        else:
                            for j in range(uint64(j_lo), uint64(j_hi)):
                                xf[dst + j * uint64(sw)] += cf[src + j]


@njit(**_JIT)
def _max_pool(x, kh, kw, sh, sw, top, left, out, arg):
    """out = each window's maximum, arg = its flat index in x's plane (r W + c): the first
    in-bounds element starts, a larger value or a NaN takes over (PyTorch's CPU rule). Flat
    unsigned indices, as in `_im2col` (no wraparound tests): 1.4x faster than x[n, c][r, col]."""
    n_, c_, h_, w_ = x.shape
    ho, wo = out.shape[2], out.shape[3]
    xf, of, af = x.reshape(-1), out.reshape(-1), arg.reshape(-1)
    for p in range(n_ * c_):
        base, o = p * h_ * w_, p * ho * wo
        for i in range(ho):
            r0 = i * sh - top
            r_lo, r_hi = max(r0, 0), min(r0 + kh, h_)
            for j in range(wo):
                c0 = j * sw - left
                c_lo, c_hi = max(c0, 0), min(c0 + kw, w_)
                where = r_lo * w_ + c_lo
                best = xf[uint64(base + where)]
                for r in range(r_lo, r_hi):
                    for col in range(c_lo, c_hi):
                        v = xf[uint64(base + r * w_ + col)]
                        if v > best or v != v:
                            best = v
                            where = r * w_ + col
                of[uint64(o + i * wo + j)] = best
                af[uint64(o + i * wo + j)] = where


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
# The columns are made for a few samples at a time, about _CHUNK_BYTES of them, so that they are
# still in cache when the GEMM reads them: for the ResNet shapes the whole batch's columns are
# 20-40 MB, and 2 MB chunks were 1.3-1.5x faster than one pass (and 5-10% faster than 256 KB
# chunks, which make more GEMM calls) with one BLAS thread here.
_CHUNK_BYTES = 2 * 1024 * 1024


def _samples_per_chunk(rows: int, plane: int, itemsize: int) -> int:
    return max(1, _CHUNK_BYTES // (rows * plane * itemsize))


def _chunk_columns(x, kernel, stride, padding, dilation, ho, wo, cols):
    _im2col(x, kernel[0], kernel[1], stride[0], stride[1], padding[0][0], padding[1][0],
            dilation[0], dilation[1], ho, wo, cols)


def conv2d(x: np.ndarray, w: np.ndarray, stride: Pair, padding: Padding, dilation: Pair,
           groups: int) -> np.ndarray:
    """conv2d by im2col and GEMMs: per sample, out (G, Og, Ho Wo) = w (G, Og, K) @ cols (G, K, Ho Wo),
    written straight into the NCHW output."""
    n, c = x.shape[:2]
    o, _, kh, kw = w.shape
    ho = output_size(x.shape[2], kh, stride[0], padding[0], dilation[0])
    wo = output_size(x.shape[3], kw, stride[1], padding[1], dilation[1])
    rows, plane = c * kh * kw, ho * wo
    out = np.empty((n, o, ho, wo), x.dtype)
    weights = w.reshape(groups, o // groups, rows // groups)
    step = _samples_per_chunk(rows, plane, x.itemsize)
    cols = np.empty((min(step, n), rows, plane), x.dtype)
    for first in range(0, n, step):
        m = min(step, n - first)
        _chunk_columns(x[first:first + m], (kh, kw), stride, padding, dilation, ho, wo, cols[:m])
        np.matmul(weights, cols[:m].reshape(m, groups, rows // groups, plane),
                  out=out[first:first + m].reshape(m, groups, o // groups, plane))
    return out


def conv2d_input_grad(g: np.ndarray, w: np.ndarray, size: Pair, stride: Pair, padding: Padding,
                      dilation: Pair, groups: int) -> np.ndarray:
    """The transposed convolution: per sample, cols (G, K, Ho Wo) = w^T @ g, then col2im."""
    n, o, ho, wo = g.shape
    _, cg, kh, kw = w.shape
    rows, plane = groups * cg * kh * kw, ho * wo
    weights_t = np.ascontiguousarray(w.reshape(groups, o // groups, rows // groups).transpose(0, 2, 1))
    dx = np.zeros((n, groups * cg) + tuple(size), g.dtype)
    step = _samples_per_chunk(rows, plane, g.itemsize)
    cols = np.empty((min(step, n), rows, plane), g.dtype)
    for first in range(0, n, step):
        m = min(step, n - first)
        np.matmul(weights_t, g[first:first + m].reshape(m, groups, o // groups, plane),
                  out=cols[:m].reshape(m, groups, rows // groups, plane))
        _col2im(cols[:m], kh, kw, stride[0], stride[1], padding[0][0], padding[1][0],
                dilation[0], dilation[1], ho, wo, dx[first:first + m])
    return dx


def conv2d_weight_grad(x: np.ndarray, g: np.ndarray, kernel: Pair, stride: Pair, padding: Padding,
                       dilation: Pair, groups: int) -> np.ndarray:
    """w_bar (G, Og, K) = sum over samples of g (G, Og, Ho Wo) @ cols^T (G, Ho Wo, K)."""
    n, o, ho, wo = g.shape
    c = x.shape[1]
    rows, plane = c * kernel[0] * kernel[1], ho * wo
    step = _samples_per_chunk(rows, plane, x.itemsize)
    cols = np.empty((min(step, n), rows, plane), x.dtype)
    products = np.empty((min(step, n), groups, o // groups, rows // groups), x.dtype)
    total = np.zeros((groups, o // groups, rows // groups), x.dtype)
    for first in range(0, n, step):
        m = min(step, n - first)
        _chunk_columns(x[first:first + m], kernel, stride, padding, dilation, ho, wo, cols[:m])
        np.matmul(g[first:first + m].reshape(m, groups, o // groups, plane),
                  cols[:m].reshape(m, groups, rows // groups, plane).transpose(0, 1, 3, 2), out=products[:m])
        total += products[:m].sum(axis=0)
    return total.reshape(o, c // groups, *kernel)


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

