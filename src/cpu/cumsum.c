/* CumSum / CumProd kernel: one running sum (or product) per line along the axis, in double
 * for float dtypes and in wrapping 64-bit integers for integer ones. */
#include "tensor_kernels.h"

typedef struct cum_job {
    const kiln__cumsum_params *p;
    kiln_dtype dt;
    int64_t n, inner;
    const void *x;
    void *y;
} cum_job;

static void cum_range(void *arg, int64_t begin, int64_t end) {
    const cum_job *j = arg;
    bool is_float = kiln__dtype_is_float(j->dt), prod = j->p->product != 0;
    for (int64_t line = begin; line < end; line++) {
        int64_t o = line / j->inner, in = line % j->inner;
        double acc_f = prod ? 1 : 0;
        uint64_t acc_i = prod ? 1 : 0;
        for (int64_t s = 0; s < j->n; s++) {
            int64_t a = j->p->reverse ? j->n - 1 - s : s, e = (o * j->n + a) * j->inner + in;
            if (is_float) {
                double v = kiln__load_f64(j->x, j->dt, e);
                if (!j->p->exclusive) acc_f = prod ? acc_f * v : acc_f + v;
                kiln__store_f64(j->y, j->dt, e, acc_f);
                if (j->p->exclusive) acc_f = prod ? acc_f * v : acc_f + v;
            } else {
                uint64_t v = (uint64_t)kiln__load_i64(j->x, j->dt, e);
                if (!j->p->exclusive) acc_i = prod ? acc_i * v : acc_i + v;
                kiln__store_i64(j->y, j->dt, e, (int64_t)acc_i);
                if (j->p->exclusive) acc_i = prod ? acc_i * v : acc_i + v;
            }
        }
    }
}

kiln_status kiln__cpu_cumsum(const kiln_layer *layer, const kiln__value *inputs, kiln__value *outputs,
                             kiln__cpu_ctx *ctx) {
    const kiln__cumsum_params *p = (const kiln__cumsum_params *)layer->p.bytes;
    const kiln__value *x = &inputs[0];
    int32_t rank = x->dims.nb_dims, axis;
    int64_t a = p->axis;
    if (kiln__has_input(layer, inputs, 1)) {
        if (kiln__dims_volume(&inputs[1].dims) != 1)
            return kiln__layer_error(layer, KILN_INVALID_ARGUMENT, "input 1 (axis) must hold one value");
        a = kiln__scalar_i64(&inputs[1]);
    }
    if (!kiln__norm_axis(a, rank, &axis))
        return kiln__layer_error(layer, KILN_INVALID_ARGUMENT, "axis %lld is out of range for rank %d", (long long)a,
                                 rank);
    cum_job j = {.p = p, .dt = x->dtype, .n = x->dims.d[axis], .inner = 1, .x = x->data, .y = outputs[0].data};
    int64_t outer = 1;
    for (int32_t i = 0; i < axis; i++) outer *= x->dims.d[i];
    for (int32_t i = axis + 1; i < rank; i++) j.inner *= x->dims.d[i];
    kiln__parallel_for(ctx->pool, outer * j.inner, 64, cum_range, &j);
    return KILN_OK;
}
