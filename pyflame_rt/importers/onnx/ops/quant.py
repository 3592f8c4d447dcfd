"""Converters for pre-quantized models: QDQ (QuantizeLinear / DequantizeLinear), the QLinear ops,
the integer ops and com.microsoft's QLinear ops, as onnxruntime.quantization emits them, into the
`quant` dialect.

Constant scales and zero points (as quantization tools write them) become the ops'
`!quant.uniform` types. Run-time ones (onnx's node tests feed them) cannot be a type: a
QuantizeLinear, DequantizeLinear, QLinearMatMul or QLinearConv given them becomes the graph ops
that define it (expand-quant's formulas, over values), and so does a DequantizeLinear of int32 (a
QDQ model's bias; folded when constant) and a blocked one (a scale per block of `block_size`
elements along the axis). The integer ops' zero points may be run-time values.
"""
from __future__ import annotations

import ml_dtypes
import numpy as np

from xdsl.ir import SSAValue

from pyflame_rt.dialects import graph, graph_math as gm, graph_nn as nn, quant
from pyflame_rt.dtype import NARROW_FLOATS, SUB_BYTE_INTS, DType
from pyflame_rt.importers.onnx.converters import _NodeContext, converter
from pyflame_rt.importers.onnx.ops.nn import _spatial

MS = "com.microsoft"


def _qtype(ctx: _NodeContext, scale: int, zero_point: int, axis: int = 1, storage=None,
           rank: int | None = None) -> quant.UniformQuantType:
    """The quantized type of the scale and zero point inputs at those positions: per tensor for one
    scale, per `axis` for a 1-D scale of several; the storage is the zero point's element type
    (`storage` when there is no zero point)."""
    s = ctx.const_input(scale)
    zp = ctx.const_input(zero_point) if ctx.input(zero_point) is not None else None
    if s is None or ctx.input(zero_point) is not None and zp is None:
        raise ctx.fail("quantization scales and zero points must be constants")
    kind = _storage(ctx, DType.from_numpy(zp.dtype)) if zp is not None else storage
    scales = np.asarray(s, np.float64).ravel()
    zps = np.zeros(scales.size, np.int64) if zp is None else np.broadcast_to(np.asarray(zp).ravel(), scales.shape)
    if scales.size == 1 and np.ndim(s) <= 1:
        return quant.UniformQuantType(kind, scales, zps)
    if rank is not None:
        axis %= max(rank, 1)
    return quant.UniformQuantType(kind, scales, zps, axis=axis)


def _storage(ctx: _NodeContext, dtype: DType) -> quant.Storage:
    kind = next((k for k, d in quant.STORAGE_DTYPE.items() if d is dtype), None)
    if kind is None:
        raise ctx.fail(f"{dtype.value} quantized tensors are not supported (int8, uint8 and int16 are)")
    return kind


def _storage_of(ctx: _NodeContext, i: int) -> quant.Storage:
    return _storage(ctx, graph.dtype_of(ctx.input(i).type))


def _output_storage(ctx: _NodeContext) -> quant.Storage:
    """A QuantizeLinear's storage without a zero point: its output_dtype, else uint8."""
    return _storage(ctx, DType.from_onnx(ctx.attrs.get("output_dtype", 0) or DType.UINT8.onnx))


def _rank(ctx: _NodeContext, i: int) -> int:
    return len(ctx.shape(ctx.input(i)))


def _constants(ctx: _NodeContext, *inputs: int) -> bool:
    """Whether those inputs (scales, zero points) are constants or absent."""
    return all(ctx.input(i) is None or ctx.const_input(i) is not None for i in inputs)


def _one(ctx: _NodeContext, op_cls, operands, **props) -> SSAValue:
    return ctx.emit(op_cls, operands, **props)[0]


def _param(ctx: _NodeContext, i: int, axis: int, rank: int, block: int = 0) -> SSAValue:
    """Run-time scale or zero point input i as float32, a 1-D one of several shaped to broadcast along
    `axis` of a tensor of `rank`; with a `block` size, one value per block of the axis, repeated."""
    v = _one(ctx, gm.CastOp, [ctx.input(i)], to="float32")
    shape = ctx.shape(v)
    if block:
        return _repeat_blocks(ctx, v, axis % rank, block)
    if len(shape) == 1 and shape[0] != 1 and rank > 1:
        v = _one(ctx, graph.ReshapeOp, [v], shape=[shape[0] if a == axis % rank else 1 for a in range(rank)])
    return v


def _repeat_blocks(ctx: _NodeContext, v: SSAValue, axis: int, block: int) -> SSAValue:
    """v [..., blocks, ...] -> [..., extent, ...], each value repeated `block` times along `axis`
    (the input's extent: the last block may be partial)."""
    shape, extent = list(ctx.shape(v)), ctx.shape(ctx.input(0))[axis]
    if not all(isinstance(d, int) for d in shape) or not isinstance(extent, int):
        raise ctx.fail("blocked quantization needs static shapes")
    v = _one(ctx, graph.ReshapeOp, [v], shape=shape[:axis + 1] + [1] + shape[axis + 1:])
    v = _one(ctx, nn.TileOp, [v], repeats=[block if a == axis + 1 else 1 for a in range(len(shape) + 1)])
    v = _one(ctx, graph.ReshapeOp, [v], shape=shape[:axis] + [shape[axis] * block] + shape[axis + 1:])
    if shape[axis] * block != extent:
        v = _one(ctx, nn.SliceOp, [v], starts=[0], ends=[extent], axes=[axis], steps=[1])
    return v


def dequantize_values(ctx: _NodeContext, x: SSAValue, scale: int, zero_point: int, axis: int = 1,
                      block: int = 0) -> SSAValue:
    """(cast<f32>(x) - zero_point) * scale with run-time scale and zero point inputs."""
    rank = len(ctx.shape(x))
    f = _one(ctx, gm.CastOp, [x], to="float32")
    if ctx.input(zero_point) is not None:
        f = _one(ctx, graph.SubOp, [f, _param(ctx, zero_point, axis, rank, block)])
    return _one(ctx, graph.MulOp, [f, _param(ctx, scale, axis, rank, block)])


def quantize_values(ctx: _NodeContext, x: SSAValue, scale: int, zero_point: int, axis: int = 1,
                    block: int = 0) -> SSAValue:
    """cast<storage>(clip(round(x / scale) + zero_point)) with run-time scale and zero point inputs;
    the storage is the zero point's element type (output_dtype, else uint8, without one). To a float8
    / float4 storage: cast<storage>(x / scale + zero_point), saturating as the node's `saturate`."""
    rank = len(ctx.shape(x))
    to = _quantized_dtype(ctx, zero_point)
    q = _one(ctx, graph.DivOp, [x, _param(ctx, scale, axis, rank, block)])
    if to not in NARROW_FLOATS:
        q = _one(ctx, gm.RoundOp, [q])
    if ctx.input(zero_point) is not None:
        q = _one(ctx, graph.AddOp, [q, _param(ctx, zero_point, axis, rank, block)])
    if to in NARROW_FLOATS:
        return _one(ctx, gm.CastOp, [q], to=to.value, saturate=bool(ctx.attrs.get("saturate", 1)))
    info = ml_dtypes.iinfo(to.numpy)
    return _one(ctx, gm.CastOp, [_one(ctx, gm.ClipOp, [q], min=float(info.min), max=float(info.max))], to=to.value)


_QUANTIZED_DTYPES = frozenset({DType.INT8, DType.UINT8, DType.INT16, DType.UINT16, *SUB_BYTE_INTS, *NARROW_FLOATS})


def _quantized_dtype(ctx: _NodeContext, zero_point: int) -> DType:
    """A QuantizeLinear's storage type (ONNX's T2): its zero point's, else output_dtype, else uint8."""
    if ctx.input(zero_point) is not None:
        dtype = graph.dtype_of(ctx.input(zero_point).type)
    else:
        dtype = DType.from_onnx(ctx.attrs.get("output_dtype", 0) or DType.UINT8.onnx)
    if dtype not in _QUANTIZED_DTYPES:
        raise ctx.fail(f"{dtype.value} quantized tensors are not supported (QuantizeLinear's storage types are "
                       f"8-, 16-, 4- and 2-bit integers and float8 / float4)")
    return dtype


@converter("QuantizeLinear")
def _quantize(ctx: _NodeContext):
    axis, block = int(ctx.attrs.get("axis", 1)), int(ctx.attrs.get("block_size", 0))
    if block or not _constants(ctx, 1, 2) or _quantized_dtype(ctx, 2) not in quant.STORAGE_DTYPE.values():
        return [quantize_values(ctx, ctx.input(0), 1, 2, axis, block)]
    t = _qtype(ctx, 1, 2, axis, _output_storage(ctx), _rank(ctx, 0))
    return ctx.emit(quant.QuantizeOp, [ctx.input(0)], type=t)


@converter("DequantizeLinear")
def _dequantize(ctx: _NodeContext):
    axis, block = int(ctx.attrs.get("axis", 1)), int(ctx.attrs.get("block_size", 0))
    if block or not _constants(ctx, 1, 2) or graph.dtype_of(ctx.input(0).type) is DType.INT32:
        value = dequantize_values(ctx, ctx.input(0), 1, 2, axis, block)
    else:
        t = _qtype(ctx, 1, 2, axis, _storage_of(ctx, 0), _rank(ctx, 0))
        (value,) = ctx.emit(quant.DequantizeOp, [ctx.input(0)], type=t)
    return [_as_output_dtype(ctx, value)]


def _as_output_dtype(ctx: _NodeContext, value: SSAValue) -> SSAValue:
    """DequantizeLinear's result is of its output_dtype (opset 25+), else of the scale's type
    (float16, bfloat16): the ops above compute float32."""
    to = DType.from_onnx(ctx.attrs["output_dtype"]) if ctx.attrs.get("output_dtype") else \
        graph.dtype_of(ctx.input(1).type)
    return value if graph.dtype_of(value.type) is to else _one(ctx, gm.CastOp, [value], to=to.value)


@converter("DynamicQuantizeLinear")
def _dynamic_quantize(ctx: _NodeContext):
    return ctx.emit(quant.DynamicQuantizeOp, [ctx.input(0)])


@converter("QLinearMatMul")
def _qlinear_matmul(ctx: _NodeContext):
    if not _constants(ctx, 1, 2, 4, 5, 6, 7):
        a, b = dequantize_values(ctx, ctx.input(0), 1, 2), dequantize_values(ctx, ctx.input(3), 4, 5, axis=-1)
        return [quantize_values(ctx, _one(ctx, graph.MatMulOp, [a, b]), 6, 7)]
    a = _qtype(ctx, 1, 2, rank=_rank(ctx, 0))
    b = _qtype(ctx, 4, 5, axis=-1, rank=_rank(ctx, 3))
    return ctx.emit(quant.MatMulOp, [ctx.input(0), ctx.input(3)], input_types=[a, b], type=_qtype(ctx, 6, 7))


@converter("QLinearConv")
def _qlinear_conv(ctx: _NodeContext):
    w_shape = ctx.shape(ctx.input(3))
    strides, dilations, pads = _spatial(ctx, ctx.shape(ctx.input(0)), list(w_shape[2:]))
    window = dict(strides=strides, dilations=dilations, pads=pads, group=int(ctx.attrs.get("group", 1)))
    if not _constants(ctx, 1, 2, 4, 5, 6, 7) or ctx.input(8) is not None and ctx.const_input(8) is None:
        return [quantize_values(ctx, _run_time_conv(ctx, window), 6, 7)]
    x, w = _qtype(ctx, 1, 2), _qtype(ctx, 4, 5, axis=0, rank=len(w_shape))
    return ctx.emit(quant.ConvOp, [ctx.input(0), ctx.input(3), ctx.input(8)], input_types=[x, w],
                    type=_qtype(ctx, 6, 7), **window)


def _run_time_conv(ctx: _NodeContext, window: dict) -> SSAValue:
    """The float32 convolution of QLinearConv's dequantized operands (the bias: int32 at scale
    x_scale * w_scale)."""
    x, w = dequantize_values(ctx, ctx.input(0), 1, 2), dequantize_values(ctx, ctx.input(3), 4, 5, axis=0)
    bias = None
    if ctx.input(8) is not None:
        scale = _one(ctx, graph.MulOp, [_param(ctx, 1, 0, 1), _param(ctx, 4, 0, 1)])
        bias = _one(ctx, graph.MulOp, [_one(ctx, gm.CastOp, [ctx.input(8)], to="float32"), scale])
    return _one(ctx, nn.ConvOp, [x, w, bias], **window)


def _zero_point(ctx: _NodeContext, i: int, of: int):
    """The zero point input i of the operand input `of`, a constant 0 when absent."""
    if ctx.input(i) is not None:
        return ctx.input(i)
    dtype = graph.dtype_of(ctx.input(of).type).numpy
    return ctx.importer.add_constant(f"{ctx.node.output[0]}_zero_point{i}", np.zeros((), dtype))


@converter("MatMulInteger")
def _matmul_integer(ctx: _NodeContext):
    return ctx.emit(quant.MatMulIntegerOp, [ctx.input(0), ctx.input(1), _zero_point(ctx, 2, 0),
                                             _zero_point(ctx, 3, 1)])


@converter("ConvInteger")
def _conv_integer(ctx: _NodeContext):
    w_shape = ctx.shape(ctx.input(1))
    strides, dilations, pads = _spatial(ctx, ctx.shape(ctx.input(0)), list(w_shape[2:]))
    return ctx.emit(quant.ConvIntegerOp, [ctx.input(0), ctx.input(1), _zero_point(ctx, 2, 0), _zero_point(ctx, 3, 1)],
                    strides=strides, dilations=dilations, pads=pads, group=int(ctx.attrs.get("group", 1)))


_MS_BINARY = {"QLinearAdd": quant.AddOp, "QLinearMul": quant.MulOp}


@converter(*_MS_BINARY, domain=MS)
def _qlinear_binary(ctx: _NodeContext):
    types = [_qtype(ctx, 1, 2), _qtype(ctx, 4, 5)]
    return ctx.emit(_MS_BINARY[ctx.node.op_type], [ctx.input(0), ctx.input(3)], input_types=types,
                    type=_qtype(ctx, 6, 7))


@converter("QLinearConcat", domain=MS)
def _qlinear_concat(ctx: _NodeContext):
    n = (len(ctx.node.input) - 2) // 3
    inputs = [ctx.input(2 + 3 * i) for i in range(n)]
    types = [_qtype(ctx, 3 + 3 * i, 4 + 3 * i) for i in range(n)]
    return ctx.emit(quant.ConcatOp, inputs, input_types=types, type=_qtype(ctx, 0, 1), axis=int(ctx.attrs["axis"]))


def _no_channels_last(ctx: _NodeContext) -> None:
    if ctx.attrs.get("channels_last", 0):
        raise ctx.fail("channels_last is not supported")


@converter("QLinearAveragePool", domain=MS)
def _qlinear_average_pool(ctx: _NodeContext):
    _no_channels_last(ctx)
    kernel = list(ctx.attrs["kernel_shape"])
    strides, _, pads = _spatial(ctx, ctx.shape(ctx.input(0)), kernel)
    return ctx.emit(quant.AvgPoolOp, [ctx.input(0)], input_types=[_qtype(ctx, 1, 2)], type=_qtype(ctx, 3, 4),
                    kernel_shape=kernel, strides=strides, pads=pads, ceil_mode=bool(ctx.attrs.get("ceil_mode", 0)),
                    count_include_pad=bool(ctx.attrs.get("count_include_pad", 0)))


@converter("QLinearGlobalAveragePool", domain=MS)
def _qlinear_global_average_pool(ctx: _NodeContext):
    _no_channels_last(ctx)
    return ctx.emit(quant.GlobalAvgPoolOp, [ctx.input(0)], input_types=[_qtype(ctx, 1, 2)], type=_qtype(ctx, 3, 4))
