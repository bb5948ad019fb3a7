/* Select: where(condition, a, b) with numpy broadcasting of all three (ONNX Where). */
#include "tensor_layers.h"

static kiln_status select_infer(const kiln_layer *layer, const kiln__value *inputs, kiln__value *outputs) {
    if (layer->nb_inputs != 3) return kiln__layer_error(layer, KILN_INVALID_ARGUMENT, "needs 3 inputs");
    const kiln__value *c = &inputs[0], *a = &inputs[1], *b = &inputs[2];
    if (c->dtype != KILN_BOOL)
        return kiln__layer_error(layer, KILN_INVALID_ARGUMENT, "input 0 (condition) has dtype %s, expected bool",
                                 kiln_dtype_name(c->dtype));
    if (!kiln__elem_bytes(a->dtype))
        return kiln__layer_error(layer, KILN_UNSUPPORTED, "dtype %s is not supported", kiln_dtype_name(a->dtype));
    if (a->dtype != b->dtype)
        return kiln__layer_error(layer, KILN_INVALID_ARGUMENT, "inputs 1 and 2 have dtypes %s and %s, expected one",
                                 kiln_dtype_name(a->dtype), kiln_dtype_name(b->dtype));
    kiln_dims ab, out;
    if (!kiln__broadcast_dims(&a->dims, &b->dims, &ab) || !kiln__broadcast_dims(&c->dims, &ab, &out)) {
        char s0[128], s1[128], s2[128];
        kiln__dims_format(&c->dims, s0, sizeof s0);
        kiln__dims_format(&a->dims, s1, sizeof s1);
        kiln__dims_format(&b->dims, s2, sizeof s2);
        return kiln__layer_error(layer, KILN_INVALID_ARGUMENT, "shapes %s, %s and %s do not broadcast", s0, s1, s2);
    }
    outputs[0].dtype = a->dtype;
    outputs[0].dims = out;
    return KILN_OK;
}

static void select_describe(const kiln_layer *layer, kiln__buf *out) {
    (void)layer;
    kiln__buf_printf(out, "where(cond, a, b)");
}

const kiln__layer_ops kiln__select_ops = {"Select", select_infer, select_describe};
