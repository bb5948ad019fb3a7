/* Helpers shared by the CPU kernels of the tensor-manipulation layers. */
#ifndef KILN_CPU_TENSOR_KERNELS_H
#define KILN_CPU_TENSOR_KERNELS_H

#include "cpu.h"
#include "../network/tensor_layers.h"

#include <string.h>

/* Copies one element of es bytes. */
static inline void kiln__copy_elem(void *dst, const void *src, size_t es) {
    switch (es) {
    case 1: *(uint8_t *)dst = *(const uint8_t *)src; break;
    case 2: memcpy(dst, src, 2); break;
    case 4: memcpy(dst, src, 4); break;
    case 8: memcpy(dst, src, 8); break;
    default: memcpy(dst, src, es); break;
    }
}

/* Strides (in elements) for reading `in` as if broadcast to `out` (right-aligned; dims of 1
 * get stride 0). */
static inline void kiln__broadcast_strides(const kiln_dims *in, const kiln_dims *out, int64_t *stride) {
    int64_t s = 1;
    for (int32_t i = out->nb_dims - 1; i >= 0; i--) {
        int32_t k = i - (out->nb_dims - in->nb_dims);
        if (k < 0) {
            stride[i] = 0;
            continue;
        }
        stride[i] = in->d[k] == 1 ? 0 : s;
        s *= in->d[k];
    }
}

/* Offset of output element e in an input with the given (broadcast) strides. */
static inline int64_t kiln__offset_of(int64_t e, const kiln_dims *out, const int64_t *stride) {
    int64_t off = 0;
    for (int32_t i = out->nb_dims - 1; i >= 0; i--) {
        off += (e % out->d[i]) * stride[i];
        e /= out->d[i];
    }
    return off;
}

/* Whether an operand with these strides moves with step `step` (1: contiguous, 0: broadcast)
 * over output dims [d, nb_dims). */
static inline bool kiln__uniform_run(const kiln_dims *out, const int64_t *stride, int32_t d, int64_t step) {
    int64_t want = step;
    for (int32_t i = out->nb_dims - 1; i >= d; i--) {
        if (stride[i] != want && out->d[i] != 1) return false;
        want *= step ? out->d[i] : 1;
    }
    return true;
}

/* The step of an operand over output dims [d, nb_dims): 1, 0, or -1 when it is neither. */
static inline int64_t kiln__run_step(const kiln_dims *out, const int64_t *stride, int32_t d) {
    if (kiln__uniform_run(out, stride, d, 1)) return 1;
    return kiln__uniform_run(out, stride, d, 0) ? 0 : -1;
}

/* A scalar input read as int64 (int32/int64). */
static inline int64_t kiln__scalar_i64(const kiln__value *v) { return kiln__value_int(v, 0); }

#endif
