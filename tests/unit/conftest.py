"""Shared helpers: build small ONNX models with onnx.helper, compare against onnxruntime."""
from __future__ import annotations

import importlib.util
import json
import os
from functools import cache
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper


ROOT = Path(__file__).resolve().parents[2]


@cache
def repo_module(path: str):
    """A repository module outside the package (benchmarks/models.py, examples/build_mlp.py), by its
    path from the repository root; loaded once per process."""
    spec = importlib.util.spec_from_file_location(path.removesuffix(".py").replace("/", "_"), ROOT / path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _value_info(spec):
    name, shape, *dtype = spec
    elem = helper.np_dtype_to_tensor_dtype(np.dtype(dtype[0])) if dtype else TensorProto.FLOAT
    return helper.make_tensor_value_info(name, elem, shape)


def make_model(nodes, inputs, outputs, initializers=(), opset=17, name="test"):
    """inputs/outputs: (name, shape) pairs of float tensors, or (name, shape, numpy dtype);
    shape items may be str (dynamic)."""
    graph = helper.make_graph(
        nodes, name, [_value_info(i) for i in inputs], [_value_info(o) for o in outputs],
        [numpy_helper.from_array(np.asarray(v), k) for k, v in dict(initializers).items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    return model


def ort_run(model: onnx.ModelProto, feeds: dict) -> list[np.ndarray]:
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    return ort.InferenceSession(model.SerializeToString(), opts,
                                providers=["CPUExecutionProvider"]).run(None, feeds)


def profiled_kernels(sess) -> set[str]:
    """Kernel symbols of a profiling session's runs so far (ends the profile and deletes its file)."""
    path = sess.end_profiling()
    with open(path) as f:
        events = json.load(f)
    os.remove(path)
    events = events if isinstance(events, list) else events["traceEvents"]
    return {e["args"]["kernel"] for e in events if "kernel" in e.get("args", {})}


def kernels_run(sess, feed) -> set[str]:
    """Kernel symbols of one profiled run."""
    sess.run(None, feed)
    return profiled_kernels(sess)


def assert_close(actual, expected, rtol=1e-4):
    """Relative to the tensor's magnitude (robust to near-zero elements)."""
    actual, expected = np.asarray(actual), np.asarray(expected)
    assert actual.shape == expected.shape, (actual.shape, expected.shape)
    scale = max(float(np.abs(expected).max()), 1e-6)
    err = float(np.abs(actual - expected).max()) / scale
    assert err <= rtol, f"max relative error {err:.3g} > {rtol}"


@pytest.fixture(autouse=True, scope="session")
def _private_compile_cache(tmp_path_factory):
    """Sessions opened on .onnx models cache their artifacts here, not in the user's home."""
    mp = pytest.MonkeyPatch()
    mp.setenv("PYFLAME_RT_CACHE_DIR", str(tmp_path_factory.mktemp("compile-cache")))
    yield
    mp.undo()


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


@pytest.fixture(scope="session")
def benchmark_onnx(tmp_path_factory):
    """name, **export options -> path of that benchmarks/models.py model exported once per session."""
    pytest.importorskip("torch")
    models = repo_module("benchmarks/models.py")
    cache_dir, paths = tmp_path_factory.mktemp("benchmark-models"), {}

    def get(name: str, **options) -> str:
        key = (name, *sorted(options.items()))
        if key not in paths:
            paths[key] = str(cache_dir / f"{name}_{len(paths)}.onnx")
            models.export(name, paths[key], **options)
        return paths[key]

    return get
