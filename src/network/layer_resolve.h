/* Parameter resolution shared by the network side (infer) and the CPU kernels of the slice,
 * reduce and resize layers: both need the same answer from the static params and the optional
 * shape-like inputs, so it is computed in one place. */
#ifndef KILN_LAYER_RESOLVE_H
#define KILN_LAYER_RESOLVE_H

#include "ir.h"

/* Per dim of the input: first index, step and number of elements taken, after ONNX Slice
 * clamping. count is -1 where the dim or the slice inputs are not known yet. Dims the layer
 * does not slice get start 0, step 1, count = dim. */
typedef struct kiln__slice_plan {
    int64_t start[KILN_MAX_DIMS], step[KILN_MAX_DIMS], count[KILN_MAX_DIMS];
} kiln__slice_plan;

kiln_status kiln__slice_resolve(const kiln_layer *layer, const kiln__value *inputs, kiln__slice_plan *plan);

/* Which dims a reduce layer reduces. mask: bit i reduces dim i. When the axes come from an
 * input whose values are unknown, *nb_unknown is how many axes will be reduced (else -1).
 * *identity: no axes with noop_with_empty_axes, the output is the input. */
typedef struct kiln__reduce_axes {
    uint32_t mask;
    int32_t nb_unknown;
    bool identity;
} kiln__reduce_axes;

kiln_status kiln__reduce_resolve(const kiln_layer *layer, const kiln__value *inputs, kiln__reduce_axes *axes);

/* Per dim of the input: output size (-1 unknown), scale used by the coordinate transform, and
 * the region of interest (tf_crop_and_resize). resized[i] is false for dims left alone. */
typedef struct kiln__resize_plan {
    int64_t out[KILN_MAX_DIMS];
    double scale[KILN_MAX_DIMS];
    double roi_start[KILN_MAX_DIMS], roi_end[KILN_MAX_DIMS];
    bool resized[KILN_MAX_DIMS];
} kiln__resize_plan;

kiln_status kiln__resize_resolve(const kiln_layer *layer, const kiln__value *inputs, kiln__resize_plan *plan);

/* The input taps of one output coordinate x (in input space) along a dim of `in` elements:
 * clamped indices and weights in index/weight[0 .. return value), at most
 * KILN__RESIZE_MAX_TAPS; shared by every backend so they sample alike. */
#define KILN__RESIZE_MAX_TAPS 4
int32_t kiln__resize_taps(const kiln__resize_params *p, double x, int64_t in, int64_t *index, double *weight);

/* Element size in bytes of dtypes the data-movement layers copy (0 for sub-byte and string). */
static inline size_t kiln__elem_bytes(kiln_dtype dtype) {
    uint32_t bits = kiln_dtype_bits(dtype);
    return bits >= 8 ? bits / 8 : 0;
}

/* Whether an optional input is present (absent ones have an undefined dtype). */
static inline bool kiln__has_input(const kiln_layer *layer, const kiln__value *inputs, int32_t i) {
    return i < layer->nb_inputs && inputs[i].dtype != KILN_DTYPE_UNDEFINED;
}

#endif
