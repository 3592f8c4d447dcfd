"""Conv (1-D to 3-D) -> (pad) + im2col into packed panels + the register-blocked GEMM; depthwise -> window.
float64 convolutions (depthwise ones too) take the im2col + GEMM path with the GEMM's F64 panels.

Per (image, group) the GEMM computes out[M/G, P] = W[M/G, K] @ cols[K, P] with
K = C/G*KD*KH*KW and P = OD*OH*OW (1-D and 2-D convolutions have one depth tap),
so the result is NCHW without a transpose. The weights are A (read in place at compile-time-fixed strides), the bias (a constant, or a
run-time vector read in place) is a per-row epilogue, and the optional `residual` (read like the output) and
`activation` (relu) are applied in registers. Convolutions with one input channel
per group (depthwise) use the sliding-window kernel instead, vectorized along the
output width; a residual is added there by an elementwise pass over the output.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from xdsl.pattern_rewriter import PatternRewriter, op_type_rewrite_pattern

from pyflame_rt.dialects import graph, graph_nn as nn
from pyflame_rt.dialects.symbolic import dim_mul, numel
from pyflame_rt.dtype import DType
from pyflame_rt.errors import UnsupportedOperatorError
from pyflame_rt.targets.cpu.kernels.elementwise import activation_spelling
from pyflame_rt.targets.cpu.kernels.gemm import GemmSpec
from pyflame_rt.targets.cpu.kernels.im2col import IM2COL_FIELDS, Im2colSpec, im2col_kernel
from pyflame_rt.targets.cpu.kernels.window import ARGMAX_FIELDS, WINDOW_FIELDS, WindowSpec, window_kernel
from pyflame_rt.targets.cpu.lowerings.pattern import GraphToKernelPattern
from pyflame_rt.targets.cpu.lowerings.movement import emit_pad

if TYPE_CHECKING:
    from pyflame_rt.targets.cpu.lower_graph import Loc


def as_2d(shape, vals, fill):
    """1-D windowed ops run as 2-D with a unit height."""
    return (shape[:2] + (1,) + tuple(shape[2:]), [fill] + vals) if len(shape) == 3 else (tuple(shape), vals)


def windowed_2d(L, op, what: str, max_spatial: int = 2):
    """The 2-D view of a windowed op (3-D ops up to `max_spatial` stay 3-D): input / output shapes,
    strides, dilations, pads."""
    shape = L.shapes[op.operands[0]]
    if not 1 <= len(shape) - 2 <= max_spatial:
        dims = "1-D and 2-D" if max_spatial == 2 else "1-D to 3-D"
        raise UnsupportedOperatorError(f"the CPU backend supports {dims} {what}, not {len(shape) - 2}-D")
    x_shape, strides = as_2d(shape, op.ints("strides"), 1)
    _, dilations = as_2d(shape, op.ints("dilations"), 1)
    out_shape, _ = as_2d(L.shapes[op.results[0]], [], 0)
    return x_shape, out_shape, strides, dilations, pads_2d(op.ints("pads"), len(shape))


def pads_2d(pads: list[int], rank: int) -> list[int]:
    return [0, pads[0], 0, pads[1]] if rank == 3 else pads


def padded_input(L, x, shape, pads: list[int], value: float = 0.0, dtype: DType = DType.FLOAT32):
    """The input storage `x`, padded on the spatial dims when any pad is non-zero."""
    if not any(pads):
        return x, shape
    nsp = len(shape) - 2
    return emit_pad(L, x, shape, [0, 0, *pads[:nsp], 0, 0, *pads[nsp:]], value=value, dtype=dtype.numpy)


def require_float32(L, op, also: tuple[DType, ...] = ()) -> DType:
    """The op's float type: float32, or one of `also` (float64 where the kernels take it)."""
    dtype = L.dtype(op.results[0])
    if dtype is not DType.FLOAT32 and dtype not in also:
        raise UnsupportedOperatorError(f"the CPU backend runs {op.name} on float32 only, not {dtype.value}")
    return dtype


def constant_operand(L, v, what: str) -> np.ndarray:
    arr = L.const_value(v)
    if arr is None:
        raise UnsupportedOperatorError(f"the CPU backend needs a constant {what}")
    return arr.astype(np.float32)


@dataclass(frozen=True)
class ArgmaxOutput:
    """Where a max-pool window kernel also stores each window's argmax: int64 offsets into the
    unpadded input of `shape` (spatial dims row-major, or column-major), padded by `pads_begin`."""
    out: "Loc"
    shape: tuple
    pads_begin: tuple
    column_major: bool

    def fields(self, strides, dilations) -> dict:
        d, h, w = _depth_view(self.shape)[2:]
        isd, ish, isw = (1, d, d * h) if self.column_major else (h * w, w, 1)
        pd, ph, pw = _depth_view(self.pads_begin, 0)
        return {"indices": self.out, "plane_size": d * h * w, "sd": _depth_view(strides, 1)[0],
                "dd": _depth_view(dilations, 1)[0], "idx_bias": -(pd * isd + ph * ish + pw * isw),
                "isd": isd, "ish": ish, "isw": isw}


def conv_bias(L, v, dtype: DType = DType.FLOAT32) -> Loc | None:
    """Storage of a Conv bias: a constant joins the weights, a run-time vector (a graph input or a
    computed value) is read where it is; either way the kernel's epilogue adds it."""
    if v is None:
        return None
    arr = L.const_value(v)
    return L.add_weight("bias", arr.astype(dtype.numpy)) if arr is not None else L.loc(v)


def emit_window(L, spec_op: str, xp, xp_shape, out, out_shape, *, weights: Loc | None = None, bias: Loc | None = None, kernel, strides,
                dilations, m_per_g: int = 1, activation: str = "none", argmax: ArgmaxOutput | None = None,
                dtype: DType = DType.FLOAT32) -> None:
    """2-D windows, or 3-D ones (5-D shapes, three kernel dims): a depth tap loop over planes;
    float32, or float64 (pools)."""
    (n, c, dp, hp, wp), (od, oh, ow) = _depth_view(xp_shape), _depth_view(out_shape)[2:]
    m = out_shape[1]
    kd, kh, kw = _depth_view(kernel, 1)
    sd, sh, sw = _depth_view(strides, 1)
    dd, dh, dw = _depth_view(dilations, 1)
    width = L.target.vector_width * 4 // dtype.itemsize if sw == 1 else 1
    spec = WindowSpec(spec_op, kh, kw, width, bias is not None, activation, kd, argmax is not None, dtype)
    name = L.kernel(spec.name, lambda: window_kernel(spec))
    f = {"x": xp, "w": weights if weights is not None else L.null_buffer, "out": out, "bias": bias if bias is not None else L.null_buffer,
         "m": m, "m_per_g": m_per_g, "cg": 1, "ch_stride": dp * hp * wp, "x_bs": dim_mul(c, dp * hp * wp), "wp": wp,
         "oh": oh, "ow": ow, "sh": sh, "sw": sw, "dh": dh, "dw": dw, "od": od, "sd_stride": sd * hp * wp,
         "dd_stride": dd * hp * wp}
    names = WINDOW_FIELDS
    if argmax is not None:
        f.update(argmax.fields(strides, dilations))
        names += ARGMAX_FIELDS
    L.call(name, [f[k] for k in names], dim_mul(n, m * od * oh), work_per_item=ow * kd * kh * kw)


def _depth_view(vals, fill=None) -> tuple:
    """A 2-D shape [N, C, H, W] (or H, W values) with a unit depth inserted; 3-D ones unchanged."""
    vals = tuple(vals)
    if fill is None:
        return vals if len(vals) == 5 else vals[:2] + (1,) + vals[2:]
    return vals if len(vals) == 3 else (fill,) + vals


class LowerConv(GraphToKernelPattern):
    float32_only = (nn.ConvOp,)

    @op_type_rewrite_pattern
    def match_and_rewrite(self, op: nn.ConvOp, rewriter: PatternRewriter) -> None:
        self.convert(op, rewriter)

    def lower(self, L, op: nn.ConvOp) -> None:
        dtype = require_float32(L, op, also=(DType.FLOAT64,))
        x_shape, out_shape, strides, dilations, pads = windowed_2d(L, op, "Conv", max_spatial=3)
        w_shape, _ = as_2d(L.shapes[op.weight], [], 0)
        if not all(isinstance(d, int) for d in w_shape):
            raise UnsupportedOperatorError(f"the CPU backend needs a static Conv weight shape, got {list(map(str, w_shape))}")
        # [M, Cg*KD*KH*KW] row-major either way: a constant is added to the weights, a fed weight is read in place
        w = L.const_value(op.weight)
        w_loc = L.add_weight("conv_weight", w.astype(dtype.numpy)) if w is not None else L.loc(op.weight)
        bias = conv_bias(L, op.bias, dtype)
        act = activation_spelling(graph.activation_of(op)) or "none"  # kernel specs name no activation "none"
        g = op.groups
        m, cg, *kernel = w_shape
        xp, xp_shape = padded_input(L, L.loc(op.input), x_shape, pads, dtype=dtype)
        if cg == 1 and g > 1 and dtype is DType.FLOAT32:
            out = L.result_loc(op.result)
            emit_window(L, "conv", xp, xp_shape, out, out_shape, weights=w_loc, bias=bias,
                        kernel=kernel, strides=strides, dilations=dilations, m_per_g=m // g,
                        activation="none" if op.residual is not None else act)
            if op.residual is not None:
                size = (numel(L.shapes[op.result]),)  # same shape, both contiguous: one flat loop
                L.emit_strided("add", [out, L.loc(op.residual)], (DType.FLOAT32,) * 2, [[1, 1]], out, size,
                               DType.FLOAT32, activation=activation_spelling(graph.activation_of(op)))
            return
        (n, c, dp, hp, wp), (od, oh, ow) = _depth_view(xp_shape), _depth_view(out_shape)[2:]
        (kd, kh, kw), (sd, sh, sw), (dd, dh, dw) = (_depth_view(v, 1) for v in (kernel, strides, dilations))
        k, p, mg = cg * kd * kh * kw, od * oh * ow, m // g
        width = L.target.vector_width * 4 // dtype.itemsize
        gspec = GemmSpec.for_target(width, L.target.num_vector_registers, "row", act)
        ispec = Im2colSpec(gspec.width, gspec.nvec, kh, kw, kd, dtype)
        npanels = -(-p // ispec.nr)
        images_groups = dim_mul(n, g)
        cols = L.new_buffer(dim_mul(images_groups, npanels * ispec.nr * k * dtype.itemsize))
        name = L.kernel(ispec.name, lambda: im2col_kernel(ispec))
        plane = dp * hp * wp
        f = {"x": xp, "bp": cols, "groups": g, "x_bs": dim_mul(c, plane), "x_gs": cg * plane,
             "ch_stride": plane, "cg": cg, "kh_stride": dh * wp, "kw_stride": dw, "ow": ow, "oh_stride": sh * wp,
             "ow_stride": sw, "p": p, "npanels": npanels, "k": k, "oh": oh, "kd_stride": dd * hp * wp,
             "od_stride": sd * hp * wp}
        L.call(name, [f[key] for key in IM2COL_FIELDS], dim_mul(images_groups, npanels), work_per_item=k * ispec.nr)
        out, residual = L.result_and_residual_locs(op, k)
        L.emit_gemm(a=None, a_loc=w_loc, a_strides=(k, 1), m=mg, k=k, n=p,
                    out=out, b_packed=cols, b_batch=images_groups, batch=n, groups=g, a_gs=mg * k, c_gs=mg * p,
                    c_bs=m * p, row_bias=bias, activation=act, residual=residual, dtype=dtype)


PATTERNS = (LowerConv,)
