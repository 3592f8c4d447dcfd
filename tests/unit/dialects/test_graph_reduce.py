"""graph_reduce: LayerNorm's format (optional bias, optional statistics after `stats`) and verifier."""
import pytest
from xdsl.parser import Parser
from xdsl.utils.exceptions import VerifyException

from pyflame_rt.opt_tool import make_context

LN = """func.func @main(%x: tensor<2x4xf32>, %s: tensor<4x{scale}>) -> tensor<2x4xf32> {{
  {op}
  func.return %y : tensor<2x4xf32>
}}"""
WITH_STATS = ("%y, %m, %r = graph.layer_norm %x, %s, %s {axis = 1 : i64} : (tensor<2x4xf32>, tensor<4xf32>, "
              "tensor<4xf32>) -> tensor<2x4xf32> stats tensor<2x1xf32>, tensor<2x1xf32>")
WITHOUT = "%y = graph.layer_norm %x, %s {epsilon = 1.000000e-03 : f32} : (tensor<2x4xf32>, tensor<4xf32>) -> tensor<2x4xf32>"


def _module(op: str, scale: str = "f32"):
    module = Parser(make_context(), LN.format(op=op, scale=scale)).parse_module()
    module.verify()
    return module


@pytest.mark.parametrize("op", [WITH_STATS, WITHOUT])
def test_layer_norm_round_trips(op):
    text = str(_module(op))
    assert op in text
    assert str(Parser(make_context(), text).parse_module()) == text


def test_layer_norm_statistics_are_float32_and_present_together():
    ln = next(o for o in _module(WITH_STATS).walk() if o.name == "graph.layer_norm")
    assert ln.mean is ln.results[1] and ln.inv_std_dev is ln.results[2]
    with pytest.raises(VerifyException, match="both present or both absent"):
        _module('%y, %m = "graph.layer_norm"(%x, %s) <{resultSegmentSizes = array<i32: 1, 1, 0>}> : '
                "(tensor<2x4xf32>, tensor<4xf32>) -> (tensor<2x4xf32>, tensor<2x1xf32>)")


def test_layer_norm_parameters_share_the_input_type():
    with pytest.raises(VerifyException, match="graph.layer_norm: the parameters must be float32"):
        _module(WITHOUT.replace("tensor<4xf32>", "tensor<4xf16>"), scale="f16")
