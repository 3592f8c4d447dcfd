"""Conversion graph -> kernel level for the CPU: the kernels and the model's launches.

`GraphLowering` turns every graph op into one or more `kernel.launch`es of a generated
kernel (the `kernel` dialect: buffers, symbolic sizes, launches); `plan-memory` then
gives every arena buffer its lifetime, and `read_kernel_module` reads the module back
into a `LoweredModel`: its `_Call` steps, `Buffer`s, weights and checks. A step's fields
are pointers into the inputs/outputs, the weight blob or the memory plan's arena buffers
(`Loc`), or sizes computed from the dynamic dims, so one compiled artifact serves every
batch size. The steps become the artifact's launch table (pyflame_rt/launch_table.py),
which the runtime executes. View ops (Flatten, Reshape, Identity) move no data: their
result aliases the input buffer.
"""
from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable, Iterator, Mapping, Sequence

import numpy as np
from xdsl.context import Context
from xdsl.dialects import arith, func
from xdsl.dialects.builtin import IndexType, IntegerAttr, ModuleOp, StringAttr, UnrealizedConversionCastOp
from xdsl.ir import Block, Operation, Region, SSAValue
from xdsl.pattern_rewriter import GreedyRewritePatternApplier, PatternRewriter, PatternRewriteWalker

from pyflame_rt.dialects import graph, kernel
from pyflame_rt.dialects import graph_nn as nn
from pyflame_rt.dialects import graph_tensor as gt
from pyflame_rt.dialects.assumptions import Assumption, at_node, collect, require_nonempty
from pyflame_rt.dialects.symbolic import Dim, Shape, SymDim, dim_mul, fold_size, numel, parse_dim
from pyflame_rt.dialects.weights import WeightTable
from pyflame_rt.dtype import DType
from pyflame_rt.errors import InvalidModelError, UnsupportedOperatorError
from pyflame_rt.targets.cpu.access_guard import check_declaration
from pyflame_rt.targets.cpu.half_panels import half_rounded_values, panel_type
from pyflame_rt.targets.cpu.kernel_builder import c_declarations, checked_kernels
from pyflame_rt.targets.cpu.kernels.elementwise import INNER_CHUNK, ElementwiseSpec, elementwise_kernel
from pyflame_rt.targets.cpu.kernels.gemm import (
    CONV_A_FIELDS, PACK_FIELDS, SMALL_GEMM_MACS, GemmSpec, PanelType, gemm_kernel, k_slice_depth, pack_b,
    pack_b_kernel, pack_b_kernel_name, pad_bias)
from pyflame_rt.targets.cpu.lowerings.pattern import GraphToKernelPattern, RefuseUnsupported
from pyflame_rt.targets.cpu.memory_plan import Buffer
from pyflame_rt.targets.cpu.plan_memory import PlanMemory
from pyflame_rt.targets.cpu.target import CPUTarget
from pyflame_rt.loops import Copy, Loop, Place
from pyflame_rt.value_dims import ComputedDim, ValueDim, expr_symbols

if TYPE_CHECKING:
    from pyflame_rt.targets.cpu.kernel_cache import KernelCache

SCHEDULE = "model"  # the kernel.schedule's symbol
STATUS_DTYPE = DType.INT64  # the run's check status word
WEIGHT_ALIGN = 64


@dataclass
class TensorInfo:
    name: str
    shape: Shape
    dtype: DType


@dataclass
class Loc:
    """Where a tensor lives: io slot, weight blob offset, or arena buffer index (plus a byte
    offset into it: a tensor stored inside another one, e.g. a slice of a Concat's output)."""

    kind: str  # "io" | "weight" | "arena" | "null"
    index: int
    offset: int = 0


NULL_BUFFER = Loc("null", 0)  # a buffer field the kernel does not touch (an absent bias): a null pointer


@dataclass
class LoweredModel:
    """The kernel-level module (the kernels) and everything the executable needs beside it."""

    module: ModuleOp
    inputs: list[TensorInfo]
    outputs: list[TensorInfo]
    symbols: list[str]
    buffers: list[Buffer]
    weights: list[tuple[str, np.ndarray]]
    kernel_count: int = 0
    op_summary: dict[str, int] = field(default_factory=dict)
    checks: list[str] = field(default_factory=list)  # run-time check messages, status code = index + 1
    step_ops: list[str] = field(default_factory=list)  # per kernel call: the graph op it computes
    checked: bool = False  # a checked build (checked.py)
    # checked builds, per kernel call: per field, the buffer it points into (None: not a pointer)
    step_fields: list[list[str | None]] = field(default_factory=list)
    # what the shape functions and lowerings assumed about dynamic dims: checked before every new
    # input-shape signature runs
    assumptions: list[Assumption] = field(default_factory=list)
    # kernels `module` defines, and kernels it only declares: their objects came from the kernel cache
    generated: list[str] = field(default_factory=list)
    cached: dict[str, bytes] = field(default_factory=dict)
    kernel_cache: KernelCache | None = None  # where the generated kernels' objects go once compiled
    steps: list[_Call] = field(default_factory=list)  # the launches, in order
    value_dims: list[ValueDim] = field(default_factory=list)  # dims bound from input values
    computed_dims: list[ComputedDim] = field(default_factory=list)  # ... and from computed ones
    loops: list[Loop] = field(default_factory=list)  # launch ranges the run repeats (graph.loop)


# Work (in FMAs) a parallel-for chunk should carry at least: below it, waking the
# workers costs more than it saves, so small ops run on the calling thread.
MIN_TASK_WORK = 1 << 16


@dataclass
class _Call:
    kernel: str
    fields: list  # each a Loc or a size expression
    items: object  # size expression: number of work items
    grain: object = 1  # size expression: minimum items per chunk


class CheckCode(int):
    """A run-time check's status code as a kernel field: the value of its `kernel.check`."""


_IO_ROLES = (kernel.IORole.INPUT, kernel.IORole.OUTPUT)
_RELATIONS = {"==": kernel.Relation.EQ, "<=": kernel.Relation.LE, "multiple of": kernel.Relation.MULTIPLE_OF,
              "broadcasts to": kernel.Relation.BROADCASTS_TO}
_INDEX_OPS = {"mul": arith.MuliOp, "add": arith.AddiOp, "min": arith.MinSIOp, "max": arith.MaxSIOp}


class GraphLowering:
    null_buffer = NULL_BUFFER  # what a pattern passes for a buffer field its kernel does not touch

    def __init__(self, fn: func.FuncOp, weights: dict[str, np.ndarray], target: CPUTarget, checked: bool = False,
                 kernel_cache: KernelCache | None = None):
        self.fn = fn
        self.checked = checked
        self.src_weights = weights
        self.target = target
        self.shapes = graph.infer_value_shapes(fn)
        # a model with convolutions runs all its GEMMs on conv_a kernels, so convolutions with and
        # without an implicit im2col share them; others compile no im2col pack
        self.conv_gemms = any(isinstance(op, nn.ConvOp) and op.groups == 1 for op in fn.walk())
        self.kernel_cache = kernel_cache
        self.kernels: dict[str, func.FuncOp] = {}
        self.locs: dict[SSAValue, Loc] = {}
        self.in_place: set[SSAValue] = set()  # stored inside their consumer's result by their producer
        # values that are strided views of another tensor's storage (a Slice read only by Transposes):
        # per-dim element strides; their readers pass these to the copy kernels
        self.strides: dict[SSAValue, list[Dim]] = {}
        # float32 values holding only float16 / bfloat16 values: their GEMMs may take half panels
        self.half_values = half_rounded_values(fn)
        # the kernel module; its weights: those of the graph the kernels read, and derived ones
        self.module = ModuleOp([])
        self.table = WeightTable(self.module)
        self.weight_names: dict[int, tuple[str, np.ndarray]] = {}  # id of a stored array -> its name
        self._weight_bytes = 0
        self.op_summary: dict[str, int] = {}
        self.checks: list[str] = []
        # the schedule being built: its ops in run order, every Loc's and size's value computed once
        self.block = Block()
        self.storage: dict[tuple[str, int], SSAValue] = {}  # (kind, index) of a Loc -> its buffer
        self.n_buffers = 0
        self.values: dict = {}
        self.graph_op = ""  # the graph op the launches being emitted compute
        self.loops: list[Operation] = []  # the loops whose bodies are being lowered, outermost first
        # in the body of the outermost loop being lowered: the dims bound there, whether it holds a loop
        self.body_dims: set[str] = set()
        self.body_has_loops = False
        # the dims an input's values bind, by argument (a shape fed as a graph input)
        arg_attrs = fn.arg_attrs.data if fn.arg_attrs else [None] * len(fn.args)
        self.value_dims = [graph.value_dims(a.data if a is not None else {}) for a in arg_attrs]
        syms: set[str] = {d for dims in self.value_dims for d in dims}
        syms.update(d for op in fn.walk() if isinstance(op, gt.BindDimsOp) for d in op.dim_names())
        for s in self.shapes.values():
            for d in s:
                if isinstance(d, SymDim):
                    syms.update(d.syms)
        self.symbols = sorted(syms)

    # --------------------------------------------------------------- storage
    def add_weight(self, name: str, arr: np.ndarray) -> Loc:
        """A weight of the blob: each array is stored once, under its name (a graph weight's) or, if
        that is taken, a fresh one derived from it."""
        if id(arr) not in self.weight_names:
            self.weight_names[id(arr)] = (self.table.add(name, arr), arr)  # the array stays alive: ids stay unique
        name = self.weight_names[id(arr)][0]
        arr = self.table[name]
        off = -(-self._weight_bytes // WEIGHT_ALIGN) * WEIGHT_ALIGN
        self._weight_bytes = off + arr.nbytes
        self.storage["weight", off] = self._emit(kernel.WeightOp(name, arr.nbytes))
        return Loc("weight", off)

    def new_buffer(self, nbytes: Dim) -> Loc:
        self.storage["arena", self.n_buffers] = self._emit(kernel.AllocOp(self.value(nbytes)))
        self.n_buffers += 1
        return Loc("arena", self.n_buffers - 1)

    def const_value(self, v: SSAValue) -> np.ndarray | None:
        op = v.owner
        if isinstance(op, graph.ConstantOp):
            if op.weight_name is not None:
                return self.src_weights[op.weight_name]
            return graph.dense_value(op.value, graph.static_shape(op.result.type))
        return None

    def result_loc(self, v: SSAValue) -> Loc:
        """Storage for an op result: the io slot for graph outputs, else a new arena buffer."""
        if v in self.out_slot and v not in self.locs:
            self.locs[v] = self.out_slot[v]
        if v not in self.locs:
            self.locs[v] = self.new_buffer(dim_mul(numel(self.shapes[v]), self.dtype(v).itemsize))
        return self.locs[v]

    def result_and_residual_locs(self, op, k: Dim) -> tuple[Loc, Loc | None]:
        """Storage of the result of an op lowered to one GEMM, and of its fused residual (None without
        one). When the residual's value dies at `op` and the GEMM finishes every output element in one
        K slice (k within k_slice_depth: C never holds partial sums), the result takes over the residual's buffer: the
        epilogue reads each residual element, then writes the output element in its place, into cache
        lines the read brought in rather than fresh ones (onnxruntime's Conv + Sum fusion writes into
        the Sum operand the same way)."""
        v, donor = op.results[0], op.residual
        if donor is None:
            return self.result_loc(v), None
        residual = self.loc(donor)
        if isinstance(k, int) and k <= k_slice_depth(self.dtype(v)) and self._dies_at(donor, op):
            self.locs[v] = residual
        return self.result_loc(v), residual

    def _dies_at(self, donor: SSAValue, op) -> bool:
        """Whether nothing reads donor's buffer after `op`, and `op` reads it only as its residual."""
        v, loc = op.results[0], self.locs.get(donor)
        if (self.loops or v in self.locs or v in self.out_slot or loc is None or loc.kind != "arena"
                or loc.offset != 0
                or self.dtype(v) is not self.dtype(donor) or tuple(self.shapes[v]) != tuple(self.shapes[donor])):
            return False
        sharing = [u for u, at in self.locs.items() if at.kind == "arena" and at.index == loc.index]
        # the readers lowered before `op` are replaced already: every reader left is `op` or after it
        reads = [use.operation for u in sharing for use in u.uses]
        return len(reads) == 1 and reads[0] is op

    def place_inside(self, v: SSAValue, outer: SSAValue, offset_bytes: int) -> Loc:
        """Make v's storage part of `outer`'s (its consumer's result) at `offset_bytes`: the
        producer of v writes there and the consumer skips moving v (`in_place`)."""
        base = self.result_loc(outer)
        self.locs[v] = Loc(base.kind, base.index, base.offset + offset_bytes)
        self.in_place.add(v)
        return self.locs[v]

    def place_view(self, v: SSAValue, src: Loc, offset_bytes: int, strides: list[Dim]) -> None:
        """Make v a strided view of src's storage at offset_bytes (no copy); its readers take `strides`."""
        self.locs[v] = Loc(src.kind, src.index, src.offset + offset_bytes)
        self.strides[v] = strides

    @staticmethod
    def dtype(v: SSAValue) -> DType:
        return graph.dtype_of(v.type)

    def check(self, message: str) -> tuple[Loc, CheckCode]:
        """A run-time check: kernels store the returned code into the status slot (an extra io
        pointer after the outputs) when it fails, and the executable raises InputError(message)."""
        self.checks.append(message)
        code = CheckCode(len(self.checks))
        self.values[CheckCode, code] = self._emit(kernel.CheckOp(message))
        return Loc("io", self.status_slot), code

    @staticmethod
    def expect_nonempty(extent: Dim, message: str, results: Dim = 1) -> None:
        """Each of `results` outputs reduces a non-empty `extent`, for an op onnxruntime fails on an
        empty extent (where the kernel would produce a value): a shape assumption, checked before
        native code runs."""
        require_nonempty(extent, message, results)

    def loc(self, v) -> Loc:
        """Storage of a value (constants are added to the weights on first use); a Loc passes through."""
        if isinstance(v, Loc):
            return v
        if v not in self.locs:
            arr = self.const_value(v)
            assert arr is not None, f"value {v} has no storage"
            self.locs[v] = self.add_weight(v.owner.weight_name or "const", arr)
        return self.locs[v]

    def kernel(self, key: str, make: Callable[[], func.FuncOp]) -> str:
        """The kernel symbol `key`, generated by `make` unless the kernel cache supplies its object.
        `make` closes over everything the kernel's code depends on (its spec; the cache keys on it)."""
        if key not in self.kernels:
            if self.kernel_cache is None or not self.kernel_cache.supplies(key, make):
                self.kernels[key] = make()
        return key

    def cached_kernels(self) -> list[str]:
        """The kernels whose objects the kernel cache supplies (declared, not generated)."""
        return self.kernel_cache.supplied if self.kernel_cache is not None else []

    def call(self, name: str, fields: list, items, work_per_item=None) -> None:
        """Emit a kernel call over `items` work items; `work_per_item` (FMAs, a size
        expression) sets the grain so that tiny calls are not split across threads."""
        grain = 1 if work_per_item is None else ("ceildiv", MIN_TASK_WORK, work_per_item)
        launch = kernel.LaunchOp(name, [self.value(f) for f in fields], self.value(items), self.value(grain),
                                 self.graph_op)
        self._emit(launch)

    # ------------------------------------------------------- schedule values
    def _emit(self, op: Operation) -> SSAValue | None:
        self.block.add_op(op)
        return op.results[0] if op.results else None

    def value(self, x) -> SSAValue:
        """The schedule's value of a field: a Loc's buffer or a size expression's index."""
        if isinstance(x, CheckCode):
            return self.values[CheckCode, x]
        x = _folded(x)
        key = (Loc, x.kind, x.index, x.offset) if isinstance(x, Loc) else (type(x), x)
        if key not in self.values:
            self.values[key] = self._compute(x)
        return self.values[key]

    def _compute(self, x) -> SSAValue:
        if x == NULL_BUFFER:
            return self._emit(kernel.NullOp())
        if isinstance(x, Loc):
            base = self.storage[x.kind, x.index]
            return self._emit(kernel.SubviewOp(base, x.offset)) if x.offset else base
        if isinstance(x, int):
            return self._emit(arith.ConstantOp(IntegerAttr(x, IndexType())))
        if isinstance(x, SymDim):
            v = self.value(("dim", x.syms[0])) if x.coef == 1 else self.value(x.coef)
            for s in x.syms[x.coef == 1:]:
                v = self._emit(arith.MuliOp(v, self.value(("dim", s))))
            return v
        if x[0] == "dim":
            return self._emit(kernel.DimOp(x[1]))
        if x[0] == "ceildiv":
            # a divisor that may be 0 (the size of an empty tensor) counts as 1
            b = x[2] if isinstance(x[2], int) and x[2] > 0 else ("max", x[2], 1)
            return self._emit(arith.CeilDivSIOp(self.value(x[1]), self.value(b)))
        return self._emit(_INDEX_OPS[x[0]](self.value(x[1]), self.value(x[2])))

    # ----------------------------------------------------------------- driver
    def lower(self, patterns: Sequence[type[GraphToKernelPattern]]) -> ModuleOp:
        """The kernel module: the weights, the kernels and the schedule launching them. The first of
        `patterns` that matches a graph op lowers it; the ops are lowered in program order."""
        first_output = self._bind_io()
        applier = GreedyRewritePatternApplier([*(p(self) for p in patterns), RefuseUnsupported()], dce_enabled=False)
        PatternRewriteWalker(applier, apply_recursively=False).rewrite_region(self.fn.body)
        # outputs that are views, inputs, constants or repeated get copied into their slot
        self.graph_op = "output_copy"
        for j, v in enumerate(self.fn.body.block.last_op.operands):
            slot = Loc("io", first_output + j)
            if self.loc(v) != slot:
                self.emit_elementwise("copy", [v], slot, self.shapes[v])
        schedule = kernel.ScheduleOp(SCHEDULE, self.symbols, Region(self.block), self.op_summary, self.checked)
        cached = [self.kernel_cache.declaration(name) for name in self.cached_kernels()]
        for fn in self.kernels.values():  # the launch table names them: the object exports them
            fn.sym_visibility = StringAttr("public")
        kernels = list(self.kernels.values())
        self.module.body.block.add_ops([*kernels, *c_declarations(kernels), *cached, schedule])
        used = {op.weight_name.data for op in self.block.ops if isinstance(op, kernel.WeightOp)}
        self.table.prune(used)
        return self.module

    def _bind_io(self) -> int:
        """The schedule's io slots: inputs, outputs, the status word; returns the first output's slot."""
        fn = self.fn
        in_attrs = fn.arg_attrs.data if fn.arg_attrs else [None] * len(fn.args)
        out_attrs = fn.res_attrs.data if fn.res_attrs else [None] * len(fn.function_type.outputs)
        inputs = [TensorInfo(_attr_name(a, f"input_{i}"), self.shapes[v], graph.dtype_of(v.type))
                  for i, (v, a) in enumerate(zip(fn.args, in_attrs))]
        ret = fn.body.block.last_op
        assert isinstance(ret, func.ReturnOp)
        outputs = [TensorInfo(_attr_name(a, f"output_{j}"), self.shapes[v], graph.dtype_of(v.type))
                   for j, (v, a) in enumerate(zip(ret.arguments, out_attrs))]
        for role, infos in zip(_IO_ROLES, (inputs, outputs)):
            for t in infos:
                self._io(role, t)
        self.status_slot = len(inputs) + len(outputs)
        self._io(kernel.IORole.STATUS, TensorInfo("status", (), STATUS_DTYPE))
        for i, v in enumerate(fn.args):
            self.locs[v] = Loc("io", i)
            self.bind_dims(self.value_dims[i], Loc("io", i), inputs[i].dtype)
        # a graph output gets its io slot, unless it is an input or returned twice
        self.out_slot: dict[SSAValue, Loc] = {}
        for j, v in enumerate(ret.arguments):
            if v not in self.out_slot and v not in self.locs:
                self.out_slot[v] = Loc("io", len(inputs) + j)
        return len(inputs)

    @contextmanager
    def converting(self, op: Operation) -> Iterator[None]:
        """While a pattern emits op's launches: they name it (`graph_op`, counted in `op_summary`), and
        the shape assumptions made name its node."""
        name = op.name.split(".", 1)[1]
        self.op_summary[name] = self.op_summary.get(name, 0) + 1
        self.graph_op = f"{name}#{self.op_summary[name]}"
        with at_node(graph.node_label(op)):
            yield

    def replace(self, op: Operation, rewriter: PatternRewriter) -> None:
        """Replace a lowered op by its results' materializations (operand-less
        `builtin.unrealized_conversion_cast`s: the values the ops after it read), the conversion
        state re-keyed to them."""
        casts = [UnrealizedConversionCastOp.get([], [r.type]) for r in op.results]
        for old, cast in zip(op.results, casts):
            new = cast.results[0]
            new.name_hint = old.name_hint
            for table in (self.shapes, self.locs, self.strides, self.out_slot, self.half_values):
                if old in table:
                    table[new] = table.pop(old)
            if old in self.in_place:
                self.in_place.remove(old)
                self.in_place.add(new)
        rewriter.replace(op, casts, [c.results[0] for c in casts])

    def _io(self, role: kernel.IORole, t: TensorInfo) -> None:
        slot = sum(1 for kind, _ in self.storage if kind == "io")
        self.storage["io", slot] = self._emit(kernel.IOOp(role, slot, t.name, [str(d) for d in t.shape], t.dtype))

    def bind_dims(self, dims: list[str], loc: Loc, dtype: DType) -> None:
        """Bind `dims` to the elements of the integer tensor at `loc`, as the launches so far leave it."""
        if len(self.loops) > 1 or self.body_has_loops:
            raise UnsupportedOperatorError(f"sizes computed inside a loop run at run time ({dims}) are supported "
                                           f"only in the body of an outermost loop holding no loop or If")
        if self.loops:
            self.body_dims.update(dims)
        for index, dim in enumerate(dims):
            self._emit(kernel.BindDimOp(dim, self.value(loc), index, dtype))

    def begin_loop(self, loop: Operation, counter: Loc, flag: Loc, init: Loc, trips: Dim) -> None:
        """The launches until the matching `end_loop` are the body of `loop`, run repeatedly
        (kernel.loop_begin); loops begun before it ends are inside its body."""
        if self.loops and self.body_dims:
            raise UnsupportedOperatorError(f"a loop or If in a loop body that computes sizes "
                                           f"({sorted(self.body_dims)}) is not supported")
        self.body_has_loops = bool(self.loops)
        self.loops.append(loop)
        self._emit(kernel.LoopBeginOp(self.value(counter), self.value(flag), self.value(init), self.value(trips)))

    def loop_copy(self, kind: kernel.LoopCopy, source: Loc, dest: Loc, nbytes: Dim) -> None:
        if expr_symbols(nbytes) & self.body_dims:
            raise UnsupportedOperatorError(f"a loop's carried value or scan output sized by dims its body computes "
                                           f"({sorted(expr_symbols(nbytes) & self.body_dims)}) is not supported")
        self._emit(kernel.LoopCopyOp(kind, self.value(source), self.value(dest), self.value(nbytes)))

    def end_loop(self, cond: Loc) -> None:
        self._emit(kernel.LoopEndOp(self.value(cond)))
        self.loops.pop()
        if not self.loops:
            self.body_dims, self.body_has_loops = set(), False

    def assume(self, assumptions: list[Assumption]) -> None:
        """State the lowering's shape assumptions in the schedule (checked before any launch runs)."""
        for a in assumptions:
            self._emit(kernel.AssumeOp(self.value(a.lhs), _RELATIONS[a.relation], self.value(a.rhs), a.what, a.node))

    # ------------------------------------------------------------ emitters
    def emit_elementwise(self, op: str, operands: list[SSAValue], out: Loc, out_shape: Shape,
                         out_dtype: DType | None = None, params: tuple = (), activation: str | None = None,
                         node: str | None = None) -> None:
        """out = op(operands...) with broadcasting, then the unary `activation` if given;
        out_dtype defaults to the first operand's; `node` names the op in run-time errors."""
        in_dtypes = tuple(self.dtype(v) for v in operands)
        strides = broadcast_strides(out_shape, [self.shapes[v] for v in operands])
        self.emit_strided(op, [self.loc(v) for v in operands], in_dtypes, strides, out, out_shape,
                          out_dtype or in_dtypes[0], params, activation, node)

    def emit_strided(self, op: str, ins: list[Loc], in_dtypes: tuple[DType, ...], strides: list[list[Dim]],
                     out: Loc, out_shape: Shape, out_dtype: DType, params: tuple = (),
                     activation: str | None = None, node: str | None = None) -> None:
        """out[i...] = op(in_k[sum(i_d * strides[d][k])]...) over the contiguous output: the general
        form (broadcasts have stride 0, a permuted copy has the input's strides in output order).
        An integer Div / Mod checks its divisor at run time (InputError naming `node`, as
        onnxruntime fails on a zero divisor)."""
        dims = _merge_dims(out_shape, strides, len(ins))
        inner, inner_strides = dims[-1][0], dims[-1][1]
        outer = dims[:-1]
        modes = tuple("v" if s == 1 else "s" if s == 0 else "g" for s in inner_strides)
        width = 1 if "g" in modes else self.target.vector_width
        spec = ElementwiseSpec(op, len(outer), modes, width, in_dtypes, out_dtype, tuple(params), activation)
        name = self.kernel(spec.name, lambda: elementwise_kernel(spec))
        fields: list = [out, *ins, inner, ("ceildiv", inner, INNER_CHUNK), *inner_strides]
        for size, dim_strides in outer:
            fields += [size, *dim_strides]
        if spec.checks_divisor:
            what = "division" if op == "div" else "modulo"
            fields += self.check(f"{node or op}: integer {what} by zero (an element of the divisor is 0)")
        rows = numel(tuple(size for size, _ in outer))
        self.call(name, fields, ("mul", rows, ("ceildiv", inner, INNER_CHUNK)),
                  work_per_item=("mul", ("ceildiv", inner, ("ceildiv", inner, INNER_CHUNK)), 4))

    def emit_gemm(self, *, a: SSAValue, a_strides: tuple[Dim, Dim], m: Dim, k: Dim, n: Dim, out: Loc,
                  b_const: np.ndarray | None = None, b_value: SSAValue | None = None,
                  b_strides: tuple = (0, 0, 0), b_batch: Dim = 1, batch: Dim = 1, a_bs: Dim = 0,
                  bias: np.ndarray | None = None, activation: str = "none",
                  a_loc: Loc | None = None, b_packed: Loc | None = None, row_bias: Loc | None = None,
                  groups: int = 1, a_gs: Dim = 0, c_gs: Dim = 0, c_bs: Dim | None = None,
                  residual: Loc | None = None, conv_a: dict | None = None, c_rs: Dim | None = None,
                  dtype: DType = DType.FLOAT32) -> None:
        """C[batch] = op(A) @ op(B) (+ bias row) (+ residual). B is a constant [b_batch, K, N] (packed now),
        a value read through (row, col, batch) strides and packed at run time, or already
        packed (`b_packed`, one packed matrix per batch). With `groups`, batch = images x groups
        and A / C advance by a_gs / c_gs per group (grouped convolution); `row_bias` (float32
        storage: weights or a run-time vector) adds one value per output row (per group: m values).
        `residual` is a tensor laid out like C, added before the activation; it may be `out` itself only
        when K is one slice (C holds partial sums between K slices): `result_and_residual_locs`. With `conv_a`
        (an NHWC convolution's CONV_A_FIELDS: conv_c, its channels, and its geometry; only in a model with
        convolutions), A at `a_loc` is that convolution's input and the GEMM reads its implicit im2col.
        `c_rs` is C's row stride (default n: contiguous; a Concat slice is wider), used for the residual too.
        `dtype` float64: A, B, C, the biases and the residual are float64, computed in double precision
        (F64 panels, half as many lanes per vector)."""
        assert conv_a is None or self.conv_gemms, "an implicit im2col outside a model's convolutions"
        batches = dim_mul(batch, groups)  # GEMMs in this call: images x groups
        macs = dim_mul(batches, dim_mul(m, dim_mul(n, k)))
        a_half = self.half_values.get(a) if isinstance(a, SSAValue) else None  # (a Loc: a batch-expanded copy)
        if dtype is DType.FLOAT64:
            panel = PanelType.F64
        else:
            panel = panel_type(self.target, a_half, b_const) if b_const is not None else PanelType.F32
        spec = GemmSpec.for_target(self.target.vector_width * 4 // panel.compute_dtype.itemsize,
                                   self.target.num_vector_registers,
                                   bias is not None or row_bias is not None, activation,
                                   unit_a_cs=a_strides[1] == 1, bias_per_row=row_bias is not None,
                                   residual=residual is not None, conv_a=self.conv_gemms,
                                   small=isinstance(macs, int) and macs <= SMALL_GEMM_MACS, panel=panel)
        nr = spec.nr
        npanels = ("ceildiv", n, nr)
        panel_rows = k if panel.k_align == 1 else ("mul", ("ceildiv", k, panel.k_align), panel.k_align // panel.group)
        panel_elems = ("mul", panel_rows, ("mul", npanels, nr))  # in the panel's units
        b_bs = 0 if b_batch == 1 else panel_elems
        if b_packed is not None:
            b_loc = b_packed
        elif b_const is not None:
            b_loc = self.add_weight("packed_b", pack_b(b_const.astype(panel.compute_dtype.numpy), nr, panel))
        else:
            b_loc = self.new_buffer(("mul", b_batch, ("mul", panel_elems, panel.unit_bytes)))
            pk = self.kernel(pack_b_kernel_name(nr, dtype), lambda: pack_b_kernel(nr, dtype))
            pf = {"b": self.loc(b_value), "bp": b_loc, "k": k, "n": n, "b_rs": b_strides[0],
                  "b_cs": b_strides[1], "b_bs": b_strides[2], "bp_bs": panel_elems, "npanels": npanels}
            self.call(pk, [pf[f] for f in PACK_FIELDS], ("mul", b_batch, npanels))
        bias_loc = (self.add_weight("bias", pad_bias(bias, nr, dtype)) if bias is not None
                    else row_bias if row_bias is not None else NULL_BUFFER)
        gk = self.kernel(spec.name, lambda: gemm_kernel(spec))
        # row blocks: at most MC rows each, and when there are several, a multiple of 4 of them, so
        # 2 or 4 threads get equal numbers of blocks
        mblocks = _balanced_blocks(("ceildiv", m, spec.mc))
        # panel blocks: at most nc_panels panels each, balanced the same way; with fewer than 4 row
        # blocks in all, enough panel blocks for 4 work items (at most one per panel), so a GEMM of
        # few rows still keeps every thread busy
        row_blocks = ("mul", batches, mblocks)
        fewest = ("max", ("ceildiv", npanels, spec.nc_panels), ("ceildiv", ("min", npanels, 4), row_blocks))
        ncp = ("ceildiv", npanels, _balanced_blocks(fewest))
        nblocks = ("ceildiv", npanels, ncp)
        gf = {"a": a_loc if a_loc is not None else self.loc(a), "b": b_loc, "c": out, "bias": bias_loc,
              "m": m, "n": n, "k": k, "a_rs": a_strides[0], "a_cs": a_strides[1], "a_bs": a_bs,
              "b_bs": b_bs, "c_bs": dim_mul(m, n) if c_bs is None else c_bs, "mblocks": mblocks,
              "nblocks": nblocks, "ncp": ncp, "npanels": npanels, "groups": groups, "a_gs": a_gs, "c_gs": c_gs,
              "residual": residual if residual is not None else NULL_BUFFER, "c_rs": n if c_rs is None else c_rs,
              **(conv_a or dict.fromkeys(CONV_A_FIELDS, 0))}
        rows_per_item = m if isinstance(m, int) and m < spec.mc else spec.mc
        self.call(gk, [gf[f] for f in spec.signature.fields],
                  ("mul", row_blocks, nblocks),
                  work_per_item=("mul", rows_per_item * nr * spec.nc_panels, k))


@dataclass
class Schedule:
    """The launches of a kernel module as the entry point runs them (read_kernel_module)."""

    steps: list[_Call]
    buffers: list[Buffer]
    symbols: list[str]
    status_slot: int  # the io slot of the check status word, after the inputs and outputs
    weight_bytes: dict[int, int]  # blob offset of each weight -> its size in bytes
    value_dims: list[ValueDim] = field(default_factory=list)
    computed_dims: list[ComputedDim] = field(default_factory=list)
    loops: list[Loop] = field(default_factory=list)


def _balanced_blocks(fewest):
    """A block count (size expression) of at least `fewest`: 0 and 1 stay, more is rounded up to a
    multiple of 4 (at most 4 * fewest - 3), so 2 or 4 threads get equal numbers of blocks."""
    return ("min", ("mul", ("ceildiv", fewest, 4), 4), ("add", ("mul", fewest, 4), ("mul", ("min", fewest, 1), -3)))


def _attr_name(attrs, default: str) -> str:
    if attrs is not None and graph.ARG_NAME in attrs.data:
        return attrs.data[graph.ARG_NAME].data
    return default


def broadcast_strides(out: Shape, ins: list[Shape]) -> list[list[Dim]]:
    """Per output dim, each input's element stride (0 where the input broadcasts)."""
    rank = len(out)
    dims: list[list[Dim]] = []
    for d in range(rank):
        strides = []
        for s in ins:
            off = d - (rank - len(s))
            if off < 0 or s[off] == 1 and out[d] != 1:
                strides.append(0)
            else:
                strides.append(numel(s[off + 1:]))
        dims.append(strides)
    return dims


def _merge_dims(out: Shape, strides: list[list[Dim]], n_in: int) -> list[tuple[Dim, list[Dim]]]:
    """Drop size-1 dims and merge adjacent dims whose strides allow one loop."""
    merged: list[tuple[Dim, list[Dim]]] = []
    for size, dim_strides in zip(out, strides):
        if size == 1:
            continue
        if merged:
            psize, pstrides = merged[-1]
            # outer dim p merges into this one when for every input stride_p == size*stride (or both 0)
            if all((ps == 0 and s == 0) or (ps != 0 and s != 0 and ps == dim_mul(size, s))
                   for ps, s in zip(pstrides, dim_strides)):
                merged[-1] = (dim_mul(psize, size), dim_strides)
                continue
        merged.append((size, list(dim_strides)))
    if not merged:
        merged = [(1, [0] * n_in)]
    return merged


def lower_graph(fn: func.FuncOp, weights: dict[str, np.ndarray], target: CPUTarget,
                patterns: Sequence[type[GraphToKernelPattern]], checked: bool = False,
                kernel_cache: KernelCache | None = None) -> LoweredModel:
    """checked: a checked build (every load and store bounds-checked, checked.py). kernel_cache:
    kernels it supplies are declared, not generated (`LoweredModel.cached`: those it holds)."""
    module = lower_to_kernel(fn, weights, target, patterns, checked, kernel_cache)
    kernel.schedule_of(module).verify()  # launches match their kernels' signatures
    PlanMemory().apply(Context(), module)
    lowered = read_kernel_module(module)
    lowered.cached = dict(kernel_cache.found) if kernel_cache is not None else {}
    lowered.kernel_cache = kernel_cache
    return lowered


def lower_to_kernel(fn: func.FuncOp, weights: Mapping[str, np.ndarray], target: CPUTarget,
                    patterns: Sequence[type[GraphToKernelPattern]], checked: bool = False,
                    kernel_cache: KernelCache | None = None) -> ModuleOp:
    """The kernel module of a graph function (its memory not planned yet; the function's ops are
    replaced as they are lowered); kernels `kernel_cache` holds are only declared."""
    with checked_kernels(checked), collect() as assumptions:
        lowering = GraphLowering(fn, weights, target, checked, kernel_cache)
        module = lowering.lower(patterns)
    lowering.assume(assumptions)
    return module


def read_kernel_module(module: ModuleOp, weights: Mapping[str, np.ndarray] | None = None) -> LoweredModel:
    """The LoweredModel of a planned kernel module, whose kernels it takes over. `weights` (by default
    the module's WeightTable) must hold every weight the schedule names."""
    reader = _ScheduleReader(module)
    table = WeightTable.of(module) if weights is None else weights
    missing = [name for name, _ in reader.weights if name not in table]
    if missing:
        raise InvalidModelError(f"weights {missing[:3]} are not available: the kernel module's WeightTable "
                                f"lacks them (lower an .onnx input, not bare .mlir)")
    arrays = [(name, np.ascontiguousarray(table[name])) for name, _ in reader.weights]
    for (name, nbytes), (_, arr) in zip(reader.weights, arrays):
        if arr.nbytes != nbytes:
            raise InvalidModelError(f"weight '{name}' has {arr.nbytes} bytes, the schedule says {nbytes}")
    lowered = LoweredModel(reader.code_module(), reader.inputs, reader.outputs, reader.schedule.symbols,
                           reader.schedule.buffers, arrays, reader.kernel_count, reader.op_summary,
                           reader.checks, reader.step_ops, reader.checked, assumptions=reader.assumptions,
                           generated=reader.generated, steps=reader.schedule.steps,
                           value_dims=reader.schedule.value_dims, computed_dims=reader.schedule.computed_dims,
                           loops=reader.schedule.loops)
    if reader.checked:
        lowered.step_fields = [[reader.describe(f) if isinstance(f, Loc) else None for f in c.fields]
                               for c in reader.schedule.steps]
    return lowered


def lower_schedule(module: ModuleOp) -> None:
    """Replace a planned kernel module by its kernels (in a compile, the schedule's launches become
    the artifact's launch table; no weight values are needed)."""
    code = _ScheduleReader(module).code_module()
    for op in list(code.body.block.ops):
        op.detach()
        module.body.block.add_op(op)


class _ScheduleReader:
    """A planned kernel module's schedule as Python objects: each buffer a Loc, each size an
    expression over the dims (int, SymDim, or ("mul" | "add" | "min" | "max" | "ceildiv", a, b))."""

    def __init__(self, module: ModuleOp):
        self.module = module
        schedule = kernel.schedule_of(module)
        if schedule is None:
            raise InvalidModelError("the module has no kernel.schedule: it is not at the kernel level")
        self.op = schedule
        self.checked = schedule.checked is not None
        self.op_summary = {k: v.value.data for k, v in schedule.op_summary.data.items()} if schedule.op_summary else {}
        self.inputs: list[TensorInfo] = []
        self.outputs: list[TensorInfo] = []
        self.weights: list[tuple[str, int]] = []  # (name, size in bytes) in blob order
        self.weight_names: dict[int, str] = {}  # blob offset -> name
        self._weight_end = 0
        self.checks: list[str] = []
        self.step_ops: list[str] = []
        self.assumptions: list[Assumption] = []
        self.locs: dict[SSAValue, Loc] = {}
        self.exprs: dict[SSAValue, object] = {}
        self.schedule = Schedule([], [], schedule.dim_names(), 0, {})
        # the loops being read, outermost first: Loop's fields so far
        self.loops: list[dict] = []
        # kernels the module defines, and those it declares (their objects came from the kernel cache)
        kernels = [op for op in module.ops if isinstance(op, func.FuncOp)]
        self.kernel_count = len(kernels)
        self.generated = [op.sym_name.data for op in kernels if not op.is_declaration]
        for op in schedule.body.block.ops:
            self._read(op)

    def _read(self, op: Operation) -> None:
        if isinstance(op, kernel.IOOp):
            slot = op.slot.value.data
            self.locs[op.result] = Loc("io", slot)
            info = TensorInfo(op.tensor_name.data, tuple(parse_dim(d.data) for d in op.shape), DType(op.dtype.data))
            if op.role.data == kernel.IORole.INPUT:
                self.inputs.append(info)
            elif op.role.data == kernel.IORole.OUTPUT:
                self.outputs.append(info)
            else:
                self.schedule.status_slot = slot
        elif isinstance(op, kernel.WeightOp):
            offset = -(-self._weight_end // WEIGHT_ALIGN) * WEIGHT_ALIGN
            self._weight_end = offset + op.nbytes.value.data
            self.schedule.weight_bytes[offset] = op.nbytes.value.data
            self.weight_names[offset] = op.weight_name.data
            self.weights.append((op.weight_name.data, op.nbytes.value.data))
            self.locs[op.result] = Loc("weight", offset)
        elif isinstance(op, kernel.AllocOp):
            if op.live is None:
                raise InvalidModelError("the kernel module's memory is not planned: run plan-memory first")
            self.locs[op.result] = Loc("arena", len(self.schedule.buffers))
            self.schedule.buffers.append(Buffer(self.expr(op.nbytes), *op.lifetime()))
        elif isinstance(op, kernel.SubviewOp):
            base = self.locs[op.source]
            self.locs[op.result] = Loc(base.kind, base.index, base.offset + op.offset.value.data)
        elif isinstance(op, kernel.BindDimOp):
            loc, index, step = self.locs[op.source], op.index.value.data, len(self.schedule.steps)
            if loc.kind == "io" and loc.offset == 0 and step == 0 and op.source.owner.role.data == kernel.IORole.INPUT:
                self.schedule.value_dims.append(ValueDim(op.dim_name.data, loc.index, index))
            else:
                offset = loc.offset + index * DType(op.dtype.data).itemsize
                self.schedule.computed_dims.append(
                    ComputedDim(op.dim_name.data, loc.kind, loc.index, offset, op.dtype.data, step))
        elif isinstance(op, kernel.CheckOp):
            self.checks.append(op.message.data)
            self.exprs[op.result] = len(self.checks)
        elif isinstance(op, kernel.AssumeOp):
            relation = next(k for k, v in _RELATIONS.items() if v == op.relation.data)
            self.assumptions.append(Assumption(relation, self.expr(op.lhs), self.expr(op.rhs), op.what.data,
                                               op.node.data))
        elif isinstance(op, kernel.LoopBeginOp):
            self.loops.append({"begin": len(self.schedule.steps), "counter": self.place(op.counter),
                               "flag": self.place(op.flag), "init": self.place(op.init), "trips": self.expr(op.trips),
                               "copies": [], "inner": []})
        elif isinstance(op, kernel.LoopCopyOp):
            self.loops[-1]["copies"].append(Copy(op.kind.data.value, self.place(op.source), self.place(op.dest),
                                            self.expr(op.nbytes)))
        elif isinstance(op, kernel.LoopEndOp):
            loop = Loop(end=len(self.schedule.steps), cond=self.place(op.cond), **self.loops.pop())
            (self.loops[-1]["inner"] if self.loops else self.schedule.loops).append(loop)
        elif isinstance(op, kernel.LaunchOp):
            fields = [self.locs[f] if f in self.locs else self.expr(f) for f in op.fields]
            self.schedule.steps.append(_Call(op.callee.root_reference.data, fields, self.expr(op.items),
                                             self.expr(op.grain)))
            self.step_ops.append(op.graph_op.data)

    def place(self, v: SSAValue) -> Place | None:
        """Where a buffer value lies (None: kernel.null)."""
        loc = self.locs.get(v)
        return None if loc is None else Place(loc.kind, loc.index, loc.offset)

    def expr(self, v: SSAValue):
        """The size expression of an index value."""
        if v not in self.exprs:
            self.exprs[v] = self._expr(v.owner)
        return self.exprs[v]

    def _expr(self, op: Operation):
        if isinstance(op, arith.ConstantOp):
            return op.value.value.data
        if isinstance(op, kernel.NullOp):
            return 0  # the launch table's field value: a null pointer
        if isinstance(op, kernel.DimOp):
            return SymDim.of(op.dim_name.data)
        if isinstance(op, arith.CeilDivSIOp):
            # ceildiv by max(b, 1) is the entry's ceildiv by b (which divides by 1 for b = 0)
            div = op.rhs.owner
            guarded = (isinstance(div, arith.MaxSIOp) and isinstance(div.rhs.owner, arith.ConstantOp)
                       and div.rhs.owner.value.value.data == 1)
            return fold_size("ceildiv", self.expr(op.lhs), self.expr(div.lhs if guarded else op.rhs))
        for kind, cls in _INDEX_OPS.items():
            if isinstance(op, cls):
                return fold_size(kind, self.expr(op.lhs), self.expr(op.rhs))
        raise InvalidModelError(f"{op.name} is not a size computation the kernel level supports")

    def code_module(self) -> ModuleOp:
        """The kernels (taken out of the module) and the functions they call."""
        kernels = [op for op in self.module.ops if isinstance(op, func.FuncOp)]
        for op in kernels:
            op.detach()
        self.op.detach()
        return ModuleOp([*kernels, *([check_declaration()] if self.checked else [])])

    def describe(self, loc: Loc) -> str:
        """The buffer a Loc points into, for checked builds' violation messages."""
        if loc.kind == "io":
            what = (f"input '{self.inputs[loc.index].name}'" if loc.index < len(self.inputs) else
                    f"output '{self.outputs[loc.index - len(self.inputs)].name}'"
                    if loc.index < self.schedule.status_slot else "the run-time check status word")
        elif loc.kind == "weight":
            what = f"weight '{self.weight_names[loc.index]}'"
        else:
            first = self.schedule.buffers[loc.index].first
            what = f"intermediate buffer {loc.index} (written first by {self.step_ops[first]})"
        return what + (f" at byte {loc.offset}" if loc.offset else "")


def _folded(x):
    """A size expression with its constant arithmetic computed (fold_size, innermost first)."""
    if isinstance(x, tuple) and x[0] != "dim":
        return fold_size(x[0], _folded(x[1]), _folded(x[2]))
    return x
