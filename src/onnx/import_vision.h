/* Shared by the vision/signal importers (import_vision*.c). */
#ifndef KILN_ONNX_IMPORT_VISION_H
#define KILN_ONNX_IMPORT_VISION_H

#include "onnx/importer.h"

/* Binds output 0 to t, or returns the error that left t NULL. */
kiln_status kiln__vision_out0(kiln__onnx_ctx *ctx, const kiln__onnx_node *node, kiln_tensor *t,
                              const kiln_status *st);
bool kiln__vision_str_is(kiln__onnx_bytes b, const char *s);

/* Importers defined in import_vision2.c. */
kiln_status kiln__vision_import_center_crop_pad(kiln__onnx_ctx *ctx, const kiln__onnx_node *node);
kiln_status kiln__vision_import_compress(kiln__onnx_ctx *ctx, const kiln__onnx_node *node);
kiln_status kiln__vision_import_window(kiln__onnx_ctx *ctx, const kiln__onnx_node *node);
kiln_status kiln__vision_import_reverse_sequence(kiln__onnx_ctx *ctx, const kiln__onnx_node *node);
kiln_status kiln__vision_import_maxunpool(kiln__onnx_ctx *ctx, const kiln__onnx_node *node);
kiln_status kiln__vision_import_tensor_scatter(kiln__onnx_ctx *ctx, const kiln__onnx_node *node);
kiln_status kiln__vision_import_image_decoder(kiln__onnx_ctx *ctx, const kiln__onnx_node *node);

#endif
