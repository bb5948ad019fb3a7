/* Trilu: keeps the upper or lower triangle (above/below diagonal k) of the last two dims. */
#include "tensor_layers.h"

static kiln_status trilu_infer(const kiln_layer *layer, const kiln__value *inputs, kiln__value *outputs) {
    const kiln__value *x = &inputs[0];
    if (!kiln__elem_bytes(x->dtype))
        return kiln__layer_error(layer, KILN_UNSUPPORTED, "dtype %s is not supported", kiln_dtype_name(x->dtype));
    if (x->dims.nb_dims < 2)
        return kiln__layer_error(layer, KILN_INVALID_ARGUMENT, "input 0 has rank %d, expected >= 2", x->dims.nb_dims);
    if (kiln__has_input(layer, inputs, 1)) {
        const kiln__value *k = &inputs[1];
        if ((k->dtype != KILN_INT64 && k->dtype != KILN_INT32) || !kiln__value_is_single(k))
            return kiln__layer_error(layer, KILN_INVALID_ARGUMENT, "input 1 (k) must be one int32/int64 value");
    }
    outputs[0].dtype = x->dtype;
    outputs[0].dims = x->dims;
    return KILN_OK;
}

static void trilu_describe(const kiln_layer *layer, kiln__buf *out) {
    const kiln__trilu_params *p = (const kiln__trilu_params *)layer->p.bytes;
    kiln__buf_printf(out, "upper=%d", p->upper);
    if (layer->nb_inputs > 1 && layer->inputs[1]) kiln__buf_printf(out, " k=input1");
    else kiln__buf_printf(out, " k=%lld", (long long)p->k);
}

const kiln__layer_ops kiln__trilu_ops = {"Trilu", trilu_infer, trilu_describe};
