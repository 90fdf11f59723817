"""Optimizers (SGD with momentum / Nesterov, Adam) and learning-rate schedules.

The update formulas follow PyTorch's conventions (torch.optim.SGD and torch.optim.Adam):
weight decay adds `weight_decay * p` to the gradient (L2, not decoupled), the momentum
buffer starts at zero, and Adam corrects the bias of both moment estimates. Updates are in
place on each parameter's array, so a model and its optimizer share the same Parameters, and
run as one-pass Numba kernels: `autograd_lite.kernels.sgd_update_many` / `adam_update_many` (one
call for all parameters, checked once, the kernel run on each; `sgd_update` / `adam_update` on each
where they cannot); each step counts
up the parameter's version, so a backward through a graph recorded before the step raises
instead of using the updated values.
"""
from __future__ import annotations

import copy
import functools
import math
import operator
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple, Union

import numpy as np

from autograd_lite import Tensor, kernels
from autograd_lite.engine import increment_versions, replayed

from .module import Module

Params = Union[Module, Iterable[Tensor]]


class Optimizer:
    """Base class: holds the parameters, their per-parameter state and the learning rate `lr`
    (which a schedule may change between steps)."""

    state_names: Tuple[str, ...] = ()

    def __init__(self, params: Params, lr: float) -> None:
        name = type(self).__name__
        params = list(params.parameters() if isinstance(params, Module) else params)
        if not params:
            raise ValueError(f"{name}: got no parameters to optimise")
        for i, p in enumerate(params):
            if not isinstance(p, Tensor) or not p.requires_grad or not p.is_leaf:
                raise TypeError(f"{name}: parameter {i} must be a leaf Tensor with requires_grad=True "
                                f"(a Parameter), got {type(p).__name__}")
        if len({id(p) for p in params}) != len(params):
            raise ValueError(f"{name}: a parameter appears more than once")
        _check_nonnegative(name, "lr", lr)
        self.params: List[Tensor] = params
        self.lr = float(lr)
        self.state: List[Dict[str, Any]] = [self._initial_state(p) for p in params]
        self._flat_cache: Dict[int, Tuple[list, list]] = {}   # see `_flat`

    def _initial_state(self, p: Tensor) -> Dict[str, Any]:
        return {}

    def hyperparameters(self) -> Dict[str, Any]:
        """The settings that define the update (lr included), as plain Python values."""
        return {"lr": self.lr}

    def zero_grad(self) -> None:
        """Forget every parameter's gradient (sets `.grad` to None)."""
        for p in self.params:
            p.grad = None

    def step(self) -> None:
        """Update every parameter that has a gradient, in place (the others are skipped).

        Every gradient is checked first (one of another shape raises, and nothing is changed);
        parameters of one float dtype, C-contiguous, are then updated by one call for all of
        them (`_update_many`: checked once, then the kernel on each, with no per-parameter
        checks), the others one by one; the arithmetic is the same kernel's either way. Inside
        ag.compile it is called again at every replay, reading lr, the other settings and the
        state then (or its updates are folded into the gradients' kernels: `folded_update`)."""
        self._step_except(frozenset())

    def _step_except(self, folded: frozenset) -> None:
        """`step`, where the parameters whose ids are in `folded` were updated already (their
        updates folded into their gradients' kernels by ag.compile): only their versions count."""
        chosen, arrays, grads, states, done = [], [], [], [], []
        for p, state in zip(self.params, self.state):
            g = p.grad
            if g is None:
                continue
            if folded and id(p) in folded:
                done.append(p)
                continue
            param, grad = p.data, g.data
            if grad.shape != param.shape:
                raise ValueError(f"{type(self).__name__}.step: a gradient of shape {grad.shape} "
                                 f"for a parameter of shape {param.shape}")
            chosen.append(p)
            arrays.append(param)
            grads.append(grad if grad.dtype == param.dtype else grad.astype(param.dtype))
            states.append(state)
        if chosen and not self._update_many(arrays, grads, states):
            for param, grad, state in zip(arrays, grads, states):
                self._update(param, grad, state)
        if chosen or done:
            increment_versions(chosen + done)

    def folded_update(self) -> Optional[Dict[str, Any]]:
        """How ag.compile may fold this step's update of a parameter into the kernel that
        computes the parameter's gradient (autograd_lite/compile/fold.py), or None where it may
        not. A dict: "element", the new value of one element of a parameter `p` from its
        gradient `g` and the learning rate `lr` (read at every replay) as a Python expression
        that computes what the eager kernel computes, in the same order; "settings", the
        attributes the expression depends on (a replay checks that they are unchanged, and
        that "params" holds the same Tensors); "params", "zero_grad", "optimizer";
        "apply(p, g, lr)", the update of one parameter in place (where fusion does not take
        it); "rest(folded)", the step of the parameters not in `folded`."""
        return None

    def _declaration(self, element: str, settings: Tuple[str, ...], apply: Any) -> Dict[str, Any]:
        return {"element": element, "settings": settings, "apply": apply, "params": self.params,
                "zero_grad": self.zero_grad, "optimizer": self,
                "rest": self._rest}

    def _rest(self, folded: List[Tensor]) -> Any:
        """The step of the parameters not in `folded` (whose updates ag.compile folded); where
        that is all of them (the params list is guarded), only their versions count."""
        ids = frozenset(id(p) for p in folded)
        if ids == frozenset(id(p) for p in self.params):
            return functools.partial(increment_versions, list(self.params))
        return functools.partial(self._step_except, ids)

    # ag.compile records both as effects replayed at every replay; it asks
    # `prepare_replay(optimizer)` once, at trace time, for the function to call then: the
    # method itself, without the generic replay's handling of recorded arguments
    zero_grad.prepare_replay = lambda self: self.zero_grad   # type: ignore[attr-defined]
    zero_grad = replayed(zero_grad)
    step.prepare_replay = lambda self: self.step   # type: ignore[attr-defined]
    step.fold_replay = lambda self: self.folded_update()   # type: ignore[attr-defined]
    step = replayed(step)

    def _update_many(self, arrays: List[np.ndarray], grads: List[np.ndarray],
                     states: List[Dict[str, Any]]) -> bool:
        """Update all of `arrays` (each with its gradient, of its dtype, and its state) in one
        call of a kernels.*_update_many and return True, or return False, changing nothing,
        where this optimizer cannot (the caller then calls `_update` on each)."""
        return False

    def _flat(self, arrays: List[Any], like: List[np.ndarray]) -> Optional[List[np.ndarray]]:
        """`_flat_views(arrays, like)` (1-D views of the arrays a step writes: the parameters'
        and the state's), remembered for the last list of arrays of each length (a compiled
        step's update of the parameters ag.compile does not fold is another list than the
        eager step's): a step over the same arrays (by identity) reuses their views without
        checking them again (so an array made read-only in place between two steps is still
        written)."""
        cached = self._flat_cache.get(len(arrays))
        if cached is not None and all(map(operator.is_, arrays, cached[0])):
            return cached[1]
        views = _flat_views(arrays, like)
        if views is None:
            self._flat_cache.pop(len(arrays), None)
        else:
            self._flat_cache[len(arrays)] = (arrays, views)
        return views

    def _update(self, param: np.ndarray, grad: np.ndarray, state: Dict[str, Any]) -> None:
        raise NotImplementedError

    def state_dict(self) -> Dict[str, Any]:
        """{"type", "hyperparameters", "state": one dict of arrays/counters per parameter} (copies)."""
        return {"type": type(self).__name__, "hyperparameters": self.hyperparameters(),
                "state": copy.deepcopy(self.state)}

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        """Restore hyperparameters and per-parameter state saved by `state_dict()`.

        Checked first (type, number of parameters, every array's shape); on any mismatch a
        ValueError lists the problems and the optimizer is unchanged.
        """
        name = type(self).__name__
        problems = []
        if state.get("type") != name:
            problems.append(f"the state is for {state.get('type')!r}, this optimizer is {name!r}")
        unknown = sorted(set(state.get("hyperparameters", {})) - set(self.hyperparameters()))
        if unknown:
            problems.append(f"unknown hyperparameters {unknown}; expected {sorted(self.hyperparameters())}")
        saved = state.get("state", [])
        if len(saved) != len(self.params):
            problems.append(f"the state has {len(saved)} parameters, this optimizer {len(self.params)}")
        else:
            for i, (entry, p) in enumerate(zip(saved, self.params)):
                for key in self.state_names:
                    value = entry.get(key)
                    if value is not None and np.shape(value) != p.shape:
                        problems.append(f"parameter {i}: {key!r} has shape {np.shape(value)}, "
                                        f"the parameter has {p.shape}")
        if problems:
            raise ValueError(f"{name}.load_state_dict: cannot load this state (nothing was changed):"
                             "\n  " + "\n  ".join(problems))
        for key, value in state.get("hyperparameters", {}).items():
            setattr(self, key, tuple(value) if isinstance(value, list) else value)
        self.state = [{k: (np.array(v, dtype=p.dtype) if k in self.state_names else v)
                       for k, v in entry.items()} for entry, p in zip(saved, self.params)]


class SGD(Optimizer):
    """Stochastic gradient descent, as torch.optim.SGD (dampening 0):

        g = grad + weight_decay * p
        v = momentum * v + g                       (v starts at 0; only when momentum > 0)
        g = g + momentum * v if nesterov else v
        p = p - lr * g

    With momentum 0 this is the lecture's update W <- W - lr * Delta.
    """

    state_names = ("velocity",)

    def __init__(self, params: Params, lr: float, momentum: float = 0.0, nesterov: bool = False,
                 weight_decay: float = 0.0) -> None:
        _check_nonnegative("SGD", "momentum", momentum)
        _check_nonnegative("SGD", "weight_decay", weight_decay)
        if nesterov and momentum <= 0:
            raise ValueError(f"SGD: nesterov=True needs momentum > 0, got momentum={momentum}")
        self.momentum = float(momentum)
        self.nesterov = bool(nesterov)
        self.weight_decay = float(weight_decay)
        super().__init__(params, lr)

    def _initial_state(self, p: Tensor) -> Dict[str, Any]:
        return {"velocity": np.zeros_like(p.data)} if self.momentum else {}

    def hyperparameters(self) -> Dict[str, Any]:
        return {"lr": self.lr, "momentum": self.momentum, "nesterov": self.nesterov,
                "weight_decay": self.weight_decay}

    def _update_many(self, arrays: List[np.ndarray], grads: List[np.ndarray],
                     states: List[Dict[str, Any]]) -> bool:
        if not self.momentum:
            flat, velocities = self._flat(arrays, arrays), None
        else:
            found = [_velocity(state, a) for a, state in zip(arrays, states)]
            flat = self._flat(arrays + found, arrays + arrays)
            if flat is not None:
                flat, velocities = flat[:len(arrays)], flat[len(arrays):]
        return flat is not None and kernels.sgd_update_many(
            flat, [g.ravel() for g in grads], velocities, self.lr, self.momentum, self.nesterov,
            self.weight_decay, check=False)

    def folded_update(self) -> Optional[Dict[str, Any]]:
        """Plain SGD's update `p - lr * g` (with weight decay `p - lr * (g + wd * p)`), as
        kernels.sgd_update computes it; None with momentum (its velocity is not folded)."""
        if self.momentum or type(self)._update is not SGD._update or \
                type(self)._update_many is not SGD._update_many:
            return None   # (a subclass with an update of its own)
        decay = self.weight_decay
        element = f"p - lr * (g + {decay!r} * p)" if decay else "p - lr * g"
        return self._declaration(element, ("momentum", "nesterov", "weight_decay", "params"),
                                 lambda p, g, lr: kernels.sgd_update(p, g, None, lr, 0.0, False, decay))

    def _update(self, param: np.ndarray, grad: np.ndarray, state: Dict[str, Any]) -> None:
        if not self.momentum:
            kernels.sgd_update(param, grad, None, self.lr, 0.0, False, self.weight_decay)
            return
        kernels.sgd_update(param, grad, _velocity(state, param), self.lr, self.momentum,
                           self.nesterov, self.weight_decay)


def _velocity(state: Dict[str, Any], param: np.ndarray) -> np.ndarray:
    """SGD's velocity of a parameter, zeros made on first use (momentum turned on after
    construction)."""
    velocity = state.get("velocity")
    if velocity is None:
        velocity = state["velocity"] = np.zeros_like(param)
    return velocity


class Adam(Optimizer):
    """Adam (Kingma & Ba 2015), as torch.optim.Adam (L2 weight decay, not AdamW):

        g = grad + weight_decay * p;  t = t + 1
        m = beta1 m + (1 - beta1) g;  v = beta2 v + (1 - beta2) g**2     (m, v start at 0)
        m_hat = m / (1 - beta1**t);   v_hat = v / (1 - beta2**t)         (bias correction)
        p = p - lr * m_hat / (sqrt(v_hat) + eps)
    """

    state_names = ("m", "v")

    def __init__(self, params: Params, lr: float = 1e-3, betas: Sequence[float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 0.0) -> None:
        betas = tuple(float(b) for b in betas)
        if len(betas) != 2 or not all(0.0 <= b < 1.0 for b in betas):
            raise ValueError(f"Adam: betas must be two numbers in [0, 1), got {betas}")
        _check_nonnegative("Adam", "eps", eps)
        _check_nonnegative("Adam", "weight_decay", weight_decay)
        self.betas = betas
        self.eps = float(eps)
        self.weight_decay = float(weight_decay)
        super().__init__(params, lr)

    def _initial_state(self, p: Tensor) -> Dict[str, Any]:
        return {"step": 0, "m": np.zeros_like(p.data), "v": np.zeros_like(p.data)}

    def hyperparameters(self) -> Dict[str, Any]:
        return {"lr": self.lr, "betas": list(self.betas), "eps": self.eps,
                "weight_decay": self.weight_decay}

    def _update_many(self, arrays: List[np.ndarray], grads: List[np.ndarray],
                     states: List[Dict[str, Any]]) -> bool:
        n = len(arrays)
        flat = self._flat(arrays + [s["m"] for s in states] + [s["v"] for s in states], arrays * 3)
        if flat is None:
            return False
        params, ms, vs = flat[:n], flat[n:2 * n], flat[2 * n:]
        if not kernels.adam_update_many(params, [g.ravel() for g in grads], ms, vs,
                                        [s["step"] + 1 for s in states], self.lr, self.betas[0],
                                        self.betas[1], self.eps, self.weight_decay, check=False):
            return False
        for s in states:
            s["step"] += 1
        return True

    def _update(self, param: np.ndarray, grad: np.ndarray, state: Dict[str, Any]) -> None:
        state["step"] += 1
        kernels.adam_update(param, grad, state["m"], state["v"], state["step"], self.lr,
                            self.betas[0], self.betas[1], self.eps, self.weight_decay)


class LRSchedule:
    """Sets `optimizer.lr` from the epoch count: call `step()` once per epoch, after training it.

    `base_lr` is the optimizer's lr when the schedule is made; `lr_at(epoch)` is the rule.
    """

    def __init__(self, optimizer: Optimizer) -> None:
        if not isinstance(optimizer, Optimizer):
            raise TypeError(f"{type(self).__name__}: expected an Optimizer, got {type(optimizer).__name__}")
        self.optimizer = optimizer
        self.base_lr = optimizer.lr
        self.epoch = 0

    def lr_at(self, epoch: int) -> float:
        raise NotImplementedError

    def step(self) -> float:
        """Advance one epoch and set the optimizer's lr; returns the new lr."""
        self.epoch += 1
        self.optimizer.lr = self.lr_at(self.epoch)
        return self.optimizer.lr

    def state_dict(self) -> Dict[str, Any]:
        return {"type": type(self).__name__, "base_lr": self.base_lr, "epoch": self.epoch}

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        if state.get("type") != type(self).__name__:
            raise ValueError(f"{type(self).__name__}.load_state_dict: the state is for "
                             f"{state.get('type')!r}")
        self.base_lr = float(state["base_lr"])
        self.epoch = int(state["epoch"])
        self.optimizer.lr = self.lr_at(self.epoch)


class StepDecay(LRSchedule):
    """lr = base_lr * gamma ** (epoch // step_size): multiply by gamma every step_size epochs
    (torch.optim.lr_scheduler.StepLR)."""

    def __init__(self, optimizer: Optimizer, step_size: int, gamma: float = 0.1) -> None:
        if int(step_size) < 1:
            raise ValueError(f"StepDecay: step_size must be a positive number of epochs, got {step_size}")
        _check_nonnegative("StepDecay", "gamma", gamma)
        super().__init__(optimizer)
        self.step_size = int(step_size)
        self.gamma = float(gamma)

    def lr_at(self, epoch: int) -> float:
        return self.base_lr * self.gamma ** (epoch // self.step_size)


class CosineDecay(LRSchedule):
    """lr = min_lr + (base_lr - min_lr) (1 + cos(pi * epoch / total_epochs)) / 2, and min_lr
    after total_epochs (torch.optim.lr_scheduler.CosineAnnealingLR for its first T_max epochs)."""

    def __init__(self, optimizer: Optimizer, total_epochs: int, min_lr: float = 0.0) -> None:
        if int(total_epochs) < 1:
            raise ValueError(f"CosineDecay: total_epochs must be positive, got {total_epochs}")
        _check_nonnegative("CosineDecay", "min_lr", min_lr)
        super().__init__(optimizer)
        self.total_epochs = int(total_epochs)
        self.min_lr = float(min_lr)

    def lr_at(self, epoch: int) -> float:
        progress = min(epoch, self.total_epochs) / self.total_epochs
        return self.min_lr + (self.base_lr - self.min_lr) * (1 + math.cos(math.pi * progress)) / 2


def _flat_views(arrays: List[Any], like: List[np.ndarray]) -> Optional[List[np.ndarray]]:
    """1-D views of `arrays` for a kernel that writes into them, or None where one is not a
    writable C-contiguous ndarray of the shape and dtype of its counterpart in `like` (the
    parameters), or the dtype is not float32 or float64."""
    dtype = like[0].dtype
    if dtype.char not in "fd":
        return None
    views = []
    for a, p in zip(arrays, like):
        if type(a) is not np.ndarray or a.dtype != dtype or a.shape != p.shape:
            return None
        flags = a.flags
        if not (flags.c_contiguous and flags.writeable):
            return None
        views.append(a.ravel())
    return views


def _check_nonnegative(op: str, name: str, value: float) -> None:
    if not (isinstance(value, (int, float, np.floating, np.integer)) and value >= 0
            and math.isfinite(value)):
        raise ValueError(f"{op}: {name} must be a non-negative finite number, got {value!r}")


# ---------------------------------------------------------------- by name (as losses by name in train.py)
# name -> what it is; `get_optimizer` builds them
OPTIMIZERS = {"sgd": "plain SGD", "momentum": "SGD with Nesterov momentum 0.9", "adam": "Adam"}
# name -> what it does over a run of `epochs`; `get_schedule` builds them
SCHEDULES = {"cosine": "cosine decay to 0 over the epochs", "step": "x0.1 after each third of the epochs",
             "constant": "the same rate throughout"}


def get_optimizer(name: str, params: Params, lr: float) -> Optimizer:
    """An optimizer by name (see OPTIMIZERS): "sgd", "momentum" (Nesterov, 0.9) or "adam".

    Example:
        >>> optimizer = nn.optim.get_optimizer("momentum", model, lr=0.2)
    """
    if name == "sgd":
        return SGD(params, lr=lr)
    if name == "momentum":
        return SGD(params, lr=lr, momentum=0.9, nesterov=True)
    if name == "adam":
        return Adam(params, lr=lr)
    raise ValueError(f"get_optimizer: unknown optimizer {name!r}; choose one of {', '.join(OPTIMIZERS)}")


def get_schedule(name: str, optimizer: Optimizer, epochs: int) -> Union[LRSchedule, None]:
    """A learning-rate schedule by name (see SCHEDULES) for a run of `epochs`: "cosine" (to 0 over
    the epochs), "step" (x0.1 every third of them) or "constant" (None: no schedule)."""
    if name == "cosine":
        return CosineDecay(optimizer, total_epochs=epochs)
    if name == "step":
        return StepDecay(optimizer, step_size=max(1, epochs // 3), gamma=0.1)
    if name == "constant":
        return None
    raise ValueError(f"get_schedule: unknown schedule {name!r}; choose one of {', '.join(SCHEDULES)}")
