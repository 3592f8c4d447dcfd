"""AffineGrid: one work item per output point; its base coordinates (x, y[, z]) in [-1, 1] follow
from its index, then each of its r coordinates is a row of theta [r, r + 1] applied to (base, 1)."""
from __future__ import annotations

from dataclasses import dataclass

from xdsl.dialects import arith, func
from xdsl.dialects.builtin import f32

from pyflame_rt.targets.cpu.kernel_builder import KernelBuilder, Signature


@dataclass(frozen=True)
class AffineGridSpec:
    rank: int  # spatial dims, 2 or 3
    align_corners: bool

    @property
    def name(self) -> str:
        return f"affine_grid_{self.rank}d{'_aligned' if self.align_corners else ''}"

    @property
    def fields(self) -> tuple[str, ...]:
        return ("theta", "out", "points", *(f"size{k}" for k in range(self.rank)))


def _base(kb: KernelBuilder, spec: AffineGridSpec, i, size):
    """Coordinate in [-1, 1] of index i of an axis of `size` points: corners (align_corners; a single
    point is 1, as onnxruntime) or centers."""
    i_f, size_f = (kb._ins(arith.SIToFPOp(v, f32)) for v in (i, size))
    one = kb.fconst(1.0)
    if spec.align_corners:
        step = kb.fdiv(kb.fconst(2.0), kb.fsub(size_f, one))
        several = kb.cmp("sgt", size, kb.const(1))
        return kb.select(several, kb.fma(i_f, step, kb.fconst(-1.0)), one)
    return kb.fsub(kb.fdiv(kb.fadd(kb.fmul(kb.fconst(2.0), i_f), one), size_f), one)


def affine_grid_kernel(spec: AffineGridSpec) -> func.FuncOp:
    kb = KernelBuilder(spec.name, Signature.of(spec.fields, buffers=spec.fields[:2]))
    f = kb.fields
    r = spec.rank
    sizes = [f[f"size{k}"] for k in range(r)]
    with kb.loop(kb.begin, kb.end) as item:
        n, rest = kb.div(item.iv, f["points"]), kb.rem(item.iv, f["points"])
        index = []
        for size in reversed(sizes):  # last spatial axis (x) first
            index.append(kb.rem(rest, size))
            rest = kb.div(rest, size)
        base = [_base(kb, spec, i, size) for i, size in zip(index, reversed(sizes))]
        theta = kb.mul(n, kb.const(r * (r + 1)))
        for k in range(r):
            row = kb.add(theta, kb.const(k * (r + 1)))
            v = kb.load(f["theta"], kb.add(row, kb.const(r)))
            for j, b in enumerate(base):
                v = kb.fma(kb.load(f["theta"], kb.add(row, kb.const(j))), b, v)
            kb.store(v, f["out"], kb.add(kb.mul(item.iv, kb.const(r)), kb.const(k)))
    return kb.finish()
