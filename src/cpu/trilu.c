/* Trilu kernel: copies the kept triangle of each matrix and zeroes the rest. */
#include "tensor_kernels.h"

kiln_status kiln__cpu_trilu(const kiln_layer *layer, const kiln__value *inputs, kiln__value *outputs,
                            kiln__cpu_ctx *ctx) {
    (void)ctx;
    const kiln__trilu_params *p = (const kiln__trilu_params *)layer->p.bytes;
    const kiln__value *x = &inputs[0];
    int64_t k = p->k;
    if (kiln__has_input(layer, inputs, 1)) {
        if (kiln__dims_volume(&inputs[1].dims) != 1)
            return kiln__layer_error(layer, KILN_INVALID_ARGUMENT, "input 1 (k) must hold one value");
        k = kiln__scalar_i64(&inputs[1]);
    }
    int32_t r = x->dims.nb_dims;
    int64_t rows = x->dims.d[r - 2], cols = x->dims.d[r - 1], n = kiln__dims_volume(&x->dims);
    size_t es = kiln__elem_bytes(x->dtype);
    const char *src = x->data;
    char *dst = outputs[0].data;
    for (int64_t e = 0; e < n; e++) {
        int64_t c = e % cols, row = (e / cols) % rows;
        bool keep = p->upper ? (c - row >= k) : (c - row <= k);
        if (keep) kiln__copy_elem(dst + e * (int64_t)es, src + e * (int64_t)es, es);
        else memset(dst + e * (int64_t)es, 0, es);
    }
    return KILN_OK;
}
