/* .npy reading and writing; the format is
 * https://numpy.org/doc/stable/reference/generated/numpy.lib.format.html */
#include "npy.h"

#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const unsigned char npy_magic[6] = {0x93, 'N', 'U', 'M', 'P', 'Y'};

static int fail(char *err, size_t err_size, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int fail(char *err, size_t err_size, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, err_size, fmt, ap);
    va_end(ap);
    return -1;
}

static const struct {
    kiln_dtype dtype;
    char kind;
    int size;
} npy_types[] = {
    {KILN_FLOAT16, 'f', 2}, {KILN_FLOAT32, 'f', 4}, {KILN_FLOAT64, 'f', 8}, {KILN_INT8, 'i', 1},
    {KILN_INT16, 'i', 2},   {KILN_INT32, 'i', 4},   {KILN_INT64, 'i', 8},   {KILN_UINT8, 'u', 1},
    {KILN_UINT16, 'u', 2},  {KILN_UINT32, 'u', 4},  {KILN_UINT64, 'u', 8},  {KILN_BOOL, 'b', 1},
};

const char *npy_descr(kiln_dtype dtype) {
    switch (dtype) {
    case KILN_FLOAT16: return "<f2";
    case KILN_FLOAT32: return "<f4";
    case KILN_FLOAT64: return "<f8";
    case KILN_INT8: return "|i1";
    case KILN_INT16: return "<i2";
    case KILN_INT32: return "<i4";
    case KILN_INT64: return "<i8";
    case KILN_UINT8: return "|u1";
    case KILN_UINT16: return "<u2";
    case KILN_UINT32: return "<u4";
    case KILN_UINT64: return "<u8";
    case KILN_BOOL: return "|b1";
    case KILN_BFLOAT16: return "<u2";
    default: return NULL;
    }
}

/* ---- a parser for the header: a Python dict literal with exactly the keys descr,
 * fortran_order and shape. */

typedef struct hdr {
    const char *p, *end;
} hdr;

static void skip_ws(hdr *h) {
    while (h->p < h->end && (*h->p == ' ' || *h->p == '\t' || *h->p == '\n' || *h->p == '\r')) h->p++;
}

static int expect(hdr *h, char c) {
    skip_ws(h);
    if (h->p < h->end && *h->p == c) {
        h->p++;
        return 1;
    }
    return 0;
}

/* A quoted Python string without escapes (numpy never writes any in these keys). */
static int parse_str(hdr *h, char *out, size_t out_size) {
    skip_ws(h);
    if (h->p >= h->end || (*h->p != '\'' && *h->p != '"')) return 0;
    char quote = *h->p++;
    size_t n = 0;
    while (h->p < h->end && *h->p != quote) {
        if (*h->p == '\\' || n + 1 >= out_size) return 0;
        out[n++] = *h->p++;
    }
    if (h->p >= h->end) return 0;
    h->p++;
    out[n] = 0;
    return 1;
}

static int parse_word(hdr *h, const char *word) {
    skip_ws(h);
    size_t n = strlen(word);
    if ((size_t)(h->end - h->p) >= n && memcmp(h->p, word, n) == 0) {
        h->p += n;
        return 1;
    }
    return 0;
}

/* "()" "(3,)" "(2, 3)" "(2, 3,)" */
static int parse_shape(hdr *h, kiln_dims *dims, char *err, size_t err_size) {
    if (!expect(h, '(')) return fail(err, err_size, "'shape' is not a tuple");
    dims->nb_dims = 0;
    for (;;) {
        skip_ws(h);
        if (expect(h, ')')) return 0;
        if (h->p >= h->end || *h->p < '0' || *h->p > '9') return fail(err, err_size, "'shape' holds a non-integer");
        uint64_t v = 0;
        while (h->p < h->end && *h->p >= '0' && *h->p <= '9') {
            v = v * 10 + (uint64_t)(*h->p++ - '0');
            if (v > INT64_MAX / 16) return fail(err, err_size, "'shape' has a dimension too large");
        }
        if (h->p < h->end && *h->p == 'L') h->p++; /* Python 2 long suffix, still seen in old files */
        if (dims->nb_dims == KILN_MAX_DIMS)
            return fail(err, err_size, "array has more than %d dimensions", KILN_MAX_DIMS);
        dims->d[dims->nb_dims++] = (int64_t)v;
        if (expect(h, ',')) continue;
        if (expect(h, ')')) return 0;
        return fail(err, err_size, "'shape' is not a well-formed tuple");
    }
}

static int parse_descr(const char *descr, kiln_dtype *dtype, char *err, size_t err_size) {
    size_t len = strlen(descr);
    if (len < 3) return fail(err, err_size, "unsupported dtype '%s'", descr);
    char order = descr[0], kind = descr[1];
    char *endp;
    long size = strtol(descr + 2, &endp, 10);
    if (*endp) return fail(err, err_size, "unsupported dtype '%s'", descr);
    if (order == '>' && size > 1)
        return fail(err, err_size, "dtype '%s' is big-endian; only little-endian arrays are supported "
                                   "(convert with arr.astype(arr.dtype.newbyteorder('<')))", descr);
    for (size_t i = 0; i < sizeof npy_types / sizeof npy_types[0]; i++) {
        if (npy_types[i].kind != kind || npy_types[i].size != size) continue;
        /* one-byte types carry '|' (no byte order); numpy also accepts '<', '>' and '=' there */
        if (order == '<' || (size == 1 && (order == '|' || order == '>' || order == '='))) {
            *dtype = npy_types[i].dtype;
            return 0;
        }
        return fail(err, err_size, "dtype '%s' has an unsupported byte-order mark '%c'", descr, order);
    }
    return fail(err, err_size,
                "unsupported dtype '%s' (supported: f2 f4 f8 i1 i2 i4 i8 u1 u2 u4 u8 b1, little-endian)", descr);
}

static int parse_header(hdr *h, npy_array *out, char *err, size_t err_size) {
    int have_descr = 0, have_fortran = 0, have_shape = 0;
    if (!expect(h, '{')) return fail(err, err_size, "header is not a Python dict literal");
    for (;;) {
        if (expect(h, '}')) break;
        char key[32];
        if (!parse_str(h, key, sizeof key)) return fail(err, err_size, "header has a malformed key");
        if (!expect(h, ':')) return fail(err, err_size, "header: expected ':' after '%s'", key);
        if (strcmp(key, "descr") == 0) {
            char descr[32];
            skip_ws(h);
            if (h->p < h->end && *h->p == '[')
                return fail(err, err_size, "structured (record) dtypes are not supported");
            if (!parse_str(h, descr, sizeof descr)) return fail(err, err_size, "header: 'descr' is not a string");
            if (parse_descr(descr, &out->dtype, err, err_size)) return -1;
            have_descr++;
        } else if (strcmp(key, "fortran_order") == 0) {
            if (parse_word(h, "True"))
                return fail(err, err_size, "array is in Fortran order; save it in C order "
                                           "(numpy.ascontiguousarray)");
            if (!parse_word(h, "False")) return fail(err, err_size, "header: 'fortran_order' is not True or False");
            have_fortran++;
        } else if (strcmp(key, "shape") == 0) {
            if (parse_shape(h, &out->dims, err, err_size)) return -1;
            have_shape++;
        } else {
            return fail(err, err_size, "header has an unexpected key '%s'", key);
        }
        if (expect(h, ',')) continue;
        if (expect(h, '}')) break;
        return fail(err, err_size, "header: expected ',' or '}' after '%s'", key);
    }
    if (have_descr != 1 || have_fortran != 1 || have_shape != 1)
        return fail(err, err_size, "header must hold each of 'descr', 'fortran_order' and 'shape' once");
    skip_ws(h);
    if (h->p != h->end) return fail(err, err_size, "header has trailing characters after the dict");
    return 0;
}

static size_t itemsize(kiln_dtype dtype) {
    for (size_t i = 0; i < sizeof npy_types / sizeof npy_types[0]; i++)
        if (npy_types[i].dtype == dtype) return (size_t)npy_types[i].size;
    return 0;
}

int npy_parse(const void *bytes, size_t size, npy_array *out, char *err, size_t err_size) {
    const unsigned char *b = bytes;
    memset(out, 0, sizeof *out);
    if (size < 10 || memcmp(b, npy_magic, sizeof npy_magic) != 0)
        return fail(err, err_size, "not a .npy file (bad magic)");
    unsigned major = b[6], minor = b[7];
    size_t header_len, pos;
    if (major == 1) {
        header_len = (size_t)b[8] | (size_t)b[9] << 8;
        pos = 10;
    } else if (major == 2 || major == 3) {
        if (size < 12) return fail(err, err_size, "file ends inside the header length");
        header_len = (size_t)b[8] | (size_t)b[9] << 8 | (size_t)b[10] << 16 | (size_t)b[11] << 24;
        pos = 12;
    } else {
        return fail(err, err_size, "unsupported .npy format version %u.%u", major, minor);
    }
    if (minor != 0) return fail(err, err_size, "unsupported .npy format version %u.%u", major, minor);
    if (header_len > size - pos) return fail(err, err_size, "file ends inside the header (%zu bytes announced)", header_len);
    hdr h = {(const char *)b + pos, (const char *)b + pos + header_len};
    if (parse_header(&h, out, err, err_size)) return -1;
    pos += header_len;

    size_t count = 1;
    for (int i = 0; i < out->dims.nb_dims; i++) {
        uint64_t d = (uint64_t)out->dims.d[i];
        if (d && count > SIZE_MAX / 16 / d) return fail(err, err_size, "array is too large");
        count *= (size_t)d;
    }
    size_t nbytes = count * itemsize(out->dtype);
    if (size - pos != nbytes)
        return fail(err, err_size, "data is %zu bytes but the header (%s, %d dims) needs %zu", size - pos,
                    npy_descr(out->dtype), out->dims.nb_dims, nbytes);
    out->data = malloc(nbytes ? nbytes : 1);
    if (!out->data) return fail(err, err_size, "out of memory (%zu bytes)", nbytes);
    memcpy(out->data, b + pos, nbytes);
    out->nbytes = nbytes;
    return 0;
}

int npy_read(const char *path, npy_array *out, char *err, size_t err_size) {
    memset(out, 0, sizeof *out);
    FILE *f = fopen(path, "rb");
    if (!f) return fail(err, err_size, "cannot open '%s': %s", path, strerror(errno));
    unsigned char *bytes = NULL;
    size_t size = 0, cap = 0;
    for (;;) {
        if (size == cap) {
            size_t ncap = cap ? cap * 2 : 1 << 16;
            unsigned char *nb = realloc(bytes, ncap);
            if (!nb) {
                free(bytes);
                fclose(f);
                return fail(err, err_size, "'%s': out of memory", path);
            }
            bytes = nb;
            cap = ncap;
        }
        size_t n = fread(bytes + size, 1, cap - size, f);
        size += n;
        if (n == 0) break;
    }
    int read_error = ferror(f);
    fclose(f);
    if (read_error) {
        free(bytes);
        return fail(err, err_size, "cannot read '%s'", path);
    }
    char msg[512];
    int rc = npy_parse(bytes, size, out, msg, sizeof msg);
    free(bytes);
    if (rc) return fail(err, err_size, "'%s': %s", path, msg);
    return 0;
}

int npy_write(const char *path, kiln_dtype dtype, const kiln_dims *dims, const void *data, char *err,
              size_t err_size) {
    const char *descr = npy_descr(dtype);
    if (!descr) return fail(err, err_size, "dtype %s cannot be stored in a .npy file", kiln_dtype_name(dtype));
    char dict[64 + KILN_MAX_DIMS * 24];
    int n = snprintf(dict, sizeof dict, "{'descr': '%s', 'fortran_order': False, 'shape': (", descr);
    size_t count = 1;
    for (int i = 0; i < dims->nb_dims; i++) {
        n += snprintf(dict + n, sizeof dict - (size_t)n, "%s%lld", i ? ", " : "", (long long)dims->d[i]);
        count *= (size_t)dims->d[i];
    }
    n += snprintf(dict + n, sizeof dict - (size_t)n, "%s), }", dims->nb_dims == 1 ? "," : "");
    /* magic + version + length + dict + padding + '\n' is a multiple of 64 */
    size_t prefix = 10, total = prefix + (size_t)n + 1;
    total = (total + 63) / 64 * 64;
    size_t header_len = total - prefix;
    unsigned char pre[10];
    memcpy(pre, npy_magic, 6);
    pre[6] = 1;
    pre[7] = 0;
    pre[8] = (unsigned char)(header_len & 0xff);
    pre[9] = (unsigned char)(header_len >> 8);

    FILE *f = fopen(path, "wb");
    if (!f) return fail(err, err_size, "cannot create '%s': %s", path, strerror(errno));
    int ok = fwrite(pre, 1, sizeof pre, f) == sizeof pre && fwrite(dict, 1, (size_t)n, f) == (size_t)n;
    for (size_t i = prefix + (size_t)n; ok && i + 1 < total; i++) ok = fputc(' ', f) != EOF;
    ok = ok && fputc('\n', f) != EOF;
    size_t nbytes = count * itemsize(dtype == KILN_BFLOAT16 ? KILN_UINT16 : dtype);
    ok = ok && (nbytes == 0 || fwrite(data, 1, nbytes, f) == nbytes);
    if (fclose(f) != 0) ok = 0;
    if (!ok) return fail(err, err_size, "cannot write '%s': %s", path, strerror(errno));
    return 0;
}

void npy_free(npy_array *array) {
    if (!array) return;
    free(array->data);
    array->data = NULL;
    array->nbytes = 0;
}
