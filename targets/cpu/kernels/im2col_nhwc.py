"""Channels-last im2col: cols[P, K] for a KxK convolution as one GEMM with packed weights.

Row p = (image, oy, ox) of the output holds, tap by tap (a, b), the C input
channels at (oy*sh - ph + a*dh, ox*sw - pw + b*dw): in NHWC these are one
contiguous slice, copied with vector loads; taps in the padding read a clamped
(valid) address and store zeros instead (bounds, no padded copy). K = kh*kw*C,
ordered (a, b, c) like the compile-time weight matrix [K, M]. The taps are a
run-time loop, so one kernel serves every kernel size. One output row (image,
oy) per work item.
"""
from __future__ import annotations

from dataclasses import dataclass

from xdsl.dialects import func

from pyflame_rt.targets.cpu.kernel_builder import KernelBuilder

IM2COL_NHWC_FIELDS = ("x", "cols", "c", "h", "wi", "oh", "ow", "kh", "kw", "sh", "sw", "dh", "dw", "ph", "pw")


@dataclass(frozen=True)
class Im2colNHWCSpec:
    width: int

    @property
    def name(self) -> str:
        return f"im2col_nhwc_w{self.width}"


def im2col_nhwc_kernel(spec: Im2colNHWCSpec) -> func.FuncOp:
    kb = KernelBuilder(spec.name)
    f = {name: kb.field(i) for i, name in enumerate(IM2COL_NHWC_FIELDS)}
    x, cols = kb.as_ptr(f["x"]), kb.as_ptr(f["cols"])
    c = f["c"]
    k = kb.mul(kb.mul(f["kh"], f["kw"]), c)
    with kb.loop(kb.begin, kb.end) as item:
        oy, image = kb.rem(item.iv, f["oh"]), kb.div(item.iv, f["oh"])
        with kb.loop(0, f["ow"]) as ox:
            dst_row = kb.mul(kb.add(kb.mul(item.iv, f["ow"]), ox.iv), k)
            with kb.loop(0, f["kh"]) as a:
                row_ok, iy = kb.in_bounds(kb.add(kb.sub(kb.mul(oy, f["sh"]), f["ph"]), kb.mul(a.iv, f["dh"])), f["h"])
                row = kb.mul(kb.add(kb.mul(image, f["h"]), iy), f["wi"])
                with kb.loop(0, f["kw"]) as b:
                    col_ok, ix = kb.in_bounds(kb.add(kb.sub(kb.mul(ox.iv, f["sw"]), f["pw"]),
                                                     kb.mul(b.iv, f["dw"])), f["wi"])
                    inside = kb.and_(row_ok, col_ok)
                    src = kb.mul(kb.add(row, ix), c)
                    dst = kb.add(dst_row, kb.mul(kb.add(kb.mul(a.iv, f["kw"]), b.iv), c))

                    def copy(c0, wd, src=src, dst=dst, inside=inside):
                        v = kb.select(inside, kb.load(x, kb.add(src, c0), wd), kb.fconst(0.0, wd))
                        kb.store(v, cols, kb.add(dst, c0))

                    kb.strip_mined(kb.const(0), c, spec.width, copy)
    return kb.finish()
