"""`fuse-activation`: a Relu after an op that has a fused-activation slot moves into that op.

Any op whose definition has an `activation` property (graph.gemm, graph.add,
graph.mul_add, graph.matmul_bias, graph.conv, ...) applies it in its epilogue
while the result is still in registers; the Relu node disappears. The
producer's result must feed only the Relu.
"""
from __future__ import annotations

from dataclasses import dataclass

from xdsl.dialects.builtin import ModuleOp, StringAttr
from xdsl.irdl import IRDLOperation
from xdsl.pattern_rewriter import PatternRewriter, RewritePattern, op_type_rewrite_pattern

from pyflame_rt.dialects import graph
from pyflame_rt.dialects.weights import WeightTable
from pyflame_rt.transforms.graph_pass import GraphPass, PassStats, apply_patterns, single_use
from pyflame_rt.transforms.registry import register_pass


def has_activation_slot(op) -> bool:
    return isinstance(op, IRDLOperation) and "activation" in type(op).get_irdl_definition().properties


@dataclass
class FuseRelu(RewritePattern):
    stats: PassStats

    @op_type_rewrite_pattern
    def match_and_rewrite(self, relu: graph.ReluOp, rewriter: PatternRewriter) -> None:
        prod = relu.input.owner
        if not (has_activation_slot(prod) and graph.activation_of(prod) is None and len(prod.results) == 1
                and single_use(relu.input) and relu.input.type == relu.result.type):
            return
        prod.properties["activation"] = StringAttr("relu")
        rewriter.notify_op_modified(prod)
        rewriter.replace(relu, [], [relu.input])
        self.stats.nodes_fused += 1


@register_pass
@dataclass(frozen=True)
class FuseActivation(GraphPass):
    """Relu after Gemm / Conv / Add / MulAdd / MatMulBias -> that op's fused `activation`."""

    name = "fuse-activation"

    def rewrite(self, module: ModuleOp, weights: WeightTable, stats: PassStats) -> bool:
        return apply_patterns(module, [FuseRelu(stats)])
