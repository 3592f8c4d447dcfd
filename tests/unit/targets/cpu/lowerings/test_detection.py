"""NonMaxSuppression, RoiAlign and MaxRoiPool compiled to native code vs onnxruntime and the numpy
reference. NonMaxSuppression: both box formats, corners in either order, equal scores (lower box
index first), with and without a score threshold, absent optional inputs, several batches and
classes at two sizes from one artifact, no boxes; an IoU threshold outside [0, 1] -> InputError.
RoiAlign (opsets 10, 16, 22: avg / max, half_pixel / output_half_pixel, adaptive and fixed
sampling) and MaxRoiPool at two sizes from one artifact; a batch index outside the input ->
InputError, as is a region that is not finite (onnxruntime's checks)."""
import numpy as np
import pytest
from onnx import helper

from conftest import make_model, ort_run
from pyflame_rt import InferenceSession
from pyflame_rt.compiler import CompileOptions, compile_model
from pyflame_rt.dialects.reference import evaluate
from pyflame_rt.executable import Executable
from pyflame_rt.errors import InputError
from pyflame_rt.importers.onnx import from_onnx
from pyflame_rt.options import OptLevel

INPUTS = ("boxes", "scores", "max_output", "iou", "score")


def _nms_model(inputs=INPUTS, classes=3, initializers=(), **attrs):
    node = helper.make_node("NonMaxSuppression", list(inputs), ["y"], **attrs)
    specs = {"boxes": ("boxes", ["B", "N", 4]), "scores": ("scores", ["B", classes, "N"]),
             "max_output": ("max_output", [1], np.int64), "iou": ("iou", [1]), "score": ("score", [1])}
    graph_inputs = [specs[i] for i in inputs if i and i not in dict(initializers)]
    return make_model([node], graph_inputs, [("y", [None, 3], np.int64)], initializers, opset=11)


def _boxes(rng, batch, n, center):
    """Overlapping boxes on a small field; corners in either order."""
    xy = rng.uniform(0, 8, (batch, n, 2)).astype(np.float32)
    wh = rng.uniform(1, 4, (batch, n, 2)).astype(np.float32)
    if center:
        return np.concatenate([xy, wh], -1)
    corners = np.concatenate([xy, xy + wh], -1)
    flip = rng.random((batch, n)) < 0.3
    corners[flip] = corners[flip][:, [2, 3, 0, 1]]
    return corners


def _feeds(rng, batch, n, classes, max_output=4, iou=0.4, score=0.3, center=False):
    scores = rng.uniform(0, 1, (batch, classes, n)).astype(np.float32)
    scores[..., ::3] = 0.625  # equal scores: the lower box index comes first
    return {"boxes": _boxes(rng, batch, n, center), "scores": scores,
            "max_output": np.array([max_output], np.int64), "iou": np.array([iou], np.float32),
            "score": np.array([score], np.float32)}


def _check(model, sess, feeds):
    feeds = {k: v for k, v in feeds.items() if k in {i.name for i in model.graph.input}}
    got, want = sess.run(None, feeds)[0], ort_run(model, feeds)[0]
    imported = from_onnx(model)
    ref = evaluate(imported.module, imported.weights, feeds)[0]
    assert got.dtype == want.dtype == np.int64 and got.shape == want.shape, (got.shape, want.shape)
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(ref, want)
    return got


@pytest.mark.parametrize("center", [0, 1])
@pytest.mark.parametrize("inputs", [INPUTS, INPUTS[:4]], ids=["score_threshold", "all_scores"])
def test_selections_match_onnxruntime_at_two_sizes(center, inputs):
    model = _nms_model(inputs, center_point_box=center)
    sess = InferenceSession(model.SerializeToString())
    rng = np.random.default_rng(center)
    for batch, n, max_output in ((1, 7, 3), (2, 150, 40)):
        got = _check(model, sess, _feeds(rng, batch, n, 3, max_output, center=center))
        assert len(got) > 0


def test_iou_zero_keeps_only_disjoint_boxes_and_max_output_caps():
    model = _nms_model()
    sess = InferenceSession(model.SerializeToString())
    rng = np.random.default_rng(5)
    for max_output, iou in ((1, 0.0), (100, 0.0), (100, 1.0), (0, 0.5), (-3, 0.5)):
        _check(model, sess, _feeds(rng, 2, 30, 3, max_output, iou))


def test_degenerate_boxes_and_equal_scores():
    """Identical boxes, boxes without area (never suppress nor get suppressed), all scores equal,
    -0 and +0 scores (equal: the lower index first)."""
    model = _nms_model(INPUTS[:4], classes=2)
    sess = InferenceSession(model.SerializeToString())
    boxes = np.array([[[0, 0, 2, 2], [0, 0, 2, 2], [1, 1, 1, 3], [0, 0, 2, 2.1], [5, 5, 6, 6], [2, 2, 0, 0]]],
                     np.float32)
    scores = np.array([[[0.5] * 6, [0.0, -0.0, 0.0, -0.0, 0.0, 0.0]]], np.float32)
    feeds = {"boxes": boxes, "scores": scores, "max_output": np.array([6], np.int64),
             "iou": np.array([0.5], np.float32)}
    assert len(_check(model, sess, feeds)) > 0


def test_absent_optional_inputs_take_the_defaults():
    rng = np.random.default_rng(6)
    for inputs in (INPUTS[:2], INPUTS[:3], ("boxes", "scores", "max_output", "", "score")):
        model = _nms_model(inputs)
        _check(model, InferenceSession(model.SerializeToString()), _feeds(rng, 2, 12, 3, 5))


def test_constant_thresholds_and_no_boxes():
    consts = {"max_output": np.array([2], np.int64), "iou": np.array([0.5], np.float32),
              "score": np.array([0.1], np.float32)}
    model = _nms_model(initializers=consts, classes=2)
    sess = InferenceSession(model.SerializeToString())
    rng = np.random.default_rng(7)
    _check(model, sess, _feeds(rng, 3, 20, 2))
    assert _check(model, sess, _feeds(rng, 2, 0, 2)).shape == (0, 3)


@pytest.mark.parametrize("iou", [-0.1, 1.5, float("nan")])
def test_iou_threshold_outside_0_1_is_an_input_error(iou):
    model = _nms_model()
    sess = InferenceSession(model.SerializeToString())
    with pytest.raises(InputError, match=r"iou_threshold must be in \[0, 1\]"):
        sess.run(None, _feeds(np.random.default_rng(8), 1, 5, 3, iou=iou))


def test_checked_build_selects_the_same_without_a_violation():
    model = _nms_model(center_point_box=1)
    exe = Executable(compile_model(model, CompileOptions(checked=True, opt_level=OptLevel.NONE)))
    feeds = _feeds(np.random.default_rng(9), 2, 33, 3, max_output=6, center=True)
    (got,) = exe.run([feeds[name] for name in INPUTS])
    np.testing.assert_array_equal(got, ort_run(model, feeds)[0])


def _regions(rng, count, height, width):
    """Regions partly outside the image, some thinner than a pixel."""
    corners = rng.uniform(-2, max(height, width) + 2, (count, 2, 2)).astype(np.float32)
    return np.concatenate([corners.min(1), corners.max(1)], 1)


def _roi_align_model(opset, **attrs):
    node = helper.make_node("RoiAlign", ["x", "rois", "batch_indices"], ["y"], **attrs)
    return make_model([node], [("x", ["N", 3, "H", "W"]), ("rois", ["R", 4]), ("batch_indices", ["R"], np.int64)],
                      [("y", ["R", 3, None, None])], opset=opset)


def _roi_feeds(rng, batch, height, width, count):
    return {"x": rng.standard_normal((batch, 3, height, width)).astype(np.float32),
            "rois": _regions(rng, count, height, width),
            "batch_indices": rng.integers(0, batch, count).astype(np.int64)}


@pytest.mark.parametrize("mode", ["avg", "max"])
@pytest.mark.parametrize("opset, coordinates", [(10, None), (16, "half_pixel"), (16, "output_half_pixel"),
                                                (22, "half_pixel")])
@pytest.mark.parametrize("sampling_ratio", [0, 2])
def test_roi_align_matches_onnxruntime_at_two_sizes(mode, opset, coordinates, sampling_ratio):
    attrs = dict(mode=mode, output_height=3, output_width=2, sampling_ratio=sampling_ratio, spatial_scale=0.75)
    if coordinates:
        attrs["coordinate_transformation_mode"] = coordinates
    model = _roi_align_model(opset, **attrs)
    oracle = _roi_align_model(min(opset, 16), **attrs)  # onnxruntime implements RoiAlign up to opset 16
    sess = InferenceSession(model.SerializeToString())
    rng = np.random.default_rng(opset)
    for batch, height, width, count in ((1, 6, 7, 3), (2, 11, 9, 8)):
        feeds = _roi_feeds(rng, batch, height, width, count)
        got, want = sess.run(None, feeds)[0], ort_run(oracle, feeds)[0]
        imported = from_onnx(model)
        assert got.shape == want.shape == (count, 3, 3, 2)
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(evaluate(imported.module, imported.weights, feeds)[0], want, rtol=1e-5, atol=1e-6)


def test_roi_align_bad_batch_index_and_nonfinite_region_are_input_errors():
    model = _roi_align_model(16, output_height=2, output_width=2)
    sess = InferenceSession(model.SerializeToString())
    feeds = _roi_feeds(np.random.default_rng(1), 2, 5, 5, 3)
    for bad in (2, -1):
        with pytest.raises(InputError, match=r"RoiAlign: a region's batch index is outside \[0, N\)"):
            sess.run(None, {**feeds, "batch_indices": np.array([0, bad, 1], np.int64)})
    for bad in (np.nan, np.inf):
        rois = feeds["rois"].copy()
        rois[1, 2] = bad
        with pytest.raises(InputError, match="RoiAlign: every rois value must be finite"):
            sess.run(None, {**feeds, "rois": rois})


def test_max_roi_pool_matches_onnxruntime_at_two_sizes():
    node = helper.make_node("MaxRoiPool", ["x", "rois"], ["y"], pooled_shape=[2, 3], spatial_scale=0.5)
    model = make_model([node], [("x", ["N", 3, "H", "W"]), ("rois", ["R", 5])], [("y", ["R", 3, 2, 3])])
    sess = InferenceSession(model.SerializeToString())
    rng = np.random.default_rng(2)
    for batch, height, width, count in ((1, 5, 6, 2), (3, 12, 10, 7)):
        x = rng.standard_normal((batch, 3, height, width)).astype(np.float32)
        rois = np.concatenate([rng.integers(0, batch, (count, 1)), 2 * _regions(rng, count, height, width)], 1)
        feeds = {"x": x, "rois": rois.astype(np.float32)}
        want = ort_run(model, feeds)[0]
        np.testing.assert_array_equal(sess.run(None, feeds)[0], want)
        imported = from_onnx(model)
        np.testing.assert_array_equal(evaluate(imported.module, imported.weights, feeds)[0], want)
    with pytest.raises(InputError, match="MaxRoiPool: a region's batch index"):
        sess.run(None, {"x": x, "rois": np.array([[batch, 0, 0, 2, 2]], np.float32)})
