"""im2col straight into the GEMM's packed-B layout: convolution as a GEMM.

For one (image, group) the packed matrix is [K = Cg*KD*KH*KW][P = OD*OH*OW] split
into panels of NR columns ([panel][k][NR], zero padded), exactly what `gemm_kernel`
reads (2-D convolutions have one depth tap and OD = 1). The input is already padded
(or needs no padding), so there are no bounds checks: column p reads
x[base_k + off(p)] with off(p) = od*sd*Hp*Wp + oh*sh*Wp + ow*sw. A panel
whose columns are consecutive in memory (stride 1, one output row) is copied with
vector loads; other panels gather element by element. Work items are
(image*group, panel) pairs.
"""
from __future__ import annotations

from dataclasses import dataclass

from xdsl.dialects import arith, func
from xdsl.dialects.builtin import f32, f64, i64

from pyflame_rt.dtype import DType
from pyflame_rt.targets.cpu.kernel_builder import KernelBuilder, Signature

IM2COL_FIELDS = ("x", "bp", "groups", "x_bs", "x_gs", "ch_stride", "cg", "kh_stride", "kw_stride",
                 "ow", "oh_stride", "ow_stride", "p", "npanels", "k", "oh", "kd_stride", "od_stride")


@dataclass(frozen=True)
class Im2colSpec:
    width: int
    nvec: int   # NR = nvec * width (the GEMM's panel width)
    kh: int
    kw: int
    kd: int = 1  # depth taps (3-D convolutions)
    dtype: DType = DType.FLOAT32  # or FLOAT64 (the GEMM's F64 panels)

    @property
    def nr(self) -> int:
        return self.nvec * self.width

    @property
    def name(self) -> str:
        depth = f"{self.kd}x" if self.kd > 1 else ""
        dtype = "" if self.dtype is DType.FLOAT32 else f"_{self.dtype.value}"
        return f"im2col_{depth}{self.kh}x{self.kw}_nr{self.nr}_w{self.width}{dtype}"


def im2col_kernel(spec: Im2colSpec) -> func.FuncOp:
    kb = KernelBuilder(spec.name, Signature.of(IM2COL_FIELDS, buffers=("x", "bp")))
    f = kb.fields
    x, bp = f["x"], f["bp"]
    nr, w = spec.nr, spec.width
    offs = kb.scratch(nr, i64)
    elem = f64 if spec.dtype is DType.FLOAT64 else f32
    zero = kb.vconst(0.0, elem)
    with kb.loop(kb.begin, kb.end) as item:
        bi, panel = kb.div(item.iv, f["npanels"]), kb.rem(item.iv, f["npanels"])
        image, group = kb.div(bi, f["groups"]), kb.rem(bi, f["groups"])
        xb = kb.add(kb.mul(image, f["x_bs"]), kb.mul(group, f["x_gs"]))
        dst = kb.mul(kb.add(kb.mul(bi, f["npanels"]), panel), kb.mul(f["k"], kb.const(nr)))
        col0 = kb.mul(panel, kb.const(nr))
        ncols = kb.min(kb.const(nr), kb.sub(f["p"], col0))
        with kb.loop(0, ncols) as j:
            p = kb.add(col0, j.iv)
            rows = kb.div(p, f["ow"])  # od * OH + oh
            off = kb.add(kb.add(kb.mul(kb.div(rows, f["oh"]), f["od_stride"]),
                                kb.mul(kb.rem(rows, f["oh"]), f["oh_stride"])),
                         kb.mul(kb.rem(p, f["ow"]), f["ow_stride"]))
            kb.store(off, offs, j.iv, elem=i64)
        off0 = kb.load(offs, kb.const(0), elem=i64)
        last = kb.load(offs, kb.const(nr - 1), elem=i64)
        contiguous = kb._ins(arith.AndIOp(
            kb.cmp("eq", ncols, kb.const(nr)), kb.cmp("eq", kb.sub(last, off0), kb.const(nr - 1))))
        with kb.loop(0, f["cg"]) as ci:
            ci_base = kb.add(xb, kb.mul(ci.iv, f["ch_stride"]))
            taps = [(z, a, b) for z in range(spec.kd) for a in range(spec.kh) for b in range(spec.kw)]
            for t, (z, a, b) in enumerate(taps):
                base = kb.add(ci_base, kb.add(kb.mul(kb.const(z), f["kd_stride"]),
                                              kb.add(kb.mul(kb.const(a), f["kh_stride"]),
                                                     kb.mul(kb.const(b), f["kw_stride"]))))
                row = kb.add(kb.mul(ci.iv, kb.const(len(taps))), kb.const(t))
                drow = kb.add(dst, kb.mul(row, kb.const(nr)))
                with kb.if_(contiguous):
                    src = kb.add(base, off0)
                    for v in range(spec.nvec):
                        kb.store(kb.load(x, kb.add(src, kb.const(v * w)), w, elem), bp, kb.add(drow, kb.const(v * w)),
                                 elem)
                with kb.if_(kb.cmp("eq", contiguous, kb.const(0, contiguous.type))):
                    with kb.loop(0, ncols) as j:
                        src = kb.add(base, kb.load(offs, j.iv, elem=i64))
                        kb.store(kb.load(x, src, elem=elem), bp, kb.add(drow, j.iv), elem)
                    with kb.loop(ncols, kb.const(nr)) as j:
                        kb.store(zero, bp, kb.add(drow, j.iv), elem)
    return kb.finish()
