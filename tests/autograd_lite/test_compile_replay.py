"""ag.compile's call path: the generated entry that checks a call and replays it in one function
(replay.entry), and the steps the runner writes as lines instead of calls."""
import sys
import threading

import numpy as np
import pytest

import autograd_lite as ag
from autograd_lite import engine
from autograd_lite.compile.replay import MISS, entry, holds


class _Settings:
    """A plain object whose settings a compiled function guards (as a module's are)."""

    def __init__(self, weight, layers):
        self.scale = 2.0
        self.weight = weight
        self.layers = layers
        self.mode = "train"


def _close(a, b):
    return np.allclose(a, b, rtol=1e-12, atol=0)   # a fused full sum adds in another order


def _guarded(settings):
    def f(x):
        engine.guard(settings)
        engine.guard(settings, "mode")
        y = (x @ settings.weight) * settings.scale
        return (y + settings.layers[0]).sum()
    return f


@pytest.fixture
def unfused(monkeypatch):
    """Steps run one by one (no Numba kernel to compile: what is tested here is the call)."""
    from autograd_lite.compile import fuse
    monkeypatch.setattr(fuse, "ENABLED", False)


def test_the_entry_misses_exactly_where_the_signature_or_holds_fails_and_replays_otherwise(unfused):
    W = ag.tensor(np.linspace(0.1, 1.2, 12).reshape(3, 4), requires_grad=True)
    b = ag.tensor(np.full(4, 0.5))
    settings = _Settings(W, [b])
    f = ag.compile(_guarded(settings))
    x = np.arange(15.0).reshape(5, 3)
    expected = _guarded(settings)(x).data
    for _ in range(3):   # traced, traced again and checked, first replay (which makes the entry)
        f(x)
    entry, program = f._fast, f.program
    assert entry is not None and _close(entry((x,)).data, expected)

    def setting(name, value):
        def change():
            old = getattr(settings, name)
            setattr(settings, name, value)
            return lambda: setattr(settings, name, old)
        return change

    def attribute(obj, name, value):
        def change():
            old = getattr(obj, name)
            setattr(obj, name, value)
            return lambda: setattr(obj, name, old)
        return change

    def removed():
        old = settings.scale
        del settings.scale
        return lambda: setattr(settings, "scale", old)

    guards_and_parameters = [
        setting("scale", 3.0), setting("mode", "eval"), removed,
        setting("weight", ag.tensor(W.data.copy(), requires_grad=True)),   # an equal, other Tensor
        setting("layers", [ag.tensor(b.data.copy())]), setting("layers", [b, b]),
        setting("layers", b),
        attribute(W, "data", W.data.astype(np.float32)), attribute(W, "data", np.ones((3, 5))),
        attribute(W, "requires_grad", False)]
    for change in guards_and_parameters:
        undo = change()
        assert not holds(program) and entry((x,)) is MISS
        undo()
        assert holds(program) and _close(entry((x,)).data, expected)
    settings.layers = [b]   # a new list of the same objects still fits
    assert _close(entry((x,)).data, expected)
    arguments = [(x.astype(np.float32),), (np.ones((6, 3)),), (ag.tensor(x),), (x, x), ((x,),),
                 (x.tolist(),)]
    for args in arguments:
        assert entry(args) is MISS
    with ag.no_grad():
        assert entry((x,)) is MISS
    assert f.trace_count == 1   # nothing above traced again


def test_tensor_arguments_and_their_aliasing_are_checked_by_the_entry(unfused):
    @ag.compile
    def f(a, b):
        return (a * b).sum()

    a = ag.tensor(np.arange(3.0), requires_grad=True)
    z = np.full(3, 2.0)
    for _ in range(3):
        f(a, z)
    entry = f._fast
    assert entry((a, z)).data == 6.0
    other = ag.tensor(np.arange(3.0))   # requires_grad differs
    assert entry((other, z)) is MISS and entry((a.data, z)) is MISS and entry((a, a.data)) is MISS
    assert f(other, z).data == 6.0 and f(a, a.data).data == 5.0


def test_a_signature_met_again_gets_its_entry_back_instead_of_a_new_one(monkeypatch, unfused):
    W = ag.tensor(np.linspace(0.1, 1.2, 12).reshape(3, 4), requires_grad=True)
    settings = _Settings(W, [ag.tensor(np.zeros(4))])
    f = ag.compile(_guarded(settings))
    x = np.ones((5, 3))
    for mode in ["train", "eval"] * 3:   # one signature, two programs (the guarded mode)
        settings.mode = mode
        f(x)
    made = []
    package = sys.modules["autograd_lite.compile"]   # (ag.compile is the function)
    monkeypatch.setattr(package, "entry", lambda *a: made.append(1) or entry(*a))
    for mode in ["train", "eval"] * 5:
        settings.mode = mode
        assert _close(f(x).data, _guarded(settings)(x).data)
    assert made == [] and f.trace_count == 2


def test_a_program_without_buffers_replays_from_several_threads_at_once_without_the_lock(
        unfused, monkeypatch):
    from autograd_lite.compile import plan
    monkeypatch.setattr(plan, "ENABLED", False)   # every result a fresh array: no buffers
    a, b, c = (ag.tensor(np.array([v]), requires_grad=True) for v in (1.5, -2.0, 0.25))

    def step(x):
        return (a * x + c * b).sum()
    f = ag.compile(step)
    for _ in range(3):
        f(np.array([1.0]))
    program = f.program
    assert not program.plan.buffers and program.plain_runner is program.runner
    program.busy.acquire()   # taken by nobody else: a replay does not wait for it
    try:
        assert f(np.array([2.0])).data == 2.5
    finally:
        program.busy.release()
    results, errors = [], []
    barrier = threading.Barrier(4)

    def work(k):
        barrier.wait()
        try:
            results.extend((k, f(np.array([float(k)])).data.item()) for _ in range(200))
        except Exception as error:
            errors.append(repr(error))
    threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and len(results) == 800
    assert all(value == 1.5 * k - 0.5 for k, value in results)


@pytest.mark.parametrize("fused", [False, True])
@pytest.mark.parametrize("held", [False, True])
def test_first_gradients_written_as_lines_copy_shared_cotangents_cast_dtypes_and_keep_held_grads(
        held, fused, monkeypatch):
    from autograd_lite.compile import fuse
    monkeypatch.setattr(fuse, "ENABLED", fused)   # unfused, u and v get the add's one cotangent
    rng = np.random.default_rng(5)
    start = [rng.standard_normal(4).astype(np.float32)] + [rng.standard_normal(4) for _ in range(2)]

    def make():
        W, u, v = (ag.tensor(s.copy(), requires_grad=True) for s in start)

        def step(x):
            W.grad = u.grad = v.grad = None
            # u and v get one cotangent (an add's), W a float64 one cast to its float32
            ((W * x) + (u + v) * x).sum().backward()
        return W, u, v, step
    W, u, v, step = make()
    We, ue, ve, eager = make()
    f = ag.compile(step)
    for n in range(6):
        x = rng.standard_normal(4)
        kept = (W.grad, u.grad) if held and W.grad is not None else None
        before = [k.data.copy() for k in kept] if kept else None
        f(x)
        eager(x)
        for t, e in ((W, We), (u, ue), (v, ve)):
            assert t.grad.dtype == e.grad.dtype and np.array_equal(t.grad.data, e.grad.data)
        assert W.grad.dtype == np.float32 and u.grad.data is not v.grad.data
        u.grad.data[0] += 1.0   # an in-place change to one grad does not reach the other
        assert v.grad.data[0] == ve.grad.data[0]
        u.grad.data[0] -= 1.0
        if kept:
            assert all(np.array_equal(k.data, b) for k, b in zip(kept, before))
            assert W.grad is not kept[0] and u.grad is not kept[1]
    # a fused kernel's results are new arrays (fn.fresh): handed over as they are, no copy
    assert ("copy(" in f.program.runner.source) is not fused


def test_a_second_backward_in_one_replay_adds_into_the_first_gradient_in_place(monkeypatch):
    from autograd_lite.compile import fuse
    monkeypatch.setattr(fuse, "ENABLED", False)   # the same kernels as eager
    W, W_eager = (ag.tensor(np.array([0.5, -1.0, 2.0]), requires_grad=True) for _ in range(2))

    def make(W):
        def step(x):
            W.grad = None
            loss = (W * x).sum()
            loss.backward(retain_graph=True)
            loss.backward()   # the first gradient's array is W.grad's alone: summed into it
        return step
    compiled, eager = ag.compile(make(W)), make(W_eager)
    out_of_place = []
    accumulate = engine._accumulate_grad
    for n in range(5):
        x = np.array([1.0, 2.0, 3.0]) * (n + 1)
        if n == 4:   # replays from here on: the local names of the first sum are let go
            monkeypatch.setattr(engine, "_accumulate_grad",
                                lambda *a: out_of_place.append(1) or accumulate(*a))
        compiled(x)
        eager(x)
        assert np.array_equal(W.grad.data, W_eager.grad.data)
    assert out_of_place == [1, 1]   # eager's two backwards; the replay's sum went in place
