"""`fuse-matmul-integer-to-float`: a MatMulInteger's dequantization becomes its GEMM's epilogue.

onnxruntime's `quantize_dynamic` (and `quantize-dynamic-int8`) write each int8 MatMul as

    p = quant.matmul_integer(xq, w, xz, wz)
    y = graph.mul(graph.cast<f32>(p), graph.mul(xs, w_scale))     [+ graph.add(y, bias)]

with xs a scalar (DynamicQuantizeLinear's scale), w_scale a constant (one, or one per column) and
bias a constant [N]; `quantize-static-int8` writes the same chain with xs x w_scale folded into
one constant (the Mul's operand, fused with xs = 1.0). That chain becomes one
`quant.matmul_integer_to_float(xq, w, xs, w_scale, xz, wz, bias)`, whose kernel scales and biases
the int32 sums in registers: no int32 result, no separate Cast, Mul and Add passes. Only a product the integer GEMM computes (a constant int8
weight: `MatMulIntegerOp.constant_weight`, so one `expand-quant` kept for the target) is fused; the
operations are those of the chain, in its order (the sums times the scales' product, then + bias).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from xdsl.dialects.builtin import ModuleOp
from xdsl.ir import Operation, SSAValue
from xdsl.pattern_rewriter import PatternRewriter, RewritePattern, op_type_rewrite_pattern

from pyflame_rt.dialects import graph, graph_math as gm, quant
from pyflame_rt.dialects.weights import WeightTable
from pyflame_rt.dtype import DType
from pyflame_rt.transforms.graph_pass import (
    GraphPass, PassStats, apply_patterns, constant_array, make_constant, single_use)
from pyflame_rt.transforms.registry import register_pass


def _is_scalar(v: SSAValue) -> bool:
    return all(d == 1 for d in v.type.get_shape())


@dataclass
class FuseDequantization(RewritePattern):
    weights: WeightTable
    stats: PassStats

    @op_type_rewrite_pattern
    def match_and_rewrite(self, mul: graph.MulOp, rewriter: PatternRewriter) -> None:
        for wide, scale in ((mul.lhs, mul.rhs), (mul.rhs, mul.lhs)):
            product = self.integer_product(wide)
            scales = self.scales(scale, product) if product is not None else None
            if scales is not None:
                break
        else:
            return
        if mul.result.type != wide.type:
            return
        bias, last = self.bias(mul)
        *made, a_scale, b_scale = scales
        fused = quant.MatMulIntegerToFloatOp(product.lhs, product.rhs, a_scale, b_scale, product.lhs_zero_point,
                                             product.rhs_zero_point, bias, last.result.type)
        rewriter.replace(last, made + [fused])
        for dead in ([mul] if last is not mul else []) + [wide.owner, product]:
            rewriter.erase(dead)
        self.stats.nodes_fused += 1

    def integer_product(self, wide: SSAValue) -> quant.MatMulIntegerOp | None:
        """The MatMulInteger the integer GEMM computes when `wide` is its only use's Cast to float32."""
        cast = wide.owner
        if not (isinstance(cast, gm.CastOp) and graph.dtype_of(wide.type) is DType.FLOAT32 and single_use(wide)):
            return None
        p = cast.input.owner
        if not (isinstance(p, quant.MatMulIntegerOp) and single_use(p.result)
                and p.constant_weight(lambda v: constant_array(v, self.weights)) is not None):
            return None
        return p

    def scales(self, scale: SSAValue, product: quant.MatMulIntegerOp) -> tuple | None:
        """(the ops to insert..., activation scale, weight scale) when `scale` is float32 and a scalar
        x a constant of one scale or one per output column, or that constant alone (with a new
        activation scale 1.0: a_scale x b_scale is then b_scale exactly)."""
        n = product.rhs.type.get_shape()[1]

        def per_column(v: SSAValue) -> bool:
            w = constant_array(v, self.weights)
            return w is not None and (w.size == 1 or w.shape == (n,))

        if graph.dtype_of(scale.type) is not DType.FLOAT32:
            return None
        if per_column(scale):
            one = make_constant(np.ones((), np.float32), "unit_scale", self.weights, 1)
            return one, one.result, scale
        if isinstance(op := scale.owner, graph.MulOp):
            for a, b in ((op.lhs, op.rhs), (op.rhs, op.lhs)):
                if _is_scalar(a) and per_column(b):
                    return a, b
        return None

    def bias(self, mul: graph.MulOp) -> tuple[SSAValue | None, Operation]:
        """(bias, the op the fused one replaces): the Add of a float32 constant [N] that is the
        Mul's only use, or (None, the Mul)."""
        add = next(iter(mul.result.uses)).operation if single_use(mul.result) else None
        if not isinstance(add, graph.AddOp) or graph.activation_of(add) is not None \
                or add.result.type != mul.result.type:
            return None, mul
        n = mul.result.type.get_shape()[-1]
        for c in (add.lhs, add.rhs):
            w = constant_array(c, self.weights)
            if c is not mul.result and w is not None and w.dtype.name == "float32" and w.shape == (n,):
                return c, add
        return None, mul


@register_pass
@dataclass(frozen=True)
class FuseMatMulIntegerToFloat(GraphPass):
    """MatMulInteger + Cast + scale Mul (+ bias Add) -> quant.matmul_integer_to_float."""

    name = "fuse-matmul-integer-to-float"

    def rewrite(self, module: ModuleOp, weights: WeightTable, stats: PassStats) -> bool:
        return apply_patterns(module, [FuseDequantization(weights, stats)])
