/* Scatter kernels: the output starts as a copy of the data; updates are then written (or
 * combined by the reduction) in index order, so with duplicate indices the last one wins
 * (reduction none) as in the ONNX reference. Every index is checked before use. */
#include "tensor_kernels.h"

#include <math.h>

static void combine(void *y, int64_t yi, const void *u, int64_t ui, kiln_dtype dt, int32_t red, size_t es) {
    if (red == KILN__SCATTER_NONE) {
        kiln__copy_elem((char *)y + yi * (int64_t)es, (const char *)u + ui * (int64_t)es, es);
        return;
    }
    if (kiln__dtype_is_float(dt)) {
        double a = kiln__load_f64(y, dt, yi), b = kiln__load_f64(u, dt, ui), r;
        switch (red) {
        case KILN__SCATTER_ADD: r = a + b; break;
        case KILN__SCATTER_MUL: r = a * b; break;
        case KILN__SCATTER_MAX: r = isnan(a) || isnan(b) ? NAN : fmax(a, b); break;
        default: r = isnan(a) || isnan(b) ? NAN : fmin(a, b); break;
        }
        kiln__store_f64(y, dt, yi, r);
    } else if (dt == KILN_UINT64) {
        uint64_t a = (uint64_t)kiln__load_i64(y, dt, yi), b = (uint64_t)kiln__load_i64(u, dt, ui), r;
        switch (red) {
        case KILN__SCATTER_ADD: r = a + b; break;
        case KILN__SCATTER_MUL: r = a * b; break;
        case KILN__SCATTER_MAX: r = a > b ? a : b; break;
        default: r = a < b ? a : b; break;
        }
        kiln__store_i64(y, dt, yi, (int64_t)r);
    } else {
        int64_t a = kiln__load_i64(y, dt, yi), b = kiln__load_i64(u, dt, ui), r;
        switch (red) {
        case KILN__SCATTER_ADD: r = dt == KILN_BOOL ? (a || b) : (int64_t)((uint64_t)a + (uint64_t)b); break;
        case KILN__SCATTER_MUL: r = dt == KILN_BOOL ? (a && b) : (int64_t)((uint64_t)a * (uint64_t)b); break;
        case KILN__SCATTER_MAX: r = a > b ? a : b; break;
        default: r = a < b ? a : b; break;
        }
        kiln__store_i64(y, dt, yi, r);
    }
}

static kiln_status bad_index(const kiln_layer *layer, int64_t pos, int64_t v, int64_t dim) {
    return kiln__layer_error(layer, KILN_INVALID_ARGUMENT, "index %lld (at position %lld) is out of range [-%lld, %lld)",
                             (long long)v, (long long)pos, (long long)dim, (long long)dim);
}

kiln_status kiln__cpu_scatter(const kiln_layer *layer, const kiln__value *inputs, kiln__value *outputs,
                              kiln__cpu_ctx *ctx) {
    (void)ctx;
    const kiln__scatter_params *p = (const kiln__scatter_params *)layer->p.bytes;
    const kiln__value *data = &inputs[0], *iv = &inputs[1], *upd = &inputs[2];
    kiln__value *y = &outputs[0];
    const kiln_dims *dd = &data->dims, *id = &iv->dims;
    size_t es = kiln__elem_bytes(data->dtype);
    int64_t nd = kiln__dims_volume(dd), ni = kiln__dims_volume(id);
    if (y->data != data->data) memcpy(y->data, data->data, (size_t)nd * es);
    int64_t stride[KILN_MAX_DIMS];
    kiln__dims_strides(dd, stride);
    if (p->mode == KILN__SCATTER_ND) {
        int32_t q = id->nb_dims;
        int64_t k = id->d[q - 1], inner = 1;
        for (int32_t i = (int32_t)k; i < dd->nb_dims; i++) inner *= dd->d[i];
        int64_t tuples = k ? ni / k : 0;
        for (int64_t t = 0; t < tuples; t++) {
            int64_t off = 0;
            for (int64_t c = 0; c < k; c++) {
                int64_t dim = dd->d[c], v = kiln__value_int(iv, t * k + c), w = v < 0 ? v + dim : v;
                if (w < 0 || w >= dim) return bad_index(layer, t * k + c, v, dim);
                off += w * stride[c];
            }
            for (int64_t e = 0; e < inner; e++)
                combine(y->data, off + e, upd->data, t * inner + e, data->dtype, p->reduction, es);
        }
    } else {
        int32_t r = dd->nb_dims, axis;
        kiln__norm_axis(p->axis, r, &axis);
        int64_t dim = dd->d[axis];
        for (int64_t e = 0; e < ni; e++) {
            int64_t rest = e, off = 0;
            int64_t v = kiln__value_int(iv, e), w = v < 0 ? v + dim : v;
            if (w < 0 || w >= dim) return bad_index(layer, e, v, dim);
            for (int32_t i = r - 1; i >= 0; i--) {
                int64_t c = rest % id->d[i];
                rest /= id->d[i];
                off += (i == axis ? w : c) * stride[i];
            }
            combine(y->data, off, upd->data, e, data->dtype, p->reduction, es);
        }
    }
    return KILN_OK;
}
