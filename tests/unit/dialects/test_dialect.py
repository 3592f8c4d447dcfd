"""graph dialect: verifiers, shape functions and the textual round trip."""
import pytest
from xdsl.context import Context
from xdsl.dialects import builtin, func
from xdsl.parser import Parser
from xdsl.utils.exceptions import VerifyException

from pyflame_rt.dialects import Graph, graph
from pyflame_rt.dialects.symbolic import SymDim, parse_dim
from pyflame_rt.errors import ShapeMismatchError


def _parse(text):
    ctx = Context()
    for d in (builtin.Builtin, func.Func, Graph):
        ctx.load_dialect(d)
    m = Parser(ctx, text).parse_module()
    m.verify()
    return m


GEMM = """
func.func @main(%a: tensor<?x8xf32>, %b: tensor<{k}x4xf32>) -> tensor<?x4xf32> {{
  %y = graph.gemm %a, %b : (tensor<?x8xf32>, tensor<{k}x4xf32>) -> tensor<?x4xf32>
  func.return %y : tensor<?x4xf32>
}}
"""


def test_gemm_verifies_and_roundtrips():
    m = _parse(GEMM.format(k=8))
    assert "graph.gemm" in str(m)
    assert str(_parse(str(m))) == str(m)


def test_gemm_inner_dim_mismatch_is_rejected():
    with pytest.raises(VerifyException, match="inner dims differ"):
        _parse(GEMM.format(k=7))


def test_wrong_declared_result_shape_is_rejected():
    text = """
    func.func @main(%a: tensor<2x3xf32>, %b: tensor<2x3xf32>) -> tensor<2x4xf32> {
      %y = graph.add %a, %b : (tensor<2x3xf32>, tensor<2x3xf32>) -> tensor<2x4xf32>
      func.return %y : tensor<2x4xf32>
    }"""
    with pytest.raises(VerifyException, match="declared"):
        _parse(text)


def test_constant_needs_name_or_value():
    text = """
    func.func @main() -> tensor<2xf32> {
      %c = graph.constant : tensor<2xf32>
      func.return %c : tensor<2xf32>
    }"""
    with pytest.raises(VerifyException, match="exactly one"):
        _parse(text)


def test_broadcast_shapes_symbolic():
    b = SymDim.of("B")
    assert graph.broadcast_shapes((b, 1, 4), (3, 1)) == (b, 3, 4)
    with pytest.raises(ShapeMismatchError):
        graph.broadcast_shapes((2, 3), (4, 3))


def test_reshape_shape_rules():
    b = SymDim.of("B")
    assert graph.reshape_shape((b, 2, 3), [0, -1]) == (b, 6)
    assert graph.reshape_shape((b, 6), [-1, 2, 3]) == (b, 2, 3)
    assert graph.reshape_shape((4, 6), [2, -1]) == (2, 12)
    with pytest.raises(ShapeMismatchError):
        graph.reshape_shape((4, 6), [5, -1])
    with pytest.raises(ShapeMismatchError):
        graph.reshape_shape((4, 6), [-1, -1])


def test_symbolic_dim_text_roundtrip():
    d = SymDim(3, ("B", "S"))
    assert parse_dim(str(d)) == d
    assert parse_dim("784") == 784
    assert d.evaluate({"B": 2, "S": 5}) == 30


def test_elementwise_of_two_dynamic_operands_verifies():
    text = """
    func.func @main(%a: tensor<?x3xf32>, %b: tensor<?x3xf32>) -> tensor<?x3xf32> {
      %y = graph.mul %a, %b : (tensor<?x3xf32>, tensor<?x3xf32>) -> tensor<?x3xf32>
      func.return %y : tensor<?x3xf32>
    }"""
    _parse(text)
