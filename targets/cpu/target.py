"""The CPU target: name, features and vector width, host by default or a portable level.

Its compile half (lowering, emission; backend.py) loads on first use: loading an artifact needs
only the description, and no xDSL.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import llvmlite.binding as llvm

from pyflame_rt.errors import BackendError, ValidationError
from pyflame_rt.targets.target import Capabilities, Emission, Target

if TYPE_CHECKING:
    from xdsl.dialects.builtin import ModuleOp
    from xdsl.passes import ModulePass

    from pyflame_rt.options import CompileOptions, OptLevel
    from pyflame_rt.targets.cpu.lower_graph import LoweredModel

_initialized = False


def init_llvm() -> None:
    global _initialized
    if not _initialized:
        llvm.initialize_native_target()
        llvm.initialize_native_asmprinter()
        _initialized = True


# Portable choices (x86-64 micro-architecture levels) users can compile for.
PORTABLE_CPUS = {
    "x86-64": ("x86-64", ["sse2"]),
    "x86-64-v2": ("x86-64-v2", ["sse2", "sse4.2", "popcnt"]),
    "x86-64-v3": ("x86-64-v3", ["sse2", "sse4.2", "popcnt", "avx", "avx2", "fma", "f16c", "bmi2"]),
    "x86-64-v4": ("x86-64-v4", ["sse2", "sse4.2", "popcnt", "avx", "avx2", "fma", "f16c", "bmi2",
                                "avx512f", "avx512bw", "avx512dq", "avx512vl"]),
}


@dataclass(frozen=True)
class CPUTarget(Target):
    triple: str
    cpu: str
    features: tuple[str, ...]  # enabled features, without '+'

    @staticmethod
    def host() -> "CPUTarget":
        init_llvm()
        feats = llvm.get_host_cpu_features()
        enabled = {k for k, v in feats.items() if v}
        amx = {k for k in enabled if k.startswith("amx")}
        if amx and not _os_permits_amx():
            enabled -= amx
        enabled = tuple(sorted(enabled))
        return CPUTarget(llvm.get_process_triple(), llvm.get_host_cpu_name(), enabled)

    @staticmethod
    def named(cpu: str | None) -> "CPUTarget":
        if cpu in (None, "", "host", "native"):
            return CPUTarget.host()
        if cpu not in PORTABLE_CPUS:
            raise ValidationError(f"unknown --cpu '{cpu}'; choose host or one of {', '.join(PORTABLE_CPUS)}")
        name, feats = PORTABLE_CPUS[cpu]
        return CPUTarget(llvm.get_process_triple(), name, tuple(sorted(feats)))

    @property
    def vector_width(self) -> int:
        """f32 lanes per vector register for the widest ISA the target has."""
        if "avx512f" in self.features:
            return 16
        if "avx" in self.features:
            return 8
        return 4

    @property
    def has_fma(self) -> bool:
        return "fma" in self.features or "avx512f" in self.features

    @property
    def num_vector_registers(self) -> int:
        return 32 if "avx512f" in self.features else 16

    def feature_string(self) -> str:
        return ",".join("+" + f for f in self.features)

    def target_machine(self):
        init_llvm()
        try:
            t = llvm.Target.from_triple(self.triple)
        except RuntimeError as e:
            raise BackendError(f"LLVM has no target for {self.triple}: {e}") from None
        return t.create_target_machine(cpu=self.cpu, features=self.feature_string(),
                                       opt=3, reloc="pic", codemodel="default")

    def missing_on_host(self) -> list[str]:
        """Features this target needs that the running CPU lacks."""
        host = set(CPUTarget.host().features)
        return sorted(f for f in self.features if f not in host and _matters(f))

    @property
    def capabilities(self) -> Capabilities:
        return _backend().capabilities(self)

    @property
    def legalizations(self) -> tuple[str, ...]:
        return _backend().CPU_LEGALIZATIONS

    def pipeline(self, level: OptLevel) -> tuple[str, ...]:
        return _backend().pipeline(level)

    @property
    def passes(self) -> tuple[type[ModulePass], ...]:
        return _backend().PASSES

    def lower(self, module: ModuleOp, options: CompileOptions) -> LoweredModel:
        return _backend().lower(self, module, options)

    def emit(self, lowered: LoweredModel, options: CompileOptions, times: dict[str, float]) -> Emission:
        return _backend().emit(self, lowered, options, times)


def _backend():
    """The compile half, loaded on first use (see the module's docstring)."""
    from pyflame_rt.targets.cpu import backend
    return backend


def _os_permits_amx() -> bool:
    """The OS hands a process the AMX tile state on request only; without it the host has no AMX."""
    from pyflame_rt.runtime import lib
    return lib.pfrt_request_amx() == 0


def _matters(feature: str) -> bool:
    """Instruction-set features (not tuning flags) decide whether code can run."""
    return feature.startswith(("avx", "sse", "fma", "f16c", "bmi", "popcnt", "amx"))
