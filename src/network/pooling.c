/* Pooling layer (ONNX MaxPool / AveragePool / LpPool and their global forms): the network API,
 * shape inference and description. */
#include "ir.h"

static kiln_status pooling_infer(const kiln_layer *layer, const kiln__value *in, kiln__value *out) {
    const kiln__pool_params *p = &layer->p.pool;
    if (layer->nb_inputs != 1 || in[0].dtype == KILN_DTYPE_UNDEFINED)
        return kiln__layer_error(layer, KILN_INVALID_ARGUMENT, "has %d inputs, expected 1", layer->nb_inputs);
    kiln_dtype t = in[0].dtype;
    if (t != KILN_FLOAT32 && t != KILN_FLOAT16 && t != KILN_BFLOAT16 && t != KILN_FLOAT64)
        return kiln__layer_error(layer, KILN_UNSUPPORTED, "input 0 has dtype %s, expected a float type",
                                 kiln_dtype_name(t));
    if (p->type < KILN_POOL_MAX || p->type > KILN_POOL_LP)
        return kiln__layer_error(layer, KILN_INVALID_ARGUMENT, "pooling type %d is unknown", p->type);
    if (layer->nb_outputs > 2 || (layer->nb_outputs == 2 && p->type != KILN_POOL_MAX))
        return kiln__layer_error(layer, KILN_INVALID_ARGUMENT,
                                 "has %d outputs; only max pooling has a second (indices) output", layer->nb_outputs);
    if (p->type == KILN_POOL_LP && p->lp_norm < 1)
        return kiln__layer_error(layer, KILN_INVALID_ARGUMENT, "lp_norm is %d, expected >= 1", p->lp_norm);
    const kiln_dims *x = &in[0].dims;
    int32_t ns = p->nb_spatial;
    /* Global pooling may leave nb_spatial 0: it then pools over every dim after N and C. */
    if (ns == 0 && p->global && x->nb_dims >= 3) ns = x->nb_dims - 2;
    if (ns < 1 || (!p->global && ns > 3))
        return kiln__layer_error(layer, KILN_INVALID_ARGUMENT, "has %d spatial dims, expected 1 to 3", ns);
    if (x->nb_dims != ns + 2)
        return kiln__layer_error(layer, KILN_INVALID_ARGUMENT, "input 0 has rank %d, expected %d", x->nb_dims, ns + 2);
    kiln_dims o = *x;
    if (p->global) {
        for (int32_t i = 0; i < ns; i++) o.d[2 + i] = 1;
    } else {
        if (p->auto_pad < KILN__PAD_EXPLICIT || p->auto_pad > KILN__PAD_VALID)
            return kiln__layer_error(layer, KILN_INVALID_ARGUMENT, "auto_pad %d is unknown", p->auto_pad);
        for (int32_t i = 0; i < ns; i++) {
            int64_t k = p->window[i], s = p->stride[i], d = p->dilation[i], n = x->d[2 + i];
            int64_t pb = p->pad_begin[i], pe = p->pad_end[i];
            if (k < 1 || s < 1 || d < 1 || pb < 0 || pe < 0)
                return kiln__layer_error(layer, KILN_INVALID_ARGUMENT,
                                         "spatial dim %d: window %lld, stride %lld, dilation %lld must be >= 1 and "
                                         "pads %lld,%lld >= 0",
                                         i, (long long)k, (long long)s, (long long)d, (long long)pb, (long long)pe);
            if (n < 0) {
                o.d[2 + i] = -1;
                continue;
            }
            int64_t span = d * (k - 1) + 1, r;
            if (p->auto_pad == KILN__PAD_SAME_UPPER || p->auto_pad == KILN__PAD_SAME_LOWER) {
                r = (n + s - 1) / s;
            } else {
                if (p->auto_pad == KILN__PAD_VALID) pb = pe = 0;
                int64_t room = n + pb + pe - span;
                if (room < 0)
                    return kiln__layer_error(layer, KILN_INVALID_ARGUMENT,
                                             "spatial dim %d: the window (extent %lld) is larger than the padded "
                                             "input (%lld)",
                                             i, (long long)span, (long long)(n + pb + pe));
                r = (p->ceil_mode ? (room + s - 1) / s : room / s) + 1;
                /* ONNX/PyTorch rule: the last window must start inside the input or the left padding. */
                if (p->ceil_mode && (r - 1) * s >= n + pb) r--;
            }
            o.d[2 + i] = r;
        }
    }
    out[0].dtype = t;
    out[0].dims = o;
    if (layer->nb_outputs == 2) {
        out[1].dtype = KILN_INT64;
        out[1].dims = o;
    }
    return KILN_OK;
}

static void print_list(kiln__buf *out, const char *key, const int64_t *v, int32_t n) {
    kiln__buf_printf(out, " %s=", key);
    for (int32_t i = 0; i < n; i++) kiln__buf_printf(out, i ? "x%lld" : "%lld", (long long)v[i]);
}

static void pooling_describe(const kiln_layer *layer, kiln__buf *out) {
    static const char *const types[] = {"max", "average", "lp"};
    static const char *const pads[] = {"explicit", "same_upper", "same_lower", "valid"};
    const kiln__pool_params *p = &layer->p.pool;
    kiln__buf_printf(out, "type=%s", p->type >= 0 && p->type <= KILN_POOL_LP ? types[p->type] : "?");
    if (p->global) {
        kiln__buf_printf(out, " global=1");
        return;
    }
    int32_t ns = KILN__MAX(0, KILN__MIN(p->nb_spatial, 3));
    print_list(out, "window", p->window, ns);
    print_list(out, "stride", p->stride, ns);
    print_list(out, "dilation", p->dilation, ns);
    if (p->auto_pad > KILN__PAD_EXPLICIT && p->auto_pad <= KILN__PAD_VALID)
        kiln__buf_printf(out, " auto_pad=%s", pads[p->auto_pad]);
    else {
        print_list(out, "pad_begin", p->pad_begin, ns);
        print_list(out, "pad_end", p->pad_end, ns);
    }
    if (p->ceil_mode) kiln__buf_printf(out, " ceil_mode=1");
    if (p->type == KILN_POOL_AVERAGE) kiln__buf_printf(out, " count_include_pad=%d", p->count_include_pad);
    if (p->type == KILN_POOL_LP) kiln__buf_printf(out, " p=%d", p->lp_norm);
}

const kiln__layer_ops kiln__pooling_ops = {"Pooling", pooling_infer, pooling_describe};

kiln_status kiln_network_add_pooling(kiln_network *network, kiln_tensor *input, const kiln_pooling_desc *desc,
                                     kiln_layer **layer) {
    if (layer) *layer = NULL;
    if (!network) return kiln__error(KILN_INVALID_ARGUMENT, "kiln_network_add_pooling: network is NULL");
    KILN__TRY(kiln__check_tensor(network, input, "input"));
    if (!desc || desc->struct_size < sizeof *desc)
        return kiln__error(KILN_INVALID_ARGUMENT,
                           "kiln_network_add_pooling: desc is NULL or its struct_size is too small");
    int32_t ns = desc->nb_spatial_dims ? desc->nb_spatial_dims : 2;
    if (ns < 1 || ns > 3)
        return kiln__error(KILN_INVALID_ARGUMENT, "kiln_network_add_pooling: nb_spatial_dims is %d, expected 1 to 3",
                           ns);
    kiln_layer *l;
    KILN__TRY(kiln__network_new_layer(network, KILN_LAYER_POOLING, &input, 1, 1, &l));
    kiln__pool_params *p = &l->p.pool;
    p->type = desc->type;
    p->nb_spatial = ns;
    p->global = desc->global != 0;
    p->ceil_mode = desc->ceil_mode != 0;
    p->count_include_pad = desc->count_include_pad != 0;
    p->lp_norm = desc->lp_norm ? desc->lp_norm : 2;
    p->auto_pad = KILN__PAD_EXPLICIT;
    for (int32_t i = 0; i < ns; i++) {
        p->window[i] = desc->window[i];
        p->stride[i] = desc->stride[i] ? desc->stride[i] : 1;
        p->dilation[i] = desc->dilation[i] ? desc->dilation[i] : 1;
        p->pad_begin[i] = desc->padding_begin[i];
        p->pad_end[i] = desc->padding_end[i];
    }
    return kiln__network_finish_layer(network, l, layer);
}
