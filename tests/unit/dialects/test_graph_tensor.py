"""graph.bind_dims with a refusal: its validity flag is required to be 1 by a shape assumption that
gives the reason."""
import pytest
from xdsl.dialects.builtin import TensorType, i64
from xdsl.utils.exceptions import VerifyException
from xdsl.utils.test_value import create_ssa_value

from pyflame_rt.dialects.assumptions import at_node, collect
from pyflame_rt.dialects.graph_tensor import BindDimsOp


def test_a_refusal_is_an_assumption_on_the_flag_with_the_reason():
    op = BindDimsOp(create_ssa_value(TensorType(i64, [2])), ["y_valid", "y_0"], "the axis is out of range")
    with collect() as found, at_node("Squeeze node 'y'"):
        op.infer_shapes([(2,)])
    (a,) = found
    assert a.failure({"y_valid": 1}) is None
    assert a.failure({"y_valid": 0}) == "Squeeze node 'y': the axis is out of range: 0 (y_valid) vs 1"


def test_without_a_refusal_nothing_is_assumed():
    with collect() as found:
        BindDimsOp(create_ssa_value(TensorType(i64, [1])), ["y_0"]).infer_shapes([(1,)])
    assert found == []


def test_a_refusal_needs_a_flag_to_bind():
    with pytest.raises(VerifyException, match="validity flag"):
        BindDimsOp(create_ssa_value(TensorType(i64, [0])), [], "never").verify()
