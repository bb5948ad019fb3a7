/* Gather in its three ONNX forms: Gather (take along an axis), GatherElements and GatherND. */
#include "layer_resolve.h"

static const char *const mode_names[3] = {"default", "elements", "nd"};

static kiln_status gather_infer(const kiln_layer *layer, const kiln__value *inputs, kiln__value *outputs) {
    const kiln__gather_params *p = &layer->p.gather;
    const kiln__value *data = &inputs[0], *idx = &inputs[1];
    const kiln_dims *dd = &data->dims, *id = &idx->dims;
    int32_t r = dd->nb_dims, q = id->nb_dims, axis;
    if (!kiln__elem_bytes(data->dtype))
        return kiln__layer_error(layer, KILN_UNSUPPORTED, "data dtype %s is not supported",
                                 kiln_dtype_name(data->dtype));
    if (idx->dtype != KILN_INT32 && idx->dtype != KILN_INT64)
        return kiln__layer_error(layer, KILN_INVALID_ARGUMENT, "input 1 (indices) has dtype %s, expected int32/int64",
                                 kiln_dtype_name(idx->dtype));
    kiln_dims out = {0};
    switch (p->mode) {
    case KILN_GATHER_DEFAULT:
        if (r < 1) return kiln__layer_error(layer, KILN_INVALID_ARGUMENT, "input 0 (data) is a scalar");
        if (!kiln__norm_axis(p->axis, r, &axis))
            return kiln__layer_error(layer, KILN_INVALID_ARGUMENT, "axis %d is out of range for rank %d", p->axis, r);
        if (r - 1 + q > KILN_MAX_DIMS)
            return kiln__layer_error(layer, KILN_UNSUPPORTED, "output rank %d exceeds %d", r - 1 + q, KILN_MAX_DIMS);
        for (int32_t i = 0; i < axis; i++) out.d[out.nb_dims++] = dd->d[i];
        for (int32_t i = 0; i < q; i++) out.d[out.nb_dims++] = id->d[i];
        for (int32_t i = axis + 1; i < r; i++) out.d[out.nb_dims++] = dd->d[i];
        break;
    case KILN_GATHER_ELEMENTS:
        if (r < 1 || q != r)
            return kiln__layer_error(layer, KILN_INVALID_ARGUMENT, "indices have rank %d, expected %d (the data's)", q,
                                     r);
        if (!kiln__norm_axis(p->axis, r, &axis))
            return kiln__layer_error(layer, KILN_INVALID_ARGUMENT, "axis %d is out of range for rank %d", p->axis, r);
        for (int32_t i = 0; i < r; i++)
            if (i != axis && id->d[i] >= 0 && dd->d[i] >= 0 && id->d[i] > dd->d[i])
                return kiln__layer_error(layer, KILN_INVALID_ARGUMENT,
                                         "indices dim %d is %lld, larger than the data's %lld", i,
                                         (long long)id->d[i], (long long)dd->d[i]);
        out = *id;
        break;
    case KILN_GATHER_ND: {
        int32_t b = p->axis;
        if (q < 1 || r < 1) return kiln__layer_error(layer, KILN_INVALID_ARGUMENT, "data and indices need rank >= 1");
        if (b < 0 || b >= KILN__MIN(q, r))
            return kiln__layer_error(layer, KILN_INVALID_ARGUMENT, "batch_dims %d must be in [0, %d)", b,
                                     KILN__MIN(q, r));
        int64_t k = id->d[q - 1];
        if (k < 0)
            return kiln__layer_error(layer, KILN_UNSUPPORTED, "the last dim of the indices must be known at build time");
        if (k < 1 || k > r - b)
            return kiln__layer_error(layer, KILN_INVALID_ARGUMENT,
                                     "the last dim of the indices is %lld, expected 1..%d (rank - batch_dims)",
                                     (long long)k, r - b);
        for (int32_t i = 0; i < b; i++)
            if (dd->d[i] >= 0 && id->d[i] >= 0 && dd->d[i] != id->d[i])
                return kiln__layer_error(layer, KILN_INVALID_ARGUMENT,
                                         "batch dim %d is %lld in the data and %lld in the indices", i,
                                         (long long)dd->d[i], (long long)id->d[i]);
        if (q - 1 + r - b - (int32_t)k > KILN_MAX_DIMS)
            return kiln__layer_error(layer, KILN_UNSUPPORTED, "output rank exceeds %d", KILN_MAX_DIMS);
        for (int32_t i = 0; i < q - 1; i++) out.d[out.nb_dims++] = i < b && id->d[i] < 0 ? dd->d[i] : id->d[i];
        for (int32_t i = b + (int32_t)k; i < r; i++) out.d[out.nb_dims++] = dd->d[i];
        break;
    }
    default: return kiln__layer_error(layer, KILN_INVALID_ARGUMENT, "unknown gather mode %d", p->mode);
    }
    outputs[0].dtype = data->dtype;
    outputs[0].dims = out;
    return KILN_OK;
}

static void gather_describe(const kiln_layer *layer, kiln__buf *out) {
    const kiln__gather_params *p = &layer->p.gather;
    const char *mode = p->mode >= 0 && p->mode < 3 ? mode_names[p->mode] : "?";
    kiln__buf_printf(out, "mode=%s %s=%d", mode, p->mode == KILN_GATHER_ND ? "batch_dims" : "axis", p->axis);
}

const kiln__layer_ops kiln__gather_ops = {"Gather", gather_infer, gather_describe};

kiln_status kiln_network_add_gather(kiln_network *network, kiln_tensor *data, kiln_tensor *indices,
                                    kiln_gather_mode mode, int32_t axis_or_batch_dims, kiln_layer **layer) {
    if (layer) *layer = NULL;
    if (!network) return kiln__error(KILN_INVALID_ARGUMENT, "kiln_network_add_gather: network is NULL");
    KILN__TRY(kiln__check_tensor(network, data, "data"));
    KILN__TRY(kiln__check_tensor(network, indices, "indices"));
    if ((int32_t)mode < 0 || mode > KILN_GATHER_ND)
        return kiln__error(KILN_INVALID_ARGUMENT, "kiln_network_add_gather: unknown mode %d", (int)mode);
    kiln_tensor *ins[2] = {data, indices};
    kiln_layer *l;
    KILN__TRY(kiln__network_new_layer(network, KILN_LAYER_GATHER, ins, 2, 1, &l));
    l->p.gather.mode = mode;
    l->p.gather.axis = axis_or_batch_dims;
    return kiln__network_finish_layer(network, l, layer);
}
