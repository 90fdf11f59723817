"""Contractions: einsum and the products built on it or beside it (tensordot, inner, kron,
trace, diagonal, cross)."""
from __future__ import annotations
