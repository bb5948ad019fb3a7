/* Softmax and normalization (batch, layer, instance, group, rms): the CPU kernels against
 * double-precision reference loops on random inputs (large offsets, -inf, every axis, all
 * float dtypes), shape inference errors, the network API and an end-to-end engine run. */
#include "layer_harness.h"
#include "cpu/gemm.h"

LH_LINK(softmax)
LH_LINK(normalization)
LH_LINK(constant)

static size_t esz(kiln_dtype t) { return kiln_dtype_bits(t) / 8; }

static double ld(const void *p, kiln_dtype t, int64_t i) {
    switch (t) {
    case KILN_FLOAT32: return ((const float *)p)[i];
    case KILN_FLOAT64: return ((const double *)p)[i];
    case KILN_FLOAT16: return kiln__half_to_float(((const uint16_t *)p)[i]);
    default: return kiln__bf16_to_float(((const uint16_t *)p)[i]);
    }
}

static void st(void *p, kiln_dtype t, int64_t i, double v) {
    switch (t) {
    case KILN_FLOAT32: ((float *)p)[i] = (float)v; break;
    case KILN_FLOAT64: ((double *)p)[i] = v; break;
    case KILN_FLOAT16: ((uint16_t *)p)[i] = kiln__float_to_half((float)v); break;
    default: ((uint16_t *)p)[i] = kiln__float_to_bf16((float)v); break;
    }
}

static const kiln_dtype FLOATS[] = {KILN_FLOAT32, KILN_FLOAT16, KILN_BFLOAT16, KILN_FLOAT64};

static double rtol_of(kiln_dtype t) {
    return t == KILN_FLOAT16 ? 2e-3 : t == KILN_BFLOAT16 ? 1.6e-2 : t == KILN_FLOAT32 ? 2e-5 : 1e-12;
}

static bool close_to(double got, double want, double rtol, double atol) {
    if (isnan(want)) return isnan(got);
    if (isinf(want)) return got == want;
    return fabs(got - want) <= atol + rtol * fabs(want);
}

static void *random_tensor(kiln_dtype t, int64_t n, double lo, double hi) {
    void *p = malloc((size_t)(n ? n : 1) * esz(t));
    for (int64_t i = 0; i < n; i++) st(p, t, i, kt_randf((float)lo, (float)hi));
    return p;
}

/* ---------------------------------------------------------------- softmax */

static void check_softmax(kiln_dtype t, kiln_dims d, int32_t axis, int take_log, int coerce, double offset) {
    int64_t n = kiln__dims_volume(&d);
    void *x = random_tensor(t, n, offset - 5, offset + 5);
    if (n > 7) st(x, t, 3, -INFINITY);
    kiln_layer l = lh_layer(KILN_LAYER_SOFTMAX, 1);
    l.p.softmax = (kiln__softmax_params){axis, take_log, coerce};
    kiln__value in = lh_val(t, d, x), out;
    KT_OK(lh_run(&l, &in, &out));
    int32_t ax = axis < 0 ? axis + d.nb_dims : axis;
    int64_t outer = 1, len = 1, inner = 1;
    for (int32_t i = 0; i < d.nb_dims; i++) {
        if (i < ax) outer *= d.d[i];
        else if (i == ax || coerce) len *= d.d[i];
        else inner *= d.d[i];
    }
    int bad = 0;
    for (int64_t o = 0; o < outer; o++)
        for (int64_t j = 0; j < inner; j++) {
            double mx = -INFINITY, sum = 0;
            for (int64_t k = 0; k < len; k++) mx = fmax(mx, ld(x, t, (o * len + k) * inner + j));
            for (int64_t k = 0; k < len; k++) sum += exp(ld(x, t, (o * len + k) * inner + j) - mx);
            for (int64_t k = 0; k < len && bad < 3; k++) {
                int64_t i = (o * len + k) * inner + j;
                double v = ld(x, t, i) - mx, want = take_log ? v - log(sum) : exp(v) / sum;
                double got = ld(out.data, t, i);
                bool ok = close_to(got, want, rtol_of(t), take_log ? rtol_of(t) * (fabs(mx) + 10) : 1e-7);
                KT_CHECK(ok);
                if (!ok) {
                    bad++;
                    fprintf(stderr, "  softmax %s axis %d log %d at %lld: got %.9g want %.9g\n", kiln_dtype_name(t),
                            axis, take_log, (long long)i, got, want);
                }
            }
        }
    free(out.data);
    free(x);
}

static void test_softmax(void) {
    for (size_t t = 0; t < 4; t++)
        for (int lg = 0; lg < 2; lg++) {
            kiln_dims d = {3, {3, 5, 7}};
            for (int32_t ax = -3; ax < 3; ax++) check_softmax(FLOATS[t], d, ax, lg, 0, 0);
            check_softmax(FLOATS[t], d, 1, lg, 1, 0);
            check_softmax(FLOATS[t], (kiln_dims){1, {40}}, 0, lg, 0, t == 0 ? 1000 : 0); /* exp would overflow */
            check_softmax(FLOATS[t], (kiln_dims){4, {2, 3, 4, 5}}, 1, lg, 1, 0);
        }
    check_softmax(KILN_FLOAT32, (kiln_dims){2, {512, 1000}}, 1, 0, 0, 0);
    check_softmax(KILN_FLOAT32, (kiln_dims){3, {12, 128, 128}}, 2, 0, 0, 0); /* attention scores */
    check_softmax(KILN_FLOAT32, (kiln_dims){2, {11, 37}}, 1, 0, 0, 0);       /* rows in fours, then the rest */
    check_softmax(KILN_FLOAT32, (kiln_dims){4, {4, 64, 30, 30}}, 1, 1, 0, 0);
    check_softmax(KILN_FLOAT32, (kiln_dims){2, {0, 10}}, 1, 0, 0, 0);
    /* Errors. */
    kiln_layer l = lh_layer(KILN_LAYER_SOFTMAX, 1);
    kiln__value out, in = lh_val(KILN_INT32, (kiln_dims){2, {2, 3}}, NULL);
    KT_STATUS(lh_infer(&l, &in, &out), KILN_INVALID_ARGUMENT);
    KT_CHECK(lh_names_layer());
    in.dtype = KILN_FLOAT32;
    l.p.softmax.axis = 2;
    KT_STATUS(lh_infer(&l, &in, &out), KILN_INVALID_ARGUMENT);
    KT_CHECK(lh_names_layer());
    l.p.softmax.axis = -3;
    KT_STATUS(lh_infer(&l, &in, &out), KILN_INVALID_ARGUMENT);
    l.p.softmax.axis = 0;
    in.dims.nb_dims = 0;
    KT_STATUS(lh_infer(&l, &in, &out), KILN_INVALID_ARGUMENT);
}

/* ---------------------------------------------------------------- normalization */

typedef struct norm_case {
    int type;
    kiln_dtype t, pt; /* x and parameter dtypes */
    kiln_dims d;
    int32_t axis, groups;
    kiln_dims sd; /* layer/rms: scale/bias shape; others: per-channel or per-group count in d[0] */
    bool bias;
} norm_case;

static void check_norm(const norm_case *c) {
    int64_t n = kiln__dims_volume(&c->d);
    void *x = random_tensor(c->t, n, 50, 54); /* an offset that punishes one-pass variance */
    int64_t np = kiln__dims_volume(&c->sd);
    void *prm[4];
    for (int k = 0; k < 4; k++) prm[k] = random_tensor(c->pt, np, k == 3 ? 0.5 : -1, k == 3 ? 2 : 1);
    bool batch = c->type == KILN_NORM_BATCH;
    kiln_layer l = lh_layer(KILN_LAYER_NORMALIZATION, 5);
    l.p.norm = (kiln__norm_params){c->type, 1e-3f, c->axis, c->groups};
    kiln__value in[5] = {lh_val(c->t, c->d, x), lh_val(c->pt, c->sd, prm[0]),
                         c->bias ? lh_val(c->pt, c->sd, prm[1]) : (kiln__value){0},
                         batch ? lh_val(c->pt, c->sd, prm[2]) : (kiln__value){0},
                         batch ? lh_val(c->pt, c->sd, prm[3]) : (kiln__value){0}},
                out;
    kiln_status s = lh_run(&l, in, &out);
    KT_OK(s);
    if (s != KILN_OK) goto done;
    double *ref = malloc(sizeof(double) * (size_t)n);
    double eps = (double)1e-3f;
    if (c->type == KILN_NORM_LAYER || c->type == KILN_NORM_RMS) {
        int32_t ax = c->axis < 0 ? c->axis + c->d.nb_dims : c->axis;
        int64_t m = 1;
        for (int32_t i = ax; i < c->d.nb_dims; i++) m *= c->d.d[i];
        for (int64_t o = 0; o < n / m; o++) {
            double mean = 0, var = 0;
            for (int64_t k = 0; k < m; k++) mean += ld(x, c->t, o * m + k);
            mean = c->type == KILN_NORM_RMS ? 0 : mean / m;
            for (int64_t k = 0; k < m; k++) var += pow(ld(x, c->t, o * m + k) - mean, 2);
            var /= m;
            for (int64_t k = 0; k < m; k++) {
                /* scale index: k broadcast onto scale's shape, aligned right */
                int64_t r = k, si = 0, mul = 1;
                for (int32_t q = c->d.nb_dims - 1, sq = c->sd.nb_dims - 1; q >= ax; q--, sq--) {
                    int64_t ck = r % c->d.d[q];
                    r /= c->d.d[q];
                    if (sq >= 0) {
                        si += (c->sd.d[sq] == 1 ? 0 : ck) * mul;
                        mul *= c->sd.d[sq];
                    }
                }
                ref[o * m + k] = (ld(x, c->t, o * m + k) - mean) / sqrt(var + eps) * ld(prm[0], c->pt, si) +
                                 (c->bias ? ld(prm[1], c->pt, si) : 0);
            }
        }
    } else {
        int64_t N = c->d.d[0], C = c->d.d[1], S = n / (N * C);
        int64_t G = c->type == KILN_NORM_GROUP ? c->groups : C, cg = C / G;
        for (int64_t b = 0; b < N; b++)
            for (int64_t g = 0; g < G; g++) {
                int64_t base = (b * C + g * cg) * S, m = cg * S;
                double mean = 0, var = 0;
                for (int64_t k = 0; k < m; k++) mean += ld(x, c->t, base + k);
                mean /= m;
                for (int64_t k = 0; k < m; k++) var += pow(ld(x, c->t, base + k) - mean, 2);
                var /= m;
                for (int64_t k = 0; k < m; k++) {
                    int64_t ch = g * cg + k / S, pi = np == C ? ch : g;
                    double mu = mean, v = var;
                    if (batch) {
                        mu = ld(prm[2], c->pt, ch);
                        v = ld(prm[3], c->pt, ch);
                    }
                    ref[base + k] = (ld(x, c->t, base + k) - mu) / sqrt(v + eps) * ld(prm[0], c->pt, pi) +
                                    ld(prm[1], c->pt, pi);
                }
            }
    }
    int bad = 0;
    for (int64_t i = 0; i < n && bad < 3; i++) {
        double want = ref[i], got = ld(out.data, c->t, i);
        /* Rounding x to f16/bf16 moves it by up to half an ulp of ~52 before normalizing. */
        double atol = c->t == KILN_FLOAT32 ? 2e-4 : c->t == KILN_FLOAT64 ? 1e-9 : 0.05;
        if (c->t == KILN_BFLOAT16) atol = 0.3;
        bool ok = close_to(got, want, rtol_of(c->t), atol);
        KT_CHECK(ok);
        if (!ok) {
            bad++;
            fprintf(stderr, "  norm type %d %s at %lld: got %.9g want %.9g\n", c->type, kiln_dtype_name(c->t),
                    (long long)i, got, want);
        }
    }
    free(ref);
    free(out.data);
done:
    free(x);
    for (int k = 0; k < 4; k++) free(prm[k]);
}

static void test_normalization(void) {
    for (size_t t = 0; t < 4; t++) {
        kiln_dtype ty = FLOATS[t];
        kiln_dims d = {4, {2, 6, 5, 7}};
        norm_case cases[] = {
            {KILN_NORM_BATCH, ty, KILN_FLOAT32, d, 0, 0, {1, {6}}, true},
            {KILN_NORM_BATCH, ty, ty, {2, {3, 6}}, 0, 0, {1, {6}}, true},
            {KILN_NORM_INSTANCE, ty, ty, d, 0, 0, {1, {6}}, true},
            {KILN_NORM_GROUP, ty, ty, d, 0, 3, {1, {6}}, true},
            {KILN_NORM_GROUP, ty, ty, d, 0, 3, {1, {3}}, true}, /* opset 18: per group */
            {KILN_NORM_GROUP, ty, ty, d, 0, 6, {1, {6}}, true},
            {KILN_NORM_GROUP, ty, ty, d, 0, 1, {1, {6}}, true},
            {KILN_NORM_LAYER, ty, ty, d, -1, 0, {1, {7}}, true},
            {KILN_NORM_LAYER, ty, ty, d, 2, 0, {2, {5, 7}}, false},
            {KILN_NORM_LAYER, ty, ty, d, 1, 0, {2, {1, 7}}, true}, /* broadcast onto [6,5,7] */
            {KILN_NORM_LAYER, ty, KILN_FLOAT32, d, 0, 0, {4, {2, 6, 5, 7}}, true},
            {KILN_NORM_RMS, ty, ty, d, -1, 0, {1, {7}}, false},
            {KILN_NORM_RMS, ty, ty, d, -2, 0, {2, {5, 1}}, true},
        };
        for (size_t k = 0; k < KILN__ARRAY_LEN(cases); k++) check_norm(&cases[k]);
    }
    /* Threaded sizes. */
    norm_case big[] = {
        {KILN_NORM_LAYER, KILN_FLOAT32, KILN_FLOAT32, {3, {8, 128, 768}}, -1, 0, {1, {768}}, true},
        {KILN_NORM_BATCH, KILN_FLOAT32, KILN_FLOAT32, {4, {4, 32, 28, 28}}, 0, 0, {1, {32}}, true},
        {KILN_NORM_GROUP, KILN_FLOAT32, KILN_FLOAT32, {4, {4, 32, 28, 28}}, 0, 8, {1, {32}}, true},
        {KILN_NORM_INSTANCE, KILN_FLOAT32, KILN_FLOAT32, {4, {4, 32, 28, 28}}, 0, 0, {1, {32}}, true},
    };
    for (size_t k = 0; k < KILN__ARRAY_LEN(big); k++) check_norm(&big[k]);
}

static void expect_norm_error(int type, kiln_dims d, int32_t axis, int32_t groups, const kiln_dims *p, int present) {
    kiln_layer l = lh_layer(KILN_LAYER_NORMALIZATION, 5);
    l.p.norm = (kiln__norm_params){type, 1e-5f, axis, groups};
    kiln__value in[5] = {lh_val(KILN_FLOAT32, d, NULL)}, out;
    for (int k = 1; k < 5; k++)
        if (present & (1 << k)) in[k] = lh_val(KILN_FLOAT32, p[k - 1], NULL);
    KT_STATUS(lh_infer(&l, in, &out), KILN_INVALID_ARGUMENT);
    KT_CHECK(lh_names_layer());
}

static void test_normalization_infer(void) {
    kiln_dims d = {4, {2, 6, 5, 7}}, c6 = {1, {6}}, c4 = {1, {4}}, w7 = {1, {7}}, w5 = {1, {5}};
    kiln_dims four6[4] = {c6, c6, c6, c6};
    expect_norm_error(KILN_NORM_BATCH, d, 0, 0, four6, 2 | 4 | 8);            /* no variance */
    expect_norm_error(KILN_NORM_BATCH, d, 0, 0, (kiln_dims[]){c6, c4, c6, c6}, 30); /* bias count */
    expect_norm_error(KILN_NORM_BATCH, (kiln_dims){1, {6}}, 0, 0, four6, 30);  /* rank 1 */
    expect_norm_error(KILN_NORM_INSTANCE, d, 0, 0, four6, 2 | 4 | 8);          /* stray mean */
    expect_norm_error(KILN_NORM_INSTANCE, d, 0, 0, four6, 2);                  /* no bias */
    expect_norm_error(KILN_NORM_GROUP, d, 0, 4, four6, 6);                     /* 6 % 4 */
    expect_norm_error(KILN_NORM_GROUP, d, 0, 0, four6, 6);                     /* no groups */
    expect_norm_error(KILN_NORM_GROUP, d, 0, 2, (kiln_dims[]){c4, c4}, 6);     /* 4 is neither C nor G */
    expect_norm_error(KILN_NORM_LAYER, d, 4, 0, (kiln_dims[]){w7}, 2);         /* axis */
    expect_norm_error(KILN_NORM_LAYER, d, -1, 0, (kiln_dims[]){w5}, 2);        /* 5 vs 7 */
    expect_norm_error(KILN_NORM_LAYER, d, -1, 0, (kiln_dims[]){w7}, 0);        /* no scale */
    expect_norm_error(KILN_NORM_RMS, d, -1, 0, (kiln_dims[]){{2, {5, 7}}}, 2); /* scale rank > normalized */
    expect_norm_error(7, d, -1, 0, (kiln_dims[]){w7}, 2);
    kiln_layer l = lh_layer(KILN_LAYER_NORMALIZATION, 5);
    l.p.norm = (kiln__norm_params){KILN_NORM_LAYER, 1e-5f, -1, 0};
    kiln__value in[5] = {lh_val(KILN_INT32, d, NULL), lh_val(KILN_FLOAT32, w7, NULL)}, out;
    KT_STATUS(lh_infer(&l, in, &out), KILN_INVALID_ARGUMENT);
    KT_CHECK(lh_names_layer());
    in[0].dtype = KILN_FLOAT16;
    KT_OK(lh_infer(&l, in, &out));
    KT_CHECK(out.dtype == KILN_FLOAT16 && kiln__dims_equal(&out.dims, &d));
    l.p.norm.epsilon = -1;
    KT_STATUS(lh_infer(&l, in, &out), KILN_INVALID_ARGUMENT);
}

/* ---------------------------------------------------------------- network API and engine */

static void test_api_and_engine(void) {
    kiln_builder *b = NULL;
    kiln_network *net = NULL;
    KT_OK(kiln_builder_create(NULL, &b));
    KT_OK(kiln_network_create(b, &net));
    if (!net) {
        kiln_builder_destroy(b);
        return;
    }
    kiln_tensor *x;
    kiln_dims xd = {3, {2, 4, 8}};
    KT_OK(kiln_network_add_input(net, "x", KILN_FLOAT32, &xd, &x));
    float g[8], be[8];
    kt_fill(g, 8, 0.5f, 1.5f);
    kt_fill(be, 8, -1, 1);
    kiln_layer *cg = NULL, *cb = NULL, *ln = NULL, *sm = NULL;
    KT_OK(kiln_network_add_constant(net, &(kiln_dims){1, {8}}, (kiln_weights){KILN_FLOAT32, g, 8}, &cg));
    KT_OK(kiln_network_add_constant(net, &(kiln_dims){1, {8}}, (kiln_weights){KILN_FLOAT32, be, 8}, &cb));
    kiln_normalization_desc desc = {sizeof desc, KILN_NORM_LAYER, 1e-5f, -1, 0};
    if (cg && cb)
        KT_OK(kiln_network_add_normalization(net, x, &desc, kiln_layer_output(cg, 0), kiln_layer_output(cb, 0), NULL,
                                             NULL, &ln));
    /* Errors through the API name the layer type, and leave no layer behind. */
    int32_t before = kiln_network_num_layers(net);
    kiln_normalization_desc bad = {sizeof bad, KILN_NORM_GROUP, 1e-5f, 0, 3};
    KT_STATUS(kiln_network_add_normalization(net, x, &bad, kiln_layer_output(cg, 0), kiln_layer_output(cb, 0), NULL,
                                             NULL, NULL),
              KILN_INVALID_ARGUMENT);
    KT_CHECK(strstr(kiln_last_error(), "(Normalization)") != NULL && kiln_network_num_layers(net) == before);
    KT_STATUS(kiln_network_add_softmax(net, x, 3, 0, NULL), KILN_INVALID_ARGUMENT);
    KT_CHECK(strstr(kiln_last_error(), "(Softmax)") != NULL);
    if (ln) KT_OK(kiln_network_add_softmax(net, kiln_layer_output(ln, 0), 1, 1, &sm));
    if (!sm) {
        kiln_network_destroy(net);
        kiln_builder_destroy(b);
        return;
    }
    kiln_dims sd;
    KT_OK(kiln_tensor_shape(kiln_layer_output(sm, 0), &sd));
    KT_CHECK(kiln__dims_equal(&sd, &xd));
    KT_OK(kiln_network_mark_output(net, kiln_layer_output(sm, 0)));
    float in[64];
    kt_fill(in, 64, -3, 3);
    size_t nbytes = 0;
    kiln_dims od;
    float *got = lh_execute(b, net, "x", in, sizeof in, &nbytes, &od);
    if (got) {
        double y[64];
        float want[64];
        for (int r = 0; r < 8; r++) { /* layer norm over the last dim */
            double m = 0, v = 0;
            for (int k = 0; k < 8; k++) m += in[r * 8 + k];
            m /= 8;
            for (int k = 0; k < 8; k++) v += pow(in[r * 8 + k] - m, 2);
            v /= 8;
            for (int k = 0; k < 8; k++) y[r * 8 + k] = (in[r * 8 + k] - m) / sqrt(v + 1e-5) * g[k] + be[k];
        }
        for (int bb = 0; bb < 2; bb++) /* log-softmax over dim 1 */
            for (int k = 0; k < 8; k++) {
                double mx = -INFINITY, s = 0;
                for (int c = 0; c < 4; c++) mx = fmax(mx, y[(bb * 4 + c) * 8 + k]);
                for (int c = 0; c < 4; c++) s += exp(y[(bb * 4 + c) * 8 + k] - mx);
                for (int c = 0; c < 4; c++) want[(bb * 4 + c) * 8 + k] = (float)(y[(bb * 4 + c) * 8 + k] - mx - log(s));
            }
        KT_CHECK(nbytes == sizeof in);
        kt_close("end-to-end layernorm + log_softmax", got, want, 64, 1e-4f, 1e-4f);
        free(got);
    }
    kiln_network_destroy(net);
    kiln_builder_destroy(b);
}

int main(void) {
    lh_init();
    /* Every kernel level this CPU has: the AVX-512 rows, then the AVX2 and portable ones. */
    int top = kiln__cpu_simd();
    for (int level = top; level >= KILN__SIMD_NONE; level--) {
        kiln__cpu_set_simd(level);
        test_softmax();
        test_normalization();
    }
    kiln__cpu_set_simd(top);
    test_normalization_infer();
    test_api_and_engine();
    lh_done();
    return kt_summary("test_cpu_norm");
}
