"""The .pfm format: layout, checksums, metadata, CPU feature checks, dynamic batch, inspect."""
import hashlib
import json
import struct

import numpy as np
import pytest
from onnx import helper

from conftest import assert_close, make_model, ort_run
from pyflame_rt import BackendError, InferenceSession, InvalidModelError, UnsupportedFormatError, cli
from pyflame_rt import artifact
from pyflame_rt.compiler import CompileOptions, compile_model

PREFIX = struct.Struct("<4sIQ32s32s")


def mlp(hidden=64, metadata=None):
    rng = np.random.default_rng(0)
    m = make_model(
        [helper.make_node("Gemm", ["x", "w1", "b1"], ["h"], transB=1), helper.make_node("Relu", ["h"], ["r"]),
         helper.make_node("Gemm", ["r", "w2", "b2"], ["y"], transB=1)],
        [("x", ["batch", 32])], [("y", ["batch", 10])],
        {"w1": rng.standard_normal((hidden, 32)).astype(np.float32), "b1": rng.standard_normal(hidden).astype(np.float32),
         "w2": rng.standard_normal((10, hidden)).astype(np.float32), "b2": rng.standard_normal(10).astype(np.float32)},
        name="tiny_mlp")
    m.producer_name, m.producer_version = "pyflame-tests", "1.0"
    for k, v in (metadata or {}).items():
        m.metadata_props.add(key=k, value=v)
    return m


@pytest.fixture(scope="module")
def model():
    return mlp(metadata={"author": "tests", "license": "MIT"})


@pytest.fixture(scope="module")
def pfm(model, tmp_path_factory):
    path = tmp_path_factory.mktemp("pfm") / "m.pfm"
    artifact.save(compile_model(model.SerializeToString()), path)
    return str(path)


def read_header(data: bytes) -> dict:
    hlen = PREFIX.unpack_from(data)[2]
    return json.loads(data[PREFIX.size:PREFIX.size + hlen])


def reseal(data: bytes) -> bytes:
    """`data` with its SHA-256 recomputed and no signature, as anyone can do after editing a file."""
    return data[:16] + hashlib.sha256(data[:16] + data[80:]).digest() + bytes(32) + data[80:]


def test_layout_matches_the_spec(pfm):
    data = open(pfm, "rb").read()
    magic, version, hlen, digest, signature = PREFIX.unpack_from(data)
    assert (magic, version, signature) == (b"PFM\0", artifact.FORMAT_VERSION, bytes(32))
    assert hashlib.sha256(data[:16] + data[80:]).digest() == digest  # every byte but the two auth fields
    h = json.loads(data[PREFIX.size:PREFIX.size + hlen])
    w, objects = h["sections"]["weights"], h["sections"]["objects"]
    assert w["offset"] % 64 == 0 and w["offset"] >= PREFIX.size + hlen
    end = w["offset"] + w["size"]
    for o in objects:  # each kernel's object, then the entry point's
        assert o["offset"] % 64 == 0 and o["offset"] == -(-end // 64) * 64
        assert data[o["offset"]:o["offset"] + 4] == b"\x7fELF" and o["format"] == "elf64-relocatable"
        end = o["offset"] + o["size"]
    assert len(objects) == h["kernel_count"]  # one per kernel
    assert len(data) % 64 == 0 and len(data) == -(-end // 64) * 64
    assert h["compiler_version"] and h["target"]["triple"] and h["target"]["cpu"] and h["target"]["features"]
    assert h["model"]["graph_name"] == "tiny_mlp" and h["model"]["opset"] == 17
    assert h["model"]["metadata"] == {"author": "tests", "license": "MIT"}
    assert h["inputs"] == [{"name": "x", "shape": ["batch", "32"], "dtype": "float32"}]
    assert h["kernels"] and all(isinstance(k, str) for k in h["kernels"])


def test_weights_are_a_private_read_only_aligned_copy(pfm):
    c = artifact.load(pfm)
    assert not c.weights.flags.writeable and c.weights.ctypes.data % 64 == 0


def test_session_metadata_and_custom_metadata(pfm):
    meta = InferenceSession(pfm).get_modelmeta()
    assert (meta.producer_name, meta.producer_version, meta.graph_name) == ("pyflame-tests", "1.0", "tiny_mlp")
    assert meta.custom_metadata_map == {"author": "tests", "license": "MIT"}


def test_every_checked_region_rejects_a_flip(pfm, tmp_path):
    data = open(pfm, "rb").read()
    h = read_header(data)
    w, o = h["sections"]["weights"], h["sections"]["objects"][-1]
    cases = {"length": 9, "digest": 20, "header": PREFIX.size + 5, "weights": w["offset"] + 3,
             "object": o["offset"] + o["size"] // 2, "padding": o["offset"] - 1, "end": len(data) - 1}
    for name, pos in cases.items():
        bad = bytearray(data)
        bad[pos] ^= 0x5A
        p = tmp_path / f"{name}.pfm"
        p.write_bytes(bytes(bad))
        with pytest.raises(InvalidModelError, match="checksum mismatch .SHA-256"):
            InferenceSession(str(p))


def test_truncated_extended_old_and_foreign_files(pfm, tmp_path):
    data = open(pfm, "rb").read()
    for n in (0, 3, 10, PREFIX.size, len(data) // 2, len(data) - 64):
        (tmp_path / "t.pfm").write_bytes(data[:n])
        with pytest.raises((InvalidModelError, UnsupportedFormatError)):
            artifact.load(tmp_path / "t.pfm")
    (tmp_path / "long.pfm").write_bytes(reseal(data + bytes(64)))
    with pytest.raises(InvalidModelError, match="sections end"):
        artifact.load(tmp_path / "long.pfm")
    old = bytearray(data)
    old[4:8] = struct.pack("<I", 2)  # the CRC-32 format before SHA-256
    (tmp_path / "old.pfm").write_bytes(bytes(old))
    with pytest.raises(UnsupportedFormatError, match="version 2 is not supported.*recompile"):
        artifact.load(tmp_path / "old.pfm")
    (tmp_path / "zip.pfm").write_bytes(b"PK\3\4" + bytes(100))
    with pytest.raises(UnsupportedFormatError, match="bad magic"):
        artifact.load(tmp_path / "zip.pfm")


def test_artifact_for_missing_cpu_features_is_refused(model, tmp_path):
    from pyflame_rt.targets.cpu.target import CPUTarget

    missing = CPUTarget.named("x86-64-v4").missing_on_host()
    if not missing:
        pytest.skip("this host has AVX-512: an x86-64-v4 artifact runs here")
    out = tmp_path / "v4.pfm"
    assert cli.main(["compile", "-q", "--cpu", "x86-64-v4", "-o", str(out), _save(model, tmp_path)]) == 0
    with pytest.raises(BackendError, match="x86-64-v4.*" + ".*".join(missing[:2])):
        InferenceSession(str(out))


def test_portable_artifact_runs_and_matches(model, tmp_path):
    out = tmp_path / "v3.pfm"
    artifact.save(compile_model(model.SerializeToString(), CompileOptions(cpu="x86-64-v3")), out)
    x = np.random.default_rng(3).standard_normal((5, 32)).astype(np.float32)
    assert_close(InferenceSession(str(out)).run(None, {"x": x})[0], ort_run(model, {"x": x})[0])


def test_one_artifact_serves_batch_1_7_32(pfm, model):
    sess = InferenceSession(pfm)
    for batch in (1, 7, 32, 7):
        x = np.random.default_rng(batch).standard_normal((batch, 32)).astype(np.float32)
        assert_close(sess.run(None, {"x": x})[0], ort_run(model, {"x": x})[0])


def test_inspect_prints_sections_and_ops(pfm, capsys):
    assert cli.main(["inspect", pfm]) == 0
    out = capsys.readouterr().out
    h = read_header(open(pfm, "rb").read())
    assert f"format {artifact.FORMAT_VERSION}" in out
    assert f"weights       {h['sections']['weights']['size']} bytes at offset {h['sections']['weights']['offset']}" in out
    assert "object" in out and "gemm x2" in out and "author=tests" in out
    assert f"sha256        {hashlib.sha256(open(pfm, 'rb').read()[:16] + open(pfm, 'rb').read()[80:]).hexdigest()}" in out
    assert "signature     none" in out
    assert "optimization  EXTENDED: 3 -> 2 graph nodes" in out  # the Relu is fused into the first Gemm


def _save(model, tmp_path) -> str:
    p = tmp_path / "model.onnx"
    p.write_bytes(model.SerializeToString())
    return str(p)
