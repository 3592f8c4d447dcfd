"""`fuse-residual-add`: Add(conv(x), r) becomes conv(x) with `residual` r (ResNet shortcuts).

The GEMM epilogue adds r while the output tile is in registers, so the Add's
extra pass over memory disappears, and a following Relu (or the Add's own fused
one) becomes the convolution's activation: relu(conv(x) + b + r). The conv result
must feed only the Add, r must have the result's exact type, and the conv must
not already have an activation (that would apply before the add). The new conv
takes the Add's place, where r is available.
"""
from __future__ import annotations

from dataclasses import dataclass

from xdsl.dialects.builtin import ModuleOp
from xdsl.pattern_rewriter import PatternRewriter, RewritePattern, op_type_rewrite_pattern

from pyflame_rt.dialects import graph
from pyflame_rt.dialects import graph_nn as nn
from pyflame_rt.dialects.weights import WeightTable
from pyflame_rt.transforms.graph_pass import (
    GraphPass, PassStats, apply_patterns, defining, operand_pairs, single_use)
from pyflame_rt.transforms.registry import register_pass


@dataclass
class FuseAddIntoConv(RewritePattern):
    stats: PassStats

    @op_type_rewrite_pattern
    def match_and_rewrite(self, add: graph.AddOp, rewriter: PatternRewriter) -> None:
        for prod, r in operand_pairs(add):
            conv = defining(prod, nn.ConvOp)
            if (conv is None or conv.residual is not None or conv.activation is not None
                    or not single_use(prod) or not prod.type == r.type == add.result.type):
                continue
            new = conv.rebuilt(result_type=add.result.type, activation=graph.activation_of(add), residual=r)
            rewriter.replace(add, new)
            rewriter.erase(conv)
            self.stats.nodes_fused += 1
            return


@register_pass
@dataclass(frozen=True)
class FuseResidualAdd(GraphPass):
    """Add(conv(x), r) -> conv(x) with residual r, when the conv result feeds only the Add."""

    name = "fuse-residual-add"

    def rewrite(self, module: ModuleOp, weights: WeightTable, stats: PassStats) -> bool:
        return apply_patterns(module, [FuseAddIntoConv(stats)])
