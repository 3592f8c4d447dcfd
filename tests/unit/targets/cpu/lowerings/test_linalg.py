"""float64 Gemm in double precision (the GEMM's F64 panels, transposed operands read through
strides, alpha / beta / C folded or elementwise) against onnxruntime's double Gemm."""
import numpy as np
import pytest
from onnx import helper

from conftest import make_model, ort_run
from pyflame_rt import InferenceSession

F64 = np.float64


@pytest.mark.parametrize("trans_a, trans_b, alpha, beta, c_shape", [
    (0, 0, 1.0, 1.0, [5, 11]), (1, 0, 0.5, 2.0, [11]), (0, 1, 2.0, 1.0, None), (1, 1, -1.5, 0.25, [5, 1])])
def test_float64_gemm_matches_onnxruntime(trans_a, trans_b, alpha, beta, c_shape, rng):
    m, k, n = 5, 7, 11
    inputs = [("a", [k, m] if trans_a else [m, k], F64), ("b", [n, k] if trans_b else [k, n], F64)]
    inputs += [("c", c_shape, F64)] if c_shape else []
    node = helper.make_node("Gemm", [name for name, *_ in inputs], ["y"], transA=trans_a, transB=trans_b,
                            alpha=alpha, beta=beta)
    model = make_model([node], inputs, [("y", [m, n], F64)])
    feeds = {name: rng.normal(size=shape) for name, shape, _ in inputs}
    got = InferenceSession(model.SerializeToString()).run(None, feeds)[0]
    assert got.dtype == F64
    np.testing.assert_allclose(got, ort_run(model, feeds)[0], rtol=1e-13, atol=1e-13)


@pytest.mark.slow
def test_float64_gemm_with_constant_weights_and_dynamic_rows(rng):
    b, c = rng.normal(size=(17, 33)), rng.normal(size=17)
    model = make_model([helper.make_node("Gemm", ["a", "b", "c"], ["y"], transB=1, alpha=0.3),
                        helper.make_node("Relu", ["y"], ["z"])],
                       [("a", ["m", 33], F64)], [("z", ["m", 17], F64)], {"b": b, "c": c})
    sess = InferenceSession(model.SerializeToString())
    for rows in (1, 6):
        feeds = {"a": rng.normal(size=(rows, 33))}
        np.testing.assert_allclose(sess.run(None, feeds)[0], ort_run(model, feeds)[0], rtol=1e-13, atol=1e-13)


@pytest.mark.slow
@pytest.mark.parametrize("m, k, n", [(37, 700, 45), (1, 64, 10)])
def test_float64_matmul_chain_in_double_precision(m, k, n, rng):
    """MatMul + Add + Relu, then a residual MatMul + Add, on the float64 GEMM: K = 700 in three slices
    (float64 slices are half as deep), remainder rows, a partial last panel."""
    w, b, w2 = rng.normal(size=(k, n)), rng.normal(size=n), rng.normal(size=(n, n))
    model = make_model([helper.make_node("MatMul", ["x", "w"], ["h"]), helper.make_node("Add", ["h", "b"], ["hb"]),
                        helper.make_node("Relu", ["hb"], ["r"]), helper.make_node("MatMul", ["r", "w2"], ["h2"]),
                        helper.make_node("Add", ["h2", "r"], ["y"])],
                       [("x", ["m", k], F64)], [("y", ["m", n], F64)], {"w": w, "b": b, "w2": w2})
    x = rng.normal(size=(m, k))
    (got,) = InferenceSession(model.SerializeToString()).run(None, {"x": x})
    r = np.maximum(x @ w + b, 0)
    assert got.dtype == F64
    np.testing.assert_allclose(got, r @ w2 + r, rtol=1e-13, atol=1e-12)
