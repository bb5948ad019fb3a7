/* The ONNX model reader: decodes a ModelProto (or a test-data TensorProto, SequenceProto or
 * OptionalProto) from a memory-mapped file into plain structs, with no protobuf library.
 *
 * Ownership: everything reachable from a kiln__onnx_model (or kiln__onnx_value_file) lives
 * until kiln__onnx_model_free. Names are NUL-terminated copies ("" when absent); tensor
 * data is never copied: raw_data and external data are pointers into the mapped files
 * (possibly unaligned: read through memcpy or kiln__onnx_tensor_data).
 *
 * Checks done while loading: protobuf well-formedness, wire types of known fields, tensor
 * sizes (dims >= 0, no overflow, data length == dims x dtype size), external data locations
 * (inside the model's folder), and per graph (subgraphs included): unique value names, no
 * dangling inputs (subgraphs may use outer-scope names), no cycles; nodes are put in
 * topological order when they are not already. Unknown ops and opset domains are left to
 * the importer. Not thread-safe per object; distinct objects are independent. */
#ifndef KILN_ONNX_MODEL_H
#define KILN_ONNX_MODEL_H

#include "core/core.h"

/* Bytes that are not a name: attribute `s`/`strings`, string tensor elements. */
typedef struct kiln__onnx_bytes {
    const uint8_t *data;
    size_t size;
} kiln__onnx_bytes;

/* ONNX TensorProto.DataType values beyond kiln_dtype (which equals ONNX for the rest). */
enum { KILN__ONNX_COMPLEX64 = 14, KILN__ONNX_COMPLEX128 = 15, KILN__ONNX_FLOAT6E2M3 = 27, KILN__ONNX_FLOAT6E3M2 = 28 };

typedef enum kiln__onnx_data_source {
    KILN__ONNX_DATA_NONE = 0, /* zero elements and no data field */
    KILN__ONNX_DATA_RAW,      /* raw_data: `raw` points into the model file */
    KILN__ONNX_DATA_EXTERNAL, /* data_location EXTERNAL: `raw` points into the mapped external file */
    KILN__ONNX_DATA_TYPED,    /* float_data/int32_data/int64_data/double_data/uint64_data */
    KILN__ONNX_DATA_STRINGS   /* string_data: see `strings` */
} kiln__onnx_data_source;

typedef struct kiln__onnx_tensor {
    const char *name;
    int32_t data_type; /* ONNX enum as stored */
    kiln_dtype dtype;  /* == data_type when kiln knows it, else KILN_DTYPE_UNDEFINED */
    int32_t nb_dims;
    const int64_t *dims;
    int64_t count; /* product of dims (1 for a scalar) */
    kiln__onnx_data_source source;
    const uint8_t *raw; /* RAW, EXTERNAL: exactly `raw_size` bytes of packed little-endian data */
    size_t raw_size;
    const kiln__onnx_bytes *strings; /* STRINGS: `count` elements */
    /* EXTERNAL: as written in the model (offset 0, length -1 when absent). */
    const char *location;
    int64_t ext_offset, ext_length;
    /* TYPED: the TensorProto bytes and the field that holds the elements, decoded on demand. */
    const uint8_t *msg;
    size_t msg_size;
    uint32_t typed_field;
} kiln__onnx_tensor;

/* Element data as one contiguous little-endian buffer in the tensor's dtype layout (sub-byte
 * types packed as in raw_data). `owned` is non-NULL when it was decoded from typed fields
 * and must be released with kiln__onnx_data_release. */
typedef struct kiln__onnx_data {
    const void *data;
    size_t size;
    void *owned;
} kiln__onnx_data;

/* KILN_UNSUPPORTED for string tensors (use t->strings) and dtypes without a fixed size.
 * Typed fields follow ONNX's packing: fp16/bf16/fp8/int8/uint8/int16/uint16/bool in
 * int32_data one element each (low bits), 4-bit and 2-bit types one packed byte per int32,
 * 6-bit floats one element per int32 (packed here into a 6-bit stream), uint32 in
 * uint64_data, complex as float/double pairs. */
kiln_status kiln__onnx_tensor_data(const kiln__alloc *alloc, const kiln__onnx_tensor *t, kiln__onnx_data *out);
void kiln__onnx_data_release(const kiln__alloc *alloc, kiln__onnx_data *d);
/* "float32[2,3]" into buf. */
void kiln__onnx_tensor_format(const kiln__onnx_tensor *t, char *buf, size_t size);
/* Byte size of `count` elements of an ONNX data type (packed sub-byte types round up);
 * false for STRING, UNDEFINED, unknown types and overflow. */
bool kiln__onnx_type_bytes(int32_t data_type, int64_t count, size_t *bytes);

/* One dim of a value's shape: a constant, a symbol, or unknown. */
typedef struct kiln__onnx_dim {
    int64_t value;     /* >= 0 when known, else -1 */
    const char *param; /* symbol name ("batch") or NULL */
} kiln__onnx_dim;

typedef enum kiln__onnx_type_kind {
    KILN__ONNX_TYPE_NONE = 0, /* no type given */
    KILN__ONNX_TYPE_TENSOR,
    KILN__ONNX_TYPE_SEQUENCE,
    KILN__ONNX_TYPE_OPTIONAL
} kiln__onnx_type_kind;

typedef struct kiln__onnx_type {
    kiln__onnx_type_kind kind;
    int32_t elem_type; /* TENSOR: ONNX data type (0 when absent) */
    bool has_shape;    /* TENSOR: false means unknown rank */
    int32_t rank;
    const kiln__onnx_dim *dims;
    const struct kiln__onnx_type *elem; /* SEQUENCE, OPTIONAL: the element type (may be NONE) */
    const char *denotation;
} kiln__onnx_type;

typedef struct kiln__onnx_value_info {
    const char *name;
    kiln__onnx_type type;
} kiln__onnx_value_info;

typedef enum kiln__onnx_attr_type {
    KILN__ONNX_ATTR_UNDEFINED = 0,
    KILN__ONNX_ATTR_FLOAT = 1,
    KILN__ONNX_ATTR_INT = 2,
    KILN__ONNX_ATTR_STRING = 3,
    KILN__ONNX_ATTR_TENSOR = 4,
    KILN__ONNX_ATTR_GRAPH = 5,
    KILN__ONNX_ATTR_FLOATS = 6,
    KILN__ONNX_ATTR_INTS = 7,
    KILN__ONNX_ATTR_STRINGS = 8,
    KILN__ONNX_ATTR_TENSORS = 9,
    KILN__ONNX_ATTR_GRAPHS = 10,
    KILN__ONNX_ATTR_TYPE_PROTO = 13,
    KILN__ONNX_ATTR_TYPE_PROTOS = 14
} kiln__onnx_attr_type;

const char *kiln__onnx_attr_type_name(kiln__onnx_attr_type type);

struct kiln__onnx_graph;

/* The field matching `type` is set; list types use `count` and one array. An attribute with
 * ref_attr_name (inside a function body) may carry no value. */
typedef struct kiln__onnx_attr {
    const char *name;
    kiln__onnx_attr_type type;
    const char *ref_attr_name; /* NULL when absent */
    float f;
    int64_t i;
    kiln__onnx_bytes s;
    const kiln__onnx_tensor *t;
    const struct kiln__onnx_graph *g;
    const kiln__onnx_type *tp;
    int64_t count;
    const float *floats;
    const int64_t *ints;
    const kiln__onnx_bytes *strings;
    const kiln__onnx_tensor *tensors;
    const struct kiln__onnx_graph *graphs;
    const kiln__onnx_type *type_protos;
} kiln__onnx_attr;

typedef struct kiln__onnx_node {
    const char *name;
    const char *op_type;
    const char *domain; /* "" and "ai.onnx" both mean the default domain */
    int32_t nb_inputs, nb_outputs;
    const char *const *inputs; /* "" marks an omitted optional input/output */
    const char *const *outputs;
    int32_t nb_attrs;
    const kiln__onnx_attr *attrs;
} kiln__onnx_node;

typedef struct kiln__onnx_graph {
    const char *name;
    int32_t nb_nodes, nb_initializers, nb_inputs, nb_outputs, nb_value_infos;
    const kiln__onnx_node *nodes; /* in topological order */
    const kiln__onnx_tensor *initializers;
    const kiln__onnx_value_info *inputs; /* may include initializer names (IR < 4 style) */
    const kiln__onnx_value_info *outputs;
    const kiln__onnx_value_info *value_infos;
} kiln__onnx_graph;

typedef struct kiln__onnx_opset {
    const char *domain; /* "" for the default domain */
    int64_t version;
} kiln__onnx_opset;

typedef struct kiln__onnx_prop {
    const char *key;
    const char *value;
} kiln__onnx_prop;

struct kiln__onnx_store; /* arena and mapped files, private */

typedef struct kiln__onnx_model {
    int64_t ir_version;
    int64_t model_version;
    const char *producer_name, *producer_version, *domain;
    int32_t nb_opsets, nb_props;
    const kiln__onnx_opset *opsets;
    const kiln__onnx_prop *props; /* metadata_props */
    const kiln__onnx_graph *graph;
    struct kiln__onnx_store *store;
} kiln__onnx_model;

/* Maps `path` and decodes it; external data resolves against the file's folder. */
kiln_status kiln__onnx_model_load(const kiln__alloc *alloc, const char *path, kiln__onnx_model **out);
/* Decodes `size` bytes that must outlive the model. `dir` is the folder external data
 * resolves against; NULL refuses external data. */
kiln_status kiln__onnx_model_parse(const kiln__alloc *alloc, const void *data, size_t size, const char *dir,
                                   kiln__onnx_model **out);
void kiln__onnx_model_free(kiln__onnx_model *model);
/* The version imported for `domain` ("" or "ai.onnx" for the default); 0 when absent. */
int64_t kiln__onnx_opset_version(const kiln__onnx_model *model, const char *domain);

/* Attribute lookup for importers. Each getter leaves *out untouched and returns KILN_OK
 * when the attribute is absent (so callers preset defaults), and refuses one of another
 * type: "node 'conv1' (Conv): attribute 'strides': expected INTS, got FLOAT". */
const kiln__onnx_attr *kiln__onnx_node_attr(const kiln__onnx_node *node, const char *name);
kiln_status kiln__onnx_attr_float(const kiln__onnx_node *node, const char *name, float *out);
kiln_status kiln__onnx_attr_int(const kiln__onnx_node *node, const char *name, int64_t *out);
kiln_status kiln__onnx_attr_string(const kiln__onnx_node *node, const char *name, kiln__onnx_bytes *out);
kiln_status kiln__onnx_attr_floats(const kiln__onnx_node *node, const char *name, const float **out, int64_t *count);
kiln_status kiln__onnx_attr_ints(const kiln__onnx_node *node, const char *name, const int64_t **out, int64_t *count);
kiln_status kiln__onnx_attr_tensor(const kiln__onnx_node *node, const char *name, const kiln__onnx_tensor **out);
kiln_status kiln__onnx_attr_graph(const kiln__onnx_node *node, const char *name, const kiln__onnx_graph **out);

/* Test data (.pb files): the message type is not in the file; take it from the graph
 * input/output type with kiln__onnx_value_kind_of. */
typedef enum kiln__onnx_value_kind {
    KILN__ONNX_VALUE_TENSOR = 1,
    KILN__ONNX_VALUE_SEQUENCE,
    KILN__ONNX_VALUE_OPTIONAL
} kiln__onnx_value_kind;

typedef struct kiln__onnx_value {
    kiln__onnx_value_kind kind;
    const char *name;
    const kiln__onnx_tensor *tensor; /* TENSOR */
    int32_t elem_type;               /* SEQUENCE, OPTIONAL: SequenceProto.DataType (1 tensor, 3 sequence, 5 optional) */
    int64_t count;                   /* SEQUENCE: elements */
    const struct kiln__onnx_value *items; /* SEQUENCE */
    const struct kiln__onnx_value *value; /* OPTIONAL: NULL when empty */
} kiln__onnx_value;

typedef struct kiln__onnx_value_file {
    kiln__onnx_value value;
    struct kiln__onnx_store *store;
} kiln__onnx_value_file;

/* 0 for types with no test-data message (NONE). */
kiln__onnx_value_kind kiln__onnx_value_kind_of(const kiln__onnx_type *type);
kiln_status kiln__onnx_value_load(const kiln__alloc *alloc, const char *path, kiln__onnx_value_kind kind,
                                  kiln__onnx_value_file **out);
kiln_status kiln__onnx_value_parse(const kiln__alloc *alloc, const void *data, size_t size, kiln__onnx_value_kind kind,
                                   kiln__onnx_value_file **out);
void kiln__onnx_value_free(kiln__onnx_value_file *file);

#endif
