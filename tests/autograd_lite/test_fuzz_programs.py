"""Random programs from the primitive table: reverse mode, forward mode and finite differences
agree on every one (`pytest --slow` runs many more)."""
import numpy as np
from hypothesis import given, strategies as st

import autograd_lite as ag
from autograd_lite.testing import programs


def _directional_difference(program, inputs, directions, eps=1e-6):
    plus = program(*[ag.tensor(x + eps * u) for x, u in zip(inputs, directions)]).data
    minus = program(*[ag.tensor(x - eps * u) for x, u in zip(inputs, directions)]).data
    return (plus - minus) / (2 * eps)


@given(program=programs(), seed=st.integers(0, 2 ** 16))
def test_reverse_forward_and_finite_differences_agree(program, seed):
    rng = np.random.default_rng(seed)
    inputs = program.inputs
    u = [rng.standard_normal(x.shape) for x in inputs]            # input directions
    out, Ju = ag.jvp(program, tuple(inputs), tuple(u))             # forward mode
    v = rng.standard_normal(np.shape(out))                         # output cotangent
    leaves = [ag.tensor(x, requires_grad=True) for x in inputs]
    result = program(*leaves)
    JTv = ag.autograd_grad(result, leaves, grad_outputs=v) if result.requires_grad else \
        [ag.tensor(np.zeros_like(x)) for x in inputs]             # reverse mode
    numeric = _directional_difference(program, inputs, u)
    np.testing.assert_allclose(np.asarray(out), result.data, rtol=1e-12, atol=1e-12)
    scale = 1 + np.max(np.abs(numeric), initial=0)
    np.testing.assert_allclose(Ju, numeric, rtol=1e-4, atol=1e-5 * scale, err_msg=repr(program))
    forward_side = float(np.sum(v * Ju))
    reverse_side = float(sum(np.sum(g.data * d) for g, d in zip(JTv, u)))
    assert abs(forward_side - reverse_side) <= 1e-8 * (1 + abs(forward_side)), repr(program)
