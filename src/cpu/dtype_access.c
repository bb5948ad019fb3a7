/* Element access by dtype: every fixed-size dtype read as double or int64 and written from
 * them, with ONNX's conversion rules for the narrow float formats (round to nearest even,
 * saturation per Cast's table, NaN per format) and packed sub-byte elements (lowest bits
 * first). */
#include "dtype_access.h"

#include <float.h>
#include <math.h>
#include <string.h>

/* Element access through memcpy: callers pass buffers of any alignment (e.g. tensor data
 * inside a mapped ONNX file). Compilers turn these into plain loads and stores. */
static inline float ld_f32(const void *p, int64_t i) {
    float v;
    memcpy(&v, (const char *)p + i * (int64_t)sizeof v, sizeof v);
    return v;
}
static inline void st_f32(void *p, int64_t i, float v) { memcpy((char *)p + i * (int64_t)sizeof v, &v, sizeof v); }
static inline double ld_f64(const void *p, int64_t i) {
    double v;
    memcpy(&v, (const char *)p + i * (int64_t)sizeof v, sizeof v);
    return v;
}
static inline void st_f64(void *p, int64_t i, double v) { memcpy((char *)p + i * (int64_t)sizeof v, &v, sizeof v); }
static inline uint16_t ld_u16(const void *p, int64_t i) {
    uint16_t v;
    memcpy(&v, (const char *)p + i * (int64_t)sizeof v, sizeof v);
    return v;
}
static inline void st_u16(void *p, int64_t i, uint16_t v) { memcpy((char *)p + i * (int64_t)sizeof v, &v, sizeof v); }
static inline uint64_t ld_u64(const void *p, int64_t i) {
    uint64_t v;
    memcpy(&v, (const char *)p + i * (int64_t)sizeof v, sizeof v);
    return v;
}
static inline void st_u64(void *p, int64_t i, uint64_t v) { memcpy((char *)p + i * (int64_t)sizeof v, &v, sizeof v); }
static inline int8_t ld_i8(const void *p, int64_t i) {
    int8_t v;
    memcpy(&v, (const char *)p + i * (int64_t)sizeof v, sizeof v);
    return v;
}
static inline void st_i8(void *p, int64_t i, int8_t v) { memcpy((char *)p + i * (int64_t)sizeof v, &v, sizeof v); }
static inline uint8_t ld_u8(const void *p, int64_t i) {
    uint8_t v;
    memcpy(&v, (const char *)p + i * (int64_t)sizeof v, sizeof v);
    return v;
}
static inline void st_u8(void *p, int64_t i, uint8_t v) { memcpy((char *)p + i * (int64_t)sizeof v, &v, sizeof v); }
static inline int16_t ld_i16(const void *p, int64_t i) {
    int16_t v;
    memcpy(&v, (const char *)p + i * (int64_t)sizeof v, sizeof v);
    return v;
}
static inline void st_i16(void *p, int64_t i, int16_t v) { memcpy((char *)p + i * (int64_t)sizeof v, &v, sizeof v); }
static inline int32_t ld_i32(const void *p, int64_t i) {
    int32_t v;
    memcpy(&v, (const char *)p + i * (int64_t)sizeof v, sizeof v);
    return v;
}
static inline void st_i32(void *p, int64_t i, int32_t v) { memcpy((char *)p + i * (int64_t)sizeof v, &v, sizeof v); }
static inline uint32_t ld_u32(const void *p, int64_t i) {
    uint32_t v;
    memcpy(&v, (const char *)p + i * (int64_t)sizeof v, sizeof v);
    return v;
}
static inline void st_u32(void *p, int64_t i, uint32_t v) { memcpy((char *)p + i * (int64_t)sizeof v, &v, sizeof v); }
static inline int64_t ld_i64(const void *p, int64_t i) {
    int64_t v;
    memcpy(&v, (const char *)p + i * (int64_t)sizeof v, sizeof v);
    return v;
}
static inline void st_i64(void *p, int64_t i, int64_t v) { memcpy((char *)p + i * (int64_t)sizeof v, &v, sizeof v); }

/* ---------------------------------------------------------------- narrow float formats */

/* A sign-magnitude float format with mbits mantissa bits and the given exponent bias. */
typedef struct minifloat {
    int mbits, bias;
    int64_t max_code;  /* largest finite magnitude code */
    int64_t inf_code;  /* -1: no infinity */
    int64_t nan_code;  /* magnitude code of NaN (with sign bit for signed NaNs) */
    int sign_shift;    /* position of the sign bit */
    int unsigned_zero; /* FNUZ: no negative zero (its code is NaN) */
    int ieee;          /* f16/bf16: overflow always gives infinity */
} minifloat;

static const minifloat MF_F16 = {10, 15, 0x7bff, 0x7c00, 0x7e00, 15, 0, 1};
static const minifloat MF_BF16 = {7, 127, 0x7f7f, 0x7f80, 0x7fc0, 15, 0, 1};
static const minifloat MF_E4M3FN = {3, 7, 0x7e, -1, 0x7f, 7, 0, 0};
static const minifloat MF_E4M3FNUZ = {3, 8, 0x7f, -1, 0x80, 7, 1, 0};
static const minifloat MF_E5M2 = {2, 15, 0x7b, 0x7c, 0x7e, 7, 0, 0};
static const minifloat MF_E5M2FNUZ = {2, 16, 0x7f, -1, 0x80, 7, 1, 0};
static const minifloat MF_FP4 = {1, 1, 0x7, -1, -1, 3, 0, 0};

/* Magnitude code of a >= 0 (finite) rounded to nearest even; may exceed max_code. Writing the
 * code as (e - emin) << mbits plus the rounded significand handles subnormals and the carry
 * into the next exponent without special cases. */
static int64_t mf_round(const minifloat *f, double a) {
    if (a == 0) return 0;
    int e2;
    frexp(a, &e2);
    int e = e2 - 1, emin = 1 - f->bias;
    if (e < emin) e = emin;
    double r = nearbyint(ldexp(a, f->mbits - e));
    return ((int64_t)(e - emin) << f->mbits) + (int64_t)r;
}

static uint32_t mf_encode(const minifloat *f, double v, int saturate) {
    uint32_t sign = signbit(v) ? 1u << f->sign_shift : 0;
    if (isnan(v)) {
        if (f->nan_code < 0) return sign ? 0 : 0x8; /* fp4 has no NaN; ONNX's reference gives -0 */
        return (uint32_t)f->nan_code | (f->unsigned_zero ? 0 : sign);
    }
    int64_t code = isinf(v) ? INT64_MAX : mf_round(f, fabs(v));
    if (code > f->max_code) {
        if (f->ieee)
            code = f->inf_code;
        else if (saturate || f->nan_code < 0) /* fp4 always saturates */
            code = f->max_code;
        else if (f->inf_code >= 0)
            code = f->inf_code;
        else
            return (uint32_t)f->nan_code | (f->unsigned_zero ? 0 : sign);
    }
    if (code == 0 && f->unsigned_zero) return 0;
    return (uint32_t)code | sign;
}

static double mf_decode(const minifloat *f, uint32_t bits) {
    uint32_t sign = (bits >> f->sign_shift) & 1, mag = bits & ((1u << f->sign_shift) - 1);
    if (f->unsigned_zero && bits == (uint32_t)f->nan_code) return NAN;
    if (!f->unsigned_zero && f->nan_code >= 0) {
        if (f->inf_code >= 0 && mag == (uint32_t)f->inf_code) return sign ? -INFINITY : INFINITY;
        if ((int64_t)mag > f->max_code) return sign ? -NAN : NAN;
    }
    uint32_t exp = mag >> f->mbits, man = mag & ((1u << f->mbits) - 1);
    double v = exp ? ldexp((double)(man | (1u << f->mbits)), (int)exp - f->bias - f->mbits)
                   : ldexp((double)man, 1 - f->bias - f->mbits);
    return sign ? -v : v;
}

/* E8M0: a bare exponent, 2^(code - 127); 0xff is NaN. Conversion rounds up (ONNX's default
 * round_mode) from the float32 value, ignoring the sign. */
static uint8_t e8m0_encode(double v, int saturate) {
    if (isnan(v)) return 0xff;
    if (isinf(v) || fabs(v) > FLT_MAX) return saturate ? 0xfe : 0xff;
    float f = (float)v;
    uint32_t bits;
    memcpy(&bits, &f, 4);
    uint32_t exp = (bits >> 23) & 0xff;
    if (bits & 0x7fffff) {
        if (exp == 0xfe) return saturate ? 0xfe : 0xff;
        exp++;
    }
    return (uint8_t)exp;
}

static double e8m0_decode(uint8_t bits) { return bits == 0xff ? NAN : ldexp(1.0, (int)bits - 127); }

/* ---------------------------------------------------------------- sub-byte packing */

static uint32_t get_bits(const void *data, int64_t i, int bits) {
    int per = 8 / bits;
    uint8_t byte = ((const uint8_t *)data)[i / per];
    return (byte >> ((i % per) * bits)) & ((1u << bits) - 1);
}

static void put_bits(void *data, int64_t i, int bits, uint32_t v) {
    int per = 8 / bits, shift = (int)(i % per) * bits;
    uint8_t *byte = (uint8_t *)data + i / per;
    uint8_t mask = (uint8_t)(((1u << bits) - 1) << shift);
    *byte = (uint8_t)((*byte & ~mask) | ((v << shift) & mask));
}

static int64_t sign_extend(uint32_t v, int bits) {
    return (v & (1u << (bits - 1))) ? (int64_t)v - ((int64_t)1 << bits) : (int64_t)v;
}

/* ---------------------------------------------------------------- public helpers */

double kiln__load_f64(const void *data, kiln_dtype dtype, int64_t i) {
    const uint8_t *p = data;
    switch (dtype) {
    case KILN_FLOAT32: return ld_f32(data, i);
    case KILN_FLOAT64: return ld_f64(data, i);
    case KILN_FLOAT16: return kiln__half_to_float(ld_u16(data, i));
    case KILN_BFLOAT16: return kiln__bf16_to_float(ld_u16(data, i));
    case KILN_UINT64: return (double)ld_u64(data, i);
    case KILN_BOOL: return p[i] != 0;
    case KILN_FP8_E4M3FN: return mf_decode(&MF_E4M3FN, p[i]);
    case KILN_FP8_E4M3FNUZ: return mf_decode(&MF_E4M3FNUZ, p[i]);
    case KILN_FP8_E5M2: return mf_decode(&MF_E5M2, p[i]);
    case KILN_FP8_E5M2FNUZ: return mf_decode(&MF_E5M2FNUZ, p[i]);
    case KILN_FP8_E8M0: return e8m0_decode(p[i]);
    case KILN_FP4_E2M1: return mf_decode(&MF_FP4, get_bits(data, i, 4));
    default: return (double)kiln__load_i64(data, dtype, i);
    }
}

void kiln__store_f64_sat(void *data, kiln_dtype dtype, int64_t i, double v, int saturate) {
    uint8_t *p = data;
    switch (dtype) {
    case KILN_FLOAT32:
        /* Beyond float's range the C conversion is undefined; IEEE gives infinity. */
        st_f32(data, i, fabs(v) > FLT_MAX && !isinf(v) ? (float)copysign(INFINITY, v) : (float)v);
        return;
    case KILN_FLOAT64: st_f64(data, i, v); return;
    case KILN_FLOAT16: st_u16(data, i, (uint16_t)mf_encode(&MF_F16, v, 0)); return;
    case KILN_BFLOAT16: st_u16(data, i, (uint16_t)mf_encode(&MF_BF16, v, 0)); return;
    case KILN_BOOL: p[i] = v != 0; return;
    case KILN_FP8_E4M3FN: p[i] = (uint8_t)mf_encode(&MF_E4M3FN, v, saturate); return;
    case KILN_FP8_E4M3FNUZ: p[i] = (uint8_t)mf_encode(&MF_E4M3FNUZ, v, saturate); return;
    case KILN_FP8_E5M2: p[i] = (uint8_t)mf_encode(&MF_E5M2, v, saturate); return;
    case KILN_FP8_E5M2FNUZ: p[i] = (uint8_t)mf_encode(&MF_E5M2FNUZ, v, saturate); return;
    case KILN_FP8_E8M0: p[i] = e8m0_encode(v, saturate); return;
    case KILN_FP4_E2M1: put_bits(data, i, 4, mf_encode(&MF_FP4, v, 1)); return;
    default: kiln__store_i64(data, dtype, i, kiln__f64_to_i64_wrap(v)); return;
    }
}

void kiln__store_f64(void *data, kiln_dtype dtype, int64_t i, double v) { kiln__store_f64_sat(data, dtype, i, v, 1); }

int64_t kiln__load_i64(const void *data, kiln_dtype dtype, int64_t i) {
    switch (dtype) {
    case KILN_INT8: return ld_i8(data, i);
    case KILN_UINT8: return ld_u8(data, i);
    case KILN_INT16: return ld_i16(data, i);
    case KILN_UINT16: return ld_u16(data, i);
    case KILN_INT32: return ld_i32(data, i);
    case KILN_UINT32: return ld_u32(data, i);
    case KILN_INT64: return ld_i64(data, i);
    case KILN_UINT64: return (int64_t)ld_u64(data, i);
    case KILN_BOOL: return ld_u8(data, i) != 0;
    case KILN_INT4: return sign_extend(get_bits(data, i, 4), 4);
    case KILN_UINT4: return get_bits(data, i, 4);
    case KILN_INT2: return sign_extend(get_bits(data, i, 2), 2);
    case KILN_UINT2: return get_bits(data, i, 2);
    default: return kiln__f64_to_i64_wrap(kiln__load_f64(data, dtype, i));
    }
}

void kiln__store_i64(void *data, kiln_dtype dtype, int64_t i, int64_t v) {
    /* Integer targets keep the low bits of the two's complement value (ONNX Cast). */
    switch (dtype) {
    case KILN_INT8: st_i8(data, i, (int8_t)(uint8_t)v); return;
    case KILN_UINT8: st_u8(data, i, (uint8_t)v); return;
    case KILN_INT16: st_i16(data, i, (int16_t)(uint16_t)v); return;
    case KILN_UINT16: st_u16(data, i, (uint16_t)v); return;
    case KILN_INT32: st_i32(data, i, (int32_t)(uint32_t)v); return;
    case KILN_UINT32: st_u32(data, i, (uint32_t)v); return;
    case KILN_INT64: st_i64(data, i, v); return;
    case KILN_UINT64: st_u64(data, i, (uint64_t)v); return;
    case KILN_BOOL: st_u8(data, i, v != 0); return;
    case KILN_INT4:
    case KILN_UINT4: put_bits(data, i, 4, (uint32_t)v); return;
    case KILN_INT2:
    case KILN_UINT2: put_bits(data, i, 2, (uint32_t)v); return;
    case KILN_FLOAT32: st_f32(data, i, (float)v); return;
    case KILN_FLOAT64: st_f64(data, i, (double)v); return;
    default: kiln__store_f64(data, dtype, i, (double)v); return;
    }
}
