"""ops/run_time_signal.py: DFT with its axis and dft_length, STFT with its frame_step and
frame_length fed at run time, against onnxruntime: several argument values from one artifact, and
values the operators refuse raised as a ShapeMismatchError before the kernels."""
from __future__ import annotations

import numpy as np
import pytest
from onnx import helper

from conftest import assert_close, make_model, ort_run
from pyflame_rt import InferenceSession
from pyflame_rt.errors import ShapeMismatchError

I64 = np.int64
pytestmark = pytest.mark.slow  # the run-time matrices' kernels compile in ~15 s per operator


def _scalar(v):
    return np.array(v, I64)


def _check(model, sess, feed):
    for got, want in zip(sess.run(None, feed), ort_run(model, feed)):
        assert got.shape == want.shape
        assert_close(got, want, rtol=1e-4)


def _dft(attrs, c):
    node = helper.make_node("DFT", ["x", "len", "axis"], ["y"], **attrs)
    model = make_model([node], [("x", ["b", 6, 5, c]), ("len", [], I64), ("axis", [], I64)],
                       [("y", ["o0", "o1", "o2", "o3"])], opset=20)
    return model, InferenceSession(model.SerializeToString())


@pytest.fixture(scope="module")
def real_dft():
    return _dft({}, 1)


def test_real_dft_of_run_time_axis_and_length(real_dft, rng):
    _check_variant(*real_dft, {}, 1, rng)


@pytest.mark.parametrize("attrs,c", [(dict(inverse=1), 2), (dict(onesided=1), 1), (dict(onesided=1, inverse=1), 2)])
def test_dft_of_run_time_axis_and_length(attrs, c, rng):
    _check_variant(*_dft(attrs, c), attrs, c, rng)


def _check_variant(model, sess, attrs, c, rng):
    # (onnxruntime differs from numpy on some one-sided inverses of fewer bins than length // 2 + 1: avoided)
    lengths = (10, 9, 11) if attrs == dict(onesided=1, inverse=1) else (5, 3, 8)
    for batch, axis, length in [(2, 1, lengths[0]), (1, -2, lengths[1]), (3, 0, lengths[2]), (6, -4, lengths[0])]:
        x = rng.standard_normal((batch, 6, 5, c), np.float32)
        _check(model, sess, {"x": x, "len": _scalar(length), "axis": _scalar(axis)})


def test_dft_of_run_time_axis_and_default_length(rng):
    node = helper.make_node("DFT", ["x", "", "axis"], ["y"], onesided=1)
    model = make_model([node], [("x", [2, 7, 4, 1]), ("axis", [], I64)], [("y", ["o0", "o1", "o2", 2])], opset=20)
    sess = InferenceSession(model.SerializeToString())
    for axis in (1, 2, -3):
        _check(model, sess, {"x": rng.standard_normal((2, 7, 4, 1), np.float32), "axis": _scalar(axis)})


@pytest.mark.parametrize("axis,length", [(3, 4), (-1, 4), (-5, 4), (1, 0)])
def test_dft_refuses_a_bad_axis_or_length(real_dft, axis, length):
    _, sess = real_dft
    with pytest.raises(ShapeMismatchError, match="_valid"):
        sess.run(None, {"x": np.ones((1, 6, 5, 1), np.float32), "len": _scalar(length), "axis": _scalar(axis)})


@pytest.fixture(scope="module")
def stft():
    nodes = [helper.make_node("STFT", ["x", "step", "", "len"], ["y"]),
             helper.make_node("STFT", ["x", "step", "w"], ["z"], onesided=0)]
    model = make_model(nodes, [("x", ["b", 40, 1]), ("step", [], I64), ("len", [], I64), ("w", [8])],
                       [("y", ["b", "f", "k", 2]), ("z", ["b", "g", 8, 2])])
    return model, InferenceSession(model.SerializeToString())


def test_stft_of_run_time_frame_step_and_length(stft, rng):
    model, sess = stft
    for batch, step, length in [(2, 4, 8), (1, 3, 8), (2, 8, 13)]:
        feed = {"x": rng.standard_normal((batch, 40, 1), np.float32), "step": _scalar(step),
                "len": _scalar(length), "w": rng.random(8, np.float32)}
        _check(model, sess, feed)


@pytest.mark.parametrize("step,length", [(0, 8), (4, 41), (4, 0)])
def test_stft_refuses_a_bad_frame_step_or_length(stft, step, length):
    _, sess = stft
    with pytest.raises(ShapeMismatchError, match="_valid"):
        sess.run(None, {"x": np.ones((1, 40, 1), np.float32), "step": _scalar(step), "len": _scalar(length),
                        "w": np.ones(8, np.float32)})


def test_mel_weight_matrix_of_run_time_arguments():
    node = helper.make_node("MelWeightMatrix", ["bins", "len", "rate", "lo", "hi"], ["m"])
    model = make_model([node], [("bins", [], I64), ("len", [], I64), ("rate", [], I64), ("lo", []), ("hi", [])],
                       [("m", ["k", "b"])])
    sess = InferenceSession(model.SerializeToString())
    for bins, length, rate, lo, hi in [(8, 16, 8192, 0, 4096), (10, 64, 8000, 20, 3800), (3, 31, 16000, 300, 7000)]:
        feed = {"bins": _scalar(bins), "len": _scalar(length), "rate": _scalar(rate),
                "lo": np.array(lo, np.float32), "hi": np.array(hi, np.float32)}
        _check(model, sess, feed)
    for bad in [dict(bins=0), dict(hi=20000.0), dict(lo=-1.0), dict(rate=0), dict(bins=-5), dict(hi=np.inf)]:
        feed = {"bins": _scalar(8), "len": _scalar(16), "rate": _scalar(8192), "lo": np.array(0, np.float32),
                "hi": np.array(4096, np.float32)}
        feed.update({k: np.array(v, feed[k].dtype) for k, v in bad.items()})
        with pytest.raises(ShapeMismatchError, match="m_dims_valid|m_edges"):
            sess.run(None, feed)


def test_stft_and_dft_of_a_dynamic_signal_length(rng):
    """Constant arguments, signals of any length from one artifact (variable-length audio)."""
    nodes = [helper.make_node("STFT", ["x", "step", "w"], ["y"]),
             helper.make_node("DFT", ["x", "", "axis"], ["z"], onesided=1)]
    model = make_model(nodes, [("x", ["b", "t", 1])], [("y", ["b", "f", 9, 2]), ("z", ["b", "k", 2])],
                       initializers={"step": _scalar(5), "w": np.hanning(16).astype(np.float32), "axis": _scalar(1)},
                       opset=20)
    sess = InferenceSession(model.SerializeToString())
    for batch, samples in [(1, 40), (2, 57), (1, 16)]:
        _check(model, sess, {"x": rng.standard_normal((batch, samples, 1), np.float32)})


def test_mel_weight_matrix_of_constant_sizes_and_run_time_frequencies():
    node = helper.make_node("MelWeightMatrix", ["bins", "len", "rate", "lo", "hi"], ["m"])
    model = make_model([node], [("rate", [], I64), ("lo", []), ("hi", [])], [("m", [9, 8])],
                       initializers={"bins": _scalar(8), "len": _scalar(16)})
    sess = InferenceSession(model.SerializeToString())
    for rate, lo, hi in [(8192, 0, 4096), (16000, 100, 7000)]:
        _check(model, sess, {"rate": _scalar(rate), "lo": np.array(lo, np.float32), "hi": np.array(hi, np.float32)})
