/* Normalization kernels. Layer, RMS, instance and group normalization all normalize
 * contiguous blocks of x: statistics in two passes (so no cancellation), then
 * y = (x - mean) * rstd * scale + bias with scale/bias indexed per element (layer, rms) or
 * per channel. Batch normalization uses its given per-channel statistics the same way.
 * Float32 blocks sum in eight float32 partial sums (vectorizes; relative error about
 * block / 8 * 2^-24 on the mean and variance, well inside float32 outputs' tolerance for the
 * block sizes of real models) and apply with float32 parameters; other dtypes use double. */
#include "cpu.h"

#include <math.h>

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

static void norm_range(void *arg, int64_t begin, int64_t end) {
    const norm_job *j = arg;
    for (int64_t blk = begin; blk < end; blk++) {
        int64_t base = blk * j->block;
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
        kiln__parallel_for(ctx->pool, volume / j.block, KILN__MAX(1, 16384 / j.block), norm_range, &j);
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
    kiln__parallel_for(ctx->pool, volume / j.block, KILN__MAX(1, 16384 / j.block), norm_range, &j);
    kiln__free(ctx->alloc, buf);
    return KILN_OK;
}
