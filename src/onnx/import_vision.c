/* ONNX importers for the vision and signal ops: GridSample, AffineGrid, RoiAlign,
 * NonMaxSuppression, Col2Im, CenterCropPad, MaxUnpool, the DFT family and the window
 * functions. The table lists the ops of import_vision2.c too. */
#include "onnx/import_vision.h"

#include "network/tensor_layers.h"
#include "network/vision_layers.h"

#include <string.h>

kiln_status kiln__vision_out0(kiln__onnx_ctx *ctx, const kiln__onnx_node *node, kiln_tensor *t,
                              const kiln_status *st) {
    return t ? kiln__onnx_out(ctx, node, 0, t) : *st;
}

bool kiln__vision_str_is(kiln__onnx_bytes b, const char *s) {
    return b.size == strlen(s) && memcmp(b.data, s, b.size) == 0;
}

/* Reads a string attribute into one of `names` (index into *out); alt gives other spellings
 * of the same values (NULL entries where none). */
static kiln_status attr_choice(const kiln__onnx_node *node, const char *attr, const char *const *names,
                               const char *const *alt, int32_t count, int32_t *out) {
    kiln__onnx_bytes s = {0};
    KILN__TRY(kiln__onnx_attr_string(node, attr, &s));
    if (!s.data) return KILN_OK;
    for (int32_t i = 0; i < count; i++)
        if (kiln__vision_str_is(s, names[i]) || (alt && alt[i] && kiln__vision_str_is(s, alt[i]))) {
            *out = i;
            return KILN_OK;
        }
    return kiln__onnx_node_error(node, KILN_INVALID_ARGUMENT, "attribute '%s' is '%.*s', which is not supported", attr,
                                 (int)s.size, (const char *)s.data);
}

/* ---------------------------------------------------------------- GridSample, AffineGrid */

static kiln_status import_gridsample(kiln__onnx_ctx *ctx, const kiln__onnx_node *node) {
    kiln_status st = KILN_OK;
    kiln_tensor *x = kiln__onnx_in_required(ctx, node, 0, "X", &st);
    kiln_tensor *grid = x ? kiln__onnx_in_required(ctx, node, 1, "grid", &st) : NULL;
    if (!grid) return st;
    /* Opset 16 spells the modes bilinear/bicubic, 20 and later linear/cubic; both are read. */
    static const char *const modes[3] = {"nearest", "linear", "cubic"};
    static const char *const old_modes[3] = {NULL, "bilinear", "bicubic"};
    static const char *const pads[3] = {"zeros", "border", "reflection"};
    kiln__gridsample_params p = {.mode = KILN__GS_LINEAR, .padding = KILN__GS_ZEROS};
    int64_t align = 0;
    KILN__TRY(attr_choice(node, "mode", modes, old_modes, 3, &p.mode));
    KILN__TRY(attr_choice(node, "padding_mode", pads, NULL, 3, &p.padding));
    KILN__TRY(kiln__onnx_attr_int(node, "align_corners", &align));
    p.align_corners = align != 0;
    kiln_tensor *in[2] = {x, grid};
    return kiln__vision_out0(ctx, node, kiln__onnx_add1(ctx, node, KILN_LAYER_GRID_SAMPLE, in, 2, &p, sizeof p, &st),
                             &st);
}

static kiln_status import_affinegrid(kiln__onnx_ctx *ctx, const kiln__onnx_node *node) {
    kiln_status st = KILN_OK;
    kiln_tensor *theta = kiln__onnx_in_required(ctx, node, 0, "theta", &st);
    kiln_tensor *size = theta ? kiln__onnx_in_required(ctx, node, 1, "size", &st) : NULL;
    if (!size) return st;
    int64_t align = 0;
    KILN__TRY(kiln__onnx_attr_int(node, "align_corners", &align));
    kiln__affinegrid_params p = {.align_corners = align != 0};
    kiln_tensor *in[2] = {theta, size};
    return kiln__vision_out0(ctx, node, kiln__onnx_add1(ctx, node, KILN_LAYER_AFFINE_GRID, in, 2, &p, sizeof p, &st),
                             &st);
}

/* ---------------------------------------------------------------- DFT, STFT */

static kiln_status import_dft(kiln__onnx_ctx *ctx, const kiln__onnx_node *node) {
    kiln_status st = KILN_OK;
    kiln_tensor *x = kiln__onnx_in_required(ctx, node, 0, "input", &st);
    if (!x) return st;
    bool v20 = kiln__onnx_node_opset(ctx, node) >= 20;
    int64_t axis = v20 ? -2 : 1, inverse = 0, onesided = 0;
    if (!v20) KILN__TRY(kiln__onnx_attr_int(node, "axis", &axis));
    KILN__TRY(kiln__onnx_attr_int(node, "inverse", &inverse));
    KILN__TRY(kiln__onnx_attr_int(node, "onesided", &onesided));
    if (axis < INT32_MIN || axis > INT32_MAX)
        return kiln__onnx_node_error(node, KILN_INVALID_ARGUMENT, "axis %lld is out of range", (long long)axis);
    kiln__dft_params p = {.mode = KILN__DFT, .axis = (int32_t)axis, .inverse = inverse != 0,
                          .onesided = onesided != 0};
    kiln_tensor *in[3] = {x, kiln__onnx_in(ctx, node, 1), v20 ? kiln__onnx_in(ctx, node, 2) : NULL};
    return kiln__vision_out0(ctx, node, kiln__onnx_add1(ctx, node, KILN_LAYER_DFT, in, 3, &p, sizeof p, &st), &st);
}

static kiln_status import_stft(kiln__onnx_ctx *ctx, const kiln__onnx_node *node) {
    kiln_status st = KILN_OK;
    kiln_tensor *x = kiln__onnx_in_required(ctx, node, 0, "signal", &st);
    kiln_tensor *step = x ? kiln__onnx_in_required(ctx, node, 1, "frame_step", &st) : NULL;
    if (!step) return st;
    int64_t onesided = 1;
    KILN__TRY(kiln__onnx_attr_int(node, "onesided", &onesided));
    kiln__dft_params p = {.mode = KILN__STFT, .axis = 1, .onesided = onesided != 0};
    kiln_tensor *in[4] = {x, step, kiln__onnx_in(ctx, node, 2), kiln__onnx_in(ctx, node, 3)};
    return kiln__vision_out0(ctx, node, kiln__onnx_add1(ctx, node, KILN_LAYER_DFT, in, 4, &p, sizeof p, &st), &st);
}

/* ---------------------------------------------------------------- NonMaxSuppression */

static kiln_status import_nms(kiln__onnx_ctx *ctx, const kiln__onnx_node *node) {
    kiln_status st = KILN_OK;
    kiln_tensor *boxes = kiln__onnx_in_required(ctx, node, 0, "boxes", &st);
    kiln_tensor *scores = boxes ? kiln__onnx_in_required(ctx, node, 1, "scores", &st) : NULL;
    if (!scores) return st;
    int64_t center = 0;
    KILN__TRY(kiln__onnx_attr_int(node, "center_point_box", &center));
    if (center != 0 && center != 1)
        return kiln__onnx_node_error(node, KILN_INVALID_ARGUMENT, "center_point_box is %lld, expected 0 or 1",
                                     (long long)center);
    kiln__nms_params p = {.center_point_box = (int32_t)center};
    kiln_tensor *in[5] = {boxes, scores, kiln__onnx_in(ctx, node, 2), kiln__onnx_in(ctx, node, 3),
                          kiln__onnx_in(ctx, node, 4)};
    return kiln__vision_out0(ctx, node, kiln__onnx_add1(ctx, node, KILN_LAYER_NMS, in, 5, &p, sizeof p, &st), &st);
}

/* ---------------------------------------------------------------- Unique */

static kiln_status import_unique(kiln__onnx_ctx *ctx, const kiln__onnx_node *node) {
    kiln_status st = KILN_OK;
    kiln_tensor *x = kiln__onnx_in_required(ctx, node, 0, "X", &st);
    if (!x) return st;
    int64_t sorted = 1, axis = 0;
    const kiln__onnx_attr *a = kiln__onnx_node_attr(node, "axis");
    KILN__TRY(kiln__onnx_attr_int(node, "axis", &axis));
    KILN__TRY(kiln__onnx_attr_int(node, "sorted", &sorted));
    if (axis < -KILN_MAX_DIMS || axis >= KILN_MAX_DIMS)
        return kiln__onnx_node_error(node, KILN_INVALID_ARGUMENT, "axis %lld is out of range", (long long)axis);
    kiln__unique_params p = {.has_axis = a != NULL, .axis = (int32_t)axis, .sorted = sorted != 0};
    int32_t nb_out = 1;
    for (int32_t i = 1; i < 4; i++)
        if (kiln__onnx_has_out(node, i)) nb_out = i + 1;
    kiln_layer *l;
    KILN__TRY(kiln__onnx_add_layer(ctx, node, KILN_LAYER_UNIQUE, &x, 1, nb_out, &p, sizeof p, &l));
    for (int32_t i = 0; i < nb_out; i++) KILN__TRY(kiln__onnx_out(ctx, node, i, l->outputs[i]));
    return KILN_OK;
}

/* ---------------------------------------------------------------- RoiAlign, Col2Im, Det */

static kiln_status import_roialign(kiln__onnx_ctx *ctx, const kiln__onnx_node *node) {
    kiln_status st = KILN_OK;
    kiln_tensor *x = kiln__onnx_in_required(ctx, node, 0, "X", &st);
    kiln_tensor *rois = x ? kiln__onnx_in_required(ctx, node, 1, "rois", &st) : NULL;
    kiln_tensor *batch = rois ? kiln__onnx_in_required(ctx, node, 2, "batch_indices", &st) : NULL;
    if (!batch) return st;
    static const char *const modes[2] = {"avg", "max"};
    static const char *const coords[2] = {"output_half_pixel", "half_pixel"};
    /* RoiAlign-10 had no coordinate mode and behaved as output_half_pixel. */
    int32_t mode = KILN__ROI_AVG, coord = kiln__onnx_node_opset(ctx, node) >= 16 ? 1 : 0;
    KILN__TRY(attr_choice(node, "mode", modes, NULL, 2, &mode));
    KILN__TRY(attr_choice(node, "coordinate_transformation_mode", coords, NULL, 2, &coord));
    kiln__roialign_params p = {.mode = mode, .half_pixel = coord, .out_h = 1, .out_w = 1, .spatial_scale = 1.0f};
    KILN__TRY(kiln__onnx_attr_int(node, "output_height", &p.out_h));
    KILN__TRY(kiln__onnx_attr_int(node, "output_width", &p.out_w));
    KILN__TRY(kiln__onnx_attr_int(node, "sampling_ratio", &p.sampling_ratio));
    KILN__TRY(kiln__onnx_attr_float(node, "spatial_scale", &p.spatial_scale));
    kiln_tensor *in[3] = {x, rois, batch};
    return kiln__vision_out0(ctx, node, kiln__onnx_add1(ctx, node, KILN_LAYER_ROI_ALIGN, in, 3, &p, sizeof p, &st),
                             &st);
}

/* Reads an INTS attribute of n values into out when present. */
static kiln_status ints_n(const kiln__onnx_node *node, const char *name, int64_t n, int64_t *out) {
    const int64_t *v = NULL;
    int64_t count = -1;
    KILN__TRY(kiln__onnx_attr_ints(node, name, &v, &count));
    if (count < 0) return KILN_OK;
    if (count != n)
        return kiln__onnx_node_error(node, KILN_INVALID_ARGUMENT, "attribute '%s' has %lld values, expected %lld", name,
                                     (long long)count, (long long)n);
    memcpy(out, v, (size_t)n * sizeof *out);
    return KILN_OK;
}

static kiln_status import_col2im(kiln__onnx_ctx *ctx, const kiln__onnx_node *node) {
    kiln_status st = KILN_OK;
    kiln_tensor *x = kiln__onnx_in_required(ctx, node, 0, "input", &st);
    kiln_tensor *image = x ? kiln__onnx_in_required(ctx, node, 1, "image_shape", &st) : NULL;
    kiln_tensor *block = image ? kiln__onnx_in_required(ctx, node, 2, "block_shape", &st) : NULL;
    if (!block) return st;
    int64_t k = image->dims.nb_dims == 1 ? image->dims.d[0] : -1;
    if (k < 1 || k > KILN_MAX_DIMS - 2)
        return kiln__onnx_node_error(node, KILN_UNSUPPORTED, "image_shape must be 1-D with 1 to %d values known when "
                                     "building", KILN_MAX_DIMS - 2);
    kiln__col2im_params p = {.nb_spatial = (int32_t)k};
    int64_t pads[2 * KILN_MAX_DIMS] = {0};
    for (int32_t d = 0; d < k; d++) p.dilation[d] = p.stride[d] = 1;
    KILN__TRY(ints_n(node, "dilations", k, p.dilation));
    KILN__TRY(ints_n(node, "strides", k, p.stride));
    KILN__TRY(ints_n(node, "pads", 2 * k, pads));
    for (int32_t d = 0; d < k; d++) {
        p.pad_begin[d] = pads[d];
        p.pad_end[d] = pads[k + d];
    }
    kiln_tensor *in[3] = {x, image, block};
    return kiln__vision_out0(ctx, node, kiln__onnx_add1(ctx, node, KILN_LAYER_COL2IM, in, 3, &p, sizeof p, &st), &st);
}

static kiln_status import_det(kiln__onnx_ctx *ctx, const kiln__onnx_node *node) {
    kiln_status st = KILN_OK;
    kiln_tensor *x = kiln__onnx_in_required(ctx, node, 0, "X", &st);
    if (!x) return st;
    return kiln__vision_out0(ctx, node, kiln__onnx_add1(ctx, node, KILN_LAYER_DET, &x, 1, NULL, 0, &st), &st);
}

const kiln__onnx_op kiln__onnx_ops_vision[] = {
    {"", "GridSample", 16, import_gridsample},
    {"", "AffineGrid", 20, import_affinegrid},
    {"", "DFT", 17, import_dft},
    {"", "STFT", 17, import_stft},
    {"", "NonMaxSuppression", 10, import_nms},
    {"", "Unique", 11, import_unique},
    {"", "RoiAlign", 10, import_roialign},
    {"", "Col2Im", 18, import_col2im},
    {"", "Det", 11, import_det},
    {"", "CenterCropPad", 18, kiln__vision_import_center_crop_pad},
    {"", "Compress", 9, kiln__vision_import_compress},
    {"", "HannWindow", 17, kiln__vision_import_window},
    {"", "HammingWindow", 17, kiln__vision_import_window},
    {"", "BlackmanWindow", 17, kiln__vision_import_window},
    {"", "ReverseSequence", 10, kiln__vision_import_reverse_sequence},
    {"", "MaxUnpool", 9, kiln__vision_import_maxunpool},
    {"", "TensorScatter", 24, kiln__vision_import_tensor_scatter},
    {"", "ImageDecoder", 20, kiln__vision_import_image_decoder},
    {NULL, NULL, 0, NULL},
};
