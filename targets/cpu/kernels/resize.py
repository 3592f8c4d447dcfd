"""Resize of the two trailing dims through per-axis tables (computed at compile time, or at run time
by `resize_table_kernel` when a dim or the scale is known only then).

For every output row index oh the tables give two source rows and a weight
(h0, h1, lh), likewise (w0, w1, lw) per output column, so one kernel serves
every coordinate transformation and nearest rounding mode: nearest has
h0 == h1 and weight 0. Linear: out = lerp(lerp(x[h0,w0], x[h0,w1], lw),
lerp(x[h1,w0], x[h1,w1], lw), lh). One output row per work item; the columns
are gathered element by element.
"""
from __future__ import annotations

from dataclasses import dataclass

from xdsl.dialects import arith, func
from xdsl.dialects.builtin import f32, f64, i64
from xdsl.ir import SSAValue

from pyflame_rt.targets.cpu.kernel_builder import KernelBuilder, Signature

RESIZE_FIELDS = ("x", "out", "h0", "h1", "lh", "w0", "w1", "lw", "in_h", "in_w", "out_h", "out_w")
# one axis's tables (first and second source index, weight of the second) per output index
RESIZE_TABLE_FIELDS = ("i0", "i1", "w", "scales", "in_size", "out_size", "scale_index")


@dataclass(frozen=True)
class ResizeSpec:
    linear: bool

    @property
    def name(self) -> str:
        return f"resize_{'linear' if self.linear else 'nearest'}"


def resize_kernel(spec: ResizeSpec) -> func.FuncOp:
    kb = KernelBuilder(spec.name, Signature.of(RESIZE_FIELDS, buffers=RESIZE_FIELDS[:8]))
    f = kb.fields
    x, out, h0t, h1t, lht, w0t, w1t, lwt = (f[n] for n in RESIZE_FIELDS[:8])
    with kb.loop(kb.begin, kb.end) as item:
        oh = kb.rem(item.iv, f["out_h"])
        plane = kb.mul(kb.div(item.iv, f["out_h"]), kb.mul(f["in_h"], f["in_w"]))
        row0 = kb.add(plane, kb.mul(kb.load(h0t, oh, elem=i64), f["in_w"]))
        out_row = kb.mul(item.iv, f["out_w"])
        if spec.linear:
            row1 = kb.add(plane, kb.mul(kb.load(h1t, oh, elem=i64), f["in_w"]))
            lh = kb.load(lht, oh)
        with kb.loop(0, f["out_w"]) as ow:
            w0 = kb.load(w0t, ow.iv, elem=i64)
            top = kb.load(x, kb.add(row0, w0))
            if spec.linear:
                w1 = kb.load(w1t, ow.iv, elem=i64)
                lw = kb.load(lwt, ow.iv)
                top = kb.fma(lw, kb.fsub(kb.load(x, kb.add(row0, w1)), top), top)
                bottom = kb.load(x, kb.add(row1, w0))
                bottom = kb.fma(lw, kb.fsub(kb.load(x, kb.add(row1, w1)), bottom), bottom)
                top = kb.fma(lh, kb.fsub(bottom, top), top)
            kb.store(top, out, kb.add(out_row, ow.iv))
    return kb.finish()


@dataclass(frozen=True)
class ResizeTableSpec:
    """The tables of one axis, computed at run time: the ONNX coordinate transform `coordinate_mode`
    of each output index, rounded by `nearest_mode` (None: linear, the two neighbours and the weight
    of the second). With `read_scale` the scale is element `scale_index` of the float32 `scales`
    tensor, else out_size / in_size. Coordinates are computed in float64, like the compile-time
    tables."""

    coordinate_mode: str
    nearest_mode: str | None
    read_scale: bool

    @property
    def name(self) -> str:
        rounding = self.nearest_mode or "linear"
        return f"resize_table_{self.coordinate_mode}_{rounding}{'_scaled' if self.read_scale else ''}"


def _round(kb: KernelBuilder, x: SSAValue, mode: str) -> SSAValue:
    half = kb.vconst(0.5, f64)
    if mode == "round_prefer_floor":
        return kb.intrinsic("llvm.ceil", kb.fsub(x, half))
    if mode == "round_prefer_ceil":
        return kb.intrinsic("llvm.floor", kb.fadd(x, half))
    return kb.intrinsic(f"llvm.{mode}", x)


def _source_coordinate(kb: KernelBuilder, spec: ResizeTableSpec, o, in_f, out_f, scale, out_size) -> SSAValue:
    """ONNX coordinate_transformation_mode: output index o -> input coordinate (float64)."""
    half, zero, one = kb.vconst(0.5, f64), kb.vconst(0.0, f64), kb.vconst(1.0, f64)
    several = kb.cmp("sgt", out_size, kb.const(1))
    mode = spec.coordinate_mode
    if mode == "asymmetric":
        return kb.fdiv(o, scale)
    if mode == "align_corners":
        return kb.select(several, kb.fdiv(kb.fmul(o, kb.fsub(in_f, one)), kb.fsub(out_f, one)), zero)
    x = kb.fsub(kb.fdiv(kb.fadd(o, half), scale), half)
    if mode == "pytorch_half_pixel":
        return kb.select(several, x, zero)
    if mode == "half_pixel_symmetric":
        adjustment = kb.fdiv(out_f, kb.fmul(scale, in_f))
        return kb.fadd(kb.fmul(kb.fmul(in_f, half), kb.fsub(one, adjustment)), x)
    assert mode == "half_pixel", mode
    return x


def resize_table_kernel(spec: ResizeTableSpec) -> func.FuncOp:
    kb = KernelBuilder(spec.name, Signature.of(RESIZE_TABLE_FIELDS, buffers=RESIZE_TABLE_FIELDS[:4]))
    f = kb.fields
    in_f, out_f = (kb._ins(arith.SIToFPOp(f[n], f64)) for n in ("in_size", "out_size"))
    scale = (kb._ins(arith.ExtFOp(kb.load(f["scales"], f["scale_index"]), f64)) if spec.read_scale
             else kb.fdiv(out_f, in_f))
    last = kb.sub(f["in_size"], kb.const(1))
    with kb.loop(kb.begin, kb.end) as item:
        o = kb._ins(arith.SIToFPOp(item.iv, f64))
        x = _source_coordinate(kb, spec, o, in_f, out_f, scale, f["out_size"])
        if spec.nearest_mode is not None:
            x = _round(kb, x, spec.nearest_mode)
        else:
            x = kb.fmax(kb.vconst(0.0, f64), kb._ins(arith.MinnumfOp(x, kb._ins(arith.SIToFPOp(last, f64)))))
        first = kb.intrinsic("llvm.fptosi.sat", kb.intrinsic("llvm.floor", x), result_type=i64, overloads=[i64, f64])
        first = kb.max(kb.const(0), kb.min(first, last))
        second = first if spec.nearest_mode is not None else kb.min(kb.add(first, kb.const(1)), last)
        weight = (kb.fconst(0.0) if spec.nearest_mode is not None
                  else kb._ins(arith.TruncFOp(kb.fsub(x, kb._ins(arith.SIToFPOp(first, f64))), f32)))
        kb.store(first, f["i0"], item.iv, elem=i64)
        kb.store(second, f["i1"], item.iv, elem=i64)
        kb.store(weight, f["w"], item.iv)
    return kb.finish()
