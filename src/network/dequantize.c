/* The dequantize layer: shape inference (the description is the quantize layer's). */
#include "quantize.h"

static kiln_status dequantize_infer(const kiln_layer *layer, const kiln__value *in, kiln__value *out) {
    const kiln__quant_params *p = (const kiln__quant_params *)layer->p.bytes;
    kiln__quant_mode mode;
    int32_t axis;
    KILN__TRY(kiln__quant_check(layer, in, &mode, &axis));
    kiln_dtype xt = in[0].dtype;
    if (!kiln__quant_is_quantized(xt) && xt != KILN_INT32)
        return kiln__layer_error(layer, KILN_INVALID_ARGUMENT, "input 0 (x) has dtype %s, expected a quantized type "
                                 "(int8, uint8, int16, uint16, int32, int4, uint4, int2, uint2, fp8 or fp4)",
                                 kiln_dtype_name(xt));
    if (layer->nb_inputs == 3 && in[2].dtype != KILN_DTYPE_UNDEFINED && in[2].dtype != xt)
        return kiln__layer_error(layer, KILN_INVALID_ARGUMENT, "input 2 (zero point) has dtype %s, expected %s (x's)",
                                 kiln_dtype_name(in[2].dtype), kiln_dtype_name(xt));
    kiln_dtype yt = p->out_dtype ? (kiln_dtype)p->out_dtype : in[1].dtype;
    if (!kiln__dtype_is_float(yt))
        return kiln__layer_error(layer, KILN_INVALID_ARGUMENT, "output dtype %s is not float32, float16, bfloat16 or "
                                 "float64", kiln_dtype_name(yt));
    out[0].dtype = yt;
    out[0].dims = in[0].dims;
    return KILN_OK;
}

const kiln__layer_ops kiln__dequantize_ops = {"Dequantize", dequantize_infer, kiln__quant_describe};
