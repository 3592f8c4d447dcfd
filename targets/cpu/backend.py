"""The CPU target's compile half: capabilities, graph legalizations and pipeline, lowering, emission.

`CPUTarget` (target.py) answers the Target interface from here; this module loads on its first
use, so that loading an artifact (which needs only the target's description) loads no xDSL.
"""
from __future__ import annotations

from dataclasses import replace

import numpy as np
from xdsl.context import Context
from xdsl.dialects.builtin import ModuleOp

from pyflame_rt.cache import CompileCache, KernelCacheConfig
from pyflame_rt.compiled_model import expr_to_json
from pyflame_rt.dialects import graph, kernel
from pyflame_rt.dialects.weights import require_values
from pyflame_rt.launch_table import encode as encode_launches
from pyflame_rt.errors import ValidationError
from pyflame_rt.options import CompileOptions, OptLevel
from pyflame_rt.targets.cpu.convert_to_llvm import ConvertToLLVM
from pyflame_rt.targets.cpu.kernel_cache import KernelCache, compile_modules, split_kernels
from pyflame_rt.targets.cpu.kernels.gemm_int8 import Int8GemmSpec
from pyflame_rt.targets.cpu.lower_graph import WEIGHT_ALIGN, LoweredModel, lower_graph, read_kernel_module
from pyflame_rt.targets.cpu.lower_graph_pass import LowerGraphToCPU, LowerGraphToKernel, LowerKernelSchedule
from pyflame_rt.targets.cpu.lowerings import FLOAT32_ONLY, PATTERNS
from pyflame_rt.targets.cpu.lowerings.channels_last import supports_nhwc
from pyflame_rt.targets.cpu.plan_memory import PlanMemory
from pyflame_rt.targets.cpu.target import CPUTarget
from pyflame_rt.targets.target import Capabilities, Emission
from pyflame_rt.transforms.pass_manager import LEVEL_PIPELINES

CAPABILITIES = Capabilities(float32_only=FLOAT32_ONLY, channels_last=supports_nhwc)


def capabilities(target: CPUTarget) -> Capabilities:
    """CAPABILITIES, and the integer kernels where the target's features have a dot product for the GEMM."""
    return replace(CAPABILITIES, int8_kernels=Int8GemmSpec.for_features(target.features) is not None)

# graph legalizations the CPU backend needs at every optimization level (the element types its
# kernels take); they run before the optimizer, so its fusions see the legalized ops
CPU_LEGALIZATIONS = ("fold-qdq", "expand-quant", "legalize-half-precision")

PASSES = (LowerGraphToCPU, LowerGraphToKernel, PlanMemory, LowerKernelSchedule, ConvertToLLVM)


def pipeline(level: OptLevel) -> tuple[str, ...]:
    return LEVEL_PIPELINES[OptLevel(level)]


def lower(target: CPUTarget, module: ModuleOp, options: CompileOptions) -> LoweredModel:
    """The kernel level, read back as a LoweredModel; kernels the kernel cache holds are only declared.
    A module already at the kernel level (printed by `pyflame-opt --to kernel`) is planned if it is
    not yet, and read as it is."""
    schedule = kernel.schedule_of(module)
    if schedule is not None:
        if options.checked != (schedule.checked is not None):
            built = "checked" if schedule.checked is not None else "normal"
            raise ValidationError(f"the kernel IR's kernels were generated for a {built} build; "
                                  f"checked={options.checked} needs kernels generated for it")
        if any(op.live is None for op in module.walk() if isinstance(op, kernel.AllocOp)):
            PlanMemory().apply(Context(), module)
        return read_kernel_module(module)
    kernel_cache = _kernel_cache(target, options)
    try:
        return lower_graph(graph.entry_function(module), require_values(module), target, PATTERNS, options.checked,
                           kernel_cache)
    except BaseException:
        if kernel_cache is not None:
            kernel_cache.close()
        raise


def emit(target: CPUTarget, lowered: LoweredModel, options: CompileOptions, times: dict[str, float]) -> Emission:
    """Each generated kernel -> llvm dialect -> LLVM IR -> an object of its own (stored in the kernel
    cache); the weight blob; the launch table and the other header fields of the CPU artifact
    (docs/pfm-format.md)."""
    try:
        compiled = dict(zip(lowered.generated, compile_modules(split_kernels(lowered.module, lowered.generated),
                                                               target, times)))
        if lowered.kernel_cache is not None:
            compiled.update(lowered.kernel_cache.compiled_objects(times))
    finally:
        if lowered.kernel_cache is not None:
            lowered.kernel_cache.close()
    blob, offsets = _weight_blob(lowered)
    kernels = sorted([*compiled, *lowered.cached])
    weight_extents = [(offset, arr.nbytes) for offset, (_, arr) in zip(offsets, lowered.weights)]
    header = {
        "target": {"triple": target.triple, "cpu": target.cpu, "features": list(target.features)},
        "inputs": _io_json(lowered.inputs),
        "outputs": _io_json(lowered.outputs),
        "symbols": lowered.symbols,
        **({"value_dims": [v.to_json() for v in lowered.value_dims]} if lowered.value_dims else {}),
        **({"computed_dims": [c.to_json() for c in lowered.computed_dims]} if lowered.computed_dims else {}),
        **({"loops": [loop.to_json() for loop in lowered.loops]} if lowered.loops else {}),
        "buffers": [[expr_to_json(b.nbytes), b.first, b.last] for b in lowered.buffers],
        "op_summary": lowered.op_summary,
        "checks": lowered.checks,
        "kernel_count": lowered.kernel_count,
        "kernels": kernels,
        "kernel_cache": {"hits": sorted(lowered.cached), "compiled": sorted(compiled)},
        "step_ops": lowered.step_ops,
        "launches": encode_launches(lowered.steps, kernels, weight_extents),
        "checked": lowered.checked,
        **({"step_fields": lowered.step_fields} if lowered.checked else {}),
    }
    return Emission(header, blob, (*lowered.cached.values(), *compiled.values()))


def _kernel_cache(target: CPUTarget, options: CompileOptions) -> KernelCache | None:
    config = (options.kernel_cache or KernelCacheConfig()).validate()
    return KernelCache(CompileCache(config), target, options.checked) if config.enabled else None


def _io_json(infos) -> list[dict]:
    return [{"name": t.name, "shape": [str(d) for d in t.shape], "dtype": t.dtype.value} for t in infos]


def _weight_blob(lowered: LoweredModel) -> tuple[np.ndarray, list[int]]:
    offsets, size = [], 0
    for _, arr in lowered.weights:
        size = -(-size // WEIGHT_ALIGN) * WEIGHT_ALIGN
        offsets.append(size)
        size += arr.nbytes
    blob = np.zeros(size, dtype=np.uint8)
    for off, (_, arr) in zip(offsets, lowered.weights):
        blob[off:off + arr.nbytes] = np.ascontiguousarray(arr).reshape(-1).view(np.uint8)
    return blob, offsets
