"""A detection post-processing graph as YOLO-style exports end (scores -> TopK -> NonMaxSuppression
-> Gather): raw predictions [batch, boxes, 4 + classes] (center, size, class scores) keep the
best-scoring candidates, suppress overlaps per class and gather the kept boxes, scores and
classes. Compiled once, checked against onnxruntime within 1e-4 at two batch sizes and two box
counts from the one artifact."""
import numpy as np
import pytest
from onnx import helper

from conftest import assert_close, make_model, ort_run
from pyflame_rt import InferenceSession
from pyflame_rt.errors import ShapeMismatchError

CLASSES, CANDIDATES = 3, 40


def _postprocess_model():
    i64 = lambda name, values: (name, np.array(values, np.int64))  # noqa: E731
    consts = dict([i64("lo", [0, 0, 4]), i64("box_end", [2**62, 2**62, 4]), i64("score_end", [2**62, 2**62, 2**62]),
                   i64("k", [CANDIDATES]), i64("max_output", [10]), i64("batch_box", [0, 2]),
                   ("iou", np.array([0.45], np.float32)), ("score_threshold", np.array([0.2], np.float32))])
    consts["zero"] = np.array([0, 0, 0], np.int64)
    node = helper.make_node
    nodes = [
        node("Slice", ["preds", "zero", "box_end"], ["boxes"]),  # [B, N, 4]: cx, cy, w, h
        node("Slice", ["preds", "lo", "score_end"], ["class_scores"]),  # [B, N, C]
        node("ReduceMax", ["class_scores"], ["best"], axes=[2], keepdims=0),
        node("TopK", ["best", "k"], ["top_scores", "top"], axis=1),  # the best candidates
        node("Unsqueeze", ["top", "last"], ["top_nd"]),
        node("GatherND", ["boxes", "top_nd"], ["cand_boxes"], batch_dims=1),  # [B, K, 4]
        node("GatherND", ["class_scores", "top_nd"], ["cand_scores_bkc"], batch_dims=1),  # [B, K, C]
        node("Transpose", ["cand_scores_bkc"], ["cand_scores"], perm=[0, 2, 1]),  # [B, C, K]
        node("NonMaxSuppression", ["cand_boxes", "cand_scores", "max_output", "iou", "score_threshold"],
             ["selected"], center_point_box=1),  # [M, 3]: batch, class, candidate
        node("Gather", ["selected", "batch_box"], ["batch_candidate"], axis=1),
        node("GatherND", ["cand_boxes", "batch_candidate"], ["det_boxes"]),  # [M, 4]
        node("GatherND", ["cand_scores", "selected"], ["det_scores"]),  # [M]
        node("Gather", ["selected", "one"], ["det_classes"], axis=1),  # [M]
    ]
    consts.update(last=np.array([2], np.int64), one=np.array(1, np.int64))
    return make_model(nodes, [("preds", ["batch", "boxes", 4 + CLASSES])],
                      [("det_boxes", [None, 4]), ("det_scores", [None]), ("det_classes", [None], np.int64)],
                      consts, opset=17)


def _predictions(rng, batch, boxes):
    centers = rng.uniform(0, 64, (batch, boxes, 2))
    sizes = rng.uniform(4, 24, (batch, boxes, 2))
    scores = rng.uniform(0, 1, (batch, boxes, CLASSES)) ** 3  # most candidates score low
    return np.concatenate([centers, sizes, scores], -1).astype(np.float32)


@pytest.mark.slow  # compiles a dozen kernels
def test_detection_postprocess_at_two_batch_sizes_and_box_counts():
    model = _postprocess_model()
    sess = InferenceSession(model.SerializeToString())
    rng = np.random.default_rng(0)
    for batch, boxes in ((1, 60), (3, 200), (2, 40)):
        feeds = {"preds": _predictions(rng, batch, boxes)}
        got, want = sess.run(None, feeds), ort_run(model, feeds)
        assert len(want[0]) > batch  # something survives in every run
        for g, w in zip(got, want):
            assert g.shape == w.shape and g.dtype == w.dtype, (g.shape, w.shape)
        assert_close(got[0], want[0], rtol=1e-4)
        assert_close(got[1], want[1], rtol=1e-4)
        np.testing.assert_array_equal(got[2], want[2])
    with pytest.raises(ShapeMismatchError, match="TopK"):  # fewer boxes than candidates, as onnxruntime fails
        sess.run(None, {"preds": _predictions(rng, 1, CANDIDATES - 1)})
