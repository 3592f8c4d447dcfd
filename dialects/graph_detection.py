"""Detection ops of the `graph` dialect: NonMaxSuppression, and the region-of-interest pooling ops
RoiAlign and MaxRoiPool.

NonMaxSuppression's result count depends on the values (a data-dependent size): `count` names a
dim the run binds once the selection has run, as graph.nonzero's does.
"""
from __future__ import annotations

from xdsl.dialects.builtin import BoolAttr, FloatAttr, IntegerAttr, StringAttr, TensorType, f64, i64
from xdsl.irdl import irdl_op_definition, operand_def, opt_operand_def, prop_def, result_def
from xdsl.utils.exceptions import VerifyException

from pyflame_rt.dialects.assumptions import require_equal
from pyflame_rt.dialects.graph import GraphOp
from pyflame_rt.dialects.graph_attrs import ReduceKind, ReduceKindAttr, enum_attr
from pyflame_rt.dialects.symbolic import numel, parse_dim
from pyflame_rt.dtype import DType
from pyflame_rt.errors import DTypeMismatchError, ShapeMismatchError


@irdl_op_definition
class NonMaxSuppressionOp(GraphOp):
    """onnxruntime's NonMaxSuppression: per batch and class, the boxes in order of falling score
    (equal scores: lower box index first) whose score exceeds `score_threshold` (all boxes without
    one), each kept unless its IoU with a box kept before it exceeds `iou_threshold`, at most
    `max_output` per class. The result is [count, 3] int64 (batch, class, box) rows in batch, class,
    selection order. `boxes` is [batch, boxes, 4]: corners (y1, x1, y2, x2) in either order, or
    with `center_point_box` (x, y, width, height); `scores` is [batch, classes, boxes]; the
    thresholds are one-element float32 tensors and `max_output` a one-element int64 tensor."""

    name = "graph.non_max_suppression"
    boxes = operand_def(TensorType)
    scores = operand_def(TensorType)
    max_output = operand_def(TensorType)
    iou_threshold = operand_def(TensorType)
    score_threshold = opt_operand_def(TensorType)
    center_point_box = prop_def(BoolAttr)
    count = prop_def(StringAttr)
    result = result_def(TensorType)
    assembly_format = ("$boxes `,` $scores `,` $max_output `,` $iou_threshold (`,` $score_threshold^)? attr-dict "
                       "`:` functional-type(operands, results)")

    def __init__(self, boxes, scores, max_output, iou_threshold, score_threshold, result_type, *,
                 center_point_box: bool, count: str):
        super().__init__(operands=[boxes, scores, max_output, iou_threshold, score_threshold],
                         result_types=[result_type],
                         properties={"center_point_box": BoolAttr.from_bool(center_point_box),
                                     "count": StringAttr(count)})

    def infer_shapes(self, shapes):
        boxes, scores = shapes[0], shapes[1]
        if len(boxes) != 3 or boxes[2] != 4 or len(scores) != 3:
            raise ShapeMismatchError(f"{self.name}: boxes must be [batch, boxes, 4] and scores [batch, classes, "
                                     f"boxes], got {list(map(str, boxes))} and {list(map(str, scores))}")
        require_equal(boxes[0], scores[0], f"{self.name}: boxes and scores differ in batch")
        require_equal(boxes[1], scores[2], f"{self.name}: boxes and scores differ in box count")
        for k, s in enumerate(shapes[2:]):
            if numel(s) != 1:
                raise ShapeMismatchError(f"{self.name}: operand #{k + 2} must have one element, got "
                                         f"{list(map(str, s))}")
        return [(parse_dim(self.count.data), 3)]

    def infer_dtypes(self, dtypes):
        expected = [DType.FLOAT32, DType.FLOAT32, DType.INT64] + [DType.FLOAT32] * (len(dtypes) - 3)
        for k, (d, e) in enumerate(zip(dtypes, expected)):
            if d is not e:
                raise DTypeMismatchError(f"{self.name}: operand #{k} must be {e.value}, got {d.value}")
        return [DType.INT64]


_ROI_DTYPES = (DType.FLOAT32, DType.FLOAT16, DType.BFLOAT16)  # the half types computed in float32


class RoiPoolOp(GraphOp):
    """Pools each region of interest of `input` [batch, channels, height, width] to an
    [output_height, output_width] grid: the result is [rois, channels, output_height,
    output_width]. Region corners are in input pixels times `spatial_scale`."""

    input = operand_def(TensorType)
    rois = operand_def(TensorType)
    output_height = prop_def(IntegerAttr)
    output_width = prop_def(IntegerAttr)
    spatial_scale = prop_def(FloatAttr)
    result = result_def(TensorType)

    @staticmethod
    def pool_props(output_height: int, output_width: int, spatial_scale: float) -> dict:
        if output_height < 1 or output_width < 1:
            raise ShapeMismatchError(f"the pooled size must be positive, got {output_height}x{output_width}")
        return {"output_height": IntegerAttr(output_height, i64), "output_width": IntegerAttr(output_width, i64),
                "spatial_scale": FloatAttr(spatial_scale, f64)}

    @property
    def pooled(self) -> tuple[int, int]:
        return self.output_height.value.data, self.output_width.value.data

    def roi_shapes(self, shapes, corners: int):
        x, rois = shapes[0], shapes[1]
        if len(x) != 4 or len(rois) != 2 or rois[1] != corners:
            raise ShapeMismatchError(f"{self.name}: the input must be [batch, channels, height, width] and the rois "
                                     f"[rois, {corners}], got {list(map(str, x))} and {list(map(str, rois))}")
        return [(rois[0], x[1], *self.pooled)]

    def infer_dtypes(self, dtypes):
        if dtypes[0] not in _ROI_DTYPES or dtypes[1] is not dtypes[0]:
            raise DTypeMismatchError(f"{self.name}: the input and rois must be float32, float16 or bfloat16 alike, "
                                     f"got {dtypes[0].value} and {dtypes[1].value}")
        return [dtypes[0]]


@irdl_op_definition
class RoiAlignOp(RoiPoolOp):
    """onnxruntime's RoiAlign: region r of image batch_indices[r] has corners rois[r] = (x1, y1, x2,
    y2), shifted by -0.5 with `half_pixel` (else at least one pixel wide and high); each output cell
    averages (`mode` mean) or takes the largest of (`mode` max: the largest weighted corner)
    sampling_ratio x sampling_ratio bilinear samples (0: ceil(cell size) per axis); samples more
    than a pixel outside the input are 0."""

    name = "graph.roi_align"
    input = operand_def(TensorType)  # restated: subclass operands come first in IRDL's order
    rois = operand_def(TensorType)
    batch_indices = operand_def(TensorType)
    mode = prop_def(ReduceKindAttr)
    sampling_ratio = prop_def(IntegerAttr)
    half_pixel = prop_def(BoolAttr)
    assembly_format = "$input `,` $rois `,` $batch_indices attr-dict `:` functional-type(operands, results)"

    def __init__(self, input, rois, batch_indices, result_type, *, mode: str, output_height: int, output_width: int,
                 sampling_ratio: int, spatial_scale: float, half_pixel: bool):
        if sampling_ratio < 0:
            raise ShapeMismatchError(f"sampling_ratio must be at least 0, got {sampling_ratio}")
        super().__init__(operands=[input, rois, batch_indices], result_types=[result_type], properties={
            **self.pool_props(output_height, output_width, spatial_scale), "mode": enum_attr(ReduceKindAttr, mode),
            "sampling_ratio": IntegerAttr(sampling_ratio, i64), "half_pixel": BoolAttr.from_bool(half_pixel)})

    def verify_(self) -> None:
        super().verify_()
        if self.mode.data not in (ReduceKind.MEAN, ReduceKind.MAX):
            raise VerifyException(f"{self.name}: mode must be mean or max, got {self.mode.data}")

    def infer_shapes(self, shapes):
        out = self.roi_shapes(shapes, 4)
        if len(shapes[2]) != 1:
            raise ShapeMismatchError(f"{self.name}: batch_indices must be [rois], got {list(map(str, shapes[2]))}")
        require_equal(shapes[2][0], shapes[1][0], f"{self.name}: batch_indices and rois differ in length")
        return out

    def infer_dtypes(self, dtypes):
        if dtypes[2] is not DType.INT64:
            raise DTypeMismatchError(f"{self.name}: batch_indices must be int64, got {dtypes[2].value}")
        return super().infer_dtypes(dtypes)


@irdl_op_definition
class MaxRoiPoolOp(RoiPoolOp):
    """onnxruntime's MaxRoiPool: rois[r] = (batch, x1, y1, x2, y2), corners rounded after scaling
    and inclusive; each output cell is the maximum of its share of the region (0 when empty)."""

    name = "graph.max_roi_pool"
    assembly_format = "$input `,` $rois attr-dict `:` functional-type(operands, results)"

    def __init__(self, input, rois, result_type, *, output_height: int, output_width: int, spatial_scale: float):
        super().__init__(operands=[input, rois], result_types=[result_type],
                         properties=self.pool_props(output_height, output_width, spatial_scale))

    def infer_shapes(self, shapes):
        return self.roi_shapes(shapes, 5)


DETECTION_OPS = [NonMaxSuppressionOp, RoiAlignOp, MaxRoiPoolOp]
