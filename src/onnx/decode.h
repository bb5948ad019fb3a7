/* Private to the ONNX reader: the store that owns decoded structs and mapped files, and the
 * decoders shared between model.c, attr.c, tensor.c, types.c and check.c. */
#ifndef KILN_ONNX_DECODE_H
#define KILN_ONNX_DECODE_H

#include "onnx/model.h"
#include "onnx/pb.h"

/* Nesting limit for graphs in attributes, TypeProtos and test-data values together, so
 * that hostile files cannot exhaust the stack. */
#define KILN__ONNX_MAX_DEPTH 64

typedef struct kiln__onnx_block kiln__onnx_block;

typedef struct kiln__onnx_ext_file {
    char *path; /* resolved */
    kiln__file_map map;
} kiln__onnx_ext_file;

/* Owns everything a decoded model or value points to: arena blocks, the mapped file (when
 * loaded from a path) and external data files. */
typedef struct kiln__onnx_store {
    kiln__alloc alloc;
    kiln__onnx_block *blocks;
    kiln__file_map map;
    char *dir; /* folder for external data, or NULL */
    kiln__onnx_ext_file *ext;
    int64_t nb_ext, ext_capacity;
} kiln__onnx_store;

kiln_status kiln__onnx_store_new(const kiln__alloc *alloc, const char *dir, kiln__onnx_store **out);
void kiln__onnx_store_free(kiln__onnx_store *s);
/* 16-byte aligned, zeroed memory that lives as long as the store. */
void *kiln__onnx_alloc(kiln__onnx_store *s, size_t count, size_t elem);
/* Maps (once) the external file `location` relative to the store's folder. */
kiln_status kiln__onnx_store_external(kiln__onnx_store *s, const char *location, const uint8_t **data, size_t *size);

/* A NUL-terminated copy of a LEN field (names may not hold NUL bytes). */
kiln_status kiln__onnx_string(kiln__onnx_store *s, const kiln__pb *r, const kiln__pb_field *f, const char *name,
                              const char **out);
/* Decodes a repeated int64 VARINT field (packed or not), appending to *dst at *n. */
void kiln__onnx_read_int64s(const kiln__pb_field *f, int64_t *dst, int64_t *n);

/* `role` and `index` name the tensor in errors ("initializer 'w'", "attribute tensor 2"). */
kiln_status kiln__onnx_decode_tensor(kiln__onnx_store *s, const kiln__pb *parent, const kiln__pb_field *f,
                                     const char *role, int64_t index, kiln__onnx_tensor *t);
kiln_status kiln__onnx_decode_type(kiln__onnx_store *s, const kiln__pb *parent, const kiln__pb_field *f, int depth,
                                   kiln__onnx_type *type);
kiln_status kiln__onnx_decode_value_info(kiln__onnx_store *s, const kiln__pb *parent, const kiln__pb_field *f,
                                         const char *role, int64_t index, kiln__onnx_value_info *vi);
kiln_status kiln__onnx_decode_graph(kiln__onnx_store *s, const kiln__pb *parent, const kiln__pb_field *f, int depth,
                                    kiln__onnx_graph *g);
kiln_status kiln__onnx_decode_attr(kiln__onnx_store *s, const kiln__pb *parent, const kiln__pb_field *f, int depth,
                                   kiln__onnx_attr *a);

/* Graph-level checks and topological sorting of a decoded top-level graph (subgraphs
 * included). */
kiln_status kiln__onnx_check_graph(const kiln__alloc *alloc, kiln__onnx_graph *g);

/* "node 'conv1' (Conv)", or "node 3 (Conv)" when unnamed (index < 0 leaves the index out). */
void kiln__onnx_node_label(const kiln__onnx_node *n, int64_t index, char *buf, size_t size);

#endif
