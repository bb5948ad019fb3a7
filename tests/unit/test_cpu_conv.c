/* Convolution and deconvolution: the CPU kernels against naive reference loops on random inputs
 * (shapes, strides, pads, dilations, groups, depthwise, 1-D/3-D, auto_pad, output_shape, fused
 * bias/residual/activation, all float dtypes, serial and threaded), shape inference and its
 * errors, the network API and one end-to-end engine run per layer. */
#include "cpu/gemm.h"
#include "cpu_kernel_test.h"

/* Named so the linker pulls the kernels out of the static library (the registry's references
 * are weak); the tests also check that the registry returns them. */
kiln_status kiln__cpu_conv(const kiln_layer *, const kiln__value *, kiln__value *, kiln__cpu_ctx *);
kiln_status kiln__cpu_deconv(const kiln_layer *, const kiln__value *, kiln__value *, kiln__cpu_ctx *);
kiln_status kiln__cpu_pooling(const kiln_layer *, const kiln__value *, kiln__value *, kiln__cpu_ctx *);

static int g_inplace_runs; /* cases run with the output over the residual */

/* A value of random data in [-1, 1); ref gets the values as stored (rounded to the dtype). */
static kiln__value rand_value(kiln_dtype t, kiln_dims dims, double **ref) {
    kiln__value v = {.dtype = t, .dims = dims};
    int64_t n = kiln__dims_volume(&dims);
    v.bytes = (size_t)n * ck_esize(t);
    v.data = malloc(v.bytes ? v.bytes : 1);
    *ref = malloc(sizeof(double) * (size_t)(n ? n : 1));
    for (int64_t i = 0; i < n; i++) {
        ck_store(v.data, t, i, kt_randf(-1, 1));
        (*ref)[i] = ck_load(v.data, t, i);
    }
    return v;
}

static double ref_act(int kind, double x) {
    switch (kind) {
    case KILN_ACT_RELU: return x > 0 ? x : 0;
    case KILN_ACT_LEAKY_RELU: return x >= 0 ? x : 0.1 * x;
    case KILN_ACT_SIGMOID: return 1 / (1 + exp(-x));
    case KILN_ACT_ELU: return x >= 0 ? x : 0.1 * (exp(x) - 1);
    case KILN_ACT_CLIP: return x < -0.4f ? -0.4f : x > 0.6f ? 0.6f : x;
    default: return x;
    }
}

/* ---------------------------------------------------------------- cases */

typedef struct conv_case {
    int deconv, ns;
    int64_t n, c, m, in[3], k[3], s[3], d[3], pb[3], pe[3], op[3];
    int groups, auto_pad, bias, res, act; /* act: kind or -1 */
    int has_os;
    int64_t os[3];
} conv_case;

static kiln_layer make_layer(const conv_case *cc, int nb_inputs) {
    kiln_layer l;
    memset(&l, 0, sizeof l);
    l.type = cc->deconv ? KILN_LAYER_DECONVOLUTION : KILN_LAYER_CONVOLUTION;
    l.name = cc->deconv ? "deconv_t" : "conv_t";
    l.nb_inputs = nb_inputs;
    l.nb_outputs = 1;
    kiln__conv_params *p = &l.p.conv;
    p->nb_output_maps = (int32_t)cc->m;
    p->nb_spatial = cc->ns;
    p->groups = cc->groups;
    p->auto_pad = cc->auto_pad;
    p->has_output_shape = cc->has_os;
    p->act.kind = cc->act;
    p->act.alpha = 0.1f;
    if (cc->act == KILN_ACT_CLIP) { /* bounds that clip some of the outputs on each side */
        p->act.alpha = -0.4f;
        p->act.beta = 0.6f;
    }
    for (int i = 0; i < cc->ns && i < 3; i++) {
        p->kernel[i] = cc->k[i];
        p->stride[i] = cc->s[i];
        p->dilation[i] = cc->d[i];
        p->pad_begin[i] = cc->pb[i];
        p->pad_end[i] = cc->pe[i];
        p->output_padding[i] = cc->op[i];
        p->output_shape[i] = cc->os[i];
    }
    return l;
}

/* Python's floor division by 2. */
static int64_t fdiv2(int64_t v) { return v >= 0 ? v / 2 : -((-v + 1) / 2); }

/* Reference output size and begin pad of spatial dim i, straight from the ONNX spec text. */
static void ref_geom(const conv_case *cc, int i, int64_t *out, int64_t *pb) {
    int64_t n = cc->in[i], k = cc->k[i], s = cc->s[i], d = cc->d[i], ek = (k - 1) * d + 1;
    bool same = cc->auto_pad == KILN__PAD_SAME_UPPER || cc->auto_pad == KILN__PAD_SAME_LOWER;
    if (!cc->deconv) {
        if (same) {
            *out = (n + s - 1) / s;
            int64_t total = (*out - 1) * s + ek - n;
            if (total < 0) total = 0;
            *pb = cc->auto_pad == KILN__PAD_SAME_UPPER ? total / 2 : total - total / 2;
        } else if (cc->auto_pad == KILN__PAD_VALID) {
            *out = (n - ek) / s + 1;
            *pb = 0;
        } else {
            *out = (n + cc->pb[i] + cc->pe[i] - ek) / s + 1;
            *pb = cc->pb[i];
        }
        return;
    }
    if (cc->has_os || same) {
        *out = cc->has_os ? cc->os[i] : n * s;
        int64_t total = s * (n - 1) + cc->op[i] + ek - *out;
        *pb = cc->auto_pad == KILN__PAD_SAME_UPPER ? fdiv2(total) : total - fdiv2(total);
    } else if (cc->auto_pad == KILN__PAD_VALID) {
        *out = s * (n - 1) + cc->op[i] + ek;
        *pb = 0;
    } else {
        *out = s * (n - 1) + cc->op[i] + ek - cc->pb[i] - cc->pe[i];
        *pb = cc->pb[i];
    }
}

/* Naive reference over padded-to-3 index arrays. */
static void reference(const conv_case *cc, const int64_t *out, const int64_t *pb, const double *x, const double *w,
                      const double *b, const double *r, double *y) {
    int64_t in3[3] = {1, 1, 1}, out3[3] = {1, 1, 1}, k3[3] = {1, 1, 1}, s3[3] = {1, 1, 1}, d3[3] = {1, 1, 1},
            p3[3] = {0, 0, 0};
    int off = 3 - cc->ns;
    for (int i = 0; i < cc->ns; i++) {
        in3[off + i] = cc->in[i];
        out3[off + i] = out[i];
        k3[off + i] = cc->k[i];
        s3[off + i] = cc->s[i];
        d3[off + i] = cc->d[i];
        p3[off + i] = pb[i];
    }
    int64_t ip = in3[0] * in3[1] * in3[2], opl = out3[0] * out3[1] * out3[2], kv = k3[0] * k3[1] * k3[2];
    int64_t cg = cc->c / cc->groups, mg = cc->m / cc->groups, ny = cc->n * cc->m * opl;
    for (int64_t i = 0; i < ny; i++) y[i] = 0;
    for (int64_t n = 0; n < cc->n; n++)
        for (int64_t m = 0; m < cc->m; m++)
            for (int64_t ci = 0; ci < cg; ci++) {
                int64_t g = m / mg, c = g * cg + ci;
                for (int64_t a0 = 0; a0 < (cc->deconv ? in3[0] : out3[0]); a0++)
                    for (int64_t a1 = 0; a1 < (cc->deconv ? in3[1] : out3[1]); a1++)
                        for (int64_t a2 = 0; a2 < (cc->deconv ? in3[2] : out3[2]); a2++)
                            for (int64_t k0 = 0; k0 < k3[0]; k0++)
                                for (int64_t k1 = 0; k1 < k3[1]; k1++)
                                    for (int64_t k2 = 0; k2 < k3[2]; k2++) {
                                        int64_t b0 = a0 * s3[0] - p3[0] + k0 * d3[0];
                                        int64_t b1 = a1 * s3[1] - p3[1] + k1 * d3[1];
                                        int64_t b2 = a2 * s3[2] - p3[2] + k2 * d3[2];
                                        const int64_t *lim = cc->deconv ? out3 : in3;
                                        if (b0 < 0 || b0 >= lim[0] || b1 < 0 || b1 >= lim[1] || b2 < 0 ||
                                            b2 >= lim[2])
                                            continue;
                                        int64_t kk = (k0 * k3[1] + k1) * k3[2] + k2;
                                        if (!cc->deconv) {
                                            double wv = w[(m * cg + ci) * kv + kk];
                                            y[(n * cc->m + m) * opl + (a0 * out3[1] + a1) * out3[2] + a2] +=
                                                wv * x[(n * cc->c + c) * ip + (b0 * in3[1] + b1) * in3[2] + b2];
                                        } else {
                                            double wv = w[(c * mg + m % mg) * kv + kk];
                                            y[(n * cc->m + m) * opl + (b0 * out3[1] + b1) * out3[2] + b2] +=
                                                wv * x[(n * cc->c + c) * ip + (a0 * in3[1] + a1) * in3[2] + a2];
                                        }
                                    }
            }
    for (int64_t i = 0; i < ny; i++) {
        double v = y[i] + (b ? b[i / opl % cc->m] : 0) + (r ? r[i] : 0);
        y[i] = cc->act >= 0 ? ref_act(cc->act, v) : v;
    }
}

/* cache: run the kernel twice with this layer slot (the first run may fill it, the second reads
 * it); constant: whether the weights come from a constant layer; wseed: when not 0, the weights
 * are drawn from this seed (equal weights for equal shapes, as one engine layer's would be: a
 * slot may then meet the same weights at a recycled address). */
static void run_case_seeded(const char *what, const conv_case *cc, kiln_dtype t, kiln__pool *pool, void **cache,
                            bool constant, uint64_t wseed) {
    char label[160];
    snprintf(label, sizeof label, "%s [%s, %s]", what, kiln_dtype_name(t), pool ? "threads" : "serial");
    int64_t out[3], pb[3];
    kiln_dims xd = {cc->ns + 2, {cc->n, cc->c}}, wd = {cc->ns + 2, {0}}, yd = {cc->ns + 2, {cc->n, cc->m}};
    wd.d[0] = cc->deconv ? cc->c : cc->m;
    wd.d[1] = cc->deconv ? cc->m / cc->groups : cc->c / cc->groups;
    for (int i = 0; i < cc->ns; i++) {
        ref_geom(cc, i, &out[i], &pb[i]);
        xd.d[2 + i] = cc->in[i];
        wd.d[2 + i] = cc->k[i];
        yd.d[2 + i] = out[i];
    }
    double *rx, *rw, *rb = NULL, *rr = NULL;
    kiln__value in[4];
    memset(in, 0, sizeof in);
    in[0] = rand_value(t, xd, &rx);
    uint64_t rng = kt_rng_state;
    if (wseed) kt_rng_state = wseed;
    in[1] = rand_value(t, wd, &rw);
    if (wseed) kt_rng_state = rng;
    if (cc->bias) in[2] = rand_value(t, (kiln_dims){1, {cc->m}}, &rb);
    if (cc->res) in[3] = rand_value(t, yd, &rr);
    kiln_layer l = make_layer(cc, cc->res ? 4 : 3);
    kiln_layer cl = {.type = KILN_LAYER_CONSTANT, .name = "w"};
    kiln_tensor tx = {.name = "x"}, tw = {.name = "w", .producer = constant ? &cl : NULL}, tb = {.name = "b"};
    kiln_tensor tr = {.name = "r"}, *tens[4] = {&tx, &tw, &tb, &tr};
    if (cache) l.inputs = tens;
    kiln__value o[1];
    memset(o, 0, sizeof o);
    const kiln__layer_ops *ops = kiln__layer_ops_for(l.type);
    KT_OK(ops->infer(&l, in, o));
    KT_CHECK(o[0].dtype == t && kiln__dims_equal(&o[0].dims, &yd));
    if (!kiln__dims_equal(&o[0].dims, &yd)) {
        char got[128], want[128];
        kiln__dims_format(&o[0].dims, got, sizeof got);
        kiln__dims_format(&yd, want, sizeof want);
        fprintf(stderr, "%s: inferred %s, expected %s\n", label, got, want);
        goto done;
    }
    int64_t ny = kiln__dims_volume(&yd);
    o[0].bytes = (size_t)ny * ck_esize(t);
    o[0].data = malloc(o[0].bytes);
    kiln__cpu_ctx ctx = {.pool = pool, .alloc = &g_alloc, .cache = cache};
    double *ry = malloc(sizeof(double) * (size_t)ny);
    reference(cc, out, pb, rx, rw, rb, rr, ry);
    float *got = malloc(sizeof(float) * (size_t)ny), *want = malloc(sizeof(float) * (size_t)ny);
    float tol = t == KILN_FLOAT64 ? 1e-6f : t == KILN_FLOAT32 ? 1e-4f : t == KILN_FLOAT16 ? 1e-2f : 3e-2f;
    /* float32 sums of many products round more with Winograd (3x3 stride 1): grows with sqrt(K) */
    double k_len = (double)(cc->c / cc->groups) * (double)cc->k[0] * (cc->ns > 1 ? (double)cc->k[1] : 1.0) *
                   (cc->ns > 2 ? (double)cc->k[2] : 1.0);
    float atol = t == KILN_FLOAT32 ? KILN__MAX(tol, 4e-5f * (float)sqrt(k_len)) : tol;
    /* Where the planner may put the output over the residual, also run with the two in one buffer. */
    bool inplace = cc->res && !cc->deconv && kiln__cpu_conv_inplace_ok(&l, in, o);
    kiln__value in_place[4];
    memcpy(in_place, in, sizeof in);
    in_place[3].data = o[0].data;
    for (int run = 0; run < (cache ? 2 : 1) + inplace; run++) {
        bool over_res = inplace && run == (cache ? 2 : 1);
        if (over_res)
            memcpy(o[0].data, in[3].data, o[0].bytes);
        else
            memset(o[0].data, 0xff, o[0].bytes); /* NaNs: every output must be written */
        KT_OK(kiln__cpu_kernel_for(l.type)(&l, over_res ? in_place : in, o, &ctx));
        for (int64_t i = 0; i < ny; i++) {
            got[i] = (float)ck_load(o[0].data, t, i);
            want[i] = (float)ry[i];
        }
        char run_label[180];
        snprintf(run_label, sizeof run_label, "%s%s", label, over_res ? " over its residual" : "");
        kt_close(run_label, got, want, ny, tol, atol);
        g_inplace_runs += over_res;
    }
    free(got);
    free(want);
    free(ry);
    free(o[0].data);
done:
    for (int i = 0; i < 4; i++) free(in[i].data);
    free(rx);
    free(rw);
    free(rb);
    free(rr);
}

static void run_case_cached(const char *what, const conv_case *cc, kiln_dtype t, kiln__pool *pool, void **cache,
                            bool constant) {
    run_case_seeded(what, cc, t, pool, cache, constant, 0);
}

static void run_case(const char *what, const conv_case *cc, kiln_dtype t, kiln__pool *pool) {
    run_case_cached(what, cc, t, pool, NULL, false);
}

static conv_case c2d(int64_t n, int64_t c, int64_t m, int64_t h, int64_t w, int64_t k, int64_t s, int64_t p,
                     int64_t d, int g) {
    conv_case cc = {.ns = 2, .n = n, .c = c, .m = m, .in = {h, w}, .k = {k, k}, .s = {s, s}, .d = {d, d},
                    .pb = {p, p}, .pe = {p, p}, .groups = g, .act = -1};
    return cc;
}

static void run_all_dtypes(const char *what, const conv_case *cc) {
    static const kiln_dtype types[] = {KILN_FLOAT32, KILN_FLOAT16, KILN_BFLOAT16, KILN_FLOAT64};
    for (size_t i = 0; i < KILN__ARRAY_LEN(types); i++) run_case(what, cc, types[i], NULL);
    run_case(what, cc, KILN_FLOAT32, g_pool);
}

static void test_conv_kernels(void) {
    conv_case cc = c2d(2, 3, 4, 7, 6, 3, 1, 1, 1, 1);
    run_all_dtypes("conv 3x3 pad 1", &cc);
    cc = c2d(1, 4, 6, 9, 8, 3, 2, 0, 1, 1);
    cc.pe[1] = 2;
    run_all_dtypes("conv stride 2 asymmetric pads", &cc);
    cc = c2d(3, 4, 4, 10, 9, 3, 1, 2, 2, 2);
    cc.bias = 1;
    run_all_dtypes("conv dilation 2 groups 2 bias", &cc);
    cc = c2d(5, 6, 6, 8, 8, 3, 2, 1, 1, 6);
    cc.bias = 1;
    cc.act = KILN_ACT_RELU;
    run_all_dtypes("depthwise stride 2 bias relu", &cc);
    cc = c2d(2, 4, 4, 9, 7, 5, 1, 2, 2, 4);
    run_all_dtypes("depthwise 5x5 dilation 2", &cc);
    cc = c2d(2, 3, 6, 5, 5, 3, 1, 1, 1, 3);
    run_all_dtypes("groups 3, 2 maps per group", &cc);
    cc = c2d(4, 8, 5, 6, 7, 1, 1, 0, 1, 1);
    cc.bias = 1;
    cc.res = 1;
    cc.act = KILN_ACT_LEAKY_RELU;
    run_all_dtypes("pointwise bias residual leaky", &cc);
    cc = c2d(1, 8, 5, 6, 7, 1, 2, 0, 1, 1);
    run_all_dtypes("pointwise stride 2", &cc);
    cc = c2d(2, 3, 4, 6, 5, 1, 1, 0, 1, 1);
    cc.pe[1] = 1;
    run_all_dtypes("1x1 with end padding", &cc);
    cc = c2d(2, 3, 4, 7, 7, 3, 1, 1, 1, 1);
    cc.bias = cc.res = 1;
    cc.act = KILN_ACT_SIGMOID;
    run_all_dtypes("conv bias residual sigmoid", &cc);
    conv_case c1 = {.ns = 1, .n = 2, .c = 3, .m = 5, .in = {17}, .k = {4}, .s = {3}, .d = {2}, .pb = {3}, .pe = {1},
                    .groups = 1, .bias = 1, .act = -1};
    run_all_dtypes("conv 1-D", &c1);
    conv_case c3 = {.ns = 3, .n = 2, .c = 4, .m = 6, .in = {5, 6, 4}, .k = {3, 2, 3}, .s = {1, 2, 1},
                    .d = {1, 1, 2}, .pb = {1, 0, 1}, .pe = {1, 1, 2}, .groups = 2, .bias = 1, .act = -1};
    run_all_dtypes("conv 3-D groups 2", &c3);
    for (int ap = KILN__PAD_SAME_UPPER; ap <= KILN__PAD_VALID; ap++) {
        cc = c2d(2, 3, 4, 8, 7, 4, 3, 0, 1, 1);
        cc.auto_pad = ap;
        char what[64];
        snprintf(what, sizeof what, "conv auto_pad %d", ap);
        run_all_dtypes(what, &cc);
        cc.groups = cc.c = cc.m = 3;
        snprintf(what, sizeof what, "depthwise auto_pad %d", ap);
        run_all_dtypes(what, &cc);
    }
    /* Random shapes. */
    for (int it = 0; it < 30; it++) {
        conv_case r = {.ns = (int)kt_randi(1, 3), .n = kt_randi(1, 3), .groups = (int)kt_randi(1, 3), .act = -1};
        r.c = r.groups * kt_randi(1, 3);
        r.m = r.groups * kt_randi(1, 3);
        if (kt_randi(0, 3) == 0) r.c = r.m = r.groups;
        r.auto_pad = (int)kt_randi(0, 3);
        r.bias = (int)kt_randi(0, 1);
        r.res = (int)kt_randi(0, 1);
        for (int i = 0; i < r.ns; i++) {
            r.k[i] = kt_randi(1, 3);
            r.s[i] = kt_randi(1, 3);
            r.d[i] = kt_randi(1, 2);
            r.pb[i] = kt_randi(0, 2);
            r.pe[i] = kt_randi(0, 2);
            r.in[i] = (r.k[i] - 1) * r.d[i] + kt_randi(1, 8);
        }
        run_case("random conv", &r, KILN_FLOAT32, it % 2 ? g_pool : NULL);
    }
}

/* Rows wide enough for the vectorized depthwise blocks (32 and 8 outputs) and their borders,
 * and GEMMs larger than one cache block, with the AVX2 kernels and with the portable paths. */
static void test_wide_kernels(void) {
    static const int acts[] = {-1, KILN_ACT_RELU, KILN_ACT_SIGMOID, KILN_ACT_LEAKY_RELU};
    for (int simd = KILN__SIMD_AVX512; simd >= KILN__SIMD_NONE; simd--) {
        kiln__cpu_set_simd(simd);
        for (int it = 0; it < 40; it++) {
            int64_t k = 2 * kt_randi(0, 3) + 1, s = kt_randi(1, 3), d = kt_randi(1, 2), c = kt_randi(1, 5);
            conv_case r = c2d(kt_randi(1, 2), c, c, (k - 1) * d + kt_randi(1, 12), (k - 1) * d + kt_randi(1, 90), k, s,
                              kt_randi(0, k), d, (int)c);
            r.pe[1] = kt_randi(0, k);
            r.bias = (int)kt_randi(0, 1);
            r.res = (int)kt_randi(0, 1);
            r.act = acts[kt_randi(0, 3)];
            if (it % 8 == 7) { /* 3-D */
                r.ns = 3;
                r.in[2] = r.in[1];
                r.in[1] = r.in[0];
                r.in[0] = (k - 1) * d + kt_randi(1, 4);
                r.k[2] = r.k[1] = r.k[0] = k;
                r.s[2] = r.s[1] = r.s[0] = s;
                r.d[2] = r.d[1] = r.d[0] = d;
                r.pb[2] = r.pb[1] = r.pb[0];
                r.pe[2] = r.pe[1];
            }
            run_case(simd ? "wide depthwise" : "wide depthwise (portable)", &r, KILN_FLOAT32,
                     it % 2 ? g_pool : NULL);
        }
        /* 3-D with one input slice and padded depth: output slices of bias and residual only */
        conv_case dd = c2d(2, 2, 2, 8, 44, 1, 2, 1, 2, 2);
        dd.ns = 3;
        dd.in[2] = 44;
        dd.in[1] = 8;
        dd.in[0] = 1;
        dd.k[2] = 1;
        dd.s[2] = dd.d[2] = 2;
        dd.pb[2] = 1;
        dd.pe[1] = dd.pe[2] = 0;
        dd.bias = dd.res = 1;
        run_case("depthwise padded depth", &dd, KILN_FLOAT32, g_pool);
        conv_case cc = c2d(2, 40, 150, 23, 29, 3, 1, 1, 1, 1);
        cc.bias = cc.res = 1;
        cc.act = KILN_ACT_RELU;
        run_case("conv 3x3 150 maps", &cc, KILN_FLOAT32, NULL);
        run_case("conv 3x3 150 maps", &cc, KILN_FLOAT32, g_pool);
        cc = c2d(1, 300, 70, 9, 11, 1, 1, 0, 1, 1);
        cc.bias = 1;
        cc.act = KILN_ACT_SIGMOID;
        run_case("pointwise 300 channels", &cc, KILN_FLOAT32, g_pool);
        cc = c2d(2, 12, 18, 40, 40, 3, 2, 1, 1, 3);
        run_case("grouped conv 40x40", &cc, KILN_FLOAT32, g_pool);
    }
    kiln__cpu_set_simd(KILN__SIMD_AVX512);
}

/* Convolutions whose col matrix the GEMM packs from the input (panels crossing output rows, rows
 * in the padding, strides 1 and 2 vectorized, others lane by lane), at every SIMD level, with
 * and without cached weights, and with several row tiles of the GEMM (B packed once for them). */
static void test_implicit_im2col(void) {
    static const int acts[] = {-1, KILN_ACT_RELU, KILN_ACT_SIGMOID, KILN_ACT_LEAKY_RELU};
    for (int simd = KILN__SIMD_AVX512; simd >= KILN__SIMD_NONE; simd--) {
        kiln__cpu_set_simd(simd);
        for (int it = 0; it < 24; it++) {
            int64_t k = kt_randi(1, 7), s = kt_randi(1, 3), d = kt_randi(1, 2), g = kt_randi(1, 2);
            conv_case r = c2d(kt_randi(1, 2), g * kt_randi(1, 5), g * kt_randi(1, 40), (k - 1) * d + kt_randi(1, 20),
                              (k - 1) * d + kt_randi(1, 70), k, s, kt_randi(0, k), d, (int)g);
            r.pe[1] = kt_randi(0, k);
            r.pb[0] = kt_randi(0, k);
            if (k == 1 && s == 1 && r.pb[0] + r.pb[1] + r.pe[0] + r.pe[1] == 0) r.pe[1] = 1; /* not pointwise */
            r.bias = (int)kt_randi(0, 1);
            r.res = (int)kt_randi(0, 1);
            r.act = acts[kt_randi(0, 3)];
            if (it % 6 == 5) { /* 3-D */
                r.ns = 3;
                r.in[2] = r.in[1];
                r.in[1] = r.in[0];
                r.in[0] = (k - 1) * d + kt_randi(1, 4);
                r.k[2] = r.k[1] = r.k[0] = k;
                r.s[2] = r.s[1];
                r.s[1] = r.s[0] = kt_randi(1, 2);
                r.d[2] = r.d[1] = r.d[0] = d;
                r.pb[2] = r.pb[1];
                r.pe[2] = r.pe[1];
                r.pe[0] = r.pb[1] = r.pe[1] = 0;
            }
            void *slot = NULL;
            run_case_cached(simd ? "implicit im2col" : "im2col (portable)", &r, KILN_FLOAT32, it % 2 ? g_pool : NULL,
                            it % 3 ? &slot : NULL, true);
            kiln__free(&g_alloc, slot);
        }
        conv_case cc = c2d(1, 6, 300, 9, 10, 3, 2, 1, 1, 1); /* several row tiles: B packed once for all */
        cc.bias = cc.res = 1;
        cc.act = KILN_ACT_RELU;
        run_case("implicit im2col, 300 maps", &cc, KILN_FLOAT32, g_pool);
        cc = c2d(2, 4, 20, 1, 77, 1, 1, 0, 1, 1); /* 1x1 with pads: padding rows and columns */
        cc.pb[1] = cc.pe[0] = 1;
        run_case("1x1 padded", &cc, KILN_FLOAT32, NULL);
    }
    kiln__cpu_set_simd(KILN__SIMD_AVX512);
}

/* Small planes (7x7, 14x14) with many maps run the GEMM transposed (plane on the micro-kernel's
 * row side) when the weights are cached; the slot switches layout when the plane grows. */
static void test_narrow_planes(void) {
    static const int acts[] = {-1, KILN_ACT_RELU, KILN_ACT_LEAKY_RELU, KILN_ACT_SIGMOID};
    for (int simd = KILN__SIMD_AVX512; simd >= KILN__SIMD_AVX2; simd--) {
        kiln__cpu_set_simd(simd);
        conv_case cases[] = {
            c2d(1, 520, 64, 7, 7, 1, 1, 0, 1, 1),  /* pointwise: the input is col^T */
            c2d(2, 64, 96, 7, 7, 3, 1, 1, 1, 1),   /* 3x3, batch 2 (too few tiles for Winograd) */
            c2d(1, 520, 64, 14, 14, 1, 2, 0, 1, 1), /* strided 1x1 down to 7x7 */
            c2d(1, 64, 32, 28, 28, 3, 2, 1, 1, 1), /* 3x3 stride 2 down to 14x14 */
            c2d(1, 60, 70, 5, 9, 3, 1, 1, 1, 1),   /* maps not a multiple of the panel width */
        };
        for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
            cases[i].bias = (int)kt_randi(0, 1);
            cases[i].res = (int)kt_randi(0, 1);
            cases[i].act = acts[kt_randi(0, 3)];
            void *slot = NULL;
            char what[80];
            uint64_t wseed = kt_rand_u64() | 1;
            snprintf(what, sizeof what, "narrow plane %zu, simd %d", i, simd);
            run_case_seeded(what, &cases[i], KILN_FLOAT32, i % 2 ? g_pool : NULL, &slot, true, wseed);
            conv_case wide = cases[i];
            wide.in[0] = wide.in[1] = 40; /* a large plane: A panels again */
            snprintf(what, sizeof what, "narrow plane %zu, then a wide one, simd %d", i, simd);
            run_case_seeded(what, &wide, KILN_FLOAT32, g_pool, &slot, true, wseed);
            snprintf(what, sizeof what, "narrow plane %zu again, simd %d", i, simd);
            run_case_seeded(what, &cases[i], KILN_FLOAT32, NULL, &slot, true, wseed);
            kiln__free(&g_alloc, slot);
        }
    }
    kiln__cpu_set_simd(KILN__SIMD_AVX512);
}

/* 2-D convolutions of one group with AVX-512 read a padded, stride-phase-split copy of the input in
 * place (a grid of Ho x Wq outputs, the extra columns dropped); strides 1 and 2 per axis,
 * dilations, asymmetric pads, 1x1 strided (the grid is y itself), the epilogue on the stored runs. */
/* Variant v (0-3) of a case for the direct and channel-vector paths: bias but v 1, residual from v
 * 2, an activation per variant (ELU is applied over the stored runs, not in registers); threads on
 * odd v; weights cached in a slot but on v 3. */
static void run_epilogue_variant(const char *path, size_t i, int v, conv_case cc) {
    static const int acts[] = {-1, KILN_ACT_RELU, KILN_ACT_ELU, KILN_ACT_SIGMOID};
    cc.bias = v != 1;
    cc.res = v >= 2;
    cc.act = acts[v];
    void *slot = NULL;
    char what[64];
    snprintf(what, sizeof what, "%s %zu.%d", path, i, v);
    run_case_cached(what, &cc, KILN_FLOAT32, v % 2 ? g_pool : NULL, v < 3 ? &slot : NULL, true);
    kiln__free(&g_alloc, slot);
}

static void test_direct(void) {
    conv_case cases[] = {
        c2d(1, 48, 40, 14, 14, 3, 1, 1, 1, 1),  /* few tiles: direct, not Winograd */
        c2d(2, 20, 70, 28, 28, 3, 2, 1, 1, 1),  /* stride 2, batch 2 */
        c2d(1, 3, 24, 40, 40, 7, 2, 3, 1, 1),   /* a stem: 3 channels, 7x7 stride 2 */
        c2d(2, 40, 36, 14, 14, 1, 2, 0, 1, 1),  /* 1x1 stride 2: one phase, no copy out */
        c2d(1, 9, 33, 21, 37, 3, 1, 2, 2, 1),   /* dilation 2 */
        c2d(1, 16, 50, 7, 7, 3, 1, 1, 1, 1),    /* 7x7 */
        c2d(1, 3, 40, 9, 101, 3, 2, 1, 1, 1),   /* stride 2 over wide rows: the copy's vector loop */
    };
    cases[4].pe[1] = 1;
    cases[4].pb[0] = 1;
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++)
        for (int v = 0; v < 4; v++) {
            conv_case cc = cases[i];
            if (i == 5 && v == 3) { /* a 3x1 kernel, stride 2 down and 1 across */
                cc.k[1] = 1;
                cc.s[0] = 2;
                cc.pb[1] = cc.pe[1] = 0;
            }
            run_epilogue_variant("direct", i, v, cc);
        }
}

/* Shapes the channel-vector GEMM takes (AVX-512): output maps a multiple of 32 or close above
 * one, 1x1 over small planes, long sums, strides, dilation, asymmetric pads, rows of positions cut
 * into unequal blocks, maps past the last full panel. */
static void test_channel_vector(void) {
    conv_case cases[] = {
        c2d(1, 64, 64, 7, 7, 1, 1, 0, 1, 1),     /* 1x1 on 7x7: 49 positions, a short sum */
        c2d(2, 256, 96, 14, 14, 1, 1, 0, 1, 1),  /* 1x1, batch 2 */
        c2d(2, 32, 64, 14, 14, 3, 2, 1, 1, 1),   /* 3x3 stride 2 */
        c2d(1, 40, 264, 7, 7, 3, 1, 1, 1, 1),    /* 264 maps: a panel of 8 */
        c2d(1, 30, 32, 9, 30, 3, 1, 1, 1, 1),    /* rows of 30: blocks of 10 */
        c2d(1, 32, 32, 11, 13, 3, 1, 2, 2, 1),   /* dilation 2 */
    };
    cases[5].pe[1] = 1;
    cases[5].pb[0] = 1;
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++)
        for (int v = 0; v < 4; v++) run_epilogue_variant("channel-vector", i, v, cases[i]);
}

/* 3x3 layers on small planes that Winograd F(2x2) and its stride-2 form take (AVX-512), through
 * the layer's kernel: the epilogue variants, the output over its residual, asymmetric pads, a batch. */
static void test_winograd_small(void) {
    conv_case cases[] = {
        c2d(1, 64, 64, 14, 14, 3, 1, 1, 1, 1),  /* ResNet's stage 3 in small */
        c2d(2, 96, 64, 10, 12, 3, 1, 1, 1, 1),  /* batch 2, 5 x 6 tiles */
        c2d(1, 64, 60, 11, 9, 3, 1, 1, 1, 1),   /* asymmetric pads, maps past the last panel */
        c2d(1, 64, 64, 28, 28, 3, 2, 1, 1, 1),  /* stride 2 down to 14x14 */
        c2d(2, 96, 60, 20, 19, 3, 2, 1, 1, 1),  /* stride 2, batch 2, odd planes, 5 x 5 tiles */
        c2d(1, 64, 64, 42, 40, 3, 2, 1, 1, 1),  /* stride 2, 11 x 10 tiles: blocks of tile rows */
    };
    cases[2].pe[1] = 2;
    cases[2].pb[0] = 0;
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++)
        for (int v = 0; v < 4; v++) run_epilogue_variant("winograd small", i, v, cases[i]);
}

/* run_case_seeded also runs every case with a residual that kiln__cpu_conv_inplace_ok allows with
 * the output over the residual. These add sums cut into several K blocks, whose first block would
 * store over the residual before the last one reads it, at every SIMD level; depthwise layers
 * are not allowed. */
static void test_inplace_residual(void) {
    int before = g_inplace_runs;
    for (int simd = KILN__SIMD_AVX512; simd >= KILN__SIMD_NONE; simd--) {
        kiln__cpu_set_simd(simd);
        conv_case cases[] = {
            c2d(1, 600, 40, 9, 11, 1, 1, 0, 1, 1),  /* pointwise: the row GEMM */
            c2d(1, 600, 40, 28, 28, 1, 2, 0, 1, 1), /* 1x1 stride 2: B read in place */
            c2d(2, 70, 40, 10, 12, 3, 2, 1, 1, 1),  /* implicit im2col */
        };
        for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
            cases[i].bias = cases[i].res = 1;
            cases[i].act = KILN_ACT_RELU;
            char what[64];
            snprintf(what, sizeof what, "long sums %zu, simd %d", i, simd);
            run_case(what, &cases[i], KILN_FLOAT32, i % 2 ? g_pool : NULL);
        }
    }
    kiln__cpu_set_simd(KILN__SIMD_AVX512);
    KT_CHECK(g_inplace_runs == before + 9);
    conv_case dw = c2d(1, 8, 8, 6, 6, 3, 1, 1, 1, 8);
    kiln_layer l = make_layer(&dw, 4);
    kiln__value in[4] = {{.dtype = KILN_FLOAT32, .dims = {4, {1, 8, 6, 6}}},
                         {.dtype = KILN_FLOAT32, .dims = {4, {8, 1, 3, 3}}},
                         {.dtype = KILN_FLOAT32, .dims = {1, {8}}},
                         {.dtype = KILN_FLOAT32, .dims = {4, {1, 8, 6, 6}}}};
    kiln__value out = {.dtype = KILN_FLOAT32, .dims = {4, {1, 8, 6, 6}}};
    KT_CHECK(!kiln__cpu_conv_inplace_ok(&l, in, &out));
    dw.groups = 1; /* the same as a full convolution */
    l = make_layer(&dw, 4);
    in[1].dims.d[1] = 8;
    KT_CHECK(kiln__cpu_conv_inplace_ok(&l, in, &out));
}

/* Constant weights packed once into the layer's slot and reused; rebuilt when the layer's
 * weights change shape; never cached when they are not constant, for depthwise layers or without
 * AVX2. */
static void test_packed_weights(void) {
    void *slot = NULL;
    conv_case cc = c2d(2, 40, 150, 23, 29, 3, 1, 1, 1, 1);
    cc.bias = cc.res = 1;
    cc.act = KILN_ACT_RELU;
    run_case_cached("packed weights", &cc, KILN_FLOAT32, g_pool, &slot, true);
    KT_CHECK((slot != NULL) == (kiln__cpu_simd() != KILN__SIMD_NONE));
    cc = c2d(1, 12, 18, 9, 11, 3, 2, 1, 1, 3); /* other dims: repacked */
    run_case_cached("packed weights, groups 3", &cc, KILN_FLOAT32, NULL, &slot, true);
    cc.m = 9;
    run_case_cached("packed weights, groups 3, 9 maps", &cc, KILN_FLOAT16, g_pool, &slot, true);
    kiln__free(&g_alloc, slot);
    slot = NULL;
    cc = c2d(1, 300, 70, 9, 11, 1, 1, 0, 1, 1);
    run_case_cached("packed pointwise weights", &cc, KILN_BFLOAT16, NULL, &slot, true);
    kiln__free(&g_alloc, slot);
    slot = NULL;
    run_case_cached("weights not constant", &cc, KILN_FLOAT32, NULL, &slot, false);
    KT_CHECK(slot == NULL);
    run_case_cached("float64 weights", &cc, KILN_FLOAT64, NULL, &slot, true);
    KT_CHECK(slot == NULL);
    cc = c2d(1, 8, 8, 9, 40, 3, 1, 1, 1, 8);
    run_case_cached("depthwise weights", &cc, KILN_FLOAT32, NULL, &slot, true);
    KT_CHECK(slot == NULL);
    kiln__cpu_set_simd(KILN__SIMD_NONE);
    cc = c2d(1, 10, 12, 9, 11, 3, 1, 1, 1, 1);
    run_case_cached("weights without AVX2", &cc, KILN_FLOAT32, NULL, &slot, true);
    KT_CHECK(slot == NULL);
    kiln__cpu_set_simd(KILN__SIMD_AVX512);
}

/* Large depthwise planes (AVX-512: a ring of padded input rows at x-stride 1, the row kernels at
 * 2, whose inside vectors split 32 columns into evens and odds in registers; AVX2: a ring of
 * padded rows at both strides, split into even and odd columns at 2): strides 1 and 2 along x
 * with other strides along y, dilation, kernels that are not square, pads wider than the kernel
 * or none with inputs wider than the outputs reach, rows narrower than one vector and rows
 * ending in every vector count, batch 2, a residual and activations in registers and over the
 * rows, at every SIMD level; the last case spans more rows than the ring holds and takes the
 * row kernels. */
static void test_depthwise_padded_rows(void) {
    conv_case cases[] = {
        c2d(1, 3, 3, 112, 112, 3, 1, 1, 1, 3), c2d(2, 5, 5, 70, 90, 3, 2, 1, 1, 5),
        c2d(1, 3, 3, 80, 75, 5, 2, 4, 2, 3),   c2d(1, 2, 2, 900, 9, 3, 2, 1, 1, 2),
        c2d(1, 4, 4, 60, 130, 3, 1, 1, 1, 4),  c2d(1, 2, 2, 50, 97, 3, 2, 0, 1, 2),
        c2d(1, 3, 3, 64, 64, 7, 1, 3, 1, 3),   c2d(1, 2, 2, 90, 71, 3, 2, 5, 1, 2),
        c2d(1, 2, 2, 100, 60, 9, 1, 8, 2, 2),
    };
    cases[1].s[0] = 1; /* x stride 2, y stride 1 */
    cases[3].s[0] = 3;
    cases[4].s[0] = 2; /* x stride 1, y stride 2 */
    cases[5].pe[1] = 1;
    cases[6].k[1] = 1; /* 7x1 */
    cases[6].pb[1] = cases[6].pe[1] = 0;
    cases[7].pe[0] = 1;
    static const int acts[] = {KILN_ACT_RELU, -1, KILN_ACT_CLIP, KILN_ACT_SIGMOID};
    for (int simd = KILN__SIMD_AVX512; simd >= KILN__SIMD_NONE; simd--) {
        kiln__cpu_set_simd(simd);
        for (size_t i = 0; i < KILN__ARRAY_LEN(cases); i++) {
            conv_case cc = cases[i];
            cc.bias = i != 2;
            cc.res = i % 2 == 0;
            cc.act = acts[i % KILN__ARRAY_LEN(acts)];
            char what[64];
            snprintf(what, sizeof what, "depthwise padded rows %zu simd %d", i, simd);
            run_case(what, &cc, KILN_FLOAT32, i % 2 ? g_pool : NULL);
        }
    }
    kiln__cpu_set_simd(KILN__SIMD_AVX512);
}

/* Depthwise rows of every width class and stride (the padded, phase-split copy), with 1 and 2
 * output rows per pass, at every SIMD level. */
static void test_depthwise_shapes(void) {
    for (int simd = KILN__SIMD_AVX512; simd >= KILN__SIMD_NONE; simd--) {
        kiln__cpu_set_simd(simd);
        for (int64_t s = 1; s <= 4; s++)
            for (int64_t w = 1; w <= 70; w += 23) {
                conv_case cc = c2d(1, 3, 3, 2 * s + 1, w + 2, 3, s, 1, 1, 3);
                cc.k[1] = 1 + s % 3;
                cc.pe[1] = s % 2;
                cc.bias = cc.res = 1;
                cc.act = s == 3 ? KILN_ACT_SIGMOID : KILN_ACT_RELU;
                char what[64];
                snprintf(what, sizeof what, "depthwise stride %d width %d simd %d", (int)s, (int)(w + 2), simd);
                run_case(what, &cc, KILN_FLOAT32, s % 2 ? g_pool : NULL);
            }
        conv_case big = c2d(1, 2, 2, 5, 9, 3, 1, 5, 1, 2); /* pads wider than the kernel */
        big.pe[1] = 7;
        run_case("depthwise pads 5/7", &big, KILN_FLOAT32, NULL);
        big = c2d(1, 2, 2, 30, 100, 3, 2, 0, 1, 2); /* inputs wider than the outputs need */
        big.k[0] = 1;
        run_case("depthwise valid stride 2", &big, KILN_FLOAT32, NULL);
        /* Blocks of 16 channels on small planes, and at stride 1 on planes up to 56x56: a partial
         * last block, strides, dilation, 5x5, asymmetric pads, batch 2, a residual and
         * activations. */
        conv_case blocks[] = {
            c2d(1, 40, 40, 7, 7, 3, 1, 1, 1, 40),   c2d(2, 24, 24, 14, 14, 3, 2, 1, 1, 24),
            c2d(1, 17, 17, 11, 9, 5, 1, 4, 2, 17),  c2d(1, 32, 32, 28, 28, 3, 1, 1, 1, 32),
            c2d(1, 16, 16, 6, 13, 3, 2, 0, 1, 16),  c2d(1, 48, 48, 56, 56, 3, 1, 1, 1, 48),
            c2d(2, 20, 20, 30, 41, 3, 1, 1, 1, 20),
        };
        blocks[2].pe[1] = 1;
        blocks[4].pe[0] = 2;
        for (size_t i = 0; i < sizeof blocks / sizeof *blocks; i++) {
            conv_case cc = blocks[i];
            cc.bias = i != 1;
            cc.res = i % 2;
            cc.act = i == 2 ? KILN_ACT_SIGMOID : KILN_ACT_RELU;
            char what[64];
            snprintf(what, sizeof what, "depthwise channel blocks %zu simd %d", i, simd);
            run_case(what, &cc, KILN_FLOAT32, i % 2 ? g_pool : NULL);
        }
    }
    kiln__cpu_set_simd(KILN__SIMD_AVX512);
}

static void test_deconv_kernels(void) {
    conv_case cc = c2d(2, 3, 4, 5, 4, 3, 2, 1, 1, 1);
    cc.deconv = 1;
    run_all_dtypes("deconv stride 2 pad 1", &cc);
    cc.op[0] = cc.op[1] = 1;
    cc.bias = 1;
    run_all_dtypes("deconv output padding bias", &cc);
    cc = c2d(3, 4, 6, 5, 6, 3, 2, 0, 2, 2);
    cc.deconv = cc.bias = cc.res = 1;
    cc.act = KILN_ACT_RELU;
    cc.pe[0] = 2;
    run_all_dtypes("deconv groups dilation bias residual relu", &cc);
    cc = c2d(4, 4, 4, 3, 3, 3, 3, 1, 1, 4);
    cc.deconv = 1;
    run_all_dtypes("deconv depthwise", &cc);
    for (int ap = KILN__PAD_SAME_UPPER; ap <= KILN__PAD_VALID; ap++) {
        cc = c2d(2, 3, 2, 3, 4, 3, 2, 0, 1, 1);
        cc.deconv = 1;
        cc.auto_pad = ap;
        run_all_dtypes("deconv auto_pad", &cc);
    }
    cc = c2d(1, 2, 3, 3, 4, 3, 2, 0, 1, 1);
    cc.deconv = cc.has_os = 1;
    cc.os[0] = 8;
    cc.os[1] = 10;
    run_all_dtypes("deconv output_shape", &cc);
    cc.auto_pad = KILN__PAD_SAME_UPPER;
    cc.os[0] = 7;
    run_all_dtypes("deconv output_shape same_upper", &cc);
    conv_case c1 = {.deconv = 1, .ns = 1, .n = 2, .c = 3, .m = 2, .in = {6}, .k = {4}, .s = {3}, .d = {1},
                    .pb = {2}, .pe = {1}, .op = {2}, .groups = 1, .bias = 1, .act = -1};
    run_all_dtypes("deconv 1-D", &c1);
    conv_case c3 = {.deconv = 1, .ns = 3, .n = 1, .c = 2, .m = 4, .in = {3, 4, 2}, .k = {2, 3, 2}, .s = {2, 1, 2},
                    .d = {1, 2, 1}, .pb = {0, 1, 1}, .pe = {1, 0, 0}, .groups = 2, .act = -1};
    run_all_dtypes("deconv 3-D groups", &c3);
    for (int it = 0; it < 20; it++) {
        conv_case r = {.deconv = 1, .ns = (int)kt_randi(1, 3), .n = kt_randi(1, 4), .groups = (int)kt_randi(1, 2),
                       .act = -1};
        r.c = r.groups * kt_randi(1, 3);
        r.m = r.groups * kt_randi(1, 3);
        r.bias = (int)kt_randi(0, 1);
        for (int i = 0; i < r.ns; i++) {
            r.k[i] = kt_randi(1, 3);
            r.s[i] = kt_randi(1, 3);
            r.d[i] = kt_randi(1, 2);
            r.op[i] = kt_randi(0, KILN__MAX(r.s[i], r.d[i]) - 1);
            r.pb[i] = kt_randi(0, r.k[i] - 1);
            r.pe[i] = kt_randi(0, r.k[i] - 1);
            r.in[i] = kt_randi(1, 5);
            if (r.s[i] * (r.in[i] - 1) + r.op[i] + (r.k[i] - 1) * r.d[i] + 1 - r.pb[i] - r.pe[i] < 1)
                r.pb[i] = r.pe[i] = 0;
        }
        run_case("random deconv", &r, KILN_FLOAT32, it % 2 ? g_pool : NULL);
    }
}

/* ---------------------------------------------------------------- inference */

static void infer_dims(const conv_case *cc, kiln_dims x, kiln_dims w, kiln_dims *out, kiln_status want) {
    kiln_layer l = make_layer(cc, 3);
    kiln__value in[3], o[1];
    memset(in, 0, sizeof in);
    memset(o, 0, sizeof o);
    in[0] = (kiln__value){.dtype = KILN_FLOAT32, .dims = x};
    in[1] = (kiln__value){.dtype = KILN_FLOAT32, .dims = w};
    kiln_status st = kiln__layer_ops_for(l.type)->infer(&l, in, o);
    KT_STATUS(st, want);
    if (st != KILN_OK) KT_CHECK(strstr(kiln_last_error(), l.name) != NULL);
    if (out) *out = o[0].dims;
}

static void test_infer(void) {
    conv_case cc = c2d(1, 4, 8, 10, 10, 3, 2, 1, 1, 2);
    kiln_dims o;
    /* Unknown dims stay unknown; the rest is computed. */
    infer_dims(&cc, (kiln_dims){4, {-1, 4, -1, 10}}, (kiln_dims){4, {8, 2, 3, 3}}, &o, KILN_OK);
    KT_CHECK(o.nb_dims == 4 && o.d[0] == -1 && o.d[1] == 8 && o.d[2] == -1 && o.d[3] == 5);
    infer_dims(&cc, (kiln_dims){4, {1, -1, 10, 10}}, (kiln_dims){4, {-1, 2, 3, 3}}, &o, KILN_OK);
    KT_CHECK(o.d[1] == 8 && o.d[2] == 5);
    /* Errors: ranks, channels, groups, too big a kernel, params. */
    infer_dims(&cc, (kiln_dims){3, {1, 4, 10}}, (kiln_dims){4, {8, 2, 3, 3}}, NULL, KILN_INVALID_ARGUMENT);
    infer_dims(&cc, (kiln_dims){4, {1, 4, 10, 10}}, (kiln_dims){3, {8, 2, 3}}, NULL, KILN_INVALID_ARGUMENT);
    infer_dims(&cc, (kiln_dims){4, {1, 5, 10, 10}}, (kiln_dims){4, {8, 2, 3, 3}}, NULL, KILN_INVALID_ARGUMENT);
    infer_dims(&cc, (kiln_dims){4, {1, 4, 10, 10}}, (kiln_dims){4, {8, 2, 5, 3}}, NULL, KILN_INVALID_ARGUMENT);
    infer_dims(&cc, (kiln_dims){4, {1, 4, 2, 10}}, (kiln_dims){4, {8, 2, 3, 3}}, &o, KILN_OK);
    cc.pb[0] = cc.pe[0] = 0;
    infer_dims(&cc, (kiln_dims){4, {1, 4, 2, 10}}, (kiln_dims){4, {8, 2, 3, 3}}, NULL, KILN_INVALID_ARGUMENT);
    cc = c2d(1, 6, 6, 10, 10, 3, 1, 1, 1, 4);
    infer_dims(&cc, (kiln_dims){4, {1, 8, 10, 10}}, (kiln_dims){4, {6, 2, 3, 3}}, NULL, KILN_INVALID_ARGUMENT);
    cc.groups = 0;
    infer_dims(&cc, (kiln_dims){4, {1, 6, 10, 10}}, (kiln_dims){4, {6, 6, 3, 3}}, NULL, KILN_INVALID_ARGUMENT);
    cc = c2d(1, 4, 8, 10, 10, 3, 0, 1, 1, 1);
    infer_dims(&cc, (kiln_dims){4, {1, 4, 10, 10}}, (kiln_dims){4, {8, 4, 3, 3}}, NULL, KILN_INVALID_ARGUMENT);
    cc = c2d(1, 4, 8, 10, 10, 3, 1, 1, 1, 1);
    cc.ns = 4;
    infer_dims(&cc, (kiln_dims){4, {1, 4, 10, 10}}, (kiln_dims){4, {8, 4, 3, 3}}, NULL, KILN_INVALID_ARGUMENT);
    /* Deconvolution: output padding must stay below the stride; channels come from dim 0. */
    cc = c2d(1, 4, 6, 5, 5, 3, 2, 1, 1, 2);
    cc.deconv = 1;
    infer_dims(&cc, (kiln_dims){4, {1, 4, -1, 5}}, (kiln_dims){4, {4, 3, 3, 3}}, &o, KILN_OK);
    KT_CHECK(o.d[1] == 6 && o.d[2] == -1 && o.d[3] == 9);
    infer_dims(&cc, (kiln_dims){4, {1, 3, 5, 5}}, (kiln_dims){4, {4, 3, 3, 3}}, NULL, KILN_INVALID_ARGUMENT);
    cc.op[0] = 2;
    infer_dims(&cc, (kiln_dims){4, {1, 4, 5, 5}}, (kiln_dims){4, {4, 3, 3, 3}}, NULL, KILN_INVALID_ARGUMENT);
    /* Bias of the wrong size, residual of the wrong shape, mixed dtypes. */
    cc = c2d(1, 4, 8, 10, 10, 3, 1, 1, 1, 1);
    kiln_layer l = make_layer(&cc, 4);
    kiln__value in[4], out[1];
    memset(in, 0, sizeof in);
    in[0] = (kiln__value){.dtype = KILN_FLOAT32, .dims = {4, {1, 4, 10, 10}}};
    in[1] = (kiln__value){.dtype = KILN_FLOAT32, .dims = {4, {8, 4, 3, 3}}};
    in[2] = (kiln__value){.dtype = KILN_FLOAT32, .dims = {1, {7}}};
    KT_STATUS(kiln__layer_ops_for(l.type)->infer(&l, in, out), KILN_INVALID_ARGUMENT);
    in[2].dims.d[0] = 8;
    in[3] = (kiln__value){.dtype = KILN_FLOAT32, .dims = {4, {1, 8, 10, 9}}};
    KT_STATUS(kiln__layer_ops_for(l.type)->infer(&l, in, out), KILN_INVALID_ARGUMENT);
    KT_CHECK(strstr(kiln_last_error(), "residual") != NULL);
    in[3].dims.d[3] = 10;
    KT_OK(kiln__layer_ops_for(l.type)->infer(&l, in, out));
    in[1].dtype = KILN_FLOAT16;
    KT_STATUS(kiln__layer_ops_for(l.type)->infer(&l, in, out), KILN_INVALID_ARGUMENT);
    kiln__buf desc;
    kiln__buf_init(&desc, &g_alloc);
    cc = c2d(1, 4, 8, 10, 10, 3, 2, 1, 2, 2);
    cc.act = KILN_ACT_RELU;
    l = make_layer(&cc, 4);
    kiln_tensor *no_inputs[4] = {NULL, NULL, NULL, NULL};
    l.inputs = no_inputs;
    kiln__layer_ops_for(l.type)->describe(&l, &desc);
    kiln__buf_append(&desc, "", 1);
    KT_CHECK(desc.data && strstr((char *)desc.data, "kernel=3x3 stride=2x2 dilation=2x2") &&
             strstr((char *)desc.data, "groups=2") && strstr((char *)desc.data, "pad_begin=1x1"));
    kiln__buf_free(&desc);
    l = make_layer(&cc, 4);
    in[0].dtype = in[1].dtype = in[2].dtype = in[3].dtype = KILN_INT32;
    KT_STATUS(kiln__layer_ops_for(l.type)->infer(&l, in, out), KILN_UNSUPPORTED);
}

/* A kernel's scratch allocation failing comes back as KILN_OUT_OF_MEMORY. */
static void *failing_alloc(void *user, size_t size, size_t alignment) {
    (void)user, (void)size, (void)alignment;
    return NULL;
}
static void null_free(void *user, void *ptr) { (void)user, (void)ptr; }

static void test_oom(void) {
    conv_case cc = c2d(1, 3, 4, 6, 6, 3, 1, 1, 1, 1);
    kiln_layer l = make_layer(&cc, 3);
    static float x[3 * 36], w[4 * 3 * 9], y[4 * 36];
    kiln__value in[3] = {{KILN_FLOAT32, {4, {1, 3, 6, 6}}, x, sizeof x, KILN__LAYOUT_PLAIN}, {KILN_FLOAT32, {4, {4, 3, 3, 3}}, w, sizeof w, KILN__LAYOUT_PLAIN},
                         {0}};
    kiln__value out[1] = {{KILN_FLOAT32, {4, {1, 4, 6, 6}}, y, sizeof y, KILN__LAYOUT_PLAIN}};
    kiln_allocator bad = {failing_alloc, null_free, NULL};
    kiln__alloc a;
    kiln__alloc_init(&a, &bad);
    kiln__cpu_ctx ctx = {.pool = NULL, .alloc = &a};
    KT_STATUS(kiln__cpu_conv(&l, in, out, &ctx), KILN_OUT_OF_MEMORY);
    l.type = KILN_LAYER_DECONVOLUTION;
    in[1].dims = (kiln_dims){4, {3, 4, 3, 3}};
    out[0].dims = (kiln_dims){4, {1, 4, 6, 6}};
    KT_STATUS(kiln__cpu_deconv(&l, in, out, &ctx), KILN_OUT_OF_MEMORY);
}

/* ---------------------------------------------------------------- network API and engine */

static void test_api_and_engine(void) {
    kiln_builder *b;
    kiln_network *net;
    KT_OK(kiln_builder_create(NULL, &b));
    KT_OK(kiln_network_create(b, &net));
    kiln_dims xd = {4, {2, 3, 9, 8}};
    kiln_tensor *x;
    KT_OK(kiln_network_add_input(net, "x", KILN_FLOAT32, &xd, &x));
    float w[6 * 3 * 9], bias[6], w2[6 * 2 * 4];
    kt_fill(w, 54 * 3, -1, 1);
    kt_fill(bias, 6, -1, 1);
    kt_fill(w2, 48, -1, 1);
    kiln_convolution_desc d;
    memset(&d, 0, sizeof d);
    d.struct_size = sizeof d;
    d.nb_output_maps = 6;
    d.kernel[0] = d.kernel[1] = 3;
    d.stride[0] = 2;
    d.padding_begin[0] = d.padding_end[0] = d.padding_begin[1] = 1;
    kiln_layer *conv;
    KT_OK(kiln_network_add_convolution(net, x, &d, (kiln_weights){KILN_FLOAT32, w, 6 * 3 * 9},
                                       (kiln_weights){KILN_FLOAT32, bias, 6}, &conv));
    kiln_dims od;
    KT_OK(kiln_tensor_shape(kiln_layer_output(conv, 0), &od));
    KT_CHECK(od.nb_dims == 4 && od.d[0] == 2 && od.d[1] == 6 && od.d[2] == 5 && od.d[3] == 7);
    KT_CHECK(kiln_layer_get_type(conv) == KILN_LAYER_CONVOLUTION);
    KT_CHECK(strcmp(kiln_layer_type_name(KILN_LAYER_CONVOLUTION), "Convolution") == 0);
    /* Deconvolution on the conv output: 4 maps in 2 groups, kernel [6, 2, 2, 2]. */
    kiln_convolution_desc dd;
    memset(&dd, 0, sizeof dd);
    dd.struct_size = sizeof dd;
    dd.nb_output_maps = 4;
    dd.groups = 2;
    dd.kernel[0] = dd.kernel[1] = 2;
    dd.stride[0] = dd.stride[1] = 2;
    kiln_layer *deconv;
    KT_OK(kiln_network_add_deconvolution(net, kiln_layer_output(conv, 0), &dd,
                                         (kiln_weights){KILN_FLOAT32, w2, 6 * 2 * 4}, (kiln_weights){0}, &deconv));
    KT_OK(kiln_tensor_shape(kiln_layer_output(deconv, 0), &od));
    KT_CHECK(od.d[1] == 4 && od.d[2] == 10 && od.d[3] == 14);
    /* API errors: wrong kernel count, bad desc, wrong-rank input. */
    int32_t before = kiln_network_num_layers(net);
    KT_STATUS(kiln_network_add_convolution(net, x, &d, (kiln_weights){KILN_FLOAT32, w, 50}, (kiln_weights){0}, NULL),
              KILN_INVALID_ARGUMENT);
    d.nb_spatial_dims = 3;
    KT_STATUS(kiln_network_add_convolution(net, x, &d, (kiln_weights){KILN_FLOAT32, w, 162}, (kiln_weights){0}, NULL),
              KILN_INVALID_ARGUMENT);
    d.nb_spatial_dims = 2;
    KT_STATUS(kiln_network_add_convolution(net, x, NULL, (kiln_weights){KILN_FLOAT32, w, 162}, (kiln_weights){0}, NULL),
              KILN_INVALID_ARGUMENT);
    KT_CHECK(kiln_network_num_layers(net) == before);
    /* Dynamic batch: -1 stays -1. */
    kiln_dims dyn = {4, {-1, 3, 9, 8}};
    kiln_tensor *xdyn;
    kiln_layer *cdyn;
    KT_OK(kiln_network_add_input(net, "xdyn", KILN_FLOAT32, &dyn, &xdyn));
    KT_OK(kiln_network_add_convolution(net, xdyn, &d, (kiln_weights){KILN_FLOAT32, w, 162}, (kiln_weights){0}, &cdyn));
    KT_OK(kiln_tensor_shape(kiln_layer_output(cdyn, 0), &od));
    KT_CHECK(od.d[0] == -1 && od.d[1] == 6 && od.d[2] == 5);

    /* End to end: conv -> deconv on the engine, against the reference loops. */
    kiln_network *net2;
    KT_OK(kiln_network_create(b, &net2));
    KT_OK(kiln_network_add_input(net2, "x", KILN_FLOAT32, &xd, &x));
    d.padding_end[0] = 0;
    d.padding_end[1] = 0;
    KT_OK(kiln_network_add_convolution(net2, x, &d, (kiln_weights){KILN_FLOAT32, w, 162},
                                       (kiln_weights){KILN_FLOAT32, bias, 6}, &conv));
    KT_OK(kiln_network_add_deconvolution(net2, kiln_layer_output(conv, 0), &dd,
                                         (kiln_weights){KILN_FLOAT32, w2, 48}, (kiln_weights){0}, &deconv));
    KT_OK(kiln_network_mark_output(net2, kiln_layer_output(deconv, 0)));
    kiln_builder_config *cfg;
    kiln_engine *eng = NULL;
    kiln_context *ctx = NULL;
    KT_OK(kiln_builder_config_create(b, &cfg));
    KT_OK(kiln_builder_build_engine(b, net2, cfg, &eng));
    if (eng) KT_OK(kiln_engine_create_context(eng, &ctx));
    if (ctx) {
        float xin[2 * 3 * 9 * 8];
        kt_fill(xin, 432, -1, 1);
        KT_OK(kiln_context_set_tensor_address(ctx, "x", xin, sizeof xin));
        KT_OK(kiln_context_execute(ctx));
        void *yp = NULL;
        KT_OK(kiln_context_get_tensor_address(ctx, kiln_tensor_name(kiln_layer_output(deconv, 0)), &yp));
        /* Reference: conv (pads 1,0 / 1,0) then deconv (groups 2, stride 2). */
        conv_case c1 = {.ns = 2, .n = 2, .c = 3, .m = 6, .in = {9, 8}, .k = {3, 3}, .s = {2, 1}, .d = {1, 1},
                        .pb = {1, 1}, .groups = 1, .act = -1};
        int64_t o1[2], p1[2];
        for (int i = 0; i < 2; i++) ref_geom(&c1, i, &o1[i], &p1[i]);
        double rx[432], rw[162], rb[6], ry1[2 * 6 * 4 * 7], rw2[48];
        for (int i = 0; i < 432; i++) rx[i] = xin[i];
        for (int i = 0; i < 162; i++) rw[i] = w[i];
        for (int i = 0; i < 6; i++) rb[i] = bias[i];
        for (int i = 0; i < 48; i++) rw2[i] = w2[i];
        reference(&c1, o1, p1, rx, rw, rb, NULL, ry1);
        conv_case c2 = {.deconv = 1, .ns = 2, .n = 2, .c = 6, .m = 4, .in = {o1[0], o1[1]}, .k = {2, 2},
                        .s = {2, 2}, .d = {1, 1}, .groups = 2, .act = -1};
        int64_t o2[2], p2[2];
        for (int i = 0; i < 2; i++) ref_geom(&c2, i, &o2[i], &p2[i]);
        int64_t ny = 2 * 4 * o2[0] * o2[1];
        double *ry2 = malloc(sizeof(double) * (size_t)ny);
        float *want = malloc(sizeof(float) * (size_t)ny);
        reference(&c2, o2, p2, ry1, rw2, NULL, NULL, ry2);
        for (int64_t i = 0; i < ny; i++) want[i] = (float)ry2[i];
        if (yp) kt_close("engine conv->deconv", yp, want, ny, 1e-4f, 1e-4f);
        free(ry2);
        free(want);
    }
    kiln_context_destroy(ctx);
    kiln_engine_destroy(eng);
    kiln_builder_config_destroy(cfg);
    kiln_network_destroy(net2);
    kiln_network_destroy(net);
    kiln_builder_destroy(b);
}


/* ---------------------------------------------------------------- NCHW16C edges */

/* A float32 value of dims with random data (or zeros when data is false). */
static kiln__value f32_value(kiln_dims dims, bool data) {
    kiln__value v = {.dtype = KILN_FLOAT32, .dims = dims};
    int64_t n = kiln__dims_volume(&dims);
    v.bytes = (size_t)n * sizeof(float);
    v.data = calloc((size_t)KILN__MAX(n, 1), sizeof(float));
    for (int64_t i = 0; i < n && data; i++) ((float *)v.data)[i] = kt_randf(-1, 1);
    return v;
}

/* [n][c][plane] <-> [n][c / 16][plane][16] */
static void nchw16c(const float *src, float *dst, int64_t n, int64_t c, int64_t plane, bool to_blocked) {
    for (int64_t i = 0; i < n * c; i++)
        for (int64_t q = 0; q < plane; q++) {
            int64_t plain = i * plane + q, blocked = ((i / 16) * plane + q) * 16 + i % 16;
            if (to_blocked)
                dst[blocked] = src[plain];
            else
                dst[plain] = src[blocked];
        }
}

/* Plain or NCHW16C copies of a value. */
static kiln__value blocked_copy(const kiln__value *v, bool blocked) {
    kiln__value b = f32_value(v->dims, false);
    if (blocked) nchw16c(v->data, b.data, v->dims.d[0], v->dims.d[1], v->dims.d[2] * v->dims.d[3], true);
    if (!blocked) memcpy(b.data, v->data, v->bytes);
    b.layout = blocked ? KILN__LAYOUT_NCHW16C : KILN__LAYOUT_PLAIN;
    return b;
}

/* An inverted-residual chain: pointwise c -> m, depthwise 3x3 stride s, pointwise m -> c2. Each
 * edge is chosen only where both kernels take NCHW16C (want_e, want_p), and the chain computes
 * through them what it computes in NCHW. */
static void blocked_chain(int64_t n, int64_t c, int64_t m, int64_t c2, int64_t hw, int64_t s, int act, bool e_res,
                          bool want_e, bool want_p) {
    char label[160];
    snprintf(label, sizeof label, "NCHW16C chain %lld->%lld->%lld @%lld s%lld act %d%s", (long long)c, (long long)m,
             (long long)c2, (long long)hw, (long long)s, act, e_res ? " res" : "");
    conv_case ec = c2d(n, c, m, hw, hw, 1, 1, 0, 1, 1), dc = c2d(n, m, m, hw, hw, 3, s, 1, 1, (int)m);
    int64_t ho = (hw + 2 - 3) / s + 1;
    conv_case pc = c2d(n, m, c2, ho, ho, 1, 1, 0, 1, 1);
    ec.act = act;
    dc.act = act == KILN_ACT_LEAKY_RELU ? KILN_ACT_RELU : act;
    kiln_layer el = make_layer(&ec, e_res ? 4 : 3), dl = make_layer(&dc, 3), pl = make_layer(&pc, 3);
    kiln__value e_in[4] = {f32_value((kiln_dims){4, {n, c, hw, hw}}, true), f32_value((kiln_dims){4, {m, c, 1, 1}}, true),
                           f32_value((kiln_dims){1, {m}}, true), {0}};
    if (e_res) e_in[3] = f32_value((kiln_dims){4, {n, m, hw, hw}}, true);
    kiln__value t = f32_value((kiln_dims){4, {n, m, hw, hw}}, false);
    kiln__value d_in[3] = {t, f32_value((kiln_dims){4, {m, 1, 3, 3}}, true), f32_value((kiln_dims){1, {m}}, true)};
    kiln__value u = f32_value((kiln_dims){4, {n, m, ho, ho}}, false);
    kiln__value p_in[3] = {u, f32_value((kiln_dims){4, {c2, m, 1, 1}}, true), f32_value((kiln_dims){1, {c2}}, true)};
    kiln__value y = f32_value((kiln_dims){4, {n, c2, ho, ho}}, false), yb = f32_value(y.dims, false);
    kiln__cpu_ctx ctx = {.pool = g_pool, .alloc = &g_alloc};
    /* NCHW all the way */
    bool chosen_e = kiln__cpu_blocked_edge(&el, e_in, &t, &dl, d_in, &u);
    KT_OK(kiln__cpu_conv(&el, e_in, &t, &ctx));
    KT_OK(kiln__cpu_conv(&dl, d_in, &u, &ctx));
    d_in[0].layout = chosen_e ? KILN__LAYOUT_NCHW16C : KILN__LAYOUT_PLAIN;
    bool chosen_p = kiln__cpu_blocked_edge(&dl, d_in, &u, &pl, p_in, &y);
    KT_OK(kiln__cpu_conv(&pl, p_in, &y, &ctx));
    KT_CHECK(chosen_e == want_e && chosen_p == want_p);
    if (chosen_e != want_e || chosen_p != want_p) fprintf(stderr, "%s: chosen %d %d\n", label, chosen_e, chosen_p);
    /* Through the chosen layouts: each layer's output against the NCHW one, converted. */
    kiln__value tb = blocked_copy(&t, chosen_e), ub = blocked_copy(&u, chosen_p), want_t = blocked_copy(&t, chosen_e),
                want_u = blocked_copy(&u, chosen_p);
    memset(tb.data, 0xff, tb.bytes); /* NaNs: every output must be written */
    memset(ub.data, 0xff, ub.bytes);
    memset(yb.data, 0xff, yb.bytes);
    KT_OK(kiln__cpu_conv(&el, e_in, &tb, &ctx));
    kt_close(label, tb.data, want_t.data, kiln__dims_volume(&t.dims), 1e-5f, 1e-5f);
    kiln__value db_in[3] = {tb, d_in[1], d_in[2]}, pb_in[3] = {ub, p_in[1], p_in[2]};
    KT_OK(kiln__cpu_conv(&dl, db_in, &ub, &ctx));
    kt_close(label, ub.data, want_u.data, kiln__dims_volume(&u.dims), 1e-5f, 1e-5f);
    KT_OK(kiln__cpu_conv(&pl, pb_in, &yb, &ctx));
    kt_close(label, yb.data, y.data, kiln__dims_volume(&y.dims), 1e-5f, 1e-5f);
    kiln__value *all[] = {&e_in[0], &e_in[1], &e_in[2], &e_in[3], &d_in[1], &d_in[2], &p_in[1], &p_in[2], &t, &u, &y,
                          &yb, &tb, &ub, &want_t, &want_u};
    for (size_t i = 0; i < KILN__ARRAY_LEN(all); i++) free(all[i]->data);
}

/* Three pointwise layers c -> m -> m2 -> c3: the middle one, where both its edges are chosen
 * (want_1, want_2), reads and writes NCHW16C, and the chain computes what it computes in NCHW. */
static void blocked_pointwise_chain(int64_t n, int64_t c, int64_t m, int64_t m2, int64_t c3, int64_t hw, int act,
                                    bool want_1, bool want_2) {
    char label[160];
    snprintf(label, sizeof label, "NCHW16C pointwise chain %lld->%lld->%lld->%lld @%lld act %d", (long long)c,
             (long long)m, (long long)m2, (long long)c3, (long long)hw, act);
    conv_case cs[3] = {c2d(n, c, m, hw, hw, 1, 1, 0, 1, 1), c2d(n, m, m2, hw, hw, 1, 1, 0, 1, 1),
                       c2d(n, m2, c3, hw, hw, 1, 1, 0, 1, 1)};
    int64_t chans[4] = {c, m, m2, c3};
    kiln_layer ls[3];
    kiln__value in[3][3], out[3], outb[3], want[3];
    for (int i = 0; i < 3; i++) {
        cs[i].act = act;
        ls[i] = make_layer(&cs[i], 3);
        in[i][0] = f32_value((kiln_dims){4, {n, chans[i], hw, hw}}, i == 0);
        in[i][1] = f32_value((kiln_dims){4, {chans[i + 1], chans[i], 1, 1}}, true);
        in[i][2] = f32_value((kiln_dims){1, {chans[i + 1]}}, true);
        out[i] = f32_value((kiln_dims){4, {n, chans[i + 1], hw, hw}}, false);
    }
    kiln__cpu_ctx ctx = {.pool = g_pool, .alloc = &g_alloc};
    bool chosen[2];
    for (int i = 0; i < 3; i++) { /* NCHW all the way; the edges as the evaluator would choose them */
        if (i > 0) memcpy(in[i][0].data, out[i - 1].data, out[i - 1].bytes);
        if (i > 0) in[i][0].layout = chosen[i - 1] ? KILN__LAYOUT_NCHW16C : KILN__LAYOUT_PLAIN;
        if (i < 2) chosen[i] = kiln__cpu_blocked_edge(&ls[i], in[i], &out[i], &ls[i + 1], in[i + 1], &out[i + 1]);
        in[i][0].layout = KILN__LAYOUT_PLAIN;
        KT_OK(kiln__cpu_conv(&ls[i], in[i], &out[i], &ctx));
    }
    KT_CHECK(chosen[0] == want_1 && chosen[1] == want_2);
    if (chosen[0] != want_1 || chosen[1] != want_2) fprintf(stderr, "%s: chosen %d %d\n", label, chosen[0], chosen[1]);
    for (int i = 0; i < 3; i++) { /* through the chosen layouts: each output against the NCHW one, converted */
        bool y_blocked = i < 2 && chosen[i];
        want[i] = blocked_copy(&out[i], y_blocked);
        outb[i] = blocked_copy(&out[i], y_blocked);
        memset(outb[i].data, 0xff, outb[i].bytes); /* NaNs: every output must be written */
        kiln__value x = i == 0 ? in[0][0] : outb[i - 1], bin[3] = {x, in[i][1], in[i][2]};
        KT_OK(kiln__cpu_conv(&ls[i], bin, &outb[i], &ctx));
        kt_close(label, outb[i].data, want[i].data, kiln__dims_volume(&out[i].dims), 1e-5f, 1e-5f);
    }
    for (int i = 0; i < 3; i++) {
        for (int k = 0; k < 3; k++) free(in[i][k].data);
        free(out[i].data);
        free(outb[i].data);
        free(want[i].data);
    }
}

/* A depthwise layer reading NCHW16C (copied on small stride-1 planes, else in place, its windows
 * crossing the padding on every side; strides, dilation, 5x5, batch 2), writing NCHW (with a
 * residual) or NCHW16C: what it computes from the NCHW input. */
static void blocked_depthwise(conv_case cc, bool res, bool y_blocked) {
    char label[160];
    snprintf(label, sizeof label, "NCHW16C depthwise %lld@%lldx%lld k%lld s%lld d%lld%s%s", (long long)cc.c,
             (long long)cc.in[0], (long long)cc.in[1], (long long)cc.k[0], (long long)cc.s[0], (long long)cc.d[0],
             res ? " res" : "", y_blocked ? " to NCHW16C" : "");
    cc.act = res ? KILN_ACT_CLIP : y_blocked ? KILN_ACT_SIGMOID : KILN_ACT_RELU;
    kiln_layer l = make_layer(&cc, res ? 4 : 3);
    int64_t c = cc.c, ho = (cc.in[0] + cc.pb[0] + cc.pe[0] - cc.d[0] * (cc.k[0] - 1) - 1) / cc.s[0] + 1;
    int64_t wo = (cc.in[1] + cc.pb[1] + cc.pe[1] - cc.d[1] * (cc.k[1] - 1) - 1) / cc.s[1] + 1;
    kiln__value in[4] = {f32_value((kiln_dims){4, {cc.n, c, cc.in[0], cc.in[1]}}, true),
                         f32_value((kiln_dims){4, {c, 1, cc.k[0], cc.k[1]}}, true),
                         f32_value((kiln_dims){1, {c}}, true), {0}};
    if (res) in[3] = f32_value((kiln_dims){4, {cc.n, c, ho, wo}}, true);
    kiln__value y = f32_value((kiln_dims){4, {cc.n, c, ho, wo}}, false), yb = f32_value(y.dims, false);
    kiln__cpu_ctx ctx = {.pool = g_pool, .alloc = &g_alloc};
    KT_OK(kiln__cpu_conv(&l, in, &y, &ctx));
    kiln__value xb = blocked_copy(&in[0], true), want = blocked_copy(&y, y_blocked);
    kiln__value bin[4] = {xb, in[1], in[2], in[3]};
    yb.layout = y_blocked ? KILN__LAYOUT_NCHW16C : KILN__LAYOUT_PLAIN;
    memset(yb.data, 0xff, yb.bytes); /* NaNs: every output must be written */
    KT_OK(kiln__cpu_conv(&l, bin, &yb, &ctx));
    kt_close(label, yb.data, want.data, kiln__dims_volume(&y.dims), 1e-5f, 1e-5f);
    kiln__value *all[] = {&in[0], &in[1], &in[2], &in[3], &y, &yb, &xb, &want};
    for (size_t i = 0; i < KILN__ARRAY_LEN(all); i++) free(all[i]->data);
}

/* A convolution into 2-D max or average pooling (window k, stride s, pads pb/pe, ceil mode by
 * the output size ho): NCHW16C between them where chosen (want), and the same outputs as in NCHW. */
static void blocked_conv_pool(conv_case cc, int type, int64_t k, int64_t s, int64_t pb, int64_t pe, int cip,
                              int64_t ho, bool indices, bool want) {
    char label[160];
    snprintf(label, sizeof label, "NCHW16C conv %lld->%lld k%lld s%lld into %s %lldx%lld s%lld cip %d", (long long)cc.c,
             (long long)cc.m, (long long)cc.k[0], (long long)cc.s[0], type == KILN_POOL_MAX ? "max" : "average",
             (long long)k, (long long)k, (long long)s, cip);
    cc.act = KILN_ACT_RELU;
    kiln_layer cl = make_layer(&cc, 3), pl;
    memset(&pl, 0, sizeof pl);
    pl.type = KILN_LAYER_POOLING;
    pl.name = "pool_t";
    pl.nb_inputs = 1;
    pl.nb_outputs = indices ? 2 : 1;
    kiln__pool_params *pp = &pl.p.pool;
    pp->type = type;
    pp->nb_spatial = 2;
    pp->count_include_pad = cip;
    for (int i = 0; i < 2; i++) {
        pp->window[i] = k;
        pp->stride[i] = s;
        pp->dilation[i] = 1;
        pp->pad_begin[i] = pb;
        pp->pad_end[i] = pe;
    }
    int64_t h = (cc.in[0] + cc.pb[0] + cc.pe[0] - cc.k[0]) / cc.s[0] + 1;
    kiln__value c_in[3] = {f32_value((kiln_dims){4, {cc.n, cc.c, cc.in[0], cc.in[1]}}, true),
                           f32_value((kiln_dims){4, {cc.m, cc.c, cc.k[0], cc.k[1]}}, true),
                           f32_value((kiln_dims){1, {cc.m}}, true)};
    kiln__value t = f32_value((kiln_dims){4, {cc.n, cc.m, h, h}}, false);
    kiln__value y[2] = {f32_value((kiln_dims){4, {cc.n, cc.m, ho, ho}}, false),
                        f32_value((kiln_dims){4, {cc.n, cc.m, ho, ho}}, false)};
    kiln__value yb = f32_value(y[0].dims, false);
    kiln__cpu_ctx ctx = {.pool = g_pool, .alloc = &g_alloc};
    KT_OK(kiln__cpu_conv(&cl, c_in, &t, &ctx));
    bool chosen = kiln__cpu_blocked_edge(&cl, c_in, &t, &pl, &t, y);
    KT_CHECK(chosen == want);
    if (chosen != want) fprintf(stderr, "%s: chosen %d\n", label, chosen);
    if (indices) { /* int64: twice the floats' bytes */
        free(y[1].data);
        y[1].dtype = KILN_INT64;
        y[1].bytes *= 2;
        y[1].data = calloc(1, y[1].bytes);
    }
    KT_OK(kiln__cpu_pooling(&pl, &t, y, &ctx));
    kiln__value tb = blocked_copy(&t, chosen), want_t = blocked_copy(&t, chosen);
    memset(tb.data, 0xff, tb.bytes); /* NaNs: every output must be written */
    memset(yb.data, 0xff, yb.bytes);
    KT_OK(kiln__cpu_conv(&cl, c_in, &tb, &ctx));
    kt_close(label, tb.data, want_t.data, kiln__dims_volume(&t.dims), 1e-5f, 1e-5f);
    if (!indices) {
        KT_OK(kiln__cpu_pooling(&pl, &tb, &yb, &ctx));
        kt_close(label, yb.data, y[0].data, kiln__dims_volume(&y[0].dims), 1e-5f, 1e-5f);
    }
    if (chosen) { /* NaNs propagate as in NCHW */
        for (int i = 0; i < 8; i++) ((float *)t.data)[kt_randi(0, kiln__dims_volume(&t.dims) - 1)] = NAN;
        KT_OK(kiln__cpu_pooling(&pl, &t, y, &ctx));
        free(tb.data);
        tb = blocked_copy(&t, true);
        KT_OK(kiln__cpu_pooling(&pl, &tb, &yb, &ctx));
        kt_close(label, yb.data, y[0].data, kiln__dims_volume(&y[0].dims), 1e-5f, 1e-5f);
    }
    kiln__value *all[] = {&c_in[0], &c_in[1], &c_in[2], &t, &y[0], &y[1], &yb, &tb, &want_t};
    for (size_t i = 0; i < KILN__ARRAY_LEN(all); i++) free(all[i]->data);
}

static void test_blocked_edges(void) {
    bool avx512 = kiln__cpu_simd() == KILN__SIMD_AVX512;
    blocked_chain(1, 96, 576, 96, 14, 1, KILN_ACT_CLIP, false, avx512, avx512);
    blocked_chain(2, 24, 144, 32, 56, 2, KILN_ACT_RELU, false, avx512, avx512); /* 144 maps: a half panel; 32
                                                                                   projected maps from blocks */
    blocked_chain(1, 32, 192, 32, 28, 1, KILN_ACT_CLIP, false, avx512, avx512);
    blocked_chain(1, 32, 192, 96, 28, 1, KILN_ACT_CLIP, false, avx512, false); /* 96 projected maps: rows win */
    blocked_chain(1, 160, 960, 160, 7, 1, -1, false, avx512, avx512);
    blocked_chain(1, 32, 192, 64, 28, 2, KILN_ACT_LEAKY_RELU, false, avx512, avx512);
    blocked_chain(1, 16, 32, 32, 2, 1, KILN_ACT_SIGMOID, false, avx512, avx512); /* 4 positions: no row blocks */
    blocked_chain(1, 24, 144, 24, 56, 1, KILN_ACT_RELU, false, false, false); /* the depthwise plane is too large */
    blocked_chain(1, 96, 576, 96, 14, 1, KILN_ACT_RELU, true, false, avx512);  /* the expansion adds a residual */
    blocked_chain(1, 96, 40, 96, 14, 1, KILN_ACT_RELU, false, false, false);   /* maps not a multiple of 16 */
    blocked_chain(1, 96, 80, 96, 14, 1, KILN_ACT_RELU, false, false, avx512);  /* 80 maps: 96 lanes waste too many;
                                                                                  80 channels read in blocks */
    blocked_chain(1, 96, 576, 24, 14, 1, KILN_ACT_RELU, false, avx512, false); /* 24 projected maps: 32 lanes */
    blocked_pointwise_chain(1, 64, 512, 256, 64, 14, KILN_ACT_RELU, avx512, avx512);
    blocked_pointwise_chain(2, 48, 256, 512, 32, 7, KILN_ACT_SIGMOID, avx512, avx512);
    blocked_pointwise_chain(1, 32, 256, 96, 48, 28, -1, avx512, false); /* 96 channels at 28x28: rows win */
    blocked_pointwise_chain(1, 32, 256, 40, 48, 14, KILN_ACT_CLIP, false, false); /* 40 maps: no blocks */
    blocked_conv_pool(c2d(1, 3, 32, 72, 72, 7, 2, 3, 1, 1), KILN_POOL_MAX, 3, 2, 1, 1, 0, 18, false, avx512);
    blocked_conv_pool(c2d(2, 16, 32, 17, 17, 3, 2, 1, 1, 1), KILN_POOL_AVERAGE, 2, 2, 0, 1, 0, 5, false, avx512);
    blocked_conv_pool(c2d(1, 16, 32, 17, 17, 3, 2, 1, 1, 1), KILN_POOL_AVERAGE, 3, 1, 1, 1, 1, 9, false, avx512);
    blocked_conv_pool(c2d(1, 64, 32, 14, 14, 1, 1, 0, 1, 1), KILN_POOL_MAX, 2, 2, 0, 0, 0, 7, false, avx512);
    blocked_conv_pool(c2d(1, 3, 32, 33, 33, 3, 2, 1, 1, 1), KILN_POOL_MAX, 3, 2, 1, 1, 0, 9, false, false); /* 27
                                                                                           long sums: rows */
    blocked_conv_pool(c2d(1, 32, 32, 28, 28, 3, 1, 1, 1, 1), KILN_POOL_MAX, 2, 2, 0, 0, 0, 14, false, false); /*
                                                                                           Winograd's */
    blocked_conv_pool(c2d(1, 48, 40, 15, 15, 3, 2, 1, 1, 1), KILN_POOL_MAX, 2, 2, 0, 0, 0, 4, false, false); /* 40
                                                                                           maps */
    blocked_conv_pool(c2d(1, 3, 32, 72, 72, 7, 2, 3, 1, 1), KILN_POOL_MAX, 3, 2, 1, 1, 0, 18, true, false); /*
                                                                                           with indices */
    if (!avx512) return;
    conv_case dws[] = {c2d(1, 32, 32, 28, 28, 3, 1, 1, 1, 32), c2d(2, 16, 16, 6, 13, 3, 2, 0, 1, 16),
                       c2d(1, 32, 32, 11, 9, 5, 1, 4, 2, 32), c2d(1, 48, 48, 56, 56, 3, 2, 1, 1, 48),
                       c2d(1, 16, 16, 3, 2, 3, 1, 1, 1, 16),   c2d(1, 16, 16, 28, 29, 5, 1, 3, 2, 16),
                       c2d(2, 32, 32, 23, 19, 5, 2, 4, 2, 32)};
    dws[1].pe[0] = 2;
    dws[2].pe[1] = 1;
    dws[5].pe[0] = 1;
    dws[5].pe[1] = 5;
    dws[6].pe[0] = 1;
    for (size_t i = 0; i < KILN__ARRAY_LEN(dws); i++) {
        blocked_depthwise(dws[i], false, false);
        blocked_depthwise(dws[i], true, false);
        blocked_depthwise(dws[i], false, true);
    }
}

int main(void) {
    ck_init();
    KT_CHECK(kiln__cpu_kernel_for(KILN_LAYER_CONVOLUTION) == kiln__cpu_conv);
    KT_CHECK(kiln__cpu_kernel_for(KILN_LAYER_DECONVOLUTION) == kiln__cpu_deconv);
    test_conv_kernels();
    test_wide_kernels();
    test_implicit_im2col();
    test_packed_weights();
    test_narrow_planes();
    test_direct();
    test_channel_vector();
    test_winograd_small();
    test_inplace_residual();
    test_depthwise_shapes();
    test_depthwise_padded_rows();
    test_blocked_edges();
    test_deconv_kernels();
    test_infer();
    test_oom();
    test_api_and_engine();
    KT_CHECK(g_inplace_runs > 50); /* the residual cases above, over their residual */
    ck_done();
    return kt_summary("test_cpu_conv");
}
