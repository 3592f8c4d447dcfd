"""DynamicQuantizeLinear in two kernels (quant.dynamic_quantize, dialects/quant.py):

- `dynamic_quantize_range` (one work item): the range of x extended to 0 in one pass of vector
  min / max (RANGE_ACCUMULATORS independent ones), then scale = (max - min) / 255 and zero point = clamp(round_half_even(-min / scale)),
  stored as the op's float32 and uint8 scalars;
- `dynamic_quantize_apply` (blocks of DQ_BLOCK elements): y = clamp(round_half_even(x / scale) +
  zero point, 0, 255) as uint8, the last block masked.

The same operations in the same order as expand-quant's graph ops, so the results are identical.
"""
from __future__ import annotations

from functools import partial

from xdsl.dialects import func, llvm
from xdsl.dialects.builtin import IntegerType, VectorType, f32, i32

from pyflame_rt.targets.cpu.kernel_builder import KernelBuilder, Signature, vec

i8 = IntegerType(8)
RANGE_FIELDS = ("x", "scale", "zp", "n")
APPLY_FIELDS = ("x", "y", "scale", "zp", "n")
DQ_BLOCK = 16384  # elements per work item of the apply kernel
# independent min / max vectors of the range loop: min / max chains of one vector would wait on
# each other's latency instead of loading at the core's rate
RANGE_ACCUMULATORS = 4


def range_kernel(width: int) -> func.FuncOp:
    kb = KernelBuilder(f"dynamic_quantize_range_w{width}", Signature.of(RANGE_FIELDS, buffers=("x", "scale", "zp")))
    f = kb.fields
    zero = kb.fconst(0.0, width)
    chunk = RANGE_ACCUMULATORS * width
    wide = kb.mul(kb.div(f["n"], kb.const(chunk)), kb.const(chunk))
    with kb.loop(0, wide, chunk, carried=[zero] * (2 * RANGE_ACCUMULATORS)) as ul:
        lows, highs = ul.carried[:RANGE_ACCUMULATORS], ul.carried[RANGE_ACCUMULATORS:]
        vs = [kb.load(f["x"], kb.add(ul.iv, kb.const(u * width)), width) for u in range(RANGE_ACCUMULATORS)]
        ul.next = [_fmin(kb, lo, v) for lo, v in zip(lows, vs)] + [kb.fmax(hi, v) for hi, v in zip(highs, vs)]
    lows, highs = ul.results[:RANGE_ACCUMULATORS], ul.results[RANGE_ACCUMULATORS:]
    full = kb.mul(kb.div(f["n"], kb.const(width)), kb.const(width))
    with kb.loop(wide, full, width, carried=[_combine(partial(_fmin, kb), lows), _combine(kb.fmax, highs)]) as vl:
        v = kb.load(f["x"], vl.iv, width)
        vl.next = [_fmin(kb, vl.carried[0], v), kb.fmax(vl.carried[1], v)]
    with kb.loop(full, f["n"], carried=[_reduce(kb, "fmin", vl.results[0]), _reduce(kb, "fmax", vl.results[1])]) as sl:
        v = kb.load(f["x"], sl.iv)
        sl.next = [_fmin(kb, sl.carried[0], v), kb.fmax(sl.carried[1], v)]
    lo, hi = sl.results
    scale = kb.fdiv(kb.fsub(hi, lo), kb.fconst(255.0))
    zp = _clamp_u8(kb, kb.intrinsic("llvm.roundeven", kb.fdiv(kb.fsub(kb.fconst(0.0), lo), scale)), 1)
    kb.store(scale, f["scale"], kb.const(0))
    kb.store(_to_u8(kb, zp, i8), f["zp"], kb.const(0), elem=i8)
    return kb.finish()


def apply_kernel(width: int) -> func.FuncOp:
    kb = KernelBuilder(f"dynamic_quantize_apply_w{width}", Signature.of(APPLY_FIELDS, buffers=("x", "y", "scale", "zp")))
    f = kb.fields
    scale = kb.splat(kb.load(f["scale"], kb.const(0)), width)
    zp_u8 = kb.load(f["zp"], kb.const(0), elem=i8)
    zp = kb.splat(kb.cast(llvm.SIToFPOp, kb.cast(llvm.ZExtOp, zp_u8, i32), f32), width)
    with kb.loop(kb.begin, kb.end) as item:
        lo = kb.mul(item.iv, kb.const(DQ_BLOCK))
        hi = kb.min(f["n"], kb.add(lo, kb.const(DQ_BLOCK)))
        full = kb.add(lo, kb.mul(kb.div(kb.sub(hi, lo), kb.const(width)), kb.const(width)))
        with kb.loop(lo, full, width) as vl:
            kb.store(_quantize(kb, kb.load(f["x"], vl.iv, width), scale, zp, width), f["y"], vl.iv, elem=i8)
        with kb.if_(kb.cmp("slt", full, hi)):
            mask = kb.lane_mask(kb.sub(hi, full), width)
            q = _quantize(kb, kb.masked_load(f["x"], full, mask, width), scale, zp, width)
            kb.masked_store(q, f["y"], full, mask, width, elem=i8)
    return kb.finish()


def _fmin(kb: KernelBuilder, a, b):
    return kb.intrinsic("llvm.minnum", a, b)


def _combine(op, vs):
    """op over the vectors vs, pairwise."""
    while len(vs) > 1:
        vs = [op(a, b) for a, b in zip(vs[::2], vs[1::2])] + vs[len(vs) - len(vs) % 2:]
    return vs[0]


def _reduce(kb: KernelBuilder, kind: str, v):
    return kb.intrinsic(f"llvm.vector.reduce.{kind}", v, result_type=f32, overloads=[v.type])


def _quantize(kb: KernelBuilder, x, scale, zp, width: int):
    q = _clamp_u8(kb, kb.fadd(kb.intrinsic("llvm.roundeven", kb.fdiv(x, scale)), zp), width)
    return _to_u8(kb, q, vec(width, i8))


def _to_u8(kb: KernelBuilder, v, to):
    """Float values already in [0, 255] (integral) as their bytes: v + 2**23 holds v in its low
    mantissa bits, so its low byte is v (no float-to-int conversion: LLVM scalarizes the
    saturating ones)."""
    width = to.get_shape()[0] if isinstance(to, VectorType) else 1
    shifted = kb.fadd(v, kb.fconst(float(2 ** 23), width))
    return kb.cast(llvm.TruncOp, kb.cast(llvm.BitcastOp, shifted, vec(width, i32) if width > 1 else i32), to)


def _clamp_u8(kb: KernelBuilder, v, width: int):
    return _fmin(kb, kb.fmax(v, kb.fconst(0.0, width)), kb.fconst(255.0, width))
