/* kiln__sgemm (and kiln__sgemm_packed / kiln__sgemm_packed_b, from A or B packed once) against a
 * naive double-precision reference: random shapes (odd sizes, m/n/k = 1, k = 0, sizes crossing
 * the cache blocks), transposes, leading dims wider than the matrix (the gaps must stay
 * untouched), alpha/beta (beta = 0 must not read C: it starts as NaN), the fused bias / residual
 * / activation epilogue (in-register kinds, vmath.h kinds and the ones run over whole rows),
 * serially and on 4 threads, with the AVX-512 and AVX2 kernels (where the CPU has them) and with
 * the portable (OpenBLAS) path. */
#include "cpu/gemm.h"
#include "kt.h"

#include <math.h>

static kiln__alloc g_alloc;

typedef struct gcase {
    int64_t m, n, k;
    bool ta, tb;
    float alpha, beta;
    bool bias, res;
    int act;    /* -1: none */
    int64_t wo; /* the channel-vector GEMM's row width (0: a random divisor of n) */
} gcase;

/* The packing callback's contract, written out plainly: panels of nr columns, zero-padded. */
typedef struct implicit_b {
    const float *b;
    int64_t ldb;
    bool tb;
} implicit_b;

static void pack_implicit_b(const void *arg, int64_t p0, int64_t kc, int64_t j0, int64_t cols, int64_t nr,
                            float *dst) {
    const implicit_b *ib = arg;
    for (int64_t jr = 0; jr < cols; jr += nr, dst += kc * nr)
        for (int64_t p = 0; p < kc; p++)
            for (int64_t x = 0; x < nr; x++) {
                int64_t row = p0 + p, col = j0 + jr + x;
                dst[p * nr + x] = jr + x >= cols ? 0.0f : ib->tb ? ib->b[col * ib->ldb + row] : ib->b[row * ib->ldb + col];
            }
}

static void run(const char *what, const gcase *g, kiln__pool *pool) {
    int64_t m = g->m, n = g->n, k = g->k;
    /* Leading dims with a random gap. */
    int64_t ar = g->ta ? k : m, ac = g->ta ? m : k, br = g->tb ? n : k, bc = g->tb ? k : n;
    int64_t lda = ac + kt_randi(0, 3), ldb = bc + kt_randi(0, 3), ldc = n + kt_randi(0, 3), ldr = n + kt_randi(0, 2);
    float *a = malloc((size_t)KILN__MAX(1, ar * lda) * sizeof *a);
    float *b = malloc((size_t)KILN__MAX(1, br * ldb) * sizeof *b);
    float *c = malloc((size_t)(m * ldc) * sizeof *c), *want = malloc((size_t)(m * ldc) * sizeof *want);
    float *bias = malloc((size_t)m * sizeof *bias), *res = malloc((size_t)(m * ldr) * sizeof *res);
    kt_fill(a, KILN__MAX(1, ar * lda), -1, 1);
    kt_fill(b, KILN__MAX(1, br * ldb), -1, 1);
    kt_fill(bias, m, -1, 1);
    kt_fill(res, m * ldr, -1, 1);
    for (int64_t i = 0; i < m * ldc; i++) c[i] = g->beta == 0 && i % ldc < n ? NAN : kt_randf(-1, 1);
    memcpy(want, c, (size_t)(m * ldc) * sizeof *c);
    float *c0 = malloc((size_t)(m * ldc) * sizeof *c0);
    memcpy(c0, c, (size_t)(m * ldc) * sizeof *c);
    kiln__act act = {g->act, 0.1f, 0.6f};
    if (g->act == KILN_ACT_CLIP) act.alpha = -0.5f;
    for (int64_t i = 0; i < m; i++)
        for (int64_t j = 0; j < n; j++) {
            double acc = 0;
            for (int64_t p = 0; p < k; p++)
                acc += (double)(g->ta ? a[p * lda + i] : a[i * lda + p]) * (g->tb ? b[j * ldb + p] : b[p * ldb + j]);
            double v = g->alpha * acc + (g->beta != 0 ? g->beta * (double)want[i * ldc + j] : 0.0);
            if (g->bias) v += bias[i];
            if (g->res) v += res[i * ldr + j];
            want[i * ldc + j] = g->act >= 0 ? kiln__act_f32(g->act, act.alpha, act.beta, (float)v) : (float)v;
        }
    kiln__gemm_epilogue ep = {g->bias ? bias : NULL, g->res ? res : NULL, ldr, &act};
    KT_OK(kiln__sgemm(pool, &g_alloc, g->ta, g->tb, m, n, k, g->alpha, a, lda, b, ldb, g->beta, c, ldc, &ep));
    char name[256];
    snprintf(name, sizeof name, "%s m=%lld n=%lld k=%lld ta=%d tb=%d alpha=%g beta=%g bias=%d res=%d act=%d %s",
             what, (long long)m, (long long)n, (long long)k, g->ta, g->tb, g->alpha, g->beta, g->bias, g->res,
             g->act, pool ? "4 threads" : "serial");
    /* Gaps between rows included: they must be unchanged. */
    kt_close(name, c, want, m * ldc, 1e-4f, 1e-4f * (float)KILN__MAX(1, k) + 1e-5f);
    if (!g->ta && g->alpha == 1.0f) {
        /* The same product from A packed once (without AVX2 the packed copy, all NaN, is unused). */
        int64_t floats = kiln__sgemm_packed_a_floats(m, k);
        float *pa = malloc((size_t)KILN__MAX(1, floats) * sizeof *pa);
        for (int64_t i = 0; i < floats; i++) pa[i] = NAN;
        if (kiln__cpu_simd() != KILN__SIMD_NONE) kiln__sgemm_pack_a(m, k, a, lda, pa);
        memcpy(c, c0, (size_t)(m * ldc) * sizeof *c);
        if (g->tb) { /* packed A takes B as it is: transpose it here */
            float *bt = malloc((size_t)KILN__MAX(1, k * n) * sizeof *bt);
            for (int64_t p = 0; p < k; p++)
                for (int64_t j = 0; j < n; j++) bt[p * n + j] = b[j * ldb + p];
            KT_OK(kiln__sgemm_packed(pool, &g_alloc, m, n, k, a, lda, pa, bt, n, g->beta, c, ldc, &ep));
            free(bt);
        } else {
            KT_OK(kiln__sgemm_packed(pool, &g_alloc, m, n, k, a, lda, pa, b, ldb, g->beta, c, ldc, &ep));
        }
        char pname[300];
        snprintf(pname, sizeof pname, "packed A: %s", name);
        kt_close(pname, c, want, m * ldc, 1e-4f, 1e-4f * (float)KILN__MAX(1, k) + 1e-5f);
        if (kiln__cpu_simd() != KILN__SIMD_NONE) {
            /* And with B handed over panel by panel through the packing callback. */
            memcpy(c, c0, (size_t)(m * ldc) * sizeof *c);
            implicit_b ib = {b, ldb, g->tb};
            KT_OK(kiln__sgemm_packed_src(pool, &g_alloc, m, n, k, pa, pack_implicit_b, &ib, g->beta, c, ldc, &ep));
            snprintf(pname, sizeof pname, "packed A, B by callback: %s", name);
            kt_close(pname, c, want, m * ldc, 1e-4f, 1e-4f * (float)KILN__MAX(1, k) + 1e-5f);
        }
        if (kiln__cpu_simd() == KILN__SIMD_AVX512 && g->beta == 0.0f) {
            /* And with B's rows anywhere: in reverse order, NaN between and after them (the
             * columns past n are read but never reach C). */
            int64_t pitch = (n + 31) / 32 * 32 + kt_randi(0, 5), total = KILN__MAX(1, k) * pitch + 32;
            float *rows = malloc((size_t)total * sizeof *rows);
            int64_t *off = malloc((size_t)KILN__MAX(1, k) * sizeof *off);
            for (int64_t i = 0; i < total; i++) rows[i] = NAN;
            for (int64_t p = 0; p < k; p++) {
                off[p] = (k - 1 - p) * pitch;
                for (int64_t j = 0; j < n; j++) rows[off[p] + j] = g->tb ? b[j * ldb + p] : b[p * ldb + j];
            }
            memcpy(c, c0, (size_t)(m * ldc) * sizeof *c);
            KT_OK(kiln__sgemm_packed_rows(pool, &g_alloc, m, n, k, pa, rows, off, c, ldc, n, n, &ep));
            snprintf(pname, sizeof pname, "packed A, B rows by offset: %s", name);
            kt_close(pname, c, want, m * ldc, 1e-4f, 1e-4f * (float)KILN__MAX(1, k) + 1e-5f);
            free(off);
            free(rows);
        }
        free(pa);
    }
    if (kiln__cpu_simd() == KILN__SIMD_AVX512 && !g->ta && g->alpha == 1.0f && g->beta == 0.0f) {
        /* The channel-vector GEMM: B's rows in reverse order; C's columns in rows of wo read from
         * rows of wq in B. Everything it must not read is NaN. */
        int64_t wo = g->wo ? g->wo : n, wq;
        for (int tries = 0; tries < 4 && !g->wo; tries++) { /* a random divisor of n */
            int64_t d = kt_randi(1, (int)KILN__MIN(n, 40));
            if (n % d == 0) wo = d;
        }
        wq = wo + kt_randi(0, 3);
        int64_t pitch = n / wo * wq + kt_randi(0, 5), total = KILN__MAX(1, k) * pitch;
        float *rows = malloc((size_t)total * sizeof *rows);
        int64_t *off = malloc((size_t)KILN__MAX(1, k) * sizeof *off);
        float *pa = malloc((size_t)KILN__MAX(1, kiln__sgemm_cv_packed_floats(m, k)) * sizeof *pa);
        for (int64_t i = 0; i < total; i++) rows[i] = NAN;
        for (int64_t p = 0; p < k; p++) {
            off[p] = (k - 1 - p) * pitch;
            for (int64_t q = 0; q < n; q++)
                rows[off[p] + q / wo * wq + q % wo] = g->tb ? b[q * ldb + p] : b[p * ldb + q];
        }
        kiln__sgemm_cv_pack(m, k, a, lda, pa);
        memcpy(c, c0, (size_t)(m * ldc) * sizeof *c);
        KT_OK(kiln__sgemm_cv(pool, m, n, k, pa, rows, off, wq, wo, c, ldc, kt_randi(0, 1) ? KILN__CV_STREAM_B : 0,
                             &ep));
        char pname[300];
        snprintf(pname, sizeof pname, "channel-vector wo=%lld wq=%lld: %s", (long long)wo, (long long)wq, name);
        kt_close(pname, c, want, m * ldc, 1e-4f, 1e-4f * (float)KILN__MAX(1, k) + 1e-5f);
        free(pa);
        free(off);
        free(rows);
    }
    {
        /* The same product from B packed once (without AVX2 the packed copy, all NaN, is unused). */
        int64_t floats = kiln__sgemm_packed_b_floats(k, n);
        float *pb = malloc((size_t)KILN__MAX(1, floats) * sizeof *pb);
        for (int64_t i = 0; i < floats; i++) pb[i] = NAN;
        kiln__sgemm_pack_b(g->tb, k, n, b, ldb, pb);
        memcpy(c, c0, (size_t)(m * ldc) * sizeof *c);
        KT_OK(kiln__sgemm_packed_b(pool, &g_alloc, g->ta, g->tb, m, n, k, g->alpha, a, lda, b, ldb, pb, g->beta, c,
                                   ldc, &ep));
        char pname[300];
        snprintf(pname, sizeof pname, "packed B: %s", name);
        kt_close(pname, c, want, m * ldc, 1e-4f, 1e-4f * (float)KILN__MAX(1, k) + 1e-5f);
        free(pb);
    }
    free(c0);
    free(a);
    free(b);
    free(c);
    free(want);
    free(bias);
    free(res);
}

static int64_t rand_dim(void) {
    switch (kt_randi(0, 5)) {
    case 0: return 1;
    case 1: return kt_randi(2, 7);
    case 2: return kt_randi(8, 40);
    default: return kt_randi(1, 200);
    }
}

static void random_cases(kiln__pool *pool, int count, const char *what) {
    static const int acts[] = {-1,
                               -1,
                               KILN_ACT_RELU,
                               KILN_ACT_CLIP,
                               KILN_ACT_SIGMOID,
                               KILN_ACT_LEAKY_RELU,
                               KILN_ACT_GELU_ERF,
                               KILN_ACT_GELU_TANH,
                               KILN_ACT_TANH,
                               KILN_ACT_SILU,
                               KILN_ACT_ELU,
                               KILN_ACT_HARD_SWISH};
    for (int it = 0; it < count; it++) {
        gcase g = {rand_dim(), rand_dim(), rand_dim(), kt_randi(0, 1), kt_randi(0, 1), 1.0f, 0.0f, false, false, -1, 0};
        if (it % 3 == 1) g.alpha = kt_randf(-2, 2);
        if (it % 4 == 1) g.beta = kt_randf(-2, 2);
        if (it % 4 == 2) g.beta = 1.0f;
        g.bias = kt_randi(0, 1);
        g.res = kt_randi(0, 1);
        g.act = acts[kt_randi(0, (int)(sizeof acts / sizeof *acts) - 1)];
        run(what, &g, pool);
    }
}

static void fixed_cases(kiln__pool *pool, const char *what) {
    const gcase cases[] = {
        {1, 1, 1, false, false, 1, 0, false, false, -1, 0},
        {1, 300, 70, false, false, 1, 0, true, false, KILN_ACT_RELU, 0},  /* m = 1 */
        {300, 1, 70, false, true, 1, 0.5f, false, true, -1, 0},           /* n = 1 */
        /* one row (a linear layer on one vector, and the row after full blocks of 12): over K
         * blocks and in one, packed or read in place, partial panels, every epilogue */
        {1, 1000, 2048, false, true, 1, 0, true, false, -1, 0},
        {1, 77, 301, false, false, 1, 0.5f, true, true, KILN_ACT_GELU_TANH, 0},
        {13, 70, 600, false, false, 1, 1, true, true, KILN_ACT_SOFTPLUS, 0},
        {25, 45, 200, false, true, 1, 0, false, true, KILN_ACT_CLIP, 0},
        {37, 300, 129, false, false, 1, 0, true, false, KILN_ACT_RELU, 0},
        {37, 45, 1, true, false, 2, 0, true, true, KILN_ACT_CLIP, 0},      /* k = 1 */
        {13, 17, 0, false, false, 1, 0, true, true, KILN_ACT_SIGMOID, 0},  /* k = 0: epilogue only */
        {9, 11, 0, false, false, 1, 0.5f, false, false, -1, 0},            /* k = 0: beta * C */
        {150, 1100, 600, false, false, 1, 0, true, true, KILN_ACT_RELU, 0}, /* crosses MC, NC, KC */
        {293, 67, 513, true, true, -0.5f, 1, false, false, -1, 0},
        {64, 3136, 147, false, false, 1, 0, true, false, KILN_ACT_RELU, 0}, /* a conv's shape */
        {128, 1100, 300, false, false, 1, 0, true, false, KILN_ACT_GELU_ERF, 0}, /* a linear layer: tiles across */
        {130, 1090, 70, true, true, 0.5f, 0, false, true, KILN_ACT_SOFTPLUS, 0}, /* whole-row activation */
        {7, 45, 33, false, false, 1, 1, true, false, KILN_ACT_LEAKY_RELU, 0},
        {512, 49, 4608, false, false, 1, 0, true, true, KILN_ACT_RELU, 7}, /* 7x7 3x3: blocks of two rows */
        {72, 36, 50, false, false, 1, 0, true, true, -1, 3},                /* rows of 3, four at a time */
        {40, 28, 33, false, false, 1, 0, false, true, KILN_ACT_ELU, 4},    /* 7 rows of 4: 3 + 3 + 1 */
        {33, 25, 20, false, false, 1, 0, true, false, KILN_ACT_RELU, 5},
        {64, 30, 100, false, false, 1, 0, true, true, -1, 6},
        {70, 196, 256, false, false, 1, 0, true, false, KILN_ACT_HARD_SWISH, 0}, /* rows past m */
        {300, 120, 64, false, false, 1, 0, true, true, KILN_ACT_RELU, 0}, /* threads split by maps */
        /* 1024 -> 256 on 14x14 with a residual: tiles of A panels taken in turn, each prefetching the
         * next one's panels and rows of C and the residual */
        {256, 196, 1024, false, false, 1, 0, true, true, KILN_ACT_RELU, 14},
        /* 256 -> 1024 on 14x14: row tiles of equal size; B, one K block and one tile across, packed
         * by groups of panels on several threads */
        {1024, 196, 256, false, false, 1, 0, true, true, KILN_ACT_RELU, 0},
        /* B read in place from 1 MiB or more, sums of 64 or more: the next panel's rows prefetched
         * spread over the 12-row calls (144 -> 24 on 56x56; with beta and a residual; over three
         * K blocks, 12 + 8 rows) */
        {24, 3136, 144, false, false, 1, 0, true, false, KILN_ACT_RELU, 0},
        {30, 2100, 200, false, false, 1, 0.5f, true, true, KILN_ACT_CLIP, 0},
        {20, 800, 600, false, false, 1, 1, true, true, KILN_ACT_RELU, 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) run(what, &cases[i], pool);
    /* every row count of a tile's last block (1 to 12, computed rounded up to even) after full
     * blocks of 12, with a last panel of 16 columns or fewer and of more; packed B over K blocks
     * and in one (BERT's 128 rows end in a block of 8) */
    for (int64_t rows = 1; rows <= 12; rows++) {
        gcase part = {24 + rows, 45 + 7 * rows, 300, false, rows % 2 == 0, 1, 0, true, true, KILN_ACT_GELU_ERF, 0};
        run(what, &part, pool);
        part.k = 100;
        part.n = 80;
        run(what, &part, pool);
    }
}

int main(void) {
    kt_seed();
    kiln__alloc_init(&g_alloc, NULL);
    kiln__pool *pool = NULL;
    KT_OK(kiln__pool_create(&g_alloc, 4, &pool));
    printf("kernels: %s\n", kiln__cpu_simd() == KILN__SIMD_AVX512 ? "AVX-512, AVX2, portable"
                             : kiln__cpu_simd() == KILN__SIMD_AVX2  ? "AVX2, portable (no AVX-512 here)"
                                                                     : "portable only");
    for (int simd = KILN__SIMD_AVX512; simd >= KILN__SIMD_NONE; simd--) {
        kiln__cpu_set_simd(simd);
        const char *what = simd == KILN__SIMD_AVX512 ? "gemm avx512" : simd ? "gemm avx2" : "gemm (portable)";
        fixed_cases(NULL, what);
        fixed_cases(pool, what);
        random_cases(NULL, simd ? 300 : 60, what);
        random_cases(pool, simd ? 300 : 60, what);
    }
    kiln__cpu_set_simd(KILN__SIMD_AVX512);
    kiln__pool_destroy(pool);
    return kt_summary("test_cpu_gemm");
}
