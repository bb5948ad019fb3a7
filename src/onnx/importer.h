/* The ONNX importer: maps each ONNX node (per opset) onto kiln layers. One file per op family
 * (import_<family>.c), each exporting a table of the ops it handles; import.c walks the
 * graph, binds value names to network tensors and dispatches. */
#ifndef KILN_ONNX_IMPORTER_H
#define KILN_ONNX_IMPORTER_H

#include "network/ir.h"
#include "onnx/model.h"

typedef struct kiln__onnx_ctx kiln__onnx_ctx;

/* Imports one node: reads its inputs with kiln__onnx_in, adds layers to the network and
 * binds every output with kiln__onnx_out. */
typedef kiln_status (*kiln__onnx_import_fn)(kiln__onnx_ctx *ctx, const kiln__onnx_node *node);

typedef struct kiln__onnx_op {
    const char *domain;  /* "" for the default domain (ai.onnx), "ai.onnx.ml", ... */
    const char *op_type;
    int32_t min_opset;   /* first opset version of the domain the importer handles (usually 1) */
    kiln__onnx_import_fn import;
} kiln__onnx_op;

/* Each family file defines a table ending with a {NULL, NULL, 0, NULL} entry, named
 * kiln__onnx_ops_<family>; import.c lists the families. */

/* The network being built. */
kiln_network *kiln__onnx_network(kiln__onnx_ctx *ctx);
/* Opset version the model imports for the node's domain. */
int64_t kiln__onnx_node_opset(kiln__onnx_ctx *ctx, const kiln__onnx_node *node);
/* Input i of the node, or NULL when omitted ("" or past the end). */
kiln_tensor *kiln__onnx_in(kiln__onnx_ctx *ctx, const kiln__onnx_node *node, int32_t i);
/* Binds output i of the node to t. The tensor takes the ONNX value name (so errors and
 * engine IO use the model's names). Outputs omitted in the model ("" or past the end) are
 * ignored. */
kiln_status kiln__onnx_out(kiln__onnx_ctx *ctx, const kiln__onnx_node *node, int32_t i, kiln_tensor *t);
/* Whether the node's output i is used (named) in the model. */
bool kiln__onnx_has_out(const kiln__onnx_node *node, int32_t i);

/* Records "node 'name' (OpType): <message>"; returns status. */
kiln_status kiln__onnx_node_error(const kiln__onnx_node *node, kiln_status status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Values known at import time: when t is produced by a constant layer (an initializer, a
 * Constant node, or something folded), its dtype, dims and host data; else NULL data. Use it
 * for inputs that ONNX passes as tensors but kiln layers take as parameters (when the layer
 * has no tensor input for them). */
bool kiln__onnx_const(kiln__onnx_ctx *ctx, const kiln_tensor *t, kiln__value *out);
/* Reads a constant 1-D (or scalar) int32/int64 tensor into out[0..*count); false if t is not
 * a constant of that kind or has more than max elements. */
bool kiln__onnx_const_ints(kiln__onnx_ctx *ctx, const kiln_tensor *t, int64_t *out, int32_t max, int32_t *count);

/* Layer construction for importers: creates a layer of `type` with the given inputs (NULL
 * for omitted optional ones) and nb_outputs outputs, sets its params, names it after the
 * node (a suffix keeps names unique when one node makes several layers), and runs inference
 * (errors are prefixed with the node). */
kiln_status kiln__onnx_add_layer(kiln__onnx_ctx *ctx, const kiln__onnx_node *node, kiln_layer_type type,
                                 kiln_tensor *const *inputs, int32_t nb_inputs, int32_t nb_outputs,
                                 const void *params, size_t params_size, kiln_layer **layer);
/* Shorthands that return the layer's first output (NULL on error, status in *st). */
kiln_tensor *kiln__onnx_add1(kiln__onnx_ctx *ctx, const kiln__onnx_node *node, kiln_layer_type type,
                             kiln_tensor *const *inputs, int32_t nb_inputs, const void *params, size_t params_size,
                             kiln_status *st);
/* A constant tensor made during import (e.g. a default value). */
kiln_status kiln__onnx_add_constant(kiln__onnx_ctx *ctx, const kiln__onnx_node *node, kiln_dtype dtype,
                                    const kiln_dims *dims, const void *data, kiln_tensor **out);

/* Input i when present, else NULL with an error naming the input (`what`, e.g. "W") in *st. */
kiln_tensor *kiln__onnx_in_required(kiln__onnx_ctx *ctx, const kiln__onnx_node *node, int32_t i, const char *what,
                                    kiln_status *st);
/* A constant holding one value v converted to dtype, with `rank` dims of 1 (0: a scalar). */
kiln_tensor *kiln__onnx_const_scalar(kiln__onnx_ctx *ctx, const kiln__onnx_node *node, kiln_dtype dtype, double v,
                                     int32_t rank, kiln_status *st);

/* One-layer shorthands (defined in import_basic.c); NULL on error with the status in *st. */
kiln_tensor *kiln__onnx_ew(kiln__onnx_ctx *ctx, const kiln__onnx_node *node, kiln_elementwise_op op, kiln_tensor *a,
                           kiln_tensor *b, kiln_status *st);
kiln_tensor *kiln__onnx_unary(kiln__onnx_ctx *ctx, const kiln__onnx_node *node, kiln_unary_op op, kiln_tensor *x,
                              kiln_status *st);
kiln_tensor *kiln__onnx_act(kiln__onnx_ctx *ctx, const kiln__onnx_node *node, kiln_activation_type kind, float alpha,
                            float beta, kiln_tensor *x, kiln_status *st);
kiln_tensor *kiln__onnx_cast(kiln__onnx_ctx *ctx, const kiln__onnx_node *node, kiln_tensor *x, kiln_dtype to,
                             kiln_status *st);
/* Reshape to fixed dims (0 copies the input dim, -1 is inferred), and reduce over a mask. */
kiln_tensor *kiln__onnx_reshape(kiln__onnx_ctx *ctx, const kiln__onnx_node *node, kiln_tensor *x,
                                const kiln_dims *dims, kiln_status *st);
kiln_tensor *kiln__onnx_reduce(kiln__onnx_ctx *ctx, const kiln__onnx_node *node, kiln_reduce_op op, kiln_tensor *x,
                               uint32_t axes_mask, bool keep_dims, kiln_status *st);

/* ---------------------------------------------------------------- sequences, optionals, subgraphs */

/* A sequence or optional value. kiln's networks are static graphs of tensors, so such a value
 * exists only during the import: a list of network tensors whose length is known there. */
typedef enum kiln__onnx_list_kind {
    KILN__ONNX_SEQUENCE = 0,      /* the sequence items[0..count) */
    KILN__ONNX_OPTIONAL_TENSOR,   /* an optional holding the tensor items[0] (count 1) */
    KILN__ONNX_OPTIONAL_SEQUENCE, /* an optional holding the sequence items[0..count) */
    KILN__ONNX_OPTIONAL_NONE      /* an empty optional (count 0) */
} kiln__onnx_list_kind;

typedef struct kiln__onnx_list {
    kiln__onnx_list_kind kind;
    kiln_dtype dtype; /* the elements' dtype; KILN_DTYPE_UNDEFINED when not known (empty lists) */
    int32_t count;
    kiln_tensor *const *items;
} kiln__onnx_list;

/* An ONNX value: a tensor or a list (one of the two is set). */
typedef struct kiln__onnx_val {
    kiln_tensor *tensor;
    const kiln__onnx_list *list;
} kiln__onnx_val;

/* Input i of the node, tensor or list; false when omitted. */
bool kiln__onnx_in_val(kiln__onnx_ctx *ctx, const kiln__onnx_node *node, int32_t i, kiln__onnx_val *out);
/* Binds output i to a tensor (as kiln__onnx_out) or a list. */
kiln_status kiln__onnx_out_val(kiln__onnx_ctx *ctx, const kiln__onnx_node *node, int32_t i, const kiln__onnx_val *v);
/* A new list holding a copy of items[0..count); it lives until the import ends. */
kiln_status kiln__onnx_list_new(kiln__onnx_ctx *ctx, kiln__onnx_list_kind kind, kiln_dtype dtype,
                                kiln_tensor *const *items, int32_t count, const kiln__onnx_list **out);
/* Imports the subgraph g (a node attribute) once, in a scope of its own that sees the
 * enclosing names: binds g's inputs to inputs[0..nb_inputs), imports its nodes and returns
 * its g->nb_outputs outputs. Tensors and layers made there are named "<node><tag>/<name>"
 * (tag tells copies apart: "[3]" for an unrolled iteration, ".then" for a branch). */
kiln_status kiln__onnx_subgraph(kiln__onnx_ctx *ctx, const kiln__onnx_node *node, const kiln__onnx_graph *g,
                                const char *tag, const kiln__onnx_val *inputs, int32_t nb_inputs,
                                kiln__onnx_val *outputs);

/* How a sequence or optional graph input is fed, which the model alone does not fix: whether
 * an optional holds a value, how many elements a sequence has, and each element's dtype and
 * dims. Element k of a sequence input "s" becomes the network input "s[k]"; an optional
 * tensor input "o" the network input "o". Graph outputs are flattened the same way (an empty
 * optional output becomes no network output). */
typedef struct kiln__onnx_input_form {
    const char *name;  /* the graph input */
    bool present;      /* optionals: false for an empty one */
    int32_t count;     /* sequences (held by an optional or not): the number of elements */
    const kiln_dtype *dtypes; /* per element (one for an optional tensor) */
    const kiln_dims *dims;
} kiln__onnx_input_form;

/* kiln_onnx_parse on a decoded model, with the forms of its sequence and optional inputs
 * (used by the conformance runner, which takes them from the test data). */
kiln_status kiln__onnx_import(kiln_builder *builder, const kiln__onnx_model *model, const kiln__onnx_input_form *forms,
                              int32_t nb_forms, kiln_network **out);

#endif
