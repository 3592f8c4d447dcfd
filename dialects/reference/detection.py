"""Reference semantics of the detection post-processing ops (see dialects/graph_detection.py)."""
from __future__ import annotations

import numpy as np

from pyflame_rt.dialects import graph_detection as gd
from pyflame_rt.errors import InputError
from pyflame_rt.dialects.reference.evaluator import bind_dims, reference


def _corners(box: np.ndarray, center: bool) -> tuple[float, float, float, float]:
    """(x_min, x_max, y_min, y_max) of a box in float32 arithmetic."""
    if center:
        x, y, w, h = box
        return x - w / np.float32(2), x + w / np.float32(2), y - h / np.float32(2), y + h / np.float32(2)
    y1, x1, y2, x2 = box
    return min(x1, x2), max(x1, x2), min(y1, y2), max(y1, y2)


def overlaps(a: np.ndarray, b: np.ndarray, center: bool, iou_threshold: np.float32) -> bool:
    """Whether the IoU of boxes a and b exceeds the threshold (boxes without area never do)."""
    ax0, ax1, ay0, ay1 = _corners(a, center)
    bx0, bx1, by0, by1 = _corners(b, center)
    ix0, ix1, iy0, iy1 = max(ax0, bx0), min(ax1, bx1), max(ay0, by0), min(ay1, by1)
    if ix1 <= ix0 or iy1 <= iy0:
        return False
    inter = (ix1 - ix0) * (iy1 - iy0)
    area_a, area_b = (ax1 - ax0) * (ay1 - ay0), (bx1 - bx0) * (by1 - by0)
    union = area_a + area_b - inter
    if inter <= 0 or area_a <= 0 or area_b <= 0 or union <= 0:
        return False
    return inter / union > iou_threshold


@reference(gd.NonMaxSuppressionOp)
def _non_max_suppression(op, x):
    boxes, scores = x[0].astype(np.float32), x[1].astype(np.float32)
    max_output = max(int(x[2].reshape(-1)[0]), 0)
    iou = np.float32(x[3].reshape(-1)[0])
    if not 0 <= iou <= 1:
        raise InputError(f"NonMaxSuppression: iou_threshold must be in [0, 1], got {iou}")
    center = op.center_point_box.value.data
    rows = []
    for b in range(scores.shape[0]):
        for c in range(scores.shape[1]):
            s = scores[b, c]
            candidates = [i for i in range(s.size) if len(x) < 5 or s[i] > np.float32(x[4].reshape(-1)[0])]
            candidates.sort(key=lambda i: (-s[i], i))
            kept: list[int] = []
            for i in candidates:
                if len(kept) == max_output:
                    break
                if not any(overlaps(boxes[b, k], boxes[b, i], center, iou) for k in kept):
                    kept.append(i)
            rows += [(b, c, i) for i in kept]
    bind_dims({op.count.data: len(rows)})
    return np.array(rows, np.int64).reshape(-1, 3)
