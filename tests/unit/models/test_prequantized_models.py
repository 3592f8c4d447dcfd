"""Pre-quantized models made by onnxruntime.quantization (static QDQ with a calibration reader,
dynamic) compile and match onnxruntime running the same quantized model within one quantization step."""
from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import helper, numpy_helper

from conftest import kernels_run, make_model, ort_run
import pyflame_rt as pf

quantization = pytest.importorskip("onnxruntime.quantization")


def _cnn(rng) -> onnx.ModelProto:
    """conv-relu, conv-relu, a residual add, global pooling, a classifier: [1, 3, 12, 12] -> [1, 10]."""
    w = {"w1": rng.standard_normal((8, 3, 3, 3)) * 0.3, "b1": rng.standard_normal(8) * 0.1,
         "w2": rng.standard_normal((8, 8, 3, 3)) * 0.2, "b2": rng.standard_normal(8) * 0.1,
         "fc": rng.standard_normal((8, 10)) * 0.5, "fb": rng.standard_normal(10) * 0.1}
    nodes = [helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["c1"], ["r1"]),
             helper.make_node("Conv", ["r1", "w2", "b2"], ["c2"], pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["c2"], ["r2"]),
             helper.make_node("Add", ["r1", "r2"], ["s"]),
             helper.make_node("GlobalAveragePool", ["s"], ["p"]),
             helper.make_node("Flatten", ["p"], ["f"]),
             helper.make_node("Gemm", ["f", "fc", "fb"], ["y"])]
    return make_model(nodes, [("x", [1, 3, 12, 12])], [("y", [1, 10])],
                      {k: v.astype(np.float32) for k, v in w.items()}, opset=17)


def _transformer_block(rng, d: int = 16, seq: int = 6) -> onnx.ModelProto:
    """One attention head and a feed-forward layer with residuals and LayerNorm: [1, seq, d]."""
    def mat(*shape):
        return (rng.standard_normal(shape) / np.sqrt(shape[0])).astype(np.float32)

    inits = {"wq": mat(d, d), "wk": mat(d, d), "wv": mat(d, d), "wo": mat(d, d), "w1": mat(d, 4 * d),
             "b1": np.zeros(4 * d, np.float32), "w2": mat(4 * d, d), "g": np.ones(d, np.float32),
             "beta": np.zeros(d, np.float32), "scale": np.array(1 / np.sqrt(d), np.float32)}
    nodes = [helper.make_node("MatMul", ["x", "wq"], ["q"]), helper.make_node("MatMul", ["x", "wk"], ["k"]),
             helper.make_node("MatMul", ["x", "wv"], ["v"]),
             helper.make_node("Transpose", ["k"], ["kt"], perm=[0, 2, 1]),
             helper.make_node("MatMul", ["q", "kt"], ["qk"]), helper.make_node("Mul", ["qk", "scale"], ["qks"]),
             helper.make_node("Softmax", ["qks"], ["a"], axis=-1), helper.make_node("MatMul", ["a", "v"], ["av"]),
             helper.make_node("MatMul", ["av", "wo"], ["o"]), helper.make_node("Add", ["x", "o"], ["h"]),
             helper.make_node("LayerNormalization", ["h", "g", "beta"], ["n"], axis=-1),
             helper.make_node("MatMul", ["n", "w1"], ["f1"]), helper.make_node("Add", ["f1", "b1"], ["f1b"]),
             helper.make_node("Relu", ["f1b"], ["f1r"]), helper.make_node("MatMul", ["f1r", "w2"], ["f2"]),
             helper.make_node("Add", ["n", "f2"], ["y"])]
    return make_model(nodes, [("x", [1, seq, d])], [("y", [1, seq, d])], inits, opset=17)


class _Reader(quantization.CalibrationDataReader):
    def __init__(self, feeds: list[dict]):
        self.feeds = iter(feeds)

    def get_next(self):
        return next(self.feeds, None)


def _quantize_static(model: onnx.ModelProto, feeds: list[dict], tmp_path, **kw) -> onnx.ModelProto:
    src, dst = tmp_path / "float.onnx", tmp_path / "qdq.onnx"
    onnx.save(model, src)
    quantization.quantize_static(str(src), str(dst), _Reader(feeds), quant_format=quantization.QuantFormat.QDQ, **kw)
    return onnx.load(dst)


def _quantize_dynamic(model: onnx.ModelProto, tmp_path) -> onnx.ModelProto:
    src, dst = tmp_path / "float.onnx", tmp_path / "dynamic.onnx"
    onnx.save(model, src)
    quantization.quantize_dynamic(str(src), str(dst), weight_type=quantization.QuantType.QInt8)
    return onnx.load(dst)


def _output_step(model: onnx.ModelProto) -> float:
    """The scale of the DequantizeLinear that produces the graph output."""
    out = model.graph.output[0].name
    node = next(n for n in model.graph.node if out in n.output)
    assert node.op_type == "DequantizeLinear"
    init = {i.name: i for i in model.graph.initializer}
    return float(numpy_helper.to_array(init[node.input[1]]))


def _ort_unfused(model: onnx.ModelProto, feeds: dict) -> np.ndarray:
    """onnxruntime computing the model as its QDQ nodes define it (no fusion into QLinear kernels)."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    opts.intra_op_num_threads = 1
    return ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"]).run(None, feeds)[0]


def _ours(model: onnx.ModelProto, feeds: dict) -> np.ndarray:
    return pf.InferenceSession(model.SerializeToString()).run(None, feeds)[0]


@pytest.mark.slow
@pytest.mark.parametrize("per_channel", [False, True])
def test_static_qdq_cnn_matches_onnxruntime(tmp_path, rng, per_channel):
    model = _cnn(rng)
    calib = [{"x": rng.standard_normal((1, 3, 12, 12)).astype(np.float32)} for _ in range(8)]
    qdq = _quantize_static(model, calib, tmp_path, per_channel=per_channel)
    assert any(n.op_type == "QuantizeLinear" for n in qdq.graph.node)
    step = _output_step(qdq)
    for _ in range(3):
        feeds = {"x": rng.standard_normal((1, 3, 12, 12)).astype(np.float32)}
        err = np.abs(_ours(qdq, feeds) - ort_run(qdq, feeds)[0]).max()
        assert err <= step * 1.001, f"{err} > one step {step}"


@pytest.mark.slow
def test_dynamic_transformer_block_matches_onnxruntime(tmp_path, rng):
    model = _transformer_block(rng)
    dyn = _quantize_dynamic(model, tmp_path)
    assert any(n.op_type == "MatMulInteger" for n in dyn.graph.node)
    feeds = {"x": rng.standard_normal((1, 6, 16)).astype(np.float32)}
    ours, ref, fp32 = _ours(dyn, feeds), ort_run(dyn, feeds)[0], ort_run(model, feeds)[0]
    # one step of the activations' dynamic scale, carried through the block's gain
    assert np.abs(ours - ref).max() <= 0.02 * np.abs(ref).max()
    assert np.abs(ours - fp32).max() <= 0.1 * np.abs(fp32).max()  # and still the float network


@pytest.mark.slow
def test_static_qdq_transformer_block_matches_onnxruntime(tmp_path, rng):
    model = _transformer_block(rng)
    calib = [{"x": rng.standard_normal((1, 6, 16)).astype(np.float32)} for _ in range(8)]
    qdq = _quantize_static(model, calib, tmp_path)
    feeds = {"x": rng.standard_normal((1, 6, 16)).astype(np.float32)}
    ours, step = _ours(qdq, feeds), _output_step(qdq)
    assert np.abs(ours - _ort_unfused(qdq, feeds)).max() <= step * 1.001
    # onnxruntime's fused int8 kernels round intermediates differently from the QDQ graph they replace
    # (softmax, the residual adds): up to two output steps on a few elements
    assert np.abs(ours - ort_run(qdq, feeds)[0]).max() <= 2 * step * 1.001


@pytest.mark.slow
def test_static_qdq_int8_activations_run_the_integer_convolutions(tmp_path, rng):
    """onnxruntime's default QDQ activations are int8, and its Convs have an int32 bias: folded, they
    run the integer GEMM on signed activations."""
    model = _cnn(rng)
    calib = [{"x": rng.standard_normal((1, 3, 12, 12)).astype(np.float32)} for _ in range(8)]
    qdq = _quantize_static(model, calib, tmp_path, per_channel=True, activation_type=quantization.QuantType.QInt8)
    sess = pf.InferenceSession(qdq.SerializeToString(), pf.SessionOptions(enable_profiling=True))
    step = _output_step(qdq)
    for _ in range(3):
        feeds = {"x": rng.standard_normal((1, 3, 12, 12)).astype(np.float32)}
        err = np.abs(sess.run(None, feeds)[0] - ort_run(qdq, feeds)[0]).max()
        assert err <= step * 1.001, f"{err} > one step {step}"
    assert sum(k.startswith("gemm_s8s8") for k in kernels_run(sess, feeds)) >= 1


@pytest.mark.parametrize("per_channel", [False, True])
def test_static_qdq_gemm_runs_the_requantizing_gemm(tmp_path, rng, per_channel):
    """quantize_static's Gemm (torch's Linear: transB, a bias; int8 activations) folds to quant.gemm
    and runs the requantizing integer GEMM, within one output step of onnxruntime's QDQ graph."""
    inits = {"w1": rng.standard_normal((24, 16)) * 0.3, "b1": rng.standard_normal(24) * 0.1,
             "w2": rng.standard_normal((8, 24)) * 0.3, "b2": rng.standard_normal(8) * 0.1}
    nodes = [helper.make_node("Gemm", ["x", "w1", "b1"], ["h"], transB=1), helper.make_node("Relu", ["h"], ["r"]),
             helper.make_node("Gemm", ["r", "w2", "b2"], ["y"], transB=1)]
    model = make_model(nodes, [("x", [3, 16])], [("y", [3, 8])], {k: v.astype(np.float32) for k, v in inits.items()})
    calib = [{"x": rng.standard_normal((3, 16)).astype(np.float32)} for _ in range(8)]
    qdq = _quantize_static(model, calib, tmp_path, per_channel=per_channel)
    sess = pf.InferenceSession(qdq.SerializeToString(), pf.SessionOptions(enable_profiling=True))
    feeds = {"x": rng.standard_normal((3, 16)).astype(np.float32)}
    step = _output_step(qdq)
    assert np.abs(sess.run(None, feeds)[0] - _ort_unfused(qdq, feeds)).max() <= step * 1.001
    gemms = {k for k in kernels_run(sess, feeds) if k.startswith("gemm_")}
    assert gemms and all(k.endswith("_rq") for k in gemms)  # both Gemms, none in float32
