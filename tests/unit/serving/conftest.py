"""Serving fixtures: a Triton-style repository of small ONNX models and real servers on loopback."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import helper

from conftest import make_model
from pyflame_rt.serving import MetricsRegistry, ModelServer, ServerConfig


def scale_model(factor: float) -> onnx.ModelProto:
    """y = x * factor, x of shape [batch, 4] float32."""
    return make_model([helper.make_node("Mul", ["x", "k"], ["y"])], [("x", ["batch", 4])], [("y", ["batch", 4])],
                      {"k": np.full((4,), factor, np.float32)})


def two_output_model() -> onnx.ModelProto:
    """relu = max(x, 0), neg = -x, x of shape [batch, 3] float32."""
    return make_model([helper.make_node("Relu", ["x"], ["relu"]), helper.make_node("Neg", ["x"], ["neg"])],
                      [("x", ["batch", 3])], [("relu", ["batch", 3]), ("neg", ["batch", 3])])


def write_version(repo: Path, name: str, version: str, model: onnx.ModelProto) -> Path:
    folder = repo / name / version
    folder.mkdir(parents=True, exist_ok=True)
    onnx.save(model, folder / "model.onnx")
    return folder / "model.onnx"


@pytest.fixture(scope="package")
def repo(tmp_path_factory) -> Path:
    """scale: versions 1 (x2) and 2 (x3), policy latest 2; pair: two outputs."""
    root = tmp_path_factory.mktemp("repo")
    write_version(root, "scale", "1", scale_model(2.0))
    write_version(root, "scale", "2", scale_model(3.0))
    (root / "scale" / "config.yaml").write_text("version_policy: {latest: {num_versions: 2}}\ninstance: {count: 2}\n")
    write_version(root, "pair", "1", two_output_model())
    return root


def start_server(repo: Path | None = None, metrics: MetricsRegistry | None = None, grpc: bool = False,
                 **settings) -> ModelServer:
    """A server on a free loopback port (and gRPC on another when `grpc`); its metrics are its own
    unless given."""
    config = ServerConfig(model_dir=str(repo or ""))
    config.http.port = 0
    config.grpc.enabled, config.grpc.port = grpc, 0
    for key, value in settings.items():
        target = config.security if hasattr(config.security, key) else config.http if hasattr(config.http, key) \
            else config
        setattr(target, key, value)
    server = ModelServer(config, metrics or MetricsRegistry())
    server.start()
    return server


@pytest.fixture(scope="package")
def server(repo):
    s = start_server(repo, MetricsRegistry.instance())
    yield s
    s.stop()
