"""ModelRegistry on real models: repository layout, version policies, load / unload / reload, and
hot reload that swaps a version under concurrent load without failing a request."""
from __future__ import annotations

import asyncio
import os
import threading
import time

import numpy as np
import onnx
import pytest

from pyflame_rt.errors import InvalidModelError, ValidationError
from pyflame_rt.serving import BatchingConfig, ModelClient, ModelRegistry, ThreadPoolRunner
from pyflame_rt.serving.registry import ModelNotFoundError

from .conftest import scale_model, start_server, two_output_model, write_version

X = np.ones((1, 4), np.float32)


def factor(mv) -> float:
    return float(asyncio.run(mv.runner.infer({"x": X}, None))["y"][0, 0])


@pytest.fixture
def registry():
    r = ModelRegistry()
    yield r
    r.close()


@pytest.mark.parametrize("policy, served", [
    ("", ["3"]), ("version_policy: {latest: {num_versions: 2}}", ["2", "3"]),
    ("version_policy: {specific: {versions: [1, 3]}}", ["1", "3"]), ("version_policy: all", ["1", "2", "3"]),
])
def test_version_policies(tmp_path, registry, policy, served):
    for v in ("1", "2", "3"):
        write_version(tmp_path, "scale", v, scale_model(float(v)))
    (tmp_path / "scale" / "config.yaml").write_text(policy)
    assert registry.load_from_directory(tmp_path) == ["scale"]
    assert [mv.version for mv in registry.list_versions("scale")] == served
    assert registry.get_latest("scale").version == served[-1] and factor(registry.get("scale")) == float(served[-1])
    assert registry.has("scale", served[0]) and not registry.has("scale", "7") and not registry.has("other")


def test_numeric_versions_sort_as_numbers(tmp_path, registry):
    for v in ("2", "10"):
        write_version(tmp_path, "scale", v, scale_model(float(v)))
    registry.load_from_directory(tmp_path)
    assert registry.get("scale").version == "10"


def test_config_file_settings_and_errors(tmp_path, registry):
    write_version(tmp_path, "scale", "1", scale_model(2.0))
    (tmp_path / "scale" / "config.yaml").write_text(
        "instance: {count: 3, num_threads: 1}\nrequest_timeout_ms: 500\ninputs: {x: [-1, 4]}\nmax_queue_size: 4\n"
        "batching: {enabled: true, max_batch_size: 16, max_queue_delay_us: 100, preferred_batch_sizes: [4, 8]}\n")
    registry.load_from_directory(tmp_path)
    config = registry.get("scale").config
    assert (config.max_concurrency, config.num_threads, config.request_timeout_ms, config.max_queue_size) == \
        (3, 1, 500, 4)
    assert config.batching == BatchingConfig(True, 16, 100, [4, 8])
    for text, message in [("colour: red", "unknown key"), ("batching: {max_batch_size: 0}", "max_batch_size"),
                          ("version_policy: {newest: 1}", "unknown version_policy"),
                          ("batching: {max_batch_size: 4, preferred_batch_sizes: [8]}", "exceeds max_batch_size"),
                          ("instance: {count: 0}", "max_concurrency"), ("[1, 2", "not valid YAML")]:
        (tmp_path / "scale" / "config.yaml").write_text(text)
        with pytest.raises(ValidationError, match=message):
            registry.reload("scale")


def test_load_unload_reload_and_errors(tmp_path, registry):
    path = write_version(tmp_path, "pair", "1", two_output_model())
    mv = registry.load_from_path("pair", str(path), "7")
    assert registry.list_models() == ["pair"] and mv.version == "7"
    registry.reload("pair")
    assert registry.get("pair") is not mv and not mv.ready
    registry.unload("pair", "7")
    assert not registry.has("pair")
    with pytest.raises(ModelNotFoundError, match="not loaded"):
        registry.get("pair")
    with pytest.raises(ModelNotFoundError):
        registry.unload("pair")
    with pytest.raises(InvalidModelError, match="no file"):
        registry.load_from_path("ghost", str(tmp_path / "ghost.onnx"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(InvalidModelError, match="has no version folder"):
        registry.load_from_directory(tmp_path)


def test_a_replaced_version_is_closed_only_after_its_last_lease(tmp_path, registry):
    write_version(tmp_path, "scale", "1", scale_model(2.0))
    registry.load_from_directory(tmp_path)
    closed = []
    with registry.lease("scale") as old:
        old.runner.close = lambda real=old.runner.close: (closed.append(True), real())
        write_version(tmp_path, "scale", "1", scale_model(5.0))
        os.utime(tmp_path / "scale" / "1" / "model.onnx", ns=(1, time.time_ns() + 10**9))
        registry.poll()
        assert not old.ready and not closed and factor(old) == 2.0  # still runs its in-flight request
        assert factor(registry.get("scale")) == 5.0
    assert closed == [True]


def test_hot_reload_under_concurrent_load_fails_no_request(tmp_path):
    write_version(tmp_path, "scale", "1", scale_model(2.0))
    server = start_server(tmp_path, hot_reload=True, poll_interval_s=0.1)
    results, stop = [], threading.Event()

    def load():
        with ModelClient(server.url, retries=0) as client:
            while not stop.is_set():
                r = client.infer("scale", {"x": X})
                results.append((r.success, r.error_message, float(r.outputs["y"][0, 0]) if r.success else None))

    clients = [threading.Thread(target=load) for _ in range(4)]
    try:
        for c in clients:
            c.start()
        time.sleep(0.3)
        write_version(tmp_path, "scale", "2", scale_model(3.0))  # a new version: latest 1 swaps 1 -> 2
        deadline = time.monotonic() + 20
        while not (results and results[-1][2] == 3.0) and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.3)
    finally:
        stop.set()
        for c in clients:
            c.join()
        server.stop()
    failures = [r for r in results if not r[0]]
    assert not failures, failures[:3]
    values = [r[2] for r in results]
    assert values[0] == 2.0 and values[-1] == 3.0 and set(values) == {2.0, 3.0}
    assert values.index(3.0) > 0 and 2.0 not in values[values.index(3.0) + 8:]  # no flip-flop after the swap


def test_hot_reload_of_an_explicit_model_file_and_a_broken_file_keeps_the_old(tmp_path, registry):
    path = tmp_path / "scale.onnx"
    onnx.save(scale_model(2.0), path)
    registry.load_from_path("scale", str(path), "1")
    reloads = []
    registry.set_reload_callback(lambda name, version: reloads.append((name, version)))
    onnx.save(scale_model(7.0), path)
    os.utime(path, ns=(1, time.time_ns() + 10**9))
    registry.poll()
    assert factor(registry.get("scale")) == 7.0 and reloads == [("scale", "1")]
    path.write_bytes(b"half a model")
    registry.poll()  # logged, not raised
    assert factor(registry.get("scale")) == 7.0 and reloads == [("scale", "1")]


def test_a_failed_repository_load_closes_what_it_had_loaded(tmp_path):
    opened, closed = [], []

    class Counting(ThreadPoolRunner):
        def __init__(self, path, config):
            super().__init__(path, config)
            opened.append(path)

        def close(self):
            closed.append(True)
            super().close()

    write_version(tmp_path, "scale", "1", scale_model(2.0))
    (tmp_path / "scale" / "2").mkdir()
    (tmp_path / "scale" / "2" / "model.onnx").write_bytes(b"not onnx")
    (tmp_path / "scale" / "config.yaml").write_text("version_policy: all")
    registry = ModelRegistry(Counting)
    with pytest.raises(InvalidModelError):
        registry.load_from_directory(tmp_path)
    assert len(opened) == 1 and closed == [True] and not registry.has("scale")
