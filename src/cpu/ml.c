/* Kernels of the classic-ML layers: TreeEnsemble, TfIdf and LabelEncoder. The tables come
 * from constant inputs that a plan file may carry, so every index is checked before the
 * parallel part runs. */
#include "cpu.h"
#include "../network/misc_layers.h"

#include <math.h>
#include <string.h>

/* ---------------------------------------------------------------- TreeEnsemble */

typedef struct tree_job {
    const kiln__tree_params *p;
    const kiln__value *x;
    kiln__value *out;
    const int64_t *nodes, *roots, *targets;
    const double *splits, *weights, *members;
    int64_t nb_nodes, nb_roots, features;
    double *acc; /* per row: n_targets sums/extremes then n_targets hit flags */
} tree_job;

static bool tree_goes_true(const tree_job *j, const int64_t *node, double v, double split) {
    if (isnan(v) && node[KILN__TREE_COL_MISSING_TRUE]) return true;
    switch (node[KILN__TREE_COL_MODE]) {
    case KILN__TREE_LEQ: return v <= split;
    case KILN__TREE_LT: return v < split;
    case KILN__TREE_GTE: return v >= split;
    case KILN__TREE_GT: return v > split;
    case KILN__TREE_EQ: return v == split;
    case KILN__TREE_NEQ: return v != split;
    default:
        for (int64_t k = node[KILN__TREE_COL_SET_BEGIN]; k < node[KILN__TREE_COL_SET_END]; k++)
            if (j->members[k] == v) return true;
        return false;
    }
}

/* sqrt(2) * erfinv(2q - 1): Giles' single-precision erfinv, then Newton steps on erf. */
static double probit(double q) {
    double y = 2 * q - 1;
    if (y <= -1) return -INFINITY;
    if (y >= 1) return INFINITY;
    double w = -log((1 - y) * (1 + y)), z;
    if (w < 5) {
        static const double c[9] = {2.81022636e-08, 3.43273939e-07, -3.5233877e-06, -4.39150654e-06, 0.00021858087,
                                    -0.00125372503, -0.00417768164, 0.246640727,    1.50140941};
        w -= 2.5;
        z = c[0];
        for (int i = 1; i < 9; i++) z = c[i] + z * w;
    } else {
        static const double c[9] = {-0.000200214257, 0.000100950558, 0.00134934322, -0.00367342844, 0.00573950773,
                                    -0.0076224613,   0.00943887047,  1.00167406,    2.83297682};
        w = sqrt(w) - 3;
        z = c[0];
        for (int i = 1; i < 9; i++) z = c[i] + z * w;
    }
    z *= y;
    for (int i = 0; i < 2; i++) z -= (erf(z) - y) / (1.1283791670955126 * exp(-z * z));
    return 1.4142135623730951 * z;
}

static void tree_range(void *arg, int64_t begin, int64_t end) {
    const tree_job *j = arg;
    const kiln__tree_params *p = j->p;
    int64_t nt = p->n_targets;
    for (int64_t row = begin; row < end; row++) {
        double *acc = j->acc + row * 2 * nt, *hit = acc + nt;
        for (int64_t t = 0; t < 2 * nt; t++) acc[t] = 0;
        for (int64_t tr = 0; tr < j->nb_roots; tr++) {
            int64_t id = j->roots[tr];
            bool leaf = id < 0;
            if (leaf) id = -1 - id;
            while (!leaf) {
                const int64_t *node = j->nodes + id * KILN__TREE_COLS;
                double v = kiln__load_f64(j->x->data, j->x->dtype, row * j->features + node[KILN__TREE_COL_FEATURE]);
                bool t = tree_goes_true(j, node, v, j->splits[id]);
                leaf = node[t ? KILN__TREE_COL_TRUE_LEAF : KILN__TREE_COL_FALSE_LEAF] != 0;
                id = node[t ? KILN__TREE_COL_TRUE_ID : KILN__TREE_COL_FALSE_ID];
            }
            int64_t target = j->targets[id];
            double w = j->weights[id];
            switch (p->aggregate) {
            case KILN__TREE_MIN: acc[target] = hit[target] && acc[target] <= w ? acc[target] : w; break;
            case KILN__TREE_MAX: acc[target] = hit[target] && acc[target] >= w ? acc[target] : w; break;
            default: acc[target] += w; break;
            }
            hit[target] = 1;
        }
        if (p->aggregate == KILN__TREE_AVERAGE && j->nb_roots > 0)
            for (int64_t t = 0; t < nt; t++) acc[t] /= (double)j->nb_roots;
        switch (p->post) {
        case KILN__TREE_POST_SOFTMAX:
        case KILN__TREE_POST_SOFTMAX_ZERO: {
            /* softmax_zero keeps zero scores at zero and leaves them out of the sum. */
            bool zero = p->post == KILN__TREE_POST_SOFTMAX_ZERO;
            double mx = -INFINITY, sum = 0;
            for (int64_t t = 0; t < nt; t++)
                if (!(zero && acc[t] == 0) && acc[t] > mx) mx = acc[t];
            for (int64_t t = 0; t < nt; t++) {
                hit[t] = zero && acc[t] == 0 ? 0 : exp(acc[t] - mx);
                sum += hit[t];
            }
            for (int64_t t = 0; t < nt; t++) acc[t] = sum > 0 ? hit[t] / sum : 0;
            break;
        }
        case KILN__TREE_POST_LOGISTIC:
            for (int64_t t = 0; t < nt; t++) acc[t] = 1 / (1 + exp(-acc[t]));
            break;
        case KILN__TREE_POST_PROBIT:
            for (int64_t t = 0; t < nt; t++) acc[t] = probit(acc[t]);
            break;
        default: break;
        }
        for (int64_t t = 0; t < nt; t++) kiln__store_f64(j->out->data, j->out->dtype, row * nt + t, acc[t]);
    }
}

/* Checks every index of the tables and that no node can be reached from itself (Kahn's
 * algorithm over the node-to-node edges), so that every walk ends at a leaf. */
static kiln_status tree_check(const kiln_layer *layer, const tree_job *j, int64_t nb_leaves, int64_t nb_members,
                              const kiln__alloc *alloc) {
    for (int64_t r = 0; r < j->nb_roots; r++) {
        int64_t id = j->roots[r];
        if (id >= 0 ? id >= j->nb_nodes : -1 - id >= nb_leaves)
            return kiln__layer_error(layer, KILN_INVALID_ARGUMENT, "tree %lld has root %lld, out of range",
                                     (long long)r, (long long)id);
    }
    for (int64_t l = 0; l < nb_leaves; l++)
        if (j->targets[l] < 0 || j->targets[l] >= j->p->n_targets)
            return kiln__layer_error(layer, KILN_INVALID_ARGUMENT, "leaf %lld has target %lld, expected 0..%lld",
                                     (long long)l, (long long)j->targets[l], (long long)j->p->n_targets - 1);
    for (int64_t n = 0; n < j->nb_nodes; n++) {
        const int64_t *node = j->nodes + n * KILN__TREE_COLS;
        if (node[KILN__TREE_COL_FEATURE] < 0 || node[KILN__TREE_COL_FEATURE] >= j->features)
            return kiln__layer_error(layer, KILN_INVALID_ARGUMENT, "node %lld reads feature %lld of %lld", (long long)n,
                                     (long long)node[KILN__TREE_COL_FEATURE], (long long)j->features);
        if (node[KILN__TREE_COL_MODE] < KILN__TREE_LEQ || node[KILN__TREE_COL_MODE] > KILN__TREE_MEMBER)
            return kiln__layer_error(layer, KILN_INVALID_ARGUMENT, "node %lld has unknown mode %lld", (long long)n,
                                     (long long)node[KILN__TREE_COL_MODE]);
        if (node[KILN__TREE_COL_MODE] == KILN__TREE_MEMBER &&
            (node[KILN__TREE_COL_SET_BEGIN] < 0 || node[KILN__TREE_COL_SET_END] < node[KILN__TREE_COL_SET_BEGIN] ||
             node[KILN__TREE_COL_SET_END] > nb_members))
            return kiln__layer_error(layer, KILN_INVALID_ARGUMENT, "node %lld has a set outside the %lld members",
                                     (long long)n, (long long)nb_members);
        for (int side = 0; side < 2; side++) {
            int64_t id = node[side ? KILN__TREE_COL_FALSE_ID : KILN__TREE_COL_TRUE_ID];
            bool leaf = node[side ? KILN__TREE_COL_FALSE_LEAF : KILN__TREE_COL_TRUE_LEAF] != 0;
            if (id < 0 || id >= (leaf ? nb_leaves : j->nb_nodes))
                return kiln__layer_error(layer, KILN_INVALID_ARGUMENT, "node %lld points to %s %lld, out of range",
                                         (long long)n, leaf ? "leaf" : "node", (long long)id);
        }
    }
    int64_t *indeg = kiln__calloc(alloc, (size_t)(2 * j->nb_nodes + 1), sizeof(int64_t)), *queue = indeg + j->nb_nodes;
    if (!indeg)
        return kiln__layer_error(layer, KILN_OUT_OF_MEMORY, "out of memory checking %lld nodes",
                                 (long long)j->nb_nodes);
    for (int64_t n = 0; n < j->nb_nodes; n++)
        for (int side = 0; side < 2; side++)
            if (!j->nodes[n * KILN__TREE_COLS + (side ? KILN__TREE_COL_FALSE_LEAF : KILN__TREE_COL_TRUE_LEAF)])
                indeg[j->nodes[n * KILN__TREE_COLS + (side ? KILN__TREE_COL_FALSE_ID : KILN__TREE_COL_TRUE_ID)]]++;
    int64_t head = 0, tail = 0;
    for (int64_t n = 0; n < j->nb_nodes; n++)
        if (!indeg[n]) queue[tail++] = n;
    while (head < tail) {
        int64_t n = queue[head++];
        for (int side = 0; side < 2; side++)
            if (!j->nodes[n * KILN__TREE_COLS + (side ? KILN__TREE_COL_FALSE_LEAF : KILN__TREE_COL_TRUE_LEAF)]) {
                int64_t c = j->nodes[n * KILN__TREE_COLS + (side ? KILN__TREE_COL_FALSE_ID : KILN__TREE_COL_TRUE_ID)];
                if (--indeg[c] == 0) queue[tail++] = c;
            }
    }
    kiln__free(alloc, indeg);
    if (tail < j->nb_nodes) return kiln__layer_error(layer, KILN_INVALID_ARGUMENT, "the nodes form a cycle");
    return KILN_OK;
}

kiln_status kiln__cpu_tree_ensemble(const kiln_layer *layer, const kiln__value *inputs, kiln__value *outputs,
                                    kiln__cpu_ctx *ctx) {
    const kiln__tree_params *p = (const kiln__tree_params *)layer->p.bytes;
    bool has_members = kiln__has_input(layer, inputs, 6);
    tree_job j = {.p = p,
                  .x = &inputs[0],
                  .out = &outputs[0],
                  .nodes = inputs[1].data,
                  .splits = inputs[2].data,
                  .roots = inputs[3].data,
                  .targets = inputs[4].data,
                  .weights = inputs[5].data,
                  .members = has_members ? inputs[6].data : NULL,
                  .nb_nodes = inputs[1].dims.d[0],
                  .nb_roots = inputs[3].dims.d[0],
                  .features = inputs[0].dims.d[1]};
    if (inputs[1].dims.d[1] != KILN__TREE_COLS || inputs[2].dims.d[0] != j.nb_nodes ||
        inputs[4].dims.d[0] != inputs[5].dims.d[0])
        return kiln__layer_error(layer, KILN_INVALID_ARGUMENT, "the node and leaf tables differ in length");
    KILN__TRY(tree_check(layer, &j, inputs[4].dims.d[0], has_members ? inputs[6].dims.d[0] : 0, ctx->alloc));
    int64_t rows = inputs[0].dims.d[0];
    j.acc = kiln__malloc(ctx->alloc, sizeof(double) * (size_t)(rows * 2 * p->n_targets + 1));
    if (!j.acc) return kiln__layer_error(layer, KILN_OUT_OF_MEMORY, "out of memory for %lld rows", (long long)rows);
    kiln__parallel_for(ctx->pool, rows, 16, tree_range, &j);
    kiln__free(ctx->alloc, j.acc);
    return KILN_OK;
}

/* ---------------------------------------------------------------- TfIdf */

typedef struct tfidf_job {
    const kiln__tfidf_params *p;
    const kiln__value *x;
    float *out;
    const int64_t *grams;
    int64_t nb_grams, width, cols;
    const float *weights;
    int64_t first[KILN_MAX_DIMS * 4 + 2]; /* per length n: first row of that length (rows sorted by length) */
} tfidf_job;

/* Row of the n-gram equal to x[s], x[s+d], ... (n tokens), or -1. */
static int64_t tfidf_find(const tfidf_job *j, const kiln__value *x, int64_t base, int64_t s, int64_t d, int32_t n) {
    int64_t lo = j->first[n], hi = j->first[n + 1];
    while (lo < hi) {
        int64_t mid = lo + (hi - lo) / 2, cmp = 0;
        const int64_t *tok = j->grams + mid * j->width + 2;
        for (int32_t k = 0; k < n && !cmp; k++) {
            int64_t v = kiln__load_i64(x->data, x->dtype, base + s + k * d);
            cmp = tok[k] < v ? -1 : tok[k] > v ? 1 : 0;
        }
        if (!cmp) return mid;
        if (cmp < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return -1;
}

static void tfidf_range(void *arg, int64_t begin, int64_t end) {
    const tfidf_job *j = arg;
    const kiln__tfidf_params *p = j->p;
    int64_t c = j->cols, os = p->output_size;
    for (int64_t row = begin; row < end; row++) {
        float *out = j->out + row * os;
        for (int64_t i = 0; i < os; i++) out[i] = 0;
        for (int32_t n = p->min_gram; n <= p->max_gram; n++)
            for (int64_t d = 1; d <= (n == 1 ? 1 : p->max_skip + 1); d++)
                for (int64_t s = 0; s + (n - 1) * d < c; s++) {
                    int64_t g = tfidf_find(j, j->x, row * c, s, d, n);
                    if (g >= 0) out[j->grams[g * j->width + 1]] += 1;
                }
        for (int64_t i = 0; i < os; i++) {
            float w = j->weights ? j->weights[i] : 1.0f;
            if (p->mode == KILN__TFIDF_IDF)
                out[i] = out[i] > 0 ? w : 0;
            else if (p->mode == KILN__TFIDF_TFIDF)
                out[i] *= w;
        }
    }
}

kiln_status kiln__cpu_tfidf(const kiln_layer *layer, const kiln__value *inputs, kiln__value *outputs,
                            kiln__cpu_ctx *ctx) {
    const kiln__tfidf_params *p = (const kiln__tfidf_params *)layer->p.bytes;
    const kiln__value *x = &inputs[0];
    tfidf_job j = {.p = p,
                   .x = x,
                   .out = outputs[0].data,
                   .grams = inputs[1].data,
                   .nb_grams = inputs[1].dims.d[0],
                   .width = inputs[1].dims.d[1],
                   .cols = x->dims.d[x->dims.nb_dims - 1]};
    if (kiln__has_input(layer, inputs, 2)) j.weights = inputs[2].data;
    if (p->max_gram > KILN_MAX_DIMS * 4)
        return kiln__layer_error(layer, KILN_UNSUPPORTED, "n-grams longer than %d are not supported",
                                 KILN_MAX_DIMS * 4);
    /* Rows must be sorted by length, each with a valid output index; first[n] marks where
     * length n starts. */
    int32_t prev = 0;
    for (int64_t g = 0; g < j.nb_grams; g++) {
        int64_t n = j.grams[g * j.width], idx = j.grams[g * j.width + 1];
        if (n < prev || n < 1 || n > j.width - 2 || idx < 0 || idx >= p->output_size)
            return kiln__layer_error(layer, KILN_INVALID_ARGUMENT,
                                     "n-gram row %lld (length %lld, output %lld) is malformed", (long long)g,
                                     (long long)n, (long long)idx);
        prev = (int32_t)KILN__MIN(n, KILN_MAX_DIMS * 4 + 1);
    }
    int64_t g = 0;
    for (int32_t n = 0; n <= KILN_MAX_DIMS * 4 + 1; n++) {
        while (g < j.nb_grams && j.grams[g * j.width] < n) g++;
        j.first[n] = g;
    }
    int64_t rows = x->dims.nb_dims == 2 ? x->dims.d[0] : 1;
    kiln__parallel_for(ctx->pool, rows, 1, tfidf_range, &j);
    return KILN_OK;
}

/* ---------------------------------------------------------------- LabelEncoder */

typedef struct label_job {
    const kiln__value *x, *keys, *values, *dflt;
    kiln__value *out;
    bool is_float;
    int64_t nb_keys;
} label_job;

static void label_range(void *arg, int64_t begin, int64_t end) {
    const label_job *j = arg;
    for (int64_t i = begin; i < end; i++) {
        int64_t lo = 0, hi = j->nb_keys;
        /* Keys are sorted with NaN last: NaN finds the last key when that is NaN. */
        if (j->is_float) {
            double v = kiln__load_f64(j->x->data, j->x->dtype, i);
            if (isnan(v)) {
                lo = hi > 0 && isnan(kiln__load_f64(j->keys->data, j->keys->dtype, hi - 1)) ? hi - 1 : hi;
            } else {
                while (lo < hi) {
                    int64_t mid = lo + (hi - lo) / 2;
                    double k = kiln__load_f64(j->keys->data, j->keys->dtype, mid);
                    if (k < v)
                        lo = mid + 1;
                    else
                        hi = mid;
                }
                if (lo < j->nb_keys && kiln__load_f64(j->keys->data, j->keys->dtype, lo) != v) lo = j->nb_keys;
            }
        } else {
            int64_t v = kiln__load_i64(j->x->data, j->x->dtype, i);
            while (lo < hi) {
                int64_t mid = lo + (hi - lo) / 2;
                if (kiln__load_i64(j->keys->data, j->keys->dtype, mid) < v)
                    lo = mid + 1;
                else
                    hi = mid;
            }
            if (lo < j->nb_keys && kiln__load_i64(j->keys->data, j->keys->dtype, lo) != v) lo = j->nb_keys;
        }
        size_t es = kiln_dtype_bits(j->out->dtype) / 8;
        const char *src = lo < j->nb_keys ? (const char *)j->values->data + lo * (int64_t)es : j->dflt->data;
        memcpy((char *)j->out->data + i * (int64_t)es, src, es);
    }
}

kiln_status kiln__cpu_label_encoder(const kiln_layer *layer, const kiln__value *inputs, kiln__value *outputs,
                                    kiln__cpu_ctx *ctx) {
    if (inputs[1].dims.d[0] != inputs[2].dims.d[0] || kiln__dims_volume(&inputs[3].dims) != 1)
        return kiln__layer_error(layer, KILN_INVALID_ARGUMENT, "keys, values and default do not match");
    if (kiln_dtype_bits(outputs[0].dtype) < 8)
        return kiln__layer_error(layer, KILN_UNSUPPORTED, "values of dtype %s are not supported",
                                 kiln_dtype_name(outputs[0].dtype));
    label_job j = {&inputs[0],         &inputs[1],  &inputs[2],
                   &inputs[3],         &outputs[0], kiln__dtype_is_float(inputs[0].dtype),
                   inputs[1].dims.d[0]};
    kiln__parallel_for(ctx->pool, kiln__dims_volume(&inputs[0].dims), 1024, label_range, &j);
    return KILN_OK;
}
