/* Helpers shared by the attention-family importers (import_attention*.c): small layer
 * builders that return the new layer's output, or NULL with the status in *st. */
#ifndef KILN_ONNX_IMPORT_ATTENTION_H
#define KILN_ONNX_IMPORT_ATTENTION_H

#include "onnx/importer.h"

/* Transpose by perm (NULL: none), then reshape to dims[0..n) (0 copies, -1 inferred; n < 0:
 * no reshape). */
kiln_tensor *kiln__att_shuffle(kiln__onnx_ctx *ctx, const kiln__onnx_node *node, kiln_tensor *x, const int32_t *perm,
                               const int64_t *dims, int32_t n, kiln_status *st);
/* a @ op(b) * alpha (op: transpose b when trans_b). */
kiln_tensor *kiln__att_matmul(kiln__onnx_ctx *ctx, const kiln__onnx_node *node, kiln_tensor *a, kiln_tensor *b,
                              bool trans_b, float alpha, kiln_status *st);
kiln_tensor *kiln__att_softmax_last(kiln__onnx_ctx *ctx, const kiln__onnx_node *node, kiln_tensor *x,
                                    kiln_status *st);
kiln_tensor *kiln__att_concat(kiln__onnx_ctx *ctx, const kiln__onnx_node *node, kiln_tensor *a, kiln_tensor *b,
                              int32_t axis, kiln_status *st);
/* x[..., start:end:step] along one axis. */
kiln_tensor *kiln__att_slice(kiln__onnx_ctx *ctx, const kiln__onnx_node *node, kiln_tensor *x, int32_t axis,
                             int64_t start, int64_t end, int64_t step, kiln_status *st);
/* Reads a float attribute that may be absent; *present says whether it was there. */
kiln_status kiln__att_attr_float_opt(const kiln__onnx_node *node, const char *name, float *out, bool *present);
/* [B, L, H*D] -> [B, H, L, D]. */
kiln_tensor *kiln__att_split_heads(kiln__onnx_ctx *ctx, const kiln__onnx_node *node, kiln_tensor *x, int64_t heads,
                                   kiln_status *st);
/* a @ op(b) * alpha over [B, H, L, X] heads, where b's hkv heads each serve a group of
 * hq / hkv heads of a (grouped-query attention). */
kiln_tensor *kiln__att_head_matmul(kiln__onnx_ctx *ctx, const kiln__onnx_node *node, kiln_tensor *a, kiln_tensor *b,
                                   bool trans_b, float alpha, int64_t hq, int64_t hkv, kiln_status *st);
/* Imports a graph attribute of one tensor input and one tensor output (FlexAttention's
 * score_mod and prob_mod) applied to x; returns its output. tag names the copy (".score_mod"). */
kiln_tensor *kiln__att_inline_graph(kiln__onnx_ctx *ctx, const kiln__onnx_node *node, const kiln__onnx_graph *g,
                                    const char *tag, kiln_tensor *x, kiln_status *st);

extern const kiln__onnx_op kiln__onnx_ops_attention[];

/* Importers of the family, spread over import_attention*.c. */
kiln_status kiln__att_import_rotary(kiln__onnx_ctx *ctx, const kiln__onnx_node *node);
kiln_status kiln__att_import_swiglu(kiln__onnx_ctx *ctx, const kiln__onnx_node *node);
kiln_status kiln__att_import_causal_conv(kiln__onnx_ctx *ctx, const kiln__onnx_node *node);
kiln_status kiln__att_import_linear(kiln__onnx_ctx *ctx, const kiln__onnx_node *node);
kiln_status kiln__att_import_flex(kiln__onnx_ctx *ctx, const kiln__onnx_node *node);

#endif
