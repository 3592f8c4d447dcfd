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

import struct
from dataclasses import dataclass

from xdsl.dialects import arith, func
from xdsl.dialects.builtin import f32, f64, i64
from xdsl.ir import SSAValue

from pyflame_rt.targets.cpu.kernel_builder import KernelBuilder, Signature
from pyflame_rt.targets.cpu.kernels.interpolation import cubic_coefficients, to_int

RESIZE_FIELDS = ("x", "out", "h0", "h1", "lh", "w0", "w1", "lw", "in_h", "in_w", "out_h", "out_w")
# one axis's tables (first and second source index, weight of the second) per output index
RESIZE_TABLE_FIELDS = ("i0", "i1", "w", "scales", "roi", "status", "in_size", "out_size", "scale_index", "roi_start",
                       "roi_end", "code", "leading")


@dataclass(frozen=True)
class ResizeSpec:
    """mode: nearest / linear / cubic. With `extrapolation` (tf_crop_and_resize) a first table index
    < 0 marks an output row / column outside the input: those outputs are the extrapolation value."""

    mode: str
    extrapolation: float | None = None

    @property
    def name(self) -> str:
        crop = "" if self.extrapolation is None else f"_crop_{struct.pack('<d', self.extrapolation).hex()}"
        return f"resize_{self.mode}{crop}"

    @property
    def taps(self) -> int:
        return {"nearest": 1, "linear": 2, "cubic": 4}[self.mode]


def resize_kernel(spec: ResizeSpec) -> func.FuncOp:
    if spec.mode == "cubic":
        return _cubic_resize_kernel(spec)
    kb = KernelBuilder(spec.name, Signature.of(RESIZE_FIELDS, buffers=RESIZE_FIELDS[:8]))
    f = kb.fields
    x, out, h0t, h1t, lht, w0t, w1t, lwt = (f[n] for n in RESIZE_FIELDS[:8])
    linear = spec.mode == "linear"
    with kb.loop(kb.begin, kb.end) as item:
        oh = kb.rem(item.iv, f["out_h"])
        plane = kb.mul(kb.div(item.iv, f["out_h"]), kb.mul(f["in_h"], f["in_w"]))
        h0, outside_h = _first_index(kb, spec, kb.load(h0t, oh, elem=i64))
        row0 = kb.add(plane, kb.mul(h0, f["in_w"]))
        out_row = kb.mul(item.iv, f["out_w"])
        if linear:
            row1 = kb.add(plane, kb.mul(kb.load(h1t, oh, elem=i64), f["in_w"]))
            lh = kb.load(lht, oh)
        with kb.loop(0, f["out_w"]) as ow:
            w0, outside_w = _first_index(kb, spec, kb.load(w0t, ow.iv, elem=i64))
            top = kb.load(x, kb.add(row0, w0))
            if linear:
                w1 = kb.load(w1t, ow.iv, elem=i64)
                lw = kb.load(lwt, ow.iv)
                top = kb.fma(lw, kb.fsub(kb.load(x, kb.add(row0, w1)), top), top)
                bottom = kb.load(x, kb.add(row1, w0))
                bottom = kb.fma(lw, kb.fsub(kb.load(x, kb.add(row1, w1)), bottom), bottom)
                top = kb.fma(lh, kb.fsub(bottom, top), top)
            kb.store(_extrapolated(kb, spec, top, outside_h, outside_w), out, kb.add(out_row, ow.iv))
    return kb.finish()


def _first_index(kb: KernelBuilder, spec: ResizeSpec, index: SSAValue) -> tuple[SSAValue, SSAValue | None]:
    """A row's / column's first table index, safe to load with, and (cropping) whether it is outside."""
    if spec.extrapolation is None:
        return index, None
    return kb.max(index, kb.const(0)), kb.cmp("slt", index, kb.const(0))


def _extrapolated(kb: KernelBuilder, spec: ResizeSpec, value: SSAValue, outside_h, outside_w) -> SSAValue:
    if spec.extrapolation is None:
        return value
    return kb.select(kb.or_(outside_h, outside_w), kb.fconst(spec.extrapolation), value)


def _cubic_resize_kernel(spec: ResizeSpec) -> func.FuncOp:
    """Cubic: h0 / lh (w0 / lw) hold the 4 tap indices / weights of each output row (column);
    out = sum_a lh[a] * sum_b lw[b] * x[h0[a], w0[b]]."""
    kb = KernelBuilder(spec.name, Signature.of(RESIZE_FIELDS, buffers=RESIZE_FIELDS[:8]))
    f = kb.fields
    taps = kb.const(spec.taps)
    with kb.loop(kb.begin, kb.end) as item:
        oh = kb.mul(kb.rem(item.iv, f["out_h"]), taps)
        plane = kb.mul(kb.div(item.iv, f["out_h"]), kb.mul(f["in_h"], f["in_w"]))
        h = [kb.load(f["h0"], kb.add(oh, kb.const(a)), elem=i64) for a in range(spec.taps)]
        h[0], outside_h = _first_index(kb, spec, h[0])
        rows = [kb.add(plane, kb.mul(i, f["in_w"])) for i in h]
        row_weights = [kb.load(f["lh"], kb.add(oh, kb.const(a))) for a in range(spec.taps)]
        out_row = kb.mul(item.iv, f["out_w"])
        with kb.loop(0, f["out_w"]) as ow:
            col = kb.mul(ow.iv, taps)
            cols = [kb.load(f["w0"], kb.add(col, kb.const(b)), elem=i64) for b in range(spec.taps)]
            cols[0], outside_w = _first_index(kb, spec, cols[0])
            col_weights = [kb.load(f["lw"], kb.add(col, kb.const(b))) for b in range(spec.taps)]
            acc = kb.fconst(0.0)
            for row, row_weight in zip(rows, row_weights):
                line = kb.fconst(0.0)
                for c, w in zip(cols, col_weights):
                    line = kb.fma(w, kb.load(f["x"], kb.add(row, c)), line)
                acc = kb.fma(row_weight, line, acc)
            kb.store(_extrapolated(kb, spec, acc, outside_h, outside_w), f["out"], kb.add(out_row, ow.iv))
    return kb.finish()


@dataclass(frozen=True)
class ResizeTableSpec:
    """The tables of one axis, computed at run time: the ONNX coordinate transform `coordinate_mode`
    of each output index, then `rounding`: a nearest_mode (one index), "linear" (the two neighbours
    and the weight of the second) or "cubic" (4 indices and 4 weights: `cubic_a`, `exclude_outside`).
    With `read_scale` the scale is element `scale_index` of the float32 `scales` tensor, else
    out_size / in_size. tf_crop_and_resize reads the crop from `roi` (elements roi_start, roi_end) and
    marks an output outside the input by a first index -1 (the other indices stay loadable); the crops
    of the `leading` axes it does not resize (the first roi elements) must be the identity [0, 1],
    else it stores `code` in `status`.
    Coordinates are computed in float64, like the compile-time tables."""

    coordinate_mode: str
    rounding: str
    read_scale: bool
    cubic_a: float = 0.0
    exclude_outside: bool = False

    @property
    def name(self) -> str:
        cubic = f"_a{self.cubic_a:g}{'_excl' if self.exclude_outside else ''}" if self.rounding == "cubic" else ""
        name = f"resize_table_{self.coordinate_mode}_{self.rounding}{cubic}{'_scaled' if self.read_scale else ''}"
        return name.replace("-", "m").replace(".", "p")


def _round(kb: KernelBuilder, x: SSAValue, mode: str) -> SSAValue:
    half = kb.vconst(0.5, f64)
    if mode == "round_prefer_floor":
        return kb.intrinsic("llvm.ceil", kb.fsub(x, half))
    if mode == "round_prefer_ceil":
        return kb.intrinsic("llvm.floor", kb.fadd(x, half))
    return kb.intrinsic(f"llvm.{mode}", x)


def _source_coordinate(kb: KernelBuilder, spec: ResizeTableSpec, o, in_f, out_f, scale, f) -> SSAValue:
    """ONNX coordinate_transformation_mode: output index o -> input coordinate (float64)."""
    half, zero, one = kb.vconst(0.5, f64), kb.vconst(0.0, f64), kb.vconst(1.0, f64)
    several = kb.cmp("sgt", f["out_size"], kb.const(1))
    mode = spec.coordinate_mode
    if mode == "tf_crop_and_resize":  # in float32, as onnxruntime: a nearest tie rounds the same way
        start, end = (kb.load(f["roi"], f[n]) for n in ("roi_start", "roi_end"))
        last, o32 = (kb._ins(arith.TruncFOp(kb.fsub(v, one), f32)) for v in (in_f, kb.fadd(o, one)))
        span = kb.fdiv(kb.fmul(kb.fmul(o32, kb.fsub(end, start)), last),
                       kb._ins(arith.TruncFOp(kb.fsub(out_f, one), f32)))
        single = kb.fmul(kb.fmul(kb.fadd(start, end), kb.fconst(0.5)), last)
        return kb._ins(arith.ExtFOp(kb.select(several, kb.fadd(kb.fmul(start, last), span), single), f64))
    if mode == "asymmetric":
        return kb.fdiv(o, scale)
    if mode == "align_corners":  # the spec's length_resized is in * scale, fractional for some scales
        length = kb.fmul(scale, in_f)
        return kb.select(several, kb.fdiv(kb.fmul(o, kb.fsub(in_f, one)), kb.fsub(length, one)), zero)
    x = kb.fsub(kb.fdiv(kb.fadd(o, half), scale), half)
    if mode == "pytorch_half_pixel":
        return kb.select(several, x, zero)
    if mode == "half_pixel_symmetric":
        adjustment = kb.fdiv(out_f, kb.fmul(scale, in_f))
        return kb.fadd(kb.fmul(kb.fmul(in_f, half), kb.fsub(one, adjustment)), x)
    assert mode == "half_pixel", mode
    return x


def _to_f64(kb: KernelBuilder, i: SSAValue) -> SSAValue:
    return kb._ins(arith.SIToFPOp(i, f64))


def _marked(kb: KernelBuilder, index: SSAValue, outside: SSAValue | None) -> SSAValue:
    """A first index, -1 for an output outside the input (tf_crop_and_resize)."""
    return index if outside is None else kb.select(outside, kb.const(-1), index)


def _cubic_taps(kb: KernelBuilder, spec: ResizeTableSpec, x: SSAValue, o: SSAValue, f, outside) -> None:
    """Store the 4 clamped tap indices and weights of output o (weights in float32: Keys' cubic)."""
    first = kb.intrinsic("llvm.floor", x)
    t = kb._ins(arith.TruncFOp(kb.fsub(x, first), f32))
    i0 = to_int(kb, first)
    last = kb.sub(f["in_size"], kb.const(1))
    indices = [kb.add(i0, kb.const(k - 1)) for k in range(4)]
    weights = cubic_coefficients(kb, t, spec.cubic_a)
    if spec.exclude_outside:
        weights = [kb.select(kb.in_bounds(i, f["in_size"])[0], w, kb.fconst(0.0)) for i, w in zip(indices, weights)]
        total = kb.fadd(kb.fadd(weights[0], weights[1]), kb.fadd(weights[2], weights[3]))
        weights = [kb.fdiv(w, total) for w in weights]
    base = kb.mul(o, kb.const(4))
    for k, (i, w) in enumerate(zip(indices, weights)):
        at = kb.add(base, kb.const(k))
        i = kb.max(kb.const(0), kb.min(i, last))
        kb.store(_marked(kb, i, outside) if k == 0 else i, f["i0"], at, elem=i64)
        kb.store(w, f["w"], at)


def _check_identity_crops(kb: KernelBuilder, f) -> None:
    axes = kb.sub(f["roi_end"], f["roi_start"])
    with kb.loop(0, f["leading"]) as j:
        start, end = kb.load(f["roi"], j.iv), kb.load(f["roi"], kb.add(j.iv, axes))
        with kb.if_(kb.or_(kb.fcmp("une", start, kb.fconst(0.0)), kb.fcmp("une", end, kb.fconst(1.0)))):
            kb.store(f["code"], f["status"], kb.const(0), elem=i64)


def _neighbour_taps(kb: KernelBuilder, spec: ResizeTableSpec, x: SSAValue, o: SSAValue, f, outside) -> None:
    """Store output o's nearest index (twice, weight 0) or its two linear neighbours and weight."""
    last = kb.sub(f["in_size"], kb.const(1))
    linear = spec.rounding == "linear"
    if linear:
        x = kb.fmax(kb.vconst(0.0, f64), kb._ins(arith.MinnumfOp(x, _to_f64(kb, last))))
    else:
        x = _round(kb, x, spec.rounding)
    first = kb.max(kb.const(0), kb.min(to_int(kb, kb.intrinsic("llvm.floor", x)), last))
    second = kb.min(kb.add(first, kb.const(1)), last) if linear else first
    weight = kb._ins(arith.TruncFOp(kb.fsub(x, _to_f64(kb, first)), f32)) if linear else kb.fconst(0.0)
    kb.store(_marked(kb, first, outside), f["i0"], o, elem=i64)
    kb.store(second, f["i1"], o, elem=i64)
    kb.store(weight, f["w"], o)


def resize_table_kernel(spec: ResizeTableSpec) -> func.FuncOp:
    kb = KernelBuilder(spec.name, Signature.of(RESIZE_TABLE_FIELDS, buffers=RESIZE_TABLE_FIELDS[:6]))
    f = kb.fields
    in_f, out_f = _to_f64(kb, f["in_size"]), _to_f64(kb, f["out_size"])
    scale = (kb._ins(arith.ExtFOp(kb.load(f["scales"], f["scale_index"]), f64)) if spec.read_scale
             else kb.fdiv(out_f, in_f))
    taps = _cubic_taps if spec.rounding == "cubic" else _neighbour_taps
    last = _to_f64(kb, kb.sub(f["in_size"], kb.const(1)))
    if spec.coordinate_mode == "tf_crop_and_resize":
        _check_identity_crops(kb, f)
    with kb.loop(kb.begin, kb.end) as item:
        x = _source_coordinate(kb, spec, _to_f64(kb, item.iv), in_f, out_f, scale, f)
        outside = None
        if spec.coordinate_mode == "tf_crop_and_resize":
            outside = kb.or_(kb.fcmp("olt", x, kb.vconst(0.0, f64)), kb.fcmp("ogt", x, last))
        taps(kb, spec, x, item.iv, f, outside)
    return kb.finish()
