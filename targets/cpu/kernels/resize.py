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
from pyflame_rt.targets.cpu.kernels.interpolation import cubic_coefficients, to_int

RESIZE_FIELDS = ("x", "out", "h0", "h1", "lh", "w0", "w1", "lw", "in_h", "in_w", "out_h", "out_w")
# one axis's tables (first and second source index, weight of the second) per output index
RESIZE_TABLE_FIELDS = ("i0", "i1", "w", "scales", "in_size", "out_size", "scale_index")


@dataclass(frozen=True)
class ResizeSpec:
    mode: str  # nearest / linear / cubic

    @property
    def name(self) -> str:
        return f"resize_{self.mode}"

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
        row0 = kb.add(plane, kb.mul(kb.load(h0t, oh, elem=i64), f["in_w"]))
        out_row = kb.mul(item.iv, f["out_w"])
        if linear:
            row1 = kb.add(plane, kb.mul(kb.load(h1t, oh, elem=i64), f["in_w"]))
            lh = kb.load(lht, oh)
        with kb.loop(0, f["out_w"]) as ow:
            w0 = kb.load(w0t, ow.iv, elem=i64)
            top = kb.load(x, kb.add(row0, w0))
            if linear:
                w1 = kb.load(w1t, ow.iv, elem=i64)
                lw = kb.load(lwt, ow.iv)
                top = kb.fma(lw, kb.fsub(kb.load(x, kb.add(row0, w1)), top), top)
                bottom = kb.load(x, kb.add(row1, w0))
                bottom = kb.fma(lw, kb.fsub(kb.load(x, kb.add(row1, w1)), bottom), bottom)
                top = kb.fma(lh, kb.fsub(bottom, top), top)
            kb.store(top, out, kb.add(out_row, ow.iv))
    return kb.finish()


def _cubic_resize_kernel(spec: ResizeSpec) -> func.FuncOp:
    """Cubic: h0 / lh (w0 / lw) hold the 4 tap indices / weights of each output row (column);
    out = sum_a lh[a] * sum_b lw[b] * x[h0[a], w0[b]]."""
    kb = KernelBuilder(spec.name, Signature.of(RESIZE_FIELDS, buffers=RESIZE_FIELDS[:8]))
    f = kb.fields
    taps = kb.const(spec.taps)
    with kb.loop(kb.begin, kb.end) as item:
        oh = kb.mul(kb.rem(item.iv, f["out_h"]), taps)
        plane = kb.mul(kb.div(item.iv, f["out_h"]), kb.mul(f["in_h"], f["in_w"]))
        rows = [kb.add(plane, kb.mul(kb.load(f["h0"], kb.add(oh, kb.const(a)), elem=i64), f["in_w"]))
                for a in range(spec.taps)]
        row_weights = [kb.load(f["lh"], kb.add(oh, kb.const(a))) for a in range(spec.taps)]
        out_row = kb.mul(item.iv, f["out_w"])
        with kb.loop(0, f["out_w"]) as ow:
            col = kb.mul(ow.iv, taps)
            cols = [kb.load(f["w0"], kb.add(col, kb.const(b)), elem=i64) for b in range(spec.taps)]
            col_weights = [kb.load(f["lw"], kb.add(col, kb.const(b))) for b in range(spec.taps)]
            acc = kb.fconst(0.0)
            for row, row_weight in zip(rows, row_weights):
                line = kb.fconst(0.0)
                for c, w in zip(cols, col_weights):
                    line = kb.fma(w, kb.load(f["x"], kb.add(row, c)), line)
                acc = kb.fma(row_weight, line, acc)
            kb.store(acc, f["out"], kb.add(out_row, ow.iv))
    return kb.finish()


@dataclass(frozen=True)
class ResizeTableSpec:
    """The tables of one axis, computed at run time: the ONNX coordinate transform `coordinate_mode`
    of each output index, then `rounding`: a nearest_mode (one index), "linear" (the two neighbours
    and the weight of the second) or "cubic" (4 indices and 4 weights: `cubic_a`, `exclude_outside`).
    With `read_scale` the scale is element `scale_index` of the float32 `scales` tensor, else
    out_size / in_size. Coordinates are computed in float64, like the compile-time tables."""

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


def _to_f64(kb: KernelBuilder, i: SSAValue) -> SSAValue:
    return kb._ins(arith.SIToFPOp(i, f64))


def _cubic_taps(kb: KernelBuilder, spec: ResizeTableSpec, x: SSAValue, o: SSAValue, f) -> None:
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
        kb.store(kb.max(kb.const(0), kb.min(i, last)), f["i0"], at, elem=i64)
        kb.store(w, f["w"], at)


def _neighbour_taps(kb: KernelBuilder, spec: ResizeTableSpec, x: SSAValue, o: SSAValue, f) -> None:
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
    kb.store(first, f["i0"], o, elem=i64)
    kb.store(second, f["i1"], o, elem=i64)
    kb.store(weight, f["w"], o)


def resize_table_kernel(spec: ResizeTableSpec) -> func.FuncOp:
    kb = KernelBuilder(spec.name, Signature.of(RESIZE_TABLE_FIELDS, buffers=RESIZE_TABLE_FIELDS[:4]))
    f = kb.fields
    in_f, out_f = _to_f64(kb, f["in_size"]), _to_f64(kb, f["out_size"])
    scale = (kb._ins(arith.ExtFOp(kb.load(f["scales"], f["scale_index"]), f64)) if spec.read_scale
             else kb.fdiv(out_f, in_f))
    taps = _cubic_taps if spec.rounding == "cubic" else _neighbour_taps
    with kb.loop(kb.begin, kb.end) as item:
        x = _source_coordinate(kb, spec, _to_f64(kb, item.iv), in_f, out_f, scale, f["out_size"])
        taps(kb, spec, x, item.iv, f)
    return kb.finish()
