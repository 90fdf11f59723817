"""Bugs found by the review of ag.compile's scheduling, fusion and call path (issue 14), each
as a test that failed before its fix."""
import numpy as np
import pytest

import autograd_lite as ag
from autograd_lite.compile import CompileWarning, TracingError


def test_the_read_only_in_place_error_names_the_operator_in_its_suggestion():
    """The message's suggestion `t = t + x` was printed as `t = t {symbol[:-1]} x` (a missing f)."""
    t = ag.tensor(np.broadcast_to(np.arange(3.0), (2, 3)))
    with pytest.raises(ValueError, match=r"read-only") as info:
        t += 1.0
    assert "`t = t + x`" in str(info.value) and "{" not in str(info.value)


def _vmap_step(W):
    def step(x):
        W.grad = None
        v = ag.vmap(lambda row: (row * W).sum())(x)
        loss = (v * v).sum()
        loss.backward()
        return loss
    return step


def test_vmap_inside_a_compiled_function_is_refused_by_name():
    """Traced, vmap's per-example nodes were recorded with one example's parameters (sum over
    axis=None) and replayed on the whole batch: the backward then crashed with a reshape error
    (or, where shapes broadcast, could give other numbers). Now the trace refuses it."""
    W = ag.tensor(np.linspace(-1, 1, 6), requires_grad=True)
    with pytest.raises(TracingError, match="ag.vmap inside a compiled function"):
        ag.compile(_vmap_step(W))(np.arange(48.0).reshape(8, 6) / 10)


def test_vmap_inside_a_compiled_function_with_fallback_runs_eagerly():
    x = np.arange(48.0).reshape(8, 6) / 10
    W = ag.tensor(np.linspace(-1, 1, 6), requires_grad=True)
    V = ag.tensor(np.linspace(-1, 1, 6), requires_grad=True)
    eager, compiled = _vmap_step(W), ag.compile(_vmap_step(V), fallback=True)
    with pytest.warns(CompileWarning, match="ag.vmap"):
        for _ in range(3):
            np.testing.assert_array_equal(compiled(x).data, eager(x).data)
            np.testing.assert_array_equal(V.grad.data, W.grad.data)
