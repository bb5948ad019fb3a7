/* Expand: broadcasts input 0 to the shape in input 1 (numpy rules both ways, ONNX Expand). */
#include "tensor_layers.h"

static kiln_status expand_infer(const kiln_layer *layer, const kiln__value *inputs, kiln__value *outputs) {
    if (layer->nb_inputs != 2) return kiln__layer_error(layer, KILN_INVALID_ARGUMENT, "needs 2 inputs");
    const kiln__value *x = &inputs[0], *s = &inputs[1];
    if (!kiln__elem_bytes(x->dtype))
        return kiln__layer_error(layer, KILN_UNSUPPORTED, "dtype %s is not supported", kiln_dtype_name(x->dtype));
    if ((s->dtype != KILN_INT64 && s->dtype != KILN_INT32) || s->dims.nb_dims != 1)
        return kiln__layer_error(layer, KILN_INVALID_ARGUMENT, "input 1 (shape) must be a 1-D int32/int64 tensor");
    int64_t n = s->dims.d[0];
    if (n < 0) return kiln__layer_error(layer, KILN_UNSUPPORTED, "input 1 (shape) has an unknown length");
    if (n > KILN_MAX_DIMS)
        return kiln__layer_error(layer, KILN_UNSUPPORTED, "input 1 (shape) has %lld entries, at most %d supported",
                                 (long long)n, KILN_MAX_DIMS);
    kiln_dims target = {.nb_dims = (int32_t)n};
    for (int32_t i = 0; i < target.nb_dims; i++) {
        if (!s->data) {
            target.d[i] = -1;
            continue;
        }
        target.d[i] = kiln__value_int(s, i);
        if (target.d[i] < 0)
            return kiln__layer_error(layer, KILN_INVALID_ARGUMENT, "shape entry %d is %lld, expected >= 0", i,
                                     (long long)target.d[i]);
    }
    kiln_dims out;
    if (!s->data) {
        /* Unknown target entries: a dim is known only where x has a known dim > 1 (a target of
         * 1 keeps it, anything else must equal it). */
        int32_t rank = KILN__MAX(x->dims.nb_dims, target.nb_dims);
        out.nb_dims = rank;
        for (int32_t i = 0; i < rank; i++) {
            int32_t ix = i - (rank - x->dims.nb_dims);
            int64_t dx = ix >= 0 ? x->dims.d[ix] : 1;
            out.d[i] = dx > 1 ? dx : -1;
        }
    } else if (!kiln__broadcast_dims(&x->dims, &target, &out)) {
        char a[128], b[128];
        kiln__dims_format(&x->dims, a, sizeof a);
        kiln__dims_format(&target, b, sizeof b);
        return kiln__layer_error(layer, KILN_INVALID_ARGUMENT, "cannot expand %s to %s", a, b);
    }
    outputs[0].dtype = x->dtype;
    outputs[0].dims = out;
    return KILN_OK;
}

static void expand_describe(const kiln_layer *layer, kiln__buf *out) {
    (void)layer;
    kiln__buf_printf(out, "shape=input1");
}

const kiln__layer_ops kiln__expand_ops = {"Expand", expand_infer, expand_describe};
