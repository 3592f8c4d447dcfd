"""Sizes computed from tensor data: the dims are bound mid-run, the buffers after them sized then."""
from __future__ import annotations

import json

import numpy as np
import pytest
from onnx import TensorProto, helper

import pyflame_rt
from pyflame_rt import memory
from pyflame_rt.errors import MemoryLimitError, ShapeMismatchError
from pyflame_rt.options import PoolConfig

from conftest import make_model, ort_run


@pytest.fixture(scope="module")
def computed_shape_model():
    """s = Cast(v + 1) sets y = ConstantOfShape(s) and z = Relu(Tile(x, s)): neither follows from
    the input shapes."""
    model = make_model(
        [helper.make_node("Add", ["v", "one"], ["a"]),
         helper.make_node("Cast", ["a"], ["s"], to=TensorProto.INT64),
         helper.make_node("ConstantOfShape", ["s"], ["y"], value=helper.make_tensor("c", TensorProto.FLOAT, [1], [2.5])),
         helper.make_node("Tile", ["x", "s"], ["t"]),
         helper.make_node("Relu", ["t"], ["z"])],
        [("v", [2]), ("x", ["n", 3])], [("y", [None, None]), ("z", [None, None])],
        initializers={"one": np.ones(1, np.float32)})
    return model, pyflame_rt.InferenceSession(model.SerializeToString())


def _feeds(v, n, rng=np.random.default_rng(0)):
    return {"v": np.array(v, np.float32), "x": rng.standard_normal((n, 3)).astype(np.float32)}


def test_sizes_follow_the_computed_values(computed_shape_model):
    model, sess = computed_shape_model
    assert [o.shape for o in sess.get_outputs()] == [["s_0", "s_1"], ["n*s_0", "3*s_1"]]
    for v, n in [([1, 2], 2), ([-1, 0], 1), ([3.5, 0], 3), ([0, 4], 0)]:
        feeds = _feeds(v, n)
        for got, want in zip(sess.run(None, feeds), ort_run(model, feeds)):
            assert got.shape == want.shape and np.array_equal(got, want)


def test_a_negative_computed_size_is_refused(computed_shape_model):
    _, sess = computed_shape_model
    with pytest.raises(ShapeMismatchError, match="size 's_0' of a tensor the model computes and must not be negative"):
        sess.run(None, _feeds([-3, 1], 2))


def test_the_refusal_names_the_element_not_its_byte_offset(computed_shape_model):
    _, sess = computed_shape_model
    with pytest.raises(ShapeMismatchError, match="element 1 of the tensor computed for 's_1'"):
        sess.run(None, _feeds([1, -3], 2))


def test_computed_sizes_past_int64_are_refused(computed_shape_model):
    _, sess = computed_shape_model
    with pytest.raises(ShapeMismatchError, match=r"exceed 2\*\*63 bytes"):
        sess.run(None, _feeds([2.0 ** 40, 2.0 ** 40], 1))


def test_buffers_sized_after_the_binding_respect_the_pool_limit(computed_shape_model):
    _, sess = computed_shape_model
    memory.set_global_pool_config(PoolConfig(memory_limit=1 << 20))
    try:  # Tile's result (the Relu's input) is an arena buffer of 3 * 2**18 floats
        with pytest.raises(MemoryLimitError):
            sess.run(None, _feeds([0, 2 ** 18], 1))
    finally:
        memory.set_global_pool_config(PoolConfig())


def test_a_stepped_run_is_profiled_whole(computed_shape_model, tmp_path):
    """One run event with every step's kernels and the dims bound mid-run."""
    model, _ = computed_shape_model
    sess = pyflame_rt.InferenceSession(model.SerializeToString(), pyflame_rt.SessionOptions(
        enable_profiling=True, profile_file_prefix=str(tmp_path / "prof")))
    sess.run(None, _feeds([1, 2], 2))
    events = json.load(open(sess.end_profiling()))
    runs = [e for e in events if e["name"] == "model_run"]
    kernels = [e for e in events if e["cat"] == "Kernel"]
    assert [r["args"]["dims"] for r in runs] == [{"n": 2, "s_0": 2, "s_1": 3}]
    assert [e["name"] for e in kernels] == sess.header["step_ops"]


@pytest.mark.parametrize("dtype", [np.float32, np.int64, np.bool_])
def test_nonzero_sizes_its_result_by_the_count(dtype):
    """NonZero counts, the run binds the count, then the coordinates fill a result of that size
    (and a Transpose after it is sized by it too)."""
    model = make_model([helper.make_node("NonZero", ["x"], ["y"]), helper.make_node("Transpose", ["y"], ["t"])],
                       [("x", ["n", 3], dtype)], [("y", [2, None], np.int64), ("t", [None, 2], np.int64)])
    sess = pyflame_rt.InferenceSession(model.SerializeToString())
    assert [o.shape for o in sess.get_outputs()] == [[2, "y_count"], ["y_count", 2]]
    rng = np.random.default_rng(1)
    for n in (4, 0, 1):
        x = (rng.integers(0, 3, (n, 3)) * (rng.random((n, 3)) > 0.4)).astype(dtype)
        if dtype == np.float32 and n:
            x[0, 0] = np.nan  # NaN is not zero
        for got, want in zip(sess.run(None, {"x": x}), ort_run(model, {"x": x})):
            assert got.shape == want.shape and np.array_equal(got, want)


def test_a_sum_over_a_computed_dim_is_bound_with_it():
    """z = Concat(ConstantOfShape(v + 1), w) has m+s_0 elements: bound once s_0 is computed."""
    model = make_model(
        [helper.make_node("Add", ["v", "one"], ["a"]),
         helper.make_node("Cast", ["a"], ["s"], to=TensorProto.INT64),
         helper.make_node("ConstantOfShape", ["s"], ["y"], value=helper.make_tensor("c", TensorProto.FLOAT, [1], [2.5])),
         helper.make_node("Concat", ["y", "w"], ["z"], axis=0)],
        [("v", [1]), ("w", ["m"])], [("z", [None])], initializers={"one": np.ones(1, np.float32)})
    sess = pyflame_rt.InferenceSession(model.SerializeToString())
    assert [o.shape for o in sess.get_outputs()] == [["m+s_0"]]
    for v, m in [(2, 3), (0, 0), (-1, 2)]:
        feeds = {"v": np.array([v], np.float32), "w": np.arange(m, dtype=np.float32)}
        (got,), (want,) = sess.run(None, feeds), ort_run(model, feeds)
        assert np.array_equal(got, want)


def test_a_loop_with_an_empty_body_binds_its_count_after_it_runs():
    # the body only passes on values: no launch, so the loop starts where the step before it ends
    vi = helper.make_tensor_value_info
    body = helper.make_graph(
        [helper.make_node("Identity", ["cond"], ["cond_out"]), helper.make_node("Identity", ["r"], ["r_t"])],
        "body", [vi("i", TensorProto.INT64, []), vi("cond", TensorProto.BOOL, [])],
        [vi("cond_out", TensorProto.BOOL, []), vi("r_t", TensorProto.FLOAT, [2])])
    nodes = [helper.make_node("Relu", ["x"], ["r"]), helper.make_node("Loop", ["trips", ""], ["ys"], body=body)]
    model = make_model(nodes, [("trips", [], np.int64), ("x", [2])], [("ys", ["n", 2])])
    sess = pyflame_rt.InferenceSession(model.SerializeToString())
    for trips in (3, 1, 0):
        feed = {"trips": np.array(trips, np.int64), "x": np.array([1.0, -2.0], np.float32)}
        got, expected = sess.run(None, feed)[0], ort_run(model, feed)[0]
        assert got.shape == expected.shape
        np.testing.assert_array_equal(got, expected)


def test_an_if_with_an_empty_branch_after_a_binding_reads_the_bound_dims_once():
    # the dims of y are bound just before the If, whose then branch has no launch: its loop's
    # buffers may reuse the tensor they were read from
    vi = helper.make_tensor_value_info
    branches = dict(
        then_branch=helper.make_graph([helper.make_node("Identity", ["x"], ["t"])], "then", [],
                                      [vi("t", TensorProto.FLOAT, None)]),
        else_branch=helper.make_graph([helper.make_node("Concat", ["x", "x"], ["e"], axis=1)], "else", [],
                                      [vi("e", TensorProto.FLOAT, None)]))
    model = make_model([helper.make_node("If", ["c"], ["y"], **branches)], [("c", [], np.bool_), ("x", ["n", 3])],
                       [("y", ["n", "w"])])
    sess = pyflame_rt.InferenceSession(model.SerializeToString())
    x = np.arange(6, dtype=np.float32).reshape(2, 3)
    for c in (True, False):
        feed = {"c": np.array(c), "x": x}
        np.testing.assert_array_equal(sess.run(None, feed)[0], ort_run(model, feed)[0])
