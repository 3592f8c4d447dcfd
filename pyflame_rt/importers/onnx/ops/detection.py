"""Converters for the detection operators: NonMaxSuppression, RoiAlign, MaxRoiPool."""
from __future__ import annotations

import numpy as np

from pyflame_rt.dialects import graph_detection as gd
from pyflame_rt.errors import InvalidModelError
from pyflame_rt.importers.onnx.converters import _NodeContext, converter


def _input_or(ctx: _NodeContext, i: int, what: str, default: np.ndarray):
    """Input i, or the constant `default` when the node omits it."""
    v = ctx.input(i)
    return v if v is not None else ctx.importer.add_constant(f"{ctx.node.output[0]}_{what}", default)


@converter("NonMaxSuppression")
def _non_max_suppression(ctx: _NodeContext):
    """The selected count is a dim bound while the model runs, named after the output. Absent inputs
    take ONNX's defaults: no output boxes, IoU threshold 0, no score threshold."""
    center = int(ctx.attrs.get("center_point_box", 0))
    if center not in (0, 1):
        raise InvalidModelError(f"NonMaxSuppression node '{ctx.node.name or ctx.node.output[0]}': "
                                f"center_point_box must be 0 or 1, got {center}")
    max_output = _input_or(ctx, 2, "max_output", np.zeros(1, np.int64))
    iou = _input_or(ctx, 3, "iou_threshold", np.zeros(1, np.float32))
    count = ctx.importer.new_dim(f"{ctx.node.output[0]}_count")
    return ctx.emit(gd.NonMaxSuppressionOp, [ctx.input(0), ctx.input(1), max_output, iou, ctx.input(4)],
                    center_point_box=bool(center), count=count)


_ROI_ALIGN_MODES = {"avg": "mean", "max": "max"}
_COORDINATE_MODES = {"half_pixel": True, "output_half_pixel": False}


@converter("RoiAlign")
def _roi_align(ctx: _NodeContext):
    """Opset 10 has no coordinate_transformation_mode: its regions are output_half_pixel ones."""
    mode = ctx.attrs.get("mode", b"avg").decode()
    coordinates = ctx.attrs.get("coordinate_transformation_mode", b"half_pixel" if ctx.opset >= 16 else
                                b"output_half_pixel").decode()
    if mode not in _ROI_ALIGN_MODES or coordinates not in _COORDINATE_MODES:
        raise InvalidModelError(f"RoiAlign node '{ctx.node.name or ctx.node.output[0]}': mode must be avg or max "
                                f"and coordinate_transformation_mode half_pixel or output_half_pixel, got "
                                f"{mode!r} and {coordinates!r}")
    return ctx.emit(gd.RoiAlignOp, [ctx.input(0), ctx.input(1), ctx.input(2)], mode=_ROI_ALIGN_MODES[mode],
                    output_height=int(ctx.attrs.get("output_height", 1)),
                    output_width=int(ctx.attrs.get("output_width", 1)),
                    sampling_ratio=int(ctx.attrs.get("sampling_ratio", 0)),
                    spatial_scale=float(ctx.attrs.get("spatial_scale", 1.0)),
                    half_pixel=_COORDINATE_MODES[coordinates])


@converter("MaxRoiPool")
def _max_roi_pool(ctx: _NodeContext):
    pooled = [int(v) for v in ctx.attrs.get("pooled_shape", [])]
    if len(pooled) != 2:
        raise InvalidModelError(f"MaxRoiPool node '{ctx.node.name or ctx.node.output[0]}': pooled_shape must have "
                                f"2 values, got {pooled}")
    return ctx.emit(gd.MaxRoiPoolOp, [ctx.input(0), ctx.input(1)], output_height=pooled[0], output_width=pooled[1],
                    spatial_scale=float(ctx.attrs.get("spatial_scale", 1.0)))
