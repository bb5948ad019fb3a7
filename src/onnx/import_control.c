/* ONNX control flow inside kiln's static layer graph. Subgraphs are imported in scopes of
 * their own (kiln__onnx_subgraph):
 *   If: a condition known at import inlines the taken branch; otherwise both branches are
 *       imported and each output becomes Select(cond, then, else), which needs the branches
 *       to give tensors of one dtype and rank with equal dims where both are known (or lists
 *       of those, element by element).
 *   Loop: unrolled, so the trip count and the condition (the initial one and the one each
 *       iteration computes) must be known at import.
 *   Scan (opset 8 with its batch dim, and 9+): unrolled over the scan axis, whose length must
 *       be known at build time.
 *   SequenceMap: the body imported once per element. */
#include "onnx/import_sequence.h"

#include <stdio.h>
#include <string.h>

/* A growable array of values, for loop-carried state and per-iteration outputs. */
typedef struct val_vec {
    kiln__onnx_val *v;
    int64_t count, cap;
} val_vec;

static kiln_status vec_push(kiln_network *net, val_vec *vec, kiln__onnx_val v) {
    KILN__TRY(kiln__reserve(&net->alloc, (void **)&vec->v, &vec->cap, vec->count + 1, sizeof *vec->v));
    vec->v[vec->count++] = v;
    return KILN_OK;
}

static kiln_status graph_attr(const kiln__onnx_node *node, const char *name, const kiln__onnx_graph **g) {
    *g = NULL;
    KILN__TRY(kiln__onnx_attr_graph(node, name, g));
    if (!*g) return kiln__onnx_node_error(node, KILN_INVALID_ARGUMENT, "attribute '%s' (a graph) is required", name);
    return KILN_OK;
}

/* The tensors of per-iteration values, stacked along `axis` (from the end when reverse). */
static kiln_tensor *stack_values(kiln__onnx_ctx *ctx, const kiln__onnx_node *node, const kiln__onnx_val *vals,
                                 int64_t n, int64_t stride, int64_t axis, bool reverse, int32_t out_index,
                                 kiln_status *st) {
    kiln_network *net = kiln__onnx_network(ctx);
    kiln_tensor **items = kiln__malloc(&net->alloc, (size_t)n * sizeof *items + 1), *out = NULL;
    if (!items) {
        *st = KILN_OUT_OF_MEMORY;
        return NULL;
    }
    int32_t ax = 0;
    *st = KILN_OK;
    for (int64_t i = 0; i < n && *st == KILN_OK; i++) {
        const kiln__onnx_val *v = &vals[(reverse ? n - 1 - i : i) * stride];
        if (!v->tensor)
            *st = kiln__onnx_node_error(node, KILN_UNSUPPORTED, "scan output %d is not a tensor", out_index);
        else items[i] = v->tensor;
    }
    if (*st == KILN_OK && !kiln__norm_axis(axis, items[0]->dims.nb_dims + 1, &ax))
        *st = kiln__onnx_node_error(node, KILN_INVALID_ARGUMENT, "scan output %d: axis %lld is out of range",
                                    out_index, (long long)axis);
    if (*st == KILN_OK) out = kiln__onnx_stack(ctx, node, items, (int32_t)n, ax, st);
    kiln__free(&net->alloc, items);
    return out;
}

/* ---------------------------------------------------------------- If */

/* Dims that Select keeps as they are: one rank, equal where both are known. */
static bool same_shape(const kiln_tensor *a, const kiln_tensor *b) {
    if (a->dims.nb_dims != b->dims.nb_dims) return false;
    for (int32_t i = 0; i < a->dims.nb_dims; i++)
        if (a->dims.d[i] >= 0 && b->dims.d[i] >= 0 && a->dims.d[i] != b->dims.d[i]) return false;
    return true;
}

static kiln_tensor *select_tensor(kiln__onnx_ctx *ctx, const kiln__onnx_node *node, kiln_tensor *cond,
                                  kiln_tensor *a, kiln_tensor *b, int32_t i, kiln_status *st) {
    if (a->dtype != b->dtype || !same_shape(a, b)) {
        char da[128], db[128];
        kiln__dims_format(&a->dims, da, sizeof da);
        kiln__dims_format(&b->dims, db, sizeof db);
        *st = kiln__onnx_node_error(node, KILN_UNSUPPORTED,
                                    "the condition is not known at import time and output %d differs between the "
                                    "branches (%s%s and %s%s); kiln selects between branches of one dtype and shape",
                                    i, kiln_dtype_name(a->dtype), da, kiln_dtype_name(b->dtype), db);
        return NULL;
    }
    kiln_tensor *in[3] = {cond, a, b};
    return kiln__onnx_add1(ctx, node, KILN_LAYER_SELECT, in, 3, NULL, 0, st);
}

/* Output i of an If whose condition is known only at run time. */
static kiln_status select_output(kiln__onnx_ctx *ctx, const kiln__onnx_node *node, kiln_tensor *cond, int32_t i,
                                  const kiln__onnx_val *a, const kiln__onnx_val *b) {
    kiln_status st = KILN_OK;
    if (a->tensor && b->tensor) {
        kiln_tensor *t = select_tensor(ctx, node, cond, a->tensor, b->tensor, i, &st);
        return t ? kiln__onnx_out(ctx, node, i, t) : st;
    }
    if (!a->list || !b->list || a->list->kind != b->list->kind || a->list->count != b->list->count)
        return kiln__onnx_node_error(node, KILN_UNSUPPORTED,
                                     "the condition is not known at import time and output %d is a different kind of "
                                     "value or length in each branch; kiln cannot select between them",
                                     i);
    int32_t n = a->list->count;
    kiln_network *net = kiln__onnx_network(ctx);
    kiln_tensor **items = kiln__malloc(&net->alloc, (size_t)n * sizeof *items + 1);
    if (!items) return KILN_OUT_OF_MEMORY;
    for (int32_t k = 0; k < n && st == KILN_OK; k++)
        items[k] = select_tensor(ctx, node, cond, a->list->items[k], b->list->items[k], i, &st);
    const kiln__onnx_list *list = NULL;
    if (st == KILN_OK) st = kiln__onnx_list_new(ctx, a->list->kind, a->list->dtype, items, n, &list);
    kiln__free(&net->alloc, items);
    if (st != KILN_OK) return st;
    kiln__onnx_val v = {.list = list};
    return kiln__onnx_out_val(ctx, node, i, &v);
}

kiln_status kiln__onnx_import_if(kiln__onnx_ctx *ctx, const kiln__onnx_node *node) {
    kiln_status st = KILN_OK;
    kiln_tensor *cond = kiln__onnx_in_required(ctx, node, 0, "cond", &st);
    if (!cond) return st;
    const kiln__onnx_graph *branch[2];
    KILN__TRY(graph_attr(node, "then_branch", &branch[0]));
    KILN__TRY(graph_attr(node, "else_branch", &branch[1]));
    if (cond->dtype != KILN_BOOL || (kiln__dims_volume(&cond->dims) >= 0 && kiln__dims_volume(&cond->dims) != 1))
        return kiln__onnx_node_error(node, KILN_INVALID_ARGUMENT, "input 0 (cond) must be one bool");
    for (int32_t b = 0; b < 2; b++)
        if (branch[b]->nb_outputs != node->nb_outputs)
            return kiln__onnx_node_error(node, KILN_INVALID_ARGUMENT, "the %s branch has %d outputs, the node %d",
                                         b ? "else" : "then", branch[b]->nb_outputs, node->nb_outputs);
    kiln_network *net = kiln__onnx_network(ctx);
    kiln__onnx_val *outs = kiln__calloc(&net->alloc, 2 * (size_t)node->nb_outputs + 1, sizeof *outs);
    if (!outs) return KILN_OUT_OF_MEMORY;
    int64_t taken;
    if (kiln__onnx_const_scalar_int(ctx, cond, &taken)) {
        int32_t b = taken ? 0 : 1;
        st = kiln__onnx_subgraph(ctx, node, branch[b], b ? ".else" : ".then", NULL, 0, outs);
        for (int32_t i = 0; st == KILN_OK && i < node->nb_outputs; i++) st = kiln__onnx_out_val(ctx, node, i, &outs[i]);
    } else {
        kiln_tensor *c = cond;
        if (cond->dims.nb_dims > 0) {
            /* A one-element condition of rank > 0 would add dims to the selected outputs. */
            kiln__shuffle_params p = {.has_reshape = 1};
            c = kiln__onnx_add1(ctx, node, KILN_LAYER_SHUFFLE, &cond, 1, &p, sizeof p, &st);
        }
        if (st == KILN_OK) st = kiln__onnx_subgraph(ctx, node, branch[0], ".then", NULL, 0, outs);
        if (st == KILN_OK) st = kiln__onnx_subgraph(ctx, node, branch[1], ".else", NULL, 0, outs + node->nb_outputs);
        for (int32_t i = 0; st == KILN_OK && i < node->nb_outputs; i++)
            if (kiln__onnx_has_out(node, i)) st = select_output(ctx, node, c, i, &outs[i], &outs[node->nb_outputs + i]);
    }
    kiln__free(&net->alloc, outs);
    return st;
}

/* ---------------------------------------------------------------- Loop */

/* The unrolled iterations' state: carried values and every iteration's scan outputs. */
typedef struct loop_state {
    val_vec carried, scans;
    kiln__onnx_val *body_in, *body_out;
} loop_state;

static void loop_state_free(kiln_network *net, loop_state *s) {
    kiln__free(&net->alloc, s->carried.v);
    kiln__free(&net->alloc, s->scans.v);
    kiln__free(&net->alloc, s->body_in);
    kiln__free(&net->alloc, s->body_out);
}

static kiln_status unroll_loop(kiln__onnx_ctx *ctx, const kiln__onnx_node *node, const kiln__onnx_graph *body,
                               bool has_trip, int64_t trip, bool cond, int32_t n_carried, loop_state *s) {
    kiln_network *net = kiln__onnx_network(ctx);
    int32_t n_scan = body->nb_outputs - 1 - n_carried;
    s->body_in = kiln__calloc(&net->alloc, (size_t)body->nb_inputs + 1, sizeof *s->body_in);
    s->body_out = kiln__calloc(&net->alloc, (size_t)body->nb_outputs + 1, sizeof *s->body_out);
    if (!s->body_in || !s->body_out) return KILN_OUT_OF_MEMORY;
    kiln_status st = KILN_OK;
    for (int64_t i = 0; (!has_trip || i < trip) && cond; i++) {
        if (i >= KILN__ONNX_MAX_UNROLL)
            return kiln__onnx_node_error(node, KILN_UNSUPPORTED, "the loop runs more than %d iterations; kiln unrolls "
                                         "loops and stops there", KILN__ONNX_MAX_UNROLL);
        kiln_tensor *iter = kiln__onnx_const_scalar(ctx, node, KILN_INT64, (double)i, 0, &st), *c;
        if (!iter || !(c = kiln__onnx_const_scalar(ctx, node, KILN_BOOL, 1, 0, &st))) return st;
        s->body_in[0] = (kiln__onnx_val){.tensor = iter};
        s->body_in[1] = (kiln__onnx_val){.tensor = c};
        for (int32_t k = 0; k < n_carried; k++) s->body_in[2 + k] = s->carried.v[k];
        char tag[32];
        snprintf(tag, sizeof tag, "[%lld]", (long long)i);
        KILN__TRY(kiln__onnx_subgraph(ctx, node, body, tag, s->body_in, body->nb_inputs, s->body_out));
        int64_t next;
        if (!s->body_out[0].tensor || !kiln__onnx_const_scalar_int(ctx, s->body_out[0].tensor, &next))
            return kiln__onnx_node_error(node, KILN_UNSUPPORTED,
                                         "the condition the body computes in iteration %lld is not known at import "
                                         "time; kiln unrolls loops and needs it constant",
                                         (long long)i);
        cond = next != 0;
        for (int32_t k = 0; k < n_carried; k++) s->carried.v[k] = s->body_out[1 + k];
        for (int32_t k = 0; k < n_scan; k++) KILN__TRY(vec_push(net, &s->scans, s->body_out[1 + n_carried + k]));
    }
    return KILN_OK;
}

kiln_status kiln__onnx_import_loop(kiln__onnx_ctx *ctx, const kiln__onnx_node *node) {
    const kiln__onnx_graph *body;
    KILN__TRY(graph_attr(node, "body", &body));
    int32_t n_carried = node->nb_inputs - 2;
    if (n_carried < 0 || body->nb_inputs != n_carried + 2 || body->nb_outputs < n_carried + 1)
        return kiln__onnx_node_error(node, KILN_INVALID_ARGUMENT,
                                     "the body has %d inputs and %d outputs for %d loop-carried values",
                                     body->nb_inputs, body->nb_outputs, KILN__MAX(n_carried, 0));
    int32_t n_scan = body->nb_outputs - 1 - n_carried;
    if (node->nb_outputs > n_carried + n_scan)
        return kiln__onnx_node_error(node, KILN_INVALID_ARGUMENT, "%d outputs, the body gives %d", node->nb_outputs,
                                     n_carried + n_scan);
    kiln_tensor *trip_t = kiln__onnx_in(ctx, node, 0), *cond_t = kiln__onnx_in(ctx, node, 1);
    int64_t trip = 0, cond = 1;
    if (trip_t && !kiln__onnx_const_scalar_int(ctx, trip_t, &trip))
        return kiln__onnx_node_error(node, KILN_UNSUPPORTED,
                                     "input 0 (trip count) '%s' is not known at import time; kiln unrolls loops and "
                                     "needs it constant",
                                     node->inputs[0]);
    if (cond_t && !kiln__onnx_const_scalar_int(ctx, cond_t, &cond))
        return kiln__onnx_node_error(node, KILN_UNSUPPORTED,
                                     "input 1 (cond) '%s' is not known at import time; kiln unrolls loops and needs it "
                                     "constant",
                                     node->inputs[1]);
    if (!trip_t && !cond_t)
        return kiln__onnx_node_error(node, KILN_UNSUPPORTED, "a loop with neither a trip count nor a condition never ends");
    kiln_network *net = kiln__onnx_network(ctx);
    loop_state s = {0};
    kiln_status st = KILN_OK;
    for (int32_t k = 0; st == KILN_OK && k < n_carried; k++) {
        kiln__onnx_val v;
        if (!kiln__onnx_in_val(ctx, node, 2 + k, &v))
            st = kiln__onnx_node_error(node, KILN_INVALID_ARGUMENT, "loop-carried input %d is missing", 2 + k);
        else st = vec_push(net, &s.carried, v);
    }
    if (st == KILN_OK) st = unroll_loop(ctx, node, body, trip_t != NULL, trip, cond != 0, n_carried, &s);
    for (int32_t k = 0; st == KILN_OK && k < n_carried; k++) st = kiln__onnx_out_val(ctx, node, k, &s.carried.v[k]);
    int64_t iters = n_scan ? s.scans.count / n_scan : 0;
    for (int32_t k = 0; st == KILN_OK && k < n_scan; k++) {
        if (!kiln__onnx_has_out(node, n_carried + k)) continue;
        if (iters == 0) {
            st = kiln__onnx_node_error(node, KILN_UNSUPPORTED,
                                       "the loop runs no iteration, so scan output %d has no known element shape", k);
            break;
        }
        kiln_tensor *t = stack_values(ctx, node, s.scans.v + k, iters, n_scan, 0, false, k, &st);
        if (t) st = kiln__onnx_out(ctx, node, n_carried + k, t);
    }
    loop_state_free(net, &s);
    return st;
}

/* ---------------------------------------------------------------- Scan */

typedef struct scan_spec {
    int32_t n_state, n_in, n_out;
    int64_t in_axes[64], in_rev[64], out_axes[64], out_rev[64];
} scan_spec;

/* One scan over states[0..n_state) and inputs xs[0..n_in) (already without a batch dim):
 * final states into out[0..n_state), stacked scan outputs into out[n_state..). */
static kiln_status scan_once(kiln__onnx_ctx *ctx, const kiln__onnx_node *node, const kiln__onnx_graph *body,
                             const scan_spec *sp, kiln_tensor *const *states, kiln_tensor *const *xs,
                             const char *tag_prefix, kiln_tensor **out) {
    kiln_network *net = kiln__onnx_network(ctx);
    int64_t len = -1;
    int32_t axes[64];
    for (int32_t j = 0; j < sp->n_in; j++) {
        if (!kiln__norm_axis(sp->in_axes[j], xs[j]->dims.nb_dims, &axes[j]))
            return kiln__onnx_node_error(node, KILN_INVALID_ARGUMENT, "scan input %d: axis %lld is out of range", j,
                                         (long long)sp->in_axes[j]);
        int64_t d = xs[j]->dims.d[axes[j]];
        if (d < 0)
            return kiln__onnx_node_error(node, KILN_UNSUPPORTED,
                                         "the length of scan input %d is not known at build time; kiln unrolls scans "
                                         "and needs it", j);
        if (len >= 0 && d != len)
            return kiln__onnx_node_error(node, KILN_INVALID_ARGUMENT, "scan inputs have lengths %lld and %lld",
                                         (long long)len, (long long)d);
        len = d;
    }
    if (len > KILN__ONNX_MAX_UNROLL)
        return kiln__onnx_node_error(node, KILN_UNSUPPORTED, "a scan of %lld steps; kiln unrolls at most %d",
                                     (long long)len, KILN__ONNX_MAX_UNROLL);
    if (len == 0 && sp->n_out > 0)
        return kiln__onnx_node_error(node, KILN_UNSUPPORTED, "a scan of no steps has scan outputs of no known shape");
    kiln__onnx_val *in = kiln__calloc(&net->alloc, (size_t)body->nb_inputs + 1, sizeof *in);
    kiln__onnx_val *res = kiln__calloc(&net->alloc, (size_t)body->nb_outputs + 1, sizeof *res);
    val_vec scans = {0};
    kiln_status st = in && res ? KILN_OK : KILN_OUT_OF_MEMORY;
    for (int32_t k = 0; st == KILN_OK && k < sp->n_state; k++) in[k] = (kiln__onnx_val){.tensor = states[k]};
    for (int64_t t = 0; st == KILN_OK && t < len; t++) {
        for (int32_t j = 0; st == KILN_OK && j < sp->n_in; j++) {
            kiln_tensor *x = kiln__onnx_take(ctx, node, xs[j], sp->in_rev[j] ? len - 1 - t : t, axes[j], &st);
            in[sp->n_state + j] = (kiln__onnx_val){.tensor = x};
        }
        char tag[64];
        snprintf(tag, sizeof tag, "%s[%lld]", tag_prefix, (long long)t);
        if (st == KILN_OK) st = kiln__onnx_subgraph(ctx, node, body, tag, in, body->nb_inputs, res);
        for (int32_t k = 0; st == KILN_OK && k < sp->n_state; k++) {
            if (!res[k].tensor) st = kiln__onnx_node_error(node, KILN_UNSUPPORTED, "scan state %d is not a tensor", k);
            in[k] = res[k];
        }
        for (int32_t k = 0; st == KILN_OK && k < sp->n_out; k++) st = vec_push(net, &scans, res[sp->n_state + k]);
    }
    for (int32_t k = 0; st == KILN_OK && k < sp->n_state; k++) out[k] = in[k].tensor;
    for (int32_t k = 0; st == KILN_OK && k < sp->n_out; k++)
        out[sp->n_state + k] =
            stack_values(ctx, node, scans.v + k, len, sp->n_out, sp->out_axes[k], sp->out_rev[k] != 0, k, &st);
    kiln__free(&net->alloc, in);
    kiln__free(&net->alloc, res);
    kiln__free(&net->alloc, scans.v);
    return st;
}

/* An ints attribute of n entries into out (default 0 when absent). */
static kiln_status scan_ints(const kiln__onnx_node *node, const char *name, int32_t n, int64_t *out) {
    const int64_t *v = NULL;
    int64_t count = -1;
    KILN__TRY(kiln__onnx_attr_ints(node, name, &v, &count));
    if (count >= 0 && count != n)
        return kiln__onnx_node_error(node, KILN_INVALID_ARGUMENT, "attribute '%s' has %lld entries, expected %d", name,
                                     (long long)count, n);
    for (int32_t i = 0; i < n; i++) out[i] = count >= 0 ? v[i] : 0;
    return KILN_OK;
}

kiln_status kiln__onnx_import_scan(kiln__onnx_ctx *ctx, const kiln__onnx_node *node) {
    const kiln__onnx_graph *body;
    KILN__TRY(graph_attr(node, "body", &body));
    bool v8 = kiln__onnx_node_opset(ctx, node) < 9;
    int32_t first = v8 ? 1 : 0; /* opset 8: input 0 is sequence_lens */
    int64_t m = -1;
    KILN__TRY(kiln__onnx_attr_int(node, "num_scan_inputs", &m));
    scan_spec sp = {0};
    int32_t nb = node->nb_inputs - first;
    if (m < 1 || m > nb || m > 64 || nb - m > 64)
        return kiln__onnx_node_error(node, KILN_INVALID_ARGUMENT, "num_scan_inputs is %lld for %d inputs", (long long)m,
                                     nb);
    sp.n_in = (int32_t)m;
    sp.n_state = nb - sp.n_in;
    sp.n_out = body->nb_outputs - sp.n_state;
    if (body->nb_inputs != nb || sp.n_out < 0 || sp.n_out > 64 || node->nb_outputs > body->nb_outputs)
        return kiln__onnx_node_error(node, KILN_INVALID_ARGUMENT, "the body has %d inputs and %d outputs for %d "
                                     "inputs and %d outputs", body->nb_inputs, body->nb_outputs, nb, node->nb_outputs);
    if (v8 && kiln__onnx_in(ctx, node, 0))
        return kiln__onnx_node_error(node, KILN_UNSUPPORTED,
                                     "input 0 (sequence_lens) is given; kiln scans every sequence to its full length");
    KILN__TRY(scan_ints(node, v8 ? "directions" : "scan_input_directions", sp.n_in, sp.in_rev));
    if (!v8) {
        KILN__TRY(scan_ints(node, "scan_input_axes", sp.n_in, sp.in_axes));
        KILN__TRY(scan_ints(node, "scan_output_axes", sp.n_out, sp.out_axes));
        KILN__TRY(scan_ints(node, "scan_output_directions", sp.n_out, sp.out_rev));
    }
    kiln_status st = KILN_OK;
    kiln_tensor *ins[128], *res[128];
    for (int32_t i = 0; i < nb; i++)
        if (!(ins[i] = kiln__onnx_in_required(ctx, node, first + i, "input", &st))) return st;
    if (!v8) {
        KILN__TRY(scan_once(ctx, node, body, &sp, ins, ins + sp.n_state, "", res));
    } else {
        /* Opset 8: every input has a batch dim first; each batch element is scanned alone. */
        int64_t batch = ins[0]->dims.nb_dims > 0 ? ins[0]->dims.d[0] : -1;
        if (batch < 1 || batch > KILN__ONNX_MAX_UNROLL)
            return kiln__onnx_node_error(node, KILN_UNSUPPORTED, "the batch dim must be known at build time (1..%d)",
                                         KILN__ONNX_MAX_UNROLL);
        kiln_network *net = kiln__onnx_network(ctx);
        int32_t nres = sp.n_state + sp.n_out;
        kiln_tensor **per = kiln__malloc(&net->alloc, (size_t)(batch * nres) * sizeof *per + 1);
        if (!per) return KILN_OUT_OF_MEMORY;
        for (int64_t b = 0; st == KILN_OK && b < batch; b++) {
            kiln_tensor *sliced[128];
            for (int32_t i = 0; st == KILN_OK && i < nb; i++) sliced[i] = kiln__onnx_take(ctx, node, ins[i], b, 0, &st);
            char tag[32];
            snprintf(tag, sizeof tag, "[b%lld]", (long long)b);
            if (st == KILN_OK) st = scan_once(ctx, node, body, &sp, sliced, sliced + sp.n_state, tag, per + b * nres);
        }
        kiln_tensor **col = kiln__malloc(&net->alloc, (size_t)batch * sizeof *col + 1);
        if (!col && st == KILN_OK) st = KILN_OUT_OF_MEMORY;
        for (int32_t k = 0; st == KILN_OK && k < nres; k++) {
            for (int64_t b = 0; b < batch; b++) col[b] = per[b * nres + k];
            res[k] = kiln__onnx_stack(ctx, node, col, (int32_t)batch, 0, &st);
        }
        kiln__free(&net->alloc, col);
        kiln__free(&net->alloc, per);
        if (st != KILN_OK) return st;
    }
    for (int32_t k = 0; k < node->nb_outputs; k++) KILN__TRY(kiln__onnx_out(ctx, node, k, res[k]));
    return KILN_OK;
}

/* ---------------------------------------------------------------- SequenceMap */

kiln_status kiln__onnx_import_sequence_map(kiln__onnx_ctx *ctx, const kiln__onnx_node *node) {
    const kiln__onnx_graph *body;
    KILN__TRY(graph_attr(node, "body", &body));
    int32_t nin = node->nb_inputs, nout = node->nb_outputs;
    if (nin < 1 || nin > 64 || body->nb_inputs != nin || body->nb_outputs != nout || nout > 64)
        return kiln__onnx_node_error(node, KILN_INVALID_ARGUMENT, "the body has %d inputs and %d outputs for %d and %d",
                                     body->nb_inputs, body->nb_outputs, nin, nout);
    kiln__onnx_val ins[64], in[64], res[64];
    for (int32_t j = 0; j < nin; j++)
        if (!kiln__onnx_in_val(ctx, node, j, &ins[j]))
            return kiln__onnx_node_error(node, KILN_INVALID_ARGUMENT, "input %d is missing", j);
    if (!ins[0].list || ins[0].list->kind != KILN__ONNX_SEQUENCE)
        return kiln__onnx_node_error(node, KILN_INVALID_ARGUMENT, "input 0 must be a sequence");
    int32_t n = ins[0].list->count;
    for (int32_t j = 1; j < nin; j++)
        if (ins[j].list && (ins[j].list->kind != KILN__ONNX_SEQUENCE || ins[j].list->count != n))
            return kiln__onnx_node_error(node, KILN_INVALID_ARGUMENT,
                                         "input %d must be a tensor or a sequence of %d elements like input 0", j, n);
    kiln_network *net = kiln__onnx_network(ctx);
    kiln_tensor **items = kiln__malloc(&net->alloc, ((size_t)n * (size_t)nout + 1) * sizeof *items);
    if (!items) return KILN_OUT_OF_MEMORY;
    kiln_status st = KILN_OK;
    for (int32_t i = 0; st == KILN_OK && i < n; i++) {
        for (int32_t j = 0; j < nin; j++)
            in[j] = ins[j].list ? (kiln__onnx_val){.tensor = ins[j].list->items[i]} : ins[j];
        char tag[32];
        snprintf(tag, sizeof tag, "[%d]", i);
        st = kiln__onnx_subgraph(ctx, node, body, tag, in, nin, res);
        for (int32_t k = 0; st == KILN_OK && k < nout; k++) {
            if (!res[k].tensor) st = kiln__onnx_node_error(node, KILN_UNSUPPORTED, "body output %d is not a tensor", k);
            else items[(size_t)k * (size_t)n + (size_t)i] = res[k].tensor;
        }
    }
    for (int32_t k = 0; st == KILN_OK && k < nout; k++) {
        const kiln__onnx_list *list;
        kiln_dtype dtype = n ? items[(size_t)k * (size_t)n]->dtype : KILN_DTYPE_UNDEFINED;
        st = kiln__onnx_list_new(ctx, KILN__ONNX_SEQUENCE, dtype, items + (size_t)k * (size_t)n, n, &list);
        kiln__onnx_val v = {.list = list};
        if (st == KILN_OK) st = kiln__onnx_out_val(ctx, node, k, &v);
    }
    kiln__free(&net->alloc, items);
    return st;
}
