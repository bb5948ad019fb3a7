/* Parameters of the vision and signal layers (grid sample, affine grid, DFT/STFT, NMS, unique,
 * col2im, RoI align, determinant). Each lives in layer->p.bytes; infer validates every field
 * before a kernel reads it. Also the shape helpers the network side and the CPU kernels share. */
#ifndef KILN_VISION_LAYERS_H
#define KILN_VISION_LAYERS_H

#include "layer_resolve.h"

typedef enum kiln__gs_mode { KILN__GS_NEAREST = 0, KILN__GS_LINEAR = 1, KILN__GS_CUBIC = 2 } kiln__gs_mode;
typedef enum kiln__gs_padding { KILN__GS_ZEROS = 0, KILN__GS_BORDER = 1, KILN__GS_REFLECTION = 2 } kiln__gs_padding;

/* GridSample. Inputs: 0 x [N, C, D1..Dk], 1 grid [N, O1..Ok, k] (same float dtype; the last
 * dim holds coordinates in [-1, 1] for Dk first, D1 last). Output [N, C, O1..Ok]. */
typedef struct kiln__gridsample_params {
    int32_t mode;    /* kiln__gs_mode; cubic uses Keys' kernel with a = -0.75 */
    int32_t padding; /* kiln__gs_padding */
    int32_t align_corners;
} kiln__gridsample_params;

/* AffineGrid. Inputs: 0 theta [N, k, k+1] (float), 1 size (1-D int64 [N, C, D1..Dk], k 2 or
 * 3). Output [N, D1..Dk, k]: theta times the homogeneous base grid (x along Dk first). */
typedef struct kiln__affinegrid_params {
    int32_t align_corners;
} kiln__affinegrid_params;

typedef enum kiln__dft_mode { KILN__DFT = 0, KILN__STFT = 1 } kiln__dft_mode;

/* DFT. Inputs: 0 x [B, signal dims..., 1 or 2] (real or interleaved complex), 1 dft_length
 * (optional scalar int), 2 axis (optional scalar int, replaces axis). Output: the transform
 * along axis, complex ([..., 2]) except for the inverse of a one-sided spectrum (real, [..., 1]).
 * STFT. Inputs: 0 signal [B, L, 1 or 2], 1 frame_step (scalar int), 2 window (optional [W]),
 * 3 frame_length (optional scalar int). Output [B, frames, bins, 2]. */
typedef struct kiln__dft_params {
    int32_t mode; /* kiln__dft_mode */
    int32_t axis; /* DFT without an axis input; negative counts from the end */
    int32_t inverse;
    int32_t onesided;
} kiln__dft_params;

/* NonMaxSuppression. Inputs: 0 boxes [B, N, 4], 1 scores [B, C, N], then optional 2 max boxes
 * per class (int64), 3 IoU threshold, 4 score threshold (float, one element each). Output
 * int64 [selected, 3] of (batch, class, box), its length known once the inputs are. */
typedef struct kiln__nms_params {
    int32_t center_point_box; /* 0: [y1, x1, y2, x2] corners; 1: [x, y, w, h] */
} kiln__nms_params;

/* Unique. Input x. Outputs: 0 the unique elements (or slices along axis), 1 int64 index of each
 * one's first occurrence, 2 int64 index into output 0 of every input element (slice), 3 int64
 * counts. Sorted ascending (slices compared lexicographically) or in order of appearance. */
typedef struct kiln__unique_params {
    int32_t has_axis;
    int32_t axis;
    int32_t sorted;
} kiln__unique_params;

/* Col2Im. Inputs: 0 x [N, C * prod(block), L], 1 image_shape, 2 block_shape (1-D int64, k
 * values each). Output [N, C, image...]: every column of x added back at its block's place. */
typedef struct kiln__col2im_params {
    int32_t nb_spatial; /* k as the importer saw it; 0 when the attributes were left default */
    int64_t dilation[KILN_MAX_DIMS], stride[KILN_MAX_DIMS];
    int64_t pad_begin[KILN_MAX_DIMS], pad_end[KILN_MAX_DIMS];
} kiln__col2im_params;

typedef enum kiln__roi_mode { KILN__ROI_AVG = 0, KILN__ROI_MAX = 1 } kiln__roi_mode;

/* RoiAlign. Inputs: 0 x [N, C, H, W], 1 rois [R, 4] (x1, y1, x2, y2; x's dtype), 2 batch
 * indices [R] (int32/int64). Output [R, C, out_h, out_w]. */
typedef struct kiln__roialign_params {
    int32_t mode;       /* kiln__roi_mode */
    int32_t half_pixel; /* 1: coordinates shift by -0.5 (output_half_pixel is 0) */
    int64_t out_h, out_w;
    int64_t sampling_ratio; /* 0: adaptive, ceil(roi size / output size) */
    float spatial_scale;
} kiln__roialign_params;

_Static_assert(sizeof(kiln__gridsample_params) <= sizeof(kiln__params), "gridsample params too large");
_Static_assert(sizeof(kiln__affinegrid_params) <= sizeof(kiln__params), "affinegrid params too large");
_Static_assert(sizeof(kiln__dft_params) <= sizeof(kiln__params), "dft params too large");
_Static_assert(sizeof(kiln__nms_params) <= sizeof(kiln__params), "nms params too large");
_Static_assert(sizeof(kiln__unique_params) <= sizeof(kiln__params), "unique params too large");
_Static_assert(sizeof(kiln__col2im_params) <= sizeof(kiln__params), "col2im params too large");
_Static_assert(sizeof(kiln__roialign_params) <= sizeof(kiln__params), "roialign params too large");

/* Col2Im geometry once image_shape and block_shape are known: per spatial dim the image and
 * block sizes, the number of block positions (cols), and the attributes (defaults filled in). */
typedef struct kiln__col2im_plan {
    int32_t k;
    bool known;
    int64_t channels;
    int64_t image[KILN_MAX_DIMS], block[KILN_MAX_DIMS], cols[KILN_MAX_DIMS];
    int64_t dilation[KILN_MAX_DIMS], stride[KILN_MAX_DIMS], pad_begin[KILN_MAX_DIMS];
} kiln__col2im_plan;

kiln_status kiln__col2im_resolve(const kiln_layer *layer, const kiln__value *inputs, kiln__col2im_plan *plan);

/* DFT/STFT geometry once the inputs are known: the transformed axis of x, the input length
 * read along it, the transform length n and the output length along it. For STFT: axis is the
 * signal axis (1), frames and frame_step are set, and in_len is the frame (window) length. */
typedef struct kiln__dft_plan {
    int32_t axis;
    int64_t in_len, n, out_len;
    int64_t frames, frame_step;
    bool complex_out; /* output's last dim is 2 (else 1) */
    bool known;       /* false while a scalar input has no value yet */
} kiln__dft_plan;

kiln_status kiln__dft_resolve(const kiln_layer *layer, const kiln__value *inputs, kiln__dft_plan *plan);

/* NMS over inputs with values: *count selected boxes; the first `capacity` of them are
 * written to out (int64 triples) when out is not NULL. kiln__nms_count uses the network's
 * allocator. */
kiln_status kiln__nms_run(const kiln_layer *layer, const kiln__value *inputs, const kiln__alloc *alloc, int64_t *out,
                          int64_t capacity, int64_t *count);
kiln_status kiln__nms_count(const kiln_layer *layer, const kiln__value *inputs, int64_t *count);

/* Unique over x with data: *count unique elements or slices; when outs is not NULL also
 * writes the layer's outputs (sized by shape inference; outputs past nb_outputs ignored). */
kiln_status kiln__unique_run(const kiln_layer *layer, const kiln__value *x, const kiln__alloc *alloc,
                             kiln__value *outs, int64_t *count);

#endif
