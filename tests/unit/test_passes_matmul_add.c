/* kiln__pass_fuse_matmul_add: the Add of a non-constant tensor with rows as wide as a matmul's
 * result (attention's mask, a residual block) becomes the matmul's c. The engine must have the
 * expected compute layers and give what the evaluator gives for the unfused network; an Add
 * that is not such a row add (a column, a rank-growing tensor, a second reader of the matmul's
 * result, a 1-D operand) keeps its layer. */
#include "kiln.h"
#include "kt.h"
#include "runtime/eval.h"

#include <string.h>

static kiln_builder *g_b;
static kiln_network *g_net;
static kiln_dtype g_dt;

static kiln_tensor *out0(kiln_layer *l) { return l ? kiln_layer_output(l, 0) : NULL; }

/* A constant with the given dims and values drawn from [lo, hi] (lo == hi: all equal). */
static kiln_tensor *cst_dims(const kiln_dims *d, float lo, float hi) {
    int64_t n = kiln__dims_volume(d);
    float *v = malloc((size_t)(n ? n : 1) * sizeof *v);
    uint16_t *h = malloc((size_t)(n ? n : 1) * sizeof *h);
    kt_fill(v, n, lo, hi);
    for (int64_t i = 0; i < n; i++) h[i] = kiln__float_to_half(v[i]);
    kiln_layer *l = NULL;
    kiln_weights w = {g_dt, g_dt == KILN_FLOAT16 ? (const void *)h : (const void *)v, n};
    KT_OK(kiln_network_add_constant(g_net, d, w, &l));
    free(v);
    free(h);
    return out0(l);
}

static kiln_tensor *cst(float v) { return cst_dims(&(kiln_dims){0, {0}}, v, v); }

static kiln_tensor *ew(kiln_tensor *a, kiln_elementwise_op op, kiln_tensor *b) {
    kiln_layer *l = NULL;
    KT_OK(kiln_network_add_elementwise(g_net, a, b, op, &l));
    return out0(l);
}

static kiln_tensor *act(kiln_tensor *a, kiln_activation_type kind, float alpha, float beta) {
    kiln_layer *l = NULL;
    KT_OK(kiln_network_add_activation(g_net, a, kind, alpha, beta, &l));
    return out0(l);
}

static kiln_tensor *matmul(kiln_tensor *a, kiln_tensor *b) {
    kiln_layer *l = NULL;
    KT_OK(kiln_network_add_matmul(g_net, a, KILN_MATRIX_NONE, b, KILN_MATRIX_NONE, &l));
    return out0(l);
}

static kiln_tensor *input(const char *name, const kiln_dims *d) {
    kiln_tensor *t = NULL;
    KT_OK(kiln_network_add_input(g_net, name, g_dt, d, &t));
    return t;
}

static void begin(kiln_dtype dt) {
    g_dt = dt;
    KT_OK(kiln_builder_create(NULL, &g_b));
    KT_OK(kiln_network_create(g_b, &g_net));
}

static void to_float(const void *data, kiln_dtype dt, float *out, int64_t n) {
    for (int64_t i = 0; i < n; i++)
        out[i] = dt == KILN_FLOAT16 ? kiln__half_to_float(((const uint16_t *)data)[i]) : ((const float *)data)[i];
}

/* Marks `y` as the output, builds the engine, checks it has `want` compute layers whose
 * descriptions contain `expect` (when not NULL), and that it computes what the unfused network
 * does. Frees the network. */
static void finish(const char *name, kiln_tensor *y, int32_t want, const char *expect) {
    KT_OK(kiln_network_mark_output(g_net, y));
    int32_t nb_in = kiln_network_num_inputs(g_net);
    void *data[4] = {0};
    size_t bytes[4] = {0};
    kiln__alloc alloc;
    kiln__alloc_init(&alloc, NULL);
    kiln__eval ev;
    KT_OK(kiln__eval_init(&ev, g_net, &alloc, NULL));
    for (int32_t i = 0; i < nb_in && i < 4; i++) {
        kiln_tensor *t = kiln_network_input(g_net, i);
        int64_t n = kiln__dims_volume(&t->dims);
        float *f = malloc((size_t)n * sizeof *f);
        kt_fill(f, n, -4, 4);
        bytes[i] = (size_t)n * (g_dt == KILN_FLOAT16 ? 2 : 4);
        data[i] = malloc(bytes[i]);
        for (int64_t k = 0; k < n; k++) {
            if (g_dt == KILN_FLOAT16)
                ((uint16_t *)data[i])[k] = kiln__float_to_half(f[k]);
            else
                ((float *)data[i])[k] = f[k];
        }
        free(f);
        kiln__eval_set_input(&ev, i, &t->dims, data[i]);
    }
    KT_OK(kiln__eval_run(&ev, KILN__EVAL_EXECUTE));

    kiln_builder_config *cfg = NULL;
    kiln_engine *eng = NULL;
    KT_OK(kiln_builder_config_create(g_b, &cfg));
    KT_OK(kiln_builder_build_engine(g_b, g_net, cfg, &eng));
    if (eng) {
        int32_t compute = 0;
        char all[8192] = "";
        for (int32_t i = 0; i < kiln_engine_num_layers(eng); i++) {
            char info[1024];
            kiln_engine_layer_info(eng, i, info, sizeof info);
            if (strstr(info, "[Constant]")) continue;
            compute++;
            strncat(all, info, sizeof all - strlen(all) - 2);
            strcat(all, "\n");
        }
        if (compute != want || (expect && !strstr(all, expect))) {
            fprintf(stderr, "%s: %d compute layers, expected %d%s%s:\n%s", name, compute, want,
                    expect ? " with " : "", expect ? expect : "", all);
            KT_CHECK(0);
        }
        kiln_context *ctx = NULL;
        KT_OK(kiln_engine_create_context(eng, &ctx));
        for (int32_t i = 0; i < nb_in && i < 4; i++)
            KT_OK(kiln_context_set_tensor_address(ctx, kiln_tensor_name(kiln_network_input(g_net, i)), data[i],
                                                  bytes[i]));
        KT_OK(kiln_context_execute(ctx));
        void *got = NULL;
        KT_OK(kiln_context_get_tensor_address(ctx, kiln_tensor_name(y), &got));
        const kiln__value *want_v = &ev.values[y->index];
        int64_t n = kiln__dims_volume(&want_v->dims);
        if (got && want_v->data) {
            float *a = malloc((size_t)n * sizeof *a), *b = malloc((size_t)n * sizeof *b);
            to_float(got, g_dt, a, n);
            to_float(want_v->data, g_dt, b, n);
            /* fp16: the fused activation rounds once where the chain rounded at every step. */
            kt_close(name, a, b, n, g_dt == KILN_FLOAT16 ? 1e-2f : 1e-5f, g_dt == KILN_FLOAT16 ? 4e-3f : 1e-5f);
            free(a);
            free(b);
        }
        kiln_context_destroy(ctx);
    }
    kiln__eval_free(&ev);
    for (int32_t i = 0; i < 4; i++) free(data[i]);
    kiln_engine_destroy(eng);
    kiln_builder_config_destroy(cfg);
    kiln_network_destroy(g_net);
    kiln_builder_destroy(g_b);
}

static kiln_tensor *matmul_ops(kiln_tensor *a, kiln_tensor *b, kiln_matrix_op op_b) {
    kiln_layer *l = NULL;
    KT_OK(kiln_network_add_matmul(g_net, a, KILN_MATRIX_NONE, b, op_b, &l));
    return out0(l);
}

/* Scores of attention with 3 heads: q [2, 3, 5, 8] times k [2, 3, 5, 8] transposed, scaled. */
static kiln_tensor *scores(void) {
    kiln_tensor *q = input("q", &(kiln_dims){4, {2, 3, 5, 8}}), *k = input("k", &(kiln_dims){4, {2, 3, 5, 8}});
    return ew(matmul_ops(q, k, KILN_MATRIX_TRANSPOSE), KILN_EW_DIV, cst(2.8284271f));
}

static void positive(kiln_dtype dt) {
    begin(dt);
    kiln_tensor *s = scores();
    finish("attention mask input", ew(s, KILN_EW_ADD, input("mask", &(kiln_dims){4, {2, 1, 1, 5}})), 1, "c=1");
    /* The mask made from 0/1 values as BERT does: the Mul stays, the Add goes. */
    begin(dt);
    s = scores();
    kiln_tensor *m = ew(input("mask", &(kiln_dims){4, {2, 1, 1, 5}}), KILN_EW_MUL, cst(-100.0f));
    finish("attention mask computed", ew(m, KILN_EW_ADD, s), 2, "beta=1 c=1");
    /* A mask per head and query: [3, 5, 5] blocks. */
    begin(dt);
    s = scores();
    finish("attention bias blocks", ew(s, KILN_EW_ADD, input("bias", &(kiln_dims){3, {3, 5, 5}})), 1, "c=1");
    /* A residual of the whole result, then an activation, which joins the float32 epilogue too. */
    begin(dt);
    kiln_tensor *x = input("x", &(kiln_dims){3, {2, 5, 16}});
    kiln_tensor *y = matmul(x, cst_dims(&(kiln_dims){2, {16, 8}}, -0.3f, 0.3f));
    finish("residual then relu", act(ew(y, KILN_EW_ADD, input("r", &(kiln_dims){3, {2, 5, 8}})), KILN_ACT_RELU, 0, 0),
           dt == KILN_FLOAT32 ? 1 : 2, "c=1");
}

static void negative(void) {
    /* A column [5, 1] is not a row add. */
    begin(KILN_FLOAT32);
    kiln_tensor *s = scores();
    finish("column", ew(s, KILN_EW_ADD, input("col", &(kiln_dims){2, {5, 1}})), 2, NULL);
    /* A rank-5 tensor grows the result. */
    begin(KILN_FLOAT32);
    s = scores();
    finish("rank-growing", ew(s, KILN_EW_ADD, input("big", &(kiln_dims){5, {1, 1, 1, 1, 5}})), 2, NULL);
    /* A mask that repeats the scores over a batch dim of 1 grows them too. */
    begin(KILN_FLOAT32);
    kiln_tensor *q = input("q", &(kiln_dims){4, {1, 3, 5, 8}}), *k = input("k", &(kiln_dims){4, {1, 3, 5, 8}});
    s = matmul_ops(q, k, KILN_MATRIX_TRANSPOSE);
    finish("batch-growing", ew(s, KILN_EW_ADD, input("mask", &(kiln_dims){4, {2, 1, 1, 5}})), 2, NULL);
    /* The scores are read twice (the scaling still becomes alpha). */
    begin(KILN_FLOAT32);
    s = scores();
    kiln_tensor *sum = ew(s, KILN_EW_ADD, input("mask", &(kiln_dims){4, {2, 1, 1, 5}}));
    finish("second reader", ew(sum, KILN_EW_MUL, s), 3, NULL);
    /* A 1-D b: the result has no rows of n. */
    begin(KILN_FLOAT32);
    kiln_tensor *x = input("x", &(kiln_dims){3, {2, 5, 16}});
    kiln_tensor *y = matmul(x, cst_dims(&(kiln_dims){1, {16}}, -0.3f, 0.3f));
    finish("vector b", ew(y, KILN_EW_ADD, input("r", &(kiln_dims){2, {2, 5}})), 2, NULL);
}

int main(void) {
    kt_seed();
    positive(KILN_FLOAT32);
    positive(KILN_FLOAT16);
    negative();
    return kt_summary("test_passes_matmul_add");
}
