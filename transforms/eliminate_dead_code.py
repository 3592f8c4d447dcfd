"""`eliminate-dead-code`: unused nodes, no-op nodes (Identity, inference Dropout), unused weights."""
from __future__ import annotations

from dataclasses import dataclass

from xdsl.dialects.builtin import ModuleOp
from xdsl.pattern_rewriter import PatternRewriter, RewritePattern, op_type_rewrite_pattern

from pyflame_rt.dialects import graph
from pyflame_rt.dialects.weights import WeightTable
from pyflame_rt.transforms.graph_pass import GraphPass, PassStats, apply_patterns
from pyflame_rt.transforms.registry import register_pass


class ForwardIdentity(RewritePattern):
    """graph.identity (what Identity and inference-mode Dropout import as) forwards its input."""

    @op_type_rewrite_pattern
    def match_and_rewrite(self, op: graph.IdentityOp, rewriter: PatternRewriter) -> None:
        if op.input.type == op.result.type:
            rewriter.replace(op, [], [op.input])


def referenced_weights(module: ModuleOp) -> set[str]:
    return {op.weight_name for op in module.walk()
            if isinstance(op, graph.ConstantOp) and op.weight_name is not None}


@register_pass
@dataclass(frozen=True)
class EliminateDeadCode(GraphPass):
    """Remove unused nodes, Identity/Dropout and weights nothing refers to."""

    name = "eliminate-dead-code"

    def rewrite(self, module: ModuleOp, weights: WeightTable, stats: PassStats) -> bool:
        changed = apply_patterns(module, [ForwardIdentity()])
        dropped = weights.prune(referenced_weights(module))
        stats.initializers_removed += dropped
        return changed or dropped > 0
