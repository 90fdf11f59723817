"""Careless and hostile use of the core: huge fan-in, in-place changes after recording, in-place
operators, threads, users' primitives whose rules return the wrong thing, a bad environment."""
from __future__ import annotations

import os
import subprocess
import sys
import threading
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


# ---------------------------------------------------------------- threads
def _in_threads(n_threads: int, work) -> None:
    """Run work(thread_index) on n_threads threads started together; re-raise the first error."""
    barrier = threading.Barrier(n_threads)
    errors = []

    def run(k: int) -> None:
        try:
            barrier.wait()
            work(k)
        except BaseException as error:  # handed to the main thread below
            errors.append(error)

    threads = [threading.Thread(target=run, args=(k,)) for k in range(n_threads)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]


def test_backward_on_two_threads_sharing_a_parameter_loses_no_update():
    # w is large enough that NumPy releases the GIL while adding into .grad, which is when the
    # other thread can read the old .grad: without the lock about a fifth of the updates vanish
    w = ag.tensor(np.zeros(20_000), requires_grad=True)
    rounds = 1000

    def work(k: int) -> None:
        x = np.full(20_000, 1.0 + k)
        for _ in range(rounds):
            (w * x).sum().backward()

    _in_threads(2, work)
    np.testing.assert_array_equal(w.grad.data, np.full(20_000, rounds * (1.0 + 2.0)))


def test_anomaly_mode_on_one_thread_does_not_reach_another():
    inside = threading.Event()
    done = threading.Event()
    seen = {}

    def anomaly_thread(_: int) -> None:
        with ag.detect_anomaly():
            inside.set()
            seen["enabled here"] = ag.is_anomaly_enabled()
            done.wait(timeout=30)

    def plain_thread(_: int) -> None:
        inside.wait(timeout=30)
        try:
            seen["enabled there"] = ag.is_anomaly_enabled()
            x = ag.tensor(np.array([0.0, 1.0]), requires_grad=True)
            with np.errstate(divide="ignore"):
                for _ in range(200):
                    y = ag.log(x)          # -inf at 0: an anomaly, but not on this thread
                    y.sum().backward()
            seen["log"] = y.data[0]
        finally:
            done.set()

    _in_threads(2, lambda k: (anomaly_thread, plain_thread)[k](k))
    assert seen == {"enabled here": True, "enabled there": False, "log": -np.inf}
    assert not ag.is_anomaly_enabled()
    assert not ag.engine.apply_hooks and not ag.engine.backward_hooks


def test_anomaly_mode_still_raises_on_its_own_thread_while_another_runs():
    stop = threading.Event()
    raised = []

    def busy(_: int) -> None:
        x = ag.tensor(np.ones(3), requires_grad=True)
        while not stop.is_set():
            (x * 2).sum().backward()

    def anomalous(_: int) -> None:
        try:
            x = ag.tensor(np.array([0.0, 1.0]), requires_grad=True)
            with np.errstate(divide="ignore"), ag.detect_anomaly():
                try:
                    ag.log(x)
                except ag.AnomalyError as error:
                    raised.append(str(error))
        finally:
            stop.set()

    _in_threads(2, lambda k: (busy, anomalous)[k](k))
    assert len(raised) == 1 and "forward of 'log'" in raised[0]
