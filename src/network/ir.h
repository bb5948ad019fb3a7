/* The network representation shared by the network API, the ONNX importer, the passes, the
 * plan files and the backends: a graph of layers over tensors with (possibly unknown) dims. */
#ifndef KILN_IR_H
#define KILN_IR_H

#include "../core/core.h"

/* Options for fused epilogues (conv, matmul): an activation applied after the bias. */
typedef struct kiln__act {
    int32_t kind; /* kiln_activation_type, or -1 for none */
    float alpha, beta;
} kiln__act;

typedef enum kiln__auto_pad {
    KILN__PAD_EXPLICIT = 0,
    KILN__PAD_SAME_UPPER = 1,
    KILN__PAD_SAME_LOWER = 2,
    KILN__PAD_VALID = 3
} kiln__auto_pad;

/* Inputs: 0 x, 1 kernel, 2 bias (optional), 3 residual added before the activation (optional). */
typedef struct kiln__conv_params {
    int32_t nb_output_maps;
    int32_t nb_spatial;
    int64_t kernel[3], stride[3], pad_begin[3], pad_end[3], dilation[3], output_padding[3];
    int32_t groups;
    int32_t auto_pad;             /* kiln__auto_pad; pads computed from shapes when not explicit */
    int32_t has_output_shape;     /* deconvolution: ONNX output_shape (spatial dims) */
    int64_t output_shape[3];
    kiln__act act;
} kiln__conv_params;

typedef struct kiln__pool_params {
    int32_t type; /* kiln_pooling_type */
    int32_t nb_spatial;
    int64_t window[3], stride[3], pad_begin[3], pad_end[3], dilation[3];
    int32_t global, ceil_mode, count_include_pad, lp_norm, auto_pad;
} kiln__pool_params;

/* Inputs: 0 a, 1 b, 2 c (optional, broadcast onto the result). out = alpha*op(a)op(b) + beta*c. */
typedef struct kiln__matmul_params {
    int32_t op_a, op_b; /* kiln_matrix_op */
    float alpha, beta;
    kiln__act act;
} kiln__matmul_params;

typedef struct kiln__activation_params {
    int32_t kind;
    float alpha, beta;
} kiln__activation_params;

typedef struct kiln__elementwise_params {
    int32_t op; /* kiln_elementwise_op */
} kiln__elementwise_params;

typedef struct kiln__unary_params {
    int32_t op; /* kiln_unary_op */
} kiln__unary_params;

/* Inputs: 0 x, 1 shift, 2 scale, 3 power (each optional). */
typedef struct kiln__scale_params {
    int32_t mode; /* kiln_scale_mode */
    int32_t channel_axis;
} kiln__scale_params;

typedef struct kiln__softmax_params {
    int32_t axis;
    int32_t log;
    int32_t coerce_2d; /* ONNX opset < 13: softmax over the flattened dims axis..end */
} kiln__softmax_params;

/* Inputs: 0 x, 1 scale, 2 bias, 3 mean, 4 variance (batch only). */
typedef struct kiln__norm_params {
    int32_t type; /* kiln_normalization_type */
    float epsilon;
    int32_t axis;
    int32_t nb_groups;
} kiln__norm_params;

/* Inputs: 0 x, 1 reshape dims (optional 1-D int64). */
typedef struct kiln__shuffle_params {
    int32_t first_perm[KILN_MAX_DIMS];
    int32_t has_first_perm;
    kiln_dims reshape;
    int32_t has_reshape;
    int32_t allow_zero;
    int32_t second_perm[KILN_MAX_DIMS];
    int32_t has_second_perm;
} kiln__shuffle_params;

typedef struct kiln__concat_params {
    int32_t axis;
} kiln__concat_params;

/* ONNX Slice semantics (clamping, negative indices and steps). Inputs: 0 x, then optional
 * 1 starts, 2 ends, 3 axes, 4 steps (1-D int32/int64) that replace the static lists. */
typedef struct kiln__slice_params {
    int32_t nb_axes;
    int32_t axes[KILN_MAX_DIMS];
    int64_t starts[KILN_MAX_DIMS], ends[KILN_MAX_DIMS], steps[KILN_MAX_DIMS];
} kiln__slice_params;

typedef struct kiln__gather_params {
    int32_t mode; /* kiln_gather_mode */
    int32_t axis; /* default/elements: axis; nd: batch_dims */
} kiln__gather_params;

/* Inputs: 0 x, 1 axes (optional 1-D int64, replaces axes_mask). */
typedef struct kiln__reduce_params {
    int32_t op; /* kiln_reduce_op */
    uint32_t axes_mask;
    int32_t keep_dims;
    int32_t select_last;
    int32_t noop_with_empty_axes; /* no axes: identity instead of reducing everything */
} kiln__reduce_params;

/* Inputs: 0 x, then optional 1 roi, 2 scales (float32), 3 sizes (int64) replacing the static ones. */
typedef struct kiln__resize_params {
    int32_t mode, coord, nearest_round;
    float cubic_coeff;
    int32_t exclude_outside;
    float extrapolation_value;
    int32_t use_sizes;
    float scales[KILN_MAX_DIMS];
    kiln_dims sizes;
    int32_t nb_axes; /* ONNX axes attribute: scales/sizes apply to these dims only; 0 = all */
    int32_t axes[KILN_MAX_DIMS];
    int32_t keep_aspect_ratio; /* 0 stretch, 1 not_larger, 2 not_smaller */
} kiln__resize_params;

typedef struct kiln__cast_params {
    int32_t to; /* kiln_dtype */
    int32_t saturate;
} kiln__cast_params;

typedef struct kiln__shape_params {
    int64_t start, end; /* ONNX Shape-15 start/end; end INT64_MAX means rank */
} kiln__shape_params;

typedef struct kiln__constant_params {
    kiln_dims dims;
    int32_t dtype;
} kiln__constant_params;

/* Parameters of every layer type. Plain data (no pointers) so plans can store it as bytes;
 * every field is validated by the layer's infer function before use. */
typedef union kiln__params {
    kiln__constant_params constant;
    kiln__conv_params conv;
    kiln__pool_params pool;
    kiln__matmul_params matmul;
    kiln__activation_params act;
    kiln__elementwise_params ew;
    kiln__unary_params unary;
    kiln__scale_params scale;
    kiln__softmax_params softmax;
    kiln__norm_params norm;
    kiln__shuffle_params shuffle;
    kiln__concat_params concat;
    kiln__slice_params slice;
    kiln__gather_params gather;
    kiln__reduce_params reduce;
    kiln__resize_params resize;
    kiln__cast_params cast;
    kiln__shape_params shape;
    uint8_t bytes[512];
} kiln__params;

struct kiln_tensor {
    kiln_network *net;
    int32_t index;
    char *name;
    kiln_dtype dtype;
    kiln_dims dims;                  /* -1: unknown at build time */
    char *dim_names[KILN_MAX_DIMS];  /* inputs only; NULL when unnamed */
    kiln_layer *producer;            /* NULL for network inputs */
    int32_t producer_output;
    bool is_input, is_output;
};

/* A reference count on memory that layers borrow: the last kiln__shared_unref calls
 * release(ctx), which frees the memory and whatever holds this struct. Counts change
 * atomically, since engines (which share their network's borrowed weights) may be destroyed
 * on any thread. */
typedef struct kiln__shared {
    int64_t refs;
    void (*release)(void *ctx);
    void *ctx;
} kiln__shared;

/* A new owner with one reference (the creator's). */
void kiln__shared_init(kiln__shared *s, void (*release)(void *ctx), void *ctx);
void kiln__shared_ref(kiln__shared *s);
void kiln__shared_unref(kiln__shared *s);

struct kiln_layer {
    kiln_network *net;
    int32_t index;
    kiln_layer_type type;
    char *name;
    int32_t nb_inputs;
    kiln_tensor **inputs; /* NULL entries are absent optional inputs */
    int32_t nb_outputs;
    kiln_tensor **outputs;
    kiln__params p;
    /* Constant layers: the values, 64-byte aligned, read-only once set. Owned and freed with
     * the layer when weights_owner is NULL; otherwise borrowed (an imported model's mapped
     * file, say) and kept alive by one reference on weights_owner. */
    void *weights;
    size_t weights_bytes;
    kiln__shared *weights_owner;
    /* Chosen by the backend at build time. */
    int32_t tactic;
};

struct kiln_network {
    kiln__alloc alloc;
    kiln__log log;
    kiln_layer **layers;
    int64_t nb_layers, cap_layers;
    kiln_tensor **tensors;
    int64_t nb_tensors, cap_tensors;
    kiln_tensor **inputs;
    int64_t nb_inputs, cap_inputs;
    kiln_tensor **outputs;
    int64_t nb_outputs, cap_outputs;
};

/* The order of a value's elements. NCHW16C (float32, 4-D, channels a multiple of 16): blocks of
 * 16 channels, each [H][W][16]; only between two CPU kernels that agreed on it (eval.c). */
enum { KILN__LAYOUT_PLAIN = 0, KILN__LAYOUT_NCHW16C = 1 };

/* A tensor's value during inference or execution: dtype, concrete or partly unknown dims,
 * host data when known (NULL otherwise), and its layout (KILN__LAYOUT_*). */
typedef struct kiln__value {
    kiln_dtype dtype;
    kiln_dims dims;
    void *data;
    size_t bytes;
    int32_t layout;
} kiln__value;

/* Computes output dtypes and dims from the inputs (absent optional inputs have dtype
 * KILN_DTYPE_UNDEFINED). Dims of -1 in the inputs are unknown: check what is known and
 * give -1 where the output dim cannot be known. Inputs whose values decide output shapes
 * (shape tensors) have data when it is known; without it the affected output dims are -1.
 * Errors name the layer (kiln__layer_error). */
typedef kiln_status (*kiln__infer_fn)(const kiln_layer *layer, const kiln__value *inputs, kiln__value *outputs);
/* Appends the layer's parameters as "key=value ..." text (inspector). */
typedef void (*kiln__describe_fn)(const kiln_layer *layer, kiln__buf *out);

typedef struct kiln__layer_ops {
    const char *name; /* "Convolution" */
    kiln__infer_fn infer;
    kiln__describe_fn describe;
} kiln__layer_ops;

/* Table indexed by kiln_layer_type, defined in registry.c from each family's ops. */
const kiln__layer_ops *kiln__layer_ops_for(kiln_layer_type type);

/* Records an error prefixed with "layer 'name' (Type): ". */
kiln_status kiln__layer_error(const kiln_layer *layer, kiln_status status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Creates a layer with nb_inputs inputs (copied; NULL allowed for optional ones) and
 * nb_outputs fresh outputs of undefined dtype, named as kiln.h says. Its params are zero.
 * Does not run inference; callers set params then call kiln__network_finish_layer. */
kiln_status kiln__network_new_layer(kiln_network *net, kiln_layer_type type, kiln_tensor *const *inputs,
                                    int32_t nb_inputs, int32_t nb_outputs, kiln_layer **layer);
/* Runs the layer's inference on the build-time dims; on failure removes the layer (it must be
 * the last one added) and returns the error. */
kiln_status kiln__network_finish_layer(kiln_network *net, kiln_layer *layer, kiln_layer **out);
/* Adds a constant layer holding a copy of the weights with the given dims. */
kiln_status kiln__network_add_constant_raw(kiln_network *net, kiln_dtype dtype, const kiln_dims *dims,
                                           const void *data, size_t bytes, kiln_layer **layer);
/* Low-level construction for readers that already know every tensor (the plan reader):
 * a tensor not yet attached to any layer, and a layer wired to existing tensors (outputs must
 * have no producer yet; they get this layer as producer). Names are copied. */
kiln_status kiln__network_new_tensor(kiln_network *net, const char *name, kiln_dtype dtype, const kiln_dims *dims,
                                     kiln_tensor **tensor);
kiln_status kiln__network_new_layer_wired(kiln_network *net, kiln_layer_type type, const char *name,
                                          kiln_tensor *const *inputs, int32_t nb_inputs, kiln_tensor *const *outputs,
                                          int32_t nb_outputs, kiln_layer **layer);
/* Registers an existing tensor as a network input / output (in call order). */
kiln_status kiln__network_set_input(kiln_network *net, kiln_tensor *tensor);
kiln_status kiln__network_set_output(kiln_network *net, kiln_tensor *tensor);
/* Sets a constant layer's values (copied into 64-byte aligned memory), dropping its previous
 * values, borrowed or not. */
kiln_status kiln__layer_set_weights(kiln_layer *layer, const void *data, size_t bytes);
/* Sets a constant layer's values to `data` (64-byte aligned, never written) without copying,
 * taking a reference on `owner`, which keeps the data alive; drops the previous values. */
void kiln__layer_borrow_weights(kiln_layer *layer, const void *data, size_t bytes, kiln__shared *owner);
/* Checks that a public API handle belongs to `net`. */
kiln_status kiln__check_tensor(const kiln_network *net, const kiln_tensor *t, const char *what);

/* Creates an empty network with the given allocator/logger (used by the plan reader too). */
kiln_status kiln__network_create(const kiln__alloc *alloc, const kiln__log *log, kiln_network **net);
/* Deep copy (used by the builder, which optimizes a copy); borrowed weights are shared, not copied. */
kiln_status kiln__network_clone(const kiln_network *src, kiln_network **dst);
/* Reorders layers so each comes after the producers of its inputs, keeping the current
 * order where it already is; KILN_INVALID_ARGUMENT naming a layer on a cycle. */
kiln_status kiln__network_toposort(kiln_network *net);
/* Removes layers whose outputs reach no network output; renumbers layers and tensors. */
kiln_status kiln__network_remove_dead(kiln_network *net);

/* Helpers for infer functions. */
/* Normalizes a possibly negative axis against rank; false when out of range. */
bool kiln__norm_axis(int64_t axis, int32_t rank, int32_t *out);
/* Numpy broadcast of two shapes (unknown dims allowed); false when incompatible. */
bool kiln__broadcast_dims(const kiln_dims *a, const kiln_dims *b, kiln_dims *out);
/* Reads element i of an integer tensor value (int32 or int64) as int64. */
int64_t kiln__value_int(const kiln__value *v, int64_t i);

#endif
