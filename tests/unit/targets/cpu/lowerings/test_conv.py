"""float64 Conv on im2col + the GEMM's F64 panels (onnxruntime has no double Conv: onnx's reference
evaluator, which computes in float64, is the oracle): 1-D to 3-D, strides, dilations, pads, groups,
depthwise, a run-time weight, and the fused bias / activation / residual epilogue."""
import numpy as np
import pytest
from onnx import helper
from onnx.reference import ReferenceEvaluator

from conftest import make_model
from pyflame_rt import InferenceSession

F64 = np.float64


def _check(model, feeds):
    got = InferenceSession(model.SerializeToString()).run(None, feeds)
    want = ReferenceEvaluator(model).run(None, feeds)
    for g, w in zip(got, want):
        assert g.dtype == F64
        np.testing.assert_allclose(g, w, rtol=1e-13, atol=1e-13)


@pytest.mark.slow
@pytest.mark.parametrize("x_shape, w_shape, attrs", [
    ((2, 3, 9, 8), (5, 3, 3, 3), dict(pads=[1, 0, 2, 1], strides=[2, 1])),
    ((1, 4, 7, 7), (6, 2, 3, 2), dict(group=2, dilations=[2, 1])),
    ((2, 4, 6, 6), (4, 1, 3, 3), dict(group=4, pads=[1, 1, 1, 1])),   # depthwise
    ((2, 3, 11), (4, 3, 3), dict(strides=[2])),                          # 1-D
    ((1, 2, 4, 5, 5), (3, 2, 2, 3, 3), dict(pads=[0, 1, 1, 1, 1, 0])),   # 3-D
])
def test_float64_conv_matches_the_reference(x_shape, w_shape, attrs, rng):
    w, b = rng.normal(size=w_shape), rng.normal(size=w_shape[0])
    model = make_model([helper.make_node("Conv", ["x", "w", "b"], ["y"], **attrs)],
                       [("x", list(x_shape), F64)], [("y", [None] * len(x_shape), F64)], {"w": w, "b": b})
    _check(model, {"x": rng.normal(size=x_shape)})


def test_float64_conv_with_fused_epilogue_and_run_time_weight(rng):
    """Conv + bias + Relu, then Conv + residual Add (the fused epilogue in float64), and a Conv whose
    weight is a graph input."""
    w1, b1, w2 = rng.normal(size=(4, 4, 3, 3)), rng.normal(size=4), rng.normal(size=(4, 4, 1, 1))
    nodes = [helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["c1"], ["r1"]),
             helper.make_node("Conv", ["r1", "w2"], ["c2"]),
             helper.make_node("Add", ["c2", "x"], ["y"]),
             helper.make_node("Conv", ["x", "wf"], ["z"])]
    model = make_model(nodes, [("x", [2, 4, 6, 6], F64), ("wf", [3, 4, 2, 2], F64)],
                       [("y", [2, 4, 6, 6], F64), ("z", [2, 3, 5, 5], F64)], {"w1": w1, "b1": b1, "w2": w2})
    _check(model, {"x": rng.normal(size=(2, 4, 6, 6)), "wf": rng.normal(size=(3, 4, 2, 2))})
