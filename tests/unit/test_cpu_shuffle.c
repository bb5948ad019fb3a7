/* Shuffle, concat, shape, identity and constant: kernels against reference index loops on
 * random inputs, shape inference (known and unknown dims), error cases, the public API and an
 * end-to-end run through the builder and an execution context. */
#include "layer_harness.h"
#include "cpu/gemm.h"

LH_LINK(shuffle)
LH_LINK(concat)
LH_LINK(shape)
LH_LINK(identity)
LH_LINK(constant)

static const kiln_dtype kDtypes[] = {KILN_UINT8, KILN_FLOAT16, KILN_FLOAT32, KILN_INT64};

static kiln_dtype random_dtype(void) { return kDtypes[kt_randi(0, 3)]; }

static void random_perm(int32_t *p, int32_t n) {
    for (int32_t i = 0; i < n; i++) p[i] = i;
    for (int32_t i = n - 1; i > 0; i--) {
        int32_t j = (int32_t)kt_randi(0, i), t = p[i];
        p[i] = p[j];
        p[j] = t;
    }
}

/* Reference transpose: output dim k is input dim perm[k]. */
static void ref_transpose(const void *src, const kiln_dims *in, const int32_t *perm, size_t es, void *dst) {
    kiln_dims out = {.nb_dims = in->nb_dims};
    for (int32_t k = 0; k < in->nb_dims; k++) out.d[k] = in->d[perm[k]];
    int64_t istr[KILN_MAX_DIMS], c[KILN_MAX_DIMS];
    lh_strides(in, istr);
    int64_t n = kiln__dims_volume(in);
    for (int64_t o = 0; o < n; o++) {
        lh_unravel(o, &out, c);
        int64_t off = 0;
        for (int32_t k = 0; k < out.nb_dims; k++) off += c[k] * istr[perm[k]];
        memcpy((char *)dst + o * es, (const char *)src + off * es, es);
    }
}

static void check_transpose(kiln_dims in, const int32_t *perm, kiln_dtype dt) {
    size_t es = kiln_dtype_bits(dt) / 8, bytes = (size_t)kiln__dims_volume(&in) * es;
    void *x = malloc(bytes + 1), *ref = malloc(bytes + 1);
    lh_fill_bytes(x, bytes);
    kiln_layer l = lh_layer(KILN_LAYER_SHUFFLE, 1);
    l.p.shuffle.has_first_perm = 1;
    memcpy(l.p.shuffle.first_perm, perm, sizeof(int32_t) * (size_t)in.nb_dims);
    kiln__value xin = lh_val(dt, in, x), y;
    KT_OK(lh_run(&l, &xin, &y));
    ref_transpose(x, &in, perm, es, ref);
    for (int32_t k = 0; k < in.nb_dims; k++) KT_CHECK(y.dims.d[k] == in.d[perm[k]]);
    KT_CHECK(y.bytes == bytes && memcmp(y.data, ref, bytes) == 0);
    free(y.data);
    free(x);
    free(ref);
}

static void test_transpose_random(void) {
    for (int trial = 0; trial < 60; trial++) {
        kiln_dims d = {.nb_dims = (int32_t)kt_randi(1, 6)};
        for (int32_t i = 0; i < d.nb_dims; i++) d.d[i] = kt_randi(1, 5);
        int32_t perm[KILN_MAX_DIMS];
        random_perm(perm, d.nb_dims);
        check_transpose(d, perm, random_dtype());
    }
    /* Large enough for the tiled and parallel paths, with ragged tile edges. */
    check_transpose(DIMS(64, 129, 67), (int32_t[]){2, 0, 1}, KILN_FLOAT32);
    check_transpose(DIMS(3, 250, 301), (int32_t[]){0, 2, 1}, KILN_UINT8);
    check_transpose(DIMS(2, 3, 100, 70), (int32_t[]){1, 0, 3, 2}, KILN_INT64);
    check_transpose(DIMS(8, 1, 33, 1, 40), (int32_t[]){4, 3, 2, 1, 0}, KILN_FLOAT16);
    check_transpose(DIMS(16, 8, 32, 32), (int32_t[]){0, 2, 3, 1}, KILN_FLOAT32);
    check_transpose(DIMS(1, 128, 12, 64), (int32_t[]){0, 2, 3, 1}, KILN_FLOAT32); /* attention's K^T */
    check_transpose(DIMS(1000, 1, 71), (int32_t[]){0, 2, 1}, KILN_FLOAT32); /* memory order kept: a copy */
    check_transpose(DIMS(70, 13, 21), (int32_t[]){2, 1, 0}, KILN_INT32); /* 8x8 blocks with ragged edges */
    check_transpose(DIMS(0, 3), (int32_t[]){1, 0}, KILN_FLOAT32);
}

static void test_transpose_reshape_transpose(void) {
    kiln_dims in = DIMS(2, 3, 4, 5);
    int32_t p1[] = {0, 2, 1, 3}, p2[] = {1, 0};
    int64_t n = kiln__dims_volume(&in);
    float *x = malloc(sizeof(float) * n), *t1 = malloc(sizeof(float) * n), *ref = malloc(sizeof(float) * n);
    kt_fill(x, n, -1, 1);
    kiln_layer l = lh_layer(KILN_LAYER_SHUFFLE, 1);
    kiln__shuffle_params *p = &l.p.shuffle;
    p->has_first_perm = p->has_reshape = p->has_second_perm = 1;
    memcpy(p->first_perm, p1, sizeof p1);
    memcpy(p->second_perm, p2, sizeof p2);
    p->reshape = DIMS(8, -1);
    kiln__value xin = lh_val(KILN_FLOAT32, in, x), y;
    KT_OK(lh_run(&l, &xin, &y));
    KT_CHECK(y.dims.nb_dims == 2 && y.dims.d[0] == 15 && y.dims.d[1] == 8);
    ref_transpose(x, &in, p1, 4, t1);
    kiln_dims mid = DIMS(8, 15);
    ref_transpose(t1, &mid, p2, 4, ref);
    KT_CHECK(memcmp(y.data, ref, sizeof(float) * n) == 0);
    free(y.data);
    /* Second transpose only. */
    p->has_first_perm = 0;
    KT_OK(lh_run(&l, &xin, &y));
    ref_transpose(x, &mid, p2, 4, ref);
    KT_CHECK(memcmp(y.data, ref, sizeof(float) * n) == 0);
    free(y.data);
    free(x);
    free(t1);
    free(ref);
}

static void expect_reshape(kiln_dims in, kiln_dims spec, int allow_zero, kiln_dims want) {
    kiln_layer l = lh_layer(KILN_LAYER_SHUFFLE, 1);
    l.p.shuffle.has_reshape = 1;
    l.p.shuffle.reshape = spec;
    l.p.shuffle.allow_zero = allow_zero;
    int64_t n = kiln__dims_volume(&in);
    float *x = malloc(sizeof(float) * (size_t)(n > 0 ? n : 1));
    kt_fill(x, n > 0 ? n : 0, -1, 1);
    kiln__value xin = lh_val(KILN_FLOAT32, in, x), y;
    if (n >= 0) {
        KT_OK(lh_run(&l, &xin, &y));
        KT_CHECK(kiln__dims_equal(&y.dims, &want));
        KT_CHECK(n == 0 || memcmp(y.data, x, sizeof(float) * (size_t)n) == 0);
        free(y.data);
    } else {
        KT_OK(lh_infer(&l, &xin, &y));
        KT_CHECK(kiln__dims_equal(&y.dims, &want));
    }
    free(x);
}

static void expect_shuffle_error(kiln_layer *l, kiln__value *in) {
    kiln__value y;
    KT_STATUS(lh_infer(l, in, &y), KILN_INVALID_ARGUMENT);
    KT_CHECK(lh_names_layer());
}

static void test_reshape(void) {
    expect_reshape(DIMS(2, 3, 4), DIMS(0, -1), 0, DIMS(2, 12));
    expect_reshape(DIMS(2, 3, 4), DIMS(4, 0, 2), 0, DIMS(4, 3, 2));
    expect_reshape(DIMS(2, 3, 4), DIMS(24), 0, DIMS(24));
    expect_reshape(DIMS(2, 3, 4), DIMS(-1, 2, 1, 2), 0, DIMS(6, 2, 1, 2));
    expect_reshape(DIMS(0, 3, 4), DIMS(3, 4, 0), 1, DIMS(3, 4, 0));
    expect_reshape(DIMS(0, 3, 4), DIMS(-1, 4), 0, DIMS(0, 4));
    expect_reshape(DIMS(6), DIMS(2, 3), 0, DIMS(2, 3));
    expect_reshape(DIMS(1, 1), DIMS0, 0, DIMS0);
    expect_reshape(DIMS(1, 128, 12, 64), DIMS(1, 128, 768), 0, DIMS(1, 128, 768)); /* copied in shared pieces */
    expect_reshape(DIMS(7, 5003), DIMS(-1), 0, DIMS(35021));                     /* a ragged last piece */
    /* Unknown input dims: copies stay unknown; -1 cannot be inferred. */
    expect_reshape(DIMS(-1, 4), DIMS(0, 2, 2), 0, DIMS(-1, 2, 2));
    expect_reshape(DIMS(-1, 4), DIMS(-1, 2), 0, DIMS(-1, 2));

    kiln_layer l = lh_layer(KILN_LAYER_SHUFFLE, 1);
    float x[24];
    kiln__value xin = lh_val(KILN_FLOAT32, DIMS(2, 3, 4), x);
    l.p.shuffle.has_reshape = 1;
    l.p.shuffle.reshape = DIMS(-1, -1);
    expect_shuffle_error(&l, &xin);
    l.p.shuffle.reshape = DIMS(5, 5);
    expect_shuffle_error(&l, &xin);
    l.p.shuffle.reshape = DIMS(5, -1);
    expect_shuffle_error(&l, &xin);
    l.p.shuffle.reshape = DIMS(2, 3, 4, 0);
    expect_shuffle_error(&l, &xin);
    l.p.shuffle.reshape = DIMS(2, -3, 4);
    expect_shuffle_error(&l, &xin);
    kiln__value empty = lh_val(KILN_FLOAT32, DIMS(0, 3, 4), x);
    l.p.shuffle.reshape = DIMS(0, -1); /* -1 is ambiguous next to a zero (numpy refuses it too) */
    expect_shuffle_error(&l, &empty);
    l.p.shuffle.allow_zero = 1;
    l.p.shuffle.reshape = DIMS(0, -1);
    expect_shuffle_error(&l, &xin);
    l.p.shuffle.has_reshape = 0;
    l.p.shuffle.has_first_perm = 1;
    memcpy(l.p.shuffle.first_perm, (int32_t[]){0, 0, 1}, 3 * sizeof(int32_t));
    expect_shuffle_error(&l, &xin);
    memcpy(l.p.shuffle.first_perm, (int32_t[]){0, 3, 1}, 3 * sizeof(int32_t));
    expect_shuffle_error(&l, &xin);
}

static void test_shape_tensor_input(void) {
    float x[24];
    kt_fill(x, 24, -1, 1);
    int64_t spec[] = {4, 0, -1};
    int32_t spec32[] = {-1, 6};
    kiln_layer l = lh_layer(KILN_LAYER_SHUFFLE, 2);
    l.p.shuffle.has_reshape = 1;
    l.p.shuffle.reshape = DIMS(99); /* replaced by the input */
    kiln__value in[2] = {lh_val(KILN_FLOAT32, DIMS(2, 3, 4), x), lh_val(KILN_INT64, DIMS(3), spec)}, y;
    KT_OK(lh_run(&l, in, &y));
    KT_CHECK(kiln__dims_equal(&y.dims, &DIMS(4, 3, 2)));
    KT_CHECK(memcmp(y.data, x, sizeof x) == 0);
    free(y.data);
    in[1] = lh_val(KILN_INT32, DIMS(2), spec32);
    KT_OK(lh_run(&l, in, &y));
    KT_CHECK(kiln__dims_equal(&y.dims, &DIMS(4, 6)));
    free(y.data);
    /* Values unknown at build time: rank from the length, dims unknown. */
    in[1] = lh_val(KILN_INT64, DIMS(3), NULL);
    KT_OK(lh_infer(&l, in, &y));
    KT_CHECK(kiln__dims_equal(&y.dims, &DIMS(-1, -1, -1)));
    in[1] = lh_val(KILN_FLOAT32, DIMS(3), x);
    KT_STATUS(lh_infer(&l, in, &y), KILN_INVALID_ARGUMENT);
}

/* ------------------------------------------------------------ concat */

static void test_concat_random(void) {
    for (int trial = 0; trial < 40; trial++) {
        int32_t rank = (int32_t)kt_randi(1, 5), n = (int32_t)kt_randi(1, 4);
        int32_t axis = (int32_t)kt_randi(0, rank - 1);
        kiln_dtype dt = random_dtype();
        size_t es = kiln_dtype_bits(dt) / 8;
        kiln_dims base = {.nb_dims = rank};
        for (int32_t i = 0; i < rank; i++) base.d[i] = kt_randi(1, 4);
        if (trial == 7) base.d[(axis + 1) % rank] = rank > 1 ? 0 : base.d[0]; /* empty on another dim */
        kiln__value in[4];
        void *bufs[4];
        int64_t offset[5] = {0};
        for (int32_t i = 0; i < n; i++) {
            kiln_dims d = base;
            d.d[axis] = kt_randi(0, 3); /* zero-size inputs too */
            offset[i + 1] = offset[i] + d.d[axis];
            size_t bytes = (size_t)kiln__dims_volume(&d) * es;
            bufs[i] = malloc(bytes + 1);
            lh_fill_bytes(bufs[i], bytes);
            in[i] = lh_val(dt, d, bufs[i]);
        }
        kiln_layer l = lh_layer(KILN_LAYER_CONCAT, n);
        l.p.concat.axis = kt_randi(0, 1) ? axis : axis - rank; /* negative axes too */
        kiln__value y;
        KT_OK(lh_run(&l, in, &y));
        KT_CHECK(y.dims.d[axis] == offset[n]);
        int64_t c[KILN_MAX_DIMS], istr[KILN_MAX_DIMS];
        int64_t total = kiln__dims_volume(&y.dims);
        int bad = 0;
        for (int64_t o = 0; o < total; o++) {
            lh_unravel(o, &y.dims, c);
            int32_t i = 0;
            while (c[axis] >= offset[i + 1]) i++;
            c[axis] -= offset[i];
            lh_strides(&in[i].dims, istr);
            int64_t off = 0;
            for (int32_t k = 0; k < rank; k++) off += c[k] * istr[k];
            bad |= memcmp((char *)y.data + o * es, (char *)bufs[i] + off * es, es) != 0;
        }
        KT_CHECK(!bad);
        free(y.data);
        for (int32_t i = 0; i < n; i++) free(bufs[i]);
    }
}

static void test_concat_infer(void) {
    kiln_layer l = lh_layer(KILN_LAYER_CONCAT, 2);
    kiln__value in[2] = {lh_val(KILN_FLOAT32, DIMS(-1, 3), NULL), lh_val(KILN_FLOAT32, DIMS(2, 3), NULL)}, y;
    l.p.concat.axis = 0;
    KT_OK(lh_infer(&l, in, &y));
    KT_CHECK(kiln__dims_equal(&y.dims, &DIMS(-1, 3)));
    l.p.concat.axis = -1;
    KT_OK(lh_infer(&l, in, &y));
    KT_CHECK(kiln__dims_equal(&y.dims, &DIMS(2, 6)));
    l.p.concat.axis = 2;
    KT_STATUS(lh_infer(&l, in, &y), KILN_INVALID_ARGUMENT);
    KT_CHECK(lh_names_layer());
    in[0] = lh_val(KILN_FLOAT32, DIMS(2, 4), NULL);
    l.p.concat.axis = 0;
    KT_STATUS(lh_infer(&l, in, &y), KILN_INVALID_ARGUMENT);
    KT_CHECK(lh_names_layer() && strstr(kiln_last_error(), "dim 1"));
    in[0] = lh_val(KILN_FLOAT32, DIMS(2, 3, 1), NULL);
    KT_STATUS(lh_infer(&l, in, &y), KILN_INVALID_ARGUMENT);
    in[0] = lh_val(KILN_INT32, DIMS(2, 3), NULL);
    KT_STATUS(lh_infer(&l, in, &y), KILN_INVALID_ARGUMENT);
}

/* ------------------------------------------------------------ shape, identity, constant */

static void test_shape_identity_constant(void) {
    struct {
        int64_t start, end;
        int32_t n;
        int64_t first;
    } cases[] = {{0, INT64_MAX, 4, 2}, {-1, INT64_MAX, 1, 5}, {0, -1, 3, 2},  {1, 2, 1, 3},
                 {3, 1, 0, 0},         {-10, 10, 4, 2},      {1, -1, 2, 3}, {2, INT64_MAX, 2, 4}};
    float x[120];
    kiln__value in = lh_val(KILN_FLOAT32, DIMS(2, 3, 4, 5), x), y;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        kiln_layer l = lh_layer(KILN_LAYER_SHAPE, 1);
        l.p.shape.start = cases[i].start;
        l.p.shape.end = cases[i].end;
        KT_OK(lh_run(&l, &in, &y));
        KT_CHECK(y.dtype == KILN_INT64 && y.dims.nb_dims == 1 && y.dims.d[0] == cases[i].n);
        if (cases[i].n) KT_CHECK(((int64_t *)y.data)[0] == cases[i].first);
        free(y.data);
    }
    kiln_layer l = lh_layer(KILN_LAYER_SHAPE, 1);
    l.p.shape.end = INT64_MAX;
    kiln__value unk = lh_val(KILN_FLOAT32, DIMS(-1, 7), NULL);
    KT_OK(lh_infer(&l, &unk, &y));
    KT_CHECK(y.dims.nb_dims == 1 && y.dims.d[0] == 2);

    for (int32_t k = 0; k < 4; k++) {
        kiln_dtype dt = kDtypes[k];
        size_t bytes = 120 * (kiln_dtype_bits(dt) / 8);
        uint8_t buf[960];
        lh_fill_bytes(buf, bytes);
        kiln_layer id = lh_layer(KILN_LAYER_IDENTITY, 1);
        kiln__value v = lh_val(dt, DIMS(2, 3, 4, 5), buf);
        KT_OK(lh_run(&id, &v, &y));
        KT_CHECK(y.dtype == dt && kiln__dims_equal(&y.dims, &v.dims) && memcmp(y.data, buf, bytes) == 0);
        free(y.data);
    }

    kiln_layer c = lh_layer(KILN_LAYER_CONSTANT, 0);
    int32_t w[6] = {1, -2, 3, -4, 5, -6};
    c.weights = w;
    c.weights_bytes = sizeof w;
    c.p.constant.dtype = KILN_INT32;
    c.p.constant.dims = DIMS(2, 3);
    KT_OK(lh_run(&c, NULL, &y));
    KT_CHECK(y.dtype == KILN_INT32 && memcmp(y.data, w, sizeof w) == 0);
    free(y.data);
}

/* ------------------------------------------------------------ public API and end to end */

static void test_public_api(void) {
    kiln_builder *b = NULL;
    kiln_network *net = NULL;
    KT_OK(kiln_builder_create(NULL, &b));
    KT_OK(kiln_network_create(b, &net));
    kiln_tensor *x = NULL;
    KT_OK(kiln_network_add_input(net, "x", KILN_FLOAT32, &DIMS(2, 3, 4), &x));
    kiln_shuffle_desc sd = {.struct_size = sizeof(kiln_shuffle_desc)};
    sd.has_first_transpose = 1;
    memcpy(sd.first_transpose, (int32_t[]){2, 0, 1}, 3 * sizeof(int32_t));
    sd.has_reshape = 1;
    sd.reshape = DIMS(0, -1);
    kiln_layer *sh = NULL, *cat = NULL, *shape = NULL, *idl = NULL;
    KT_OK(kiln_network_add_shuffle(net, x, &sd, NULL, &sh));
    kiln_dims d;
    KT_OK(kiln_tensor_shape(kiln_layer_output(sh, 0), &d));
    KT_CHECK(kiln__dims_equal(&d, &DIMS(4, 6)));
    KT_CHECK(strcmp(kiln_layer_type_name(kiln_layer_get_type(sh)), "Shuffle") == 0);

    kiln_shuffle_desc bad = sd;
    bad.reshape = DIMS(5, -1);
    KT_STATUS(kiln_network_add_shuffle(net, x, &bad, NULL, NULL), KILN_INVALID_ARGUMENT);
    KT_CHECK(strstr(kiln_last_error(), "(Shuffle)") != NULL);
    bad = sd;
    memcpy(bad.first_transpose, (int32_t[]){2, 2, 1}, 3 * sizeof(int32_t));
    KT_STATUS(kiln_network_add_shuffle(net, x, &bad, NULL, NULL), KILN_INVALID_ARGUMENT);

    kiln__buf text;
    kiln__buf_init(&text, &lh_alloc);
    kiln__layer_ops_for(KILN_LAYER_SHUFFLE)->describe(sh, &text);
    kiln__buf_append(&text, "", 1);
    KT_CHECK(kiln__buf_status(&text) == KILN_OK && strstr((char *)text.data, "first_perm=[2,0,1]") &&
             strstr((char *)text.data, "reshape=[0,-1]"));
    kiln__buf_free(&text);

    kiln_tensor *two[2] = {kiln_layer_output(sh, 0), kiln_layer_output(sh, 0)};
    KT_OK(kiln_network_add_concat(net, two, 2, -2, &cat));
    KT_OK(kiln_tensor_shape(kiln_layer_output(cat, 0), &d));
    KT_CHECK(kiln__dims_equal(&d, &DIMS(8, 6)));
    kiln_tensor *mixed[2] = {x, kiln_layer_output(sh, 0)};
    KT_STATUS(kiln_network_add_concat(net, mixed, 2, 0, NULL), KILN_INVALID_ARGUMENT);
    KT_STATUS(kiln_network_add_concat(net, two, 0, 0, NULL), KILN_INVALID_ARGUMENT);

    KT_OK(kiln_network_add_shape(net, x, &shape));
    KT_OK(kiln_tensor_shape(kiln_layer_output(shape, 0), &d));
    KT_CHECK(kiln__dims_equal(&d, &DIMS(3)) && kiln_tensor_dtype(kiln_layer_output(shape, 0)) == KILN_INT64);
    KT_OK(kiln_network_add_identity(net, kiln_layer_output(cat, 0), &idl));
    KT_OK(kiln_network_mark_output(net, kiln_layer_output(idl, 0)));

    /* End to end: y = identity(concat([t, t], axis 0)) with t = reshape(transpose(x)). */
    float xv[24], t[24], want[48];
    kt_fill(xv, 24, -2, 2);
    ref_transpose(xv, &DIMS(2, 3, 4), (int32_t[]){2, 0, 1}, 4, t);
    memcpy(want, t, sizeof t);
    memcpy(want + 24, t, sizeof t);
    size_t out_bytes = 0;
    kiln_dims od;
    float *y = lh_execute(b, net, "x", xv, sizeof xv, &out_bytes, &od);
    if (y) {
        KT_CHECK(kiln__dims_equal(&od, &DIMS(8, 6)) && out_bytes == sizeof want);
        KT_CHECK(memcmp(y, want, sizeof want) == 0);
    }
    free(y);
    kiln_network_destroy(net);
    kiln_builder_destroy(b);
}

int main(void) {
    lh_init();
    /* The vector tiles, then the portable ones. */
    int top = kiln__cpu_simd();
    test_transpose_random();
    kiln__cpu_set_simd(KILN__SIMD_NONE);
    test_transpose_random();
    kiln__cpu_set_simd(top);
    test_transpose_reshape_transpose();
    test_reshape();
    test_shape_tensor_input();
    test_concat_random();
    test_concat_infer();
    test_shape_identity_constant();
    test_public_api();
    lh_done();
    return kt_summary("test_cpu_shuffle");
}
