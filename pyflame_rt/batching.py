"""`DynamicBatcher` and `PriorityBatcher`: requests from many threads gathered into batched runs.

The queue, batch formation (max_latency_us, preferred sizes, padding), priorities with aging,
capacity and per-request timeouts live in the C runtime (runtime/pfrt_queue.c). A batch holds
requests whose inputs agree in every dim but the batch dim (dim 0, the model's dynamic batch dim);
its worker thread concatenates them along dim 0, runs the session once and scatters the outputs back.
If a batched run fails (e.g. one request's feeds break a shape rule of the model), each of its
requests is run alone, so an error reaches only the request that caused it.
"""
from __future__ import annotations

import concurrent.futures
import itertools
import re
from dataclasses import dataclass, field

import numpy as np

from pyflame_rt.dtype import DType
from pyflame_rt.errors import (DTypeMismatchError, InputError, QueueClosedError, QueueFullError, RunTimeoutError,
                               ShapeMismatchError, ValidationError)
from pyflame_rt.futures import OnComplete, RequestFuture, mark_cancelled, notify, settle
from pyflame_rt.options import BatchConfig
from pyflame_rt.runtime import lib
from pyflame_rt.runtime.queues import Batcher, QueueStats
from pyflame_rt.tensor import Tensor


@dataclass(frozen=True)
class BatchStats:
    """Counts since start(); times in us; throughput over first submit to last finish."""

    total_requests: int
    completed_requests: int
    failed_requests: int
    cancelled_requests: int
    timed_out_requests: int
    rejected_requests: int
    pending_requests: int
    total_batches: int
    avg_batch_size: float
    padded_rows: int
    avg_queue_time_us: float
    avg_latency_us: float
    p50_latency_us: float
    p99_latency_us: float
    throughput_rps: float

    @staticmethod
    def of(s: QueueStats) -> "BatchStats":
        finished = s.completed + s.failed
        span_s = (s.last_finish_ns - s.first_submit_ns) / 1e9
        return BatchStats(
            s.submitted, s.completed, s.failed, s.cancelled, s.timed_out, s.rejected, s.pending, s.batches,
            s.batched_rows / s.batches if s.batches else 0.0, s.padded_rows,
            s.queue_ns / s.batched_requests / 1e3 if s.batched_requests else 0.0,
            s.latency_ns / finished / 1e3 if finished else 0.0, s.p50_ns / 1e3, s.p99_ns / 1e3,
            s.completed / span_s if finished and span_s > 0 else 0.0)


@dataclass
class _Request:
    feeds: dict          # name -> C-contiguous array with the batch dim first
    rows: int
    future: RequestFuture | None
    on_complete: OnComplete | None


class DynamicBatcher:
    """Batches requests in arrival order. The model must have a dynamic batch dim: dim 0 of every
    input and output, the same symbol, used in no other dim."""

    def __init__(self, session, config: BatchConfig | None = None):
        if config is not None and not isinstance(config, BatchConfig):
            raise ValidationError(f"config must be a BatchConfig, got {type(config).__name__}")
        self._config = (config or BatchConfig()).validate()
        self._inputs = session.get_inputs()
        _check_batch_dim(self._inputs, session.get_outputs())
        self._runner = _Runner(session, self._inputs, [o.name for o in session.get_outputs()])
        self._ids = itertools.count(1)
        self._queue: Batcher | None = None
        self._stopped: Batcher | None = None  # the queue stop() ended: its statistics stay readable

    def start(self) -> None:
        """Start the workers (again after stop()); a no-op while they run."""
        if self._queue is None:
            c = self._config
            self._queue = Batcher(
                max_batch_size=c.max_batch_size, min_batch_size=c.min_batch_size,
                max_latency_ns=c.max_latency_us * 1000, capacity=c.queue_capacity,
                aging_ns=c.priority_aging_us * 1000, num_workers=c.num_workers,
                preferred=sorted(set(c.preferred_sizes)), enable_padding=c.enable_padding,
                run=self._runner.run_batch, timed_out=self._runner.time_out)

    def stop(self) -> None:
        """Refuse new requests, run the queued ones at once and end the workers."""
        queue, self._queue = self._queue, None
        if queue is not None:
            queue.stop()
            self._stopped = queue

    def __enter__(self) -> "DynamicBatcher":
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    # ------------------------------------------------------------- requests
    def submit(self, inputs: dict, timeout_us: int | None = None) -> RequestFuture:
        """Queue a request; its future's result is the outputs by name. It fails with the run's
        error, or RunTimeoutError once it has been queued timeout_us (default: the config's)."""
        return self._submit(inputs, 0, timeout_us, True, None)

    def infer(self, inputs: dict, timeout_us: int | None = None) -> dict[str, np.ndarray]:
        """submit() and wait for the outputs."""
        return self.submit(inputs, timeout_us).result()

    def submit_with_callback(self, inputs: dict, on_complete: OnComplete, timeout_us: int | None = None) -> int:
        """Queue a request; on_complete(request_id, success, outputs, error) is called on a worker
        thread when it ends (error: the exception, CancelledError or RunTimeoutError). Returns its id."""
        if not callable(on_complete):
            raise InputError(f"on_complete must be callable, got {type(on_complete).__name__}")
        return self._submit(inputs, 0, timeout_us, False, on_complete).request_id

    def cancel(self, request_id: int) -> bool:
        """Drop a queued request (True); one already in a running batch runs to the end (False)."""
        queue = self._queue
        if queue is None or not queue.cancel(request_id):
            return False
        request = self._runner.requests.pop(request_id)
        mark_cancelled(request.future)
        notify(request.on_complete, request_id, False, {}, concurrent.futures.CancelledError())
        return True

    def get_stats(self) -> BatchStats:
        queue = self._queue or self._stopped
        return BatchStats.of(queue.stats() if queue is not None else _NO_STATS)

    # ------------------------------------------------------------ internals
    def _submit(self, inputs, priority: int, timeout_us, with_future: bool, on_complete) -> RequestFuture:
        queue = self._queue
        if queue is None:
            raise QueueClosedError("the batcher is not running: call start() first")
        if timeout_us is None:
            timeout_us = self._config.timeout_us
        elif type(timeout_us) is not int or timeout_us < 0:
            raise InputError(f"timeout_us must be an int >= 0, got {timeout_us!r}")
        feeds, rows, group = self._check(inputs)
        request_id = next(self._ids)
        future = RequestFuture(request_id, self.cancel)
        self._runner.requests[request_id] = _Request(feeds, rows, future if with_future else None, on_complete)
        rc = queue.submit(request_id, group, rows, priority, timeout_us * 1000)
        if rc != lib.PFRT_QUEUE_OK:
            del self._runner.requests[request_id]
            if rc == lib.PFRT_QUEUE_FULL:
                raise QueueFullError(f"the batcher's queue holds queue_capacity={self._config.queue_capacity} "
                                     f"requests; request refused")
            if rc == lib.PFRT_QUEUE_BAD_ARGUMENT:
                raise ShapeMismatchError(f"a request of {rows} rows exceeds max_batch_size="
                                         f"{self._config.max_batch_size}")
            raise QueueClosedError("the batcher was stopped")
        return future

    def _check(self, inputs) -> tuple[dict, int, int]:
        """The feeds as C-contiguous arrays, their rows (batch dim) and their group: requests of one
        group agree in every dim but the batch dim, and in dtypes."""
        if not isinstance(inputs, dict):
            raise InputError(f"inputs must be a dict of name -> array, got {type(inputs).__name__}")
        names = [i.name for i in self._inputs]
        if sorted(inputs) != sorted(names):
            raise InputError(f"inputs must be exactly the model's inputs {names}, got {list(inputs)}")
        feeds, key, rows = {}, [], None
        for spec in self._inputs:
            v = inputs[spec.name]
            arr = np.ascontiguousarray(v.numpy() if isinstance(v, Tensor) else v)
            if arr.ndim != len(spec.shape) or arr.ndim == 0:
                raise ShapeMismatchError(f"input '{spec.name}' must have rank {len(spec.shape)} "
                                         f"(shape {spec.shape}), got shape {list(arr.shape)}")
            try:
                dtype_ok = DType.from_numpy(arr.dtype).ort_type == spec.type
            except DTypeMismatchError:
                dtype_ok = False
            if not dtype_ok:
                raise DTypeMismatchError(f"input '{spec.name}' must be {spec.type}, got numpy {arr.dtype}")
            if rows is not None and arr.shape[0] != rows:
                raise ShapeMismatchError(f"input '{spec.name}' has {arr.shape[0]} rows (dim 0), another input "
                                         f"{rows}: one request has one batch size")
            rows = arr.shape[0]
            feeds[spec.name] = arr
            key.append((arr.shape[1:], arr.dtype.str))
        if rows < 1:
            raise ShapeMismatchError("a request needs at least one row (dim 0)")
        return feeds, rows, hash(tuple(key)) & (2**63 - 1)  # a collision only mixes groups: see run_batch


@dataclass
class _Runner:
    """What runs on the workers. Apart from the batcher, so that the runtime's callback (alive while
    the queue is) holds no reference to it: a batcher nobody uses is freed."""

    session: object
    inputs: list        # the session's NodeArgs
    output_names: list
    requests: dict = field(default_factory=dict)  # request id -> _Request, until a worker takes it

    def run_batch(self, ids: list[int], rows: int) -> int:
        """On a worker thread: run ids as one batch padded to `rows` rows; returns how many failed."""
        requests = [self.requests.pop(i) for i in ids]
        try:
            outputs = self.session.run(None, _concatenate(requests, self.inputs, rows))
        except Exception:  # noqa: BLE001 - fall back to one run per request, which reports its own error
            return sum(not self.run_alone(i, r) for i, r in zip(ids, requests))
        start = 0
        for request_id, request in zip(ids, requests):
            end = start + request.rows
            self.finish(request_id, request, {n: o[start:end] for n, o in zip(self.output_names, outputs)}, None)
            start = end
        return 0

    def run_alone(self, request_id: int, request: _Request) -> bool:
        try:
            outputs = dict(zip(self.output_names, self.session.run(None, request.feeds)))
        except Exception as e:  # a future always ends: a bug's error is delivered too
            self.finish(request_id, request, {}, e)
            return False
        self.finish(request_id, request, outputs, None)
        return True

    def time_out(self, ids: list[int]) -> None:
        for request_id in ids:
            request = self.requests.pop(request_id)
            self.finish(request_id, request, {}, RunTimeoutError(
                f"request {request_id} was still queued at its timeout; it did not run"))

    @staticmethod
    def finish(request_id: int, request: _Request, outputs: dict, error: BaseException | None) -> None:
        if settle(request.future, outputs, error):
            notify(request.on_complete, request_id, error is None, outputs, error)


class PriorityBatcher(DynamicBatcher):
    """Batches requests by effective priority: priority (higher runs sooner) plus one level per
    BatchConfig.priority_aging_us waited, so a low-priority request is never starved."""

    def submit_priority(self, inputs: dict, priority: int, timeout_us: int | None = None) -> RequestFuture:
        if type(priority) is not int or abs(priority) > 1 << 40:
            raise InputError(f"priority must be an int in [-2**40, 2**40], got {priority!r}")
        return self._submit(inputs, priority, timeout_us, True, None)


_NO_STATS = QueueStats(*[0] * 17)


def _check_batch_dim(inputs, outputs) -> None:
    """Refuse a model without one dynamic batch dim: dim 0 of every input and output, one symbol,
    in no other dim (concatenating along it changes nothing else)."""
    firsts = {t.shape[0] if t.shape else None for t in [*inputs, *outputs]}
    symbol = next(iter(firsts)) if len(firsts) == 1 else None
    if not isinstance(symbol, str) or not re.fullmatch(r"[A-Za-z_][\w.]*", symbol):
        shapes = {t.name: t.shape for t in [*inputs, *outputs]}
        raise ValidationError(f"batching needs a dynamic batch dim: dim 0 of every input and output, one "
                              f"symbol; this model's shapes are {shapes}")
    word = re.compile(rf"(?<![\w.]){re.escape(symbol)}(?![\w.])")
    for t in [*inputs, *outputs]:
        if any(isinstance(d, str) and word.search(d) for d in t.shape[1:]):
            raise ValidationError(f"batching needs a batch dim used only as dim 0; '{t.name}' has shape {t.shape}")


def _concatenate(requests: list[_Request], inputs, rows: int) -> dict[str, np.ndarray]:
    """The batch's feeds: the requests' rows in order, then copies of the last row up to `rows`."""
    pad = rows - sum(r.rows for r in requests)
    feeds = {}
    for spec in inputs:
        parts = [r.feeds[spec.name] for r in requests]
        if pad:
            parts.append(np.repeat(parts[-1][-1:], pad, axis=0))
        feeds[spec.name] = parts[0] if len(parts) == 1 else np.concatenate(parts)
    return feeds

