"""Optimizers against the published update formulas written out in NumPy (PyTorch conventions),
their state dicts, and the learning-rate schedules."""
import math

import numpy as np
import pytest

import autograd_lite as ag
import nn


def _params_and_grads(seed, steps, dtype=np.float64):
    rng = np.random.default_rng(seed)
    params = [nn.Parameter(rng.standard_normal((3, 4)).astype(dtype)),
              nn.Parameter(rng.standard_normal(4).astype(dtype), kind="bias")]
    grads = [[rng.standard_normal(p.shape).astype(dtype) for p in params] for _ in range(steps)]
    return params, grads


def _run(optimizer, params, grads):
    for step_grads in grads:
        for p, g in zip(params, step_grads):
            p.grad = ag.tensor(g)
        optimizer.step()


def _sgd_reference(p, grads, lr, momentum, nesterov, weight_decay):
    """torch.optim.SGD's documented update, dampening 0."""
    p = p.copy()
    b = None
    for g in grads:
        g = g + weight_decay * p
        if momentum:
            b = g.copy() if b is None else momentum * b + g
            g = g + momentum * b if nesterov else b
        p = p - lr * g
    return p


def _adam_reference(p, grads, lr, beta1, beta2, eps, weight_decay):
    """Kingma & Ba, Algorithm 1, with L2 weight decay added to the gradient (torch.optim.Adam)."""
    p = p.copy()
    m = np.zeros_like(p)
    v = np.zeros_like(p)
    for t, g in enumerate(grads, start=1):
        g = g + weight_decay * p
        m = beta1 * m + (1 - beta1) * g
        v = beta2 * v + (1 - beta2) * g ** 2
        m_hat = m / (1 - beta1 ** t)
        v_hat = v / (1 - beta2 ** t)
        p = p - lr * m_hat / (np.sqrt(v_hat) + eps)
    return p


@pytest.mark.parametrize("steps", [1, 5])
@pytest.mark.parametrize("momentum, nesterov", [(0.0, False), (0.9, False), (0.9, True)])
@pytest.mark.parametrize("weight_decay", [0.0, 0.01])
def test_sgd_matches_the_published_update(steps, momentum, nesterov, weight_decay):
    params, grads = _params_and_grads(0, steps)
    start = [p.data.copy() for p in params]
    _run(nn.SGD(params, lr=0.1, momentum=momentum, nesterov=nesterov, weight_decay=weight_decay),
         params, grads)
    for i, p in enumerate(params):
        expected = _sgd_reference(start[i], [g[i] for g in grads], 0.1, momentum, nesterov, weight_decay)
        np.testing.assert_allclose(p.data, expected, rtol=1e-13, atol=1e-14)


@pytest.mark.parametrize("steps", [1, 7])
@pytest.mark.parametrize("betas", [(0.9, 0.999), (0.5, 0.9)])
@pytest.mark.parametrize("weight_decay", [0.0, 0.05])
def test_adam_matches_the_published_update(steps, betas, weight_decay):
    params, grads = _params_and_grads(1, steps)
    start = [p.data.copy() for p in params]
    _run(nn.Adam(params, lr=0.01, betas=betas, eps=1e-8, weight_decay=weight_decay), params, grads)
    for i, p in enumerate(params):
        expected = _adam_reference(start[i], [g[i] for g in grads], 0.01, *betas, 1e-8, weight_decay)
        np.testing.assert_allclose(p.data, expected, rtol=1e-12, atol=1e-14)


def test_adam_bias_correction_makes_the_first_step_lr_times_the_sign_of_the_gradient():
    # without correction m_1 = (1 - beta1) g and the step would be ~ lr (1 - b1) / sqrt(1 - b2) * sign
    p = nn.Parameter(np.array([1.0, -2.0, 3.0]))
    p.grad = ag.tensor([0.5, -4.0, 1e-3])
    nn.Adam([p], lr=0.1, eps=0.0).step()
    np.testing.assert_allclose(p.data, [1.0 - 0.1, -2.0 + 0.1, 3.0 - 0.1], rtol=1e-12)


def test_parameters_without_a_gradient_are_left_alone():
    a = nn.Parameter(np.ones(2))
    b = nn.Parameter(np.ones(2))
    a.grad = ag.tensor(np.ones(2))
    nn.Adam([a, b], lr=0.1).step()
    np.testing.assert_array_equal(b.data, np.ones(2))
    assert not np.array_equal(a.data, np.ones(2))


def test_updates_are_in_place_and_keep_float32():
    params, grads = _params_and_grads(2, 3, dtype=np.float32)
    arrays = [p.data for p in params]
    _run(nn.Adam(params, lr=0.01, weight_decay=0.1), params, grads)
    _run(nn.SGD(params, lr=0.01, momentum=0.9, nesterov=True, weight_decay=0.1), params, grads)
    assert all(p.data is a and p.dtype == np.float32 for p, a in zip(params, arrays))


def test_zero_grad_clears_the_gradients_of_its_parameters():
    model = nn.MLP([2, 3, 1], seed=0)
    model(np.ones((1, 2))).sum().backward()
    optimizer = nn.SGD(model, lr=0.1)
    optimizer.zero_grad()
    assert all(p.grad is None for p in model.parameters())


def test_optimizers_refuse_bad_settings():
    params = [nn.Parameter(np.ones(2))]
    with pytest.raises(ValueError, match="lr must be a non-negative"):
        nn.SGD(params, lr=-1)
    with pytest.raises(ValueError, match="nesterov=True needs momentum > 0"):
        nn.SGD(params, lr=0.1, nesterov=True)
    with pytest.raises(ValueError, match="betas must be two numbers in"):
        nn.Adam(params, betas=(0.9, 1.0))
    with pytest.raises(ValueError, match="no parameters"):
        nn.Adam([])
    with pytest.raises(TypeError, match="leaf Tensor with requires_grad=True"):
        nn.SGD([np.ones(2)], lr=0.1)
    with pytest.raises(ValueError, match="more than once"):
        nn.SGD(params * 2, lr=0.1)


@pytest.mark.parametrize("make", [
    lambda ps: nn.SGD(ps, lr=0.1, momentum=0.9, nesterov=True),
    lambda ps: nn.Adam(ps, lr=0.01, betas=(0.8, 0.99)),
])
def test_state_dict_round_trip_continues_exactly_like_the_original(make):
    params_a, grads = _params_and_grads(3, 6)
    params_b = [nn.Parameter(p.data.copy(), kind=p.kind) for p in params_a]
    opt_a = make(params_a)
    _run(opt_a, params_a, grads[:3])
    state = opt_a.state_dict()
    for p_b, p_a in zip(params_b, params_a):
        p_b.data[...] = p_a.data
    opt_b = make(params_b)
    opt_b.lr = 123.0                       # overwritten by the loaded state
    opt_b.load_state_dict(state)
    assert opt_b.lr == opt_a.lr
    _run(opt_a, params_a, grads[3:])
    _run(opt_b, params_b, grads[3:])
    for a, b in zip(params_a, params_b):
        np.testing.assert_array_equal(a.data, b.data)


def test_state_dict_is_a_copy():
    params, grads = _params_and_grads(4, 1)
    optimizer = nn.SGD(params, lr=0.1, momentum=0.9)
    _run(optimizer, params, grads)
    state = optimizer.state_dict()
    state["state"][0]["velocity"][...] = 99.0
    assert not np.any(optimizer.state[0]["velocity"] == 99.0)


def test_load_state_dict_refuses_a_mismatch_and_changes_nothing():
    params, grads = _params_and_grads(5, 2)
    optimizer = nn.Adam(params, lr=0.01)
    _run(optimizer, params, grads)
    other = nn.Adam([nn.Parameter(np.ones((2, 2))), nn.Parameter(np.ones(4))], lr=0.5)
    before = optimizer.state_dict()
    with pytest.raises(ValueError, match=r"parameter 0: 'm' has shape \(2, 2\), the parameter has \(3, 4\)"):
        optimizer.load_state_dict(other.state_dict())
    with pytest.raises(ValueError, match="the state is for 'SGD'"):
        optimizer.load_state_dict(nn.SGD(params, lr=0.1).state_dict())
    assert optimizer.lr == 0.01
    np.testing.assert_array_equal(optimizer.state[0]["m"], before["state"][0]["m"])


# ---------------------------------------------------------------- schedules
def test_step_decay_multiplies_by_gamma_every_step_size_epochs():
    optimizer = nn.SGD([nn.Parameter(np.ones(1))], lr=0.1)
    schedule = nn.StepDecay(optimizer, step_size=3, gamma=0.5)
    lrs = [optimizer.lr] + [schedule.step() for _ in range(7)]
    np.testing.assert_allclose(lrs, [0.1, 0.1, 0.1, 0.05, 0.05, 0.05, 0.025, 0.025], rtol=1e-15)
    assert optimizer.lr == lrs[-1]


def test_cosine_decay_follows_half_a_cosine_then_stays_at_the_minimum():
    optimizer = nn.Adam([nn.Parameter(np.ones(1))], lr=1.0)
    schedule = nn.CosineDecay(optimizer, total_epochs=4, min_lr=0.1)
    lrs = [schedule.step() for _ in range(6)]
    expected = [0.1 + 0.9 * (1 + math.cos(math.pi * e / 4)) / 2 for e in (1, 2, 3, 4)] + [0.1, 0.1]
    np.testing.assert_allclose(lrs, expected, rtol=1e-15)
    np.testing.assert_allclose(lrs[1], 0.55, rtol=1e-15)


def test_schedule_state_dict_round_trip_restores_the_epoch_and_lr():
    optimizer = nn.SGD([nn.Parameter(np.ones(1))], lr=0.2)
    schedule = nn.StepDecay(optimizer, step_size=2, gamma=0.1)
    for _ in range(3):
        schedule.step()
    fresh_optimizer = nn.SGD([nn.Parameter(np.ones(1))], lr=0.2)
    fresh = nn.StepDecay(fresh_optimizer, step_size=2, gamma=0.1)
    fresh.load_state_dict(schedule.state_dict())
    assert fresh.epoch == 3 and fresh_optimizer.lr == optimizer.lr
    assert fresh.step() == schedule.step()


def test_schedules_refuse_bad_settings():
    optimizer = nn.SGD([nn.Parameter(np.ones(1))], lr=0.1)
    with pytest.raises(ValueError, match="step_size must be a positive"):
        nn.StepDecay(optimizer, step_size=0)
    with pytest.raises(ValueError, match="total_epochs must be positive"):
        nn.CosineDecay(optimizer, total_epochs=0)
    with pytest.raises(TypeError, match="expected an Optimizer"):
        nn.StepDecay("sgd", step_size=1)


@pytest.mark.parametrize("make", [lambda ps: nn.SGD(ps, lr=0.1), lambda ps: nn.SGD(ps, lr=0.1, momentum=0.9),
                                  lambda ps: nn.Adam(ps, lr=0.1)])
@pytest.mark.parametrize("kernels", ["numba", "numpy"])
def test_a_step_between_forward_and_backward_makes_the_backward_raise(make, kernels):
    previous = ag.set_kernels(kernels)
    try:
        W = nn.Parameter(np.ones((3, 2)), name="W")
        optimizer = make([W])
        loss = (ag.tensor(np.ones((4, 3))) @ W).sum()   # recorded with W at version 0
        W.grad = ag.tensor(np.ones((3, 2)))
        optimizer.step()                                  # W changes in place, in a kernel
        assert W._version == 1
        with pytest.raises(RuntimeError, match=r"input 1 of 'matmul' \(tensor 'W' of shape \(3, 2\)\) "
                                               r"was modified in place .*version 0 then, version 1 now"):
            loss.backward()
    finally:
        ag.set_kernels(previous)


def test_optimizers_and_schedules_by_name_build_what_their_names_say():
    from nn.optim import OPTIMIZERS, SCHEDULES, get_optimizer, get_schedule
    model = nn.MLP([3, 4, 2], seed=0)
    momentum = get_optimizer("momentum", model, lr=0.2)
    assert isinstance(momentum, nn.SGD) and momentum.momentum == 0.9 and momentum.nesterov
    assert type(get_optimizer("sgd", model, lr=1.0)) is nn.SGD and get_optimizer("sgd", model, 1.0).momentum == 0
    assert isinstance(get_optimizer("adam", model, lr=1e-3), nn.Adam)
    assert isinstance(get_schedule("cosine", momentum, 10), nn.CosineDecay)
    step = get_schedule("step", momentum, 9)
    assert isinstance(step, nn.StepDecay) and step.step_size == 3
    assert get_schedule("constant", momentum, 10) is None
    assert set(OPTIMIZERS) == {"sgd", "momentum", "adam"} and set(SCHEDULES) == {"cosine", "step", "constant"}
    with pytest.raises(ValueError, match="unknown optimizer 'rmsprop'; choose one of sgd, momentum, adam"):
        get_optimizer("rmsprop", model, 0.1)
    with pytest.raises(ValueError, match="unknown schedule 'linear'"):
        get_schedule("linear", momentum, 10)


# ---------------------------------------------------------------- one kernel call over all parameters
def _layered(dtype, count, seed=0):
    """`count` parameters of mixed shapes (matrices and vectors), each with a gradient."""
    rng = np.random.default_rng(seed)
    shapes = [(3, 4) if k % 2 == 0 else (4,) for k in range(count)]
    params = [nn.Parameter(rng.standard_normal(s).astype(dtype)) for s in shapes]
    for p in params:
        p.grad = ag.tensor(rng.standard_normal(p.shape).astype(dtype))
    return params


def _one_by_one(make, params, steps):
    """The same steps through the per-parameter kernels (`_update` on each), for comparison."""
    optimizer = make(params)
    optimizer._update_many = lambda *args: False
    for _ in range(steps):
        optimizer.step()
    return optimizer


@pytest.mark.parametrize("count", [1, 4, 6, 9])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("make", [lambda ps: nn.SGD(ps, lr=0.1, momentum=0.9, nesterov=True, weight_decay=1e-2),
                                  lambda ps: nn.SGD(ps, lr=0.1),
                                  lambda ps: nn.Adam(ps, lr=1e-2, weight_decay=1e-3)],
                         ids=["nesterov", "sgd", "adam"])
def test_a_step_over_all_parameters_at_once_gives_the_bits_of_one_update_each(make, dtype, count):
    together, alone = _layered(dtype, count), _layered(dtype, count)
    optimizer = make(together)
    for _ in range(3):
        optimizer.step()
    reference = _one_by_one(make, alone, 3)
    for a, b in zip(together, alone):
        assert a.dtype == dtype and np.array_equal(a.data, b.data)
    for s1, s2 in zip(optimizer.state, reference.state):
        assert s1.keys() == s2.keys()
        for key in s1:
            assert np.array_equal(s1[key], s2[key])


def test_a_step_checks_every_gradient_before_it_changes_any_parameter():
    params = _layered(np.float64, 3)
    before = [p.data.copy() for p in params]
    params[2].grad = ag.tensor(np.ones(5))
    with pytest.raises(ValueError, match=r"SGD.step: a gradient of shape \(5,\) for a parameter of shape \(3, 4\)"):
        nn.SGD(params, lr=0.1).step()
    assert all(np.array_equal(p.data, b) for p, b in zip(params, before))


def test_a_step_follows_parameter_arrays_and_state_replaced_between_steps():
    # the step remembers the arrays of the last step; replaced ones must be the ones updated
    params, ref = _layered(np.float64, 4), _layered(np.float64, 4)
    optimizer, reference = (nn.SGD(ps, lr=0.1, momentum=0.5) for ps in (params, ref))
    optimizer.step(), reference.step()
    old = params[0].data
    params[0].data = old.copy()
    ref[0].data = ref[0].data.copy()
    frozen = old.copy()
    optimizer.load_state_dict(reference.state_dict())     # new velocity arrays
    optimizer.step(), _one_by_one(lambda ps: reference, ref, 1)
    assert np.array_equal(old, frozen)                     # the old array is left alone
    for a, b in zip(params, ref):
        assert np.array_equal(a.data, b.data)
    for s1, s2 in zip(optimizer.state, reference.state):
        assert np.array_equal(s1["velocity"], s2["velocity"])


def test_a_step_falls_back_to_one_update_each_for_arrays_the_kernel_cannot_take():
    params = _layered(np.float64, 4)
    params[0].data = np.asfortranarray(np.ones((3, 4)))            # not C-contiguous
    params[1].grad = ag.tensor(np.ones(4, dtype=np.float32))        # cast to the parameter's dtype
    ref = _layered(np.float64, 4)
    ref[0].data = np.ones((3, 4))
    ref[1].grad = ag.tensor(np.ones(4))
    nn.SGD(params, lr=0.1, momentum=0.9).step()
    _one_by_one(lambda ps: nn.SGD(ps, lr=0.1, momentum=0.9), ref, 1)
    for a, b in zip(params, ref):
        assert np.array_equal(a.data, b.data)
    mixed = [nn.Parameter(np.ones(3, dtype=np.float32)), nn.Parameter(np.ones(2))]
    for p in mixed:
        p.grad = ag.tensor(np.ones(p.shape, dtype=p.dtype))
    nn.Adam(mixed, lr=0.5).step()                                   # float32 beside float64
    assert mixed[0].dtype == np.float32 and np.allclose(mixed[0].data, 0.5)
    assert np.allclose(mixed[1].data, 0.5)


def test_momentum_turned_on_between_steps_starts_its_velocities_at_zero():
    params, ref = _layered(np.float32, 4), _layered(np.float32, 4)
    optimizer = nn.SGD(params, lr=0.1)
    optimizer.step()
    optimizer.momentum = 0.9
    optimizer.step()
    reference = nn.SGD(ref, lr=0.1)
    reference._update_many = lambda *args: False
    reference.step()
    reference.momentum = 0.9
    reference.step()
    for a, b, s in zip(params, ref, optimizer.state):
        assert np.array_equal(a.data, b.data) and s["velocity"].dtype == np.float32
