"""One inference as every protocol runs it: on a leased model version, refused when the model's
queue is full, checked against its pinned input shapes, counted in the version's stats and the metrics, errors mapped to
RequestError with the HTTP status they mean."""
from __future__ import annotations

import time

import numpy as np

from pyflame_rt.errors import (
    DTypeMismatchError, InputError, PyFlameRTError, QueueClosedError, QueueFullError, RunTimeoutError,
    ShapeMismatchError, ValidationError,
)
from pyflame_rt.serving.metrics import MetricsRegistry
from pyflame_rt.serving.protocol import InferRequest, RequestError
from pyflame_rt.serving.registry import ModelRegistry, ModelVersion

_CLIENT_ERRORS = (InputError, ShapeMismatchError, DTypeMismatchError, ValidationError)


class InferenceService:
    def __init__(self, registry: ModelRegistry, metrics: MetricsRegistry):
        self.registry = registry
        self.metrics = metrics

    async def infer(self, model: str, version: str | None,
                    request: InferRequest) -> tuple[ModelVersion, dict[str, np.ndarray]]:
        """The version that ran and its outputs; ModelNotFoundError or RequestError otherwise."""
        with self.registry.lease(model, version) as mv:
            return mv, await self._run(mv, request)

    async def _run(self, mv: ModelVersion, request: InferRequest) -> dict[str, np.ndarray]:
        metrics, name, start = self.metrics, mv.name, time.perf_counter()
        metrics.active.labels(name).inc()
        try:
            limit = mv.config.max_queue_size
            if limit and mv.runner.queue_size() >= limit:
                raise RequestError(f"model '{name}' has {limit} requests waiting already; retry later", 503)
            _check_pinned_shapes(mv, request.inputs)
            first = next(iter(request.inputs.values()))
            metrics.batch_size.labels(name).observe(first.shape[0] if first.ndim else 1)
            metrics.queue_size.labels(name).set(mv.runner.queue_size())
            outputs = await mv.runner.infer(request.inputs, request.outputs)
        except Exception as e:
            mv.stats.record(False, 0.0)
            metrics.requests.labels(name, "error").inc()
            metrics.errors.labels(name, type(e).__name__).inc()
            raise _as_request_error(e) from e
        finally:
            metrics.active.labels(name).dec()
            metrics.queue_size.labels(name).set(mv.runner.queue_size())
        elapsed = time.perf_counter() - start
        mv.stats.record(True, elapsed)
        metrics.requests.labels(name, "success").inc()
        metrics.latency.labels(name).observe(elapsed)
        return outputs


def _check_pinned_shapes(mv: ModelVersion, inputs: dict[str, np.ndarray]) -> None:
    for name, dims in mv.config.inputs.items():
        array = inputs.get(name)
        if array is not None and (array.ndim != len(dims) or any(d not in (-1, s) for d, s in zip(dims, array.shape))):
            raise InputError(f"input '{name}' has shape {list(array.shape)}; this model accepts {dims} (-1: any)")


def _as_request_error(e: Exception) -> Exception:
    if isinstance(e, _CLIENT_ERRORS):
        return RequestError(f"{type(e).__name__}: {e}", 400)
    if isinstance(e, (QueueFullError, QueueClosedError)):
        return RequestError(f"model busy: {e}; retry later", 503)
    if isinstance(e, RunTimeoutError):
        return RequestError(f"inference timed out: {e}", 504)
    if isinstance(e, PyFlameRTError):
        return RequestError(f"inference failed: {type(e).__name__}: {e}", 500)
    return e
