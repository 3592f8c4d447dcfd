"""Per-plane kernels over NC<spatial> tensors viewed as rows (n, c) x plane P.

- affine: y = x * s[c] + t[c] (inference BatchNorm with constant parameters, folded at
  compile time, and the second half of InstanceNorm), optional fused relu;
- batch_norm: inference BatchNorm whose parameters are read at run time (graph inputs):
  s[c] / sqrt(var[c] + eps) and t[c] - mean[c] * that, once per row, then affine;
- mean / max: one value per row (GlobalAveragePool / GlobalMaxPool);
- instance_norm: per-row mean and variance (two passes, no cancellation), then scale/bias;
- lrn: y = x * (bias + alpha/size * sum over the channel window of x^2)^-beta.
All vectorized along the plane with a scalar tail; one work item per row; float32 or float64
(tensors, parameters and arithmetic alike). Scalar parameters (epsilon, LRN constants) come from a
small weight array `aux`.
"""
from __future__ import annotations

from dataclasses import dataclass

from xdsl.dialects import func, llvm
from xdsl.dialects.builtin import f32, f64

from pyflame_rt.dtype import DType
from pyflame_rt.targets.cpu.kernel_builder import KernelBuilder, Signature
from pyflame_rt.targets.cpu.kernels.elementwise import activation_tag, epilogue

PLANE_FIELDS = ("x", "out", "s", "t", "aux", "c", "p", "lrn_pre", "lrn_post", "mean", "var")
PLANE_MODES = ("affine", "batch_norm", "mean", "max", "instance_norm", "lrn")


@dataclass(frozen=True)
class PlaneSpec:
    mode: str
    width: int
    activation: str = "none"
    dtype: DType = DType.FLOAT32  # or FLOAT64

    @property
    def name(self) -> str:
        dtype = "" if self.dtype is DType.FLOAT32 else f"_{self.dtype.value}"
        return f"plane_{self.mode}_w{self.width}_{activation_tag(self.activation)}{dtype}"


def _hsum(kb: KernelBuilder, v, width: int, scratch, combine, elem):
    """Reduce a vector to a scalar through a stack buffer (no extractelement needed)."""
    if width == 1:
        return v
    kb.store(v, scratch, kb.const(0), elem)
    acc = kb.load(scratch, kb.const(0), elem=elem)
    for i in range(1, width):
        acc = combine(acc, kb.load(scratch, kb.const(i), elem=elem))
    return acc


def _reduce_row(kb: KernelBuilder, x, base, p, width: int, scratch, combine, init: float, elem, value=None):
    """combine over x[base : base + p] (value(x) maps each element first)."""
    value = value or (lambda v, w: v)
    n_vec = kb.mul(kb.div(p, kb.const(width)), kb.const(width))
    with kb.loop(0, n_vec, width, carried=[kb.vconst(init, elem, width)]) as l:
        l.next = [combine(l.carried[0], value(kb.load(x, kb.add(base, l.iv), width, elem), width))]
    acc = _hsum(kb, l.results[0], width, scratch, combine, elem)
    with kb.loop(n_vec, p, 1, carried=[acc]) as l:
        l.next = [combine(l.carried[0], value(kb.load(x, kb.add(base, l.iv), elem=elem), 1))]
    return l.results[0]


def plane_kernel(spec: PlaneSpec) -> func.FuncOp:
    assert spec.mode in PLANE_MODES
    buffers = ("x", "out", "s", "t", "aux", "mean", "var")
    kb = KernelBuilder(spec.name, Signature.of(PLANE_FIELDS, buffers))
    f = kb.fields
    x, out, s, t, aux, mean_c, var_c = (f[n] for n in buffers)
    w = spec.width
    elem = f64 if spec.dtype is DType.FLOAT64 else f32
    scratch = kb.scratch(w, elem)
    p = f["p"]

    def finish(v, wd):
        return epilogue(kb, spec.activation, v, wd, spec.dtype)

    def load(buf, index, wd=1):
        return kb.load(buf, index, wd, elem)

    def store(v, buf, index):
        kb.store(v, buf, index, elem)

    with kb.loop(kb.begin, kb.end) as item:
        row = item.iv
        c = kb.rem(row, f["c"])
        base = kb.mul(row, p)
        if spec.mode in ("mean", "max"):
            combine = kb.fadd if spec.mode == "mean" else kb.fmaximum  # a NaN makes the max NaN
            r = _reduce_row(kb, x, base, p, w, scratch, combine, 0.0 if spec.mode == "mean" else float("-inf"), elem)
            if spec.mode == "mean":
                r = kb.fdiv(r, kb._ins(llvm.SIToFPOp(p, r.type)))
            store(finish(r, 1), out, row)
        elif spec.mode == "lrn":
            lo = kb.max(kb.sub(c, f["lrn_pre"]), kb.const(0))
            hi = kb.min(kb.add(c, kb.add(f["lrn_post"], kb.const(1))), f["c"])
            chan0 = kb.sub(row, c)  # row of channel 0 of this image
            k_bias, k_alpha, k_negbeta = (load(aux, kb.const(i)) for i in range(3))

            def lrn(iv, wd):
                with kb.loop(lo, hi, carried=[kb.vconst(0.0, elem, wd)]) as cc:
                    v = load(x, kb.add(kb.mul(kb.add(chan0, cc.iv), p), iv), wd)
                    cc.next = [kb.fma(v, v, cc.carried[0])]
                denom = kb.fma(cc.results[0], kb.splat(k_alpha, wd), kb.splat(k_bias, wd))
                if spec.dtype is DType.FLOAT64:  # C's pow for every lane (the f32 path's exp2 / log2 are not imports)
                    factor = kb.intrinsic("llvm.pow", denom, kb.splat(k_negbeta, wd))
                elif wd > 1:
                    factor = kb._ins(llvm.FPowOp(denom, kb.splat(k_negbeta, wd)))
                else:  # xDSL declares llvm.pow once per module: the scalar tail uses exp2/log2
                    factor = kb._ins(llvm.FExp2Op(kb.fmul(kb._ins(llvm.FLog2Op(denom)), k_negbeta)))
                store(kb.fmul(load(x, kb.add(base, iv), wd), factor), out, kb.add(base, iv))
            kb.strip_mined(kb.const(0), p, w, lrn)
        else:
            if spec.mode == "instance_norm":
                inv_p = kb.fdiv(kb.vconst(1.0, elem), kb._ins(llvm.SIToFPOp(p, elem)))
                # first + mean(x - first): exact for a constant plane (see rows.py's LayerNorm)
                first = kb.if_else(kb.cmp("sgt", p, kb.const(0)), lambda: [load(x, base)],
                                   lambda: [kb.vconst(0.0, elem)])[0]
                shifted = _reduce_row(kb, x, base, p, w, scratch, kb.fadd, 0.0, elem,
                                      lambda v, wd: kb.fsub(v, kb.splat(first, wd)))
                mean = kb.fadd(first, kb.fmul(shifted, inv_p))

                def centered_sq(v, wd):
                    d = kb.fsub(v, kb.splat(mean, wd))
                    return kb.fmul(d, d)
                var = kb.fmul(_reduce_row(kb, x, base, p, w, scratch, kb.fadd, 0.0, elem, centered_sq), inv_p)
            elif spec.mode == "batch_norm":
                mean, var = load(mean_c, c), load(var_c, c)
            center = spec.mode == "instance_norm"  # y = (x - mean) * scale + t: no cancellation
            if spec.mode in ("instance_norm", "batch_norm"):
                rstd = kb.fdiv(kb.vconst(1.0, elem), kb._ins(llvm.FSqrtOp(kb.fadd(var, load(aux, kb.const(0))))))
                scale = kb.fmul(load(s, c), rstd)
                shift = load(t, c) if center else kb.fsub(load(t, c), kb.fmul(mean, scale))
            else:
                scale, shift = load(s, c), load(t, c)

            def affine(iv, wd):
                v = load(x, kb.add(base, iv), wd)
                v = kb.fsub(v, kb.splat(mean, wd)) if center else v
                store(finish(kb.fma(v, kb.splat(scale, wd), kb.splat(shift, wd)), wd), out, kb.add(base, iv))
            kb.strip_mined(kb.const(0), p, w, affine)
    return kb.finish()
