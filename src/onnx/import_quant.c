/* ONNX importers for quantization and the loss ops: QuantizeLinear and DequantizeLinear onto the
 * quantize/dequantize layers; DynamicQuantizeLinear, the integer and QLinear products and
 * convolutions, BitCast, NegativeLogLikelihoodLoss and SoftmaxCrossEntropyLoss decomposed
 * into existing layers as ONNX's reference computes them. */
#include "onnx/importer.h"

#include "network/bitcast.h"
#include "network/quantize.h"

#include <string.h>

/* Binds output 0 to t, or returns the error that left t NULL (read after the call that set it). */
static kiln_status out0(kiln__onnx_ctx *ctx, const kiln__onnx_node *node, kiln_tensor *t, const kiln_status *st) {
    return t ? kiln__onnx_out(ctx, node, 0, t) : *st;
}

static bool str_is(kiln__onnx_bytes b, const char *s) { return b.size == strlen(s) && memcmp(b.data, s, b.size) == 0; }

/* ---------------------------------------------------------------- chainable one-layer helpers */

/* Each passes a NULL input through as NULL (its error is already in *st), so a chain of them
 * needs one check at the end. */
static kiln_tensor *ew(kiln__onnx_ctx *ctx, const kiln__onnx_node *node, kiln_elementwise_op op, kiln_tensor *a,
                       kiln_tensor *b, kiln_status *st) {
    return a && b ? kiln__onnx_ew(ctx, node, op, a, b, st) : NULL;
}

static kiln_tensor *cast(kiln__onnx_ctx *ctx, const kiln__onnx_node *node, kiln_tensor *x, kiln_dtype to,
                         kiln_status *st) {
    if (!x) return NULL;
    return x->dtype == to ? x : kiln__onnx_cast(ctx, node, x, to, st);
}

static kiln_tensor *select3(kiln__onnx_ctx *ctx, const kiln__onnx_node *node, kiln_tensor *c, kiln_tensor *a,
                            kiln_tensor *b, kiln_status *st) {
    if (!c || !a || !b) return NULL;
    kiln_tensor *in[3] = {c, a, b};
    return kiln__onnx_add1(ctx, node, KILN_LAYER_SELECT, in, 3, NULL, 0, st);
}

static kiln_tensor *reduce_all(kiln__onnx_ctx *ctx, const kiln__onnx_node *node, kiln_reduce_op op, kiln_tensor *x,
                               kiln_status *st) {
    if (!x) return NULL;
    return kiln__onnx_reduce(ctx, node, op, x, (uint32_t)((1ull << x->dims.nb_dims) - 1), false, st);
}

/* A quantization parameter with more than one element moved to dim `at` of a tensor of rank
 * `rank` (ones elsewhere) so that it broadcasts along that dim; others stay as they are. */
static kiln_tensor *along(kiln__onnx_ctx *ctx, const kiln__onnx_node *node, kiln_tensor *v, int32_t rank, int32_t at,
                          kiln_status *st) {
    if (!v || kiln__dims_volume(&v->dims) == 1 || v->dims.nb_dims != 1 || at < 0 || at >= rank) return v;
    kiln_dims d = {.nb_dims = rank};
    for (int32_t i = 0; i < rank; i++) d.d[i] = i == at ? -1 : 1;
    return kiln__onnx_reshape(ctx, node, v, &d, st);
}

/* x / 1 quantized to `to`: rounds half to even and saturates, as the QLinear ops end. */
static kiln_tensor *requantize(kiln__onnx_ctx *ctx, const kiln__onnx_node *node, kiln_tensor *x, kiln_dtype to,
                               kiln_status *st) {
    if (!x) return NULL;
    kiln_tensor *one = kiln__onnx_const_scalar(ctx, node, x->dtype, 1.0, 0, st);
    if (!one) return NULL;
    kiln__quant_params p = {.axis = 1, .out_dtype = (int32_t)to, .saturate = 1};
    kiln_tensor *in[2] = {x, one};
    return kiln__onnx_add1(ctx, node, KILN_LAYER_QUANTIZE, in, 2, &p, sizeof p, st);
}

/* ---------------------------------------------------------------- QuantizeLinear, DequantizeLinear */

static kiln_status int32_attr(const kiln__onnx_node *node, const char *name, int64_t lo, int32_t *out) {
    int64_t v = *out;
    KILN__TRY(kiln__onnx_attr_int(node, name, &v));
    if (v < lo || v > INT32_MAX)
        return kiln__onnx_node_error(node, KILN_INVALID_ARGUMENT, "attribute '%s' is %lld, expected %lld to %d", name,
                                     (long long)v, (long long)lo, INT32_MAX);
    *out = (int32_t)v;
    return KILN_OK;
}

static kiln_status dtype_attr(const kiln__onnx_node *node, const char *name, int32_t *out) {
    KILN__TRY(int32_attr(node, name, 0, out));
    if (*out && (!kiln__dtype_valid((kiln_dtype)*out) || *out == KILN_STRING))
        return kiln__onnx_node_error(node, KILN_UNSUPPORTED, "attribute '%s' is data type %d, which kiln does not "
                                     "support here", name, *out);
    return KILN_OK;
}

static kiln_status import_quant_linear(kiln__onnx_ctx *ctx, const kiln__onnx_node *node) {
    kiln_status st = KILN_OK;
    kiln_tensor *x = kiln__onnx_in_required(ctx, node, 0, "x", &st);
    kiln_tensor *s = x ? kiln__onnx_in_required(ctx, node, 1, "scale", &st) : NULL;
    if (!s) return st;
    kiln_tensor *z = kiln__onnx_in(ctx, node, 2);
    bool quant = strcmp(node->op_type, "QuantizeLinear") == 0;
    kiln__quant_params p = {.axis = 1, .saturate = 1};
    KILN__TRY(int32_attr(node, "axis", INT32_MIN, &p.axis));
    KILN__TRY(int32_attr(node, "block_size", 0, &p.block_size));
    KILN__TRY(dtype_attr(node, "output_dtype", &p.out_dtype));
    if (quant) {
        KILN__TRY(int32_attr(node, "saturate", 0, &p.saturate));
        KILN__TRY(dtype_attr(node, "precision", &p.precision));
    }
    kiln_tensor *in[3] = {x, s, z};
    kiln_tensor *y = kiln__onnx_add1(ctx, node, quant ? KILN_LAYER_QUANTIZE : KILN_LAYER_DEQUANTIZE, in, z ? 3 : 2,
                                     &p, sizeof p, &st);
    return out0(ctx, node, y, &st);
}

/* scale = (max(0, max x) - min(0, min x)) / 255 (1/255 when that range is 0); zero point =
 * round(clip(-min / scale, 0, 255)); y = quantize(x, scale, zero point) to uint8. */
static kiln_status import_dynamic_quant(kiln__onnx_ctx *ctx, const kiln__onnx_node *node) {
    kiln_status st = KILN_OK;
    kiln_tensor *x = kiln__onnx_in_required(ctx, node, 0, "x", &st);
    if (!x) return st;
    if (x->dtype != KILN_FLOAT32)
        return kiln__onnx_node_error(node, KILN_INVALID_ARGUMENT, "input x has dtype %s, expected float32",
                                     kiln_dtype_name(x->dtype));
    kiln_tensor *zero = kiln__onnx_const_scalar(ctx, node, KILN_FLOAT32, 0, 0, &st);
    kiln_tensor *one = zero ? kiln__onnx_const_scalar(ctx, node, KILN_FLOAT32, 1, 0, &st) : NULL;
    kiln_tensor *qmax = one ? kiln__onnx_const_scalar(ctx, node, KILN_FLOAT32, 255, 0, &st) : NULL;
    if (!qmax) return st;
    kiln_tensor *hi = ew(ctx, node, KILN_EW_MAX, reduce_all(ctx, node, KILN_REDUCE_MAX, x, &st), zero, &st);
    kiln_tensor *lo = ew(ctx, node, KILN_EW_MIN, reduce_all(ctx, node, KILN_REDUCE_MIN, x, &st), zero, &st);
    kiln_tensor *range = select3(ctx, node, ew(ctx, node, KILN_EW_EQUAL, hi, lo, &st), one,
                                 ew(ctx, node, KILN_EW_SUB, hi, lo, &st), &st);
    kiln_tensor *scale = ew(ctx, node, KILN_EW_DIV, range, qmax, &st);
    kiln_tensor *zp = ew(ctx, node, KILN_EW_SUB, zero, ew(ctx, node, KILN_EW_DIV, lo, scale, &st), &st);
    zp = ew(ctx, node, KILN_EW_MIN, ew(ctx, node, KILN_EW_MAX, zp, zero, &st), qmax, &st);
    zp = zp ? kiln__onnx_unary(ctx, node, KILN_UNARY_ROUND, zp, &st) : NULL;
    zp = cast(ctx, node, zp, KILN_UINT8, &st);
    if (!zp) return st;
    kiln__quant_params p = {.axis = 1, .saturate = 1};
    kiln_tensor *in[3] = {x, scale, zp};
    kiln_tensor *y = kiln__onnx_add1(ctx, node, KILN_LAYER_QUANTIZE, in, 3, &p, sizeof p, &st);
    if (!y) return st;
    KILN__TRY(kiln__onnx_out(ctx, node, 0, y));
    KILN__TRY(kiln__onnx_out(ctx, node, 1, scale));
    return kiln__onnx_out(ctx, node, 2, zp);
}

/* ---------------------------------------------------------------- integer products */

/* x - zero point in dtype `to` (x alone without a zero point). */
static kiln_tensor *centered(kiln__onnx_ctx *ctx, const kiln__onnx_node *node, kiln_tensor *x, kiln_tensor *zp,
                             kiln_dtype to, kiln_status *st) {
    kiln_tensor *xc = cast(ctx, node, x, to, st);
    return zp ? ew(ctx, node, KILN_EW_SUB, xc, cast(ctx, node, zp, to, st), st) : xc;
}

static kiln_tensor *int_matmul(kiln__onnx_ctx *ctx, const kiln__onnx_node *node, kiln_tensor *a, kiln_tensor *a_zp,
                               kiln_tensor *b, kiln_tensor *b_zp, kiln_status *st) {
    /* a's zero point may be per row ([M]); b's per column ([N]) broadcasts as it is. */
    kiln_tensor *ac = centered(ctx, node, a, along(ctx, node, a_zp, 2, 0, st), KILN_INT32, st);
    kiln_tensor *bc = centered(ctx, node, b, b_zp, KILN_INT32, st);
    if (!ac || !bc) return NULL;
    kiln__matmul_params p = {.alpha = 1, .beta = 1, .act = {.kind = -1}};
    kiln_tensor *in[2] = {ac, bc};
    return kiln__onnx_add1(ctx, node, KILN_LAYER_MATMUL, in, 2, &p, sizeof p, st);
}

static kiln_status import_matmul_integer(kiln__onnx_ctx *ctx, const kiln__onnx_node *node) {
    kiln_status st = KILN_OK;
    kiln_tensor *a = kiln__onnx_in_required(ctx, node, 0, "A", &st);
    kiln_tensor *b = a ? kiln__onnx_in_required(ctx, node, 1, "B", &st) : NULL;
    if (!b) return st;
    kiln_tensor *y = int_matmul(ctx, node, a, kiln__onnx_in(ctx, node, 2), b, kiln__onnx_in(ctx, node, 3), &st);
    return out0(ctx, node, y, &st);
}

/* y = quantize(int_matmul(a, b) * (a_scale * b_scale / y_scale) + y_zero_point), the product
 * and sum in float64 as numpy promotes them. */
static kiln_status import_qlinear_matmul(kiln__onnx_ctx *ctx, const kiln__onnx_node *node) {
    kiln_status st = KILN_OK;
    static const char *const names[8] = {"a", "a_scale", "a_zero_point", "b", "b_scale", "b_zero_point", "y_scale",
                                         "y_zero_point"};
    kiln_tensor *in[8];
    for (int32_t i = 0; i < 8; i++) {
        bool zp = i == 2 || i == 5 || i == 7;
        in[i] = zp ? kiln__onnx_in(ctx, node, i) : kiln__onnx_in_required(ctx, node, i, names[i], &st);
        if (!zp && !in[i]) return st;
    }
    kiln_tensor *acc = int_matmul(ctx, node, in[0], in[2], in[3], in[5], &st);
    int32_t rank = acc ? acc->dims.nb_dims : 0;
    /* a's and y's parameters may be per row, b's per column. */
    kiln_tensor *m = ew(ctx, node, KILN_EW_MUL, along(ctx, node, in[1], rank, rank - 2, &st), in[4], &st);
    m = ew(ctx, node, KILN_EW_DIV, m, along(ctx, node, in[6], rank, rank - 2, &st), &st);
    kiln_tensor *d = ew(ctx, node, KILN_EW_MUL, cast(ctx, node, acc, KILN_FLOAT64, &st),
                        cast(ctx, node, m, KILN_FLOAT64, &st), &st);
    if (in[7])
        d = ew(ctx, node, KILN_EW_ADD, d,
               cast(ctx, node, along(ctx, node, in[7], rank, rank - 2, &st), KILN_FLOAT64, &st), &st);
    return out0(ctx, node, requantize(ctx, node, d, in[7] ? in[7]->dtype : in[0]->dtype, &st), &st);
}

/* ---------------------------------------------------------------- integer convolutions */

static kiln_status ints_n(const kiln__onnx_node *node, const char *name, int32_t n, int64_t *out) {
    const int64_t *v = NULL;
    int64_t count = -1;
    KILN__TRY(kiln__onnx_attr_ints(node, name, &v, &count));
    if (count < 0) return KILN_OK;
    if (count != n)
        return kiln__onnx_node_error(node, KILN_INVALID_ARGUMENT, "attribute '%s' has %lld values, expected %d", name,
                                     (long long)count, n);
    memcpy(out, v, sizeof(int64_t) * (size_t)n);
    return KILN_OK;
}

/* Conv's attributes (the kernel shape comes from W when absent). */
static kiln_status conv_params(const kiln__onnx_node *node, const kiln_tensor *x, const kiln_tensor *w,
                               kiln__conv_params *p) {
    memset(p, 0, sizeof *p);
    p->nb_spatial = x->dims.nb_dims - 2;
    if (p->nb_spatial < 1 || p->nb_spatial > 3)
        return kiln__onnx_node_error(node, KILN_UNSUPPORTED, "input x has rank %d; kiln supports 1 to 3 spatial dims",
                                     x->dims.nb_dims);
    int32_t ns = p->nb_spatial;
    for (int32_t i = 0; i < 3; i++) p->stride[i] = p->dilation[i] = 1;
    KILN__TRY(ints_n(node, "kernel_shape", ns, p->kernel));
    KILN__TRY(ints_n(node, "strides", ns, p->stride));
    KILN__TRY(ints_n(node, "dilations", ns, p->dilation));
    int64_t pads[6] = {0};
    KILN__TRY(ints_n(node, "pads", 2 * ns, pads));
    memcpy(p->pad_begin, pads, sizeof(int64_t) * (size_t)ns);
    memcpy(p->pad_end, pads + ns, sizeof(int64_t) * (size_t)ns);
    kiln__onnx_bytes ap = {(const uint8_t *)"NOTSET", 6};
    KILN__TRY(kiln__onnx_attr_string(node, "auto_pad", &ap));
    if (str_is(ap, "NOTSET") || ap.size == 0) p->auto_pad = KILN__PAD_EXPLICIT;
    else if (str_is(ap, "SAME_UPPER")) p->auto_pad = KILN__PAD_SAME_UPPER;
    else if (str_is(ap, "SAME_LOWER")) p->auto_pad = KILN__PAD_SAME_LOWER;
    else if (str_is(ap, "VALID")) p->auto_pad = KILN__PAD_VALID;
    else
        return kiln__onnx_node_error(node, KILN_INVALID_ARGUMENT, "auto_pad '%.*s' is not one of NOTSET, SAME_UPPER, "
                                     "SAME_LOWER, VALID", (int)ap.size, (const char *)ap.data);
    p->groups = 1;
    KILN__TRY(int32_attr(node, "group", 1, &p->groups));
    int64_t cout = w->dims.nb_dims > 0 && w->dims.d[0] >= 0 ? w->dims.d[0] : 0;
    p->nb_output_maps = cout > INT32_MAX ? 0 : (int32_t)cout;
    p->act.kind = -1;
    return KILN_OK;
}

/* conv(x - x_zp, w - w_zp) + bias in float64, exact for 8-bit operands. w's zero point may be
 * per output channel. */
static kiln_tensor *int_conv(kiln__onnx_ctx *ctx, const kiln__onnx_node *node, kiln_tensor *x, kiln_tensor *x_zp,
                             kiln_tensor *w, kiln_tensor *w_zp, kiln_tensor *bias, kiln_status *st) {
    kiln__conv_params p;
    *st = conv_params(node, x, w, &p);
    if (*st != KILN_OK) return NULL;
    kiln_tensor *in[3] = {centered(ctx, node, x, x_zp, KILN_FLOAT64, st),
                          centered(ctx, node, w, along(ctx, node, w_zp, w->dims.nb_dims, 0, st), KILN_FLOAT64, st),
                          bias ? cast(ctx, node, bias, KILN_FLOAT64, st) : NULL};
    if (!in[0] || !in[1] || (bias && !in[2])) return NULL;
    return kiln__onnx_add1(ctx, node, KILN_LAYER_CONVOLUTION, in, bias ? 3 : 2, &p, sizeof p, st);
}

static kiln_status import_conv_integer(kiln__onnx_ctx *ctx, const kiln__onnx_node *node) {
    kiln_status st = KILN_OK;
    kiln_tensor *x = kiln__onnx_in_required(ctx, node, 0, "x", &st);
    kiln_tensor *w = x ? kiln__onnx_in_required(ctx, node, 1, "w", &st) : NULL;
    if (!w) return st;
    kiln_tensor *y = int_conv(ctx, node, x, kiln__onnx_in(ctx, node, 2), w, kiln__onnx_in(ctx, node, 3), NULL, &st);
    return out0(ctx, node, cast(ctx, node, y, KILN_INT32, &st), &st);
}

/* y = quantize(int_conv(x, w) * (x_scale * w_scale / y_scale) + y_zero_point); w_scale may be
 * per output channel. */
static kiln_status import_qlinear_conv(kiln__onnx_ctx *ctx, const kiln__onnx_node *node) {
    kiln_status st = KILN_OK;
    static const char *const names[8] = {"x", "x_scale", "x_zero_point", "w", "w_scale", "w_zero_point", "y_scale",
                                         "y_zero_point"};
    kiln_tensor *in[9];
    for (int32_t i = 0; i < 9; i++) {
        bool optional = i == 2 || i == 5 || i == 7 || i == 8;
        in[i] = optional ? kiln__onnx_in(ctx, node, i) : kiln__onnx_in_required(ctx, node, i, names[i], &st);
        if (!optional && !in[i]) return st;
    }
    kiln_tensor *acc = int_conv(ctx, node, in[0], in[2], in[3], in[5], in[8], &st);
    int32_t rank = in[0]->dims.nb_dims;
    kiln_tensor *m = ew(ctx, node, KILN_EW_MUL, in[1], along(ctx, node, in[4], rank - 1, 0, &st), &st);
    m = ew(ctx, node, KILN_EW_DIV, m, in[6], &st);
    kiln_tensor *d = ew(ctx, node, KILN_EW_MUL, acc, cast(ctx, node, m, KILN_FLOAT64, &st), &st);
    if (in[7]) d = ew(ctx, node, KILN_EW_ADD, d, cast(ctx, node, in[7], KILN_FLOAT64, &st), &st);
    return out0(ctx, node, requantize(ctx, node, d, in[7] ? in[7]->dtype : in[0]->dtype, &st), &st);
}

/* ---------------------------------------------------------------- BitCast */

static kiln_status import_bitcast(kiln__onnx_ctx *ctx, const kiln__onnx_node *node) {
    kiln_status st = KILN_OK;
    kiln_tensor *x = kiln__onnx_in_required(ctx, node, 0, "input", &st);
    if (!x) return st;
    if (!kiln__onnx_node_attr(node, "to"))
        return kiln__onnx_node_error(node, KILN_INVALID_ARGUMENT, "attribute 'to' is required");
    kiln__bitcast_params p = {0};
    KILN__TRY(dtype_attr(node, "to", &p.to));
    return out0(ctx, node, kiln__onnx_add1(ctx, node, KILN_LAYER_BITCAST, &x, 1, &p, sizeof p, &st), &st);
}

/* ---------------------------------------------------------------- losses */

typedef enum loss_reduction { LOSS_NONE, LOSS_SUM, LOSS_MEAN } loss_reduction;

/* loss[n, d...] = -logp[n, t, d...] * weight[t] with t = target[n, d...], 0 where t is the
 * ignore index; then summed, or averaged over the weights of the targets not ignored. */
static kiln_tensor *nll(kiln__onnx_ctx *ctx, const kiln__onnx_node *node, kiln_tensor *logp, kiln_status *st) {
    kiln_tensor *target = kiln__onnx_in_required(ctx, node, 1, "target", st);
    if (!target) return NULL;
    kiln_tensor *weight = kiln__onnx_in(ctx, node, 2);
    int32_t r = logp->dims.nb_dims;
    if (r < 2 || target->dims.nb_dims != r - 1) {
        *st = kiln__onnx_node_error(node, KILN_INVALID_ARGUMENT, "input and target have ranks %d and %d, expected "
                                    "[N, C, d...] and [N, d...]", r, target->dims.nb_dims);
        return NULL;
    }
    if (target->dtype != KILN_INT32 && target->dtype != KILN_INT64) {
        *st = kiln__onnx_node_error(node, KILN_INVALID_ARGUMENT, "target has dtype %s, expected int32 or int64",
                                    kiln_dtype_name(target->dtype));
        return NULL;
    }
    kiln__onnx_bytes red = {(const uint8_t *)"mean", 4};
    *st = kiln__onnx_attr_string(node, "reduction", &red);
    if (*st != KILN_OK) return NULL;
    loss_reduction mode = str_is(red, "none") ? LOSS_NONE : str_is(red, "sum") ? LOSS_SUM : LOSS_MEAN;
    if (mode == LOSS_MEAN && !str_is(red, "mean")) {
        *st = kiln__onnx_node_error(node, KILN_INVALID_ARGUMENT, "reduction '%.*s' is not one of none, sum, mean",
                                    (int)red.size, (const char *)red.data);
        return NULL;
    }
    bool has_ii = kiln__onnx_node_attr(node, "ignore_index") != NULL;
    int64_t ii = 0;
    *st = kiln__onnx_attr_int(node, "ignore_index", &ii);
    if (*st != KILN_OK) return NULL;

    kiln_tensor *ignored = NULL, *zero_x = NULL, *t = target;
    if (has_ii) {
        /* Ignored targets read class 0 so the gathers stay in range; their loss is set to 0. */
        kiln_tensor *zero_t = kiln__onnx_const_scalar(ctx, node, target->dtype, 0, 0, st);
        ignored = ew(ctx, node, KILN_EW_EQUAL, target,
                     zero_t ? kiln__onnx_const_scalar(ctx, node, target->dtype, (double)ii, 0, st) : NULL, st);
        t = select3(ctx, node, ignored, zero_t, target, st);
        zero_x = t ? kiln__onnx_const_scalar(ctx, node, logp->dtype, 0, 0, st) : NULL;
        if (!zero_x) return NULL;
    }
    /* Target as [N, 1, d...]: append a 1, then move it to dim 1. */
    kiln__shuffle_params sp = {.has_reshape = 1, .has_second_perm = 1};
    sp.reshape.nb_dims = r;
    sp.reshape.d[r - 1] = 1;
    sp.second_perm[0] = 0;
    sp.second_perm[1] = r - 1;
    for (int32_t i = 2; i < r; i++) sp.second_perm[i] = i - 1;
    kiln_tensor *tu = kiln__onnx_add1(ctx, node, KILN_LAYER_SHUFFLE, &t, 1, &sp, sizeof sp, st);
    if (!tu) return NULL;
    kiln__gather_params gp = {.mode = KILN_GATHER_ELEMENTS, .axis = 1};
    kiln_tensor *gin[2] = {logp, tu};
    kiln_tensor *g = kiln__onnx_add1(ctx, node, KILN_LAYER_GATHER, gin, 2, &gp, sizeof gp, st);
    g = g ? kiln__onnx_reduce(ctx, node, KILN_REDUCE_SUM, g, 2u, false, st) : NULL; /* drop dim 1 */
    kiln_tensor *loss = g ? kiln__onnx_unary(ctx, node, KILN_UNARY_NEG, g, st) : NULL;
    if (!loss) return NULL;
    kiln_tensor *w = NULL;
    if (weight) {
        kiln__gather_params wp = {.mode = KILN_GATHER_DEFAULT, .axis = 0};
        kiln_tensor *win[2] = {weight, t};
        w = kiln__onnx_add1(ctx, node, KILN_LAYER_GATHER, win, 2, &wp, sizeof wp, st);
        if (has_ii) w = select3(ctx, node, ignored, zero_x, w, st);
    } else if (has_ii) {
        w = select3(ctx, node, ignored, zero_x, kiln__onnx_const_scalar(ctx, node, logp->dtype, 1, 0, st), st);
    }
    if (weight || has_ii) {
        loss = ew(ctx, node, KILN_EW_MUL, loss, w, st);
        /* Exactly 0 where ignored, even when the gathered log-probability is infinite. */
        if (has_ii) loss = select3(ctx, node, ignored, zero_x, loss, st);
    }
    switch (mode) {
    case LOSS_NONE: return loss;
    case LOSS_SUM: return reduce_all(ctx, node, KILN_REDUCE_SUM, loss, st);
    default:
        if (!w) return reduce_all(ctx, node, KILN_REDUCE_MEAN, loss, st);
        return ew(ctx, node, KILN_EW_DIV, reduce_all(ctx, node, KILN_REDUCE_SUM, loss, st),
                  reduce_all(ctx, node, KILN_REDUCE_SUM, w, st), st);
    }
}

static kiln_status import_nll_loss(kiln__onnx_ctx *ctx, const kiln__onnx_node *node) {
    kiln_status st = KILN_OK;
    kiln_tensor *x = kiln__onnx_in_required(ctx, node, 0, "input", &st);
    if (!x) return st;
    return out0(ctx, node, nll(ctx, node, x, &st), &st);
}

static kiln_status import_sce_loss(kiln__onnx_ctx *ctx, const kiln__onnx_node *node) {
    kiln_status st = KILN_OK;
    kiln_tensor *x = kiln__onnx_in_required(ctx, node, 0, "scores", &st);
    if (!x) return st;
    if (x->dims.nb_dims < 2)
        return kiln__onnx_node_error(node, KILN_INVALID_ARGUMENT, "scores have rank %d, expected [N, C, d...]",
                                     x->dims.nb_dims);
    kiln__softmax_params sp = {.axis = 1, .log = 1};
    kiln_tensor *logp = kiln__onnx_add1(ctx, node, KILN_LAYER_SOFTMAX, &x, 1, &sp, sizeof sp, &st);
    if (!logp) return st;
    KILN__TRY(out0(ctx, node, nll(ctx, node, logp, &st), &st));
    return kiln__onnx_out(ctx, node, 1, logp);
}

const kiln__onnx_op kiln__onnx_ops_quant[] = {
    {"", "QuantizeLinear", 10, import_quant_linear},
    {"", "DequantizeLinear", 10, import_quant_linear},
    {"", "DynamicQuantizeLinear", 11, import_dynamic_quant},
    {"", "MatMulInteger", 10, import_matmul_integer},
    {"", "QLinearMatMul", 10, import_qlinear_matmul},
    {"", "ConvInteger", 10, import_conv_integer},
    {"", "QLinearConv", 10, import_qlinear_conv},
    {"", "BitCast", 26, import_bitcast},
    {"", "NegativeLogLikelihoodLoss", 12, import_nll_loss},
    {"", "SoftmaxCrossEntropyLoss", 12, import_sce_loss},
    {NULL, NULL, 0, NULL},
};
