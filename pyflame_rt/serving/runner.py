"""How the server runs one loaded model version: the ModelRunner interface and its two
implementations over InferenceSession, one session.run per request (ThreadPoolRunner) or requests
gathered into batched runs by the runtime's dynamic batcher (BatchingRunner); `runner_for` picks one
from the model's config.

Everything above this module (registry, endpoints) only uses `infer`, `queue_size`, `close` and
the `inputs` / `outputs` specs."""
from __future__ import annotations

import asyncio
import threading
from abc import ABC, abstractmethod
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from pyflame_rt.batching import DynamicBatcher
from pyflame_rt.dtype import DType
from pyflame_rt.options import BatchConfig, RunOptions, SessionOptions
from pyflame_rt.serving.config import ModelConfig
from pyflame_rt.session import InferenceSession


@dataclass(frozen=True)
class TensorSpec:
    name: str
    dtype: np.dtype
    shape: list  # int, or a str naming a dynamic dim


class ModelRunner(ABC):
    """Runs inferences of one model version; safe to call from the server's event loop."""

    inputs: list[TensorSpec]
    outputs: list[TensorSpec]

    @abstractmethod
    async def infer(self, inputs: dict[str, np.ndarray], output_names: list[str] | None) -> dict[str, np.ndarray]:
        """The requested outputs (all when None) by name; raises the session's errors."""

    @abstractmethod
    def queue_size(self) -> int:
        """Requests waiting for a free run slot."""

    @abstractmethod
    def close(self) -> None:
        """Release the model; called once no request uses it any more."""


class ThreadPoolRunner(ModelRunner):
    """At most `config.max_concurrency` concurrent session.run calls, each in a pool thread so the
    event loop keeps serving; `request_timeout_ms` becomes the run's RunOptions deadline."""

    def __init__(self, path: str, config: ModelConfig):
        self._session = InferenceSession(path, SessionOptions(num_threads=config.num_threads))
        self._pool = ThreadPoolExecutor(config.max_concurrency, thread_name_prefix=f"serve-{config.name}")
        self._options = RunOptions(timeout_ms=config.request_timeout_ms) if config.request_timeout_ms else None
        self._waiting = 0
        self._lock = threading.Lock()
        self.inputs = [_spec(a) for a in self._session.get_inputs()]
        self.outputs = [_spec(a) for a in self._session.get_outputs()]

    async def infer(self, inputs, output_names):
        names = output_names or [o.name for o in self.outputs]
        with self._lock:
            self._waiting += 1
        loop = asyncio.get_running_loop()
        results = await loop.run_in_executor(self._pool, self._run, names, inputs)
        return dict(zip(names, results))

    def _run(self, names, inputs):
        with self._lock:
            self._waiting -= 1
        return self._session.run(names, inputs, self._options)

    def queue_size(self) -> int:
        return self._waiting

    def close(self) -> None:
        self._pool.shutdown(wait=True)
        self._session = None


class BatchingRunner(ModelRunner):
    """Requests gathered into batched runs by the runtime's DynamicBatcher: at most
    `max_batch_size` rows per run, the oldest request waiting at most `batch_timeout_us` for more,
    `preferred_batch_sizes`, `max_concurrency` batches running at once. The batcher's queue is the
    model's: `max_queue_size` requests at most (one more: QueueFullError, a 503), each failing
    once it has waited `request_timeout_ms` without being batched. The model needs a dynamic batch
    dim (else ValidationError when it loads)."""

    def __init__(self, path: str, config: ModelConfig):
        self._session = InferenceSession(path, SessionOptions(num_threads=config.num_threads))
        batch = BatchConfig(max_batch_size=config.max_batch_size, max_latency_us=config.batch_timeout_us,
                            preferred_sizes=list(config.preferred_batch_sizes), num_workers=config.max_concurrency,
                            queue_capacity=config.max_queue_size or BatchConfig.queue_capacity,
                            timeout_us=1000 * config.request_timeout_ms)
        self._batcher = DynamicBatcher(self._session, batch)
        self._batcher.start()
        self.inputs = [_spec(a) for a in self._session.get_inputs()]
        self.outputs = [_spec(a) for a in self._session.get_outputs()]

    async def infer(self, inputs, output_names):
        outputs = await self._batcher.submit(inputs)
        return {name: outputs[name] for name in output_names or [o.name for o in self.outputs]}

    def queue_size(self) -> int:
        return self._batcher.get_stats().pending_requests

    def batch_stats(self):
        """The batcher's statistics (batches, mean batch size, queue time)."""
        return self._batcher.get_stats()

    def close(self) -> None:
        self._batcher.stop()
        self._session = None


def runner_for(path: str, config: ModelConfig) -> ModelRunner:
    """The runner a model's config asks for (ModelRegistry's default runner factory)."""
    return (BatchingRunner if config.enable_batching else ThreadPoolRunner)(path, config)


def _spec(arg) -> TensorSpec:
    dtype = next(d for d in DType if d.ort_type == arg.type).numpy
    return TensorSpec(arg.name, dtype, list(arg.shape))
