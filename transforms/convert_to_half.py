"""`convert-to-fp16` / `convert-to-bf16`: a float32 model computed in half precision.

The ops of `HALF_OPS` (GEMM-like ops and the elementwise ops whose half result is as accurate as
their operands) take float16 / bfloat16 operands and results; the weights they read are stored
rounded to the half type (round to nearest even). Every other op stays float32: LayerNormalization,
Softmax and the reductions accumulate sums a half type cannot hold, so they get float32 operands.
Graph inputs and outputs keep their float32 types; Casts stand at every boundary:

    y = graph.matmul(x: f32, w: f32)  ->  y = cast<f32>(graph.matmul(cast<f16>(x), w_half: f16))

and a value that leaves one half op only to enter another is not widened and narrowed again
(`cast<f16>(cast<f32>(h: f16))` is `h`: widening is exact). Ops the target computes in float32
only are then run between Casts by `legalize-half-precision` (the compiler runs it after this
pass): they read half-rounded operands and round their result once, as onnxruntime's float16
models run on its CPU provider. A weight's finite values saturate at the half type's largest
(float32's min, the masked scores' value in `transformers`' attention masks, stays finite: as -inf
it would make 0 x min a NaN). `exclude` names op types (`MatMul`) or ONNX node names kept in
float32.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import ml_dtypes
import numpy as np
from xdsl.dialects.builtin import ModuleOp, StringAttr, TensorType
from xdsl.ir import Operation, SSAValue
from xdsl.pattern_rewriter import PatternRewriter, RewritePattern, op_type_rewrite_pattern

from pyflame_rt.dialects import graph, graph_math as gm, graph_nn as nn
from pyflame_rt.dialects.weights import WeightTable
from pyflame_rt.dtype import DType
from pyflame_rt.transforms.eliminate_dead_code import referenced_weights
from pyflame_rt.transforms.graph_pass import GraphPass, PassStats, apply_patterns
from pyflame_rt.transforms.registry import register_pass

# ONNX op type -> the graph op computed in half precision
HALF_OPS: dict[str, type[Operation]] = {
    "MatMul": graph.MatMulOp, "Gemm": graph.GemmOp, "Conv": nn.ConvOp,
    "Add": graph.AddOp, "Sub": graph.SubOp, "Mul": graph.MulOp, "Relu": graph.ReluOp,
}
_OP_TYPES = {cls: onnx_type for onnx_type, cls in HALF_OPS.items()}


def op_type(op: Operation) -> str | None:
    """The ONNX op type of a graph op this conversion handles."""
    return _OP_TYPES.get(type(op))


def node_name(op: Operation) -> str | None:
    """The ONNX node name an op was imported from."""
    name = op.attributes.get(graph.NODE_NAME)
    return name.data if isinstance(name, StringAttr) else None


def _is_float32(v: SSAValue) -> bool:
    return isinstance(v.type, TensorType) and graph.dtype_of(v.type) is DType.FLOAT32


def _retyped(t: TensorType, dtype: DType) -> TensorType:
    return TensorType(graph.element_type(dtype), t.get_shape())


@dataclass
class NarrowToHalf(RewritePattern):
    """op(x: f32, w: f32) -> cast<f32>(op(cast<half>(x), w_half)) for the ops of HALF_OPS."""

    half: DType
    exclude: frozenset[str]
    weights: WeightTable
    stats: PassStats
    half_weights: dict[str, str] = field(default_factory=dict)  # float32 weight -> its half copy

    def match_and_rewrite(self, op: Operation, rewriter: PatternRewriter) -> None:
        kind = op_type(op)
        if kind is None or kind in self.exclude or node_name(op) in self.exclude \
                or not any(map(_is_float32, op.results)):
            return
        narrowed = [self._narrow(v) if _is_float32(v) else None for v in op.operands]
        operands = [n.result if n is not None else v for n, v in zip(narrowed, op.operands)]
        half_op = type(op).create(operands=operands,
                                  result_types=[_retyped(r.type, self.half) if _is_float32(r) else r.type
                                                for r in op.results],
                                  properties=dict(op.properties), attributes=dict(op.attributes))
        widened = {r: gm.CastOp(h, r.type, to=DType.FLOAT32.value)
                   for r, h in zip(op.results, half_op.results) if _is_float32(r)}
        rewriter.replace(op, [*filter(None, narrowed), half_op, *widened.values()],
                         [widened[r].result if r in widened else h for r, h in zip(op.results, half_op.results)])
        self.stats.nodes_added += sum(n is not None for n in narrowed) + len(widened)

    def _narrow(self, v: SSAValue) -> Operation:
        """A half weight for a float32 weight, else a Cast of `v`."""
        const = v.owner
        if isinstance(const, graph.ConstantOp) and const.weight_name is not None:
            name = self._half_weight(const.weight_name)
            if name is not None:
                return graph.ConstantOp(_retyped(v.type, self.half), weight=name)
        return gm.CastOp(v, _retyped(v.type, self.half), to=self.half.value)

    def _half_weight(self, name: str) -> str | None:
        if name not in self.half_weights:
            arr = self.weights.get(name)
            if arr is None:  # IR printed without its weights: Cast at compile time instead
                return None
            self.half_weights[name] = self.weights.add(f"{name}_{self.half.value}", half_weight(arr, self.half))
            self.stats.initializers_added += 1
        return self.half_weights[name]


def half_weight(arr: np.ndarray, half: DType) -> np.ndarray:
    """A float32 weight rounded to `half` (nearest even), its finite values saturating."""
    arr = np.asarray(arr)
    limit = float(ml_dtypes.finfo(half.numpy).max)
    return np.where(np.isfinite(arr), np.clip(arr, -limit, limit), arr).astype(half.numpy)


class ForwardHalfRoundTrip(RewritePattern):
    """cast<half>(cast<f32>(h: half)) -> h: widening is exact, so the pair changes nothing."""

    @op_type_rewrite_pattern
    def match_and_rewrite(self, op: gm.CastOp, rewriter: PatternRewriter) -> None:
        inner = op.input.owner
        if (isinstance(inner, gm.CastOp) and _is_float32(inner.result)
                and inner.input.type == op.result.type):
            rewriter.replace(op, [], [inner.input])


@dataclass(frozen=True)
class ConvertToHalf(GraphPass):
    """Compute the ops of HALF_OPS in `half` precision, their weights stored in it."""

    half = DType.FLOAT16
    exclude: tuple[str, ...] = ()

    def rewrite(self, module: ModuleOp, weights: WeightTable, stats: PassStats) -> bool:
        changed = apply_patterns(module, [NarrowToHalf(self.half, frozenset(self.exclude), weights, stats),
                                          ForwardHalfRoundTrip()])
        stats.initializers_removed += weights.prune(referenced_weights(module))
        return changed


@register_pass
@dataclass(frozen=True)
class ConvertToFP16(ConvertToHalf):
    name = "convert-to-fp16"
    half = DType.FLOAT16


@register_pass
@dataclass(frozen=True)
class ConvertToBF16(ConvertToHalf):
    name = "convert-to-bf16"
    half = DType.BFLOAT16
