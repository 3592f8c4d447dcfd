"""`fuse-activation`: a unary activation after an op that has a fused-activation slot moves into
that op.

Any op whose definition has an `activation` property (graph.gemm, graph.add,
graph.mul_add, graph.matmul_bias, graph.conv, ...) applies it in its epilogue
while the result is still in registers; the activation node disappears. Relu,
Clip, LeakyRelu, Sigmoid, Tanh, HardSigmoid, HardSwish and Gelu fuse (see
graph_attrs.Activation); Clip(0, 6) becomes relu6 and Clip(0, +inf) relu. The
producer's result must feed only the activation, and all but relu / relu6 need a
single-precision float result.
"""
from __future__ import annotations

from dataclasses import dataclass

from xdsl.dialects.builtin import ModuleOp
from xdsl.ir import Operation
from xdsl.irdl import IRDLOperation
from xdsl.pattern_rewriter import PatternRewriter, RewritePattern

from pyflame_rt.dialects import graph, graph_math as gm
from pyflame_rt.dialects.graph_attrs import Activation, ActivationAttr
from pyflame_rt.dialects.weights import WeightTable
from pyflame_rt.transforms.graph_pass import GraphPass, PassStats, apply_patterns, single_use
from pyflame_rt.transforms.registry import register_pass

# Clip bounds that are a parameterless activation
CLIP_ACTIVATIONS = {(0.0, 6.0): Activation.RELU6, (0.0, float("inf")): Activation.RELU}


def _clip(op: gm.ClipOp) -> ActivationAttr:
    bounds = op.bounds()
    return ActivationAttr(CLIP_ACTIVATIONS[bounds]) if bounds in CLIP_ACTIVATIONS else ActivationAttr("clip", bounds)


# activation op -> its fused activation
_ACTIVATION_OF = {
    graph.ReluOp: lambda op: ActivationAttr("relu"),
    gm.ClipOp: _clip,
    gm.LeakyReluOp: lambda op: ActivationAttr("leaky_relu", [op.attr("alpha")]),
    gm.SigmoidOp: lambda op: ActivationAttr("sigmoid"),
    gm.TanhOp: lambda op: ActivationAttr("tanh"),
    gm.HardSigmoidOp: lambda op: ActivationAttr("hard_sigmoid", [op.attr("alpha"), op.attr("beta")]),
    gm.HardSwishOp: lambda op: ActivationAttr("hard_swish"),
    gm.GeluOp: lambda op: ActivationAttr("gelu_tanh" if op.approximate.data == "tanh" else "gelu"),
}


def has_activation_slot(op) -> bool:
    return isinstance(op, IRDLOperation) and "activation" in type(op).get_irdl_definition().properties


def fuse_into_producer(act_op: Operation, activation: ActivationAttr, rewriter: PatternRewriter,
                       stats: PassStats) -> None:
    """Give the unary `act_op`'s producer the fused `activation` and drop `act_op`, when allowed."""
    x, y = act_op.operands[0], act_op.results[0]
    prod = x.owner
    if not (has_activation_slot(prod) and graph.activation_of(prod) is None and len(prod.results) == 1
            and single_use(x) and x.type == y.type
            and activation.applies_to(x.type)):
        return
    prod.properties["activation"] = activation
    rewriter.notify_op_modified(prod)
    rewriter.replace(act_op, [], [x])
    stats.nodes_fused += 1


@dataclass
class FuseUnaryActivation(RewritePattern):
    stats: PassStats

    def match_and_rewrite(self, op: Operation, rewriter: PatternRewriter) -> None:
        activation_of = _ACTIVATION_OF.get(type(op))
        if activation_of is not None:
            fuse_into_producer(op, activation_of(op), rewriter, self.stats)


@register_pass
@dataclass(frozen=True)
class FuseActivation(GraphPass):
    """Relu / Clip / LeakyRelu / Sigmoid / Tanh / HardSigmoid / HardSwish / Gelu after Gemm / Conv /
    Add / MulAdd / MatMulBias -> that op's fused `activation`."""

    name = "fuse-activation"

    def rewrite(self, module: ModuleOp, weights: WeightTable, stats: PassStats) -> bool:
        return apply_patterns(module, [FuseUnaryActivation(stats)])
