/* Expand kernel: a broadcast copy. */
#include "tensor_kernels.h"

typedef struct expand_job {
    const kiln_dims *out;
    int64_t sx[KILN_MAX_DIMS];
    const char *x;
    char *y;
    size_t es;
} expand_job;

static void expand_range(void *arg, int64_t begin, int64_t end) {
    const expand_job *j = arg;
    for (int64_t e = begin; e < end; e++)
        kiln__copy_elem(j->y + e * (int64_t)j->es, j->x + kiln__offset_of(e, j->out, j->sx) * (int64_t)j->es, j->es);
}

kiln_status kiln__cpu_expand(const kiln_layer *layer, const kiln__value *inputs, kiln__value *outputs,
                             kiln__cpu_ctx *ctx) {
    (void)layer;
    expand_job j = {.out = &outputs[0].dims, .x = inputs[0].data, .y = outputs[0].data,
                    .es = kiln__elem_bytes(outputs[0].dtype)};
    kiln__broadcast_strides(&inputs[0].dims, j.out, j.sx);
    kiln__parallel_for(ctx->pool, kiln__dims_volume(j.out), 4096, expand_range, &j);
    return KILN_OK;
}
