"""ops/antialias.py: Resize with antialias (linear and cubic) against onnx's reference and
onnxruntime: constant scales in every coordinate mode, and scales / sizes fed at run time (several
values from one artifact); a scale that is not positive is a ShapeMismatchError."""
from __future__ import annotations

import numpy as np
import pytest
from onnx import helper
from onnx.reference import ReferenceEvaluator

from conftest import assert_close, make_model, ort_run
from pyflame_rt import InferenceSession
from pyflame_rt.errors import ShapeMismatchError, UnsupportedOperatorError

pytestmark = pytest.mark.slow  # the filter tables' kernels compile in ~10 s


def _resize(inputs, **attrs):
    return helper.make_node("Resize", ["x", *inputs], ["y"], antialias=1, **attrs)


def _check(model, sess, feed, onnxruntime_agrees=True):
    got = sess.run(None, feed)[0]
    assert_close(got, ReferenceEvaluator(model).run(None, feed)[0], rtol=1e-5)
    if onnxruntime_agrees:
        assert_close(got, ort_run(model, feed)[0], rtol=1e-5)


@pytest.mark.parametrize("mode", ["linear", "cubic"])
@pytest.mark.parametrize("coord", ["half_pixel", "asymmetric", "align_corners", "pytorch_half_pixel",
                                   "half_pixel_symmetric"])
def test_constant_scales(mode, coord, rng):
    model = make_model([_resize(["", "scales"], mode=mode, coordinate_transformation_mode=coord)],
                       [("x", ["n", 2, 9, 13])], [("y", ["n", 2, 5, 4])],
                       initializers={"scales": np.array([1, 1, 0.6, 0.35], np.float32)}, opset=19)
    sess = InferenceSession(model.SerializeToString())
    for n in (1, 3):  # (onnxruntime 1.32's antialiased align_corners differs from the reference by ~0.6)
        _check(model, sess, {"x": rng.standard_normal((n, 2, 9, 13), np.float32)}, coord != "align_corners")


def test_exclude_outside_and_upsampled_axis(rng):
    model = make_model([_resize(["", "scales"], mode="cubic", exclude_outside=1)], [("x", [1, 1, 6, 7])],
                       [("y", [1, 1, 3, 10])], initializers={"scales": np.array([1, 1, 0.5, 1.5], np.float32)},
                       opset=19)
    _check(model, InferenceSession(model.SerializeToString()), {"x": rng.standard_normal((1, 1, 6, 7), np.float32)})


@pytest.mark.parametrize("policy", ["stretch", "not_larger", "not_smaller"])
def test_constant_sizes(policy, rng):
    model = make_model([_resize(["", "", "sizes"], mode="linear", keep_aspect_ratio_policy=policy, axes=[2, 3])],
                       [("x", [2, 3, 10, 12])], [("y", [2, 3, "h", "w"])],
                       initializers={"sizes": np.array([4, 7], np.int64)}, opset=19)
    _check(model, InferenceSession(model.SerializeToString()), {"x": rng.standard_normal((2, 3, 10, 12), np.float32)})


@pytest.mark.parametrize("mode", ["linear", "cubic"])
def test_run_time_scales_and_sizes(mode, rng):
    nodes = [_resize(["", "scales"], mode=mode),
             helper.make_node("Resize", ["x", "", "", "sizes"], ["z"], antialias=1, mode=mode, axes=[2, 3])]
    model = make_model(nodes, [("x", ["n", 1, 8, 8]), ("scales", [4]), ("sizes", [2], np.int64)],
                       [("y", ["n", 1, "h", "w"]), ("z", ["n", 1, "p", "q"])], opset=19)
    sess = InferenceSession(model.SerializeToString())
    for n, scales, sizes in [(1, [1, 1, 0.5, 0.3], [3, 5]), (2, [1, 1, 0.8, 1.25], [8, 2])]:
        feed = {"x": rng.standard_normal((n, 1, 8, 8), np.float32), "scales": np.array(scales, np.float32),
                "sizes": np.array(sizes, np.int64)}
        got, want = sess.run(None, feed), ort_run(model, feed)
        for g, w, r in zip(got, want, ReferenceEvaluator(model).run(None, feed)):
            assert_close(g, r, rtol=1e-5)
            assert_close(g, w, rtol=1e-5)


@pytest.mark.parametrize("scale", [0.0, -0.5, 1e-30, float("nan")])
def test_a_run_time_scale_that_is_not_positive_is_refused(scale):
    model = make_model([_resize(["", "scales"], mode="linear")], [("x", [1, 1, 4, 4]), ("scales", [4])],
                       [("y", [1, 1, "h", "w"])], opset=19)
    sess = InferenceSession(model.SerializeToString())
    # the output's dim (bound first) is negative, or the taps' validity flag says why
    with pytest.raises(ShapeMismatchError, match="must not be negative|Resize node 'y': the scale must be positive"):
        sess.run(None, {"x": np.ones((1, 1, 4, 4), np.float32), "scales": np.array([1, 1, scale, 0.5], np.float32)})


@pytest.mark.parametrize("scale", [0.0, -0.5, 1e-30, float("nan")])
def test_a_constant_scale_that_is_not_positive_is_refused(scale):
    model = make_model([_resize(["", "scales"], mode="cubic")], [("x", [1, 1, 4, 4])], [("y", [1, 1, "h", "w"])],
                       initializers={"scales": np.array([1, 1, scale, 0.5], np.float32)}, opset=19)
    with pytest.raises(UnsupportedOperatorError, match=r"scale in \[2\^-52, inf\)"):
        InferenceSession(model.SerializeToString())
