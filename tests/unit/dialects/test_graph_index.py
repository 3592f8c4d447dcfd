"""graph_index: gathers and scatters share one operand layout, format and index-type verifier."""
import pytest
from xdsl.dialects.builtin import TensorType, f32, i64
from xdsl.parser import Parser
from xdsl.utils.exceptions import VerifyException
from xdsl.utils.test_value import create_ssa_value

from pyflame_rt.dialects import graph_index as gi
from pyflame_rt.opt_tool import make_context


def _module(op_text: str, types: str, result: str):
    args = ", ".join(f"%{n}: {t}" for n, t in zip(["d", "i", "u"], types.split(", ")))
    text = f"func.func @main({args}) -> {result} {{\n  %y = {op_text} : ({types}) -> {result}\n" \
           f"  func.return %y : {result}\n}}"
    module = Parser(make_context(), text).parse_module()
    module.verify()
    return module


@pytest.mark.parametrize("op_text, types, result, message", [
    ("graph.gather_nd %d, %i", "tensor<4x3xf32>, tensor<2x1xf32>", "tensor<2x3xf32>",
     "indices must be int64 or int32, got float32"),
    ("graph.scatter_elements %d, %i, %u", "tensor<4x3xf32>, tensor<4x3xi64>, tensor<4x3xf16>", "tensor<4x3xf32>",
     r"updates \(float16\) must have the data's type \(float32\)"),
    ("graph.scatter_nd %d, %i, %u", "tensor<4x3xf32>, tensor<2x1xi1>, tensor<2x3xf32>", "tensor<4x3xf32>",
     "indices must be int64 or int32, got bool"),
])
def test_index_verifier_rejects(op_text, types, result, message):
    with pytest.raises(VerifyException, match=message):
        _module(op_text, types, result)


def test_scatter_reduction_round_trips_as_an_enum():
    text = str(_module("graph.scatter_elements %d, %i, %u {axis = 1 : i64, reduction = #graph<scatter_reduction max>}",
                       "tensor<4x3xf32>, tensor<4x2xi32>, tensor<4x2xf32>", "tensor<4x3xf32>"))
    assert "graph.scatter_elements %d, %i, %u {axis = 1 : i64, reduction = #graph<scatter_reduction max>}" in text
    assert str(Parser(make_context(), text).parse_module()) == text


def test_constructors_order_operands_data_indices_updates():
    data = create_ssa_value(TensorType(f32, [4, 3]))
    indices = create_ssa_value(TensorType(i64, [2, 1]))
    updates = create_ssa_value(TensorType(f32, [2, 3]))
    op = gi.ScatterNDOp(data, indices, updates, TensorType(f32, [4, 3]), reduction="add")
    assert (op.data, op.indices, op.updates) == (data, indices, updates)
    assert op.reduction.data == "add"
    assert op.infer_shapes([(4, 3), (2, 1), (2, 3)]) == [(4, 3)]


def test_scatter_elements_prints_axis_before_reduction():
    data = create_ssa_value(TensorType(f32, [4, 3]))
    indices = create_ssa_value(TensorType(i64, [4, 3]))
    op = gi.ScatterElementsOp(data, indices, data, TensorType(f32, [4, 3]), axis=1, reduction="add")
    assert "{axis = 1 : i64, reduction = #graph<scatter_reduction add>}" in str(op)
