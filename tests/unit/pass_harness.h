/* Harness for the fusion pass tests: a network built through the public API in globals (begin,
 * then constants, inputs and layers), and finish, which builds the engine, checks its compute
 * layers and compares its results with the evaluator's run of the unfused network, in float32 or
 * float16. */
#ifndef KILN_TEST_PASS_HARNESS_H
#define KILN_TEST_PASS_HARNESS_H

#include "kiln.h"
#include "kt.h"
#include "runtime/eval.h"

#include <string.h>

static kiln_builder *g_b;
static kiln_network *g_net;
static kiln_dtype g_dt;

static inline kiln_tensor *out0(kiln_layer *l) { return l ? kiln_layer_output(l, 0) : NULL; }

/* A constant with the given dims and values drawn from [lo, hi] (lo == hi: all equal). */
static inline kiln_tensor *cst_dims(const kiln_dims *d, float lo, float hi) {
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

static inline kiln_tensor *cst(float v) { return cst_dims(&(kiln_dims){0, {0}}, v, v); }

static inline kiln_tensor *ew(kiln_tensor *a, kiln_elementwise_op op, kiln_tensor *b) {
    kiln_layer *l = NULL;
    KT_OK(kiln_network_add_elementwise(g_net, a, b, op, &l));
    return out0(l);
}

static inline kiln_tensor *un(kiln_tensor *a, kiln_unary_op op) {
    kiln_layer *l = NULL;
    KT_OK(kiln_network_add_unary(g_net, a, op, &l));
    return out0(l);
}

static inline kiln_tensor *act(kiln_tensor *a, kiln_activation_type kind, float alpha, float beta) {
    kiln_layer *l = NULL;
    KT_OK(kiln_network_add_activation(g_net, a, kind, alpha, beta, &l));
    return out0(l);
}

static inline kiln_tensor *matmul(kiln_tensor *a, kiln_tensor *b) {
    kiln_layer *l = NULL;
    KT_OK(kiln_network_add_matmul(g_net, a, KILN_MATRIX_NONE, b, KILN_MATRIX_NONE, &l));
    return out0(l);
}

static inline kiln_tensor *input(const char *name, const kiln_dims *d) {
    kiln_tensor *t = NULL;
    KT_OK(kiln_network_add_input(g_net, name, g_dt, d, &t));
    return t;
}

static inline void begin(kiln_dtype dt) {
    g_dt = dt;
    KT_OK(kiln_builder_create(NULL, &g_b));
    KT_OK(kiln_network_create(g_b, &g_net));
}

static inline void to_float(const void *data, kiln_dtype dt, float *out, int64_t n) {
    for (int64_t i = 0; i < n; i++)
        out[i] = dt == KILN_FLOAT16 ? kiln__half_to_float(((const uint16_t *)data)[i]) : ((const float *)data)[i];
}

/* Marks `y` as the output, builds the engine, checks it has `want` compute layers whose
 * descriptions contain `expect` (when not NULL), and that it computes what the unfused network
 * does, with the same dims. Frees the network. */
static inline void finish(const char *name, kiln_tensor *y, int32_t want, const char *expect) {
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
        kiln_dims got_dims = {0, {0}};
        KT_OK(kiln_context_get_tensor_shape(ctx, kiln_tensor_name(y), &got_dims));
        KT_CHECK(got_dims.nb_dims == want_v->dims.nb_dims &&
                 !memcmp(got_dims.d, want_v->dims.d, (size_t)got_dims.nb_dims * sizeof *got_dims.d));
        if (got && want_v->data) {
            float *a = malloc((size_t)n * sizeof *a), *b = malloc((size_t)n * sizeof *b);
            to_float(got, g_dt, a, n);
            to_float(want_v->data, g_dt, b, n);
            /* fp16: the fused layer rounds once where the chain rounded at every step, and its
             * intermediates reach 8 (attention scores before their scaling), which float16 keeps
             * to steps of 1/128: where a sum then nearly cancels, the two differ by about that
             * much however small the result. */
            kt_close(name, a, b, n, g_dt == KILN_FLOAT16 ? 1e-2f : 1e-5f, g_dt == KILN_FLOAT16 ? 1e-2f : 1e-5f);
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

#endif
