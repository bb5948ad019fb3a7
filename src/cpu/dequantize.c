/* Dequantize kernel: (x - zero point) * scale per element, rounded as ONNX's reference does
 * (through float32, or float64 for int32 x or a float64 scale) before the output dtype. */
#include "cpu.h"

#include "../network/quantize.h"

#include <float.h>
#include <math.h>

typedef struct dequant_job {
    const kiln__value *x, *s, *z; /* z NULL without zero point or for float x */
    void *y;
    kiln_dtype yt, mid;
    kiln__quant_layout lay;
} dequant_job;

static void dequant_range(void *arg, int64_t begin, int64_t end) {
    const dequant_job *j = arg;
    bool zp_scalar = j->z && kiln__dims_volume(&j->z->dims) == 1;
    for (int64_t i = begin; i < end; i++) {
        int64_t si = kiln__quant_index(&j->lay, i);
        double v = kiln__load_f64(j->x->data, j->x->dtype, i);
        if (j->z) v -= (double)kiln__load_i64(j->z->data, j->z->dtype, zp_scalar ? 0 : si);
        v *= kiln__load_f64(j->s->data, j->s->dtype, si);
        /* Beyond float range the output is infinite either way (and the C conversion undefined). */
        if (j->mid == KILN_FLOAT32 && fabs(v) <= FLT_MAX) v = (double)(float)v;
        kiln__store_f64(j->y, j->yt, i, v);
    }
}

kiln_status kiln__cpu_dequantize(const kiln_layer *layer, const kiln__value *inputs, kiln__value *outputs,
                                 kiln__cpu_ctx *ctx) {
    kiln__quant_mode mode;
    int32_t axis;
    KILN__TRY(kiln__quant_check(layer, inputs, &mode, &axis));
    kiln_dtype xt = inputs[0].dtype, st = inputs[1].dtype;
    bool has_zp = layer->nb_inputs == 3 && inputs[2].dtype != KILN_DTYPE_UNDEFINED;
    /* Float x (fp8, fp4) has no zero point to subtract: it must be 0 (ONNX ignores it). */
    bool use_zp = has_zp && !kiln__quant_is_narrow_float(xt);
    dequant_job job = {.x = &inputs[0], .s = &inputs[1], .z = use_zp ? &inputs[2] : NULL, .y = outputs[0].data,
                       .yt = outputs[0].dtype,
                       .mid = xt == KILN_INT32 || st == KILN_FLOAT64 ? KILN_FLOAT64 : KILN_FLOAT32,
                       .lay = kiln__quant_layout_of(layer, &inputs[0].dims, mode, axis)};
    kiln__parallel_for(ctx->pool, kiln__dims_volume(&inputs[0].dims), 2048, dequant_range, &job);
    return KILN_OK;
}
