/* Data movement: shuffle (transpose, reshape, transpose), concat, slice and gather as strided
 * copies by element size, and resize as separable passes over host-computed tap tables (the
 * CPU backend's tables, so every mode and coordinate rule matches it). */
#include "cu_dev.cuh"

#include <string.h>

static size_t elem_size(kiln_dtype t) { return kiln_dtype_bits(t) / 8; }

static bool is_identity(const int32_t *perm, int32_t rank) {
    for (int32_t i = 0; i < rank; i++)
        if (perm[i] != i) return false;
    return true;
}

/* dst (contiguous, dims permuted) = transpose of src (contiguous, dims d). */
static kiln_status transpose(cudaStream_t st, const void *src, const kiln_dims *d, const int32_t *perm, void *dst,
                             size_t es) {
    int64_t istr[KILN_MAX_DIMS], ss[KILN_MAX_DIMS], ds[KILN_MAX_DIMS], od[KILN_MAX_DIMS];
    cu_contiguous_strides(d, istr);
    kiln_dims o = {d->nb_dims, {0}};
    for (int32_t k = 0; k < d->nb_dims; k++) {
        od[k] = o.d[k] = d->d[perm[k]];
        ss[k] = istr[perm[k]];
    }
    cu_contiguous_strides(&o, ds);
    return cu_copy_strided(st, src, 0, ss, dst, 0, ds, od, d->nb_dims, es);
}

kiln_status cu_shuffle(cu_exec *x) {
    const kiln__shuffle_params *p = &x->layer->p.shuffle;
    const kiln__value *in = &x->in[0], *out = &x->out[0];
    size_t es = elem_size(in->dtype);
    int64_t volume = kiln__dims_volume(&in->dims);
    bool first = p->has_first_perm && !is_identity(p->first_perm, in->dims.nb_dims);
    bool second = p->has_second_perm && !is_identity(p->second_perm, out->dims.nb_dims);
    if (x->mode == CU_PLAN) {
        x->ls->scratch = first && second ? cu_align((size_t)volume * es) : 0;
        return KILN_OK;
    }
    if (volume <= 0) return KILN_OK;
    if (!first && !second) {
        if (x->dout[0] != x->din[0])
            CU_CHECK(cudaMemcpyAsync(x->dout[0], x->din[0], (size_t)volume * es, cudaMemcpyDeviceToDevice, x->stream));
        return KILN_OK;
    }
    const void *src = x->din[0];
    if (first) {
        void *dst = second ? x->scratch : x->dout[0];
        KILN__TRY(transpose(x->stream, src, &in->dims, p->first_perm, dst, es));
        src = dst;
    }
    if (second) {
        kiln_dims mid = {out->dims.nb_dims, {0}};
        for (int32_t i = 0; i < mid.nb_dims; i++) mid.d[p->second_perm[i]] = out->dims.d[i];
        KILN__TRY(transpose(x->stream, src, &mid, p->second_perm, x->dout[0], es));
    }
    return KILN_OK;
}

kiln_status cu_concat(cu_exec *x) {
    if (x->mode == CU_PLAN) return KILN_OK;
    const kiln_dims *yd = &x->out[0].dims;
    int32_t axis;
    if (!kiln__norm_axis(x->layer->p.concat.axis, yd->nb_dims, &axis))
        return kiln__layer_error(x->layer, KILN_INTERNAL_ERROR, "bad axis at run time");
    size_t es = elem_size(x->out[0].dtype);
    int64_t ys[KILN_MAX_DIMS], at = 0;
    cu_contiguous_strides(yd, ys);
    for (int32_t i = 0; i < x->layer->nb_inputs; i++) {
        const kiln_dims *d = &x->in[i].dims;
        int64_t xs[KILN_MAX_DIMS];
        cu_contiguous_strides(d, xs);
        if (kiln__dims_volume(d) > 0)
            KILN__TRY(cu_copy_strided(x->stream, x->din[i], 0, xs, x->dout[0], at * ys[axis], ys, d->d, d->nb_dims, es));
        at += d->d[axis];
    }
    return KILN_OK;
}

kiln_status cu_slice(cu_exec *x) {
    kiln__slice_plan plan;
    kiln_status st = kiln__slice_resolve(x->layer, x->in, &plan);
    if (st != KILN_OK) return st;
    const kiln__value *in = &x->in[0];
    for (int32_t i = 0; i < in->dims.nb_dims; i++)
        if (plan.count[i] < 0)
            return kiln__layer_error(x->layer, KILN_UNSUPPORTED,
                                     "the slice bounds must be known on the host (constants or shape computations) "
                                     "for CUDA");
    if (x->mode == CU_PLAN) return KILN_OK;
    int64_t volume = kiln__dims_volume(&x->out[0].dims);
    if (volume <= 0) return KILN_OK;
    int64_t xs[KILN_MAX_DIMS], ss[KILN_MAX_DIMS], ds[KILN_MAX_DIMS], base = 0;
    cu_contiguous_strides(&in->dims, xs);
    cu_contiguous_strides(&x->out[0].dims, ds);
    for (int32_t i = 0; i < in->dims.nb_dims; i++) {
        base += plan.start[i] * xs[i];
        ss[i] = plan.count[i] == 1 ? 0 : plan.step[i] * xs[i];
    }
    return cu_copy_strided(x->stream, x->din[0], base, ss, x->dout[0], 0, ds, plan.count, in->dims.nb_dims,
                           elem_size(in->dtype));
}

/* ---------------------------------------------------------------- gather */

/* An index read from device memory, wrapped when negative; out-of-range indices (which the
 * CPU backend reports as an error) give zeros here instead of reading out of bounds. */
__device__ __forceinline__ int64_t gather_index(const void *idx, int it, int64_t i, int64_t dim) {
    int64_t v = it == KILN_INT32 ? ((const int32_t *)idx)[i] : ((const int64_t *)idx)[i];
    if (v < 0) v += dim;
    return v >= 0 && v < dim ? v : -1;
}

template <typename T>
__global__ void gather_default_kernel(const T *src, const void *idx, int it, T *dst, int64_t nidx, int64_t dim,
                                      int64_t inner, int64_t n) {
    CU_FOR(e, n) {
        int64_t i = e % inner, item = e / inner, j = item % nidx, o = item / nidx;
        int64_t w = gather_index(idx, it, j, dim);
        dst[e] = w < 0 ? T(0) : src[(o * dim + w) * inner + i];
    }
}

template <typename T>
__global__ void gather_elements_kernel(const T *src, const void *idx, int it, T *dst, cu_strided od,
                                       cu_strided data, int axis, int64_t n) {
    CU_FOR(e, n) {
        int64_t rest = e, off = 0;
        int64_t w = gather_index(idx, it, e, data.d[axis]);
        for (int32_t k = od.rank - 1; k >= 0; k--) {
            int64_t c = rest % od.d[k];
            rest /= od.d[k];
            off += (k == axis ? w : c) * data.s[k];
        }
        dst[e] = w < 0 ? T(0) : src[off];
    }
}

/* ND: tuple t (k indices) selects a block of `inner` elements; batch_dims leading dims shared. */
template <typename T>
__global__ void gather_nd_kernel(const T *src, const void *idx, int it, T *dst, cu_strided data, int b, int64_t k,
                                 int64_t per_batch, int64_t batch_stride, int64_t inner, int64_t n) {
    CU_FOR(e, n) {
        int64_t t = e / inner, i = e % inner;
        int64_t off = (t / per_batch) * batch_stride;
        bool ok = true;
        for (int64_t c = 0; c < k; c++) {
            int64_t w = gather_index(idx, it, t * k + c, data.d[b + c]);
            ok = ok && w >= 0;
            off += w * data.s[b + c];
        }
        dst[e] = ok ? src[off + i] : T(0);
    }
}

template <typename T>
static kiln_status gather_typed(cu_exec *x) {
    const kiln__gather_params *p = &x->layer->p.gather;
    const kiln__value *data = &x->in[0], *iv = &x->in[1];
    const kiln_dims *dd = &data->dims, *id = &iv->dims;
    int32_t r = dd->nb_dims, q = id->nb_dims;
    int64_t n = kiln__dims_volume(&x->out[0].dims);
    const T *src = (const T *)x->din[0];
    T *dst = (T *)x->dout[0];
    int it = iv->dtype;
    cu_strided dw = {r, {0}, {0}};
    for (int32_t k = 0; k < r; k++) dw.d[k] = dd->d[k];
    cu_contiguous_strides(dd, dw.s);
    unsigned blocks = cu_blocks(n, CU_THREADS);
    if (p->mode == KILN_GATHER_DEFAULT || p->mode == KILN_GATHER_ELEMENTS) {
        int32_t axis;
        kiln__norm_axis(p->axis, r, &axis);
        if (p->mode == KILN_GATHER_DEFAULT) {
            int64_t nidx = kiln__dims_volume(id), inner = dw.s[axis];
            if (nidx == 0 || inner == 0) return KILN_OK;
            gather_default_kernel<T><<<blocks, CU_THREADS, 0, x->stream>>>(src, x->din[1], it, dst, nidx, dd->d[axis],
                                                                           inner, n);
        } else {
            cu_strided ow = {q, {0}, {0}};
            for (int32_t k = 0; k < q; k++) ow.d[k] = id->d[k];
            gather_elements_kernel<T><<<blocks, CU_THREADS, 0, x->stream>>>(src, x->din[1], it, dst, ow, dw, axis, n);
        }
    } else {
        int32_t b = p->axis;
        int64_t k = id->d[q - 1], per_batch = 1;
        for (int32_t i = b; i < q - 1; i++) per_batch *= id->d[i];
        int64_t batch_stride = b > 0 ? dw.s[b - 1] : 0, inner = dw.s[b + k - 1];
        gather_nd_kernel<T><<<blocks, CU_THREADS, 0, x->stream>>>(src, x->din[1], it, dst, dw, b, k,
                                                                  per_batch > 0 ? per_batch : 1, batch_stride,
                                                                  inner > 0 ? inner : 1, n);
    }
    CU_LAUNCHED();
    return KILN_OK;
}

kiln_status cu_gather(cu_exec *x) {
    if (x->mode == CU_PLAN || kiln__dims_volume(&x->out[0].dims) <= 0) return KILN_OK;
    switch (elem_size(x->in[0].dtype)) {
    case 1: return gather_typed<uint8_t>(x);
    case 2: return gather_typed<uint16_t>(x);
    case 4: return gather_typed<uint32_t>(x);
    case 8: return gather_typed<uint64_t>(x);
    default:
        return kiln__layer_error(x->layer, KILN_UNSUPPORTED, "dtype %s is not supported on CUDA",
                                 kiln_dtype_name(x->in[0].dtype));
    }
}

/* ---------------------------------------------------------------- resize */

#define MAX_TAPS KILN__RESIZE_MAX_TAPS

/* Per resized axis, in the params buffer: int32 count[out], int32 index[out][4], float
 * weight[out][4]; count -1 means the extrapolation value. */
typedef struct resize_axis {
    int32_t axis;
    int64_t in, out, inner, outer;
    size_t table_off;
} resize_axis;

static double source_coord(const kiln__resize_params *p, double o, double s, int64_t in, int64_t out, double roi0,
                           double roi1) {
    double width = s * (double)in;
    switch (p->coord) {
    case KILN_COORD_ASYMMETRIC: return o / s;
    case KILN_COORD_ALIGN_CORNERS: return width == 1 ? 0 : o * (double)(in - 1) / (width - 1);
    case KILN_COORD_PYTORCH_HALF_PIXEL: return width == 1 ? -0.5 : (o + 0.5) / s - 0.5;
    case KILN_COORD_TF_HALF_PIXEL_FOR_NN: return (o + 0.5) / s;
    case KILN_COORD_TF_CROP_AND_RESIZE: {
        double xx = width == 1 ? (roi1 - roi0) * (double)(in - 1) / 2 : o * (roi1 - roi0) * (double)(in - 1) / (width - 1);
        return xx + roi0 * (double)(in - 1);
    }
    case KILN_COORD_HALF_PIXEL_SYMMETRIC: {
        double adjustment = (double)out / width, center = (double)in / 2;
        return center * (1 - adjustment) + (o + 0.5) / s - 0.5;
    }
    default: return (o + 0.5) / s - 0.5;
    }
}

/* The taps of one output coordinate (kiln__resize_taps, shared with the CPU) in the table's
 * int32/float form. */
static void make_taps(const kiln__resize_params *p, double xs, int64_t in, int32_t *index, float *weight,
                      int32_t *count) {
    int64_t idx[KILN__RESIZE_MAX_TAPS];
    double w[KILN__RESIZE_MAX_TAPS];
    *count = kiln__resize_taps(p, xs, in, idx, w);
    for (int32_t k = 0; k < *count; k++) {
        index[k] = (int32_t)idx[k];
        weight[k] = (float)w[k];
    }
}

static bool near_value(double a, double b) { return fabs(a - b) <= 1e-9 * fmax(fabs(a), fabs(b)); }

__global__ void resize_axis_kernel(const void *src, int ts, void *dst, int td, const int32_t *count,
                                   const int32_t *index, const float *weight, int64_t in, int64_t out, int64_t inner,
                                   int64_t n, float extrapolation) {
    CU_FOR(e, n) {
        int64_t i = e % inner, item = e / inner, o = item % out, outer = item / out;
        int32_t m = count[o];
        float v = extrapolation;
        if (m >= 0) {
            v = 0;
            for (int32_t k = 0; k < m; k++)
                v += weight[o * MAX_TAPS + k] * cu_ldf(src, ts, (outer * in + index[o * MAX_TAPS + k]) * inner + i);
        }
        cu_stf(dst, td, e, v);
    }
}

kiln_status cu_resize(cu_exec *x) {
    const kiln__resize_params *p = &x->layer->p.resize;
    const kiln__value *in = &x->in[0];
    kiln__resize_plan plan;
    KILN__TRY(kiln__resize_resolve(x->layer, x->in, &plan));
    int32_t rank = in->dims.nb_dims;
    bool crop = p->coord == KILN_COORD_TF_CROP_AND_RESIZE;
    kiln_dims cur = in->dims;
    resize_axis axes[KILN_MAX_DIMS];
    int32_t na = 0;
    int64_t max_volume = 0;
    size_t table = 0;
    for (int32_t a = 0; a < rank; a++) {
        int64_t n_in = cur.d[a], n_out = plan.out[a];
        if (n_out < 0)
            return kiln__layer_error(x->layer, KILN_UNSUPPORTED,
                                     "the output size must be known on the host (constant scales or sizes) for CUDA");
        bool plain_roi = near_value(plan.roi_start[a], 0) && near_value(plan.roi_end[a], 1);
        if (!plan.resized[a] || (n_out == n_in && near_value(plan.scale[a], 1) && (!crop || plain_roi))) continue;
        resize_axis *ax = &axes[na++];
        ax->axis = a;
        ax->in = n_in;
        ax->out = n_out;
        ax->inner = 1;
        for (int32_t k = a + 1; k < rank; k++) ax->inner *= cur.d[k];
        ax->outer = 1;
        for (int32_t k = 0; k < a; k++) ax->outer *= cur.d[k];
        ax->table_off = table;
        table += cu_align((size_t)n_out * (sizeof(int32_t) + MAX_TAPS * (sizeof(int32_t) + sizeof(float))));
        cur.d[a] = n_out;
        max_volume = KILN__MAX(max_volume, kiln__dims_volume(&cur));
    }
    int64_t out_volume = kiln__dims_volume(&x->out[0].dims);
    /* Intermediate passes run in float through two scratch buffers. */
    size_t buf = cu_align((size_t)max_volume * sizeof(float));
    if (x->mode == CU_PLAN) {
        x->ls->scratch = na > 1 ? 2 * buf : 0;
        if (na == 0 || out_volume <= 0) return KILN_OK;
        char *host = (char *)kiln__calloc(&x->s->alloc, 1, table);
        if (!host) return KILN_OUT_OF_MEMORY;
        for (int32_t k = 0; k < na; k++) {
            const resize_axis *ax = &axes[k];
            int32_t *count = (int32_t *)(host + ax->table_off), *index = count + ax->out;
            float *weight = (float *)(index + ax->out * MAX_TAPS);
            for (int64_t o = 0; o < ax->out; o++) {
                double xs = source_coord(p, (double)o, plan.scale[ax->axis], ax->in, ax->out,
                                         plan.roi_start[ax->axis], plan.roi_end[ax->axis]);
                if (crop && (xs < 0 || xs > (double)(ax->in - 1))) count[o] = -1;
                else make_taps(p, xs, ax->in, index + o * MAX_TAPS, weight + o * MAX_TAPS, &count[o]);
            }
        }
        kiln_status st = cu_add_params(x, host, table);
        kiln__free(&x->s->alloc, host);
        return st;
    }
    if (out_volume <= 0) return KILN_OK;
    if (na == 0) {
        size_t bytes = (size_t)out_volume * kiln_dtype_bits(in->dtype) / 8;
        CU_CHECK(cudaMemcpyAsync(x->dout[0], x->din[0], bytes, cudaMemcpyDeviceToDevice, x->stream));
        return KILN_OK;
    }
    const char *tables = (const char *)cu_layer_params(x);
    const void *src = x->din[0];
    int ts = in->dtype;
    for (int32_t k = 0; k < na; k++) {
        const resize_axis *ax = &axes[k];
        bool last = k == na - 1;
        void *dst = last ? x->dout[0] : (char *)x->scratch + (k % 2) * buf;
        int td = last ? x->out[0].dtype : KILN_FLOAT32;
        const int32_t *count = (const int32_t *)(tables + ax->table_off), *index = count + ax->out;
        const float *weight = (const float *)(index + ax->out * MAX_TAPS);
        int64_t n = ax->outer * ax->out * ax->inner;
        if (n > 0)
            resize_axis_kernel<<<cu_blocks(n, CU_THREADS), CU_THREADS, 0, x->stream>>>(
                src, ts, dst, td, count, index, weight, ax->in, ax->out, ax->inner, n, p->extrapolation_value);
        CU_LAUNCHED();
        src = dst;
        ts = td;
    }
    return KILN_OK;
}
