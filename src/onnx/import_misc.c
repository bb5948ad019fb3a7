/* ONNX importers for ops no other family covers: the training optimizers of
 * ai.onnx.preview.training (Adagrad, Adam, Momentum: elementwise formulas), the random
 * generators (RandomUniform/Normal[Like], Bernoulli, Multinomial: the Random layer), and
 * ai.onnx.ml Binarizer and ArrayFeatureExtractor. The table also lists import_ml.c's and
 * import_rnn.c's ops. */
#include "onnx/import_misc.h"

#include "network/misc_layers.h"

#include <math.h>
#include <string.h>

kiln_status kiln__misc_out(kiln__onnx_ctx *ctx, const kiln__onnx_node *node, int32_t i, kiln_tensor *t,
                           const kiln_status *st) {
    return t ? kiln__onnx_out(ctx, node, i, t) : *st;
}

/* ---------------------------------------------------------------- formula building */

/* Builds a formula layer by layer: once a step fails, st holds the error and every later
 * step returns NULL, so a formula reads as straight-line code with one check at the end. */
typedef struct formula {
    kiln__onnx_ctx *ctx;
    const kiln__onnx_node *node;
    kiln_dtype dt; /* dtype of the constants and of cast operands */
    kiln_status st;
} formula;

static kiln_tensor *f_ew(formula *f, kiln_elementwise_op op, kiln_tensor *a, kiln_tensor *b) {
    return a && b ? kiln__onnx_ew(f->ctx, f->node, op, a, b, &f->st) : NULL;
}
static kiln_tensor *f_add(formula *f, kiln_tensor *a, kiln_tensor *b) { return f_ew(f, KILN_EW_ADD, a, b); }
static kiln_tensor *f_sub(formula *f, kiln_tensor *a, kiln_tensor *b) { return f_ew(f, KILN_EW_SUB, a, b); }
static kiln_tensor *f_mul(formula *f, kiln_tensor *a, kiln_tensor *b) { return f_ew(f, KILN_EW_MUL, a, b); }
static kiln_tensor *f_div(formula *f, kiln_tensor *a, kiln_tensor *b) { return f_ew(f, KILN_EW_DIV, a, b); }

static kiln_tensor *f_const(formula *f, double v) {
    return f->st == KILN_OK ? kiln__onnx_const_scalar(f->ctx, f->node, f->dt, v, 0, &f->st) : NULL;
}
static kiln_tensor *f_sqrt(formula *f, kiln_tensor *x) {
    return x ? kiln__onnx_unary(f->ctx, f->node, KILN_UNARY_SQRT, x, &f->st) : NULL;
}
/* x in the formula's dtype. */
static kiln_tensor *f_as(formula *f, kiln_tensor *x) {
    if (!x || kiln_tensor_dtype(x) == f->dt) return x;
    return kiln__onnx_cast(f->ctx, f->node, x, f->dt, &f->st);
}
/* cond ? a : b elementwise. */
static kiln_tensor *f_select(formula *f, kiln_tensor *cond, kiln_tensor *a, kiln_tensor *b) {
    if (!cond || !a || !b) return NULL;
    kiln_tensor *in[3] = {cond, a, b};
    return kiln__onnx_add1(f->ctx, f->node, KILN_LAYER_SELECT, in, 3, NULL, 0, &f->st);
}

/* ---------------------------------------------------------------- Adagrad, Adam, Momentum */

/* The optimizers take R (learning rate), T (update count), then `groups` lists of n tensors
 * (X..., G..., ...), and output the updated lists in order. Reads n and checks R and T. */
static kiln_status optimizer_inputs(kiln__onnx_ctx *ctx, const kiln__onnx_node *node, int32_t groups, int32_t *n,
                                    kiln_tensor **r, kiln_tensor **t) {
    if (node->nb_inputs < 2 + groups || (node->nb_inputs - 2) % groups)
        return kiln__onnx_node_error(node, KILN_INVALID_ARGUMENT, "has %d inputs, expected 2 + %d x n", node->nb_inputs,
                                     groups);
    *n = (node->nb_inputs - 2) / groups;
    kiln_status st = KILN_OK;
    *r = kiln__onnx_in_required(ctx, node, 0, "R", &st);
    *t = *r ? kiln__onnx_in_required(ctx, node, 1, "T", &st) : NULL;
    if (!*t) return st;
    if (!kiln__dtype_is_float(kiln_tensor_dtype(*r)))
        return kiln__onnx_node_error(node, KILN_INVALID_ARGUMENT, "input R has dtype %s, expected a float type",
                                     kiln_dtype_name(kiln_tensor_dtype(*r)));
    if (!kiln__dtype_is_integer(kiln_tensor_dtype(*t)))
        return kiln__onnx_node_error(node, KILN_INVALID_ARGUMENT, "input T has dtype %s, expected an integer type",
                                     kiln_dtype_name(kiln_tensor_dtype(*t)));
    for (int32_t i = 2; i < node->nb_inputs; i++)
        if (!kiln__onnx_in_required(ctx, node, i, "optimized tensor", &st)) return st;
    return KILN_OK;
}

/* T > 0 as a bool tensor. */
static kiln_tensor *t_positive(formula *f, kiln_tensor *t) {
    kiln_tensor *zero =
        f->st == KILN_OK ? kiln__onnx_const_scalar(f->ctx, f->node, kiln_tensor_dtype(t), 0, 0, &f->st) : NULL;
    return f_ew(f, KILN_EW_GREATER, t, zero);
}

static kiln_status import_adagrad(kiln__onnx_ctx *ctx, const kiln__onnx_node *node) {
    float decay = 0, eps = 1e-6f, norm = 0;
    KILN__TRY(kiln__onnx_attr_float(node, "decay_factor", &decay));
    KILN__TRY(kiln__onnx_attr_float(node, "epsilon", &eps));
    KILN__TRY(kiln__onnx_attr_float(node, "norm_coefficient", &norm));
    int32_t n;
    kiln_tensor *r, *t;
    KILN__TRY(optimizer_inputs(ctx, node, 3, &n, &r, &t));
    for (int32_t i = 0; i < n; i++) {
        kiln_tensor *x = kiln__onnx_in(ctx, node, 2 + i), *g = kiln__onnx_in(ctx, node, 2 + n + i);
        kiln_tensor *h = kiln__onnx_in(ctx, node, 2 + 2 * n + i);
        formula f = {ctx, node, kiln_tensor_dtype(x), KILN_OK};
        /* r = R / (1 + T * decay); g' = norm * X + G; H' = H + g'^2; X' = X - r g' / (sqrt(H') + eps) */
        kiln_tensor *rate =
            f_div(&f, f_as(&f, r), f_add(&f, f_const(&f, 1), f_mul(&f, f_as(&f, t), f_const(&f, decay))));
        kiln_tensor *gr = f_add(&f, f_mul(&f, f_const(&f, norm), x), g);
        kiln_tensor *h_new = f_add(&f, h, f_mul(&f, gr, gr));
        kiln_tensor *denom = f_add(&f, f_sqrt(&f, h_new), f_const(&f, eps));
        kiln_tensor *x_new = f_sub(&f, x, f_div(&f, f_mul(&f, rate, gr), denom));
        KILN__TRY(kiln__misc_out(ctx, node, i, x_new, &f.st));
        KILN__TRY(kiln__misc_out(ctx, node, n + i, h_new, &f.st));
    }
    return KILN_OK;
}

static kiln_status import_adam(kiln__onnx_ctx *ctx, const kiln__onnx_node *node) {
    float alpha = 0.9f, beta = 0.999f, eps = 1e-6f, norm = 0, norm_post = 0;
    KILN__TRY(kiln__onnx_attr_float(node, "alpha", &alpha));
    KILN__TRY(kiln__onnx_attr_float(node, "beta", &beta));
    KILN__TRY(kiln__onnx_attr_float(node, "epsilon", &eps));
    KILN__TRY(kiln__onnx_attr_float(node, "norm_coefficient", &norm));
    KILN__TRY(kiln__onnx_attr_float(node, "norm_coefficient_post", &norm_post));
    int32_t n;
    kiln_tensor *r, *t;
    KILN__TRY(optimizer_inputs(ctx, node, 4, &n, &r, &t));
    for (int32_t i = 0; i < n; i++) {
        kiln_tensor *x = kiln__onnx_in(ctx, node, 2 + i), *g = kiln__onnx_in(ctx, node, 2 + n + i);
        kiln_tensor *v = kiln__onnx_in(ctx, node, 2 + 2 * n + i), *h = kiln__onnx_in(ctx, node, 2 + 3 * n + i);
        formula f = {ctx, node, kiln_tensor_dtype(x), KILN_OK};
        kiln_tensor *gr = f_add(&f, f_mul(&f, f_const(&f, norm), x), g);
        kiln_tensor *v_new = f_add(&f, f_mul(&f, f_const(&f, alpha), v), f_mul(&f, f_const(&f, 1.0 - alpha), gr));
        kiln_tensor *h_new =
            f_add(&f, f_mul(&f, f_const(&f, beta), h), f_mul(&f, f_const(&f, 1.0 - beta), f_mul(&f, gr, gr)));
        kiln_tensor *denom = f_add(&f, f_sqrt(&f, h_new), f_const(&f, eps));
        /* Bias correction once T > 0: R sqrt(1 - beta^T) / (1 - alpha^T). */
        kiln_tensor *rf = f_as(&f, r), *tf = f_as(&f, t), *one = f_const(&f, 1);
        kiln_tensor *corr = f_div(&f, f_sqrt(&f, f_sub(&f, one, f_ew(&f, KILN_EW_POW, f_const(&f, beta), tf))),
                                  f_sub(&f, one, f_ew(&f, KILN_EW_POW, f_const(&f, alpha), tf)));
        kiln_tensor *rate = f_select(&f, t_positive(&f, t), f_mul(&f, rf, corr), rf);
        kiln_tensor *x_new = f_sub(&f, x, f_mul(&f, rate, f_div(&f, v_new, denom)));
        if (norm_post != 0) x_new = f_mul(&f, f_const(&f, 1.0 - norm_post), x_new);
        KILN__TRY(kiln__misc_out(ctx, node, i, x_new, &f.st));
        KILN__TRY(kiln__misc_out(ctx, node, n + i, v_new, &f.st));
        KILN__TRY(kiln__misc_out(ctx, node, 2 * n + i, h_new, &f.st));
    }
    return KILN_OK;
}

/* A required attribute: absent is an error naming it. */
static kiln_status need_attr(const kiln__onnx_node *node, const char *name) {
    return kiln__onnx_node_attr(node, name)
               ? KILN_OK
               : kiln__onnx_node_error(node, KILN_INVALID_ARGUMENT, "attribute '%s' is required", name);
}

static bool bytes_is(kiln__onnx_bytes b, const char *s) {
    return b.size == strlen(s) && memcmp(b.data, s, b.size) == 0;
}

static kiln_status import_momentum(kiln__onnx_ctx *ctx, const kiln__onnx_node *node) {
    float alpha = 0, beta = 0, norm = 0;
    kiln__onnx_bytes mode = {0};
    static const char *const REQUIRED[4] = {"alpha", "beta", "norm_coefficient", "mode"};
    for (int i = 0; i < 4; i++) KILN__TRY(need_attr(node, REQUIRED[i]));
    KILN__TRY(kiln__onnx_attr_float(node, "alpha", &alpha));
    KILN__TRY(kiln__onnx_attr_float(node, "beta", &beta));
    KILN__TRY(kiln__onnx_attr_float(node, "norm_coefficient", &norm));
    KILN__TRY(kiln__onnx_attr_string(node, "mode", &mode));
    bool nesterov = bytes_is(mode, "nesterov");
    if (!nesterov && !bytes_is(mode, "standard"))
        return kiln__onnx_node_error(node, KILN_INVALID_ARGUMENT, "mode is '%.*s', expected 'standard' or 'nesterov'",
                                     (int)mode.size, (const char *)mode.data);
    int32_t n;
    kiln_tensor *r, *t;
    KILN__TRY(optimizer_inputs(ctx, node, 3, &n, &r, &t));
    for (int32_t i = 0; i < n; i++) {
        kiln_tensor *x = kiln__onnx_in(ctx, node, 2 + i), *g = kiln__onnx_in(ctx, node, 2 + n + i);
        kiln_tensor *v = kiln__onnx_in(ctx, node, 2 + 2 * n + i);
        formula f = {ctx, node, kiln_tensor_dtype(x), KILN_OK};
        /* g' = norm X + G; V' = alpha V + (T > 0 ? beta : 1) g';
         * X' = X - R V' (standard) or X - R (g' + alpha V') (Nesterov) */
        kiln_tensor *gr = f_add(&f, f_mul(&f, f_const(&f, norm), x), g);
        kiln_tensor *beta_adj = f_select(&f, t_positive(&f, t), f_const(&f, beta), f_const(&f, 1));
        kiln_tensor *v_new = f_add(&f, f_mul(&f, f_const(&f, alpha), v), f_mul(&f, beta_adj, gr));
        kiln_tensor *step = nesterov ? f_add(&f, gr, f_mul(&f, f_const(&f, alpha), v_new)) : v_new;
        kiln_tensor *x_new = f_sub(&f, x, f_mul(&f, f_as(&f, r), step));
        KILN__TRY(kiln__misc_out(ctx, node, i, x_new, &f.st));
        KILN__TRY(kiln__misc_out(ctx, node, n + i, v_new, &f.st));
    }
    return KILN_OK;
}

/* ---------------------------------------------------------------- Binarizer, ArrayFeatureExtractor */

static kiln_status import_binarizer(kiln__onnx_ctx *ctx, const kiln__onnx_node *node) {
    kiln_status st = KILN_OK;
    kiln_tensor *x = kiln__onnx_in_required(ctx, node, 0, "X", &st);
    if (!x) return st;
    float threshold = 0;
    KILN__TRY(kiln__onnx_attr_float(node, "threshold", &threshold));
    kiln_dtype dt = kiln_tensor_dtype(x);
    if (!kiln__dtype_is_float(dt) && !kiln__dtype_is_integer(dt))
        return kiln__onnx_node_error(node, KILN_UNSUPPORTED, "input X has dtype %s, expected a number type",
                                     kiln_dtype_name(dt));
    /* For integers x > t is x > floor(t). */
    formula f = {ctx, node, dt, KILN_OK};
    kiln_tensor *thr = f_const(&f, kiln__dtype_is_integer(dt) ? floor((double)threshold) : (double)threshold);
    kiln_tensor *above = f_ew(&f, KILN_EW_GREATER, x, thr);
    kiln_tensor *y = above ? kiln__onnx_cast(ctx, node, above, dt, &f.st) : NULL;
    return kiln__misc_out(ctx, node, 0, y, &f.st);
}

/* Y = X[..., indices]: a gather along the last axis with the indices flattened; a 1-D X gives
 * [1, k] as ONNX Runtime does. */
static kiln_status import_array_feature_extractor(kiln__onnx_ctx *ctx, const kiln__onnx_node *node) {
    kiln_status st = KILN_OK;
    kiln_tensor *x = kiln__onnx_in_required(ctx, node, 0, "X", &st);
    kiln_tensor *idx = x ? kiln__onnx_in_required(ctx, node, 1, "Y", &st) : NULL;
    if (!idx) return st;
    kiln_dims xd, id;
    KILN__TRY(kiln_tensor_shape(x, &xd));
    KILN__TRY(kiln_tensor_shape(idx, &id));
    if (xd.nb_dims < 1)
        return kiln__onnx_node_error(node, KILN_INVALID_ARGUMENT, "input X is a scalar, expected rank >= 1");
    if (id.nb_dims != 1) {
        kiln_dims flat = {1, {-1}};
        idx = kiln__onnx_reshape(ctx, node, idx, &flat, &st);
        if (!idx) return st;
    }
    kiln__gather_params p = {.mode = KILN_GATHER_DEFAULT, .axis = xd.nb_dims - 1};
    kiln_tensor *in[2] = {x, idx};
    kiln_tensor *y = kiln__onnx_add1(ctx, node, KILN_LAYER_GATHER, in, 2, &p, sizeof p, &st);
    if (y && xd.nb_dims == 1) {
        kiln_dims row = {2, {1, -1}};
        y = kiln__onnx_reshape(ctx, node, y, &row, &st);
    }
    return kiln__misc_out(ctx, node, 0, y, &st);
}

/* ---------------------------------------------------------------- random */

/* The `seed` attribute (a float) as the generator's seed. Without one the seed is a hash of
 * the node's first output name: a model gives the same values on every run and every build. */
static kiln_status random_seed(const kiln__onnx_node *node, uint64_t *seed) {
    if (kiln__onnx_node_attr(node, "seed")) {
        float s = 0;
        KILN__TRY(kiln__onnx_attr_float(node, "seed", &s));
        if (!(fabsf(s) < 9.2e18f))
            return kiln__onnx_node_error(node, KILN_INVALID_ARGUMENT, "seed %g is out of range", (double)s);
        *seed = (uint64_t)(int64_t)s;
        return KILN_OK;
    }
    const char *name = node->nb_outputs > 0 && node->outputs[0][0] ? node->outputs[0] : node->name;
    *seed = kiln__hash64(name, strlen(name), 0);
    return KILN_OK;
}

/* The `dtype` attribute; `fallback` when absent (0: the input's). */
static kiln_status random_dtype(const kiln__onnx_node *node, int64_t fallback, int32_t *out) {
    int64_t dt = fallback;
    KILN__TRY(kiln__onnx_attr_int(node, "dtype", &dt));
    if (dt != 0 && !kiln__dtype_valid((kiln_dtype)dt))
        return kiln__onnx_node_error(node, KILN_UNSUPPORTED, "dtype %lld is not supported", (long long)dt);
    *out = (int32_t)dt;
    return KILN_OK;
}

/* RandomUniform, RandomNormal and their *Like forms. */
static kiln_status import_random_dist(kiln__onnx_ctx *ctx, const kiln__onnx_node *node) {
    size_t len = strlen(node->op_type);
    bool like = len > 4 && strcmp(node->op_type + len - 4, "Like") == 0;
    bool normal = strncmp(node->op_type, "RandomNormal", 12) == 0;
    kiln__random_params p = {.dist = normal ? KILN__RAND_NORMAL : KILN__RAND_UNIFORM};
    float a = 0, b = 1;
    KILN__TRY(kiln__onnx_attr_float(node, normal ? "mean" : "low", &a));
    KILN__TRY(kiln__onnx_attr_float(node, normal ? "scale" : "high", &b));
    p.a = a;
    p.b = b;
    KILN__TRY(random_seed(node, &p.seed));
    KILN__TRY(random_dtype(node, like ? 0 : KILN_FLOAT32, &p.dtype));
    kiln_status st = KILN_OK;
    kiln_tensor *in = NULL;
    if (like) {
        in = kiln__onnx_in_required(ctx, node, 0, "input", &st);
        if (!in) return st;
    } else {
        const int64_t *shape = NULL;
        int64_t n = 0;
        KILN__TRY(need_attr(node, "shape"));
        KILN__TRY(kiln__onnx_attr_ints(node, "shape", &shape, &n));
        if (n > KILN_MAX_DIMS)
            return kiln__onnx_node_error(node, KILN_UNSUPPORTED, "shape has rank %lld, kiln supports up to %d",
                                         (long long)n, KILN_MAX_DIMS);
        p.dims.nb_dims = (int32_t)n;
        for (int64_t i = 0; i < n; i++) p.dims.d[i] = shape[i];
    }
    kiln_tensor *y = kiln__onnx_add1(ctx, node, KILN_LAYER_RANDOM, &in, 1, &p, sizeof p, &st);
    return kiln__misc_out(ctx, node, 0, y, &st);
}

static kiln_status import_bernoulli(kiln__onnx_ctx *ctx, const kiln__onnx_node *node) {
    kiln__random_params p = {.dist = KILN__RAND_BERNOULLI};
    KILN__TRY(random_seed(node, &p.seed));
    KILN__TRY(random_dtype(node, 0, &p.dtype));
    kiln_status st = KILN_OK;
    kiln_tensor *in = kiln__onnx_in_required(ctx, node, 0, "input", &st);
    if (!in) return st;
    kiln_tensor *y = kiln__onnx_add1(ctx, node, KILN_LAYER_RANDOM, &in, 1, &p, sizeof p, &st);
    return kiln__misc_out(ctx, node, 0, y, &st);
}

static kiln_status import_multinomial(kiln__onnx_ctx *ctx, const kiln__onnx_node *node) {
    kiln__random_params p = {.dist = KILN__RAND_MULTINOMIAL, .sample_size = 1};
    KILN__TRY(random_seed(node, &p.seed));
    KILN__TRY(random_dtype(node, KILN_INT32, &p.dtype));
    KILN__TRY(kiln__onnx_attr_int(node, "sample_size", &p.sample_size));
    kiln_status st = KILN_OK;
    kiln_tensor *in = kiln__onnx_in_required(ctx, node, 0, "input", &st);
    if (!in) return st;
    kiln_tensor *y = kiln__onnx_add1(ctx, node, KILN_LAYER_RANDOM, &in, 1, &p, sizeof p, &st);
    return kiln__misc_out(ctx, node, 0, y, &st);
}

const kiln__onnx_op kiln__onnx_ops_misc[] = {
    {"ai.onnx.preview.training", "Adagrad", 1, import_adagrad},
    {"ai.onnx.preview.training", "Adam", 1, import_adam},
    {"ai.onnx.preview.training", "Momentum", 1, import_momentum},
    {"ai.onnx.ml", "Binarizer", 1, import_binarizer},
    {"ai.onnx.ml", "ArrayFeatureExtractor", 1, import_array_feature_extractor},
    {"ai.onnx.ml", "LabelEncoder", 2, kiln__misc_import_label_encoder},
    {"ai.onnx.ml", "TreeEnsemble", 5, kiln__misc_import_tree_ensemble},
    {"", "TfIdfVectorizer", 9, kiln__misc_import_tfidf},
    {"", "RandomUniform", 1, import_random_dist},
    {"", "RandomNormal", 1, import_random_dist},
    {"", "RandomUniformLike", 1, import_random_dist},
    {"", "RandomNormalLike", 1, import_random_dist},
    {"", "Bernoulli", 15, import_bernoulli},
    {"", "Multinomial", 7, import_multinomial},
    {"", "RNN", 7, kiln__misc_import_rnn},
    {"", "GRU", 7, kiln__misc_import_rnn},
    {"", "LSTM", 7, kiln__misc_import_rnn},
    {NULL, NULL, 0, NULL},
};
