/* The quantize layer: shape inference and description, plus the checks it shares with the
 * dequantize layer (scale and zero point against x). */
#include "quantize.h"

bool kiln__quant_is_quantized(kiln_dtype t) {
    switch (t) {
    case KILN_INT8:
    case KILN_UINT8:
    case KILN_INT16:
    case KILN_UINT16:
    case KILN_INT4:
    case KILN_UINT4:
    case KILN_INT2:
    case KILN_UINT2: return true;
    default: return kiln__quant_is_narrow_float(t);
    }
}

bool kiln__quant_is_narrow_float(kiln_dtype t) {
    return t == KILN_FP8_E4M3FN || t == KILN_FP8_E4M3FNUZ || t == KILN_FP8_E5M2 || t == KILN_FP8_E5M2FNUZ ||
           t == KILN_FP4_E2M1;
}

static bool one_element(const kiln_dims *d) { return d->nb_dims <= 1 && kiln__dims_volume(d) == 1; }

/* Dims a and b agree where both are known. */
static bool dim_agrees(int64_t a, int64_t b) { return a < 0 || b < 0 || a == b; }

kiln_status kiln__quant_check(const kiln_layer *layer, const kiln__value *in, kiln__quant_mode *mode, int32_t *axis) {
    const kiln__quant_params *p = (const kiln__quant_params *)layer->p.bytes;
    if (layer->nb_inputs < 2 || layer->nb_inputs > 3)
        return kiln__layer_error(layer, KILN_INVALID_ARGUMENT, "has %d inputs, expected 2 or 3 (x, scale, zero point)",
                                 layer->nb_inputs);
    if (in[0].dtype == KILN_DTYPE_UNDEFINED || in[1].dtype == KILN_DTYPE_UNDEFINED)
        return kiln__layer_error(layer, KILN_INVALID_ARGUMENT, "inputs 0 (x) and 1 (scale) are required");
    if (!kiln__dtype_is_float(in[1].dtype) && in[1].dtype != KILN_FP8_E8M0)
        return kiln__layer_error(layer, KILN_INVALID_ARGUMENT, "input 1 (scale) has dtype %s, expected a float type",
                                 kiln_dtype_name(in[1].dtype));
    if (p->block_size < 0)
        return kiln__layer_error(layer, KILN_INVALID_ARGUMENT, "block_size is %d, expected >= 0", p->block_size);
    const kiln_dims *x = &in[0].dims, *s = &in[1].dims;
    *axis = 0;
    if (one_element(s)) {
        *mode = KILN__QUANT_TENSOR;
    } else {
        *mode = p->block_size > 0 ? KILN__QUANT_BLOCKED : KILN__QUANT_AXIS;
        if (!kiln__norm_axis(p->axis, x->nb_dims, axis))
            return kiln__layer_error(layer, KILN_INVALID_ARGUMENT, "axis %d is out of range for x of rank %d", p->axis,
                                     x->nb_dims);
        int64_t d = x->d[*axis];
        if (*mode == KILN__QUANT_AXIS) {
            if (s->nb_dims != 1 || !dim_agrees(s->d[0], d))
                return kiln__layer_error(layer, KILN_INVALID_ARGUMENT,
                                         "input 1 (scale) has rank %d and %lld elements, expected one element or a "
                                         "1-D tensor of x.dims[%d] = %lld elements (or block_size > 0)",
                                         s->nb_dims, (long long)kiln__dims_volume(s), *axis, (long long)d);
        } else {
            if (s->nb_dims != x->nb_dims)
                return kiln__layer_error(layer, KILN_INVALID_ARGUMENT,
                                         "input 1 (scale) has rank %d, expected %d (x's) for blocked quantization",
                                         s->nb_dims, x->nb_dims);
            for (int32_t i = 0; i < x->nb_dims; i++) {
                int64_t want = i != *axis || x->d[i] < 0 ? x->d[i] : (x->d[i] + p->block_size - 1) / p->block_size;
                if (!dim_agrees(s->d[i], want))
                    return kiln__layer_error(layer, KILN_INVALID_ARGUMENT,
                                             "input 1 (scale) dim %d is %lld, expected %lld (block_size %d along "
                                             "axis %d)", i, (long long)s->d[i], (long long)want, p->block_size, *axis);
            }
        }
    }
    if (layer->nb_inputs == 3 && in[2].dtype != KILN_DTYPE_UNDEFINED) {
        const kiln_dims *z = &in[2].dims;
        bool same = z->nb_dims == s->nb_dims;
        for (int32_t i = 0; same && i < z->nb_dims; i++) same = dim_agrees(z->d[i], s->d[i]);
        if (!same && !(one_element(z) && one_element(s))) {
            char zs[128], ss[128];
            kiln__dims_format(z, zs, sizeof zs);
            kiln__dims_format(s, ss, sizeof ss);
            return kiln__layer_error(layer, KILN_INVALID_ARGUMENT, "input 2 (zero point) has shape %s, expected %s "
                                     "(the scale's)", zs, ss);
        }
    }
    return KILN_OK;
}

static kiln_status quantize_infer(const kiln_layer *layer, const kiln__value *in, kiln__value *out) {
    const kiln__quant_params *p = (const kiln__quant_params *)layer->p.bytes;
    kiln__quant_mode mode;
    int32_t axis;
    KILN__TRY(kiln__quant_check(layer, in, &mode, &axis));
    kiln_dtype xt = in[0].dtype;
    if (!kiln__dtype_is_float(xt) && xt != KILN_INT32)
        return kiln__layer_error(layer, KILN_INVALID_ARGUMENT,
                                 "input 0 (x) has dtype %s, expected a float type or int32", kiln_dtype_name(xt));
    bool has_zp = layer->nb_inputs == 3 && in[2].dtype != KILN_DTYPE_UNDEFINED;
    kiln_dtype yt = p->out_dtype ? (kiln_dtype)p->out_dtype : has_zp ? in[2].dtype : KILN_UINT8;
    if (has_zp && in[2].dtype != yt)
        return kiln__layer_error(layer, KILN_INVALID_ARGUMENT, "input 2 (zero point) has dtype %s, expected %s (the "
                                 "output dtype)", kiln_dtype_name(in[2].dtype), kiln_dtype_name(yt));
    if (!kiln__quant_is_quantized(yt))
        return kiln__layer_error(layer, KILN_UNSUPPORTED, "output dtype %s is not a quantized type (int8, uint8, "
                                 "int16, uint16, int4, uint4, int2, uint2, fp8 or fp4)", kiln_dtype_name(yt));
    if (p->precision && !kiln__dtype_is_float((kiln_dtype)p->precision))
        return kiln__layer_error(layer, KILN_INVALID_ARGUMENT, "precision %s is not a float type",
                                 kiln_dtype_name((kiln_dtype)p->precision));
    out[0].dtype = yt;
    out[0].dims = in[0].dims;
    return KILN_OK;
}

void kiln__quant_describe(const kiln_layer *layer, kiln__buf *out) {
    const kiln__quant_params *p = (const kiln__quant_params *)layer->p.bytes;
    kiln__buf_printf(out, "axis=%d block_size=%d out=%s", p->axis, p->block_size,
                     p->out_dtype ? kiln_dtype_name((kiln_dtype)p->out_dtype) : "auto");
    if (layer->type == KILN_LAYER_QUANTIZE) {
        kiln__buf_printf(out, " saturate=%d", p->saturate);
        if (p->precision) kiln__buf_printf(out, " precision=%s", kiln_dtype_name((kiln_dtype)p->precision));
    }
}

const kiln__layer_ops kiln__quantize_ops = {"Quantize", quantize_infer, kiln__quant_describe};
