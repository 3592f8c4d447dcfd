"""Elementwise graph ops -> broadcasting elementwise kernels."""
from __future__ import annotations

from pyflame_rt.dialects import graph, graph_fused
from pyflame_rt.targets.cpu.kernels.elementwise import activation_spelling
from pyflame_rt.targets.cpu.lowerings.registry import lowering, node_label

_ELEMENTWISE = {graph.AddOp: "add", graph.SubOp: "sub", graph.MulOp: "mul", graph.DivOp: "div",
                graph.ReluOp: "relu", graph_fused.MulAddOp: "mul_add"}


@lowering(*_ELEMENTWISE)
def _lower_elementwise(L, op) -> None:
    L.emit_elementwise(_ELEMENTWISE[type(op)], list(op.operands), L.result_loc(op.result), L.shapes[op.result],
                       activation=activation_spelling(graph.activation_of(op)), node=node_label(op))
