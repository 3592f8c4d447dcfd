"""`fuse-mul-add`: Mul followed by Add becomes one `graph.mul_add` (one memory pass, FMA).

A Div by a constant whose elements are powers of two counts as a Mul by the reciprocal, which
is then exact: attention's scores / sqrt(64) + mask becomes one pass over the scores. (Like any
fused Mul + Add, the FMA rounds once: the product is not rounded before the add.)
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from xdsl.dialects.builtin import ModuleOp
from xdsl.ir import Operation, SSAValue
from xdsl.pattern_rewriter import PatternRewriter, RewritePattern, op_type_rewrite_pattern

from pyflame_rt.dialects import graph, graph_fused
from pyflame_rt.dialects.weights import WeightTable
from pyflame_rt.transforms.graph_pass import (
    GraphPass, PassStats, apply_patterns, constant_array, make_constant, single_use)
from pyflame_rt.transforms.registry import register_pass


def exact_reciprocal(c: np.ndarray | None) -> np.ndarray | None:
    """1 / c when every element of the float constant c is a power of two, so that x / c and
    x * (1 / c) round the same real number; else None."""
    if c is None or c.dtype.kind != "f" or c.size == 0 or not np.all(np.abs(np.frexp(c)[0]) == 0.5):
        return None
    with np.errstate(over="ignore"):
        r = (1 / c).astype(c.dtype)
    return r if np.all(r * c == 1) else None


@dataclass
class FuseMulIntoAdd(RewritePattern):
    weights: WeightTable
    stats: PassStats

    @op_type_rewrite_pattern
    def match_and_rewrite(self, add: graph.AddOp, rewriter: PatternRewriter) -> None:
        for prod, c in ((add.lhs, add.rhs), (add.rhs, add.lhs)):
            factors = self.product(prod) if single_use(prod) else None
            if factors is not None:
                a, b, new_ops = factors
                rewriter.replace(add, [*new_ops, graph_fused.MulAddOp(a, b, c, add.result.type,
                                                                      activation=graph.activation_of(add))])
                rewriter.erase(prod.owner)
                self.stats.nodes_fused += 1
                return

    def product(self, v: SSAValue) -> tuple[SSAValue, SSAValue, list[Operation]] | None:
        """(a, b, ops to insert) when v = a * b: a Mul, or a Div by a power-of-two constant."""
        op = v.owner
        if isinstance(op, graph.MulOp):
            return op.lhs, op.rhs, []
        if isinstance(op, graph.DivOp):
            r = exact_reciprocal(constant_array(op.rhs, self.weights))
            if r is not None:
                const = make_constant(r, f"{op.rhs.name_hint or 'c'}_reciprocal", self.weights, inline_elements=16)
                return op.lhs, const.result, [const]
        return None


@register_pass
@dataclass(frozen=True)
class FuseMulAdd(GraphPass):
    """Mul (or Div by powers of two) + Add -> graph.mul_add (a * b + c), when the Mul feeds only the Add."""

    name = "fuse-mul-add"

    def rewrite(self, module: ModuleOp, weights: WeightTable, stats: PassStats) -> bool:
        return apply_patterns(module, [FuseMulIntoAdd(weights, stats)])
