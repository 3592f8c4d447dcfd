"""The compile pipeline: import -> graph IR -> kernel level -> llvm -> native object."""
from __future__ import annotations

import os
import time
from dataclasses import dataclass, field

import numpy as np
from xdsl.context import Context
from xdsl.dialects import func
from xdsl.utils.exceptions import ParseError, VerifyException

from pyflame_rt import __version__
from pyflame_rt.compiled_model import CompiledModel, expr_to_json
from pyflame_rt.dialects import graph
from pyflame_rt.dialects.assumptions import Assumption, collect
from pyflame_rt.dialects.weights import parse_module, require_values
from pyflame_rt.errors import BackendError, InvalidModelError, PyFlameRTError, ValidationError
from pyflame_rt.import_module import ImportOptions, ImportResult, from_onnx
from pyflame_rt.options import OptLevel
from pyflame_rt.targets.cpu.convert_to_llvm import ConvertToLLVM
from pyflame_rt.targets.cpu.llvm_compile import compile_object, to_llvm_ir
from pyflame_rt.targets.cpu.native_object import ENTRY
from pyflame_rt.targets.cpu.lower_graph import LoweredModel, lower_graph
from pyflame_rt.targets.cpu.target import CPUTarget
from pyflame_rt.transforms.pass_manager import PassManager


# graph legalizations the CPU backend needs at every optimization level (the element types its
# kernels take); they run before the optimizer, so its fusions see the legalized ops
CPU_LEGALIZATIONS = ("legalize-half-precision",)


@dataclass
class CompileOptions:
    cpu: str | None = None  # None/"host" or a portable level such as "x86-64-v3"
    import_options: ImportOptions = field(default_factory=ImportOptions)
    opt_level: OptLevel = OptLevel.EXTENDED  # graph optimizer pipeline (pyflame_rt.opt)
    verbose_optimization: bool = False       # log every pass's statistics
    checked: bool = False  # bounds-check every load and store (MemoryAccessError), docs/checked-build.md


def _io_json(infos) -> list[dict]:
    return [{"name": t.name, "shape": [str(d) for d in t.shape], "dtype": t.dtype.value} for t in infos]


def compile_model(model, options: CompileOptions | None = None, log=None) -> CompiledModel:
    """Compile an ONNX model (path, bytes or ModelProto), a graph-level .mlir file with its weights
    (`pyflame-opt --print-weights`) or an ImportResult."""
    options = options or CompileOptions()
    if not isinstance(options, CompileOptions):
        raise ValidationError(f"options must be a CompileOptions, got {type(options).__name__}")
    target = CPUTarget.named(options.cpu)
    times: dict[str, float] = {}
    t = time.perf_counter()

    def lap(stage: str):
        nonlocal t
        now = time.perf_counter()
        times[stage] = round((now - t) * 1e3, 2)
        t = now
        if log:
            log(f"{stage}: {times[stage]:.0f} ms")

    # the model's own dim requirements, stated by the importer's converters and the imported ops before
    # passes rewrite some of them away (a BatchNorm folded into a Mul / Add no longer says its
    # parameters must have C elements; a Reshape that keeps the shape is imported as no op)
    if isinstance(model, (str, os.PathLike)) and os.fspath(model).endswith(".mlir"):
        model = _read_mlir(os.fspath(model))
    with collect() as model_assumptions:
        if isinstance(model, ImportResult):  # the caller's module stays as it is
            imported = model
            module = model.module.clone()
            _verify_given_ir(module)
        else:
            imported = from_onnx(model, options.import_options)
            module = imported.module
        graph.infer_value_shapes(graph.entry_function(module))
    lap("import")
    legalized = PassManager(CPU_LEGALIZATIONS).run(module)
    optimized = PassManager.create_default(options.opt_level, verbose=options.verbose_optimization).run(module)
    lap("optimize")
    lowered = lower_graph(graph.entry_function(module), require_values(module), target, options.checked)
    kernels = _kernel_names(lowered)
    lap("lower-graph")
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
        "compiler_version": __version__,
        "target": {"triple": target.triple, "cpu": target.cpu, "features": list(target.features)},
        "model": {"producer": imported.producer, "graph_name": imported.graph_name,
                  "opset": imported.opset, "metadata": imported.metadata},
        "inputs": _io_json(lowered.inputs),
        "outputs": _io_json(lowered.outputs),
        "symbols": lowered.symbols,
        "buffers": [[expr_to_json(b.nbytes), b.first, b.last] for b in lowered.buffers],
        "op_summary": lowered.op_summary,
        "checks": lowered.checks,
        "assumptions": [a.to_json() for a in _checkable(model_assumptions + lowered.assumptions, lowered.symbols)],
        "kernel_count": lowered.kernel_count,
        "kernels": kernels,
        "step_ops": lowered.step_ops,
        "checked": lowered.checked,
        **({"step_fields": lowered.step_fields} if lowered.checked else {}),
        "parameter_count": imported.parameter_count,
        "optimization": {"level": OptLevel(options.opt_level).name,
                         "nodes_before": legalized.stats.nodes_before,
                         "nodes_after": optimized.stats.nodes_after,
                         "passes": {p.name: p.stats.summary(node_counts=False)
                                    for p in [*legalized.passes, *optimized.passes]}},
        "compile_ms": times,
    }
    return CompiledModel(header, blob, obj)


def _read_mlir(path: str) -> ImportResult:
    from pyflame_rt.opt_tool import make_context  # the context of every dialect pyflame-opt reads

    try:
        with open(path) as f:
            text = f.read()
    except OSError as e:
        raise InvalidModelError(f"cannot read {path}: {e.strerror}") from None
    try:
        return ImportResult(module=parse_module(make_context(), text, path), opset=0)
    except ParseError as e:
        raise InvalidModelError(f"{path} does not parse: {e}") from None


def _verify_given_ir(module) -> None:
    """IR the caller built or edited is checked once before any pass or lowering relies on it."""
    try:
        module.verify()
    except VerifyException as e:
        first_line = next(iter(str(e).splitlines()), "") or type(e).__name__
        raise InvalidModelError(f"the given IR does not verify: {first_line}") from None


def _checkable(assumptions: list[Assumption], symbols: list[str]) -> list[Assumption]:
    """The distinct requirements over dims a run binds, the first statement of each (an importer's,
    naming the ONNX op, before the graph op's); an input dim no kernel uses binds nothing and sizes
    nothing: a requirement on it guards no memory."""
    first = {}
    for a in assumptions:
        if a.symbols() <= set(symbols):
            first.setdefault((a.relation, a.lhs, a.rhs), a)
    return list(first.values())


def _weight_blob(lowered: LoweredModel) -> tuple[np.ndarray, list[int]]:
    from pyflame_rt.targets.cpu.lower_graph import WEIGHT_ALIGN
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
