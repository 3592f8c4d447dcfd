/* PyFlameRT memory pool: size-class blocks, a footprint limit, trimming by age. See pfrt.h. */
#define _GNU_SOURCE
#include "pfrt.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#define PAGE 4096
#define MMAP_MIN ((size_t)64 << 10)  /* blocks from here up are mmap'd: releasing them unmaps */
#define MAX_CLASSES 64

/* Every block starts with this header, padded to `header` bytes; the caller's memory follows. */
typedef struct block {
    struct block *next;  /* in a free list, newest first */
    size_t bytes;        /* the whole block, header included: what usage and the limit count */
    int64_t cls;         /* its size class, or -1 for the large list */
    int64_t freed_at;    /* the tick at which it was cached */
} block;

typedef struct {
    block *head;
    int64_t count;
} free_list;

struct pfrt_mempool {
    pthread_mutex_t lock;
    struct pfrt_mempool *prev, *next;  /* in the registry of live pools */
    size_t classes[MAX_CLASSES];
    int64_t num_classes;
    free_list lists[MAX_CLASSES + 1];  /* one per class, then the large list */
    int64_t max_blocks;
    size_t alignment, header;
    size_t limit;
    int64_t trim_idle_frees;
    size_t trim_keep_bytes;
    int64_t tick;
    pfrt_mempool_stats stats;
};

static size_t round_to(size_t n, size_t m) { return (n + m - 1) / m * m; }

/* ------------------------------------------------------------ fork safety
   fork() waits until no thread is inside a pool (it takes every live pool's lock), so a forked
   child finds every pool's lists consistent and its lock free. Lock order: registry, then pools;
   alloc and free take only their pool's lock. */
static pthread_mutex_t registry_lock = PTHREAD_MUTEX_INITIALIZER;
static pfrt_mempool *registry;
static pthread_once_t atfork_once = PTHREAD_ONCE_INIT;

static void lock_all(void) {
    pthread_mutex_lock(&registry_lock);
    for (pfrt_mempool *p = registry; p; p = p->next) pthread_mutex_lock(&p->lock);
}

static void unlock_all(void) {
    for (pfrt_mempool *p = registry; p; p = p->next) pthread_mutex_unlock(&p->lock);
    pthread_mutex_unlock(&registry_lock);
}

static void install_atfork(void) { pthread_atfork(lock_all, unlock_all, unlock_all); }

static int valid_config(const pfrt_mempool_config *c) {
    if (c->num_classes < 0 || c->num_classes > MAX_CLASSES || c->max_blocks_per_class < 0 ||
        c->trim_idle_frees < 0 || c->alignment < 16 || c->alignment > PAGE || (c->alignment & (c->alignment - 1)))
        return 0;
    for (int64_t i = 0; i < c->num_classes; i++)
        if (c->size_classes[i] == 0 || c->size_classes[i] % 16 || (i && c->size_classes[i] <= c->size_classes[i - 1]))
            return 0;
    return 1;
}

pfrt_mempool *pfrt_mempool_create(const pfrt_mempool_config *c) {
    if (!c || !valid_config(c)) return NULL;
    pfrt_mempool *p = calloc(1, sizeof(*p));
    if (!p) return NULL;
    pthread_mutex_init(&p->lock, NULL);
    memcpy(p->classes, c->size_classes, (size_t)c->num_classes * sizeof(size_t));
    p->num_classes = c->num_classes;
    p->max_blocks = c->max_blocks_per_class;
    p->alignment = c->alignment;
    p->header = round_to(sizeof(block), c->alignment);
    p->limit = c->memory_limit;
    p->trim_idle_frees = c->trim_idle_frees;
    p->trim_keep_bytes = c->trim_keep_bytes;
    p->stats.memory_limit = c->memory_limit;
    pthread_once(&atfork_once, install_atfork);
    pthread_mutex_lock(&registry_lock);
    p->next = registry;
    if (registry) registry->prev = p;
    registry = p;
    pthread_mutex_unlock(&registry_lock);
    return p;
}

static void *user_ptr(pfrt_mempool *p, block *b) { return (char *)b + p->header; }
static block *block_of(pfrt_mempool *p, void *ptr) { return (block *)((char *)ptr - p->header); }

static block *new_block(pfrt_mempool *p, size_t bytes, int64_t cls) {
    block *b;
    if (bytes >= MMAP_MIN) {
        void *m = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        b = m == MAP_FAILED ? NULL : m;
    } else {
        b = aligned_alloc(p->alignment, round_to(bytes, p->alignment));
    }
    if (b) *b = (block){NULL, bytes, cls, 0};
    return b;
}

/* Blocks leave the pool's lists under its lock onto a list of their own, and go back to the
   system after it (unmapping hundreds of MB takes milliseconds other runs need not wait for). */
static void doom(pfrt_mempool *p, block *b, block **doomed) {
    p->stats.released_blocks++;
    b->next = *doomed;
    *doomed = b;
}

static void release_all(block *b) {
    while (b) {
        block *next = b->next;
        if (b->bytes >= MMAP_MIN) munmap(b, b->bytes);
        else free(b);
        b = next;
    }
}

/* Unlink the oldest cached block freed at or before `before`, or return NULL. */
static block *take_oldest(pfrt_mempool *p, int64_t before) {
    block **oldest = NULL;
    for (int64_t l = 0; l <= p->num_classes; l++)
        for (block **at = &p->lists[l].head; *at; at = &(*at)->next)
            if ((*at)->freed_at <= before && (!oldest || (*at)->freed_at < (*oldest)->freed_at)) oldest = at;
    if (!oldest) return NULL;
    block *b = *oldest;
    *oldest = b->next;
    p->lists[b->cls < 0 ? p->num_classes : b->cls].count--;
    p->stats.cached_bytes -= b->bytes;
    return b;
}

static size_t trim_locked(pfrt_mempool *p, size_t keep, int64_t before, block **doomed) {
    size_t released = 0;
    block *b;
    while (p->stats.cached_bytes > keep && (b = take_oldest(p, before))) {
        released += b->bytes;
        doom(p, b, doomed);
    }
    return released;
}

/* A cached block that serves `bytes`: the class's newest, or the large list's best fit within 2x. */
static block *take_cached(pfrt_mempool *p, size_t bytes, int64_t cls) {
    free_list *list = &p->lists[cls < 0 ? p->num_classes : cls];
    block **best = NULL;
    for (block **at = &list->head; *at; at = &(*at)->next) {
        size_t have = (*at)->bytes;
        if (cls >= 0 || (have >= bytes && have / 2 <= bytes && (!best || have < (*best)->bytes))) {
            best = at;
            if (cls >= 0) break;
        }
    }
    if (!best) return NULL;
    block *b = *best;
    *best = b->next;
    list->count--;
    p->stats.cached_bytes -= b->bytes;
    return b;
}

void *pfrt_mempool_alloc(pfrt_mempool *p, size_t size, int *status) {
    int64_t cls = 0;
    while (cls < p->num_classes && p->classes[cls] < size) cls++;
    if (cls == p->num_classes) cls = -1;
    size_t bytes = cls >= 0 ? p->header + p->classes[cls] : round_to(p->header + size, PAGE);
    if (size > SIZE_MAX / 2 || bytes < size) {  /* so large no system could hold it */
        *status = PFRT_MEM_NOMEM;
        return NULL;
    }
    block *doomed = NULL;
    *status = PFRT_MEM_OK;
    pthread_mutex_lock(&p->lock);
    block *b = take_cached(p, bytes, cls);
    if (b) {
        p->stats.hits++;
    } else {
        if (p->limit && p->stats.current_usage + p->stats.cached_bytes + bytes > p->limit) {
            size_t room = p->limit > p->stats.current_usage + bytes ? p->limit - p->stats.current_usage - bytes : 0;
            trim_locked(p, room, INT64_MAX, &doomed);
        }
        if (p->limit && p->stats.current_usage + bytes > p->limit) {
            p->stats.limit_failures++;
            *status = PFRT_MEM_LIMIT;
        } else if (!(b = new_block(p, bytes, cls))) {
            *status = PFRT_MEM_NOMEM;
        } else {
            p->stats.misses++;
        }
    }
    if (b) {
        p->stats.allocations++;
        p->stats.current_usage += b->bytes;
        if (p->stats.current_usage > p->stats.peak_usage) p->stats.peak_usage = p->stats.current_usage;
    }
    pthread_mutex_unlock(&p->lock);
    release_all(doomed);
    return b ? user_ptr(p, b) : NULL;
}

void pfrt_mempool_free(pfrt_mempool *p, void *ptr) {
    if (!ptr) return;
    block *b = block_of(p, ptr), *doomed = NULL;
    pthread_mutex_lock(&p->lock);
    p->tick++;
    p->stats.deallocations++;
    p->stats.current_usage -= b->bytes;
    free_list *list = &p->lists[b->cls < 0 ? p->num_classes : b->cls];
    if (list->count < p->max_blocks && !(p->limit && p->stats.current_usage + p->stats.cached_bytes + b->bytes > p->limit)) {
        b->freed_at = p->tick;
        b->next = list->head;
        list->head = b;
        list->count++;
        p->stats.cached_bytes += b->bytes;
    } else {
        doom(p, b, &doomed);
    }
    if (p->trim_idle_frees && p->stats.cached_bytes > p->trim_keep_bytes)
        trim_locked(p, p->trim_keep_bytes, p->tick - p->trim_idle_frees, &doomed);
    pthread_mutex_unlock(&p->lock);
    release_all(doomed);
}

size_t pfrt_mempool_trim(pfrt_mempool *p, size_t keep) {
    block *doomed = NULL;
    pthread_mutex_lock(&p->lock);
    size_t released = trim_locked(p, keep, INT64_MAX, &doomed);
    pthread_mutex_unlock(&p->lock);
    release_all(doomed);
    return released;
}

int pfrt_execute_pooled(pfrt_mempool *p, size_t arena_bytes, pfrt_run *run, const pfrt_launch *launches,
                        int64_t n, const pfrt_field *fields, void *const *io, const void *weights, int checked) {
    int status;
    void *arena = pfrt_mempool_alloc(p, arena_bytes, &status);
    if (!arena) return status;
    int rc = pfrt_execute(run, launches, n, fields, io, weights, arena, checked);
    pfrt_mempool_free(p, arena);
    return rc;
}

void pfrt_mempool_get_stats(pfrt_mempool *p, pfrt_mempool_stats *out) {
    pthread_mutex_lock(&p->lock);
    *out = p->stats;
    pthread_mutex_unlock(&p->lock);
}

void pfrt_mempool_destroy(pfrt_mempool *p) {
    if (!p) return;
    pthread_mutex_lock(&registry_lock);
    if (p->prev) p->prev->next = p->next;
    else registry = p->next;
    if (p->next) p->next->prev = p->prev;
    pthread_mutex_unlock(&registry_lock);
    block *doomed = NULL;
    trim_locked(p, 0, INT64_MAX, &doomed);
    release_all(doomed);
    pthread_mutex_destroy(&p->lock);
    free(p);
}
