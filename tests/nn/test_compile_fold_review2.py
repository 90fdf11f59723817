"""Review of the folded bias updates (5da11f2): cases where a compiled training step differed
from eager."""
import numpy as np

import nn
from tests.autograd_lite.test_compile_equivalence import batches
from tests.nn.test_compile_fold import run_both
from tests.nn.test_compile_training import bce_l2_step


def test_a_bias_made_a_view_of_another_weight_after_the_trace_gives_eager_values():
    """fold.py refuses to fold a parameter whose memory another value shares, but checks that
    only at trace time; a replay's guards check shape, dtype, requires_grad and writeability,
    not aliasing. Here hidden.0.bias becomes a view of a column of hidden.1.weight after the
    program is built: the folded bias update (in a loop after hidden.0.weight's kernel) then
    writes the weight before the l2 kernel of hidden.1.weight reads it, where eager reads it
    in the backward, before any update."""
    def setup():
        model = nn.MLP([6, 7, 5, 3], activation="tanh", dtype=np.float32, seed=0)
        return model, nn.SGD(model.parameters(), lr=0.5)

    def between(k, opt):
        if k == 3:   # after the first fused replay
            weight, bias = opt.params[2], opt.params[1]   # hidden.1.weight (7, 5), hidden.0.bias (7,)
            weight.data[:, 0] = bias.data
            bias.data = weight.data[:, 0]
    run_both(setup, bce_l2_step, batches(6, 3, 8, np.float32, steps=6), between)
