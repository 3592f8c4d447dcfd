"""quant.add of two 8-bit tensors of one shape, per-tensor types, in one pass (a residual Add between
int8 convolutions):

    y = clamp(round_half_even((a - a_zp) x a_scale / y_scale + (b - b_zp) x b_scale / y_scale) + y_zp)

the two multipliers float32 (`multipliers`: [a_scale / y_scale, b_scale / y_scale]), so a result
may differ from the float definition (dequantize, add, quantize) by one step where its rounding
does. Blocks of QADD_BLOCK elements, the last masked. The storages (u8 or i8 each) are the kernel's
compile-time parameters.
"""
from __future__ import annotations

from dataclasses import dataclass

from xdsl.dialects import func, llvm
from xdsl.dialects.builtin import f32, i32

from pyflame_rt.targets.cpu.kernel_builder import KernelBuilder, Signature, vec
from pyflame_rt.targets.cpu.kernels.gemm_int8 import BYTE_MAGIC, i8

QADD_FIELDS = ("a", "b", "y", "multipliers", "n", "a_zp", "b_zp", "y_zp", "y_min", "y_max")
QADD_BLOCK = 16384  # elements per work item


@dataclass(frozen=True)
class QuantAddSpec:
    signed: tuple[bool, bool, bool]  # a, b, y are int8 (else uint8)
    width: int                       # float32 lanes

    @property
    def name(self) -> str:
        return f"quant_add_{''.join('s' if s else 'u' for s in self.signed)}_w{self.width}"


def quant_add_kernel(spec: QuantAddSpec) -> func.FuncOp:
    kb = KernelBuilder(spec.name, Signature.of(QADD_FIELDS, buffers=("a", "b", "y", "multipliers")))
    f, w = kb.fields, spec.width
    m = [kb.splat(kb.load(f["multipliers"], kb.const(i)), w) for i in (0, 1)]
    zp = {x: kb.splat(kb.cast(llvm.SIToFPOp, f[x], f32), w) for x in ("a_zp", "b_zp", "y_zp", "y_min", "y_max")}

    def widened(ptr, index, signed: bool, mask=None):
        codes = kb.load(ptr, index, w, elem=i8) if mask is None else kb.masked_load(ptr, index, mask, w, elem=i8)
        return kb.cast(llvm.SIToFPOp, kb.cast(llvm.SExtOp if signed else llvm.ZExtOp, codes, vec(w, i32)), f32)

    def block(index, mask=None):
        a = kb.fmul(kb.fsub(widened(f["a"], index, spec.signed[0], mask), zp["a_zp"]), m[0])
        b = kb.fmul(kb.fsub(widened(f["b"], index, spec.signed[1], mask), zp["b_zp"]), m[1])
        q = kb.fadd(kb.intrinsic("llvm.roundeven", kb.fadd(a, b)), zp["y_zp"])
        q = kb.intrinsic("llvm.minnum", kb.fmax(q, zp["y_min"]), zp["y_max"])
        # the low byte of q + BYTE_MAGIC is q as a byte (see gemm_int8)
        bits = kb.cast(llvm.BitcastOp, kb.fadd(q, kb.fconst(BYTE_MAGIC, w)), vec(w, i32))
        return kb.cast(llvm.TruncOp, bits, vec(w, i8))

    with kb.loop(kb.begin, kb.end) as item:
        lo = kb.mul(item.iv, kb.const(QADD_BLOCK))
        hi = kb.min(f["n"], kb.add(lo, kb.const(QADD_BLOCK)))
        full = kb.add(lo, kb.mul(kb.div(kb.sub(hi, lo), kb.const(w)), kb.const(w)))
        with kb.loop(lo, full, w) as vl:
            kb.store(block(vl.iv), f["y"], vl.iv, elem=i8)
        with kb.if_(kb.cmp("slt", full, hi)):
            mask = kb.lane_mask(kb.sub(hi, full), w)
            kb.masked_store(block(full, mask), f["y"], full, mask, w, elem=i8)
    return kb.finish()
