/* Protobuf wire-format reader: walks the fields of one message in a byte buffer without
 * copying. Every read is bounds-checked against the message end; errors are recorded with
 * kiln__error and name the absolute offset in the whole buffer and the message type. */
#ifndef KILN_ONNX_PB_H
#define KILN_ONNX_PB_H

#include "core/core.h"

#include <string.h>

enum {
    KILN__PB_VARINT = 0,
    KILN__PB_I64 = 1,
    KILN__PB_LEN = 2,
    KILN__PB_SGROUP = 3,
    KILN__PB_EGROUP = 4,
    KILN__PB_I32 = 5
};

/* A cursor over one message. `start` is the first byte of the whole buffer, so offsets in
 * messages are file offsets; `msg` names the message type ("GraphProto") for errors. */
typedef struct kiln__pb {
    const uint8_t *start;
    const uint8_t *p;
    const uint8_t *end;
    const char *msg;
} kiln__pb;

/* One field as read by kiln__pb_next. */
typedef struct kiln__pb_field {
    uint32_t number;
    uint32_t wire;
    uint64_t value;      /* VARINT, I64, I32: the raw value (I32 zero-extended) */
    const uint8_t *data; /* LEN: the payload; SGROUP: the group's content (without end tag) */
    size_t size;
    size_t offset; /* file offset of the field's tag */
} kiln__pb_field;

void kiln__pb_init(kiln__pb *r, const uint8_t *start, const uint8_t *data, size_t size, const char *msg);
/* A cursor over the payload of a LEN field `f` read from `parent`. */
kiln__pb kiln__pb_sub(const kiln__pb *parent, const kiln__pb_field *f, const char *msg);
static inline bool kiln__pb_done(const kiln__pb *r) { return r->p >= r->end; }
/* File offset of the cursor. */
static inline size_t kiln__pb_offset(const kiln__pb *r) { return (size_t)(r->p - r->start); }

/* Reads the next field (tag and value). Unknown fields of every wire type, groups
 * included, are read whole so the caller can ignore them. */
kiln_status kiln__pb_next(kiln__pb *r, kiln__pb_field *f);

/* Refuses a known field `name` (e.g. "NodeProto.op_type") sent with another wire type. */
kiln_status kiln__pb_expect(const kiln__pb *r, const kiln__pb_field *f, uint32_t wire, const char *name);

/* Typed views of a VARINT field's value, refusing values out of range for the type. */
kiln_status kiln__pb_int64(const kiln__pb *r, const kiln__pb_field *f, const char *name, int64_t *out);
kiln_status kiln__pb_int32(const kiln__pb *r, const kiln__pb_field *f, const char *name, int32_t *out);
static inline int64_t kiln__pb_zigzag(uint64_t v) { return (int64_t)(v >> 1) ^ -(int64_t)(v & 1); }
static inline float kiln__pb_float(uint64_t bits32) {
    uint32_t b = (uint32_t)bits32;
    float f;
    memcpy(&f, &b, 4);
    return f;
}
static inline double kiln__pb_double(uint64_t bits64) {
    double d;
    memcpy(&d, &bits64, 8);
    return d;
}

/* Repeated scalars of element wire type VARINT, I32 or I64 arrive either packed (one LEN
 * field holding many values) or unpacked (one value per field); both are accepted. */
typedef struct kiln__pb_scalars {
    const uint8_t *p, *end;
    uint32_t elem_wire;
    bool single; /* unpacked: one value, in `value` */
    uint64_t value;
} kiln__pb_scalars;

/* Checks the field's wire type and every packed value, and counts the values. */
kiln_status kiln__pb_scalars_count(const kiln__pb *r, const kiln__pb_field *f, uint32_t elem_wire, const char *name,
                                   size_t *count);
/* Iterates over a field already checked by kiln__pb_scalars_count. */
void kiln__pb_scalars_init(kiln__pb_scalars *it, const kiln__pb_field *f, uint32_t elem_wire);
bool kiln__pb_scalars_next(kiln__pb_scalars *it, uint64_t *value);

#endif
