/* Softmax kernel: x is viewed as [outer, n, inner] and each of the outer * inner rows of n
 * values (stride inner) is normalized. The maximum is subtracted first so exp never
 * overflows. Contiguous float32 rows run AVX-512 (four rows interleaved) or AVX2 (vmath.h's
 * exp polynomial, max 1 ulp) and sum in float32 lanes (every term is in (0, 1]: relative error
 * about n / 16 * 2^-24); strided rows and other dtypes sum in double.
 *
 * Terms below exp(cut) with cut = -87 + log(n) + 1 are flushed to 0: exp(-87) is the smallest
 * normal float, the sum is at least 1 and at most n, so every stored value stays normal while
 * a flushed term is below 1e-35 of the sum. Subnormal results cost Intel CPUs a microcode assist
 * each (about 4x the whole row's time), and attention masks (-10000 added to hidden keys) would
 * make every hidden key's term subnormal. */
#include "gemm.h"
#include "vmath.h"

#include <math.h>

typedef struct softmax_job {
    kiln_dtype dtype;
    const void *x;
    void *y;
    int64_t n, inner;
    bool log;
    float cut; /* terms with x - max below this are flushed to 0 (see the top) */
    int simd;
} softmax_job;

static float exp_cut(float d, float cut) { return d < cut ? 0.0f : kiln__vm_exp1(d); }

/* y = (x - mx) - log(sum) for log-softmax, else y (holding the terms) * (1 / sum). */
static void finish_scalar(const float *x, float *y, int64_t n, int64_t s, float mx, float sum, bool take_log) {
    if (take_log) {
        float lse = logf(sum);
        for (int64_t i = 0; i < n; i++) y[i * s] = (x[i * s] - mx) - lse;
    } else {
        float inv = 1.0f / sum;
        for (int64_t i = 0; i < n; i++) y[i * s] *= inv;
    }
}

#ifdef KILN__VM_X86
/* exp(d) for d <= 0 (or NaN, which passes): vmath.h's polynomial, 2^n applied by scalef
 * (d >= cut >= -87 keeps n >= -126, so the result is normal), terms below cut flushed. */
__attribute__((target("avx512f,avx2,fma"))) static inline __m512 exp16_cut(__m512 d, __m512 cut) {
    __m512 e = kiln__vm_exp16_in_range(_mm512_max_ps(cut, d)); /* the second operand, d, when d is NaN */
    __mmask16 keep = _mm512_cmp_ps_mask(d, cut, _CMP_NLT_UQ); /* NaN is kept */
    return _mm512_maskz_mov_ps(keep, e);
}

__attribute__((target("avx512f,avx2,fma"))) static void row_avx512(const float *x, float *y, int64_t n, float cut,
                                                          bool take_log) {
    int64_t full = n & ~(int64_t)15;
    __mmask16 tail = (__mmask16)((1u << (n - full)) - 1);
    __m512 mv = _mm512_set1_ps(-INFINITY);
    /* max_ps gives its second operand when the first is NaN: NaN inputs do not set the max. */
    for (int64_t i = 0; i < full; i += 16) mv = _mm512_max_ps(_mm512_loadu_ps(x + i), mv);
    if (tail) mv = _mm512_mask_max_ps(mv, tail, _mm512_maskz_loadu_ps(tail, x + full), mv);
    float mx = _mm512_reduce_max_ps(mv);
    __m512 m = _mm512_set1_ps(mx), c = _mm512_set1_ps(cut), acc = _mm512_setzero_ps();
    for (int64_t i = 0; i < full; i += 16) {
        __m512 e = exp16_cut(_mm512_sub_ps(_mm512_loadu_ps(x + i), m), c);
        _mm512_storeu_ps(y + i, e);
        acc = _mm512_add_ps(acc, e);
    }
    if (tail) {
        __m512 e = exp16_cut(_mm512_sub_ps(_mm512_maskz_loadu_ps(tail, x + full), m), c);
        _mm512_mask_storeu_ps(y + full, tail, e);
        acc = _mm512_mask_add_ps(acc, tail, acc, e);
    }
    float sum = _mm512_reduce_add_ps(acc);
    if (take_log) {
        __m512 sub = _mm512_set1_ps(mx), lse = _mm512_set1_ps(logf(sum));
        for (int64_t i = 0; i < full; i += 16)
            _mm512_storeu_ps(y + i, _mm512_sub_ps(_mm512_sub_ps(_mm512_loadu_ps(x + i), sub), lse));
        if (tail)
            _mm512_mask_storeu_ps(y + full, tail,
                                  _mm512_sub_ps(_mm512_sub_ps(_mm512_maskz_loadu_ps(tail, x + full), sub), lse));
        return;
    }
    __m512 inv = _mm512_set1_ps(1.0f / sum);
    for (int64_t i = 0; i < full; i += 16) _mm512_storeu_ps(y + i, _mm512_mul_ps(_mm512_loadu_ps(y + i), inv));
    if (tail) _mm512_mask_storeu_ps(y + full, tail, _mm512_mul_ps(_mm512_maskz_loadu_ps(tail, y + full), inv));
}

/* Four consecutive rows of n at once, as row_avx512 computes each (the same operations in the
 * same order, so the same results) but interleaved: one row's reductions and exp chains are
 * dependent steps that would leave the core waiting, the four rows' are independent. */
__attribute__((target("avx512f,avx2,fma"))) static void rows4_avx512(const float *x, float *y, int64_t n, float cut) {
    int64_t full = n & ~(int64_t)15;
    __mmask16 tail = (__mmask16)((1u << (n - full)) - 1);
    __m512 mv[4], m[4], acc[4], c = _mm512_set1_ps(cut);
    for (int r = 0; r < 4; r++) mv[r] = _mm512_set1_ps(-INFINITY);
    for (int64_t i = 0; i < full; i += 16)
        for (int r = 0; r < 4; r++) mv[r] = _mm512_max_ps(_mm512_loadu_ps(x + r * n + i), mv[r]);
    if (tail)
        for (int r = 0; r < 4; r++)
            mv[r] = _mm512_mask_max_ps(mv[r], tail, _mm512_maskz_loadu_ps(tail, x + r * n + full), mv[r]);
    for (int r = 0; r < 4; r++) {
        m[r] = _mm512_set1_ps(_mm512_reduce_max_ps(mv[r]));
        acc[r] = _mm512_setzero_ps();
    }
    for (int64_t i = 0; i < full; i += 16)
        for (int r = 0; r < 4; r++) {
            __m512 e = exp16_cut(_mm512_sub_ps(_mm512_loadu_ps(x + r * n + i), m[r]), c);
            _mm512_storeu_ps(y + r * n + i, e);
            acc[r] = _mm512_add_ps(acc[r], e);
        }
    if (tail)
        for (int r = 0; r < 4; r++) {
            __m512 e = exp16_cut(_mm512_sub_ps(_mm512_maskz_loadu_ps(tail, x + r * n + full), m[r]), c);
            _mm512_mask_storeu_ps(y + r * n + full, tail, e);
            acc[r] = _mm512_mask_add_ps(acc[r], tail, acc[r], e);
        }
    __m512 inv[4];
    for (int r = 0; r < 4; r++) inv[r] = _mm512_set1_ps(1.0f / _mm512_reduce_add_ps(acc[r]));
    for (int64_t i = 0; i < full; i += 16)
        for (int r = 0; r < 4; r++)
            _mm512_storeu_ps(y + r * n + i, _mm512_mul_ps(_mm512_loadu_ps(y + r * n + i), inv[r]));
    if (tail)
        for (int r = 0; r < 4; r++)
            _mm512_mask_storeu_ps(y + r * n + full, tail,
                                  _mm512_mul_ps(_mm512_maskz_loadu_ps(tail, y + r * n + full), inv[r]));
}

KILN__VM_AVX2 static void row_avx2(const float *x, float *y, int64_t n, float cut, bool take_log) {
    __m256 mv = _mm256_set1_ps(-INFINITY);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) mv = _mm256_max_ps(_mm256_loadu_ps(x + i), mv);
    float lanes[8], mx = -INFINITY;
    _mm256_storeu_ps(lanes, mv);
    for (int k = 0; k < 8; k++) mx = lanes[k] > mx ? lanes[k] : mx;
    for (int64_t k = i; k < n; k++) mx = x[k] > mx ? x[k] : mx;
    __m256 m = _mm256_set1_ps(mx), c = _mm256_set1_ps(cut), acc = _mm256_setzero_ps();
    for (i = 0; i + 8 <= n; i += 8) {
        __m256 d = _mm256_sub_ps(_mm256_loadu_ps(x + i), m);
        __m256 e = _mm256_and_ps(kiln__vm_exp8(_mm256_max_ps(c, d)), _mm256_cmp_ps(d, c, _CMP_NLT_UQ));
        _mm256_storeu_ps(y + i, e);
        acc = _mm256_add_ps(acc, e);
    }
    _mm256_storeu_ps(lanes, acc);
    float sum = ((lanes[0] + lanes[1]) + (lanes[2] + lanes[3])) + ((lanes[4] + lanes[5]) + (lanes[6] + lanes[7]));
    for (; i < n; i++) sum += y[i] = exp_cut(x[i] - mx, cut);
    finish_scalar(x, y, n, 1, mx, sum, take_log);
}
#endif

/* Float32 rows of stride s (and contiguous rows without AVX2): one value at a time; strided
 * sums in double. */
static void row_f32(const float *x, float *y, int64_t n, int64_t s, float cut, bool take_log) {
    float mx = -INFINITY;
    for (int64_t i = 0; i < n; i++) mx = x[i * s] > mx ? x[i * s] : mx;
    double sum = 0;
    for (int64_t i = 0; i < n; i++) {
        float e = exp_cut(x[i * s] - mx, cut);
        if (!take_log) y[i * s] = e;
        sum += e;
    }
    finish_scalar(x, y, n, s, mx, (float)sum, take_log);
}

/* Other float dtypes go through double, element by element. */
static void row_any(kiln_dtype t, const void *x, void *y, int64_t base, int64_t n, int64_t s, bool take_log) {
    double mx = -INFINITY, sum = 0;
    for (int64_t i = 0; i < n; i++) {
        double v = kiln__load_f64(x, t, base + i * s);
        mx = v > mx ? v : mx;
    }
    for (int64_t i = 0; i < n; i++) sum += exp(kiln__load_f64(x, t, base + i * s) - mx);
    double lse = log(sum);
    for (int64_t i = 0; i < n; i++) {
        double v = kiln__load_f64(x, t, base + i * s) - mx;
        kiln__store_f64(y, t, base + i * s, take_log ? v - lse : exp(v) / sum);
    }
}

static void softmax_range(void *arg, int64_t begin, int64_t end) {
    const softmax_job *j = arg;
#ifdef KILN__VM_X86
    if (j->dtype == KILN_FLOAT32 && j->inner == 1 && j->simd == KILN__SIMD_AVX512 && !j->log)
        for (; begin + 4 <= end; begin += 4)
            rows4_avx512((const float *)j->x + begin * j->n, (float *)j->y + begin * j->n, j->n, j->cut);
#endif
    for (int64_t r = begin; r < end; r++) {
        int64_t base = (r / j->inner) * j->n * j->inner + r % j->inner;
        if (j->dtype != KILN_FLOAT32) {
            row_any(j->dtype, j->x, j->y, base, j->n, j->inner, j->log);
            continue;
        }
        const float *x = (const float *)j->x + base;
        float *y = (float *)j->y + base;
#ifdef KILN__VM_X86
        if (j->inner == 1 && j->simd == KILN__SIMD_AVX512) {
            row_avx512(x, y, j->n, j->cut, j->log);
            continue;
        }
        if (j->inner == 1 && j->simd == KILN__SIMD_AVX2) {
            row_avx2(x, y, j->n, j->cut, j->log);
            continue;
        }
#endif
        row_f32(x, y, j->n, j->inner, j->cut, j->log);
    }
}

kiln_status kiln__cpu_softmax(const kiln_layer *layer, const kiln__value *inputs, kiln__value *outputs,
                              kiln__cpu_ctx *ctx) {
    const kiln__softmax_params *p = &layer->p.softmax;
    const kiln_dims *d = &inputs[0].dims;
    int32_t axis;
    if (!kiln__norm_axis(p->axis, d->nb_dims, &axis))
        return kiln__layer_error(layer, KILN_INVALID_ARGUMENT, "axis %d is out of range for rank %d", p->axis,
                                 d->nb_dims);
    int64_t outer = 1, n = 1, inner = 1;
    for (int32_t i = 0; i < d->nb_dims; i++) {
        if (i < axis)
            outer *= d->d[i];
        else if (i == axis || p->coerce_2d)
            n *= d->d[i];
        else
            inner *= d->d[i];
    }
    if (outer * n * inner == 0) return KILN_OK;
    softmax_job job = {inputs[0].dtype, inputs[0].data, outputs[0].data, n, inner, p->log != 0,
                       -87.0f + logf((float)n) + 1.0f, kiln__cpu_simd()};
    kiln__parallel_for(ctx->pool, outer * inner, KILN__MAX(1, 8192 / n), softmax_range, &job);
    return KILN_OK;
}
