"""Vectorized exp / log / tanh / sigmoid / erf for float32, written with the kernel builder.

Range reduction plus a short polynomial (Cephes-style exp/log/tanh, a rational
erf), about 1e-7 relative error over float32's range (checked in the unit
tests against numpy in float64). No libm calls: every lane stays in vector
registers, and Softmax, Sigmoid, Tanh, GELU and Erf all share these bodies.
Values are computed in f32 (f16 tensors are widened first); exp also in f64 (float64 Softmax).
float64 log, tanh and erf are the C library's (`float64_by_libm`).
"""
from __future__ import annotations

import functools
import math
from dataclasses import dataclass

from xdsl.dialects import arith, llvm
from xdsl.ir import SSAValue

from pyflame_rt.dtype import DType
from pyflame_rt.errors import UnsupportedOperatorError
from pyflame_rt.targets.cpu.kernel_builder import C_FUNCTIONS
from pyflame_rt.targets.cpu.kernels.typed import SINGLE_PRECISION, Typed

LOG2E = 1.44269504088896341
LN2_HI, LN2_LO = 0.693359375, -2.12194440e-4
_FLT_MIN = 2.0 ** -126  # the least normal float32
_EXP_POLY = (1.9875691500e-4, 1.3981999507e-3, 8.3334519073e-3, 4.1665795894e-2,
             1.6666665459e-1, 5.0000001201e-1)
_LOG_POLY = (7.0376836292e-2, -1.1514610310e-1, 1.1676998740e-1, -1.2420140846e-1,
             1.4249322787e-1, -1.6668057665e-1, 2.0000714765e-1, -2.4999993993e-1, 3.3333331174e-1)
_TANH_POLY = (-5.70498872745e-3, 2.06390887954e-2, -5.37397155531e-2, 1.33314422036e-1,
              -3.33332819422e-1)
_ERF_P = (-2.72614225801306e-10, 2.77068142495902e-08, -2.10102402082508e-06, -5.69250639462346e-05,
          -7.34990630326855e-04, -2.95459980854025e-03, -1.60960333262415e-02)
_ERF_Q = (-1.45660718464996e-05, -2.13374055278905e-04, -1.68282697438203e-03, -7.37332916720468e-03,
          -1.42647390514189e-02)


def _poly(t: Typed, x: SSAValue, coefs) -> SSAValue:
    """Horner: ((c0 * x + c1) * x + c2) ..."""
    acc = t.const(coefs[0])
    for c in coefs[1:]:
        acc = t.fma(acc, x, t.const(c))
    return acc


def _single_precision(t: Typed, what: str) -> None:
    """The approximations are float32-accurate (and use float32 bit tricks): refuse wider types."""
    if t.dtype not in SINGLE_PRECISION:
        raise UnsupportedOperatorError(f"{what} runs on float32/float16 on the CPU backend, not {t.dtype.value}")


def float64_by_libm(fn):
    """`fn(t, *args)`'s polynomial for the single-precision types, and for float64 the C library's
    function of the same name (accurate to float64, one call per lane; native_object.ALLOWED_IMPORTS
    lets the loader resolve them): through LLVM's intrinsic where there is one, which LLVM knows to
    be pure, else a direct call."""
    @functools.wraps(fn)
    def by_type(t: Typed, *args: SSAValue) -> SSAValue:
        if t.dtype is DType.FLOAT64:
            if fn.__name__ in C_FUNCTIONS:
                return t.kb.c_function(fn.__name__, *args)
            return t.kb.intrinsic(f"llvm.{fn.__name__}", *args)
        _single_precision(t, fn.__name__)
        return fn(t, *args)
    return by_type


def _i32(t: Typed) -> Typed:
    return t.like(DType.INT32)


@dataclass(frozen=True)
class _ExpConsts:
    """exp's constants for one float format: ln2 split (hi has trailing zero bits, so n * hi is
    exact), the clamp [lowest, highest] (e**lowest rounds to 0, e**highest overflows to inf; in
    between, 2**(n // 2) and 2**(n - n // 2) are normal numbers), the polynomial
    p(r) ~ (e**r - 1 - r) / r**2 on |r| <= ln2/2, and the exponent field's bias and position."""
    ln2_hi: float
    ln2_lo: float
    lowest: float
    highest: float
    flush: float   # Softmax's clamp: 2**n for n = round(flush / ln2) has a zero biased exponent
    poly: tuple
    bias: int
    mantissa_bits: int
    int_dtype: DType


# float32: n = round(x / ln2) in [-150, 128]; e**-104 < 2**-150 (half the least subnormal)
_EXP_F32 = _ExpConsts(LN2_HI, LN2_LO, -104.0, 89.0, -88.3762626647949, _EXP_POLY, 127, 23, DType.INT32)
# float64: Taylor terms 1/k! up to k = 13 (the r**12 term is < 1e-17 relative on |r| <= ln2/2);
# n in [-1076, 1024]
_EXP_F64 = _ExpConsts(6.93147180369123816490e-01, 1.90821492927058770002e-10, -746.0, 710.0, -709.43,
                      tuple(1.0 / math.factorial(k) for k in range(13, 1, -1)), 1023, 52, DType.INT64)


def exp(t: Typed, x: SSAValue, nonpositive: bool = False) -> SSAValue:
    """e**x = p(r) * 2**n, n = round(x / ln2), r = x - n*ln2 (ln2 split in two for exactness), to
    within about an ulp up to the overflow threshold, inf beyond, subnormal results rounded once.
    float32 (and the half types, computed in float32) or float64; NaN stays NaN. `nonpositive`:
    the caller knows x <= 0 or NaN (Softmax's x - max): no upper clamp, and results below the
    least normal number flush to 0 (one power of two fewer: Softmax's inner loop)."""
    if t.dtype is not DType.FLOAT64:
        _single_precision(t, "exp")
    e = _EXP_F64 if t.dtype is DType.FLOAT64 else _EXP_F32
    x = t.at_least(x, t.const(e.flush if nonpositive else e.lowest))
    if not nonpositive:
        x = t.at_most(x, t.const(e.highest))
    n = t.kb.intrinsic("llvm.floor", t.fma(x, t.const(LOG2E), t.const(0.5)))
    r = t.sub(t.sub(x, t.mul(n, t.const(e.ln2_hi))), t.mul(n, t.const(e.ln2_lo)))
    p = _poly(t, r, e.poly)
    y = t.add(t.fma(t.mul(p, r), r, r), t.const(1.0))
    return _times_pow2(t, y, n, e, nonpositive)


def _times_pow2(t: Typed, y: SSAValue, n: SSAValue, e: _ExpConsts, nonpositive: bool) -> SSAValue:
    """y * 2**n for y in [1/2, 2] and an integral float n from x in e's clamp, rounded once (into
    the subnormals, or to inf): through two normal powers of two, the first product exact.
    A power 2**(k - bias) is k shifted into the exponent field, k an integer placed in the low
    mantissa bits by adding 1.5 * 2**mantissa_bits (that constant's bits shift out; they are
    even, so halving k halves the integer)."""
    kb = t.kb
    it = t.like(e.int_dtype)

    def low_bits(offset: int) -> SSAValue:  # the integer n + offset
        return kb.cast(llvm.BitcastOp, t.add(n, t.const(offset + 1.5 * 2.0 ** e.mantissa_bits)), it.elem)

    def power(k: SSAValue) -> SSAValue:
        return kb.cast(llvm.BitcastOp, kb._ins(arith.ShLIOp(k, it.const(e.mantissa_bits))), t.elem)

    if nonpositive:  # Softmax: one power, whose biased exponent n + bias is 0 (a zero) below 2**-126
        return t.mul(y, power(low_bits(e.bias)))
    k = low_bits(2 * e.bias)
    half = kb._ins(arith.ShRSIOp(k, it.const(1)))  # n // 2 + bias; k - half = n - n // 2 + bias
    return t.mul(t.mul(y, power(half)), power(it.sub(k, half)))


@float64_by_libm
def log(t: Typed, x: SSAValue) -> SSAValue:
    """x = m * 2**e with m in [sqrt(1/2), sqrt(2)); log x = e*ln2 + log1p-polynomial(m - 1).
    A subnormal x is scaled by 2**23 first (its exponent field would read 0)."""
    kb = t.kb
    it = _i32(t)
    subnormal = t.cmp("lt", x, t.const(_FLT_MIN))  # also x <= 0: replaced below
    bits = kb.cast(llvm.BitcastOp, t.select(subnormal, t.mul(x, t.const(2.0 ** 23)), x), it.elem)
    e_int = it.sub(kb._ins(arith.AndIOp(kb._ins(arith.ShRSIOp(bits, it.const(23))), it.const(0xFF))),
                   it.select(subnormal, it.const(126 + 23), it.const(126)))
    m_bits = kb._ins(arith.OrIOp(kb._ins(arith.AndIOp(bits, it.const(0x007FFFFF))), it.const(0x3F000000)))
    m = kb.cast(llvm.BitcastOp, m_bits, t.elem)  # in [0.5, 1)
    e = kb.cast(llvm.SIToFPOp, e_int, t.elem)
    small = t.cmp("lt", m, t.const(0.707106781186547524))
    e = t.select(small, t.sub(e, t.const(1.0)), e)
    f = t.sub(t.select(small, t.add(m, m), m), t.const(1.0))
    z = t.mul(f, f)
    y = t.mul(t.mul(_poly(t, f, _LOG_POLY), f), z)
    y = t.fma(e, t.const(LN2_LO), y)
    y = t.fma(z, t.const(-0.5), y)
    out = t.fma(e, t.const(LN2_HI), t.add(f, y))
    # special values: log(0) = -inf, log(x < 0) = NaN, log(inf) = inf, NaN stays NaN
    inf = t.const(float("inf"))
    out = t.select(t.cmp("eq", x, t.const(0.0)), t.const(float("-inf")), out)
    out = t.select(t.cmp("lt", x, t.const(0.0)), t.const(float("nan")), out)
    out = t.select(t.cmp("eq", x, inf), inf, out)
    return t.select(t.isnan(x), x, out)


@float64_by_libm
def tanh(t: Typed, x: SSAValue) -> SSAValue:
    """Odd polynomial below |x| = 0.625 (no cancellation), else 1 - 2 / (e**(2|x|) + 1) with x's sign."""
    kb = t.kb
    a = t.abs(x)
    z = t.mul(x, x)
    small = t.fma(t.mul(_poly(t, z, _TANH_POLY), z), x, x)
    big = t.sub(t.const(1.0), t.div(t.const(2.0), t.add(exp(t, t.add(a, a)), t.const(1.0))))
    big = kb.intrinsic("llvm.copysign", big, x)
    return t.select(t.cmp("lt", a, t.const(0.625)), small, big)


def sigmoid(t: Typed, x: SSAValue) -> SSAValue:
    return t.div(t.const(1.0), t.add(t.const(1.0), exp(t, t.neg(x))))


@float64_by_libm
def erf(t: Typed, x: SSAValue) -> SSAValue:
    """Rational approximation x*P(x^2)/Q(x^2) on [-4, 4] (erf is +-1 to f32 precision beyond)."""
    xc = t.at_most(t.at_least(x, t.const(-4.0)), t.const(4.0))  # NaN stays NaN
    x2 = t.mul(xc, xc)
    return t.div(t.mul(xc, _poly(t, x2, _ERF_P)), _poly(t, x2, _ERF_Q))
