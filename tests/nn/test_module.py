"""Module and Parameter: discovery, names, modes, gradients, state dicts and their errors."""
import numpy as np
import pytest

import autograd_lite as ag
import nn


class Block(nn.Module):
    def __init__(self, seed):
        super().__init__()
        self.proj = nn.Linear(3, 4, seed=seed)
        self.drop = nn.Dropout(0.5, seed=seed)

    def forward(self, x):
        return self.drop(self.proj(x).tanh())


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.blocks = [Block(0), Block(1)]
        self.heads = {"main": nn.Linear(4, 2, seed=2)}
        self.scale = nn.Parameter(np.ones(2), kind="weight")
        self.not_a_param = np.zeros(3)            # plain arrays are not parameters
        self.name = "net"

    def forward(self, x):
        return self.heads["main"](self.blocks[1](self.blocks[0](x) @ np.eye(4, 3))) * self.scale


def test_parameters_are_found_in_attributes_lists_and_dicts_with_dotted_names():
    names = [name for name, _ in Net().named_parameters()]
    assert names == ["scale", "blocks.0.proj.weight", "blocks.0.proj.bias",
                     "blocks.1.proj.weight", "blocks.1.proj.bias",
                     "heads.main.weight", "heads.main.bias"]
    assert len(Net().parameters()) == 7


def test_a_shared_parameter_is_listed_once():
    layer = nn.Linear(2, 2, seed=0)
    model = nn.Sequential(layer, nn.Tanh(), layer)
    assert [n for n, _ in model.named_parameters()] == ["0.weight", "0.bias"]


def test_parameter_requires_grad_and_refuses_integers_and_unknown_kinds():
    p = nn.Parameter([1.0, 2.0], kind="bias")
    assert p.requires_grad and p.is_leaf and p.kind == "bias"
    with pytest.raises(TypeError, match="floating-point"):
        nn.Parameter(np.arange(3))
    with pytest.raises(ValueError, match="kind must be one of"):
        nn.Parameter(np.zeros(2), kind="gain")


def test_parameter_copies_its_data():
    array = np.zeros(3)
    p = nn.Parameter(array)
    p.data[0] = 1.0
    assert array[0] == 0.0


def test_linear_marks_weight_and_bias_kinds():
    layer = nn.Linear(3, 2, seed=0)
    assert layer.weight.kind == "weight" and layer.bias.kind == "bias"


def test_train_and_eval_propagate_to_every_submodule():
    net = Net()
    assert all(m.training for m in net.modules())
    assert net.eval() is net
    assert not any(m.training for m in net.modules())
    net.train()
    assert all(m.training for m in net.modules())


def test_call_runs_forward_and_a_module_without_forward_says_so():
    x = np.ones((5, 3))
    assert Net()(x).shape == (5, 2)
    with pytest.raises(NotImplementedError, match="must define forward"):
        nn.Module()(x)


def test_zero_grad_clears_every_parameter_gradient():
    net = Net()
    net(np.ones((5, 3))).sum().backward()
    assert all(p.grad is not None for p in net.parameters())
    net.zero_grad()
    assert all(p.grad is None for p in net.parameters())


def test_repr_shows_the_layer_tree_and_parameter_counts():
    model = nn.MLP([4, 8, 3], activation="relu", seed=0)
    text = repr(model)
    assert text.splitlines()[0] == "MLP(4 -> 8 -> 3, activation='relu'): 67 parameters"
    assert "(hidden.0): Linear(4 -> 8, bias=True): 40 parameters" in text
    assert "(output): Linear(8 -> 3, bias=True): 27 parameters" in text
    assert "(dropout): Dropout(p=0.0)" in text
    assert model.num_parameters() == 4 * 8 + 8 + 8 * 3 + 3


def test_state_dict_copies_arrays_in_parameter_order():
    model = nn.MLP([3, 4, 2], seed=0)
    state = model.state_dict()
    assert list(state) == [n for n, _ in model.named_parameters()]
    state["output.weight"][:] = 7.0
    assert not np.any(model.output.weight.data == 7.0)


def test_load_state_dict_round_trip_copies_in_place():
    source, target = nn.MLP([3, 4, 2], seed=0), nn.MLP([3, 4, 2], seed=1)
    weight_object = target.output.weight
    result = target.load_state_dict(source.state_dict())
    assert result.missing_keys == [] and result.unexpected_keys == []
    assert target.output.weight is weight_object
    for (name, a), b in zip(source.state_dict().items(), target.state_dict().values()):
        np.testing.assert_array_equal(a, b, err_msg=name)


def test_load_state_dict_casts_to_the_parameter_dtype():
    model = nn.MLP([3, 2], seed=0, dtype=np.float32)
    state = {k: v.astype(np.float64) for k, v in model.state_dict().items()}
    model.load_state_dict(state)
    assert model.output.weight.dtype == np.float32


def test_load_state_dict_names_every_bad_key_and_both_shapes_and_changes_nothing():
    model = nn.MLP([3, 4, 2], seed=0)
    before = model.state_dict()
    state = nn.MLP([3, 5, 2], seed=1).state_dict()      # hidden width 5 instead of 4
    del state["output.bias"]
    state["extra.weight"] = np.zeros((2, 2))
    with pytest.raises(ValueError) as info:
        model.load_state_dict(state)
    message = str(info.value)
    assert "missing key 'output.bias'" in message and "(2,)" in message
    assert "unexpected key 'extra.weight'" in message
    assert "shape mismatch for 'hidden.0.weight': the state has (3, 5), the module's parameter has (3, 4)" in message
    assert "'hidden.0.bias'" in message and "'output.weight'" in message
    assert "nothing was changed" in message
    for name, array in model.state_dict().items():
        np.testing.assert_array_equal(array, before[name])


def test_load_state_dict_not_strict_reports_missing_and_unexpected_keys_but_loads_the_rest():
    model = nn.MLP([3, 2], seed=0)
    source = nn.MLP([3, 2], seed=1).state_dict()
    state = {"output.weight": source["output.weight"], "stray": np.zeros(1)}
    result = model.load_state_dict(state, strict=False)
    assert result.missing_keys == ["output.bias"] and result.unexpected_keys == ["stray"]
    np.testing.assert_array_equal(model.output.weight.data, source["output.weight"])


def test_load_state_dict_refuses_a_shape_mismatch_even_when_not_strict():
    model = nn.MLP([3, 2], seed=0)
    with pytest.raises(ValueError, match="shape mismatch for 'output.bias'"):
        model.load_state_dict({"output.bias": np.zeros(5)}, strict=False)


def test_check_state_shapes_judges_names_and_shapes_without_arrays_as_load_state_dict_does():
    model = nn.MLP([3, 4, 2], seed=0)
    shapes = {name: array.shape for name, array in nn.MLP([3, 5, 2], seed=1).state_dict().items()}
    with pytest.raises(ValueError) as from_shapes:
        model.check_state_shapes(shapes)
    with pytest.raises(ValueError) as from_arrays:
        model.load_state_dict(nn.MLP([3, 5, 2], seed=1).state_dict())
    assert str(from_shapes.value) == str(from_arrays.value)
    assert "shape mismatch for 'hidden.0.weight': the state has (3, 5)" in str(from_shapes.value)
    result = model.check_state_shapes({"output.weight": (4, 2), "stray": (10**12,)}, strict=False)
    assert result.missing_keys == ["hidden.0.weight", "hidden.0.bias", "output.bias"]
    assert result.unexpected_keys == ["stray"]


def test_load_state_dict_refuses_object_arrays_and_changes_nothing():
    model = nn.MLP([3, 2], seed=0)
    before = model.state_dict()
    state = dict(before, **{"output.bias": np.array([None, None], dtype=object)})
    state["output.weight"] = np.ones((3, 2))
    with pytest.raises(ValueError, match="'output.bias' has dtype object, expected a numeric array"):
        model.load_state_dict(state)
    np.testing.assert_array_equal(model.output.weight.data, before["output.weight"])


def test_a_custom_module_trains_with_the_framework():
    net = Net()
    x = np.random.default_rng(0).standard_normal((8, 3))
    net.eval()
    loss_before = nn.mse(net(x), np.zeros((8, 2))).item()
    optimizer = nn.SGD(net, lr=0.05)
    for _ in range(20):
        optimizer.zero_grad()
        nn.mse(net(x), np.zeros((8, 2))).backward()
        optimizer.step()
    assert nn.mse(net(x), np.zeros((8, 2))).item() < loss_before
    with ag.no_grad():
        assert not net(x).requires_grad


def test_parameters_follows_every_change_of_the_tree():
    # parameters() keeps its answer between calls (l2_penalty calls it every step); each way of
    # changing the tree must show up in the next call, in named_parameters() order
    net = Net()

    def same_as_named():
        return [id(p) for p in net.parameters()] == [id(p) for _, p in net.named_parameters()]
    assert same_as_named() and net.parameters() is not net.parameters()   # a fresh list each time
    before = len(net.parameters())
    net.blocks.append(Block(3))                          # a list changed in place
    assert len(net.parameters()) == before + 2 and same_as_named()
    net.blocks[0] = Block(4)                             # an item replaced, same length
    assert same_as_named()
    net.heads["extra"] = nn.Linear(2, 2, seed=5)         # a dict changed in place
    assert len(net.parameters()) == before + 4 and same_as_named()
    net.blocks[1].proj.bias = None                       # deep inside, an attribute set
    assert len(net.parameters()) == before + 3 and same_as_named()
    net.extra = nn.Parameter(np.zeros(1), kind="bias")   # a new attribute
    assert any(p is net.extra for p in net.parameters()) and same_as_named()
    del net.extra                                        # and deleted
    assert len(net.parameters()) == before + 3 and same_as_named()
    net.training = False                                 # not structural: the answer stays right
    assert same_as_named()


def test_parameters_of_an_unhashable_module_are_still_found():
    import dataclasses

    @dataclasses.dataclass(eq=True)            # eq=True makes instances unhashable
    class Affine(nn.Module):
        n: int = 3

        def __post_init__(self):
            super().__init__()
            self.weight = nn.Parameter(np.ones((self.n, self.n)))

    m = Affine()
    assert [p is m.weight for p in m.parameters()] == [True]
    m.weight = nn.Parameter(np.zeros((2, 2)))
    assert m.parameters()[0] is m.weight and nn.l2_penalty(m, 1.0).item() == 0.0


def test_parameters_never_returns_a_removed_layer_whose_address_was_reused():
    # a layer taken out of a list and replaced by a copy (made without Module.__setattr__, so
    # the structure counter does not move) must show up: ids alone could match a freed object
    import copy

    class Stack(nn.Module):
        def __init__(self):
            super().__init__()
            self.layers = [nn.Linear(2, 3, seed=0)]
    net, spare = Stack(), nn.Linear(2, 3, seed=1)
    for _ in range(50):
        net.parameters()
        net.layers.pop()
        net.layers.append(copy.deepcopy(spare))
        assert net.parameters()[0] is net.layers[0].weight


def test_modules_that_compare_equal_keep_their_own_parameters():
    import copy
    import dataclasses

    @dataclasses.dataclass(unsafe_hash=True)     # equal and same hash for equal fields
    class Affine(nn.Module):
        n: int = 3

        def __post_init__(self):
            super().__init__()
            self.weight = nn.Parameter(np.ones((self.n, self.n)))
    a, b = Affine(), Affine()
    assert a == b and a.parameters()[0] is a.weight
    assert b.parameters()[0] is b.weight
    c = copy.deepcopy(a)                          # a copy starts without a's cache
    assert vars(c).get("_parameter_cache") is None
    assert c.parameters()[0] is c.weight and c.weight is not a.weight
