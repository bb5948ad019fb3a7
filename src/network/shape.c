/* Shape (ONNX Shape-15 with start/end) and Identity. */
#include "layer_resolve.h"

/* The [start, end) range of dims a Shape layer reports, clamped as ONNX Shape-15 says. */
static void shape_range(const kiln__shape_params *p, int32_t rank, int64_t *start, int64_t *end) {
    int64_t s = p->start, e = p->end;
    if (s < 0) s += rank;
    if (e < 0) e += rank;
    *start = KILN__MIN(KILN__MAX(s, 0), rank);
    *end = KILN__MIN(KILN__MAX(e, 0), rank);
}

static kiln_status shape_infer(const kiln_layer *layer, const kiln__value *inputs, kiln__value *outputs) {
    int64_t s, e;
    shape_range(&layer->p.shape, inputs[0].dims.nb_dims, &s, &e);
    outputs[0].dtype = KILN_INT64;
    outputs[0].dims.nb_dims = 1;
    outputs[0].dims.d[0] = e > s ? e - s : 0;
    return KILN_OK;
}

static void shape_describe(const kiln_layer *layer, kiln__buf *out) {
    kiln__buf_printf(out, "start=%lld end=%lld", (long long)layer->p.shape.start, (long long)layer->p.shape.end);
}

const kiln__layer_ops kiln__shape_ops = {"Shape", shape_infer, shape_describe};

kiln_status kiln_network_add_shape(kiln_network *network, kiln_tensor *input, kiln_layer **layer) {
    if (layer) *layer = NULL;
    if (!network) return kiln__error(KILN_INVALID_ARGUMENT, "kiln_network_add_shape: network is NULL");
    KILN__TRY(kiln__check_tensor(network, input, "input"));
    kiln_tensor *ins[1] = {input};
    kiln_layer *l;
    KILN__TRY(kiln__network_new_layer(network, KILN_LAYER_SHAPE, ins, 1, 1, &l));
    l->p.shape.start = 0;
    l->p.shape.end = INT64_MAX;
    return kiln__network_finish_layer(network, l, layer);
}

static kiln_status identity_infer(const kiln_layer *layer, const kiln__value *inputs, kiln__value *outputs) {
    if (!kiln__dtype_valid(inputs[0].dtype) || inputs[0].dtype == KILN_STRING)
        return kiln__layer_error(layer, KILN_UNSUPPORTED, "dtype %s is not supported",
                                 kiln_dtype_name(inputs[0].dtype));
    outputs[0].dtype = inputs[0].dtype;
    outputs[0].dims = inputs[0].dims;
    return KILN_OK;
}

static void identity_describe(const kiln_layer *layer, kiln__buf *out) {
    (void)layer;
    (void)out;
}

const kiln__layer_ops kiln__identity_ops = {"Identity", identity_infer, identity_describe};

kiln_status kiln_network_add_identity(kiln_network *network, kiln_tensor *input, kiln_layer **layer) {
    if (layer) *layer = NULL;
    if (!network) return kiln__error(KILN_INVALID_ARGUMENT, "kiln_network_add_identity: network is NULL");
    KILN__TRY(kiln__check_tensor(network, input, "input"));
    kiln_tensor *ins[1] = {input};
    kiln_layer *l;
    KILN__TRY(kiln__network_new_layer(network, KILN_LAYER_IDENTITY, ins, 1, 1, &l));
    return kiln__network_finish_layer(network, l, layer);
}
