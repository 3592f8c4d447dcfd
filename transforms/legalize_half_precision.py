"""`legalize-half-precision`: float16 / bfloat16 instances of float32-only ops run in float32.

A target names the op types its kernels compute in float32 only (`capabilities.float32_only`;
the CPU's GEMM, convolution, pooling, normalization and resize kernels, whose lowerings say so
with `@lowering(..., float32_only=True)`). Such an op whose
operands or results are float16 / bfloat16 is rewritten, the way onnxruntime's CPU provider
inserts Cast nodes around an fp16 node it has no kernel for:

    y = graph.matmul(a: f16, b: f16)  ->  y = cast<f16>(graph.matmul(cast<f32>(a), cast<f32>(b)))

Widening is exact; the float32 result is rounded to the narrow type once, to nearest even (the
Cast kernels' rounding), so the op accumulates in float32 as onnxruntime's do. Operands of other
types (integer indices, float32) are left alone; so are ops with half-precision kernels of their
own, and Einsum, which widens in the permuting copies it makes anyway (no second widening).
A Cast of a constant is folded by `fold-constants` later in the pipeline. The compiler runs
this pass before the optimization pipeline, so the fusions see the float32 ops.
"""
from __future__ import annotations

from dataclasses import dataclass

from xdsl.dialects.builtin import ModuleOp, TensorType
from xdsl.ir import Operation, SSAValue
from xdsl.pattern_rewriter import GreedyRewritePatternApplier, PatternRewriter, PatternRewriteWalker, RewritePattern

from pyflame_rt.dialects import graph, graph_math as gm
from pyflame_rt.dialects.weights import WeightTable
from pyflame_rt.dtype import DType
from pyflame_rt.transforms.graph_pass import PassStats, TargetGraphPass, node_name_keeper
from pyflame_rt.transforms.registry import register_pass

HALF_PRECISION = (DType.FLOAT16, DType.BFLOAT16)


def _is_half(v: SSAValue) -> bool:
    return graph.dtype_of(v.type) in HALF_PRECISION


def _as_float32(t: TensorType) -> TensorType:
    return TensorType(graph.element_type(DType.FLOAT32), t.get_shape())


@dataclass
class WidenToFloat32(RewritePattern):
    """op(x: half, ...) -> cast<half>(op(cast<f32>(x), ...)) for ops with float32-only kernels."""

    stats: PassStats
    float32_only: frozenset[type]

    def match_and_rewrite(self, op: Operation, rewriter: PatternRewriter) -> None:
        if type(op) not in self.float32_only or not any(map(_is_half, (*op.operands, *op.results))):
            return
        widen = [gm.CastOp(v, _as_float32(v.type), to=DType.FLOAT32.value) for v in op.operands if _is_half(v)]
        widened = iter(w.result for w in widen)
        operands = [next(widened) if _is_half(v) else v for v in op.operands]
        wide = type(op).create(operands=operands,
                               result_types=[_as_float32(r.type) if _is_half(r) else r.type for r in op.results],
                               properties=dict(op.properties), attributes=dict(op.attributes))
        narrow = {r: gm.CastOp(w, r.type, to=graph.dtype_of(r.type).value)
                  for r, w in zip(op.results, wide.results) if _is_half(r)}
        rewriter.replace(op, [*widen, wide, *narrow.values()],
                         [narrow[r].result if r in narrow else w for r, w in zip(op.results, wide.results)])
        self.stats.nodes_added += len(widen) + len(narrow)


@register_pass
@dataclass(frozen=True)
class LegalizeHalfPrecision(TargetGraphPass):
    """float16 / bfloat16 ops the target computes in float32 only -> float32 ops between graph Casts."""

    name = "legalize-half-precision"

    def rewrite(self, module: ModuleOp, weights: WeightTable, stats: PassStats) -> bool:
        # one walk, and no dead-code removal: a legalization changes nothing but the ops it legalizes
        applier = GreedyRewritePatternApplier([WidenToFloat32(stats, self.capabilities.float32_only)],
                                             dce_enabled=False)
        return PatternRewriteWalker(applier, apply_recursively=False,
                                    listener=node_name_keeper()).rewrite_module(module)
