"""Axes and shapes known only at run time (Reduce* / Squeeze / Unsqueeze axes, a Reshape shape, a
CumSum / CumProd axis): one artifact serves every value, against onnxruntime, and a bad value is a
ShapeMismatchError before the kernels that depend on it."""
from __future__ import annotations

import numpy as np
import pytest
from onnx import helper

import pyflame_rt
from pyflame_rt.errors import ShapeMismatchError
from pyflame_rt.importers.onnx import from_onnx

from conftest import assert_close, make_model, ort_run


def _ints(values) -> np.ndarray:
    return np.array(values, np.int64)


def _check(sess, model, feeds):
    got, want = sess.run(None, feeds), ort_run(model, feeds)
    for g, w in zip(got, want):
        assert g.shape == w.shape
        assert_close(g, w)


@pytest.fixture(scope="module")
def reduce_model():
    """y = ReduceSum(x, axes), z = ReduceMax(x, axes, keepdims=0): x has a dynamic first dim."""
    model = make_model([helper.make_node("ReduceSum", ["x", "axes"], ["y"]),
                        helper.make_node("ReduceMax", ["x", "axes"], ["z"], keepdims=0)],
                       [("x", ["n", 3, 2]), ("axes", [1], np.int64)], [("y", ["a", "b", "c"]), ("z", ["d", "e"])],
                       opset=18)
    return model, pyflame_rt.InferenceSession(model.SerializeToString())


@pytest.mark.slow
def test_reduce_axes_fed_at_run_time(reduce_model, rng):
    model, sess = reduce_model
    for n, axes in [(4, [0]), (4, [1]), (2, [-1]), (1, [2]), (4, [-3])]:
        _check(sess, model, {"x": rng.standard_normal((n, 3, 2)).astype(np.float32), "axes": _ints(axes)})


@pytest.mark.slow
@pytest.mark.parametrize("axes", [[3], [-4]])
def test_an_axis_out_of_range_is_refused(reduce_model, axes):
    _, sess = reduce_model
    with pytest.raises(ShapeMismatchError, match="ReduceSum node 'y': an axis is out of range or repeated"):
        sess.run(None, {"x": np.ones((2, 3, 2), np.float32), "axes": _ints(axes)})


def _reduce_ops(**initializers) -> list:
    model = make_model([helper.make_node("ReduceSum", ["x", "axes"], ["y"])],
                       [("x", [3, 2]), *([] if initializers else [("axes", [1], np.int64)])], [("y", [1, 2])],
                       initializers=initializers, opset=18)
    return list(from_onnx(model).main.walk())


def test_a_constant_axis_is_a_static_reduce():
    """Constant axes build the static reduce as before: no dim is bound at run time."""
    assert [op.name for op in _reduce_ops(axes=_ints([0]))][-2:] == ["graph.reduce", "func.return"]


def test_run_time_axes_reduce_a_view_of_derived_dims():
    """[3, 2] viewed as [o_0, r_0, o_1, r_1] (bound with a validity dim), reduced over the r_i."""
    ops = _reduce_ops()
    (bind,) = [op for op in ops if op.name == "graph.bind_dims"]
    assert bind.dim_names() == ["y_axes_valid", *(f"y_axes_{i}" for i in range(4))]
    assert bind.refusal.data == "an axis is out of range or repeated"  # what a flag of 0 refuses the run for
    (reduce,) = [op for op in ops if op.name == "graph.reduce" and op.axes.get_values() == (1, 3)]
    assert reduce.keepdims.value.data


@pytest.mark.slow
def test_reduce_axes_computed_from_shape_and_values(rng):
    """axes = rank(x) - k, k a graph input: computed mid-run; a repeated axis is refused."""
    model = make_model([helper.make_node("Shape", ["x"], ["s"]),
                        helper.make_node("Size", ["s"], ["r"]),
                        helper.make_node("Sub", ["r", "k"], ["axes"]),
                        helper.make_node("ReduceLogSumExp", ["x", "axes"], ["y"], keepdims=0)],
                       [("x", [2, "m", 3]), ("k", [2], np.int64)], [("y", ["a"])], opset=18)
    sess = pyflame_rt.InferenceSession(model.SerializeToString())
    for m, k in [(4, [1, 3]), (5, [2, 1]), (1, [3, 2])]:
        _check(sess, model, {"x": rng.standard_normal((2, m, 3)).astype(np.float32), "k": _ints(k)})
    with pytest.raises(ShapeMismatchError, match=r"an axis is out of range or repeated: 0 \(y_axes_valid\) vs 1"):
        sess.run(None, {"x": np.ones((2, 4, 3), np.float32), "k": _ints([1, 1])})


@pytest.mark.slow
def test_reshape_squeeze_unsqueeze_and_cumsum_at_run_time(rng):
    model = make_model([helper.make_node("Reshape", ["x", "shape"], ["r"]),
                        helper.make_node("Squeeze", ["x", "axes"], ["s"]),
                        helper.make_node("Unsqueeze", ["x", "axes"], ["u"]),
                        helper.make_node("CumSum", ["x", "axis"], ["c"], reverse=1),
                        helper.make_node("CumProd", ["x", "axis"], ["p"], exclusive=1)],
                       [("x", ["n", 1, 4]), ("shape", [3], np.int64), ("axes", [1], np.int64),
                        ("axis", [], np.int64)],
                       [("r", ["a", "b", "c"]), ("s", ["d", "e"]), ("u", ["f", "g", "h", "i"]),
                        ("c", ["n", 1, 4]), ("p", ["n", 1, 4])], opset=26)
    sess = pyflame_rt.InferenceSession(model.SerializeToString())
    for n, shape, axes, axis in [(3, [2, 0, -1], [1], 0), (2, [-1, 2, 2], [-2], -1), (1, [0, 4, 1], [1], 2)]:
        _check(sess, model, {"x": rng.standard_normal((n, 1, 4)).astype(np.float32), "shape": _ints(shape),
                             "axes": _ints(axes), "axis": _ints(axis)})
    feeds = {"x": np.ones((3, 1, 4), np.float32), "shape": _ints([2, 0, -1]), "axes": _ints([1]), "axis": _ints(0)}
    for name, bad, error in [("shape", [-1, -1, 2], "Reshape node 'r': the shape has two -1"),
                             ("shape", [2, -3, 2], "a value below -1"),
                             ("shape", [5, 0, 2], "element counts differ"),
                             ("axes", [2], "a squeezed dim is not 1"),  # a squeezed dim of 4
                             ("axis", 3, "CumSum node 'c': the axis is out of range")]:
        with pytest.raises(ShapeMismatchError, match=error):
            sess.run(None, {**feeds, name: _ints(bad)})


def test_values_named_alike_bind_dims_of_their_own(rng):
    """`r.1` and `r_1` make the same symbol; each Reshape still binds dims of its own (sharing them
    gave the second output the first one's shape)."""
    model = make_model([helper.make_node("Add", ["s1", "zero"], ["c1"]),
                        helper.make_node("Add", ["s2", "zero"], ["c2"]),
                        helper.make_node("Reshape", ["x", "c1"], ["r.1"]),
                        helper.make_node("Reshape", ["x", "c2"], ["r_1"])],
                       [("x", [6]), ("s1", [2], np.int64), ("s2", [2], np.int64)],
                       [("r.1", ["a", "b"]), ("r_1", ["c", "d"])], [("zero", _ints([0, 0]))])
    sess = pyflame_rt.InferenceSession(model.SerializeToString())
    _check(sess, model, {"x": rng.standard_normal(6).astype(np.float32), "s1": _ints([2, 3]), "s2": _ints([3, 2])})
