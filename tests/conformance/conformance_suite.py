"""ONNX backend conformance against PyFlameRT's compiled code: cases, classification, artifact cache.

Every test of onnx's standard backend runner (`onnx.backend.test.BackendTest`: node cases generated
from the onnx package's own case definitions, plus the shipped pytorch-converted, pytorch-operator,
simple and light model-zoo suites) is classified as
  pass  - compiled code matches the reference outputs,
  fail  - it does not (wrong result, error, or an operator we have not implemented yet),
  skip  - it uses an operator, element type or opset we deliberately do not support (reason given).
`ConformanceBackend` caches compiled artifacts on disk, keyed by the model bytes and a digest of the
compiler's sources, so re-runs only compile what changed.
"""
from __future__ import annotations

import hashlib
import multiprocessing
import os
import re
import shutil
import time
import unittest
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import onnx

import pyflame_rt
from pyflame_rt import artifact
from pyflame_rt.backend import PyFlameBackend, PyFlameBackendRep
from pyflame_rt.compiler import compile_model
from pyflame_rt.dtype import DType
from pyflame_rt.errors import DTypeMismatchError
from pyflame_rt.importers.onnx.importer import supported_op_types

REPO = Path(__file__).resolve().parents[2]
CACHE_DIR = Path(os.environ.get("PYFLAME_CONFORMANCE_CACHE", Path.home() / ".cache" / "pyflame-rt" / "conformance"))
# onnx's runner writes the light (model-zoo) test data under $ONNX_HOME; keep it in our cache
os.environ.setdefault("ONNX_HOME", str(CACHE_DIR / "onnx_home"))

# the runner's category names (OnnxBackend<category>Test) -> the names the docs use
CATEGORIES = {"NodeModel": "node", "PyTorchConvertedModel": "pytorch-converted",
              "PyTorchOperatorModel": "pytorch-operator", "SimpleModel": "simple", "RealModel": "light models"}

_REASONS = {
    "training": "training operators: PyFlameRT is an inference compiler",
    "random": "random sampling: not reproducible, not used by inference graphs",
    "string": "string tensors",
    "signal/detection": "image decoding: outside the CNN + transformer scope",
}
_GROUPS = {
    "training": "NegativeLogLikelihoodLoss SoftmaxCrossEntropyLoss Gradient Adam Adagrad Momentum",
    "random": "Bernoulli Multinomial RandomNormal RandomNormalLike RandomUniform RandomUniformLike",
    "string": "StringConcat StringNormalizer StringSplit RegexFullMatch TfIdfVectorizer",
    "signal/detection": "ImageDecoder",
}
# op type -> (group, reason): operators PyFlameRT deliberately does not compile
DELIBERATELY_UNSUPPORTED = {op: (group, _REASONS[group]) for group, ops in _GROUPS.items() for op in ops.split()}
DOMAIN_REASON = "operators outside the default ai.onnx domain (ai.onnx.ml, preview, training)"
DTYPE_REASON = "string and complex tensors: PyFlameRT's element types are numbers and bool"


@dataclass(frozen=True)
class ModelUse:
    """What a model needs: (domain, op type) pairs, ONNX element types, default-domain opset."""

    ops: frozenset[tuple[str, str]]
    elem_types: frozenset[int]
    opset: int
    training_dropout: bool = False  # Dropout given its training_mode input
    training_batchnorm: bool = False  # BatchNormalization with training_mode = 1 (batch statistics)

    @staticmethod
    def of(model: onnx.ModelProto) -> "ModelUse":
        ops, types = set(), set()
        for g in _graphs(model.graph):
            for node in g.node:
                ops.add((node.domain if node.domain != "ai.onnx" else "", node.op_type))
                for a in node.attribute:
                    if a.name == "to" and a.type == onnx.AttributeProto.INT:
                        types.add(a.i)
                    if a.type == onnx.AttributeProto.TENSOR:
                        types.add(a.t.data_type)
            types.update(t.data_type for t in g.initializer)
            for vi in [*g.input, *g.output, *g.value_info]:
                if vi.type.HasField("tensor_type"):
                    types.add(vi.type.tensor_type.elem_type)
        opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)
        return ModelUse(frozenset(ops), frozenset(types - {0}), opset,
                        training_dropout=any(n.op_type == "Dropout" and len(n.input) > 2 and n.input[2]
                                             for g in _graphs(model.graph) for n in g.node),
                        training_batchnorm=any(n.op_type == "BatchNormalization" and any(
                            a.name == "training_mode" and a.i for a in n.attribute)
                            for g in _graphs(model.graph) for n in g.node))

    def skip_reason(self) -> str | None:
        """Why the model is deliberately unsupported, or None."""
        foreign = sorted(f"{d}.{op}" for d, op in self.ops if d)
        if foreign:
            return f"{DOMAIN_REASON}: {', '.join(foreign)}"
        for _, op in sorted(self.ops):
            if op in DELIBERATELY_UNSUPPORTED:
                return f"{op}: {DELIBERATELY_UNSUPPORTED[op][1]}"
        if self.training_dropout:
            return f"Dropout with training_mode: {_REASONS['random']}"
        if self.training_batchnorm:
            return f"BatchNormalization with training_mode: {_REASONS['training']}"
        bad = sorted(onnx.TensorProto.DataType.Name(t) for t in self.elem_types if not _known_dtype(t))
        if bad:
            return f"{DTYPE_REASON}: {', '.join(bad)}"
        return None

    def missing_ops(self) -> list[str]:
        """Default-domain operators with no converter yet."""
        have = set(supported_op_types())
        return sorted(op for d, op in self.ops if not d and op not in have)


def _graphs(g: onnx.GraphProto):
    yield g
    for node in g.node:
        for a in node.attribute:
            if a.type == onnx.AttributeProto.GRAPH:
                yield from _graphs(a.g)
            for sub in a.graphs:
                yield from _graphs(sub)


def _known_dtype(elem_type: int) -> bool:
    try:
        DType.from_onnx(elem_type)
        return True
    except DTypeMismatchError:
        return False


@lru_cache(maxsize=1)
def compiler_digest() -> str:
    """Hash of every source file the compiled code depends on: stale artifacts are never reused."""
    h = hashlib.sha256(pyflame_rt.__version__.encode())
    for folder in ("pyflame_rt", "dialects", "transforms", "targets", "runtime"):
        for p in sorted((REPO / folder).rglob("*")):
            if p.suffix in (".py", ".c", ".h"):
                h.update(str(p.relative_to(REPO)).encode())
                h.update(p.read_bytes())
    return h.hexdigest()[:16]


class ConformanceBackend(PyFlameBackend):
    """PyFlameBackend + deliberate skips (unittest.SkipTest with the reason) + an on-disk artifact cache."""

    last_use: ModelUse | None = None  # what the most recently prepared model needs (for the report)

    @classmethod
    def prepare(cls, model, device: str = "CPU", **kwargs) -> PyFlameBackendRep:
        if not isinstance(model, onnx.ModelProto):
            model = onnx.load_from_string(bytes(model)) if isinstance(model, (bytes, bytearray)) else onnx.load(model)
        use = cls.last_use = ModelUse.of(model)
        reason = use.skip_reason()
        if reason:
            raise unittest.SkipTest(reason)
        return super().prepare(str(cached_artifact(model)), device, num_threads=1, **kwargs)


def artifact_path(model: onnx.ModelProto) -> Path:
    key = hashlib.sha256(model.SerializeToString()).hexdigest()[:24]
    return CACHE_DIR / "artifacts" / compiler_digest() / f"{key}.pfm"


def cached_artifact(model: onnx.ModelProto) -> Path:
    """The compiled `.pfm` for this model and this compiler; compiled on a miss."""
    path = artifact_path(model)
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        artifact.save(compile_model(model), path)
    return path


def backend_test():
    """onnx's standard runner over ConformanceBackend (loading the node cases takes ~15 s)."""
    import onnx.backend.test
    import warnings

    with warnings.catch_warnings():  # the case definitions overflow casts on purpose
        warnings.simplefilter("ignore", RuntimeWarning)
        return onnx.backend.test.BackendTest(ConformanceBackend, __name__)


def model_of(category: str, name: str) -> onnx.ModelProto | None:
    """The model a runner test uses (test names carry the device suffix `_cpu`)."""
    return _models().get((category, re.sub(r"_(cpu|cuda)$", "", name)))


@lru_cache(maxsize=1)
def _models() -> dict[tuple[str, str], onnx.ModelProto]:
    from onnx.backend.test.loader import load_model_tests

    out = {}
    for kind, category in (("node", "NodeModel"), ("pytorch-converted", "PyTorchConvertedModel"),
                           ("pytorch-operator", "PyTorchOperatorModel"), ("simple", "SimpleModel"),
                           ("real", "RealModel")):
        for case in load_model_tests(kind=kind):
            if case.model is not None:
                out[(category, case.name)] = case.model
            elif case.model_dir is not None:
                out[(category, case.name)] = onnx.load(os.path.join(case.model_dir, "model.onnx"))
            elif case.url and case.url.startswith("onnx/backend/test/data/light/"):
                out[(category, case.name)] = onnx.load(
                    Path(onnx.__file__).parent.parent / case.url)
    return out


# ---------------------------------------------------------------------------------- running

@dataclass
class Outcome:
    category: str  # one of CATEGORIES' values
    name: str
    status: str  # pass / fail / skip
    kind: str  # why: "", "deliberate", "not implemented", "unsupported variant", "wrong result", "error"
    reason: str
    seconds: float
    missing_ops: tuple[str, ...] = ()
    supported: bool = False  # every operator implemented, nothing deliberately unsupported


class _Capture(unittest.TestResult):
    """Keeps the exception object (unittest.TestResult only keeps formatted tracebacks)."""

    def __init__(self):
        super().__init__()
        self.exc: BaseException | None = None

    def addError(self, test, err):
        super().addError(test, err)
        self.exc = err[1]

    def addFailure(self, test, err):
        super().addFailure(test, err)
        self.exc = err[1]


_VARIANT_ERRORS = ("UnsupportedOperatorError", "UnsupportedFormatError", "DTypeMismatchError")


def cpu_tests(test_cases: dict[str, type]) -> list[tuple[str, type, str]]:
    """(category, unittest class, test name) of every CPU test; CUDA duplicates are left out."""
    out = []
    for cls_name, cls in sorted(test_cases.items()):
        category = CATEGORIES[cls_name.removeprefix("OnnxBackend").removesuffix("Test")]
        out += [(category, cls, n) for n in sorted(dir(cls)) if n.startswith("test_") and n.endswith("_cpu")]
    return out


def model_of_category(category: str, name: str) -> onnx.ModelProto | None:
    """model_of, by the docs' category name."""
    return model_of({v: k for k, v in CATEGORIES.items()}[category], name)


def model_use(category: str, name: str) -> ModelUse | None:
    model = model_of_category(category, name)
    return ModelUse.of(model) if model is not None else None


def run_test(category: str, cls: type, name: str) -> Outcome:
    ConformanceBackend.last_use = None
    result = _Capture()
    t0 = time.perf_counter()
    cls(name).run(result)
    seconds = round(time.perf_counter() - t0, 3)
    use = ConformanceBackend.last_use or model_use(category, name)
    if result.skipped:
        return Outcome(category, name, "skip", "deliberate", result.skipped[0][1], seconds)
    if result.exc is None:
        return Outcome(category, name, "pass", "", "", seconds)
    missing = tuple(use.missing_ops()) if use else ()
    exc_name = type(result.exc).__name__
    message = " ".join(line.strip() for line in str(result.exc).splitlines() if line.strip())[:300]
    if missing:
        kind, reason = "not implemented", f"operator(s) not implemented: {', '.join(missing)}"
    elif exc_name in _VARIANT_ERRORS:
        kind, reason = "unsupported variant", f"{exc_name}: {message}"
    elif isinstance(result.exc, AssertionError):
        kind, reason = "wrong result", message
    else:
        kind, reason = "error", f"{exc_name}: {message}"
    return Outcome(category, name, "fail", kind, reason, seconds, missing)


def is_supported(use: ModelUse | None) -> bool:
    """The CI subset: nothing deliberately unsupported, every operator implemented."""
    return use is not None and use.skip_reason() is None and not use.missing_ops()


def precompile(models: list[onnx.ModelProto], jobs: int) -> None:
    """Fill the artifact cache with `jobs` spawned processes (compiling is single-threaded Python + LLVM)."""
    todo = [m.SerializeToString() for m in models if not artifact_path(m).exists()]
    if jobs <= 1 or len(todo) < 2:
        return
    ctx = multiprocessing.get_context("spawn")  # no fork: the runtime's worker threads must not be copied
    with ProcessPoolExecutor(jobs, mp_context=ctx) as pool:
        list(pool.map(_compile_quietly, todo, chunksize=4))


def _compile_quietly(data: bytes) -> None:
    try:
        cached_artifact(onnx.load_from_string(data))
    except Exception:  # noqa: BLE001 - the test run compiles it again and reports the error
        pass


def prune_cache(keep: int = 3) -> None:
    """Drop artifacts of all but the `keep` most recently used compiler versions."""
    root = CACHE_DIR / "artifacts"
    if not root.is_dir():
        return
    dirs = sorted((d for d in root.iterdir() if d.is_dir()), key=lambda d: d.stat().st_mtime, reverse=True)
    for d in dirs[keep:]:
        if d.name != compiler_digest():
            shutil.rmtree(d, ignore_errors=True)


# Supported-op tests that do not pass yet (a wrong result, an error or a refused variant): why -> test
# names (without the `_cpu` suffix). The CI test fails on any other failure and reports listed tests
# that pass again (remove them then).
KNOWN_FAILURES: dict[str, str] = {
    "the expected output is made when the cases load, by numpy's FFT in the input's precision (complex64 "
    "since numpy 2.0): its exact zeros hold 2^-19 / 10 = 1.9e-7 of rounding noise, above onnx's atol "
    "1e-7; ours are within 3.6e-15 of 0 (onnxruntime 1.32 gives 1.7e-5 and fails too); numpy 1.x "
    "made them in complex128, which we pass": "test_dft_inverse_opset19 test_dft_inverse",
    "a sequence input whose elements differ in shape (its type names the dim, [N]) is stacked, so its "
    "elements must share a shape; mapped by SequenceMap (or its Loop expansion), a body of run-time "
    "shapes per element would be needed": " ".join(
        f"test_sequence_map_{case}{suffix}" for case in (
            "add_2_sequences", "extract_shapes", "identity_1_sequence_1_tensor", "identity_2_sequences")
        for suffix in ("", "_expanded")),
    "a Loop run at run time appending elements whose shape changes per iteration (x[:i + 1]) to a "
    "sequence it carries, or carrying an optional sequence": "test_loop13_seq test_loop16_seq_none",
}
_KNOWN = {name: why for why, names in KNOWN_FAILURES.items() for name in names.split()}


def known_failure(name: str) -> str | None:
    return _KNOWN.get(name.removesuffix("_cpu"))


def unexpected(outcomes: list[Outcome]) -> list[Outcome]:
    """Supported-op tests that do not pass and are not known failures. A variant refused as
    unsupported counts like a wrong result: a supported operator must not regress to a refusal."""
    return [o for o in outcomes if o.status != "pass" and not known_failure(o.name)]
