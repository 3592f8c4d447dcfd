"""The kernel cache: every kernel compiled once per machine, into an object file of its own.

A kernel's entry is keyed by everything its object code follows from (`KernelCache.key`): its
symbol and its generator (code, and the spec it closes over), the target (triple, CPU, features),
checked build or not, and the compiler (version; llvmlite's LLVM, xDSL and Python versions; the
sources that generate and compile kernels: `kernel_code_fingerprint`). On a hit the
kernel is neither generated nor compiled. Entries are signed `.pfm` files bound to their key (no
weights, one object) in a `CompileCache` configured by `KernelCacheConfig`, so the compile cache's
privacy, signing, atomic stores and eviction apply to them unchanged.

A missing kernel is generated and compiled by a worker process (compile_workers) started when the
lowering asks for it, so kernels compile while the graph is still being lowered; the lowering
only declares it. `compile_modules` compiles the modules of the kernels the parent generated (those
the cache cannot key) in worker processes too, one per core.
"""
from __future__ import annotations

import functools
import hashlib
import importlib.util
import re
import sys
import time
import types
from typing import Callable

import llvmlite
import llvmlite.binding as llvm
import numpy as np
import xdsl
from xdsl.context import Context
from xdsl.dialects import func
from xdsl.dialects.builtin import ModuleOp, StringAttr

from pyflame_rt import __version__
from pyflame_rt.cache import CompileCache
from pyflame_rt.compiled_model import CompiledModel
from pyflame_rt.errors import BackendError, PyFlameRTError
from pyflame_rt.targets.cpu.access_guard import check_declaration
from pyflame_rt.targets.cpu.compile_workers import JobPool, run_jobs
from pyflame_rt.targets.cpu.convert_to_llvm import ConvertToLLVM
from pyflame_rt.targets.cpu.kernel_builder import Signature, c_declarations, checked_kernels
from pyflame_rt.targets.cpu.llvm_compile import compile_object, to_llvm_ir
from pyflame_rt.targets.cpu.target import CPUTarget

_NO_WEIGHTS = np.zeros(0, dtype=np.uint8)


class KernelCache:
    """The kernel objects of one compile: found in `store` by key, or generated and compiled by
    worker processes (and stored) while the compile goes on."""

    def __init__(self, store: CompileCache, target: CPUTarget, checked: bool):
        self.store, self.target, self.checked = store, target, checked
        self.found: dict[str, bytes] = {}  # kernel symbol -> its cached object
        self.compiling: dict[str, str] = {}  # kernel symbol -> key, for the kernels the workers make
        self.signatures: dict[str, Signature] = {}  # kernel symbol -> its signature, once known
        self._jobs: JobPool[tuple[bytes, dict[str, float], Signature]] = JobPool()

    def key(self, name: str, make: Callable[[], func.FuncOp]) -> str | None:
        """sha256 of what the kernel's code follows from; None if its spec has no stable text (such a
        kernel is always generated)."""
        spec = _spec(make)
        if spec is None:
            return None
        text, modules = spec
        h = hashlib.sha256()
        for part in (__version__, kernel_code_fingerprint(modules), sys.version, llvmlite.__version__,
                     ".".join(map(str, llvm.llvm_version_info)), xdsl.__version__, self.target.triple,
                     self.target.cpu, ",".join(self.target.features), str(self.checked), name, text):
            h.update(str(part).encode() + b"\0")
        return h.hexdigest()

    def supplies(self, name: str, make: Callable[[], func.FuncOp]) -> bool:
        """Whether the cache supplies kernel `name` (built by `make`): its cached object, or one a
        worker generates and compiles from now on (`compiled_objects`). False for a kernel it
        cannot key, which the caller generates."""
        if name in self.found or name in self.compiling:
            return True
        key = self.key(name, make)
        if key is None:
            return False
        entry = self.store.lookup(key)
        if (entry is not None and entry.header.get("kernel") == name and len(entry.objects) == 1
                and "fields" in entry.header):
            self.found[name] = entry.objects[0]
            self.signatures[name] = Signature.of(entry.header["fields"], entry.header["buffers"])
        else:
            self.compiling[name] = key
            self._jobs.submit(functools.partial(_make_and_compile, make, self.checked, self.target))
        return True

    @property
    def supplied(self) -> list[str]:
        """The kernels the cache supplies (the lowering declares them), found ones first."""
        return [*self.found, *self.compiling]

    def declaration(self, name: str) -> func.FuncOp:
        """The declaration of a kernel the cache supplies: a found kernel's signature is in its entry;
        one the workers make is known once its worker has generated it (this waits for the workers)."""
        if name not in self.signatures:
            for made, (_, _, signature) in zip(self.compiling, self._jobs.results()):
                self.signatures[made] = signature
        return self.signatures[name].declaration(name, self.checked)

    def compiled_objects(self, times: dict[str, float]) -> dict[str, bytes]:
        """The objects of the kernels the workers made (waiting for them), stored in the cache with
        their signatures; adds the time they spent in each stage, summed over the kernels, to `times`
        (ms)."""
        done = self._jobs.results()
        _add_times(times, [spent for _, spent, _ in done], _KERNEL_STAGES)
        for (name, key), (obj, _, signature) in zip(self.compiling.items(), done):
            header = {"kernel": name, "fields": list(signature.fields),
                      "buffers": [n for n in signature.fields if n in signature.buffers]}
            self.store.store(key, CompiledModel(header, _NO_WEIGHTS, (obj,)))
        return {name: obj for name, (obj, _, _) in zip(self.compiling, done)}

    def close(self) -> None:
        """Stop the workers of a compile that failed."""
        self._jobs.close()


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
    per core, compile_workers.run_jobs). Adds the time spent converting to the llvm dialect,
    translating to LLVM IR and in LLVM, summed over the modules, to `times` (ms)."""
    done = run_jobs([functools.partial(_compile_module, module, target) for module in modules], workers)
    _add_times(times, [spent for _, spent in done], _MODULE_STAGES)
    return [obj for obj, _ in done]


_MODULE_STAGES = ("convert-to-llvm", "translate", "llvm-codegen")
_KERNEL_STAGES = ("generate-kernels", *_MODULE_STAGES)


def _add_times(times: dict[str, float], spent: list[dict[str, float]], stages: tuple[str, ...]) -> None:
    for stage in stages:
        times[stage] = round(times.get(stage, 0) + sum(s[stage] for s in spent) * 1e3, 2)


def _make_and_compile(make: Callable[[], func.FuncOp], checked: bool,
                      target: CPUTarget) -> tuple[bytes, dict[str, float], Signature]:
    """A kernel's object code, generated by `make` for a checked build or not (a module of its own,
    the kernel public: the entry point's launch table names it), the seconds each stage took, and
    its signature (the parent declares the kernel with it)."""
    t0 = time.perf_counter()
    with checked_kernels(checked):
        fn = make()
    fn.sym_visibility = StringAttr("public")
    signature = Signature.of_kernel(fn)
    module = ModuleOp([fn, *c_declarations([fn]), *([check_declaration()] if checked else [])])
    generated = time.perf_counter() - t0
    obj, spent = _compile_module(module, target)
    return obj, {"generate-kernels": generated, **spent}, signature


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


def _spec(make: Callable[[], func.FuncOp]) -> tuple[str, frozenset[str]] | None:
    """The generator (`lambda: gemm_kernel(spec)`) as text: its code and defaults, the values it
    closes over and the globals it names (functions and modules by name); and the modules of those
    functions and modules. None (not cacheable) when a value prints with its address, or when the
    generator or such a function is not the compiler's own (say, a test's): only the compiler's
    sources are fingerprinted."""
    code = make.__code__
    values = [cell.cell_contents for cell in make.__closure__ or ()]
    named = [make.__globals__.get(name) for name in code.co_names]
    modules = {_module_of(v) for v in [*values, *named] if _is_code(v)} - {"builtins"}
    if not all(_is_compiler_module(m) for m in {make.__module__, *modules}):
        return None
    text = repr((make.__module__, make.__qualname__, code.co_code.hex(), code.co_consts, code.co_names,
                 make.__defaults__, make.__kwdefaults__, [_describe(v) for v in values], [_describe(v) for v in named]))
    return None if " at 0x" in text else (text, frozenset(modules))


def _is_code(value) -> bool:
    return isinstance(value, (types.FunctionType, types.BuiltinFunctionType, type, types.ModuleType))


def _module_of(code) -> str:
    return code.__name__ if isinstance(code, types.ModuleType) else str(getattr(code, "__module__", ""))


def _describe(value):
    """A function, class or module by its name (its source is fingerprinted); other values as they are."""
    return f"{_module_of(value)}:{getattr(value, '__qualname__', '')}" if _is_code(value) else value


# The modules that turn a spec into object code whatever the kernel: the kernel builder, checked
# builds' guards, the conversion to the llvm dialect, LLVM IR emission and LLVM's settings.
_CODEGEN_MODULES = frozenset(f"pyflame_rt.targets.cpu.{m}" for m in (
    "kernel_builder", "access_guard", "checked", "convert_to_llvm", "llvm_compile", "target"))
# Imported by those but never a source of kernel code: the version (keyed on its own), errors,
# the cache's storage, the worker processes, the CPU target's compile driver half (backend.py,
# which target.py loads on first use: it runs lowerings and passes, not kernel generation), the C
# runtime (target.py asks it for the OS's AMX permission).
_NOT_CODEGEN = frozenset({"pyflame_rt", "pyflame_rt.errors", "pyflame_rt.cache", "pyflame_rt.compiled_model",
                          "pyflame_rt.targets.cpu.compile_workers", "pyflame_rt.targets.cpu.backend",
                          "pyflame_rt.runtime"})


@functools.lru_cache(maxsize=None)
def kernel_code_fingerprint(generators: frozenset[str]) -> str:
    """sha256 of the sources of the modules `generators` (the kernel generators a key names), of
    `_CODEGEN_MODULES` and this module (splitting and compiling kernel modules), and of every
    pyflame_rt module they import, directly or not, but `_NOT_CODEGEN`. Other edits (passes,
    lowerings, the runtime, the driver) leave cached kernels valid: a lowering changes a kernel
    only through its spec, which the key holds as text."""
    roots = generators | _CODEGEN_MODULES | {__name__}
    missing = sorted(name for name in roots if _origin(name) is None)
    if missing:  # a renamed module: fail loudly rather than leave its code unhashed
        raise BackendError(f"kernel cache: compiler modules not found: {', '.join(missing)}")
    digests, todo = {}, list(roots)
    while todo:
        name = todo.pop()
        if name not in digests and name not in _NOT_CODEGEN:
            digests[name], imports = _module_source(name)
            todo += imports
    return hashlib.sha256("".join(f"{name}\0{digests[name]}\0" for name in sorted(digests)).encode()).hexdigest()


# `from pyflame_rt.x import a, b` (names possibly in parentheses over lines) or `import pyflame_rt.x`
_IMPORT = re.compile(r"^[ \t]*(?:from[ \t]+(pyflame_rt(?:\.\w+)*)[ \t]+import[ \t]+(\([^)]*\)|[^\n#]+)"
                     r"|import[ \t]+(pyflame_rt(?:\.\w+)*))", re.M)

# imports only type checkers run: they never change what a module does
_TYPE_CHECKING_BLOCK = re.compile(r"^if TYPE_CHECKING:\n(?:[ \t]+[^\n]*\n|[ \t]*\n)*", re.M)


@functools.lru_cache(maxsize=None)
def _module_source(name: str) -> tuple[str, list[str]]:
    """sha256 of module `name`'s source ("" if there is no such module), and the pyflame_rt
    modules it imports (an import statement in a string only adds a module to hash)."""
    origin = _origin(name)
    if origin is None:
        return "", []
    with open(origin, "rb") as f:
        source = f.read()
    imports = []
    for m in _IMPORT.finditer(_TYPE_CHECKING_BLOCK.sub("", source.decode())):
        if m[3]:
            imports.append(m[3])
        else:
            names = [n.split(" as ")[0].strip() for n in m[2].strip("() \t").split(",")]
            imports += _imported_modules(m[1], [n for n in names if n])
    return hashlib.sha256(source).hexdigest(), imports


def _origin(name: str) -> str | None:
    try:
        spec = importlib.util.find_spec(name)
    except ModuleNotFoundError:
        return None
    return spec.origin if spec is not None else None


def _is_compiler_module(name: str) -> bool:
    return name == "pyflame_rt" or name.startswith("pyflame_rt.")


def _imported_modules(module: str, names: list[str]) -> list[str]:
    """What `from module import names` runs: the submodules among `names` if `module` is a
    package (its own __init__ only if some name is not a submodule), else `module`."""
    package = _origin(module) is not None and importlib.util.find_spec(module).submodule_search_locations
    if not package:
        return [module]
    submodules = [f"{module}.{n}" for n in names if _origin(f"{module}.{n}") is not None]
    return submodules if len(submodules) == len(names) else [module, *submodules]
