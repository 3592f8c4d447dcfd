"""The channels-last window kernel's register-blocked interior and bounds-checked edges (depthwise
conv, max/average pool), compiled and compared with onnxruntime: widths that are not a multiple of
the pixel block, strides, dilations, asymmetric and oversized padding, windows wider than the
input, channel counts that are not a multiple of the vector width, fused epilogues, batch > 1."""
import numpy as np
import pytest
from onnx import helper

from conftest import assert_close, kernels_run, make_model, ort_run
from pyflame_rt import InferenceSession, OptLevel, SessionOptions


def _x(rng, *shape):
    return rng.standard_normal(shape).astype(np.float32)


def _compare(model, c, h, w, batches=(1, 3)):
    sess = InferenceSession(model.SerializeToString(), SessionOptions(optimization_level=OptLevel.ALL))
    rng = np.random.default_rng(3)
    for n in batches:
        feed = {"x": _x(rng, n, c, h, w)}
        for got, want in zip(sess.run(None, feed), ort_run(model, feed)):
            assert_close(got, want)


DEPTHWISE_CASES = [  # (C, H, W, kernel, attrs)
    (13, 9, 37, 3, dict(pads=[1, 1, 1, 1])),                                 # 4 blocks + remainder, channel tail
    (24, 16, 33, 3, dict(strides=[2, 2], pads=[1, 1, 1, 1])),                # stride 2 blocks
    (8, 5, 20, 3, dict(dilations=[1, 2], pads=[0, 2, 1, 3])),                # dilated columns, asymmetric pads
    (19, 3, 2, 3, dict(pads=[2, 2, 2, 2])),                                  # no interior column at all
    (16, 7, 7, 3, dict(strides=[2, 2])),                                     # no padding: no edge columns
    (5, 6, 11, 3, dict(pads=[3, 4, 3, 4])),                                  # windows entirely in the padding
    (12, 8, 31, 5, dict(strides=[2, 3], pads=[2, 2, 2, 2], dilations=[2, 1])),  # 5x5, stride 3
]


@pytest.mark.parametrize("c,h,w,k,attrs", DEPTHWISE_CASES)
@pytest.mark.slow
def test_depthwise_conv_blocks_and_edges(c, h, w, k, attrs, rng):
    node = helper.make_node("Conv", ["x", "wt", "b"], ["y"], group=c, **attrs)
    m = make_model([node], [("x", ["N", c, h, w])], [("y", ["N", c, None, None])],
                   {"wt": _x(rng, c, 1, k, k), "b": _x(rng, c)})
    _compare(m, c, h, w)


def test_depthwise_conv_residual_relu6_epilogue(rng):
    """clip(dwconv(x) + x, 0, 6) over a width that leaves a partial block and a channel tail."""
    c, h, w = 21, 6, 29
    nodes = [helper.make_node("Conv", ["x", "wt", "b"], ["c"], group=c, pads=[1, 1, 1, 1]),
             helper.make_node("Add", ["c", "x"], ["s"]), helper.make_node("Clip", ["s", "lo", "hi"], ["y"])]
    m = make_model(nodes, [("x", ["N", c, h, w])], [("y", ["N", c, h, w])],
                   {"wt": 2 * _x(rng, c, 1, 3, 3), "b": _x(rng, c), "lo": np.array(0, np.float32),
                    "hi": np.array(6, np.float32)})
    _compare(m, c, h, w)


@pytest.mark.parametrize("op,c,w,attrs", [
    ("MaxPool", 10, 30, dict(kernel_shape=[3, 3], pads=[1, 1, 1, 1])),
    ("MaxPool", 9, 21, dict(kernel_shape=[2, 2], strides=[2, 2], ceil_mode=1)),
    ("AveragePool", 17, 27, dict(kernel_shape=[3, 3], strides=[2, 2], pads=[1, 0, 1, 2])),
    ("AveragePool", 8, 25, dict(kernel_shape=[3, 3], pads=[1, 1, 1, 1], count_include_pad=1)),
])
def test_pools_blocks_and_edges(op, c, w, attrs):
    h = 7
    node = helper.make_node(op, ["x"], ["y"], **attrs)
    m = make_model([node], [("x", ["N", c, h, w])], [("y", ["N", c, None, None])])
    _compare(m, c, h, w)



BYTE_POOLS = [  # (dtype, C, W, attrs)
    # ResNet's stem pool with a byte tail after the 64-byte vector, ceil_mode
    (np.uint8, 69, 23, dict(kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1], ceil_mode=1)),
    # fewer channels than a vector, dilated columns, asymmetric pads
    (np.int8, 5, 30, dict(kernel_shape=[3, 3], pads=[2, 1, 0, 2], dilations=[1, 2])),
]


def test_byte_max_pools_run_on_codes(rng):
    """MaxPool of 8-bit codes runs the window kernel on bytes (no float32 copies), equal to
    onnxruntime's (padding never wins); one model of both pools, one compile."""
    h = 7
    nodes = [helper.make_node("MaxPool", [f"x{i}"], [f"y{i}"], **attrs) for i, (*_, attrs) in enumerate(BYTE_POOLS)]
    m = make_model(nodes, [(f"x{i}", ["N", c, h, w], dt) for i, (dt, c, w, _) in enumerate(BYTE_POOLS)],
                   [(f"y{i}", ["N", c, None, None], dt) for i, (dt, c, _, _) in enumerate(BYTE_POOLS)])
    sess = InferenceSession(m.SerializeToString(), SessionOptions(enable_profiling=True))
    for n in (1, 2):
        feed = {f"x{i}": rng.integers(np.iinfo(dt).min, np.iinfo(dt).max, (n, c, h, w), endpoint=True).astype(dt)
                for i, (dt, c, w, _) in enumerate(BYTE_POOLS)}
        for got, want in zip(sess.run(None, feed), ort_run(m, feed)):
            np.testing.assert_array_equal(got, want)
    kernels = kernels_run(sess, feed)
    assert {"uint8", "int8"} == {k.rsplit("_", 1)[1] for k in kernels if k.startswith("window_nhwc_max")}
    assert not any(k.startswith("window_max") for k in kernels)  # the float32 NCHW window kernel
