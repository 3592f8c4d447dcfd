"""MaxPool / AveragePool -> pad + sliding-window kernel (float32 or float64; int8 / uint8 MaxPool through
float32 copies); MaxPool with Indices -> the same kernel also tracking the argmax; global pools ->
per-plane reductions."""
from __future__ import annotations

import functools

import numpy as np
from xdsl.pattern_rewriter import PatternRewriter, op_type_rewrite_pattern

from pyflame_rt.dialects import graph_nn as nn, graph_pool_indices as pi
from pyflame_rt.dialects.symbolic import dim_mul, numel
from pyflame_rt.dtype import DType
from pyflame_rt.limits import check_compile_array
from pyflame_rt.targets.cpu.lowerings.pattern import GraphToKernelPattern
from pyflame_rt.targets.cpu.lowerings.conv import (
    ArgmaxOutput, as_2d, emit_window, padded_input, require_float32, windowed_2d)
from pyflame_rt.targets.cpu.lowerings.normalization import emit_plane


def window_counts(size: int, out: int, k: int, s: int, d: int, pb: int, pe: int, include_pad: bool):
    """Per output position: how many taps fall inside the input (or its explicit padding)."""
    lo, hi = (-pb, size + pe) if include_pad else (0, size)
    check_compile_array(out * k * 8, f"an average pool window table ({out} outputs x {k} taps)")
    taps = np.arange(out)[:, None] * s - pb + np.arange(k)[None, :] * d
    return ((taps >= lo) & (taps < hi)).sum(axis=1)


# max pooled through float32: exact for these types (the max is one of the inputs)
POOLED_AS_FLOAT32 = (DType.INT8, DType.UINT8)
MAX_POOLS = (nn.MaxPoolOp, pi.MaxPoolWithIndicesOp)


class LowerPool(GraphToKernelPattern):
    float32_only = (nn.MaxPoolOp, nn.AveragePoolOp, pi.MaxPoolWithIndicesOp)

    @op_type_rewrite_pattern
    def match_and_rewrite(self, op: nn.MaxPoolOp | nn.AveragePoolOp | pi.MaxPoolWithIndicesOp, rewriter: PatternRewriter) -> None:
        self.convert(op, rewriter)

    def lower(self, L, op) -> None:
        expect_pooled_extent(L, op, L.shapes[op.input])
        dt = L.dtype(op.result)
        if dt in (DType.FLOAT32, DType.FLOAT64):
            _emit_pool(L, op, L.loc(op.input), L.result_loc(op.result), dt)
            return
        if not isinstance(op, MAX_POOLS) or dt not in POOLED_AS_FLOAT32:
            require_float32(L, op)
        x_f32, out_f32 = (L.new_buffer(dim_mul(numel(L.shapes[v]), 4)) for v in (op.input, op.result))
        _convert(L, "cast", L.loc(op.input), dt, x_f32, DType.FLOAT32, L.shapes[op.input])
        _emit_pool(L, op, x_f32, out_f32)
        # a window wholly in the padding yields -inf: the type's lowest value, as onnxruntime gives
        info = np.iinfo(dt.value)
        _convert(L, "clip", out_f32, DType.FLOAT32, out_f32, DType.FLOAT32, L.shapes[op.result],
                 (float(info.min), float(info.max)))
        _convert(L, "cast", out_f32, DType.FLOAT32, L.result_loc(op.result), dt, L.shapes[op.result])


def _convert(L, ew_op: str, src, src_dt: DType, dst, dst_dt: DType, shape, params: tuple = ()) -> None:
    """dst = ew_op(src) over a contiguous tensor, one flat loop."""
    L.emit_strided(ew_op, [src], (src_dt,), [[1]], dst, (numel(shape),), dst_dt, params)


def _emit_pool(L, op, x, out, dtype: DType = DType.FLOAT32) -> None:
    """Pad the float32 (or float64) input `x` and run the window kernel into `out`."""
    x_shape, out_shape, strides, dilations, pads = windowed_2d(L, op, "pooling", max_spatial=3)
    _, kernel = as_2d(L.shapes[op.input], op.ints("kernel_shape"), 1)
    is_max = isinstance(op, MAX_POOLS)
    nsp = len(kernel)
    # ceil_mode: extend the end padding until every window lies inside the padded input
    full = list(pads)
    for i in range(nsp):
        need = (out_shape[2 + i] - 1) * strides[i] + (kernel[i] - 1) * dilations[i] + 1
        full[nsp + i] = max(pads[nsp + i], need - x_shape[2 + i] - pads[i])
    xp, xp_shape = padded_input(L, x, x_shape, full, value=float("-inf") if is_max else 0.0, dtype=dtype)
    weights = None
    if not is_max:
        include = op.count_include_pad.value.data
        cnt = [window_counts(x_shape[2 + i], out_shape[2 + i], kernel[i], strides[i], dilations[i],
                             pads[i], pads[nsp + i], include) for i in range(nsp)]
        inv = 1.0 / np.maximum(functools.reduce(np.multiply.outer, cnt), 1)
        weights = L.add_weight("avg_pool_inv_count", inv.astype(dtype.numpy))
    argmax = None
    if isinstance(op, pi.MaxPoolWithIndicesOp):
        argmax = ArgmaxOutput(L.result_loc(op.indices), tuple(x_shape), tuple(pads[:nsp]), op.column_major)
    emit_window(L, "max" if is_max else "avg", xp, xp_shape, out, out_shape,
                weights=weights, kernel=kernel, strides=strides, dilations=dilations, argmax=argmax, dtype=dtype)


def expect_pooled_extent(L, op, nchw: tuple) -> None:
    """A pool of an input with an empty channel or spatial dim fails at run time, as in onnxruntime
    (only the batch may be 0); nchw: the input's shape in ONNX's layout."""
    L.expect_nonempty(numel(nchw[1:]), f"pooling an input of shape [{', '.join(map(str, nchw))}]: only the "
                                       "batch may be 0", nchw[0])


class LowerGlobalPool(GraphToKernelPattern):
    float32_only = (nn.GlobalAveragePoolOp, nn.GlobalMaxPoolOp)

    @op_type_rewrite_pattern
    def match_and_rewrite(self, op: nn.GlobalAveragePoolOp | nn.GlobalMaxPoolOp, rewriter: PatternRewriter) -> None:
        self.convert(op, rewriter)

    def lower(self, L, op) -> None:
        shape = L.shapes[op.input]
        expect_pooled_extent(L, op, shape)
        mode = "mean" if isinstance(op, nn.GlobalAveragePoolOp) else "max"
        emit_plane(L, op, mode, L.loc(op.input), L.result_loc(op.result), shape[0], shape[1], numel(shape[2:]))


PATTERNS = (LowerPool, LowerGlobalPool)
