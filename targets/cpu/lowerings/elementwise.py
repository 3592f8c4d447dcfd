"""Elementwise graph ops -> broadcasting elementwise kernels."""
from __future__ import annotations

from typing import Union

from xdsl.pattern_rewriter import PatternRewriter, op_type_rewrite_pattern

from pyflame_rt.dialects import graph, graph_fused
from pyflame_rt.targets.cpu.kernels.elementwise import activation_spelling
from pyflame_rt.targets.cpu.lowerings.pattern import GraphToKernelPattern, node_label

_ELEMENTWISE = {graph.AddOp: "add", graph.SubOp: "sub", graph.MulOp: "mul", graph.DivOp: "div",
                graph.ReluOp: "relu", graph_fused.MulAddOp: "mul_add"}
ElementwiseOp = Union[tuple(_ELEMENTWISE)]


class LowerElementwise(GraphToKernelPattern):
    @op_type_rewrite_pattern
    def match_and_rewrite(self, op: ElementwiseOp, rewriter: PatternRewriter) -> None:
        self.convert(op, rewriter)

    def lower(self, L, op) -> None:
        L.emit_elementwise(_ELEMENTWISE[type(op)], list(op.operands), L.result_loc(op.result), L.shapes[op.result],
                           activation=activation_spelling(graph.activation_of(op)), node=node_label(op))


PATTERNS = (LowerElementwise,)
