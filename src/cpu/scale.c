/* Scale kernel: out = (x * scale + shift) ^ power, parameters indexed by channel block. */
#include "cpu.h"

#include <math.h>

typedef struct scale_job {
    kiln_dtype dtype;
    const void *x;
    void *y;
    int64_t nb_params, inner; /* x is [outer, nb_params, inner] */
    const double *shift, *scale, *power; /* NULL when absent */
} scale_job;

static void scale_range(void *arg, int64_t begin, int64_t end) {
    const scale_job *j = arg;
    for (int64_t blk = begin; blk < end; blk++) {
        int64_t c = blk % j->nb_params, base = blk * j->inner;
        double s = j->scale ? j->scale[c] : 1, t = j->shift ? j->shift[c] : 0;
        if (j->dtype == KILN_FLOAT32) {
            const float *x = (const float *)j->x + base;
            float *y = (float *)j->y + base, fs = (float)s, ft = (float)t;
            for (int64_t i = 0; i < j->inner; i++) y[i] = x[i] * fs + ft;
            if (j->power) {
                float p = (float)j->power[c];
                for (int64_t i = 0; i < j->inner; i++) y[i] = powf(y[i], p);
            }
        } else {
            for (int64_t i = base; i < base + j->inner; i++) {
                double v = kiln__load_f64(j->x, j->dtype, i) * s + t;
                kiln__store_f64(j->y, j->dtype, i, j->power ? pow(v, j->power[c]) : v);
            }
        }
    }
}

kiln_status kiln__cpu_scale(const kiln_layer *layer, const kiln__value *inputs, kiln__value *outputs,
                            kiln__cpu_ctx *ctx) {
    const kiln__scale_params *p = &layer->p.scale;
    const kiln_dims *d = &inputs[0].dims;
    int64_t volume = kiln__dims_volume(d);
    if (volume <= 0) return KILN_OK;
    int32_t axis = 0;
    if (p->mode != KILN_SCALE_UNIFORM && !kiln__norm_axis(p->channel_axis, d->nb_dims, &axis))
        return kiln__layer_error(layer, KILN_INVALID_ARGUMENT, "channel axis %d is out of range for rank %d",
                                 p->channel_axis, d->nb_dims);
    int64_t nb_params = 1, inner = volume;
    if (p->mode != KILN_SCALE_UNIFORM) {
        int32_t end = p->mode == KILN_SCALE_CHANNEL ? axis + 1 : d->nb_dims;
        for (int32_t i = axis; i < end; i++) nb_params *= d->d[i];
        inner = 1;
        for (int32_t i = end; i < d->nb_dims; i++) inner *= d->d[i];
    }
    double *params = kiln__malloc(ctx->alloc, 3 * (size_t)nb_params * sizeof(double));
    if (!params) return KILN_OUT_OF_MEMORY;
    const double *arrays[3] = {NULL, NULL, NULL};
    for (int k = 0; k < 3; k++) {
        const kiln__value *v = 1 + k < layer->nb_inputs ? &inputs[1 + k] : NULL;
        if (!v || v->dtype == KILN_DTYPE_UNDEFINED || !v->data) continue;
        if (kiln__dims_volume(&v->dims) != nb_params) {
            kiln__free(ctx->alloc, params);
            return kiln__layer_error(layer, KILN_INVALID_ARGUMENT, "input %d has %lld values, expected %lld", 1 + k,
                                     (long long)kiln__dims_volume(&v->dims), (long long)nb_params);
        }
        double *dst = params + k * nb_params;
        for (int64_t i = 0; i < nb_params; i++) dst[i] = kiln__load_f64(v->data, v->dtype, i);
        arrays[k] = dst;
    }
    scale_job job = {inputs[0].dtype, inputs[0].data, outputs[0].data, nb_params, inner,
                     arrays[0], arrays[1], arrays[2]};
    kiln__parallel_for(ctx->pool, volume / inner, KILN__MAX(1, 16384 / inner), scale_range, &job);
    kiln__free(ctx->alloc, params);
    return KILN_OK;
}
