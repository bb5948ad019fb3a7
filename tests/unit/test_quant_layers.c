/* The quantize, dequantize and bitcast layers: kernels against references written here (with
 * their own decoders of the narrow float formats and sub-byte packing) on fresh random inputs,
 * per tensor, per axis and blocked, with large tensors so that the threaded paths run; and
 * infer error cases. */
#include "unit/layer_harness.h"
#include "network/bitcast.h"
#include "network/quantize.h"

LH_LINK(quantize)
LH_LINK(dequantize)
LH_LINK(bitcast)

/* ---------------------------------------------------------------- reference helpers */

static int32_t bits_of(kiln_dtype t) {
    switch (t) {
    case KILN_INT4:
    case KILN_UINT4:
    case KILN_FP4_E2M1: return 4;
    case KILN_INT2:
    case KILN_UINT2: return 2;
    case KILN_INT16:
    case KILN_UINT16: return 16;
    default: return 8;
    }
}

static bool is_signed_int(kiln_dtype t) {
    return t == KILN_INT8 || t == KILN_INT16 || t == KILN_INT4 || t == KILN_INT2;
}

static void int_limits(kiln_dtype t, int64_t *lo, int64_t *hi) {
    int32_t b = bits_of(t);
    *lo = is_signed_int(t) ? -((int64_t)1 << (b - 1)) : 0;
    *hi = is_signed_int(t) ? ((int64_t)1 << (b - 1)) - 1 : ((int64_t)1 << b) - 1;
}

/* Raw code of element i (packed low bits first for sub-byte types). */
static uint32_t get_code(const void *p, kiln_dtype t, int64_t i) {
    int32_t b = bits_of(t);
    if (b == 16) return ((const uint16_t *)p)[i];
    if (b == 8) return ((const uint8_t *)p)[i];
    int32_t per = 8 / b;
    return (((const uint8_t *)p)[i / per] >> ((i % per) * b)) & ((1u << b) - 1);
}

static void put_code(void *p, kiln_dtype t, int64_t i, uint32_t c) {
    int32_t b = bits_of(t);
    if (b == 16) {
        ((uint16_t *)p)[i] = (uint16_t)c;
    } else if (b == 8) {
        ((uint8_t *)p)[i] = (uint8_t)c;
    } else {
        int32_t per = 8 / b, sh = (int32_t)(i % per) * b;
        uint8_t *q = (uint8_t *)p + i / per;
        *q = (uint8_t)((*q & ~(((1u << b) - 1) << sh)) | ((c & ((1u << b) - 1)) << sh));
    }
}

static int64_t code_to_int(kiln_dtype t, uint32_t c) {
    int32_t b = bits_of(t);
    if (is_signed_int(t) && (c >> (b - 1)) & 1) return (int64_t)c - ((int64_t)1 << b);
    return c;
}

/* Decoders of the narrow floats written from the formats' definitions. */
static double decode_float(kiln_dtype t, uint32_t c) {
    double sign = 1;
    switch (t) {
    case KILN_FP8_E4M3FN: {
        sign = c & 0x80 ? -1 : 1;
        uint32_t e = (c >> 3) & 15, m = c & 7;
        if (e == 15 && m == 7) return NAN;
        return sign * (e ? ldexp(8 + m, (int)e - 10) : ldexp(m, -9));
    }
    case KILN_FP8_E5M2: {
        sign = c & 0x80 ? -1 : 1;
        uint32_t e = (c >> 2) & 31, m = c & 3;
        if (e == 31) return m ? NAN : sign * INFINITY;
        return sign * (e ? ldexp(4 + m, (int)e - 17) : ldexp(m, -16));
    }
    default: { /* fp4 e2m1 */
        sign = c & 8 ? -1 : 1;
        uint32_t e = (c >> 1) & 3, m = c & 1;
        return sign * (e ? ldexp(2 + m, (int)e - 2) : m * 0.5);
    }
    }
}

/* Largest finite value of a narrow float format. */
static double float_max(kiln_dtype t) { return t == KILN_FP8_E4M3FN ? 448 : t == KILN_FP8_E5M2 ? 57344 : 6; }

/* q rounded to the nearest finite value of t (ties to the even code), by search; |q| <= max. */
static double nearest_float(kiln_dtype t, double q) {
    uint32_t ncodes = 1u << bits_of(t), best = 0;
    double best_d = INFINITY;
    for (uint32_t c = 0; c < ncodes; c++) {
        double v = decode_float(t, c);
        if (!isfinite(v)) continue;
        double d = fabs(v - q);
        if (d < best_d || (d == best_d && (c & 1) == 0 && (best & 1))) best = c, best_d = d;
    }
    return decode_float(t, best);
}

/* Index into the scale of element e of x. */
static int64_t scale_index(const kiln_dims *x, const kiln_dims *s, kiln__quant_mode mode, int32_t axis, int32_t block,
                           int64_t e) {
    if (mode == KILN__QUANT_TENSOR) return 0;
    int64_t co[KILN_MAX_DIMS];
    lh_unravel(e, x, co);
    if (mode == KILN__QUANT_AXIS) return co[axis];
    co[axis] /= block;
    int64_t off = 0;
    for (int32_t i = 0; i < s->nb_dims; i++) off = off * s->d[i] + co[i];
    return off;
}

/* A random x shape, mode, axis and block, and the matching scale shape. */
typedef struct quant_case {
    kiln_dims x, s;
    kiln__quant_mode mode;
    int32_t axis, block;
} quant_case;

static quant_case rand_case(int it) {
    quant_case c;
    memset(&c, 0, sizeof c);
    bool big = it % 5 == 0;
    c.x.nb_dims = (int32_t)kt_randi(1, 4);
    for (int32_t i = 0; i < c.x.nb_dims; i++) c.x.d[i] = kt_randi(1, big ? 24 : 6);
    c.mode = (kiln__quant_mode)(it % 3);
    c.axis = (int32_t)kt_randi(0, c.x.nb_dims - 1);
    if (c.mode == KILN__QUANT_TENSOR) {
        c.s.nb_dims = (int32_t)kt_randi(0, 1);
        c.s.d[0] = 1;
    } else if (c.mode == KILN__QUANT_AXIS) {
        if (c.x.d[c.axis] == 1) c.x.d[c.axis] = 3;
        c.s = DIMS(c.x.d[c.axis]);
    } else {
        c.block = (int32_t)kt_randi(1, 4);
        if (c.x.d[c.axis] <= c.block) c.x.d[c.axis] = c.block + kt_randi(1, 5);
        c.s = c.x;
        c.s.d[c.axis] = (c.x.d[c.axis] + c.block - 1) / c.block;
    }
    return c;
}

static kiln_layer quant_layer(kiln_layer_type type, int32_t nb_inputs, const kiln__quant_params *p) {
    kiln_layer l = lh_layer(type, nb_inputs);
    memcpy(l.p.bytes, p, sizeof *p);
    return l;
}

/* ---------------------------------------------------------------- quantize */

static const kiln_dtype INT_TYPES[8] = {KILN_INT8, KILN_UINT8, KILN_INT16, KILN_UINT16,
                                       KILN_INT4, KILN_UINT4, KILN_INT2,  KILN_UINT2};

static void test_quantize_int(void) {
    for (int it = 0; it < 120; it++) {
        quant_case c = rand_case(it);
        kiln_dtype yt = INT_TYPES[it % 8];
        bool has_zp = it % 4 != 3;
        int64_t n = kiln__dims_volume(&c.x), ns = kiln__dims_volume(&c.s), lo, hi;
        int_limits(yt, &lo, &hi);
        float *x = malloc(sizeof(float) * (size_t)n), *s = malloc(sizeof(float) * (size_t)ns);
        size_t zbytes;
        kiln__dtype_bytes(yt, ns, &zbytes);
        uint8_t *z = calloc(zbytes, 1);
        for (int64_t i = 0; i < ns; i++) {
            s[i] = kt_randf(0.01f, 0.5f);
            put_code(z, yt, i, (uint32_t)kt_randi(lo, hi));
        }
        /* Values reaching past both ends of the range, and exact halves for the ties. */
        double span = (double)(hi - lo) * 0.6;
        for (int64_t i = 0; i < n; i++) {
            int64_t si = scale_index(&c.x, &c.s, c.mode, c.axis, c.block, i);
            x[i] = i % 7 == 0 ? s[si] * (float)(kt_randi(-8, 8) + 0.5) : kt_randf(-1, 1) * (float)span * s[si];
        }
        kiln__quant_params p = {.axis = c.axis - (it % 2 ? c.x.nb_dims : 0), .block_size = c.block,
                                .out_dtype = has_zp ? 0 : (int32_t)yt, .saturate = 1};
        kiln_layer l = quant_layer(KILN_LAYER_QUANTIZE, has_zp ? 3 : 2, &p);
        kiln__value in[3] = {lh_val(KILN_FLOAT32, c.x, x), lh_val(KILN_FLOAT32, c.s, s), lh_val(yt, c.s, z)}, y;
        KT_OK(lh_run(&l, in, &y));
        KT_CHECK(y.dtype == yt);
        int64_t bad = 0;
        for (int64_t i = 0; i < n && y.dtype == yt; i++) {
            int64_t si = scale_index(&c.x, &c.s, c.mode, c.axis, c.block, i);
            float q = x[i] / s[si];
            double r = nearbyintf(q) + (has_zp ? (double)code_to_int(yt, get_code(z, yt, si)) : 0);
            int64_t want = r < (double)lo ? lo : r > (double)hi ? hi : (int64_t)r;
            bad += code_to_int(yt, get_code(y.data, yt, i)) != want;
        }
        if (bad)
            fprintf(stderr, "quantize to %s: %lld of %lld wrong\n", kiln_dtype_name(yt), (long long)bad, (long long)n);
        KT_CHECK(bad == 0);
        /* Unused bits of a packed output's last byte are zero. */
        if (bits_of(yt) < 8 && n % (8 / bits_of(yt)))
            KT_CHECK((((uint8_t *)y.data)[y.bytes - 1] >> ((n % (8 / bits_of(yt))) * bits_of(yt))) == 0);
        free(y.data);
        free(x);
        free(s);
        free(z);
    }
}

static void test_quantize_float(void) {
    static const kiln_dtype types[3] = {KILN_FP8_E4M3FN, KILN_FP8_E5M2, KILN_FP4_E2M1};
    for (int it = 0; it < 60; it++) {
        quant_case c = rand_case(it);
        kiln_dtype yt = types[it % 3];
        int64_t n = kiln__dims_volume(&c.x), ns = kiln__dims_volume(&c.s);
        float *x = malloc(sizeof(float) * (size_t)n), *s = malloc(sizeof(float) * (size_t)ns);
        size_t zbytes;
        kiln__dtype_bytes(yt, ns, &zbytes);
        uint8_t *z = calloc(zbytes, 1); /* fp8 zero points are 0; fp4's may be anything */
        for (int64_t i = 0; i < ns; i++) {
            s[i] = kt_randf(0.25f, 2);
            if (yt == KILN_FP4_E2M1) put_code(z, yt, i, (uint32_t)kt_randi(0, 15));
        }
        double mx = float_max(yt);
        for (int64_t i = 0; i < n; i++) {
            int64_t si = scale_index(&c.x, &c.s, c.mode, c.axis, c.block, i);
            x[i] = kt_randf(-1, 1) * (float)(mx * 0.45) * s[si];
        }
        kiln__quant_params p = {.axis = c.axis, .block_size = c.block, .saturate = it % 2};
        kiln_layer l = quant_layer(KILN_LAYER_QUANTIZE, 3, &p);
        kiln__value in[3] = {lh_val(KILN_FLOAT32, c.x, x), lh_val(KILN_FLOAT32, c.s, s), lh_val(yt, c.s, z)}, y;
        KT_OK(lh_run(&l, in, &y));
        int64_t bad = 0;
        for (int64_t i = 0; i < n && y.dtype == yt; i++) {
            int64_t si = scale_index(&c.x, &c.s, c.mode, c.axis, c.block, i);
            double q = (double)(x[i] / s[si]);
            if (yt == KILN_FP4_E2M1) q += decode_float(yt, get_code(z, yt, si));
            if (q > mx) q = mx; /* fp4 always saturates */
            if (q < -mx) q = -mx;
            bad += decode_float(yt, get_code(y.data, yt, i)) != nearest_float(yt, q);
        }
        if (bad)
            fprintf(stderr, "quantize to %s: %lld of %lld wrong\n", kiln_dtype_name(yt), (long long)bad, (long long)n);
        KT_CHECK(bad == 0);
        free(y.data);
        free(x);
        free(s);
        free(z);
    }
    /* Overflow: the largest finite value when saturating, else NaN (e4m3fn) or infinity (e5m2). */
    for (int sat = 0; sat <= 1; sat++)
        for (int k = 0; k < 2; k++) {
            kiln_dtype yt = k ? KILN_FP8_E5M2 : KILN_FP8_E4M3FN;
            float x[2] = {1e6f, -1e6f}, s = 1;
            kiln__quant_params p = {.axis = 1, .out_dtype = (int32_t)yt, .saturate = sat};
            kiln_layer l = quant_layer(KILN_LAYER_QUANTIZE, 2, &p);
            kiln__value in[2] = {lh_val(KILN_FLOAT32, DIMS(2), x), lh_val(KILN_FLOAT32, DIMS0, &s)}, y;
            KT_OK(lh_run(&l, in, &y));
            double a = decode_float(yt, get_code(y.data, yt, 0)), b = decode_float(yt, get_code(y.data, yt, 1));
            if (sat) KT_CHECK(a == float_max(yt) && b == -float_max(yt));
            else if (yt == KILN_FP8_E4M3FN) KT_CHECK(isnan(a) && isnan(b));
            else KT_CHECK(a == INFINITY && b == -INFINITY);
            free(y.data);
        }
}

/* float16 x and scale divide in float16 (numpy's result dtype), which rounds before rint. */
static void test_quantize_f16(void) {
    for (int it = 0; it < 20; it++) {
        int64_t n = kt_randi(1, 3000);
        uint16_t *x = malloc(sizeof(uint16_t) * (size_t)n), s = kiln__float_to_half(kt_randf(0.05f, 0.3f));
        for (int64_t i = 0; i < n; i++) x[i] = kiln__float_to_half(kt_randf(-30, 30));
        kiln__quant_params p = {.axis = 1, .out_dtype = KILN_INT8, .saturate = 1};
        kiln_layer l = quant_layer(KILN_LAYER_QUANTIZE, 2, &p);
        kiln__value in[2] = {lh_val(KILN_FLOAT16, DIMS(n), x), lh_val(KILN_FLOAT16, DIMS(1), &s)}, y;
        KT_OK(lh_run(&l, in, &y));
        int64_t bad = 0;
        for (int64_t i = 0; i < n; i++) {
            float q = kiln__half_to_float(kiln__float_to_half(kiln__half_to_float(x[i]) / kiln__half_to_float(s)));
            float r = nearbyintf(q);
            r = r < -128 ? -128 : r > 127 ? 127 : r;
            bad += ((int8_t *)y.data)[i] != (int8_t)r;
        }
        KT_CHECK(bad == 0);
        free(y.data);
        free(x);
    }
}

/* ---------------------------------------------------------------- dequantize */

static void test_dequantize(void) {
    static const kiln_dtype types[11] = {KILN_INT8, KILN_UINT8, KILN_INT16,     KILN_UINT16,   KILN_INT4,    KILN_UINT4,
                                         KILN_INT2, KILN_UINT2, KILN_FP8_E4M3FN, KILN_FP8_E5M2, KILN_FP4_E2M1};
    for (int it = 0; it < 110; it++) {
        quant_case c = rand_case(it);
        kiln_dtype xt = types[it % 11];
        bool is_float = xt == KILN_FP8_E4M3FN || xt == KILN_FP8_E5M2 || xt == KILN_FP4_E2M1;
        bool has_zp = it % 3 != 1, half_out = it % 4 == 2;
        int64_t n = kiln__dims_volume(&c.x), ns = kiln__dims_volume(&c.s);
        size_t xbytes, zbytes;
        kiln__dtype_bytes(xt, n, &xbytes);
        kiln__dtype_bytes(xt, ns, &zbytes);
        uint8_t *x = malloc(xbytes), *z = calloc(zbytes, 1);
        float *s = malloc(sizeof(float) * (size_t)ns);
        uint32_t mask = bits_of(xt) == 16 ? 0xffff : (1u << bits_of(xt)) - 1;
        for (int64_t i = 0; i < n; i++) {
            uint32_t code = (uint32_t)kt_rand_u64() & mask;
            if (xt == KILN_FP8_E4M3FN && (code & 0x7f) == 0x7f) code = 0; /* NaN */
            if (xt == KILN_FP8_E5M2 && (code & 0x7c) == 0x7c) code = 0;   /* inf, NaN */
            put_code(x, xt, i, code);
        }
        for (int64_t i = 0; i < ns; i++) {
            s[i] = half_out ? kt_randf(-0.5f, 0.5f) : kt_randf(-2, 2); /* float16 outputs stay finite */
            /* Float zero points must be 0 and are ignored (as ONNX's reference does). */
            put_code(z, xt, i, is_float ? 0 : (uint32_t)kt_rand_u64() & mask);
        }
        kiln__quant_params p = {.axis = c.axis, .block_size = c.block, .out_dtype = half_out ? KILN_FLOAT16 : 0};
        kiln_layer l = quant_layer(KILN_LAYER_DEQUANTIZE, has_zp ? 3 : 2, &p);
        kiln__value in[3] = {lh_val(xt, c.x, x), lh_val(KILN_FLOAT32, c.s, s), lh_val(xt, c.s, z)}, y;
        KT_OK(lh_run(&l, in, &y));
        KT_CHECK(y.dtype == (half_out ? KILN_FLOAT16 : KILN_FLOAT32));
        float *got = malloc(sizeof(float) * (size_t)n), *want = malloc(sizeof(float) * (size_t)n);
        for (int64_t i = 0; i < n; i++) {
            int64_t si = scale_index(&c.x, &c.s, c.mode, c.axis, c.block, i);
            uint32_t code = get_code(x, xt, i);
            float v = is_float ? (float)decode_float(xt, code) : (float)code_to_int(xt, code);
            if (has_zp && !is_float) v -= (float)code_to_int(xt, get_code(z, xt, si));
            want[i] = v * s[si];
            if (half_out) want[i] = kiln__half_to_float(kiln__float_to_half(want[i]));
            got[i] = half_out ? kiln__half_to_float(((uint16_t *)y.data)[i]) : ((float *)y.data)[i];
        }
        kt_close(kiln_dtype_name(xt), got, want, n, 0, 0);
        free(got);
        free(want);
        free(y.data);
        free(x);
        free(z);
        free(s);
    }
}

/* ---------------------------------------------------------------- bitcast */

static void test_bitcast(void) {
    int64_t n = kt_randi(1, 5000);
    float *x = malloc(sizeof(float) * (size_t)n);
    lh_fill_bytes(x, sizeof(float) * (size_t)n); /* any bits, NaNs included, come through unchanged */
    kiln__bitcast_params p = {.to = KILN_INT32};
    kiln_layer l = lh_layer(KILN_LAYER_BITCAST, 1);
    memcpy(l.p.bytes, &p, sizeof p);
    kiln__value in = lh_val(KILN_FLOAT32, DIMS(n), x), y;
    KT_OK(lh_run(&l, &in, &y));
    KT_CHECK(y.dtype == KILN_INT32 && y.bytes == sizeof(float) * (size_t)n);
    KT_CHECK(memcmp(y.data, x, y.bytes) == 0);
    free(y.data);
    /* widths must match */
    p.to = KILN_INT64;
    memcpy(l.p.bytes, &p, sizeof p);
    KT_STATUS(lh_infer(&l, &in, &y), KILN_INVALID_ARGUMENT);
    KT_CHECK(lh_names_layer());
    free(x);
}

/* ---------------------------------------------------------------- infer errors */

static void test_infer_errors(void) {
    float f[24] = {0};
    uint8_t u[24] = {0};
    kiln__value y;
    kiln__quant_params p = {.axis = 1, .saturate = 1};
    kiln_layer q = quant_layer(KILN_LAYER_QUANTIZE, 3, &p);
    /* per-axis scale of the wrong length */
    kiln__value a[3] = {lh_val(KILN_FLOAT32, DIMS(2, 3), f), lh_val(KILN_FLOAT32, DIMS(2), f),
                        lh_val(KILN_UINT8, DIMS(2), u)};
    KT_STATUS(lh_infer(&q, a, &y), KILN_INVALID_ARGUMENT);
    KT_CHECK(lh_names_layer());
    /* zero point of another shape than the scale */
    a[1] = lh_val(KILN_FLOAT32, DIMS(3), f);
    KT_STATUS(lh_infer(&q, a, &y), KILN_INVALID_ARGUMENT);
    a[2] = lh_val(KILN_UINT8, DIMS(3), u);
    KT_OK(lh_infer(&q, a, &y));
    KT_CHECK(y.dtype == KILN_UINT8 && kiln__dims_equal(&y.dims, &a[0].dims));
    /* output_dtype that disagrees with the zero point's dtype */
    p.out_dtype = KILN_INT8;
    q = quant_layer(KILN_LAYER_QUANTIZE, 3, &p);
    KT_STATUS(lh_infer(&q, a, &y), KILN_INVALID_ARGUMENT);
    /* not a quantized output type */
    p.out_dtype = KILN_FLOAT32;
    q = quant_layer(KILN_LAYER_QUANTIZE, 2, &p);
    KT_STATUS(lh_infer(&q, a, &y), KILN_UNSUPPORTED);
    /* blocked: the scale's blocked dim must be ceil(dim / block_size) */
    p = (kiln__quant_params){.axis = 1, .block_size = 2, .saturate = 1};
    q = quant_layer(KILN_LAYER_QUANTIZE, 2, &p);
    kiln__value b[2] = {lh_val(KILN_FLOAT32, DIMS(2, 5), f), lh_val(KILN_FLOAT32, DIMS(2, 2), f)};
    KT_STATUS(lh_infer(&q, b, &y), KILN_INVALID_ARGUMENT);
    b[1] = lh_val(KILN_FLOAT32, DIMS(2, 3), f);
    KT_OK(lh_infer(&q, b, &y));
    /* axis out of range only matters beyond per-tensor */
    p = (kiln__quant_params){.axis = 5, .saturate = 1};
    q = quant_layer(KILN_LAYER_QUANTIZE, 2, &p);
    kiln__value c[2] = {lh_val(KILN_FLOAT32, DIMS(2, 3), f), lh_val(KILN_FLOAT32, DIMS0, f)};
    KT_OK(lh_infer(&q, c, &y));
    c[1] = lh_val(KILN_FLOAT32, DIMS(3), f);
    KT_STATUS(lh_infer(&q, c, &y), KILN_INVALID_ARGUMENT);
    /* dequantize: float input, and a zero point of another dtype than x */
    p = (kiln__quant_params){.axis = 1};
    kiln_layer d = quant_layer(KILN_LAYER_DEQUANTIZE, 3, &p);
    kiln__value e[3] = {lh_val(KILN_FLOAT32, DIMS(4), f), lh_val(KILN_FLOAT32, DIMS0, f),
                        lh_val(KILN_FLOAT32, DIMS0, f)};
    KT_STATUS(lh_infer(&d, e, &y), KILN_INVALID_ARGUMENT);
    KT_CHECK(lh_names_layer());
    e[0] = lh_val(KILN_INT8, DIMS(4), u);
    e[2] = lh_val(KILN_UINT8, DIMS0, u);
    KT_STATUS(lh_infer(&d, e, &y), KILN_INVALID_ARGUMENT);
    e[2] = lh_val(KILN_INT8, DIMS0, u);
    KT_OK(lh_infer(&d, e, &y));
    KT_CHECK(y.dtype == KILN_FLOAT32);
    /* integer scale */
    e[1] = lh_val(KILN_INT32, DIMS0, u);
    KT_STATUS(lh_infer(&d, e, &y), KILN_INVALID_ARGUMENT);
}

int main(void) {
    lh_init();
    test_quantize_int();
    test_quantize_float();
    test_quantize_f16();
    test_dequantize();
    test_bitcast();
    test_infer_errors();
    lh_done();
    return kt_summary("test_quant_layers");
}
