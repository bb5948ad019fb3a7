/* Tile: repeats input 0 along each dim the number of times in input 1 (ONNX Tile). */
#include "tensor_layers.h"

static kiln_status tile_infer(const kiln_layer *layer, const kiln__value *inputs, kiln__value *outputs) {
    if (layer->nb_inputs != 2) return kiln__layer_error(layer, KILN_INVALID_ARGUMENT, "needs 2 inputs");
    const kiln__value *x = &inputs[0], *r = &inputs[1];
    if (!kiln__elem_bytes(x->dtype))
        return kiln__layer_error(layer, KILN_UNSUPPORTED, "dtype %s is not supported", kiln_dtype_name(x->dtype));
    if ((r->dtype != KILN_INT64 && r->dtype != KILN_INT32) || r->dims.nb_dims != 1)
        return kiln__layer_error(layer, KILN_INVALID_ARGUMENT, "input 1 (repeats) must be a 1-D int32/int64 tensor");
    int32_t rank = x->dims.nb_dims;
    if (r->dims.d[0] >= 0 && r->dims.d[0] != rank)
        return kiln__layer_error(layer, KILN_INVALID_ARGUMENT, "input 1 (repeats) has %lld entries, expected %d (the rank)",
                                 (long long)r->dims.d[0], rank);
    kiln_dims out = x->dims;
    for (int32_t i = 0; i < rank; i++) {
        if (!r->data) {
            out.d[i] = -1;
            continue;
        }
        int64_t rep = kiln__value_int(r, i);
        if (rep < 0)
            return kiln__layer_error(layer, KILN_INVALID_ARGUMENT, "repeat %d is %lld, expected >= 0", i,
                                     (long long)rep);
        if (out.d[i] >= 0) {
            if (rep && out.d[i] > INT64_MAX / rep)
                return kiln__layer_error(layer, KILN_INVALID_ARGUMENT, "dim %d overflows", i);
            out.d[i] *= rep;
        } else if (rep == 0) {
            out.d[i] = 0;
        }
    }
    outputs[0].dtype = x->dtype;
    outputs[0].dims = out;
    return KILN_OK;
}

static void tile_describe(const kiln_layer *layer, kiln__buf *out) {
    (void)layer;
    kiln__buf_printf(out, "repeats=input1");
}

const kiln__layer_ops kiln__tile_ops = {"Tile", tile_infer, tile_describe};
