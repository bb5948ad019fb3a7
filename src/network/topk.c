/* TopK: the k largest (or smallest) elements along an axis and their int64 indices. */
#include "tensor_layers.h"

/* k from input 1 when present (-1 while unknown), else the static k. */
kiln_status kiln__topk_k(const kiln_layer *layer, const kiln__value *inputs, int64_t *k) {
    const kiln__topk_params *p = (const kiln__topk_params *)layer->p.bytes;
    *k = p->k;
    if (!kiln__has_input(layer, inputs, 1)) return KILN_OK;
    const kiln__value *kv = &inputs[1];
    if ((kv->dtype != KILN_INT64 && kv->dtype != KILN_INT32) || !kiln__value_is_single(kv))
        return kiln__layer_error(layer, KILN_INVALID_ARGUMENT, "input 1 (k) must be one int32/int64 value");
    *k = kv->data && kiln__dims_volume(&kv->dims) == 1 ? kiln__value_int(kv, 0) : -1;
    if (kv->data && kiln__dims_volume(&kv->dims) != 1)
        return kiln__layer_error(layer, KILN_INVALID_ARGUMENT, "input 1 (k) must hold exactly one value");
    if (kv->data && *k < 0)
        return kiln__layer_error(layer, KILN_INVALID_ARGUMENT, "k is %lld, expected >= 0", (long long)*k);
    return KILN_OK;
}

static kiln_status topk_infer(const kiln_layer *layer, const kiln__value *inputs, kiln__value *outputs) {
    const kiln__topk_params *p = (const kiln__topk_params *)layer->p.bytes;
    const kiln__value *x = &inputs[0];
    if (layer->nb_outputs != 2) return kiln__layer_error(layer, KILN_INVALID_ARGUMENT, "needs 2 outputs");
    if (!kiln__dtype_is_float(x->dtype) && !kiln__dtype_is_integer(x->dtype))
        return kiln__layer_error(layer, KILN_UNSUPPORTED, "dtype %s is not supported", kiln_dtype_name(x->dtype));
    int32_t rank = x->dims.nb_dims, axis;
    if (!kiln__norm_axis(p->axis, rank, &axis))
        return kiln__layer_error(layer, KILN_INVALID_ARGUMENT, "axis %d is out of range for rank %d", p->axis, rank);
    int64_t k;
    KILN__TRY(kiln__topk_k(layer, inputs, &k));
    if (k < 0 && !kiln__has_input(layer, inputs, 1))
        return kiln__layer_error(layer, KILN_INVALID_ARGUMENT, "k is %lld, expected >= 0", (long long)k);
    int64_t dim = x->dims.d[axis];
    if (k >= 0 && dim >= 0 && k > dim)
        return kiln__layer_error(layer, KILN_INVALID_ARGUMENT, "k is %lld, larger than the axis dim %lld",
                                 (long long)k, (long long)dim);
    kiln_dims out = x->dims;
    out.d[axis] = k;
    outputs[0].dtype = x->dtype;
    outputs[0].dims = out;
    outputs[1].dtype = KILN_INT64;
    outputs[1].dims = out;
    return KILN_OK;
}

static void topk_describe(const kiln_layer *layer, kiln__buf *out) {
    const kiln__topk_params *p = (const kiln__topk_params *)layer->p.bytes;
    kiln__buf_printf(out, "axis=%d largest=%d sorted=%d", p->axis, p->largest, p->sorted);
    if (layer->nb_inputs > 1 && layer->inputs[1]) kiln__buf_printf(out, " k=input1");
    else kiln__buf_printf(out, " k=%lld", (long long)p->k);
}

const kiln__layer_ops kiln__topk_ops = {"TopK", topk_infer, topk_describe};
