/* The ONNX importer core: walks a decoded model's graph, binds ONNX value names to network
 * tensors, dispatches each node to its op family's importer, and folds layers whose inputs
 * are all known at import time into constants. */
#include "onnx/importer.h"

#include "runtime/engine.h"

#include <stdio.h>
#include <string.h>

/* Outputs at most this large are computed at import time when every input is a constant. */
#define KILN__ONNX_FOLD_MAX_ELEMENTS (1 << 20)
/* Opset versions of the default domain the importer knows. */
#define KILN__ONNX_MIN_OPSET 1
#define KILN__ONNX_MAX_OPSET 28

extern const kiln__onnx_op kiln__onnx_ops_basic[];
extern const kiln__onnx_op kiln__onnx_ops_nn[];
extern const kiln__onnx_op kiln__onnx_ops_tensor[];
extern const kiln__onnx_op kiln__onnx_ops_attention[];
extern const kiln__onnx_op kiln__onnx_ops_quant[];
extern const kiln__onnx_op kiln__onnx_ops_vision[];
extern const kiln__onnx_op kiln__onnx_ops_sequence[];
extern const kiln__onnx_op kiln__onnx_ops_misc[];

/* Every family table, in lookup order. */
static const kiln__onnx_op *family_table(int i) {
    switch (i) {
    case 0: return kiln__onnx_ops_basic;
    case 1: return kiln__onnx_ops_nn;
    case 2: return kiln__onnx_ops_tensor;
    case 3: return kiln__onnx_ops_attention;
    case 4: return kiln__onnx_ops_quant;
    case 5: return kiln__onnx_ops_vision;
    case 6: return kiln__onnx_ops_sequence;
    case 7: return kiln__onnx_ops_misc;
    default: return NULL;
    }
}
#define KILN__ONNX_NB_FAMILIES 8

/* ONNX value name -> value (a tensor or a list), open addressing. Keys point into the model,
 * which outlives the import. */
typedef struct value_map {
    const char **keys;
    kiln__onnx_val *vals;
    size_t cap, count;
} value_map;

/* One graph's names: the main graph, or one import of a subgraph (an If branch, a loop
 * iteration), whose nodes also see the enclosing scopes' names. */
typedef struct scope {
    value_map values;
    struct scope *parent;
    const char *prefix; /* put before the names of tensors bound here, so unrolled copies differ */
} scope;

/* A list made during the import; freed with the import. */
typedef struct list_block {
    struct list_block *next;
    kiln__onnx_list list;
    kiln_tensor *items[];
} list_block;

struct kiln__onnx_ctx {
    kiln_network *net;
    const kiln__onnx_model *model;
    scope *scope; /* the innermost */
    uint8_t *bound; /* by tensor index: 1 once the tensor carries an ONNX value's name */
    int64_t bound_cap;
    list_block *lists;
    int32_t node_layers; /* layers made so far for the node being imported */
    /* Keeps the model alive for initializers borrowed rather than copied; NULL: copy all.
     * borrow_raw: raw_data may be borrowed too (it lies in a file the model maps, not in
     * the caller's buffer). */
    kiln__shared *owner;
    bool borrow_raw;
};

static size_t map_slot(const value_map *m, const char *key) {
    size_t mask = m->cap - 1, i = (size_t)kiln__hash64(key, strlen(key), 0x6b696c6e) & mask;
    while (m->keys[i] && strcmp(m->keys[i], key) != 0) i = (i + 1) & mask;
    return i;
}

static kiln_status map_init(const kiln__alloc *alloc, value_map *m, size_t expected) {
    size_t cap = 16;
    while (cap < expected * 2) cap *= 2;
    m->keys = kiln__calloc(alloc, cap, sizeof *m->keys);
    m->vals = kiln__calloc(alloc, cap, sizeof *m->vals);
    m->cap = cap;
    m->count = 0;
    return m->keys && m->vals ? KILN_OK : KILN_OUT_OF_MEMORY;
}

static void map_free(const kiln__alloc *alloc, value_map *m) {
    kiln__free(alloc, m->keys);
    kiln__free(alloc, m->vals);
}

static const kiln__onnx_val *map_get(const value_map *m, const char *key) {
    size_t i = map_slot(m, key);
    return m->keys[i] ? &m->vals[i] : NULL;
}

static kiln_status map_put(const kiln__alloc *alloc, value_map *m, const char *key, kiln__onnx_val v) {
    if ((m->count + 1) * 2 > m->cap) {
        value_map bigger;
        KILN__TRY(map_init(alloc, &bigger, m->cap));
        for (size_t i = 0; i < m->cap; i++)
            if (m->keys[i]) {
                size_t j = map_slot(&bigger, m->keys[i]);
                bigger.keys[j] = m->keys[i];
                bigger.vals[j] = m->vals[i];
            }
        bigger.count = m->count;
        map_free(alloc, m);
        *m = bigger;
    }
    size_t i = map_slot(m, key);
    if (!m->keys[i]) m->count++;
    m->keys[i] = key;
    m->vals[i] = v;
    return KILN_OK;
}

/* The value a name has in the innermost scope that binds it. */
static const kiln__onnx_val *lookup(const kiln__onnx_ctx *ctx, const char *name) {
    for (const scope *s = ctx->scope; s; s = s->parent) {
        const kiln__onnx_val *v = map_get(&s->values, name);
        if (v) return v;
    }
    return NULL;
}

static kiln_tensor *lookup_tensor(const kiln__onnx_ctx *ctx, const char *name) {
    const kiln__onnx_val *v = lookup(ctx, name);
    return v ? v->tensor : NULL;
}

/* Binds a name in the innermost scope without renaming anything (graph inputs, subgraph
 * inputs, lists). */
static kiln_status put_value(kiln__onnx_ctx *ctx, const char *name, kiln__onnx_val v) {
    return map_put(&ctx->net->alloc, &ctx->scope->values, name, v);
}

static kiln_status mark_bound(kiln__onnx_ctx *ctx, const kiln_tensor *t) {
    if (t->index >= ctx->bound_cap) {
        int64_t cap = KILN__MAX(ctx->bound_cap * 2, (int64_t)t->index + 64);
        uint8_t *b = kiln__realloc(&ctx->net->alloc, ctx->bound, (size_t)ctx->bound_cap, (size_t)cap);
        if (!b) return KILN_OUT_OF_MEMORY;
        memset(b + ctx->bound_cap, 0, (size_t)(cap - ctx->bound_cap));
        ctx->bound = b;
        ctx->bound_cap = cap;
    }
    ctx->bound[t->index] = 1;
    return KILN_OK;
}

/* ---------------------------------------------------------------- helpers for importers */

kiln_network *kiln__onnx_network(kiln__onnx_ctx *ctx) { return ctx->net; }

static bool is_default_domain(const char *domain) { return !domain[0] || strcmp(domain, "ai.onnx") == 0; }

int64_t kiln__onnx_node_opset(kiln__onnx_ctx *ctx, const kiln__onnx_node *node) {
    return kiln__onnx_opset_version(ctx->model, is_default_domain(node->domain) ? "" : node->domain);
}

kiln_tensor *kiln__onnx_in(kiln__onnx_ctx *ctx, const kiln__onnx_node *node, int32_t i) {
    if (i < 0 || i >= node->nb_inputs || !node->inputs[i][0]) return NULL;
    return lookup_tensor(ctx, node->inputs[i]);
}

kiln_tensor *kiln__onnx_in_required(kiln__onnx_ctx *ctx, const kiln__onnx_node *node, int32_t i, const char *what,
                                    kiln_status *st) {
    kiln_tensor *t = kiln__onnx_in(ctx, node, i);
    if (!t) {
        if (i < node->nb_inputs && node->inputs[i][0])
            *st = kiln__onnx_node_error(node, KILN_UNSUPPORTED, "input %d (%s) '%s' is not a tensor kiln can use", i,
                                        what, node->inputs[i]);
        else
            *st = kiln__onnx_node_error(node, KILN_INVALID_ARGUMENT, "input %d (%s) is required but missing", i, what);
    }
    return t;
}

bool kiln__onnx_has_out(const kiln__onnx_node *node, int32_t i) {
    return i >= 0 && i < node->nb_outputs && node->outputs[i][0];
}

kiln_status kiln__onnx_node_error(const kiln__onnx_node *node, kiln_status status, const char *fmt, ...) {
    char msg[1536];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return kiln__error(status, "node '%s' (%s): %s", node->name, node->op_type, msg);
}

bool kiln__onnx_const(kiln__onnx_ctx *ctx, const kiln_tensor *t, kiln__value *out) {
    (void)ctx;
    memset(out, 0, sizeof *out);
    if (!t) return false;
    out->dtype = t->dtype;
    out->dims = t->dims;
    if (!t->producer || t->producer->type != KILN_LAYER_CONSTANT) return false;
    out->data = t->producer->weights;
    out->bytes = t->producer->weights_bytes;
    return true;
}

bool kiln__onnx_const_ints(kiln__onnx_ctx *ctx, const kiln_tensor *t, int64_t *out, int32_t max, int32_t *count) {
    kiln__value v;
    if (!kiln__onnx_const(ctx, t, &v) || v.dims.nb_dims > 1) return false;
    if (v.dtype != KILN_INT32 && v.dtype != KILN_INT64) return false;
    int64_t n = kiln__dims_volume(&v.dims);
    if (n < 0 || n > max) return false;
    for (int64_t i = 0; i < n; i++) out[i] = kiln__value_int(&v, i);
    *count = (int32_t)n;
    return true;
}

/* Whether the layer's outputs can be computed now: every input is a constant (Shape needs
 * only known dims) and the outputs are small tensors of fixed-size dtypes. */
static bool foldable(const kiln_layer *l) {
    if (l->type == KILN_LAYER_CONSTANT || !kiln__cpu_kernel_for(l->type)) return false;
    for (int32_t k = 0; k < l->nb_inputs; k++) {
        const kiln_tensor *t = l->inputs[k];
        if (!t) continue;
        if (l->type == KILN_LAYER_SHAPE) {
            if (kiln__dims_volume(&t->dims) < 0) return false;
        } else if (!t->producer || t->producer->type != KILN_LAYER_CONSTANT) {
            return false;
        }
    }
    for (int32_t k = 0; k < l->nb_outputs; k++) {
        int64_t n = kiln__dims_volume(&l->outputs[k]->dims);
        size_t bytes;
        if (n < 0 || n > KILN__ONNX_FOLD_MAX_ELEMENTS || !kiln__dtype_bytes(l->outputs[k]->dtype, n, &bytes))
            return false;
    }
    return true;
}

/* Runs a foldable layer's CPU kernel and turns the layer into a constant holding output 0;
 * further outputs get constant layers of their own. */
static kiln_status fold_layer(kiln_network *net, kiln_layer *l) {
    kiln__value in[64], out[16];
    if (l->nb_inputs > 64 || l->nb_outputs > 16) return KILN_OK;
    for (int32_t k = 0; k < l->nb_inputs; k++) {
        memset(&in[k], 0, sizeof in[k]);
        const kiln_tensor *t = l->inputs[k];
        if (!t) continue;
        in[k].dtype = t->dtype;
        in[k].dims = t->dims;
        if (l->type != KILN_LAYER_SHAPE) {
            in[k].data = t->producer->weights;
            in[k].bytes = t->producer->weights_bytes;
        }
    }
    kiln_status st = KILN_OK;
    memset(out, 0, sizeof out);
    for (int32_t k = 0; k < l->nb_outputs && st == KILN_OK; k++) {
        out[k].dtype = l->outputs[k]->dtype;
        out[k].dims = l->outputs[k]->dims;
        kiln__dtype_bytes(out[k].dtype, kiln__dims_volume(&out[k].dims), &out[k].bytes);
        out[k].data = kiln__malloc_aligned(&net->alloc, out[k].bytes ? out[k].bytes : 1, 64);
        if (!out[k].data) st = KILN_OUT_OF_MEMORY;
    }
    if (st == KILN_OK) {
        kiln__cpu_ctx cpu = {.pool = NULL, .alloc = &net->alloc};
        st = kiln__cpu_kernel_for(l->type)(l, in, out, &cpu);
    }
    /* Extra outputs first: they need the layer's output list intact. */
    for (int32_t k = 1; k < l->nb_outputs && st == KILN_OK; k++) {
        kiln_tensor *t = l->outputs[k];
        char name[KILN_MAX_NAME + 16];
        snprintf(name, sizeof name, "%s:%d", l->name, k);
        t->producer = NULL;
        kiln_layer *c;
        st = kiln__network_new_layer_wired(net, KILN_LAYER_CONSTANT, name, NULL, 0, &t, 1, &c);
        if (st != KILN_OK) {
            t->producer = l;
            break;
        }
        c->p.constant.dims = out[k].dims;
        c->p.constant.dtype = (int32_t)out[k].dtype;
        c->weights = out[k].data;
        c->weights_bytes = out[k].bytes;
        out[k].data = NULL;
    }
    if (st != KILN_OK) {
        for (int32_t k = 0; k < l->nb_outputs; k++) kiln__free(&net->alloc, out[k].data);
        return st;
    }
    l->type = KILN_LAYER_CONSTANT;
    l->nb_inputs = 0;
    l->nb_outputs = 1;
    memset(&l->p, 0, sizeof l->p);
    l->p.constant.dims = out[0].dims;
    l->p.constant.dtype = (int32_t)out[0].dtype;
    kiln__free(&net->alloc, l->weights);
    l->weights = out[0].data;
    l->weights_bytes = out[0].bytes;
    return KILN_OK;
}

static kiln_status add_layer(kiln__onnx_ctx *ctx, const kiln__onnx_node *node, kiln_layer_type type,
                             kiln_tensor *const *inputs, int32_t nb_inputs, int32_t nb_outputs, const void *params,
                             size_t params_size, bool fold, kiln_layer **out) {
    *out = NULL;
    if (params_size > sizeof(kiln__params))
        return kiln__onnx_node_error(node, KILN_INTERNAL_ERROR, "layer parameters of %zu bytes are too large",
                                     params_size);
    kiln_layer *l;
    kiln_status st = kiln__network_new_layer(ctx->net, type, inputs, nb_inputs, nb_outputs, &l);
    if (st != KILN_OK) return kiln__error_prefix(st, "node '%s' (%s)", node->name, node->op_type);
    if (params_size) memcpy(&l->p, params, params_size);
    char name[KILN_MAX_NAME];
    if (ctx->node_layers == 0) snprintf(name, sizeof name, "%s", node->name);
    else snprintf(name, sizeof name, "%s:%d", node->name, ctx->node_layers);
    ctx->node_layers++;
    /* A failure leaves the layer behind; any failure ends the import and frees the network. */
    KILN__TRY(kiln_layer_set_name(l, name));
    st = kiln__network_finish_layer(ctx->net, l, &l);
    if (st != KILN_OK) return kiln__error_prefix(st, "node '%s' (%s)", node->name, node->op_type);
    if (fold && foldable(l)) {
        st = fold_layer(ctx->net, l);
        if (st != KILN_OK) return kiln__error_prefix(st, "node '%s' (%s): folding constants", node->name, node->op_type);
    }
    *out = l;
    return KILN_OK;
}

kiln_status kiln__onnx_add_layer(kiln__onnx_ctx *ctx, const kiln__onnx_node *node, kiln_layer_type type,
                                 kiln_tensor *const *inputs, int32_t nb_inputs, int32_t nb_outputs,
                                 const void *params, size_t params_size, kiln_layer **layer) {
    kiln_layer *l;
    KILN__TRY(add_layer(ctx, node, type, inputs, nb_inputs, nb_outputs, params, params_size, true, &l));
    if (layer) *layer = l;
    return KILN_OK;
}

kiln_tensor *kiln__onnx_add1(kiln__onnx_ctx *ctx, const kiln__onnx_node *node, kiln_layer_type type,
                             kiln_tensor *const *inputs, int32_t nb_inputs, const void *params, size_t params_size,
                             kiln_status *st) {
    kiln_layer *l;
    *st = add_layer(ctx, node, type, inputs, nb_inputs, 1, params, params_size, true, &l);
    return *st == KILN_OK ? l->outputs[0] : NULL;
}

kiln_status kiln__onnx_add_constant(kiln__onnx_ctx *ctx, const kiln__onnx_node *node, kiln_dtype dtype,
                                    const kiln_dims *dims, const void *data, kiln_tensor **out) {
    *out = NULL;
    size_t bytes;
    if (!kiln__dtype_bytes(dtype, kiln__dims_volume(dims), &bytes))
        return kiln__onnx_node_error(node, KILN_INVALID_ARGUMENT, "a constant of dtype %s has no fixed size",
                                     kiln_dtype_name(dtype));
    kiln_layer *l;
    kiln_status st = kiln__network_add_constant_raw(ctx->net, dtype, dims, data, bytes, &l);
    if (st != KILN_OK) return kiln__error_prefix(st, "node '%s' (%s)", node->name, node->op_type);
    char name[KILN_MAX_NAME];
    snprintf(name, sizeof name, "%s:%d", node->name, ctx->node_layers++);
    KILN__TRY(kiln_layer_set_name(l, name));
    *out = l->outputs[0];
    return KILN_OK;
}

kiln_tensor *kiln__onnx_const_scalar(kiln__onnx_ctx *ctx, const kiln__onnx_node *node, kiln_dtype dtype, double v,
                                     int32_t rank, kiln_status *st) {
    uint8_t buf[8] = {0};
    if (dtype == KILN_BOOL) buf[0] = v != 0;
    else if (kiln__dtype_is_float(dtype) || kiln__dtype_is_integer(dtype)) kiln__store_f64(buf, dtype, 0, v);
    else {
        *st = kiln__onnx_node_error(node, KILN_UNSUPPORTED, "no scalar constant of dtype %s", kiln_dtype_name(dtype));
        return NULL;
    }
    kiln_dims dims = {.nb_dims = rank};
    for (int32_t i = 0; i < rank; i++) dims.d[i] = 1;
    kiln_tensor *t;
    *st = kiln__onnx_add_constant(ctx, node, dtype, &dims, buf, &t);
    return *st == KILN_OK ? t : NULL;
}

/* Whether t is already bound to an ONNX value (or is a graph input). */
static bool is_bound(const kiln__onnx_ctx *ctx, const kiln_tensor *t) {
    return t->is_input || (t->index < ctx->bound_cap && ctx->bound[t->index]);
}

/* The scope's prefix and name, for a tensor or a layer; names past the buffer are refused
 * rather than cut (cut names could collide). */
static kiln_status scoped_name(const char *prefix, const char *name, char *buf, size_t size) {
    if ((size_t)snprintf(buf, size, "%s%s", prefix, name) >= size)
        return kiln__error(KILN_UNSUPPORTED, "the name '%s%s' is too long for kiln (at most %zu characters)", prefix,
                           name, size - 1);
    return KILN_OK;
}

static kiln_status bind(kiln__onnx_ctx *ctx, const char *name, kiln_tensor *t) {
    char full[KILN_MAX_NAME * 4];
    KILN__TRY(scoped_name(ctx->scope->prefix, name, full, sizeof full));
    KILN__TRY(kiln_tensor_set_name(t, full));
    KILN__TRY(mark_bound(ctx, t));
    return put_value(ctx, name, (kiln__onnx_val){.tensor = t});
}

kiln_status kiln__onnx_out(kiln__onnx_ctx *ctx, const kiln__onnx_node *node, int32_t i, kiln_tensor *t) {
    if (!kiln__onnx_has_out(node, i)) return KILN_OK;
    if (!t) return kiln__onnx_node_error(node, KILN_INTERNAL_ERROR, "output %d has no tensor", i);
    /* A tensor has one name: a value that aliases another gets its own copy. */
    if (is_bound(ctx, t)) {
        kiln_layer *l;
        KILN__TRY(add_layer(ctx, node, KILN_LAYER_IDENTITY, &t, 1, 1, NULL, 0, true, &l));
        t = l->outputs[0];
    }
    return bind(ctx, node->outputs[i], t);
}

/* ---------------------------------------------------------------- sequences, optionals, subgraphs */

bool kiln__onnx_in_val(kiln__onnx_ctx *ctx, const kiln__onnx_node *node, int32_t i, kiln__onnx_val *out) {
    memset(out, 0, sizeof *out);
    if (i < 0 || i >= node->nb_inputs || !node->inputs[i][0]) return false;
    const kiln__onnx_val *v = lookup(ctx, node->inputs[i]);
    if (v) *out = *v;
    return v != NULL;
}

kiln_status kiln__onnx_out_val(kiln__onnx_ctx *ctx, const kiln__onnx_node *node, int32_t i, const kiln__onnx_val *v) {
    if (v->tensor) return kiln__onnx_out(ctx, node, i, v->tensor);
    if (!v->list) return kiln__onnx_node_error(node, KILN_INTERNAL_ERROR, "output %d has no value", i);
    if (!kiln__onnx_has_out(node, i)) return KILN_OK;
    return put_value(ctx, node->outputs[i], *v);
}

kiln_status kiln__onnx_list_new(kiln__onnx_ctx *ctx, kiln__onnx_list_kind kind, kiln_dtype dtype,
                                kiln_tensor *const *items, int32_t count, const kiln__onnx_list **out) {
    *out = NULL;
    if (count < 0 || count > (1 << 20)) return kiln__error(KILN_UNSUPPORTED, "a sequence of %d elements", count);
    list_block *b = kiln__malloc(&ctx->net->alloc, sizeof *b + (size_t)count * sizeof(kiln_tensor *) + 1);
    if (!b) return KILN_OUT_OF_MEMORY;
    for (int32_t k = 0; k < count; k++) b->items[k] = items[k];
    b->list = (kiln__onnx_list){.kind = kind, .dtype = dtype, .count = count, .items = b->items};
    b->next = ctx->lists;
    ctx->lists = b;
    *out = &b->list;
    return KILN_OK;
}

static kiln_status import_node(kiln__onnx_ctx *ctx, const kiln__onnx_node *node);
static kiln_status import_initializers(kiln__onnx_ctx *ctx, const kiln__onnx_graph *g);

/* Imports g's nodes in the current scope, naming each after the scope's prefix. */
static kiln_status import_body(kiln__onnx_ctx *ctx, const kiln__onnx_graph *g) {
    for (int32_t i = 0; i < g->nb_nodes; i++) {
        /* Unnamed nodes are named op_type + index, for their layers and for errors. */
        kiln__onnx_node node = g->nodes[i];
        char own[KILN_MAX_NAME], name[KILN_MAX_NAME * 4];
        if (!node.name[0]) snprintf(own, sizeof own, "%s_%d", node.op_type, i);
        KILN__TRY(scoped_name(ctx->scope->prefix, node.name[0] ? node.name : own, name, sizeof name));
        node.name = name;
        KILN__TRY(import_node(ctx, &node));
    }
    return KILN_OK;
}

kiln_status kiln__onnx_subgraph(kiln__onnx_ctx *ctx, const kiln__onnx_node *node, const kiln__onnx_graph *g,
                                const char *tag, const kiln__onnx_val *inputs, int32_t nb_inputs,
                                kiln__onnx_val *outputs) {
    if (nb_inputs != g->nb_inputs)
        return kiln__onnx_node_error(node, KILN_INVALID_ARGUMENT, "subgraph '%s' has %d inputs, expected %d", g->name,
                                     g->nb_inputs, nb_inputs);
    char prefix[KILN_MAX_NAME * 4];
    if ((size_t)snprintf(prefix, sizeof prefix, "%s%s/", node->name, tag) >= sizeof prefix)
        return kiln__onnx_node_error(node, KILN_UNSUPPORTED, "subgraph names are too long for kiln");
    scope sc = {.parent = ctx->scope, .prefix = prefix};
    size_t expected = (size_t)g->nb_inputs + (size_t)g->nb_initializers;
    for (int32_t i = 0; i < g->nb_nodes; i++) expected += (size_t)g->nodes[i].nb_outputs;
    KILN__TRY(map_init(&ctx->net->alloc, &sc.values, expected));
    int32_t node_layers = ctx->node_layers;
    ctx->scope = &sc;
    kiln_status st = KILN_OK;
    for (int32_t i = 0; st == KILN_OK && i < g->nb_inputs; i++) st = put_value(ctx, g->inputs[i].name, inputs[i]);
    if (st == KILN_OK) st = import_initializers(ctx, g);
    if (st == KILN_OK) st = import_body(ctx, g);
    for (int32_t i = 0; st == KILN_OK && i < g->nb_outputs; i++) {
        const kiln__onnx_val *v = lookup(ctx, g->outputs[i].name);
        if (v) outputs[i] = *v;
        else
            st = kiln__onnx_node_error(node, KILN_INVALID_ARGUMENT, "subgraph '%s' never computes its output '%s'",
                                       g->name, g->outputs[i].name);
    }
    ctx->scope = sc.parent;
    ctx->node_layers = node_layers;
    map_free(&ctx->net->alloc, &sc.values);
    return st;
}

/* ---------------------------------------------------------------- the graph walk */

static const char *domain_label(const char *domain) { return is_default_domain(domain) ? "ai.onnx" : domain; }

static const kiln__onnx_op *find_op(const kiln__onnx_node *node, int64_t opset) {
    const kiln__onnx_op *best = NULL;
    const char *domain = is_default_domain(node->domain) ? "" : node->domain;
    for (int f = 0; f < KILN__ONNX_NB_FAMILIES; f++) {
        const kiln__onnx_op *table = family_table(f);
        for (const kiln__onnx_op *op = table; op && op->op_type; op++)
            if (strcmp(op->op_type, node->op_type) == 0 && strcmp(op->domain, domain) == 0 && op->min_opset <= opset &&
                (!best || op->min_opset > best->min_opset))
                best = op;
    }
    return best;
}

static kiln_status check_opsets(const kiln__onnx_model *model) {
    for (int32_t i = 0; i < model->nb_opsets; i++) {
        const kiln__onnx_opset *o = &model->opsets[i];
        if (is_default_domain(o->domain) && (o->version < KILN__ONNX_MIN_OPSET || o->version > KILN__ONNX_MAX_OPSET))
            return kiln__error(KILN_UNSUPPORTED, "the model imports opset %lld of domain 'ai.onnx'; kiln supports %d to %d",
                               (long long)o->version, KILN__ONNX_MIN_OPSET, KILN__ONNX_MAX_OPSET);
    }
    return KILN_OK;
}

/* Initializer data used in place: bytes straight from a file the model maps, 64-byte aligned
 * (kernels make aligned typed loads). Decoded typed fields and unaligned data are copied. */
static bool borrowable(const kiln__onnx_ctx *ctx, const kiln__onnx_tensor *t, const kiln__onnx_data *data) {
    bool mapped = t->source == KILN__ONNX_DATA_EXTERNAL || (t->source == KILN__ONNX_DATA_RAW && ctx->borrow_raw);
    return ctx->owner && mapped && !data->owned && data->size && ((uintptr_t)data->data & 63) == 0;
}

static kiln_status add_borrowed_constant(kiln__onnx_ctx *ctx, kiln_dtype dtype, const kiln_dims *dims,
                                         const kiln__onnx_data *data, kiln_layer **out) {
    kiln_layer *l;
    KILN__TRY(kiln__network_new_layer(ctx->net, KILN_LAYER_CONSTANT, NULL, 0, 1, &l));
    l->p.constant.dims = *dims;
    l->p.constant.dtype = dtype;
    kiln__layer_borrow_weights(l, data->data, data->size, ctx->owner);
    return kiln__network_finish_layer(ctx->net, l, out);
}

static kiln_status import_initializers(kiln__onnx_ctx *ctx, const kiln__onnx_graph *g) {
    kiln_network *net = ctx->net;
    for (int32_t i = 0; i < g->nb_initializers; i++) {
        const kiln__onnx_tensor *t = &g->initializers[i];
        if (t->dtype == KILN_DTYPE_UNDEFINED || t->dtype == KILN_STRING)
            return kiln__error(KILN_UNSUPPORTED, "initializer '%s' has ONNX data type %d, which kiln does not support",
                               t->name, (int)t->data_type);
        if (t->nb_dims > KILN_MAX_DIMS)
            return kiln__error(KILN_UNSUPPORTED, "initializer '%s' has rank %d; kiln supports up to %d", t->name,
                               t->nb_dims, KILN_MAX_DIMS);
        kiln_dims dims = {.nb_dims = t->nb_dims};
        for (int32_t d = 0; d < t->nb_dims; d++) dims.d[d] = t->dims[d];
        kiln__onnx_data data;
        kiln_status st = kiln__onnx_tensor_data(&net->alloc, t, &data);
        if (st != KILN_OK) return kiln__error_prefix(st, "initializer '%s'", t->name);
        kiln_layer *l;
        if (borrowable(ctx, t, &data)) st = add_borrowed_constant(ctx, t->dtype, &dims, &data, &l);
        else st = kiln__network_add_constant_raw(net, t->dtype, &dims, data.data, data.size, &l);
        kiln__onnx_data_release(&net->alloc, &data);
        if (st == KILN_OK) st = kiln_layer_set_name(l, t->name);
        if (st == KILN_OK) st = bind(ctx, t->name, l->outputs[0]);
        if (st != KILN_OK) return kiln__error_prefix(st, "initializer '%s'", t->name);
    }
    return KILN_OK;
}

static const char *type_kind_name(kiln__onnx_type_kind kind) {
    return kind == KILN__ONNX_TYPE_SEQUENCE ? "sequence" : kind == KILN__ONNX_TYPE_OPTIONAL ? "optional" : "tensor";
}

/* A network input for a tensor graph input, or for one element of a sequence or optional
 * input (`form_dims` set: the dims the caller fixed, checked against the declared type). */
static kiln_status add_input(kiln__onnx_ctx *ctx, const char *what, const char *name, const kiln__onnx_type *ty,
                             kiln_dtype form_dtype, const kiln_dims *form_dims, kiln_tensor **out) {
    kiln_dtype dtype = ty->elem_type ? (kiln_dtype)ty->elem_type : form_dtype;
    if (form_dims && ty->elem_type && form_dtype != dtype)
        return kiln__error(KILN_INVALID_ARGUMENT, "graph input %s is given as %s, the model declares ONNX type %d", what,
                           kiln_dtype_name(form_dtype), (int)ty->elem_type);
    if (!kiln__dtype_valid(dtype) || dtype == KILN_STRING)
        return kiln__error(KILN_UNSUPPORTED, "graph input %s has ONNX data type %d, which kiln does not support", what,
                           (int)dtype);
    if (!form_dims && !ty->has_shape)
        return kiln__error(KILN_UNSUPPORTED, "graph input %s has no shape; kiln needs at least its rank", what);
    int32_t rank = form_dims ? form_dims->nb_dims : ty->rank;
    if (rank > KILN_MAX_DIMS)
        return kiln__error(KILN_UNSUPPORTED, "graph input %s has rank %d; kiln supports up to %d", what, rank,
                           KILN_MAX_DIMS);
    kiln_dims dims = {.nb_dims = rank};
    for (int32_t d = 0; d < rank; d++) {
        int64_t declared = ty->has_shape && d < ty->rank ? ty->dims[d].value : -1;
        dims.d[d] = form_dims ? form_dims->d[d] : declared >= 0 ? declared : -1;
        if (form_dims && ty->has_shape && (ty->rank != rank || (declared >= 0 && declared != dims.d[d])))
            return kiln__error(KILN_INVALID_ARGUMENT, "graph input %s is given with dim %d of %lld (rank %d), the model "
                               "declares rank %d", what, d, (long long)dims.d[d], rank, ty->rank);
    }
    kiln_tensor *t;
    KILN__TRY(kiln_network_add_input(ctx->net, name, dtype, &dims, &t));
    for (int32_t d = 0; !form_dims && d < ty->rank; d++)
        if (ty->dims[d].value < 0 && ty->dims[d].param && ty->dims[d].param[0])
            KILN__TRY(kiln_tensor_set_dim_name(t, d, ty->dims[d].param));
    *out = t;
    return KILN_OK;
}

/* A sequence or optional graph input, made of one network input per element as `form` says. */
static kiln_status import_list_input(kiln__onnx_ctx *ctx, const kiln__onnx_value_info *vi,
                                     const kiln__onnx_input_form *form) {
    const kiln__onnx_type *ty = &vi->type, *elem = ty->elem;
    bool optional = ty->kind == KILN__ONNX_TYPE_OPTIONAL;
    bool is_seq = !optional || (elem && elem->kind == KILN__ONNX_TYPE_SEQUENCE);
    if (optional && is_seq) elem = elem->elem;
    if (!elem || elem->kind != KILN__ONNX_TYPE_TENSOR)
        return kiln__error(KILN_UNSUPPORTED, "graph input '%s': kiln supports sequences and optionals of tensors only",
                           vi->name);
    kiln__onnx_list_kind kind = !optional                   ? KILN__ONNX_SEQUENCE
                                : !form->present            ? KILN__ONNX_OPTIONAL_NONE
                                : is_seq                    ? KILN__ONNX_OPTIONAL_SEQUENCE
                                                            : KILN__ONNX_OPTIONAL_TENSOR;
    int32_t count = kind == KILN__ONNX_OPTIONAL_NONE ? 0 : form->count;
    if (kind == KILN__ONNX_OPTIONAL_TENSOR && count != 1)
        return kiln__error(KILN_INVALID_ARGUMENT, "graph input '%s' (an optional tensor) is given %d elements, "
                           "expected 1", vi->name, count);
    if (count < 0 || count > 4096)
        return kiln__error(KILN_UNSUPPORTED, "graph input '%s' is given %d elements; kiln supports 0 to 4096", vi->name,
                           count);
    kiln_tensor **items = kiln__calloc(&ctx->net->alloc, (size_t)count + 1, sizeof *items);
    if (!items) return KILN_OUT_OF_MEMORY;
    kiln_status st = KILN_OK;
    for (int32_t k = 0; st == KILN_OK && k < count; k++) {
        char name[KILN_MAX_NAME + 16], what[KILN_MAX_NAME + 32];
        if (kind == KILN__ONNX_OPTIONAL_TENSOR) snprintf(name, sizeof name, "%s", vi->name);
        else snprintf(name, sizeof name, "%s[%d]", vi->name, k);
        snprintf(what, sizeof what, "'%s'", name);
        st = add_input(ctx, what, name, elem, form->dtypes[k], &form->dims[k], &items[k]);
    }
    const kiln__onnx_list *list = NULL;
    if (st == KILN_OK) st = kiln__onnx_list_new(ctx, kind, (kiln_dtype)elem->elem_type, items, count, &list);
    kiln__free(&ctx->net->alloc, items);
    if (st == KILN_OK) st = put_value(ctx, vi->name, (kiln__onnx_val){.list = list});
    return st;
}

static kiln_status import_inputs(kiln__onnx_ctx *ctx, const kiln__onnx_graph *g, const kiln__onnx_input_form *forms,
                                 int32_t nb_forms) {
    for (int32_t i = 0; i < g->nb_inputs; i++) {
        const kiln__onnx_value_info *vi = &g->inputs[i];
        if (lookup(ctx, vi->name)) continue; /* an initializer listed as input (IR < 4) */
        const kiln__onnx_type *ty = &vi->type;
        if (ty->kind == KILN__ONNX_TYPE_SEQUENCE || ty->kind == KILN__ONNX_TYPE_OPTIONAL) {
            const kiln__onnx_input_form *form = NULL;
            for (int32_t k = 0; k < nb_forms && !form; k++)
                if (strcmp(forms[k].name, vi->name) == 0) form = &forms[k];
            /* The model fixes neither the length nor the element shapes; the network has
             * static lists, so the caller must (kiln__onnx_import's forms). */
            if (!form)
                return kiln__error(KILN_UNSUPPORTED,
                                   "graph input '%s' is a %s, whose length the model does not fix; kiln imports such "
                                   "inputs only with their form given (elements and their shapes)",
                                   vi->name, type_kind_name(ty->kind));
            KILN__TRY(import_list_input(ctx, vi, form));
            continue;
        }
        if (ty->kind != KILN__ONNX_TYPE_TENSOR)
            return kiln__error(KILN_UNSUPPORTED, "graph input '%s' is a value without a type", vi->name);
        char what[KILN_MAX_NAME + 8];
        snprintf(what, sizeof what, "'%s'", vi->name);
        kiln_tensor *t = NULL;
        KILN__TRY(add_input(ctx, what, vi->name, ty, KILN_DTYPE_UNDEFINED, NULL, &t));
        KILN__TRY(put_value(ctx, vi->name, (kiln__onnx_val){.tensor = t}));
    }
    return KILN_OK;
}

static kiln_status import_node(kiln__onnx_ctx *ctx, const kiln__onnx_node *node) {
    ctx->node_layers = 0;
    kiln__onnx_val v;
    if (strcmp(node->op_type, "Identity") == 0 && is_default_domain(node->domain) &&
        kiln__onnx_in_val(ctx, node, 0, &v) && v.list) {
        /* Identity passes sequences and optionals too; lists are immutable, so share it. */
        KILN__TRY(kiln__onnx_out_val(ctx, node, 0, &v));
    } else {
        int64_t opset = kiln__onnx_node_opset(ctx, node);
        const kiln__onnx_op *op = opset > 0 ? find_op(node, opset) : NULL;
        if (!op)
            return kiln__onnx_node_error(node, KILN_UNSUPPORTED, "op %s (domain '%s', opset %lld) is not supported",
                                         node->op_type, domain_label(node->domain), (long long)opset);
        KILN__TRY(op->import(ctx, node));
    }
    for (int32_t i = 0; i < node->nb_outputs; i++)
        if (kiln__onnx_has_out(node, i) && !map_get(&ctx->scope->values, node->outputs[i]))
            return kiln__onnx_node_error(node, KILN_INTERNAL_ERROR, "the importer left output %d ('%s') unset", i,
                                         node->outputs[i]);
    return KILN_OK;
}

/* Marks t as the network output `name`; a tensor that carries another name, is a constant,
 * a network input or already an output is copied into a tensor of its own first. */
static kiln_status mark_output(kiln__onnx_ctx *ctx, const char *name, kiln_tensor *t) {
    bool constant = t->producer && t->producer->type == KILN_LAYER_CONSTANT;
    bool same = strcmp(t->name, name) == 0;
    if ((same && !constant && !t->is_input) || (same && t->is_output)) return kiln_network_mark_output(ctx->net, t);
    if (!is_bound(ctx, t) && !constant && !t->is_output) {
        KILN__TRY(kiln_tensor_set_name(t, name));
        KILN__TRY(mark_bound(ctx, t));
        return kiln_network_mark_output(ctx->net, t);
    }
    if (same && t->is_input)
        /* An input passed straight through: the output needs a tensor of its own, which
         * cannot share the input's name. */
        return kiln__error(KILN_UNSUPPORTED, "graph output '%s' is also a graph input; kiln needs distinct names",
                           name);
    if (same) {
        /* The output gets the value's name; the constant keeps a name of its own. */
        char own[KILN_MAX_NAME + 16];
        snprintf(own, sizeof own, "%s:constant", name);
        KILN__TRY(kiln_tensor_set_name(t, own));
    }
    kiln__onnx_node node = {.name = name, .op_type = "Identity", .domain = ""};
    kiln_layer *l;
    ctx->node_layers = 0;
    KILN__TRY(add_layer(ctx, &node, KILN_LAYER_IDENTITY, &t, 1, 1, NULL, 0, false, &l));
    t = l->outputs[0];
    KILN__TRY(kiln_tensor_set_name(t, name));
    KILN__TRY(mark_bound(ctx, t));
    return kiln_network_mark_output(ctx->net, t);
}

/* Graph outputs; a sequence becomes one network output per element, "name[i]", an optional
 * its element (as "name", or "name[i]" for a sequence) or nothing when it is empty. */
static kiln_status import_outputs(kiln__onnx_ctx *ctx, const kiln__onnx_graph *g) {
    for (int32_t i = 0; i < g->nb_outputs; i++) {
        const kiln__onnx_value_info *vi = &g->outputs[i];
        const kiln__onnx_val *v = lookup(ctx, vi->name);
        if (!v) return kiln__error(KILN_INVALID_ARGUMENT, "graph output '%s' is never computed", vi->name);
        if (v->tensor) {
            if (vi->type.kind == KILN__ONNX_TYPE_SEQUENCE)
                return kiln__error(KILN_INVALID_ARGUMENT, "graph output '%s' is declared a sequence but is a tensor",
                                   vi->name);
            KILN__TRY(mark_output(ctx, vi->name, v->tensor));
            continue;
        }
        const kiln__onnx_list *list = v->list;
        bool declared_optional = vi->type.kind == KILN__ONNX_TYPE_OPTIONAL;
        if ((vi->type.kind == KILN__ONNX_TYPE_TENSOR) ||
            (vi->type.kind == KILN__ONNX_TYPE_SEQUENCE && list->kind != KILN__ONNX_SEQUENCE) ||
            (declared_optional && list->kind == KILN__ONNX_SEQUENCE))
            return kiln__error(KILN_INVALID_ARGUMENT, "graph output '%s' is declared a %s but is a %s", vi->name,
                               type_kind_name(vi->type.kind),
                               list->kind == KILN__ONNX_SEQUENCE ? "sequence" : "optional");
        for (int32_t k = 0; k < list->count; k++) {
            char name[KILN_MAX_NAME + 16];
            if (list->kind == KILN__ONNX_OPTIONAL_TENSOR) snprintf(name, sizeof name, "%s", vi->name);
            else snprintf(name, sizeof name, "%s[%d]", vi->name, k);
            KILN__TRY(mark_output(ctx, name, list->items[k]));
        }
    }
    return KILN_OK;
}

/* Imports `model`; with `owner` (which keeps the model alive), mapped initializer data is
 * borrowed by the network's constants instead of copied. */
static kiln_status import_model(kiln_builder *builder, const kiln__onnx_model *model, kiln__shared *owner,
                                bool borrow_raw, const kiln__onnx_input_form *forms, int32_t nb_forms,
                                kiln_network **out) {
    *out = NULL;
    KILN__TRY(check_opsets(model));
    const kiln__onnx_graph *g = model->graph;
    if (!g) return kiln__error(KILN_INVALID_ARGUMENT, "the model has no graph");
    kiln__onnx_ctx ctx = {.model = model, .owner = owner, .borrow_raw = borrow_raw};
    scope top = {.prefix = ""};
    ctx.scope = &top;
    KILN__TRY(kiln__network_create(&builder->alloc, &builder->log, &ctx.net));
    size_t expected = (size_t)g->nb_inputs + (size_t)g->nb_initializers;
    for (int32_t i = 0; i < g->nb_nodes; i++) expected += (size_t)g->nodes[i].nb_outputs;
    kiln_status st = map_init(&ctx.net->alloc, &top.values, expected);
    if (st == KILN_OK) st = import_initializers(&ctx, g);
    if (st == KILN_OK) st = import_inputs(&ctx, g, forms, nb_forms);
    if (st == KILN_OK) st = import_body(&ctx, g);
    if (st == KILN_OK) st = import_outputs(&ctx, g);
    map_free(&ctx.net->alloc, &top.values);
    kiln__free(&ctx.net->alloc, ctx.bound);
    while (ctx.lists) {
        list_block *next = ctx.lists->next;
        kiln__free(&ctx.net->alloc, ctx.lists);
        ctx.lists = next;
    }
    if (st != KILN_OK) {
        kiln_network_destroy(ctx.net);
        return st;
    }
    kiln__logf(&builder->log, KILN_LOG_INFO, "imported %d ONNX nodes into %lld layers", g->nb_nodes,
               (long long)ctx.net->nb_layers);
    *out = ctx.net;
    return KILN_OK;
}

kiln_status kiln__onnx_import(kiln_builder *builder, const kiln__onnx_model *model, const kiln__onnx_input_form *forms,
                              int32_t nb_forms, kiln_network **out) {
    /* The caller keeps the model: every initializer is copied. */
    return import_model(builder, model, NULL, false, forms, nb_forms, out);
}

/* Owns a model whose mapped files the network's constants may borrow; freed with the last
 * constant (of the network or of any engine built from it). */
typedef struct model_owner {
    kiln__shared shared;
    kiln__alloc alloc;
    kiln__onnx_model *model;
} model_owner;

static void model_owner_release(void *ctx) {
    model_owner *o = ctx;
    kiln__alloc alloc = o->alloc;
    kiln__onnx_model_free(o->model);
    kiln__free(&alloc, o);
}

/* Imports a model it takes over: freed here unless constants borrow its data. */
static kiln_status import_owned(kiln_builder *builder, kiln__onnx_model *model, bool borrow_raw,
                                kiln_network **network) {
    model_owner *o = kiln__malloc(&builder->alloc, sizeof *o);
    if (!o) {
        kiln__onnx_model_free(model);
        return KILN_OUT_OF_MEMORY;
    }
    o->alloc = builder->alloc;
    o->model = model;
    kiln__shared_init(&o->shared, model_owner_release, o);
    kiln_status st = import_model(builder, model, &o->shared, borrow_raw, NULL, 0, network);
    kiln__shared_unref(&o->shared); /* the import's reference; borrowing constants hold theirs */
    return st;
}

kiln_status kiln_onnx_parse(kiln_builder *builder, const void *data, size_t size, const char *base_dir,
                            kiln_network **network) {
    if (network) *network = NULL;
    if (!builder || !network || (!data && size))
        return kiln__error(KILN_INVALID_ARGUMENT, "onnx_parse: builder, data or output pointer is NULL");
    kiln__onnx_model *model;
    KILN__TRY(kiln__onnx_model_parse(&builder->alloc, data, size, base_dir, &model));
    /* raw_data points into the caller's bytes, which may go once this returns; only
     * external data (files the model maps) is borrowed. */
    return import_owned(builder, model, false, network);
}

kiln_status kiln_onnx_parse_file(kiln_builder *builder, const char *path, kiln_network **network) {
    if (network) *network = NULL;
    if (!builder || !path || !network)
        return kiln__error(KILN_INVALID_ARGUMENT, "onnx_parse_file: builder, path or output pointer is NULL");
    kiln__onnx_model *model;
    KILN__TRY(kiln__onnx_model_load(&builder->alloc, path, &model));
    kiln_status st = import_owned(builder, model, true, network);
    if (st != KILN_OK) kiln__error_prefix(st, "%s", path);
    return st;
}
