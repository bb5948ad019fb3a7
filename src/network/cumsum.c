/* CumSum / CumProd along one axis, optionally exclusive and/or reversed. */
#include "tensor_layers.h"

static kiln_status cumsum_infer(const kiln_layer *layer, const kiln__value *inputs, kiln__value *outputs) {
    const kiln__cumsum_params *p = (const kiln__cumsum_params *)layer->p.bytes;
    const kiln__value *x = &inputs[0];
    if (!kiln__dtype_is_float(x->dtype) && !kiln__dtype_is_integer(x->dtype))
        return kiln__layer_error(layer, KILN_UNSUPPORTED, "dtype %s is not supported", kiln_dtype_name(x->dtype));
    int32_t rank = x->dims.nb_dims, axis;
    if (rank < 1) return kiln__layer_error(layer, KILN_INVALID_ARGUMENT, "input 0 is a scalar, expected rank >= 1");
    if (kiln__has_input(layer, inputs, 1)) {
        const kiln__value *a = &inputs[1];
        if ((a->dtype != KILN_INT64 && a->dtype != KILN_INT32) || !kiln__value_is_single(a))
            return kiln__layer_error(layer, KILN_INVALID_ARGUMENT, "input 1 (axis) must be one int32/int64 value");
        if (a->data && kiln__dims_volume(&a->dims) == 1 && !kiln__norm_axis(kiln__value_int(a, 0), rank, &axis))
            return kiln__layer_error(layer, KILN_INVALID_ARGUMENT, "axis %lld is out of range for rank %d",
                                     (long long)kiln__value_int(a, 0), rank);
    } else if (!kiln__norm_axis(p->axis, rank, &axis)) {
        return kiln__layer_error(layer, KILN_INVALID_ARGUMENT, "axis %d is out of range for rank %d", p->axis, rank);
    }
    outputs[0].dtype = x->dtype;
    outputs[0].dims = x->dims;
    return KILN_OK;
}

static void cumsum_describe(const kiln_layer *layer, kiln__buf *out) {
    const kiln__cumsum_params *p = (const kiln__cumsum_params *)layer->p.bytes;
    kiln__buf_printf(out, "op=%s exclusive=%d reverse=%d", p->product ? "prod" : "sum", p->exclusive, p->reverse);
    if (layer->nb_inputs > 1 && layer->inputs[1]) kiln__buf_printf(out, " axis=input1");
    else kiln__buf_printf(out, " axis=%d", p->axis);
}

const kiln__layer_ops kiln__cumsum_ops = {"CumSum", cumsum_infer, cumsum_describe};
