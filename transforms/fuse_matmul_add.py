"""`fuse-matmul-add`: a MatMul (or a Gemm without C) followed by a row-vector Add.

The Add becomes the GEMM's bias epilogue. With 2-D operands the result is a
`graph.gemm` (C = the bias row); with a higher-rank left operand and a 2-D right
one (the Linear layers transformer exports emit) it is a `graph.matmul_bias`
with an [N] bias (a constant [1, N] or single-element bias is reshaped). The MatMul/Gemm result must feed only the Add.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from xdsl.dialects.builtin import Float32Type, ModuleOp
from xdsl.ir import SSAValue
from xdsl.pattern_rewriter import PatternRewriter, RewritePattern, op_type_rewrite_pattern

from pyflame_rt.dialects import graph, graph_fused
from pyflame_rt.dialects.weights import WeightTable
from pyflame_rt.transforms.graph_pass import (
    GraphPass, PassStats, apply_patterns, constant_array, make_constant, single_use)
from pyflame_rt.transforms.registry import register_pass


def is_row(c: SSAValue, n: int) -> bool:
    """c broadcasts along the rows of an [M, n] result: shape [..1.., n] or a single element."""
    shape = c.type.get_shape()
    return all(d == 1 for d in shape[:-1]) and (not shape or shape[-1] in (1, n))


@dataclass
class FuseAddIntoGemm(RewritePattern):
    weights: WeightTable
    stats: PassStats

    @op_type_rewrite_pattern
    def match_and_rewrite(self, add: graph.AddOp, rewriter: PatternRewriter) -> None:
        for prod, c in ((add.lhs, add.rhs), (add.rhs, add.lhs)):
            new = self.fused(prod, c, add)
            if new is not None:  # named like the product: its requirements (inner dims) carry over
                graph.keep_node_name(prod.owner, new[-1])
                rewriter.replace(add, new, [new[-1].results[0]])
                self.stats.nodes_fused += 1
                return

    def fused(self, prod: SSAValue, c: SSAValue, add: graph.AddOp):
        mm = prod.owner
        if not (isinstance(mm, (graph.MatMulOp, graph.GemmOp)) and single_use(prod)
                and add.result.type == prod.type and prod.type.get_element_type() == Float32Type()):
            return None
        act = graph.activation_of(add)
        if isinstance(mm, graph.GemmOp):
            n = prod.type.get_shape()[1]
            if mm.c is not None or graph.activation_of(mm) is not None or n < 0 or not is_row(c, n):
                return None
            return [graph.GemmOp(mm.a, mm.b, c, add.result.type, alpha=mm.alpha.value.data, beta=1.0,
                                 trans_a=mm.trans_a.value.data, trans_b=mm.trans_b.value.data, activation=act)]
        a_shape, b_shape = mm.lhs.type.get_shape(), mm.rhs.type.get_shape()
        if len(b_shape) != 2 or len(a_shape) < 2 or b_shape[1] < 0 or not is_row(c, b_shape[1]):
            return None
        if len(a_shape) == 2:
            return [graph.GemmOp(mm.lhs, mm.rhs, c, add.result.type, activation=act)]
        n = b_shape[1]
        if tuple(c.type.get_shape()) == (n,):
            return [graph_fused.MatMulBiasOp(mm.lhs, mm.rhs, c, add.result.type, activation=act)]
        bias = constant_array(c, self.weights)
        if bias is None:
            return None
        row = make_constant(np.broadcast_to(bias.reshape(-1), (n,)), f"{c.name_hint or 'bias'}_row",
                            self.weights, inline_elements=0)
        return [row, graph_fused.MatMulBiasOp(mm.lhs, mm.rhs, row.result, add.result.type, activation=act)]


@register_pass
@dataclass(frozen=True)
class FuseMatMulAdd(GraphPass):
    """MatMul + Add(row) -> Gemm (2-D) or matmul_bias (N-D x 2-D); Gemm + Add(row) -> Gemm with C."""

    name = "fuse-matmul-add"

    def rewrite(self, module: ModuleOp, weights: WeightTable, stats: PassStats) -> bool:
        return apply_patterns(module, [FuseAddIntoGemm(weights, stats)])
