/* Single-precision GEMM: C is cut into tiles (mc x nc) that threads take from a shared counter;
 * each tile runs over K in blocks of kc: A's block is packed into 6-row panels (scaled by
 * alpha), B's into 16-column panels, and a 6x16 register-blocked AVX2/FMA micro-kernel
 * accumulates each 6x16 piece of C, applying beta on the first K block and the epilogue on the
 * last, while the piece is still in registers. */
#include "gemm.h"

#include <cblas.h>
#include <immintrin.h>
#include <stdatomic.h>
#include <string.h>

#define MR 6
#define NR 16        /* AVX2; AVX-512 panels are 2 * NR wide */
#define KC 256       /* a 6 x KC panel of A plus a KC x 16 panel of B stay in L1 */
#define MC 144       /* an MC x KC block of A stays in L2 */
#define NC 1024      /* a KC x NC block of B stays in L2/L3 */
#define MIN_MC 24
#define MIN_NC 64
#define TILES_PER_THREAD 4

static atomic_int simd_state = -1; /* -1: not detected yet */

static int cpu_simd_level(void) {
    if (!__builtin_cpu_supports("avx2") || !__builtin_cpu_supports("fma")) return KILN__SIMD_NONE;
    return __builtin_cpu_supports("avx512f") ? KILN__SIMD_AVX512 : KILN__SIMD_AVX2;
}

int kiln__cpu_simd(void) {
    int s = atomic_load_explicit(&simd_state, memory_order_relaxed);
    if (s < 0) {
        s = cpu_simd_level();
        atomic_store_explicit(&simd_state, s, memory_order_relaxed);
    }
    return s;
}

void kiln__cpu_set_simd(int max_level) { atomic_store(&simd_state, KILN__MIN(max_level, cpu_simd_level())); }

typedef struct gemm_job {
    bool ta, tb, load_c; /* load_c: beta != 0, so the first K block reads C */
    int64_t m, n, k, lda, ldb, ldc;
    float alpha, beta;
    const float *a, *b;
    const float *apack; /* A packed whole by kiln__sgemm_pack_a, or NULL: packed per tile */
    int64_t mpad;       /* its rows, rounded up to MR */
    float *c;
    const float *bias, *res;
    int64_t ldr;
    const kiln__act *act; /* NULL when none */
    bool act_inline;      /* relu / clip: applied in registers */
    float lo, hi;         /* their bounds */
    int64_t nr; /* B panel width: NR, or 2 * NR for the AVX-512 kernel */
    int64_t mc, nc, kc, tiles_n, tiles;
    float *work;
    int64_t work_per_slot; /* floats: an mc x kc block of A, then a kc x nc block of B */
    atomic_llong next;     /* next tile to take */
} gemm_job;

/* ---------------------------------------------------------------- packing */

/* Rows [i0, i0 + rows) x K [p0, p0 + kc) of alpha * op(A) into 6-row panels [kc][6], zero-padded. */
__attribute__((target("avx2,fma"))) static void pack_a(const gemm_job *j, int64_t i0, int64_t rows, int64_t p0,
                                                       int64_t kc, float *dst) {
    for (int64_t ir = 0; ir < rows; ir += MR, dst += kc * MR) {
        int64_t r_n = KILN__MIN(MR, rows - ir);
        if (!j->ta) {
            for (int64_t r = 0; r < r_n; r++) {
                const float *src = j->a + (i0 + ir + r) * j->lda + p0;
                for (int64_t p = 0; p < kc; p++) dst[p * MR + r] = j->alpha * src[p];
            }
        } else {
            for (int64_t p = 0; p < kc; p++) {
                const float *src = j->a + (p0 + p) * j->lda + i0 + ir;
                for (int64_t r = 0; r < r_n; r++) dst[p * MR + r] = j->alpha * src[r];
            }
        }
        for (int64_t r = r_n; r < MR; r++)
            for (int64_t p = 0; p < kc; p++) dst[p * MR + r] = 0.0f;
    }
}

/* K [p0, p0 + kc) x columns [j0, j0 + cols) of op(B) into nr-column panels [kc][nr], zero-padded. */
__attribute__((target("avx2,fma"))) static void pack_b(const gemm_job *j, int64_t p0, int64_t kc, int64_t j0,
                                                       int64_t cols, float *dst) {
    int64_t nr = j->nr;
    for (int64_t jr = 0; jr < cols; jr += nr, dst += kc * nr) {
        int64_t c_n = KILN__MIN(nr, cols - jr);
        if (!j->tb) {
            const float *src = j->b + p0 * j->ldb + j0 + jr;
            if (c_n == nr) {
                for (int64_t p = 0; p < kc; p++, src += j->ldb)
                    for (int64_t c = 0; c < nr; c += 8) _mm256_storeu_ps(dst + p * nr + c, _mm256_loadu_ps(src + c));
            } else {
                for (int64_t p = 0; p < kc; p++, src += j->ldb) {
                    int64_t c = 0;
                    for (; c < c_n; c++) dst[p * nr + c] = src[c];
                    for (; c < nr; c++) dst[p * nr + c] = 0.0f;
                }
            }
        } else {
            for (int64_t c = 0; c < c_n; c++) {
                const float *src = j->b + (j0 + jr + c) * j->ldb + p0;
                for (int64_t p = 0; p < kc; p++) dst[p * nr + c] = src[p];
            }
            for (int64_t c = c_n; c < nr; c++)
                for (int64_t p = 0; p < kc; p++) dst[p * nr + c] = 0.0f;
        }
    }
}

/* ---------------------------------------------------------------- the micro-kernel */

/* Finishes one row of up to 16 values (v0, v1) of C at row i, columns [col, col + cols):
 * beta * C on the first K block, + C on later ones, the epilogue on the last. */
__attribute__((target("avx2,fma"))) static inline void store_row(const gemm_job *j, __m256 v0, __m256 v1, float *c,
                                                                 int64_t i, int64_t col, int cols, bool first,
                                                                 bool last) {
    bool read_c = !first || j->load_c;
    __m256 beta = _mm256_set1_ps(first ? j->beta : 1.0f);
    if (cols == NR) {
        if (read_c) {
            v0 = _mm256_fmadd_ps(beta, _mm256_loadu_ps(c), v0);
            v1 = _mm256_fmadd_ps(beta, _mm256_loadu_ps(c + 8), v1);
        }
        if (last) {
            if (j->bias) {
                __m256 b = _mm256_set1_ps(j->bias[i]);
                v0 = _mm256_add_ps(v0, b);
                v1 = _mm256_add_ps(v1, b);
            }
            if (j->res) {
                const float *r = j->res + i * j->ldr + col;
                v0 = _mm256_add_ps(v0, _mm256_loadu_ps(r));
                v1 = _mm256_add_ps(v1, _mm256_loadu_ps(r + 8));
            }
            if (j->act_inline) {
                __m256 lo = _mm256_set1_ps(j->lo), hi = _mm256_set1_ps(j->hi);
                v0 = _mm256_min_ps(_mm256_max_ps(v0, lo), hi);
                v1 = _mm256_min_ps(_mm256_max_ps(v1, lo), hi);
            }
        }
        _mm256_storeu_ps(c, v0);
        _mm256_storeu_ps(c + 8, v1);
    } else {
        float t[NR];
        _mm256_storeu_ps(t, v0);
        _mm256_storeu_ps(t + 8, v1);
        for (int x = 0; x < cols; x++) {
            float v = t[x];
            if (read_c) v += (first ? j->beta : 1.0f) * c[x];
            if (last) {
                if (j->bias) v += j->bias[i];
                if (j->res) v += j->res[i * j->ldr + col + x];
                if (j->act_inline) v = v < j->lo ? j->lo : (v > j->hi ? j->hi : v);
            }
            c[x] = v;
        }
    }
    if (last && j->act && !j->act_inline) kiln__apply_act_f32(j->act, c, cols);
}

/* C[i .. i + rows, col .. col + cols] from packed panels pa [kc][6] and pb [kc][16]. */
__attribute__((target("avx2,fma"))) static void kernel_6x16(const gemm_job *j, int64_t kc, const float *pa,
                                                            const float *pb, int64_t i, int64_t col, int rows,
                                                            int cols, bool first, bool last) {
    __m256 c00 = _mm256_setzero_ps(), c01 = c00, c10 = c00, c11 = c00, c20 = c00, c21 = c00;
    __m256 c30 = c00, c31 = c00, c40 = c00, c41 = c00, c50 = c00, c51 = c00;
    for (int64_t p = 0; p < kc; p++, pa += MR, pb += NR) {
        __m256 b0 = _mm256_loadu_ps(pb), b1 = _mm256_loadu_ps(pb + 8), a;
        a = _mm256_broadcast_ss(pa + 0);
        c00 = _mm256_fmadd_ps(a, b0, c00);
        c01 = _mm256_fmadd_ps(a, b1, c01);
        a = _mm256_broadcast_ss(pa + 1);
        c10 = _mm256_fmadd_ps(a, b0, c10);
        c11 = _mm256_fmadd_ps(a, b1, c11);
        a = _mm256_broadcast_ss(pa + 2);
        c20 = _mm256_fmadd_ps(a, b0, c20);
        c21 = _mm256_fmadd_ps(a, b1, c21);
        a = _mm256_broadcast_ss(pa + 3);
        c30 = _mm256_fmadd_ps(a, b0, c30);
        c31 = _mm256_fmadd_ps(a, b1, c31);
        a = _mm256_broadcast_ss(pa + 4);
        c40 = _mm256_fmadd_ps(a, b0, c40);
        c41 = _mm256_fmadd_ps(a, b1, c41);
        a = _mm256_broadcast_ss(pa + 5);
        c50 = _mm256_fmadd_ps(a, b0, c50);
        c51 = _mm256_fmadd_ps(a, b1, c51);
    }
    float *c = j->c + i * j->ldc + col;
    int64_t ldc = j->ldc;
    store_row(j, c00, c01, c, i, col, cols, first, last);
    if (rows > 1) store_row(j, c10, c11, c + ldc, i + 1, col, cols, first, last);
    if (rows > 2) store_row(j, c20, c21, c + 2 * ldc, i + 2, col, cols, first, last);
    if (rows > 3) store_row(j, c30, c31, c + 3 * ldc, i + 3, col, cols, first, last);
    if (rows > 4) store_row(j, c40, c41, c + 4 * ldc, i + 4, col, cols, first, last);
    if (rows > 5) store_row(j, c50, c51, c + 5 * ldc, i + 5, col, cols, first, last);
}

/* Finishes one row of up to 32 values of C (AVX-512; partial rows through masks). */
__attribute__((target("avx512f"))) static inline void store_row512(const gemm_job *j, __m512 v0, __m512 v1, float *c,
                                                                   int64_t i, int64_t col, int cols, bool first,
                                                                   bool last) {
    __mmask16 m0 = (__mmask16)(cols >= 16 ? 0xFFFF : (1u << cols) - 1);
    __mmask16 m1 = (__mmask16)(cols >= 32 ? 0xFFFF : cols <= 16 ? 0 : (1u << (cols - 16)) - 1);
    if (!first || j->load_c) {
        __m512 beta = _mm512_set1_ps(first ? j->beta : 1.0f);
        v0 = _mm512_fmadd_ps(beta, _mm512_maskz_loadu_ps(m0, c), v0);
        v1 = _mm512_fmadd_ps(beta, _mm512_maskz_loadu_ps(m1, c + 16), v1);
    }
    if (last) {
        if (j->bias) {
            __m512 b = _mm512_set1_ps(j->bias[i]);
            v0 = _mm512_add_ps(v0, b);
            v1 = _mm512_add_ps(v1, b);
        }
        if (j->res) {
            const float *r = j->res + i * j->ldr + col;
            v0 = _mm512_add_ps(v0, _mm512_maskz_loadu_ps(m0, r));
            v1 = _mm512_add_ps(v1, _mm512_maskz_loadu_ps(m1, r + 16));
        }
        if (j->act_inline) {
            __m512 lo = _mm512_set1_ps(j->lo), hi = _mm512_set1_ps(j->hi);
            v0 = _mm512_min_ps(_mm512_max_ps(v0, lo), hi);
            v1 = _mm512_min_ps(_mm512_max_ps(v1, lo), hi);
        }
    }
    _mm512_mask_storeu_ps(c, m0, v0);
    _mm512_mask_storeu_ps(c + 16, m1, v1);
    if (last && j->act && !j->act_inline) kiln__apply_act_f32(j->act, c, cols);
}

/* The AVX-512 micro-kernel: 6 x 32 from panels pa [kc][6] and pb [kc][32]. */
__attribute__((target("avx512f"))) static void kernel_6x32(const gemm_job *j, int64_t kc, const float *pa,
                                                           const float *pb, int64_t i, int64_t col, int rows,
                                                           int cols, bool first, bool last) {
    __m512 c00 = _mm512_setzero_ps(), c01 = c00, c10 = c00, c11 = c00, c20 = c00, c21 = c00;
    __m512 c30 = c00, c31 = c00, c40 = c00, c41 = c00, c50 = c00, c51 = c00;
    for (int64_t p = 0; p < kc; p++, pa += MR, pb += 2 * NR) {
        __m512 b0 = _mm512_loadu_ps(pb), b1 = _mm512_loadu_ps(pb + 16), a;
        a = _mm512_set1_ps(pa[0]);
        c00 = _mm512_fmadd_ps(a, b0, c00);
        c01 = _mm512_fmadd_ps(a, b1, c01);
        a = _mm512_set1_ps(pa[1]);
        c10 = _mm512_fmadd_ps(a, b0, c10);
        c11 = _mm512_fmadd_ps(a, b1, c11);
        a = _mm512_set1_ps(pa[2]);
        c20 = _mm512_fmadd_ps(a, b0, c20);
        c21 = _mm512_fmadd_ps(a, b1, c21);
        a = _mm512_set1_ps(pa[3]);
        c30 = _mm512_fmadd_ps(a, b0, c30);
        c31 = _mm512_fmadd_ps(a, b1, c31);
        a = _mm512_set1_ps(pa[4]);
        c40 = _mm512_fmadd_ps(a, b0, c40);
        c41 = _mm512_fmadd_ps(a, b1, c41);
        a = _mm512_set1_ps(pa[5]);
        c50 = _mm512_fmadd_ps(a, b0, c50);
        c51 = _mm512_fmadd_ps(a, b1, c51);
    }
    float *c = j->c + i * j->ldc + col;
    int64_t ldc = j->ldc;
    store_row512(j, c00, c01, c, i, col, cols, first, last);
    if (rows > 1) store_row512(j, c10, c11, c + ldc, i + 1, col, cols, first, last);
    if (rows > 2) store_row512(j, c20, c21, c + 2 * ldc, i + 2, col, cols, first, last);
    if (rows > 3) store_row512(j, c30, c31, c + 3 * ldc, i + 3, col, cols, first, last);
    if (rows > 4) store_row512(j, c40, c41, c + 4 * ldc, i + 4, col, cols, first, last);
    if (rows > 5) store_row512(j, c50, c51, c + 5 * ldc, i + 5, col, cols, first, last);
}

/* One tile of C: rows [i0, i0 + rows), columns [j0, j0 + cols). */
__attribute__((target("avx2,fma"))) static void run_tile(const gemm_job *j, int64_t i0, int64_t rows, int64_t j0,
                                                         int64_t cols, float *pa, float *pb) {
    for (int64_t p0 = 0; p0 < j->k; p0 += j->kc) {
        int64_t kc = KILN__MIN(j->kc, j->k - p0);
        bool first = p0 == 0, last = p0 + kc >= j->k;
        pack_b(j, p0, kc, j0, cols, pb);
        const float *pk = pa;
        if (j->apack)
            pk = j->apack + p0 * j->mpad + i0 * kc;
        else
            pack_a(j, i0, rows, p0, kc, pa);
        for (int64_t jr = 0; jr < cols; jr += j->nr) {
            int c_n = (int)KILN__MIN(j->nr, cols - jr);
            for (int64_t ir = 0; ir < rows; ir += MR) {
                int r_n = (int)KILN__MIN(MR, rows - ir);
                if (j->nr == NR)
                    kernel_6x16(j, kc, pk + ir * kc, pb + jr * kc, i0 + ir, j0 + jr, r_n, c_n, first, last);
                else
                    kernel_6x32(j, kc, pk + ir * kc, pb + jr * kc, i0 + ir, j0 + jr, r_n, c_n, first, last);
            }
        }
    }
}

static void slot_range(void *arg, int64_t begin, int64_t end) {
    gemm_job *j = arg;
    for (int64_t s = begin; s < end; s++) {
        float *pa = j->work + s * j->work_per_slot, *pb = j->apack ? pa : pa + j->mc * j->kc;
        for (;;) {
            int64_t t = atomic_fetch_add_explicit(&j->next, 1, memory_order_relaxed);
            if (t >= j->tiles) break;
            int64_t i0 = t / j->tiles_n * j->mc, j0 = t % j->tiles_n * j->nc;
            run_tile(j, i0, KILN__MIN(j->mc, j->m - i0), j0, KILN__MIN(j->nc, j->n - j0), pa, pb);
        }
    }
}

/* ---------------------------------------------------------------- without AVX2: OpenBLAS */

/* Rows [r0, r1) of C through cblas_sgemm (single-threaded inside kiln), then the epilogue. */
static void blas_rows(void *arg, int64_t r0, int64_t r1) {
    const gemm_job *j = arg;
    const float *a = j->a + (j->ta ? r0 : r0 * j->lda);
    float *c = j->c + r0 * j->ldc;
    cblas_sgemm(CblasRowMajor, j->ta ? CblasTrans : CblasNoTrans, j->tb ? CblasTrans : CblasNoTrans, (int)(r1 - r0),
                (int)j->n, (int)j->k, j->alpha, a, (int)KILN__MAX(1, j->lda), j->b, (int)KILN__MAX(1, j->ldb),
                j->load_c ? j->beta : 0.0f, c, (int)KILN__MAX(1, j->ldc));
    for (int64_t i = r0; i < r1; i++, c += j->ldc) {
        if (j->bias)
            for (int64_t x = 0; x < j->n; x++) c[x] += j->bias[i];
        if (j->res)
            for (int64_t x = 0; x < j->n; x++) c[x] += j->res[i * j->ldr + x];
        if (j->act) kiln__apply_act_f32(j->act, c, j->n);
    }
}

/* k == 0: C = epilogue(beta * C). */
static void empty_k(const gemm_job *j) {
    float *c = j->c;
    for (int64_t i = 0; i < j->m; i++, c += j->ldc)
        for (int64_t x = 0; x < j->n; x++) {
            float v = j->load_c ? j->beta * c[x] : 0.0f;
            if (j->bias) v += j->bias[i];
            if (j->res) v += j->res[i * j->ldr + x];
            c[x] = j->act ? kiln__act_f32(j->act->kind, j->act->alpha, j->act->beta, v) : v;
        }
}

/* K is cut into equal blocks of at most KC; packed A follows the same cut. */
static int64_t k_block(int64_t k) {
    int64_t kblocks = (k + KC - 1) / KC;
    return (k + kblocks - 1) / kblocks;
}

int64_t kiln__sgemm_packed_a_floats(int64_t m, int64_t k) { return (m + MR - 1) / MR * MR * k; }

void kiln__sgemm_pack_a(int64_t m, int64_t k, const float *a, int64_t lda, float *dst) {
    if (m <= 0 || k <= 0) return;
    gemm_job j = {.a = a, .lda = lda, .alpha = 1.0f};
    int64_t kc = k_block(k), mpad = (m + MR - 1) / MR * MR;
    for (int64_t p0 = 0; p0 < k; p0 += kc) pack_a(&j, 0, m, p0, KILN__MIN(kc, k - p0), dst + p0 * mpad);
}

static kiln_status sgemm_run(kiln__pool *pool, const kiln__alloc *alloc, gemm_job *j, const kiln__gemm_epilogue *ep);

kiln_status kiln__sgemm(kiln__pool *pool, const kiln__alloc *alloc, bool trans_a, bool trans_b, int64_t m, int64_t n,
                        int64_t k, float alpha, const float *a, int64_t lda, const float *b, int64_t ldb, float beta,
                        float *c, int64_t ldc, const kiln__gemm_epilogue *ep) {
    gemm_job j = {.ta = trans_a, .tb = trans_b, .load_c = beta != 0.0f, .m = m, .n = n, .k = k, .lda = lda,
                  .ldb = ldb, .ldc = ldc, .alpha = alpha, .beta = beta, .a = a, .b = b, .c = c};
    return sgemm_run(pool, alloc, &j, ep);
}

kiln_status kiln__sgemm_packed(kiln__pool *pool, const kiln__alloc *alloc, int64_t m, int64_t n, int64_t k,
                               const float *a, int64_t lda, const float *packed_a, const float *b, int64_t ldb,
                               float beta, float *c, int64_t ldc, const kiln__gemm_epilogue *ep) {
    gemm_job j = {.load_c = beta != 0.0f, .m = m, .n = n, .k = k, .lda = lda, .ldb = ldb, .ldc = ldc,
                  .alpha = 1.0f, .beta = beta, .a = a, .b = b, .c = c, .apack = packed_a,
                  .mpad = (m + MR - 1) / MR * MR};
    return sgemm_run(pool, alloc, &j, ep);
}

static kiln_status sgemm_run(kiln__pool *pool, const kiln__alloc *alloc, gemm_job *j, const kiln__gemm_epilogue *ep) {
    int64_t m = j->m, n = j->n, k = j->k;
    if (m <= 0 || n <= 0) return KILN_OK;
    if (ep) {
        j->bias = ep->bias;
        j->res = ep->res;
        j->ldr = ep->ldr;
        j->act = ep->act && ep->act->kind >= 0 ? ep->act : NULL;
    }
    if (j->act && j->act->kind == KILN_ACT_RELU) {
        j->act_inline = true;
        j->lo = 0.0f;
        j->hi = __builtin_inff();
    } else if (j->act && j->act->kind == KILN_ACT_CLIP) {
        j->act_inline = true;
        j->lo = j->act->alpha;
        j->hi = j->act->beta;
    }
    if (k <= 0) {
        empty_k(j);
        return KILN_OK;
    }
    int64_t threads = kiln__pool_threads(pool);
    int simd = kiln__cpu_simd();
    if (simd == KILN__SIMD_NONE) {
        int64_t grain = KILN__MAX(1, (int64_t)(4e5 / ((double)n * (double)k + 1.0)));
        kiln__parallel_for(threads > 1 ? pool : NULL, m, grain, blas_rows, j);
        return KILN_OK;
    }
    /* K in equal blocks of at most KC; tiles shrunk (the larger side first) until every
     * thread has several to take, so a slow thread does not hold the others up. */
    j->kc = k_block(k);
    j->mc = KILN__MIN(MC, (m + MR - 1) / MR * MR);
    j->nr = simd == KILN__SIMD_AVX512 ? 2 * NR : NR;
    j->nc = KILN__MIN(NC, (n + j->nr - 1) / j->nr * j->nr);
    for (;;) {
        int64_t tiles = ((m + j->mc - 1) / j->mc) * ((n + j->nc - 1) / j->nc);
        if (threads <= 1 || tiles >= TILES_PER_THREAD * threads) break;
        bool cut_n = j->nc / 2 >= MIN_NC && (j->nc >= j->mc || j->mc / 2 < MIN_MC);
        if (cut_n)
            j->nc = (j->nc / 2 + j->nr - 1) / j->nr * j->nr;
        else if (j->mc / 2 >= MIN_MC)
            j->mc = (j->mc / 2 + MR - 1) / MR * MR;
        else
            break;
    }
    j->tiles_n = (n + j->nc - 1) / j->nc;
    j->tiles = ((m + j->mc - 1) / j->mc) * j->tiles_n;
    int64_t slots = KILN__MIN(threads, j->tiles);
    j->work_per_slot = (j->apack ? j->nc : j->mc + j->nc) * j->kc + 16; /* + 16 keeps each slot's start 64-byte aligned */
    j->work_per_slot -= j->work_per_slot % 16;
    size_t bytes;
    if (!kiln__mul_size((size_t)(slots * j->work_per_slot), sizeof(float), &bytes))
        return kiln__error(KILN_OUT_OF_MEMORY, "GEMM packing buffer size overflows");
    j->work = kiln__malloc_aligned(alloc, bytes, 64);
    if (!j->work) return KILN_OUT_OF_MEMORY;
    atomic_init(&j->next, 0);
    if (slots > 1)
        kiln__parallel_for(pool, slots, 1, slot_range, j);
    else
        slot_range(j, 0, 1);
    kiln__free(alloc, j->work);
    return KILN_OK;
}
