"""The `quant` dialect: uniformly quantized tensors and the ops that read and produce them.

A quantized tensor is held as its integer storage (an ordinary `tensor<...xi8>` / `tensor<...xui8>`
value); what the integers mean is its quantized type, `!quant.uniform<...>`, which the ops that read
or write it name as properties: real = scale * (q - zero_point), per tensor or per slice along one
axis (MLIR's syntax):

    !quant.uniform<i8, 0.05:3>                      per tensor
    !quant.uniform<i8:0, {0.05:0, 0.025:0}>         per axis 0 (one scale:zero_point per slice)

Ops:
- `quant.quantize` / `quant.dequantize` / `quant.requantize` convert between float32 and storage and
  between quantized types;
- the quantized compute ops (`quant.matmul`, `gemm`, `conv`, `add`, `mul`, `concat`, `avg_pool`,
  `global_avg_pool`) are each defined by a float `graph` op (`float_op`): the op computes that op
  over its dequantized operands and quantizes the result to its `type`. `input_types` names the
  quantized type of each operand in order; a bias (gemm, conv) is int32 with scale
  input scale x weight scale and zero point 0 (ONNX's convention), and has no entry there.
- `quant.matmul_integer` / `quant.conv_integer` (ONNX MatMulInteger / ConvInteger) compute exact
  int32 results from storage and zero points that may be run-time values;
  `quant.matmul_integer_to_float` is a MatMulInteger dequantized (times the scales, plus a bias);
  `quant.dynamic_quantize` (ONNX DynamicQuantizeLinear) picks a uint8 type from the data at run time.
"""
from __future__ import annotations

import math
from typing import Callable, ClassVar, Sequence

import numpy as np

from xdsl.dialects.builtin import ArrayAttr, BoolAttr, FloatAttr, IntAttr, IntegerAttr, TensorType, f64, i64
from xdsl.dialects.utils import EnumAttribute
from xdsl.ir import Attribute, Dialect, ParametrizedAttribute, SpacedOpaqueSyntaxAttribute, SSAValue, TypeAttribute
from xdsl.irdl import (
    ParsePropInAttrDict, irdl_attr_definition, irdl_op_definition, operand_def,
    opt_operand_def, param_def, prop_def, result_def, var_operand_def)
from xdsl.parser import AttrParser
from xdsl.printer import Printer
from xdsl.utils.exceptions import VerifyException
from xdsl.utils.str_enum import StrEnum

from pyflame_rt.dialects import graph, graph_nn as nn
from pyflame_rt.dialects.graph import GraphOp, UnaryOp
from pyflame_rt.dialects.graph_attrs import LayoutAttr, enum_attr
from pyflame_rt.dialects.symbolic import Shape
from pyflame_rt.dtype import DType
from pyflame_rt.errors import DTypeMismatchError, ShapeMismatchError

FLOAT = DType.FLOAT32


class Storage(StrEnum):
    """The integer (or 8-bit float) encoding of a quantized tensor's elements."""

    I8 = "i8"
    U8 = "u8"
    I16 = "i16"
    I4 = "i4"
    U4 = "u4"
    F8E4M3FN = "f8E4M3FN"
    F8E5M2 = "f8E5M2"


# the representable range of each storage; 8-bit floats: their largest finite values
STORAGE_RANGE: dict[Storage, tuple[float, float]] = {
    Storage.I8: (-128, 127), Storage.U8: (0, 255), Storage.I16: (-32768, 32767), Storage.I4: (-8, 7), Storage.U4: (0, 15),
    Storage.F8E4M3FN: (-448.0, 448.0), Storage.F8E5M2: (-57344.0, 57344.0)}
# storages with a tensor element type today (int4 / float8 tensors are declared but not computed)
STORAGE_DTYPE: dict[Storage, DType] = {Storage.I8: DType.INT8, Storage.U8: DType.UINT8, Storage.I16: DType.INT16}
FLOAT8 = (Storage.F8E4M3FN, Storage.F8E5M2)


@irdl_attr_definition
class StorageAttr(EnumAttribute[Storage], SpacedOpaqueSyntaxAttribute):
    name = "quant.storage"


@irdl_attr_definition
class UniformQuantType(ParametrizedAttribute, TypeAttribute):
    """`!quant.uniform<storage[:axis], scale:zero_point | {scale:zero_point, ...}>`: real =
    scale * (q - zero_point); axis -1 is per tensor (exactly one pair)."""

    name = "quant.uniform"
    storage: StorageAttr = param_def()
    axis: IntAttr = param_def()
    scales: ArrayAttr[FloatAttr] = param_def()
    zero_points: ArrayAttr[IntAttr] = param_def()

    def __init__(self, storage: str | Storage, scales: Sequence[float], zero_points: Sequence[int],
                 axis: int = -1):
        super().__init__(enum_attr(StorageAttr, storage), IntAttr(axis),
                         ArrayAttr(FloatAttr(float(s), f64) for s in scales), ArrayAttr(IntAttr(int(z)) for z in zero_points))

    @property
    def kind(self) -> Storage:
        return self.storage.data

    @property
    def per_axis(self) -> bool:
        return self.axis.data >= 0

    @property
    def scale_values(self) -> tuple[float, ...]:
        return tuple(s.value.data for s in self.scales)

    @property
    def zero_point_values(self) -> tuple[int, ...]:
        return tuple(z.data for z in self.zero_points)

    @property
    def dtype(self) -> DType:
        """The element type of the storage tensor."""
        if self.kind not in STORAGE_DTYPE:
            raise DTypeMismatchError(f"{self.kind.value} quantized tensors have no element type yet "
                                     "(int4 / float8 storage is declared, not computed)")
        return STORAGE_DTYPE[self.kind]

    @property
    def bounds(self) -> tuple[float, float]:
        return STORAGE_RANGE[self.kind]

    def print_parameters(self, printer: Printer) -> None:
        pairs = [f"{s!r}:{z}" for s, z in zip(self.scale_values, self.zero_point_values)]
        if self.per_axis:
            printer.print_string(f"<{self.kind.value}:{self.axis.data}, {{{', '.join(pairs)}}}>")
        else:
            printer.print_string(f"<{self.kind.value}, {pairs[0]}>")

    @classmethod
    def parse_parameters(cls, parser: AttrParser) -> Sequence[Attribute]:
        parser.parse_punctuation("<")
        storage = StorageAttr(StorageAttr.parse_parameter(parser))
        axis = parser.parse_integer() if parser.parse_optional_punctuation(":") is not None else -1
        parser.parse_punctuation(",")

        def pair() -> tuple[float, int]:
            scale = float(parser.parse_number())
            parser.parse_punctuation(":")
            return scale, parser.parse_integer()

        if axis >= 0:
            pairs = parser.parse_comma_separated_list(parser.Delimiter.BRACES, pair)
        else:
            pairs = [pair()]
        parser.parse_punctuation(">")
        return (storage, IntAttr(axis), ArrayAttr(FloatAttr(s, f64) for s, _ in pairs),
                ArrayAttr(IntAttr(z) for _, z in pairs))

    def verify(self) -> None:
        scales, zps = self.scale_values, self.zero_point_values
        if not scales or len(scales) != len(zps):
            raise VerifyException(f"{self.name}: needs one zero point per scale, got {len(scales)} scales and "
                                  f"{len(zps)} zero points")
        if not self.per_axis and len(scales) != 1:
            raise VerifyException(f"{self.name}: a per-tensor type has one scale, got {len(scales)}")
        if not all(math.isfinite(s) and s > 0 for s in scales):
            raise VerifyException(f"{self.name}: scales must be finite and positive, got {list(scales)}")
        lo, hi = self.bounds
        if any(not lo <= z <= hi for z in zps) or self.kind in FLOAT8 and any(zps):
            raise VerifyException(f"{self.name}: zero points {list(zps)} outside the {self.kind.value} range")

    def check_shape(self, shape: Shape, what: str) -> None:
        """A per-axis type needs its axis in `shape`, as long as its number of scales when static."""
        if not self.per_axis:
            return
        axis = self.axis.data
        if axis >= len(shape):
            raise ShapeMismatchError(f"{what}: quantization axis {axis} out of range for rank {len(shape)}")
        if isinstance(shape[axis], int) and shape[axis] != len(self.scales):
            raise ShapeMismatchError(f"{what}: {len(self.scales)} scales along axis {axis} of size {shape[axis]}")

    def scale_array(self, rank: int):
        """The scales and zero points as float32 arrays that broadcast against a tensor of `rank`."""
        shape = [1] * rank
        if self.per_axis:
            shape[self.axis.data] = len(self.scales)
        return (np.array(self.scale_values, np.float32).reshape(shape),
                np.array(self.zero_point_values, np.float32).reshape(shape))


def quant_type_prop():
    return prop_def(UniformQuantType)


def _storage_of(dtype: DType, qtype: UniformQuantType, what: str) -> None:
    if dtype is not qtype.dtype:
        raise DTypeMismatchError(f"{what} is {dtype.value}, its quantized type stores {qtype.dtype.value}")


def _float_operand(dtype: DType, what: str) -> None:
    if dtype is not FLOAT:
        raise DTypeMismatchError(f"{what} must be float32, got {dtype.value}")


class QuantOp(GraphOp):
    """Base of the `quant` ops: graph ops (symbolic shapes, node names) over storage tensors."""


# ------------------------------------------------------------ conversions


class _StorageConversionOp(UnaryOp, QuantOp):
    """A conversion between float32 and the storage of `type`, elementwise (shape kept)."""

    type = quant_type_prop()

    def __init__(self, input: SSAValue, result_type: TensorType | None = None, *, type: UniformQuantType):
        super().__init__(input, result_type, type=type)

    def infer_shapes(self, shapes):
        self.type.check_shape(shapes[0], self.name)
        return [shapes[0]]


@irdl_op_definition
class QuantizeOp(_StorageConversionOp):
    """float32 -> storage: clamp(round_half_even(x / scale) + zero_point) (ONNX QuantizeLinear)."""

    name = "quant.quantize"

    def infer_dtypes(self, dtypes):
        _float_operand(dtypes[0], f"{self.name} input")
        return [self.type.dtype]


@irdl_op_definition
class DequantizeOp(_StorageConversionOp):
    """storage -> float32: scale * (q - zero_point) (ONNX DequantizeLinear)."""

    name = "quant.dequantize"

    def infer_dtypes(self, dtypes):
        _storage_of(dtypes[0], self.type, f"{self.name} input")
        return [FLOAT]


@irdl_op_definition
class RequantizeOp(UnaryOp, QuantOp):
    """storage of `input_type` -> storage of `type`, the same real values rounded to the new grid."""

    name = "quant.requantize"
    input_type = quant_type_prop()
    type = quant_type_prop()

    def __init__(self, input: SSAValue, result_type: TensorType | None = None, *, input_type: UniformQuantType,
                 type: UniformQuantType):
        super().__init__(input, result_type, input_type=input_type, type=type)

    def infer_shapes(self, shapes):
        self.input_type.check_shape(shapes[0], self.name)
        self.type.check_shape(shapes[0], self.name)
        return [shapes[0]]

    def infer_dtypes(self, dtypes):
        _storage_of(dtypes[0], self.input_type, f"{self.name} input")
        return [self.type.dtype]


@irdl_op_definition
class DynamicQuantizeOp(QuantOp):
    """float32 -> (uint8 storage, scale, zero point) from the data's range extended to 0 (ONNX
    DynamicQuantizeLinear): scale = (max(x, 0) - min(x, 0)) / 255, zero point = clamp(round(-min / scale))."""

    name = "quant.dynamic_quantize"
    input = operand_def(TensorType)
    result = result_def(TensorType)
    scale = result_def(TensorType)
    zero_point = result_def(TensorType)
    irdl_options = (ParsePropInAttrDict(),)
    assembly_format = "$input attr-dict `:` functional-type(operands, results)"

    def __init__(self, input: SSAValue, result_types: Sequence[TensorType]):
        super().__init__(operands=[input], result_types=list(result_types))

    def infer_shapes(self, shapes):
        return [shapes[0], (), ()]

    def infer_dtypes(self, dtypes):
        _float_operand(dtypes[0], f"{self.name} input")
        return [DType.UINT8, FLOAT, DType.UINT8]


# ------------------------------------------------------------ quantized compute


class QuantizedComputeOp(QuantOp):
    """quantize<type>(float_op(dequantize(operand) for each operand)): `float_op` builds the float
    op this op is defined by (its shapes are that op's; the expansion and the kernels compute it)."""

    input_types = prop_def(ArrayAttr[UniformQuantType])
    type = quant_type_prop()
    HAS_BIAS: ClassVar[bool] = False

    def float_op(self, operands: Sequence[SSAValue | None], result_type: TensorType) -> GraphOp:
        raise NotImplementedError

    @property
    def quantized_operands(self) -> list[SSAValue]:
        """The operands `input_types` describes (all but an int32 bias)."""
        ops = list(self.operands)
        return ops[:-1] if self.HAS_BIAS and self.bias is not None else ops

    @property
    def bias_scales(self):
        """The bias's scales (input scale x weight scale, per output channel when the weight is per
        channel) as a float32 array, or None when the op has no bias."""
        import numpy as np

        if not self.HAS_BIAS or self.bias is None:
            return None
        x, w = self.input_types.data[0], self.input_types.data[1]
        return np.float32(x.scale_values[0]) * np.array(w.scale_values, np.float32)

    def requantizing_gemm_types(self, weight_axis: int) -> bool:
        """The types an integer GEMM with requantization computes: an 8-bit activation per tensor,
        an int8 weight of zero point 0 (per tensor or per output channel along `weight_axis`), an
        8-bit result per tensor."""
        a, b = self.input_types.data[:2]
        return (a.kind in (Storage.U8, Storage.I8) and not a.per_axis and b.kind is Storage.I8 and not any(b.zero_point_values)
                and (not b.per_axis or b.axis.data == weight_axis)
                and self.type.kind in (Storage.U8, Storage.I8) and not self.type.per_axis)

    def _constant_bias(self, value_of: Callable[[SSAValue], np.ndarray | None]) -> bool:
        return self.bias is None or value_of(self.bias) is not None

    def infer_shapes(self, shapes):
        probe = self.float_op(list(self.operands), graph.tensor_type((), FLOAT))
        try:
            out = probe.infer_shapes(shapes)
        finally:
            probe.erase()
        for t, s in zip(self.input_types.data, shapes):
            t.check_shape(s, self.name)
        self.type.check_shape(out[0], self.name)
        return out

    def infer_dtypes(self, dtypes):
        types = self.input_types.data
        if len(types) != len(self.quantized_operands):
            raise DTypeMismatchError(f"{self.name} has {len(self.quantized_operands)} quantized operands but "
                                     f"{len(types)} operand types")
        for i, (d, t) in enumerate(zip(dtypes, types)):
            _storage_of(d, t, f"{self.name} operand #{i}")
        if self.HAS_BIAS and self.bias is not None and dtypes[-1] is not DType.INT32:
            raise DTypeMismatchError(f"{self.name} bias must be int32, got {dtypes[-1].value}")
        return [self.type.dtype]


def _quant_props(input_types: Sequence[UniformQuantType], type: UniformQuantType) -> dict[str, Attribute]:
    return {"input_types": ArrayAttr(input_types), "type": type}


class QuantizedBinaryOp(QuantizedComputeOp):
    lhs = operand_def(TensorType)
    rhs = operand_def(TensorType)
    result = result_def(TensorType)
    irdl_options = (ParsePropInAttrDict(),)
    assembly_format = "$lhs `,` $rhs attr-dict `:` functional-type(operands, results)"
    GRAPH_OP: ClassVar[type[GraphOp]]

    def __init__(self, lhs: SSAValue, rhs: SSAValue, result_type: TensorType, *,
                 input_types: Sequence[UniformQuantType], type: UniformQuantType):
        super().__init__(operands=[lhs, rhs], result_types=[result_type], properties=_quant_props(input_types, type))

    def float_op(self, operands, result_type):
        return self.GRAPH_OP(operands[0], operands[1], result_type)


@irdl_op_definition
class MatMulOp(QuantizedBinaryOp):
    """numpy.matmul of quantized tensors (ONNX QLinearMatMul)."""

    name = "quant.matmul"
    GRAPH_OP: ClassVar[type[GraphOp]] = graph.MatMulOp

    def constant_weight(self, value_of: Callable[[SSAValue], np.ndarray | None]) -> np.ndarray | None:
        """The int8 [K, N] weight when an integer GEMM with requantization computes this product
        (`value_of`: a value's constant array or None): 8-bit lhs per tensor by a constant int8
        matrix of zero point 0 (per tensor or per column), K a multiple of 4, an 8-bit result per
        tensor; else None."""
        b = value_of(self.rhs)
        ok = b is not None and b.ndim == 2 and b.dtype == np.int8 and b.shape[0] % 4 == 0
        return b if ok and self.requantizing_gemm_types(1) else None


@irdl_op_definition
class AddOp(QuantizedBinaryOp):
    """Broadcasting add of quantized tensors (com.microsoft QLinearAdd)."""

    name = "quant.add"
    GRAPH_OP: ClassVar[type[GraphOp]] = graph.AddOp

    def same_shape_bytes(self) -> bool:
        """Operands and result of one static shape, 8-bit per-tensor types: an elementwise
        requantizing sum (a residual Add between int8 layers)."""
        types = [*self.input_types.data, self.type]
        shapes = {tuple(v.type.get_shape()) for v in (self.lhs, self.rhs, self.result)}
        return (len(shapes) == 1 and all(d >= 0 for d in next(iter(shapes)))
                and all(t.kind in (Storage.U8, Storage.I8) and not t.per_axis for t in types))


@irdl_op_definition
class MulOp(QuantizedBinaryOp):
    """Broadcasting product of quantized tensors (com.microsoft QLinearMul)."""

    name = "quant.mul"
    GRAPH_OP: ClassVar[type[GraphOp]] = graph.MulOp


@irdl_op_definition
class GemmOp(QuantizedComputeOp):
    """a @ op(b) + bias, a [M, K], b [K, N] (or [N, K] with trans_b), bias int32 [N]."""

    name = "quant.gemm"
    a = operand_def(TensorType)
    b = operand_def(TensorType)
    bias = opt_operand_def(TensorType)
    trans_b = prop_def(BoolAttr, default_value=BoolAttr.from_bool(False))
    result = result_def(TensorType)
    HAS_BIAS: ClassVar[bool] = True
    irdl_options = (ParsePropInAttrDict(),)
    assembly_format = "operands attr-dict `:` functional-type(operands, results)"

    def __init__(self, a, b, bias, result_type, *, input_types, type, trans_b: bool = False):
        super().__init__(operands=[a, b, [bias] if bias is not None else []], result_types=[result_type],
                         properties={**_quant_props(input_types, type), "trans_b": BoolAttr.from_bool(trans_b)})

    def float_op(self, operands, result_type):
        return graph.GemmOp(operands[0], operands[1], operands[2] if len(operands) > 2 else None, result_type,
                            trans_b=self.trans_b.value.data)

    def constant_weight(self, value_of: Callable[[SSAValue], np.ndarray | None]) -> np.ndarray | None:
        """The int8 [K, N] weight (transposed from [N, K] with trans_b) when an integer GEMM with
        requantization computes this product and its bias is constant; else None."""
        b, trans_b = value_of(self.b), self.trans_b.value.data
        b = b.T if b is not None and trans_b else b
        ok = (b is not None and b.ndim == 2 and b.dtype == np.int8 and b.shape[0] % 4 == 0
              and self._constant_bias(value_of))
        return b if ok and self.requantizing_gemm_types(0 if trans_b else 1) else None


@irdl_op_definition
class ConvOp(QuantizedComputeOp):
    """N-d convolution of quantized tensors, NCHW (or NHWC: `layout`), weight [M, C/group, k...] per
    tensor or per output channel (axis 0), bias int32 [M] (ONNX QLinearConv)."""

    name = "quant.conv"
    input = operand_def(TensorType)
    weight = operand_def(TensorType)
    bias = opt_operand_def(TensorType)
    strides = nn.ints_prop()
    dilations = nn.ints_prop()
    pads = nn.ints_prop()
    group = prop_def(IntegerAttr.constr(i64), default_value=IntegerAttr(1, i64))
    layout = nn.layout_prop()
    result = result_def(TensorType)
    HAS_BIAS: ClassVar[bool] = True
    irdl_options = (ParsePropInAttrDict(),)
    assembly_format = "operands attr-dict `:` functional-type(operands, results)"

    def __init__(self, input, weight, bias, result_type, *, input_types, type, strides, dilations, pads,
                 group: int = 1, layout: str = "NCHW"):
        super().__init__(operands=[input, weight, [bias] if bias is not None else []], result_types=[result_type],
                         properties={**_quant_props(input_types, type), "strides": nn._ints(strides),
                                     "dilations": nn._ints(dilations), "pads": nn._ints(pads),
                                     "group": IntegerAttr(group, i64), "layout": enum_attr(LayoutAttr, layout)})

    @property
    def data_layout(self):
        return self.layout.data

    def window(self) -> dict:
        return {name: [int(v) for v in getattr(self, name).get_values()] for name in ("strides", "dilations", "pads")}

    def float_op(self, operands, result_type):
        return nn.ConvOp(operands[0], operands[1], operands[2] if len(operands) > 2 else None, result_type,
                         group=self.group.value.data, layout=self.data_layout, **self.window())

    def constant_weight(self, value_of: Callable[[SSAValue], np.ndarray | None]) -> np.ndarray | None:
        """The int8 [M, C, KH, KW] weight when im2col and an integer GEMM with requantization
        compute this 2-D convolution (one group, constant bias); else None."""
        w = value_of(self.weight)
        ok = (w is not None and w.ndim == 4 and w.dtype == np.int8 and self.group.value.data == 1
              and self._constant_bias(value_of))
        return w if ok and self.requantizing_gemm_types(0) else None


@irdl_op_definition
class ConcatOp(QuantizedComputeOp):
    """Quantized tensors joined along `axis` (com.microsoft QLinearConcat)."""

    name = "quant.concat"
    inputs = var_operand_def(TensorType)
    axis = prop_def(IntegerAttr)
    result = result_def(TensorType)
    irdl_options = (ParsePropInAttrDict(),)
    assembly_format = "$inputs attr-dict `:` functional-type(operands, results)"

    def __init__(self, *inputs: SSAValue, result_type: TensorType, input_types, type, axis: int):
        super().__init__(operands=[list(inputs)], result_types=[result_type],
                         properties={**_quant_props(input_types, type), "axis": IntegerAttr(axis, i64)})

    def float_op(self, operands, result_type):
        return nn.ConcatOp(*operands, result_type=result_type, axis=self.axis.value.data)


@irdl_op_definition
class AvgPoolOp(QuantizedComputeOp):
    """Average pooling of a quantized NCHW tensor (com.microsoft QLinearAveragePool)."""

    name = "quant.avg_pool"
    input = operand_def(TensorType)
    kernel_shape = nn.ints_prop()
    strides = nn.ints_prop()
    pads = nn.ints_prop()
    ceil_mode = prop_def(BoolAttr, default_value=BoolAttr.from_bool(False))
    count_include_pad = prop_def(BoolAttr, default_value=BoolAttr.from_bool(False))
    result = result_def(TensorType)
    irdl_options = (ParsePropInAttrDict(),)
    assembly_format = "$input attr-dict `:` functional-type(operands, results)"

    def __init__(self, input, result_type, *, input_types, type, kernel_shape, strides, pads,
                 ceil_mode: bool = False, count_include_pad: bool = False):
        super().__init__(operands=[input], result_types=[result_type], properties={
            **_quant_props(input_types, type), "kernel_shape": nn._ints(kernel_shape),
            "strides": nn._ints(strides), "pads": nn._ints(pads), "ceil_mode": BoolAttr.from_bool(ceil_mode),
            "count_include_pad": BoolAttr.from_bool(count_include_pad)})

    def float_op(self, operands, result_type):
        ints = {n: [int(v) for v in getattr(self, n).get_values()] for n in ("kernel_shape", "strides", "pads")}
        return nn.AveragePoolOp(operands[0], result_type, dilations=[1] * len(ints["kernel_shape"]),
                                ceil_mode=self.ceil_mode.value.data,
                                count_include_pad=self.count_include_pad.value.data, **ints)


@irdl_op_definition
class GlobalAvgPoolOp(QuantizedComputeOp):
    """The mean over the spatial dims of a quantized NCHW tensor (com.microsoft QLinearGlobalAveragePool)."""

    name = "quant.global_avg_pool"
    input = operand_def(TensorType)
    result = result_def(TensorType)
    irdl_options = (ParsePropInAttrDict(),)
    assembly_format = "$input attr-dict `:` functional-type(operands, results)"

    def __init__(self, input, result_type, *, input_types, type):
        super().__init__(operands=[input], result_types=[result_type], properties=_quant_props(input_types, type))

    def float_op(self, operands, result_type):
        return nn.GlobalAveragePoolOp(operands[0], result_type)


# ------------------------------------------------------------ integer ops


class IntegerComputeOp(QuantOp):
    """int32 = float_op(lhs - lhs_zero_point, rhs - rhs_zero_point) computed exactly; the zero points
    (scalars, or per output channel for the weight) may be run-time values."""

    result = result_def(TensorType)

    def float_op(self, operands: Sequence[SSAValue | None], result_type: TensorType) -> GraphOp:
        raise NotImplementedError

    def infer_shapes(self, shapes):
        probe = self.float_op(list(self.operands[:2]), graph.tensor_type((), FLOAT))
        try:
            return probe.infer_shapes(shapes[:2])
        finally:
            probe.erase()

    def infer_dtypes(self, dtypes):
        _integer_operands(self.name, dtypes[:2], dtypes[2:4])
        return [DType.INT32]


def _integer_operands(name: str, operands: Sequence[DType], zero_points: Sequence[DType]) -> None:
    """lhs and rhs are 8-bit, each with a zero point of its own type."""
    for d, z, what in zip(operands, zero_points, ("lhs", "rhs")):
        if d not in (DType.INT8, DType.UINT8):
            raise DTypeMismatchError(f"{name} {what} must be int8 or uint8, got {d.value}")
        if z is not d:
            raise DTypeMismatchError(f"{name} {what} zero point is {z.value}, its operand {d.value}")


@irdl_op_definition
class MatMulIntegerOp(IntegerComputeOp):
    """(a - a_zero_point) @ (b - b_zero_point) in int32 (ONNX MatMulInteger)."""

    name = "quant.matmul_integer"
    lhs = operand_def(TensorType)
    rhs = operand_def(TensorType)
    lhs_zero_point = operand_def(TensorType)
    rhs_zero_point = operand_def(TensorType)
    irdl_options = (ParsePropInAttrDict(),)
    assembly_format = ("$lhs `,` $rhs `zero_points` `(` $lhs_zero_point `,` $rhs_zero_point `)` attr-dict "
                       "`:` functional-type(operands, results)")

    def __init__(self, lhs, rhs, lhs_zero_point, rhs_zero_point, result_type):
        super().__init__(operands=[lhs, rhs, lhs_zero_point, rhs_zero_point], result_types=[result_type])

    def float_op(self, operands, result_type):
        return graph.MatMulOp(operands[0], operands[1], result_type)

    def constant_weight(self, value_of: Callable[[SSAValue], np.ndarray | None]) -> np.ndarray | None:
        """The int8 [K, N] weight when this is the product an integer GEMM computes (`value_of`: a
        value's constant array or None): uint8 lhs with one zero point by a constant int8 matrix
        of zero point 0, K a multiple of 4; else None."""
        return integer_gemm_weight(self, value_of)


def integer_gemm_weight(op: "MatMulIntegerOp | MatMulIntegerToFloatOp",
                        value_of: Callable[[SSAValue], np.ndarray | None]) -> np.ndarray | None:
    """MatMulIntegerOp.constant_weight of an op with its lhs, rhs and zero point operands."""
    b, b_zp = value_of(op.rhs), value_of(op.rhs_zero_point)
    k = op.rhs.type.get_shape()[0] if b is not None else 0
    ok = (b is not None and b.ndim == 2 and b.dtype == np.int8 and k % 4 == 0 and b_zp is not None
          and not b_zp.any() and graph.dtype_of(op.lhs.type) is DType.UINT8
          and math.prod(op.lhs_zero_point.type.get_shape()) == 1)
    return b if ok else None


@irdl_op_definition
class MatMulIntegerToFloatOp(QuantOp):
    """float32 (a - a_zero_point) @ (b - b_zero_point) x (a_scale x b_scale) + bias (onnxruntime's
    MatMulIntegerToFloat), then the fused activation if any: a MatMulInteger with its
    dequantization (the Cast to float32, the scale Mul and a bias Add) in the integer GEMM's epilogue. a_scale is a scalar (a run-time value:
    DynamicQuantizeLinear's), b_scale one scale or one per output column, bias float32 [N] or absent."""

    name = "quant.matmul_integer_to_float"
    lhs = operand_def(TensorType)
    rhs = operand_def(TensorType)
    lhs_scale = operand_def(TensorType)
    rhs_scale = operand_def(TensorType)
    lhs_zero_point = operand_def(TensorType)
    rhs_zero_point = operand_def(TensorType)
    bias = opt_operand_def(TensorType)
    activation = graph.activation_prop()  # fused by fuse-activation, applied after + bias
    result = result_def(TensorType)
    irdl_options = (ParsePropInAttrDict(),)
    assembly_format = "operands attr-dict `:` functional-type(operands, results)"

    def __init__(self, lhs, rhs, lhs_scale, rhs_scale, lhs_zero_point, rhs_zero_point, bias, result_type):
        super().__init__(operands=[lhs, rhs, lhs_scale, rhs_scale, lhs_zero_point, rhs_zero_point,
                                   [bias] if bias is not None else []], result_types=[result_type])

    def verify_(self) -> None:
        graph.check_activation(self)

    def constant_weight(self, value_of: Callable[[SSAValue], np.ndarray | None]) -> np.ndarray | None:
        """The int8 [K, N] weight when the integer GEMM computes this op: MatMulIntegerOp's
        conditions, b_scale constant (one, or one per column) and the bias constant [N]; else None."""
        b = integer_gemm_weight(self, value_of)
        if b is None:
            return None
        b_scale = value_of(self.rhs_scale)
        bias = value_of(self.bias) if self.bias is not None else np.zeros(b.shape[1])
        ok = b_scale is not None and b_scale.size in (1, b.shape[1]) and bias is not None and bias.size == b.shape[1]
        return b if ok else None

    def infer_shapes(self, shapes):
        probe = graph.MatMulOp(self.lhs, self.rhs, graph.tensor_type((), FLOAT))
        try:
            return probe.infer_shapes(shapes[:2])
        finally:
            probe.erase()

    def infer_dtypes(self, dtypes):
        _integer_operands(self.name, dtypes[:2], dtypes[4:6])
        for d, what in zip(dtypes[2:4] + dtypes[6:], ("lhs scale", "rhs scale", "bias")):
            _float_operand(d, f"{self.name} {what}")
        return [FLOAT]


@irdl_op_definition
class ConvIntegerOp(IntegerComputeOp):
    """Convolution of (x - x_zero_point) by (w - w_zero_point) in int32 (ONNX ConvInteger)."""

    name = "quant.conv_integer"
    lhs = operand_def(TensorType)
    rhs = operand_def(TensorType)
    lhs_zero_point = operand_def(TensorType)
    rhs_zero_point = operand_def(TensorType)
    strides = nn.ints_prop()
    dilations = nn.ints_prop()
    pads = nn.ints_prop()
    group = prop_def(IntegerAttr.constr(i64), default_value=IntegerAttr(1, i64))
    irdl_options = (ParsePropInAttrDict(),)
    assembly_format = ("$lhs `,` $rhs `zero_points` `(` $lhs_zero_point `,` $rhs_zero_point `)` attr-dict "
                       "`:` functional-type(operands, results)")

    def __init__(self, lhs, rhs, lhs_zero_point, rhs_zero_point, result_type, *, strides, dilations, pads,
                 group: int = 1):
        super().__init__(operands=[lhs, rhs, lhs_zero_point, rhs_zero_point], result_types=[result_type],
                         properties={"strides": nn._ints(strides), "dilations": nn._ints(dilations),
                                     "pads": nn._ints(pads), "group": IntegerAttr(group, i64)})

    def float_op(self, operands, result_type):
        window = {n: [int(v) for v in getattr(self, n).get_values()] for n in ("strides", "dilations", "pads")}
        return nn.ConvOp(operands[0], operands[1], None, result_type, group=self.group.value.data, **window)


QUANT_OPS = [QuantizeOp, DequantizeOp, RequantizeOp, DynamicQuantizeOp, MatMulOp, AddOp, MulOp, GemmOp, ConvOp,
             ConcatOp, AvgPoolOp, GlobalAvgPoolOp, MatMulIntegerOp, MatMulIntegerToFloatOp, ConvIntegerOp]
QUANT_ATTRS = [StorageAttr, UniformQuantType]
Quant = Dialect("quant", QUANT_OPS, QUANT_ATTRS)
