/* DFT and STFT (ONNX DFT-17/20, STFT-17): shape inference, shared geometry, description. */
#include "vision_layers.h"

#include <string.h>

/* Reads a scalar (or one-element) int input; false when its value is not known yet. */
static kiln_status scalar_int(const kiln_layer *layer, const kiln__value *in, int32_t i, const char *what,
                              int64_t *out, bool *known) {
    const kiln__value *v = &in[i];
    int64_t n = kiln__dims_volume(&v->dims);
    if ((v->dtype != KILN_INT32 && v->dtype != KILN_INT64) || v->dims.nb_dims > 1 || (n >= 0 && n != 1))
        return kiln__layer_error(layer, KILN_INVALID_ARGUMENT, "input %d (%s) must be a scalar int32/int64", i, what);
    if (!v->data) *known = false;
    else *out = kiln__value_int(v, 0);
    return KILN_OK;
}

static kiln_status dft_resolve(const kiln_layer *layer, const kiln__value *in, kiln__dft_plan *plan) {
    const kiln__dft_params *p = (const kiln__dft_params *)layer->p.bytes;
    const kiln_dims *x = &in[0].dims;
    int32_t r = x->nb_dims;
    if (r < 2)
        return kiln__layer_error(layer, KILN_INVALID_ARGUMENT, "input 0 has rank %d, expected at least 2", r);
    int64_t axis = p->axis;
    if (kiln__has_input(layer, in, 2)) KILN__TRY(scalar_int(layer, in, 2, "axis", &axis, &plan->known));
    if (!plan->known) return KILN_OK;
    axis = ((axis % r) + r) % r; /* as the reference: axis modulo the rank */
    if (axis > r - 2)
        return kiln__layer_error(layer, KILN_INVALID_ARGUMENT, "axis %lld is the complex dim; expected a signal dim",
                                 (long long)axis);
    plan->axis = (int32_t)axis;
    plan->in_len = x->d[axis];
    bool irfft = p->inverse && p->onesided;
    if (kiln__has_input(layer, in, 1)) KILN__TRY(scalar_int(layer, in, 1, "dft_length", &plan->n, &plan->known));
    else plan->n = plan->in_len < 0 ? -1 : irfft ? 2 * (plan->in_len - 1) : plan->in_len;
    if (!plan->known || plan->n < 0) {
        plan->known = false;
        return KILN_OK;
    }
    if (plan->n < 1)
        return kiln__layer_error(layer, KILN_INVALID_ARGUMENT, "the DFT length is %lld, expected >= 1",
                                 (long long)plan->n);
    plan->out_len = !p->inverse && p->onesided ? plan->n / 2 + 1 : plan->n;
    plan->complex_out = !irfft;
    return KILN_OK;
}

static kiln_status stft_resolve(const kiln_layer *layer, const kiln__value *in, kiln__dft_plan *plan) {
    const kiln_dims *x = &in[0].dims;
    if (x->nb_dims != 3)
        return kiln__layer_error(layer, KILN_INVALID_ARGUMENT, "signal has rank %d, expected 3 ([B, L, 1 or 2])",
                                 x->nb_dims);
    if (!kiln__has_input(layer, in, 1))
        return kiln__layer_error(layer, KILN_INVALID_ARGUMENT, "input 1 (frame_step) is required");
    bool window = kiln__has_input(layer, in, 2);
    if (window && (in[2].dtype != in[0].dtype || in[2].dims.nb_dims != 1))
        return kiln__layer_error(layer, KILN_INVALID_ARGUMENT, "window must be 1-D of the signal's dtype");
    KILN__TRY(scalar_int(layer, in, 1, "frame_step", &plan->frame_step, &plan->known));
    int64_t len = window ? in[2].dims.d[0] : x->d[1];
    if (kiln__has_input(layer, in, 3)) KILN__TRY(scalar_int(layer, in, 3, "frame_length", &len, &plan->known));
    if (!plan->known || len < 0 || x->d[1] < 0) {
        plan->known = false;
        return KILN_OK;
    }
    if (window && in[2].dims.d[0] >= 0 && in[2].dims.d[0] != len)
        return kiln__layer_error(layer, KILN_INVALID_ARGUMENT, "window has %lld values, frame_length is %lld",
                                 (long long)in[2].dims.d[0], (long long)len);
    if (plan->frame_step < 1 || len < 1 || len > x->d[1])
        return kiln__layer_error(layer, KILN_INVALID_ARGUMENT,
                                 "frame_step %lld and frame_length %lld do not fit a signal of %lld samples",
                                 (long long)plan->frame_step, (long long)len, (long long)x->d[1]);
    plan->axis = 1;
    plan->in_len = plan->n = len;
    plan->frames = 1 + (x->d[1] - len) / plan->frame_step;
    const kiln__dft_params *p = (const kiln__dft_params *)layer->p.bytes;
    plan->out_len = p->onesided ? len / 2 + 1 : len;
    plan->complex_out = true;
    return KILN_OK;
}

kiln_status kiln__dft_resolve(const kiln_layer *layer, const kiln__value *inputs, kiln__dft_plan *plan) {
    const kiln__dft_params *p = (const kiln__dft_params *)layer->p.bytes;
    memset(plan, 0, sizeof *plan);
    plan->known = true;
    if (layer->nb_inputs < 1 || layer->nb_inputs > 4 || inputs[0].dtype == KILN_DTYPE_UNDEFINED)
        return kiln__layer_error(layer, KILN_INVALID_ARGUMENT, "has %d inputs, expected 1 to 4", layer->nb_inputs);
    if (p->mode != KILN__DFT && p->mode != KILN__STFT)
        return kiln__layer_error(layer, KILN_INVALID_ARGUMENT, "mode %d is out of range", p->mode);
    if (!kiln__dtype_is_float(inputs[0].dtype))
        return kiln__layer_error(layer, KILN_INVALID_ARGUMENT, "input 0 has dtype %s, expected a float type",
                                 kiln_dtype_name(inputs[0].dtype));
    const kiln_dims *x = &inputs[0].dims;
    int64_t c = x->nb_dims ? x->d[x->nb_dims - 1] : 0;
    if (x->nb_dims && c >= 0 && c != 1 && c != 2)
        return kiln__layer_error(layer, KILN_INVALID_ARGUMENT, "the last dim is %lld, expected 1 (real) or 2 (complex)",
                                 (long long)c);
    return p->mode == KILN__DFT ? dft_resolve(layer, inputs, plan) : stft_resolve(layer, inputs, plan);
}

static kiln_status dft_infer(const kiln_layer *layer, const kiln__value *in, kiln__value *out) {
    const kiln__dft_params *p = (const kiln__dft_params *)layer->p.bytes;
    kiln__dft_plan plan;
    KILN__TRY(kiln__dft_resolve(layer, in, &plan));
    const kiln_dims *x = &in[0].dims;
    out[0].dtype = in[0].dtype;
    if (p->mode == KILN__STFT) {
        out[0].dims.nb_dims = 4;
        out[0].dims.d[0] = x->d[0];
        out[0].dims.d[1] = plan.known ? plan.frames : -1;
        out[0].dims.d[2] = plan.known ? plan.out_len : -1;
        out[0].dims.d[3] = 2;
        return KILN_OK;
    }
    out[0].dims = *x;
    int32_t r = x->nb_dims;
    if (!plan.known) {
        /* Which dim changes is unknown too when the axis is. */
        for (int32_t i = 1; i < r - 1; i++) out[0].dims.d[i] = -1;
        out[0].dims.d[r - 1] = p->inverse && p->onesided ? 1 : 2;
        return KILN_OK;
    }
    out[0].dims.d[plan.axis] = plan.out_len;
    out[0].dims.d[r - 1] = plan.complex_out ? 2 : 1;
    return KILN_OK;
}

static void dft_describe(const kiln_layer *layer, kiln__buf *out) {
    const kiln__dft_params *p = (const kiln__dft_params *)layer->p.bytes;
    kiln__buf_printf(out, "mode=%s axis=%d inverse=%d onesided=%d", p->mode == KILN__STFT ? "stft" : "dft", p->axis,
                     p->inverse, p->onesided);
}

const kiln__layer_ops kiln__dft_ops = {"DFT", dft_infer, dft_describe};
