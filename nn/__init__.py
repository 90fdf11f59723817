"""nn: neural-network modules, losses and optimizers built on autograd_lite.

The names below are imported when first used (PEP 562), so that `python -m nn` reaches its
Ctrl-C guard in `nn/__main__.py` before anything heavy (NumPy, Numba, the layers) is imported;
this file imports nothing the interpreter has not loaded already (not even `typing`), so that a
Ctrl-C can hardly land in it.
"""
import importlib  # already loaded by the interpreter's start-up (runpy uses it): costs nothing here

_WHERE = {
    "module": ["Module", "Parameter", "IncompatibleKeys"],
    "layers": ["Linear", "Sigmoid", "Tanh", "ReLU", "Softmax", "Dropout", "Sequential", "MLP",
               "init_weight", "make_rng", "activation_module", "Identity", "ModuleList", "LeakyReLU", "GELU"],
    "conv": ["Conv1d", "Conv2d", "MaxPool2d", "AvgPool2d", "AdaptiveAvgPool2d", "Flatten"],
    "normalization": ["BatchNorm1d", "BatchNorm2d", "LayerNorm"],
    "cnn": ["CNN"],
    "losses": ["binary_cross_entropy", "binary_cross_entropy_with_logits", "categorical_cross_entropy",
               "sparse_categorical_cross_entropy", "mse", "l2_penalty"],
    "optim": ["Optimizer", "SGD", "Adam", "LRSchedule", "StepDecay", "CosineDecay"],
    "serialization": ["save", "load", "load_header", "ModelFileError"],
    "images": ["Preprocessing"],
    "train": ["fit", "evaluate", "predict", "predict_proba", "History", "Evaluation"],
    "diagnostics": ["TrainingWarning", "TrainingMonitor", "EpochDiagnostics", "LayerStats"],
    "per_example": ["per_example_grads", "clip_per_example", "functional_call"],
}
_MODULE_OF = {name: module for module, names in _WHERE.items() for name in names}
# modules reached as attributes; nn.sweep is callable: nn.sweep(configs, ...) runs a sweep
_SUBPACKAGES = ("data", "datasets", "sweep", "distributed")
__all__ = sorted(_MODULE_OF) + list(_SUBPACKAGES)


def __getattr__(name: str) -> object:
    if name in _MODULE_OF:
        value = getattr(importlib.import_module("." + _MODULE_OF[name], __name__), name)
    elif name in _SUBPACKAGES:
        value = importlib.import_module("." + name, __name__)
    else:
        raise AttributeError(f"module 'nn' has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
