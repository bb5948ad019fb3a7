/* CUDA backend internals: per-context state, the layer-function contract, error checks and the
 * kernel launchers shared between the layer families. */
#ifndef KILN_CU_CUH
#define KILN_CU_CUH

extern "C" {
#include "../network/layer_resolve.h"
#include "../plan/timing_cache.h"
#include "../runtime/backend.h"
}

#include "dynlib.h"

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

/* Every CUDA, cuDNN and cuBLASLt call goes through one of these: a failure becomes
 * KILN_DEVICE_ERROR naming the call and the library's message. cuDNN and cuBLASLt are called
 * through the tables of dynlib.h, which cu_libs_load fills before their first use. */
#define CU_CHECK(call)                                                                                         \
    do {                                                                                                       \
        cudaError_t cu_e_ = (call);                                                                            \
        if (cu_e_ != cudaSuccess)                                                                              \
            return kiln__error(KILN_DEVICE_ERROR, "%s failed: %s", #call, cudaGetErrorString(cu_e_));          \
    } while (0)
#define CUDNN_CHECK(call)                                                                                      \
    do {                                                                                                       \
        cudnnStatus_t cu_s_ = (call);                                                                          \
        if (cu_s_ != CUDNN_STATUS_SUCCESS)                                                                     \
            return kiln__error(KILN_DEVICE_ERROR, "%s failed: %s", #call,                                      \
                               cu_cudnn.cudnnGetErrorString(cu_s_));                                           \
    } while (0)
#define LT_CHECK(call)                                                                                         \
    do {                                                                                                       \
        cublasStatus_t cu_b_ = (call);                                                                         \
        if (cu_b_ != CUBLAS_STATUS_SUCCESS)                                                                    \
            return kiln__error(KILN_DEVICE_ERROR, "%s failed: %s", #call,                                      \
                               cu_cublaslt.cublasLtGetStatusString(cu_b_));                                    \
    } while (0)
/* After a kernel launch: launch errors (bad configuration, no kernel image) surface here. */
#define CU_LAUNCHED() CU_CHECK(cudaGetLastError())

#define CU_ALIGN 256
static inline size_t cu_align(size_t n) { return (n + CU_ALIGN - 1) & ~(size_t)(CU_ALIGN - 1); }

/* Where a tensor's device memory is for the current shapes. */
enum { CU_AT_NONE = 0, CU_AT_IO, CU_AT_WEIGHTS, CU_AT_PARAMS, CU_AT_ARENA };

/* Per layer and context: what planning found for the current shapes. */
typedef struct cu_layer_state {
    bool on_device;       /* has a kernel to run (not a constant, not folded on the host) */
    size_t scratch;       /* bytes of scratch memory the layer needs */
    size_t param_off;     /* host-computed parameters (tables) in the params buffer */
    bool has_params;
    /* convolution / deconvolution */
    cudnnTensorDescriptor_t xd, yd;
    cudnnFilterDescriptor_t wd;
    cudnnConvolutionDescriptor_t cd;
    int algo;
    size_t ws;
    /* matmul */
    cublasLtMatmulDesc_t mm;
    cublasLtMatrixLayout_t la, lb, lc;
    cublasLtMatmulAlgo_t mm_algo;
} cu_layer_state;

typedef struct cu_state {
    const kiln_engine *engine;
    kiln__alloc alloc;
    int device;
    cudnnHandle_t cudnn;
    cublasLtHandle_t lt;
    void *lt_ws; /* cuBLASLt workspace */
    size_t lt_ws_bytes;
    void *weights; /* every constant layer's values, uploaded once */
    size_t *weight_off; /* per layer; SIZE_MAX when none */
    void *arena;   /* activations, then scratch */
    size_t arena_bytes;
    void *params;  /* folded tensors and host-computed tables */
    size_t params_bytes;
    kiln__buf params_host;
    bool planned;
    uint64_t plan_key;
    cu_layer_state *ls;    /* per layer */
    uint8_t *at;           /* per tensor: CU_AT_* */
    size_t *off;           /* per tensor: offset in its region (IO: index) */
    size_t scratch_off;
} cu_state;

typedef enum { CU_PLAN, CU_RUN } cu_mode;

/* What a layer function gets. In CU_PLAN mode it sets ls->scratch and appends host-computed
 * parameters to `params` (cu_add_params); in CU_RUN mode it queues its kernels on `stream`. */
typedef struct cu_exec {
    cu_state *s;
    cu_mode mode;
    cudaStream_t stream;
    cu_layer_state *ls;
    const kiln_layer *layer;
    const kiln__value *in;   /* shapes (and host values of folded tensors) */
    const kiln__value *out;
    const void *const *din;  /* CU_RUN: device pointers of the inputs (NULL where absent) */
    void *const *dout;       /* CU_RUN: device pointers of the outputs */
    void *scratch;           /* CU_RUN */
    uint32_t flags;          /* the engine's builder flags */
} cu_exec;

typedef kiln_status (*cu_layer_fn)(cu_exec *x);

/* Plan mode: appends bytes to the params buffer and records their offset in ls. */
kiln_status cu_add_params(cu_exec *x, const void *data, size_t bytes);
/* Run mode: device address of the layer's params. */
const void *cu_layer_params(const cu_exec *x);

/* Layer families. */
kiln_status cu_conv(cu_exec *x);
kiln_status cu_deconv(cu_exec *x);
kiln_status cu_matmul(cu_exec *x);
kiln_status cu_pooling(cu_exec *x);
kiln_status cu_activation(cu_exec *x);
kiln_status cu_elementwise(cu_exec *x);
kiln_status cu_unary(cu_exec *x);
kiln_status cu_scale(cu_exec *x);
kiln_status cu_cast(cu_exec *x);
kiln_status cu_softmax(cu_exec *x);
kiln_status cu_normalization(cu_exec *x);
kiln_status cu_reduce(cu_exec *x);
kiln_status cu_shuffle(cu_exec *x);
kiln_status cu_concat(cu_exec *x);
kiln_status cu_slice(cu_exec *x);
kiln_status cu_gather(cu_exec *x);
kiln_status cu_resize(cu_exec *x);
kiln_status cu_identity(cu_exec *x);

/* Releases the cuDNN / cuBLASLt descriptors a layer state holds. */
void cu_layer_state_clear(cu_layer_state *ls);

/* Conv tactic search at build time (conv.cu): tactic = cuDNN algorithm + 1. */
kiln_status cu_conv_find(cudnnHandle_t h, const kiln_engine *e, const kiln_layer *l, const kiln__value *in,
                         const kiln__value *out, int32_t *tactic, float *ms);

/* ---------------------------------------------------------------- shared launchers (kernels.cu) */

#define CU_MAX_DIMS KILN_MAX_DIMS

/* A strided walk: element i of a tensor of dims d (row-major) is read at sum(idx_k * s[k]). */
typedef struct cu_strided {
    int32_t rank;
    int64_t d[CU_MAX_DIMS];
    int64_t s[CU_MAX_DIMS];
} cu_strided;

/* dst[dst_base + sum(idx * dst_strides)] = src[src_base + sum(idx * src_strides)] over dims d,
 * elements of es bytes (1, 2, 4, 8). Strides may be 0 (broadcast) or negative. */
kiln_status cu_copy_strided(cudaStream_t st, const void *src, int64_t src_base, const int64_t *src_strides,
                            void *dst, int64_t dst_base, const int64_t *dst_strides, const int64_t *dims,
                            int32_t rank, size_t es);
/* Contiguous row-major strides of dims. */
void cu_contiguous_strides(const kiln_dims *d, int64_t *s);
/* Strides of `in` broadcast (numpy, right-aligned) onto out_rank dims: 0 along size-1 dims. */
void cu_broadcast_strides(const kiln_dims *in, const kiln_dims *out, int64_t *s);

/* y[n, c, spatial] = act(y + bias[c] + res) in place; bias/res may be NULL, act kind -1 none. */
kiln_status cu_epilogue(cudaStream_t st, void *y, kiln_dtype dt, const void *bias, const void *res, int64_t n,
                        int64_t plane, int64_t channels, const kiln__act *act);

/* out[idx] = in[idx - shift] inside in's dims, else 0: zero padding (shift > 0) and cropping
 * (shift < 0) of the trailing nb_spatial dims of an [N, C, spatial...] tensor. */
kiln_status cu_window_copy(cudaStream_t st, const void *in, const kiln_dims *in_dims, void *out,
                           const kiln_dims *out_dims, const int64_t *shift, size_t es);

/* Whether the elementwise kernels handle dtype t as float math (f32, f16, bf16). */
static inline bool cu_float_math(kiln_dtype t) {
    return t == KILN_FLOAT32 || t == KILN_FLOAT16 || t == KILN_BFLOAT16;
}

#endif
