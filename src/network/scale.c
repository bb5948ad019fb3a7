/* The scale layer: out = (in * scale + shift) ^ power with uniform, per-channel or
 * per-element parameters. The weights become constant layers feeding inputs 1..3. */
#include "ir.h"

static const char *const SCALE_MODES[] = {"uniform", "channel", "elementwise"};
static const char *const SCALE_INPUTS[] = {"x", "shift", "scale", "power"};

/* Number of parameters `mode` needs for an input of dims d; -1 when a dim is unknown.
 * False when the mode or axis is bad. */
static bool scale_count(int32_t mode, int32_t axis, const kiln_dims *d, int32_t *norm_axis, int64_t *count) {
    *count = 1;
    *norm_axis = 0;
    if (mode == KILN_SCALE_UNIFORM) return true;
    if (mode != KILN_SCALE_CHANNEL && mode != KILN_SCALE_ELEMENTWISE) return false;
    if (!kiln__norm_axis(axis, d->nb_dims, norm_axis)) return false;
    int32_t end = mode == KILN_SCALE_CHANNEL ? *norm_axis + 1 : d->nb_dims;
    for (int32_t i = *norm_axis; i < end; i++) {
        if (d->d[i] < 0) {
            *count = -1;
            return true;
        }
        *count *= d->d[i];
    }
    return true;
}

static kiln_status scale_infer(const kiln_layer *layer, const kiln__value *in, kiln__value *out) {
    const kiln__scale_params *p = &layer->p.scale;
    if (p->mode < KILN_SCALE_UNIFORM || p->mode > KILN_SCALE_ELEMENTWISE)
        return kiln__layer_error(layer, KILN_INVALID_ARGUMENT, "mode %d is out of range 0..2", p->mode);
    if (!kiln__dtype_is_float(in[0].dtype))
        return kiln__layer_error(layer, KILN_INVALID_ARGUMENT, "input 0 (x) has dtype %s, expected a float type",
                                 kiln_dtype_name(in[0].dtype));
    int32_t axis;
    int64_t count;
    if (!scale_count(p->mode, p->channel_axis, &in[0].dims, &axis, &count))
        return kiln__layer_error(layer, KILN_INVALID_ARGUMENT, "channel axis %d is out of range for rank %d",
                                 p->channel_axis, in[0].dims.nb_dims);
    for (int32_t i = 1; i < 4 && i < layer->nb_inputs; i++) {
        if (in[i].dtype == KILN_DTYPE_UNDEFINED) continue;
        if (!kiln__dtype_is_float(in[i].dtype))
            return kiln__layer_error(layer, KILN_INVALID_ARGUMENT, "input %d (%s) has dtype %s, expected a float type",
                                     i, SCALE_INPUTS[i], kiln_dtype_name(in[i].dtype));
        int64_t n = kiln__dims_volume(&in[i].dims);
        if (n >= 0 && count >= 0 && n != count)
            return kiln__layer_error(layer, KILN_INVALID_ARGUMENT, "input %d (%s) has %lld values, %s mode needs %lld",
                                     i, SCALE_INPUTS[i], (long long)n, SCALE_MODES[p->mode], (long long)count);
    }
    out[0].dtype = in[0].dtype;
    out[0].dims = in[0].dims;
    return KILN_OK;
}

static void scale_describe(const kiln_layer *layer, kiln__buf *out) {
    const kiln__scale_params *p = &layer->p.scale;
    kiln__buf_printf(out, "mode=%s channel_axis=%d",
                     p->mode >= 0 && p->mode <= KILN_SCALE_ELEMENTWISE ? SCALE_MODES[p->mode] : "?", p->channel_axis);
}

const kiln__layer_ops kiln__scale_ops = {"Scale", scale_infer, scale_describe};

kiln_status kiln_network_add_scale(kiln_network *net, kiln_tensor *input, kiln_scale_mode mode, int32_t channel_axis,
                                   kiln_weights shift, kiln_weights scale, kiln_weights power, kiln_layer **layer) {
    if (layer) *layer = NULL;
    if (!net) return kiln__error(KILN_INVALID_ARGUMENT, "add_scale: network is NULL");
    KILN__TRY(kiln__check_tensor(net, input, "add_scale: input"));
    /* Check the weights before adding their constants, so a refused call leaves no layers. */
    int32_t axis;
    int64_t count;
    if (!scale_count((int32_t)mode, channel_axis, &input->dims, &axis, &count))
        return kiln__error(KILN_INVALID_ARGUMENT, "add_scale: mode %d or channel axis %d is invalid for rank %d",
                           (int)mode, channel_axis, input->dims.nb_dims);
    const kiln_weights *w[3] = {&shift, &scale, &power};
    for (int i = 0; i < 3; i++) {
        if (w[i]->count == 0) continue;
        if (!kiln__dtype_is_float(w[i]->dtype) || !w[i]->values || w[i]->count < 0)
            return kiln__error(KILN_INVALID_ARGUMENT, "add_scale: %s weights need float values (dtype %s)",
                               SCALE_INPUTS[i + 1], kiln_dtype_name(w[i]->dtype));
        if (count >= 0 && w[i]->count != count)
            return kiln__error(KILN_INVALID_ARGUMENT, "add_scale: %s has %lld weights, %s mode needs %lld",
                               SCALE_INPUTS[i + 1], (long long)w[i]->count, SCALE_MODES[mode], (long long)count);
    }
    kiln_tensor *inputs[4] = {input, NULL, NULL, NULL};
    for (int i = 0; i < 3; i++) {
        if (w[i]->count == 0) continue;
        kiln_dims d = {.nb_dims = 1, .d = {w[i]->count}};
        size_t bytes;
        if (!kiln__dtype_bytes(w[i]->dtype, w[i]->count, &bytes))
            return kiln__error(KILN_INVALID_ARGUMENT, "add_scale: %s weights are too large", SCALE_INPUTS[i + 1]);
        kiln_layer *c;
        KILN__TRY(kiln__network_add_constant_raw(net, w[i]->dtype, &d, w[i]->values, bytes, &c));
        inputs[i + 1] = c->outputs[0];
    }
    kiln_layer *l;
    KILN__TRY(kiln__network_new_layer(net, KILN_LAYER_SCALE, inputs, 4, 1, &l));
    l->p.scale.mode = (int32_t)mode;
    l->p.scale.channel_axis = channel_axis;
    return kiln__network_finish_layer(net, l, layer);
}
