"""CNN ops compiled to native code vs onnxruntime, across attribute variants and opsets."""
import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

from conftest import assert_close, make_model, ort_run
from pyflame_rt import InferenceSession
from pyflame_rt.errors import ShapeMismatchError, UnsupportedOperatorError


def _check(model, *feeds, rtol=1e-4):
    """Compile once, compare every feed dict (e.g. several batch sizes) with onnxruntime."""
    sess = InferenceSession(model.SerializeToString())
    for feed in feeds:
        for g, w in zip(sess.run(None, feed), ort_run(model, feed)):
            assert_close(g, w, rtol)


def _x(rng, *shape):
    return rng.standard_normal(shape).astype(np.float32)


def _single(op, x_shape, out_dims, rng, attrs=None, inits=None, extra_inputs=(), opset=17, batches=(2,),
            dyn=True):
    """One-node model with a dynamic batch (first dim), run at each batch size."""
    inits = dict(inits or {})
    x_in = ["N" if dyn else x_shape[0]] + list(x_shape[1:])
    node = helper.make_node(op, ["x", *extra_inputs], ["y"], **(attrs or {}))
    m = make_model([node], [("x", x_in)], [("y", ["N" if dyn else x_shape[0]] + [None] * (out_dims - 1))],
                   inits, opset=opset)
    _check(m, *[{"x": _x(rng, b, *x_shape[1:])} for b in batches])


CONV_CASES = [
    dict(),
    dict(pads=[1, 1, 1, 1]),
    dict(strides=[2, 2], pads=[1, 1, 1, 1]),
    dict(strides=[2, 1], dilations=[2, 1], pads=[0, 2, 1, 0]),
    dict(auto_pad="SAME_UPPER", strides=[2, 2]),
    dict(auto_pad="SAME_LOWER"),
    dict(auto_pad="VALID", strides=[3, 3]),
]


@pytest.mark.parametrize("attrs", CONV_CASES)
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.slow
def test_conv2d(attrs, bias, rng):
    w = _x(rng, 20, 6, 3, 3)
    inits = {"w": w, **({"b": _x(rng, 20)} if bias else {})}
    _single("Conv", (1, 6, 11, 13), 4, rng, attrs, inits, ["w"] + (["b"] if bias else []), batches=(1, 3))


@pytest.mark.parametrize("k,stride", [(1, 1), (1, 2), (5, 1), (7, 2)])
@pytest.mark.slow
def test_conv_kernel_sizes(k, stride, rng):
    _single("Conv", (1, 5, 17, 17), 4, rng, dict(strides=[stride] * 2, pads=[k // 2] * 4),
            {"w": _x(rng, 33, 5, k, k), "b": _x(rng, 33)}, ["w", "b"])


@pytest.mark.parametrize("group,cin,cout", [(2, 4, 6), (3, 9, 3), (8, 8, 8), (8, 8, 16)])
@pytest.mark.parametrize("stride", [1, 2])
@pytest.mark.slow
def test_conv_grouped_and_depthwise(group, cin, cout, stride, rng):
    _single("Conv", (1, cin, 10, 9), 4, rng, dict(group=group, strides=[stride] * 2, pads=[1] * 4),
            {"w": _x(rng, cout, cin // group, 3, 3), "b": _x(rng, cout)}, ["w", "b"])


def test_conv1d(rng):
    _single("Conv", (1, 4, 30), 3, rng, dict(strides=[2], pads=[1, 2], dilations=[2]),
            {"w": _x(rng, 7, 4, 3), "b": _x(rng, 7)}, ["w", "b"])


@pytest.mark.parametrize("attrs", [
    dict(kernel_shape=[2, 2], strides=[2, 2]),
    dict(kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1]),
    dict(kernel_shape=[3, 3], strides=[2, 2], ceil_mode=1),
    dict(kernel_shape=[3, 2], dilations=[2, 1], strides=[1, 2]),
    dict(kernel_shape=[3, 3], auto_pad="SAME_UPPER", strides=[2, 2]),
    dict(kernel_shape=[3, 3], strides=[1, 1], pads=[1, 1, 1, 1]),
])
@pytest.mark.slow
def test_max_pool(attrs, rng):
    _single("MaxPool", (1, 3, 13, 12), 4, rng, attrs, batches=(1, 2))


@pytest.mark.parametrize("attrs", [
    dict(kernel_shape=[2, 2], strides=[2, 2]),
    dict(kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1]),
    dict(kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1], count_include_pad=1),
    dict(kernel_shape=[3, 3], strides=[2, 2], ceil_mode=1),
    dict(kernel_shape=[3, 3], strides=[2, 2], ceil_mode=1, pads=[1, 1, 1, 1], count_include_pad=1),
    dict(kernel_shape=[5, 5], strides=[1, 1], auto_pad="SAME_LOWER"),
])
@pytest.mark.slow
def test_average_pool(attrs, rng):
    _single("AveragePool", (1, 4, 13, 12), 4, rng, attrs, batches=(1, 2))


def test_pool_1d(rng):
    _single("MaxPool", (1, 3, 20), 3, rng, dict(kernel_shape=[3], strides=[2], pads=[1, 1]))
    _single("AveragePool", (1, 3, 20), 3, rng, dict(kernel_shape=[4], strides=[3]))


@pytest.mark.parametrize("op", ["GlobalAveragePool", "GlobalMaxPool"])
@pytest.mark.parametrize("shape", [(1, 5, 7, 7), (1, 3, 1, 1), (1, 2, 33), (1, 4, 9, 10)])
def test_global_pool(op, shape, rng):
    _single(op, shape, len(shape), rng, batches=(1, 3))


def test_batch_norm(rng):
    c = 6
    inits = {"s": _x(rng, c), "b": _x(rng, c), "m": _x(rng, c), "v": np.abs(_x(rng, c)) + 0.1}
    for shape in [(1, c, 5, 7), (1, c), (1, c, 11)]:
        _single("BatchNormalization", shape, len(shape), rng, dict(epsilon=1e-3), inits, ["s", "b", "m", "v"],
                batches=(1, 3))
    _single("BatchNormalization", (1, c, 4, 4), 4, rng, {}, inits, ["s", "b", "m", "v"], opset=9)


def test_instance_norm(rng):
    inits = {"s": _x(rng, 5), "b": _x(rng, 5)}
    _single("InstanceNormalization", (1, 5, 9, 7), 4, rng, dict(epsilon=1e-4), inits, ["s", "b"], batches=(1, 2))


@pytest.mark.parametrize("size", [1, 3, 5])
def test_lrn(size, rng):
    _single("LRN", (1, 7, 5, 6), 4, rng, dict(size=size, alpha=1e-2, beta=0.75, bias=2.0), batches=(1, 2))


@pytest.mark.parametrize("mode", ["constant", "reflect", "edge"])
@pytest.mark.parametrize("opset", [9, 11, 18])
def test_pad(mode, opset, rng):
    pads = [0, 0, 1, 2, 0, 1, 2, 0]
    if opset < 11:
        _single("Pad", (2, 3, 5, 6), 4, rng, dict(mode=mode, pads=pads, value=1.5), opset=opset, dyn=False)
        return
    inits = {"p": np.array(pads, np.int64), "v": np.array(1.5, np.float32)}
    extra = ["p", "v" if mode == "constant" else ""]
    if opset >= 18:
        inits = {"p": np.array([1, 2, 2, 0], np.int64), "v": np.array(1.5, np.float32),
                 "ax": np.array([2, 3], np.int64)}
        extra = ["p", "v", "ax"]
    _single("Pad", (1, 3, 5, 6), 4, rng, dict(mode=mode), inits, extra, opset=opset)


def test_pad_negative_crops(rng):
    inits = {"p": np.array([0, 0, -1, 2, 0, 0, 1, -2], np.int64)}
    _single("Pad", (2, 3, 5, 6), 4, rng, {}, inits, ["p"], opset=13, dyn=False)


@pytest.mark.parametrize("axis", [0, 1, 3, -1])
def test_concat(axis, rng):
    shapes = [(2, 3, 4, 5), (2, 3, 4, 5), (2, 3, 4, 5)]
    shapes = [tuple(s[:axis % 4]) + (s[axis % 4] + i,) + tuple(s[axis % 4 + 1:]) for i, s in enumerate(shapes)]
    out = list(shapes[0])
    out[axis] = sum(s[axis] for s in shapes)
    m = make_model([helper.make_node("Concat", ["a", "b", "c"], ["y"], axis=axis)],
                   [(n, list(s)) for n, s in zip("abc", shapes)], [("y", out)])
    _check(m, {n: _x(rng, *s) for n, s in zip("abc", shapes)})


def test_concat_dynamic_batch(rng):
    m = make_model([helper.make_node("Concat", ["a", "b"], ["y"], axis=1)],
                   [("a", ["N", 3, 4]), ("b", ["N", 2, 4])], [("y", ["N", 5, 4])])
    _check(m, *[{"a": _x(rng, n, 3, 4), "b": _x(rng, n, 2, 4)} for n in (1, 3)])


def test_concat_along_dynamic_axis(rng):
    """A KV cache's Concat(past, new): the result's dim is the sum symbol 'past+seq', computed by each
    run from the dims the inputs bind; a third part (an offset that is a sum) and an empty past too."""
    m = make_model([helper.make_node("Concat", ["past", "new", "tail"], ["y"], axis=2)],
                   [("past", ["N", 2, "past", 4]), ("new", ["N", 2, "seq", 4]), ("tail", ["N", 2, 1, 4])],
                   [("y", ["N", 2, "total", 4])])
    assert InferenceSession(m.SerializeToString()).get_outputs()[0].shape == ["N", 2, "past+seq+1", 4]
    _check(m, *[{"past": _x(rng, n, 2, p, 4), "new": _x(rng, n, 2, s, 4), "tail": _x(rng, n, 2, 1, 4)}
                for n, p, s in ((1, 0, 3), (2, 5, 1), (3, 7, 2))])


def test_dim_that_must_equal_a_concat_sum_is_checked(rng):
    """Add(Concat(a, b), s): s's dim must be a's plus b's, checked before native code runs."""
    m = make_model([helper.make_node("Concat", ["a", "b"], ["c"], axis=0),
                    helper.make_node("Add", ["c", "s"], ["y"])],
                   [("a", ["p"]), ("b", ["q"]), ("s", ["t"])], [("y", ["t"])])
    sess = InferenceSession(m.SerializeToString())
    _check(m, {"a": _x(rng, 2), "b": _x(rng, 3), "s": _x(rng, 5)})
    with pytest.raises(ShapeMismatchError, match=r"do not broadcast: 5 \(p\+q\) vs 4 \(t\)"):
        sess.run(None, {"a": _x(rng, 2), "b": _x(rng, 3), "s": _x(rng, 4)})


@pytest.mark.parametrize("opset", [11, 13, 18])
def test_split(opset, rng):
    if opset < 13:
        node = helper.make_node("Split", ["x"], ["a", "b", "c"], axis=1, split=[1, 3, 2])
        inits = {}
    elif opset < 18:
        node = helper.make_node("Split", ["x", "s"], ["a", "b", "c"], axis=1)
        inits = {"s": np.array([1, 3, 2], np.int64)}
    else:
        node = helper.make_node("Split", ["x"], ["a", "b", "c"], axis=-1, num_outputs=3)
        inits = {}
    m = make_model([node], [("x", ["N", 6, 7])], [(n, [None] * 3) for n in "abc"], inits, opset=opset)
    _check(m, {"x": _x(rng, 2, 6, 7)})


@pytest.mark.parametrize("perm", [[0, 2, 1, 3], [0, 3, 1, 2], [3, 2, 1, 0], [0, 1, 2, 3], None])
def test_transpose(perm, rng):
    attrs = {"perm": perm} if perm else {}
    m = make_model([helper.make_node("Transpose", ["x"], ["y"], **attrs)], [("x", [2, 3, 4, 17])], [("y", [None] * 4)])
    _check(m, {"x": _x(rng, 2, 3, 4, 17)})


def test_transpose_dynamic_batch_shufflenet_style(rng):
    """Reshape / Transpose / Reshape channel shuffle with a dynamic batch."""
    nodes = [helper.make_node("Reshape", ["x", "s1"], ["r"]), helper.make_node("Transpose", ["r"], ["t"], perm=[0, 2, 1, 3, 4]),
             helper.make_node("Reshape", ["t", "s2"], ["y"])]
    m = make_model(nodes, [("x", ["N", 6, 3, 4])], [("y", ["N", 6, 3, 4])],
                   {"s1": np.array([0, 2, 3, 3, 4], np.int64), "s2": np.array([0, 6, 3, 4], np.int64)})
    _check(m, *[{"x": _x(rng, n, 6, 3, 4)} for n in (1, 2)])


@pytest.mark.parametrize("opset", [11, 13])
def test_squeeze_unsqueeze(opset, rng):
    if opset < 13:
        nodes = [helper.make_node("Unsqueeze", ["x"], ["u"], axes=[0, 3]),
                 helper.make_node("Squeeze", ["u"], ["y"], axes=[0])]
        inits = {}
    else:
        nodes = [helper.make_node("Unsqueeze", ["x", "a1"], ["u"]), helper.make_node("Squeeze", ["u", "a2"], ["y"])]
        inits = {"a1": np.array([0, -2], np.int64), "a2": np.array([0], np.int64)}
    m = make_model(nodes + [helper.make_node("Relu", ["y"], ["z"])], [("x", ["N", 4, 5])], [("z", [None] * 3)], inits,
                   opset=opset)
    _check(m, {"x": _x(rng, 3, 4, 5)})


@pytest.mark.parametrize("starts,ends,axes,steps", [
    ([1], [3], [1], [1]),
    ([0, 1], [10, -1], [2, 3], [2, 1]),
    ([-1], [-100], [3], [-1]),
    ([5, 4], [0, 0], [2, 3], [-2, -3]),
    ([0], [2**63 - 1], [1], [2]),
])
def test_slice(starts, ends, axes, steps, rng):
    inits = {"s": np.array(starts, np.int64), "e": np.array(ends, np.int64), "a": np.array(axes, np.int64),
             "t": np.array(steps, np.int64)}
    _single("Slice", (1, 4, 6, 7), 4, rng, {}, inits, ["s", "e", "a", "t"])


def test_slice_opset9_attrs(rng):
    _single("Slice", (2, 4, 6), 3, rng, dict(starts=[1, 0], ends=[3, -1], axes=[1, 2]), opset=9, dyn=False)


@pytest.mark.parametrize("reps", [[1, 2, 3], [2, 1, 1], [3, 2, 2]])
def test_tile(reps, rng):
    m = make_model([helper.make_node("Tile", ["x", "r"], ["y"])], [("x", [2, 3, 5])], [("y", [None] * 3)],
                   {"r": np.array(reps, np.int64)})
    _check(m, {"x": _x(rng, 2, 3, 5)})


def test_import_errors(rng):
    """Non-constant attribute inputs and training-mode BN fail at import with a clear error."""
    m = make_model([helper.make_node("Tile", ["x", "r"], ["y"])], [("x", [2, 3]), ("r", [2])], [("y", [None] * 2)])
    with pytest.raises(UnsupportedOperatorError, match="repeats must be known at compile time"):
        InferenceSession(m.SerializeToString())
    w = _x(rng, 4, 3, 3, 3)
    m = make_model([helper.make_node("Conv", ["x", "w"], ["y"])], [("x", [1, 5, 8, 8])], [("y", [None] * 4)], {"w": w})
    with pytest.raises((ShapeMismatchError, Exception), match="channels"):
        InferenceSession(m.SerializeToString())


def test_movement_on_int64(rng):
    """Concat / Slice / Transpose copy any item size (here int64 shape-like data)."""
    nodes = [helper.make_node("Concat", ["a", "b"], ["c"], axis=1),
             helper.make_node("Transpose", ["c"], ["t"], perm=[1, 0]),
             helper.make_node("Slice", ["t", "s", "e", "ax", "st"], ["y"])]
    graph = helper.make_graph(
        nodes, "ints", [helper.make_tensor_value_info(n, TensorProto.INT64, [3, w]) for n, w in (("a", 2), ("b", 3))],
        [helper.make_tensor_value_info("y", TensorProto.INT64, [None, None])],
        [numpy_helper.from_array(np.array(v, np.int64), n) for n, v in
         (("s", [4]), ("e", [0]), ("ax", [0]), ("st", [-2]))])
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    feed = {"a": rng.integers(-2**40, 2**40, (3, 2)), "b": rng.integers(-5, 5, (3, 3))}
    got = InferenceSession(m.SerializeToString()).run(None, feed)[0]
    np.testing.assert_array_equal(got, ort_run(m, feed)[0])


@pytest.mark.parametrize("attrs,scales,sizes", [
    (dict(mode="nearest", coordinate_transformation_mode="asymmetric", nearest_mode="floor"), [1, 1, 2, 2], None),
    (dict(mode="nearest"), [1, 1, 1.5, 0.7], None),
    (dict(mode="nearest", nearest_mode="round_prefer_ceil", coordinate_transformation_mode="align_corners"),
     None, [2, 3, 9, 4]),
    (dict(mode="linear"), [1, 1, 0.6, 1.7], None),
    (dict(mode="linear", coordinate_transformation_mode="align_corners"), None, [2, 3, 11, 3]),
    (dict(mode="linear", coordinate_transformation_mode="pytorch_half_pixel"), None, [2, 3, 1, 12]),
    (dict(mode="linear", coordinate_transformation_mode="asymmetric"), [1, 1, 2, 3], None),
])
def test_resize(attrs, scales, sizes, rng):
    inits = {"roi": np.zeros(0, np.float32)}
    inputs = ["roi"]
    if scales is not None:
        inits["sc"] = np.array(scales, np.float32)
        inputs.append("sc")
    else:
        inits["sz"] = np.array(sizes, np.int64)
        inputs += ["", "sz"]
    _single("Resize", (2, 3, 6, 5), 4, rng, attrs, inits, inputs, opset=13, dyn=False)


@pytest.mark.parametrize("op,opset,mode", [("Upsample", 9, "nearest"), ("Upsample", 9, "linear"),
                                           ("Resize", 10, "nearest"), ("Resize", 10, "linear")])
def test_upsample_and_resize10(op, opset, mode, rng):
    _single(op, (1, 2, 4, 5), 4, rng, dict(mode=mode), {"sc": np.array([1, 1, 2, 3], np.float32)}, ["sc"],
            opset=opset)
