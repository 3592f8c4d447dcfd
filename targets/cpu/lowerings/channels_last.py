"""NHWC (channels-last) lowerings of Conv and the pools; `supports_nhwc` says which variants exist.

- 1x1 convolution, stride 1, no padding: one GEMM out[N*H*W, M] = X[N*H*W, C] @ W[C, M]
  on the input in place; W packed at compile time, bias per column, the residual (laid
  out like the output: [N*H*W, M]) and the activation in the epilogue.
- other group-1 convolutions: the same GEMM with W as [kh*kw*C, M] reading the input's
  implicit channels-last im2col (contiguous C-slices, zero taps for padding) while it packs
  A, so no column matrix is written.
- depthwise convolution (one input channel per group, M = C) and Max/AveragePool: the
  channels-last window kernel, vectorized over channels for any stride/dilation/padding;
  MaxPool also on int8 / uint8 (quantized codes), a vector of bytes per load.
- GlobalAverage/MaxPool: a mean/max over the H*W rows of [N, H*W, C].
- quant.conv: the integer GEMM of lowerings/quant.py, without its layout transposes.

`optimize-layout` converts exactly the ops `supports_nhwc` accepts.
"""
from __future__ import annotations

import numpy as np
from xdsl.pattern_rewriter import PatternRewriter, op_type_rewrite_pattern

from pyflame_rt.dialects import graph, quant
from pyflame_rt.dialects import graph_nn as nn
from pyflame_rt.dialects.symbolic import dim_mul
from pyflame_rt.dtype import DType
from pyflame_rt.targets.cpu.kernels.elementwise import activation_spelling
from pyflame_rt.targets.cpu.kernels.window_nhwc import (
    INTEGER_MAX_DTYPES, WINDOW_NHWC_FIELDS, WindowNHWCSpec, window_nhwc_kernel)
from pyflame_rt.targets.cpu.lowerings.pattern import GraphToKernelPattern
from pyflame_rt.targets.cpu.lowerings.conv import constant_operand
from pyflame_rt.targets.cpu.lowerings.pooling import expect_pooled_extent, window_counts
from pyflame_rt.targets.cpu.lowerings.reduce import emit_rows


def _is_constant(v) -> bool:
    return isinstance(v.owner, graph.ConstantOp)


def supports_nhwc(op) -> bool:
    """Whether the CPU backend has a channels-last kernel for this (NCHW-described) op."""
    if isinstance(op, quant.ConvOp):  # what expand-quant left: the integer GEMM computes it either way
        return True
    x = op.operands[0].type
    if len(x.get_shape()) != 4:
        return False
    if isinstance(op, nn.MaxPoolOp) and graph.dtype_of(x) in INTEGER_MAX_DTYPES:
        return True
    if graph.dtype_of(x) is not DType.FLOAT32:
        return False
    if not isinstance(op, nn.ConvOp):
        return isinstance(op, (nn.MaxPoolOp, nn.AveragePoolOp, nn.GlobalAveragePoolOp, nn.GlobalMaxPoolOp))
    m, cg = op.weight.type.get_shape()[:2]
    if not _is_constant(op.weight) or op.bias is not None and not _is_constant(op.bias):
        return False
    return op.groups == 1 or cg == 1 and m == op.groups


def _window_geometry(L, op):
    """(n, h, w, c), (oh, ow), strides, dilations, (pad top, pad left) of a 2-D NHWC windowed op."""
    n, h, w, c = L.shapes[op.operands[0]]
    _, oh, ow, _ = L.shapes[op.results[0]]
    pads = op.ints("pads")
    return (n, h, w, c), (oh, ow), op.ints("strides"), op.ints("dilations"), (pads[0], pads[1])


def _emit_window(L, kind: str, op, kernel, *, weights=None, bias=None, residual=None,
                 activation="none") -> None:
    (n, h, w, c), (oh, ow), st, dl, pad = _window_geometry(L, op)
    dtype = L.dtype(op.results[0])
    lanes = L.target.vector_width * DType.FLOAT32.itemsize // dtype.itemsize  # one vector register
    spec = WindowNHWCSpec(kind, kernel[0], kernel[1], lanes, bias is not None, activation,
                          has_residual=residual is not None, sw=st[1], dw=dl[1], dtype=dtype)
    name = L.kernel(spec.name, lambda: window_nhwc_kernel(spec))
    f = {"x": L.loc(op.operands[0]), "w": weights if weights is not None else L.null_buffer, "out": L.result_loc(op.results[0]),
         "bias": L.add_weight("bias", bias) if bias is not None else L.null_buffer,
         "residual": L.loc(residual) if residual is not None else L.null_buffer, "c": c, "h": h, "wi": w,
         "oh": oh, "ow": ow, "sh": st[0], "dh": dl[0], "ph": pad[0], "pw": pad[1]}
    L.call(name, [f[k] for k in WINDOW_NHWC_FIELDS], dim_mul(n, oh), work_per_item=dim_mul(ow, dim_mul(
        c, kernel[0] * kernel[1])))


class LowerConvNHWC(GraphToKernelPattern):
    layout = "NHWC"

    @op_type_rewrite_pattern
    def match_and_rewrite(self, op: nn.ConvOp, rewriter: PatternRewriter) -> None:
        self.convert(op, rewriter)

    def lower(self, L, op: nn.ConvOp) -> None:
        w = constant_operand(L, op.weight, "Conv weight")
        bias = constant_operand(L, op.bias, "Conv bias") if op.bias is not None else None
        act = activation_spelling(op.activation) or "none"
        m, cg, kh, kw = w.shape
        if op.groups > 1:  # depthwise: weights as [kh*kw, C]
            taps = np.ascontiguousarray(w.reshape(m, kh * kw).T)
            _emit_window(L, "conv", op, (kh, kw), weights=L.add_weight("dw_weight_nhwc", taps), bias=bias,
                         residual=op.residual, activation=act)
            return
        (n, h, wi, c), (oh, ow), st, dl, pad = _window_geometry(L, op)
        k = kh * kw * cg  # static: the input's channels c equal the weight's cg (a shape assumption)
        rows = dim_mul(n, oh * ow)
        conv_a = None
        if (kh, kw) != (1, 1) or st != [1, 1] or any(op.ints("pads")):
            conv_a = {"conv_c": c, "h": h, "wi": wi, "oh": oh, "ow": ow, "kw": kw, "sh": st[0], "sw": st[1],
                      "dh": dl[0], "dw": dl[1], "ph": pad[0], "pw": pad[1]}
        cat = _channel_concat_slice(L, op.result) if op.residual is None else None
        out, residual = L.result_and_residual_locs(op, k) if cat is None else (cat[0], None)
        L.emit_gemm(a=op.input, a_strides=(k, 1), m=rows, k=k, n=m, out=out,
                    b_const=w.transpose(2, 3, 1, 0).reshape(k, m), bias=bias, activation=act,
                    residual=residual, conv_a=conv_a, c_rs=m if cat is None else cat[1])


def _channel_concat_slice(L, v):
    """(storage, row stride) of v's channel slice in a channels-last Concat that is v's only
    use (a SqueezeNet fire module's expand convs): the conv writes its rows there directly
    and the Concat copies nothing for it. None when v is used otherwise or is a graph output."""
    uses = list(v.uses)
    if len(uses) != 1 or v in L.out_slot or v in L.locs:
        return None
    cat, index = uses[0].operation, uses[0].index
    if not isinstance(cat, nn.ConcatOp):
        return None
    shape = L.shapes[cat.result]
    channels = [L.shapes[u][-1] for u in cat.inputs[:index]]
    if cat.axis.value.data % len(shape) != len(shape) - 1 or not all(isinstance(c, int) for c in channels):
        return None
    return L.place_inside(v, cat.result, sum(channels) * L.dtype(v).itemsize), shape[-1]


class LowerPoolNHWC(GraphToKernelPattern):
    layout = "NHWC"

    @op_type_rewrite_pattern
    def match_and_rewrite(self, op: nn.MaxPoolOp | nn.AveragePoolOp, rewriter: PatternRewriter) -> None:
        self.convert(op, rewriter)

    def lower(self, L, op) -> None:
        n, h, w, c = L.shapes[op.input]
        expect_pooled_extent(L, op, (n, c, h, w))
        kernel = op.ints("kernel_shape")
        if isinstance(op, nn.MaxPoolOp):
            _emit_window(L, "max", op, kernel)
            return
        (_, h, w, _), (oh, ow), st, dl, _ = _window_geometry(L, op)
        pads, include = op.ints("pads"), op.count_include_pad.value.data
        cnt = [window_counts(size, out, kernel[i], st[i], dl[i], pads[i], pads[2 + i], include)
               for i, (size, out) in enumerate(((h, oh), (w, ow)))]
        inv = 1.0 / np.maximum(cnt[0][:, None] * cnt[1][None, :], 1)
        _emit_window(L, "avg", op, kernel, weights=L.add_weight("avg_pool_inv_count", inv.astype(np.float32)))


class LowerGlobalPoolNHWC(GraphToKernelPattern):
    layout = "NHWC"

    @op_type_rewrite_pattern
    def match_and_rewrite(self, op: nn.GlobalAveragePoolOp | nn.GlobalMaxPoolOp, rewriter: PatternRewriter) -> None:
        self.convert(op, rewriter)

    def lower(self, L, op) -> None:
        n, h, w, c = L.shapes[op.input]
        expect_pooled_extent(L, op, (n, c, h, w))
        kind = "mean" if isinstance(op, nn.GlobalAveragePoolOp) else "max"
        emit_rows(L, kind, L.loc(op.input), L.result_loc(op.result), (n, h * w, c), 1, 1, DType.FLOAT32)


PATTERNS = (LowerConvNHWC, LowerPoolNHWC, LowerGlobalPoolNHWC)
