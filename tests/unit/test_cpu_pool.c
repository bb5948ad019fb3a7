/* The CPU thread pool: kiln__parallel_for covers every item exactly once,
 * kiln__parallel_slots runs every slot exactly once per call, each on its own thread while the
 * pool's threads keep up, kiln__parallel_ranges runs every item once, each thread's range in
 * order, and kiln__parallel_shares runs every unit once in pieces of the threads' shares, a slow
 * thread's last pieces taken over by a faster one. A worker that joins a loop late (the system
 * has not run it: here more threads than this machine has cores) must neither run a share twice
 * nor lose one, and a loop closed without it must not be joined afterwards. */
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

/* kiln__parallel_shares: each call's range, the thread index it ran on, and whether it kept to one
 * thread's share and to the smallest piece. */
static atomic_int g_unit_index[ITEMS];
static atomic_int g_share_errors;
typedef struct share_check {
    int64_t n, threads, min_piece;
    double us, slow_us; /* per unit: on every thread, and on thread 1 (a slower core) */
    bool wait_worker;   /* the caller starts once thread 1 has (or after 100 ms) */
} share_check;
static atomic_bool g_worker_started;

static void record_share(void *arg, int64_t begin, int64_t end) {
    const share_check *sc = arg;
    atomic_fetch_add(&g_calls_running, 1);
    int index = kiln__pool_thread();
    int64_t t = begin * sc->threads / sc->n; /* the share begin lies in */
    while ((t + 1) * sc->n / sc->threads <= begin) t++;
    int64_t share_end = (t + 1) * sc->n / sc->threads, share = share_end - t * sc->n / sc->threads;
    bool ok = begin < end && end <= share_end && end - begin >= KILN__MIN(sc->min_piece, share) && index >= 0 &&
              index < sc->threads;
    if (!ok) atomic_fetch_add(&g_share_errors, 1);
    if (index == 1) atomic_store(&g_worker_started, true);
    if (sc->wait_worker && index == 0)
        for (double until = now_us() + 1e5; !atomic_load(&g_worker_started) && now_us() < until;) continue;
    for (int64_t i = begin; i < end; i++) {
        busy_for(index == 1 ? &sc->slow_us : &sc->us);
        atomic_store(&g_unit_index[i], index);
        atomic_fetch_add(&g_hits[i], 1);
    }
    atomic_fetch_sub(&g_calls_running, 1);
}

static void shares_call(kiln__pool *pool, int64_t n, int64_t min_piece, double us, double slow_us) {
    share_check sc = {n, KILN__MIN(n, kiln__pool_threads(pool)), min_piece, us, slow_us, slow_us > 0};
    for (int64_t i = 0; i < n; i++) atomic_store(&g_hits[i], 0);
    atomic_store(&g_worker_started, false);
    kiln__parallel_shares(pool, n, min_piece, record_share, &sc);
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
        if (call % 8 == 7) {
            int64_t n = kt_randi(1, 300);
            shares_call(pool, n, kt_randi(1, 9), 0, 0);
            wrong += items_wrong(n);
        } else if (call % 4 == 3) {
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
    /* A slower thread's last pieces go to a faster one: thread 1 here takes 40 us a unit, the
     * caller 10 and starts once thread 1 has (a sleeping worker can take milliseconds to wake on
     * a virtual machine); the other pool's workers first stop spinning (on two cores they would
     * slow the caller, whose pieces thread 1 then takes: also a pass). */
    nanosleep(&(struct timespec){0, 20000000}, NULL);
    bool taken_over = false;
    for (int call = 0; call < 10 && !taken_over; call++) {
        enum { N = 64 };
        shares_call(small, N, 1, 10, 40);
        KT_CHECK(items_wrong(N) == 0);
        for (int share = 0; share < 2; share++) {
            bool ran[2] = {false, false};
            for (int i = share * N / 2; i < (share + 1) * N / 2; i++) ran[atomic_load(&g_unit_index[i]) == 1] = true;
            taken_over |= ran[0] && ran[1];
        }
    }
    KT_CHECK(taken_over);
    for (int s = 0; s < THREADS; s++) atomic_store(&g_slot_runs[s], 0);
    kiln__parallel_slots(small, THREADS, record_slot, NULL);
    for (int s = 0; s < THREADS; s++) {
        KT_CHECK(atomic_load(&g_slot_runs[s]) == 1);
        KT_CHECK(pthread_equal(g_slot_thread[s], pthread_self()));
    }
    stress(small);
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

    /* Shares: every unit once, in pieces within one thread's share, none smaller than asked but
     * where the share is; scratch indices below the threads in use (fewer units than threads
     * too). */
    atomic_store(&g_share_errors, 0);
    for (int64_t n = 1; n <= 70; n++) {
        for (int64_t min_piece = 1; min_piece <= 12; min_piece += 5) {
            shares_call(pool, n, min_piece, 0, 0);
            KT_CHECK(items_wrong(n) == 0);
        }
    }
    kiln__pool_destroy(small);
    KT_CHECK(atomic_load(&g_share_errors) == 0);
    shares_call(NULL, 5, 1, 0, 0);
    KT_CHECK(items_wrong(5) == 0);

    stress(pool);
    kiln__pool_destroy(pool);
    kiln__pool *many = NULL;
    KT_OK(kiln__pool_create(&alloc, MANY_THREADS, &many));
    stress(many);
    kiln__pool_destroy(many);
    return kt_summary("test_cpu_pool");
}
