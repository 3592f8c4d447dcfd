"""`graph` ops that pair max pooling with where its maxima came from: MaxPool with its Indices
output, and the inverse, MaxUnpool.

An index is a flat int64 offset into the whole input tensor (N * C * spatial, as ONNX
defines it): row-major, or with the spatial dims column-major (`storage_order`, ONNX's 0 or 1
as `STORAGE_ORDERS` names them).
MaxUnpool's output shape is fixed at import (`spatial_shape`); a `shape` operand, when
present, is the model's run-time output_shape input, which must agree with it.
"""
from __future__ import annotations

from xdsl.dialects.builtin import TensorType
from xdsl.irdl import irdl_op_definition, operand_def, opt_operand_def, prop_def, result_def

from pyflame_rt.dialects.assumptions import require_same_shape
from pyflame_rt.dialects.graph import GraphOp
from pyflame_rt.dialects.graph_attrs import StorageOrder, StorageOrderAttr, enum_attr
from pyflame_rt.dialects.graph_nn import WindowOp, _ints, _vals, ints_prop
from pyflame_rt.dialects.graph_tensor import INDEX_DTYPES
from pyflame_rt.dtype import DType
from pyflame_rt.errors import DTypeMismatchError, ShapeMismatchError

STORAGE_ORDERS = {0: StorageOrder.ROW_MAJOR, 1: StorageOrder.COLUMN_MAJOR}  # ONNX's storage_order values


@irdl_op_definition
class MaxPoolWithIndicesOp(WindowOp):
    """graph.max_pool plus `indices`: the flat input offset of each window's first maximum
    (padding excluded). NCHW only."""

    name = "graph.max_pool_with_indices"
    storage_order = prop_def(StorageOrderAttr, default_value=StorageOrderAttr(StorageOrder.ROW_MAJOR))
    result = result_def(TensorType)  # restated: subclass results come first in IRDL's order
    indices = result_def(TensorType)

    def __init__(self, input, result_types, *, storage_order: str = "row_major", **window):
        GraphOp.__init__(self, operands=[input], result_types=result_types, properties=self.window_props(
            storage_order=enum_attr(StorageOrderAttr, storage_order), **window))

    @property
    def column_major(self) -> bool:
        return self.storage_order.data == StorageOrder.COLUMN_MAJOR

    def infer_shapes(self, shapes):
        if self.data_layout != "NCHW":
            raise ShapeMismatchError(f"{self.name} is NCHW only, got layout {self.data_layout}")
        out = super().infer_shapes(shapes)[0]
        return [out, out]

    def infer_dtypes(self, dtypes):
        return [dtypes[0], DType.INT64]


@irdl_op_definition
class MaxUnpoolOp(GraphOp):
    """Zeros of shape [N, C, *spatial_shape] with input[i] written at flat offset indices[i] of the
    [N, C, *index_shape] box at its origin (index_shape is the pooling geometry's unpooled size);
    a later duplicate index overwrites an earlier one. This is ONNX's reference and test-data
    reading of output_shape; onnxruntime instead indexes the whole output_shape tensor."""

    name = "graph.max_unpool"
    input = operand_def(TensorType)
    indices = operand_def(TensorType)
    shape = opt_operand_def(TensorType)
    index_shape = ints_prop()
    spatial_shape = ints_prop()
    result = result_def(TensorType)
    assembly_format = "$input `,` $indices (`,` $shape^)? attr-dict `:` functional-type(operands, results)"

    def __init__(self, input, indices, shape, result_type, *, index_shape, spatial_shape):
        super().__init__(operands=[input, indices, shape], result_types=[result_type],
                         properties={"index_shape": _ints(index_shape), "spatial_shape": _ints(spatial_shape)})

    @property
    def spatial(self) -> list[int]:
        return [int(v) for v in _vals(self.spatial_shape)]

    @property
    def index_box(self) -> list[int]:
        return [int(v) for v in _vals(self.index_shape)]

    def infer_shapes(self, shapes):
        x, idx = shapes[0], shapes[1]
        sp, box = self.spatial, self.index_box
        if len(x) < 3 or len(sp) != len(x) - 2 or len(box) != len(sp) or min(box, default=1) < 1:
            raise ShapeMismatchError(f"{self.name}: input rank {len(x)} needs {len(x) - 2} positive spatial dims, "
                                     f"got index_shape {box}")
        if any(s < b for s, b in zip(sp, box)):
            raise ShapeMismatchError(f"{self.name}: spatial_shape {sp} is smaller than index_shape {box}")
        require_same_shape(idx, x, f"{self.name}: indices differ from the input's shape")
        if len(shapes) > 2 and tuple(shapes[2]) != (len(x),):
            raise ShapeMismatchError(f"{self.name}: the output shape operand must be [{len(x)}], "
                                     f"got {list(map(str, shapes[2]))}")
        return [(x[0], x[1], *sp)]

    def infer_dtypes(self, dtypes):
        if dtypes[1] not in INDEX_DTYPES:
            raise DTypeMismatchError(f"{self.name}: indices must be int64 or int32, got {dtypes[1].value}")
        if len(dtypes) > 2 and dtypes[2] is not DType.INT64:
            raise DTypeMismatchError(f"{self.name}: the output shape operand must be int64, got {dtypes[2].value}")
        return [dtypes[0]]


POOL_INDEX_OPS = [MaxPoolWithIndicesOp, MaxUnpoolOp]
