"""An optimizer's step inside ag.compile: the replay calls the same `step` as eager, so whatever
changes between calls (the settings, the state, a parameter's array) is read at each replay."""
import numpy as np
import pytest

import autograd_lite as ag
import nn
from tests.nn.test_compile_training import ce_step


def assert_same_bits(m1, o1, m2, o2):
    """Two models' parameters and their optimizers' states are equal bit for bit."""
    for a, b in zip(m1.parameters(), m2.parameters()):
        assert np.array_equal(a.data, b.data)
    for s1, s2 in zip(o1.state, o2.state):
        assert s1.keys() == s2.keys()
        for key in s1:
            assert np.array_equal(s1[key], s2[key])


def _training(make_optimizer, dtype):
    model = nn.MLP([4, 5, 3], activation="tanh", seed=0, dtype=dtype)
    optimizer = make_optimizer(model)
    return model, optimizer, ce_step(model, optimizer)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("make", [lambda m: nn.SGD(m, lr=0.1, momentum=0.9, nesterov=True),
                                  lambda m: nn.SGD(m, lr=0.1),
                                  lambda m: nn.Adam(m, lr=0.01, weight_decay=1e-3)],
                         ids=["nesterov", "sgd", "adam"])
def test_a_replayed_step_follows_what_changes_between_calls_with_eager_bits(make, dtype):
    (m1, o1, eager), (m2, o2, step) = _training(make, dtype), _training(make, dtype)
    compiled = ag.compile(step)
    rng = np.random.default_rng(7)
    saved = None
    for i in range(12):
        for model, optimizer in ((m1, o1), (m2, o2)):
            if i == 3:
                saved = optimizer.state_dict()
            elif i == 5:               # another array for one parameter, same shape and values
                first = model.parameters()[0]
                first.data = first.data.copy()
            elif i == 6:               # the state replaced by older arrays
                optimizer.load_state_dict(saved)
            elif i == 8:               # settings read at every replay
                optimizer.lr = 0.02
                if isinstance(optimizer, nn.Adam):
                    optimizer.betas = (0.8, 0.99)
                elif not optimizer.momentum:
                    optimizer.momentum = 0.5   # momentum turned on: velocities start at zero
        x = rng.standard_normal((6, 4)).astype(dtype)
        labels = rng.integers(0, 3, 6)
        assert eager(x, labels).data.item() == compiled(x, labels).data.item()
    assert_same_bits(m1, o1, m2, o2)
    assert compiled.trace_count <= 2


def test_a_replayed_step_skips_a_parameter_left_without_a_gradient_like_eager():
    def make(model):
        return nn.Adam(model, lr=0.01)
    results = []
    for compile_it in (False, True):
        model, optimizer, _ = _training(make, np.float64)
        frozen = model.parameters()[-1]

        def step(x, labels):
            optimizer.zero_grad()
            loss = nn.sparse_categorical_cross_entropy(model(x), labels)
            loss.backward()
            frozen.grad = None          # replayed: this parameter is not updated
            optimizer.step()
            return loss
        run = ag.compile(step) if compile_it else step
        rng = np.random.default_rng(8)
        for _ in range(5):
            run(rng.standard_normal((6, 4)), rng.integers(0, 3, 6))
        results.append(([p.data.copy() for p in model.parameters()], optimizer.state))
    (eager_params, eager_state), (params, state) = results
    assert all(np.array_equal(a, b) for a, b in zip(eager_params, params))
    assert state[-1]["step"] == eager_state[-1]["step"] == 0
    assert state[0]["step"] == eager_state[0]["step"] == 5
