"""`fuse-softmax`: the decomposed softmax (as in hand-written attention) becomes one `graph.softmax`.

    e = Exp(x - ReduceMax(x, [a]))   (or Exp(x))        y = e / ReduceSum(e, [a])

Both reductions keep dims and reduce the same single axis; every intermediate
value is used only inside the subgraph.
"""
from __future__ import annotations

from dataclasses import dataclass

from xdsl.dialects.builtin import ModuleOp
from xdsl.pattern_rewriter import PatternRewriter, RewritePattern, op_type_rewrite_pattern

from pyflame_rt.dialects import graph, graph_math, graph_reduce
from pyflame_rt.dialects.weights import WeightTable
from pyflame_rt.transforms.graph_pass import (
    GraphPass, PassStats, apply_patterns, defining, only_used_by, single_use)
from pyflame_rt.transforms.registry import register_pass


def single_axis(r: graph_reduce.ReduceOp, kind: str) -> int | None:
    rank = len(r.input.type.get_shape())
    axes = r.axes_for(rank)
    return axes[0] if r.kind.data == kind and r.keepdims.value.data and len(axes) == 1 else None


@dataclass
class FuseDecomposedSoftmax(RewritePattern):
    stats: PassStats

    @op_type_rewrite_pattern
    def match_and_rewrite(self, div: graph.DivOp, rewriter: PatternRewriter) -> None:
        exp = defining(div.lhs, graph_math.ExpOp)
        total = defining(div.rhs, graph_reduce.ReduceOp)
        if exp is None or total is None or total.input != div.lhs or not single_use(div.rhs):
            return
        axis = single_axis(total, "sum")
        if axis is None or not only_used_by(div.lhs, {total, div}):
            return
        x, nodes = exp.input, 3
        sub = defining(x, graph.SubOp)
        peak = sub and defining(sub.rhs, graph_reduce.ReduceOp)
        if peak is not None and peak.input == sub.lhs and single_axis(peak, "max") == axis \
                and single_use(x) and single_use(sub.rhs):
            x, nodes = sub.lhs, 5
        if x.type != div.result.type:
            return
        rewriter.replace(div, graph_reduce.SoftmaxOp(x, div.result.type, axis=axis))
        self.stats.nodes_fused += nodes - 1


@register_pass
@dataclass(frozen=True)
class FuseSoftmax(GraphPass):
    """exp(x - max) / sum(exp(x - max)) over one axis (max optional) -> graph.softmax."""

    name = "fuse-softmax"

    def rewrite(self, module: ModuleOp, weights: WeightTable, stats: PassStats) -> bool:
        return apply_patterns(module, [FuseDecomposedSoftmax(stats)])
