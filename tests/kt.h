/* A tiny test runner: KT_CHECK records failures and keeps going; kt_summary prints the
 * result and gives the process exit code. Random inputs come from kt_rand* with a seed
 * printed at start (set KILN_TEST_SEED to replay). */
#ifndef KILN_KT_H
#define KILN_KT_H

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static int kt_failures;
static int kt_checks;
static _Thread_local uint64_t kt_rng_state; /* per thread: tests may draw from several */

#define KT_CHECK(cond)                                                                                         \
    do {                                                                                                       \
        kt_checks++;                                                                                           \
        if (!(cond)) {                                                                                         \
            kt_failures++;                                                                                     \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond);                           \
        }                                                                                                      \
    } while (0)

/* Checks a kiln call's status, printing kiln_last_error() on mismatch. */
#define KT_STATUS(expr, expected)                                                                              \
    do {                                                                                                       \
        kiln_status kt_st_ = (expr);                                                                           \
        kt_checks++;                                                                                           \
        if (kt_st_ != (expected)) {                                                                            \
            kt_failures++;                                                                                     \
            fprintf(stderr, "%s:%d: %s returned %s, expected %s (%s)\n", __FILE__, __LINE__, #expr,           \
                    kiln_status_name(kt_st_), kiln_status_name(expected), kiln_last_error());                 \
        }                                                                                                      \
    } while (0)
#define KT_OK(expr) KT_STATUS(expr, KILN_OK)

static inline void kt_seed(void) {
    const char *env = getenv("KILN_TEST_SEED");
    kt_rng_state = env ? strtoull(env, NULL, 10) : (uint64_t)time(NULL) ^ ((uint64_t)clock() << 20);
    if (!kt_rng_state) kt_rng_state = 1;
    printf("seed %llu (KILN_TEST_SEED to replay)\n", (unsigned long long)kt_rng_state);
}

static inline uint64_t kt_rand_u64(void) {
    if (!kt_rng_state) kt_rng_state = 0x9E3779B97F4A7C15ull ^ (uint64_t)(uintptr_t)&kt_rng_state;
    kt_rng_state ^= kt_rng_state << 13;
    kt_rng_state ^= kt_rng_state >> 7;
    kt_rng_state ^= kt_rng_state << 17;
    return kt_rng_state;
}

/* Uniform in [lo, hi). */
static inline float kt_randf(float lo, float hi) {
    return lo + (hi - lo) * (float)((kt_rand_u64() >> 40) * (1.0 / 16777216.0));
}

static inline int64_t kt_randi(int64_t lo, int64_t hi) { return lo + (int64_t)(kt_rand_u64() % (uint64_t)(hi - lo + 1)); }

static inline void kt_fill(float *x, int64_t n, float lo, float hi) {
    for (int64_t i = 0; i < n; i++) x[i] = kt_randf(lo, hi);
}

/* |a - b| <= atol + rtol * |b| for every element; reports the worst element once. */
static inline int kt_close(const char *what, const float *a, const float *b, int64_t n, float rtol, float atol) {
    int64_t worst = -1;
    double worst_excess = 0;
    for (int64_t i = 0; i < n; i++) {
        double diff = fabs((double)a[i] - (double)b[i]);
        double tol = atol + rtol * fabs((double)b[i]);
        if (isnan(a[i]) && isnan(b[i])) continue;
        if (!(diff <= tol) && (worst < 0 || diff - tol > worst_excess)) {
            worst = i;
            worst_excess = diff - tol;
        }
    }
    kt_checks++;
    if (worst >= 0) {
        kt_failures++;
        fprintf(stderr, "%s: mismatch at %lld: got %.9g expected %.9g\n", what, (long long)worst, a[worst],
                b[worst]);
        return 0;
    }
    return 1;
}

static inline int kt_summary(const char *name) {
    printf("%s: %d checks, %d failed\n", name, kt_checks, kt_failures);
    return kt_failures ? 1 : 0;
}

#endif
