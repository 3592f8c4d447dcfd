"""Tensor construction and indexing ops of the `graph` dialect: symbolic shape values,
Gather, ConstantOfShape, Expand, Range, Trilu, Einsum.

Shapes that depend on dynamic dims are properties holding dims as text ("batch",
"4*seq", "64"), parsed with `parse_dim`, so ops like Expand or Range keep exact
symbolic result shapes.
"""
from __future__ import annotations

from math import prod
from typing import Sequence

from xdsl.dialects.builtin import ArrayAttr, BoolAttr, FloatAttr, IntegerAttr, StringAttr, TensorType, f64, i64
from xdsl.ir import Attribute, SSAValue
from xdsl.irdl import irdl_op_definition, operand_def, opt_prop_def, prop_def, result_def, traits_def
from xdsl.traits import MemoryWriteEffect
from xdsl.utils.exceptions import VerifyException

from pyflame_rt.dialects.assumptions import broadcast_dim, expand_dim, require_equal
from pyflame_rt.dialects.graph import (
    AxisOp, GraphOp, UnaryOp, VariadicOp, axis_prop, broadcast_shapes, dtype_of, normalize_axis, same_dtype,
    static_shape, tensor_type)
from pyflame_rt.dialects.graph_attrs import ElementTypeAttr, enum_attr
from pyflame_rt.dialects.symbolic import Dim, SymDim, numel, parse_dim
from pyflame_rt.dtype import DType
from pyflame_rt.errors import DTypeMismatchError, ShapeMismatchError

INDEX_DTYPES = (DType.INT64, DType.INT32)


def dims_attr(dims: Sequence[Dim]) -> ArrayAttr:
    return ArrayAttr([StringAttr(str(d)) for d in dims])


def attr_dims(attr: ArrayAttr) -> tuple[Dim, ...]:
    return tuple(parse_dim(s.data) for s in attr.data)


def _dtype_prop(dtype: DType) -> StringAttr:
    return StringAttr(dtype.value)


@irdl_op_definition
class DimValuesOp(GraphOp):
    """An integer tensor whose elements are (symbolic) dims: a shape computation used as data."""

    name = "graph.dim_values"
    values = prop_def(ArrayAttr)
    result = result_def(TensorType)
    assembly_format = "attr-dict `:` type($result)"

    def __init__(self, values: Sequence[Dim], shape: Sequence[int], dtype: DType = DType.INT64):
        super().__init__(result_types=[tensor_type(tuple(shape), dtype)], properties={"values": dims_attr(values)})

    def infer_shapes(self, shapes):
        return [static_shape(self.result.type)]

    def infer_dtypes(self, dtypes):
        return [dtype_of(self.result.type)]

    def verify_(self) -> None:
        super().verify_()
        n = 1
        for d in static_shape(self.result.type):
            n *= d
        if n != len(self.values.data):
            raise VerifyException(f"graph.dim_values: {len(self.values.data)} values for {n} elements")
        if dtype_of(self.result.type) not in INDEX_DTYPES:
            raise VerifyException("graph.dim_values: result must be int64 or int32")


@irdl_op_definition
class BindDimsOp(UnaryOp):
    """Its input, whose elements (row-major) the run binds to the dims `dims` once it is computed:
    sizes of the ops after it may use them (a shape computed from tensor values). It has an effect
    (the binding), so it stays where it stands even when its result is unused. With `refusal`, the
    first dim is a validity flag: 1, or 0 where the values are invalid, which refuses the run with
    that reason (a shape assumption, checked before the dims it guards are used)."""

    name = "graph.bind_dims"
    dims = prop_def(ArrayAttr[StringAttr])
    refusal = opt_prop_def(StringAttr)
    traits = traits_def(MemoryWriteEffect())

    def __init__(self, input: SSAValue, dims: Sequence[str], refusal: str | None = None):
        super().__init__(input, input.type, dims=ArrayAttr([StringAttr(d) for d in dims]),
                         **({"refusal": StringAttr(refusal)} if refusal is not None else {}))

    def dim_names(self) -> list[str]:
        return [d.data for d in self.dims.data]

    def infer_shapes(self, shapes):
        if self.refusal is not None:
            require_equal(SymDim.of(self.dim_names()[0]), 1, self.refusal.data)
        return [shapes[0]]

    def verify_(self) -> None:
        if self.refusal is not None and not self.dims.data:
            raise VerifyException("graph.bind_dims with a refusal binds its validity flag first, but binds no dim")
        super().verify_()
        shape = static_shape(self.input.type)
        if dtype_of(self.input.type) not in INDEX_DTYPES or len(self.dims.data) != prod(shape):
            raise VerifyException(f"graph.bind_dims binds {len(self.dims.data)} dims from an int64 or int32 "
                                  f"tensor of as many elements, got {self.input.type}")


@irdl_op_definition
class NonZeroOp(UnaryOp):
    """The int64 coordinates of the non-zero elements of `input`, [rank, count] in row-major order;
    `count` is a dim the run binds once it has counted them (a data-dependent size)."""

    name = "graph.nonzero"
    count = prop_def(StringAttr)

    def __init__(self, input: SSAValue, result_type: TensorType, count: str):
        super().__init__(input, result_type, count=StringAttr(count))

    def infer_shapes(self, shapes):
        if not shapes[0]:
            raise ShapeMismatchError("NonZero of a scalar is not supported")
        return [(len(shapes[0]), parse_dim(self.count.data))]

    def infer_dtypes(self, dtypes):
        return [DType.INT64]


@irdl_op_definition
class UniqueOp(GraphOp):
    """The distinct slices of `input` along `axis` (its elements, flattened, without one): `result`
    holds them in ascending lexicographic order, or with `sorted` false in order of first
    occurrence; `indices` the first position of each, `inverse_indices` each position's slice in
    `result`, `counts` how often each occurs (int64). `count`, the number of distinct slices, is a
    dim the run binds once it has found them (a data-dependent size)."""

    name = "graph.unique"
    input = operand_def(TensorType)
    axis = opt_prop_def(IntegerAttr)
    sorted = prop_def(BoolAttr)
    count = prop_def(StringAttr)
    result = result_def(TensorType)
    indices = result_def(TensorType)
    inverse_indices = result_def(TensorType)
    counts = result_def(TensorType)
    assembly_format = "$input attr-dict `:` functional-type(operands, results)"

    def __init__(self, input: SSAValue, result_types, *, axis: int | None, sorted: bool, count: str):
        props = {"sorted": BoolAttr.from_bool(sorted), "count": StringAttr(count)}
        if axis is not None:
            props["axis"] = IntegerAttr(axis, i64)
        super().__init__(operands=[input], result_types=list(result_types), properties=props)

    def axis_in(self, rank: int) -> int | None:
        """The axis in [0, rank), None for the flattened input."""
        return None if self.axis is None else normalize_axis(self.axis.value.data, rank)

    def infer_shapes(self, shapes):
        x, count = shapes[0], parse_dim(self.count.data)
        axis = self.axis_in(len(x))
        if axis is None:
            return [(count,), (count,), (numel(x),), (count,)]
        return [(*x[:axis], count, *x[axis + 1:]), (count,), (x[axis],), (count,)]

    def infer_dtypes(self, dtypes):
        return [dtypes[0], DType.INT64, DType.INT64, DType.INT64]


class IndexOp(GraphOp):
    """Reads `data` at `indices` (int64 or int32; negative ones count from the end of their axis);
    the result has the data's element type. A scatter (graph_index.ScatterOp) also takes the
    `updates` it writes."""

    data = operand_def(TensorType)
    indices = operand_def(TensorType)
    result = result_def(TensorType)
    assembly_format = "operands attr-dict `:` functional-type(operands, results)"

    def __init__(self, *operands: SSAValue, result_type: TensorType, **properties: Attribute):
        super().__init__(operands=list(operands), result_types=[result_type], properties=properties)

    def infer_dtypes(self, dtypes):
        if dtypes[1] not in INDEX_DTYPES:
            raise DTypeMismatchError(f"indices must be int64 or int32, got {dtypes[1].value}")
        return [dtypes[0]]


class GatherAlongAxisOp(IndexOp, AxisOp):
    """A gather whose indices address one `axis` of the data (default 0)."""

    axis = axis_prop()

    def __init__(self, data, indices, result_type, axis: int = 0):
        super().__init__(data, indices, result_type=result_type, axis=IntegerAttr(axis, i64))


@irdl_op_definition
class GatherOp(GatherAlongAxisOp):
    """Take slices of `data` along `axis` at `indices`."""

    name = "graph.gather"

    def infer_shapes(self, shapes):
        data, idx = shapes
        axis = self.axis_in(len(data))
        return [tuple(data[:axis]) + tuple(idx) + tuple(data[axis + 1:])]


class GeneratorOp(GraphOp):
    """A tensor made from properties alone (no operands), of the element type `dtype` names."""

    dtype = prop_def(ElementTypeAttr)
    result = result_def(TensorType)
    assembly_format = "attr-dict `:` type($result)"

    def __init__(self, result_type: TensorType, dtype: str, **properties: Attribute):
        super().__init__(result_types=[result_type],
                         properties={**properties, "dtype": enum_attr(ElementTypeAttr, dtype)})

    def infer_dtypes(self, dtypes):
        return [DType(self.dtype.data)]


@irdl_op_definition
class ConstantOfShapeOp(GeneratorOp):
    """A tensor of `shape` (dims may be symbolic) filled with `value`."""

    name = "graph.constant_of_shape"
    shape = prop_def(ArrayAttr)
    value = prop_def(FloatAttr)

    def __init__(self, result_type, shape: Sequence[Dim] = (), value: float = 0.0, dtype: str = "float32"):
        super().__init__(result_type, dtype, shape=dims_attr(shape), value=FloatAttr(float(value), f64))

    def infer_shapes(self, shapes):
        return [attr_dims(self.shape)]


@irdl_op_definition
class ExpandOp(UnaryOp):
    """Broadcast `input` with `shape` (bidirectional, ONNX Expand; a dynamic element of `shape`
    against an input dim other than 1 is that dim, and must be 1 or equal: `expand_dim`)."""

    name = "graph.expand"
    shape = prop_def(ArrayAttr)

    def __init__(self, input, result_type, shape: Sequence[Dim] = ()):
        super().__init__(input, result_type, shape=dims_attr(shape))

    def infer_shapes(self, shapes):
        x, target = shapes[0], attr_dims(self.shape)
        what = f"Expand of {list(map(str, x))} to {list(map(str, target))}: the shapes do not broadcast"
        rank = max(len(x), len(target))
        x, target = (1,) * (rank - len(x)) + tuple(x), (1,) * (rank - len(target)) + target
        return [tuple(expand_dim(a, b, what) for a, b in zip(x, target))]


@irdl_op_definition
class RangeOp(GeneratorOp):
    """[start, start + delta, ...] with `size` elements (size may be a symbolic dim)."""

    name = "graph.range"
    start = prop_def(FloatAttr)
    delta = prop_def(FloatAttr)
    size = prop_def(StringAttr)

    def __init__(self, result_type, start: float = 0, delta: float = 1, size: Dim = 0, dtype: str = "int64"):
        super().__init__(result_type, dtype, start=FloatAttr(float(start), f64), delta=FloatAttr(float(delta), f64),
                         size=StringAttr(str(size)))

    def infer_shapes(self, shapes):
        return [(parse_dim(self.size.data),)]


@irdl_op_definition
class TriluOp(UnaryOp):
    """Keep the upper (or lower) triangle of the last two dims from diagonal `k`, zero the rest."""

    name = "graph.trilu"
    k = prop_def(IntegerAttr, default_value=IntegerAttr(0, i64))
    upper = prop_def(BoolAttr, default_value=BoolAttr.from_bool(True))

    def __init__(self, input, result_type, k: int = 0, upper: bool = True):
        super().__init__(input, result_type, k=IntegerAttr(k, i64), upper=BoolAttr.from_bool(upper))

    def infer_shapes(self, shapes):
        if len(shapes[0]) < 2:
            raise ShapeMismatchError(f"Trilu needs rank >= 2, got {len(shapes[0])}")
        return [shapes[0]]


def parse_einsum(equation: str, ranks: Sequence[int]) -> tuple[list[str], str]:
    """Operand subscripts and output subscripts; '...' expands to fresh capital letters,
    an implicit output is the once-used letters in alphabetical order."""
    eq = equation.replace(" ", "")
    lhs, _, rhs = eq.partition("->")
    terms = lhs.split(",")
    if len(terms) != len(ranks):
        raise ShapeMismatchError(f"einsum '{equation}' has {len(terms)} operands, got {len(ranks)}")
    ell_rank = max((r - (len(t) - 3) for t, r in zip(terms, ranks) if "..." in t), default=0)
    ell = "".join(chr(ord("A") + i) for i in range(ell_rank))
    out_terms = []
    for t, r in zip(terms, ranks):
        if "..." in t:
            t = t.replace("...", ell[ell_rank - (r - (len(t) - 3)):])
        if len(t) != r or (t and not t.isalpha()):
            raise ShapeMismatchError(f"einsum term '{t}' does not match an operand of rank {r}")
        out_terms.append(t)
    if "->" in eq:
        out = rhs.replace("...", ell)
    else:
        letters = "".join(out_terms)
        out = ell + "".join(sorted(c for c in set(letters) if letters.count(c) == 1 and c.islower()))
    return out_terms, out


@irdl_op_definition
class EinsumOp(VariadicOp):
    """Einstein summation over 1 or 2 operands (ONNX Einsum)."""

    name = "graph.einsum"
    equation = prop_def(StringAttr)

    def __init__(self, *inputs: SSAValue, result_type: TensorType, equation: str):
        super().__init__(*inputs, result_type=result_type, equation=StringAttr(equation))

    def infer_shapes(self, shapes):
        terms, out = parse_einsum(self.equation.data, [len(s) for s in shapes])
        size: dict[str, Dim] = {}
        for t, s in zip(terms, shapes):
            for c, d in zip(t, s):
                size[c] = broadcast_dim(size[c], d, f"einsum letter '{c}' has two sizes") if c in size else d
        if any(c not in size for c in out):
            raise ShapeMismatchError(f"einsum output '{out}' uses a letter no operand has")
        return [tuple(size[c] for c in out)]

    def infer_dtypes(self, dtypes):
        return [same_dtype(dtypes, self.name)]


@irdl_op_definition
class BitCastOp(UnaryOp):
    """The input's bytes read as element type `to` of the same width (ONNX BitCast): a view."""

    name = "graph.bitcast"
    to = prop_def(ElementTypeAttr)
    assembly_format = "$input `to` $to attr-dict `:` functional-type(operands, results)"

    def __init__(self, input, result_type=None, to: str = "float32"):
        super().__init__(input, result_type, to=enum_attr(ElementTypeAttr, to))

    def infer_dtypes(self, dtypes):
        to = DType(self.to.data)
        if to.itemsize != dtypes[0].itemsize:
            raise DTypeMismatchError(f"BitCast from {dtypes[0].value} to {to.value}: the widths differ")
        return [to]


TENSOR_OPS = [DimValuesOp, BindDimsOp, NonZeroOp, UniqueOp, GatherOp, ConstantOfShapeOp, ExpandOp, RangeOp, TriluOp,
              EinsumOp, BitCastOp]
