/* A fixed pool of worker threads running one parallel loop at a time. Layers hand the pool one
 * short loop after another (tens to hundreds per inference), so waking a sleeping thread through
 * the kernel for each would cost more than many of the loops: workers and the caller spin a
 * little while (SPIN_ROUNDS rounds, about a millisecond) on atomics before they sleep on
 * a condition variable. Chunks are claimed with an atomic counter.
 *
 * A worker joins a loop only while the loop is open; once the caller has done its share it
 * closes the loop and waits for the workers that joined, not for the others. A worker the system
 * has not run for a while (a loaded host, more threads than cores) thus costs a loop nothing but
 * its share, which the threads present take over, instead of the whole loop waiting until the
 * system runs it again. */
#include "cpu.h"

#include <cblas.h>
#include <immintrin.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <unistd.h>

#define SPIN_ROUNDS 20000

typedef struct pool_worker {
    struct kiln__pool *pool;
    int32_t index; /* 1 .. nb_threads - 1; the caller is thread 0 */
    pthread_t thread;
} pool_worker;

/* The loop state word: the loop's generation in the high 32 bits, LOOP_CLOSED, and below it the
 * number of workers in the loop. Joining (a compare-and-swap that sees the loop open) and
 * closing (setting the bit) are ordered on this one word, so no worker enters a closed loop. */
#define LOOP_CLOSED (UINT64_C(1) << 31)
#define LOOP_MEMBERS (LOOP_CLOSED - 1)
#define LOOP_GENERATION(state) ((state) >> 32)

struct kiln__pool {
    kiln__alloc alloc;
    int32_t nb_threads; /* including the caller */
    pool_worker *workers;
    int32_t nb_workers;
    pthread_mutex_t busy; /* held by the caller that owns the current loop */
    pthread_mutex_t lock; /* guards the sleeps: work_ready and work_done */
    pthread_cond_t work_ready;
    pthread_cond_t work_done;
    atomic_uint_fast64_t state; /* the loop state word; a new generation publishes a loop */
    atomic_bool stopping;
    /* The current loop, written before its generation is published. */
    kiln__range_fn fn;
    void *arg;
    int64_t n, chunk;
    /* Ranges (kiln__parallel_ranges): thread t owns items [t * n / parts, (t + 1) * n / parts) and
     * takes them in order through range_next[t]; done with its own, a thread takes the items
     * other threads have not started, from the front of their ranges. */
    bool ranges;
    int64_t parts;
    /* Shares (kiln__parallel_shares): the items are pieces of the threads' shares of `units`,
     * `pieces` per thread (0: plain items). */
    int64_t units, pieces;
    atomic_int_fast64_t next;
    atomic_int_fast64_t *range_next; /* nb_threads counters */
};

/* One round of spinning; every 64th gives the core away, so that on an oversubscribed machine
 * the thread being waited for gets to run. */
static inline void spin_round(int i) {
    if (i % 64 == 63) {
        sched_yield();
        return;
    }
#if defined(__x86_64__) || defined(__i386__)
    _mm_pause();
#endif
}

static _Thread_local int32_t current_thread;

int32_t kiln__pool_thread(void) { return current_thread; }

/* Piece p of thread t's share [a, b) of `units`: the share's first half, then halves of what is
 * left, the last piece what remains, so that a thread done with its own share finds small pieces
 * of a slower one's still unstarted. */
static void share_piece(int64_t units, int64_t threads, int64_t pieces, int64_t t, int64_t p, int64_t *u0,
                        int64_t *u1) {
    int64_t a = t * units / threads, b = (t + 1) * units / threads, size = b - a;
    *u0 = b - (size >> p);
    *u1 = p + 1 < pieces ? b - (size >> (p + 1)) : b;
}

static void run_item(kiln__pool *pool, int64_t i) {
    if (!pool->pieces) {
        pool->fn(pool->arg, i, i + 1);
        return;
    }
    int64_t u0, u1;
    share_piece(pool->units, pool->parts, pool->pieces, i / pool->pieces, i % pool->pieces, &u0, &u1);
    if (u0 < u1) pool->fn(pool->arg, u0, u1);
}

/* Takes chunks until none are left. Ranges: the thread's own range first, then what is left of
 * the others' (their threads have not joined, or are behind). */
static void run_chunks(kiln__pool *pool, int32_t index) {
    current_thread = index;
    if (pool->pieces && index >= pool->parts) return; /* shares keep kiln__pool_thread() below T */
    if (pool->ranges) {
        for (int64_t k = 0; k < pool->parts; k++) {
            int64_t t = (index + k) % pool->parts, end = (t + 1) * pool->n / pool->parts;
            for (;;) {
                int64_t i = atomic_fetch_add_explicit(&pool->range_next[t], 1, memory_order_relaxed);
                if (i >= end) break;
                run_item(pool, i);
            }
        }
        return;
    }
    for (;;) {
        int64_t begin = atomic_fetch_add_explicit(&pool->next, pool->chunk, memory_order_relaxed);
        if (begin >= pool->n) return;
        pool->fn(pool->arg, begin, KILN__MIN(pool->n, begin + pool->chunk));
    }
}

static bool new_loop(kiln__pool *pool, uint64_t seen) {
    return LOOP_GENERATION(atomic_load_explicit(&pool->state, memory_order_acquire)) != seen ||
           atomic_load_explicit(&pool->stopping, memory_order_relaxed);
}

/* Joins the loop after generation `seen` if it is still open; *seen becomes its generation. */
static bool join_loop(kiln__pool *pool, uint64_t *seen) {
    uint64_t s = atomic_load_explicit(&pool->state, memory_order_acquire);
    for (;;) {
        *seen = LOOP_GENERATION(s);
        if (s & LOOP_CLOSED) return false;
        if (atomic_compare_exchange_weak_explicit(&pool->state, &s, s + 1, memory_order_acq_rel,
                                                  memory_order_acquire))
            return true;
    }
}

static void *worker_main(void *p) {
    pool_worker *self = p;
    kiln__pool *pool = self->pool;
    uint64_t seen = 0;
    for (;;) {
        for (int i = 0; i < SPIN_ROUNDS && !new_loop(pool, seen); i++) spin_round(i);
        if (!new_loop(pool, seen)) {
            pthread_mutex_lock(&pool->lock);
            while (!new_loop(pool, seen)) pthread_cond_wait(&pool->work_ready, &pool->lock);
            pthread_mutex_unlock(&pool->lock);
        }
        if (atomic_load(&pool->stopping)) break;
        if (!join_loop(pool, &seen)) continue;
        run_chunks(pool, self->index);
        /* The last one out of a closed loop wakes the caller, under the lock so the wake cannot
         * fall between the caller's check and its sleep. */
        uint64_t left = atomic_fetch_sub_explicit(&pool->state, 1, memory_order_acq_rel) - 1;
        if ((left & LOOP_CLOSED) && (left & LOOP_MEMBERS) == 0) {
            pthread_mutex_lock(&pool->lock);
            pthread_cond_signal(&pool->work_done);
            pthread_mutex_unlock(&pool->lock);
        }
    }
    return NULL;
}

kiln_status kiln__pool_create(const kiln__alloc *alloc, int32_t nb_threads, kiln__pool **out) {
    *out = NULL;
    /* kiln's threads are the pool's: OpenBLAS (float64, CPUs without AVX2) runs inside them, so
     * its own threads would only oversubscribe the cores and --threads would mean nothing. */
    openblas_set_num_threads(1);
    if (nb_threads <= 0) {
        long cores = sysconf(_SC_NPROCESSORS_ONLN);
        nb_threads = cores > 0 ? (int32_t)KILN__MIN(cores, 256) : 1;
    }
    kiln__pool *pool = kiln__calloc(alloc, 1, sizeof *pool);
    if (!pool) return KILN_OUT_OF_MEMORY;
    pool->alloc = *alloc;
    pool->nb_threads = nb_threads;
    atomic_init(&pool->state, LOOP_CLOSED);
    atomic_init(&pool->stopping, false);
    atomic_init(&pool->next, 0);
    if (nb_threads > 1) {
        pool->workers = kiln__calloc(alloc, (size_t)nb_threads - 1, sizeof *pool->workers);
        pool->range_next = kiln__calloc(alloc, (size_t)nb_threads, sizeof *pool->range_next);
        if (!pool->workers || !pool->range_next) {
            kiln__free(alloc, pool->workers);
            kiln__free(alloc, pool->range_next);
            kiln__free(alloc, pool);
            return KILN_OUT_OF_MEMORY;
        }
        for (int32_t i = 0; i < nb_threads; i++) atomic_init(&pool->range_next[i], 0);
    }
    pthread_mutex_init(&pool->busy, NULL);
    pthread_mutex_init(&pool->lock, NULL);
    pthread_cond_init(&pool->work_ready, NULL);
    pthread_cond_init(&pool->work_done, NULL);
    for (int32_t i = 0; i < nb_threads - 1; i++) {
        pool->workers[i] = (pool_worker){pool, i + 1, 0};
        if (pthread_create(&pool->workers[i].thread, NULL, worker_main, &pool->workers[i]) != 0) {
            kiln__pool_destroy(pool);
            return kiln__error(KILN_OUT_OF_MEMORY, "cannot start CPU worker thread %d of %d", i + 1, nb_threads - 1);
        }
        pool->nb_workers++;
    }
    *out = pool;
    return KILN_OK;
}

void kiln__pool_destroy(kiln__pool *pool) {
    if (!pool) return;
    pthread_mutex_lock(&pool->lock);
    atomic_store(&pool->stopping, true);
    pthread_cond_broadcast(&pool->work_ready);
    pthread_mutex_unlock(&pool->lock);
    for (int32_t i = 0; i < pool->nb_workers; i++) pthread_join(pool->workers[i].thread, NULL);
    pthread_cond_destroy(&pool->work_ready);
    pthread_cond_destroy(&pool->work_done);
    pthread_mutex_destroy(&pool->lock);
    pthread_mutex_destroy(&pool->busy);
    kiln__alloc alloc = pool->alloc;
    kiln__free(&alloc, pool->workers);
    kiln__free(&alloc, pool->range_next);
    kiln__free(&alloc, pool);
}

int32_t kiln__pool_threads(const kiln__pool *pool) { return pool ? pool->nb_threads : 1; }

static bool loop_empty(kiln__pool *pool) {
    return (atomic_load_explicit(&pool->state, memory_order_acquire) & LOOP_MEMBERS) == 0;
}

/* Publishes a loop to the workers, takes the caller's share, closes the loop and waits for the
 * workers that joined it. */
static void run_loop(kiln__pool *pool, int64_t n, int64_t chunk, bool ranges, int64_t units, int64_t pieces,
                     kiln__range_fn fn, void *arg) {
    pool->units = units;
    pool->pieces = pieces;
    pool->fn = fn;
    pool->arg = arg;
    pool->n = n;
    pool->chunk = chunk;
    pool->ranges = ranges;
    pool->parts = pool->pieces ? n / pool->pieces : KILN__MIN(n, (int64_t)pool->nb_threads);
    for (int64_t t = 0; ranges && t < pool->parts; t++)
        atomic_store_explicit(&pool->range_next[t], t * n / pool->parts, memory_order_relaxed);
    atomic_store_explicit(&pool->next, 0, memory_order_relaxed);
    uint64_t generation = LOOP_GENERATION(atomic_load_explicit(&pool->state, memory_order_relaxed)) + 1;
    pthread_mutex_lock(&pool->lock);
    atomic_store_explicit(&pool->state, generation << 32, memory_order_release);
    pthread_cond_broadcast(&pool->work_ready);
    pthread_mutex_unlock(&pool->lock);
    run_chunks(pool, 0);
    atomic_fetch_or_explicit(&pool->state, LOOP_CLOSED, memory_order_acq_rel);
    for (int i = 0; i < SPIN_ROUNDS && !loop_empty(pool); i++) spin_round(i);
    if (!loop_empty(pool)) {
        pthread_mutex_lock(&pool->lock);
        while (!loop_empty(pool)) pthread_cond_wait(&pool->work_done, &pool->lock);
        pthread_mutex_unlock(&pool->lock);
    }
    pthread_mutex_unlock(&pool->busy);
}

void kiln__parallel_for(kiln__pool *pool, int64_t n, int64_t grain, kiln__range_fn fn, void *arg) {
    if (n <= 0) return;
    if (grain < 1) grain = 1;
    /* Serial when small, when there are no workers, or when another loop (another context or
     * a nested call) holds the pool: running inline never deadlocks. */
    if (!pool || pool->nb_workers == 0 || n <= grain || pthread_mutex_trylock(&pool->busy) != 0) {
        fn(arg, 0, n);
        return;
    }
    int64_t chunks = KILN__MIN((n + grain - 1) / grain, (int64_t)pool->nb_threads * 4);
    run_loop(pool, n, (n + chunks - 1) / chunks, false, 0, 0, fn, arg);
}

void kiln__parallel_slots(kiln__pool *pool, int64_t n, kiln__range_fn fn, void *arg) {
    if (n <= 0) return;
    if (!pool || n > pool->nb_threads) {
        fn(arg, 0, n);
        return;
    }
    kiln__parallel_ranges(pool, n, fn, arg);
}

void kiln__parallel_ranges(kiln__pool *pool, int64_t n, kiln__range_fn fn, void *arg) {
    if (n <= 0) return;
    if (!pool || pool->nb_workers == 0 || n == 1 || pthread_mutex_trylock(&pool->busy) != 0) {
        fn(arg, 0, n);
        return;
    }
    run_loop(pool, n, 1, true, 0, 0, fn, arg);
}

/* Pieces per thread at most: the last is an eighth of a share (measured on the GPU machine's Xeon,
 * whose two cores ran up to a fifth apart in speed within one process: with one piece per thread,
 * the faster thread waited for the slower one a seventh of ResNet-50's time at 2 threads). */
#define SHARE_PIECES 4

void kiln__parallel_shares(kiln__pool *pool, int64_t n, int64_t min_piece, kiln__range_fn fn, void *arg) {
    if (n <= 0) return;
    int64_t threads = pool ? KILN__MIN(n, (int64_t)pool->nb_threads) : 1;
    if (!pool || pool->nb_workers == 0 || threads == 1 || pthread_mutex_trylock(&pool->busy) != 0) {
        fn(arg, 0, n);
        return;
    }
    int64_t pieces = 1;
    while (pieces < SHARE_PIECES && (n / threads) >> pieces >= KILN__MAX(min_piece, 1)) pieces++;
    run_loop(pool, threads * pieces, 1, true, n, pieces, fn, arg);
}
