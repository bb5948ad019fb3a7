/* Tile kernel: output coordinate c reads input coordinate c mod dim. */
#include "tensor_kernels.h"

typedef struct tile_job {
    const kiln_dims *in, *out;
    int64_t stride[KILN_MAX_DIMS];
    const char *x;
    char *y;
    size_t es;
} tile_job;

static void tile_range(void *arg, int64_t begin, int64_t end) {
    const tile_job *j = arg;
    for (int64_t e = begin; e < end; e++) {
        int64_t rest = e, off = 0;
        for (int32_t i = j->out->nb_dims - 1; i >= 0; i--) {
            off += (rest % j->out->d[i]) % j->in->d[i] * j->stride[i];
            rest /= j->out->d[i];
        }
        kiln__copy_elem(j->y + e * (int64_t)j->es, j->x + off * (int64_t)j->es, j->es);
    }
}

kiln_status kiln__cpu_tile(const kiln_layer *layer, const kiln__value *inputs, kiln__value *outputs,
                           kiln__cpu_ctx *ctx) {
    (void)layer;
    tile_job j = {.in = &inputs[0].dims, .out = &outputs[0].dims, .x = inputs[0].data, .y = outputs[0].data,
                  .es = kiln__elem_bytes(outputs[0].dtype)};
    int64_t n = kiln__dims_volume(j.out);
    if (n == 0) return KILN_OK;
    kiln__dims_strides(j.in, j.stride);
    kiln__parallel_for(ctx->pool, n, 4096, tile_range, &j);
    return KILN_OK;
}
