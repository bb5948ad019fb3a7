/* Unique kernel: the grouping shared with shape inference (network/unique.c). */
#include "cpu.h"

#include "../network/vision_layers.h"

kiln_status kiln__cpu_unique(const kiln_layer *layer, const kiln__value *inputs, kiln__value *outputs,
                             kiln__cpu_ctx *ctx) {
    int64_t count;
    return kiln__unique_run(layer, &inputs[0], ctx->alloc, outputs, &count);
}
