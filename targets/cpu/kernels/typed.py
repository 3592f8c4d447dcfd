"""Arithmetic on kernel values of one element type, scalar or vector, float or integer.

Kernel generators are written once against `Typed` and specialized by element
type: a tensor's *storage* type (what sits in memory) can differ from its
*compute* type (f16 and bf16 are computed in f32, bf16 being stored as its i16
bits and rounded to nearest even on store; bool is an i1 mask, stored as one byte
0/1; float8 / float4 are computed in f32 and stored as their codes, minifloat.py;
int4 / uint4 / int2 / uint2 are computed as 8-bit integers, stored one per byte in
its low bits). Selects are built from integer ops, so they work on vectors (xDSL
0.74 only accepts scalar `select` conditions); LLVM turns them back into blends.

NaN: float ops propagate it as onnxruntime does (min / max / clamps return NaN for a
NaN operand); compares are ordered (false with NaN) except "ne".
"""
from __future__ import annotations

from xdsl.dialects import arith, llvm
from xdsl.dialects.builtin import (
    Float16Type,
    Float32Type,
    Float64Type,
    IntegerAttr,
    IntegerType,
    VectorType,
    i1,
    i8,
    i16,
    i32,
    i64,
)
from xdsl.ir import Attribute, SSAValue

from pyflame_rt.dtype import NARROW_FLOATS, SUB_BYTE_INTS, DType
from pyflame_rt.errors import UnsupportedOperatorError
from pyflame_rt.targets.cpu.kernel_builder import KernelBuilder, vec
from pyflame_rt.targets.cpu.kernels import minifloat

_STORAGE: dict[DType, Attribute] = {
    DType.FLOAT32: Float32Type(), DType.FLOAT16: Float16Type(), DType.FLOAT64: Float64Type(),
    DType.BFLOAT16: i16, DType.INT64: i64, DType.INT32: i32, DType.INT16: i16, DType.INT8: i8, DType.UINT8: i8,
    DType.BOOL: i8, DType.UINT64: i64, DType.UINT32: i32, DType.UINT16: i16,
    **{d: i8 for d in (*NARROW_FLOATS, *SUB_BYTE_INTS)},
}
FLOAT_DTYPES = (DType.FLOAT32, DType.FLOAT16, DType.BFLOAT16, DType.FLOAT64, *NARROW_FLOATS)
SINGLE_PRECISION = (DType.FLOAT32, DType.FLOAT16, DType.BFLOAT16)  # computed in f32
UNSIGNED_DTYPES = (DType.UINT64, DType.UINT32, DType.UINT16, DType.UINT8, DType.UINT4, DType.UINT2)
_ICMP = {"eq": "eq", "ne": "ne", "lt": "slt", "le": "sle", "gt": "sgt", "ge": "sge"}
_UCMP = {"eq": "eq", "ne": "ne", "lt": "ult", "le": "ule", "gt": "ugt", "ge": "uge"}
_ICMP_INDEX = ["eq", "ne", "slt", "sle", "sgt", "sge", "ult", "ule", "ugt", "uge"]
_FCMP = {"eq": "oeq", "ne": "une", "lt": "olt", "le": "ole", "gt": "ogt", "ge": "oge"}


def storage_type(dtype: DType) -> Attribute:
    if dtype not in _STORAGE:
        raise UnsupportedOperatorError(f"the CPU backend has no kernels for {dtype.value} tensors")
    return _STORAGE[dtype]


def compute_type(dtype: DType) -> Attribute:
    if dtype in (DType.FLOAT16, DType.BFLOAT16, *NARROW_FLOATS):
        return Float32Type()
    if dtype is DType.BOOL:
        return i1
    return storage_type(dtype)


class Typed:
    """Ops on `width`-lane values whose compute type comes from `dtype`. Stores to float8 take ONNX
    Cast's `saturate` and (float8e8m0) `round_mode`."""

    def __init__(self, kb: KernelBuilder, dtype: DType, width: int, saturate: bool = True, round_mode: str = "up"):
        self.kb, self.dtype, self.width = kb, dtype, width
        self.saturate, self.round_mode = saturate, round_mode
        self.elem = compute_type(dtype)
        self.is_float = dtype in FLOAT_DTYPES
        self.unsigned = dtype in UNSIGNED_DTYPES or dtype is DType.BOOL

    @property
    def type(self) -> Attribute:
        return self.elem if self.width == 1 else vec(self.width, self.elem)

    def like(self, dtype: DType) -> "Typed":
        return Typed(self.kb, dtype, self.width)

    def of_value(self, v: SSAValue) -> "Typed":
        """The Typed of a loaded value of another signed compute type (f32, f64 or a signed integer)."""
        elem = v.type.get_element_type() if isinstance(v.type, VectorType) else v.type
        if isinstance(elem, IntegerType):
            return self.like({8: DType.INT8, 16: DType.INT16, 32: DType.INT32, 64: DType.INT64}[elem.bitwidth])
        return self.like(DType.FLOAT64 if elem.bitwidth == 64 else DType.FLOAT32)

    def integer_range(self, bits: int) -> tuple[int, int]:
        """The lowest and highest value of a `bits`-bit integer of this type's signedness."""
        return (0, (1 << bits) - 1) if self.unsigned else (-(1 << bits - 1), (1 << bits - 1) - 1)

    def require_float(self, what: str) -> None:
        if not self.is_float:
            raise UnsupportedOperatorError(f"{what} needs a float tensor, got {self.dtype.value}")

    # ------------------------------------------------------------ memory
    def load(self, ptr: SSAValue, index: SSAValue, splat: bool = False) -> SSAValue:
        """Load (and widen to the compute type) `width` lanes, or one element splat to all lanes."""
        lanes = 1 if splat else self.width
        v = self._from_storage(self.kb.load(ptr, index, lanes, elem=storage_type(self.dtype)), lanes)
        return self.kb.splat(v, self.width) if splat else v

    def store(self, value: SSAValue, ptr: SSAValue, index: SSAValue) -> None:
        self.kb.store(self._to_storage(value), ptr, index, elem=storage_type(self.dtype))

    @property
    def narrow(self) -> bool:
        """Stored in fewer bits than it is computed in (float16 / bfloat16 / float8 / float4 / int4)."""
        return self.dtype in (DType.FLOAT16, DType.BFLOAT16, *NARROW_FLOATS, *SUB_BYTE_INTS)

    def rounded(self, value: SSAValue) -> SSAValue:
        """`value` as a store and a load would give it back: rounded to the storage type."""
        return self._from_storage(self._to_storage(value), self.width) if self.narrow else value

    def _from_storage(self, v: SSAValue, lanes: int) -> SSAValue:
        """`lanes` stored elements as compute-type values."""
        kb = self.kb
        if self.dtype is DType.FLOAT16:
            return kb.cast(llvm.FPExtOp, v, self.elem)
        if self.dtype is DType.BFLOAT16:  # the f32 whose high half is these bits
            bits = kb._ins(arith.ShLIOp(kb.cast(llvm.ZExtOp, v, i32), kb.vconst(16, i32, lanes)))
            return kb.cast(llvm.BitcastOp, bits, self.elem)
        if self.dtype is DType.BOOL:
            return self._icmp("ne", v, kb.vconst(0, i8, lanes))
        if self.dtype in NARROW_FLOATS:
            return minifloat.decode(self.dtype, Typed(kb, DType.FLOAT32, lanes), v)
        if self.dtype in SUB_BYTE_INTS and self.unsigned:
            return kb._ins(arith.AndIOp(v, kb.vconst((1 << SUB_BYTE_INTS[self.dtype]) - 1, i8, lanes)))
        if self.dtype in SUB_BYTE_INTS:  # sign-extend the low bits
            unused = kb.vconst(8 - SUB_BYTE_INTS[self.dtype], i8, lanes)
            return kb._ins(arith.ShRSIOp(kb._ins(arith.ShLIOp(v, unused)), unused))
        return v

    def _to_storage(self, value: SSAValue) -> SSAValue:
        """Compute-type values as the elements a store writes."""
        if self.dtype is DType.FLOAT16:
            return self.kb.cast(llvm.FPTruncOp, value, storage_type(self.dtype))
        if self.dtype is DType.BFLOAT16:
            return self._to_bfloat16_bits(value)
        if self.dtype is DType.BOOL:
            return self.kb.cast(llvm.ZExtOp, value, storage_type(self.dtype))
        if self.dtype in NARROW_FLOATS:
            return minifloat.encode(self.dtype, self, value, self.saturate, self.round_mode)
        if self.dtype in SUB_BYTE_INTS:  # ml_dtypes keeps the other bits 0
            return self.kb._ins(arith.AndIOp(value, self.const((1 << SUB_BYTE_INTS[self.dtype]) - 1)))
        return value

    def _to_bfloat16_bits(self, value: SSAValue) -> SSAValue:
        """The high half of the f32 bits, rounded to nearest even; NaN stays a (quiet) NaN."""
        kb = self.kb
        bits, it = self._bits(value)
        lsb = kb._ins(arith.AndIOp(kb._ins(arith.ShRUIOp(bits, it.const(16))), it.const(1)))
        rounded = kb._ins(arith.ShRUIOp(it.add(bits, it.add(lsb, it.const(0x7FFF))), it.const(16)))
        rounded = it.select(self.isnan(value), it.const(0x7FC0), rounded)
        return kb.cast(llvm.TruncOp, rounded, storage_type(DType.BFLOAT16))

    # --------------------------------------------------------- arithmetic
    def const(self, v: float | int) -> SSAValue:
        return self.kb.vconst(v, self.elem, self.width)

    def _bin(self, fop, iop, a, b):
        return self.kb._ins((fop if self.is_float else iop)(a, b))

    def add(self, a, b): return self._bin(arith.AddfOp, arith.AddiOp, a, b)
    def sub(self, a, b): return self._bin(arith.SubfOp, arith.SubiOp, a, b)
    def mul(self, a, b): return self._bin(arith.MulfOp, arith.MuliOp, a, b)

    def div(self, a, b):
        """Integer division by 0 yields the dividend and INT_MIN / -1 wraps (no hardware trap)."""
        if self.is_float:
            return self.kb.fdiv(a, b)
        zero, one, minus_one = self.const(0), self.const(1), self.const(-1)
        safe = self.select(self.cmp("eq", b, zero), one, b)
        if self.unsigned:  # all ones is the largest divisor, not -1
            return self.kb._ins(arith.DivUIOp(a, safe))
        safe_neg = self.select(self.cmp("eq", safe, minus_one), one, safe)
        q = self.kb._ins(arith.DivSIOp(a, safe_neg))
        return self.select(self.cmp("eq", safe, minus_one), self.neg(a), q)

    def rem(self, a, b, floored: bool):
        """Integer remainder with the sign of the dividend (C %, ONNX fmod=1) or, `floored`, of the
        divisor (Python %, ONNX fmod=0); x % 0 is 0 (no hardware trap), so is INT_MIN % -1."""
        zero, one = self.const(0), self.const(1)
        if self.unsigned:
            return self.kb._ins(arith.RemUIOp(a, self.select(self.cmp("eq", b, zero), one, b)))
        unit = self.kb._ins(arith.OrIOp(self.cmp("eq", b, zero), self.cmp("eq", b, self.const(-1))))
        safe = self.select(unit, one, b)
        r = self.kb._ins(arith.RemSIOp(a, safe))
        if not floored:
            return r
        signs_differ = self.kb._ins(arith.XOrIOp(self.cmp("lt", r, zero), self.cmp("lt", safe, zero)))
        fix = self.kb._ins(arith.AndIOp(self.cmp("ne", r, zero), signs_differ))
        return self.select(fix, self.add(r, safe), r)

    def neg(self, a):
        return self.kb._ins(arith.NegfOp(a)) if self.is_float else self.sub(self.const(0), a)

    def min(self, a, b):
        """NaN if either float operand is NaN."""
        if self.is_float:
            return self.kb.intrinsic("llvm.minimum", a, b)
        return self.select(self.cmp("lt", a, b), a, b)

    def max(self, a, b):
        """NaN if either float operand is NaN."""
        if self.is_float:
            return self.kb.fmaximum(a, b)
        return self.select(self.cmp("gt", a, b), a, b)

    def at_least(self, x, lo):
        """x raised to lo: `x < lo ? lo : x`. NaN stays NaN and -0 stays -0 (like onnxruntime's
        Relu / Clip), in one max instruction (x86 maxps returns its second operand on NaN)."""
        return self.select(self.cmp("lt", x, lo), lo, x)

    def at_most(self, x, hi):
        """x lowered to hi: `x > hi ? hi : x`; NaN stays NaN (one min instruction)."""
        return self.select(self.cmp("gt", x, hi), hi, x)

    def max_num(self, a, b):
        """max ignoring a NaN operand (llvm.maxnum: one instruction, where the NaN-propagating
        `max` needs a compare and blends); for folds whose result meets NaNs later anyway."""
        return self.kb.fmax(a, b) if self.is_float else self.max(a, b)

    def abs(self, a):
        if self.is_float:
            return self.kb.intrinsic("llvm.fabs", a)
        return self.select(self.cmp("lt", a, self.const(0)), self.neg(a), a)

    def fma(self, a, b, c):
        return self.kb.fma(a, b, c) if self.is_float else self.add(self.mul(a, b), c)

    # ------------------------------------------------- compare and select
    def _icmp(self, pred: str, a, b):
        return self.kb._ins(llvm.ICmpOp(a, b, IntegerAttr(_ICMP_INDEX.index(pred), i64)))

    def cmp(self, pred: str, a, b) -> SSAValue:
        """An i1 mask (vector for vectors); float compares are ordered (false with NaN) except
        "ne" (true with NaN), and -0 equals +0."""
        if not self.is_float:
            return self._icmp((_UCMP if self.unsigned else _ICMP)[pred], a, b)
        return self.kb.fcmp(_FCMP[pred], a, b)

    def _bits(self, a) -> tuple[SSAValue, Typed]:
        it = self.like({32: DType.INT32, 64: DType.INT64}[self.elem.bitwidth])
        return self.kb.cast(llvm.BitcastOp, a, it.elem), it

    def isnan(self, a) -> SSAValue:
        return self.kb.fcmp("uno", a, a)

    def logical_not(self, mask):
        return self.kb._ins(arith.XOrIOp(mask, self.kb.splat(self.kb.vconst(1, i1), self.width)))

    def select(self, mask, a, b) -> SSAValue:
        """mask ? a : b, lane by lane, as a bit blend (LLVM turns it back into a blend/select)."""
        kb = self.kb
        if isinstance(a.type, VectorType) and a.type.get_element_type() == i1 or a.type == i1:
            nm = self.logical_not(mask)
            return kb._ins(arith.OrIOp(kb._ins(arith.AndIOp(a, mask)), kb._ins(arith.AndIOp(b, nm))))
        elem = a.type.get_element_type() if isinstance(a.type, VectorType) else a.type
        is_float = not isinstance(elem, IntegerType)
        ibits = IntegerType(elem.bitwidth)
        ia = kb.cast(llvm.BitcastOp, a, ibits) if is_float else a
        ib = kb.cast(llvm.BitcastOp, b, ibits) if is_float else b
        m = kb.cast(llvm.SExtOp, mask, ibits)
        nm = kb._ins(arith.XOrIOp(m, kb.vconst(-1, ibits, self.width)))
        out = kb._ins(arith.OrIOp(kb._ins(arith.AndIOp(ia, m)), kb._ins(arith.AndIOp(ib, nm))))
        return kb.cast(llvm.BitcastOp, out, elem) if is_float else out

    # ---------------------------------------------------------- convert
    def convert(self, value: SSAValue, to: "Typed") -> SSAValue:
        """ONNX Cast semantics between compute types (to bool: != 0; float to int truncates, saturating)."""
        kb = self.kb
        if to.dtype is DType.BOOL:
            return self.cmp("ne", value, self.const(0))
        if self.dtype is DType.BOOL:
            return to.select(value, to.const(1), to.const(0))
        src, dst = self.elem, to.elem
        if src == dst:
            return value
        if self.is_float and to.is_float:
            if to.dtype in minifloat.FORMATS:  # f64: rounded once, to the float8 / float4 grid
                return self._to_odd_float32(value, to)
            return kb.cast(llvm.FPExtOp if dst.bitwidth > src.bitwidth else llvm.FPTruncOp, value, dst)
        if self.is_float and to.dtype in SUB_BYTE_INTS:
            # ONNX leaves float -> integer out of range undefined: truncated (NaN -> 0), then the high
            # bits dropped as in a fixed-point narrowing (onnx's node cases, made with ml_dtypes <= 0.5)
            q = kb.cast(llvm.TruncOp, self.convert(value, to.like(DType.INT32)), dst)
            return to._from_storage(q, to.width)
        if self.is_float:
            return kb.intrinsic("llvm.fptoui.sat" if to.unsigned else "llvm.fptosi.sat", value,
                                result_type=to.type, overloads=[to.type, self.type])
        if to.is_float:
            if self.unsigned and src.bitwidth == 64:
                return self._u64_to_float(value, to)
            if self.unsigned:
                value = kb.cast(llvm.ZExtOp, value, i32 if src.bitwidth < 32 else i64)
            return kb.cast(llvm.SIToFPOp, value, dst)
        if dst.bitwidth < src.bitwidth:
            return kb.cast(llvm.TruncOp, value, dst)
        return kb.cast(llvm.ZExtOp if self.unsigned else llvm.SExtOp, value, dst)

    def _u64_to_float(self, value: SSAValue, to: "Typed") -> SSAValue:
        """uint64 -> float rounded once (the llvm dialect has no uitofp): values >= 2**63 are halved,
        keeping the lost bit as a sticky bit, converted and doubled."""
        kb, one = self.kb, self.const(1)
        halved = kb._ins(arith.OrIOp(kb._ins(arith.ShRUIOp(value, one)), kb._ins(arith.AndIOp(value, one))))
        small = self.like(DType.INT64).cmp("ge", value, self.const(0))
        wide = kb.cast(llvm.SIToFPOp, halved, to.elem)
        return to.select(small, kb.cast(llvm.SIToFPOp, value, to.elem), to.add(wide, wide))

    def _to_odd_float32(self, value: SSAValue, to: "Typed") -> SSAValue:
        """float64 -> float32 rounded to odd (truncated, the last bit set when inexact): a second
        rounding to a format with at most 22 fewer mantissa bits then rounds as if once."""
        kb = self.kb
        r = kb.cast(llvm.FPTruncOp, value, to.elem)
        back = kb.cast(llvm.FPExtOp, r, self.elem)
        bits, it = to._bits(r)
        overshoot = self.cmp("gt", self.abs(back), self.abs(value))  # rounded away from zero
        bits = it.select(overshoot, it.sub(bits, it.const(1)), bits)
        inexact = kb.fcmp("one", back, value)
        bits = it.select(inexact, kb._ins(arith.OrIOp(bits, it.const(1))), bits)
        return kb.cast(llvm.BitcastOp, bits, to.elem)
