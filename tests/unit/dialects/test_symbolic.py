"""Symbolic dims: sums of dynamic dims as sum symbols, bound by runs from their terms."""
import pytest

from pyflame_rt.dialects.symbolic import SymDim, bind_sums, dim_add, sum_terms
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
