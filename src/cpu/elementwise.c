/* Elementwise kernels: typed row loops (vectorizable, with the broadcast input held as a
 * scalar), driven over the broadcast shape after merging dims that move together. */
#include "cpu.h"

#include <math.h>

typedef struct ew_job ew_job;
/* Computes n outputs; sa and sb are 0 (the input is one value) or 1 (contiguous). */
typedef void (*ew_row_fn)(const ew_job *job, const void *a, int64_t sa, const void *b, int64_t sb, void *o, int64_t n);

struct ew_job {
    ew_row_fn row;
    ew_row_fn f32_row; /* f16/bf16: the float kernel they run in chunks */
    kiln_dtype ta, tb, to;
    size_t ea, eb, eo; /* element sizes in bytes */
    const uint8_t *a, *b;
    uint8_t *o;
    int32_t rank; /* of the merged shape; the last dim is the row */
    int64_t d[KILN_MAX_DIMS], sa[KILN_MAX_DIMS], sb[KILN_MAX_DIMS];
    int64_t pieces, piece; /* each row runs as `pieces` items of `piece` elements (the last shorter) */
};

/* Rows longer than this (two same-shape tensors merge into one row) are cut into pieces of
 * about this many elements, so that the threads share them. */
#define EW_PIECE 16384

#define EW_ROW(NAME, TA, TO, EXPR)                                                                             \
    static void NAME(const ew_job *job, const void *a_, int64_t sa, const void *b_, int64_t sb, void *o_,        \
                     int64_t n) {                                                                              \
        (void)job;                                                                                             \
        const TA *a = a_, *b = b_;                                                                             \
        TO *o = o_;                                                                                            \
        if (sa && sb) {                                                                                        \
            for (int64_t i = 0; i < n; i++) {                                                                  \
                TA x = a[i], y = b[i];                                                                         \
                o[i] = (TO)(EXPR);                                                                             \
            }                                                                                                  \
        } else if (sa) {                                                                                       \
            TA y = b[0];                                                                                       \
            for (int64_t i = 0; i < n; i++) {                                                                  \
                TA x = a[i];                                                                                   \
                o[i] = (TO)(EXPR);                                                                             \
            }                                                                                                  \
        } else if (sb) {                                                                                       \
            TA x = a[0];                                                                                       \
            for (int64_t i = 0; i < n; i++) {                                                                  \
                TA y = b[i];                                                                                   \
                o[i] = (TO)(EXPR);                                                                             \
            }                                                                                                  \
        } else {                                                                                               \
            TA x = a[0], y = b[0];                                                                             \
            TO r = (TO)(EXPR);                                                                                 \
            for (int64_t i = 0; i < n; i++) o[i] = r;                                                          \
        }                                                                                                      \
    }

/* ---------------------------------------------------------------- scalar helpers */

/* Python's % on floats: the result takes the divisor's sign (numpy.mod). */
static inline float pymod_f32(float x, float y) {
    float r = fmodf(x, y);
    if (r != 0 && ((r < 0) != (y < 0))) r += y;
    return r == 0 ? copysignf(0.0f, y) : r;
}

static inline double pymod_f64(double x, double y) {
    double r = fmod(x, y);
    if (r != 0 && ((r < 0) != (y < 0))) r += y;
    return r == 0 ? copysign(0.0, y) : r;
}

/* Integer division and remainder never trap: x / 0 and x % 0 give 0, and INT_MIN / -1 wraps. */
static inline int64_t pymod_i64(int64_t x, int64_t y) {
    if (y == 0 || y == -1) return 0;
    int64_t r = x % y;
    if (r != 0 && ((r < 0) != (y < 0))) r += y;
    return r;
}

/* x^y modulo 2^64. A negative exponent gives the truncated 1 / x^-y. */
static inline uint64_t ipow(int64_t x, int64_t y, bool y_signed) {
    if (y_signed && y < 0) {
        if (x == 1) return 1;
        if (x == -1) return (y & 1) ? (uint64_t)-1 : 1;
        return 0;
    }
    uint64_t base = (uint64_t)x, e = (uint64_t)y, r = 1;
    while (e) {
        if (e & 1) r *= base;
        base *= base;
        e >>= 1;
    }
    return r;
}

/* ---------------------------------------------------------------- typed rows */

#define FLOAT_ROWS(S, T, FMOD, POW)                                                                            \
    EW_ROW(add_##S, T, T, x + y)                                                                               \
    EW_ROW(sub_##S, T, T, x - y)                                                                               \
    EW_ROW(mul_##S, T, T, x * y)                                                                               \
    EW_ROW(div_##S, T, T, x / y)                                                                               \
    EW_ROW(pow_##S, T, T, POW(x, y))                                                                           \
    EW_ROW(min_##S, T, T, x != x ? x : y != y ? y : x < y ? x : y)                                             \
    EW_ROW(max_##S, T, T, x != x ? x : y != y ? y : x > y ? x : y)                                             \
    EW_ROW(mod_##S, T, T, pymod_##S(x, y))                                                                     \
    EW_ROW(fmod_##S, T, T, FMOD(x, y))                                                                         \
    EW_ROW(eq_##S, T, uint8_t, x == y)                                                                         \
    EW_ROW(lt_##S, T, uint8_t, x < y)                                                                          \
    EW_ROW(le_##S, T, uint8_t, x <= y)                                                                         \
    EW_ROW(gt_##S, T, uint8_t, x > y)                                                                          \
    EW_ROW(ge_##S, T, uint8_t, x >= y)

/* Arithmetic goes through uint64_t so that overflow wraps instead of being undefined. */
#define INT_COMMON_ROWS(S, T)                                                                                  \
    EW_ROW(add_##S, T, T, (uint64_t)x + (uint64_t)y)                                                           \
    EW_ROW(sub_##S, T, T, (uint64_t)x - (uint64_t)y)                                                           \
    EW_ROW(mul_##S, T, T, (uint64_t)x * (uint64_t)y)                                                           \
    EW_ROW(min_##S, T, T, x < y ? x : y)                                                                       \
    EW_ROW(max_##S, T, T, x > y ? x : y)                                                                       \
    EW_ROW(eq_##S, T, uint8_t, x == y)                                                                         \
    EW_ROW(lt_##S, T, uint8_t, x < y)                                                                          \
    EW_ROW(le_##S, T, uint8_t, x <= y)                                                                         \
    EW_ROW(gt_##S, T, uint8_t, x > y)                                                                          \
    EW_ROW(ge_##S, T, uint8_t, x >= y)                                                                         \
    EW_ROW(band_##S, T, T, x & y)                                                                              \
    EW_ROW(bor_##S, T, T, x | y)                                                                               \
    EW_ROW(bxor_##S, T, T, x ^ y)

/* Shifts by a negative amount or by the width or more give 0 (right shifts of negative
 * signed values give -1), instead of C's undefined behaviour. */
#define SINT_ROWS(S, T, BITS)                                                                                  \
    INT_COMMON_ROWS(S, T)                                                                                      \
    EW_ROW(div_##S, T, T, y == 0 ? (uint64_t)0 : y == -1 ? 0 - (uint64_t)x : (uint64_t)(x / y))                \
    EW_ROW(pow_##S, T, T, ipow(x, y, true))                                                                    \
    EW_ROW(mod_##S, T, T, pymod_i64(x, y))                                                                     \
    EW_ROW(fmod_##S, T, T, y == 0 || y == -1 ? 0 : x % y)                                                      \
    EW_ROW(shl_##S, T, T, y < 0 || y >= BITS ? 0 : (uint64_t)x << y)                                           \
    EW_ROW(shr_##S, T, T, y < 0 ? 0 : y >= BITS ? (x < 0 ? -1 : 0) : x >> y)

#define UINT_ROWS(S, T, BITS)                                                                                  \
    INT_COMMON_ROWS(S, T)                                                                                      \
    EW_ROW(div_##S, T, T, y == 0 ? 0 : x / y)                                                                  \
    EW_ROW(pow_##S, T, T, ipow((int64_t)x, (int64_t)y, false))                                                 \
    EW_ROW(mod_##S, T, T, y == 0 ? 0 : x % y)                                                                  \
    EW_ROW(fmod_##S, T, T, y == 0 ? 0 : x % y)                                                                 \
    EW_ROW(shl_##S, T, T, y >= BITS ? 0 : (uint64_t)x << y)                                                    \
    EW_ROW(shr_##S, T, T, y >= BITS ? 0 : x >> y)

FLOAT_ROWS(f32, float, fmodf, powf)
FLOAT_ROWS(f64, double, fmod, pow)
SINT_ROWS(i8, int8_t, 8)
SINT_ROWS(i16, int16_t, 16)
SINT_ROWS(i32, int32_t, 32)
SINT_ROWS(i64, int64_t, 64)
UINT_ROWS(u8, uint8_t, 8)
UINT_ROWS(u16, uint16_t, 16)
UINT_ROWS(u32, uint32_t, 32)
UINT_ROWS(u64, uint64_t, 64)
EW_ROW(eq_b, uint8_t, uint8_t, (x != 0) == (y != 0))
EW_ROW(and_b, uint8_t, uint8_t, x && y)
EW_ROW(or_b, uint8_t, uint8_t, x || y)
EW_ROW(xor_b, uint8_t, uint8_t, (x != 0) != (y != 0))

enum { T_F32, T_F64, T_I8, T_U8, T_I16, T_U16, T_I32, T_I64, T_U32, T_U64, T_BOOL, T_COUNT };

#define NUMERIC_TABLE(S)                                                                                       \
    [KILN_EW_ADD] = add_##S, [KILN_EW_SUB] = sub_##S, [KILN_EW_MUL] = mul_##S, [KILN_EW_DIV] = div_##S,        \
    [KILN_EW_POW] = pow_##S, [KILN_EW_MIN] = min_##S, [KILN_EW_MAX] = max_##S, [KILN_EW_MOD] = mod_##S,        \
    [KILN_EW_FMOD] = fmod_##S, [KILN_EW_EQUAL] = eq_##S, [KILN_EW_LESS] = lt_##S,                              \
    [KILN_EW_LESS_EQUAL] = le_##S, [KILN_EW_GREATER] = gt_##S, [KILN_EW_GREATER_EQUAL] = ge_##S
#define INT_TABLE(S)                                                                                           \
    {NUMERIC_TABLE(S), [KILN_EW_BIT_AND] = band_##S, [KILN_EW_BIT_OR] = bor_##S, [KILN_EW_BIT_XOR] = bxor_##S,  \
     [KILN_EW_SHIFT_LEFT] = shl_##S, [KILN_EW_SHIFT_RIGHT] = shr_##S}

static const ew_row_fn ROWS[T_COUNT][KILN_EW_COUNT] = {
    [T_F32] = {NUMERIC_TABLE(f32)},
    [T_F64] = {NUMERIC_TABLE(f64)},
    [T_I8] = INT_TABLE(i8),
    [T_U8] = INT_TABLE(u8),
    [T_I16] = INT_TABLE(i16),
    [T_U16] = INT_TABLE(u16),
    [T_I32] = INT_TABLE(i32),
    [T_I64] = INT_TABLE(i64),
    [T_U32] = INT_TABLE(u32),
    [T_U64] = INT_TABLE(u64),
    [T_BOOL] = {[KILN_EW_EQUAL] = eq_b, [KILN_EW_AND] = and_b, [KILN_EW_OR] = or_b, [KILN_EW_XOR] = xor_b},
};

static int type_slot(kiln_dtype t) {
    switch (t) {
    case KILN_FLOAT32:
    case KILN_FLOAT16:
    case KILN_BFLOAT16: return T_F32;
    case KILN_FLOAT64: return T_F64;
    case KILN_INT8: return T_I8;
    case KILN_UINT8: return T_U8;
    case KILN_INT16: return T_I16;
    case KILN_UINT16: return T_U16;
    case KILN_INT32: return T_I32;
    case KILN_INT64: return T_I64;
    case KILN_UINT32: return T_U32;
    case KILN_UINT64: return T_U64;
    case KILN_BOOL: return T_BOOL;
    default: return -1;
    }
}

/* f16/bf16: widen chunks to float, run the float row, round the results once. */
static void half_row(const ew_job *job, const void *a_, int64_t sa, const void *b_, int64_t sb, void *o_, int64_t n) {
    bool half = job->ta == KILN_FLOAT16;
    const uint16_t *a = a_, *b = b_;
    float fa[256], fb[256], fo[256];
    for (int64_t i = 0; i < n; i += 256) {
        int64_t m = KILN__MIN(256, n - i);
        for (int64_t k = 0; k < (sa ? m : i == 0); k++)
            fa[k] = half ? kiln__half_to_float(a[(i + k) * sa]) : kiln__bf16_to_float(a[(i + k) * sa]);
        for (int64_t k = 0; k < (sb ? m : i == 0); k++)
            fb[k] = half ? kiln__half_to_float(b[(i + k) * sb]) : kiln__bf16_to_float(b[(i + k) * sb]);
        if (job->to == KILN_BOOL) {
            job->f32_row(job, fa, sa, fb, sb, (uint8_t *)o_ + i, m);
        } else {
            uint16_t *o = (uint16_t *)o_ + i;
            job->f32_row(job, fa, sa, fb, sb, fo, m);
            for (int64_t k = 0; k < m; k++) o[k] = half ? kiln__float_to_half(fo[k]) : kiln__float_to_bf16(fo[k]);
        }
    }
}

/* Pow with an exponent dtype that differs from the base's: element by element in double,
 * or exactly in integers when both are integers. */
static void mixed_pow_row(const ew_job *job, const void *a, int64_t sa, const void *b, int64_t sb, void *o,
                          int64_t n) {
    bool int_base = kiln__dtype_is_integer(job->ta), int_exp = kiln__dtype_is_integer(job->tb);
    for (int64_t i = 0; i < n; i++) {
        if (int_base && int_exp) {
            int64_t x = kiln__load_i64(a, job->ta, i * sa), y = kiln__load_i64(b, job->tb, i * sb);
            kiln__store_i64(o, job->to, i, (int64_t)ipow(x, y, kiln__dtype_is_signed(job->tb)));
        } else {
            double x = kiln__load_f64(a, job->ta, i * sa), y = kiln__load_f64(b, job->tb, i * sb);
            kiln__store_f64(o, job->to, i, pow(x, y));
        }
    }
}

/* Items are pieces of rows (a whole row unless rows are long: see EW_PIECE). */
static void ew_range(void *arg, int64_t begin, int64_t end) {
    const ew_job *j = arg;
    int32_t outer = j->rank - 1;
    int64_t inner = j->d[outer], sa = j->sa[outer], sb = j->sb[outer];
    int64_t idx[KILN_MAX_DIMS] = {0}, offa = 0, offb = 0, row = begin / j->pieces, part = begin % j->pieces;
    int64_t r = row;
    for (int32_t k = outer - 1; k >= 0; k--) {
        idx[k] = r % j->d[k];
        r /= j->d[k];
        offa += idx[k] * j->sa[k];
        offb += idx[k] * j->sb[k];
    }
    for (int64_t item = begin; item < end; item++) {
        int64_t e0 = part * j->piece, len = KILN__MIN(j->piece, inner - e0);
        j->row(j, j->a + (offa + e0 * sa) * (int64_t)j->ea, sa, j->b + (offb + e0 * sb) * (int64_t)j->eb, sb,
               j->o + (row * inner + e0) * (int64_t)j->eo, len);
        if (++part < j->pieces) continue;
        part = 0;
        row++;
        for (int32_t k = outer - 1; k >= 0; k--) {
            offa += j->sa[k];
            offb += j->sb[k];
            if (++idx[k] < j->d[k]) break;
            offa -= j->sa[k] * j->d[k];
            offb -= j->sb[k] * j->d[k];
            idx[k] = 0;
        }
    }
}

/* Strides of `in` broadcast to `out` (0 along broadcast dims), padded to out's rank. */
static void broadcast_strides(const kiln_dims *in, const kiln_dims *out, int64_t *s) {
    int32_t pad = out->nb_dims - in->nb_dims;
    int64_t stride = 1;
    for (int32_t i = out->nb_dims - 1; i >= 0; i--) {
        int64_t d = i >= pad ? in->d[i - pad] : 1;
        s[i] = d == 1 ? 0 : stride;
        stride *= d;
    }
}

kiln_status kiln__cpu_elementwise(const kiln_layer *layer, const kiln__value *inputs, kiln__value *outputs,
                                  kiln__cpu_ctx *ctx) {
    const kiln_dims *od = &outputs[0].dims;
    int64_t volume = kiln__dims_volume(od);
    if (volume <= 0) return KILN_OK;
    int32_t op = layer->p.ew.op;
    ew_job j = {.ta = inputs[0].dtype, .tb = inputs[1].dtype, .to = outputs[0].dtype};
    j.ea = kiln_dtype_bits(j.ta) / 8;
    j.eb = kiln_dtype_bits(j.tb) / 8;
    j.eo = kiln_dtype_bits(j.to) / 8;
    j.a = inputs[0].data;
    j.b = inputs[1].data;
    j.o = outputs[0].data;
    int slot = type_slot(j.ta);
    ew_row_fn fn = slot >= 0 && op >= 0 && op < KILN_EW_COUNT ? ROWS[slot][op] : NULL;
    if (op == KILN_EW_POW && j.ta != j.tb) {
        j.row = mixed_pow_row;
    } else if (fn && (j.ta == KILN_FLOAT16 || j.ta == KILN_BFLOAT16)) {
        j.row = half_row;
        j.f32_row = fn;
    } else {
        j.row = fn;
    }
    if (!j.row || !j.ea || !j.eb || !j.eo)
        return kiln__layer_error(layer, KILN_UNSUPPORTED, "no CPU kernel for op %d on %s", op, kiln_dtype_name(j.ta));

    /* Merge runs of dims along which both inputs step alike, so that the common cases (same
     * shape, scalar, per-channel) become a few long rows. */
    int64_t sa[KILN_MAX_DIMS], sb[KILN_MAX_DIMS];
    broadcast_strides(&inputs[0].dims, od, sa);
    broadcast_strides(&inputs[1].dims, od, sb);
    j.rank = 0;
    for (int32_t i = 0; i < od->nb_dims; i++) {
        if (od->d[i] == 1) continue;
        int32_t m = j.rank;
        if (m > 0 && j.sa[m - 1] == sa[i] * od->d[i] && j.sb[m - 1] == sb[i] * od->d[i]) {
            j.d[m - 1] *= od->d[i];
            j.sa[m - 1] = sa[i];
            j.sb[m - 1] = sb[i];
        } else {
            j.d[m] = od->d[i];
            j.sa[m] = sa[i];
            j.sb[m] = sb[i];
            j.rank++;
        }
    }
    if (j.rank == 0) {
        j.rank = 1;
        j.d[0] = 1;
        j.sa[0] = j.sb[0] = 0;
    }
    int64_t inner = j.d[j.rank - 1];
    j.pieces = (inner + EW_PIECE - 1) / EW_PIECE;
    int64_t threads = kiln__pool_threads(ctx->pool);
    if (j.pieces > 1) j.pieces = (j.pieces + threads - 1) / threads * threads; /* equal shares */
    j.piece = (inner + j.pieces - 1) / j.pieces;
    j.piece = j.pieces > 1 ? (j.piece + 15) / 16 * 16 : j.piece; /* whole vectors; the last piece takes the rest */
    j.pieces = (inner + j.piece - 1) / j.piece;
    kiln__parallel_for(ctx->pool, volume / inner * j.pieces, KILN__MAX(1, EW_PIECE / KILN__MIN(inner, j.piece)),
                       ew_range, &j);
    return KILN_OK;
}
