"""`fold-qdq`: a QDQ group -> the quantized op it stands for.

A QDQ model states each quantized computation as a float op between DequantizeLinear and
QuantizeLinear nodes; when every operand of the float op is dequantized and its only reader is a
quantize, the group is that op of the `quant` dialect on the storage tensors:

    quantize<t>(graph.matmul(dequantize<ta>(a), dequantize<tb>(b)))
        ->  quant.matmul(a, b) {input_types = [ta, tb], type = t}

for MatMul, Add, Mul, Concat, AveragePool and GlobalAveragePool, and Conv (NCHW, no bias, residual
or fused activation). The dequantizes stay for any other readers (dead-code removal drops the rest).
It is the exact inverse of `expand-quant` on these ops (the quant ops are defined by that
expansion), so a folded op without a kernel computes as before; the CPU runs it first among its
legalizations, so that its requantizing integer GEMM finds the quantized MatMuls.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from xdsl.dialects.builtin import ModuleOp
from xdsl.ir import Operation
from xdsl.pattern_rewriter import GreedyRewritePatternApplier, PatternRewriter, PatternRewriteWalker, RewritePattern

from pyflame_rt.dialects import graph, graph_nn as nn, quant
from pyflame_rt.dialects.graph_attrs import Layout
from pyflame_rt.dialects.weights import WeightTable
from pyflame_rt.transforms.graph_pass import GraphPass, PassStats, defining, node_name_keeper, single_use
from pyflame_rt.transforms.registry import register_pass


def _binary(cls) -> Callable:
    return lambda src, ins, types, t, rt: cls(ins[0], ins[1], rt, input_types=types, type=t)


def _conv(src: nn.ConvOp, ins, types, t, rt):
    if src.bias is not None or src.residual is not None or graph.activation_of(src) is not None \
            or src.data_layout != Layout.NCHW:
        return None
    return quant.ConvOp(ins[0], ins[1], None, rt, input_types=types, type=t, group=src.groups,
                        **{n: src.ints(n) for n in ("strides", "dilations", "pads")})


def _average_pool(src: nn.AveragePoolOp, ins, types, t, rt):
    if set(src.ints("dilations")) != {1} or src.data_layout != Layout.NCHW:
        return None
    return quant.AvgPoolOp(ins[0], rt, input_types=types, type=t, kernel_shape=src.ints("kernel_shape"),
                           strides=src.ints("strides"), pads=src.ints("pads"), ceil_mode=src.ceil_mode.value.data,
                           count_include_pad=src.count_include_pad.value.data)


def _global_average_pool(src: nn.GlobalAveragePoolOp, ins, types, t, rt):
    return None if src.data_layout != Layout.NCHW else quant.GlobalAvgPoolOp(ins[0], rt, input_types=types, type=t)


# float op -> builder of its quant op (src, storage operands, their types, result type, storage result
# type), None when this instance has no quantized form
QUANTIZED_FORMS: dict[type, Callable] = {
    graph.MatMulOp: _binary(quant.MatMulOp), graph.AddOp: _binary(quant.AddOp), graph.MulOp: _binary(quant.MulOp),
    nn.ConvOp: _conv,
    nn.ConcatOp: lambda src, ins, types, t, rt: quant.ConcatOp(*ins, result_type=rt, input_types=types, type=t,
                                                               axis=src.axis.value.data),
    nn.AveragePoolOp: _average_pool, nn.GlobalAveragePoolOp: _global_average_pool,
}


@dataclass
class FoldQDQGroup(RewritePattern):
    stats: PassStats

    def match_and_rewrite(self, op: Operation, rewriter: PatternRewriter) -> None:
        if not isinstance(op, quant.QuantizeOp):
            return
        src = op.input.owner
        build = QUANTIZED_FORMS.get(type(src))
        if build is None or not single_use(op.input):
            return
        dqs = [defining(v, quant.DequantizeOp) for v in src.operands]
        if not dqs or None in dqs or (isinstance(src, graph.AddOp) and graph.activation_of(src) is not None):
            return
        folded = build(src, [d.input for d in dqs], [d.type for d in dqs], op.type, op.result.type)
        if folded is None:
            return
        rewriter.replace(op, folded)
        rewriter.erase_op(src)
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
        applier = GreedyRewritePatternApplier([FoldQDQGroup(stats)], dce_enabled=False)
        return PatternRewriteWalker(applier, listener=node_name_keeper()).rewrite_module(module)
