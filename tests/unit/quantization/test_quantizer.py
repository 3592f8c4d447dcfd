from dataclasses import replace

import numpy as np
import pytest
from onnx import helper

from conftest import kernels_run, make_model, ort_run
from pyflame_rt import InferenceSession, SessionOptions
from pyflame_rt.errors import ValidationError
from pyflame_rt.importers.onnx import from_onnx
from pyflame_rt.quantization import Calibrator, QuantConfig, QuantGranularity, Quantizer
from pyflame_rt.quantization.quantizer import sqnr_db
from pyflame_rt.quantization.report import SQNR_CAP_DB, QuantizationReport
from pyflame_rt.transforms.quantize_static import int8_weight

from .models import cnn, matmul_layer_norm, mlp


def _f16(a):
    return np.asarray(a, np.float32).astype(np.float16).astype(np.float32)


def _cosine(a, b):
    a, b = a.ravel().astype(np.float64), b.ravel().astype(np.float64)
    return float(a @ b / np.linalg.norm(a) / np.linalg.norm(b))


def test_fp16_graph_computes_what_half_precision_does(rng):
    model, w = mlp(rng)
    result = Quantizer(QuantConfig.fp16()).quantize_dynamic(from_onnx(model))
    assert result.success
    assert (result.stats.nodes_quantized, result.stats.nodes_total) == (4, 5)
    assert result.stats.compression_ratio() == pytest.approx(2.0)
    assert [layer.precision for layer in result.report.layers] == ["float16"] * 4
    x = rng.standard_normal((3, 8)).astype(np.float32)
    (got,) = InferenceSession(result.quantized_graph).run(None, {"x": x})
    # every half op rounds its operands and result to float16 and accumulates in float32
    h = _f16(np.maximum(_f16(_f16(_f16(x) @ _f16(w["w1"])) + _f16(w["b1"])), 0))
    z = _f16(h @ _f16(w["w2"]))
    e = np.exp(z - z.max(-1, keepdims=True))
    np.testing.assert_allclose(got, e / e.sum(-1, keepdims=True), rtol=1e-5, atol=1e-6)


def test_the_original_graph_is_left_as_it_was(rng):
    graph = from_onnx(mlp(rng)[0])
    before = str(graph.module)
    Quantizer(QuantConfig.bfloat16()).quantize(graph)
    assert str(graph.module) == before


def test_layer_sqnr_is_measured_against_numpy(rng):
    model, w = mlp(rng)
    graph = from_onnx(model)
    calibrator = Calibrator(graph, QuantConfig.fp16())
    x = rng.standard_normal((4, 8)).astype(np.float32)
    calibrator.observe({"x": x})
    report = Quantizer(QuantConfig.fp16()).quantize(graph, calibrator.compute_quant_params()).report
    exact = x.astype(np.float64) @ w["w1"]
    noise = exact - _f16(_f16(x) @ _f16(w["w1"]))
    want = 10 * np.log10(np.sum(exact ** 2) / np.sum(noise ** 2))
    assert report.layers[0].node == "mm1" and report.layers[0].sqnr_db == pytest.approx(want, abs=0.05)


def test_layers_below_the_budget_stay_float32(rng):
    model, _ = mlp(rng)
    graph = from_onnx(model)
    config = QuantConfig.bfloat16()
    config.sqnr_budget_db = 1000.0  # no half layer is that accurate: every one stays float32
    report = Quantizer(config).quantize(graph).report  # sampled on a random feed
    assert report.nodes_quantized == 0 and len(report.kept_float32) == 4
    assert all("below the budget of 1000 dB" in layer.reason for layer in report.kept_float32)
    sqnrs = {layer.node: layer.sqnr_db for layer in report.layers}
    config.sqnr_budget_db = sorted(sqnrs.values())[1] + 0.01  # the two least accurate stay float32
    result = Quantizer(config).quantize(graph)
    kept = {layer.node for layer in result.report.kept_float32}
    assert kept == set(sorted(sqnrs, key=sqnrs.get)[:2]) and result.stats.nodes_quantized == 2
    text = str(result.quantized_graph.module)
    for node in kept:
        assert f'graph.node = "{node}"}} : (tensor<?x' in text
        assert all("bf16" not in line for line in text.splitlines()
                   if f'graph.node = "{node}"' in line and "graph.cast" not in line)


def test_excluded_ops_and_nodes(rng):
    config = QuantConfig.fp16()
    config.exclude_ops = ["MatMul", "relu"]
    report = Quantizer(config).quantize(from_onnx(mlp(rng)[0])).report
    assert {layer.node: layer.precision for layer in report.layers} == {
        "mm1": "float32", "add1": "float16", "relu": "float32", "mm2": "float32"}
    assert report.kept_float32[0].reason == "excluded by exclude_ops"
    assert report.compression_ratio == pytest.approx(832 / (8 * 16 * 4 + 16 * 2 + 16 * 4 * 4))


def test_int8_configs_default_to_per_channel_weights():
    for config in (QuantConfig(), QuantConfig.dynamic_int8(), QuantConfig.static_int8()):
        assert config.validated().granularity is QuantGranularity.PerChannel


def test_static_int8_needs_calibration(rng):
    with pytest.raises(ValidationError, match="StaticInt8 quantization needs calibration results"):
        Quantizer(QuantConfig.static_int8()).quantize(from_onnx(mlp(rng)[0]))


def _calibrated(graph, config, rng, shape, batches=4):
    calibrator = Calibrator(graph, config)
    for _ in range(batches):
        calibrator.observe({"x": rng.standard_normal(shape).astype(np.float32)})
    return calibrator.compute_quant_params()


@pytest.mark.slow  # compiles convolution kernels
@pytest.mark.parametrize("per_channel", [False, True], ids=["per_tensor", "per_channel"])
def test_static_int8_cnn_is_close_to_float32(per_channel, rng):
    graph, shape = from_onnx(cnn(rng)), (2, 3, 16, 16)
    config = QuantConfig.static_int8()
    config.granularity = "per_channel" if per_channel else "per_tensor"
    result = Quantizer(config).quantize(graph, _calibrated(graph, config, rng, shape))
    assert [(layer.node, layer.precision) for layer in result.report.layers] == [
        ("conv1", "int8"), ("conv2", "int8"), ("fc", "int8")]
    text = str(result.quantized_graph.module)
    # conv2 reads conv1's codes (its Relu is conv1's output clamp); the residual Add adds the codes
    # of both convolutions' results (its Relu is the Add's output clamp)
    assert "graph.relu" not in text and text.count("quant.add") == 1 and text.count("quant.quantize") == 2
    x = rng.standard_normal(shape).astype(np.float32)
    (want,) = InferenceSession(graph).run(None, {"x": x})
    (got,) = InferenceSession(result.quantized_graph).run(None, {"x": x})
    assert _cosine(got, want) >= 0.999
    assert np.abs(got - want).max() <= 0.03 * np.abs(want).max()


@pytest.mark.slow  # calibrates: compiles convolution kernels
def test_static_int8_layer_error_and_budget(rng):
    graph, shape = from_onnx(cnn(rng)), (2, 3, 16, 16)
    config = QuantConfig.static_int8()
    info = _calibrated(graph, config, rng, shape)
    layers = Quantizer(replace(config, sqnr_budget_db=0.0)).quantize(graph, info).report.layers
    sqnr = {layer.node: layer.sqnr_db for layer in layers}
    assert all(20 < s < SQNR_CAP_DB for s in sqnr.values())
    budget = sorted(sqnr.values())[1]  # the lowest layer falls below it
    report = Quantizer(replace(config, sqnr_budget_db=budget)).quantize(graph, info).report
    (kept,) = report.kept_float32
    assert kept.sqnr_db == min(sqnr.values()) and "below the budget" in kept.reason
    assert report.nodes_quantized == 2


@pytest.mark.parametrize("per_channel", [False, True], ids=["per_tensor", "per_channel"])
def test_dynamic_int8_mlp_is_close_to_float32(per_channel, rng):
    model, _ = mlp(rng)
    config = QuantConfig.dynamic_int8()
    config.granularity = "per_channel" if per_channel else "per_tensor"
    graph = from_onnx(model)
    result = Quantizer(config).quantize_dynamic(graph)
    assert (result.stats.nodes_quantized, result.stats.nodes_total) == (2, 5)
    assert [(layer.node, layer.precision) for layer in result.report.layers] == [("mm1", "int8"), ("mm2", "int8")]
    assert all(layer.sqnr_db is None for layer in result.report.layers)  # no budget: not measured
    # int8 weights (one byte each) and the float32 bias; the scales inline (per tensor) or as weights
    scales = (16 + 4) * 4 if per_channel else 0
    assert result.stats.quantized_bytes == 8 * 16 + 16 * 4 + 16 * 4 + scales
    text = str(result.quantized_graph.module)
    assert text.count("quant.dynamic_quantize") == 2 and text.count("quant.matmul_integer") == 2
    x = rng.standard_normal((3, 8)).astype(np.float32)
    (want,) = InferenceSession(graph).run(None, {"x": x})
    (got,) = InferenceSession(result.quantized_graph).run(None, {"x": x})
    assert _cosine(got, want) >= 0.99


def test_dynamic_int8_layer_error_and_budget(rng):
    model, w = mlp(rng)
    graph = from_onnx(model)
    config = QuantConfig.dynamic_int8()
    config.granularity = QuantGranularity.PerTensor  # the SQNR below: one scale for all of w1
    calibrator = Calibrator(graph, config)
    x = rng.standard_normal((4, 8)).astype(np.float32)
    calibrator.observe({"x": x})
    report = Quantizer(config).quantize(graph, calibrator.compute_quant_params()).report
    # mm1 on x fake-quantized to uint8 from its range and w1 to int8 symmetric
    lo, hi = min(x.min(), 0), max(x.max(), 0)
    scale = np.float32((hi - lo) / 255)
    zp = np.clip(np.rint(-lo / scale), 0, 255)
    xq = (np.clip(np.rint(x / scale) + zp, 0, 255) - zp) * scale
    ws = np.abs(w["w1"]).max() / 127
    exact = x.astype(np.float64) @ w["w1"]
    noise = exact - xq @ (np.rint(w["w1"] / ws) * ws)
    want = 10 * np.log10(np.sum(exact ** 2) / np.sum(noise ** 2))
    assert report.layers[0].node == "mm1" and report.layers[0].sqnr_db == pytest.approx(want, abs=0.05)
    config.sqnr_budget_db = report.layers[0].sqnr_db + 0.01  # mm1 is just below it
    config.exclude_ops = ["mm2"]
    result = Quantizer(config).quantize(graph, calibrator.compute_quant_params())
    assert [layer.precision for layer in result.report.layers] == ["float32", "float32"]
    assert "below the budget" in result.report.layers[0].reason
    assert result.report.layers[1].reason == "excluded by exclude_ops"
    assert "quant." not in str(result.quantized_graph.module)


def test_bad_arguments():
    with pytest.raises(ValidationError, match="QuantConfig"):
        Quantizer("fp16")
    with pytest.raises(ValidationError, match="ImportResult"):
        Quantizer(QuantConfig.fp16()).quantize(b"onnx bytes")


def test_sqnr_db():
    exact = np.ones(100)
    assert sqnr_db(exact, exact + 0.01) == pytest.approx(40.0)
    assert sqnr_db(exact, exact) == SQNR_CAP_DB


def test_report_json_round_trip(rng):
    report = Quantizer(QuantConfig.fp16()).quantize(from_onnx(mlp(rng)[0])).report
    assert QuantizationReport.from_json(report.to_json()) == report


@pytest.mark.slow  # compiles convolution kernels: tens of seconds with a cold kernel cache
@pytest.mark.parametrize("config, min_cosine", [(QuantConfig.fp16(), 0.99999), (QuantConfig.bfloat16(), 0.9999)],
                         ids=["fp16", "bf16"])
def test_cnn_accuracy_against_float32(config, min_cosine, rng):
    graph = from_onnx(cnn(rng))
    x = rng.standard_normal((2, 3, 16, 16)).astype(np.float32)
    (want,) = InferenceSession(graph).run(None, {"x": x})
    result = Quantizer(config).quantize(graph)
    (got,) = InferenceSession(result.quantized_graph).run(None, {"x": x})
    assert result.stats.nodes_quantized == 6  # two Conv, Add, two Relu, Gemm
    assert _cosine(got, want) >= min_cosine
    assert np.abs(got - want).max() <= 0.02 * np.abs(want).max()


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore::DeprecationWarning")
@pytest.mark.parametrize("config, min_cosine", [(QuantConfig.fp16(), 0.9999), (QuantConfig.bfloat16(), 0.999)],
                         ids=["fp16", "bf16"])
def test_transformer_encoder_accuracy_against_float32(config, min_cosine):
    tiny = pytest.importorskip("models.tiny_transformers")
    model = tiny.tiny_bert_onnx()
    graph = from_onnx(model)
    rng = np.random.default_rng(0)
    feeds = {"ids": rng.integers(0, 100, (2, 12)), "mask": np.ones((2, 12), np.int64)}
    (want,) = InferenceSession(graph).run(None, feeds)
    result = Quantizer(config).quantize(graph)
    (got,) = InferenceSession(result.quantized_graph).run(None, feeds)
    assert result.stats.nodes_quantized > 10 and result.stats.compression_ratio() > 1.5
    cosines = [_cosine(g, w) for g, w in zip(got.reshape(-1, got.shape[-1]), want.reshape(-1, want.shape[-1]))]
    assert min(cosines) >= min_cosine


def test_a_decomposed_layer_norm_stays_float32(rng):
    report = Quantizer(QuantConfig.fp16()).quantize(from_onnx(matmul_layer_norm(rng))).report
    assert [(layer.node, layer.precision) for layer in report.layers] == [("mm", "float16")]


def test_dynamic_int8_session(rng):
    model, _ = mlp(rng)
    options = SessionOptions()
    options.quantization = QuantConfig.dynamic_int8()
    session = InferenceSession(model.SerializeToString(), options)
    assert session.is_quantized()
    report = session.quantization_report()
    assert report.mode == "DynamicInt8" and report.nodes_quantized == 2 and report.compression_ratio > 2
    x = rng.standard_normal((5, 8)).astype(np.float32)
    (got,) = session.run(None, {"x": x})
    assert _cosine(got, ort_run(model, {"x": x})[0]) >= 0.99


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_dynamic_int8_transformer_encoder_against_float32():
    tiny = pytest.importorskip("models.tiny_transformers")
    model = tiny.tiny_bert_onnx()
    rng = np.random.default_rng(0)
    feeds = {"ids": rng.integers(0, 100, (2, 12)), "mask": np.ones((2, 12), np.int64)}
    (want,) = ort_run(model, feeds)
    options = SessionOptions()
    options.quantization = QuantConfig.dynamic_int8()
    session = InferenceSession(model.SerializeToString(), options)
    (got,) = session.run(None, feeds)
    report = session.quantization_report()
    assert session.is_quantized() and report.nodes_quantized >= 12 and report.compression_ratio > 1.5
    cosines = [_cosine(g, w) for g, w in zip(got.reshape(-1, got.shape[-1]), want.reshape(-1, want.shape[-1]))]
    assert min(cosines) >= 0.99


def _qdq(name: str, p, zero_point_dtype=np.uint8) -> tuple[list, dict]:
    """QuantizeLinear + DequantizeLinear of tensor `name` with parameters `p`: nodes, initializers."""
    s, z = f"{name}_s", f"{name}_z"
    nodes = [helper.make_node("QuantizeLinear", [name, s, z], [f"{name}_q"]),
             helper.make_node("DequantizeLinear", [f"{name}_q", s, z], [f"{name}_dq"])]
    return nodes, {s: np.float32(p.scale), z: np.asarray(p.zero_point).astype(zero_point_dtype)}


def test_static_int8_result_no_int8_layer_reads_is_not_rounded_to_codes(rng):
    """up's result is requantized for down; down's result (the graph's output) is the int32 product
    rescaled to float32 (in the integer GEMM's dequantizing epilogue): onnxruntime's QDQ model with
    no QuantizeLinear after down, within float rounding and a code of up's result (requantization
    ties)."""
    w = {"w1": rng.standard_normal((8, 16)).astype(np.float32), "w2": rng.standard_normal((16, 4)).astype(np.float32)}
    model = make_model([helper.make_node("MatMul", ["x", "w1"], ["h"], name="up"),
                        helper.make_node("MatMul", ["h", "w2"], ["y"], name="down")],
                       [("x", ["batch", 8])], [("y", ["batch", 4])], w)
    graph = from_onnx(model)
    config = QuantConfig.static_int8()
    info = _calibrated(graph, config, rng, (4, 8))
    result = Quantizer(config).quantize(graph, info)
    text = str(result.quantized_graph.module)
    assert text.count("quant.matmul ") == 1 and text.count("quant.matmul_integer") == 1
    nodes, inits = [], {}
    for name, key in (("x", "x"), ("h", "up:0")):
        more, consts = _qdq(name, info.params[key])
        nodes += more
        inits.update(consts)
    for name, axis in (("w1", 1), ("w2", 1)):
        codes, t = int8_weight(w[name], axis)
        inits.update({f"{name}_q": codes, f"{name}_s": np.array(t.scale_values, np.float32),
                      f"{name}_z": np.zeros(codes.shape[1], np.int8)})
        nodes.append(helper.make_node("DequantizeLinear", [f"{name}_q", f"{name}_s", f"{name}_z"], [f"{name}_dq"],
                                      axis=axis))
    qdq = make_model(nodes + [helper.make_node("MatMul", ["x_dq", "w1_dq"], ["h"]),
                              helper.make_node("MatMul", ["h_dq", "w2_dq"], ["y"])],
                     [("x", ["batch", 8])], [("y", ["batch", 4])], inits, opset=13)
    x = rng.standard_normal((6, 8)).astype(np.float32)
    (want,) = ort_run(qdq, {"x": x})
    session = InferenceSession(result.quantized_graph, SessionOptions(enable_profiling=True))
    (got,) = session.run(None, {"x": x})
    one_code = float(info.params["up:0"].scale) * np.abs(w["w2"]).max()
    np.testing.assert_allclose(got, want, atol=one_code)
    exact = np.mean(np.isclose(got, want, rtol=1e-5, atol=1e-5))
    assert exact >= 0.9  # most outputs read no requantization tie
    assert any("_dq_" in k for k in kernels_run(session, {"x": x}))
