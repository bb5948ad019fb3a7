/* Einsum kernel: a direct loop nest. For each output element, every combination of the
 * summed labels is visited and the product of the inputs accumulated (double for float
 * dtypes, wrapping int64 for integer ones). Each input is read through per-label strides:
 * a label repeated in one input adds its strides (the diagonal), a broadcast dim of 1 has
 * stride 0. */
#include "tensor_kernels.h"

typedef struct einsum_job {
    const kiln__einsum_plan *plan;
    const kiln__value *inputs;
    kiln__value *y;
    int32_t nb_sum;
    int32_t sum_labels[KILN__EINSUM_MAX_LABELS];
    int64_t in_stride[KILN__EINSUM_MAX_INPUTS][KILN__EINSUM_MAX_LABELS];
    int64_t nb_sum_iters;
} einsum_job;

static void einsum_range(void *arg, int64_t begin, int64_t end) {
    const einsum_job *j = arg;
    const kiln__einsum_plan *pl = j->plan;
    kiln_dtype dt = j->y->dtype;
    bool is_float = kiln__dtype_is_float(dt);
    for (int64_t e = begin; e < end; e++) {
        int64_t base[KILN__EINSUM_MAX_INPUTS] = {0}, rest = e;
        for (int32_t d = pl->out_rank - 1; d >= 0; d--) {
            int32_t l = pl->out_labels[d];
            int64_t c = rest % pl->size[l];
            rest /= pl->size[l];
            for (int32_t i = 0; i < pl->nb_inputs; i++) base[i] += c * j->in_stride[i][l];
        }
        double acc_f = 0;
        uint64_t acc_i = 0;
        for (int64_t s = 0; s < j->nb_sum_iters; s++) {
            int64_t off[KILN__EINSUM_MAX_INPUTS];
            for (int32_t i = 0; i < pl->nb_inputs; i++) off[i] = base[i];
            int64_t r = s;
            for (int32_t k = j->nb_sum - 1; k >= 0; k--) {
                int32_t l = j->sum_labels[k];
                int64_t c = r % pl->size[l];
                r /= pl->size[l];
                for (int32_t i = 0; i < pl->nb_inputs; i++) off[i] += c * j->in_stride[i][l];
            }
            if (is_float) {
                double prod = 1;
                for (int32_t i = 0; i < pl->nb_inputs; i++) prod *= kiln__load_f64(j->inputs[i].data, dt, off[i]);
                acc_f += prod;
            } else {
                uint64_t prod = 1;
                for (int32_t i = 0; i < pl->nb_inputs; i++)
                    prod *= (uint64_t)kiln__load_i64(j->inputs[i].data, dt, off[i]);
                acc_i += prod;
            }
        }
        if (is_float) kiln__store_f64(j->y->data, dt, e, acc_f);
        else kiln__store_i64(j->y->data, dt, e, (int64_t)acc_i);
    }
}

kiln_status kiln__cpu_einsum(const kiln_layer *layer, const kiln__value *inputs, kiln__value *outputs,
                             kiln__cpu_ctx *ctx) {
    kiln__einsum_plan plan;
    KILN__TRY(kiln__einsum_resolve(layer, inputs, &plan));
    einsum_job j = {.plan = &plan, .inputs = inputs, .y = &outputs[0], .nb_sum_iters = 1};
    bool in_out[KILN__EINSUM_MAX_LABELS] = {false};
    for (int32_t d = 0; d < plan.out_rank; d++) in_out[plan.out_labels[d]] = true;
    for (int32_t l = 0; l < plan.nb_labels; l++)
        if (!in_out[l] && plan.size[l] >= 0) {
            j.sum_labels[j.nb_sum++] = l;
            j.nb_sum_iters *= plan.size[l];
        }
    for (int32_t i = 0; i < plan.nb_inputs; i++) {
        int64_t stride[KILN_MAX_DIMS];
        kiln__dims_strides(&inputs[i].dims, stride);
        for (int32_t d = 0; d < plan.rank[i]; d++) {
            int32_t l = plan.label_of[i][d];
            if (inputs[i].dims.d[d] == 1 && plan.size[l] != 1) continue; /* broadcast */
            j.in_stride[i][l] += stride[d];
        }
    }
    int64_t n = kiln__dims_volume(&outputs[0].dims);
    kiln__parallel_for(ctx->pool, n, KILN__MAX(1, 65536 / KILN__MAX(j.nb_sum_iters, 1)), einsum_range, &j);
    return KILN_OK;
}
