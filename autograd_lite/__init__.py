"""autograd-lite: reverse-mode (and forward-mode) automatic differentiation on NumPy arrays."""
from .tensor import Tensor, tensor
from .engine import no_grad, enable_grad, set_grad_enabled, is_grad_enabled, GraphReleasedError
from .engine import grad as autograd_grad
from .declaration import PRIMITIVES, Primitive, Values, primitive
from . import tensor_methods as _tensor_methods  # noqa: F401  (the operators and methods of Tensor)
from .functions import *  # noqa: F401,F403  (ag.NAME for every declared operation)
from .functions import as_tensor
from .gradcheck import gradcheck, GradcheckError

__version__ = "0.1.0"
from .anomaly import detect_anomaly, AnomalyError, is_anomaly_enabled
from .graph import to_dot, render, explain
from .forward import jvp
from .functional import grad, value_and_grad, vjp, jacobian, hessian, hvp
from .checkpoint import checkpoint
from .vmap import vmap
from .compile import compile, Compiled, CompileWarning, TracingError
from . import kernels, fused
from .declaration import check_rules_declared_from_now_on as _seal_table
from .kernels import set_kernels, get_kernels

_seal_table()  # the built-in table (primitives and fused) is tested; users' rules are checked as they run
