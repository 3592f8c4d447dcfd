"""Detection post-processing ops of the `graph` dialect: NonMaxSuppression.

Its result count depends on the values (a data-dependent size): `count` names a dim the run binds
once the selection has run, as graph.nonzero's does.
"""
from __future__ import annotations

from xdsl.dialects.builtin import BoolAttr, StringAttr, TensorType
from xdsl.irdl import irdl_op_definition, operand_def, opt_operand_def, prop_def, result_def

from pyflame_rt.dialects.assumptions import require_equal
from pyflame_rt.dialects.graph import GraphOp
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


DETECTION_OPS = [NonMaxSuppressionOp]
