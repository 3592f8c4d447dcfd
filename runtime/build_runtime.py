"""cffi build script for the C runtime; run by setup.py (paths relative to the repo root)."""

from cffi import FFI


CDEF = """
typedef struct pfrt_arena pfrt_arena;
pfrt_arena *pfrt_arena_create(size_t capacity);
void pfrt_arena_destroy(pfrt_arena *arena);
int pfrt_arena_reserve(pfrt_arena *arena, size_t capacity);
void *pfrt_arena_base(pfrt_arena *arena);
size_t pfrt_arena_capacity(pfrt_arena *arena);
void *pfrt_arena_alloc(pfrt_arena *arena, size_t size);
void pfrt_arena_reset(pfrt_arena *arena);
size_t pfrt_arena_used(pfrt_arena *arena);
size_t pfrt_arena_peak(pfrt_arena *arena);

typedef void (*pfrt_task_fn)(void *ctx, int64_t begin, int64_t end);
typedef struct pfrt_pool pfrt_pool;
pfrt_pool *pfrt_pool_create(int num_threads);
void pfrt_pool_destroy(pfrt_pool *pool);
int pfrt_pool_num_threads(pfrt_pool *pool);
void pfrt_parallel_for(pfrt_pool *pool, pfrt_task_fn fn, void *ctx, int64_t n, int64_t grain);
int pfrt_num_cores(void);
"""

ffibuilder = FFI()
ffibuilder.cdef(CDEF)
ffibuilder.set_source(
    "pyflame_rt.runtime._pfrt",
    '#include "pfrt.h"',
    sources=["runtime/pfrt.c"],
    include_dirs=["runtime"],
    extra_compile_args=["-O2", "-pthread", "-std=gnu11"],
    extra_link_args=["-pthread"],
)

if __name__ == "__main__":
    ffibuilder.compile(verbose=True)
