/* Constant: the layer's values become its output. */
#include "cpu.h"

#include <string.h>

kiln_status kiln__cpu_constant(const kiln_layer *layer, const kiln__value *inputs, kiln__value *outputs,
                               kiln__cpu_ctx *ctx) {
    (void)inputs;
    (void)ctx;
    if (outputs[0].bytes && outputs[0].bytes < layer->weights_bytes)
        return kiln__layer_error(layer, KILN_INTERNAL_ERROR, "output holds %zu bytes, the constant has %zu",
                                 outputs[0].bytes, layer->weights_bytes);
    if (layer->weights_bytes) memcpy(outputs[0].data, layer->weights, layer->weights_bytes);
    return KILN_OK;
}
