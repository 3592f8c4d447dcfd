"""The rest of the ORT-style API: RunOptions.timeout_ms, profiling, concurrent runs, graph inputs."""
import json
import re
import threading

import numpy as np
import pytest
from onnx import helper

from conftest import assert_close, make_model, ort_run
from test_artifact import mlp
from pyflame_rt import (ExecutionMode, InferenceSession, LogLevel, OptLevel, RunOptions, RunTimeoutError,
                        SessionOptions, ValidationError)
from pyflame_rt import artifact
from pyflame_rt.compiler import compile_model
from pyflame_rt.importers.onnx import from_onnx


def deep_mlp(layers=6, width=1024):
    rng = np.random.default_rng(0)
    nodes, inits, x = [], {}, "x"
    for i in range(layers):
        inits[f"w{i}"] = (rng.standard_normal((width, width)) / np.sqrt(width)).astype(np.float32)
        nodes += [helper.make_node("MatMul", [x, f"w{i}"], [f"m{i}"]), helper.make_node("Relu", [f"m{i}"], [f"r{i}"])]
        x = f"r{i}"
    nodes.append(helper.make_node("Identity", [x], ["y"]))
    return make_model(nodes, [("x", ["batch", width])], [("y", ["batch", width])], inits)


def compiled(model, tmp_path_factory):
    path = tmp_path_factory.mktemp("pfm") / "model.pfm"
    artifact.save(compile_model(model), path)
    return model, str(path)


@pytest.fixture(scope="module")
def deep(tmp_path_factory):
    return compiled(deep_mlp(), tmp_path_factory)


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    return compiled(mlp(), tmp_path_factory)


def test_timeout_stops_the_run_between_kernels(deep):
    model, path = deep
    sess = InferenceSession(path)
    x = np.random.default_rng(0).standard_normal((512, 1024)).astype(np.float32)
    full = sess.run(None, {"x": x})[0]
    with pytest.raises(RunTimeoutError, match=r"timeout_ms=1: stopped after \d+ kernel calls") as err:
        sess.run(None, {"x": x}, RunOptions(timeout_ms=1))
    assert isinstance(err.value, TimeoutError)
    done = int(re.search(r"stopped after (\d+)", str(err.value)).group(1))
    assert done < len(sess.header["step_ops"])  # it stopped early instead of finishing the run
    # the session is unharmed: the next run (generous deadline) is complete and correct
    again = sess.run(None, {"x": x}, RunOptions(timeout_ms=60_000))[0]
    np.testing.assert_array_equal(again, full)
    assert_close(full, ort_run(model, {"x": x})[0], 1e-3)


@pytest.mark.parametrize("bad", [-1, 1.5, True, "10"])
def test_run_options_are_validated(small, bad):
    sess = InferenceSession(small[1])
    with pytest.raises(ValidationError, match="timeout_ms"):
        sess.run(None, {"x": np.ones((1, 32), np.float32)}, RunOptions(timeout_ms=bad))
    ro = RunOptions()
    ro.run_tag, ro.log_level = "req-1", 3
    assert (ro.tag, ro.log_severity_level) == ("req-1", 3)


def test_profiling_writes_a_chrome_trace_with_kernel_times(small, tmp_path):
    model, path = small
    opts = SessionOptions(enable_profiling=True, profile_file_prefix=str(tmp_path / "prof"))
    sess = InferenceSession(path, opts)
    for batch in (2, 5):
        sess.run(None, {"x": np.ones((batch, 32), np.float32)})
    trace_path = sess.end_profiling()
    assert trace_path.startswith(str(tmp_path / "prof")) and trace_path.endswith(".json")
    events = json.load(open(trace_path))
    assert all(e["ph"] == "X" and e["dur"] >= 0 and e["ts"] >= 0 for e in events)
    runs = [e for e in events if e["name"] == "model_run"]
    kernels = [e for e in events if e["cat"] == "Kernel"]
    assert [r["args"]["dims"] for r in runs] == [{"batch": 2}, {"batch": 5}]
    assert {e["args"]["kernel"] for e in kernels} <= set(sess.header["kernels"])
    assert [e["name"] for e in kernels if e["args"]["run"] == 0] == sess.header["step_ops"]
    assert {"gemm#1", "gemm#2"} <= set(sess.header["step_ops"])
    assert len(kernels) == sum(r["args"]["kernel_calls"] for r in runs) > 0
    for r in runs:  # kernel events nest inside their run
        ks = [k for k in kernels if k["args"]["run"] == r["args"]["run"]]
        assert all(r["ts"] <= k["ts"] and k["ts"] + k["dur"] <= r["ts"] + r["dur"] + 1 for k in ks)
    assert any(e["name"] == "session_initialization" for e in events)
    assert InferenceSession(path).end_profiling() == ""


def test_sixteen_threads_share_one_session(small):
    model, path = small
    sess = InferenceSession(path, SessionOptions(num_threads=2))
    feeds = [np.random.default_rng(i).standard_normal((1 + i % 9, 32)).astype(np.float32) for i in range(16)]
    want = [ort_run(model, {"x": x})[0] for x in feeds]
    got: list = [None] * 16
    errors = []
    barrier = threading.Barrier(16)

    def worker(i):
        try:
            barrier.wait()
            for _ in range(20):
                got[i] = sess.run(None, {"x": feeds[i]})[0]
                assert_close(got[i], want[i])
        except Exception as e:  # reported below
            errors.append(e)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    for g, w in zip(got, want):
        assert_close(g, w)


def test_graph_input_providers_and_options(small):
    model, _ = small
    sess = InferenceSession(from_onnx(model), providers=[("CPUExecutionProvider", {})])
    assert not sess.cache_hit and sess.get_providers() == ["PyFlameCPUExecutionProvider"]
    x = np.ones((3, 32), np.float32)
    assert_close(sess.run(["y"], {"x": x})[0], ort_run(model, {"x": x})[0])
    o = SessionOptions()
    o.log_level, o.intra_op_num_threads = 1, 2
    assert (o.log_severity_level, o.num_threads) == (1, 2)
    for bad, match in [(dict(execution_mode=7), "execution_mode"), (dict(enable_profiling="yes"), "enable_profiling"),
                       (dict(device="cuda"), "device"), (dict(log_severity_level=9), "log_severity_level")]:
        (problem,) = SessionOptions(**bad).validate()
        assert match in problem
        with pytest.raises(ValidationError, match=match):
            InferenceSession(model.SerializeToString(), SessionOptions(**bad))


def test_guide_keyword_options_is_used_not_dropped(small):
    model, path = small
    bad = SessionOptions(device="wse")  # a keyword that dropped its value would not notice this
    with pytest.raises(ValidationError, match="device 'wse'"):
        InferenceSession(path, options=bad)
    sess = InferenceSession(path, options=SessionOptions(num_threads=1), providers=["CPUExecutionProvider"])
    assert sess.get_session_options().num_threads == 1
    x = np.ones((2, 32), np.float32)
    assert_close(sess.run(None, {"x": x})[0], ort_run(model, {"x": x})[0])
    with pytest.raises(TypeError, match="not both"):
        InferenceSession(path, SessionOptions(), options=SessionOptions())


@pytest.mark.parametrize("keyword", ["option", "session_options", "disabled_optimizers"])
def test_unknown_keywords_raise_type_error(small, keyword):
    with pytest.raises(TypeError, match=keyword):
        InferenceSession(small[1], **{keyword: SessionOptions()})


def test_provider_options_onnxruntime_style(small):
    path = small[1]
    sess = InferenceSession(path, providers=["CPUExecutionProvider"], provider_options=[{}])
    assert sess.get_providers() == ["PyFlameCPUExecutionProvider"]
    for providers, provider_options, match in [
            (["CPUExecutionProvider"], [{}, {}], "one dict per entry"),
            (["CPUExecutionProvider"], [{"arena_extend_strategy": 1}], "takes no options"),
            ([("CPUExecutionProvider", {"x": 1})], None, "takes no options"),
            (["CUDAExecutionProvider"], [{}], "not available")]:
        with pytest.raises(ValidationError, match=match):
            InferenceSession(path, providers=providers, provider_options=provider_options)


def test_modelmeta_has_producer_name_and_version_apart(small):
    meta = InferenceSession(small[1]).get_modelmeta()
    assert (meta.producer_name, meta.producer_version, meta.graph_name) == ("pyflame-tests", "1.0", "tiny_mlp")


def test_guide_option_values_and_validate_listing_every_problem():
    o = SessionOptions()
    o.execution_mode, o.log_level, o.num_threads = "sequential", "debug", 0
    assert o.validate() == [] and o.execution_mode is ExecutionMode.SEQUENTIAL and o.log_level is LogLevel.VERBOSE
    import onnxruntime as ort

    o.execution_mode, o.log_level = ort.ExecutionMode.ORT_PARALLEL, np.int64(3)
    assert o.validate() == [] and (o.execution_mode, o.log_level) == (ExecutionMode.PARALLEL, LogLevel.ERROR)
    for ort_level, level in [(ort.GraphOptimizationLevel.ORT_ENABLE_ALL, OptLevel.ALL),  # ORT's 99
                             (ort.GraphOptimizationLevel.ORT_DISABLE_ALL, OptLevel.NONE), ("basic", OptLevel.BASIC)]:
        o.graph_optimization_level = ort_level
        assert o.optimization_level is level
    bad = SessionOptions(device="wse3", execution_mode="fast", num_threads=-1)
    bad.log_level = "loud"
    problems = bad.validate()
    assert len(problems) == 4 and all(isinstance(p, str) for p in problems)
    for field, problem in zip(["num_threads", "device", "execution_mode", "log_severity_level"], problems):
        assert field in problem
    with pytest.raises(ValidationError) as err:
        bad.validated()
    assert err.value.errors == problems


def test_execution_mode_keeps_the_worker_count(small):
    """As in onnxruntime, the inter-op mode does not change how many threads split each kernel:
    code that sets ORT_SEQUENTIAL (onnxruntime's default) keeps every core."""
    model, path = small
    x = np.random.default_rng(1).standard_normal((64, 32)).astype(np.float32)
    want = ort_run(model, {"x": x})[0]
    assert InferenceSession(path).get_session_options().execution_mode is ExecutionMode.SEQUENTIAL
    cores = InferenceSession(path)._exec.pool.num_threads
    for mode, num_threads, workers in [("sequential", 0, cores), ("parallel", 0, cores), ("sequential", 3, 3),
                                       ("parallel", 2, 2)]:
        sess = InferenceSession(path, options=SessionOptions(num_threads=num_threads, execution_mode=mode))
        assert sess._exec.pool.num_threads == workers  # an explicit num_threads is what it says
        assert_close(sess.run(None, {"x": x})[0], want)


def test_log_level_sets_the_package_logger(small, caplog):
    path = small[1]
    opts = SessionOptions()
    opts.log_level = "info"
    InferenceSession(path, opts)
    assert any(r.name == "pyflame_rt" and r.levelname == "INFO" and path in r.getMessage() for r in caplog.records)
    caplog.clear()
    opts.log_level = "error"
    InferenceSession(path, opts)
    assert not [r for r in caplog.records if r.name == "pyflame_rt"]


def test_package_from_onnx_returns_a_session(small, tmp_path):
    import pyflame_rt

    model, pfm = small
    path = tmp_path / "model.onnx"
    path.write_bytes(model.SerializeToString())
    sess = pyflame_rt.from_onnx(str(path), SessionOptions(num_threads=1))
    assert isinstance(sess, InferenceSession) and sess.get_session_options().worker_threads() == 1
    x = np.ones((4, 32), np.float32)
    assert_close(sess.run(None, {"x": x})[0], ort_run(model, {"x": x})[0])
    assert pyflame_rt.from_onnx(model).get_inputs()[0].name == "x"  # a ModelProto too
    with pytest.raises(pyflame_rt.UnsupportedFormatError, match="InferenceSession"):
        pyflame_rt.from_onnx(pfm)


def test_the_guides_python_api_section_runs_as_written(small):
    """The guide's "Python API" and "Model Inspection" code, on a real artifact."""
    import pyflame_rt

    model, path = small
    options = pyflame_rt.SessionOptions()
    options.device = "cpu"
    options.num_threads = 2
    options.enable_profiling = False
    options.execution_mode = "sequential"
    options.optimization_level = pyflame_rt.OptLevel.EXTENDED
    options.verbose_optimization = False
    options.log_level = "warning"
    errors = options.validate()
    assert not errors
    session = pyflame_rt.InferenceSession(path, options=options, providers=["CPUExecutionProvider"])
    meta = session.get_modelmeta()
    assert f"{meta.producer_name} {meta.producer_version}" == "pyflame-tests 1.0" and meta.graph_name == "tiny_mlp"
    assert [(i.name, i.type) for i in session.get_inputs()] == [("x", "tensor(float)")]
    assert session.get_providers() == ["PyFlameCPUExecutionProvider"]
    run_opts = pyflame_rt.RunOptions()
    run_opts.tag, run_opts.log_level, run_opts.timeout_ms = "inference_run_1", "debug", 5000
    input_data = np.random.default_rng(0).standard_normal((1, 32)).astype(np.float32)
    results = session.run(["y"], {"x": input_data}, run_opts)
    assert_close(results[0], ort_run(model, {"x": input_data})[0])
    tensor = pyflame_rt.from_numpy(np.zeros((2, 3, 4), dtype=np.float32))  # "Tensor Properties"
    assert (tensor.ndim, tensor.num_elements, tensor.size_bytes, tensor.is_valid) == (3, 24, 96, True)
    assert tensor.dtype is pyflame_rt.DType.Float32 and tensor.reshape([6, 4]).shape == (6, 4)


# ------------------------------------------------------------------ quantization (docs/quantization.md)
def test_a_quantized_session_reports_and_its_artifact_keeps_the_report(tmp_path):
    from pyflame_rt.quantization import QuantConfig

    model = mlp()
    assert not InferenceSession(model.SerializeToString()).is_quantized()
    options = SessionOptions()
    options.quantization = QuantConfig.bfloat16()
    session = InferenceSession(model.SerializeToString(), options)
    report = session.quantization_report()
    assert session.is_quantized() and report.mode == "BFloat16"
    assert (report.nodes_quantized, report.nodes_total) == (3, 3) and report.compression_ratio == pytest.approx(2.0)
    assert report.weights_quantized and report.stored_size_mb > 0
    x = np.random.default_rng(0).standard_normal((2, 32)).astype(np.float32)
    (want,) = ort_run(model, {"x": x})
    assert_close(session.run(None, {"x": x})[0], want, rtol=0.03)
    path = tmp_path / "bf16.pfm"
    artifact.save(session._compiled, path)
    loaded = InferenceSession(str(path), options)
    assert loaded.is_quantized() and loaded.quantization_report() == report
    with pytest.raises(ValidationError, match="compiled in mode BFloat16, not FP16"):
        InferenceSession(str(path), SessionOptions(quantization=QuantConfig.fp16()))


def test_calibration_data_is_called_once_per_batch():
    from pyflame_rt.quantization import QuantConfig

    rng = np.random.default_rng(0)
    calls = []

    def batch():
        calls.append(1)
        return {"x": rng.standard_normal((2, 32)).astype(np.float32)}

    options = SessionOptions(quantization=QuantConfig.fp16(), calibration_data=batch, calibration_batches=3)
    report = InferenceSession(mlp(), options).quantization_report()
    assert len(calls) == 3 and all(layer.sqnr_db > 40 for layer in report.layers)  # measured on the batches
    options.quantization, options.calibration_batches = QuantConfig.static_int8(calibration_samples=2), None
    session = InferenceSession(mlp(), options)
    assert len(calls) == 5  # calibrated on calibration_samples batches
    report = session.quantization_report()
    assert report.mode == "StaticInt8" and report.nodes_quantized == report.nodes_total - 1 > 0


@pytest.mark.parametrize("change, message", [
    ({"quantization": "fp16"}, "quantization must be a QuantConfig"),
    ({"calibration_data": {"x": 1}}, "calibration_data must be a callable"),
    ({"calibration_data": dict}, "quantization is not set"),
    ({"calibration_batches": 0}, "calibration_batches must be an int >= 1 or None"),
])
def test_quantization_options_are_validated(change, message):
    with pytest.raises(ValidationError, match=message):
        InferenceSession(mlp(), SessionOptions(**change))
