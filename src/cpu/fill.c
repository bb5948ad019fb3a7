/* Fill kernels: constant-of-shape, range and eye-like. */
#include "tensor_kernels.h"

kiln_status kiln__cpu_fill(const kiln_layer *layer, const kiln__value *inputs, kiln__value *outputs,
                           kiln__cpu_ctx *ctx) {
    (void)ctx;
    const kiln__fill_params *p = (const kiln__fill_params *)layer->p.bytes;
    kiln__value *y = &outputs[0];
    int64_t n = kiln__dims_volume(&y->dims);
    size_t es = kiln__elem_bytes(y->dtype);
    bool is_int = kiln__dtype_is_integer(y->dtype);
    switch (p->mode) {
    case KILN__FILL_CONSTANT: {
        uint8_t one[8];
        if (is_int) kiln__store_i64(one, y->dtype, 0, p->ivalue);
        else kiln__store_f64(one, y->dtype, 0, p->value);
        for (int64_t i = 0; i < n; i++) kiln__copy_elem((char *)y->data + i * (int64_t)es, one, es);
        break;
    }
    case KILN__FILL_RANGE:
        if (is_int) {
            int64_t s = kiln__load_i64(inputs[0].data, y->dtype, 0), d = kiln__load_i64(inputs[2].data, y->dtype, 0);
            for (int64_t i = 0; i < n; i++)
                kiln__store_i64(y->data, y->dtype, i, (int64_t)((uint64_t)s + (uint64_t)i * (uint64_t)d));
        } else {
            double s = kiln__load_f64(inputs[0].data, y->dtype, 0), d = kiln__load_f64(inputs[2].data, y->dtype, 0);
            for (int64_t i = 0; i < n; i++) kiln__store_f64(y->data, y->dtype, i, s + (double)i * d);
        }
        break;
    case KILN__FILL_EYE: {
        int64_t rows = y->dims.d[0], cols = y->dims.d[1];
        for (int64_t r = 0; r < rows; r++)
            for (int64_t c = 0; c < cols; c++) {
                int v = c - r == p->k;
                if (is_int) kiln__store_i64(y->data, y->dtype, r * cols + c, v);
                else kiln__store_f64(y->data, y->dtype, r * cols + c, v);
            }
        break;
    }
    default: return kiln__layer_error(layer, KILN_INVALID_ARGUMENT, "unknown fill mode %d", p->mode);
    }
    return KILN_OK;
}
