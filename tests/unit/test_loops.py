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
from pyflame_rt.errors import InvalidModelError, RunTimeoutError, ShapeMismatchError, UnsupportedOperatorError

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


@pytest.fixture(scope="module")
def nested_loop():
    """y = x + sum of j over i < trips, j < inner: a loop inside a loop, both counts fed as inputs."""
    def body(prefix, nodes, carried):
        return helper.make_graph(
            [helper.make_node("Identity", [f"{prefix}cond"], [f"{prefix}cond_out"]), *nodes], f"{prefix}body",
            [helper.make_tensor_value_info(f"{prefix}i", TensorProto.INT64, []),
             helper.make_tensor_value_info(f"{prefix}cond", TensorProto.BOOL, []),
             helper.make_tensor_value_info(carried, TensorProto.FLOAT, [3])],
            [helper.make_tensor_value_info(f"{prefix}cond_out", TensorProto.BOOL, []),
             helper.make_tensor_value_info(f"{carried}_out", TensorProto.FLOAT, [3])])
    inner = body("inner_", [helper.make_node("Cast", ["inner_i"], ["fj"], to=1),
                            helper.make_node("Add", ["z", "fj"], ["z_out"])], "z")
    outer = body("", [helper.make_node("Loop", ["inner", "", "y"], ["y_out"], body=inner)], "y")
    model = make_model([helper.make_node("Loop", ["trips", "", "x"], ["y"], body=outer)],
                       [("trips", [], np.int64), ("inner", [], np.int64), ("x", [3])], [("y", [3])])
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


def test_a_loop_inside_a_loop_runs_from_its_artifact(nested_loop, tmp_path):
    model, compiled = nested_loop
    (outer,) = compiled.header["loops"]
    assert len(outer["inner"]) == 1
    sess = _session(compiled, tmp_path)
    for trips, inner in ((3, 4), (2, 0), (0, 3)):
        feed = {"trips": np.array(trips), "inner": np.array(inner), "x": np.array([1.0, 2.0, 3.0], np.float32)}
        np.testing.assert_allclose(sess.run(None, feed)[0], ort_run(model, feed)[0])


@pytest.mark.parametrize("edit, message", [
    (lambda loop: loop["inner"][0].update(end=loop["end"] + 1), "loop launches"),
    (lambda loop: loop["inner"][0].update(begin=loop["begin"] - 1), "loop launches"),
    (lambda loop: loop["inner"].append(copy.deepcopy(loop["inner"][0])), "loop launches"),
    (lambda loop: loop["inner"][0].update(flag=["arena", 10 ** 6, 0]), "loop place"),
    (lambda loop: loop.update(inner="none"), "not a list"),
    (lambda loop: loop["inner"][0].update(inner=_nest(copy.deepcopy(loop["inner"][0]), 40)), "nest more than"),
])
def test_a_nested_loop_out_of_its_body_is_refused_on_load(nested_loop, tmp_path, edit, message):
    with pytest.raises(InvalidModelError, match=f"artifact metadata is invalid.*{message}"):
        _session(nested_loop[1], tmp_path, edit)


def _nest(loop: dict, depth: int) -> list:
    """`depth` copies of `loop`, each the inner loop of the one before."""
    return [] if depth == 0 else [{**loop, "inner": _nest(loop, depth - 1)}]


def test_the_deadline_stops_a_long_inner_loop(nested_loop, tmp_path):
    sess = _session(nested_loop[1], tmp_path)
    options = pyflame_rt.RunOptions()
    options.timeout_ms = 20
    with pytest.raises(RunTimeoutError):
        sess.run(None, {"trips": np.array(1), "inner": np.array(10 ** 15), "x": np.zeros(3, np.float32)}, options)


def _slicing_body(before_sum=(), summed="part", after_sum=(), added="total"):
    """acc += sum(x[i : 2i + 1]) (a slice whose length, bound in the body, changes per iteration);
    nodes may be added before and after the sum, which then sums `summed` and adds `added`."""
    vi = helper.make_tensor_value_info
    return helper.make_graph(
        [helper.make_node("Identity", ["cond"], ["cond_out"]), helper.make_node("Add", ["i", "i"], ["i2"]),
         helper.make_node("Add", ["i2", "one"], ["end"]), helper.make_node("Unsqueeze", ["i", "zero"], ["s"]),
         helper.make_node("Unsqueeze", ["end", "zero"], ["e"]), helper.make_node("Slice", ["x", "s", "e"], ["part"]),
         *before_sum, helper.make_node("ReduceSum", [summed], ["total"], keepdims=1), *after_sum,
         helper.make_node("Add", ["acc", added], ["acc_out"]), helper.make_node("Identity", ["acc_out"], ["scan"])],
        "body", [vi("i", TensorProto.INT64, []), vi("cond", TensorProto.BOOL, []), vi("acc", TensorProto.FLOAT, [1])],
        [vi("cond_out", TensorProto.BOOL, []), vi("acc_out", TensorProto.FLOAT, [1]),
         vi("scan", TensorProto.FLOAT, [1])])


def _slicing_loop(body):
    return make_model([helper.make_node("Loop", ["trips", "", "a0"], ["acc", "scans"], body=body)],
                      [("trips", [], np.int64), ("x", ["n"]), ("a0", [1])], [("acc", [1]), ("scans", ["t", 1])],
                      {"one": np.array(1, np.int64), "zero": np.array([0], np.int64)})


def test_a_loop_body_binds_its_sizes_anew_in_every_iteration(tmp_path):
    model = _slicing_loop(_slicing_body())
    compiled = compile_model(model)
    loop = compiled.header["loops"][0]
    assert any(loop["begin"] < c[-1] < loop["end"] for c in compiled.header["computed_dims"])
    sess = _session(compiled, tmp_path)
    for trips, n in ((4, 6), (1, 3), (7, 5)):
        feed = {"trips": np.array(trips), "x": np.arange(n, dtype=np.float32) + 1, "a0": np.array([0.5], np.float32)}
        for got, expected in zip(sess.run(None, feed), ort_run(model, feed)):
            np.testing.assert_allclose(got, expected)


def test_a_bad_size_computed_in_an_iteration_stops_the_run():
    # part reshaped to [i + 1]: x[2 : 5] of a 4-element x is clamped to 2 elements in iteration 2
    body = _slicing_body([helper.make_node("Add", ["i", "one"], ["next"]),
                          helper.make_node("Unsqueeze", ["next", "zero"], ["shape"]),
                          helper.make_node("Reshape", ["part", "shape"], ["reshaped"])], summed="reshaped")
    model = _slicing_loop(body)
    sess = pyflame_rt.InferenceSession(model.SerializeToString())
    feed = {"trips": np.array(2), "x": np.arange(4, dtype=np.float32), "a0": np.zeros(1, np.float32)}
    for got, expected in zip(sess.run(None, feed), ort_run(model, feed)):
        np.testing.assert_allclose(got, expected)
    with pytest.raises(ShapeMismatchError):
        sess.run(None, {**feed, "trips": np.array(3)})


def test_a_loop_in_a_body_that_binds_sizes_is_refused_when_compiled():
    vi = helper.make_tensor_value_info
    inner = helper.make_graph([helper.make_node("Identity", ["c2"], ["c2_out"]),
                               helper.make_node("Add", ["z", "total"], ["z_out"])], "inner",
                              [vi("j", TensorProto.INT64, []), vi("c2", TensorProto.BOOL, []),
                               vi("z", TensorProto.FLOAT, [1])],
                              [vi("c2_out", TensorProto.BOOL, []), vi("z_out", TensorProto.FLOAT, [1])])
    body = _slicing_body(after_sum=[helper.make_node("Loop", ["trips", "", "total"], ["again"], body=inner)],
                         added="again")
    with pytest.raises(UnsupportedOperatorError, match="loop or If in a loop body that computes sizes"):
        compile_model(_slicing_loop(body))


def test_a_dim_bound_in_an_inner_loop_is_refused_on_load(nested_loop, tmp_path):
    compiled = copy.deepcopy(nested_loop[1])
    inner = compiled.header["loops"][0]["inner"][0]
    compiled.header["computed_dims"] = [["d", "arena", 0, 0, "int64", inner["begin"] + 1]]
    with pytest.raises(InvalidModelError, match="a dim is bound inside the loop body"):
        _session(compiled, tmp_path)
