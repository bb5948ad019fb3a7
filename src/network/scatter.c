/* Scatter: ScatterND and ScatterElements (and the deprecated Scatter) with reductions. */
#include "tensor_layers.h"

static const char *const mode_names[2] = {"nd", "elements"};
static const char *const red_names[5] = {"none", "add", "mul", "max", "min"};

static kiln_status scatter_infer(const kiln_layer *layer, const kiln__value *inputs, kiln__value *outputs) {
    const kiln__scatter_params *p = (const kiln__scatter_params *)layer->p.bytes;
    if (layer->nb_inputs != 3) return kiln__layer_error(layer, KILN_INVALID_ARGUMENT, "needs 3 inputs");
    const kiln__value *data = &inputs[0], *idx = &inputs[1], *upd = &inputs[2];
    const kiln_dims *dd = &data->dims, *id = &idx->dims, *ud = &upd->dims;
    int32_t r = dd->nb_dims, q = id->nb_dims;
    if (!kiln__elem_bytes(data->dtype))
        return kiln__layer_error(layer, KILN_UNSUPPORTED, "dtype %s is not supported", kiln_dtype_name(data->dtype));
    if (idx->dtype != KILN_INT32 && idx->dtype != KILN_INT64)
        return kiln__layer_error(layer, KILN_INVALID_ARGUMENT, "input 1 (indices) has dtype %s, expected int32/int64",
                                 kiln_dtype_name(idx->dtype));
    if (upd->dtype != data->dtype)
        return kiln__layer_error(layer, KILN_INVALID_ARGUMENT, "input 2 (updates) has dtype %s, expected %s",
                                 kiln_dtype_name(upd->dtype), kiln_dtype_name(data->dtype));
    if (p->reduction < 0 || p->reduction > KILN__SCATTER_MIN)
        return kiln__layer_error(layer, KILN_INVALID_ARGUMENT, "unknown reduction %d", p->reduction);
    if (p->reduction != KILN__SCATTER_NONE && !kiln__dtype_is_float(data->dtype) &&
        !kiln__dtype_is_integer(data->dtype) && data->dtype != KILN_BOOL)
        return kiln__layer_error(layer, KILN_UNSUPPORTED, "reduction %s of dtype %s is not supported",
                                 red_names[p->reduction], kiln_dtype_name(data->dtype));
    if (p->mode == KILN__SCATTER_ND) {
        if (r < 1 || q < 1) return kiln__layer_error(layer, KILN_INVALID_ARGUMENT, "data and indices need rank >= 1");
        int64_t k = id->d[q - 1];
        if (k < 0)
            return kiln__layer_error(layer, KILN_UNSUPPORTED, "the last dim of the indices must be known at build time");
        if (k < 1 || k > r)
            return kiln__layer_error(layer, KILN_INVALID_ARGUMENT, "the last dim of the indices is %lld, expected 1..%d",
                                     (long long)k, r);
        /* updates: indices.shape[:-1] + data.shape[k:] */
        int32_t ur = q - 1 + r - (int32_t)k;
        if (ud->nb_dims != ur)
            return kiln__layer_error(layer, KILN_INVALID_ARGUMENT, "input 2 (updates) has rank %d, expected %d",
                                     ud->nb_dims, ur);
        for (int32_t i = 0; i < ur; i++) {
            int64_t want = i < q - 1 ? id->d[i] : dd->d[k + i - (q - 1)];
            if (want >= 0 && ud->d[i] >= 0 && want != ud->d[i])
                return kiln__layer_error(layer, KILN_INVALID_ARGUMENT, "input 2 (updates) dim %d is %lld, expected %lld",
                                         i, (long long)ud->d[i], (long long)want);
        }
    } else if (p->mode == KILN__SCATTER_ELEMENTS) {
        int32_t axis;
        if (r < 1 || q != r || ud->nb_dims != r)
            return kiln__layer_error(layer, KILN_INVALID_ARGUMENT,
                                     "data, indices and updates need one rank >= 1, got %d, %d, %d", r, q, ud->nb_dims);
        if (!kiln__norm_axis(p->axis, r, &axis))
            return kiln__layer_error(layer, KILN_INVALID_ARGUMENT, "axis %d is out of range for rank %d", p->axis, r);
        for (int32_t i = 0; i < r; i++) {
            if (id->d[i] >= 0 && ud->d[i] >= 0 && id->d[i] != ud->d[i])
                return kiln__layer_error(layer, KILN_INVALID_ARGUMENT,
                                         "indices and updates differ in dim %d (%lld vs %lld)", i, (long long)id->d[i],
                                         (long long)ud->d[i]);
            if (i != axis && id->d[i] >= 0 && dd->d[i] >= 0 && id->d[i] > dd->d[i])
                return kiln__layer_error(layer, KILN_INVALID_ARGUMENT, "indices dim %d is %lld, larger than the data's %lld",
                                         i, (long long)id->d[i], (long long)dd->d[i]);
        }
    } else {
        return kiln__layer_error(layer, KILN_INVALID_ARGUMENT, "unknown scatter mode %d", p->mode);
    }
    outputs[0].dtype = data->dtype;
    outputs[0].dims = *dd;
    return KILN_OK;
}

static void scatter_describe(const kiln_layer *layer, kiln__buf *out) {
    const kiln__scatter_params *p = (const kiln__scatter_params *)layer->p.bytes;
    kiln__buf_printf(out, "mode=%s axis=%d reduction=%s", p->mode >= 0 && p->mode < 2 ? mode_names[p->mode] : "?",
                     p->axis, p->reduction >= 0 && p->reduction < 5 ? red_names[p->reduction] : "?");
}

const kiln__layer_ops kiln__scatter_ops = {"Scatter", scatter_infer, scatter_describe};
