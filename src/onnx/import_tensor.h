/* Shared by the tensor-manipulation importers (import_tensor.c lists every op in
 * kiln__onnx_ops_tensor; import_tensor2.c holds reductions, TopK, Resize/Upsample, Einsum). */
#ifndef KILN_ONNX_IMPORT_TENSOR_H
#define KILN_ONNX_IMPORT_TENSOR_H

#include "onnx/importer.h"

#include "network/tensor_layers.h"

/* Binds output 0 to t, or returns the error that left t NULL. The status is passed by address
 * so that it is read after t's expression (which sets it) has run. */
kiln_status kiln__onnx_tensor_out0(kiln__onnx_ctx *ctx, const kiln__onnx_node *node, kiln_tensor *t,
                                   const kiln_status *st);
/* Integer list from an attribute (before some opset) or a constant input (from it on):
 * *count -1 when neither is given. Fails when the input is given but not a constant. */
kiln_status kiln__onnx_ints_attr_or_const(kiln__onnx_ctx *ctx, const kiln__onnx_node *node, const char *attr,
                                          int32_t input, int64_t *out, int32_t max, int32_t *count);

kiln_status kiln__onnx_import_reduce(kiln__onnx_ctx *ctx, const kiln__onnx_node *node);
kiln_status kiln__onnx_import_argminmax(kiln__onnx_ctx *ctx, const kiln__onnx_node *node);
kiln_status kiln__onnx_import_topk(kiln__onnx_ctx *ctx, const kiln__onnx_node *node);
kiln_status kiln__onnx_import_resize(kiln__onnx_ctx *ctx, const kiln__onnx_node *node);
kiln_status kiln__onnx_import_upsample(kiln__onnx_ctx *ctx, const kiln__onnx_node *node);
kiln_status kiln__onnx_import_einsum(kiln__onnx_ctx *ctx, const kiln__onnx_node *node);

#endif
