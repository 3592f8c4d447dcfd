"""MaxPool's Indices output and MaxUnpool compiled to native code vs onnxruntime and the numpy
reference: pads, strides, dilations, ceil_mode, storage_order, 1-D / 3-D, ties (first maximum
wins), dynamic batch; MaxUnpool's output_shape (constant or fed at run time) and out-of-range
indices -> InputError naming the op, never a write outside the output."""
import numpy as np
import pytest
from onnx import helper, numpy_helper
from onnx.reference import ReferenceEvaluator

from conftest import make_model, ort_run
from pyflame_rt import InferenceSession
from pyflame_rt.importers.onnx import from_onnx
from pyflame_rt.errors import InputError, UnsupportedOperatorError
from pyflame_rt.dialects.reference import evaluate


def _pool_model(x_shape, y_shape, **attrs):
    return make_model([helper.make_node("MaxPool", ["x"], ["y", "i"], **attrs)], [("x", x_shape)],
                      [("y", y_shape), ("i", y_shape, np.int64)], opset=12)


def _check(model, feeds, want=None):
    got = InferenceSession(model.SerializeToString()).run(None, feeds)
    want = want if want is not None else ort_run(model, feeds)
    imported = from_onnx(model)
    ref = evaluate(imported.module, imported.weights, feeds)
    for g, w, r in zip(got, want, ref):
        assert g.dtype == w.dtype and g.shape == w.shape, (g.dtype, w.dtype, g.shape, w.shape)
        np.testing.assert_array_equal(g, w)
        np.testing.assert_array_equal(r, w)


POOLS = [  # x shape, y shape, attributes
    ([2, 3, 9, 20], [2, 3, 9, 20], dict(kernel_shape=[3, 3], pads=[1, 1, 1, 1])),  # vector lanes + tail
    ([1, 2, 7, 9], [1, 2, 4, 5], dict(kernel_shape=[3, 2], strides=[2, 2], pads=[1, 0, 1, 1], storage_order=1)),
    ([1, 2, 8, 19], [1, 2, 6, 17], dict(kernel_shape=[2, 2], dilations=[2, 2], storage_order=1)),
    ([2, 1, 7, 7], [2, 1, 4, 4], dict(kernel_shape=[2, 2], strides=[2, 2], ceil_mode=1)),
    ([2, 3, 17], [2, 3, 9], dict(kernel_shape=[3], strides=[2], pads=[1, 1])),
    ([1, 2, 5, 6, 7], [1, 2, 4, 5, 6], dict(kernel_shape=[2, 2, 2], storage_order=0)),
    ([1, 2, 5, 6, 7], [1, 2, 3, 3, 4], dict(kernel_shape=[2, 3, 2], strides=[2, 2, 2], pads=[1, 0, 1, 0, 1, 0],
                                          storage_order=1)),
    ([1, 2, 12], [1, 2, 12], dict(kernel_shape=[3], pads=[1, 1], storage_order=1)),
]


@pytest.mark.parametrize("x_shape, y_shape, attrs", POOLS)
def test_max_pool_indices(x_shape, y_shape, attrs, rng):
    x = rng.standard_normal(x_shape).astype(np.float32)
    _check(_pool_model(x_shape, y_shape, **attrs), {"x": x})


@pytest.mark.parametrize("dtype", [np.int8, np.uint8])
def test_max_pool_indices_8_bit(dtype, rng):
    """int8 / uint8 run through the exact float32 copies of plain MaxPool; the indices are the same."""
    x = rng.integers(np.iinfo(dtype).min, np.iinfo(dtype).max, (1, 2, 5, 9)).astype(dtype)
    model = make_model([helper.make_node("MaxPool", ["x"], ["y", "i"], kernel_shape=[2, 2], pads=[1, 1, 1, 1])],
                       [("x", [1, 2, 5, 9], dtype)], [("y", [1, 2, 6, 10], dtype), ("i", [1, 2, 6, 10], np.int64)],
                       opset=12)
    _check(model, {"x": x})


@pytest.mark.parametrize("strides", [[1, 1], [2, 1]])
def test_ties_first_maximum_wins(strides):
    """Few distinct values: many windows hold their maximum twice; onnxruntime keeps the first."""
    x = (np.arange(2 * 11 * 21) % 3).astype(np.float32).reshape(1, 2, 11, 21)
    y_shape = [1, 2, (11 + 2 - 3) // strides[0] + 1, 21]
    _check(_pool_model([1, 2, 11, 21], y_shape, kernel_shape=[3, 3], pads=[1, 1, 1, 1], strides=strides), {"x": x})


def test_dynamic_batch(rng):
    model = _pool_model(["N", 2, 6, 6], ["N", 2, 3, 3], kernel_shape=[2, 2], strides=[2, 2])
    sess = InferenceSession(model.SerializeToString())
    for n in (1, 3):
        x = rng.standard_normal((n, 2, 6, 6)).astype(np.float32)
        for g, w in zip(sess.run(None, {"x": x}), ort_run(model, {"x": x})):
            np.testing.assert_array_equal(g, w)


def test_indices_unused_emits_plain_max_pool():
    """Only a used Indices output selects the argmax variant; storage_order alone changes nothing."""
    model = make_model([helper.make_node("MaxPool", ["x"], ["y"], kernel_shape=[2, 2], storage_order=1)],
                       [("x", [1, 1, 4, 4])], [("y", [1, 1, 3, 3])], opset=12)
    names = [op.name for op in from_onnx(model).module.walk()]
    assert "graph.max_pool" in names and "graph.max_pool_with_indices" not in names


def _unpool_model(x_shape, y_shape, shape_input=None, **attrs):
    inputs = [("x", x_shape), ("i", x_shape, np.int64)]
    inits = {}
    if isinstance(shape_input, str):
        inputs.append((shape_input, [len(x_shape)], np.int64))
    elif shape_input is not None:
        inits = {"s": np.array(shape_input, np.int64)}
    names = ["x", "i"] + (["s" if inits else shape_input] if shape_input is not None else [])
    return make_model([helper.make_node("MaxUnpool", names, ["y"], **attrs)], inputs, [("y", y_shape)],
                      initializers=inits, opset=11)


def test_pool_unpool_round_trip(rng):
    """MaxPool's indices feed MaxUnpool in one graph (no output_shape): both runtimes agree."""
    nodes = [helper.make_node("MaxPool", ["x"], ["p", "i"], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1]),
             helper.make_node("MaxUnpool", ["p", "i"], ["y"], kernel_shape=[3, 3], strides=[2, 2],
                              pads=[1, 1, 1, 1])]
    model = make_model(nodes, [("x", [2, 3, 9, 9])], [("y", [2, 3, 9, 9])], opset=11)
    _check(model, {"x": rng.standard_normal((2, 3, 9, 9)).astype(np.float32)})


def test_unpool_output_shape_constant_and_fed():
    """A larger output_shape keeps the indices' unpooled box at the origin (ONNX's reference and
    test data; onnxruntime indexes the output_shape tensor instead, so the oracle here is onnx's
    ReferenceEvaluator). Fed at run time it must equal the declared output shape."""
    x = np.array([[[[5, 6], [7, 8]]]], np.float32)
    i = np.array([[[[5, 7], [13, 15]]]], np.int64)
    for shape_input in ([1, 1, 5, 6], "s"):
        model = _unpool_model([1, 1, 2, 2], [1, 1, 5, 6], shape_input, kernel_shape=[2, 2], strides=[2, 2])
        feeds = {"x": x, "i": i, **({"s": np.array([1, 1, 5, 6])} if shape_input == "s" else {})}
        _check(model, feeds, want=ReferenceEvaluator(model).run(None, feeds))
    sess = InferenceSession(model.SerializeToString())
    with pytest.raises(InputError, match=r"MaxUnpool: output_shape must be \[1, 1, 5, 6\]"):
        sess.run(None, {**feeds, "s": np.array([1, 1, 6, 5])})


@pytest.mark.parametrize("bad", [16, -1, 1 << 40])
def test_unpool_index_out_of_range(bad):
    model = _unpool_model([1, 1, 2, 2], [1, 1, 4, 4], kernel_shape=[2, 2], strides=[2, 2])
    feeds = {"x": np.ones((1, 1, 2, 2), np.float32), "i": np.array([[[[5, 7], [13, bad]]]], np.int64)}
    sess = InferenceSession(model.SerializeToString())
    with pytest.raises(InputError, match=r"MaxUnpool: an index is outside its axis \(\[0, 16\)\)"):
        sess.run(None, feeds)
    imported = from_onnx(model)
    with pytest.raises(InputError, match="MaxUnpool"):
        evaluate(imported.module, imported.weights, feeds)
    feeds["i"][feeds["i"] == bad] = 0
    np.testing.assert_array_equal(sess.run(None, feeds)[0], ort_run(model, feeds)[0])


def test_unpool_output_shape_too_small():
    model = _unpool_model([1, 1, 2, 2], [1, 1, 3, 3], [1, 1, 3, 3], kernel_shape=[2, 2], strides=[2, 2])
    with pytest.raises(UnsupportedOperatorError, match="MaxUnpool.*does not fit"):
        from_onnx(model)


def test_unpool_output_shape_fed_undeclared():
    model = _unpool_model([1, 1, 2, 2], ["H", "W", "A", "B"], "s", kernel_shape=[2, 2], strides=[2, 2])
    with pytest.raises(UnsupportedOperatorError, match="output_shape must be a constant"):
        from_onnx(model)
