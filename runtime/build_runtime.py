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

typedef struct {
    void *kernel;
    int64_t start_ns;
    int64_t end_ns;
    int64_t work_items;
} pfrt_kernel_event;
#define PFRT_RUN_OK 0
#define PFRT_RUN_TIMED_OUT 1
typedef struct pfrt_run pfrt_run;
pfrt_run *pfrt_run_create(pfrt_pool *pool, int64_t timeout_ns, int profile);
void pfrt_run_destroy(pfrt_run *run);
void pfrt_run_kernel(pfrt_run *run, pfrt_task_fn fn, void *ctx, int64_t n, int64_t grain);
int pfrt_run_status(pfrt_run *run);
int64_t pfrt_run_kernels_done(pfrt_run *run);
int64_t pfrt_run_event_count(pfrt_run *run);
const pfrt_kernel_event *pfrt_run_events(pfrt_run *run);
int64_t pfrt_now_ns(void);
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
