"""col2im: scatter-add the columns of a transposed convolution into its output.

The GEMM before it computes, per (image, group), cols[Mg*KK, IS] = W^T @ X: for
output channel m and kernel tap t, row (m, t) holds every input position's
contribution, which lands at output position in*stride - pad + t*dilation. The
columns are laid out [N, M, KK, IS], so one work item is one (image, output
channel) plane: it fills the plane with the bias, then adds each tap's row over
the range of input positions that land inside the output (computed per tap and
row, so the inner loop has no bounds checks). Items own disjoint planes, so no
two workers write the same element. Three spatial dims (D, H, W); 1-D and 2-D
run with unit leading dims. With a unit W stride the inner loop is vectorized. float32 or float64.
"""
from __future__ import annotations

from dataclasses import dataclass

from xdsl.dialects import func
from xdsl.dialects.builtin import f32, f64

from pyflame_rt.dtype import DType
from pyflame_rt.targets.cpu.kernel_builder import KernelBuilder, Signature

SPATIAL = ("d", "h", "w")
COL2IM_FIELDS = ("cols", "out", "bias", "m", *(f"{p}{a}" for p in ("k", "i", "o", "s", "dl", "p") for a in SPATIAL))


@dataclass(frozen=True)
class Col2imSpec:
    width: int       # lanes along the output width (1 when the W stride is not 1)
    has_bias: bool
    dtype: DType = DType.FLOAT32  # or FLOAT64

    @property
    def name(self) -> str:
        dtype = "" if self.dtype is DType.FLOAT32 else f"_{self.dtype.value}"
        return f"col2im_w{self.width}_{'b' if self.has_bias else 'nb'}{dtype}"


def col2im_kernel(spec: Col2imSpec) -> func.FuncOp:
    kb = KernelBuilder(spec.name, Signature.of(COL2IM_FIELDS, buffers=("cols", "out", "bias")))
    f = kb.fields
    cols, out, bias = (f[n] for n in ("cols", "out", "bias"))
    elem = f64 if spec.dtype is DType.FLOAT64 else f32
    in_plane = kb.mul(kb.mul(f["id"], f["ih"]), f["iw"])
    out_plane = kb.mul(kb.mul(f["od"], f["oh"]), f["ow"])
    taps = kb.mul(kb.mul(f["kd"], f["kh"]), f["kw"])

    def ceildiv(a, s):
        """ceil(max(a, 0) / s) for s > 0."""
        return kb.ceil_div(kb.max(a, kb.const(0)), s)

    def valid(axis: str, tap):
        """Input positions i with 0 <= i*s + off < out along `axis`, as [lo, hi), and off."""
        off = kb.sub(kb.mul(tap, f[f"dl{axis}"]), f[f"p{axis}"])
        lo = ceildiv(kb.sub(kb.const(0), off), f[f"s{axis}"])
        hi = kb.min(f[f"i{axis}"], ceildiv(kb.sub(f[f"o{axis}"], off), f[f"s{axis}"]))
        return lo, kb.max(lo, hi), off

    with kb.loop(kb.begin, kb.end) as item:
        obase = kb.mul(item.iv, out_plane)
        init = kb.load(bias, kb.rem(item.iv, f["m"]), elem=elem) if spec.has_bias else kb.vconst(0.0, elem)

        def fill(i, wd):
            kb.store(kb.splat(init, wd), out, kb.add(obase, i), elem)

        kb.strip_mined(kb.const(0), out_plane, spec.width, fill)
        with kb.loop(0, f["kd"]) as td, kb.loop(0, f["kh"]) as th, kb.loop(0, f["kw"]) as tw:
            tap = kb.add(kb.mul(kb.add(kb.mul(td.iv, f["kh"]), th.iv), f["kw"]), tw.iv)
            row = kb.mul(kb.add(kb.mul(item.iv, taps), tap), in_plane)
            d_lo, d_hi, d_off = valid("d", td.iv)
            h_lo, h_hi, h_off = valid("h", th.iv)
            w_lo, w_hi, w_off = valid("w", tw.iv)
            with kb.loop(d_lo, d_hi) as z, kb.loop(h_lo, h_hi) as y:
                od = kb.add(kb.mul(z.iv, f["sd"]), d_off)
                oh = kb.add(kb.mul(y.iv, f["sh"]), h_off)
                o_row = kb.add(obase, kb.add(kb.mul(kb.add(kb.mul(od, f["oh"]), oh), f["ow"]), w_off))
                c_row = kb.add(row, kb.mul(kb.add(kb.mul(z.iv, f["ih"]), y.iv), f["iw"]))

                def scatter(x, wd):
                    dst = kb.add(o_row, kb.mul(x, f["sw"]))
                    kb.store(kb.fadd(kb.load(out, dst, wd, elem), kb.load(cols, kb.add(c_row, x), wd, elem)), out, dst,
                             elem)

                kb.strip_mined(w_lo, w_hi, spec.width, scatter)
    return kb.finish()
