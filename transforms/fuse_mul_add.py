"""`fuse-mul-add`: Mul followed by Add becomes one `graph.mul_add` (one memory pass, FMA)."""
from __future__ import annotations

from dataclasses import dataclass

from xdsl.dialects.builtin import ModuleOp
from xdsl.pattern_rewriter import PatternRewriter, RewritePattern, op_type_rewrite_pattern

from pyflame_rt.dialects import graph, graph_fused
from pyflame_rt.dialects.weights import WeightTable
from pyflame_rt.transforms.graph_pass import GraphPass, PassStats, apply_patterns, single_use
from pyflame_rt.transforms.registry import register_pass


@dataclass
class FuseMulIntoAdd(RewritePattern):
    stats: PassStats

    @op_type_rewrite_pattern
    def match_and_rewrite(self, add: graph.AddOp, rewriter: PatternRewriter) -> None:
        for prod, c in ((add.lhs, add.rhs), (add.rhs, add.lhs)):
            mul = prod.owner
            if isinstance(mul, graph.MulOp) and single_use(prod):
                rewriter.replace(add, graph_fused.MulAddOp(mul.lhs, mul.rhs, c, add.result.type,
                                                           activation=graph.activation_of(add)))
                self.stats.nodes_fused += 1
                return


@register_pass
@dataclass(frozen=True)
class FuseMulAdd(GraphPass):
    """Mul + Add -> graph.mul_add (a * b + c), when the Mul feeds only the Add."""

    name = "fuse-mul-add"

    def rewrite(self, module: ModuleOp, weights: WeightTable, stats: PassStats) -> bool:
        return apply_patterns(module, [FuseMulIntoAdd(stats)])
