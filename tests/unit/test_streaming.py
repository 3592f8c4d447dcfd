"""AsyncSession: runs on the runtime's streams, futures awaitable from asyncio, cancellation, stats."""
import asyncio
import concurrent.futures
import threading
import time

import numpy as np
import pytest
from onnx import helper

from conftest import make_model
from pyflame_rt import InferenceSession, QueueClosedError, QueueFullError, ShapeMismatchError, ValidationError
from pyflame_rt.streaming import AsyncOptions, AsyncSession


@pytest.fixture(scope="module")
def matmul():
    """y = x @ w for x: [batch, 16]; returns (session, w)."""
    w = np.random.default_rng(0).standard_normal((16, 8)).astype(np.float32)
    model = make_model([helper.make_node("MatMul", ["x", "w"], ["y"])], [("x", ["batch", 16])],
                       [("y", ["batch", 8])], {"w": w})
    return InferenceSession(model), w


def _feeds(rng, rows=2):
    return {"x": rng.standard_normal((rows, 16)).astype(np.float32)}


def _blocked_stream(a: AsyncSession, rng):
    """Occupy the only stream: its request's callback (on the stream's thread) waits for the returned event."""
    started, release = threading.Event(), threading.Event()
    request_id = a.run_async_callback(_feeds(rng), lambda *_: (started.set(), release.wait(30)))
    assert started.wait(30)
    return request_id, release


def test_run_async_on_every_stream_equals_direct_runs(matmul, rng):
    sess, w = matmul
    with AsyncSession(sess, AsyncOptions(num_streams=3)) as a:
        feeds = [_feeds(rng, 1 + i % 4) for i in range(60)]
        futures = [a.run_async(f) for f in feeds]
        results = [f.result(30) for f in futures]
        a.synchronize_all()
        assert all(r.success and r.error is None for r in results)
        for f, r in zip(feeds, results):
            np.testing.assert_array_equal(r.get_outputs()["y"], sess.run(None, f)[0])
        assert {r.stream for r in results} <= {0, 1, 2}
        assert len({r.request_id for r in results}) == 60
        stats = a.get_stats()
    assert (stats.completed_requests, stats.failed_requests, stats.cancelled_requests) == (60, 0, 0)
    assert 0 < stats.p50_latency_us <= stats.p99_latency_us and stats.avg_latency_us > 0
    assert a.get_stats() == stats  # kept after stop


def test_futures_are_awaitable_from_asyncio(matmul, rng):
    sess, _ = matmul
    feeds = [_feeds(rng) for _ in range(8)]

    async def main(a):
        return await asyncio.gather(*(a.run_async(f) for f in feeds))

    with AsyncSession(sess) as a:
        results = asyncio.run(main(a))
    for f, r in zip(feeds, results):
        np.testing.assert_array_equal(r.outputs["y"], sess.run(None, f)[0])


def test_callbacks_streams_and_synchronize(matmul, rng):
    sess, _ = matmul
    done = []
    with AsyncSession(sess, AsyncOptions(num_streams=2)) as a:
        assert a.num_streams() == 2
        ids = [a.run_async_callback(_feeds(rng), lambda *args: done.append(args)) for _ in range(5)]
        on_one = a.run_on_stream(1, _feeds(rng))
        a.synchronize(1)
        assert on_one.done() and on_one.result().stream == 1
        a.synchronize_all()
        assert sorted(d[0] for d in done) == ids
        assert all(success and error is None and out["y"].shape == (2, 8) for _, success, out, error in done)
        assert a.select_stream() == 0  # every stream idle: the first


def test_a_failed_run_is_a_result_with_its_error(matmul, rng):
    sess, _ = matmul
    with AsyncSession(sess) as a:
        result = a.run_async({"x": np.zeros((2, 3), np.float32)}).result(30)
        assert not result.success and isinstance(result.error, ShapeMismatchError)
        assert a.run_async(_feeds(rng)).result(30).success
        a.synchronize_all()  # a request is counted once its stream is done with it
        stats = a.get_stats()
    assert (stats.completed_requests, stats.failed_requests) == (1, 1)


def test_cancel_a_queued_request_and_cancel_all(matmul, rng):
    sess, _ = matmul
    with AsyncSession(sess, AsyncOptions(num_streams=1)) as a:
        _, release = _blocked_stream(a, rng)
        queued = [a.run_async(_feeds(rng)) for _ in range(4)]
        assert queued[0].cancel() and queued[0].cancelled()
        assert a.cancel_all() == 4  # the three queued and the running one (whose run had ended)
        release.set()
        a.synchronize_all()
        for f in queued:
            with pytest.raises(concurrent.futures.CancelledError):
                f.result(30)
        stats = a.get_stats()
    assert (stats.cancelled_requests, stats.completed_requests) == (4, 1)  # the blocking one had run


class _GatedFeeds(dict):
    """Feeds whose first read (inside session.run, on the stream's thread) waits for a signal."""

    def __init__(self, feeds):
        super().__init__(feeds)
        self.reading, self.go = threading.Event(), threading.Event()

    def __getitem__(self, name):
        self.reading.set()
        self.go.wait(30)
        return super().__getitem__(name)


def test_cancelling_a_running_request_ends_its_future_cancelled(matmul, rng):
    sess, _ = matmul
    with AsyncSession(sess, AsyncOptions(num_streams=1)) as a:
        feeds = _GatedFeeds(_feeds(rng))
        running = a.run_async(feeds)
        assert feeds.reading.wait(30)  # inside session.run: the runtime stops it before its first kernel
        assert running.cancel() and not a.cancel(running.request_id)  # once is enough
        feeds.go.set()
        after = a.run_async(_feeds(rng))
        with pytest.raises(concurrent.futures.CancelledError):
            running.result(30)
        assert after.result(30).success
        a.synchronize_all()
        stats = a.get_stats()
    assert (stats.cancelled_requests, stats.completed_requests) == (1, 1)


def test_a_full_queue_refuses_at_once_and_a_stopped_session_refuses(matmul, rng):
    sess, _ = matmul
    a = AsyncSession(sess, AsyncOptions(num_streams=1, max_pending=2))
    with pytest.raises(QueueClosedError, match="start"):
        a.run_async(_feeds(rng))
    a.start()
    _, release = _blocked_stream(a, rng)
    queued = a.run_async(_feeds(rng))
    with pytest.raises(QueueFullError, match="max_pending=2"):
        a.run_async(_feeds(rng))
    release.set()
    assert queued.result(30).success
    assert a.get_stats().rejected_requests == 1
    assert not queued.cancel()  # it ended
    a.stop()
    with pytest.raises(QueueClosedError):
        a.run_async(_feeds(rng))


@pytest.mark.parametrize("options", [AsyncOptions(num_streams=0), AsyncOptions(max_pending=-1),
                                     AsyncOptions(num_streams=2.0), {"num_streams": 2}])
def test_invalid_options_are_refused(matmul, options):
    with pytest.raises(ValidationError):
        AsyncSession(matmul[0], options)


def test_stop_from_a_callback_ends_the_streams(matmul, rng):
    sess, _ = matmul
    a = AsyncSession(sess, AsyncOptions(num_streams=2))
    a.start()
    stopped = threading.Event()
    a.run_async_callback(_feeds(rng), lambda *_: (a.stop(), stopped.set()))
    assert stopped.wait(30)
    with pytest.raises(QueueClosedError):
        a.run_async(_feeds(rng))
    while a.get_stats().pending_requests:  # the callback returns after stop()
        time.sleep(0.01)
    assert a.get_stats().completed_requests == 1
    a.start()  # a new set of streams
    assert a.run_async(_feeds(rng)).result(30).success
    a.stop()


@pytest.mark.parametrize("stop", [True, False])
def test_an_async_session_nobody_uses_is_freed(matmul, rng, stop):
    import gc
    import weakref

    a = AsyncSession(matmul[0])
    a.start()
    assert a.run_async(_feeds(rng)).result(30).success
    if stop:
        a.stop()
    ref = weakref.ref(a)
    del a
    gc.collect()
    assert ref() is None  # and its streams were stopped and freed with it
