/* The BitCast layer: shape inference and description. */
#include "bitcast.h"

static kiln_status bitcast_infer(const kiln_layer *layer, const kiln__value *in, kiln__value *out) {
    const kiln__bitcast_params *p = (const kiln__bitcast_params *)layer->p.bytes;
    if (layer->nb_inputs != 1 || in[0].dtype == KILN_DTYPE_UNDEFINED)
        return kiln__layer_error(layer, KILN_INVALID_ARGUMENT, "has %d inputs, expected 1", layer->nb_inputs);
    kiln_dtype from = in[0].dtype, to = (kiln_dtype)p->to;
    if (!kiln__dtype_valid(to) || to == KILN_STRING || from == KILN_STRING)
        return kiln__layer_error(layer, KILN_INVALID_ARGUMENT, "cannot bitcast %s to data type %d",
                                 kiln_dtype_name(from), (int)p->to);
    if (kiln_dtype_bits(from) != kiln_dtype_bits(to))
        return kiln__layer_error(layer, KILN_INVALID_ARGUMENT, "input dtype %s has %u bits but %s has %u; BitCast "
                                 "needs the same width", kiln_dtype_name(from), kiln_dtype_bits(from),
                                 kiln_dtype_name(to), kiln_dtype_bits(to));
    out[0].dtype = to;
    out[0].dims = in[0].dims;
    return KILN_OK;
}

static void bitcast_describe(const kiln_layer *layer, kiln__buf *out) {
    const kiln__bitcast_params *p = (const kiln__bitcast_params *)layer->p.bytes;
    kiln__buf_printf(out, "to=%s", kiln_dtype_name((kiln_dtype)p->to));
}

const kiln__layer_ops kiln__bitcast_ops = {"BitCast", bitcast_infer, bitcast_describe};
