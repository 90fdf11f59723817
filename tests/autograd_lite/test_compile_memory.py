"""ag.compile: a steady-state replay of a training step does not fault in new memory (minor page
faults counted with getrusage over 50 replays: a count, not a timing)."""
import sys

import numpy as np
import pytest

import autograd_lite as ag

resource = pytest.importorskip("resource")


@pytest.mark.skipif(sys.platform != "linux", reason="minor page faults are counted as on Linux")
def test_fifty_replays_of_the_784_100_10_step_fault_in_almost_no_pages():
    nn = pytest.importorskip("nn")
    rng = np.random.default_rng(0)
    W = ag.tensor(rng.normal(0, 0.05, (784, 100)).astype(np.float32), requires_grad=True)
    b = ag.tensor(np.zeros(100, np.float32), requires_grad=True)
    V = ag.tensor(rng.normal(0, 0.05, (100, 10)).astype(np.float32), requires_grad=True)
    c = ag.tensor(np.zeros(10, np.float32), requires_grad=True)
    opt = nn.SGD([W, b, V, c], lr=0.1)

    @ag.compile
    def step(x, y):
        z = ag.sigmoid(x @ W + b) @ V + c
        loss = nn.binary_cross_entropy_with_logits(z, y) + 1e-4 / 2 * ((W * W).sum() + (V * V).sum())
        opt.zero_grad()
        loss.backward()
        opt.step()
        return loss
    x = rng.random((100, 784), dtype=np.float32)
    y = np.eye(10, dtype=np.float32)[rng.integers(0, 10, 100)]
    for _ in range(10):   # trace, check, and let the allocator settle
        step(x, y)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(50):
        step(x, y)
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
    assert step.trace_count == 1
    assert faults <= 50, f"{faults} minor page faults in 50 replays (at most 1 per step expected)"
