"""Region-of-interest pooling kernels (RoiAlign, MaxRoiPool), one work item per (region, channel),
computing in float32 in onnxruntime's order of operations. A region whose batch index is outside
[0, batch) (or, for RoiAlign, with a coordinate that is not finite) stores its check's code to
*status and its cells 0: no load depends on a bad index or coordinate."""
from __future__ import annotations

import hashlib
from dataclasses import dataclass

from xdsl.dialects import arith, func
from xdsl.dialects.builtin import IntegerType, f32, i64
from xdsl.ir import SSAValue

from pyflame_rt.targets.cpu.kernel_builder import KernelBuilder, Signature

ROI_ALIGN_FIELDS = ("x", "rois", "batch_indices", "out", "status", "code", "nonfinite_code", "batch", "channels",
                    "height", "width", "out_h", "out_w")
MAX_ROI_POOL_FIELDS = ("x", "rois", "out", "status", "code", "batch", "channels", "height", "width", "out_h", "out_w")
_I1 = IntegerType(1)


def _scale_tag(scale: float) -> str:
    return hashlib.sha1(repr(scale).encode()).hexdigest()[:8]


@dataclass(frozen=True)
class RoiAlignSpec:
    max_mode: bool
    half_pixel: bool
    sampling_ratio: int
    spatial_scale: float

    @property
    def name(self) -> str:
        return (f"roi_align_{'max' if self.max_mode else 'avg'}_{'hp' if self.half_pixel else 'ohp'}"
                f"_s{self.sampling_ratio}_{_scale_tag(self.spatial_scale)}")


class _Floats:
    """float32 helpers of a kernel."""

    def __init__(self, kb: KernelBuilder):
        self.kb = kb

    def c(self, v: float) -> SSAValue:
        return self.kb.vconst(v, f32)

    def of(self, i: SSAValue) -> SSAValue:
        return self.kb._ins(arith.SIToFPOp(i, f32))

    def to_int(self, v: SSAValue) -> SSAValue:
        """v truncated to i64, saturating (NaN: 0): every float gives a defined integer."""
        return self.kb.intrinsic("llvm.fptosi.sat", v, result_type=i64, overloads=[i64, f32])

    def max(self, a, b):
        return self.kb.select(self.kb.fcmp("ogt", a, b), a, b)

    def finite(self, v):
        return self.kb.fcmp("olt", self.kb.intrinsic("llvm.fabs", v), self.c(float("inf")))

    def within(self, v, lo, hi):
        """lo <= v <= hi (false for NaN)."""
        return self.kb.and_(self.kb.fcmp("oge", v, lo), self.kb.fcmp("ole", v, hi))


def _report_unless(kb: KernelBuilder, ok: SSAValue, f, code: str = "code") -> None:
    """Store the check's code unless `ok`."""
    with kb.if_(kb.cmp("eq", ok, kb.const(0, _I1))):
        kb.store(f[code], f["status"], kb.const(0), elem=i64)


def roi_align_kernel(spec: RoiAlignSpec) -> func.FuncOp:
    """Region r of image batch_indices[r], corners rois[r * 4:] (x1, y1, x2, y2) scaled and shifted;
    each cell the mean (or the largest weighted corner) of its grid of bilinear samples."""
    buffers = ("x", "rois", "batch_indices", "out", "status")
    kb = KernelBuilder(spec.name, Signature.of(ROI_ALIGN_FIELDS, buffers=buffers))
    f, fl = kb.fields, _Floats(kb)
    h, w, out_h, out_w, channels = f["height"], f["width"], f["out_h"], f["out_w"], f["channels"]
    zero, one = kb.const(0), kb.const(1)
    with kb.loop(kb.begin, kb.end) as item:
        r, ch = kb.div(item.iv, channels), kb.rem(item.iv, channels)
        index = kb.load(f["batch_indices"], r, elem=i64)
        ok = kb.and_(kb.cmp("sge", index, zero), kb.cmp("slt", index, f["batch"]))
        _report_unless(kb, ok, f)
        roi = [kb.load(f["rois"], kb.add(kb.mul(r, kb.const(4)), kb.const(k)), elem=f32) for k in range(4)]
        finite = fl.finite(roi[0])
        for v in roi[1:]:
            finite = kb.and_(finite, fl.finite(v))
        _report_unless(kb, finite, f, "nonfinite_code")
        ok = kb.and_(ok, finite)
        plane = kb.mul(kb.add(kb.mul(index, channels), ch), kb.mul(h, w))
        offset = fl.c(0.5 if spec.half_pixel else 0.0)
        x0, y0, x1, y1 = (kb.fsub(kb.fmul(v, fl.c(spec.spatial_scale)), offset) for v in roi)
        width, height = kb.fsub(x1, x0), kb.fsub(y1, y0)
        if not spec.half_pixel:
            width, height = fl.max(width, fl.c(1.0)), fl.max(height, fl.c(1.0))
        cell_h, cell_w = kb.fdiv(height, fl.of(out_h)), kb.fdiv(width, fl.of(out_w))
        grid_h, grid_w = (_grid(kb, fl, cell, spec.sampling_ratio) for cell in (cell_h, cell_w))
        count = fl.of(kb.max(kb.mul(grid_h, grid_w), one))
        hf, wf = fl.of(h), fl.of(w)
        out_base = kb.mul(item.iv, kb.mul(out_h, out_w))
        with kb.loop(0, kb.mul(out_h, out_w)) as cell:
            ph, pw = fl.of(kb.div(cell.iv, out_w)), fl.of(kb.rem(cell.iv, out_w))
            with kb.loop(0, grid_h, carried=[fl.c(0.0), kb.const(1, _I1)]) as iy:
                y = kb.fadd(kb.fadd(y0, kb.fmul(ph, cell_h)),
                            kb.fdiv(kb.fmul(kb.fadd(fl.of(iy.iv), fl.c(0.5)), cell_h), fl.of(grid_h)))
                with kb.loop(0, grid_w, carried=list(iy.carried)) as ix:
                    x = kb.fadd(kb.fadd(x0, kb.fmul(pw, cell_w)),
                                kb.fdiv(kb.fmul(kb.fadd(fl.of(ix.iv), fl.c(0.5)), cell_w), fl.of(grid_w)))
                    corners = _bilinear(kb, fl, f["x"], plane, y, x, ok, h, w, hf, wf)
                    acc, first = ix.carried
                    if spec.max_mode:
                        best = fl.max(fl.max(fl.max(corners[0], corners[1]), corners[2]), corners[3])
                        acc = kb.select(first, best, fl.max(acc, best))
                    else:
                        acc = kb.fadd(acc, kb.fadd(kb.fadd(kb.fadd(corners[0], corners[1]), corners[2]), corners[3]))
                    ix.next = [acc, kb.const(0, _I1)]
                iy.next = list(ix.results)
            value = iy.results[0] if spec.max_mode else kb.fdiv(iy.results[0], count)
            kb.store(value, f["out"], kb.add(out_base, cell.iv), elem=f32)
    return kb.finish()


def _grid(kb: KernelBuilder, fl: _Floats, cell: SSAValue, ratio: int) -> SSAValue:
    """Samples per cell along an axis: the sampling ratio, or ceil(cell size) (none when that is
    not positive)."""
    return kb.const(ratio) if ratio > 0 else fl.to_int(kb.intrinsic("llvm.ceil", cell))


def _bilinear(kb: KernelBuilder, fl: _Floats, x, plane, y, xc, ok, h, w, hf, wf) -> list[SSAValue]:
    """The four weighted corners of the sample at (y, xc) of the plane, 0 more than a pixel
    outside it, at a NaN coordinate or in a region that is not `ok` (nothing is loaded then);
    coordinates past the last row / column clamp to it."""
    inside = kb.and_(kb.and_(fl.within(y, fl.c(-1.0), hf), fl.within(xc, fl.c(-1.0), wf)),
                     kb.and_(ok, kb.and_(kb.cmp("sgt", h, kb.const(0)), kb.cmp("sgt", w, kb.const(0)))))

    def sample():
        rows, cols = [], []
        for v, size, out in ((fl.max(y, fl.c(0.0)), h, rows), (fl.max(xc, fl.c(0.0)), w, cols)):
            low, last = fl.to_int(v), kb.sub(size, kb.const(1))
            at_end = kb.cmp("sge", low, last)
            out += [kb.select(at_end, last, low), kb.select(at_end, last, kb.add(low, kb.const(1))),
                    kb.select(at_end, fl.of(last), v)]
        ly, lx = kb.fsub(rows[2], fl.of(rows[0])), kb.fsub(cols[2], fl.of(cols[0]))
        hy, hx = kb.fsub(fl.c(1.0), ly), kb.fsub(fl.c(1.0), lx)
        weights = [kb.fmul(hy, hx), kb.fmul(hy, lx), kb.fmul(ly, hx), kb.fmul(ly, lx)]
        corners = [(rows[0], cols[0]), (rows[0], cols[1]), (rows[1], cols[0]), (rows[1], cols[1])]
        return [kb.fmul(wt, kb.load(x, kb.add(plane, kb.add(kb.mul(row, w), col)), elem=f32))
                for wt, (row, col) in zip(weights, corners)]

    return kb.if_else(inside, sample, lambda: [fl.c(0.0)] * 4)


@dataclass(frozen=True)
class MaxRoiPoolSpec:
    spatial_scale: float

    @property
    def name(self) -> str:
        return f"max_roi_pool_{_scale_tag(self.spatial_scale)}"


def max_roi_pool_kernel(spec: MaxRoiPoolSpec) -> func.FuncOp:
    """Region r = rois[r * 5:] (batch, x1, y1, x2, y2): corners scaled and rounded half away from
    zero, inclusive; cell (ph, pw) is the maximum over its rows [floor(ph * cell_h), ceil((ph + 1)
    * cell_h)) (and columns alike) shifted by the corner and clamped to the image, 0 when empty."""
    kb = KernelBuilder(spec.name, Signature.of(MAX_ROI_POOL_FIELDS, buffers=("x", "rois", "out", "status")))
    f, fl = kb.fields, _Floats(kb)
    h, w, out_h, out_w, channels = f["height"], f["width"], f["out_h"], f["out_w"], f["channels"]
    zero, one = kb.const(0), kb.const(1)
    with kb.loop(kb.begin, kb.end) as item:
        r, ch = kb.div(item.iv, channels), kb.rem(item.iv, channels)
        roi = [kb.load(f["rois"], kb.add(kb.mul(r, kb.const(5)), kb.const(k)), elem=f32) for k in range(5)]
        ok = kb.and_(kb.fcmp("ogt", roi[0], fl.c(-1.0)), kb.fcmp("olt", roi[0], fl.of(f["batch"])))
        _report_unless(kb, ok, f)
        batch = fl.to_int(kb.select(ok, roi[0], fl.c(0.0)))
        plane = kb.mul(kb.add(kb.mul(batch, channels), ch), kb.mul(h, w))
        x0, y0, x1, y1 = (_rounded(kb, fl, kb.fmul(v, fl.c(spec.spatial_scale))) for v in roi[1:])
        cell_h = kb.fdiv(fl.of(kb.max(kb.add(kb.sub(y1, y0), one), one)), fl.of(out_h))
        cell_w = kb.fdiv(fl.of(kb.max(kb.add(kb.sub(x1, x0), one), one)), fl.of(out_w))
        out_base = kb.mul(item.iv, kb.mul(out_h, out_w))
        with kb.loop(0, kb.mul(out_h, out_w)) as cell:
            top, bottom = _span(kb, fl, kb.div(cell.iv, out_w), cell_h, y0, h)
            left, right = _span(kb, fl, kb.rem(cell.iv, out_w), cell_w, x0, w)
            bottom = kb.select(ok, bottom, top)  # a bad region reads nothing
            empty = kb.or_(kb.cmp("sle", bottom, top), kb.cmp("sle", right, left))
            with kb.loop(top, bottom, carried=[fl.c(-3.4028234663852886e38)]) as row:
                with kb.loop(left, right, carried=list(row.carried)) as col:
                    v = kb.load(f["x"], kb.add(plane, kb.add(kb.mul(row.iv, w), col.iv)), elem=f32)
                    col.next = [kb.select(kb.fcmp("ogt", v, col.carried[0]), v, col.carried[0])]
                row.next = list(col.results)
            kb.store(kb.select(empty, fl.c(0.0), row.results[0]), f["out"], kb.add(out_base, cell.iv), elem=f32)
    return kb.finish()


def _rounded(kb: KernelBuilder, fl: _Floats, v: SSAValue) -> SSAValue:
    """round(v), half away from zero, as an integer."""
    return fl.to_int(kb.intrinsic("llvm.round", v))


def _span(kb: KernelBuilder, fl: _Floats, p: SSAValue, cell: SSAValue, start: SSAValue, size: SSAValue):
    """Cell p's [begin, end) along an axis, shifted by the region's start and clamped to [0, size]."""
    begin = fl.to_int(kb.intrinsic("llvm.floor", kb.fmul(fl.of(p), cell)))
    end = fl.to_int(kb.intrinsic("llvm.ceil", kb.fmul(fl.of(kb.add(p, kb.const(1))), cell)))

    def clamped(v):
        return kb.min(kb.max(kb.add(v, start), kb.const(0)), size)

    return clamped(begin), clamped(end)
