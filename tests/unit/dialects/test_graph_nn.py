"""graph_nn normalizations: one verifier for their element types, one shape rule for per-channel
parameters."""
import pytest
from xdsl.parser import Parser
from xdsl.utils.exceptions import VerifyException

from pyflame_rt.opt_tool import make_context


def _verify(op_text: str, types: str, result: str) -> None:
    """One op in a function whose arguments are %x, %p0, %p1, ... of `types`."""
    args = ", ".join(f"%{n}: {t}" for n, t in zip(["x", "p0", "p1", "p2", "p3"], types.split(", ")))
    text = f"func.func @main({args}) -> {result} {{\n  {op_text} : ({types}) -> {result}\n" \
           f"  func.return %y : {result}\n}}"
    Parser(make_context(), text).parse_module().verify()


BN = "%y = graph.batch_norm %x, %p0, %p1, %p2, %p3"
IN = "%y = graph.instance_norm %x, %p0, %p1"


def test_batch_norm_takes_parameters_of_their_own_float_type():
    _verify(BN, "tensor<2x3x4xf16>, tensor<3xf32>, tensor<3xf32>, tensor<3xf32>, tensor<3xf32>", "tensor<2x3x4xf16>")


@pytest.mark.parametrize("op, types, result, message", [
    (BN, "tensor<2x3x4xi32>, tensor<3xi32>, tensor<3xi32>, tensor<3xi32>, tensor<3xi32>", "tensor<2x3x4xi32>",
     "graph.batch_norm needs float tensors"),
    (IN, "tensor<2x3x4xf32>, tensor<3xf16>, tensor<3xf32>", "tensor<2x3x4xf32>",
     r"graph.instance_norm: the parameters must be float32, got \['float16', 'float32'\]"),
    (IN, "tensor<2x3xf32>, tensor<3xf32>, tensor<3xf32>", "tensor<2x3xf32>", "graph.instance_norm needs rank >= 3"),
    (BN, "tensor<2x3x4xf32>, tensor<3xf32>, tensor<4xf32>, tensor<3xf32>, tensor<3xf32>", "tensor<2x3x4xf32>",
     r"graph.batch_norm parameter shape differs from \[channels\]"),
])
def test_normalization_verifier_rejects(op, types, result, message):
    with pytest.raises(VerifyException, match=message):
        _verify(op, types, result)

