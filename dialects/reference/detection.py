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


def _sample(image: np.ndarray, y: np.float32, x: np.float32) -> list[np.ndarray]:
    """The four weighted corners of a bilinear sample at (y, x) of image [channels, h, w], all 0
    more than a pixel outside it; rows and columns past the last are clamped to it."""
    _, h, w = image.shape
    if not (-1 <= y <= h and -1 <= x <= w):
        return [np.zeros(image.shape[0], np.float32)] * 4
    y, x = max(y, np.float32(0)), max(x, np.float32(0))
    y0, x0 = int(y), int(x)
    y0, y1, y = (h - 1, h - 1, np.float32(h - 1)) if y0 >= h - 1 else (y0, y0 + 1, y)
    x0, x1, x = (w - 1, w - 1, np.float32(w - 1)) if x0 >= w - 1 else (x0, x0 + 1, x)
    ly, lx = y - np.float32(y0), x - np.float32(x0)
    hy, hx = np.float32(1) - ly, np.float32(1) - lx
    return [hy * hx * image[:, y0, x0], hy * lx * image[:, y0, x1], ly * hx * image[:, y1, x0],
            ly * lx * image[:, y1, x1]]


def _grid(size: np.float32, cells: int, ratio: int) -> int:
    return ratio if ratio > 0 else int(np.ceil(size / np.float32(cells)))


@reference(gd.RoiAlignOp)
def _roi_align(op, x):
    data, rois, batch = x[0].astype(np.float32), x[1].astype(np.float32), x[2]
    if batch.size and (batch.min() < 0 or batch.max() >= data.shape[0]):
        raise InputError(f"RoiAlign: a batch_indices value is outside [0, {data.shape[0]})")
    if not np.isfinite(rois).all():
        raise InputError("RoiAlign: every rois value must be finite")
    (oh, ow), f = op.pooled, np.float32
    scale, offset = f(op.spatial_scale.value.data), f(0.5 if op.half_pixel.value.data else 0)
    ratio, mean = op.sampling_ratio.value.data, op.mode.data == "mean"
    out = np.zeros((len(rois), data.shape[1], oh, ow), np.float32)
    for r, (roi, b) in enumerate(zip(rois, batch)):
        x0, y0, x1, y1 = (v * scale - offset for v in roi)
        width, height = x1 - x0, y1 - y0
        if not op.half_pixel.value.data:
            width, height = max(width, f(1)), max(height, f(1))
        cell_h, cell_w = height / f(oh), width / f(ow)
        gh, gw = _grid(height, oh, ratio), _grid(width, ow, ratio)
        for ph in range(oh):
            for pw in range(ow):
                acc = np.zeros(data.shape[1], np.float32)
                for iy in range(gh):
                    y = y0 + f(ph) * cell_h + (f(iy) + f(0.5)) * cell_h / f(gh)
                    for ix in range(gw):
                        corners = _sample(data[b], y, x0 + f(pw) * cell_w + (f(ix) + f(0.5)) * cell_w / f(gw))
                        if mean:
                            acc = acc + (corners[0] + corners[1] + corners[2] + corners[3])
                        else:
                            best = np.maximum(np.maximum(np.maximum(corners[0], corners[1]), corners[2]), corners[3])
                            acc = best if iy == ix == 0 else np.maximum(acc, best)
                out[r, :, ph, pw] = acc / f(max(gh * gw, 1)) if mean else acc
    return out


@reference(gd.MaxRoiPoolOp)
def _max_roi_pool(op, x):
    data, rois = x[0].astype(np.float32), x[1].astype(np.float32)
    n, channels, h, w = data.shape
    (oh, ow), scale = op.pooled, np.float32(op.spatial_scale.value.data)
    out = np.zeros((len(rois), channels, oh, ow), np.float32)
    for r, roi in enumerate(rois):
        if not -1 < roi[0] < n:
            raise InputError(f"MaxRoiPool: a region's batch index is outside [0, {n})")
        x0, y0, x1, y1 = (int(np.sign(v * scale) * np.floor(np.abs(v * scale) + 0.5)) for v in roi[1:])  # std::round
        cell_h = np.float32(max(y1 - y0 + 1, 1)) / np.float32(oh)
        cell_w = np.float32(max(x1 - x0 + 1, 1)) / np.float32(ow)
        for ph in range(oh):
            for pw in range(ow):
                top = min(max(int(np.floor(np.float32(ph) * cell_h)) + y0, 0), h)
                bottom = min(max(int(np.ceil(np.float32(ph + 1) * cell_h)) + y0, 0), h)
                left = min(max(int(np.floor(np.float32(pw) * cell_w)) + x0, 0), w)
                right = min(max(int(np.ceil(np.float32(pw + 1) * cell_w)) + x0, 0), w)
                if bottom > top and right > left:
                    out[r, :, ph, pw] = data[int(roi[0]), :, top:bottom, left:right].max(axis=(1, 2))
    return out
