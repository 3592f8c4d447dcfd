"""A Conv bias that is a run-time value (a graph input or computed) is read in place by the conv's
epilogue (GEMM row bias, or the depthwise window kernel's bias), before a fused activation."""
import numpy as np
import pytest
from onnx import helper

from conftest import assert_close, make_model, ort_run
from pyflame_rt import InferenceSession


@pytest.mark.parametrize("x_shape,w_shape,group", [
    ((2, 4, 9, 7), (6, 4, 3, 3), 1),      # im2col + GEMM
    ((2, 4, 9, 7), (6, 2, 3, 3), 2),      # grouped GEMM: each group's rows read their slice
    ((1, 5, 12), (5, 1, 4), 5),           # 1-D depthwise (the causal conv with state): window kernel
])
def test_conv_with_runtime_bias_matches_onnxruntime(rng, x_shape, w_shape, group):
    m = w_shape[0]
    out_spatial = [d - k + 1 for d, k in zip(x_shape[2:], w_shape[2:])]
    model = make_model(
        [helper.make_node("Add", ["b0", "b1"], ["bias"]),  # computed, not an initializer
         helper.make_node("Conv", ["x", "w", "bias"], ["c"], group=group),
         helper.make_node("Relu", ["c"], ["y"])],
        [("x", list(x_shape)), ("w", list(w_shape)), ("b0", [m]), ("b1", [m])],
        [("y", [x_shape[0], m, *out_spatial])])
    feeds = {"x": rng.standard_normal(x_shape).astype(np.float32),
             "w": rng.standard_normal(w_shape).astype(np.float32),
             "b0": rng.standard_normal(m).astype(np.float32), "b1": rng.standard_normal(m).astype(np.float32)}
    assert_close(InferenceSession(model).run(None, feeds)[0], ort_run(model, feeds)[0])
