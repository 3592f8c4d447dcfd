"""Det compiled to native code (LU with partial pivoting, one work item per matrix) vs
onnxruntime and numpy: 2-D and batched, float32 and float64, row swaps, singular matrices,
dynamic batch; non-square or integer input is refused at import."""
import numpy as np
import pytest
from onnx import helper

from conftest import assert_close, make_model, ort_run
from pyflame_rt import InferenceSession
from pyflame_rt.importers.onnx import from_onnx
from pyflame_rt.errors import DTypeMismatchError, ShapeMismatchError
from pyflame_rt.dialects.reference import evaluate


def _model(shape, dtype=np.float32):
    return make_model([helper.make_node("Det", ["x"], ["y"])], [("x", shape, dtype)], [("y", shape[:-2], dtype)],
                      opset=11)


def _run(model, x):
    got = InferenceSession(model.SerializeToString()).run(None, {"x": x})[0]
    imported = from_onnx(model)
    ref = evaluate(imported.module, imported.weights, {"x": x})[0]
    assert got.dtype == x.dtype and got.shape == x.shape[:-2]
    return got, ref


@pytest.mark.parametrize("shape", [[4, 4], [2, 3, 5, 5], [6, 1, 1], [3, 9, 9]])
def test_det_vs_onnxruntime(shape, rng):
    x = rng.standard_normal(shape).astype(np.float32)
    got, ref = _run(_model(shape), x)
    want = ort_run(_model(shape), {"x": x})[0]
    assert_close(got, want, rtol=1e-5)
    assert_close(ref, want, rtol=1e-5)


def test_det_float64(rng):
    x = rng.standard_normal((3, 7, 7))
    got, ref = _run(_model([3, 7, 7], np.float64), x)
    np.testing.assert_allclose(got, np.linalg.det(x), rtol=1e-12)
    np.testing.assert_allclose(ref, np.linalg.det(x), rtol=1e-12)


def test_pivoting_and_singular_matrices():
    """A zero leading entry needs a row swap (sign flip); rank-deficient and zero matrices give 0."""
    x = np.array([[[0, 1, 0], [1, 0, 0], [0, 0, 2]],      # one swap: -2
                  [[1, 2, 3], [2, 4, 6], [1, 0, 1]],      # dependent rows: 0
                  [[0, 0, 0], [0, 0, 0], [0, 0, 0]],      # zero: 0
                  [[0, 0, 1], [0, 1, 0], [1, 0, 0]]], np.float32)  # anti-diagonal: -1
    got, _ = _run(_model([4, 3, 3]), x)
    np.testing.assert_allclose(got, [-2, 0, 0, -1], atol=1e-6)
    assert np.all(np.isfinite(got))
    assert_close(got, ort_run(_model([4, 3, 3]), {"x": x})[0], rtol=1e-6)


def test_dynamic_batch(rng):
    model = _model(["B", 3, 3])
    sess = InferenceSession(model.SerializeToString())
    for b in (1, 5):
        x = rng.standard_normal((b, 3, 3)).astype(np.float32)
        assert_close(sess.run(None, {"x": x})[0], np.linalg.det(x), rtol=1e-5)


@pytest.mark.parametrize("shape, dtype, error", [([3, 4], np.float32, ShapeMismatchError),
                                                 ([4], np.float32, ShapeMismatchError),
                                                 ([2, 2], np.int64, DTypeMismatchError)])
def test_bad_input_refused_at_import(shape, dtype, error):
    model = make_model([helper.make_node("Det", ["x"], ["y"])], [("x", shape, dtype)], [("y", [], dtype)], opset=11)
    with pytest.raises(error, match="graph.det"):
        from_onnx(model)
