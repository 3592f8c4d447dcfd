"""Concurrent runs of one session: they overlap, each with its own scratch, and native code runs
without the GIL."""
from __future__ import annotations

import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import onnx
import pytest
from onnx import helper

from pyflame_rt import InferenceSession, SessionOptions
from pyflame_rt.runtime import ThreadPool, ffi

from conftest import make_model


@pytest.fixture(scope="module")
def mlp_session(tmp_path_factory):
    """A two-layer MLP with a dynamic batch: batch 8192 is about 4.5 GFLOP of native work."""
    rng = np.random.default_rng(7)
    model = make_model(
        [helper.make_node("MatMul", ["x", "w1"], ["h"]), helper.make_node("Relu", ["h"], ["r"]),
         helper.make_node("MatMul", ["r", "w2"], ["y"])],
        [("x", ["batch", 512])], [("y", ["batch", 64])],
        {"w1": rng.standard_normal((512, 512), dtype=np.float32) / 16,
         "w2": rng.standard_normal((512, 64), dtype=np.float32) / 16})
    path = tmp_path_factory.mktemp("concurrency") / "mlp.onnx"
    onnx.save(model, path)
    return InferenceSession(str(path), SessionOptions(num_threads=2))


def test_concurrent_runs_equal_serial_runs(mlp_session):
    """4 threads x 6 runs of different batches (so different scratch sizes) at once: every output
    equals the same feed's run alone."""
    rng = np.random.default_rng(1)
    feeds = [rng.standard_normal((int(b), 512), dtype=np.float32) for b in rng.integers(1, 300, 24)]
    serial = [mlp_session.run(None, {"x": x})[0] for x in feeds]
    start = threading.Barrier(4)

    def worker(k: int) -> list[np.ndarray]:
        start.wait()
        return [mlp_session.run(None, {"x": feeds[i]})[0] for i in range(k, len(feeds), 4)]

    with ThreadPoolExecutor(4) as ex:
        results = list(ex.map(worker, range(4)))
    for k, outs in enumerate(results):
        for i, out in zip(range(k, len(feeds), 4), outs):
            np.testing.assert_array_equal(out, serial[i])


def test_python_thread_runs_while_a_run_is_in_native_code(mlp_session):
    """With a 10 s switch interval the interpreter never takes the GIL from a thread that holds
    it, so the counter advances during the run only if native code runs without the GIL."""
    x = np.ones((8192, 512), np.float32)
    mlp_session.run(None, {"x": x})  # prepared for this shape: the timed call is mostly native
    old = sys.getswitchinterval()
    count, stop, started = [0], threading.Event(), threading.Event()

    def counter() -> None:
        started.set()
        while not stop.is_set():
            count[0] += 1
            time.sleep(0)  # gives the GIL back on every round, as any blocking call does

    sys.setswitchinterval(10.0)
    try:
        t = threading.Thread(target=counter)
        t.start()
        started.wait()
        before = count[0]
        mlp_session.run(None, {"x": x})
        during = count[0] - before
        stop.set()
        t.join()
    finally:
        sys.setswitchinterval(old)
    assert during >= 50, f"the counter thread advanced {during} times during a 4.5 GFLOP run"


def test_parallel_for_calls_from_several_threads_cover_every_index():
    """Calls made while the workers serve another call run on their own thread: all complete."""
    pool = ThreadPool(2)
    n, hits = 2000, [np.zeros(2000, np.int64) for _ in range(4)]

    @ffi.callback("void(void*, int64_t, int64_t)")
    def task(ctx, b, e):
        hits[int(ffi.cast("intptr_t", ctx))][b:e] += 1

    def caller(k: int) -> None:
        for _ in range(20):
            pool.parallel_for(task, ffi.cast("void*", k), n, 7)

    threads = [threading.Thread(target=caller, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    pool.close()
    for h in hits:
        np.testing.assert_array_equal(h, np.full(n, 20))


def test_a_call_made_while_the_workers_serve_another_does_not_wait_for_it():
    """Call A's tasks wait until call B has returned: B completes while A still holds the workers
    (were calls queued per pool, A's waits would time out)."""
    pool = ThreadPool(2)
    inside, b_returned, waits = threading.Event(), threading.Event(), []

    @ffi.callback("void(void*, int64_t, int64_t)")
    def a_task(ctx, b, e):
        inside.set()
        waits.append(b_returned.wait(10))

    b_hits = np.zeros(1000, np.int64)

    @ffi.callback("void(void*, int64_t, int64_t)")
    def b_task(ctx, b, e):
        b_hits[b:e] += 1

    a = threading.Thread(target=pool.parallel_for, args=(a_task, ffi.NULL, 2, 1))
    a.start()
    assert inside.wait(10)
    pool.parallel_for(b_task, ffi.NULL, 1000, 1)
    b_returned.set()
    a.join()
    pool.close()
    assert waits and all(waits), waits
    np.testing.assert_array_equal(b_hits, 1)
