/* ONNX importer for the attention family: Attention (opsets 23, 24) decomposed into layers as
 * its function body is (matmuls, softmax, an additive bias built from the mask, causality and
 * the kv padding), the helpers the family's files share, and the family's op table. */
#include "onnx/import_attention.h"

#include "cpu/cpu.h"
#include "network/tensor_layers.h"

#include <math.h>
#include <string.h>

/* ---------------------------------------------------------------- shared helpers */

kiln_tensor *kiln__att_shuffle(kiln__onnx_ctx *ctx, const kiln__onnx_node *node, kiln_tensor *x, const int32_t *perm,
                               const int64_t *dims, int32_t n, kiln_status *st) {
    kiln__shuffle_params p;
    memset(&p, 0, sizeof p);
    if (perm) {
        p.has_first_perm = 1;
        memcpy(p.first_perm, perm, (size_t)x->dims.nb_dims * sizeof *perm);
    }
    if (n >= 0) {
        p.has_reshape = 1;
        p.reshape.nb_dims = n;
        for (int32_t i = 0; i < n; i++) p.reshape.d[i] = dims[i];
    }
    return kiln__onnx_add1(ctx, node, KILN_LAYER_SHUFFLE, &x, 1, &p, sizeof p, st);
}

kiln_tensor *kiln__att_matmul(kiln__onnx_ctx *ctx, const kiln__onnx_node *node, kiln_tensor *a, kiln_tensor *b,
                              bool trans_b, float alpha, kiln_status *st) {
    kiln__matmul_params p = {.op_a = KILN_MATRIX_NONE, .op_b = trans_b ? KILN_MATRIX_TRANSPOSE : KILN_MATRIX_NONE,
                             .alpha = alpha, .beta = 0, .act = {.kind = -1}};
    kiln_tensor *in[2] = {a, b};
    return kiln__onnx_add1(ctx, node, KILN_LAYER_MATMUL, in, 2, &p, sizeof p, st);
}

kiln_tensor *kiln__att_softmax_last(kiln__onnx_ctx *ctx, const kiln__onnx_node *node, kiln_tensor *x,
                                    kiln_status *st) {
    kiln__softmax_params p = {.axis = x->dims.nb_dims - 1};
    return kiln__onnx_add1(ctx, node, KILN_LAYER_SOFTMAX, &x, 1, &p, sizeof p, st);
}

kiln_tensor *kiln__att_concat(kiln__onnx_ctx *ctx, const kiln__onnx_node *node, kiln_tensor *a, kiln_tensor *b,
                              int32_t axis, kiln_status *st) {
    kiln__concat_params p = {.axis = axis};
    kiln_tensor *in[2] = {a, b};
    return kiln__onnx_add1(ctx, node, KILN_LAYER_CONCAT, in, 2, &p, sizeof p, st);
}

kiln_tensor *kiln__att_slice(kiln__onnx_ctx *ctx, const kiln__onnx_node *node, kiln_tensor *x, int32_t axis,
                             int64_t start, int64_t end, int64_t step, kiln_status *st) {
    kiln__slice_params p;
    memset(&p, 0, sizeof p);
    p.nb_axes = 1;
    p.axes[0] = axis;
    p.starts[0] = start;
    p.ends[0] = end;
    p.steps[0] = step;
    return kiln__onnx_add1(ctx, node, KILN_LAYER_SLICE, &x, 1, &p, sizeof p, st);
}

kiln_status kiln__att_attr_float_opt(const kiln__onnx_node *node, const char *name, float *out, bool *present) {
    *present = kiln__onnx_node_attr(node, name) != NULL;
    return kiln__onnx_attr_float(node, name, out);
}

kiln_tensor *kiln__att_split_heads(kiln__onnx_ctx *ctx, const kiln__onnx_node *node, kiln_tensor *x, int64_t heads,
                                   kiln_status *st) {
    int64_t dims[4] = {0, 0, heads, -1};
    kiln_tensor *r = kiln__att_shuffle(ctx, node, x, NULL, dims, 4, st);
    static const int32_t perm[4] = {0, 2, 1, 3};
    return r ? kiln__att_shuffle(ctx, node, r, perm, NULL, -1, st) : NULL;
}

/* ---------------------------------------------------------------- Attention */

typedef struct att_shapes {
    kiln_dtype t;
    int64_t hq, hkv, lq, s, d; /* -1 where unknown */
} att_shapes;

/* A constant int64 range 0..n-1 laid along `axis` of a rank-4 tensor of ones elsewhere. */
static kiln_tensor *arange4(kiln__onnx_ctx *ctx, const kiln__onnx_node *node, int64_t n, int32_t axis,
                            kiln_status *st) {
    const kiln__alloc *alloc = &kiln__onnx_network(ctx)->alloc;
    int64_t *v = kiln__malloc(alloc, (size_t)(n > 0 ? n : 1) * sizeof *v);
    if (!v) {
        *st = KILN_OUT_OF_MEMORY;
        return NULL;
    }
    for (int64_t i = 0; i < n; i++) v[i] = i;
    kiln_dims d = {.nb_dims = 4, .d = {1, 1, 1, 1}};
    d.d[axis] = n;
    kiln_tensor *t;
    *st = kiln__onnx_add_constant(ctx, node, KILN_INT64, &d, v, &t);
    kiln__free(alloc, v);
    return *st == KILN_OK ? t : NULL;
}

/* where(allowed, 0, -inf) in dtype t. */
static kiln_tensor *bias_from_bool(kiln__onnx_ctx *ctx, const kiln__onnx_node *node, kiln_tensor *allowed,
                                   kiln_dtype t, kiln_status *st) {
    kiln_tensor *zero = kiln__onnx_const_scalar(ctx, node, t, 0.0, 0, st);
    kiln_tensor *ninf = zero ? kiln__onnx_const_scalar(ctx, node, t, -INFINITY, 0, st) : NULL;
    if (!ninf) return NULL;
    kiln_tensor *in[3] = {allowed, zero, ninf};
    return kiln__onnx_add1(ctx, node, KILN_LAYER_SELECT, in, 3, NULL, 0, st);
}

static kiln_tensor *add_bias(kiln__onnx_ctx *ctx, const kiln__onnx_node *node, kiln_tensor *bias, kiln_tensor *b,
                             kiln_status *st) {
    if (!b) return NULL;
    return bias ? kiln__onnx_ew(ctx, node, KILN_EW_ADD, bias, b, st) : b;
}

/* The user mask as an additive bias in dtype t, padded with -inf to s keys. */
static kiln_tensor *mask_bias(kiln__onnx_ctx *ctx, const kiln__onnx_node *node, kiln_tensor *mask,
                              const att_shapes *sh, kiln_status *st) {
    kiln_tensor *b = mask;
    if (mask->dtype == KILN_BOOL) b = bias_from_bool(ctx, node, mask, sh->t, st);
    else if (mask->dtype != sh->t) b = kiln__onnx_cast(ctx, node, mask, sh->t, st);
    if (!b) return NULL;
    int32_t r = b->dims.nb_dims;
    int64_t w = r > 0 ? b->dims.d[r - 1] : -1;
    if (r == 0 || w < 0 || sh->s < 0) {
        *st = kiln__onnx_node_error(node, KILN_UNSUPPORTED,
                                    "attn_mask needs a known last dim and kv length (got %lld and %lld)", (long long)w,
                                    (long long)sh->s);
        return NULL;
    }
    if (w > sh->s) {
        *st = kiln__onnx_node_error(node, KILN_INVALID_ARGUMENT, "attn_mask covers %lld keys, more than the %lld there "
                                    "are", (long long)w, (long long)sh->s);
        return NULL;
    }
    if (w == sh->s) return b;
    kiln__padding_params p;
    memset(&p, 0, sizeof p);
    p.mode = KILN__PAD_CONSTANT;
    p.pads[r + r - 1] = sh->s - w;
    p.value = -INFINITY;
    return kiln__onnx_add1(ctx, node, KILN_LAYER_PADDING, &b, 1, &p, sizeof p, st);
}

/* Which keys each query may see by position: key j is visible to query i iff, with
 * p = i + offset, j <= p when causal, p - j <= left when left >= 0 and j - p <= right when
 * right >= 0 (attention-25 windows). offset is past_len for all batches, or with
 * nonpad_kv_seqlen and no past nonpad[b] - lq. */
typedef struct att_window {
    bool causal;
    int64_t left, right; /* -1: unbounded */
} att_window;

static bool window_allows(const att_window *w, int64_t p, int64_t j) {
    return (!w->causal || j <= p) && (w->left < 0 || p - j <= w->left) && (w->right < 0 || j - p <= w->right);
}

/* The runtime form over np4 = nonpad as [B, 1, 1, 1]: a [B, 1, lq, s] bias. */
static kiln_tensor *window_bias_batched(kiln__onnx_ctx *ctx, const kiln__onnx_node *node, const att_shapes *sh,
                                        const att_window *w, kiln_tensor *np4, kiln_status *st) {
    kiln_tensor *jidx = arange4(ctx, node, sh->s, 3, st);
    kiln_tensor *iidx = jidx ? arange4(ctx, node, sh->lq, 2, st) : NULL;
    kiln_tensor *lq = iidx ? kiln__onnx_const_scalar(ctx, node, KILN_INT64, (double)sh->lq, 0, st) : NULL;
    kiln_tensor *off = lq ? kiln__onnx_ew(ctx, node, KILN_EW_SUB, np4, lq, st) : NULL;
    kiln_tensor *p = off ? kiln__onnx_ew(ctx, node, KILN_EW_ADD, iidx, off, st) : NULL;
    kiln_tensor *diff = p ? kiln__onnx_ew(ctx, node, KILN_EW_SUB, p, jidx, st) : NULL; /* p - j */
    if (!diff) return NULL;
    /* Each bound as diff OP limit, ANDed together. */
    kiln_elementwise_op ops[3] = {KILN_EW_GREATER_EQUAL, KILN_EW_LESS_EQUAL, KILN_EW_GREATER_EQUAL};
    bool on[3] = {w->causal, w->left >= 0, w->right >= 0};
    double limit[3] = {0.0, (double)w->left, -(double)w->right};
    kiln_tensor *ok = NULL;
    for (int i = 0; i < 3; i++) {
        if (!on[i]) continue;
        kiln_tensor *c = kiln__onnx_const_scalar(ctx, node, KILN_INT64, limit[i], 0, st);
        kiln_tensor *cond = c ? kiln__onnx_ew(ctx, node, ops[i], diff, c, st) : NULL;
        ok = !cond ? NULL : ok ? kiln__onnx_ew(ctx, node, KILN_EW_AND, ok, cond, st) : cond;
        if (!ok) return NULL;
    }
    return bias_from_bool(ctx, node, ok, sh->t, st);
}

static kiln_tensor *window_bias(kiln__onnx_ctx *ctx, const kiln__onnx_node *node, const att_shapes *sh,
                                const att_window *w, int64_t past_len, kiln_tensor *np4, kiln_status *st) {
    if (sh->lq < 0 || sh->s < 0 || past_len < 0) {
        *st = kiln__onnx_node_error(node, KILN_UNSUPPORTED, "is_causal and windows need the query, key and past "
                                    "lengths known at build time");
        return NULL;
    }
    if (np4) return window_bias_batched(ctx, node, sh, w, np4, st);
    const kiln__alloc *alloc = &kiln__onnx_network(ctx)->alloc;
    size_t bytes;
    if (!kiln__dtype_bytes(sh->t, sh->lq * sh->s, &bytes)) {
        *st = kiln__onnx_node_error(node, KILN_UNSUPPORTED, "no mask of dtype %s", kiln_dtype_name(sh->t));
        return NULL;
    }
    void *buf = kiln__malloc(alloc, bytes ? bytes : 1);
    if (!buf) {
        *st = KILN_OUT_OF_MEMORY;
        return NULL;
    }
    for (int64_t i = 0; i < sh->lq; i++)
        for (int64_t j = 0; j < sh->s; j++)
            kiln__store_f64(buf, sh->t, i * sh->s + j, window_allows(w, i + past_len, j) ? 0.0 : -INFINITY);
    kiln_dims d = {.nb_dims = 2, .d = {sh->lq, sh->s}};
    kiln_tensor *t;
    *st = kiln__onnx_add_constant(ctx, node, sh->t, &d, buf, &t);
    kiln__free(alloc, buf);
    return *st == KILN_OK ? t : NULL;
}

/* Keys at or past nonpad_kv_seqlen[b] get -inf: a [B, 1, 1, s] bias. */
static kiln_tensor *padding_bias(kiln__onnx_ctx *ctx, const kiln__onnx_node *node, const att_shapes *sh,
                                 kiln_tensor *nonpad, kiln_status *st) {
    if (sh->s < 0) {
        *st = kiln__onnx_node_error(node, KILN_UNSUPPORTED, "nonpad_kv_seqlen needs the kv length known at build time");
        return NULL;
    }
    kiln_tensor *jidx = arange4(ctx, node, sh->s, 3, st);
    kiln_tensor *ok = jidx ? kiln__onnx_ew(ctx, node, KILN_EW_LESS, jidx, nonpad, st) : NULL;
    return ok ? bias_from_bool(ctx, node, ok, sh->t, st) : NULL;
}

/* The additive bias of the mask, causality, windows and kv padding; NULL with *st == KILN_OK
 * when none. */
static kiln_tensor *attention_bias(kiln__onnx_ctx *ctx, const kiln__onnx_node *node, const att_shapes *sh,
                                   kiln_tensor *mask, const att_window *w, int64_t past_len, kiln_tensor *nonpad,
                                   kiln_status *st) {
    kiln_tensor *bias = NULL;
    *st = KILN_OK;
    if (mask && !(bias = mask_bias(ctx, node, mask, sh, st))) return NULL;
    kiln_tensor *np4 = NULL;
    if (nonpad) {
        /* [B] -> [B, 1, 1, 1] int64, to broadcast against the index ranges. */
        kiln_tensor *n64 = nonpad->dtype == KILN_INT64 ? nonpad : kiln__onnx_cast(ctx, node, nonpad, KILN_INT64, st);
        int64_t dims[4] = {-1, 1, 1, 1};
        np4 = n64 ? kiln__att_shuffle(ctx, node, n64, NULL, dims, 4, st) : NULL;
        if (!np4) return NULL;
    }
    if (w->causal || w->left >= 0 || w->right >= 0) {
        bias = add_bias(ctx, node, bias, window_bias(ctx, node, sh, w, past_len, np4, st), st);
        if (!bias) return NULL;
    }
    if (np4) bias = add_bias(ctx, node, bias, padding_bias(ctx, node, sh, np4, st), st);
    return bias;
}

/* [B, H, L, X] <-> [B, hkv, H/hkv, L, X] around the matmuls of grouped-query attention, so
 * that each kv head serves its group by broadcasting instead of being repeated. */
static kiln_tensor *group_heads(kiln__onnx_ctx *ctx, const kiln__onnx_node *node, kiln_tensor *x, int64_t hkv,
                                int64_t rep, kiln_status *st) {
    int64_t dims[5] = {0, hkv, rep, x->dims.d[2], x->dims.d[3]};
    return kiln__att_shuffle(ctx, node, x, NULL, dims, 5, st);
}

static kiln_tensor *ungroup_heads(kiln__onnx_ctx *ctx, const kiln__onnx_node *node, kiln_tensor *x, int64_t hq,
                                  kiln_status *st) {
    int64_t dims[4] = {0, hq, x->dims.d[3], x->dims.d[4]};
    return kiln__att_shuffle(ctx, node, x, NULL, dims, 4, st);
}

kiln_tensor *kiln__att_head_matmul(kiln__onnx_ctx *ctx, const kiln__onnx_node *node, kiln_tensor *a, kiln_tensor *b,
                                   bool trans_b, float alpha, int64_t hq, int64_t hkv, kiln_status *st) {
    if (hq == hkv) return kiln__att_matmul(ctx, node, a, b, trans_b, alpha, st);
    kiln_tensor *a5 = group_heads(ctx, node, a, hkv, hq / hkv, st);
    kiln_tensor *b5 = a5 ? group_heads(ctx, node, b, hkv, 1, st) : NULL;
    kiln_tensor *y5 = b5 ? kiln__att_matmul(ctx, node, a5, b5, trans_b, alpha, st) : NULL;
    return y5 ? ungroup_heads(ctx, node, y5, hq, st) : NULL;
}

typedef struct att_attrs {
    int64_t causal, q_heads, kv_heads, mode, precision, left, right;
    bool has_scale, has_precision;
    float scale, softcap;
} att_attrs;

static kiln_status read_attention_attrs(const kiln__onnx_node *node, att_attrs *a) {
    memset(a, 0, sizeof *a);
    a->left = a->right = -1;
    KILN__TRY(kiln__onnx_attr_int(node, "left_window_size", &a->left));
    KILN__TRY(kiln__onnx_attr_int(node, "right_window_size", &a->right));
    if (a->left < -1 || a->right < -1)
        return kiln__onnx_node_error(node, KILN_INVALID_ARGUMENT,
                                     "left_window_size %lld and right_window_size %lld must be -1 or >= 0",
                                     (long long)a->left, (long long)a->right);
    KILN__TRY(kiln__onnx_attr_int(node, "is_causal", &a->causal));
    KILN__TRY(kiln__onnx_attr_int(node, "q_num_heads", &a->q_heads));
    KILN__TRY(kiln__onnx_attr_int(node, "kv_num_heads", &a->kv_heads));
    KILN__TRY(kiln__onnx_attr_int(node, "qk_matmul_output_mode", &a->mode));
    a->has_precision = kiln__onnx_node_attr(node, "softmax_precision") != NULL;
    KILN__TRY(kiln__onnx_attr_int(node, "softmax_precision", &a->precision));
    KILN__TRY(kiln__att_attr_float_opt(node, "scale", &a->scale, &a->has_scale));
    KILN__TRY(kiln__onnx_attr_float(node, "softcap", &a->softcap));
    if (a->mode < 0 || a->mode > 3)
        return kiln__onnx_node_error(node, KILN_INVALID_ARGUMENT, "qk_matmul_output_mode is %lld, expected 0 to 3",
                                     (long long)a->mode);
    if (a->has_precision && !kiln__dtype_is_float((kiln_dtype)a->precision))
        return kiln__onnx_node_error(node, KILN_INVALID_ARGUMENT, "softmax_precision %lld is not a float type",
                                     (long long)a->precision);
    if (!isfinite(a->softcap) || a->softcap < 0)
        return kiln__onnx_node_error(node, KILN_INVALID_ARGUMENT, "softcap %g must be finite and >= 0",
                                     (double)a->softcap);
    return KILN_OK;
}

/* Q, K, V as [B, H, L, D]: 3-D inputs are split into heads. */
static kiln_status attention_heads(kiln__onnx_ctx *ctx, const kiln__onnx_node *node, const att_attrs *a,
                                   kiln_tensor **qkv) {
    const char *names[3] = {"Q", "K", "V"};
    int32_t rank = qkv[0]->dims.nb_dims;
    for (int32_t i = 0; i < 3; i++)
        if (qkv[i]->dims.nb_dims != rank || (rank != 3 && rank != 4))
            return kiln__onnx_node_error(node, KILN_INVALID_ARGUMENT, "input %s has rank %d, expected 3 or 4 (as Q)",
                                         names[i], qkv[i]->dims.nb_dims);
    if (rank == 4) return KILN_OK;
    if (a->q_heads < 1 || a->kv_heads < 1)
        return kiln__onnx_node_error(node, KILN_INVALID_ARGUMENT,
                                     "3-D inputs need q_num_heads and kv_num_heads >= 1 (got %lld and %lld)",
                                     (long long)a->q_heads, (long long)a->kv_heads);
    kiln_status st = KILN_OK;
    for (int32_t i = 0; i < 3 && st == KILN_OK; i++) {
        int64_t h = i == 0 ? a->q_heads : a->kv_heads, w = qkv[i]->dims.d[2];
        if (w >= 0 && w % h != 0)
            return kiln__onnx_node_error(node, KILN_INVALID_ARGUMENT, "input %s has width %lld, not a multiple of %lld "
                                         "heads", names[i], (long long)w, (long long)h);
        qkv[i] = kiln__att_split_heads(ctx, node, qkv[i], h, &st);
    }
    return st;
}

static kiln_status import_attention(kiln__onnx_ctx *ctx, const kiln__onnx_node *node) {
    kiln_status st = KILN_OK;
    kiln_tensor *qkv[3];
    const char *names[3] = {"Q", "K", "V"};
    for (int32_t i = 0; i < 3; i++)
        if (!(qkv[i] = kiln__onnx_in_required(ctx, node, i, names[i], &st))) return st;
    kiln_tensor *mask = kiln__onnx_in(ctx, node, 3), *past_k = kiln__onnx_in(ctx, node, 4);
    kiln_tensor *past_v = kiln__onnx_in(ctx, node, 5), *nonpad = kiln__onnx_in(ctx, node, 6);
    att_attrs a;
    KILN__TRY(read_attention_attrs(node, &a));
    if (!past_k != !past_v)
        return kiln__onnx_node_error(node, KILN_INVALID_ARGUMENT, "past_key and past_value must come together");
    if (nonpad && past_k)
        return kiln__onnx_node_error(node, KILN_INVALID_ARGUMENT, "nonpad_kv_seqlen cannot be combined with past_key");
    int32_t rank = qkv[0]->dims.nb_dims;
    KILN__TRY(attention_heads(ctx, node, &a, qkv));
    kiln_tensor *q = qkv[0], *k = qkv[1], *v = qkv[2];
    int64_t past_len = 0;
    if (past_k) {
        past_len = past_k->dims.nb_dims == 4 ? past_k->dims.d[2] : -1;
        k = kiln__att_concat(ctx, node, past_k, k, 2, &st);
        v = k ? kiln__att_concat(ctx, node, past_v, v, 2, &st) : NULL;
        if (!v) return st;
    }
    att_shapes sh = {.t = q->dtype, .hq = q->dims.d[1], .hkv = k->dims.d[1], .lq = q->dims.d[2],
                     .s = k->dims.d[2], .d = q->dims.d[3]};
    if (sh.hq < 1 || sh.hkv < 1 || sh.hq % sh.hkv != 0)
        return kiln__onnx_node_error(node, KILN_UNSUPPORTED,
                                     "query heads (%lld) must be a known multiple of kv heads (%lld)",
                                     (long long)sh.hq, (long long)sh.hkv);
    if (!a.has_scale && sh.d < 1)
        return kiln__onnx_node_error(node, KILN_UNSUPPORTED, "the default scale needs the head size known");
    float scale = a.has_scale ? a.scale : (float)(1.0 / sqrt((double)sh.d));

    kiln_tensor *scores = kiln__att_head_matmul(ctx, node, q, k, true, scale, sh.hq, sh.hkv, &st);
    if (scores && a.softcap > 0)
        scores = kiln__onnx_act(ctx, node, KILN_ACT_SCALED_TANH, a.softcap, 1.0f / a.softcap, scores, &st);
    if (!scores) return st;
    /* Modes 0 and 1 both expose the scores after softcap, as onnx's reference does. */
    kiln_tensor *qk_out = scores;
    att_window win = {.causal = a.causal != 0, .left = a.left, .right = a.right};
    kiln_tensor *bias = attention_bias(ctx, node, &sh, mask, &win, past_len, nonpad, &st);
    if (st != KILN_OK) return st;
    kiln_tensor *x = bias ? kiln__onnx_ew(ctx, node, KILN_EW_ADD, scores, bias, &st) : scores;
    if (!x) return st;
    if (a.mode == 2) qk_out = x;
    if (a.has_precision && (kiln_dtype)a.precision != sh.t &&
        !(x = kiln__onnx_cast(ctx, node, x, (kiln_dtype)a.precision, &st)))
        return st;
    kiln_tensor *p = kiln__att_softmax_last(ctx, node, x, &st);
    if (p && bias) {
        /* Rows whose bias is all -inf see no key: their probabilities are 0, not NaN. */
        kiln__reduce_params rp = {.op = KILN_REDUCE_MAX, .axes_mask = 1u << (bias->dims.nb_dims - 1), .keep_dims = 1};
        kiln_tensor *m = kiln__onnx_add1(ctx, node, KILN_LAYER_REDUCE, &bias, 1, &rp, sizeof rp, &st);
        kiln_tensor *ninf = m ? kiln__onnx_const_scalar(ctx, node, sh.t, -INFINITY, 0, &st) : NULL;
        kiln_tensor *none = ninf ? kiln__onnx_ew(ctx, node, KILN_EW_EQUAL, m, ninf, &st) : NULL;
        kiln_tensor *zero = none ? kiln__onnx_const_scalar(ctx, node, p->dtype, 0.0, 0, &st) : NULL;
        kiln_tensor *in[3] = {none, zero, p};
        p = zero ? kiln__onnx_add1(ctx, node, KILN_LAYER_SELECT, in, 3, NULL, 0, &st) : NULL;
    }
    if (p && p->dtype != sh.t) p = kiln__onnx_cast(ctx, node, p, sh.t, &st);
    if (!p) return st;
    if (a.mode == 3) qk_out = p;
    kiln_tensor *y = kiln__att_head_matmul(ctx, node, p, v, false, 1.0f, sh.hq, sh.hkv, &st);
    if (y && rank == 3) {
        static const int32_t perm[4] = {0, 2, 1, 3};
        int64_t dims[3] = {0, 0, -1};
        y = kiln__att_shuffle(ctx, node, y, perm, dims, 3, &st);
    }
    if (!y) return st;
    KILN__TRY(kiln__onnx_out(ctx, node, 0, y));
    KILN__TRY(kiln__onnx_out(ctx, node, 1, k));
    KILN__TRY(kiln__onnx_out(ctx, node, 2, v));
    return kiln__onnx_out(ctx, node, 3, qk_out);
}

const kiln__onnx_op kiln__onnx_ops_attention[] = {
    {"", "Attention", 23, import_attention},
    {"", "RotaryEmbedding", 23, kiln__att_import_rotary},
    {"", "SwiGLU", 1, kiln__att_import_swiglu},
    {"", "CausalConvWithState", 1, kiln__att_import_causal_conv},
    {"", "LinearAttention", 1, kiln__att_import_linear},
    {"ai.onnx.preview", "FlexAttention", 1, kiln__att_import_flex},
    {NULL, NULL, 0, NULL},
};
