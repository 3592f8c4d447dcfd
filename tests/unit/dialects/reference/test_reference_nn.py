"""The numpy reference of the CNN ops (dialects/reference/nn.py) agrees with onnxruntime."""
import numpy as np
import pytest
from onnx import helper

from conftest import assert_close, make_model, ort_run
from pyflame_rt.importers.onnx import from_onnx
from pyflame_rt.dialects import Graph, graph
from pyflame_rt.dialects.graph_control import YieldOp
from pyflame_rt.dialects.weights import WeightOp
from pyflame_rt.errors import UnsupportedOperatorError
from pyflame_rt.dialects.reference import evaluate, has_reference


def _x(rng, *shape):
    return rng.standard_normal(shape).astype(np.float32)


def _check(rng, op, x_shape, attrs=None, inits=None, extra=(), opset=17, inputs=None, out_rank=None):
    """One-node model over input x (+ constant initializers), reference vs onnxruntime."""
    node = helper.make_node(op, ["x", *extra], ["y"], **(attrs or {}))
    out = [None] * (len(x_shape) if out_rank is None else out_rank)
    model = make_model([node], [("x", list(x_shape)), *(inputs or [])], [("y", out)], dict(inits or {}),
                       opset=opset)
    feeds = {"x": _x(rng, *x_shape), **{name: _x(rng, *shape) for name, shape in inputs or []}}
    res = from_onnx(model)
    got, want = evaluate(res.module, res.weights, feeds)[0], ort_run(model, feeds)[0]
    assert got.dtype == want.dtype
    assert_close(got, want, 1e-5)


def test_every_graph_op_has_a_reference():
    missing = [op.name for op in Graph.operations  # values and terminators, not nodes
               if op not in (graph.ConstantOp, WeightOp, YieldOp) and not has_reference(op)]
    assert not missing


@pytest.mark.parametrize("x_shape,w_shape,attrs", [
    ((2, 4, 7, 6), (5, 4, 3, 3), dict(pads=[1, 0, 2, 1], strides=[2, 1])),
    ((1, 6, 9, 8), (6, 2, 3, 2), dict(group=3, dilations=[2, 1], strides=[1, 2])),
    ((1, 3, 11), (4, 3, 4), dict(strides=[3], pads=[2, 1])),
    ((1, 2, 5, 4, 6), (3, 2, 2, 3, 2), dict(pads=[1, 0, 1, 0, 1, 1])),
])
def test_conv(x_shape, w_shape, attrs, rng):
    _check(rng, "Conv", x_shape, attrs, {"w": _x(rng, *w_shape), "b": _x(rng, w_shape[0])}, ["w", "b"])


@pytest.mark.parametrize("x_shape,w_shape,attrs", [
    ((2, 4, 5, 3), (4, 3, 3, 4), dict(group=2, strides=[2, 3], pads=[1, 0, 0, 2])),
    ((1, 3, 4, 4), (3, 2, 3, 3), dict(strides=[3, 2], output_shape=[10, 8])),
    ((1, 3, 4, 4), (3, 2, 2, 3), dict(dilations=[2, 2], output_padding=[1, 0], strides=[2, 2])),
    ((1, 2, 6), (2, 3, 3), dict(strides=[2], auto_pad="SAME_UPPER")),
    ((1, 2, 3, 4, 2), (2, 2, 2, 2, 3), dict(strides=[1, 2, 2])),
])
def test_conv_transpose(x_shape, w_shape, attrs, rng):
    _check(rng, "ConvTranspose", x_shape, attrs, {"w": _x(rng, *w_shape)}, ["w"])


@pytest.mark.parametrize("x_shape,image,block,attrs", [
    ((2, 12, 24), [6, 7], [2, 2], dict(strides=[1, 2], pads=[0, 1, 1, 0])),
    ((1, 6, 4), [9], [3], dict(strides=[2], pads=[1, 0])),
])
def test_col2im(x_shape, image, block, attrs, rng):
    _check(rng, "Col2Im", x_shape, attrs, {"image": np.array(image), "block": np.array(block)}, ["image", "block"],
           opset=18, out_rank=2 + len(image))


@pytest.mark.parametrize("op,attrs", [
    ("MaxPool", dict(kernel_shape=[3, 2], strides=[2, 2], pads=[1, 0, 1, 1], ceil_mode=1)),
    ("MaxPool", dict(kernel_shape=[2, 3], dilations=[2, 1])),
    ("AveragePool", dict(kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1])),
    ("AveragePool", dict(kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1], count_include_pad=1)),
    ("AveragePool", dict(kernel_shape=[2, 2], strides=[2, 2], ceil_mode=1, count_include_pad=1)),
    ("GlobalAveragePool", {}), ("GlobalMaxPool", {}),
])
def test_pools(op, attrs, rng):
    _check(rng, op, (2, 3, 7, 8), attrs, opset=19)


def test_pool_3d(rng):
    _check(rng, "MaxPool", (1, 2, 5, 6, 4), dict(kernel_shape=[2, 3, 2], strides=[2, 1, 2], pads=[0, 1, 0, 1, 1, 0]))


def test_normalizations(rng):
    c = 5
    params = {n: _x(rng, c) for n in ("s", "b", "m")}
    params["v"] = np.abs(_x(rng, c)) + 0.1
    _check(rng, "BatchNormalization", (2, c, 3, 4), dict(epsilon=1e-3), params, ["s", "b", "m", "v"])
    _check(rng, "InstanceNormalization", (2, c, 3, 4), dict(epsilon=1e-4),
           {"s": params["s"], "b": params["b"]}, ["s", "b"])
    _check(rng, "LRN", (2, c, 3, 4), dict(size=3, alpha=1e-2, beta=0.6, bias=1.5))


@pytest.mark.parametrize("mode", ["constant", "reflect", "edge"])
def test_pad(mode, rng):
    _check(rng, "Pad", (2, 3, 4, 5), dict(mode=mode), {"p": np.array([0, 1, 2, 0, 0, 2, 1, 3], np.int64),
                                                      "v": np.array(0.5, np.float32)}, ["p", "v"])


@pytest.mark.parametrize("attrs,scales,sizes", [
    (dict(mode="nearest"), [1, 1, 2, 3], None),
    (dict(mode="nearest", coordinate_transformation_mode="asymmetric", nearest_mode="floor"), [1, 1, 1.5, 0.5], None),
    (dict(mode="linear"), [1, 1, 2, 2.5], None),
    (dict(mode="linear", coordinate_transformation_mode="align_corners"), None, [2, 3, 7, 3]),
    (dict(mode="linear", coordinate_transformation_mode="pytorch_half_pixel"), None, [2, 3, 1, 9]),
    (dict(mode="cubic", cubic_coeff_a=-0.5, exclude_outside=1), [1, 1, 0.8, 1.7], None),
    (dict(mode="linear", coordinate_transformation_mode="half_pixel_symmetric"), [1, 1, 1.3, 0.7], None),
])
def test_resize(attrs, scales, sizes, rng):
    inits = {"r": np.zeros(0, np.float32), "s": np.array(scales or [], np.float32)}
    if sizes is not None:
        inits["z"] = np.array(sizes, np.int64)
    _check(rng, "Resize", (2, 3, 4, 5), attrs, inits, ["r", "s"] + (["z"] if sizes else []))


def test_resize_coordinate_mode_without_reference_is_refused(rng):
    node = helper.make_node("Resize", ["x", "r", "s"], ["y"], coordinate_transformation_mode="tf_half_pixel_for_nn")
    model = make_model([node], [("x", [1, 1, 2, 2])], [("y", [None] * 4)],
                       {"r": np.zeros(0, np.float32), "s": np.array([1, 1, 2, 2], np.float32)})
    res = from_onnx(model)
    with pytest.raises(UnsupportedOperatorError, match="tf_half_pixel_for_nn"):
        evaluate(res.module, res.weights, {"x": _x(rng, 1, 1, 2, 2)})


def test_data_movement(rng):
    _check(rng, "Concat", (2, 3, 4), dict(axis=1), {"c": _x(rng, 2, 2, 4)}, ["c"])
    _check(rng, "Transpose", (2, 3, 4, 5), dict(perm=[0, 3, 1, 2]))
    _check(rng, "Squeeze", (2, 1, 4, 1), {}, {"a": np.array([1, 3], np.int64)}, ["a"], out_rank=2)
    _check(rng, "Unsqueeze", (2, 4), {}, {"a": np.array([0, 3], np.int64)}, ["a"], out_rank=4)
    _check(rng, "Slice", (6, 7, 5), {}, {"s": np.array([5, 1], np.int64), "e": np.array([0, 100], np.int64),
                                        "a": np.array([0, 1], np.int64), "t": np.array([-2, 3], np.int64)},
           ["s", "e", "a", "t"])
    _check(rng, "Tile", (2, 3), {}, {"r": np.array([3, 2], np.int64)}, ["r"])


@pytest.mark.parametrize("attrs,x_shape,grid_shape", [
    (dict(mode="linear", padding_mode="zeros"), (2, 3, 4, 5), (2, 3, 6, 2)),
    (dict(mode="nearest", padding_mode="reflection", align_corners=1), (1, 2, 5, 4), (1, 4, 3, 2)),
    (dict(mode="cubic", padding_mode="border"), (1, 2, 5, 4), (1, 4, 3, 2)),
    (dict(mode="linear", padding_mode="reflection"), (1, 2, 3, 4, 3), (1, 2, 3, 2, 3)),
])
def test_grid_sample(attrs, x_shape, grid_shape, rng):
    _check(rng, "GridSample", x_shape, attrs, extra=["g"], inputs=[("g", list(grid_shape))], opset=22)


@pytest.mark.parametrize("align_corners,size", [(0, [2, 3, 4, 5]), (1, [1, 2, 3, 1, 4])])
def test_affine_grid(align_corners, size, rng):
    r = len(size) - 2
    node = helper.make_node("AffineGrid", ["theta", "size"], ["y"], align_corners=align_corners)
    model = make_model([node], [("theta", [size[0], r, r + 1])], [("y", [None] * (r + 2))],
                       {"size": np.array(size, np.int64)}, opset=20)
    feeds = {"theta": _x(rng, size[0], r, r + 1)}
    res = from_onnx(model)
    assert_close(evaluate(res.module, res.weights, feeds)[0], ort_run(model, feeds)[0], 1e-5)


def test_resize_tf_crop_and_resize(rng):
    attrs = dict(mode="linear", coordinate_transformation_mode="tf_crop_and_resize", extrapolation_value=3.0,
                 axes=[2, 3])
    _check(rng, "Resize", (1, 2, 5, 6), attrs, {"roi": np.array([0.4, -0.2, 0.9, 1.3], np.float32),
                                                "z": np.array([4, 7], np.int64)}, ["roi", "", "z"], opset=19)
