"""Converters for pre-quantized models: QDQ (QuantizeLinear / DequantizeLinear), the QLinear ops,
the integer ops and com.microsoft's QLinear ops, as onnxruntime.quantization emits them, into the
`quant` dialect.

Scales and zero points become the ops' `!quant.uniform` types, so they must be constants (as every
quantization tool makes them); the integer ops' zero points may be run-time values. A
DequantizeLinear of a constant int32 tensor (a QDQ model's bias) is folded to float32 here.
"""
from __future__ import annotations

import numpy as np

from pyflame_rt.dialects import quant
from pyflame_rt.importers.onnx.converters import _NodeContext, converter
from pyflame_rt.importers.onnx.ops.nn import _spatial

MS = "com.microsoft"
_STORAGE = {np.dtype(np.int8): quant.Storage.I8, np.dtype(np.uint8): quant.Storage.U8}


def _qtype(ctx: _NodeContext, scale: int, zero_point: int, axis: int = 1, storage=None,
           rank: int | None = None) -> quant.UniformQuantType:
    """The quantized type of the scale and zero point inputs at those positions: per tensor for one
    scale, per `axis` for a 1-D scale of several; the storage is the zero point's element type
    (`storage` when there is no zero point)."""
    s = ctx.const_input(scale)
    zp = ctx.const_input(zero_point) if ctx.input(zero_point) is not None else None
    if s is None or ctx.input(zero_point) is not None and zp is None:
        raise ctx.fail("quantization scales and zero points must be constants")
    kind = _STORAGE.get(zp.dtype) if zp is not None else storage
    if kind is None:
        raise ctx.fail(f"{zp.dtype} quantized tensors are not supported (int8 and uint8 are)")
    scales = np.asarray(s, np.float64).ravel()
    zps = np.zeros(scales.size, np.int64) if zp is None else np.broadcast_to(np.asarray(zp).ravel(), scales.shape)
    if scales.size == 1 and np.ndim(s) <= 1:
        return quant.UniformQuantType(kind, scales, zps)
    if rank is not None:
        axis %= max(rank, 1)
    return quant.UniformQuantType(kind, scales, zps, axis=axis)


def _storage_of(ctx: _NodeContext, i: int) -> quant.Storage:
    dtype = quant.graph.dtype_of(ctx.input(i).type)
    kind = next((k for k, d in quant.STORAGE_DTYPE.items() if d is dtype), None)
    if kind is None:
        raise ctx.fail(f"{dtype.value} quantized tensors are not supported (int8 and uint8 are)")
    return kind


def _rank(ctx: _NodeContext, i: int) -> int:
    return len(ctx.shape(ctx.input(i)))


def _no_blocks(ctx: _NodeContext) -> None:
    if ctx.attrs.get("block_size", 0):
        raise ctx.fail("blocked quantization (block_size) is not supported")


@converter("QuantizeLinear")
def _quantize(ctx: _NodeContext):
    _no_blocks(ctx)
    if "output_dtype" in ctx.attrs and ctx.input(2) is None:
        raise ctx.fail("output_dtype without a zero point is not supported")
    t = _qtype(ctx, 1, 2, int(ctx.attrs.get("axis", 1)), quant.Storage.U8, _rank(ctx, 0))
    return ctx.emit(quant.QuantizeOp, [ctx.input(0)], type=t)


@converter("DequantizeLinear")
def _dequantize(ctx: _NodeContext):
    _no_blocks(ctx)
    x = ctx.const_input(0)
    if x is not None and x.dtype == np.int32:  # a bias: exact in int32, folded to its float values
        s = ctx.const_input(1)
        zp = ctx.const_input(2) if ctx.input(2) is not None else np.zeros((), np.int32)
        if s is None or zp is None:
            raise ctx.fail("quantization scales and zero points must be constants")
        real = (x - zp).astype(np.float32) * np.asarray(s, np.float32)
        return [ctx.importer.add_constant(ctx.node.output[0], real)]
    t = _qtype(ctx, 1, 2, int(ctx.attrs.get("axis", 1)), _storage_of(ctx, 0), _rank(ctx, 0))
    return ctx.emit(quant.DequantizeOp, [ctx.input(0)], type=t)


@converter("DynamicQuantizeLinear")
def _dynamic_quantize(ctx: _NodeContext):
    return ctx.emit(quant.DynamicQuantizeOp, [ctx.input(0)])


@converter("QLinearMatMul")
def _qlinear_matmul(ctx: _NodeContext):
    a = _qtype(ctx, 1, 2, rank=_rank(ctx, 0))
    b = _qtype(ctx, 4, 5, axis=-1, rank=_rank(ctx, 3))
    return ctx.emit(quant.MatMulOp, [ctx.input(0), ctx.input(3)], input_types=[a, b], type=_qtype(ctx, 6, 7))


@converter("QLinearConv")
def _qlinear_conv(ctx: _NodeContext):
    w_shape = ctx.shape(ctx.input(3))
    strides, dilations, pads = _spatial(ctx, ctx.shape(ctx.input(0)), list(w_shape[2:]))
    x, w = _qtype(ctx, 1, 2), _qtype(ctx, 4, 5, axis=0, rank=len(w_shape))
    return ctx.emit(quant.ConvOp, [ctx.input(0), ctx.input(3), ctx.input(8)], input_types=[x, w],
                    type=_qtype(ctx, 6, 7), strides=strides, dilations=dilations, pads=pads,
                    group=int(ctx.attrs.get("group", 1)))


def _zero_point(ctx: _NodeContext, i: int, of: int):
    """The zero point input i of the operand input `of`, a constant 0 when absent."""
    if ctx.input(i) is not None:
        return ctx.input(i)
    dtype = quant.graph.dtype_of(ctx.input(of).type).numpy
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
