/* Slice (ONNX semantics) and Gather (default, elements, nd): kernels against reference loops
 * on random inputs, shape inference with unknown values, errors, and the public API. */
#include "layer_harness.h"

LH_LINK(slice)
LH_LINK(gather)

/* ------------------------------------------------------------ slice */

/* The ONNX Slice rule, written out from the operator's text. */
static int64_t ref_slice_dim(int64_t d, int64_t start, int64_t end, int64_t step, int64_t *first) {
    if (start < 0) start += d;
    if (end < 0) end += d;
    if (step > 0) {
        start = start < 0 ? 0 : start > d ? d : start;
        end = end < 0 ? 0 : end > d ? d : end;
    } else {
        start = start < 0 ? 0 : start > d - 1 ? d - 1 : start;
        end = end < -1 ? -1 : end > d - 1 ? d - 1 : end;
    }
    int64_t n = 0;
    *first = start;
    for (int64_t i = start; step > 0 ? i < end : i > end; i += step) {
        n++;
        if ((step > 0 && i > INT64_MAX - step) || (step < 0 && i < INT64_MIN - step)) break;
    }
    return n;
}

static int64_t random_bound(int64_t d) {
    switch (kt_randi(0, 9)) {
    case 0: return INT64_MAX;
    case 1: return INT64_MIN;
    default: return kt_randi(-d - 2, d + 2);
    }
}

static void test_slice_random(void) {
    for (int trial = 0; trial < 200; trial++) {
        kiln_dims xd = {.nb_dims = (int32_t)kt_randi(1, 4)};
        for (int32_t i = 0; i < xd.nb_dims; i++) xd.d[i] = kt_randi(1, 6);
        int64_t n = kiln__dims_volume(&xd);
        float *x = malloc(sizeof(float) * (size_t)n);
        kt_fill(x, n, -1, 1);
        kiln_layer l = lh_layer(KILN_LAYER_SLICE, 1);
        kiln__slice_params *p = &l.p.slice;
        int32_t order[KILN_MAX_DIMS];
        for (int32_t i = 0; i < xd.nb_dims; i++) order[i] = i;
        for (int32_t i = xd.nb_dims - 1; i > 0; i--) {
            int32_t j = (int32_t)kt_randi(0, i), t = order[i];
            order[i] = order[j];
            order[j] = t;
        }
        p->nb_axes = (int32_t)kt_randi(1, xd.nb_dims);
        int64_t first[KILN_MAX_DIMS], step[KILN_MAX_DIMS], count[KILN_MAX_DIMS];
        for (int32_t i = 0; i < xd.nb_dims; i++) {
            first[i] = 0;
            step[i] = 1;
            count[i] = xd.d[i];
        }
        for (int32_t i = 0; i < p->nb_axes; i++) {
            int32_t a = order[i];
            p->axes[i] = kt_randi(0, 1) ? a : a - xd.nb_dims;
            p->starts[i] = random_bound(xd.d[a]);
            p->ends[i] = random_bound(xd.d[a]);
            do p->steps[i] = kt_randi(-3, 3);
            while (p->steps[i] == 0);
            if (kt_randi(0, 9) == 0) p->steps[i] = kt_randi(0, 1) ? INT64_MAX : INT64_MIN;
            step[a] = p->steps[i];
            count[a] = ref_slice_dim(xd.d[a], p->starts[i], p->ends[i], p->steps[i], &first[a]);
        }
        /* Half the time the lists come from int32/int64 inputs instead of the params. */
        int64_t lists64[4][KILN_MAX_DIMS];
        int32_t lists32[4][KILN_MAX_DIMS];
        kiln__value in[5] = {lh_val(KILN_FLOAT32, xd, x)};
        bool from_inputs = kt_randi(0, 1);
        bool use32 = kt_randi(0, 1);
        if (from_inputs) {
            for (int32_t i = 0; i < p->nb_axes; i++) {
                int64_t v[4] = {p->starts[i], p->ends[i], p->axes[i], p->steps[i]};
                for (int32_t w = 0; w < 4; w++) {
                    lists64[w][i] = v[w];
                    lists32[w][i] = (int32_t)(v[w] > INT32_MAX ? INT32_MAX : v[w] < INT32_MIN ? INT32_MIN : v[w]);
                }
            }
            if (use32) { /* int32 clamps the huge values, which clamp to the same ends */
                for (int32_t i = 0; i < p->nb_axes; i++) {
                    int32_t a = order[i];
                    count[a] = ref_slice_dim(xd.d[a], lists32[0][i], lists32[1][i], lists32[3][i], &first[a]);
                    step[a] = lists32[3][i];
                }
            }
            l.nb_inputs = 5;
            for (int32_t w = 0; w < 4; w++)
                in[w + 1] = use32 ? lh_val(KILN_INT32, DIMS(p->nb_axes), lists32[w])
                                  : lh_val(KILN_INT64, DIMS(p->nb_axes), lists64[w]);
            p->nb_axes = 0; /* the inputs alone decide */
        }
        kiln__value y;
        KT_OK(lh_run(&l, in, &y));
        bool shape_ok = y.dims.nb_dims == xd.nb_dims;
        for (int32_t i = 0; shape_ok && i < xd.nb_dims; i++) shape_ok = y.dims.d[i] == count[i];
        KT_CHECK(shape_ok);
        if (shape_ok) {
            int64_t total = kiln__dims_volume(&y.dims), c[KILN_MAX_DIMS], s[KILN_MAX_DIMS];
            lh_strides(&xd, s);
            int bad = 0;
            for (int64_t o = 0; o < total; o++) {
                lh_unravel(o, &y.dims, c);
                int64_t off = 0;
                for (int32_t k = 0; k < xd.nb_dims; k++) off += (first[k] + c[k] * step[k]) * s[k];
                bad |= ((float *)y.data)[o] != x[off];
            }
            KT_CHECK(!bad);
        }
        free(y.data);
        free(x);
    }
    /* A large slice for the parallel row copies. */
    kiln_dims xd = DIMS(64, 100, 90);
    int64_t n = kiln__dims_volume(&xd);
    float *x = malloc(sizeof(float) * (size_t)n);
    kt_fill(x, n, -1, 1);
    kiln_layer l = lh_layer(KILN_LAYER_SLICE, 1);
    l.p.slice = (kiln__slice_params){.nb_axes = 2, .axes = {2, 1}, .starts = {5, -1}, .ends = {85, 0}, .steps = {1, -2}};
    kiln__value in = lh_val(KILN_FLOAT32, xd, x), y;
    KT_OK(lh_run(&l, &in, &y));
    KT_CHECK(kiln__dims_equal(&y.dims, &DIMS(64, 50, 80)));
    int bad = 0;
    for (int64_t a = 0; a < 64; a++)
        for (int64_t b = 0; b < 50; b++)
            for (int64_t c = 0; c < 80; c++)
                bad |= ((float *)y.data)[(a * 50 + b) * 80 + c] != x[(a * 100 + 99 - 2 * b) * 90 + 5 + c];
    KT_CHECK(!bad);
    free(y.data);
    free(x);
}

static void expect_slice_dims(kiln_dims xd, kiln__slice_params sp, kiln_dims want) {
    kiln_layer l = lh_layer(KILN_LAYER_SLICE, 1);
    l.p.slice = sp;
    kiln__value in = lh_val(KILN_FLOAT32, xd, NULL), y;
    KT_OK(lh_infer(&l, &in, &y));
    KT_CHECK(kiln__dims_equal(&y.dims, &want));
}

static void test_slice_infer(void) {
    kiln_dims xd = DIMS(20, 10, 5);
    /* The ONNX node tests' cases. */
    expect_slice_dims(xd, (kiln__slice_params){3, {0, 1, 2}, {20, 10, 4}, {0, 0, 1}, {-1, -3, -2}}, DIMS(19, 3, 2));
    expect_slice_dims(xd, (kiln__slice_params){1, {1}, {1}, {1000}, {1}}, DIMS(20, 9, 5));
    expect_slice_dims(xd, (kiln__slice_params){1, {1}, {1000}, {1000}, {1}}, DIMS(20, 0, 5));
    expect_slice_dims(xd, (kiln__slice_params){3, {0, 1, 2}, {0, 0, 3}, {20, 10, 4}, {1, 1, 1}}, DIMS(20, 10, 1));
    expect_slice_dims(xd, (kiln__slice_params){1, {1}, {0}, {-1}, {1}}, DIMS(20, 9, 5));
    expect_slice_dims(xd, (kiln__slice_params){3, {0, -2, -1}, {0, 0, 3}, {20, 10, 4}, {1, 1, 1}}, DIMS(20, 10, 1));
    expect_slice_dims(xd, (kiln__slice_params){1, {0}, {-1}, {INT64_MIN}, {-1}}, DIMS(20, 10, 5));
    /* Unknown dims stay unknown only where sliced. */
    expect_slice_dims(DIMS(-1, 10), (kiln__slice_params){1, {1}, {2}, {8}, {3}}, DIMS(-1, 2));
    expect_slice_dims(DIMS(-1, 10), (kiln__slice_params){1, {0}, {2}, {8}, {3}}, DIMS(-1, 10));

    kiln_layer l = lh_layer(KILN_LAYER_SLICE, 1);
    kiln__value x = lh_val(KILN_FLOAT32, xd, NULL), y;
    l.p.slice = (kiln__slice_params){1, {0}, {0}, {5}, {0}};
    KT_STATUS(lh_infer(&l, &x, &y), KILN_INVALID_ARGUMENT);
    KT_CHECK(lh_names_layer());
    l.p.slice = (kiln__slice_params){2, {1, -2}, {0, 0}, {5, 5}, {1, 1}};
    KT_STATUS(lh_infer(&l, &x, &y), KILN_INVALID_ARGUMENT);
    l.p.slice = (kiln__slice_params){1, {3}, {0}, {5}, {1}};
    KT_STATUS(lh_infer(&l, &x, &y), KILN_INVALID_ARGUMENT);

    /* Inputs whose values are not known at build time. */
    int64_t axes[1] = {1};
    kiln__value in[5] = {x, lh_val(KILN_INT64, DIMS(1), NULL), lh_val(KILN_INT64, DIMS(1), NULL),
                         lh_val(KILN_INT64, DIMS(1), axes), {0}};
    l = lh_layer(KILN_LAYER_SLICE, 5);
    KT_OK(lh_infer(&l, in, &y));
    KT_CHECK(kiln__dims_equal(&y.dims, &DIMS(20, -1, 5)));
    in[3].data = NULL;
    KT_OK(lh_infer(&l, in, &y));
    KT_CHECK(kiln__dims_equal(&y.dims, &DIMS(-1, -1, -1)));
    in[3] = lh_val(KILN_FLOAT32, DIMS(1), axes);
    KT_STATUS(lh_infer(&l, in, &y), KILN_INVALID_ARGUMENT);
    in[3] = lh_val(KILN_INT64, DIMS(2), NULL);
    KT_STATUS(lh_infer(&l, in, &y), KILN_INVALID_ARGUMENT);
}

static void test_slice_public(void) {
    kiln_builder *b = NULL;
    kiln_network *net = NULL;
    KT_OK(kiln_builder_create(NULL, &b));
    KT_OK(kiln_network_create(b, &net));
    kiln_tensor *x = NULL;
    KT_OK(kiln_network_add_input(net, "x", KILN_FLOAT32, &DIMS(6, 5), &x));
    kiln_layer *sl = NULL;
    /* Reverse dim 0 entirely (the end would be -1: ONNX needs INT64_MIN there), every 2nd of dim 1. */
    KT_OK(kiln_network_add_slice(net, x, &DIMS(5, 0), &DIMS(6, 3), &DIMS(-1, 2), &sl));
    kiln_dims d;
    KT_OK(kiln_tensor_shape(kiln_layer_output(sl, 0), &d));
    KT_CHECK(kiln__dims_equal(&d, &DIMS(6, 3)));
    KT_STATUS(kiln_network_add_slice(net, x, &DIMS(5, 0), &DIMS(7, 3), &DIMS(-1, 2), NULL), KILN_INVALID_ARGUMENT);
    KT_STATUS(kiln_network_add_slice(net, x, &DIMS(0, 0), &DIMS(1, 3), &DIMS(1, 0), NULL), KILN_INVALID_ARGUMENT);
    KT_STATUS(kiln_network_add_slice(net, x, &DIMS(0), &DIMS(1), &DIMS(1), NULL), KILN_INVALID_ARGUMENT);
    KT_OK(kiln_network_mark_output(net, kiln_layer_output(sl, 0)));
    float xv[30], want[18];
    kt_fill(xv, 30, -1, 1);
    for (int i = 0; i < 6; i++)
        for (int j = 0; j < 3; j++) want[i * 3 + j] = xv[(5 - i) * 5 + 2 * j];
    size_t bytes = 0;
    kiln_dims od;
    float *y = lh_execute(b, net, "x", xv, sizeof xv, &bytes, &od);
    if (y) KT_CHECK(kiln__dims_equal(&od, &DIMS(6, 3)) && memcmp(y, want, sizeof want) == 0);
    free(y);
    kiln_network_destroy(net);
    kiln_builder_destroy(b);
}

/* ------------------------------------------------------------ gather */

static void fill_indices(void *idx, kiln_dtype t, int64_t n, int64_t dim) {
    for (int64_t i = 0; i < n; i++) {
        int64_t v = kt_randi(-dim, dim - 1);
        if (t == KILN_INT32) ((int32_t *)idx)[i] = (int32_t)v;
        else ((int64_t *)idx)[i] = v;
    }
}

static int64_t idx_at(const void *idx, kiln_dtype t, int64_t i, int64_t dim) {
    int64_t v = t == KILN_INT32 ? ((const int32_t *)idx)[i] : ((const int64_t *)idx)[i];
    return v < 0 ? v + dim : v;
}

static void test_gather_default(void) {
    for (int trial = 0; trial < 60; trial++) {
        kiln_dims dd = {.nb_dims = (int32_t)kt_randi(1, 4)}, id = {.nb_dims = (int32_t)kt_randi(0, 2)};
        for (int32_t i = 0; i < dd.nb_dims; i++) dd.d[i] = kt_randi(1, 5);
        for (int32_t i = 0; i < id.nb_dims; i++) id.d[i] = kt_randi(1, 4);
        int32_t axis = (int32_t)kt_randi(0, dd.nb_dims - 1);
        kiln_dtype it = kt_randi(0, 1) ? KILN_INT32 : KILN_INT64;
        int64_t n = kiln__dims_volume(&dd), ni = kiln__dims_volume(&id);
        int64_t *data = malloc(sizeof(int64_t) * (size_t)n), idx[16];
        for (int64_t i = 0; i < n; i++) data[i] = (int64_t)kt_rand_u64();
        fill_indices(idx, it, ni, dd.d[axis]);
        kiln_layer l = lh_layer(KILN_LAYER_GATHER, 2);
        l.p.gather.axis = kt_randi(0, 1) ? axis : axis - dd.nb_dims;
        kiln__value in[2] = {lh_val(KILN_INT64, dd, data), lh_val(it, id, idx)}, y;
        KT_OK(lh_run(&l, in, &y));
        KT_CHECK(y.dims.nb_dims == dd.nb_dims - 1 + id.nb_dims);
        int64_t outer = 1, inner = 1;
        for (int32_t i = 0; i < axis; i++) outer *= dd.d[i];
        for (int32_t i = axis + 1; i < dd.nb_dims; i++) inner *= dd.d[i];
        int bad = 0;
        for (int64_t o = 0; o < outer; o++)
            for (int64_t j = 0; j < ni; j++)
                for (int64_t k = 0; k < inner; k++)
                    bad |= ((int64_t *)y.data)[(o * ni + j) * inner + k] !=
                           data[(o * dd.d[axis] + idx_at(idx, it, j, dd.d[axis])) * inner + k];
        KT_CHECK(!bad);
        free(y.data);
        free(data);
    }
}

static void test_gather_elements(void) {
    for (int trial = 0; trial < 60; trial++) {
        kiln_dims dd = {.nb_dims = (int32_t)kt_randi(1, 4)};
        for (int32_t i = 0; i < dd.nb_dims; i++) dd.d[i] = kt_randi(1, 5);
        int32_t axis = (int32_t)kt_randi(0, dd.nb_dims - 1);
        kiln_dims id = dd;
        for (int32_t i = 0; i < id.nb_dims; i++) id.d[i] = i == axis ? kt_randi(1, 6) : kt_randi(1, dd.d[i]);
        kiln_dtype it = kt_randi(0, 1) ? KILN_INT32 : KILN_INT64;
        int64_t n = kiln__dims_volume(&dd), ni = kiln__dims_volume(&id);
        float *data = malloc(sizeof(float) * (size_t)n);
        int64_t *idx = malloc(sizeof(int64_t) * (size_t)ni);
        kt_fill(data, n, -1, 1);
        fill_indices(idx, it, ni, dd.d[axis]);
        kiln_layer l = lh_layer(KILN_LAYER_GATHER, 2);
        l.p.gather.mode = KILN_GATHER_ELEMENTS;
        l.p.gather.axis = kt_randi(0, 1) ? axis : axis - dd.nb_dims;
        kiln__value in[2] = {lh_val(KILN_FLOAT32, dd, data), lh_val(it, id, idx)}, y;
        KT_OK(lh_run(&l, in, &y));
        KT_CHECK(kiln__dims_equal(&y.dims, &id));
        int64_t c[KILN_MAX_DIMS], s[KILN_MAX_DIMS];
        lh_strides(&dd, s);
        int bad = 0;
        for (int64_t e = 0; e < ni; e++) {
            lh_unravel(e, &id, c);
            c[axis] = idx_at(idx, it, e, dd.d[axis]);
            int64_t off = 0;
            for (int32_t k = 0; k < dd.nb_dims; k++) off += c[k] * s[k];
            bad |= ((float *)y.data)[e] != data[off];
        }
        KT_CHECK(!bad);
        free(y.data);
        free(data);
        free(idx);
    }
}

static void test_gather_nd(void) {
    for (int trial = 0; trial < 60; trial++) {
        kiln_dims dd = {.nb_dims = (int32_t)kt_randi(1, 4)};
        for (int32_t i = 0; i < dd.nb_dims; i++) dd.d[i] = kt_randi(1, 4);
        int32_t q = (int32_t)kt_randi(1, 3);
        int32_t b = (int32_t)kt_randi(0, KILN__MIN(q, dd.nb_dims) - 1);
        int64_t k = kt_randi(1, dd.nb_dims - b);
        kiln_dims id = {.nb_dims = q};
        for (int32_t i = 0; i < q - 1; i++) id.d[i] = i < b ? dd.d[i] : kt_randi(1, 3);
        id.d[q - 1] = k;
        kiln_dtype it = kt_randi(0, 1) ? KILN_INT32 : KILN_INT64;
        int64_t n = kiln__dims_volume(&dd), ni = kiln__dims_volume(&id);
        uint16_t *data = malloc(sizeof(uint16_t) * (size_t)n);
        int64_t idx[256];
        for (int64_t i = 0; i < n; i++) data[i] = (uint16_t)kt_rand_u64();
        for (int64_t t = 0; t < ni; t++) {
            int64_t dim = dd.d[b + t % k], v = kt_randi(-dim, dim - 1);
            if (it == KILN_INT32) ((int32_t *)idx)[t] = (int32_t)v;
            else idx[t] = v;
        }
        kiln_layer l = lh_layer(KILN_LAYER_GATHER, 2);
        l.p.gather.mode = KILN_GATHER_ND;
        l.p.gather.axis = b;
        kiln__value in[2] = {lh_val(KILN_FLOAT16, dd, data), lh_val(it, id, idx)}, y;
        KT_OK(lh_run(&l, in, &y));
        int64_t s[KILN_MAX_DIMS], slice = 1, groups = ni / k, per_batch = 1;
        lh_strides(&dd, s);
        for (int32_t i = b + (int32_t)k; i < dd.nb_dims; i++) slice *= dd.d[i];
        for (int32_t i = b; i < q - 1; i++) per_batch *= id.d[i];
        KT_CHECK(y.dims.nb_dims == q - 1 + dd.nb_dims - b - (int32_t)k);
        int bad = 0;
        for (int64_t g = 0; g < groups; g++) {
            int64_t off = b ? (g / per_batch) * s[b - 1] : 0;
            for (int64_t c = 0; c < k; c++) off += idx_at(idx, it, g * k + c, dd.d[b + c]) * s[b + c];
            for (int64_t e = 0; e < slice; e++) bad |= ((uint16_t *)y.data)[g * slice + e] != data[off + e];
        }
        KT_CHECK(!bad);
        free(y.data);
        free(data);
    }
}

static void test_gather_errors(void) {
    float data[12] = {0};
    int64_t idx[4] = {0, 1, 3, -4};
    kiln_layer l = lh_layer(KILN_LAYER_GATHER, 2);
    kiln__value in[2] = {lh_val(KILN_FLOAT32, DIMS(3, 4), data), lh_val(KILN_INT64, DIMS(4), idx)}, y;
    /* Out of range at run time: an error naming the layer, for every mode. */
    KT_STATUS(lh_run(&l, in, &y), KILN_INVALID_ARGUMENT);
    KT_CHECK(lh_names_layer() && strstr(kiln_last_error(), "out of range"));
    free(y.data);
    l.p.gather.axis = 1;
    KT_OK(lh_run(&l, in, &y));
    free(y.data);
    idx[2] = 4;
    KT_STATUS(lh_run(&l, in, &y), KILN_INVALID_ARGUMENT);
    free(y.data);
    l.p.gather.mode = KILN_GATHER_ELEMENTS;
    in[1] = lh_val(KILN_INT64, DIMS(1, 4), idx);
    KT_STATUS(lh_run(&l, in, &y), KILN_INVALID_ARGUMENT);
    KT_CHECK(lh_names_layer());
    free(y.data);
    l.p.gather.mode = KILN_GATHER_ND;
    l.p.gather.axis = 0;
    int64_t nd[4] = {2, 3, 3, 4};
    in[1] = lh_val(KILN_INT64, DIMS(2, 2), nd);
    KT_STATUS(lh_run(&l, in, &y), KILN_INVALID_ARGUMENT);
    KT_CHECK(lh_names_layer());
    free(y.data);
    /* Shape errors. */
    l.p.gather.mode = KILN_GATHER_DEFAULT;
    l.p.gather.axis = 2;
    KT_STATUS(lh_infer(&l, in, &y), KILN_INVALID_ARGUMENT);
    KT_CHECK(lh_names_layer());
    l.p.gather.axis = 0;
    in[1] = lh_val(KILN_FLOAT32, DIMS(2), nd);
    KT_STATUS(lh_infer(&l, in, &y), KILN_INVALID_ARGUMENT);
    l.p.gather.mode = KILN_GATHER_ELEMENTS;
    in[1] = lh_val(KILN_INT64, DIMS(4), idx);
    KT_STATUS(lh_infer(&l, in, &y), KILN_INVALID_ARGUMENT);
    in[1] = lh_val(KILN_INT64, DIMS(3, 5), idx);
    l.p.gather.axis = 0;
    KT_STATUS(lh_infer(&l, in, &y), KILN_INVALID_ARGUMENT);
    l.p.gather.mode = KILN_GATHER_ND;
    in[1] = lh_val(KILN_INT64, DIMS(2, 3), nd);
    KT_STATUS(lh_infer(&l, in, &y), KILN_INVALID_ARGUMENT);
    in[1] = lh_val(KILN_INT64, DIMS(2, 1), nd);
    l.p.gather.axis = 1;
    KT_STATUS(lh_infer(&l, in, &y), KILN_INVALID_ARGUMENT);
    /* Unknown dims pass through. */
    l.p.gather.mode = KILN_GATHER_DEFAULT;
    l.p.gather.axis = 1;
    in[0] = lh_val(KILN_FLOAT32, DIMS(-1, 4), NULL);
    in[1] = lh_val(KILN_INT32, DIMS(2, -1), NULL);
    KT_OK(lh_infer(&l, in, &y));
    KT_CHECK(kiln__dims_equal(&y.dims, &DIMS(-1, 2, -1)));

    kiln_builder *b = NULL;
    kiln_network *net = NULL;
    KT_OK(kiln_builder_create(NULL, &b));
    KT_OK(kiln_network_create(b, &net));
    kiln_tensor *x = NULL, *ix = NULL;
    KT_OK(kiln_network_add_input(net, "x", KILN_FLOAT32, &DIMS(5, 4, 3), &x));
    KT_OK(kiln_network_add_input(net, "i", KILN_INT64, &DIMS(2, 2), &ix));
    kiln_layer *g = NULL;
    kiln_dims d;
    KT_OK(kiln_network_add_gather(net, x, ix, KILN_GATHER_DEFAULT, -2, &g));
    KT_OK(kiln_tensor_shape(kiln_layer_output(g, 0), &d));
    KT_CHECK(kiln__dims_equal(&d, &DIMS(5, 2, 2, 3)));
    KT_OK(kiln_network_add_gather(net, x, ix, KILN_GATHER_ND, 0, &g));
    KT_OK(kiln_tensor_shape(kiln_layer_output(g, 0), &d));
    KT_CHECK(kiln__dims_equal(&d, &DIMS(2, 3)));
    KT_STATUS(kiln_network_add_gather(net, x, ix, KILN_GATHER_ELEMENTS, 0, NULL), KILN_INVALID_ARGUMENT);
    KT_CHECK(strstr(kiln_last_error(), "(Gather)") != NULL);
    kiln_network_destroy(net);
    kiln_builder_destroy(b);
}

int main(void) {
    lh_init();
    test_slice_random();
    test_slice_infer();
    test_slice_public();
    test_gather_default();
    test_gather_elements();
    test_gather_nd();
    test_gather_errors();
    lh_done();
    return kt_summary("test_cpu_slice_gather");
}
