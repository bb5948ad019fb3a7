/* Device-side helpers shared by the kernels: element loads and stores by dtype (a uniform
 * switch, cheap next to the memory access), the activation formulas, index arithmetic and
 * block reductions. */
#ifndef KILN_CU_DEV_CUH
#define KILN_CU_DEV_CUH

#include "cu.cuh"

#include <math.h>

/* Floats: f32, f16, bf16 and f64 read as float; integers and bool converted. */
__device__ __forceinline__ float cu_ldf(const void *p, int dt, int64_t i) {
    switch (dt) {
    case KILN_FLOAT32: return ((const float *)p)[i];
    case KILN_FLOAT16: return __half2float(((const __half *)p)[i]);
    case KILN_BFLOAT16: return __bfloat162float(((const __nv_bfloat16 *)p)[i]);
    case KILN_FLOAT64: return (float)((const double *)p)[i];
    case KILN_INT8: return (float)((const int8_t *)p)[i];
    case KILN_UINT8:
    case KILN_BOOL: return (float)((const uint8_t *)p)[i];
    case KILN_INT16: return (float)((const int16_t *)p)[i];
    case KILN_UINT16: return (float)((const uint16_t *)p)[i];
    case KILN_INT32: return (float)((const int32_t *)p)[i];
    case KILN_UINT32: return (float)((const uint32_t *)p)[i];
    case KILN_INT64: return (float)((const int64_t *)p)[i];
    default: return 0.0f;
    }
}

__device__ __forceinline__ void cu_stf(void *p, int dt, int64_t i, float v) {
    switch (dt) {
    case KILN_FLOAT32: ((float *)p)[i] = v; break;
    case KILN_FLOAT16: ((__half *)p)[i] = __float2half_rn(v); break;
    case KILN_BFLOAT16: ((__nv_bfloat16 *)p)[i] = __float2bfloat16_rn(v); break;
    case KILN_FLOAT64: ((double *)p)[i] = v; break;
    default: break;
    }
}

/* Integers (and bool) as int64; unsigned types zero-extend. */
__device__ __forceinline__ int64_t cu_ldi(const void *p, int dt, int64_t i) {
    switch (dt) {
    case KILN_INT8: return ((const int8_t *)p)[i];
    case KILN_UINT8:
    case KILN_BOOL: return ((const uint8_t *)p)[i];
    case KILN_INT16: return ((const int16_t *)p)[i];
    case KILN_UINT16: return ((const uint16_t *)p)[i];
    case KILN_INT32: return ((const int32_t *)p)[i];
    case KILN_UINT32: return ((const uint32_t *)p)[i];
    case KILN_INT64:
    case KILN_UINT64: return ((const int64_t *)p)[i];
    default: return 0;
    }
}

/* Stores the low bits (two's complement), as the CPU kernels do. */
__device__ __forceinline__ void cu_sti(void *p, int dt, int64_t i, int64_t v) {
    switch (dt) {
    case KILN_INT8:
    case KILN_UINT8: ((uint8_t *)p)[i] = (uint8_t)v; break;
    case KILN_BOOL: ((uint8_t *)p)[i] = v != 0; break;
    case KILN_INT16:
    case KILN_UINT16: ((uint16_t *)p)[i] = (uint16_t)v; break;
    case KILN_INT32:
    case KILN_UINT32: ((uint32_t *)p)[i] = (uint32_t)v; break;
    case KILN_INT64:
    case KILN_UINT64: ((int64_t *)p)[i] = v; break;
    default: break;
    }
}

__device__ __forceinline__ bool cu_is_float(int dt) {
    return dt == KILN_FLOAT32 || dt == KILN_FLOAT16 || dt == KILN_BFLOAT16 || dt == KILN_FLOAT64;
}

/* The CPU backend's activation formulas (src/cpu/activation.c), in float. */
__device__ __forceinline__ float cu_act(int kind, float alpha, float beta, float x) {
    switch (kind) {
    case KILN_ACT_RELU: return x < 0 ? 0.0f : x;
    case KILN_ACT_SIGMOID: {
        float e = expf(-fabsf(x));
        return x >= 0 ? 1 / (1 + e) : e / (1 + e);
    }
    case KILN_ACT_TANH: return tanhf(x);
    case KILN_ACT_CLIP: return x < alpha ? alpha : x > beta ? beta : x;
    case KILN_ACT_LEAKY_RELU: return x >= 0 ? x : alpha * x;
    case KILN_ACT_ELU: return x >= 0 ? x : alpha * (expf(x) - 1);
    case KILN_ACT_SELU: return beta * (x >= 0 ? x : alpha * (expf(x) - 1));
    case KILN_ACT_SOFTPLUS: return (x > 0 ? x : 0) + log1pf(expf(-fabsf(x)));
    case KILN_ACT_SOFTSIGN: return x / (1 + fabsf(x));
    case KILN_ACT_GELU_ERF: return 0.5f * x * (1 + erff(x * 0.70710678118654752440f));
    case KILN_ACT_GELU_TANH: return 0.5f * x * (1 + tanhf(0.79788456080286535588f * (x + 0.044715f * x * x * x)));
    case KILN_ACT_SILU: {
        float e = expf(-fabsf(x));
        return x * (x >= 0 ? 1 / (1 + e) : e / (1 + e));
    }
    case KILN_ACT_HARD_SIGMOID: {
        float y = alpha * x + beta;
        return y < 0 ? 0.0f : y > 1 ? 1.0f : y;
    }
    case KILN_ACT_HARD_SWISH: {
        float y = x / 6 + 0.5f;
        return x * (y < 0 ? 0.0f : y > 1 ? 1.0f : y);
    }
    case KILN_ACT_THRESHOLDED_RELU: return x > alpha ? x : 0.0f;
    case KILN_ACT_CELU: {
        float neg = alpha * (expf(x / alpha) - 1);
        return x != x ? x : (x > 0 ? x : 0.0f) + (neg < 0 ? neg : 0.0f);
    }
    case KILN_ACT_MISH: return x * tanhf((x > 0 ? x : 0) + log1pf(expf(-fabsf(x))));
    case KILN_ACT_SCALED_TANH: return alpha * tanhf(beta * x);
    default: return x;
    }
}

/* Offset of row-major element i of dims d under strides s. */
__device__ __forceinline__ int64_t cu_offset(const cu_strided &w, int64_t i) {
    int64_t off = 0;
    for (int32_t k = w.rank - 1; k >= 0; k--) {
        int64_t dk = w.d[k];
        off += (i % dk) * w.s[k];
        i /= dk;
    }
    return off;
}

#define CU_THREADS 256

static inline unsigned cu_blocks(int64_t n, int threads) {
    int64_t b = (n + threads - 1) / threads;
    return (unsigned)(b < 1 ? 1 : b > 2147483647 ? 2147483647 : b);
}

/* Grid-stride loop over [0, n). */
#define CU_FOR(i, n) for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < (n); i += (int64_t)gridDim.x * blockDim.x)

/* Sum / max over the block (blockDim.x a multiple of 32, at most 1024); every thread gets
 * the result. `sh` holds 32 floats. */
__device__ __forceinline__ float cu_block_sum(float v, float *sh) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    int w = threadIdx.x >> 5, lane = threadIdx.x & 31, nw = blockDim.x >> 5;
    __syncthreads();
    if (lane == 0) sh[w] = v;
    __syncthreads();
    v = lane < nw ? sh[lane] : 0.0f;
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

__device__ __forceinline__ float cu_block_max(float v, float *sh) {
    for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    int w = threadIdx.x >> 5, lane = threadIdx.x & 31, nw = blockDim.x >> 5;
    __syncthreads();
    if (lane == 0) sh[w] = v;
    __syncthreads();
    v = lane < nw ? sh[lane] : -INFINITY;
    for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}

#endif
