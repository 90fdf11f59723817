"""Bugs found by the review of ag.compile's scheduling, fusion and call path (issue 14), each
as a test that failed before its fix."""
import numpy as np
import pytest

import autograd_lite as ag


def test_the_read_only_in_place_error_names_the_operator_in_its_suggestion():
    """The message's suggestion `t = t + x` was printed as `t = t {symbol[:-1]} x` (a missing f)."""
    t = ag.tensor(np.broadcast_to(np.arange(3.0), (2, 3)))
    with pytest.raises(ValueError, match=r"read-only") as info:
        t += 1.0
    assert "`t = t + x`" in str(info.value) and "{" not in str(info.value)
