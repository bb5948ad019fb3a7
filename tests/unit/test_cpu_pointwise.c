/* Pointwise layers (elementwise, activation, unary, scale): each CPU kernel against reference
 * loops written here, on fresh random inputs with edge values (NaN, inf, -0, integer extremes),
 * over many broadcast patterns and every dtype the op allows; shape/dtype inference and its
 * errors; the network API; an end-to-end engine run. */
#include "layer_harness.h"
#include "cpu/vmath.h"

#include <float.h>

LH_LINK(elementwise)
LH_LINK(activation)
LH_LINK(unary)
LH_LINK(scale)
LH_LINK(constant)

/* ---------------------------------------------------------------- test-side element access */

static size_t esz(kiln_dtype t) { return kiln_dtype_bits(t) / 8; }

static double ld(const void *p, kiln_dtype t, int64_t i) {
    switch (t) {
    case KILN_FLOAT32: return ((const float *)p)[i];
    case KILN_FLOAT64: return ((const double *)p)[i];
    case KILN_FLOAT16: return kiln__half_to_float(((const uint16_t *)p)[i]);
    case KILN_BFLOAT16: return kiln__bf16_to_float(((const uint16_t *)p)[i]);
    case KILN_UINT64: return (double)((const uint64_t *)p)[i];
    default: break;
    }
    switch (t) {
    case KILN_INT8: return ((const int8_t *)p)[i];
    case KILN_UINT8: return ((const uint8_t *)p)[i];
    case KILN_INT16: return ((const int16_t *)p)[i];
    case KILN_UINT16: return ((const uint16_t *)p)[i];
    case KILN_INT32: return ((const int32_t *)p)[i];
    case KILN_UINT32: return ((const uint32_t *)p)[i];
    case KILN_INT64: return (double)((const int64_t *)p)[i];
    case KILN_BOOL: return ((const uint8_t *)p)[i];
    default: return NAN;
    }
}

static int64_t ldi(const void *p, kiln_dtype t, int64_t i) {
    switch (t) {
    case KILN_INT8: return ((const int8_t *)p)[i];
    case KILN_UINT8: return ((const uint8_t *)p)[i];
    case KILN_INT16: return ((const int16_t *)p)[i];
    case KILN_UINT16: return ((const uint16_t *)p)[i];
    case KILN_INT32: return ((const int32_t *)p)[i];
    case KILN_UINT32: return ((const uint32_t *)p)[i];
    case KILN_INT64: return ((const int64_t *)p)[i];
    case KILN_UINT64: return (int64_t)((const uint64_t *)p)[i];
    case KILN_BOOL: return ((const uint8_t *)p)[i];
    default: return (int64_t)ld(p, t, i);
    }
}

static void st(void *p, kiln_dtype t, int64_t i, double v) {
    switch (t) {
    case KILN_FLOAT32: ((float *)p)[i] = (float)v; break;
    case KILN_FLOAT64: ((double *)p)[i] = v; break;
    case KILN_FLOAT16: ((uint16_t *)p)[i] = kiln__float_to_half((float)v); break;
    case KILN_BFLOAT16: ((uint16_t *)p)[i] = kiln__float_to_bf16((float)v); break;
    default: break;
    }
}

static void sti(void *p, kiln_dtype t, int64_t i, int64_t v) {
    switch (t) {
    case KILN_INT8: ((int8_t *)p)[i] = (int8_t)v; break;
    case KILN_UINT8: ((uint8_t *)p)[i] = (uint8_t)v; break;
    case KILN_INT16: ((int16_t *)p)[i] = (int16_t)v; break;
    case KILN_UINT16: ((uint16_t *)p)[i] = (uint16_t)v; break;
    case KILN_INT32: ((int32_t *)p)[i] = (int32_t)v; break;
    case KILN_UINT32: ((uint32_t *)p)[i] = (uint32_t)v; break;
    case KILN_INT64: ((int64_t *)p)[i] = v; break;
    case KILN_UINT64: ((uint64_t *)p)[i] = (uint64_t)v; break;
    case KILN_BOOL: ((uint8_t *)p)[i] = v != 0; break;
    default: st(p, t, i, (double)v); break;
    }
}

static int bits_of(kiln_dtype t) { return (int)kiln_dtype_bits(t); }
static bool is_float(kiln_dtype t) { return kiln__dtype_is_float(t); }
static bool is_signed_int(kiln_dtype t) { return kiln__dtype_is_integer(t) && kiln__dtype_is_signed(t); }

/* The value v keeps in a `bits`-wide integer (two's complement, or zero-extended unsigned). */
static int64_t wrap(uint64_t v, int bits, bool sgn) {
    if (bits == 64) return (int64_t)v;
    uint64_t m = v & ((1ull << bits) - 1);
    if (sgn && (m >> (bits - 1))) return (int64_t)(m | ~((1ull << bits) - 1));
    return (int64_t)m;
}

/* Random value of dtype t; edge values (NaN, inf, -0, extremes) now and then when `edges`. */
static void fill_random(void *p, kiln_dtype t, int64_t n, bool edges, double lo, double hi) {
    for (int64_t i = 0; i < n; i++) {
        int r = (int)kt_randi(0, 19);
        if (t == KILN_BOOL) {
            sti(p, t, i, kt_randi(0, 1));
        } else if (is_float(t)) {
            double v = kt_randf((float)lo, (float)hi);
            if (edges && r == 0) v = NAN;
            if (edges && r == 1) v = kt_randi(0, 1) ? INFINITY : -INFINITY;
            if (edges && r == 2) v = -0.0;
            if (r == 3) v = (double)kt_randi(-3, 3); /* exact ties for min/max/equal */
            st(p, t, i, v);
        } else {
            int bits = bits_of(t);
            bool sgn = is_signed_int(t);
            int64_t v = kt_randi((int64_t)lo, (int64_t)hi);
            if (edges && r == 0) v = sgn ? wrap(1ull << (bits - 1), bits, true) : 0; /* min */
            if (edges && r == 1) v = sgn ? wrap((1ull << (bits - 1)) - 1, bits, true) : wrap(~0ull, bits, false);
            if (!sgn && v < 0) v = -v;
            sti(p, t, i, v);
        }
    }
}

static void *alloc_fill(kiln_dtype t, const kiln_dims *d, bool edges, double lo, double hi) {
    int64_t n = kiln__dims_volume(d);
    void *p = malloc((size_t)(n ? n : 1) * esz(t));
    fill_random(p, t, n, edges, lo, hi);
    return p;
}

/* Offset in an input of dims `in` for output multi-index c of rank r (numpy broadcasting). */
static int64_t bcast_offset(const int64_t *c, int32_t r, const kiln_dims *in) {
    int64_t off = 0;
    for (int32_t k = 0; k < in->nb_dims; k++) {
        int64_t ck = c[r - in->nb_dims + k];
        off = off * in->d[k] + (in->d[k] == 1 ? 0 : ck);
    }
    return off;
}

/* Float closeness with NaN == NaN, infinities equal by sign. */
static bool close_to(double got, double want, double rtol, double atol) {
    if (isnan(want)) return isnan(got);
    if (isinf(want)) return got == want;
    return fabs(got - want) <= atol + rtol * fabs(want);
}

/* ---------------------------------------------------------------- elementwise */

static double ref_float_op(int op, double x, double y, kiln_dtype t) {
    (void)t;
    switch (op) {
    case KILN_EW_ADD: return x + y;
    case KILN_EW_SUB: return x - y;
    case KILN_EW_MUL: return x * y;
    case KILN_EW_DIV: return x / y;
    case KILN_EW_POW: return pow(x, y);
    case KILN_EW_MIN: return isnan(x) || isnan(y) ? NAN : x < y ? x : y;
    case KILN_EW_MAX: return isnan(x) || isnan(y) ? NAN : x > y ? x : y;
    case KILN_EW_MOD: {
        double r = fmod(x, y);
        if (r != 0 && ((r < 0) != (y < 0))) r += y;
        return r == 0 ? copysign(0.0, y) : r;
    }
    case KILN_EW_FMOD: return fmod(x, y);
    case KILN_EW_EQUAL: return x == y;
    case KILN_EW_LESS: return x < y;
    case KILN_EW_LESS_EQUAL: return x <= y;
    case KILN_EW_GREATER: return x > y;
    case KILN_EW_GREATER_EQUAL: return x >= y;
    default: return NAN;
    }
}

static int64_t ref_int_op(int op, int64_t x, int64_t y, int bits, bool sgn) {
    uint64_t ux = (uint64_t)x, uy = (uint64_t)y;
    bool lt = sgn ? x < y : ux < uy;
    switch (op) {
    case KILN_EW_ADD: return wrap(ux + uy, bits, sgn);
    case KILN_EW_SUB: return wrap(ux - uy, bits, sgn);
    case KILN_EW_MUL: return wrap(ux * uy, bits, sgn);
    case KILN_EW_DIV:
        if (y == 0) return 0;
        if (sgn && y == -1) return wrap(0 - ux, bits, true);
        return sgn ? x / y : (int64_t)(ux / uy);
    case KILN_EW_MOD:
    case KILN_EW_FMOD: {
        if (y == 0 || (sgn && y == -1)) return 0;
        if (!sgn) return (int64_t)(ux % uy);
        int64_t r = x % y;
        if (op == KILN_EW_MOD && r != 0 && ((r < 0) != (y < 0))) r += y;
        return r;
    }
    case KILN_EW_POW: {
        if (sgn && y < 0) return x == 1 ? 1 : x == -1 ? ((y & 1) ? -1 : 1) : 0;
        uint64_t r = 1;
        for (uint64_t k = 0; k < uy; k++) r *= ux;
        return wrap(r, bits, sgn);
    }
    case KILN_EW_MIN: return lt ? x : y;
    case KILN_EW_MAX: return lt ? y : x;
    case KILN_EW_EQUAL: return x == y;
    case KILN_EW_LESS: return lt;
    case KILN_EW_LESS_EQUAL: return lt || x == y;
    case KILN_EW_GREATER: return !lt && x != y;
    case KILN_EW_GREATER_EQUAL: return !lt;
    case KILN_EW_BIT_AND: return wrap(ux & uy, bits, sgn);
    case KILN_EW_BIT_OR: return wrap(ux | uy, bits, sgn);
    case KILN_EW_BIT_XOR: return wrap(ux ^ uy, bits, sgn);
    case KILN_EW_SHIFT_LEFT: return (sgn && y < 0) || uy >= (uint64_t)bits ? 0 : wrap(ux << uy, bits, sgn);
    case KILN_EW_SHIFT_RIGHT:
        if (sgn && y < 0) return 0;
        if (uy >= (uint64_t)bits) return sgn && x < 0 ? -1 : 0;
        return sgn ? x >> y : (int64_t)(ux >> uy);
    case KILN_EW_AND: return x && y;
    case KILN_EW_OR: return x || y;
    case KILN_EW_XOR: return (x != 0) != (y != 0);
    default: return 0;
    }
}

static const kiln_dtype ALL_TYPES[] = {KILN_FLOAT32, KILN_FLOAT16, KILN_BFLOAT16, KILN_FLOAT64, KILN_INT8,
                                       KILN_UINT8,   KILN_INT16,   KILN_UINT16,   KILN_INT32,   KILN_UINT32,
                                       KILN_INT64,   KILN_UINT64,  KILN_BOOL};

static bool op_allows(int op, kiln_dtype t) {
    if (op >= KILN_EW_AND && op <= KILN_EW_XOR) return t == KILN_BOOL;
    if (op >= KILN_EW_BIT_AND) return kiln__dtype_is_integer(t);
    if (t == KILN_BOOL) return op == KILN_EW_EQUAL;
    return true;
}

static int g_ew_runs;

/* Runs op on random inputs of dims da, db (dtypes ta, tb) and checks every output element. */
static void check_ew(int op, kiln_dtype ta, kiln_dtype tb, kiln_dims da, kiln_dims db) {
    bool fl = is_float(ta);
    double lo = fl ? -4 : is_signed_int(ta) ? -100 : 0, hi = fl ? 4 : 100;
    double blo = lo, bhi = hi;
    if (op == KILN_EW_POW) {
        blo = is_float(tb) ? -2 : is_signed_int(tb) ? -2 : 0;
        bhi = is_float(tb) ? 3 : 5;
    }
    if (op == KILN_EW_SHIFT_LEFT || op == KILN_EW_SHIFT_RIGHT) {
        blo = is_signed_int(tb) ? -1 : 0;
        bhi = bits_of(tb) + 2;
    }
    bool edges = !(op == KILN_EW_POW && !fl);
    void *a = alloc_fill(ta, &da, edges, lo, hi), *b = alloc_fill(tb, &db, edges && op != KILN_EW_SHIFT_LEFT &&
                                                                             op != KILN_EW_SHIFT_RIGHT, blo, bhi);
    kiln_layer l = lh_layer(KILN_LAYER_ELEMENTWISE, 2);
    l.p.ew.op = op;
    kiln__value in[2] = {lh_val(ta, da, a), lh_val(tb, db, b)}, out;
    kiln_status s = lh_run(&l, in, &out);
    KT_OK(s);
    if (s != KILN_OK) {
        fprintf(stderr, "  op %d %s/%s\n", op, kiln_dtype_name(ta), kiln_dtype_name(tb));
        free(a);
        free(b);
        return;
    }
    g_ew_runs++;
    kiln_dims want;
    KT_CHECK(kiln__broadcast_dims(&da, &db, &want) && kiln__dims_equal(&out.dims, &want));
    bool to_bool = (op >= KILN_EW_EQUAL && op <= KILN_EW_XOR);
    KT_CHECK(out.dtype == (to_bool ? KILN_BOOL : ta));
    double rtol = ta == KILN_FLOAT16 ? 1e-3 : ta == KILN_BFLOAT16 ? 8e-3 : ta == KILN_FLOAT32 ? 1e-6 : 1e-13;
    if (op == KILN_EW_POW && ta != tb && ta == KILN_FLOAT32) rtol = 1e-6;
    int64_t n = kiln__dims_volume(&want), c[KILN_MAX_DIMS], bad = 0;
    for (int64_t i = 0; i < n && bad < 3; i++) {
        lh_unravel(i, &want, c);
        int64_t ia = bcast_offset(c, want.nb_dims, &da), ib = bcast_offset(c, want.nb_dims, &db);
        bool ok;
        double got = 0, ref = 0;
        if (fl) {
            double x = ld(a, ta, ia), y = ld(b, tb, ib);
            ref = ref_float_op(op, x, y, ta);
            got = ld(out.data, out.dtype, i);
            if (!to_bool && ta != KILN_FLOAT64) { /* the reference rounded to the output dtype */
                uint8_t tmp[8] = {0};
                st(tmp, ta, 0, ref);
                ref = ld(tmp, ta, 0);
            }
            ok = to_bool ? got == ref : close_to(got, ref, rtol, ta == KILN_FLOAT64 ? 1e-300 : 1e-30);
            /* Below the output's precision, the last bit of a difference of near-equal
             * values may differ after rounding once in float vs once in the narrow type. */
            if (!ok && !to_bool && (ta == KILN_FLOAT16 || ta == KILN_BFLOAT16))
                ok = close_to(got, ref, rtol, ta == KILN_FLOAT16 ? 1e-3 : 1e-2);
        } else if (op == KILN_EW_POW && is_float(tb)) {
            double x = (double)ldi(a, ta, ia), y = ld(b, tb, ib), p = pow(x, y);
            int64_t r = isnan(p) || fabs(p) > 9e18 ? INT64_MIN : (int64_t)p;
            got = (double)ldi(out.data, out.dtype, i);
            ref = (double)wrap((uint64_t)r, bits_of(ta), is_signed_int(ta));
            ok = got == ref;
        } else {
            int64_t x = ldi(a, ta, ia), y = ldi(b, tb, ib);
            int64_t r = ref_int_op(op, x, y, bits_of(ta), ta == KILN_BOOL ? false : is_signed_int(ta));
            if (op == KILN_EW_POW && tb != ta) { /* integer exponent of another width */
                if (is_signed_int(tb) && y < 0) {
                    r = x == 1 ? 1 : x == -1 ? ((y & 1) ? -1 : 1) : 0;
                    r = wrap((uint64_t)r, bits_of(ta), is_signed_int(ta));
                } else {
                    uint64_t p = 1;
                    for (int64_t k = 0; k < y; k++) p *= (uint64_t)x;
                    r = wrap(p, bits_of(ta), is_signed_int(ta));
                }
            }
            int64_t gi = ldi(out.data, out.dtype, i);
            got = (double)gi;
            ref = (double)r;
            ok = gi == r;
        }
        KT_CHECK(ok);
        if (!ok) {
            bad++;
            fprintf(stderr, "  op %d %s^%s at %lld: got %.17g want %.17g (a=%.17g b=%.17g)\n", op,
                    kiln_dtype_name(ta), kiln_dtype_name(tb), (long long)i, got, ref, ld(a, ta, ia), ld(b, tb, ib));
        }
    }
    free(out.data);
    free(a);
    free(b);
}

static void test_elementwise_all(void) {
    static const kiln_dims pats[][2] = {
        {{3, {2, 3, 4}}, {3, {2, 3, 4}}}, {{3, {2, 3, 4}}, {0, {0}}},       {{0, {0}}, {3, {2, 3, 4}}},
        {{3, {2, 3, 4}}, {1, {4}}},       {{3, {2, 3, 4}}, {2, {3, 1}}},    {{3, {1, 3, 1}}, {3, {2, 1, 4}}},
        {{2, {5, 1}}, {2, {1, 6}}},       {{4, {2, 3, 4, 5}}, {4, {1, 3, 1, 1}}}, {{2, {4, 0}}, {1, {1}}},
        {{1, {7}}, {1, {1}}},
    };
    for (int op = 0; op < KILN_EW_COUNT; op++)
        for (size_t t = 0; t < KILN__ARRAY_LEN(ALL_TYPES); t++) {
            if (!op_allows(op, ALL_TYPES[t])) continue;
            for (size_t p = 0; p < KILN__ARRAY_LEN(pats); p++)
                check_ew(op, ALL_TYPES[t], ALL_TYPES[t], pats[p][0], pats[p][1]);
        }
    /* Large enough for the threaded path, same shape and per-channel. */
    int big_ops[] = {KILN_EW_ADD, KILN_EW_MUL, KILN_EW_DIV, KILN_EW_MAX, KILN_EW_LESS};
    for (size_t k = 0; k < KILN__ARRAY_LEN(big_ops); k++) {
        check_ew(big_ops[k], KILN_FLOAT32, KILN_FLOAT32, (kiln_dims){2, {64, 1000}}, (kiln_dims){2, {64, 1000}});
        check_ew(big_ops[k], KILN_FLOAT32, KILN_FLOAT32, (kiln_dims){4, {4, 16, 32, 33}},
                 (kiln_dims){3, {16, 1, 1}});
        check_ew(big_ops[k], KILN_INT32, KILN_INT32, (kiln_dims){2, {300, 1}}, (kiln_dims){2, {1, 257}});
        check_ew(big_ops[k], KILN_FLOAT16, KILN_FLOAT16, (kiln_dims){3, {8, 100, 50}}, (kiln_dims){1, {50}});
        /* rows long enough to be cut into pieces the threads share (the last piece shorter) */
        check_ew(big_ops[k], KILN_FLOAT32, KILN_FLOAT32, (kiln_dims){1, {70001}}, (kiln_dims){1, {1}});
        check_ew(big_ops[k], KILN_FLOAT32, KILN_FLOAT32, (kiln_dims){2, {3, 40007}}, (kiln_dims){2, {1, 40007}});
        check_ew(big_ops[k], KILN_FLOAT16, KILN_FLOAT16, (kiln_dims){2, {2, 20000}}, (kiln_dims){2, {2, 20000}});
    }
    /* Pow with an exponent dtype of its own (ONNX Pow's T1/T2). */
    kiln_dims d = {3, {2, 3, 4}}, e = {1, {4}};
    check_ew(KILN_EW_POW, KILN_FLOAT32, KILN_INT64, d, e);
    check_ew(KILN_EW_POW, KILN_FLOAT32, KILN_FLOAT64, d, d);
    check_ew(KILN_EW_POW, KILN_FLOAT16, KILN_FLOAT32, d, e);
    check_ew(KILN_EW_POW, KILN_INT32, KILN_FLOAT32, d, e);
    check_ew(KILN_EW_POW, KILN_INT64, KILN_INT32, d, e);
    check_ew(KILN_EW_POW, KILN_INT32, KILN_UINT8, d, d);
    KT_CHECK(g_ew_runs > 1000);
}

/* Exact values the random runs may miss: signs of integer division and mod, INT_MIN / -1. */
static void test_elementwise_int_signs(void) {
    int32_t a[] = {7, -7, 7, -7, INT32_MIN, INT32_MIN, 5, 0};
    int32_t b[] = {2, 2, -2, -2, -1, -1, 0, 3};
    struct {
        int op;
        int32_t want[8];
    } cases[] = {
        {KILN_EW_DIV, {3, -3, -3, 3, INT32_MIN, INT32_MIN, 0, 0}},
        {KILN_EW_MOD, {1, 1, -1, -1, 0, 0, 0, 0}},
        {KILN_EW_FMOD, {1, -1, 1, -1, 0, 0, 0, 0}},
    };
    for (size_t k = 0; k < KILN__ARRAY_LEN(cases); k++) {
        kiln_layer l = lh_layer(KILN_LAYER_ELEMENTWISE, 2);
        l.p.ew.op = cases[k].op;
        kiln__value in[2] = {lh_val(KILN_INT32, (kiln_dims){1, {8}}, a), lh_val(KILN_INT32, (kiln_dims){1, {8}}, b)},
                    out;
        KT_OK(lh_run(&l, in, &out));
        KT_CHECK(memcmp(out.data, cases[k].want, sizeof a) == 0);
        free(out.data);
    }
    /* Float mod follows the divisor's sign, fmod the dividend's. */
    float fa[] = {7.5f, -7.5f, 7.5f, -7.5f}, fb[] = {2, 2, -2, -2};
    float want_mod[] = {1.5f, 0.5f, -0.5f, -1.5f}, want_fmod[] = {1.5f, -1.5f, 1.5f, -1.5f};
    for (int k = 0; k < 2; k++) {
        kiln_layer l = lh_layer(KILN_LAYER_ELEMENTWISE, 2);
        l.p.ew.op = k ? KILN_EW_FMOD : KILN_EW_MOD;
        kiln__value in[2] = {lh_val(KILN_FLOAT32, (kiln_dims){1, {4}}, fa),
                             lh_val(KILN_FLOAT32, (kiln_dims){1, {4}}, fb)},
                    out;
        KT_OK(lh_run(&l, in, &out));
        KT_CHECK(memcmp(out.data, k ? want_fmod : want_mod, sizeof fa) == 0);
        free(out.data);
    }
}

static void expect_ew_error(int op, kiln_dtype ta, kiln_dims da, kiln_dtype tb, kiln_dims db) {
    kiln_layer l = lh_layer(KILN_LAYER_ELEMENTWISE, 2);
    l.p.ew.op = op;
    kiln__value in[2] = {lh_val(ta, da, NULL), lh_val(tb, db, NULL)}, out;
    KT_STATUS(lh_infer(&l, in, &out), KILN_INVALID_ARGUMENT);
    KT_CHECK(lh_names_layer());
}

static void test_elementwise_infer(void) {
    kiln_dims d = {2, {2, 3}};
    expect_ew_error(KILN_EW_ADD, KILN_FLOAT32, d, KILN_INT32, d);
    expect_ew_error(KILN_EW_ADD, KILN_FLOAT32, d, KILN_FLOAT32, (kiln_dims){1, {4}});
    expect_ew_error(KILN_EW_ADD, KILN_FLOAT32, (kiln_dims){2, {2, 3}}, KILN_FLOAT32, (kiln_dims){2, {3, 3}});
    expect_ew_error(KILN_EW_AND, KILN_FLOAT32, d, KILN_FLOAT32, d);
    expect_ew_error(KILN_EW_BIT_AND, KILN_FLOAT32, d, KILN_FLOAT32, d);
    expect_ew_error(KILN_EW_SHIFT_LEFT, KILN_BOOL, d, KILN_BOOL, d);
    expect_ew_error(KILN_EW_ADD, KILN_BOOL, d, KILN_BOOL, d);
    expect_ew_error(KILN_EW_LESS, KILN_BOOL, d, KILN_BOOL, d);
    expect_ew_error(KILN_EW_POW, KILN_BOOL, d, KILN_FLOAT32, d);
    expect_ew_error(KILN_EW_POW, KILN_FLOAT32, d, KILN_BOOL, d);
    expect_ew_error(KILN_EW_COUNT, KILN_FLOAT32, d, KILN_FLOAT32, d);
    expect_ew_error(-1, KILN_FLOAT32, d, KILN_FLOAT32, d);
    /* Unknown dims broadcast against known ones. */
    kiln_layer l = lh_layer(KILN_LAYER_ELEMENTWISE, 2);
    l.p.ew.op = KILN_EW_LESS;
    kiln__value in[2] = {lh_val(KILN_FLOAT32, (kiln_dims){3, {-1, 1, 4}}, NULL),
                         lh_val(KILN_FLOAT32, (kiln_dims){2, {3, 1}}, NULL)},
                out;
    KT_OK(lh_infer(&l, in, &out));
    KT_CHECK(out.dtype == KILN_BOOL && out.dims.nb_dims == 3 && out.dims.d[0] == -1 && out.dims.d[1] == 3 &&
             out.dims.d[2] == 4);
}

/* ---------------------------------------------------------------- activation */

static double ref_act(int kind, double a, double b, double x) {
    if (isnan(x)) return kind == KILN_ACT_THRESHOLDED_RELU ? 0 : x; /* NaN propagates, as in numpy */
    switch (kind) {
    case KILN_ACT_RELU: return isnan(x) ? x : x > 0 ? x : 0;
    case KILN_ACT_SIGMOID: return 1 / (1 + exp(-x));
    case KILN_ACT_TANH: return tanh(x);
    case KILN_ACT_CLIP: return isnan(x) ? x : fmin(fmax(x, a), b);
    case KILN_ACT_LEAKY_RELU: return x >= 0 ? x : a * x;
    case KILN_ACT_ELU: return x >= 0 ? x : a * (exp(x) - 1);
    case KILN_ACT_SELU: return b * (x >= 0 ? x : a * (exp(x) - 1));
    case KILN_ACT_SOFTPLUS: return log(1 + exp(x));
    case KILN_ACT_SOFTSIGN: return x / (1 + fabs(x));
    case KILN_ACT_GELU_ERF: return 0.5 * x * (1 + erf(x / sqrt(2.0)));
    case KILN_ACT_GELU_TANH: return 0.5 * x * (1 + tanh(sqrt(2 / M_PI) * (x + 0.044715 * x * x * x)));
    case KILN_ACT_SILU: return x / (1 + exp(-x));
    case KILN_ACT_HARD_SIGMOID: return fmax(0, fmin(1, a * x + b));
    case KILN_ACT_HARD_SWISH: return x * fmax(0, fmin(1, x / 6 + 0.5));
    case KILN_ACT_THRESHOLDED_RELU: return x > a ? x : 0;
    case KILN_ACT_CELU: return fmax(0, x) + fmin(0, a * (exp(x / a) - 1));
    case KILN_ACT_MISH: return x * tanh(log(1 + exp(x)));
    case KILN_ACT_SCALED_TANH: return a * tanh(b * x);
    default: return NAN;
    }
}

static void check_act(int kind, kiln_dtype t, kiln_dims d, float a, float b) {
    int64_t n = kiln__dims_volume(&d);
    void *x = malloc((size_t)n * esz(t));
    for (int64_t i = 0; i < n; i++) st(x, t, i, i % 97 == 5 ? NAN : kt_randf(-8, 8));
    kiln_layer l = lh_layer(KILN_LAYER_ACTIVATION, 1);
    l.p.act = (kiln__activation_params){kind, a, b};
    kiln__value in = lh_val(t, d, x), out;
    KT_OK(lh_run(&l, &in, &out));
    KT_CHECK(out.dtype == t && kiln__dims_equal(&out.dims, &d));
    double rtol = t == KILN_FLOAT16 ? 2e-3 : t == KILN_BFLOAT16 ? 1.6e-2 : t == KILN_FLOAT32 ? 2e-6 : 1e-12;
    double atol = t == KILN_FLOAT64 ? 1e-15 : t == KILN_FLOAT32 ? 2e-7 : 1e-3;
    int bad = 0;
    for (int64_t i = 0; i < n && bad < 3; i++) {
        double xi = ld(x, t, i), want = ref_act(kind, a, b, xi), got = ld(out.data, t, i);
        if (!close_to(got, want, rtol, atol)) {
            bad++;
            fprintf(stderr, "  act %d %s x=%.9g: got %.9g want %.9g\n", kind, kiln_dtype_name(t), xi, got, want);
        }
        KT_CHECK(close_to(got, want, rtol, atol));
    }
    free(out.data);
    free(x);
}

static void test_activation(void) {
    const kiln_dtype types[] = {KILN_FLOAT32, KILN_FLOAT16, KILN_BFLOAT16, KILN_FLOAT64};
    const float alpha[KILN_ACT_COUNT] = {0, 0, 0, -1.5f, 0.1f, 1.2f, 1.6732632f, 0, 0, 0, 0, 0, 0.2f, 0, 1.0f, 0.7f, 0, 0.8f};
    const float beta[KILN_ACT_COUNT] = {0, 0, 0, 2.5f, 0, 0, 1.0507010f, 0, 0, 0, 0, 0, 0.5f, 0, 0, 0, 0, 1.3f};
    for (int k = 0; k < KILN_ACT_COUNT; k++)
        for (size_t t = 0; t < 4; t++) {
            check_act(k, types[t], (kiln_dims){2, {7, 33}}, alpha[k], beta[k]);
            if (t == 0) check_act(k, types[t], (kiln_dims){3, {4, 128, 130}}, alpha[k], beta[k]);
        }
    /* Extreme inputs stay finite where the function is. */
    float x[] = {-1000, 1000, -90, 90, -0.0f};
    int stable[] = {KILN_ACT_SIGMOID, KILN_ACT_SOFTPLUS, KILN_ACT_SILU, KILN_ACT_MISH};
    for (size_t k = 0; k < KILN__ARRAY_LEN(stable); k++)
        for (size_t i = 0; i < KILN__ARRAY_LEN(x); i++) KT_CHECK(isfinite(kiln__act_f32(stable[k], 0, 0, x[i])));
    KT_CHECK(kiln__act_f32(KILN_ACT_SOFTPLUS, 0, 0, 1000) == 1000);
    KT_CHECK(kiln__act_f32(KILN_ACT_SIGMOID, 0, 0, -1000) == 0);
    /* The fused-epilogue helper: none leaves data alone, a kind applies in place. */
    float v[5] = {-2, -0.5f, 0, 0.5f, 2};
    kiln__act none = {-1, 0, 0}, lrelu = {KILN_ACT_LEAKY_RELU, 0.25f, 0};
    kiln__apply_act_f32(&none, v, 5);
    KT_CHECK(v[0] == -2 && v[4] == 2);
    kiln__apply_act_f32(&lrelu, v, 5);
    KT_CHECK(v[0] == -0.5f && v[1] == -0.125f && v[3] == 0.5f && v[4] == 2);
    /* Relu and clip on signed integers. */
    int32_t xi[] = {-5, -1, 0, 3, 9, INT32_MIN};
    kiln_layer l = lh_layer(KILN_LAYER_ACTIVATION, 1);
    l.p.act = (kiln__activation_params){KILN_ACT_CLIP, -2.5f, 4};
    kiln__value in = lh_val(KILN_INT32, (kiln_dims){1, {6}}, xi), out;
    KT_OK(lh_run(&l, &in, &out));
    int32_t want_clip[] = {-2, -1, 0, 3, 4, -2};
    KT_CHECK(memcmp(out.data, want_clip, sizeof xi) == 0);
    free(out.data);
    int8_t x8[] = {-5, 7, 0, -128};
    l.p.act = (kiln__activation_params){KILN_ACT_RELU, 0, 0};
    in = lh_val(KILN_INT8, (kiln_dims){1, {4}}, x8);
    KT_OK(lh_run(&l, &in, &out));
    KT_CHECK(((int8_t *)out.data)[0] == 0 && ((int8_t *)out.data)[1] == 7 && ((int8_t *)out.data)[3] == 0);
    free(out.data);
    /* Errors: other kinds on integers, bool, kind out of range. */
    l.p.act.kind = KILN_ACT_SIGMOID;
    KT_STATUS(lh_infer(&l, &in, &out), KILN_INVALID_ARGUMENT);
    KT_CHECK(lh_names_layer());
    l.p.act.kind = KILN_ACT_RELU;
    in.dtype = KILN_BOOL;
    KT_STATUS(lh_infer(&l, &in, &out), KILN_INVALID_ARGUMENT);
    in.dtype = KILN_FLOAT32;
    l.p.act.kind = KILN_ACT_COUNT;
    KT_STATUS(lh_infer(&l, &in, &out), KILN_INVALID_ARGUMENT);
    KT_CHECK(lh_names_layer());
}

/* ---------------------------------------------------------------- unary */

static double ref_unary(int op, double x) {
    switch (op) {
    case KILN_UNARY_EXP: return exp(x);
    case KILN_UNARY_LOG: return log(x);
    case KILN_UNARY_SQRT: return sqrt(x);
    case KILN_UNARY_RECIP: return 1 / x;
    case KILN_UNARY_ABS: return fabs(x);
    case KILN_UNARY_NEG: return -x;
    case KILN_UNARY_SIN: return sin(x);
    case KILN_UNARY_COS: return cos(x);
    case KILN_UNARY_TAN: return tan(x);
    case KILN_UNARY_SINH: return sinh(x);
    case KILN_UNARY_COSH: return cosh(x);
    case KILN_UNARY_ASIN: return asin(x);
    case KILN_UNARY_ACOS: return acos(x);
    case KILN_UNARY_ATAN: return atan(x);
    case KILN_UNARY_ASINH: return asinh(x);
    case KILN_UNARY_ACOSH: return acosh(x);
    case KILN_UNARY_ATANH: return atanh(x);
    case KILN_UNARY_CEIL: return ceil(x);
    case KILN_UNARY_FLOOR: return floor(x);
    case KILN_UNARY_ROUND: {
        double r = floor(x), f = x - r; /* half to even, written out */
        if (f > 0.5 || (f == 0.5 && fmod(r, 2) != 0)) r += 1;
        return isnan(x) || isinf(x) ? x : r == 0 ? copysign(0.0, x) : r;
    }
    case KILN_UNARY_ERF: return erf(x);
    case KILN_UNARY_SIGN: return isnan(x) ? x : x > 0 ? 1 : x < 0 ? -1 : 0;
    case KILN_UNARY_ISNAN: return isnan(x);
    case KILN_UNARY_ISINF: return isinf(x) != 0;
    default: return NAN;
    }
}

/* want rounded once to the output dtype, by value (no punned buffers). */
static double round_to(kiln_dtype ty, double want) {
    float wf = (float)want;
    if (ty == KILN_FLOAT16) return kiln__half_to_float(kiln__float_to_half(wf));
    if (ty == KILN_BFLOAT16) return kiln__bf16_to_float(kiln__float_to_bf16(wf));
    return wf;
}

static void test_unary_float(void) {
    const kiln_dtype types[] = {KILN_FLOAT32, KILN_FLOAT16, KILN_BFLOAT16, KILN_FLOAT64};
    for (int op = 0; op < KILN_UNARY_COUNT; op++) {
        if (op == KILN_UNARY_NOT || op == KILN_UNARY_BIT_NOT) continue;
        double lo = -3, hi = 3;
        if (op == KILN_UNARY_LOG || op == KILN_UNARY_SQRT) lo = 0.01;
        if (op == KILN_UNARY_ASIN || op == KILN_UNARY_ACOS || op == KILN_UNARY_ATANH) lo = -0.99, hi = 0.99;
        if (op == KILN_UNARY_ACOSH) lo = 1, hi = 5;
        if (op == KILN_UNARY_TAN) lo = -1.4, hi = 1.4;
        for (size_t t = 0; t < 4; t++) {
            kiln_dtype ty = types[t];
            kiln_dims d = {2, {t == 0 ? 300 : 5, 77}};
            int64_t n = kiln__dims_volume(&d);
            void *x = malloc((size_t)n * esz(ty));
            for (int64_t i = 0; i < n; i++) {
                double v = kt_randf((float)lo, (float)hi);
                if (i % 50 == 1) v = NAN;
                if (i % 50 == 2) v = -0.0;
                if (i % 50 == 3) v = (i & 4) ? INFINITY : -INFINITY;
                if (i % 50 == 4) v = (double)(int)(v * 2) / 2; /* halves for round */
                st(x, ty, i, v);
            }
            kiln_layer l = lh_layer(KILN_LAYER_UNARY, 1);
            l.p.unary.op = op;
            kiln__value in = lh_val(ty, d, x), out;
            KT_OK(lh_run(&l, &in, &out));
            bool to_bool = op == KILN_UNARY_ISNAN || op == KILN_UNARY_ISINF;
            KT_CHECK(out.dtype == (to_bool ? KILN_BOOL : ty));
            double rtol = ty == KILN_FLOAT16 ? 1e-3 : ty == KILN_BFLOAT16 ? 8e-3 : ty == KILN_FLOAT32 ? 2e-6 : 1e-13;
            int bad = 0;
            for (int64_t i = 0; i < n && bad < 3; i++) {
                double xi = ld(x, ty, i), want = ref_unary(op, xi), got = ld(out.data, out.dtype, i);
                if (!to_bool && ty != KILN_FLOAT64) want = round_to(ty, want);
                bool ok = close_to(got, want, rtol, ty == KILN_FLOAT64 ? 1e-15 : 1e-6);
                if (op == KILN_UNARY_SIGN || op == KILN_UNARY_ROUND || op == KILN_UNARY_NEG || op == KILN_UNARY_ABS)
                    ok = ok && signbit(got) == signbit(want); /* exact, with the sign of zero */
                KT_CHECK(ok);
                if (!ok) {
                    bad++;
                    fprintf(stderr, "  unary %d %s x=%.9g: got %.9g want %.9g\n", op, kiln_dtype_name(ty), xi, got, want);
                }
            }
            free(out.data);
            free(x);
        }
    }
    /* Round: half to even, exactly. */
    float x[] = {0.5f, 1.5f, 2.5f, -0.5f, -1.5f, -2.5f, 2.4999998f, 3.5000002f};
    float want[] = {0, 2, 2, -0.0f, -2, -2, 2, 4};
    kiln_layer l = lh_layer(KILN_LAYER_UNARY, 1);
    l.p.unary.op = KILN_UNARY_ROUND;
    kiln__value in = lh_val(KILN_FLOAT32, (kiln_dims){1, {8}}, x), out;
    KT_OK(lh_run(&l, &in, &out));
    KT_CHECK(memcmp(out.data, want, sizeof x) == 0);
    free(out.data);
}

static void test_unary_int_bool(void) {
    const kiln_dtype ints[] = {KILN_INT8, KILN_UINT8, KILN_INT16, KILN_UINT16, KILN_INT32, KILN_UINT32, KILN_INT64, KILN_UINT64};
    const int ops[] = {KILN_UNARY_ABS, KILN_UNARY_NEG, KILN_UNARY_SIGN, KILN_UNARY_BIT_NOT};
    for (size_t t = 0; t < KILN__ARRAY_LEN(ints); t++)
        for (size_t k = 0; k < 4; k++) {
            kiln_dtype ty = ints[t];
            bool sgn = is_signed_int(ty);
            int bits = bits_of(ty);
            kiln_dims d = {1, {1000}};
            void *x = alloc_fill(ty, &d, true, sgn ? -1000 : 0, 1000);
            kiln_layer l = lh_layer(KILN_LAYER_UNARY, 1);
            l.p.unary.op = ops[k];
            kiln__value in = lh_val(ty, d, x), out;
            KT_OK(lh_run(&l, &in, &out));
            int bad = 0;
            for (int64_t i = 0; i < 1000 && bad < 3; i++) {
                int64_t v = ldi(x, ty, i), want;
                uint64_t u = (uint64_t)v;
                switch (ops[k]) {
                case KILN_UNARY_ABS: want = wrap(sgn && v < 0 ? 0 - u : u, bits, sgn); break;
                case KILN_UNARY_NEG: want = wrap(0 - u, bits, sgn); break;
                case KILN_UNARY_SIGN: want = sgn && v < 0 ? wrap((uint64_t)-1, bits, sgn) : v != 0; break;
                default: want = wrap(~u, bits, sgn); break;
                }
                int64_t got = ldi(out.data, ty, i);
                KT_CHECK(got == want);
                if (got != want) bad++;
            }
            free(out.data);
            free(x);
        }
    uint8_t b[] = {0, 1, 1, 0, 1};
    kiln_layer l = lh_layer(KILN_LAYER_UNARY, 1);
    l.p.unary.op = KILN_UNARY_NOT;
    kiln__value in = lh_val(KILN_BOOL, (kiln_dims){1, {5}}, b), out;
    KT_OK(lh_run(&l, &in, &out));
    KT_CHECK(out.dtype == KILN_BOOL && memcmp(out.data, (uint8_t[]){1, 0, 0, 1, 0}, 5) == 0);
    free(out.data);
    /* Errors name the layer. */
    struct {
        int op;
        kiln_dtype t;
    } bad[] = {{KILN_UNARY_NOT, KILN_FLOAT32}, {KILN_UNARY_EXP, KILN_INT32}, {KILN_UNARY_BIT_NOT, KILN_FLOAT32},
               {KILN_UNARY_ABS, KILN_BOOL},    {KILN_UNARY_COUNT, KILN_FLOAT32}, {KILN_UNARY_ISNAN, KILN_INT8}};
    for (size_t k = 0; k < KILN__ARRAY_LEN(bad); k++) {
        l.p.unary.op = bad[k].op;
        in = lh_val(bad[k].t, (kiln_dims){1, {5}}, NULL);
        KT_STATUS(lh_infer(&l, &in, &out), KILN_INVALID_ARGUMENT);
        KT_CHECK(lh_names_layer());
    }
}

/* ---------------------------------------------------------------- scale */

static void check_scale(int mode, int32_t axis, kiln_dtype t, kiln_dims d, bool has_shift, bool has_scale,
                        bool has_power) {
    int64_t n = kiln__dims_volume(&d), np = 1, inner = n;
    int32_t ax = axis < 0 ? axis + d.nb_dims : axis;
    if (mode == KILN_SCALE_CHANNEL) {
        np = d.d[ax];
        inner = 1;
        for (int32_t i = ax + 1; i < d.nb_dims; i++) inner *= d.d[i];
    } else if (mode == KILN_SCALE_ELEMENTWISE) {
        inner = 1;
        for (int32_t i = ax; i < d.nb_dims; i++) np *= d.d[i];
    }
    void *x = malloc((size_t)n * esz(t));
    for (int64_t i = 0; i < n; i++) st(x, t, i, kt_randf(0.1f, 3));
    float *prm[3];
    for (int k = 0; k < 3; k++) {
        prm[k] = malloc(sizeof(float) * (size_t)np);
        kt_fill(prm[k], np, k == 2 ? 0.5f : 0.1f, k == 2 ? 2 : 1.5f);
    }
    kiln_layer l = lh_layer(KILN_LAYER_SCALE, 4);
    l.p.scale = (kiln__scale_params){mode, axis};
    kiln_dims pd = {1, {np}};
    kiln__value in[4] = {lh_val(t, d, x), has_shift ? lh_val(KILN_FLOAT32, pd, prm[0]) : (kiln__value){0},
                         has_scale ? lh_val(KILN_FLOAT32, pd, prm[1]) : (kiln__value){0},
                         has_power ? lh_val(KILN_FLOAT32, pd, prm[2]) : (kiln__value){0}},
                out;
    KT_OK(lh_run(&l, in, &out));
    double rtol = t == KILN_FLOAT16 ? 2e-3 : t == KILN_FLOAT32 ? 1e-5 : 1e-12;
    int bad = 0;
    for (int64_t i = 0; i < n && bad < 3; i++) {
        int64_t c = (i / inner) % np;
        double v = ld(x, t, i) * (has_scale ? prm[1][c] : 1) + (has_shift ? prm[0][c] : 0);
        if (has_power) v = pow(v, prm[2][c]);
        double got = ld(out.data, t, i);
        KT_CHECK(close_to(got, v, rtol, 1e-6));
        if (!close_to(got, v, rtol, 1e-6)) bad++;
    }
    free(out.data);
    free(x);
    for (int k = 0; k < 3; k++) free(prm[k]);
}

static void test_scale(void) {
    kiln_dims d = {4, {2, 3, 4, 5}};
    for (int m = 0; m < 8; m++) {
        check_scale(KILN_SCALE_UNIFORM, 0, KILN_FLOAT32, d, m & 1, m & 2, m & 4);
        check_scale(KILN_SCALE_CHANNEL, 1, KILN_FLOAT32, d, m & 1, m & 2, m & 4);
        check_scale(KILN_SCALE_ELEMENTWISE, 1, KILN_FLOAT32, d, m & 1, m & 2, m & 4);
    }
    check_scale(KILN_SCALE_CHANNEL, -1, KILN_FLOAT16, d, 1, 1, 1);
    check_scale(KILN_SCALE_CHANNEL, 1, KILN_FLOAT64, d, 1, 1, 0);
    check_scale(KILN_SCALE_ELEMENTWISE, 2, KILN_FLOAT32, (kiln_dims){4, {8, 16, 40, 40}}, 1, 1, 0);
    check_scale(KILN_SCALE_CHANNEL, 1, KILN_FLOAT32, (kiln_dims){4, {8, 16, 40, 40}}, 1, 1, 1);
    /* Errors: count mismatch, bad axis, non-float x. */
    float w[3] = {1, 2, 3};
    kiln_layer l = lh_layer(KILN_LAYER_SCALE, 4);
    l.p.scale = (kiln__scale_params){KILN_SCALE_CHANNEL, 1};
    kiln__value in[4] = {lh_val(KILN_FLOAT32, d, NULL), lh_val(KILN_FLOAT32, (kiln_dims){1, {4}}, w), {0}, {0}}, out;
    KT_STATUS(lh_infer(&l, in, &out), KILN_INVALID_ARGUMENT);
    KT_CHECK(lh_names_layer());
    in[1].dims.d[0] = 3;
    KT_OK(lh_infer(&l, in, &out));
    l.p.scale.channel_axis = 4;
    KT_STATUS(lh_infer(&l, in, &out), KILN_INVALID_ARGUMENT);
    l.p.scale.channel_axis = 1;
    in[0].dtype = KILN_INT32;
    KT_STATUS(lh_infer(&l, in, &out), KILN_INVALID_ARGUMENT);
    KT_CHECK(lh_names_layer());
}

/* ---------------------------------------------------------------- network API and engine */

static void test_network_api(void) {
    kiln_builder *b = NULL;
    kiln_network *net = NULL;
    KT_OK(kiln_builder_create(NULL, &b));
    KT_OK(kiln_network_create(b, &net));
    if (!net) {
        kiln_builder_destroy(b);
        return;
    }
    kiln_tensor *x, *y, *z;
    KT_OK(kiln_network_add_input(net, "x", KILN_FLOAT32, &(kiln_dims){3, {-1, 3, 4}}, &x));
    KT_OK(kiln_network_add_input(net, "y", KILN_FLOAT32, &(kiln_dims){2, {3, 1}}, &y));
    KT_OK(kiln_network_add_input(net, "z", KILN_INT32, &(kiln_dims){1, {4}}, &z));
    kiln_layer *l = NULL;
    KT_OK(kiln_network_add_elementwise(net, x, y, KILN_EW_GREATER, &l));
    kiln_dims d;
    KT_OK(kiln_tensor_shape(kiln_layer_output(l, 0), &d));
    KT_CHECK(d.nb_dims == 3 && d.d[0] == -1 && d.d[1] == 3 && d.d[2] == 4);
    KT_CHECK(kiln_tensor_dtype(kiln_layer_output(l, 0)) == KILN_BOOL);
    KT_CHECK(kiln_layer_get_type(l) == KILN_LAYER_ELEMENTWISE);
    KT_CHECK(strcmp(kiln_layer_type_name(KILN_LAYER_ELEMENTWISE), "ElementWise") == 0);
    int32_t before = kiln_network_num_layers(net);
    KT_STATUS(kiln_network_add_elementwise(net, x, z, KILN_EW_ADD, &l), KILN_INVALID_ARGUMENT);
    KT_CHECK(strstr(kiln_last_error(), "(ElementWise)") && strstr(kiln_last_error(), "int32"));
    KT_CHECK(l == NULL && kiln_network_num_layers(net) == before);
    KT_STATUS(kiln_network_add_unary(net, z, KILN_UNARY_EXP, &l), KILN_INVALID_ARGUMENT);
    KT_CHECK(strstr(kiln_last_error(), "(Unary)") != NULL);
    KT_OK(kiln_network_add_unary(net, x, KILN_UNARY_ISNAN, &l));
    KT_CHECK(kiln_tensor_dtype(kiln_layer_output(l, 0)) == KILN_BOOL);
    KT_OK(kiln_network_add_activation(net, x, KILN_ACT_GELU_ERF, 0, 0, &l));
    KT_CHECK(kiln_tensor_dtype(kiln_layer_output(l, 0)) == KILN_FLOAT32);
    KT_STATUS(kiln_network_add_activation(net, z, KILN_ACT_TANH, 0, 0, &l), KILN_INVALID_ARGUMENT);
    KT_CHECK(strstr(kiln_last_error(), "(Activation)") != NULL);
    KT_STATUS(kiln_network_add_activation(net, NULL, KILN_ACT_TANH, 0, 0, &l), KILN_INVALID_ARGUMENT);
    /* Scale: weights become constant inputs; a refused call leaves no layers behind. */
    float sh[3] = {1, 2, 3}, sc[3] = {2, 2, 2};
    before = kiln_network_num_layers(net);
    KT_OK(kiln_network_add_scale(net, x, KILN_SCALE_CHANNEL, 1, (kiln_weights){KILN_FLOAT32, sh, 3},
                                 (kiln_weights){KILN_FLOAT32, sc, 3}, (kiln_weights){KILN_FLOAT32, NULL, 0}, &l));
    KT_CHECK(kiln_network_num_layers(net) == before + 3 && kiln_layer_num_inputs(l) == 4);
    KT_CHECK(kiln_layer_input(l, 1) != NULL && kiln_layer_input(l, 3) == NULL);
    before = kiln_network_num_layers(net);
    KT_STATUS(kiln_network_add_scale(net, x, KILN_SCALE_CHANNEL, 1, (kiln_weights){KILN_FLOAT32, sh, 2},
                                     (kiln_weights){KILN_FLOAT32, NULL, 0}, (kiln_weights){KILN_FLOAT32, NULL, 0}, &l),
              KILN_INVALID_ARGUMENT);
    KT_CHECK(kiln_network_num_layers(net) == before);
    /* The inspector text names the parameters. */
    kiln__alloc al;
    kiln__alloc_init(&al, NULL);
    kiln__buf buf;
    kiln__buf_init(&buf, &al);
    kiln_layer ew = lh_layer(KILN_LAYER_ELEMENTWISE, 2), act = lh_layer(KILN_LAYER_ACTIVATION, 1);
    ew.p.ew.op = KILN_EW_SHIFT_RIGHT;
    act.p.act = (kiln__activation_params){KILN_ACT_LEAKY_RELU, 0.5f, 0};
    kiln__layer_ops_for(KILN_LAYER_ELEMENTWISE)->describe(&ew, &buf);
    kiln__buf_printf(&buf, "|");
    kiln__layer_ops_for(KILN_LAYER_ACTIVATION)->describe(&act, &buf);
    kiln__buf_append(&buf, "", 1);
    KT_CHECK(buf.data && strcmp((char *)buf.data, "op=shift_right|kind=leaky_relu alpha=0.5 beta=0") == 0);
    kiln__buf_free(&buf);
    kiln_network_destroy(net);
    kiln_builder_destroy(b);
}

/* x[2,3,4] -> mul by constant [3,1] -> add y... -> silu -> abs, through the engine. */
static void test_end_to_end(void) {
    kiln_builder *b = NULL;
    kiln_network *net = NULL;
    KT_OK(kiln_builder_create(NULL, &b));
    KT_OK(kiln_network_create(b, &net));
    if (!net) {
        kiln_builder_destroy(b);
        return;
    }
    kiln_tensor *x;
    kiln_dims xd = {3, {2, 3, 4}};
    KT_OK(kiln_network_add_input(net, "x", KILN_FLOAT32, &xd, &x));
    float cw[3] = {0.5f, -2, 3};
    kiln_layer *c = NULL, *m = NULL, *a = NULL, *u = NULL;
    KT_OK(kiln_network_add_constant(net, &(kiln_dims){2, {3, 1}}, (kiln_weights){KILN_FLOAT32, cw, 3}, &c));
    if (c) KT_OK(kiln_network_add_elementwise(net, x, kiln_layer_output(c, 0), KILN_EW_MUL, &m));
    if (m) KT_OK(kiln_network_add_activation(net, kiln_layer_output(m, 0), KILN_ACT_SILU, 0, 0, &a));
    if (a) KT_OK(kiln_network_add_unary(net, kiln_layer_output(a, 0), KILN_UNARY_ABS, &u));
    if (!u) {
        kiln_network_destroy(net);
        kiln_builder_destroy(b);
        return;
    }
    KT_OK(kiln_network_mark_output(net, kiln_layer_output(u, 0)));
    float in[24];
    kt_fill(in, 24, -3, 3);
    size_t nbytes = 0;
    kiln_dims od;
    float *got = lh_execute(b, net, "x", in, sizeof in, &nbytes, &od);
    if (got) {
        KT_CHECK(nbytes == sizeof in && kiln__dims_equal(&od, &xd));
        float want[24];
        for (int i = 0; i < 24; i++) {
            double v = (double)(float)(in[i] * cw[(i / 4) % 3]);
            want[i] = (float)fabs(v / (1 + exp(-v)));
        }
        kt_close("end-to-end pointwise", got, want, 24, 1e-5f, 1e-6f);
        free(got);
    }
    kiln_network_destroy(net);
    kiln_builder_destroy(b);
}

/* ---------------------------------------------------------------- vmath.h accuracy */

static double ref_vm(int fn, double x) {
    switch (fn) {
    case KILN__VM_EXP: return exp(x);
    case KILN__VM_SIGMOID: return 1 / (1 + exp(-x));
    case KILN__VM_SILU: return x / (1 + exp(-x));
    case KILN__VM_TANH: return tanh(x);
    case KILN__VM_ERF: return erf(x);
    case KILN__VM_GELU_ERF: return 0.5 * x * erfc(-x / sqrt(2.0)); /* no cancellation for x < 0 */
    default: return x / (1 + exp(-2 * 0.79788456080286535588 * (x + 0.044715 * x * x * x)));
    }
}

/* Error of got in units in the last place of want rounded to float (subnormals: the smallest). */
static double ulp_err(float got, double want) {
    float w = (float)want;
    double ulp = fabsf(w) < FLT_MIN ? FLT_TRUE_MIN : (double)nextafterf(fabsf(w), INFINITY) - fabsf(w);
    return fabs((double)got - want) / ulp;
}

/* The row kernels kiln__vm_row may pick on this CPU: 0 its own choice, 1 AVX2, 2 AVX-512. */
static bool vm_row_path(int path, int fn, const float *x, float *y, int64_t n) {
    if (path == 0) {
        kiln__vm_row(fn, x, y, n);
        return true;
    }
#ifdef KILN__VM_X86
    if (path == 1 && kiln__vm_have_avx2()) {
        kiln__vm_row_avx2(fn, x, y, n);
        return true;
    }
    if (path == 2 && kiln__vm_have_avx512()) {
        kiln__vm_row_avx512(fn, x, y, n);
        return true;
    }
#endif
    return false;
}

/* Every path (the vector rows and the one-value fallback) against libm in double over a dense
 * sweep of the useful range. Measured maxima over 2^24 points (vector / scalar): exp 1.26 /
 * 0.98 ulp, sigmoid 3.17 / 2.48, silu 3.48 / 2.86, tanh 1.33 / 1.30, erf 2.44 / 2.47 ulp (1.4e-7
 * absolute); the gelus (erf and tanh forms, against accurate references) under 5 ulp plus what
 * the rounding of their exp arguments costs. The bounds below leave half an ulp or so of margin. */
static void test_vmath(void) {
    static const char *names[] = {"exp", "sigmoid", "silu", "tanh", "erf", "gelu_erf", "gelu_tanh"};
    /* the gelus down to -6 (results above 1e-9 in size): further out only their size matters */
    const float lo[] = {-103, -40, -40, -12, -6, -6, -6}, hi[] = {88.7f, 40, 40, 12, 6, 12, 12};
    const double max_ulp[] = {1.5, 4, 4, 2, 3, 5, 5};
    int64_t n = 1 << 18;
    float *x = malloc((size_t)n * sizeof(float)), *y = malloc((size_t)n * sizeof(float));
    for (int fn = KILN__VM_EXP; fn <= KILN__VM_GELU_TANH; fn++) {
        for (int64_t i = 0; i < n; i++) x[i] = lo[fn] + (hi[fn] - lo[fn]) * kt_randf(0, 1);
        for (int path = 0; path < 4; path++) {
            bool scalar = path == 3;
            if (scalar)
                for (int64_t i = 0; i < n; i++) y[i] = kiln__vm_apply1(fn, x[i]);
            else if (!vm_row_path(path, fn, x, y, n - 3)) /* a ragged tail */
                continue;
            double worst = 0;
            float at = 0;
            for (int64_t i = 0; i < (scalar ? n : n - 3); i++) {
                double want = ref_vm(fn, x[i]), e = ulp_err(y[i], want), xd = x[i];
                /* The gelus' float exp arguments (-x^2 / 2 from a rounded x / sqrt 2, and 2u
                 * with its cube, each a few roundings) carry an error that exp turns into a
                 * relative one of up to about 2 |argument| ulp per rounding. */
                if (fn == KILN__VM_GELU_ERF) e -= 2 * xd * xd;
                if (fn == KILN__VM_GELU_TANH) e -= 3 * 1.6 * fabs(xd + 0.044715 * xd * xd * xd);
                /* erf's error is absolute near 0 (x P(x^2) has no cancellation, but 1 - exp(..) does) */
                if (fn == KILN__VM_ERF && fabs(y[i] - want) < 1.5e-7) e = 0;
                /* results below 1e-30 are past what anyone computes with in float */
                if (fabs(want) < 1e-30 && fabs(y[i] - want) < 1e-30) e = 0;
                if (e > worst) worst = e, at = x[i];
            }
            KT_CHECK(worst <= max_ulp[fn]);
            if (worst > max_ulp[fn])
                fprintf(stderr, "  vmath %s (path %d): %.2f ulp at x=%.9g\n", names[fn], path, worst, at);
        }
    }
    /* NaN, infinities and signed zeros, through every path. */
    float sp[] = {NAN, INFINITY, -INFINITY, 0.0f, -0.0f, 1000, -1000, 88.8f, -110};
    int ns = (int)KILN__ARRAY_LEN(sp);
    for (int fn = KILN__VM_EXP; fn <= KILN__VM_GELU_TANH; fn++) {
        for (int path = 0; path < 3; path++) {
            float out[9];
            if (!vm_row_path(path, fn, sp, out, ns)) continue;
            for (int k = 0; k < ns; k++) {
                float one = kiln__vm_apply1(fn, sp[k]);
                KT_CHECK(memcmp(&one, &out[k], sizeof one) == 0 || (isnan(one) && isnan(out[k])));
            }
            KT_CHECK(isnan(out[0]));
            switch (fn) {
            case KILN__VM_EXP:
                KT_CHECK(out[1] == INFINITY && out[2] == 0 && out[3] == 1 && out[4] == 1);
                KT_CHECK(out[7] == INFINITY && out[8] == 0);
                break;
            case KILN__VM_SIGMOID:
                KT_CHECK(out[1] == 1 && out[2] == 0 && out[3] == 0.5f && out[5] == 1 && out[6] == 0);
                break;
            case KILN__VM_TANH:
            case KILN__VM_ERF:
                KT_CHECK(out[1] == 1 && out[2] == -1 && out[3] == 0 && !signbit(out[3]));
                KT_CHECK(out[4] == 0 && signbit(out[4]));
                KT_CHECK(out[5] == 1 && out[6] == -1);
                break;
            default: /* silu and the gelus: x for large x, -0 for large negative x, -0 kept */
                KT_CHECK(out[1] == INFINITY && out[5] == 1000 && out[6] == 0 && out[4] == 0 && signbit(out[4]));
                break;
            }
        }
    }
    free(x);
    free(y);
}

/* The AVX-512 functions against the AVX2 ones, bit for bit (the same operations in the same
 * order, so the GEMM epilogue and the activation layers agree whichever width runs): random
 * bit patterns (every exponent: NaN, infinities, subnormals, huge and tiny values) and random
 * values in the functions' working range, over ragged lengths, through the rows and through
 * kiln__vm_apply16 directly. */
#ifdef KILN__VM_X86
static KILN__VM_AVX512 void apply16_at(int fn, const float *x, float *y) {
    _mm512_storeu_ps(y, kiln__vm_apply16(fn, _mm512_loadu_ps(x)));
}
#endif

static void test_vmath_widths(void) {
#ifdef KILN__VM_X86
    if (!kiln__vm_have_avx512()) return;
    int64_t n = 1 << 16;
    float *x = malloc((size_t)n * sizeof(float)), *y8 = malloc((size_t)n * sizeof(float));
    float *y16 = malloc((size_t)n * sizeof(float));
    if (!x || !y8 || !y16) {
        KT_CHECK(!"out of memory");
        free(x), free(y8), free(y16);
        return;
    }
    for (int64_t i = 0; i < n; i++) {
        uint32_t u = (uint32_t)kt_rand_u64();
        memcpy(&x[i], &u, sizeof u);
        if (i % 2) x[i] = kt_randf(-20, 20);
    }
    for (int fn = KILN__VM_EXP; fn <= KILN__VM_GELU_TANH; fn++) {
        int64_t len = n - kt_randi(0, 15);
        kiln__vm_row_avx2(fn, x, y8, len);
        kiln__vm_row_avx512(fn, x, y16, len);
        int64_t bad = 0;
        for (int64_t i = 0; i < len; i++)
            bad += memcmp(&y8[i], &y16[i], sizeof(float)) != 0 && !(isnan(y8[i]) && isnan(y16[i]));
        KT_CHECK(bad == 0);
        if (bad) fprintf(stderr, "  vmath fn %d: %lld of %lld differ between AVX2 and AVX-512\n", fn, (long long)bad,
                         (long long)len);
        float one[16];
        apply16_at(fn, x + 32, one);
        for (int k = 0; k < 16; k++)
            KT_CHECK(memcmp(&one[k], &y8[32 + k], sizeof(float)) == 0 || (isnan(one[k]) && isnan(y8[32 + k])));
    }
    free(x);
    free(y8);
    free(y16);
#endif
}

int main(void) {
    lh_init();
    test_vmath();
    test_vmath_widths();
    test_elementwise_all();
    test_elementwise_int_signs();
    test_elementwise_infer();
    test_activation();
    test_unary_float();
    test_unary_int_bool();
    test_scale();
    test_network_api();
    test_end_to_end();
    lh_done();
    return kt_summary("test_cpu_pointwise");
}
