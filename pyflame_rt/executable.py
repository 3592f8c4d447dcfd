"""A loaded compiled model: native kernels, launch table, weights, worker pool and arenas.

`run` validates every feed against the model's symbolic shapes and the
compiler's shape assumptions *before* calling native code (generated code trusts
the shapes it is given), binds the dynamic dims, takes a scratch arena from the global memory pool
(pyflame_rt.memory: concurrent runs never share scratch, the pool's limit bounds them all and
its trim policy gives a burst's memory back) and has the runtime execute the
launch table (launch_table.py, resolved once per input-shape signature) with a fresh
`Run` handle: the runtime checks the run's deadline between kernels and, when
profiling, records every kernel call. A checked build's kernels also receive every
buffer's bounds and report their first out-of-bounds access through the handle:
`run` raises MemoryAccessError for it. Dims bound from input values are bound with the others
(value_dims.py); a model with dims bound from values it computes runs in steps (stepped_run.py).
"""
from __future__ import annotations

from dataclasses import dataclass
from math import prod

import numpy as np

from pyflame_rt import value_dims
from pyflame_rt.compiled_model import CompiledModel, buffers_from_header, dims_from_json
from pyflame_rt.dialects.assumptions import Assumption
from pyflame_rt.dialects.symbolic import Shape, SymDim, bind_sums, evaluate, evaluate_shape, sum_terms
from pyflame_rt.dtype import DType
from pyflame_rt.errors import (BackendError, DTypeMismatchError, InputError, InvalidModelError, MemoryAccessError,
                               RunCancelledError, RunTimeoutError, ShapeMismatchError)
from pyflame_rt.launch_table import LaunchTable
from pyflame_rt.loops import loops_from_header
from pyflame_rt.profiling import Profiler
from pyflame_rt.memory import global_pool
from pyflame_rt.runtime import Run, ThreadPool, ffi, lib, native_symbols, now_ns
from pyflame_rt.stepped_run import SteppedRun
from pyflame_rt.targets.cpu.checked import describe_violation
from pyflame_rt.targets.cpu.native_object import LoadedObject, register_symbols
from pyflame_rt.targets.cpu.memory_plan import plan
from pyflame_rt.targets.cpu.target import CPUTarget


@dataclass(frozen=True)
class IOSpec:
    name: str
    shape: Shape
    dtype: DType


class Executable:
    def __init__(self, compiled: CompiledModel, num_threads: int = 0):
        h = compiled.header
        self.header = h
        try:
            t = h["target"]
            target = CPUTarget(str(t["triple"]), str(t["cpu"]), tuple(str(f) for f in t["features"]))
            self.inputs = [IOSpec(str(i["name"]), dims_from_json(i["shape"]), DType(i["dtype"])) for i in h["inputs"]]
            self.outputs = [IOSpec(str(o["name"]), dims_from_json(o["shape"]), DType(o["dtype"]))
                            for o in h["outputs"]]
            self.symbols: list[str] = [str(s) for s in h["symbols"]]
            self.value_dims = value_dims.from_header(
                h.get("value_dims", []), [i.dtype.numpy for i in self.inputs],
                [prod(i.shape) if all(isinstance(d, int) for d in i.shape) else None for i in self.inputs])
            self.buffers = buffers_from_header(h)
            self.kernel_names: list[str] = [str(k) for k in h.get("kernels", [])]
            self.step_ops: list[str] = [str(k) for k in h.get("step_ops", [])]
            self.assumptions = [Assumption.from_json(a) for a in h.get("assumptions", [])]
            trial = {s: 1 for s in self.symbols}  # every size must be computable from the model's dims
            plan(self.buffers, trial)
            for o in self.outputs:
                evaluate_shape(o.shape, trial)
            for a in self.assumptions:  # ... and every assumption from them
                a.failure(trial)
            self.checks: list[str] = [str(c) for c in h.get("checks", [])]
            self.checked = h.get("checked", False) is True
            self.step_fields: list[list] = list(h.get("step_fields", []))
            io_slots = len(self.inputs) + len(self.outputs) + 1  # the status word last
            self.table = LaunchTable(h["launches"], len(self.kernel_names), io_slots, len(self.buffers),
                                     compiled.weights.size, self.symbols)
            # dims bound from tensors the model computes: its runs go in steps (stepped_run.py)
            self.computed_dims = value_dims.computed_from_header(h.get("computed_dims", []), len(self.buffers),
                                                                 io_slots, len(self.table))
            self.loops = loops_from_header(h.get("loops", []), len(self.table), io_slots, len(self.buffers),
                                           compiled.weights.size, self.symbols, [c.step for c in self.computed_dims])
        except (KeyError, TypeError, ValueError, AttributeError, IndexError) as e:
            raise InvalidModelError(f"artifact metadata is invalid ({type(e).__name__}: {e})") from None
        missing = target.missing_on_host()
        if missing:
            raise BackendError(
                f"artifact was compiled for CPU '{target.cpu}' and needs features this CPU lacks: "
                f"{', '.join(missing)}; recompile with --cpu host or a portable level such as x86-64-v3")
        register_symbols(native_symbols())
        self._object = LoadedObject(compiled.objects, target)
        addresses = [self._object.address(k) for k in self.kernel_names]
        self.table.bind(addresses)
        self._kernel_at = dict(zip(addresses, self.kernel_names))
        self._weights = compiled.weights  # keeps the mapping alive
        self.weight_bytes = compiled.weights.size
        self.weights_ptr = ffi.cast("void*", self._weights.ctypes.data if self._weights.size else 0)
        self.pool = ThreadPool(num_threads)
        self._calls: dict[tuple, _PreparedCall] = {}
        self._scratch: list[_Scratch] = []  # one per concurrent run

    # ------------------------------------------------------------- shapes
    def bind(self, arrays: list[np.ndarray]) -> dict[str, int]:
        """Dynamic dim values from the feeds; every static dim and repeated symbol must agree."""
        bindings: dict[str, int] = {}
        for spec, arr in zip(self.inputs, arrays):
            if arr.ndim != len(spec.shape):
                raise ShapeMismatchError(
                    f"input '{spec.name}' must have rank {len(spec.shape)} "
                    f"(shape {_fmt(spec.shape)}), got rank {arr.ndim} with shape {list(arr.shape)}")
            for axis, (d, actual) in enumerate(zip(spec.shape, arr.shape)):
                if isinstance(d, int):
                    if d != actual:
                        raise ShapeMismatchError(
                            f"input '{spec.name}' dim {axis} must be {d} (shape {_fmt(spec.shape)}), "
                            f"got {actual} (shape {list(arr.shape)})")
                elif len(d.syms) == 1 and d.coef == 1:
                    s = d.syms[0]
                    if s in bindings and bindings[s] != actual:
                        raise ShapeMismatchError(
                            f"input '{spec.name}' dim {axis} ('{s}') is {actual} but another input "
                            f"binds '{s}' to {bindings[s]}")
                    bindings[s] = actual
        for spec, arr in zip(self.inputs, arrays):  # composite dims (e.g. 2*batch) must match too
            for axis, (d, actual) in enumerate(zip(spec.shape, arr.shape)):
                if isinstance(d, SymDim) and all(s in bindings for s in d.syms) and d.evaluate(bindings) != actual:
                    raise ShapeMismatchError(f"input '{spec.name}' dim {axis} must equal {d}, got {actual}")
        value_dims.bind_values(self.value_dims, arrays, [i.name for i in self.inputs], bindings)
        bind_sums(bindings, self.symbols)
        later = {c.dim for c in self.computed_dims} | set(bindings)  # a sum of them is bound with its last term
        unbound = [s for s in self.symbols if s not in bindings and not set(sum_terms(s)[0]) <= later]
        if unbound:
            raise ShapeMismatchError(f"dynamic dims {unbound} cannot be determined from the inputs")
        return bindings

    def check_assumptions(self, bindings: dict[str, int]) -> None:
        """What the compiled code relies on about the dynamic dims (equal inner dims, matching
        element counts, ...) must hold for these dim values."""
        for a in self.assumptions:
            failure = a.failure(bindings)
            if failure is not None:
                raise ShapeMismatchError(failure)

    def check_dtype(self, spec: IOSpec, arr: np.ndarray) -> None:
        if arr.dtype != spec.dtype.numpy:
            raise DTypeMismatchError(
                f"input '{spec.name}' must be {spec.dtype.ort_type}, got numpy {arr.dtype}")

    # ---------------------------------------------------------------- run
    def run(self, arrays: list[np.ndarray], timeout_ms: int = 0,
            profiler: Profiler | None = None, out: list | None = None) -> list[np.ndarray]:
        """arrays: one per input, in order, C-contiguous. Everything that depends only on the
        input shapes (validation, output shapes, memory plan) is cached per shape signature.
        timeout_ms > 0: raise RunTimeoutError once the run passes its deadline (checked
        between kernels). profiler: receives one event per kernel call. out (IO binding): per
        output None (allocated) or the array the run writes it into (`bound_outputs`)."""
        for spec, arr in zip(self.inputs, arrays):  # the guard before native code, every run
            self.check_dtype(spec, arr)
        if self.computed_dims or self.loops:
            if out is not None:
                raise InputError("outputs cannot be bound (out) for a model whose sizes are computed during the run")
            return self._run_in_steps(arrays, timeout_ms, profiler)
        call = self._calls.get(self._signature(arrays))
        if call is None:
            call = self._prepare(arrays)
        try:
            outs = [np.empty(shape, dtype) for shape, dtype in call.outputs] if out is None else \
                self.bound_outputs(call.outputs, arrays, out)
        except MemoryError:
            raise BackendError(f"cannot allocate the outputs, shapes {[s for s, _ in call.outputs]}") from None
        try:
            scratch = self._scratch.pop()  # list.pop/append are atomic: no lock needed
        except IndexError:
            scratch = _Scratch()
        try:
            scratch.status[0] = 0
            io = ffi.new("void*[]", [*map(ffi.from_buffer, arrays), *map(ffi.from_buffer, outs), scratch.status_ptr])
            with Run(self.pool, timeout_ms, profiler is not None) as run:
                start = now_ns() if profiler is not None else 0
                pool = global_pool()
                failed = lib.pfrt_execute_pooled(pool.handle, call.arena_bytes, run.handle, call.launches,
                                                 len(self.table), call.fields, io, self.weights_ptr, self.checked)
                if failed > 0:  # the pool could not give the arena: no kernel ran
                    raise pool.allocation_error(failed, call.arena_bytes)
                if failed:
                    raise BackendError("cannot allocate a kernel context for the run")
                self.check_run(run, timeout_ms)
                if profiler is not None:
                    profiler.add_run(self.kernel_name, self.step_ops, run.events(), call.bindings, start, now_ns())
            status = int(scratch.status[0])
        finally:
            self._scratch.append(scratch)
        if status:
            raise InputError(self.checks[status - 1])
        return outs

    def bound_outputs(self, shapes: list, arrays: list[np.ndarray], out: list) -> list[np.ndarray]:
        """The outputs of a run given `out`: each given array must be C-contiguous, writable, of the
        output's shape and dtype, and overlap no input and no other output (the kernels read and
        write them as separate buffers)."""
        if not isinstance(out, (list, tuple)) or len(out) != len(self.outputs):
            raise InputError(f"out must be a list of {len(self.outputs)} arrays or None, one per output")
        outs = []
        for spec, (shape, dtype), a in zip(self.outputs, shapes, out):
            if a is None:
                a = np.empty(shape, dtype)
            elif not (isinstance(a, np.ndarray) and a.shape == shape and a.dtype == dtype and a.flags.c_contiguous
                      and a.flags.writeable):
                raise InputError(f"output '{spec.name}' must be bound to a writable C-contiguous {np.dtype(dtype)} "
                                 f"array of shape {list(shape)}, got {_describe_array(a)}")
            outs.append(a)
        reach_all = reach_out = 0  # by increasing start: the furthest end of any buffer, of any output
        for begin, end, k in sorted((a.ctypes.data, a.ctypes.data + a.nbytes, k)
                                    for k, a in enumerate(arrays + outs) if a.nbytes):
            is_output = k >= len(arrays)
            if begin < (reach_all if is_output else reach_out):
                raise InputError("an output is bound to memory that overlaps another input or output of the run")
            reach_all = max(reach_all, end)
            reach_out = max(reach_out, end) if is_output else reach_out
        return outs

    def _run_in_steps(self, arrays: list[np.ndarray], timeout_ms: int, profiler: Profiler | None) -> list[np.ndarray]:
        try:
            scratch = self._scratch.pop()
        except IndexError:
            scratch = _Scratch()
        try:
            scratch.status[0] = 0
            return SteppedRun(self, arrays).run(timeout_ms, profiler, scratch.status, scratch.status_ptr)
        finally:
            self._scratch.append(scratch)

    def check_run(self, run: Run, timeout_ms: int, first_step: int = 0) -> None:
        """Raise for a run stopped by an out-of-bounds access, its deadline or a cancellation
        (first_step: the launch the runtime's step numbers count from)."""
        violation = run.violation() if self.checked else None
        if violation is not None:
            address, step, *rest = violation
            raise MemoryAccessError(self._describe((address, first_step + step, *rest)))
        if timeout_ms and run.timed_out:
            raise RunTimeoutError(
                f"run exceeded timeout_ms={timeout_ms}: stopped after {run.kernels_done} kernel calls")
        if run.cancelled:
            raise RunCancelledError(f"run cancelled: stopped after {run.kernels_done} kernel calls")

    def kernel_name(self, address: int) -> str:
        return self._kernel_at.get(address, f"kernel@{address:#x}")

    def _describe(self, violation: tuple) -> str:
        address, step, region, offset, size, nbytes, store = violation
        return describe_violation(self.kernel_name(address), step, region, offset, size, nbytes, store,
                                  self.step_ops, self.step_fields)

    def _prepare(self, arrays: list[np.ndarray]) -> "_PreparedCall":
        bindings = self.bind(arrays)
        self.check_assumptions(bindings)
        offsets, total = plan(self.buffers, bindings)
        outputs = [(evaluate_shape(o.shape, bindings), o.dtype.numpy) for o in self.outputs]
        buffer_sizes = [evaluate(b.nbytes, bindings) for b in self.buffers]
        io_sizes = [a.nbytes for a in arrays] + [int(np.prod(s)) * np.dtype(t).itemsize for s, t in outputs] + [8]
        try:
            launches, fields = self.table.resolve(bindings, offsets, buffer_sizes, io_sizes)
        except OverflowError:
            raise ShapeMismatchError(f"the dims {bindings} make a size of the model exceed 2**63 bytes") from None
        call = _PreparedCall(
            outputs=outputs,
            launches=ffi.from_buffer("pfrt_launch[]", launches),
            fields=ffi.from_buffer("pfrt_field[]", fields),
            arena_bytes=total,
            bindings=bindings)
        if len(self._calls) > 256:  # bound the cache for workloads with ever-changing shapes
            self._calls.clear()
        self._calls[self._signature(arrays)] = call
        return call

    def _signature(self, arrays: list[np.ndarray]) -> tuple:
        """What a prepared call depends on: the input shapes, and the values that bind dims."""
        shapes = tuple([a.shape for a in arrays])
        return (shapes, value_dims.values_key(self.value_dims, arrays)) if self.value_dims else shapes

    def arena_bytes(self, bindings: dict[str, int]) -> int:
        return plan(self.buffers, bindings)[1]


class _Scratch:
    """What one run writes besides its outputs and its arena (from the memory pool): the status
    word that run-time checks (e.g. Gather indices) report to. Reused across runs, never shared
    by two at once."""

    def __init__(self):
        self.status = np.zeros(1, np.int64)
        self.status_ptr = ffi.from_buffer(self.status)


@dataclass
class _PreparedCall:
    outputs: list
    launches: object  # the resolved launch table (pfrt_launch[], keeps its numpy array alive)
    fields: object    # ... and its fields (pfrt_field[])
    arena_bytes: int
    bindings: dict


def _fmt(shape: Shape) -> str:
    return "[" + ", ".join(str(d) for d in shape) + "]"


def _describe_array(a) -> str:
    if not isinstance(a, np.ndarray):
        return f"a {type(a).__name__}"
    layout = "" if a.flags.c_contiguous else " non-contiguous"
    return f"a{' read-only' if not a.flags.writeable else ''}{layout} {a.dtype} array of shape {list(a.shape)}"
