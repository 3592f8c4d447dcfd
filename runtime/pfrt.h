/* PyFlameRT C runtime: aligned arenas and a worker pool that generated code calls. */
#ifndef PFRT_H
#define PFRT_H
#include <stdint.h>
#include <stddef.h>

#define PFRT_ALIGNMENT 64

/* ---- arena: one 64-byte-aligned block, bump allocation, reset between runs ---- */
typedef struct pfrt_arena pfrt_arena;
pfrt_arena *pfrt_arena_create(size_t capacity);
void pfrt_arena_destroy(pfrt_arena *arena);
/* Grow (never shrink) the arena so that it holds at least `capacity` bytes. 0 on success. */
int pfrt_arena_reserve(pfrt_arena *arena, size_t capacity);
void *pfrt_arena_base(pfrt_arena *arena);
size_t pfrt_arena_capacity(pfrt_arena *arena);
/* Bump-allocate `size` bytes aligned to 64; NULL when the arena is full. */
void *pfrt_arena_alloc(pfrt_arena *arena, size_t size);
void pfrt_arena_reset(pfrt_arena *arena);
size_t pfrt_arena_used(pfrt_arena *arena);
size_t pfrt_arena_peak(pfrt_arena *arena);

/* ---- worker pool with a parallel-for that generated code calls directly ---- */
typedef void (*pfrt_task_fn)(void *ctx, int64_t begin, int64_t end);
typedef struct pfrt_pool pfrt_pool;
/* num_threads <= 0 means one thread per online core. The calling thread is one of them.
   Fork-safe: in a forked child a pool starts new workers (and fresh locks) at its first use,
   whatever the parent's threads were doing at the fork. */
pfrt_pool *pfrt_pool_create(int num_threads);
void pfrt_pool_destroy(pfrt_pool *pool);
int pfrt_pool_num_threads(pfrt_pool *pool);
/* Run fn(ctx, b, e) over [0, n) split into chunks of at least `grain` indices.
   Every index is covered exactly once; returns when all chunks are done. Each
   thread (the caller is thread 0) first runs its own contiguous share of the
   chunks in order, then takes what is left of the others'.
   Safe to call from several threads at once: the workers serve one call at a time and a
   call made while they are busy (e.g. by another run) runs on its calling thread, so the
   runs of one pool overlap; a call made from inside a task runs inline. */
void pfrt_parallel_for(pfrt_pool *pool, pfrt_task_fn fn, void *ctx, int64_t n, int64_t grain);
int pfrt_num_cores(void);
/* Asks the OS for the AMX tile state (Linux: arch_prctl ARCH_REQ_XCOMP_PERM for XTILEDATA), which
   a process needs before its first tile instruction; process-wide, idempotent. 0 when granted. */
int pfrt_request_amx(void);

/* ---- one model run: its deadline, kernel events and first bounds violation ----
   pfrt_execute calls pfrt_run_kernel for every launch. Between kernels it
   enforces the run's deadline (a timed-out run skips the remaining kernels and
   reports PFRT_RUN_TIMED_OUT, so the caller raises instead of returning partial
   results), stops a run whose request was cancelled (PFRT_RUN_CANCELLED, pfrt_queue.c: its
   caller discards the outputs) and, when profiling, records one event per kernel call. */
#define PFRT_RUN_OK 0
#define PFRT_RUN_TIMED_OUT 1
#define PFRT_RUN_OUT_OF_BOUNDS 2
typedef struct {
    void *kernel;        /* address of the kernel function */
    int64_t start_ns;    /* CLOCK_MONOTONIC */
    int64_t end_ns;
    int64_t work_items;
} pfrt_kernel_event;
typedef struct pfrt_run pfrt_run;
/* timeout_ns <= 0: no deadline; a deadline beyond the clock's range is never reached.
   profile != 0: record kernel events. */
pfrt_run *pfrt_run_create(pfrt_pool *pool, int64_t timeout_ns, int profile);
void pfrt_run_destroy(pfrt_run *run);
void pfrt_run_kernel(pfrt_run *run, pfrt_task_fn fn, void *ctx, int64_t n, int64_t grain);
int pfrt_run_status(pfrt_run *run);
/* ---- the launch table: a compiled model's schedule, executed by the runtime ----
   A launch runs one kernel over `items` work items (chunks of at least `grain`) with a context
   built from its fields, in order: each field is a value, or an address inside an input/output
   tensor (io[slot]), the weight blob or the arena. The compiler resolves every size for the
   run's dims, so the table holds plain numbers; only the base addresses change between runs. */
#define PFRT_FIELD_VALUE 0
#define PFRT_FIELD_IO 1
#define PFRT_FIELD_WEIGHTS 2
#define PFRT_FIELD_ARENA 3
typedef struct {
    int64_t kind;        /* PFRT_FIELD_* */
    int64_t slot;        /* PFRT_FIELD_IO: the io slot */
    int64_t value;       /* VALUE: the value; else the address's byte offset from its buffer's start */
    int64_t start;       /* the buffer's byte offset from its base (weights, arena; io: 0) */
    int64_t size;        /* the buffer's size in bytes: its bounds in a checked build */
} pfrt_field;
typedef struct {
    pfrt_task_fn kernel;
    int64_t first_field; /* its fields: fields[first_field .. first_field + num_fields) */
    int64_t num_fields;
    int64_t items, grain;
} pfrt_launch;
/* Run launches[0 .. n) in order through pfrt_run_kernel (deadline, profiling, violations), each
   with a context of its fields' values in memory owned by this call, so runs of one table may
   execute at once. checked != 0: the checked-build context (targets/cpu/checked.py): a header
   (slot count, run, launch index), then per field its value and its buffer's [lo, hi) addresses.
   Returns -1 if the context cannot be allocated, else 0 (the run's status says how it ended). */
int pfrt_execute(pfrt_run *run, const pfrt_launch *launches, int64_t n, const pfrt_field *fields,
                 void *const *io, const void *weights, void *arena, int checked);
typedef struct {
    void *dest;
    const void *source;
    int64_t nbytes;
} pfrt_copy;
/* A loop (pyflame_rt/loops.py; the caller resolved and checked every address): its body is the
   launches [begin, end) of the table, `inner` the loops within it, in order, their launches inside
   the body's. */
typedef struct pfrt_loop {
    int64_t begin, end;
    int64_t *counter;
    uint8_t *flag;
    const uint8_t *init; /* NULL: true */
    const uint8_t *cond;
    int64_t trips;
    const pfrt_copy *enters;
    int64_t num_enters;
    const pfrt_copy *scans;
    int64_t num_scans;
    const pfrt_copy *nexts;
    int64_t num_nexts;
    char *scratch; /* at least the nexts' total size */
    const struct pfrt_loop *inner;
    int64_t num_inner;
} pfrt_loop;
/* Runs a loop: stores 0 into *counter and 1 into *flag, makes the `enters` copies; then, if *init
   holds, runs the body once per iteration while fewer than `trips` ran, the run goes on (its
   deadline and cancellation are checked before every iteration, at every level), no kernel stored
   a failed check into *status and, after each iteration, *cond is not 0. An iteration stores its
   number into *counter, runs the body's launches as pfrt_execute does (a checked context numbers
   them by their index in `launches`, the whole table), each inner loop in its
   place as this function does, then the `scans` copies (to byte i * nbytes of their dest), then
   the `nexts` copies through `scratch` (every source is read before any dest is written). After
   the loop *counter holds the iterations run. Returns -1 if a kernel context cannot be allocated,
   else 0. */
int pfrt_execute_loop(pfrt_run *run, const pfrt_launch *launches, const pfrt_field *fields, void *const *io,
                      const void *weights, void *arena, int checked, const pfrt_loop *loop, const int64_t *status);

/* Checked builds: generated code passes the address of every load and store, with the
   buffer [lo, lo + size) its pointer belongs to. An access inside it (or of 0 bytes) returns p;
   one outside returns `redirect` (a scratch block of the caller, so the access touches nothing
   else) and is reported: the run keeps its first violation (any thread may report at once),
   then skips its remaining kernels and reports PFRT_RUN_OUT_OF_BOUNDS. */
typedef struct {
    void *kernel;        /* address of the reporting function */
    int64_t step;        /* the launch's index in the table */
    int64_t region;      /* the kernel field (>= 0) or another buffer (< 0, see checked.py) */
    int64_t offset, size, nbytes, is_store;  /* offset: the access's first byte minus lo */
} pfrt_bounds_violation;
void *pfrt_checked_address(void *p, int64_t lo, int64_t size, int64_t nbytes, int64_t region, int64_t is_store,
                           pfrt_run *run, void *kernel, int64_t step, void *redirect);
/* The run's first violation, NULL if none. */
const pfrt_bounds_violation *pfrt_run_violation(pfrt_run *run);
/* Kernels executed so far (skipped ones excluded) and the kernel index at which the deadline hit. */
int64_t pfrt_run_kernels_done(pfrt_run *run);
int64_t pfrt_run_event_count(pfrt_run *run);
const pfrt_kernel_event *pfrt_run_events(pfrt_run *run);
int64_t pfrt_now_ns(void);

/* ---- memory pool: the blocks runs take their scratch arena from (runtime/pfrt_mempool.c) ----
   A request of at most the largest size class gets a block of the smallest class that holds it;
   a larger one gets a block of its own page-rounded size (large blocks are mmap'd, so releasing
   one returns its pages to the system). A freed block is cached for reuse (at most
   max_blocks_per_class per class, and per the large list); a large request reuses a cached block
   of at least its size and at most twice it. Trim policy: each free ends a tick; a cached block
   not reused within trim_idle_frees ticks is released, oldest first, while the cache holds more
   than trim_keep_bytes (trim_idle_frees 0: never by age). memory_limit (0: none) bounds the
   pool's footprint, in-use plus cached block bytes: a request beyond it first releases cached
   blocks, then fails with PFRT_MEM_LIMIT. Every function is thread-safe, and fork-safe: a fork
   waits for the calls in flight, so a child's pools are consistent (blocks other threads held
   at the fork stay counted as in use there). */
#define PFRT_MEM_OK 0
#define PFRT_MEM_LIMIT 1   /* the request would take the pool past its memory_limit */
#define PFRT_MEM_NOMEM 2   /* the system refused the memory */
typedef struct pfrt_mempool pfrt_mempool;
typedef struct {
    const size_t *size_classes;  /* ascending, each a multiple of 16 */
    int64_t num_classes;
    int64_t max_blocks_per_class;
    size_t alignment;            /* a power of two in [16, 4096] */
    size_t memory_limit;
    int64_t trim_idle_frees;
    size_t trim_keep_bytes;
} pfrt_mempool_config;
typedef struct {
    size_t current_usage;        /* block bytes handed out and not freed */
    size_t peak_usage;
    size_t cached_bytes;         /* block bytes kept for reuse */
    size_t memory_limit;
    int64_t allocations, hits, misses, deallocations, limit_failures;
    int64_t released_blocks;     /* cached blocks given back to the system */
} pfrt_mempool_stats;
/* NULL if the config is invalid or memory is short. */
pfrt_mempool *pfrt_mempool_create(const pfrt_mempool_config *config);
/* Releases every cached block; blocks still handed out must not be used afterwards. */
void pfrt_mempool_destroy(pfrt_mempool *pool);
/* At least `size` bytes aligned to the pool's alignment, or NULL with *status PFRT_MEM_LIMIT or
   PFRT_MEM_NOMEM. */
void *pfrt_mempool_alloc(pfrt_mempool *pool, size_t size, int *status);
/* p: a block of this pool (NULL is ignored). Caches or releases it, then trims by age. */
void pfrt_mempool_free(pfrt_mempool *pool, void *p);
/* Release cached blocks, oldest first, until at most keep_bytes stay cached; returns bytes released. */
size_t pfrt_mempool_trim(pfrt_mempool *pool, size_t keep_bytes);
void pfrt_mempool_get_stats(pfrt_mempool *pool, pfrt_mempool_stats *out);
/* pfrt_execute with an arena of arena_bytes from the pool, given back when the run ends (one
   call per run). Returns pfrt_execute's result, or the PFRT_MEM_* status (> 0) when the arena
   cannot be had: then no kernel ran. */
int pfrt_execute_pooled(pfrt_mempool *pool, size_t arena_bytes, pfrt_run *run, const pfrt_launch *launches,
                        int64_t n, const pfrt_field *fields, void *const *io, const void *weights, int checked);
/* Rewind an arena to an earlier pfrt_arena_used() mark (a scoped arena's exit). */
void pfrt_arena_rewind(pfrt_arena *arena, size_t mark);

/* ---- request queues (pfrt_queue.c): async streams and the dynamic / priority batcher ----
   Requests are ids the caller owns (their tensors stay on the caller's side); the runtime keeps the
   queues, the threads that serve them, cancellation flags, timeouts and statistics, and calls back
   into the caller to run a request or a batch. Callbacks run on the runtime's threads. */
#define PFRT_QUEUE_OK 0
#define PFRT_QUEUE_FULL 1
#define PFRT_QUEUE_STOPPED 2
#define PFRT_QUEUE_BAD_ARGUMENT 3
/* a request's outcome (what a callback returns, what the statistics count) */
#define PFRT_REQUEST_OK 0
#define PFRT_REQUEST_FAILED 1
#define PFRT_REQUEST_CANCELLED 2
#define PFRT_REQUEST_TIMED_OUT 3
/* A run created on a thread that serves a request (pfrt_run_create) stops between kernels once the
   request is cancelled: its status becomes PFRT_RUN_CANCELLED. NULL on other threads. */
#define PFRT_RUN_CANCELLED 3
const int *pfrt_thread_cancel_flag(void);
typedef struct {
    int64_t submitted, completed, failed, cancelled, timed_out, rejected;
    int64_t pending;            /* queued or running now */
    int64_t batches, batched_requests, batched_rows, padded_rows;
    int64_t queue_ns;           /* summed over dispatched requests: submit to dispatch */
    int64_t latency_ns;         /* summed over finished (ok or failed) requests: submit to finish */
    int64_t first_submit_ns, last_finish_ns;
} pfrt_queue_stats;

/* Async streams: num_streams threads, each serving its own FIFO queue in order. run(user, id,
   stream, cancelled) runs one request (cancelled != 0: it was cancelled while queued, only report
   it) and returns its PFRT_REQUEST_* outcome. At most `capacity` requests are pending at once. */
typedef int (*pfrt_request_fn)(void *user, int64_t id, int stream, int cancelled);
typedef struct pfrt_streams pfrt_streams;
pfrt_streams *pfrt_streams_create(int num_streams, int64_t capacity, pfrt_request_fn run, void *user);
/* PFRT_QUEUE_OK, _FULL, _STOPPED, or _BAD_ARGUMENT for a stream out of range. */
int pfrt_streams_submit(pfrt_streams *s, int stream, int64_t id);
/* The stream with the fewest pending requests (the lowest index among equals). */
int pfrt_streams_select(pfrt_streams *s);
/* Block until the stream (stream < 0: every stream) has no pending request. */
void pfrt_streams_synchronize(pfrt_streams *s, int stream);
/* Cancel a pending request: 1 if it was pending and not cancelled yet, else 0. A queued one is reported cancelled
   without running; a running one stops at its next kernel boundary. */
int pfrt_streams_cancel(pfrt_streams *s, int64_t id);
int64_t pfrt_streams_cancel_all(pfrt_streams *s);
/* Refuse new requests, serve the queued ones, join the threads. Idempotent. On one of the
   queue's own threads (a callback) it only refuses new requests: a thread cannot join itself. */
void pfrt_streams_stop(pfrt_streams *s);
void pfrt_streams_destroy(pfrt_streams *s);
void pfrt_streams_stats(pfrt_streams *s, pfrt_queue_stats *out);
/* The q-quantile (0..1) of the latencies of the last finished requests (up to 8192), ns; 0 if none. */
int64_t pfrt_streams_latency_quantile(pfrt_streams *s, double q);

/* The batcher: one queue of requests, each `rows` rows of a group of requests that can be
   concatenated (same non-batch shapes), with a priority. Workers form a batch from the group of the
   request of highest effective priority (priority + time waited / aging_ns: the oldest first among
   equals, and a waiting request eventually outranks any newer one), in that order, up to
   max_batch_size rows. A batch is dispatched once full, or once its oldest request has waited
   max_latency_ns and it has min_batch_size rows. Below max_batch_size, preferred sizes apply: with
   padding the batch is padded to the smallest preferred size that holds it, without it only the
   requests that fit the largest preferred size it reaches are taken (the rest lead the next batch).
   A request still queued at its deadline is reported timed out. */
typedef struct {
    int64_t max_batch_size, min_batch_size, max_latency_ns, capacity, aging_ns;
    int64_t num_workers;
    const int64_t *preferred;   /* ascending; num_preferred of them */
    int64_t num_preferred;
    int64_t enable_padding;
} pfrt_batch_config;
#define PFRT_BATCH_RUN 0        /* run ids[0..n) as one batch of `rows` rows (padding included) */
#define PFRT_BATCH_TIMED_OUT 1  /* ids[0..n) passed their deadline in the queue */
/* Returns the number of requests of a run that failed (0 for other kinds). */
typedef int64_t (*pfrt_batch_fn)(void *user, int kind, const int64_t *ids, int64_t n, int64_t rows);
typedef struct pfrt_batcher pfrt_batcher;
/* NULL if the configuration is invalid or memory is short. */
pfrt_batcher *pfrt_batcher_create(const pfrt_batch_config *config, pfrt_batch_fn fn, void *user);
/* timeout_ns <= 0: none. PFRT_QUEUE_OK, _FULL (at once, never blocks), _STOPPED, _BAD_ARGUMENT
   (rows outside 1..max_batch_size). */
int pfrt_batcher_submit(pfrt_batcher *b, int64_t id, int64_t group, int64_t rows, int64_t priority,
                        int64_t timeout_ns);
/* Remove a queued request: 1 if it was queued (it is then counted cancelled), 0 otherwise. */
int pfrt_batcher_cancel(pfrt_batcher *b, int64_t id);
/* Refuse new requests, dispatch the queued ones without waiting, join the workers. Idempotent;
   on a worker (a callback) it only refuses new requests. */
void pfrt_batcher_stop(pfrt_batcher *b);
void pfrt_batcher_destroy(pfrt_batcher *b);
void pfrt_batcher_stats(pfrt_batcher *b, pfrt_queue_stats *out);
int64_t pfrt_batcher_latency_quantile(pfrt_batcher *b, double q);

#endif
