"""Symbolic dims: exact division of a model's dims is refuted when it does not divide; a verifier's
unknown dims (`?` in the types) stand for any size, so only their division is taken as given."""
import pytest

from pyflame_rt.dialects.symbolic import SymDim, dim_div, is_unknown, parse_dim, unknown_dim
from pyflame_rt.errors import ShapeMismatchError


def test_a_model_dim_that_does_not_divide_is_refuted():
    batch = SymDim.of("batch")
    assert dim_div(batch * 272 * 4, 1088) == batch
    with pytest.raises(ShapeMismatchError, match="not divisible"):
        dim_div(batch * 272, 1088)
    with pytest.raises(ShapeMismatchError, match="cannot divide"):
        dim_div(batch * 64, SymDim.of("seq"))


def test_an_unknown_dim_divides_into_an_unknown():
    q = dim_div(unknown_dim("0_0") * 272, 1088)
    assert isinstance(q, SymDim) and all(is_unknown(s) for s in q.syms)
    assert q == dim_div(unknown_dim("0_0") * 272, 1088)  # the same quotient: the same dim
    assert dim_div(unknown_dim("0_0") * 1088, 1088) == unknown_dim("0_0")  # exact: kept exact
    with pytest.raises(ShapeMismatchError, match="not divisible"):
        dim_div(unknown_dim("0_0"), 0)


def test_dim_names_may_not_be_unknowns():
    assert parse_dim("3*batch") == SymDim(3, ("batch",))
    with pytest.raises(ShapeMismatchError, match="may not start with"):
        parse_dim("2*?0_0")
