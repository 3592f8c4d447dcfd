"""Scalar interpolation helpers shared by the resampling kernels: Keys cubic coefficients and
coordinate reflection (float32 values of a KernelBuilder)."""
from __future__ import annotations

from xdsl.dialects.builtin import i64
from xdsl.ir import SSAValue

from pyflame_rt.targets.cpu.kernel_builder import KernelBuilder


def to_int(kb: KernelBuilder, x: SSAValue) -> SSAValue:
    """x truncated toward zero to i64, saturating (NaN gives 0): an index to clamp, never poison."""
    return kb.intrinsic("llvm.fptosi.sat", x, result_type=i64, overloads=[i64, x.type])


def cubic_coefficients(kb: KernelBuilder, t: SSAValue, a: float) -> list[SSAValue]:
    """Weights of the taps at -1, 0, 1, 2 from the sample at offset t in [0, 1) (Keys' cubic
    convolution with coefficient a, as ONNX Resize / GridSample define it)."""
    one = kb.fconst(1.0)

    def outer(d):  # |d| in [1, 2]
        return kb.fsub(kb.fmul(kb.fadd(kb.fmul(kb.fsub(kb.fmul(kb.fconst(a), d), kb.fconst(5 * a)), d),
                                       kb.fconst(8 * a)), d), kb.fconst(4 * a))

    def inner(d):  # |d| in [0, 1]
        return kb.fadd(kb.fmul(kb.fmul(kb.fsub(kb.fmul(kb.fconst(a + 2), d), kb.fconst(a + 3)), d), d), one)

    return [outer(kb.fadd(t, one)), inner(t), inner(kb.fsub(one, t)), outer(kb.fsub(kb.fconst(2.0), t))]


def reflect(kb: KernelBuilder, x: SSAValue, lo: SSAValue, hi: SSAValue) -> SSAValue:
    """x reflected by the nearer bound until it lies in [lo, hi] (x itself inside)."""
    span = kb.fsub(hi, lo)
    below, above = kb.fcmp("olt", x, lo), kb.fcmp("ogt", x, hi)
    dx = kb.select(below, kb.fsub(lo, x), kb.fsub(x, hi))
    n = kb.intrinsic("llvm.floor", kb.fdiv(dx, span))
    r = kb.fsub(dx, kb.fmul(n, span))
    odd = kb.cmp("ne", kb.and_(to_int(kb, n), kb.const(1)), kb.const(0))
    near, far = kb.select(below, kb.fadd(lo, r), kb.fsub(hi, r)), kb.select(below, kb.fsub(hi, r), kb.fadd(lo, r))
    return kb.select(kb.or_(below, above), kb.select(odd, far, near), x)
