/* ONNX importers for the attention family's building blocks: RotaryEmbedding and SwiGLU
 * (decomposed into slices, products and concats), CausalConvWithState (a depthwise causal
 * convolution over the past state and the input) and LinearAttention (its own layer: the
 * recurrence has no decomposition into kiln's other layers short of unrolling time). */
#include "onnx/import_attention.h"

#include "network/linear_attention.h"
#include "network/tensor_layers.h"

#include <math.h>
#include <string.h>

static bool str_is(kiln__onnx_bytes b, const char *s) { return b.size == strlen(s) && memcmp(b.data, s, b.size) == 0; }

/* ---------------------------------------------------------------- RotaryEmbedding */

/* cos or sin for each (batch, position) as [B, S, half], taken at position_ids when given. */
static kiln_tensor *rope_table(kiln__onnx_ctx *ctx, const kiln__onnx_node *node, kiln_tensor *cache,
                               kiln_tensor *pos, kiln_status *st) {
    if (!pos) return cache;
    kiln__gather_params p = {.mode = KILN_GATHER_DEFAULT, .axis = 0};
    kiln_tensor *in[2] = {cache, pos};
    return kiln__onnx_add1(ctx, node, KILN_LAYER_GATHER, in, 2, &p, sizeof p, st);
}

/* The rotated part of x (last dim rd): pairs (x1, x2) are halves, or even and odd entries
 * when interleaved; each becomes (cos x1 - sin x2, sin x1 + cos x2) in the same places. */
static kiln_tensor *rope_rotate(kiln__onnx_ctx *ctx, const kiln__onnx_node *node, kiln_tensor *xr, kiln_tensor *c,
                                kiln_tensor *s, int64_t rd, bool interleaved, kiln_status *st) {
    int64_t half = rd / 2;
    kiln_tensor *x1 = interleaved ? kiln__att_slice(ctx, node, xr, 3, 0, rd, 2, st)
                                  : kiln__att_slice(ctx, node, xr, 3, 0, half, 1, st);
    kiln_tensor *x2 = !x1 ? NULL
                      : interleaved ? kiln__att_slice(ctx, node, xr, 3, 1, rd, 2, st)
                                    : kiln__att_slice(ctx, node, xr, 3, half, rd, 1, st);
    kiln_tensor *a = x2 ? kiln__onnx_ew(ctx, node, KILN_EW_MUL, c, x1, st) : NULL;
    kiln_tensor *b = a ? kiln__onnx_ew(ctx, node, KILN_EW_MUL, s, x2, st) : NULL;
    kiln_tensor *real = b ? kiln__onnx_ew(ctx, node, KILN_EW_SUB, a, b, st) : NULL;
    a = real ? kiln__onnx_ew(ctx, node, KILN_EW_MUL, s, x1, st) : NULL;
    b = a ? kiln__onnx_ew(ctx, node, KILN_EW_MUL, c, x2, st) : NULL;
    kiln_tensor *imag = b ? kiln__onnx_ew(ctx, node, KILN_EW_ADD, a, b, st) : NULL;
    if (!imag) return NULL;
    if (!interleaved) return kiln__att_concat(ctx, node, real, imag, 3, st);
    int64_t d5[5] = {0, 0, 0, half, 1}, d4[4] = {0, 0, 0, rd};
    real = kiln__att_shuffle(ctx, node, real, NULL, d5, 5, st);
    imag = real ? kiln__att_shuffle(ctx, node, imag, NULL, d5, 5, st) : NULL;
    kiln_tensor *pairs = imag ? kiln__att_concat(ctx, node, real, imag, 4, st) : NULL;
    return pairs ? kiln__att_shuffle(ctx, node, pairs, NULL, d4, 4, st) : NULL;
}

kiln_status kiln__att_import_rotary(kiln__onnx_ctx *ctx, const kiln__onnx_node *node) {
    kiln_status st = KILN_OK;
    kiln_tensor *x = kiln__onnx_in_required(ctx, node, 0, "input", &st);
    kiln_tensor *cos = x ? kiln__onnx_in_required(ctx, node, 1, "cos_cache", &st) : NULL;
    kiln_tensor *sin = cos ? kiln__onnx_in_required(ctx, node, 2, "sin_cache", &st) : NULL;
    if (!sin) return st;
    kiln_tensor *pos = kiln__onnx_in(ctx, node, 3);
    int64_t interleaved = 0, rd = 0, heads = 0;
    KILN__TRY(kiln__onnx_attr_int(node, "interleaved", &interleaved));
    KILN__TRY(kiln__onnx_attr_int(node, "rotary_embedding_dim", &rd));
    KILN__TRY(kiln__onnx_attr_int(node, "num_heads", &heads));
    int32_t rank = x->dims.nb_dims;
    if (rank != 3 && rank != 4)
        return kiln__onnx_node_error(node, KILN_INVALID_ARGUMENT, "input has rank %d, expected 3 or 4", rank);
    kiln_tensor *x4 = x;
    if (rank == 3) {
        /* [B, S, H*D] -> [B, S, H, D]. */
        if (heads < 1)
            return kiln__onnx_node_error(node, KILN_INVALID_ARGUMENT, "a 3-D input needs num_heads >= 1, got %lld",
                                         (long long)heads);
        int64_t dims[4] = {0, 0, heads, -1};
        if (!(x4 = kiln__att_shuffle(ctx, node, x, NULL, dims, 4, &st))) return st;
    }
    int64_t d = x4->dims.d[3];
    if (d < 0) return kiln__onnx_node_error(node, KILN_UNSUPPORTED, "the head size must be known at build time");
    if (rd == 0) rd = d;
    if (rd < 2 || rd > d || rd % 2)
        return kiln__onnx_node_error(node, KILN_INVALID_ARGUMENT,
                                     "rotary_embedding_dim %lld must be even and within the head size %lld",
                                     (long long)rd, (long long)d);
    kiln_tensor *c = rope_table(ctx, node, cos, pos, &st);
    kiln_tensor *s = c ? rope_table(ctx, node, sin, pos, &st) : NULL;
    if (!s) return st;
    for (int32_t i = 0; i < 2; i++) {
        kiln_tensor *tab = i ? s : c;
        if (tab->dims.nb_dims != 3 || (tab->dims.d[2] >= 0 && tab->dims.d[2] != rd / 2))
            return kiln__onnx_node_error(node, KILN_INVALID_ARGUMENT,
                                         "%s table has rank %d and width %lld, expected [B, S, %lld]",
                                         i ? "sin" : "cos", tab->dims.nb_dims,
                                         (long long)(tab->dims.nb_dims ? tab->dims.d[tab->dims.nb_dims - 1] : 0),
                                         (long long)(rd / 2));
    }
    /* [B, S, half] -> [B, 1, S, half] against [B, H, S, D], or [B, S, 1, half] against [B, S, H, D]. */
    int64_t tdims[4] = {0, rank == 4 ? 1 : 0, rank == 4 ? -1 : 1, rd / 2};
    c = kiln__att_shuffle(ctx, node, c, NULL, tdims, 4, &st);
    s = c ? kiln__att_shuffle(ctx, node, s, NULL, tdims, 4, &st) : NULL;
    kiln_tensor *xr = !s ? NULL : rd < d ? kiln__att_slice(ctx, node, x4, 3, 0, rd, 1, &st) : x4;
    kiln_tensor *y = xr ? rope_rotate(ctx, node, xr, c, s, rd, interleaved != 0, &st) : NULL;
    if (y && rd < d) {
        kiln_tensor *pass = kiln__att_slice(ctx, node, x4, 3, rd, d, 1, &st);
        y = pass ? kiln__att_concat(ctx, node, y, pass, 3, &st) : NULL;
    }
    if (y && rank == 3) {
        int64_t dims[3] = {0, 0, -1};
        y = kiln__att_shuffle(ctx, node, y, NULL, dims, 3, &st);
    }
    return y ? kiln__onnx_out(ctx, node, 0, y) : st;
}

/* ---------------------------------------------------------------- SwiGLU */

kiln_status kiln__att_import_swiglu(kiln__onnx_ctx *ctx, const kiln__onnx_node *node) {
    kiln_status st = KILN_OK;
    kiln_tensor *a = kiln__onnx_in_required(ctx, node, 0, "A", &st);
    kiln_tensor *b = a ? kiln__onnx_in_required(ctx, node, 1, "B", &st) : NULL;
    if (!b) return st;
    float alpha = 1.0f;
    KILN__TRY(kiln__onnx_attr_float(node, "alpha", &alpha));
    bool same = a->dims.nb_dims == b->dims.nb_dims && a->dtype == b->dtype;
    for (int32_t i = 0; same && i < a->dims.nb_dims; i++)
        same = a->dims.d[i] < 0 || b->dims.d[i] < 0 || a->dims.d[i] == b->dims.d[i];
    if (!same)
        return kiln__onnx_node_error(node, KILN_INVALID_ARGUMENT, "inputs A and B must have one shape and dtype");
    /* swish_alpha(a) * b = a * sigmoid(alpha a) * b. */
    kiln_tensor *g;
    if (alpha == 1.0f) {
        g = kiln__onnx_act(ctx, node, KILN_ACT_SILU, 0, 0, a, &st);
    } else {
        kiln_tensor *k = kiln__onnx_const_scalar(ctx, node, a->dtype, alpha, 0, &st);
        kiln_tensor *ka = k ? kiln__onnx_ew(ctx, node, KILN_EW_MUL, a, k, &st) : NULL;
        kiln_tensor *sg = ka ? kiln__onnx_act(ctx, node, KILN_ACT_SIGMOID, 0, 0, ka, &st) : NULL;
        g = sg ? kiln__onnx_ew(ctx, node, KILN_EW_MUL, a, sg, &st) : NULL;
    }
    kiln_tensor *y = g ? kiln__onnx_ew(ctx, node, KILN_EW_MUL, g, b, &st) : NULL;
    return y ? kiln__onnx_out(ctx, node, 0, y) : st;
}

/* ---------------------------------------------------------------- CausalConvWithState */

kiln_status kiln__att_import_causal_conv(kiln__onnx_ctx *ctx, const kiln__onnx_node *node) {
    kiln_status st = KILN_OK;
    kiln_tensor *x = kiln__onnx_in_required(ctx, node, 0, "input", &st);
    kiln_tensor *w = x ? kiln__onnx_in_required(ctx, node, 1, "weight", &st) : NULL;
    if (!w) return st;
    kiln_tensor *bias = kiln__onnx_in(ctx, node, 2), *past = kiln__onnx_in(ctx, node, 3);
    kiln__onnx_bytes act = {(const uint8_t *)"none", 4};
    KILN__TRY(kiln__onnx_attr_string(node, "activation", &act));
    bool silu = str_is(act, "silu") || str_is(act, "swish");
    if (!silu && !str_is(act, "none"))
        return kiln__onnx_node_error(node, KILN_INVALID_ARGUMENT, "activation '%.*s' is not none, silu or swish",
                                     (int)act.size, (const char *)act.data);
    if (x->dims.nb_dims != 3 || w->dims.nb_dims != 3)
        return kiln__onnx_node_error(node, KILN_INVALID_ARGUMENT,
                                     "input and weight have ranks %d and %d, expected 3 ([B, C, L] and [C, 1, k])",
                                     x->dims.nb_dims, w->dims.nb_dims);
    int64_t c = x->dims.d[1], k = w->dims.d[2];
    if (c < 1 || k < 1 || c > INT32_MAX)
        return kiln__onnx_node_error(node, KILN_UNSUPPORTED, "channels (%lld) and kernel size (%lld) must be known",
                                     (long long)c, (long long)k);
    /* The past state (or zeros) goes in front of the input; the conv then runs unpadded. */
    kiln_tensor *padded = x;
    if (past) {
        padded = kiln__att_concat(ctx, node, past, x, 2, &st);
    } else if (k > 1) {
        kiln__padding_params pp;
        memset(&pp, 0, sizeof pp);
        pp.mode = KILN__PAD_CONSTANT;
        pp.pads[2] = k - 1;
        padded = kiln__onnx_add1(ctx, node, KILN_LAYER_PADDING, &x, 1, &pp, sizeof pp, &st);
    }
    if (!padded) return st;
    kiln__conv_params cp;
    memset(&cp, 0, sizeof cp);
    cp.nb_output_maps = (int32_t)c;
    cp.nb_spatial = 1;
    cp.kernel[0] = k;
    cp.stride[0] = cp.dilation[0] = 1;
    cp.groups = (int32_t)c;
    cp.act.kind = -1;
    kiln_tensor *in[3] = {padded, w, bias};
    kiln_tensor *y = kiln__onnx_add1(ctx, node, KILN_LAYER_CONVOLUTION, in, bias ? 3 : 2, &cp, sizeof cp, &st);
    if (y && silu) y = kiln__onnx_act(ctx, node, KILN_ACT_SILU, 0, 0, y, &st);
    if (!y) return st;
    KILN__TRY(kiln__onnx_out(ctx, node, 0, y));
    if (!kiln__onnx_has_out(node, 1)) return KILN_OK;
    /* The last k - 1 positions (none when k is 1: start and end both clamp to the end). */
    int64_t start = k > 1 ? -(k - 1) : INT64_MAX;
    kiln_tensor *state = kiln__att_slice(ctx, node, padded, 2, start, INT64_MAX, 1, &st);
    return state ? kiln__onnx_out(ctx, node, 1, state) : st;
}

/* ---------------------------------------------------------------- LinearAttention */

kiln_status kiln__att_import_linear(kiln__onnx_ctx *ctx, const kiln__onnx_node *node) {
    kiln_status st = KILN_OK;
    kiln_tensor *in[6] = {NULL};
    const char *names[3] = {"query", "key", "value"};
    for (int32_t i = 0; i < 3; i++)
        if (!(in[i] = kiln__onnx_in_required(ctx, node, i, names[i], &st))) return st;
    for (int32_t i = 3; i < 6; i++) in[i] = kiln__onnx_in(ctx, node, i);
    int64_t hq = 0, hkv = 0;
    float scale = 0;
    kiln__onnx_bytes rule = {(const uint8_t *)"gated_delta", 11};
    KILN__TRY(kiln__onnx_attr_int(node, "q_num_heads", &hq));
    KILN__TRY(kiln__onnx_attr_int(node, "kv_num_heads", &hkv));
    KILN__TRY(kiln__onnx_attr_float(node, "scale", &scale));
    KILN__TRY(kiln__onnx_attr_string(node, "update_rule", &rule));
    if (hq < 1 || hkv < 1 || hq > INT32_MAX || hkv > INT32_MAX)
        return kiln__onnx_node_error(node, KILN_INVALID_ARGUMENT, "q_num_heads (%lld) and kv_num_heads (%lld) must be "
                                     "given and >= 1", (long long)hq, (long long)hkv);
    kiln__linear_attention_params p = {.q_num_heads = (int32_t)hq, .kv_num_heads = (int32_t)hkv, .scale = scale};
    if (str_is(rule, "linear")) {
    } else if (str_is(rule, "gated")) {
        p.gated = 1;
    } else if (str_is(rule, "delta")) {
        p.delta = 1;
    } else if (str_is(rule, "gated_delta")) {
        p.gated = p.delta = 1;
    } else {
        return kiln__onnx_node_error(node, KILN_INVALID_ARGUMENT,
                                     "update_rule '%.*s' is not linear, gated, delta or gated_delta", (int)rule.size,
                                     (const char *)rule.data);
    }
    kiln_layer *l;
    KILN__TRY(kiln__onnx_add_layer(ctx, node, KILN_LAYER_LINEAR_ATTENTION, in, 6, 2, &p, sizeof p, &l));
    KILN__TRY(kiln__onnx_out(ctx, node, 0, l->outputs[0]));
    return kiln__onnx_out(ctx, node, 1, l->outputs[1]);
}
