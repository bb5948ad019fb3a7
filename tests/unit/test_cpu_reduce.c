/* Reduce: every op against a reference that visits each input element and accumulates into
 * its output element, on random inputs of several dtypes, axes from the mask and from an
 * input, keep_dims, empty reductions (ONNX identity values), arg ops with ties, errors. */
#include "layer_harness.h"

LH_LINK(reduce)

static const char *const kOpNames[KILN_REDUCE_COUNT] = {"sum", "mean", "max", "min", "prod", "l1", "l2",
                                                        "log_sum", "log_sum_exp", "sum_square", "argmax", "argmin"};

/* Output dims and, for each input element, its output index. */
static kiln_dims reduced_dims(const kiln_dims *in, uint32_t mask, int keep) {
    kiln_dims o = {.nb_dims = 0};
    for (int32_t i = 0; i < in->nb_dims; i++) {
        if (!(mask & (1u << i))) o.d[o.nb_dims++] = in->d[i];
        else if (keep) o.d[o.nb_dims++] = 1;
    }
    return o;
}

static int64_t out_index(const kiln_dims *in, uint32_t mask, int64_t e) {
    int64_t c[KILN_MAX_DIMS], o = 0;
    lh_unravel(e, in, c);
    for (int32_t i = 0; i < in->nb_dims; i++)
        if (!(mask & (1u << i))) o = o * in->d[i] + c[i];
    return o;
}

/* Reference for float ops: x as doubles; result per output element. Arg ops give indices. */
static void ref_reduce(const double *x, const kiln_dims *in, uint32_t mask, int op, int select_last, double *out,
                       int64_t nout) {
    int64_t n = kiln__dims_volume(in), count = 1;
    int32_t axis = 0;
    for (int32_t i = 0; i < in->nb_dims; i++)
        if (mask & (1u << i)) {
            count *= in->d[i];
            axis = i;
        }
    double *a = calloc((size_t)(nout ? nout : 1), sizeof(double)), *m = malloc(sizeof(double) * (size_t)(nout ? nout : 1));
    int64_t *pos = calloc((size_t)(nout ? nout : 1), sizeof(int64_t));
    for (int64_t o = 0; o < nout; o++) {
        m[o] = op == KILN_REDUCE_MAX || op == KILN_REDUCE_LOG_SUM_EXP ? -INFINITY : INFINITY;
        a[o] = op == KILN_REDUCE_PROD ? 1 : 0;
        pos[o] = -1;
    }
    for (int64_t e = 0; e < n; e++) {
        int64_t o = out_index(in, mask, e), c[KILN_MAX_DIMS];
        double v = x[e];
        lh_unravel(e, in, c);
        switch (op) {
        case KILN_REDUCE_SUM:
        case KILN_REDUCE_MEAN:
        case KILN_REDUCE_LOG_SUM: a[o] += v; break;
        case KILN_REDUCE_L1: a[o] += fabs(v); break;
        case KILN_REDUCE_L2:
        case KILN_REDUCE_SUM_SQUARE: a[o] += v * v; break;
        case KILN_REDUCE_PROD: a[o] *= v; break;
        case KILN_REDUCE_MAX:
        case KILN_REDUCE_LOG_SUM_EXP: m[o] = v > m[o] ? v : m[o]; break;
        case KILN_REDUCE_MIN: m[o] = v < m[o] ? v : m[o]; break;
        case KILN_REDUCE_ARGMAX:
        case KILN_REDUCE_ARGMIN: {
            bool better = op == KILN_REDUCE_ARGMAX ? v > m[o] : v < m[o];
            if (pos[o] < 0 || better || (select_last && v == m[o])) {
                m[o] = v;
                pos[o] = c[axis];
            }
            break;
        }
        }
    }
    if (op == KILN_REDUCE_LOG_SUM_EXP) {
        for (int64_t e = 0; e < n; e++) {
            int64_t o = out_index(in, mask, e);
            a[o] += exp(x[e] - m[o]);
        }
    }
    for (int64_t o = 0; o < nout; o++) {
        switch (op) {
        case KILN_REDUCE_MEAN: out[o] = a[o] / (double)count; break;
        case KILN_REDUCE_LOG_SUM: out[o] = log(a[o]); break;
        case KILN_REDUCE_L2: out[o] = sqrt(a[o]); break;
        case KILN_REDUCE_MAX:
        case KILN_REDUCE_MIN: out[o] = m[o]; break;
        case KILN_REDUCE_LOG_SUM_EXP: out[o] = isinf(m[o]) ? m[o] : m[o] + log(a[o]); break;
        case KILN_REDUCE_ARGMAX:
        case KILN_REDUCE_ARGMIN: out[o] = (double)pos[o]; break;
        default: out[o] = a[o];
        }
    }
    free(a);
    free(m);
    free(pos);
}

static void run_float_case(kiln_dtype dt, const kiln_dims *in, uint32_t mask, int op, int keep, int select_last,
                           bool mask_from_input, int64_t *axes_buf) {
    int64_t n = kiln__dims_volume(in);
    size_t es = kiln_dtype_bits(dt) / 8;
    void *x = malloc(es * (size_t)(n ? n : 1));
    double *xd = malloc(sizeof(double) * (size_t)(n ? n : 1));
    bool positive = op == KILN_REDUCE_LOG_SUM;
    bool ties = op == KILN_REDUCE_ARGMAX || op == KILN_REDUCE_ARGMIN;
    for (int64_t i = 0; i < n; i++) {
        double v = ties ? (double)kt_randi(-2, 2) : kt_randf(positive ? 0.1f : -2, 2);
        if (op == KILN_REDUCE_PROD) v = kt_randf(0.5f, 1.5f) * (kt_randi(0, 1) ? 1 : -1);
        kiln__store_f64(x, dt, i, v);
        xd[i] = kiln__load_f64(x, dt, i); /* the value as stored in dt */
    }
    kiln_layer l = lh_layer(KILN_LAYER_REDUCE, mask_from_input ? 2 : 1);
    l.p.reduce.op = op;
    l.p.reduce.keep_dims = keep;
    l.p.reduce.select_last = select_last;
    kiln__value inputs[2] = {lh_val(dt, *in, x)};
    if (mask_from_input) {
        int32_t na = 0;
        for (int32_t i = 0; i < in->nb_dims; i++)
            if (mask & (1u << i)) axes_buf[na++] = kt_randi(0, 1) ? i : i - in->nb_dims;
        inputs[1] = lh_val(KILN_INT64, DIMS(na), axes_buf);
    } else {
        l.p.reduce.axes_mask = mask;
    }
    kiln__value y;
    KT_OK(lh_run(&l, inputs, &y));
    uint32_t eff = mask ? mask : (1u << in->nb_dims) - 1;
    kiln_dims od = reduced_dims(in, eff, keep);
    KT_CHECK(kiln__dims_equal(&y.dims, &od));
    int64_t nout = kiln__dims_volume(&od);
    double *want = malloc(sizeof(double) * (size_t)(nout ? nout : 1));
    float *got = malloc(sizeof(float) * (size_t)(nout ? nout : 1)), *wantf = malloc(sizeof(float) * (size_t)(nout ? nout : 1));
    ref_reduce(xd, in, eff, op, select_last, want, nout);
    bool arg = op == KILN_REDUCE_ARGMAX || op == KILN_REDUCE_ARGMIN;
    KT_CHECK(y.dtype == (arg ? KILN_INT64 : dt));
    for (int64_t o = 0; o < nout; o++) {
        got[o] = arg ? (float)((int64_t *)y.data)[o] : (float)kiln__load_f64(y.data, dt, o);
        double w = want[o];
        if (!arg) { /* round the reference to dt like the kernel's store */
            double tmp[1];
            uint8_t cell[8];
            kiln__store_f64(cell, dt, 0, w);
            tmp[0] = kiln__load_f64(cell, dt, 0);
            w = tmp[0];
        }
        wantf[o] = (float)w;
        if (got[o] == wantf[o]) got[o] = wantf[o] = 0; /* equal infinities pass too */
    }
    char what[128];
    snprintf(what, sizeof what, "reduce %s %s mask 0x%x keep %d", kOpNames[op], kiln_dtype_name(dt), mask, keep);
    float rtol = dt == KILN_FLOAT16 ? 2e-3f : dt == KILN_BFLOAT16 ? 1.6e-2f : 1e-5f;
    kt_close(what, got, wantf, nout, rtol, rtol);
    free(y.data);
    free(x);
    free(xd);
    free(want);
    free(got);
    free(wantf);
}

static void test_float_ops(void) {
    static const kiln_dtype dts[] = {KILN_FLOAT32, KILN_FLOAT64, KILN_FLOAT16, KILN_BFLOAT16};
    int64_t axes_buf[KILN_MAX_DIMS];
    for (int op = 0; op < KILN_REDUCE_COUNT; op++) {
        for (int trial = 0; trial < 24; trial++) {
            kiln_dims in = {.nb_dims = (int32_t)kt_randi(1, 4)};
            for (int32_t i = 0; i < in.nb_dims; i++) in.d[i] = kt_randi(1, 5);
            uint32_t mask;
            bool arg = op == KILN_REDUCE_ARGMAX || op == KILN_REDUCE_ARGMIN;
            if (arg) mask = 1u << kt_randi(0, in.nb_dims - 1);
            else mask = (uint32_t)kt_randi(0, (1 << in.nb_dims) - 1);
            run_float_case(dts[trial % 4], &in, mask, op, (int)kt_randi(0, 1), (int)kt_randi(0, 1), trial % 3 == 0 && mask,
                           axes_buf);
        }
    }
    /* Larger shapes for the parallel path and strided reductions. */
    run_float_case(KILN_FLOAT32, &DIMS(64, 1000), 2, KILN_REDUCE_SUM, 0, 0, false, axes_buf);
    run_float_case(KILN_FLOAT32, &DIMS(64, 1000), 1, KILN_REDUCE_MEAN, 1, 0, false, axes_buf);
    run_float_case(KILN_FLOAT32, &DIMS(8, 16, 32, 4), 0xA, KILN_REDUCE_LOG_SUM_EXP, 1, 0, false, axes_buf);
    run_float_case(KILN_FLOAT32, &DIMS(8, 300, 7), 2, KILN_REDUCE_ARGMAX, 0, 1, false, axes_buf);
}

static void test_int_ops(void) {
    static const kiln_dtype dts[] = {KILN_INT32, KILN_INT64, KILN_INT8, KILN_UINT8};
    static const int ops[] = {KILN_REDUCE_SUM, KILN_REDUCE_PROD, KILN_REDUCE_MAX, KILN_REDUCE_MIN,
                              KILN_REDUCE_MEAN, KILN_REDUCE_SUM_SQUARE, KILN_REDUCE_L1, KILN_REDUCE_ARGMIN};
    for (int trial = 0; trial < 80; trial++) {
        kiln_dtype dt = dts[trial % 4];
        int op = ops[(trial / 4) % 8];
        kiln_dims in = {.nb_dims = (int32_t)kt_randi(1, 3)};
        for (int32_t i = 0; i < in.nb_dims; i++) in.d[i] = kt_randi(1, 4);
        uint32_t mask = op == KILN_REDUCE_ARGMIN ? 1u << kt_randi(0, in.nb_dims - 1)
                                                 : (uint32_t)kt_randi(1, (1 << in.nb_dims) - 1);
        int64_t n = kiln__dims_volume(&in);
        int64_t x64[64];
        uint8_t x[512];
        for (int64_t i = 0; i < n; i++) {
            int64_t v = kt_randi(dt == KILN_UINT8 ? 0 : -9, 9);
            kiln__store_i64(x, dt, i, v);
            x64[i] = v;
        }
        kiln_layer l = lh_layer(KILN_LAYER_REDUCE, 1);
        l.p.reduce.op = op;
        l.p.reduce.axes_mask = mask;
        kiln__value xin = lh_val(dt, in, x), y;
        KT_OK(lh_run(&l, &xin, &y));
        kiln_dims od = reduced_dims(&in, mask, 0);
        KT_CHECK(kiln__dims_equal(&y.dims, &od));
        int64_t nout = kiln__dims_volume(&od), acc[64], cnt[64];
        for (int64_t o = 0; o < nout; o++) {
            acc[o] = op == KILN_REDUCE_PROD ? 1 : op == KILN_REDUCE_MAX ? INT64_MIN : op == KILN_REDUCE_MIN ? INT64_MAX : 0;
            cnt[o] = 0;
        }
        int32_t axis = 0;
        while (!(mask & (1u << axis))) axis++;
        double best[64];
        for (int64_t e = 0; e < n; e++) {
            int64_t o = out_index(&in, mask, e), v = x64[e], c[KILN_MAX_DIMS];
            lh_unravel(e, &in, c);
            switch (op) {
            case KILN_REDUCE_SUM:
            case KILN_REDUCE_MEAN: acc[o] += v; break;
            case KILN_REDUCE_PROD: acc[o] = (int64_t)((uint64_t)acc[o] * (uint64_t)v); break; /* wraps */
            case KILN_REDUCE_MAX: acc[o] = v > acc[o] ? v : acc[o]; break;
            case KILN_REDUCE_MIN: acc[o] = v < acc[o] ? v : acc[o]; break;
            case KILN_REDUCE_SUM_SQUARE: acc[o] += v * v; break;
            case KILN_REDUCE_L1: acc[o] += v < 0 ? -v : v; break;
            case KILN_REDUCE_ARGMIN:
                if (cnt[o] == 0 || v < best[o]) {
                    best[o] = (double)v;
                    acc[o] = c[axis];
                }
                break;
            }
            cnt[o]++;
        }
        int bad = 0;
        for (int64_t o = 0; o < nout; o++) {
            int64_t w = op == KILN_REDUCE_MEAN ? acc[o] / cnt[o] : acc[o];
            if (op == KILN_REDUCE_ARGMIN) {
                bad |= ((int64_t *)y.data)[o] != w;
                continue;
            }
            uint8_t cell[8];
            kiln__store_i64(cell, dt, 0, w); /* wraps like the kernel's store */
            bad |= kiln__load_i64(y.data, dt, o) != kiln__load_i64(cell, dt, 0);
        }
        KT_CHECK(!bad);
        if (bad) fprintf(stderr, "int reduce %s %s failed\n", kOpNames[op], kiln_dtype_name(dt));
        free(y.data);
    }
}

static void test_axes_input_and_empty(void) {
    float x[24];
    kt_fill(x, 24, -1, 1);
    kiln_layer l = lh_layer(KILN_LAYER_REDUCE, 2);
    l.p.reduce.op = KILN_REDUCE_SUM_SQUARE;
    kiln__value in[2] = {lh_val(KILN_FLOAT32, DIMS(2, 3, 4), x), lh_val(KILN_INT64, DIMS(0), NULL)}, y;
    /* Empty axes with noop_with_empty_axes: no reduction (sum_square squares each element). */
    l.p.reduce.noop_with_empty_axes = 1;
    KT_OK(lh_run(&l, in, &y));
    KT_CHECK(kiln__dims_equal(&y.dims, &DIMS(2, 3, 4)));
    int bad = 0;
    for (int i = 0; i < 24; i++) bad |= fabsf(((float *)y.data)[i] - x[i] * x[i]) > 1e-6f;
    KT_CHECK(!bad);
    free(y.data);
    /* Without it: everything is reduced. */
    l.p.reduce.noop_with_empty_axes = 0;
    l.p.reduce.op = KILN_REDUCE_SUM;
    l.p.reduce.keep_dims = 1;
    KT_OK(lh_run(&l, in, &y));
    KT_CHECK(kiln__dims_equal(&y.dims, &DIMS(1, 1, 1)));
    double s = 0;
    for (int i = 0; i < 24; i++) s += x[i];
    KT_CHECK(fabs(((float *)y.data)[0] - s) < 1e-5);
    free(y.data);
    /* Axes known only at run time: the rank is known. */
    in[1] = lh_val(KILN_INT64, DIMS(2), NULL);
    l.p.reduce.keep_dims = 0;
    KT_OK(lh_infer(&l, in, &y));
    KT_CHECK(kiln__dims_equal(&y.dims, &DIMS(-1)));
    l.p.reduce.keep_dims = 1;
    KT_OK(lh_infer(&l, in, &y));
    KT_CHECK(kiln__dims_equal(&y.dims, &DIMS(-1, -1, -1)));
    int64_t dup[2] = {1, -2};
    in[1] = lh_val(KILN_INT64, DIMS(2), dup);
    KT_STATUS(lh_infer(&l, in, &y), KILN_INVALID_ARGUMENT);
    KT_CHECK(lh_names_layer());
    dup[1] = 3;
    KT_STATUS(lh_infer(&l, in, &y), KILN_INVALID_ARGUMENT);

    /* Empty reductions give the ONNX identity values. */
    struct {
        int op;
        double want;
    } empty[] = {{KILN_REDUCE_SUM, 0},
                 {KILN_REDUCE_PROD, 1},
                 {KILN_REDUCE_MAX, -INFINITY},
                 {KILN_REDUCE_MIN, INFINITY},
                 {KILN_REDUCE_L1, 0},
                 {KILN_REDUCE_L2, 0},
                 {KILN_REDUCE_SUM_SQUARE, 0},
                 {KILN_REDUCE_LOG_SUM, -INFINITY},
                 {KILN_REDUCE_LOG_SUM_EXP, -INFINITY}};
    for (size_t i = 0; i < sizeof empty / sizeof empty[0]; i++) {
        kiln_layer e = lh_layer(KILN_LAYER_REDUCE, 1);
        e.p.reduce.op = empty[i].op;
        e.p.reduce.axes_mask = 2;
        e.p.reduce.keep_dims = 1;
        kiln__value v = lh_val(KILN_FLOAT32, DIMS(2, 0, 4), x);
        KT_OK(lh_run(&e, &v, &y));
        KT_CHECK(kiln__dims_equal(&y.dims, &DIMS(2, 1, 4)));
        bad = 0;
        for (int k = 0; k < 8; k++) bad |= ((float *)y.data)[k] != (float)empty[i].want;
        KT_CHECK(!bad);
        free(y.data);
    }
    kiln_layer e = lh_layer(KILN_LAYER_REDUCE, 1);
    e.p.reduce.op = KILN_REDUCE_MAX;
    e.p.reduce.axes_mask = 1;
    int32_t none[1];
    kiln__value v = lh_val(KILN_INT32, DIMS(0, 3), none);
    KT_OK(lh_run(&e, &v, &y));
    KT_CHECK(y.dims.nb_dims == 1 && ((int32_t *)y.data)[0] == INT32_MIN && ((int32_t *)y.data)[2] == INT32_MIN);
    free(y.data);
    /* Empty non-reduced dim: nothing to compute. */
    e.p.reduce.axes_mask = 2;
    KT_OK(lh_run(&e, &v, &y));
    KT_CHECK(kiln__dims_equal(&y.dims, &DIMS(0)));
    free(y.data);
    /* Bool max/min/argmax. */
    uint8_t bools[6] = {0, 1, 0, 0, 0, 0};
    v = lh_val(KILN_BOOL, DIMS(2, 3), bools);
    e.p.reduce.axes_mask = 2;
    KT_OK(lh_run(&e, &v, &y));
    KT_CHECK(((uint8_t *)y.data)[0] == 1 && ((uint8_t *)y.data)[1] == 0);
    free(y.data);
    e.p.reduce.op = KILN_REDUCE_ARGMAX;
    KT_OK(lh_run(&e, &v, &y));
    KT_CHECK(((int64_t *)y.data)[0] == 1 && ((int64_t *)y.data)[1] == 0);
    free(y.data);
    e.p.reduce.select_last = 1;
    KT_OK(lh_run(&e, &v, &y));
    KT_CHECK(((int64_t *)y.data)[0] == 1 && ((int64_t *)y.data)[1] == 2);
    free(y.data);
}

static void test_errors_and_public(void) {
    float x[12] = {0};
    kiln_layer l = lh_layer(KILN_LAYER_REDUCE, 1);
    kiln__value v = lh_val(KILN_FLOAT32, DIMS(3, 4), x), y;
    l.p.reduce.op = KILN_REDUCE_ARGMAX;
    l.p.reduce.axes_mask = 3;
    KT_STATUS(lh_infer(&l, &v, &y), KILN_INVALID_ARGUMENT);
    KT_CHECK(lh_names_layer());
    l.p.reduce.op = KILN_REDUCE_SUM;
    l.p.reduce.axes_mask = 4;
    KT_STATUS(lh_infer(&l, &v, &y), KILN_INVALID_ARGUMENT);
    l.p.reduce.op = KILN_REDUCE_COUNT;
    l.p.reduce.axes_mask = 1;
    KT_STATUS(lh_infer(&l, &v, &y), KILN_INVALID_ARGUMENT);
    l.p.reduce.op = KILN_REDUCE_SUM;
    kiln__value b = lh_val(KILN_BOOL, DIMS(3, 4), x);
    KT_STATUS(lh_infer(&l, &b, &y), KILN_UNSUPPORTED);
    l.p.reduce.op = KILN_REDUCE_ARGMIN;
    kiln__value e = lh_val(KILN_FLOAT32, DIMS(0, 4), x);
    KT_STATUS(lh_infer(&l, &e, &y), KILN_INVALID_ARGUMENT);

    kiln_builder *bld = NULL;
    kiln_network *net = NULL;
    KT_OK(kiln_builder_create(NULL, &bld));
    KT_OK(kiln_network_create(bld, &net));
    kiln_tensor *t = NULL;
    KT_OK(kiln_network_add_input(net, "x", KILN_FLOAT32, &DIMS(2, 3, 4), &t));
    kiln_layer *r = NULL;
    kiln_dims d;
    KT_OK(kiln_network_add_reduce(net, t, KILN_REDUCE_MEAN, 0x6, 1, 0, &r));
    KT_OK(kiln_tensor_shape(kiln_layer_output(r, 0), &d));
    KT_CHECK(kiln__dims_equal(&d, &DIMS(2, 1, 1)));
    KT_STATUS(kiln_network_add_reduce(net, t, KILN_REDUCE_ARGMAX, 0x6, 1, 0, NULL), KILN_INVALID_ARGUMENT);
    KT_CHECK(strstr(kiln_last_error(), "(Reduce)") != NULL);
    kiln_layer *am = NULL;
    KT_OK(kiln_network_add_reduce(net, kiln_layer_output(r, 0), KILN_REDUCE_ARGMAX, 0x1, 0, 0, &am));
    KT_CHECK(kiln_tensor_dtype(kiln_layer_output(am, 0)) == KILN_INT64);
    KT_OK(kiln_network_mark_output(net, kiln_layer_output(r, 0)));
    float xv[24];
    kt_fill(xv, 24, -1, 1);
    size_t bytes = 0;
    kiln_dims od;
    float *out = lh_execute(bld, net, "x", xv, sizeof xv, &bytes, &od);
    if (out) {
        KT_CHECK(kiln__dims_equal(&od, &DIMS(2, 1, 1)));
        for (int i = 0; i < 2; i++) {
            double s = 0;
            for (int k = 0; k < 12; k++) s += xv[i * 12 + k];
            KT_CHECK(fabs(out[i] - s / 12) < 1e-6);
        }
    }
    free(out);
    kiln_network_destroy(net);
    kiln_builder_destroy(bld);
}

int main(void) {
    lh_init();
    test_float_ops();
    test_int_ops();
    test_axes_input_and_empty();
    test_errors_and_public();
    lh_done();
    return kt_summary("test_cpu_reduce");
}
