/* PyFlameRT C runtime. See pfrt.h. */
#define _GNU_SOURCE
#include "pfrt.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sched.h>
#include <time.h>
#if defined(__linux__) && defined(__x86_64__)
#include <sys/syscall.h>
#endif

/* ------------------------------------------------------------------ arena */

struct pfrt_arena {
    char *base;
    size_t capacity;
    size_t used;
    size_t peak;
};

static size_t round_up(size_t n) { return (n + PFRT_ALIGNMENT - 1) & ~(size_t)(PFRT_ALIGNMENT - 1); }

pfrt_arena *pfrt_arena_create(size_t capacity) {
    pfrt_arena *a = calloc(1, sizeof(*a));
    if (!a) return NULL;
    if (pfrt_arena_reserve(a, capacity) != 0) { free(a); return NULL; }
    return a;
}

void pfrt_arena_destroy(pfrt_arena *a) {
    if (!a) return;
    free(a->base);
    free(a);
}

int pfrt_arena_reserve(pfrt_arena *a, size_t capacity) {
    capacity = round_up(capacity ? capacity : PFRT_ALIGNMENT);
    if (capacity <= a->capacity) return 0;
    char *p = aligned_alloc(PFRT_ALIGNMENT, capacity);
    if (!p) return -1;
    free(a->base);          /* contents are scratch: nothing to preserve */
    a->base = p;
    a->capacity = capacity;
    a->used = 0;
    return 0;
}

void *pfrt_arena_base(pfrt_arena *a) { return a->base; }
size_t pfrt_arena_capacity(pfrt_arena *a) { return a->capacity; }
size_t pfrt_arena_used(pfrt_arena *a) { return a->used; }
size_t pfrt_arena_peak(pfrt_arena *a) { return a->peak; }
void pfrt_arena_reset(pfrt_arena *a) { a->used = 0; }
void pfrt_arena_rewind(pfrt_arena *a, size_t mark) { if (mark < a->used) a->used = mark; }

void *pfrt_arena_alloc(pfrt_arena *a, size_t size) {
    size_t need = round_up(size);
    if (need < size || a->used + need > a->capacity) return NULL;
    void *p = a->base + a->used;
    a->used += need;
    if (a->used > a->peak) a->peak = a->used;
    return p;
}

/* ------------------------------------------------------------------- pool */

#define SPIN_ROUNDS 20000

/* A thread's home range of a job's chunks, on its own cache line: the thread runs it in order,
   then takes what is left of the others' (from their fronts). Consecutive kernels split their
   items the same way, so a thread mostly reads rows it wrote itself in the kernel before. */
typedef struct {
    _Alignas(64) atomic_int_fast64_t next;
    int64_t end;
} home_range;

typedef struct {
    struct pfrt_pool *pool;
    int index;                   /* 1..num_threads-1: the caller is 0 */
} worker_arg;

struct pfrt_pool {
    int num_threads;             /* including the caller */
    int requested_threads;       /* what the pool was created with (a forked child restarts with it) */
    atomic_uint fork_generation; /* the process's fork generation the workers belong to */
    pthread_t *workers;
    worker_arg *worker_args;
    home_range *homes;           /* one per thread */
    pthread_mutex_t call_lock;   /* held by the parallel_for call the workers serve */
    pthread_mutex_t lock;
    pthread_cond_t wake;
    pthread_cond_t done;
    atomic_uint_fast64_t generation;
    atomic_int shutdown;
    /* the current job */
    pfrt_task_fn fn;
    void *ctx;
    int64_t n, chunk, num_chunks;
    atomic_int_fast64_t chunks_done;
    atomic_int active_workers;
};

static __thread int in_task = 0;

/* ------------------------------------------------------------ fork safety
   After fork() the child has only the forking thread: a pool's workers are gone and its locks
   may be held by threads that no longer exist. The child handler only counts the fork (it can
   run between fork and exec, where allocating or starting threads is unsafe); a pool whose
   generation is behind restarts itself at its next parallel_for -- fresh locks, no job, new
   workers -- and a stale pool is freed without touching its locks or joining its workers. */
static atomic_uint fork_generation;
static pthread_mutex_t restart_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_once_t atfork_once = PTHREAD_ONCE_INIT;

static void after_fork_in_child(void) {
    pthread_mutex_t unlocked = PTHREAD_MUTEX_INITIALIZER;
    restart_lock = unlocked;  /* its holder, if any, did not survive the fork */
    atomic_fetch_add(&fork_generation, 1);
}

static void install_atfork(void) { pthread_atfork(NULL, NULL, after_fork_in_child); }

static int pool_is_stale(pfrt_pool *p) {
    return atomic_load_explicit(&p->fork_generation, memory_order_acquire) != atomic_load(&fork_generation);
}

int pfrt_request_amx(void) {
#if defined(__linux__) && defined(__x86_64__)
    enum { ARCH_REQ_XCOMP_PERM = 0x1023, XFEATURE_XTILEDATA = 18 };
    return syscall(SYS_arch_prctl, ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA) == 0 ? 0 : -1;
#else
    return -1;
#endif
}

int pfrt_num_cores(void) {
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof(set), &set) == 0) {
        int c = CPU_COUNT(&set);
        if (c > 0) return c;
    }
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int)n : 1;
}

typedef struct {
    pfrt_task_fn fn;
    void *ctx;
    int64_t n, chunk, num_chunks;
} job_t;

/* Thread `self` runs its home range, then steals from the others' in turn. */
static void run_chunks(pfrt_pool *p, const job_t *job, int self) {
    int64_t done_here = 0;
    int threads = p->num_threads;
    for (int k = 0; k < threads; k++) {
        home_range *h = &p->homes[(self + k) % threads];
        for (;;) {
            int64_t c = atomic_fetch_add(&h->next, 1);
            if (c >= h->end) break;
            int64_t b = c * job->chunk;
            int64_t e = b + job->chunk < job->n ? b + job->chunk : job->n;
            job->fn(job->ctx, b, e);
            done_here++;
        }
    }
    if (done_here) atomic_fetch_add(&p->chunks_done, done_here);
}

/* Workers register as active while holding the lock, so the caller cannot set
   up the next job before every worker has left the current one. */
static void *worker_main(void *arg) {
    pfrt_pool *p = ((worker_arg *)arg)->pool;
    int self = ((worker_arg *)arg)->index;
    uint64_t seen = 0;
    in_task = 1;
    for (;;) {
        int spins = 0;
        while (atomic_load(&p->generation) == seen && !atomic_load(&p->shutdown) && spins < SPIN_ROUNDS) {
            spins++;
            __builtin_ia32_pause();
        }
        pthread_mutex_lock(&p->lock);
        while (atomic_load(&p->generation) == seen && !atomic_load(&p->shutdown))
            pthread_cond_wait(&p->wake, &p->lock);
        if (atomic_load(&p->shutdown)) { pthread_mutex_unlock(&p->lock); return NULL; }
        seen = atomic_load(&p->generation);
        job_t job = {p->fn, p->ctx, p->n, p->chunk, p->num_chunks};
        atomic_fetch_add(&p->active_workers, 1);
        pthread_mutex_unlock(&p->lock);
        run_chunks(p, &job, self);
        if (atomic_fetch_sub(&p->active_workers, 1) == 1) {
            pthread_mutex_lock(&p->lock);
            pthread_cond_broadcast(&p->done);
            pthread_mutex_unlock(&p->lock);
        }
    }
}

/* A pool without a job: fresh locks, counters at zero, workers 1..requested-1 started. */
static void pool_start(pfrt_pool *p) {
    pthread_mutex_init(&p->call_lock, NULL);
    pthread_mutex_init(&p->lock, NULL);
    pthread_cond_init(&p->wake, NULL);
    pthread_cond_init(&p->done, NULL);
    atomic_store(&p->generation, 0);
    atomic_store(&p->shutdown, 0);
    atomic_store(&p->chunks_done, 0);
    atomic_store(&p->active_workers, 0);
    p->num_threads = p->requested_threads;
    for (int i = 1; i < p->requested_threads; i++) {
        p->worker_args[i] = (worker_arg){p, i};
        if (pthread_create(&p->workers[i], NULL, worker_main, &p->worker_args[i]) != 0) {
            p->num_threads = i;
            break;
        }
    }
    atomic_store_explicit(&p->fork_generation, atomic_load(&fork_generation), memory_order_release);
}

/* The first use of a pool in a forked child: what the parent's threads left is abandoned. */
static void pool_restart_after_fork(pfrt_pool *p) {
    pthread_mutex_lock(&restart_lock);
    if (pool_is_stale(p)) pool_start(p);
    pthread_mutex_unlock(&restart_lock);
}

pfrt_pool *pfrt_pool_create(int num_threads) {
    pthread_once(&atfork_once, install_atfork);
    pfrt_pool *p = calloc(1, sizeof(*p));
    if (!p) return NULL;
    if (num_threads <= 0) num_threads = pfrt_num_cores();
    p->requested_threads = num_threads;
    p->workers = calloc((size_t)num_threads, sizeof(pthread_t));
    p->worker_args = calloc((size_t)num_threads, sizeof(worker_arg));
    p->homes = aligned_alloc(64, (size_t)num_threads * sizeof(home_range));
    if (!p->workers || !p->worker_args || !p->homes) {
        free(p->workers);
        free(p->worker_args);
        free(p->homes);
        free(p);
        return NULL;
    }
    pool_start(p);
    return p;
}

void pfrt_pool_destroy(pfrt_pool *p) {
    if (!p) return;
    if (pool_is_stale(p)) {  /* a forked child's copy: no workers to stop, locks not ours */
        free(p->workers);
        free(p->worker_args);
        free(p->homes);
        free(p);
        return;
    }
    pthread_mutex_lock(&p->lock);
    atomic_store(&p->shutdown, 1);
    pthread_cond_broadcast(&p->wake);
    pthread_mutex_unlock(&p->lock);
    for (int i = 1; i < p->num_threads; i++) pthread_join(p->workers[i], NULL);
    free(p->workers);
    free(p->worker_args);
    free(p->homes);
    pthread_mutex_destroy(&p->call_lock);
    pthread_mutex_destroy(&p->lock);
    pthread_cond_destroy(&p->wake);
    pthread_cond_destroy(&p->done);
    free(p);
}

int pfrt_pool_num_threads(pfrt_pool *p) { return pool_is_stale(p) ? p->requested_threads : p->num_threads; }

void pfrt_parallel_for(pfrt_pool *p, pfrt_task_fn fn, void *ctx, int64_t n, int64_t grain) {
    if (n <= 0) return;
    if (grain < 1) grain = 1;
    if (p && pool_is_stale(p)) pool_restart_after_fork(p);
    int64_t threads = p ? p->num_threads : 1;
    if (!p || threads == 1 || in_task || n <= grain) {
        fn(ctx, 0, n);
        return;
    }
    /* a few chunks per thread balances uneven work without much contention */
    int64_t chunk = (n + threads * 4 - 1) / (threads * 4);
    if (chunk < grain) chunk = grain;
    job_t job = {fn, ctx, n, chunk, (n + chunk - 1) / chunk};
    /* the workers serve another run's kernel: run this one on the calling thread, so concurrent
       runs overlap instead of queuing behind each other */
    if (pthread_mutex_trylock(&p->call_lock) != 0) {
        in_task = 1;
        fn(ctx, 0, n);
        in_task = 0;
        return;
    }
    pthread_mutex_lock(&p->lock);
    /* a worker that woke late for the previous job may still be registered */
    while (atomic_load(&p->active_workers) > 0) pthread_cond_wait(&p->done, &p->lock);
    p->fn = fn;
    p->ctx = ctx;
    p->n = n;
    p->chunk = chunk;
    p->num_chunks = job.num_chunks;
    for (int t = 0; t < threads; t++) {
        atomic_store(&p->homes[t].next, job.num_chunks * t / threads);
        p->homes[t].end = job.num_chunks * (t + 1) / threads;
    }
    atomic_store(&p->chunks_done, 0);
    atomic_fetch_add(&p->generation, 1);
    pthread_cond_broadcast(&p->wake);
    pthread_mutex_unlock(&p->lock);

    in_task = 1;
    run_chunks(p, &job, 0);
    in_task = 0;
    /* wait until every chunk has finished and no worker still touches this job */
    int spins = 0;
    while (atomic_load(&p->chunks_done) < job.num_chunks || atomic_load(&p->active_workers) > 0) {
        if (++spins < SPIN_ROUNDS) { __builtin_ia32_pause(); continue; }
        pthread_mutex_lock(&p->lock);
        if (atomic_load(&p->chunks_done) < job.num_chunks || atomic_load(&p->active_workers) > 0) {
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            ts.tv_nsec += 200000;
            if (ts.tv_nsec >= 1000000000L) { ts.tv_sec++; ts.tv_nsec -= 1000000000L; }
            pthread_cond_timedwait(&p->done, &p->lock, &ts);
        }
        pthread_mutex_unlock(&p->lock);
    }
    pthread_mutex_unlock(&p->call_lock);
}

/* -------------------------------------------------------------------- run */

struct pfrt_run {
    pfrt_pool *pool;
    int64_t deadline_ns;          /* 0: none */
    const int *cancel;            /* the served request's flag (pfrt_thread_cancel_flag), or NULL */
    int status;
    int profile;
    int64_t kernels_done;
    pfrt_kernel_event *events;
    int64_t num_events, cap_events;
    atomic_int violated;          /* 0, 1 while the first violation is written, 2 once it is */
    pfrt_bounds_violation violation;
};

int64_t pfrt_now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

pfrt_run *pfrt_run_create(pfrt_pool *pool, int64_t timeout_ns, int profile) {
    pfrt_run *r = calloc(1, sizeof(*r));
    if (!r) return NULL;
    r->pool = pool;
    if (timeout_ns > 0) {  /* saturating: a deadline past the clock's range never arrives */
        int64_t now = pfrt_now_ns();
        r->deadline_ns = timeout_ns > INT64_MAX - now ? INT64_MAX : now + timeout_ns;
    }
    r->profile = profile != 0;
    r->cancel = pfrt_thread_cancel_flag();
    return r;
}

void pfrt_run_destroy(pfrt_run *r) {
    if (!r) return;
    free(r->events);
    free(r);
}

static void record(pfrt_run *r, pfrt_task_fn fn, int64_t start, int64_t end, int64_t n) {
    if (r->num_events == r->cap_events) {
        int64_t cap = r->cap_events ? 2 * r->cap_events : 64;
        pfrt_kernel_event *ev = realloc(r->events, (size_t)cap * sizeof(*ev));
        if (!ev) return;  /* profiling is best effort; the run itself goes on */
        r->events = ev;
        r->cap_events = cap;
    }
    pfrt_kernel_event *e = &r->events[r->num_events++];
    e->kernel = (void *)fn;
    e->start_ns = start;
    e->end_ns = end;
    e->work_items = n;
}

/* Whether the run must stop (a violation, a cancellation, its deadline passed at `now`), its status
   set to say why. */
static int run_stops(pfrt_run *r, int64_t now) {
    if (atomic_load(&r->violated)) r->status = PFRT_RUN_OUT_OF_BOUNDS;
    if (r->status != PFRT_RUN_OK) return 1;
    if (r->cancel && __atomic_load_n(r->cancel, __ATOMIC_ACQUIRE)) {
        r->status = PFRT_RUN_CANCELLED;
        return 1;
    }
    if (r->deadline_ns && now > r->deadline_ns) {
        r->status = PFRT_RUN_TIMED_OUT;
        return 1;
    }
    return 0;
}

void pfrt_run_kernel(pfrt_run *r, pfrt_task_fn fn, void *ctx, int64_t n, int64_t grain) {
    int64_t start = (r->deadline_ns || r->profile) ? pfrt_now_ns() : 0;
    if (run_stops(r, start)) return;
    pfrt_parallel_for(r->pool, fn, ctx, n, grain);
    r->kernels_done++;
    if (r->profile) record(r, fn, start, pfrt_now_ns(), n);
}

/* The checked context's layout (targets/cpu/checked.py): CTX_HEADER slots, then CTX_STRIDE per field. */
#define CTX_HEADER 3
#define CTX_STRIDE 3

static int64_t field_base(const pfrt_field *f, void *const *io, const void *weights, void *arena) {
    switch (f->kind) {
    case PFRT_FIELD_IO: return (int64_t)(uintptr_t)io[f->slot];
    case PFRT_FIELD_WEIGHTS: return (int64_t)(uintptr_t)weights + f->start;
    case PFRT_FIELD_ARENA: return (int64_t)(uintptr_t)arena + f->start;
    default: return 0;
    }
}

/* pfrt_execute of launches[first .. last): the checked context numbers each by its index in `launches`. */
static int execute_range(pfrt_run *r, const pfrt_launch *launches, int64_t first, int64_t last,
                         const pfrt_field *fields, void *const *io, const void *weights, void *arena, int checked) {
    int64_t most = 1;
    for (int64_t i = first; i < last; i++)
        if (launches[i].num_fields > most) most = launches[i].num_fields;
    /* on cache lines of its own: every worker reads it while the caller updates the run */
    int64_t *ctx = aligned_alloc(PFRT_ALIGNMENT,
                                 round_up((size_t)(checked ? CTX_HEADER + CTX_STRIDE * most : most) * sizeof(int64_t)));
    if (!ctx) return -1;
    for (int64_t i = first; i < last && pfrt_run_status(r) == PFRT_RUN_OK; i++) {
        const pfrt_launch *l = &launches[i];
        const pfrt_field *f = fields + l->first_field;
        if (checked) {
            ctx[0] = CTX_HEADER + CTX_STRIDE * l->num_fields;
            ctx[1] = (int64_t)(uintptr_t)r;
            ctx[2] = i;
            for (int64_t k = 0; k < l->num_fields; k++) {
                int64_t *slot = ctx + CTX_HEADER + CTX_STRIDE * k;
                int64_t lo = field_base(&f[k], io, weights, arena);
                slot[0] = f[k].kind == PFRT_FIELD_VALUE ? f[k].value : lo + f[k].value;
                slot[1] = f[k].kind == PFRT_FIELD_VALUE ? 0 : lo;
                slot[2] = f[k].kind == PFRT_FIELD_VALUE ? 0 : lo + f[k].size;
            }
        } else {
            for (int64_t k = 0; k < l->num_fields; k++)
                ctx[k] = f[k].kind == PFRT_FIELD_VALUE ? f[k].value : field_base(&f[k], io, weights, arena) + f[k].value;
        }
        pfrt_run_kernel(r, l->kernel, ctx, l->items, l->grain);
    }
    free(ctx);
    return 0;
}

int pfrt_execute(pfrt_run *r, const pfrt_launch *launches, int64_t n, const pfrt_field *fields,
                 void *const *io, const void *weights, void *arena, int checked) {
    return execute_range(r, launches, 0, n, fields, io, weights, arena, checked);
}

static void copy_through(const pfrt_copy *copies, int64_t n, char *scratch) {
    char *p = scratch;
    for (int64_t k = 0; k < n; k++) {
        memcpy(p, copies[k].source, (size_t)copies[k].nbytes);
        p += copies[k].nbytes;
    }
    p = scratch;
    for (int64_t k = 0; k < n; k++) {
        memcpy(copies[k].dest, p, (size_t)copies[k].nbytes);
        p += copies[k].nbytes;
    }
}

/* One iteration of the loop's body: its launches, each inner loop in its place. */
static int run_body(pfrt_run *r, const pfrt_launch *launches, const pfrt_field *fields, void *const *io,
                    const void *weights, void *arena, int checked, const pfrt_loop *loop, const int64_t *status) {
    int64_t at = loop->begin;
    for (int64_t k = 0; k < loop->num_inner; k++) {
        const pfrt_loop *inner = &loop->inner[k];
        if (execute_range(r, launches, at, inner->begin, fields, io, weights, arena, checked) ||
            pfrt_execute_loop(r, launches, fields, io, weights, arena, checked, inner, status))
            return -1;
        at = inner->end;
    }
    return execute_range(r, launches, at, loop->end, fields, io, weights, arena, checked);
}

int pfrt_execute_loop(pfrt_run *r, const pfrt_launch *launches, const pfrt_field *fields, void *const *io,
                      const void *weights, void *arena, int checked, const pfrt_loop *loop, const int64_t *status) {
    *loop->counter = 0;
    *loop->flag = 1;
    for (int64_t k = 0; k < loop->num_enters; k++)
        memmove(loop->enters[k].dest, loop->enters[k].source, (size_t)loop->enters[k].nbytes);
    int64_t i = 0;
    int go = loop->init == NULL || *loop->init != 0;
    /* checked every iteration: a body without launches never reaches pfrt_run_kernel's checks */
    while (go && i < loop->trips && !run_stops(r, r->deadline_ns ? pfrt_now_ns() : 0) && *status == 0) {
        *loop->counter = i;
        if (run_body(r, launches, fields, io, weights, arena, checked, loop, status)) return -1;
        go = *loop->cond != 0; /* the body's condition, before a copy may overwrite its buffer */
        for (int64_t k = 0; k < loop->num_scans; k++)
            memcpy((char *)loop->scans[k].dest + i * loop->scans[k].nbytes, loop->scans[k].source,
                   (size_t)loop->scans[k].nbytes);
        copy_through(loop->nexts, loop->num_nexts, loop->scratch);
        i++;
    }
    *loop->counter = i;
    return 0;
}

int pfrt_run_status(pfrt_run *r) {
    if (r->status == PFRT_RUN_OK && atomic_load(&r->violated)) r->status = PFRT_RUN_OUT_OF_BOUNDS;
    return r->status;
}

void *pfrt_checked_address(void *p, int64_t lo, int64_t size, int64_t nbytes, int64_t region, int64_t is_store,
                           pfrt_run *r, void *kernel, int64_t step, void *redirect) {
    int64_t offset = (int64_t)((uint64_t)(uintptr_t)p - (uint64_t)lo);
    if (nbytes == 0 || (offset >= 0 && offset <= size - nbytes)) return p;
    int expected = 0;
    if (atomic_compare_exchange_strong(&r->violated, &expected, 1)) {
        r->violation = (pfrt_bounds_violation){kernel, step, region, offset, size, nbytes, is_store};
        atomic_store(&r->violated, 2);
    }
    return redirect;
}

const pfrt_bounds_violation *pfrt_run_violation(pfrt_run *r) {
    return atomic_load(&r->violated) == 2 ? &r->violation : NULL;
}
int64_t pfrt_run_kernels_done(pfrt_run *r) { return r->kernels_done; }
int64_t pfrt_run_event_count(pfrt_run *r) { return r->num_events; }
const pfrt_kernel_event *pfrt_run_events(pfrt_run *r) { return r->events; }
