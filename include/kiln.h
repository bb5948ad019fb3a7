/*
 * kiln — build optimized inference engines from ONNX models and run them.
 *
 * This header is the whole public C API and its specification. Conventions:
 *  - Every fallible function returns a kiln_status; KILN_OK is 0. The message of the last
 *    failure on the calling thread is kiln_last_error().
 *  - Objects are opaque handles created by a *_create function (or by a parent object) and
 *    released by *_destroy, which accepts NULL and any state.
 *  - Option structs start with `struct_size`; set it to sizeof the struct (KILN_INIT does).
 *  - The library never aborts, exits or prints; it logs through the logger you give it.
 *  - Objects may be used from several threads only where a function says so; execution
 *    contexts of one engine may run concurrently, one thread per context.
 */
#ifndef KILN_H
#define KILN_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(_WIN32)
#define KILN_API __declspec(dllexport)
#else
#define KILN_API __attribute__((visibility("default")))
#endif

/* ---------------------------------------------------------------- version */

#define KILN_VERSION_MAJOR 0
#define KILN_VERSION_MINOR 1
#define KILN_VERSION_PATCH 0
/* Compile-time version as one number: major * 10000 + minor * 100 + patch. */
#define KILN_VERSION (KILN_VERSION_MAJOR * 10000 + KILN_VERSION_MINOR * 100 + KILN_VERSION_PATCH)

/* Run-time version of the linked library, same encoding as KILN_VERSION. */
KILN_API uint32_t kiln_version(void);
/* Run-time version as text, e.g. "0.1.0". */
KILN_API const char *kiln_version_string(void);

/* ---------------------------------------------------------------- status */

/* Append-only: values never change meaning. */
typedef enum kiln_status {
    KILN_OK = 0,
    KILN_INVALID_ARGUMENT = 1, /* a bad parameter, a malformed model or plan file */
    KILN_OUT_OF_MEMORY = 2,    /* host or device allocation failed */
    KILN_UNSUPPORTED = 3,      /* valid request that kiln does not implement */
    KILN_INCOMPATIBLE = 4,     /* plan built by another library version or for another target */
    KILN_IO_ERROR = 5,         /* a file could not be opened, read or written */
    KILN_INVALID_STATE = 6,    /* a call out of order (e.g. execute before shapes are set) */
    KILN_NOT_FOUND = 7,        /* an unknown tensor, layer or profile name/index */
    KILN_DEVICE_ERROR = 8,     /* the CUDA driver or a CUDA library failed */
    KILN_INTERNAL_ERROR = 9    /* a bug in kiln; please report it */
} kiln_status;

/* Name of a status code ("KILN_OK", ...); "KILN_UNKNOWN_STATUS" for other values. */
KILN_API const char *kiln_status_name(kiln_status status);

/* Message of the last failure on the calling thread; "" when none. The pointer stays valid
 * until the next failing kiln call on this thread. */
KILN_API const char *kiln_last_error(void);

/* ---------------------------------------------------------------- basics */

#define KILN_MAX_DIMS 8
/* Length of a name kiln keeps for tensors and layers, including the terminator. */
#define KILN_MAX_NAME 256

/* Element types. Values match ONNX TensorProto.DataType so models map one to one. */
typedef enum kiln_dtype {
    KILN_DTYPE_UNDEFINED = 0,
    KILN_FLOAT32 = 1,
    KILN_UINT8 = 2,
    KILN_INT8 = 3,
    KILN_UINT16 = 4,
    KILN_INT16 = 5,
    KILN_INT32 = 6,
    KILN_INT64 = 7,
    KILN_STRING = 8,
    KILN_BOOL = 9, /* one byte, 0 or 1 */
    KILN_FLOAT16 = 10,
    KILN_FLOAT64 = 11,
    KILN_UINT32 = 12,
    KILN_UINT64 = 13,
    KILN_BFLOAT16 = 16,
    KILN_FP8_E4M3FN = 17,
    KILN_FP8_E4M3FNUZ = 18,
    KILN_FP8_E5M2 = 19,
    KILN_FP8_E5M2FNUZ = 20,
    KILN_UINT4 = 21,
    KILN_INT4 = 22,
    KILN_FP4_E2M1 = 23,
    KILN_FP8_E8M0 = 24,
    KILN_UINT2 = 25,
    KILN_INT2 = 26
} kiln_dtype;

/* Name of a dtype ("float32", "int64", ...); "undefined" for unknown values. */
KILN_API const char *kiln_dtype_name(kiln_dtype dtype);
/* Size of one element in bits (4 for int4); 0 for KILN_STRING and unknown values. */
KILN_API uint32_t kiln_dtype_bits(kiln_dtype dtype);

/* A shape. A dimension of -1 is dynamic (only in network inputs and engine IO shapes). */
typedef struct kiln_dims {
    int32_t nb_dims;
    int64_t d[KILN_MAX_DIMS];
} kiln_dims;

/* Weights handed to the network API. The data is copied when the layer is added. */
typedef struct kiln_weights {
    kiln_dtype dtype;
    const void *values; /* NULL with count 0 means "no weights" (e.g. no bias) */
    int64_t count;      /* number of elements */
} kiln_weights;

typedef enum kiln_device_type { KILN_DEVICE_CPU = 0, KILN_DEVICE_CUDA = 1 } kiln_device_type;

/* Host allocator. alloc returns memory aligned to at least `alignment` (a power of two) or
 * NULL; free accepts NULL. Every host allocation of an object goes through the allocator
 * given when its root object (builder or runtime) was created. */
typedef struct kiln_allocator {
    void *(*alloc)(void *user, size_t size, size_t alignment);
    void (*free)(void *user, void *ptr);
    void *user;
} kiln_allocator;

typedef enum kiln_log_level {
    KILN_LOG_ERROR = 0,
    KILN_LOG_WARNING = 1,
    KILN_LOG_INFO = 2,
    KILN_LOG_VERBOSE = 3
} kiln_log_level;

/* Logger: messages at or below `level` are passed to `log`. May be called from any thread
 * that uses the owning object. */
typedef struct kiln_logger {
    void (*log)(void *user, kiln_log_level level, const char *message);
    void *user;
    kiln_log_level level;
} kiln_logger;

#define KILN_INIT(type) {sizeof(type)}

/* Opaque handles. */
typedef struct kiln_builder kiln_builder;
typedef struct kiln_network kiln_network;
typedef struct kiln_tensor kiln_tensor; /* owned by its network */
typedef struct kiln_layer kiln_layer;   /* owned by its network */
typedef struct kiln_builder_config kiln_builder_config;
typedef struct kiln_optimization_profile kiln_optimization_profile;
typedef struct kiln_timing_cache kiln_timing_cache;
typedef struct kiln_runtime kiln_runtime;
typedef struct kiln_engine kiln_engine;
typedef struct kiln_context kiln_context;
typedef struct kiln_blob kiln_blob; /* bytes produced by kiln (a serialized plan, a cache) */

/* ---------------------------------------------------------------- blobs */

KILN_API const void *kiln_blob_data(const kiln_blob *blob);
KILN_API size_t kiln_blob_size(const kiln_blob *blob);
KILN_API void kiln_blob_destroy(kiln_blob *blob);

/* ---------------------------------------------------------------- builder */

typedef struct kiln_builder_options {
    size_t struct_size;
    const kiln_allocator *allocator; /* NULL: malloc/free */
    const kiln_logger *logger;       /* NULL: no logging */
} kiln_builder_options;

/* options may be NULL for defaults. The builder copies the allocator and logger structs. */
KILN_API kiln_status kiln_builder_create(const kiln_builder_options *options, kiln_builder **builder);
KILN_API void kiln_builder_destroy(kiln_builder *builder);

/* Whether this build of kiln can build and run for `device` on this machine (a CUDA device
 * must be present for KILN_DEVICE_CUDA). */
KILN_API int kiln_device_available(kiln_device_type device);

/* ---------------------------------------------------------------- network */

/* A new, empty network; it belongs to the caller and may outlive the builder only if the
 * builder's allocator does. */
KILN_API kiln_status kiln_network_create(kiln_builder *builder, kiln_network **network);
KILN_API void kiln_network_destroy(kiln_network *network);

KILN_API int32_t kiln_network_num_layers(const kiln_network *network);
KILN_API kiln_layer *kiln_network_layer(const kiln_network *network, int32_t index);
KILN_API int32_t kiln_network_num_inputs(const kiln_network *network);
KILN_API kiln_tensor *kiln_network_input(const kiln_network *network, int32_t index);
KILN_API int32_t kiln_network_num_outputs(const kiln_network *network);
KILN_API kiln_tensor *kiln_network_output(const kiln_network *network, int32_t index);
/* Finds a tensor by name; NULL when none. */
KILN_API kiln_tensor *kiln_network_find_tensor(const kiln_network *network, const char *name);

/* Adds an input. dims entries may be -1 (dynamic); dynamic inputs need an optimization
 * profile at build time. Names must be unique in the network. */
KILN_API kiln_status kiln_network_add_input(kiln_network *network, const char *name, kiln_dtype dtype,
                                            const kiln_dims *dims, kiln_tensor **tensor);
/* Names dimension `index` of an input (e.g. "batch"); shown in engine IO shapes. */
KILN_API kiln_status kiln_tensor_set_dim_name(kiln_tensor *tensor, int32_t index, const char *name);
/* Marks a tensor as a network output. */
KILN_API kiln_status kiln_network_mark_output(kiln_network *network, kiln_tensor *tensor);

KILN_API kiln_status kiln_tensor_set_name(kiln_tensor *tensor, const char *name);
KILN_API const char *kiln_tensor_name(const kiln_tensor *tensor);
KILN_API kiln_dtype kiln_tensor_dtype(const kiln_tensor *tensor);
/* Shape as known when the network is built: dims depending on dynamic inputs are -1.
 * Returns KILN_INVALID_STATE when an input of the producing layer is invalid. */
KILN_API kiln_status kiln_tensor_shape(const kiln_tensor *tensor, kiln_dims *dims);

typedef enum kiln_layer_type {
    KILN_LAYER_CONSTANT = 0,
    KILN_LAYER_CONVOLUTION,
    KILN_LAYER_DECONVOLUTION,
    KILN_LAYER_POOLING,
    KILN_LAYER_MATMUL,
    KILN_LAYER_ACTIVATION,
    KILN_LAYER_ELEMENTWISE,
    KILN_LAYER_UNARY,
    KILN_LAYER_SCALE,
    KILN_LAYER_SOFTMAX,
    KILN_LAYER_NORMALIZATION,
    KILN_LAYER_SHUFFLE,
    KILN_LAYER_CONCAT,
    KILN_LAYER_SLICE,
    KILN_LAYER_GATHER,
    KILN_LAYER_REDUCE,
    KILN_LAYER_RESIZE,
    KILN_LAYER_CAST,
    KILN_LAYER_SHAPE,
    KILN_LAYER_IDENTITY,
    KILN_LAYER_SELECT, /* where(cond, a, b) */
    KILN_LAYER_TOPK, /* k largest/smallest along an axis */
    KILN_LAYER_FILL, /* constant-of-shape, range, eye-like */
    KILN_LAYER_PADDING, /* constant/reflect/edge/wrap padding */
    KILN_LAYER_SCATTER, /* scatter-nd / scatter-elements */
    KILN_LAYER_EINSUM, /* Einstein summation */
    KILN_LAYER_EXPAND, /* broadcast to a shape */
    KILN_LAYER_TILE, /* repeat along dims */
    KILN_LAYER_CUMSUM, /* cumulative sum/product */
    KILN_LAYER_ONE_HOT, /* one-hot encoding */
    KILN_LAYER_NONZERO, /* indices of non-zero elements */
    KILN_LAYER_TRILU, /* upper/lower triangle */
    KILN_LAYER_QUANTIZE, /* float -> int8/fp8 with scale and zero point */
    KILN_LAYER_DEQUANTIZE, /* int8/fp8 -> float */
    KILN_LAYER_GRID_SAMPLE, /* sampling at grid coordinates */
    KILN_LAYER_LRN, /* local response normalization */
    KILN_LAYER_AFFINE_GRID, /* sampling grid from affine matrices */
    KILN_LAYER_DFT, /* discrete Fourier transform; short-time (STFT) mode */
    KILN_LAYER_NMS, /* non-maximum suppression of boxes */
    KILN_LAYER_UNIQUE, /* unique elements or slices */
    KILN_LAYER_COL2IM, /* sums sliding blocks back into an image */
    KILN_LAYER_ROI_ALIGN, /* pooled features of regions of interest */
    KILN_LAYER_DET, /* determinant of square matrices */
    KILN_LAYER_LINEAR_ATTENTION, /* recurrent linear attention (ONNX LinearAttention) */
    KILN_LAYER_BITCAST, /* the same bits read as another dtype of the same width */
    KILN_LAYER_RANDOM, /* uniform/normal/Bernoulli/multinomial samples from a seeded generator */
    KILN_LAYER_RNN, /* RNN, GRU and LSTM over a sequence */
    KILN_LAYER_TREE_ENSEMBLE, /* decision-tree ensemble (ONNX-ML TreeEnsemble) */
    KILN_LAYER_TFIDF, /* n-gram counts of integer sequences (TfIdfVectorizer) */
    KILN_LAYER_LABEL_ENCODER, /* numeric key -> value lookup (ONNX-ML LabelEncoder) */
    KILN_LAYER_TYPE_COUNT
} kiln_layer_type;

KILN_API kiln_layer_type kiln_layer_get_type(const kiln_layer *layer);
/* Name of a layer type ("Convolution", ...). */
KILN_API const char *kiln_layer_type_name(kiln_layer_type type);
KILN_API kiln_status kiln_layer_set_name(kiln_layer *layer, const char *name);
KILN_API const char *kiln_layer_name(const kiln_layer *layer);
KILN_API int32_t kiln_layer_num_inputs(const kiln_layer *layer);
/* Input `index`; NULL for an absent optional input or a bad index. */
KILN_API kiln_tensor *kiln_layer_input(const kiln_layer *layer, int32_t index);
KILN_API int32_t kiln_layer_num_outputs(const kiln_layer *layer);
KILN_API kiln_tensor *kiln_layer_output(const kiln_layer *layer, int32_t index);

/* Every add_* function validates its arguments and the shapes/dtypes of its inputs, names
 * the new layer "<Type>_<index>" (rename with kiln_layer_set_name) and its outputs
 * "<layer name>_out<i>", and stores the layer in *layer (layer may be NULL). */

KILN_API kiln_status kiln_network_add_constant(kiln_network *network, const kiln_dims *dims, kiln_weights weights,
                                               kiln_layer **layer);

/* Convolution over NC + 1..3 spatial dims. Arrays hold one value per spatial dim. */
typedef struct kiln_convolution_desc {
    size_t struct_size;
    int32_t nb_output_maps;
    int32_t nb_spatial_dims;     /* 1, 2 or 3; 0 means 2 */
    int64_t kernel[3];
    int64_t stride[3];           /* 0 means 1 */
    int64_t padding_begin[3];
    int64_t padding_end[3];
    int64_t dilation[3];         /* 0 means 1 */
    int64_t output_padding[3];   /* deconvolution only */
    int32_t groups;              /* 0 means 1 */
} kiln_convolution_desc;

/* kernel: [nb_output_maps, C/groups, k...]; bias: nb_output_maps values or none. */
KILN_API kiln_status kiln_network_add_convolution(kiln_network *network, kiln_tensor *input,
                                                  const kiln_convolution_desc *desc, kiln_weights kernel,
                                                  kiln_weights bias, kiln_layer **layer);
/* kernel: [C, nb_output_maps/groups, k...]; bias: nb_output_maps values or none. */
KILN_API kiln_status kiln_network_add_deconvolution(kiln_network *network, kiln_tensor *input,
                                                    const kiln_convolution_desc *desc, kiln_weights kernel,
                                                    kiln_weights bias, kiln_layer **layer);

typedef enum kiln_pooling_type {
    KILN_POOL_MAX = 0,
    KILN_POOL_AVERAGE = 1,
    KILN_POOL_LP = 2
} kiln_pooling_type;

typedef struct kiln_pooling_desc {
    size_t struct_size;
    kiln_pooling_type type;
    int32_t nb_spatial_dims; /* 1, 2 or 3; 0 means 2 */
    int64_t window[3];       /* ignored when global */
    int64_t stride[3];       /* 0 means 1 */
    int64_t padding_begin[3];
    int64_t padding_end[3];
    int64_t dilation[3];     /* 0 means 1 */
    int32_t global;          /* pool over all spatial dims */
    int32_t ceil_mode;       /* round output size up */
    int32_t count_include_pad; /* average: padded zeros count in the divisor */
    int32_t lp_norm;         /* KILN_POOL_LP: p; 0 means 2 */
} kiln_pooling_desc;

KILN_API kiln_status kiln_network_add_pooling(kiln_network *network, kiln_tensor *input,
                                              const kiln_pooling_desc *desc, kiln_layer **layer);

typedef enum kiln_matrix_op {
    KILN_MATRIX_NONE = 0,
    KILN_MATRIX_TRANSPOSE = 1 /* swap the last two dims */
} kiln_matrix_op;

/* Batched matrix product with numpy broadcasting of the batch dims; 1-D operands are
 * treated as numpy.matmul does. */
KILN_API kiln_status kiln_network_add_matmul(kiln_network *network, kiln_tensor *a, kiln_matrix_op op_a,
                                             kiln_tensor *b, kiln_matrix_op op_b, kiln_layer **layer);
/* out[N, K] = in[N, C...] (flattened from axis 1) x kernel[K, C...]^T + bias[K]. */
KILN_API kiln_status kiln_network_add_fully_connected(kiln_network *network, kiln_tensor *input,
                                                      int32_t nb_outputs, kiln_weights kernel, kiln_weights bias,
                                                      kiln_layer **layer);

typedef enum kiln_activation_type {
    KILN_ACT_RELU = 0,
    KILN_ACT_SIGMOID,
    KILN_ACT_TANH,
    KILN_ACT_CLIP,         /* min(max(x, alpha), beta) */
    KILN_ACT_LEAKY_RELU,   /* x >= 0 ? x : alpha * x */
    KILN_ACT_ELU,          /* x >= 0 ? x : alpha * (exp(x) - 1) */
    KILN_ACT_SELU,         /* beta * (x >= 0 ? x : alpha * (exp(x) - 1)) */
    KILN_ACT_SOFTPLUS,     /* log(1 + exp(x)) */
    KILN_ACT_SOFTSIGN,     /* x / (1 + |x|) */
    KILN_ACT_GELU_ERF,     /* 0.5 x (1 + erf(x / sqrt 2)) */
    KILN_ACT_GELU_TANH,    /* tanh approximation */
    KILN_ACT_SILU,         /* x sigmoid(x) */
    KILN_ACT_HARD_SIGMOID, /* max(0, min(1, alpha x + beta)) */
    KILN_ACT_HARD_SWISH,   /* x max(0, min(1, x / 6 + 0.5)) */
    KILN_ACT_THRESHOLDED_RELU, /* x > alpha ? x : 0 */
    KILN_ACT_CELU,         /* max(0,x) + min(0, alpha (exp(x / alpha) - 1)) */
    KILN_ACT_MISH,         /* x tanh(softplus(x)) */
    KILN_ACT_SCALED_TANH,  /* alpha tanh(beta x) */
    KILN_ACT_COUNT
} kiln_activation_type;

/* alpha and beta as in the comments above; pass 0 where unused. Float dtypes; relu and clip
 * also take signed integers. */
KILN_API kiln_status kiln_network_add_activation(kiln_network *network, kiln_tensor *input,
                                                 kiln_activation_type type, float alpha, float beta,
                                                 kiln_layer **layer);

typedef enum kiln_elementwise_op {
    KILN_EW_ADD = 0,
    KILN_EW_SUB,
    KILN_EW_MUL,
    KILN_EW_DIV,   /* integer division truncates toward zero; integer x / 0 and x % 0 give 0 */
    KILN_EW_POW,
    KILN_EW_MIN,
    KILN_EW_MAX,
    KILN_EW_MOD,   /* sign of the divisor, as Python's % */
    KILN_EW_FMOD,  /* sign of the dividend, as C's fmod */
    KILN_EW_EQUAL, /* comparisons and logic produce KILN_BOOL */
    KILN_EW_LESS,
    KILN_EW_LESS_EQUAL,
    KILN_EW_GREATER,
    KILN_EW_GREATER_EQUAL,
    KILN_EW_AND, /* logic ops take KILN_BOOL */
    KILN_EW_OR,
    KILN_EW_XOR,
    KILN_EW_BIT_AND, /* bitwise ops take integers */
    KILN_EW_BIT_OR,
    KILN_EW_BIT_XOR,
    KILN_EW_SHIFT_LEFT,
    KILN_EW_SHIFT_RIGHT,
    KILN_EW_COUNT
} kiln_elementwise_op;

/* Numpy broadcasting; both inputs have the same dtype. */
KILN_API kiln_status kiln_network_add_elementwise(kiln_network *network, kiln_tensor *a, kiln_tensor *b,
                                                  kiln_elementwise_op op, kiln_layer **layer);

typedef enum kiln_unary_op {
    KILN_UNARY_EXP = 0,
    KILN_UNARY_LOG,
    KILN_UNARY_SQRT,
    KILN_UNARY_RECIP,
    KILN_UNARY_ABS,
    KILN_UNARY_NEG,
    KILN_UNARY_SIN,
    KILN_UNARY_COS,
    KILN_UNARY_TAN,
    KILN_UNARY_SINH,
    KILN_UNARY_COSH,
    KILN_UNARY_ASIN,
    KILN_UNARY_ACOS,
    KILN_UNARY_ATAN,
    KILN_UNARY_ASINH,
    KILN_UNARY_ACOSH,
    KILN_UNARY_ATANH,
    KILN_UNARY_CEIL,
    KILN_UNARY_FLOOR,
    KILN_UNARY_ROUND, /* half to even */
    KILN_UNARY_ERF,
    KILN_UNARY_NOT,   /* KILN_BOOL */
    KILN_UNARY_SIGN,
    KILN_UNARY_BIT_NOT,
    KILN_UNARY_ISNAN, /* produces KILN_BOOL */
    KILN_UNARY_ISINF, /* produces KILN_BOOL; both signs */
    KILN_UNARY_COUNT
} kiln_unary_op;

KILN_API kiln_status kiln_network_add_unary(kiln_network *network, kiln_tensor *input, kiln_unary_op op,
                                            kiln_layer **layer);

typedef enum kiln_scale_mode {
    KILN_SCALE_UNIFORM = 0,     /* one shift/scale/power for the whole tensor */
    KILN_SCALE_CHANNEL = 1,     /* one per channel (dim `channel_axis`) */
    KILN_SCALE_ELEMENTWISE = 2  /* one per element of a [C, ...] sample */
} kiln_scale_mode;

/* out = (in * scale + shift) ^ power. Each weights argument may be empty (defaults 1, 0, 1). */
KILN_API kiln_status kiln_network_add_scale(kiln_network *network, kiln_tensor *input, kiln_scale_mode mode,
                                            int32_t channel_axis, kiln_weights shift, kiln_weights scale,
                                            kiln_weights power, kiln_layer **layer);

/* Softmax over `axis` (negative counts from the end). log_softmax when `log` is non-zero. */
KILN_API kiln_status kiln_network_add_softmax(kiln_network *network, kiln_tensor *input, int32_t axis, int32_t log,
                                              kiln_layer **layer);

typedef enum kiln_normalization_type {
    KILN_NORM_BATCH = 0,    /* inference: (x - mean[c]) / sqrt(var[c] + eps) * scale[c] + bias[c] */
    KILN_NORM_LAYER = 1,    /* over dims axis.. end; scale/bias of shape dims[axis..] */
    KILN_NORM_INSTANCE = 2, /* per sample and channel over the spatial dims */
    KILN_NORM_GROUP = 3,    /* per sample and group of channels */
    KILN_NORM_RMS = 4       /* x / sqrt(mean(x^2) + eps) * scale over dims axis.. end */
} kiln_normalization_type;

typedef struct kiln_normalization_desc {
    size_t struct_size;
    kiln_normalization_type type;
    float epsilon;
    int32_t axis;       /* layer/rms: first normalized dim (negative from the end) */
    int32_t nb_groups;  /* group */
} kiln_normalization_desc;

/* scale and bias are tensors (use constants for weights); bias may be NULL for layer/rms.
 * Batch normalization also takes mean and variance; NULL for the others. */
KILN_API kiln_status kiln_network_add_normalization(kiln_network *network, kiln_tensor *input,
                                                    const kiln_normalization_desc *desc, kiln_tensor *scale,
                                                    kiln_tensor *bias, kiln_tensor *mean, kiln_tensor *variance,
                                                    kiln_layer **layer);

/* Transpose, reshape, transpose. */
typedef struct kiln_shuffle_desc {
    size_t struct_size;
    int32_t first_transpose[KILN_MAX_DIMS]; /* permutation; used when has_first_transpose */
    int32_t has_first_transpose;
    kiln_dims reshape;   /* used when has_reshape: 0 copies the input dim (unless allow_zero), -1 is inferred */
    int32_t has_reshape;
    int32_t allow_zero;
    int32_t second_transpose[KILN_MAX_DIMS];
    int32_t has_second_transpose;
} kiln_shuffle_desc;

/* shape_tensor, when not NULL, is a 1-D int64 tensor giving the reshape dims at run time
 * (it replaces desc->reshape). */
KILN_API kiln_status kiln_network_add_shuffle(kiln_network *network, kiln_tensor *input,
                                              const kiln_shuffle_desc *desc, kiln_tensor *shape_tensor,
                                              kiln_layer **layer);

KILN_API kiln_status kiln_network_add_concat(kiln_network *network, kiln_tensor *const *inputs, int32_t nb_inputs,
                                             int32_t axis, kiln_layer **layer);

/* Output dim i has size[i] elements taken from start[i] in steps of stride[i] (which may be
 * negative). All three have the input's rank. */
KILN_API kiln_status kiln_network_add_slice(kiln_network *network, kiln_tensor *input, const kiln_dims *start,
                                            const kiln_dims *size, const kiln_dims *stride, kiln_layer **layer);

typedef enum kiln_gather_mode {
    KILN_GATHER_DEFAULT = 0,  /* numpy take along axis (ONNX Gather) */
    KILN_GATHER_ELEMENTS = 1, /* ONNX GatherElements */
    KILN_GATHER_ND = 2        /* ONNX GatherND with batch_dims */
} kiln_gather_mode;

/* indices: int32 or int64; negative indices count from the end. */
KILN_API kiln_status kiln_network_add_gather(kiln_network *network, kiln_tensor *data, kiln_tensor *indices,
                                             kiln_gather_mode mode, int32_t axis_or_batch_dims, kiln_layer **layer);

typedef enum kiln_reduce_op {
    KILN_REDUCE_SUM = 0,
    KILN_REDUCE_MEAN,
    KILN_REDUCE_MAX,
    KILN_REDUCE_MIN,
    KILN_REDUCE_PROD,
    KILN_REDUCE_L1,
    KILN_REDUCE_L2,
    KILN_REDUCE_LOG_SUM,
    KILN_REDUCE_LOG_SUM_EXP,
    KILN_REDUCE_SUM_SQUARE,
    KILN_REDUCE_ARGMAX, /* int64 output, first occurrence unless select_last */
    KILN_REDUCE_ARGMIN,
    KILN_REDUCE_COUNT
} kiln_reduce_op;

/* axes_mask: bit i reduces dim i. keep_dims keeps reduced dims as 1. Arg ops take exactly one
 * axis and use select_last to break ties at the last occurrence. */
KILN_API kiln_status kiln_network_add_reduce(kiln_network *network, kiln_tensor *input, kiln_reduce_op op,
                                             uint32_t axes_mask, int32_t keep_dims, int32_t select_last,
                                             kiln_layer **layer);

typedef enum kiln_resize_mode {
    KILN_RESIZE_NEAREST = 0,
    KILN_RESIZE_LINEAR = 1, /* (bi/tri)linear over the resized dims */
    KILN_RESIZE_CUBIC = 2
} kiln_resize_mode;

typedef enum kiln_resize_coord {
    KILN_COORD_HALF_PIXEL = 0,
    KILN_COORD_ASYMMETRIC,
    KILN_COORD_ALIGN_CORNERS,
    KILN_COORD_PYTORCH_HALF_PIXEL,
    KILN_COORD_TF_HALF_PIXEL_FOR_NN,
    KILN_COORD_TF_CROP_AND_RESIZE,
    KILN_COORD_HALF_PIXEL_SYMMETRIC
} kiln_resize_coord;

typedef enum kiln_resize_round {
    KILN_ROUND_HALF_DOWN = 0, /* round_prefer_floor */
    KILN_ROUND_HALF_UP,       /* round_prefer_ceil */
    KILN_ROUND_FLOOR,
    KILN_ROUND_CEIL
} kiln_resize_round;

typedef struct kiln_resize_desc {
    size_t struct_size;
    kiln_resize_mode mode;
    kiln_resize_coord coord;
    kiln_resize_round nearest_round;
    float cubic_coeff;          /* 0 means -0.75 */
    int32_t exclude_outside;
    float extrapolation_value;  /* tf_crop_and_resize */
    int32_t use_sizes;          /* 1: sizes gives the output shape; 0: scales */
    float scales[KILN_MAX_DIMS];
    kiln_dims sizes;
} kiln_resize_desc;

KILN_API kiln_status kiln_network_add_resize(kiln_network *network, kiln_tensor *input,
                                             const kiln_resize_desc *desc, kiln_layer **layer);

KILN_API kiln_status kiln_network_add_cast(kiln_network *network, kiln_tensor *input, kiln_dtype to,
                                           kiln_layer **layer);
/* 1-D int64 tensor holding the input's shape. */
KILN_API kiln_status kiln_network_add_shape(kiln_network *network, kiln_tensor *input, kiln_layer **layer);
KILN_API kiln_status kiln_network_add_identity(kiln_network *network, kiln_tensor *input, kiln_layer **layer);

/* ---------------------------------------------------------------- ONNX */

/* Reads an ONNX model file (external data resolved relative to its folder) into a new
 * network owned by the caller. Unsupported ops fail naming the node, op, domain and opset. */
KILN_API kiln_status kiln_onnx_parse_file(kiln_builder *builder, const char *path, kiln_network **network);
/* The same from bytes in memory; base_dir resolves external data (NULL: none allowed). */
KILN_API kiln_status kiln_onnx_parse(kiln_builder *builder, const void *data, size_t size, const char *base_dir,
                                     kiln_network **network);

/* ---------------------------------------------------------------- builder config */

typedef enum kiln_builder_flag {
    KILN_FLAG_FP16 = 1u << 0,
    KILN_FLAG_BF16 = 1u << 1,
    KILN_FLAG_TF32 = 1u << 2,
    KILN_FLAG_INT8 = 1u << 3,
    KILN_FLAG_FP8 = 1u << 4,
    KILN_FLAG_STRICT_TYPES = 1u << 5 /* keep the network's dtypes even where slower */
} kiln_builder_flag;

KILN_API kiln_status kiln_builder_config_create(kiln_builder *builder, kiln_builder_config **config);
KILN_API void kiln_builder_config_destroy(kiln_builder_config *config);
/* flags: an OR of kiln_builder_flag. As in TensorRT, precision flags permit lower precisions;
 * a backend uses them for the layers where it has faster kernels (the CPU backend computes in
 * the network's own dtypes). */
KILN_API kiln_status kiln_builder_config_set_flags(kiln_builder_config *config, uint32_t flags);
KILN_API uint32_t kiln_builder_config_flags(const kiln_builder_config *config);
KILN_API kiln_status kiln_builder_config_set_device(kiln_builder_config *config, kiln_device_type device);
/* Largest scratch memory a layer may use, in bytes; 0 means no limit. */
KILN_API kiln_status kiln_builder_config_set_workspace_limit(kiln_builder_config *config, uint64_t bytes);
/* Copies the profile; profiles get indices 0, 1, ... in the order added. */
KILN_API kiln_status kiln_builder_config_add_profile(kiln_builder_config *config,
                                                     const kiln_optimization_profile *profile);
/* The builder reads and extends this cache (not owned; must outlive the build). */
KILN_API kiln_status kiln_builder_config_set_timing_cache(kiln_builder_config *config, kiln_timing_cache *cache);

/* ---------------------------------------------------------------- profiles */

typedef enum kiln_profile_selector { KILN_PROFILE_MIN = 0, KILN_PROFILE_OPT = 1, KILN_PROFILE_MAX = 2 } kiln_profile_selector;

KILN_API kiln_status kiln_optimization_profile_create(kiln_builder *builder, kiln_optimization_profile **profile);
KILN_API void kiln_optimization_profile_destroy(kiln_optimization_profile *profile);
/* Sets min, opt or max dims of the input named `input_name`. */
KILN_API kiln_status kiln_optimization_profile_set_dims(kiln_optimization_profile *profile, const char *input_name,
                                                        kiln_profile_selector which, const kiln_dims *dims);
KILN_API kiln_status kiln_optimization_profile_get_dims(const kiln_optimization_profile *profile,
                                                        const char *input_name, kiln_profile_selector which,
                                                        kiln_dims *dims);

/* ---------------------------------------------------------------- timing cache */

KILN_API kiln_status kiln_timing_cache_create(kiln_builder *builder, const void *data, size_t size,
                                              kiln_timing_cache **cache); /* data NULL: empty cache */
KILN_API void kiln_timing_cache_destroy(kiln_timing_cache *cache);
KILN_API kiln_status kiln_timing_cache_serialize(const kiln_timing_cache *cache, kiln_blob **blob);
KILN_API int64_t kiln_timing_cache_num_entries(const kiln_timing_cache *cache);

/* ---------------------------------------------------------------- building */

/* Optimizes the network, selects kernels and returns the engine. The network and config are
 * not changed and may be destroyed afterwards. */
KILN_API kiln_status kiln_builder_build_engine(kiln_builder *builder, const kiln_network *network,
                                               const kiln_builder_config *config, kiln_engine **engine);

/* ---------------------------------------------------------------- runtime & engine */

typedef struct kiln_runtime_options {
    size_t struct_size;
    const kiln_allocator *allocator; /* NULL: malloc/free */
    const kiln_logger *logger;       /* NULL: no logging */
    int32_t nb_threads;              /* CPU worker threads; 0: one per core. The CPU kernels use
                                        only these: creating the thread pool sets OpenBLAS (float64
                                        GEMMs, CPUs without AVX2/FMA) to one thread, process-wide */
} kiln_runtime_options;

KILN_API kiln_status kiln_runtime_create(const kiln_runtime_options *options, kiln_runtime **runtime);
/* Engines deserialized by the runtime must be destroyed first. */
KILN_API void kiln_runtime_destroy(kiln_runtime *runtime);

/* Reads a serialized plan (validated: see docs/plan-format.md). The bytes are copied. */
KILN_API kiln_status kiln_runtime_deserialize_engine(kiln_runtime *runtime, const void *data, size_t size,
                                                     kiln_engine **engine);
KILN_API kiln_status kiln_runtime_load_engine(kiln_runtime *runtime, const char *path, kiln_engine **engine);

KILN_API void kiln_engine_destroy(kiln_engine *engine);
KILN_API kiln_status kiln_engine_serialize(const kiln_engine *engine, kiln_blob **blob);
KILN_API kiln_status kiln_engine_save(const kiln_engine *engine, const char *path);
KILN_API kiln_device_type kiln_engine_device(const kiln_engine *engine);

typedef enum kiln_io_mode { KILN_IO_NONE = 0, KILN_IO_INPUT = 1, KILN_IO_OUTPUT = 2 } kiln_io_mode;

/* IO tensors: inputs first, then outputs, in network order. */
KILN_API int32_t kiln_engine_num_io_tensors(const kiln_engine *engine);
KILN_API const char *kiln_engine_io_tensor_name(const kiln_engine *engine, int32_t index);
KILN_API kiln_io_mode kiln_engine_tensor_io_mode(const kiln_engine *engine, const char *name);
KILN_API kiln_dtype kiln_engine_tensor_dtype(const kiln_engine *engine, const char *name);
/* Shape with -1 where it depends on a dynamic input or on data. */
KILN_API kiln_status kiln_engine_tensor_shape(const kiln_engine *engine, const char *name, kiln_dims *dims);
/* Symbol of dim `index` ("batch") or NULL when the dim has none. */
KILN_API const char *kiln_engine_tensor_dim_name(const kiln_engine *engine, const char *name, int32_t index);
KILN_API int32_t kiln_engine_num_profiles(const kiln_engine *engine);
KILN_API kiln_status kiln_engine_profile_dims(const kiln_engine *engine, int32_t profile, const char *input_name,
                                              kiln_profile_selector which, kiln_dims *dims);
KILN_API int32_t kiln_engine_num_layers(const kiln_engine *engine);
/* One-line description of layer `index`: name, type, parameters, tactic, inputs, outputs.
 * Written to buf (always terminated); returns the full length needed, or -1 on a bad index. */
KILN_API int64_t kiln_engine_layer_info(const kiln_engine *engine, int32_t index, char *buf, size_t buf_size);
/* The same for all layers as one JSON document. */
KILN_API kiln_status kiln_engine_inspect_json(const kiln_engine *engine, kiln_blob **json);

/* ---------------------------------------------------------------- execution context */

/* Contexts of one engine may run at the same time on different threads. */
KILN_API kiln_status kiln_engine_create_context(kiln_engine *engine, kiln_context **context);
KILN_API void kiln_context_destroy(kiln_context *context);

/* Selects the optimization profile that bounds the input shapes (default 0). */
KILN_API kiln_status kiln_context_set_profile(kiln_context *context, int32_t profile);
/* Required for inputs with dynamic dims; must lie within the profile's min..max. */
KILN_API kiln_status kiln_context_set_input_shape(kiln_context *context, const char *name, const kiln_dims *dims);
/* Shape of any IO tensor once all input shapes are known; output dims that depend on input
 * data are -1 until after execution. */
KILN_API kiln_status kiln_context_get_tensor_shape(kiln_context *context, const char *name, kiln_dims *dims);
/* Binds memory for an IO tensor: host memory for CPU engines, device memory for CUDA ones.
 * size is the buffer's capacity in bytes. Outputs left unbound are allocated by the context
 * (read them with kiln_context_get_tensor_address after execution). */
KILN_API kiln_status kiln_context_set_tensor_address(kiln_context *context, const char *name, void *data,
                                                     size_t size);
/* Address of an IO tensor's memory (bound or context-owned); valid until the next execution. */
KILN_API kiln_status kiln_context_get_tensor_address(kiln_context *context, const char *name, void **data);
/* Runs the engine to completion on the calling thread. */
KILN_API kiln_status kiln_context_execute(kiln_context *context);
/* Queues the engine on a CUDA stream (cudaStream_t; NULL is the default stream). For CPU
 * engines this runs synchronously like kiln_context_execute. */
KILN_API kiln_status kiln_context_enqueue(kiln_context *context, void *stream);
/* Bytes of activation memory the context uses for the current shapes (after execution). */
KILN_API uint64_t kiln_context_activation_bytes(const kiln_context *context);

/* ---------------------------------------------------------------- per-layer profiling */

/* Accumulated timing of one engine layer (after the builder's fusions: the layers that
 * kiln_engine_num_layers and kiln_engine_layer_info list). */
typedef struct kiln_layer_profile {
    size_t struct_size;     /* set by the caller to sizeof(kiln_layer_profile); kiln fills the fields that fit */
    const char *name;       /* the layer's name; valid while the engine lives */
    const char *type_name;  /* kiln_layer_type_name of its type ("Convolution", ...) */
    kiln_layer_type type;
    int64_t count;          /* timed executions since profiling was enabled or reset */
    double total_ms;        /* their summed time in milliseconds */
} kiln_layer_profile;

/* Turns per-layer timing of this context's executions on (enabled != 0) or off. Turning it on
 * the first time allocates one accumulator per engine layer (KILN_OUT_OF_MEMORY otherwise);
 * results accumulate across executions and stay readable after it is turned off. Off costs
 * one branch per execution. CPU engines: each layer is timed on the calling thread with
 * CLOCK_MONOTONIC around all of its work in an execution (output shape check, output
 * placement, kernel on the worker threads); the host shape inference that runs when input
 * shapes change (shape tensors folded) is not timed and not counted. CUDA engines: not
 * implemented yet; enabling returns KILN_UNSUPPORTED (disabling returns KILN_OK). */
KILN_API kiln_status kiln_context_set_profiling(kiln_context *context, int enabled);
/* Number of profile entries: the engine's layer count, in execution order (entry i is
 * layer i of kiln_engine_layer_info), once profiling has been enabled; 0 before. */
KILN_API kiln_status kiln_context_profiling_num_layers(const kiln_context *context, int32_t *count);
/* Entry `index` (0 .. count - 1) into *profile; KILN_NOT_FOUND for an index out of range. */
KILN_API kiln_status kiln_context_profiling_layer(const kiln_context *context, int32_t index,
                                                  kiln_layer_profile *profile);
/* Zeroes every entry's count and time; profiling stays on or off as it was. */
KILN_API kiln_status kiln_context_reset_profiling(kiln_context *context);

#ifdef __cplusplus
}
#endif

#endif /* KILN_H */
