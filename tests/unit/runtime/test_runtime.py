"""The C runtime: arena alignment and accounting, the worker pool's parallel-for."""
import threading

import numpy as np
import pytest

from pyflame_rt.errors import BackendError
from pyflame_rt.runtime import Arena, ThreadPool, ffi, lib, native_symbols, num_cores


def test_arena_allocations_are_64_byte_aligned():
    arena = Arena(4096)
    assert arena.base % 64 == 0
    ptrs = [arena.allocate(n) for n in (1, 3, 64, 65, 100, 7)]
    assert all(p % 64 == 0 for p in ptrs)
    assert sorted(ptrs) == ptrs and len(set(ptrs)) == len(ptrs)
    assert arena.used == 64 + 64 + 64 + 128 + 128 + 64
    assert arena.peak == arena.used


def test_arena_exhaustion_and_reset():
    arena = Arena(256)
    arena.allocate(200)
    with pytest.raises(BackendError, match="exhausted"):
        arena.allocate(100)
    arena.reset()
    assert arena.used == 0
    arena.allocate(256)
    assert arena.peak == 256


def test_arena_reserve_grows_and_stays_aligned():
    arena = Arena(0)
    base = arena.reserve(1 << 20)
    assert base % 64 == 0 and arena.capacity >= 1 << 20
    assert arena.reserve(100) == base  # never shrinks


def _counting_task(counts):
    @ffi.callback("void(void*, int64_t, int64_t)")
    def task(ctx, begin, end):
        for i in range(begin, end):
            counts[i] += 1
    return task


@pytest.mark.parametrize("n,grain", [(1, 1), (7, 1), (1000, 1), (1000, 64), (4096, 3)])
def test_parallel_for_runs_every_index_exactly_once(n, grain):
    pool = ThreadPool(4)
    counts = np.zeros(n, dtype=np.int64)
    task = _counting_task(counts)
    pool.parallel_for(task, ffi.NULL, n, grain)
    assert (counts == 1).all()
    pool.close()


def test_parallel_for_uses_several_threads():
    pool = ThreadPool(4)
    seen = set()

    @ffi.callback("void(void*, int64_t, int64_t)")
    def task(ctx, begin, end):
        import time
        seen.add(threading.get_ident())
        time.sleep(0.002)

    pool.parallel_for(task, ffi.NULL, 64, 1)
    assert len(seen) > 1
    pool.close()


def test_parallel_for_idle_thread_takes_chunks_from_a_busy_ones_range():
    """Each thread starts on its own home range of chunks (the caller's: the first half) and runs
    it in order; one that finishes early takes what is left of another's. The caller blocks in its
    first chunk until the worker has run one of the caller's chunks: only stealing lets it go on."""
    pool = ThreadPool(2)
    caller = threading.get_ident()
    n = 8  # grain 1: 8 chunks of 1, home ranges [0, 4) and [4, 8)
    stolen = threading.Event()
    counts = np.zeros(n, dtype=np.int64)
    worker_chunks = []

    @ffi.callback("void(void*, int64_t, int64_t)")
    def task(ctx, begin, end):
        counts[begin:end] += 1
        me = threading.get_ident()
        if me != caller:
            worker_chunks.append(begin)
        if me != caller and begin < n // 2:
            stolen.set()
        if me == caller and begin == 0:
            stolen.wait(30)

    pool.parallel_for(task, ffi.NULL, n, 1)
    assert stolen.is_set()
    assert worker_chunks[:4] == [4, 5, 6, 7]  # its own range first, in order
    assert (counts == 1).all()
    pool.close()


def test_parallel_for_from_many_caller_threads():
    """Concurrent parallel_for calls on one pool are serialized, none loses work."""
    pool = ThreadPool(3)
    results = []

    def worker():
        counts = np.zeros(500, dtype=np.int64)
        task = _counting_task(counts)
        for _ in range(20):
            pool.parallel_for(task, ffi.NULL, 500, 1)
        results.append(counts.copy())

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 4
    assert all((c == 20).all() for c in results)
    pool.close()


def test_pool_defaults_to_core_count():
    pool = ThreadPool(0)
    assert pool.num_threads == num_cores() == lib.pfrt_num_cores()
    pool.close()


def test_runtime_symbols_are_exported_for_generated_code():
    syms = native_symbols()
    assert syms["pfrt_parallel_for"] != 0


def test_amx_is_a_host_feature_only_with_the_os_permission():
    """The tile state is granted on request (idempotent); the host target names AMX features only
    when the CPU has them and the request succeeds."""
    import llvmlite.binding as llvm

    from pyflame_rt.targets.cpu.target import CPUTarget

    host = CPUTarget.host()
    cpu_has_amx = any(k.startswith("amx") and v for k, v in llvm.get_host_cpu_features().items())
    granted = lib.pfrt_request_amx() == 0
    assert lib.pfrt_request_amx() == lib.pfrt_request_amx()
    assert any(f.startswith("amx") for f in host.features) == (cpu_has_amx and granted)
