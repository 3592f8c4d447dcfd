"""Loading compiled object code into this process (MCJIT via llvmlite) and finding its symbols.

Needs llvmlite only: running an artifact never imports the compiler (xDSL).

MCJIT resolves an object's undefined symbols against the objects linked with it, the registered
runtime symbols and then the whole process, so an object importing `system` would get libc's.
The objects of an artifact are therefore vetted first (`vet_objects`): each may import only
`ALLOWED_IMPORTS` and symbols another of them defines (a kernel compiled on its own, the entry
point calling it), no symbol is defined twice, and each uses only the section and relocation
kinds our compiler emits.
"""
from __future__ import annotations

import ctypes
import functools
import threading

import llvmlite.binding as llvm

from pyflame_rt.errors import BackendError, InvalidModelError
from pyflame_rt.targets.cpu.elf_object import ElfError, ElfObject
from pyflame_rt.targets.cpu.target import CPUTarget, init_llvm

# What generated code may import, found by compiling models of every kernel family (float32,
# float16, float64, casts, LRN, conv, pooling, gather, ...) for x86-64, x86-64-v2/v3/v4 and the
# host, and collecting their undefined symbols.
ALLOWED_IMPORTS = frozenset({
    "pfrt_checked_address",                   # checked builds' bounds check (checked.CHECK_FN)
    "memcpy", "memmove", "memset",            # LLVM's memory intrinsics and loop idioms
    "floorf", "ceilf", "truncf", "roundevenf",  # llvm.floor/ceil/trunc/roundeven without SSE4.1
    "floor", "trunc",                         # the float64 ones (float64 exp, Mod)
    "fmaf", "fma",                            # llvm.fma without FMA3 (x86-64, x86-64-v2)
    # float64 math: the C library's, pure functions of their arguments (fast_math.float64_by_libm, Pow)
    "log", "tanh", "pow", "sin", "cos", "tan", "asin", "acos", "atan", "sinh", "cosh",
    "erf", "asinh", "acosh", "atanh",         # those without an LLVM intrinsic, called directly
    "powf", "exp2f", "log2f",                 # LRN's vector pow and its scalar exp2(log2) tail
    "__extendhfsf2", "__truncsfhf2",          # float16 <-> float32 without F16C
})

EM_X86_64 = 62
SECTION_TYPES = frozenset({0, 1, 2, 3, 4, 8, 0x70000001})  # null, progbits, symtab, strtab, rela, nobits, unwind
# code run at load time by other loaders (MCJIT runs none from objects, but nothing we emit has them)
CONSTRUCTOR_SECTIONS = (".ctors", ".dtors", ".init", ".fini", ".init_array", ".fini_array", ".preinit_array")
# x86-64 relocations that only compute addresses of (vetted) symbols and sections:
# 64, PC32, PLT32, GOTPCREL, 32, 32S, PC64, GOTPCRELX, REX_GOTPCRELX
RELOCATION_TYPES = frozenset({1, 2, 4, 9, 10, 11, 24, 41, 42})
STT_GNU_IFUNC = 10

_symbols_lock = threading.Lock()


def register_symbols(symbols: dict[str, int]) -> None:
    """Make runtime functions resolvable from loaded native code."""
    with _symbols_lock:
        for name, addr in symbols.items():
            llvm.add_symbol(name, addr)


def vet_objects(objects: tuple[bytes, ...]) -> set[str]:
    """The imports of the objects linked together that none of them defines (those the process
    must provide); InvalidModelError unless each is a plain compiled object (`vet_object`) and
    no symbol is defined by two of them."""
    elves = [_plain_object(obj) for obj in objects]
    defined: set[str] = set()
    for elf in elves:
        names = elf.global_definitions()
        twice = sorted(defined.intersection(names))
        if twice:
            raise InvalidModelError(f"artifact object code defines {', '.join(map(repr, twice))} more than once")
        defined.update(names)
    imports = set()
    for obj in objects:
        imports |= vet_object(obj, frozenset(defined))
    return imports - defined


def vet_object(obj: bytes, provided: frozenset[str] = frozenset()) -> set[str]:
    """The object's imports; InvalidModelError unless `obj` is an x86-64 relocatable object that
    imports only ALLOWED_IMPORTS and `provided` (symbols of the objects linked with it) and uses
    only the section and relocation kinds listed above."""
    try:
        elf = _plain_object(obj)
        imports = elf.undefined_symbols()
        relocations = sorted(elf.relocation_types() - RELOCATION_TYPES)
    except ElfError as e:
        raise InvalidModelError(f"artifact object code is not a plain compiled model: {e}") from None
    refused = sorted(imports - ALLOWED_IMPORTS - provided)
    if refused:
        raise InvalidModelError(
            f"artifact object code imports {', '.join(repr(s) for s in refused)}, which the runtime does not "
            f"provide to models (allowed: {', '.join(sorted(ALLOWED_IMPORTS))}); refusing to load it")
    if relocations:
        raise InvalidModelError(f"artifact object code uses relocation types {relocations}, which the loader "
                                f"does not allow")
    return imports


def _plain_object(obj: bytes) -> ElfObject:
    """`obj` parsed; ElfError unless an x86-64 object without odd sections or indirect functions."""
    try:
        elf = ElfObject(obj)
        if elf.machine != EM_X86_64:
            raise ElfError(f"machine {elf.machine} is not x86-64")
        odd = sorted({f"{s.name} (type {s.type:#x})" for s in elf.sections
                      if s.type not in SECTION_TYPES or _is_constructor_section(s.name)})
        if odd:
            raise ElfError(f"unexpected sections {', '.join(odd)}")
        if elf.has_symbol_type(STT_GNU_IFUNC):
            raise ElfError("it defines an indirect function (GNU ifunc)")
    except ElfError as e:
        raise InvalidModelError(f"artifact object code is not a plain compiled model: {e}") from None
    return elf


def _require_resolvable(imports: set[str]) -> None:
    """MCJIT binds an import it cannot find to address 0, a crash once called: refuse instead.
    The float16 conversions live in libgcc_s (GCC 12 and later), which Python does not load."""
    missing = [name for name in sorted(imports) if not llvm.address_of_symbol(name)]
    if missing and _load_libgcc():
        missing = [name for name in missing if not llvm.address_of_symbol(name)]
    if missing:
        raise BackendError(f"the model's native code needs {', '.join(missing)}, which this process does not "
                           f"provide; recompile it for a CPU with F16C/FMA/SSE4.1 (e.g. --cpu x86-64-v3)")


@functools.cache
def _load_libgcc() -> bool:
    try:
        llvm.load_library_permanently("libgcc_s.so.1")
    except RuntimeError:
        return False
    return True


def _is_constructor_section(name: str) -> bool:
    return name in CONSTRUCTOR_SECTIONS or name.startswith(tuple(f"{c}." for c in CONSTRUCTOR_SECTIONS))


class LoadedObject:
    """Native object files linked together into this process with MCJIT; lookup by symbol."""

    def __init__(self, objects: tuple[bytes, ...], target: CPUTarget):
        imports = vet_objects(objects)
        init_llvm()
        self._backing = llvm.parse_assembly("")
        self._backing.triple = target.triple
        self._engine = llvm.create_mcjit_compiler(self._backing, target.target_machine())  # opens the process
        _require_resolvable(imports)
        try:
            for obj in objects:
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
