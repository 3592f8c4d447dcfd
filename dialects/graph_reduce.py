"""Reductions and row-normalizing ops of the `graph` dialect: ReduceX, ArgMax/ArgMin,
Softmax / LogSoftmax (both axis semantics), LayerNormalization."""
from __future__ import annotations

from typing import Sequence

from xdsl.dialects.builtin import BoolAttr, DenseArrayBase, FloatAttr, IntegerAttr, StringAttr, TensorType, f32, i64
from xdsl.ir import SSAValue
from xdsl.irdl import (
    AttrSizedResultSegments,
    ParsePropInAttrDict,
    irdl_op_definition,
    operand_def,
    opt_operand_def,
    opt_result_def,
    prop_def,
    result_def,
)
from xdsl.utils.exceptions import VerifyException

from pyflame_rt.dialects.assumptions import require_at_most, require_equal
from pyflame_rt.dialects.graph import AxisOp, UnaryOp, axis_prop, normalize_axis
from pyflame_rt.dialects.graph_attrs import ArgReduceKindAttr, ReduceKind, ReduceKindAttr, enum_attr
from pyflame_rt.dialects.graph_math import FLOAT_DTYPES
from pyflame_rt.dialects.graph_nn import NormalizationOp
from pyflame_rt.dialects.symbolic import Dim, Shape, parse_dim
from pyflame_rt.dtype import DType
from pyflame_rt.errors import DTypeMismatchError, ShapeMismatchError


def reduced_shape(shape: Shape, axes: Sequence[int], keepdims: bool) -> Shape:
    if keepdims:
        return tuple(1 if i in axes else d for i, d in enumerate(shape))
    return tuple(d for i, d in enumerate(shape) if i not in axes)


def _float_only(dtypes, what):
    if dtypes[0] not in FLOAT_DTYPES:
        raise DTypeMismatchError(f"{what} needs a float tensor, got {dtypes[0].value}")


@irdl_op_definition
class ReduceOp(UnaryOp):
    """Reduce over `axes` (empty = all axes)."""

    name = "graph.reduce"
    kind = prop_def(ReduceKindAttr)
    axes = prop_def(DenseArrayBase)
    keepdims = prop_def(BoolAttr, default_value=BoolAttr.from_bool(True))

    def __init__(self, input: SSAValue, result_type: TensorType, kind: str, axes: Sequence[int] = (),
                 keepdims: bool = True):
        super().__init__(input, result_type, kind=enum_attr(ReduceKindAttr, kind),
                         axes=DenseArrayBase.from_list(i64, list(axes)), keepdims=BoolAttr.from_bool(keepdims))

    def axes_for(self, rank: int) -> tuple[int, ...]:
        axes = list(self.axes.get_values()) or list(range(rank))
        norm = sorted({normalize_axis(a, rank, "reduce axis") for a in axes})
        if len(norm) != len(axes):
            raise ShapeMismatchError(f"reduce axes {axes} repeat an axis")
        return tuple(norm)

    def infer_shapes(self, shapes):
        return [reduced_shape(shapes[0], self.axes_for(len(shapes[0])), self.keepdims.value.data)]

    def infer_dtypes(self, dtypes):
        if self.kind.data not in (ReduceKind.SUM, ReduceKind.MAX, ReduceKind.MIN, ReduceKind.PROD):
            _float_only(dtypes, f"reduce {self.kind.data}")
        elif dtypes[0] is DType.BOOL:
            raise DTypeMismatchError("reductions of bool tensors are not defined")
        return [dtypes[0]]


@irdl_op_definition
class ArgReduceOp(UnaryOp, AxisOp):
    """Index (int64) of the max / min along `axis` (ArgMax / ArgMin)."""

    name = "graph.arg_reduce"
    kind = prop_def(ArgReduceKindAttr)
    axis = axis_prop()
    keepdims = prop_def(BoolAttr, default_value=BoolAttr.from_bool(True))
    select_last_index = prop_def(BoolAttr, default_value=BoolAttr.from_bool(False))

    def __init__(self, input, result_type, kind: str = "argmax", axis: int = 0, keepdims: bool = True,
                 select_last_index: bool = False):
        super().__init__(input, result_type, kind=enum_attr(ArgReduceKindAttr, kind), axis=IntegerAttr(axis, i64),
                         keepdims=BoolAttr.from_bool(keepdims), select_last_index=BoolAttr.from_bool(select_last_index))

    def infer_shapes(self, shapes):
        return [reduced_shape(shapes[0], (self.axis_in(len(shapes[0])),), self.keepdims.value.data)]

    def infer_dtypes(self, dtypes):
        return [DType.INT64]


class _SoftmaxBase(UnaryOp, AxisOp):
    """Before opset 13 the input is coerced to 2-D at `axis` (legacy); since, one axis."""

    axis = axis_prop(-1)
    legacy = prop_def(BoolAttr, default_value=BoolAttr.from_bool(False))

    def __init__(self, input, result_type, axis: int = -1, legacy: bool = False):
        super().__init__(input, result_type, axis=IntegerAttr(axis, i64), legacy=BoolAttr.from_bool(legacy))

    def infer_shapes(self, shapes):
        rank = len(shapes[0])
        if self.legacy.value.data:
            if not -rank <= self.axis.value.data <= rank:
                raise ShapeMismatchError(f"axis {self.axis.value.data} is out of range for rank {rank}")
        else:
            self.axis_in(rank)
        return [shapes[0]]

    def infer_dtypes(self, dtypes):
        _float_only(dtypes, self.name)
        return [dtypes[0]]


@irdl_op_definition
class SoftmaxOp(_SoftmaxBase):
    name = "graph.softmax"


@irdl_op_definition
class LogSoftmaxOp(_SoftmaxBase):
    name = "graph.log_softmax"


@irdl_op_definition
class LayerNormOp(NormalizationOp, AxisOp):
    """(x - mean) / sqrt(var + epsilon) * scale + bias over the dims from `axis` on; optionally
    also the per-row mean and 1 / sqrt(var + epsilon) (shape of x with the normalized dims 1),
    both or neither, their types after `stats`:

        %y, %m, %r = graph.layer_norm %x, %s, %b {axis = 1 : i64} : (tensor<2x4xf32>, tensor<4xf32>,
            tensor<4xf32>) -> tensor<2x4xf32> stats tensor<2x1xf32>, tensor<2x1xf32>
    """

    name = "graph.layer_norm"
    input = operand_def(TensorType)
    scale = operand_def(TensorType)
    bias = opt_operand_def(TensorType)
    axis = axis_prop(-1)
    result = result_def(TensorType)
    mean = opt_result_def(TensorType)
    inv_std_dev = opt_result_def(TensorType)
    irdl_options = (ParsePropInAttrDict(), AttrSizedResultSegments(as_property=True))
    assembly_format = ("$input `,` $scale (`,` $bias^)? attr-dict `:` `(` type($input) `,` type($scale) "
                       "(`,` type($bias)^)? `)` `->` type($result) (`stats` type($mean)^ `,` type($inv_std_dev))?")

    def __init__(self, input, scale, bias, result_type=None, axis: int = -1, epsilon: float = 1e-5,
                 result_types=None, stats: bool = False):
        types = list(result_types) if result_types is not None else [result_type]
        stat_types = ([types[1]], [types[2]]) if stats else ([], [])
        super().__init__(operands=[input, scale, [bias] if bias is not None else []],
                         result_types=[types[0], *stat_types],
                         properties={"axis": IntegerAttr(axis, i64), "epsilon": FloatAttr(epsilon, f32)})

    def verify_(self) -> None:
        if (self.mean is None) != (self.inv_std_dev is None):
            raise VerifyException(f"{self.name}: the statistics are both present or both absent")
        super().verify_()

    def infer_shapes(self, shapes):
        x = shapes[0]
        axis = self.axis_in(len(x))
        norm = x[axis:]
        for s in shapes[1:]:  # scale and bias broadcast to the normalized dims
            if len(s) > len(norm):
                raise ShapeMismatchError(f"scale/bias {list(map(str, s))} do not match normalized dims "
                                         f"{list(map(str, norm))}")
            for d, n in zip(s[::-1], norm[::-1]):
                if d != 1:
                    require_equal(d, n, "LayerNormalization scale/bias differ from the normalized dims")
        stats = tuple(x[:axis]) + (1,) * (len(x) - axis)
        return [x] + [stats] * (len(self.results) - 1)


@irdl_op_definition
class TopKOp(AxisOp):
    """The k largest (or smallest) elements along `axis`, sorted, and their int64 indices;
    equal values keep the lower index first. k is a dim (bound at run time when k is fed)."""

    name = "graph.topk"
    input = operand_def(TensorType)
    k = prop_def(StringAttr)
    axis = axis_prop(-1)
    largest = prop_def(BoolAttr, default_value=BoolAttr.from_bool(True))
    values = result_def(TensorType)
    indices = result_def(TensorType)
    assembly_format = "$input attr-dict `:` functional-type(operands, results)"

    def __init__(self, input, result_types, k: Dim = 1, axis: int = -1, largest: bool = True):
        super().__init__(operands=[input], result_types=list(result_types), properties={
            "k": StringAttr(str(k)), "axis": IntegerAttr(axis, i64), "largest": BoolAttr.from_bool(largest)})

    def infer_shapes(self, shapes):
        x = shapes[0]
        axis = self.axis_in(len(x))
        k = self.k_dim()
        if isinstance(k, int) and k < 0:
            raise ShapeMismatchError(f"TopK k={k} is negative")
        require_at_most(k, x[axis], "TopK k is larger than the axis")
        out = tuple(x[:axis]) + (k,) + tuple(x[axis + 1:])
        return [out, out]

    def k_dim(self) -> Dim:
        return parse_dim(self.k.data)

    def infer_dtypes(self, dtypes):
        if dtypes[0] is DType.BOOL:
            raise DTypeMismatchError("TopK of bool tensors is not defined")
        return [dtypes[0], DType.INT64]


class CumulativeOp(UnaryOp, AxisOp):
    """A running total along `axis` (exclusive: without the element itself; reverse: from the end)."""

    axis = axis_prop()
    exclusive = prop_def(BoolAttr, default_value=BoolAttr.from_bool(False))
    reverse = prop_def(BoolAttr, default_value=BoolAttr.from_bool(False))

    def __init__(self, input, result_type, axis: int = 0, exclusive: bool = False, reverse: bool = False):
        super().__init__(input, result_type, axis=IntegerAttr(axis, i64), exclusive=BoolAttr.from_bool(exclusive),
                         reverse=BoolAttr.from_bool(reverse))

    def infer_shapes(self, shapes):
        self.axis_in(len(shapes[0]))
        return [shapes[0]]

    def infer_dtypes(self, dtypes):
        if dtypes[0] is DType.BOOL:
            raise DTypeMismatchError(f"{self.name} of bool tensors is not defined")
        return [dtypes[0]]


@irdl_op_definition
class CumSumOp(CumulativeOp):
    """Running sum."""

    name = "graph.cumsum"


@irdl_op_definition
class CumProdOp(CumulativeOp):
    """Running product."""

    name = "graph.cumprod"


REDUCE_OPS = [ReduceOp, ArgReduceOp, SoftmaxOp, LogSoftmaxOp, LayerNormOp, TopKOp, CumSumOp, CumProdOp]
