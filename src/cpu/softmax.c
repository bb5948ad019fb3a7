/* Softmax kernel: x is viewed as [outer, n, inner] and each of the outer * inner rows of n
 * values (stride inner) is normalized. The maximum is subtracted first so exp never
 * overflows. Contiguous float32 rows use vmath.h's exp (max 1.3 ulp) and sum in eight float32
 * partial sums (every term is in (0, 1]: relative error about n / 8 * 2^-24); strided rows and
 * other dtypes sum in double. */
#include "cpu.h"
#include "vmath.h"

#include <math.h>

typedef struct softmax_job {
    kiln_dtype dtype;
    const void *x;
    void *y;
    int64_t n, inner;
    bool log;
} softmax_job;

static void row_f32(const float *x, float *y, int64_t n, int64_t s, bool take_log) {
    float mx = -INFINITY;
    if (s == 1) {
        float m8[8] = {-INFINITY, -INFINITY, -INFINITY, -INFINITY, -INFINITY, -INFINITY, -INFINITY, -INFINITY};
        int64_t i = 0;
        for (; i + 8 <= n; i += 8)
            for (int k = 0; k < 8; k++) m8[k] = x[i + k] > m8[k] ? x[i + k] : m8[k];
        for (; i < n; i++) mx = x[i] > mx ? x[i] : mx;
        for (int k = 0; k < 8; k++) mx = m8[k] > mx ? m8[k] : mx;
        float sum = kiln__vm_exp_sum(x, y, n, mx);
        if (take_log) {
            float lse = logf(sum);
            for (int64_t k = 0; k < n; k++) y[k] = (x[k] - mx) - lse;
        } else {
            float inv = 1.0f / sum;
            for (int64_t k = 0; k < n; k++) y[k] *= inv;
        }
        return;
    }
    for (int64_t i = 0; i < n; i++) mx = x[i * s] > mx ? x[i * s] : mx;
    double sum = 0;
    for (int64_t i = 0; i < n; i++) {
        float e = kiln__vm_exp1(x[i * s] - mx);
        if (!take_log) y[i * s] = e;
        sum += e;
    }
    if (take_log) {
        float lse = (float)log(sum);
        for (int64_t i = 0; i < n; i++) y[i * s] = (x[i * s] - mx) - lse;
    } else {
        float inv = (float)(1 / sum);
        for (int64_t i = 0; i < n; i++) y[i * s] *= inv;
    }
}

/* Other float dtypes go through double, element by element. */
static void row_any(kiln_dtype t, const void *x, void *y, int64_t base, int64_t n, int64_t s, bool take_log) {
    double mx = -INFINITY, sum = 0;
    for (int64_t i = 0; i < n; i++) {
        double v = kiln__load_f64(x, t, base + i * s);
        mx = v > mx ? v : mx;
    }
    for (int64_t i = 0; i < n; i++) sum += exp(kiln__load_f64(x, t, base + i * s) - mx);
    double lse = log(sum);
    for (int64_t i = 0; i < n; i++) {
        double v = kiln__load_f64(x, t, base + i * s) - mx;
        kiln__store_f64(y, t, base + i * s, take_log ? v - lse : exp(v) / sum);
    }
}

static void softmax_range(void *arg, int64_t begin, int64_t end) {
    const softmax_job *j = arg;
    for (int64_t r = begin; r < end; r++) {
        int64_t base = (r / j->inner) * j->n * j->inner + r % j->inner;
        if (j->dtype == KILN_FLOAT32)
            row_f32((const float *)j->x + base, (float *)j->y + base, j->n, j->inner, j->log);
        else
            row_any(j->dtype, j->x, j->y, base, j->n, j->inner, j->log);
    }
}

kiln_status kiln__cpu_softmax(const kiln_layer *layer, const kiln__value *inputs, kiln__value *outputs,
                              kiln__cpu_ctx *ctx) {
    const kiln__softmax_params *p = &layer->p.softmax;
    const kiln_dims *d = &inputs[0].dims;
    int32_t axis;
    if (!kiln__norm_axis(p->axis, d->nb_dims, &axis))
        return kiln__layer_error(layer, KILN_INVALID_ARGUMENT, "axis %d is out of range for rank %d", p->axis,
                                 d->nb_dims);
    int64_t outer = 1, n = 1, inner = 1;
    for (int32_t i = 0; i < d->nb_dims; i++) {
        if (i < axis)
            outer *= d->d[i];
        else if (i == axis || p->coerce_2d)
            n *= d->d[i];
        else
            inner *= d->d[i];
    }
    if (outer * n * inner == 0) return KILN_OK;
    softmax_job job = {inputs[0].dtype, inputs[0].data, outputs[0].data, n, inner, p->log != 0};
    kiln__parallel_for(ctx->pool, outer * inner, KILN__MAX(1, 8192 / n), softmax_range, &job);
    return KILN_OK;
}
