/* The cast layer: converts every element to another dtype (ONNX Cast). */
#include "ir.h"

static kiln_status cast_infer(const kiln_layer *layer, const kiln__value *in, kiln__value *out) {
    const kiln__cast_params *p = &layer->p.cast;
    kiln_dtype from = in[0].dtype, to = (kiln_dtype)p->to;
    if (from == KILN_STRING || to == KILN_STRING)
        return kiln__layer_error(layer, KILN_UNSUPPORTED, "casts from or to string are not supported (%s to %s)",
                                 kiln_dtype_name(from), kiln_dtype_name(to));
    if (!kiln_dtype_bits(to))
        return kiln__layer_error(layer, KILN_INVALID_ARGUMENT, "target dtype %d is not a valid dtype", p->to);
    if (!kiln_dtype_bits(from))
        return kiln__layer_error(layer, KILN_INVALID_ARGUMENT, "input 0 has invalid dtype %d", (int)from);
    out[0].dtype = to;
    out[0].dims = in[0].dims;
    return KILN_OK;
}

static void cast_describe(const kiln_layer *layer, kiln__buf *out) {
    kiln__buf_printf(out, "to=%s saturate=%d", kiln_dtype_name((kiln_dtype)layer->p.cast.to), layer->p.cast.saturate);
}

const kiln__layer_ops kiln__cast_ops = {"Cast", cast_infer, cast_describe};

kiln_status kiln_network_add_cast(kiln_network *net, kiln_tensor *input, kiln_dtype to, kiln_layer **layer) {
    if (layer) *layer = NULL;
    if (!net) return kiln__error(KILN_INVALID_ARGUMENT, "add_cast: network is NULL");
    KILN__TRY(kiln__check_tensor(net, input, "add_cast: input"));
    kiln_layer *l;
    KILN__TRY(kiln__network_new_layer(net, KILN_LAYER_CAST, &input, 1, 1, &l));
    l->p.cast.to = (int32_t)to;
    l->p.cast.saturate = 1; /* ONNX Cast's default */
    return kiln__network_finish_layer(net, l, layer);
}
