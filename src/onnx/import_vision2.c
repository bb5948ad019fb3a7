/* ONNX ops of the vision family that decompose into existing layers: CenterCropPad, Compress,
 * the window functions, ReverseSequence, MaxUnpool, TensorScatter; and ImageDecoder, which is
 * refused. Listed in kiln__onnx_ops_vision (import_vision.c). */
#include "onnx/import_vision.h"

#include "network/tensor_layers.h"

#include <math.h>
#include <string.h>

static kiln_tensor *concat2(kiln__onnx_ctx *ctx, const kiln__onnx_node *node, kiln_tensor *a, kiln_tensor *b,
                            kiln_status *st) {
    kiln__concat_params p = {.axis = 0};
    kiln_tensor *in[2] = {a, b};
    return kiln__onnx_add1(ctx, node, KILN_LAYER_CONCAT, in, 2, &p, sizeof p, st);
}

static kiln_tensor *const_i64(kiln__onnx_ctx *ctx, const kiln__onnx_node *node, const kiln_dims *dims,
                              const int64_t *v, kiln_status *st) {
    kiln_tensor *t;
    *st = kiln__onnx_add_constant(ctx, node, KILN_INT64, dims, v, &t);
    return *st == KILN_OK ? t : NULL;
}

/* Whether every dim of t is known at build time; else an error naming what needs them. */
static kiln_status need_dims(const kiln__onnx_node *node, const kiln_tensor *t, const char *what) {
    if (kiln__dims_volume(&t->dims) >= 0) return KILN_OK;
    return kiln__onnx_node_error(node, KILN_UNSUPPORTED, "input %s needs its dims known when building", what);
}

/* ---------------------------------------------------------------- CenterCropPad */

/* pads = (shape - dims[axes]) split as trunc(diff / 2) before and the rest after: positive
 * pads with zeros, negative ones crop, as the reference centers. */
kiln_status kiln__vision_import_center_crop_pad(kiln__onnx_ctx *ctx, const kiln__onnx_node *node) {
    kiln_status st = KILN_OK;
    kiln_tensor *x = kiln__onnx_in_required(ctx, node, 0, "input_data", &st);
    kiln_tensor *shape = x ? kiln__onnx_in_required(ctx, node, 1, "shape", &st) : NULL;
    if (!shape) return st;
    int32_t rank = x->dims.nb_dims;
    const int64_t *axes = NULL;
    int64_t nb_axes = -1;
    KILN__TRY(kiln__onnx_attr_ints(node, "axes", &axes, &nb_axes));
    kiln__padding_params p = {.mode = KILN__PAD_CONSTANT};
    int64_t ax[KILN_MAX_DIMS];
    if (nb_axes < 0) nb_axes = rank;
    if (nb_axes > rank)
        return kiln__onnx_node_error(node, KILN_INVALID_ARGUMENT, "%lld axes for rank %d", (long long)nb_axes, rank);
    for (int32_t i = 0; i < nb_axes; i++) {
        int32_t a = i;
        if (axes && !kiln__norm_axis(axes[i], rank, &a))
            return kiln__onnx_node_error(node, KILN_INVALID_ARGUMENT, "axis %lld is out of range for rank %d",
                                         (long long)axes[i], rank);
        p.axes[i] = a;
        ax[i] = a;
    }
    p.nb_axes = (int32_t)nb_axes;
    kiln__shape_params sp = {.start = 0, .end = INT64_MAX};
    kiln_tensor *sh = kiln__onnx_add1(ctx, node, KILN_LAYER_SHAPE, &x, 1, &sp, sizeof sp, &st);
    kiln_dims ad = {1, {nb_axes}};
    kiln_tensor *idx = sh ? const_i64(ctx, node, &ad, ax, &st) : NULL;
    kiln_tensor *dims = NULL;
    if (idx) {
        kiln__gather_params gp = {.mode = KILN_GATHER_DEFAULT, .axis = 0};
        kiln_tensor *in[2] = {sh, idx};
        dims = kiln__onnx_add1(ctx, node, KILN_LAYER_GATHER, in, 2, &gp, sizeof gp, &st);
    }
    kiln_tensor *want = dims ? kiln__onnx_cast(ctx, node, shape, KILN_INT64, &st) : NULL;
    kiln_tensor *diff = want ? kiln__onnx_ew(ctx, node, KILN_EW_SUB, want, dims, &st) : NULL;
    kiln_tensor *two = diff ? kiln__onnx_const_scalar(ctx, node, KILN_INT64, 2, 0, &st) : NULL;
    kiln_tensor *begin = two ? kiln__onnx_ew(ctx, node, KILN_EW_DIV, diff, two, &st) : NULL;
    kiln_tensor *end = begin ? kiln__onnx_ew(ctx, node, KILN_EW_SUB, diff, begin, &st) : NULL;
    kiln_tensor *pads = end ? concat2(ctx, node, begin, end, &st) : NULL;
    if (!pads) return st;
    kiln_tensor *in[2] = {x, pads};
    return kiln__vision_out0(ctx, node, kiln__onnx_add1(ctx, node, KILN_LAYER_PADDING, in, 2, &p, sizeof p, &st), &st);
}

/* ---------------------------------------------------------------- Compress */

/* gather(x, nonzero(condition)) along axis, or over the flattened x without one. */
kiln_status kiln__vision_import_compress(kiln__onnx_ctx *ctx, const kiln__onnx_node *node) {
    kiln_status st = KILN_OK;
    kiln_tensor *x = kiln__onnx_in_required(ctx, node, 0, "input", &st);
    kiln_tensor *cond = x ? kiln__onnx_in_required(ctx, node, 1, "condition", &st) : NULL;
    if (!cond) return st;
    const kiln__onnx_attr *a = kiln__onnx_node_attr(node, "axis");
    int64_t axis = 0;
    KILN__TRY(kiln__onnx_attr_int(node, "axis", &axis));
    int32_t ax = 0;
    if (a && !kiln__norm_axis(axis, x->dims.nb_dims, &ax))
        return kiln__onnx_node_error(node, KILN_INVALID_ARGUMENT, "axis %lld is out of range for rank %d",
                                     (long long)axis, x->dims.nb_dims);
    if (cond->dims.nb_dims != 1)
        return kiln__onnx_node_error(node, KILN_INVALID_ARGUMENT, "condition has rank %d, expected 1",
                                     cond->dims.nb_dims);
    kiln_tensor *nz = kiln__onnx_add1(ctx, node, KILN_LAYER_NONZERO, &cond, 1, NULL, 0, &st);
    kiln_dims flat = {1, {-1}};
    kiln_tensor *idx = nz ? kiln__onnx_reshape(ctx, node, nz, &flat, &st) : NULL;
    kiln_tensor *data = idx && !a ? kiln__onnx_reshape(ctx, node, x, &flat, &st) : x;
    if (!idx || !data) return st;
    kiln__gather_params gp = {.mode = KILN_GATHER_DEFAULT, .axis = ax};
    kiln_tensor *in[2] = {data, idx};
    return kiln__vision_out0(ctx, node, kiln__onnx_add1(ctx, node, KILN_LAYER_GATHER, in, 2, &gp, sizeof gp, &st), &st);
}

/* ---------------------------------------------------------------- window functions */

/* y[n] = a0 - a1 cos(2 pi n / N) + a2 cos(4 pi n / N) for n < size, N = size (periodic) or
 * size - 1 (symmetric); computed in the output dtype. */
kiln_status kiln__vision_import_window(kiln__onnx_ctx *ctx, const kiln__onnx_node *node) {
    kiln_status st = KILN_OK;
    kiln_tensor *size = kiln__onnx_in_required(ctx, node, 0, "size", &st);
    if (!size) return st;
    int64_t periodic = 1, dtype = KILN_FLOAT32;
    KILN__TRY(kiln__onnx_attr_int(node, "periodic", &periodic));
    KILN__TRY(kiln__onnx_attr_int(node, "output_datatype", &dtype));
    kiln_dtype dt = (kiln_dtype)dtype;
    if (!kiln__dtype_is_float(dt))
        return kiln__onnx_node_error(node, KILN_UNSUPPORTED, "output_datatype %lld is not a float type kiln computes "
                                     "windows in", (long long)dtype);
    if (size->dtype != KILN_INT32 && size->dtype != KILN_INT64)
        return kiln__onnx_node_error(node, KILN_INVALID_ARGUMENT, "size must be int32 or int64");
    double a0 = 0.5, a1 = 0.5, a2 = 0;
    if (strcmp(node->op_type, "HammingWindow") == 0) {
        a0 = 25.0 / 46;
        a1 = 21.0 / 46;
    } else if (strcmp(node->op_type, "BlackmanWindow") == 0) {
        a0 = 0.42;
        a2 = 0.08;
    }
    kiln_dims scalar = {0, {0}};
    kiln_tensor *s = kiln__onnx_reshape(ctx, node, size, &scalar, &st);
    kiln_tensor *zero = s ? kiln__onnx_const_scalar(ctx, node, size->dtype, 0, 0, &st) : NULL;
    kiln_tensor *one = zero ? kiln__onnx_const_scalar(ctx, node, size->dtype, 1, 0, &st) : NULL;
    kiln_tensor *n = NULL;
    if (one) {
        kiln__fill_params fp = {.mode = KILN__FILL_RANGE};
        kiln_tensor *in[3] = {zero, s, one};
        n = kiln__onnx_add1(ctx, node, KILN_LAYER_FILL, in, 3, &fp, sizeof fp, &st);
    }
    kiln_tensor *nf = n ? kiln__onnx_cast(ctx, node, n, dt, &st) : NULL;
    kiln_tensor *len = nf ? kiln__onnx_cast(ctx, node, s, dt, &st) : NULL;
    if (len && !periodic) {
        kiln_tensor *onef = kiln__onnx_const_scalar(ctx, node, dt, 1, 0, &st);
        len = onef ? kiln__onnx_ew(ctx, node, KILN_EW_SUB, len, onef, &st) : NULL;
    }
    kiln_tensor *tau = len ? kiln__onnx_const_scalar(ctx, node, dt, 2 * 3.14159265358979323846, 0, &st) : NULL;
    kiln_tensor *step = tau ? kiln__onnx_ew(ctx, node, KILN_EW_DIV, tau, len, &st) : NULL;
    kiln_tensor *angle = step ? kiln__onnx_ew(ctx, node, KILN_EW_MUL, nf, step, &st) : NULL;
    kiln_tensor *c1 = angle ? kiln__onnx_unary(ctx, node, KILN_UNARY_COS, angle, &st) : NULL;
    kiln_tensor *k1 = c1 ? kiln__onnx_const_scalar(ctx, node, dt, a1, 0, &st) : NULL;
    kiln_tensor *t1 = k1 ? kiln__onnx_ew(ctx, node, KILN_EW_MUL, c1, k1, &st) : NULL;
    kiln_tensor *k0 = t1 ? kiln__onnx_const_scalar(ctx, node, dt, a0, 0, &st) : NULL;
    kiln_tensor *y = k0 ? kiln__onnx_ew(ctx, node, KILN_EW_SUB, k0, t1, &st) : NULL;
    if (y && a2 != 0) {
        kiln_tensor *two = kiln__onnx_const_scalar(ctx, node, dt, 2, 0, &st);
        kiln_tensor *angle2 = two ? kiln__onnx_ew(ctx, node, KILN_EW_MUL, angle, two, &st) : NULL;
        kiln_tensor *c2 = angle2 ? kiln__onnx_unary(ctx, node, KILN_UNARY_COS, angle2, &st) : NULL;
        kiln_tensor *k2 = c2 ? kiln__onnx_const_scalar(ctx, node, dt, a2, 0, &st) : NULL;
        kiln_tensor *t2 = k2 ? kiln__onnx_ew(ctx, node, KILN_EW_MUL, c2, k2, &st) : NULL;
        y = t2 ? kiln__onnx_ew(ctx, node, KILN_EW_ADD, y, t2, &st) : NULL;
    }
    return kiln__vision_out0(ctx, node, y, &st);
}

/* ---------------------------------------------------------------- ReverseSequence */

/* GatherElements along the time axis with index t' = t < len[b] ? len[b] - 1 - t : t. */
kiln_status kiln__vision_import_reverse_sequence(kiln__onnx_ctx *ctx, const kiln__onnx_node *node) {
    kiln_status st = KILN_OK;
    kiln_tensor *x = kiln__onnx_in_required(ctx, node, 0, "input", &st);
    kiln_tensor *lens = x ? kiln__onnx_in_required(ctx, node, 1, "sequence_lens", &st) : NULL;
    if (!lens) return st;
    int64_t batch_axis = 1, time_axis = 0;
    KILN__TRY(kiln__onnx_attr_int(node, "batch_axis", &batch_axis));
    KILN__TRY(kiln__onnx_attr_int(node, "time_axis", &time_axis));
    int32_t rank = x->dims.nb_dims;
    if (rank < 2 || !((batch_axis == 0 && time_axis == 1) || (batch_axis == 1 && time_axis == 0)))
        return kiln__onnx_node_error(node, KILN_INVALID_ARGUMENT, "batch_axis %lld and time_axis %lld must be 0 and 1 "
                                     "in some order, rank >= 2", (long long)batch_axis, (long long)time_axis);
    KILN__TRY(need_dims(node, x, "input"));
    int64_t steps = x->dims.d[time_axis];
    const kiln__alloc *alloc = &kiln__onnx_network(ctx)->alloc;
    int64_t *iota = kiln__malloc(alloc, (size_t)(steps ? steps : 1) * sizeof *iota);
    if (!iota) return KILN_OUT_OF_MEMORY;
    for (int64_t i = 0; i < steps; i++) iota[i] = i;
    /* t and len laid out as [T, B] or [B, T] and broadcast against each other. */
    kiln_dims td = {2, {1, 1}}, ld = {2, {1, 1}};
    td.d[time_axis] = steps;
    ld.d[batch_axis] = -1;
    kiln_tensor *t = const_i64(ctx, node, &td, iota, &st);
    kiln__free(alloc, iota);
    kiln_tensor *l64 = t ? kiln__onnx_cast(ctx, node, lens, KILN_INT64, &st) : NULL;
    kiln_tensor *l = l64 ? kiln__onnx_reshape(ctx, node, l64, &ld, &st) : NULL;
    kiln_tensor *one = l ? kiln__onnx_const_scalar(ctx, node, KILN_INT64, 1, 0, &st) : NULL;
    kiln_tensor *lm1 = one ? kiln__onnx_ew(ctx, node, KILN_EW_SUB, l, one, &st) : NULL;
    kiln_tensor *rev = lm1 ? kiln__onnx_ew(ctx, node, KILN_EW_SUB, lm1, t, &st) : NULL;
    kiln_tensor *in_seq = rev ? kiln__onnx_ew(ctx, node, KILN_EW_LESS, t, l, &st) : NULL;
    kiln_tensor *idx = NULL;
    if (in_seq) {
        kiln_tensor *in[3] = {in_seq, rev, t};
        idx = kiln__onnx_add1(ctx, node, KILN_LAYER_SELECT, in, 3, NULL, 0, &st);
    }
    if (idx && rank > 2) {
        kiln_dims rd = {rank, {0}};
        rd.d[0] = 0;
        rd.d[1] = 0;
        for (int32_t i = 2; i < rank; i++) rd.d[i] = 1;
        kiln_tensor *r = kiln__onnx_reshape(ctx, node, idx, &rd, &st);
        kiln_dims sd = {1, {rank}};
        kiln_tensor *shape = r ? const_i64(ctx, node, &sd, x->dims.d, &st) : NULL;
        idx = NULL;
        if (shape) {
            kiln_tensor *in[2] = {r, shape};
            idx = kiln__onnx_add1(ctx, node, KILN_LAYER_EXPAND, in, 2, NULL, 0, &st);
        }
    }
    if (!idx) return st;
    kiln__gather_params gp = {.mode = KILN_GATHER_ELEMENTS, .axis = (int32_t)time_axis};
    kiln_tensor *in[2] = {x, idx};
    return kiln__vision_out0(ctx, node, kiln__onnx_add1(ctx, node, KILN_LAYER_GATHER, in, 2, &gp, sizeof gp, &st), &st);
}

/* ---------------------------------------------------------------- MaxUnpool */

/* As the reference: zeros of the shape pooling came from (inferred from the attributes),
 * flattened; X scattered at the flat indices I; reshaped; then padded at the end up to
 * output_shape when that is given. */
kiln_status kiln__vision_import_maxunpool(kiln__onnx_ctx *ctx, const kiln__onnx_node *node) {
    kiln_status st = KILN_OK;
    kiln_tensor *x = kiln__onnx_in_required(ctx, node, 0, "X", &st);
    kiln_tensor *ind = x ? kiln__onnx_in_required(ctx, node, 1, "I", &st) : NULL;
    if (!ind) return st;
    kiln_tensor *shape = kiln__onnx_in(ctx, node, 2);
    int32_t rank = x->dims.nb_dims, ns = rank - 2;
    if (ns < 1 || ns > 3)
        return kiln__onnx_node_error(node, KILN_UNSUPPORTED, "X has rank %d; 1 to 3 spatial dims supported", rank);
    int64_t kernel[3] = {0}, stride[3] = {1, 1, 1}, pads[6] = {0};
    const int64_t *v;
    int64_t n = -1;
    KILN__TRY(kiln__onnx_attr_ints(node, "kernel_shape", &v, &n));
    if (n != ns) return kiln__onnx_node_error(node, KILN_INVALID_ARGUMENT, "kernel_shape must have %d values", ns);
    memcpy(kernel, v, (size_t)ns * sizeof *v);
    n = -1;
    KILN__TRY(kiln__onnx_attr_ints(node, "strides", &v, &n));
    if (n >= 0 && n != ns) return kiln__onnx_node_error(node, KILN_INVALID_ARGUMENT, "strides must have %d values", ns);
    if (n > 0) memcpy(stride, v, (size_t)ns * sizeof *v);
    n = -1;
    KILN__TRY(kiln__onnx_attr_ints(node, "pads", &v, &n));
    if (n >= 0 && n != 2 * ns)
        return kiln__onnx_node_error(node, KILN_INVALID_ARGUMENT, "pads must have %d values", 2 * ns);
    if (n > 0) memcpy(pads, v, (size_t)(2 * ns) * sizeof *v);
    KILN__TRY(need_dims(node, x, "X"));
    kiln_dims inferred = {rank, {x->dims.d[0], x->dims.d[1]}};
    for (int32_t i = 0; i < ns; i++)
        inferred.d[2 + i] = (x->dims.d[2 + i] - 1) * stride[i] - pads[i] - pads[ns + i] + kernel[i];
    if (kiln__dims_volume(&inferred) < 0)
        return kiln__onnx_node_error(node, KILN_INVALID_ARGUMENT, "the unpooled shape has a negative dim");
    kiln__fill_params fp = {.mode = KILN__FILL_CONSTANT, .dtype = x->dtype};
    fp.dims = (kiln_dims){1, {kiln__dims_volume(&inferred)}};
    kiln_tensor *zf = kiln__onnx_add1(ctx, node, KILN_LAYER_FILL, NULL, 0, &fp, sizeof fp, &st);
    kiln_dims flat = {1, {-1}};
    kiln_tensor *xf = zf ? kiln__onnx_reshape(ctx, node, x, &flat, &st) : NULL;
    kiln_tensor *indf = xf ? kiln__onnx_reshape(ctx, node, ind, &flat, &st) : NULL;
    kiln_tensor *y = NULL;
    if (indf) {
        kiln__scatter_params sp = {.mode = KILN__SCATTER_ELEMENTS, .axis = 0, .reduction = KILN__SCATTER_NONE};
        kiln_tensor *in[3] = {zf, indf, xf};
        y = kiln__onnx_add1(ctx, node, KILN_LAYER_SCATTER, in, 3, &sp, sizeof sp, &st);
    }
    if (y) y = kiln__onnx_reshape(ctx, node, y, &inferred, &st);
    if (y && shape) {
        kiln_dims rd = {1, {rank}};
        int64_t zeros[KILN_MAX_DIMS] = {0};
        kiln_tensor *want = kiln__onnx_cast(ctx, node, shape, KILN_INT64, &st);
        kiln_tensor *have = want ? const_i64(ctx, node, &rd, inferred.d, &st) : NULL;
        kiln_tensor *grow = have ? kiln__onnx_ew(ctx, node, KILN_EW_SUB, want, have, &st) : NULL;
        kiln_tensor *none = grow ? const_i64(ctx, node, &rd, zeros, &st) : NULL;
        kiln_tensor *pv = none ? concat2(ctx, node, none, grow, &st) : NULL;
        kiln__padding_params pp = {.mode = KILN__PAD_CONSTANT};
        kiln_tensor *in[2] = {y, pv};
        y = pv ? kiln__onnx_add1(ctx, node, KILN_LAYER_PADDING, in, 2, &pp, sizeof pp, &st) : NULL;
    }
    return kiln__vision_out0(ctx, node, y, &st);
}

/* ---------------------------------------------------------------- TensorScatter */

/* ScatterElements of update into past_cache along axis at write_indices[b] + s (modulo the
 * cache length in circular mode). */
kiln_status kiln__vision_import_tensor_scatter(kiln__onnx_ctx *ctx, const kiln__onnx_node *node) {
    kiln_status st = KILN_OK;
    kiln_tensor *past = kiln__onnx_in_required(ctx, node, 0, "past_cache", &st);
    kiln_tensor *upd = past ? kiln__onnx_in_required(ctx, node, 1, "update", &st) : NULL;
    if (!upd) return st;
    kiln_tensor *widx = kiln__onnx_in(ctx, node, 2);
    int64_t axis = -2;
    int32_t mode = 0, rank = past->dims.nb_dims, ax;
    static const char *const modes[2] = {"linear", "circular"};
    KILN__TRY(kiln__onnx_attr_int(node, "axis", &axis));
    kiln__onnx_bytes ms = {0};
    KILN__TRY(kiln__onnx_attr_string(node, "mode", &ms));
    if (ms.data && !kiln__vision_str_is(ms, modes[0])) {
        if (!kiln__vision_str_is(ms, modes[1]))
            return kiln__onnx_node_error(node, KILN_INVALID_ARGUMENT, "mode '%.*s' is not linear or circular",
                                         (int)ms.size, (const char *)ms.data);
        mode = 1;
    }
    if (!kiln__norm_axis(axis, rank, &ax) || ax == 0 || upd->dims.nb_dims != rank)
        return kiln__onnx_node_error(node, KILN_INVALID_ARGUMENT, "axis %lld must be a non-batch dim of rank %d inputs",
                                     (long long)axis, rank);
    KILN__TRY(need_dims(node, past, "past_cache"));
    KILN__TRY(need_dims(node, upd, "update"));
    int64_t steps = upd->dims.d[ax], cache = past->dims.d[ax];
    const kiln__alloc *alloc = &kiln__onnx_network(ctx)->alloc;
    int64_t *iota = kiln__malloc(alloc, (size_t)(steps ? steps : 1) * sizeof *iota);
    if (!iota) return KILN_OUT_OF_MEMORY;
    for (int64_t i = 0; i < steps; i++) iota[i] = i;
    kiln_dims sd = {rank, {0}}, wd = {rank, {0}};
    for (int32_t i = 0; i < rank; i++) sd.d[i] = wd.d[i] = 1;
    sd.d[ax] = steps;
    wd.d[0] = -1;
    kiln_tensor *s = const_i64(ctx, node, &sd, iota, &st);
    kiln__free(alloc, iota);
    kiln_tensor *pos = s;
    if (s && widx) {
        kiln_tensor *w64 = kiln__onnx_cast(ctx, node, widx, KILN_INT64, &st);
        kiln_tensor *w = w64 ? kiln__onnx_reshape(ctx, node, w64, &wd, &st) : NULL;
        pos = w ? kiln__onnx_ew(ctx, node, KILN_EW_ADD, w, s, &st) : NULL;
    }
    if (pos && mode == 1) {
        kiln_tensor *len = kiln__onnx_const_scalar(ctx, node, KILN_INT64, (double)cache, 0, &st);
        pos = len ? kiln__onnx_ew(ctx, node, KILN_EW_MOD, pos, len, &st) : NULL;
    }
    kiln_dims ud = {1, {rank}};
    kiln_tensor *shape = pos ? const_i64(ctx, node, &ud, upd->dims.d, &st) : NULL;
    kiln_tensor *idx = NULL;
    if (shape) {
        kiln_tensor *in[2] = {pos, shape};
        idx = kiln__onnx_add1(ctx, node, KILN_LAYER_EXPAND, in, 2, NULL, 0, &st);
    }
    if (!idx) return st;
    kiln__scatter_params sp = {.mode = KILN__SCATTER_ELEMENTS, .axis = ax, .reduction = KILN__SCATTER_NONE};
    kiln_tensor *in[3] = {past, idx, upd};
    return kiln__vision_out0(ctx, node, kiln__onnx_add1(ctx, node, KILN_LAYER_SCATTER, in, 3, &sp, sizeof sp, &st), &st);
}

/* ---------------------------------------------------------------- ImageDecoder */

kiln_status kiln__vision_import_image_decoder(kiln__onnx_ctx *ctx, const kiln__onnx_node *node) {
    (void)ctx;
    return kiln__onnx_node_error(node, KILN_UNSUPPORTED,
                                 "decoding encoded images (JPEG, PNG, BMP, TIFF, WebP, ...) is not part of kiln; "
                                 "decode before inference and feed the pixels as a uint8 tensor");
}
