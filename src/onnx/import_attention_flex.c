/* ONNX importer for FlexAttention (domain ai.onnx.preview): scaled dot-product attention whose
 * scores and probabilities pass through user graphs (score_mod, prob_mod), imported inline. */
#include "onnx/import_attention.h"

#include <math.h>
#include <string.h>

kiln_tensor *kiln__att_inline_graph(kiln__onnx_ctx *ctx, const kiln__onnx_node *node, const kiln__onnx_graph *g,
                                    const char *tag, kiln_tensor *x, kiln_status *st) {
    if (g->nb_inputs != 1 || g->nb_outputs != 1) {
        *st = kiln__onnx_node_error(node, KILN_INVALID_ARGUMENT, "graph %s has %d inputs and %d outputs, expected 1 "
                                    "and 1", tag, g->nb_inputs, g->nb_outputs);
        return NULL;
    }
    kiln__onnx_val in = {.tensor = x}, out = {0};
    *st = kiln__onnx_subgraph(ctx, node, g, tag, &in, 1, &out);
    if (*st != KILN_OK) return NULL;
    if (!out.tensor) {
        *st = kiln__onnx_node_error(node, KILN_INVALID_ARGUMENT, "graph %s gives a sequence or optional, expected a "
                                    "tensor", tag);
        return NULL;
    }
    return out.tensor;
}

/* ---------------------------------------------------------------- FlexAttention */

kiln_status kiln__att_import_flex(kiln__onnx_ctx *ctx, const kiln__onnx_node *node) {
    kiln_status st = KILN_OK;
    kiln_tensor *q = kiln__onnx_in_required(ctx, node, 0, "Q", &st);
    kiln_tensor *k = q ? kiln__onnx_in_required(ctx, node, 1, "K", &st) : NULL;
    kiln_tensor *v = k ? kiln__onnx_in_required(ctx, node, 2, "V", &st) : NULL;
    if (!v) return st;
    float scale = 0;
    bool has_scale, has_precision = kiln__onnx_node_attr(node, "softmax_precision") != NULL;
    int64_t precision = 0;
    const kiln__onnx_graph *score_mod = NULL, *prob_mod = NULL;
    KILN__TRY(kiln__att_attr_float_opt(node, "scale", &scale, &has_scale));
    KILN__TRY(kiln__onnx_attr_int(node, "softmax_precision", &precision));
    KILN__TRY(kiln__onnx_attr_graph(node, "score_mod", &score_mod));
    KILN__TRY(kiln__onnx_attr_graph(node, "prob_mod", &prob_mod));
    if (q->dims.nb_dims != 4 || k->dims.nb_dims != 4 || v->dims.nb_dims != 4)
        return kiln__onnx_node_error(node, KILN_INVALID_ARGUMENT, "Q, K and V have ranks %d, %d and %d, expected 4",
                                     q->dims.nb_dims, k->dims.nb_dims, v->dims.nb_dims);
    if (k->dtype != q->dtype || v->dtype != q->dtype)
        return kiln__onnx_node_error(node, KILN_INVALID_ARGUMENT, "Q, K and V must share one dtype");
    int64_t hq = q->dims.d[1], hkv = k->dims.d[1], e = q->dims.d[3];
    if (hq < 1 || hkv < 1 || hq % hkv != 0)
        return kiln__onnx_node_error(node, KILN_UNSUPPORTED,
                                     "query heads (%lld) must be a known multiple of kv heads (%lld)", (long long)hq,
                                     (long long)hkv);
    if (!has_scale && e < 1)
        return kiln__onnx_node_error(node, KILN_UNSUPPORTED, "the default scale needs the head size known");
    /* Softmax runs in softmax_precision, else in float32 for 16-bit inputs. */
    kiln_dtype t = q->dtype, ct = t;
    if (has_precision) ct = (kiln_dtype)precision;
    else if (t == KILN_FLOAT16 || t == KILN_BFLOAT16) ct = KILN_FLOAT32;
    if (!kiln__dtype_is_float(ct))
        return kiln__onnx_node_error(node, KILN_INVALID_ARGUMENT, "softmax_precision %lld is not a float type",
                                     (long long)precision);
    if (!has_scale) scale = (float)(1.0 / sqrt((double)e));
    kiln_tensor *s = kiln__att_head_matmul(ctx, node, q, k, true, scale, hq, hkv, &st);
    if (s && ct != t) s = kiln__onnx_cast(ctx, node, s, ct, &st);
    if (s && score_mod) s = kiln__att_inline_graph(ctx, node, score_mod, ".score_mod", s, &st);
    kiln_tensor *p = s ? kiln__att_softmax_last(ctx, node, s, &st) : NULL;
    if (p && prob_mod) p = kiln__att_inline_graph(ctx, node, prob_mod, ".prob_mod", p, &st);
    if (p && p->dtype != ct) p = kiln__onnx_cast(ctx, node, p, ct, &st);
    kiln_tensor *vc = !p ? NULL : ct != t ? kiln__onnx_cast(ctx, node, v, ct, &st) : v;
    kiln_tensor *y = vc ? kiln__att_head_matmul(ctx, node, p, vc, false, 1.0f, hq, hkv, &st) : NULL;
    if (y && ct != t) y = kiln__onnx_cast(ctx, node, y, t, &st);
    return y ? kiln__onnx_out(ctx, node, 0, y) : st;
}
