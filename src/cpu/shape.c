/* Shape writes the input's dims; Identity copies. */
#include "cpu.h"

#include <string.h>

kiln_status kiln__cpu_shape(const kiln_layer *layer, const kiln__value *inputs, kiln__value *outputs,
                            kiln__cpu_ctx *ctx) {
    (void)ctx;
    const kiln__shape_params *p = &layer->p.shape;
    int32_t rank = inputs[0].dims.nb_dims;
    int64_t s = p->start < 0 ? p->start + rank : p->start, e = p->end < 0 ? p->end + rank : p->end;
    s = KILN__MIN(KILN__MAX(s, 0), rank);
    e = KILN__MIN(KILN__MAX(e, 0), rank);
    if (outputs[0].dims.nb_dims != 1 || outputs[0].dims.d[0] != KILN__MAX(e - s, 0))
        return kiln__layer_error(layer, KILN_INTERNAL_ERROR, "output does not hold %lld dims",
                                 (long long)KILN__MAX(e - s, 0));
    int64_t *out = outputs[0].data;
    for (int64_t i = s; i < e; i++) out[i - s] = inputs[0].dims.d[i];
    return KILN_OK;
}

kiln_status kiln__cpu_identity(const kiln_layer *layer, const kiln__value *inputs, kiln__value *outputs,
                               kiln__cpu_ctx *ctx) {
    (void)ctx;
    size_t bytes;
    if (!kiln__dtype_bytes(inputs[0].dtype, kiln__dims_volume(&inputs[0].dims), &bytes))
        return kiln__layer_error(layer, KILN_INTERNAL_ERROR, "bad input size");
    if (bytes && outputs[0].data != inputs[0].data) memcpy(outputs[0].data, inputs[0].data, bytes);
    return KILN_OK;
}
