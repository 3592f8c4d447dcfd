"""float64 transcendental math (the C library's, through LLVM's intrinsics or, for erf and the
inverse hyperbolic functions, direct calls) against onnxruntime's double kernels (numpy or Python's
math where onnxruntime has none)."""
import math

import numpy as np
import pytest
from onnx import helper

from conftest import assert_close, make_model, ort_run
from pyflame_rt import InferenceSession

F64 = np.float64


def _unary_model(op: str, **attrs):
    return make_model([helper.make_node(op, ["x"], ["y"], **attrs)], [("x", [3, 7], F64)], [("y", [3, 7], F64)])


def _check(model, feeds, want=None):
    got = InferenceSession(model.SerializeToString()).run(None, feeds)[0]
    want = ort_run(model, feeds)[0] if want is None else want
    assert got.dtype == want.dtype == F64
    np.testing.assert_allclose(got, want, rtol=1e-13, atol=1e-300)


@pytest.mark.parametrize("op, lo, hi", [("Log", 1e-300, 1e300), ("Tanh", -30, 30), ("Sin", -50, 50),
                                        ("Cos", -50, 50)])
def test_float64_unary_matches_onnxruntime(op, lo, hi, rng):
    x = rng.uniform(lo, hi, (3, 7))
    if op == "Log":  # across the exponent range, with log's special values
        x = np.exp(rng.uniform(np.log(lo), np.log(hi), (3, 7)))
        x.flat[:4] = [0.0, -1.0, np.inf, 5e-324]
    _check(_unary_model(op), {"x": x})


def test_float64_softplus_matches_numpy(rng):  # onnxruntime has no double Softplus
    x = rng.uniform(-40, 40, (3, 7))
    _check(_unary_model("Softplus"), {"x": x}, want=np.logaddexp(0.0, x))


@pytest.mark.parametrize("op, fn, lo, hi", [("Tan", np.tan, -3, 3), ("Asin", np.arcsin, -1, 1),
                                            ("Acos", np.arccos, -1, 1), ("Atan", np.arctan, -50, 50),
                                            ("Sinh", np.sinh, -700, 700), ("Cosh", np.cosh, -700, 700),
                                            ("Asinh", np.arcsinh, -1e6, 1e6), ("Acosh", np.arccosh, 1, 1e6),
                                            ("Atanh", np.arctanh, -1, 1)])
def test_float64_trigonometric_matches_numpy(op, fn, lo, hi, rng):  # onnxruntime: float only
    x = rng.uniform(lo, hi, (3, 7))
    _check(_unary_model(op), {"x": x}, want=fn(x))


def test_float64_pow_matches_onnxruntime(rng):
    model = make_model([helper.make_node("Pow", ["x", "e"], ["y"])], [("x", [3, 7], F64), ("e", [3, 7], F64)],
                       [("y", [3, 7], F64)])
    x, e = rng.uniform(0.1, 50, (3, 7)), rng.uniform(-60, 60, (3, 7))
    x.flat[:3], e.flat[:3] = [-2.0, -2.0, 0.0], [3.0, 0.5, -1.0]
    _check(model, {"x": x, "e": e})


def test_float64_reduce_log_sum_exp_matches_onnxruntime(rng):
    model = make_model([helper.make_node("ReduceLogSumExp", ["x"], ["y"], axes=[1], keepdims=0)],
                       [("x", [3, 7], F64)], [("y", [3], F64)])
    _check(model, {"x": rng.uniform(-700, 700, (3, 7))})


def test_float64_log_softmax_matches_onnxruntime(rng):
    """Within float64 ulps of the row's magnitude (x - max - log sum cancels near the max)."""
    model, feeds = _unary_model("LogSoftmax", axis=1), {"x": rng.normal(0, 50, (3, 7))}
    got = InferenceSession(model.SerializeToString()).run(None, feeds)[0]
    assert got.dtype == F64
    assert_close(got, ort_run(model, feeds)[0], rtol=1e-14)


_erf = np.vectorize(math.erf)


@pytest.mark.parametrize("op, attrs, fn", [
    ("Erf", {}, _erf),
    ("Gelu", {}, lambda x: 0.5 * x * (1 + _erf(x / math.sqrt(2)))),
    ("Gelu", {"approximate": "tanh"}, lambda x: 0.5 * x * (1 + np.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x**3))))])
def test_float64_erf_and_gelu_match_the_c_library(op, attrs, fn, rng):
    """Erf is the C library's erf (onnxruntime has no double Erf, onnx's reference is float32-accurate);
    3 x 7 elements: vector lanes and a scalar tail, each lane one call. A float32 erf is ~1e-7 off."""
    x = rng.uniform(-6, 6, (3, 7))
    x.flat[:3] = [0.0, 1e-300, np.nan]
    model = make_model([helper.make_node(op, ["x"], ["y"], **attrs)], [("x", [3, 7], F64)], [("y", [3, 7], F64)],
                       opset=20)
    got = InferenceSession(model.SerializeToString()).run(None, {"x": x})[0]
    assert got.dtype == F64
    np.testing.assert_allclose(got, fn(x), rtol=1e-15, atol=1e-15)  # atol: 1 + tanh cancels near -6
