/* Pooling: the CPU kernel against naive reference loops on random inputs (max with indices,
 * average with and without padding in the count, Lp, global, ceil mode, dilation, auto_pad,
 * 1-D/3-D, all float dtypes, serial and threaded), shape inference and its errors, the network
 * API and an end-to-end engine run. */
#include "cpu/gemm.h"
#include "cpu_kernel_test.h"

kiln_status kiln__cpu_pooling(const kiln_layer *, const kiln__value *, kiln__value *, kiln__cpu_ctx *);

typedef struct pool_case {
    int ns, type, global, ceil, cip, p, auto_pad, indices;
    int64_t n, c, in[3], k[3], s[3], d[3], pb[3], pe[3];
} pool_case;

static kiln_layer make_layer(const pool_case *pc) {
    kiln_layer l;
    memset(&l, 0, sizeof l);
    l.type = KILN_LAYER_POOLING;
    l.name = "pool_t";
    l.nb_inputs = 1;
    l.nb_outputs = pc->indices ? 2 : 1;
    kiln__pool_params *p = &l.p.pool;
    p->type = pc->type;
    p->nb_spatial = pc->ns;
    p->global = pc->global;
    p->ceil_mode = pc->ceil;
    p->count_include_pad = pc->cip;
    p->lp_norm = pc->p;
    p->auto_pad = pc->auto_pad;
    for (int i = 0; i < 3; i++) {
        p->window[i] = pc->k[i];
        p->stride[i] = pc->s[i];
        p->dilation[i] = pc->d[i];
        p->pad_begin[i] = pc->pb[i];
        p->pad_end[i] = pc->pe[i];
    }
    return l;
}

/* Output size and pads of dim i as ONNX and PyTorch define them. */
static void ref_geom(const pool_case *pc, int i, int64_t *out, int64_t *pb, int64_t *pe) {
    int64_t n = pc->in[i], s = pc->s[i], ek = (pc->k[i] - 1) * pc->d[i] + 1;
    if (pc->global) {
        *out = 1, *pb = *pe = 0;
    } else if (pc->auto_pad == KILN__PAD_SAME_UPPER || pc->auto_pad == KILN__PAD_SAME_LOWER) {
        *out = (n + s - 1) / s;
        int64_t total = (*out - 1) * s + ek - n;
        if (total < 0) total = 0;
        *pb = pc->auto_pad == KILN__PAD_SAME_UPPER ? total / 2 : total - total / 2;
        *pe = total - *pb;
    } else {
        *pb = pc->auto_pad == KILN__PAD_VALID ? 0 : pc->pb[i];
        *pe = pc->auto_pad == KILN__PAD_VALID ? 0 : pc->pe[i];
        double q = (double)(n + *pb + *pe - ek) / (double)s;
        *out = (int64_t)(pc->ceil ? ceil(q) : floor(q)) + 1;
        if (pc->ceil && (*out - 1) * s >= n + *pb) (*out)--;
    }
}

static void reference(const pool_case *pc, const int64_t *out, const int64_t *pb, const int64_t *pe, const double *x,
                      double *y, int64_t *idx) {
    int64_t in3[3] = {1, 1, 1}, o3[3] = {1, 1, 1}, k3[3] = {1, 1, 1}, s3[3] = {1, 1, 1}, d3[3] = {1, 1, 1},
            b3[3] = {0, 0, 0}, e3[3] = {0, 0, 0};
    int off = 3 - pc->ns;
    for (int i = 0; i < pc->ns; i++) {
        in3[off + i] = pc->in[i];
        o3[off + i] = out[i];
        k3[off + i] = pc->global ? pc->in[i] : pc->k[i];
        s3[off + i] = pc->global ? 1 : pc->s[i];
        d3[off + i] = pc->global ? 1 : pc->d[i];
        b3[off + i] = pb[i];
        e3[off + i] = pe[i];
    }
    int64_t ip = in3[0] * in3[1] * in3[2], o = 0;
    for (int64_t plane = 0; plane < pc->n * pc->c; plane++)
        for (int64_t a0 = 0; a0 < o3[0]; a0++)
            for (int64_t a1 = 0; a1 < o3[1]; a1++)
                for (int64_t a2 = 0; a2 < o3[2]; a2++, o++) {
                    double best = -INFINITY, sum = 0;
                    int64_t bi = -1, cnt = 0, cnt_pad = 0;
                    for (int64_t k0 = 0; k0 < k3[0]; k0++)
                        for (int64_t k1 = 0; k1 < k3[1]; k1++)
                            for (int64_t k2 = 0; k2 < k3[2]; k2++) {
                                int64_t p[3] = {a0 * s3[0] - b3[0] + k0 * d3[0], a1 * s3[1] - b3[1] + k1 * d3[1],
                                                a2 * s3[2] - b3[2] + k2 * d3[2]};
                                bool inside = true, in_pad = true;
                                for (int q = 0; q < 3; q++) {
                                    inside = inside && p[q] >= 0 && p[q] < in3[q];
                                    in_pad = in_pad && p[q] >= -b3[q] && p[q] < in3[q] + e3[q];
                                }
                                cnt_pad += in_pad;
                                if (!inside) continue;
                                int64_t xi = plane * ip + (p[0] * in3[1] + p[1]) * in3[2] + p[2];
                                double v = x[xi];
                                cnt++;
                                if (v > best) best = v, bi = xi;
                                sum += pc->type == KILN_POOL_LP ? pow(fabs(v), pc->p) : v;
                            }
                    if (pc->type == KILN_POOL_MAX) y[o] = best;
                    if (pc->type == KILN_POOL_AVERAGE) y[o] = sum / (double)(pc->cip ? cnt_pad : cnt);
                    if (pc->type == KILN_POOL_LP) y[o] = pow(sum, 1.0 / pc->p);
                    idx[o] = bi;
                }
}

static void run_case(const char *what, const pool_case *pc, kiln_dtype t, kiln__pool *pool) {
    char label[160];
    snprintf(label, sizeof label, "%s [%s, %s]", what, kiln_dtype_name(t), pool ? "threads" : "serial");
    kiln_dims xd = {pc->ns + 2, {pc->n, pc->c}}, yd = xd;
    int64_t out[3], pb[3], pe[3];
    for (int i = 0; i < pc->ns; i++) {
        ref_geom(pc, i, &out[i], &pb[i], &pe[i]);
        xd.d[2 + i] = pc->in[i];
        yd.d[2 + i] = out[i];
    }
    kiln_layer l = make_layer(pc);
    if (pc->global && pc->ns == 3 && pool) l.p.pool.nb_spatial = 0; /* global: spatial dims from the rank */
    int64_t nx = kiln__dims_volume(&xd), ny = kiln__dims_volume(&yd);
    kiln__value in[1] = {{.dtype = t, .dims = xd, .bytes = (size_t)nx * ck_esize(t)}}, o[2];
    memset(o, 0, sizeof o);
    KT_OK(kiln__layer_ops_for(KILN_LAYER_POOLING)->infer(&l, in, o));
    if (!kiln__dims_equal(&o[0].dims, &yd) || o[0].dtype != t || (pc->indices && o[1].dtype != KILN_INT64)) {
        char got[128], want[128];
        kiln__dims_format(&o[0].dims, got, sizeof got);
        kiln__dims_format(&yd, want, sizeof want);
        KT_CHECK(!"inferred dims");
        fprintf(stderr, "%s: inferred %s, expected %s\n", label, got, want);
        return;
    }
    in[0].data = malloc(in[0].bytes);
    double *rx = malloc(sizeof(double) * (size_t)nx), *ry = malloc(sizeof(double) * (size_t)ny);
    int64_t *ridx = malloc(sizeof(int64_t) * (size_t)ny);
    for (int64_t i = 0; i < nx; i++) {
        ck_store(in[0].data, t, i, kt_randf(-2, 2));
        rx[i] = ck_load(in[0].data, t, i);
    }
    o[0].bytes = (size_t)ny * ck_esize(t);
    o[0].data = malloc(o[0].bytes);
    if (pc->indices) {
        o[1].bytes = (size_t)ny * 8;
        o[1].data = malloc(o[1].bytes);
    }
    kiln__cpu_ctx ctx = {.pool = pool, .alloc = &g_alloc};
    KT_OK(kiln__cpu_kernel_for(KILN_LAYER_POOLING)(&l, in, o, &ctx));
    reference(pc, out, pb, pe, rx, ry, ridx);
    float *got = malloc(sizeof(float) * (size_t)ny), *want = malloc(sizeof(float) * (size_t)ny);
    for (int64_t i = 0; i < ny; i++) {
        got[i] = (float)ck_load(o[0].data, t, i);
        want[i] = (float)ry[i];
    }
    float tol = t == KILN_FLOAT64 ? 1e-6f : t == KILN_FLOAT32 ? 1e-5f : t == KILN_FLOAT16 ? 2e-3f : 1e-2f;
    kt_close(label, got, want, ny, tol, tol);
    if (pc->indices) {
        int64_t bad = 0;
        for (int64_t i = 0; i < ny; i++) bad += ((int64_t *)o[1].data)[i] != ridx[i];
        KT_CHECK(bad == 0);
        if (bad) fprintf(stderr, "%s: %lld wrong indices\n", label, (long long)bad);
    }
    free(got);
    free(want);
    free(in[0].data);
    free(o[0].data);
    free(o[1].data);
    free(rx);
    free(ry);
    free(ridx);
}

static void run_all(const char *what, const pool_case *pc) {
    static const kiln_dtype types[] = {KILN_FLOAT32, KILN_FLOAT16, KILN_BFLOAT16, KILN_FLOAT64};
    for (size_t i = 0; i < KILN__ARRAY_LEN(types); i++) run_case(what, pc, types[i], NULL);
    run_case(what, pc, KILN_FLOAT32, g_pool);
}

static pool_case p2d(int type, int64_t n, int64_t c, int64_t h, int64_t w, int64_t k, int64_t s, int64_t pad) {
    pool_case pc = {.ns = 2, .type = type, .n = n, .c = c, .in = {h, w}, .k = {k, k}, .s = {s, s}, .d = {1, 1},
                    .pb = {pad, pad}, .pe = {pad, pad}, .p = 2};
    return pc;
}

static void test_kernels(void) {
    pool_case pc = p2d(KILN_POOL_MAX, 2, 3, 9, 8, 3, 2, 1);
    run_all("max 3x3 s2 p1", &pc);
    pc.indices = 1;
    run_all("max with indices", &pc);
    pc.ceil = 1;
    run_all("max ceil mode indices", &pc);
    pc = p2d(KILN_POOL_AVERAGE, 2, 3, 7, 10, 3, 2, 1);
    run_all("average exclude pad", &pc);
    pc.cip = 1;
    run_all("average include pad", &pc);
    pc.ceil = 1;
    run_all("average include pad ceil", &pc);
    pc.cip = 0;
    pc.pe[1] = 0;
    run_all("average ceil asymmetric", &pc);
    for (int p = 1; p <= 3; p++) {
        pc = p2d(KILN_POOL_LP, 1, 4, 6, 7, 2, 2, 0);
        pc.p = p;
        pc.pe[0] = 1;
        run_all("lp", &pc);
    }
    pc = p2d(KILN_POOL_MAX, 1, 2, 11, 10, 3, 1, 2);
    pc.d[0] = pc.d[1] = 2;
    pc.indices = 1;
    run_all("max dilation 2", &pc);
    pc.type = KILN_POOL_AVERAGE;
    pc.indices = 0;
    pc.cip = 1;
    run_all("average dilation 2", &pc);
    for (int ap = KILN__PAD_SAME_UPPER; ap <= KILN__PAD_VALID; ap++) {
        pc = p2d(KILN_POOL_AVERAGE, 2, 2, 8, 7, 4, 3, 0);
        pc.auto_pad = ap;
        run_all("average auto_pad", &pc);
        pc.type = KILN_POOL_MAX;
        pc.indices = 1;
        run_all("max auto_pad", &pc);
    }
    pool_case p1 = {.ns = 1, .type = KILN_POOL_MAX, .n = 2, .c = 3, .in = {13}, .k = {4}, .s = {3}, .d = {1},
                    .pb = {2}, .pe = {1}, .ceil = 1, .indices = 1};
    run_all("max 1-D", &p1);
    pool_case p3 = {.ns = 3, .type = KILN_POOL_AVERAGE, .n = 1, .c = 3, .in = {5, 6, 7}, .k = {2, 3, 2},
                    .s = {2, 2, 1}, .d = {1, 1, 2}, .pb = {1, 0, 1}, .pe = {0, 1, 1}};
    run_all("average 3-D", &p3);
    for (int type = KILN_POOL_MAX; type <= KILN_POOL_LP; type++)
        for (int ns = 1; ns <= 3; ns++) {
            pool_case g = {.ns = ns, .type = type, .global = 1, .n = 2, .c = 3, .in = {5, 4, 3}, .p = 2,
                           .indices = type == KILN_POOL_MAX};
            run_all("global", &g);
        }
    for (int it = 0; it < 40; it++) {
        pool_case r = {.ns = (int)kt_randi(1, 3), .type = (int)kt_randi(0, 2), .n = kt_randi(1, 3),
                       .c = kt_randi(1, 4), .ceil = (int)kt_randi(0, 1), .cip = (int)kt_randi(0, 1),
                       .p = (int)kt_randi(1, 3), .auto_pad = (int)kt_randi(0, 3)};
        r.indices = r.type == KILN_POOL_MAX && kt_randi(0, 1);
        for (int i = 0; i < r.ns; i++) {
            r.k[i] = kt_randi(1, 4);
            r.s[i] = kt_randi(1, 3);
            r.d[i] = kt_randi(1, 2);
            r.pb[i] = kt_randi(0, r.k[i] - 1);
            r.pe[i] = kt_randi(0, r.k[i] - 1);
            r.in[i] = (r.k[i] - 1) * r.d[i] + kt_randi(1, 7);
        }
        run_case("random pooling", &r, KILN_FLOAT32, it % 2 ? g_pool : NULL);
    }
    /* The float32 fast path's special cases (2x2 and 3x3 stride 2 max, global without indices)
     * and a wide plane with a long interior, with odd and even sizes. */
    pc = p2d(KILN_POOL_MAX, 1, 3, 10, 9, 2, 2, 0);
    run_all("max 2x2 s2", &pc);
    pc = p2d(KILN_POOL_MAX, 1, 2, 57, 70, 3, 2, 1);
    run_all("max 3x3 s2 p1 wide", &pc);
    pc.pe[1] = 0;
    pc.ceil = 1;
    run_all("max 3x3 s2 ceil asymmetric", &pc);
    pc = p2d(KILN_POOL_AVERAGE, 1, 2, 33, 64, 3, 1, 1);
    pc.cip = 1;
    run_all("average 3x3 s1 include pad wide", &pc);
    pc = p2d(KILN_POOL_AVERAGE, 1, 2, 8, 9, 5, 1, 2);
    run_all("average 5x5 window larger than half the plane", &pc);
    for (int type = KILN_POOL_MAX; type <= KILN_POOL_AVERAGE; type++) {
        pool_case g = {.ns = 2, .type = type, .global = 1, .n = 2, .c = 5, .in = {7, 9}};
        run_all("global without indices", &g);
    }
}

/* Max pooling propagates NaN (fast path: 3x3 stride 2, a NaN inside and at a border). */
static void test_max_nan(void) {
    pool_case pc = p2d(KILN_POOL_MAX, 1, 1, 6, 6, 3, 2, 1);
    float x[36];
    for (int i = 0; i < 36; i++) x[i] = (float)i;
    x[14] = NAN; /* row 2, col 2: only window (1, 1) sees it */
    x[5] = NAN;  /* row 0, col 5: window (0, 2), at the border */
    float y[9];
    kiln__value in[1] = {{KILN_FLOAT32, {4, {1, 1, 6, 6}}, x, sizeof x, KILN__LAYOUT_PLAIN}};
    kiln__value out[1] = {{KILN_FLOAT32, {4, {1, 1, 3, 3}}, y, sizeof y, KILN__LAYOUT_PLAIN}};
    kiln_layer l = make_layer(&pc);
    kiln__cpu_ctx ctx = {.pool = NULL, .alloc = &g_alloc};
    KT_OK(kiln__cpu_pooling(&l, in, out, &ctx));
    /* Output (oy, ox) covers rows 2oy-1..2oy+1 and columns 2ox-1..2ox+1. */
    KT_CHECK(isnan(y[4]) && isnan(y[2]));
    KT_CHECK(y[0] == 7 && y[1] == 9 && y[3] == 19 && y[5] == 23 && y[6] == 31 && y[7] == 33 && y[8] == 35);
    pool_case g = {.ns = 2, .type = KILN_POOL_MAX, .global = 1, .n = 1, .c = 1, .in = {6, 6}};
    l = make_layer(&g);
    out[0].dims = (kiln_dims){4, {1, 1, 1, 1}};
    KT_OK(kiln__cpu_pooling(&l, in, out, &ctx));
    KT_CHECK(isnan(y[0]));
}

/* Global pooling over empty planes, with no data behind them (the fuzzer found [1, 3, 0, 5]: the
 * float32 path offset the NULL pointer, which clang's UBSan reports): the average of nothing is
 * NaN, the max -inf. */
static void test_global_empty(void) {
    for (int type = KILN_POOL_MAX; type <= KILN_POOL_AVERAGE; type++) {
        pool_case g = {.ns = 2, .type = type, .global = 1, .n = 1, .c = 2, .in = {0, 5}};
        float y[2] = {1, 1};
        kiln__value in[1] = {{KILN_FLOAT32, {4, {1, 2, 0, 5}}, NULL, 0, KILN__LAYOUT_PLAIN}};
        kiln__value out[1] = {{KILN_FLOAT32, {4, {1, 2, 1, 1}}, y, sizeof y, KILN__LAYOUT_PLAIN}};
        kiln_layer l = make_layer(&g);
        kiln__cpu_ctx ctx = {.pool = NULL, .alloc = &g_alloc};
        KT_OK(kiln__cpu_pooling(&l, in, out, &ctx));
        for (int i = 0; i < 2; i++) KT_CHECK(type == KILN_POOL_MAX ? y[i] == -INFINITY : isnan(y[i]));
    }
}

/* 3x3 stride-2 max over wide rows (the AVX-512 path's 16-output blocks and their tails) with
 * NaNs anywhere, at every SIMD level, against the window's max written out here. */
static void test_max_wide(void) {
    enum { H = 9, W = 75, OH = 5, OW = 38 };
    pool_case pc = p2d(KILN_POOL_MAX, 1, 2, H, W, 3, 2, 1);
    static float x[2 * H * W], y[2 * OH * OW];
    for (int i = 0; i < 2 * H * W; i++) x[i] = kt_randf(-1, 1);
    for (int i = 0; i < 12; i++) x[kt_randi(0, 2 * H * W - 1)] = NAN;
    for (int simd = KILN__SIMD_AVX512; simd >= KILN__SIMD_NONE; simd--) {
        kiln__cpu_set_simd(simd);
        kiln__value in[1] = {{KILN_FLOAT32, {4, {1, 2, H, W}}, x, sizeof x, KILN__LAYOUT_PLAIN}};
        kiln__value out[1] = {{KILN_FLOAT32, {4, {1, 2, OH, OW}}, y, sizeof y, KILN__LAYOUT_PLAIN}};
        kiln_layer l = make_layer(&pc);
        kiln__cpu_ctx ctx = {.pool = NULL, .alloc = &g_alloc};
        KT_OK(kiln__cpu_pooling(&l, in, out, &ctx));
        int bad = 0;
        for (int c = 0; c < 2; c++)
            for (int oy = 0; oy < OH; oy++)
                for (int ox = 0; ox < OW; ox++) {
                    float want = -INFINITY;
                    bool nan = false;
                    for (int iy = 2 * oy - 1; iy <= 2 * oy + 1; iy++)
                        for (int ix = 2 * ox - 1; ix <= 2 * ox + 1; ix++) {
                            if (iy < 0 || iy >= H || ix < 0 || ix >= W) continue;
                            float v = x[(c * H + iy) * W + ix];
                            nan = nan || isnan(v);
                            want = v > want ? v : want;
                        }
                    float got = y[(c * OH + oy) * OW + ox];
                    bad += nan ? !isnan(got) : got != want;
                }
        KT_CHECK(bad == 0);
    }
    kiln__cpu_set_simd(KILN__SIMD_AVX512);
}

/* Known values, independent of the reference loops. */
static void test_known_values(void) {
    pool_case pc = {.ns = 1, .type = KILN_POOL_AVERAGE, .n = 1, .c = 1, .in = {4}, .k = {3}, .s = {1}, .d = {1},
                    .pb = {1}, .pe = {1}};
    float x[4] = {1, 2, 3, 4}, y[4];
    kiln__value in[1] = {{KILN_FLOAT32, {3, {1, 1, 4}}, x, sizeof x, KILN__LAYOUT_PLAIN}};
    kiln__value out[1] = {{KILN_FLOAT32, {3, {1, 1, 4}}, y, sizeof y, KILN__LAYOUT_PLAIN}};
    kiln_layer l = make_layer(&pc);
    kiln__cpu_ctx ctx = {.pool = NULL, .alloc = &g_alloc};
    KT_OK(kiln__cpu_pooling(&l, in, out, &ctx));
    float want_ex[4] = {1.5f, 2, 3, 3.5f}, want_in[4] = {1, 2, 3, 7.0f / 3};
    kt_close("average count_include_pad=0", y, want_ex, 4, 1e-6f, 1e-6f);
    l.p.pool.count_include_pad = 1;
    KT_OK(kiln__cpu_pooling(&l, in, out, &ctx));
    kt_close("average count_include_pad=1", y, want_in, 4, 1e-6f, 1e-6f);
    /* ceil_mode: a window that would start in the right padding is dropped (6 -> 3, not 4). */
    pool_case cm = {.ns = 1, .type = KILN_POOL_MAX, .n = 1, .c = 1, .in = {6}, .k = {1}, .s = {2}, .d = {1},
                    .pe = {1}, .ceil = 1};
    kiln_layer lc = make_layer(&cm);
    kiln__value ci[1] = {{.dtype = KILN_FLOAT32, .dims = {3, {1, 1, 6}}}}, co[1];
    KT_OK(kiln__layer_ops_for(KILN_LAYER_POOLING)->infer(&lc, ci, co));
    KT_CHECK(co[0].dims.d[2] == 3);
    ci[0].dims.d[2] = 5;
    cm.k[0] = 2;
    lc = make_layer(&cm);
    KT_OK(kiln__layer_ops_for(KILN_LAYER_POOLING)->infer(&lc, ci, co));
    KT_CHECK(co[0].dims.d[2] == 3);
}

static void test_infer_errors(void) {
    pool_case pc = p2d(KILN_POOL_MAX, 1, 3, 8, 8, 3, 2, 1);
    kiln_layer l = make_layer(&pc);
    const kiln__layer_ops *ops = kiln__layer_ops_for(KILN_LAYER_POOLING);
    kiln__value in[1] = {{.dtype = KILN_FLOAT32, .dims = {4, {-1, 3, -1, 8}}}}, o[2];
    KT_OK(ops->infer(&l, in, o));
    KT_CHECK(o[0].dims.d[0] == -1 && o[0].dims.d[1] == 3 && o[0].dims.d[2] == -1 && o[0].dims.d[3] == 4);
    in[0].dims = (kiln_dims){3, {1, 3, 8}};
    KT_STATUS(ops->infer(&l, in, o), KILN_INVALID_ARGUMENT);
    KT_CHECK(strstr(kiln_last_error(), "pool_t") != NULL);
    in[0].dims = (kiln_dims){4, {1, 3, 1, 8}};
    l.p.pool.pad_begin[0] = l.p.pool.pad_end[0] = 0;
    KT_STATUS(ops->infer(&l, in, o), KILN_INVALID_ARGUMENT);
    KT_CHECK(strstr(kiln_last_error(), "pool_t") != NULL);
    in[0].dims = (kiln_dims){4, {1, 3, 8, 8}};
    l.p.pool.stride[1] = 0;
    KT_STATUS(ops->infer(&l, in, o), KILN_INVALID_ARGUMENT);
    l = make_layer(&pc);
    l.p.pool.type = 7;
    KT_STATUS(ops->infer(&l, in, o), KILN_INVALID_ARGUMENT);
    l = make_layer(&pc);
    l.p.pool.type = KILN_POOL_AVERAGE;
    l.nb_outputs = 2;
    KT_STATUS(ops->infer(&l, in, o), KILN_INVALID_ARGUMENT);
    kiln__buf desc;
    kiln__buf_init(&desc, &g_alloc);
    l = make_layer(&pc);
    kiln__layer_ops_for(KILN_LAYER_POOLING)->describe(&l, &desc);
    kiln__buf_append(&desc, "", 1);
    KT_CHECK(desc.data && strstr((char *)desc.data, "type=max window=3x3 stride=2x2"));
    kiln__buf_free(&desc);
    in[0].dtype = KILN_INT32;
    KT_STATUS(ops->infer(&l, in, o), KILN_UNSUPPORTED);
}

static void test_api_and_engine(void) {
    kiln_builder *b;
    kiln_network *net;
    KT_OK(kiln_builder_create(NULL, &b));
    KT_OK(kiln_network_create(b, &net));
    kiln_dims xd = {4, {2, 3, 9, 8}};
    kiln_tensor *x;
    KT_OK(kiln_network_add_input(net, "x", KILN_FLOAT32, &xd, &x));
    kiln_pooling_desc d;
    memset(&d, 0, sizeof d);
    d.struct_size = sizeof d;
    d.type = KILN_POOL_MAX;
    d.window[0] = d.window[1] = 3;
    d.stride[0] = d.stride[1] = 2;
    d.padding_begin[0] = d.padding_begin[1] = d.padding_end[0] = d.padding_end[1] = 1;
    kiln_layer *pl, *gl;
    KT_OK(kiln_network_add_pooling(net, x, &d, &pl));
    kiln_dims od;
    KT_OK(kiln_tensor_shape(kiln_layer_output(pl, 0), &od));
    KT_CHECK(od.nb_dims == 4 && od.d[2] == 5 && od.d[3] == 4);
    KT_CHECK(kiln_layer_num_outputs(pl) == 1);
    kiln_pooling_desc gd = d;
    gd.type = KILN_POOL_AVERAGE;
    gd.global = 1;
    KT_OK(kiln_network_add_pooling(net, kiln_layer_output(pl, 0), &gd, &gl));
    KT_OK(kiln_tensor_shape(kiln_layer_output(gl, 0), &od));
    KT_CHECK(od.d[0] == 2 && od.d[1] == 3 && od.d[2] == 1 && od.d[3] == 1);
    d.nb_spatial_dims = 4;
    KT_STATUS(kiln_network_add_pooling(net, x, &d, NULL), KILN_INVALID_ARGUMENT);
    d.nb_spatial_dims = 0;
    d.window[0] = 20;
    KT_STATUS(kiln_network_add_pooling(net, x, &d, NULL), KILN_INVALID_ARGUMENT);
    KT_CHECK(kiln_network_num_layers(net) == 2);
    KT_OK(kiln_network_mark_output(net, kiln_layer_output(gl, 0)));

    kiln_builder_config *cfg;
    kiln_engine *eng = NULL;
    kiln_context *ctx = NULL;
    KT_OK(kiln_builder_config_create(b, &cfg));
    KT_OK(kiln_builder_build_engine(b, net, cfg, &eng));
    if (eng) KT_OK(kiln_engine_create_context(eng, &ctx));
    if (ctx) {
        float xin[2 * 3 * 9 * 8];
        kt_fill(xin, 432, -1, 1);
        KT_OK(kiln_context_set_tensor_address(ctx, "x", xin, sizeof xin));
        KT_OK(kiln_context_execute(ctx));
        void *yp = NULL;
        KT_OK(kiln_context_get_tensor_address(ctx, kiln_tensor_name(kiln_layer_output(gl, 0)), &yp));
        pool_case pc = p2d(KILN_POOL_MAX, 2, 3, 9, 8, 3, 2, 1);
        int64_t out[2], pb[2], pe[2], idx[2 * 3 * 5 * 4];
        double rx[432], ry[2 * 3 * 5 * 4];
        for (int i = 0; i < 2; i++) ref_geom(&pc, i, &out[i], &pb[i], &pe[i]);
        for (int i = 0; i < 432; i++) rx[i] = xin[i];
        reference(&pc, out, pb, pe, rx, ry, idx);
        float want[6];
        for (int pl_i = 0; pl_i < 6; pl_i++) {
            double s = 0;
            for (int i = 0; i < 20; i++) s += ry[pl_i * 20 + i];
            want[pl_i] = (float)(s / 20);
        }
        if (yp) kt_close("engine max -> global average", yp, want, 6, 1e-5f, 1e-5f);
    }
    kiln_context_destroy(ctx);
    kiln_engine_destroy(eng);
    kiln_builder_config_destroy(cfg);
    kiln_network_destroy(net);
    kiln_builder_destroy(b);
}

int main(void) {
    ck_init();
    KT_CHECK(kiln__cpu_kernel_for(KILN_LAYER_POOLING) == kiln__cpu_pooling);
    test_kernels();
    test_known_values();
    test_max_nan();
    test_global_empty();
    test_max_wide();
    test_infer_errors();
    test_api_and_engine();
    ck_done();
    return kt_summary("test_cpu_pooling");
}
