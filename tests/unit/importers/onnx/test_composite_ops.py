"""Operators imported as compositions of graph ops (MeanVarianceNormalization, LpNormalization,
GroupNormalization, LpPool, Hardmax, EyeLike), compiled and compared with onnxruntime."""
import numpy as np
import pytest
from onnx import helper

from conftest import assert_close, make_model, ort_run
from pyflame_rt import ImportOptions, InferenceSession
from pyflame_rt.importers.onnx import from_onnx
from pyflame_rt.errors import UnsupportedOperatorError


def _check(model, feeds, rtol=1e-5):
    got, want = InferenceSession(model.SerializeToString()).run(None, feeds), ort_run(model, feeds)
    for g, w in zip(got, want):
        assert g.dtype == w.dtype and g.shape == w.shape, (g.dtype, w.dtype, g.shape, w.shape)
        assert_close(g, w, rtol)


@pytest.mark.parametrize("axes", [None, [1], [0, 2]])
def test_mean_variance_normalization(axes, rng):
    attrs = {} if axes is None else {"axes": axes}
    model = make_model([helper.make_node("MeanVarianceNormalization", ["x"], ["y"], **attrs)],
                       [("x", [2, 3, 4, 5])], [("y", [2, 3, 4, 5])], opset=13)
    _check(model, {"x": rng.standard_normal((2, 3, 4, 5)).astype(np.float32)})


@pytest.mark.parametrize("p", [1, 2])
@pytest.mark.parametrize("axis", [0, -1])
def test_lp_normalization_with_a_zero_row(p, axis, rng):
    x = rng.standard_normal((3, 4)).astype(np.float32)
    x[1, :] = 0
    x[:, 2] = 0
    model = make_model([helper.make_node("LpNormalization", ["x"], ["y"], p=p, axis=axis)],
                       [("x", ["b", 4])], [("y", ["b", 4])])
    _check(model, {"x": x})


def test_lp_normalization_refuses_p3():
    model = make_model([helper.make_node("LpNormalization", ["x"], ["y"], p=3)], [("x", [3, 4])], [("y", [3, 4])])
    with pytest.raises(UnsupportedOperatorError, match="p must be 1 or 2"):
        from_onnx(model, ImportOptions(check_model=False))


def test_group_normalization(rng):
    model = make_model([helper.make_node("GroupNormalization", ["x", "s", "b"], ["y"], num_groups=3, epsilon=1e-3)],
                       [("x", ["n", 6, 4, 3]), ("s", [6]), ("b", [6])], [("y", ["n", 6, 4, 3])], opset=21)
    feeds = {"s": rng.standard_normal(6).astype(np.float32), "b": rng.standard_normal(6).astype(np.float32)}
    for n in (1, 2):
        _check(model, {"x": rng.standard_normal((n, 6, 4, 3)).astype(np.float32), **feeds}, rtol=1e-4)


@pytest.mark.parametrize("attrs,out_hw", [
    (dict(kernel_shape=[3, 3], p=2), [5, 6]),
    (dict(kernel_shape=[2, 3], p=3, strides=[2, 1], pads=[1, 0, 1, 2]), [4, 8]),
    (dict(kernel_shape=[2, 2], p=1, auto_pad="SAME_UPPER"), [7, 8]),
])
@pytest.mark.slow
def test_lp_pool(attrs, out_hw, rng):
    model = make_model([helper.make_node("LpPool", ["x"], ["y"], **attrs)], [("x", [1, 2, 7, 8])],
                       [("y", [1, 2, *out_hw])], opset=18)
    _check(model, {"x": rng.standard_normal((1, 2, 7, 8)).astype(np.float32)}, rtol=1e-4)


@pytest.mark.parametrize("axis", [0, 1, -1])
def test_hardmax_first_maximum_wins(axis, rng):
    x = rng.integers(0, 3, (3, 4, 5)).astype(np.float32)  # many ties
    model = make_model([helper.make_node("Hardmax", ["x"], ["y"], axis=axis)], [("x", [3, 4, 5])], [("y", [3, 4, 5])],
                       opset=13)
    _check(model, {"x": x})


def test_hardmax_legacy_needs_last_axis():
    model = make_model([helper.make_node("Hardmax", ["x"], ["y"], axis=0)], [("x", [3, 4])], [("y", [3, 4])], opset=11)
    with pytest.raises(UnsupportedOperatorError, match="only the last axis"):
        from_onnx(model)


@pytest.mark.parametrize("k,dtype", [(0, None), (1, 1), (-2, 7)])
def test_eye_like(k, dtype):
    attrs = {"k": k, **({"dtype": dtype} if dtype is not None else {})}
    out = {None: np.int32, 1: np.float32, 7: np.int64}[dtype]
    model = make_model([helper.make_node("EyeLike", ["x"], ["y"], **attrs)], [("x", [3, 4], np.int32)],
                       [("y", [3, 4], out)], opset=13)
    _check(model, {"x": np.zeros((3, 4), np.int32)})


@pytest.mark.parametrize("time_axis,batch_axis", [(0, 1), (1, 0)])
def test_reverse_sequence(time_axis, batch_axis, rng):
    shape = [5, "b", 3] if time_axis == 0 else ["b", 5, 3]
    model = make_model([helper.make_node("ReverseSequence", ["x", "lens"], ["y"], time_axis=time_axis,
                                         batch_axis=batch_axis)],
                       [("x", shape), ("lens", ["b"], np.int64)], [("y", shape)], opset=13)
    sess = InferenceSession(model.SerializeToString())
    for b in (1, 4):
        x = rng.standard_normal([5 if d == 5 else 3 if d == 3 else b for d in shape]).astype(np.float32)
        feeds = {"x": x, "lens": rng.integers(1, 6, b)}
        np.testing.assert_array_equal(sess.run(None, feeds)[0], ort_run(model, feeds)[0])
    from pyflame_rt.errors import InputError
    with pytest.raises(InputError, match="GatherElements"):
        sess.run(None, {"x": x, "lens": np.full(4, 7, np.int64)})
