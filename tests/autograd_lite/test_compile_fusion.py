"""ag.compile's fusion (autograd_lite/compile/fuse.py): runs of elementwise steps, read off the
primitives' scalar declarations, replayed as one generated Numba kernel each, cached on disk."""
import glob
import os

import numpy as np
import pytest

import autograd_lite as ag
from autograd_lite.compile import fuse

RTOL = {np.float32: 1e-6, np.float64: 1e-12}


@pytest.fixture(autouse=True)
def _cache(tmp_path_factory, monkeypatch):
    folder = tmp_path_factory.getbasetemp() / "fused-kernels"   # shared by this run's tests
    monkeypatch.setenv("AUTOGRAD_LITE_COMPILE_CACHE", str(folder))
    return folder


def _mlp(dtype, seed=0):
    rng = np.random.default_rng(seed)
    W = ag.tensor(rng.normal(0, 0.3, (6, 5)).astype(dtype), requires_grad=True)
    b = ag.tensor(rng.normal(0, 0.1, 5).astype(dtype), requires_grad=True)
    V = ag.tensor(rng.normal(0, 0.3, (5, 3)).astype(dtype), requires_grad=True)
    return W, b, V


def _step(W, b, V, lam=1e-2):
    """The README tour's step: x @ W + b, sigmoid, a squared error, L2 as (W * W).sum()."""
    def step(x, y):
        z = ag.sigmoid(x @ W + b) @ V
        loss = ((z - y) * (z - y)).sum() + lam * (W * W).sum()
        for p in (W, b, V):
            p.grad = None
        loss.backward()
        with ag.no_grad():
            for p in (W, b, V):
                p.__isub__(0.1 * p.grad)
        return loss
    return step


def _data(dtype, n=20):
    rng = np.random.default_rng(5)
    return [(rng.random((4, 6)).astype(dtype), rng.random((4, 3)).astype(dtype)) for _ in range(n)]


@pytest.mark.parametrize("full_sums", [False, True])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_a_fused_training_step_matches_eager_over_20_steps(dtype, full_sums, monkeypatch):
    monkeypatch.setattr(fuse, "FUSE_FULL_SUMS", full_sums)
    batches = _data(dtype)
    params = _mlp(dtype)
    eager = [_step(*params)(x, y).data.item() for x, y in batches]
    expected = [p.data.copy() for p in params]
    params = _mlp(dtype)
    compiled = ag.compile(_step(*params))
    losses = [compiled(x, y).data.item() for x, y in batches]
    np.testing.assert_allclose(losses, eager, rtol=RTOL[dtype])
    for p, e in zip(params, expected):
        np.testing.assert_allclose(p.data, e, rtol=RTOL[dtype], atol=RTOL[dtype] * np.abs(e).max())
    groups = compiled.program.fusion
    names = [g.name for g in groups]
    # x @ W + b then sigmoid; (W * W).sum(); its gradient 2 g W summed in one array; the
    # sigmoid's backward with the bias gradient's sum
    assert any("add" in n and "sigmoid" in n for n in names), names
    assert any(n.startswith("fused[multiply, sum") for n in names) == full_sums, names
    assert any("vjp[multiply].0" in n and "add_into" in n for n in names), names
    assert any("vjp[sigmoid].0" in n and "unbroadcast" in n for n in names), names
    text = compiled.explain()
    assert "kernel 0: " in text and "[kernel 1]" in text


def test_chains_of_arithmetic_fuse_to_the_eager_bits():
    """+ - * / and a bias gradient's sum over rows, rounded per step as eager stores them."""
    rng = np.random.default_rng(2)
    W = ag.tensor(rng.random((7, 5)) + 0.5, requires_grad=True)
    b = ag.tensor(rng.random(5), requires_grad=True)

    def f(x):
        h = (x * W + b) / W - x
        loss = (h @ np.ones((5, 2))).sum()
        W.grad = None
        b.grad = None
        loss.backward()
        return loss, W.grad, b.grad
    xs = [rng.random((7, 5)) for _ in range(4)]
    eager = [tuple(np.array(v.data) for v in f(x)) for x in xs]
    compiled = ag.compile(f)
    fused = [tuple(np.array(v.data) for v in compiled(x)) for x in xs]
    assert compiled.program.fusion, compiled.explain()
    for got, want in zip(fused, eager):
        for g, w in zip(got, want):
            assert np.array_equal(g, w)


def test_a_returned_value_of_a_fused_group_is_not_overwritten_by_the_next_call():
    W, b, _ = _mlp(np.float64)

    @ag.compile
    def f(x):
        return ag.sigmoid(x * W + b)
    xs = [np.full((6, 5), float(i)) for i in range(4)]
    kept = [f(x) for x in xs]
    assert f.program.fusion
    for x, h in zip(xs, kept):
        np.testing.assert_allclose(h.data, 1 / (1 + np.exp(-(x * W.data + b.data))), rtol=1e-12)


def test_kernels_are_written_to_the_cache_folder_with_numbas_index(_cache):
    params = _mlp(np.float32)
    compiled = ag.compile(_step(*params))
    for x, y in _data(np.float32, 3):
        compiled(x, y)
    sources = glob.glob(os.path.join(str(_cache), "fused_*.py"))
    assert sources and fuse.cache_dir() == str(_cache)
    indexes = glob.glob(os.path.join(str(_cache), "**", "*.nbi"), recursive=True)
    assert indexes, "Numba wrote no cache index for the fused kernels"


def test_without_fusion_every_step_runs_on_its_own(monkeypatch):
    monkeypatch.setattr(fuse, "ENABLED", False)
    compiled = ag.compile(_step(*_mlp(np.float64)))
    for x, y in _data(np.float64, 3):
        compiled(x, y)
    assert compiled.program.fusion == [] and "kernel 0" not in compiled.explain()


def test_bias_and_relu_fuse_forward_and_backward_to_the_eager_bits():
    rng = np.random.default_rng(3)
    W = ag.tensor(rng.standard_normal((6, 8)).astype(np.float32), requires_grad=True)
    b = ag.tensor(rng.standard_normal(8).astype(np.float32), requires_grad=True)

    def f(x):
        loss = (ag.relu(x @ W + b) @ np.ones((8, 1), np.float32)).sum()
        W.grad = None
        b.grad = None
        loss.backward()
        return loss, W.grad, b.grad
    xs = [rng.standard_normal((5, 6)).astype(np.float32) for _ in range(4)]
    eager = [tuple(np.array(v.data) for v in f(x)) for x in xs]
    compiled = ag.compile(f)
    fused = [tuple(np.array(v.data) for v in compiled(x)) for x in xs]
    names = [g.name for g in compiled.program.fusion]
    assert any("relu" in n and "add" in n for n in names) and \
        any("vjp[relu].0" in n and "unbroadcast" in n for n in names), names
    for got, want in zip(fused, eager):
        for g, w in zip(got, want):
            assert np.array_equal(g, w)


def test_a_kernel_that_does_not_compile_leaves_the_whole_program_unfused(monkeypatch):
    def broken(source):
        raise RuntimeError("no kernel today")
    monkeypatch.setattr(fuse, "_load", broken)
    params = _mlp(np.float64)
    batches = _data(np.float64, 4)
    eager_step = _step(*_mlp(np.float64))
    eager = [eager_step(x, y).data.item() for x, y in batches]
    compiled = ag.compile(_step(*params))
    with pytest.warns(RuntimeWarning, match="did not compile"):
        losses = [compiled(x, y).data.item() for x, y in batches]
    assert compiled.program.fusion == [] and losses == eager


def test_a_chain_whose_values_nobody_reads_writes_nothing():
    W, b, _ = _mlp(np.float64)

    @ag.compile
    def f(x):
        unused = ag.exp(x * W + b)   # noqa: F841  (a dead chain)
        return (x * W).sum()
    xs = [np.full((6, 5), float(i)) for i in range(4)]
    results = [f(x).data.item() for x in xs]
    np.testing.assert_allclose(results, [(x * W.data).sum() for x in xs], rtol=1e-12)
    assert [len(g.writes) for g in f.program.fusion] == [1], f.explain()   # the sum only


def test_the_forward_of_a_backward_whose_rules_read_only_the_inputs_is_not_run():
    """(a * b + c).sum().backward(): the rules of +, * and sum read a, b and the seed, not
    the forward's values, so after fusion nothing reads the forward kernel and it goes."""
    rng = np.random.default_rng(0)
    a, b, c = (ag.tensor(rng.normal(size=3), requires_grad=True) for _ in range(3))

    @ag.compile
    def step():
        a.grad = b.grad = c.grad = None
        (a * b + c).sum().backward()
    for _ in range(3):
        step()
    forward, backward = step.program.fusion
    assert forward.name.startswith("fused[multiply, add, sum"), step.explain()
    assert set(forward.steps) <= step.program.dropped and not set(backward.steps) & step.program.dropped
    assert all(v is not forward.step.fn for v in step.program.runner.__globals__.values())
    assert "(unused: not run)" in step.explain()
    np.testing.assert_array_equal(a.grad.data, b.data)
    np.testing.assert_array_equal(b.grad.data, a.data)
    np.testing.assert_array_equal(c.grad.data, np.ones(3))


def test_a_changed_kernels_module_gives_new_kernel_files(_cache, monkeypatch):
    # Numba's cache=True checks only the kernel's own file, not kernels/jitted.py's functions
    # that it inlines: the file's name must change with them, or old machine code would run
    source = "from numba import njit\n\n@njit(cache=True)\ndef kernel(x):\n    return x + 1\n"
    fuse._load(source)
    before = set(glob.glob(os.path.join(str(_cache), "fused_*.py")))
    monkeypatch.setattr(fuse, "_kernels_stamp", lambda: "kernels/jitted.py changed")
    assert fuse._load(source)(1) == 2
    assert len(set(glob.glob(os.path.join(str(_cache), "fused_*.py"))) - before) == 1


def test_the_l2_gradient_moves_to_the_weight_gradient_sum_and_fuses_with_it():
    """`2 * W * g` is computed early in the reverse sweep, the matrix product's gradient of W
    late; the elementwise steps move down to their use, so the L2 term, its two halves' sum and
    the sum with x^T delta are one pass over W's shape."""
    params = _mlp(np.float32)
    compiled = ag.compile(_step(*params))
    for x, y in _data(np.float32, 3):
        compiled(x, y)
    program = compiled.program
    matmul_grads = {s.out for s in program.steps if s.label == "vjp[matmul].1"}
    fused_with = [g for g in program.fusion
                  if any(program.steps[n].label == "vjp[multiply].0" for n in g.steps)
                  and matmul_grads.intersection(g.reads)]
    assert fused_with, compiled.explain()


def test_no_step_moves_across_an_in_place_update_of_what_it_reads():
    """y = W * 2 before W is changed in place must see the old W, though its use (y + x) is
    an elementwise step it could fuse with after the update."""
    W = ag.tensor(np.arange(6.0).reshape(2, 3), requires_grad=True)

    def f(x):
        y = W * 2.0
        with ag.no_grad():
            W.__iadd__(1.0)
        return y + x
    compiled = ag.compile(f)
    x = np.ones((2, 3))
    got = [compiled(x).data.copy() for _ in range(4)]
    W.data[...] = np.arange(6.0).reshape(2, 3)
    want = [f(x).data.copy() for _ in range(4)]
    for g, w in zip(got, want):
        assert np.array_equal(g, w)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_a_run_of_0d_steps_is_one_python_function_with_the_eager_bits(dtype):
    """The arithmetic on 0-d values (a loss's terms, their rules) runs on NumPy scalars of the
    dtype in one generated function: the same rounding as eager's 0-d ufunc calls."""
    rng = np.random.default_rng(3)
    u, v = (ag.tensor(np.asarray(rng.random(), dtype), requires_grad=True) for _ in range(2))

    def f(x):
        loss = (u * 3.0 + v * x) * u - v / 7.0 + 0.1 * (u * v)
        u.grad = v.grad = None
        loss.backward()
        return loss, u.grad, v.grad
    xs = [np.asarray(rng.random(), dtype) for _ in range(5)]
    eager = [[np.asarray(t.data).copy() for t in f(x)] for x in xs]
    compiled = ag.compile(f)
    got = [[np.asarray(t.data).copy() for t in compiled(x)] for x in xs]
    assert any(g.shape == () and len(g.steps) >= 5 for g in compiled.program.fusion), compiled.explain()
    for g_row, e_row in zip(got, eager):
        for g, e in zip(g_row, e_row):
            assert g.dtype == e.dtype and g.tobytes() == e.tobytes()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_dropout_fuses_with_the_bias_and_relu_and_keeps_the_eager_bits(dtype):
    """Dropout declares its element (`x * scale if u >= p else 0`, p and scale from its
    parameter): its forward joins the bias and ReLU kernel, its rule the ReLU rule's."""
    rng = np.random.default_rng(4)
    W = ag.tensor(rng.normal(0, 0.5, (6, 8)).astype(dtype), requires_grad=True)
    b = ag.tensor(rng.normal(0, 0.1, 8).astype(dtype), requires_grad=True)

    def make():
        stream = np.random.default_rng(9)

        def f(x):
            h = ag.fused.dropout(ag.relu(x @ W + b), 0.3, stream)
            loss = (h * h).sum()
            W.grad = b.grad = None
            loss.backward()
            return loss, W.grad, b.grad
        return f
    xs = [rng.normal(size=(5, 6)).astype(dtype) for _ in range(4)]
    eager_f, compiled = make(), ag.compile(make())
    eager = [[np.asarray(t.data).copy() for t in eager_f(x)] for x in xs]
    got = [[np.asarray(t.data).copy() for t in compiled(x)] for x in xs]
    names = [g.name for g in compiled.program.fusion]
    assert any("relu" in n and "dropout" in n and "add" in n for n in names), names
    assert any("vjp[dropout].0" in n and "vjp[relu].0" in n for n in names), names
    for g_row, e_row in zip(got, eager):
        np.testing.assert_array_equal(g_row[1], e_row[1])   # the gradients: the same bits
        np.testing.assert_array_equal(g_row[2], e_row[2])
        np.testing.assert_allclose(g_row[0], e_row[0], rtol=1e-6)   # the loss: a fused full sum


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_a_fused_full_sum_gives_a_writeable_0d_array_as_eager_does(dtype):
    W = ag.tensor(np.linspace(0.1, 1, 20).reshape(4, 5).astype(dtype), requires_grad=True)
    compiled = ag.compile(lambda: (W * W).sum())
    for _ in range(3):
        r = compiled()
    assert any(g.members[-1].reduce == "all" for g in compiled.program.fusion), compiled.explain()
    eager = (W * W).sum()
    assert type(r.data) is type(eager.data) is np.ndarray and r.data.dtype == dtype
    np.testing.assert_allclose(r.data, eager.data, rtol=1e-6)
    with ag.no_grad():
        r += 1.0
    r.data[...] = 0


@pytest.mark.parametrize("op", ["divide", "multiply"])
def test_a_full_sum_of_one_operation_adds_in_float64_with_numpys_error_model(op):
    """(a / b).sum() and (a * b).sum() are one operation then the sum: the kernel adds the
    results in float64 directly; a division by zero gives inf and nan as eager's does, not an
    exception."""
    a = ag.tensor(np.array([[1.0, -2.0, 0.0], [3.0, 0.5, 2.0]], np.float32), requires_grad=True)
    b = ag.tensor(np.array([[0.0, 0.0, 0.0], [2.0, 4.0, 8.0]], np.float32))
    c = ag.tensor(np.array([[1.0, 3.0, 5.0], [2.0, 4.0, 8.0]], np.float32))
    fn = (lambda x, y: (x / y).sum()) if op == "divide" else (lambda x, y: (x * y).sum())
    compiled = ag.compile(fn)
    with np.errstate(divide="ignore", invalid="ignore"):
        for y in (c, c, b, c, b):
            got, expected = compiled(a, y), fn(a, y)
            np.testing.assert_allclose(got.data, expected.data, rtol=1e-6)
    (group,) = compiled.program.fusion
    kernel = group.step.fn.__globals__["kernel"]
    assert kernel.targetoptions["fastmath"] and kernel.targetoptions["error_model"] == "numpy"
