"""Which GEMMs take half panels: those of a half-precision model (A a float32 Cast of half
values, through layout changes; B exactly of the half type), by the target's features."""

import numpy as np
import pytest
from onnx import helper

from conftest import kernels_run, make_model, ort_run
from pyflame_rt import InferenceSession, SessionOptions
from pyflame_rt.dialects import graph
from pyflame_rt.dtype import DType
from pyflame_rt.opt_tool import make_context
from pyflame_rt.dialects.weights import parse_module
from pyflame_rt.quantization import QuantConfig
from pyflame_rt.targets.cpu.half_panels import half_rounded_values, panel_type
from pyflame_rt.targets.cpu.kernels.gemm import PanelType
from pyflame_rt.targets.cpu.target import CPUTarget

HOST = CPUTarget.host()
BF16_CPU = CPUTarget(HOST.triple, "x86-64-v4", ("avx2", "f16c", "avx512f", "avx512bw", "avx512vl", "avx512bf16"))
AMX_CPU = CPUTarget(HOST.triple, "x86-64-v4", BF16_CPU.features + ("amx-bf16", "amx-tile"))
V4 = CPUTarget.named("x86-64-v4")
V2 = CPUTarget.named("x86-64-v2")


def test_panel_type_follows_the_operands_and_the_features(rng):
    w = rng.standard_normal((8, 8)).astype(np.float32)
    bf16, f16 = w.astype(DType.BFLOAT16.numpy).astype(np.float32), w.astype(np.float16).astype(np.float32)
    assert panel_type(AMX_CPU, DType.BFLOAT16, bf16) is PanelType.BF16_TILES
    assert panel_type(BF16_CPU, DType.BFLOAT16, bf16) is PanelType.BF16_PAIRS
    assert panel_type(V4, DType.BFLOAT16, bf16) is PanelType.BF16  # no AVX512-BF16: widened by a shift
    assert panel_type(V4, DType.FLOAT16, f16) is PanelType.F16
    assert panel_type(V2, DType.FLOAT16, f16) is PanelType.F32  # no F16C
    assert panel_type(BF16_CPU, DType.BFLOAT16, w) is PanelType.F32  # a weight not rounded (excluded layer)
    assert panel_type(BF16_CPU, None, bf16) is PanelType.F32  # a float32 activation


LAYOUT_CHANGED = """
builtin.module {
  func.func @main(%x: tensor<4x3xbf16>, %y: tensor<4x3xf32>) -> (tensor<3x4xf32>, tensor<3x4xf32>, tensor<4x3xf32>) {
    %w = graph.cast %x to float32 : (tensor<4x3xbf16>) -> tensor<4x3xf32>
    %t = graph.transpose %w {perm = array<i64: 1, 0>} : (tensor<4x3xf32>) -> tensor<3x4xf32>
    %e = graph.exp %t : (tensor<3x4xf32>) -> tensor<3x4xf32>
    func.return %t, %e, %y : tensor<3x4xf32>, tensor<3x4xf32>, tensor<4x3xf32>
  }
}
"""


def test_half_rounded_values_follow_layout_changes_only():
    fn = graph.entry_function(parse_module(make_context(), LAYOUT_CHANGED))
    ret = fn.body.block.last_op
    transposed, computed, fed = ret.operands
    rounded = half_rounded_values(fn)
    assert rounded == {transposed.owner.operands[0]: DType.BFLOAT16, transposed: DType.BFLOAT16}
    assert computed not in rounded and fed not in rounded


@pytest.mark.slow
def test_channels_last_convolutions_reach_the_bf16_gemm(rng):
    """A 3x3 convolution (implicit im2col) and a 1x1 one with a residual, in bf16: both GEMMs read
    bf16 panels, and the outputs stay within bf16's accuracy of onnxruntime's float32."""
    nodes = [helper.make_node("Conv", ["x", "w1", "b1"], ["h"], pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["h"], ["r"]), helper.make_node("Conv", ["r", "w2"], ["c"]),
             helper.make_node("Add", ["c", "r"], ["s"]), helper.make_node("Relu", ["s"], ["y"])]
    inits = {"w1": (rng.standard_normal((24, 9, 3, 3)) / 9).astype(np.float32),
             "b1": rng.standard_normal(24).astype(np.float32),
             "w2": (rng.standard_normal((24, 24, 1, 1)) / 5).astype(np.float32)}
    model = make_model(nodes, [("x", [1, 9, 10, 10])], [("y", [1, 24, 10, 10])], inits)
    sess = InferenceSession(model.SerializeToString(),
                            SessionOptions(enable_profiling=True, quantization=QuantConfig.bfloat16()))
    x = rng.standard_normal((1, 9, 10, 10)).astype(np.float32)
    y, ref = sess.run(None, {"x": x})[0], ort_run(model, {"x": x})[0]
    assert float((y * ref).sum() / np.linalg.norm(y) / np.linalg.norm(ref)) >= 0.999
    panel = panel_type(HOST, DType.BFLOAT16, np.zeros(1, np.float32)).value
    gemms = {k for k in kernels_run(sess, {"x": x}) if k.startswith("gemm_")}
    assert gemms and all(k.endswith(f"_conv_{panel}") for k in gemms), gemms
