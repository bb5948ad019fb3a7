/* The CPU thread pool: kiln__parallel_for covers every item exactly once,
 * kiln__parallel_slots runs every slot exactly once per call, each on its own thread while the
 * pool's threads keep up, and kiln__parallel_ranges runs every item once, each thread's range in
 * order. A worker that joins a loop late (the system has not run it: here more threads than this
 * machine has cores) must neither run a share twice nor lose one, and a loop closed without it
 * must not be joined afterwards. */
#include "cpu/cpu.h"
#include "kt.h"

#include <pthread.h>
#include <stdatomic.h>
#include <time.h>

enum { THREADS = 4, MANY_THREADS = 9, ITEMS = 1000, CALLS = 200, STRESS_CALLS = 3000 };

static atomic_int g_hits[ITEMS];
static atomic_int g_calls_running; /* loops whose items are still running: must be 0 between calls */

static void count_items(void *arg, int64_t begin, int64_t end) {
    (void)arg;
    atomic_fetch_add(&g_calls_running, 1);
    for (int64_t i = begin; i < end; i++) atomic_fetch_add(&g_hits[i], 1);
    atomic_fetch_sub(&g_calls_running, 1);
}

static pthread_t g_slot_thread[MANY_THREADS];
static atomic_int g_slot_runs[MANY_THREADS];

static double now_us(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec * 1e6 + (double)t.tv_nsec * 1e-3;
}

/* arg: NULL, or microseconds to keep the thread busy. */
static void busy_for(const void *arg) {
    if (arg)
        for (double until = now_us() + *(const double *)arg; now_us() < until;) continue;
}

/* arg: as busy_for's, per call of the slots. */
static void record_slot(void *arg, int64_t begin, int64_t end) {
    atomic_fetch_add(&g_calls_running, 1);
    busy_for(arg);
    for (int64_t s = begin; s < end; s++) {
        g_slot_thread[s] = pthread_self();
        atomic_fetch_add(&g_slot_runs[s], 1);
    }
    atomic_fetch_sub(&g_calls_running, 1);
}

/* kiln__parallel_ranges: which thread ran each item, in what order, and how often. */
static pthread_t g_item_thread[ITEMS];
static atomic_int g_item_order[ITEMS], g_order, g_item_index[ITEMS];

static void record_item(void *arg, int64_t begin, int64_t end) {
    atomic_fetch_add(&g_calls_running, 1);
    busy_for(arg);
    for (int64_t i = begin; i < end; i++) {
        g_item_thread[i] = pthread_self();
        atomic_store(&g_item_order[i], atomic_fetch_add(&g_order, 1));
        atomic_fetch_add(&g_hits[i], 1);
        atomic_store(&g_item_index[i], kiln__pool_thread());
    }
    atomic_fetch_sub(&g_calls_running, 1);
}

static int items_wrong(int64_t n) {
    int wrong = 0;
    for (int64_t i = 0; i < n; i++) wrong += atomic_load(&g_hits[i]) != 1;
    return wrong;
}

/* Random loops of both kinds, checked one by one: exactly once, and nothing still running when
 * the call returns. Sleeps now and then let the workers fall asleep, so that they wake late. */
static void stress(kiln__pool *pool) {
    int wrong = 0, running = 0;
    for (int call = 0; call < STRESS_CALLS; call++) {
        if (call % 500 == 499) nanosleep(&(struct timespec){0, 3000000}, NULL);
        if (call % 4 == 3) {
            int64_t n = kt_randi(1, 60);
            for (int64_t i = 0; i < n; i++) atomic_store(&g_hits[i], 0);
            kiln__parallel_ranges(pool, n, record_item, NULL);
            wrong += items_wrong(n);
        } else if (call % 4 == 0) {
            int64_t n = kt_randi(2, kiln__pool_threads(pool));
            for (int64_t s = 0; s < n; s++) atomic_store(&g_slot_runs[s], 0);
            kiln__parallel_slots(pool, n, record_slot, NULL);
            for (int64_t s = 0; s < n; s++) wrong += atomic_load(&g_slot_runs[s]) != 1;
        } else {
            int64_t n = kt_randi(1, ITEMS);
            for (int64_t i = 0; i < n; i++) atomic_store(&g_hits[i], 0);
            kiln__parallel_for(pool, n, kt_randi(1, 40), count_items, NULL);
            wrong += items_wrong(n);
        }
        running += atomic_load(&g_calls_running) != 0;
    }
    KT_CHECK(wrong == 0);
    KT_CHECK(running == 0);
}

int main(void) {
    kt_seed();
    kiln__alloc alloc;
    kiln__alloc_init(&alloc, NULL);
    kiln__pool *pool = NULL;
    KT_OK(kiln__pool_create(&alloc, THREADS, &pool));

    for (int grain = 1; grain <= 64; grain *= 4) {
        for (int i = 0; i < ITEMS; i++) atomic_store(&g_hits[i], 0);
        kiln__parallel_for(pool, ITEMS, grain, count_items, NULL);
        KT_CHECK(items_wrong(ITEMS) == 0);
    }

    /* Every slot once per call; across calls, slots go to more than one thread: with slots that
     * take a while, the workers join in time to take theirs. */
    bool other_thread = false;
    const double slot_us = 20;
    for (int call = 0; call < CALLS; call++) {
        kiln__parallel_slots(pool, THREADS, record_slot, (void *)&slot_us);
        for (int s = 0; s < THREADS; s++) other_thread |= !pthread_equal(g_slot_thread[s], pthread_self());
    }
    KT_CHECK(other_thread);
    for (int s = 0; s < THREADS; s++) KT_CHECK(atomic_load(&g_slot_runs[s]) == CALLS);

    /* Fewer slots than threads; and more than the pool has: serial on the caller. */
    for (int s = 0; s < THREADS; s++) atomic_store(&g_slot_runs[s], 0);
    kiln__parallel_slots(pool, 2, record_slot, NULL);
    KT_CHECK(atomic_load(&g_slot_runs[0]) == 1 && atomic_load(&g_slot_runs[1]) == 1 &&
             atomic_load(&g_slot_runs[2]) == 0);
    kiln__pool *small = NULL;
    KT_OK(kiln__pool_create(&alloc, 2, &small));
    for (int s = 0; s < THREADS; s++) atomic_store(&g_slot_runs[s], 0);
    kiln__parallel_slots(small, THREADS, record_slot, NULL);
    for (int s = 0; s < THREADS; s++) {
        KT_CHECK(atomic_load(&g_slot_runs[s]) == 1);
        KT_CHECK(pthread_equal(g_slot_thread[s], pthread_self()));
    }
    stress(small);
    kiln__pool_destroy(small);
    kiln__parallel_slots(NULL, 3, record_slot, NULL);
    KT_CHECK(pthread_equal(g_slot_thread[2], pthread_self()));

    /* Ranges: every item once; a thread's own items in order, on the caller for its range when the
     * worker keeps up; across calls some items run on the workers. Threads keep their item index
     * for scratch (kiln__pool_thread below the thread count). */
    bool worker_items = false, in_order = true, indices_ok = true;
    const double item_us = 5;
    for (int call = 0; call < CALLS; call++) {
        enum { N = 37 };
        for (int i = 0; i < N; i++) atomic_store(&g_hits[i], 0);
        kiln__parallel_ranges(pool, N, record_item, (void *)&item_us);
        KT_CHECK(items_wrong(N) == 0);
        for (int i = 0; i < N; i++) {
            bool on_caller = pthread_equal(g_item_thread[i], pthread_self());
            int index = atomic_load(&g_item_index[i]);
            worker_items |= !on_caller;
            indices_ok &= on_caller ? index == 0 : index >= 1 && index < THREADS;
        }
        for (int t = 0; t < THREADS; t++) /* each range's items start in their own order */
            for (int i = t * N / THREADS + 1; i < (t + 1) * N / THREADS; i++)
                if (pthread_equal(g_item_thread[i], g_item_thread[i - 1]))
                    in_order &= atomic_load(&g_item_order[i]) > atomic_load(&g_item_order[i - 1]);
    }
    KT_CHECK(worker_items);
    KT_CHECK(in_order);
    KT_CHECK(indices_ok);
    KT_CHECK(kiln__pool_thread() == 0);
    /* Serial where there is no pool: fn(arg, 0, n) once. */
    for (int i = 0; i < 5; i++) atomic_store(&g_hits[i], 0);
    kiln__parallel_ranges(NULL, 5, record_item, NULL);
    KT_CHECK(items_wrong(5) == 0);

    stress(pool);
    kiln__pool_destroy(pool);
    kiln__pool *many = NULL;
    KT_OK(kiln__pool_create(&alloc, MANY_THREADS, &many));
    stress(many);
    kiln__pool_destroy(many);
    return kt_summary("test_cpu_pool");
}
