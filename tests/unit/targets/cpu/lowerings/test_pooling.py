"""float64 pooling in double precision: MaxPool (with indices), AveragePool, LpPool on the window
kernel's float64 variant, 2-D and 3-D, pads, strides, dilations and ceil_mode; GlobalAveragePool /
GlobalMaxPool on the row reductions. Against onnxruntime where it has double kernels (MaxPool),
else onnx's reference evaluator, which computes in float64."""
import numpy as np
import pytest
from onnx import helper
from onnx.reference import ReferenceEvaluator

from conftest import make_model, ort_run
from pyflame_rt import InferenceSession

F64 = np.float64


def _check(nodes, x_shape, outputs, rng, oracle):
    model = make_model(nodes, [("x", list(x_shape), F64)], [(o, [None] * len(x_shape), t) for o, t in outputs],
                       opset=19)
    feed = {"x": rng.standard_normal(x_shape)}
    feed["x"].flat[::17] = 2.0  # ties: the first maximum's index wins
    got = InferenceSession(model.SerializeToString()).run(None, feed)
    want = ort_run(model, feed) if oracle == "ort" else ReferenceEvaluator(model).run(None, feed)
    for (name, dtype), g, w in zip(outputs, got, want):
        assert g.dtype == dtype, name
        np.testing.assert_allclose(g, w, rtol=1e-14, atol=1e-15, err_msg=name)


@pytest.mark.parametrize("x_shape, attrs", [
    ((2, 3, 9, 8), dict(kernel_shape=[3, 2], strides=[2, 1], pads=[1, 0, 1, 1])),
    ((1, 2, 5, 6, 7), dict(kernel_shape=[2, 2, 3], ceil_mode=1, strides=[2, 2, 2])),
])
def test_float64_max_pool_and_indices_match_onnxruntime(x_shape, attrs, rng):
    _check([helper.make_node("MaxPool", ["x"], ["y", "i"], **attrs)], x_shape, [("y", F64), ("i", np.int64)],
           rng, "ort")


def test_float64_average_lp_and_global_pools_match_the_reference(rng):
    nodes = [helper.make_node("AveragePool", ["x"], ["avg"], kernel_shape=[3, 3], pads=[1, 1, 1, 1],
                              dilations=[1, 2]),
             helper.make_node("AveragePool", ["x"], ["avg_pad"], kernel_shape=[2, 3], pads=[1, 1, 0, 1],
                              count_include_pad=1),
             helper.make_node("LpPool", ["x"], ["lp"], kernel_shape=[2, 2], p=3),
             helper.make_node("GlobalAveragePool", ["x"], ["gavg"]),
             helper.make_node("GlobalMaxPool", ["x"], ["gmax"])]
    _check(nodes, (2, 3, 7, 9), [(o, F64) for o in ("avg", "avg_pad", "lp", "gavg", "gmax")], rng, "reference")
