"""Element-wise indexing ops of the `graph` dialect: GatherElements / ScatterElements (one index
per element along an axis) and GatherND / ScatterND (index tuples addressing slices).

Indices are int64 or int32; negative ones count from the end of their axis. An index outside
its axis is an input error at run time (the kernels never touch memory for it). Scatters copy
`data` and then write `updates` in index order, combined by `reduction`.
"""
from __future__ import annotations

from xdsl.dialects.builtin import IntegerAttr, TensorType, i64
from xdsl.ir import Attribute
from xdsl.irdl import irdl_op_definition, operand_def, prop_def

from pyflame_rt.dialects.assumptions import require_equal, require_same_shape
from pyflame_rt.dialects.graph import AxisOp, axis_prop, normalize_axis
from pyflame_rt.dialects.graph_attrs import ScatterReduction, ScatterReductionAttr, enum_attr
from pyflame_rt.dialects.graph_tensor import GatherAlongAxisOp, IndexOp
from pyflame_rt.dialects.symbolic import Shape
from pyflame_rt.errors import DTypeMismatchError, ShapeMismatchError


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


class ScatterOp(IndexOp):
    """A copy of `data` with `updates` (of the data's type) written at `indices`, in index order,
    each combined with the value it replaces by `reduction`."""

    data = operand_def(TensorType)  # restated: subclass operands come first in IRDL's order
    indices = operand_def(TensorType)
    updates = operand_def(TensorType)
    reduction = prop_def(ScatterReductionAttr, default_value=ScatterReductionAttr(ScatterReduction.NONE))

    def __init__(self, data, indices, updates, result_type, reduction: str = "none", **properties: Attribute):
        super().__init__(data, indices, updates, result_type=result_type, **properties,
                         reduction=enum_attr(ScatterReductionAttr, reduction))

    def infer_dtypes(self, dtypes):
        result = super().infer_dtypes(dtypes)
        if dtypes[2] is not dtypes[0]:
            raise DTypeMismatchError(f"updates ({dtypes[2].value}) must have the data's type ({dtypes[0].value})")
        return result


@irdl_op_definition
class GatherElementsOp(GatherAlongAxisOp):
    """out[..., j, ...] = data[..., indices[..., j, ...], ...] along `axis`; out has the indices' shape."""

    name = "graph.gather_elements"

    def infer_shapes(self, shapes):
        elements_layout(shapes[0], shapes[1], self.axis.value.data)
        return [tuple(shapes[1])]


@irdl_op_definition
class ScatterElementsOp(ScatterOp, AxisOp):
    """out[..., indices[..., j, ...], ...] = reduction(out[...], updates[..., j, ...]) along `axis`."""

    name = "graph.scatter_elements"
    axis = axis_prop()

    def __init__(self, data, indices, updates, result_type, axis: int = 0, reduction: str = "none"):
        super().__init__(data, indices, updates, result_type, reduction, axis=IntegerAttr(axis, i64))

    def infer_shapes(self, shapes):
        data, indices, updates = shapes
        elements_layout(data, indices, self.axis.value.data)
        require_same_shape(updates, indices, "updates differ from the indices' shape")
        return [tuple(data)]


@irdl_op_definition
class GatherNDOp(IndexOp):
    """out[b..., q...] = data[b..., indices[b..., q..., :], ...]: each index tuple picks a slice."""

    name = "graph.gather_nd"
    batch_dims = prop_def(IntegerAttr, default_value=IntegerAttr(0, i64))

    def __init__(self, data, indices, result_type, batch_dims: int = 0):
        super().__init__(data, indices, result_type=result_type, batch_dims=IntegerAttr(batch_dims, i64))

    def infer_shapes(self, shapes):
        data, indices = shapes
        b = self.batch_dims.value.data
        k = nd_layout(data, indices, b)
        return [tuple(indices[:-1]) + tuple(data[b + k:])]


@irdl_op_definition
class ScatterNDOp(ScatterOp):
    """The slice at each index tuple combined with its updates slice."""

    name = "graph.scatter_nd"

    def infer_shapes(self, shapes):
        data, indices, updates = shapes
        k = nd_layout(data, indices, 0)
        require_same_shape(updates, tuple(indices[:-1]) + tuple(data[k:]),
                           f"updates differ from shape indices[:-1] + data[{k}:]")
        return [tuple(data)]


INDEX_OPS = [GatherElementsOp, ScatterElementsOp, GatherNDOp, ScatterNDOp]
