"""Element-wise indexing ops of the `graph` dialect: GatherElements / ScatterElements (one index
per element along an axis) and GatherND / ScatterND (index tuples addressing slices).

Indices are int64 or int32; negative ones count from the end of their axis. An index outside
its axis is an input error at run time (the kernels never touch memory for it). Scatters copy
`data` and then write `updates` in index order, combined by `reduction`.
"""
from __future__ import annotations

from xdsl.dialects.builtin import IntegerAttr, TensorType, i64
from xdsl.irdl import irdl_op_definition, operand_def, prop_def, result_def

from pyflame_rt.dialects.assumptions import require_equal, require_same_shape
from pyflame_rt.dialects.graph import GraphOp
from pyflame_rt.dialects.graph_attrs import ScatterReduction, ScatterReductionAttr, enum_attr
from pyflame_rt.dialects.graph_reduce import normalize_axis
from pyflame_rt.dialects.graph_tensor import INDEX_DTYPES
from pyflame_rt.dialects.symbolic import Shape
from pyflame_rt.errors import DTypeMismatchError, ShapeMismatchError

def _index_dtype(dtypes) -> None:
    if dtypes[1] not in INDEX_DTYPES:
        raise DTypeMismatchError(f"indices must be int64 or int32, got {dtypes[1].value}")


def _updates_dtype(dtypes) -> None:
    _index_dtype(dtypes)
    if dtypes[2] is not dtypes[0]:
        raise DTypeMismatchError(f"updates ({dtypes[2].value}) must have the data's type ({dtypes[0].value})")


def reduction_prop():
    return prop_def(ScatterReductionAttr, default_value=ScatterReductionAttr(ScatterReduction.NONE))


def elements_layout(data: Shape, indices: Shape, axis: int) -> int:
    """Check GatherElements / ScatterElements shapes (same rank; the indices' other dims equal the
    data's: PyFlameRT does not take the ONNX-permitted smaller sub-box) and return the axis."""
    if len(indices) != len(data):
        raise ShapeMismatchError(f"indices rank {len(indices)} differs from data rank {len(data)}")
    axis = normalize_axis(axis, len(data))
    for k, (a, b) in enumerate(zip(data, indices)):
        if k != axis:
            require_equal(b, a, f"indices differ from data in dim {k} (outside axis {axis})")
    return axis


def nd_layout(data: Shape, indices: Shape, batch_dims: int) -> int:
    """Check GatherND / ScatterND shapes and return k, the length of an index tuple."""
    if not indices or not isinstance(indices[-1], int):
        raise ShapeMismatchError("the indices' last dim (the index tuple length) must be static")
    k = indices[-1]
    if not 0 <= batch_dims < min(len(data), len(indices)):
        raise ShapeMismatchError(f"batch_dims {batch_dims} out of range")
    if not 1 <= k <= len(data) - batch_dims:
        raise ShapeMismatchError(f"index tuples of length {k} for data rank {len(data)} with batch_dims {batch_dims}")
    require_same_shape(indices[:batch_dims], data[:batch_dims], "the batch dims of indices and data differ")
    return k


@irdl_op_definition
class GatherElementsOp(GraphOp):
    """out[..., j, ...] = data[..., indices[..., j, ...], ...] along `axis`; out has the indices' shape."""

    name = "graph.gather_elements"
    data = operand_def(TensorType)
    indices = operand_def(TensorType)
    axis = prop_def(IntegerAttr, default_value=IntegerAttr(0, i64))
    result = result_def(TensorType)
    assembly_format = "$data `,` $indices attr-dict `:` functional-type(operands, results)"

    def __init__(self, data, indices, result_type, axis: int = 0):
        super().__init__(operands=[data, indices], result_types=[result_type],
                         properties={"axis": IntegerAttr(axis, i64)})

    def infer_shapes(self, shapes):
        elements_layout(shapes[0], shapes[1], self.axis.value.data)
        return [tuple(shapes[1])]

    def infer_dtypes(self, dtypes):
        _index_dtype(dtypes)
        return [dtypes[0]]


@irdl_op_definition
class ScatterElementsOp(GraphOp):
    """A copy of data with out[..., indices[..., j, ...], ...] = reduction(out[...], updates[..., j, ...])."""

    name = "graph.scatter_elements"
    data = operand_def(TensorType)
    indices = operand_def(TensorType)
    updates = operand_def(TensorType)
    axis = prop_def(IntegerAttr, default_value=IntegerAttr(0, i64))
    reduction = reduction_prop()
    result = result_def(TensorType)
    assembly_format = "$data `,` $indices `,` $updates attr-dict `:` functional-type(operands, results)"

    def __init__(self, data, indices, updates, result_type, axis: int = 0, reduction: str = "none"):
        super().__init__(operands=[data, indices, updates], result_types=[result_type],
                         properties={"axis": IntegerAttr(axis, i64),
                                     "reduction": enum_attr(ScatterReductionAttr, reduction)})

    def infer_shapes(self, shapes):
        data, indices, updates = shapes
        elements_layout(data, indices, self.axis.value.data)
        require_same_shape(updates, indices, "updates differ from the indices' shape")
        return [tuple(data)]

    def infer_dtypes(self, dtypes):
        _updates_dtype(dtypes)
        return [dtypes[0]]


@irdl_op_definition
class GatherNDOp(GraphOp):
    """out[b..., q...] = data[b..., indices[b..., q..., :], ...]: each index tuple picks a slice."""

    name = "graph.gather_nd"
    data = operand_def(TensorType)
    indices = operand_def(TensorType)
    batch_dims = prop_def(IntegerAttr, default_value=IntegerAttr(0, i64))
    result = result_def(TensorType)
    assembly_format = "$data `,` $indices attr-dict `:` functional-type(operands, results)"

    def __init__(self, data, indices, result_type, batch_dims: int = 0):
        super().__init__(operands=[data, indices], result_types=[result_type],
                         properties={"batch_dims": IntegerAttr(batch_dims, i64)})

    def infer_shapes(self, shapes):
        data, indices = shapes
        b = self.batch_dims.value.data
        k = nd_layout(data, indices, b)
        return [tuple(indices[:-1]) + tuple(data[b + k:])]

    def infer_dtypes(self, dtypes):
        _index_dtype(dtypes)
        return [dtypes[0]]


@irdl_op_definition
class ScatterNDOp(GraphOp):
    """A copy of data with the slice at each index tuple combined with its updates slice."""

    name = "graph.scatter_nd"
    data = operand_def(TensorType)
    indices = operand_def(TensorType)
    updates = operand_def(TensorType)
    reduction = reduction_prop()
    result = result_def(TensorType)
    assembly_format = "$data `,` $indices `,` $updates attr-dict `:` functional-type(operands, results)"

    def __init__(self, data, indices, updates, result_type, reduction: str = "none"):
        super().__init__(operands=[data, indices, updates], result_types=[result_type],
                         properties={"reduction": enum_attr(ScatterReductionAttr, reduction)})

    def infer_shapes(self, shapes):
        data, indices, updates = shapes
        k = nd_layout(data, indices, 0)
        require_same_shape(updates, tuple(indices[:-1]) + tuple(data[k:]),
                           f"updates differ from shape indices[:-1] + data[{k}:]")
        return [tuple(data)]

    def infer_dtypes(self, dtypes):
        _updates_dtype(dtypes)
        return [dtypes[0]]


INDEX_OPS = [GatherElementsOp, ScatterElementsOp, GatherNDOp, ScatterNDOp]
