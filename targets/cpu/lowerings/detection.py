"""NonMaxSuppression, RoiAlign and MaxRoiPool lowerings."""
from __future__ import annotations

from xdsl.pattern_rewriter import PatternRewriter, op_type_rewrite_pattern

from pyflame_rt.dialects import graph_detection as gd
from pyflame_rt.dialects.graph_attrs import ReduceKind
from pyflame_rt.dialects.symbolic import dim_mul
from pyflame_rt.dtype import DType
from pyflame_rt.targets.cpu.kernels.detection import (
    NMS_ROWS_FIELDS, NMS_SELECT_FIELDS, NMS_TOTAL_FIELDS, NmsSpec, nms_rows_kernel, nms_select_kernel,
    nms_total_kernel)
from pyflame_rt.targets.cpu.kernels.roi_pool import (
    MAX_ROI_POOL_FIELDS, ROI_ALIGN_FIELDS, MaxRoiPoolSpec, RoiAlignSpec, max_roi_pool_kernel, roi_align_kernel)
from pyflame_rt.targets.cpu.lowerings.pattern import GraphToKernelPattern


class LowerNonMaxSuppression(GraphToKernelPattern):
    """The selection, one work item per (batch, class); the total, into a buffer the run binds the
    result's `count` dim from; then the rows, into the result the count sizes."""

    @op_type_rewrite_pattern
    def match_and_rewrite(self, op: gd.NonMaxSuppressionOp, rewriter: PatternRewriter) -> None:
        self.convert(op, rewriter)

    def lower(self, L, op: gd.NonMaxSuppressionOp) -> None:
        batch, classes, n = L.shapes[op.scores]
        items = dim_mul(batch, classes)
        spec = NmsSpec(op.center_point_box.value.data, op.score_threshold is not None)
        status, code = L.check("NonMaxSuppression: iou_threshold must be in [0, 1]")
        f = {"boxes": L.loc(op.boxes), "scores": L.loc(op.scores), "max_output": L.loc(op.max_output),
             "iou": L.loc(op.iou_threshold),
             "score": L.loc(op.score_threshold) if op.score_threshold is not None else L.null_buffer,
             "order": L.new_buffer(dim_mul(items, dim_mul(n, 8))),
             "selected": L.new_buffer(dim_mul(items, dim_mul(n, 8))),
             "counts": L.new_buffer(dim_mul(items, 8)), "status": status, "code": code, "classes": classes, "n": n,
             "total": L.new_buffer(8), "items": items}
        name = L.kernel(spec.name, lambda: nms_select_kernel(spec))
        L.call(name, [f[k] for k in NMS_SELECT_FIELDS], items)
        L.call(L.kernel("nms_total", nms_total_kernel), [f[k] for k in NMS_TOTAL_FIELDS], 1)
        L.bind_dims([op.count.data], f["total"], DType.INT64)
        f["out"] = L.result_loc(op.result)
        L.call(L.kernel("nms_rows", nms_rows_kernel), [f[k] for k in NMS_ROWS_FIELDS], 1)


def _roi_fields(L, op: gd.RoiPoolOp, what: str) -> dict:
    batch, channels, height, width = L.shapes[op.input]
    status, code = L.check(f"{what}: a region's batch index is outside [0, {batch})")
    out_h, out_w = op.pooled
    return {"x": L.loc(op.input), "rois": L.loc(op.rois), "out": L.result_loc(op.result), "status": status,
            "code": code, "batch": batch, "channels": channels, "height": height, "width": width, "out_h": out_h,
            "out_w": out_w}


class LowerRoiAlign(GraphToKernelPattern):
    """One work item per (region, channel)."""

    float32_only = (gd.RoiAlignOp,)

    @op_type_rewrite_pattern
    def match_and_rewrite(self, op: gd.RoiAlignOp, rewriter: PatternRewriter) -> None:
        self.convert(op, rewriter)

    def lower(self, L, op: gd.RoiAlignOp) -> None:
        f = {**_roi_fields(L, op, "RoiAlign"), "batch_indices": L.loc(op.batch_indices),
             "nonfinite_code": L.check("RoiAlign: every rois value must be finite")[1]}
        spec = RoiAlignSpec(op.mode.data == ReduceKind.MAX, op.half_pixel.value.data, op.sampling_ratio.value.data,
                            op.spatial_scale.value.data)
        L.call(L.kernel(spec.name, lambda: roi_align_kernel(spec)), [f[k] for k in ROI_ALIGN_FIELDS],
               dim_mul(L.shapes[op.result][0], f["channels"]))


class LowerMaxRoiPool(GraphToKernelPattern):
    """One work item per (region, channel)."""

    float32_only = (gd.MaxRoiPoolOp,)

    @op_type_rewrite_pattern
    def match_and_rewrite(self, op: gd.MaxRoiPoolOp, rewriter: PatternRewriter) -> None:
        self.convert(op, rewriter)

    def lower(self, L, op: gd.MaxRoiPoolOp) -> None:
        f = _roi_fields(L, op, "MaxRoiPool")
        spec = MaxRoiPoolSpec(op.spatial_scale.value.data)
        L.call(L.kernel(spec.name, lambda: max_roi_pool_kernel(spec)), [f[k] for k in MAX_ROI_POOL_FIELDS],
               dim_mul(L.shapes[op.result][0], f["channels"]))


PATTERNS = (LowerNonMaxSuppression, LowerRoiAlign, LowerMaxRoiPool)
