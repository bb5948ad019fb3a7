/* The normalization layer: batch (inference), layer, instance, group and RMS normalization. */
#include "ir.h"

#include <math.h>

static const char *const NORM_NAMES[] = {"batch", "layer", "instance", "group", "rms"};
static const char *const NORM_INPUTS[] = {"x", "scale", "bias", "mean", "variance"};

static bool present(const kiln__value *v) { return v->dtype != KILN_DTYPE_UNDEFINED; }

/* Checks input i is present (or absent when `required` is -1), float, and holds `want` (or
 * `alt`) values when both are known (>= 0). */
static kiln_status check_param(const kiln_layer *layer, const kiln__value *in, int32_t i, int required, int64_t want,
                               int64_t alt, const char *what) {
    const kiln__value *v = &in[i];
    if (!present(v)) {
        if (required > 0)
            return kiln__layer_error(layer, KILN_INVALID_ARGUMENT, "%s normalization needs input %d (%s)",
                                     NORM_NAMES[layer->p.norm.type], i, NORM_INPUTS[i]);
        return KILN_OK;
    }
    if (required < 0)
        return kiln__layer_error(layer, KILN_INVALID_ARGUMENT, "%s normalization takes no input %d (%s)",
                                 NORM_NAMES[layer->p.norm.type], i, NORM_INPUTS[i]);
    if (!kiln__dtype_is_float(v->dtype))
        return kiln__layer_error(layer, KILN_INVALID_ARGUMENT, "input %d (%s) has dtype %s, expected a float type", i,
                                 NORM_INPUTS[i], kiln_dtype_name(v->dtype));
    int64_t n = kiln__dims_volume(&v->dims);
    if (n >= 0 && want >= 0 && n != want && n != alt)
        return kiln__layer_error(layer, KILN_INVALID_ARGUMENT, "input %d (%s) has %lld values, expected %lld (%s)", i,
                                 NORM_INPUTS[i], (long long)n, (long long)want, what);
    return KILN_OK;
}

/* Layer/RMS: scale and bias must broadcast (numpy rules, one way) onto dims axis..end of x. */
static kiln_status check_broadcast_param(const kiln_layer *layer, const kiln__value *in, int32_t i, int32_t axis) {
    const kiln__value *v = &in[i];
    if (!present(v)) return KILN_OK;
    if (!kiln__dtype_is_float(v->dtype))
        return kiln__layer_error(layer, KILN_INVALID_ARGUMENT, "input %d (%s) has dtype %s, expected a float type", i,
                                 NORM_INPUTS[i], kiln_dtype_name(v->dtype));
    const kiln_dims *x = &in[0].dims;
    int32_t nrank = x->nb_dims - axis;
    bool ok = v->dims.nb_dims <= nrank;
    for (int32_t k = 1; ok && k <= v->dims.nb_dims; k++) {
        int64_t dv = v->dims.d[v->dims.nb_dims - k], dx = x->d[x->nb_dims - k];
        ok = dv == 1 || dv == dx || dv < 0 || dx < 0;
    }
    if (!ok) {
        char dv[160], dx[160];
        kiln__dims_format(&v->dims, dv, sizeof dv);
        kiln_dims tail = {.nb_dims = nrank};
        for (int32_t k = 0; k < nrank; k++) tail.d[k] = x->d[axis + k];
        kiln__dims_format(&tail, dx, sizeof dx);
        return kiln__layer_error(layer, KILN_INVALID_ARGUMENT,
                                 "input %d (%s) has shape %s, which does not broadcast to the normalized dims %s", i,
                                 NORM_INPUTS[i], dv, dx);
    }
    return KILN_OK;
}

static kiln_status normalization_infer(const kiln_layer *layer, const kiln__value *in, kiln__value *out) {
    const kiln__norm_params *p = &layer->p.norm;
    if (layer->nb_inputs != 5) return kiln__layer_error(layer, KILN_INVALID_ARGUMENT, "expected 5 input slots");
    if (p->type < KILN_NORM_BATCH || p->type > KILN_NORM_RMS)
        return kiln__layer_error(layer, KILN_INVALID_ARGUMENT, "type %d is out of range 0..4", p->type);
    if (!(p->epsilon >= 0) || isinf(p->epsilon))
        return kiln__layer_error(layer, KILN_INVALID_ARGUMENT, "epsilon %g must be finite and non-negative",
                                 (double)p->epsilon);
    const kiln_dims *d = &in[0].dims;
    if (!kiln__dtype_is_float(in[0].dtype))
        return kiln__layer_error(layer, KILN_INVALID_ARGUMENT, "input 0 (x) has dtype %s, expected a float type",
                                 kiln_dtype_name(in[0].dtype));
    if (p->type == KILN_NORM_LAYER || p->type == KILN_NORM_RMS) {
        int32_t axis;
        if (d->nb_dims < 1 || !kiln__norm_axis(p->axis, d->nb_dims, &axis))
            return kiln__layer_error(layer, KILN_INVALID_ARGUMENT, "axis %d is out of range for rank %d", p->axis,
                                     d->nb_dims);
        if (!present(&in[1]))
            return kiln__layer_error(layer, KILN_INVALID_ARGUMENT, "%s normalization needs input 1 (scale)",
                                     NORM_NAMES[p->type]);
        KILN__TRY(check_broadcast_param(layer, in, 1, axis));
        KILN__TRY(check_broadcast_param(layer, in, 2, axis));
        KILN__TRY(check_param(layer, in, 3, -1, -1, -1, ""));
        KILN__TRY(check_param(layer, in, 4, -1, -1, -1, ""));
    } else {
        if (d->nb_dims < 2)
            return kiln__layer_error(layer, KILN_INVALID_ARGUMENT,
                                     "input 0 (x) has rank %d, expected at least 2 ([N, C, ...])", d->nb_dims);
        int64_t c = d->d[1], alt = -1;
        if (p->type == KILN_NORM_GROUP) {
            if (p->nb_groups < 1)
                return kiln__layer_error(layer, KILN_INVALID_ARGUMENT, "nb_groups is %d, expected at least 1",
                                         p->nb_groups);
            if (c >= 0 && c % p->nb_groups != 0)
                return kiln__layer_error(layer, KILN_INVALID_ARGUMENT, "%lld channels do not split into %d groups",
                                         (long long)c, p->nb_groups);
            alt = p->nb_groups; /* opset 18 GroupNormalization: one scale/bias per group */
        }
        int stats = p->type == KILN_NORM_BATCH ? 1 : -1;
        KILN__TRY(check_param(layer, in, 1, 1, c, alt, "channels, dim 1 of x"));
        KILN__TRY(check_param(layer, in, 2, 1, c, alt, "channels, dim 1 of x"));
        KILN__TRY(check_param(layer, in, 3, stats, c, -1, "channels, dim 1 of x"));
        KILN__TRY(check_param(layer, in, 4, stats, c, -1, "channels, dim 1 of x"));
    }
    out[0].dtype = in[0].dtype;
    out[0].dims = *d;
    return KILN_OK;
}

static void normalization_describe(const kiln_layer *layer, kiln__buf *out) {
    const kiln__norm_params *p = &layer->p.norm;
    kiln__buf_printf(out, "type=%s epsilon=%g axis=%d groups=%d",
                     p->type >= 0 && p->type <= KILN_NORM_RMS ? NORM_NAMES[p->type] : "?", (double)p->epsilon,
                     p->axis, p->nb_groups);
}

const kiln__layer_ops kiln__normalization_ops = {"Normalization", normalization_infer, normalization_describe};

kiln_status kiln_network_add_normalization(kiln_network *net, kiln_tensor *input, const kiln_normalization_desc *desc,
                                           kiln_tensor *scale, kiln_tensor *bias, kiln_tensor *mean,
                                           kiln_tensor *variance, kiln_layer **layer) {
    if (layer) *layer = NULL;
    if (!net || !desc) return kiln__error(KILN_INVALID_ARGUMENT, "add_normalization: network or desc is NULL");
    if (desc->struct_size < sizeof *desc)
        return kiln__error(KILN_INVALID_ARGUMENT, "add_normalization: desc->struct_size is %zu, expected %zu",
                           desc->struct_size, sizeof *desc);
    KILN__TRY(kiln__check_tensor(net, input, "add_normalization: input"));
    kiln_tensor *inputs[5] = {input, scale, bias, mean, variance};
    kiln_layer *l;
    KILN__TRY(kiln__network_new_layer(net, KILN_LAYER_NORMALIZATION, inputs, 5, 1, &l));
    l->p.norm.type = (int32_t)desc->type;
    l->p.norm.epsilon = desc->epsilon;
    l->p.norm.axis = desc->axis;
    l->p.norm.nb_groups = desc->nb_groups;
    return kiln__network_finish_layer(net, l, layer);
}
