/* Unary kernels: float functions in float or double, sign/abs/neg/bit-not on integers, not on
 * bool. f16/bf16 run in float and round once. */
#include "cpu.h"
#include "vmath.h"

#include <math.h>

/* One body for float and double: F(name) picks the libm function of the right precision. */
#define UNARY_LOOP(T, F, x, y, n, op)                                                                          \
    switch (op) {                                                                                              \
    case KILN_UNARY_EXP: for (int64_t i = 0; i < n; i++) y[i] = F(exp)(x[i]); break;                           \
    case KILN_UNARY_LOG: for (int64_t i = 0; i < n; i++) y[i] = F(log)(x[i]); break;                           \
    case KILN_UNARY_SQRT: for (int64_t i = 0; i < n; i++) y[i] = F(sqrt)(x[i]); break;                         \
    case KILN_UNARY_RECIP: for (int64_t i = 0; i < n; i++) y[i] = (T)1 / x[i]; break;                          \
    case KILN_UNARY_ABS: for (int64_t i = 0; i < n; i++) y[i] = F(fabs)(x[i]); break;                          \
    case KILN_UNARY_NEG: for (int64_t i = 0; i < n; i++) y[i] = -x[i]; break;                                  \
    case KILN_UNARY_SIN: for (int64_t i = 0; i < n; i++) y[i] = F(sin)(x[i]); break;                           \
    case KILN_UNARY_COS: for (int64_t i = 0; i < n; i++) y[i] = F(cos)(x[i]); break;                           \
    case KILN_UNARY_TAN: for (int64_t i = 0; i < n; i++) y[i] = F(tan)(x[i]); break;                           \
    case KILN_UNARY_SINH: for (int64_t i = 0; i < n; i++) y[i] = F(sinh)(x[i]); break;                         \
    case KILN_UNARY_COSH: for (int64_t i = 0; i < n; i++) y[i] = F(cosh)(x[i]); break;                         \
    case KILN_UNARY_ASIN: for (int64_t i = 0; i < n; i++) y[i] = F(asin)(x[i]); break;                         \
    case KILN_UNARY_ACOS: for (int64_t i = 0; i < n; i++) y[i] = F(acos)(x[i]); break;                         \
    case KILN_UNARY_ATAN: for (int64_t i = 0; i < n; i++) y[i] = F(atan)(x[i]); break;                         \
    case KILN_UNARY_ASINH: for (int64_t i = 0; i < n; i++) y[i] = F(asinh)(x[i]); break;                       \
    case KILN_UNARY_ACOSH: for (int64_t i = 0; i < n; i++) y[i] = F(acosh)(x[i]); break;                       \
    case KILN_UNARY_ATANH: for (int64_t i = 0; i < n; i++) y[i] = F(atanh)(x[i]); break;                       \
    case KILN_UNARY_CEIL: for (int64_t i = 0; i < n; i++) y[i] = F(ceil)(x[i]); break;                         \
    case KILN_UNARY_FLOOR: for (int64_t i = 0; i < n; i++) y[i] = F(floor)(x[i]); break;                       \
    /* nearbyint rounds half to even in the default rounding mode. */                                          \
    case KILN_UNARY_ROUND: for (int64_t i = 0; i < n; i++) y[i] = F(nearbyint)(x[i]); break;                   \
    case KILN_UNARY_ERF: for (int64_t i = 0; i < n; i++) y[i] = F(erf)(x[i]); break;                           \
    case KILN_UNARY_SIGN:                                                                                      \
        for (int64_t i = 0; i < n; i++) /* sign(-0) is 0; NaN stays NaN */                                    \
            y[i] = x[i] > 0 ? (T)1 : x[i] < 0 ? (T)-1 : x[i] == 0 ? (T)0 : x[i];                                \
        break;                                                                                                 \
    default: break;                                                                                            \
    }

#define F32(name) name##f
#define F64(name) name

/* Exp and erf go through vmath.h (max 1.3 and 2.5 ulp); the rest through libm. */
static void unary_row_f32(int32_t op, const float *x, float *y, int64_t n) {
    if (op == KILN_UNARY_EXP || op == KILN_UNARY_ERF) {
        kiln__vm_row(op == KILN_UNARY_EXP ? KILN__VM_EXP : KILN__VM_ERF, x, y, n);
        return;
    }
    UNARY_LOOP(float, F32, x, y, n, op)
}

static void unary_row_f64(int32_t op, const double *x, double *y, int64_t n) { UNARY_LOOP(double, F64, x, y, n, op) }

typedef struct unary_job {
    int32_t op;
    kiln_dtype dtype;
    const void *in;
    void *out;
} unary_job;

static void unary_range(void *arg, int64_t begin, int64_t end) {
    const unary_job *j = arg;
    const uint8_t *in8 = j->in;
    uint8_t *out8 = j->out;
    if (j->op == KILN_UNARY_ISNAN || j->op == KILN_UNARY_ISINF) {
        bool nan = j->op == KILN_UNARY_ISNAN;
        if (j->dtype == KILN_FLOAT32) { /* attention masks: no conversion per element */
            const float *x = j->in;
            if (nan)
                for (int64_t i = begin; i < end; i++) out8[i] = isnan(x[i]) != 0;
            else
                for (int64_t i = begin; i < end; i++) out8[i] = isinf(x[i]) != 0;
            return;
        }
        for (int64_t i = begin; i < end; i++) {
            double v = kiln__load_f64(j->in, j->dtype, i);
            out8[i] = nan ? isnan(v) != 0 : isinf(v) != 0; /* glibc isinf gives -1 for -inf */
        }
        return;
    }
    if (j->op == KILN_UNARY_NOT) {
        for (int64_t i = begin; i < end; i++) out8[i] = !in8[i];
        return;
    }
    switch (j->dtype) {
    case KILN_FLOAT32:
        unary_row_f32(j->op, (const float *)j->in + begin, (float *)j->out + begin, end - begin);
        return;
    case KILN_FLOAT64:
        unary_row_f64(j->op, (const double *)j->in + begin, (double *)j->out + begin, end - begin);
        return;
    case KILN_FLOAT16:
    case KILN_BFLOAT16: {
        bool half = j->dtype == KILN_FLOAT16;
        const uint16_t *in = j->in;
        uint16_t *out = j->out;
        float buf[256];
        for (int64_t i = begin; i < end; i += 256) {
            int64_t m = KILN__MIN(256, end - i);
            for (int64_t k = 0; k < m; k++) buf[k] = half ? kiln__half_to_float(in[i + k]) : kiln__bf16_to_float(in[i + k]);
            unary_row_f32(j->op, buf, buf, m);
            for (int64_t k = 0; k < m; k++) out[i + k] = half ? kiln__float_to_half(buf[k]) : kiln__float_to_bf16(buf[k]);
        }
        return;
    }
    default: break;
    }
    /* Integers: computed on the 64-bit value; storing keeps the low bits, so negation and abs
     * wrap at the type's minimum as numpy does. */
    bool is_signed = kiln__dtype_is_signed(j->dtype);
    for (int64_t i = begin; i < end; i++) {
        int64_t x = kiln__load_i64(j->in, j->dtype, i);
        uint64_t ux = (uint64_t)x, r;
        switch (j->op) {
        case KILN_UNARY_ABS: r = is_signed && x < 0 ? 0 - ux : ux; break;
        case KILN_UNARY_NEG: r = 0 - ux; break;
        case KILN_UNARY_SIGN: r = is_signed && x < 0 ? (uint64_t)-1 : x != 0; break;
        default: r = ~ux; break; /* bit_not */
        }
        kiln__store_i64(j->out, j->dtype, i, (int64_t)r);
    }
}

kiln_status kiln__cpu_unary(const kiln_layer *layer, const kiln__value *inputs, kiln__value *outputs,
                            kiln__cpu_ctx *ctx) {
    unary_job job = {layer->p.unary.op, inputs[0].dtype, inputs[0].data, outputs[0].data};
    kiln__parallel_for(ctx->pool, kiln__dims_volume(&inputs[0].dims), 16384, unary_range, &job);
    return KILN_OK;
}
