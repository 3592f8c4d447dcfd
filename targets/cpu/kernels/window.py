"""Sliding-window kernels over a padded NCHW / NCDHW input: depthwise conv, max pool, average pool.

One output row (image, channel, od, oh) per work item (2-D runs with one depth tap, od = 1), vectorized along the output
width when the horizontal stride is 1 (the window's taps are then contiguous
vectors of the padded input); other strides run the same body one lane wide.
The input is padded beforehand (zeros, or -inf for max pooling, including the
extra end padding ceil_mode needs), so the kernel has no bounds checks. Output
channel c reads `cg` input channels starting at (c // m_per_g) * cg:
depthwise conv has cg = 1, pools have m_per_g = cg = 1. Average pooling
multiplies by a per-position reciprocal count map computed at compile time.

Max pooling can also track the argmax (`indices`): the flat int64 offset of each
window's first maximum in the unpadded input, offset = plane * plane_size +
d * isd + h * ish + w * isw with (d, h, w) input coordinates (row- or column-major
strides); padding never wins (it is -inf and the comparison is strict), and a
window with no value above -inf keeps -1. A NaN in a window makes its maximum NaN
(the first NaN is the argmax), as numpy's maximum does. float32, or float64 pools.
"""
from __future__ import annotations

from dataclasses import dataclass

from xdsl.dialects import func
from xdsl.dialects.builtin import f32, f64, i64
from xdsl.ir import SSAValue

from pyflame_rt.dtype import DType
from pyflame_rt.targets.cpu.kernel_builder import KernelBuilder, Signature
from pyflame_rt.targets.cpu.kernels.elementwise import activation_tag, epilogue
from pyflame_rt.targets.cpu.kernels.typed import Typed

WINDOW_FIELDS = ("x", "w", "out", "bias", "m", "m_per_g", "cg", "ch_stride", "x_bs", "wp", "oh", "ow",
                 "sh", "sw", "dh", "dw", "od", "sd_stride", "dd_stride")
# after WINDOW_FIELDS, read only by the argmax-tracking max pool: the int64 output, the input's
# plane size, depth stride and dilation, and the index strides; idx_bias = -(pads . index strides)
ARGMAX_FIELDS = ("indices", "plane_size", "sd", "dd", "idx_bias", "isd", "ish", "isw")
WINDOW_OPS = ("conv", "max", "avg")


@dataclass(frozen=True)
class WindowSpec:
    op: str          # "conv" | "max" | "avg"
    kh: int
    kw: int
    width: int       # lanes along the output width (1 when the stride is not 1)
    has_bias: bool
    activation: str  # "none" or a graph activation string
    kd: int = 1      # depth taps (3-D windows)
    argmax: bool = False  # max only: also store each window's argmax (ARGMAX_FIELDS)
    dtype: DType = DType.FLOAT32  # or FLOAT64: input, weights, bias and output

    @property
    def name(self) -> str:
        depth = f"{self.kd}x" if self.kd > 1 else ""
        op = "maxarg" if self.argmax else self.op
        dtype = "" if self.dtype is DType.FLOAT32 else f"_{self.dtype.value}"
        return (f"window_{op}_{depth}{self.kh}x{self.kw}_w{self.width}_{'b' if self.has_bias else 'nb'}"
                f"_{activation_tag(self.activation)}{dtype}")


def window_kernel(spec: WindowSpec) -> func.FuncOp:
    """One output row per work item (`_WindowEmitter._output_row`), its pixels strip-mined along the
    width (`_pixels`): taps reduced over the group's input channels, then average scale, bias and
    activation."""
    assert spec.op in WINDOW_OPS and (spec.op == "max" or not spec.argmax)
    return _WindowEmitter(spec).emit()


@dataclass(frozen=True)
class _OutputRow:
    """Output row `row` (= od * OH + oh) of plane (image, channel c) and where its windows read."""

    row: SSAValue
    c: SSAValue
    out_row: SSAValue   # out's offset of the row's first pixel
    row_base: SSAValue  # x's offset of the first window's origin in its first input channel
    w_base: SSAValue    # the conv weights of channel c
    tap_offs: list[SSAValue]  # per tap (depth, row, column order): its offset from a window's origin
    row_idx: SSAValue | None  # argmax: the flat input index of the row's window origin at ow = 0
    tap_idx: list[SSAValue] | None  # argmax: each tap's input index offset


class _WindowEmitter:
    def __init__(self, spec: WindowSpec):
        self.spec = spec
        fields = WINDOW_FIELDS + (ARGMAX_FIELDS if spec.argmax else ())
        self.kb = kb = KernelBuilder(spec.name, Signature.of(fields, buffers=(
            "x", "w", "out", "bias", *(("indices",) if spec.argmax else ()))))
        self.f = f = kb.fields
        if spec.argmax:
            self.indices = f["indices"]
        self.x, self.wts, self.out, self.bias = (f[n] for n in ("x", "w", "out", "bias"))
        self.taps = spec.kd * spec.kh * spec.kw
        self.elem = f64 if spec.dtype is DType.FLOAT64 else f32

    def emit(self) -> func.FuncOp:
        kb, f = self.kb, self.f
        rows = kb.mul(f["od"], f["oh"])
        with kb.loop(kb.begin, kb.end) as item:
            r = self._output_row(item.iv, rows)
            kb.strip_mined(kb.const(0), f["ow"], self.spec.width, lambda ow, wd: self._pixels(r, ow, wd))
        return kb.finish()

    def _output_row(self, item: SSAValue, rows: SSAValue) -> _OutputRow:
        kb, f, spec = self.kb, self.f, self.spec
        row = kb.rem(item, rows)
        od, oh = kb.div(row, f["oh"]), kb.rem(row, f["oh"])
        plane = kb.div(item, rows)
        c, image = kb.rem(plane, f["m"]), kb.div(plane, f["m"])
        cin0 = kb.mul(kb.div(c, f["m_per_g"]), f["cg"])
        row_base = kb.add(kb.add(kb.mul(image, f["x_bs"]), kb.mul(cin0, f["ch_stride"])),
                          kb.add(kb.mul(od, f["sd_stride"]), kb.mul(kb.mul(oh, f["sh"]), f["wp"])))
        out_row = kb.mul(item, f["ow"])
        tap_offs = [kb.add(kb.mul(kb.const(z), f["dd_stride"]),
                           kb.add(kb.mul(kb.const(a), kb.mul(f["dh"], f["wp"])), kb.mul(kb.const(b), f["dw"])))
                    for z in range(spec.kd) for a in range(spec.kh) for b in range(spec.kw)]
        w_base = kb.mul(c, kb.mul(f["cg"], kb.const(self.taps)))
        row_idx, tap_idx = _argmax_offsets(kb, spec, f, plane, od, oh) if spec.argmax else (None, None)
        return _OutputRow(row, c, out_row, row_base, w_base, tap_offs, row_idx, tap_idx)

    def _pixels(self, r: _OutputRow, ow: SSAValue, wd: int) -> None:
        """Output pixels [ow, ow + wd) of the row, one per lane."""
        kb, f, spec = self.kb, self.f, self.spec
        start = kb.add(r.row_base, kb.mul(ow, f["sw"]))
        init = [kb.vconst(float("-inf") if spec.op == "max" else 0.0, self.elem, wd)]
        lane_idx = None
        if spec.argmax:
            ti = Typed(kb, DType.INT64, wd)
            lane_idx = kb.add(r.row_idx, kb.mul(kb.mul(ow, f["sw"]), f["isw"]))
            lane_idx = ti.add(kb.splat(lane_idx, wd), ti.mul(kb.iota(wd), kb.splat(f["isw"], wd))) \
                if wd > 1 else lane_idx
            init.append(ti.const(-1))
        with kb.loop(0, f["cg"], carried=init) as ci:
            ci.next = self._taps(r, start, ci.iv, ci.carried, lane_idx, wd)
        self._store(r, ow, wd, *ci.results)

    def _taps(self, r: _OutputRow, start: SSAValue, ci: SSAValue, carried: list, lane_idx, wd: int) -> list:
        """The window's taps in input channel ci folded into (acc[, argmax])."""
        kb, f, spec = self.kb, self.f, self.spec
        base = kb.add(start, kb.mul(ci, f["ch_stride"]))
        wrow = kb.add(r.w_base, kb.mul(ci, kb.const(self.taps)))
        acc, *idx = carried
        ti, tf = Typed(kb, DType.INT64, wd), Typed(kb, spec.dtype, wd)
        for t, off in enumerate(r.tap_offs):
            v = kb.load(self.x, kb.add(base, off), wd, self.elem)
            if spec.argmax:  # strictly greater or the first NaN: the first maximum wins
                better = kb.and_(kb.fcmp("ugt", v, acc), kb.fcmp("ord", acc, acc))
                acc = tf.select(better, v, acc)
                at = ti.add(lane_idx, kb.splat(r.tap_idx[t], wd))
                idx = [ti.select(better, at, idx[0])]
            elif spec.op == "conv":
                acc = kb.fma(kb.splat(kb.load(self.wts, kb.add(wrow, kb.const(t)), elem=self.elem), wd), v, acc)
            elif spec.op == "max":
                acc = kb.fmaximum(acc, v)
            else:
                acc = kb.fadd(acc, v)
        return [acc, *idx]

    def _store(self, r: _OutputRow, ow: SSAValue, wd: int, acc: SSAValue, idx: SSAValue | None = None) -> None:
        """The argmax, then the pixels: average pooling's count reciprocal, bias, activation."""
        kb, f, spec = self.kb, self.f, self.spec
        if spec.argmax:
            kb.store(idx, self.indices, kb.add(r.out_row, ow), elem=i64)
        if spec.op == "avg":
            acc = kb.fmul(acc, kb.load(self.wts, kb.add(kb.mul(r.row, f["ow"]), ow), wd, self.elem))
        if spec.has_bias:
            acc = kb.fadd(acc, kb.splat(kb.load(self.bias, r.c, elem=self.elem), wd))
        acc = epilogue(kb, spec.activation, acc, wd, spec.dtype)
        kb.store(acc, self.out, kb.add(r.out_row, ow), self.elem)


def _argmax_offsets(kb: KernelBuilder, spec: WindowSpec, f: dict, plane, od, oh):
    """The flat input index of a row's window origin at ow = 0, and each tap's index offset."""
    row_idx = kb.add(kb.add(kb.mul(plane, f["plane_size"]), f["idx_bias"]),
                     kb.add(kb.mul(kb.mul(od, f["sd"]), f["isd"]), kb.mul(kb.mul(oh, f["sh"]), f["ish"])))
    steps = [kb.mul(f["dd"], f["isd"]), kb.mul(f["dh"], f["ish"]), kb.mul(f["dw"], f["isw"])]
    tap_idx = [kb.add(kb.mul(kb.const(z), steps[0]),
                      kb.add(kb.mul(kb.const(a), steps[1]), kb.mul(kb.const(b), steps[2])))
               for z in range(spec.kd) for a in range(spec.kh) for b in range(spec.kw)]
    return row_idx, tap_idx
