/* Concat: joins tensors of one dtype and rank along an axis. */
#include "layer_resolve.h"

static kiln_status concat_infer(const kiln_layer *layer, const kiln__value *inputs, kiln__value *outputs) {
    const kiln__value *first = &inputs[0];
    int32_t rank = first->dims.nb_dims;
    int32_t axis;
    if (layer->nb_inputs < 1) return kiln__layer_error(layer, KILN_INVALID_ARGUMENT, "needs at least one input");
    if (!kiln__elem_bytes(first->dtype))
        return kiln__layer_error(layer, KILN_UNSUPPORTED, "dtype %s is not supported", kiln_dtype_name(first->dtype));
    if (rank < 1) return kiln__layer_error(layer, KILN_INVALID_ARGUMENT, "input 0 is a scalar, expected rank >= 1");
    if (!kiln__norm_axis(layer->p.concat.axis, rank, &axis))
        return kiln__layer_error(layer, KILN_INVALID_ARGUMENT, "axis %d is out of range for rank %d",
                                 layer->p.concat.axis, rank);
    kiln_dims out = first->dims;
    for (int32_t i = 1; i < layer->nb_inputs; i++) {
        const kiln__value *v = &inputs[i];
        if (v->dtype != first->dtype)
            return kiln__layer_error(layer, KILN_INVALID_ARGUMENT, "input %d has dtype %s, expected %s like input 0",
                                     i, kiln_dtype_name(v->dtype), kiln_dtype_name(first->dtype));
        if (v->dims.nb_dims != rank)
            return kiln__layer_error(layer, KILN_INVALID_ARGUMENT, "input %d has rank %d, expected %d like input 0", i,
                                     v->dims.nb_dims, rank);
        for (int32_t k = 0; k < rank; k++) {
            int64_t a = out.d[k], b = v->dims.d[k];
            if (k == axis) {
                out.d[k] = a < 0 || b < 0 ? -1 : a + b;
            } else if (a >= 0 && b >= 0 && a != b) {
                return kiln__layer_error(layer, KILN_INVALID_ARGUMENT,
                                         "input %d has dim %d = %lld, expected %lld (only the axis %d may differ)", i,
                                         k, (long long)b, (long long)a, axis);
            } else if (a < 0) {
                out.d[k] = b;
            }
        }
    }
    outputs[0].dtype = first->dtype;
    outputs[0].dims = out;
    return KILN_OK;
}

static void concat_describe(const kiln_layer *layer, kiln__buf *out) {
    kiln__buf_printf(out, "axis=%d", layer->p.concat.axis);
}

const kiln__layer_ops kiln__concat_ops = {"Concat", concat_infer, concat_describe};

kiln_status kiln_network_add_concat(kiln_network *network, kiln_tensor *const *inputs, int32_t nb_inputs,
                                    int32_t axis, kiln_layer **layer) {
    if (!network) return kiln__error(KILN_INVALID_ARGUMENT, "kiln_network_add_concat: network is NULL");
    if (!inputs || nb_inputs < 1)
        return kiln__error(KILN_INVALID_ARGUMENT, "kiln_network_add_concat: needs at least one input, got %d",
                           nb_inputs);
    for (int32_t i = 0; i < nb_inputs; i++) KILN__TRY(kiln__check_tensor(network, inputs[i], "input"));
    kiln_layer *l;
    KILN__TRY(kiln__network_new_layer(network, KILN_LAYER_CONCAT, inputs, nb_inputs, 1, &l));
    l->p.concat.axis = axis;
    return kiln__network_finish_layer(network, l, layer);
}
