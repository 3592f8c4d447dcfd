"""Which GEMM kernels a model's lowering picks: a model without convolutions compiles plain GEMMs
(no implicit im2col pack, no convolution fields); a model with convolutions runs all its GEMMs,
im2col or not, on shared conv_a kernels. Results are checked against onnxruntime."""
import numpy as np
import pytest
from onnx import helper

from conftest import assert_close, make_model, ort_run
from pyflame_rt.compiler import CompileOptions, compile_model
from pyflame_rt.executable import Executable


def _gemm_kernels(model, feeds: dict) -> list[str]:
    exe = Executable(compile_model(model, CompileOptions()))
    for actual, expected in zip(exe.run(list(feeds.values())), ort_run(model, feeds)):
        assert_close(actual, expected)
    return [k for k in exe.kernel_names if k.startswith("gemm_")]


def test_model_without_convolutions_compiles_plain_gemms(rng):
    w = (rng.standard_normal((64, 48)) * 0.1).astype(np.float32)
    b = rng.standard_normal(48).astype(np.float32)
    model = make_model([helper.make_node("Gemm", ["x", "w", "b"], ["h"]), helper.make_node("Relu", ["h"], ["y"])],
                       [("x", [8, 64])], [("y", [8, 48])], {"w": w, "b": b})
    kernels = _gemm_kernels(model, {"x": rng.standard_normal((8, 64)).astype(np.float32)})
    assert kernels and not any(k.endswith("_conv") for k in kernels), kernels


@pytest.mark.parametrize("second_kernel", [(1, 1), (3, 3)])
def test_model_with_convolutions_shares_conv_a_gemms(rng, second_kernel):
    """A 3x3 conv reads an implicit im2col, a 1x1 conv its input in place: one conv_a kernel each way."""
    kh, kw = second_kernel
    weights = {"w1": (rng.standard_normal((16, 8, 3, 3)) * 0.2).astype(np.float32),
               "w2": (rng.standard_normal((16, 16, kh, kw)) * 0.2).astype(np.float32)}
    model = make_model([helper.make_node("Conv", ["x", "w1"], ["a"], pads=[1, 1, 1, 1]),
                        helper.make_node("Relu", ["a"], ["r"]),
                        helper.make_node("Conv", ["r", "w2"], ["y"], pads=[kh // 2, kw // 2] * 2)],
                       [("x", [1, 8, 10, 10])], [("y", [1, 16, 10, 10])], weights)
    kernels = _gemm_kernels(model, {"x": rng.standard_normal((1, 8, 10, 10)).astype(np.float32)})
    assert kernels and all(k.endswith("_conv") for k in kernels), kernels
