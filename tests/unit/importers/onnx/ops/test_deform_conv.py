"""DeformConv (GridSample sampling + grouped GEMM) against onnxruntime: offsets, mask, bias, groups,
offset groups, strides, pads and dilations, one artifact at two batch sizes."""
import numpy as np
import pytest
from onnx import helper

from conftest import assert_close, make_model, ort_run
from pyflame_rt import InferenceSession
from pyflame_rt.errors import ShapeMismatchError, UnsupportedOperatorError


def _out(size, k, s, d, p):
    return (size + p - d * (k - 1) - 1) // s + 1


@pytest.mark.parametrize("c,m,k,attrs,mask,bias", [
    (2, 3, (3, 3), {}, False, False),
    (4, 4, (3, 2), dict(pads=[1, 0, 1, 1], strides=[2, 1]), True, True),
    (4, 6, (2, 2), dict(group=2, offset_group=2, dilations=[2, 1]), True, False),
    (6, 2, (1, 3), dict(offset_group=3, pads=[0, 2, 0, 2]), False, True),
])
def test_deform_conv(c, m, k, attrs, mask, bias, rng):
    h, w, g, og = 7, 6, attrs.get("group", 1), attrs.get("offset_group", 1)
    s, d, p = attrs.get("strides", [1, 1]), attrs.get("dilations", [1, 1]), attrs.get("pads", [0, 0, 0, 0])
    oh, ow = _out(h, k[0], s[0], d[0], p[0] + p[2]), _out(w, k[1], s[1], d[1], p[1] + p[3])
    taps = k[0] * k[1]
    inits = {"w": rng.standard_normal((m, c // g, *k)).astype(np.float32)}
    if bias:
        inits["b"] = rng.standard_normal(m).astype(np.float32)
    inputs = [("x", ["N", c, h, w]), ("offset", ["N", og * taps * 2, oh, ow])]
    if mask:
        inputs.append(("mask", ["N", og * taps, oh, ow]))
    node = helper.make_node("DeformConv", ["x", "w", "offset", "b" if bias else "", "mask" if mask else ""], ["y"],
                            **attrs)
    model = make_model([node], inputs, [("y", ["N", m, oh, ow])], inits, opset=19)
    sess = InferenceSession(model.SerializeToString())
    for n in (1, 2):
        feed = {"x": rng.standard_normal((n, c, h, w)).astype(np.float32),
                "offset": (2 * rng.standard_normal((n, og * taps * 2, oh, ow))).astype(np.float32)}
        if mask:
            feed["mask"] = rng.random((n, og * taps, oh, ow)).astype(np.float32)
        assert_close(sess.run(None, feed)[0], ort_run(model, feed)[0], rtol=1e-4)


def test_deform_conv_3d_is_refused():
    node = helper.make_node("DeformConv", ["x", "w", "offset"], ["y"])
    model = make_model([node], [("x", [1, 1, 3, 3, 3]), ("offset", [1, 24, 2, 2, 2])], [("y", [1, 1, 2, 2, 2])],
                       {"w": np.ones((1, 1, 2, 2, 2), np.float32)}, opset=19)
    with pytest.raises(UnsupportedOperatorError, match="needs a 2-D image"):
        InferenceSession(model.SerializeToString())


@pytest.mark.parametrize("offset_shape,mask_shape,what", [
    ([1, 18, 4, 4], None, "offset"),  # a 3x3 kernel over 5x5 gives 3x3 positions
    ([1, 18, 3, 3], [1, 3, 3, 3], "mask"),
])
def test_offsets_and_mask_must_match_the_geometry(offset_shape, mask_shape, what):
    inputs = [("x", [1, 1, 5, 5]), ("offset", offset_shape)] + ([("mask", mask_shape)] if mask_shape else [])
    node = helper.make_node("DeformConv", ["x", "w", "offset", "", "mask" if mask_shape else ""], ["y"])
    model = make_model([node], inputs, [("y", [1, 1, 3, 3])], {"w": np.ones((1, 1, 3, 3), np.float32)}, opset=19)
    with pytest.raises(ShapeMismatchError, match=f"the {what} must have shape"):
        InferenceSession(model.SerializeToString())
