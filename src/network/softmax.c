/* The softmax layer: (log-)softmax over one axis, or over the flattened dims axis..end as
 * ONNX opsets before 13 define it. */
#include "ir.h"

static kiln_status softmax_infer(const kiln_layer *layer, const kiln__value *in, kiln__value *out) {
    const kiln__softmax_params *p = &layer->p.softmax;
    kiln_dtype t = in[0].dtype;
    if (!kiln__dtype_is_float(t))
        return kiln__layer_error(layer, KILN_INVALID_ARGUMENT, "input 0 has dtype %s, expected a float type",
                                 kiln_dtype_name(t));
    int32_t axis, rank = in[0].dims.nb_dims;
    /* A rank-0 input has nothing to normalize over; ONNX requires rank >= 1. */
    if (rank < 1 || !kiln__norm_axis(p->axis, rank, &axis))
        return kiln__layer_error(layer, KILN_INVALID_ARGUMENT, "axis %d is out of range for rank %d", p->axis, rank);
    out[0].dtype = t;
    out[0].dims = in[0].dims;
    return KILN_OK;
}

static void softmax_describe(const kiln_layer *layer, kiln__buf *out) {
    const kiln__softmax_params *p = &layer->p.softmax;
    kiln__buf_printf(out, "axis=%d log=%d coerce_2d=%d", p->axis, p->log, p->coerce_2d);
}

const kiln__layer_ops kiln__softmax_ops = {"Softmax", softmax_infer, softmax_describe};

kiln_status kiln_network_add_softmax(kiln_network *net, kiln_tensor *input, int32_t axis, int32_t log,
                                     kiln_layer **layer) {
    if (layer) *layer = NULL;
    if (!net) return kiln__error(KILN_INVALID_ARGUMENT, "add_softmax: network is NULL");
    KILN__TRY(kiln__check_tensor(net, input, "add_softmax: input"));
    kiln_layer *l;
    KILN__TRY(kiln__network_new_layer(net, KILN_LAYER_SOFTMAX, &input, 1, 1, &l));
    l->p.softmax.axis = axis;
    l->p.softmax.log = log != 0;
    return kiln__network_finish_layer(net, l, layer);
}
