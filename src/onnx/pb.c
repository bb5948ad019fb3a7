#include "onnx/pb.h"

/* Nesting limit for groups inside unknown fields (a group holds fields, groups included). */
#define PB_MAX_GROUP_DEPTH 64

static const char *wire_name(uint32_t wire) {
    switch (wire) {
    case KILN__PB_VARINT: return "varint";
    case KILN__PB_I64: return "fixed64";
    case KILN__PB_LEN: return "length-delimited";
    case KILN__PB_SGROUP: return "start-group";
    case KILN__PB_EGROUP: return "end-group";
    case KILN__PB_I32: return "fixed32";
    }
    return "invalid";
}

void kiln__pb_init(kiln__pb *r, const uint8_t *start, const uint8_t *data, size_t size, const char *msg) {
    static const uint8_t empty[1];
    if (!data) { /* an empty file maps to NULL; pointer arithmetic on NULL is undefined */
        data = empty;
        size = 0;
    }
    if (!start) start = data;
    r->start = start;
    r->p = data;
    r->end = data + size;
    r->msg = msg;
}

kiln__pb kiln__pb_sub(const kiln__pb *parent, const kiln__pb_field *f, const char *msg) {
    kiln__pb r;
    kiln__pb_init(&r, parent->start, f->data, f->size, msg);
    return r;
}

static size_t offset_of(const kiln__pb *r, const uint8_t *p) { return (size_t)(p - r->start); }

/* Decodes one varint at *pp; on success advances *pp. */
static kiln_status read_varint(const kiln__pb *r, const uint8_t **pp, uint64_t *out) {
    const uint8_t *p = *pp;
    uint64_t v = 0;
    for (int i = 0; i < 10; i++) {
        if (p >= r->end)
            return kiln__error(KILN_INVALID_ARGUMENT,
                               "truncated protobuf at offset %zu in %s (varint runs past the end)", offset_of(r, *pp),
                               r->msg);
        uint8_t b = *p++;
        if (i == 9 && b > 1)
            return kiln__error(KILN_INVALID_ARGUMENT, "bad varint at offset %zu in %s: %s", offset_of(r, *pp), r->msg,
                               b & 0x80 ? "longer than 10 bytes" : "overflows 64 bits");
        v |= (uint64_t)(b & 0x7f) << (7 * i);
        if (!(b & 0x80)) {
            *out = v;
            *pp = p;
            return KILN_OK;
        }
    }
    return KILN_INTERNAL_ERROR; /* not reached: the tenth byte always ends the loop */
}

static kiln_status read_fixed(const kiln__pb *r, const uint8_t **pp, size_t n, uint64_t *out) {
    if ((size_t)(r->end - *pp) < n)
        return kiln__error(KILN_INVALID_ARGUMENT,
                           "truncated protobuf at offset %zu in %s (%zu-byte value, %zu bytes left)", offset_of(r, *pp),
                           r->msg, n, (size_t)(r->end - *pp));
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++) v |= (uint64_t)(*pp)[i] << (8 * i);
    *pp += n;
    *out = v;
    return KILN_OK;
}

/* Reads a tag at *pp: the field number must be 1..2^29-1 and the wire type known. */
static kiln_status read_tag(const kiln__pb *r, const uint8_t **pp, uint32_t *number, uint32_t *wire) {
    const uint8_t *at = *pp;
    uint64_t tag;
    KILN__TRY(read_varint(r, pp, &tag));
    *wire = (uint32_t)(tag & 7);
    if (tag >> 3 == 0 || tag >> 3 > 0x1fffffff)
        return kiln__error(KILN_INVALID_ARGUMENT, "bad field number %llu at offset %zu in %s",
                           (unsigned long long)(tag >> 3), offset_of(r, at), r->msg);
    if (*wire > KILN__PB_I32)
        return kiln__error(KILN_INVALID_ARGUMENT, "invalid wire type %u at offset %zu in %s", *wire, offset_of(r, at),
                           r->msg);
    *number = (uint32_t)(tag >> 3);
    return KILN_OK;
}

static kiln_status read_len(const kiln__pb *r, const uint8_t **pp, const uint8_t **data, size_t *size) {
    const uint8_t *at = *pp;
    uint64_t len;
    KILN__TRY(read_varint(r, pp, &len));
    size_t left = (size_t)(r->end - *pp);
    if (len > left)
        return kiln__error(KILN_INVALID_ARGUMENT,
                           "truncated protobuf at offset %zu in %s: length %llu runs past the end (%zu bytes left)",
                           offset_of(r, at), r->msg, (unsigned long long)len, left);
    *data = *pp;
    *size = (size_t)len;
    *pp += len;
    return KILN_OK;
}

/* Skips the content of a group whose start tag (field `number`) was just read, up to and
 * including its matching end tag; nested groups are tracked on a small stack. */
static kiln_status skip_group(const kiln__pb *r, const uint8_t **pp, uint32_t number, const uint8_t **content_end) {
    uint32_t stack[PB_MAX_GROUP_DEPTH];
    int depth = 0;
    stack[depth++] = number;
    const uint8_t *group_at = *pp;
    while (depth > 0) {
        if (*pp >= r->end)
            return kiln__error(KILN_INVALID_ARGUMENT,
                               "truncated protobuf at offset %zu in %s: group (field %u) has no end",
                               offset_of(r, group_at), r->msg, number);
        const uint8_t *tag_at = *pp;
        uint32_t n = 0, wire = 0;
        uint64_t v;
        const uint8_t *d;
        size_t s;
        KILN__TRY(read_tag(r, pp, &n, &wire));
        switch (wire) {
        case KILN__PB_VARINT: KILN__TRY(read_varint(r, pp, &v)); break;
        case KILN__PB_I64: KILN__TRY(read_fixed(r, pp, 8, &v)); break;
        case KILN__PB_I32: KILN__TRY(read_fixed(r, pp, 4, &v)); break;
        case KILN__PB_LEN: KILN__TRY(read_len(r, pp, &d, &s)); break;
        case KILN__PB_SGROUP:
            if (depth == PB_MAX_GROUP_DEPTH)
                return kiln__error(KILN_INVALID_ARGUMENT, "groups nested deeper than %d at offset %zu in %s",
                                   PB_MAX_GROUP_DEPTH, offset_of(r, tag_at), r->msg);
            stack[depth++] = n;
            break;
        case KILN__PB_EGROUP:
            if (stack[depth - 1] != n)
                return kiln__error(KILN_INVALID_ARGUMENT, "end-group for field %u at offset %zu in %s closes group %u",
                                   n, offset_of(r, tag_at), r->msg, stack[depth - 1]);
            if (--depth == 0) *content_end = tag_at;
            break;
        }
    }
    return KILN_OK;
}

kiln_status kiln__pb_next(kiln__pb *r, kiln__pb_field *f) {
    memset(f, 0, sizeof *f);
    f->offset = kiln__pb_offset(r);
    const uint8_t *p = r->p;
    KILN__TRY(read_tag(r, &p, &f->number, &f->wire));
    switch (f->wire) {
    case KILN__PB_VARINT: KILN__TRY(read_varint(r, &p, &f->value)); break;
    case KILN__PB_I64: KILN__TRY(read_fixed(r, &p, 8, &f->value)); break;
    case KILN__PB_I32: KILN__TRY(read_fixed(r, &p, 4, &f->value)); break;
    case KILN__PB_LEN: KILN__TRY(read_len(r, &p, &f->data, &f->size)); break;
    case KILN__PB_SGROUP: {
        const uint8_t *content = p, *content_end = p;
        KILN__TRY(skip_group(r, &p, f->number, &content_end));
        f->data = content;
        f->size = (size_t)(content_end - content);
        break;
    }
    case KILN__PB_EGROUP:
        return kiln__error(KILN_INVALID_ARGUMENT, "end-group (field %u) without a start at offset %zu in %s", f->number,
                           f->offset, r->msg);
    }
    r->p = p;
    return KILN_OK;
}

kiln_status kiln__pb_expect(const kiln__pb *r, const kiln__pb_field *f, uint32_t wire, const char *name) {
    if (f->wire == wire) return KILN_OK;
    return kiln__error(KILN_INVALID_ARGUMENT, "%s (field %u) at offset %zu in %s has wire type %s, expected %s", name,
                       f->number, f->offset, r->msg, wire_name(f->wire), wire_name(wire));
}

kiln_status kiln__pb_int64(const kiln__pb *r, const kiln__pb_field *f, const char *name, int64_t *out) {
    KILN__TRY(kiln__pb_expect(r, f, KILN__PB_VARINT, name));
    *out = (int64_t)f->value;
    return KILN_OK;
}

kiln_status kiln__pb_int32(const kiln__pb *r, const kiln__pb_field *f, const char *name, int32_t *out) {
    int64_t v;
    KILN__TRY(kiln__pb_int64(r, f, name, &v));
    if (v < INT32_MIN || v > INT32_MAX)
        return kiln__error(KILN_INVALID_ARGUMENT, "%s at offset %zu in %s: %lld does not fit in int32", name, f->offset,
                           r->msg, (long long)v);
    *out = (int32_t)v;
    return KILN_OK;
}

kiln_status kiln__pb_scalars_count(const kiln__pb *r, const kiln__pb_field *f, uint32_t elem_wire, const char *name,
                                   size_t *count) {
    if (f->wire == elem_wire) {
        *count = 1;
        return KILN_OK;
    }
    if (f->wire != KILN__PB_LEN)
        return kiln__error(KILN_INVALID_ARGUMENT,
                           "%s (field %u) at offset %zu in %s has wire type %s, expected %s or packed", name, f->number,
                           f->offset, r->msg, wire_name(f->wire), wire_name(elem_wire));
    if (elem_wire == KILN__PB_I32 || elem_wire == KILN__PB_I64) {
        size_t width = elem_wire == KILN__PB_I32 ? 4 : 8;
        if (f->size % width)
            return kiln__error(KILN_INVALID_ARGUMENT,
                               "%s (field %u) at offset %zu in %s: packed %s has %zu bytes, not a multiple of %zu",
                               name, f->number, f->offset, r->msg, wire_name(elem_wire), f->size, width);
        *count = f->size / width;
        return KILN_OK;
    }
    /* Packed varints: walk them all so later iteration needs no checks. */
    kiln__pb sub = kiln__pb_sub(r, f, r->msg);
    size_t n = 0;
    while (!kiln__pb_done(&sub)) {
        uint64_t v;
        kiln_status st = read_varint(&sub, &sub.p, &v);
        if (st != KILN_OK) return kiln__error_prefix(st, "%s (field %u)", name, f->number);
        n++;
    }
    *count = n;
    return KILN_OK;
}

void kiln__pb_scalars_init(kiln__pb_scalars *it, const kiln__pb_field *f, uint32_t elem_wire) {
    it->elem_wire = elem_wire;
    it->single = f->wire == elem_wire;
    it->value = f->value;
    it->p = f->data;
    it->end = f->wire == KILN__PB_LEN ? f->data + f->size : f->data;
}

bool kiln__pb_scalars_next(kiln__pb_scalars *it, uint64_t *value) {
    if (it->single) {
        it->single = false;
        it->p = it->end; /* a single value is the only one */
        *value = it->value;
        return true;
    }
    if (it->p >= it->end) return false;
    uint64_t v = 0;
    if (it->elem_wire == KILN__PB_VARINT) {
        for (int i = 0; it->p < it->end; i++) {
            uint8_t b = *it->p++;
            v |= (uint64_t)(b & 0x7f) << (7 * i);
            if (!(b & 0x80)) break;
        }
    } else {
        size_t width = it->elem_wire == KILN__PB_I32 ? 4 : 8;
        for (size_t i = 0; i < width; i++) v |= (uint64_t)it->p[i] << (8 * i);
        it->p += width;
    }
    *value = v;
    return true;
}
