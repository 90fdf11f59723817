"""nn: neural-network modules, losses and optimizers built on autograd_lite."""
from .module import Module, Parameter, IncompatibleKeys
from .layers import (
    Linear, Sigmoid, Tanh, ReLU, Softmax, Dropout, Sequential, MLP,
    init_weight, make_rng, activation_module,
)
from .losses import (
    binary_cross_entropy, binary_cross_entropy_with_logits, categorical_cross_entropy,
    sparse_categorical_cross_entropy, mse, l2_penalty,
)
from .optim import Optimizer, SGD, Adam, LRSchedule, StepDecay, CosineDecay
from .serialization import save, load, load_header, ModelFileError
from .images import Preprocessing
from .train import fit, evaluate, predict, predict_proba, History, Evaluation
from .diagnostics import TrainingWarning, TrainingMonitor, EpochDiagnostics, LayerStats
from . import data, datasets
