"""autograd-lite: reverse-mode (and forward-mode) automatic differentiation on NumPy arrays."""
from .tensor import Tensor, tensor
from .engine import no_grad, enable_grad, set_grad_enabled, is_grad_enabled, GraphReleasedError
from .engine import grad as autograd_grad
from .primitives import PRIMITIVES, Primitive, primitive
from .functions import (
    as_tensor, negative, absolute, abs, sqrt, exp, log, log1p, expm1, sin, cos, tanh, sigmoid, relu,
    softplus, add, subtract, multiply, divide, power, maximum, minimum, matmul, where, clip, astype,
    sum, mean, max, min, var, logsumexp, softmax, log_softmax, reshape, transpose, permute, swapaxes,
    expand_dims, squeeze, broadcast_to, concatenate, stack, dot, outer,
)
from .gradcheck import gradcheck, GradcheckError

__version__ = "0.1.0"
from .anomaly import detect_anomaly, AnomalyError, is_anomaly_enabled
from .graph import to_dot, render, explain
from .forward import jvp
from .functional import grad, value_and_grad, vjp, jacobian, hessian, hvp
from . import kernels, fused
from .kernels import set_kernels, get_kernels
