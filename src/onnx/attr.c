/* AttributeProto decoding and the typed attribute getters for importers. */
#include "onnx/decode.h"

#include <string.h>

enum {
    A_NAME = 1,
    A_F = 2,
    A_I = 3,
    A_S = 4,
    A_T = 5,
    A_G = 6,
    A_FLOATS = 7,
    A_INTS = 8,
    A_STRINGS = 9,
    A_TENSORS = 10,
    A_GRAPHS = 11,
    A_TP = 14,
    A_TYPE_PROTOS = 15,
    A_TYPE = 20,
    A_REF_ATTR_NAME = 21,
    A_SPARSE_TENSOR = 22,
    A_SPARSE_TENSORS = 23
};

const char *kiln__onnx_attr_type_name(kiln__onnx_attr_type type) {
    switch (type) {
    case KILN__ONNX_ATTR_UNDEFINED: return "UNDEFINED";
    case KILN__ONNX_ATTR_FLOAT: return "FLOAT";
    case KILN__ONNX_ATTR_INT: return "INT";
    case KILN__ONNX_ATTR_STRING: return "STRING";
    case KILN__ONNX_ATTR_TENSOR: return "TENSOR";
    case KILN__ONNX_ATTR_GRAPH: return "GRAPH";
    case KILN__ONNX_ATTR_FLOATS: return "FLOATS";
    case KILN__ONNX_ATTR_INTS: return "INTS";
    case KILN__ONNX_ATTR_STRINGS: return "STRINGS";
    case KILN__ONNX_ATTR_TENSORS: return "TENSORS";
    case KILN__ONNX_ATTR_GRAPHS: return "GRAPHS";
    case KILN__ONNX_ATTR_TYPE_PROTO: return "TYPE_PROTO";
    case KILN__ONNX_ATTR_TYPE_PROTOS: return "TYPE_PROTOS";
    }
    return "unknown";
}

/* The attribute type whose value lives in field `number` (0 for other fields). */
static kiln__onnx_attr_type type_of_field(uint32_t number) {
    switch (number) {
    case A_F: return KILN__ONNX_ATTR_FLOAT;
    case A_I: return KILN__ONNX_ATTR_INT;
    case A_S: return KILN__ONNX_ATTR_STRING;
    case A_T: return KILN__ONNX_ATTR_TENSOR;
    case A_G: return KILN__ONNX_ATTR_GRAPH;
    case A_FLOATS: return KILN__ONNX_ATTR_FLOATS;
    case A_INTS: return KILN__ONNX_ATTR_INTS;
    case A_STRINGS: return KILN__ONNX_ATTR_STRINGS;
    case A_TENSORS: return KILN__ONNX_ATTR_TENSORS;
    case A_GRAPHS: return KILN__ONNX_ATTR_GRAPHS;
    case A_TP: return KILN__ONNX_ATTR_TYPE_PROTO;
    case A_TYPE_PROTOS: return KILN__ONNX_ATTR_TYPE_PROTOS;
    default: return KILN__ONNX_ATTR_UNDEFINED;
    }
}

kiln_status kiln__onnx_decode_attr(kiln__onnx_store *s, const kiln__pb *parent, const kiln__pb_field *f, int depth,
                                   kiln__onnx_attr *a) {
    memset(a, 0, sizeof *a);
    a->name = "";
    a->s.data = (const uint8_t *)"";
    KILN__TRY(kiln__pb_expect(parent, f, KILN__PB_LEN, "NodeProto.attribute"));
    kiln__pb r = kiln__pb_sub(parent, f, "AttributeProto");
    uint32_t present = 0; /* bit per attribute type whose field was seen */
    int32_t declared = 0;
    size_t count = 0;
    while (!kiln__pb_done(&r)) {
        kiln__pb_field e;
        size_t n;
        KILN__TRY(kiln__pb_next(&r, &e));
        switch (e.number) {
        case A_NAME: KILN__TRY(kiln__onnx_string(s, &r, &e, "AttributeProto.name", &a->name)); break;
        case A_REF_ATTR_NAME:
            KILN__TRY(kiln__onnx_string(s, &r, &e, "AttributeProto.ref_attr_name", &a->ref_attr_name));
            break;
        case A_TYPE: KILN__TRY(kiln__pb_int32(&r, &e, "AttributeProto.type", &declared)); break;
        case A_SPARSE_TENSOR:
        case A_SPARSE_TENSORS: return kiln__error(KILN_UNSUPPORTED, "sparse tensor attributes are not supported");
        case A_F:
            KILN__TRY(kiln__pb_expect(&r, &e, KILN__PB_I32, "AttributeProto.f"));
            a->f = kiln__pb_float(e.value);
            break;
        case A_I: KILN__TRY(kiln__pb_int64(&r, &e, "AttributeProto.i", &a->i)); break;
        case A_S:
            KILN__TRY(kiln__pb_expect(&r, &e, KILN__PB_LEN, "AttributeProto.s"));
            a->s = (kiln__onnx_bytes){e.data, e.size};
            break;
        case A_T: KILN__TRY(kiln__pb_expect(&r, &e, KILN__PB_LEN, "AttributeProto.t")); break;
        case A_G: KILN__TRY(kiln__pb_expect(&r, &e, KILN__PB_LEN, "AttributeProto.g")); break;
        case A_TP: KILN__TRY(kiln__pb_expect(&r, &e, KILN__PB_LEN, "AttributeProto.tp")); break;
        case A_FLOATS:
            KILN__TRY(kiln__pb_scalars_count(&r, &e, KILN__PB_I32, "AttributeProto.floats", &n));
            count += n;
            break;
        case A_INTS:
            KILN__TRY(kiln__pb_scalars_count(&r, &e, KILN__PB_VARINT, "AttributeProto.ints", &n));
            count += n;
            break;
        case A_STRINGS:
        case A_TENSORS:
        case A_GRAPHS:
        case A_TYPE_PROTOS:
            KILN__TRY(kiln__pb_expect(&r, &e, KILN__PB_LEN, "AttributeProto list element"));
            count++;
            break;
        default: break;
        }
        kiln__onnx_attr_type t = type_of_field(e.number);
        if (t) present |= 1u << t;
    }
    if (declared == 11 || declared == 12)
        return kiln__error(KILN_UNSUPPORTED, "sparse tensor attributes are not supported");
    if (declared < 0 || declared > KILN__ONNX_ATTR_TYPE_PROTOS)
        return kiln__error(KILN_INVALID_ARGUMENT, "AttributeProto.type %d is not a known type", declared);
    kiln__onnx_attr_type type = (kiln__onnx_attr_type)declared;
    if (type == KILN__ONNX_ATTR_UNDEFINED) {
        /* Old writers leave `type` out: take it from the one value field present. */
        if (present == 0 || (present & (present - 1))) {
            if (a->ref_attr_name && !present) return KILN_OK;
            return kiln__error(KILN_INVALID_ARGUMENT, "attribute has no type and %s value fields",
                               present ? "several" : "no");
        }
        while (!(present & (1u << type))) type++;
    } else {
        if (present & ~(1u << type))
            return kiln__error(KILN_INVALID_ARGUMENT, "declared %s but holds a value of another type",
                               kiln__onnx_attr_type_name(type));
        if (!(present & (1u << type)) && !a->ref_attr_name &&
            (type == KILN__ONNX_ATTR_TENSOR || type == KILN__ONNX_ATTR_GRAPH || type == KILN__ONNX_ATTR_TYPE_PROTO))
            return kiln__error(KILN_INVALID_ARGUMENT, "declared %s but has no value", kiln__onnx_attr_type_name(type));
    }
    a->type = type;
    if (count > INT32_MAX) return kiln__error(KILN_INVALID_ARGUMENT, "list of %zu values", count);
    float *floats = NULL;
    int64_t *ints = NULL;
    kiln__onnx_bytes *strings = NULL;
    kiln__onnx_tensor *tensors = NULL;
    kiln__onnx_graph *graphs = NULL;
    kiln__onnx_type *tps = NULL;
    bool ok = true;
    switch (type) {
    case KILN__ONNX_ATTR_FLOATS: ok = (a->floats = floats = kiln__onnx_alloc(s, count, sizeof *floats)) != NULL; break;
    case KILN__ONNX_ATTR_INTS: ok = (a->ints = ints = kiln__onnx_alloc(s, count, sizeof *ints)) != NULL; break;
    case KILN__ONNX_ATTR_STRINGS:
        ok = (a->strings = strings = kiln__onnx_alloc(s, count, sizeof *strings)) != NULL;
        break;
    case KILN__ONNX_ATTR_TENSORS:
        ok = (a->tensors = tensors = kiln__onnx_alloc(s, count, sizeof *tensors)) != NULL;
        break;
    case KILN__ONNX_ATTR_GRAPHS: ok = (a->graphs = graphs = kiln__onnx_alloc(s, count, sizeof *graphs)) != NULL; break;
    case KILN__ONNX_ATTR_TYPE_PROTOS:
        ok = (a->type_protos = tps = kiln__onnx_alloc(s, count, sizeof *tps)) != NULL;
        break;
    default: break;
    }
    if (!ok) return KILN_OUT_OF_MEMORY;
    r = kiln__pb_sub(parent, f, "AttributeProto");
    int64_t n = 0;
    while (!kiln__pb_done(&r)) {
        kiln__pb_field e;
        KILN__TRY(kiln__pb_next(&r, &e));
        switch (e.number) {
        case A_T: {
            kiln__onnx_tensor *t = kiln__onnx_alloc(s, 1, sizeof *t);
            if (!t) return KILN_OUT_OF_MEMORY;
            KILN__TRY(kiln__onnx_decode_tensor(s, &r, &e, "tensor", 0, t));
            a->t = t;
            break;
        }
        case A_G: {
            kiln__onnx_graph *g = kiln__onnx_alloc(s, 1, sizeof *g);
            if (!g) return KILN_OUT_OF_MEMORY;
            KILN__TRY(kiln__onnx_decode_graph(s, &r, &e, depth + 1, g));
            a->g = g;
            break;
        }
        case A_TP: {
            kiln__onnx_type *tp = kiln__onnx_alloc(s, 1, sizeof *tp);
            if (!tp) return KILN_OUT_OF_MEMORY;
            KILN__TRY(kiln__onnx_decode_type(s, &r, &e, depth + 1, tp));
            a->tp = tp;
            break;
        }
        case A_FLOATS: {
            kiln__pb_scalars it;
            uint64_t v;
            kiln__pb_scalars_init(&it, &e, KILN__PB_I32);
            while (kiln__pb_scalars_next(&it, &v)) floats[n++] = kiln__pb_float(v);
            break;
        }
        case A_INTS: kiln__onnx_read_int64s(&e, ints, &n); break;
        case A_STRINGS: strings[n++] = (kiln__onnx_bytes){e.data, e.size}; break;
        case A_TENSORS:
            KILN__TRY(kiln__onnx_decode_tensor(s, &r, &e, "tensor", n, &tensors[n]));
            n++;
            break;
        case A_GRAPHS:
            KILN__TRY(kiln__onnx_decode_graph(s, &r, &e, depth + 1, &graphs[n]));
            n++;
            break;
        case A_TYPE_PROTOS:
            KILN__TRY(kiln__onnx_decode_type(s, &r, &e, depth + 1, &tps[n]));
            n++;
            break;
        default: break;
        }
    }
    a->count = n;
    return KILN_OK;
}

/* ---- getters ---- */

const kiln__onnx_attr *kiln__onnx_node_attr(const kiln__onnx_node *node, const char *name) {
    for (int32_t i = 0; i < node->nb_attrs; i++)
        if (!strcmp(node->attrs[i].name, name)) return &node->attrs[i];
    return NULL;
}

/* The attribute `name` if present with type `want`; NULL with KILN_OK when absent. */
static kiln_status find_typed(const kiln__onnx_node *node, const char *name, kiln__onnx_attr_type want,
                              const kiln__onnx_attr **out) {
    const kiln__onnx_attr *a = kiln__onnx_node_attr(node, name);
    *out = NULL;
    if (!a) return KILN_OK;
    if (a->type != want) {
        char label[256];
        kiln__onnx_node_label(node, -1, label, sizeof label);
        return kiln__error(KILN_INVALID_ARGUMENT, "%s: attribute '%s': expected %s, got %s", label, name,
                           kiln__onnx_attr_type_name(want), kiln__onnx_attr_type_name(a->type));
    }
    *out = a;
    return KILN_OK;
}

kiln_status kiln__onnx_attr_float(const kiln__onnx_node *node, const char *name, float *out) {
    const kiln__onnx_attr *a;
    KILN__TRY(find_typed(node, name, KILN__ONNX_ATTR_FLOAT, &a));
    if (a) *out = a->f;
    return KILN_OK;
}

kiln_status kiln__onnx_attr_int(const kiln__onnx_node *node, const char *name, int64_t *out) {
    const kiln__onnx_attr *a;
    KILN__TRY(find_typed(node, name, KILN__ONNX_ATTR_INT, &a));
    if (a) *out = a->i;
    return KILN_OK;
}

kiln_status kiln__onnx_attr_string(const kiln__onnx_node *node, const char *name, kiln__onnx_bytes *out) {
    const kiln__onnx_attr *a;
    KILN__TRY(find_typed(node, name, KILN__ONNX_ATTR_STRING, &a));
    if (a) *out = a->s;
    return KILN_OK;
}

kiln_status kiln__onnx_attr_floats(const kiln__onnx_node *node, const char *name, const float **out, int64_t *count) {
    const kiln__onnx_attr *a;
    KILN__TRY(find_typed(node, name, KILN__ONNX_ATTR_FLOATS, &a));
    if (a) {
        *out = a->floats;
        *count = a->count;
    }
    return KILN_OK;
}

kiln_status kiln__onnx_attr_ints(const kiln__onnx_node *node, const char *name, const int64_t **out, int64_t *count) {
    const kiln__onnx_attr *a;
    KILN__TRY(find_typed(node, name, KILN__ONNX_ATTR_INTS, &a));
    if (a) {
        *out = a->ints;
        *count = a->count;
    }
    return KILN_OK;
}

kiln_status kiln__onnx_attr_tensor(const kiln__onnx_node *node, const char *name, const kiln__onnx_tensor **out) {
    const kiln__onnx_attr *a;
    KILN__TRY(find_typed(node, name, KILN__ONNX_ATTR_TENSOR, &a));
    if (a) *out = a->t;
    return KILN_OK;
}

kiln_status kiln__onnx_attr_graph(const kiln__onnx_node *node, const char *name, const kiln__onnx_graph **out) {
    const kiln__onnx_attr *a;
    KILN__TRY(find_typed(node, name, KILN__ONNX_ATTR_GRAPH, &a));
    if (a) *out = a->g;
    return KILN_OK;
}
