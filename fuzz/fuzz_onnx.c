/* libFuzzer target for the ONNX reader: parses the input as a model and as each test-data
 * message kind, walks everything decoded (tensor data, subgraphs, types, attribute getters),
 * then parses again with an allocator that fails part way, to exercise every cleanup path. */
#include "onnx/model.h"

#include <stdlib.h>
#include <string.h>

typedef struct failing {
    int64_t left; /* allocations allowed before failing; < 0: never fail */
} failing;

static void *fail_alloc(void *user, size_t size, size_t alignment) {
    failing *f = user;
    if (f->left == 0) return NULL;
    if (f->left > 0) f->left--;
    void *p = NULL;
    if (alignment < sizeof(void *)) alignment = sizeof(void *);
    return posix_memalign(&p, alignment, size ? size : 1) == 0 ? p : NULL;
}

static void fail_free(void *user, void *ptr) {
    (void)user;
    free(ptr);
}

static volatile uint8_t sink;

/* Reads every byte so that ASan sees any view that points outside the input. */
static void touch(const void *p, size_t n) {
    const uint8_t *b = p;
    uint8_t acc = 0;
    for (size_t i = 0; i < n; i++) acc ^= b[i];
    sink ^= acc;
}

static void walk_type(const kiln__onnx_type *t) {
    for (int depth = 0; t && depth < 1000; depth++) {
        for (int32_t i = 0; t->kind == KILN__ONNX_TYPE_TENSOR && t->has_shape && i < t->rank; i++)
            if (t->dims[i].param) touch(t->dims[i].param, strlen(t->dims[i].param));
        t = t->elem;
    }
}

static void walk_tensor(const kiln__alloc *alloc, const kiln__onnx_tensor *t) {
    touch(t->name, strlen(t->name));
    touch(t->dims, (size_t)t->nb_dims * sizeof *t->dims);
    for (int64_t i = 0; t->source == KILN__ONNX_DATA_STRINGS && i < t->count; i++)
        touch(t->strings[i].data, t->strings[i].size);
    kiln__onnx_data d;
    if (kiln__onnx_tensor_data(alloc, t, &d) == KILN_OK) {
        size_t bytes;
        if (!kiln__onnx_type_bytes(t->data_type, t->count, &bytes) || bytes != d.size) abort();
        touch(d.data, d.size);
        kiln__onnx_data_release(alloc, &d);
    }
}

static void walk_graph(const kiln__alloc *alloc, const kiln__onnx_graph *g) {
    for (int32_t i = 0; i < g->nb_initializers; i++) walk_tensor(alloc, &g->initializers[i]);
    for (int32_t i = 0; i < g->nb_inputs; i++) walk_type(&g->inputs[i].type);
    for (int32_t i = 0; i < g->nb_outputs; i++) walk_type(&g->outputs[i].type);
    for (int32_t i = 0; i < g->nb_value_infos; i++) walk_type(&g->value_infos[i].type);
    for (int32_t i = 0; i < g->nb_nodes; i++) {
        const kiln__onnx_node *n = &g->nodes[i];
        for (int32_t k = 0; k < n->nb_inputs; k++) touch(n->inputs[k], strlen(n->inputs[k]));
        for (int32_t k = 0; k < n->nb_outputs; k++) touch(n->outputs[k], strlen(n->outputs[k]));
        for (int32_t k = 0; k < n->nb_attrs; k++) {
            const kiln__onnx_attr *a = &n->attrs[k];
            const int64_t *ints;
            const float *floats;
            int64_t count;
            kiln__onnx_bytes s;
            (void)kiln__onnx_attr_ints(n, a->name, &ints, &count);
            (void)kiln__onnx_attr_floats(n, a->name, &floats, &count);
            (void)kiln__onnx_attr_string(n, a->name, &s);
            switch (a->type) {
            case KILN__ONNX_ATTR_STRING: touch(a->s.data, a->s.size); break;
            case KILN__ONNX_ATTR_TENSOR:
                if (a->t) walk_tensor(alloc, a->t);
                break;
            case KILN__ONNX_ATTR_GRAPH:
                if (a->g) walk_graph(alloc, a->g);
                break;
            case KILN__ONNX_ATTR_TYPE_PROTO: walk_type(a->tp); break;
            case KILN__ONNX_ATTR_FLOATS: touch(a->floats, (size_t)a->count * sizeof *a->floats); break;
            case KILN__ONNX_ATTR_INTS: touch(a->ints, (size_t)a->count * sizeof *a->ints); break;
            case KILN__ONNX_ATTR_STRINGS:
                for (int64_t j = 0; j < a->count; j++) touch(a->strings[j].data, a->strings[j].size);
                break;
            case KILN__ONNX_ATTR_TENSORS:
                for (int64_t j = 0; j < a->count; j++) walk_tensor(alloc, &a->tensors[j]);
                break;
            case KILN__ONNX_ATTR_GRAPHS:
                for (int64_t j = 0; j < a->count; j++) walk_graph(alloc, &a->graphs[j]);
                break;
            case KILN__ONNX_ATTR_TYPE_PROTOS:
                for (int64_t j = 0; j < a->count; j++) walk_type(&a->type_protos[j]);
                break;
            default: break;
            }
        }
    }
}

static void walk_value(const kiln__alloc *alloc, const kiln__onnx_value *v) {
    if (v->tensor) walk_tensor(alloc, v->tensor);
    for (int64_t i = 0; i < v->count; i++) walk_value(alloc, &v->items[i]);
    if (v->value) walk_value(alloc, v->value);
}

/* The importer and the builder's validation (shape inference over every layer) on the
 * decoded model; a CPU engine is built but not run, so work stays bounded. */
static void import_and_build(const kiln__alloc *alloc, const uint8_t *data, size_t size) {
    kiln_builder_options opts = {sizeof opts, &alloc->a, NULL};
    kiln_builder *b = NULL;
    kiln_network *net = NULL;
    kiln_builder_config *cfg = NULL;
    kiln_engine *eng = NULL;
    if (kiln_builder_create(&opts, &b) == KILN_OK && kiln_onnx_parse(b, data, size, NULL, &net) == KILN_OK &&
        kiln_builder_config_create(b, &cfg) == KILN_OK)
        (void)kiln_builder_build_engine(b, net, cfg, &eng);
    kiln_engine_destroy(eng);
    kiln_builder_config_destroy(cfg);
    kiln_network_destroy(net);
    kiln_builder_destroy(b);
}

/* Parses everything once with `alloc`; true when something decoded. */
static int run(const kiln__alloc *alloc, const uint8_t *data, size_t size) {
    int decoded = 0;
    kiln__onnx_model *m = NULL;
    if (kiln__onnx_model_parse(alloc, data, size, NULL, &m) == KILN_OK) {
        (void)kiln__onnx_opset_version(m, "");
        walk_graph(alloc, m->graph);
        kiln__onnx_model_free(m);
        decoded = 1;
        import_and_build(alloc, data, size);
    }
    for (int kind = KILN__ONNX_VALUE_TENSOR; kind <= KILN__ONNX_VALUE_OPTIONAL; kind++) {
        kiln__onnx_value_file *v = NULL;
        if (kiln__onnx_value_parse(alloc, data, size, (kiln__onnx_value_kind)kind, &v) == KILN_OK) {
            walk_value(alloc, &v->value);
            kiln__onnx_value_free(v);
            decoded = 1;
        }
    }
    return decoded;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    failing f = {-1};
    kiln_allocator user = {fail_alloc, fail_free, &f};
    kiln__alloc alloc;
    kiln__alloc_init(&alloc, &user);
    if (run(&alloc, data, size) && size) {
        f.left = data[size - 1] % 16; /* fail one of the first allocations */
        run(&alloc, data, size);
    }
    return 0;
}
