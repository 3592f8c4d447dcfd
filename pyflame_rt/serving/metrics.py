"""The server's Prometheus metrics under the guide's names, in one process-wide registry."""
from __future__ import annotations

import threading

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)


class MetricsRegistry:
    """`MetricsRegistry.instance()` is shared by every server of the process; `reset()` starts all
    series from zero."""

    _instance: "MetricsRegistry | None" = None
    _instance_lock = threading.Lock()

    def __init__(self):
        self.reset()

    @classmethod
    def instance(cls) -> "MetricsRegistry":
        with cls._instance_lock:
            if cls._instance is None:
                cls._instance = cls()
            return cls._instance

    def reset(self) -> None:
        r = self.registry = CollectorRegistry()
        self.requests = Counter("pyflame_request_total", "Total number of inference requests",
                                ["model", "status"], registry=r)
        self.latency = Histogram("pyflame_request_latency_seconds", "Request latency in seconds", ["model"],
                                 buckets=LATENCY_BUCKETS, registry=r)
        self.active = Gauge("pyflame_requests_active", "Currently active requests", ["model"], registry=r)
        self.loaded = Gauge("pyflame_model_loaded", "Model loaded status (1=loaded, 0=unloaded)",
                            ["model", "version"], registry=r)
        self.batch_size = Histogram("pyflame_batch_size", "Batch size distribution", ["model"],
                                    buckets=BATCH_BUCKETS, registry=r)
        self.queue_size = Gauge("pyflame_queue_size", "Current batch queue size", ["model"], registry=r)
        self.errors = Counter("pyflame_inference_errors_total", "Inference errors by type", ["model", "type"],
                              registry=r)

    def export_prometheus(self) -> str:
        return generate_latest(self.registry).decode()
