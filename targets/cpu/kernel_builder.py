"""A small structured builder for CPU kernels at the kernel level.

Kernels are written with `func`, `scf`, `arith` and `llvm` (pointers, loads,
stores, vectors, intrinsics); the conversions in `convert_to_llvm` then take the
whole module down to the `llvm` dialect. A kernel is a typed function: each generator
declares its `Signature` (its fields, in launch order: buffers as `!llvm.ptr`, sizes as
i64), the builder gives the function one named argument per field (`KernelBuilder.fields`),
then the work items `begin, end` (i64). The runtime calls every kernel through a task
wrapper `(ptr ctx, i64 begin, i64 end)` that reads the fields from ctx, an array of i64
(task_wrappers.py, part of the conversion to `llvm`).

Kernels built inside `checked_kernels()` are checked builds: an AccessGuard (access_guard.py)
tracks which buffer every pointer belongs to and checks every load and store against it; a
checked kernel takes, after `end`, the run handle, the step and each buffer field's bounds.
Outside it the builder emits exactly the unchecked code.
"""
from __future__ import annotations

from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import ClassVar, Collection, Iterator, Sequence

from xdsl.builder import Builder
from xdsl.dialects import arith, func, llvm, scf
from xdsl.dialects.builtin import (
    AnyFloat,
    AnyFloatConstr,
    DenseArrayBase,
    ArrayAttr,
    DenseIntOrFPElementsAttr,
    FloatAttr,
    IntegerAttr,
    IntegerType,
    StringAttr,
    VectorType,
    f32,
    i32,
    i64,
)
from xdsl.ir import Attribute, Block, Dialect, Region, SSAValue
from xdsl.irdl import IRDLOperation, VarConstraint, irdl_op_definition, operand_def, prop_def, result_def
from xdsl.rewriter import InsertPoint

from pyflame_rt.dialects.kernel import FIELDS_ATTR, kernel_fields
from pyflame_rt.targets.cpu.access_guard import AccessGuard

PTR = llvm.LLVMPointerType()
F32_ALIGN = 4

_CHECKED: ContextVar[bool] = ContextVar("checked_kernels", default=False)


@contextmanager
def checked_kernels(enabled: bool = True) -> Iterator[None]:
    """KernelBuilders created inside (when enabled) build checked code."""
    token = _CHECKED.set(enabled)
    try:
        yield
    finally:
        _CHECKED.reset(token)


def vec(width: int, elem: Attribute = f32) -> VectorType:
    return VectorType(elem, [width])


@irdl_op_definition
class _VectorFCmpDef(IRDLOperation):
    """llvm.fcmp's constraints widened to vectors (xDSL 0.74's llvm.fcmp takes scalars only)."""

    name = "llvm.fcmp"
    T: ClassVar = VarConstraint("T", AnyFloatConstr | VectorType.constr(AnyFloatConstr))
    lhs = operand_def(T)
    rhs = operand_def(T)
    res = result_def(llvm.I1 | VectorType[llvm.I1])
    predicate = prop_def(IntegerAttr[i64])
    fastmathFlags = prop_def(llvm.FastMathAttr, default_value=llvm.FastMathAttr(None))


class VectorFCmpOp(llvm.FCmpOp):
    """llvm.fcmp of scalars or vectors: verified against _VectorFCmpDef, translated to LLVM IR by
    xDSL's llvm.fcmp conversion (it matches the class and reads lhs, rhs and predicate)."""

    get_irdl_definition = _VectorFCmpDef.get_irdl_definition
    verify_ = _VectorFCmpDef.verify_

    @classmethod
    def parse(cls, parser):
        return _with_mask_result(super().parse(parser))


class VectorICmpOp(llvm.ICmpOp):
    """llvm.icmp whose textual form parses back with an <N x i1> result for vector operands."""

    @classmethod
    def parse(cls, parser):
        return _with_mask_result(super().parse(parser))


def _with_mask_result(op):
    """A parsed compare of vectors gets its <N x i1> result (xDSL 0.74's parsers give every compare i1)."""
    t = op.lhs.type
    if not isinstance(t, VectorType):
        return op
    return type(op).create(operands=[op.lhs, op.rhs], result_types=[vec(t.get_shape()[0], IntegerType(1))],
                           properties=dict(op.properties), attributes=dict(op.attributes))


def llvm_dialect() -> Dialect:
    """xDSL's llvm dialect with compares that parse back from the text kernels print as."""
    ops = [VectorFCmpOp if op is llvm.FCmpOp else VectorICmpOp if op is llvm.ICmpOp else op
           for op in llvm.LLVM.operations]
    return Dialect("llvm", ops, list(llvm.LLVM.attributes))


@dataclass(frozen=True)
class Signature:
    """A kernel's fields in launch order: the names in `buffers` are buffers (`!llvm.ptr`), the
    others sizes (i64)."""

    fields: tuple[str, ...]
    buffers: frozenset[str] = frozenset()

    @staticmethod
    def of(fields: Sequence[str], buffers: Collection[str] = ()) -> "Signature":
        unknown = set(buffers) - set(fields)
        assert not unknown and len(set(fields)) == len(fields), f"bad signature {fields} / {sorted(unknown)}"
        return Signature(tuple(fields), frozenset(buffers))

    @staticmethod
    def of_kernel(fn: func.FuncOp) -> "Signature":
        """The signature of a kernel function (or of its declaration)."""
        names = kernel_fields(fn)
        assert names is not None, f"@{fn.sym_name.data} is not a kernel function"
        return Signature(tuple(names), frozenset(n for n, t in zip(names, fn.function_type.inputs.data) if t == PTR))

    def buffer_fields(self) -> list[int]:
        return [i for i, n in enumerate(self.fields) if n in self.buffers]

    def args(self, checked: bool) -> list[tuple[str, Attribute]]:
        """The kernel function's arguments: the fields, begin, end; a checked build's kernel then
        takes the run handle and step its violations are reported as, and each buffer field's
        [lo, lo + size) byte range (AccessGuard.take_bounds)."""
        args = [(n, PTR if n in self.buffers else i64) for n in self.fields] + [("begin", i64), ("end", i64)]
        if checked:
            args += [("run", PTR), ("step", i64)]
            args += [(f"{self.fields[i]}_{part}", i64) for i in self.buffer_fields() for part in ("lo", "size")]
        return args

    def is_checked(self, fn: func.FuncOp) -> bool:
        """Whether `fn`, a kernel of this signature, is a checked build's."""
        return len(fn.function_type.inputs.data) > len(self.fields) + 2

    def declaration(self, name: str, checked: bool) -> func.FuncOp:
        """The kernel `name` declared (its object comes from elsewhere, e.g. the kernel cache)."""
        fn = func.FuncOp.external(name, [t for _, t in self.args(checked)], [])
        fn.attributes[FIELDS_ATTR] = ArrayAttr([StringAttr(n) for n in self.fields])
        return fn


# the runtime's task ABI: every exported kernel entry is `(ptr ctx, i64 begin, i64 end)`
TASK_ARGS = (PTR, i64, i64)
# C library functions of one float argument that have no LLVM intrinsic: kernels call them by name
# (KernelBuilder.c_function; native_object.ALLOWED_IMPORTS names each)
C_FUNCTIONS = frozenset({"erf", "asinh", "acosh", "atanh"})


def c_declarations(kernels: Sequence[func.FuncOp]) -> list[func.FuncOp]:
    """The declarations of the C_FUNCTIONS `kernels` call, for the module that holds them."""
    called = {(op.callee.string_value(), op.results[0].type) for fn in kernels for op in fn.walk()
              if isinstance(op, func.CallOp) and op.callee.string_value() in C_FUNCTIONS}
    return [func.FuncOp.external(name, [t], [t]) for name, t in sorted(called, key=lambda c: (c[0], str(c[1])))]


class KernelBuilder:
    """Builds one kernel `func.func @name(fields..., i64 begin, i64 end)` of `signature`, or,
    without one, a task entry `(ptr ctx, i64 begin, i64 end)` that reads fields from ctx
    (only task_wrappers builds those)."""

    def __init__(self, name: str, signature: Signature | None = None, visibility: str = "private"):
        self.name = name
        checked = _CHECKED.get()
        args = signature.args(checked) if signature else list(zip(("ctx", "begin", "end"), TASK_ARGS))
        block = Block(arg_types=[t for _, t in args])
        for value, (arg_name, _) in zip(block.args, args):
            value.name_hint = arg_name
        self.fn = func.FuncOp(name, ([t for _, t in args], []), Region(block), visibility=visibility)
        self.b = Builder(InsertPoint.at_end(block))
        self.guard = AccessGuard(self) if checked else None  # checked builds only
        if signature is None:
            self.ctx, self.begin, self.end = block.args
            if self.guard:
                self.guard.read_ctx_header(self.ctx)
            return
        self.fn.attributes[FIELDS_ATTR] = ArrayAttr([StringAttr(n) for n in signature.fields])
        n = len(signature.fields)
        self.fields: dict[str, SSAValue] = dict(zip(signature.fields, block.args[:n]))
        self.begin, self.end = block.args[n:n + 2]
        if self.guard:
            self.guard.take_bounds(block.args[n + 2:], signature.buffer_fields(), block.args[:n])

    def finish(self) -> func.FuncOp:
        self.b.insert(func.ReturnOp())
        return self.fn

    def _ins(self, op):
        self.b.insert(op)
        return op.results[0] if op.results else op

    # ------------------------------------------------------------ task entries
    def field(self, i: int) -> SSAValue:
        """The i-th field (i64) of a task entry's ctx."""
        if self.guard:
            return self.guard.field(self.ctx, i)
        return self.load(self.ctx, self.const(i), elem=i64)

    def call(self, callee: str, args: Sequence[SSAValue]) -> None:
        self.b.insert(func.CallOp(callee, list(args), []))

    def as_ptr(self, v: SSAValue) -> SSAValue:
        return self._derived(self._ins(llvm.IntToPtrOp(v)), v)

    def ptr_to_int(self, p: SSAValue) -> SSAValue:
        return self._derived(self._ins(llvm.PtrToIntOp(p)), p)

    def _derived(self, result: SSAValue, source: SSAValue) -> SSAValue:
        return self.guard.derived(result, source) if self.guard else result

    # ------------------------------------------------------------- integers
    def const(self, v: int, t: IntegerType = i64) -> SSAValue:
        return self._ins(arith.ConstantOp(IntegerAttr(v, t)))

    def add(self, a, b): return self._ins(arith.AddiOp(a, b))
    def sub(self, a, b): return self._ins(arith.SubiOp(a, b))
    def mul(self, a, b): return self._ins(arith.MuliOp(a, b))
    def div(self, a, b): return self._ins(arith.DivSIOp(a, b))
    def rem(self, a, b): return self._ins(arith.RemSIOp(a, b))

    def ceil_div(self, a, b):
        """ceil(a / b) for a >= 0 and b > 0; b a Python int or an i64 value."""
        if isinstance(b, int):
            return self.div(self.add(a, self.const(b - 1)), self.const(b))
        return self.div(self.add(a, self.sub(b, self.const(1))), b)

    def min(self, a, b): return self._ins(arith.MinSIOp(a, b))
    def max(self, a, b): return self._ins(arith.MaxSIOp(a, b))
    def cmp(self, pred: str, a, b): return self._ins(arith.CmpiOp(a, b, pred))
    def select(self, c, a, b):
        r = self._ins(arith.SelectOp(c, a, b))
        return self.guard.selected(r, c, a, b) if self.guard else r

    def and_(self, a, b): return self._ins(arith.AndIOp(a, b))
    def or_(self, a, b): return self._ins(arith.OrIOp(a, b))
    def xor(self, a, b): return self._ins(arith.XOrIOp(a, b))

    def in_bounds(self, i, size):
        """(0 <= i < size, i clamped into [0, size - 1]): for loads that must stay inside a tensor."""
        ok = self.and_(self.cmp("sge", i, self.const(0)), self.cmp("slt", i, size))
        return ok, self.max(self.const(0), self.min(i, self.sub(size, self.const(1))))
    def trunc(self, a, t): return self._ins(arith.TruncIOp(a, t))

    # --------------------------------------------------------------- floats
    def fconst(self, v: float, width: int = 1) -> SSAValue:
        if width == 1:
            return self._ins(arith.ConstantOp(FloatAttr(v, f32)))
        return self._ins(arith.ConstantOp(DenseIntOrFPElementsAttr.from_list(vec(width), [v])))

    def vconst(self, v: float | int, elem: Attribute, width: int = 1) -> SSAValue:
        """A typed constant: scalar of `elem`, or a `width`-vector splat."""
        v = float(v) if isinstance(elem, AnyFloat) else int(v)
        if width == 1:
            attr = FloatAttr(v, elem) if isinstance(elem, AnyFloat) else IntegerAttr(v, elem)
            return self._ins(arith.ConstantOp(attr))
        return self._ins(arith.ConstantOp(DenseIntOrFPElementsAttr.from_list(vec(width, elem), [v])))

    def fadd(self, a, b): return self._ins(arith.AddfOp(a, b))
    def fsub(self, a, b): return self._ins(arith.SubfOp(a, b))
    def fmul(self, a, b): return self._ins(arith.MulfOp(a, b))
    def fdiv(self, a, b): return self._ins(arith.DivfOp(a, b))
    def fmax(self, a, b):
        """maxnum: a NaN operand is ignored (one instruction); see fmaximum."""
        return self._ins(arith.MaxnumfOp(a, b))

    def fmaximum(self, a, b):
        """IEEE maximum: NaN if either operand is NaN (a compare and a blend more than fmax)."""
        return self.intrinsic("llvm.maximum", a, b)

    def fcmp(self, pred: str, a, b) -> SSAValue:
        """An LLVM float compare ("olt", "une", "uno", ...) of scalars or vectors: i1 or <N x i1>.
        With a select on it, LLVM emits one min/max instruction for `x < c ? c : x`."""
        t = IntegerType(1) if not isinstance(a.type, VectorType) else vec(a.type.get_shape()[0], IntegerType(1))
        return self._ins(VectorFCmpOp.create(
            operands=[a, b], result_types=[t],
            properties={"predicate": IntegerAttr(llvm.FCmpPredicateFlag(pred).to_int(), i64)}))

    def fma(self, a, b, c): return self._ins(llvm.FMAOp(a, b, c))

    def intrinsic(self, base: str, *args: SSAValue, result_type: Attribute | None = None,
                  overloads: Sequence[Attribute] = ()) -> SSAValue:
        """Call an LLVM intrinsic, name mangled by `overloads` (default: the result type)."""
        rt = result_type or args[0].type
        name = ".".join([base, *(type_suffix(t) for t in (overloads or [rt]))])
        return self._ins(llvm.CallIntrinsicOp(name, list(args), [rt]))

    def call_intrinsic(self, name: str, *args: SSAValue, result_type: Attribute | None) -> SSAValue | None:
        """Call an LLVM intrinsic by its full name (a target's own, not overloaded: llvm.x86.*);
        result_type None: one that returns nothing."""
        op = self._ins(llvm.CallIntrinsicOp(name, list(args), [result_type] if result_type else []))
        return op if result_type else None

    def c_function(self, name: str, x: SSAValue) -> SSAValue:
        """C_FUNCTIONS' `name` of x, called once per lane (its module declares it: c_declarations)."""
        assert name in C_FUNCTIONS, name
        elem = x.type.get_element_type() if isinstance(x.type, VectorType) else x.type
        if not isinstance(x.type, VectorType):
            return self._ins(func.CallOp(name, [x], [elem]))
        out = self._ins(llvm.UndefOp(x.type))
        for lane in range(x.type.get_shape()[0]):
            scalar = self._ins(llvm.BitcastOp(self.shuffle(x, x, [lane]), elem))  # lane as <1 x T>, then T
            y = self._ins(func.CallOp(name, [scalar], [elem]))
            out = self._ins(llvm.InsertElementOp(out, y, self.const(lane, i32)))
        return out

    def cast(self, op_cls, value: SSAValue, to: Attribute) -> SSAValue:
        """An llvm cast (sext, zext, trunc, sitofp, fpext, fptrunc, bitcast); vectors keep their width."""
        if isinstance(value.type, VectorType) and not isinstance(to, VectorType):
            to = vec(value.type.get_shape()[0], to)
        return self._ins(op_cls(value, to))

    def splat(self, scalar: SSAValue, width: int) -> SSAValue:
        if width == 1:
            return scalar
        undef = self._ins(llvm.UndefOp(vec(width, scalar.type)))
        v = self._ins(llvm.InsertElementOp(undef, scalar, self.const(0, i32)))
        return self._ins(llvm.ShuffleVectorOp(v, undef, _zeros_mask(width), vec(width, scalar.type)))

    def shuffle(self, a: SSAValue, b: SSAValue, mask: Sequence[int]) -> SSAValue:
        """Lanes of the concatenation a ++ b picked by a static mask (llvm.shufflevector)."""
        t = vec(len(mask), a.type.get_element_type())
        return self._ins(llvm.ShuffleVectorOp(a, b, DenseArrayBase.from_list(i32, list(mask)), t))

    def scratch(self, count: int, elem: Attribute = f32) -> SSAValue:
        """A stack buffer allocated once at kernel entry (not per loop iteration)."""
        entry = self.fn.body.block
        n = arith.ConstantOp(IntegerAttr(count, i64))
        a = llvm.AllocaOp(n, elem, alignment=64)
        entry.insert_ops_before([n, a], entry.first_op) if entry.first_op else entry.add_ops([n, a])
        if self.guard:
            self.guard.scratch(a, count * _align(elem))
        return a.results[0]

    # -------------------------------------------------------------- memory
    def gep(self, ptr: SSAValue, index: SSAValue, elem: Attribute = f32) -> SSAValue:
        """&ptr[index]: `inbounds` (LLVM may assume the address stays inside its object) except
        in checked builds, whose checks compare the address with its buffer's bounds."""
        if self.guard:
            return self._derived(self._ins(llvm.GEPOp.from_mixed_indices(ptr, [index], elem)), ptr)
        return self._ins(llvm.GEPOp.from_mixed_indices(ptr, [index], elem, inbounds=True))

    def load(self, ptr: SSAValue, index: SSAValue, width: int = 1, elem: Attribute = f32) -> SSAValue:
        """Load a scalar or a `width`-vector at ptr[index] (element alignment only)."""
        t = elem if width == 1 else vec(width, elem)
        p = self.gep(ptr, index, elem)
        if self.guard:
            p = self.guard.check(p, width * _align(elem), store=False)
        return self._ins(llvm.LoadOp(p, t, alignment=_align(elem)))

    def store(self, value: SSAValue, ptr: SSAValue, index: SSAValue, elem: Attribute = f32) -> None:
        p = self.gep(ptr, index, elem)
        if self.guard:
            lanes = value.type.get_shape()[0] if isinstance(value.type, VectorType) else 1
            p = self.guard.check(p, lanes * _align(elem), store=True)
        if isinstance(value.type, VectorType):
            # retype the pointer: llvmlite checks the pointee type of stores
            p = self._ins(llvm.GEPOp.from_mixed_indices(p, [0], value.type))
        self._ins(llvm.StoreOp(value, p, alignment=_align(elem)))

    def iota(self, width: int) -> SSAValue:
        """<width x i64> [0, 1, ..., width - 1]: lane numbers."""
        return self._ins(arith.ConstantOp(DenseIntOrFPElementsAttr.from_list(vec(width, i64), list(range(width)))))

    def lane_mask(self, count: SSAValue, width: int) -> SSAValue:
        """<width x i1>: lane j is on iff j < count."""
        mask = self._ins(llvm.ICmpOp.create(
            operands=[self.iota(width), self.splat(count, width)], result_types=[vec(width, IntegerType(1))],
            properties={"predicate": IntegerAttr(2, i64)}))  # slt
        if self.guard:  # masked accesses check the enabled lanes: clamp(count, 0, width)
            self.guard.lane_counts[mask] = self.max(self.const(0), self.min(count, self.const(width)))
        return mask

    def masked_load(self, ptr, index, mask, width: int, elem: Attribute = f32) -> SSAValue:
        """Vector load of the lanes in `mask` only (others zero); never touches masked-off memory."""
        t = vec(width, elem)
        name = f"llvm.masked.load.v{width}{_suffix(elem)}.p0"
        passthru = self.vconst(0, elem, width)
        p = self.gep(ptr, index, elem)
        if self.guard:
            p = self.guard.check_lanes(p, mask, _align(elem), store=False)
        return self._ins(llvm.CallIntrinsicOp(name, [p, self.const(_align(elem), i32), mask, passthru], [t]))

    def masked_store(self, value, ptr, index, mask, width: int, elem: Attribute = f32) -> None:
        name = f"llvm.masked.store.v{width}{_suffix(elem)}.p0"
        p = self.gep(ptr, index, elem)
        if self.guard:
            p = self.guard.check_lanes(p, mask, _align(elem), store=True)
        self._ins(llvm.CallIntrinsicOp(name, [value, p, self.const(_align(elem), i32), mask], []))

    def prefetch(self, ptr, index, elem: Attribute = f32, write: bool = False) -> None:
        """Hint that the cache line of ptr[index] will be read (or, `write`, written) soon (llvm.prefetch
        into L1). The address is computed without `inbounds` and never dereferenced: it may lie past
        the data."""
        p = self._ins(llvm.GEPOp.from_mixed_indices(ptr, [index], elem))
        self._ins(llvm.CallIntrinsicOp("llvm.prefetch.p0", [p, self.const(int(write), i32), self.const(3, i32),
                                                             self.const(1, i32)], []))

    def partial_store(self, value, ptr, index, count, width: int, scratch: SSAValue) -> None:
        """Store the first `count` lanes of a vector (tile edges), via a scratch buffer."""
        self.store(value, scratch, self.const(0))
        with self.loop(0, count) as j:
            self.store(self.load(scratch, j.iv), ptr, self.add(index, j.iv))

    # ---------------------------------------------------------------- loops
    @contextmanager
    def loop(self, lb, ub, step=1, carried: Sequence[SSAValue] = ()) -> Iterator["Loop"]:
        """`for iv in range(lb, ub, step)` with loop-carried values (scf.for)."""
        lb = lb if isinstance(lb, SSAValue) else self.const(lb)
        ub = ub if isinstance(ub, SSAValue) else self.const(ub)
        step = step if isinstance(step, SSAValue) else self.const(step)
        body = Block(arg_types=[i64, *[c.type for c in carried]])
        op = scf.ForOp(lb, ub, step, list(carried), Region(body))
        self.b.insert(op)
        outer = self.b
        self.b = Builder(InsertPoint.at_end(body))
        loop = Loop(body.args[0], list(body.args[1:]), list(op.results))
        try:
            yield loop
        finally:
            self.b.insert(scf.YieldOp(*loop.next))
            self.b = outer

    def strip_mined(self, lb: SSAValue, ub: SSAValue, width: int, body) -> None:
        """body(iv, w) over [lb, ub): full `width`-vectors, then a scalar tail (no over-reads)."""
        n = self.sub(ub, lb)
        vec_end = self.add(lb, self.mul(self.div(n, self.const(width)), self.const(width)))
        with self.loop(lb, vec_end, width) as l:
            body(l.iv, width)
        if width > 1:
            with self.loop(vec_end, ub, 1) as l:
                body(l.iv, 1)

    def copy(self, src, src_index, dst, dst_index, lo, hi, width: int, elem: Attribute = f32) -> None:
        """dst[dst_index + k] = src[src_index + k] for k in [lo, hi), `width`-vectors then scalars."""
        self.strip_mined(lo, hi, width, lambda k, w: self.store(
            self.load(src, self.add(src_index, k), w, elem), dst, self.add(dst_index, k), elem))

    def fill(self, dst, dst_index, lo, hi, value: float, width: int, elem: Attribute = f32) -> None:
        """dst[dst_index + k] = value for k in [lo, hi)."""
        self.strip_mined(lo, hi, width, lambda k, w: self.store(
            self.vconst(value, elem, w), dst, self.add(dst_index, k), elem))

    @contextmanager
    def if_(self, cond: SSAValue) -> Iterator[None]:
        then = Block()
        op = scf.IfOp(cond, [], Region(then), Region(Block()))
        self.b.insert(op)
        outer = self.b
        self.b = Builder(InsertPoint.at_end(then))
        try:
            yield
        finally:
            self.b.insert(scf.YieldOp())
            Builder(InsertPoint.at_end(op.false_region.block)).insert(scf.YieldOp())
            self.b = outer

    def if_else(self, cond: SSAValue, then, otherwise) -> list[SSAValue]:
        """Run then() or otherwise(), whichever cond picks (an scf.if with both regions; unlike
        select, only the taken branch's code runs). Each returns the values the if yields (lists
        of SSA values of the same types), or None for a statement-only if/else."""
        outer = self.b
        blocks = []
        for make in (then, otherwise):
            block = Block()
            self.b = Builder(InsertPoint.at_end(block))
            values = list(make() or [])
            self.b.insert(scf.YieldOp(*values))
            blocks.append((block, values))
        self.b = outer
        op = scf.IfOp(cond, [v.type for v in blocks[0][1]], Region(blocks[0][0]), Region(blocks[1][0]))
        self.b.insert(op)
        return list(op.results)


class Loop:
    """Induction variable, carried values inside, results after the loop; set `next`."""

    def __init__(self, iv, carried, results):
        self.iv = iv
        self.carried = carried
        self.results = results
        self.next: list[SSAValue] = list(carried)


def type_suffix(t: Attribute) -> str:
    """LLVM's intrinsic overload suffix: f32, i64, v8f32."""
    if isinstance(t, VectorType):
        return f"v{t.get_shape()[0]}{t.get_element_type()}"
    return str(t)


def _align(elem: Attribute) -> int:
    return max(1, elem.bitwidth // 8) if hasattr(elem, "bitwidth") else 8


def _suffix(elem: Attribute) -> str:
    return str(elem)  # f32, i64, ...


def _zeros_mask(width: int):
    return DenseArrayBase.from_list(i32, [0] * width)
