/* ONNX importer for FlexAttention (domain ai.onnx.preview): scaled dot-product attention whose
 * scores and probabilities pass through user graphs (score_mod, prob_mod). Those graphs are
 * inlined: their nodes are imported into the network like the main graph's. */
#include "onnx/import_attention.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

/* The op families, as import.c lists them; weak ones are NULL until linked in. */
extern const kiln__onnx_op kiln__onnx_ops_basic[];
extern const kiln__onnx_op kiln__onnx_ops_nn[];
extern const kiln__onnx_op kiln__onnx_ops_tensor[] __attribute__((weak));
extern const kiln__onnx_op kiln__onnx_ops_quant[] __attribute__((weak));
extern const kiln__onnx_op kiln__onnx_ops_vision[] __attribute__((weak));

static const kiln__onnx_op *find_op(const kiln__onnx_node *node, int64_t opset) {
    const kiln__onnx_op *tables[6] = {kiln__onnx_ops_basic,  kiln__onnx_ops_nn,    kiln__onnx_ops_tensor,
                                      kiln__onnx_ops_attention, kiln__onnx_ops_quant, kiln__onnx_ops_vision};
    const char *domain = strcmp(node->domain, "ai.onnx") == 0 ? "" : node->domain;
    const kiln__onnx_op *best = NULL;
    for (size_t f = 0; f < KILN__ARRAY_LEN(tables); f++)
        for (const kiln__onnx_op *op = tables[f]; op && op->op_type; op++)
            if (strcmp(op->op_type, node->op_type) == 0 && strcmp(op->domain, domain) == 0 && op->min_opset <= opset &&
                (!best || op->min_opset > best->min_opset))
                best = op;
    return best;
}

/* The tensor bound to value `name`, through a node that reads it. */
static kiln_tensor *lookup(kiln__onnx_ctx *ctx, const kiln__onnx_node *outer, const char *name) {
    const char *in[1] = {name};
    kiln__onnx_node n = {.name = outer->name, .op_type = outer->op_type, .domain = outer->domain, .nb_inputs = 1,
                         .inputs = in};
    return kiln__onnx_in(ctx, &n, 0);
}

/* Binds value `name` to t, through a node that writes it. */
static kiln_status bind_value(kiln__onnx_ctx *ctx, const kiln__onnx_node *outer, const char *name, kiln_tensor *t) {
    const char *out[1] = {name};
    kiln__onnx_node n = {.name = outer->name, .op_type = outer->op_type, .domain = outer->domain, .nb_outputs = 1,
                         .outputs = out};
    return kiln__onnx_out(ctx, &n, 0, t);
}

/* Renames the tensor bound to a graph value "<node>/<value>": value names repeat across graph
 * attributes (two nodes may carry the same score_mod), tensor names may not. */
static kiln_status scope_value(kiln__onnx_ctx *ctx, const kiln__onnx_node *outer, const char *name) {
    kiln_tensor *t = lookup(ctx, outer, name);
    if (!t || strcmp(t->name, name) != 0) return KILN_OK;
    char scoped[KILN_MAX_NAME];
    if (snprintf(scoped, sizeof scoped, "%s/%s", outer->name, name) >= (int)sizeof scoped)
        return kiln__onnx_node_error(outer, KILN_UNSUPPORTED, "graph value name '%s' is too long", name);
    return kiln_tensor_set_name(t, scoped);
}

static kiln_status inline_nodes(kiln__onnx_ctx *ctx, const kiln__onnx_node *outer, const kiln__onnx_graph *g) {
    const kiln__alloc *alloc = &kiln__onnx_network(ctx)->alloc;
    for (int32_t i = 0; i < g->nb_initializers; i++) {
        const kiln__onnx_tensor *init = &g->initializers[i];
        if (init->dtype == KILN_DTYPE_UNDEFINED || init->dtype == KILN_STRING || init->nb_dims > KILN_MAX_DIMS)
            return kiln__onnx_node_error(outer, KILN_UNSUPPORTED, "graph initializer '%s' has a type or rank kiln "
                                         "does not support", init->name);
        kiln_dims dims = {.nb_dims = init->nb_dims};
        for (int32_t d = 0; d < init->nb_dims; d++) dims.d[d] = init->dims[d];
        kiln__onnx_data data;
        kiln_status st = kiln__onnx_tensor_data(alloc, init, &data);
        if (st != KILN_OK) return kiln__error_prefix(st, "node '%s' (%s)", outer->name, outer->op_type);
        kiln_tensor *t;
        st = kiln__onnx_add_constant(ctx, outer, init->dtype, &dims, data.data, &t);
        kiln__onnx_data_release(alloc, &data);
        KILN__TRY(st);
        KILN__TRY(bind_value(ctx, outer, init->name, t));
    }
    for (int32_t i = 0; i < g->nb_nodes; i++) {
        kiln__onnx_node n = g->nodes[i];
        char name[KILN_MAX_NAME];
        if (n.name[0]) snprintf(name, sizeof name, "%s/%s", outer->name, n.name);
        else snprintf(name, sizeof name, "%s/%s_%d", outer->name, n.op_type, i);
        n.name = name;
        int64_t opset = kiln__onnx_node_opset(ctx, &n);
        const kiln__onnx_op *op = opset > 0 ? find_op(&n, opset) : NULL;
        if (!op)
            return kiln__onnx_node_error(&n, KILN_UNSUPPORTED, "op %s (domain '%s', opset %lld) is not supported",
                                         n.op_type, n.domain[0] ? n.domain : "ai.onnx", (long long)opset);
        KILN__TRY(op->import(ctx, &n));
        for (int32_t o = 0; o < n.nb_outputs; o++)
            if (kiln__onnx_has_out(&n, o) && !lookup(ctx, outer, n.outputs[o]))
                return kiln__onnx_node_error(&n, KILN_INTERNAL_ERROR, "the importer left output %d ('%s') unset", o,
                                             n.outputs[o]);
    }
    return KILN_OK;
}

kiln_tensor *kiln__att_inline_graph(kiln__onnx_ctx *ctx, const kiln__onnx_node *node, const kiln__onnx_graph *g,
                                    kiln_tensor *x, kiln_status *st) {
    if (g->nb_inputs != 1 || g->nb_outputs != 1) {
        *st = kiln__onnx_node_error(node, KILN_INVALID_ARGUMENT, "graph '%s' has %d inputs and %d outputs, expected 1 "
                                    "and 1", g->name, g->nb_inputs, g->nb_outputs);
        return NULL;
    }
    *st = bind_value(ctx, node, g->inputs[0].name, x);
    if (*st == KILN_OK) *st = inline_nodes(ctx, node, g);
    kiln_tensor *y = *st == KILN_OK ? lookup(ctx, node, g->outputs[0].name) : NULL;
    if (*st == KILN_OK && !y)
        *st = kiln__onnx_node_error(node, KILN_INVALID_ARGUMENT, "graph '%s' never computes its output '%s'", g->name,
                                    g->outputs[0].name);
    if (*st == KILN_OK) *st = scope_value(ctx, node, g->inputs[0].name);
    for (int32_t i = 0; *st == KILN_OK && i < g->nb_initializers; i++)
        *st = scope_value(ctx, node, g->initializers[i].name);
    for (int32_t i = 0; *st == KILN_OK && i < g->nb_nodes; i++)
        for (int32_t o = 0; *st == KILN_OK && o < g->nodes[i].nb_outputs; o++)
            if (g->nodes[i].outputs[o][0]) *st = scope_value(ctx, node, g->nodes[i].outputs[o]);
    return *st == KILN_OK ? y : NULL;
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
    if (s && score_mod) s = kiln__att_inline_graph(ctx, node, score_mod, s, &st);
    kiln_tensor *p = s ? kiln__att_softmax_last(ctx, node, s, &st) : NULL;
    if (p && prob_mod) p = kiln__att_inline_graph(ctx, node, prob_mod, p, &st);
    if (p && p->dtype != ct) p = kiln__onnx_cast(ctx, node, p, ct, &st);
    kiln_tensor *vc = !p ? NULL : ct != t ? kiln__onnx_cast(ctx, node, v, ct, &st) : v;
    kiln_tensor *y = vc ? kiln__att_head_matmul(ctx, node, p, vc, false, 1.0f, hq, hkv, &st) : NULL;
    if (y && ct != t) y = kiln__onnx_cast(ctx, node, y, t, &st);
    return y ? kiln__onnx_out(ctx, node, 0, y) : st;
}
