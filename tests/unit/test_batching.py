"""DynamicBatcher / PriorityBatcher: batched runs equal direct runs; batch formation, priorities with
aging, back-pressure, timeouts, cancellation; a stress run loses and duplicates nothing.

Batched outputs equal direct runs up to float rounding (relative 1e-5): a GEMM over more rows may
add its products in another order."""
import asyncio
import concurrent.futures
import random
import threading
import time

import numpy as np
import pytest
from onnx import helper

from conftest import assert_close, make_model
from pyflame_rt import (DTypeMismatchError, InferenceSession, InputError, QueueClosedError, QueueFullError,
                        RunTimeoutError, ShapeMismatchError, ValidationError)
from pyflame_rt.batching import BatchConfig, DynamicBatcher, PriorityBatcher


@pytest.fixture(scope="module")
def relu_matmul():
    """y = relu(x @ w) for x: [batch, 16]."""
    w = np.random.default_rng(0).standard_normal((16, 8)).astype(np.float32)
    model = make_model([helper.make_node("MatMul", ["x", "w"], ["m"]), helper.make_node("Relu", ["m"], ["y"])],
                       [("x", ["batch", 16])], [("y", ["batch", 8])], {"w": w})
    return InferenceSession(model)


@pytest.fixture(scope="module")
def gather():
    """y = table[x] for int64 indices x: [batch]; an index out of range fails that run (InputError)."""
    table = np.arange(40, dtype=np.float32).reshape(10, 4)
    model = make_model([helper.make_node("Gather", ["table", "x"], ["y"])], [("x", ["batch"], np.int64)],
                       [("y", ["batch", 4])], {"table": table})
    return InferenceSession(model)


def _x(rng, rows=1):
    return {"x": rng.standard_normal((rows, 16)).astype(np.float32)}


def _block_worker(batcher, rng, feeds=None):
    """Occupy the (only) worker: its request's callback, run on the worker, waits for the returned event.
    Requests submitted meanwhile are queued and then batched together."""
    started, release = threading.Event(), threading.Event()
    batcher.submit_with_callback(feeds or _x(rng), lambda *_: (started.set(), release.wait(30)))
    assert started.wait(30)
    return release


def _settle(batcher):
    """Wait until nothing is pending (statistics count a request once its worker is done with it)."""
    for _ in range(3000):
        if batcher.get_stats().pending_requests == 0:
            return
        time.sleep(0.01)
    raise AssertionError("requests still pending")


def test_batched_runs_equal_direct_runs(relu_matmul, rng):
    with DynamicBatcher(relu_matmul, BatchConfig(max_batch_size=8, max_latency_us=200_000)) as b:
        release = _block_worker(b, rng)
        feeds = [_x(rng, 1 + i % 3) for i in range(6)]  # 12 rows: one batch of 8 rows... then the rest
        futures = [b.submit(f) for f in feeds]
        release.set()
        for f, fut in zip(feeds, futures):
            assert_close(fut.result(30)["y"], relu_matmul.run(None, f)[0], rtol=1e-5)
        _settle(b)
        stats = b.get_stats()
    # the blocking request alone, then 1+2+3+1 = 7 rows (the next request, 2 rows, does not fit 8), then 5
    assert (stats.total_batches, stats.completed_requests) == (3, 7)
    assert stats.avg_batch_size == pytest.approx(13 / 3)
    assert stats.throughput_rps > 0 and stats.avg_queue_time_us > 0 and stats.p99_latency_us >= stats.p50_latency_us


def test_infer_callbacks_and_asyncio(relu_matmul, rng):
    feeds = [_x(rng) for _ in range(4)]
    done = []
    with DynamicBatcher(relu_matmul, BatchConfig(max_latency_us=100)) as b:
        assert_close(b.infer(feeds[0])["y"], relu_matmul.run(None, feeds[0])[0], rtol=1e-5)
        request_id = b.submit_with_callback(feeds[1], lambda *args: done.append(args))

        async def main():
            return await asyncio.gather(*(b.submit(f) for f in feeds))

        outs = asyncio.run(main())
        _settle(b)
    for o, f in zip(outs, feeds):
        assert_close(o["y"], relu_matmul.run(None, f)[0], rtol=1e-5)
    ((rid, success, out, error),) = done
    assert (rid, success, error) == (request_id, True, None)
    assert_close(out["y"], relu_matmul.run(None, feeds[1])[0], rtol=1e-5)


def test_requests_of_other_non_batch_dims_form_their_own_batches(rng):
    model = make_model([helper.make_node("Relu", ["x"], ["y"])], [("x", ["batch", "n"])], [("y", ["batch", "n"])])
    sess = InferenceSession(model)
    with DynamicBatcher(sess, BatchConfig(max_latency_us=200_000)) as b:
        release = _block_worker(b, rng, {"x": np.ones((1, 2), np.float32)})
        feeds = [{"x": rng.standard_normal((1, 3 + i % 2)).astype(np.float32)} for i in range(6)]
        futures = [b.submit(f) for f in feeds]
        release.set()
        for f, fut in zip(feeds, futures):
            np.testing.assert_array_equal(fut.result(30)["y"], np.maximum(f["x"], 0))
        _settle(b)
        assert b.get_stats().total_batches == 3


def test_padding_to_a_preferred_size_and_cutting_down_to_one(relu_matmul, rng):
    for padding, batches, padded in ((True, 2, 2), (False, 3, 0)):
        config = BatchConfig(max_batch_size=8, max_latency_us=200_000, preferred_sizes=[2, 4],
                             enable_padding=padding)
        with DynamicBatcher(relu_matmul, config) as b:
            release = _block_worker(b, rng)
            feeds = [_x(rng) for _ in range(3)]
            futures = [b.submit(f) for f in feeds]
            release.set()
            for f, fut in zip(feeds, futures):
                assert_close(fut.result(30)["y"], relu_matmul.run(None, f)[0], rtol=1e-5)
            _settle(b)
            stats = b.get_stats()
        # padding: the blocking row padded to 2, then 3 rows padded to 4; without: 1, then 2 (a
        # preferred size), then 1
        assert (stats.total_batches, stats.padded_rows) == (batches, padded)


def test_priorities_with_aging(relu_matmul, rng):
    config = BatchConfig(max_batch_size=1, max_latency_us=0, priority_aging_us=1000)
    order = []
    with PriorityBatcher(relu_matmul, config) as b:
        release = _block_worker(b, rng)
        old = b.submit_priority(_x(rng), 0)  # waits 200 ms: 200 levels of aging
        time.sleep(0.2)
        futures = [b.submit_priority(_x(rng), p) for p in (1, 50, 5)]
        for f, name in zip([old, *futures], ["old", "p1", "p50", "p5"]):
            f.add_done_callback(lambda _, name=name: order.append(name))
        release.set()
        for f in [old, *futures]:
            f.result(30)
    assert order == ["old", "p50", "p5", "p1"]


def test_a_full_queue_raises_at_once(relu_matmul, rng):
    with DynamicBatcher(relu_matmul, BatchConfig(queue_capacity=2, max_latency_us=0)) as b:
        release = _block_worker(b, rng)
        futures = [b.submit(_x(rng)) for _ in range(2)]
        with pytest.raises(QueueFullError, match="queue_capacity=2"):
            b.submit(_x(rng))
        release.set()
        assert all(f.result(30)["y"].shape == (1, 8) for f in futures)
        _settle(b)
        assert b.get_stats().rejected_requests == 1


def test_timeouts_and_cancellation_while_queued(relu_matmul, rng):
    with DynamicBatcher(relu_matmul, BatchConfig(max_latency_us=0, timeout_us=1_000_000)) as b:
        release = _block_worker(b, rng)
        late = b.submit(_x(rng), timeout_us=1000)
        kept = b.submit(_x(rng))  # the config's 1 s timeout
        dropped = b.submit(_x(rng))
        assert dropped.cancel() and dropped.cancelled()
        assert not b.cancel(dropped.request_id)
        time.sleep(0.01)
        release.set()
        with pytest.raises(RunTimeoutError, match="still queued"):
            late.result(30)
        assert kept.result(30)["y"].shape == (1, 8)
        assert not kept.cancel()
        _settle(b)
        stats = b.get_stats()
    assert (stats.completed_requests, stats.timed_out_requests, stats.cancelled_requests) == (2, 1, 1)


def test_a_bad_request_in_a_batch_fails_alone(gather, rng):
    with DynamicBatcher(gather, BatchConfig(max_latency_us=200_000)) as b:
        release = _block_worker(b, rng, {"x": np.array([1])})
        futures = [b.submit({"x": np.array([i])}) for i in (3, 99, 7)]
        release.set()
        assert futures[0].result(30)["y"].tolist() == [[12, 13, 14, 15]]
        assert futures[2].result(30)["y"].tolist() == [[28, 29, 30, 31]]
        with pytest.raises(InputError):
            futures[1].result(30)
        _settle(b)
        assert b.get_stats().failed_requests == 1


def test_bad_feeds_are_refused_at_submit(relu_matmul, rng):
    with DynamicBatcher(relu_matmul) as b:
        with pytest.raises(InputError, match="exactly the model's inputs"):
            b.submit({"z": np.zeros((1, 16), np.float32)})
        with pytest.raises(DTypeMismatchError):
            b.submit({"x": np.zeros((1, 16), np.float64)})
        with pytest.raises(ShapeMismatchError, match="rank"):
            b.submit({"x": np.zeros(16, np.float32)})
        with pytest.raises(ShapeMismatchError, match="exceeds max_batch_size"):
            b.submit({"x": np.zeros((33, 16), np.float32)})
    with pytest.raises(QueueClosedError):
        b.submit(_x(rng))


def test_models_without_a_dynamic_batch_dim_are_refused():
    static = make_model([helper.make_node("Relu", ["x"], ["y"])], [("x", [2, 3])], [("y", [2, 3])])
    square = make_model([helper.make_node("Relu", ["x"], ["y"])], [("x", ["b", "b"])], [("y", ["b", "b"])])
    for model in (static, square):
        with pytest.raises(ValidationError, match="batch dim"):
            DynamicBatcher(InferenceSession(model))


@pytest.mark.parametrize("config", [BatchConfig(max_batch_size=0), BatchConfig(min_batch_size=40),
                                    BatchConfig(preferred_sizes=[64]), BatchConfig(enable_padding=1),
                                    BatchConfig(max_latency_us=-1)])
def test_invalid_configurations_are_refused(relu_matmul, config):
    with pytest.raises(ValidationError):
        DynamicBatcher(relu_matmul, config)


def test_stress_random_cancellations_and_timeouts_lose_and_duplicate_nothing(relu_matmul):
    """2000 requests from 8 threads; about a tenth cancelled at random, some with tight timeouts."""
    rng = np.random.default_rng(7)
    xs = rng.standard_normal((2000, 16)).astype(np.float32)
    expected = relu_matmul.run(None, {"x": xs})[0]
    calls = np.zeros(len(xs), np.int64)
    futures = [None] * len(xs)
    config = BatchConfig(max_batch_size=16, max_latency_us=500, queue_capacity=4096, num_workers=2)

    with PriorityBatcher(relu_matmul, config) as b:
        def client(k):
            r = random.Random(k)
            for i in range(k, len(xs), 8):
                timeout = r.choice([0, 0, 0, 50])
                if i % 5 == 0:
                    b.submit_with_callback({"x": xs[i:i + 1]}, lambda *a, i=i: np.add.at(calls, i, 1),
                                           timeout_us=timeout)
                    continue
                futures[i] = b.submit_priority({"x": xs[i:i + 1]}, r.randrange(4), timeout_us=timeout)
                if r.random() < 0.1:
                    futures[i].cancel()

        threads = [threading.Thread(target=client, args=(k,)) for k in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        outcomes = {"ok": 0, "cancelled": 0, "timed_out": 0}
        for i, f in enumerate(futures):
            if f is None:
                continue
            try:
                assert_close(f.result(60)["y"][0], expected[i], rtol=1e-5)
                outcomes["ok"] += 1
            except concurrent.futures.CancelledError:
                outcomes["cancelled"] += 1
            except RunTimeoutError:
                outcomes["timed_out"] += 1
        _settle(b)
        stats = b.get_stats()
    assert (calls[::5] == 1).all() and (calls[1::5] == 0).all()  # every callback exactly once
    assert stats.total_requests == len(xs)
    assert stats.cancelled_requests == outcomes["cancelled"]
    assert stats.completed_requests + stats.timed_out_requests == len(xs) - outcomes["cancelled"]
    assert stats.failed_requests == 0 and stats.pending_requests == 0


def test_the_guide_spelling_after_import_pyflame_rt():
    import pyflame_rt

    assert pyflame_rt.batching.DynamicBatcher is DynamicBatcher
    assert pyflame_rt.streaming.AsyncSession.__module__ == "pyflame_rt.streaming"


def test_stop_from_a_callback_ends_the_batcher(relu_matmul, rng):
    b = DynamicBatcher(relu_matmul)
    b.start()
    stopped = threading.Event()
    b.submit_with_callback(_x(rng), lambda *_: (b.stop(), stopped.set()))
    assert stopped.wait(30)
    with pytest.raises(QueueClosedError):
        b.submit(_x(rng))
    _settle(b)  # the callback returns after stop()
    assert b.get_stats().completed_requests == 1


def test_a_batcher_nobody_uses_is_freed(relu_matmul, rng):
    import gc
    import weakref

    b = PriorityBatcher(relu_matmul)
    b.start()
    assert b.infer(_x(rng))["y"].shape == (1, 8)
    ref = weakref.ref(b)
    del b
    gc.collect()
    assert ref() is None
