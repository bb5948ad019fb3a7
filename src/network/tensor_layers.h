/* Parameters of the tensor-manipulation layers that ir.h does not list (select, topk, fill,
 * padding, scatter, einsum, expand, tile, cumsum, onehot, nonzero, trilu). Each lives in
 * layer->p.bytes; infer validates every field before a kernel reads it. Also the helpers the
 * network side and the CPU kernels of these layers share, so both compute the same shapes. */
#ifndef KILN_TENSOR_LAYERS_H
#define KILN_TENSOR_LAYERS_H

#include "layer_resolve.h"

/* TopK. Inputs: 0 x, 1 k (optional 1-element int32/int64; replaces k). Outputs: 0 values,
 * 1 indices (int64). */
typedef struct kiln__topk_params {
    int32_t axis;
    int32_t largest; /* 1: k largest, 0: k smallest */
    int32_t sorted;  /* 1: in order of value; 0: in index order */
    int64_t k;
} kiln__topk_params;

typedef enum kiln__fill_mode {
    KILN__FILL_CONSTANT = 0, /* inputs: 0 shape (optional 1-D int32/int64; else dims) */
    KILN__FILL_RANGE = 1,    /* inputs: 0 start, 1 limit, 2 delta (scalars of one dtype) */
    KILN__FILL_EYE = 2       /* inputs: 0 a 2-D tensor giving the shape; ones on diagonal k */
} kiln__fill_mode;

typedef struct kiln__fill_params {
    int32_t mode;  /* kiln__fill_mode */
    int32_t dtype; /* output dtype (range: ignored, the inputs'; eye: 0 means the input's) */
    double value;  /* constant: the value for float and bool dtypes */
    int64_t ivalue; /* constant: the value for integer dtypes (exact for int64) */
    int64_t k;      /* eye: diagonal offset */
    kiln_dims dims; /* constant without a shape input */
} kiln__fill_params;

typedef enum kiln__pad_mode {
    KILN__PAD_CONSTANT = 0,
    KILN__PAD_REFLECT = 1,
    KILN__PAD_EDGE = 2,
    KILN__PAD_WRAP = 3
} kiln__pad_mode;

/* Padding. Inputs: 0 x, then optional 1 pads (1-D int32/int64: begins then ends, one pair per
 * padded axis), 2 constant value (1-element, x's dtype), 3 axes (1-D int32/int64). Without
 * input 1 the static pads apply; nb_axes 0 means every dim. Negative pads crop. */
typedef struct kiln__padding_params {
    int32_t mode; /* kiln__pad_mode */
    int32_t nb_axes;
    int32_t axes[KILN_MAX_DIMS];
    int64_t pads[2 * KILN_MAX_DIMS];
    double value;
} kiln__padding_params;

typedef enum kiln__scatter_mode { KILN__SCATTER_ND = 0, KILN__SCATTER_ELEMENTS = 1 } kiln__scatter_mode;
typedef enum kiln__scatter_reduction {
    KILN__SCATTER_NONE = 0,
    KILN__SCATTER_ADD,
    KILN__SCATTER_MUL,
    KILN__SCATTER_MAX,
    KILN__SCATTER_MIN
} kiln__scatter_reduction;

/* Scatter. Inputs: 0 data, 1 indices (int32/int64), 2 updates. Output: data with updates
 * written (or combined by the reduction) at the indices, in index order. */
typedef struct kiln__scatter_params {
    int32_t mode;      /* kiln__scatter_mode */
    int32_t axis;      /* elements */
    int32_t reduction; /* kiln__scatter_reduction */
} kiln__scatter_params;

#define KILN__EINSUM_MAX_EQUATION 480
/* Einsum over any number of inputs of one dtype. */
typedef struct kiln__einsum_params {
    char equation[KILN__EINSUM_MAX_EQUATION]; /* NUL-terminated, spaces allowed */
} kiln__einsum_params;

/* CumSum / CumProd. Inputs: 0 x, 1 axis (optional 1-element int32/int64; replaces axis). */
typedef struct kiln__cumsum_params {
    int32_t axis;
    int32_t exclusive;
    int32_t reverse;
    int32_t product;
} kiln__cumsum_params;

/* OneHot. Inputs: 0 indices (any numeric dtype), 1 depth (1-element numeric), 2 values
 * ([off, on], the output dtype). */
typedef struct kiln__onehot_params {
    int32_t axis;
} kiln__onehot_params;

/* Trilu. Inputs: 0 x (rank >= 2), 1 k (optional 1-element int64). */
typedef struct kiln__trilu_params {
    int32_t upper;
    int64_t k;
} kiln__trilu_params;

_Static_assert(sizeof(kiln__topk_params) <= sizeof(kiln__params), "topk params too large");
_Static_assert(sizeof(kiln__fill_params) <= sizeof(kiln__params), "fill params too large");
_Static_assert(sizeof(kiln__padding_params) <= sizeof(kiln__params), "padding params too large");
_Static_assert(sizeof(kiln__scatter_params) <= sizeof(kiln__params), "scatter params too large");
_Static_assert(sizeof(kiln__einsum_params) <= sizeof(kiln__params), "einsum params too large");
_Static_assert(sizeof(kiln__cumsum_params) <= sizeof(kiln__params), "cumsum params too large");
_Static_assert(sizeof(kiln__onehot_params) <= sizeof(kiln__params), "onehot params too large");
_Static_assert(sizeof(kiln__trilu_params) <= sizeof(kiln__params), "trilu params too large");

/* Row-major strides (in elements) of dims. */
static inline void kiln__dims_strides(const kiln_dims *d, int64_t *stride) {
    int64_t s = 1;
    for (int32_t i = d->nb_dims - 1; i >= 0; i--) {
        stride[i] = s;
        s *= d->d[i] > 0 ? d->d[i] : 1;
    }
}

/* Whether a value is a scalar or holds exactly one element (dims may be unknown: then true
 * when the rank allows it). */
static inline bool kiln__value_is_single(const kiln__value *v) {
    if (v->dims.nb_dims > 1) {
        for (int32_t i = 0; i < v->dims.nb_dims; i++)
            if (v->dims.d[i] != 1 && v->dims.d[i] != -1) return false;
        return true;
    }
    return v->dims.nb_dims == 0 || v->dims.d[0] == 1 || v->dims.d[0] == -1;
}

/* TopK: k from input 1 when present (-1 while its value is unknown), else the static k. */
kiln_status kiln__topk_k(const kiln_layer *layer, const kiln__value *inputs, int64_t *k);

/* Range: number of elements of range(start, limit, delta) from the three scalar inputs. */
kiln_status kiln__range_count(const kiln_layer *layer, const kiln__value *inputs, int64_t *count);

/* NonZero: how many elements of x (with data) are non-zero; whether element i is. */
int64_t kiln__nonzero_count(const kiln__value *x);
bool kiln__nonzero_at(const kiln__value *x, int64_t i);

/* Padding: per dim of x, pads before and after, once known. *known is false when the pads or
 * axes input has no values yet. */
kiln_status kiln__padding_resolve(const kiln_layer *layer, const kiln__value *inputs, int64_t *begin, int64_t *end,
                                  bool *known);

/* Einsum: the parsed equation. Labels are numbered 0..nb_labels-1; ellipsis dims get labels
 * of their own. For input i, label_of[i][d] is the label of its dim d; out_labels lists the
 * output's labels; size[l] is the extent of label l (-1 unknown). */
#define KILN__EINSUM_MAX_INPUTS 16
#define KILN__EINSUM_MAX_LABELS 64
typedef struct kiln__einsum_plan {
    int32_t nb_inputs, nb_labels, out_rank;
    int32_t rank[KILN__EINSUM_MAX_INPUTS];
    int8_t label_of[KILN__EINSUM_MAX_INPUTS][KILN_MAX_DIMS];
    int8_t out_labels[KILN_MAX_DIMS];
    int64_t size[KILN__EINSUM_MAX_LABELS];
} kiln__einsum_plan;

kiln_status kiln__einsum_resolve(const kiln_layer *layer, const kiln__value *inputs, kiln__einsum_plan *plan);

#endif
