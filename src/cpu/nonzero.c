/* NonZero kernel: coordinates of the non-zero elements, one row per dim. */
#include "tensor_kernels.h"

kiln_status kiln__cpu_nonzero(const kiln_layer *layer, const kiln__value *inputs, kiln__value *outputs,
                              kiln__cpu_ctx *ctx) {
    (void)ctx;
    const kiln__value *x = &inputs[0];
    int64_t *y = outputs[0].data, n = kiln__dims_volume(&x->dims), count = outputs[0].dims.d[1];
    int32_t rank = x->dims.nb_dims;
    int64_t j = 0;
    for (int64_t i = 0; i < n; i++) {
        if (!kiln__nonzero_at(x, i)) continue;
        if (j >= count)
            return kiln__layer_error(layer, KILN_INTERNAL_ERROR, "more non-zero elements than the %lld planned",
                                     (long long)count);
        int64_t rest = i;
        for (int32_t d = rank - 1; d >= 0; d--) {
            y[d * count + j] = rest % x->dims.d[d];
            rest /= x->dims.d[d];
        }
        j++;
    }
    if (j != count)
        return kiln__layer_error(layer, KILN_INTERNAL_ERROR, "%lld non-zero elements, %lld planned", (long long)j,
                                 (long long)count);
    return KILN_OK;
}
