/* LRN kernel: x viewed as [N, C, S]; for each (n, s) the window sums of squares over channels
 * are accumulated in double. */
#include "cpu.h"

#include "../network/lrn.h"

#include <math.h>

typedef struct lrn_job {
    const kiln__lrn_params *p;
    kiln_dtype dtype;
    const void *x;
    void *y;
    int64_t c, s;
} lrn_job;

static void lrn_range(void *arg, int64_t begin, int64_t end) {
    const lrn_job *j = arg;
    const kiln__lrn_params *p = j->p;
    int64_t before = (p->size - 1) / 2, after = p->size - 1 - before;
    double scale = (double)p->alpha / p->size;
    for (int64_t r = begin; r < end; r++) {
        /* Row r is one (n, s) pair; channel k of it sits at base + k * s. */
        int64_t n = r / j->s, sp = r % j->s, base = n * j->c * j->s + sp;
        for (int64_t k = 0; k < j->c; k++) {
            int64_t lo = k - before < 0 ? 0 : k - before, hi = k + after >= j->c ? j->c - 1 : k + after;
            double sum = 0;
            for (int64_t i = lo; i <= hi; i++) {
                double v = kiln__load_f64(j->x, j->dtype, base + i * j->s);
                sum += v * v;
            }
            double v = kiln__load_f64(j->x, j->dtype, base + k * j->s);
            kiln__store_f64(j->y, j->dtype, base + k * j->s, v / pow((double)p->bias + scale * sum, (double)p->beta));
        }
    }
}

kiln_status kiln__cpu_lrn(const kiln_layer *layer, const kiln__value *inputs, kiln__value *outputs,
                          kiln__cpu_ctx *ctx) {
    const kiln_dims *d = &inputs[0].dims;
    int64_t s = 1;
    for (int32_t i = 2; i < d->nb_dims; i++) s *= d->d[i];
    lrn_job job = {(const kiln__lrn_params *)layer->p.bytes, inputs[0].dtype, inputs[0].data, outputs[0].data,
                   d->d[1], s};
    int64_t rows = d->d[0] * s;
    kiln__parallel_for(ctx->pool, rows, 1 + 4096 / (job.c * job.p->size + 1), lrn_range, &job);
    return KILN_OK;
}
