/* kiln's own single-precision GEMM (packed panels, an AVX2/FMA 6x16 or AVX-512 6x32 micro-kernel,
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

/* Which kernels run: the best the CPU supports, detected once at first use (AVX-512 adds a
 * 6x32 GEMM micro-kernel). kiln__cpu_set_simd(level) caps it at level, never above what the CPU
 * supports (tests reach every path this way). Not meant to change while kernels run. */
enum { KILN__SIMD_NONE = 0, KILN__SIMD_AVX2 = 1, KILN__SIMD_AVX512 = 2 };
int kiln__cpu_simd(void);
void kiln__cpu_set_simd(int max_level);

#endif
