"""Careless and hostile use of the core: huge fan-in, in-place changes after recording, in-place
operators, threads, users' primitives whose rules return the wrong thing, a bad environment."""
from __future__ import annotations

import os
import subprocess
import sys
import time

import numpy as np
import pytest

import autograd_lite as ag
from autograd_lite import primitives as P


# ---------------------------------------------------------------- stack / concatenate fan-in
def test_stack_of_twenty_thousand_scalars_backpropagates_in_linear_time():
    n = 20_000
    xs = [ag.tensor(float(i), requires_grad=True) for i in range(n)]
    weights = np.arange(n, dtype=np.float64)
    loss = (ag.stack(xs) * weights).sum()
    start = time.perf_counter()
    loss.backward()
    seconds = time.perf_counter() - start
    assert [x.grad.item() for x in xs[:3]] + [xs[-1].grad.item()] == [0.0, 1.0, 2.0, n - 1.0]
    assert all(x.grad.item() == w for x, w in zip(xs, weights))
    # linear: about 0.1 s here; finding each slice by walking the inputs before it took minutes
    assert seconds < 3.0, f"backward through a stack of {n} scalars took {seconds:.1f} s"


@pytest.mark.parametrize("axis", [0, 1, -1])
def test_concatenate_joint_backward_equals_its_per_input_rule(axis):
    rng = np.random.default_rng(0)
    a = axis % 3
    xs = [rng.standard_normal(tuple(k if d == a else 2 + d for d in range(3))) for k in (1, 4, 2)]
    ans = np.concatenate(xs, axis=a)
    g = rng.standard_normal(ans.shape)
    wanted = (True, False, True)
    joint = P.concatenate.vjp_joint(g, ans, *xs, axis=a, wanted=wanted)
    assert joint[1] is None
    for i in (0, 2):
        np.testing.assert_array_equal(joint[i], P.concatenate.vjps[0](g, ans, *xs, axis=a, argnum=i))


# ---------------------------------------------------------------- environment
def test_an_unknown_kernel_backend_in_the_environment_warns_once_and_uses_the_default():
    env = dict(os.environ, AUTOGRAD_LITE_KERNELS="cuda")
    run = subprocess.run([sys.executable, "-c", "import autograd_lite as ag; print(ag.get_kernels())"],
                         env=env, capture_output=True, text=True, timeout=120,
                         cwd=os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "numba"
    assert "Traceback" not in run.stderr
    assert run.stderr.count("AUTOGRAD_LITE_KERNELS='cuda' is not a kernel backend") == 1
    assert "'numba' and 'numpy'" in run.stderr
