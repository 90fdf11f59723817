"""The table-driven tests: every primitive in the table, on inputs drawn from its declared domain
(hypothesis: shapes, broadcasting, values), checked in float64 against finite differences in
reverse mode, in forward mode and at second order, forward against reverse through the transpose
identity <v, J u> = <J^T v, u>, in float32, and its fast paths against its defining rules. A
primitive declared without a domain fails the coverage test; a new one is tested here as soon as
it is declared. The checks themselves are `autograd_lite.testing.PRIMITIVE_CHECKS`, which users
run on their own primitives with `check_primitive`.
"""
from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from autograd_lite import primitives as P
from autograd_lite.testing import PRIMITIVE_CHECKS

TESTED = sorted(name for name, prim in P.PRIMITIVES.items() if prim.domain is not None)
# run apart at half the profile's examples (at least 20): a vmap and a loop of 1-3 examples per
# case, ~40 s for all primitives on the loaded 2-core machine at 20
BATCHING = "batching_rule_matches_a_loop"


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


def test_every_builtin_primitive_has_a_batching_rule():
    missing = sorted(name for name in P.BUILTIN_PRIMITIVES if P.PRIMITIVES[name].batch is None)
    assert not missing, f"declare a batching rule (defbatch) for: {missing}"


@pytest.mark.parametrize("check", sorted(set(PRIMITIVE_CHECKS) - {BATCHING}))
@pytest.mark.parametrize("name", TESTED)
@given(data=st.data())
def test_primitive(name, check, data):
    PRIMITIVE_CHECKS[check](P.PRIMITIVES[name], data)


@pytest.mark.parametrize("name", TESTED)
@settings(max_examples=max(20, settings.default.max_examples // 2))
@given(data=st.data())
def test_batching_rule_matches_a_loop(name, data):
    PRIMITIVE_CHECKS[BATCHING](P.PRIMITIVES[name], data)
