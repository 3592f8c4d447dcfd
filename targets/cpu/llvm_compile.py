"""xDSL `llvm` dialect -> llvmlite -> optimized native object code, and loading it."""
from __future__ import annotations

import ctypes
import threading

import llvmlite.binding as llvm
from xdsl.backend.llvm.convert import convert_module
from xdsl.dialects.builtin import ModuleOp

from pyflame_rt.errors import BackendError
from pyflame_rt.targets.cpu.target import CPUTarget, init_llvm


def to_llvm_ir(module: ModuleOp, target: CPUTarget) -> str:
    try:
        return str(convert_module(module, fallback_target_triple=target.triple))
    except Exception as e:
        raise BackendError(f"translating to LLVM IR failed: {e}") from e


def compile_object(ir_text: str, target: CPUTarget) -> bytes:
    """Optimize at O3 for the target CPU and emit an object file."""
    init_llvm()
    try:
        mod = llvm.parse_assembly(ir_text)
        mod.verify()
    except RuntimeError as e:
        raise BackendError(f"LLVM rejected the generated IR: {e}") from e
    tm = target.target_machine()
    mod.triple = target.triple
    mod.data_layout = str(tm.target_data)
    pto = llvm.create_pipeline_tuning_options(speed_level=3)
    pto.loop_vectorization = True
    pto.slp_vectorization = True
    pto.loop_unrolling = True
    pb = llvm.create_pass_builder(tm, pto)
    pm = pb.getModulePassManager()
    pm.run(mod, pb)
    return tm.emit_object(mod)


_symbols_lock = threading.Lock()


def register_symbols(symbols: dict[str, int]) -> None:
    """Make runtime functions resolvable from loaded native code."""
    with _symbols_lock:
        for name, addr in symbols.items():
            llvm.add_symbol(name, addr)


class LoadedObject:
    """Native object code linked into this process with MCJIT; lookup by symbol."""

    def __init__(self, obj: bytes, target: CPUTarget):
        init_llvm()
        self._backing = llvm.parse_assembly("")
        self._backing.triple = target.triple
        self._engine = llvm.create_mcjit_compiler(self._backing, target.target_machine())
        try:
            self._engine.add_object_file(llvm.ObjectFileRef.from_data(obj))
            self._engine.finalize_object()
        except RuntimeError as e:
            raise BackendError(f"loading native code failed: {e}") from e

    def address(self, name: str) -> int:
        addr = self._engine.get_function_address(name)
        if not addr:
            raise BackendError(f"compiled code has no symbol {name}")
        return addr

    def function(self, name: str, restype, *argtypes):
        return ctypes.CFUNCTYPE(restype, *argtypes)(self.address(name))
