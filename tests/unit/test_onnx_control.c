/* ONNX sequences, optionals and control flow in the importer: models written here with a
 * tiny protobuf encoder, imported, checked for clear refusals, for the layers they become
 * (inlined branch, Select, unrolled loop) and, end to end on the CPU, for results against
 * reference computations on fresh random inputs. */
#include "kiln.h"
#include "kt.h"
#include "onnx/importer.h"
#include "onnx_writer.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------- ONNX messages */

enum { FLOAT = 1, INT64 = 7, BOOL = 9 };
enum { G_NODE = 1, G_NAME = 2, G_INIT = 5, G_INPUT = 11, G_OUTPUT = 12 };

/* TypeProto.Tensor; rank < 0 writes no shape. */
static void tensor_type(pb *type, int dtype, const int64_t *dims, int rank) {
    pb tt = {0};
    pb_int(&tt, 1, dtype);
    if (rank >= 0) {
        pb shape = {0};
        for (int i = 0; i < rank; i++) {
            pb dim = {0};
            pb_int(&dim, 1, dims[i]);
            pb_msg(&shape, 1, &dim);
        }
        pb_msg(&tt, 2, &shape);
    }
    pb_msg(type, 1, &tt);
}

/* A graph input/output: a tensor, or (seq) a sequence of such tensors. */
static void io(pb *g, uint32_t field, const char *name, int dtype, const int64_t *dims, int rank, bool seq) {
    pb type = {0};
    if (seq) {
        pb elem = {0}, st = {0};
        tensor_type(&elem, dtype, dims, rank);
        pb_msg(&st, 1, &elem);
        pb_msg(&type, 4, &st);
    } else {
        tensor_type(&type, dtype, dims, rank);
    }
    pb vi = {0};
    pb_str(&vi, 1, name);
    pb_msg(&vi, 2, &type);
    pb_msg(g, field, &vi);
}

/* A node; `graphs` are attributes holding subgraphs (graph_names[i] = graphs[i]), `ints` INT
 * ones ("name=value" pairs, NULL-terminated). */
static void node(pb *g, const char *name, const char *op, const char *const *in, int nin, const char *const *out,
                 int nout, const char *const *graph_names, pb *graphs, int ngraphs, const char *const *ints) {
    pb n = {0};
    for (int i = 0; i < nin; i++) pb_str(&n, 1, in[i]);
    for (int i = 0; i < nout; i++) pb_str(&n, 2, out[i]);
    pb_str(&n, 3, name);
    pb_str(&n, 4, op);
    for (int i = 0; i < ngraphs; i++) {
        pb a = {0};
        pb_str(&a, 1, graph_names[i]);
        pb_str(&graphs[i], G_NAME, graph_names[i]);
        pb_msg(&a, 6, &graphs[i]);
        pb_int(&a, 20, 5);
        pb_msg(&n, 5, &a);
    }
    for (int i = 0; ints && ints[i]; i++) {
        char key[64];
        const char *eq = strchr(ints[i], '=');
        snprintf(key, sizeof key, "%.*s", (int)(eq - ints[i]), ints[i]);
        pb a = {0};
        pb_str(&a, 1, key);
        pb_int(&a, 3, strtoll(eq + 1, NULL, 10));
        pb_int(&a, 20, 2);
        pb_msg(&n, 5, &a);
    }
    pb_msg(g, G_NODE, &n);
}

static int count_layers(const kiln_network *net, kiln_layer_type type) {
    int n = 0;
    for (int32_t i = 0; i < kiln_network_num_layers(net); i++)
        n += kiln_layer_get_type(kiln_network_layer(net, i)) == type;
    return n;
}

/* ---------------------------------------------------------------- running */

typedef struct run {
    kiln_builder_config *cfg;
    kiln_engine *e;
    kiln_context *c;
} run;

/* Builds a CPU engine, binds inputs names[i] to data[i] and executes. */
static bool run_net(kiln_builder *b, kiln_network *net, run *r, const char *const *names, void *const *data,
                    const size_t *bytes, int n) {
    memset(r, 0, sizeof *r);
    KT_OK(kiln_builder_config_create(b, &r->cfg));
    KT_OK(kiln_builder_build_engine(b, net, r->cfg, &r->e));
    if (!r->e) return false;
    KT_OK(kiln_engine_create_context(r->e, &r->c));
    if (!r->c) return false;
    for (int i = 0; i < n; i++) KT_OK(kiln_context_set_tensor_address(r->c, names[i], data[i], bytes[i]));
    kiln_status st = kiln_context_execute(r->c);
    KT_OK(st);
    return st == KILN_OK;
}

static const void *output(run *r, const char *name, kiln_dims *dims) {
    void *addr = NULL;
    KT_OK(kiln_context_get_tensor_shape(r->c, name, dims));
    KT_OK(kiln_context_get_tensor_address(r->c, name, &addr));
    return addr;
}

static void run_free(run *r) {
    kiln_context_destroy(r->c);
    kiln_engine_destroy(r->e);
    kiln_builder_config_destroy(r->cfg);
}

static bool dims_are(const kiln_dims *d, int rank, const int64_t *want) {
    if (d->nb_dims != rank) return false;
    for (int i = 0; i < rank; i++)
        if (d->d[i] != want[i]) return false;
    return true;
}

/* ---------------------------------------------------------------- If */

/* y = If(c) then x + x else -x, with c an input or a constant. */
static pb if_model(bool const_cond, uint8_t cond_value) {
    static const int64_t d4[] = {4};
    pb g = {0}, br[2] = {{0}, {0}};
    const char *xx[] = {"x", "x"}, *x[] = {"x"}, *t[] = {"t"}, *e[] = {"e"};
    node(&br[0], "dbl", "Add", xx, 2, t, 1, NULL, NULL, 0, NULL);
    io(&br[0], G_OUTPUT, "t", FLOAT, d4, 1, false);
    node(&br[1], "neg", "Neg", x, 1, e, 1, NULL, NULL, 0, NULL);
    io(&br[1], G_OUTPUT, "e", FLOAT, d4, 1, false);
    if (const_cond) pb_tensor(&g, G_INIT, "c", BOOL, NULL, 0, &cond_value, 1);
    else io(&g, G_INPUT, "c", BOOL, NULL, 0, false);
    io(&g, G_INPUT, "x", FLOAT, d4, 1, false);
    const char *c[] = {"c"}, *y[] = {"y"}, *names[] = {"then_branch", "else_branch"};
    node(&g, "if", "If", c, 1, y, 1, names, br, 2, NULL);
    io(&g, G_OUTPUT, "y", FLOAT, d4, 1, false);
    return pb_model(&g, 13, NULL);
}

static void test_if(kiln_builder *b) {
    float x[4];
    kt_fill(x, 4, -2, 2);
    for (int cv = 0; cv < 2; cv++) {
        /* Constant condition: only the taken branch is imported. */
        pb m = if_model(true, (uint8_t)cv);
        kiln_network *net = NULL;
        KT_OK(pb_parse(b, &m, &net));
        if (!net) continue;
        KT_CHECK(count_layers(net, KILN_LAYER_SELECT) == 0);
        KT_CHECK(count_layers(net, cv ? KILN_LAYER_ELEMENTWISE : KILN_LAYER_UNARY) == 1);
        KT_CHECK(count_layers(net, cv ? KILN_LAYER_UNARY : KILN_LAYER_ELEMENTWISE) == 0);
        run r;
        const char *names[] = {"x"};
        void *data[] = {x};
        size_t bytes[] = {sizeof x};
        if (run_net(b, net, &r, names, data, bytes, 1)) {
            kiln_dims d;
            const float *y = output(&r, "y", &d);
            float ref[4];
            for (int i = 0; i < 4; i++) ref[i] = cv ? x[i] + x[i] : -x[i];
            if (y) kt_close("if (constant)", y, ref, 4, 0, 0);
        }
        run_free(&r);
        kiln_network_destroy(net);
    }
    /* Condition known at run time: both branches and a Select. */
    pb m = if_model(false, 0);
    kiln_network *net = NULL;
    KT_OK(pb_parse(b, &m, &net));
    if (!net) return;
    KT_CHECK(count_layers(net, KILN_LAYER_SELECT) == 1);
    for (int cv = 0; cv < 2; cv++) {
        uint8_t c = (uint8_t)cv;
        run r;
        const char *names[] = {"c", "x"};
        void *data[] = {&c, x};
        size_t bytes[] = {1, sizeof x};
        if (run_net(b, net, &r, names, data, bytes, 2)) {
            kiln_dims d;
            const float *y = output(&r, "y", &d);
            float ref[4];
            for (int i = 0; i < 4; i++) ref[i] = cv ? x[i] + x[i] : -x[i];
            KT_CHECK(d.nb_dims == 1 && d.d[0] == 4);
            if (y) kt_close("if (run time)", y, ref, 4, 0, 0);
        }
        run_free(&r);
    }
    kiln_network_destroy(net);
}

/* ---------------------------------------------------------------- Loop */

/* y_final, ys = Loop(M, true, y0) { y = y_in + x * i; scan y }, with M constant or an input. */
static pb loop_model(bool const_trip, int64_t trip) {
    static const int64_t d2[] = {2};
    pb g = {0}, body = {0};
    io(&body, G_INPUT, "i", INT64, NULL, 0, false);
    io(&body, G_INPUT, "cin", BOOL, NULL, 0, false);
    io(&body, G_INPUT, "yin", FLOAT, d2, 1, false);
    const char *ci[] = {"cin"}, *co[] = {"cout"}, *ii[] = {"i"}, *fi[] = {"fi"}, *xf[] = {"x", "fi"}, *xi[] = {"xi"},
               *yx[] = {"yin", "xi"}, *yo[] = {"yout"}, *sc[] = {"scan"};
    node(&body, "keep", "Identity", ci, 1, co, 1, NULL, NULL, 0, NULL);
    node(&body, "tofloat", "Cast", ii, 1, fi, 1, NULL, NULL, 0, (const char *const[]){"to=1", NULL});
    node(&body, "scale", "Mul", xf, 2, xi, 1, NULL, NULL, 0, NULL);
    node(&body, "acc", "Add", yx, 2, yo, 1, NULL, NULL, 0, NULL);
    const char *yo1[] = {"yout"};
    node(&body, "copy", "Identity", yo1, 1, sc, 1, NULL, NULL, 0, NULL);
    io(&body, G_OUTPUT, "cout", BOOL, NULL, 0, false);
    io(&body, G_OUTPUT, "yout", FLOAT, d2, 1, false);
    io(&body, G_OUTPUT, "scan", FLOAT, d2, 1, false);
    uint8_t t = 1;
    pb_tensor(&g, G_INIT, "c", BOOL, NULL, 0, &t, 1);
    if (const_trip) pb_tensor(&g, G_INIT, "M", INT64, NULL, 0, &trip, 8);
    else io(&g, G_INPUT, "M", INT64, NULL, 0, false);
    io(&g, G_INPUT, "x", FLOAT, d2, 1, false);
    io(&g, G_INPUT, "y0", FLOAT, d2, 1, false);
    const char *in[] = {"M", "c", "y0"}, *out[] = {"y", "ys"}, *names[] = {"body"};
    node(&g, "loop", "Loop", in, 3, out, 2, names, &body, 1, NULL);
    io(&g, G_OUTPUT, "y", FLOAT, d2, 1, false);
    io(&g, G_OUTPUT, "ys", FLOAT, NULL, -1, false);
    return pb_model(&g, 13, NULL);
}

static void test_loop(kiln_builder *b) {
    const int64_t trip = 4;
    pb m = loop_model(true, trip);
    kiln_network *net = NULL;
    KT_OK(pb_parse(b, &m, &net));
    if (net) {
        float x[2], y0[2];
        kt_fill(x, 2, -1, 1);
        kt_fill(y0, 2, -1, 1);
        run r;
        const char *names[] = {"x", "y0"};
        void *data[] = {x, y0};
        size_t bytes[] = {sizeof x, sizeof y0};
        if (run_net(b, net, &r, names, data, bytes, 2)) {
            float acc[2] = {y0[0], y0[1]}, ys_ref[8];
            for (int i = 0; i < trip; i++)
                for (int k = 0; k < 2; k++) ys_ref[i * 2 + k] = acc[k] = acc[k] + x[k] * (float)i;
            kiln_dims d;
            const float *y = output(&r, "y", &d);
            if (y) kt_close("loop final", y, acc, 2, 1e-6f, 1e-6f);
            const float *ys = output(&r, "ys", &d);
            const int64_t want[] = {trip, 2};
            KT_CHECK(dims_are(&d, 2, want));
            if (ys && dims_are(&d, 2, want)) kt_close("loop scan", ys, ys_ref, 8, 1e-6f, 1e-6f);
        }
        run_free(&r);
        kiln_network_destroy(net);
    }
    /* A trip count known only at run time cannot be unrolled. */
    m = loop_model(false, 0);
    net = NULL;
    KT_STATUS(pb_parse(b, &m, &net), KILN_UNSUPPORTED);
    KT_CHECK(net == NULL);
    KT_CHECK(
        msg_contains(kiln_last_error(), "node 'loop' (Loop): input 0 (trip count) 'M' is not known at import time"));
}

/* ---------------------------------------------------------------- sequences */

/* s = [a, b]; s2 = insert(s, a, 1) = [a, a, b]; cat = ConcatFromSequence(s2, axis 1, new);
 * last = s2[-1]; n = length(erase(s2, 0)); s2 is also a graph output. */
static void test_sequence_ops(kiln_builder *b) {
    static const int64_t d23[] = {2, 3};
    pb g = {0};
    int64_t one = 1, minus1 = -1, zero = 0;
    pb_tensor(&g, G_INIT, "one", INT64, NULL, 0, &one, 8);
    pb_tensor(&g, G_INIT, "minus1", INT64, NULL, 0, &minus1, 8);
    pb_tensor(&g, G_INIT, "zero", INT64, NULL, 0, &zero, 8);
    io(&g, G_INPUT, "a", FLOAT, d23, 2, false);
    io(&g, G_INPUT, "b", FLOAT, d23, 2, false);
    const char *ab[] = {"a", "b"}, *s[] = {"s"}, *ins[] = {"s", "a", "one"}, *s2[] = {"s2"}, *s2o[] = {"s2"},
               *cat[] = {"cat"}, *at[] = {"s2", "minus1"}, *last[] = {"last"}, *er[] = {"s2", "zero"}, *s3[] = {"s3"},
               *s3i[] = {"s3"}, *n[] = {"n"};
    node(&g, "construct", "SequenceConstruct", ab, 2, s, 1, NULL, NULL, 0, NULL);
    node(&g, "insert", "SequenceInsert", ins, 3, s2, 1, NULL, NULL, 0, NULL);
    node(&g, "concat", "ConcatFromSequence", s2o, 1, cat, 1, NULL, NULL, 0,
         (const char *const[]){"axis=1", "new_axis=1", NULL});
    node(&g, "at", "SequenceAt", at, 2, last, 1, NULL, NULL, 0, NULL);
    node(&g, "erase", "SequenceErase", er, 2, s3, 1, NULL, NULL, 0, NULL);
    node(&g, "len", "SequenceLength", s3i, 1, n, 1, NULL, NULL, 0, NULL);
    io(&g, G_OUTPUT, "cat", FLOAT, NULL, -1, false);
    io(&g, G_OUTPUT, "last", FLOAT, d23, 2, false);
    io(&g, G_OUTPUT, "n", INT64, NULL, 0, false);
    io(&g, G_OUTPUT, "s2", FLOAT, NULL, -1, true);
    pb m = pb_model(&g, 13, NULL);
    kiln_network *net = NULL;
    KT_OK(pb_parse(b, &m, &net));
    if (!net) return;
    /* The sequence output is one network output per element. */
    KT_CHECK(kiln_network_num_outputs(net) == 6);
    KT_CHECK(kiln_network_find_tensor(net, "s2[2]") && !kiln_network_find_tensor(net, "s2[3]"));
    float a[6], bb[6];
    kt_fill(a, 6, -1, 1);
    kt_fill(bb, 6, -1, 1);
    run r;
    const char *names[] = {"a", "b"};
    void *data[] = {a, bb};
    size_t bytes[] = {sizeof a, sizeof bb};
    if (run_net(b, net, &r, names, data, bytes, 2)) {
        kiln_dims d;
        /* Stacked on a new axis 1: cat[i][k][j] = s2[k][i][j]. */
        const float *elems[3] = {a, a, bb};
        float ref[18];
        for (int i = 0; i < 2; i++)
            for (int k = 0; k < 3; k++)
                for (int j = 0; j < 3; j++) ref[(i * 3 + k) * 3 + j] = elems[k][i * 3 + j];
        const float *c = output(&r, "cat", &d);
        const int64_t want[] = {2, 3, 3};
        KT_CHECK(dims_are(&d, 3, want));
        if (c && dims_are(&d, 3, want)) kt_close("concat from sequence", c, ref, 18, 0, 0);
        const float *l = output(&r, "last", &d);
        if (l) kt_close("sequence at -1", l, bb, 6, 0, 0);
        const int64_t *len = output(&r, "n", &d);
        KT_CHECK(len && d.nb_dims == 0 && *len == 2);
        for (int k = 0; k < 3; k++) {
            char name[16];
            snprintf(name, sizeof name, "s2[%d]", k);
            const float *e = output(&r, name, &d);
            if (e) kt_close("sequence output element", e, elems[k], 6, 0, 0);
        }
    }
    run_free(&r);
    kiln_network_destroy(net);
}

/* out = SequenceAt(x, p) for a sequence input x and a position p known only at run time;
 * x's form is given to kiln__onnx_import. */
static void test_sequence_input(kiln_builder *b) {
    pb g = {0};
    io(&g, G_INPUT, "x", FLOAT, NULL, -1, true);
    io(&g, G_INPUT, "p", INT64, NULL, 0, false);
    const char *in[] = {"x", "p"}, *out[] = {"out"};
    node(&g, "at", "SequenceAt", in, 2, out, 1, NULL, NULL, 0, NULL);
    io(&g, G_OUTPUT, "out", FLOAT, NULL, -1, false);
    pb m = pb_model(&g, 13, NULL);
    kiln_network *net = NULL;
    KT_STATUS(kiln_onnx_parse(b, m.data, m.size, NULL, &net), KILN_UNSUPPORTED);
    KT_CHECK(msg_contains(kiln_last_error(), "graph input 'x' is a sequence"));
    kiln__alloc alloc;
    kiln__alloc_init(&alloc, NULL);
    kiln__onnx_model *om = NULL;
    KT_OK(kiln__onnx_model_parse(&alloc, m.data, m.size, NULL, &om));
    if (om) {
        kiln_dtype dtypes[3] = {KILN_FLOAT32, KILN_FLOAT32, KILN_FLOAT32};
        kiln_dims dims[3] = {{.nb_dims = 2, .d = {2, 2}}, {.nb_dims = 2, .d = {2, 2}}, {.nb_dims = 2, .d = {2, 2}}};
        kiln__onnx_input_form form = {.name = "x", .present = true, .count = 3, .dtypes = dtypes, .dims = dims};
        KT_OK(kiln__onnx_import(b, om, &form, 1, &net));
    }
    if (net) {
        KT_CHECK(kiln_network_num_inputs(net) == 4);
        KT_CHECK(count_layers(net, KILN_LAYER_GATHER) == 1);
        float x[3][4];
        kt_fill(&x[0][0], 12, -1, 1);
        for (int64_t p = -3; p < 3; p++) {
            run r;
            const char *names[] = {"x[0]", "x[1]", "x[2]", "p"};
            void *data[] = {x[0], x[1], x[2], &p};
            size_t bytes[] = {16, 16, 16, 8};
            if (run_net(b, net, &r, names, data, bytes, 4)) {
                kiln_dims d;
                const float *o = output(&r, "out", &d);
                if (o) kt_close("sequence at (run time)", o, x[p < 0 ? p + 3 : p], 4, 0, 0);
            }
            run_free(&r);
        }
        kiln_network_destroy(net);
    }
    kiln__onnx_model_free(om);
    free(m.data);

    /* A run-time position that changes the sequence itself is refused. */
    static const int64_t d2[] = {2};
    g = (pb){0};
    io(&g, G_INPUT, "a", FLOAT, d2, 1, false);
    io(&g, G_INPUT, "p", INT64, NULL, 0, false);
    const char *a[] = {"a"}, *s[] = {"s"}, *ins[] = {"s", "a", "p"}, *s2[] = {"s2"}, *s2i[] = {"s2"}, *c[] = {"c"};
    node(&g, "construct", "SequenceConstruct", a, 1, s, 1, NULL, NULL, 0, NULL);
    node(&g, "insert", "SequenceInsert", ins, 3, s2, 1, NULL, NULL, 0, NULL);
    node(&g, "concat", "ConcatFromSequence", s2i, 1, c, 1, NULL, NULL, 0, (const char *const[]){"axis=0", NULL});
    io(&g, G_OUTPUT, "c", FLOAT, NULL, -1, false);
    m = pb_model(&g, 13, NULL);
    net = NULL;
    KT_STATUS(pb_parse(b, &m, &net), KILN_UNSUPPORTED);
    KT_CHECK(msg_contains(kiln_last_error(), "node 'insert' (SequenceInsert): input 2 (position) 'p' is not known"));
}

int main(void) {
    kt_seed();
    kiln_builder *b = NULL;
    KT_OK(kiln_builder_create(NULL, &b));
    if (!b) return kt_summary("test_onnx_control");
    test_if(b);
    test_loop(b);
    test_sequence_ops(b);
    test_sequence_input(b);
    kiln_builder_destroy(b);
    return kt_summary("test_onnx_control");
}
