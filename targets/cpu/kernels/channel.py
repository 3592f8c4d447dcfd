"""Per-plane kernels over NC<spatial> tensors viewed as rows (n, c) x plane P.

- affine: y = x * s[c] + t[c] (inference BatchNorm with constant parameters, folded at
  compile time, and the second half of InstanceNorm), optional fused relu;
- batch_norm: inference BatchNorm whose parameters are read at run time (graph inputs):
  s[c] / sqrt(var[c] + eps) and t[c] - mean[c] * that, once per row, then affine;
- mean / max: one value per row (GlobalAveragePool / GlobalMaxPool);
- instance_norm: per-row mean and variance (two passes, no cancellation), then scale/bias;
- lrn: y = x * (bias + alpha/size * sum over the channel window of x^2)^-beta.
All vectorized along the plane with a scalar tail; one work item per row.
Scalar parameters (epsilon, LRN constants) come from a small weight array `aux`.
"""
from __future__ import annotations

from dataclasses import dataclass

from xdsl.dialects import func, llvm

from pyflame_rt.targets.cpu.kernel_builder import KernelBuilder, Signature
from pyflame_rt.targets.cpu.kernels.elementwise import activation_tag, epilogue

PLANE_FIELDS = ("x", "out", "s", "t", "aux", "c", "p", "lrn_pre", "lrn_post", "mean", "var")
PLANE_MODES = ("affine", "batch_norm", "mean", "max", "instance_norm", "lrn")


@dataclass(frozen=True)
class PlaneSpec:
    mode: str
    width: int
    activation: str = "none"

    @property
    def name(self) -> str:
        return f"plane_{self.mode}_w{self.width}_{activation_tag(self.activation)}"


def _hsum(kb: KernelBuilder, v, width: int, scratch, combine):
    """Reduce a vector to a scalar through a stack buffer (no extractelement needed)."""
    if width == 1:
        return v
    kb.store(v, scratch, kb.const(0))
    acc = kb.load(scratch, kb.const(0))
    for i in range(1, width):
        acc = combine(acc, kb.load(scratch, kb.const(i)))
    return acc


def _reduce_row(kb: KernelBuilder, x, base, p, width: int, scratch, combine, init: float, value=None):
    """combine over x[base : base + p] (value(x) maps each element first)."""
    value = value or (lambda v, w: v)
    n_vec = kb.mul(kb.div(p, kb.const(width)), kb.const(width))
    with kb.loop(0, n_vec, width, carried=[kb.fconst(init, width)]) as l:
        l.next = [combine(l.carried[0], value(kb.load(x, kb.add(base, l.iv), width), width))]
    acc = _hsum(kb, l.results[0], width, scratch, combine)
    with kb.loop(n_vec, p, 1, carried=[acc]) as l:
        l.next = [combine(l.carried[0], value(kb.load(x, kb.add(base, l.iv)), 1))]
    return l.results[0]


def plane_kernel(spec: PlaneSpec) -> func.FuncOp:
    assert spec.mode in PLANE_MODES
    buffers = ("x", "out", "s", "t", "aux", "mean", "var")
    kb = KernelBuilder(spec.name, Signature.of(PLANE_FIELDS, buffers))
    f = kb.fields
    x, out, s, t, aux, mean_c, var_c = (f[n] for n in buffers)
    w = spec.width
    scratch = kb.scratch(w)
    p = f["p"]

    def finish(v, wd):
        return epilogue(kb, spec.activation, v, wd)

    with kb.loop(kb.begin, kb.end) as item:
        row = item.iv
        c = kb.rem(row, f["c"])
        base = kb.mul(row, p)
        if spec.mode in ("mean", "max"):
            combine = kb.fadd if spec.mode == "mean" else kb.fmaximum  # a NaN makes the max NaN
            r = _reduce_row(kb, x, base, p, w, scratch, combine, 0.0 if spec.mode == "mean" else float("-inf"))
            if spec.mode == "mean":
                r = kb.fdiv(r, kb._ins(llvm.SIToFPOp(p, r.type)))
            kb.store(finish(r, 1), out, row)
        elif spec.mode == "lrn":
            lo = kb.max(kb.sub(c, f["lrn_pre"]), kb.const(0))
            hi = kb.min(kb.add(c, kb.add(f["lrn_post"], kb.const(1))), f["c"])
            chan0 = kb.sub(row, c)  # row of channel 0 of this image
            k_bias, k_alpha, k_negbeta = (kb.load(aux, kb.const(i)) for i in range(3))

            def lrn(iv, wd):
                with kb.loop(lo, hi, carried=[kb.fconst(0.0, wd)]) as cc:
                    v = kb.load(x, kb.add(kb.mul(kb.add(chan0, cc.iv), p), iv), wd)
                    cc.next = [kb.fma(v, v, cc.carried[0])]
                denom = kb.fma(cc.results[0], kb.splat(k_alpha, wd), kb.splat(k_bias, wd))
                if wd > 1:
                    factor = kb._ins(llvm.FPowOp(denom, kb.splat(k_negbeta, wd)))
                else:  # xDSL declares llvm.pow once per module: the scalar tail uses exp2/log2
                    factor = kb._ins(llvm.FExp2Op(kb.fmul(kb._ins(llvm.FLog2Op(denom)), k_negbeta)))
                kb.store(kb.fmul(kb.load(x, kb.add(base, iv), wd), factor), out, kb.add(base, iv))
            kb.strip_mined(kb.const(0), p, w, lrn)
        else:
            if spec.mode == "instance_norm":
                inv_p = kb.fdiv(kb.fconst(1.0), kb._ins(llvm.SIToFPOp(p, kb.fconst(0.0).type)))
                # first + mean(x - first): exact for a constant plane (see rows.py's LayerNorm)
                first = kb.if_else(kb.cmp("sgt", p, kb.const(0)), lambda: [kb.load(x, base)],
                                   lambda: [kb.fconst(0.0)])[0]
                shifted = _reduce_row(kb, x, base, p, w, scratch, kb.fadd, 0.0,
                                      lambda v, wd: kb.fsub(v, kb.splat(first, wd)))
                mean = kb.fadd(first, kb.fmul(shifted, inv_p))

                def centered_sq(v, wd):
                    d = kb.fsub(v, kb.splat(mean, wd))
                    return kb.fmul(d, d)
                var = kb.fmul(_reduce_row(kb, x, base, p, w, scratch, kb.fadd, 0.0, centered_sq), inv_p)
            elif spec.mode == "batch_norm":
                mean, var = kb.load(mean_c, c), kb.load(var_c, c)
            center = spec.mode == "instance_norm"  # y = (x - mean) * scale + t: no cancellation
            if spec.mode in ("instance_norm", "batch_norm"):
                rstd = kb.fdiv(kb.fconst(1.0), kb._ins(llvm.FSqrtOp(kb.fadd(var, kb.load(aux, kb.const(0))))))
                scale = kb.fmul(kb.load(s, c), rstd)
                shift = kb.load(t, c) if center else kb.fsub(kb.load(t, c), kb.fmul(mean, scale))
            else:
                scale, shift = kb.load(s, c), kb.load(t, c)

            def affine(iv, wd):
                v = kb.load(x, kb.add(base, iv), wd)
                v = kb.fsub(v, kb.splat(mean, wd)) if center else v
                kb.store(finish(kb.fma(v, kb.splat(scale, wd), kb.splat(shift, wd)), wd), out, kb.add(base, iv))
            kb.strip_mined(kb.const(0), p, w, affine)
    return kb.finish()
