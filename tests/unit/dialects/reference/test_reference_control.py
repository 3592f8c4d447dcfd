"""The numpy reference of graph.loop (dialects/reference/control.py) agrees with onnxruntime."""
import numpy as np
from onnx import TensorProto, helper

from conftest import assert_close, make_model, ort_run
from pyflame_rt.dialects.reference import evaluate
from pyflame_rt.importers.onnx import from_onnx


def test_a_run_time_loop_with_an_early_exit_and_a_scan_output():
    """acc += x * i while sum(acc) < limit, at most `trips` times; the running values stacked."""
    vi = helper.make_tensor_value_info
    body = helper.make_graph(
        [helper.make_node("Cast", ["i"], ["fi"], to=TensorProto.FLOAT), helper.make_node("Mul", ["x", "fi"], ["xi"]),
         helper.make_node("Add", ["acc", "xi"], ["acc_out"]),
         helper.make_node("ReduceSum", ["acc_out"], ["total"], keepdims=0),
         helper.make_node("Less", ["total", "limit"], ["cond_out"]), helper.make_node("Identity", ["acc_out"], ["y"])],
        "body", [vi("i", TensorProto.INT64, []), vi("cond", TensorProto.BOOL, []), vi("acc", TensorProto.FLOAT, [3])],
        [vi("cond_out", TensorProto.BOOL, []), vi("acc_out", TensorProto.FLOAT, [3]), vi("y", TensorProto.FLOAT, [3])])
    model = make_model([helper.make_node("Loop", ["trips", "", "acc0"], ["acc", "ys"], body=body)],
                       [("trips", [], np.int64), ("limit", []), ("x", [3]), ("acc0", [3])],
                       [("acc", [3]), ("ys", ["n", 3])])
    res = from_onnx(model)
    x = np.array([1.0, 2.0, 0.5], np.float32)
    for trips, limit in ((5, 1e9), (8, 20.0)):
        feeds = {"trips": np.array(trips), "limit": np.array(limit, np.float32), "x": x, "acc0": np.zeros(3, np.float32)}
        for got, want in zip(evaluate(res.module, res.weights, feeds), ort_run(model, feeds)):
            assert_close(got, want)
