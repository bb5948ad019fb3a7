/* A fixed pool of worker threads running one parallel loop at a time. Layers hand the pool one
 * short loop after another (tens to hundreds per inference), so waking a sleeping thread through
 * the kernel for each would cost more than many of the loops: workers and the caller spin a
 * little while (SPIN_ROUNDS rounds, about a millisecond) on atomics before they sleep on
 * a condition variable. Chunks are claimed with an atomic counter. */
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

struct kiln__pool {
    kiln__alloc alloc;
    int32_t nb_threads; /* including the caller */
    pool_worker *workers;
    int32_t nb_workers;
    pthread_mutex_t busy; /* held by the caller that owns the current loop */
    pthread_mutex_t lock; /* guards the sleeps: work_ready and work_done */
    pthread_cond_t work_ready;
    pthread_cond_t work_done;
    atomic_uint_fast64_t generation; /* bumped (under lock) to publish a loop */
    atomic_bool stopping;
    /* The current loop, written before generation is bumped. */
    kiln__range_fn fn;
    void *arg;
    int64_t n, chunk;
    bool pinned; /* item i runs on thread i (kiln__parallel_slots) */
    atomic_int_fast64_t next;
    atomic_int active; /* workers still in the current loop */
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

/* Takes chunks until none are left; thread `index`'s own item when pinned. */
static void run_chunks(kiln__pool *pool, int32_t index) {
    if (pool->pinned) {
        if (index < pool->n) pool->fn(pool->arg, index, index + 1);
        return;
    }
    for (;;) {
        int64_t begin = atomic_fetch_add_explicit(&pool->next, pool->chunk, memory_order_relaxed);
        if (begin >= pool->n) return;
        pool->fn(pool->arg, begin, KILN__MIN(pool->n, begin + pool->chunk));
    }
}

static bool new_loop(kiln__pool *pool, uint64_t seen) {
    return atomic_load_explicit(&pool->generation, memory_order_acquire) != seen ||
           atomic_load_explicit(&pool->stopping, memory_order_relaxed);
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
        seen = atomic_load_explicit(&pool->generation, memory_order_acquire);
        run_chunks(pool, self->index);
        /* The last one out wakes the caller, under the lock so the wake cannot fall between the
         * caller's check and its sleep. */
        if (atomic_fetch_sub_explicit(&pool->active, 1, memory_order_acq_rel) == 1) {
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
    atomic_init(&pool->generation, 0);
    atomic_init(&pool->stopping, false);
    atomic_init(&pool->next, 0);
    atomic_init(&pool->active, 0);
    if (nb_threads > 1) {
        pool->workers = kiln__calloc(alloc, (size_t)nb_threads - 1, sizeof *pool->workers);
        if (!pool->workers) {
            kiln__free(alloc, pool);
            return KILN_OUT_OF_MEMORY;
        }
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
    kiln__free(&alloc, pool);
}

int32_t kiln__pool_threads(const kiln__pool *pool) { return pool ? pool->nb_threads : 1; }

/* Publishes a loop to the workers, takes the caller's share, waits for the rest. */
static void run_loop(kiln__pool *pool, int64_t n, int64_t chunk, bool pinned, kiln__range_fn fn, void *arg) {
    pool->fn = fn;
    pool->arg = arg;
    pool->n = n;
    pool->chunk = chunk;
    pool->pinned = pinned;
    atomic_store_explicit(&pool->next, 0, memory_order_relaxed);
    atomic_store_explicit(&pool->active, pool->nb_workers, memory_order_relaxed);
    pthread_mutex_lock(&pool->lock);
    atomic_fetch_add_explicit(&pool->generation, 1, memory_order_release);
    pthread_cond_broadcast(&pool->work_ready);
    pthread_mutex_unlock(&pool->lock);
    run_chunks(pool, 0);
    for (int i = 0; i < SPIN_ROUNDS && atomic_load_explicit(&pool->active, memory_order_acquire) > 0; i++)
        spin_round(i);
    if (atomic_load_explicit(&pool->active, memory_order_acquire) > 0) {
        pthread_mutex_lock(&pool->lock);
        while (atomic_load_explicit(&pool->active, memory_order_acquire) > 0)
            pthread_cond_wait(&pool->work_done, &pool->lock);
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
    run_loop(pool, n, (n + chunks - 1) / chunks, false, fn, arg);
}

void kiln__parallel_slots(kiln__pool *pool, int64_t n, kiln__range_fn fn, void *arg) {
    if (n <= 0) return;
    if (!pool || pool->nb_workers == 0 || n > pool->nb_threads || n == 1 ||
        pthread_mutex_trylock(&pool->busy) != 0) {
        fn(arg, 0, n);
        return;
    }
    run_loop(pool, n, 1, true, fn, arg);
}
