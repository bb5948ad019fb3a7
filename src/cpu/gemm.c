/* Single-precision GEMM: C is cut into tiles (mc x nc) that threads take from a shared counter;
 * each tile runs over K in blocks of kc: A's block is packed into 6-row panels (scaled by
 * alpha), B's into 16- or 32-column panels, and a register-blocked micro-kernel (AVX2/FMA 6x16,
 * AVX-512 12x32 with a 6x32 tail) accumulates each piece of C, applying beta on the first K block
 * and the epilogue on the last, while the piece is still in registers (activations too, through
 * vmath.h, except the rare kinds without a vector form: those run over the tile's whole rows at
 * its end). Operands packed once by the caller (constant weights) skip their packing; when C has
 * several tiles across, A is packed once for all of them, and B likewise for several tiles down.
 * B may also come from a packing callback (implicit im2col), or, with few rows of A, be read in
 * place. The next B panel is prefetched while the current one is in use: weights stream from
 * memory on every run. */
#include "gemm.h"
#include "vmath.h"

#include <cblas.h>
#include <immintrin.h>
#include <stdatomic.h>
#include <string.h>
#include <unistd.h>

#define MR 6
#define NR 16        /* AVX2; AVX-512 panels are 2 * NR wide */
#define KC 192       /* a 6 x KC panel of A plus a KC x 16 panel of B stay in L1 */
#define KC_WHOLE 256 /* sums up to this long stay one block: C is then written once, and with
                      * AVX-512 the tile is swept row block by row block (B from L2) */
/* With AVX-512, a B packed whole ahead (a linear layer's weights, kiln__sgemm_pack_b) keeps sums
 * up to this long whole where L2 cannot hold a cut tile's C and B block ((MC + KC) x NC floats,
 * 1.3 MiB): its rows of A are few (tokens) and its columns many, so each K block re-reads and
 * re-writes C from L3. BERT-base's 128 x 3072 x 768, weights from memory, 1 thread, the two ways
 * alternating in one process: on the AMD EPYC (1 MiB of L2) 6.07 -> 5.72 ms whole (128 x 768 x
 * 768 unchanged, 1.58 and 1.60; 2 threads unchanged); on the GPU machine's Xeon (2 MiB) whole
 * was slower, 4.36 -> 5.44 ms (128 x 768 x 768 1.26 -> 1.42). */
#define KC_WHOLE_PACKED_B 768
#define MC 144       /* an MC x KC block of A stays in L2 */
#define NC 1024      /* a KC x NC block of B stays in L2/L3 */
#define MIN_MC 24
#define MIN_NC 64
#define TILES_PER_THREAD 4
#define COLUMN_ITEMS_PER_THREAD 4 /* the split by columns: runs of columns per thread, for stealing */
/* AVX-512: B read in place, unpacked, when A has at most this many rows. Each 12-row block
 * re-reads the B panel's strided rows: with more rows packing is cheaper (1x1 conv on 56x56, 1
 * thread: 256->64 1.15 ms in place, 0.89 packed; 144->32 on 28x28 0.055 in place, 0.093 packed). */
#define DIRECT_B_MAX_M 32
#define PREPACK_A_MAX (4 << 20) /* floats: A packed whole before the tiles when it is at most this big */
#define PREPACK_B_MAX (4 << 20) /* floats: the same for B */

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
    const float *apack; /* A packed whole (kiln__sgemm_pack_a or before the tiles), or NULL: per tile */
    int64_t mpad;       /* its rows, rounded up to MR */
    const float *bpack; /* B packed whole by kiln__sgemm_pack_b, or NULL: packed per tile */
    int64_t npad;       /* its columns, rounded up to nr */
    bool b_direct;      /* AVX-512: full panels of B read in place, unpacked */
    const int64_t *boff; /* b_direct with row p of B at b + boff[p] (kiln__sgemm_packed_rows) */
    int64_t grid_wq, grid_wo; /* with boff: column p of C is at (p / wq) * wo + p % wq, dropped
                               * when p % wq >= wo (grid_wq == 0: at p) */
    kiln__gemm_pack_b_fn pack_b_fn; /* or B packed per tile by this callback (implicit B) */
    const void *pack_b_arg;
    float *c;
    const float *bias, *res;
    int64_t ldr;
    const kiln__act *act; /* NULL when none */
    int act_mode;         /* how act is applied: ACT_* */
    int vm_fn;            /* ACT_VM: the vmath.h function */
    float lo, hi;         /* ACT_CLAMP: the bounds; ACT_LEAKY: lo is the slope */
    int64_t nr; /* B panel width: NR, or 2 * NR for the AVX-512 kernel */
    int64_t mc, nc, kc, tiles_n, tiles;
    int64_t pack_cols; /* columns of B per piece packed before the tiles */
    int64_t slots; /* channel-vector GEMM: the threads taking tiles; row GEMM split by columns: its
                    * items */
    bool by_blocks; /* the channel-vector GEMM's split into shares: by positions (else by maps) */
    int64_t work_slots; /* row GEMM: the packing buffers in work, one per thread */
    bool cv_prefetch_b; /* channel-vector GEMM: the next block's B rows prefetched (CV_STREAM_MIN_K) */
    int cv_blocked; /* channel-vector GEMM: KILN__CV_* (kiln__sgemm_cv) */
    float *work;
    int64_t work_per_slot; /* floats: an mc x kc block of A, then a kc x nc block of B */
    atomic_llong next;     /* next tile to take */
} gemm_job;

/* Activations in registers: relu and clip as a clamp, leaky relu, the vmath.h functions
 * (sigmoid, SiLU, tanh, the GELUs); the others over whole rows of the finished tile. */
enum { ACT_NONE, ACT_CLAMP, ACT_LEAKY, ACT_VM, ACT_ROWS };

/* Prefetches into L1 and L2. Not _mm_prefetch: GCC 13 makes it a builtin that may write memory,
 * so the accumulator arrays of a loop that prefetches are kept in memory, stored and reloaded every
 * step (the channel-vector kernel ran at half speed). */
static inline void prefetch_l1(const void *p) { __builtin_prefetch(p, 0, 3); }
static inline void prefetch_l2(const void *p) { __builtin_prefetch(p, 0, 2); }

/* ---------------------------------------------------------------- packing */

/* 6 rows x 8 K values of A (row stride lda), times alpha, into panel order: 8 groups of 6. Each
 * group is stored as 8 floats whose last 2 the next group overwrites, and the last group as 4 + 2:
 * a masked store (vmaskmovps) is slow on AMD, where it made packing a third of the time of an
 * attention product (12 heads of 128 x 64 x 128: 0.36 -> 0.26 ms; no change on the Xeon). */
__attribute__((target("avx2,fma"))) static inline void pack_a_6x8(const float *a, int64_t lda, float alpha,
                                                                 float *dst) {
    __m256 r[8], alpha8 = _mm256_set1_ps(alpha);
    for (int i = 0; i < MR; i++) r[i] = _mm256_mul_ps(alpha8, _mm256_loadu_ps(a + i * lda));
    r[6] = r[7] = _mm256_setzero_ps();
    kiln__vm_transpose8(r); /* r[q]: K value q of the 6 rows (and 2 zeros) */
    for (int q = 0; q < 7; q++) _mm256_storeu_ps(dst + q * MR, r[q]);
    _mm_storeu_ps(dst + 7 * MR, _mm256_castps256_ps128(r[7]));
    _mm_storel_pi((__m64 *)(dst + 7 * MR + 4), _mm256_extractf128_ps(r[7], 1));
}

/* Rows [i0, i0 + rows) x K [p0, p0 + kc) of alpha * op(A) into 6-row panels [kc][6], zero-padded. */
__attribute__((target("avx2,fma"))) static void pack_a(const gemm_job *j, int64_t i0, int64_t rows, int64_t p0,
                                                       int64_t kc, float *dst) {
    for (int64_t ir = 0; ir < rows; ir += MR, dst += kc * MR) {
        int64_t r_n = KILN__MIN(MR, rows - ir);
        if (!j->ta) {
            int64_t p = 0;
            if (r_n == MR) /* 8 K values of the 6 rows at a time, transposed in registers */
                for (; p + 8 <= kc; p += 8) pack_a_6x8(j->a + (i0 + ir) * j->lda + p0 + p, j->lda, j->alpha,
                                                       dst + p * MR);
            for (int64_t r = 0; r < r_n; r++) {
                const float *src = j->a + (i0 + ir + r) * j->lda + p0;
                for (int64_t q = p; q < kc; q++) dst[q * MR + r] = j->alpha * src[q];
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

/* The in-register activation of 8 values (ACT_CLAMP, ACT_LEAKY or ACT_VM). */
__attribute__((target("avx2,fma"))) static inline __m256 act8(const gemm_job *j, __m256 v) {
    switch (j->act_mode) {
    case ACT_CLAMP: return _mm256_min_ps(_mm256_max_ps(v, _mm256_set1_ps(j->lo)), _mm256_set1_ps(j->hi));
    case ACT_LEAKY: {
        __m256 ge = _mm256_cmp_ps(v, _mm256_setzero_ps(), _CMP_GE_OQ); /* NaN takes slope * NaN, as the formula */
        return _mm256_blendv_ps(_mm256_mul_ps(v, _mm256_set1_ps(j->lo)), v, ge);
    }
    case ACT_VM: return kiln__vm_apply8(j->vm_fn, v);
    default: return v;
    }
}

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
            if (j->act_mode != ACT_NONE && j->act_mode != ACT_ROWS) {
                v0 = act8(j, v0);
                v1 = act8(j, v1);
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
            }
            t[x] = v;
        }
        if (last && j->act_mode != ACT_NONE && j->act_mode != ACT_ROWS) {
            _mm256_storeu_ps(t, act8(j, _mm256_loadu_ps(t)));
            _mm256_storeu_ps(t + 8, act8(j, _mm256_loadu_ps(t + 8)));
        }
        memcpy(c, t, (size_t)cols * sizeof *c);
    }
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

/* act8 over 16 values. */
__attribute__((target("avx512f,avx2,fma"), always_inline)) static inline __m512 act16(const gemm_job *j, __m512 v) {
    switch (j->act_mode) {
    case ACT_CLAMP: return _mm512_min_ps(_mm512_max_ps(v, _mm512_set1_ps(j->lo)), _mm512_set1_ps(j->hi));
    case ACT_LEAKY: {
        __mmask16 ge = _mm512_cmp_ps_mask(v, _mm512_setzero_ps(), _CMP_GE_OQ);
        return _mm512_mask_blend_ps(ge, _mm512_mul_ps(v, _mm512_set1_ps(j->lo)), v);
    }
    case ACT_VM: return kiln__vm_apply16(j->vm_fn, v);
    default: return v;
    }
}

/* Finishes one row of up to 32 values of C (AVX-512; partial rows through masks). */
__attribute__((target("avx512f,avx2,fma"), always_inline)) static inline void store_row512(const gemm_job *j, __m512 v0, __m512 v1,
                                                                            float *c, int64_t i, int64_t col,
                                                                            int cols, bool first, bool last) {
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
        if (j->act_mode != ACT_NONE && j->act_mode != ACT_ROWS) {
            v0 = act16(j, v0);
            if (cols > 16) v1 = act16(j, v1);
        }
    }
    _mm512_mask_storeu_ps(c, m0, v0);
    _mm512_mask_storeu_ps(c + 16, m1, v1);
}

/* Calls fn(j, arg, dst, lane0, lanes) for each run of C's columns [col, col + cols) that lands in one
 * row of the output grid: lanes [lane0, lane0 + lanes) of the tile's row go to dst[0 .. lanes). */
typedef void (*grid_run_fn)(const gemm_job *j, void *arg, int64_t dst, int lane0, int lanes);
static inline void grid_runs(const gemm_job *j, int64_t col, int cols, grid_run_fn fn, void *arg) {
    int64_t wq = j->grid_wq, wo = j->grid_wo;
    for (int64_t oy = col / wq; oy * wq < col + cols; oy++) {
        int64_t a = KILN__MAX(col, oy * wq), b = KILN__MIN(col + cols, oy * wq + wo);
        if (a < b) fn(j, arg, oy * wo + a - oy * wq, (int)(a - col), (int)(b - a));
    }
}

/* A micro-kernel's runs (its 32 columns land in at most 32 rows of the grid), found once for all
 * its rows of C: vector h of a tile row goes to c + at[h] under mask[h] (0: no lanes there). */
typedef struct grid_run_list {
    struct {
        int64_t at[2];
        __mmask16 mask[2];
    } run[2 * NR];
    int n;
} grid_run_list;

/* One tile row through the runs (AVX-512): C's row is c, the residual's res. */
__attribute__((target("avx512f,avx2,fma"), always_inline)) static inline void grid_store512(
    const gemm_job *j, const grid_run_list *runs, __m512 v0, __m512 v1, float *c, const float *res, int64_t i,
    bool first, bool last) {
    for (int q = 0; q < runs->n; q++)
        for (int h = 0; h < 2; h++) {
            __mmask16 m = runs->run[q].mask[h];
            if (!m) continue;
            float *cq = c + runs->run[q].at[h];
            __m512 v = h ? v1 : v0;
            if (!first || j->load_c)
                v = _mm512_fmadd_ps(_mm512_set1_ps(first ? j->beta : 1.0f), _mm512_maskz_loadu_ps(m, cq), v);
            if (last) {
                if (j->bias) v = _mm512_add_ps(v, _mm512_set1_ps(j->bias[i]));
                if (res) v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(m, res + runs->run[q].at[h]));
                if (j->act_mode != ACT_NONE && j->act_mode != ACT_ROWS) v = act16(j, v);
            }
            _mm512_mask_storeu_ps(cq, m, v);
        }
}

/* Lanes [lane0, lane0 + lanes) of a tile row go to dst: vector h's share as a masked store at a
 * shift. */
static void grid_collect(const gemm_job *j, void *arg, int64_t dst, int lane0, int lanes) {
    (void)j;
    grid_run_list *l = arg;
    for (int h = 0; h < 2; h++) {
        int a = KILN__MAX(lane0, 16 * h), b = KILN__MIN(lane0 + lanes, 16 * h + 16);
        l->run[l->n].mask[h] = a < b ? (__mmask16)(((1u << (b - a)) - 1) << (a - 16 * h)) : 0;
        l->run[l->n].at[h] = dst - lane0 + 16 * h;
    }
    l->n++;
}

/* The activations not done in registers, over a grid tile's runs. */
static void grid_act_rows(const gemm_job *j, void *arg, int64_t dst, int lane0, int lanes) {
    (void)lane0;
    kiln__apply_act_f32(j->act, (float *)arg + dst, lanes);
}

/* The rows of C a micro-kernel stores (and of the residual it adds, on the last K block), 32 values
 * each: fetched before its sums, they would otherwise stall its stores (measured: a fifth of a
 * 1x1 convolution's time over 56x56 outputs went to the residual's loads). */
static inline void prefetch_tile(const gemm_job *j, int64_t i, int64_t col, int rows, bool last) {
    for (int r = 0; r < rows; r++) {
        const float *c = j->c + (i + r) * j->ldc + col;
        prefetch_l1(c);
        prefetch_l1(c + 16);
        if (last && j->res) {
            const float *res = j->res + (i + r) * j->ldr + col;
            prefetch_l1(res);
            prefetch_l1(res + 16);
        }
    }
}

/* The AVX-512 micro-kernel: up to (6 * panels) x (16 * halves) from `panels` consecutive 6-row
 * panels of A ([kc][6] each) and a B panel whose rows are ldpb apart (32 when packed), of whose
 * last panel only the first last_rows rows are computed. Two panels (12 rows) double the FMAs
 * per load of B; one serves the last rows. One half: the panel's first 16 columns only. */
__attribute__((target("avx512f,avx2,fma"), always_inline)) static inline void kernel_x32(
    const gemm_job *j, int64_t kc, const float *pa, const float *pb, int64_t ldpb, const int64_t *roff, int64_t i,
    int64_t col, int rows, int cols, bool first, bool last, const int panels, const int halves, const int last_rows) {
    __m512 c[2 * MR][2];
    for (int r = 0; r < panels * MR; r++) c[r][0] = c[r][1] = _mm512_setzero_ps();
    if (!(roff && j->grid_wq)) /* the tile's rows of C and the residual arrive while the sums run */
        prefetch_tile(j, i, col, rows, last);
#pragma GCC unroll 4
    for (int64_t p = 0; p < kc; p++) {
        const float *row = roff ? pb + roff[p] : pb + p * ldpb;
        __m512 b0 = _mm512_loadu_ps(row), b1 = halves == 2 ? _mm512_loadu_ps(row + 16) : b0;
        for (int q = 0; q < panels; q++)
            for (int r = 0; r < (q == panels - 1 ? last_rows : MR); r++) {
                __m512 a = _mm512_set1_ps(pa[q * kc * MR + p * MR + r]);
                c[q * MR + r][0] = _mm512_fmadd_ps(a, b0, c[q * MR + r][0]);
                if (halves == 2) c[q * MR + r][1] = _mm512_fmadd_ps(a, b1, c[q * MR + r][1]);
            }
    }
    if (roff && j->grid_wq) {
        grid_run_list runs; /* not zeroed: n runs are written before any is read */
        runs.n = 0;
        grid_runs(j, col, cols, grid_collect, &runs);
        for (int r = 0; r < rows; r++)
            grid_store512(j, &runs, c[r][0], c[r][1], j->c + (i + r) * j->ldc,
                          j->res ? j->res + (i + r) * j->ldr : NULL, i + r, first, last);
        return;
    }
    float *cp = j->c + i * j->ldc + col;
    for (int r = 0; r < rows; r++) store_row512(j, c[r][0], c[r][1], cp + r * j->ldc, i + r, col, cols, first, last);
}

/* A tile of 2 to 12 rows and up to 32 columns that is not a full 12 x 32 one: the rows are
 * computed rounded up to even, not to a whole 6-row panel, and a panel's last columns, 16 or
 * fewer, from the first half of its 32.
 * Rows: 128 (BERT's sequence, a layer of 128 maps) is 10 blocks of 12 and one of 8, whose 12
 * rows' worth of FMAs were 3% of the layer's (128 x 768 x 768, weights from memory, 1 thread,
 * the two ways alternating in one process: 1.64 -> 1.56 ms; 128 x 3072 x 768 6.36 -> 6.13; on
 * the GPU machine's Xeon 1-3% faster).
 * Columns: planes of 196 positions (14x14) end in 4 columns, of 784 in 16; with the whole
 * panel's FMAs the 4 cost as much as 32 (ResNet-50's 256->1024 on 14x14, 6 layers, inside the
 * network: 0.81 -> 0.76 ms at 1 thread, 0.43 -> 0.40 at 2). */
__attribute__((target("avx512f,avx2,fma"), always_inline)) static inline void kernel_part_x(
    const gemm_job *j, int64_t kc, const float *pa, const float *pb, int64_t ldpb, const int64_t *roff, int64_t i,
    int64_t col, int rows, int cols, bool first, bool last) {
#define KERNEL_PART(panels, last_rows)                                                                               \
    (cols <= NR ? kernel_x32(j, kc, pa, pb, ldpb, roff, i, col, rows, cols, first, last, panels, 1, last_rows)       \
                : kernel_x32(j, kc, pa, pb, ldpb, roff, i, col, rows, cols, first, last, panels, 2, last_rows))
    switch ((rows + 1) / 2) {
    case 1: KERNEL_PART(1, 2); break;
    case 2: KERNEL_PART(1, 4); break;
    case 3: KERNEL_PART(1, 6); break;
    case 4: KERNEL_PART(2, 2); break;
    case 5: KERNEL_PART(2, 4); break;
    default: KERNEL_PART(2, 6); break;
    }
#undef KERNEL_PART
}

__attribute__((target("avx512f,avx2,fma"))) static void kernel_part(const gemm_job *j, int64_t kc, const float *pa,
                                                                    const float *pb, int64_t ldpb, int64_t i,
                                                                    int64_t col, int rows, int cols, bool first,
                                                                    bool last) {
    kernel_part_x(j, kc, pa, pb, ldpb, NULL, i, col, rows, cols, first, last);
}

/* The same for any tile (up to 12 x 32) with row p of the B panel at pb + roff[p] (a direct
 * convolution: MobileNetV2's stem, 32 maps as 12 + 12 + 8 rows, inside the network at 1 thread
 * 0.60 -> 0.55 ms). */
__attribute__((target("avx512f,avx2,fma"))) static void kernel_part_rows(const gemm_job *j, int64_t kc,
                                                                         const float *pa, const float *pb,
                                                                         const int64_t *roff, int64_t i, int64_t col,
                                                                         int rows, int cols, bool first, bool last) {
    kernel_part_x(j, kc, pa, pb, 0, roff, i, col, rows, cols, first, last);
}

/* The epilogue of a full 12 x 32 tile (at most a clamp), its accumulators in registers. */
__attribute__((target("avx512f,avx2,fma"), always_inline)) static inline void store_12x32(const gemm_job *j,
                                                                                         __m512 c[2 * MR][2],
                                                                                         int64_t i, int64_t col,
                                                                                         bool first, bool last) {
    bool read_c = !first || j->load_c, clamp = last && j->act_mode == ACT_CLAMP;
    __m512 beta = _mm512_set1_ps(first ? j->beta : 1.0f), lo = _mm512_set1_ps(j->lo), hi = _mm512_set1_ps(j->hi);
    int64_t ldc = j->ldc, ldr = j->ldr;
    float *cp = j->c + i * ldc + col;
    const float *rp = last && j->res ? j->res + i * ldr + col : NULL, *bias = last && j->bias ? j->bias + i : NULL;
#pragma GCC unroll 12
    for (int r = 0; r < 2 * MR; r++) {
        __m512 v0 = c[r][0], v1 = c[r][1];
        if (read_c) {
            v0 = _mm512_fmadd_ps(beta, _mm512_loadu_ps(cp + r * ldc), v0);
            v1 = _mm512_fmadd_ps(beta, _mm512_loadu_ps(cp + r * ldc + 16), v1);
        }
        if (bias) {
            __m512 b = _mm512_set1_ps(bias[r]);
            v0 = _mm512_add_ps(v0, b);
            v1 = _mm512_add_ps(v1, b);
        }
        if (rp) {
            v0 = _mm512_add_ps(v0, _mm512_loadu_ps(rp + r * ldr));
            v1 = _mm512_add_ps(v1, _mm512_loadu_ps(rp + r * ldr + 16));
        }
        if (clamp) {
            v0 = _mm512_min_ps(_mm512_max_ps(v0, lo), hi);
            v1 = _mm512_min_ps(_mm512_max_ps(v1, lo), hi);
        }
        _mm512_storeu_ps(cp + r * ldc, v0);
        _mm512_storeu_ps(cp + r * ldc + 16, v1);
    }
}

/* One step of a 12 x 32 tile's sum: row p of the B panel (rows ldpb apart) times K value p of
 * two 6-row panels of A. */
__attribute__((target("avx512f,avx2,fma"), always_inline)) static inline void fma_step_12x32(
    __m512 c[2 * MR][2], const float *pa, const float *pb, int64_t ldpb, int64_t kc, int64_t p) {
    const float *row = pb + p * ldpb;
    __m512 b0 = _mm512_loadu_ps(row), b1 = _mm512_loadu_ps(row + 16);
    for (int q = 0; q < 2; q++)
        for (int r = 0; r < MR; r++) {
            __m512 a = _mm512_set1_ps(pa[q * kc * MR + p * MR + r]);
            c[q * MR + r][0] = _mm512_fmadd_ps(a, b0, c[q * MR + r][0]);
            c[q * MR + r][1] = _mm512_fmadd_ps(a, b1, c[q * MR + r][1]);
        }
}

/* Full 12 x 32 tiles of C from a B panel whose rows are ldpb apart, when the last K block's
 * epilogue is at most a clamp: the accumulators stay in registers while C is read back (after
 * the first K block) and the epilogue runs, row by row as they are stored. The generic kernel
 * keeps them in memory for its loop over a variable number of rows; with sums of 64 that cost
 * 7-9% of the time. The caller prefetches the tile's rows of C and the residual. */
__attribute__((target("avx512f,avx2,fma"))) static void kernel_12x32_full(const gemm_job *j, int64_t kc,
                                                                          const float *pa, const float *pb,
                                                                          int64_t ldpb, int64_t i, int64_t col,
                                                                          bool first, bool last) {
    __m512 c[2 * MR][2];
    for (int r = 0; r < 2 * MR; r++) c[r][0] = c[r][1] = _mm512_setzero_ps();
#pragma GCC unroll 4
    for (int64_t p = 0; p < kc; p++) fma_step_12x32(c, pa, pb, ldpb, kc, p);
    store_12x32(j, c, i, col, first, last);
}

/* kernel_12x32_full for a B panel read in place (rows ldpb apart) over a sum of at least
 * SPREAD_MIN_K, which also prefetches rows [r0, r1) of the next panel (at next, rows ldpb apart)
 * into L2, a few every PF_CHUNK steps. Issued at once, as prefetch_rows does, a panel's share of
 * rows (two lines each) fills the core's line fill buffers, and the loads of B the FMAs wait on
 * queue behind them: a 1x1 layer 144->24 on 56x56 with its input in L3, 1 thread, 0.20-0.22 ms
 * with the rows prefetched at the start of each call, 0.15-0.17 spread (0.135 with the input in
 * L2). Short sums keep the burst: their calls are too short to spread over, and the bookkeeping
 * in the loop cost sums of 16 and 27 a third of their time. */
#define SPREAD_MIN_K 64
#define SPREAD_MIN_B (1 << 18) /* floats: a B this large (1 MiB) comes from L3; from L2, spreading
                                * cost 7-10% (32x192x784) */
#define PF_CHUNK 8
__attribute__((target("avx512f,avx2,fma"))) static void kernel_12x32_spread(const gemm_job *j, int64_t kc,
                                                                            const float *pa, const float *pb,
                                                                            int64_t ldpb, int64_t i, int64_t col,
                                                                            bool first, bool last, const float *next,
                                                                            int64_t r0, int64_t r1) {
    __m512 c[2 * MR][2];
    for (int r = 0; r < 2 * MR; r++) c[r][0] = c[r][1] = _mm512_setzero_ps();
    const int64_t chunks = (kc + PF_CHUNK - 1) / PF_CHUNK, per_chunk = (r1 - r0 + chunks - 1) / chunks;
    int64_t pf_row = r0, p = 0;
    for (int64_t ci = 0; ci < chunks; ci++) {
        for (int64_t end = KILN__MIN(r1, pf_row + per_chunk); pf_row < end; pf_row++) {
            prefetch_l2(next + pf_row * ldpb);
            prefetch_l2(next + pf_row * ldpb + 16);
        }
#pragma GCC unroll 8
        for (const int64_t p1 = KILN__MIN(kc, p + PF_CHUNK); p < p1; p++) fma_step_12x32(c, pa, pb, ldpb, kc, p);
    }
    store_12x32(j, c, i, col, first, last);
}

/* One row of C from a B panel whose rows are ldpb apart. In a GEMV (a linear layer on one
 * vector) B streams from memory once and is the whole cost. The 6-row kernel issues 12 FMAs and
 * 6 broadcasts per row of B, 10 of the FMAs on A's zero padding; this loop issues 2, so far more
 * of B's loads fit in flight at once (2048 -> 1000 with its weights cold, 1 thread: 0.55-0.68 ms
 * against 0.85-1.05; inside ResNet-50 0.61 against 0.96; a software prefetch ahead of the loads
 * added nothing). Two accumulators per half keep the FMAs' latency off the loads' path. */
__attribute__((target("avx512f,avx2,fma"))) static void kernel_1x32(const gemm_job *j, int64_t kc, const float *pa,
                                                                    const float *pb, int64_t ldpb, int64_t i,
                                                                    int64_t col, int cols, bool first, bool last) {
    __m512 c0 = _mm512_setzero_ps(), c1 = c0, d0 = c0, d1 = c0;
    int64_t p = 0;
    for (; p + 2 <= kc; p += 2) {
        const float *row = pb + p * ldpb;
        __m512 a0 = _mm512_set1_ps(pa[p * MR]), a1 = _mm512_set1_ps(pa[(p + 1) * MR]);
        c0 = _mm512_fmadd_ps(a0, _mm512_loadu_ps(row), c0);
        c1 = _mm512_fmadd_ps(a0, _mm512_loadu_ps(row + NR), c1);
        d0 = _mm512_fmadd_ps(a1, _mm512_loadu_ps(row + ldpb), d0);
        d1 = _mm512_fmadd_ps(a1, _mm512_loadu_ps(row + ldpb + NR), d1);
    }
    if (p < kc) {
        __m512 a0 = _mm512_set1_ps(pa[p * MR]);
        c0 = _mm512_fmadd_ps(a0, _mm512_loadu_ps(pb + p * ldpb), c0);
        c1 = _mm512_fmadd_ps(a0, _mm512_loadu_ps(pb + p * ldpb + NR), c1);
    }
    store_row512(j, _mm512_add_ps(c0, d0), _mm512_add_ps(c1, d1), j->c + i * j->ldc + col, i, col, cols, first,
                 last);
}

/* Data the next calls need streams from memory while the current calls run: prefetched into L2
 * in equal slices, one per call (the next B panel while every row block reuses the current one
 * from L1; the next row block's A while the current one sweeps the columns). */
static inline void prefetch_slice(const float *panel, int64_t floats, int64_t slice, int64_t slices) {
    int64_t lines = (floats + 15) / 16, per = (lines + slices - 1) / slices;
    for (int64_t l = slice * per, end = KILN__MIN(lines, l + per); l < end; l++)
        prefetch_l2(panel + l * 16);
}

/* The same for a panel read in place: kc rows of 32 floats, ld apart, or at panel + roff[r]. */
static inline void prefetch_rows(const float *panel, int64_t ld, const int64_t *roff, int64_t kc, int64_t slice,
                                 int64_t slices) {
    int64_t per = (kc + slices - 1) / slices;
    for (int64_t r = slice * per, end = KILN__MIN(kc, r + per); r < end; r++) {
        const float *row = roff ? panel + roff[r] : panel + r * ld;
        prefetch_l2(row);
        prefetch_l2(row + 16);
    }
}

/* One tile of C: rows [i0, i0 + rows), columns [j0, j0 + cols). */
__attribute__((target("avx2,fma"))) static void run_tile(const gemm_job *j, int64_t i0, int64_t rows, int64_t j0,
                                                         int64_t cols, float *pa, float *pb) {
    for (int64_t p0 = 0; p0 < j->k; p0 += j->kc) {
        int64_t kc = KILN__MIN(j->kc, j->k - p0);
        bool first = p0 == 0, last = p0 + kc >= j->k;
        const float *pbk = pb;
        if (j->bpack)
            pbk = j->bpack + p0 * j->npad + j0 * kc;
        else if (j->pack_b_fn)
            j->pack_b_fn(j->pack_b_arg, p0, kc, j0, cols, j->nr, pb);
        else if (!j->b_direct)
            pack_b(j, p0, kc, j0, cols, pb);
        const float *pk = pa;
        if (j->apack)
            pk = j->apack + p0 * j->mpad + i0 * kc;
        else
            pack_a(j, i0, rows, p0, kc, pa);
        /* kernel_12x32_full applies the last block's epilogue when it is at most a clamp. */
        bool full_epilogue = !last || j->act_mode == ACT_NONE || j->act_mode == ACT_CLAMP;
        if (j->nr == 2 * NR && first && last && !j->b_direct) {
            /* One K block of packed B: each 12-row block sweeps the tile's columns, so C and the
             * residual are written and read as a few long runs rather than a panel's width of
             * every row in turn (B's block is then read from L2 instead of L1). */
            int64_t panels_n = (cols + j->nr - 1) / j->nr;
            for (int64_t ir = 0; ir < rows; ir += 2 * MR) {
                int r_n = (int)KILN__MIN(2 * MR, rows - ir);
                /* A packed ahead (a layer's weights) comes from memory: the next row block's share
                 * streams into L2 in slices, one per call, while this block sweeps (ResNet-50's
                 * expansions inside the network, 1 and 2 threads: 1-4.6% faster each). */
                int64_t a_next = j->apack ? KILN__MIN(2 * MR, rows - ir - 2 * MR) * kc : 0;
                for (int64_t jr = 0; jr < cols; jr += j->nr) {
                    int c_n = (int)KILN__MIN(j->nr, cols - jr);
                    if (a_next > 0) prefetch_slice(pk + (ir + 2 * MR) * kc, a_next, jr / j->nr, panels_n);
                    if (jr + j->nr < cols) prefetch_tile(j, i0 + ir, j0 + jr + j->nr, r_n, true); /* one call ahead */
                    if (r_n == 2 * MR && c_n == 2 * NR && full_epilogue)
                        kernel_12x32_full(j, kc, pk + ir * kc, pbk + jr * kc, 2 * NR, i0 + ir, j0 + jr, true, true);
                    else if (r_n == 1)
                        kernel_1x32(j, kc, pk + ir * kc, pbk + jr * kc, 2 * NR, i0 + ir, j0 + jr, c_n, true, true);
                    else
                        kernel_part(j, kc, pk + ir * kc, pbk + jr * kc, 2 * NR, i0 + ir, j0 + jr, r_n, c_n, true, true);
                }
            }
            continue;
        }
        if (j->nr == NR && first && last) {
            /* One K block: as with AVX-512 above, each row block sweeps the tile's columns, so C
             * is written as a few long runs (MobileNetV2 on the AMD EPYC without AVX-512, the 10th
             * percentile of its latency: 1 thread 12.36 -> 11.88 ms, 2 threads 8.19 -> 7.38). */
            for (int64_t ir = 0; ir < rows; ir += MR)
                for (int64_t jr = 0; jr < cols; jr += j->nr)
                    kernel_6x16(j, kc, pk + ir * kc, pbk + jr * kc, i0 + ir, j0 + jr,
                                (int)KILN__MIN(MR, rows - ir), (int)KILN__MIN(j->nr, cols - jr), true, true);
            continue;
        }
        for (int64_t jr = 0; jr < cols; jr += j->nr) {
            int c_n = (int)KILN__MIN(j->nr, cols - jr);
            if (j->nr == NR) {
                for (int64_t ir = 0; ir < rows; ir += MR)
                    kernel_6x16(j, kc, pk + ir * kc, pbk + jr * kc, i0 + ir, j0 + jr,
                                (int)KILN__MIN(MR, rows - ir), c_n, first, last);
                continue;
            }
            /* Full panels of a row-major B are read in place; the last, narrower one is packed. */
            const float *panel = pbk + jr * kc;
            int64_t ldpb = 2 * NR;
            const int64_t *roff = j->boff ? j->boff + p0 : NULL; /* full panels: the rows are readable */
            if (roff) {
                panel = j->b + j0 + jr;
            } else if (j->b_direct) {
                if (c_n == 2 * NR) {
                    panel = j->b + p0 * j->ldb + j0 + jr;
                    ldpb = j->ldb;
                } else {
                    pack_b(j, p0, kc, j0 + jr, c_n, pb);
                    panel = pb;
                }
            }
            bool more = jr + j->nr < cols;
            /* The panel after this one is prefetched while this one is in use: the next of this K
             * block, or after the last one, the first of the tile's next block of packed B, which
             * lies a whole block further on, where the hardware does not run on into it (BERT-base,
             * weights streamed from memory, 2 threads: its matmuls 5% faster in one device run,
             * within the host's noise in others).
             * A single row block (a GEMV) leaves the hardware to stream B: prefetching a whole
             * panel at once floods the queue (a linear layer 2048->1000 on one row: 0.44 ms with,
             * 0.30 without, 1 thread). */
            const float *next = NULL;
            int64_t next_floats = kc * j->nr;
            if (!j->b_direct && rows > 2 * MR && more) {
                next = pbk + (jr + j->nr) * kc;
            } else if (j->bpack && rows > 2 * MR && !last) {
                int64_t next_kc = KILN__MIN(j->kc, j->k - p0 - kc);
                next = j->bpack + (p0 + kc) * j->npad + j0 * next_kc;
                next_floats = next_kc * j->nr;
            }
            const float *next_direct = !j->b_direct || !more ? NULL
                                       : roff                 ? panel + j->nr
                                                              : j->b + p0 * j->ldb + j0 + jr + j->nr;
            int64_t calls = (rows + 2 * MR - 1) / (2 * MR), call = 0; /* 12-row calls, the last maybe 6 */
            for (int64_t ir = 0; ir < rows; ir += 2 * MR, call++) {
                if (next) prefetch_slice(next, next_floats, call, calls);
                int r_n = (int)KILN__MIN(2 * MR, rows - ir);
                bool full = !roff && r_n == 2 * MR && c_n == 2 * NR && full_epilogue;
                if (full && next_direct && kc >= SPREAD_MIN_K && j->k * j->n >= SPREAD_MIN_B) {
                    int64_t per = (kc + calls - 1) / calls;
                    prefetch_tile(j, i0 + ir, j0 + jr, r_n, last);
                    kernel_12x32_spread(j, kc, pk + ir * kc, panel, ldpb, i0 + ir, j0 + jr, first, last,
                                        next_direct, KILN__MIN(kc, call * per), KILN__MIN(kc, call * per + per));
                    continue;
                }
                if (next_direct) prefetch_rows(next_direct, j->ldb, roff, kc, call, calls);
                if (full) {
                    prefetch_tile(j, i0 + ir, j0 + jr, r_n, last);
                    kernel_12x32_full(j, kc, pk + ir * kc, panel, ldpb, i0 + ir, j0 + jr, first, last);
                } else if (roff)
                    kernel_part_rows(j, kc, pk + ir * kc, panel, roff, i0 + ir, j0 + jr, r_n, c_n, first, last);
                else if (r_n == 1)
                    kernel_1x32(j, kc, pk + ir * kc, panel, ldpb, i0 + ir, j0 + jr, c_n, first, last);
                else
                    kernel_part(j, kc, pk + ir * kc, panel, ldpb, i0 + ir, j0 + jr, r_n, c_n, first, last);
            }
        }
    }
    if (j->act_mode == ACT_ROWS && j->grid_wq)
        for (int64_t r = 0; r < rows; r++) grid_runs(j, j0, (int)cols, grid_act_rows, j->c + (i0 + r) * j->ldc);
    else if (j->act_mode == ACT_ROWS)
        for (int64_t r = 0; r < rows; r++) kiln__apply_act_f32(j->act, j->c + (i0 + r) * j->ldc + j0, cols);
}

/* Items [begin, end) of the split by columns (kiln__parallel_ranges, one row tile): item i is its
 * share of the 32-column panels. */
static void column_range(void *arg, int64_t begin, int64_t end) {
    gemm_job *j = arg;
    int64_t s = KILN__MIN(kiln__pool_thread(), j->work_slots - 1), units = (j->n + j->nr - 1) / j->nr;
    float *pa = j->work + s * j->work_per_slot, *pb = j->apack ? pa : pa + j->mc * j->kc;
    for (int64_t item = begin; item < end; item++) {
        int64_t c0 = item * units / j->slots * j->nr, c1 = KILN__MIN(j->n, (item + 1) * units / j->slots * j->nr);
        for (int64_t j0 = c0; j0 < c1; j0 += j->nc) run_tile(j, 0, j->m, j0, KILN__MIN(j->nc, c1 - j0), pa, pb);
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

/* The longest sum kept whole for a B packed ahead (KC_WHOLE_PACKED_B); read once. */
static int64_t packed_b_whole(void) {
    static atomic_llong whole = -1;
    long long w = atomic_load_explicit(&whole, memory_order_relaxed);
    if (w < 0) {
        long l2 = sysconf(_SC_LEVEL2_CACHE_SIZE);
        w = l2 > 0 && (size_t)l2 < (size_t)(MC + KC) * NC * sizeof(float) ? KC_WHOLE_PACKED_B : KC_WHOLE;
        atomic_store_explicit(&whole, w, memory_order_relaxed);
    }
    return w;
}

/* K is cut into equal blocks of at most KC (or kept whole up to `whole`); packed A and B follow
 * the same cut. */
static int64_t k_block(int64_t k, int64_t whole) {
    if (k <= whole) return k;
    int64_t kblocks = (k + KC - 1) / KC;
    return (k + kblocks - 1) / kblocks;
}

int64_t kiln__sgemm_packed_a_floats(int64_t m, int64_t k) { return (m + MR - 1) / MR * MR * k; }

void kiln__sgemm_pack_a(int64_t m, int64_t k, const float *a, int64_t lda, float *dst) {
    if (m <= 0 || k <= 0) return;
    gemm_job j = {.a = a, .lda = lda, .alpha = 1.0f};
    int64_t kc = k_block(k, KC_WHOLE), mpad = (m + MR - 1) / MR * MR;
    for (int64_t p0 = 0; p0 < k; p0 += kc) pack_a(&j, 0, m, p0, KILN__MIN(kc, k - p0), dst + p0 * mpad);
}

/* Sized for the wider (AVX-512) panels, so the size does not depend on the level. */
int64_t kiln__sgemm_packed_b_floats(int64_t k, int64_t n) { return (n + 2 * NR - 1) / (2 * NR) * 2 * NR * k; }

void kiln__sgemm_pack_b(bool trans_b, int64_t k, int64_t n, const float *b, int64_t ldb, float *dst) {
    if (k <= 0 || n <= 0 || kiln__cpu_simd() == KILN__SIMD_NONE) return;
    bool avx512 = kiln__cpu_simd() == KILN__SIMD_AVX512;
    gemm_job j = {.tb = trans_b, .b = b, .ldb = ldb, .nr = avx512 ? 2 * NR : NR};
    int64_t kc = k_block(k, avx512 ? packed_b_whole() : KC_WHOLE), npad = (n + j.nr - 1) / j.nr * j.nr;
    for (int64_t p0 = 0; p0 < k; p0 += kc) pack_b(&j, p0, KILN__MIN(kc, k - p0), 0, n, dst + p0 * npad);
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

kiln_status kiln__sgemm_packed_src(kiln__pool *pool, const kiln__alloc *alloc, int64_t m, int64_t n, int64_t k,
                                   const float *packed_a, kiln__gemm_pack_b_fn pack_b_fn, const void *arg, float beta,
                                   float *c, int64_t ldc, const kiln__gemm_epilogue *ep) {
    if (kiln__cpu_simd() == KILN__SIMD_NONE)
        return kiln__error(KILN_INTERNAL_ERROR, "GEMM with a packing callback needs AVX2");
    gemm_job j = {.load_c = beta != 0.0f, .m = m, .n = n, .k = k, .ldc = ldc, .alpha = 1.0f, .beta = beta, .c = c,
                  .apack = packed_a, .mpad = (m + MR - 1) / MR * MR, .pack_b_fn = pack_b_fn, .pack_b_arg = arg};
    return sgemm_run(pool, alloc, &j, ep);
}

kiln_status kiln__sgemm_packed_b(kiln__pool *pool, const kiln__alloc *alloc, bool trans_a, bool trans_b, int64_t m,
                                 int64_t n, int64_t k, float alpha, const float *a, int64_t lda, const float *b,
                                 int64_t ldb, const float *packed_b, float beta, float *c, int64_t ldc,
                                 const kiln__gemm_epilogue *ep) {
    gemm_job j = {.ta = trans_a, .tb = trans_b, .load_c = beta != 0.0f, .m = m, .n = n, .k = k, .lda = lda,
                  .ldb = ldb, .ldc = ldc, .alpha = alpha, .beta = beta, .a = a, .b = b, .c = c, .bpack = packed_b};
    return sgemm_run(pool, alloc, &j, ep);
}

kiln_status kiln__sgemm_packed_rows(kiln__pool *pool, const kiln__alloc *alloc, int64_t m, int64_t n, int64_t k,
                                    const float *packed_a, const float *b, const int64_t *row_offsets, float *c,
                                    int64_t ldc, int64_t grid_wq, int64_t grid_wo, const kiln__gemm_epilogue *ep) {
    if (kiln__cpu_simd() != KILN__SIMD_AVX512)
        return kiln__error(KILN_INTERNAL_ERROR, "GEMM with B rows by offset needs AVX-512");
    if (grid_wq < 0 || grid_wo < 1 || grid_wo > grid_wq)
        return kiln__error(KILN_INTERNAL_ERROR, "GEMM output grid: row %lld of %lld columns", (long long)grid_wo,
                           (long long)grid_wq);
    gemm_job j = {.m = m, .n = n, .k = k, .ldc = ldc, .alpha = 1.0f, .b = b, .c = c, .apack = packed_a,
                  .mpad = (m + MR - 1) / MR * MR, .boff = row_offsets, .grid_wq = grid_wq == grid_wo ? 0 : grid_wq,
                  .grid_wo = grid_wo};
    return sgemm_run(pool, alloc, &j, ep);
}

static void set_act(gemm_job *j, const kiln__gemm_epilogue *ep) {
    j->act = ep && ep->act && ep->act->kind >= 0 ? ep->act : NULL;
    j->act_mode = ACT_NONE;
    if (!j->act) return;
    j->act_mode = ACT_VM;
    switch (j->act->kind) {
    case KILN_ACT_RELU:
        j->act_mode = ACT_CLAMP;
        j->lo = 0.0f;
        j->hi = __builtin_inff();
        break;
    case KILN_ACT_CLIP:
        j->act_mode = ACT_CLAMP;
        j->lo = j->act->alpha;
        j->hi = j->act->beta;
        break;
    case KILN_ACT_LEAKY_RELU:
        j->act_mode = ACT_LEAKY;
        j->lo = j->act->alpha;
        break;
    case KILN_ACT_SIGMOID: j->vm_fn = KILN__VM_SIGMOID; break;
    case KILN_ACT_SILU: j->vm_fn = KILN__VM_SILU; break;
    case KILN_ACT_TANH: j->vm_fn = KILN__VM_TANH; break;
    case KILN_ACT_GELU_ERF: j->vm_fn = KILN__VM_GELU_ERF; break;
    case KILN_ACT_GELU_TANH: j->vm_fn = KILN__VM_GELU_TANH; break;
    default: j->act_mode = ACT_ROWS; break;
    }
}

/* Pieces (K block, row chunk) of A packed whole before the tiles. */
static void prepack_range(void *arg, int64_t begin, int64_t end) {
    const gemm_job *j = arg;
    int64_t chunks = (j->m + j->mc - 1) / j->mc;
    float *dst = (float *)j->apack;
    for (int64_t t = begin; t < end; t++) {
        int64_t p0 = t / chunks * j->kc, i0 = t % chunks * j->mc, kc = KILN__MIN(j->kc, j->k - p0);
        pack_a(j, i0, KILN__MIN(j->mc, j->m - i0), p0, kc, dst + p0 * j->mpad + i0 * kc); /* run_tile's layout */
    }
}

/* Pieces (K block, pack_cols columns) of B packed whole before the tiles, in kiln__sgemm_pack_b's
 * layout (panel after panel within a K block). */
static void prepack_b_range(void *arg, int64_t begin, int64_t end) {
    const gemm_job *j = arg;
    float *dst = (float *)j->bpack;
    int64_t chunks = (j->n + j->pack_cols - 1) / j->pack_cols;
    for (int64_t t = begin; t < end; t++) {
        int64_t p0 = t / chunks * j->kc, j0 = t % chunks * j->pack_cols, kc = KILN__MIN(j->kc, j->k - p0);
        int64_t cols = KILN__MIN(j->pack_cols, j->n - j0);
        float *d = dst + p0 * j->npad + j0 * kc;
        if (j->pack_b_fn)
            j->pack_b_fn(j->pack_b_arg, p0, kc, j0, cols, j->nr, d);
        else
            pack_b(j, p0, kc, j0, cols, d);
    }
}

static kiln_status sgemm_run(kiln__pool *pool, const kiln__alloc *alloc, gemm_job *j, const kiln__gemm_epilogue *ep) {
    int64_t m = j->m, n = j->n, k = j->k;
    if (m <= 0 || n <= 0) return KILN_OK;
    if (ep) {
        j->bias = ep->bias;
        j->res = ep->res;
        j->ldr = ep->ldr;
    }
    /* The residual in C itself (a convolution written over its residual, kiln__cpu_conv_inplace_ok):
     * the first K block reads it as C, before any block has stored over it. */
    if (j->res && j->res == j->c && j->ldr == j->ldc) {
        j->beta = j->load_c ? j->beta + 1.0f : 1.0f;
        j->load_c = true;
        j->res = NULL;
    }
    set_act(j, ep);
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
    j->kc = k_block(k, j->bpack && simd == KILN__SIMD_AVX512 ? packed_b_whole() : KC_WHOLE);
    j->mc = KILN__MIN(MC, (m + MR - 1) / MR * MR);
    j->nr = simd == KILN__SIMD_AVX512 ? 2 * NR : NR;
    j->nc = KILN__MIN(NC, (n + j->nr - 1) / j->nr * j->nr);
    j->npad = (n + j->nr - 1) / j->nr * j->nr;
    /* Few rows of A: packing B would cost about as much as the products it feeds. */
    j->b_direct = j->boff || (simd == KILN__SIMD_AVX512 && !j->bpack && !j->pack_b_fn && !j->tb && m <= DIRECT_B_MAX_M);
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
    /* Tiles of equal size (to MR rows and nr columns): with MC = 144, 1024 rows were 7 tiles of 144
     * and one of 16, and two threads took 576 and 448 of them. */
    int64_t tiles_m = (m + j->mc - 1) / j->mc;
    j->mc = ((m + tiles_m - 1) / tiles_m + MR - 1) / MR * MR;
    j->tiles_n = (n + j->nc - 1) / j->nc;
    j->nc = ((n + j->tiles_n - 1) / j->tiles_n + j->nr - 1) / j->nr * j->nr;
    j->tiles_n = (n + j->nc - 1) / j->nc;
    j->tiles = ((m + j->mc - 1) / j->mc) * j->tiles_n;
    /* Several tiles across would each pack the same rows of A: pack them once instead. */
    float *prepacked = NULL;
    if (!j->apack && j->tiles_n > 1 && kiln__sgemm_packed_a_floats(m, k) <= PREPACK_A_MAX) {
        j->mpad = (m + MR - 1) / MR * MR;
        prepacked = kiln__malloc_aligned(alloc, (size_t)kiln__sgemm_packed_a_floats(m, k) * sizeof(float), 64);
        if (!prepacked) return KILN_OUT_OF_MEMORY;
        j->apack = prepacked;
        int64_t pieces = (k + j->kc - 1) / j->kc * ((m + j->mc - 1) / j->mc);
        kiln__parallel_for(threads > 1 && pieces > 1 ? pool : NULL, pieces, 1, prepack_range, j);
    }
    /* Several tiles down would each pack the same columns of B: the same. */
    float *prepacked_b = NULL;
    if (!j->bpack && !j->b_direct && (m + j->mc - 1) / j->mc > 1 && kiln__sgemm_packed_b_floats(k, n) <= PREPACK_B_MAX) {
        prepacked_b = kiln__malloc_aligned(alloc, (size_t)kiln__sgemm_packed_b_floats(k, n) * sizeof(float), 64);
        if (!prepacked_b) {
            kiln__free(alloc, prepacked);
            return KILN_OUT_OF_MEMORY;
        }
        j->bpack = prepacked_b;
        /* By tile columns; by fewer panels where that leaves threads idle (one K block, one tile
         * across: the whole of B packed by one thread while the others wait). */
        int64_t kblocks = (k + j->kc - 1) / j->kc;
        j->pack_cols = j->nc;
        if (kblocks * j->tiles_n < 2 * threads)
            j->pack_cols = KILN__MAX(j->nr, ((n + 2 * threads - 1) / (2 * threads) + j->nr - 1) / j->nr * j->nr);
        int64_t pieces = kblocks * ((n + j->pack_cols - 1) / j->pack_cols);
        kiln__parallel_for(threads > 1 && pieces > 1 ? pool : NULL, pieces, 1, prepack_b_range, j);
    }
    /* One row tile over many columns: each thread takes its own run of columns (the positions of a
     * 1x1 layer), so that in a chain of layers split this way a thread reads what its own core
     * wrote; tiles taken in turn scatter every layer's positions over the cores. MobileNetV2's
     * layers on 112x112 and 56x56, 2 threads (per-layer medians, the two ways alternating in one
     * process): 32->16 0.124 -> 0.111 ms, 16->96 0.242 -> 0.226, 24->144 0.133 -> 0.121; network
     * 1.7% faster. With several row tiles (ResNet-50's expansions) a thread's columns meet every
     * row tile's A, and the split measured 4-8% slower there. */
    int64_t units = (n + j->nr - 1) / j->nr;
    bool by_columns = threads > 1 && units >= COLUMN_ITEMS_PER_THREAD * threads && m <= j->mc;
    int64_t slots = by_columns ? threads : KILN__MIN(threads, j->tiles);
    /* Per slot: an mc x kc block of A and a kc x nc block of B unless packed already (or B read by
     * row offsets); + 16 keeps each slot's start 64-byte aligned. */
    j->work_per_slot = ((j->apack ? 0 : j->mc) + (j->bpack || j->boff ? 0 : j->nc)) * j->kc + 16;
    j->work_per_slot -= j->work_per_slot % 16;
    size_t bytes;
    if (!kiln__mul_size((size_t)(slots * j->work_per_slot), sizeof(float), &bytes)) {
        kiln__free(alloc, prepacked);
        kiln__free(alloc, prepacked_b);
        return kiln__error(KILN_OUT_OF_MEMORY, "GEMM packing buffer size overflows");
    }
    j->work = kiln__malloc_aligned(alloc, bytes, 64);
    if (!j->work) {
        kiln__free(alloc, prepacked);
        kiln__free(alloc, prepacked_b);
        return KILN_OUT_OF_MEMORY;
    }
    atomic_init(&j->next, 0);
    j->work_slots = slots;
    if (by_columns) {
        j->slots = COLUMN_ITEMS_PER_THREAD * threads;
        kiln__parallel_ranges(pool, j->slots, column_range, j);
    } else if (slots > 1)
        kiln__parallel_for(pool, slots, 1, slot_range, j);
    else
        slot_range(j, 0, 1);
    kiln__free(alloc, j->work);
    kiln__free(alloc, prepacked);
    kiln__free(alloc, prepacked_b);
    return KILN_OK;
}

/* ---------------------------------------------------------------- channel-vector GEMM */

/* Output maps on the vector side (AVX-512): A's rows in panels of CV_MR ([k][32] each), B's
 * columns (output positions) broadcast one at a time, up to CV_NB of them per call, each read in
 * place. No lanes are wasted on planes of 49 or 196 positions and B is never packed; the
 * accumulators of a block are transposed in registers to store C's rows. K is not blocked: a
 * panel of A stays in L2 while its positions' B rows stream through L1. */
#define CV_MR 32
#define CV_NB 14          /* 28 accumulators */
#define CV_A_TILE (1 << 17) /* floats of A a tile keeps in L2: its panels are reused by each block */
#define CV_MIN_STATIC_BLOCKS 2 /* blocks per thread at least, for the split by positions */
#define CV_STATIC_BLOCKS_MAX_A (1 << 18) /* floats of A (1 MiB) up to which the split is by positions */
#define CV_STATIC_BLOCKS_MAX_MAPS 2       /* ... for up to this many times as many maps as positions */

/* One block: nb consecutive positions of C, of one output row or of `rows` whole rows. */
typedef struct cv_block {
    int64_t q0;   /* its first column of C */
    int64_t b0;   /* its first column of B */
    int nb;
    int rows;     /* whole rows of wo positions (1: part of one row) */
} cv_block;

/* Rows narrower than CV_NB / 2 are taken CV_NB / wo at a time (7x7 outputs: 14 positions, not
 * 7), so the kernel keeps its 28 accumulators busy. Kernels exist for these widths only. */
#define CV_MAX_ROWS_WO 7
#define CV_MIN_ROWS_WO 3
static int cv_rows_per_block(const gemm_job *j) {
    int64_t wo = j->grid_wo;
    return wo >= CV_MIN_ROWS_WO && wo <= CV_MAX_ROWS_WO && !j->cv_blocked ? (int)(CV_NB / wo) : 1;
}

static int64_t cv_blocks(const gemm_job *j) {
    int64_t rows = j->n / j->grid_wo, per = cv_rows_per_block(j);
    return per > 1 ? (rows + per - 1) / per : rows * ((j->grid_wo + CV_NB - 1) / CV_NB);
}

static cv_block cv_block_at(const gemm_job *j, int64_t blk) {
    int per = cv_rows_per_block(j);
    if (per > 1) {
        int64_t row = blk * per, rows = KILN__MIN(per, j->n / j->grid_wo - row);
        return (cv_block){row * j->grid_wo, row * j->grid_wq, (int)(rows * j->grid_wo), (int)rows};
    }
    /* Each output row of wo positions is cut into equal blocks of at most CV_NB. */
    int64_t per_row = (j->grid_wo + CV_NB - 1) / CV_NB, row = blk / per_row, i = blk % per_row;
    int64_t base = j->grid_wo / per_row, extra = j->grid_wo % per_row;
    int64_t start = i * base + KILN__MIN(i, extra);
    return (cv_block){row * j->grid_wo + start, row * j->grid_wq + start, (int)(base + (i < extra)), 1};
}

/* The A panels a thread works on next stream from memory into L2 while the current ones are
 * reused from L2 by every block: each kernel call prefetches its share of them, spread over its
 * sum. When the weights do not fit in the cache (ResNet-50's stages at 14x14 and 7x7), the first
 * block through a panel otherwise waits on memory for every line. A tile's own panels, which no
 * earlier tile fetched, stream the same way on its first block, each call the tile's next panel
 * (inside the networks, 1 thread: ResNet-50's 1024->256 on 14x14 3% faster, its 7x7 expansions
 * 2-4%, MobileNetV2's 160->960 on 7x7 4%; ResNet-50 0.5-0.7%, at 2 threads 0.7-0.9%). The call
 * also prefetches the next call's rows of C and of the residual, one row per chunk: otherwise its
 * epilogue waits on 32 rows 4 KiB or more apart, each a miss, which sums of 256 (planes of 196)
 * do not hide. */
typedef struct cv_prefetch {
    const char *a;     /* the call's share of the next panels */
    int64_t a_lines;   /* its length in 64-byte lines (0: none) */
    const float *c, *res; /* the next call's first row of C and of the residual (NULL: none) */
    int64_t rows, last;   /* how many rows; the last float of each */
    const float *b;       /* the next block's B (as j->b + its b0), or NULL (CV_STREAM_MIN_K) */
    int64_t b_k0, b_k1;   /* the call's share of its rows: K steps [b_k0, b_k1) */
    int64_t b_last;       /* floats from a row's first column to its last */
    const char *panel;    /* on a tile's first block: the tile's next panel, or NULL */
    int64_t panel_lines;
} cv_prefetch;
/* With KILN__CV_STREAM_B, each call also prefetches its share of the next block's rows of B into
 * L2 where B is not where the last layer left it: long sums over a large B (512 KiB; in a chain
 * of layers it has left L2 or sits in the other core's), and every thread reading all of B (the
 * split by maps). A 1x1 layer's first pass over a block otherwise waits on a miss for
 * every row, 784 bytes or more apart, which no hardware prefetcher follows. Measured inside
 * ResNet-50 (per-layer medians, with and without alternating in one process): 512->128 on 28x28
 * 0.76 -> 0.71 ms at 1 thread, 0.49 -> 0.41 at 2; 1024->256 on 14x14 0.48 -> 0.45 at 2; the
 * network 0.6% faster at 1 thread, 1.7% at 2. MobileNetV2's expansions to 576 maps on 14x14 (split
 * by maps), 2 threads: 0.088 -> 0.081. Its short sums over B in L2 ran 2-3% slower with it. */
#define CV_STREAM_MIN_K 256
#define CV_STREAM_MIN_B (1 << 17) /* floats */
#define CV_PF_CHUNK 8 /* K steps between prefetches: their bookkeeping stays out of the FMA loop (in it,
                       * GCC ran out of general registers and reloaded them every step) */

/* C rows [i0, i0 + 32) x the block's nb columns: the full sum over K, then the epilogue. Position
 * q is in row q / seg of the block (B's rows are wq apart), so seg == nb for part of one row. */
__attribute__((target("avx512f,avx2,fma"), always_inline)) static inline void cv_kernel(const gemm_job *j,
                                                                                       const float *pa, int64_t i0,
                                                                                       cv_block blk, cv_prefetch pf,
                                                                                       const int nb, const int seg,
                                                                                       const int blocked) {
    const bool c_blocked = blocked & KILN__CV_C_BLOCKED;
    const int64_t bstep = blocked & KILN__CV_B_BLOCKED ? 16 : 1; /* floats between B's columns */
    __m512 acc[CV_NB][2];
    for (int q = 0; q < nb; q++) acc[q][0] = acc[q][1] = _mm512_setzero_ps();
    for (int64_t i = i0; i < KILN__MIN(j->m, i0 + CV_MR) && !c_blocked; i++) { /* as prefetch_tile */
        prefetch_l1(j->c + i * j->ldc + blk.q0);
        if (j->res) prefetch_l1(j->res + i * j->ldr + blk.q0);
    }
    const float *b = j->b + blk.b0 * bstep;
    const int64_t *off = j->boff, wq = j->grid_wq;
    const int64_t chunks = (j->k + CV_PF_CHUNK - 1) / CV_PF_CHUNK;
    int64_t a_line = 0, b_row = pf.b_k0, panel_line = 0;
    for (int64_t ci = 0; ci < chunks; ci++) {
        for (int64_t end = (ci + 1) * pf.a_lines / chunks; a_line < end; a_line++)
            prefetch_l2(pf.a + a_line * 64);
        for (int64_t end = (ci + 1) * pf.panel_lines / chunks; panel_line < end; panel_line++)
            prefetch_l2(pf.panel + panel_line * 64);
        for (int64_t end = pf.b_k0 + (ci + 1) * (pf.b_k1 - pf.b_k0) / chunks; b_row < end; b_row++) {
            prefetch_l2(pf.b + off[b_row]);
            prefetch_l2(pf.b + off[b_row] + pf.b_last);
        }
        if (ci < pf.rows) {
            prefetch_l1(pf.c + ci * j->ldc);
            prefetch_l1(pf.c + ci * j->ldc + pf.last);
            if (pf.res) {
                prefetch_l1(pf.res + ci * j->ldr);
                prefetch_l1(pf.res + ci * j->ldr + pf.last);
            }
        }
        const int64_t p1 = KILN__MIN(j->k, (ci + 1) * CV_PF_CHUNK);
#pragma GCC unroll 2
        for (int64_t p = ci * CV_PF_CHUNK; p < p1; p++) {
            const float *row = b + off[p], *rows[CV_NB / CV_MIN_ROWS_WO]; /* one pointer per output row */
            for (int r = 0; r * seg < nb; r++) rows[r] = row + r * wq * bstep;
            __m512 a0 = _mm512_loadu_ps(pa + p * CV_MR), a1 = _mm512_loadu_ps(pa + p * CV_MR + 16);
            for (int q = 0; q < nb; q++) {
                __m512 x = _mm512_set1_ps(rows[q / seg][q % seg * bstep]);
                acc[q][0] = _mm512_fmadd_ps(x, a0, acc[q][0]);
                acc[q][1] = _mm512_fmadd_ps(x, a1, acc[q][1]);
            }
        }
    }
    if (c_blocked) { /* each accumulator is one position's 16 maps of a block */
        for (int h = 0; h < 2 && i0 + 16 * h < j->m; h++) {
            __m512 bias = j->bias ? _mm512_loadu_ps(j->bias + i0 + 16 * h) : _mm512_setzero_ps();
            float *c = j->c + ((i0 / 16 + h) * j->ldc + blk.q0) * 16;
            for (int q = 0; q < nb; q++) {
                __m512 v = _mm512_add_ps(acc[q][h], bias);
                if (j->act_mode != ACT_NONE && j->act_mode != ACT_ROWS) v = act16(j, v);
                _mm512_storeu_ps(c + q * 16, v);
            }
            if (j->act_mode == ACT_ROWS) kiln__apply_act_f32(j->act, c, nb * 16);
        }
        return;
    }
    __mmask16 keep = (__mmask16)((1u << nb) - 1);
    for (int h = 0; h < 2; h++) {
        __m512 r[16];
        for (int q = 0; q < 16; q++) r[q] = q < nb ? acc[q][h] : _mm512_setzero_ps();
        kiln__vm_transpose16(r);
        int64_t rows = KILN__MIN(16, j->m - i0 - 16 * h);
        for (int l = 0; l < rows; l++) {
            int64_t i = i0 + 16 * h + l;
            __m512 v = r[l];
            if (j->bias) v = _mm512_add_ps(v, _mm512_set1_ps(j->bias[i]));
            if (j->res) v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(keep, j->res + i * j->ldr + blk.q0));
            if (j->act_mode != ACT_NONE && j->act_mode != ACT_ROWS) v = act16(j, v);
            float *c = j->c + i * j->ldc + blk.q0;
            _mm512_mask_storeu_ps(c, keep, v);
            if (j->act_mode == ACT_ROWS) kiln__apply_act_f32(j->act, c, nb);
        }
    }
}

#define CV_KERNEL(nb)                                                                                             \
    __attribute__((target("avx512f,avx2,fma"))) static void cv_kernel_##nb(                                       \
        const gemm_job *j, const float *pa, int64_t i0, cv_block blk, cv_prefetch pf) {                           \
        cv_kernel(j, pa, i0, blk, pf, nb, nb, 0);                                                                 \
    }                                                                                                             \
    __attribute__((target("avx512f,avx2,fma"))) static void cv_kernel_cblocked_##nb(                              \
        const gemm_job *j, const float *pa, int64_t i0, cv_block blk, cv_prefetch pf) {                           \
        cv_kernel(j, pa, i0, blk, pf, nb, nb, KILN__CV_C_BLOCKED);                                                \
    }                                                                                                             \
    __attribute__((target("avx512f,avx2,fma"))) static void cv_kernel_bblocked_##nb(                              \
        const gemm_job *j, const float *pa, int64_t i0, cv_block blk, cv_prefetch pf) {                           \
        cv_kernel(j, pa, i0, blk, pf, nb, nb, KILN__CV_B_BLOCKED);                                                \
    }                                                                                                             \
    __attribute__((target("avx512f,avx2,fma"))) static void cv_kernel_bcblocked_##nb(                             \
        const gemm_job *j, const float *pa, int64_t i0, cv_block blk, cv_prefetch pf) {                           \
        cv_kernel(j, pa, i0, blk, pf, nb, nb, KILN__CV_B_BLOCKED | KILN__CV_C_BLOCKED);                           \
    }
CV_KERNEL(1) CV_KERNEL(2) CV_KERNEL(3) CV_KERNEL(4) CV_KERNEL(5) CV_KERNEL(6) CV_KERNEL(7)
CV_KERNEL(8) CV_KERNEL(9) CV_KERNEL(10) CV_KERNEL(11) CV_KERNEL(12) CV_KERNEL(13) CV_KERNEL(14)
#undef CV_KERNEL

typedef void (*cv_kernel_fn)(const gemm_job *j, const float *pa, int64_t i0, cv_block blk, cv_prefetch pf);
static const cv_kernel_fn cv_kernels[CV_NB + 1] = {
    NULL,        cv_kernel_1,  cv_kernel_2,  cv_kernel_3,  cv_kernel_4,  cv_kernel_5,  cv_kernel_6, cv_kernel_7,
    cv_kernel_8, cv_kernel_9, cv_kernel_10, cv_kernel_11, cv_kernel_12, cv_kernel_13, cv_kernel_14};
/* [KILN__CV_* - 1][nb] */
#define CV_BLOCKED_KERNELS(kind)                                                                                  \
    {NULL,                 cv_kernel_##kind##_1,  cv_kernel_##kind##_2,  cv_kernel_##kind##_3,                    \
     cv_kernel_##kind##_4,  cv_kernel_##kind##_5,  cv_kernel_##kind##_6,  cv_kernel_##kind##_7,                   \
     cv_kernel_##kind##_8,  cv_kernel_##kind##_9,  cv_kernel_##kind##_10, cv_kernel_##kind##_11,                  \
     cv_kernel_##kind##_12, cv_kernel_##kind##_13, cv_kernel_##kind##_14}
static const cv_kernel_fn cv_kernels_blocked[3][CV_NB + 1] = {
    CV_BLOCKED_KERNELS(bblocked), CV_BLOCKED_KERNELS(cblocked), CV_BLOCKED_KERNELS(bcblocked)};
#undef CV_BLOCKED_KERNELS

#define CV_ROWS_KERNEL(wo, rows)                                                                                  \
    __attribute__((target("avx512f,avx2,fma"))) static void cv_kernel_##wo##x##rows(                              \
        const gemm_job *j, const float *pa, int64_t i0, cv_block blk, cv_prefetch pf) {                           \
        cv_kernel(j, pa, i0, blk, pf, wo * rows, wo, 0);                                                          \
    }
CV_ROWS_KERNEL(3, 2) CV_ROWS_KERNEL(3, 3) CV_ROWS_KERNEL(3, 4) CV_ROWS_KERNEL(4, 2) CV_ROWS_KERNEL(4, 3)
CV_ROWS_KERNEL(5, 2) CV_ROWS_KERNEL(6, 2) CV_ROWS_KERNEL(7, 2)
#undef CV_ROWS_KERNEL

/* [wo - CV_MIN_ROWS_WO][rows]: blocks of several whole rows; every rows <= CV_NB / wo is there. */
static const cv_kernel_fn cv_rows_kernels[CV_MAX_ROWS_WO - CV_MIN_ROWS_WO + 1][CV_NB / CV_MIN_ROWS_WO + 1] = {
    {NULL, NULL, cv_kernel_3x2, cv_kernel_3x3, cv_kernel_3x4},
    {NULL, NULL, cv_kernel_4x2, cv_kernel_4x3},
    {NULL, NULL, cv_kernel_5x2},
    {NULL, NULL, cv_kernel_6x2},
    {NULL, NULL, cv_kernel_7x2}};

static inline void cv_run(const gemm_job *j, int64_t panel, cv_block blk, cv_prefetch pf) {
    cv_kernel_fn fn = blk.rows > 1 ? cv_rows_kernels[j->grid_wo - CV_MIN_ROWS_WO][blk.rows]
                      : j->cv_blocked ? cv_kernels_blocked[j->cv_blocked - 1][blk.nb]
                                     : cv_kernels[blk.nb];
    fn(j, j->apack + panel * CV_MR * j->k, panel * CV_MR, blk, pf);
}

/* Panels [p0, p1) x blocks [b0, b1); each block's B rows stay in L1 while the panels pass. Panels
 * [n0, n1), the thread's next ones, are prefetched meanwhile (none when n0 == n1). */
static void cv_tile(const gemm_job *j, int64_t p0, int64_t p1, int64_t b0, int64_t b1, int64_t n0, int64_t n1) {
    int64_t calls = (p1 - p0) * (b1 - b0);
    if (calls <= 0) return;
    const char *next = (const char *)(j->apack + n0 * CV_MR * j->k);
    int64_t lines = (n1 - n0) * CV_MR * j->k * (int64_t)sizeof(float) / 64;
    int64_t per_call = (lines + calls - 1) / calls, call = 0;
    for (int64_t bi = b0; bi < b1; bi++) {
        cv_block blk = cv_block_at(j, bi), nx = bi + 1 < b1 ? cv_block_at(j, bi + 1) : blk;
        for (int64_t pi = p0; pi < p1; pi++, call++) {
            int64_t first = call * per_call, count = KILN__MIN(per_call, lines - first);
            cv_prefetch pf = {.a = count > 0 ? next + first * 64 : NULL, .a_lines = KILN__MAX(count, 0)};
            if (bi == b0 && pi + 1 < p1) {
                pf.panel = (const char *)(j->apack + (pi + 1) * CV_MR * j->k);
                pf.panel_lines = CV_MR * j->k * (int64_t)sizeof(float) / 64;
            }
            if (j->cv_prefetch_b && bi + 1 < b1 && nx.rows == 1) {
                int64_t bstep = j->cv_blocked & KILN__CV_B_BLOCKED ? 16 : 1;
                pf.b = j->b + nx.b0 * bstep;
                pf.b_k0 = (pi - p0) * j->k / (p1 - p0);
                pf.b_k1 = (pi - p0 + 1) * j->k / (p1 - p0);
                pf.b_last = (nx.nb - 1) * bstep;
            }
            int64_t ni = pi + 1 < p1 ? pi + 1 : p0;
            const cv_block *nb = pi + 1 < p1 ? &blk : &nx;
            if (!j->cv_blocked && (pi + 1 < p1 || bi + 1 < b1)) {
                pf.c = j->c + ni * CV_MR * j->ldc + nb->q0;
                pf.res = j->res ? j->res + ni * CV_MR * j->ldr + nb->q0 : NULL;
                pf.rows = KILN__MIN(CV_MR, j->m - ni * CV_MR);
                pf.last = nb->nb - 1;
            }
            cv_run(j, pi, blk, pf);
        }
    }
}

/* Tiles: mc panels x nc blocks, taken from the shared counter one ahead, so that the next tile's
 * panels are known while the current one runs. */
static void cv_range(void *arg, int64_t begin, int64_t end) {
    gemm_job *j = arg;
    (void)begin;
    (void)end;
    int64_t blocks = cv_blocks(j);
    int64_t panels = (j->m + CV_MR - 1) / CV_MR;
    int64_t t = atomic_fetch_add_explicit(&j->next, 1, memory_order_relaxed);
    while (t < j->tiles) {
        int64_t next = atomic_fetch_add_explicit(&j->next, 1, memory_order_relaxed);
        int64_t p0 = t / j->tiles_n * j->mc, b0 = t % j->tiles_n * j->nc;
        int64_t p1 = KILN__MIN(panels, p0 + j->mc), b1 = KILN__MIN(blocks, b0 + j->nc);
        int64_t n0 = next < j->tiles ? next / j->tiles_n * j->mc : p0;
        int64_t n1 = n0 == p0 ? n0 : KILN__MIN(panels, n0 + j->mc);
        cv_tile(j, p0, p1, b0, b1, n0, n1);
        t = next;
    }
}

/* A piece of a thread's share (kiln__parallel_shares): blocks [begin, end) with every panel (split
 * by positions), or panels [begin, end) with every block, mc panels at a time. */
static void cv_share_range(void *arg, int64_t begin, int64_t end) {
    gemm_job *j = arg;
    bool by_blocks = j->by_blocks;
    int64_t b0 = by_blocks ? begin : 0, b1 = by_blocks ? end : cv_blocks(j);
    int64_t p0 = by_blocks ? 0 : begin, p1 = by_blocks ? (j->m + CV_MR - 1) / CV_MR : end;
    for (int64_t pg = p0; pg < p1; pg += j->mc) {
        int64_t pe = KILN__MIN(p1, pg + j->mc);
        cv_tile(j, pg, pe, b0, b1, pe, KILN__MIN(p1, pe + j->mc));
    }
}

int64_t kiln__sgemm_cv_packed_floats(int64_t m, int64_t k) { return (m + CV_MR - 1) / CV_MR * CV_MR * k; }

void kiln__sgemm_cv_pack(int64_t m, int64_t k, const float *a, int64_t lda, float *dst) {
    for (int64_t i0 = 0; i0 < m; i0 += CV_MR, dst += CV_MR * k)
        for (int64_t r = 0; r < CV_MR; r++)
            for (int64_t p = 0; p < k; p++) dst[p * CV_MR + r] = i0 + r < m ? a[(i0 + r) * lda + p] : 0.0f;
}

kiln_status kiln__sgemm_cv(kiln__pool *pool, int64_t m, int64_t n, int64_t k, const float *packed_a, const float *b,
                           const int64_t *row_offsets, int64_t wq, int64_t wo, float *c, int64_t ldc,
                           int blocked, const kiln__gemm_epilogue *ep) {
    if (kiln__cpu_simd() != KILN__SIMD_AVX512)
        return kiln__error(KILN_INTERNAL_ERROR, "channel-vector GEMM needs AVX-512");
    if (wo < 1 || wq < wo || n % wo != 0)
        return kiln__error(KILN_INTERNAL_ERROR, "channel-vector GEMM: %lld columns in rows of %lld of %lld",
                           (long long)n, (long long)wo, (long long)wq);
    if ((blocked & KILN__CV_C_BLOCKED) && (m % 16 != 0 || k <= 0 || (ep && ep->res)))
        return kiln__error(KILN_INTERNAL_ERROR,
                           "channel-vector GEMM: no kernel for layout %d, %lld maps, %lld long sums%s", blocked,
                           (long long)m, (long long)k, ep && ep->res ? " with a residual" : "");
    gemm_job j = {.m = m, .n = n, .k = k, .ldc = ldc, .b = b, .c = c, .apack = packed_a, .boff = row_offsets,
                  .grid_wq = wq, .grid_wo = wo, .cv_blocked = blocked & (KILN__CV_B_BLOCKED | KILN__CV_C_BLOCKED)};
    if (m <= 0 || n <= 0) return KILN_OK;
    if (ep) {
        j.bias = ep->bias;
        j.res = ep->res;
        j.ldr = ep->ldr;
    }
    set_act(&j, ep);
    if (k <= 0) {
        empty_k(&j);
        return KILN_OK;
    }
    int64_t panels = (m + CV_MR - 1) / CV_MR, blocks = cv_blocks(&j);
    int64_t threads = kiln__pool_threads(pool);
    bool stream_b = blocked & KILN__CV_STREAM_B;
    j.cv_prefetch_b = stream_b && k >= CV_STREAM_MIN_K && k * n >= CV_STREAM_MIN_B;
    j.mc = KILN__MAX(1, KILN__MIN(panels, CV_A_TILE / (CV_MR * k)));
    j.by_blocks = (m <= n || (m * k <= CV_STATIC_BLOCKS_MAX_A && m <= CV_STATIC_BLOCKS_MAX_MAPS * n)) &&
                  blocks >= threads * CV_MIN_STATIC_BLOCKS;
    if (threads > 1 && (j.by_blocks || (k <= n && panels >= threads))) {
        /* Each thread takes a contiguous share (in pieces a faster thread can take over, see
         * kiln__parallel_shares): of the positions with all the maps when there are fewer maps than
         * positions, else of the maps where each map's weights are no more than its outputs. In a
         * chain of such layers (and the depthwise layers between them, split by channels the same
         * way) a thread then mostly reads what its own core wrote; with tiles taken in turn, every
         * thread reads every position, half of them from the other core's cache (measured on 2
         * threads, eight 1x1 layers on 14x14 outputs: 0.95-1.22 ms with tiles in turn, 0.73-1.12 ms
         * split this way; 1.08-1.16 ms on 1 thread). The split by positions also serves more maps
         * than positions while the weights fit in L2 (ResNet-50's 1024->256 on 14x14, 2 threads: 8%
         * faster; with tiles in turn a tile there is one panel, and every thread passes over all of
         * B once per panel), up to CV_STATIC_BLOCKS_MAX_MAPS times as many maps as positions. With
         * more, the maps are split (statically, or tiles in turn cut along the maps where the sums
         * are longer than the positions), and the depthwise layer after, split by channels, reads
         * mostly what its own core wrote: MobileNetV2 at 2 threads (per-layer medians, the two
         * splits alternating in one process), 576 maps on 14x14 into stride 2 0.017 -> 0.011 ms, on
         * 14x14 0.034 -> 0.030, the 960-map expansions on 7x7 0.069 -> 0.059; the network 1.1%
         * faster. Layers whose weights dominate keep the tiles in turn: split statically, ResNet-50
         * at 2 threads measured 38-46 ms against 37-40. */
        j.cv_prefetch_b = j.cv_prefetch_b || (stream_b && !j.by_blocks);
        kiln__parallel_shares(pool, j.by_blocks ? blocks : panels, 1, cv_share_range, &j);
        return KILN_OK;
    }
    j.nc = blocks;
    /* Several tiles per thread, so a slow thread does not hold the others up: cut along the maps
     * first (cut along positions, neighbouring blocks of two threads would share the cache lines
     * at their ends in every row of C). */
    for (;;) {
        int64_t tiles = (panels + j.mc - 1) / j.mc * ((blocks + j.nc - 1) / j.nc);
        if (threads <= 1 || tiles >= TILES_PER_THREAD * threads) break;
        if (j.mc > 1)
            j.mc = (j.mc + 1) / 2;
        else if (j.nc > 1)
            j.nc = (j.nc + 1) / 2;
        else
            break;
    }
    j.tiles_n = (blocks + j.nc - 1) / j.nc;
    j.tiles = (panels + j.mc - 1) / j.mc * j.tiles_n;
    atomic_init(&j.next, 0);
    j.slots = KILN__MIN(threads, j.tiles);
    if (j.slots > 1)
        kiln__parallel_for(pool, j.slots, 1, cv_range, &j);
    else
        cv_range(&j, 0, 1);
    return KILN_OK;
}
