/* Shared by the sequence/optional importers (import_sequence.c, which lists every op in
 * kiln__onnx_ops_sequence) and the control-flow importers (import_control.c: If, Loop, Scan,
 * SequenceMap, all unrolled or inlined at import time). */
#ifndef KILN_ONNX_IMPORT_SEQUENCE_H
#define KILN_ONNX_IMPORT_SEQUENCE_H

#include "onnx/importer.h"

/* Most elements of a list, iterations of an unrolled loop or scan. */
#define KILN__ONNX_MAX_UNROLL 4096

/* x with a dim of 1 inserted at `axis` (0..rank). */
kiln_tensor *kiln__onnx_unsqueeze_at(kiln__onnx_ctx *ctx, const kiln__onnx_node *node, kiln_tensor *x, int32_t axis,
                                     kiln_status *st);
/* items[0..n) (n >= 1, one dtype and shape) stacked along a new dim at `axis` (0..rank). */
kiln_tensor *kiln__onnx_stack(kiln__onnx_ctx *ctx, const kiln__onnx_node *node, kiln_tensor *const *items, int32_t n,
                              int32_t axis, kiln_status *st);
/* x[..., index, ...] along `axis`, that dim removed (a Gather with a scalar index). */
kiln_tensor *kiln__onnx_take(kiln__onnx_ctx *ctx, const kiln__onnx_node *node, kiln_tensor *x, int64_t index,
                             int32_t axis, kiln_status *st);
/* Reads a constant scalar (or one-element) tensor of a bool or integer dtype; false when t
 * is not a constant of that kind. */
bool kiln__onnx_const_scalar_int(kiln__onnx_ctx *ctx, const kiln_tensor *t, int64_t *out);

kiln_status kiln__onnx_import_if(kiln__onnx_ctx *ctx, const kiln__onnx_node *node);
kiln_status kiln__onnx_import_loop(kiln__onnx_ctx *ctx, const kiln__onnx_node *node);
kiln_status kiln__onnx_import_scan(kiln__onnx_ctx *ctx, const kiln__onnx_node *node);
kiln_status kiln__onnx_import_sequence_map(kiln__onnx_ctx *ctx, const kiln__onnx_node *node);

#endif
