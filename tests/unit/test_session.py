"""InferenceSession end to end: the MLP of issue #2 vs onnxruntime, artifacts, and input errors."""
import numpy as np
import onnx
import pytest

from conftest import assert_close, ort_run, repo_module
from pyflame_rt import (DType, DTypeMismatchError, InferenceSession, InputError, InvalidModelError, SessionOptions,
                        ShapeMismatchError, Tensor, UnsupportedFormatError, ValidationError, from_numpy)
from pyflame_rt import artifact
from pyflame_rt.compiler import compile_model


@pytest.fixture(scope="module")
def mlp_onnx(tmp_path_factory):
    """784-1024-1024-10 MLP (Flatten, Gemm + Relu layers, as torch exports it) with a dynamic batch dim."""
    path = tmp_path_factory.mktemp("mlp") / "mlp.onnx"
    onnx.save(repo_module("examples/build_mlp.py").build_mlp([784, 1024, 1024, 10]), path)
    return str(path)


@pytest.fixture(scope="module")
def mlp_pfm(mlp_onnx, tmp_path_factory):
    out = tmp_path_factory.mktemp("pfm") / "mlp.pfm"
    artifact.save(compile_model(mlp_onnx), out)
    return str(out)


@pytest.mark.parametrize("batch", [1, 3, 64])
def test_mlp_matches_onnxruntime_for_each_batch(mlp_pfm, mlp_onnx, batch):
    sess = InferenceSession(mlp_pfm)
    x = np.random.default_rng(batch).standard_normal((batch, 1, 28, 28)).astype(np.float32)
    (got,) = sess.run(None, {"input": x})
    (want,) = ort_run(onnx.load(mlp_onnx), {"input": x})
    assert_close(got, want, 1e-4)


def test_one_session_serves_all_batches(mlp_pfm, mlp_onnx):
    sess = InferenceSession(mlp_pfm)
    model = onnx.load(mlp_onnx)
    for batch in (1, 3, 64, 1):
        x = np.random.default_rng(7).standard_normal((batch, 1, 28, 28)).astype(np.float32)
        assert_close(sess.run(None, {"input": x})[0], ort_run(model, {"input": x})[0], 1e-4)


def test_pfm_runs_compiled_code_without_importing(mlp_pfm, monkeypatch):
    import pyflame_rt.compiler as compiler
    import pyflame_rt.importers.onnx.importer as importer

    def boom(*a, **k):
        raise AssertionError("the artifact path must not re-import or recompile")

    monkeypatch.setattr(importer.ONNXImporter, "import_model", boom)
    monkeypatch.setattr(compiler, "compile_model", boom)
    sess = InferenceSession(mlp_pfm)
    assert sess.run(None, {"input": np.zeros((2, 1, 28, 28), np.float32)})[0].shape == (2, 10)


def test_metadata_api(mlp_pfm):
    sess = InferenceSession(mlp_pfm, SessionOptions(num_threads=1))
    (inp,) = sess.get_inputs()
    (out,) = sess.get_outputs()
    assert (inp.name, inp.shape, inp.type) == ("input", ["batch", 1, 28, 28], "tensor(float)")
    assert (out.name, out.shape, out.type) == ("logits", ["batch", 10], "tensor(float)")
    assert sess.get_providers() == ["PyFlameCPUExecutionProvider"]
    assert sess.get_modelmeta().producer_name == "pyflame-rt examples"


def test_output_name_subset_and_tensor_feeds(mlp_pfm):
    sess = InferenceSession(mlp_pfm)
    x = np.ones((2, 1, 28, 28), np.float32)
    (a,) = sess.run(["logits"], {"input": from_numpy(x)})
    allocated = Tensor(list(x.shape), DType.Float32)
    allocated.fill(1.0)
    (b,) = sess.run(None, {"input": allocated})
    np.testing.assert_array_equal(a, b)
    with pytest.raises(InputError, match="unknown output name 'nope'"):
        sess.run(["nope"], {"input": x})


def test_run_with_outputs_writes_into_bound_arrays(mlp_pfm):
    """IO binding: a bound output is written in place (no copy), None ones are allocated; arrays
    that are of the wrong shape, dtype or layout, read-only, or that overlap a feed are refused."""
    sess = InferenceSession(mlp_pfm)
    x = np.random.default_rng(0).standard_normal((3, 1, 28, 28)).astype(np.float32)
    (want,) = sess.run(None, {"input": x})
    out = np.full((3, 10), np.nan, np.float32)
    (got,) = sess.run_with_outputs({"input": x}, [out])
    assert got is out
    np.testing.assert_array_equal(out, want)
    np.testing.assert_array_equal(sess.run_with_outputs({"input": x}, [None])[0], want)
    read_only = np.zeros((3, 10), np.float32)
    read_only.flags.writeable = False
    for bad, match in [(np.zeros((2, 10), np.float32), r"shape \[3, 10\], got a float32 array of shape \[2, 10\]"),
                       (np.zeros((3, 10), np.float64), "float32 array"),
                       (np.zeros((10, 3), np.float32).T, "non-contiguous"), (read_only, "read-only"), (x.reshape(-1)[:30].reshape(3, 10), "overlaps")]:
        with pytest.raises(InputError, match=match):
            sess.run_with_outputs({"input": x}, [bad])
    with pytest.raises(InputError, match="one per output"):
        sess.run_with_outputs({"input": x}, [])


@pytest.mark.parametrize("feed,error,match", [
    ({"inputs": np.zeros((1, 1, 28, 28), np.float32)}, InputError, r"unknown input name.*'inputs'.*\['input'\]"),
    ({}, InputError, r"missing input.*'input'"),
    ({"input": np.zeros((1, 28, 28), np.float32)}, ShapeMismatchError, "must have rank 4.*got rank 3"),
    ({"input": np.zeros((1, 1, 28, 27), np.float32)}, ShapeMismatchError, "dim 3 must be 28.*got 27"),
    ({"input": np.zeros((1, 1, 28, 28), np.float64)}, DTypeMismatchError, r"tensor\(float\).*float64"),
    ({"input": [[1.0]]}, InputError, "must be a numpy array"),
])
def test_bad_feeds_raise_specific_errors(mlp_pfm, feed, error, match):
    with pytest.raises(error, match=match):
        InferenceSession(mlp_pfm).run(None, feed)


def test_missing_and_garbage_files(tmp_path, mlp_pfm):
    with pytest.raises(InvalidModelError, match="not found"):
        InferenceSession(str(tmp_path / "missing.pfm"))
    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(b"\x08\x07garbage" * 50)
    with pytest.raises(InvalidModelError):
        InferenceSession(str(garbage))
    data = open(mlp_pfm, "rb").read()
    trunc = tmp_path / "trunc.pfm"
    trunc.write_bytes(data[: len(data) // 3])
    with pytest.raises(InvalidModelError):
        InferenceSession(str(trunc))
    flipped = bytearray(data)
    flipped[-100] ^= 0xFF
    corrupt = tmp_path / "corrupt.pfm"
    corrupt.write_bytes(bytes(flipped))
    with pytest.raises(InvalidModelError, match="checksum"):
        InferenceSession(str(corrupt))
    wrong_version = bytearray(data)
    wrong_version[4] = 99
    bad = tmp_path / "v99.pfm"
    bad.write_bytes(bytes(wrong_version))
    with pytest.raises(UnsupportedFormatError, match="version 99"):
        InferenceSession(str(bad))


def test_options_are_validated(mlp_pfm):
    with pytest.raises(ValidationError, match="num_threads"):
        InferenceSession(mlp_pfm, SessionOptions(num_threads=-1))
    with pytest.raises(ValidationError, match="provider"):
        InferenceSession(mlp_pfm, providers=["CUDAExecutionProvider"])


def test_num_threads_sets_the_pool(mlp_pfm):
    for n in (1, 3):
        sess = InferenceSession(mlp_pfm, SessionOptions(num_threads=n))
        assert sess._exec.pool.num_threads == n
        assert sess.run(None, {"input": np.ones((4, 1, 28, 28), np.float32)})[0].shape == (4, 10)
