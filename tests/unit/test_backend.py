"""pyflame_rt.backend: onnx's Backend API over compiled code, checked against onnxruntime."""
import numpy as np
import pytest
from onnx import helper
from onnx.backend.base import Backend, BackendRep

import pyflame_rt.backend as backend
from conftest import assert_close, make_model, ort_run
from pyflame_rt.errors import InputError, UnsupportedOperatorError, ValidationError


def _model():
    nodes = [helper.make_node("MatMul", ["x", "w"], ["h"]), helper.make_node("Add", ["h", "s"], ["y"]),
             helper.make_node("Relu", ["y"], ["z"])]
    return make_model(nodes, [("x", ["N", 4]), ("s", [])], [("y", ["N", 3]), ("z", ["N", 3])],
                      {"w": np.linspace(-1, 1, 12, dtype=np.float32).reshape(4, 3)})


def test_backend_is_an_onnx_backend():
    assert issubclass(backend.PyFlameBackend, Backend)
    assert backend.supports_device("CPU") and backend.supports_device("cpu")
    assert not backend.supports_device("CUDA")


def test_prepare_and_run_match_onnxruntime_with_scalar_input(rng):
    model = _model()
    rep = backend.prepare(model, "CPU")
    assert isinstance(rep, BackendRep) and rep.input_names == ["x", "s"]
    x, s = rng.standard_normal((5, 4), np.float32), np.array(0.25, np.float32)
    want = ort_run(model, {"x": x, "s": s})
    for got in (rep.run([x, s]), rep.run({"s": s, "x": x}), backend.run_model(model, [x, s]),
                rep.run([x, np.float32(0.25)])):
        assert len(got) == 2
        for g, w in zip(got, want):
            assert_close(g, w)


def test_single_array_input_and_bytes_model(rng):
    model = make_model([helper.make_node("Relu", ["x"], ["y"])], [("x", [3])], [("y", [3])])
    rep = backend.prepare(model.SerializeToString())
    x = rng.standard_normal(3, np.float32)
    np.testing.assert_array_equal(rep.run(x)[0], np.maximum(x, 0))


def test_unsupported_operator_fails_at_prepare():
    model = make_model([helper.make_node("Bernoulli", ["x"], ["y"], name="hm")], [("x", [2, 3])], [("y", [2, 3])])
    with pytest.raises(UnsupportedOperatorError, match="Bernoulli.*hm"):
        backend.prepare(model)


def test_bad_device_options_and_inputs():
    model = _model()
    with pytest.raises(ValidationError, match="CUDA"):
        backend.prepare(model, "CUDA")
    with pytest.raises(ValidationError, match="no_such_option"):
        backend.prepare(model, no_such_option=1)
    rep = backend.prepare(model, num_threads=1)
    with pytest.raises(InputError, match="2 inputs"):
        rep.run([np.zeros((1, 4), np.float32)])
    with pytest.raises(InputError, match="list, dict or numpy array"):
        rep.run(3.0)
