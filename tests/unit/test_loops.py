"""A compiled loop (graph.loop): the header's `loops` are checked when the artifact loads, and a
run's deadline and cancellation hold between iterations."""
import copy

import numpy as np
import pytest
from onnx import TensorProto, helper

import pyflame_rt
from pyflame_rt import artifact
from pyflame_rt.compiled_model import CompiledModel
from pyflame_rt.compiler import compile_model
from pyflame_rt.errors import InvalidModelError, RunTimeoutError

from conftest import make_model, ort_run


@pytest.fixture(scope="module")
def counting_loop():
    """y = x + i for i < trips, the running values stacked: a trip count fed as an input."""
    body = helper.make_graph(
        [helper.make_node("Identity", ["cond"], ["cond_out"]), helper.make_node("Cast", ["i"], ["fi"], to=1),
         helper.make_node("Add", ["y", "fi"], ["y_out"]), helper.make_node("Identity", ["y_out"], ["scan"])],
        "body", [helper.make_tensor_value_info("i", TensorProto.INT64, []),
                 helper.make_tensor_value_info("cond", TensorProto.BOOL, []),
                 helper.make_tensor_value_info("y", TensorProto.FLOAT, [3])],
        [helper.make_tensor_value_info("cond_out", TensorProto.BOOL, []),
         helper.make_tensor_value_info("y_out", TensorProto.FLOAT, [3]),
         helper.make_tensor_value_info("scan", TensorProto.FLOAT, [3])])
    model = make_model([helper.make_node("Loop", ["trips", "", "x"], ["y", "ys"], body=body)],
                       [("trips", [], np.int64), ("x", [3])], [("y", [3]), ("ys", ["n", 3])])
    return model, compile_model(model)


def _session(compiled: CompiledModel, tmp_path, edit=None):
    header = copy.deepcopy(compiled.header)
    if edit is not None:
        edit(header["loops"][0])
    path = str(tmp_path / "loop.pfm")
    artifact.save(CompiledModel(header, compiled.weights, compiled.objects), path)
    return pyflame_rt.InferenceSession(path)


def test_the_loop_runs_from_its_artifact(counting_loop, tmp_path):
    model, compiled = counting_loop
    sess = _session(compiled, tmp_path)
    feed = {"trips": np.array(4), "x": np.array([1.0, 2.0, 3.0], np.float32)}
    for got, expected in zip(sess.run(None, feed), ort_run(model, feed)):
        np.testing.assert_allclose(got, expected)


@pytest.mark.parametrize("edit, message", [
    (lambda loop: loop.update(end=10 ** 6), "loop launches"),
    (lambda loop: loop.update(begin=loop["end"] + 1), "loop launches"),
    (lambda loop: loop.update(counter=["arena", 10 ** 6, 0]), "loop place"),
    (lambda loop: loop.update(cond=["io", -1, 0]), "loop place"),
    (lambda loop: loop["copies"][0].__setitem__(0, "jump"), "loop copy kind"),
    (lambda loop: loop.update(trips="unbound_dim"), "names a dim the model does not bind"),
])
def test_a_loop_out_of_its_table_or_buffers_is_refused_on_load(counting_loop, tmp_path, edit, message):
    with pytest.raises(InvalidModelError, match=f"artifact metadata is invalid.*{message}"):
        _session(counting_loop[1], tmp_path, edit)


def test_the_deadline_stops_a_long_loop(counting_loop, tmp_path):
    sess = _session(counting_loop[1], tmp_path)
    options = pyflame_rt.RunOptions()
    options.timeout_ms = 20
    with pytest.raises(RunTimeoutError):
        sess.run(None, {"trips": np.array(10 ** 7), "x": np.zeros(3, np.float32)}, options)


def test_the_deadline_stops_a_loop_whose_body_runs_no_kernel(tmp_path):
    """The body only passes its values on (no launch): the runtime checks the deadline per iteration."""
    body = helper.make_graph(
        [helper.make_node("Identity", ["cond"], ["cond_out"]), helper.make_node("Identity", ["y"], ["y_out"])],
        "body", [helper.make_tensor_value_info("i", TensorProto.INT64, []),
                 helper.make_tensor_value_info("cond", TensorProto.BOOL, []),
                 helper.make_tensor_value_info("y", TensorProto.FLOAT, [3])],
        [helper.make_tensor_value_info("cond_out", TensorProto.BOOL, []),
         helper.make_tensor_value_info("y_out", TensorProto.FLOAT, [3])])
    model = make_model([helper.make_node("Loop", ["trips", "", "x"], ["y"], body=body)],
                       [("trips", [], np.int64), ("x", [3])], [("y", [3])])
    sess = pyflame_rt.InferenceSession(model.SerializeToString())
    x = np.array([1.0, 2.0, 3.0], np.float32)
    np.testing.assert_array_equal(sess.run(None, {"trips": np.array(3), "x": x})[0], x)
    options = pyflame_rt.RunOptions()
    options.timeout_ms = 20
    with pytest.raises(RunTimeoutError):
        sess.run(None, {"trips": np.array(10 ** 15), "x": x}, options)
