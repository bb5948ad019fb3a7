/* ONNX importers for the table-driven ML ops: ai.onnx.ml TreeEnsemble and LabelEncoder
 * (numbers only: kiln has no string tensors) and TfIdfVectorizer over integer tokens. Each
 * turns its attributes into constant tables that its layer reads (misc_layers.h). Listed in
 * kiln__onnx_ops_misc (import_misc.c). */
#include "onnx/import_misc.h"

#include "cpu/cpu.h"
#include "network/misc_layers.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

static const kiln__alloc *net_alloc(kiln__onnx_ctx *ctx) { return &kiln__onnx_network(ctx)->alloc; }

/* A tensor attribute's elements in new, aligned memory (the model's raw data may sit at any
 * address, and typed loads need alignment); freed by the caller. */
static kiln_status tensor_attr_copy(kiln__onnx_ctx *ctx, const kiln__onnx_node *node, const char *name,
                                    const kiln__onnx_tensor *t, void **out) {
    kiln__onnx_data d;
    kiln_status st = kiln__onnx_tensor_data(net_alloc(ctx), t, &d);
    if (st != KILN_OK) return kiln__error_prefix(st, "node '%s' (%s): attribute '%s'", node->name, node->op_type, name);
    *out = kiln__malloc(net_alloc(ctx), d.size ? d.size : 1);
    if (*out && d.size) memcpy(*out, d.data, d.size);
    kiln__onnx_data_release(net_alloc(ctx), &d);
    return *out ? KILN_OK : KILN_OUT_OF_MEMORY;
}

static kiln_status required(const kiln__onnx_node *node, const char *name) {
    return kiln__onnx_node_attr(node, name)
               ? KILN_OK
               : kiln__onnx_node_error(node, KILN_INVALID_ARGUMENT, "attribute '%s' is required", name);
}

/* Reads a tensor attribute's elements as doubles into a new array of *count (freed by the
 * caller); NULL array and count 0 when absent. */
static kiln_status tensor_attr_f64(kiln__onnx_ctx *ctx, const kiln__onnx_node *node, const char *name, double **out,
                                   int64_t *count) {
    *out = NULL;
    *count = 0;
    const kiln__onnx_tensor *t = NULL;
    KILN__TRY(kiln__onnx_attr_tensor(node, name, &t));
    if (!t) return KILN_OK;
    if (!kiln__dtype_is_float(t->dtype) && !kiln__dtype_is_integer(t->dtype))
        return kiln__onnx_node_error(node, KILN_UNSUPPORTED, "attribute '%s' has ONNX data type %d, expected numbers",
                                     name, (int)t->data_type);
    void *raw;
    KILN__TRY(tensor_attr_copy(ctx, node, name, t, &raw));
    double *v = kiln__malloc(net_alloc(ctx), sizeof(double) * (size_t)(t->count ? t->count : 1));
    if (v)
        for (int64_t i = 0; i < t->count; i++) v[i] = kiln__load_f64(raw, t->dtype, i);
    kiln__free(net_alloc(ctx), raw);
    if (!v) return KILN_OUT_OF_MEMORY;
    *out = v;
    *count = t->count;
    return KILN_OK;
}

static kiln_tensor *const_1d(kiln__onnx_ctx *ctx, const kiln__onnx_node *node, kiln_dtype dt, int64_t n,
                             const void *data, kiln_status *st) {
    kiln_dims dims = {1, {n}};
    kiln_tensor *t = NULL;
    *st = kiln__onnx_add_constant(ctx, node, dt, &dims, data, &t);
    return t;
}

/* ---------------------------------------------------------------- TreeEnsemble */

typedef struct tree_attrs {
    const int64_t *feature, *true_id, *false_id, *true_leaf, *false_leaf, *missing, *roots, *targets;
    int64_t nb_nodes, nb_roots, nb_leaves, nb_missing;
    double *splits, *modes, *weights, *members;
    int64_t nb_splits, nb_modes, nb_weights, nb_members;
} tree_attrs;

static kiln_status tree_ints(const kiln__onnx_node *node, const char *name, const int64_t **v, int64_t *n,
                             int64_t want) {
    KILN__TRY(kiln__onnx_attr_ints(node, name, v, n));
    if (want >= 0 && *n != want)
        return kiln__onnx_node_error(node, KILN_INVALID_ARGUMENT, "attribute '%s' has %lld values, expected %lld", name,
                                     (long long)*n, (long long)want);
    return KILN_OK;
}

/* Reads and checks the attributes; the caller frees the double arrays. */
static kiln_status tree_read(kiln__onnx_ctx *ctx, const kiln__onnx_node *node, tree_attrs *a) {
    static const char *const REQ[] = {"nodes_featureids", "nodes_truenodeids", "nodes_falsenodeids", "nodes_trueleafs",
                                      "nodes_falseleafs", "nodes_splits",      "nodes_modes",        "leaf_targetids",
                                      "leaf_weights",     "tree_roots"};
    for (size_t i = 0; i < KILN__ARRAY_LEN(REQ); i++) KILN__TRY(required(node, REQ[i]));
    int64_t n;
    KILN__TRY(tree_ints(node, "nodes_featureids", &a->feature, &a->nb_nodes, -1));
    KILN__TRY(tree_ints(node, "nodes_truenodeids", &a->true_id, &n, a->nb_nodes));
    KILN__TRY(tree_ints(node, "nodes_falsenodeids", &a->false_id, &n, a->nb_nodes));
    KILN__TRY(tree_ints(node, "nodes_trueleafs", &a->true_leaf, &n, a->nb_nodes));
    KILN__TRY(tree_ints(node, "nodes_falseleafs", &a->false_leaf, &n, a->nb_nodes));
    KILN__TRY(tree_ints(node, "leaf_targetids", &a->targets, &a->nb_leaves, -1));
    KILN__TRY(tree_ints(node, "tree_roots", &a->roots, &a->nb_roots, -1));
    if (kiln__onnx_node_attr(node, "nodes_missing_value_tracks_true"))
        KILN__TRY(tree_ints(node, "nodes_missing_value_tracks_true", &a->missing, &n, a->nb_nodes));
    KILN__TRY(tensor_attr_f64(ctx, node, "nodes_splits", &a->splits, &a->nb_splits));
    KILN__TRY(tensor_attr_f64(ctx, node, "nodes_modes", &a->modes, &a->nb_modes));
    KILN__TRY(tensor_attr_f64(ctx, node, "leaf_weights", &a->weights, &a->nb_weights));
    KILN__TRY(tensor_attr_f64(ctx, node, "membership_values", &a->members, &a->nb_members));
    if (a->nb_splits != a->nb_nodes || a->nb_modes != a->nb_nodes)
        return kiln__onnx_node_error(node, KILN_INVALID_ARGUMENT,
                                     "nodes_splits and nodes_modes have %lld and %lld values, expected %lld",
                                     (long long)a->nb_splits, (long long)a->nb_modes, (long long)a->nb_nodes);
    if (a->nb_weights != a->nb_leaves)
        return kiln__onnx_node_error(node, KILN_INVALID_ARGUMENT, "leaf_weights has %lld values, expected %lld",
                                     (long long)a->nb_weights, (long long)a->nb_leaves);
    return KILN_OK;
}

/* The node table of misc_layers.h; set members are consumed, NaN-delimited, in node order. */
static kiln_status tree_table(const kiln__onnx_node *node, const tree_attrs *a, int64_t *table) {
    int64_t member = 0;
    for (int64_t i = 0; i < a->nb_nodes; i++) {
        int64_t *row = table + i * KILN__TREE_COLS;
        row[KILN__TREE_COL_FEATURE] = a->feature[i];
        row[KILN__TREE_COL_MODE] = (int64_t)a->modes[i];
        row[KILN__TREE_COL_TRUE_ID] = a->true_id[i];
        row[KILN__TREE_COL_TRUE_LEAF] = a->true_leaf[i] != 0;
        row[KILN__TREE_COL_FALSE_ID] = a->false_id[i];
        row[KILN__TREE_COL_FALSE_LEAF] = a->false_leaf[i] != 0;
        row[KILN__TREE_COL_MISSING_TRUE] = a->missing ? a->missing[i] != 0 : 0;
        row[KILN__TREE_COL_SET_BEGIN] = row[KILN__TREE_COL_SET_END] = 0;
        if (a->modes[i] < KILN__TREE_LEQ || a->modes[i] > KILN__TREE_MEMBER)
            return kiln__onnx_node_error(node, KILN_INVALID_ARGUMENT, "node %lld has mode %g, expected 0..6",
                                         (long long)i, a->modes[i]);
        if (row[KILN__TREE_COL_MODE] != KILN__TREE_MEMBER) continue;
        row[KILN__TREE_COL_SET_BEGIN] = member;
        while (member < a->nb_members && !isnan(a->members[member])) member++;
        if (member >= a->nb_members)
            return kiln__onnx_node_error(node, KILN_INVALID_ARGUMENT,
                                         "membership_values has no NaN-ended set for node %lld", (long long)i);
        row[KILN__TREE_COL_SET_END] = member++;
    }
    return KILN_OK;
}

kiln_status kiln__misc_import_tree_ensemble(kiln__onnx_ctx *ctx, const kiln__onnx_node *node) {
    kiln_status st = KILN_OK;
    kiln_tensor *x = kiln__onnx_in_required(ctx, node, 0, "X", &st);
    if (!x) return st;
    kiln__tree_params p = {.aggregate = KILN__TREE_SUM, .post = KILN__TREE_POST_NONE, .n_targets = -1};
    int64_t agg = KILN__TREE_SUM, post = KILN__TREE_POST_NONE;
    KILN__TRY(kiln__onnx_attr_int(node, "aggregate_function", &agg));
    KILN__TRY(kiln__onnx_attr_int(node, "post_transform", &post));
    KILN__TRY(kiln__onnx_attr_int(node, "n_targets", &p.n_targets));
    if (agg < KILN__TREE_AVERAGE || agg > KILN__TREE_MAX || post < KILN__TREE_POST_NONE ||
        post > KILN__TREE_POST_PROBIT)
        return kiln__onnx_node_error(node, KILN_INVALID_ARGUMENT,
                                     "aggregate_function %lld / post_transform %lld, expected 0..3 / 0..4",
                                     (long long)agg, (long long)post);
    p.aggregate = (int32_t)agg;
    p.post = (int32_t)post;
    tree_attrs a = {0};
    int64_t *table = NULL, *roots = NULL;
    st = tree_read(ctx, node, &a);
    if (st == KILN_OK) {
        table = kiln__malloc(net_alloc(ctx), sizeof(int64_t) * (size_t)(a.nb_nodes * KILN__TREE_COLS + 1));
        roots = kiln__malloc(net_alloc(ctx), sizeof(int64_t) * (size_t)(a.nb_roots + 1));
        if (!table || !roots) st = KILN_OUT_OF_MEMORY;
    }
    if (st == KILN_OK) st = tree_table(node, &a, table);
    if (st == KILN_OK && p.n_targets < 0) {
        p.n_targets = 0;
        for (int64_t l = 0; l < a.nb_leaves; l++) p.n_targets = KILN__MAX(p.n_targets, a.targets[l] + 1);
    }
    /* A root that is itself a leaf: both branches go to the same leaf; encoded as -1 - leaf. */
    for (int64_t r = 0; st == KILN_OK && r < a.nb_roots; r++) {
        int64_t id = a.roots[r];
        if (id < 0 || id >= a.nb_nodes) {
            st = kiln__onnx_node_error(node, KILN_INVALID_ARGUMENT, "tree_roots[%lld] is %lld, expected 0..%lld",
                                       (long long)r, (long long)id, (long long)a.nb_nodes - 1);
            break;
        }
        bool leaf = a.true_leaf[id] && a.false_leaf[id] && a.true_id[id] == a.false_id[id];
        roots[r] = leaf ? -1 - a.true_id[id] : id;
    }
    kiln_tensor *in[7] = {x, NULL};
    if (st == KILN_OK) {
        kiln_dims nd = {2, {a.nb_nodes, KILN__TREE_COLS}};
        st = kiln__onnx_add_constant(ctx, node, KILN_INT64, &nd, table, &in[1]);
    }
    if (st == KILN_OK) in[2] = const_1d(ctx, node, KILN_FLOAT64, a.nb_nodes, a.splits, &st);
    if (st == KILN_OK) in[3] = const_1d(ctx, node, KILN_INT64, a.nb_roots, roots, &st);
    if (st == KILN_OK) in[4] = const_1d(ctx, node, KILN_INT64, a.nb_leaves, a.targets, &st);
    if (st == KILN_OK) in[5] = const_1d(ctx, node, KILN_FLOAT64, a.nb_leaves, a.weights, &st);
    if (st == KILN_OK && a.members) in[6] = const_1d(ctx, node, KILN_FLOAT64, a.nb_members, a.members, &st);
    kiln_tensor *y = NULL;
    if (st == KILN_OK) y = kiln__onnx_add1(ctx, node, KILN_LAYER_TREE_ENSEMBLE, in, 7, &p, sizeof p, &st);
    kiln__free(net_alloc(ctx), table);
    kiln__free(net_alloc(ctx), roots);
    kiln__free(net_alloc(ctx), a.splits);
    kiln__free(net_alloc(ctx), a.modes);
    kiln__free(net_alloc(ctx), a.weights);
    kiln__free(net_alloc(ctx), a.members);
    return kiln__misc_out(ctx, node, 0, y, &st);
}

/* ---------------------------------------------------------------- sorting */

/* Stable merge sort of idx[0..n) under less(arg, a, b); tmp holds n entries. */
typedef bool (*less_fn)(const void *arg, int64_t a, int64_t b);
static void merge_sort(int64_t *idx, int64_t *tmp, int64_t n, less_fn less, const void *arg) {
    if (n < 2) return;
    int64_t h = n / 2;
    merge_sort(idx, tmp, h, less, arg);
    merge_sort(idx + h, tmp, n - h, less, arg);
    int64_t i = 0, j = h, k = 0;
    while (i < h && j < n) tmp[k++] = less(arg, idx[j], idx[i]) ? idx[j++] : idx[i++];
    while (i < h) tmp[k++] = idx[i++];
    while (j < n) tmp[k++] = idx[j++];
    memcpy(idx, tmp, sizeof(int64_t) * (size_t)n);
}

/* ---------------------------------------------------------------- TfIdfVectorizer */

typedef struct gram_rows {
    const int64_t *rows;
    int64_t width;
} gram_rows;

/* By (length, tokens). */
static bool gram_less(const void *arg, int64_t a, int64_t b) {
    const gram_rows *g = arg;
    const int64_t *ra = g->rows + a * g->width, *rb = g->rows + b * g->width;
    if (ra[0] != rb[0]) return ra[0] < rb[0];
    for (int64_t k = 2; k < 2 + ra[0]; k++)
        if (ra[k] != rb[k]) return ra[k] < rb[k];
    return false;
}

static kiln_status tfidf_attrs(const kiln__onnx_node *node, kiln__tfidf_params *p) {
    static const char *const REQ[] = {"mode",           "min_gram_length", "max_gram_length",
                                      "max_skip_count", "ngram_counts",    "ngram_indexes"};
    for (size_t i = 0; i < KILN__ARRAY_LEN(REQ); i++) KILN__TRY(required(node, REQ[i]));
    if (kiln__onnx_node_attr(node, "pool_strings"))
        return kiln__onnx_node_error(node, KILN_UNSUPPORTED, "pool_strings: kiln has no string tensors");
    if (!kiln__onnx_node_attr(node, "pool_int64s"))
        return kiln__onnx_node_error(node, KILN_INVALID_ARGUMENT, "attribute 'pool_int64s' is required");
    kiln__onnx_bytes mode = {0};
    int64_t mn = 0, mx = 0, skip = 0;
    KILN__TRY(kiln__onnx_attr_string(node, "mode", &mode));
    KILN__TRY(kiln__onnx_attr_int(node, "min_gram_length", &mn));
    KILN__TRY(kiln__onnx_attr_int(node, "max_gram_length", &mx));
    KILN__TRY(kiln__onnx_attr_int(node, "max_skip_count", &skip));
    static const char *const MODES[3] = {"TF", "IDF", "TFIDF"};
    p->mode = -1;
    for (int32_t i = 0; i < 3; i++)
        if (mode.size == strlen(MODES[i]) && memcmp(mode.data, MODES[i], mode.size) == 0) p->mode = i;
    if (p->mode < 0)
        return kiln__onnx_node_error(node, KILN_INVALID_ARGUMENT, "mode is '%.*s', expected TF, IDF or TFIDF",
                                     (int)mode.size, (const char *)mode.data);
    if (mn < 1 || mx < mn || mx > KILN_MAX_DIMS * 4 || skip < 0 || skip > INT32_MAX)
        return kiln__onnx_node_error(node, KILN_INVALID_ARGUMENT,
                                     "gram lengths %lld..%lld and max_skip_count %lld, expected 1 <= min <= max <= %d "
                                     "and skip >= 0",
                                     (long long)mn, (long long)mx, (long long)skip, KILN_MAX_DIMS * 4);
    p->min_gram = (int32_t)mn;
    p->max_gram = (int32_t)mx;
    p->max_skip = (int32_t)skip;
    return KILN_OK;
}

/* The gram table of misc_layers.h: the pool's n-grams with min <= n <= max, each with its
 * output index (n-grams are numbered across the whole pool), sorted, duplicates dropped
 * keeping the last. *rows_out is a new array (width 2 + max_gram), *count its rows. */
static kiln_status tfidf_table(kiln__onnx_ctx *ctx, const kiln__onnx_node *node, const kiln__tfidf_params *p,
                               int64_t **rows_out, int64_t *count, int64_t *output_size) {
    const int64_t *counts, *indexes, *pool;
    int64_t nc, ni, np;
    KILN__TRY(kiln__onnx_attr_ints(node, "ngram_counts", &counts, &nc));
    KILN__TRY(kiln__onnx_attr_ints(node, "ngram_indexes", &indexes, &ni));
    KILN__TRY(kiln__onnx_attr_ints(node, "pool_int64s", &pool, &np));
    *output_size = 0;
    for (int64_t i = 0; i < ni; i++) {
        if (indexes[i] < 0)
            return kiln__onnx_node_error(node, KILN_INVALID_ARGUMENT, "ngram_indexes[%lld] is negative", (long long)i);
        *output_size = KILN__MAX(*output_size, indexes[i] + 1);
    }
    int64_t width = 2 + p->max_gram;
    const kiln__alloc *al = net_alloc(ctx);
    int64_t *rows = kiln__malloc(al, sizeof(int64_t) * (size_t)(width * (np + 1)));
    int64_t *sorted = kiln__malloc(al, sizeof(int64_t) * (size_t)(width * (np + 1)));
    int64_t *idx = kiln__malloc(al, sizeof(int64_t) * (size_t)(2 * np + 2));
    kiln_status st = rows && sorted && idx ? KILN_OK : KILN_OUT_OF_MEMORY;
    int64_t nrows = 0, id = 0;
    for (int64_t i = 0; st == KILN_OK && i < nc; i++) {
        int64_t n = i + 1, begin = counts[i], end = i + 1 < nc ? counts[i + 1] : np;
        if (begin < 0 || end < begin || end > np || (end - begin) % n) {
            st = kiln__onnx_node_error(node, KILN_INVALID_ARGUMENT,
                                       "ngram_counts[%lld] gives pool items %lld..%lld, not whole %lld-grams",
                                       (long long)i, (long long)begin, (long long)end, (long long)n);
            break;
        }
        for (int64_t s = begin; s < end; s += n, id++) {
            if (id >= ni) {
                st = kiln__onnx_node_error(node, KILN_INVALID_ARGUMENT,
                                           "ngram_indexes has %lld values, fewer than the pool's n-grams",
                                           (long long)ni);
                break;
            }
            if (n < p->min_gram || n > p->max_gram) continue;
            int64_t *row = rows + nrows * width;
            memset(row, 0, sizeof(int64_t) * (size_t)width);
            row[0] = n;
            row[1] = indexes[id];
            memcpy(row + 2, pool + s, sizeof(int64_t) * (size_t)n);
            nrows++;
        }
    }
    if (st == KILN_OK) {
        for (int64_t r = 0; r < nrows; r++) idx[r] = r;
        gram_rows g = {rows, width};
        merge_sort(idx, idx + nrows, nrows, gram_less, &g);
        int64_t kept = 0;
        for (int64_t r = 0; r < nrows; r++) {
            /* Equal rows are adjacent in pool order: keep the last one of each run. */
            if (r + 1 < nrows && !gram_less(&g, idx[r], idx[r + 1])) continue;
            memcpy(sorted + kept++ * width, rows + idx[r] * width, sizeof(int64_t) * (size_t)width);
        }
        *count = kept;
        *rows_out = sorted;
        sorted = NULL;
    }
    kiln__free(al, rows);
    kiln__free(al, sorted);
    kiln__free(al, idx);
    return st;
}

kiln_status kiln__misc_import_tfidf(kiln__onnx_ctx *ctx, const kiln__onnx_node *node) {
    kiln_status st = KILN_OK;
    kiln_tensor *x = kiln__onnx_in_required(ctx, node, 0, "X", &st);
    if (!x) return st;
    kiln__tfidf_params p = {0};
    KILN__TRY(tfidf_attrs(node, &p));
    int64_t *table = NULL, rows = 0;
    KILN__TRY(tfidf_table(ctx, node, &p, &table, &rows, &p.output_size));
    const float *weights = NULL;
    int64_t nw = 0;
    st = kiln__onnx_attr_floats(node, "weights", &weights, &nw);
    if (st == KILN_OK && weights && nw < p.output_size)
        st = kiln__onnx_node_error(node, KILN_INVALID_ARGUMENT, "weights has %lld values, expected %lld", (long long)nw,
                                   (long long)p.output_size);
    kiln_tensor *in[3] = {x, NULL, NULL};
    if (st == KILN_OK) {
        kiln_dims gd = {2, {rows, 2 + p.max_gram}};
        st = kiln__onnx_add_constant(ctx, node, KILN_INT64, &gd, table, &in[1]);
    }
    if (st == KILN_OK && weights) in[2] = const_1d(ctx, node, KILN_FLOAT32, p.output_size, weights, &st);
    kiln__free(net_alloc(ctx), table);
    kiln_tensor *y = st == KILN_OK ? kiln__onnx_add1(ctx, node, KILN_LAYER_TFIDF, in, 3, &p, sizeof p, &st) : NULL;
    return kiln__misc_out(ctx, node, 0, y, &st);
}

/* ---------------------------------------------------------------- LabelEncoder */

/* One side (keys or values) of the mapping: dtype and elements as read from an attribute. */
typedef struct label_side {
    kiln_dtype dtype;
    int64_t count;
    const void *data; /* count elements of dtype */
    void *held;       /* a tensor attribute's elements, copied (aligned) */
} label_side;

/* Reads <prefix>_int64s, <prefix>_floats or <prefix>_tensor (exactly one). */
static kiln_status label_side_read(kiln__onnx_ctx *ctx, const kiln__onnx_node *node, const char *prefix,
                                   label_side *s) {
    char name[32];
    snprintf(name, sizeof name, "%s_strings", prefix);
    if (kiln__onnx_node_attr(node, name))
        return kiln__onnx_node_error(node, KILN_UNSUPPORTED, "attribute '%s': kiln has no string tensors", name);
    const char *found = NULL;
    snprintf(name, sizeof name, "%s_int64s", prefix);
    if (kiln__onnx_node_attr(node, name)) {
        const int64_t *v;
        KILN__TRY(kiln__onnx_attr_ints(node, name, &v, &s->count));
        s->dtype = KILN_INT64;
        s->data = v;
        found = "int64s";
    }
    snprintf(name, sizeof name, "%s_floats", prefix);
    if (kiln__onnx_node_attr(node, name)) {
        const float *v;
        KILN__TRY(kiln__onnx_attr_floats(node, name, &v, &s->count));
        s->dtype = KILN_FLOAT32;
        s->data = v;
        if (found) return kiln__onnx_node_error(node, KILN_INVALID_ARGUMENT, "both %s_int64s and %s", prefix, name);
        found = "floats";
    }
    snprintf(name, sizeof name, "%s_tensor", prefix);
    const kiln__onnx_tensor *t = NULL;
    KILN__TRY(kiln__onnx_attr_tensor(node, name, &t));
    if (t) {
        if (found) return kiln__onnx_node_error(node, KILN_INVALID_ARGUMENT, "both %s_%s and %s", prefix, found, name);
        if (t->data_type == KILN_STRING)
            return kiln__onnx_node_error(node, KILN_UNSUPPORTED, "attribute '%s': kiln has no string tensors", name);
        if (!kiln__dtype_is_float(t->dtype) && !kiln__dtype_is_integer(t->dtype))
            return kiln__onnx_node_error(node, KILN_UNSUPPORTED, "attribute '%s' has ONNX data type %d", name,
                                         (int)t->data_type);
        KILN__TRY(tensor_attr_copy(ctx, node, name, t, &s->held));
        s->dtype = t->dtype;
        s->count = t->count;
        s->data = s->held;
        found = "tensor";
    }
    if (!found)
        return kiln__onnx_node_error(node, KILN_INVALID_ARGUMENT, "no %s_int64s, %s_floats or %s_tensor attribute",
                                     prefix, prefix, prefix);
    return KILN_OK;
}

/* Keys in ascending order with NaN last, compared as the kernel does. */
typedef struct key_order {
    const label_side *keys;
    bool is_float;
} key_order;

static bool key_less(const void *arg, int64_t a, int64_t b) {
    const key_order *o = arg;
    if (o->is_float) {
        double x = kiln__load_f64(o->keys->data, o->keys->dtype, a),
               y = kiln__load_f64(o->keys->data, o->keys->dtype, b);
        return isnan(y) ? !isnan(x) : x < y;
    }
    return kiln__load_i64(o->keys->data, o->keys->dtype, a) < kiln__load_i64(o->keys->data, o->keys->dtype, b);
}

/* The default value in the values' dtype into buf (8 bytes). */
static kiln_status label_default(kiln__onnx_ctx *ctx, const kiln__onnx_node *node, kiln_dtype vt, uint8_t *buf) {
    const kiln__onnx_tensor *t = NULL;
    KILN__TRY(kiln__onnx_attr_tensor(node, "default_tensor", &t));
    if (t) {
        if (t->dtype != vt || t->count != 1)
            return kiln__onnx_node_error(node, KILN_INVALID_ARGUMENT,
                                         "default_tensor must be one value of the values' dtype %s",
                                         kiln_dtype_name(vt));
        kiln__onnx_data d;
        KILN__TRY(kiln__onnx_tensor_data(net_alloc(ctx), t, &d));
        memcpy(buf, d.data, kiln_dtype_bits(vt) / 8);
        kiln__onnx_data_release(net_alloc(ctx), &d);
        return KILN_OK;
    }
    int64_t di = -1;
    float df = -0.0f;
    KILN__TRY(kiln__onnx_attr_int(node, "default_int64", &di));
    KILN__TRY(kiln__onnx_attr_float(node, "default_float", &df));
    if (kiln__dtype_is_float(vt))
        kiln__store_f64(buf, vt, 0, df);
    else
        kiln__store_i64(buf, vt, 0, di);
    return KILN_OK;
}

kiln_status kiln__misc_import_label_encoder(kiln__onnx_ctx *ctx, const kiln__onnx_node *node) {
    kiln_status st = KILN_OK;
    kiln_tensor *x = kiln__onnx_in_required(ctx, node, 0, "X", &st);
    if (!x) return st;
    const kiln__alloc *al = net_alloc(ctx);
    label_side keys = {0}, vals = {0};
    int64_t *idx = NULL;
    uint8_t *ks = NULL, *vs = NULL, dflt[8] = {0};
    st = label_side_read(ctx, node, "keys", &keys);
    if (st == KILN_OK) st = label_side_read(ctx, node, "values", &vals);
    if (st == KILN_OK && keys.count != vals.count)
        st = kiln__onnx_node_error(node, KILN_INVALID_ARGUMENT, "%lld keys but %lld values", (long long)keys.count,
                                   (long long)vals.count);
    if (st == KILN_OK && keys.dtype != kiln_tensor_dtype(x))
        st = kiln__onnx_node_error(node, KILN_INVALID_ARGUMENT, "input X has dtype %s but the keys are %s",
                                   kiln_dtype_name(kiln_tensor_dtype(x)), kiln_dtype_name(keys.dtype));
    if (st == KILN_OK && (kiln_dtype_bits(keys.dtype) < 8 || kiln_dtype_bits(vals.dtype) < 8))
        st = kiln__onnx_node_error(node, KILN_UNSUPPORTED, "sub-byte keys or values are not supported");
    if (st == KILN_OK) st = label_default(ctx, node, vals.dtype, dflt);
    size_t kb = kiln_dtype_bits(keys.dtype) / 8, vb = kiln_dtype_bits(vals.dtype) / 8;
    if (st == KILN_OK) {
        idx = kiln__malloc(al, sizeof(int64_t) * (size_t)(2 * keys.count + 1));
        ks = kiln__malloc(al, kb * (size_t)keys.count + 1);
        vs = kiln__malloc(al, vb * (size_t)keys.count + 1);
        if (!idx || !ks || !vs) st = KILN_OUT_OF_MEMORY;
    }
    if (st == KILN_OK) {
        key_order o = {&keys, kiln__dtype_is_float(keys.dtype)};
        for (int64_t i = 0; i < keys.count; i++) idx[i] = i;
        merge_sort(idx, idx + keys.count, keys.count, key_less, &o);
        for (int64_t i = 0; i < keys.count; i++) {
            if (i > 0 && !key_less(&o, idx[i - 1], idx[i])) {
                st = kiln__onnx_node_error(node, KILN_INVALID_ARGUMENT, "keys %lld and %lld are equal",
                                           (long long)idx[i - 1], (long long)idx[i]);
                break;
            }
            memcpy(ks + (size_t)i * kb, (const uint8_t *)keys.data + (size_t)idx[i] * kb, kb);
            memcpy(vs + (size_t)i * vb, (const uint8_t *)vals.data + (size_t)idx[i] * vb, vb);
        }
    }
    kiln_tensor *in[4] = {x, NULL, NULL, NULL};
    if (st == KILN_OK) in[1] = const_1d(ctx, node, keys.dtype, keys.count, ks, &st);
    if (st == KILN_OK) in[2] = const_1d(ctx, node, vals.dtype, vals.count, vs, &st);
    if (st == KILN_OK) in[3] = const_1d(ctx, node, vals.dtype, 1, dflt, &st);
    kiln_tensor *y = st == KILN_OK ? kiln__onnx_add1(ctx, node, KILN_LAYER_LABEL_ENCODER, in, 4, NULL, 0, &st) : NULL;
    kiln__free(al, idx);
    kiln__free(al, ks);
    kiln__free(al, vs);
    kiln__free(al, keys.held);
    kiln__free(al, vals.held);
    return kiln__misc_out(ctx, node, 0, y, &st);
}
