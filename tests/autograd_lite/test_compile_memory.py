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


def _l2_step(W, b):
    def step(x):
        h = x * W + b                       # two ufunc forwards: plannable
        loss = ag.tanh(h).sum() + (W * W).sum()
        W.grad = None
        b.grad = None
        loss.backward()
        with ag.no_grad():
            W.__isub__(0.1 * W.grad)
            b.__isub__(0.1 * b.grad)
        return loss
    return step


def _wb(dtype=np.float64):
    rng = np.random.default_rng(1)
    return (ag.tensor(rng.standard_normal((5, 4)).astype(dtype), requires_grad=True),
            ag.tensor(rng.standard_normal(4).astype(dtype), requires_grad=True))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_planned_replays_write_into_buffers_and_match_eager_bit_for_bit(dtype, monkeypatch):
    from autograd_lite.compile import fuse
    monkeypatch.setattr(fuse, "ENABLED", False)   # the same NumPy calls as eager, into buffers
    xs = [np.random.default_rng(i).standard_normal((5, 4)).astype(dtype) for i in range(8)]
    W, b = _wb(dtype)
    eager = [_l2_step(W, b)(x).data.item() for x in xs]
    W_eager = W.data.copy()
    W, b = _wb(dtype)
    compiled = ag.compile(_l2_step(W, b))
    replayed = [compiled(x).data.item() for x in xs]
    assert replayed == eager and np.array_equal(W.data, W_eager)
    plan = compiled.program.plan
    assert len(plan.buffer_of) >= 3            # x * W, + b, W * W
    assert "buffer plan: " in compiled.explain() and "-> buffer b" in compiled.explain()


def test_a_returned_result_and_a_view_of_one_are_never_planned_into_a_buffer(monkeypatch):
    from autograd_lite.compile import fuse
    monkeypatch.setattr(fuse, "ENABLED", False)   # bit-equal sums below
    W, b = _wb()

    @ag.compile
    def f(x):
        h = x * W          # returned through a view: must outlive the replay
        g = x + b          # returned itself
        return h[1:3], g, (h * g).sum()
    xs = [np.full((5, 4), float(i)) for i in range(1, 5)]
    kept = [f(x) for x in xs]
    for x, (view, g, total) in zip(xs, kept):
        assert np.array_equal(view.data, (x * W.data)[1:3])
        assert np.array_equal(g.data, x + b.data)
        assert total.data.item() == ((x * W.data) * (x + b.data)).sum()


def test_a_replay_that_starts_while_the_program_runs_uses_fresh_arrays():
    W, b = _wb()
    compiled = ag.compile(_l2_step(W, b))
    x = np.ones((5, 4))
    for _ in range(3):
        compiled(x)
    program = compiled.program
    buffers_before = {k: v for k, v in program.runner.__globals__.items() if k.startswith("b")}
    snapshot = {k: v.copy() for k, v in buffers_before.items()}
    program.busy.acquire()   # as if another thread were inside the planned replay
    try:
        W_before = W.data.copy()
        loss = compiled(2 * x)
    finally:
        program.busy.release()
    for k, v in buffers_before.items():
        assert np.array_equal(v, snapshot[k]), f"buffer {k} written by the re-entered replay"
    assert not np.array_equal(W.data, W_before) and np.isfinite(loss.data)


def _accumulating_step(W, x):
    def step(x):
        loss = ag.tanh(x @ W).sum() + (W * W).sum()
        loss.backward()   # no zero_grad: gradients add up over calls
        return loss
    return step


def test_gradients_add_into_an_unshared_grad_array_in_place_with_eager_bits(monkeypatch):
    from autograd_lite.compile import fuse
    monkeypatch.setattr(fuse, "ENABLED", False)   # the same kernels as eager
    rng = np.random.default_rng(3)
    xs = [rng.standard_normal((6, 5)) for _ in range(6)]
    start = rng.standard_normal((5, 4))
    W_eager, W = ag.tensor(start.copy(), requires_grad=True), ag.tensor(start.copy(), requires_grad=True)
    eager, compiled = _accumulating_step(W_eager, None), ag.compile(_accumulating_step(W, None))
    from autograd_lite import engine
    out_of_place = []
    accumulate = engine._accumulate_grad
    monkeypatch.setattr(engine, "_accumulate_grad", lambda *a: out_of_place.append(1) or accumulate(*a))
    for n, x in enumerate(xs):
        eager(x)
        out_of_place.clear()
        compiled(x)
        assert np.array_equal(W.grad.data, W_eager.grad.data)
        # call 1 sets the first gradient; call 2 (traced again) finds a grad array that the
        # first trace's program keeps (out of place); from the 3rd call on (replays, which let
        # go of the traced arrays) the sum goes into the call before's array
        assert len(out_of_place) == (1 if n == 1 else 0), n
    held = W.grad                 # a reference held outside: the next sum must not change it
    before = held.data.copy()
    compiled(xs[0])
    eager(xs[0])
    assert np.array_equal(held.data, before) and W.grad is not held
    assert np.array_equal(W.grad.data, W_eager.grad.data)
    view = W.grad.data[0]         # a view of the array: also out of place
    seen = view.copy()
    compiled(xs[1])
    eager(xs[1])
    assert np.array_equal(view, seen) and np.array_equal(W.grad.data, W_eager.grad.data)


def test_matrix_products_write_into_buffers_with_eager_bits_and_vector_products_stay_fresh(monkeypatch):
    from autograd_lite.compile import fuse
    monkeypatch.setattr(fuse, "ENABLED", False)
    rng = np.random.default_rng(5)
    start_W, start_v = rng.standard_normal((5, 4)).astype(np.float32), rng.standard_normal(4)

    def make(W, v):
        def step(x):
            W.grad = v.grad = None
            h = ag.tanh(x @ W)                       # 2-D products: forward and both rules planned
            loss = (h @ W.T).sum() + (h.astype(np.float64) @ v).sum()   # h @ v: a vector product
            loss.backward()
            return loss
        return step

    pairs = [(ag.tensor(start_W.copy(), requires_grad=True), ag.tensor(start_v.copy(), requires_grad=True))
             for _ in range(2)]
    eager, compiled = make(*pairs[0]), ag.compile(make(*pairs[1]))
    for _ in range(4):
        x = rng.standard_normal((6, 5)).astype(np.float32)
        assert eager(x).data.item() == compiled(x).data.item()
        for a, b in zip(pairs[0], pairs[1]):
            assert np.array_equal(a.grad.data, b.grad.data)
    from autograd_lite.primitives.linalg import matmul_p
    program = compiled.program   # unfused: the plan's step numbers are the program's
    kinds = []
    for n, step in enumerate(program.steps):
        if step.prim is matmul_p:
            operands = [program.values[i] for i in (step.ins if step.kind == "primitive" else step.ins[2:])]
            kinds.append((all(len(v.shape) == 2 for v in operands), n in program.plan.writers))
    # x @ W and its rule for W, h @ W.T and its two rules: planned; h @ v and its rules: fresh
    assert sorted(kinds) == [(False, False)] * 3 + [(True, True)] * 5


def test_one_cotangent_reaching_two_leaves_gives_them_separate_grad_arrays():
    a, b = ag.tensor(np.ones(3), requires_grad=True), ag.tensor(np.ones(3), requires_grad=True)

    @ag.compile
    def step():
        a.grad = b.grad = None
        (a + b).sum().backward()   # add's rules hand both leaves the same cotangent

    for _ in range(4):
        step()
        assert a.grad.data is not b.grad.data and not np.shares_memory(a.grad.data, b.grad.data)
        a.grad.data[0] = 7.0
        assert b.grad.data[0] == 1.0


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_fused_linear_writes_its_product_and_the_joint_rules_dx_into_buffers_with_eager_bits(
        dtype, monkeypatch):
    from autograd_lite import fused
    from autograd_lite.compile import fuse
    monkeypatch.setattr(fuse, "ENABLED", False)   # the plan's step numbers are the program's
    rng = np.random.default_rng(6)
    starts = [rng.normal(0, 0.3, (7, 5)), np.zeros(5), rng.normal(0, 0.3, (5, 3)), np.zeros(3)]

    def make(W, b, V, c):
        def step(x, labels):
            for p in (W, b, V, c):
                p.grad = None
            h = fused.linear(x, W, b, activation="sigmoid")
            loss = fused.softmax_cross_entropy(fused.linear(h, V, c), labels)
            loss.backward()
            return loss
        return step

    sets = [[ag.tensor(s.astype(dtype), requires_grad=True) for s in starts] for _ in range(2)]
    eager, compiled = make(*sets[0]), ag.compile(make(*sets[1]))
    for _ in range(4):
        x, labels = rng.standard_normal((6, 7)).astype(dtype), rng.integers(0, 3, 6)
        assert eager(x, labels).data.item() == compiled(x, labels).data.item()
        for a, b in zip(*sets):
            assert np.array_equal(a.grad.data, b.grad.data)
    program = compiled.program
    planned = [(s.kind, s.out) for n, s in enumerate(program.steps) if n in program.plan.writers
               and s.prim is fused._linear]
    # both forwards write into buffers; the second layer's joint rule writes dx (h's cotangent)
    # into one, its dW and db go to .grad (fresh); the first layer's dx is not wanted
    assert [kind for kind, _ in planned] == ["primitive", "primitive", "rule"]
    dx, dW, _ = planned[2][1]
    assert dx in program.plan.buffer_of and dW not in program.plan.buffer_of


def test_the_traced_calls_arrays_are_not_kept_alive_by_the_program():
    import gc
    import weakref
    W = ag.tensor(np.ones((5, 3)), requires_grad=True)

    @ag.compile
    def step(x):
        W.grad = None
        h = ag.tanh(x @ W)
        (h * h).sum().backward()
        return W.grad

    first = np.full((4, 5), 0.5)
    traced_input, traced_result = weakref.ref(first), weakref.ref(step(first).data)
    del first
    for _ in range(3):   # traced again to check, then replayed
        step(np.ones((4, 5)))
    gc.collect()
    assert traced_input() is None and traced_result() is None
    assert all(v is None or not isinstance(v, np.ndarray) or v.size == 1
               for v in step.program.env), "the program holds a traced call's arrays"
