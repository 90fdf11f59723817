"""ag.compile: tracing, replay, the signature cache and strict tracing (unit tests of
autograd_lite/compile/; the spec-driven equivalence suite is test_compile_equivalence.py)."""
import warnings

import numpy as np
import pytest

import autograd_lite as ag


def _params(seed=0, dtype=np.float64):
    rng = np.random.default_rng(seed)
    W = ag.tensor(rng.standard_normal((4, 3)).astype(dtype), requires_grad=True, name="W")
    b = ag.tensor(np.zeros(3, dtype), requires_grad=True, name="b")
    return W, b


def _sgd_step(W, b):
    def step(x, lr):
        loss = ag.sigmoid(x @ W + b).sum() + (W * W).sum()
        W.grad = None
        b.grad = None
        loss.backward()
        with ag.no_grad():
            W.__isub__(lr * W.grad)
            b.__isub__(lr * b.grad)
        return loss
    return step


def _batches(n, shape=(5, 4), dtype=np.float64):
    return [np.random.default_rng(10 + i).standard_normal(shape).astype(dtype) for i in range(n)]


def test_replayed_sgd_step_is_bit_identical_to_eager_and_traces_once(monkeypatch):
    from autograd_lite.compile import fuse
    monkeypatch.setattr(fuse, "ENABLED", False)   # the same kernels as eager (fused: test_compile_fusion)
    xs = _batches(6)
    W, b = _params()
    eager = [_sgd_step(W, b)(x, 0.1).data.item() for x in xs]
    W_eager, b_eager = W.data.copy(), b.data.copy()
    W, b = _params()
    compiled = ag.compile(_sgd_step(W, b))
    replayed = [compiled(x, 0.1).data.item() for x in xs]
    assert replayed == eager
    assert np.array_equal(W.data, W_eager) and np.array_equal(b.data, b_eager)
    assert compiled.trace_count == 1 and compiled.cache_size == 1


def test_a_new_shape_or_value_traces_again_and_the_eighth_trace_warns():
    W, b = _params()
    compiled = ag.compile(_sgd_step(W, b))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        compiled(_batches(1, (5, 4))[0], 0.1)
        compiled(_batches(1, (6, 4))[0], 0.1)
        compiled(_batches(1, (6, 4))[0], 0.2)     # another value of a non-array argument
    assert compiled.trace_count == 3
    with pytest.warns(ag.CompileWarning, match="traced 8 times"):
        for n in range(7, 12):
            compiled(_batches(1, (n, 4))[0], 0.1)


def test_parameters_are_read_by_reference_and_a_reshaped_parameter_retraces():
    W, b = _params()
    f = ag.compile(lambda x: (x @ W + b).sum())
    x = _batches(1)[0]
    f(x)
    b.data[...] = 1.0                          # changed outside: the replay sees it
    assert np.isclose(f(x).data, (x @ W.data + 1.0).sum())
    W.data = np.ones((4, 3))                   # a new array: read at the next replay
    assert np.isclose(f(x).data, (x @ W.data + 1.0).sum())
    b.data = np.ones(1)                        # a new shape: a new trace, never a stale plan
    assert np.isclose(f(x).data, (x @ W.data + 1.0).sum())
    assert f.trace_count == 2


def test_reading_a_traced_value_names_the_line_and_the_fix():
    W, _ = _params()

    def step(x):
        loss = (x @ W).sum()
        if float(loss) > 0:   # the line the error must name
            loss = loss * 2
        return loss
    with pytest.raises(ag.TracingError, match=r"test_compile_capture\.py:\d+: `if float\(loss\) > 0") as info:
        ag.compile(step)(_batches(1)[0])
    assert "ag.where" in str(info.value) and "outside the compiled function" in str(info.value)
    for read in (lambda t: t.item(), lambda t: bool(t), lambda t: np.asarray(t), lambda t: t.numpy()):
        with pytest.raises(ag.TracingError):
            ag.compile(lambda x, read=read: read((x @ W).sum()))(_batches(1)[0])


def test_fallback_runs_eagerly_with_one_warning():
    W, _ = _params()

    def f(x):
        loss = (x @ W).sum()
        return loss * 2 if float(loss) > 0 else loss * 3
    compiled = ag.compile(fallback=True)(f)
    xs = _batches(3)
    with pytest.warns(ag.CompileWarning, match="runs eagerly"):
        first = compiled(xs[0])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        rest = [compiled(x) for x in xs[1:]]
    assert [t.data.item() for t in [first] + rest] == [f(x).data.item() for x in xs]


def test_comparisons_are_recorded_not_frozen():
    f = ag.compile(lambda x: ag.where(x > 0, x, 0.5 * x).sum())
    xs = _batches(3)
    for x in xs:
        expected = np.where(x > 0, x, 0.5 * x).sum()
        assert np.isclose(f(ag.tensor(x)).data, expected)
    assert f.trace_count == 1


def test_an_argument_converted_outside_the_primitives_is_refused():
    W, _ = _params(dtype=np.float32)
    f = ag.compile(lambda x: (ag.tensor(np.asarray(x, dtype=np.float32)) @ W).sum())
    with pytest.raises(ag.TracingError, match="argument 0"):
        f(_batches(1)[0])


def test_train_and_eval_select_different_programs_and_dropout_draws_as_eager():
    nn = pytest.importorskip("nn")

    def run(compiled):
        model = nn.MLP([4, 8, 3], activation="relu", dropout=0.5, seed=0)
        opt = nn.SGD(model, lr=0.1)

        def step(x, y):
            loss = nn.sparse_categorical_cross_entropy(model(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            return loss
        f = ag.compile(step) if compiled else step
        x, y = _batches(1, (6, 4))[0], np.array([0, 1, 2, 0, 1, 2])
        out = []
        for i in range(4):
            model.train(i != 2)
            if i == 3:
                opt.lr = 0.05
            out.append(f(x, y).data.item())
        return out, f
    eager, _ = run(False)
    replayed, f = run(True)
    assert replayed == eager
    assert f.trace_count == 2


def test_several_results_come_back_in_their_structure():
    W, _ = _params()
    f = ag.compile(lambda x: {"loss": (x @ W).sum(), "parts": (x @ W, 3), "W": W})
    x = _batches(2)
    f(x[0])
    out = f(x[1])
    assert out["W"] is W and out["parts"][1] == 3
    assert np.allclose(out["parts"][0].data, x[1] @ W.data)
    assert np.isclose(out["loss"].data, (x[1] @ W.data).sum())


def test_explain_lists_the_forward_the_backward_and_the_peak_memory():
    W, b = _params()
    compiled = ag.compile(_sgd_step(W, b))
    assert "not traced yet" in compiled.explain()
    compiled(_batches(1)[0], 0.1)
    text = compiled.explain()
    assert "matmul x0 W" in text and "vjp[matmul].1" in text and "accumulate_grad" in text
    assert "f64[5,3]" in text and "peak" in text


def test_a_branch_on_a_comparison_is_refused_and_masks_combined_by_numpy_are_recorded():
    with pytest.raises(ag.TracingError, match="mask"):
        ag.compile(lambda x: x * 2 if (x > 0).any() else x)(ag.tensor(_batches(1)[0]))
    f = ag.compile(lambda x: ag.where((x > 0) & (x < 1), x, 0 * x).sum())
    for x in _batches(3):
        assert np.isclose(f(ag.tensor(x)).data, np.where((x > 0) & (x < 1), x, 0).sum())
    assert f.trace_count == 1


def test_explain_and_to_dot_accept_a_compiled_function():
    W, _ = _params()
    f = ag.compile(lambda x: (x @ W).sum())
    f(_batches(1)[0])
    assert ag.explain(f, file=False) == f.explain() + "\n"
    dot = ag.to_dot(f)
    assert dot.startswith("digraph compiled") and '"matmul\\nf64[5,3]"' in dot and "s1 -> t0;" in dot


def test_a_second_call_that_traces_another_program_is_refused():
    W, _ = _params()

    def f(x):
        scale = np.abs(x).max()          # NumPy on the argument: out of the tracer's sight
        return (ag.tensor(x / scale) @ W).sum()
    compiled = ag.compile(f)
    xs = _batches(2)
    compiled(xs[0])
    with pytest.raises(ag.TracingError, match="traced twice with the same signature"):
        compiled(xs[1])
    quiet = ag.compile(f, fallback=True)
    quiet(xs[0])
    with pytest.warns(ag.CompileWarning, match="runs eagerly"):
        assert np.isclose(quiet(xs[1]).data, f(xs[1]).data)


def test_a_parameter_changed_through_data_inside_is_refused():
    W, _ = _params()

    def step(x):
        loss = (x @ W).sum()
        W.grad = None
        loss.backward()
        W.data -= 0.1 * W.grad.data        # not an operation a replay could repeat
        return loss
    with pytest.raises(ag.TracingError, match="changed in place outside the recorded operations"):
        ag.compile(step)(_batches(1)[0])


def test_eager_work_on_another_thread_is_not_recorded_into_a_trace():
    import threading
    W, _ = _params()
    inside, done = threading.Event(), threading.Event()

    def f(x):
        loss = (x @ W).sum()
        inside.set()
        done.wait(5)                        # the other thread works while this trace runs
        return loss
    compiled = ag.compile(f)
    runner = threading.Thread(target=compiled, args=(_batches(1)[0],))
    runner.start()
    inside.wait(5)
    v = ag.tensor(np.array([1.0, 2.0]), requires_grad=True)
    loss = (v * v).sum()
    loss.backward()
    assert float(loss) == 5.0 and np.array_equal(v.grad.data, [2.0, 4.0])
    done.set()
    runner.join(5)
    assert [s.label for s in compiled.program.steps] == ["matmul", "sum[axis=None, keepdims=False]"]


def test_the_fast_argument_check_sends_any_other_signature_to_the_general_path():
    calls = []

    @ag.compile
    def f(x, y):
        calls.append(1)   # the body runs only while tracing (twice per signature)
        return (ag.as_tensor(x) * y).sum()

    x, y = ag.tensor(np.ones(3), requires_grad=True), np.full(3, 2.0)
    for _ in range(4):
        assert f(x, y).data.item() == 6.0
    assert len(calls) == 2 and f._fast is not None
    x.data = np.ones(4)          # the same Tensor, another shape: traced again
    assert f(x, np.full(4, 3.0)).data.item() == 12.0 and len(calls) == 3
    z = np.full(4, 5.0)
    f(z, z)                      # the same array twice: another signature (aliasing)
    assert len(calls) == 4 and f(z, z).data.item() == 100.0 and len(calls) == 5
    with ag.no_grad():           # the grad mode is part of the signature
        assert f(x, z).data.item() == 20.0 and len(calls) == 6
    assert f(x.data.astype(np.float32), z).data.dtype == np.float64 and len(calls) == 7
    assert f(x.data, z).data.item() == 20.0 and f.trace_count == 6   # x.data: an array now


# each optimizer: its model's activation, the optimizer, the data's seed, the lr set at step 5
ONE_CALL_CASES = {
    "sgd": ("tanh", lambda nn, m: nn.SGD(m, lr=0.1, momentum=0.9, nesterov=True, weight_decay=1e-3), 3, 0.02),
    "adam": ("relu", lambda nn, m: nn.Adam(m, lr=0.01, weight_decay=1e-3), 4, 0.002),
}


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("kind", sorted(ONE_CALL_CASES))
def test_an_optimizer_step_eager_or_replayed_is_one_kernel_call_over_all_parameters_with_eager_bits(
        kind, dtype, monkeypatch):
    nn = pytest.importorskip("nn")
    from autograd_lite import kernels
    from tests.nn.test_compile_training import ce_step
    from tests.nn.test_optim_compiled import assert_same_bits
    activation, make_optimizer, seed, lr = ONE_CALL_CASES[kind]
    calls = []
    name = f"{kind}_update_many"
    many = getattr(kernels, name)
    monkeypatch.setattr(kernels, name, lambda *a, **k: calls.append(len(a[0])) or many(*a, **k))

    def make():
        model = nn.MLP([4, 5, 3], activation=activation, seed=0, dtype=dtype)   # same parameters
        opt = make_optimizer(nn, model)
        return model, opt, ce_step(model, opt)

    (m1, o1, eager), (m2, o2, step) = make(), make()
    compiled = ag.compile(step)
    rng = np.random.default_rng(seed)
    for i in range(8):
        if i == 5:
            o1.lr = o2.lr = lr            # read at every replay, never frozen
        x = rng.standard_normal((6, 4)).astype(dtype)
        labels = rng.integers(0, 3, 6)
        assert eager(x, labels).data.item() == compiled(x, labels).data.item()
    assert_same_bits(m1, o1, m2, o2)
    for s in o1.state:
        assert s.keys() == ({"velocity"} if kind == "sgd" else {"step", "m", "v"})
        if kind == "adam":
            assert s["step"] == 8
    # every step, eager, traced (calls 1, 2) or replayed (3..), is one call over all 4 parameters
    assert calls == [len(m2.parameters())] * 16


def test_sgd_update_many_refuses_a_gradient_of_another_size_and_declines_mixed_dtypes():
    from autograd_lite import kernels
    if kernels.get_kernels() != "numba":
        pytest.skip("sgd_update_many runs only with the Numba kernels")
    p, q = np.zeros(4), np.zeros(3)
    with pytest.raises(ValueError, match="another size than its parameter"):
        kernels.sgd_update_many((p, q), (np.ones(4), np.ones(2)), None, 0.1)
    # float32 next to float64: nothing changed, the caller updates one by one
    assert not kernels.sgd_update_many((p, q.astype(np.float32)), (np.ones(4), np.ones(3)), None, 0.1)
    assert np.array_equal(p, np.zeros(4))


def test_first_replays_started_by_several_threads_at_once_build_the_program_once():
    import threading
    W = ag.tensor(np.linspace(-1, 1, 30).reshape(6, 5))
    x = np.ones((8, 6))
    expected = (ag.sigmoid(x @ W) * 2 + 1).data
    errors, results = [], []
    for _ in range(10):
        f = ag.compile(lambda x: ag.sigmoid(x @ W) * 2 + 1)
        f(x), f(x)                    # traced, checked: the next call is the first replay
        barrier = threading.Barrier(4)

        def work():
            barrier.wait()
            try:
                results.extend(f(x).data for _ in range(3))
            except Exception as error:   # e.g. two busy locks: 'release unlocked lock'
                errors.append(repr(error))
        threads = [threading.Thread(target=work) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert not errors, errors[:2]
    assert len(results) == 120 and all(np.allclose(r, expected, rtol=1e-12) for r in results)
