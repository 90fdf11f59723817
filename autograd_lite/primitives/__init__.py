"""THE table: every primitive declared once, by kind, one file each.

    elementwise.py   add ... astype, tan ... rad2deg: out[i] = f(x[i], ...), declared by their slopes
    shape.py         reshape, transpose, broadcast_to, concatenate, getitem, scatter_add, roll,
                     tril, triu, pad, index_update (and repeat, tile, flip, split, stacks on them)
    reductions.py    sum, mean, max, min, argmax, argmin, logsumexp, var, std, norm, softmax,
                     log_softmax
    linalg.py        matmul (and dot, outer on top)
    contractions.py  einsum (and tensordot, inner, kron, trace, diagonal, diag, cross on it)
    scans.py         cumsum, cumprod, prod, sort (and take_along_axis)
    conv.py          conv2d, conv2d_input_grad, conv2d_weight_grad, max_pool2d, max_pool2d_scatter,
                     max_pool2d_gather (and conv1d, avg_pool2d, adaptive_avg_pool2d on them)

Each declaration holds the forward on arrays, the derivative rules, the test domain and the
public name; `ag.NAME`, the Tensor methods and operators and the table-driven tests are
generated from it (see `autograd_lite/declaration.py`). Here, each primitive is also reachable by
its table name: `primitives.sum` is the sum primitive (keyword parameters, arrays or Tensors).
"""
from ..declaration import PRIMITIVES, Primitive, primitive
from . import elementwise, shape, reductions, linalg, contractions, scans, conv

globals().update(PRIMITIVES)
BUILTIN_PRIMITIVES = frozenset(PRIMITIVES)
