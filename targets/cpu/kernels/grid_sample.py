"""GridSample: one work item per (batch, output point); its taps are computed once, then every
channel is sampled with them.

Per spatial axis the grid coordinate is denormalized (align_corners or not), rounded half to even
for nearest, moved inside the input by the padding mode (border clamps, except for cubic; reflection
reflects by the bounds: [0, d - 1] aligned, [-0.5, d - 0.5] not), and gives 1 / 2 / 4 taps (nearest / linear /
cubic, Keys a = -0.75) of an index and a weight. Each tap's index is then padded again (zeros: a
tap outside reads 0; border: clamped; reflection: reflected) and clamped, so every load stays
inside the input whatever the grid holds (NaN included).
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass

from xdsl.dialects import arith, func
from xdsl.dialects.builtin import f32
from xdsl.ir import SSAValue

from pyflame_rt.targets.cpu.kernel_builder import KernelBuilder, Signature
from pyflame_rt.targets.cpu.kernels.interpolation import cubic_coefficients, reflect, to_int

GRID_CUBIC_A = -0.75


@dataclass(frozen=True)
class GridSampleSpec:
    rank: int  # spatial dims
    mode: str  # nearest / linear / cubic
    padding: str  # zeros / border / reflection
    align_corners: bool

    @property
    def name(self) -> str:
        return f"grid_sample_{self.rank}d_{self.mode}_{self.padding}{'_aligned' if self.align_corners else ''}"

    @property
    def fields(self) -> tuple[str, ...]:
        return ("x", "grid", "out", "channels", "points", *(f"size{k}" for k in range(self.rank)))


def _bounds(kb: KernelBuilder, spec: GridSampleSpec, size_f: SSAValue) -> tuple[SSAValue, SSAValue]:
    if spec.align_corners:
        return kb.fconst(0.0), kb.fsub(size_f, kb.fconst(1.0))
    return kb.fconst(-0.5), kb.fsub(size_f, kb.fconst(0.5))


def _axis_taps(kb: KernelBuilder, spec: GridSampleSpec, g: SSAValue, size: SSAValue) -> list[tuple]:
    """(index, weight, inside) per tap of one axis; inside is None unless padding is zeros."""
    size_f = kb._ins(arith.SIToFPOp(size, f32))
    one, half = kb.fconst(1.0), kb.fconst(0.5)
    if spec.align_corners:
        x = kb.fmul(kb.fmul(kb.fadd(g, one), half), kb.fsub(size_f, one))
    else:
        x = kb.fmul(kb.fsub(kb.fmul(kb.fadd(g, one), size_f), one), half)
    if spec.mode == "nearest":
        x = kb.intrinsic("llvm.roundeven", x)
    lo, hi = _bounds(kb, spec, size_f)
    if spec.padding == "border" and spec.mode != "cubic":  # cubic clamps each tap only (as onnxruntime)
        outside = kb.or_(kb.fcmp("olt", x, lo), kb.fcmp("ogt", x, hi))
        x = kb.select(outside, kb.fmax(kb.fconst(0.0), kb._ins(arith.MinnumfOp(x, kb.fsub(size_f, one)))), x)
    elif spec.padding == "reflection":
        x = reflect(kb, x, lo, hi)
    if spec.mode == "nearest":
        taps = [(to_int(kb, x), one)]
    else:
        first = kb.intrinsic("llvm.floor", x)
        t = kb.fsub(x, first)
        i0 = to_int(kb, first)
        weights = [kb.fsub(one, t), t] if spec.mode == "linear" else cubic_coefficients(kb, t, GRID_CUBIC_A)
        offset = 0 if spec.mode == "linear" else -1
        taps = [(kb.add(i0, kb.const(offset + k)), w) for k, w in enumerate(weights)]
    last = kb.sub(size, kb.const(1))
    out = []
    for i, w in taps:
        inside = None
        if spec.padding == "zeros":
            inside, _ = kb.in_bounds(i, size)
        elif spec.padding == "reflection":
            i = to_int(kb, reflect(kb, kb._ins(arith.SIToFPOp(i, f32)), lo, hi))
        out.append((kb.max(kb.const(0), kb.min(i, last)), w, inside))
    return out


def grid_sample_kernel(spec: GridSampleSpec) -> func.FuncOp:
    kb = KernelBuilder(spec.name, Signature.of(spec.fields, buffers=spec.fields[:3]))
    f = kb.fields
    sizes = [f[f"size{k}"] for k in range(spec.rank)]
    strides = [kb.const(1)]
    for s in reversed(sizes[1:]):
        strides.insert(0, kb.mul(strides[0], s))
    spatial = kb.mul(strides[0], sizes[0])
    with kb.loop(kb.begin, kb.end) as item:
        n, p = kb.div(item.iv, f["points"]), kb.rem(item.iv, f["points"])
        grid_row = kb.mul(item.iv, kb.const(spec.rank))
        # grid[..., k] is the coordinate of spatial axis rank - 1 - k
        axes = [_axis_taps(kb, spec, kb.load(f["grid"], kb.add(grid_row, kb.const(spec.rank - 1 - k))), sizes[k])
                for k in range(spec.rank)]
        taps = []
        for combo in itertools.product(*axes):
            offset, weight, inside = None, None, None
            for (i, w, ok), stride in zip(combo, strides):
                term = kb.mul(i, stride)
                offset = term if offset is None else kb.add(offset, term)
                weight = w if weight is None else kb.fmul(weight, w)
                inside = ok if inside is None else kb.and_(inside, ok) if ok is not None else inside
            taps.append((offset, weight, inside))
        with kb.loop(0, f["channels"]) as c:
            plane = kb.add(kb.mul(n, f["channels"]), c.iv)
            base = kb.mul(plane, spatial)
            acc = kb.fconst(0.0)
            for offset, weight, inside in taps:
                v = kb.load(f["x"], kb.add(base, offset))
                if inside is not None:
                    v = kb.select(inside, v, kb.fconst(0.0))
                acc = kb.fma(weight, v, acc)
            kb.store(acc, f["out"], kb.add(kb.mul(plane, f["points"]), p))
    return kb.finish()
