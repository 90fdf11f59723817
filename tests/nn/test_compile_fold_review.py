"""Regression tests from a review of fold.py (SGD's update folded into the gradient's kernel):
cases where the folded replay differs from eager (or from the replay without folding), or
crashes where eager works. Each compiled function is called at least 5 times (the 3rd call is
the first replay, where fusion and folding happen)."""
import numpy as np

import autograd_lite as ag
import nn
from tests.nn.test_compile_fold import run_both
from tests.nn.test_compile_training import bce_l2_step, mlp_setup
from tests.autograd_lite.test_compile_equivalence import batches

F32 = np.float32


class Params:
    """Parameters held by hand (named_parameters for run_both)."""

    def __init__(self, params):
        self.params = params

    def named_parameters(self):
        return [(f"p{k}", p) for k, p in enumerate(self.params)]


def square_params(shapes, seed=1):
    rng = np.random.default_rng(seed)
    return [ag.tensor((rng.standard_normal(s) * 0.5).astype(F32), requires_grad=True) for s in shapes]


# ---------------------------------------------------------------- views of a folded parameter
def test_a_view_of_a_parameter_read_between_backward_and_step_sees_the_old_values():
    """`W.T` is a view of W's array: eager reads it before the optimizer's step (old values);
    the folded update has already written W in place (fold._foldable only looks for W's own
    slot, not for arrays that share its memory)."""
    def make_step(model, opt):
        W = model.parameters()[0]

        def step(x, y):
            opt.zero_grad()
            view = W.T
            loss = nn.binary_cross_entropy_with_logits(model(x), y) + nn.l2_penalty(model, 1e-3)
            loss.backward()
            with ag.no_grad():
                before = view * 1.0   # W's values before the step
            opt.step()
            return before
        return step
    run_both(lambda: mlp_setup(F32), make_step, batches(6, 3, 8, F32))


def test_a_view_of_a_parameter_read_inside_the_kernel_that_updates_it():
    """(W * W.T).sum(): W's gradient `g * W.T + (g * W).T` is summed in the kernel that writes
    the new W in place, and the kernel reads W.T (a view of W) at other indices than it writes,
    so later elements read already-updated weights."""
    def setup():
        params = square_params([(4, 4), (4,)])
        return Params(params), nn.SGD(params, lr=0.3)

    def make_step(model, opt):
        W, b = model.params

        def step(x, y):
            opt.zero_grad()
            loss = nn.binary_cross_entropy_with_logits(x @ W + b, y) + (W * W.T).sum() * 0.1
            loss.backward()
            opt.step()
            return loss
        return step
    # against the unfolded replay: the fused full sum differs from eager's by an ulp
    run_both(setup, make_step, batches(4, 4, 8, F32), reference="unfolded")


def test_a_view_made_under_no_grad_and_read_by_a_later_rule():
    """Wt = W.T under no_grad feeds the first layer; W's gradient (output layer + L2) is
    complete before the first layer's rule reads Wt, so that rule reads the new weights."""
    def setup():
        params = square_params([(4, 4), (4,), (4, 4), (4,)])
        return Params(params), nn.SGD(params, lr=0.3)

    def make_step(model, opt):
        V, c, W, b = model.params

        def step(x, y):
            opt.zero_grad()
            with ag.no_grad():
                Wt = W.T
            h = ag.sigmoid(ag.sigmoid(x @ V + c) @ Wt)
            loss = nn.binary_cross_entropy_with_logits(h @ W + b, y) + 0.01 * (W * W).sum()
            loss.backward()
            opt.step()
            return loss
        return step
    run_both(setup, make_step, batches(4, 4, 8, F32), reference="unfolded")


def test_two_parameters_sharing_one_array():
    """W2's array is W's transposed (two Parameters over one memory): eager computes every
    gradient from the old values, then updates both; the folded update of W changes what W2's
    later gradient rules read."""
    def setup():
        W, b = square_params([(4, 4), (4,)])
        W2 = ag.Tensor(W.data.T, requires_grad=True)
        return Params([W, W2, b]), nn.SGD([W, W2, b], lr=0.3)

    def make_step(model, opt):
        W, W2, b = model.params

        def step(x, y):
            opt.zero_grad()
            h = ag.sigmoid(x @ W + b)
            loss = nn.binary_cross_entropy_with_logits(h @ W2, y) + 0.01 * (W * W).sum() + \
                0.01 * (W2 * W2).sum()
            loss.backward()
            opt.step()
            return loss
        return step
    run_both(setup, make_step, batches(4, 4, 8, F32), reference="unfolded")


# ---------------------------------------------------------------- what the declaration assumes
class ClippedSGD(nn.SGD):
    """An SGD whose per-parameter update is its own (it inherits SGD.folded_update)."""

    def _update_many(self, arrays, grads, states):
        return False

    def _update(self, param, grad, state):
        param -= self.lr * np.clip(grad, -0.01, 0.01)


def test_an_sgd_subclass_with_its_own_update_is_not_folded_as_plain_sgd():
    def setup():
        model = nn.MLP([6, 5, 3], dtype=F32, seed=0)
        return model, ClippedSGD(model.parameters(), lr=0.5)
    run_both(setup, bce_l2_step, batches(6, 3, 8, F32))


def test_a_parameter_removed_from_the_optimizer_is_no_longer_updated():
    """The folded updates were chosen at the build from opt.params; eager's step (and the
    unfolded replay) read opt.params at every call."""
    def between(k, opt):
        if k == 4:   # freeze the first layer's weights
            del opt.params[0]
            del opt.state[0]
    run_both(lambda: mlp_setup(F32), bce_l2_step, batches(6, 3, 8, F32, steps=7), between)


def test_a_parameter_array_made_read_only_after_the_build_does_not_crash_the_replay():
    """Eager's step writes through its cached flat views (Optimizer._flat), and so does the
    replay without folding; the folded kernel raises Numba's TypingError (setitem on a
    readonly array), after the other kernels of the replay have run."""
    def between(k, opt):
        if k == 4:
            for p in opt.params:
                p.data.flags.writeable = False
    run_both(lambda: mlp_setup(F32), bce_l2_step, batches(6, 3, 8, F32, steps=7), between)
