"""GatherElements / ScatterElements / Scatter / GatherND / ScatterND compiled to native code vs
onnxruntime (negative indices, reductions, batch_dims, int32 indices, dynamic dims), the numpy
reference, and out-of-range indices -> InputError without touching memory."""
import numpy as np
import pytest
from onnx import helper

from conftest import make_model, ort_run
from pyflame_rt import InferenceSession
from pyflame_rt.importers.onnx import from_onnx
from pyflame_rt.errors import InputError
from pyflame_rt.dialects.reference import evaluate


def _check(model, feeds):
    sess = InferenceSession(model.SerializeToString())
    got, want = sess.run(None, feeds), ort_run(model, feeds)
    imported = from_onnx(model)
    ref = evaluate(imported.module, imported.weights, feeds)
    for g, w, r in zip(got, want, ref):
        assert g.dtype == w.dtype and g.shape == w.shape, (g.dtype, w.dtype, g.shape, w.shape)
        np.testing.assert_allclose(g, w, rtol=1e-6)
        np.testing.assert_allclose(r, w, rtol=1e-6)
    return sess


@pytest.mark.parametrize("axis", [0, 1, -1])
@pytest.mark.parametrize("idx_dtype", [np.int64, np.int32])
def test_gather_elements(axis, idx_dtype, rng):
    data = rng.standard_normal((3, 4, 5)).astype(np.float32)
    idx_shape = list(data.shape)
    idx_shape[axis] = 6
    n = data.shape[axis]
    idx = rng.integers(-n, n, idx_shape).astype(idx_dtype)
    model = make_model([helper.make_node("GatherElements", ["x", "i"], ["y"], axis=axis)],
                       [("x", [3, 4, 5]), ("i", idx_shape, idx_dtype)], [("y", idx_shape)])
    _check(model, {"x": data, "i": idx})


@pytest.mark.parametrize("reduction", ["none", "add", "mul", "max", "min"])
@pytest.mark.parametrize("axis", [0, 2])
def test_scatter_elements(reduction, axis, rng):
    data = rng.standard_normal((4, 3, 5)).astype(np.float32)
    idx_shape = list(data.shape)
    idx_shape[axis] = 2
    n = data.shape[axis]
    # distinct positions along the axis for "none" (duplicates are unspecified there)
    idx = np.stack([rng.permutation(n)[:2] for _ in range(int(np.prod(idx_shape)) // 2)], -1)
    idx = np.moveaxis(idx.reshape([2] + [d for k, d in enumerate(idx_shape) if k != axis]), 0, axis)
    if reduction != "none":
        idx = rng.integers(-n, n, idx_shape)  # duplicates combine in index order
    updates = rng.standard_normal(idx_shape).astype(np.float32)
    model = make_model([helper.make_node("ScatterElements", ["x", "i", "u"], ["y"], axis=axis, reduction=reduction)],
                       [("x", [4, 3, 5]), ("i", idx_shape, np.int64), ("u", idx_shape)], [("y", [4, 3, 5])],
                       opset=18)
    _check(model, {"x": data, "i": idx.astype(np.int64), "u": updates})


def test_scatter_deprecated_alias_and_int64_data(rng):
    data = np.arange(12, dtype=np.int64).reshape(3, 4)
    idx = np.array([[1, 0, 2, -1]], np.int64)
    model = make_model([helper.make_node("Scatter", ["x", "i", "u"], ["y"], axis=0)],
                       [("x", [3, 4], np.int64), ("i", [1, 4], np.int64), ("u", [1, 4], np.int64)],
                       [("y", [3, 4], np.int64)], opset=10)
    _check(model, {"x": data, "i": idx, "u": -np.arange(4, dtype=np.int64).reshape(1, 4)})


@pytest.mark.parametrize("data_shape,idx,batch_dims", [
    ((2, 3), [[0, 1], [1, -1]], 0),                       # scalars
    ((4, 3, 5), [[[1], [-1]], [[0], [3]]], 0),            # row slices
    ((4, 3, 5), [[2, 1, 4], [0, 0, 0]], 0),               # full tuples
    ((2, 3, 5), [[[1], [0]], [[2], [-3]]], 1),            # batch_dims 1
])
def test_gather_nd(data_shape, idx, batch_dims, rng):
    data = rng.standard_normal(data_shape).astype(np.float32)
    idx = np.array(idx, np.int64)
    out_shape = list(idx.shape[:-1]) + list(data_shape[batch_dims + idx.shape[-1]:])
    model = make_model([helper.make_node("GatherND", ["x", "i"], ["y"], batch_dims=batch_dims)],
                       [("x", list(data_shape)), ("i", list(idx.shape), np.int64)], [("y", out_shape)], opset=13)
    _check(model, {"x": data, "i": idx})


@pytest.mark.parametrize("reduction", ["none", "add", "mul", "max", "min"])
def test_scatter_nd(reduction, rng):
    data = rng.standard_normal((4, 3, 5)).astype(np.float32)
    idx = np.array([[[0], [2]], [[-1], [1]]] if reduction == "none" else [[[0], [2]], [[0], [-4]]], np.int64)
    updates = rng.standard_normal((2, 2, 3, 5)).astype(np.float32)
    model = make_model([helper.make_node("ScatterND", ["x", "i", "u"], ["y"], reduction=reduction)],
                       [("x", [4, 3, 5]), ("i", [2, 2, 1], np.int64), ("u", [2, 2, 3, 5])], [("y", [4, 3, 5])],
                       opset=18)
    _check(model, {"x": data, "i": idx, "u": updates})


def test_gather_elements_dynamic_batch(rng):
    model = make_model([helper.make_node("GatherElements", ["x", "i"], ["y"], axis=1)],
                       [("x", ["b", 7]), ("i", ["b", 3], np.int64)], [("y", ["b", 3])])
    sess = InferenceSession(model.SerializeToString())
    for b in (1, 5):
        x, i = rng.standard_normal((b, 7)).astype(np.float32), rng.integers(-7, 7, (b, 3))
        np.testing.assert_array_equal(sess.run(None, {"x": x, "i": i})[0], ort_run(model, {"x": x, "i": i})[0])


@pytest.mark.parametrize("op,bad", [("GatherElements", 3), ("GatherElements", -4), ("ScatterElements", 10**12),
                                    ("GatherND", 4), ("ScatterND", -5)])
def test_out_of_range_index_raises(op, bad):
    nd = op.endswith("ND")
    data = np.arange(12, dtype=np.float32).reshape(4, 3) if nd else np.arange(12, dtype=np.float32).reshape(3, 4)
    idx = np.array([[1], [bad]], np.int64) if nd else np.array([[0, 1, bad, 2]], np.int64)
    upd_shape = [2, 3] if nd else [1, 4]
    scatter = op.startswith("Scatter")
    out_shape = [4, 3] if scatter and nd else [3, 4] if scatter else [2, 3] if nd else [1, 4]
    model = make_model([helper.make_node(op, ["x", "i", "u"][:3 if scatter else 2], ["y"])],
                       [("x", list(data.shape)), ("i", list(idx.shape), np.int64), ("u", upd_shape)][:3 if scatter else 2],
                       [("y", out_shape)], opset=13)
    feeds = {"x": data, "i": idx, **({"u": np.ones(upd_shape, np.float32)} if scatter else {})}
    sess = InferenceSession(model.SerializeToString())
    with pytest.raises(InputError, match=f"{op}.*outside its axis"):
        sess.run(None, feeds)
    idx[idx == bad] = 0
    np.testing.assert_array_equal(sess.run(None, feeds)[0], ort_run(model, feeds)[0])
    imported = from_onnx(model)
    with pytest.raises(InputError, match="outside its axis"):
        evaluate(imported.module, imported.weights, {**feeds, "i": np.where(idx == 0, bad, idx)})
