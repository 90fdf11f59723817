"""einsum against np.einsum on many subscripts (explicit, implicit, '...', repeated indices, the
sublist form), and the products built on it (tensordot, inner, kron, trace, diagonal, diag,
cross) against NumPy, with their gradients (reverse and forward mode) against finite
differences, their errors and float32. The einsum primitive itself is also in test_table.py."""
import re
import warnings

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import autograd_lite as ag

RNG = np.random.default_rng(0)


def _random(*shapes):
    return [RNG.uniform(-2, 2, s) for s in shapes]


def _check_derivatives(fn, *inputs):
    """Reverse mode (gradcheck) and forward mode (jvp) against central finite differences."""
    assert ag.gradcheck(fn, *inputs)
    tangents = tuple(RNG.standard_normal(np.shape(x)) for x in inputs)
    value, tangent = ag.jvp(fn, tuple(inputs), tangents)
    eps = 1e-6
    plus = fn(*[ag.tensor(x + eps * t) for x, t in zip(inputs, tangents)]).data
    minus = fn(*[ag.tensor(x - eps * t) for x, t in zip(inputs, tangents)]).data
    np.testing.assert_allclose(np.asarray(tangent), (plus - minus) / (2 * eps), rtol=1e-5, atol=1e-7)


def _one_sentence(message: str) -> bool:
    return not re.search(r"[.;]\s+[A-Z]", message)


# ---------------------------------------------------------------- einsum
EINSUM_CASES = [
    ("ij,jk->ik", [(3, 4), (4, 5)]),                      # matrix product (BLAS)
    ("ij,jk", [(3, 4), (4, 5)]),                          # implicit output
    ("ik,jk->ij", [(3, 4), (5, 4)]),                      # a @ b.T
    ("ij,jk->ki", [(3, 4), (4, 5)]),                      # transposed output
    ("bij,bjk->bik", [(2, 3, 4), (2, 4, 5)]),             # batched
    ("...ij,...jk->...ik", [(2, 1, 3, 4), (5, 4, 2)]),    # '...' broadcast over batch shapes
    ("...ij,...jk", [(2, 1, 3, 4), (5, 4, 2)]),
    ("i...,...->...i", [(3, 2, 4), (4,)]),                # '...' in the middle and alone
    ("...i->...", [(2, 3, 4)]),
    ("ij->...", [(2, 3)]),                                # an empty '...' in the output
    ("ii->", [(4, 4)]),                                   # trace
    ("ii", [(4, 4)]),
    ("ii->i", [(4, 4)]),                                  # diagonal
    ("iii->i", [(3, 3, 3)]),
    ("iij->ji", [(3, 3, 2)]),
    ("ii,i->i", [(3, 3), (3,)]),
    ("ij->", [(3, 4)]),                                   # sum
    ("ij->i", [(3, 4)]),
    ("ij->ji", [(3, 4)]),                                 # transpose
    ("i,j->ij", [(3,), (4,)]),                            # outer
    ("i,i->", [(5,), (5,)]),                              # dot
    ("ij,j->i", [(3, 4), (4,)]),                          # matrix-vector
    ("ij,ij->ij", [(3, 4), (3, 4)]),                      # elementwise
    ("ij,ij->i", [(3, 4), (1, 4)]),                       # a size-1 axis broadcast
    ("ij,jk->ik", [(3, 1), (4, 5)]),                      # a summed index of size 1 broadcast
    ("ab,cd->", [(2, 3), (4, 5)]),                        # indices summed within each operand
    ("ij,jk,kl->il", [(2, 3), (3, 4), (4, 2)]),           # three operands
    ("ij,jk,kl->il", [(12, 12), (12, 12), (12, 12)]),     # ... large enough for optimize=True
    ("i,i,i->", [(4,), (4,), (4,)]),
    ("ij,jk,kl,lm->mi", [(2, 3), (3, 2), (2, 3), (3, 2)]),
    ("Ab,bA->", [(3, 4), (4, 3)]),                        # upper-case letters
    (" i j , j k -> i k ", [(2, 3), (3, 4)]),             # spaces, as NumPy ignores them
    ("->", [()]),                                         # a 0-d operand
    (",i->i", [(), (3,)]),
    ("i,i->", [(0,), (0,)]),                              # empty axes
    ("ij,jk->ik", [(2, 0), (0, 3)]),
]


@pytest.mark.parametrize("subscripts, shapes", EINSUM_CASES, ids=[c[0] for c in EINSUM_CASES])
def test_einsum_matches_numpy_and_its_gradients_match_finite_differences(subscripts, shapes):
    xs = _random(*shapes)
    out = ag.einsum(subscripts, *xs)
    np.testing.assert_allclose(out.data, np.einsum(subscripts, *xs), rtol=1e-12, atol=1e-12)
    _check_derivatives(lambda *ts: ag.einsum(subscripts, *ts), *xs)


@pytest.mark.parametrize("subscripts, shapes", [
    ("ij,jk->ik", [(3, 4), (4, 5)]), ("ii,i->i", [(3, 3), (3,)]), ("ij,jk,kl->il", [(2, 3), (3, 4), (4, 2)]),
    ("...ij,...jk->...ik", [(2, 1, 3, 4), (5, 4, 2)])])
def test_einsum_second_derivatives_match_finite_differences_of_the_first(subscripts, shapes):
    xs = _random(*shapes)
    v = RNG.standard_normal(np.einsum(subscripts, *xs).shape)
    ws = _random(*shapes)

    def directional(*ts):  # <d/dx <v, einsum(x)>, w>, a function of the inputs again
        leaves = [t if t.requires_grad else ag.tensor(t.data, requires_grad=True) for t in ts]
        grads = ag.autograd_grad((ag.einsum(subscripts, *leaves) * v).sum(), leaves, create_graph=True)
        return sum((g * w).sum() for g, w in zip(grads, ws))

    assert ag.gradcheck(directional, *xs)


@st.composite
def _einsum_specs(draw):
    """Random subscripts over the letters 'abcd' (repeats within an operand included), an
    explicit or implicit output, and operands of sizes 1-3 per letter."""
    sizes = {c: draw(st.integers(1, 3)) for c in "abcd"}
    terms = draw(st.lists(st.text("abcd", min_size=0, max_size=3), min_size=1, max_size=3))
    used = sorted(set("".join(terms)))
    if draw(st.booleans()):
        spec = ",".join(terms)
    else:
        spec = ",".join(terms) + "->" + "".join(draw(st.permutations(used))[:draw(st.integers(0, len(used)))])
    seed = draw(st.integers(0, 2 ** 32 - 1))
    rng = np.random.default_rng(seed)
    return spec, [rng.uniform(-2, 2, tuple(sizes[c] for c in t)) for t in terms]


@given(_einsum_specs())
def test_einsum_of_random_subscripts_matches_numpy_and_finite_differences(case):
    spec, xs = case
    np.testing.assert_allclose(ag.einsum(spec, *xs).data, np.einsum(spec, *xs), rtol=1e-12, atol=1e-12)
    _check_derivatives(lambda *ts: ag.einsum(spec, *ts), *xs)


def test_einsum_accepts_numpys_sublist_form():
    x, y = _random((2, 3), (3, 4))
    np.testing.assert_allclose(ag.einsum(x, [0, 1], y, [1, 2], [0, 2]).data, x @ y)
    np.testing.assert_allclose(ag.einsum(x, [0, 1], y, [1, 2]).data, np.einsum(x, [0, 1], y, [1, 2]))
    b = _random((5, 2, 3))[0]
    np.testing.assert_allclose(ag.einsum(b, [Ellipsis, 0, 1], [1, Ellipsis]).data,
                               np.einsum(b, [Ellipsis, 0, 1], [1, Ellipsis]))
    assert ag.gradcheck(lambda s, t: ag.einsum(s, [0, 1], t, [1, 2], [0, 2]), x, y)


@pytest.mark.parametrize("optimize", [False, True, "greedy", "optimal", ["einsum_path", (0, 1), (0, 1)]])
def test_einsum_accepts_numpys_optimize_argument(optimize):
    x, y, z = _random((2, 3), (3, 4), (4, 2))
    np.testing.assert_allclose(ag.einsum("ij,jk,kl->il", x, y, z, optimize=optimize).data, x @ y @ z)
    np.testing.assert_allclose(np.einsum("ij,jk,kl->il", ag.tensor(x), y, z, optimize=optimize).data, x @ y @ z)


def test_einsum_refuses_an_optimize_value_numpy_refuses():
    with pytest.raises(ValueError, match=r"^einsum: optimize must be False, True, 'greedy', 'optimal' "
                                         r"or a contraction path \(a list\), as in np\.einsum, got 'fast'$"):
        ag.einsum("i", np.ones(2), optimize="fast")


def test_einsum_mixes_tensors_with_arrays_and_lists():
    w = ag.tensor(_random((2, 3))[0], requires_grad=True)
    out = ag.einsum("ij,j->i", w, [1.0, 2.0, 3.0])
    out.sum().backward()
    np.testing.assert_allclose(w.grad.data, np.tile([1.0, 2.0, 3.0], (2, 1)))


def test_the_diagonal_cotangent_lies_on_the_diagonal():
    x = ag.tensor(np.arange(9.0).reshape(3, 3), requires_grad=True)
    (ag.einsum("ii->i", x) * np.array([1.0, 2.0, 3.0])).sum().backward()
    np.testing.assert_array_equal(x.grad.data, np.diag([1.0, 2.0, 3.0]))


@pytest.mark.parametrize("args, message", [
    (("ij,jk->ik", np.ones((2, 3)), np.ones((4, 5))), r"index 'j' has size 3 in operand 0 but size 4 in operand 1"),
    (("ij,jk", np.ones((2, 3)), np.ones((3, 4, 5))), r"operand 1 has 3 dimension\(s\).*'jk' name 2"),
    (("...ij", np.ones(3)), r"operand 0 has 1 dimension\(s\).*'\.\.\.ij' name 2"),
    (("ii->i", np.ones((2, 3))), r"operand 0 repeats the index 'i' over axes of sizes 2 and 3"),
    (("ij,jk->ik", np.ones((2, 3))), r"name 2 operand\(s\), but 1 were given"),
    (("ij", np.ones((2, 3)), np.ones((2, 3))), r"name 1 operand\(s\), but 2 were given"),
    (("i1->i", np.ones((2, 2))), r"subscripts of operand 0, 'i1', contain '1'"),
    (("i.j", np.ones((2, 2))), r"operand 0, 'i\.j', have a '\.' outside a single '\.\.\.'"),
    (("ij->jj", np.ones((2, 2))), r"output 'jj' repeats the index 'j'"),
    (("ij->k", np.ones((2, 2))), r"output index 'k' appears in no operand"),
    (("ij-", np.ones((2, 2))), r"'-' and '>' may appear only together"),
    (("i->i->i", np.ones(2)), r"'-' and '>' may appear only together"),
    (("...i,...i->...", np.ones((2, 3)), np.ones((4, 3))), r"axes under '\.\.\.' do not broadcast together: \(2,\) in operand 0, \(4,\) in operand 1"),
    (("...i->i", np.ones((2, 3))), r"operands have axes under '\.\.\.' \(shape \(2,\)\), but the output 'i' has no '\.\.\.'"),
    (("i",), r"needs at least one operand"),
    ((np.ones(2), ["i"]), r"a label in the sublist form is an int in 0\.\.51 or Ellipsis, got 'i' for operand 0"),
])
def test_einsum_errors_are_one_sentence_naming_einsum_and_the_operand(args, message):
    with pytest.raises(ValueError, match=r"^einsum: .*" + message) as error:
        ag.einsum(*args)
    assert _one_sentence(str(error.value)), str(error.value)


@pytest.mark.parametrize("subscripts, shapes", [
    ("ij,jk->ik", [(3, 4), (4, 5)]), ("ii->i", [(3, 3)]), ("ij->", [(2, 3)]),
    ("ij,jk,kl->il", [(2, 3), (3, 4), (4, 2)]), ("bij,bjk->bik", [(2, 3, 4), (2, 4, 5)])])
def test_einsum_keeps_float32_through_the_op_and_its_gradient(subscripts, shapes):
    leaves = [ag.tensor(x.astype(np.float32), requires_grad=True) for x in _random(*shapes)]
    out = ag.einsum(subscripts, *leaves)
    assert out.dtype == np.float32
    out.sum().backward()
    assert all(leaf.grad.dtype == np.float32 for leaf in leaves)


# ---------------------------------------------------------------- tensordot, inner, kron
@pytest.mark.parametrize("shapes, axes", [
    ([(3, 4, 5), (4, 5, 2)], 2), ([(3, 4), (4, 5)], 1), ([(2, 3), (4,)], 0), ([(3, 4), (3, 4)], 2),
    ([(3, 4, 5), (5, 3, 2)], ([0, 2], [1, 0])), ([(3, 4), (2, 4)], (-1, -1)), ([(3,), (3,)], ([0], [0])),
])
def test_tensordot_matches_numpy(shapes, axes):
    a, b = _random(*shapes)
    np.testing.assert_allclose(ag.tensordot(a, b, axes).data, np.tensordot(a, b, axes), rtol=1e-12)
    _check_derivatives(lambda s, t: ag.tensordot(s, t, axes), a, b)


@pytest.mark.parametrize("shapes", [[(4,), (4,)], [(2, 4), (3, 5, 4)], [(), (2, 3)], [(3,), ()]])
def test_inner_matches_numpy(shapes):
    a, b = _random(*shapes)
    np.testing.assert_allclose(ag.inner(a, b).data, np.inner(a, b), rtol=1e-12)
    _check_derivatives(ag.inner, a, b)


@pytest.mark.parametrize("shapes", [[(2, 3), (4, 5)], [(3,), (2,)], [(2,), (3, 2)], [(2, 1, 3), (2, 2)],
                                    [(), (2, 3)]])
def test_kron_matches_numpy(shapes):
    a, b = _random(*shapes)
    np.testing.assert_allclose(ag.kron(a, b).data, np.kron(a, b), rtol=1e-12)
    _check_derivatives(ag.kron, a, b)


# ---------------------------------------------------------------- trace, diagonal, diag
DIAGONAL_CASES = [((4, 4), 0, 0, 1), ((3, 5), 1, 0, 1), ((3, 5), -2, 0, 1), ((5, 3), 3, 0, 1),
                  ((2, 3, 4), 1, 0, 2), ((2, 3, 4), -1, 2, 0), ((3, 2, 4, 3), 0, -1, 0), ((3, 3), 5, 0, 1)]


@pytest.mark.parametrize("shape, offset, axis1, axis2", DIAGONAL_CASES)
def test_diagonal_and_trace_match_numpy(shape, offset, axis1, axis2):
    x = _random(shape)[0]
    np.testing.assert_array_equal(ag.diagonal(x, offset, axis1, axis2).data, np.diagonal(x, offset, axis1, axis2))
    np.testing.assert_allclose(ag.trace(x, offset, axis1, axis2).data, np.trace(x, offset, axis1, axis2),
                               rtol=1e-12)
    _check_derivatives(lambda t: ag.diagonal(t, offset, axis1, axis2), x)
    _check_derivatives(lambda t: ag.trace(t, offset, axis1, axis2), x)


def test_trace_and_diagonal_are_tensor_methods():
    x = ag.tensor(_random((3, 3))[0])
    np.testing.assert_allclose(x.trace().data, np.trace(x.data))
    np.testing.assert_array_equal(x.diagonal(1).data, np.diagonal(x.data, 1))


@pytest.mark.parametrize("shape, k", [((3,), 0), ((3,), 2), ((3,), -1), ((3, 4), 0), ((3, 4), 1), ((4, 3), -2)])
def test_diag_matches_numpy(shape, k):
    v = _random(shape)[0]
    np.testing.assert_array_equal(ag.diag(v, k).data, np.diag(v, k))
    _check_derivatives(lambda t: ag.diag(t, k), v)


# ---------------------------------------------------------------- cross
@pytest.mark.parametrize("shapes, axis", [
    ([(3,), (3,)], -1), ([(4, 3), (3,)], -1), ([(2, 1, 3), (5, 3)], -1), ([(3, 4), (3, 4)], 0),
    ([(2, 3, 4), (1, 3, 1)], 1), ([(4, 2), (4, 3)], -1), ([(3,), (2,)], -1), ([(4, 2), (2,)], -1),
])
def test_cross_matches_numpy(shapes, axis):
    a, b = _random(*shapes)
    with warnings.catch_warnings():  # NumPy 2 deprecates 2-vectors, which NumPy 1 and we accept
        warnings.simplefilter("ignore", DeprecationWarning)
        expected = np.cross(a, b, axis=axis)
    np.testing.assert_allclose(ag.cross(a, b, axis=axis).data, expected, rtol=1e-12, atol=1e-15)
    _check_derivatives(lambda s, t: ag.cross(s, t, axis=axis), a, b)


def test_cross_second_derivative_is_the_levi_civita_symbol():
    # d/da_i d/db_j (cross(a, b) . w) = sum_k eps_ijk w_k, whatever a and b
    a, b, w = _random((3,), (3,), (3,))
    a_, b_ = ag.tensor(a, requires_grad=True), ag.tensor(b, requires_grad=True)
    (ga,) = ag.autograd_grad((ag.cross(a_, b_) * w).sum(), [a_], create_graph=True)
    mixed = np.stack([ag.autograd_grad(ga[i], [b_], retain_graph=True)[0].data for i in range(3)])
    np.testing.assert_allclose(mixed, np.cross(np.eye(3)[:, None, :], np.eye(3)[None, :, :]) @ w, atol=1e-12)


# ---------------------------------------------------------------- errors and float32
@pytest.mark.parametrize("call, error, message", [
    (lambda: ag.tensordot(np.ones((2, 3)), np.ones((4, 5)), 1), ValueError,
     r"^tensordot: axis 1 of a \(shape \(2, 3\)\) and axis 0 of b \(shape \(4, 5\)\) are summed together"),
    (lambda: ag.tensordot(np.ones(2), np.ones(2), 2), ValueError, r"^tensordot: axes=2 must be between 0 and"),
    (lambda: ag.tensordot(np.ones(2), np.ones(2), ([0], [0, 0])), ValueError, r"^tensordot: axes \(0, 0\) repeat an axis"),
    (lambda: ag.tensordot(np.ones((2, 2)), np.ones(2), ([0, 1], [0])), ValueError, r"^tensordot: 2 axes of a but 1 of b"),
    (lambda: ag.tensordot(np.ones(2), np.ones(2), "x"), ValueError, r"^tensordot: axes must be an int or a pair"),
    (lambda: ag.inner(np.ones(2), np.ones(3)), ValueError, r"^inner: the last axes of shapes \(2,\) and \(3,\)"),
    (lambda: ag.trace(np.ones(3)), ValueError, r"^trace: needs at least 2 dimensions, got shape \(3,\)"),
    (lambda: ag.diagonal(np.ones((2, 2)), 0, 1, -1), ValueError, r"^diagonal: axis1 and axis2 must be different axes"),
    (lambda: ag.diagonal(np.ones((2, 2)), 0, 0, 2), ValueError, r"^diagonal: axis 2 is out of range"),
    (lambda: ag.diagonal(np.ones((2, 2)), 0.5), TypeError, r"^diagonal: offset must be an integer, got 0\.5"),
    (lambda: ag.diag(np.ones((2, 2, 2))), ValueError, r"^diag: v must be 1-D .* or 2-D .*, got shape \(2, 2, 2\)"),
    (lambda: ag.cross(np.ones(4), np.ones(3)), ValueError, r"^cross: the vectors along axis -1 must have 2 or 3 components"),
    (lambda: ag.cross(np.ones((2, 3)), np.ones((4, 3))), ValueError, r"^cross: shapes \(2, 3\) and \(4, 3\) do not broadcast"),
    (lambda: ag.cross(np.ones(3), 1.0), ValueError, r"^cross: needs vectors"),
])
def test_errors_name_the_operation_and_the_value_at_fault(call, error, message):
    with pytest.raises(error, match=message) as caught:
        call()
    assert _one_sentence(str(caught.value)), str(caught.value)


@pytest.mark.parametrize("fn, shapes", [
    (lambda a, b: ag.tensordot(a, b, 1), [(2, 3), (3, 4)]), (ag.inner, [(2, 3), (4, 3)]),
    (ag.kron, [(2, 2), (3,)]), (ag.trace, [(3, 3)]), (lambda x: ag.diagonal(x, 1), [(3, 4)]),
    (ag.diag, [(3,)]), (ag.cross, [(2, 3), (3,)]),
])
def test_products_keep_float32_through_the_op_and_its_gradient(fn, shapes):
    leaves = [ag.tensor(x.astype(np.float32), requires_grad=True) for x in _random(*shapes)]
    out = fn(*leaves)
    assert out.dtype == np.float32
    out.sum().backward()
    assert all(leaf.grad.dtype == np.float32 for leaf in leaves)
