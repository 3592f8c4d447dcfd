"""ops/run_time_slices.py: Slice, Split, Pad, CenterCropPad and Range whose arguments are graph inputs
or computed from tensor values, against onnxruntime: several argument values from one artifact,
and bad values refused with a specific error before the kernels that depend on them."""
from __future__ import annotations

import numpy as np
import pytest
from onnx import TensorProto, helper

import pyflame_rt
from pyflame_rt.errors import ShapeMismatchError

from conftest import make_model, ort_run

I64 = np.int64
BIG = np.iinfo(np.int64).max


def _check(model, sess, feeds):
    got, want = sess.run(None, feeds), ort_run(model, feeds)
    for g, w in zip(got, want):
        assert g.shape == w.shape and g.dtype == w.dtype and np.array_equal(g, w), (g, w)


def _x(*shape):
    return np.arange(np.prod(shape), dtype=np.float32).reshape(shape)


@pytest.fixture(scope="module")
def slicer():
    """y = Slice(x, starts, ends, axes, steps), every argument a graph input; z = Slice(x, [0], n + 1)
    with its end computed by the model."""
    model = make_model(
        [helper.make_node("Slice", ["x", "starts", "ends", "axes", "steps"], ["y"]),
         helper.make_node("Add", ["n", "one"], ["end"]),
         helper.make_node("Slice", ["x", "zero", "end"], ["z"])],
        [("x", [4, 6]), ("starts", [2], I64), ("ends", [2], I64), ("axes", [2], I64), ("steps", [2], I64),
         ("n", [1], I64)],
        [("y", ["a", "b"]), ("z", ["c", 6])], initializers={"one": np.ones(1, I64), "zero": np.zeros(1, I64)})
    return model, pyflame_rt.InferenceSession(model.SerializeToString())


def _slice_feeds(starts, ends, axes, steps, n=2):
    return {"x": _x(4, 6), "starts": np.array(starts, I64), "ends": np.array(ends, I64), "axes": np.array(axes, I64),
            "steps": np.array(steps, I64), "n": np.array([n], I64)}


@pytest.mark.parametrize("args", [
    ([1, 0], [3, 6], [0, 1], [1, 2]),          # plain
    ([-1, 5], [-BIG, -BIG], [1, 0], [-2, -1]),  # negative starts and steps, ends past the front
    ([0, 2], [BIG, 100], [-1, -2], [3, 1]),     # negative axes, INT_MAX and out-of-range ends
    ([5, 0], [1, 4], [0, 1], [1, 1]),           # an empty result
])
def test_slice_arguments_fed_at_run_time(slicer, args):
    model, sess = slicer
    _check(model, sess, _slice_feeds(*args, n=args[0][0] % 4))


@pytest.mark.parametrize("args, message", [
    (([0, 0], [2, 2], [0, 1], [1, 0]), "Slice steps must not be 0"),
    (([0, 0], [2, 2], [1, -1], [1, 1]), r"the axes must be distinct and in \[-2, 2\)"),
    (([0, 0], [2, 2], [0, 2], [1, 1]), r"the axes must be distinct and in \[-2, 2\)"),
])
def test_slice_bad_arguments_are_refused(slicer, args, message):
    _, sess = slicer
    with pytest.raises(ShapeMismatchError, match=message):
        sess.run(None, _slice_feeds(*args))


def test_split_sizes_fed_at_run_time():
    """a, b, c: sizes fed as a graph input; d, e: sizes the model computes (bound mid-run)."""
    model = make_model([helper.make_node("Split", ["x", "split"], ["a", "b", "c"], axis=1),
                        helper.make_node("Slice", ["split", "one", "three"], ["tail"]),
                        helper.make_node("Split", ["x", "tail"], ["d", "e"], axis=0)],
                       [("x", [2, 7]), ("split", [3], I64)],
                       [("a", [2, "p"]), ("b", [2, "q"]), ("c", [2, "r"]), ("d", ["s", 7]), ("e", ["t", 7])],
                       initializers={"one": np.array([1], I64), "three": np.array([3], I64)})
    sess = pyflame_rt.InferenceSession(model.SerializeToString())
    for split in ([5, 1, 1], [5, 0, 2], [5, 2, 0]):
        _check(model, sess, {"x": _x(2, 7), "split": np.array(split, I64)})
    with pytest.raises(ShapeMismatchError, match="Split sizes must add up to axis 1"):
        sess.run(None, {"x": _x(2, 7), "split": np.array([2, 2, 2], I64)})
    with pytest.raises(ShapeMismatchError, match="Split sizes must add up to axis 0"):
        sess.run(None, {"x": _x(2, 7), "split": np.array([6, 0, 1], I64)})


@pytest.mark.parametrize("mode", ["constant", "edge", "reflect", "wrap"])
def test_pad_pads_and_axes_fed_at_run_time(mode):
    """Pads (negative ones crop), axes and the constant value are graph inputs."""
    inputs = ["x", "pads", "value", "axes"] if mode == "constant" else ["x", "pads", "", "axes"]
    model = make_model([helper.make_node("Pad", inputs, ["y"], mode=mode)],
                       [("x", [3, 4]), ("pads", [4], I64), ("axes", [2], I64)]
                       + ([("value", [])] if mode == "constant" else []), [("y", ["a", "b"])], opset=18)
    sess = pyflame_rt.InferenceSession(model.SerializeToString())
    for pads, axes in (([1, 2, 0, 1], [0, 1]), ([2, -1, 1, 0], [1, -2]), ([0, 0, 0, 0], [0, 1])):
        feeds = {"x": _x(3, 4), "pads": np.array(pads, I64), "axes": np.array(axes, I64)}
        if mode == "constant":
            feeds["value"] = np.array(-1.5, np.float32)
        _check(model, sess, feeds)


def test_pad_to_a_negative_size_is_refused():
    model = make_model([helper.make_node("Pad", ["x", "pads"], ["y"])], [("x", [3, 4]), ("pads", [4], I64)],
                       [("y", ["a", "b"])])
    sess = pyflame_rt.InferenceSession(model.SerializeToString())
    with pytest.raises(ShapeMismatchError, match="must not be negative"):
        sess.run(None, {"x": _x(3, 4), "pads": np.array([0, -3, 0, -2], I64)})


@pytest.mark.parametrize("target", [None, [5, 2]])
def test_center_crop_pad(target):
    """Crops one axis and pads the other, centered; a constant target is a static Slice + Pad."""
    nodes, inputs, inits = [helper.make_node("CenterCropPad", ["x", "shape"], ["y"], axes=[0, -1])], [("x", [4, 5])], {}
    if target is None:
        inputs.append(("shape", [2], I64))
    else:
        inits["shape"] = np.array(target, I64)
    model = make_model(nodes, inputs, [("y", ["a", "b"])], initializers=inits, opset=18)
    sess = pyflame_rt.InferenceSession(model.SerializeToString())
    for shape in ([[5, 2], [1, 8], [4, 5]] if target is None else [None]):
        feeds = {"x": _x(4, 5)} if shape is None else {"x": _x(4, 5), "shape": np.array(shape, I64)}
        _check(model, sess, feeds)


@pytest.mark.parametrize("dtype", [np.int32, np.float32])
def test_range_fed_at_run_time(dtype):
    elem = TensorProto.INT32 if dtype is np.int32 else TensorProto.FLOAT
    model = make_model([helper.make_node("Range", ["s", "l", "d"], ["y"])],
                       [("s", [], dtype), ("l", [], dtype), ("d", [], dtype)], [("y", ["n"], dtype)])
    assert model.graph.input[0].type.tensor_type.elem_type == elem
    sess = pyflame_rt.InferenceSession(model.SerializeToString())
    for s, l, d in ((10, 6, -3), (1, 5, 2), (0, 0, 1), (3, 1, 1), (0.5, 2.25, 0.5)):
        if dtype is np.int32 and s != int(s):
            continue
        _check(model, sess, {"s": np.array(s, dtype), "l": np.array(l, dtype), "d": np.array(d, dtype)})
    with pytest.raises(ShapeMismatchError, match="Range delta must not be 0"):
        sess.run(None, {"s": np.array(0, dtype), "l": np.array(4, dtype), "d": np.array(0, dtype)})


def test_dynamic_input_dims_with_run_time_arguments():
    """x's rows are a dynamic dim: one artifact slices and pads inputs of two lengths."""
    model = make_model([helper.make_node("Slice", ["x", "starts", "ends"], ["y"]),
                        helper.make_node("Pad", ["x", "pads"], ["z"], mode="reflect")],
                       [("x", ["n", 3]), ("starts", [1], I64), ("ends", [1], I64), ("pads", [4], I64)],
                       [("y", ["a", 3]), ("z", ["b", "c"])])
    sess = pyflame_rt.InferenceSession(model.SerializeToString())
    for n, starts, ends, pads in ((4, -3, BIG, [1, 0, 2, 2]), (7, 2, -1, [0, 2, 3, 1])):
        _check(model, sess, {"x": _x(n, 3), "starts": np.array([starts], I64), "ends": np.array([ends], I64),
                             "pads": np.array(pads, I64)})


def test_range_to_a_computed_limit():
    """Range(0, ReduceMax(lengths), 1): a sequence mask's positions, the limit computed by the model."""
    model = make_model([helper.make_node("ReduceMax", ["lengths"], ["limit"], keepdims=0),
                        helper.make_node("Range", ["zero", "limit", "one"], ["y"])],
                       [("lengths", [3], I64)], [("y", ["n"], I64)],
                       initializers={"zero": np.array(0, I64), "one": np.array(1, I64)})
    sess = pyflame_rt.InferenceSession(model.SerializeToString())
    for lengths in ([3, 7, 2], [0, 0, 0]):
        _check(model, sess, {"lengths": np.array(lengths, I64)})


@pytest.mark.parametrize("opset, attrs", [(13, {}), (18, {"num_outputs": 3})])
def test_split_of_a_dynamic_axis_without_sizes(opset, attrs):
    """Equal parts of ceil(n / 3) (opset 18: the last ones smaller) of a dynamic axis."""
    model = make_model([helper.make_node("Split", ["x"], ["a", "b", "c"], axis=0, **attrs)], [("x", ["n", 2])],
                       [("a", ["p", 2]), ("b", ["q", 2]), ("c", ["r", 2])], opset=opset)
    sess = pyflame_rt.InferenceSession(model.SerializeToString())
    for n in ((6, 9) if opset == 13 else (7, 2, 9)):
        _check(model, sess, {"x": _x(n, 2)})
