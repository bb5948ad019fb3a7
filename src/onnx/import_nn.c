/* ONNX importers for the neural-network op families: convolutions, pooling, matrix products,
 * normalizations, softmax and its relatives, LRN. */
#include "onnx/importer.h"

#include "cpu/cpu.h"
#include "network/lrn.h"

#include <math.h>
#include <string.h>

/* Binds output 0 to t, or returns the error that left t NULL (read after the call that set it). */
static kiln_status out0(kiln__onnx_ctx *ctx, const kiln__onnx_node *node, kiln_tensor *t, const kiln_status *st) {
    return t ? kiln__onnx_out(ctx, node, 0, t) : *st;
}

static bool str_is(kiln__onnx_bytes b, const char *s) { return b.size == strlen(s) && memcmp(b.data, s, b.size) == 0; }

/* ---------------------------------------------------------------- window attributes */

/* The attributes Conv, ConvTranspose and the pools share, read for ns spatial dims. */
typedef struct window_attrs {
    int32_t ns;
    bool has_kernel;
    int64_t kernel[3], stride[3], dilation[3], pad_begin[3], pad_end[3];
    int32_t auto_pad;
} window_attrs;

/* Reads an INTS attribute of exactly n values (when present) into out. */
static kiln_status ints_n(const kiln__onnx_node *node, const char *name, int64_t n, int64_t *out, bool *present) {
    const int64_t *v = NULL;
    int64_t count = -1;
    KILN__TRY(kiln__onnx_attr_ints(node, name, &v, &count));
    if (present) *present = count >= 0;
    if (count < 0) return KILN_OK;
    if (count != n)
        return kiln__onnx_node_error(node, KILN_INVALID_ARGUMENT, "attribute '%s' has %lld values, expected %lld", name,
                                     (long long)count, (long long)n);
    for (int64_t i = 0; i < n; i++) out[i] = v[i];
    return KILN_OK;
}

static kiln_status read_window(const kiln__onnx_node *node, int32_t rank, window_attrs *w) {
    memset(w, 0, sizeof *w);
    w->ns = rank - 2;
    if (w->ns < 1 || w->ns > 3)
        return kiln__onnx_node_error(node, KILN_UNSUPPORTED, "input X has rank %d; kiln supports 1 to 3 spatial dims",
                                     rank);
    for (int32_t i = 0; i < 3; i++) w->stride[i] = w->dilation[i] = 1;
    KILN__TRY(ints_n(node, "kernel_shape", w->ns, w->kernel, &w->has_kernel));
    KILN__TRY(ints_n(node, "strides", w->ns, w->stride, NULL));
    KILN__TRY(ints_n(node, "dilations", w->ns, w->dilation, NULL));
    int64_t pads[6] = {0};
    KILN__TRY(ints_n(node, "pads", 2 * w->ns, pads, NULL));
    for (int32_t i = 0; i < w->ns; i++) {
        w->pad_begin[i] = pads[i];
        w->pad_end[i] = pads[w->ns + i];
    }
    kiln__onnx_bytes ap = {(const uint8_t *)"NOTSET", 6};
    KILN__TRY(kiln__onnx_attr_string(node, "auto_pad", &ap));
    if (str_is(ap, "NOTSET") || ap.size == 0) w->auto_pad = KILN__PAD_EXPLICIT;
    else if (str_is(ap, "SAME_UPPER")) w->auto_pad = KILN__PAD_SAME_UPPER;
    else if (str_is(ap, "SAME_LOWER")) w->auto_pad = KILN__PAD_SAME_LOWER;
    else if (str_is(ap, "VALID")) w->auto_pad = KILN__PAD_VALID;
    else
        return kiln__onnx_node_error(node, KILN_INVALID_ARGUMENT, "auto_pad '%.*s' is not one of NOTSET, SAME_UPPER, "
                                     "SAME_LOWER, VALID", (int)ap.size, (const char *)ap.data);
    return KILN_OK;
}

/* ---------------------------------------------------------------- Conv, ConvTranspose */

static kiln_status import_conv(kiln__onnx_ctx *ctx, const kiln__onnx_node *node) {
    kiln_status st = KILN_OK;
    kiln_tensor *x = kiln__onnx_in_required(ctx, node, 0, "X", &st);
    kiln_tensor *w = x ? kiln__onnx_in_required(ctx, node, 1, "W", &st) : NULL;
    if (!w) return st;
    kiln_tensor *b = kiln__onnx_in(ctx, node, 2);
    bool deconv = strcmp(node->op_type, "ConvTranspose") == 0;
    window_attrs wa;
    KILN__TRY(read_window(node, x->dims.nb_dims, &wa));
    int64_t group = 1;
    KILN__TRY(kiln__onnx_attr_int(node, "group", &group));
    if (group < 1 || group > INT32_MAX)
        return kiln__onnx_node_error(node, KILN_INVALID_ARGUMENT, "group is %lld, expected >= 1", (long long)group);
    kiln__conv_params p = {.nb_spatial = wa.ns, .groups = (int32_t)group, .auto_pad = wa.auto_pad,
                           .act = {.kind = -1}};
    memcpy(p.kernel, wa.kernel, sizeof p.kernel);
    memcpy(p.stride, wa.stride, sizeof p.stride);
    memcpy(p.dilation, wa.dilation, sizeof p.dilation);
    memcpy(p.pad_begin, wa.pad_begin, sizeof p.pad_begin);
    memcpy(p.pad_end, wa.pad_end, sizeof p.pad_end);
    if (deconv) {
        KILN__TRY(ints_n(node, "output_padding", wa.ns, p.output_padding, NULL));
        const int64_t *os = NULL;
        int64_t n = -1;
        KILN__TRY(kiln__onnx_attr_ints(node, "output_shape", &os, &n));
        if (n >= 0) {
            /* Spatial dims only, though some exporters write N and C too. */
            if (n != wa.ns && n != wa.ns + 2)
                return kiln__onnx_node_error(node, KILN_INVALID_ARGUMENT,
                                             "output_shape has %lld values, expected %d (the spatial dims)",
                                             (long long)n, wa.ns);
            for (int32_t i = 0; i < wa.ns; i++) p.output_shape[i] = os[n - wa.ns + i];
            p.has_output_shape = 1;
        }
        int64_t cout = w->dims.nb_dims > 1 && w->dims.d[1] >= 0 ? w->dims.d[1] * group : 0;
        p.nb_output_maps = cout > INT32_MAX ? 0 : (int32_t)cout;
    } else {
        int64_t cout = w->dims.nb_dims > 0 && w->dims.d[0] >= 0 ? w->dims.d[0] : 0;
        p.nb_output_maps = cout > INT32_MAX ? 0 : (int32_t)cout;
    }
    kiln_tensor *in[3] = {x, w, b};
    kiln_tensor *y = kiln__onnx_add1(ctx, node, deconv ? KILN_LAYER_DECONVOLUTION : KILN_LAYER_CONVOLUTION, in,
                                     b ? 3 : 2, &p, sizeof p, &st);
    return out0(ctx, node, y, &st);
}

/* ---------------------------------------------------------------- pooling */

static kiln_status import_pool(kiln__onnx_ctx *ctx, const kiln__onnx_node *node) {
    kiln_status st = KILN_OK;
    kiln_tensor *x = kiln__onnx_in_required(ctx, node, 0, "X", &st);
    if (!x) return st;
    const char *op = node->op_type;
    bool global = strncmp(op, "Global", 6) == 0;
    const char *kind = global ? op + 6 : op;
    kiln__pool_params p = {0};
    if (strcmp(kind, "MaxPool") == 0) p.type = KILN_POOL_MAX;
    else if (strcmp(kind, "AveragePool") == 0) p.type = KILN_POOL_AVERAGE;
    else p.type = KILN_POOL_LP;
    if (p.type == KILN_POOL_LP) {
        /* LpPool-1 gave p as a float. */
        const kiln__onnx_attr *a = kiln__onnx_node_attr(node, "p");
        int64_t norm = 2;
        if (a && a->type == KILN__ONNX_ATTR_FLOAT) norm = (int64_t)a->f;
        else KILN__TRY(kiln__onnx_attr_int(node, "p", &norm));
        if (norm < 1 || norm > INT32_MAX)
            return kiln__onnx_node_error(node, KILN_INVALID_ARGUMENT, "p is %lld, expected >= 1", (long long)norm);
        p.lp_norm = (int32_t)norm;
    }
    if (global) {
        p.global = 1;
        p.nb_spatial = x->dims.nb_dims - 2;
        if (p.nb_spatial < 1)
            return kiln__onnx_node_error(node, KILN_INVALID_ARGUMENT, "input X has rank %d, expected >= 3",
                                         x->dims.nb_dims);
    } else {
        window_attrs wa;
        KILN__TRY(read_window(node, x->dims.nb_dims, &wa));
        if (!wa.has_kernel)
            return kiln__onnx_node_error(node, KILN_INVALID_ARGUMENT, "attribute 'kernel_shape' is required");
        p.nb_spatial = wa.ns;
        p.auto_pad = wa.auto_pad;
        memcpy(p.window, wa.kernel, sizeof p.window);
        memcpy(p.stride, wa.stride, sizeof p.stride);
        memcpy(p.dilation, wa.dilation, sizeof p.dilation);
        memcpy(p.pad_begin, wa.pad_begin, sizeof p.pad_begin);
        memcpy(p.pad_end, wa.pad_end, sizeof p.pad_end);
        int64_t ceil_mode = 0, count_include_pad = 0;
        KILN__TRY(kiln__onnx_attr_int(node, "ceil_mode", &ceil_mode));
        KILN__TRY(kiln__onnx_attr_int(node, "count_include_pad", &count_include_pad));
        p.ceil_mode = ceil_mode != 0;
        p.count_include_pad = count_include_pad != 0;
    }
    bool indices = p.type == KILN_POOL_MAX && kiln__onnx_has_out(node, 1);
    if (indices) {
        int64_t storage_order = 0;
        KILN__TRY(kiln__onnx_attr_int(node, "storage_order", &storage_order));
        if (storage_order != 0)
            return kiln__onnx_node_error(node, KILN_UNSUPPORTED,
                                         "storage_order=1 (column-major indices output) is not supported");
    }
    kiln_layer *l;
    KILN__TRY(kiln__onnx_add_layer(ctx, node, KILN_LAYER_POOLING, &x, 1, indices ? 2 : 1, &p, sizeof p, &l));
    KILN__TRY(kiln__onnx_out(ctx, node, 0, l->outputs[0]));
    return indices ? kiln__onnx_out(ctx, node, 1, l->outputs[l->nb_outputs > 1 ? 1 : 0]) : KILN_OK;
}

/* ---------------------------------------------------------------- MatMul, Gemm */

static kiln_status import_matmul(kiln__onnx_ctx *ctx, const kiln__onnx_node *node) {
    kiln_status st = KILN_OK;
    kiln_tensor *a = kiln__onnx_in_required(ctx, node, 0, "A", &st);
    kiln_tensor *b = a ? kiln__onnx_in_required(ctx, node, 1, "B", &st) : NULL;
    if (!b) return st;
    kiln__matmul_params p = {.alpha = 1, .beta = 1, .act = {.kind = -1}};
    kiln_tensor *in[2] = {a, b};
    return out0(ctx, node, kiln__onnx_add1(ctx, node, KILN_LAYER_MATMUL, in, 2, &p, sizeof p, &st), &st);
}

static kiln_status import_gemm(kiln__onnx_ctx *ctx, const kiln__onnx_node *node) {
    kiln_status st = KILN_OK;
    kiln_tensor *a = kiln__onnx_in_required(ctx, node, 0, "A", &st);
    kiln_tensor *b = a ? kiln__onnx_in_required(ctx, node, 1, "B", &st) : NULL;
    if (!b) return st;
    kiln_tensor *c = kiln__onnx_in(ctx, node, 2);
    if (a->dims.nb_dims != 2 || b->dims.nb_dims != 2)
        return kiln__onnx_node_error(node, KILN_INVALID_ARGUMENT, "inputs A and B have ranks %d and %d, expected 2",
                                     a->dims.nb_dims, b->dims.nb_dims);
    int64_t ta = 0, tb = 0;
    float alpha = 1, beta = 1;
    KILN__TRY(kiln__onnx_attr_int(node, "transA", &ta));
    KILN__TRY(kiln__onnx_attr_int(node, "transB", &tb));
    KILN__TRY(kiln__onnx_attr_float(node, "alpha", &alpha));
    KILN__TRY(kiln__onnx_attr_float(node, "beta", &beta));
    kiln__matmul_params p = {.op_a = ta ? KILN_MATRIX_TRANSPOSE : KILN_MATRIX_NONE,
                             .op_b = tb ? KILN_MATRIX_TRANSPOSE : KILN_MATRIX_NONE,
                             .alpha = alpha,
                             .beta = beta,
                             .act = {.kind = -1}};
    kiln_tensor *in[3] = {a, b, c};
    return out0(ctx, node, kiln__onnx_add1(ctx, node, KILN_LAYER_MATMUL, in, c ? 3 : 2, &p, sizeof p, &st), &st);
}

/* ---------------------------------------------------------------- normalizations */

static kiln_tensor *norm_layer(kiln__onnx_ctx *ctx, const kiln__onnx_node *node, const kiln__norm_params *p,
                               kiln_tensor *x, kiln_tensor *scale, kiln_tensor *bias, kiln_tensor *mean,
                               kiln_tensor *var, kiln_status *st) {
    kiln_tensor *in[5] = {x, scale, bias, mean, var};
    return kiln__onnx_add1(ctx, node, KILN_LAYER_NORMALIZATION, in, 5, p, sizeof *p, st);
}

static kiln_status import_batchnorm(kiln__onnx_ctx *ctx, const kiln__onnx_node *node) {
    kiln_status st = KILN_OK;
    static const char *const names[] = {"X", "scale", "B", "input_mean", "input_var"};
    kiln_tensor *in[5];
    for (int32_t i = 0; i < 5; i++)
        if (!(in[i] = kiln__onnx_in_required(ctx, node, i, names[i], &st))) return st;
    int64_t training = 0;
    KILN__TRY(kiln__onnx_attr_int(node, "training_mode", &training));
    if (training)
        return kiln__onnx_node_error(node, KILN_UNSUPPORTED,
                                     "training_mode=1 (batch statistics and running-mean outputs) is not supported");
    for (int32_t i = 1; i < node->nb_outputs; i++)
        if (kiln__onnx_has_out(node, i))
            return kiln__onnx_node_error(node, KILN_UNSUPPORTED,
                                         "output %d (a training statistic) is not supported; kiln runs inference", i);
    float eps = 1e-5f;
    KILN__TRY(kiln__onnx_attr_float(node, "epsilon", &eps));
    kiln__norm_params p = {.type = KILN_NORM_BATCH, .epsilon = eps};
    return out0(ctx, node, norm_layer(ctx, node, &p, in[0], in[1], in[2], in[3], in[4], &st), &st);
}

static kiln_status import_instancenorm(kiln__onnx_ctx *ctx, const kiln__onnx_node *node) {
    kiln_status st = KILN_OK;
    kiln_tensor *x = kiln__onnx_in_required(ctx, node, 0, "input", &st);
    kiln_tensor *scale = x ? kiln__onnx_in_required(ctx, node, 1, "scale", &st) : NULL;
    kiln_tensor *bias = scale ? kiln__onnx_in_required(ctx, node, 2, "B", &st) : NULL;
    if (!bias) return st;
    float eps = 1e-5f;
    KILN__TRY(kiln__onnx_attr_float(node, "epsilon", &eps));
    kiln__norm_params p = {.type = KILN_NORM_INSTANCE, .epsilon = eps};
    return out0(ctx, node, norm_layer(ctx, node, &p, x, scale, bias, NULL, NULL, &st), &st);
}

static kiln_status import_groupnorm(kiln__onnx_ctx *ctx, const kiln__onnx_node *node) {
    kiln_status st = KILN_OK;
    kiln_tensor *x = kiln__onnx_in_required(ctx, node, 0, "X", &st);
    kiln_tensor *scale = x ? kiln__onnx_in_required(ctx, node, 1, "scale", &st) : NULL;
    kiln_tensor *bias = scale ? kiln__onnx_in_required(ctx, node, 2, "bias", &st) : NULL;
    if (!bias) return st;
    float eps = 1e-5f;
    int64_t groups = -1;
    KILN__TRY(kiln__onnx_attr_float(node, "epsilon", &eps));
    KILN__TRY(kiln__onnx_attr_int(node, "num_groups", &groups));
    if (groups < 1 || groups > INT32_MAX)
        return kiln__onnx_node_error(node, KILN_INVALID_ARGUMENT, "attribute 'num_groups' must be given and >= 1");
    kiln__norm_params p = {.type = KILN_NORM_GROUP, .epsilon = eps, .nb_groups = (int32_t)groups};
    return out0(ctx, node, norm_layer(ctx, node, &p, x, scale, bias, NULL, NULL, &st), &st);
}

/* Bit mask of dims axis..rank-1. */
static uint32_t tail_mask(int32_t axis, int32_t rank) {
    uint32_t m = 0;
    for (int32_t i = axis; i < rank; i++) m |= 1u << i;
    return m;
}

/* LayerNormalization, with the optional Mean and InvStdDev outputs computed by reduce and
 * elementwise layers in float32 (the stash type). */
static kiln_status import_layernorm(kiln__onnx_ctx *ctx, const kiln__onnx_node *node) {
    kiln_status st = KILN_OK;
    kiln_tensor *x = kiln__onnx_in_required(ctx, node, 0, "X", &st);
    kiln_tensor *scale = x ? kiln__onnx_in_required(ctx, node, 1, "Scale", &st) : NULL;
    if (!scale) return st;
    kiln_tensor *bias = kiln__onnx_in(ctx, node, 2);
    int64_t axis = -1, stash = 1;
    float eps = 1e-5f;
    KILN__TRY(kiln__onnx_attr_int(node, "axis", &axis));
    KILN__TRY(kiln__onnx_attr_float(node, "epsilon", &eps));
    KILN__TRY(kiln__onnx_attr_int(node, "stash_type", &stash));
    int32_t rank = x->dims.nb_dims, ax;
    if (!kiln__norm_axis(axis, rank, &ax))
        return kiln__onnx_node_error(node, KILN_INVALID_ARGUMENT, "axis %lld is out of range for rank %d",
                                     (long long)axis, rank);
    kiln__norm_params p = {.type = KILN_NORM_LAYER, .epsilon = eps, .axis = ax};
    KILN__TRY(out0(ctx, node, norm_layer(ctx, node, &p, x, scale, bias, NULL, NULL, &st), &st));
    if (!kiln__onnx_has_out(node, 1) && !kiln__onnx_has_out(node, 2)) return KILN_OK;
    if (stash != 1)
        return kiln__onnx_node_error(node, KILN_UNSUPPORTED, "stash_type %lld for the Mean/InvStdDev outputs is not "
                                     "supported (only 1, float32)", (long long)stash);
    kiln_tensor *xf = x->dtype == KILN_FLOAT32 ? x : kiln__onnx_cast(ctx, node, x, KILN_FLOAT32, &st);
    uint32_t mask = tail_mask(ax, rank);
    kiln_tensor *mean = xf ? kiln__onnx_reduce(ctx, node, KILN_REDUCE_MEAN, xf, mask, true, &st) : NULL;
    kiln_tensor *d = mean ? kiln__onnx_ew(ctx, node, KILN_EW_SUB, xf, mean, &st) : NULL;
    kiln_tensor *d2 = d ? kiln__onnx_ew(ctx, node, KILN_EW_MUL, d, d, &st) : NULL;
    kiln_tensor *var = d2 ? kiln__onnx_reduce(ctx, node, KILN_REDUCE_MEAN, d2, mask, true, &st) : NULL;
    kiln_tensor *e = var ? kiln__onnx_const_scalar(ctx, node, KILN_FLOAT32, eps, 0, &st) : NULL;
    kiln_tensor *ve = e ? kiln__onnx_ew(ctx, node, KILN_EW_ADD, var, e, &st) : NULL;
    kiln_tensor *sd = ve ? kiln__onnx_unary(ctx, node, KILN_UNARY_SQRT, ve, &st) : NULL;
    kiln_tensor *inv = sd ? kiln__onnx_unary(ctx, node, KILN_UNARY_RECIP, sd, &st) : NULL;
    if (!inv) return st;
    KILN__TRY(kiln__onnx_out(ctx, node, 1, mean));
    return kiln__onnx_out(ctx, node, 2, inv);
}

static kiln_status import_rmsnorm(kiln__onnx_ctx *ctx, const kiln__onnx_node *node) {
    kiln_status st = KILN_OK;
    kiln_tensor *x = kiln__onnx_in_required(ctx, node, 0, "X", &st);
    kiln_tensor *scale = x ? kiln__onnx_in_required(ctx, node, 1, "scale", &st) : NULL;
    if (!scale) return st;
    int64_t axis = -1;
    float eps = 1e-5f;
    KILN__TRY(kiln__onnx_attr_int(node, "axis", &axis));
    KILN__TRY(kiln__onnx_attr_float(node, "epsilon", &eps));
    int32_t ax;
    if (!kiln__norm_axis(axis, x->dims.nb_dims, &ax))
        return kiln__onnx_node_error(node, KILN_INVALID_ARGUMENT, "axis %lld is out of range for rank %d",
                                     (long long)axis, x->dims.nb_dims);
    kiln__norm_params p = {.type = KILN_NORM_RMS, .epsilon = eps, .axis = ax};
    return out0(ctx, node, norm_layer(ctx, node, &p, x, scale, NULL, NULL, NULL, &st), &st);
}

/* y = x / ||x||_p along axis; a zero norm divides by 1 instead (as ONNX's reference does). */
static kiln_status import_lpnorm(kiln__onnx_ctx *ctx, const kiln__onnx_node *node) {
    kiln_status st = KILN_OK;
    kiln_tensor *x = kiln__onnx_in_required(ctx, node, 0, "input", &st);
    if (!x) return st;
    int64_t axis = -1, pnorm = 2;
    KILN__TRY(kiln__onnx_attr_int(node, "axis", &axis));
    KILN__TRY(kiln__onnx_attr_int(node, "p", &pnorm));
    int32_t ax;
    if (!kiln__norm_axis(axis, x->dims.nb_dims, &ax))
        return kiln__onnx_node_error(node, KILN_INVALID_ARGUMENT, "axis %lld is out of range for rank %d",
                                     (long long)axis, x->dims.nb_dims);
    if (pnorm != 1 && pnorm != 2)
        return kiln__onnx_node_error(node, KILN_INVALID_ARGUMENT, "p is %lld, expected 1 or 2", (long long)pnorm);
    kiln_tensor *n = kiln__onnx_reduce(ctx, node, pnorm == 1 ? KILN_REDUCE_L1 : KILN_REDUCE_L2, x, 1u << ax, true, &st);
    kiln_tensor *zero = n ? kiln__onnx_const_scalar(ctx, node, x->dtype, 0, 0, &st) : NULL;
    kiln_tensor *one = zero ? kiln__onnx_const_scalar(ctx, node, x->dtype, 1, 0, &st) : NULL;
    kiln_tensor *is_zero = one ? kiln__onnx_ew(ctx, node, KILN_EW_EQUAL, n, zero, &st) : NULL;
    kiln_tensor *den = NULL;
    if (is_zero) {
        kiln_tensor *in[3] = {is_zero, one, n};
        den = kiln__onnx_add1(ctx, node, KILN_LAYER_SELECT, in, 3, NULL, 0, &st);
    }
    return out0(ctx, node, den ? kiln__onnx_ew(ctx, node, KILN_EW_DIV, x, den, &st) : NULL, &st);
}

/* ONNX's function body: (x - E[x]) / (sqrt(E[x^2] - E[x]^2) + 1e-9) over `axes`. */
static kiln_status import_mvn(kiln__onnx_ctx *ctx, const kiln__onnx_node *node) {
    kiln_status st = KILN_OK;
    kiln_tensor *x = kiln__onnx_in_required(ctx, node, 0, "X", &st);
    if (!x) return st;
    int64_t def_axes[] = {0, 2, 3};
    const int64_t *axes = def_axes;
    int64_t n = 3;
    KILN__TRY(kiln__onnx_attr_ints(node, "axes", &axes, &n));
    uint32_t mask = 0;
    for (int64_t i = 0; i < n; i++) {
        int32_t a;
        if (!kiln__norm_axis(axes[i], x->dims.nb_dims, &a))
            return kiln__onnx_node_error(node, KILN_INVALID_ARGUMENT, "axis %lld is out of range for rank %d",
                                         (long long)axes[i], x->dims.nb_dims);
        mask |= 1u << a;
    }
    kiln_tensor *mean = kiln__onnx_reduce(ctx, node, KILN_REDUCE_MEAN, x, mask, true, &st);
    kiln_tensor *x2 = mean ? kiln__onnx_ew(ctx, node, KILN_EW_MUL, x, x, &st) : NULL;
    kiln_tensor *ex2 = x2 ? kiln__onnx_reduce(ctx, node, KILN_REDUCE_MEAN, x2, mask, true, &st) : NULL;
    kiln_tensor *m2 = ex2 ? kiln__onnx_ew(ctx, node, KILN_EW_MUL, mean, mean, &st) : NULL;
    kiln_tensor *var = m2 ? kiln__onnx_ew(ctx, node, KILN_EW_SUB, ex2, m2, &st) : NULL;
    kiln_tensor *sd = var ? kiln__onnx_unary(ctx, node, KILN_UNARY_SQRT, var, &st) : NULL;
    kiln_tensor *eps = sd ? kiln__onnx_const_scalar(ctx, node, x->dtype, 1e-9, 0, &st) : NULL;
    kiln_tensor *den = eps ? kiln__onnx_ew(ctx, node, KILN_EW_ADD, sd, eps, &st) : NULL;
    kiln_tensor *num = den ? kiln__onnx_ew(ctx, node, KILN_EW_SUB, x, mean, &st) : NULL;
    return out0(ctx, node, num ? kiln__onnx_ew(ctx, node, KILN_EW_DIV, num, den, &st) : NULL, &st);
}

/* ---------------------------------------------------------------- softmax family */

static kiln_status softmax_axis(kiln__onnx_ctx *ctx, const kiln__onnx_node *node, const kiln_tensor *x,
                                int32_t *axis, bool *coerce) {
    bool old = kiln__onnx_node_opset(ctx, node) < 13;
    int64_t a = old ? 1 : -1;
    KILN__TRY(kiln__onnx_attr_int(node, "axis", &a));
    if (!kiln__norm_axis(a, x->dims.nb_dims, axis))
        return kiln__onnx_node_error(node, KILN_INVALID_ARGUMENT, "axis %lld is out of range for rank %d",
                                     (long long)a, x->dims.nb_dims);
    /* Before opset 13 the op works on the input flattened to 2-D at axis. */
    *coerce = old && *axis < x->dims.nb_dims - 1;
    return KILN_OK;
}

static kiln_status import_softmax(kiln__onnx_ctx *ctx, const kiln__onnx_node *node) {
    kiln_status st = KILN_OK;
    kiln_tensor *x = kiln__onnx_in_required(ctx, node, 0, "input", &st);
    if (!x) return st;
    int32_t axis;
    bool coerce = false;
    KILN__TRY(softmax_axis(ctx, node, x, &axis, &coerce));
    kiln__softmax_params p = {.axis = axis, .log = strcmp(node->op_type, "LogSoftmax") == 0, .coerce_2d = coerce};
    return out0(ctx, node, kiln__onnx_add1(ctx, node, KILN_LAYER_SOFTMAX, &x, 1, &p, sizeof p, &st), &st);
}

/* Hardmax: one-hot of the first maximum along the axis, as cast(argmax == iota). */
static kiln_status import_hardmax(kiln__onnx_ctx *ctx, const kiln__onnx_node *node) {
    kiln_status st = KILN_OK;
    kiln_tensor *x = kiln__onnx_in_required(ctx, node, 0, "input", &st);
    if (!x) return st;
    int32_t axis;
    bool coerce = false;
    KILN__TRY(softmax_axis(ctx, node, x, &axis, &coerce));
    kiln_tensor *v = x;
    kiln_dims orig = x->dims;
    if (coerce) {
        int64_t rows = 1, cols = 1;
        for (int32_t i = 0; i < orig.nb_dims; i++) {
            if (orig.d[i] < 0)
                return kiln__onnx_node_error(node, KILN_UNSUPPORTED, "opset < 13 Hardmax needs the input dims known");
            if (i < axis) rows *= orig.d[i];
            else cols *= orig.d[i];
        }
        kiln_dims d2 = {.nb_dims = 2, .d = {rows, cols}};
        if (!(v = kiln__onnx_reshape(ctx, node, x, &d2, &st))) return st;
        axis = 1;
    }
    int64_t len = v->dims.d[axis];
    if (len < 0)
        return kiln__onnx_node_error(node, KILN_UNSUPPORTED, "Hardmax needs the size of the axis known");
    kiln__reduce_params rp = {.op = KILN_REDUCE_ARGMAX, .axes_mask = 1u << axis, .keep_dims = 1};
    kiln_tensor *arg = kiln__onnx_add1(ctx, node, KILN_LAYER_REDUCE, &v, 1, &rp, sizeof rp, &st);
    if (!arg) return st;
    const kiln__alloc *alloc = &kiln__onnx_network(ctx)->alloc;
    int64_t *iota = kiln__malloc(alloc, (size_t)(len ? len : 1) * sizeof *iota);
    if (!iota) return KILN_OUT_OF_MEMORY;
    for (int64_t i = 0; i < len; i++) iota[i] = i;
    kiln_dims id = {.nb_dims = v->dims.nb_dims};
    for (int32_t i = 0; i < id.nb_dims; i++) id.d[i] = i == axis ? len : 1;
    kiln_tensor *idx;
    st = kiln__onnx_add_constant(ctx, node, KILN_INT64, &id, iota, &idx);
    kiln__free(alloc, iota);
    if (st != KILN_OK) return st;
    kiln_tensor *eq = kiln__onnx_ew(ctx, node, KILN_EW_EQUAL, arg, idx, &st);
    kiln_tensor *y = eq ? kiln__onnx_cast(ctx, node, eq, x->dtype, &st) : NULL;
    if (y && coerce) y = kiln__onnx_reshape(ctx, node, y, &orig, &st);
    return out0(ctx, node, y, &st);
}

/* ---------------------------------------------------------------- LRN */

static kiln_status import_lrn(kiln__onnx_ctx *ctx, const kiln__onnx_node *node) {
    kiln_status st = KILN_OK;
    kiln_tensor *x = kiln__onnx_in_required(ctx, node, 0, "X", &st);
    if (!x) return st;
    int64_t size = 0;
    kiln__lrn_params p = {.alpha = 1e-4f, .beta = 0.75f, .bias = 1.0f};
    KILN__TRY(kiln__onnx_attr_int(node, "size", &size));
    KILN__TRY(kiln__onnx_attr_float(node, "alpha", &p.alpha));
    KILN__TRY(kiln__onnx_attr_float(node, "beta", &p.beta));
    KILN__TRY(kiln__onnx_attr_float(node, "bias", &p.bias));
    if (size < 1 || size > INT32_MAX)
        return kiln__onnx_node_error(node, KILN_INVALID_ARGUMENT, "attribute 'size' must be given and >= 1");
    p.size = (int32_t)size;
    return out0(ctx, node, kiln__onnx_add1(ctx, node, KILN_LAYER_LRN, &x, 1, &p, sizeof p, &st), &st);
}

const kiln__onnx_op kiln__onnx_ops_nn[] = {
    {"", "Conv", 1, import_conv},
    {"", "ConvTranspose", 1, import_conv},
    {"", "MaxPool", 1, import_pool},
    {"", "AveragePool", 1, import_pool},
    {"", "LpPool", 1, import_pool},
    {"", "GlobalMaxPool", 1, import_pool},
    {"", "GlobalAveragePool", 1, import_pool},
    {"", "GlobalLpPool", 1, import_pool},
    {"", "MatMul", 1, import_matmul},
    {"", "Gemm", 1, import_gemm},
    {"", "BatchNormalization", 1, import_batchnorm},
    {"", "InstanceNormalization", 1, import_instancenorm},
    {"", "LayerNormalization", 17, import_layernorm},
    {"", "GroupNormalization", 18, import_groupnorm},
    {"", "RMSNormalization", 23, import_rmsnorm},
    {"", "LpNormalization", 1, import_lpnorm},
    {"", "MeanVarianceNormalization", 9, import_mvn},
    {"", "Softmax", 1, import_softmax},
    {"", "LogSoftmax", 1, import_softmax},
    {"", "Hardmax", 1, import_hardmax},
    {"", "LRN", 1, import_lrn},
    {NULL, NULL, 0, NULL},
};
