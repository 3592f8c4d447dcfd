"""`fold-qdq`: a QDQ group -> the quantized op it stands for.

A QDQ model states each quantized computation as a float op between DequantizeLinear and
QuantizeLinear nodes; when every operand of the float op is dequantized and its only reader is a
quantize, the group is that op of the `quant` dialect on the storage tensors:

    quantize<t>(graph.matmul(dequantize<ta>(a), dequantize<tb>(b)))
        ->  quant.matmul(a, b) {input_types = [ta, tb], type = t}

for MatMul, Add, Mul, Concat, AveragePool and GlobalAveragePool, Conv (NCHW, no residual or
fused activation) and Gemm (A not transposed, alpha 1, no fused activation, C a bias [N] with beta
1: `quantize_static`'s Gemm node). A Conv's or Gemm's bias is a QDQ model's dequantized int32
bias, which fold-constants made a float32 constant: it folds to the int32 codes when their product
with the bias scales (input scale x weight scale) gives back exactly that constant. The
dequantizes stay for any other readers (dead-code removal drops the rest). It is the exact inverse
of `expand-quant` on these ops (the quant ops are defined by that expansion), so a folded op
without a kernel computes as before; the CPU runs it first among its legalizations, so that its
requantizing integer GEMM finds the quantized MatMuls, Gemms and Convs.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
from xdsl.dialects.builtin import ModuleOp
from xdsl.ir import Operation, SSAValue
from xdsl.pattern_rewriter import GreedyRewritePatternApplier, PatternRewriter, PatternRewriteWalker, RewritePattern
from xdsl.rewriter import InsertPoint

from pyflame_rt.dialects import graph, graph_nn as nn, quant
from pyflame_rt.dialects.graph_attrs import Layout
from pyflame_rt.dialects.reference import evaluate_op, has_reference
from pyflame_rt.dialects.weights import WeightTable
from pyflame_rt.errors import PyFlameRTError
from pyflame_rt.transforms.convert_to_half import node_name
from pyflame_rt.transforms.graph_pass import (
    GraphPass, PassStats, constant_array, defining, make_constant, node_name_keeper, single_use)
from pyflame_rt.transforms.registry import register_pass


def _binary(cls) -> Callable:
    return lambda src, ins, types, t, rt, weights: cls(ins[0], ins[1], rt, input_types=types, type=t)


def _conv(src: nn.ConvOp, ins, types, t, rt, weights: WeightTable):
    if src.residual is not None or graph.activation_of(src) is not None or src.data_layout != Layout.NCHW:
        return None
    bias = _int32_bias(src, src.bias, types, weights)
    if bias is None:
        return None
    op = quant.ConvOp(ins[0], ins[1], bias[0].result if bias else None, rt, input_types=types, type=t,
                      group=src.groups, **{n: src.ints(n) for n in ("strides", "dilations", "pads")})
    return [*bias, op]


def _gemm(src: graph.GemmOp, ins, types, t, rt, weights: WeightTable):
    """A Gemm of A not transposed, alpha 1, no fused activation and a C that is a bias [N] (beta 1)."""
    c = src.c
    if src.trans_a.value.data or src.alpha.value.data != 1.0 or graph.activation_of(src) is not None or \
            c is not None and (src.beta.value.data != 1.0 or len(c.type.get_shape()) != 1):
        return None
    bias = _int32_bias(src, c, types, weights)
    if bias is None:
        return None
    return [*bias, quant.GemmOp(ins[0], ins[1], bias[0].result if bias else None, rt, input_types=types, type=t,
                                trans_b=src.trans_b.value.data)]


def _int32_bias(src: Operation, bias: SSAValue | None, types, weights: WeightTable) -> list[Operation] | None:
    """[] without a bias, [the constant of its int32 codes] (`_bias_codes`), or None when it is not
    such codes (the op keeps its float form)."""
    if bias is None:
        return []
    codes = _bias_codes(bias, types, weights)
    if codes is None:
        return None
    return [make_constant(codes, f"{node_name(src) or src.name.split('.')[-1]}_bias_int32", weights, 1)]


def _bias_codes(bias: SSAValue, types, weights: WeightTable) -> np.ndarray | None:
    """The int32 codes whose float32 product with the bias scales (expand-quant's definition of a
    quant.conv bias) is the constant `bias`, or None."""
    value = _evaluated(bias, weights)
    if value is None or value.dtype != np.float32:
        return None
    scales = np.float32(types[0].scale_values[0]) * np.array(types[1].scale_values, np.float32)
    codes = np.rint(value.astype(np.float64) / scales)
    if not np.all(np.abs(codes) < 2 ** 31):
        return None
    codes = codes.astype(np.int32)
    return codes if np.array_equal(codes.astype(np.float32) * scales, value) else None


def _evaluated(v: SSAValue, weights: WeightTable) -> np.ndarray | None:
    """The value of `v` when constants alone define it (a QDQ bias's DequantizeLinear imports as
    cast, sub and mul of constants, which fold-constants, after the legalizations, would fold)."""
    value = constant_array(v, weights)
    op = v.owner
    if value is not None or not isinstance(op, graph.GraphOp) or not has_reference(op) or len(op.results) != 1:
        return value
    inputs = [_evaluated(x, weights) for x in op.operands]
    if any(x is None for x in inputs):
        return None
    try:
        return evaluate_op(op, inputs)[0]
    except (PyFlameRTError, ArithmeticError, ValueError):
        return None  # left to run time, as fold-constants leaves it


def _erase_unused(op: Operation, rewriter: PatternRewriter) -> None:
    """`op` and, recursively, what only it read, when nothing reads its results."""
    if isinstance(op, graph.GraphOp) and not any(r.uses for r in op.results):
        owners = [x.owner for x in op.operands]
        rewriter.erase_op(op)
        for owner in owners:
            _erase_unused(owner, rewriter)


def _average_pool(src: nn.AveragePoolOp, ins, types, t, rt, weights):
    if set(src.ints("dilations")) != {1} or src.data_layout != Layout.NCHW:
        return None
    return quant.AvgPoolOp(ins[0], rt, input_types=types, type=t, kernel_shape=src.ints("kernel_shape"),
                           strides=src.ints("strides"), pads=src.ints("pads"), ceil_mode=src.ceil_mode.value.data,
                           count_include_pad=src.count_include_pad.value.data)


def _global_average_pool(src: nn.GlobalAveragePoolOp, ins, types, t, rt, weights):
    return None if src.data_layout != Layout.NCHW else quant.GlobalAvgPoolOp(ins[0], rt, input_types=types, type=t)


# float op -> builder of its quant op (src, storage operands, their types, result type, storage result
# type, weights) or of the constants it needs and the op, None when this instance has no quantized form
QUANTIZED_FORMS: dict[type, Callable] = {
    graph.MatMulOp: _binary(quant.MatMulOp), graph.AddOp: _binary(quant.AddOp), graph.MulOp: _binary(quant.MulOp),
    nn.ConvOp: _conv, graph.GemmOp: _gemm,
    nn.ConcatOp: lambda src, ins, types, t, rt, weights: quant.ConcatOp(*ins, result_type=rt, input_types=types, type=t,
                                                               axis=src.axis.value.data),
    nn.AveragePoolOp: _average_pool, nn.GlobalAveragePoolOp: _global_average_pool,
}


# float ops with a bias operand: the bias is not dequantized (a QDQ model's int32 bias folds to codes)
_BIASES: dict[type, Callable[[Operation], SSAValue | None]] = {nn.ConvOp: lambda op: op.bias, graph.GemmOp: lambda op: op.c}


@dataclass
class FoldQDQGroup(RewritePattern):
    weights: WeightTable
    stats: PassStats

    def match_and_rewrite(self, op: Operation, rewriter: PatternRewriter) -> None:
        if not isinstance(op, quant.QuantizeOp):
            return
        src = op.input.owner
        build = QUANTIZED_FORMS.get(type(src))
        if build is None or not single_use(op.input):
            return
        bias = _BIASES[type(src)](src) if type(src) in _BIASES else None
        quantized = [v for v in src.operands if v is not bias]
        dqs = [defining(v, quant.DequantizeOp) for v in quantized]
        if not dqs or None in dqs or (isinstance(src, graph.AddOp) and graph.activation_of(src) is not None):
            return
        folded = build(src, [d.input for d in dqs], [d.type for d in dqs], op.type, op.result.type, self.weights)
        if folded is None:
            return
        *constants, folded = folded if isinstance(folded, list) else [folded]
        rewriter.insert_op(constants, InsertPoint.before(op))
        rewriter.replace(op, folded)
        rewriter.erase_op(src)
        if bias is not None:
            _erase_unused(bias.owner, rewriter)
        for dq in dict.fromkeys(dqs):  # the dequantizes only the group read
            if not dq.result.uses:
                rewriter.erase_op(dq)
        self.stats.nodes_fused += 1 + len(dqs)


@register_pass
@dataclass(frozen=True)
class FoldQDQ(GraphPass):
    """DequantizeLinear -> float op -> QuantizeLinear groups -> quant ops."""

    name = "fold-qdq"

    def rewrite(self, module: ModuleOp, weights: WeightTable, stats: PassStats) -> bool:
        # no dead-code removal: as a CPU legalization it changes nothing but the groups it folds
        applier = GreedyRewritePatternApplier([FoldQDQGroup(weights, stats)], dce_enabled=False)
        return PatternRewriteWalker(applier, listener=node_name_keeper()).rewrite_module(module)
