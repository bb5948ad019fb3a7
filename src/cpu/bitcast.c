/* BitCast kernel: a byte copy (both dtypes have the same width, so the same byte size). */
#include "cpu.h"

#include <string.h>

kiln_status kiln__cpu_bitcast(const kiln_layer *layer, const kiln__value *inputs, kiln__value *outputs,
                              kiln__cpu_ctx *ctx) {
    (void)layer;
    (void)ctx;
    if (outputs[0].bytes) memcpy(outputs[0].data, inputs[0].data, outputs[0].bytes);
    return KILN_OK;
}
