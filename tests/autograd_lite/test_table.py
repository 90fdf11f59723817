"""The table-driven tests: every primitive in the table, on inputs drawn from its declared domain
(hypothesis: shapes, broadcasting, values), checked in float64 against finite differences in
reverse mode, in forward mode and at second order, forward against reverse through the transpose
identity <v, J u> = <J^T v, u>, and in float32. A primitive declared without a domain fails the
coverage test; a new one is tested here as soon as it is declared.
"""
from __future__ import annotations

from typing import Any, Callable

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import autograd_lite as ag
from autograd_lite import primitives as P
from autograd_lite.forward import jvp
from autograd_lite.functional import vjp
from autograd_lite.testing import draw_case

TESTED = sorted(name for name, prim in P.PRIMITIVES.items() if prim.domain is not None)


def _case(name: str, data: Any) -> tuple:
    prim = P.PRIMITIVES[name]
    fn, inputs = draw_case(prim, data)
    return prim, fn, inputs


def _finite_difference(fn: Callable, inputs: list, directions: list, eps: float) -> np.ndarray:
    plus = fn(*[x + eps * u for x, u in zip(inputs, directions)])
    minus = fn(*[x - eps * u for x, u in zip(inputs, directions)])
    return (np.asarray(plus, dtype=np.float64) - np.asarray(minus, dtype=np.float64)) / (2 * eps)


def _seeded(data: Any) -> np.random.Generator:
    return np.random.default_rng(data.draw(st.integers(0, 2 ** 32 - 1), label="seed"))


def test_every_builtin_primitive_declares_a_test_domain():
    missing = sorted(name for name in P.BUILTIN_PRIMITIVES if P.PRIMITIVES[name].domain is None)
    assert not missing, f"declare a domain (test inputs) for: {missing}"


def test_every_builtin_primitive_has_a_vjp_and_a_jvp_rule_per_input():
    for name in P.BUILTIN_PRIMITIVES:
        prim = P.PRIMITIVES[name]
        assert any(r is not None for r in prim.vjps), name
        assert len(prim.jvps) == len(prim.vjps), name
        for vjp_rule, jvp_rule in zip(prim.vjps, prim.jvps):
            assert (vjp_rule is None) == (jvp_rule is None), \
                f"{name}: VJP and JVP rules differ in which inputs they cover"


@pytest.mark.parametrize("name", TESTED)
@given(data=st.data())
def test_vjp_matches_finite_differences(name, data):
    prim, fn, inputs = _case(name, data)
    options = {"atol": 1e-5, "rtol": 1e-4,
               **{k: v for k, v in prim.check.items() if k in ("eps", "atol", "rtol")}}
    assert ag.gradcheck(fn, *inputs, **options)


@pytest.mark.parametrize("name", TESTED)
@given(data=st.data())
def test_jvp_matches_finite_differences(name, data):
    prim, fn, inputs = _case(name, data)
    eps = prim.check.get("eps", 1e-6)
    tangents = [_seeded(data).standard_normal(np.shape(x)) for x in inputs]
    value, tangent = jvp(fn, tuple(inputs), tuple(tangents))
    np.testing.assert_allclose(value, np.asarray(fn(*inputs)), rtol=1e-12, atol=0)
    assert np.shape(tangent) == np.shape(value)
    expected = _finite_difference(fn, inputs, tangents, eps)
    np.testing.assert_allclose(tangent, expected, rtol=prim.check.get("rtol", 1e-5),
                               atol=prim.check.get("atol", 1e-7))


@pytest.mark.parametrize("name", TESTED)
@given(data=st.data())
def test_transpose_identity_between_jvp_and_vjp(name, data):
    # <v, J u> == <J^T v, u>: forward and reverse rules describe the same linear map
    prim, fn, inputs = _case(name, data)
    rng = _seeded(data)
    us = tuple(rng.standard_normal(np.shape(x)) for x in inputs)
    value, j_u = jvp(fn, tuple(inputs), us)
    v = rng.standard_normal(np.shape(value)).astype(np.asarray(value).dtype)
    _, pullback = vjp(fn, *inputs)
    jt_v = pullback(v)
    left = float(np.sum(np.asarray(j_u, dtype=np.float64) * v))
    right = sum(float(np.sum(np.asarray(g, dtype=np.float64) * u)) for g, u in zip(jt_v, us))
    scale = 1 + abs(left) + sum(float(np.sum(np.abs(g))) for g in jt_v)
    assert abs(left - right) <= 1e-5 * scale, f"{name}: <v, J u> = {left}, <J^T v, u> = {right}"


@pytest.mark.parametrize("name", TESTED)
@given(data=st.data())
def test_jvp_rule_is_itself_differentiable(name, data):
    # jvp of jvp: under an outer trace the inner rules run on Tensors, so they must give the same
    # first derivative, and a second derivative that matches finite differences of the first
    prim, fn, inputs = _case(name, data)
    rng = _seeded(data)
    us = tuple(rng.standard_normal(np.shape(x)) for x in inputs)
    ws = tuple(rng.standard_normal(np.shape(x)) for x in inputs)

    def first(*xs):
        return jvp(fn, xs, us)[1]

    j_u, second = jvp(first, tuple(inputs), ws)
    np.testing.assert_allclose(j_u, first(*inputs), rtol=1e-12, atol=1e-12)
    eps, rtol, atol = (prim.check.get(k, d) for k, d in (("eps", 1e-6), ("rtol", 1e-5), ("atol", 1e-7)))
    expected = _finite_difference(first, inputs, list(ws), 10 * eps)
    np.testing.assert_allclose(second, expected, rtol=10 * rtol, atol=100 * atol)


@pytest.mark.parametrize("name", TESTED)
@given(data=st.data())
def test_grad_of_grad_matches_finite_differences_of_the_gradient(name, data):
    # reverse over reverse: the VJP rules run on Tensors under create_graph=True
    prim, fn, inputs = _case(name, data)
    rng = _seeded(data)
    v = None

    def gradient(*xs):
        nonlocal v
        leaves = [ag.tensor(x, requires_grad=True) for x in xs]
        out = fn(*leaves)
        if v is None:
            v = rng.standard_normal(out.shape)
        if not out.requires_grad:
            return [ag.tensor(np.zeros_like(x)) for x in xs], leaves
        return ag.autograd_grad((out * v).sum(), leaves, create_graph=True, allow_unused=True), leaves

    grads, leaves = gradient(*inputs)
    ws = [rng.standard_normal(np.shape(x)) for x in inputs]
    us = [rng.standard_normal(np.shape(x)) for x in inputs]
    total = sum((g * w).sum() for g, w in zip(grads, ws) if g is not None and g.requires_grad)
    if isinstance(total, ag.Tensor):
        second = ag.autograd_grad(total, leaves, allow_unused=True)
        measured = sum(float(np.sum(s.data * u)) for s, u in zip(second, us) if s is not None)
    else:
        # no recorded gradient depends on the inputs: right for a linear op, and what a rule that
        # computes on raw arrays would give too; the finite differences below tell them apart
        measured = 0.0

    def directional(*xs):
        gs, _ = gradient(*xs)
        return sum(float(np.sum(g.data * w)) for g, w in zip(gs, ws) if g is not None)

    eps = 10 * prim.check.get("eps", 1e-6)
    expected = (directional(*[x + eps * u for x, u in zip(inputs, us)]) -
                directional(*[x - eps * u for x, u in zip(inputs, us)])) / (2 * eps)
    assert abs(measured - expected) <= 1e-4 * (1 + abs(expected)), \
        f"{name}: second derivative {measured}, finite differences of the first {expected}"


@pytest.mark.parametrize("name", TESTED)
@given(data=st.data())
def test_float32_stays_float32_through_the_op_and_its_gradient(name, data):
    prim, fn, inputs = _case(name, data)
    wide = fn(*[ag.tensor(x) for x in inputs])
    leaves = [ag.tensor(x.astype(np.float32), requires_grad=True) for x in inputs]
    out = fn(*leaves)
    if wide.dtype == np.float64 and prim.check.get("keeps_float32", True):
        assert out.dtype == np.float32, f"{name}: float32 inputs gave {out.dtype}"
    if out.requires_grad:
        (out.astype(np.float64) * 1.0).sum().backward()
        for leaf in leaves:
            assert leaf.grad is None or leaf.grad.dtype == np.float32, name
