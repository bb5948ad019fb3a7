/* Resize: separable, one resized axis at a time in double precision, as the ONNX reference
 * does. Each output coordinate along an axis gets up to four (input index, weight) taps
 * computed once per axis; taps of weight zero are dropped so that an infinity next to the
 * sampled point does not turn into NaN. */
#include "cpu.h"
#include "../network/layer_resolve.h"

#include <math.h>
#include <string.h>

#define MAX_TAPS KILN__RESIZE_MAX_TAPS

typedef struct tap_table {
    int64_t out, in, inner, outer;
    int8_t *count;    /* taps per output coordinate; -1: extrapolated */
    int64_t *index;   /* out * MAX_TAPS */
    double *weight;   /* out * MAX_TAPS */
    double extrapolation;
    const double *src;
    double *dst;
} tap_table;

static double source_coord(const kiln__resize_params *p, double o, double s, int64_t in, int64_t out, double roi0,
                           double roi1) {
    double width = s * (double)in; /* the reference's float output width */
    switch (p->coord) {
    case KILN_COORD_ASYMMETRIC: return o / s;
    case KILN_COORD_ALIGN_CORNERS: return width == 1 ? 0 : o * (double)(in - 1) / (width - 1);
    case KILN_COORD_PYTORCH_HALF_PIXEL: return width == 1 ? -0.5 : (o + 0.5) / s - 0.5;
    case KILN_COORD_TF_HALF_PIXEL_FOR_NN: return (o + 0.5) / s;
    case KILN_COORD_TF_CROP_AND_RESIZE: {
        double x = width == 1 ? (roi1 - roi0) * (double)(in - 1) / 2
                              : o * (roi1 - roi0) * (double)(in - 1) / (width - 1);
        return x + roi0 * (double)(in - 1);
    }
    case KILN_COORD_HALF_PIXEL_SYMMETRIC: {
        double adjustment = (double)out / width, center = (double)in / 2;
        return center * (1 - adjustment) + (o + 0.5) / s - 0.5;
    }
    default: return (o + 0.5) / s - 0.5; /* half_pixel */
    }
}


static void apply_axis(void *arg, int64_t begin, int64_t end) {
    const tap_table *t = arg;
    for (int64_t item = begin; item < end; item++) {
        int64_t outer = item / t->out, o = item % t->out;
        double *d = t->dst + item * t->inner;
        int8_t m = t->count[o];
        if (m < 0) {
            for (int64_t i = 0; i < t->inner; i++) d[i] = t->extrapolation;
            continue;
        }
        const int64_t *idx = t->index + o * MAX_TAPS;
        const double *w = t->weight + o * MAX_TAPS;
        const double *s0 = t->src + (outer * t->in + idx[0]) * t->inner;
        for (int64_t i = 0; i < t->inner; i++) d[i] = w[0] * s0[i];
        for (int8_t k = 1; k < m; k++) {
            const double *s = t->src + (outer * t->in + idx[k]) * t->inner;
            for (int64_t i = 0; i < t->inner; i++) d[i] += w[k] * s[i];
        }
    }
}

static void store_out(void *data, kiln_dtype dtype, const double *v, int64_t n) {
    for (int64_t i = 0; i < n; i++) {
        switch (dtype) {
        case KILN_FLOAT32: ((float *)data)[i] = (float)v[i]; break;
        case KILN_UINT8: ((uint8_t *)data)[i] = (uint8_t)fmin(fmax(nearbyint(v[i]), 0), 255); break;
        case KILN_INT8: ((int8_t *)data)[i] = (int8_t)fmin(fmax(nearbyint(v[i]), -128), 127); break;
        default: kiln__store_f64(data, dtype, i, v[i]);
        }
    }
}

static bool near_value(double a, double b) { return fabs(a - b) <= 1e-9 * fmax(fabs(a), fabs(b)); }

kiln_status kiln__cpu_resize(const kiln_layer *layer, const kiln__value *inputs, kiln__value *outputs,
                             kiln__cpu_ctx *ctx) {
    const kiln__resize_params *p = &layer->p.resize;
    const kiln__value *x = &inputs[0];
    kiln__value *y = &outputs[0];
    kiln__resize_plan plan;
    KILN__TRY(kiln__resize_resolve(layer, inputs, &plan));
    int32_t rank = x->dims.nb_dims;
    kiln_dims cur = x->dims;
    int64_t in_volume = kiln__dims_volume(&x->dims), max_volume = in_volume, max_out = 0;
    for (int32_t a = 0; a < rank; a++) {
        if (plan.out[a] != y->dims.d[a])
            return kiln__layer_error(layer, KILN_INTERNAL_ERROR, "output dim %d is %lld, the resize gives %lld", a,
                                     (long long)y->dims.d[a], (long long)plan.out[a]);
        cur.d[a] = plan.out[a];
        max_volume = KILN__MAX(max_volume, kiln__dims_volume(&cur));
        max_out = KILN__MAX(max_out, plan.out[a]);
    }
    int64_t out_volume = kiln__dims_volume(&y->dims);
    if (out_volume == 0) return KILN_OK;
    size_t table_bytes = (size_t)max_out * (1 + MAX_TAPS * (sizeof(int64_t) + sizeof(double)));
    double *buf[2] = {kiln__malloc(ctx->alloc, (size_t)max_volume * sizeof(double)),
                      kiln__malloc(ctx->alloc, (size_t)max_volume * sizeof(double))};
    char *table = kiln__malloc(ctx->alloc, table_bytes);
    if (!buf[0] || !buf[1] || !table) {
        kiln__free(ctx->alloc, buf[0]);
        kiln__free(ctx->alloc, buf[1]);
        kiln__free(ctx->alloc, table);
        return kiln__layer_error(layer, KILN_OUT_OF_MEMORY, "no memory for %lld intermediate values",
                                 (long long)max_volume);
    }
    for (int64_t i = 0; i < in_volume; i++) buf[0][i] = kiln__load_f64(x->data, x->dtype, i);
    int32_t cur_buf = 0;
    cur = x->dims;
    tap_table t = {.index = (int64_t *)table,
                   .weight = (double *)(table + (size_t)max_out * MAX_TAPS * sizeof(int64_t)),
                   .count = (int8_t *)(table + (size_t)max_out * MAX_TAPS * (sizeof(int64_t) + sizeof(double))),
                   .extrapolation = p->extrapolation_value};
    bool crop = p->coord == KILN_COORD_TF_CROP_AND_RESIZE;
    for (int32_t a = 0; a < rank; a++) {
        int64_t in = cur.d[a], out = plan.out[a];
        bool plain_roi = near_value(plan.roi_start[a], 0) && near_value(plan.roi_end[a], 1);
        if (!plan.resized[a] || (out == in && near_value(plan.scale[a], 1) && (!crop || plain_roi))) continue;
        for (int64_t o = 0; o < out; o++) {
            double xs = source_coord(p, (double)o, plan.scale[a], in, out, plan.roi_start[a], plan.roi_end[a]);
            if (crop && (xs < 0 || xs > (double)(in - 1))) t.count[o] = -1;
            else t.count[o] = (int8_t)kiln__resize_taps(p, xs, in, t.index + o * MAX_TAPS, t.weight + o * MAX_TAPS);
        }
        t.in = in;
        t.out = out;
        t.inner = 1;
        for (int32_t k = a + 1; k < rank; k++) t.inner *= cur.d[k];
        t.outer = 1;
        for (int32_t k = 0; k < a; k++) t.outer *= cur.d[k];
        t.src = buf[cur_buf];
        t.dst = buf[1 - cur_buf];
        kiln__parallel_for(ctx->pool, t.outer * out, KILN__MAX(1, 8192 / KILN__MAX(t.inner, 1)), apply_axis, &t);
        cur_buf = 1 - cur_buf;
        cur.d[a] = out;
    }
    store_out(y->data, y->dtype, buf[cur_buf], out_volume);
    kiln__free(ctx->alloc, buf[0]);
    kiln__free(ctx->alloc, buf[1]);
    kiln__free(ctx->alloc, table);
    return KILN_OK;
}
