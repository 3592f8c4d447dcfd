"""`quantize-dynamic-int8`: float32 MatMul / Gemm by a constant 2-D weight computed in int8, as
onnxruntime's `quantize_dynamic` writes such a model (DynamicQuantizeLinear, MatMulInteger, Cast,
Mul): the activation is quantized to uint8 per run from its range, the weight to int8 symmetric at
compile time (one scale, or one per output column with `per_channel`), the product accumulates in
int32 and is rescaled to float32:

    y = graph.matmul(x, w)  ->  xq, xs, xz = quant.dynamic_quantize(x)
                                y = cast<f32>(quant.matmul_integer(xq, w_int8, xz, 0)) * (xs * w_scale)

A Gemm (A not transposed, beta 1, no fused activation) is the same product, its weight transposed
when `trans_b`, alpha folded into the weight scale, then `+ C`. `exclude` names op types (`MatMul`)
or ONNX node names kept in float32. The weights nothing reads any more are dropped.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from xdsl.dialects.builtin import ModuleOp, TensorType
from xdsl.ir import Operation, SSAValue
from xdsl.pattern_rewriter import PatternRewriter, RewritePattern

from pyflame_rt.dialects import graph, graph_math as gm, quant
from pyflame_rt.dialects.weights import WeightTable
from pyflame_rt.dtype import DType
from pyflame_rt.transforms.convert_to_half import node_name
from pyflame_rt.transforms.eliminate_dead_code import referenced_weights
from pyflame_rt.transforms.graph_pass import GraphPass, PassStats, apply_patterns, constant_array, make_constant
from pyflame_rt.transforms.registry import register_pass

INT8_OPS: dict[str, type[Operation]] = {"MatMul": graph.MatMulOp, "Gemm": graph.GemmOp}
_OP_TYPES = {cls: onnx_type for onnx_type, cls in INT8_OPS.items()}


def int8_op_type(op: Operation) -> str | None:
    """The ONNX op type of a graph op this conversion handles."""
    return _OP_TYPES.get(type(op))


def symmetric_int8(w: np.ndarray, axis: int | None) -> tuple[np.ndarray, np.ndarray]:
    """A float32 weight's int8 codes and scales (one, or one per slice along `axis`): the largest
    magnitude maps to 127, zero point 0."""
    others = None if axis is None else tuple(a for a in range(w.ndim) if a != axis % w.ndim)
    peak = np.abs(w).max(axis=others, keepdims=True)
    scale = np.where(peak > 0, peak / 127, 1.0).astype(np.float32)
    codes = np.clip(np.rint(w / scale), -127, 127).astype(np.int8)
    return codes, scale.reshape(-1) if axis is not None else scale.reshape(())


def float_weight(op: Operation, weights: WeightTable) -> np.ndarray | None:
    """The [K, N] float32 weight op multiplies its activation by, when op is a float32 MatMul /
    Gemm by a constant 2-D weight this conversion handles; else None."""
    if not isinstance(op, (graph.MatMulOp, graph.GemmOp)) or graph.dtype_of(op.result.type) is not DType.FLOAT32:
        return None
    if isinstance(op, graph.GemmOp) and (op.trans_a.value.data or op.activation is not None
                                         or op.c is not None and op.beta.value.data != 1.0):
        return None
    rhs = op.rhs if isinstance(op, graph.MatMulOp) else op.b
    w = constant_array(rhs, weights)
    if w is None or w.ndim != 2 or w.dtype != np.float32:
        return None
    return w.T if isinstance(op, graph.GemmOp) and op.trans_b.value.data else w


def _retyped(t: TensorType, dtype: DType, shape=None) -> TensorType:
    return TensorType(graph.element_type(dtype), t.get_shape() if shape is None else shape)


@dataclass
class QuantizeMatMulDynamic(RewritePattern):
    """A float32 MatMul / Gemm by a constant weight -> its dynamic int8 computation (module doc)."""

    exclude: frozenset[str]
    per_channel: bool
    weights: WeightTable
    stats: PassStats

    def match_and_rewrite(self, op: Operation, rewriter: PatternRewriter) -> None:
        kind = int8_op_type(op)
        if kind is None or kind in self.exclude or node_name(op) in self.exclude:
            return
        w = float_weight(op, self.weights)
        if w is None:
            return
        codes, scale = symmetric_int8(w, 1 if self.per_channel else None)
        if isinstance(op, graph.GemmOp):
            scale = (scale * np.float32(op.alpha.value.data)).astype(np.float32)
        x = op.lhs if isinstance(op, graph.MatMulOp) else op.a
        hint = node_name(op) or kind.lower()
        scalar = TensorType(graph.element_type(DType.FLOAT32), [])
        dq = quant.DynamicQuantizeOp(x, [_retyped(x.type, DType.UINT8), scalar, _retyped(scalar, DType.UINT8)])
        w_q = make_constant(codes, f"{hint}_int8", self.weights, 1)
        w_zp = make_constant(np.zeros((), np.int8), f"{hint}_zero_point", self.weights, 1)
        w_s = make_constant(scale, f"{hint}_scale", self.weights, 1)
        product = quant.MatMulIntegerOp(dq.result, w_q.result, dq.zero_point, w_zp.result,
                                        _retyped(op.result.type, DType.INT32))
        wide = gm.CastOp(product.results[0], op.result.type, to=DType.FLOAT32.value)
        rescale = graph.MulOp(dq.scale, w_s.result, w_s.result.type)
        y = graph.MulOp(wide.result, rescale.result, op.result.type)
        new = [dq, w_q, w_zp, w_s, product, wide, rescale, y]
        if isinstance(op, graph.GemmOp) and op.c is not None:
            new.append(graph.AddOp(y.result, op.c, op.result.type))
        rewriter.replace(op, new, [new[-1].results[0]])
        self.stats.nodes_added += len(new) - 1


@register_pass
@dataclass(frozen=True)
class QuantizeDynamicInt8(GraphPass):
    name = "quantize-dynamic-int8"

    exclude: tuple[str, ...] = ()
    per_channel: bool = False

    def rewrite(self, module: ModuleOp, weights: WeightTable, stats: PassStats) -> bool:
        changed = apply_patterns(module, [QuantizeMatMulDynamic(frozenset(self.exclude), self.per_channel,
                                                                weights, stats)])
        stats.initializers_removed += weights.prune(referenced_weights(module))
        return changed
