/* Activation kernels and the shared activation formulas used by fused epilogues. */
#include "cpu.h"
#include "vmath.h"

#include <math.h>

/* One formula per kind, written once for float and double (T, and the matching libm suffix). */
#define KILN__ACT_BODY(T, EXP, LOG1P, TANH, ERF, FABS)                                                        \
    switch (kind) {                                                                                            \
    case KILN_ACT_RELU: return x < 0 ? (T)0 : x;                                                               \
    case KILN_ACT_SIGMOID: {                                                                                   \
        T e = EXP(-FABS(x)); /* never overflows */                                                            \
        return x >= 0 ? 1 / (1 + e) : e / (1 + e);                                                             \
    }                                                                                                          \
    case KILN_ACT_TANH: return TANH(x);                                                                        \
    case KILN_ACT_CLIP: return x < alpha ? alpha : x > beta ? beta : x;                                        \
    case KILN_ACT_LEAKY_RELU: return x >= 0 ? x : alpha * x;                                                   \
    case KILN_ACT_ELU: return x >= 0 ? x : alpha * (EXP(x) - 1);                                               \
    case KILN_ACT_SELU: return beta * (x >= 0 ? x : alpha * (EXP(x) - 1));                                     \
    case KILN_ACT_SOFTPLUS: return (x > 0 ? x : 0) + LOG1P(EXP(-FABS(x)));                                     \
    case KILN_ACT_SOFTSIGN: return x / (1 + FABS(x));                                                          \
    case KILN_ACT_GELU_ERF: return (T)0.5 * x * (1 + ERF(x * (T)0.70710678118654752440));                      \
    case KILN_ACT_GELU_TANH:                                                                                   \
        return (T)0.5 * x * (1 + TANH((T)0.79788456080286535588 * (x + (T)0.044715 * x * x * x)));             \
    case KILN_ACT_SILU: {                                                                                      \
        T e = EXP(-FABS(x));                                                                                   \
        return x * (x >= 0 ? 1 / (1 + e) : e / (1 + e));                                                      \
    }                                                                                                          \
    case KILN_ACT_HARD_SIGMOID: {                                                                              \
        T y = alpha * x + beta;                                                                                \
        return y < 0 ? (T)0 : y > 1 ? (T)1 : y;                                                                \
    }                                                                                                          \
    case KILN_ACT_HARD_SWISH: {                                                                                \
        T y = x / 6 + (T)0.5;                                                                                  \
        return x * (y < 0 ? (T)0 : y > 1 ? (T)1 : y);                                                          \
    }                                                                                                          \
    case KILN_ACT_THRESHOLDED_RELU: return x > alpha ? x : (T)0;                                               \
    case KILN_ACT_CELU: {                                                                                      \
        T neg = alpha * (EXP(x / alpha) - 1);                                                                  \
        return x != x ? x : (x > 0 ? x : (T)0) + (neg < 0 ? neg : (T)0);                                       \
    }                                                                                                          \
    case KILN_ACT_MISH: return x * TANH((x > 0 ? x : 0) + LOG1P(EXP(-FABS(x))));                               \
    case KILN_ACT_SCALED_TANH: return alpha * TANH(beta * x);                                                  \
    default: return x;                                                                                         \
    }

float kiln__act_f32(int32_t kind, float alpha, float beta, float x) {
    KILN__ACT_BODY(float, expf, log1pf, tanhf, erff, fabsf)
}

static double act_f64(int32_t kind, double alpha, double beta, double x) {
    KILN__ACT_BODY(double, exp, log1p, tanh, erf, fabs)
}

/* The piecewise-linear kinds as plain loops the compiler vectorizes: compiled once for the
 * baseline ISA and once for AVX2 (picked at run time). Returns false for other kinds. */
#define SIMPLE_ACT_BODY                                                                                        \
    switch (kind) {                                                                                            \
    case KILN_ACT_RELU:                                                                                        \
        for (int64_t i = 0; i < n; i++) y[i] = x[i] < 0 ? 0.0f : x[i];                                         \
        return true;                                                                                           \
    case KILN_ACT_LEAKY_RELU:                                                                                  \
        for (int64_t i = 0; i < n; i++) y[i] = x[i] >= 0 ? x[i] : alpha * x[i];                                \
        return true;                                                                                           \
    case KILN_ACT_CLIP:                                                                                        \
        for (int64_t i = 0; i < n; i++) y[i] = x[i] < alpha ? alpha : x[i] > beta ? beta : x[i];               \
        return true;                                                                                           \
    case KILN_ACT_HARD_SWISH:                                                                                  \
        for (int64_t i = 0; i < n; i++) {                                                                      \
            float t = x[i] / 6 + 0.5f;                                                                         \
            y[i] = x[i] * (t < 0 ? 0.0f : t > 1 ? 1.0f : t);                                                   \
        }                                                                                                      \
        return true;                                                                                           \
    default: return false;                                                                                     \
    }

static bool simple_act(int32_t kind, float alpha, float beta, const float *x, float *y, int64_t n) {
    SIMPLE_ACT_BODY
}

#ifdef KILN__VM_X86
static KILN__VM_AVX2 bool simple_act_avx2(int32_t kind, float alpha, float beta, const float *x, float *y,
                                          int64_t n) {
    SIMPLE_ACT_BODY
}
#endif

/* Out of place over n floats (x may equal y): piecewise-linear kinds as plain loops, the
 * transcendental ones through vmath.h, the rest through the shared formulas. */
static void act_row_f32(int32_t kind, float alpha, float beta, const float *x, float *y, int64_t n) {
#ifdef KILN__VM_X86
    if (kiln__vm_have_avx2() ? simple_act_avx2(kind, alpha, beta, x, y, n) : simple_act(kind, alpha, beta, x, y, n))
        return;
#else
    if (simple_act(kind, alpha, beta, x, y, n)) return;
#endif
    switch (kind) {
    case KILN_ACT_SIGMOID: kiln__vm_row(KILN__VM_SIGMOID, x, y, n); return;
    case KILN_ACT_SILU: kiln__vm_row(KILN__VM_SILU, x, y, n); return;
    case KILN_ACT_TANH: kiln__vm_row(KILN__VM_TANH, x, y, n); return;
    case KILN_ACT_GELU_ERF: kiln__vm_row(KILN__VM_GELU_ERF, x, y, n); return;
    case KILN_ACT_GELU_TANH: kiln__vm_row(KILN__VM_GELU_TANH, x, y, n); return;
    default:
        for (int64_t i = 0; i < n; i++) y[i] = kiln__act_f32(kind, alpha, beta, x[i]);
        return;
    }
}

void kiln__apply_act_f32(const kiln__act *act, float *x, int64_t n) {
    if (act->kind < 0) return;
    act_row_f32(act->kind, act->alpha, act->beta, x, x, n);
}

/* An integer bound from a float clip limit, clamped so the conversion is defined. */
static int64_t clip_bound(double v) {
    if (v >= 9223372036854775807.0) return INT64_MAX;
    if (v <= -9223372036854775808.0) return INT64_MIN;
    return (int64_t)v;
}

typedef struct act_job {
    const kiln__activation_params *p;
    kiln_dtype dtype;
    const void *in;
    void *out;
} act_job;

static void act_range(void *arg, int64_t begin, int64_t end) {
    const act_job *j = arg;
    const kiln__activation_params *p = j->p;
    switch (j->dtype) {
    case KILN_FLOAT32:
        act_row_f32(p->kind, p->alpha, p->beta, (const float *)j->in + begin, (float *)j->out + begin, end - begin);
        return;
    case KILN_FLOAT64:
        for (int64_t i = begin; i < end; i++)
            ((double *)j->out)[i] = act_f64(p->kind, p->alpha, p->beta, ((const double *)j->in)[i]);
        return;
    case KILN_FLOAT16:
    case KILN_BFLOAT16: {
        /* Computed in float, rounded once on the way out. */
        bool half = j->dtype == KILN_FLOAT16;
        const uint16_t *in = j->in;
        uint16_t *out = j->out;
        float buf[256];
        for (int64_t i = begin; i < end; i += 256) {
            int64_t m = KILN__MIN(256, end - i);
            for (int64_t k = 0; k < m; k++) buf[k] = half ? kiln__half_to_float(in[i + k]) : kiln__bf16_to_float(in[i + k]);
            act_row_f32(p->kind, p->alpha, p->beta, buf, buf, m);
            for (int64_t k = 0; k < m; k++) out[i + k] = half ? kiln__float_to_half(buf[k]) : kiln__float_to_bf16(buf[k]);
        }
        return;
    }
    default: /* signed integers: relu and clip */
        for (int64_t i = begin; i < end; i++) {
            int64_t x = kiln__load_i64(j->in, j->dtype, i);
            if (p->kind == KILN_ACT_RELU) {
                x = x < 0 ? 0 : x;
            } else if ((double)x < (double)p->alpha) {
                x = clip_bound(ceil((double)p->alpha));
            } else if ((double)x > (double)p->beta) {
                x = clip_bound(floor((double)p->beta));
            }
            kiln__store_i64(j->out, j->dtype, i, x);
        }
        return;
    }
}

kiln_status kiln__cpu_activation(const kiln_layer *layer, const kiln__value *inputs, kiln__value *outputs,
                                 kiln__cpu_ctx *ctx) {
    act_job job = {&layer->p.act, inputs[0].dtype, inputs[0].data, outputs[0].data};
    int64_t n = kiln__dims_volume(&inputs[0].dims);
    kiln__parallel_for(ctx->pool, n, 16384, act_range, &job);
    return KILN_OK;
}
