/* A tiny protobuf encoder for the ONNX importer tests: the wire format (varints, length-delimited
 * and fixed32 fields, nested messages), the ONNX messages several tests write the same way, and
 * parsing a written model. Aborts when out of memory (tests only). */
#ifndef KILN_TEST_ONNX_WRITER_H
#define KILN_TEST_ONNX_WRITER_H

#include "kiln.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct pb {
    uint8_t *data;
    size_t size, cap;
} pb;

static inline void pb_bytes(pb *b, const void *data, size_t n) {
    if (b->size + n > b->cap) {
        b->cap = (b->size + n) * 2 + 64;
        b->data = realloc(b->data, b->cap);
        if (!b->data) abort();
    }
    if (n) memcpy(b->data + b->size, data, n);
    b->size += n;
}

static inline void pb_varint(pb *b, uint64_t v) {
    uint8_t buf[10];
    size_t n = 0;
    do {
        buf[n] = (uint8_t)(v & 0x7f);
        v >>= 7;
        if (v) buf[n] |= 0x80;
        n++;
    } while (v);
    pb_bytes(b, buf, n);
}

static inline void pb_int(pb *b, uint32_t field, int64_t v) {
    pb_varint(b, (uint64_t)field << 3);
    pb_varint(b, (uint64_t)v);
}

static inline void pb_len(pb *b, uint32_t field, const void *data, size_t n) {
    pb_varint(b, ((uint64_t)field << 3) | 2);
    pb_varint(b, n);
    pb_bytes(b, data, n);
}

static inline void pb_str(pb *b, uint32_t field, const char *s) { pb_len(b, field, s, strlen(s)); }

static inline void pb_float(pb *b, uint32_t field, float f) {
    pb_varint(b, ((uint64_t)field << 3) | 5);
    pb_bytes(b, &f, 4);
}

/* Appends sub as a length-delimited field and frees it. */
static inline void pb_msg(pb *b, uint32_t field, pb *sub) {
    pb_len(b, field, sub->data, sub->size);
    free(sub->data);
    memset(sub, 0, sizeof *sub);
}

/* TensorProto with raw data (name NULL: none) as field `field` of out (GraphProto 5: an
 * initializer). */
static inline void pb_tensor(pb *out, uint32_t field, const char *name, int dtype, const int64_t *dims, int rank,
                             const void *raw, size_t bytes) {
    pb t = {0};
    for (int i = 0; i < rank; i++) pb_int(&t, 1, dims[i]);
    pb_int(&t, 2, dtype);
    if (name) pb_str(&t, 8, name);
    pb_len(&t, 9, raw, bytes);
    pb_msg(out, field, &t);
}

/* ValueInfoProto of a tensor as field `field` of out (GraphProto 11: input, 12: output); dims < 0
 * are written as dim_param names from `params` (NULL: unnamed). */
static inline void pb_value_info(pb *out, uint32_t field, const char *name, int dtype, const int64_t *dims, int rank,
                                 const char *const *params) {
    pb shape = {0};
    for (int i = 0; i < rank; i++) {
        pb dim = {0};
        if (dims[i] >= 0) pb_int(&dim, 1, dims[i]);
        else if (params && params[i]) pb_str(&dim, 2, params[i]);
        pb_msg(&shape, 1, &dim);
    }
    pb tt = {0};
    pb_int(&tt, 1, dtype);
    pb_msg(&tt, 2, &shape);
    pb type = {0};
    pb_msg(&type, 1, &tt);
    pb vi = {0};
    pb_str(&vi, 1, name);
    pb_msg(&vi, 2, &type);
    pb_msg(out, field, &vi);
}

/* ModelProto around graph (consumed, named "g"), importing `opset` of the default domain (and
 * of `domain`, when given, version 1). */
static inline pb pb_model(pb *graph, int64_t opset, const char *domain) {
    pb m = {0};
    pb_int(&m, 1, 8);
    pb o = {0};
    pb_str(&o, 1, "");
    pb_int(&o, 2, opset);
    pb_msg(&m, 8, &o);
    if (domain) {
        pb_str(&o, 1, domain);
        pb_int(&o, 2, 1);
        pb_msg(&m, 8, &o);
    }
    pb_str(graph, 2, "g");
    pb_msg(&m, 7, graph);
    return m;
}

/* Parses model m (consumed) with kiln_onnx_parse. */
static inline kiln_status pb_parse(kiln_builder *b, pb *m, kiln_network **net) {
    kiln_status st = kiln_onnx_parse(b, m->data, m->size, NULL, net);
    free(m->data);
    return st;
}

/* Whether message s holds part; says which when not. */
static inline bool msg_contains(const char *s, const char *part) {
    if (!strstr(s, part)) {
        fprintf(stderr, "message '%s' lacks '%s'\n", s, part);
        return false;
    }
    return true;
}

#endif
