/* Activations that exporters write out as elementwise arithmetic become one activation layer:
 *   GELU (erf)   0.5 * x * (1 + erf(x / sqrt 2))      (Div by 1.4142 or Mul by 0.7071)
 *   GELU (tanh)  0.5 * x * (1 + tanh(sqrt(2/pi) * (x + 0.044715 x^3)))   (any arrangement)
 *   SiLU         x * sigmoid(x)                        (EfficientNet's Swish)
 *   HardSwish    x * hardsigmoid(x) (alpha 1/6, beta 1/2), x * clip(x + 3, 0, 6) / 6
 * The outer product may be grouped and ordered any way (0.5 applied before or after, as a Mul
 * or a Div by 2); the argument of erf/tanh is recognized as a polynomial in x. Every layer
 * dropped is read only inside the pattern, every constant is a scalar that cannot broadcast x
 * to more dims, and the last Mul is turned into the activation so its output tensor (perhaps a
 * network output) stays. */
#include "graph.h"
#include "passes.h"

#include <math.h>
#include <string.h>

#define MAX_DEPTH 12

typedef struct matcher {
    const int32_t *consumers;
    kiln_dtype dtype;
    int32_t rank;     /* x's rank: constants may have at most this many dims */
    double tol;       /* relative tolerance on recognized constants: the dtype's rounding */
} matcher;

/* c[0] + c[1] x + c[2] x^2 + c[3] x^3 */
typedef struct poly {
    double c[4];
} poly;

static bool near(const matcher *m, double got, double want) { return fabs(got - want) <= m->tol * fabs(want); }

static bool poly_mul(const poly *a, const poly *b, poly *out) {
    poly r = {{0}};
    for (int i = 0; i < 4; i++)
        for (int j = 0; j < 4; j++) {
            if (a->c[i] == 0 || b->c[j] == 0) continue;
            if (i + j > 3) return false;
            r.c[i + j] += a->c[i] * b->c[j];
        }
    *out = r;
    return true;
}

/* A layer inside the pattern: computed only for its one reader, elementwise in x's dtype. */
static const kiln_layer *inner(const matcher *m, const kiln_tensor *t) {
    if (!kiln__graph_private(m->consumers, t) || t->dtype != m->dtype) return NULL;
    return t->producer;
}

static const kiln_layer *inner_ew(const matcher *m, const kiln_tensor *t) {
    const kiln_layer *l = inner(m, t);
    return l && l->type == KILN_LAYER_ELEMENTWISE && l->nb_inputs == 2 && l->inputs[0] && l->inputs[1] ? l : NULL;
}

/* t as a polynomial of degree <= 3 in x, built from Add/Sub/Mul/Div by a scalar/Pow by 1..3. */
static bool as_poly(const matcher *m, const kiln_tensor *t, const kiln_tensor *x, int depth, poly *out) {
    double v;
    if (t == x) {
        *out = (poly){{0, 1, 0, 0}};
        return true;
    }
    if (kiln__graph_scalar(t, m->rank, &v)) {
        *out = (poly){{v, 0, 0, 0}};
        return true;
    }
    const kiln_layer *l = inner_ew(m, t);
    if (!l || depth > MAX_DEPTH) return false;
    poly a, b;
    if (!as_poly(m, l->inputs[0], x, depth + 1, &a)) return false;
    switch (l->p.ew.op) {
    case KILN_EW_ADD:
    case KILN_EW_SUB:
        if (!as_poly(m, l->inputs[1], x, depth + 1, &b)) return false;
        for (int i = 0; i < 4; i++) out->c[i] = l->p.ew.op == KILN_EW_ADD ? a.c[i] + b.c[i] : a.c[i] - b.c[i];
        return true;
    case KILN_EW_MUL: return as_poly(m, l->inputs[1], x, depth + 1, &b) && poly_mul(&a, &b, out);
    case KILN_EW_DIV:
        if (!kiln__graph_scalar(l->inputs[1], m->rank, &v) || v == 0) return false;
        for (int i = 0; i < 4; i++) out->c[i] = a.c[i] / v;
        return true;
    case KILN_EW_POW:
        if (!kiln__graph_scalar(l->inputs[1], m->rank, &v) || (v != 1 && v != 2 && v != 3)) return false;
        *out = a;
        for (int i = 1; i < (int)v; i++)
            if (!poly_mul(out, &a, out)) return false;
        return true;
    default: return false;
    }
}

/* p(x) == k1 x + k3 x^3 up to the constants' rounding. */
static bool poly_is(const matcher *m, const poly *p, double k1, double k3) {
    double scale = fabs(k1) + fabs(k3);
    return near(m, p->c[1], k1) && (k3 == 0 ? fabs(p->c[3]) <= m->tol * scale : near(m, p->c[3], k3)) &&
           fabs(p->c[0]) <= m->tol * scale && fabs(p->c[2]) <= m->tol * scale;
}

/* A product of factors: scalar constants multiply into k, the rest are leaves (at most 2). */
typedef struct product {
    double k;
    const kiln_tensor *leaves[2];
    int nb_leaves;
} product;

static bool flatten(const matcher *m, const kiln_tensor *t, bool root, int depth, product *p) {
    double v;
    if (kiln__graph_scalar(t, m->rank, &v)) {
        p->k *= v;
        return true;
    }
    const kiln_layer *l = root ? t->producer : inner_ew(m, t);
    if (l && depth <= MAX_DEPTH && l->p.ew.op == KILN_EW_MUL)
        return flatten(m, l->inputs[0], false, depth + 1, p) && flatten(m, l->inputs[1], false, depth + 1, p);
    if (l && depth <= MAX_DEPTH && l->p.ew.op == KILN_EW_DIV && kiln__graph_scalar(l->inputs[1], m->rank, &v) &&
        v != 0) {
        p->k /= v;
        return flatten(m, l->inputs[0], false, depth + 1, p);
    }
    if (root || p->nb_leaves == 2) return false;
    p->leaves[p->nb_leaves++] = t;
    return true;
}

/* The activation that x * k * s computes, or -1. */
static int32_t match_factor(const matcher *m, const kiln_tensor *x, const kiln_tensor *s, double k, float *alpha,
                            float *beta) {
    const kiln_layer *l = inner(m, s);
    if (!l) return -1;
    *alpha = *beta = 0;
    if (l->type == KILN_LAYER_ACTIVATION && l->inputs[0] == x) {
        const kiln__activation_params *a = &l->p.act;
        if (a->kind == KILN_ACT_SIGMOID && near(m, k, 1)) return KILN_ACT_SILU;
        if (a->kind == KILN_ACT_HARD_SIGMOID && near(m, a->alpha, 1.0 / 6) && near(m, a->beta, 0.5) && near(m, k, 1))
            return KILN_ACT_HARD_SWISH;
        return -1;
    }
    poly p;
    if (l->type == KILN_LAYER_ACTIVATION && l->p.act.kind == KILN_ACT_CLIP && l->p.act.alpha == 0 &&
        l->p.act.beta == 6 && near(m, k, 1.0 / 6) && as_poly(m, l->inputs[0], x, 0, &p) && near(m, p.c[0], 3) &&
        poly_is(m, &(poly){{0, p.c[1], p.c[2], p.c[3]}}, 1, 0))
        return KILN_ACT_HARD_SWISH;
    /* 1 + erf(..) or 1 + tanh(..), the 1 on either side. */
    if (l->type != KILN_LAYER_ELEMENTWISE || l->p.ew.op != KILN_EW_ADD || l->nb_inputs != 2 || !near(m, k, 0.5))
        return -1;
    double one;
    int32_t side = kiln__graph_scalar(l->inputs[0], m->rank, &one) ? 1 : 0;
    if (!kiln__graph_scalar(l->inputs[1 - side], m->rank, &one) || !near(m, one, 1)) return -1;
    const kiln_layer *f = inner(m, l->inputs[side]);
    if (!f || !f->inputs[0]) return -1;
    if (f->type == KILN_LAYER_UNARY && f->p.unary.op == KILN_UNARY_ERF && as_poly(m, f->inputs[0], x, 0, &p) &&
        poly_is(m, &p, sqrt(0.5), 0))
        return KILN_ACT_GELU_ERF;
    double c = 0.79788456080286535588; /* sqrt(2 / pi) */
    if (f->type == KILN_LAYER_ACTIVATION && f->p.act.kind == KILN_ACT_TANH && as_poly(m, f->inputs[0], x, 0, &p) &&
        poly_is(m, &p, c, c * 0.044715))
        return KILN_ACT_GELU_TANH;
    return -1;
}

/* Rewrites `root` (a Mul or Div) into the activation of x when the product it ends matches. */
static bool try_root(const int32_t *consumers, kiln_layer *root) {
    const kiln_tensor *y = root->outputs[0];
    if (root->type != KILN_LAYER_ELEMENTWISE || root->nb_inputs != 2 || !root->inputs[0] || !root->inputs[1] ||
        (root->p.ew.op != KILN_EW_MUL && root->p.ew.op != KILN_EW_DIV) ||
        (y->dtype != KILN_FLOAT32 && y->dtype != KILN_FLOAT16))
        return false;
    matcher m = {consumers, y->dtype, y->dims.nb_dims, y->dtype == KILN_FLOAT16 ? 1e-3 : 1e-6};
    product p = {1, {NULL, NULL}, 0};
    if (!flatten(&m, y, true, 0, &p) || p.nb_leaves != 2) return false;
    for (int order = 0; order < 2; order++) {
        kiln_tensor *x = (kiln_tensor *)p.leaves[order];
        /* x must carry the root's full rank and dtype; scalars cannot grow it further. */
        if (x->dtype != y->dtype || x->dims.nb_dims != y->dims.nb_dims) continue;
        float alpha, beta;
        int32_t kind = match_factor(&m, x, p.leaves[1 - order], p.k, &alpha, &beta);
        if (kind < 0) continue;
        root->type = KILN_LAYER_ACTIVATION;
        memset(&root->p, 0, sizeof root->p);
        root->p.act = (kiln__activation_params){kind, alpha, beta};
        root->inputs[0] = x;
        root->inputs[1] = NULL;
        root->nb_inputs = 1;
        return true;
    }
    return false;
}

kiln_status kiln__pass_fuse_activations(kiln_network *net, int32_t *fused) {
    *fused = 0;
    int32_t *consumers;
    KILN__TRY(kiln__graph_consumers(net, &consumers));
    /* In topological order an inner Mul of a pattern is tried (and fails) before the last one;
     * the layers a match drops are read only inside it, so no later root reaches them. */
    for (int64_t i = 0; i < net->nb_layers; i++) *fused += try_root(consumers, net->layers[i]);
    kiln__free(&net->alloc, consumers);
    return *fused ? kiln__graph_tidy(net) : KILN_OK;
}
