"""The `kernel` dialect: a compiled model's schedule, between `graph` and `llvm`.

A `kernel.schedule` holds, in run order, where every tensor lives and which
kernel runs on which buffers:

    kernel.schedule @model dims ["batch"] {
      %x = kernel.io input 0 "x" ["batch", "784"] f32
      %w = kernel.weight "fc.weight" 3136 bytes
      %batch = kernel.dim "batch"
      %n = arith.muli %c4096, %batch : index
      %h = kernel.alloc(%n)
      %s = kernel.subview %h[1024]
      kernel.launch @gemm(%x, %w, %s, %k) items(%i) grain(%g) {graph_op = "Gemm#1"} : ...
    }

Buffers are untyped byte ranges (`!kernel.buffer`): the io tensors, the weights
(named entries of the module's WeightTable), arena buffers of a symbolic byte size,
and byte-offset subviews of those. Sizes are `index` values computed with ordinary
`arith` ops from the run's dims. A launch runs a kernel function of the module over
`items` work items, at least `grain` per parallel chunk. A kernel is a function with one
typed argument per field, then its work items `begin, end` (i64); its `kernel.fields`
attribute names the fields. A launch passes a `!kernel.buffer` for each `!llvm.ptr` field (a
`kernel.null` one for a buffer the kernel does not touch, e.g. an absent bias) and an `index`
for each i64 field, which its verifier checks:

    func.func @copy_r1_w8_f32(%dst: !llvm.ptr, %src: !llvm.ptr, %dst_off: i64, ..., %begin: i64,
                              %end: i64) attributes {kernel.fields = ["dst", "src", "dst_off", ...]}

`kernel.bind_dim` binds a run-time dim from an element of an integer input (a shape fed as a
graph input) rather than from an input's shape. `kernel.check` and `kernel.assume` are the run-time checks: the first a status code a
kernel reports, the second a requirement on dims checked before any kernel runs. The memory plan (`plan-memory`) records each
alloc's lifetime in launch numbers. `kernel.loop_begin` / `kernel.loop_copy` / `kernel.loop_end`
delimit a loop body the run executes repeatedly (a graph.loop).
"""
from __future__ import annotations

from collections.abc import Sequence
from math import prod

from xdsl.dialects import func, llvm
from xdsl.dialects.builtin import (
    ArrayAttr, DenseArrayBase, DictionaryAttr, IndexType, IntegerAttr, StringAttr, SymbolNameConstraint,
    SymbolRefAttr, UnitAttr, i64)
from xdsl.dialects.utils.enum_attribute import EnumAttribute
from xdsl.ir import (
    Dialect, Operation, ParametrizedAttribute, Region, SpacedOpaqueSyntaxAttribute, SSAValue,
    TypeAttribute)
from xdsl.irdl import (
    AnyOf, BaseAttr, IRDLOperation, ParsePropInAttrDict, irdl_attr_definition, irdl_op_definition, operand_def, opt_prop_def, prop_def,
    region_def, result_def, traits_def, var_operand_def)
from xdsl.traits import HasParent, IsolatedFromAbove, NoTerminator, Pure, SymbolOpInterface, SymbolTable
from xdsl.utils.exceptions import VerifyException
from xdsl.utils.str_enum import StrEnum

from pyflame_rt.dtype import DType


@irdl_attr_definition
class BufferType(ParametrizedAttribute, TypeAttribute):
    """A byte range a kernel reads or writes."""

    name = "kernel.buffer"


class IORole(StrEnum):
    INPUT = "input"
    OUTPUT = "output"
    STATUS = "status"  # the word a failed run-time check stores its code into


@irdl_attr_definition
class IORoleAttr(EnumAttribute[IORole], SpacedOpaqueSyntaxAttribute):
    name = "kernel.io_role"


class Relation(StrEnum):
    EQ = "eq"
    LE = "le"
    MULTIPLE_OF = "multiple_of"
    BROADCASTS_TO = "broadcasts_to"


@irdl_attr_definition
class RelationAttr(EnumAttribute[Relation], SpacedOpaqueSyntaxAttribute):
    name = "kernel.relation"


BUFFER = BufferType()
VALUE_DIM_DTYPES = (DType.INT64.value, DType.INT32.value)  # what kernel.bind_dim reads
FIELD = AnyOf([BaseAttr(BufferType), BaseAttr(IndexType)])
# a kernel function's attribute: the names of its fields (its leading arguments), in launch order
FIELDS_ATTR = "kernel.fields"


def kernel_fields(fn: Operation) -> list[str] | None:
    """The field names of a kernel function; None if `fn` is not one."""
    names = fn.attributes.get(FIELDS_ATTR) if isinstance(fn, func.FuncOp) else None
    return [n.data for n in names] if isinstance(names, ArrayAttr) else None


@irdl_op_definition
class ScheduleOp(IRDLOperation):
    """A model's kernel launches in run order; `dims` are the run-time dims in the order the
    runtime passes their values."""

    name = "kernel.schedule"
    sym_name = prop_def(SymbolNameConstraint())
    dims = prop_def(ArrayAttr[StringAttr])
    body = region_def("single_block")
    # graph op name -> how many the model had (views included, which launch nothing)
    op_summary = opt_prop_def(DictionaryAttr)
    checked = opt_prop_def(UnitAttr)  # a checked build: every kernel bounds-checks its accesses

    assembly_format = "$sym_name `dims` $dims attr-dict-with-keyword $body"
    irdl_options = (ParsePropInAttrDict(),)
    traits = traits_def(IsolatedFromAbove(), NoTerminator(), SymbolOpInterface())

    def __init__(self, name: str, dims: Sequence[str], body: Region, op_summary: dict[str, int],
                 checked: bool = False):
        summary = DictionaryAttr({k: IntegerAttr(v, i64) for k, v in op_summary.items()})
        super().__init__(regions=[body], properties={
            "sym_name": StringAttr(name), "dims": ArrayAttr([StringAttr(d) for d in dims]),
            "op_summary": summary, **({"checked": UnitAttr()} if checked else {})})

    def dim_names(self) -> list[str]:
        return [d.data for d in self.dims]


class ScheduleLevelOp(IRDLOperation):
    """An op of a schedule's body."""

    traits = traits_def(HasParent(ScheduleOp))


class StorageOp(ScheduleLevelOp):
    """An op naming a buffer."""

    result = result_def(BufferType)


@irdl_op_definition
class IOOp(StorageOp):
    """An input or output tensor (or the check status word): slot `slot` of the run's io table."""

    name = "kernel.io"
    role = prop_def(IORoleAttr)
    slot = prop_def(IntegerAttr[i64])
    tensor_name = prop_def(StringAttr)
    shape = prop_def(ArrayAttr[StringAttr])  # each dim as symbolic.parse_dim reads it
    dtype = prop_def(StringAttr)  # a DType value

    assembly_format = "$role $slot $tensor_name $shape $dtype attr-dict"
    traits = traits_def(Pure(), HasParent(ScheduleOp))

    def __init__(self, role: IORole, slot: int, tensor_name: str, shape: Sequence[str], dtype: DType):
        super().__init__(result_types=[BUFFER], properties={
            "role": IORoleAttr(role), "slot": IntegerAttr(slot, i64), "tensor_name": StringAttr(tensor_name),
            "shape": ArrayAttr([StringAttr(d) for d in shape]), "dtype": StringAttr(dtype.value)})

    def verify_(self) -> None:
        if self.slot.value.data < 0:
            raise VerifyException(f"io slot {self.slot.value.data} is negative")
        if self.dtype.data not in {d.value for d in DType}:
            raise VerifyException(f"unknown element type '{self.dtype.data}'")


@irdl_op_definition
class WeightOp(StorageOp):
    """The weight `weight_name` of the module's WeightTable, `nbytes` long."""

    name = "kernel.weight"
    weight_name = prop_def(StringAttr)
    nbytes = prop_def(IntegerAttr[i64])

    assembly_format = "$weight_name $nbytes `bytes` attr-dict"
    traits = traits_def(Pure(), HasParent(ScheduleOp))

    def __init__(self, weight_name: str, nbytes: int):
        super().__init__(result_types=[BUFFER], properties={
            "weight_name": StringAttr(weight_name), "nbytes": IntegerAttr(nbytes, i64)})

    def verify_(self) -> None:
        if self.nbytes.value.data < 0:
            raise VerifyException(f"weight '{self.weight_name.data}' has a negative size")


@irdl_op_definition
class AllocOp(StorageOp):
    """An arena buffer of `nbytes` bytes. `plan-memory` sets `live`: the first and the last launch
    (by number in the schedule) that may touch it."""

    name = "kernel.alloc"
    nbytes = operand_def(IndexType)
    live = opt_prop_def(DenseArrayBase.constr(i64))

    assembly_format = "`(` $nbytes `)` attr-dict"
    irdl_options = (ParsePropInAttrDict(),)

    def __init__(self, nbytes: SSAValue | Operation):
        super().__init__(operands=[nbytes], result_types=[BUFFER])

    def lifetime(self) -> tuple[int, int] | None:
        return None if self.live is None else tuple(self.live.get_values())

    def verify_(self) -> None:
        if self.live is not None:
            span = self.live.get_values()
            if len(span) != 2 or not 0 <= span[0] <= span[1]:
                raise VerifyException(f"live must be [first, last] launch numbers, got {list(span)}")


@irdl_op_definition
class SubviewOp(StorageOp):
    """The bytes of `source` from `offset` on."""

    name = "kernel.subview"
    source = operand_def(BufferType)
    offset = prop_def(IntegerAttr[i64])

    assembly_format = "$source `[` $offset `]` attr-dict"
    traits = traits_def(Pure(), HasParent(ScheduleOp))

    def __init__(self, source: SSAValue | Operation, offset: int):
        super().__init__(operands=[source], result_types=[BUFFER], properties={"offset": IntegerAttr(offset, i64)})

    def verify_(self) -> None:
        if self.offset.value.data <= 0:
            raise VerifyException(f"a subview's offset must be positive, got {self.offset.value.data}")


@irdl_op_definition
class NullOp(StorageOp):
    """No buffer: the null pointer a kernel gets for a buffer it does not touch (an absent bias)."""

    name = "kernel.null"

    assembly_format = "attr-dict"
    traits = traits_def(Pure(), HasParent(ScheduleOp))

    def __init__(self):
        super().__init__(result_types=[BUFFER])


@irdl_op_definition
class DimOp(ScheduleLevelOp):
    """The value of the run-time dim `dim_name` (one of the schedule's dims)."""

    name = "kernel.dim"
    dim_name = prop_def(StringAttr)
    result = result_def(IndexType)

    assembly_format = "$dim_name attr-dict"
    traits = traits_def(Pure(), HasParent(ScheduleOp))

    def __init__(self, dim_name: str):
        super().__init__(result_types=[IndexType()], properties={"dim_name": StringAttr(dim_name)})

    def verify_(self) -> None:
        schedule = self.parent_op()
        if isinstance(schedule, ScheduleOp) and self.dim_name.data not in schedule.dim_names():
            raise VerifyException(f"'{self.dim_name.data}' is not a dim of the schedule {schedule.dim_names()}")


@irdl_op_definition
class BindDimOp(ScheduleLevelOp):
    """Binds the run-time dim `dim_name` to element `index` (row-major) of the `dtype` (int64 or
    int32) tensor in `source`: a size set by a tensor's values, not by a shape. From an input it is
    bound before any kernel runs; from a tensor the launches before it compute, once they have run
    (the launches after it may use the dim). The value is checked first: not negative, and the
    sizes it gives within int64 and the memory limit."""

    name = "kernel.bind_dim"
    dim_name = prop_def(StringAttr)
    source = operand_def(BufferType)
    index = prop_def(IntegerAttr[i64])
    dtype = prop_def(StringAttr)

    assembly_format = "$dim_name `=` $source `[` $index `]` $dtype attr-dict"

    def __init__(self, dim_name: str, source: SSAValue | Operation, index: int, dtype: DType):
        super().__init__(operands=[source], properties={"dim_name": StringAttr(dim_name),
                                                        "index": IntegerAttr(index, i64),
                                                        "dtype": StringAttr(dtype.value)})

    def verify_(self) -> None:
        schedule = self.parent_op()
        if isinstance(schedule, ScheduleOp) and self.dim_name.data not in schedule.dim_names():
            raise VerifyException(f"'{self.dim_name.data}' is not a dim of the schedule {schedule.dim_names()}")
        if self.dtype.data not in VALUE_DIM_DTYPES:
            raise VerifyException("a dim is bound from an element of an int64 or int32 tensor")
        if self.index.value.data < 0:
            raise VerifyException(f"element {self.index.value.data} is negative")
        io = self.source.owner
        if not isinstance(io, IOOp):
            return
        if io.role.data == IORole.STATUS or io.dtype.data != self.dtype.data:
            raise VerifyException(f"a dim is bound from an element of an {self.dtype.data} tensor, "
                                  f"'{io.tensor_name.data}' is {io.dtype.data}")
        static = [int(d.data) for d in io.shape if d.data.isdigit()]
        size = prod(static) if len(static) == len(io.shape) else None
        if not 0 <= self.index.value.data < (size if size is not None else 1 << 62):
            raise VerifyException(f"element {self.index.value.data} is outside input '{io.tensor_name.data}' "
                                  f"of shape [{', '.join(d.data for d in io.shape)}]")


@irdl_op_definition
class CheckOp(ScheduleLevelOp):
    """A run-time check a kernel makes: its result is the status code the kernel stores into the
    status word when the check fails (the n-th check of the schedule has code n); the run then
    fails with `message`."""

    name = "kernel.check"
    message = prop_def(StringAttr)
    result = result_def(IndexType)

    assembly_format = "$message attr-dict"

    def __init__(self, message: str):
        super().__init__(result_types=[IndexType()], properties={"message": StringAttr(message)})


@irdl_op_definition
class AssumeOp(ScheduleLevelOp):
    """`lhs relation rhs` over the dims, required by the graph node `node` (`what` says what fails);
    checked once per input-shape signature before any kernel runs."""

    name = "kernel.assume"
    lhs = operand_def(IndexType)
    rhs = operand_def(IndexType)
    relation = prop_def(RelationAttr)
    what = prop_def(StringAttr)
    node = prop_def(StringAttr)

    assembly_format = "$lhs $relation $rhs `,` $what `at` $node attr-dict"

    def __init__(self, lhs: SSAValue, relation: Relation, rhs: SSAValue, what: str, node: str):
        super().__init__(operands=[lhs, rhs], properties={
            "relation": RelationAttr(relation), "what": StringAttr(what), "node": StringAttr(node)})


@irdl_op_definition
class LaunchOp(ScheduleLevelOp):
    """Run kernel `callee` over `items` work items, at least `grain` items per parallel chunk. The
    fields are the kernel's, in its order: a buffer for each `!llvm.ptr` argument, an index for
    each i64 one."""

    name = "kernel.launch"
    callee = prop_def(SymbolRefAttr)
    fields = var_operand_def(FIELD)
    items = operand_def(IndexType)
    grain = operand_def(IndexType)
    graph_op = prop_def(StringAttr)  # the graph op it computes, "<op>#<n>"

    assembly_format = ("$callee `(` $fields `)` `items` `(` $items `)` `grain` `(` $grain `)` `for` $graph_op "
                       "attr-dict `:` type($fields)")

    def __init__(self, callee: str, fields: Sequence[SSAValue], items: SSAValue, grain: SSAValue, graph_op: str):
        super().__init__(operands=[fields, items, grain], properties={
            "callee": SymbolRefAttr(callee), "graph_op": StringAttr(graph_op)})

    def verify_(self) -> None:
        module = self.parent_op() and self.parent_op().parent_op()
        if module is None or not module.has_trait(SymbolTable):
            return
        name = self.callee.root_reference.data
        callee = SymbolTable.lookup_symbol(module, self.callee)
        if callee is None:
            raise VerifyException(f"launch of @{name}, which the module does not define")
        names = kernel_fields(callee)
        if names is None:
            raise VerifyException(f"launch of @{name}, which is not a kernel function (no {FIELDS_ATTR})")
        if len(self.fields) != len(names):
            raise VerifyException(f"launch of @{name} passes {len(self.fields)} fields, the kernel takes "
                                  f"{len(names)} ({', '.join(names)})")
        for i, (value, field, t) in enumerate(zip(self.fields, names, callee.function_type.inputs.data)):
            want = BUFFER if isinstance(t, llvm.LLVMPointerType) else IndexType()
            if value.type != want:
                raise VerifyException(f"field {i} ('{field}') of @{name} is {'a buffer' if want == BUFFER else 'a size'}"
                                      f" ({t}), the launch passes {value.type}")


class LoopCopy(StrEnum):
    ENTER = "enter"  # before the first iteration: an initial carried value into its body argument
    NEXT = "next"    # after each iteration: a yielded carried value into its body argument
    SCAN = "scan"    # after iteration i: a scan slice to byte i * nbytes of its scan output


@irdl_attr_definition
class LoopCopyAttr(EnumAttribute[LoopCopy], SpacedOpaqueSyntaxAttribute):
    name = "kernel.loop_copy_kind"


@irdl_op_definition
class LoopBeginOp(ScheduleLevelOp):
    """The launches up to the next `kernel.loop_end` are a loop body the run executes while the
    iteration number is below `trips` and the condition holds: first `init` (a bool, or
    `kernel.null`: true), then the body's. Before each iteration the run stores the iteration
    number into `counter` (int64) and true into `flag` (the body's condition argument); after the
    loop, the number of iterations run into `counter`. A loop begun before the matching
    `kernel.loop_end` lies inside the body, run from its start in every iteration. The run's
    deadline and cancellation are checked before every iteration."""

    name = "kernel.loop_begin"
    counter = operand_def(BufferType)
    flag = operand_def(BufferType)
    init = operand_def(BufferType)
    trips = operand_def(IndexType)

    assembly_format = "`counter` `(` $counter `)` `flag` `(` $flag `)` `init` `(` $init `)` `trips` `(` $trips `)` attr-dict"

    def __init__(self, counter: SSAValue, flag: SSAValue, init: SSAValue, trips: SSAValue):
        super().__init__(operands=[counter, flag, init, trips])


@irdl_op_definition
class LoopCopyOp(ScheduleLevelOp):
    """A copy of `nbytes` bytes the run makes for the enclosing loop (`kind`: LoopCopy); after an
    iteration the scan copies come first, then the next copies, which read every source before
    writing any destination."""

    name = "kernel.loop_copy"
    kind = prop_def(LoopCopyAttr)
    source = operand_def(BufferType)
    dest = operand_def(BufferType)
    nbytes = operand_def(IndexType)

    assembly_format = "$kind $source `to` $dest `(` $nbytes `)` attr-dict"

    def __init__(self, kind: LoopCopy, source: SSAValue, dest: SSAValue, nbytes: SSAValue):
        super().__init__(operands=[source, dest, nbytes], properties={"kind": LoopCopyAttr(kind)})


@irdl_op_definition
class LoopEndOp(ScheduleLevelOp):
    """The end of a loop body: `cond` (a bool) holds the condition the body computed."""

    name = "kernel.loop_end"
    cond = operand_def(BufferType)

    assembly_format = "`cond` `(` $cond `)` attr-dict"

    def __init__(self, cond: SSAValue):
        super().__init__(operands=[cond])


Kernel = Dialect("kernel", [ScheduleOp, IOOp, WeightOp, AllocOp, SubviewOp, NullOp, DimOp, BindDimOp, CheckOp,
                           AssumeOp, LaunchOp, LoopBeginOp, LoopCopyOp, LoopEndOp],
                 [BufferType, IORoleAttr, RelationAttr, LoopCopyAttr])


def schedule_of(module: Operation) -> ScheduleOp | None:
    """The module's schedule, if it is at the kernel level."""
    return next((op for op in module.walk() if isinstance(op, ScheduleOp)), None)


def launches(schedule: ScheduleOp) -> list[LaunchOp]:
    return [op for op in schedule.body.block.ops if isinstance(op, LaunchOp)]
