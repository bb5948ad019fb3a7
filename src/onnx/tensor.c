/* TensorProto: decoding, size checks, external data, and element data in dtype layout. */
#include "onnx/decode.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum {
    T_DIMS = 1,
    T_DATA_TYPE = 2,
    T_SEGMENT = 3,
    T_FLOAT_DATA = 4,
    T_INT32_DATA = 5,
    T_STRING_DATA = 6,
    T_INT64_DATA = 7,
    T_NAME = 8,
    T_RAW_DATA = 9,
    T_DOUBLE_DATA = 10,
    T_UINT64_DATA = 11,
    T_EXTERNAL_DATA = 13,
    T_DATA_LOCATION = 14
};

static uint32_t onnx_type_bits(int32_t data_type) {
    switch (data_type) {
    case KILN__ONNX_COMPLEX64: return 64;
    case KILN__ONNX_COMPLEX128: return 128;
    case KILN__ONNX_FLOAT6E2M3:
    case KILN__ONNX_FLOAT6E3M2: return 6;
    default: return data_type > 0 && data_type <= KILN_INT2 ? kiln_dtype_bits((kiln_dtype)data_type) : 0;
    }
}

static const char *onnx_type_name(int32_t data_type) {
    switch (data_type) {
    case KILN__ONNX_COMPLEX64: return "complex64";
    case KILN__ONNX_COMPLEX128: return "complex128";
    case KILN__ONNX_FLOAT6E2M3: return "float6e2m3";
    case KILN__ONNX_FLOAT6E3M2: return "float6e3m2";
    default: return data_type > 0 && data_type <= KILN_INT2 ? kiln_dtype_name((kiln_dtype)data_type) : "undefined";
    }
}

bool kiln__onnx_type_bytes(int32_t data_type, int64_t count, size_t *bytes) {
    uint32_t bits = onnx_type_bits(data_type);
    if (!bits || count < 0 || (uint64_t)count > (SIZE_MAX - 7) / bits) return false;
    *bytes = ((size_t)count * bits + 7) / 8;
    return true;
}

void kiln__onnx_tensor_format(const kiln__onnx_tensor *t, char *buf, size_t size) {
    if (!size) return;
    size_t n = (size_t)snprintf(buf, size, "%s[", onnx_type_name(t->data_type));
    for (int32_t i = 0; i < t->nb_dims && n < size; i++)
        n += (size_t)snprintf(buf + n, size - n, i ? ",%lld" : "%lld", (long long)t->dims[i]);
    if (n < size) snprintf(buf + n, size - n, "]");
}

static const char *field_name(uint32_t field) {
    switch (field) {
    case T_FLOAT_DATA: return "float_data";
    case T_INT32_DATA: return "int32_data";
    case T_STRING_DATA: return "string_data";
    case T_INT64_DATA: return "int64_data";
    case T_DOUBLE_DATA: return "double_data";
    case T_UINT64_DATA: return "uint64_data";
    case T_RAW_DATA: return "raw_data";
    }
    return "?";
}

static uint32_t field_wire(uint32_t field) {
    switch (field) {
    case T_FLOAT_DATA: return KILN__PB_I32;
    case T_DOUBLE_DATA: return KILN__PB_I64;
    default: return KILN__PB_VARINT;
    }
}

/* The typed field ONNX stores `data_type` in (0 for STRING/UNDEFINED/unknown). */
static uint32_t typed_field_for(int32_t data_type) {
    switch (data_type) {
    case KILN_FLOAT32:
    case KILN__ONNX_COMPLEX64: return T_FLOAT_DATA;
    case KILN_FLOAT64:
    case KILN__ONNX_COMPLEX128: return T_DOUBLE_DATA;
    case KILN_INT64: return T_INT64_DATA;
    case KILN_UINT32:
    case KILN_UINT64: return T_UINT64_DATA;
    case KILN_STRING: return 0;
    default: return onnx_type_bits(data_type) ? T_INT32_DATA : 0;
    }
}

/* Number of typed values that hold `count` elements of data_type. */
static int64_t typed_values_for(int32_t data_type, int64_t count) {
    uint32_t bits = onnx_type_bits(data_type);
    if (data_type == KILN__ONNX_COMPLEX64 || data_type == KILN__ONNX_COMPLEX128) return count * 2;
    if (bits == 4) return (count + 1) / 2; /* one int32 holds one packed byte */
    if (bits == 2) return (count + 3) / 4;
    return count;
}

/* The key/value of one external_data entry, applied to t. */
static kiln_status decode_external_entry(kiln__onnx_store *s, const kiln__pb *parent, const kiln__pb_field *f,
                                         kiln__onnx_tensor *t) {
    KILN__TRY(kiln__pb_expect(parent, f, KILN__PB_LEN, "TensorProto.external_data"));
    kiln__pb r = kiln__pb_sub(parent, f, "StringStringEntryProto");
    const char *key = "", *value = "";
    while (!kiln__pb_done(&r)) {
        kiln__pb_field e;
        KILN__TRY(kiln__pb_next(&r, &e));
        if (e.number == 1) KILN__TRY(kiln__onnx_string(s, &r, &e, "StringStringEntryProto.key", &key));
        if (e.number == 2) KILN__TRY(kiln__onnx_string(s, &r, &e, "StringStringEntryProto.value", &value));
    }
    if (!strcmp(key, "location")) {
        t->location = value;
    } else if (!strcmp(key, "offset") || !strcmp(key, "length")) {
        char *end;
        long long v = strtoll(value, &end, 10);
        if (!*value || *end || v < 0 || (v == LLONG_MAX))
            return kiln__error(KILN_INVALID_ARGUMENT, "external_data %s '%s' is not a non-negative integer", key,
                               value);
        if (key[0] == 'o')
            t->ext_offset = v;
        else
            t->ext_length = v;
    }
    return KILN_OK;
}

static kiln_status resolve_external(kiln__onnx_store *s, kiln__onnx_tensor *t, size_t expected, const char *shape) {
    if (!t->location) return kiln__error(KILN_INVALID_ARGUMENT, "external data has no 'location'");
    const uint8_t *data;
    size_t size;
    KILN__TRY(kiln__onnx_store_external(s, t->location, &data, &size));
    if ((uint64_t)t->ext_offset > size)
        return kiln__error(KILN_INVALID_ARGUMENT, "external data offset %lld is past the end of '%s' (%zu bytes)",
                           (long long)t->ext_offset, t->location, size);
    size_t avail = size - (size_t)t->ext_offset;
    size_t len = t->ext_length < 0 ? avail : (size_t)t->ext_length;
    if (t->ext_length >= 0 && (uint64_t)t->ext_length > avail)
        return kiln__error(KILN_INVALID_ARGUMENT, "external data [%lld, +%lld) runs past the end of '%s' (%zu bytes)",
                           (long long)t->ext_offset, (long long)t->ext_length, t->location, size);
    if (len != expected)
        return kiln__error(KILN_INVALID_ARGUMENT, "external data in '%s' has %zu bytes, expected %zu for %s",
                           t->location, len, expected, shape);
    t->raw = data ? data + t->ext_offset : NULL;
    t->raw_size = len;
    return KILN_OK;
}

static kiln_status decode_tensor(kiln__onnx_store *s, const kiln__pb *parent, const kiln__pb_field *f,
                                 kiln__onnx_tensor *t) {
    KILN__TRY(kiln__pb_expect(parent, f, KILN__PB_LEN, "tensor"));
    kiln__pb r = kiln__pb_sub(parent, f, "TensorProto");
    memset(t, 0, sizeof *t);
    t->name = "";
    t->ext_length = -1;
    t->msg = f->data;
    t->msg_size = f->size;
    size_t nb_dims = 0, nb_strings = 0, typed_count = 0;
    bool has_raw = false;
    int32_t location = 0;
    const char *typed_name = NULL;
    /* Pass 1: scalars, names and counts of repeated fields. */
    while (!kiln__pb_done(&r)) {
        kiln__pb_field e;
        size_t n;
        KILN__TRY(kiln__pb_next(&r, &e));
        switch (e.number) {
        case T_DIMS:
            KILN__TRY(kiln__pb_scalars_count(&r, &e, KILN__PB_VARINT, "TensorProto.dims", &n));
            nb_dims += n;
            break;
        case T_DATA_TYPE: KILN__TRY(kiln__pb_int32(&r, &e, "TensorProto.data_type", &t->data_type)); break;
        case T_SEGMENT:
            return kiln__error(KILN_UNSUPPORTED, "segmented tensors (TensorProto.segment) are not supported");
        case T_FLOAT_DATA:
        case T_INT32_DATA:
        case T_INT64_DATA:
        case T_DOUBLE_DATA:
        case T_UINT64_DATA:
            if (t->typed_field && t->typed_field != e.number)
                return kiln__error(KILN_INVALID_ARGUMENT, "has both %s and %s", typed_name, field_name(e.number));
            KILN__TRY(kiln__pb_scalars_count(&r, &e, field_wire(e.number), field_name(e.number), &n));
            t->typed_field = e.number;
            typed_name = field_name(e.number);
            typed_count += n;
            break;
        case T_STRING_DATA:
            KILN__TRY(kiln__pb_expect(&r, &e, KILN__PB_LEN, "TensorProto.string_data"));
            nb_strings++;
            break;
        case T_NAME: KILN__TRY(kiln__onnx_string(s, &r, &e, "TensorProto.name", &t->name)); break;
        case T_RAW_DATA:
            KILN__TRY(kiln__pb_expect(&r, &e, KILN__PB_LEN, "TensorProto.raw_data"));
            has_raw = true;
            t->raw = e.data;
            t->raw_size = e.size;
            break;
        case T_EXTERNAL_DATA: KILN__TRY(decode_external_entry(s, &r, &e, t)); break;
        case T_DATA_LOCATION:
            KILN__TRY(kiln__pb_int32(&r, &e, "TensorProto.data_location", &location));
            if (location != 0 && location != 1)
                return kiln__error(KILN_INVALID_ARGUMENT, "data_location %d is neither DEFAULT (0) nor EXTERNAL (1)",
                                   location);
            break;
        default: break;
        }
    }
    if (nb_dims > INT32_MAX) return kiln__error(KILN_INVALID_ARGUMENT, "has %zu dims", nb_dims);
    int64_t *dims = kiln__onnx_alloc(s, nb_dims, sizeof *dims);
    kiln__onnx_bytes *strings = kiln__onnx_alloc(s, nb_strings, sizeof *strings);
    if (!dims || !strings) return KILN_OUT_OF_MEMORY;
    /* Pass 2: repeated fields; the message is known to be well formed. */
    int64_t nd = 0, ns = 0;
    r = kiln__pb_sub(parent, f, "TensorProto");
    while (!kiln__pb_done(&r)) {
        kiln__pb_field e;
        KILN__TRY(kiln__pb_next(&r, &e));
        if (e.number == T_DIMS) kiln__onnx_read_int64s(&e, dims, &nd);
        if (e.number == T_STRING_DATA) strings[ns++] = (kiln__onnx_bytes){e.data, e.size};
    }
    t->nb_dims = (int32_t)nb_dims;
    t->dims = dims;
    t->strings = strings;
    t->dtype = t->data_type > 0 && t->data_type <= KILN_INT2 && kiln__dtype_valid((kiln_dtype)t->data_type)
                   ? (kiln_dtype)t->data_type
                   : KILN_DTYPE_UNDEFINED;

    t->count = 1;
    for (int32_t i = 0; i < t->nb_dims; i++) {
        if (dims[i] < 0) return kiln__error(KILN_INVALID_ARGUMENT, "dim %d is negative (%lld)", i, (long long)dims[i]);
        if (dims[i] && t->count > INT64_MAX / dims[i])
            return kiln__error(KILN_INVALID_ARGUMENT, "element count overflows (dims has %d entries)", t->nb_dims);
        t->count *= dims[i];
    }
    char shape[160];
    kiln__onnx_tensor_format(t, shape, sizeof shape);
    if (t->data_type == 0) return kiln__error(KILN_INVALID_ARGUMENT, "data_type is UNDEFINED");
    bool is_string = t->data_type == KILN_STRING;
    size_t expected = 0;
    if (!is_string && !kiln__onnx_type_bytes(t->data_type, t->count, &expected)) {
        if (!onnx_type_bits(t->data_type))
            return kiln__error(KILN_UNSUPPORTED, "unsupported data_type %d", t->data_type);
        return kiln__error(KILN_INVALID_ARGUMENT, "byte size of %s overflows", shape);
    }
    if (location == 1) {
        if (has_raw || t->typed_field || nb_strings)
            return kiln__error(KILN_INVALID_ARGUMENT, "data_location is EXTERNAL but the tensor also holds %s",
                               has_raw      ? "raw_data"
                               : nb_strings ? "string_data"
                                            : typed_name);
        if (is_string) return kiln__error(KILN_INVALID_ARGUMENT, "string tensors cannot use external data");
        t->source = KILN__ONNX_DATA_EXTERNAL;
        return resolve_external(s, t, expected, shape);
    }
    if (t->location) return kiln__error(KILN_INVALID_ARGUMENT, "has external_data but data_location is not EXTERNAL");
    int nb_sources = has_raw + (t->typed_field != 0) + (nb_strings != 0);
    if (nb_sources > 1)
        return kiln__error(KILN_INVALID_ARGUMENT, "has both %s and %s", has_raw ? "raw_data" : typed_name,
                           nb_strings ? "string_data" : typed_name);
    if (is_string) {
        if (has_raw || t->typed_field)
            return kiln__error(KILN_INVALID_ARGUMENT, "string tensor stores %s, expected string_data",
                               has_raw ? "raw_data" : typed_name);
        if ((int64_t)nb_strings != t->count)
            return kiln__error(KILN_INVALID_ARGUMENT, "string_data has %zu elements, expected %lld for %s", nb_strings,
                               (long long)t->count, shape);
        t->source = t->count ? KILN__ONNX_DATA_STRINGS : KILN__ONNX_DATA_NONE;
        return KILN_OK;
    }
    if (nb_strings) return kiln__error(KILN_INVALID_ARGUMENT, "string_data used for %s", shape);
    if (has_raw) {
        if (t->raw_size != expected)
            return kiln__error(KILN_INVALID_ARGUMENT, "raw_data has %zu bytes, expected %zu for %s", t->raw_size,
                               expected, shape);
        t->source = KILN__ONNX_DATA_RAW;
        return KILN_OK;
    }
    if (t->typed_field) {
        if (t->typed_field != typed_field_for(t->data_type))
            return kiln__error(KILN_INVALID_ARGUMENT, "%s cannot hold %s", typed_name, shape);
        int64_t want = typed_values_for(t->data_type, t->count);
        if ((int64_t)typed_count != want)
            return kiln__error(KILN_INVALID_ARGUMENT, "%s has %zu values, expected %lld for %s", typed_name,
                               typed_count, (long long)want, shape);
        t->source = KILN__ONNX_DATA_TYPED;
        return KILN_OK;
    }
    if (t->count != 0) return kiln__error(KILN_INVALID_ARGUMENT, "has no data for %s", shape);
    return KILN_OK;
}

kiln_status kiln__onnx_decode_tensor(kiln__onnx_store *s, const kiln__pb *parent, const kiln__pb_field *f,
                                     const char *role, int64_t index, kiln__onnx_tensor *t) {
    kiln_status st = decode_tensor(s, parent, f, t);
    if (st == KILN_OK) return KILN_OK;
    if (t->name && t->name[0]) return kiln__error_prefix(st, "%s '%s'", role, t->name);
    return kiln__error_prefix(st, "%s %lld", role, (long long)index);
}

kiln_status kiln__onnx_tensor_data(const kiln__alloc *alloc, const kiln__onnx_tensor *t, kiln__onnx_data *out) {
    memset(out, 0, sizeof *out);
    char shape[160];
    kiln__onnx_tensor_format(t, shape, sizeof shape);
    size_t bytes;
    if (t->source == KILN__ONNX_DATA_STRINGS || !kiln__onnx_type_bytes(t->data_type, t->count, &bytes))
        return kiln__error(KILN_UNSUPPORTED, "tensor '%s': %s has no fixed-size element layout%s", t->name, shape,
                           t->data_type == KILN_STRING ? " (its elements are in `strings`)" : "");
    switch (t->source) {
    case KILN__ONNX_DATA_NONE: return KILN_OK;
    case KILN__ONNX_DATA_RAW:
    case KILN__ONNX_DATA_EXTERNAL:
        out->data = t->raw;
        out->size = t->raw_size;
        return KILN_OK;
    default: break;
    }
    uint8_t *buf = kiln__calloc(alloc, 1, bytes);
    if (!buf) return KILN_OUT_OF_MEMORY;
    uint32_t bits = onnx_type_bits(t->data_type);
    /* Bytes written per typed value: one packed byte for 2/4-bit types (an int32 holds it);
     * 6-bit values go into an LSB-first bitstream. */
    size_t width = t->typed_field == T_FLOAT_DATA                                      ? 4
                   : t->typed_field == T_DOUBLE_DATA || t->typed_field == T_INT64_DATA ? 8
                   : bits < 8                                                          ? 1
                                                                                       : bits / 8;
    kiln__pb r;
    kiln__pb_init(&r, t->msg, t->msg, t->msg_size, "TensorProto");
    size_t pos = 0, bitpos = 0;
    while (!kiln__pb_done(&r)) {
        kiln__pb_field e;
        if (kiln__pb_next(&r, &e) != KILN_OK) break; /* checked when decoded */
        if (e.number != t->typed_field) continue;
        kiln__pb_scalars it;
        uint64_t v;
        kiln__pb_scalars_init(&it, &e, field_wire(e.number));
        while (kiln__pb_scalars_next(&it, &v)) {
            if (bits == 6) {
                for (int b = 0; b < 6; b++, bitpos++)
                    if (v >> b & 1) buf[bitpos / 8] |= (uint8_t)(1u << (bitpos % 8));
                continue;
            }
            if (pos + width > bytes) break;
            for (size_t i = 0; i < width; i++) buf[pos + i] = (uint8_t)(v >> (8 * i));
            pos += width;
        }
    }
    out->data = buf;
    out->size = bytes;
    out->owned = buf;
    return KILN_OK;
}

void kiln__onnx_data_release(const kiln__alloc *alloc, kiln__onnx_data *d) {
    kiln__free(alloc, d->owned);
    memset(d, 0, sizeof *d);
}
