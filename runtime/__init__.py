"""The C runtime (built by cffi at install): arenas, the worker pool, runs, symbols for JIT'd code
(the memory pool's Python API is pyflame_rt.memory)."""
from __future__ import annotations

from pyflame_rt.errors import BackendError

try:
    from pyflame_rt.runtime._pfrt import ffi, lib
except ImportError as e:  # pragma: no cover - only when the package was not installed
    raise BackendError(
        "the PyFlameRT C runtime is not built; install the package with `pip install -e .`") from e


def num_cores() -> int:
    return lib.pfrt_num_cores()


def native_symbols() -> dict[str, int]:
    """Addresses of the runtime functions generated code calls."""
    try:
        return {name: int(ffi.cast("uintptr_t", ffi.addressof(lib, name)))
                for name in ("pfrt_parallel_for", "pfrt_checked_address")}
    except AttributeError as e:
        raise BackendError(f"the built C runtime is older than its sources ({e}); "
                           "rebuild it with `pip install -e .`") from None


class Arena:
    """A 64-byte-aligned scratch block that grows on demand and is reused across runs."""

    def __init__(self, capacity: int = 0):
        self._ptr = lib.pfrt_arena_create(capacity)
        if self._ptr == ffi.NULL:
            raise BackendError(f"cannot allocate an arena of {capacity} bytes")

    def reserve(self, capacity: int) -> int:
        """Ensure at least `capacity` bytes; return the base address."""
        if lib.pfrt_arena_reserve(self._ptr, capacity) != 0:
            raise BackendError(f"cannot grow the arena to {capacity} bytes")
        return self.base

    @property
    def base(self) -> int:
        return int(ffi.cast("uintptr_t", lib.pfrt_arena_base(self._ptr)))

    @property
    def capacity(self) -> int:
        return lib.pfrt_arena_capacity(self._ptr)

    def allocate(self, size: int) -> int:
        p = lib.pfrt_arena_alloc(self._ptr, size)
        if p == ffi.NULL:
            raise BackendError(f"arena exhausted: {size} bytes requested, "
                               f"{self.capacity - lib.pfrt_arena_used(self._ptr)} free")
        return int(ffi.cast("uintptr_t", p))

    def reset(self) -> None:
        lib.pfrt_arena_reset(self._ptr)

    def rewind(self, mark: int) -> None:
        """Undo the allocations made since `used` was `mark`."""
        lib.pfrt_arena_rewind(self._ptr, mark)

    @property
    def used(self) -> int:
        return lib.pfrt_arena_used(self._ptr)

    @property
    def peak(self) -> int:
        return lib.pfrt_arena_peak(self._ptr)

    def __del__(self):
        if getattr(self, "_ptr", None) is not None:
            lib.pfrt_arena_destroy(self._ptr)
            self._ptr = None


class ThreadPool:
    """Worker threads; the caller of parallel_for participates. num_threads<=0: one per core."""

    def __init__(self, num_threads: int = 0):
        self._ptr = lib.pfrt_pool_create(num_threads)
        if self._ptr == ffi.NULL:
            raise BackendError("cannot create the worker pool")

    @property
    def handle(self):
        return self._ptr

    @property
    def num_threads(self) -> int:
        return lib.pfrt_pool_num_threads(self._ptr)

    def parallel_for(self, fn, ctx, n: int, grain: int = 1) -> None:
        """fn: a cffi callback `void(void*, int64_t, int64_t)` (used by tests and Python tasks)."""
        lib.pfrt_parallel_for(self._ptr, fn, ctx, n, grain)

    def close(self) -> None:
        if getattr(self, "_ptr", None) is not None:
            lib.pfrt_pool_destroy(self._ptr)
            self._ptr = None

    def __del__(self):
        self.close()


_INT64_MAX = 2**63 - 1


class Run:
    """The per-call handle the runtime executes a launch table with: pool, deadline, kernel events."""

    def __init__(self, pool: ThreadPool, timeout_ms: int = 0, profile: bool = False):
        """timeout_ms <= 0: no deadline; longer than int64 nanoseconds: clamped (never reached)."""
        timeout_ns = min(int(timeout_ms) * 1_000_000, _INT64_MAX)
        self._ptr = lib.pfrt_run_create(pool.handle, timeout_ns, int(profile))
        if self._ptr == ffi.NULL:
            raise BackendError("cannot allocate a run handle")

    @property
    def handle(self):
        return self._ptr

    @property
    def timed_out(self) -> bool:
        return lib.pfrt_run_status(self._ptr) == lib.PFRT_RUN_TIMED_OUT

    @property
    def cancelled(self) -> bool:
        return lib.pfrt_run_status(self._ptr) == lib.PFRT_RUN_CANCELLED

    @property
    def kernels_done(self) -> int:
        return lib.pfrt_run_kernels_done(self._ptr)

    def violation(self) -> tuple[int, int, int, int, int, int, bool] | None:
        """A checked build's first out-of-bounds access of this run: (function address, step,
        region, byte offset, buffer size, access bytes, is a store), or None."""
        v = lib.pfrt_run_violation(self._ptr)
        if v == ffi.NULL:
            return None
        return (int(ffi.cast("uintptr_t", v.kernel)), v.step, v.region, v.offset, v.size, v.nbytes,
                bool(v.is_store))

    def events(self) -> list[tuple[int, int, int, int]]:
        """(kernel address, start ns, end ns, work items) per executed kernel call (monotonic clock)."""
        ev = lib.pfrt_run_events(self._ptr)
        return [(int(ffi.cast("uintptr_t", ev[i].kernel)), ev[i].start_ns, ev[i].end_ns, ev[i].work_items)
                for i in range(lib.pfrt_run_event_count(self._ptr))]

    def close(self) -> None:
        if getattr(self, "_ptr", None) is not None:
            lib.pfrt_run_destroy(self._ptr)
            self._ptr = None

    def __enter__(self) -> "Run":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __del__(self):
        self.close()


def now_ns() -> int:
    """The runtime's monotonic clock (the time base of kernel events)."""
    return lib.pfrt_now_ns()
