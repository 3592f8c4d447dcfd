"""quant.matmul_integer by a constant int8 weight -> the integer GEMM (kernels/gemm_int8.py) with the
weight packed now (quant.matmul_integer_to_float: the same, dequantizing); quant.matmul / gemm /
conv by one -> the same GEMM requantizing (a Conv through im2col); quant.add of one shape -> one
requantizing pass (kernels/quant_add.py);
quant.dynamic_quantize -> its range and apply kernels (kernels/dynamic_quantize.py).
The quant ops without a kernel were expanded by `expand-quant`."""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from xdsl.pattern_rewriter import PatternRewriter, op_type_rewrite_pattern

from pyflame_rt.dialects import graph, quant
from pyflame_rt.dialects.graph_attrs import Layout
from pyflame_rt.dialects.symbolic import Dim, dim_mul, numel
from pyflame_rt.errors import UnsupportedOperatorError
from pyflame_rt.targets.cpu.kernels.dynamic_quantize import (
    APPLY_FIELDS, DQ_BLOCK, RANGE_FIELDS, apply_kernel, range_kernel)
from pyflame_rt.targets.cpu.kernels.elementwise import activation_spelling
from pyflame_rt.targets.cpu.kernels.gemm_int8 import (
    A_OFFSET, Int8GemmSpec, int8_gemm_kernel, pack_int8_b, panel_block, work_items)
from pyflame_rt.targets.cpu.kernels.quant_add import QADD_BLOCK, QADD_FIELDS, QuantAddSpec, quant_add_kernel
from pyflame_rt.targets.cpu.lowerings.movement import emit_copy, emit_pad
from pyflame_rt.targets.cpu.lowerings.pattern import GraphToKernelPattern

if TYPE_CHECKING:
    from pyflame_rt.targets.cpu.lower_graph import Loc


class LowerMatMulInteger(GraphToKernelPattern):
    """quant.matmul_integer -> the integer GEMM storing int32; quant.matmul_integer_to_float -> the
    same GEMM dequantizing in its epilogue (the scales' product, the bias, the fused activation)."""

    def match_and_rewrite(self, op, rewriter: PatternRewriter) -> None:
        if isinstance(op, (quant.MatMulIntegerOp, quant.MatMulIntegerToFloatOp)):
            self.convert(op, rewriter)

    def lower(self, L, op: quant.MatMulIntegerOp | quant.MatMulIntegerToFloatOp) -> None:
        b = op.constant_weight(L.const_value)
        dequant = isinstance(op, quant.MatMulIntegerToFloatOp)
        activation = activation_spelling(graph.activation_of(op)) if dequant else None
        spec = Int8GemmSpec.for_features(L.target.features, dequant=dequant, k=0 if b is None else b.shape[0],
                                         activation=activation or "none")
        if b is None or spec is None or len(L.shapes[op.lhs]) < 2:
            raise UnsupportedOperatorError(f"the CPU backend has no integer GEMM for this {op.name}")
        (k, n), m = b.shape, numel(L.shapes[op.lhs][:-1])
        packed, colsum = pack_int8_b(b, spec)
        npanels = packed.shape[0]
        f = {"a": L.loc(op.lhs), "b": L.add_weight("packed_b_int8", packed), "c": L.result_loc(op.result),
             "colsum": L.add_weight("colsum", colsum), "a_zp": L.loc(op.lhs_zero_point), "m": m, "n": n,
             "kg": k // spec.group, "a_rs": k // spec.group, "c_rs": n, "npanels": npanels,
             "pblock": panel_block(k // spec.group, npanels, spec)}
        if dequant:
            f |= _dequantization(L, op, n, npanels * spec.nr)
        name = L.kernel(spec.name, lambda: int8_gemm_kernel(spec))
        L.call(name, [f[x] for x in spec.signature.fields], work_items(m, npanels, f["pblock"], spec),
               work_per_item=spec.mr * spec.nr * k // 4 * min(f["pblock"], npanels))


def _dequantization(L, op: quant.MatMulIntegerToFloatOp, n: int, padded: int) -> dict:
    """The dequantizing epilogue's fields: A's scale, and B's scales and the bias per column, padded."""
    per_column = []
    for v, absent in ((op.rhs_scale, 1.0), (op.bias, 0.0)):
        column = np.zeros(padded, np.float32)
        column[:n] = absent if v is None else np.broadcast_to(L.const_value(v).reshape(-1), (n,))
        per_column.append(column)
    b_scale, bias = per_column
    return {"a_scale": L.loc(op.lhs_scale), "b_scale": L.add_weight("b_scale", b_scale),
            "bias": L.add_weight("bias", bias)}


def emit_requantizing_gemm(L, op: quant.QuantizedComputeOp, a: Loc, m: Dim, b: np.ndarray, bias: np.ndarray | None,
                           c: Loc, conv: dict | None = None) -> None:
    """C[m, n] (8-bit, op.type) = requantized A[m, K] (8-bit, op's first input type) @ B (the constant
    int8 [K, N]) + bias (int32 [N] or None): the integer GEMM with A's zero point (+ A_OFFSET for
    an int8 A) and the bias taken out of the column sums at compile time (A's zero point word is
    1), the multipliers a_scale x b_scale / c_scale per column. `conv`: A is a convolution's input,
    read as its im2col rows, given by these CONV_FIELDS (in bytes)."""
    (k, n), (a_type, b_type) = b.shape, op.input_types.data[:2]
    signed_a = a_type.kind is quant.Storage.I8
    spec = Int8GemmSpec.for_features(L.target.features, requant=True, signed_a=signed_a, conv=conv is not None)
    if spec is None:
        raise UnsupportedOperatorError(f"the CPU backend has no integer GEMM for this {op.name}")
    packed, colsum = pack_int8_b(b, spec)
    npanels = packed.shape[0]
    colsum *= np.int32(a_type.zero_point_values[0] + (A_OFFSET if signed_a else 0))
    if bias is not None:
        colsum[:n] -= bias.astype(np.int32)
    multiplier = np.zeros(npanels * spec.nr, np.float32)
    multiplier[:n] = (np.float32(a_type.scale_values[0]) * np.array(b_type.scale_values, np.float32)
                      / np.float32(op.type.scale_values[0]))
    lo, hi = op.type.bounds
    f = {"a": a, "b": L.add_weight("packed_b_int8", packed), "c": c, "colsum": L.add_weight("colsum", colsum),
         "a_zp": L.add_weight("unit_zero_point", np.ones(1, np.uint8)), "m": m, "n": n, "kg": k // spec.group,
         "a_rs": k // spec.group, "c_rs": n, "npanels": npanels, "pblock": panel_block(k // spec.group, npanels, spec),
         "multiplier": L.add_weight("multiplier", multiplier),
         "c_zp": op.type.zero_point_values[0], "c_min": int(lo), "c_max": int(hi)}
    if conv is not None:  # in A words
        f.update({x: v if x in ("kh", "kw", "oh", "ow") else v // spec.group for x, v in conv.items()}, a_rs=0)
    name = L.kernel(spec.name, lambda: int8_gemm_kernel(spec))
    L.call(name, [f[x] for x in spec.signature.fields], work_items(m, npanels, f["pblock"], spec),
           work_per_item=spec.mr * spec.nr * k // 4 * min(f["pblock"], npanels))


class LowerQuantizedMatMul(GraphToKernelPattern):
    """quant.matmul (a folded QDQ MatMul, QLinearMatMul) and quant.gemm (static INT8) -> the integer
    GEMM requantizing in its epilogue."""

    def match_and_rewrite(self, op, rewriter: PatternRewriter) -> None:
        if isinstance(op, (quant.MatMulOp, quant.GemmOp)):
            self.convert(op, rewriter)

    def lower(self, L, op: quant.MatMulOp | quant.GemmOp) -> None:
        b = op.constant_weight(L.const_value)
        a = op.operands[0]
        if b is None or len(L.shapes[a]) < 2:
            raise UnsupportedOperatorError(f"the CPU backend has no integer GEMM for this {op.name}")
        bias = L.const_value(op.bias) if isinstance(op, quant.GemmOp) and op.bias is not None else None
        emit_requantizing_gemm(L, op, L.loc(a), numel(L.shapes[a][:-1]), b, bias, L.result_loc(op.result))


class LowerQuantizedConv(GraphToKernelPattern):
    """quant.conv (2-D, one group) -> the requantizing integer GEMM of im2col rows by the weight:
    the 8-bit input is NHWC (an NCHW one is transposed), padded with its zero point (its channels
    too, to a multiple of 4, with zero weights); each output pixel's row is its window's KH x KW x C
    bytes, read in place by the GEMM (a pointwise stride-1 convolution's rows are the input's
    pixels); the GEMM writes [N, OH x OW, M]: NHWC, or transposed to NCHW."""

    @op_type_rewrite_pattern
    def match_and_rewrite(self, op: quant.ConvOp, rewriter: PatternRewriter) -> None:
        self.convert(op, rewriter)

    def lower(self, L, op: quant.ConvOp) -> None:
        w = op.constant_weight(L.const_value)
        x_shape, out_shape = L.shapes[op.input], L.shapes[op.result]
        if w is None or len(x_shape) != 4 or not all(isinstance(d, int) for d in x_shape[1:]):
            raise UnsupportedOperatorError(f"the CPU backend has no integer convolution for this {op.name}")
        window = op.window()
        (sh, sw), (dh, dw), (pt, pl, pb, pr) = window["strides"], window["dilations"], window["pads"]
        a_type = op.input_types.data[0]
        a_zp = a_type.zero_point_values[0]
        nchw = op.data_layout == Layout.NCHW
        nhwc = L.loc(op.input)
        if nchw:
            n, c, h, w_ = x_shape
            nhwc = L.new_buffer(dim_mul(n, c * h * w_))
            emit_copy(L, nhwc, L.loc(op.input), [(n, h * w_ * c, c * h * w_), (h * w_, c, 1), (c, 1, h * w_)],
                      item_bytes=1)
            x_shape = (n, h, w_, c)
        cp = -x_shape[3] % 4
        if pt or pl or pb or pr or cp:
            nhwc, x_shape = emit_pad(L, nhwc, x_shape, [0, pt, pl, 0, 0, pb, pr, cp], value=a_zp,
                                     dtype=quant.STORAGE_DTYPE[a_type.kind].numpy)
        (n, hp, wp, c) = x_shape
        m, _, kh, kw = w.shape
        oh, ow = out_shape[2:] if nchw else out_shape[1:3]
        p = oh * ow
        conv = None
        if (kh, kw, sh, sw) != (1, 1, 1, 1):
            # undilated columns: a window row's taps are one run of kw x c bytes, one tap for the kernel
            row_taps = 1 if dw == 1 else kw
            conv = {"kh": kh, "kw": row_taps, "cw": kw * c // row_taps, "tap_y": dh * wp * c, "tap_x": dw * c,
                    "oh": oh, "ow": ow, "img_stride": hp * wp * c, "y_stride": sh * wp * c, "x_stride": sw * c}
        b = np.zeros((m, kh, kw, c), np.int8)
        b[..., :c - cp] = w.transpose(0, 2, 3, 1)
        bias = L.const_value(op.bias) if op.bias is not None else None
        pixels = L.new_buffer(dim_mul(n, p * m)) if nchw else L.result_loc(op.result)
        emit_requantizing_gemm(L, op, nhwc, dim_mul(n, p), b.reshape(m, -1).T, bias, pixels, conv)
        if nchw:
            emit_copy(L, L.result_loc(op.result), pixels, [(n, m * p, p * m), (m, p, 1), (p, 1, m)], item_bytes=1)


class LowerQuantizedConvNHWC(LowerQuantizedConv):
    layout = "NHWC"


class LowerQuantizedAdd(GraphToKernelPattern):
    """quant.add of operands and result of one shape (`AddOp.same_shape_bytes`) -> one pass
    requantizing both operands to the result's type."""

    @op_type_rewrite_pattern
    def match_and_rewrite(self, op: quant.AddOp, rewriter: PatternRewriter) -> None:
        self.convert(op, rewriter)

    def lower(self, L, op: quant.AddOp) -> None:
        if not op.same_shape_bytes():
            raise UnsupportedOperatorError(f"the CPU backend has no integer kernel for this {op.name}")
        (ta, tb), ty = op.input_types.data, op.type
        spec = QuantAddSpec(tuple(t.kind is quant.Storage.I8 for t in (ta, tb, ty)), L.target.vector_width)
        y_scale = np.float32(ty.scale_values[0])
        multipliers = np.array([ta.scale_values[0], tb.scale_values[0]], np.float32) / y_scale
        lo, hi = ty.bounds
        n = numel(L.shapes[op.result])
        f = {"a": L.loc(op.lhs), "b": L.loc(op.rhs), "y": L.result_loc(op.result),
             "multipliers": L.add_weight("add_multipliers", multipliers), "n": n,
             "a_zp": ta.zero_point_values[0], "b_zp": tb.zero_point_values[0], "y_zp": ty.zero_point_values[0],
             "y_min": int(lo), "y_max": int(hi)}
        name = L.kernel(spec.name, lambda: quant_add_kernel(spec))
        L.call(name, [f[x] for x in QADD_FIELDS], ("ceildiv", n, QADD_BLOCK), work_per_item=QADD_BLOCK)


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


PATTERNS = (LowerMatMulInteger, LowerQuantizedMatMul, LowerQuantizedConv, LowerQuantizedConvNHWC, LowerQuantizedAdd,
            LowerDynamicQuantize)
