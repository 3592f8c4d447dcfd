"""Resize of the two trailing dims through per-axis tables computed at compile time.

For every output row index oh the tables give two source rows and a weight
(h0, h1, lh), likewise (w0, w1, lw) per output column, so one kernel serves
every coordinate transformation and nearest rounding mode: nearest has
h0 == h1 and weight 0. Linear: out = lerp(lerp(x[h0,w0], x[h0,w1], lw),
lerp(x[h1,w0], x[h1,w1], lw), lh). One output row per work item; the columns
are gathered element by element.
"""
from __future__ import annotations

from dataclasses import dataclass

from xdsl.dialects import func
from xdsl.dialects.builtin import i64

from pyflame_rt.targets.cpu.kernel_builder import KernelBuilder, Signature

RESIZE_FIELDS = ("x", "out", "h0", "h1", "lh", "w0", "w1", "lw", "in_h", "in_w", "out_h", "out_w")


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
