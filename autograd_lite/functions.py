"""The public operations, `ag.NAME`: one per declaration in the table (`autograd_lite/primitives/`).

Each takes Tensors, NumPy arrays or numbers and returns a Tensor. They are generated: an
elementwise op's function from its primitive, the others from the function declared beside it.
"""
from .declaration import PUBLIC
from .tensor import as_tensor
from . import primitives as _table  # noqa: F401  (fills PUBLIC)

globals().update(PUBLIC)
__all__ = ["as_tensor", *sorted(PUBLIC)]
