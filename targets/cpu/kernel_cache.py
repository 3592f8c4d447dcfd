"""The kernel cache: every kernel compiled once per machine, into an object file of its own.

A kernel's entry is keyed by everything its object code follows from (`KernelCache.key`): its
symbol and the spec its generator closes over, the target (triple, CPU, features), checked build
or not, and the compiler (version, sources, llvmlite's LLVM and xDSL versions). On a hit the
kernel is neither generated nor compiled. Entries are signed `.pfm` files bound to their key (no
weights, one object) in a `CompileCache` configured by `KernelCacheConfig`, so the compile cache's
privacy, signing, atomic stores and eviction apply to them unchanged.

`compile_modules` compiles the modules of one model (each missing kernel alone, then the entry
point) in worker processes, one per core (compile_workers).
"""
from __future__ import annotations

import functools
import hashlib
import time
from typing import Callable

import llvmlite
import llvmlite.binding as llvm
import numpy as np
import xdsl
from xdsl.context import Context
from xdsl.dialects import func
from xdsl.dialects.builtin import ModuleOp, StringAttr

from pyflame_rt import __version__
from pyflame_rt.cache import CompileCache, compiler_fingerprint
from pyflame_rt.compiled_model import CompiledModel
from pyflame_rt.errors import BackendError, PyFlameRTError
from pyflame_rt.targets.cpu.compile_workers import run_jobs
from pyflame_rt.targets.cpu.convert_to_llvm import ConvertToLLVM
from pyflame_rt.targets.cpu.llvm_compile import compile_object, to_llvm_ir
from pyflame_rt.targets.cpu.target import CPUTarget

_NO_WEIGHTS = np.zeros(0, dtype=np.uint8)


class KernelCache:
    """The kernel objects of one compile: found in `store` by key, or to be generated and compiled."""

    def __init__(self, store: CompileCache, target: CPUTarget, checked: bool):
        self.store, self.target, self.checked = store, target, checked
        self.keys: dict[str, str] = {}  # kernel symbol -> key, for the kernels to store after compiling

    def key(self, name: str, make: Callable[[], func.FuncOp]) -> str | None:
        """sha256 of what the kernel's code follows from; None if its spec has no stable text (such a
        kernel is always generated)."""
        spec = _spec_text(make)
        if spec is None:
            return None
        h = hashlib.sha256()
        for part in (__version__, compiler_fingerprint(), llvmlite.__version__,
                     ".".join(map(str, llvm.llvm_version_info)), xdsl.__version__, self.target.triple,
                     self.target.cpu, ",".join(self.target.features), str(self.checked), name, spec):
            h.update(str(part).encode() + b"\0")
        return h.hexdigest()

    def find(self, name: str, make: Callable[[], func.FuncOp]) -> bytes | None:
        """The cached object defining kernel `name` (built by `make`), else None (remembered for `add`)."""
        key = self.key(name, make)
        if key is None:
            return None
        entry = self.store.lookup(key)
        if entry is not None and entry.header.get("kernel") == name and len(entry.objects) == 1:
            return entry.objects[0]
        self.keys[name] = key
        return None

    def add(self, name: str, obj: bytes) -> None:
        """Store the object compiled for kernel `name` after `find` missed it."""
        if name in self.keys:
            self.store.store(self.keys[name], CompiledModel({"kernel": name}, _NO_WEIGHTS, (obj,)))


def split_kernels(module: ModuleOp, names: list[str]) -> list[ModuleOp]:
    """Move each kernel in `names` out of `module` into a module of its own (with the module's
    declarations), leaving a declaration in its place; returns those modules. A kernel becomes
    public: the entry point's object links to it."""
    decls = [op for op in module.ops if isinstance(op, func.FuncOp) and op.is_declaration]
    kernels = {op.sym_name.data: op for op in module.ops if isinstance(op, func.FuncOp)}
    modules = []
    for name in names:
        fn = kernels[name]
        module.body.block.insert_op_before(
            func.FuncOp.external(name, list(fn.function_type.inputs), list(fn.function_type.outputs)), fn)
        fn.detach()
        fn.sym_visibility = StringAttr("public")
        modules.append(ModuleOp([fn, *(d.clone() for d in decls)]))
    return modules


def compile_modules(modules: list[ModuleOp], target: CPUTarget, times: dict[str, float],
                    workers: int | None = None) -> list[bytes]:
    """The object code of each module, compiled side by side by `workers` processes (None: one
    per core, compile_workers.run_jobs). Adds
    the time spent converting to the llvm dialect, translating to LLVM IR and in LLVM, summed over
    the modules, to `times` (ms)."""
    done = run_jobs([functools.partial(_compile_module, module, target) for module in modules], workers)
    for stage in ("convert-to-llvm", "translate", "llvm-codegen"):
        times[stage] = round(sum(spent[stage] for _, spent in done) * 1e3, 2)
    return [obj for obj, _ in done]


def _compile_module(module: ModuleOp, target: CPUTarget) -> tuple[bytes, dict[str, float]]:
    """The module's object code and the seconds each stage took."""
    t0 = time.perf_counter()
    _convert(module)
    t1 = time.perf_counter()
    ir_text = to_llvm_ir(module, target)
    t2 = time.perf_counter()
    obj = compile_object(ir_text, target)
    return obj, {"convert-to-llvm": t1 - t0, "translate": t2 - t1, "llvm-codegen": time.perf_counter() - t2}


def _convert(module: ModuleOp) -> None:
    """The kernel level to the llvm dialect. Not verified again: LLVM's verifier checks the
    translated IR (llvm_compile.compile_object), and the kernel-level IR is verified by tests."""
    try:
        ConvertToLLVM().apply(Context(), module)
    except PyFlameRTError:
        raise
    except Exception as e:
        raise BackendError(f"conversion to the llvm dialect failed: {e}") from e


def _spec_text(make: Callable[[], func.FuncOp]) -> str | None:
    """The generator (`lambda: gemm_kernel(spec)`) and the values it closes over, as text. None
    (not cacheable) when a value prints with its address, or when the generator or a function it
    names is not the compiler's own (say, replaced by a test): the compiler fingerprint covers
    only the compiler's sources."""
    values = [cell.cell_contents for cell in make.__closure__ or ()]
    named = [make.__globals__.get(name) for name in make.__code__.co_names]
    if not all(_is_compiler_code(f) for f in [make, *values, *named] if callable(f)):
        return None
    text = repr((make.__module__, make.__qualname__, make.__code__.co_names, values))
    return None if " at 0x" in text else text


def _is_compiler_code(f) -> bool:
    module = str(getattr(f, "__module__", ""))
    return module == "builtins" or module.startswith("pyflame_rt.")
