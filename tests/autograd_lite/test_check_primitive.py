"""check_primitive certifies a user's primitive from its declared domain, and catches wrong rules."""
import numpy as np
import pytest

import autograd_lite as ag
from autograd_lite import primitives as P
from autograd_lite.declaration import Values
from autograd_lite.testing import check_primitive


def _cube(vjp_factor=3.0, jvp_factor=3.0):
    cube = ag.Primitive("cube", lambda x: x ** 3, register=False)
    cube.defvjp(lambda g, ans, x: g * vjp_factor * x ** 2)
    cube.defjvp(lambda t, ans, x: t * jvp_factor * P.power_scalar(x, p=2))
    cube.domain = (Values(-2.0, 2.0),)
    return cube


def test_a_correct_primitive_is_certified():
    check_primitive(_cube(), max_examples=10)


@pytest.mark.parametrize("vjp_factor, jvp_factor", [(2.0, 3.0), (3.0, 2.0)])
def test_a_wrong_rule_fails_with_the_input_that_shows_it(vjp_factor, jvp_factor):
    with pytest.raises(AssertionError):
        check_primitive(_cube(vjp_factor, jvp_factor), max_examples=10, shrink=False)


def test_a_fast_path_that_disagrees_with_its_rule_is_caught():
    twice = ag.Primitive("twice", lambda x, y: 2 * x + y, register=False)
    twice.defvjp(lambda g, ans, x, y: 2 * g, lambda g, ans, x, y: g)
    twice.defjvp(lambda t, ans, x, y: 2 * t, lambda t, ans, x, y: t)
    twice.defvjp_joint(lambda g, ans, x, y, wanted: [2 * g if wanted[0] else None,
                                                     2 * g if wanted[1] else None])  # wrong for y
    twice.domain = (Values(), Values())
    with pytest.raises(AssertionError, match="joint rule, input 1"):
        check_primitive(twice, max_examples=10, shrink=False)


def test_a_primitive_without_a_domain_is_refused():
    bare = ag.Primitive("bare", np.sin, register=False)
    with pytest.raises(ValueError, match="check_primitive: 'bare' has no test domain"):
        check_primitive(bare)


def test_a_batching_rule_is_checked_against_the_loop():
    from autograd_lite.batching import elementwise_batch
    right = _cube()
    right.defbatch(elementwise_batch(right))
    check_primitive(right, max_examples=10)
    wrong = _cube()
    # x**3 * 1.5: wrong for every nonzero example, whatever batch size hypothesis draws
    wrong.defbatch(lambda args, dims: (P.multiply(wrong(args[0]), 1.5), 0))
    with pytest.raises(AssertionError, match="batching rule against the loop"):
        check_primitive(wrong, max_examples=10, shrink=False)
