"""The pyflame-rt command line, run as a user would (subprocess)."""
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]


def _cli(*args, cwd=None):
    exe = shutil.which("pyflame-rt") or str(Path(sys.executable).parent / "pyflame-rt")
    return subprocess.run([exe, *args], capture_output=True, text=True, cwd=cwd, timeout=300)


def test_compile_run_inspect_the_example(tmp_path):
    out = tmp_path / "mlp.pfm"
    r = _cli("compile", str(ROOT / "examples" / "mlp.onnx"), "-o", str(out))
    assert r.returncode == 0, r.stderr
    assert out.exists()
    r = _cli("run", str(out), "--dim", "batch=3")
    assert r.returncode == 0, r.stderr
    assert "output logits: shape [3, 10] float32 sha256:" in r.stdout
    r = _cli("inspect", str(out))
    assert r.returncode == 0 and "input         input: [batch, 1, 28, 28] float32" in r.stdout


@pytest.mark.slow
def test_run_with_input_files_is_deterministic(tmp_path):
    out = tmp_path / "mlp.pfm"
    assert _cli("compile", str(ROOT / "examples" / "mlp.onnx"), "-o", str(out), "-q").returncode == 0
    x = np.random.default_rng(0).standard_normal((2, 1, 28, 28)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    a = _cli("run", str(out), "--input", f"input={tmp_path / 'x.npy'}", "--save-dir", str(tmp_path))
    b = _cli("run", str(out), "--input", f"input={tmp_path / 'x.npy'}")
    assert a.returncode == 0, a.stderr
    digest = [line for line in a.stdout.splitlines() if line.startswith("output")]
    assert digest and digest == [line for line in b.stdout.splitlines() if line.startswith("output")]
    import onnxruntime as ort
    want = ort.InferenceSession(str(ROOT / "examples" / "mlp.onnx")).run(None, {"input": x})[0]
    got = np.load(tmp_path / "logits.npy")
    assert np.abs(got - want).max() <= 1e-4 * np.abs(want).max()


def test_errors_exit_2_with_the_exception_name(tmp_path):
    r = _cli("run", str(tmp_path / "missing.pfm"))
    assert r.returncode == 2 and "InvalidModelError" in r.stderr and "not found" in r.stderr
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"nonsense")
    r = _cli("compile", str(bad))
    assert r.returncode == 2 and "InvalidModelError" in r.stderr


@pytest.mark.slow
def test_bench_gemm_reports_ours_and_blas_per_thread_count(tmp_path):
    r = _cli("bench", "--gemm", "40,67", "--threads", "1")
    assert r.returncode == 0, r.stderr
    lines = [line for line in r.stdout.splitlines() if line.startswith("gemm")]
    assert [line.split()[1] for line in lines] == ["40^3", "67^3"]
    assert all("threads 1" in line and "numpy BLAS" in line and "ratio" in line for line in lines)


def test_bench_without_model_or_gemm_is_an_input_error():
    r = _cli("bench")
    assert r.returncode == 2 and "InputError" in r.stderr


@pytest.mark.slow
def test_bench_min_round_ms_gives_both_runtimes_more_runs(tmp_path):
    """A fast model gets more runs per round until a round lasts --min-round-ms; both runtimes the same."""
    out = tmp_path / "mlp.pfm"
    assert _cli("compile", str(ROOT / "examples" / "mlp.onnx"), "-o", str(out), "-q").returncode == 0
    r = _cli("bench", str(out), "--onnx", str(ROOT / "examples" / "mlp.onnx"), "--threads", "1",
             "--rounds", "2", "--runs", "3", "--min-round-ms", "30")
    assert r.returncode == 0, r.stderr
    runs = int(re.search(r"\((\d+) runs\)", r.stdout).group(1))
    assert runs > 2 * 3 and runs % 2 == 0  # 2 rounds of more than 3 runs each
    assert "ratio ours/onnxruntime" in r.stdout


@pytest.mark.slow
def test_bench_int8_static_against_our_float32(tmp_path):
    model = str(ROOT / "examples" / "mlp.onnx")
    np.savez(tmp_path / "cal.npz", input=np.random.default_rng(0).standard_normal((2, 1, 1, 28, 28)).astype(np.float32))
    r = _cli("bench", model, "--quantize", "int8-static", "--calibration", str(tmp_path / "cal.npz"),
             "--compare", "float32", "--threads", "1", "--rounds", "2", "--runs", "2")
    assert r.returncode == 0, r.stderr
    assert "pyflame-rt StaticInt8" in r.stdout and "pyflame-rt float32" in r.stdout
    error = float(re.search(r"ratio ours/float32 [\d.]+ +max relative error ([\d.e+-]+)", r.stdout).group(1))
    assert 0 < error < 0.05  # int8, and close to float32
    r = _cli("bench", model, "--compare", "tensorflow")
    assert r.returncode == 2 and "--compare supports onnxruntime and float32" in r.stderr


def test_bench_quantize_compiles_ours_in_bf16():
    """--quantize bf16: ours runs the bf16 model (a precision onnxruntime's float32 run shows as
    a relative error above float32's, yet within bf16's)."""
    r = _cli("bench", str(ROOT / "examples" / "mlp.onnx"), "--threads", "1", "--rounds", "1", "--runs", "2",
             "--warmup", "1", "--quantize", "bf16")
    assert r.returncode == 0, r.stderr
    error = float(re.search(r"max relative error (\S+)", r.stdout).group(1))
    assert 1e-5 < error < 2e-2


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.slow
@pytest.mark.parametrize("workers", ["1", "2"])
def test_serve_a_model_repository_until_sigterm(tmp_path, workers):
    import signal

    import onnx
    from conftest import make_model

    from pyflame_rt.serving import ModelClient

    (tmp_path / "relu" / "1").mkdir(parents=True)
    onnx.save(make_model([onnx.helper.make_node("Relu", ["x"], ["y"])], [("x", ["n", 2])], [("y", ["n", 2])]),
              tmp_path / "relu" / "1" / "model.onnx")
    port, grpc_port = _free_port(), _free_port()
    grpc = ["--grpc-port", str(grpc_port)] if workers == "1" else []
    exe = shutil.which("pyflame-rt") or str(Path(sys.executable).parent / "pyflame-rt")
    proc = subprocess.Popen([exe, "serve", "--model-repository", str(tmp_path), "--port", str(port),
                             "--workers", workers, *grpc], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        with ModelClient(f"http://127.0.0.1:{port}") as client:
            assert client.wait_for_ready(timeout=120), proc.stderr.read() if proc.poll() is not None else ""
            r = client.infer("relu", {"x": np.array([[-1.0, 2.0]], np.float32)})
            assert r.success and r.outputs["y"].tolist() == [[0.0, 2.0]]
        if workers == "1":  # printed once both protocols listen
            announced = proc.stdout.readline()
            assert announced == f"serving ['relu'] on http://127.0.0.1:{port} and grpc://127.0.0.1:{grpc_port}\n"
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err


def test_serve_refuses_a_missing_repository(tmp_path):
    r = _cli("serve", "--model-repository", str(tmp_path / "none"), "--port", "0")
    assert r.returncode == 2 and "InvalidModelError" in r.stderr and "is not a directory" in r.stderr


@pytest.mark.slow
def test_compile_quantized_and_inspect_the_report(tmp_path):
    out = tmp_path / "mlp-fp16.pfm"
    r = _cli("compile", str(ROOT / "examples" / "mlp.onnx"), "--quantize", "fp16", "-o", str(out), "-q")
    assert r.returncode == 0, r.stderr
    r = _cli("inspect", str(out))
    assert r.returncode == 0, r.stderr
    assert re.search(r"quantization  mode FP16: \d+ / \d+ nodes quantized, weights .* \(2\.00x\)", r.stdout)
    assert re.search(r"\((MatMul|Gemm)\): float16", r.stdout)


@pytest.mark.slow
def test_compile_int8_static(tmp_path):
    model = str(ROOT / "examples" / "mlp.onnx")
    r = _cli("compile", model, "--quantize", "int8-static", "-q")
    assert r.returncode == 2 and "--quantize int8-static needs --calibration" in r.stderr
    for flag in ("--per-channel", "--per-tensor"):
        r = _cli("compile", model, flag, "-q")
        assert r.returncode == 2 and "need --quantize" in r.stderr
    r = _cli("compile", model, "--quantize", "int8-dynamic", "--per-channel", "--per-tensor", "-q")
    assert r.returncode == 2 and "not allowed with argument" in r.stderr
    np.savez(tmp_path / "cal.npz", input=np.random.default_rng(0).standard_normal((2, 1, 1, 28, 28)).astype(np.float32))
    out = tmp_path / "mlp-static.pfm"
    r = _cli("compile", model, "--quantize", "int8-static", "--calibration", str(tmp_path / "cal.npz"),
             "--calibration-method", "entropy", "--per-channel", "-o", str(out))
    assert r.returncode == 0 and "calibrate: 2 batches" in r.stderr, r.stderr
    r = _cli("inspect", str(out))
    assert r.returncode == 0 and re.search(r"quantization  mode StaticInt8: [1-9]\d* / \d+ nodes quantized", r.stdout)


@pytest.mark.slow
def test_compile_int8_dynamic(tmp_path):
    out = tmp_path / "mlp-int8.pfm"
    r = _cli("compile", str(ROOT / "examples" / "mlp.onnx"), "--quantize", "int8-dynamic", "--per-tensor",
             "-o", str(out), "-q")
    assert r.returncode == 0, r.stderr
    r = _cli("inspect", str(out))
    assert r.returncode == 0, r.stderr
    assert re.search(r"quantization  mode DynamicInt8: [1-9]\d* / \d+ nodes quantized", r.stdout)
    assert re.search(r"\((MatMul|Gemm)\): int8", r.stdout)
