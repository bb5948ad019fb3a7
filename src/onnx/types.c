/* TypeProto, ValueInfoProto, and the test-data messages SequenceProto and OptionalProto. */
#include "onnx/decode.h"

#include <string.h>

static kiln_status decode_shape(kiln__onnx_store *s, const kiln__pb *parent, const kiln__pb_field *f,
                                kiln__onnx_type *type) {
    KILN__TRY(kiln__pb_expect(parent, f, KILN__PB_LEN, "TypeProto.Tensor.shape"));
    kiln__pb r = kiln__pb_sub(parent, f, "TensorShapeProto");
    size_t n = 0;
    while (!kiln__pb_done(&r)) {
        kiln__pb_field e;
        KILN__TRY(kiln__pb_next(&r, &e));
        if (e.number == 1) {
            KILN__TRY(kiln__pb_expect(&r, &e, KILN__PB_LEN, "TensorShapeProto.dim"));
            n++;
        }
    }
    if (n > INT32_MAX) return kiln__error(KILN_INVALID_ARGUMENT, "shape has %zu dims", n);
    kiln__onnx_dim *dims = kiln__onnx_alloc(s, n, sizeof *dims);
    if (!dims) return KILN_OUT_OF_MEMORY;
    r = kiln__pb_sub(parent, f, "TensorShapeProto");
    int32_t i = 0;
    while (!kiln__pb_done(&r)) {
        kiln__pb_field e;
        KILN__TRY(kiln__pb_next(&r, &e));
        if (e.number != 1) continue;
        kiln__onnx_dim *d = &dims[i++];
        d->value = -1;
        kiln__pb dr = kiln__pb_sub(&r, &e, "TensorShapeProto.Dimension");
        while (!kiln__pb_done(&dr)) {
            kiln__pb_field g;
            KILN__TRY(kiln__pb_next(&dr, &g));
            if (g.number == 1) {
                int64_t v;
                KILN__TRY(kiln__pb_int64(&dr, &g, "Dimension.dim_value", &v));
                d->value = v < 0 ? -1 : v; /* some exporters write -1 for "unknown" */
                d->param = NULL;
            } else if (g.number == 2) {
                KILN__TRY(kiln__onnx_string(s, &dr, &g, "Dimension.dim_param", &d->param));
                d->value = -1;
            }
        }
    }
    type->has_shape = true;
    type->rank = (int32_t)n;
    type->dims = dims;
    return KILN_OK;
}

static kiln_status decode_tensor_type(kiln__onnx_store *s, const kiln__pb *parent, const kiln__pb_field *f,
                                      kiln__onnx_type *type) {
    KILN__TRY(kiln__pb_expect(parent, f, KILN__PB_LEN, "TypeProto.tensor_type"));
    kiln__pb r = kiln__pb_sub(parent, f, "TypeProto.Tensor");
    type->kind = KILN__ONNX_TYPE_TENSOR;
    while (!kiln__pb_done(&r)) {
        kiln__pb_field e;
        KILN__TRY(kiln__pb_next(&r, &e));
        if (e.number == 1) KILN__TRY(kiln__pb_int32(&r, &e, "TypeProto.Tensor.elem_type", &type->elem_type));
        if (e.number == 2) KILN__TRY(decode_shape(s, &r, &e, type));
    }
    return KILN_OK;
}

/* Sequence and Optional both hold one TypeProto `elem_type` (field 1). */
static kiln_status decode_wrapper(kiln__onnx_store *s, const kiln__pb *parent, const kiln__pb_field *f, int depth,
                                  kiln__onnx_type_kind kind, kiln__onnx_type *type) {
    const char *what = kind == KILN__ONNX_TYPE_SEQUENCE ? "TypeProto.Sequence" : "TypeProto.Optional";
    KILN__TRY(kiln__pb_expect(parent, f, KILN__PB_LEN, what));
    kiln__pb r = kiln__pb_sub(parent, f, what);
    kiln__onnx_type *elem = kiln__onnx_alloc(s, 1, sizeof *elem);
    if (!elem) return KILN_OUT_OF_MEMORY;
    type->kind = kind;
    type->elem = elem;
    while (!kiln__pb_done(&r)) {
        kiln__pb_field e;
        KILN__TRY(kiln__pb_next(&r, &e));
        if (e.number == 1) KILN__TRY(kiln__onnx_decode_type(s, &r, &e, depth + 1, elem));
    }
    return KILN_OK;
}

kiln_status kiln__onnx_decode_type(kiln__onnx_store *s, const kiln__pb *parent, const kiln__pb_field *f, int depth,
                                   kiln__onnx_type *type) {
    memset(type, 0, sizeof *type);
    if (depth > KILN__ONNX_MAX_DEPTH)
        return kiln__error(KILN_INVALID_ARGUMENT, "types nested deeper than %d at offset %zu", KILN__ONNX_MAX_DEPTH,
                           f->offset);
    KILN__TRY(kiln__pb_expect(parent, f, KILN__PB_LEN, "type"));
    kiln__pb r = kiln__pb_sub(parent, f, "TypeProto");
    while (!kiln__pb_done(&r)) {
        kiln__pb_field e;
        KILN__TRY(kiln__pb_next(&r, &e));
        switch (e.number) {
        case 1: KILN__TRY(decode_tensor_type(s, &r, &e, type)); break;
        case 4: KILN__TRY(decode_wrapper(s, &r, &e, depth, KILN__ONNX_TYPE_SEQUENCE, type)); break;
        case 9: KILN__TRY(decode_wrapper(s, &r, &e, depth, KILN__ONNX_TYPE_OPTIONAL, type)); break;
        case 5: return kiln__error(KILN_UNSUPPORTED, "map types (TypeProto.map_type) are not supported");
        case 7: return kiln__error(KILN_UNSUPPORTED, "opaque types (TypeProto.opaque_type) are not supported");
        case 8:
            return kiln__error(KILN_UNSUPPORTED,
                               "sparse tensor types (TypeProto.sparse_tensor_type) are not supported");
        case 6: KILN__TRY(kiln__onnx_string(s, &r, &e, "TypeProto.denotation", &type->denotation)); break;
        default: break;
        }
    }
    return KILN_OK;
}

kiln_status kiln__onnx_decode_value_info(kiln__onnx_store *s, const kiln__pb *parent, const kiln__pb_field *f,
                                         const char *role, int64_t index, kiln__onnx_value_info *vi) {
    memset(vi, 0, sizeof *vi);
    vi->name = "";
    kiln_status st = kiln__pb_expect(parent, f, KILN__PB_LEN, role);
    kiln__pb r = kiln__pb_sub(parent, f, "ValueInfoProto");
    while (st == KILN_OK && !kiln__pb_done(&r)) {
        kiln__pb_field e;
        st = kiln__pb_next(&r, &e);
        if (st != KILN_OK) break;
        if (e.number == 1) st = kiln__onnx_string(s, &r, &e, "ValueInfoProto.name", &vi->name);
        if (e.number == 2) st = kiln__onnx_decode_type(s, &r, &e, 0, &vi->type);
    }
    if (st == KILN_OK) return KILN_OK;
    if (vi->name[0]) return kiln__error_prefix(st, "%s '%s'", role, vi->name);
    return kiln__error_prefix(st, "%s %lld", role, (long long)index);
}

kiln__onnx_value_kind kiln__onnx_value_kind_of(const kiln__onnx_type *type) {
    switch (type->kind) {
    case KILN__ONNX_TYPE_TENSOR: return KILN__ONNX_VALUE_TENSOR;
    case KILN__ONNX_TYPE_SEQUENCE: return KILN__ONNX_VALUE_SEQUENCE;
    case KILN__ONNX_TYPE_OPTIONAL: return KILN__ONNX_VALUE_OPTIONAL;
    case KILN__ONNX_TYPE_NONE: break;
    }
    return (kiln__onnx_value_kind)0;
}

/* SequenceProto / OptionalProto elem_type values. */
enum { V_TENSOR = 1, V_SPARSE_TENSOR = 2, V_SEQUENCE = 3, V_MAP = 4, V_OPTIONAL = 5 };

static kiln_status decode_value(kiln__onnx_store *s, const kiln__pb *parent, const kiln__pb_field *f, int depth,
                                kiln__onnx_value_kind kind, kiln__onnx_value *v);

static kiln_status decode_sequence(kiln__onnx_store *s, kiln__pb *r, const kiln__pb *parent, const kiln__pb_field *f,
                                   int depth, kiln__onnx_value *v) {
    size_t n = 0;
    while (!kiln__pb_done(r)) {
        kiln__pb_field e;
        KILN__TRY(kiln__pb_next(r, &e));
        switch (e.number) {
        case 1: KILN__TRY(kiln__onnx_string(s, r, &e, "SequenceProto.name", &v->name)); break;
        case 2: KILN__TRY(kiln__pb_int32(r, &e, "SequenceProto.elem_type", &v->elem_type)); break;
        case 3:
        case 5:
        case 7: n++; break;
        case 4: return kiln__error(KILN_UNSUPPORTED, "sequences of sparse tensors are not supported");
        case 6: return kiln__error(KILN_UNSUPPORTED, "sequences of maps are not supported");
        default: break;
        }
    }
    if (v->elem_type != V_TENSOR && v->elem_type != V_SEQUENCE && v->elem_type != V_OPTIONAL &&
        !(v->elem_type == 0 && n == 0))
        return kiln__error(KILN_UNSUPPORTED, "SequenceProto.elem_type %d is not supported", v->elem_type);
    uint32_t want = v->elem_type == V_TENSOR ? 3 : v->elem_type == V_SEQUENCE ? 5 : 7;
    kiln__onnx_value_kind item_kind = v->elem_type == V_TENSOR     ? KILN__ONNX_VALUE_TENSOR
                                      : v->elem_type == V_SEQUENCE ? KILN__ONNX_VALUE_SEQUENCE
                                                                   : KILN__ONNX_VALUE_OPTIONAL;
    kiln__onnx_value *items = kiln__onnx_alloc(s, n, sizeof *items);
    if (!items) return KILN_OUT_OF_MEMORY;
    kiln__pb r2 = kiln__pb_sub(parent, f, "SequenceProto");
    int64_t i = 0;
    while (!kiln__pb_done(&r2)) {
        kiln__pb_field e;
        KILN__TRY(kiln__pb_next(&r2, &e));
        if (e.number != 3 && e.number != 5 && e.number != 7) continue;
        if (e.number != want)
            return kiln__error(KILN_INVALID_ARGUMENT,
                               "SequenceProto field %u at offset %zu does not match elem_type %d", e.number, e.offset,
                               v->elem_type);
        kiln_status st = decode_value(s, &r2, &e, depth + 1, item_kind, &items[i]);
        if (st != KILN_OK) return kiln__error_prefix(st, "sequence element %lld", (long long)i);
        i++;
    }
    v->count = (int64_t)n;
    v->items = items;
    return KILN_OK;
}

static kiln_status decode_optional(kiln__onnx_store *s, kiln__pb *r, int depth, kiln__onnx_value *v) {
    while (!kiln__pb_done(r)) {
        kiln__pb_field e;
        KILN__TRY(kiln__pb_next(r, &e));
        switch (e.number) {
        case 1: KILN__TRY(kiln__onnx_string(s, r, &e, "OptionalProto.name", &v->name)); break;
        case 2: KILN__TRY(kiln__pb_int32(r, &e, "OptionalProto.elem_type", &v->elem_type)); break;
        case 3:
        case 5:
        case 7: {
            if (v->value)
                return kiln__error(KILN_INVALID_ARGUMENT, "OptionalProto holds more than one value (offset %zu)",
                                   e.offset);
            kiln__onnx_value *inner = kiln__onnx_alloc(s, 1, sizeof *inner);
            if (!inner) return KILN_OUT_OF_MEMORY;
            kiln__onnx_value_kind k = e.number == 3   ? KILN__ONNX_VALUE_TENSOR
                                      : e.number == 5 ? KILN__ONNX_VALUE_SEQUENCE
                                                      : KILN__ONNX_VALUE_OPTIONAL;
            KILN__TRY(decode_value(s, r, &e, depth + 1, k, inner));
            v->value = inner;
            break;
        }
        case 4: return kiln__error(KILN_UNSUPPORTED, "optional sparse tensors are not supported");
        case 6: return kiln__error(KILN_UNSUPPORTED, "optional maps are not supported");
        default: break;
        }
    }
    if (v->value) {
        int want = v->value->kind == KILN__ONNX_VALUE_TENSOR     ? V_TENSOR
                   : v->value->kind == KILN__ONNX_VALUE_SEQUENCE ? V_SEQUENCE
                                                                 : V_OPTIONAL;
        if (v->elem_type != want)
            return kiln__error(KILN_INVALID_ARGUMENT, "OptionalProto.elem_type %d does not match the value it holds",
                               v->elem_type);
    }
    return KILN_OK;
}

static kiln_status decode_value(kiln__onnx_store *s, const kiln__pb *parent, const kiln__pb_field *f, int depth,
                                kiln__onnx_value_kind kind, kiln__onnx_value *v) {
    memset(v, 0, sizeof *v);
    v->kind = kind;
    v->name = "";
    if (depth > KILN__ONNX_MAX_DEPTH)
        return kiln__error(KILN_INVALID_ARGUMENT, "values nested deeper than %d at offset %zu", KILN__ONNX_MAX_DEPTH,
                           f->offset);
    KILN__TRY(kiln__pb_expect(parent, f, KILN__PB_LEN, "value"));
    switch (kind) {
    case KILN__ONNX_VALUE_TENSOR: {
        kiln__onnx_tensor *t = kiln__onnx_alloc(s, 1, sizeof *t);
        if (!t) return KILN_OUT_OF_MEMORY;
        KILN__TRY(kiln__onnx_decode_tensor(s, parent, f, "tensor", 0, t));
        v->tensor = t;
        v->name = t->name;
        return KILN_OK;
    }
    case KILN__ONNX_VALUE_SEQUENCE: {
        kiln__pb r = kiln__pb_sub(parent, f, "SequenceProto");
        return decode_sequence(s, &r, parent, f, depth, v);
    }
    case KILN__ONNX_VALUE_OPTIONAL: {
        kiln__pb r = kiln__pb_sub(parent, f, "OptionalProto");
        return decode_optional(s, &r, depth, v);
    }
    }
    return kiln__error(KILN_INVALID_ARGUMENT, "unknown value kind %d", (int)kind);
}

kiln_status kiln__onnx_value_parse(const kiln__alloc *alloc, const void *data, size_t size, kiln__onnx_value_kind kind,
                                   kiln__onnx_value_file **out) {
    *out = NULL;
    kiln__onnx_store *s;
    KILN__TRY(kiln__onnx_store_new(alloc, NULL, &s));
    kiln__onnx_value_file *file = kiln__onnx_alloc(s, 1, sizeof *file);
    if (!file) {
        kiln__onnx_store_free(s);
        return KILN_OUT_OF_MEMORY;
    }
    file->store = s;
    /* The whole buffer is the payload of a pretend LEN field, so the message decoders apply. */
    kiln__pb top;
    kiln__pb_init(&top, data, data, size, "file");
    kiln__pb_field f = {.number = 0, .wire = KILN__PB_LEN, .data = data, .size = size, .offset = 0};
    kiln_status st = decode_value(s, &top, &f, 0, kind, &file->value);
    if (st != KILN_OK) {
        kiln__onnx_store_free(s);
        return st;
    }
    *out = file;
    return KILN_OK;
}

kiln_status kiln__onnx_value_load(const kiln__alloc *alloc, const char *path, kiln__onnx_value_kind kind,
                                  kiln__onnx_value_file **out) {
    *out = NULL;
    kiln__file_map map;
    KILN__TRY(kiln__map_file(path, &map));
    kiln__onnx_value_file *file;
    kiln_status st = kiln__onnx_value_parse(alloc, map.data, map.size, kind, &file);
    if (st != KILN_OK) {
        kiln__unmap_file(&map);
        return kiln__error_prefix(st, "%s", path);
    }
    file->store->map = map;
    *out = file;
    return KILN_OK;
}

void kiln__onnx_value_free(kiln__onnx_value_file *file) {
    if (file) kiln__onnx_store_free(file->store);
}
