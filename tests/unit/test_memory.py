"""pyflame_rt.memory: the C runtime's memory pool (size classes, limit, trim policy, stats), arenas,
and the run scratch every session takes from the global pool."""
from __future__ import annotations

import ctypes
import os
import threading

import numpy as np
import onnx
import pytest
from onnx import helper

from pyflame_rt import BackendError, InferenceSession, MemoryLimitError, ValidationError, memory
from pyflame_rt.memory import Arena, MemoryPool, PoolConfig, ScopedArena

from conftest import make_model

MiB = 1 << 20


@pytest.fixture
def global_config():
    """Tests that replace the global pool's config get the default back afterwards."""
    yield memory.set_global_pool_config
    memory.set_global_pool_config(PoolConfig())


@pytest.mark.parametrize("config", [
    PoolConfig(size_classes=(64, 32)), PoolConfig(size_classes=(48, 100)), PoolConfig(alignment=48),
    PoolConfig(alignment=8192), PoolConfig(memory_limit=-1), PoolConfig(trim_idle_frees=1.5),
    PoolConfig(max_blocks_per_class=True)])
def test_invalid_configs_are_refused(config):
    with pytest.raises(ValidationError):
        MemoryPool(config)


def test_size_classes_reuse_blocks_and_count_hits():
    pool = MemoryPool(PoolConfig(size_classes=(64, 256, 1024), alignment=128))
    a = pool.allocate(100)
    assert a % 128 == 0
    pool.deallocate(a)
    assert pool.allocate(200) == a  # the 256-byte class's cached block
    b = pool.allocate(2000)  # above the largest class: a block of its own
    s = pool.get_stats()
    assert (s.allocations, s.hits, s.misses, s.hit_rate()) == (3, 1, 2, pytest.approx(1 / 3))
    assert s.current_usage >= 256 + 2000 and s.peak_usage == s.current_usage
    pool.deallocate(a)
    pool.deallocate(b)
    s = pool.get_stats()
    assert s.current_usage == 0 and s.cached_bytes >= 256 + 2000 and s.peak_usage >= 256 + 2000


def test_memory_is_writable_and_blocks_do_not_overlap():
    pool = MemoryPool()
    blocks = [(pool.allocate(n), n) for n in (1, 64, 1000, 70_000, 3 * MiB)]
    for k, (address, n) in enumerate(blocks):
        np.frombuffer((ctypes.c_uint8 * n).from_address(address), np.uint8)[:] = k
    for k, (address, n) in enumerate(blocks):
        assert (np.frombuffer((ctypes.c_uint8 * n).from_address(address), np.uint8) == k).all()
    spans = sorted((a, a + n) for a, n in blocks)
    assert all(end <= start for (_, end), (start, _) in zip(spans, spans[1:]))


def test_requests_no_system_can_hold_are_backend_errors():
    pool = MemoryPool()
    for size in (2**63, 2**64 - 1):
        with pytest.raises(BackendError, match="cannot provide"):
            pool.allocate(size)
    with pytest.raises(ValidationError):
        pool.allocate(-1)
    with pytest.raises(ValidationError):
        pool.trim(-5)
    assert pool.get_stats().current_usage == 0


def test_unknown_and_double_frees_are_refused():
    pool = MemoryPool()
    a = pool.allocate(64)
    pool.deallocate(a)
    with pytest.raises(ValidationError, match="not allocated by this pool"):
        pool.deallocate(a)
    with pytest.raises(ValidationError):
        pool.deallocate(12345)


def test_limit_refuses_and_makes_room_from_the_cache():
    pool = MemoryPool(PoolConfig(memory_limit=8 * MiB))
    with pytest.raises(MemoryLimitError, match="limit of 8388608 bytes"):
        pool.allocate(9 * MiB)
    a = pool.allocate(5 * MiB)
    pool.deallocate(a)  # cached: 5 MiB of the 8
    b = pool.allocate(int(2.4 * MiB))  # cannot reuse a 5 MiB block (more than 2x): a new one ...
    c = pool.allocate(int(2.4 * MiB))  # ... and this one needs the cached block given back
    s = pool.get_stats()
    assert s.cached_bytes == 0 and s.released_blocks == 1 and s.limit_failures == 1
    assert s.current_usage <= 8 * MiB
    with pytest.raises(MemoryLimitError):
        pool.allocate(4 * MiB)
    pool.deallocate(b)
    pool.deallocate(c)


def test_idle_blocks_are_trimmed_after_a_burst():
    """A cached block not reused within trim_idle_frees deallocations goes back to the system
    while more than trim_keep_bytes are cached; steadily reused blocks stay."""
    pool = MemoryPool(PoolConfig(trim_idle_frees=3, trim_keep_bytes=1 * MiB))
    pool.deallocate(pool.allocate(64 * MiB))  # the burst
    for _ in range(2):
        pool.deallocate(pool.allocate(2 * MiB))
    assert pool.get_stats().cached_bytes > 64 * MiB  # 2 frees went by
    pool.deallocate(pool.allocate(2 * MiB))  # the third
    s = pool.get_stats()
    assert 2 * MiB <= s.cached_bytes < 3 * MiB and s.released_blocks == 1
    assert pool.trim() >= 2 * MiB and pool.get_stats().cached_bytes == 0


def test_threads_allocating_at_once_leave_consistent_stats():
    pool = MemoryPool(PoolConfig(trim_idle_frees=2, trim_keep_bytes=0, memory_limit=64 * MiB))

    def churn(seed: int) -> None:
        rng = np.random.default_rng(seed)
        held = []
        for size in rng.choice([16, 300, 5000, 70_000, 1 * MiB], 400):
            held.append(pool.allocate(int(size)))
            if len(held) > 3:
                pool.deallocate(held.pop(int(rng.integers(len(held)))))
        for address in held:
            pool.deallocate(address)

    threads = [threading.Thread(target=churn, args=(k,)) for k in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    s = pool.get_stats()
    assert s.current_usage == 0 and s.allocations == s.deallocations == 6 * 400
    assert s.hits + s.misses == s.allocations and s.limit_failures == 0


def test_scoped_arena_rewinds_to_its_entry_offset():
    arena = Arena(4096)
    arena.allocate(100)
    used = arena.used
    with ScopedArena(arena) as scope:
        scope.allocate(512)
        scope.allocate(7)
        assert arena.used > used
    assert arena.used == used


def _mlp_session(tmp_path) -> InferenceSession:
    rng = np.random.default_rng(3)
    model = make_model(
        [helper.make_node("MatMul", ["x", "w1"], ["h"]), helper.make_node("Relu", ["h"], ["r"]),
         helper.make_node("MatMul", ["r", "w2"], ["y"])],
        [("x", ["batch", 256])], [("y", ["batch", 16])],
        {"w1": rng.standard_normal((256, 256), dtype=np.float32), "w2": rng.standard_normal((256, 16), dtype=np.float32)})
    onnx.save(model, tmp_path / "mlp.onnx")
    return InferenceSession(str(tmp_path / "mlp.onnx"))


def test_a_run_beyond_the_limit_raises_and_smaller_runs_go_on(tmp_path, global_config):
    sess = _mlp_session(tmp_path)
    small, big = np.ones((4, 256), np.float32), np.ones((4096, 256), np.float32)  # big: 4 MiB of scratch
    expected = sess.run(None, {"x": small})[0]
    global_config(PoolConfig(memory_limit=2 * MiB))
    with pytest.raises(MemoryLimitError, match="past its limit"):
        sess.run(None, {"x": big})
    for _ in range(2):
        np.testing.assert_array_equal(sess.run(None, {"x": small})[0], expected)
    s = memory.global_pool().get_stats()
    assert s.limit_failures == 1 and s.current_usage == 0 and s.hits >= 1


def _rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


@pytest.mark.slow
def test_rss_returns_after_a_batch_64_burst(benchmark_onnx):
    """MobileNetV2: after one batch-64 run (hundreds of MB of scratch) and a few batch-1 runs,
    the process's resident memory is back within 10% of where it was before the burst."""
    sess = InferenceSession(benchmark_onnx("mobilenetv2"))
    one = np.random.default_rng(0).standard_normal((1, 3, 224, 224)).astype(np.float32)
    for _ in range(3):
        sess.run(None, {"input": one})
    before = _rss_bytes()
    burst = np.random.default_rng(1).standard_normal((64, 3, 224, 224)).astype(np.float32)
    sess.run(None, {"input": burst})
    peak = _rss_bytes()
    del burst
    for _ in range(PoolConfig().trim_idle_frees + 1):
        sess.run(None, {"input": one})
    after = _rss_bytes()
    assert peak > before + 100 * MiB  # the burst mattered
    assert after <= before * 1.10, f"RSS {before / MiB:.0f} MiB before the burst, {after / MiB:.0f} MiB after"
