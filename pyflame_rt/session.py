"""`InferenceSession`: the ONNX Runtime-compatible API over compiled artifacts.

`.pfm` files are read, verified and their object code loaded (never recompiled);
ONNX models (path, bytes, ModelProto) are compiled on first open and kept in the
compile cache, so the next open of the same model is a cache hit. `run` may be
called from many threads at once on one session.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from pyflame_rt import artifact, files, logs, signing
from pyflame_rt.cache import LOADER, CompileCache, global_cache_config
from pyflame_rt.compiled_model import CompiledModel
from pyflame_rt.dialects.symbolic import dim_to_public
from pyflame_rt.errors import InputError, InvalidModelError, UnsupportedFormatError, ValidationError
from pyflame_rt.executable import Executable
from pyflame_rt.graph_builder import Graph
from pyflame_rt.options import RunOptions, SessionOptions
from pyflame_rt.profiling import Profiler
from pyflame_rt.runtime import now_ns
from pyflame_rt.structured_io import StructuredIO
from pyflame_rt.tensor import Tensor

PROVIDERS = ["PyFlameCPUExecutionProvider"]
_ALIASES = {"CPUExecutionProvider", "PyFlameCPUExecutionProvider", "cpu"}


@dataclass(frozen=True)
class NodeArg:
    """What get_inputs()/get_outputs() return: name, shape (int | str per dim), type."""

    name: str
    shape: list
    type: str


@dataclass(frozen=True)
class ModelMetadata:
    """onnxruntime's ModelMetadata fields, plus the guide's producer_version."""

    producer_name: str
    graph_name: str
    domain: str
    description: str
    version: int
    custom_metadata_map: dict
    producer_version: str = ""
    graph_description: str = ""


class InferenceSession:
    """Open a compiled `.pfm` artifact, an ONNX model (path, bytes, ModelProto: compiled on first
    open, then served from the compile cache), a built `Graph` (compiled as its ONNX model) or an
    `ImportResult` from the importer."""

    def __init__(self, path_or_graph, sess_options: SessionOptions | None = None,
                 providers: list | None = None, provider_options: list | None = None, *,
                 options: SessionOptions | None = None):
        """`options` is the guide's name for onnxruntime's `sess_options`; give one of them."""
        if options is not None:
            if sess_options is not None:
                raise TypeError("give the session options once: sess_options or options, not both")
            sess_options = options
        if sess_options is not None and not isinstance(sess_options, SessionOptions):
            raise ValidationError(f"sess_options must be a SessionOptions, got {type(sess_options).__name__}")
        self._options = (sess_options or SessionOptions()).validated()
        _check_providers(providers, provider_options)
        logs.set_level(self._options.log_severity_level)
        self._profiler = Profiler(self._options.profile_file_prefix) if self._options.enable_profiling else None
        start = now_ns()
        self._compiled, self.cache_hit = _open(path_or_graph, self._options)
        self._exec = Executable(self._compiled, self._options.worker_threads())
        logs.LOGGER.info("session opened %s in %.1f ms%s", _describe(path_or_graph), (now_ns() - start) / 1e6,
                         " (compile cache hit)" if self.cache_hit else "")
        logs.LOGGER.debug("session: %d kernels, %d launches, worker threads: %s", len(self._exec.kernel_names),
                          len(self._exec.step_ops), self._options.worker_threads() or "one per core")
        if self._profiler:
            self._profiler.add("session_initialization", "Session", start, now_ns(), {"cache_hit": self.cache_hit})
        self._structured = (StructuredIO(self._compiled.header["structured_io"], self._exec.inputs, self._exec.outputs)
                            if "structured_io" in self._compiled.header else None)
        if self._structured is None:
            self._input_names = [i.name for i in self._exec.inputs]
            self._output_index = {o.name: j for j, o in enumerate(self._exec.outputs)}
        else:
            self._input_names = [e.name for e in self._structured.inputs]
            self._output_index = {e.name: j for j, e in enumerate(self._structured.outputs)}

    # ------------------------------------------------------------ metadata
    def get_inputs(self) -> list[NodeArg]:
        if self._structured is not None:
            return _node_args(self._structured.inputs, self._exec.inputs)
        return [NodeArg(i.name, [dim_to_public(d) for d in i.shape], i.dtype.ort_type) for i in self._exec.inputs]

    def get_outputs(self) -> list[NodeArg]:
        if self._structured is not None:
            return _node_args(self._structured.outputs, self._exec.outputs)
        return [NodeArg(o.name, [dim_to_public(d) for d in o.shape], o.dtype.ort_type) for o in self._exec.outputs]

    def get_modelmeta(self) -> ModelMetadata:
        m = self._compiled.header["model"]
        return ModelMetadata(m.get("producer", ""), m.get("graph_name", ""), "", "", 0,
                             dict(m.get("metadata", {})), m.get("producer_version", ""))

    def get_providers(self) -> list[str]:
        return list(PROVIDERS)

    def get_session_options(self) -> SessionOptions:
        return self._options

    @property
    def header(self) -> dict:
        return self._compiled.header

    def is_quantized(self) -> bool:
        """Whether the model was compiled in a reduced-precision mode (docs/quantization.md)."""
        return "quantization" in self._compiled.header

    def quantization_report(self):
        """The `QuantizationReport` the compile stored in the artifact, or None."""
        if not self.is_quantized():
            return None
        from pyflame_rt.quantization.report import QuantizationReport

        return QuantizationReport.from_json(self._compiled.header["quantization"])

    # ----------------------------------------------------------------- run
    def run(self, output_names, input_feed: dict, run_options: RunOptions | None = None) -> list[np.ndarray]:
        """Thread-safe. run_options.timeout_ms > 0 raises RunTimeoutError past the deadline."""
        if output_names is not None:
            if not isinstance(output_names, (list, tuple)):
                raise InputError(f"output_names must be a list of names or None, not {type(output_names).__name__}")
            for name in output_names:
                if name not in self._output_index:
                    raise InputError(f"unknown output name '{name}'; the model's outputs are {list(self._output_index)}")
        outs = self._exec.run(self._feeds(input_feed), _timeout_ms(run_options), self._profiler)
        if self._structured is not None:
            outs = self._structured.results(outs)
        if output_names is None:
            return outs
        return [outs[self._output_index[name]] for name in output_names]

    def run_with_outputs(self, input_feed: dict, outputs: list,
                         run_options: RunOptions | None = None) -> list[np.ndarray]:
        """run, writing into preallocated outputs (IO binding): `outputs` holds per model output None
        (allocated) or a writable C-contiguous array of its shape and dtype that overlaps no feed and no
        other output. Returns every output. StreamingInference keeps its key / value cache this way.
        Models with sequence or optional outputs have no IO binding."""
        if self._structured is not None:
            raise InputError("run_with_outputs: a model with sequence or optional inputs / outputs takes no "
                             "preallocated outputs; use run")
        return self._exec.run(self._feeds(input_feed), _timeout_ms(run_options), self._profiler, outputs)

    def end_profiling(self) -> str:
        """Write the Chrome-trace profile and return its file name ("" when profiling is off)."""
        if self._profiler is None:
            return ""
        path = self._profiler.write()
        self._profiler = None
        return path

    def _feeds(self, input_feed) -> list[np.ndarray]:
        if not isinstance(input_feed, dict):
            raise InputError(f"input_feed must be a dict of name -> array, got {type(input_feed).__name__}")
        if len(input_feed) != len(self._input_names) or not all(k in input_feed for k in self._input_names):
            unknown = [k for k in input_feed if k not in self._input_names]
            if unknown:
                raise InputError(f"unknown input name(s) {unknown}; the model's inputs are {self._input_names}")
            missing = [k for k in self._input_names if k not in input_feed]
            raise InputError(f"missing input(s) {missing}; the model's inputs are {self._input_names}")
        if self._structured is not None:
            input_feed = self._structured.feeds(input_feed)
        arrays = []
        for spec in self._exec.inputs:
            v = input_feed[spec.name]
            if type(v) is not np.ndarray or not v.flags.c_contiguous:  # the common case needs no conversion
                if isinstance(v, Tensor):
                    v = v.numpy()
                if not isinstance(v, np.ndarray):
                    raise InputError(f"input '{spec.name}' must be a numpy array or Tensor, got {type(v).__name__}")
                try:
                    v = np.asarray(v, order="C")  # keeps 0-d feeds 0-d
                except MemoryError:  # e.g. a broadcast view of a huge shape
                    raise InputError(f"input '{spec.name}' of shape {list(v.shape)} does not fit in memory "
                                     f"as a contiguous array") from None
            arrays.append(v)
        return arrays


def _node_args(entries, specs) -> list[NodeArg]:
    """A tensor's NodeArg gives its shape; a sequence's or optional's has none (onnxruntime: [])."""
    shapes = {s.name: [dim_to_public(d) for d in s.shape] for s in specs}
    return [NodeArg(e.name, shapes[e.layout["tensor"]] if "tensor" in e.layout else [], e.type) for e in entries]


def from_onnx(model, options: SessionOptions | None = None, providers: list | None = None) -> InferenceSession:
    """The guide's quick import: a session over an ONNX model (path, bytes or ModelProto),
    compiled on first open. The importer itself is `pyflame_rt.importers.onnx.from_onnx`."""
    if isinstance(model, (str, os.PathLike)) and artifact.is_artifact(os.fspath(model)):
        raise UnsupportedFormatError(f"{os.fspath(model)} is a compiled .pfm artifact, not an ONNX model: "
                                     f"open it with InferenceSession")
    return InferenceSession(model, options=options, providers=providers)


def _timeout_ms(run_options: RunOptions | None) -> int:
    if run_options is not None and not isinstance(run_options, RunOptions):
        raise ValidationError(f"run_options must be a RunOptions, got {type(run_options).__name__}")
    return run_options.validate().timeout_ms if run_options else 0


def _describe(model) -> str:
    return os.fspath(model) if isinstance(model, (str, os.PathLike)) else f"a {type(model).__name__}"


def _check_providers(providers, provider_options) -> None:
    """None, or a list of provider names / (name, options) tuples naming our CPU provider;
    provider_options: None or one dict per provider. The CPU provider takes no options, so any
    option given is refused rather than ignored."""
    if providers is None:
        providers = []
    if not isinstance(providers, (list, tuple)):
        raise ValidationError(f"providers must be a list, got {type(providers).__name__}")
    if provider_options is not None:
        if not isinstance(provider_options, (list, tuple)) or len(provider_options) != len(providers):
            raise ValidationError("provider_options must be a list with one dict per entry of providers")
    for j, p in enumerate(providers):
        name, opts = p if isinstance(p, tuple) and len(p) == 2 else (p, {})
        if not isinstance(name, str) or name not in _ALIASES:
            raise ValidationError(f"execution provider {name!r} is not available; use {PROVIDERS}")
        for extra in (opts, provider_options[j] if provider_options is not None else {}):
            if not isinstance(extra, dict):
                raise ValidationError(f"options of provider {name!r} must be a dict, got {type(extra).__name__}")
            if extra:
                raise ValidationError(f"provider {name!r} takes no options, got {sorted(extra)}")


def _calibrate(imported, options: SessionOptions):
    """Calibration statistics of `imported` over options.calibration_batches feeds (by default the
    config's calibration_samples)."""
    from pyflame_rt.quantization.calibration import Calibrator

    calibrator = Calibrator(imported, options.quantization)
    for _ in range(options.calibration_batches or options.quantization.calibration_samples):
        calibrator.observe(options.calibration_data())
    return calibrator.compute_quant_params()


def _check_artifact_quantization(path: str, compiled: CompiledModel, options: SessionOptions) -> None:
    """A .pfm is not recompiled: one opened with options.quantization must have been compiled so."""
    if options.quantization is None:
        return
    mode = compiled.header.get("quantization", {}).get("mode")
    wanted = options.quantization.mode.name
    if mode != wanted:
        raise ValidationError(f"{path} was compiled {'without quantization' if mode is None else 'in mode ' + mode}, "
                              f"not {wanted}: a .pfm is not recompiled; compile the ONNX model with "
                              f"`pyflame-rt compile --quantize` or open that model with these options")


def _open(model, options: SessionOptions) -> tuple[CompiledModel, bool]:
    """(compiled model, whether it came from the compile cache). A `.pfm` path is read, verified
    (signature too with a signing key) and loaded without importing the compiler side (xDSL,
    onnx): only models to compile need it. Paths must be regular files."""
    if isinstance(model, (str, os.PathLike)):
        model = os.fspath(model)
        if artifact.is_artifact(model):
            compiled = LOADER.load(model, signing.configured_key(options.sign_key_file))
            _check_artifact_quantization(model, compiled, options)
            return compiled, False
    if isinstance(model, Graph):
        model = model.to_onnx()
    import onnx

    from pyflame_rt.compiler import CompileOptions, compile_model
    from pyflame_rt.importers.onnx import ImportResult, external_data
    from pyflame_rt.importers.onnx import from_onnx as import_onnx

    copts = CompileOptions(cpu=options.cpu, opt_level=options.optimization_level,
                           verbose_optimization=options.verbose_optimization, checked=options.checked,
                           quantization=options.quantization)
    if options.calibration_data is not None:  # calibrated: compiled for these feeds, not cached
        imported = model if isinstance(model, ImportResult) else import_onnx(model)
        return compile_model(imported, copts, calibration=_calibrate(imported, options)), False
    if isinstance(model, ImportResult):
        return compile_model(model, copts), False
    if isinstance(model, (bytes, bytearray)):
        if bytes(model[:4]) == artifact.MAGIC:
            raise InvalidModelError("load .pfm artifacts from a file path")
        model = model_bytes = bytes(model)
    elif isinstance(model, onnx.ModelProto):
        model_bytes = model.SerializeToString()
    elif isinstance(model, str):
        model_bytes = files.read_regular(model, "model file")
    else:
        raise InvalidModelError(f"cannot open a {type(model).__name__}: pass a path, ONNX bytes, a ModelProto, "
                                f"a Graph or an ImportResult")
    config = (options.cache or global_cache_config()).validate()
    if not config.enabled:
        return compile_model(model, copts), False
    base_dir = os.path.dirname(model) if isinstance(model, str) else ""
    external = external_data.digests(model if isinstance(model, onnx.ModelProto) else model_bytes, base_dir)
    if external is None:  # no key without every external-data file: the importer reports the missing one
        return compile_model(model, copts), False
    result = CompileCache(config).open(model, model_bytes, copts, compile_model, external)
    return result.compiled, result.hit
