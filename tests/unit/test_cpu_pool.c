/* The CPU thread pool: kiln__parallel_for covers every item exactly once, and
 * kiln__parallel_slots runs slot s on the same thread in every call (the caller's thread for
 * slot 0), one slot per thread. */
#include "cpu/cpu.h"
#include "kt.h"

#include <pthread.h>
#include <stdatomic.h>

enum { THREADS = 4, ITEMS = 1000, CALLS = 200 };

static atomic_int g_hits[ITEMS];

static void count_items(void *arg, int64_t begin, int64_t end) {
    (void)arg;
    for (int64_t i = begin; i < end; i++) atomic_fetch_add(&g_hits[i], 1);
}

static pthread_t g_slot_thread[THREADS];
static atomic_int g_slot_runs[THREADS];

static void record_slot(void *arg, int64_t begin, int64_t end) {
    (void)arg;
    for (int64_t s = begin; s < end; s++) {
        g_slot_thread[s] = pthread_self();
        atomic_fetch_add(&g_slot_runs[s], 1);
    }
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
        int wrong = 0;
        for (int i = 0; i < ITEMS; i++) wrong += atomic_load(&g_hits[i]) != 1;
        KT_CHECK(wrong == 0);
    }

    /* Each slot on one thread across calls, different threads for different slots. */
    pthread_t first[THREADS];
    int moved = 0;
    for (int call = 0; call < CALLS; call++) {
        kiln__parallel_slots(pool, THREADS, record_slot, NULL);
        for (int s = 0; s < THREADS; s++) {
            if (call == 0)
                first[s] = g_slot_thread[s];
            else
                moved += !pthread_equal(first[s], g_slot_thread[s]);
        }
    }
    KT_CHECK(moved == 0);
    KT_CHECK(pthread_equal(first[0], pthread_self()));
    for (int s = 0; s < THREADS; s++) {
        KT_CHECK(atomic_load(&g_slot_runs[s]) == CALLS);
        for (int t = s + 1; t < THREADS; t++) KT_CHECK(!pthread_equal(first[s], first[t]));
    }

    /* Fewer slots than threads; and more than the pool has: serial on the caller. */
    for (int s = 0; s < THREADS; s++) atomic_store(&g_slot_runs[s], 0);
    kiln__parallel_slots(pool, 2, record_slot, NULL);
    KT_CHECK(atomic_load(&g_slot_runs[0]) == 1 && atomic_load(&g_slot_runs[1]) == 1 &&
             atomic_load(&g_slot_runs[2]) == 0);
    KT_CHECK(pthread_equal(g_slot_thread[1], first[1]));
    kiln__pool *small = NULL;
    KT_OK(kiln__pool_create(&alloc, 2, &small));
    for (int s = 0; s < THREADS; s++) atomic_store(&g_slot_runs[s], 0);
    kiln__parallel_slots(small, THREADS, record_slot, NULL);
    for (int s = 0; s < THREADS; s++) {
        KT_CHECK(atomic_load(&g_slot_runs[s]) == 1);
        KT_CHECK(pthread_equal(g_slot_thread[s], pthread_self()));
    }
    kiln__pool_destroy(small);
    kiln__parallel_slots(NULL, 3, record_slot, NULL);
    KT_CHECK(pthread_equal(g_slot_thread[2], pthread_self()));

    kiln__pool_destroy(pool);
    return kt_summary("test_cpu_pool");
}
