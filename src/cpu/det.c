/* Det kernel: LU decomposition with partial pivoting in double, one matrix per task. */
#include "cpu.h"

#include <math.h>

#define DET_MAX_STACK 32 /* matrices up to this size are factored on the stack */

typedef struct det_job {
    kiln_dtype dtype;
    const void *x;
    void *y;
    int64_t m;
    double *scratch; /* m * m doubles per matrix for larger matrices, NULL otherwise */
} det_job;

static double det_of(double *a, int64_t m) {
    double det = 1;
    for (int64_t c = 0; c < m; c++) {
        int64_t piv = c;
        for (int64_t r = c + 1; r < m; r++)
            if (fabs(a[r * m + c]) > fabs(a[piv * m + c])) piv = r;
        if (a[piv * m + c] == 0) return 0;
        if (piv != c) {
            for (int64_t k = 0; k < m; k++) {
                double t = a[c * m + k];
                a[c * m + k] = a[piv * m + k];
                a[piv * m + k] = t;
            }
            det = -det;
        }
        double d = a[c * m + c];
        det *= d;
        for (int64_t r = c + 1; r < m; r++) {
            double f = a[r * m + c] / d;
            for (int64_t k = c + 1; k < m; k++) a[r * m + k] -= f * a[c * m + k];
        }
    }
    return det;
}

static void det_range(void *arg, int64_t begin, int64_t end) {
    const det_job *j = arg;
    double stack[DET_MAX_STACK * DET_MAX_STACK];
    int64_t mm = j->m * j->m;
    for (int64_t i = begin; i < end; i++) {
        double *a = j->scratch ? j->scratch + i * mm : stack;
        for (int64_t e = 0; e < mm; e++) a[e] = kiln__load_f64(j->x, j->dtype, i * mm + e);
        kiln__store_f64(j->y, j->dtype, i, det_of(a, j->m));
    }
}

kiln_status kiln__cpu_det(const kiln_layer *layer, const kiln__value *inputs, kiln__value *outputs,
                          kiln__cpu_ctx *ctx) {
    const kiln_dims *xd = &inputs[0].dims;
    det_job j = {inputs[0].dtype, inputs[0].data, outputs[0].data, xd->d[xd->nb_dims - 1], NULL};
    int64_t count = kiln__dims_volume(&outputs[0].dims);
    if (count == 0) return KILN_OK;
    if (j.m > DET_MAX_STACK) {
        size_t bytes;
        if (!kiln__mul_size((size_t)count, (size_t)(j.m * j.m) * sizeof(double), &bytes))
            return kiln__layer_error(layer, KILN_OUT_OF_MEMORY, "scratch size overflows");
        j.scratch = kiln__malloc(ctx->alloc, bytes);
        if (!j.scratch) return kiln__layer_error(layer, KILN_OUT_OF_MEMORY, "no memory for %zu bytes of scratch", bytes);
    }
    kiln__parallel_for(ctx->pool, count, 1 + 4096 / (j.m * j.m * j.m + 1), det_range, &j);
    kiln__free(ctx->alloc, j.scratch);
    return KILN_OK;
}
