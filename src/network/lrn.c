/* The LRN layer: shape inference and description. */
#include "lrn.h"

#include <math.h>

static kiln_status lrn_infer(const kiln_layer *layer, const kiln__value *in, kiln__value *out) {
    const kiln__lrn_params *p = (const kiln__lrn_params *)layer->p.bytes;
    if (layer->nb_inputs != 1 || in[0].dtype == KILN_DTYPE_UNDEFINED)
        return kiln__layer_error(layer, KILN_INVALID_ARGUMENT, "has %d inputs, expected 1", layer->nb_inputs);
    if (!kiln__dtype_is_float(in[0].dtype))
        return kiln__layer_error(layer, KILN_INVALID_ARGUMENT, "input 0 has dtype %s, expected a float type",
                                 kiln_dtype_name(in[0].dtype));
    if (in[0].dims.nb_dims < 2)
        return kiln__layer_error(layer, KILN_INVALID_ARGUMENT, "input 0 has rank %d, expected at least 2 ([N, C, ...])",
                                 in[0].dims.nb_dims);
    if (p->size < 1) return kiln__layer_error(layer, KILN_INVALID_ARGUMENT, "size is %d, expected >= 1", p->size);
    if (!isfinite(p->alpha) || !isfinite(p->beta) || !isfinite(p->bias))
        return kiln__layer_error(layer, KILN_INVALID_ARGUMENT, "alpha %g, beta %g and bias %g must be finite",
                                 (double)p->alpha, (double)p->beta, (double)p->bias);
    out[0].dtype = in[0].dtype;
    out[0].dims = in[0].dims;
    return KILN_OK;
}

static void lrn_describe(const kiln_layer *layer, kiln__buf *out) {
    const kiln__lrn_params *p = (const kiln__lrn_params *)layer->p.bytes;
    kiln__buf_printf(out, "size=%d alpha=%g beta=%g bias=%g", p->size, (double)p->alpha, (double)p->beta,
                     (double)p->bias);
}

const kiln__layer_ops kiln__lrn_ops = {"LRN", lrn_infer, lrn_describe};
