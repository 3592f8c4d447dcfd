"""Channels-last sliding-window kernels: depthwise conv, max pool, average pool over NHWC.

Vectorized over channels (contiguous in NHWC), so every stride, dilation and
padding runs at full vector width. Padding is handled by bounds, not a padded
copy: a tap outside the input loads from a clamped (valid) address and its value
is replaced by the neutral element (0, or -inf for max). One output row (image,
oy) per work item; inside it, per channel block the depthwise weights of all taps
stay in registers across the row. Depthwise weights are [kh*kw, C]; average
pooling multiplies by a per-position reciprocal count map [OH*OW] computed at
compile time (it encodes count_include_pad and ceil_mode). A depthwise conv's
residual (laid out like the output) is added before the activation.
"""
from __future__ import annotations

from dataclasses import dataclass

from xdsl.dialects import func

from pyflame_rt.targets.cpu.kernel_builder import KernelBuilder
from pyflame_rt.targets.cpu.kernels.window import WINDOW_OPS, WindowSpec

WINDOW_NHWC_FIELDS = ("x", "w", "out", "bias", "residual", "c", "h", "wi", "oh", "ow", "sh", "sw", "dh", "dw",
                      "ph", "pw")


@dataclass(frozen=True)
class WindowNHWCSpec(WindowSpec):
    """WindowSpec's fields (`width`: lanes along the channels here), plus a fused residual."""

    has_residual: bool = False  # add a tensor laid out like the output before the activation

    @property
    def name(self) -> str:
        return super().name.replace("window_", "window_nhwc_", 1) + ("_res" if self.has_residual else "")


def window_nhwc_kernel(spec: WindowNHWCSpec) -> func.FuncOp:
    assert spec.op in WINDOW_OPS
    kb = KernelBuilder(spec.name)
    f = {name: kb.field(i) for i, name in enumerate(WINDOW_NHWC_FIELDS)}
    x, wts, out, bias, res = (kb.as_ptr(f[n]) for n in ("x", "w", "out", "bias", "residual"))
    c = f["c"]
    row_len = kb.mul(f["wi"], c)
    fill = float("-inf") if spec.op == "max" else 0.0
    with kb.loop(kb.begin, kb.end) as item:
        oy, image = kb.rem(item.iv, f["oh"]), kb.div(item.iv, f["oh"])
        rows = []  # per tap row: (valid, offset of the clamped input row)
        for a in range(spec.kh):
            iy = kb.add(kb.sub(kb.mul(oy, f["sh"]), f["ph"]), kb.mul(kb.const(a), f["dh"]))
            ok, iyc = kb.in_bounds(iy, f["h"])
            rows.append((ok, kb.mul(kb.add(kb.mul(image, f["h"]), iyc), row_len)))
        out_row = kb.mul(kb.mul(item.iv, f["ow"]), c)

        def channels(c0, wd):
            wv = ([kb.load(wts, kb.add(kb.mul(kb.const(t), c), c0), wd) for t in range(spec.kh * spec.kw)]
                  if spec.op == "conv" else [])
            neutral = kb.fconst(fill, wd)
            with kb.loop(0, f["ow"]) as ox:
                cols = []
                for b in range(spec.kw):
                    ix = kb.add(kb.sub(kb.mul(ox.iv, f["sw"]), f["pw"]), kb.mul(kb.const(b), f["dw"]))
                    ok, ixc = kb.in_bounds(ix, f["wi"])
                    cols.append((ok, kb.add(kb.mul(ixc, c), c0)))
                acc = neutral
                for a, (row_ok, row_off) in enumerate(rows):
                    for b, (col_ok, col_off) in enumerate(cols):
                        v = kb.load(x, kb.add(row_off, col_off), wd)
                        v = kb.select(kb.and_(row_ok, col_ok), v, neutral)
                        if spec.op == "conv":
                            acc = kb.fma(wv[a * spec.kw + b], v, acc)
                        elif spec.op == "max":
                            acc = kb.fmax(acc, v)
                        else:
                            acc = kb.fadd(acc, v)
                if spec.op == "avg":
                    acc = kb.fmul(acc, kb.splat(kb.load(wts, kb.add(kb.mul(oy, f["ow"]), ox.iv)), wd))
                if spec.has_bias:
                    acc = kb.fadd(acc, kb.load(bias, c0, wd))
                dst = kb.add(out_row, kb.add(kb.mul(ox.iv, c), c0))
                if spec.has_residual:
                    acc = kb.fadd(acc, kb.load(res, dst, wd))
                acc = kb.activation(spec.activation, acc, wd)
                kb.store(acc, out, dst)

        kb.strip_mined(kb.const(0), c, spec.width, channels)
    return kb.finish()
