/* Fusion with dynamic dims: a model exported with a dynamic batch (or sequence) dim has -1 in
 * its build-time dims, and the passes fuse on the dims at the shapes its profile accepts. The
 * engine must hold the expected compute layers and give what the evaluator gives for the
 * unfused network at several shapes of the profile; an Add whose operands differ somewhere the
 * profile reaches (a broadcast residual, a residual following another input's batch) keeps its
 * layer. The fused convolution refuses a residual whose dims are not its output's. */
#include "kiln.h"
#include "kt.h"
#include "runtime/engine.h"
#include "runtime/eval.h"

#include <string.h>

#define MAX_IN 2
#define MAX_SHAPES 4

static kiln_builder *g_b;
static kiln_network *g_net;
static kiln_optimization_profile *g_prof;

static kiln_tensor *out0(kiln_layer *l) { return l ? kiln_layer_output(l, 0) : NULL; }

static void begin(void) {
    KT_OK(kiln_builder_create(NULL, &g_b));
    KT_OK(kiln_network_create(g_b, &g_net));
    KT_OK(kiln_optimization_profile_create(g_b, &g_prof));
}

/* A float32 input with build-time dims d (-1: dynamic) and the profile's min, opt and max. */
static kiln_tensor *input(const char *name, kiln_dims d, kiln_dims min, kiln_dims opt, kiln_dims max) {
    kiln_tensor *t = NULL;
    KT_OK(kiln_network_add_input(g_net, name, KILN_FLOAT32, &d, &t));
    KT_OK(kiln_optimization_profile_set_dims(g_prof, name, KILN_PROFILE_MIN, &min));
    KT_OK(kiln_optimization_profile_set_dims(g_prof, name, KILN_PROFILE_OPT, &opt));
    KT_OK(kiln_optimization_profile_set_dims(g_prof, name, KILN_PROFILE_MAX, &max));
    return t;
}

/* An image input [N, 8, 6, 6] with N from 1 to 4. */
static kiln_tensor *image(const char *name) {
    return input(name, (kiln_dims){4, {-1, 8, 6, 6}}, (kiln_dims){4, {1, 8, 6, 6}}, (kiln_dims){4, {2, 8, 6, 6}},
                 (kiln_dims){4, {4, 8, 6, 6}});
}

static kiln_tensor *constant(const kiln_dims *d, float lo, float hi) {
    int64_t n = kiln__dims_volume(d);
    float *v = malloc((size_t)n * sizeof *v);
    kt_fill(v, n, lo, hi);
    kiln_layer *l = NULL;
    KT_OK(kiln_network_add_constant(g_net, d, (kiln_weights){KILN_FLOAT32, v, n}, &l));
    free(v);
    return out0(l);
}

static kiln_tensor *ew(kiln_tensor *a, kiln_elementwise_op op, kiln_tensor *b) {
    kiln_layer *l = NULL;
    KT_OK(kiln_network_add_elementwise(g_net, a, b, op, &l));
    return out0(l);
}

static kiln_tensor *relu(kiln_tensor *a) {
    kiln_layer *l = NULL;
    KT_OK(kiln_network_add_activation(g_net, a, KILN_ACT_RELU, 0, 0, &l));
    return out0(l);
}

static kiln_tensor *matmul(kiln_tensor *a, kiln_tensor *b) {
    kiln_layer *l = NULL;
    KT_OK(kiln_network_add_matmul(g_net, a, KILN_MATRIX_NONE, b, KILN_MATRIX_NONE, &l));
    return out0(l);
}

/* batchnorm(conv3x3(x)), 8 maps in and out, the conv with or without a bias. */
static kiln_tensor *conv_bn(kiln_tensor *x, bool bias) {
    kiln_convolution_desc cd = {sizeof cd, .nb_output_maps = 8, .kernel = {3, 3}, .padding_begin = {1, 1},
                                .padding_end = {1, 1}};
    float w[8 * 8 * 9], b[8];
    kt_fill(w, 8 * 8 * 9, -0.3f, 0.3f);
    kt_fill(b, 8, -0.2f, 0.2f);
    kiln_layer *conv = NULL, *bn = NULL;
    KT_OK(kiln_network_add_convolution(g_net, x, &cd, (kiln_weights){KILN_FLOAT32, w, 8 * 8 * 9},
                                       bias ? (kiln_weights){KILN_FLOAT32, b, 8} : (kiln_weights){0}, &conv));
    kiln_dims c = {1, {8}};
    kiln_normalization_desc nd = {sizeof nd, KILN_NORM_BATCH, 1e-5f, 0, 0};
    KT_OK(kiln_network_add_normalization(g_net, out0(conv), &nd, constant(&c, 0.5f, 1.5f), constant(&c, -0.5f, 0.5f),
                                         constant(&c, -0.5f, 0.5f), constant(&c, 0.5f, 2.0f), &bn));
    return out0(bn);
}

/* The built engine's compute layers: their count, their descriptions in all. */
static int32_t compute_layers(const kiln_engine *eng, char *all, size_t size) {
    int32_t n = 0;
    all[0] = 0;
    for (int32_t i = 0; i < kiln_engine_num_layers(eng); i++) {
        char info[1024];
        kiln_engine_layer_info(eng, i, info, sizeof info);
        if (strstr(info, "[Constant]")) continue;
        n++;
        strncat(all, info, size - strlen(all) - 2);
        strcat(all, "\n");
    }
    return n;
}

/* Runs the engine and the evaluator on the unfused network with the same random inputs of the
 * given dims; compares output y. */
static void compare_at(const char *name, kiln_engine *eng, kiln_tensor *y, const kiln_dims *dims) {
    int32_t nb_in = kiln_network_num_inputs(g_net);
    float *data[MAX_IN] = {0};
    kiln_context *ctx = NULL;
    KT_OK(kiln_engine_create_context(eng, &ctx));
    kiln__alloc alloc;
    kiln__alloc_init(&alloc, NULL);
    kiln__eval ev;
    KT_OK(kiln__eval_init(&ev, g_net, &alloc, NULL));
    for (int32_t i = 0; i < nb_in; i++) {
        const char *in_name = kiln_tensor_name(kiln_network_input(g_net, i));
        int64_t n = kiln__dims_volume(&dims[i]);
        data[i] = malloc((size_t)n * sizeof *data[i]);
        kt_fill(data[i], n, -2, 2);
        KT_OK(kiln_context_set_input_shape(ctx, in_name, &dims[i]));
        KT_OK(kiln_context_set_tensor_address(ctx, in_name, data[i], (size_t)n * sizeof *data[i]));
        kiln__eval_set_input(&ev, i, &dims[i], data[i]);
    }
    KT_OK(kiln__eval_run(&ev, KILN__EVAL_EXECUTE));
    KT_OK(kiln_context_execute(ctx));
    void *got = NULL;
    kiln_dims got_dims = {0};
    KT_OK(kiln_context_get_tensor_address(ctx, kiln_tensor_name(y), &got));
    KT_OK(kiln_context_get_tensor_shape(ctx, kiln_tensor_name(y), &got_dims));
    const kiln__value *want = &ev.values[y->index];
    KT_CHECK(kiln__dims_equal(&got_dims, &want->dims));
    if (got && want->data && kiln__dims_equal(&got_dims, &want->dims))
        kt_close(name, got, want->data, kiln__dims_volume(&want->dims), 1e-4f, 1e-5f);
    kiln__eval_free(&ev);
    kiln_context_destroy(ctx);
    for (int32_t i = 0; i < nb_in; i++) free(data[i]);
}

/* Marks y as the output, builds the engine with the profile, checks it has `want` compute layers
 * whose descriptions contain `expect` (when not NULL), and that it computes what the unfused
 * network does at each of nb_shapes input shapes (one row of dims per input). Returns the engine
 * when `keep`, else frees it; frees the network either way. */
static kiln_engine *finish(const char *name, kiln_tensor *y, int32_t want, const char *expect, int32_t nb_shapes,
                           const kiln_dims shapes[][MAX_IN], bool keep) {
    KT_OK(kiln_network_mark_output(g_net, y));
    kiln_builder_config *cfg = NULL;
    kiln_engine *eng = NULL;
    KT_OK(kiln_builder_config_create(g_b, &cfg));
    KT_OK(kiln_builder_config_add_profile(cfg, g_prof));
    KT_OK(kiln_builder_build_engine(g_b, g_net, cfg, &eng));
    if (eng) {
        char all[8192];
        int32_t compute = compute_layers(eng, all, sizeof all);
        if (compute != want || (expect && !strstr(all, expect))) {
            fprintf(stderr, "%s: %d compute layers, expected %d%s%s:\n%s", name, compute, want,
                    expect ? " with " : "", expect ? expect : "", all);
            KT_CHECK(0);
        }
        for (int32_t s = 0; s < nb_shapes; s++) compare_at(name, eng, y, shapes[s]);
    }
    if (!keep) {
        kiln_engine_destroy(eng);
        eng = NULL;
    }
    kiln_builder_config_destroy(cfg);
    kiln_optimization_profile_destroy(g_prof);
    kiln_network_destroy(g_net);
    kiln_builder_destroy(g_b);
    return eng;
}

#define IMG(n) {4, {n, 8, 6, 6}}

static const kiln_dims batches[][MAX_IN] = {{IMG(1)}, {IMG(2)}, {IMG(4)}};

/* The fused convolution of eng that reads a residual, or NULL. */
static const kiln_layer *residual_conv(const kiln_engine *eng) {
    for (int64_t i = 0; i < eng->net->nb_layers; i++) {
        const kiln_layer *l = eng->net->layers[i];
        if (l->type == KILN_LAYER_CONVOLUTION && l->nb_inputs > 3 && l->inputs[3]) return l;
    }
    return NULL;
}

/* The conv's shape inference, which runs before every execution, rejects a residual whose batch
 * is not the output's: the run-time check behind fusing on the profile's shapes. */
static void residual_checked(const kiln_engine *eng) {
    const kiln_layer *l = residual_conv(eng);
    KT_CHECK(l != NULL);
    if (!l) return;
    kiln__value in[4], out[1];
    memset(in, 0, sizeof in);
    memset(out, 0, sizeof out);
    for (int32_t k = 0; k < 4; k++) {
        in[k].dtype = l->inputs[k] ? l->inputs[k]->dtype : KILN_DTYPE_UNDEFINED;
        in[k].dims = l->inputs[k] ? l->inputs[k]->dims : (kiln_dims){0};
    }
    in[0].dims = (kiln_dims)IMG(2);
    in[3].dims = (kiln_dims)IMG(2);
    const kiln__layer_ops *ops = kiln__layer_ops_for(l->type);
    KT_OK(ops->infer(l, in, out));
    in[3].dims = (kiln_dims)IMG(1);
    KT_STATUS(ops->infer(l, in, out), KILN_INVALID_ARGUMENT);
    KT_CHECK(strstr(kiln_last_error(), l->name) != NULL && strstr(kiln_last_error(), "residual") != NULL);
}

static void conv_residual(void) {
    /* relu(bn(conv(x)) + x): batchnorm, add and relu all go into the conv. */
    begin();
    kiln_tensor *x = image("x");
    kiln_engine *eng = finish("conv+bn+add(x)+relu", relu(ew(conv_bn(x, true), KILN_EW_ADD, x)), 1,
                              "residual=1", 3, batches, true);
    if (eng) residual_checked(eng);
    kiln_engine_destroy(eng);
    /* A projection block: relu(bn(conv(x)) + bn(conv(x))), the residual on the left. */
    begin();
    x = image("x");
    finish("projection block", relu(ew(conv_bn(x, false), KILN_EW_ADD, conv_bn(x, true))), 2, "residual=1", 3,
           batches, false);
    /* Two blocks in a row, the second reading the first's relu. */
    begin();
    x = image("x");
    kiln_tensor *h = relu(ew(conv_bn(x, true), KILN_EW_ADD, x));
    finish("two blocks", relu(ew(h, KILN_EW_ADD, conv_bn(h, true))), 2, "residual=1", 3, batches, false);
}

static void conv_broadcast(void) {
    /* A residual [N, 8, 1, 1] broadcasts over the maps: the Add stays, and so does the relu. */
    begin();
    kiln_tensor *x = image("x");
    kiln_tensor *s = input("s", (kiln_dims){4, {-1, 8, 1, 1}}, (kiln_dims){4, {1, 8, 1, 1}},
                           (kiln_dims){4, {2, 8, 1, 1}}, (kiln_dims){4, {4, 8, 1, 1}});
    const kiln_dims per_map[][MAX_IN] = {{IMG(1), {4, {1, 8, 1, 1}}}, {IMG(4), {4, {4, 8, 1, 1}}}};
    finish("broadcast residual", relu(ew(conv_bn(x, true), KILN_EW_ADD, s)), 3, "[ElementWise]", 2, per_map, false);
    /* A residual [1, 8, 6, 6] (known dims) broadcasts over the batch. */
    begin();
    x = image("x");
    kiln_dims one = IMG(1);
    const kiln_dims two[][MAX_IN] = {{IMG(2)}};
    finish("batch-broadcast residual", relu(ew(conv_bn(x, true), KILN_EW_ADD, constant(&one, -1, 1))), 3,
           "[ElementWise]", 1, two, false);
    /* A residual following another input's batch, with the same range: equal at min, opt and
     * max, but the profile also accepts x with batch 1 and r with batch 4 (a broadcast). */
    begin();
    x = image("x");
    kiln_tensor *r = image("r");
    const kiln_dims mixed[][MAX_IN] = {{IMG(2), IMG(2)}, {IMG(1), IMG(4)}, {IMG(4), IMG(1)}};
    finish("another input's batch", relu(ew(conv_bn(x, true), KILN_EW_ADD, r)), 3, "[ElementWise]", 3, mixed, false);
}

/* x [N, S, 16] with N from 1 to 3, S from 1 to 7. */
static kiln_tensor *tokens(const char *name) {
    return input(name, (kiln_dims){3, {-1, -1, 16}}, (kiln_dims){3, {1, 1, 16}}, (kiln_dims){3, {2, 5, 16}},
                 (kiln_dims){3, {3, 7, 16}});
}

static void matmul_residual(void) {
    /* x W1 + x W2: both [N, S, 8] with S dynamic, which the build-time dims cannot show equal. */
    begin();
    kiln_tensor *x = tokens("x");
    kiln_dims wd = {2, {16, 8}};
    kiln_tensor *y = ew(matmul(x, constant(&wd, -0.3f, 0.3f)), KILN_EW_ADD, matmul(x, constant(&wd, -0.3f, 0.3f)));
    const kiln_dims seqs[][MAX_IN] = {{{3, {1, 1, 16}}}, {{3, {2, 5, 16}}}, {{3, {3, 7, 16}}}, {{3, {3, 2, 16}}}};
    finish("matmul + matmul", y, 2, "c=1", 4, seqs, false);
    /* The other term from another input with the same ranges: not fused. */
    begin();
    x = tokens("x");
    kiln_tensor *r = input("r", (kiln_dims){3, {-1, -1, 8}}, (kiln_dims){3, {1, 1, 8}}, (kiln_dims){3, {2, 5, 8}},
                           (kiln_dims){3, {3, 7, 8}});
    y = ew(matmul(x, constant(&wd, -0.3f, 0.3f)), KILN_EW_ADD, r);
    const kiln_dims apart[][MAX_IN] = {{{3, {2, 5, 16}}, {3, {2, 5, 8}}}, {{3, {1, 1, 16}}, {3, {3, 7, 8}}}};
    finish("matmul + other input", y, 2, "[ElementWise]", 2, apart, false);
}

static void matmul_bias(void) {
    /* x w + bias [8] with w [16, n] an input: fused when the profile fixes n to 8. */
    begin();
    kiln_tensor *x = tokens("x");
    kiln_tensor *w = input("w", (kiln_dims){2, {16, -1}}, (kiln_dims){2, {16, 8}}, (kiln_dims){2, {16, 8}},
                           (kiln_dims){2, {16, 8}});
    kiln_dims bd = {1, {8}};
    const kiln_dims n8[][MAX_IN] = {{{3, {2, 5, 16}}, {2, {16, 8}}}};
    finish("bias, n fixed", ew(matmul(x, w), KILN_EW_ADD, constant(&bd, -1, 1)), 1, "c=1", 1, n8, false);
    /* n from 1 to 8: with n 1 the bias grows the result, the Add stays. */
    begin();
    x = tokens("x");
    w = input("w", (kiln_dims){2, {16, -1}}, (kiln_dims){2, {16, 1}}, (kiln_dims){2, {16, 8}},
              (kiln_dims){2, {16, 8}});
    const kiln_dims n1[][MAX_IN] = {{{3, {2, 5, 16}}, {2, {16, 1}}}, {{3, {1, 3, 16}}, {2, {16, 8}}}};
    finish("bias, n varies", ew(matmul(x, w), KILN_EW_ADD, constant(&bd, -1, 1)), 2, "[ElementWise]", 2, n1, false);
}

int main(void) {
    kt_seed();
    conv_residual();
    conv_broadcast();
    matmul_residual();
    matmul_bias();
    return kt_summary("test_passes_dynamic");
}
