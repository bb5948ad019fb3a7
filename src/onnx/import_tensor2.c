/* ONNX importers for the reductions (Reduce*, ArgMax, ArgMin), TopK, Resize, Upsample and
 * Einsum. Listed in kiln__onnx_ops_tensor (import_tensor.c). */
#include "onnx/import_tensor.h"

#include <string.h>

#define out0 kiln__onnx_tensor_out0

static bool bytes_eq(kiln__onnx_bytes b, const char *s) { return b.size == strlen(s) && memcmp(b.data, s, b.size) == 0; }

/* Index of the string attribute's value in names (n entries), or -1 when it is none of them;
 * `def` when the attribute is absent. */
static kiln_status attr_choice(const kiln__onnx_node *node, const char *attr, const char *const *names, int32_t n,
                               int32_t def, int32_t *out) {
    kiln__onnx_bytes v = {NULL, 0};
    KILN__TRY(kiln__onnx_attr_string(node, attr, &v));
    *out = def;
    if (!v.data) return KILN_OK;
    for (int32_t i = 0; i < n; i++)
        if (bytes_eq(v, names[i])) {
            *out = i;
            return KILN_OK;
        }
    return kiln__onnx_node_error(node, KILN_UNSUPPORTED, "attribute '%s' = '%.*s' is not supported", attr, (int)v.size,
                                 (const char *)v.data);
}

/* ---------------------------------------------------------------- reductions */

static const struct {
    const char *op_type;
    kiln_reduce_op op;
} reduce_ops[] = {
    {"ReduceSum", KILN_REDUCE_SUM},         {"ReduceMean", KILN_REDUCE_MEAN},
    {"ReduceMax", KILN_REDUCE_MAX},         {"ReduceMin", KILN_REDUCE_MIN},
    {"ReduceProd", KILN_REDUCE_PROD},       {"ReduceL1", KILN_REDUCE_L1},
    {"ReduceL2", KILN_REDUCE_L2},           {"ReduceLogSum", KILN_REDUCE_LOG_SUM},
    {"ReduceLogSumExp", KILN_REDUCE_LOG_SUM_EXP}, {"ReduceSumSquare", KILN_REDUCE_SUM_SQUARE},
};

static kiln_status axes_to_mask(const kiln__onnx_node *node, const int64_t *axes, int32_t n, int32_t rank,
                                uint32_t *mask) {
    *mask = 0;
    for (int32_t i = 0; i < n; i++) {
        int32_t a;
        if (!kiln__norm_axis(axes[i], rank, &a))
            return kiln__onnx_node_error(node, KILN_INVALID_ARGUMENT, "axis %lld is out of range for rank %d",
                                         (long long)axes[i], rank);
        if (*mask & (1u << a)) return kiln__onnx_node_error(node, KILN_INVALID_ARGUMENT, "axis %d is given twice", a);
        *mask |= 1u << a;
    }
    return KILN_OK;
}

kiln_status kiln__onnx_import_reduce(kiln__onnx_ctx *ctx, const kiln__onnx_node *node) {
    kiln_status st = KILN_OK;
    kiln_tensor *in[2] = {kiln__onnx_in_required(ctx, node, 0, "data", &st), NULL};
    if (!in[0]) return st;
    kiln__reduce_params p = {.op = -1};
    for (size_t i = 0; i < KILN__ARRAY_LEN(reduce_ops); i++)
        if (strcmp(node->op_type, reduce_ops[i].op_type) == 0) p.op = reduce_ops[i].op;
    if (p.op < 0) return kiln__onnx_node_error(node, KILN_INTERNAL_ERROR, "not a reduction");
    int64_t keep = 1, noop = 0, opset = kiln__onnx_node_opset(ctx, node);
    KILN__TRY(kiln__onnx_attr_int(node, "keepdims", &keep));
    KILN__TRY(kiln__onnx_attr_int(node, "noop_with_empty_axes", &noop));
    p.keep_dims = keep != 0;
    p.noop_with_empty_axes = noop != 0;
    bool axes_input = opset >= (p.op == KILN_REDUCE_SUM ? 13 : 18);
    int64_t axes[KILN_MAX_DIMS];
    int32_t n = -1, rank = in[0]->dims.nb_dims;
    kiln_tensor *at = axes_input ? kiln__onnx_in(ctx, node, 1) : NULL;
    if (at && !kiln__onnx_const_ints(ctx, at, axes, KILN_MAX_DIMS, &n)) {
        in[1] = at; /* axes known only at run time */
    } else if (!at) {
        const int64_t *v;
        int64_t count = -1;
        if (!axes_input) KILN__TRY(kiln__onnx_attr_ints(node, "axes", &v, &count));
        if (count > KILN_MAX_DIMS)
            return kiln__onnx_node_error(node, KILN_INVALID_ARGUMENT, "%lld axes for rank %d", (long long)count, rank);
        for (int64_t i = 0; i < count; i++) axes[i] = v[i];
        n = (int32_t)count;
    }
    if (n > 0) KILN__TRY(axes_to_mask(node, axes, n, rank, &p.axes_mask));
    return out0(ctx, node, kiln__onnx_add1(ctx, node, KILN_LAYER_REDUCE, in, in[1] ? 2 : 1, &p, sizeof p, &st), &st);
}

kiln_status kiln__onnx_import_argminmax(kiln__onnx_ctx *ctx, const kiln__onnx_node *node) {
    kiln_status st = KILN_OK;
    kiln_tensor *x = kiln__onnx_in_required(ctx, node, 0, "data", &st);
    if (!x) return st;
    int64_t axis = 0, keep = 1, last = 0;
    KILN__TRY(kiln__onnx_attr_int(node, "axis", &axis));
    KILN__TRY(kiln__onnx_attr_int(node, "keepdims", &keep));
    KILN__TRY(kiln__onnx_attr_int(node, "select_last_index", &last));
    kiln__reduce_params p = {.op = strcmp(node->op_type, "ArgMax") == 0 ? KILN_REDUCE_ARGMAX : KILN_REDUCE_ARGMIN,
                             .keep_dims = keep != 0, .select_last = last != 0};
    KILN__TRY(axes_to_mask(node, &axis, 1, x->dims.nb_dims, &p.axes_mask));
    return out0(ctx, node, kiln__onnx_add1(ctx, node, KILN_LAYER_REDUCE, &x, 1, &p, sizeof p, &st), &st);
}

/* ---------------------------------------------------------------- TopK */

kiln_status kiln__onnx_import_topk(kiln__onnx_ctx *ctx, const kiln__onnx_node *node) {
    kiln_status st = KILN_OK;
    kiln_tensor *in[2] = {kiln__onnx_in_required(ctx, node, 0, "X", &st), NULL};
    if (!in[0]) return st;
    int64_t axis = -1, largest = 1, sorted = 1, k = -1;
    KILN__TRY(kiln__onnx_attr_int(node, "axis", &axis));
    KILN__TRY(kiln__onnx_attr_int(node, "largest", &largest));
    KILN__TRY(kiln__onnx_attr_int(node, "sorted", &sorted));
    if (kiln__onnx_node_opset(ctx, node) < 10) {
        KILN__TRY(kiln__onnx_attr_int(node, "k", &k));
        if (k < 0) return kiln__onnx_node_error(node, KILN_INVALID_ARGUMENT, "attribute 'k' is required");
    } else if (!(in[1] = kiln__onnx_in_required(ctx, node, 1, "K", &st))) {
        return st;
    }
    kiln__topk_params p = {.axis = (int32_t)axis, .largest = largest != 0, .sorted = sorted != 0, .k = k};
    kiln_layer *l;
    KILN__TRY(kiln__onnx_add_layer(ctx, node, KILN_LAYER_TOPK, in, in[1] ? 2 : 1, 2, &p, sizeof p, &l));
    KILN__TRY(kiln__onnx_out(ctx, node, 0, l->outputs[0]));
    return kiln__onnx_out(ctx, node, 1, l->outputs[1]); /* still valid when folded into constants */
}

/* ---------------------------------------------------------------- Resize, Upsample */

/* An optional input, dropped when it is a constant with no elements (ONNX's way of leaving
 * roi/scales out before inputs could be omitted). */
static kiln_tensor *optional_in(kiln__onnx_ctx *ctx, const kiln__onnx_node *node, int32_t i) {
    kiln_tensor *t = kiln__onnx_in(ctx, node, i);
    kiln__value v;
    if (t && kiln__onnx_const(ctx, t, &v) && kiln__dims_volume(&v.dims) == 0) return NULL;
    return t;
}

static const char *const resize_modes[3] = {"nearest", "linear", "cubic"};

kiln_status kiln__onnx_import_resize(kiln__onnx_ctx *ctx, const kiln__onnx_node *node) {
    kiln_status st = KILN_OK;
    kiln_tensor *in[4] = {kiln__onnx_in_required(ctx, node, 0, "X", &st), NULL, NULL, NULL};
    if (!in[0]) return st;
    int64_t opset = kiln__onnx_node_opset(ctx, node);
    kiln__resize_params p = {.cubic_coeff = -0.75f};
    static const char *const coords[7] = {"half_pixel",           "asymmetric",         "align_corners",
                                          "pytorch_half_pixel",   "tf_half_pixel_for_nearest",
                                          "tf_crop_and_resize",   "half_pixel_symmetric"};
    static const char *const rounds[4] = {"round_prefer_floor", "round_prefer_ceil", "floor", "ceil"};
    static const char *const policies[3] = {"stretch", "not_larger", "not_smaller"};
    KILN__TRY(attr_choice(node, "mode", resize_modes, opset >= 11 ? 3 : 2, 0, &p.mode));
    if (opset < 11) {
        /* Resize-10 maps output to input coordinates as x_out / scale and takes the floor. */
        p.coord = KILN_COORD_ASYMMETRIC;
        p.nearest_round = KILN_ROUND_FLOOR;
        if (!(in[2] = kiln__onnx_in_required(ctx, node, 1, "scales", &st))) return st;
    } else {
        KILN__TRY(attr_choice(node, "coordinate_transformation_mode", coords, opset >= 19 ? 7 : 6, 0, &p.coord));
        KILN__TRY(attr_choice(node, "nearest_mode", rounds, 4, 0, &p.nearest_round));
        KILN__TRY(kiln__onnx_attr_float(node, "cubic_coeff_a", &p.cubic_coeff));
        int64_t exclude = 0;
        KILN__TRY(kiln__onnx_attr_int(node, "exclude_outside", &exclude));
        p.exclude_outside = exclude != 0;
        KILN__TRY(kiln__onnx_attr_float(node, "extrapolation_value", &p.extrapolation_value));
        for (int32_t i = 1; i < 4; i++) in[i] = optional_in(ctx, node, i);
        if (opset >= 18) {
            int64_t antialias = 0;
            KILN__TRY(kiln__onnx_attr_int(node, "antialias", &antialias));
            if (antialias)
                return kiln__onnx_node_error(node, KILN_UNSUPPORTED, "antialias=1 is not supported");
            KILN__TRY(attr_choice(node, "keep_aspect_ratio_policy", policies, 3, 0, &p.keep_aspect_ratio));
            const int64_t *axes;
            int64_t n = 0;
            KILN__TRY(kiln__onnx_attr_ints(node, "axes", &axes, &n));
            if (n > KILN_MAX_DIMS) return kiln__onnx_node_error(node, KILN_INVALID_ARGUMENT, "too many axes");
            int32_t rank = in[0]->dims.nb_dims;
            for (int64_t i = 0; i < n; i++) {
                int32_t a;
                if (!kiln__norm_axis(axes[i], rank, &a))
                    return kiln__onnx_node_error(node, KILN_INVALID_ARGUMENT, "axis %lld is out of range for rank %d",
                                                 (long long)axes[i], rank);
                p.axes[i] = a;
            }
            p.nb_axes = (int32_t)n;
        }
    }
    if (!in[2] && !in[3])
        return kiln__onnx_node_error(node, KILN_INVALID_ARGUMENT, "one of scales and sizes is required");
    if (in[2] && in[3])
        return kiln__onnx_node_error(node, KILN_INVALID_ARGUMENT, "only one of scales and sizes may be given");
    p.use_sizes = in[3] != NULL;
    p.sizes.nb_dims = 0;
    return out0(ctx, node, kiln__onnx_add1(ctx, node, KILN_LAYER_RESIZE, in, 4, &p, sizeof p, &st), &st);
}

kiln_status kiln__onnx_import_upsample(kiln__onnx_ctx *ctx, const kiln__onnx_node *node) {
    kiln_status st = KILN_OK;
    kiln_tensor *in[4] = {kiln__onnx_in_required(ctx, node, 0, "X", &st), NULL, NULL, NULL};
    if (!in[0]) return st;
    kiln__resize_params p = {.coord = KILN_COORD_ASYMMETRIC, .nearest_round = KILN_ROUND_FLOOR, .cubic_coeff = -0.75f};
    KILN__TRY(attr_choice(node, "mode", resize_modes, 2, 0, &p.mode));
    if (kiln__onnx_node_opset(ctx, node) >= 9) {
        if (!(in[2] = kiln__onnx_in_required(ctx, node, 1, "scales", &st))) return st;
        return out0(ctx, node, kiln__onnx_add1(ctx, node, KILN_LAYER_RESIZE, in, 4, &p, sizeof p, &st), &st);
    }
    const float *scales;
    int64_t n = -1;
    KILN__TRY(kiln__onnx_attr_floats(node, "scales", &scales, &n));
    if (n != in[0]->dims.nb_dims)
        return kiln__onnx_node_error(node, KILN_INVALID_ARGUMENT, "attribute 'scales' has %lld values for rank %d",
                                     (long long)n, in[0]->dims.nb_dims);
    for (int64_t i = 0; i < n; i++) p.scales[i] = scales[i];
    return out0(ctx, node, kiln__onnx_add1(ctx, node, KILN_LAYER_RESIZE, in, 1, &p, sizeof p, &st), &st);
}

/* ---------------------------------------------------------------- Einsum */

kiln_status kiln__onnx_import_einsum(kiln__onnx_ctx *ctx, const kiln__onnx_node *node) {
    kiln_status st = KILN_OK;
    kiln__onnx_bytes eq = {NULL, 0};
    KILN__TRY(kiln__onnx_attr_string(node, "equation", &eq));
    if (!eq.data) return kiln__onnx_node_error(node, KILN_INVALID_ARGUMENT, "attribute 'equation' is required");
    kiln__einsum_params p;
    memset(&p, 0, sizeof p);
    if (eq.size >= sizeof p.equation || memchr(eq.data, 0, eq.size))
        return kiln__onnx_node_error(node, KILN_UNSUPPORTED, "equation is longer than %zu characters",
                                     sizeof p.equation - 1);
    memcpy(p.equation, eq.data, eq.size);
    if (node->nb_inputs < 1 || node->nb_inputs > KILN__EINSUM_MAX_INPUTS)
        return kiln__onnx_node_error(node, KILN_UNSUPPORTED, "%d inputs, expected 1..%d", node->nb_inputs,
                                     KILN__EINSUM_MAX_INPUTS);
    kiln_tensor *in[KILN__EINSUM_MAX_INPUTS];
    for (int32_t i = 0; i < node->nb_inputs; i++)
        if (!(in[i] = kiln__onnx_in_required(ctx, node, i, "Inputs", &st))) return st;
    return out0(ctx, node, kiln__onnx_add1(ctx, node, KILN_LAYER_EINSUM, in, node->nb_inputs, &p, sizeof p, &st), &st);
}
