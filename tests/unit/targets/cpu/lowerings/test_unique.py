"""Unique compiled to native code vs onnxruntime and the numpy reference: sorted and in order of
first occurrence, flattened and along a first / middle / last axis (slices compared
lexicographically), all four outputs, element types, -0 equal to +0, one output only, an empty
input, two sizes from one artifact (the distinct count is a dim bound while the model runs)."""
import numpy as np
import pytest
from onnx import helper

from conftest import make_model, ort_run
from pyflame_rt import InferenceSession
from pyflame_rt.compiler import CompileOptions, compile_model
from pyflame_rt.dialects.reference import evaluate
from pyflame_rt.executable import Executable
from pyflame_rt.importers.onnx import from_onnx
from pyflame_rt.options import OptLevel

OUTPUTS = ("y", "indices", "inverse", "counts")


def _unique_model(shape, dtype=np.float32, outputs=OUTPUTS, **attrs):
    node = helper.make_node("Unique", ["x"], list(outputs), **attrs)
    specs = {"y": ("y", [None] * (len(shape) if "axis" in attrs else 1), dtype),
             "indices": ("indices", [None], np.int64), "inverse": ("inverse", [None], np.int64),
             "counts": ("counts", [None], np.int64)}
    return make_model([node], [("x", shape, dtype)], [specs[o] for o in outputs], opset=11)


def _check(model, sess, x):
    got, want = sess.run(None, {"x": x}), ort_run(model, {"x": x})
    imported = from_onnx(model)
    ref = evaluate(imported.module, imported.weights, {"x": x})
    for g, w, r in zip(got, want, ref):
        assert g.dtype == w.dtype and g.shape == w.shape, (g.dtype, w.dtype, g.shape, w.shape)
        np.testing.assert_array_equal(g, w)
        np.testing.assert_array_equal(r, w)
    return got


@pytest.mark.parametrize("sorted_", [1, 0])
@pytest.mark.parametrize("shape, axis", [(["n", 3], None), (["n", 3], 0), ([2, "n", 2], 1), ([2, "n"], -1)])
def test_unique_matches_onnxruntime_at_two_sizes(sorted_, shape, axis):
    attrs = {"sorted": sorted_} if axis is None else {"sorted": sorted_, "axis": axis}
    model = _unique_model(shape, **attrs)
    sess = InferenceSession(model.SerializeToString())
    rng = np.random.default_rng(sorted_)
    for n in (5, 40):
        x = rng.integers(-2, 2, [n if d == "n" else d for d in shape]).astype(np.float32)
        got = _check(model, sess, x)
        assert 1 < len(got[3]) < x.size


@pytest.mark.parametrize("dtype", [np.int64, np.int8, np.float64])
def test_unique_element_types(dtype):
    model = _unique_model(["n"], dtype)
    x = np.array([3, -1, 3, 0, -1, 7, 0, 3], dtype)
    _check(model, InferenceSession(model.SerializeToString()), x)


def test_negative_zero_equals_zero_and_one_output():
    model = _unique_model(["n"], outputs=("y",), sorted=0)
    sess = InferenceSession(model.SerializeToString())
    _check(model, sess, np.array([-0.0, 1.5, 0.0, -2.0, 1.5], np.float32))
    assert _check(model, sess, np.zeros(0, np.float32))[0].shape == (0,)


def test_checked_build_finds_the_same_without_a_violation():
    model = _unique_model([3, "n"], np.int64, sorted=0, axis=1)
    exe = Executable(compile_model(model, CompileOptions(checked=True, opt_level=OptLevel.NONE)))
    x = np.random.default_rng(3).integers(0, 2, (3, 17))
    for g, w in zip(exe.run([x]), ort_run(model, {"x": x})):
        np.testing.assert_array_equal(g, w)
