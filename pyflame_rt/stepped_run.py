"""A run of a model some of whose dims are bound from tensors it computes (value_dims.ComputedDim),
or that runs loops (loops.py: a loop body's launches are a step of their own, which the runtime runs
once per iteration, pfrt_execute_loop).

The launch table runs in steps, split where such dims are bound. Before a step, the arena buffers
whose sizes the dims bound so far give are placed (memory_plan.plan) in an arena of their own
from the memory pool, and the outputs those dims size are allocated; a later step's buffers are
neither placed nor touched. The table is resolved with the buffers' absolute addresses (the
runtime's arena base is NULL). After a step, the dims bound before the next one are read from
the tensors the step computed, checked (value_dims.check_value), and the shape assumptions that
now have every dim checked, all before the next step's native code runs. The run's deadline,
cancellation and profile span every step; the arenas go back to the pool when the run ends.
"""
from __future__ import annotations

from math import prod
from typing import TYPE_CHECKING, Callable, Iterator, NamedTuple

import numpy as np

from pyflame_rt.dialects.symbolic import bind_sums, evaluate, evaluate_shape
from pyflame_rt.errors import BackendError, InputError, InvalidModelError, ShapeMismatchError
from pyflame_rt.loops import COPY_KINDS, Loop, Place
from pyflame_rt.memory import global_pool
from pyflame_rt.profiling import Profiler
from pyflame_rt.runtime import Run, ffi, lib, now_ns
from pyflame_rt.targets.cpu.memory_plan import plan
from pyflame_rt.value_dims import ComputedDim, check_value, expr_symbols

if TYPE_CHECKING:
    from pyflame_rt.executable import Executable

# the size a buffer or output not allocated yet shows the resolution: no launch of the step touches it
_NOT_YET = 1 << 62
_INT64_LIMIT = 1 << 63


class _Step(NamedTuple):
    """What running launches of one step takes: the run, its resolved table and io, the limits."""

    run: Run
    launches: np.ndarray
    fields: object  # the resolved fields as the runtime's array
    io: object
    timeout_ms: int
    status: np.ndarray


class SteppedRun:
    def __init__(self, exe: "Executable", arrays: list[np.ndarray]):
        self.exe = exe
        self.bindings = exe.bind(arrays)
        self.checked_assumptions: set[int] = set()
        self.check_assumptions()
        self.arrays = arrays
        self.addresses: dict[int, int] = {}  # arena buffer -> its address
        self.arenas: list[int] = []
        self.outs: list[np.ndarray | None] = [None] * len(exe.outputs)

    def run(self, timeout_ms: int, profiler: Profiler | None, status: np.ndarray, status_ptr) -> list[np.ndarray]:
        exe = self.exe
        pool = global_pool()
        try:
            with Run(exe.pool, timeout_ms, profiler is not None) as run:
                start_ns = now_ns() if profiler is not None else 0
                def new_step() -> _Step:
                    """The run's state for launches after the dims bound so far: buffers placed, table resolved."""
                    self.place(pool)
                    io = ffi.new("void*[]", [*map(ffi.from_buffer, self.arrays),
                                             *(ffi.NULL if o is None else ffi.from_buffer(o) for o in self.outs),
                                             status_ptr])
                    launches, fields = self.resolve()
                    return _Step(run, launches, ffi.from_buffer("pfrt_field[]", fields), io, timeout_ms, status)

                for first, last, loop in self.segments():
                    step = new_step()
                    if loop is None:
                        self.execute(step, first, last)
                    elif self.body_dims(loop):
                        self.iterate(loop, step, new_step, pool)
                    else:
                        self.run_loop(step, loop)
                    self.bind([c for c in exe.computed_dims if self.binds_after(c, last, loop)], step.io)
                if profiler is not None:
                    profiler.add_run(exe.kernel_name, exe.step_ops, run.events(), self.bindings, start_ns, now_ns())
        finally:
            for address in self.arenas:
                pool.deallocate(address)
        return self.outs  # type: ignore[return-value]  # every output is allocated by the last step

    def segments(self) -> Iterator[tuple[int, int, Loop | None]]:
        """The table in run order as (first, last launch, the loop they are the body of or None): split
        where dims are bound from computed values and around each loop."""
        exe = self.exe
        cuts = sorted({c.step for c in exe.computed_dims})
        first = 0
        for loop in [*exe.loops, None]:
            stop = len(exe.table) if loop is None else loop.begin
            for last in [c for c in cuts if first < c < stop] + [stop]:
                if last > first or loop is None:
                    yield first, last, None
                first = last
            if loop is not None:
                yield loop.begin, loop.end, loop
                first = loop.end

    def binds_after(self, c: ComputedDim, last: int, loop: Loop | None) -> bool:
        """Whether dim c is bound after the segment that ends at `last` (the body of `loop`, or
        none). A loop with an empty body (an If branch yielding an outer value) starts where the
        segment before it ends, so two segments end at that step: c is bound once, after the
        first, unless it is a loop's count (read from its counter), bound after the loop."""
        counter = (c.kind, c.buffer) in {(lp.counter.kind, lp.counter.index) for lp in self.exe.loops}
        return c.step == last and c.dim not in self.bindings and (loop is not None or not counter)

    def execute(self, step: "_Step", first: int, last: int) -> None:
        """Run the launches [first, last)."""
        exe = self.exe
        if lib.pfrt_execute(step.run.handle, ffi.from_buffer("pfrt_launch[]", step.launches[first:last]),
                            last - first, step.fields, step.io, exe.weights_ptr, ffi.NULL, exe.checked):
            raise BackendError("cannot allocate a kernel context for the run")
        self.finish(step, first)

    def finish(self, step: "_Step", first: int) -> None:
        """Raise for launches from `first` on stopped (deadline, cancellation, bounds) or failing a check."""
        exe = self.exe
        exe.check_run(step.run, step.timeout_ms, first)
        if step.status[0]:
            raise InputError(exe.checks[int(step.status[0]) - 1])

    def run_loop(self, step: "_Step", loop: Loop) -> None:
        """Run a loop and the loops within it (loops.py) in the runtime (pfrt_execute_loop): every
        place is checked against its buffer here, once (a scan output for all the iterations),
        before its native code runs; the run's deadline, cancellation and check status end it
        between iterations."""
        exe = self.exe
        keep: list = []  # the runtime's structures, alive until the loop ends
        if lib.pfrt_execute_loop(step.run.handle, ffi.from_buffer("pfrt_launch[]", step.launches), step.fields,
                                 step.io, exe.weights_ptr, ffi.NULL, exe.checked, self.runtime_loop(loop, step.io, keep),
                                 ffi.cast("int64_t *", step.status.ctypes.data)):
            raise BackendError("cannot allocate a kernel context for the run")
        self.finish(step, 0)  # the runtime numbers a loop's launches by their index in the table

    def body_dims(self, loop: Loop) -> list[ComputedDim]:
        """The dims bound inside the loop's body (only an outermost loop without inner loops has any)."""
        return [c for c in self.exe.computed_dims if loop.begin < c.step < loop.end]

    def iterate(self, loop: Loop, step: "_Step", new_step: Callable[[], "_Step"], pool) -> None:
        """Run a loop whose body binds dims here, as pfrt_execute_loop would: in every iteration its
        body in steps split where they are bound (bound anew, checked, their buffers placed in an
        arena of the iteration's and the shape assumptions on them checked again), then the copies;
        the run's deadline, cancellation and check status end it between steps."""
        computed = self.body_dims(loop)
        dims = {c.dim for c in computed}
        if any(expr_symbols(e) & dims for e in [loop.trips, *(c.nbytes for c in loop.copies)]):
            raise InvalidModelError("artifact metadata is invalid: a loop's copy is sized by dims its body binds")
        trips = self.size(loop.trips)
        counter = ffi.cast("int64_t *", self.address(loop.counter, step.io, 8))
        flag = ffi.cast("uint8_t *", self.address(loop.flag, step.io, 1))
        counter[0], flag[0] = 0, 1
        for dest, source, n in self.copies(loop, "enter", step.io, trips):
            ffi.memmove(dest, source, n)
        i, arenas = 0, len(self.arenas)
        go = loop.init is None or ffi.cast("uint8_t *", self.address(loop.init, step.io, 1))[0] != 0
        while go and i < trips:
            counter[0] = i
            first = loop.begin
            for last in sorted({c.step for c in computed}) + [loop.end]:
                step = new_step()
                self.execute(step, first, last)
                self.bind([c for c in computed if c.step == last], step.io)
                first = last
            go = ffi.cast("uint8_t *", self.address(loop.cond, step.io, 1))[0] != 0
            # the body's buffers are this iteration's: its copies are resolved (and checked) now
            for dest, source, n in self.copies(loop, "scan", step.io, trips):
                ffi.memmove(dest + i * n, source, n)
            nexts = [(dest, ffi.buffer(source, n)[:]) for dest, source, n in self.copies(loop, "next", step.io, trips)]
            for dest, data in nexts:  # every source read before any destination is written
                ffi.memmove(dest, data, len(data))
            self.forget(dims, arenas, pool)
            i += 1
        counter[0] = i

    def copies(self, loop: Loop, kind: str, io, trips: int) -> list:
        """The loop's copies of `kind` as (destination, source, size), their places checked."""
        out = []
        for c in loop.copies:
            if c.kind == kind:
                n = self.size(c.nbytes)
                dest = self.address(c.dest, io, n * trips if kind == "scan" else n)
                out.append((ffi.cast("char *", dest), ffi.cast("char *", self.address(c.source, io, n)), n))
        return out

    def forget(self, dims: set[str], arenas: int, pool) -> None:
        """Unbind `dims`, free the buffers they size (in the arenas after the first `arenas`) and let
        the shape assumptions on them be checked again."""
        exe = self.exe
        for d in dims:
            self.bindings.pop(d, None)
        sized = {i for i in self.addresses if expr_symbols(exe.buffers[i].nbytes) & dims}
        for i in sized:
            del self.addresses[i]
        self.checked_assumptions -= {k for k, a in enumerate(exe.assumptions) if a.symbols() & dims}
        while len(self.arenas) > arenas:  # only the buffers `dims` size are placed after the loop starts
            pool.deallocate(self.arenas.pop())

    def runtime_loop(self, loop: Loop, io, keep: list):
        """The pfrt_loop of `loop`, its places resolved and checked; what it points to kept in `keep`."""
        trips = self.size(loop.trips)
        copies: dict[str, list] = {kind: [] for kind in COPY_KINDS}
        for c in loop.copies:
            n = self.size(c.nbytes)
            dest = self.address(c.dest, io, n * trips if c.kind == "scan" else n)
            copies[c.kind].append((ffi.cast("void *", dest), ffi.cast("void *", self.address(c.source, io, n)), n))
        enters, scans, nexts = (ffi.new("pfrt_copy[]", copies[kind]) for kind in ("enter", "scan", "next"))
        scratch = ffi.new("char[]", max(1, sum(n for *_, n in copies["next"])))
        inner = ffi.new("pfrt_loop[]", len(loop.inner))
        for k, nested in enumerate(loop.inner):
            inner[k] = self.runtime_loop(nested, io, keep)[0]
        keep += [enters, scans, nexts, scratch, inner]
        return ffi.new("pfrt_loop *", {
            "begin": loop.begin, "end": loop.end, "counter": ffi.cast("int64_t *", self.address(loop.counter, io, 8)),
            "flag": ffi.cast("uint8_t *", self.address(loop.flag, io, 1)),
            "init": ffi.NULL if loop.init is None else ffi.cast("uint8_t *", self.address(loop.init, io, 1)),
            "cond": ffi.cast("uint8_t *", self.address(loop.cond, io, 1)), "trips": trips,
            "enters": enters, "num_enters": len(copies["enter"]), "scans": scans, "num_scans": len(copies["scan"]),
            "nexts": nexts, "num_nexts": len(copies["next"]), "scratch": scratch, "inner": inner,
            "num_inner": len(loop.inner)})

    def size(self, expr) -> int:
        """A size expression's value for the dims bound so far."""
        if isinstance(expr, tuple):
            return evaluate((expr[0], self.size(expr[1]), self.size(expr[2])), self.bindings)
        return evaluate(expr, self.bindings)

    def address(self, place: Place, io, nbytes: int) -> int:
        """The address of a loop's place, checked to hold `nbytes` bytes inside its buffer."""
        exe = self.exe
        if place.kind == "arena":
            base, size = self.addresses.get(place.index, 0), self.size(exe.buffers[place.index].nbytes)
        elif place.kind == "io":
            base, size = int(ffi.cast("uintptr_t", io[place.index])), self.io_nbytes(place.index)
        else:
            base, size = int(ffi.cast("uintptr_t", exe.weights_ptr)) + place.index, exe.weight_bytes - place.index
        if not base or place.offset + nbytes > size:
            raise InvalidModelError("artifact metadata is invalid: a loop copy lies outside its buffer")
        return base + place.offset

    def io_nbytes(self, slot: int) -> int:
        arrays = [*self.arrays, *self.outs]
        if slot == len(arrays):
            return 8  # the status word
        return arrays[slot].nbytes if arrays[slot] is not None else 0

    def ready(self, expr) -> bool:
        return expr_symbols(expr) <= self.bindings.keys()

    def place(self, pool) -> None:
        """An arena for the buffers the bound dims size, and the outputs they size."""
        exe = self.exe
        new = [i for i, b in enumerate(exe.buffers) if i not in self.addresses and self.ready(b.nbytes)]
        offsets, total = plan([exe.buffers[i] for i in new], self.bindings)
        if total >= _INT64_LIMIT:
            raise self.too_large()
        if new:
            base = pool.allocate(total)
            self.arenas.append(base)
            self.addresses.update((i, base + offset) for i, offset in zip(new, offsets))
        for j, o in enumerate(exe.outputs):
            if self.outs[j] is None and all(self.ready(d) for d in o.shape):
                shape = evaluate_shape(o.shape, self.bindings)
                if prod(shape) * o.dtype.itemsize >= _INT64_LIMIT:
                    raise self.too_large()
                try:
                    self.outs[j] = np.empty(shape, o.dtype.numpy)
                except MemoryError:
                    raise BackendError(f"cannot allocate output '{o.name}', shape {list(shape)}") from None

    def resolve(self) -> tuple[np.ndarray, np.ndarray]:
        """The launch table for the dims bound so far (a dim bound later counts 0 in the launches of
        later steps, which this step does not run)."""
        exe = self.exe
        dims = {**{s: 0 for s in exe.symbols}, **self.bindings}
        sizes = [evaluate(b.nbytes, dims) if i in self.addresses else _NOT_YET for i, b in enumerate(exe.buffers)]
        io_sizes = ([a.nbytes for a in self.arrays] + [_NOT_YET if o is None else o.nbytes for o in self.outs] + [8])
        try:
            return exe.table.resolve(dims, [self.addresses.get(i, 0) for i in range(len(exe.buffers))], sizes,
                                     io_sizes)
        except OverflowError:
            raise self.too_large() from None

    def too_large(self) -> ShapeMismatchError:
        return ShapeMismatchError(f"the dims {self.bindings} make a size of the model exceed 2**63 bytes")

    def bind(self, computed: list[ComputedDim], io) -> None:
        values = [(c, self.read(c, io)) for c in computed]
        # the assumptions over the non-negative values first: a validity flag's refusal (0) says what
        # is wrong with the values, before the negative size it explains
        self.bindings.update((c.dim, v) for c, v in values if v >= 0)
        self.check_assumptions()
        for c, value in values:
            check_value(value, c.dim, f"element {c.offset // np.dtype(c.dtype).itemsize} of the tensor computed for '{c.dim}'")
        bind_sums(self.bindings, self.exe.symbols)  # a sum over a computed dim (a sequence a loop appended to)
        self.check_assumptions()

    def read(self, c: ComputedDim, io) -> int:
        """The element of a computed dim, from the tensor the step left in its buffer."""
        itemsize = np.dtype(c.dtype).itemsize
        if c.kind == "arena":
            address, size = self.addresses.get(c.buffer), self.size(self.exe.buffers[c.buffer].nbytes)
        else:
            address, size = int(ffi.cast("uintptr_t", io[c.buffer])), self.io_nbytes(c.buffer)
        if not address or c.offset + itemsize > size:
            raise InvalidModelError(f"artifact metadata is invalid: dim '{c.dim}' is read past its tensor")
        return int(ffi.cast(f"{c.dtype}_t *", address + c.offset)[0])

    def check_assumptions(self) -> None:
        """Check each shape assumption once all its dims are bound."""
        for k, a in enumerate(self.exe.assumptions):
            if k not in self.checked_assumptions and a.symbols() <= self.bindings.keys():
                self.checked_assumptions.add(k)
                failure = a.failure(self.bindings)
                if failure is not None:
                    raise ShapeMismatchError(failure)

