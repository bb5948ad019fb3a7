/* Winograd F(4x4, 3x3) and F(2x2, 3x3) convolutions: random shapes (channels, maps, planes not
 * multiples of the tile, asymmetric pads, batches, bias / residual / activations) against a double
 * reference, serial and threaded, AVX2 and AVX-512 panels, with the weight transform cached in a
 * layer slot (reused, and replaced on a shape change or over another kernel's block) or computed
 * per call; and which geometries each takes. */
#include "cpu/conv_winograd.h"
#include "cpu/gemm.h"
#include "cpu_kernel_test.h"

/* A convolution whose weights come from a constant, so that its transform may be cached. */
static kiln_layer g_weights = {.type = KILN_LAYER_CONSTANT, .name = "w"};
static kiln_tensor g_tx = {.name = "x"}, g_tw = {.name = "w", .producer = &g_weights}, *g_tens[2] = {&g_tx, &g_tw};
static kiln_layer g_const_layer = {.type = KILN_LAYER_CONVOLUTION, .name = "conv", .nb_inputs = 2, .inputs = g_tens};

static kiln__conv_geom geom(int64_t n, int64_t c, int64_t m, int64_t h, int64_t w, int64_t pt, int64_t pl,
                            int64_t pbot, int64_t pr) {
    kiln__conv_geom g = {.n = n, .c = c, .m = m, .groups = 1, .cg = c, .mg = m, .kvol = 9};
    int64_t in[3] = {1, h, w}, pb[3] = {0, pt, pl}, pe[3] = {0, pbot, pr};
    for (int i = 0; i < 3; i++) {
        g.in[i] = in[i];
        g.k[i] = i ? 3 : 1;
        g.s[i] = g.d[i] = 1;
        g.pb[i] = pb[i];
        g.out[i] = in[i] + pb[i] + pe[i] - (g.k[i] - 1);
    }
    g.in_plane = h * w;
    g.out_plane = g.out[1] * g.out[2];
    return g;
}

static double ref_act(const kiln__act *a, double v) {
    switch (a->kind) {
    case KILN_ACT_RELU: return v > 0 ? v : 0;
    case KILN_ACT_CLIP: return v < a->alpha ? a->alpha : v > a->beta ? a->beta : v;
    case KILN_ACT_SIGMOID: return 1 / (1 + exp(-v));
    default: return v;
    }
}

/* The convolution in double, straight from its definition. */
static void reference(const kiln__conv_geom *g, const float *x, const float *w, const float *b, const float *r,
                      const kiln__act *act, float *y) {
    int64_t oh = g->out[1], ow = g->out[2], h = g->in[1], wd = g->in[2];
    for (int64_t n = 0; n < g->n; n++)
        for (int64_t m = 0; m < g->m; m++)
            for (int64_t oy = 0; oy < oh; oy++)
                for (int64_t ox = 0; ox < ow; ox++) {
                    double acc = b ? b[m] : 0;
                    for (int64_t c = 0; c < g->c; c++)
                        for (int64_t ky = 0; ky < 3; ky++)
                            for (int64_t kx = 0; kx < 3; kx++) {
                                int64_t iy = oy * g->s[1] - g->pb[1] + ky, ix = ox * g->s[2] - g->pb[2] + kx;
                                if (iy < 0 || iy >= h || ix < 0 || ix >= wd) continue;
                                acc += (double)w[(m * g->c + c) * 9 + ky * 3 + kx] *
                                       (double)x[((n * g->c + c) * h + iy) * wd + ix];
                            }
                    int64_t o = ((n * g->m + m) * oh + oy) * ow + ox;
                    if (r) acc += r[o];
                    y[o] = (float)ref_act(act, acc);
                }
}

typedef kiln_status (*wino_fn)(const kiln__conv_geom *g, const float *x, const float *w, const void *w_src,
                               const float *bias, const float *res, const kiln__act *act, float *y,
                               kiln__cpu_ctx *ctx, const kiln_layer *layer);

/* One random case: runs conv (F(4x4) or F(2x2), its block's magic, 0 for either F(4x4) packing;
 * twice with a slot) and compares with the reference. layer: a layer whose weights come from a
 * constant (so they may be cached), or NULL. */
static void run_conv(wino_fn conv, uint32_t magic, const char *what, const kiln__conv_geom *g, bool bias, bool res,
                     const kiln__act *act, kiln__pool *pool, void **slot, const kiln_layer *layer) {
    int64_t nx = g->n * g->c * g->in_plane, nw = g->m * g->c * 9, ny = g->n * g->m * g->out_plane;
    float *x = malloc(sizeof(float) * (size_t)nx), *w = malloc(sizeof(float) * (size_t)nw);
    float *b = bias ? malloc(sizeof(float) * (size_t)g->m) : NULL, *r = res ? malloc(sizeof(float) * (size_t)ny) : NULL;
    float *y = malloc(sizeof(float) * (size_t)ny), *want = malloc(sizeof(float) * (size_t)ny);
    kt_fill(x, nx, -1, 1);
    kt_fill(w, nw, -1, 1);
    if (b) kt_fill(b, g->m, -1, 1);
    if (r) kt_fill(r, ny, -1, 1);
    reference(g, x, w, b, r, act, want);
    kiln__cpu_ctx ctx = {.pool = pool, .alloc = &g_alloc, .cache = slot};
    char label[200];
    snprintf(label, sizeof label, "%s n%lld c%lld m%lld %lldx%lld pads %lld,%lld act %d %s %s simd %d", what,
             (long long)g->n, (long long)g->c, (long long)g->m, (long long)g->in[1], (long long)g->in[2],
             (long long)g->pb[1], (long long)g->pb[2], act->kind, pool ? "threads" : "serial",
             slot ? "cached" : "uncached", kiln__cpu_simd());
    float atol = 4e-5f * sqrtf((float)(g->c * 9)); /* measured worst about 1e-5 * sqrt(9c) */
    for (int run = 0; run < (slot ? 2 : 1); run++) {
        memset(y, 0xff, sizeof(float) * (size_t)ny); /* NaNs: every output must be written */
        KT_OK(conv(g, x, w, w, b, r, act, y, &ctx, layer));
        kt_close(label, y, want, ny, 1e-4f, atol);
        uint32_t got = slot && *slot ? *(const uint32_t *)*slot : 0;
        if (slot && layer)
            KT_CHECK(magic ? got == magic : got == KILN__WINOGRAD_MAGIC || got == KILN__WINOGRAD_CV_MAGIC);
        if (slot && !layer) KT_CHECK(!*slot); /* weights not known constant: nothing kept */
    }
    free(x);
    free(w);
    free(b);
    free(r);
    free(y);
    free(want);
}

static void run_case(const char *what, const kiln__conv_geom *g, bool bias, bool res, const kiln__act *act,
                     kiln__pool *pool, void **slot, const kiln_layer *layer) {
    run_conv(kiln__winograd_conv, 0, what, g, bias, res, act, pool, slot, layer);
}

static void run_f2(const char *what, const kiln__conv_geom *g, bool bias, bool res, const kiln__act *act,
                   kiln__pool *pool, void **slot, const kiln_layer *layer) {
    run_conv(kiln__winograd_f2_conv, KILN__WINOGRAD_F2_MAGIC, what, g, bias, res, act, pool, slot, layer);
}

static kiln__conv_geom random_geom(int64_t max_c, int64_t max_hw) {
    for (;;) {
        int64_t pt = kt_randi(0, 2), pl = kt_randi(0, 2), pbot = kt_randi(0, 2), pr = kt_randi(0, 2);
        int64_t h = kt_randi(1, max_hw), w = kt_randi(1, max_hw);
        if (h + pt + pbot < 3 || w + pl + pr < 3) continue;
        return geom(kt_randi(1, 2), kt_randi(1, max_c), kt_randi(1, max_c), h, w, pt, pl, pbot, pr);
    }
}

static void test_random(void) {
    static const int kinds[] = {-1, KILN_ACT_RELU, KILN_ACT_CLIP, KILN_ACT_SIGMOID};
    static const int levels[] = {KILN__SIMD_AVX512, KILN__SIMD_AVX2};
    for (int lv = 0; lv < 2; lv++) {
        kiln__cpu_set_simd(levels[lv]);
        if (kiln__cpu_simd() == KILN__SIMD_NONE) break;
        for (int i = 0; i < 40; i++) {
            kiln__conv_geom g = random_geom(i < 30 ? 24 : 70, i < 30 ? 40 : 20);
            kiln__act act = {kinds[kt_randi(0, 3)], -0.5f, 0.75f};
            void *slot = NULL;
            int mode = (int)kt_randi(0, 2); /* 0: no slot, 1: slot and constant weights, 2: slot only */
            run_case("random", &g, kt_randi(0, 1), kt_randi(0, 1), &act, kt_randi(0, 1) ? g_pool : NULL,
                     mode ? &slot : NULL, mode == 1 ? &g_const_layer : NULL);
            if (mode == 1) { /* another shape replaces the slot's block */
                kiln__conv_geom g2;
                do /* equal dims could meet the freed weights' address: a hit, as for one engine layer */
                    g2 = random_geom(24, 24);
                while (g2.c == g.c && g2.m == g.m);
                run_case("reshaped", &g2, true, false, &act, g_pool, &slot, &g_const_layer);
            }
            kiln__free(&g_alloc, slot);
        }
    }
    kiln__cpu_set_simd(KILN__SIMD_AVX512);
}

/* A slot holding the convolution's own block (a pointer first) is replaced, not misread. */
static void test_foreign_slot(void) {
    if (kiln__cpu_simd() == KILN__SIMD_NONE) return;
    void *slot = kiln__malloc_aligned(&g_alloc, 4096, 64);
    KT_CHECK(slot != NULL);
    if (!slot) return;
    memset(slot, 0x5a, 4096);
    *(void **)slot = &g_tw;
    kiln__conv_geom g = geom(1, 20, 36, 13, 11, 1, 1, 1, 1);
    kiln__act act = {KILN_ACT_RELU, 0, 0};
    run_case("foreign slot", &g, true, true, &act, g_pool, &slot, &g_const_layer);
    kiln__free(&g_alloc, slot);
}

static bool applies_to(kiln__conv_geom g) { return kiln__winograd_applies(&g); }
static bool applies_to_f2(kiln__conv_geom g) { return kiln__winograd_f2_applies(&g); }
static bool applies_to_s2(kiln__conv_geom g) { return kiln__winograd_s2_applies(&g); }

static void test_applies(void) {
    kiln__conv_geom g = geom(1, 64, 64, 56, 56, 1, 1, 1, 1);
    if (kiln__cpu_simd() == KILN__SIMD_NONE) {
        KT_CHECK(!kiln__winograd_applies(&g));
        return;
    }
    KT_CHECK(kiln__winograd_applies(&g));
    kiln__conv_geom t = g;
    KT_CHECK(applies_to(geom(4, 512, 512, 7, 7, 1, 1, 1, 1)));
    KT_CHECK(applies_to(geom(1, 256, 256, 14, 14, 1, 1, 1, 1)));
    KT_CHECK(applies_to(geom(1, 16, 16, 28, 28, 1, 1, 1, 1)));
    KT_CHECK(applies_to(geom(1, 32, 48, 9, 30, 2, 0, 0, 2)));
    t.s[2] = 2;
    KT_CHECK(!kiln__winograd_applies(&t));
    t = g;
    t.d[1] = 2;
    KT_CHECK(!kiln__winograd_applies(&t));
    t = g;
    t.groups = 2;
    KT_CHECK(!kiln__winograd_applies(&t));
    t = g;
    t.k[2] = 5;
    KT_CHECK(!kiln__winograd_applies(&t));
    t = g;
    t.in[0] = t.out[0] = 2;
    KT_CHECK(!kiln__winograd_applies(&t));
    KT_CHECK(!applies_to(geom(1, 64, 64, 20, 20, 3, 1, 1, 1))); /* pad > 2 */
    KT_CHECK(!applies_to(geom(1, 8, 64, 20, 20, 1, 1, 1, 1)));  /* few channels */
    KT_CHECK(!applies_to(geom(1, 64, 8, 20, 20, 1, 1, 1, 1)));  /* few maps */
    KT_CHECK(!applies_to(geom(1, 512, 512, 7, 7, 1, 1, 1, 1)));  /* 4 tiles */
    KT_CHECK(!applies_to(geom(2, 512, 512, 7, 7, 1, 1, 1, 1)));  /* 8 tiles */
    KT_CHECK(!applies_to(geom(1, 16, 16, 16, 16, 1, 1, 1, 1)));  /* few channels and tiles */
    kiln__cpu_set_simd(KILN__SIMD_NONE);
    KT_CHECK(!kiln__winograd_applies(&g));
    kiln__cpu_set_simd(KILN__SIMD_AVX512);
}

/* A stride-2 geometry: outputs from the input and pads. */
static kiln__conv_geom geom_s2(int64_t n, int64_t c, int64_t m, int64_t h, int64_t w, int64_t pt, int64_t pl,
                               int64_t pbot, int64_t pr) {
    kiln__conv_geom g = geom(n, c, m, h, w, pt, pl, pbot, pr);
    for (int i = 1; i < 3; i++) {
        g.s[i] = 2;
        g.out[i] = (g.in[i] + pt * (i == 1) + pl * (i == 2) + pbot * (i == 1) + pr * (i == 2) - 3) / 2 + 1;
    }
    g.out_plane = g.out[1] * g.out[2];
    return g;
}

/* The stride-2 decomposition (AVX-512): random planes (odd and even, 1 to 15 tiles across, whole
 * or in blocks of tile rows, the last one shorter, split over threads), pads 0 to 2, batches, bias /
 * residual / activations, maps past the last panel and in runs of 256, cached U replacing and
 * replaced by F(2x2)'s; and what kiln__winograd_s2_applies takes. */
static void test_s2(void) {
    kiln__cpu_set_simd(KILN__SIMD_AVX512);
    if (kiln__cpu_simd() != KILN__SIMD_AVX512) return;
    static const int kinds[] = {-1, KILN_ACT_RELU, KILN_ACT_CLIP, KILN_ACT_SIGMOID};
    for (int i = 0; i < 40; i++) {
        kiln__conv_geom g;
        do
            g = geom_s2(kt_randi(1, 2), kt_randi(1, i < 30 ? 40 : 150), kt_randi(1, i < 30 ? 40 : 150),
                        kt_randi(1, 61), kt_randi(1, 61), kt_randi(0, 2), kt_randi(0, 2), kt_randi(0, 2),
                        kt_randi(0, 2));
        while (g.out[1] < 1 || g.out[2] < 1 || (g.out[2] + 1) / 2 > 15);
        kiln__act act = {kinds[kt_randi(0, 3)], -0.5f, 0.75f};
        void *slot = NULL;
        int mode = (int)kt_randi(0, 2); /* 0: no slot, 1: slot and constant weights, 2: slot only */
        run_conv(kiln__winograd_s2_conv, KILN__WINOGRAD_S2_MAGIC, "s2 random", &g, kt_randi(0, 1), kt_randi(0, 1),
                 &act, kt_randi(0, 1) ? g_pool : NULL, mode ? &slot : NULL, mode == 1 ? &g_const_layer : NULL);
        kiln__free(&g_alloc, slot);
    }
    kiln__act relu = {KILN_ACT_RELU, 0, 0};
    kiln__conv_geom r56 = geom_s2(1, 128, 128, 56, 56, 1, 1, 1, 1), r28 = geom_s2(2, 64, 300, 28, 28, 1, 1, 1, 1);
    void *slot = NULL;
    run_conv(kiln__winograd_s2_conv, KILN__WINOGRAD_S2_MAGIC, "s2 56x56", &r56, true, true, &relu, g_pool, &slot,
             &g_const_layer);
    kiln__free(&g_alloc, slot);
    slot = NULL;
    run_conv(kiln__winograd_s2_conv, KILN__WINOGRAD_S2_MAGIC, "s2 runs", &r28, true, true, &relu, NULL, &slot,
             &g_const_layer);
    kiln__conv_geom r14 = geom(2, 64, 300, 14, 14, 1, 1, 1, 1); /* the same weights' sizes, F(2x2)'s block */
    run_f2("f2 after s2", &r14, true, false, &relu, g_pool, &slot, &g_const_layer);
    run_conv(kiln__winograd_s2_conv, KILN__WINOGRAD_S2_MAGIC, "s2 after f2", &r28, false, true, &relu, g_pool, &slot,
             &g_const_layer);
    kiln__free(&g_alloc, slot);
    KT_CHECK(kiln__winograd_s2_applies(&r56)); /* 196 tiles: blocks of 4 tile rows */
    KT_CHECK(kiln__winograd_s2_applies(&r28));
    KT_CHECK(!applies_to_s2(geom_s2(1, 512, 512, 14, 14, 1, 1, 1, 1))); /* 16 tiles */
    KT_CHECK(!applies_to_s2(geom_s2(1, 64, 64, 72, 72, 1, 1, 1, 1)));   /* 18 across */
    KT_CHECK(!applies_to_s2(geom_s2(1, 32, 64, 28, 28, 1, 1, 1, 1)));   /* few channels */
    KT_CHECK(applies_to_s2(geom_s2(1, 64, 64, 19, 20, 0, 1, 2, 0)));    /* 5 x 5 tiles */
    kiln__conv_geom t = r28;
    t.s[1] = 1;
    KT_CHECK(!kiln__winograd_s2_applies(&t));
    t = r28;
    t.d[2] = 2;
    KT_CHECK(!kiln__winograd_s2_applies(&t));
    kiln__cpu_set_simd(KILN__SIMD_AVX2);
    KT_CHECK(!kiln__winograd_s2_applies(&r28));
    kiln__cpu_set_simd(KILN__SIMD_AVX512);
}

/* F(4x4) with its GEMMs through the channel-vector GEMM (AVX-512, 128 channels or more, tiles
 * wasting a quarter of the row GEMM's lanes): one block, a batch, each thread's own tile rows in
 * blocks of 50 tiles and a last one of 10, and a slot that held the row GEMM's packing. */
static void test_f4_cv(void) {
    kiln__cpu_set_simd(KILN__SIMD_AVX512);
    if (kiln__cpu_simd() != KILN__SIMD_AVX512) return;
    kiln__pool *two = NULL;
    KT_OK(kiln__pool_create(&g_alloc, 2, &two));
    kiln__act relu = {KILN_ACT_RELU, 0, 0}, clip = {KILN_ACT_CLIP, -0.5f, 0.75f};
    kiln__conv_geom g28 = geom(1, 128, 128, 28, 28, 1, 1, 1, 1), gb = geom(2, 130, 100, 27, 26, 2, 0, 0, 1);
    kiln__conv_geom split = geom(1, 128, 96, 44, 40, 1, 1, 1, 1);
    void *slot = NULL; /* each case's weights are new: a slot is reused only where its block is replaced */
    run_conv(kiln__winograd_conv, KILN__WINOGRAD_CV_MAGIC, "f4 cv", &g28, true, true, &relu, NULL, &slot,
             &g_const_layer);
    kiln__free(&g_alloc, slot);
    slot = NULL;
    run_conv(kiln__winograd_conv, KILN__WINOGRAD_CV_MAGIC, "f4 cv", &g28, false, false, &clip, g_pool, &slot,
             &g_const_layer);
    kiln__free(&g_alloc, slot);
    slot = NULL;
    run_conv(kiln__winograd_conv, KILN__WINOGRAD_CV_MAGIC, "f4 cv batch", &gb, true, true, &clip, g_pool, NULL, NULL);
    run_conv(kiln__winograd_conv, KILN__WINOGRAD_CV_MAGIC, "f4 cv split", &split, true, true, &relu, two, &slot,
             &g_const_layer);
    kiln__cpu_set_simd(KILN__SIMD_AVX2); /* the row GEMM's packing replaces it, and the other way round */
    run_conv(kiln__winograd_conv, KILN__WINOGRAD_MAGIC, "f4 row", &split, true, false, &relu, two, &slot,
             &g_const_layer);
    kiln__cpu_set_simd(KILN__SIMD_AVX512);
    run_conv(kiln__winograd_conv, KILN__WINOGRAD_CV_MAGIC, "f4 cv again", &split, true, false, &relu, NULL, &slot,
             &g_const_layer);
    kiln__free(&g_alloc, slot);
    kiln__pool_destroy(two);
}

/* A plane F(2x2) takes whatever its channels and maps: 1 to 64 tiles per image, at most 15 across. */
static kiln__conv_geom random_f2_geom(int64_t max_c) {
    for (;;) {
        kiln__conv_geom g = random_geom(max_c, 30);
        int64_t ty = (g.out[1] + 1) / 2, tx = (g.out[2] + 1) / 2;
        if (tx <= 15 && ty * tx <= 64) return g;
    }
}

/* F(2x2) through the channel-vector GEMM (AVX-512): maps past the last full 32 and runs of 256,
 * one to many threads' worth of panels, in-place residuals, a slot holding F(4x4)'s block (and the
 * other way round), and what kiln__winograd_f2_applies takes. */
static void test_f2(void) {
    kiln__cpu_set_simd(KILN__SIMD_AVX512);
    if (kiln__cpu_simd() != KILN__SIMD_AVX512) return;
    static const int kinds[] = {-1, KILN_ACT_RELU, KILN_ACT_CLIP, KILN_ACT_SIGMOID};
    for (int i = 0; i < 40; i++) {
        kiln__conv_geom g = random_f2_geom(i < 30 ? 40 : 200);
        kiln__act act = {kinds[kt_randi(0, 3)], -0.5f, 0.75f};
        void *slot = NULL;
        int mode = (int)kt_randi(0, 2); /* 0: no slot, 1: slot and constant weights, 2: slot only */
        run_f2("f2 random", &g, kt_randi(0, 1), kt_randi(0, 1), &act, kt_randi(0, 1) ? g_pool : NULL,
               mode ? &slot : NULL, mode == 1 ? &g_const_layer : NULL);
        if (mode == 1) { /* F(4x4) and then F(2x2) again replace the slot's block */
            kiln__conv_geom g2 = g;
            run_case("f4 after f2", &g2, true, false, &act, g_pool, &slot, &g_const_layer);
            run_f2("f2 after f4", &g, true, true, &act, NULL, &slot, &g_const_layer);
        }
        kiln__free(&g_alloc, slot);
    }
    kiln__conv_geom r14 = geom(1, 256, 256, 14, 14, 1, 1, 1, 1), r14b = geom(2, 64, 96, 14, 14, 1, 1, 1, 1);
    kiln__act relu = {KILN_ACT_RELU, 0, 0};
    run_f2("f2 14x14", &r14, true, true, &relu, g_pool, NULL, NULL);
    run_f2("f2 14x14 batch", &r14b, true, true, &relu, NULL, NULL, NULL);
    kiln__conv_geom groups = geom(1, 64, 330, 10, 9, 1, 1, 1, 1); /* one thread: runs of 256 and 74 maps */
    run_f2("f2 groups", &groups, true, true, &relu, NULL, NULL, NULL);
    KT_CHECK(kiln__winograd_f2_applies(&r14));
    KT_CHECK(kiln__winograd_f2_applies(&r14b));
    KT_CHECK(applies_to_f2(geom(1, 64, 64, 16, 16, 1, 1, 1, 1)));   /* 64 tiles */
    KT_CHECK(applies_to_f2(geom(1, 64, 64, 9, 9, 1, 1, 1, 1)));     /* 25 tiles */
    KT_CHECK(!applies_to_f2(geom(1, 64, 64, 8, 8, 1, 1, 1, 1)));    /* 16 tiles */
    KT_CHECK(!applies_to_f2(geom(1, 512, 512, 7, 7, 1, 1, 1, 1)));  /* 16 tiles */
    KT_CHECK(!applies_to_f2(geom(1, 64, 64, 18, 18, 1, 1, 1, 1)));  /* 81 tiles */
    KT_CHECK(!applies_to_f2(geom(1, 64, 64, 2, 60, 1, 1, 1, 1)));   /* 30 across */
    KT_CHECK(!applies_to_f2(geom(1, 32, 64, 14, 14, 1, 1, 1, 1)));  /* few channels */
    KT_CHECK(!applies_to_f2(geom(1, 64, 16, 14, 14, 1, 1, 1, 1)));  /* few maps */
    KT_CHECK(!applies_to_f2(geom(1, 64, 48, 14, 14, 1, 1, 1, 1)));  /* 48 maps: a third of a panel wasted */
    kiln__conv_geom s2 = r14;
    s2.s[2] = 2;
    KT_CHECK(!kiln__winograd_f2_applies(&s2));
    kiln__cpu_set_simd(KILN__SIMD_AVX2);
    KT_CHECK(!kiln__winograd_f2_applies(&r14));
    kiln__cpu_set_simd(KILN__SIMD_AVX512);
}

/* Enough tiles per thread that each thread runs its own tile rows: rows split unevenly, across
 * the images of a batch, in several blocks per thread, and a single tile row (one slot). */
static void test_split_rows(void) {
    if (kiln__cpu_simd() == KILN__SIMD_NONE) return;
    kiln__pool *two = NULL;
    KT_OK(kiln__pool_create(&g_alloc, 2, &two));
    kiln__act relu = {KILN_ACT_RELU, 0, 0}, none = {-1, 0, 0};
    kiln__conv_geom g56 = geom(1, 24, 20, 56, 56, 1, 1, 1, 1), gb = geom(2, 20, 36, 40, 44, 1, 0, 2, 1);
    kiln__conv_geom wide = geom(1, 16, 24, 3, 400, 1, 1, 1, 1), big = geom(1, 64, 32, 120, 96, 1, 1, 1, 1);
    run_case("split rows", &g56, true, true, &relu, two, NULL, NULL);
    run_case("split rows", &g56, true, false, &none, g_pool, NULL, NULL);
    run_case("split rows", &gb, false, true, &relu, two, NULL, NULL);
    run_case("split rows", &gb, true, true, &none, g_pool, NULL, NULL);
    run_case("split rows", &wide, true, false, &relu, two, NULL, NULL);
    run_case("split rows", &big, true, true, &relu, two, NULL, NULL);
    kiln__pool_destroy(two);
}

int main(void) {
    ck_init();
    test_applies();
    test_random();
    test_foreign_slot();
    test_split_rows();
    test_f2();
    test_f4_cv();
    test_s2();
    ck_done();
    return kt_summary("test_cpu_winograd");
}
