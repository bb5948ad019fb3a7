/* Cast and the dtype access helpers: every pair of C-native dtypes and f16/bf16 against
 * reference conversions written here (truncation, wrap-around, bool rules, NaN/inf/-0), the
 * fp8/fp4/e8m0 formats against a reference decoder and round-to-nearest-even at every
 * midpoint, saturation on and off, packed int4/int2, ONNX's own test vectors, inference
 * errors, the network API and an end-to-end engine run. */
#include "layer_harness.h"

LH_LINK(cast)

static size_t bytes_of(kiln_dtype t, int64_t n) {
    size_t b = 0;
    kiln__dtype_bytes(t, n, &b);
    return b ? b : 1;
}

/* Runs a cast of n elements of `from` at src into `to`; returns malloc'ed output. */
static void *run_cast(kiln_dtype from, kiln_dtype to, const void *src, int64_t n, int saturate) {
    kiln_layer l = lh_layer(KILN_LAYER_CAST, 1);
    l.p.cast.to = to;
    l.p.cast.saturate = saturate;
    kiln__value in = lh_val(from, (kiln_dims){1, {n}}, (void *)src), out;
    kiln_status s = lh_run(&l, &in, &out);
    KT_OK(s);
    if (s != KILN_OK) return calloc(1, bytes_of(to, n));
    KT_CHECK(out.dtype == to && out.dims.d[0] == n);
    return out.data;
}

/* ---------------------------------------------------------------- native dtypes */

typedef struct tinfo {
    kiln_dtype t;
    int bits;
    bool is_float, is_signed, is_bool;
} tinfo;

static const tinfo TYPES[] = {
    {KILN_FLOAT32, 32, true, true, false}, {KILN_FLOAT64, 64, true, true, false},
    {KILN_FLOAT16, 16, true, true, false}, {KILN_BFLOAT16, 16, true, true, false},
    {KILN_INT8, 8, false, true, false},    {KILN_UINT8, 8, false, false, false},
    {KILN_INT16, 16, false, true, false},  {KILN_UINT16, 16, false, false, false},
    {KILN_INT32, 32, false, true, false},  {KILN_UINT32, 32, false, false, false},
    {KILN_INT64, 64, false, true, false},  {KILN_UINT64, 64, false, false, false},
    {KILN_BOOL, 8, false, false, true},
};

/* A value of a type, kept exactly: floats as double, integers as their 64-bit pattern. */
typedef struct val {
    double f;
    uint64_t u;
} val;

static val get(const tinfo *ti, const void *p, int64_t i) {
    val v = {0, 0};
    const uint8_t *b = (const uint8_t *)p + i * (ti->bits / 8);
    switch (ti->t) {
    case KILN_FLOAT32: v.f = *(const float *)b; break;
    case KILN_FLOAT64: v.f = *(const double *)b; break;
    case KILN_FLOAT16: v.f = kiln__half_to_float(*(const uint16_t *)b); break;
    case KILN_BFLOAT16: v.f = kiln__bf16_to_float(*(const uint16_t *)b); break;
    default: {
        uint64_t u = 0;
        memcpy(&u, b, ti->bits / 8);
        if (ti->is_signed && ti->bits < 64 && (u >> (ti->bits - 1))) u |= ~0ull << ti->bits;
        v.u = u;
        v.f = ti->is_signed ? (double)(int64_t)u : (double)u;
    }
    }
    return v;
}

static uint64_t wrap_bits(uint64_t u, int bits, bool sgn) {
    if (bits == 64) return u;
    u &= (1ull << bits) - 1;
    if (sgn && (u >> (bits - 1))) u |= ~0ull << bits;
    return u;
}

/* The conversion kiln documents: bool is non-zero; float to integer truncates and keeps the
 * low bits (NaN and out-of-int64 values read as INT64_MIN first); integers wrap. */
static val ref_convert(const tinfo *from, val x, const tinfo *to) {
    val r = {0, 0};
    if (to->is_bool) {
        r.u = from->is_float ? x.f != 0 : x.u != 0;
        r.f = (double)r.u;
        return r;
    }
    if (to->is_float) {
        double v;
        if (from->is_float) v = x.f;
        else if (from->is_bool) v = x.u != 0;
        else v = from->is_signed ? (double)(int64_t)x.u : (double)x.u;
        /* Integer sources are rounded once, straight to the target (C's conversion). */
        if (!from->is_float && !from->is_bool && to->t == KILN_FLOAT32)
            v = from->is_signed ? (float)(int64_t)x.u : (float)x.u;
        switch (to->t) {
        case KILN_FLOAT32: r.f = (float)v; break;
        case KILN_FLOAT16: r.f = kiln__half_to_float(kiln__float_to_half((float)v)); break;
        case KILN_BFLOAT16: r.f = kiln__bf16_to_float(kiln__float_to_bf16((float)v)); break;
        default: r.f = v; break;
        }
        if ((to->t == KILN_FLOAT16 || to->t == KILN_BFLOAT16) && !from->is_float && isfinite(r.f)) {
            /* Going through float rounds twice; pick the nearest 16-bit neighbour (ties to even). */
            bool half = to->t == KILN_FLOAT16;
            uint16_t c = half ? kiln__float_to_half((float)r.f) : kiln__float_to_bf16((float)r.f), best = c;
            for (int d = -1; d <= 1; d += 2) {
                uint16_t n = (uint16_t)(c + d);
                double cv = half ? kiln__half_to_float(n) : kiln__bf16_to_float(n);
                double bv = half ? kiln__half_to_float(best) : kiln__bf16_to_float(best);
                if (fabs(cv - v) < fabs(bv - v) || (fabs(cv - v) == fabs(bv - v) && !(n & 1))) best = n;
            }
            r.f = half ? kiln__half_to_float(best) : kiln__bf16_to_float(best);
        }
        return r;
    }
    uint64_t u;
    if (from->is_float) {
        double t = trunc(x.f);
        if (t >= -9223372036854775808.0 && t < 9223372036854775808.0) u = (uint64_t)(int64_t)t;
        else if (t >= 9223372036854775808.0 && t < 18446744073709551616.0) u = (uint64_t)t;
        else u = 1ull << 63;
    } else {
        u = from->is_bool ? x.u != 0 : x.u;
    }
    r.u = wrap_bits(u, to->bits, to->is_signed);
    return r;
}

static void put(const tinfo *ti, void *p, int64_t i, double f, uint64_t u) {
    uint8_t *b = (uint8_t *)p + i * (ti->bits / 8);
    switch (ti->t) {
    case KILN_FLOAT32: *(float *)b = (float)f; break;
    case KILN_FLOAT64: *(double *)b = f; break;
    case KILN_FLOAT16: *(uint16_t *)b = kiln__float_to_half((float)f); break;
    case KILN_BFLOAT16: *(uint16_t *)b = kiln__float_to_bf16((float)f); break;
    case KILN_BOOL: *b = u & 1; break;
    default: memcpy(b, &u, ti->bits / 8); break;
    }
}

static void test_native_pairs(void) {
    const int64_t n = 5000; /* more than one work block, so the threaded path runs */
    for (size_t s = 0; s < KILN__ARRAY_LEN(TYPES); s++) {
        const tinfo *from = &TYPES[s];
        void *src = malloc(bytes_of(from->t, n));
        for (int64_t i = 0; i < n; i++) {
            double f = kt_randf(-300, 300);
            int r = (int)kt_randi(0, 15);
            if (r == 0) f = NAN;
            if (r == 1) f = kt_randi(0, 1) ? INFINITY : -INFINITY;
            if (r == 2) f = -0.0;
            if (r == 3) f = kt_randf(-1, 1) * 5e9;
            if (r == 4) f = (double)kt_randi(-3, 3) + 0.5;
            put(from, src, i, f, kt_rand_u64());
        }
        for (size_t d = 0; d < KILN__ARRAY_LEN(TYPES); d++) {
            const tinfo *to = &TYPES[d];
            void *out = run_cast(from->t, to->t, src, n, 1);
            int bad = 0;
            for (int64_t i = 0; i < n && bad < 3; i++) {
                val x = get(from, src, i), want = ref_convert(from, x, to), got = get(to, out, i);
                bool ok = to->is_float ? (isnan(want.f) ? isnan(got.f)
                                                        : got.f == want.f && signbit(got.f) == signbit(want.f))
                                       : got.u == want.u;
                KT_CHECK(ok);
                if (!ok) {
                    bad++;
                    fprintf(stderr, "  cast %s -> %s: x=%.17g (0x%llx) got %.17g/%llu want %.17g/%llu\n",
                            kiln_dtype_name(from->t), kiln_dtype_name(to->t), x.f, (unsigned long long)x.u, got.f,
                            (unsigned long long)got.u, want.f, (unsigned long long)want.u);
                }
            }
            free(out);
        }
        free(src);
    }
    /* A few exact values: truncation toward zero, 200 -> int8 wraps, bool rules. */
    float f[] = {2.9f, -2.9f, 200, -0.0f, NAN, 0.25f};
    int8_t *i8 = run_cast(KILN_FLOAT32, KILN_INT8, f, 6, 1);
    KT_CHECK(i8[0] == 2 && i8[1] == -2 && i8[2] == -56 && i8[3] == 0 && i8[5] == 0);
    uint8_t *b = run_cast(KILN_FLOAT32, KILN_BOOL, f, 6, 1);
    KT_CHECK(memcmp(b, (uint8_t[]){1, 1, 1, 0, 1, 1}, 6) == 0);
    free(i8);
    free(b);
    /* int64 -> float32 rounds once (a double step would round 2^53 + 2^29 + 1 twice). */
    int64_t big = (1ll << 53) + (1ll << 29) + 1;
    float *fb = run_cast(KILN_INT64, KILN_FLOAT32, &big, 1, 1);
    KT_CHECK(*fb == (float)big && *fb == 0x1.000002p53f);
    free(fb);
    /* float64 -> float16 rounds once: 1 + 2^-11 + 2^-40 is above the f16 midpoint. */
    double dd = 1 + 0x1p-11 + 0x1p-40;
    uint16_t *h = run_cast(KILN_FLOAT64, KILN_FLOAT16, &dd, 1, 1);
    KT_CHECK(*h == 0x3c01);
    free(h);
}

/* ---------------------------------------------------------------- narrow float formats */

typedef struct fmt {
    kiln_dtype t;
    int ebits, mbits, bias;
    int kind; /* 0 IEEE-like with inf (E5M2), 1 FN: only all-ones is NaN, 2 FNUZ: 0x80 is NaN, 3 FP4: none */
    double max;
} fmt;

static const fmt FMTS[] = {
    {KILN_FP8_E4M3FN, 4, 3, 7, 1, 448},    {KILN_FP8_E4M3FNUZ, 4, 3, 8, 2, 240},
    {KILN_FP8_E5M2, 5, 2, 15, 0, 57344},   {KILN_FP8_E5M2FNUZ, 5, 2, 16, 2, 57344},
    {KILN_FP4_E2M1, 2, 1, 1, 3, 6},
};

/* The value of code c, written from the format's definition. */
static double ref_decode(const fmt *f, uint32_t c) {
    int width = 1 + f->ebits + f->mbits;
    uint32_t sign = c >> (width - 1), e = (c >> f->mbits) & ((1u << f->ebits) - 1), m = c & ((1u << f->mbits) - 1);
    if (f->kind == 2 && c == 0x80) return NAN;
    if (f->kind == 1 && e == (1u << f->ebits) - 1 && m == (1u << f->mbits) - 1) return NAN;
    if (f->kind == 0 && e == (1u << f->ebits) - 1) return m ? NAN : sign ? -INFINITY : INFINITY;
    double v = e ? ldexp(1 + m / (double)(1 << f->mbits), (int)e - f->bias)
                 : ldexp(m / (double)(1 << f->mbits), 1 - f->bias);
    return sign ? -v : v;
}

static uint32_t code_at(const fmt *f, const void *p, int64_t i) {
    const uint8_t *b = p;
    return f->t == KILN_FP4_E2M1 ? (b[i / 2] >> (4 * (i % 2))) & 0xf : b[i];
}

static void test_narrow_formats(void) {
    for (size_t k = 0; k < KILN__ARRAY_LEN(FMTS); k++) {
        const fmt *f = &FMTS[k];
        int ncodes = f->t == KILN_FP4_E2M1 ? 16 : 256;
        uint8_t codes[256];
        for (int c = 0; c < 256; c++) codes[c] = (uint8_t)c;
        uint8_t packed[128];
        for (int c = 0; c < 128; c++) packed[c] = (uint8_t)((2 * c) | (((2 * c + 1) & 0xf) << 4));
        /* Every code decodes as the format says. */
        double *dec = run_cast(f->t, KILN_FLOAT64, f->t == KILN_FP4_E2M1 ? (void *)packed : (void *)codes, ncodes, 1);
        for (int c = 0; c < ncodes; c++) {
            double want = ref_decode(f, (uint32_t)c);
            bool ok = isnan(want) ? isnan(dec[c]) : dec[c] == want && signbit(dec[c]) == signbit(want);
            KT_CHECK(ok);
            if (!ok) fprintf(stderr, "  decode %s 0x%x: got %g want %g\n", kiln_dtype_name(f->t), c, dec[c], want);
        }
        /* Finite positive codes in order; every value, midpoint and its neighbours encode with
         * round to nearest even. */
        double vals[128];
        uint32_t vcode[128];
        int nv = 0;
        for (int c = 0; c < ncodes / 2; c++)
            if (isfinite(ref_decode(f, (uint32_t)c))) {
                vals[nv] = ref_decode(f, (uint32_t)c);
                vcode[nv++] = (uint32_t)c;
            }
        int64_t nt = 0;
        double *tests = malloc(sizeof(double) * 2048);
        uint32_t *want = malloc(sizeof(uint32_t) * 2048);
        uint32_t sign_bit = f->t == KILN_FP4_E2M1 ? 0x8 : 0x80;
        for (int s = 0; s < 2; s++)
            for (int i = 0; i < nv; i++) {
                double sg = s ? -1 : 1;
                uint32_t sc = s ? sign_bit : 0;
                /* FNUZ has no -0: negative values that round to zero give +0. */
                uint32_t zero_fix = f->kind == 2 && s ? sign_bit : 0;
                tests[nt] = sg * vals[i];
                want[nt++] = (vcode[i] | sc) ^ (vcode[i] == 0 ? zero_fix : 0);
                if (i + 1 < nv) {
                    double mid = (vals[i] + vals[i + 1]) / 2;
                    uint32_t even = (vcode[i] & 1) ? vcode[i + 1] : vcode[i];
                    tests[nt] = sg * mid;
                    want[nt++] = (even | sc) ^ (even == 0 ? zero_fix : 0);
                    tests[nt] = sg * nextafter(mid, INFINITY);
                    want[nt++] = vcode[i + 1] | sc;
                    tests[nt] = sg * nextafter(mid, 0);
                    want[nt++] = (vcode[i] | sc) ^ (vcode[i] == 0 ? zero_fix : 0);
                }
            }
        uint8_t *enc = run_cast(KILN_FLOAT64, f->t, tests, nt, 1);
        int bad = 0;
        for (int64_t i = 0; i < nt && bad < 3; i++) {
            uint32_t got = code_at(f, enc, i);
            KT_CHECK(got == want[i]);
            if (got != want[i]) {
                bad++;
                fprintf(stderr, "  encode %s %.17g: got 0x%x want 0x%x\n", kiln_dtype_name(f->t), tests[i], got, want[i]);
            }
        }
        free(enc);
        /* Saturation: beyond the largest value, infinities and NaN. */
        double sp[] = {f->max * 4, -f->max * 4, INFINITY, -INFINITY, NAN};
        uint8_t *sat = run_cast(KILN_FLOAT64, f->t, sp, 5, 1);
        uint8_t *nosat = run_cast(KILN_FLOAT64, f->t, sp, 5, 0);
        double back[5], back_ns[5];
        for (int i = 0; i < 5; i++) {
            back[i] = ref_decode(f, code_at(f, sat, i));
            back_ns[i] = ref_decode(f, code_at(f, nosat, i));
        }
        KT_CHECK(back[0] == f->max && back[1] == -f->max && back[2] == f->max && back[3] == -f->max);
        if (f->kind == 0) { /* E5M2 overflows to infinity without saturation */
            KT_CHECK(back_ns[0] == INFINITY && back_ns[1] == -INFINITY && back_ns[2] == INFINITY);
        } else if (f->kind != 3) {
            KT_CHECK(isnan(back_ns[0]) && isnan(back_ns[1]) && isnan(back_ns[2]) && isnan(back_ns[3]));
        }
        if (f->kind != 3) KT_CHECK(isnan(back[4]) && isnan(back_ns[4]));
        free(sat);
        free(nosat);
        free(tests);
        free(want);
        free(dec);
    }
}

/* Vectors from ONNX's own Cast node tests (onnx 1.23 test data). */
static void test_onnx_vectors(void) {
    float x4[] = {0.48f, 0.25f, 1.05f, -3.5f, -8, 9, 1e6f, 1e-7f, NAN, INFINITY, INFINITY, -INFINITY, -4, 0.01f, -0.0f};
    uint8_t *fp4 = run_cast(KILN_FLOAT32, KILN_FP4_E2M1, x4, 15, 1);
    KT_CHECK(memcmp(fp4, (uint8_t[]){0x01, 0xe2, 0x7f, 0x07, 0x78, 0xf7, 0x0e, 0x08}, 8) == 0);
    free(fp4);
    float xu[] = {0.4789254665374756f, 0.7229037880897522f, 1e6f, 1e-7f, NAN, INFINITY, -INFINITY, -1e-7f, -1e6f};
    float want_uz[] = {0.46875f, 0.75f, 240, 0, NAN, 240, -240, 0, -240};
    uint8_t *uz = run_cast(KILN_FLOAT32, KILN_FP8_E4M3FNUZ, xu, 9, 1);
    float *uzf = run_cast(KILN_FP8_E4M3FNUZ, KILN_FLOAT32, uz, 9, 1);
    for (int i = 0; i < 9; i++) KT_CHECK(isnan(want_uz[i]) ? isnan(uzf[i]) : uzf[i] == want_uz[i]);
    KT_CHECK(uz[7] == 0); /* -1e-7 rounds to +0: FNUZ has no negative zero */
    free(uz);
    free(uzf);
    float xi[25];
    for (int i = 0; i < 25; i++) xi[i] = (float)(i - 9);
    uint8_t *i4 = run_cast(KILN_FLOAT32, KILN_INT4, xi, 25, 1);
    KT_CHECK(memcmp(i4, (uint8_t[]){0x87, 0xa9, 0xcb, 0xed, 0x0f, 0x21, 0x43, 0x65, 0x87, 0xa9, 0xcb, 0xed, 0x0f}, 13) == 0);
    int8_t *back = run_cast(KILN_INT4, KILN_INT8, i4, 25, 1);
    for (int i = 0; i < 25; i++) KT_CHECK(back[i] == (int8_t)((((i - 9) & 0xf) ^ 8) - 8));
    free(back);
    free(i4);
    float x2[] = {-3, -2, -1, 0, 1, 2, 3};
    int8_t *i2 = run_cast(KILN_FLOAT32, KILN_INT2, x2, 7, 1);
    int8_t *i2b = run_cast(KILN_INT2, KILN_INT8, i2, 7, 1);
    KT_CHECK(memcmp(i2b, (int8_t[]){1, -2, -1, 0, 1, -2, -1}, 7) == 0);
    free(i2);
    free(i2b);
    uint8_t *u2 = run_cast(KILN_FLOAT32, KILN_UINT2, x2, 7, 1);
    uint8_t *u2b = run_cast(KILN_UINT2, KILN_UINT8, u2, 7, 1);
    KT_CHECK(memcmp(u2b, (uint8_t[]){1, 2, 3, 0, 1, 2, 3}, 7) == 0);
    KT_CHECK(u2[1] == 0x39); /* elements 4, 5, 6 (1, 2, 3) fill byte 1 from its low bits up */
    free(u2);
    free(u2b);
    uint8_t *u4 = run_cast(KILN_FLOAT32, KILN_UINT4, xi, 25, 1);
    uint8_t *u4b = run_cast(KILN_UINT4, KILN_UINT8, u4, 25, 1);
    for (int i = 0; i < 25; i++) KT_CHECK(u4b[i] == (uint8_t)((i - 9) & 0xf));
    free(u4);
    free(u4b);
    float xe[] = {0, 0.124f, 0.25f, 0.5f, 1.1f, 2, 4, 8, INFINITY, NAN, 3e38f};
    uint8_t *e8 = run_cast(KILN_FLOAT32, KILN_FP8_E8M0, xe, 11, 1);
    KT_CHECK(memcmp(e8, (uint8_t[]){0, 124, 125, 126, 128, 128, 129, 130, 0xfe, 0xff, 0xfe}, 11) == 0);
    float *e8f = run_cast(KILN_FP8_E8M0, KILN_FLOAT32, e8, 11, 1);
    KT_CHECK(e8f[0] == 0x1p-127f && e8f[1] == 0.125f && e8f[4] == 2 && e8f[8] == 0x1p127f && isnan(e8f[9]));
    free(e8f);
    free(e8);
    uint8_t *e8ns = run_cast(KILN_FLOAT32, KILN_FP8_E8M0, xe, 11, 0);
    KT_CHECK(e8ns[8] == 0xff && e8ns[10] == 0xff && e8ns[7] == 130);
    free(e8ns);
}

/* The element helpers directly: kiln__store_i64 into sub-byte slots leaves neighbours alone. */
static void test_access_helpers(void) {
    uint8_t buf[3] = {0xff, 0xff, 0xff};
    kiln__store_i64(buf, KILN_INT4, 1, -3);
    KT_CHECK(buf[0] == 0xdf && kiln__load_i64(buf, KILN_INT4, 1) == -3 && kiln__load_i64(buf, KILN_INT4, 0) == -1);
    kiln__store_i64(buf, KILN_UINT2, 5, 2);
    KT_CHECK(buf[1] == 0xfb && kiln__load_i64(buf, KILN_UINT2, 5) == 2 && kiln__load_i64(buf, KILN_UINT2, 4) == 3);
    kiln__store_f64(buf, KILN_FP4_E2M1, 4, -1.5);
    KT_CHECK(kiln__load_f64(buf, KILN_FP4_E2M1, 4) == -1.5 && (buf[2] & 0xf0) == 0xf0);
    uint64_t u = 0;
    kiln__store_f64(&u, KILN_UINT64, 0, 1.5e19);
    KT_CHECK(u == 15000000000000000000ull && kiln__load_f64(&u, KILN_UINT64, 0) == 1.5e19);
    uint16_t h = 0;
    kiln__store_f64(&h, KILN_FLOAT16, 0, 70000);
    KT_CHECK(h == 0x7c00);
    kiln__store_f64(&h, KILN_FLOAT16, 0, -NAN);
    KT_CHECK((h & 0x7c00) == 0x7c00 && (h & 0x3ff) && (h & 0x8000));
    float f = 0;
    kiln__store_f64(&f, KILN_FLOAT32, 0, 1e300);
    KT_CHECK(isinf(f) && f > 0);
    KT_CHECK(kiln__load_i64(&(float){-7.9f}, KILN_FLOAT32, 0) == -7);
}

static void test_cast_infer_and_api(void) {
    kiln_layer l = lh_layer(KILN_LAYER_CAST, 1);
    l.p.cast.to = KILN_STRING;
    kiln__value in = lh_val(KILN_FLOAT32, (kiln_dims){1, {3}}, NULL), out;
    KT_STATUS(lh_infer(&l, &in, &out), KILN_UNSUPPORTED);
    KT_CHECK(lh_names_layer() && strstr(kiln_last_error(), "string"));
    l.p.cast.to = KILN_FLOAT16;
    in.dtype = KILN_STRING;
    KT_STATUS(lh_infer(&l, &in, &out), KILN_UNSUPPORTED);
    KT_CHECK(lh_names_layer());
    in.dtype = KILN_FLOAT32;
    l.p.cast.to = 99;
    KT_STATUS(lh_infer(&l, &in, &out), KILN_INVALID_ARGUMENT);
    KT_CHECK(lh_names_layer());
    l.p.cast.to = KILN_INT4;
    in.dims = (kiln_dims){2, {-1, 3}};
    KT_OK(lh_infer(&l, &in, &out));
    KT_CHECK(out.dtype == KILN_INT4 && out.dims.d[0] == -1);

    kiln_builder *b = NULL;
    kiln_network *net = NULL;
    KT_OK(kiln_builder_create(NULL, &b));
    KT_OK(kiln_network_create(b, &net));
    if (!net) {
        kiln_builder_destroy(b);
        return;
    }
    kiln_tensor *x;
    KT_OK(kiln_network_add_input(net, "x", KILN_FLOAT32, &(kiln_dims){2, {2, 3}}, &x));
    kiln_layer *c1 = NULL, *c2 = NULL;
    KT_OK(kiln_network_add_cast(net, x, KILN_FP8_E4M3FN, &c1));
    KT_CHECK(c1 && c1->p.cast.saturate == 1 && kiln_tensor_dtype(kiln_layer_output(c1, 0)) == KILN_FP8_E4M3FN);
    if (c1) KT_OK(kiln_network_add_cast(net, kiln_layer_output(c1, 0), KILN_INT32, &c2));
    KT_STATUS(kiln_network_add_cast(net, x, KILN_STRING, NULL), KILN_UNSUPPORTED);
    KT_CHECK(strstr(kiln_last_error(), "(Cast)") != NULL);
    if (c2) {
        KT_OK(kiln_network_mark_output(net, kiln_layer_output(c2, 0)));
        float in6[6] = {1.3f, -2.6f, 500, -1000, 17, 0.5f};
        size_t nbytes = 0;
        kiln_dims od;
        int32_t *got = lh_execute(b, net, "x", in6, sizeof in6, &nbytes, &od);
        if (got) { /* through e4m3fn: 1.25, -2.5, 448 (saturated), -448, 16, 0.5 -> truncated */
            KT_CHECK(nbytes == 24 && memcmp(got, (int32_t[]){1, -2, 448, -448, 16, 0}, 24) == 0);
            free(got);
        }
    }
    kiln_network_destroy(net);
    kiln_builder_destroy(b);
}

int main(void) {
    lh_init();
    test_native_pairs();
    test_narrow_formats();
    test_onnx_vectors();
    test_access_helpers();
    test_cast_infer_and_api();
    lh_done();
    return kt_summary("test_cpu_cast");
}
