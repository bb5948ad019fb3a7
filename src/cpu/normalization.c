/* Normalization kernels. Layer, RMS, instance and group normalization all normalize
 * contiguous blocks of x: statistics in two passes (so no cancellation), then
 * y = (x - mean) * rstd * scale + bias with scale/bias indexed per element (layer, rms) or
 * per channel. Batch normalization uses its given per-channel statistics the same way.
 * Float32 blocks sum in eight float32 partial sums (vectorizes; relative error about
 * block / 8 * 2^-24 on the mean and variance, well inside float32 outputs' tolerance for the
 * block sizes of real models) and apply with float32 parameters; other dtypes use double.
 * Float32 layer and RMS rows run AVX-512 where the CPU has it (the same passes in 4 x 16 partial
 * sums), and float32 parameters of the normalized shape are read in place instead of converted
 * per call. */
#include "gemm.h"

#include <math.h>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define NORM_X86 1
#include <immintrin.h>
#endif

typedef struct norm_job {
    int32_t type;
    kiln_dtype dtype;
    const void *x;
    void *y;
    double eps;
    int64_t block;       /* elements per normalized block */
    int64_t sub;         /* elements sharing one scale/bias entry inside a block */
    int64_t groups_per;  /* blocks per sample along the channel dim (C for instance, G for group) */
    const double *scale, *bias; /* batch: scale already divided by sqrt(var + eps) */
    const float *fscale, *fbias; /* layer/rms with float32 x: the same as float */
    const double *mean;  /* batch: per channel */
    int64_t channels;    /* batch: C */
    bool avx512;         /* layer/rms float32 rows through layer_row_avx512 */
} norm_job;

/* Sum of x[i] - center (squared when sq) in eight float32 lanes. */
static float sum8_f32(const float *x, int64_t n, float center, bool sq) {
    float acc[8] = {0};
    int64_t i = 0;
    if (sq)
        for (; i + 8 <= n; i += 8)
            for (int k = 0; k < 8; k++) acc[k] += (x[i + k] - center) * (x[i + k] - center);
    else
        for (; i + 8 <= n; i += 8)
            for (int k = 0; k < 8; k++) acc[k] += x[i + k] - center;
    for (int k = 0; i < n; i++, k++) acc[k] += sq ? (x[i] - center) * (x[i] - center) : x[i] - center;
    return ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
}

static double stat_mean(const norm_job *j, int64_t base) {
    if (j->dtype == KILN_FLOAT32) return sum8_f32((const float *)j->x + base, j->block, 0, false) / (double)j->block;
    double sum = 0;
    for (int64_t i = 0; i < j->block; i++) sum += kiln__load_f64(j->x, j->dtype, base + i);
    return sum / (double)j->block;
}

/* Mean of (x - center)^2 over the block. */
static double stat_sq(const norm_job *j, int64_t base, double center) {
    if (j->dtype == KILN_FLOAT32)
        return sum8_f32((const float *)j->x + base, j->block, (float)center, true) / (double)j->block;
    double sum = 0;
    for (int64_t i = 0; i < j->block; i++) {
        double t = kiln__load_f64(j->x, j->dtype, base + i) - center;
        sum += t * t;
    }
    return sum / (double)j->block;
}

static void apply(const norm_job *j, int64_t base, int64_t first_param, double mean, double rstd) {
    if (j->fscale) { /* per-element float32 parameters */
        const float *x = (const float *)j->x + base, *sc = j->fscale, *bi = j->fbias;
        float *y = (float *)j->y + base, fm = (float)mean, fr = (float)rstd;
        for (int64_t i = 0; i < j->block; i++) y[i] = (x[i] - fm) * fr * sc[i] + bi[i];
        return;
    }
    int64_t nb = j->block / j->sub;
    for (int64_t k = 0; k < nb; k++) {
        double a = rstd * j->scale[first_param + k], b = j->bias ? j->bias[first_param + k] : 0;
        int64_t off = base + k * j->sub;
        if (j->dtype == KILN_FLOAT32) {
            const float *x = (const float *)j->x + off;
            float *y = (float *)j->y + off, fm = (float)mean, fa = (float)a, fb = (float)b;
            for (int64_t i = 0; i < j->sub; i++) y[i] = (x[i] - fm) * fa + fb;
        } else {
            for (int64_t i = off; i < off + j->sub; i++)
                kiln__store_f64(j->y, j->dtype, i, (kiln__load_f64(j->x, j->dtype, i) - mean) * a + b);
        }
    }
}

#ifdef NORM_X86
/* One float32 layer (or RMS when rms) normalization row with per-element float32 scale and
 * bias: the portable path's passes in 16 lanes, tails through masks. */
__attribute__((target("avx512f"))) static void layer_row_avx512(const float *x, float *y, int64_t n, const float *sc,
                                                                const float *bi, double eps, bool rms) {
    int64_t full = n & ~(int64_t)15, full4 = n & ~(int64_t)63;
    __mmask16 tail = (__mmask16)((1u << (n - full)) - 1);
    /* Four accumulators: one would be a chain of dependent adds, each waiting for the last. */
    __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
    if (!rms) {
        for (int64_t i = 0; i < full4; i += 64) {
            a0 = _mm512_add_ps(a0, _mm512_loadu_ps(x + i));
            a1 = _mm512_add_ps(a1, _mm512_loadu_ps(x + i + 16));
            a2 = _mm512_add_ps(a2, _mm512_loadu_ps(x + i + 32));
            a3 = _mm512_add_ps(a3, _mm512_loadu_ps(x + i + 48));
        }
        for (int64_t i = full4; i < full; i += 16) a0 = _mm512_add_ps(a0, _mm512_loadu_ps(x + i));
        a0 = _mm512_add_ps(a0, _mm512_maskz_loadu_ps(tail, x + full));
    }
    __m512 sum = _mm512_add_ps(_mm512_add_ps(a0, a1), _mm512_add_ps(a2, a3));
    float mean = rms ? 0.0f : (float)(_mm512_reduce_add_ps(sum) / (double)n);
    __m512 m = _mm512_set1_ps(mean), d;
    a0 = a1 = a2 = a3 = _mm512_setzero_ps();
    for (int64_t i = 0; i < full4; i += 64) {
        d = _mm512_sub_ps(_mm512_loadu_ps(x + i), m);
        a0 = _mm512_fmadd_ps(d, d, a0);
        d = _mm512_sub_ps(_mm512_loadu_ps(x + i + 16), m);
        a1 = _mm512_fmadd_ps(d, d, a1);
        d = _mm512_sub_ps(_mm512_loadu_ps(x + i + 32), m);
        a2 = _mm512_fmadd_ps(d, d, a2);
        d = _mm512_sub_ps(_mm512_loadu_ps(x + i + 48), m);
        a3 = _mm512_fmadd_ps(d, d, a3);
    }
    for (int64_t i = full4; i < full; i += 16) {
        d = _mm512_sub_ps(_mm512_loadu_ps(x + i), m);
        a0 = _mm512_fmadd_ps(d, d, a0);
    }
    d = _mm512_maskz_sub_ps(tail, _mm512_maskz_loadu_ps(tail, x + full), m);
    a0 = _mm512_fmadd_ps(d, d, a0);
    double var = _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(a0, a1), _mm512_add_ps(a2, a3))) / (double)n;
    __m512 r = _mm512_set1_ps((float)(1 / sqrt(var + eps)));
    for (int64_t i = 0; i < full; i += 16) {
        __m512 v = _mm512_mul_ps(_mm512_sub_ps(_mm512_loadu_ps(x + i), m), r);
        _mm512_storeu_ps(y + i, _mm512_fmadd_ps(v, _mm512_loadu_ps(sc + i), _mm512_loadu_ps(bi + i)));
    }
    if (tail) {
        __m512 v = _mm512_mul_ps(_mm512_sub_ps(_mm512_maskz_loadu_ps(tail, x + full), m), r);
        __m512 s = _mm512_maskz_loadu_ps(tail, sc + full), b = _mm512_maskz_loadu_ps(tail, bi + full);
        _mm512_mask_storeu_ps(y + full, tail, _mm512_fmadd_ps(v, s, b));
    }
}
#endif

static void norm_range(void *arg, int64_t begin, int64_t end) {
    const norm_job *j = arg;
    for (int64_t blk = begin; blk < end; blk++) {
        int64_t base = blk * j->block;
#ifdef NORM_X86
        if (j->avx512) {
            layer_row_avx512((const float *)j->x + base, (float *)j->y + base, j->block, j->fscale, j->fbias, j->eps,
                             j->type == KILN_NORM_RMS);
            continue;
        }
#endif
        if (j->type == KILN_NORM_BATCH) {
            int64_t c = blk % j->channels;
            double a = j->scale[c], b = j->bias[c], m = j->mean[c];
            if (j->dtype == KILN_FLOAT32) {
                const float *x = (const float *)j->x + base;
                float *y = (float *)j->y + base, fa = (float)a, fb = (float)b, fm = (float)m;
                for (int64_t i = 0; i < j->block; i++) y[i] = (x[i] - fm) * fa + fb;
            } else {
                for (int64_t i = base; i < base + j->block; i++)
                    kiln__store_f64(j->y, j->dtype, i, (kiln__load_f64(j->x, j->dtype, i) - m) * a + b);
            }
            continue;
        }
        double mean = j->type == KILN_NORM_RMS ? 0 : stat_mean(j, base);
        double rstd = 1 / sqrt(stat_sq(j, base, mean) + j->eps);
        int64_t first_param = j->type == KILN_NORM_LAYER || j->type == KILN_NORM_RMS
                                  ? 0
                                  : (blk % j->groups_per) * (j->block / j->sub);
        apply(j, base, first_param, mean, rstd);
    }
}

/* Loads input i into dst[0..n), broadcasting a layer/rms parameter onto the normalized dims
 * `nd` (rank nr) numpy-style; absent inputs give `fill`. */
static void load_param(const kiln__value *v, double *dst, int64_t n, const int64_t *nd, int32_t nr, double fill) {
    if (!v || v->dtype == KILN_DTYPE_UNDEFINED || !v->data) {
        for (int64_t i = 0; i < n; i++) dst[i] = fill;
        return;
    }
    int64_t strides[KILN_MAX_DIMS], s = 1;
    for (int32_t k = nr - 1; k >= 0; k--) {
        int32_t vk = k - (nr - v->dims.nb_dims);
        int64_t dv = vk >= 0 ? v->dims.d[vk] : 1;
        strides[k] = dv == 1 ? 0 : s;
        s *= dv;
    }
    for (int64_t i = 0; i < n; i++) {
        int64_t r = i, src = 0;
        for (int32_t k = nr - 1; k >= 0; k--) {
            src += (r % nd[k]) * strides[k];
            r /= nd[k];
        }
        dst[i] = kiln__load_f64(v->data, v->dtype, src);
    }
}

/* Blocks per chunk: about 16384 elements, fewer where that would leave the threads unequal
 * shares (128 rows of 768 in chunks of 21 split 4 : 3 over two threads). */
static int64_t block_grain(kiln__pool *pool, int64_t blocks, int64_t block) {
    int64_t grain = KILN__MAX(1, 16384 / block), chunks = 4 * (int64_t)kiln__pool_threads(pool);
    return blocks > grain ? KILN__MIN(grain, (blocks + chunks - 1) / chunks) : grain;
}

/* Whether a layer/rms parameter is float32 with the normalized dims nd (rank nr; leading 1s
 * aside), one value per normalized element, so it can be read in place. */
static bool whole_f32(const kiln__value *v, const int64_t *nd, int32_t nr) {
    if (v->dtype != KILN_FLOAT32 || !v->data || v->dims.nb_dims > nr) return false;
    for (int32_t i = 0; i < nr; i++) {
        int32_t vi = i - (nr - v->dims.nb_dims);
        if ((vi >= 0 ? v->dims.d[vi] : 1) != nd[i]) return false;
    }
    return true;
}

kiln_status kiln__cpu_normalization(const kiln_layer *layer, const kiln__value *inputs, kiln__value *outputs,
                                    kiln__cpu_ctx *ctx) {
    const kiln__norm_params *p = &layer->p.norm;
    const kiln_dims *d = &inputs[0].dims;
    int64_t volume = kiln__dims_volume(d);
    if (volume <= 0) return KILN_OK;
    norm_job j = {.type = p->type, .dtype = inputs[0].dtype, .x = inputs[0].data, .y = outputs[0].data,
                  .eps = p->epsilon};
    int64_t nparams;
    if (p->type == KILN_NORM_LAYER || p->type == KILN_NORM_RMS) {
        int32_t axis;
        if (!kiln__norm_axis(p->axis, d->nb_dims, &axis))
            return kiln__layer_error(layer, KILN_INVALID_ARGUMENT, "axis %d is out of range for rank %d", p->axis,
                                     d->nb_dims);
        j.block = 1;
        for (int32_t i = axis; i < d->nb_dims; i++) j.block *= d->d[i];
        j.sub = 1;
        nparams = j.block;
        j.avx512 = j.dtype == KILN_FLOAT32 && kiln__cpu_simd() == KILN__SIMD_AVX512;
        if (j.dtype == KILN_FLOAT32 && whole_f32(&inputs[1], d->d + axis, d->nb_dims - axis) &&
            whole_f32(&inputs[2], d->d + axis, d->nb_dims - axis)) {
            j.fscale = inputs[1].data;
            j.fbias = inputs[2].data;
            kiln__parallel_for(ctx->pool, volume / j.block, block_grain(ctx->pool, volume / j.block, j.block),
                               norm_range, &j);
            return KILN_OK;
        }
        double *buf = kiln__malloc(ctx->alloc, 3 * (size_t)nparams * sizeof(double));
        if (!buf) return KILN_OUT_OF_MEMORY;
        load_param(&inputs[1], buf, nparams, d->d + axis, d->nb_dims - axis, 1);
        load_param(&inputs[2], buf + nparams, nparams, d->d + axis, d->nb_dims - axis, 0);
        j.scale = buf;
        j.bias = buf + nparams;
        if (j.dtype == KILN_FLOAT32) {
            float *f = (float *)(buf + 2 * nparams);
            for (int64_t i = 0; i < nparams; i++) f[i] = (float)buf[i], f[nparams + i] = (float)buf[nparams + i];
            j.fscale = f;
            j.fbias = f + nparams;
        }
        kiln__parallel_for(ctx->pool, volume / j.block, block_grain(ctx->pool, volume / j.block, j.block),
                           norm_range, &j);
        kiln__free(ctx->alloc, buf);
        return KILN_OK;
    }
    int64_t c = d->d[1], spatial = volume / (d->d[0] * c);
    int64_t groups = p->type == KILN_NORM_GROUP ? p->nb_groups : c;
    if (groups < 1 || c % groups != 0)
        return kiln__layer_error(layer, KILN_INVALID_ARGUMENT, "%lld channels do not split into %lld groups",
                                 (long long)c, (long long)groups);
    int nb_arrays = p->type == KILN_NORM_BATCH ? 4 : 2;
    for (int k = 0; k < nb_arrays; k++) {
        int64_t n = kiln__dims_volume(&inputs[1 + k].dims);
        if (n != c && (k >= 2 || n != groups))
            return kiln__layer_error(layer, KILN_INVALID_ARGUMENT, "input %d has %lld values, expected %lld", 1 + k,
                                     (long long)n, (long long)c);
    }
    double *buf = kiln__malloc(ctx->alloc, 3 * (size_t)c * sizeof(double));
    if (!buf) return KILN_OUT_OF_MEMORY;
    /* Per-channel scale and bias; opset-18 group norm gives one per group, spread here. */
    for (int k = 0; k < 2; k++) {
        const kiln__value *v = &inputs[1 + k];
        int64_t n = kiln__dims_volume(&v->dims);
        for (int64_t i = 0; i < c; i++)
            buf[k * c + i] = kiln__load_f64(v->data, v->dtype, n == c ? i : i / (c / groups));
    }
    j.scale = buf;
    j.bias = buf + c;
    if (p->type == KILN_NORM_BATCH) {
        for (int64_t i = 0; i < c; i++) {
            buf[i] /= sqrt(kiln__load_f64(inputs[4].data, inputs[4].dtype, i) + p->epsilon);
            buf[2 * c + i] = kiln__load_f64(inputs[3].data, inputs[3].dtype, i);
        }
        j.mean = buf + 2 * c;
        j.block = spatial;
        j.channels = c;
    } else {
        j.block = spatial * (c / groups);
        j.sub = spatial;
        j.groups_per = groups;
    }
    kiln__parallel_for(ctx->pool, volume / j.block, block_grain(ctx->pool, volume / j.block, j.block), norm_range, &j);
    kiln__free(ctx->alloc, buf);
    return KILN_OK;
}
