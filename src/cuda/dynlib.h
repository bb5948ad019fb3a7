/* cuDNN and cuBLASLt, loaded with dlopen on first CUDA use instead of linked: a CUDA-enabled
 * kiln then costs CPU-only users no startup time or memory for them (together ~150 MiB mapped
 * and relocated), and runs where they are not installed as long as no CUDA engine is built or
 * run. Each library is one table of function pointers typed from its own header; call sites
 * read cu_cudnn.cudnnCreate(&h). Only the functions src/cuda uses are listed. */
#ifndef KILN_CU_DYNLIB_H
#define KILN_CU_DYNLIB_H

#include "kiln.h"

#include <cublasLt.h>
#include <cudnn.h>

/* Qualified in C++ so that the field name does not change what the type refers to. */
#ifdef __cplusplus
#define CU_FN_TYPE(f) decltype(::f)
#else
#define CU_FN_TYPE(f) __typeof__(f)
#endif

#define CU_CUDNN_FUNCTIONS(X)                                                                                  \
    X(cudnnGetVersion)                                                                                         \
    X(cudnnGetErrorString)                                                                                     \
    X(cudnnCreate)                                                                                             \
    X(cudnnDestroy)                                                                                            \
    X(cudnnSetStream)                                                                                          \
    X(cudnnCreateTensorDescriptor)                                                                             \
    X(cudnnSetTensorNdDescriptor)                                                                              \
    X(cudnnDestroyTensorDescriptor)                                                                            \
    X(cudnnCreateFilterDescriptor)                                                                             \
    X(cudnnSetFilterNdDescriptor)                                                                              \
    X(cudnnDestroyFilterDescriptor)                                                                            \
    X(cudnnCreateConvolutionDescriptor)                                                                        \
    X(cudnnSetConvolutionNdDescriptor)                                                                         \
    X(cudnnSetConvolutionGroupCount)                                                                           \
    X(cudnnSetConvolutionMathType)                                                                             \
    X(cudnnDestroyConvolutionDescriptor)                                                                       \
    X(cudnnGetConvolutionForwardAlgorithm_v7)                                                                  \
    X(cudnnFindConvolutionForwardAlgorithm)                                                                    \
    X(cudnnGetConvolutionForwardWorkspaceSize)                                                                 \
    X(cudnnConvolutionForward)                                                                                 \
    X(cudnnGetConvolutionBackwardDataAlgorithm_v7)                                                             \
    X(cudnnFindConvolutionBackwardDataAlgorithm)                                                               \
    X(cudnnGetConvolutionBackwardDataWorkspaceSize)                                                            \
    X(cudnnConvolutionBackwardData)

#define CU_CUBLASLT_FUNCTIONS(X)                                                                               \
    X(cublasLtGetStatusString)                                                                                 \
    X(cublasLtCreate)                                                                                          \
    X(cublasLtDestroy)                                                                                         \
    X(cublasLtMatrixLayoutCreate)                                                                              \
    X(cublasLtMatrixLayoutSetAttribute)                                                                        \
    X(cublasLtMatrixLayoutDestroy)                                                                             \
    X(cublasLtMatmulDescCreate)                                                                                \
    X(cublasLtMatmulDescSetAttribute)                                                                          \
    X(cublasLtMatmulDescDestroy)                                                                               \
    X(cublasLtMatmulPreferenceCreate)                                                                          \
    X(cublasLtMatmulPreferenceSetAttribute)                                                                    \
    X(cublasLtMatmulPreferenceDestroy)                                                                         \
    X(cublasLtMatmulAlgoGetHeuristic)                                                                          \
    X(cublasLtMatmul)

#define CU_FN_FIELD(f) CU_FN_TYPE(f) *f;

typedef struct cu_cudnn_api {
    CU_CUDNN_FUNCTIONS(CU_FN_FIELD)
} cu_cudnn_api;

typedef struct cu_cublaslt_api {
    CU_CUBLASLT_FUNCTIONS(CU_FN_FIELD)
} cu_cublaslt_api;

#ifdef __cplusplus
extern "C" {
#endif

/* Filled by cu_libs_load; valid only after it returned KILN_OK. */
extern cu_cudnn_api cu_cudnn;
extern cu_cublaslt_api cu_cublaslt;

/* Loads both libraries once per process (thread-safe), searching the default loader path
 * (LD_LIBRARY_PATH, the ldconfig cache) by soname: libcudnn.so.9 then libcudnn.so, and
 * libcublasLt.so.13 then .so.12 then libcublasLt.so. Every entry point that calls into them
 * calls this first. On failure (also on every later call: the outcome is final) returns
 * KILN_DEVICE_ERROR naming the library and dlerror(). */
kiln_status cu_libs_load(void);

#ifdef __cplusplus
}
#endif

#endif
