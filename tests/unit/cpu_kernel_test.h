/* Shared by the CPU kernel tests that compare against reference loops in double: the kernels'
 * allocator and 4-thread pool (so the threaded paths run), and values of any float or integer
 * dtype stored and loaded through double. */
#ifndef KILN_TEST_CPU_KERNEL_TEST_H
#define KILN_TEST_CPU_KERNEL_TEST_H

#include "cpu/cpu.h"
#include "kt.h"

static kiln__alloc g_alloc;
static kiln__pool *g_pool;

/* Seeds the random inputs and sets up g_alloc and g_pool. */
static inline void ck_init(void) {
    kt_seed();
    kiln__alloc_init(&g_alloc, NULL);
    KT_OK(kiln__pool_create(&g_alloc, 4, &g_pool));
}

static inline void ck_done(void) { kiln__pool_destroy(g_pool); }

static inline size_t ck_esize(kiln_dtype t) { return kiln_dtype_bits(t) / 8; }

/* Element i of p, of dtype t, set to v (rounded or truncated to the dtype). */
static inline void ck_store(void *p, kiln_dtype t, int64_t i, double v) {
    switch (t) {
    case KILN_FLOAT64: ((double *)p)[i] = v; break;
    case KILN_FLOAT32: ((float *)p)[i] = (float)v; break;
    case KILN_FLOAT16: ((uint16_t *)p)[i] = kiln__float_to_half((float)v); break;
    case KILN_BFLOAT16: ((uint16_t *)p)[i] = kiln__float_to_bf16((float)v); break;
    case KILN_INT32: ((int32_t *)p)[i] = (int32_t)v; break;
    case KILN_UINT32: ((uint32_t *)p)[i] = (uint32_t)v; break;
    case KILN_INT64: ((int64_t *)p)[i] = (int64_t)v; break;
    default: ((uint64_t *)p)[i] = (uint64_t)v; break;
    }
}

static inline double ck_load(const void *p, kiln_dtype t, int64_t i) {
    switch (t) {
    case KILN_FLOAT64: return ((const double *)p)[i];
    case KILN_FLOAT32: return ((const float *)p)[i];
    case KILN_FLOAT16: return kiln__half_to_float(((const uint16_t *)p)[i]);
    case KILN_BFLOAT16: return kiln__bf16_to_float(((const uint16_t *)p)[i]);
    case KILN_INT32: return ((const int32_t *)p)[i];
    case KILN_UINT32: return ((const uint32_t *)p)[i];
    case KILN_INT64: return (double)((const int64_t *)p)[i];
    default: return (double)((const uint64_t *)p)[i];
    }
}

#endif
