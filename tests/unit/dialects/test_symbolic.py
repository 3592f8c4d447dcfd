"""Symbolic dims: sums of dynamic dims as sum symbols, bound by runs from their terms; exact division
of a model's dims is refuted when it does not divide, while a verifier's unknown dims (`?` in the
types) stand for any size, so only their division is taken as given."""
import pytest

from pyflame_rt.dialects.symbolic import (SymDim, bind_sums, dim_add, dim_div, is_unknown, parse_dim, sum_terms,
                                          unknown_dim)
from pyflame_rt.errors import ShapeMismatchError

past, seq = SymDim.of("past"), SymDim.of("seq")


def test_dim_add_names_a_canonical_sum_symbol():
    assert dim_add(3, 4) == 7
    assert dim_add(0, 2 * seq) == 2 * seq
    assert dim_add(seq, past) == dim_add(past, seq) == SymDim.of("past+seq")
    assert dim_add(dim_add(past, 1), dim_add(seq, 2)) == SymDim.of("past+seq+3")
    assert dim_add(dim_add(past, seq), seq) == SymDim.of("past+seq+seq")
    assert sum_terms("past+seq+seq+3") == (["past", "seq", "seq"], 3)


@pytest.mark.parametrize("other", [2 * seq, past * seq])
def test_dim_add_refuses_sums_of_other_monomials(other):
    with pytest.raises(ShapeMismatchError, match="only sums of plain symbols"):
        dim_add(past, other)


def test_bind_sums_computes_and_checks_sum_symbols():
    bindings = {"past": 5, "seq": 2}
    bind_sums(bindings, ["past", "past+seq", "past+seq+1", "seq"])
    assert bindings == {"past": 5, "seq": 2, "past+seq": 7, "past+seq+1": 8}
    bind_sums(bindings, ["past+seq"])  # agreeing: nothing changes
    with pytest.raises(ShapeMismatchError, match="'past\\+seq' is bound to 6 by an input, not to the sum 7"):
        bind_sums({"past": 5, "seq": 2, "past+seq": 6}, ["past+seq"])


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
