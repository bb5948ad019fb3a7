/* OneHot kernel: off everywhere, then on at each in-range index (negative ones wrap; indices
 * out of range leave their row off, as ONNX says). */
#include "tensor_kernels.h"

#include <math.h>

kiln_status kiln__cpu_onehot(const kiln_layer *layer, const kiln__value *inputs, kiln__value *outputs,
                             kiln__cpu_ctx *ctx) {
    (void)ctx;
    const kiln__onehot_params *p = (const kiln__onehot_params *)layer->p.bytes;
    const kiln__value *idx = &inputs[0], *vals = &inputs[2];
    kiln__value *y = &outputs[0];
    int32_t rank = y->dims.nb_dims, axis;
    kiln__norm_axis(p->axis, rank, &axis);
    if (kiln__dims_volume(&vals->dims) != 2)
        return kiln__layer_error(layer, KILN_INVALID_ARGUMENT, "input 2 (values) must hold 2 elements");
    int64_t depth = y->dims.d[axis], outer = 1, inner = 1;
    for (int32_t i = 0; i < axis; i++) outer *= y->dims.d[i];
    for (int32_t i = axis + 1; i < rank; i++) inner *= y->dims.d[i];
    size_t es = kiln__elem_bytes(y->dtype);
    const char *off = vals->data, *on = off + es;
    char *dst = y->data;
    int64_t n = kiln__dims_volume(&y->dims);
    for (int64_t e = 0; e < n; e++) kiln__copy_elem(dst + e * (int64_t)es, off, es);
    bool is_float = kiln__dtype_is_float(idx->dtype);
    for (int64_t o = 0; o < outer; o++)
        for (int64_t in = 0; in < inner; in++) {
            int64_t i = o * inner + in, v;
            if (is_float) {
                double f = kiln__load_f64(idx->data, idx->dtype, i);
                if (!(fabs(f) < (double)depth + 1)) continue;
                v = (int64_t)f;
            } else {
                v = kiln__load_i64(idx->data, idx->dtype, i);
            }
            if (v < 0 && v >= -depth) v += depth;
            if (v < 0 || v >= depth) continue;
            kiln__copy_elem(dst + ((o * depth + v) * inner + in) * (int64_t)es, on, es);
        }
    return KILN_OK;
}
