/* Col2Im kernel: each output element gathers the columns that cover it (no write races, so
 * rows of (n, c) run in parallel). */
#include "cpu.h"

#include "../network/vision_layers.h"

#include <string.h>

typedef struct c2i_job {
    kiln__col2im_plan plan;
    kiln_dtype dtype;
    const void *x;
    void *y;
    int64_t blocks, cols, pixels;
} c2i_job;

static void c2i_range(void *arg, int64_t begin, int64_t end) {
    const c2i_job *j = arg;
    const kiln__col2im_plan *p = &j->plan;
    int32_t k = p->k;
    for (int64_t r = begin; r < end; r++) {
        /* r is one (n, c) plane; its rows of x are r * blocks .. + blocks. */
        int64_t xbase = r * j->blocks * j->cols;
        for (int64_t px = 0; px < j->pixels; px++)
            kiln__store_f64(j->y, j->dtype, r * j->pixels + px, 0);
        for (int64_t b = 0; b < j->blocks; b++)
            for (int64_t col = 0; col < j->cols; col++) {
                int64_t pos = 0, stride = 1, brest = b, crest = col;
                bool inside = true;
                for (int32_t d = k - 1; d >= 0 && inside; d--) {
                    int64_t kb = brest % p->block[d], kc = crest % p->cols[d];
                    brest /= p->block[d];
                    crest /= p->cols[d];
                    int64_t at = kc * p->stride[d] - p->pad_begin[d] + kb * p->dilation[d];
                    inside = at >= 0 && at < p->image[d];
                    pos += at * stride;
                    stride *= p->image[d];
                }
                if (!inside) continue;
                int64_t o = r * j->pixels + pos;
                double v = kiln__load_f64(j->y, j->dtype, o) +
                           kiln__load_f64(j->x, j->dtype, xbase + b * j->cols + col);
                kiln__store_f64(j->y, j->dtype, o, v);
            }
    }
}

kiln_status kiln__cpu_col2im(const kiln_layer *layer, const kiln__value *inputs, kiln__value *outputs,
                             kiln__cpu_ctx *ctx) {
    c2i_job j = {.dtype = inputs[0].dtype, .x = inputs[0].data, .y = outputs[0].data, .blocks = 1, .cols = 1,
                 .pixels = 1};
    KILN__TRY(kiln__col2im_resolve(layer, inputs, &j.plan));
    if (!j.plan.known) return kiln__layer_error(layer, KILN_INTERNAL_ERROR, "the block geometry is unknown");
    for (int32_t d = 0; d < j.plan.k; d++) {
        j.blocks *= j.plan.block[d];
        j.cols *= j.plan.cols[d];
        j.pixels *= j.plan.image[d];
    }
    int64_t planes = inputs[0].dims.d[0] * j.plan.channels;
    if (planes == 0 || j.pixels == 0) return KILN_OK;
    kiln__parallel_for(ctx->pool, planes, 1, c2i_range, &j);
    return KILN_OK;
}
