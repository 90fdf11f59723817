"""Convolution and pooling on NCHW arrays, with PyTorch's layouts and semantics: conv2d, conv1d,
max_pool2d, avg_pool2d, adaptive_avg_pool2d (to 1 x 1).

Three primitives close convolution under differentiation. conv2d(x, w) is bilinear; its VJP in x
is the transposed convolution `conv2d_input_grad(g, w)`, in w the correlation
`conv2d_weight_grad(x, g)`; each of those is bilinear too, and its VJPs are the other two
(all three are the partial derivatives of one trilinear form <conv2d(x, w), g>). So
grad-of-grad needs nothing else. Max pooling is `max_pool2d`, whose VJP `max_pool2d_scatter`
sends g to each window's maximum and whose JVP `max_pool2d_gather` reads the tangent there;
those two are each other's transposes and, for the pooled input x, piecewise constant (no
gradient flows to x through them). Among tied maxima the first in the window (row-major order)
gets the gradient, as in PyTorch. Average pooling is a depthwise conv2d with a constant kernel.

The primitives take the geometry normalized: stride (sh, sw), padding ((top, bottom),
(left, right)), dilation (dh, dw), groups; the public functions check and normalize it.
"""
from __future__ import annotations

import builtins
import operator
from typing import Any, Optional, Tuple, Union

import numpy as np

from ..batching import batch_size, with_batch
from ..declaration import linear_jvp, primitive, public
from ..kernels import convolution as kernels
from ..tensor import Tensor, as_tensor
from .shape import reshape_p, transpose_p

IntPair = Union[int, Tuple[int, int]]


# ---------------------------------------------------------------- convolution
def _conv2d(x: np.ndarray, w: np.ndarray, stride: tuple, padding: tuple, dilation: tuple,
            groups: int) -> np.ndarray:
    return kernels.conv2d(x, w, stride, padding, dilation, groups)


def _conv2d_input_grad(g: np.ndarray, w: np.ndarray, size: tuple, stride: tuple, padding: tuple,
                       dilation: tuple, groups: int) -> np.ndarray:
    return kernels.conv2d_input_grad(g, w, size, stride, padding, dilation, groups)


def _conv2d_weight_grad(x: np.ndarray, g: np.ndarray, kernel: tuple, stride: tuple, padding: tuple,
                        dilation: tuple, groups: int) -> np.ndarray:
    return kernels.conv2d_weight_grad(x, g, kernel, stride, padding, dilation, groups)


conv2d_p = primitive(_conv2d, "conv2d")
conv2d_input_grad_p = primitive(_conv2d_input_grad, "conv2d_input_grad")
conv2d_weight_grad_p = primitive(_conv2d_weight_grad, "conv2d_weight_grad")

# y = conv2d(x, w): x_bar = conv2d_input_grad(g, w), w_bar = conv2d_weight_grad(x, g)
conv2d_p.defvjp(
    lambda g, ans, x, w, **geometry: conv2d_input_grad_p(g, w, size=x.shape[2:], **geometry),
    lambda g, ans, x, w, **geometry: conv2d_weight_grad_p(x, g, kernel=w.shape[2:], **geometry),
    text="the transposed convolution of g with w; the correlation of x with g")
# x_bar = conv2d_input_grad(y_bar, w): y_bar gets conv2d(h, w), w gets conv2d_weight_grad(h, y_bar)
conv2d_input_grad_p.defvjp(
    lambda h, ans, g, w, size, **geometry: conv2d_p(h, w, **geometry),
    lambda h, ans, g, w, size, **geometry: conv2d_weight_grad_p(h, g, kernel=w.shape[2:], **geometry),
    text="conv2d(h, w); the correlation of h with g")
# w_bar = conv2d_weight_grad(x, y_bar): x gets conv2d_input_grad(y_bar, k), y_bar gets conv2d(x, k)
conv2d_weight_grad_p.defvjp(
    lambda k, ans, x, g, kernel, **geometry: conv2d_input_grad_p(g, k, size=x.shape[2:], **geometry),
    lambda k, ans, x, g, kernel, **geometry: conv2d_p(x, k, **geometry),
    text="the transposed convolution of g with k; conv2d(x, k)")
for _p in (conv2d_p, conv2d_input_grad_p, conv2d_weight_grad_p):
    _p.fresh_cotangents = True
    linear_jvp(_p, (0, 1), jointly=False)  # bilinear: f(t, y) + f(x, t)


@public
def conv2d(x: Any, w: Any, b: Any = None, stride: IntPair = 1, padding: Union[IntPair, str] = 0,
           dilation: IntPair = 1, groups: int = 1) -> Tensor:
    """The 2-D cross-correlation of x (N, C, H, W) with weights w (O, C / groups, kh, kw), plus
    the bias b (O,) when given: (N, O, Ho, Wo), Ho = floor((H + 2 p - d (kh - 1) - 1) / s) + 1.

    PyTorch's `torch.nn.functional.conv2d`: `padding` is an int, a pair, "valid" (none) or
    "same" (the output keeps H and W, stride 1 only; an odd total pad puts the extra row and
    column at the bottom and right); `groups` splits the channels into independent convolutions.
    Unlike PyTorch, which refuses them, float32 and float64 operands together give float64, as
    NumPy and `ag.matmul` do (on either kernel backend); each gradient keeps its input's dtype.

        >>> y = ag.conv2d(images, kernels, bias, padding=2)       # (64, 1, 28, 28) -> (64, 6, 28, 28)
    """
    x, w = as_tensor(x), as_tensor(w)
    geometry = _conv_geometry("conv2d", x.shape, w.shape, stride, padding, dilation, groups, spatial=2)
    out = conv2d_p(x, w, **geometry)
    return out if b is None else out + _bias("conv2d", b, w.shape[0], 2)


@public
def conv1d(x: Any, w: Any, b: Any = None, stride: int = 1, padding: Union[int, str] = 0,
           dilation: int = 1, groups: int = 1) -> Tensor:
    """The 1-D cross-correlation of x (N, C, L) with weights w (O, C / groups, k), plus the bias
    b (O,) when given: (N, O, Lo), as `torch.nn.functional.conv1d` (a conv2d of height 1)."""
    x, w = as_tensor(x), as_tensor(w)
    geometry = _conv_geometry("conv1d", x.shape, w.shape, stride, padding, dilation, groups, spatial=1)
    out = conv2d_p(x.reshape(x.shape[:2] + (1,) + x.shape[2:]), w.reshape(w.shape[:2] + (1,) + w.shape[2:]),
                   **geometry)
    out = out.reshape(out.shape[:2] + out.shape[3:])
    return out if b is None else out + _bias("conv1d", b, w.shape[0], 1)


# ---------------------------------------------------------------- pooling
def _max_pool2d(x: np.ndarray, kernel: tuple, stride: tuple, padding: tuple) -> np.ndarray:
    return kernels.max_pool2d(x, kernel, stride, padding)


def _max_pool2d_scatter(g: np.ndarray, x: np.ndarray, kernel: tuple, stride: tuple,
                        padding: tuple) -> np.ndarray:
    return kernels.max_pool2d_scatter(g, x, kernel, stride, padding)


def _max_pool2d_gather(h: np.ndarray, x: np.ndarray, kernel: tuple, stride: tuple,
                       padding: tuple) -> np.ndarray:
    return kernels.max_pool2d_gather(h, x, kernel, stride, padding)


max_pool2d_p = primitive(_max_pool2d, "max_pool2d")
max_pool2d_scatter_p = primitive(_max_pool2d_scatter, "max_pool2d_scatter")
max_pool2d_gather_p = primitive(_max_pool2d_gather, "max_pool2d_gather")


def _plain(x: Any) -> np.ndarray:
    """Where the maxima are depends on x's values only: no gradient flows through the choice."""
    return x.data if isinstance(x, Tensor) else x


max_pool2d_p.defvjp(lambda g, ans, x, **window: max_pool2d_scatter_p(g, _plain(x), **window),
                    text="g to each window's maximum (the first among ties)")
max_pool2d_p.defjvp(lambda t, ans, x, **window: max_pool2d_gather_p(t, _plain(x), **window))
# scatter and gather are linear in their first input and each other's transpose; piecewise
# constant in x (the maxima's positions), so x has no rule
max_pool2d_scatter_p.defvjp(lambda h, ans, g, x, **window: max_pool2d_gather_p(h, x, **window), None,
                            text="h read at each window's maximum")
max_pool2d_gather_p.defvjp(lambda g, ans, h, x, **window: max_pool2d_scatter_p(g, x, **window), None,
                           text="g to each window's maximum")
for _p in (max_pool2d_scatter_p, max_pool2d_gather_p):
    _p.fresh_cotangents = True
    linear_jvp(_p, (0,), jointly=False)
max_pool2d_p.fresh_cotangents = True


@public
def max_pool2d(x: Any, kernel_size: IntPair, stride: Optional[IntPair] = None,
               padding: IntPair = 0) -> Tensor:
    """The maximum over each kh x kw window of x (N, C, H, W), windows `stride` apart (default:
    the kernel size), x padded with -inf by `padding` (at most half the kernel) on each side.

    As `torch.nn.functional.max_pool2d` (no dilation, floor mode). Among tied maxima the first
    in the window, in row-major order, gets the gradient, as in PyTorch; a NaN counts as the
    maximum.
    """
    x = as_tensor(x)
    window = _pool_geometry("max_pool2d", x.shape, kernel_size, stride, padding)
    return max_pool2d_p(x, **window)


@public
def avg_pool2d(x: Any, kernel_size: IntPair, stride: Optional[IntPair] = None,
               padding: IntPair = 0) -> Tensor:
    """The mean over each kh x kw window of x (N, C, H, W), windows `stride` apart (default: the
    kernel size), with zero padding that counts in the mean (PyTorch's default,
    count_include_pad=True): a depthwise conv2d with the constant kernel 1 / (kh kw)."""
    x = as_tensor(x)
    window = _pool_geometry("avg_pool2d", x.shape, kernel_size, stride, padding)
    (kh, kw) = window["kernel"]
    n, c, h, w = x.shape
    # integers average to float64, as np.mean and adaptive_avg_pool2d do (an integer kernel would be 0)
    mean_kernel = np.full((1, 1, kh, kw), 1.0 / (kh * kw), dtype=x.dtype if x.dtype.kind == "f" else np.float64)
    out = conv2d_p(x.reshape((n * c, 1, h, w)), mean_kernel, stride=window["stride"],
                   padding=window["padding"], dilation=(1, 1), groups=1)
    return out.reshape((n, c) + out.shape[2:])


@public
def adaptive_avg_pool2d(x: Any, output_size: IntPair) -> Tensor:
    """Global average pooling: the mean of each channel of x (N, C, H, W), shape (N, C, 1, 1).
    Only output_size 1 (or (1, 1)) is implemented."""
    x = as_tensor(x)
    _check_rank("adaptive_avg_pool2d", "x", x.shape, 4, "(N, C, H, W)")
    size = output_size if isinstance(output_size, tuple) else (output_size, output_size)
    if size != (1, 1):
        raise NotImplementedError(f"adaptive_avg_pool2d: output_size {output_size!r} is not implemented; "
                                  "only 1 (global average pooling, output (N, C, 1, 1)) is")
    return x.mean(axis=(2, 3), keepdims=True)


# ---------------------------------------------------------------- batching rules (vmap)
# A batch of examples of batch B: when only the images are batched it is folded into N
# (B, N, C, H, W) -> (B N, C, H, W), one call; when the kernels are batched too, each example
# becomes groups of channels, (N, B C, H, W) with B O kernels in B * groups groups, one call.
def _fold(a: Any) -> Any:
    """(B, N, ...) -> (B N, ...)."""
    shape = tuple(a.shape)
    return reshape_p(a, shape=(shape[0] * shape[1],) + shape[2:])


def _unfold(a: Any, b: int) -> Any:
    """(B N, ...) -> (B, N, ...)."""
    shape = tuple(a.shape)
    return reshape_p(a, shape=(b, shape[0] // b) + shape[1:])


def _to_channels(a: Any) -> Any:
    """(B, N, C, H, W) -> (N, B C, H, W)."""
    b, n, c, h, w = tuple(a.shape)
    return reshape_p(transpose_p(a, axes=(1, 0, 2, 3, 4)), shape=(n, b * c, h, w))


def _from_channels(a: Any, b: int) -> Any:
    """(N, B C, H, W) -> (B, N, C, H, W)."""
    n, bc, h, w = tuple(a.shape)
    return transpose_p(reshape_p(a, shape=(n, b, bc // b, h, w)), axes=(1, 0, 2, 3, 4))


def _batch_conv2d(args: Any, dims: Any, groups: int, **geometry: Any) -> tuple:
    (x, w), b = args, batch_size(args, dims)
    if dims[1] is None:
        return _unfold(conv2d_p(_fold(x), w, groups=groups, **geometry), b), 0
    x = with_batch(x, dims[0], b)
    return _from_channels(conv2d_p(_to_channels(x), _fold(w), groups=b * groups, **geometry), b), 0


def _batch_conv2d_input_grad(args: Any, dims: Any, size: tuple, groups: int, **geometry: Any) -> tuple:
    (g, w), b = args, batch_size(args, dims)
    if dims[1] is None:
        return _unfold(conv2d_input_grad_p(_fold(g), w, size=size, groups=groups, **geometry), b), 0
    g = with_batch(g, dims[0], b)
    out = conv2d_input_grad_p(_to_channels(g), _fold(w), size=size, groups=b * groups, **geometry)
    return _from_channels(out, b), 0


def _batch_conv2d_weight_grad(args: Any, dims: Any, kernel: tuple, groups: int, **geometry: Any) -> tuple:
    b = batch_size(args, dims)
    x, g = (with_batch(a, d, b) for a, d in zip(args, dims))
    out = conv2d_weight_grad_p(_to_channels(x), _to_channels(g), kernel=kernel, groups=b * groups, **geometry)
    return _unfold(out, b), 0


def _batch_pool(prim: Any) -> Any:
    """Pooling acts per image: every batched input folded into N (unbatched ones repeated)."""
    def rule(args: Any, dims: Any, **window: Any) -> tuple:
        b = batch_size(args, dims)
        return _unfold(prim(*[_fold(with_batch(a, d, b)) for a, d in zip(args, dims)], **window), b), 0
    return rule


conv2d_p.defbatch(_batch_conv2d)
conv2d_input_grad_p.defbatch(_batch_conv2d_input_grad)
conv2d_weight_grad_p.defbatch(_batch_conv2d_weight_grad)
for _p in (max_pool2d_p, max_pool2d_scatter_p, max_pool2d_gather_p):
    _p.defbatch(_batch_pool(_p))


# ---------------------------------------------------------------- argument checks
def _check_rank(op: str, name: str, shape: tuple, ndim: int, layout: str) -> None:
    if len(shape) != ndim:
        raise ValueError(f"{op}: {name} must have {ndim} dimensions {layout}, got shape {shape}")


def _ints(value: Any, n: int, op: str, name: str) -> Tuple[int, ...]:
    """An int, or a tuple of n ints, as a tuple of n Python ints."""
    values = tuple(value) if isinstance(value, (tuple, list)) else (value,) * n
    if len(values) != n:
        raise ValueError(f"{op}: {name} must be an int or {n} ints, got {value!r}")
    try:
        return tuple(operator.index(v) for v in values)
    except TypeError:
        raise TypeError(f"{op}: {name} must be an int or {n} ints, got {value!r}") from None


def _positive(values: tuple, op: str, name: str, given: Any) -> tuple:
    if builtins.min(values) < 1:
        raise ValueError(f"{op}: {name} must be positive, got {given!r}")
    return values


def _conv_geometry(op: str, x_shape: tuple, w_shape: tuple, stride: Any, padding: Any,
                   dilation: Any, groups: Any, spatial: int) -> dict:
    """The normalized keyword parameters of conv2d_p, for conv2d (spatial=2) or conv1d (1)."""
    layouts = {2: ("(N, C, H, W)", "(O, C / groups, kh, kw)"), 1: ("(N, C, L)", "(O, C / groups, k)")}
    _check_rank(op, "the input", x_shape, spatial + 2, layouts[spatial][0])
    _check_rank(op, "the weight", w_shape, spatial + 2, layouts[spatial][1])
    try:
        groups = operator.index(groups)
    except TypeError:
        raise TypeError(f"{op}: groups must be a positive integer, got {groups!r}") from None
    if groups < 1:
        raise ValueError(f"{op}: groups must be a positive integer, got {groups}")
    channels, out_channels = x_shape[1], w_shape[0]
    if channels % groups or out_channels % groups:
        raise ValueError(f"{op}: groups={groups} must divide both the input's {channels} channels and "
                         f"the weight's {out_channels} output channels")
    if w_shape[1] * groups != channels:
        raise ValueError(f"{op}: the weight of shape {w_shape} takes {w_shape[1]} channels per group, "
                         f"but the input of shape {x_shape} has {channels} channels in {groups} "
                         f"group(s), {channels // groups} each")
    stride_ = _positive(_ints(stride, spatial, op, "stride"), op, "stride", stride)
    dilation_ = _positive(_ints(dilation, spatial, op, "dilation"), op, "dilation", dilation)
    kernel = w_shape[2:]
    reach = tuple(d * (k - 1) for d, k in zip(dilation_, kernel))   # the kernel's span minus one
    if isinstance(padding, str):
        if padding == "valid":
            pads = tuple((0, 0) for _ in range(spatial))
        elif padding == "same":
            if builtins.max(stride_) != 1:
                raise ValueError(f"{op}: padding='same' needs stride 1, got stride {stride!r}")
            pads = tuple((r // 2, r - r // 2) for r in reach)
        else:
            raise ValueError(f"{op}: padding must be an int, {spatial} ints, 'same' or 'valid', got {padding!r}")
    else:
        pads = tuple((p, p) for p in _ints(padding, spatial, op, "padding"))
        if builtins.min(p for p, _ in pads) < 0:
            raise ValueError(f"{op}: padding must be non-negative, got {padding!r}")
    for size, (before, after), r, axis in zip(x_shape[2:], pads, reach, ("height", "width")[-spatial:]
                                              if spatial == 2 else ("length",)):
        if size + before + after < r + 1:
            raise ValueError(f"{op}: the kernel spans {r + 1} along the {axis} (dilation included), more "
                             f"than the padded input's {size + before + after}; input shape {x_shape}, "
                             f"weight shape {w_shape}")
    if spatial == 1:
        stride_, dilation_, pads = (1,) + stride_, (1,) + dilation_, ((0, 0),) + pads
    return dict(stride=stride_, padding=pads, dilation=dilation_, groups=groups)


def _bias(op: str, b: Any, out_channels: int, spatial: int) -> Tensor:
    b = as_tensor(b)
    if b.shape != (out_channels,):
        raise ValueError(f"{op}: the bias must have shape ({out_channels},), one per output channel, "
                         f"got shape {b.shape}")
    return b.reshape((out_channels,) + (1,) * spatial)


def _pool_geometry(op: str, x_shape: tuple, kernel_size: Any, stride: Any, padding: Any) -> dict:
    """The normalized keyword parameters of the pooling primitives."""
    _check_rank(op, "the input", x_shape, 4, "(N, C, H, W)")
    kernel = _positive(_ints(kernel_size, 2, op, "kernel_size"), op, "kernel_size", kernel_size)
    stride_ = kernel if stride is None else _positive(_ints(stride, 2, op, "stride"), op, "stride", stride)
    pads = _ints(padding, 2, op, "padding")
    if builtins.min(pads) < 0 or any(2 * p > k for p, k in zip(pads, kernel)):
        raise ValueError(f"{op}: padding must be between 0 and half the kernel size {kernel}, got {padding!r}")
    for size, p, k, axis in zip(x_shape[2:], pads, kernel, ("height", "width")):
        if size + 2 * p < k:
            raise ValueError(f"{op}: the kernel spans {k} along the {axis}, more than the padded "
                             f"input's {size + 2 * p}; input shape {x_shape}")
    return dict(kernel=kernel, stride=stride_, padding=tuple((p, p) for p in pads))


# ---------------------------------------------------------------- test domains
def _conv_case(c: Any) -> tuple:
    """A small geometry: groups, channels, kernel, stride, dilation, asymmetric padding, and x's
    and the output's spatial sizes."""
    groups, cg, og = c.choice([1, 2]), c.integer(1, 2), c.integer(1, 2)
    kernel = (c.integer(1, 3), c.integer(1, 3))
    stride = (c.integer(1, 2), c.integer(1, 2))
    dilation = (c.integer(1, 2), c.integer(1, 2))
    padding = ((c.integer(0, 2), c.integer(0, 1)), (c.integer(0, 1), c.integer(0, 2)))
    size = tuple(builtins.max(1, d * (k - 1) + 1 - sum(p)) + c.integer(0, 2)
                 for k, d, p in zip(kernel, dilation, padding))
    out = tuple(kernels.output_size(n, k, s, p, d)
                for n, k, s, p, d in zip(size, kernel, stride, padding, dilation))
    n = c.integer(1, 2)
    geometry = dict(stride=stride, padding=padding, dilation=dilation, groups=groups)
    return n, groups * cg, groups * og, kernel, size, out, geometry


def _conv2d_domain(c: Any) -> tuple:
    n, channels, out_channels, kernel, size, _, geometry = _conv_case(c)
    x = c.array((n, channels) + size)
    w = c.array((out_channels, channels // geometry["groups"]) + kernel)
    return (lambda x, w: conv2d_p(x, w, **geometry)), [x, w]


def _conv2d_input_grad_domain(c: Any) -> tuple:
    n, channels, out_channels, kernel, size, out, geometry = _conv_case(c)
    g = c.array((n, out_channels) + out)
    w = c.array((out_channels, channels // geometry["groups"]) + kernel)
    return (lambda g, w: conv2d_input_grad_p(g, w, size=size, **geometry)), [g, w]


def _conv2d_weight_grad_domain(c: Any) -> tuple:
    n, channels, out_channels, kernel, size, out, geometry = _conv_case(c)
    x = c.array((n, channels) + size)
    g = c.array((n, out_channels) + out)
    return (lambda x, g: conv2d_weight_grad_p(x, g, kernel=kernel, **geometry)), [x, g]


def _pool_case(c: Any) -> tuple:
    kernel = (c.integer(1, 3), c.integer(1, 3))
    stride = (c.integer(1, 2), c.integer(1, 3))
    pads = tuple(c.integer(0, k // 2) for k in kernel)
    size = tuple(builtins.max(1, k - 2 * p) + c.integer(0, 3) for k, p in zip(kernel, pads))
    window = dict(kernel=kernel, stride=stride, padding=tuple((p, p) for p in pads))
    shape = (c.integer(1, 2), c.integer(1, 2)) + size
    out = tuple(kernels.output_size(n, k, s, (p, p), 1) for n, k, s, p in zip(size, kernel, stride, pads))
    # pairwise distinct values: no ties, so the maxima stay put under finite differences
    return c.array(shape, spread=True), shape[:2] + out, window


def _max_pool2d_domain(c: Any) -> tuple:
    x, _, window = _pool_case(c)
    return (lambda x: max_pool2d_p(x, **window)), [x]


def _max_pool2d_scatter_domain(c: Any) -> tuple:
    x, out, window = _pool_case(c)
    return (lambda g: max_pool2d_scatter_p(g, x, **window)), [c.array(out)]


def _max_pool2d_gather_domain(c: Any) -> tuple:
    x, _, window = _pool_case(c)
    return (lambda h: max_pool2d_gather_p(h, x, **window)), [c.array(x.shape)]


conv2d_p.domain = _conv2d_domain
conv2d_input_grad_p.domain = _conv2d_input_grad_domain
conv2d_weight_grad_p.domain = _conv2d_weight_grad_domain
max_pool2d_p.domain = _max_pool2d_domain
max_pool2d_scatter_p.domain = _max_pool2d_scatter_domain
max_pool2d_gather_p.domain = _max_pool2d_gather_domain
