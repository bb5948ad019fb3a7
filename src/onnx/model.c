/* ModelProto and GraphProto decoding, the store (arena + mapped files), external files. */
#include "onnx/decode.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- store ---- */

#define BLOCK_MIN ((size_t)64 << 10)

struct kiln__onnx_block {
    kiln__onnx_block *next;
    size_t size, used;
    _Alignas(16) uint8_t data[];
};

kiln_status kiln__onnx_store_new(const kiln__alloc *alloc, const char *dir, kiln__onnx_store **out) {
    *out = NULL;
    kiln__onnx_store *s = kiln__calloc(alloc, 1, sizeof *s);
    if (!s) return KILN_OUT_OF_MEMORY;
    s->alloc = *alloc;
    if (dir) {
        s->dir = kiln__strdup(alloc, dir);
        if (!s->dir) {
            kiln__free(alloc, s);
            return KILN_OUT_OF_MEMORY;
        }
    }
    *out = s;
    return KILN_OK;
}

void kiln__onnx_store_free(kiln__onnx_store *s) {
    if (!s) return;
    kiln__alloc alloc = s->alloc;
    for (kiln__onnx_block *b = s->blocks, *next; b; b = next) {
        next = b->next;
        kiln__free(&alloc, b);
    }
    for (int64_t i = 0; i < s->nb_ext; i++) {
        kiln__unmap_file(&s->ext[i].map);
        kiln__free(&alloc, s->ext[i].path);
    }
    kiln__free(&alloc, s->ext);
    kiln__unmap_file(&s->map);
    kiln__free(&alloc, s->dir);
    kiln__free(&alloc, s);
}

void *kiln__onnx_alloc(kiln__onnx_store *s, size_t count, size_t elem) {
    size_t size;
    if (!kiln__mul_size(count, elem, &size) || size > SIZE_MAX - 16 - BLOCK_MIN) {
        kiln__error(KILN_OUT_OF_MEMORY, "allocation size overflows (%zu x %zu bytes)", count, elem);
        return NULL;
    }
    size = (size + 15) & ~(size_t)15;
    kiln__onnx_block *b = s->blocks;
    if (!b || b->size - b->used < size) {
        size_t cap = size > BLOCK_MIN ? size : BLOCK_MIN;
        b = kiln__malloc(&s->alloc, sizeof *b + cap);
        if (!b) return NULL;
        b->size = cap;
        b->used = 0;
        /* A big one-off block goes behind the current one so its free space stays usable. */
        if (s->blocks && cap > BLOCK_MIN) {
            b->next = s->blocks->next;
            s->blocks->next = b;
        } else {
            b->next = s->blocks;
            s->blocks = b;
        }
    }
    void *p = b->data + b->used;
    b->used += size;
    memset(p, 0, size);
    return p;
}

/* A location must name a file inside the folder: relative, no "..", no escaping symlink. */
kiln_status kiln__onnx_store_external(kiln__onnx_store *s, const char *location, const uint8_t **data, size_t *size) {
    if (!s->dir)
        return kiln__error(KILN_INVALID_ARGUMENT,
                           "external data '%s' needs the model's folder (load the model from a path)", location);
    if (!location[0]) return kiln__error(KILN_INVALID_ARGUMENT, "external data location is empty");
    if (location[0] == '/')
        return kiln__error(KILN_INVALID_ARGUMENT, "external data location '%s' is an absolute path", location);
    for (const char *p = location; *p;) {
        size_t n = strcspn(p, "/");
        if (n == 2 && p[0] == '.' && p[1] == '.')
            return kiln__error(KILN_INVALID_ARGUMENT, "external data location '%s' contains '..'", location);
        p += n;
        if (*p == '/') p++;
    }
    char joined[PATH_MAX], real_dir[PATH_MAX], real_file[PATH_MAX];
    size_t dl = strlen(s->dir), ll = strlen(location);
    if (dl + 1 + ll >= sizeof joined)
        return kiln__error(KILN_INVALID_ARGUMENT, "external data location '%s' is too long", location);
    memcpy(joined, s->dir, dl);
    joined[dl] = '/';
    memcpy(joined + dl + 1, location, ll + 1);
    if (!realpath(s->dir, real_dir)) return kiln__error(KILN_IO_ERROR, "cannot resolve the model folder '%s'", s->dir);
    if (!realpath(joined, real_file))
        return kiln__error(KILN_IO_ERROR, "external data file '%s' not found in '%s'", location, s->dir);
    size_t rl = strlen(real_dir);
    bool root = rl == 1; /* "/" */
    if (strncmp(real_file, real_dir, rl) != 0 || (!root && real_file[rl] != '/'))
        return kiln__error(KILN_INVALID_ARGUMENT,
                           "external data location '%s' resolves to '%s', outside the model folder", location,
                           real_file);
    for (int64_t i = 0; i < s->nb_ext; i++)
        if (!strcmp(s->ext[i].path, real_file)) {
            *data = s->ext[i].map.data;
            *size = s->ext[i].map.size;
            return KILN_OK;
        }
    KILN__TRY(kiln__reserve(&s->alloc, (void **)&s->ext, &s->ext_capacity, s->nb_ext + 1, sizeof *s->ext));
    kiln__onnx_ext_file *e = &s->ext[s->nb_ext];
    e->path = kiln__strdup(&s->alloc, real_file);
    if (!e->path) return KILN_OUT_OF_MEMORY;
    kiln_status st = kiln__map_file(real_file, &e->map);
    if (st != KILN_OK) {
        kiln__free(&s->alloc, e->path);
        e->path = NULL;
        return st;
    }
    s->nb_ext++;
    *data = e->map.data;
    *size = e->map.size;
    return KILN_OK;
}

/* ---- helpers shared by the decoders ---- */

kiln_status kiln__onnx_string(kiln__onnx_store *s, const kiln__pb *r, const kiln__pb_field *f, const char *name,
                              const char **out) {
    KILN__TRY(kiln__pb_expect(r, f, KILN__PB_LEN, name));
    if (memchr(f->data, 0, f->size))
        return kiln__error(KILN_INVALID_ARGUMENT, "%s at offset %zu in %s contains a NUL byte", name, f->offset,
                           r->msg);
    char *p = kiln__onnx_alloc(s, f->size + 1, 1);
    if (!p) return KILN_OUT_OF_MEMORY;
    memcpy(p, f->data, f->size);
    *out = p;
    return KILN_OK;
}

void kiln__onnx_read_int64s(const kiln__pb_field *f, int64_t *dst, int64_t *n) {
    kiln__pb_scalars it;
    uint64_t v;
    kiln__pb_scalars_init(&it, f, KILN__PB_VARINT);
    while (kiln__pb_scalars_next(&it, &v)) dst[(*n)++] = (int64_t)v;
}

/* ---- NodeProto ---- */

enum { N_INPUT = 1, N_OUTPUT = 2, N_NAME = 3, N_OP_TYPE = 4, N_ATTRIBUTE = 5, N_DOMAIN = 7 };

static kiln_status decode_node(kiln__onnx_store *s, const kiln__pb *parent, const kiln__pb_field *f, int depth,
                               kiln__onnx_node *n) {
    KILN__TRY(kiln__pb_expect(parent, f, KILN__PB_LEN, "GraphProto.node"));
    kiln__pb r = kiln__pb_sub(parent, f, "NodeProto");
    size_t ni = 0, no = 0, na = 0;
    while (!kiln__pb_done(&r)) {
        kiln__pb_field e;
        KILN__TRY(kiln__pb_next(&r, &e));
        switch (e.number) {
        case N_INPUT: ni++; break;
        case N_OUTPUT: no++; break;
        case N_ATTRIBUTE: na++; break;
        case N_NAME: KILN__TRY(kiln__onnx_string(s, &r, &e, "NodeProto.name", &n->name)); break;
        case N_OP_TYPE: KILN__TRY(kiln__onnx_string(s, &r, &e, "NodeProto.op_type", &n->op_type)); break;
        case N_DOMAIN: KILN__TRY(kiln__onnx_string(s, &r, &e, "NodeProto.domain", &n->domain)); break;
        default: break;
        }
    }
    if (!n->op_type[0]) return kiln__error(KILN_INVALID_ARGUMENT, "NodeProto has no op_type");
    if (ni > INT32_MAX || no > INT32_MAX || na > INT32_MAX)
        return kiln__error(KILN_INVALID_ARGUMENT, "too many inputs, outputs or attributes");
    const char **inputs = kiln__onnx_alloc(s, ni, sizeof *inputs);
    const char **outputs = kiln__onnx_alloc(s, no, sizeof *outputs);
    kiln__onnx_attr *attrs = kiln__onnx_alloc(s, na, sizeof *attrs);
    if (!inputs || !outputs || !attrs) return KILN_OUT_OF_MEMORY;
    n->inputs = inputs;
    n->outputs = outputs;
    n->attrs = attrs;
    r = kiln__pb_sub(parent, f, "NodeProto");
    while (!kiln__pb_done(&r)) {
        kiln__pb_field e;
        KILN__TRY(kiln__pb_next(&r, &e));
        switch (e.number) {
        case N_INPUT: KILN__TRY(kiln__onnx_string(s, &r, &e, "NodeProto.input", &inputs[n->nb_inputs++])); break;
        case N_OUTPUT: KILN__TRY(kiln__onnx_string(s, &r, &e, "NodeProto.output", &outputs[n->nb_outputs++])); break;
        case N_ATTRIBUTE: {
            kiln__onnx_attr *a = &attrs[n->nb_attrs];
            kiln_status st = kiln__onnx_decode_attr(s, &r, &e, depth, a);
            if (st != KILN_OK) {
                if (a->name && a->name[0]) return kiln__error_prefix(st, "attribute '%s'", a->name);
                return kiln__error_prefix(st, "attribute %d", n->nb_attrs);
            }
            n->nb_attrs++;
            break;
        }
        default: break;
        }
    }
    for (int32_t i = 0; i < n->nb_attrs; i++)
        for (int32_t j = 0; j < i; j++)
            if (!strcmp(attrs[i].name, attrs[j].name))
                return kiln__error(KILN_INVALID_ARGUMENT, "attribute '%s' appears twice", attrs[i].name);
    return KILN_OK;
}

void kiln__onnx_node_label(const kiln__onnx_node *n, int64_t index, char *buf, size_t size) {
    if (n->name && n->name[0])
        snprintf(buf, size, "node '%s' (%s)", n->name, n->op_type);
    else if (index >= 0)
        snprintf(buf, size, "node %lld (%s)", (long long)index, n->op_type);
    else
        snprintf(buf, size, "node (%s)", n->op_type);
}

/* ---- GraphProto ---- */

enum {
    G_NODE = 1,
    G_NAME = 2,
    G_INITIALIZER = 5,
    G_INPUT = 11,
    G_OUTPUT = 12,
    G_VALUE_INFO = 13,
    G_SPARSE_INITIALIZER = 15
};

static kiln_status decode_graph(kiln__onnx_store *s, const kiln__pb *parent, const kiln__pb_field *f, int depth,
                                kiln__onnx_graph *g) {
    if (depth > KILN__ONNX_MAX_DEPTH)
        return kiln__error(KILN_INVALID_ARGUMENT, "graphs nested deeper than %d at offset %zu", KILN__ONNX_MAX_DEPTH,
                           f->offset);
    KILN__TRY(kiln__pb_expect(parent, f, KILN__PB_LEN, "graph"));
    kiln__pb r = kiln__pb_sub(parent, f, "GraphProto");
    size_t nn = 0, nini = 0, nin = 0, nout = 0, nvi = 0;
    while (!kiln__pb_done(&r)) {
        kiln__pb_field e;
        KILN__TRY(kiln__pb_next(&r, &e));
        switch (e.number) {
        case G_NODE: nn++; break;
        case G_INITIALIZER: nini++; break;
        case G_INPUT: nin++; break;
        case G_OUTPUT: nout++; break;
        case G_VALUE_INFO: nvi++; break;
        case G_NAME: KILN__TRY(kiln__onnx_string(s, &r, &e, "GraphProto.name", &g->name)); break;
        case G_SPARSE_INITIALIZER:
            return kiln__error(KILN_UNSUPPORTED,
                               "sparse initializers (GraphProto.sparse_initializer) are not supported");
        default: break;
        }
    }
    if (nn > INT32_MAX || nini > INT32_MAX || nin > INT32_MAX || nout > INT32_MAX || nvi > INT32_MAX)
        return kiln__error(KILN_INVALID_ARGUMENT, "too many nodes or values");
    kiln__onnx_node *nodes = kiln__onnx_alloc(s, nn, sizeof *nodes);
    kiln__onnx_tensor *inits = kiln__onnx_alloc(s, nini, sizeof *inits);
    kiln__onnx_value_info *ins = kiln__onnx_alloc(s, nin, sizeof *ins);
    kiln__onnx_value_info *outs = kiln__onnx_alloc(s, nout, sizeof *outs);
    kiln__onnx_value_info *vis = kiln__onnx_alloc(s, nvi, sizeof *vis);
    if (!nodes || !inits || !ins || !outs || !vis) return KILN_OUT_OF_MEMORY;
    g->nodes = nodes;
    g->initializers = inits;
    g->inputs = ins;
    g->outputs = outs;
    g->value_infos = vis;
    r = kiln__pb_sub(parent, f, "GraphProto");
    while (!kiln__pb_done(&r)) {
        kiln__pb_field e;
        KILN__TRY(kiln__pb_next(&r, &e));
        switch (e.number) {
        case G_NODE: {
            kiln__onnx_node *n = &nodes[g->nb_nodes];
            n->name = n->op_type = n->domain = "";
            kiln_status st = decode_node(s, &r, &e, depth, n);
            if (st != KILN_OK) {
                char label[256];
                kiln__onnx_node_label(n, g->nb_nodes, label, sizeof label);
                return kiln__error_prefix(st, "%s", label);
            }
            g->nb_nodes++;
            break;
        }
        case G_INITIALIZER:
            KILN__TRY(
                kiln__onnx_decode_tensor(s, &r, &e, "initializer", g->nb_initializers, &inits[g->nb_initializers]));
            g->nb_initializers++;
            break;
        case G_INPUT:
            KILN__TRY(kiln__onnx_decode_value_info(s, &r, &e, "input", g->nb_inputs, &ins[g->nb_inputs]));
            g->nb_inputs++;
            break;
        case G_OUTPUT:
            KILN__TRY(kiln__onnx_decode_value_info(s, &r, &e, "output", g->nb_outputs, &outs[g->nb_outputs]));
            g->nb_outputs++;
            break;
        case G_VALUE_INFO:
            KILN__TRY(
                kiln__onnx_decode_value_info(s, &r, &e, "value_info", g->nb_value_infos, &vis[g->nb_value_infos]));
            g->nb_value_infos++;
            break;
        default: break;
        }
    }
    return KILN_OK;
}

kiln_status kiln__onnx_decode_graph(kiln__onnx_store *s, const kiln__pb *parent, const kiln__pb_field *f, int depth,
                                    kiln__onnx_graph *g) {
    memset(g, 0, sizeof *g);
    g->name = "";
    kiln_status st = decode_graph(s, parent, f, depth, g);
    if (st != KILN_OK) return kiln__error_prefix(st, "graph '%s'", g->name);
    return KILN_OK;
}

/* ---- ModelProto ---- */

enum {
    M_IR_VERSION = 1,
    M_PRODUCER_NAME = 2,
    M_PRODUCER_VERSION = 3,
    M_DOMAIN = 4,
    M_MODEL_VERSION = 5,
    M_GRAPH = 7,
    M_OPSET_IMPORT = 8,
    M_METADATA_PROPS = 14
};

static kiln_status decode_opset(kiln__onnx_store *s, const kiln__pb *parent, const kiln__pb_field *f,
                                kiln__onnx_opset *o) {
    KILN__TRY(kiln__pb_expect(parent, f, KILN__PB_LEN, "ModelProto.opset_import"));
    kiln__pb r = kiln__pb_sub(parent, f, "OperatorSetIdProto");
    o->domain = "";
    while (!kiln__pb_done(&r)) {
        kiln__pb_field e;
        KILN__TRY(kiln__pb_next(&r, &e));
        if (e.number == 1) KILN__TRY(kiln__onnx_string(s, &r, &e, "OperatorSetIdProto.domain", &o->domain));
        if (e.number == 2) KILN__TRY(kiln__pb_int64(&r, &e, "OperatorSetIdProto.version", &o->version));
    }
    return KILN_OK;
}

static kiln_status decode_prop(kiln__onnx_store *s, const kiln__pb *parent, const kiln__pb_field *f,
                               kiln__onnx_prop *p) {
    KILN__TRY(kiln__pb_expect(parent, f, KILN__PB_LEN, "ModelProto.metadata_props"));
    kiln__pb r = kiln__pb_sub(parent, f, "StringStringEntryProto");
    p->key = p->value = "";
    while (!kiln__pb_done(&r)) {
        kiln__pb_field e;
        KILN__TRY(kiln__pb_next(&r, &e));
        if (e.number == 1) KILN__TRY(kiln__onnx_string(s, &r, &e, "StringStringEntryProto.key", &p->key));
        if (e.number == 2) KILN__TRY(kiln__onnx_string(s, &r, &e, "StringStringEntryProto.value", &p->value));
    }
    return KILN_OK;
}

static kiln_status decode_model(kiln__onnx_store *s, const uint8_t *data, size_t size, kiln__onnx_model *m) {
    kiln__pb r;
    kiln__pb_init(&r, data, data, size, "ModelProto");
    m->producer_name = m->producer_version = m->domain = "";
    size_t nops = 0, nprops = 0;
    const kiln__pb_field *graph_field = NULL;
    kiln__pb_field gf;
    while (!kiln__pb_done(&r)) {
        kiln__pb_field e;
        KILN__TRY(kiln__pb_next(&r, &e));
        switch (e.number) {
        case M_IR_VERSION: KILN__TRY(kiln__pb_int64(&r, &e, "ModelProto.ir_version", &m->ir_version)); break;
        case M_PRODUCER_NAME:
            KILN__TRY(kiln__onnx_string(s, &r, &e, "ModelProto.producer_name", &m->producer_name));
            break;
        case M_PRODUCER_VERSION:
            KILN__TRY(kiln__onnx_string(s, &r, &e, "ModelProto.producer_version", &m->producer_version));
            break;
        case M_DOMAIN: KILN__TRY(kiln__onnx_string(s, &r, &e, "ModelProto.domain", &m->domain)); break;
        case M_MODEL_VERSION: KILN__TRY(kiln__pb_int64(&r, &e, "ModelProto.model_version", &m->model_version)); break;
        case M_GRAPH:
            KILN__TRY(kiln__pb_expect(&r, &e, KILN__PB_LEN, "ModelProto.graph"));
            gf = e;
            graph_field = &gf;
            break;
        case M_OPSET_IMPORT: nops++; break;
        case M_METADATA_PROPS: nprops++; break;
        default: break; /* functions, training_info, configuration, doc_string: not needed */
        }
    }
    if (!graph_field) return kiln__error(KILN_INVALID_ARGUMENT, "ModelProto has no graph");
    if (!nops) return kiln__error(KILN_INVALID_ARGUMENT, "ModelProto has no opset_import");
    if (nops > INT32_MAX || nprops > INT32_MAX) return kiln__error(KILN_INVALID_ARGUMENT, "too many opsets or props");
    kiln__onnx_opset *ops = kiln__onnx_alloc(s, nops, sizeof *ops);
    kiln__onnx_prop *props = kiln__onnx_alloc(s, nprops, sizeof *props);
    kiln__onnx_graph *g = kiln__onnx_alloc(s, 1, sizeof *g);
    if (!ops || !props || !g) return KILN_OUT_OF_MEMORY;
    m->opsets = ops;
    m->props = props;
    kiln__pb_init(&r, data, data, size, "ModelProto");
    while (!kiln__pb_done(&r)) {
        kiln__pb_field e;
        KILN__TRY(kiln__pb_next(&r, &e));
        if (e.number == M_OPSET_IMPORT) KILN__TRY(decode_opset(s, &r, &e, &ops[m->nb_opsets++]));
        if (e.number == M_METADATA_PROPS) KILN__TRY(decode_prop(s, &r, &e, &props[m->nb_props++]));
    }
    for (int32_t i = 0; i < m->nb_opsets; i++)
        for (int32_t j = 0; j < i; j++) {
            const char *a = ops[i].domain, *b = ops[j].domain;
            bool da = !a[0] || !strcmp(a, "ai.onnx"), db = !b[0] || !strcmp(b, "ai.onnx");
            if ((da && db) || !strcmp(a, b))
                return kiln__error(KILN_INVALID_ARGUMENT, "opset_import lists domain '%s' twice", a);
        }
    kiln__pb top;
    kiln__pb_init(&top, data, data, size, "ModelProto");
    KILN__TRY(kiln__onnx_decode_graph(s, &top, graph_field, 0, g));
    m->graph = g;
    return kiln__onnx_check_graph(&s->alloc, g);
}

kiln_status kiln__onnx_model_parse(const kiln__alloc *alloc, const void *data, size_t size, const char *dir,
                                   kiln__onnx_model **out) {
    *out = NULL;
    kiln__onnx_store *s;
    KILN__TRY(kiln__onnx_store_new(alloc, dir, &s));
    kiln__onnx_model *m = kiln__onnx_alloc(s, 1, sizeof *m);
    if (!m) {
        kiln__onnx_store_free(s);
        return KILN_OUT_OF_MEMORY;
    }
    m->store = s;
    kiln_status st = decode_model(s, data, size, m);
    if (st != KILN_OK) {
        kiln__onnx_store_free(s);
        return st;
    }
    *out = m;
    return KILN_OK;
}

kiln_status kiln__onnx_model_load(const kiln__alloc *alloc, const char *path, kiln__onnx_model **out) {
    *out = NULL;
    if (!path) return kiln__error(KILN_INVALID_ARGUMENT, "model path is NULL");
    char dir[PATH_MAX];
    const char *slash = strrchr(path, '/');
    if (!slash) {
        strcpy(dir, ".");
    } else {
        size_t n = (size_t)(slash - path);
        if (n >= sizeof dir) return kiln__error(KILN_INVALID_ARGUMENT, "model path '%s' is too long", path);
        memcpy(dir, path, n);
        dir[n] = 0;
        if (n == 0) strcpy(dir, "/");
    }
    kiln__file_map map;
    KILN__TRY(kiln__map_file(path, &map));
    kiln__onnx_model *m;
    kiln_status st = kiln__onnx_model_parse(alloc, map.data, map.size, dir, &m);
    if (st != KILN_OK) {
        kiln__unmap_file(&map);
        return kiln__error_prefix(st, "%s", path);
    }
    m->store->map = map;
    *out = m;
    return KILN_OK;
}

void kiln__onnx_model_free(kiln__onnx_model *model) {
    if (model) kiln__onnx_store_free(model->store);
}

int64_t kiln__onnx_opset_version(const kiln__onnx_model *model, const char *domain) {
    bool want_default = !domain[0] || !strcmp(domain, "ai.onnx");
    for (int32_t i = 0; i < model->nb_opsets; i++) {
        const char *d = model->opsets[i].domain;
        bool is_default = !d[0] || !strcmp(d, "ai.onnx");
        if (want_default ? is_default : !strcmp(d, domain)) return model->opsets[i].version;
    }
    return 0;
}
