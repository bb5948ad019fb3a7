/* The ONNX reader: every model and test-data file of the ONNX conformance data decodes, a
 * few decoded values match known content, and hand-built malformed inputs of every class
 * fail cleanly with a message that says what is wrong. */
#include "kt.h"
#include "onnx/model.h"
#include "onnx/pb.h"

#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

static kiln__alloc alloc;

/* ---- a tiny protobuf writer ---- */

typedef struct pbw {
    uint8_t *d;
    size_t n, cap;
} pbw;

static void w_bytes(pbw *w, const void *p, size_t n) {
    if (w->n + n > w->cap) {
        w->cap = (w->n + n) * 2 + 64;
        w->d = realloc(w->d, w->cap);
        if (!w->d) abort();
    }
    if (n) memcpy(w->d + w->n, p, n);
    w->n += n;
}
static void w_varint(pbw *w, uint64_t v) {
    do {
        uint8_t b = (uint8_t)(v & 0x7f);
        v >>= 7;
        if (v) b |= 0x80;
        w_bytes(w, &b, 1);
    } while (v);
}
static void w_tag(pbw *w, uint32_t field, uint32_t wire) { w_varint(w, (uint64_t)field << 3 | wire); }
static void w_int(pbw *w, uint32_t field, int64_t v) {
    w_tag(w, field, KILN__PB_VARINT);
    w_varint(w, (uint64_t)v);
}
static void w_len(pbw *w, uint32_t field, const void *p, size_t n) {
    w_tag(w, field, KILN__PB_LEN);
    w_varint(w, n);
    w_bytes(w, p, n);
}
static void w_str(pbw *w, uint32_t field, const char *s) { w_len(w, field, s, strlen(s)); }
static void w_f32(pbw *w, uint32_t field, float f) {
    w_tag(w, field, KILN__PB_I32);
    w_bytes(w, &f, 4);
}
/* Appends sub as a LEN field and frees it. */
static void w_msg(pbw *w, uint32_t field, pbw *sub) {
    w_len(w, field, sub->d, sub->n);
    free(sub->d);
    memset(sub, 0, sizeof *sub);
}
static void w_packed_ints(pbw *w, uint32_t field, const int64_t *v, int n) {
    pbw p = {0};
    for (int i = 0; i < n; i++) w_varint(&p, (uint64_t)v[i]);
    w_msg(w, field, &p);
}

/* ---- ONNX message builders ---- */

static pbw value_info(const char *name, int elem_type, int rank, const int64_t *dims) {
    pbw shape = {0}, tt = {0}, type = {0}, vi = {0};
    for (int i = 0; i < rank; i++) {
        pbw dim = {0};
        if (dims[i] >= 0)
            w_int(&dim, 1, dims[i]);
        else
            w_str(&dim, 2, "batch");
        w_msg(&shape, 1, &dim);
    }
    w_int(&tt, 1, elem_type);
    if (rank >= 0)
        w_msg(&tt, 2, &shape);
    else
        free(shape.d);
    w_msg(&type, 1, &tt);
    w_str(&vi, 1, name);
    w_msg(&vi, 2, &type);
    return vi;
}

static pbw tensor_raw(const char *name, int dtype, int rank, const int64_t *dims, const void *raw, size_t raw_size) {
    pbw t = {0};
    for (int i = 0; i < rank; i++) w_int(&t, 1, dims[i]);
    w_int(&t, 2, dtype);
    if (name) w_str(&t, 8, name);
    if (raw) w_len(&t, 9, raw, raw_size);
    return t;
}

/* A node; inputs/outputs are NULL-terminated lists. */
static pbw node(const char *name, const char *op, const char *const *in, const char *const *out) {
    pbw n = {0};
    for (; in && *in; in++) w_str(&n, 1, *in);
    for (; out && *out; out++) w_str(&n, 2, *out);
    if (name) w_str(&n, 3, name);
    w_str(&n, 4, op);
    return n;
}

static pbw attr_float(const char *name, float f) {
    pbw a = {0};
    w_str(&a, 1, name);
    w_f32(&a, 2, f);
    w_int(&a, 20, 1);
    return a;
}

static pbw attr_ints(const char *name, const int64_t *v, int n, bool packed) {
    pbw a = {0};
    w_str(&a, 1, name);
    if (packed)
        w_packed_ints(&a, 8, v, n);
    else
        for (int i = 0; i < n; i++) w_int(&a, 8, v[i]);
    w_int(&a, 20, 7);
    return a;
}

static pbw model_of(pbw *graph) {
    pbw m = {0}, op = {0};
    w_int(&m, 1, 8);
    w_str(&m, 2, "kiln-test");
    w_str(&op, 1, "");
    w_int(&op, 2, 17);
    w_msg(&m, 8, &op);
    w_msg(&m, 7, graph);
    return m;
}

static const int64_t dims22[2] = {2, 2};
static const float w22[4] = {1.0f, -2.0f, 3.5f, 4.0f};

/* x[2,2] + w (initializer) -> y with attribute alpha and ints strides. */
static pbw small_graph(void) {
    pbw g = {0}, n, a, t, vi;
    const char *in[] = {"x", "w", NULL}, *out[] = {"y", NULL};
    n = node("add1", "Add", in, out);
    a = attr_float("alpha", 0.5f);
    w_msg(&n, 5, &a);
    static const int64_t strides[2] = {2, 3};
    a = attr_ints("strides", strides, 2, true);
    w_msg(&n, 5, &a);
    w_msg(&g, 1, &n);
    w_str(&g, 2, "main");
    t = tensor_raw("w", KILN_FLOAT32, 2, dims22, w22, sizeof w22);
    w_msg(&g, 5, &t);
    vi = value_info("x", KILN_FLOAT32, 2, dims22);
    w_msg(&g, 11, &vi);
    vi = value_info("y", KILN_FLOAT32, 2, dims22);
    w_msg(&g, 12, &vi);
    return g;
}

/* Parses bytes copied into an exactly sized heap block, so that ASan sees any overread. */
static kiln_status parse_exact(const uint8_t *bytes, size_t n, const char *dir, kiln__onnx_model **m) {
    uint8_t *copy = malloc(n ? n : 1);
    if (n) memcpy(copy, bytes, n);
    kiln_status st = kiln__onnx_model_parse(&alloc, copy, n, dir, m);
    if (st == KILN_OK) {
        /* the model points into the bytes: keep them until it is freed */
        kiln__onnx_model_free(*m);
        *m = NULL;
        st = kiln__onnx_model_parse(&alloc, bytes, n, dir, m);
    }
    free(copy);
    return st;
}

/* Expects parsing to fail with status `want` and a message containing `needle`. */
static void expect_fail(const char *what, pbw *model, kiln_status want, const char *needle) {
    kiln__onnx_model *m = NULL;
    kiln_status st = parse_exact(model->d, model->n, NULL, &m);
    kt_checks++;
    if (st != want || !strstr(kiln_last_error(), needle)) {
        kt_failures++;
        fprintf(stderr, "%s: got %s '%s', expected %s containing '%s'\n", what, kiln_status_name(st), kiln_last_error(),
                kiln_status_name(want), needle);
    }
    kiln__onnx_model_free(m);
    free(model->d);
    memset(model, 0, sizeof *model);
}

static void expect_graph_fail(const char *what, pbw *graph, const char *needle) {
    pbw m = model_of(graph);
    expect_fail(what, &m, KILN_INVALID_ARGUMENT, needle);
}

/* ---- valid hand-built model ---- */

static void test_small_model(void) {
    pbw g = small_graph(), mb = model_of(&g);
    kiln__onnx_model *m = NULL;
    KT_OK(parse_exact(mb.d, mb.n, NULL, &m));
    if (!m) return;
    KT_CHECK(m->ir_version == 8);
    KT_CHECK(!strcmp(m->producer_name, "kiln-test"));
    KT_CHECK(m->nb_opsets == 1 && kiln__onnx_opset_version(m, "ai.onnx") == 17 &&
             kiln__onnx_opset_version(m, "x") == 0);
    const kiln__onnx_graph *gr = m->graph;
    KT_CHECK(!strcmp(gr->name, "main") && gr->nb_nodes == 1 && gr->nb_initializers == 1);
    const kiln__onnx_node *n = &gr->nodes[0];
    KT_CHECK(!strcmp(n->op_type, "Add") && !strcmp(n->name, "add1") && n->nb_inputs == 2 && !strcmp(n->inputs[1], "w"));
    float alpha = 0;
    KT_OK(kiln__onnx_attr_float(n, "alpha", &alpha));
    KT_CHECK(alpha == 0.5f);
    const int64_t *strides = NULL;
    int64_t ns = 0;
    KT_OK(kiln__onnx_attr_ints(n, "strides", &strides, &ns));
    KT_CHECK(ns == 2 && strides && strides[0] == 2 && strides[1] == 3);
    int64_t absent = 42;
    KT_OK(kiln__onnx_attr_int(n, "axis", &absent));
    KT_CHECK(absent == 42);
    KT_STATUS(kiln__onnx_attr_ints(n, "alpha", &strides, &ns), KILN_INVALID_ARGUMENT);
    KT_CHECK(strstr(kiln_last_error(), "node 'add1' (Add): attribute 'alpha': expected INTS, got FLOAT") != NULL);
    const kiln__onnx_tensor *w = &gr->initializers[0];
    KT_CHECK(w->dtype == KILN_FLOAT32 && w->nb_dims == 2 && w->count == 4 && w->source == KILN__ONNX_DATA_RAW);
    kiln__onnx_data d;
    KT_OK(kiln__onnx_tensor_data(&alloc, w, &d));
    KT_CHECK(d.size == 16 && !d.owned && !memcmp(d.data, w22, 16));
    /* zero copy: the data lies inside the model bytes */
    KT_CHECK((const uint8_t *)d.data > mb.d && (const uint8_t *)d.data + 16 <= mb.d + mb.n);
    kiln__onnx_data_release(&alloc, &d);
    KT_CHECK(gr->inputs[0].type.kind == KILN__ONNX_TYPE_TENSOR && gr->inputs[0].type.rank == 2 &&
             gr->inputs[0].type.dims[1].value == 2);
    kiln__onnx_model_free(m);

    /* Truncation at every byte: each strict prefix must fail (graph is the last field). */
    int ok_prefixes = 0;
    for (size_t len = 0; len < mb.n; len++) {
        kiln__onnx_model *t = NULL;
        if (parse_exact(mb.d, len, NULL, &t) == KILN_OK) ok_prefixes++;
        kiln__onnx_model_free(t);
    }
    KT_CHECK(ok_prefixes == 0);
    kiln__onnx_model *t = NULL;
    KT_STATUS(parse_exact(mb.d, mb.n - 3, NULL, &t), KILN_INVALID_ARGUMENT);
    KT_CHECK(strstr(kiln_last_error(), "truncated protobuf at offset") != NULL);
    free(mb.d);
}

/* ---- malformed protobuf ---- */

static void test_wire_errors(void) {
    pbw m = {0};
    for (int i = 0; i < 11; i++) w_bytes(&m, "\x80", 1); /* tag varint longer than 10 bytes */
    expect_fail("11-byte varint", &m, KILN_INVALID_ARGUMENT, "longer than 10 bytes");

    w_tag(&m, 1, KILN__PB_VARINT);
    w_bytes(&m, "\xff\xff\xff\xff\xff\xff\xff\xff\xff\x02", 10); /* 10th byte > 1 */
    expect_fail("overflowing varint", &m, KILN_INVALID_ARGUMENT, "overflows 64 bits");

    w_tag(&m, 1, KILN__PB_VARINT);
    w_bytes(&m, "\xff", 1);
    expect_fail("varint at end", &m, KILN_INVALID_ARGUMENT, "truncated protobuf at offset 1 in ModelProto");

    w_tag(&m, 7, KILN__PB_LEN);
    w_varint(&m, 1000);
    w_bytes(&m, "abc", 3);
    expect_fail("length past end", &m, KILN_INVALID_ARGUMENT, "length 1000 runs past the end (3 bytes left)");

    w_tag(&m, 3, 6);
    expect_fail("wire type 6", &m, KILN_INVALID_ARGUMENT, "invalid wire type 6");

    w_bytes(&m, "\x00", 1);
    expect_fail("field 0", &m, KILN_INVALID_ARGUMENT, "bad field number 0");

    w_tag(&m, 9, KILN__PB_I64);
    w_bytes(&m, "1234", 4);
    expect_fail("short fixed64", &m, KILN_INVALID_ARGUMENT, "8-byte value, 4 bytes left");

    w_tag(&m, 30, KILN__PB_EGROUP);
    expect_fail("lone end group", &m, KILN_INVALID_ARGUMENT, "end-group (field 30) without a start");

    w_tag(&m, 30, KILN__PB_SGROUP);
    w_int(&m, 1, 5);
    expect_fail("open group", &m, KILN_INVALID_ARGUMENT, "has no end");

    w_tag(&m, 30, KILN__PB_SGROUP);
    w_tag(&m, 31, KILN__PB_EGROUP);
    expect_fail("mismatched group", &m, KILN_INVALID_ARGUMENT, "closes group 30");

    w_str(&m, 1, "eight");
    expect_fail(
        "ir_version as string", &m, KILN_INVALID_ARGUMENT,
        "ModelProto.ir_version (field 1) at offset 0 in ModelProto has wire type length-delimited, expected varint");

    /* Unknown fields of every wire type, nested groups included, are skipped. */
    pbw g = small_graph(), u = model_of(&g);
    w_int(&u, 100, 7);
    w_tag(&u, 101, KILN__PB_I64);
    w_bytes(&u, "12345678", 8);
    w_tag(&u, 102, KILN__PB_I32);
    w_bytes(&u, "1234", 4);
    w_str(&u, 103, "unknown");
    w_tag(&u, 104, KILN__PB_SGROUP);
    w_int(&u, 1, 1);
    w_tag(&u, 2, KILN__PB_SGROUP);
    w_str(&u, 3, "in a nested group");
    w_tag(&u, 2, KILN__PB_EGROUP);
    w_tag(&u, 104, KILN__PB_EGROUP);
    kiln__onnx_model *mm = NULL;
    KT_OK(parse_exact(u.d, u.n, NULL, &mm));
    kiln__onnx_model_free(mm);
    free(u.d);

    /* Direct reader checks: zigzag and unpacked/packed scalars. */
    KT_CHECK(kiln__pb_zigzag(0) == 0 && kiln__pb_zigzag(1) == -1 && kiln__pb_zigzag(4) == 2 &&
             kiln__pb_zigzag(UINT64_MAX) == INT64_MIN);
    pbw p = {0};
    w_int(&p, 1, -1); /* negative int64: 10 bytes */
    const int64_t vals[3] = {1, 300, -5};
    w_packed_ints(&p, 1, vals, 3);
    kiln__pb r;
    kiln__pb_init(&r, p.d, p.d, p.n, "Test");
    int64_t got[4], ng = 0;
    while (!kiln__pb_done(&r)) {
        kiln__pb_field f;
        size_t count;
        KT_OK(kiln__pb_next(&r, &f));
        KT_OK(kiln__pb_scalars_count(&r, &f, KILN__PB_VARINT, "Test.v", &count));
        kiln__pb_scalars it;
        uint64_t v;
        kiln__pb_scalars_init(&it, &f, KILN__PB_VARINT);
        while (kiln__pb_scalars_next(&it, &v) && ng < 4) got[ng++] = (int64_t)v;
    }
    KT_CHECK(ng == 4 && got[0] == -1 && got[1] == 1 && got[2] == 300 && got[3] == -5);
    free(p.d);
}

/* ---- tensors ---- */

static pbw graph_with_initializer(pbw *t) {
    pbw g = {0}, n, vi;
    const char *in[] = {"w", NULL}, *out[] = {"y", NULL};
    n = node("id", "Identity", in, out);
    w_msg(&g, 1, &n);
    w_msg(&g, 5, t);
    vi = value_info("y", KILN_FLOAT32, -1, NULL);
    w_msg(&g, 12, &vi);
    return g;
}

/* Decodes one initializer; returns the model or NULL. The model points into *bytes, which
 * the caller frees after the model. */
static kiln__onnx_model *parse_initializer(pbw *t, kiln_status want, pbw *bytes) {
    pbw g = graph_with_initializer(t);
    *bytes = model_of(&g);
    kiln__onnx_model *m = NULL;
    kiln_status st = kiln__onnx_model_parse(&alloc, bytes->d, bytes->n, NULL, &m);
    kt_checks++;
    if (st != want) {
        kt_failures++;
        fprintf(stderr, "initializer: got %s (%s), expected %s\n", kiln_status_name(st), kiln_last_error(),
                kiln_status_name(want));
    }
    return m;
}

static void expect_tensor_fail(const char *what, pbw *t, const char *needle) {
    pbw g = graph_with_initializer(t);
    pbw m = model_of(&g);
    expect_fail(what, &m, KILN_INVALID_ARGUMENT, needle);
}

static void test_tensor_errors(void) {
    pbw t = tensor_raw("w", KILN_FLOAT32, 2, dims22, w22, 12);
    expect_tensor_fail("raw size", &t, "initializer 'w': raw_data has 12 bytes, expected 16 for float32[2,2]");

    t = tensor_raw("w", KILN_FLOAT32, 2, dims22, NULL, 0);
    for (int i = 0; i < 3; i++) w_f32(&t, 4, 1.0f);
    expect_tensor_fail("float_data count", &t, "float_data has 3 values, expected 4 for float32[2,2]");

    t = tensor_raw("w", KILN_FLOAT32, 2, dims22, NULL, 0);
    const int64_t four[4] = {1, 2, 3, 4};
    w_packed_ints(&t, 7, four, 4);
    expect_tensor_fail("int64_data for float", &t, "int64_data cannot hold float32[2,2]");

    const int64_t neg[2] = {2, -2};
    t = tensor_raw("w", KILN_FLOAT32, 2, neg, w22, 16);
    expect_tensor_fail("negative dim", &t, "dim 1 is negative");

    const int64_t huge[3] = {INT64_MAX / 2, 4, 1};
    t = tensor_raw("w", KILN_FLOAT32, 3, huge, NULL, 0);
    expect_tensor_fail("dims overflow", &t, "element count overflows");

    const int64_t big[2] = {1 << 20, 1 << 20};
    t = tensor_raw("w", KILN_FLOAT32, 2, big, NULL, 0);
    expect_tensor_fail("no data", &t, "has no data for float32[1048576,1048576]");

    t = tensor_raw("w", KILN_FLOAT32, 2, dims22, w22, 16);
    w_f32(&t, 4, 1.0f);
    expect_tensor_fail("two sources", &t, "has both raw_data and float_data");

    t = tensor_raw("w", 0, 2, dims22, w22, 16);
    expect_tensor_fail("undefined type", &t, "data_type is UNDEFINED");

    t = tensor_raw("w", KILN_FLOAT32, 2, dims22, NULL, 0);
    w_tag(&t, 1, KILN__PB_I32);
    w_bytes(&t, "\1\0\0\0", 4);
    expect_tensor_fail("dims wire type", &t, "TensorProto.dims (field 1)");

    t = tensor_raw("w", KILN_FLOAT32, 2, dims22, w22, 16);
    w_str(&t, 3, "");
    pbw g = graph_with_initializer(&t), m = model_of(&g);
    expect_fail("segment", &m, KILN_UNSUPPORTED, "segmented tensors");

    t = tensor_raw("w", KILN_STRING, 1, dims22, NULL, 0);
    w_str(&t, 6, "only one");
    expect_tensor_fail("string count", &t, "string_data has 1 elements, expected 2 for string[2]");

    /* external data from a buffer: refused, no folder */
    t = tensor_raw("w", KILN_FLOAT32, 2, dims22, NULL, 0);
    pbw kv = {0};
    w_str(&kv, 1, "location");
    w_str(&kv, 2, "w.bin");
    w_msg(&t, 13, &kv);
    w_int(&t, 14, 1);
    expect_tensor_fail("external from buffer", &t, "needs the model's folder");
}

static void check_data(const char *what, pbw *t, const void *want, size_t size) {
    pbw bytes;
    kiln__onnx_model *m = parse_initializer(t, KILN_OK, &bytes);
    kiln__onnx_data d;
    if (!m) {
        free(bytes.d);
        return;
    }
    KT_OK(kiln__onnx_tensor_data(&alloc, &m->graph->initializers[0], &d));
    kt_checks++;
    if (d.size != size || (size && memcmp(d.data, want, size))) {
        kt_failures++;
        fprintf(stderr, "%s: decoded data differs (%zu bytes, expected %zu)\n", what, d.size, size);
    }
    kiln__onnx_data_release(&alloc, &d);
    kiln__onnx_model_free(m);
    free(bytes.d);
}

static void test_typed_fields(void) {
    const int64_t d5[1] = {5}, d3[1] = {3}, d2[1] = {2};
    /* fp16 bit patterns in int32_data, unpacked */
    pbw t = tensor_raw("w", KILN_FLOAT16, 1, d3, NULL, 0);
    const uint16_t h[3] = {0x3c00, 0xc000, 0x7bff};
    for (int i = 0; i < 3; i++) w_int(&t, 5, h[i]);
    check_data("float16 int32_data", &t, h, 6);

    /* int4: two per int32 value (one packed byte each), 5 elements -> 3 bytes */
    t = tensor_raw("w", KILN_INT4, 1, d5, NULL, 0);
    const int64_t packed[3] = {0x21, 0xf3, 0x04};
    w_packed_ints(&t, 5, packed, 3);
    const uint8_t int4_bytes[3] = {0x21, 0xf3, 0x04};
    check_data("int4 int32_data", &t, int4_bytes, 3);

    /* int8 negative values stored as sign-extended int32 */
    t = tensor_raw("w", KILN_INT8, 1, d3, NULL, 0);
    const int64_t i8[3] = {-1, 127, -128};
    w_packed_ints(&t, 5, i8, 3);
    const int8_t i8_bytes[3] = {-1, 127, -128};
    check_data("int8 int32_data", &t, i8_bytes, 3);

    /* bool */
    t = tensor_raw("w", KILN_BOOL, 1, d3, NULL, 0);
    const int64_t b[3] = {1, 0, 1};
    w_packed_ints(&t, 5, b, 3);
    const uint8_t b_bytes[3] = {1, 0, 1};
    check_data("bool int32_data", &t, b_bytes, 3);

    /* uint32 in uint64_data */
    t = tensor_raw("w", KILN_UINT32, 1, d2, NULL, 0);
    const int64_t u32[2] = {7, 4000000000};
    w_packed_ints(&t, 11, u32, 2);
    const uint32_t u32_bytes[2] = {7, 4000000000u};
    check_data("uint32 uint64_data", &t, u32_bytes, 8);

    /* int64 unpacked and packed mixed across fields */
    t = tensor_raw("w", KILN_INT64, 1, d3, NULL, 0);
    w_int(&t, 7, -9);
    const int64_t rest[2] = {INT64_MAX, 0};
    w_packed_ints(&t, 7, rest, 2);
    const int64_t i64_bytes[3] = {-9, INT64_MAX, 0};
    check_data("int64 int64_data", &t, i64_bytes, 24);

    /* double, packed fixed64 */
    t = tensor_raw("w", KILN_FLOAT64, 1, d2, NULL, 0);
    const double dv[2] = {1.5, -2.25};
    w_len(&t, 10, dv, 16);
    check_data("double_data", &t, dv, 16);

    /* float packed */
    t = tensor_raw("w", KILN_FLOAT32, 2, dims22, NULL, 0);
    w_len(&t, 4, w22, 16);
    check_data("float_data", &t, w22, 16);

    /* float6e2m3: one int32 per element, packed into a 6-bit stream */
    t = tensor_raw("w", KILN__ONNX_FLOAT6E2M3, 1, d2, NULL, 0);
    const int64_t f6[2] = {0x3f, 0x01};
    w_packed_ints(&t, 5, f6, 2);
    const uint8_t f6_bytes[2] = {0x7f, 0x00}; /* 111111 then 000001 -> bits 0..11 */
    check_data("float6 int32_data", &t, f6_bytes, 2);

    /* zero elements, no data */
    const int64_t d0[2] = {0, 7};
    t = tensor_raw("w", KILN_FLOAT32, 2, d0, NULL, 0);
    check_data("empty", &t, NULL, 0);

    /* packed and unpacked dims decode the same */
    pbw tp = {0};
    w_packed_ints(&tp, 1, dims22, 2);
    w_int(&tp, 2, KILN_FLOAT32);
    w_str(&tp, 8, "w");
    w_len(&tp, 9, w22, 16);
    pbw bytes;
    kiln__onnx_model *m = parse_initializer(&tp, KILN_OK, &bytes);
    if (m) {
        const kiln__onnx_tensor *w = &m->graph->initializers[0];
        KT_CHECK(w->nb_dims == 2 && w->dims[0] == 2 && w->dims[1] == 2 && w->count == 4);
        kiln__onnx_model_free(m);
    }
    free(bytes.d);

    /* strings */
    t = tensor_raw("w", KILN_STRING, 1, d2, NULL, 0);
    w_str(&t, 6, "ab");
    w_len(&t, 6, "c\0d", 3);
    m = parse_initializer(&t, KILN_OK, &bytes);
    if (m) {
        const kiln__onnx_tensor *w = &m->graph->initializers[0];
        KT_CHECK(w->source == KILN__ONNX_DATA_STRINGS && w->strings[1].size == 3 &&
                 !memcmp(w->strings[1].data, "c\0d", 3));
        kiln__onnx_data d;
        KT_STATUS(kiln__onnx_tensor_data(&alloc, w, &d), KILN_UNSUPPORTED);
        kiln__onnx_model_free(m);
    }
    free(bytes.d);
}

/* ---- external data ---- */

static void write_file(const char *path, const void *data, size_t n) {
    FILE *f = fopen(path, "wb");
    if (!f) return;
    fwrite(data, 1, n, f);
    fclose(f);
}

static pbw external_model(const char *location, const char *offset, const char *length) {
    pbw t = tensor_raw("w", KILN_FLOAT32, 2, dims22, NULL, 0), kv = {0};
    w_str(&kv, 1, "location");
    w_str(&kv, 2, location);
    w_msg(&t, 13, &kv);
    if (offset) {
        w_str(&kv, 1, "offset");
        w_str(&kv, 2, offset);
        w_msg(&t, 13, &kv);
    }
    if (length) {
        w_str(&kv, 1, "length");
        w_str(&kv, 2, length);
        w_msg(&t, 13, &kv);
    }
    w_int(&t, 14, 1);
    pbw g = graph_with_initializer(&t);
    return model_of(&g);
}

static void expect_external(const char *dir, const char *location, const char *offset, const char *length,
                            kiln_status want, const char *needle) {
    char path[512];
    snprintf(path, sizeof path, "%s/model.onnx", dir);
    pbw mb = external_model(location, offset, length);
    write_file(path, mb.d, mb.n);
    free(mb.d);
    kiln__onnx_model *m = NULL;
    kiln_status st = kiln__onnx_model_load(&alloc, path, &m);
    kt_checks++;
    if (st != want || (needle && !strstr(kiln_last_error(), needle))) {
        kt_failures++;
        fprintf(stderr, "external '%s': got %s (%s), expected %s '%s'\n", location, kiln_status_name(st),
                kiln_last_error(), kiln_status_name(want), needle ? needle : "");
    }
    if (m) {
        kiln__onnx_data d;
        KT_OK(kiln__onnx_tensor_data(&alloc, &m->graph->initializers[0], &d));
        KT_CHECK(d.size == 16 && !d.owned && !memcmp(d.data, w22, 16));
        kiln__onnx_data_release(&alloc, &d);
    }
    kiln__onnx_model_free(m);
}

static void test_external_data(void) {
    char root[] = "/tmp/kiln_onnx_XXXXXX";
    if (!mkdtemp(root)) {
        KT_CHECK(!"mkdtemp failed");
        return;
    }
    char dir[600], sub[700], outside[600], path[800];
    snprintf(dir, sizeof dir, "%s/model", root);
    snprintf(sub, sizeof sub, "%s/data", dir);
    snprintf(outside, sizeof outside, "%s/secret.bin", root);
    mkdir(dir, 0700);
    mkdir(sub, 0700);
    uint8_t blob[64] = {0};
    memcpy(blob + 32, w22, 16);
    snprintf(path, sizeof path, "%s/w.bin", dir);
    write_file(path, w22, 16);
    snprintf(path, sizeof path, "%s/blob.bin", sub);
    write_file(path, blob, sizeof blob);
    write_file(outside, w22, 16);
    snprintf(path, sizeof path, "%s/escape.bin", dir);
    KT_CHECK(symlink(outside, path) == 0);
    snprintf(path, sizeof path, "%s/inside.bin", dir);
    KT_CHECK(symlink("w.bin", path) == 0);

    expect_external(dir, "w.bin", NULL, NULL, KILN_OK, NULL);
    expect_external(dir, "data/blob.bin", "32", "16", KILN_OK, NULL);
    expect_external(dir, "./data/../w.bin", NULL, NULL, KILN_INVALID_ARGUMENT, "contains '..'");
    expect_external(dir, "../secret.bin", NULL, NULL, KILN_INVALID_ARGUMENT, "contains '..'");
    expect_external(dir, outside, NULL, NULL, KILN_INVALID_ARGUMENT, "is an absolute path");
    expect_external(dir, "escape.bin", NULL, NULL, KILN_INVALID_ARGUMENT, "outside the model folder");
    expect_external(dir, "inside.bin", NULL, NULL, KILN_OK, NULL);
    expect_external(dir, "missing.bin", NULL, NULL, KILN_IO_ERROR, "not found");
    expect_external(dir, "data/blob.bin", "60", "16", KILN_INVALID_ARGUMENT, "runs past the end");
    expect_external(dir, "data/blob.bin", "100", NULL, KILN_INVALID_ARGUMENT, "past the end");
    expect_external(dir, "data/blob.bin", "0", NULL, KILN_INVALID_ARGUMENT,
                    "has 64 bytes, expected 16 for float32[2,2]");
    expect_external(dir, "w.bin", "-4", NULL, KILN_INVALID_ARGUMENT, "not a non-negative integer");

    const char *names[] = {"model/model.onnx", "model/w.bin", "model/data/blob.bin", "model/escape.bin",
                           "model/inside.bin", "secret.bin",  "model/data",          "model"};
    for (size_t i = 0; i < KILN__ARRAY_LEN(names); i++) {
        snprintf(path, sizeof path, "%s/%s", root, names[i]);
        if (unlink(path) != 0) rmdir(path);
    }
    rmdir(root);
}

/* ---- graph checks ---- */

static void add_node(pbw *g, const char *name, const char *op, const char *in0, const char *in1, const char *out) {
    const char *in[] = {in0, in1, NULL}, *outs[] = {out, NULL};
    pbw n = node(name, op, in, outs);
    w_msg(g, 1, &n);
}

static void add_io(pbw *g, uint32_t field, const char *name) {
    pbw vi = value_info(name, KILN_FLOAT32, 2, dims22);
    w_msg(g, field, &vi);
}

static void test_graph_checks(void) {
    pbw g = {0};
    add_node(&g, "a", "Relu", "x", NULL, "t");
    add_node(&g, "b", "Relu", "x", NULL, "t");
    add_io(&g, 11, "x");
    add_io(&g, 12, "t");
    expect_graph_fail("duplicate", &g, "value 't' is produced twice: by node 'a' (Relu) and by node 'b' (Relu)");

    add_node(&g, "a", "Relu", "x", NULL, "x");
    add_io(&g, 11, "x");
    add_io(&g, 12, "x");
    expect_graph_fail("output shadows input", &g, "produced twice: by a graph input and by node 'a'");

    add_node(&g, "a", "Add", "x", "nowhere", "y");
    add_io(&g, 11, "x");
    add_io(&g, 12, "y");
    expect_graph_fail("dangling", &g, "node 'a' (Add): input 1: 'nowhere' is not produced by any node");

    add_node(&g, "a", "Relu", "x", NULL, "y");
    add_io(&g, 11, "x");
    add_io(&g, 12, "z");
    expect_graph_fail("dangling output", &g, "output 'z' is not produced");

    add_node(&g, "a", "Add", "x", "c", "b_in");
    add_node(&g, "b", "Relu", "b_in", NULL, "c");
    add_io(&g, 11, "x");
    add_io(&g, 12, "c");
    expect_graph_fail("cycle", &g, "the graph has a cycle through node '");

    add_node(&g, "self", "Relu", "s", NULL, "s");
    add_io(&g, 12, "s");
    expect_graph_fail("self loop", &g, "cycle through node 'self' (Relu)");

    /* Out of order: sorted, with the original order kept where valid. */
    add_node(&g, "c", "Relu", "t2", NULL, "y");
    add_node(&g, "a", "Relu", "x", NULL, "t1");
    add_node(&g, "b", "Relu", "t1", NULL, "t2");
    add_node(&g, "d", "Relu", "x", NULL, "u");
    add_io(&g, 11, "x");
    add_io(&g, 12, "y");
    add_io(&g, 12, "u");
    pbw mb = model_of(&g);
    kiln__onnx_model *m = NULL;
    KT_OK(kiln__onnx_model_parse(&alloc, mb.d, mb.n, NULL, &m));
    if (m) {
        const kiln__onnx_graph *gr = m->graph;
        KT_CHECK(gr->nb_nodes == 4 && !strcmp(gr->nodes[0].name, "a") && !strcmp(gr->nodes[1].name, "b") &&
                 !strcmp(gr->nodes[2].name, "c") && !strcmp(gr->nodes[3].name, "d"));
    }
    kiln__onnx_model_free(m);
    free(mb.d);

    /* Subgraphs: outer-scope names are allowed and order the outer nodes; unknown ones are not. */
    for (int bad = 0; bad < 2; bad++) {
        pbw body = {0};
        add_node(&body, "inner", "Add", "late", bad ? "ghost" : "x", "r");
        w_str(&body, 2, "then");
        add_io(&body, 12, "r");
        pbw attr = {0};
        w_str(&attr, 1, "then_branch");
        w_msg(&attr, 6, &body);
        w_int(&attr, 20, 5);
        const char *in[] = {"cond", NULL}, *out[] = {"y", NULL};
        pbw ifn = node("if1", "If", in, out);
        w_msg(&ifn, 5, &attr);
        w_msg(&g, 1, &ifn); /* uses "late" before its producer */
        add_node(&g, "late_producer", "Relu", "x", NULL, "late");
        add_io(&g, 11, "x");
        add_io(&g, 11, "cond");
        add_io(&g, 12, "y");
        mb = model_of(&g);
        m = NULL;
        kiln_status st = kiln__onnx_model_parse(&alloc, mb.d, mb.n, NULL, &m);
        if (!bad) {
            KT_OK(st);
            if (m) {
                const kiln__onnx_graph *gr = m->graph;
                KT_CHECK(gr->nb_nodes == 2 && !strcmp(gr->nodes[0].name, "late_producer") &&
                         !strcmp(gr->nodes[1].name, "if1"));
                const kiln__onnx_graph *then = NULL;
                KT_OK(kiln__onnx_attr_graph(&gr->nodes[1], "then_branch", &then));
                KT_CHECK(then && !strcmp(then->name, "then") && then->nb_nodes == 1);
            }
        } else {
            KT_STATUS(st, KILN_INVALID_ARGUMENT);
            KT_CHECK(strstr(kiln_last_error(), "node 'if1' (If): attribute 'then_branch': graph 'then': node 'inner' "
                                               "(Add): input 1: 'ghost' is not produced") != NULL);
        }
        kiln__onnx_model_free(m);
        free(mb.d);
    }

    /* An initializer listed among the inputs (IR < 4 style) is not a duplicate. */
    add_node(&g, "a", "Add", "x", "w", "y");
    add_io(&g, 11, "x");
    add_io(&g, 11, "w");
    add_io(&g, 12, "y");
    pbw t = tensor_raw("w", KILN_FLOAT32, 2, dims22, w22, 16);
    w_msg(&g, 5, &t);
    mb = model_of(&g);
    KT_OK(kiln__onnx_model_parse(&alloc, mb.d, mb.n, NULL, &m));
    kiln__onnx_model_free(m);
    free(mb.d);

    /* sparse initializers, map types and sparse attributes are refused clearly */
    add_node(&g, "a", "Relu", "x", NULL, "y");
    add_io(&g, 11, "x");
    add_io(&g, 12, "y");
    w_str(&g, 15, "");
    mb = model_of(&g);
    expect_fail("sparse initializer", &mb, KILN_UNSUPPORTED, "sparse initializers");

    pbw vi = {0}, type = {0}, map = {0};
    w_str(&vi, 1, "x");
    w_int(&map, 1, KILN_INT64);
    w_msg(&type, 5, &map);
    w_msg(&vi, 2, &type);
    w_msg(&g, 11, &vi);
    mb = model_of(&g);
    expect_fail("map type", &mb, KILN_UNSUPPORTED, "input 'x': map types");

    pbw attr = {0};
    w_str(&attr, 1, "sp");
    w_int(&attr, 20, 11);
    const char *in[] = {NULL}, *out[] = {"y", NULL};
    pbw n = node("c", "Constant", in, out);
    w_msg(&n, 5, &attr);
    w_msg(&g, 1, &n);
    mb = model_of(&g);
    expect_fail("sparse attribute", &mb, KILN_UNSUPPORTED, "node 'c' (Constant): attribute 'sp': sparse tensor");

    /* wrong wire type inside a node */
    pbw bad = {0};
    w_int(&bad, 4, 3); /* op_type as varint */
    w_msg(&g, 1, &bad);
    mb = model_of(&g);
    expect_fail("op_type wire", &mb, KILN_INVALID_ARGUMENT, "NodeProto.op_type (field 4)");

    /* attribute declared INTS holding a float */
    attr = attr_float("k", 1.0f);
    memset(&bad, 0, sizeof bad);
    w_str(&bad, 1, "k");
    w_f32(&bad, 2, 1.0f);
    w_int(&bad, 20, 7);
    free(attr.d);
    n = node("c", "Constant", in, out);
    w_msg(&n, 5, &bad);
    w_msg(&g, 1, &n);
    mb = model_of(&g);
    expect_fail("attr mismatch", &mb, KILN_INVALID_ARGUMENT,
                "attribute 'k': declared INTS but holds a value of another type");

    mb = (pbw){0};
    expect_fail("empty", &mb, KILN_INVALID_ARGUMENT, "ModelProto has no graph");
}

/* ---- test-data values ---- */

static void test_values(void) {
    const int64_t d2[1] = {2};
    pbw seq = {0}, t1 = tensor_raw("", KILN_FLOAT32, 1, d2, w22, 8),
        t2 = tensor_raw("", KILN_FLOAT32, 1, d2, w22 + 2, 8);
    w_str(&seq, 1, "s");
    w_int(&seq, 2, 1);
    w_msg(&seq, 3, &t1);
    w_msg(&seq, 3, &t2);
    kiln__onnx_value_file *vf = NULL;
    KT_OK(kiln__onnx_value_parse(&alloc, seq.d, seq.n, KILN__ONNX_VALUE_SEQUENCE, &vf));
    if (vf) {
        KT_CHECK(vf->value.kind == KILN__ONNX_VALUE_SEQUENCE && vf->value.count == 2 &&
                 vf->value.items[1].tensor->count == 2 && !strcmp(vf->value.name, "s"));
        kiln__onnx_value_free(vf);
    }
    pbw opt = {0};
    w_int(&opt, 2, 3);
    w_msg(&opt, 5, &seq);
    KT_OK(kiln__onnx_value_parse(&alloc, opt.d, opt.n, KILN__ONNX_VALUE_OPTIONAL, &vf));
    if (vf) {
        KT_CHECK(vf->value.value && vf->value.value->kind == KILN__ONNX_VALUE_SEQUENCE && vf->value.value->count == 2);
        kiln__onnx_value_free(vf);
    }
    free(opt.d);
    opt = (pbw){0};
    KT_OK(kiln__onnx_value_parse(&alloc, NULL, 0, KILN__ONNX_VALUE_OPTIONAL, &vf)); /* empty optional */
    if (vf) {
        KT_CHECK(vf->value.value == NULL);
        kiln__onnx_value_free(vf);
    }
    w_int(&opt, 2, 1); /* says tensor, holds a sequence */
    w_msg(&opt, 5, &seq);
    KT_STATUS(kiln__onnx_value_parse(&alloc, opt.d, opt.n, KILN__ONNX_VALUE_OPTIONAL, &vf), KILN_INVALID_ARGUMENT);
    free(opt.d);
    /* sequence elements must match elem_type */
    w_int(&seq, 2, 3);
    t1 = tensor_raw("", KILN_FLOAT32, 1, d2, w22, 8);
    w_msg(&seq, 3, &t1);
    KT_STATUS(kiln__onnx_value_parse(&alloc, seq.d, seq.n, KILN__ONNX_VALUE_SEQUENCE, &vf), KILN_INVALID_ARGUMENT);
    free(seq.d);
    /* deep nesting is bounded */
    pbw deep = {0};
    for (int i = 0; i < 200; i++) {
        pbw outer = {0};
        w_int(&outer, 2, 5);
        w_msg(&outer, 7, &deep);
        deep = outer;
    }
    KT_STATUS(kiln__onnx_value_parse(&alloc, deep.d, deep.n, KILN__ONNX_VALUE_OPTIONAL, &vf), KILN_INVALID_ARGUMENT);
    KT_CHECK(strstr(kiln_last_error(), "nested deeper") != NULL);
    free(deep.d);
}

/* ---- the ONNX conformance data ---- */

static int64_t tensors_seen, values_seen, models_seen;

static void walk_graph(const kiln__onnx_graph *g);

static void walk_tensor(const kiln__onnx_tensor *t) {
    tensors_seen++;
    if (t->data_type == KILN_STRING || !t->count) return;
    kiln__onnx_data d;
    kiln_status st = kiln__onnx_tensor_data(&alloc, t, &d);
    if (st == KILN_UNSUPPORTED) return; /* complex: no fixed layout in kiln */
    KT_OK(st);
    size_t bytes = 0;
    KT_CHECK(kiln__onnx_type_bytes(t->data_type, t->count, &bytes) && d.size == bytes);
    kiln__onnx_data_release(&alloc, &d);
}

static void walk_graph(const kiln__onnx_graph *g) {
    for (int32_t i = 0; i < g->nb_initializers; i++) walk_tensor(&g->initializers[i]);
    for (int32_t i = 0; i < g->nb_nodes; i++)
        for (int32_t k = 0; k < g->nodes[i].nb_attrs; k++) {
            const kiln__onnx_attr *a = &g->nodes[i].attrs[k];
            if (a->t) walk_tensor(a->t);
            if (a->g) walk_graph(a->g);
            for (int64_t j = 0; a->type == KILN__ONNX_ATTR_TENSORS && j < a->count; j++) walk_tensor(&a->tensors[j]);
            for (int64_t j = 0; a->type == KILN__ONNX_ATTR_GRAPHS && j < a->count; j++) walk_graph(&a->graphs[j]);
        }
}

/* Checks a decoded value against the declared type of the graph input/output. */
static void check_value(const char *path, const kiln__onnx_value *v, const kiln__onnx_type *type) {
    values_seen++;
    if (v->kind == KILN__ONNX_VALUE_TENSOR) {
        const kiln__onnx_tensor *t = v->tensor;
        walk_tensor(t);
        if (type->kind != KILN__ONNX_TYPE_TENSOR) return;
        bool ok = type->elem_type == 0 || t->data_type == type->elem_type;
        if (type->has_shape) {
            ok &= type->rank == t->nb_dims;
            for (int32_t i = 0; ok && i < type->rank; i++)
                ok &= type->dims[i].value < 0 || type->dims[i].value == t->dims[i];
        }
        kt_checks++;
        if (!ok) {
            kt_failures++;
            fprintf(stderr, "%s: tensor does not match the declared type\n", path);
        }
    } else if (v->kind == KILN__ONNX_VALUE_SEQUENCE) {
        for (int64_t i = 0; i < v->count; i++) check_value(path, &v->items[i], type->elem ? type->elem : type);
    } else if (v->value) {
        check_value(path, v->value, type->elem ? type->elem : type);
    }
}

static void check_case(const char *dir) {
    char path[2048];
    snprintf(path, sizeof path, "%s/model.onnx", dir);
    kiln__onnx_model *m = NULL;
    kiln_status st = kiln__onnx_model_load(&alloc, path, &m);
    kt_checks++;
    if (st != KILN_OK) {
        kt_failures++;
        fprintf(stderr, "%s: %s\n", path, kiln_last_error());
        return;
    }
    models_seen++;
    walk_graph(m->graph);
    const kiln__onnx_graph *g = m->graph;
    /* input_<i>.pb follows graph.input order, minus initializers */
    int32_t idx = 0;
    for (int32_t i = 0; i < g->nb_inputs; i++) {
        bool is_init = false;
        for (int32_t k = 0; k < g->nb_initializers; k++) is_init |= !strcmp(g->initializers[k].name, g->inputs[i].name);
        if (is_init) continue;
        snprintf(path, sizeof path, "%s/test_data_set_0/input_%d.pb", dir, idx++);
        if (access(path, F_OK) != 0) continue;
        kiln__onnx_value_file *vf = NULL;
        st = kiln__onnx_value_load(&alloc, path, kiln__onnx_value_kind_of(&g->inputs[i].type), &vf);
        kt_checks++;
        if (st != KILN_OK) {
            kt_failures++;
            fprintf(stderr, "%s\n", kiln_last_error());
        } else {
            check_value(path, &vf->value, &g->inputs[i].type);
        }
        kiln__onnx_value_free(vf);
    }
    for (int32_t i = 0; i < g->nb_outputs; i++) {
        snprintf(path, sizeof path, "%s/test_data_set_0/output_%d.pb", dir, i);
        if (access(path, F_OK) != 0) continue;
        kiln__onnx_value_file *vf = NULL;
        st = kiln__onnx_value_load(&alloc, path, kiln__onnx_value_kind_of(&g->outputs[i].type), &vf);
        kt_checks++;
        if (st != KILN_OK) {
            kt_failures++;
            fprintf(stderr, "%s\n", kiln_last_error());
        } else {
            check_value(path, &vf->value, &g->outputs[i].type);
        }
        kiln__onnx_value_free(vf);
    }
    kiln__onnx_model_free(m);
}

static void test_known_content(const char *root) {
    char path[2048];
    kiln__onnx_model *m = NULL;
    snprintf(path, sizeof path, "%s/node/test_abs/model.onnx", root);
    KT_OK(kiln__onnx_model_load(&alloc, path, &m));
    if (m) {
        const kiln__onnx_graph *g = m->graph;
        KT_CHECK(m->ir_version == 7 && kiln__onnx_opset_version(m, "") == 13);
        KT_CHECK(g->nb_inputs == 1 && !strcmp(g->inputs[0].name, "x") && g->inputs[0].type.elem_type == KILN_FLOAT32);
        KT_CHECK(g->inputs[0].type.rank == 3 && g->inputs[0].type.dims[0].value == 3 &&
                 g->inputs[0].type.dims[1].value == 4 && g->inputs[0].type.dims[2].value == 5);
        KT_CHECK(g->nb_nodes == 1 && !strcmp(g->nodes[0].op_type, "Abs"));
        kiln__onnx_model_free(m);
    }
    /* the output data is abs of the input data */
    kiln__onnx_value_file *in = NULL, *out = NULL;
    snprintf(path, sizeof path, "%s/node/test_abs/test_data_set_0/input_0.pb", root);
    KT_OK(kiln__onnx_value_load(&alloc, path, KILN__ONNX_VALUE_TENSOR, &in));
    snprintf(path, sizeof path, "%s/node/test_abs/test_data_set_0/output_0.pb", root);
    KT_OK(kiln__onnx_value_load(&alloc, path, KILN__ONNX_VALUE_TENSOR, &out));
    if (in && out) {
        kiln__onnx_data a, b;
        KT_OK(kiln__onnx_tensor_data(&alloc, in->value.tensor, &a));
        KT_OK(kiln__onnx_tensor_data(&alloc, out->value.tensor, &b));
        KT_CHECK(a.size == 240 && b.size == 240);
        float x[60], y[60], ref[60];
        memcpy(x, a.data, sizeof x);
        memcpy(y, b.data, sizeof y);
        for (int i = 0; i < 60; i++) ref[i] = fabsf(x[i]);
        kt_close("abs data", y, ref, 60, 0, 0);
        kiln__onnx_data_release(&alloc, &a);
        kiln__onnx_data_release(&alloc, &b);
    }
    kiln__onnx_value_free(in);
    kiln__onnx_value_free(out);

    snprintf(path, sizeof path, "%s/node/test_conv_with_strides_padding/model.onnx", root);
    KT_OK(kiln__onnx_model_load(&alloc, path, &m));
    if (m) {
        const kiln__onnx_node *n = &m->graph->nodes[0];
        const int64_t *v = NULL;
        int64_t count = 0;
        KT_OK(kiln__onnx_attr_ints(n, "pads", &v, &count));
        KT_CHECK(!strcmp(n->op_type, "Conv") && count == 4 && v[0] == 1 && v[3] == 1);
        KT_OK(kiln__onnx_attr_ints(n, "strides", &v, &count));
        KT_CHECK(count == 2 && v[0] == 2 && v[1] == 2);
        kiln__onnx_model_free(m);
    }

    snprintf(path, sizeof path, "%s/node/test_if/model.onnx", root);
    KT_OK(kiln__onnx_model_load(&alloc, path, &m));
    if (m) {
        const kiln__onnx_graph *else_g = NULL;
        KT_OK(kiln__onnx_attr_graph(&m->graph->nodes[0], "else_branch", &else_g));
        const kiln__onnx_tensor *value = NULL;
        if (else_g) KT_OK(kiln__onnx_attr_tensor(&else_g->nodes[0], "value", &value));
        KT_CHECK(value && value->count == 5);
        if (value) {
            float v[5];
            memcpy(v, value->raw, sizeof v);
            KT_CHECK(v[0] == 5.0f && v[4] == 1.0f);
        }
        kiln__onnx_model_free(m);
    }

    /* typed fields in real files: float8 and float4 in int32_data, strings */
    snprintf(path, sizeof path, "%s/node/test_dequantizelinear_e4m3fn/test_data_set_0/input_0.pb", root);
    const uint8_t e4m3[5] = {0, 48, 56, 126, 237};
    kiln__onnx_value_file *vf = NULL;
    KT_OK(kiln__onnx_value_load(&alloc, path, KILN__ONNX_VALUE_TENSOR, &vf));
    if (vf) {
        kiln__onnx_data d;
        KT_OK(kiln__onnx_tensor_data(&alloc, vf->value.tensor, &d));
        KT_CHECK(d.size == 5 && d.owned && !memcmp(d.data, e4m3, 5));
        kiln__onnx_data_release(&alloc, &d);
        kiln__onnx_value_free(vf);
    }
    snprintf(path, sizeof path, "%s/node/test_dequantizelinear_float4e2m1/test_data_set_0/input_0.pb", root);
    const uint8_t fp4[3] = {32, 58, 14};
    KT_OK(kiln__onnx_value_load(&alloc, path, KILN__ONNX_VALUE_TENSOR, &vf));
    if (vf) {
        kiln__onnx_data d;
        KT_OK(kiln__onnx_tensor_data(&alloc, vf->value.tensor, &d));
        KT_CHECK(vf->value.tensor->dtype == KILN_FP4_E2M1 && d.size == 3 && !memcmp(d.data, fp4, 3));
        kiln__onnx_data_release(&alloc, &d);
        kiln__onnx_value_free(vf);
    }
    snprintf(path, sizeof path, "%s/node/test_equal_string/test_data_set_0/input_0.pb", root);
    KT_OK(kiln__onnx_value_load(&alloc, path, KILN__ONNX_VALUE_TENSOR, &vf));
    if (vf) {
        const kiln__onnx_tensor *t = vf->value.tensor;
        KT_CHECK(t->count == 2 && t->strings[1].size == 7 && !memcmp(t->strings[1].data, "string2", 7));
        kiln__onnx_value_free(vf);
    }
}

static void test_corpus(void) {
    char root[1024];
    const char *data = getenv("KILN_TEST_DATA");
    if (data) {
        snprintf(root, sizeof root, "%s/../../../shared/onnx-tests", data);
    } else { /* tests/unit/this.c -> <repo>/../shared */
        snprintf(root, sizeof root, "%s", __FILE__);
        char *slash = strrchr(root, '/');
        if (slash) *slash = 0;
        strncat(root, "/../../../shared/onnx-tests", sizeof root - strlen(root) - 1);
    }
    struct stat st;
    if (stat(root, &st) != 0) {
        printf("SKIP conformance data: %s not found\n", root);
        return;
    }
    test_known_content(root);
    const char *folders[] = {"node", "simple", "pytorch-converted", "pytorch-operator"};
    int64_t cases = 0;
    for (size_t f = 0; f < KILN__ARRAY_LEN(folders); f++) {
        char dir[1100];
        snprintf(dir, sizeof dir, "%s/%s", root, folders[f]);
        DIR *d = opendir(dir);
        if (!d) continue;
        struct dirent *e;
        while ((e = readdir(d))) {
            if (e->d_name[0] == '.') continue;
            char cdir[1400];
            snprintf(cdir, sizeof cdir, "%s/%s", dir, e->d_name);
            check_case(cdir);
            cases++;
        }
        closedir(d);
    }
    printf("conformance data: %lld cases, %lld models, %lld values, %lld tensors decoded\n", (long long)cases,
           (long long)models_seen, (long long)values_seen, (long long)tensors_seen);
    KT_CHECK(cases > 1900 && models_seen == cases);
}

int main(void) {
    kt_seed();
    kiln__alloc_init(&alloc, NULL);
    test_small_model();
    test_wire_errors();
    test_tensor_errors();
    test_typed_fields();
    test_external_data();
    test_graph_checks();
    test_values();
    test_corpus();
    return kt_summary("test_onnx_reader");
}
