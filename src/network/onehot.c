/* OneHot: out[..., j, ...] = values[1] where j == indices[...] (negative ones wrap), else
 * values[0]; the new dim of size depth sits at `axis`. */
#include "tensor_layers.h"
#include "../cpu/cpu.h"


static bool numeric(kiln_dtype t) { return kiln__dtype_is_float(t) || kiln__dtype_is_integer(t); }

static kiln_status onehot_infer(const kiln_layer *layer, const kiln__value *inputs, kiln__value *outputs) {
    const kiln__onehot_params *p = (const kiln__onehot_params *)layer->p.bytes;
    if (layer->nb_inputs != 3) return kiln__layer_error(layer, KILN_INVALID_ARGUMENT, "needs 3 inputs");
    const kiln__value *idx = &inputs[0], *depth = &inputs[1], *vals = &inputs[2];
    if (!numeric(idx->dtype))
        return kiln__layer_error(layer, KILN_INVALID_ARGUMENT, "input 0 (indices) has dtype %s, expected a number",
                                 kiln_dtype_name(idx->dtype));
    if (!numeric(depth->dtype) || !kiln__value_is_single(depth))
        return kiln__layer_error(layer, KILN_INVALID_ARGUMENT, "input 1 (depth) must be one number");
    if (!kiln__elem_bytes(vals->dtype))
        return kiln__layer_error(layer, KILN_UNSUPPORTED, "values dtype %s is not supported",
                                 kiln_dtype_name(vals->dtype));
    if (vals->dims.nb_dims != 1 || (vals->dims.d[0] >= 0 && vals->dims.d[0] != 2))
        return kiln__layer_error(layer, KILN_INVALID_ARGUMENT, "input 2 (values) must hold 2 elements [off, on]");
    int32_t rank = idx->dims.nb_dims + 1, axis;
    if (rank > KILN_MAX_DIMS)
        return kiln__layer_error(layer, KILN_UNSUPPORTED, "output rank %d exceeds %d", rank, KILN_MAX_DIMS);
    if (!kiln__norm_axis(p->axis, rank, &axis))
        return kiln__layer_error(layer, KILN_INVALID_ARGUMENT, "axis %d is out of range for rank %d", p->axis, rank);
    int64_t d = -1;
    if (depth->data && kiln__dims_volume(&depth->dims) == 1) {
        double v = kiln__load_f64(depth->data, depth->dtype, 0);
        if (!(v >= 1) || v > (double)(INT64_C(1) << 40))
            return kiln__layer_error(layer, KILN_INVALID_ARGUMENT, "depth is %g, expected >= 1", v);
        d = (int64_t)v;
    }
    kiln_dims out = {.nb_dims = rank};
    for (int32_t i = 0, j = 0; i < rank; i++) out.d[i] = i == axis ? d : idx->dims.d[j++];
    outputs[0].dtype = vals->dtype;
    outputs[0].dims = out;
    return KILN_OK;
}

static void onehot_describe(const kiln_layer *layer, kiln__buf *out) {
    kiln__buf_printf(out, "axis=%d", ((const kiln__onehot_params *)layer->p.bytes)->axis);
}

const kiln__layer_ops kiln__onehot_ops = {"OneHot", onehot_infer, onehot_describe};
