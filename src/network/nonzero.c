/* NonZero: int64 [rank, n] with the coordinates of the non-zero elements, in row-major order.
 * n depends on the data: -1 until the input's values are known. */
#include "tensor_layers.h"

#include <string.h>

static bool is_nonzero(const uint8_t *p, size_t es, kiln_dtype dt) {
    /* Float zeros of either sign count as zero; other dtypes are zero when all bytes are. */
    if (dt == KILN_FLOAT32) {
        float v;
        memcpy(&v, p, 4);
        return v != 0.0f;
    }
    if (dt == KILN_FLOAT64) {
        double v;
        memcpy(&v, p, 8);
        return v != 0.0;
    }
    if (dt == KILN_FLOAT16 || dt == KILN_BFLOAT16) {
        uint16_t v;
        memcpy(&v, p, 2);
        return (v & 0x7fff) != 0;
    }
    for (size_t i = 0; i < es; i++)
        if (p[i]) return true;
    return false;
}

int64_t kiln__nonzero_count(const kiln__value *x) {
    size_t es = kiln__elem_bytes(x->dtype);
    int64_t n = kiln__dims_volume(&x->dims), count = 0;
    for (int64_t i = 0; i < n; i++) count += is_nonzero((const uint8_t *)x->data + (size_t)i * es, es, x->dtype);
    return count;
}

bool kiln__nonzero_at(const kiln__value *x, int64_t i) {
    size_t es = kiln__elem_bytes(x->dtype);
    return is_nonzero((const uint8_t *)x->data + (size_t)i * es, es, x->dtype);
}

static kiln_status nonzero_infer(const kiln_layer *layer, const kiln__value *inputs, kiln__value *outputs) {
    const kiln__value *x = &inputs[0];
    if (!kiln__elem_bytes(x->dtype))
        return kiln__layer_error(layer, KILN_UNSUPPORTED, "dtype %s is not supported", kiln_dtype_name(x->dtype));
    outputs[0].dtype = KILN_INT64;
    outputs[0].dims.nb_dims = 2;
    /* ONNX treats a scalar as one element of rank 0: the output is [0, n]. */
    outputs[0].dims.d[0] = x->dims.nb_dims;
    outputs[0].dims.d[1] = x->data && kiln__dims_volume(&x->dims) >= 0 ? kiln__nonzero_count(x) : -1;
    return KILN_OK;
}

static void nonzero_describe(const kiln_layer *layer, kiln__buf *out) {
    (void)layer;
    kiln__buf_printf(out, "data-dependent");
}

const kiln__layer_ops kiln__nonzero_ops = {"NonZero", nonzero_infer, nonzero_describe};
