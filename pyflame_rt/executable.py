"""A loaded compiled model: native entry point, weights, worker pool and arenas.

`run` validates every feed against the model's symbolic shapes *before* calling
native code (generated code trusts the shapes it is given), binds the dynamic
dims, takes an arena from a free list (so concurrent runs never share scratch
memory) and calls the one compiled entry point.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass

import numpy as np

from pyflame_rt.compiler import CompiledModel, buffers_from_header, dims_from_json
from pyflame_rt.dialects.symbolic import Shape, SymDim, evaluate_shape
from pyflame_rt.dtype import DType
from pyflame_rt.errors import BackendError, DTypeMismatchError, ShapeMismatchError
from pyflame_rt.runtime import Arena, ThreadPool, ffi, native_symbols
from pyflame_rt.targets.cpu.llvm_compile import LoadedObject, register_symbols
from pyflame_rt.targets.cpu.lower_graph import ENTRY
from pyflame_rt.targets.cpu.memory_plan import plan
from pyflame_rt.targets.cpu.target import CPUTarget

_ENTRY_TYPE = "void(*)(void*, void*, void*, void*, void*, void*)"


@dataclass(frozen=True)
class IOSpec:
    name: str
    shape: Shape
    dtype: DType


class Executable:
    def __init__(self, compiled: CompiledModel, num_threads: int = 0):
        h = compiled.header
        self.header = h
        t = h["target"]
        target = CPUTarget(t["triple"], t["cpu"], tuple(t["features"]))
        missing = target.missing_on_host()
        if missing:
            raise BackendError(
                f"artifact was compiled for CPU '{target.cpu}' and needs features this CPU lacks: "
                f"{', '.join(missing)}; recompile with --cpu host or a portable level such as x86-64-v3")
        self.inputs = [IOSpec(i["name"], dims_from_json(i["shape"]), DType(i["dtype"])) for i in h["inputs"]]
        self.outputs = [IOSpec(o["name"], dims_from_json(o["shape"]), DType(o["dtype"])) for o in h["outputs"]]
        self.symbols: list[str] = h["symbols"]
        self.buffers = buffers_from_header(h)
        register_symbols(native_symbols())
        self._object = LoadedObject(compiled.object_code, target)
        self._entry = ffi.cast(_ENTRY_TYPE, self._object.address(ENTRY))
        self._weights = compiled.weights  # keeps the mapping alive
        self._weights_ptr = ffi.cast("void*", self._weights.ctypes.data if self._weights.size else 0)
        self.pool = ThreadPool(num_threads)
        self._plans: dict[tuple[int, ...], tuple[np.ndarray, int]] = {}
        self._arenas: list[Arena] = []
        self._lock = threading.Lock()

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
        unbound = [s for s in self.symbols if s not in bindings]
        if unbound:
            raise ShapeMismatchError(f"dynamic dims {unbound} cannot be determined from the inputs")
        return bindings

    def check_dtype(self, spec: IOSpec, arr: np.ndarray) -> None:
        if arr.dtype != spec.dtype.numpy:
            raise DTypeMismatchError(
                f"input '{spec.name}' must be {spec.dtype.ort_type}, got numpy {arr.dtype}")

    # ---------------------------------------------------------------- run
    def run(self, arrays: list[np.ndarray]) -> list[np.ndarray]:
        """arrays: one per input, in order, already C-contiguous with the right dtype."""
        for spec, arr in zip(self.inputs, arrays):
            self.check_dtype(spec, arr)
        bindings = self.bind(arrays)
        key = tuple(bindings[s] for s in self.symbols)
        outs = [np.empty(evaluate_shape(o.shape, bindings), dtype=o.dtype.numpy) for o in self.outputs]
        planned = self._plans.get(key)
        if planned is None:
            offsets, total = plan(self.buffers, bindings)
            planned = (np.array(offsets or [0], dtype=np.int64), total)
            self._plans[key] = planned
        offsets, total = planned
        io = np.array([a.ctypes.data for a in arrays] + [o.ctypes.data for o in outs], dtype=np.int64)
        dims = np.array(key or (0,), dtype=np.int64)
        arena = self._take_arena()
        try:
            base = arena.reserve(total)
            self._entry(ffi.cast("void*", io.ctypes.data), self._weights_ptr, ffi.cast("void*", base),
                        ffi.cast("void*", offsets.ctypes.data), ffi.cast("void*", dims.ctypes.data),
                        self.pool.handle)
        finally:
            self._give_arena(arena)
        return outs

    def arena_bytes(self, bindings: dict[str, int]) -> int:
        return plan(self.buffers, bindings)[1]

    def _take_arena(self) -> Arena:
        with self._lock:
            return self._arenas.pop() if self._arenas else Arena(0)

    def _give_arena(self, arena: Arena) -> None:
        with self._lock:
            self._arenas.append(arena)


def _fmt(shape: Shape) -> str:
    return "[" + ", ".join(str(d) for d in shape) + "]"
