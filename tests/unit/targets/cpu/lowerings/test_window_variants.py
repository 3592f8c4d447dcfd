"""Windowed-op variants compiled to native code vs onnxruntime: 3-D MaxPool / AveragePool (the
window kernel with depth taps), 3-D Conv (im2col with depth taps; depthwise: the window kernel) and
Conv weights fed at run time (read in place)."""
import numpy as np
import pytest
from onnx import helper

from conftest import assert_close, make_model, ort_run
from pyflame_rt import InferenceSession


def _x(rng, *shape):
    return rng.standard_normal(shape).astype(np.float32)


def _compare(model, feed):
    for got, want in zip(InferenceSession(model.SerializeToString()).run(None, feed), ort_run(model, feed)):
        assert_close(got, want)


POOL_3D = [
    ("MaxPool", dict(kernel_shape=[2, 3, 2], strides=[2, 1, 2], pads=[0, 1, 0, 1, 1, 0])),
    ("MaxPool", dict(kernel_shape=[2, 2, 3], dilations=[2, 1, 2], ceil_mode=1, strides=[2, 2, 1])),
    ("AveragePool", dict(kernel_shape=[3, 2, 2], strides=[1, 2, 2], pads=[1, 0, 1, 1, 1, 0])),
    ("AveragePool", dict(kernel_shape=[3, 3, 3], strides=[2, 2, 2], pads=[1, 1, 1, 1, 1, 1], count_include_pad=1,
                         ceil_mode=1)),
]


@pytest.mark.parametrize("op,attrs", POOL_3D)
def test_pool_3d(op, attrs, rng):
    node = helper.make_node(op, ["x"], ["y"], **attrs)
    model = make_model([node], [("x", [2, 3, 5, 6, 7])], [("y", [None] * 5)], opset=19)
    _compare(model, {"x": _x(rng, 2, 3, 5, 6, 7)})


CONV_3D = [
    (1, (4, 3, 3, 3, 3), False, dict()),
    (1, (4, 3, 2, 3, 2), True, dict(strides=[2, 1, 2], pads=[1, 0, 1, 0, 2, 1])),
    (1, (5, 3, 3, 2, 3), True, dict(dilations=[2, 1, 2], strides=[1, 2, 1])),
    (3, (6, 1, 3, 3, 3), True, dict(pads=[1, 1, 1, 1, 1, 1])),  # depthwise: the window kernel with depth taps
    (3, (6, 1, 2, 2, 2), False, dict(strides=[2, 2, 2], dilations=[1, 2, 1])),
]


@pytest.mark.parametrize("group,w_shape,bias,attrs", CONV_3D)
@pytest.mark.slow
def test_conv_3d(group, w_shape, bias, attrs, rng):
    inputs = ["x", "w", "b"] if bias else ["x", "w"]
    node = helper.make_node("Conv", inputs, ["y"], group=group, **attrs)
    inits = {"w": _x(rng, *w_shape), "b": _x(rng, w_shape[0])}
    model = make_model([node], [("x", ["n", 3, 6, 7, 8])], [("y", [None] * 5)],
                       {k: inits[k] for k in inputs[1:]})
    _compare(model, {"x": _x(rng, 2, 3, 6, 7, 8)})


def test_conv_3d_groups_and_fed_weight(rng):
    """Two groups of two input channels (the GEMM per group) with the weight fed at run time."""
    node = helper.make_node("Conv", ["x", "w"], ["y"], group=2, pads=[0, 1, 1, 0, 1, 1])
    model = make_model([node], [("x", [1, 4, 5, 5, 6]), ("w", [6, 2, 2, 3, 3])], [("y", [None] * 5)])
    _compare(model, {"x": _x(rng, 1, 4, 5, 5, 6), "w": _x(rng, 6, 2, 2, 3, 3)})


@pytest.mark.parametrize("group,w_shape,attrs", [
    (1, (5, 3, 3, 3), dict(pads=[1, 0, 1, 2], strides=[2, 1])),
    (3, (6, 1, 3, 3), dict(pads=[1, 1, 1, 1])),  # depthwise: the window kernel reads the fed weight
    (1, (4, 3, 5), dict(strides=[2])),
])
def test_conv_weight_fed_at_run_time(group, w_shape, attrs, rng):
    """Conv weights as a graph input (onnx's node tests do this): [M, Cg*KH*KW] read in place."""
    x_shape = (2, 3, 7, 6)[:len(w_shape)]
    node = helper.make_node("Conv", ["x", "w"], ["y"], group=group, **attrs)
    model = make_model([node], [("x", list(x_shape)), ("w", list(w_shape))], [("y", [None] * len(x_shape))])
    _compare(model, {"x": _x(rng, *x_shape), "w": _x(rng, *w_shape)})
