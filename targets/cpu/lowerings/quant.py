"""quant.matmul_integer by a constant int8 weight -> the integer GEMM (kernels/gemm_int8.py) with the
weight packed now; quant.dynamic_quantize -> its range and apply kernels (kernels/dynamic_quantize.py).
The quant ops without a kernel were expanded by `expand-quant`."""
from __future__ import annotations

from xdsl.pattern_rewriter import PatternRewriter, op_type_rewrite_pattern

from pyflame_rt.dialects import quant
from pyflame_rt.dialects.symbolic import numel
from pyflame_rt.errors import UnsupportedOperatorError
from pyflame_rt.targets.cpu.kernels.dynamic_quantize import (
    APPLY_FIELDS, DQ_BLOCK, RANGE_FIELDS, apply_kernel, range_kernel)
import numpy as np

from pyflame_rt.targets.cpu.kernels.gemm_int8 import INT8_GEMM_FIELDS, Int8GemmSpec, int8_gemm_kernel, pack_int8_b
from pyflame_rt.targets.cpu.lowerings.pattern import GraphToKernelPattern


class LowerMatMulInteger(GraphToKernelPattern):
    @op_type_rewrite_pattern
    def match_and_rewrite(self, op: quant.MatMulIntegerOp, rewriter: PatternRewriter) -> None:
        self.convert(op, rewriter)

    def lower(self, L, op: quant.MatMulIntegerOp) -> None:
        b = op.constant_weight(L.const_value)
        spec = Int8GemmSpec.for_features(L.target.features)
        if b is None or spec is None or len(L.shapes[op.lhs]) < 2:
            raise UnsupportedOperatorError(f"the CPU backend has no integer GEMM for this {op.name}")
        (k, n), m = b.shape, numel(L.shapes[op.lhs][:-1])
        packed, colsum = pack_int8_b(b, spec)
        npanels = packed.shape[0]
        f = {"a": L.loc(op.lhs), "b": L.add_weight("packed_b_int8", packed), "c": L.result_loc(op.result),
             "colsum": L.add_weight("colsum", colsum), "a_zp": L.loc(op.lhs_zero_point), "m": m, "n": n,
             "kg": k // spec.group, "a_rs": k // spec.group, "c_rs": n, "npanels": npanels}
        name = L.kernel(spec.name, lambda: int8_gemm_kernel(spec))
        L.call(name, [f[x] for x in INT8_GEMM_FIELDS], ("mul", ("ceildiv", m, spec.mr), npanels),
               work_per_item=spec.mr * spec.nr * k // 4)


class LowerQuantizedMatMul(GraphToKernelPattern):
    """quant.matmul (a folded QDQ MatMul, QLinearMatMul) -> the integer GEMM requantizing in its
    epilogue by per-column multipliers a_scale x b_scale / y_scale."""

    @op_type_rewrite_pattern
    def match_and_rewrite(self, op: quant.MatMulOp, rewriter: PatternRewriter) -> None:
        self.convert(op, rewriter)

    def lower(self, L, op: quant.MatMulOp) -> None:
        b = op.constant_weight(L.const_value)
        spec = Int8GemmSpec.for_features(L.target.features, requant=True)
        if b is None or spec is None or len(L.shapes[op.lhs]) < 2:
            raise UnsupportedOperatorError(f"the CPU backend has no integer GEMM for this {op.name}")
        (k, n), m = b.shape, numel(L.shapes[op.lhs][:-1])
        a_type, b_type = op.input_types.data
        packed, colsum = pack_int8_b(b, spec)
        npanels = packed.shape[0]
        multiplier = np.zeros(npanels * spec.nr, np.float32)
        multiplier[:n] = (np.float32(a_type.scale_values[0]) * np.array(b_type.scale_values, np.float32)
                          / np.float32(op.type.scale_values[0]))
        lo, hi = op.type.bounds
        f = {"a": L.loc(op.lhs), "b": L.add_weight("packed_b_int8", packed), "c": L.result_loc(op.result),
             "colsum": L.add_weight("colsum", colsum),
             "a_zp": L.add_weight("a_zero_point", np.array([a_type.zero_point_values[0]], np.uint8)),
             "m": m, "n": n, "kg": k // spec.group, "a_rs": k // spec.group, "c_rs": n, "npanels": npanels,
             "multiplier": L.add_weight("multiplier", multiplier), "c_zp": op.type.zero_point_values[0],
             "c_min": int(lo), "c_max": int(hi)}
        name = L.kernel(spec.name, lambda: int8_gemm_kernel(spec))
        L.call(name, [f[x] for x in spec.signature.fields], ("mul", ("ceildiv", m, spec.mr), npanels),
               work_per_item=spec.mr * spec.nr * k // 4)


class LowerDynamicQuantize(GraphToKernelPattern):
    @op_type_rewrite_pattern
    def match_and_rewrite(self, op: quant.DynamicQuantizeOp, rewriter: PatternRewriter) -> None:
        self.convert(op, rewriter)

    def lower(self, L, op: quant.DynamicQuantizeOp) -> None:
        w, n = L.target.vector_width, numel(L.shapes[op.input])
        f = {"x": L.loc(op.input), "y": L.result_loc(op.result), "scale": L.result_loc(op.scale),
             "zp": L.result_loc(op.zero_point), "n": n}
        rk = L.kernel(f"dynamic_quantize_range_w{w}", lambda: range_kernel(w))
        L.call(rk, [f[x] for x in RANGE_FIELDS], 1)
        ak = L.kernel(f"dynamic_quantize_apply_w{w}", lambda: apply_kernel(w))
        L.call(ak, [f[x] for x in APPLY_FIELDS], ("ceildiv", n, DQ_BLOCK), work_per_item=DQ_BLOCK)


PATTERNS = (LowerMatMulInteger, LowerQuantizedMatMul, LowerDynamicQuantize)
