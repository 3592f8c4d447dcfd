"""Checked builds: the bounds check a KernelBuilder puts in front of every load and store.

Every pointer (and address integer) the builder produces is mapped to the `Bounds` of the
buffer it was derived from: a kernel field's (its task wrapper reads its bounds from the
checked ctx, checked.py, and passes them to the kernel after its fields: `take_bounds`), a
stack scratch buffer's, or one declared with `bounded` (the context itself, which only task
wrappers read); as_ptr, ptr_to_int, gep and select carry them over. An access through a pointer of
unknown origin is a compile error.

Each access passes its address, its size and its buffer's bounds through the runtime's
`pfrt_checked_address`, which returns the address, or, outside the buffer, a private redirect
block of the function after recording the violation (kernel, step, region, offset). One call
per access keeps the IR small: xDSL's conversion and LLVM's code generation stay within a small
factor of the unchecked build's; the call's constant arguments are hoisted to the entry block.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Sequence

from xdsl.dialects import arith, func, llvm
from xdsl.dialects.builtin import IntegerAttr, i64
from xdsl.ir import Operation, SSAValue

from pyflame_rt.errors import BackendError
from pyflame_rt.targets.cpu import checked as ck

if TYPE_CHECKING:
    from pyflame_rt.targets.cpu.kernel_builder import KernelBuilder

PTR = llvm.LLVMPointerType()
# where an access outside its buffer goes instead (at least the widest access)
REDIRECT_BYTES = 512
# pfrt_checked_address(p, lo, size, nbytes, region, is_store, run, kernel, step, redirect) -> ptr
_CHECK_ARGS = [PTR, i64, i64, i64, i64, i64, PTR, PTR, i64, PTR]


def check_declaration() -> func.FuncOp:
    """The runtime function checked code calls (a module of checked kernels declares it once)."""
    return func.FuncOp.external(ck.CHECK_FN, _CHECK_ARGS, [PTR])


@dataclass(frozen=True)
class Bounds:
    """A buffer: its first byte's address, its size in bytes, and the region (a kernel field's
    index, or one of checked.py's REGION_*) a violation is reported as (i64 values)."""

    lo: SSAValue
    size: SSAValue
    region: SSAValue


class AccessGuard:
    def __init__(self, kb: "KernelBuilder"):
        self.kb = kb
        self.bounds: dict[SSAValue, Bounds] = {}
        self.lane_counts: dict[SSAValue, SSAValue] = {}  # lane masks -> their enabled lanes (prefixes)
        self._report: tuple[SSAValue, SSAValue] | None = None  # (run handle, step)
        self._consts: dict[int, SSAValue] = {}
        self._redirect: SSAValue | None = None
        self._me: SSAValue | None = None  # this function's address (violations name it)

    # --------------------------------------------------------------- origins
    def read_ctx_header(self, ctx: SSAValue) -> None:
        """A task's checked ctx header (checked.py), read unchecked: the runtime writes it
        before every launch; it is the root every field's bounds are read through."""
        slots, run, step = (self._load_i64(ctx, i) for i in (ck.CTX_SLOTS, ck.CTX_RUN, ck.CTX_STEP))
        self.report_to(self._emit(llvm.IntToPtrOp(run)), step)
        self.bounded(ctx, self._emit(llvm.MulOp(slots, self.const(8))), ck.REGION_CTX)

    def take_bounds(self, args: Sequence[SSAValue], buffer_fields: Sequence[int],
                    fields: Sequence[SSAValue]) -> None:
        """A checked kernel's trailing arguments (Signature.args): the run handle and step, then
        (lo, size) of each buffer field; violations name the field by its index."""
        run, step, *bounds = args
        self.report_to(run, step)
        for k, i in enumerate(buffer_fields):
            self.bounds[fields[i]] = Bounds(bounds[2 * k], bounds[2 * k + 1], self.const(i))

    def reported_as(self) -> tuple[SSAValue, SSAValue]:
        """The run handle and step violations are reported with (read_ctx_header)."""
        assert self._report is not None
        return self._report

    def field(self, ctx: SSAValue, i: int) -> SSAValue:
        """Field i of a checked ctx, with the bounds of the buffer it points into."""
        slot = self._emit(llvm.GEPOp.from_mixed_indices(ctx, [self.const(ck.CTX_HEADER + ck.CTX_STRIDE * i)], i64))
        p = self.check(slot, 8 * ck.CTX_STRIDE, store=False, b=self.bounds[ctx])
        value, lo, hi = (self._load_i64(p, j) for j in range(ck.CTX_STRIDE))
        self.bounds[value] = Bounds(lo, self._emit(llvm.SubOp(hi, lo)), self.const(i))
        return value

    def bounded(self, ptr: SSAValue, nbytes: SSAValue | int, region: int) -> None:
        """ptr starts a buffer of nbytes: accesses through it, and through what derives from it,
        are checked against it."""
        size = nbytes if isinstance(nbytes, SSAValue) else self.const(nbytes)
        self.bounds[ptr] = Bounds(self._emit(llvm.PtrToIntOp(ptr)), size, self.const(region))

    def scratch(self, alloca: Operation, nbytes: int) -> None:
        """A stack buffer (allocated in the entry block): its bounds, computed right after it."""
        lo = llvm.PtrToIntOp(alloca.results[0])
        alloca.parent_block().insert_op_after(lo, alloca)
        self.bounds[alloca.results[0]] = Bounds(lo.results[0], self.const(nbytes), self.const(ck.REGION_SCRATCH))

    def report_to(self, run: SSAValue, step: SSAValue) -> None:
        """Where violations go: the run handle, and the step they are reported as."""
        self._report = (run, step)

    def derived(self, result: SSAValue, source: SSAValue) -> SSAValue:
        """result points into the same buffer as source."""
        if source in self.bounds:
            self.bounds[result] = self.bounds[source]
        return result

    def selected(self, result: SSAValue, cond: SSAValue, a: SSAValue, b: SSAValue) -> SSAValue:
        """result = cond ? a : b points into a's buffer or b's, as cond picks."""
        if a in self.bounds and b in self.bounds:
            ba, bb = self.bounds[a], self.bounds[b]
            self.bounds[result] = Bounds(*(self._emit(arith.SelectOp(cond, x, y)) for x, y in zip(
                (ba.lo, ba.size, ba.region), (bb.lo, bb.size, bb.region))))
        return result

    # ---------------------------------------------------------------- checks
    def check(self, p: SSAValue, nbytes: int | SSAValue, store: bool, b: Bounds | None = None) -> SSAValue:
        """The address to access instead of p: p itself when [p, p + nbytes) lies inside p's
        buffer (or b), else the redirect block (the violation is reported)."""
        b = b or self._bounds_of(p)
        if self._report is None:
            raise BackendError(f"checked build: {self.kb.name} has no run handle to report violations to")
        run, step = self._report
        if self._me is None:
            self._me = self._at_entry(llvm.AddressOfOp(self.kb.name, PTR))
        if self._redirect is None:
            self._redirect = self.kb.scratch(REDIRECT_BYTES // 8, i64)
        nbytes = nbytes if isinstance(nbytes, SSAValue) else self.const(nbytes)
        return self._emit(llvm.CallOp(ck.CHECK_FN, p, b.lo, b.size, nbytes, b.region, self.const(int(store)), run,
                                      self._me, step, self._redirect, return_type=PTR))

    def check_lanes(self, p: SSAValue, mask: SSAValue, elem_bytes: int, store: bool) -> SSAValue:
        """check for a masked access: its enabled lanes (a prefix, from lane_mask) must lie inside."""
        if mask not in self.lane_counts:
            raise BackendError(f"checked build: {self.kb.name} has a masked access whose mask is not a lane_mask")
        return self.check(p, self._emit(llvm.MulOp(self.lane_counts[mask], self.const(elem_bytes))), store)

    # ---------------------------------------------------------------- helpers
    def const(self, v: int) -> SSAValue:
        """An i64 constant defined at the function's entry (dominates every use)."""
        if v not in self._consts:
            self._consts[v] = self._at_entry(llvm.ConstantOp(IntegerAttr(v, i64), i64))
        return self._consts[v]

    def _at_entry(self, op: Operation) -> SSAValue:
        entry = self.kb.fn.body.block
        entry.insert_ops_before([op], entry.first_op) if entry.first_op else entry.add_op(op)
        return op.results[0]

    def _emit(self, op: Operation) -> SSAValue:
        return self.kb._ins(op)

    def _load_i64(self, base: SSAValue, i: int) -> SSAValue:
        slot = self._emit(llvm.GEPOp.from_mixed_indices(base, [self.const(i)], i64))
        return self._emit(llvm.LoadOp(slot, i64, alignment=8))

    def _bounds_of(self, p: SSAValue) -> Bounds:
        if p not in self.bounds:
            raise BackendError(f"checked build: {self.kb.name} accesses memory through a pointer not derived "
                               f"from a kernel field or a declared buffer")
        return self.bounds[p]
