"""`fuse-activation`: a Relu (or a ReLU6-style Clip) after an op that has a fused-activation slot
moves into that op.

Any op whose definition has an `activation` property (graph.gemm, graph.add,
graph.mul_add, graph.matmul_bias, graph.conv, ...) applies it in its epilogue
while the result is still in registers; the Relu node disappears. Clip(0, 6)
becomes "relu6" and Clip(0, +inf) "relu". The producer's result must feed only
the activation.
"""
from __future__ import annotations

from dataclasses import dataclass

from xdsl.dialects.builtin import ModuleOp, StringAttr
from xdsl.ir import Operation
from xdsl.irdl import IRDLOperation
from xdsl.pattern_rewriter import PatternRewriter, RewritePattern, op_type_rewrite_pattern

from pyflame_rt.dialects import graph, graph_math
from pyflame_rt.dialects.weights import WeightTable
from pyflame_rt.transforms.graph_pass import GraphPass, PassStats, apply_patterns, single_use
from pyflame_rt.transforms.registry import register_pass

# Clip bounds that are a fused activation
CLIP_ACTIVATIONS = {(0.0, 6.0): "relu6", (0.0, float("inf")): "relu"}


def has_activation_slot(op) -> bool:
    return isinstance(op, IRDLOperation) and "activation" in type(op).get_irdl_definition().properties


def fuse_into_producer(act_op: Operation, activation: str, rewriter: PatternRewriter, stats: PassStats) -> None:
    """Give the unary `act_op`'s producer the fused `activation` and drop `act_op`, when allowed."""
    x, y = act_op.operands[0], act_op.results[0]
    prod = x.owner
    if not (has_activation_slot(prod) and graph.activation_of(prod) is None and len(prod.results) == 1
            and single_use(x) and x.type == y.type):
        return
    prod.properties["activation"] = StringAttr(activation)
    rewriter.notify_op_modified(prod)
    rewriter.replace(act_op, [], [x])
    stats.nodes_fused += 1


@dataclass
class FuseRelu(RewritePattern):
    stats: PassStats

    @op_type_rewrite_pattern
    def match_and_rewrite(self, relu: graph.ReluOp, rewriter: PatternRewriter) -> None:
        fuse_into_producer(relu, "relu", rewriter, self.stats)


@dataclass
class FuseClip(RewritePattern):
    stats: PassStats

    @op_type_rewrite_pattern
    def match_and_rewrite(self, clip: graph_math.ClipOp, rewriter: PatternRewriter) -> None:
        activation = CLIP_ACTIVATIONS.get(clip.bounds())
        if activation is not None:
            fuse_into_producer(clip, activation, rewriter, self.stats)


@register_pass
@dataclass(frozen=True)
class FuseActivation(GraphPass):
    """Relu / Clip(0, 6) after Gemm / Conv / Add / MulAdd / MatMulBias -> that op's fused `activation`."""

    name = "fuse-activation"

    def rewrite(self, module: ModuleOp, weights: WeightTable, stats: PassStats) -> bool:
        return apply_patterns(module, [FuseRelu(stats), FuseClip(stats)])
