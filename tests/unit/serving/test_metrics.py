"""Prometheus metrics under the guide's names, as scraped from a real server."""
from __future__ import annotations

import httpx
import numpy as np
from prometheus_client.parser import text_string_to_metric_families

from pyflame_rt.serving import ModelClient
from pyflame_rt.serving.metrics import MetricsRegistry

GUIDE_NAMES = {"pyflame_request", "pyflame_request_latency_seconds", "pyflame_requests_active", "pyflame_model_loaded",
               "pyflame_batch_size", "pyflame_queue_size", "pyflame_inference_errors"}


def samples(text: str) -> dict:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def test_requests_latency_batch_and_errors_are_counted(server):
    before = samples(httpx.get(f"{server.url}/metrics").text)
    with ModelClient(server.url) as client:
        assert client.infer("pair", {"x": np.ones((5, 3), np.float32)}).success
        assert not client.infer("pair", {"x": np.ones((5, 4), np.float32)}).success
    text = httpx.get(f"{server.url}/metrics").text
    assert GUIDE_NAMES <= {f.name for f in text_string_to_metric_families(text)}
    after = samples(text)

    def delta(name, **labels):
        key = (name, tuple(sorted(labels.items())))
        return after.get(key, 0) - before.get(key, 0)

    assert delta("pyflame_request_total", model="pair", status="success") == 1
    assert delta("pyflame_request_total", model="pair", status="error") == 1
    assert delta("pyflame_inference_errors_total", model="pair", type="ShapeMismatchError") == 1
    assert delta("pyflame_request_latency_seconds_count", model="pair") == 1
    assert delta("pyflame_batch_size_bucket", model="pair", le="8.0") == 2  # both requests had batch 5
    assert after[("pyflame_model_loaded", (("model", "scale"), ("version", "2")))] == 1
    assert after[("pyflame_requests_active", (("model", "pair"),))] == 0


def test_singleton_export_and_reset():
    assert MetricsRegistry.instance() is MetricsRegistry.instance()
    registry = MetricsRegistry()  # not the singleton: the servers of other tests keep their series
    registry.requests.labels("m", "success").inc()
    assert 'pyflame_request_total{model="m",status="success"} 1.0' in registry.export_prometheus()
    registry.reset()
    assert 'model="m"' not in registry.export_prometheus()
