"""`fuse-residual-add`: Add(conv(x), r) or Add(matmul_bias(x), r) takes r into the producer.

ResNet shortcuts and transformer skip connections: the GEMM epilogue adds r while
the output tile is in registers, so the Add's extra pass over memory disappears,
and a following Relu (or the Add's own fused one) becomes the producer's
activation: relu(conv(x) + b + r). The producer's result must feed only the Add,
r must have the result's exact type, and the producer must not already have an
activation (that would apply before the add). The new op takes the Add's place,
where r is available.
"""
from __future__ import annotations

from dataclasses import dataclass

from xdsl.dialects.builtin import ModuleOp
from xdsl.pattern_rewriter import PatternRewriter, RewritePattern, op_type_rewrite_pattern

from pyflame_rt.dialects import graph, graph_fused
from pyflame_rt.dialects import graph_nn as nn
from pyflame_rt.dialects.weights import WeightTable
from pyflame_rt.transforms.graph_pass import (
    GraphPass, PassStats, apply_patterns, operand_pairs, single_use)
from pyflame_rt.transforms.registry import register_pass


def with_residual(op, add: graph.AddOp, r):
    """`op` (a conv or matmul_bias) rebuilt with residual r and the Add's activation."""
    act = graph.activation_of(add)
    if isinstance(op, nn.ConvOp):
        return op.rebuilt(result_type=add.result.type, activation=act, residual=r)
    return graph.keep_node_name(
        op, graph_fused.MatMulBiasOp(op.lhs, op.rhs, op.bias, add.result.type, activation=act, residual=r))


@dataclass
class FuseAddIntoEpilogue(RewritePattern):
    stats: PassStats

    @op_type_rewrite_pattern
    def match_and_rewrite(self, add: graph.AddOp, rewriter: PatternRewriter) -> None:
        for prod, r in operand_pairs(add):
            op = prod.owner
            if (not isinstance(op, (nn.ConvOp, graph_fused.MatMulBiasOp)) or op.residual is not None
                    or graph.activation_of(op) is not None or not single_use(prod)
                    or not prod.type == r.type == add.result.type):
                continue
            rewriter.replace(add, with_residual(op, add, r))
            rewriter.erase(op)
            self.stats.nodes_fused += 1
            return


@register_pass
@dataclass(frozen=True)
class FuseResidualAdd(GraphPass):
    """Add(conv or matmul_bias, r) -> that op with residual r, when its result feeds only the Add."""

    name = "fuse-residual-add"

    def rewrite(self, module: ModuleOp, weights: WeightTable, stats: PassStats) -> bool:
        return apply_patterns(module, [FuseAddIntoEpilogue(stats)])
