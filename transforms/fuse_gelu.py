"""`fuse-gelu`: the decomposed GELU exporters emit becomes one `graph.gelu`.

    erf form:   0.5 * x * (1 + Erf(x / sqrt(2)))                          (x * (1/sqrt 2) also)
    tanh form:  0.5 * x * (1 + Tanh(sqrt(2/pi) * (x + 0.044715 * x^3)))  (x^3 as Pow or x*x*x)

The 0.5 may multiply x, the bracket, or the product; every intermediate value
must be used only inside the subgraph.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from xdsl.dialects.builtin import ModuleOp
from xdsl.ir import SSAValue
from xdsl.pattern_rewriter import PatternRewriter, RewritePattern, op_type_rewrite_pattern

from pyflame_rt.dialects import graph, graph_math
from pyflame_rt.dialects.weights import WeightTable
from pyflame_rt.transforms.graph_pass import (
    GraphPass, PassStats, apply_patterns, defining, operand_pairs, scalar_constant, single_use)
from pyflame_rt.transforms.registry import register_pass

_RTOL = 1e-4  # exporters round the constants to float32 (or fewer digits)


def _is(value: float | None, want: float) -> bool:
    return value is not None and abs(value - want) <= _RTOL * abs(want)


@dataclass
class FuseDecomposedGelu(RewritePattern):
    weights: WeightTable
    stats: PassStats

    def const(self, v: SSAValue) -> float | None:
        return scalar_constant(v, self.weights)

    @op_type_rewrite_pattern
    def match_and_rewrite(self, root: graph.MulOp, rewriter: PatternRewriter) -> None:
        for x, bracket in self.candidates(root):
            found = self.bracket(bracket, x)
            if found is not None:
                approximate, nodes = found
                rewriter.replace(root, graph_math.GeluOp(x, root.result.type, approximate=approximate))
                self.stats.nodes_fused += nodes + 1  # the bracket, the inner Mul and the root become one
                return

    def candidates(self, root: graph.MulOp):
        """(x, bracket) for root = (x * bracket) * 0.5 or (x * 0.5) * bracket, in any operand order."""
        for p, q in operand_pairs(root):
            inner = defining(p, graph.MulOp)
            if inner is not None and single_use(p) and _is(self.const(q), 0.5):
                yield from operand_pairs(inner)
            x = self._halved(p)
            if x is not None:
                yield x, q

    def _halved(self, v: SSAValue) -> SSAValue | None:
        """x when v = x * 0.5 (and v has one user)."""
        mul = defining(v, graph.MulOp)
        if mul is None or not single_use(v):
            return None
        return next((x for x, h in operand_pairs(mul) if _is(self.const(h), 0.5)), None)

    def bracket(self, v: SSAValue, x: SSAValue) -> tuple[str, int] | None:
        """('none' | 'tanh', nodes in the bracket) when v = 1 + Erf(x/sqrt 2) or 1 + Tanh(...)."""
        add = defining(v, graph.AddOp)
        if add is None or graph.activation_of(add) is not None or not single_use(v):
            return None
        for t, one in operand_pairs(add):
            if not _is(self.const(one), 1.0) or not single_use(t):
                continue
            if (erf := defining(t, graph_math.ErfOp)) is not None and self.scaled(erf.input, x, 1 / math.sqrt(2)):
                return "none", 3
            if (tanh := defining(t, graph_math.TanhOp)) is not None:
                count = self.tanh_argument(tanh.input, x)
                if count is not None:
                    return "tanh", 2 + count
        return None

    def scaled(self, v: SSAValue, x: SSAValue, factor: float) -> bool:
        """v = x * factor or x / (1/factor), used only here."""
        if not single_use(v):
            return False
        if (div := defining(v, graph.DivOp)) is not None:
            return div.lhs == x and _is(self.const(div.rhs), 1 / factor)
        mul = defining(v, graph.MulOp)
        return mul is not None and any(a == x and _is(self.const(c), factor) for a, c in operand_pairs(mul))

    def tanh_argument(self, v: SSAValue, x: SSAValue) -> int | None:
        """Nodes in sqrt(2/pi) * (x + 0.044715 * x^3), or None."""
        mul = defining(v, graph.MulOp)
        if mul is None or not single_use(v):
            return None
        for s, c in operand_pairs(mul):
            add = defining(s, graph.AddOp)
            if not _is(self.const(c), math.sqrt(2 / math.pi)) or add is None or not single_use(s):
                continue
            for xx, cubic in operand_pairs(add):
                cube = defining(cubic, graph.MulOp)
                if xx == x and cube is not None and single_use(cubic):
                    for k, c3 in operand_pairs(cube):
                        n = self.cube(k, x)
                        if _is(self.const(c3), 0.044715) and n is not None:
                            return 3 + n
        return None

    def cube(self, v: SSAValue, x: SSAValue) -> int | None:
        """Nodes in x ** 3 (Pow) or x * x * x, or None."""
        if not single_use(v):
            return None
        if (pw := defining(v, graph_math.PowOp)) is not None:
            return 1 if pw.lhs == x and _is(self.const(pw.rhs), 3.0) else None
        mul = defining(v, graph.MulOp)
        if mul is None:
            return None
        for a, b in operand_pairs(mul):
            sq = defining(a, graph.MulOp)
            if b == x and sq is not None and single_use(a) and sq.lhs == x and sq.rhs == x:
                return 2
        return None


@register_pass
@dataclass(frozen=True)
class FuseGelu(GraphPass):
    """Decomposed GELU (erf or tanh form) -> graph.gelu."""

    name = "fuse-gelu"

    def rewrite(self, module: ModuleOp, weights: WeightTable, stats: PassStats) -> bool:
        return apply_patterns(module, [FuseDecomposedGelu(weights, stats)])
