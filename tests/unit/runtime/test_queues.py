"""The runtime's request queues: a served request's cancel flag stops its run between kernels."""
import threading

import numpy as np
import pytest

from pyflame_rt.runtime import Run, ThreadPool, ffi, lib
from pyflame_rt.runtime.queues import Batcher, Streams, request_cancelled


def _counting_task(counts):
    @ffi.callback("void(void*, int64_t, int64_t)")
    def task(ctx, begin, end):
        counts[begin:end] += 1
    return task


@pytest.mark.parametrize("cancel", [False, True])
def test_a_run_on_a_stream_stops_at_the_next_kernel_once_its_request_is_cancelled(cancel):
    pool = ThreadPool(2)
    counts = np.zeros(8, np.int64)
    task = _counting_task(counts)
    started, go, seen = threading.Event(), threading.Event(), {}

    def run(request_id, stream, cancelled):
        with Run(pool) as r:
            lib.pfrt_run_kernel(r.handle, task, ffi.NULL, 8, 1)  # before the cancel: runs
            started.set()
            go.wait()
            lib.pfrt_run_kernel(r.handle, task, ffi.NULL, 8, 1)  # after it: skipped
            seen.update(status=lib.pfrt_run_status(r.handle), kernels=r.kernels_done, flag=request_cancelled())
        return lib.PFRT_REQUEST_CANCELLED if seen["flag"] else lib.PFRT_REQUEST_OK

    streams = Streams(1, 4, run)
    assert streams.submit(0, 7) == lib.PFRT_QUEUE_OK
    started.wait(10)
    if cancel:
        assert streams.cancel(7) and not streams.cancel(8)
    go.set()
    streams.synchronize()
    assert seen == ({"status": lib.PFRT_RUN_CANCELLED, "kernels": 1, "flag": True} if cancel else
                    {"status": lib.PFRT_RUN_OK, "kernels": 2, "flag": False})
    assert (counts == (1 if cancel else 2)).all()
    stats = streams.stats()
    assert (stats.completed, stats.cancelled, stats.pending) == ((0, 1, 0) if cancel else (1, 0, 0))
    streams.close()
    assert not request_cancelled()  # no flag outside a stream's thread


def test_streams_serve_each_queue_in_order_and_refuse_past_capacity():
    served, gate = [], threading.Event()

    def run(request_id, stream, cancelled):
        gate.wait()
        served.append((stream, request_id, cancelled))
        return lib.PFRT_REQUEST_OK

    streams = Streams(2, 5, run)
    codes = [streams.submit(i % 2, i) for i in range(6)]
    assert codes == [lib.PFRT_QUEUE_OK] * 5 + [lib.PFRT_QUEUE_FULL]
    assert streams.submit(2, 9) == lib.PFRT_QUEUE_BAD_ARGUMENT
    assert streams.cancel(4)  # queued: reported cancelled without running
    gate.set()
    streams.stop()
    assert streams.submit(0, 10) == lib.PFRT_QUEUE_STOPPED
    assert [r for s, *r in served if s == 0] == [[0, False], [2, False], [4, True]]
    assert [r for s, *r in served if s == 1] == [[1, False], [3, False]]
    assert streams.stats().rejected == 1
    streams.close()


def test_batcher_creation_refuses_an_invalid_configuration():
    with pytest.raises(Exception, match="cannot create the batcher"):
        Batcher(max_batch_size=4, min_batch_size=5, max_latency_ns=0, capacity=8, aging_ns=1, num_workers=1,
                preferred=[], enable_padding=False, run=lambda ids, rows: 0, timed_out=lambda ids: None)
