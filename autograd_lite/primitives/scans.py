"""Scans and orderings along one axis: cumulative sums and products, sorting and gathering."""
from __future__ import annotations
