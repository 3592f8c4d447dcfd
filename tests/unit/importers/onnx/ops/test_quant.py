"""Pre-quantized ONNX operators (QDQ, QLinear, integer and com.microsoft QLinear ops) against onnxruntime."""
from __future__ import annotations

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

from conftest import make_model, ort_run
import pyflame_rt as pf
from pyflame_rt.errors import InvalidModelError, UnsupportedOperatorError


def _c(name: str, value, dtype) -> "TensorProto":
    return numpy_helper.from_array(np.asarray(value, dtype), name)


def _run(model, feeds):
    return pf.InferenceSession(model.SerializeToString()).run(None, feeds)[0]


def _with(model, *initializers, domains=()):
    model.graph.initializer.extend(initializers)
    model.opset_import.extend(helper.make_opsetid(d, 1) for d in domains)
    return model


def test_qlinear_matmul_per_column_weight_scales(rng):
    w = rng.integers(-127, 128, (4, 3)).astype(np.int8)
    nodes = [helper.make_node("QuantizeLinear", ["x", "xs", "xz"], ["xq"]),
             helper.make_node("QLinearMatMul", ["xq", "xs", "xz", "w", "ws", "wz", "ys", "yz"], ["yq"]),
             helper.make_node("DequantizeLinear", ["yq", "ys", "yz"], ["y"])]
    model = _with(make_model(nodes, [("x", [2, 4])], [("y", [2, 3])]),
                  _c("xs", 0.05, np.float32), _c("xz", 128, np.uint8), _c("w", w, np.int8),
                  _c("ws", [0.01, 0.02, 0.03], np.float32), _c("wz", [0, 0, 0], np.int8),
                  _c("ys", 0.1, np.float32), _c("yz", 120, np.uint8))
    x = (rng.standard_normal((2, 4)) * 3).astype(np.float32)
    assert np.abs(_run(model, {"x": x}) - ort_run(model, {"x": x})[0]).max() <= 0.1001


@pytest.mark.slow
def test_microsoft_qlinear_ops(rng):
    """QLinearConv (per-channel weight, int32 bias) -> QLinearAdd -> QLinearAveragePool ->
    QLinearConcat -> QLinearGlobalAveragePool, as onnxruntime's QOperator format writes them."""
    w = rng.integers(-100, 100, (4, 2, 3, 3)).astype(np.int8)
    ms = "com.microsoft"
    nodes = [helper.make_node("QuantizeLinear", ["x", "s", "z"], ["xq"]),
             helper.make_node("QLinearConv", ["xq", "s", "z", "w", "ws", "wz", "s2", "z", "b"], ["c"], pads=[1, 1, 1, 1]),
             helper.make_node("QLinearAdd", ["c", "s2", "z", "c", "s2", "z", "s3", "z"], ["a"], domain=ms),
             helper.make_node("QLinearAveragePool", ["a", "s3", "z", "s3", "z"], ["p"], domain=ms,
                              kernel_shape=[2, 2], strides=[2, 2]),
             helper.make_node("QLinearConcat", ["s3", "z", "p", "s3", "z", "p", "s3", "z"], ["cat"], domain=ms, axis=1),
             helper.make_node("QLinearGlobalAveragePool", ["cat", "s3", "z", "s", "z"], ["g"], domain=ms),
             helper.make_node("DequantizeLinear", ["g", "s", "z"], ["y"])]
    model = _with(make_model(nodes, [("x", [1, 2, 6, 6])], [("y", [1, 8, 1, 1])]),
                  _c("s", 0.05, np.float32), _c("z", 128, np.uint8), _c("w", w, np.int8),
                  _c("ws", [0.01, 0.02, 0.015, 0.03], np.float32), _c("wz", [0] * 4, np.int8),
                  _c("s2", 0.2, np.float32), _c("s3", 0.4, np.float32),
                  _c("b", rng.integers(-500, 500, 4), np.int32), domains=[ms])
    x = rng.standard_normal((1, 2, 6, 6)).astype(np.float32)
    assert np.abs(_run(model, {"x": x}) - ort_run(model, {"x": x})[0]).max() <= 0.0501


def test_dynamic_quantize_and_integer_ops(rng):
    w = rng.integers(-127, 128, (2, 3, 3, 3)).astype(np.int8)
    nodes = [helper.make_node("DynamicQuantizeLinear", ["x"], ["q", "qs", "qz"]),
             helper.make_node("ConvInteger", ["q", "w", "qz", "wz"], ["c"]),
             helper.make_node("Flatten", ["x"], ["xf"]),
             helper.make_node("DynamicQuantizeLinear", ["xf"], ["fq", "fs", "fz"]),
             helper.make_node("MatMulInteger", ["fq", "m"], ["mm"])]
    model = _with(make_model(nodes, [("x", [1, 3, 5, 5])], [("c", [1, 2, 3, 3], np.int32), ("mm", [1, 4], np.int32)]),
                  _c("w", w, np.int8), _c("wz", 3, np.int8),
                  _c("m", rng.integers(-127, 128, (75, 4)), np.int8))
    x = rng.standard_normal((1, 3, 5, 5)).astype(np.float32)
    s = pf.InferenceSession(model.SerializeToString())
    for ours, ref in zip(s.run(None, {"x": x}), ort_run(model, {"x": x})):
        np.testing.assert_array_equal(ours, ref)


def test_run_time_scales_and_zero_points(rng):
    """Scales and zero points fed as inputs (per axis 1 here) compute through graph ops."""
    nodes = [helper.make_node("QuantizeLinear", ["x", "s", "z"], ["q"]),
             helper.make_node("DequantizeLinear", ["q", "s", "z"], ["y"])]
    model = make_model(nodes, [("x", [2, 3, 4]), ("s", [3]), ("z", [3], np.int8)],
                       [("q", [2, 3, 4], np.int8), ("y", [2, 3, 4])])
    feeds = {"x": (rng.standard_normal((2, 3, 4)) * 4).astype(np.float32),
             "s": np.array([0.02, 0.05, 0.1], np.float32), "z": np.array([-3, 0, 7], np.int8)}
    s = pf.InferenceSession(model.SerializeToString())
    for ours, ref in zip(s.run(None, feeds), ort_run(model, feeds)):
        np.testing.assert_array_equal(ours, ref)


def test_unsupported_storage_is_refused():
    nodes = [helper.make_node("QuantizeLinear", ["x", "s", "z"], ["y"])]
    model = _with(make_model(nodes, [("x", [4])], [("y", [4], np.int32)]),
                  _c("s", 0.5, np.float32), _c("z", 0, np.int32))
    with pytest.raises((InvalidModelError, UnsupportedOperatorError), match="int32"):
        pf.InferenceSession(model.SerializeToString())


def test_microsoft_op_in_the_default_domain_is_refused():
    nodes = [helper.make_node("QLinearAdd", ["a", "s", "z", "a", "s", "z", "s", "z"], ["y"])]
    model = _with(make_model(nodes, [("a", [4], np.uint8)], [("y", [4], np.uint8)]),
                  _c("s", 0.1, np.float32), _c("z", 0, np.uint8))
    with pytest.raises((InvalidModelError, UnsupportedOperatorError), match="QLinearAdd"):
        pf.InferenceSession(model.SerializeToString())
