#include "core.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

const char *kiln_dtype_name(kiln_dtype dtype) {
    switch (dtype) {
    case KILN_FLOAT32: return "float32";
    case KILN_UINT8: return "uint8";
    case KILN_INT8: return "int8";
    case KILN_UINT16: return "uint16";
    case KILN_INT16: return "int16";
    case KILN_INT32: return "int32";
    case KILN_INT64: return "int64";
    case KILN_STRING: return "string";
    case KILN_BOOL: return "bool";
    case KILN_FLOAT16: return "float16";
    case KILN_FLOAT64: return "float64";
    case KILN_UINT32: return "uint32";
    case KILN_UINT64: return "uint64";
    case KILN_BFLOAT16: return "bfloat16";
    case KILN_FP8_E4M3FN: return "float8e4m3fn";
    case KILN_FP8_E4M3FNUZ: return "float8e4m3fnuz";
    case KILN_FP8_E5M2: return "float8e5m2";
    case KILN_FP8_E5M2FNUZ: return "float8e5m2fnuz";
    case KILN_UINT4: return "uint4";
    case KILN_INT4: return "int4";
    case KILN_FP4_E2M1: return "float4e2m1";
    case KILN_FP8_E8M0: return "float8e8m0";
    case KILN_UINT2: return "uint2";
    case KILN_INT2: return "int2";
    case KILN_DTYPE_UNDEFINED: break;
    }
    return "undefined";
}

uint32_t kiln_dtype_bits(kiln_dtype dtype) {
    switch (dtype) {
    case KILN_BOOL:
    case KILN_UINT8:
    case KILN_INT8:
    case KILN_FP8_E4M3FN:
    case KILN_FP8_E4M3FNUZ:
    case KILN_FP8_E5M2:
    case KILN_FP8_E5M2FNUZ:
    case KILN_FP8_E8M0: return 8;
    case KILN_UINT16:
    case KILN_INT16:
    case KILN_FLOAT16:
    case KILN_BFLOAT16: return 16;
    case KILN_FLOAT32:
    case KILN_INT32:
    case KILN_UINT32: return 32;
    case KILN_INT64:
    case KILN_UINT64:
    case KILN_FLOAT64: return 64;
    case KILN_UINT4:
    case KILN_INT4:
    case KILN_FP4_E2M1: return 4;
    case KILN_UINT2:
    case KILN_INT2: return 2;
    case KILN_STRING:
    case KILN_DTYPE_UNDEFINED: break;
    }
    return 0;
}

bool kiln__dtype_valid(kiln_dtype dtype) { return kiln_dtype_bits(dtype) != 0 || dtype == KILN_STRING; }

bool kiln__dtype_bytes(kiln_dtype dtype, int64_t count, size_t *bytes) {
    uint32_t bits = kiln_dtype_bits(dtype);
    if (!bits || count < 0) return false;
    if ((uint64_t)count > (SIZE_MAX - 7) / bits) return false;
    *bytes = ((size_t)count * bits + 7) / 8;
    return true;
}

bool kiln__dtype_is_float(kiln_dtype dtype) {
    return dtype == KILN_FLOAT32 || dtype == KILN_FLOAT16 || dtype == KILN_BFLOAT16 || dtype == KILN_FLOAT64;
}

bool kiln__dtype_is_integer(kiln_dtype dtype) {
    switch (dtype) {
    case KILN_UINT8:
    case KILN_INT8:
    case KILN_UINT16:
    case KILN_INT16:
    case KILN_INT32:
    case KILN_INT64:
    case KILN_UINT32:
    case KILN_UINT64: return true;
    default: return false;
    }
}

bool kiln__dtype_is_signed(kiln_dtype dtype) {
    return dtype == KILN_INT8 || dtype == KILN_INT16 || dtype == KILN_INT32 || dtype == KILN_INT64 ||
           kiln__dtype_is_float(dtype);
}

float kiln__half_to_float(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000) << 16;
    uint32_t exp = (h >> 10) & 0x1f, mant = h & 0x3ff, bits;
    if (exp == 0) {
        if (mant == 0) {
            bits = sign;
        } else { /* subnormal: value = mant * 2^-24 */
            float f = (float)mant * 0x1p-24f;
            return sign ? -f : f;
        }
    } else if (exp == 31) {
        bits = sign | 0x7f800000u | (mant << 13);
    } else {
        bits = sign | ((exp + 112) << 23) | (mant << 13);
    }
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

uint16_t kiln__float_to_half(float f) {
    uint32_t x;
    memcpy(&x, &f, 4);
    uint16_t sign = (uint16_t)((x >> 16) & 0x8000);
    uint32_t absx = x & 0x7fffffffu;
    if (absx >= 0x7f800000u) /* inf or nan */
        return (uint16_t)(sign | 0x7c00 | (absx > 0x7f800000u ? 0x200 : 0));
    if (absx >= 0x477ff000u) return (uint16_t)(sign | 0x7c00); /* rounds to inf */
    if (absx < 0x38800000u) { /* subnormal or zero in half: round to nearest even of value * 2^24 */
        float a;
        memcpy(&a, &absx, 4);
        float scaled = a * 0x1p24f;
        float r = nearbyintf(scaled);
        return (uint16_t)(sign | (uint16_t)r);
    }
    uint32_t mant = absx & 0x7fffff;
    uint32_t exp = (absx >> 23) - 112;
    uint32_t half = (exp << 10) | (mant >> 13);
    uint32_t rest = mant & 0x1fff;
    if (rest > 0x1000 || (rest == 0x1000 && (half & 1))) half++;
    return (uint16_t)(sign | half);
}

float kiln__bf16_to_float(uint16_t b) {
    uint32_t bits = (uint32_t)b << 16;
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

uint16_t kiln__float_to_bf16(float f) {
    uint32_t x;
    memcpy(&x, &f, 4);
    if ((x & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((x >> 16) | 0x40);
    x += 0x7fffu + ((x >> 16) & 1);
    return (uint16_t)(x >> 16);
}

int64_t kiln__dims_volume(const kiln_dims *dims) {
    int64_t v = 1;
    for (int32_t i = 0; i < dims->nb_dims; i++) {
        int64_t d = dims->d[i];
        if (d < 0) return -1;
        if (d && v > INT64_MAX / d) return -1;
        v *= d;
    }
    return v;
}

bool kiln__dims_equal(const kiln_dims *a, const kiln_dims *b) {
    if (a->nb_dims != b->nb_dims) return false;
    for (int32_t i = 0; i < a->nb_dims; i++)
        if (a->d[i] != b->d[i]) return false;
    return true;
}

void kiln__dims_format(const kiln_dims *dims, char *buf, size_t size) {
    size_t n = 0;
    if (size == 0) return;
    buf[0] = 0;
    n += (size_t)snprintf(buf + n, size - n, "[");
    for (int32_t i = 0; i < dims->nb_dims && n < size; i++)
        n += (size_t)snprintf(buf + n, size - n, i ? ",%lld" : "%lld", (long long)dims->d[i]);
    if (n < size) snprintf(buf + n, size - n, "]");
}
