/* The "misc" ONNX family: importers shared between import_misc.c (which holds the table),
 * import_ml.c (ai.onnx.ml and TfIdfVectorizer) and import_rnn.c (RNN, GRU, LSTM). */
#ifndef KILN_ONNX_IMPORT_MISC_H
#define KILN_ONNX_IMPORT_MISC_H

#include "onnx/importer.h"

kiln_status kiln__misc_import_tree_ensemble(kiln__onnx_ctx *ctx, const kiln__onnx_node *node);
kiln_status kiln__misc_import_tfidf(kiln__onnx_ctx *ctx, const kiln__onnx_node *node);
kiln_status kiln__misc_import_label_encoder(kiln__onnx_ctx *ctx, const kiln__onnx_node *node);
kiln_status kiln__misc_import_rnn(kiln__onnx_ctx *ctx, const kiln__onnx_node *node);

/* Binds output i to t, or returns the error that left t NULL (read through a pointer: the
 * call that sets it is usually another argument, and argument order is unspecified). */
kiln_status kiln__misc_out(kiln__onnx_ctx *ctx, const kiln__onnx_node *node, int32_t i, kiln_tensor *t,
                           const kiln_status *st);

#endif
