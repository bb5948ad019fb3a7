/* Kernels shared by several layer families: strided copies (transpose, slice, concat,
 * broadcast), the conv/deconv epilogue and zero-padding / cropping windows. */
#include "cu_dev.cuh"

#include <string.h>

void cu_contiguous_strides(const kiln_dims *d, int64_t *s) {
    int64_t stride = 1;
    for (int32_t i = d->nb_dims - 1; i >= 0; i--) {
        s[i] = stride;
        stride *= d->d[i];
    }
}

void cu_broadcast_strides(const kiln_dims *in, const kiln_dims *out, int64_t *s) {
    int32_t pad = out->nb_dims - in->nb_dims;
    int64_t stride = 1;
    for (int32_t i = out->nb_dims - 1; i >= 0; i--) {
        int64_t d = i >= pad ? in->d[i - pad] : 1;
        s[i] = d == 1 ? 0 : stride;
        stride *= d;
    }
}

template <typename T>
__global__ void copy_kernel(const T *src, int64_t sbase, cu_strided sw, T *dst, int64_t dbase, cu_strided dw,
                            int64_t n) {
    CU_FOR(i, n) dst[dbase + cu_offset(dw, i)] = src[sbase + cu_offset(sw, i)];
}

/* Contiguous on both sides: plain indexing. */
template <typename T>
__global__ void copy_flat_kernel(const T *src, T *dst, int64_t n) {
    CU_FOR(i, n) dst[i] = src[i];
}

kiln_status cu_copy_strided(cudaStream_t st, const void *src, int64_t src_base, const int64_t *src_strides,
                            void *dst, int64_t dst_base, const int64_t *dst_strides, const int64_t *dims,
                            int32_t rank, size_t es) {
    /* Drop size-1 dims and merge dims that are adjacent on both sides. */
    cu_strided sw = {0, {0}, {0}}, dw = {0, {0}, {0}};
    int64_t n = 1;
    for (int32_t i = 0; i < rank; i++) {
        n *= dims[i];
        if (dims[i] == 1) continue;
        int32_t m = sw.rank;
        if (m > 0 && sw.s[m - 1] == src_strides[i] * dims[i] && dw.s[m - 1] == dst_strides[i] * dims[i]) {
            sw.d[m - 1] *= dims[i];
            dw.d[m - 1] = sw.d[m - 1];
            sw.s[m - 1] = src_strides[i];
            dw.s[m - 1] = dst_strides[i];
            continue;
        }
        sw.d[m] = dw.d[m] = dims[i];
        sw.s[m] = src_strides[i];
        dw.s[m] = dst_strides[i];
        sw.rank = dw.rank = m + 1;
    }
    if (n <= 0) return KILN_OK;
    if (sw.rank == 0) { /* one element */
        sw.rank = dw.rank = 1;
        sw.d[0] = dw.d[0] = 1;
    }
    const char *s8 = (const char *)src;
    char *d8 = (char *)dst;
    if (sw.rank == 1 && sw.s[0] == 1 && dw.s[0] == 1) {
        CU_CHECK(cudaMemcpyAsync(d8 + dst_base * (int64_t)es, s8 + src_base * (int64_t)es, (size_t)n * es,
                                 cudaMemcpyDeviceToDevice, st));
        return KILN_OK;
    }
    unsigned blocks = cu_blocks(n, CU_THREADS);
    if (blocks > 65536) blocks = 65536;
    switch (es) {
    case 1: copy_kernel<<<blocks, CU_THREADS, 0, st>>>((const uint8_t *)src, src_base, sw, (uint8_t *)dst, dst_base, dw, n); break;
    case 2: copy_kernel<<<blocks, CU_THREADS, 0, st>>>((const uint16_t *)src, src_base, sw, (uint16_t *)dst, dst_base, dw, n); break;
    case 4: copy_kernel<<<blocks, CU_THREADS, 0, st>>>((const uint32_t *)src, src_base, sw, (uint32_t *)dst, dst_base, dw, n); break;
    case 8: copy_kernel<<<blocks, CU_THREADS, 0, st>>>((const uint64_t *)src, src_base, sw, (uint64_t *)dst, dst_base, dw, n); break;
    default: return kiln__error(KILN_UNSUPPORTED, "CUDA copy: elements of %zu bytes are not supported", es);
    }
    CU_LAUNCHED();
    return KILN_OK;
}

__global__ void epilogue_kernel(void *y, int dt, const void *bias, const void *res, int64_t n, int64_t plane,
                                int64_t channels, int act, float alpha, float beta) {
    CU_FOR(i, n) {
        float v = cu_ldf(y, dt, i);
        if (bias) v += cu_ldf(bias, dt, (i / plane) % channels);
        if (res) v += cu_ldf(res, dt, i);
        if (act >= 0) v = cu_act(act, alpha, beta, v);
        cu_stf(y, dt, i, v);
    }
}

kiln_status cu_epilogue(cudaStream_t st, void *y, kiln_dtype dt, const void *bias, const void *res, int64_t n,
                        int64_t plane, int64_t channels, const kiln__act *act) {
    if (n <= 0 || (!bias && !res && act->kind < 0)) return KILN_OK;
    epilogue_kernel<<<cu_blocks(n, CU_THREADS), CU_THREADS, 0, st>>>(y, dt, bias, res, n, plane > 0 ? plane : 1,
                                                                    channels > 0 ? channels : 1, act->kind,
                                                                    act->alpha, act->beta);
    CU_LAUNCHED();
    return KILN_OK;
}

template <typename T>
__global__ void window_kernel(const T *in, cu_strided iw, T *out, cu_strided ow, int64_t n) {
    /* iw.d: input dims, iw.s: input strides; ow.d: output dims, ow.s: shift per dim. */
    CU_FOR(i, n) {
        int64_t r = i, off = 0;
        bool inside = true;
        for (int32_t k = ow.rank - 1; k >= 0; k--) {
            int64_t c = r % ow.d[k] - ow.s[k];
            r /= ow.d[k];
            inside = inside && c >= 0 && c < iw.d[k];
            off += c * iw.s[k];
        }
        out[i] = inside ? in[off] : T(0);
    }
}

kiln_status cu_window_copy(cudaStream_t st, const void *in, const kiln_dims *in_dims, void *out,
                           const kiln_dims *out_dims, const int64_t *shift, size_t es) {
    cu_strided iw = {in_dims->nb_dims, {0}, {0}}, ow = {out_dims->nb_dims, {0}, {0}};
    cu_contiguous_strides(in_dims, iw.s);
    for (int32_t k = 0; k < out_dims->nb_dims; k++) {
        iw.d[k] = in_dims->d[k];
        ow.d[k] = out_dims->d[k];
        ow.s[k] = k >= 2 ? shift[k - 2] : 0;
    }
    int64_t n = kiln__dims_volume(out_dims);
    if (n <= 0) return KILN_OK;
    unsigned blocks = cu_blocks(n, CU_THREADS);
    switch (es) {
    case 2: window_kernel<<<blocks, CU_THREADS, 0, st>>>((const uint16_t *)in, iw, (uint16_t *)out, ow, n); break;
    case 4: window_kernel<<<blocks, CU_THREADS, 0, st>>>((const uint32_t *)in, iw, (uint32_t *)out, ow, n); break;
    case 8: window_kernel<<<blocks, CU_THREADS, 0, st>>>((const uint64_t *)in, iw, (uint64_t *)out, ow, n); break;
    default: return kiln__error(KILN_UNSUPPORTED, "CUDA window copy: elements of %zu bytes are not supported", es);
    }
    CU_LAUNCHED();
    return KILN_OK;
}
