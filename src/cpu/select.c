/* Select kernel: where(cond, a, b) with broadcasting, copying elements by size. */
#include "tensor_kernels.h"

typedef struct select_job {
    const kiln_dims *out;
    int64_t sc[KILN_MAX_DIMS], sa[KILN_MAX_DIMS], sb[KILN_MAX_DIMS];
    const uint8_t *c;
    const char *a, *b;
    char *y;
    size_t es;
} select_job;

static void select_range(void *arg, int64_t begin, int64_t end) {
    const select_job *j = arg;
    for (int64_t e = begin; e < end; e++) {
        bool take_a = j->c[kiln__offset_of(e, j->out, j->sc)] != 0;
        const char *src = take_a ? j->a + kiln__offset_of(e, j->out, j->sa) * (int64_t)j->es
                                 : j->b + kiln__offset_of(e, j->out, j->sb) * (int64_t)j->es;
        kiln__copy_elem(j->y + e * (int64_t)j->es, src, j->es);
    }
}

kiln_status kiln__cpu_select(const kiln_layer *layer, const kiln__value *inputs, kiln__value *outputs,
                             kiln__cpu_ctx *ctx) {
    (void)layer;
    select_job j = {.out = &outputs[0].dims, .c = inputs[0].data, .a = inputs[1].data, .b = inputs[2].data,
                    .y = outputs[0].data, .es = kiln__elem_bytes(outputs[0].dtype)};
    kiln__broadcast_strides(&inputs[0].dims, j.out, j.sc);
    kiln__broadcast_strides(&inputs[1].dims, j.out, j.sa);
    kiln__broadcast_strides(&inputs[2].dims, j.out, j.sb);
    kiln__parallel_for(ctx->pool, kiln__dims_volume(j.out), 4096, select_range, &j);
    return KILN_OK;
}
