/* Padding: constant, reflect, edge or wrap padding (ONNX Pad); negative pads crop. */
#include "tensor_layers.h"

static const char *const mode_names[4] = {"constant", "reflect", "edge", "wrap"};

kiln_status kiln__padding_resolve(const kiln_layer *layer, const kiln__value *inputs, int64_t *begin, int64_t *end,
                                  bool *known) {
    const kiln__padding_params *p = (const kiln__padding_params *)layer->p.bytes;
    int32_t rank = inputs[0].dims.nb_dims;
    int32_t axes[KILN_MAX_DIMS], nb_axes;
    *known = true;
    for (int32_t i = 0; i < rank; i++) begin[i] = end[i] = 0;
    if (kiln__has_input(layer, inputs, 3)) {
        const kiln__value *a = &inputs[3];
        if ((a->dtype != KILN_INT64 && a->dtype != KILN_INT32) || a->dims.nb_dims != 1 || a->dims.d[0] < 0 ||
            a->dims.d[0] > rank)
            return kiln__layer_error(layer, KILN_INVALID_ARGUMENT,
                                     "input 3 (axes) must be a 1-D int32/int64 tensor of known length <= rank %d", rank);
        nb_axes = (int32_t)a->dims.d[0];
        if (!a->data) {
            *known = false;
            return KILN_OK;
        }
        for (int32_t i = 0; i < nb_axes; i++) {
            int64_t v = kiln__value_int(a, i);
            if (!kiln__norm_axis(v, rank, &axes[i]))
                return kiln__layer_error(layer, KILN_INVALID_ARGUMENT, "axis %lld is out of range for rank %d",
                                         (long long)v, rank);
        }
    } else if (p->nb_axes > 0) {
        nb_axes = p->nb_axes;
        if (nb_axes > rank) return kiln__layer_error(layer, KILN_INVALID_ARGUMENT, "more axes than dims");
        for (int32_t i = 0; i < nb_axes; i++)
            if (!kiln__norm_axis(p->axes[i], rank, &axes[i]))
                return kiln__layer_error(layer, KILN_INVALID_ARGUMENT, "axis %d is out of range for rank %d",
                                         p->axes[i], rank);
    } else {
        nb_axes = rank;
        for (int32_t i = 0; i < rank; i++) axes[i] = i;
    }
    for (int32_t i = 0; i < nb_axes; i++)
        for (int32_t j = 0; j < i; j++)
            if (axes[i] == axes[j])
                return kiln__layer_error(layer, KILN_INVALID_ARGUMENT, "axis %d is given twice", axes[i]);
    if (kiln__has_input(layer, inputs, 1)) {
        const kiln__value *pv = &inputs[1];
        if ((pv->dtype != KILN_INT64 && pv->dtype != KILN_INT32) || pv->dims.nb_dims != 1)
            return kiln__layer_error(layer, KILN_INVALID_ARGUMENT, "input 1 (pads) must be a 1-D int32/int64 tensor");
        if (pv->dims.d[0] >= 0 && pv->dims.d[0] != 2 * nb_axes)
            return kiln__layer_error(layer, KILN_INVALID_ARGUMENT, "input 1 (pads) has %lld entries, expected %d",
                                     (long long)pv->dims.d[0], 2 * nb_axes);
        if (!pv->data || pv->dims.d[0] < 0) {
            *known = false;
            return KILN_OK;
        }
        for (int32_t i = 0; i < nb_axes; i++) {
            begin[axes[i]] = kiln__value_int(pv, i);
            end[axes[i]] = kiln__value_int(pv, nb_axes + i);
        }
    } else {
        for (int32_t i = 0; i < nb_axes; i++) {
            begin[axes[i]] = p->pads[i];
            end[axes[i]] = p->pads[nb_axes + i];
        }
    }
    return KILN_OK;
}

static kiln_status padding_infer(const kiln_layer *layer, const kiln__value *inputs, kiln__value *outputs) {
    const kiln__padding_params *p = (const kiln__padding_params *)layer->p.bytes;
    const kiln__value *x = &inputs[0];
    if (!kiln__elem_bytes(x->dtype))
        return kiln__layer_error(layer, KILN_UNSUPPORTED, "dtype %s is not supported", kiln_dtype_name(x->dtype));
    if (p->mode < 0 || p->mode > KILN__PAD_WRAP)
        return kiln__layer_error(layer, KILN_INVALID_ARGUMENT, "unknown pad mode %d", p->mode);
    if (p->nb_axes < 0 || p->nb_axes > KILN_MAX_DIMS)
        return kiln__layer_error(layer, KILN_INVALID_ARGUMENT, "nb_axes %d is out of range", p->nb_axes);
    if (kiln__has_input(layer, inputs, 2)) {
        const kiln__value *v = &inputs[2];
        if (v->dtype != x->dtype || !kiln__value_is_single(v))
            return kiln__layer_error(layer, KILN_INVALID_ARGUMENT,
                                     "input 2 (constant value) must be one value of dtype %s",
                                     kiln_dtype_name(x->dtype));
    }
    int64_t begin[KILN_MAX_DIMS], end[KILN_MAX_DIMS];
    bool known;
    KILN__TRY(kiln__padding_resolve(layer, inputs, begin, end, &known));
    kiln_dims out = x->dims;
    for (int32_t i = 0; i < out.nb_dims; i++) {
        if (!known) {
            out.d[i] = -1;
            continue;
        }
        if (out.d[i] < 0) continue;
        int64_t d = out.d[i];
        out.d[i] = d + begin[i] + end[i];
        if (out.d[i] < 0)
            return kiln__layer_error(layer, KILN_INVALID_ARGUMENT, "pads %lld and %lld make dim %d negative",
                                     (long long)begin[i], (long long)end[i], i);
        if (p->mode != KILN__PAD_CONSTANT && d == 0 && out.d[i] > 0)
            return kiln__layer_error(layer, KILN_INVALID_ARGUMENT, "%s padding of dim %d, which is empty",
                                     mode_names[p->mode], i);
    }
    outputs[0].dtype = x->dtype;
    outputs[0].dims = out;
    return KILN_OK;
}

static void padding_describe(const kiln_layer *layer, kiln__buf *out) {
    const kiln__padding_params *p = (const kiln__padding_params *)layer->p.bytes;
    const char *mode = p->mode >= 0 && p->mode < 4 ? mode_names[p->mode] : "?";
    kiln__buf_printf(out, "mode=%s", mode);
    if (layer->nb_inputs > 1 && layer->inputs[1]) {
        kiln__buf_printf(out, " pads=input1");
    } else {
        int32_t n = p->nb_axes ? p->nb_axes : (layer->inputs[0] ? layer->inputs[0]->dims.nb_dims : 0);
        kiln__buf_printf(out, " pads=[");
        for (int32_t i = 0; i < 2 * n && i < 2 * KILN_MAX_DIMS; i++)
            kiln__buf_printf(out, "%s%lld", i ? "," : "", (long long)p->pads[i]);
        kiln__buf_printf(out, "]");
    }
    if (p->mode == KILN__PAD_CONSTANT && !(layer->nb_inputs > 2 && layer->inputs[2]))
        kiln__buf_printf(out, " value=%g", p->value);
}

const kiln__layer_ops kiln__padding_ops = {"Padding", padding_infer, padding_describe};
