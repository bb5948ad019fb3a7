/* The ONNX importer: models written here with a tiny protobuf encoder, imported with
 * kiln_onnx_parse, checked for clear errors, dims, names, constant folding and (end to end
 * on the CPU) results against reference computations. */
#include "kiln.h"
#include "kt.h"
#include "network/ir.h"
#include "onnx_writer.h"

#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------- ONNX messages */

enum { ATTR_FLOAT = 1, ATTR_INT = 2, ATTR_STRING = 3, ATTR_INTS = 7 };

typedef struct attr {
    const char *name;
    int type;
    float f;
    int64_t i;
    const char *s;
    const int64_t *ints;
    int nb_ints;
} attr;

static void node(pb *graph, const char *name, const char *op, const char *domain, const char *const *inputs,
                 int nb_inputs, const char *const *outputs, int nb_outputs, const attr *attrs, int nb_attrs) {
    pb n = {0};
    for (int i = 0; i < nb_inputs; i++) pb_str(&n, 1, inputs[i]);
    for (int i = 0; i < nb_outputs; i++) pb_str(&n, 2, outputs[i]);
    if (name) pb_str(&n, 3, name);
    pb_str(&n, 4, op);
    for (int i = 0; i < nb_attrs; i++) {
        pb a = {0};
        pb_str(&a, 1, attrs[i].name);
        if (attrs[i].type == ATTR_FLOAT) pb_float(&a, 2, attrs[i].f);
        if (attrs[i].type == ATTR_INT) pb_int(&a, 3, attrs[i].i);
        if (attrs[i].type == ATTR_STRING) pb_str(&a, 4, attrs[i].s);
        for (int k = 0; attrs[i].type == ATTR_INTS && k < attrs[i].nb_ints; k++) pb_int(&a, 8, attrs[i].ints[k]);
        pb_int(&a, 20, attrs[i].type);
        pb_msg(&n, 5, &a);
    }
    if (domain) pb_str(&n, 7, domain);
    pb_msg(graph, 1, &n);
}

static const int FLOAT = 1, INT64 = 7;

/* ---------------------------------------------------------------- errors */

static void test_unknown_op(kiln_builder *b) {
    int64_t d[] = {2};
    pb g = {0};
    const char *in[] = {"x"}, *out[] = {"y"};
    node(&g, "n1", "Foo", NULL, in, 1, out, 1, NULL, 0);
    pb_value_info(&g, 11, "x", FLOAT, d, 1, NULL);
    pb_value_info(&g, 12, "y", FLOAT, d, 1, NULL);
    pb m = pb_model(&g, 17, NULL);
    kiln_network *net = NULL;
    KT_STATUS(pb_parse(b, &m, &net), KILN_UNSUPPORTED);
    KT_CHECK(net == NULL);
    KT_CHECK(msg_contains(kiln_last_error(), "node 'n1' (Foo): op Foo (domain 'ai.onnx', opset 17) is not supported"));

    /* An op of another domain, and an unnamed node named op_type + index. */
    pb g2 = {0};
    node(&g2, NULL, "Relu", "com.example", in, 1, out, 1, NULL, 0);
    pb_value_info(&g2, 11, "x", FLOAT, d, 1, NULL);
    pb_value_info(&g2, 12, "y", FLOAT, d, 1, NULL);
    m = pb_model(&g2, 17, "com.example");
    KT_STATUS(pb_parse(b, &m, &net), KILN_UNSUPPORTED);
    KT_CHECK(msg_contains(kiln_last_error(), "node 'Relu_0' (Relu): op Relu (domain 'com.example', opset 1)"));

    /* An opset beyond the supported range. */
    pb g3 = {0};
    node(&g3, "r", "Relu", NULL, in, 1, out, 1, NULL, 0);
    pb_value_info(&g3, 11, "x", FLOAT, d, 1, NULL);
    pb_value_info(&g3, 12, "y", FLOAT, d, 1, NULL);
    m = pb_model(&g3, 99, NULL);
    KT_STATUS(pb_parse(b, &m, &net), KILN_UNSUPPORTED);
    KT_CHECK(msg_contains(kiln_last_error(), "opset 99"));
}

static void test_bad_attribute(kiln_builder *b) {
    int64_t d[] = {2};
    const char *in[] = {"x"}, *out[] = {"y"};
    pb g = {0};
    attr a = {.name = "alpha", .type = ATTR_INT, .i = 3};
    node(&g, "lr", "LeakyRelu", NULL, in, 1, out, 1, &a, 1);
    pb_value_info(&g, 11, "x", FLOAT, d, 1, NULL);
    pb_value_info(&g, 12, "y", FLOAT, d, 1, NULL);
    pb m = pb_model(&g, 17, NULL);
    kiln_network *net = NULL;
    KT_STATUS(pb_parse(b, &m, &net), KILN_INVALID_ARGUMENT);
    KT_CHECK(msg_contains(kiln_last_error(), "node 'lr' (LeakyRelu): attribute 'alpha': expected FLOAT, got INT"));

    /* A string attribute outside its set of values. */
    pb g2 = {0};
    attr ap = {.name = "approximate", .type = ATTR_STRING, .s = "cubic"};
    node(&g2, "ge", "Gelu", NULL, in, 1, out, 1, &ap, 1);
    pb_value_info(&g2, 11, "x", FLOAT, d, 1, NULL);
    pb_value_info(&g2, 12, "y", FLOAT, d, 1, NULL);
    m = pb_model(&g2, 20, NULL);
    KT_STATUS(pb_parse(b, &m, &net), KILN_INVALID_ARGUMENT);
    KT_CHECK(msg_contains(kiln_last_error(), "node 'ge' (Gelu): approximate must be 'none' or 'tanh'"));
}

static void test_missing_input(kiln_builder *b) {
    int64_t d[] = {2};
    const char *in[] = {"x"}, *out[] = {"y"};
    pb g = {0};
    node(&g, "add", "Add", NULL, in, 1, out, 1, NULL, 0);
    pb_value_info(&g, 11, "x", FLOAT, d, 1, NULL);
    pb_value_info(&g, 12, "y", FLOAT, d, 1, NULL);
    pb m = pb_model(&g, 17, NULL);
    kiln_network *net = NULL;
    KT_STATUS(pb_parse(b, &m, &net), KILN_INVALID_ARGUMENT);
    KT_CHECK(msg_contains(kiln_last_error(), "node 'add' (Add): input 1 (B) is required but missing"));

    /* Shapes that cannot work name the node and the layer. */
    int64_t d3[] = {3};
    const char *in2[] = {"x", "z"};
    pb g2 = {0};
    node(&g2, "add", "Add", NULL, in2, 2, out, 1, NULL, 0);
    pb_value_info(&g2, 11, "x", FLOAT, d, 1, NULL);
    pb_value_info(&g2, 11, "z", FLOAT, d3, 1, NULL);
    pb_value_info(&g2, 12, "y", FLOAT, d, 1, NULL);
    m = pb_model(&g2, 17, NULL);
    KT_STATUS(pb_parse(b, &m, &net), KILN_INVALID_ARGUMENT);
    KT_CHECK(msg_contains(kiln_last_error(), "node 'add' (Add)"));
    KT_CHECK(msg_contains(kiln_last_error(), "do not broadcast"));
}

/* ---------------------------------------------------------------- structure */

static void test_dynamic_dims(kiln_builder *b) {
    int64_t d[] = {-1, 3, -1};
    const char *params[] = {"batch", NULL, NULL};
    const char *in[] = {"x"}, *out[] = {"y"};
    pb g = {0};
    node(&g, "r", "Relu", NULL, in, 1, out, 1, NULL, 0);
    pb_value_info(&g, 11, "x", FLOAT, d, 3, params);
    pb_value_info(&g, 12, "y", FLOAT, d, 3, params);
    pb m = pb_model(&g, 17, NULL);
    kiln_network *net = NULL;
    KT_OK(pb_parse(b, &m, &net));
    if (!net) return;
    KT_CHECK(kiln_network_num_inputs(net) == 1);
    kiln_tensor *x = kiln_network_input(net, 0);
    kiln_dims dims;
    KT_OK(kiln_tensor_shape(x, &dims));
    KT_CHECK(dims.nb_dims == 3 && dims.d[0] == -1 && dims.d[1] == 3 && dims.d[2] == -1);
    KT_CHECK(x->dim_names[0] && strcmp(x->dim_names[0], "batch") == 0);
    KT_CHECK(!x->dim_names[1] && !x->dim_names[2]);
    kiln_tensor *y = kiln_network_output(net, 0);
    KT_CHECK(y && strcmp(kiln_tensor_name(y), "y") == 0);
    KT_OK(kiln_tensor_shape(y, &dims));
    KT_CHECK(dims.nb_dims == 3 && dims.d[0] == -1 && dims.d[1] == 3);
    /* The layer carries the node's name. */
    KT_CHECK(kiln_network_num_layers(net) == 1 && strcmp(kiln_layer_name(kiln_network_layer(net, 0)), "r") == 0);
    kiln_network_destroy(net);
}

/* Runs a CPU engine on one float input; returns output `name` (malloc'd) and its dims. */
static float *run1(kiln_builder *b, kiln_network *net, const char *in_name, const float *x, size_t x_bytes,
                   const char *out_name, kiln_dims *dims) {
    kiln_builder_config *cfg = NULL;
    kiln_engine *e = NULL;
    kiln_context *c = NULL;
    float *result = NULL;
    KT_OK(kiln_builder_config_create(b, &cfg));
    KT_OK(kiln_builder_build_engine(b, net, cfg, &e));
    if (e) KT_OK(kiln_engine_create_context(e, &c));
    if (c) {
        void *addr = NULL;
        if (in_name) KT_OK(kiln_context_set_tensor_address(c, in_name, (void *)x, x_bytes));
        KT_OK(kiln_context_execute(c));
        KT_OK(kiln_context_get_tensor_shape(c, out_name, dims));
        KT_OK(kiln_context_get_tensor_address(c, out_name, &addr));
        int64_t n = 1;
        for (int i = 0; i < dims->nb_dims; i++) n *= dims->d[i];
        if (addr && n > 0) {
            result = malloc((size_t)n * sizeof *result);
            memcpy(result, addr, (size_t)n * sizeof *result);
        }
    }
    kiln_context_destroy(c);
    kiln_engine_destroy(e);
    kiln_builder_config_destroy(cfg);
    return result;
}

/* IR < 4 style: W is both a graph input and an initializer, so it is a constant, not an input. */
static void test_initializer_as_input(kiln_builder *b) {
    int64_t dx[] = {2, 3}, dw[] = {3, 2}, dy[] = {2, 2};
    float w[6];
    kt_fill(w, 6, -1, 1);
    const char *in[] = {"x", "W"}, *out[] = {"y"};
    pb g = {0};
    node(&g, "mm", "MatMul", NULL, in, 2, out, 1, NULL, 0);
    pb_tensor(&g, 5, "W", FLOAT, dw, 2, w, sizeof w);
    pb_value_info(&g, 11, "x", FLOAT, dx, 2, NULL);
    pb_value_info(&g, 11, "W", FLOAT, dw, 2, NULL);
    pb_value_info(&g, 12, "y", FLOAT, dy, 2, NULL);
    pb m = pb_model(&g, 9, NULL);
    kiln_network *net = NULL;
    KT_OK(pb_parse(b, &m, &net));
    if (!net) return;
    KT_CHECK(kiln_network_num_inputs(net) == 1 && strcmp(kiln_tensor_name(kiln_network_input(net, 0)), "x") == 0);
    kiln_tensor *wt = kiln_network_find_tensor(net, "W");
    KT_CHECK(wt && wt->producer && kiln_layer_get_type(wt->producer) == KILN_LAYER_CONSTANT);
    float x[6], ref[4];
    kt_fill(x, 6, -1, 1);
    for (int i = 0; i < 2; i++)
        for (int j = 0; j < 2; j++) {
            double s = 0;
            for (int k = 0; k < 3; k++) s += (double)x[i * 3 + k] * w[k * 2 + j];
            ref[i * 2 + j] = (float)s;
        }
    kiln_dims dims;
    float *y = run1(b, net, "x", x, sizeof x, "y", &dims);
    KT_CHECK(y && dims.nb_dims == 2 && dims.d[0] == 2 && dims.d[1] == 2);
    if (y) kt_close("matmul", y, ref, 4, 1e-5f, 1e-6f);
    free(y);
    kiln_network_destroy(net);
}

/* Constant subgraphs fold at import; a graph output that is a constant still runs. */
static void test_folding(kiln_builder *b) {
    int64_t d[] = {3};
    float a[3] = {1, 2, 3}, c[3] = {10, 20, 30};
    const char *in[] = {"a", "c"}, *out[] = {"s"};
    const char *in2[] = {"s", "x"}, *out2[] = {"y"};
    pb g = {0};
    pb_tensor(&g, 5, "a", FLOAT, d, 1, a, sizeof a);
    pb_tensor(&g, 5, "c", FLOAT, d, 1, c, sizeof c);
    node(&g, "sum", "Add", NULL, in, 2, out, 1, NULL, 0);
    node(&g, "mul", "Mul", NULL, in2, 2, out2, 1, NULL, 0);
    const char *idi[] = {"a"}, *ido[] = {"a_copy"};
    node(&g, "copy", "Identity", NULL, idi, 1, ido, 1, NULL, 0);
    pb_value_info(&g, 11, "x", FLOAT, d, 1, NULL);
    pb_value_info(&g, 12, "y", FLOAT, d, 1, NULL);
    pb_value_info(&g, 12, "s", FLOAT, d, 1, NULL);
    pb_value_info(&g, 12, "a", FLOAT, d, 1, NULL);
    pb m = pb_model(&g, 17, NULL);
    kiln_network *net = NULL;
    KT_OK(pb_parse(b, &m, &net));
    if (!net) return;
    kiln_tensor *s = kiln_network_find_tensor(net, "s");
    /* The folded sum is a constant; as a graph output it is copied out by an identity layer. */
    KT_CHECK(s && s->producer && kiln_layer_get_type(s->producer) == KILN_LAYER_IDENTITY);
    const kiln_tensor *folded = s ? kiln_layer_input(s->producer, 0) : NULL;
    KT_CHECK(folded && kiln_layer_get_type(folded->producer) == KILN_LAYER_CONSTANT);
    KT_CHECK(folded && strcmp(kiln_layer_name(folded->producer), "sum") == 0);
    /* An Identity of a constant is a constant too (shape chains rely on it). */
    kiln_tensor *copy = kiln_network_find_tensor(net, "a_copy");
    KT_CHECK(copy && copy->producer && kiln_layer_get_type(copy->producer) == KILN_LAYER_CONSTANT);
    float x[3] = {2, -1, 0.5f}, ref_y[3], ref_s[3];
    for (int i = 0; i < 3; i++) {
        ref_s[i] = a[i] + c[i];
        ref_y[i] = ref_s[i] * x[i];
    }
    kiln_dims dims;
    float *y = run1(b, net, "x", x, sizeof x, "y", &dims);
    if (y) kt_close("folded mul", y, ref_y, 3, 0, 0);
    KT_CHECK(y != NULL);
    free(y);
    float *sv = run1(b, net, "x", x, sizeof x, "s", &dims);
    if (sv) kt_close("folded sum", sv, ref_s, 3, 0, 0);
    KT_CHECK(sv != NULL);
    free(sv);
    float *av = run1(b, net, "x", x, sizeof x, "a", &dims);
    if (av) kt_close("initializer output", av, a, 3, 0, 0);
    KT_CHECK(av != NULL);
    free(av);
    kiln_network_destroy(net);
}

/* ---------------------------------------------------------------- end to end */

/* y = Softmax(Clip(Gemm(x, W^T, B), 0, 6) * PRelu-slope terms), a small MLP-like chain mixing
 * the nn and basic families, against a straightforward computation. */
static void test_end_to_end(kiln_builder *b) {
    enum { N = 3, C = 5, K = 4 };
    int64_t dx[] = {N, C}, dw[] = {K, C}, db[] = {K}, dy[] = {N, K}, ds[] = {K}, dmm[] = {2};
    float w[K * C], bias[K], slope[K];
    kt_fill(w, K * C, -1, 1);
    kt_fill(bias, K, -0.5f, 0.5f);
    kt_fill(slope, K, 0.1f, 0.3f);
    float lohi[2] = {-2.0f, 6.0f};
    pb g = {0};
    pb_tensor(&g, 5, "W", FLOAT, dw, 2, w, sizeof w);
    pb_tensor(&g, 5, "B", FLOAT, db, 1, bias, sizeof bias);
    pb_tensor(&g, 5, "slope", FLOAT, ds, 1, slope, sizeof slope);
    pb_tensor(&g, 5, "bounds", FLOAT, dmm, 1, lohi, sizeof lohi);
    attr tb = {.name = "transB", .type = ATTR_INT, .i = 1};
    attr al = {.name = "alpha", .type = ATTR_FLOAT, .f = 0.5f};
    const char *gi[] = {"x", "W", "B"}, *go[] = {"h"};
    node(&g, "fc", "Gemm", NULL, gi, 3, go, 1, (attr[]){tb, al}, 2);
    /* Clip bounds computed from constants (folded), as exporters do. */
    int64_t zero = 0, one = 1;
    int64_t d1[] = {1};
    pb_tensor(&g, 5, "i0", INT64, d1, 1, &zero, sizeof zero);
    pb_tensor(&g, 5, "i1", INT64, d1, 1, &one, sizeof one);
    const char *s0[] = {"bounds", "i0"}, *s0o[] = {"lo"};
    const char *s1[] = {"bounds", "i1"}, *s1o[] = {"hi"};
    attr ax = {.name = "axis", .type = ATTR_INT, .i = 0};
    node(&g, "g0", "Gather", NULL, s0, 2, s0o, 1, &ax, 1);
    node(&g, "g1", "Gather", NULL, s1, 2, s1o, 1, &ax, 1);
    const char *sq0[] = {"lo"}, *sq0o[] = {"lo_s"}, *sq1[] = {"hi"}, *sq1o[] = {"hi_s"};
    node(&g, "sq0", "Squeeze", NULL, sq0, 1, sq0o, 1, NULL, 0);
    node(&g, "sq1", "Squeeze", NULL, sq1, 1, sq1o, 1, NULL, 0);
    const char *ci[] = {"h", "lo_s", "hi_s"}, *co[] = {"c"};
    node(&g, "clip", "Clip", NULL, ci, 3, co, 1, NULL, 0);
    const char *pi[] = {"c", "slope"}, *po[] = {"p"};
    node(&g, "prelu", "PRelu", NULL, pi, 2, po, 1, NULL, 0);
    const char *smi[] = {"p"}, *smo[] = {"y"};
    node(&g, NULL, "Softmax", NULL, smi, 1, smo, 1, NULL, 0);
    pb_value_info(&g, 11, "x", FLOAT, dx, 2, NULL);
    pb_value_info(&g, 12, "y", FLOAT, dy, 2, NULL);
    pb m = pb_model(&g, 17, NULL);
    kiln_network *net = NULL;
    KT_OK(pb_parse(b, &m, &net));
    if (!net) return;
    /* The clip bounds folded away, so Clip is one activation layer named after the node. */
    kiln_tensor *c = kiln_network_find_tensor(net, "c");
    KT_CHECK(c && c->producer && kiln_layer_get_type(c->producer) == KILN_LAYER_ACTIVATION);
    KT_CHECK(c && strcmp(kiln_layer_name(c->producer), "clip") == 0);
    kiln_tensor *y_t = kiln_network_find_tensor(net, "y");
    KT_CHECK(y_t && strcmp(kiln_layer_name(y_t->producer), "Softmax_7") == 0);

    float x[N * C], ref[N * K];
    kt_fill(x, N * C, -3, 3);
    for (int n = 0; n < N; n++) {
        double row[K], mx = -INFINITY, sum = 0;
        for (int k = 0; k < K; k++) {
            double h = bias[k];
            for (int i = 0; i < C; i++) h += 0.5 * x[n * C + i] * w[k * C + i];
            h = h < lohi[0] ? lohi[0] : h > lohi[1] ? lohi[1] : h;
            row[k] = h >= 0 ? h : h * slope[k];
            mx = row[k] > mx ? row[k] : mx;
        }
        for (int k = 0; k < K; k++) sum += exp(row[k] - mx);
        for (int k = 0; k < K; k++) ref[n * K + k] = (float)(exp(row[k] - mx) / sum);
    }
    kiln_dims dims;
    float *y = run1(b, net, "x", x, sizeof x, "y", &dims);
    KT_CHECK(y && dims.nb_dims == 2 && dims.d[0] == N && dims.d[1] == K);
    if (y) kt_close("mlp", y, ref, N * K, 1e-4f, 1e-6f);
    free(y);
    kiln_network_destroy(net);
}

/* LRN (a layer type added for the importer) against the ONNX formula, with an even size so the
 * window is asymmetric. */
static void test_lrn(kiln_builder *b) {
    enum { N = 2, C = 6, H = 3, W = 2, SIZE = 4 };
    const float alpha = 0.02f, beta = 0.6f, bias = 1.5f;
    int64_t d[] = {N, C, H, W};
    attr at[] = {{.name = "size", .type = ATTR_INT, .i = SIZE},
                 {.name = "alpha", .type = ATTR_FLOAT, .f = alpha},
                 {.name = "beta", .type = ATTR_FLOAT, .f = beta},
                 {.name = "bias", .type = ATTR_FLOAT, .f = bias}};
    const char *in[] = {"x"}, *out[] = {"y"};
    pb g = {0};
    node(&g, "lrn", "LRN", NULL, in, 1, out, 1, at, 4);
    pb_value_info(&g, 11, "x", FLOAT, d, 4, NULL);
    pb_value_info(&g, 12, "y", FLOAT, d, 4, NULL);
    pb m = pb_model(&g, 13, NULL);
    kiln_network *net = NULL;
    KT_OK(pb_parse(b, &m, &net));
    if (!net) return;
    float x[N * C * H * W], ref[N * C * H * W];
    kt_fill(x, N * C * H * W, -2, 2);
    for (int n = 0; n < N; n++)
        for (int c = 0; c < C; c++)
            for (int s = 0; s < H * W; s++) {
                double sum = 0;
                for (int i = c - (SIZE - 1) / 2; i <= c + SIZE / 2; i++) /* ceil((SIZE-1)/2) = SIZE/2 */
                    if (i >= 0 && i < C) sum += (double)x[(n * C + i) * H * W + s] * x[(n * C + i) * H * W + s];
                int k = (n * C + c) * H * W + s;
                ref[k] = (float)(x[k] / pow(bias + alpha / SIZE * sum, beta));
            }
    kiln_dims dims;
    float *y = run1(b, net, "x", x, sizeof x, "y", &dims);
    KT_CHECK(y && dims.nb_dims == 4 && dims.d[1] == C);
    if (y) kt_close("lrn", y, ref, N * C * H * W, 1e-5f, 1e-6f);
    free(y);
    kiln_network_destroy(net);

    /* A size below 1 is refused naming the node. */
    at[0].i = 0;
    pb g2 = {0};
    node(&g2, "lrn", "LRN", NULL, in, 1, out, 1, at, 4);
    pb_value_info(&g2, 11, "x", FLOAT, d, 4, NULL);
    pb_value_info(&g2, 12, "y", FLOAT, d, 4, NULL);
    m = pb_model(&g2, 13, NULL);
    KT_STATUS(pb_parse(b, &m, &net), KILN_INVALID_ARGUMENT);
    KT_CHECK(msg_contains(kiln_last_error(), "node 'lrn' (LRN): attribute 'size'"));
}

int main(void) {
    kt_seed();
    kiln_builder *b = NULL;
    KT_OK(kiln_builder_create(NULL, &b));
    if (!b) return kt_summary("test_onnx_import");
    test_unknown_op(b);
    test_bad_attribute(b);
    test_missing_input(b);
    test_dynamic_dims(b);
    test_initializer_as_input(b);
    test_folding(b);
    test_end_to_end(b);
    test_lrn(b);
    kiln_builder_destroy(b);
    return kt_summary("test_onnx_import");
}
