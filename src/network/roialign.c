/* RoiAlign (ONNX RoiAlign-16): shape inference and description. */
#include "vision_layers.h"

static kiln_status roialign_infer(const kiln_layer *layer, const kiln__value *in, kiln__value *out) {
    const kiln__roialign_params *p = (const kiln__roialign_params *)layer->p.bytes;
    if (layer->nb_inputs != 3 || in[0].dtype == KILN_DTYPE_UNDEFINED || in[1].dtype == KILN_DTYPE_UNDEFINED ||
        in[2].dtype == KILN_DTYPE_UNDEFINED)
        return kiln__layer_error(layer, KILN_INVALID_ARGUMENT, "has %d inputs, expected 3 (x, rois, batch_indices)",
                                 layer->nb_inputs);
    if ((p->mode != KILN__ROI_AVG && p->mode != KILN__ROI_MAX) || p->out_h < 1 || p->out_w < 1 ||
        p->sampling_ratio < 0 || !(p->spatial_scale == p->spatial_scale))
        return kiln__layer_error(layer, KILN_INVALID_ARGUMENT,
                                 "mode %d, output %lldx%lld or sampling_ratio %lld is out of range", p->mode,
                                 (long long)p->out_h, (long long)p->out_w, (long long)p->sampling_ratio);
    const kiln_dims *x = &in[0].dims, *r = &in[1].dims, *b = &in[2].dims;
    if (!kiln__dtype_is_float(in[0].dtype) || in[1].dtype != in[0].dtype || x->nb_dims != 4)
        return kiln__layer_error(layer, KILN_INVALID_ARGUMENT, "x must be a float [N, C, H, W] tensor and rois of its dtype");
    if (r->nb_dims != 2 || (r->d[1] >= 0 && r->d[1] != 4))
        return kiln__layer_error(layer, KILN_INVALID_ARGUMENT, "rois must be [R, 4]");
    if ((in[2].dtype != KILN_INT64 && in[2].dtype != KILN_INT32) || b->nb_dims != 1 ||
        (b->d[0] >= 0 && r->d[0] >= 0 && b->d[0] != r->d[0]))
        return kiln__layer_error(layer, KILN_INVALID_ARGUMENT, "batch_indices must be a 1-D int tensor of R values");
    out[0].dtype = in[0].dtype;
    out[0].dims = (kiln_dims){4, {r->d[0] >= 0 ? r->d[0] : b->d[0], x->d[1], p->out_h, p->out_w}};
    return KILN_OK;
}

static void roialign_describe(const kiln_layer *layer, kiln__buf *out) {
    const kiln__roialign_params *p = (const kiln__roialign_params *)layer->p.bytes;
    kiln__buf_printf(out, "mode=%s output=%lldx%lld sampling_ratio=%lld spatial_scale=%g half_pixel=%d",
                     p->mode == KILN__ROI_MAX ? "max" : "avg", (long long)p->out_h, (long long)p->out_w,
                     (long long)p->sampling_ratio, (double)p->spatial_scale, p->half_pixel);
}

const kiln__layer_ops kiln__roialign_ops = {"RoiAlign", roialign_infer, roialign_describe};
