/* Det (ONNX Det-11): determinants of the trailing square matrices. */
#include "vision_layers.h"

static kiln_status det_infer(const kiln_layer *layer, const kiln__value *in, kiln__value *out) {
    if (layer->nb_inputs != 1 || in[0].dtype == KILN_DTYPE_UNDEFINED)
        return kiln__layer_error(layer, KILN_INVALID_ARGUMENT, "has %d inputs, expected 1", layer->nb_inputs);
    const kiln_dims *x = &in[0].dims;
    if (!kiln__dtype_is_float(in[0].dtype) || x->nb_dims < 2)
        return kiln__layer_error(layer, KILN_INVALID_ARGUMENT, "input must be a float tensor of rank >= 2, got %s rank %d",
                                 kiln_dtype_name(in[0].dtype), x->nb_dims);
    int64_t m = x->d[x->nb_dims - 1], m2 = x->d[x->nb_dims - 2];
    if (m >= 0 && m2 >= 0 && m != m2)
        return kiln__layer_error(layer, KILN_INVALID_ARGUMENT, "matrices are %lldx%lld, expected square",
                                 (long long)m2, (long long)m);
    out[0].dtype = in[0].dtype;
    out[0].dims = *x;
    out[0].dims.nb_dims -= 2;
    return KILN_OK;
}

static void det_describe(const kiln_layer *layer, kiln__buf *out) {
    (void)layer;
    kiln__buf_printf(out, "LU with partial pivoting");
}

const kiln__layer_ops kiln__det_ops = {"Det", det_infer, det_describe};
