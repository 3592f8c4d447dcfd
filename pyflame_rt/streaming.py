"""`AsyncSession`: runs of one session on N execution streams of the C runtime. (Token-by-token
decoding, the guide's `streaming.StreamingInference`, lives in pyflame_rt/decoder.py.)

Each stream is a runtime thread serving its own FIFO queue (runtime/pfrt_queue.c); a request runs
through the session's ordinary `run` (feeds are validated before native code, as always), and a
cancelled request stops at its next kernel boundary. `run_async` returns a `RequestFuture`: a
`concurrent.futures.Future` that asyncio code can `await`, whose result is an `AsyncResult`.
"""
from __future__ import annotations

import concurrent.futures
import itertools
from dataclasses import dataclass, field

import numpy as np

from pyflame_rt.decoder import StreamingInference  # noqa: F401  (the guide's pyflame_rt.streaming name)
from pyflame_rt.errors import InputError, QueueClosedError, QueueFullError, ValidationError
from pyflame_rt.futures import OnComplete, RequestFuture, mark_cancelled, notify, settle
from pyflame_rt.options import AsyncOptions
from pyflame_rt.runtime import lib, now_ns
from pyflame_rt.runtime.queues import Streams, request_cancelled


@dataclass(frozen=True)
class AsyncResult:
    """How a request ended: its outputs by name (success) or the error its run raised."""

    request_id: int
    success: bool
    outputs: dict = field(repr=False)
    error: BaseException | None
    latency_us: float
    stream: int

    def get_outputs(self) -> dict[str, np.ndarray]:
        return self.outputs


@dataclass(frozen=True)
class AsyncStats:
    """Latencies (submit to finish, over the last 8192 finished requests for the quantiles) in us."""

    completed_requests: int
    failed_requests: int
    cancelled_requests: int
    rejected_requests: int
    pending_requests: int
    avg_latency_us: float
    p50_latency_us: float
    p99_latency_us: float


@dataclass
class _Request:
    feeds: dict
    future: RequestFuture | None
    on_complete: OnComplete | None
    submit_ns: int


class AsyncSession:
    def __init__(self, session, options: AsyncOptions | None = None):
        if options is not None and not isinstance(options, AsyncOptions):
            raise ValidationError(f"options must be an AsyncOptions, got {type(options).__name__}")
        self._options = (options or AsyncOptions()).validate()
        self._server = _Server(session, [o.name for o in session.get_outputs()])
        self._ids = itertools.count(1)
        self._streams: Streams | None = None
        self._stopped: Streams | None = None  # the streams stop() ended: their statistics stay readable

    def start(self) -> None:
        """Start the streams (again after stop()); a no-op while they run."""
        if self._streams is None:
            self._streams = Streams(self._options.num_streams, self._options.max_pending, self._server)

    def stop(self) -> None:
        """Refuse new requests, finish the queued ones and end the streams."""
        streams, self._streams = self._streams, None
        if streams is not None:
            streams.stop()
            self._stopped = streams

    def __enter__(self) -> "AsyncSession":
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def num_streams(self) -> int:
        return self._options.num_streams

    # ------------------------------------------------------------- requests
    def run_async(self, inputs: dict) -> RequestFuture:
        """Queue a run on the least loaded stream."""
        return self.run_on_stream(self.select_stream(), inputs)

    def run_on_stream(self, stream: int, inputs: dict) -> RequestFuture:
        if type(stream) is not int or not 0 <= stream < self._options.num_streams:
            raise InputError(f"stream must be an int in [0, {self._options.num_streams}), got {stream!r}")
        request_id = next(self._ids)
        future = RequestFuture(request_id, self.cancel)
        self._submit(stream, request_id, _Request(inputs, future, None, now_ns()))
        return future

    def run_async_callback(self, inputs: dict, on_complete: OnComplete) -> int:
        """Queue a run; on_complete(request_id, success, outputs, error) is called on the stream's
        thread when it ends (error: the run's exception, or CancelledError). Returns the request id."""
        if not callable(on_complete):
            raise InputError(f"on_complete must be callable, got {type(on_complete).__name__}")
        request_id = next(self._ids)
        self._submit(self.select_stream(), request_id, _Request(inputs, None, on_complete, now_ns()))
        return request_id

    def select_stream(self) -> int:
        """The stream with the fewest pending requests."""
        return self._running().select()

    def synchronize(self, stream: int) -> None:
        """Wait until the stream has no pending request (not from a callback: it would wait for itself)."""
        if type(stream) is not int or not 0 <= stream < self._options.num_streams:
            raise InputError(f"stream must be an int in [0, {self._options.num_streams}), got {stream!r}")
        self._running().synchronize(stream)

    def synchronize_all(self) -> None:
        self._running().synchronize()

    def cancel(self, request_id: int) -> bool:
        """Cancel a pending request: True if it was pending and not cancelled yet (a running one stops
        at its next kernel boundary)."""
        streams = self._streams
        return streams is not None and streams.cancel(request_id)

    def cancel_all(self) -> int:
        """Cancel every pending request; returns how many."""
        streams = self._streams
        return streams.cancel_all() if streams is not None else 0

    def get_stats(self) -> AsyncStats:
        streams = self._streams or self._stopped
        s = streams.stats() if streams is not None else None
        if s is None:
            return AsyncStats(0, 0, 0, 0, 0, 0.0, 0.0, 0.0)
        finished = s.completed + s.failed
        return AsyncStats(s.completed, s.failed, s.cancelled, s.rejected, s.pending,
                          s.latency_ns / finished / 1e3 if finished else 0.0, s.p50_ns / 1e3, s.p99_ns / 1e3)

    # ------------------------------------------------------------ internals
    def _running(self) -> Streams:
        streams = self._streams
        if streams is None:
            raise QueueClosedError("the AsyncSession is not running: call start() first")
        return streams

    def _submit(self, stream: int, request_id: int, request: _Request) -> None:
        if not isinstance(request.feeds, dict):
            raise InputError(f"inputs must be a dict of name -> array, got {type(request.feeds).__name__}")
        streams = self._running()
        self._server.requests[request_id] = request
        rc = streams.submit(stream, request_id)
        if rc != lib.PFRT_QUEUE_OK:
            del self._server.requests[request_id]
            if rc == lib.PFRT_QUEUE_FULL:
                raise QueueFullError(f"the AsyncSession has max_pending={self._options.max_pending} requests "
                                     f"pending; request refused")
            raise QueueClosedError("the AsyncSession was stopped")


@dataclass
class _Server:
    """What runs on the streams' threads. Apart from AsyncSession, so that the runtime's callback
    (alive while the streams are) holds no reference to it: an AsyncSession nobody uses is freed."""

    session: object
    output_names: list
    requests: dict = field(default_factory=dict)  # request id -> _Request, until its stream takes it

    def __call__(self, request_id: int, stream: int, cancelled: bool) -> int:
        """On the stream's thread: run one request and deliver its result; returns its outcome."""
        request = self.requests.pop(request_id)
        outputs, error = {}, None
        if not cancelled:
            try:
                outputs = dict(zip(self.output_names, self.session.run(None, request.feeds)))
            except Exception as e:  # a future always ends: a bug's error is delivered too
                error = e
            cancelled = request_cancelled()
        latency_us = (now_ns() - request.submit_ns) / 1e3
        if cancelled:
            mark_cancelled(request.future)
            notify(request.on_complete, request_id, False, {}, concurrent.futures.CancelledError())
            return lib.PFRT_REQUEST_CANCELLED
        result = AsyncResult(request_id, error is None, outputs, error, latency_us, stream)
        if not settle(request.future, result):
            return lib.PFRT_REQUEST_CANCELLED  # the future was cancelled while it finished
        notify(request.on_complete, request_id, error is None, outputs, error)
        return lib.PFRT_REQUEST_OK if error is None else lib.PFRT_REQUEST_FAILED

