/* NonMaxSuppression kernel: the selection shared with shape inference (network/nms.c). */
#include "cpu.h"

#include "../network/vision_layers.h"

kiln_status kiln__cpu_nms(const kiln_layer *layer, const kiln__value *inputs, kiln__value *outputs,
                          kiln__cpu_ctx *ctx) {
    int64_t capacity = outputs[0].dims.d[0], count;
    KILN__TRY(kiln__nms_run(layer, inputs, ctx->alloc, outputs[0].data, capacity, &count));
    if (count != capacity)
        return kiln__layer_error(layer, KILN_INTERNAL_ERROR, "selected %lld boxes, shape inference said %lld",
                                 (long long)count, (long long)capacity);
    return KILN_OK;
}
