/* Concat: for each index before the axis, each input contributes one contiguous block. */
#include "cpu.h"
#include "../network/layer_resolve.h"

#include <string.h>

typedef struct concat_job {
    const kiln__value *inputs;
    int32_t nb_inputs;
    size_t *in_block;            /* bytes of one block of input i */
    size_t out_block;            /* bytes of one output block (sum of in_block) */
    char *dst;
} concat_job;

static void concat_range(void *arg, int64_t begin, int64_t end) {
    const concat_job *j = arg;
    for (int64_t o = begin; o < end; o++) {
        char *d = j->dst + (size_t)o * j->out_block;
        for (int32_t i = 0; i < j->nb_inputs; i++) {
            if (!j->in_block[i]) continue;
            memcpy(d, (const char *)j->inputs[i].data + (size_t)o * j->in_block[i], j->in_block[i]);
            d += j->in_block[i];
        }
    }
}

kiln_status kiln__cpu_concat(const kiln_layer *layer, const kiln__value *inputs, kiln__value *outputs,
                             kiln__cpu_ctx *ctx) {
    const kiln__value *y = &outputs[0];
    int32_t rank = y->dims.nb_dims, axis;
    size_t es = kiln__elem_bytes(y->dtype);
    if (!kiln__norm_axis(layer->p.concat.axis, rank, &axis) || !es)
        return kiln__layer_error(layer, KILN_INTERNAL_ERROR, "bad axis or dtype at run time");
    int64_t outer = 1, inner = 1;
    for (int32_t k = 0; k < axis; k++) outer *= y->dims.d[k];
    for (int32_t k = axis + 1; k < rank; k++) inner *= y->dims.d[k];
    if (outer == 0 || inner == 0) return KILN_OK;
    size_t *in_block = kiln__malloc(ctx->alloc, sizeof(size_t) * (size_t)layer->nb_inputs);
    if (!in_block) return kiln__layer_error(layer, KILN_OUT_OF_MEMORY, "no memory for block sizes");
    concat_job j = {.inputs = inputs, .nb_inputs = layer->nb_inputs, .in_block = in_block, .dst = y->data};
    for (int32_t i = 0; i < layer->nb_inputs; i++) {
        in_block[i] = (size_t)(inputs[i].dims.d[axis] * inner) * es;
        j.out_block += in_block[i];
    }
    int64_t grain = KILN__MAX(1, (int64_t)(65536 / KILN__MAX(j.out_block, 1)));
    kiln__parallel_for(ctx->pool, outer, grain, concat_range, &j);
    kiln__free(ctx->alloc, in_block);
    return KILN_OK;
}
