/* kiln's own single-precision GEMM (packed panels, an AVX2/FMA 6x16 micro-kernel, cache blocking,
 * threads from kiln's pool) with a fused per-row bias / residual / activation epilogue. CPUs
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

/* Whether the AVX2/FMA kernels (GEMM, depthwise convolution) run: detected once at first use.
 * kiln__cpu_set_simd(false) forces the portable paths (tests reach them this way); true
 * re-enables them only where the CPU supports them. Not meant to change while kernels run. */
bool kiln__cpu_simd(void);
void kiln__cpu_set_simd(bool on);

#endif
