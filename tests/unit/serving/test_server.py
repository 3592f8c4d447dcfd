"""ModelServer and ModelServerBuilder: explicit models, on_ready, the per-model request timeout
and queue limit."""
from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import helper

from conftest import make_model
from pyflame_rt.serving import MetricsRegistry, ModelClient, ModelServer, ModelServerBuilder

from .conftest import scale_model


def test_builder_configures_and_starts_a_server(tmp_path):
    onnx.save(scale_model(4.0), tmp_path / "scale.onnx")
    server = (ModelServerBuilder().host("127.0.0.1").port(0).workers(1).enable_metrics()
              .add_model("scale", str(tmp_path / "scale.onnx"), "3", max_concurrency=2)
              .enable_batching(16, 2000).api_keys("secret").build(MetricsRegistry()))
    assert isinstance(server, ModelServer)
    model = server.config.models[0]
    assert (model.enable_batching, model.max_batch_size, model.batch_timeout_us, model.max_concurrency) == \
        (True, 16, 2000, 2)
    ready = []
    server.on_ready(lambda: ready.append(True))
    with server:
        assert ready == [True]
        with ModelClient(server.url, api_key="secret") as client:
            r = client.infer("scale", {"x": np.ones((3, 4), np.float32)})
            assert r.success and r.model_version == "3" and (r.outputs["y"] == 4).all()


def slow_model(layers: int = 40, width: int = 512) -> onnx.ModelProto:
    """`layers` chained [1, width] x [width, width] MatMul + Tanh: many kernels, so a deadline hits."""
    nodes, name = [], "x"
    for i in range(layers):
        nodes += [helper.make_node("MatMul", [name, "w"], [f"m{i}"]), helper.make_node("Tanh", [f"m{i}"], [f"t{i}"])]
        name = f"t{i}"
    nodes.append(helper.make_node("Identity", [name], ["y"]))
    w = np.random.default_rng(0).standard_normal((width, width)).astype(np.float32) / width ** 0.5
    return make_model(nodes, [("x", [1, width])], [("y", [1, width])], {"w": w})


@pytest.mark.slow
def test_request_timeout_is_504_a_full_queue_is_503_and_the_server_goes_on(tmp_path):
    onnx.save(slow_model(), tmp_path / "slow.onnx")
    server = ModelServerBuilder().port(0).add_model("slow", str(tmp_path / "slow.onnx"), request_timeout_ms=1) \
        .add_model("queued", str(tmp_path / "slow.onnx"), max_queue_size=1).build(MetricsRegistry())
    x = {"x": np.ones((1, 512), np.float32)}
    with server, ModelClient(server.url, retries=0) as client:
        r = client.infer("slow", x)
        assert not r.success and r.status_code == 504 and "timed out" in r.error_message
        codes = [r.status_code for r in client.infer_batch("queued", [x] * 12, max_workers=12)]
        assert 200 in codes and 503 in codes and set(codes) == {200, 503}  # one runs, one waits, others refused
        assert client.infer("queued", x).success


def test_a_port_in_use_is_a_backend_error(server):
    from pyflame_rt.errors import BackendError
    from pyflame_rt.serving import ServerConfig

    config = ServerConfig()
    config.http.port = server.port
    with pytest.raises(BackendError, match="did not start"):
        ModelServer(config, MetricsRegistry()).start()
