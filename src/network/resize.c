/* Resize with ONNX Resize-19 semantics: nearest/linear/cubic, every coordinate transform,
 * scales or sizes (static or from inputs), an axes subset and keep_aspect_ratio_policy. */
#include "layer_resolve.h"

#include <math.h>

static const char *const mode_names[3] = {"nearest", "linear", "cubic"};
static const char *const coord_names[7] = {"half_pixel",         "asymmetric",           "align_corners",
                                           "pytorch_half_pixel", "tf_half_pixel_for_nn", "tf_crop_and_resize",
                                           "half_pixel_symmetric"};
static const char *const round_names[4] = {"round_prefer_floor", "round_prefer_ceil", "floor", "ceil"};
static const char *const aspect_names[3] = {"stretch", "not_larger", "not_smaller"};

/* An optional input given with zero elements counts as absent (ONNX passes "" or empty). */
static bool list_given(const kiln_layer *layer, const kiln__value *inputs, int32_t i) {
    return kiln__has_input(layer, inputs, i) && !(inputs[i].dims.nb_dims == 1 && inputs[i].dims.d[0] == 0);
}

static kiln_status check_list(const kiln_layer *layer, const kiln__value *v, int32_t i, const char *what,
                              bool is_float, int64_t len) {
    bool type_ok = is_float ? kiln__dtype_is_float(v->dtype) : v->dtype == KILN_INT64 || v->dtype == KILN_INT32;
    if (!type_ok || v->dims.nb_dims != 1 || v->dims.d[0] != len)
        return kiln__layer_error(layer, KILN_INVALID_ARGUMENT, "input %d (%s) must be a 1-D %s tensor of %lld values",
                                 i, what, is_float ? "float" : "int64", (long long)len);
    return KILN_OK;
}

static double float_at(const kiln__value *v, int64_t i) {
    switch (v->dtype) {
    case KILN_FLOAT64: return ((const double *)v->data)[i];
    case KILN_FLOAT16: return kiln__half_to_float(((const uint16_t *)v->data)[i]);
    case KILN_BFLOAT16: return kiln__bf16_to_float(((const uint16_t *)v->data)[i]);
    default: return ((const float *)v->data)[i];
    }
}

kiln_status kiln__resize_resolve(const kiln_layer *layer, const kiln__value *inputs, kiln__resize_plan *plan) {
    const kiln__resize_params *p = &layer->p.resize;
    const kiln_dims *xd = &inputs[0].dims;
    int32_t rank = xd->nb_dims;
    if (p->mode < 0 || p->mode > KILN_RESIZE_CUBIC || p->coord < 0 || p->coord > KILN_COORD_HALF_PIXEL_SYMMETRIC ||
        p->nearest_round < 0 || p->nearest_round > KILN_ROUND_CEIL || p->keep_aspect_ratio < 0 ||
        p->keep_aspect_ratio > 2)
        return kiln__layer_error(layer, KILN_INVALID_ARGUMENT, "mode %d, coord %d, nearest_round %d or keep_aspect %d is out of range",
                                 p->mode, p->coord, p->nearest_round, p->keep_aspect_ratio);
    int32_t axes[KILN_MAX_DIMS], n = p->nb_axes ? p->nb_axes : rank;
    if (n < 0 || n > rank)
        return kiln__layer_error(layer, KILN_INVALID_ARGUMENT, "nb_axes %d is out of range for rank %d", n, rank);
    for (int32_t i = 0; i < rank; i++) {
        plan->out[i] = xd->d[i];
        plan->scale[i] = 1;
        plan->roi_start[i] = 0;
        plan->roi_end[i] = 1;
        plan->resized[i] = false;
    }
    for (int32_t i = 0; i < n; i++) {
        if (!p->nb_axes) axes[i] = i;
        else if (!kiln__norm_axis(p->axes[i], rank, &axes[i]))
            return kiln__layer_error(layer, KILN_INVALID_ARGUMENT, "axis %d is out of range for rank %d", p->axes[i],
                                     rank);
        if (plan->resized[axes[i]])
            return kiln__layer_error(layer, KILN_INVALID_ARGUMENT, "axis %d is given twice", axes[i]);
        plan->resized[axes[i]] = true;
    }
    if (list_given(layer, inputs, 1)) {
        KILN__TRY(check_list(layer, &inputs[1], 1, "roi", true, 2 * (int64_t)n));
        if (inputs[1].data)
            for (int32_t i = 0; i < n; i++) {
                plan->roi_start[axes[i]] = float_at(&inputs[1], i);
                plan->roi_end[axes[i]] = float_at(&inputs[1], n + i);
            }
    }
    bool by_sizes;
    int64_t sizes[KILN_MAX_DIMS];
    double scales[KILN_MAX_DIMS];
    bool known = true;
    if (list_given(layer, inputs, 3)) {
        KILN__TRY(check_list(layer, &inputs[3], 3, "sizes", false, n));
        by_sizes = true;
        known = inputs[3].data != NULL;
        for (int32_t i = 0; known && i < n; i++) sizes[i] = kiln__value_int(&inputs[3], i);
    } else if (list_given(layer, inputs, 2)) {
        KILN__TRY(check_list(layer, &inputs[2], 2, "scales", true, n));
        by_sizes = false;
        known = inputs[2].data != NULL;
        /* float32 scales widen to double as the ONNX reference does. */
        for (int32_t i = 0; known && i < n; i++) scales[i] = (double)(float)float_at(&inputs[2], i);
    } else if (p->use_sizes) {
        if (p->sizes.nb_dims != n)
            return kiln__layer_error(layer, KILN_INVALID_ARGUMENT, "sizes has %d dims, expected %d", p->sizes.nb_dims,
                                     n);
        by_sizes = true;
        for (int32_t i = 0; i < n; i++) sizes[i] = p->sizes.d[i];
    } else {
        by_sizes = false;
        for (int32_t i = 0; i < n; i++) scales[i] = (double)p->scales[i];
    }
    if (!known) {
        for (int32_t i = 0; i < n; i++) plan->out[axes[i]] = -1;
        return KILN_OK;
    }
    if (by_sizes) {
        bool all_known = true;
        for (int32_t i = 0; i < n; i++) {
            if (sizes[i] < 0)
                return kiln__layer_error(layer, KILN_INVALID_ARGUMENT, "size %lld for axis %d is negative",
                                         (long long)sizes[i], axes[i]);
            if (xd->d[axes[i]] < 0) all_known = false;
        }
        if (p->keep_aspect_ratio) {
            double s = p->keep_aspect_ratio == 1 ? INFINITY : 0;
            for (int32_t i = 0; all_known && i < n; i++) {
                double r = (double)sizes[i] / (double)xd->d[axes[i]];
                s = p->keep_aspect_ratio == 1 ? fmin(s, r) : fmax(s, r);
            }
            for (int32_t i = 0; i < n; i++) {
                int32_t a = axes[i];
                double o = all_known ? s * (double)xd->d[a] + 0.5 : -1;
                if (!(o <= (double)INT32_MAX))
                    return kiln__layer_error(layer, KILN_INVALID_ARGUMENT, "keep_aspect_ratio makes dim %d too large", a);
                plan->scale[a] = s;
                plan->out[a] = (int64_t)o;
            }
        } else {
            for (int32_t i = 0; i < n; i++) {
                int32_t a = axes[i];
                plan->out[a] = sizes[i];
                plan->scale[a] = xd->d[a] > 0 ? (double)sizes[i] / (double)xd->d[a] : 1;
            }
        }
    } else {
        for (int32_t i = 0; i < n; i++) {
            int32_t a = axes[i];
            if (!(scales[i] > 0) || isinf(scales[i]))
                return kiln__layer_error(layer, KILN_INVALID_ARGUMENT, "scale %g for axis %d must be positive",
                                         scales[i], a);
            double o = floor(scales[i] * (double)xd->d[a]);
            if (o > (double)INT32_MAX)
                return kiln__layer_error(layer, KILN_INVALID_ARGUMENT, "scale %g makes dim %d too large", scales[i], a);
            plan->scale[a] = scales[i];
            plan->out[a] = xd->d[a] >= 0 ? (int64_t)o : -1;
        }
    }
    for (int32_t i = 0; i < n; i++) {
        int32_t a = axes[i];
        if (xd->d[a] == 0 && plan->out[a] > 0)
            return kiln__layer_error(layer, KILN_INVALID_ARGUMENT, "cannot resize the empty dim %d to %lld", a,
                                     (long long)plan->out[a]);
    }
    return KILN_OK;
}

static kiln_status resize_infer(const kiln_layer *layer, const kiln__value *inputs, kiln__value *outputs) {
    const kiln__value *x = &inputs[0];
    switch (x->dtype) {
    case KILN_FLOAT32:
    case KILN_FLOAT16:
    case KILN_BFLOAT16:
    case KILN_FLOAT64:
    case KILN_UINT8:
    case KILN_INT8: break;
    default:
        return kiln__layer_error(layer, KILN_UNSUPPORTED, "dtype %s is not supported", kiln_dtype_name(x->dtype));
    }
    kiln__resize_plan plan;
    KILN__TRY(kiln__resize_resolve(layer, inputs, &plan));
    outputs[0].dtype = x->dtype;
    outputs[0].dims.nb_dims = x->dims.nb_dims;
    for (int32_t i = 0; i < x->dims.nb_dims; i++) outputs[0].dims.d[i] = plan.out[i];
    return KILN_OK;
}

static void resize_describe(const kiln_layer *layer, kiln__buf *out) {
    const kiln__resize_params *p = &layer->p.resize;
    bool ok = p->mode >= 0 && p->mode <= 2 && p->coord >= 0 && p->coord <= 6 && p->nearest_round >= 0 &&
              p->nearest_round <= 3 && p->keep_aspect_ratio >= 0 && p->keep_aspect_ratio <= 2;
    if (!ok) {
        kiln__buf_printf(out, "invalid");
        return;
    }
    kiln__buf_printf(out, "mode=%s coord=%s", mode_names[p->mode], coord_names[p->coord]);
    if (p->mode == KILN_RESIZE_NEAREST) kiln__buf_printf(out, " nearest=%s", round_names[p->nearest_round]);
    if (p->mode == KILN_RESIZE_CUBIC)
        kiln__buf_printf(out, " cubic_coeff=%g exclude_outside=%d", p->cubic_coeff, p->exclude_outside);
    if (p->coord == KILN_COORD_TF_CROP_AND_RESIZE) kiln__buf_printf(out, " extrapolation=%g", p->extrapolation_value);
    kiln__buf_printf(out, " keep_aspect_ratio=%s", aspect_names[p->keep_aspect_ratio]);
    int32_t n = p->nb_axes > 0 && p->nb_axes <= KILN_MAX_DIMS ? p->nb_axes : 0;
    if (n) {
        kiln__buf_printf(out, " axes=[");
        for (int32_t i = 0; i < n; i++) kiln__buf_printf(out, "%s%d", i ? "," : "", p->axes[i]);
        kiln__buf_printf(out, "]");
    }
    bool from_input = layer->nb_inputs > 2 && (layer->inputs[2] || (layer->nb_inputs > 3 && layer->inputs[3]));
    if (from_input) return;
    if (p->use_sizes) {
        char buf[160];
        kiln__dims_format(&p->sizes, buf, sizeof buf);
        kiln__buf_printf(out, " sizes=%s", buf);
    } else {
        int32_t m = n ? n : (layer->inputs[0] ? layer->inputs[0]->dims.nb_dims : 0);
        kiln__buf_printf(out, " scales=[");
        for (int32_t i = 0; i < m; i++) kiln__buf_printf(out, "%s%g", i ? "," : "", p->scales[i]);
        kiln__buf_printf(out, "]");
    }
}

const kiln__layer_ops kiln__resize_ops = {"Resize", resize_infer, resize_describe};

kiln_status kiln_network_add_resize(kiln_network *network, kiln_tensor *input, const kiln_resize_desc *desc,
                                    kiln_layer **layer) {
    if (layer) *layer = NULL;
    if (!network) return kiln__error(KILN_INVALID_ARGUMENT, "kiln_network_add_resize: network is NULL");
    if (!desc || desc->struct_size < sizeof(kiln_resize_desc))
        return kiln__error(KILN_INVALID_ARGUMENT, "kiln_network_add_resize: desc is NULL or has a bad struct_size");
    KILN__TRY(kiln__check_tensor(network, input, "input"));
    kiln_tensor *ins[1] = {input};
    kiln_layer *l;
    KILN__TRY(kiln__network_new_layer(network, KILN_LAYER_RESIZE, ins, 1, 1, &l));
    kiln__resize_params *p = &l->p.resize;
    p->mode = desc->mode;
    p->coord = desc->coord;
    p->nearest_round = desc->nearest_round;
    p->cubic_coeff = desc->cubic_coeff == 0 ? -0.75f : desc->cubic_coeff;
    p->exclude_outside = desc->exclude_outside != 0;
    p->extrapolation_value = desc->extrapolation_value;
    p->use_sizes = desc->use_sizes != 0;
    for (int32_t i = 0; i < KILN_MAX_DIMS; i++) p->scales[i] = desc->scales[i];
    p->sizes = desc->sizes;
    return kiln__network_finish_layer(network, l, layer);
}

/* Fills the taps of output coordinate o: n coefficients over consecutive input indices,
 * following the reference's choice of neighbours (the ratio lies in (0, 1]). */
int32_t kiln__resize_taps(const kiln__resize_params *p, double x, int64_t in, int64_t *index, double *weight) {
    double f = floor(x);
    bool integer = x == f;
    double r = integer ? 1 : x - f;
    int32_t n = p->mode == KILN_RESIZE_CUBIC ? 4 : 2;
    int64_t start = (int64_t)f - n / 2 + (integer ? 0 : 1);
    double c[KILN__RESIZE_MAX_TAPS] = {0, 0, 0, 0};
    if (p->mode == KILN_RESIZE_NEAREST) {
        bool up;
        if (integer) up = true;
        else if (p->nearest_round == KILN_ROUND_HALF_DOWN) up = r > 0.5;
        else if (p->nearest_round == KILN_ROUND_HALF_UP) up = r >= 0.5;
        else up = p->nearest_round == KILN_ROUND_CEIL;
        c[0] = !up;
        c[1] = up;
    } else if (p->mode == KILN_RESIZE_LINEAR) {
        c[0] = 1 - r;
        c[1] = r;
    } else {
        double a = p->cubic_coeff, t = r + 1, u = 1 - r, v = 2 - r;
        c[0] = ((a * t - 5 * a) * t + 8 * a) * t - 4 * a;
        c[1] = ((a + 2) * r - (a + 3)) * r * r + 1;
        c[2] = ((a + 2) * u - (a + 3)) * u * u + 1;
        c[3] = ((a * v - 5 * a) * v + 8 * a) * v - 4 * a;
        if (p->exclude_outside) {
            double sum = 0;
            for (int32_t k = 0; k < 4; k++) {
                if (start + k < 0 || start + k >= in) c[k] = 0;
                sum += c[k];
            }
            if (sum != 0)
                for (int32_t k = 0; k < 4; k++) c[k] /= sum;
        }
    }
    int32_t m = 0;
    for (int32_t k = 0; k < n; k++) {
        if (c[k] == 0) continue;
        index[m] = KILN__MIN(KILN__MAX(start + k, 0), in - 1);
        weight[m++] = c[k];
    }
    return m;
}
