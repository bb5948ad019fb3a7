/* kiln's own single-precision GEMM (packed panels, an AVX2/FMA 6x16 or AVX-512 12x32 micro-kernel,
 * cache blocking, threads from kiln's pool) with a fused per-row bias / residual / activation
 * epilogue. CPUs
 * without AVX2 and FMA run OpenBLAS instead, split over the pool's threads by rows of C. */
#ifndef KILN_CPU_GEMM_H
#define KILN_CPU_GEMM_H

#include "cpu.h"

typedef struct kiln__gemm_epilogue {
    const float *bias;    /* one value per row of C, or NULL */
    const float *res;     /* [m, n] with row stride ldr, added after the bias, or NULL */
    int64_t ldr;
    const kiln__act *act; /* applied last; NULL or kind < 0: none */
} kiln__gemm_epilogue;

/* C[m, n] = epilogue(alpha * op(A) op(B) + beta * C), row-major with leading dims lda, ldb, ldc;
 * op(X) is X transposed when trans_x. C is not read when beta == 0. Spreads over the pool's
 * threads (pool may be NULL); packing buffers come from alloc. Dims must fit in int (callers
 * check) because of the OpenBLAS fallback. */
kiln_status kiln__sgemm(kiln__pool *pool, const kiln__alloc *alloc, bool trans_a, bool trans_b, int64_t m, int64_t n,
                        int64_t k, float alpha, const float *a, int64_t lda, const float *b, int64_t ldb, float beta,
                        float *c, int64_t ldc, const kiln__gemm_epilogue *ep);

/* Weights used many times (convolutions) are packed once: kiln__sgemm_pack_a writes A [m, k]
 * (row-major, leading dim lda) as kiln__sgemm_packed_a_floats(m, k) floats in the micro-kernel's
 * panel layout, and kiln__sgemm_packed computes C = epilogue(A B + beta * C) from them. Packing
 * needs AVX2 (kiln__cpu_simd() != KILN__SIMD_NONE); without it kiln__sgemm_packed reads a. */
int64_t kiln__sgemm_packed_a_floats(int64_t m, int64_t k);
void kiln__sgemm_pack_a(int64_t m, int64_t k, const float *a, int64_t lda, float *dst);
kiln_status kiln__sgemm_packed(kiln__pool *pool, const kiln__alloc *alloc, int64_t m, int64_t n, int64_t k,
                               const float *a, int64_t lda, const float *packed_a, const float *b, int64_t ldb,
                               float beta, float *c, int64_t ldc, const kiln__gemm_epilogue *ep);

/* B given implicitly (e.g. im2col of an image): pack_b_fn(arg, p0, kc, j0, cols, nr, dst) writes
 * B[p0 .. p0 + kc, j0 .. j0 + cols) as panels of nr columns, each [kc][nr] row-major, the last one
 * zero-padded to nr columns, panels one after another in dst. The GEMM calls it for each K block
 * of each tile, from several threads at once (arg is shared: read-only). A is packed by
 * kiln__sgemm_pack_a. Needs AVX2 (kiln__cpu_simd() != KILN__SIMD_NONE). */
typedef void (*kiln__gemm_pack_b_fn)(const void *arg, int64_t p0, int64_t kc, int64_t j0, int64_t cols, int64_t nr,
                                     float *dst);
kiln_status kiln__sgemm_packed_src(kiln__pool *pool, const kiln__alloc *alloc, int64_t m, int64_t n, int64_t k,
                                   const float *packed_a, kiln__gemm_pack_b_fn pack_b_fn, const void *arg, float beta,
                                   float *c, int64_t ldc, const kiln__gemm_epilogue *ep);

/* B read in place with its rows anywhere (a direct convolution over a padded input): row p of B
 * is b + row_offsets[p], its columns contiguous. Every row must be readable for n rounded up to
 * 32 columns. A is packed by kiln__sgemm_pack_a. C's columns may form a grid of rows of grid_wq
 * of which the first grid_wo are kept: column p goes to (p / grid_wq) * grid_wo + p % grid_wq of
 * its row of C (and of the residual), or nowhere when p % grid_wq >= grid_wo (grid_wq ==
 * grid_wo: column p at p). Needs AVX-512. */
kiln_status kiln__sgemm_packed_rows(kiln__pool *pool, const kiln__alloc *alloc, int64_t m, int64_t n, int64_t k,
                                    const float *packed_a, const float *b, const int64_t *row_offsets, float *c,
                                    int64_t ldc, int64_t grid_wq, int64_t grid_wo, const kiln__gemm_epilogue *ep);

/* The channel-vector GEMM (AVX-512) for convolutions: A's rows (output maps) on the vector side,
 * C's columns (output positions) broadcast from B, so planes of any size waste no lanes and B is
 * read in place. kiln__sgemm_cv_pack writes A [m, k] (row-major, leading dim lda) as
 * kiln__sgemm_cv_packed_floats(m, k) floats. kiln__sgemm_cv computes C[m, n] = epilogue(A B): row
 * p of B is at b + row_offsets[p]; C's columns form rows of wo positions (n a multiple of wo), and
 * column q reads B's column (q / wo) * wq + q % wo (wq >= wo). Only those columns are read.
 * KILN__CV_C_BLOCKED: C is in blocks of 16 rows, element (i, q) at c[(i / 16 * ldc + q) * 16 +
 * i % 16] (m a multiple of 16, no residual): a layer's NCHW16C output. KILN__CV_B_BLOCKED: B's
 * columns are 16 floats apart, column j of row p at b[row_offsets[p] + 16 * j] (an NCHW16C input,
 * whose 16 channels of a block then share each position's cache line). Both together: a
 * pointwise layer from NCHW16C to NCHW16C. KILN__CV_STREAM_B (with either): blocks of columns
 * share no rows of B (a 1x1 layer's input, not a window's), so where B is likely out of L2
 * each block's rows are prefetched while the block before it runs. */
enum { KILN__CV_B_BLOCKED = 1, KILN__CV_C_BLOCKED = 2, KILN__CV_STREAM_B = 4 };
int64_t kiln__sgemm_cv_packed_floats(int64_t m, int64_t k);
void kiln__sgemm_cv_pack(int64_t m, int64_t k, const float *a, int64_t lda, float *dst);
kiln_status kiln__sgemm_cv(kiln__pool *pool, int64_t m, int64_t n, int64_t k, const float *packed_a, const float *b,
                           const int64_t *row_offsets, int64_t wq, int64_t wo, float *c, int64_t ldc,
                           int blocked, const kiln__gemm_epilogue *ep);
/* Constant B operands (a linear layer's weights) are packed once the same way:
 * kiln__sgemm_pack_b writes op(B) [k, n] (B transposed when trans_b, leading dim ldb) as at most
 * kiln__sgemm_packed_b_floats(k, n) floats, in the panel layout of the kernels kiln__cpu_simd()
 * picks at that moment (AVX2 or AVX-512: callers keeping the copy record the level and repack
 * when it changes; needs AVX2). kiln__sgemm_packed_b computes C = epilogue(alpha * op(A) op(B) +
 * beta * C) from it; without AVX2 it reads b instead. */
int64_t kiln__sgemm_packed_b_floats(int64_t k, int64_t n);
void kiln__sgemm_pack_b(bool trans_b, int64_t k, int64_t n, const float *b, int64_t ldb, float *dst);
kiln_status kiln__sgemm_packed_b(kiln__pool *pool, const kiln__alloc *alloc, bool trans_a, bool trans_b, int64_t m,
                                 int64_t n, int64_t k, float alpha, const float *a, int64_t lda, const float *b,
                                 int64_t ldb, const float *packed_b, float beta, float *c, int64_t ldc,
                                 const kiln__gemm_epilogue *ep);

/* Which kernels run: the best the CPU supports, detected once at first use (AVX-512 adds a
 * 12x32 GEMM micro-kernel). kiln__cpu_set_simd(level) caps it at level, never above what the CPU
 * supports (tests reach every path this way). Not meant to change while kernels run. */
enum { KILN__SIMD_NONE = 0, KILN__SIMD_AVX2 = 1, KILN__SIMD_AVX512 = 2 };
int kiln__cpu_simd(void);
void kiln__cpu_set_simd(int max_level);

#endif
