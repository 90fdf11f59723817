"""ag.compile folds plain SGD's update into the kernel that computes each parameter's gradient
(autograd_lite/compile/fold.py): the weights and biases come out bit for bit as eager's, the
learning rate is read at every replay, the settings the fold depends on are guarded, versions
are counted, and where a replay could differ from eager (gradients accumulated across calls, a
parameter read after its gradient, momentum) nothing is folded."""
import importlib

import numpy as np
import pytest

import autograd_lite as ag
import nn
from tests.nn.test_compile_training import bce_l2_step, ce_step, labelled, mlp_setup, readme_step
from tests.autograd_lite.test_compile_equivalence import as_array, batches

fold = importlib.import_module("autograd_lite.compile.fold")
fuse = importlib.import_module("autograd_lite.compile.fuse")


def unfolded(compiled):
    """The compiled function with folding switched off while it runs (its program is built
    at its first replay)."""
    def call(*args):
        saved, fold.ENABLED = fold.ENABLED, False
        try:
            return compiled(*args)
        finally:
            fold.ENABLED = saved
    return call


def run_both(setup, make_step, calls, between=None, reference="eager"):
    """Compiled and a reference (eager, or "unfolded": compiled without folding) over `calls`;
    asserts the same losses, parameters, gradients and versions bit for bit after every call.
    Returns the compiled function."""
    eager_model, eager_opt = setup()
    model, opt = setup()
    eager, compiled = make_step(eager_model, eager_opt), ag.compile(make_step(model, opt))
    if reference == "unfolded":
        eager = unfolded(ag.compile(eager))
    for k, args in enumerate(calls):
        if between is not None:
            between(k, eager_opt)
            between(k, opt)
        got, expected = compiled(*args), eager(*args)
        np.testing.assert_array_equal(as_array(got), as_array(expected), err_msg=f"loss at call {k}")
        for (name, p), (_, q) in zip(model.named_parameters(), eager_model.named_parameters()):
            np.testing.assert_array_equal(p.data, q.data, err_msg=f"{name} after call {k}")
            np.testing.assert_array_equal(as_array(p.grad), as_array(q.grad), err_msg=f"{name}.grad, call {k}")
            assert p._version == q._version, f"{name}: version {p._version}, eager {q._version}"
    return compiled


def folded(compiled):
    return [line for line in compiled.explain().splitlines() if "SGD.update" in line]


class Weights:
    """The README tour's parameters held by hand (named_parameters for run_both)."""

    def __init__(self, dtype, seed=1):
        rng = np.random.default_rng(seed)
        shapes = [(6, 5), (5,), (5, 3), (3,)]
        self.params = [ag.tensor((rng.standard_normal(s) * 0.3).astype(dtype), requires_grad=True)
                       for s in shapes]

    def named_parameters(self):
        return [(f"p{k}", p) for k, p in enumerate(self.params)]


def by_hand_step(model, opt):
    return readme_step(model.params, opt)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_sgd_update_is_folded_into_the_gradient_kernels_of_a_step_written_by_hand(dtype):
    def setup():
        model = Weights(dtype)
        return model, nn.SGD(model.params, lr=0.5)
    # against the unfolded replay: the fused sigmoid and the fused (W * W).sum() agree with
    # eager to a few ulps only (tests/nn/test_compile_training.py checks that)
    compiled = run_both(setup, by_hand_step, batches(6, 3, 8, dtype), reference="unfolded")
    lines = folded(compiled)
    assert len(lines) == 4 and all("[kernel" in line for line in lines), compiled.explain()
    assert "Optimizer.step (the rest)" in compiled.explain()
    assert compiled.trace_count == 1


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_sgd_update_of_the_weights_is_folded_into_the_l2_penalty_kernels_of_an_mlp(dtype):
    compiled = run_both(lambda: mlp_setup(dtype), bce_l2_step, batches(6, 3, 8, dtype))
    lines = folded(compiled)
    # the weights' updates in their L2 kernels; the biases' (their gradients come from the fused
    # linear layers' joint rules) in loops after the first of those kernels
    assert len(lines) == 4 and all("[kernel" in line for line in lines), compiled.explain()
    assert compiled.trace_count == 1


def test_the_learning_rate_is_read_at_every_replay():
    def between(k, opt):
        opt.lr = 0.5 / (1 + k)   # a schedule, between calls
    compiled = run_both(lambda: mlp_setup(np.float32), bce_l2_step, batches(6, 3, 8, np.float32), between)
    assert compiled.trace_count == 1 and folded(compiled)


def test_weight_decay_is_folded_and_a_changed_setting_traces_again():
    def setup():
        model = nn.MLP([6, 5, 3], dtype=np.float64, seed=0)
        return model, nn.SGD(model.parameters(), lr=0.3, weight_decay=0.01)

    def between(k, opt):
        if k == 4:
            opt.weight_decay = 0.05
        if k == 6:
            opt.momentum = 0.9   # no longer foldable: velocities
    compiled = run_both(setup, bce_l2_step, batches(6, 3, 8, np.float64, steps=9), between)
    assert compiled.trace_count == 3
    assert not folded(compiled)   # the latest program, with momentum


def test_nothing_is_folded_where_gradients_accumulate_across_calls():
    def step_without_zero_grad(model, opt):
        return bce_l2_step(model, opt, clear=lambda: None)
    compiled = run_both(lambda: mlp_setup(np.float32), step_without_zero_grad, batches(6, 3, 8, np.float32))
    assert not folded(compiled)


def test_a_parameter_read_after_its_gradient_is_not_folded():
    def step_reading_weights(model, opt):
        first = model.parameters()[0]

        def step(x, y):
            opt.zero_grad()
            loss = nn.binary_cross_entropy_with_logits(model(x), y) + nn.l2_penalty(model, 1e-3)
            loss.backward()
            norm = (first * first).sum()   # reads the weights before the optimizer's step
            opt.step()
            return loss + norm
        return step
    compiled = run_both(lambda: mlp_setup(np.float32), step_reading_weights, batches(6, 3, 8, np.float32),
                        reference="unfolded")   # (first * first).sum() is a fused full sum
    assert len(folded(compiled)) == 3   # all but the first layer's weights


@pytest.mark.parametrize("optimizer", ["momentum", "adam"])
def test_optimizers_with_state_are_not_folded(optimizer):
    options = {"optimizer": "adam"} if optimizer == "adam" else {"momentum": 0.9}
    setup = lambda: mlp_setup(np.float32, sizes=(6, 8, 4), activation="relu", **options)
    compiled = run_both(setup, ce_step, labelled(6, 4, 8, np.float32, steps=5))
    assert not folded(compiled)


def test_without_fusion_nothing_is_folded(monkeypatch):
    monkeypatch.setattr(fuse, "ENABLED", False)
    compiled = run_both(lambda: mlp_setup(np.float32), bce_l2_step, batches(6, 3, 8, np.float32, steps=5))
    assert not folded(compiled)


def test_folding_switched_off_gives_the_same_bits(monkeypatch):
    monkeypatch.setattr(fold, "ENABLED", False)
    compiled = run_both(lambda: mlp_setup(np.float32), bce_l2_step, batches(6, 3, 8, np.float32, steps=5))
    assert not folded(compiled)


def test_gradients_cleared_by_hand_fold_and_two_backward_passes_do_not():
    def cleared_by_hand(model, opt):
        def clear():
            for p in model.parameters():
                p.grad = None
        return bce_l2_step(model, opt, clear=clear)

    def two_backward_passes(model, opt):
        def step(x, y):
            opt.zero_grad()
            loss = nn.binary_cross_entropy_with_logits(model(x), y)
            loss.backward()
            penalty = nn.l2_penalty(model, 1e-3)
            penalty.backward()   # the weights' gradients get a second contribution
            opt.step()
            return loss + penalty
        return step
    calls = batches(6, 3, 8, np.float32, steps=6)
    assert len(folded(run_both(lambda: mlp_setup(np.float32), cleared_by_hand, calls))) == 4
    compiled = run_both(lambda: mlp_setup(np.float32), two_backward_passes, calls)
    assert not folded(compiled)
