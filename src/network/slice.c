/* Slice with ONNX semantics: starts/ends/axes/steps from the params or from optional inputs
 * 1..4, negative indices from the end, clamping, negative steps. */
#include "layer_resolve.h"

static const char *const list_names[5] = {"data", "starts", "ends", "axes", "steps"};

/* Reads list `which` (1 starts .. 4 steps) of n entries into v: from input `which` when present
 * (false in *known when its values are not known yet), else from the params. */
static kiln_status read_list(const kiln_layer *layer, const kiln__value *inputs, int32_t which, int32_t n,
                             int64_t *v, bool *known) {
    const kiln__slice_params *p = &layer->p.slice;
    *known = true;
    if (kiln__has_input(layer, inputs, which)) {
        if (inputs[which].data)
            for (int32_t i = 0; i < n; i++) v[i] = kiln__value_int(&inputs[which], i);
        else
            *known = false;
        return KILN_OK;
    }
    if (p->nb_axes == n) {
        for (int32_t i = 0; i < n; i++)
            v[i] = which == 1 ? p->starts[i] : which == 2 ? p->ends[i] : which == 3 ? p->axes[i] : p->steps[i];
        return KILN_OK;
    }
    /* Not given anywhere: ONNX defaults axes to 0..n-1 and steps to 1. */
    if (which == 3 || which == 4) {
        for (int32_t i = 0; i < n; i++) v[i] = which == 3 ? i : 1;
        return KILN_OK;
    }
    return kiln__layer_error(layer, KILN_INVALID_ARGUMENT, "%s has %d entries in the params, expected %d",
                             list_names[which], p->nb_axes, n);
}

/* Clamps (start, end, step) against a dim of size d as ONNX Slice (and Python) do. */
static void clamp_one(int64_t d, int64_t s, int64_t e, int64_t step, int64_t *start, int64_t *count) {
    if (s < 0) s += d;
    if (e < 0) e += d;
    /* A step longer than the dim takes at most one element; bounding it avoids overflow. */
    int64_t mag = step > 0 ? KILN__MIN(step, d + 1) : step < -(d + 1) ? d + 1 : -step;
    if (step > 0) {
        s = KILN__MIN(KILN__MAX(s, 0), d);
        e = KILN__MIN(KILN__MAX(e, 0), d);
        *count = e > s ? (e - s + mag - 1) / mag : 0;
    } else {
        s = KILN__MIN(KILN__MAX(s, 0), d - 1);
        e = KILN__MIN(KILN__MAX(e, -1), d - 1);
        *count = s > e ? (s - e + mag - 1) / mag : 0;
    }
    *start = *count > 0 ? s : 0;
}

kiln_status kiln__slice_resolve(const kiln_layer *layer, const kiln__value *inputs, kiln__slice_plan *plan) {
    const kiln__value *x = &inputs[0];
    int32_t rank = x->dims.nb_dims;
    for (int32_t i = 0; i < rank; i++) {
        plan->start[i] = 0;
        plan->step[i] = 1;
        plan->count[i] = x->dims.d[i];
    }
    /* n: the number of sliced axes, from the first list given as an input, else the params. */
    int32_t n = layer->p.slice.nb_axes;
    if (n < 0 || n > KILN_MAX_DIMS)
        return kiln__layer_error(layer, KILN_INVALID_ARGUMENT, "nb_axes %d is out of range", n);
    bool from_input = false;
    for (int32_t w = 1; w <= 4; w++) {
        if (!kiln__has_input(layer, inputs, w)) continue;
        const kiln__value *v = &inputs[w];
        if ((v->dtype != KILN_INT32 && v->dtype != KILN_INT64) || v->dims.nb_dims != 1 || v->dims.d[0] < 0)
            return kiln__layer_error(layer, KILN_INVALID_ARGUMENT,
                                     "input %d (%s) must be a 1-D int32/int64 tensor of known length", w,
                                     list_names[w]);
        if (v->dims.d[0] > rank)
            return kiln__layer_error(layer, KILN_INVALID_ARGUMENT, "input %d (%s) has %lld entries, rank is %d", w,
                                     list_names[w], (long long)v->dims.d[0], rank);
        if (!from_input) n = (int32_t)v->dims.d[0];
        else if (v->dims.d[0] != n)
            return kiln__layer_error(layer, KILN_INVALID_ARGUMENT, "input %d (%s) has %lld entries, expected %d", w,
                                     list_names[w], (long long)v->dims.d[0], n);
        from_input = true;
    }
    int64_t starts[KILN_MAX_DIMS], ends[KILN_MAX_DIMS], axes[KILN_MAX_DIMS], steps[KILN_MAX_DIMS];
    bool ks, ke, ka, kst;
    KILN__TRY(read_list(layer, inputs, 1, n, starts, &ks));
    KILN__TRY(read_list(layer, inputs, 2, n, ends, &ke));
    KILN__TRY(read_list(layer, inputs, 3, n, axes, &ka));
    KILN__TRY(read_list(layer, inputs, 4, n, steps, &kst));
    if (!ka) { /* any dim may be sliced */
        for (int32_t i = 0; i < rank; i++) plan->count[i] = -1;
        return KILN_OK;
    }
    bool seen[KILN_MAX_DIMS] = {false};
    for (int32_t i = 0; i < n; i++) {
        int32_t a;
        if (!kiln__norm_axis(axes[i], rank, &a))
            return kiln__layer_error(layer, KILN_INVALID_ARGUMENT, "axis %lld is out of range for rank %d",
                                     (long long)axes[i], rank);
        if (seen[a]) return kiln__layer_error(layer, KILN_INVALID_ARGUMENT, "axis %d is given twice", a);
        seen[a] = true;
        if (!ks || !ke || !kst || x->dims.d[a] < 0) {
            plan->count[a] = -1;
            continue;
        }
        if (steps[i] == 0) return kiln__layer_error(layer, KILN_INVALID_ARGUMENT, "step for axis %d is 0", a);
        plan->step[a] = steps[i];
        clamp_one(x->dims.d[a], starts[i], ends[i], steps[i], &plan->start[a], &plan->count[a]);
    }
    return KILN_OK;
}

static kiln_status slice_infer(const kiln_layer *layer, const kiln__value *inputs, kiln__value *outputs) {
    const kiln__value *x = &inputs[0];
    if (!kiln__elem_bytes(x->dtype))
        return kiln__layer_error(layer, KILN_UNSUPPORTED, "dtype %s is not supported", kiln_dtype_name(x->dtype));
    kiln__slice_plan plan;
    KILN__TRY(kiln__slice_resolve(layer, inputs, &plan));
    outputs[0].dtype = x->dtype;
    outputs[0].dims.nb_dims = x->dims.nb_dims;
    for (int32_t i = 0; i < x->dims.nb_dims; i++) outputs[0].dims.d[i] = plan.count[i];
    return KILN_OK;
}

static void describe_list(kiln__buf *out, const char *key, const int64_t *v, int32_t n) {
    kiln__buf_printf(out, " %s=[", key);
    for (int32_t i = 0; i < n; i++) kiln__buf_printf(out, "%s%lld", i ? "," : "", (long long)v[i]);
    kiln__buf_printf(out, "]");
}

static void slice_describe(const kiln_layer *layer, kiln__buf *out) {
    const kiln__slice_params *p = &layer->p.slice;
    int64_t axes[KILN_MAX_DIMS];
    int32_t n = KILN__MAX(0, KILN__MIN(p->nb_axes, KILN_MAX_DIMS));
    for (int32_t i = 0; i < n; i++) axes[i] = p->axes[i];
    kiln__buf_printf(out, "nb_axes=%d", n);
    describe_list(out, "axes", axes, n);
    describe_list(out, "starts", p->starts, n);
    describe_list(out, "ends", p->ends, n);
    describe_list(out, "steps", p->steps, n);
}

const kiln__layer_ops kiln__slice_ops = {"Slice", slice_infer, slice_describe};

kiln_status kiln_network_add_slice(kiln_network *network, kiln_tensor *input, const kiln_dims *start,
                                   const kiln_dims *size, const kiln_dims *stride, kiln_layer **layer) {
    if (layer) *layer = NULL;
    if (!network) return kiln__error(KILN_INVALID_ARGUMENT, "kiln_network_add_slice: network is NULL");
    KILN__TRY(kiln__check_tensor(network, input, "input"));
    if (!start || !size || !stride)
        return kiln__error(KILN_INVALID_ARGUMENT, "kiln_network_add_slice: start, size or stride is NULL");
    int32_t rank = input->dims.nb_dims;
    if (start->nb_dims != rank || size->nb_dims != rank || stride->nb_dims != rank)
        return kiln__error(KILN_INVALID_ARGUMENT,
                           "kiln_network_add_slice: start, size and stride have ranks %d, %d, %d; expected %d (the "
                           "input's)",
                           start->nb_dims, size->nb_dims, stride->nb_dims, rank);
    kiln__slice_params sp = {.nb_axes = rank};
    for (int32_t i = 0; i < rank; i++) {
        int64_t s = start->d[i], n = size->d[i], st = stride->d[i], d = input->dims.d[i];
        if (st == 0 || s < 0 || n < 0)
            return kiln__error(KILN_INVALID_ARGUMENT,
                               "kiln_network_add_slice: dim %d has start %lld, size %lld, stride %lld; expected start "
                               ">= 0, size >= 0, stride != 0",
                               i, (long long)s, (long long)n, (long long)st);
        /* The last index taken must lie inside the dim (when the dim is known). */
        int64_t span, last, end;
        if (__builtin_mul_overflow(n, st, &span) || __builtin_add_overflow(s, span, &end) ||
            __builtin_sub_overflow(end, st, &last))
            return kiln__error(KILN_INVALID_ARGUMENT, "kiln_network_add_slice: dim %d: start + size * stride overflows",
                               i);
        if (n > 0 && d >= 0) {
            if (s >= d || last < 0 || last >= d)
                return kiln__error(KILN_INVALID_ARGUMENT,
                                   "kiln_network_add_slice: dim %d (size %lld) has start %lld, size %lld, stride %lld, "
                                   "which reaches outside the dim",
                                   i, (long long)d, (long long)s, (long long)n, (long long)st);
        }
        sp.axes[i] = i;
        sp.starts[i] = s;
        sp.steps[i] = st;
        /* ONNX would read a negative end as counting from the back; INT64_MIN means "before 0". */
        sp.ends[i] = st < 0 && end < 0 ? INT64_MIN : end;
    }
    kiln_tensor *ins[1] = {input};
    kiln_layer *l;
    KILN__TRY(kiln__network_new_layer(network, KILN_LAYER_SLICE, ins, 1, 1, &l));
    l->p.slice = sp;
    return kiln__network_finish_layer(network, l, layer);
}
