"""`expand-quant`: `quant` ops -> the float32 and integer `graph` ops that define them.

Each quantized value is dequantized where it is read and quantized where it is produced, exactly
as the ops' definitions say (dialects/quant.py), so a target without int8 kernels computes any
pre-quantized model:

    dequantize<s:z>(q)      ->  (cast<f32>(q) - z) * s
    quantize<s:z>(x)        ->  cast<storage>(clip(round_half_even(x / s) + z, storage range))
    quant.matmul(a, b)      ->  quantize(graph.matmul(dequantize(a), dequantize(b)))
    quant.matmul_integer    ->  cast<i32>(graph.matmul(cast<f32>(a) - a_zp, cast<f32>(b) - b_zp))

A dequantized constant (a weight) folds to float32 in `fold-constants`. Integer results are exact
while every partial sum stays below 2**24 in magnitude (float32's integers). A MatMulInteger by a
constant int8 weight, a quantized MatMul / Gemm / Conv by one and a dynamic quantize stay when
the target has kernels for them (`int8_kernels`).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from xdsl.dialects.builtin import ModuleOp, TensorType
from xdsl.ir import Operation, SSAValue
from xdsl.pattern_rewriter import GreedyRewritePatternApplier, PatternRewriter, PatternRewriteWalker, RewritePattern

from pyflame_rt.dialects import graph, graph_math as gm, graph_reduce as gr, quant
from pyflame_rt.dialects.weights import WeightTable
from pyflame_rt.dtype import DType
from pyflame_rt.transforms.graph_pass import (
    PassStats, TargetGraphPass, constant_array, make_constant, node_name_keeper)
from pyflame_rt.transforms.registry import register_pass

_INLINE = 16  # constants up to this many elements are inline (scales, zero points)


def _retyped(t: TensorType, dtype: DType, shape=None) -> TensorType:
    return TensorType(graph.element_type(dtype), t.get_shape() if shape is None else shape)


@dataclass
class _Builder:
    """Builds the replacement ops of one quant op before it, in order."""

    rewriter: PatternRewriter
    weights: WeightTable
    stats: PassStats

    def add(self, op: Operation) -> SSAValue:
        self.rewriter.insert_op(op)
        self.stats.nodes_added += 1
        return op.results[0]

    def const(self, arr: np.ndarray, hint: str) -> SSAValue:
        self.rewriter.insert_op(op := make_constant(arr, hint, self.weights, _INLINE))
        return op.result

    def cast(self, v: SSAValue, dtype: DType) -> SSAValue:
        return self.add(gm.CastOp(v, _retyped(v.type, dtype), to=dtype.value))

    def binary(self, cls, v: SSAValue, c: SSAValue) -> SSAValue:
        return self.add(cls(v, c, v.type))

    def dequantize(self, q: SSAValue, t: quant.UniformQuantType) -> SSAValue:
        rank = len(q.type.get_shape())
        scale, zp = t.scale_array(rank)
        f = self.cast(q, DType.FLOAT32)
        if zp.any():
            f = self.binary(graph.SubOp, f, self.const(zp, "zero_point"))
        return self.binary(graph.MulOp, f, self.const(scale, "scale"))

    def quantize(self, x: SSAValue, t: quant.UniformQuantType) -> SSAValue:
        scale, zp = t.scale_array(len(x.type.get_shape()))
        q = self.add(gm.RoundOp(self.binary(graph.DivOp, x, self.const(scale, "scale"))))
        if zp.any():
            q = self.binary(graph.AddOp, q, self.const(zp, "zero_point"))
        lo, hi = t.bounds
        return self.cast(self.add(gm.ClipOp(q, min=lo, max=hi)), t.dtype)

    def widen(self, v: SSAValue, zero_point: SSAValue, rank: int) -> SSAValue:
        """cast<f32>(v) - cast<f32>(zero_point), a per-channel zero point along the first axis."""
        zp = self.cast(zero_point, DType.FLOAT32)
        zp_shape = zp.type.get_shape()
        if len(zp_shape) == 1 and rank > 2 and zp_shape[0] != 1:  # a conv weight's [M] -> [M, 1, ...]
            shape = [zp_shape[0]] + [1] * (rank - 1)
            zp = self.add(graph.ReshapeOp(zp, shape, _retyped(zp.type, DType.FLOAT32, shape)))
        return self.binary(graph.SubOp, self.cast(v, DType.FLOAT32), zp)


@dataclass
class _QuantPattern(RewritePattern):
    weights: WeightTable
    stats: PassStats
    int8_kernels: bool = False  # the target has the integer GEMM and dynamic-quantize kernels

    def builder(self, rewriter: PatternRewriter) -> _Builder:
        return _Builder(rewriter, self.weights, self.stats)

    def on_int8_gemm(self, op: Operation, gemm_ops: type[Operation] | tuple[type[Operation], ...]) -> bool:
        """`op` is one of `gemm_ops` by a constant weight that the target's integer GEMM computes."""
        return self.int8_kernels and isinstance(op, gemm_ops) and \
            op.constant_weight(lambda v: constant_array(v, self.weights)) is not None


class ExpandConversions(_QuantPattern):
    def match_and_rewrite(self, op: Operation, rewriter: PatternRewriter) -> None:
        b = self.builder(rewriter)
        if isinstance(op, quant.DequantizeOp):
            out = b.dequantize(op.input, op.type)
        elif isinstance(op, quant.QuantizeOp):
            out = b.quantize(op.input, op.type)
        elif isinstance(op, quant.RequantizeOp):
            out = b.quantize(b.dequantize(op.input, op.input_type), op.type)
        else:
            return
        rewriter.replace(op, [], [out])


# the quantized ops the target's integer GEMM computes (with im2col: Conv) by a constant weight
REQUANTIZING_GEMMS = (quant.MatMulOp, quant.GemmOp, quant.ConvOp)


class ExpandQuantizedCompute(_QuantPattern):
    """Quantized ops but a MatMul / Gemm / Conv by a constant weight the target's integer GEMM
    requantizes and an Add of one shape (its own requantizing kernel)."""

    def match_and_rewrite(self, op: Operation, rewriter: PatternRewriter) -> None:
        if not isinstance(op, quant.QuantizedComputeOp) or self.on_int8_gemm(op, REQUANTIZING_GEMMS) \
                or self.int8_kernels and isinstance(op, quant.AddOp) and op.same_shape_bytes():
            return
        b = self.builder(rewriter)
        operands = [b.dequantize(v, t) for v, t in zip(op.quantized_operands, op.input_types.data)]
        if (bias_scales := op.bias_scales) is not None:
            operands.append(b.binary(graph.MulOp, b.cast(op.bias, DType.FLOAT32), b.const(bias_scales, "bias_scale")))
        wide = b.add(op.float_op(operands, _retyped(op.result.type, DType.FLOAT32)))
        rewriter.replace(op, [], [b.quantize(wide, op.type)])


class ExpandIntegerCompute(_QuantPattern):
    """Integer products the target has no kernel for (`int8_kernels`: a GEMM by a constant weight)."""

    def match_and_rewrite(self, op: Operation, rewriter: PatternRewriter) -> None:
        if not isinstance(op, quant.IntegerComputeOp) or self.on_int8_gemm(op, quant.MatMulIntegerOp):
            return
        b = self.builder(rewriter)
        rank = len(op.rhs.type.get_shape())
        operands = [b.widen(op.lhs, op.lhs_zero_point, 0), b.widen(op.rhs, op.rhs_zero_point, rank)]
        wide = b.add(op.float_op(operands, _retyped(op.result.type, DType.FLOAT32)))
        rewriter.replace(op, [], [b.cast(b.add(gm.RoundOp(wide)), DType.INT32)])


class ExpandDynamicQuantize(_QuantPattern):
    """ONNX DynamicQuantizeLinear: the range of x extended to 0 maps onto [0, 255] (kept when the
    target has a kernel for it: `int8_kernels`)."""

    def match_and_rewrite(self, op: Operation, rewriter: PatternRewriter) -> None:
        if not isinstance(op, quant.DynamicQuantizeOp) or self.int8_kernels:
            return
        b = self.builder(rewriter)
        scalar = TensorType(graph.element_type(DType.FLOAT32), [])
        zero = b.const(np.zeros((), np.float32), "zero")
        lo = b.add(gm.MinOp(b.add(gr.ReduceOp(op.input, scalar, "min", keepdims=False)), zero, result_type=scalar))
        hi = b.add(gm.MaxOp(b.add(gr.ReduceOp(op.input, scalar, "max", keepdims=False)), zero, result_type=scalar))
        scale = b.binary(graph.DivOp, b.binary(graph.SubOp, hi, lo), b.const(np.array(255.0, np.float32), "qmax"))
        zp = b.add(gm.ClipOp(b.add(gm.RoundOp(b.binary(graph.DivOp, b.add(gm.NegOp(lo)), scale))), min=0, max=255))
        q = b.add(graph.AddOp(b.add(gm.RoundOp(b.add(graph.DivOp(op.input, scale, op.input.type)))), zp,
                              op.input.type))
        y = b.cast(b.add(gm.ClipOp(q, min=0, max=255)), DType.UINT8)
        rewriter.replace(op, [], [y, scale, b.cast(zp, DType.UINT8)])


@register_pass
@dataclass(frozen=True)
class ExpandQuant(TargetGraphPass):
    """quant ops -> the graph ops that define them (dequantize, float op, quantize), but for the
    integer ops the target's kernels compute (capabilities.int8_kernels)."""

    name = "expand-quant"

    def rewrite(self, module: ModuleOp, weights: WeightTable, stats: PassStats) -> bool:
        kernels = self.capabilities.int8_kernels
        patterns = [ExpandConversions(weights, stats), ExpandQuantizedCompute(weights, stats, kernels),
                    ExpandIntegerCompute(weights, stats, kernels), ExpandDynamicQuantize(weights, stats, kernels)]
        # no dead-code removal: a legalization changes nothing but the ops it legalizes
        applier = GreedyRewritePatternApplier(patterns, dce_enabled=False)
        return PatternRewriteWalker(applier, listener=node_name_keeper()).rewrite_module(module)
