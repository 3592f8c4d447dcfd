"""The compile driver: import -> graph IR -> the target's legalizations and pass pipeline -> the
target's lowering and emission (pyflame_rt.targets.target), whichever target it is given."""
from __future__ import annotations

import gc
import os
import threading
import time
from contextlib import contextmanager
from dataclasses import replace

from xdsl.utils.exceptions import ParseError, VerifyException

from pyflame_rt.compiled_model import CompiledModel
from pyflame_rt.dialects import graph, kernel
from pyflame_rt.dialects.assumptions import Assumption, collect
from pyflame_rt.dialects.weights import parse_module
from pyflame_rt.errors import InvalidModelError, ValidationError
from pyflame_rt.importers.onnx import ImportResult, from_onnx
from pyflame_rt.options import CompileOptions, OptLevel
from pyflame_rt.quantization.calibration import GraphQuantInfo
from pyflame_rt.quantization.quantizer import Quantizer
from pyflame_rt.targets.cpu.target import CPUTarget
from pyflame_rt.targets.target import Target
from pyflame_rt.transforms.pass_manager import PassManager
from pyflame_rt.version import __version__


_DRIVER_STAGES = ("import", "quantize", "optimize", "lower-graph")

# A compile allocates millions of short-lived IR objects; at the default young-generation threshold
# (700) the collector traverses them, and every 100 young collections the whole heap, far more often
# than the garbage they leave needs. Compiles raise it, the last one to finish restores it; the
# compile workers inherit it.
_COMPILE_GC_THRESHOLD = 100_000
_gc_lock = threading.Lock()
_gc_compiles = 0
_gc_saved: tuple[int, int, int] = gc.get_threshold()


@contextmanager
def _fewer_collections():
    global _gc_compiles, _gc_saved
    with _gc_lock:
        if _gc_compiles == 0:
            _gc_saved = gc.get_threshold()
            gc.set_threshold(max(_COMPILE_GC_THRESHOLD, _gc_saved[0]), *_gc_saved[1:])
        _gc_compiles += 1
    try:
        yield
    finally:
        with _gc_lock:
            _gc_compiles -= 1
            if _gc_compiles == 0:
                gc.set_threshold(*_gc_saved)


@_fewer_collections()
def compile_model(model, options: CompileOptions | None = None, log=None,
                  target: Target | None = None, calibration: GraphQuantInfo | None = None) -> CompiledModel:
    """Compile an ONNX model (path, bytes or ModelProto), a graph- or kernel-level .mlir file with its
    weights (`pyflame-opt --print-weights`, `--to kernel`) or an ImportResult for `target` (by default
    the CPU target of `options.cpu`). Kernel-level IR was lowered when it was printed: the graph
    stages are skipped and it is emitted as it is. With `options.quantization` the imported graph is
    quantized first (`calibration`: a Calibrator's result for that graph), the report in the header."""
    options = options or CompileOptions()
    if not isinstance(options, CompileOptions):
        raise ValidationError(f"options must be a CompileOptions, got {type(options).__name__}")
    if target is not None and not isinstance(target, Target):
        raise ValidationError(f"target must be a Target, got {type(target).__name__}")
    target = target or CPUTarget.named(options.cpu)
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
        at_kernel_level = kernel.schedule_of(module) is not None
        if not at_kernel_level:
            graph.infer_value_shapes(graph.entry_function(module))
    lap("import")
    quantization = _quantize(module, imported.opset, options, calibration, at_kernel_level)
    if quantization is not None:
        lap("quantize")
    passes = [] if at_kernel_level else [
        PassManager(target.legalizations, target=target).run(module),
        PassManager.create_default(options.opt_level, target=target, verbose=options.verbose_optimization).run(module)]
    lap("optimize")
    lowered = target.lower(module, options)
    lap("lower-graph")
    emitted = target.emit(lowered, options, times)
    if log:  # the target's own stages
        for stage in [s for s in times if s not in _DRIVER_STAGES]:
            log(f"{stage}: {times[stage]:.0f} ms")
    header = {
        "compiler_version": __version__,
        **emitted.header,
        "model": {"producer": imported.producer, "producer_version": imported.producer_version,
                  "graph_name": imported.graph_name,
                  "opset": imported.opset, "metadata": imported.metadata},
        "assumptions": [a.to_json() for a in _checkable(model_assumptions + lowered.assumptions, lowered.symbols)],
        "parameter_count": imported.parameter_count,
        **({"structured_io": imported.structured_io} if imported.structured_io else {}),
        **({"optimization": _optimization_json(options, *passes)} if passes else {}),
        **({"quantization": _stored(quantization, emitted.weights.nbytes)} if quantization is not None else {}),
        "compile_ms": times,
    }
    return CompiledModel(header, emitted.weights, emitted.code)


def _quantize(module, opset: int, options: CompileOptions, calibration: GraphQuantInfo | None, at_kernel_level: bool):
    """Quantize the imported graph in place as `options.quantization` says; the report, or None."""
    if options.quantization is None:
        return None
    if at_kernel_level:
        raise ValidationError("kernel-level IR is already lowered: quantize the ONNX model or graph-level IR")
    return Quantizer(options.quantization).apply(module, opset, calibration)


def _stored(report, weight_bytes: int) -> dict:
    return replace(report, stored_size_mb=weight_bytes / (1 << 20)).to_json()


def _optimization_json(options: CompileOptions, legalized, optimized) -> dict:
    return {"level": OptLevel(options.opt_level).name,
            "nodes_before": legalized.stats.nodes_before,
            "nodes_after": optimized.stats.nodes_after,
            "passes": {p.name: p.stats.summary(node_counts=False) for p in [*legalized.passes, *optimized.passes]}}


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
