/* Quantize and dequantize layers (ONNX QuantizeLinear / DequantizeLinear, opsets 10-25):
 * scale and zero point per tensor, per slice along an axis, or per block of slices.
 *
 * Inputs: 0 x, 1 scale, 2 zero point (optional, the scale's shape). The scale's shape picks the
 * granularity: one element (rank 0 or 1) is per tensor; with block_size 0, a 1-D scale of
 * x.dims[axis] elements is per axis; with block_size > 0, the scale has x's rank and dims
 * except ceil(x.dims[axis] / block_size) along axis (blocked).
 *
 * Quantize:   y = saturate(round_half_even(x / scale) + zero_point) for integer outputs;
 *             y = convert(x / scale) for fp8 (the zero point must be 0 and is not added);
 *             y = convert(x / scale + zero_point) for fp4. The division is rounded to the
 *             `precision` dtype (0: what numpy gives for x's and the scale's dtypes).
 * Dequantize: y = (x - zero_point) * scale (no zero point for float x), rounded to float32
 *             (float64 for int32 x or a float64 scale) and then to the output dtype. */
#ifndef KILN_QUANTIZE_H
#define KILN_QUANTIZE_H

#include "ir.h"

typedef struct kiln__quant_params {
    int32_t axis;       /* per-axis and blocked: the quantized dim of x (negative from the end) */
    int32_t block_size; /* > 0: blocked along axis */
    int32_t out_dtype;  /* 0: quantize: the zero point's dtype, else uint8; dequantize: the scale's */
    int32_t saturate;   /* quantize to fp8: overflow gives the largest finite value, else NaN/inf */
    int32_t precision;  /* quantize: float dtype of x / scale; 0: from the inputs' dtypes */
} kiln__quant_params;

_Static_assert(sizeof(kiln__quant_params) <= sizeof(kiln__params), "quant params must fit in kiln__params");

typedef enum kiln__quant_mode {
    KILN__QUANT_TENSOR = 0,
    KILN__QUANT_AXIS = 1,
    KILN__QUANT_BLOCKED = 2
} kiln__quant_mode;

/* Whether a dtype can hold quantized values: the integer types of 16 bits or fewer, the fp8
 * kinds and fp4 (dequantize also takes int32). */
bool kiln__quant_is_quantized(kiln_dtype t);
/* Whether a dtype is one of the narrow float formats (fp8 kinds, fp4). */
bool kiln__quant_is_narrow_float(kiln_dtype t);

/* Checks what both layers share: the input count, the scale's dtype, the scale's and zero
 * point's shapes against x and the params; gives the mode and the normalized axis (0 when
 * per tensor). */
kiln_status kiln__quant_check(const kiln_layer *layer, const kiln__value *in, kiln__quant_mode *mode, int32_t *axis);
/* Where each element of x finds its scale: x viewed as [outer, dim, inner] around the axis. */
typedef struct kiln__quant_layout {
    kiln__quant_mode mode;
    int64_t dim, inner, block, nb_blocks;
} kiln__quant_layout;

/* The layout for x's dims (concrete) after kiln__quant_check gave mode and axis. */
static inline kiln__quant_layout kiln__quant_layout_of(const kiln_layer *layer, const kiln_dims *x,
                                                        kiln__quant_mode mode, int32_t axis) {
    const kiln__quant_params *p = (const kiln__quant_params *)layer->p.bytes;
    kiln__quant_layout l = {mode, 1, 1, 1, 1};
    if (mode == KILN__QUANT_TENSOR) return l;
    l.dim = x->d[axis];
    for (int32_t i = axis + 1; i < x->nb_dims; i++) l.inner *= x->d[i];
    if (mode == KILN__QUANT_BLOCKED) {
        l.block = p->block_size;
        l.nb_blocks = (l.dim + l.block - 1) / l.block;
    }
    return l;
}

/* Index in the scale of element i of x. */
static inline int64_t kiln__quant_index(const kiln__quant_layout *l, int64_t i) {
    if (l->mode == KILN__QUANT_TENSOR) return 0;
    int64_t q = i / l->inner;
    if (l->mode == KILN__QUANT_AXIS) return q % l->dim;
    int64_t a = q % l->dim, o = q / l->dim;
    return (o * l->nb_blocks + a / l->block) * l->inner + i % l->inner;
}

/* The describe function of both layers. */
void kiln__quant_describe(const kiln_layer *layer, kiln__buf *out);

#endif
