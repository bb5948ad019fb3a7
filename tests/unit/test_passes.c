/* Fusion: conv+bn+residual+relu and matmul+activation give the unfused network's results with
 * fewer layers. The reference is the builder's input network run as is by the evaluator. */
#include "kiln.h"
#include "kt.h"
#include "runtime/eval.h"

static kiln_tensor *constant(kiln_network *net, const kiln_dims *d, float lo, float hi) {
    int64_t n = kiln__dims_volume(d);
    float *v = malloc((size_t)n * sizeof *v);
    kt_fill(v, n, lo, hi);
    kiln_layer *l = NULL;
    KT_OK(kiln_network_add_constant(net, d, (kiln_weights){KILN_FLOAT32, v, n}, &l));
    free(v);
    return l ? kiln_layer_output(l, 0) : NULL;
}

static kiln_tensor *conv_bn(kiln_network *net, kiln_tensor *x, int32_t cin, int32_t cout, bool bias) {
    kiln_convolution_desc cd = {sizeof cd, .nb_output_maps = cout, .kernel = {3, 3}, .padding_begin = {1, 1},
                                .padding_end = {1, 1}};
    int64_t kn = (int64_t)cout * cin * 9;
    float *w = malloc((size_t)kn * sizeof *w), b[64];
    kt_fill(w, kn, -0.3f, 0.3f);
    kt_fill(b, cout, -0.2f, 0.2f);
    kiln_layer *conv = NULL, *bn = NULL;
    KT_OK(kiln_network_add_convolution(net, x, &cd, (kiln_weights){KILN_FLOAT32, w, kn},
                                       bias ? (kiln_weights){KILN_FLOAT32, b, cout} : (kiln_weights){0}, &conv));
    free(w);
    kiln_dims c = {1, {cout}};
    kiln_normalization_desc nd = {sizeof nd, KILN_NORM_BATCH, 1e-5f, 0, 0};
    KT_OK(kiln_network_add_normalization(net, kiln_layer_output(conv, 0), &nd, constant(net, &c, 0.5f, 1.5f),
                                         constant(net, &c, -0.5f, 0.5f), constant(net, &c, -0.5f, 0.5f),
                                         constant(net, &c, 0.5f, 2.0f), &bn));
    return bn ? kiln_layer_output(bn, 0) : NULL;
}

int main(void) {
    kt_seed();
    kiln_builder *b = NULL;
    kiln_network *net = NULL;
    KT_OK(kiln_builder_create(NULL, &b));
    KT_OK(kiln_network_create(b, &net));
    kiln_tensor *x = NULL;
    kiln_dims xd = {4, {2, 8, 6, 6}};
    KT_OK(kiln_network_add_input(net, "x", KILN_FLOAT32, &xd, &x));
    /* A residual block: relu(bn(conv(relu(bn(conv(x))))) + x), then a matmul head with sigmoid. */
    kiln_layer *r1 = NULL, *add = NULL, *r2 = NULL, *mm = NULL, *sig = NULL, *shuf = NULL;
    KT_OK(kiln_network_add_activation(net, conv_bn(net, x, 8, 8, true), KILN_ACT_RELU, 0, 0, &r1));
    kiln_tensor *branch = conv_bn(net, kiln_layer_output(r1, 0), 8, 8, false);
    KT_OK(kiln_network_add_elementwise(net, branch, x, KILN_EW_ADD, &add));
    KT_OK(kiln_network_add_activation(net, kiln_layer_output(add, 0), KILN_ACT_RELU, 0, 0, &r2));
    kiln_shuffle_desc sd = {sizeof sd, .reshape = {2, {2, 8 * 36}}, .has_reshape = 1};
    KT_OK(kiln_network_add_shuffle(net, kiln_layer_output(r2, 0), &sd, NULL, &shuf));
    kiln_dims wd = {2, {8 * 36, 5}};
    KT_OK(kiln_network_add_matmul(net, kiln_layer_output(shuf, 0), KILN_MATRIX_NONE, constant(net, &wd, -0.1f, 0.1f),
                                  KILN_MATRIX_NONE, &mm));
    KT_OK(kiln_network_add_activation(net, kiln_layer_output(mm, 0), KILN_ACT_SIGMOID, 0, 0, &sig));
    KT_OK(kiln_network_mark_output(net, kiln_layer_output(sig, 0)));
    /* A second output reads an intermediate tensor: that conv must keep its own output. */
    KT_OK(kiln_network_mark_output(net, kiln_layer_output(r1, 0)));

    float input[2 * 8 * 36];
    kt_fill(input, 2 * 8 * 36, -1, 1);

    /* Reference: the network as written. */
    kiln__alloc alloc;
    kiln__alloc_init(&alloc, NULL);
    kiln__eval ev;
    KT_OK(kiln__eval_init(&ev, net, &alloc, NULL));
    kiln__eval_set_input(&ev, 0, &xd, input);
    KT_OK(kiln__eval_run(&ev, KILN__EVAL_EXECUTE));

    kiln_builder_config *cfg = NULL;
    kiln_engine *eng = NULL;
    KT_OK(kiln_builder_config_create(b, &cfg));
    KT_OK(kiln_builder_build_engine(b, net, cfg, &eng));
    int32_t unfused_compute = 0, fused_compute = 0;
    for (int32_t i = 0; i < kiln_network_num_layers(net); i++)
        unfused_compute += kiln_layer_get_type(kiln_network_layer(net, i)) != KILN_LAYER_CONSTANT;
    if (eng) {
        for (int32_t i = 0; i < kiln_engine_num_layers(eng); i++) {
            char info[1024];
            kiln_engine_layer_info(eng, i, info, sizeof info);
            fused_compute += strstr(info, "[Constant]") == NULL;
        }
        /* Both batch norms, the residual add and both relus go into the two convs, the sigmoid
         * into the matmul: 10 compute layers become conv, conv, shuffle, matmul. */
        printf("compute layers: %d unfused, %d fused\n", unfused_compute, fused_compute);
        KT_CHECK(fused_compute == 4);
        kiln_context *ctx = NULL;
        KT_OK(kiln_engine_create_context(eng, &ctx));
        KT_OK(kiln_context_set_tensor_address(ctx, "x", input, sizeof input));
        KT_OK(kiln_context_execute(ctx));
        for (int32_t o = 0; o < kiln_network_num_outputs(net); o++) {
            kiln_tensor *t = kiln_network_output(net, o);
            void *got = NULL;
            KT_OK(kiln_context_get_tensor_address(ctx, kiln_tensor_name(t), &got));
            const kiln__value *want = &ev.values[t->index];
            if (got) kt_close(kiln_tensor_name(t), got, want->data, kiln__dims_volume(&want->dims), 1e-4f, 1e-5f);
        }
        kiln_context_destroy(ctx);
    }
    kiln__eval_free(&ev);
    kiln_engine_destroy(eng);
    kiln_builder_config_destroy(cfg);
    kiln_network_destroy(net);
    kiln_builder_destroy(b);
    return kt_summary("test_passes");
}
