"""An out-of-tree graph pass: divide by a constant -> multiply by its reciprocal.

The worked example of docs/writing-a-pass.md. Load it into the tools with

    pyflame-opt --load examples/div_to_mul_pass.py model.onnx -p div-to-mul
    python -c "import div_to_mul_pass; from pyflame_rt import opt; opt.PassManager(['div-to-mul'])"

tests/filecheck/examples/div-to-mul.mlir and tests/unit/transforms/test_pass_plugins.py run it.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from xdsl.dialects.builtin import ModuleOp
from xdsl.pattern_rewriter import PatternRewriter, RewritePattern, op_type_rewrite_pattern

from pyflame_rt.dialects import graph
from pyflame_rt.dialects.weights import WeightTable
from pyflame_rt.transforms.graph_pass import GraphPass, PassStats, apply_patterns, constant_array, make_constant
from pyflame_rt.transforms.registry import register_pass


@dataclass
class DivByConstant(RewritePattern):
    """x / c -> x * (1 / c) for a float constant c without zeros (a multiply is cheaper than a divide)."""

    weights: WeightTable

    @op_type_rewrite_pattern
    def match_and_rewrite(self, div: graph.DivOp, rewriter: PatternRewriter) -> None:
        c = constant_array(div.rhs, self.weights)
        if c is None or c.dtype.kind != "f" or not np.all(c != 0):
            return
        reciprocal = make_constant((1 / c).astype(c.dtype), f"{div.rhs.name_hint or 'c'}_reciprocal",
                                   self.weights, inline_elements=16)
        rewriter.replace(div, [reciprocal, graph.MulOp(div.lhs, reciprocal.result, div.result.type)])


@register_pass
@dataclass(frozen=True)
class DivToMul(GraphPass):
    """Division by a constant becomes multiplication by its reciprocal."""

    name = "div-to-mul"

    def rewrite(self, module: ModuleOp, weights: WeightTable, stats: PassStats) -> bool:
        # node counts are recorded by the PassManager; a fusion would add to stats.nodes_fused
        return apply_patterns(module, [DivByConstant(weights)])
