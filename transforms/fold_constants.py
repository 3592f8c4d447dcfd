"""`fold-constants`: nodes whose operands are all constants become constants.

Values come from the reference evaluator (`pyflame_rt.dialects.reference`), the same numpy
semantics the conformance tests check. A folded result with at most
`inline-elements` elements (shape vectors, scalars) is written inline as a dense
value, so later folds and importer-style consumers can read it from the IR;
larger ones become new weights (`graph.constant @<name>_folded`).
Limits: results larger than `max-bytes` are not folded; with
`fold-expensive=false` MatMul/Gemm/Conv-like nodes are left alone; `exclude`
lists op names ("graph.matmul" or "matmul") never to fold.
"""
from __future__ import annotations

from dataclasses import dataclass
from math import prod

from xdsl.dialects.builtin import DYNAMIC_INDEX, ModuleOp
from xdsl.ir import Operation
from xdsl.pattern_rewriter import PatternRewriter, RewritePattern

from pyflame_rt.dialects import graph
from pyflame_rt.dialects.weights import WeightTable
from pyflame_rt.errors import PyFlameRTError
from pyflame_rt.dialects.reference import evaluate_op, has_reference
from pyflame_rt.transforms.graph_pass import GraphPass, PassStats, apply_patterns, constant_array, make_constant
from pyflame_rt.transforms.registry import register_pass

# more than linear work in their output size: folding them may cost real compile time
EXPENSIVE_OPS = frozenset({"graph.matmul", "graph.gemm", "graph.conv", "graph.conv_transpose",
                           "graph.einsum"})


@dataclass
class FoldToConstant(RewritePattern):
    weights: WeightTable
    stats: PassStats
    config: "FoldConstants"

    def foldable(self, op: Operation) -> bool:
        short = op.name.split(".", 1)[-1]
        c = self.config
        return (isinstance(op, graph.GraphOp) and not isinstance(op, graph.ConstantOp)
                and has_reference(op) and op.name not in c.exclude and short not in c.exclude
                and (c.fold_expensive or op.name not in EXPENSIVE_OPS)
                and all(DYNAMIC_INDEX not in r.type.get_shape() for r in op.results))

    def match_and_rewrite(self, op: Operation, rewriter: PatternRewriter) -> None:
        if not self.foldable(op):
            return
        inputs = [constant_array(v, self.weights) for v in op.operands]
        if any(x is None for x in inputs):
            return
        if sum(_nbytes(r.type) for r in op.results) > self.config.max_bytes:
            return
        try:
            outs = evaluate_op(op, inputs)
        except (PyFlameRTError, ArithmeticError, ValueError):
            return  # leave it for run time, where the same error surfaces with context
        hint = f"{op.results[0].name_hint or op.name.split('.', 1)[-1]}_folded"
        consts = [make_constant(o, hint, self.weights, self.config.inline_elements) for o in outs]
        rewriter.replace(op, consts, [c.result for c in consts])
        self.stats.constants_folded += 1


def _nbytes(t) -> int:
    return prod(t.get_shape()) * graph.dtype_of(t).itemsize  # Python ints: no int64 wrap-around


@register_pass
@dataclass(frozen=True)
class FoldConstants(GraphPass):
    """Evaluate nodes whose inputs are all constants (results become inline values or weights)."""

    name = "fold-constants"
    max_bytes: int = 64 << 20
    fold_expensive: bool = True
    exclude: tuple[str, ...] = ()
    inline_elements: int = 16

    def rewrite(self, module: ModuleOp, weights: WeightTable, stats: PassStats) -> bool:
        return apply_patterns(module, [FoldToConstant(weights, stats, self)])
