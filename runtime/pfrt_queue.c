/* PyFlameRT request queues: async streams and the dynamic / priority batcher. See pfrt.h. */
#define _GNU_SOURCE
#include "pfrt.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* ------------------------------------------------------- cancellation flag */

/* The flag of the request the current thread serves; runs created on this thread watch it. */
static __thread const int *current_cancel = NULL;

const int *pfrt_thread_cancel_flag(void) { return current_cancel; }

static void set_cancel(int *flag) { __atomic_store_n(flag, 1, __ATOMIC_RELEASE); }

/* ------------------------------------------------------------- statistics */

#define LATENCY_WINDOW 8192

/* Counters and the latencies of the last LATENCY_WINDOW finished requests; guarded by the owner's lock. */
typedef struct {
    pfrt_queue_stats s;
    int64_t recorded;
    int64_t latencies[LATENCY_WINDOW];
} tally;

static void tally_submit(tally *t, int64_t now) {
    if (t->s.submitted++ == 0) t->s.first_submit_ns = now;
}

static void tally_finish(tally *t, int outcome, int64_t submit_ns, int64_t now) {
    switch (outcome) {
    case PFRT_REQUEST_OK: t->s.completed++; break;
    case PFRT_REQUEST_CANCELLED: t->s.cancelled++; return;
    case PFRT_REQUEST_TIMED_OUT: t->s.timed_out++; return;
    default: t->s.failed++; break;
    }
    t->s.latency_ns += now - submit_ns;
    t->s.last_finish_ns = now;
    t->latencies[t->recorded++ % LATENCY_WINDOW] = now - submit_ns;
}

static int cmp_i64(const void *a, const void *b) {
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

/* Nearest-rank quantile over the window; the caller holds the owner's lock. */
static int64_t tally_quantile(const tally *t, double q) {
    int64_t n = t->recorded < LATENCY_WINDOW ? t->recorded : LATENCY_WINDOW;
    if (n == 0) return 0;
    int64_t *sorted = malloc((size_t)n * sizeof(int64_t));
    if (!sorted) return 0;
    memcpy(sorted, t->latencies, (size_t)n * sizeof(int64_t));
    qsort(sorted, (size_t)n, sizeof(int64_t), cmp_i64);
    q = q < 0 ? 0 : q > 1 ? 1 : q;
    int64_t rank = (int64_t)(q * (double)n + 0.999999999);
    int64_t v = sorted[rank > 0 ? rank - 1 : 0];
    free(sorted);
    return v;
}

/* A condition variable on the monotonic clock (the clock of pfrt_now_ns). */
static void monotonic_cond_init(pthread_cond_t *c) {
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(c, &attr);
    pthread_condattr_destroy(&attr);
}

static void wait_until(pthread_cond_t *c, pthread_mutex_t *m, int64_t when_ns) {
    if (when_ns == INT64_MAX) {
        pthread_cond_wait(c, m);
        return;
    }
    struct timespec ts = {when_ns / 1000000000LL, when_ns % 1000000000LL};
    pthread_cond_timedwait(c, m, &ts);
}

/* ---------------------------------------------------------------- streams */

typedef struct {
    int64_t id, submit_ns;
    int cancel;
} stream_request;

typedef struct {
    struct pfrt_streams *owner;
    int index;
    pthread_t thread;
    stream_request *ring;        /* capacity slots */
    int64_t head, count;
    stream_request running;      /* its cancel flag is what runs on this stream's thread watch */
    int busy;
} stream_t;

struct pfrt_streams {
    int num_streams, started;
    int64_t capacity, pending;   /* pending: queued or running, over all streams */
    pfrt_request_fn run;
    void *user;
    pthread_mutex_t lock;
    pthread_cond_t work, idle;
    int stopping, joined;
    stream_t *streams;
    tally tally;
};

static void *stream_main(void *arg) {
    stream_t *st = arg;
    pfrt_streams *s = st->owner;
    pthread_mutex_lock(&s->lock);
    for (;;) {
        while (st->count == 0 && !s->stopping) pthread_cond_wait(&s->work, &s->lock);
        if (st->count == 0) break;
        st->running = st->ring[st->head];
        st->head = (st->head + 1) % s->capacity;
        st->count--;
        st->busy = 1;
        int cancelled = st->running.cancel;
        pthread_mutex_unlock(&s->lock);
        current_cancel = &st->running.cancel;
        int outcome = s->run(s->user, st->running.id, st->index, cancelled);
        current_cancel = NULL;
        pthread_mutex_lock(&s->lock);
        st->busy = 0;
        s->pending--;
        tally_finish(&s->tally, outcome, st->running.submit_ns, pfrt_now_ns());
        pthread_cond_broadcast(&s->idle);
    }
    pthread_mutex_unlock(&s->lock);
    return NULL;
}

static void streams_free(pfrt_streams *s) {
    for (int i = 0; i < s->num_streams; i++) free(s->streams[i].ring);
    free(s->streams);
    pthread_mutex_destroy(&s->lock);
    pthread_cond_destroy(&s->work);
    pthread_cond_destroy(&s->idle);
    free(s);
}

pfrt_streams *pfrt_streams_create(int num_streams, int64_t capacity, pfrt_request_fn run, void *user) {
    if (num_streams < 1 || capacity < 1 || !run) return NULL;
    pfrt_streams *s = calloc(1, sizeof(*s));
    if (!s) return NULL;
    s->num_streams = num_streams;
    s->capacity = capacity;
    s->run = run;
    s->user = user;
    pthread_mutex_init(&s->lock, NULL);
    pthread_cond_init(&s->work, NULL);
    pthread_cond_init(&s->idle, NULL);
    s->streams = calloc((size_t)num_streams, sizeof(stream_t));
    int ok = s->streams != NULL;
    for (int i = 0; ok && i < num_streams; i++) {
        s->streams[i] = (stream_t){.owner = s, .index = i};
        s->streams[i].ring = malloc((size_t)capacity * sizeof(stream_request));
        ok = s->streams[i].ring != NULL;
    }
    if (!ok) {
        if (!s->streams) s->num_streams = 0;
        streams_free(s);
        return NULL;
    }
    for (; s->started < num_streams; s->started++)
        if (pthread_create(&s->streams[s->started].thread, NULL, stream_main, &s->streams[s->started]) != 0) break;
    if (s->started < num_streams) {
        pfrt_streams_destroy(s);
        return NULL;
    }
    return s;
}

int pfrt_streams_submit(pfrt_streams *s, int stream, int64_t id) {
    if (stream < 0 || stream >= s->num_streams) return PFRT_QUEUE_BAD_ARGUMENT;
    pthread_mutex_lock(&s->lock);
    int rc = PFRT_QUEUE_OK;
    int64_t now = pfrt_now_ns();
    if (s->stopping) {
        rc = PFRT_QUEUE_STOPPED;
    } else if (s->pending >= s->capacity) {
        s->tally.s.rejected++;
        rc = PFRT_QUEUE_FULL;
    } else {
        stream_t *st = &s->streams[stream];
        st->ring[(st->head + st->count) % s->capacity] = (stream_request){id, now, 0};
        st->count++;
        s->pending++;
        tally_submit(&s->tally, now);
        pthread_cond_broadcast(&s->work);
    }
    pthread_mutex_unlock(&s->lock);
    return rc;
}

int pfrt_streams_select(pfrt_streams *s) {
    pthread_mutex_lock(&s->lock);
    int best = 0;
    int64_t least = INT64_MAX;
    for (int i = 0; i < s->num_streams; i++) {
        int64_t load = s->streams[i].count + s->streams[i].busy;
        if (load < least) { least = load; best = i; }
    }
    pthread_mutex_unlock(&s->lock);
    return best;
}

void pfrt_streams_synchronize(pfrt_streams *s, int stream) {
    pthread_mutex_lock(&s->lock);
    if (stream < 0 || stream >= s->num_streams) {
        while (s->pending > 0) pthread_cond_wait(&s->idle, &s->lock);
    } else {
        stream_t *st = &s->streams[stream];
        while (st->count > 0 || st->busy) pthread_cond_wait(&s->idle, &s->lock);
    }
    pthread_mutex_unlock(&s->lock);
}

/* Cancel the requests matching id (all of them when all != 0); the caller holds the lock. */
static int64_t streams_cancel_locked(pfrt_streams *s, int64_t id, int all) {
    int64_t found = 0;
    for (int i = 0; i < s->num_streams; i++) {
        stream_t *st = &s->streams[i];
        for (int64_t k = 0; k < st->count; k++) {
            stream_request *r = &st->ring[(st->head + k) % s->capacity];
            if ((all || r->id == id) && !r->cancel) { r->cancel = 1; found++; }
        }
        if (st->busy && (all || st->running.id == id) && !st->running.cancel) {
            set_cancel(&st->running.cancel);
            found++;
        }
    }
    return found;
}

int pfrt_streams_cancel(pfrt_streams *s, int64_t id) {
    pthread_mutex_lock(&s->lock);
    int64_t found = streams_cancel_locked(s, id, 0);
    pthread_mutex_unlock(&s->lock);
    return found > 0;
}

int64_t pfrt_streams_cancel_all(pfrt_streams *s) {
    pthread_mutex_lock(&s->lock);
    int64_t found = streams_cancel_locked(s, 0, 1);
    pthread_mutex_unlock(&s->lock);
    return found;
}

/* Whether the calling thread is one of the n pthread_t stored `stride` bytes apart from threads[0]. */
static int is_one_of(const pthread_t *threads, int64_t n, size_t stride) {
    for (int64_t i = 0; i < n; i++)
        if (pthread_equal(pthread_self(), *(const pthread_t *)((const char *)threads + (size_t)i * stride))) return 1;
    return 0;
}

void pfrt_streams_stop(pfrt_streams *s) {
    pthread_mutex_lock(&s->lock);
    int join = !s->joined && !is_one_of(&s->streams[0].thread, s->started, sizeof(stream_t));
    s->stopping = 1;
    s->joined |= join;
    pthread_cond_broadcast(&s->work);
    pthread_mutex_unlock(&s->lock);
    if (join)
        for (int i = 0; i < s->started; i++) pthread_join(s->streams[i].thread, NULL);
}

void pfrt_streams_destroy(pfrt_streams *s) {
    if (!s) return;
    pfrt_streams_stop(s);
    streams_free(s);
}

void pfrt_streams_stats(pfrt_streams *s, pfrt_queue_stats *out) {
    pthread_mutex_lock(&s->lock);
    *out = s->tally.s;
    out->pending = s->pending;
    pthread_mutex_unlock(&s->lock);
}

int64_t pfrt_streams_latency_quantile(pfrt_streams *s, double q) {
    pthread_mutex_lock(&s->lock);
    int64_t v = tally_quantile(&s->tally, q);
    pthread_mutex_unlock(&s->lock);
    return v;
}

/* ---------------------------------------------------------------- batcher */

typedef struct {
    int64_t id, group, rows, priority, enqueue_ns, deadline_ns;  /* deadline 0: none */
} batch_request;

/* One worker's view of a batch being formed: queue indices, then the dispatched requests. */
typedef struct {
    int64_t *order;              /* capacity: queue indices of the group, by rank */
    int64_t *ids, *submit_ns;    /* capacity: the batch (or the timed-out requests) */
} worker_buffers;

struct pfrt_batcher {
    pfrt_batch_config config;
    int64_t *preferred;
    batch_request *queue;        /* unordered; capacity slots, count used */
    int64_t count, running;      /* running: dispatched, not yet finished */
    pfrt_batch_fn fn;
    void *user;
    pthread_mutex_t lock;
    pthread_cond_t work;
    int stopping, joined;
    int64_t started;
    pthread_t *workers;
    worker_buffers *buffers;
    tally tally;
};

typedef struct {
    pfrt_batcher *b;
    int64_t index;
} worker_start;

/* Effective priority, compared without the clock: priority + (now - enqueue) / aging orders requests
   like priority * aging - enqueue for every now. */
static __int128 rank_key(const pfrt_batcher *b, const batch_request *r) {
    return (__int128)r->priority * b->config.aging_ns - r->enqueue_ns;
}

static int by_rank(const void *a, const void *b, void *owner) {
    const pfrt_batcher *o = owner;
    __int128 x = rank_key(o, &o->queue[*(const int64_t *)a]), y = rank_key(o, &o->queue[*(const int64_t *)b]);
    return (x < y) - (x > y);  /* descending */
}

static void remove_at(pfrt_batcher *b, int64_t i) { b->queue[i] = b->queue[--b->count]; }

/* Move the requests past their deadline into buf; returns how many. */
static int64_t take_timed_out(pfrt_batcher *b, worker_buffers *buf, int64_t now) {
    int64_t n = 0;
    for (int64_t i = 0; i < b->count;) {
        batch_request *r = &b->queue[i];
        if (r->deadline_ns && r->deadline_ns <= now) {
            buf->ids[n] = r->id;
            buf->submit_ns[n++] = r->enqueue_ns;
            remove_at(b, i);
        } else {
            i++;
        }
    }
    return n;
}

/* The rows a batch of group_rows queued rows is cut to (no padding) or padded to (padding). */
static int64_t preferred_size(const pfrt_batcher *b, int64_t group_rows, int64_t first_rows) {
    const pfrt_batch_config *c = &b->config;
    if (group_rows >= c->max_batch_size) return c->max_batch_size;
    for (int64_t k = 0; k < c->num_preferred; k++) {
        int64_t p = b->preferred[c->enable_padding ? k : c->num_preferred - 1 - k];
        if (c->enable_padding ? p >= group_rows : (p <= group_rows && p >= first_rows)) return p;
    }
    return group_rows;
}

/* Form the next batch into buf if one is due; else return 0 and set *wake to when to look again. */
static int64_t form_batch(pfrt_batcher *b, worker_buffers *buf, int64_t now, int64_t *rows_out,
                          int64_t *padded_out, int64_t *wake) {
    const pfrt_batch_config *c = &b->config;
    int64_t best = 0;
    for (int64_t i = 1; i < b->count; i++)
        if (rank_key(b, &b->queue[i]) > rank_key(b, &b->queue[best])) best = i;
    int64_t group = b->queue[best].group, group_rows = 0, oldest = INT64_MAX, members = 0;
    *wake = INT64_MAX;
    for (int64_t i = 0; i < b->count; i++) {
        const batch_request *r = &b->queue[i];
        if (r->deadline_ns && r->deadline_ns < *wake) *wake = r->deadline_ns;
        if (r->group != group) continue;
        buf->order[members++] = i;
        group_rows += r->rows;
        if (r->enqueue_ns < oldest) oldest = r->enqueue_ns;
    }
    int due = now - oldest >= c->max_latency_ns && group_rows >= c->min_batch_size;
    if (!(group_rows >= c->max_batch_size || due || b->stopping)) {
        if (now - oldest < c->max_latency_ns && oldest + c->max_latency_ns < *wake)
            *wake = oldest + c->max_latency_ns;
        return 0;
    }
    qsort_r(buf->order, (size_t)members, sizeof(int64_t), by_rank, b);
    int64_t size = preferred_size(b, group_rows, b->queue[buf->order[0]].rows);
    int64_t limit = c->enable_padding ? c->max_batch_size : size, rows = 0, n = 0;
    for (int64_t k = 0; k < members; k++) {
        const batch_request *r = &b->queue[buf->order[k]];
        if (rows + r->rows > limit) continue;
        rows += r->rows;
        buf->ids[n] = r->id;
        buf->submit_ns[n] = r->enqueue_ns;
        b->tally.s.queue_ns += now - r->enqueue_ns;
        buf->order[n++] = buf->order[k];
    }
    /* remove the taken requests, highest queue index first so the others' indices stay valid */
    qsort(buf->order, (size_t)n, sizeof(int64_t), cmp_i64);
    for (int64_t k = n - 1; k >= 0; k--) remove_at(b, buf->order[k]);
    *rows_out = rows;
    *padded_out = c->enable_padding && size > rows ? size : rows;
    return n;
}

static void *batch_worker_main(void *arg) {
    pfrt_batcher *b = ((worker_start *)arg)->b;
    worker_buffers *buf = &b->buffers[((worker_start *)arg)->index];
    free(arg);
    pthread_mutex_lock(&b->lock);
    for (;;) {
        int64_t now = pfrt_now_ns();
        int64_t n = take_timed_out(b, buf, now);
        if (n) {
            b->running += n;
            pthread_mutex_unlock(&b->lock);
            b->fn(b->user, PFRT_BATCH_TIMED_OUT, buf->ids, n, 0);
            pthread_mutex_lock(&b->lock);
            b->running -= n;
            for (int64_t k = 0; k < n; k++) tally_finish(&b->tally, PFRT_REQUEST_TIMED_OUT, buf->submit_ns[k], now);
            continue;
        }
        if (b->count == 0) {
            if (b->stopping) break;
            pthread_cond_wait(&b->work, &b->lock);
            continue;
        }
        int64_t rows, padded, wake;
        n = form_batch(b, buf, now, &rows, &padded, &wake);
        if (!n) {
            wait_until(&b->work, &b->lock, wake);
            continue;
        }
        b->running += n;
        b->tally.s.batches++;
        b->tally.s.batched_requests += n;
        b->tally.s.batched_rows += rows;
        b->tally.s.padded_rows += padded - rows;
        pthread_mutex_unlock(&b->lock);
        int64_t failed = b->fn(b->user, PFRT_BATCH_RUN, buf->ids, n, padded);  /* only the count matters */
        pthread_mutex_lock(&b->lock);
        b->running -= n;
        now = pfrt_now_ns();
        for (int64_t k = 0; k < n; k++)
            tally_finish(&b->tally, k < failed ? PFRT_REQUEST_FAILED : PFRT_REQUEST_OK, buf->submit_ns[k], now);
    }
    pthread_mutex_unlock(&b->lock);
    return NULL;
}

static void batcher_free(pfrt_batcher *b) {
    for (int64_t i = 0; b->buffers && i < b->config.num_workers; i++) {
        free(b->buffers[i].order);
        free(b->buffers[i].ids);
        free(b->buffers[i].submit_ns);
    }
    free(b->buffers);
    free(b->workers);
    free(b->queue);
    free(b->preferred);
    pthread_mutex_destroy(&b->lock);
    pthread_cond_destroy(&b->work);
    free(b);
}

static int config_valid(const pfrt_batch_config *c) {
    if (c->max_batch_size < 1 || c->min_batch_size < 1 || c->min_batch_size > c->max_batch_size) return 0;
    if (c->max_latency_ns < 0 || c->capacity < 1 || c->aging_ns < 1 || c->num_workers < 1) return 0;
    if (c->num_preferred < 0 || (c->num_preferred && !c->preferred)) return 0;
    for (int64_t k = 0; k < c->num_preferred; k++)
        if (c->preferred[k] < 1 || c->preferred[k] > c->max_batch_size || (k && c->preferred[k] <= c->preferred[k - 1]))
            return 0;
    return 1;
}

pfrt_batcher *pfrt_batcher_create(const pfrt_batch_config *config, pfrt_batch_fn fn, void *user) {
    if (!config || !fn || !config_valid(config)) return NULL;
    pfrt_batcher *b = calloc(1, sizeof(*b));
    if (!b) return NULL;
    b->config = *config;
    b->fn = fn;
    b->user = user;
    pthread_mutex_init(&b->lock, NULL);
    monotonic_cond_init(&b->work);
    size_t cap = (size_t)config->capacity, workers = (size_t)config->num_workers;
    b->preferred = malloc(((size_t)config->num_preferred + 1) * sizeof(int64_t));
    b->queue = malloc(cap * sizeof(batch_request));
    b->workers = calloc(workers, sizeof(pthread_t));
    b->buffers = calloc(workers, sizeof(worker_buffers));
    int ok = b->preferred && b->queue && b->workers && b->buffers;
    for (size_t i = 0; ok && i < workers; i++) {
        b->buffers[i].order = malloc(cap * sizeof(int64_t));
        b->buffers[i].ids = malloc(cap * sizeof(int64_t));
        b->buffers[i].submit_ns = malloc(cap * sizeof(int64_t));
        ok = b->buffers[i].order && b->buffers[i].ids && b->buffers[i].submit_ns;
    }
    if (!ok) {
        batcher_free(b);
        return NULL;
    }
    if (config->num_preferred)
        memcpy(b->preferred, config->preferred, (size_t)config->num_preferred * sizeof(int64_t));
    b->config.preferred = b->preferred;
    for (; b->started < config->num_workers; b->started++) {
        worker_start *w = malloc(sizeof(*w));
        if (!w) break;
        *w = (worker_start){b, b->started};
        if (pthread_create(&b->workers[b->started], NULL, batch_worker_main, w) != 0) {
            free(w);
            break;
        }
    }
    if (b->started < config->num_workers) {
        pfrt_batcher_destroy(b);
        return NULL;
    }
    return b;
}

int pfrt_batcher_submit(pfrt_batcher *b, int64_t id, int64_t group, int64_t rows, int64_t priority,
                        int64_t timeout_ns) {
    if (rows < 1 || rows > b->config.max_batch_size) return PFRT_QUEUE_BAD_ARGUMENT;
    pthread_mutex_lock(&b->lock);
    int rc = PFRT_QUEUE_OK;
    int64_t now = pfrt_now_ns();
    if (b->stopping) {
        rc = PFRT_QUEUE_STOPPED;
    } else if (b->count >= b->config.capacity) {
        b->tally.s.rejected++;
        rc = PFRT_QUEUE_FULL;
    } else {
        int64_t deadline = timeout_ns <= 0 ? 0 : timeout_ns > INT64_MAX - now ? INT64_MAX : now + timeout_ns;
        b->queue[b->count++] = (batch_request){id, group, rows, priority, now, deadline};
        tally_submit(&b->tally, now);
        pthread_cond_broadcast(&b->work);
    }
    pthread_mutex_unlock(&b->lock);
    return rc;
}

int pfrt_batcher_cancel(pfrt_batcher *b, int64_t id) {
    pthread_mutex_lock(&b->lock);
    int found = 0;
    for (int64_t i = 0; i < b->count; i++) {
        if (b->queue[i].id == id) {
            remove_at(b, i);
            b->tally.s.cancelled++;
            found = 1;
            break;
        }
    }
    pthread_mutex_unlock(&b->lock);
    return found;
}

void pfrt_batcher_stop(pfrt_batcher *b) {
    pthread_mutex_lock(&b->lock);
    int join = !b->joined && !is_one_of(b->workers, b->started, sizeof(pthread_t));
    b->stopping = 1;
    b->joined |= join;
    pthread_cond_broadcast(&b->work);
    pthread_mutex_unlock(&b->lock);
    if (join)
        for (int64_t i = 0; i < b->started; i++) pthread_join(b->workers[i], NULL);
}

void pfrt_batcher_destroy(pfrt_batcher *b) {
    if (!b) return;
    pfrt_batcher_stop(b);
    batcher_free(b);
}

void pfrt_batcher_stats(pfrt_batcher *b, pfrt_queue_stats *out) {
    pthread_mutex_lock(&b->lock);
    *out = b->tally.s;
    out->pending = b->count + b->running;
    pthread_mutex_unlock(&b->lock);
}

int64_t pfrt_batcher_latency_quantile(pfrt_batcher *b, double q) {
    pthread_mutex_lock(&b->lock);
    int64_t v = tally_quantile(&b->tally, q);
    pthread_mutex_unlock(&b->lock);
    return v;
}
