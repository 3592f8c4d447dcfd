"""The CPU target's compile half: capabilities, graph legalizations and pipeline, lowering, emission.

`CPUTarget` (target.py) answers the Target interface from here; this module loads on its first
use, so that loading an artifact (which needs only the target's description) loads no xDSL.
"""
from __future__ import annotations

from typing import Callable

import numpy as np
from xdsl.context import Context
from xdsl.dialects import func
from xdsl.dialects.builtin import ModuleOp

from pyflame_rt.compiled_model import expr_to_json
from pyflame_rt.dialects import graph
from pyflame_rt.dialects.weights import WeightTable
from pyflame_rt.errors import BackendError, PyFlameRTError
from pyflame_rt.options import OptLevel
from pyflame_rt.targets.cpu.convert_to_llvm import ConvertToLLVM
from pyflame_rt.targets.cpu.llvm_compile import compile_object, to_llvm_ir
from pyflame_rt.targets.cpu.lower_graph import WEIGHT_ALIGN, LoweredModel, lower_graph
from pyflame_rt.targets.cpu.lower_graph_pass import LowerGraphToCPU
from pyflame_rt.targets.cpu.lowerings import FLOAT32_ONLY
from pyflame_rt.targets.cpu.lowerings.channels_last import supports_nhwc
from pyflame_rt.targets.cpu.native_object import ENTRY
from pyflame_rt.targets.cpu.target import CPUTarget
from pyflame_rt.targets.target import Capabilities, Emission
from pyflame_rt.transforms.pass_manager import LEVEL_PIPELINES

CAPABILITIES = Capabilities(float32_only=frozenset(FLOAT32_ONLY), channels_last=supports_nhwc)

# graph legalizations the CPU backend needs at every optimization level (the element types its
# kernels take); they run before the optimizer, so its fusions see the legalized ops
CPU_LEGALIZATIONS = ("legalize-half-precision",)

PASSES = (LowerGraphToCPU, ConvertToLLVM)


def pipeline(level: OptLevel) -> tuple[str, ...]:
    return LEVEL_PIPELINES[OptLevel(level)]


def lower(target: CPUTarget, module: ModuleOp, checked: bool) -> LoweredModel:
    return lower_graph(graph.entry_function(module), WeightTable.of(module), target, checked)


def emit(target: CPUTarget, lowered: LoweredModel, lap: Callable[[str], None]) -> Emission:
    """The kernel-level module -> llvm dialect -> LLVM IR -> one object; the weight blob; the
    header fields of the CPU artifact (docs/pfm-format.md)."""
    kernels = _kernel_names(lowered)
    try:
        ConvertToLLVM().apply(Context(), lowered.module)
        lowered.module.verify()
    except PyFlameRTError:
        raise
    except Exception as e:
        raise BackendError(f"conversion to the llvm dialect failed: {e}") from e
    lap("convert-to-llvm")
    ir_text = to_llvm_ir(lowered.module, target)
    lap("translate")
    obj = compile_object(ir_text, target)
    lap("llvm-codegen")
    blob, offsets = _weight_blob(lowered)
    header = {
        "target": {"triple": target.triple, "cpu": target.cpu, "features": list(target.features)},
        "inputs": _io_json(lowered.inputs),
        "outputs": _io_json(lowered.outputs),
        "symbols": lowered.symbols,
        "buffers": [[expr_to_json(b.nbytes), b.first, b.last] for b in lowered.buffers],
        "op_summary": lowered.op_summary,
        "checks": lowered.checks,
        "kernel_count": lowered.kernel_count,
        "kernels": kernels,
        "step_ops": lowered.step_ops,
        "checked": lowered.checked,
        **({"step_fields": lowered.step_fields} if lowered.checked else {}),
    }
    return Emission(header, blob, obj)


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
        blob[off:off + arr.nbytes] = np.frombuffer(np.ascontiguousarray(arr).tobytes(), dtype=np.uint8)
    return blob, offsets


def _kernel_names(lowered: LoweredModel) -> list[str]:
    """Kernel symbols in the object code (profiles name kernel calls with them): every definition
    but the entry point and its parts (`ENTRY`, `ENTRY_part<k>`)."""
    return sorted(op.sym_name.data for op in lowered.module.ops
                  if isinstance(op, func.FuncOp) and not op.is_declaration and not op.sym_name.data.startswith(ENTRY))
