"""Windowed-op variants compiled to native code vs onnxruntime: 3-D MaxPool / AveragePool (the
window kernel with depth taps) and Conv weights fed at run time (read in place)."""
import numpy as np
import pytest
from onnx import helper

from conftest import assert_close, make_model, ort_run
from pyflame_rt import InferenceSession
from pyflame_rt.errors import UnsupportedOperatorError


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


def test_conv_3d_is_refused_by_name(rng):
    node = helper.make_node("Conv", ["x", "w"], ["y"])
    model = make_model([node], [("x", [1, 2, 4, 4, 4])], [("y", [None] * 5)], {"w": _x(rng, 3, 2, 2, 2, 2)})
    with pytest.raises(UnsupportedOperatorError, match="not 3-D"):
        InferenceSession(model.SerializeToString())


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
