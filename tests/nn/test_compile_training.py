"""`ag.compile` on `nn` training steps against eager execution (issue 14, item 2): 20 steps each,
the same losses, parameters and optimizer state (within 1e-6 relative in float32, 1e-12 in
float64): nn.MLP with l2_penalty and SGD, the README tour's step written by hand with nn's loss
and optimizer, Adam, lr schedules, dropout drawing the same random stream as eager,
train()/eval() switching, and parameters or optimizer state changed outside between calls."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import autograd_lite as ag
import nn
from tests.autograd_lite.test_compile_equivalence import STEPS, as_array, assert_close, batches, snapshot


def mlp_setup(dtype, sizes=(6, 5, 3), activation="sigmoid", dropout=0.0, optimizer="sgd", seed=0, **options):
    model = nn.MLP(list(sizes), activation=activation, dropout=dropout, dtype=dtype, seed=seed)
    if optimizer == "sgd":
        opt = nn.SGD(model.parameters(), lr=options.get("lr", 0.5), momentum=options.get("momentum", 0.0),
                     nesterov=options.get("nesterov", False))
    else:
        opt = nn.Adam(model.parameters(), lr=options.get("lr", 1e-2))
    return model, opt


def bce_l2_step(model, opt, lam=1e-3, clear=None):
    """The training step with the logistic cost and nn.l2_penalty; `clear()` forgets the
    gradients first (opt.zero_grad by default)."""
    clear = opt.zero_grad if clear is None else clear

    def step(x, y):
        clear()
        loss = nn.binary_cross_entropy_with_logits(model(x), y) + nn.l2_penalty(model, lam)
        loss.backward()
        opt.step()
        return loss
    return step


def ce_step(model, opt):
    def step(x, labels):
        opt.zero_grad()
        loss = nn.sparse_categorical_cross_entropy(model(x), labels)
        loss.backward()
        opt.step()
        return loss
    return step


def assert_same_state(model, eager_model, opt=None, eager_opt=None):
    for (name, p), (_, q) in zip(model.named_parameters(), eager_model.named_parameters()):
        assert_close(p.data, q.data, f"parameter {name}")
        assert (p.grad is None) == (q.grad is None), f"{name}: grad {p.grad}, eager {q.grad}"
        if q.grad is not None:
            assert_close(as_array(p.grad), as_array(q.grad), f"gradient of {name}")
    if opt is not None:
        for k, (s, e) in enumerate(zip(opt.state, eager_opt.state)):
            assert sorted(s) == sorted(e), f"optimizer state {k}: keys {sorted(s)}, eager {sorted(e)}"
            for key in e:
                assert_close(s[key], e[key], f"optimizer state {k}[{key!r}]")


def compare(setup, make_step, calls, between=None):
    """Runs make_step(*setup()) eagerly and compiled over `calls`; `between(k, model, opt)` runs
    before call k on both sides (eagerly). Returns (compiled, model, opt, eager model, eager opt)."""
    eager_model, eager_opt = setup()
    model, opt = setup()
    eager = make_step(eager_model, eager_opt)
    compiled = ag.compile(make_step(model, opt))
    for k, args in enumerate(calls):
        if between is not None:
            between(k, eager_model, eager_opt)
            between(k, model, opt)
        expected, got = snapshot(eager(*args)), snapshot(compiled(*args))
        for i, (g, e) in enumerate(zip(got, expected)):
            assert_close(g, e, f"step {k}, returned value {i}")
    assert_same_state(model, eager_model, opt, eager_opt)
    return compiled, model, opt, eager_model, eager_opt


def labelled(n_in, n_classes, batch, dtype, steps=STEPS, seed=3):
    rng = np.random.default_rng(seed)
    return [(rng.random((batch, n_in)).astype(dtype), rng.integers(0, n_classes, batch)) for _ in range(steps)]


# ---------------------------------------------------------------- the two steps of the issue
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_mlp_l2_penalty_sgd_step_matches_eager(dtype):
    compiled, *_ = compare(lambda: mlp_setup(dtype), bce_l2_step, batches(6, 3, 8, dtype))
    assert compiled.trace_count == 1


def readme_step(weights, opt, lam=1e-3):
    """The README tour's step on weights (W1, b1, W2, b2)."""
    W1, b1, W2, b2 = weights

    def step(x, y):
        opt.zero_grad()
        h = ag.sigmoid(x @ W1 + b1)
        loss = nn.binary_cross_entropy_with_logits(h @ W2 + b2, y) + lam / 2 * ((W1 * W1).sum() + (W2 * W2).sum())
        loss.backward()
        opt.step()
        return loss
    return step


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_handwritten_step_with_nn_loss_and_sgd_matches_eager(dtype):
    """The README tour's step: x @ W + b, ag.sigmoid, nn.binary_cross_entropy_with_logits,
    (W * W).sum() for L2, nn.SGD."""
    def setup():
        rng = np.random.default_rng(1)
        weights = [ag.tensor((rng.standard_normal(s) * 0.3).astype(dtype), requires_grad=True)
                   for s in [(6, 5), (5,), (5, 3), (3,)]]
        return weights, nn.SGD(weights, lr=0.5)

    eager_weights, eager_opt = setup()
    weights, opt = setup()
    eager, compiled = readme_step(eager_weights, eager_opt), ag.compile(readme_step(weights, opt))
    for k, (x, y) in enumerate(batches(6, 3, 8, dtype)):
        assert_close(as_array(compiled(x, y)), as_array(eager(x, y)), f"loss at step {k}")
    for k, (w, e) in enumerate(zip(weights, eager_weights)):
        assert_close(w.data, e.data, f"parameter {k}")
        assert_close(as_array(w.grad), as_array(e.grad), f"gradient of parameter {k}")
    assert compiled.trace_count == 1


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_relu_dropout_adam_step_matches_eager(dtype):
    setup = lambda: mlp_setup(dtype, sizes=(6, 8, 5, 4), activation="relu", dropout=0.2, optimizer="adam")
    compiled, _, opt, _, eager_opt = compare(setup, ce_step, labelled(6, 4, 8, dtype))
    assert [s["step"] for s in opt.state] == [s["step"] for s in eager_opt.state] == [STEPS] * 6
    assert compiled.trace_count == 1


def test_sgd_with_nesterov_momentum_matches_eager():
    compare(lambda: mlp_setup(np.float64, momentum=0.9, nesterov=True, lr=0.1), bce_l2_step,
            batches(6, 3, 8, np.float64))


# ---------------------------------------------------------------- values that change between calls
@pytest.mark.parametrize("schedule", ["cosine", "step", "by hand"])
def test_lr_changed_between_calls_is_used_by_the_next_replay(schedule):
    schedules = {}

    def between(k, model, opt):
        if schedule == "by hand":
            opt.lr = 0.5 / (1 + k)
            return
        if id(opt) not in schedules:
            schedules[id(opt)] = (nn.CosineDecay(opt, total_epochs=STEPS) if schedule == "cosine"
                                  else nn.StepDecay(opt, step_size=3, gamma=0.5))
        elif k:
            schedules[id(opt)].step()

    compiled, *_ = compare(lambda: mlp_setup(np.float64), bce_l2_step, batches(6, 3, 8, np.float64), between)
    assert compiled.trace_count == 1


def test_dropout_draws_fresh_masks_from_the_same_stream_as_eager():
    setup = lambda: mlp_setup(np.float64, sizes=(6, 16, 4), activation="relu", dropout=0.5, lr=0.0)
    x, labels = labelled(6, 4, 8, np.float64, steps=1)[0]
    compiled, model, _, eager_model, _ = compare(setup, ce_step, [(x, labels)] * STEPS)
    assert model.dropout.rng.bit_generator.state == eager_model.dropout.rng.bit_generator.state
    # lr = 0 and the same batch every time: only the masks change the loss
    losses = [float(as_array(compiled(x, labels))) for _ in range(5)]
    assert len(set(losses)) == 5, f"the same mask was used twice: {losses}"


def test_train_and_eval_switching_between_calls_matches_eager():
    setup = lambda: mlp_setup(np.float32, sizes=(6, 16, 4), activation="relu", dropout=0.3, optimizer="adam")

    def between(k, model, opt):
        model.train(k % 3 != 2)

    compare(setup, ce_step, labelled(6, 4, 8, np.float32), between)


def test_dropout_probability_changed_between_calls_is_used_by_the_next_replay():
    setup = lambda: mlp_setup(np.float64, sizes=(6, 16, 4), activation="relu", dropout=0.2)

    def between(k, model, opt):
        model.dropout.p = [0.2, 0.6, 0.0][k // 7]

    compare(setup, ce_step, labelled(6, 4, 8, np.float64), between)


def test_a_layer_frozen_between_calls_stops_changing():
    """Fine-tuning: requires_grad turned off for the first layer after 8 steps."""
    def between(k, model, opt):
        if k == 8:
            model.hidden[0].weight.requires_grad = False
            model.hidden[0].bias.requires_grad = False
            model.hidden[0].weight.grad = model.hidden[0].bias.grad = None

    compiled, model, *_ = compare(lambda: mlp_setup(np.float64), bce_l2_step, batches(6, 3, 8, np.float64),
                                  between)
    assert model.hidden[0].weight.grad is None


def test_compiled_inference_in_eval_mode_is_deterministic_and_matches_eager():
    model, _ = mlp_setup(np.float64, sizes=(6, 16, 4), activation="relu", dropout=0.5)
    model.eval()
    predict = ag.compile(lambda x: ag.softmax(model(x), axis=-1))
    (x, _), (x2, _) = labelled(6, 4, 8, np.float64, steps=2)
    first, second, other = as_array(predict(x)), as_array(predict(x)), as_array(predict(x2))
    np.testing.assert_array_equal(first, second)
    with ag.no_grad():
        assert_close(first, ag.softmax(model(x), axis=-1).data, "eval-mode probabilities")
        assert_close(other, ag.softmax(model(x2), axis=-1).data, "eval-mode probabilities, another batch")


def test_state_dict_loaded_between_calls_is_seen_by_the_next_replay():
    other, _ = mlp_setup(np.float64, seed=7)
    saved = other.state_dict()

    def between(k, model, opt):
        if k == 10:
            model.load_state_dict(saved)

    compiled, model, *_ = compare(lambda: mlp_setup(np.float64), bce_l2_step, batches(6, 3, 8, np.float64),
                                  between)
    assert compiled.trace_count == 1


def test_an_eager_optimizer_step_between_calls_is_seen_by_the_next_replay():
    x_out, y_out = batches(6, 3, 8, np.float64, steps=1, seed=11)[0]

    def between(k, model, opt):
        if k % 5 == 4:                                 # an eager step on another batch
            opt.zero_grad()
            nn.binary_cross_entropy_with_logits(model(x_out), y_out).backward()
            opt.step()

    compare(lambda: mlp_setup(np.float64, optimizer="adam"), bce_l2_step, batches(6, 3, 8, np.float64), between)


def test_optimizer_state_loaded_between_calls_is_seen_by_the_next_replay():
    donor, donor_opt = mlp_setup(np.float64, momentum=0.9)
    step = bce_l2_step(donor, donor_opt)
    for x, y in batches(6, 3, 8, np.float64, steps=3, seed=12):
        step(x, y)
    donor_opt.lr = 0.2
    saved = donor_opt.state_dict()

    def between(k, model, opt):
        if k == 7:
            opt.load_state_dict(saved)                 # new velocity arrays and a new lr

    compare(lambda: mlp_setup(np.float64, momentum=0.9), bce_l2_step, batches(6, 3, 8, np.float64), between)


@settings(max_examples=max(6, settings.default.max_examples // 5), deadline=None)
@given(hidden=st.integers(1, 12), n_in=st.integers(1, 7), n_out=st.integers(1, 5), batch=st.integers(1, 9),
       dtype=st.sampled_from([np.float32, np.float64]), activation=st.sampled_from(["sigmoid", "relu", "tanh"]))
def test_mlp_steps_of_random_sizes_match_eager(hidden, n_in, n_out, batch, dtype, activation):
    setup = lambda: mlp_setup(dtype, sizes=(n_in, hidden, n_out), activation=activation)
    compare(setup, bce_l2_step, batches(n_in, n_out, batch, dtype, steps=4))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_mlp_l2_sgd_replay_is_bit_identical_to_eager(dtype):
    """nn's step runs BLAS and nn's own fused kernels, which a replay calls as they are: the
    numbers agree exactly, not only within tolerance (the README promises bit for bit)."""
    eager_model, eager_opt = mlp_setup(dtype, sizes=(6, 16, 3))
    model, opt = mlp_setup(dtype, sizes=(6, 16, 3))
    eager, compiled = bce_l2_step(eager_model, eager_opt), ag.compile(bce_l2_step(model, opt))
    for k, (x, y) in enumerate(batches(6, 3, 8, dtype)):
        np.testing.assert_array_equal(as_array(compiled(x, y)), as_array(eager(x, y)), err_msg=f"loss at step {k}")
    for (name, p), (_, q) in zip(model.named_parameters(), eager_model.named_parameters()):
        np.testing.assert_array_equal(p.data, q.data, err_msg=name)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_fit_compiled_by_default_gives_the_same_training_as_eager(dtype):
    """`nn.fit` compiles each batch by default: ReLU, dropout, Adam, L2, a cosine schedule, a
    validation set and a last batch of another size must train exactly as `compile=False`."""
    rng = np.random.default_rng(0)
    train = (rng.random((203, 8)).astype(dtype), rng.integers(0, 3, 203))
    validation = (rng.random((50, 8)).astype(dtype), rng.integers(0, 3, 50))

    def run(compile):
        model = nn.MLP([8, 16, 3], activation="relu", dropout=0.2, dtype=dtype, seed=0)
        opt = nn.Adam(model.parameters(), lr=1e-2)
        history = nn.fit(model, "ce", opt, train, validation=validation, epochs=4, batch_size=32, l2=1e-3,
                         schedule=nn.CosineDecay(opt, total_epochs=4), verbose=False, compile=compile)
        return model, history

    (eager_model, eager_history), (model, history) = run(False), run(True)
    for (name, p), (_, q) in zip(model.named_parameters(), eager_model.named_parameters()):
        np.testing.assert_array_equal(p.data, q.data, err_msg=name)
    for key in ("loss", "accuracy", "val_loss", "val_accuracy", "lr"):
        assert history[key] == eager_history[key], key


def test_a_parameter_or_layer_replaced_between_calls_is_seen_by_the_next_call():
    model, _ = mlp_setup(np.float64, sizes=(6, 5, 3))
    predict = ag.compile(lambda x: model(x))
    (x, _), = labelled(6, 3, 8, np.float64, steps=1)
    for _ in range(3):                                           # trace, check, replay
        predict(x)
    model.output.weight = nn.Parameter(np.ones((5, 3)))          # a new Parameter, same shape
    got = as_array(predict(x))
    with ag.no_grad():
        assert_close(got, model(x).data, "after a Parameter was replaced")
    for _ in range(2):
        predict(x)
    model.hidden[0] = nn.Linear(6, 5, seed=9)                     # a new layer in a list
    got = as_array(predict(x))
    with ag.no_grad():
        assert_close(got, model(x).data, "after a layer was replaced")
    assert predict.trace_count == 3                               # one per object change, none more


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
@pytest.mark.parametrize("change", ["removed", "list replaced"])
def test_parameters_removed_from_the_optimizer_between_calls_match_eager(optimizer, change):
    def between(k, model, opt):
        if k == 6 and change == "removed":            # the same list, one parameter fewer
            del opt.params[-1], opt.state[-1]
        elif k == 6:                                  # a new list: the last layer only
            opt.params, opt.state = opt.params[-2:], opt.state[-2:]

    compare(lambda: mlp_setup(np.float64, optimizer=optimizer, momentum=0.9), bce_l2_step,
            batches(6, 3, 8, np.float64, steps=10), between)


def test_train_or_eval_inside_the_compiled_function_is_refused_or_runs_eagerly():
    model, _ = mlp_setup(np.float64, sizes=(6, 5, 3), dropout=0.5)
    (x, _), = labelled(6, 3, 8, np.float64, steps=1)

    def evaluate(x):                 # a replay would not call eval()/train(): refused
        model.eval()
        out = model(x)
        model.train()
        return out
    with pytest.raises(ag.TracingError, match="changed a setting .* of MLP while it ran"):
        ag.compile(evaluate)(x)
    model.eval()                     # eager leaves it in train mode; so does the fallback
    with pytest.warns(ag.CompileWarning, match="changed a setting"):
        ag.compile(evaluate, fallback=True)(x)
    assert model.training
