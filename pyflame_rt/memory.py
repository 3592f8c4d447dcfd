"""Memory pools and arenas (the guide's `pyflame_rt.memory`), backed by the C runtime.

Every run takes its scratch arena from `global_pool()` and gives it back when it ends, so the
pool's limit bounds the scratch of all runs at once (a run beyond it raises MemoryLimitError
before any kernel runs) and its trim policy gives the memory of a burst back to the system.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass, fields

from pyflame_rt.errors import BackendError, MemoryLimitError, ValidationError
from pyflame_rt.options import PoolConfig, is_size
from pyflame_rt.runtime import Arena, ffi, lib

__all__ = ["Arena", "MemoryPool", "PoolConfig", "PoolStats", "ScopedArena", "global_pool", "set_global_pool_config"]


@dataclass(frozen=True)
class PoolStats:
    """Bytes are whole blocks (header and size-class rounding included)."""

    current_usage: int
    peak_usage: int
    cached_bytes: int
    memory_limit: int
    allocations: int
    hits: int
    misses: int
    deallocations: int
    limit_failures: int
    released_blocks: int

    def hit_rate(self) -> float:
        """The share of allocations served from cached blocks."""
        return self.hits / self.allocations if self.allocations else 0.0


class MemoryPool:
    """A thread-safe pool of aligned blocks (the C runtime's pfrt_mempool)."""

    def __init__(self, config: PoolConfig | None = None):
        self.config = config = (config or PoolConfig()).validate()
        classes = ffi.new("size_t[]", list(config.size_classes) or [0])  # copied by the pool
        c = ffi.new("pfrt_mempool_config*", {
            "size_classes": classes, "num_classes": len(config.size_classes),
            "max_blocks_per_class": config.max_blocks_per_class, "alignment": config.alignment,
            "memory_limit": config.memory_limit, "trim_idle_frees": config.trim_idle_frees,
            "trim_keep_bytes": config.trim_keep_bytes})
        self._ptr = lib.pfrt_mempool_create(c)
        if self._ptr == ffi.NULL:
            raise BackendError("cannot create the memory pool")
        self._blocks: dict[int, int] = {}  # what allocate() handed out: address -> requested bytes

    def allocate(self, size: int) -> int:
        """The address of at least `size` bytes aligned to config.alignment."""
        if not is_size(size):
            raise ValidationError(f"size must be an int >= 0, got {size!r}")
        status = ffi.new("int*")
        p = lib.pfrt_mempool_alloc(self._ptr, min(size, _SIZE_MAX), status)
        if p == ffi.NULL:
            raise self.allocation_error(status[0], size)
        address = int(ffi.cast("uintptr_t", p))
        self._blocks[address] = size
        return address

    def deallocate(self, address: int) -> None:
        if self._blocks.pop(address, None) is None:
            raise ValidationError(f"address {address:#x} was not allocated by this pool or is already freed")
        lib.pfrt_mempool_free(self._ptr, ffi.cast("void*", address))

    @property
    def handle(self):
        """The C pool (for pfrt_execute_pooled)."""
        return self._ptr

    def allocation_error(self, status: int, size: int) -> Exception:
        """The error for a PFRT_MEM_* failure status of a request of `size` bytes."""
        if status == lib.PFRT_MEM_LIMIT:
            s = self.get_stats()
            return MemoryLimitError(
                f"{size} bytes would take the memory pool past its limit of {s.memory_limit} bytes "
                f"({s.current_usage} in use); raise PoolConfig.memory_limit "
                f"(pyflame_rt.memory.set_global_pool_config) or run smaller batches")
        return BackendError(f"the system cannot provide {size} bytes of memory")

    def trim(self, keep_bytes: int = 0) -> int:
        """Give cached blocks back to the system, oldest first, until at most keep_bytes stay
        cached; returns the bytes given back."""
        if not is_size(keep_bytes):
            raise ValidationError(f"keep_bytes must be an int >= 0, got {keep_bytes!r}")
        return lib.pfrt_mempool_trim(self._ptr, keep_bytes)

    def get_stats(self) -> PoolStats:
        s = ffi.new("pfrt_mempool_stats*")
        lib.pfrt_mempool_get_stats(self._ptr, s)
        return PoolStats(**{f.name: getattr(s, f.name) for f in fields(PoolStats)})

    def __del__(self):
        if getattr(self, "_ptr", None) is not None:
            lib.pfrt_mempool_destroy(self._ptr)
            self._ptr = None


class ScopedArena:
    """`with ScopedArena(arena) as scope:` allocations made in the block are undone at its end
    (the arena goes back to the offset it had on entry)."""

    def __init__(self, arena: Arena):
        self.arena = arena
        self._mark: int | None = None

    def __enter__(self) -> "ScopedArena":
        self._mark = self.arena.used
        return self

    def allocate(self, size: int) -> int:
        return self.arena.allocate(size)

    def __exit__(self, *exc) -> None:
        self.arena.rewind(self._mark)


_global_lock = threading.Lock()
_global: MemoryPool | None = None


def global_pool() -> MemoryPool:
    """The pool every session's runs take their scratch arenas from."""
    global _global
    if _global is None:
        with _global_lock:
            if _global is None:
                _global = MemoryPool()
    return _global


def set_global_pool_config(config: PoolConfig) -> None:
    """Replace the global pool by one with this config; runs in flight finish with the old one."""
    global _global
    pool = MemoryPool(config)
    with _global_lock:
        _global = pool


_SIZE_MAX = 2**64 - 1
