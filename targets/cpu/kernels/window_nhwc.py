"""Channels-last sliding-window kernels: depthwise conv, max pool, average pool over NHWC.

Vectorized over channels (contiguous in NHWC), so every stride, dilation and
padding runs at full vector width, without a padded copy. One output row (image,
oy) per work item; only the tap rows inside the input are visited (a run-time
range), so rows need no checks. The row splits into edge columns, whose windows
cross the left/right border (pixel by pixel; a tap outside loads from a clamped,
valid address and its value becomes the neutral element: 0, or -inf for max),
and interior columns without checks, computed in register blocks of `block`
output pixels: per tap row, each distinct input column of the block is loaded
once and feeds every pixel whose window covers it (the horizontal stride and
dilation are compile-time constants for this), with `block` independent
accumulators. The remainder of the interior takes halving blocks, then single
pixels. Channels are the innermost loop, so a block reads contiguous memory.
Depthwise weights are [kh*kw, C]; average pooling multiplies by a per-position
reciprocal count map [OH*OW] computed at compile time (it encodes
count_include_pad and ceil_mode). A depthwise conv's residual (laid out like the
output) is added before the activation. Max pooling also runs on 8-bit integers
(`dtype`: the codes of a quantized tensor; the max is exact on them), `width`
bytes per vector and the type's lowest value as the neutral element.
"""
from __future__ import annotations

from dataclasses import dataclass

from xdsl.dialects import func

from pyflame_rt.dtype import DType
from pyflame_rt.targets.cpu.kernel_builder import KernelBuilder, Signature
from pyflame_rt.targets.cpu.kernels.elementwise import epilogue
from pyflame_rt.targets.cpu.kernels.typed import Typed, storage_type
from pyflame_rt.targets.cpu.kernels.window import WINDOW_OPS, WindowSpec

WINDOW_NHWC_FIELDS = ("x", "w", "out", "bias", "residual", "c", "h", "wi", "oh", "ow", "sh", "dh", "ph", "pw")
# the integer types max pooling runs on (quantized codes)
INTEGER_MAX_DTYPES = (DType.INT8, DType.UINT8)


@dataclass(frozen=True)
class WindowNHWCSpec(WindowSpec):
    """WindowSpec's fields (`width`: lanes along the channels here), plus a fused residual, the
    horizontal stride and dilation (static: they fix which loads a pixel block shares) and the
    number of output pixels per register block. `dtype` is the element type of x and out: float32,
    or (max pooling only) int8 / uint8."""

    has_residual: bool = False  # add a tensor laid out like the output before the activation
    sw: int = 1
    dw: int = 1
    block: int = 8
    dtype: DType = DType.FLOAT32

    @property
    def name(self) -> str:
        return (super().name.replace("window_", "window_nhwc_", 1) + ("_res" if self.has_residual else "")
                + f"_s{self.sw}d{self.dw}x{self.block}" + ("" if self.dtype is DType.FLOAT32 else f"_{self.dtype.value}"))

    @property
    def float_only_parts(self) -> bool:
        """Whether the spec uses what computes in float32 only: weights, bias, residual, activation."""
        return self.op != "max" or self.has_bias or self.has_residual or self.activation != "none"


def window_nhwc_kernel(spec: WindowNHWCSpec) -> func.FuncOp:
    assert spec.op in WINDOW_OPS and spec.block >= 1
    assert spec.dtype is DType.FLOAT32 or spec.dtype in INTEGER_MAX_DTYPES and not spec.float_only_parts
    buffers = ("x", "w", "out", "bias", "residual")
    kb = KernelBuilder(spec.name, Signature.of(WINDOW_NHWC_FIELDS, buffers))
    f = kb.fields
    ptr = {n: f[n] for n in buffers}
    lo, hi = _interior_columns(kb, spec, f["wi"], f["ow"], f["pw"])
    with kb.loop(kb.begin, kb.end) as item:
        oy, image = kb.rem(item.iv, f["oh"]), kb.div(item.iv, f["oh"])
        row = _Row(kb, spec, f, ptr, item.iv, oy, image)
        for first, last in ((kb.const(0), lo), (hi, f["ow"])):
            with kb.loop(first, last) as ox:
                row.pixels(ox.iv, 1, check_cols=True)
        step = kb.const(spec.block)
        ox = kb.add(lo, kb.mul(kb.div(kb.sub(hi, lo), step), step))
        with kb.loop(lo, ox, spec.block) as blk:
            row.pixels(blk.iv, spec.block, check_cols=False)
        size = spec.block // 2  # the remainder (< block pixels) in halving blocks, then pixel by pixel
        while size > 1:
            fits = kb.cmp("sge", kb.sub(hi, ox), kb.const(size))
            with kb.if_(fits):
                row.pixels(ox, size, check_cols=False)
            ox = kb.select(fits, kb.add(ox, kb.const(size)), ox)
            size //= 2
        with kb.loop(ox, hi) as px:
            row.pixels(px.iv, 1, check_cols=False)
    return kb.finish()


def _interior_columns(kb: KernelBuilder, spec: WindowNHWCSpec, wi, ow, pw):
    """[lo, hi): the output columns whose whole window lies inside the input row (lo <= hi <= ow)."""
    sw = kb.const(spec.sw)
    lo = kb.min(kb.ceil_div(pw, spec.sw), ow)
    # the last tap ox*sw - pw + (kw-1)*dw <= wi-1, i.e. ox < (wi - 1 + pw - (kw-1)*dw + sw) // sw
    span = kb.add(kb.sub(wi, kb.const(1 + (spec.kw - 1) * spec.dw - spec.sw)), pw)
    hi = kb.max(kb.min(kb.div(kb.max(span, kb.const(0)), sw), ow), lo)
    return lo, hi


class _Row:
    """Emits the computation of consecutive output pixels of one output row (image, oy), all
    channels. Only the tap rows inside the input are visited (a run-time range), so rows need
    no bounds checks."""

    def __init__(self, kb, spec, f, ptr, item, oy, image):
        self.kb, self.spec, self.f, self.ptr, self.oy = kb, spec, f, ptr, oy
        self.out_row = kb.mul(kb.mul(item, f["ow"]), f["c"])
        top = kb.sub(kb.mul(oy, f["sh"]), f["ph"])  # input row of tap row 0
        dh = f["dh"]
        # tap rows a with 0 <= top + a*dh < h: a_lo = ceil(-top/dh), a_hi = floor((h-1-top)/dh) + 1
        self.a_lo = kb.max(kb.div(kb.add(kb.sub(kb.const(0), top), kb.sub(dh, kb.const(1))), dh), kb.const(0))
        a_hi = kb.div(kb.max(kb.add(kb.sub(f["h"], kb.add(top, kb.const(1))), dh), kb.const(0)), dh)
        self.a_hi = kb.min(a_hi, kb.const(spec.kh))
        self.top, self.image_row0 = top, kb.mul(image, f["h"])

    def pixels(self, ox0, count: int, *, check_cols: bool) -> None:
        """Output pixels ox0 .. ox0+count-1; channels strip-mined (full vectors, then scalars)."""
        kb, spec, f = self.kb, self.spec, self.f
        elem = storage_type(spec.dtype)
        x0 = kb.sub(kb.mul(ox0, kb.const(spec.sw)), f["pw"])  # input column of the first tap
        cols = {}  # distinct input column offset from x0 -> the (pixel, tap column) pairs it feeds
        for p in range(count):
            for b in range(spec.kw):
                cols.setdefault(p * spec.sw + b * spec.dw, []).append((p, b))
        col_idx = {j: kb.in_bounds(kb.add(x0, kb.const(j)), f["wi"]) if check_cols
                   else (None, kb.add(x0, kb.const(j))) for j in cols}

        def channels(c0, wd):
            typed = Typed(kb, spec.dtype, wd)
            neutral = self._neutral(typed)
            with kb.loop(self.a_lo, self.a_hi, carried=[neutral] * count) as a:
                iy = kb.add(self.top, kb.mul(a.iv, f["dh"]))
                row_off = kb.mul(kb.mul(kb.add(self.image_row0, iy), f["wi"]), f["c"])
                w_row = kb.mul(a.iv, kb.const(spec.kw))
                wv = ([kb.load(self.ptr["w"], kb.add(kb.mul(kb.add(w_row, kb.const(b)), f["c"]), c0), wd)
                       for b in range(spec.kw)] if spec.op == "conv" else [])
                accs = list(a.carried)
                for j, uses in cols.items():
                    col_ok, ix = col_idx[j]
                    v = typed.load(self.ptr["x"], kb.add(row_off, kb.add(kb.mul(ix, f["c"]), c0)))
                    if col_ok is not None:
                        v = kb.select(col_ok, v, neutral)
                    for p, b in uses:
                        accs[p] = self._combine(typed, accs[p], v, wv[b] if wv else None)
                if count == spec.block and wd == spec.width:
                    # the next block's new input columns (full channel vectors; not per scalar
                    # of a channel tail): the hardware prefetcher does not follow
                    # loads that step by a channel vector across many columns
                    last = (count - 1) * spec.sw + (spec.kw - 1) * spec.dw
                    for j in range(last + 1, last + 1 + count * spec.sw):
                        kb.prefetch(self.ptr["x"], kb.add(row_off, kb.add(kb.mul(kb.add(x0, kb.const(j)), f["c"]), c0)),
                                    elem)
                a.next = accs
            for p, acc in enumerate(a.results):
                self._store(typed, kb.add(ox0, kb.const(p)), acc, c0)
            if count == spec.block and wd == spec.width:
                # the next block's output lines, with write intent: stores to lines not in cache
                # wait on their fetch
                for p in range(count, 2 * count):
                    pixel = kb.add(self.out_row, kb.mul(kb.add(ox0, kb.const(p)), f["c"]))
                    kb.prefetch(self.ptr["out"], kb.add(pixel, c0), elem, write=True)

        kb.strip_mined(kb.const(0), f["c"], spec.width, channels)

    def _neutral(self, typed: Typed):
        """What a tap outside the input contributes: 0, or for max -inf (the lowest integer)."""
        if self.spec.op != "max":
            return typed.const(0.0)
        return typed.const(float("-inf") if typed.is_float else typed.integer_range(8)[0])

    def _combine(self, typed: Typed, acc, v, w):
        if self.spec.op == "conv":
            return self.kb.fma(w, v, acc)
        return typed.max(acc, v) if self.spec.op == "max" else self.kb.fadd(acc, v)  # NaN-propagating

    def _store(self, typed: Typed, ox, acc, c0) -> None:
        """The epilogue of one output pixel: count map, bias, residual, activation, store."""
        kb, spec, f, wd = self.kb, self.spec, self.f, typed.width
        if spec.op == "avg":
            acc = kb.fmul(acc, kb.splat(kb.load(self.ptr["w"], kb.add(kb.mul(self.oy, f["ow"]), ox)), wd))
        if spec.has_bias:
            acc = kb.fadd(acc, kb.load(self.ptr["bias"], c0, wd))
        dst = kb.add(self.out_row, kb.add(kb.mul(ox, f["c"]), c0))
        if spec.has_residual:
            acc = kb.fadd(acc, kb.load(self.ptr["residual"], dst, wd))
        typed.store(epilogue(kb, spec.activation, acc, wd), self.ptr["out"], dst)  # integers: no activation
