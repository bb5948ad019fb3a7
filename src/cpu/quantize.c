/* Quantize kernel: each element divided by its scale, rounded to the division's dtype as numpy
 * would (ONNX's reference), then rounded half to even and saturated for integer outputs or
 * converted for the narrow floats. Work is split in runs of 8 elements so that threads never
 * share a byte of a packed 4- or 2-bit output. */
#include "cpu.h"

#include "dtype_access.h"
#include "../network/quantize.h"

#include <math.h>

typedef struct quant_job {
    const kiln__value *x, *s, *z; /* z NULL without zero point */
    void *y;
    kiln_dtype yt, ct;
    kiln__quant_layout lay;
    int32_t saturate;
    double lo, hi; /* integer outputs: the dtype's range */
    int64_t n;
} quant_job;

/* v rounded to dtype t (a float type). */
static double round_to(kiln_dtype t, double v) {
    if (t == KILN_FLOAT64) return v;
    uint8_t buf[4];
    kiln__store_f64(buf, t, 0, v);
    return kiln__load_f64(buf, t, 0);
}

static void int_range(kiln_dtype t, double *lo, double *hi) {
    switch (t) {
    case KILN_INT8: *lo = -128, *hi = 127; return;
    case KILN_UINT8: *lo = 0, *hi = 255; return;
    case KILN_INT16: *lo = -32768, *hi = 32767; return;
    case KILN_UINT16: *lo = 0, *hi = 65535; return;
    case KILN_INT4: *lo = -8, *hi = 7; return;
    case KILN_UINT4: *lo = 0, *hi = 15; return;
    case KILN_INT2: *lo = -2, *hi = 1; return;
    default: *lo = 0, *hi = 3; return; /* uint2 */
    }
}

/* The dtype numpy divides x by scale in: float64 for int32 x, else the wider of the two. */
static kiln_dtype division_dtype(const kiln__quant_params *p, kiln_dtype xt, kiln_dtype st) {
    if (p->precision) return (kiln_dtype)p->precision;
    if (xt == KILN_INT32 || xt == KILN_FLOAT64 || st == KILN_FLOAT64) return KILN_FLOAT64;
    return xt == st ? xt : KILN_FLOAT32;
}

static void quant_range(void *arg, int64_t begin, int64_t end) {
    const quant_job *j = arg;
    int64_t stop = end * 8 < j->n ? end * 8 : j->n;
    bool narrow = kiln__quant_is_narrow_float(j->yt);
    bool zp_scalar = j->z && kiln__dims_volume(&j->z->dims) == 1;
    for (int64_t i = begin * 8; i < stop; i++) {
        int64_t si = kiln__quant_index(&j->lay, i), zi = zp_scalar ? 0 : si;
        double x = kiln__load_f64(j->x->data, j->x->dtype, i), s = kiln__load_f64(j->s->data, j->s->dtype, si);
        double q = round_to(j->ct, x / s);
        if (narrow) {
            /* fp8 zero points must be 0 and are not added (as ONNX's reference); fp4's are. */
            if (j->yt == KILN_FP4_E2M1 && j->z) q += kiln__load_f64(j->z->data, j->z->dtype, zi);
            kiln__store_f64_sat(j->y, j->yt, i, q, j->saturate);
            continue;
        }
        double r = nearbyint(q);
        if (isnan(r)) r = 0; /* NaN has no integer; it maps to the zero point */
        if (j->z) r += (double)kiln__load_i64(j->z->data, j->z->dtype, zi);
        r = r < j->lo ? j->lo : r > j->hi ? j->hi : r;
        kiln__store_i64(j->y, j->yt, i, (int64_t)r);
    }
}

kiln_status kiln__cpu_quantize(const kiln_layer *layer, const kiln__value *inputs, kiln__value *outputs,
                               kiln__cpu_ctx *ctx) {
    const kiln__quant_params *p = (const kiln__quant_params *)layer->p.bytes;
    kiln__quant_mode mode;
    int32_t axis;
    KILN__TRY(kiln__quant_check(layer, inputs, &mode, &axis));
    bool has_zp = layer->nb_inputs == 3 && inputs[2].dtype != KILN_DTYPE_UNDEFINED;
    quant_job job = {.x = &inputs[0], .s = &inputs[1], .z = has_zp ? &inputs[2] : NULL, .y = outputs[0].data,
                     .yt = outputs[0].dtype, .ct = division_dtype(p, inputs[0].dtype, inputs[1].dtype),
                     .lay = kiln__quant_layout_of(layer, &inputs[0].dims, mode, axis), .saturate = p->saturate,
                     .n = kiln__dims_volume(&inputs[0].dims)};
    int_range(job.yt, &job.lo, &job.hi);
    /* Packed outputs: the unused bits of the last byte are zero rather than left over. */
    if (kiln_dtype_bits(job.yt) < 8 && outputs[0].bytes) ((uint8_t *)outputs[0].data)[outputs[0].bytes - 1] = 0;
    kiln__parallel_for(ctx->pool, (job.n + 7) / 8, 256, quant_range, &job);
    return KILN_OK;
}
