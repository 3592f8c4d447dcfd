"""Float formats narrower than float16, stored one per byte: float8 (e4m3fn, e4m3fnuz, e5m2, e5m2fnuz,
e8m0) and float4 (e2m1).

Kernels compute them in float32 (typed.py): `decode` widens a stored code exactly, `encode` rounds a
float32 to the format, bit for bit as ml_dtypes and onnx's Cast do it (NaN codes included). Both are
integer and float32 lane ops (no tables, no branches), so they vectorize. Rounding to nearest even
adds and subtracts 2**23 quanta of the value's binade: the sum's float32 ulp is the format's quantum.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from xdsl.dialects import arith, llvm
from xdsl.dialects.builtin import f32, i8, i32
from xdsl.ir import SSAValue

from pyflame_rt.dtype import DType

if TYPE_CHECKING:
    from pyflame_rt.targets.cpu.kernels.typed import Typed

_F32_BIAS, _F32_MAN = 127, 23
_F32_NAN, _F32_INF = 0x7FC00000, 0x7F800000


@dataclass(frozen=True)
class MiniFloat:
    """A sign, `exp_bits` of exponent and `man_bits` of mantissa. `specials` says what the codes with
    the largest exponent mean: "inf" IEEE-style (Inf and NaNs), "fn" finite with one NaN per sign (all
    bits but the sign set), "fnuz" finite without -0, the -0 code being the NaN, "none" all finite (a
    NaN is stored as the zero of the other sign, as ml_dtypes stores it)."""

    exp_bits: int
    man_bits: int
    bias: int
    specials: str

    @property
    def sign_bit(self) -> int:
        return self.exp_bits + self.man_bits

    @property
    def _top(self) -> int:
        return (1 << self.exp_bits) - 1

    @property
    def max_code(self) -> int:
        m = (1 << self.man_bits) - 1
        if self.specials == "inf":
            return ((self._top - 1) << self.man_bits) | m
        return (self._top << self.man_bits) | (m - 1 if self.specials == "fn" else m)

    @property
    def max_value(self) -> float:
        c, m = self.max_code, self.man_bits
        return (1 + (c & ((1 << m) - 1)) / 2 ** m) * 2.0 ** ((c >> m) - self.bias)

    @property
    def emin(self) -> int:
        return 1 - self.bias

    @property
    def emax(self) -> int:
        return (self.max_code >> self.man_bits) - self.bias

    @property
    def nan_code(self) -> int:
        """Without its sign ("inf" / "fn" add the value's sign, "none" the opposite one)."""
        if self.specials == "inf":
            return (self._top << self.man_bits) | (1 << (self.man_bits - 1))
        if self.specials == "fn":
            return (1 << self.sign_bit) - 1
        return 1 << self.sign_bit

    def overflow_code(self, saturate: bool) -> int:
        """What a value beyond the largest finite one becomes (before its sign is added)."""
        if saturate or self.specials == "none":
            return self.max_code
        return self._top << self.man_bits if self.specials == "inf" else self.nan_code


FORMATS = {
    DType.FLOAT8E4M3FN: MiniFloat(4, 3, 7, "fn"), DType.FLOAT8E4M3FNUZ: MiniFloat(4, 3, 8, "fnuz"),
    DType.FLOAT8E5M2: MiniFloat(5, 2, 15, "inf"), DType.FLOAT8E5M2FNUZ: MiniFloat(5, 2, 16, "fnuz"),
    DType.FLOAT4E2M1: MiniFloat(2, 1, 1, "none"),
}


def _op(t: Typed, op_cls, a: SSAValue, b: SSAValue | int) -> SSAValue:
    return t.kb._ins(op_cls(a, t.const(b) if isinstance(b, int) else b))


def _bits(t: Typed, v: SSAValue) -> SSAValue:
    return t.kb.cast(llvm.BitcastOp, v, i32)


def _float(t: Typed, bits: SSAValue) -> SSAValue:
    return t.kb.cast(llvm.BitcastOp, bits, f32)


def decode(dtype: DType, t: Typed, code: SSAValue) -> SSAValue:
    """Stored bytes -> float32 lanes of `t`, exactly."""
    ti = t.like(DType.INT32)
    c = t.kb.cast(llvm.ZExtOp, code, i32)
    if dtype is DType.FLOAT8E8M0:  # 2**(c - 127); c = 0 is the float32 subnormal 2**-127, 255 NaN
        bits = ti.select(ti.cmp("eq", c, ti.const(0)), ti.const(1 << 22), _op(ti, arith.ShLIOp, c, _F32_MAN))
        return _float(t, ti.select(ti.cmp("eq", c, ti.const(0xFF)), ti.const(_F32_NAN), bits))
    f = FORMATS[dtype]
    c = _op(ti, arith.AndIOp, c, (2 << f.sign_bit) - 1)  # float4: the high nibble is not the value's
    sign = _op(ti, arith.ShLIOp, _op(ti, arith.ShRUIOp, c, f.sign_bit), 31)
    e = _op(ti, arith.AndIOp, _op(ti, arith.ShRUIOp, c, f.man_bits), f._top)
    m = _op(ti, arith.AndIOp, c, (1 << f.man_bits) - 1)
    normal = ti.cmp("ne", e, ti.const(0))
    significand = ti.add(m, ti.select(normal, ti.const(1 << f.man_bits), ti.const(0)))
    scale = _op(ti, arith.ShLIOp, ti.add(ti.max(e, ti.const(1)), ti.const(_F32_BIAS - f.bias - f.man_bits)), _F32_MAN)
    magnitude = t.mul(t.kb.cast(llvm.SIToFPOp, significand, f32), _float(t, scale))
    bits = _op(ti, arith.OrIOp, _bits(t, magnitude), sign)
    if f.specials == "inf":
        top = ti.cmp("eq", e, ti.const(f._top))
        special = ti.select(ti.cmp("eq", m, ti.const(0)), ti.const(_F32_INF), ti.const(_F32_NAN))
        bits = ti.select(top, _op(ti, arith.OrIOp, special, sign), bits)
    elif f.specials != "none":
        nan = (ti.cmp("eq", _op(ti, arith.AndIOp, c, f.nan_code), ti.const(f.nan_code)) if f.specials == "fn"
               else ti.cmp("eq", c, ti.const(f.nan_code)))
        bits = ti.select(nan, _op(ti, arith.OrIOp, ti.const(_F32_NAN), sign), bits)
    return _float(t, bits)


def encode(dtype: DType, t: Typed, v: SSAValue, saturate: bool, round_mode: str) -> SSAValue:
    """float32 lanes of `t` -> the bytes to store, rounded to nearest even (float8e8m0: `round_mode`);
    out of range: the largest finite value if `saturate` (float4 always), else Inf or NaN."""
    if dtype is DType.FLOAT8E8M0:
        return _encode_e8m0(t, v, saturate, round_mode)
    f, ti = FORMATS[dtype], t.like(DType.INT32)
    sign = _op(ti, arith.ShRUIOp, _bits(t, v), 31)
    big = t.const(2.0 ** (f.emax + 1))  # overflows whatever it rounds to; keeps the quanta below normal
    a = t.abs(v)
    a = t.select(t.cmp("gt", a, big), big, a)
    binade = ti.max(_op(ti, arith.ShRUIOp, _bits(t, a), _F32_MAN), ti.const(f.emin + _F32_BIAS))
    quanta = _float(t, _op(ti, arith.ShLIOp, ti.add(binade, ti.const(_F32_MAN - f.man_bits)), _F32_MAN))
    r = t.sub(t.add(a, quanta), quanta)  # a rounded to the format's grid (exact: no fast-math)
    subnormal = t.cmp("lt", r, t.const(2.0 ** f.emin))
    code = ti.select(subnormal, t.convert(t.mul(r, t.const(2.0 ** (f.man_bits - f.emin))), ti),
                     ti.sub(_op(ti, arith.ShRUIOp, _bits(t, r), _F32_MAN - f.man_bits),
                            ti.const((_F32_BIAS - f.bias) << f.man_bits)))
    code = ti.select(t.cmp("gt", r, t.const(f.max_value)), ti.const(f.overflow_code(saturate)), code)
    if f.specials == "fnuz":  # no -0
        sign = ti.select(ti.cmp("eq", code, ti.const(0)), ti.const(0), sign)
    code = _op(ti, arith.OrIOp, code, _op(ti, arith.ShLIOp, sign, f.sign_bit))
    nan = ti.const(f.nan_code)
    if f.specials in ("inf", "fn"):
        nan = _op(ti, arith.OrIOp, nan, _op(ti, arith.ShLIOp, sign, f.sign_bit))
    elif f.specials == "none":
        nan = _op(ti, arith.XOrIOp, nan, _op(ti, arith.ShLIOp, sign, f.sign_bit))
    return t.kb.cast(llvm.TruncOp, ti.select(t.isnan(v), nan, code), i8)


def _encode_e8m0(t: Typed, v: SSAValue, saturate: bool, round_mode: str) -> SSAValue:
    """The power of two of the float32 exponent field, as onnx's reference (to_float8e8m0) takes it:
    rounded up / to nearest (ties up) by the mantissa, Inf and NaN -> NaN; the sign is ignored."""
    ti = t.like(DType.INT32)
    bits = _bits(t, v)
    e = _op(ti, arith.AndIOp, _op(ti, arith.ShRUIOp, bits, _F32_MAN), 0xFF)
    special = ti.cmp("eq", e, ti.const(0xFF))
    if round_mode != "down":
        if round_mode == "up":
            up = ti.cmp("ne", _op(ti, arith.AndIOp, bits, (1 << _F32_MAN) - 1), ti.const(0))
        else:  # guard bit set and (round or sticky bits, or a normal exponent's implicit one)
            guard = ti.cmp("ne", _op(ti, arith.AndIOp, bits, 1 << 22), ti.const(0))
            rest = ti.cmp("ne", _op(ti, arith.AndIOp, bits, (1 << 22) - 1), ti.const(0))
            up = t.kb.and_(guard, t.kb.or_(rest, ti.cmp("ne", e, ti.const(0))))
        if saturate:
            up = t.kb.and_(up, ti.cmp("ne", e, ti.const(0xFE)))
        e = ti.add(e, ti.select(up, ti.const(1), ti.const(0)))
    return t.kb.cast(llvm.TruncOp, ti.select(special, ti.const(0xFF), e), i8)
