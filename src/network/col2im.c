/* Col2Im (ONNX Col2Im-18): shape inference, the shared block geometry, and description. */
#include "vision_layers.h"

#include <string.h>

kiln_status kiln__col2im_resolve(const kiln_layer *layer, const kiln__value *in, kiln__col2im_plan *plan) {
    const kiln__col2im_params *p = (const kiln__col2im_params *)layer->p.bytes;
    memset(plan, 0, sizeof *plan);
    if (layer->nb_inputs != 3 || in[0].dtype == KILN_DTYPE_UNDEFINED || in[1].dtype == KILN_DTYPE_UNDEFINED ||
        in[2].dtype == KILN_DTYPE_UNDEFINED)
        return kiln__layer_error(layer, KILN_INVALID_ARGUMENT, "has %d inputs, expected 3 (x, image_shape, block_shape)",
                                 layer->nb_inputs);
    const kiln_dims *x = &in[0].dims, *is = &in[1].dims, *bs = &in[2].dims;
    if (x->nb_dims != 3 || !kiln__elem_bytes(in[0].dtype))
        return kiln__layer_error(layer, KILN_INVALID_ARGUMENT, "x must be [N, C * prod(block_shape), L]");
    if (in[1].dtype != KILN_INT64 || in[2].dtype != KILN_INT64 || is->nb_dims != 1 || bs->nb_dims != 1 ||
        (is->d[0] >= 0 && bs->d[0] >= 0 && is->d[0] != bs->d[0]))
        return kiln__layer_error(layer, KILN_INVALID_ARGUMENT, "image_shape and block_shape must be 1-D int64 of one length");
    int64_t k = is->d[0] >= 0 ? is->d[0] : bs->d[0];
    if (k == 0 || k > KILN_MAX_DIMS - 2 || (p->nb_spatial && k >= 0 && k != p->nb_spatial))
        return kiln__layer_error(layer, KILN_INVALID_ARGUMENT, "%lld spatial dims; expected 1 to %d matching the attributes",
                                 (long long)k, KILN_MAX_DIMS - 2);
    plan->k = (int32_t)k;
    plan->known = k > 0 && in[1].data && in[2].data && x->d[1] >= 0 && x->d[2] >= 0;
    if (!plan->known) return KILN_OK;
    int64_t blocks = 1, cols = 1;
    for (int32_t d = 0; d < plan->k; d++) {
        int64_t dil = p->nb_spatial ? p->dilation[d] : 1, stride = p->nb_spatial ? p->stride[d] : 1;
        int64_t pb = p->nb_spatial ? p->pad_begin[d] : 0, pe = p->nb_spatial ? p->pad_end[d] : 0;
        plan->image[d] = kiln__value_int(&in[1], d);
        plan->block[d] = kiln__value_int(&in[2], d);
        if (plan->image[d] < 0 || plan->block[d] < 1 || dil < 1 || stride < 1 || pb < 0 || pe < 0)
            return kiln__layer_error(layer, KILN_INVALID_ARGUMENT, "dim %d: image %lld, block %lld, dilation %lld, "
                                     "stride %lld or pads %lld/%lld out of range", d, (long long)plan->image[d],
                                     (long long)plan->block[d], (long long)dil, (long long)stride, (long long)pb, (long long)pe);
        int64_t span = dil * (plan->block[d] - 1) + 1, padded = plan->image[d] + pb + pe;
        plan->cols[d] = padded >= span ? (padded - span) / stride + 1 : 0;
        plan->dilation[d] = dil;
        plan->stride[d] = stride;
        plan->pad_begin[d] = pb;
        blocks *= plan->block[d];
        cols *= plan->cols[d];
    }
    if (x->d[1] % blocks != 0 || x->d[2] != cols)
        return kiln__layer_error(layer, KILN_INVALID_ARGUMENT, "x is [%lld, %lld, %lld]; expected C * %lld rows and %lld "
                                 "columns", (long long)x->d[0], (long long)x->d[1], (long long)x->d[2], (long long)blocks,
                                 (long long)cols);
    plan->channels = x->d[1] / blocks;
    return KILN_OK;
}

static kiln_status col2im_infer(const kiln_layer *layer, const kiln__value *in, kiln__value *out) {
    kiln__col2im_plan plan;
    KILN__TRY(kiln__col2im_resolve(layer, in, &plan));
    out[0].dtype = in[0].dtype;
    if (plan.k <= 0)
        return kiln__layer_error(layer, KILN_UNSUPPORTED, "the number of spatial dims must be known when building");
    out[0].dims.nb_dims = plan.k + 2;
    out[0].dims.d[0] = in[0].dims.d[0];
    out[0].dims.d[1] = plan.known ? plan.channels : -1;
    for (int32_t d = 0; d < plan.k; d++) out[0].dims.d[2 + d] = plan.known ? plan.image[d] : -1;
    return KILN_OK;
}

static void col2im_describe(const kiln_layer *layer, kiln__buf *out) {
    const kiln__col2im_params *p = (const kiln__col2im_params *)layer->p.bytes;
    kiln__buf_printf(out, "spatial=%d", p->nb_spatial);
    for (int32_t d = 0; d < p->nb_spatial; d++)
        kiln__buf_printf(out, " [dilation=%lld stride=%lld pads=%lld,%lld]", (long long)p->dilation[d],
                         (long long)p->stride[d], (long long)p->pad_begin[d], (long long)p->pad_end[d]);
}

const kiln__layer_ops kiln__col2im_ops = {"Col2Im", col2im_infer, col2im_describe};
