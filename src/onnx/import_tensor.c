/* ONNX importers for the tensor-manipulation ops: reshapes and transposes (onto shuffle),
 * Concat, Split and Slice, the gathers and scatters, Expand, Tile, Pad, Shape, Size,
 * ConstantOfShape, Range, EyeLike, Where, NonZero, OneHot, Trilu, CumSum/CumProd,
 * DepthToSpace and SpaceToDepth. Reductions, TopK, Resize, Upsample and Einsum are in
 * import_tensor2.c. */
#include "onnx/import_tensor.h"

#include "cpu/cpu.h"

#include <string.h>

kiln_status kiln__onnx_tensor_out0(kiln__onnx_ctx *ctx, const kiln__onnx_node *node, kiln_tensor *t,
                                   const kiln_status *st) {
    return t ? kiln__onnx_out(ctx, node, 0, t) : *st;
}
#define out0 kiln__onnx_tensor_out0

kiln_status kiln__onnx_ints_attr_or_const(kiln__onnx_ctx *ctx, const kiln__onnx_node *node, const char *attr,
                                          int32_t input, int64_t *out, int32_t max, int32_t *count) {
    *count = -1;
    kiln_tensor *t = input >= 0 ? kiln__onnx_in(ctx, node, input) : NULL;
    if (t) {
        if (!kiln__onnx_const_ints(ctx, t, out, max, count))
            return kiln__onnx_node_error(node, KILN_UNSUPPORTED,
                                         "input %d (%s) must be a constant 1-D int32/int64 tensor of at most %d values",
                                         input, attr, max);
        return KILN_OK;
    }
    if (!attr) return KILN_OK;
    const int64_t *v;
    int64_t n = -1;
    KILN__TRY(kiln__onnx_attr_ints(node, attr, &v, &n));
    if (n < 0) return KILN_OK;
    if (n > max) return kiln__onnx_node_error(node, KILN_UNSUPPORTED, "attribute '%s' has %lld values, at most %d", attr, (long long)n, max);
    for (int64_t i = 0; i < n; i++) out[i] = v[i];
    *count = (int32_t)n;
    return KILN_OK;
}

/* Normalizes axes against rank and checks for repeats; mask gets one bit per axis. */
static kiln_status norm_axes(const kiln__onnx_node *node, const int64_t *axes, int32_t n, int32_t rank, int32_t *out,
                             uint32_t *mask) {
    *mask = 0;
    for (int32_t i = 0; i < n; i++) {
        if (!kiln__norm_axis(axes[i], rank, &out[i]))
            return kiln__onnx_node_error(node, KILN_INVALID_ARGUMENT, "axis %lld is out of range for rank %d",
                                         (long long)axes[i], rank);
        if (*mask & (1u << out[i]))
            return kiln__onnx_node_error(node, KILN_INVALID_ARGUMENT, "axis %d is given twice", out[i]);
        *mask |= 1u << out[i];
    }
    return KILN_OK;
}

static kiln_tensor *const_i64(kiln__onnx_ctx *ctx, const kiln__onnx_node *node, const int64_t *v, int32_t n,
                              kiln_status *st) {
    kiln_dims d = {.nb_dims = 1, .d = {n}};
    kiln_tensor *t;
    *st = kiln__onnx_add_constant(ctx, node, KILN_INT64, &d, v, &t);
    return *st == KILN_OK ? t : NULL;
}

/* Reshapes x so that output dim i is x's dim src[i] (or 1 where src[i] is -1). Fixed dims when
 * x's dims are known (or only one is not); otherwise the shape is gathered from Shape(x) at
 * run time. */
static kiln_tensor *reshape_from(kiln__onnx_ctx *ctx, const kiln__onnx_node *node, kiln_tensor *x,
                                 const int32_t *src, int32_t n, kiln_status *st) {
    kiln__shuffle_params p = {.has_reshape = 1, .allow_zero = 1};
    int32_t unknown = 0;
    bool zero = false;
    p.reshape.nb_dims = n;
    for (int32_t i = 0; i < n; i++) {
        p.reshape.d[i] = src[i] < 0 ? 1 : x->dims.d[src[i]];
        unknown += p.reshape.d[i] < 0;
        zero |= p.reshape.d[i] == 0;
    }
    if (unknown == 0 || (unknown == 1 && !zero))
        return kiln__onnx_add1(ctx, node, KILN_LAYER_SHUFFLE, &x, 1, &p, sizeof p, st);
    kiln__shape_params sp = {.start = 0, .end = INT64_MAX};
    kiln_tensor *shape = kiln__onnx_add1(ctx, node, KILN_LAYER_SHAPE, &x, 1, &sp, sizeof sp, st);
    if (!shape) return NULL;
    int64_t one = 1, idx[KILN_MAX_DIMS];
    kiln_tensor *ones = const_i64(ctx, node, &one, 1, st);
    if (!ones) return NULL;
    kiln_tensor *cat_in[2] = {shape, ones};
    kiln__concat_params cp = {.axis = 0};
    kiln_tensor *ext = kiln__onnx_add1(ctx, node, KILN_LAYER_CONCAT, cat_in, 2, &cp, sizeof cp, st);
    if (!ext) return NULL;
    for (int32_t i = 0; i < n; i++) idx[i] = src[i] < 0 ? x->dims.nb_dims : src[i];
    kiln_tensor *it = const_i64(ctx, node, idx, n, st);
    if (!it) return NULL;
    kiln_tensor *g_in[2] = {ext, it};
    kiln__gather_params gp = {.mode = KILN_GATHER_DEFAULT, .axis = 0};
    kiln_tensor *target = kiln__onnx_add1(ctx, node, KILN_LAYER_GATHER, g_in, 2, &gp, sizeof gp, st);
    if (!target) return NULL;
    kiln_tensor *s_in[2] = {x, target};
    kiln__shuffle_params dyn = {.allow_zero = 1};
    return kiln__onnx_add1(ctx, node, KILN_LAYER_SHUFFLE, s_in, 2, &dyn, sizeof dyn, st);
}

/* ---------------------------------------------------------------- axes known only at run time */

/* An int64 [n] constant filled with v. */
static kiln_tensor *const_fill(kiln__onnx_ctx *ctx, const kiln__onnx_node *node, int64_t v, int64_t n,
                               kiln_status *st) {
    int64_t buf[KILN_MAX_DIMS * 2];
    for (int64_t i = 0; i < n; i++) buf[i] = v;
    return const_i64(ctx, node, buf, (int32_t)n, st);
}

/* int64 [R] with 1 at the (possibly negative) axes in tensor a and 0 elsewhere; a bad axis is a
 * run-time error of the scatter layer. */
static kiln_tensor *axes_mask_tensor(kiln__onnx_ctx *ctx, const kiln__onnx_node *node, kiln_tensor *a, int32_t R,
                                     kiln_status *st) {
    kiln_tensor *in[3] = {const_fill(ctx, node, 0, R, st), a, NULL};
    if (!in[0]) return NULL;
    if (a->dtype != KILN_INT64 && !(in[1] = kiln__onnx_cast(ctx, node, a, KILN_INT64, st))) return NULL;
    if (!(in[2] = const_fill(ctx, node, 1, a->dims.d[0], st))) return NULL;
    kiln__scatter_params sp = {.mode = KILN__SCATTER_ELEMENTS};
    return kiln__onnx_add1(ctx, node, KILN_LAYER_SCATTER, in, 3, &sp, sizeof sp, st);
}

/* Length of a 1-D axes input when it is known at build time and fits, else -1. */
static int32_t axes_len(const kiln_tensor *a, int32_t max) {
    if (a->dims.nb_dims != 1 || a->dims.d[0] < 0 || a->dims.d[0] > max) return -1;
    if (a->dtype != KILN_INT64 && a->dtype != KILN_INT32) return -1;
    return (int32_t)a->dims.d[0];
}

/* Unsqueeze with axes from a run-time tensor: output dim j is 1 where j is an axis, else the
 * next input dim: index cumsum_exclusive(1 - mask)[j] into Shape(x) ++ [1]. */
static kiln_tensor *unsqueeze_dynamic(kiln__onnx_ctx *ctx, const kiln__onnx_node *node, kiln_tensor *x,
                                      kiln_tensor *a, kiln_status *st) {
    int32_t r = x->dims.nb_dims, n = axes_len(a, KILN_MAX_DIMS - r);
    if (n < 0) {
        *st = kiln__onnx_node_error(node, KILN_UNSUPPORTED, "input 1 (axes) must have a known length <= %d",
                                    KILN_MAX_DIMS - r);
        return NULL;
    }
    int32_t R = r + n;
    kiln_tensor *mask = axes_mask_tensor(ctx, node, a, R, st), *ones, *keep, *pos, *cond, *rank_t, *idx;
    if (!mask || !(ones = const_fill(ctx, node, 1, R, st))) return NULL;
    if (!(keep = kiln__onnx_ew(ctx, node, KILN_EW_SUB, ones, mask, st))) return NULL;
    kiln__cumsum_params cp = {.axis = 0, .exclusive = 1};
    if (!(pos = kiln__onnx_add1(ctx, node, KILN_LAYER_CUMSUM, &keep, 1, &cp, sizeof cp, st))) return NULL;
    if (!(cond = kiln__onnx_cast(ctx, node, mask, KILN_BOOL, st))) return NULL;
    if (!(rank_t = const_fill(ctx, node, r, 1, st))) return NULL;
    kiln_tensor *sel[3] = {cond, rank_t, pos};
    if (!(idx = kiln__onnx_add1(ctx, node, KILN_LAYER_SELECT, sel, 3, NULL, 0, st))) return NULL;
    kiln__shape_params sp = {.start = 0, .end = INT64_MAX};
    kiln_tensor *shape = kiln__onnx_add1(ctx, node, KILN_LAYER_SHAPE, &x, 1, &sp, sizeof sp, st), *one, *ext, *target;
    if (!shape || !(one = const_fill(ctx, node, 1, 1, st))) return NULL;
    kiln_tensor *cat[2] = {shape, one};
    kiln__concat_params cc = {.axis = 0};
    if (!(ext = kiln__onnx_add1(ctx, node, KILN_LAYER_CONCAT, cat, 2, &cc, sizeof cc, st))) return NULL;
    kiln_tensor *g[2] = {ext, idx};
    kiln__gather_params gp = {.mode = KILN_GATHER_DEFAULT};
    if (!(target = kiln__onnx_add1(ctx, node, KILN_LAYER_GATHER, g, 2, &gp, sizeof gp, st))) return NULL;
    kiln_tensor *sh[2] = {x, target};
    kiln__shuffle_params dyn = {.allow_zero = 1};
    return kiln__onnx_add1(ctx, node, KILN_LAYER_SHUFFLE, sh, 2, &dyn, sizeof dyn, st);
}

/* Squeeze with axes from a run-time tensor: the kept dims are the r - n smallest keys of
 * mask * r + j (in order, by TopK), gathered from Shape(x). */
static kiln_tensor *squeeze_dynamic(kiln__onnx_ctx *ctx, const kiln__onnx_node *node, kiln_tensor *x, kiln_tensor *a,
                                    kiln_status *st) {
    int32_t r = x->dims.nb_dims, n = axes_len(a, r);
    if (n < 0) {
        *st = kiln__onnx_node_error(node, KILN_UNSUPPORTED, "input 1 (axes) must have a known length <= %d", r);
        return NULL;
    }
    int64_t iota[KILN_MAX_DIMS];
    for (int32_t j = 0; j < r; j++) iota[j] = j;
    kiln_tensor *mask = axes_mask_tensor(ctx, node, a, r, st), *rank_t, *scaled, *iota_t, *key;
    if (!mask || !(rank_t = const_fill(ctx, node, r, 1, st))) return NULL;
    if (!(scaled = kiln__onnx_ew(ctx, node, KILN_EW_MUL, mask, rank_t, st))) return NULL;
    if (!(iota_t = const_i64(ctx, node, iota, r, st))) return NULL;
    if (!(key = kiln__onnx_ew(ctx, node, KILN_EW_ADD, scaled, iota_t, st))) return NULL;
    kiln__topk_params tp = {.axis = 0, .largest = 0, .sorted = 1, .k = r - n};
    kiln_layer *topk;
    if ((*st = kiln__onnx_add_layer(ctx, node, KILN_LAYER_TOPK, &key, 1, 2, &tp, sizeof tp, &topk)) != KILN_OK)
        return NULL;
    kiln__shape_params sp = {.start = 0, .end = INT64_MAX};
    kiln_tensor *shape = kiln__onnx_add1(ctx, node, KILN_LAYER_SHAPE, &x, 1, &sp, sizeof sp, st), *target;
    if (!shape) return NULL;
    kiln_tensor *g[2] = {shape, topk->outputs[1]};
    kiln__gather_params gp = {.mode = KILN_GATHER_DEFAULT};
    if (!(target = kiln__onnx_add1(ctx, node, KILN_LAYER_GATHER, g, 2, &gp, sizeof gp, st))) return NULL;
    kiln_tensor *sh[2] = {x, target};
    kiln__shuffle_params dyn = {.allow_zero = 1};
    return kiln__onnx_add1(ctx, node, KILN_LAYER_SHUFFLE, sh, 2, &dyn, sizeof dyn, st);
}

/* ---------------------------------------------------------------- reshapes */

static kiln_status import_reshape(kiln__onnx_ctx *ctx, const kiln__onnx_node *node) {
    kiln_status st = KILN_OK;
    kiln_tensor *x = kiln__onnx_in_required(ctx, node, 0, "data", &st);
    if (!x) return st;
    int64_t allow_zero = 0;
    KILN__TRY(kiln__onnx_attr_int(node, "allowzero", &allow_zero));
    if (kiln__onnx_node_opset(ctx, node) < 5) {
        kiln__shuffle_params p = {.has_reshape = 1};
        int64_t v[KILN_MAX_DIMS];
        int32_t n;
        KILN__TRY(kiln__onnx_ints_attr_or_const(ctx, node, "shape", -1, v, KILN_MAX_DIMS, &n));
        if (n < 0) return kiln__onnx_node_error(node, KILN_INVALID_ARGUMENT, "attribute 'shape' is required");
        p.reshape.nb_dims = n;
        for (int32_t i = 0; i < n; i++) p.reshape.d[i] = v[i];
        return out0(ctx, node, kiln__onnx_add1(ctx, node, KILN_LAYER_SHUFFLE, &x, 1, &p, sizeof p, &st), &st);
    }
    kiln_tensor *shape = kiln__onnx_in_required(ctx, node, 1, "shape", &st);
    if (!shape) return st;
    kiln__shuffle_params p = {.allow_zero = allow_zero != 0};
    kiln_tensor *in[2] = {x, shape};
    return out0(ctx, node, kiln__onnx_add1(ctx, node, KILN_LAYER_SHUFFLE, in, 2, &p, sizeof p, &st), &st);
}

static kiln_status import_flatten(kiln__onnx_ctx *ctx, const kiln__onnx_node *node) {
    kiln_status st = KILN_OK;
    kiln_tensor *x = kiln__onnx_in_required(ctx, node, 0, "input", &st);
    if (!x) return st;
    int64_t axis = 1;
    KILN__TRY(kiln__onnx_attr_int(node, "axis", &axis));
    int32_t r = x->dims.nb_dims;
    if (axis < 0) axis += r;
    if (axis < 0 || axis > r)
        return kiln__onnx_node_error(node, KILN_INVALID_ARGUMENT, "axis is out of range for rank %d", r);
    int64_t pre = 1, post = 1;
    bool pre_known = true, post_known = true;
    for (int32_t i = 0; i < r; i++) {
        int64_t d = x->dims.d[i];
        bool *known = i < axis ? &pre_known : &post_known;
        int64_t *prod = i < axis ? &pre : &post;
        if (d < 0) *known = false;
        else *prod *= d;
    }
    kiln__shuffle_params p = {.has_reshape = 1, .allow_zero = 1, .reshape = {.nb_dims = 2}};
    if (pre_known && post_known) {
        p.reshape.d[0] = pre;
        p.reshape.d[1] = post;
    } else if (pre_known && pre > 0) {
        p.reshape.d[0] = pre;
        p.reshape.d[1] = -1;
    } else if (post_known && post > 0) {
        p.reshape.d[0] = -1;
        p.reshape.d[1] = post;
    } else {
        /* Both sides unknown: [prod(shape[:axis]), prod(shape[axis:])] at run time. */
        kiln_tensor *parts[2];
        for (int32_t s = 0; s < 2; s++) {
            kiln__shape_params sp = {.start = s ? axis : 0, .end = s ? INT64_MAX : axis};
            kiln_tensor *dims = kiln__onnx_add1(ctx, node, KILN_LAYER_SHAPE, &x, 1, &sp, sizeof sp, &st);
            if (!dims) return st;
            kiln__reduce_params rp = {.op = KILN_REDUCE_PROD, .axes_mask = 1, .keep_dims = 1};
            parts[s] = kiln__onnx_add1(ctx, node, KILN_LAYER_REDUCE, &dims, 1, &rp, sizeof rp, &st);
            if (!parts[s]) return st;
        }
        kiln__concat_params cp = {.axis = 0};
        kiln_tensor *shape = kiln__onnx_add1(ctx, node, KILN_LAYER_CONCAT, parts, 2, &cp, sizeof cp, &st);
        if (!shape) return st;
        kiln_tensor *in[2] = {x, shape};
        kiln__shuffle_params dyn = {.allow_zero = 1};
        return out0(ctx, node, kiln__onnx_add1(ctx, node, KILN_LAYER_SHUFFLE, in, 2, &dyn, sizeof dyn, &st), &st);
    }
    return out0(ctx, node, kiln__onnx_add1(ctx, node, KILN_LAYER_SHUFFLE, &x, 1, &p, sizeof p, &st), &st);
}

static kiln_status import_squeeze(kiln__onnx_ctx *ctx, const kiln__onnx_node *node) {
    kiln_status st = KILN_OK;
    kiln_tensor *x = kiln__onnx_in_required(ctx, node, 0, "data", &st);
    if (!x) return st;
    int32_t r = x->dims.nb_dims, n, axes[KILN_MAX_DIMS], src[KILN_MAX_DIMS], out_rank = 0;
    int64_t v[KILN_MAX_DIMS];
    uint32_t mask = 0;
    kiln_tensor *at = kiln__onnx_node_opset(ctx, node) >= 13 ? kiln__onnx_in(ctx, node, 1) : NULL;
    int32_t nc;
    if (at && !kiln__onnx_const_ints(ctx, at, v, KILN_MAX_DIMS, &nc))
        return out0(ctx, node, squeeze_dynamic(ctx, node, x, at, &st), &st);
    KILN__TRY(kiln__onnx_ints_attr_or_const(ctx, node, "axes", at ? 1 : -1, v, KILN_MAX_DIMS, &n));
    if (n > 0) {
        KILN__TRY(norm_axes(node, v, n, r, axes, &mask));
        for (int32_t i = 0; i < n; i++)
            if (x->dims.d[axes[i]] > 1)
                return kiln__onnx_node_error(node, KILN_INVALID_ARGUMENT, "dim %d is %lld, cannot squeeze it",
                                             axes[i], (long long)x->dims.d[axes[i]]);
    } else {
        for (int32_t i = 0; i < r; i++) {
            if (x->dims.d[i] < 0)
                return kiln__onnx_node_error(node, KILN_UNSUPPORTED,
                                             "without axes, every dim must be known at build time (dim %d is not)", i);
            if (x->dims.d[i] == 1) mask |= 1u << i;
        }
    }
    for (int32_t i = 0; i < r; i++)
        if (!(mask & (1u << i))) src[out_rank++] = i;
    return out0(ctx, node, reshape_from(ctx, node, x, src, out_rank, &st), &st);
}

static kiln_status import_unsqueeze(kiln__onnx_ctx *ctx, const kiln__onnx_node *node) {
    kiln_status st = KILN_OK;
    kiln_tensor *x = kiln__onnx_in_required(ctx, node, 0, "data", &st);
    if (!x) return st;
    int32_t n, axes[KILN_MAX_DIMS], src[KILN_MAX_DIMS];
    int64_t v[KILN_MAX_DIMS];
    uint32_t mask;
    kiln_tensor *at = kiln__onnx_node_opset(ctx, node) >= 13 ? kiln__onnx_in(ctx, node, 1) : NULL;
    int32_t nc;
    if (at && !kiln__onnx_const_ints(ctx, at, v, KILN_MAX_DIMS, &nc))
        return out0(ctx, node, unsqueeze_dynamic(ctx, node, x, at, &st), &st);
    KILN__TRY(kiln__onnx_ints_attr_or_const(ctx, node, "axes", at ? 1 : -1, v, KILN_MAX_DIMS, &n));
    if (n < 0) return kiln__onnx_node_error(node, KILN_INVALID_ARGUMENT, "axes are required");
    int32_t rank = x->dims.nb_dims + n;
    if (rank > KILN_MAX_DIMS)
        return kiln__onnx_node_error(node, KILN_UNSUPPORTED, "output rank %d exceeds %d", rank, KILN_MAX_DIMS);
    KILN__TRY(norm_axes(node, v, n, rank, axes, &mask));
    for (int32_t i = 0, j = 0; i < rank; i++) src[i] = mask & (1u << i) ? -1 : j++;
    return out0(ctx, node, reshape_from(ctx, node, x, src, rank, &st), &st);
}

static kiln_status import_transpose(kiln__onnx_ctx *ctx, const kiln__onnx_node *node) {
    kiln_status st = KILN_OK;
    kiln_tensor *x = kiln__onnx_in_required(ctx, node, 0, "data", &st);
    if (!x) return st;
    int32_t r = x->dims.nb_dims, n;
    int64_t v[KILN_MAX_DIMS];
    KILN__TRY(kiln__onnx_ints_attr_or_const(ctx, node, "perm", -1, v, KILN_MAX_DIMS, &n));
    kiln__shuffle_params p = {.has_first_perm = 1};
    if (n >= 0 && n != r)
        return kiln__onnx_node_error(node, KILN_INVALID_ARGUMENT, "perm has %d entries, the input rank is %d", n, r);
    for (int32_t i = 0; i < r; i++) p.first_perm[i] = n < 0 ? r - 1 - i : (int32_t)(v[i] < 0 || v[i] >= r ? -1 : v[i]);
    return out0(ctx, node, kiln__onnx_add1(ctx, node, KILN_LAYER_SHUFFLE, &x, 1, &p, sizeof p, &st), &st);
}

/* DepthToSpace / SpaceToDepth: reshape to 6-D, then transpose and reshape back. */
static kiln_status import_depth_space(kiln__onnx_ctx *ctx, const kiln__onnx_node *node) {
    kiln_status st = KILN_OK;
    kiln_tensor *x = kiln__onnx_in_required(ctx, node, 0, "input", &st);
    if (!x) return st;
    bool to_space = strcmp(node->op_type, "DepthToSpace") == 0;
    int64_t b = 0;
    KILN__TRY(kiln__onnx_attr_int(node, "blocksize", &b));
    kiln__onnx_bytes mode = {(const uint8_t *)"DCR", 3};
    KILN__TRY(kiln__onnx_attr_string(node, "mode", &mode));
    bool crd = mode.size == 3 && memcmp(mode.data, "CRD", 3) == 0;
    if (!crd && !(mode.size == 3 && memcmp(mode.data, "DCR", 3) == 0))
        return kiln__onnx_node_error(node, KILN_INVALID_ARGUMENT, "mode '%.*s' is not DCR or CRD", (int)mode.size,
                                     (const char *)mode.data);
    if (x->dims.nb_dims != 4 || b < 1)
        return kiln__onnx_node_error(node, KILN_INVALID_ARGUMENT, "needs a 4-D input and blocksize >= 1");
    int64_t N = x->dims.d[0], C = x->dims.d[1], H = x->dims.d[2], W = x->dims.d[3];
    if (C < 0 || (!to_space && (H < 0 || W < 0)))
        return kiln__onnx_node_error(node, KILN_UNSUPPORTED, "channels (and for SpaceToDepth H, W) must be known");
    if ((to_space && C % (b * b)) || (!to_space && (H % b || W % b)))
        return kiln__onnx_node_error(node, KILN_INVALID_ARGUMENT, "dims are not divisible by blocksize %lld",
                                     (long long)b);
    int32_t unknown = (N < 0) + (H < 0) + (W < 0);
    if (unknown > 1)
        return kiln__onnx_node_error(node, KILN_UNSUPPORTED, "at most one of N, H, W may be unknown at build time");
    kiln__shuffle_params a = {.has_reshape = 1, .allow_zero = 1}, c = {.has_first_perm = 1, .has_reshape = 1, .allow_zero = 1};
    a.reshape.nb_dims = 6;
    c.reshape.nb_dims = 4;
    int64_t hb = H < 0 ? -1 : H * b, wb = W < 0 ? -1 : W * b;
    static const int32_t dcr[6] = {0, 3, 4, 1, 5, 2}, crd_perm[6] = {0, 1, 4, 2, 5, 3}, s2d[6] = {0, 3, 5, 1, 2, 4};
    if (to_space) {
        int64_t c2 = C / (b * b);
        int64_t dims6[6] = {N, crd ? c2 : b, b, crd ? b : c2, H, W}, dims4[4] = {N, c2, hb, wb};
        memcpy(a.reshape.d, dims6, sizeof dims6);
        memcpy(c.reshape.d, dims4, sizeof dims4);
        memcpy(c.first_perm, crd ? crd_perm : dcr, sizeof dcr);
    } else {
        int64_t dims6[6] = {N, C, H / b, b, W / b, b}, dims4[4] = {N, C * b * b, H / b, W / b};
        memcpy(a.reshape.d, dims6, sizeof dims6);
        memcpy(c.reshape.d, dims4, sizeof dims4);
        memcpy(c.first_perm, s2d, sizeof s2d);
    }
    kiln_tensor *t = kiln__onnx_add1(ctx, node, KILN_LAYER_SHUFFLE, &x, 1, &a, sizeof a, &st);
    if (!t) return st;
    return out0(ctx, node, kiln__onnx_add1(ctx, node, KILN_LAYER_SHUFFLE, &t, 1, &c, sizeof c, &st), &st);
}

/* ---------------------------------------------------------------- joins and pieces */

static kiln_status import_concat(kiln__onnx_ctx *ctx, const kiln__onnx_node *node) {
    kiln_status st = KILN_OK;
    int64_t axis = 1;
    if (kiln__onnx_node_opset(ctx, node) >= 4 && !kiln__onnx_node_attr(node, "axis"))
        return kiln__onnx_node_error(node, KILN_INVALID_ARGUMENT, "attribute 'axis' is required");
    KILN__TRY(kiln__onnx_attr_int(node, "axis", &axis));
    if (node->nb_inputs < 1 || node->nb_inputs > 64)
        return kiln__onnx_node_error(node, KILN_UNSUPPORTED, "%d inputs, expected 1..64", node->nb_inputs);
    kiln_tensor *in[64];
    for (int32_t i = 0; i < node->nb_inputs; i++)
        if (!(in[i] = kiln__onnx_in_required(ctx, node, i, "input", &st))) return st;
    kiln__concat_params p = {.axis = (int32_t)axis};
    return out0(ctx, node, kiln__onnx_add1(ctx, node, KILN_LAYER_CONCAT, in, node->nb_inputs, &p, sizeof p, &st), &st);
}

/* Split with sizes known only at run time: output i slices [cumsum_excl[i], cumsum_incl[i]). */
static kiln_status split_dynamic(kiln__onnx_ctx *ctx, const kiln__onnx_node *node, kiln_tensor *x, kiln_tensor *sizes,
                                 int32_t ax) {
    kiln_status st = KILN_OK;
    if (sizes->dims.nb_dims != 1 || (sizes->dims.d[0] >= 0 && sizes->dims.d[0] != node->nb_outputs))
        return kiln__onnx_node_error(node, KILN_INVALID_ARGUMENT, "input 1 (split) must be 1-D with one entry per output");
    if (sizes->dtype != KILN_INT64 && !(sizes = kiln__onnx_cast(ctx, node, sizes, KILN_INT64, &st))) return st;
    kiln__cumsum_params inc = {.axis = 0}, exc = {.axis = 0, .exclusive = 1};
    kiln_tensor *ends = kiln__onnx_add1(ctx, node, KILN_LAYER_CUMSUM, &sizes, 1, &inc, sizeof inc, &st), *starts;
    if (!ends || !(starts = kiln__onnx_add1(ctx, node, KILN_LAYER_CUMSUM, &sizes, 1, &exc, sizeof exc, &st))) return st;
    int64_t axis = ax;
    kiln_tensor *axes = const_i64(ctx, node, &axis, 1, &st);
    if (!axes) return st;
    for (int32_t i = 0; i < node->nb_outputs; i++) {
        int64_t at = i;
        kiln_tensor *it = const_i64(ctx, node, &at, 1, &st), *se[2];
        if (!it) return st;
        kiln__gather_params gp = {.mode = KILN_GATHER_DEFAULT};
        for (int32_t k = 0; k < 2; k++) {
            kiln_tensor *g[2] = {k ? ends : starts, it};
            if (!(se[k] = kiln__onnx_add1(ctx, node, KILN_LAYER_GATHER, g, 2, &gp, sizeof gp, &st))) return st;
        }
        kiln_tensor *in[4] = {x, se[0], se[1], axes};
        kiln__slice_params p = {0};
        kiln_tensor *t = kiln__onnx_add1(ctx, node, KILN_LAYER_SLICE, in, 4, &p, sizeof p, &st);
        if (!t) return st;
        KILN__TRY(kiln__onnx_out(ctx, node, i, t));
    }
    return KILN_OK;
}

static kiln_status import_split(kiln__onnx_ctx *ctx, const kiln__onnx_node *node) {
    kiln_status st = KILN_OK;
    kiln_tensor *x = kiln__onnx_in_required(ctx, node, 0, "input", &st);
    if (!x) return st;
    int64_t opset = kiln__onnx_node_opset(ctx, node), axis = 0, num = 0;
    KILN__TRY(kiln__onnx_attr_int(node, "axis", &axis));
    KILN__TRY(kiln__onnx_attr_int(node, "num_outputs", &num));
    int32_t r = x->dims.nb_dims, ax, nout = node->nb_outputs, n;
    if (!kiln__norm_axis(axis, r, &ax))
        return kiln__onnx_node_error(node, KILN_INVALID_ARGUMENT, "axis %lld is out of range for rank %d",
                                     (long long)axis, r);
    if (nout < 1 || nout > 64) return kiln__onnx_node_error(node, KILN_UNSUPPORTED, "%d outputs, expected 1..64", nout);
    int64_t split[64];
    /* Opset 1 and 13+ take split as input 1; opsets 2..12 as an attribute. */
    kiln_tensor *sv = opset >= 13 || opset < 2 ? kiln__onnx_in(ctx, node, 1) : NULL;
    if (sv && !kiln__onnx_const_ints(ctx, sv, split, 64, &n)) return split_dynamic(ctx, node, x, sv, ax);
    KILN__TRY(kiln__onnx_ints_attr_or_const(ctx, node, "split", sv ? 1 : -1, split, 64, &n));
    int64_t dim = x->dims.d[ax];
    if (n >= 0) {
        if (n != nout)
            return kiln__onnx_node_error(node, KILN_INVALID_ARGUMENT, "split has %d entries for %d outputs", n, nout);
        int64_t total = 0;
        for (int32_t i = 0; i < n; i++) {
            if (split[i] < 0) return kiln__onnx_node_error(node, KILN_INVALID_ARGUMENT, "split entry %d is negative", i);
            total += split[i];
        }
        if (dim >= 0 && total != dim)
            return kiln__onnx_node_error(node, KILN_INVALID_ARGUMENT, "split sums to %lld, the axis dim is %lld",
                                         (long long)total, (long long)dim);
    } else {
        if (dim < 0)
            return kiln__onnx_node_error(node, KILN_UNSUPPORTED, "an even split needs the axis dim known at build time");
        if (num && num != nout)
            return kiln__onnx_node_error(node, KILN_INVALID_ARGUMENT, "num_outputs is %lld but the node has %d outputs",
                                         (long long)num, nout);
        /* Opset 18: chunks of ceil(dim / n), the last one smaller; earlier opsets need even. */
        int64_t chunk = (dim + nout - 1) / nout;
        if (dim % nout && !(opset >= 18 && num))
            return kiln__onnx_node_error(node, KILN_INVALID_ARGUMENT, "axis dim %lld does not split evenly into %d",
                                         (long long)dim, nout);
        for (int32_t i = 0; i < nout; i++) split[i] = KILN__MAX(0, KILN__MIN(chunk, dim - chunk * i));
    }
    int64_t start = 0;
    for (int32_t i = 0; i < nout; i++) {
        kiln__slice_params p = {.nb_axes = 1, .axes = {ax}, .starts = {start}, .ends = {start + split[i]}, .steps = {1}};
        start += split[i];
        kiln_tensor *t = kiln__onnx_add1(ctx, node, KILN_LAYER_SLICE, &x, 1, &p, sizeof p, &st);
        if (!t) return st;
        KILN__TRY(kiln__onnx_out(ctx, node, i, t));
    }
    return KILN_OK;
}

static kiln_status import_slice(kiln__onnx_ctx *ctx, const kiln__onnx_node *node) {
    kiln_status st = KILN_OK;
    kiln_tensor *x = kiln__onnx_in_required(ctx, node, 0, "data", &st);
    if (!x) return st;
    if (kiln__onnx_node_opset(ctx, node) >= 10) {
        kiln_tensor *in[5] = {x};
        for (int32_t i = 1; i < 5; i++) in[i] = kiln__onnx_in(ctx, node, i);
        if (!in[1] || !in[2]) return kiln__onnx_node_error(node, KILN_INVALID_ARGUMENT, "starts and ends are required");
        kiln__slice_params p = {0};
        return out0(ctx, node, kiln__onnx_add1(ctx, node, KILN_LAYER_SLICE, in, 5, &p, sizeof p, &st), &st);
    }
    int64_t starts[KILN_MAX_DIMS], ends[KILN_MAX_DIMS], axes[KILN_MAX_DIMS];
    int32_t ns, ne, na;
    KILN__TRY(kiln__onnx_ints_attr_or_const(ctx, node, "starts", -1, starts, KILN_MAX_DIMS, &ns));
    KILN__TRY(kiln__onnx_ints_attr_or_const(ctx, node, "ends", -1, ends, KILN_MAX_DIMS, &ne));
    KILN__TRY(kiln__onnx_ints_attr_or_const(ctx, node, "axes", -1, axes, KILN_MAX_DIMS, &na));
    if (ns < 0 || ns != ne || (na >= 0 && na != ns))
        return kiln__onnx_node_error(node, KILN_INVALID_ARGUMENT, "starts, ends (and axes) must have one length");
    kiln__slice_params p = {.nb_axes = ns};
    for (int32_t i = 0; i < ns; i++) {
        p.axes[i] = (int32_t)(na >= 0 ? axes[i] : i);
        p.starts[i] = starts[i];
        p.ends[i] = ends[i];
        p.steps[i] = 1;
    }
    return out0(ctx, node, kiln__onnx_add1(ctx, node, KILN_LAYER_SLICE, &x, 1, &p, sizeof p, &st), &st);
}

/* ---------------------------------------------------------------- gathers and scatters */

static kiln_status import_gather(kiln__onnx_ctx *ctx, const kiln__onnx_node *node) {
    kiln_status st = KILN_OK;
    kiln_tensor *in[2];
    if (!(in[0] = kiln__onnx_in_required(ctx, node, 0, "data", &st))) return st;
    if (!(in[1] = kiln__onnx_in_required(ctx, node, 1, "indices", &st))) return st;
    kiln__gather_params p = {.mode = KILN_GATHER_DEFAULT};
    int64_t axis = 0;
    if (strcmp(node->op_type, "GatherND") == 0) {
        p.mode = KILN_GATHER_ND;
        KILN__TRY(kiln__onnx_attr_int(node, "batch_dims", &axis));
    } else {
        if (strcmp(node->op_type, "GatherElements") == 0) p.mode = KILN_GATHER_ELEMENTS;
        KILN__TRY(kiln__onnx_attr_int(node, "axis", &axis));
    }
    p.axis = (int32_t)axis;
    return out0(ctx, node, kiln__onnx_add1(ctx, node, KILN_LAYER_GATHER, in, 2, &p, sizeof p, &st), &st);
}

static kiln_status import_scatter(kiln__onnx_ctx *ctx, const kiln__onnx_node *node) {
    kiln_status st = KILN_OK;
    kiln_tensor *in[3];
    static const char *const what[3] = {"data", "indices", "updates"};
    for (int32_t i = 0; i < 3; i++)
        if (!(in[i] = kiln__onnx_in_required(ctx, node, i, what[i], &st))) return st;
    kiln__scatter_params p = {.mode = strcmp(node->op_type, "ScatterND") == 0 ? KILN__SCATTER_ND : KILN__SCATTER_ELEMENTS};
    int64_t axis = 0;
    KILN__TRY(kiln__onnx_attr_int(node, "axis", &axis));
    p.axis = (int32_t)axis;
    kiln__onnx_bytes red = {(const uint8_t *)"none", 4};
    KILN__TRY(kiln__onnx_attr_string(node, "reduction", &red));
    static const char *const names[5] = {"none", "add", "mul", "max", "min"};
    p.reduction = -1;
    for (int32_t i = 0; i < 5; i++)
        if (red.size == strlen(names[i]) && memcmp(red.data, names[i], red.size) == 0) p.reduction = i;
    if (p.reduction < 0)
        return kiln__onnx_node_error(node, KILN_INVALID_ARGUMENT, "unknown reduction '%.*s'", (int)red.size,
                                     (const char *)red.data);
    return out0(ctx, node, kiln__onnx_add1(ctx, node, KILN_LAYER_SCATTER, in, 3, &p, sizeof p, &st), &st);
}

/* ---------------------------------------------------------------- broadcast, tile, pad */

static kiln_status import_expand_tile(kiln__onnx_ctx *ctx, const kiln__onnx_node *node) {
    kiln_status st = KILN_OK;
    kiln_tensor *in[2];
    bool expand = strcmp(node->op_type, "Expand") == 0;
    if (!(in[0] = kiln__onnx_in_required(ctx, node, 0, "input", &st))) return st;
    if (!(in[1] = kiln__onnx_in_required(ctx, node, 1, expand ? "shape" : "repeats", &st))) return st;
    return out0(ctx, node,
                kiln__onnx_add1(ctx, node, expand ? KILN_LAYER_EXPAND : KILN_LAYER_TILE, in, 2, NULL, 0, &st), &st);
}

static kiln_status import_pad(kiln__onnx_ctx *ctx, const kiln__onnx_node *node) {
    kiln_status st = KILN_OK;
    kiln_tensor *x = kiln__onnx_in_required(ctx, node, 0, "data", &st);
    if (!x) return st;
    int64_t opset = kiln__onnx_node_opset(ctx, node);
    kiln__padding_params p = {0};
    kiln__onnx_bytes mode = {(const uint8_t *)"constant", 8};
    KILN__TRY(kiln__onnx_attr_string(node, "mode", &mode));
    static const char *const modes[4] = {"constant", "reflect", "edge", "wrap"};
    p.mode = -1;
    for (int32_t i = 0; i < 4; i++)
        if (mode.size == strlen(modes[i]) && memcmp(mode.data, modes[i], mode.size) == 0) p.mode = i;
    if (p.mode < 0 || (p.mode == KILN__PAD_WRAP && opset < 19))
        return kiln__onnx_node_error(node, KILN_INVALID_ARGUMENT, "unknown mode '%.*s'", (int)mode.size,
                                     (const char *)mode.data);
    if (opset < 11) {
        int64_t pads[2 * KILN_MAX_DIMS];
        int32_t n;
        KILN__TRY(kiln__onnx_ints_attr_or_const(ctx, node, opset < 2 ? "paddings" : "pads", -1, pads,
                                                2 * KILN_MAX_DIMS, &n));
        if (n != 2 * x->dims.nb_dims)
            return kiln__onnx_node_error(node, KILN_INVALID_ARGUMENT, "pads has %d entries, expected %d", n,
                                         2 * x->dims.nb_dims);
        memcpy(p.pads, pads, sizeof(int64_t) * (size_t)n);
        float value = 0;
        KILN__TRY(kiln__onnx_attr_float(node, "value", &value));
        p.value = value;
        return out0(ctx, node, kiln__onnx_add1(ctx, node, KILN_LAYER_PADDING, &x, 1, &p, sizeof p, &st), &st);
    }
    kiln_tensor *in[4] = {x, kiln__onnx_in_required(ctx, node, 1, "pads", &st), kiln__onnx_in(ctx, node, 2),
                          opset >= 18 ? kiln__onnx_in(ctx, node, 3) : NULL};
    if (!in[1]) return st;
    /* An empty constant value means the default 0. */
    if (in[2] && kiln__dims_volume(&in[2]->dims) == 0) in[2] = NULL;
    return out0(ctx, node, kiln__onnx_add1(ctx, node, KILN_LAYER_PADDING, in, 4, &p, sizeof p, &st), &st);
}

/* ---------------------------------------------------------------- shapes and fills */

static kiln_status import_shape(kiln__onnx_ctx *ctx, const kiln__onnx_node *node) {
    kiln_status st = KILN_OK;
    kiln_tensor *x = kiln__onnx_in_required(ctx, node, 0, "data", &st);
    if (!x) return st;
    kiln__shape_params p = {.start = 0, .end = INT64_MAX};
    KILN__TRY(kiln__onnx_attr_int(node, "start", &p.start));
    KILN__TRY(kiln__onnx_attr_int(node, "end", &p.end));
    return out0(ctx, node, kiln__onnx_add1(ctx, node, KILN_LAYER_SHAPE, &x, 1, &p, sizeof p, &st), &st);
}

static kiln_status import_size(kiln__onnx_ctx *ctx, const kiln__onnx_node *node) {
    kiln_status st = KILN_OK;
    kiln_tensor *x = kiln__onnx_in_required(ctx, node, 0, "data", &st);
    if (!x) return st;
    kiln__shape_params sp = {.start = 0, .end = INT64_MAX};
    kiln_tensor *shape = kiln__onnx_add1(ctx, node, KILN_LAYER_SHAPE, &x, 1, &sp, sizeof sp, &st);
    if (!shape) return st;
    /* The product of an empty shape (a scalar input) is 1, as Size says. */
    kiln__reduce_params rp = {.op = KILN_REDUCE_PROD, .axes_mask = 1, .keep_dims = 0};
    return out0(ctx, node, kiln__onnx_add1(ctx, node, KILN_LAYER_REDUCE, &shape, 1, &rp, sizeof rp, &st), &st);
}

static kiln_status import_constant_of_shape(kiln__onnx_ctx *ctx, const kiln__onnx_node *node) {
    kiln_status st = KILN_OK;
    kiln_tensor *shape = kiln__onnx_in_required(ctx, node, 0, "input", &st);
    if (!shape) return st;
    kiln__fill_params p = {.mode = KILN__FILL_CONSTANT, .dtype = KILN_FLOAT32};
    const kiln__onnx_tensor *value = NULL;
    KILN__TRY(kiln__onnx_attr_tensor(node, "value", &value));
    if (value) {
        if (value->count != 1 || value->dtype == KILN_DTYPE_UNDEFINED || value->dtype == KILN_STRING)
            return kiln__onnx_node_error(node, KILN_UNSUPPORTED, "attribute 'value' must be one number");
        const kiln__alloc *alloc = &kiln__onnx_network(ctx)->alloc;
        kiln__onnx_data d;
        KILN__TRY(kiln__onnx_tensor_data(alloc, value, &d));
        p.dtype = value->dtype;
        p.value = kiln__load_f64(d.data, value->dtype, 0);
        p.ivalue = kiln__dtype_is_integer(value->dtype) ? kiln__load_i64(d.data, value->dtype, 0) : 0;
        kiln__onnx_data_release(alloc, &d);
    }
    return out0(ctx, node, kiln__onnx_add1(ctx, node, KILN_LAYER_FILL, &shape, 1, &p, sizeof p, &st), &st);
}

static kiln_status import_range(kiln__onnx_ctx *ctx, const kiln__onnx_node *node) {
    kiln_status st = KILN_OK;
    kiln_tensor *in[3];
    static const char *const what[3] = {"start", "limit", "delta"};
    for (int32_t i = 0; i < 3; i++)
        if (!(in[i] = kiln__onnx_in_required(ctx, node, i, what[i], &st))) return st;
    kiln__fill_params p = {.mode = KILN__FILL_RANGE};
    return out0(ctx, node, kiln__onnx_add1(ctx, node, KILN_LAYER_FILL, in, 3, &p, sizeof p, &st), &st);
}

static kiln_status import_eye_like(kiln__onnx_ctx *ctx, const kiln__onnx_node *node) {
    kiln_status st = KILN_OK;
    kiln_tensor *x = kiln__onnx_in_required(ctx, node, 0, "input", &st);
    if (!x) return st;
    int64_t dtype = 0, k = 0;
    KILN__TRY(kiln__onnx_attr_int(node, "dtype", &dtype));
    KILN__TRY(kiln__onnx_attr_int(node, "k", &k));
    kiln__fill_params p = {.mode = KILN__FILL_EYE, .dtype = (int32_t)dtype, .k = k};
    return out0(ctx, node, kiln__onnx_add1(ctx, node, KILN_LAYER_FILL, &x, 1, &p, sizeof p, &st), &st);
}

/* ---------------------------------------------------------------- element-wise selections */

static kiln_status import_where(kiln__onnx_ctx *ctx, const kiln__onnx_node *node) {
    kiln_status st = KILN_OK;
    kiln_tensor *in[3];
    static const char *const what[3] = {"condition", "X", "Y"};
    for (int32_t i = 0; i < 3; i++)
        if (!(in[i] = kiln__onnx_in_required(ctx, node, i, what[i], &st))) return st;
    return out0(ctx, node, kiln__onnx_add1(ctx, node, KILN_LAYER_SELECT, in, 3, NULL, 0, &st), &st);
}

static kiln_status import_nonzero(kiln__onnx_ctx *ctx, const kiln__onnx_node *node) {
    kiln_status st = KILN_OK;
    kiln_tensor *x = kiln__onnx_in_required(ctx, node, 0, "X", &st);
    if (!x) return st;
    return out0(ctx, node, kiln__onnx_add1(ctx, node, KILN_LAYER_NONZERO, &x, 1, NULL, 0, &st), &st);
}

static kiln_status import_onehot(kiln__onnx_ctx *ctx, const kiln__onnx_node *node) {
    kiln_status st = KILN_OK;
    kiln_tensor *in[3];
    static const char *const what[3] = {"indices", "depth", "values"};
    for (int32_t i = 0; i < 3; i++)
        if (!(in[i] = kiln__onnx_in_required(ctx, node, i, what[i], &st))) return st;
    int64_t axis = -1;
    KILN__TRY(kiln__onnx_attr_int(node, "axis", &axis));
    kiln__onehot_params p = {.axis = (int32_t)axis};
    return out0(ctx, node, kiln__onnx_add1(ctx, node, KILN_LAYER_ONE_HOT, in, 3, &p, sizeof p, &st), &st);
}

static kiln_status import_trilu(kiln__onnx_ctx *ctx, const kiln__onnx_node *node) {
    kiln_status st = KILN_OK;
    kiln_tensor *in[2] = {kiln__onnx_in_required(ctx, node, 0, "input", &st), kiln__onnx_in(ctx, node, 1)};
    if (!in[0]) return st;
    int64_t upper = 1;
    KILN__TRY(kiln__onnx_attr_int(node, "upper", &upper));
    kiln__trilu_params p = {.upper = upper != 0};
    return out0(ctx, node, kiln__onnx_add1(ctx, node, KILN_LAYER_TRILU, in, 2, &p, sizeof p, &st), &st);
}

static kiln_status import_cumulative(kiln__onnx_ctx *ctx, const kiln__onnx_node *node) {
    kiln_status st = KILN_OK;
    kiln_tensor *in[2] = {kiln__onnx_in_required(ctx, node, 0, "x", &st), NULL};
    if (!in[0] || !(in[1] = kiln__onnx_in_required(ctx, node, 1, "axis", &st))) return st;
    int64_t exclusive = 0, reverse = 0;
    KILN__TRY(kiln__onnx_attr_int(node, "exclusive", &exclusive));
    KILN__TRY(kiln__onnx_attr_int(node, "reverse", &reverse));
    kiln__cumsum_params p = {.exclusive = exclusive != 0, .reverse = reverse != 0,
                             .product = strcmp(node->op_type, "CumProd") == 0};
    return out0(ctx, node, kiln__onnx_add1(ctx, node, KILN_LAYER_CUMSUM, in, 2, &p, sizeof p, &st), &st);
}

const kiln__onnx_op kiln__onnx_ops_tensor[] = {
    {"", "Reshape", 1, import_reshape},
    {"", "Flatten", 1, import_flatten},
    {"", "Squeeze", 1, import_squeeze},
    {"", "Unsqueeze", 1, import_unsqueeze},
    {"", "Transpose", 1, import_transpose},
    {"", "DepthToSpace", 1, import_depth_space},
    {"", "SpaceToDepth", 1, import_depth_space},
    {"", "Concat", 1, import_concat},
    {"", "Split", 1, import_split},
    {"", "Slice", 1, import_slice},
    {"", "Gather", 1, import_gather},
    {"", "GatherElements", 11, import_gather},
    {"", "GatherND", 11, import_gather},
    {"", "Scatter", 9, import_scatter},
    {"", "ScatterElements", 11, import_scatter},
    {"", "ScatterND", 11, import_scatter},
    {"", "Expand", 8, import_expand_tile},
    {"", "Tile", 6, import_expand_tile},
    {"", "Pad", 1, import_pad},
    {"", "Shape", 1, import_shape},
    {"", "Size", 1, import_size},
    {"", "ConstantOfShape", 9, import_constant_of_shape},
    {"", "Range", 11, import_range},
    {"", "EyeLike", 9, import_eye_like},
    {"", "Where", 9, import_where},
    {"", "NonZero", 9, import_nonzero},
    {"", "OneHot", 9, import_onehot},
    {"", "Trilu", 14, import_trilu},
    {"", "CumSum", 11, import_cumulative},
    {"", "CumProd", 1, import_cumulative},
    {"", "ReduceSum", 1, kiln__onnx_import_reduce},
    {"", "ReduceMean", 1, kiln__onnx_import_reduce},
    {"", "ReduceMax", 1, kiln__onnx_import_reduce},
    {"", "ReduceMin", 1, kiln__onnx_import_reduce},
    {"", "ReduceProd", 1, kiln__onnx_import_reduce},
    {"", "ReduceL1", 1, kiln__onnx_import_reduce},
    {"", "ReduceL2", 1, kiln__onnx_import_reduce},
    {"", "ReduceLogSum", 1, kiln__onnx_import_reduce},
    {"", "ReduceLogSumExp", 1, kiln__onnx_import_reduce},
    {"", "ReduceSumSquare", 1, kiln__onnx_import_reduce},
    {"", "ArgMax", 1, kiln__onnx_import_argminmax},
    {"", "ArgMin", 1, kiln__onnx_import_argminmax},
    {"", "TopK", 1, kiln__onnx_import_topk},
    {"", "Resize", 10, kiln__onnx_import_resize},
    {"", "Upsample", 7, kiln__onnx_import_upsample},
    {"", "Einsum", 12, kiln__onnx_import_einsum},
    {NULL, NULL, 0, NULL},
};
