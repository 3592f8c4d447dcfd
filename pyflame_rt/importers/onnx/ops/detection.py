"""Converters for the detection post-processing operators: NonMaxSuppression."""
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
