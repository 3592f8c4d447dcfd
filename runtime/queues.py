"""The runtime's request queues (runtime/pfrt_queue.c) for Python: async streams and the batcher.

The C side owns the queues, their threads, cancellation flags, deadlines and statistics; a request
is an id, and the Python callback given at creation runs it (or a batch of them) on a queue thread.
A queue is destroyed by `close()`, its finalizer or at interpreter exit (queued requests are served
first); from one of its own threads (a callback dropping the last reference) the destruction moves to
a helper thread, since a queue thread cannot join itself.
"""
from __future__ import annotations

import logging
import threading
import weakref
from dataclasses import dataclass
from typing import Callable, Sequence

from pyflame_rt.errors import BackendError
from pyflame_rt.runtime import ffi, lib

_log = logging.getLogger("pyflame_rt")
_queue_thread = threading.local()  # .active: this thread is one of a queue's own threads


@dataclass(frozen=True)
class QueueStats:
    """A snapshot of pfrt_queue_stats plus latency quantiles (all times in ns)."""

    submitted: int
    completed: int
    failed: int
    cancelled: int
    timed_out: int
    rejected: int
    pending: int
    batches: int
    batched_requests: int
    batched_rows: int
    padded_rows: int
    queue_ns: int
    latency_ns: int
    first_submit_ns: int
    last_finish_ns: int
    p50_ns: int
    p99_ns: int


def request_cancelled() -> bool:
    """On a queue thread: whether the request it serves has been cancelled."""
    flag = lib.pfrt_thread_cancel_flag()
    return flag != ffi.NULL and flag[0] != 0


def _stats(ptr, read, quantile) -> QueueStats:
    s = ffi.new("pfrt_queue_stats*")
    read(ptr, s)
    return QueueStats(s.submitted, s.completed, s.failed, s.cancelled, s.timed_out, s.rejected, s.pending,
                      s.batches, s.batched_requests, s.batched_rows, s.padded_rows, s.queue_ns, s.latency_ns,
                      s.first_submit_ns, s.last_finish_ns, quantile(ptr, 0.5), quantile(ptr, 0.99))


def _on_queue_thread(fn: Callable) -> Callable:
    """fn, marking the thread that calls it as a queue thread."""
    def call(*args):
        _queue_thread.active = True
        return fn(*args)
    return call


def _destroy(destroy, ptr, callback) -> None:
    """Stop and free a queue (callback: its C callback, kept alive until then); on a queue thread,
    which cannot join itself, from a helper thread."""
    if getattr(_queue_thread, "active", False):
        threading.Thread(target=_destroy, args=(destroy, ptr, callback), name="pyflame-rt-queue-close").start()
    else:
        destroy(ptr)


def _log_callback_error(exc_type, exc, tb) -> None:
    _log.error("request queue callback failed", exc_info=(exc_type, exc, tb))


class Streams:
    """num_streams threads, each serving its own FIFO queue. run(request_id, stream, cancelled) runs
    one request (cancelled: it was cancelled while queued, only report it) and returns its outcome,
    lib.PFRT_REQUEST_*."""

    def __init__(self, num_streams: int, capacity: int, run: Callable[[int, int, bool], int]):
        def on_request(_user, request_id, stream, cancelled):
            return run(request_id, stream, bool(cancelled))

        callback = ffi.callback("int(void*, int64_t, int, int)", _on_queue_thread(on_request),
                                error=lib.PFRT_REQUEST_FAILED, onerror=_log_callback_error)
        self._ptr = lib.pfrt_streams_create(num_streams, capacity, callback, ffi.NULL)
        if self._ptr == ffi.NULL:
            raise BackendError(f"cannot start {num_streams} async streams")
        self.close = weakref.finalize(self, _destroy, lib.pfrt_streams_destroy, self._ptr, callback)

    def submit(self, stream: int, request_id: int) -> int:
        """lib.PFRT_QUEUE_OK, _FULL, _STOPPED or _BAD_ARGUMENT."""
        return lib.pfrt_streams_submit(self._ptr, stream, request_id)

    def select(self) -> int:
        return lib.pfrt_streams_select(self._ptr)

    def synchronize(self, stream: int = -1) -> None:
        lib.pfrt_streams_synchronize(self._ptr, stream)

    def cancel(self, request_id: int) -> bool:
        return bool(lib.pfrt_streams_cancel(self._ptr, request_id))

    def cancel_all(self) -> int:
        return lib.pfrt_streams_cancel_all(self._ptr)

    def stop(self) -> None:
        lib.pfrt_streams_stop(self._ptr)

    def stats(self) -> QueueStats:
        return _stats(self._ptr, lib.pfrt_streams_stats, lib.pfrt_streams_latency_quantile)


class Batcher:
    """The C batcher (pfrt.h). run(ids, rows) runs one batch of `rows` rows (padding included) and
    returns how many of its requests failed; timed_out(ids) reports requests that passed their
    deadline in the queue."""

    def __init__(self, *, max_batch_size: int, min_batch_size: int, max_latency_ns: int, capacity: int,
                 aging_ns: int, num_workers: int, preferred: Sequence[int], enable_padding: bool,
                 run: Callable[[list[int], int], int], timed_out: Callable[[list[int]], None]):
        def on_batch(_user, kind, ids, n, rows):
            batch = ffi.unpack(ids, n)
            if kind == lib.PFRT_BATCH_TIMED_OUT:
                timed_out(batch)
                return 0
            return run(batch, rows)

        callback = ffi.callback("int64_t(void*, int, const int64_t*, int64_t, int64_t)", _on_queue_thread(on_batch),
                                error=0, onerror=_log_callback_error)
        sizes = ffi.new("int64_t[]", list(preferred) or [0])
        config = ffi.new("pfrt_batch_config*", {
            "max_batch_size": max_batch_size, "min_batch_size": min_batch_size, "max_latency_ns": max_latency_ns,
            "capacity": capacity, "aging_ns": aging_ns, "num_workers": num_workers, "preferred": sizes,
            "num_preferred": len(preferred), "enable_padding": int(enable_padding)})
        self._ptr = lib.pfrt_batcher_create(config, callback, ffi.NULL)
        if self._ptr == ffi.NULL:
            raise BackendError(f"cannot create the batcher (an invalid configuration, or no memory or threads for "
                               f"{num_workers} workers)")
        self.close = weakref.finalize(self, _destroy, lib.pfrt_batcher_destroy, self._ptr, callback)

    def submit(self, request_id: int, group: int, rows: int, priority: int, timeout_ns: int) -> int:
        """lib.PFRT_QUEUE_OK, _FULL, _STOPPED or _BAD_ARGUMENT."""
        return lib.pfrt_batcher_submit(self._ptr, request_id, group, rows, priority, timeout_ns)

    def cancel(self, request_id: int) -> bool:
        return bool(lib.pfrt_batcher_cancel(self._ptr, request_id))

    def stop(self) -> None:
        lib.pfrt_batcher_stop(self._ptr)

    def stats(self) -> QueueStats:
        return _stats(self._ptr, lib.pfrt_batcher_stats, lib.pfrt_batcher_latency_quantile)
