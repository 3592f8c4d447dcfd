"""dialects/assumptions.py: how shape requirements are decided, recorded and checked."""
import json

import pytest

from pyflame_rt import ShapeMismatchError
from pyflame_rt.dialects.assumptions import (
    Assumption, at_node, broadcast_dim, collect, expand_dim, require_at_most, require_equal, require_multiple, require_sum)
from pyflame_rt.dialects.symbolic import SymDim


def test_requirements_are_decided_when_the_dims_decide_them():
    """Static dims and identical monomials are decided at once; only the rest become assumptions,
    each recorded once, with its node, in a form the artifact stores."""
    b, c = SymDim.of("b"), SymDim.of("c")
    with collect() as found, at_node("graph.conv node 'c1'"):
        assert require_equal(3 * b, b * 3, "same monomial") == 3 * b
        require_multiple(4 * b, 2, "exact")
        require_at_most(b, b, "itself")
        assert broadcast_dim(1, b, "broadcast") == b and broadcast_dim(b, 4, "broadcast") == 4
        assert require_equal(b, c, "two symbols") == b
        require_equal(b, c, "two symbols")
        require_multiple(3 * b, 2, "odd")
        with pytest.raises(ShapeMismatchError, match="static: 3 vs 4"):
            require_equal(3, 4, "static")
    assert [(a.relation, str(a.lhs), str(a.rhs)) for a in found] == [
        ("==", "b", "4"), ("==", "b", "c"), ("multiple of", "3*b", "2")]
    assert [Assumption.from_json(json.loads(json.dumps(a.to_json()))) for a in found] == found
    assert found[2].failure({"b": 2}) is None
    assert found[2].failure({"b": 1}) == "graph.conv node 'c1': odd: 3 (3*b) is not a multiple of 2"


def test_a_sum_of_dynamic_extents_against_a_total():
    """A KV cache's past + new keys against the total length: checked at run time, stored and read
    back as text."""
    past, new, total = SymDim.of("past"), SymDim.of("new"), SymDim.of("total")
    with collect() as found, at_node("graph.concat node 'kv'"):
        require_sum([past, new, 2], total, "extents")
        require_sum([3, 4], 7, "static")
        with pytest.raises(ShapeMismatchError, match="static: 7 vs 8"):
            require_sum([3, 4], 8, "static")
    (a,) = found
    assert a.to_json()["lhs"] == "past + new + 2" and a.symbols() == {"past", "new", "total"}
    assert Assumption.from_json(json.loads(json.dumps(a.to_json()))) == a
    assert a.failure({"past": 3, "new": 1, "total": 6}) is None
    assert a.failure({"past": 3, "new": 1, "total": 5}) == (
        "graph.concat node 'kv': extents: 6 (past + new + 2) vs 5 (total)")


def test_an_expand_target_dim_may_be_1_or_the_input_dim():
    """A dynamic Expand target against an input dim other than 1 gives that dim and is checked to
    be 1 or equal; against 1 it is the result; a static target broadcasts as usual."""
    t, b = SymDim.of("t"), SymDim.of("b")
    with collect() as found, at_node("graph.expand node 'e'"):
        assert expand_dim(3, t, "expand") == 3 and expand_dim(b, t, "expand") == b
        assert expand_dim(1, t, "expand") == t and expand_dim(t, t, "expand") == t
        assert expand_dim(3, 1, "expand") == 3
        with pytest.raises(ShapeMismatchError, match="expand: 3 vs 4"):
            expand_dim(3, 4, "expand")
    assert [(a.relation, str(a.lhs), str(a.rhs)) for a in found] == [("broadcasts to", "t", "3"),
                                                                   ("broadcasts to", "t", "b")]
    assert Assumption.from_json(json.loads(json.dumps(found[0].to_json()))) == found[0]
    assert found[0].failure({"t": 1}) is None and found[0].failure({"t": 3}) is None
    assert found[0].failure({"t": 2}) == "graph.expand node 'e': expand: 2 (t) does not broadcast to 3"
