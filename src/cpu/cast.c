/* Cast kernel: typed loops between the C-native dtypes and f16/bf16 <-> float, and element
 * access through int64 or double (with ONNX's narrow-float rules) for everything else. */
#include "dtype_access.h"

#include <string.h>

typedef void (*cast_fn)(const void *src, void *dst, int64_t begin, int64_t end);

/* NATIVE(M, extra...) calls M(extra..., name, C type, is_float, is_bool) for each native dtype,
 * in the order of native_slot. NATIVE_SRC is the same list once more: a macro cannot expand
 * itself, and the casts need the list nested in itself. */
#define NATIVE_SRC(M)                                                                                          \
    M(f32, float, 1, 0)                                                                                        \
    M(f64, double, 1, 0)                                                                                       \
    M(i8, int8_t, 0, 0)                                                                                        \
    M(u8, uint8_t, 0, 0)                                                                                       \
    M(i16, int16_t, 0, 0)                                                                                      \
    M(u16, uint16_t, 0, 0)                                                                                     \
    M(i32, int32_t, 0, 0)                                                                                      \
    M(i64, int64_t, 0, 0)                                                                                      \
    M(u32, uint32_t, 0, 0)                                                                                     \
    M(u64, uint64_t, 0, 0)                                                                                     \
    M(b, uint8_t, 0, 1)
#define NATIVE(M, ...)                                                                                         \
    M(__VA_ARGS__, f32, float, 1, 0)                                                                           \
    M(__VA_ARGS__, f64, double, 1, 0)                                                                          \
    M(__VA_ARGS__, i8, int8_t, 0, 0)                                                                           \
    M(__VA_ARGS__, u8, uint8_t, 0, 0)                                                                          \
    M(__VA_ARGS__, i16, int16_t, 0, 0)                                                                         \
    M(__VA_ARGS__, u16, uint16_t, 0, 0)                                                                        \
    M(__VA_ARGS__, i32, int32_t, 0, 0)                                                                         \
    M(__VA_ARGS__, i64, int64_t, 0, 0)                                                                         \
    M(__VA_ARGS__, u32, uint32_t, 0, 0)                                                                        \
    M(__VA_ARGS__, u64, uint64_t, 0, 0)                                                                        \
    M(__VA_ARGS__, b, uint8_t, 0, 1)

static int native_slot(kiln_dtype t) {
    switch (t) {
    case KILN_FLOAT32: return 0;
    case KILN_FLOAT64: return 1;
    case KILN_INT8: return 2;
    case KILN_UINT8: return 3;
    case KILN_INT16: return 4;
    case KILN_UINT16: return 5;
    case KILN_INT32: return 6;
    case KILN_INT64: return 7;
    case KILN_UINT32: return 8;
    case KILN_UINT64: return 9;
    case KILN_BOOL: return 10;
    default: return -1;
    }
}

/* ONNX rules: anything to bool is "non-zero" (NaN too), bool reads as 0/1, float to integer
 * truncates and keeps the low bits; the rest is C's conversion. The flags are constants, so
 * each function keeps one branch. */
#define CAST_FN(SN, ST, SF, SB, DN, DT, DF, DB)                                                                \
    static void cast_##SN##_##DN(const void *src, void *dst, int64_t begin, int64_t end) {                     \
        const ST *s = src;                                                                                     \
        DT *d = dst;                                                                                           \
        for (int64_t i = begin; i < end; i++) {                                                                \
            ST x = s[i];                                                                                       \
            d[i] = (DB || SB)   ? (DT)(x != 0)                                                                 \
                   : SF && !DF ? (DT)(uint64_t)kiln__f64_to_i64_wrap((double)x)                                \
                               : (DT)x;                                                                        \
        }                                                                                                      \
    }
#define CAST_ROW(SN, ST, SF, SB) NATIVE(CAST_FN, SN, ST, SF, SB)
NATIVE_SRC(CAST_ROW)

#define CAST_ENTRY(SN, DN, DT, DF, DB) cast_##SN##_##DN,
#define CAST_TABLE_ROW(SN, ST, SF, SB) {NATIVE(CAST_ENTRY, SN)},
static const cast_fn NATIVE_CASTS[11][11] = {NATIVE_SRC(CAST_TABLE_ROW)};

static void f32_to_f16(const void *src, void *dst, int64_t b, int64_t e) {
    for (int64_t i = b; i < e; i++) ((uint16_t *)dst)[i] = kiln__float_to_half(((const float *)src)[i]);
}
static void f16_to_f32(const void *src, void *dst, int64_t b, int64_t e) {
    for (int64_t i = b; i < e; i++) ((float *)dst)[i] = kiln__half_to_float(((const uint16_t *)src)[i]);
}
static void f32_to_bf16(const void *src, void *dst, int64_t b, int64_t e) {
    for (int64_t i = b; i < e; i++) ((uint16_t *)dst)[i] = kiln__float_to_bf16(((const float *)src)[i]);
}
static void bf16_to_f32(const void *src, void *dst, int64_t b, int64_t e) {
    for (int64_t i = b; i < e; i++) ((float *)dst)[i] = kiln__bf16_to_float(((const uint16_t *)src)[i]);
}

static bool is_int_like(kiln_dtype t) {
    return kiln__dtype_is_integer(t) || t == KILN_BOOL || t == KILN_INT4 || t == KILN_UINT4 || t == KILN_INT2 ||
           t == KILN_UINT2;
}

typedef struct cast_job {
    cast_fn fn; /* NULL: the generic path */
    kiln_dtype from, to;
    int saturate;
    const void *src;
    void *dst;
    int64_t n;
} cast_job;

/* Work goes out in blocks of CAST_BLOCK elements so that no two threads share a byte of a
 * packed sub-byte output. */
#define CAST_BLOCK 4096

static void cast_range(void *arg, int64_t bb, int64_t be) {
    const cast_job *j = arg;
    int64_t begin = bb * CAST_BLOCK, end = KILN__MIN(j->n, be * CAST_BLOCK);
    if (j->fn) {
        j->fn(j->src, j->dst, begin, end);
    } else if (is_int_like(j->from) && is_int_like(j->to)) {
        for (int64_t i = begin; i < end; i++) kiln__store_i64(j->dst, j->to, i, kiln__load_i64(j->src, j->from, i));
    } else {
        for (int64_t i = begin; i < end; i++)
            kiln__store_f64_sat(j->dst, j->to, i, kiln__load_f64(j->src, j->from, i), j->saturate);
    }
}

kiln_status kiln__cpu_cast(const kiln_layer *layer, const kiln__value *inputs, kiln__value *outputs,
                           kiln__cpu_ctx *ctx) {
    cast_job j = {NULL, inputs[0].dtype, outputs[0].dtype, layer->p.cast.saturate, inputs[0].data, outputs[0].data,
                  kiln__dims_volume(&inputs[0].dims)};
    if (j.from == KILN_STRING || j.to == KILN_STRING)
        return kiln__layer_error(layer, KILN_UNSUPPORTED, "casts from or to string are not supported");
    if (j.n <= 0) return KILN_OK;
    size_t bytes;
    if (!kiln__dtype_bytes(j.to, j.n, &bytes))
        return kiln__layer_error(layer, KILN_INVALID_ARGUMENT, "output dtype %s has no fixed size",
                                 kiln_dtype_name(j.to));
    if (j.from == j.to) {
        memcpy(j.dst, j.src, bytes);
        return KILN_OK;
    }
    int sf = native_slot(j.from), st = native_slot(j.to);
    if (sf >= 0 && st >= 0)
        j.fn = NATIVE_CASTS[sf][st];
    else if (j.from == KILN_FLOAT32 && j.to == KILN_FLOAT16)
        j.fn = f32_to_f16;
    else if (j.from == KILN_FLOAT16 && j.to == KILN_FLOAT32)
        j.fn = f16_to_f32;
    else if (j.from == KILN_FLOAT32 && j.to == KILN_BFLOAT16)
        j.fn = f32_to_bf16;
    else if (j.from == KILN_BFLOAT16 && j.to == KILN_FLOAT32)
        j.fn = bf16_to_f32;
    /* Packed outputs are written bit by bit; start from zeroed padding. */
    if (kiln_dtype_bits(j.to) < 8) memset(j.dst, 0, bytes);
    kiln__parallel_for(ctx->pool, (j.n + CAST_BLOCK - 1) / CAST_BLOCK, 4, cast_range, &j);
    return KILN_OK;
}
