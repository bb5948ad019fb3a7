/* Vectorized float32 math for the pointwise kernels: exp, sigmoid, SiLU, tanh, erf and the two
 * GELUs over rows of floats. On x86-64 an AVX-512 or an AVX2+FMA path (bit-identical results)
 * is chosen at run time (__builtin_cpu_supports); elsewhere, and for CPUs without AVX2, the
 * same polynomials run one value at a time. All paths propagate NaN and give the limits at +-inf.
 *
 * Accuracy against glibc's double-precision functions rounded to float, measured over 2^24
 * evenly spread inputs in the useful ranges (tests/unit/test_cpu_pointwise.c repeats a check):
 *   exp      Cephes expf polynomial, 2^n split in two factors so results down to the
 *            subnormals are right: max 1 ulp
 *   tanh     Cephes tanhf polynomial for |x| < 0.625, else 1 - 2 / (exp(2|x|) + 1): max 2 ulp
 *   sigmoid  1 / (1 + exp(-x)): max 2 ulp (down to 0 below x = -88.7, where glibc gives subnormals)
 *   erf      x P(x^2) for |x| < 0.921875, else 1 - exp(Q(|x|) - x^2), P and Q least-squares fits
 *            on Chebyshev points: absolute error below 1.3e-7 (max 2.5 ulp)
 *   gelu     x Phi(x) from erfc directly, and x sigmoid(2u) for the tanh form, so negative x
 *            keep their relative accuracy
 */
#ifndef KILN_VMATH_H
#define KILN_VMATH_H

#include <math.h>
#include <stdint.h>
#include <string.h>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define KILN__VM_X86 1
#include <immintrin.h>
#endif

/* ------------------------------------------------------------------ constants */

#define KILN__VM_LOG2E 1.44269504088896341f
#define KILN__VM_LN2_HI 0.693359375f
#define KILN__VM_LN2_LO -2.12194440e-4f
#define KILN__VM_EXP_HI 89.0f   /* exp overflows to inf above 88.72 */
#define KILN__VM_EXP_LO -104.0f /* and underflows to 0 below -103.97 */
#define KILN__VM_ERF_SPLIT 0.921875f
#define KILN__VM_GELU_C 0.79788456080286535588f /* sqrt(2 / pi) */
#define KILN__VM_ERF_Q_CENTER 3.4609375f /* (0.921875 + 6) / 2 */
#define KILN__VM_ERF_Q_HI 6.0f /* Q is held past here: erfc(6) = 2e-17 */

/* Cephes expf: exp(r) = 1 + r + r^2 P(r) on |r| <= ln2 / 2. */
#define KILN__VM_EXP_P0 1.9875691500e-4f
#define KILN__VM_EXP_P1 1.3981999507e-3f
#define KILN__VM_EXP_P2 8.3334519073e-3f
#define KILN__VM_EXP_P3 4.1665795894e-2f
#define KILN__VM_EXP_P4 1.6666665459e-1f
#define KILN__VM_EXP_P5 5.0000001201e-1f

/* Cephes tanhf for |x| < 0.625: x + x^3 P(x^2). */
#define KILN__VM_TANH_P0 -5.70498872745e-3f
#define KILN__VM_TANH_P1 2.06390887954e-2f
#define KILN__VM_TANH_P2 -5.37397155531e-2f
#define KILN__VM_TANH_P3 1.33314422036e-1f
#define KILN__VM_TANH_P4 -3.33332819422e-1f

/* erf(x) / x as a polynomial in x^2 on [0, 0.921875] (degree 6). */
static const float kiln__vm_erf_p[7] = {1.128379225730896f,     -0.37612634897232056f, 0.11283713579177856f,
                                        -0.02686024084687233f,  0.005202834494411945f, -0.0008160769357345998f,
                                        8.438703662250191e-05f};
/* log(erfc(x)) + x^2 as a polynomial in x - 3.4609375 on [0.921875, 6] (degree 9; absolute
 * error 3.3e-7 evaluated in float, i.e. that relative error on erfc). */
static const float kiln__vm_erf_q[10] = {-1.8519916534423828f,    -0.2687210738658905f,    0.03386635333299637f,
                                         -0.005364654585719109f,  0.0009044123580679297f,  -0.00015299685765057802f,
                                         2.482380841684062e-05f,  -4.108269877178827e-06f, 7.442778837685182e-07f,
                                         -8.501267956262382e-08f};

/* ------------------------------------------------------------------ scalar versions */

static inline float kiln__vm_bits_to_f(uint32_t u) {
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

static inline float kiln__vm_exp1(float x) {
    if (x != x) return x;
    x = x > KILN__VM_EXP_HI ? KILN__VM_EXP_HI : x < KILN__VM_EXP_LO ? KILN__VM_EXP_LO : x;
    /* Round to nearest through the 1.5 * 2^23 trick (no libm call without SSE4.1). */
    float n = (x * KILN__VM_LOG2E + 12582912.0f) - 12582912.0f;
    float r = x - n * KILN__VM_LN2_HI;
    r = r - n * KILN__VM_LN2_LO;
    float p = KILN__VM_EXP_P0;
    p = p * r + KILN__VM_EXP_P1;
    p = p * r + KILN__VM_EXP_P2;
    p = p * r + KILN__VM_EXP_P3;
    p = p * r + KILN__VM_EXP_P4;
    p = p * r + KILN__VM_EXP_P5;
    p = p * (r * r) + r + 1.0f;
    int32_t ni = (int32_t)n, n1 = ni / 2, n2 = ni - n1; /* each factor stays a normal float */
    return p * kiln__vm_bits_to_f((uint32_t)(n1 + 127) << 23) * kiln__vm_bits_to_f((uint32_t)(n2 + 127) << 23);
}

static inline float kiln__vm_sigmoid1(float x) { return 1.0f / (1.0f + kiln__vm_exp1(-x)); }

static inline float kiln__vm_tanh1(float x) {
    float a = fabsf(x);
    if (a < 0.625f) {
        float z = x * x, p = KILN__VM_TANH_P0;
        p = p * z + KILN__VM_TANH_P1;
        p = p * z + KILN__VM_TANH_P2;
        p = p * z + KILN__VM_TANH_P3;
        p = p * z + KILN__VM_TANH_P4;
        return copysignf(p * z * x + x, x); /* keeps -0 */
    }
    float t = 1.0f - 2.0f / (kiln__vm_exp1(2.0f * a) + 1.0f); /* NaN stays NaN here */
    return copysignf(t, x);
}

static inline float kiln__vm_erf1(float x) {
    float a = fabsf(x);
    if (a < KILN__VM_ERF_SPLIT) {
        float z = x * x, p = kiln__vm_erf_p[6];
        for (int k = 5; k >= 0; k--) p = p * z + kiln__vm_erf_p[k];
        return x * p;
    }
    a = a > KILN__VM_ERF_Q_HI ? KILN__VM_ERF_Q_HI : a; /* erf is 1.0f from 3.92 on; NaN passes */
    float u = a - KILN__VM_ERF_Q_CENTER, q = kiln__vm_erf_q[9];
    for (int k = 8; k >= 0; k--) q = q * u + kiln__vm_erf_q[k];
    return copysignf(1.0f - kiln__vm_exp1(fmaf(-a, a, q)), x);
}

/* x Phi(x) = x erfc(-x / sqrt 2) / 2, from erfc(|x| / sqrt 2) directly so that negative x keep
 * their relative accuracy (1 + erf(x) would cancel). Past |x| / sqrt 2 = 6, Q is held at its
 * last value: erfc is then below 2e-17 and only its size matters. */
static inline float kiln__vm_gelu_erf1(float x) {
    float a = fabsf(x) * 0.70710678118654752440f, e;
    if (a < KILN__VM_ERF_SPLIT) {
        float z = a * a, p = kiln__vm_erf_p[6];
        for (int k = 5; k >= 0; k--) p = p * z + kiln__vm_erf_p[k];
        e = 1.0f - a * p;
    } else {
        float c = a > KILN__VM_ERF_Q_HI ? KILN__VM_ERF_Q_HI : a, u = c - KILN__VM_ERF_Q_CENTER, q = kiln__vm_erf_q[9];
        for (int k = 8; k >= 0; k--) q = q * u + kiln__vm_erf_q[k];
        e = kiln__vm_exp1(fmaf(-a, a, q));
    }
    return x * (x >= 0 ? 1.0f - 0.5f * e : 0.5f * e);
}

/* 0.5 x (1 + tanh(u)) = x sigmoid(2u): no cancellation for negative x. */
static inline float kiln__vm_gelu_tanh1(float x) {
    float u = KILN__VM_GELU_C * (x + 0.044715f * x * x * x);
    return x * kiln__vm_sigmoid1(2.0f * u);
}

/* ------------------------------------------------------------------ AVX2 + FMA versions */

#ifdef KILN__VM_X86
#define KILN__VM_AVX2 __attribute__((target("avx2,fma")))

static inline KILN__VM_AVX2 __m256 kiln__vm_exp8(__m256 x) {
    /* min/max return their second operand when either is NaN: NaN passes through. */
    x = _mm256_max_ps(_mm256_set1_ps(KILN__VM_EXP_LO), _mm256_min_ps(_mm256_set1_ps(KILN__VM_EXP_HI), x));
    __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(KILN__VM_LOG2E)),
                               _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(KILN__VM_LN2_HI), x);
    r = _mm256_fnmadd_ps(n, _mm256_set1_ps(KILN__VM_LN2_LO), r);
    __m256 p = _mm256_set1_ps(KILN__VM_EXP_P0);
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(KILN__VM_EXP_P1));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(KILN__VM_EXP_P2));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(KILN__VM_EXP_P3));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(KILN__VM_EXP_P4));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(KILN__VM_EXP_P5));
    p = _mm256_fmadd_ps(p, _mm256_mul_ps(r, r), _mm256_add_ps(r, _mm256_set1_ps(1.0f)));
    __m256i ni = _mm256_cvtps_epi32(n);
    __m256i n1 = _mm256_srai_epi32(ni, 1), n2 = _mm256_sub_epi32(ni, n1);
    __m256i bias = _mm256_set1_epi32(127);
    __m256 s1 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(n1, bias), 23));
    __m256 s2 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(n2, bias), 23));
    return _mm256_mul_ps(_mm256_mul_ps(p, s1), s2);
}

static inline KILN__VM_AVX2 __m256 kiln__vm_sigmoid8(__m256 x) {
    __m256 one = _mm256_set1_ps(1.0f);
    return _mm256_div_ps(one, _mm256_add_ps(one, kiln__vm_exp8(_mm256_sub_ps(_mm256_setzero_ps(), x))));
}

static inline KILN__VM_AVX2 __m256 kiln__vm_tanh8(__m256 x) {
    __m256 sign = _mm256_set1_ps(-0.0f), a = _mm256_andnot_ps(sign, x), one = _mm256_set1_ps(1.0f);
    __m256 z = _mm256_mul_ps(x, x), p = _mm256_set1_ps(KILN__VM_TANH_P0);
    p = _mm256_fmadd_ps(p, z, _mm256_set1_ps(KILN__VM_TANH_P1));
    p = _mm256_fmadd_ps(p, z, _mm256_set1_ps(KILN__VM_TANH_P2));
    p = _mm256_fmadd_ps(p, z, _mm256_set1_ps(KILN__VM_TANH_P3));
    p = _mm256_fmadd_ps(p, z, _mm256_set1_ps(KILN__VM_TANH_P4));
    __m256 small = _mm256_fmadd_ps(_mm256_mul_ps(p, z), x, x);
    __m256 e = kiln__vm_exp8(_mm256_add_ps(a, a));
    __m256 big = _mm256_sub_ps(one, _mm256_div_ps(_mm256_set1_ps(2.0f), _mm256_add_ps(e, one)));
    /* NaN compares false, so it takes `big`, which is NaN; the sign goes on last (tanh(-0) = -0). */
    __m256 r = _mm256_blendv_ps(big, small, _mm256_cmp_ps(a, _mm256_set1_ps(0.625f), _CMP_LT_OQ));
    return _mm256_or_ps(_mm256_andnot_ps(sign, r), _mm256_and_ps(sign, x));
}

static inline KILN__VM_AVX2 __m256 kiln__vm_erf8(__m256 x) {
    __m256 sign = _mm256_set1_ps(-0.0f), a = _mm256_andnot_ps(sign, x);
    __m256 z = _mm256_mul_ps(x, x), p = _mm256_set1_ps(kiln__vm_erf_p[6]);
    for (int k = 5; k >= 0; k--) p = _mm256_fmadd_ps(p, z, _mm256_set1_ps(kiln__vm_erf_p[k]));
    __m256 small = _mm256_mul_ps(x, p);
    __m256 c = _mm256_min_ps(_mm256_set1_ps(KILN__VM_ERF_Q_HI), a);
    __m256 u = _mm256_sub_ps(c, _mm256_set1_ps(KILN__VM_ERF_Q_CENTER)), q = _mm256_set1_ps(kiln__vm_erf_q[9]);
    for (int k = 8; k >= 0; k--) q = _mm256_fmadd_ps(q, u, _mm256_set1_ps(kiln__vm_erf_q[k]));
    __m256 big = _mm256_sub_ps(_mm256_set1_ps(1.0f), kiln__vm_exp8(_mm256_fnmadd_ps(c, c, q)));
    big = _mm256_or_ps(big, _mm256_and_ps(sign, x));
    return _mm256_blendv_ps(big, small, _mm256_cmp_ps(a, _mm256_set1_ps(KILN__VM_ERF_SPLIT), _CMP_LT_OQ));
}

static inline KILN__VM_AVX2 __m256 kiln__vm_gelu_erf8(__m256 x) {
    __m256 sign = _mm256_set1_ps(-0.0f), one = _mm256_set1_ps(1.0f), half = _mm256_set1_ps(0.5f);
    __m256 a = _mm256_mul_ps(_mm256_andnot_ps(sign, x), _mm256_set1_ps(0.70710678118654752440f));
    __m256 z = _mm256_mul_ps(a, a), p = _mm256_set1_ps(kiln__vm_erf_p[6]);
    for (int k = 5; k >= 0; k--) p = _mm256_fmadd_ps(p, z, _mm256_set1_ps(kiln__vm_erf_p[k]));
    __m256 small = _mm256_fnmadd_ps(a, p, one);
    __m256 c = _mm256_min_ps(_mm256_set1_ps(KILN__VM_ERF_Q_HI), a);
    __m256 u = _mm256_sub_ps(c, _mm256_set1_ps(KILN__VM_ERF_Q_CENTER)), q = _mm256_set1_ps(kiln__vm_erf_q[9]);
    for (int k = 8; k >= 0; k--) q = _mm256_fmadd_ps(q, u, _mm256_set1_ps(kiln__vm_erf_q[k]));
    __m256 big = kiln__vm_exp8(_mm256_fnmadd_ps(a, a, q));
    __m256 e = _mm256_mul_ps(half, _mm256_blendv_ps(big, small, _mm256_cmp_ps(a, _mm256_set1_ps(KILN__VM_ERF_SPLIT), _CMP_LT_OQ)));
    __m256 phi = _mm256_blendv_ps(e, _mm256_sub_ps(one, e), _mm256_cmp_ps(x, _mm256_setzero_ps(), _CMP_GE_OQ));
    return _mm256_mul_ps(x, phi);
}

static inline KILN__VM_AVX2 __m256 kiln__vm_gelu_tanh8(__m256 x) {
    __m256 x3 = _mm256_mul_ps(_mm256_mul_ps(x, x), x);
    __m256 u = _mm256_mul_ps(_mm256_set1_ps(2.0f * KILN__VM_GELU_C), _mm256_fmadd_ps(_mm256_set1_ps(0.044715f), x3, x));
    return _mm256_mul_ps(x, kiln__vm_sigmoid8(u));
}

static inline int kiln__vm_have_avx2(void) {
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
}

/* ------------------------------------------------------------------ AVX-512 versions */

/* The same operations in the same order as the AVX2 versions, 16 lanes wide: results are
 * bit-identical (2^n by scalef rounds once, as the two exact-then-rounding factors do). */
#define KILN__VM_AVX512 __attribute__((target("avx512f,avx2,fma")))

/* exp(x) for x already in range: the polynomial on the reduced argument, scaled by 2^n. */
static inline KILN__VM_AVX512 __m512 kiln__vm_exp16_in_range(__m512 x) {
    __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(KILN__VM_LOG2E)),
                                    _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(KILN__VM_LN2_HI), x);
    r = _mm512_fnmadd_ps(n, _mm512_set1_ps(KILN__VM_LN2_LO), r);
    __m512 p = _mm512_set1_ps(KILN__VM_EXP_P0);
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(KILN__VM_EXP_P1));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(KILN__VM_EXP_P2));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(KILN__VM_EXP_P3));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(KILN__VM_EXP_P4));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(KILN__VM_EXP_P5));
    p = _mm512_fmadd_ps(p, _mm512_mul_ps(r, r), _mm512_add_ps(r, _mm512_set1_ps(1.0f)));
    return _mm512_scalef_ps(p, n);
}

static inline KILN__VM_AVX512 __m512 kiln__vm_exp16(__m512 x) {
    /* min/max return their second operand when either is NaN: NaN passes through. */
    return kiln__vm_exp16_in_range(
        _mm512_max_ps(_mm512_set1_ps(KILN__VM_EXP_LO), _mm512_min_ps(_mm512_set1_ps(KILN__VM_EXP_HI), x)));
}

static inline KILN__VM_AVX512 __m512 kiln__vm_sigmoid16(__m512 x) {
    __m512 one = _mm512_set1_ps(1.0f);
    return _mm512_div_ps(one, _mm512_add_ps(one, kiln__vm_exp16(_mm512_sub_ps(_mm512_setzero_ps(), x))));
}

/* Sign bits of x put onto r (whose sign bit is clear). */
static inline KILN__VM_AVX512 __m512 kiln__vm_with_sign16(__m512 r, __m512 x) {
    __m512i sign = _mm512_set1_epi32((int32_t)0x80000000u);
    return _mm512_castsi512_ps(_mm512_ternarylogic_epi32(_mm512_castps_si512(r), _mm512_castps_si512(x), sign, 0xf8));
}

static inline KILN__VM_AVX512 __m512 kiln__vm_tanh16(__m512 x) {
    __m512 a = _mm512_abs_ps(x), one = _mm512_set1_ps(1.0f);
    __m512 z = _mm512_mul_ps(x, x), p = _mm512_set1_ps(KILN__VM_TANH_P0);
    p = _mm512_fmadd_ps(p, z, _mm512_set1_ps(KILN__VM_TANH_P1));
    p = _mm512_fmadd_ps(p, z, _mm512_set1_ps(KILN__VM_TANH_P2));
    p = _mm512_fmadd_ps(p, z, _mm512_set1_ps(KILN__VM_TANH_P3));
    p = _mm512_fmadd_ps(p, z, _mm512_set1_ps(KILN__VM_TANH_P4));
    __m512 small = _mm512_fmadd_ps(_mm512_mul_ps(p, z), x, x);
    __m512 e = kiln__vm_exp16(_mm512_add_ps(a, a));
    __m512 big = _mm512_sub_ps(one, _mm512_div_ps(_mm512_set1_ps(2.0f), _mm512_add_ps(e, one)));
    __m512 r = _mm512_mask_blend_ps(_mm512_cmp_ps_mask(a, _mm512_set1_ps(0.625f), _CMP_LT_OQ), big, small);
    return kiln__vm_with_sign16(_mm512_abs_ps(r), x);
}

static inline KILN__VM_AVX512 __m512 kiln__vm_erf16(__m512 x) {
    __m512 a = _mm512_abs_ps(x);
    __m512 z = _mm512_mul_ps(x, x), p = _mm512_set1_ps(kiln__vm_erf_p[6]);
    for (int k = 5; k >= 0; k--) p = _mm512_fmadd_ps(p, z, _mm512_set1_ps(kiln__vm_erf_p[k]));
    __m512 small = _mm512_mul_ps(x, p);
    __m512 c = _mm512_min_ps(_mm512_set1_ps(KILN__VM_ERF_Q_HI), a);
    __m512 u = _mm512_sub_ps(c, _mm512_set1_ps(KILN__VM_ERF_Q_CENTER)), q = _mm512_set1_ps(kiln__vm_erf_q[9]);
    for (int k = 8; k >= 0; k--) q = _mm512_fmadd_ps(q, u, _mm512_set1_ps(kiln__vm_erf_q[k]));
    __m512 big = _mm512_sub_ps(_mm512_set1_ps(1.0f), kiln__vm_exp16(_mm512_fnmadd_ps(c, c, q)));
    big = kiln__vm_with_sign16(big, x);
    return _mm512_mask_blend_ps(_mm512_cmp_ps_mask(a, _mm512_set1_ps(KILN__VM_ERF_SPLIT), _CMP_LT_OQ), big, small);
}

static inline KILN__VM_AVX512 __m512 kiln__vm_gelu_erf16(__m512 x) {
    __m512 one = _mm512_set1_ps(1.0f), half = _mm512_set1_ps(0.5f);
    __m512 a = _mm512_mul_ps(_mm512_abs_ps(x), _mm512_set1_ps(0.70710678118654752440f));
    __m512 z = _mm512_mul_ps(a, a), p = _mm512_set1_ps(kiln__vm_erf_p[6]);
    for (int k = 5; k >= 0; k--) p = _mm512_fmadd_ps(p, z, _mm512_set1_ps(kiln__vm_erf_p[k]));
    __m512 small = _mm512_fnmadd_ps(a, p, one);
    __m512 c = _mm512_min_ps(_mm512_set1_ps(KILN__VM_ERF_Q_HI), a);
    __m512 u = _mm512_sub_ps(c, _mm512_set1_ps(KILN__VM_ERF_Q_CENTER)), q = _mm512_set1_ps(kiln__vm_erf_q[9]);
    for (int k = 8; k >= 0; k--) q = _mm512_fmadd_ps(q, u, _mm512_set1_ps(kiln__vm_erf_q[k]));
    __m512 big = kiln__vm_exp16(_mm512_fnmadd_ps(a, a, q));
    __mmask16 lt = _mm512_cmp_ps_mask(a, _mm512_set1_ps(KILN__VM_ERF_SPLIT), _CMP_LT_OQ);
    __m512 e = _mm512_mul_ps(half, _mm512_mask_blend_ps(lt, big, small));
    __mmask16 ge = _mm512_cmp_ps_mask(x, _mm512_setzero_ps(), _CMP_GE_OQ);
    return _mm512_mul_ps(x, _mm512_mask_blend_ps(ge, e, _mm512_sub_ps(one, e)));
}

static inline KILN__VM_AVX512 __m512 kiln__vm_gelu_tanh16(__m512 x) {
    __m512 x3 = _mm512_mul_ps(_mm512_mul_ps(x, x), x);
    __m512 u = _mm512_mul_ps(_mm512_set1_ps(2.0f * KILN__VM_GELU_C), _mm512_fmadd_ps(_mm512_set1_ps(0.044715f), x3, x));
    return _mm512_mul_ps(x, kiln__vm_sigmoid16(u));
}

static inline int kiln__vm_have_avx512(void) { return kiln__vm_have_avx2() && __builtin_cpu_supports("avx512f"); }
#endif

/* ------------------------------------------------------------------ rows */

enum { KILN__VM_EXP, KILN__VM_SIGMOID, KILN__VM_SILU, KILN__VM_TANH, KILN__VM_ERF, KILN__VM_GELU_ERF, KILN__VM_GELU_TANH };

static inline float kiln__vm_apply1(int fn, float x) {
    switch (fn) {
    case KILN__VM_EXP: return kiln__vm_exp1(x);
    case KILN__VM_SIGMOID: return kiln__vm_sigmoid1(x);
    case KILN__VM_SILU: return x * kiln__vm_sigmoid1(x);
    case KILN__VM_TANH: return kiln__vm_tanh1(x);
    case KILN__VM_ERF: return kiln__vm_erf1(x);
    case KILN__VM_GELU_ERF: return kiln__vm_gelu_erf1(x);
    default: return kiln__vm_gelu_tanh1(x);
    }
}

#ifdef KILN__VM_X86
static inline KILN__VM_AVX2 __m256 kiln__vm_apply8(int fn, __m256 x) {
    switch (fn) {
    case KILN__VM_EXP: return kiln__vm_exp8(x);
    case KILN__VM_SIGMOID: return kiln__vm_sigmoid8(x);
    case KILN__VM_SILU: return _mm256_mul_ps(x, kiln__vm_sigmoid8(x));
    case KILN__VM_TANH: return kiln__vm_tanh8(x);
    case KILN__VM_ERF: return kiln__vm_erf8(x);
    case KILN__VM_GELU_ERF: return kiln__vm_gelu_erf8(x);
    default: return kiln__vm_gelu_tanh8(x);
    }
}

/* One loop per function so the switch is out of the loop; the tail goes through a padded
 * buffer so every element gets the same vector arithmetic. */
static inline KILN__VM_AVX2 void kiln__vm_row_avx2(int fn, const float *x, float *y, int64_t n) {
#define KILN__VM_LOOP(FN)                                                                                      \
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(y + i, kiln__vm_apply8(FN, _mm256_loadu_ps(x + i)));           \
    break;
    int64_t i = 0;
    switch (fn) {
    case KILN__VM_EXP: KILN__VM_LOOP(KILN__VM_EXP)
    case KILN__VM_SIGMOID: KILN__VM_LOOP(KILN__VM_SIGMOID)
    case KILN__VM_SILU: KILN__VM_LOOP(KILN__VM_SILU)
    case KILN__VM_TANH: KILN__VM_LOOP(KILN__VM_TANH)
    case KILN__VM_ERF: KILN__VM_LOOP(KILN__VM_ERF)
    case KILN__VM_GELU_ERF: KILN__VM_LOOP(KILN__VM_GELU_ERF)
    default: KILN__VM_LOOP(KILN__VM_GELU_TANH)
    }
#undef KILN__VM_LOOP
    if (i < n) {
        float buf[8] = {0};
        memcpy(buf, x + i, (size_t)(n - i) * sizeof(float));
        _mm256_storeu_ps(buf, kiln__vm_apply8(fn, _mm256_loadu_ps(buf)));
        memcpy(y + i, buf, (size_t)(n - i) * sizeof(float));
    }
}

/* kiln__vm_apply8 over 16 lanes (the GEMM epilogue's AVX-512 tiles). */
static inline KILN__VM_AVX512 __m512 kiln__vm_apply16(int fn, __m512 x) {
    switch (fn) {
    case KILN__VM_EXP: return kiln__vm_exp16(x);
    case KILN__VM_SIGMOID: return kiln__vm_sigmoid16(x);
    case KILN__VM_SILU: return _mm512_mul_ps(x, kiln__vm_sigmoid16(x));
    case KILN__VM_TANH: return kiln__vm_tanh16(x);
    case KILN__VM_ERF: return kiln__vm_erf16(x);
    case KILN__VM_GELU_ERF: return kiln__vm_gelu_erf16(x);
    default: return kiln__vm_gelu_tanh16(x);
    }
}

/* kiln__vm_row_avx2 16 lanes wide; the tail through a masked load and store. */
static inline KILN__VM_AVX512 void kiln__vm_row_avx512(int fn, const float *x, float *y, int64_t n) {
#define KILN__VM_LOOP(FN)                                                                                      \
    for (; i + 16 <= n; i += 16) _mm512_storeu_ps(y + i, kiln__vm_apply16(FN, _mm512_loadu_ps(x + i)));        \
    break;
    int64_t i = 0;
    switch (fn) {
    case KILN__VM_EXP: KILN__VM_LOOP(KILN__VM_EXP)
    case KILN__VM_SIGMOID: KILN__VM_LOOP(KILN__VM_SIGMOID)
    case KILN__VM_SILU: KILN__VM_LOOP(KILN__VM_SILU)
    case KILN__VM_TANH: KILN__VM_LOOP(KILN__VM_TANH)
    case KILN__VM_ERF: KILN__VM_LOOP(KILN__VM_ERF)
    case KILN__VM_GELU_ERF: KILN__VM_LOOP(KILN__VM_GELU_ERF)
    default: KILN__VM_LOOP(KILN__VM_GELU_TANH)
    }
#undef KILN__VM_LOOP
    if (i < n) {
        __mmask16 tail = (__mmask16)((1u << (n - i)) - 1);
        _mm512_mask_storeu_ps(y + i, tail, kiln__vm_apply16(fn, _mm512_maskz_loadu_ps(tail, x + i)));
    }
}

/* y[i] = exp(x[i] - sub); returns the sum of the y (eight float32 partial sums). */
static inline KILN__VM_AVX2 float kiln__vm_exp_sum_avx2(const float *x, float *y, int64_t n, float sub) {
    __m256 s = _mm256_set1_ps(sub), acc = _mm256_setzero_ps();
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 e = kiln__vm_exp8(_mm256_sub_ps(_mm256_loadu_ps(x + i), s));
        _mm256_storeu_ps(y + i, e);
        acc = _mm256_add_ps(acc, e);
    }
    float lanes[8], sum = 0;
    _mm256_storeu_ps(lanes, acc);
    for (int k = 0; k < 8; k++) sum += lanes[k];
    for (; i < n; i++) sum += y[i] = kiln__vm_exp1(x[i] - sub);
    return sum;
}
#endif

/* y = fn(x) over n floats (x may equal y). */
static inline void kiln__vm_row(int fn, const float *x, float *y, int64_t n) {
#ifdef KILN__VM_X86
    if (kiln__vm_have_avx512()) {
        kiln__vm_row_avx512(fn, x, y, n);
        return;
    }
    if (kiln__vm_have_avx2()) {
        kiln__vm_row_avx2(fn, x, y, n);
        return;
    }
#endif
    for (int64_t i = 0; i < n; i++) y[i] = kiln__vm_apply1(fn, x[i]);
}

/* y[i] = exp(x[i] - sub) and their float32 sum. */
static inline float kiln__vm_exp_sum(const float *x, float *y, int64_t n, float sub) {
#ifdef KILN__VM_X86
    if (kiln__vm_have_avx2()) return kiln__vm_exp_sum_avx2(x, y, n, sub);
#endif
    float sum = 0;
    for (int64_t i = 0; i < n; i++) sum += y[i] = kiln__vm_exp1(x[i] - sub);
    return sum;
}

#ifdef KILN__VM_X86
/* r[l], lane q <- r[q], lane l: the 8x8 transpose in three rounds of shuffles (AVX2). */
__attribute__((target("avx2"), always_inline)) static inline void kiln__vm_transpose8(__m256 r[8]) {
    __m256 t[8];
    for (int k = 0; k < 8; k += 2) {
        t[k] = _mm256_unpacklo_ps(r[k], r[k + 1]);
        t[k + 1] = _mm256_unpackhi_ps(r[k], r[k + 1]);
    }
    for (int k = 0; k < 8; k += 4) { /* r[k + x], 128-bit lane L: column 4L + x of rows k .. k + 3 */
        r[k] = _mm256_shuffle_ps(t[k], t[k + 2], 0x44);
        r[k + 1] = _mm256_shuffle_ps(t[k], t[k + 2], 0xEE);
        r[k + 2] = _mm256_shuffle_ps(t[k + 1], t[k + 3], 0x44);
        r[k + 3] = _mm256_shuffle_ps(t[k + 1], t[k + 3], 0xEE);
    }
    for (int k = 0; k < 4; k++) {
        t[k] = _mm256_permute2f128_ps(r[k], r[k + 4], 0x20);
        t[k + 4] = _mm256_permute2f128_ps(r[k], r[k + 4], 0x31);
    }
    for (int k = 0; k < 8; k++) r[k] = t[k];
}

/* r[l], lane q <- r[q], lane l: the 16x16 transpose in four rounds of shuffles. */
__attribute__((target("avx512f"), always_inline)) static inline void kiln__vm_transpose16(__m512 r[16]) {
    __m512 t[16], u[16];
    for (int k = 0; k < 8; k++) {
        t[2 * k] = _mm512_unpacklo_ps(r[2 * k], r[2 * k + 1]);
        t[2 * k + 1] = _mm512_unpackhi_ps(r[2 * k], r[2 * k + 1]);
    }
    for (int k = 0; k < 4; k++) { /* u[4k + x], 128-bit lane L: column 4L + x of rows 4k .. 4k + 3 */
        u[4 * k] = _mm512_shuffle_ps(t[4 * k], t[4 * k + 2], 0x44);
        u[4 * k + 1] = _mm512_shuffle_ps(t[4 * k], t[4 * k + 2], 0xEE);
        u[4 * k + 2] = _mm512_shuffle_ps(t[4 * k + 1], t[4 * k + 3], 0x44);
        u[4 * k + 3] = _mm512_shuffle_ps(t[4 * k + 1], t[4 * k + 3], 0xEE);
    }
    for (int x = 0; x < 4; x++) {
        __m512 v = _mm512_shuffle_f32x4(u[x], u[4 + x], 0x88), w = _mm512_shuffle_f32x4(u[x], u[4 + x], 0xDD);
        __m512 v2 = _mm512_shuffle_f32x4(u[8 + x], u[12 + x], 0x88), w2 = _mm512_shuffle_f32x4(u[8 + x], u[12 + x], 0xDD);
        r[x] = _mm512_shuffle_f32x4(v, v2, 0x88);
        r[8 + x] = _mm512_shuffle_f32x4(v, v2, 0xDD);
        r[4 + x] = _mm512_shuffle_f32x4(w, w2, 0x88);
        r[12 + x] = _mm512_shuffle_f32x4(w, w2, 0xDD);
    }
}
#endif

#endif
