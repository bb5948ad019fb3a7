/* Slice: a strided copy. Dims the slice keeps whole merge with their neighbours, so the
 * inner loop is one memcpy per row whenever the last dim has step 1. */
#include "cpu.h"
#include "../network/layer_resolve.h"

#include <string.h>

typedef struct slice_job {
    int32_t n;
    int64_t count[KILN_MAX_DIMS], stride[KILN_MAX_DIMS]; /* stride in input elements, may be negative */
    int64_t base;
    size_t es;
    const char *src;
    char *dst;
} slice_job;

static void slice_rows(void *arg, int64_t begin, int64_t end) {
    const slice_job *j = arg;
    int32_t last = j->n - 1;
    int64_t len = j->count[last], step = j->stride[last];
    for (int64_t r = begin; r < end; r++) {
        int64_t off = j->base, rest = r;
        for (int32_t k = last - 1; k >= 0; k--) {
            off += (rest % j->count[k]) * j->stride[k];
            rest /= j->count[k];
        }
        char *d = j->dst + (size_t)(r * len) * j->es;
        if (step == 1) {
            memcpy(d, j->src + off * (int64_t)j->es, (size_t)len * j->es);
            continue;
        }
        switch (j->es) {
        case 1:
            for (int64_t i = 0; i < len; i++) ((uint8_t *)d)[i] = ((const uint8_t *)j->src)[off + i * step];
            break;
        case 2:
            for (int64_t i = 0; i < len; i++) ((uint16_t *)d)[i] = ((const uint16_t *)j->src)[off + i * step];
            break;
        case 4:
            for (int64_t i = 0; i < len; i++) ((uint32_t *)d)[i] = ((const uint32_t *)j->src)[off + i * step];
            break;
        case 8:
            for (int64_t i = 0; i < len; i++) ((uint64_t *)d)[i] = ((const uint64_t *)j->src)[off + i * step];
            break;
        default:
            for (int64_t i = 0; i < len; i++)
                memcpy(d + (size_t)i * j->es, j->src + (off + i * step) * (int64_t)j->es, j->es);
        }
    }
}

kiln_status kiln__cpu_slice(const kiln_layer *layer, const kiln__value *inputs, kiln__value *outputs,
                            kiln__cpu_ctx *ctx) {
    const kiln__value *x = &inputs[0];
    kiln__value *y = &outputs[0];
    kiln__slice_plan plan;
    KILN__TRY(kiln__slice_resolve(layer, inputs, &plan));
    int32_t rank = x->dims.nb_dims;
    for (int32_t i = 0; i < rank; i++)
        if (plan.count[i] != y->dims.d[i])
            return kiln__layer_error(layer, KILN_INTERNAL_ERROR, "output dim %d is %lld, the slice gives %lld", i,
                                     (long long)y->dims.d[i], (long long)plan.count[i]);
    int64_t volume = kiln__dims_volume(&y->dims);
    if (volume == 0) return KILN_OK;
    slice_job j = {.es = kiln__elem_bytes(x->dtype), .src = x->data, .dst = y->data};
    int64_t istride = 1;
    int64_t stride[KILN_MAX_DIMS];
    for (int32_t i = rank - 1; i >= 0; i--) {
        stride[i] = istride;
        istride *= x->dims.d[i];
    }
    for (int32_t i = 0; i < rank; i++) {
        j.base += plan.start[i] * stride[i];
        int64_t c = plan.count[i];
        if (c == 1) continue; /* the step does not matter (and may be huge) */
        int64_t s = plan.step[i] * stride[i];
        if (j.n > 0 && j.stride[j.n - 1] == s * c) { /* adjacent in the input: one dim */
            j.count[j.n - 1] *= c;
            j.stride[j.n - 1] = s;
            continue;
        }
        j.count[j.n] = c;
        j.stride[j.n] = s;
        j.n++;
    }
    if (j.n == 0) {
        j.n = 1;
        j.count[0] = 1;
        j.stride[0] = 1;
    }
    int64_t rows = volume / j.count[j.n - 1];
    kiln__parallel_for(ctx->pool, rows, KILN__MAX(1, 16384 / j.count[j.n - 1]), slice_rows, &j);
    return KILN_OK;
}
