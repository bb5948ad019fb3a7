/* A fixed pool of worker threads running one parallel loop at a time. */
#include "cpu.h"

#include <cblas.h>
#include <pthread.h>
#include <unistd.h>

struct kiln__pool {
    kiln__alloc alloc;
    int32_t nb_threads; /* including the caller */
    pthread_t *workers;
    int32_t nb_workers;
    pthread_mutex_t busy; /* held by the caller that owns the current loop */
    pthread_mutex_t lock;
    pthread_cond_t work_ready;
    pthread_cond_t work_done;
    uint64_t generation;
    bool stopping;
    /* The current loop. */
    kiln__range_fn fn;
    void *arg;
    int64_t n, chunk, next;
    int32_t active;
};

/* Takes chunks until none are left. */
static void run_chunks(kiln__pool *pool) {
    for (;;) {
        pthread_mutex_lock(&pool->lock);
        int64_t begin = pool->next;
        if (begin >= pool->n) {
            pthread_mutex_unlock(&pool->lock);
            return;
        }
        int64_t end = KILN__MIN(pool->n, begin + pool->chunk);
        pool->next = end;
        pthread_mutex_unlock(&pool->lock);
        pool->fn(pool->arg, begin, end);
    }
}

static void *worker_main(void *p) {
    kiln__pool *pool = p;
    uint64_t seen = 0;
    pthread_mutex_lock(&pool->lock);
    for (;;) {
        while (!pool->stopping && pool->generation == seen) pthread_cond_wait(&pool->work_ready, &pool->lock);
        if (pool->stopping) break;
        seen = pool->generation;
        pthread_mutex_unlock(&pool->lock);
        run_chunks(pool);
        pthread_mutex_lock(&pool->lock);
        if (--pool->active == 0) pthread_cond_signal(&pool->work_done);
    }
    pthread_mutex_unlock(&pool->lock);
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
        if (pthread_create(&pool->workers[i], NULL, worker_main, pool) != 0) {
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
    pool->stopping = true;
    pthread_cond_broadcast(&pool->work_ready);
    pthread_mutex_unlock(&pool->lock);
    for (int32_t i = 0; i < pool->nb_workers; i++) pthread_join(pool->workers[i], NULL);
    pthread_cond_destroy(&pool->work_ready);
    pthread_cond_destroy(&pool->work_done);
    pthread_mutex_destroy(&pool->lock);
    pthread_mutex_destroy(&pool->busy);
    kiln__alloc alloc = pool->alloc;
    kiln__free(&alloc, pool->workers);
    kiln__free(&alloc, pool);
}

int32_t kiln__pool_threads(const kiln__pool *pool) { return pool ? pool->nb_threads : 1; }

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
    pthread_mutex_lock(&pool->lock);
    pool->fn = fn;
    pool->arg = arg;
    pool->n = n;
    pool->chunk = (n + chunks - 1) / chunks;
    pool->next = 0;
    pool->active = pool->nb_workers;
    pool->generation++;
    pthread_cond_broadcast(&pool->work_ready);
    pthread_mutex_unlock(&pool->lock);
    run_chunks(pool);
    pthread_mutex_lock(&pool->lock);
    while (pool->active > 0) pthread_cond_wait(&pool->work_done, &pool->lock);
    pthread_mutex_unlock(&pool->lock);
    pthread_mutex_unlock(&pool->busy);
}
