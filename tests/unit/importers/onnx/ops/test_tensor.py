"""ops/tensor.py converters whose arguments are known only at run time: OneHot's depth (a dim bound
from its value) and Trilu's k (a mask built from ranges), against onnxruntime."""
from __future__ import annotations

import numpy as np
import pytest
from onnx import helper

import pyflame_rt
from pyflame_rt.errors import ShapeMismatchError

from conftest import make_model, ort_run


def _check(model, sess, feeds):
    got, want = sess.run(None, feeds), ort_run(model, feeds)
    for g, w in zip(got, want):
        assert g.shape == w.shape and g.dtype == w.dtype and np.array_equal(g, w)


@pytest.fixture(scope="module")
def one_hot():
    """y = OneHot(i, depth, v, axis=0) with depth a graph input; z = OneHot(i, depth + 1, v) with the
    depth computed by the model (bound mid-run)."""
    model = make_model(
        [helper.make_node("OneHot", ["i", "depth", "v"], ["y"], axis=0),
         helper.make_node("Add", ["depth", "one"], ["d1"]),
         helper.make_node("OneHot", ["i", "d1", "v"], ["z"])],
        [("i", [2, 3], np.int64), ("depth", [], np.int64), ("v", [2])], [("y", ["a", 2, 3]), ("z", [2, 3, "b"])],
        initializers={"one": np.array(1, np.int64)})
    return model, pyflame_rt.InferenceSession(model.SerializeToString())


def _one_hot_feeds(depth):
    return {"i": np.array([[0, 2, -1], [5, -4, 1]], np.int64), "depth": np.array(depth, np.int64),
            "v": np.array([-1.0, 3.0], np.float32)}


def test_one_hot_depth_fed_and_computed(one_hot):
    """Two depths from one artifact; negative indices wrap, those outside [-depth, depth) stay off."""
    model, sess = one_hot
    for depth in (4, 6, 1):
        _check(model, sess, _one_hot_feeds(depth))


@pytest.mark.parametrize("depth", [0, -2])
def test_one_hot_depth_must_be_positive(one_hot, depth):
    _, sess = one_hot
    with pytest.raises(ShapeMismatchError, match="OneHot depth must be positive|must not be negative"):
        sess.run(None, _one_hot_feeds(depth))


def test_one_hot_float_depth_is_truncated():
    model = make_model([helper.make_node("OneHot", ["i", "depth", "v"], ["y"], axis=-1)],
                       [("i", [3], np.int32), ("depth", [1]), ("v", [2])], [("y", [3, "d"])])
    sess = pyflame_rt.InferenceSession(model.SerializeToString())
    for depth in (3.7, 5.0):
        _check(model, sess, {"i": np.array([0, 2, -1], np.int32), "depth": np.array([depth], np.float32),
                             "v": np.array([0, 7], np.float32)})


@pytest.mark.parametrize("upper", [0, 1])
def test_trilu_k_fed_at_run_time(upper):
    model = make_model([helper.make_node("Trilu", ["x", "k"], ["y"], upper=upper)],
                       [("x", [2, "r", 5]), ("k", [], np.int64)], [("y", [2, "r", 5])])
    sess = pyflame_rt.InferenceSession(model.SerializeToString())
    x = np.random.default_rng(0).standard_normal((2, 4, 5)).astype(np.float32)
    for k, rows in ((0, 4), (2, 4), (-1, 3), (-7, 4), (9, 4)):
        _check(model, sess, {"x": x[:, :rows], "k": np.array(k, np.int64)})
