/* Masked and strided vector loads shared by the CPU convolution's im2col packing and its
 * depthwise kernels. */
#ifndef KILN_CPU_CONV_SIMD_H
#define KILN_CPU_CONV_SIMD_H

#include "cpu.h"

#include <immintrin.h>

/* Bits [a, b) of a 32-bit mask, the bounds clamped to [0, 32]. */
static inline uint32_t bit_range(int64_t a, int64_t b) {
    a = KILN__MAX(a, 0);
    b = KILN__MIN(b, 32);
    if (b <= a) return 0;
    return (b >= 32 ? 0xFFFFFFFFu : (1u << b) - 1) & ~((1u << a) - 1);
}

/* 16 lanes from p (lane l at p[l * s]) with a lane mask (at s == 2 the mask of the even elements of a
 * load twice as wide); s is a constant where inlined. */
__attribute__((target("avx512f"), always_inline)) static inline __m512 load16(const float *p, uint32_t m, int64_t s) {
    if (s == 1) return m == 0xFFFF ? _mm512_loadu_ps(p) : _mm512_maskz_loadu_ps((__mmask16)m, p);
    __m512i even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    return _mm512_permutex2var_ps(_mm512_maskz_loadu_ps((__mmask16)m, p), even,
                                  _mm512_maskz_loadu_ps((__mmask16)(m >> 16), p + 16));
}

/* The AVX2 form of an 8-bit lane mask. */
__attribute__((target("avx2"))) static inline __m256i mask8(uint32_t bits) {
    __m256i b = _mm256_setr_epi32(1, 2, 4, 8, 16, 32, 64, 128);
    return _mm256_cmpeq_epi32(_mm256_and_si256(_mm256_set1_epi32((int)(bits & 0xFF)), b), b);
}

/* 8 lanes from p (lane l at p[l * s]) with the masks of elements [0, 8) and [8, 16), masked-out
 * lanes zero; full: all 8 lanes wanted and inside the row (the masks are ignored at stride 1). */
__attribute__((target("avx2"), always_inline)) static inline __m256 load8(const float *p, __m256i m0, __m256i m1,
                                                                         int64_t s, bool full) {
    if (s == 1) return full ? _mm256_loadu_ps(p) : _mm256_maskload_ps(p, m0);
    __m256 t = _mm256_shuffle_ps(_mm256_maskload_ps(p, m0), _mm256_maskload_ps(p + 8, m1), 0x88);
    return _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(t), 0xD8));
}

#endif
