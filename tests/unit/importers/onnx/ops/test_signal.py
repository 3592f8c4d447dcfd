"""Window functions, MelWeightMatrix, DFT and STFT against onnxruntime, and a speech front-end
(window + STFT + power spectrum + mel filterbank) end to end from one artifact at two batch sizes."""
import numpy as np
import pytest
from onnx import TensorProto, helper

from conftest import assert_close, make_model, ort_run
from pyflame_rt import InferenceSession
from pyflame_rt.errors import UnsupportedOperatorError


def _const(name, value):
    return helper.make_node("Constant", [], [name], value=helper.make_tensor(
        name, TensorProto.INT64 if np.asarray(value).dtype.kind == "i" else TensorProto.FLOAT, [],
        [np.asarray(value).item()]))


def _dyn(rank):
    return [f"d{i}" for i in range(rank)]


def _check(model, feeds, rtol=1e-4):
    sess = InferenceSession(model.SerializeToString())
    for feed in feeds:
        for got, want in zip(sess.run(None, feed), ort_run(model, feed)):
            assert_close(got, want, rtol=rtol)


@pytest.mark.parametrize("op", ["HannWindow", "HammingWindow", "BlackmanWindow"])
@pytest.mark.parametrize("periodic", [0, 1])
def test_windows_are_constants(op, periodic, rng):
    nodes = [_const("n", 10), helper.make_node(op, ["n"], ["w"], periodic=periodic),
             helper.make_node("Mul", ["x", "w"], ["y"])]
    model = make_model(nodes, [("x", ["b", 10])], [("y", ["b", 10])])
    _check(model, [{"x": rng.standard_normal((b, 10), np.float32)} for b in (1, 3)], rtol=1e-6)


def test_mel_weight_matrix(rng):
    nodes = [_const("bins", 8), _const("len", 64), _const("rate", 8000), _const("lo", 0.0), _const("hi", 4000.0),
             helper.make_node("MelWeightMatrix", ["bins", "len", "rate", "lo", "hi"], ["m"]),
             helper.make_node("MatMul", ["x", "m"], ["y"])]
    model = make_model(nodes, [("x", [2, 33])], [("y", [2, 8])])
    _check(model, [{"x": rng.standard_normal((2, 33), np.float32)}], rtol=1e-6)


@pytest.mark.parametrize("attrs,length,axis,shape", [
    ({}, None, 1, (2, 16, 1)),
    ({}, 10, 1, (2, 16, 2)),
    ({}, 20, 1, (2, 16, 1)),
    (dict(onesided=1), None, 1, (3, 12, 1)),
    (dict(inverse=1), None, 1, (2, 8, 2)),
    ({}, None, 2, (2, 5, 6, 2)),
    (dict(onesided=1), 8, -3, (3, 7, 4, 1)),
    (dict(onesided=1, inverse=1), None, 1, (2, 6, 2)),
    (dict(onesided=1, inverse=1), 9, 1, (2, 5, 2)),
    (dict(onesided=1, inverse=1), 7, 2, (2, 3, 4, 2)),  # (bins beyond length // 2 + 1: onnxruntime differs from numpy)
])
def test_dft(attrs, length, axis, shape, rng):
    nodes = [_const("len", length)] if length else []
    nodes += [_const("axis", axis), helper.make_node("DFT", ["x", "len" if length else "", "axis"], ["y"], **attrs)]
    model = make_model(nodes, [("x", ["b", *shape[1:]])], [("y", _dyn(len(shape)))], opset=20)
    _check(model, [{"x": rng.standard_normal((b, *shape[1:]), np.float32)} for b in (shape[0], 1)])


def test_dft_opset_17_axis_attribute(rng):
    node = helper.make_node("DFT", ["x"], ["y"], axis=1, onesided=1)
    model = make_model([node], [("x", [2, 16, 1])], [("y", _dyn(3))], opset=17)
    _check(model, [{"x": rng.standard_normal((2, 16, 1), np.float32)}])


@pytest.mark.slow  # several kernels compiled: ~5 s
def test_speech_front_end(rng):
    """log-mel spectrogram: Hann window, STFT, |X|^2, mel filterbank, log."""
    nodes = [_const("n", 64), _const("step", 16), _const("bins", 10), _const("rate", 8000), _const("lo", 20.0),
             _const("hi", 3800.0),
             helper.make_node("HannWindow", ["n"], ["w"]),
             helper.make_node("STFT", ["x", "step", "w"], ["spec"]),
             helper.make_node("Mul", ["spec", "spec"], ["sq"]),
             helper.make_node("ReduceSum", ["sq", "axes"], ["power"], keepdims=0),
             helper.make_node("MelWeightMatrix", ["bins", "n", "rate", "lo", "hi"], ["mel"]),
             helper.make_node("MatMul", ["power", "mel"], ["m"]),
             helper.make_node("Add", ["m", "eps"], ["me"]),
             helper.make_node("Log", ["me"], ["y"])]
    model = make_model(nodes, [("x", ["b", 400, 1])], [("y", _dyn(3))],
                       initializers={"eps": np.float32(1e-6), "axes": np.array([-1])})
    _check(model, [{"x": rng.standard_normal((b, 400, 1), np.float32)} for b in (1, 2)])


def test_stft_with_run_time_window_and_complex_input(rng):
    nodes = [_const("step", 3), _const("len", 8),
             helper.make_node("STFT", ["x", "step", "w", "len"], ["y"], onesided=0)]
    model = make_model(nodes, [("x", [2, 30, 2]), ("w", [8])], [("y", _dyn(4))])
    _check(model, [{"x": rng.standard_normal((2, 30, 2), np.float32), "w": rng.random(8, np.float32)}])


def test_onesided_complex_dft_is_refused():
    node = helper.make_node("DFT", ["x"], ["y"], axis=1, onesided=1)
    model = make_model([node], [("x", [2, 16, 2])], [("y", _dyn(3))], opset=17)
    with pytest.raises(UnsupportedOperatorError, match="a real one .last dim 1. when not"):
        InferenceSession(model.SerializeToString())


@pytest.mark.parametrize("op", ["HannWindow", "BlackmanWindow"])
def test_window_of_a_run_time_size(op):
    node = helper.make_node(op, ["n"], ["w"], periodic=0)
    model = make_model([node], [("n", [], np.int64)], [("w", ["m"])])
    _check(model, [{"n": np.array(n, np.int64)} for n in (10, 3)], rtol=1e-6)


@pytest.mark.parametrize("axis", [-1, 3, -4])
def test_dft_axis_must_be_a_signal_axis(axis):
    nodes = [_const("axis", axis), helper.make_node("DFT", ["x", "", "axis"], ["y"])]
    model = make_model(nodes, [("x", [2, 16, 1])], [("y", _dyn(3))], opset=20)
    with pytest.raises(UnsupportedOperatorError, match=f"axis {axis} is not a signal axis"):
        InferenceSession(model.SerializeToString())


def test_stft_of_a_signal_without_its_complex_dim_is_refused():
    nodes = [_const("step", 4), _const("len", 8), helper.make_node("STFT", ["x", "step", "", "len"], ["y"])]
    model = make_model(nodes, [("x", [2, 30])], [("y", _dyn(4))])
    with pytest.raises(UnsupportedOperatorError, match=r"needs a signal \[batch, length, 1 or 2\]"):
        InferenceSession(model.SerializeToString())
