"""Vectorized trigonometric, inverse trigonometric and hyperbolic functions for float32.

Cephes-style range reduction plus short polynomials (about 1e-7 relative error where the
functions are well conditioned, checked against numpy in the unit tests); no libm calls, so
every lane stays in vector registers. Branches are computed for all lanes and blended.
The hyperbolic functions reuse fast_math's exp / log, with polynomials near 0 where those
would cancel. float64 sin ... atanh are the C library's (fast_math.float64_by_libm).
"""
from __future__ import annotations

from math import log as _ln, pi

from xdsl.ir import SSAValue

from pyflame_rt.targets.cpu.kernels import fast_math as fm
from pyflame_rt.targets.cpu.kernels.fast_math import _poly, float64_by_libm
from pyflame_rt.targets.cpu.kernels.typed import Typed

# pi/4 split in three so y * DP1 is exact (Cody-Waite)
_DP1, _DP2, _DP3 = 0.78515625, 2.4187564849853515625e-4, 3.77489497744594108e-8
_SIN_POLY = (-1.9515295891e-4, 8.3321608736e-3, -1.6666654611e-1)
_COS_POLY = (2.443315711809948e-5, -1.388731625493765e-3, 4.166664568298827e-2)
_ATAN_POLY = (8.05374449538e-2, -1.38776856032e-1, 1.99777106478e-1, -3.33329491539e-1)
_ASIN_POLY = (4.2163199048e-2, 2.4181311049e-2, 4.5470025998e-2, 7.4953002686e-2, 1.6666752422e-1)
_SINH_POLY = (2.03721912945e-4, 8.33028376239e-3, 1.66667160211e-1)
_ASINH_POLY = (2.0122003309e-2, -4.2699340972e-2, 7.4847586088e-2, -1.6666288134e-1)
_ATANH_POLY = (1.81740078349e-1, 8.24370301058e-2, 1.46691431730e-1, 1.99782164500e-1, 3.33337300303e-1)
_LN2 = _ln(2.0)
_HUGE = 1500.0  # beyond it, asinh / acosh = log(2|x|) (x*x would lose range)
FUNCTIONS = ("sin", "cos", "tan", "asin", "acos", "atan", "sinh", "cosh", "asinh", "acosh", "atanh")


def _odd(t: Typed, x: SSAValue, coefs) -> SSAValue:
    """x + x**3 * P(x**2)."""
    z = t.mul(x, x)
    return t.fma(t.mul(_poly(t, z, coefs), z), x, x)


def _sin_cos_parts(t: Typed, a: SSAValue):
    """For a >= 0: (sin(z), cos(z), q) with a = z + q*pi/4, q in {0, 2, 4, 6} and |z| <= pi/4."""
    kb = t.kb
    y = kb.intrinsic("llvm.floor", t.mul(a, t.const(4 / pi)))
    odd = t.cmp("ne", t.mul(kb.intrinsic("llvm.floor", t.mul(y, t.const(0.5))), t.const(2.0)), y)
    y = t.select(odd, t.add(y, t.const(1.0)), y)
    z = t.fma(y, t.const(-_DP3), t.fma(y, t.const(-_DP2), t.fma(y, t.const(-_DP1), a)))
    q = t.sub(y, t.mul(kb.intrinsic("llvm.floor", t.mul(y, t.const(0.125))), t.const(8.0)))
    zz = t.mul(z, z)
    s = _odd(t, z, _SIN_POLY)
    c = t.add(t.fma(t.mul(_poly(t, zz, _COS_POLY), zz), zz, t.mul(zz, t.const(-0.5))), t.const(1.0))
    return s, c, q


def _quadrant(t: Typed, q, first, second):
    """first for q = 0, second for q = 2, -first for q = 4, -second for q = 6."""
    v = t.select(t.cmp("eq", t.sub(q, t.mul(t.kb.intrinsic("llvm.floor", t.mul(q, t.const(0.25))),
                                             t.const(4.0))), t.const(2.0)), second, first)
    return t.select(t.cmp("ge", q, t.const(4.0)), t.neg(v), v)


@float64_by_libm
def sin(t: Typed, x: SSAValue) -> SSAValue:
    s, c, q = _sin_cos_parts(t, t.abs(x))
    r = _quadrant(t, q, s, c)
    return t.select(t.cmp("lt", x, t.const(0.0)), t.neg(r), r)


@float64_by_libm
def cos(t: Typed, x: SSAValue) -> SSAValue:
    s, c, q = _sin_cos_parts(t, t.abs(x))
    return _quadrant(t, q, c, t.neg(s))


@float64_by_libm
def tan(t: Typed, x: SSAValue) -> SSAValue:
    s, c, q = _sin_cos_parts(t, t.abs(x))
    r = t.div(_quadrant(t, q, s, c), _quadrant(t, q, c, t.neg(s)))
    return t.select(t.cmp("lt", x, t.const(0.0)), t.neg(r), r)


@float64_by_libm
def atan(t: Typed, x: SSAValue) -> SSAValue:
    """Reduce |x| to [0, tan(pi/8)] by atan(a) = pi/2 + atan(-1/a) or pi/4 + atan((a-1)/(a+1))."""
    a = t.abs(x)
    big, mid = t.cmp("gt", a, t.const(2.414213562373095)), t.cmp("gt", a, t.const(0.4142135623730950))
    z = t.select(big, t.div(t.const(-1.0), a),
                 t.select(mid, t.div(t.sub(a, t.const(1.0)), t.add(a, t.const(1.0))), a))
    base = t.select(big, t.const(pi / 2), t.select(mid, t.const(pi / 4), t.const(0.0)))
    r = t.add(base, _odd(t, z, _ATAN_POLY))
    return t.kb.intrinsic("llvm.copysign", r, x)


def _asin_parts(t: Typed, a: SSAValue):
    """For a = |x| <= 1: (asin of the reduced argument, whether a > 0.5): above 0.5,
    asin(a) = pi/2 - 2 asin(sqrt((1 - a) / 2)); |x| > 1 gives NaN through the sqrt."""
    big = t.cmp("gt", a, t.const(0.5))
    w = t.select(big, t.kb.intrinsic("llvm.sqrt", t.mul(t.sub(t.const(1.0), a), t.const(0.5))), a)
    return _odd(t, w, _ASIN_POLY), big


@float64_by_libm
def asin(t: Typed, x: SSAValue) -> SSAValue:
    p, big = _asin_parts(t, t.abs(x))
    r = t.select(big, t.fma(p, t.const(-2.0), t.const(pi / 2)), p)
    return t.select(t.isnan(x), x, t.kb.intrinsic("llvm.copysign", r, x))


@float64_by_libm
def acos(t: Typed, x: SSAValue) -> SSAValue:
    """pi/2 - asin(x) near 0; 2 asin(sqrt((1 - |x|) / 2)) (or pi minus it for x < 0) near +-1."""
    p, big = _asin_parts(t, t.abs(x))
    p = t.kb.intrinsic("llvm.copysign", p, x)
    negative = t.cmp("lt", x, t.const(0.0))
    near_one = t.select(negative, t.fma(p, t.const(2.0), t.const(pi)), t.add(p, p))
    return t.select(big, near_one, t.sub(t.const(pi / 2), p))


@float64_by_libm
def sinh(t: Typed, x: SSAValue) -> SSAValue:
    a = t.abs(x)
    e = fm.exp(t, a)
    big = t.mul(t.sub(e, t.div(t.const(1.0), e)), t.const(0.5))
    r = t.select(t.cmp("lt", a, t.const(1.0)), _odd(t, a, _SINH_POLY), big)
    return t.kb.intrinsic("llvm.copysign", r, x)


@float64_by_libm
def cosh(t: Typed, x: SSAValue) -> SSAValue:
    e = fm.exp(t, t.abs(x))
    return t.mul(t.add(e, t.div(t.const(1.0), e)), t.const(0.5))


@float64_by_libm
def asinh(t: Typed, x: SSAValue) -> SSAValue:
    a = t.abs(x)
    mid = fm.log(t, t.add(a, t.kb.intrinsic("llvm.sqrt", t.fma(a, a, t.const(1.0)))))
    r = t.select(t.cmp("gt", a, t.const(_HUGE)), t.add(fm.log(t, a), t.const(_LN2)), mid)
    r = t.select(t.cmp("lt", a, t.const(0.5)), _odd(t, a, _ASINH_POLY), r)
    return t.select(t.isnan(x), x, t.kb.intrinsic("llvm.copysign", r, x))


@float64_by_libm
def acosh(t: Typed, x: SSAValue) -> SSAValue:
    """log(x + sqrt((x - 1)(x + 1))); NaN below 1 through the sqrt."""
    one = t.const(1.0)
    r = fm.log(t, t.add(x, t.kb.intrinsic("llvm.sqrt", t.mul(t.sub(x, one), t.add(x, one)))))
    return t.select(t.cmp("gt", x, t.const(_HUGE)), t.add(fm.log(t, x), t.const(_LN2)), r)


@float64_by_libm
def atanh(t: Typed, x: SSAValue) -> SSAValue:
    """log((1 + x) / (1 - x)) / 2, a polynomial below |x| = 0.5; +-1 give +-inf, |x| > 1 NaN."""
    one = t.const(1.0)
    r = t.mul(fm.log(t, t.div(t.add(one, x), t.sub(one, x))), t.const(0.5))
    return t.select(t.cmp("lt", t.abs(x), t.const(0.5)), _odd(t, x, _ATANH_POLY), r)
