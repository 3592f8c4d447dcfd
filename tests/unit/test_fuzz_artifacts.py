"""Robustness fuzz: mutated and truncated .pfm artifacts and ONNX files, each opened in-process.

Every case must end in a clean PyFlameRTError (never a crash, hang or other exception):
artifacts with InvalidModelError / UnsupportedFormatError; corrupted bytes are caught
by the SHA-256 before any object code is loaded. Set PYFLAME_FUZZ_SCALE (default 1)
to multiply the case counts outside CI.
"""
import json
import os
import struct

import numpy as np
import pytest
from onnx import helper

from conftest import make_model
from test_artifact import reseal
from pyflame_rt import (DTypeMismatchError, InferenceSession, InvalidModelError, PyFlameRTError, SessionOptions,
                        ShapeMismatchError, UnsupportedFormatError, UnsupportedOperatorError, artifact)
from pyflame_rt.importers.onnx import from_onnx
from pyflame_rt.cache import CacheConfig
from pyflame_rt.compiler import compile_model

SCALE = int(os.environ.get("PYFLAME_FUZZ_SCALE", "1"))
ARTIFACT_ERRORS = (InvalidModelError, UnsupportedFormatError)
# a mutated ONNX file can also be well-formed protobuf describing an inconsistent model
ONNX_ERRORS = ARTIFACT_ERRORS + (UnsupportedOperatorError, ShapeMismatchError, DTypeMismatchError)
PREFIX = struct.Struct("<4sIQ32s32s")


def small_model():
    rng = np.random.default_rng(0)
    m = make_model([helper.make_node("Gemm", ["x", "w", "b"], ["h"], transB=1), helper.make_node("Relu", ["h"], ["y"])],
                   [("x", ["batch", 4])], [("y", ["batch", 3])],
                   {"w": rng.standard_normal((3, 4)).astype(np.float32), "b": np.ones(3, np.float32)})
    m.metadata_props.add(key="purpose", value="fuzz")
    return m


@pytest.fixture(scope="module")
def pfm_bytes(tmp_path_factory):
    path = tmp_path_factory.mktemp("fuzz") / "seed.pfm"
    artifact.save(compile_model(small_model()), path)
    data = path.read_bytes()
    assert InferenceSession(str(path)).run(None, {"x": np.ones((2, 4), np.float32)})[0].shape == (2, 3)
    return data


def mutate(data: bytes, rng) -> bytes:
    d = bytearray(data)
    kind = rng.integers(4)
    if kind == 0:  # truncate
        return bytes(d[:rng.integers(len(d))])
    if kind == 1:  # flip bits in 1..4 random bytes
        for _ in range(rng.integers(1, 5)):
            d[rng.integers(len(d))] ^= 1 << rng.integers(8)
    elif kind == 2:  # overwrite a random run of bytes
        at = rng.integers(len(d))
        d[at:at + rng.integers(1, 32)] = rng.bytes(int(rng.integers(1, 32)))
    else:  # append or insert garbage
        at = rng.integers(len(d) + 1)
        d[at:at] = rng.bytes(int(rng.integers(1, 64)))
    return bytes(d)


def open_artifact(path, data: bytes):
    path.write_bytes(data)
    try:
        InferenceSession(str(path))
    except ARTIFACT_ERRORS:
        return
    raise AssertionError("a mutated artifact loaded")


pytestmark = pytest.mark.slow


def test_mutated_and_truncated_artifacts_are_rejected(pfm_bytes, tmp_path):
    rng = np.random.default_rng(20240601)
    cases = 1500 * SCALE
    for i in range(cases):
        data = mutate(pfm_bytes, rng)
        if data == pfm_bytes:
            continue
        open_artifact(tmp_path / f"case{i % 8}.pfm", data)


def _with_header(data: bytes, edit) -> bytes:
    """Re-serialize an edited header with a *valid* SHA-256: only structure checks can catch it."""
    hlen = PREFIX.unpack_from(data)[2]
    header = json.loads(data[PREFIX.size:PREFIX.size + hlen])
    edit(header)
    raw = json.dumps(header, sort_keys=True, separators=(",", ":")).encode()
    raw = raw[:hlen].ljust(hlen)  # keep the length so the section offsets stay where they are
    return reseal(data[:PREFIX.size] + raw + data[PREFIX.size + hlen:])


def _leaves(obj, path=()):
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from _leaves(v, path + (k,))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            yield from _leaves(v, path + (i,))
    else:
        yield path


def test_type_confused_headers_with_valid_checksums(pfm_bytes, tmp_path):
    """Every header leaf replaced by a value of another type (or removed): a clean error or a
    working session (fields the loader does not use), never a crash."""
    hlen = PREFIX.unpack_from(pfm_bytes)[2]
    header = json.loads(pfm_bytes[PREFIX.size:PREFIX.size + hlen])
    replacements = [None, -1, "garbage", {}]
    outcomes = {"error": 0, "loaded": 0}
    for leaf in _leaves(header):
        for value in replacements + ["remove"]:
            def edit(h, leaf=leaf, value=value):
                node = h
                for k in leaf[:-1]:
                    node = node[k]
                if value == "remove":
                    del node[leaf[-1]]
                else:
                    node[leaf[-1]] = value
            path = tmp_path / "typed.pfm"
            path.write_bytes(_with_header(pfm_bytes, edit))
            try:
                sess = InferenceSession(str(path))
            except PyFlameRTError:
                outcomes["error"] += 1
                continue
            outcomes["loaded"] += 1
            x = np.ones([d if isinstance(d, int) else 2 for d in sess.get_inputs()[0].shape], np.float32)
            try:
                sess.run(None, {"x": x})
            except PyFlameRTError:
                pass
    assert outcomes["error"] > 0 and outcomes["loaded"] > 0


def test_mutated_and_truncated_onnx_files(tmp_path):
    rng = np.random.default_rng(7)
    seed = small_model().SerializeToString()
    compiled, imported = 0, 0
    opts = SessionOptions(cache=CacheConfig(enabled=False))
    for i in range(1000 * SCALE):
        data = mutate(seed, rng)
        path = tmp_path / "case.onnx"
        path.write_bytes(data)
        try:
            from_onnx(str(path))
        except ONNX_ERRORS:
            continue
        imported += 1
        if compiled < 3 * SCALE:  # opening compiles: bounded, it is the slow part
            compiled += 1
            try:
                sess = InferenceSession(str(path), opts)
                sess.run(None, {i.name: np.ones([d if isinstance(d, int) else 2 for d in i.shape], np.float32)
                                for i in sess.get_inputs()})
            except ONNX_ERRORS:
                pass
    assert imported > 0  # some mutations (e.g. of weight values) leave a valid model
