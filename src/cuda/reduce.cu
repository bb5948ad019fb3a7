/* Reductions: softmax, normalization (batch / layer / instance / group / rms) and reduce.
 * Rows that are contiguous get one block each (tree sums in float, two passes for variance);
 * strided rows (softmax over a non-last axis) get one thread per row. */
#include "cu_dev.cuh"

#include <string.h>

/* ---------------------------------------------------------------- softmax */

/* Contiguous rows of n: one block per row. */
__global__ void softmax_rows_kernel(const void *x, void *y, int dt, int64_t n, bool take_log) {
    __shared__ float sh[32];
    int64_t base = blockIdx.x * n;
    float mx = -INFINITY;
    for (int64_t i = threadIdx.x; i < n; i += blockDim.x) mx = fmaxf(mx, cu_ldf(x, dt, base + i));
    mx = cu_block_max(mx, sh);
    float sum = 0;
    for (int64_t i = threadIdx.x; i < n; i += blockDim.x) sum += expf(cu_ldf(x, dt, base + i) - mx);
    sum = cu_block_sum(sum, sh);
    float lse = logf(sum), inv = 1.0f / sum;
    for (int64_t i = threadIdx.x; i < n; i += blockDim.x) {
        float v = cu_ldf(x, dt, base + i) - mx;
        cu_stf(y, dt, base + i, take_log ? v - lse : expf(v) * inv);
    }
}

/* Rows of n at stride inner: one thread per (outer, inner) row, coalesced across inner. */
__global__ void softmax_strided_kernel(const void *x, void *y, int dt, int64_t rows, int64_t n, int64_t inner,
                                       bool take_log) {
    CU_FOR(r, rows) {
        int64_t base = (r / inner) * n * inner + r % inner;
        float mx = -INFINITY, sum = 0;
        for (int64_t i = 0; i < n; i++) mx = fmaxf(mx, cu_ldf(x, dt, base + i * inner));
        for (int64_t i = 0; i < n; i++) sum += expf(cu_ldf(x, dt, base + i * inner) - mx);
        float lse = logf(sum), inv = 1.0f / sum;
        for (int64_t i = 0; i < n; i++) {
            float v = cu_ldf(x, dt, base + i * inner) - mx;
            cu_stf(y, dt, base + i * inner, take_log ? v - lse : expf(v) * inv);
        }
    }
}

static int row_threads(int64_t n) { return n <= 256 ? 32 : n <= 4096 ? 128 : 512; }

kiln_status cu_softmax(cu_exec *x) {
    if (x->mode == CU_PLAN) return KILN_OK;
    const kiln__softmax_params *p = &x->layer->p.softmax;
    const kiln_dims *d = &x->in[0].dims;
    int32_t axis;
    if (!kiln__norm_axis(p->axis, d->nb_dims, &axis))
        return kiln__layer_error(x->layer, KILN_INVALID_ARGUMENT, "axis %d is out of range for rank %d", p->axis,
                                 d->nb_dims);
    int64_t outer = 1, n = 1, inner = 1;
    for (int32_t i = 0; i < d->nb_dims; i++) {
        if (i < axis) outer *= d->d[i];
        else if (i == axis || p->coerce_2d) n *= d->d[i];
        else inner *= d->d[i];
    }
    if (outer * n * inner == 0) return KILN_OK;
    int dt = x->in[0].dtype;
    if (inner == 1) {
        if (outer > 2147483647) return kiln__layer_error(x->layer, KILN_UNSUPPORTED, "too many rows for CUDA");
        softmax_rows_kernel<<<(unsigned)outer, row_threads(n), 0, x->stream>>>(x->din[0], x->dout[0], dt, n, p->log);
    } else {
        int64_t rows = outer * inner;
        softmax_strided_kernel<<<cu_blocks(rows, 128), 128, 0, x->stream>>>(x->din[0], x->dout[0], dt, rows, n,
                                                                             inner, p->log);
    }
    CU_LAUNCHED();
    return KILN_OK;
}

/* ---------------------------------------------------------------- normalization */

/* One block per normalized block of `block` elements. Parameters: layer/rms index them per
 * element (nparam == block), instance/group per channel: channel = first + i / sub, and
 * per-group arrays (nparam == groups) divide by channels per group. */
typedef struct norm_geo {
    int type;
    int64_t block, sub, groups_per, channels, nparam;
    float eps;
} norm_geo;

__global__ void norm_rows_kernel(const void *x, void *y, int dt, const void *scale, int ts, const void *bias, int tb,
                                 norm_geo g) {
    __shared__ float sh[32];
    int64_t blk = blockIdx.x, base = blk * g.block;
    float mean = 0;
    if (g.type != KILN_NORM_RMS) {
        float s = 0;
        for (int64_t i = threadIdx.x; i < g.block; i += blockDim.x) s += cu_ldf(x, dt, base + i);
        mean = cu_block_sum(s, sh) / (float)g.block;
    }
    float q = 0;
    for (int64_t i = threadIdx.x; i < g.block; i += blockDim.x) {
        float t = cu_ldf(x, dt, base + i) - mean;
        q += t * t;
    }
    float rstd = rsqrtf(cu_block_sum(q, sh) / (float)g.block + g.eps);
    bool per_elem = g.type == KILN_NORM_LAYER || g.type == KILN_NORM_RMS;
    int64_t first = per_elem ? 0 : (blk % g.groups_per) * (g.block / g.sub);
    for (int64_t i = threadIdx.x; i < g.block; i += blockDim.x) {
        int64_t c = per_elem ? i : first + i / g.sub;
        if (!per_elem && g.nparam != g.channels) c /= g.channels / g.nparam;
        float a = rstd * cu_ldf(scale, ts, c), b = bias ? cu_ldf(bias, tb, c) : 0.0f;
        cu_stf(y, dt, base + i, (cu_ldf(x, dt, base + i) - mean) * a + b);
    }
}

__global__ void batchnorm_kernel(const void *x, void *y, int dt, const void *scale, const void *bias,
                                 const void *mean, const void *var, int tp, int64_t n, int64_t spatial,
                                 int64_t channels, float eps) {
    CU_FOR(i, n) {
        int64_t c = (i / spatial) % channels;
        float a = cu_ldf(scale, tp, c) * rsqrtf(cu_ldf(var, tp, c) + eps);
        cu_stf(y, dt, i, (cu_ldf(x, dt, i) - cu_ldf(mean, tp, c)) * a + cu_ldf(bias, tp, c));
    }
}

kiln_status cu_normalization(cu_exec *x) {
    const kiln_layer *l = x->layer;
    const kiln__norm_params *p = &l->p.norm;
    const kiln_dims *d = &x->in[0].dims;
    int64_t volume = kiln__dims_volume(d);
    int dt = x->in[0].dtype;
    norm_geo g = {p->type, 1, 1, 1, 1, 1, p->epsilon};
    if (p->type == KILN_NORM_LAYER || p->type == KILN_NORM_RMS) {
        int32_t axis;
        if (!kiln__norm_axis(p->axis, d->nb_dims, &axis))
            return kiln__layer_error(l, KILN_INVALID_ARGUMENT, "axis %d is out of range for rank %d", p->axis,
                                     d->nb_dims);
        for (int32_t i = axis; i < d->nb_dims; i++) g.block *= d->d[i];
        g.nparam = g.block;
        /* Parameters that broadcast onto the normalized dims are expanded into scratch. */
        kiln_dims nd = {d->nb_dims - axis, {0}};
        for (int32_t i = 0; i < nd.nb_dims; i++) nd.d[i] = d->d[axis + i];
        const void *arr[2] = {NULL, NULL};
        size_t need = 0;
        for (int k = 0; k < 2; k++) {
            if (!kiln__has_input(l, x->in, 1 + k)) continue;
            const kiln__value *v = &x->in[1 + k];
            size_t es = kiln_dtype_bits(v->dtype) / 8;
            if (kiln__dims_volume(&v->dims) == g.block) {
                if (x->mode == CU_RUN) arr[k] = x->din[1 + k];
                continue;
            }
            if (x->mode == CU_RUN) {
                int64_t ss[KILN_MAX_DIMS], ds[KILN_MAX_DIMS];
                cu_broadcast_strides(&v->dims, &nd, ss);
                cu_contiguous_strides(&nd, ds);
                void *dst = (char *)x->scratch + need;
                KILN__TRY(cu_copy_strided(x->stream, x->din[1 + k], 0, ss, dst, 0, ds, nd.d, nd.nb_dims, es));
                arr[k] = dst;
            }
            need += cu_align((size_t)g.block * es);
        }
        if (x->mode == CU_PLAN) {
            x->ls->scratch = need;
            return KILN_OK;
        }
        if (volume <= 0) return KILN_OK;
        int64_t rows = volume / g.block;
        norm_rows_kernel<<<(unsigned)rows, row_threads(g.block), 0, x->stream>>>(
            x->din[0], x->dout[0], dt, arr[0], x->in[1].dtype, arr[1], arr[1] ? x->in[2].dtype : 0, g);
        CU_LAUNCHED();
        return KILN_OK;
    }
    if (x->mode == CU_PLAN || volume <= 0) return KILN_OK;
    int64_t c = d->d[1], spatial = volume / (d->d[0] * c);
    int64_t groups = p->type == KILN_NORM_GROUP ? p->nb_groups : c;
    if (groups < 1 || c % groups != 0)
        return kiln__layer_error(l, KILN_INVALID_ARGUMENT, "%lld channels do not split into %lld groups", (long long)c,
                                 (long long)groups);
    if (p->type == KILN_NORM_BATCH) {
        batchnorm_kernel<<<cu_blocks(volume, CU_THREADS), CU_THREADS, 0, x->stream>>>(
            x->din[0], x->dout[0], dt, x->din[1], x->din[2], x->din[3], x->din[4], x->in[1].dtype, volume, spatial, c,
            p->epsilon);
        CU_LAUNCHED();
        return KILN_OK;
    }
    int64_t np = kiln__dims_volume(&x->in[1].dims);
    if (np != c && np != groups)
        return kiln__layer_error(l, KILN_INVALID_ARGUMENT, "input 1 has %lld values, expected %lld", (long long)np,
                                 (long long)c);
    g.block = spatial * (c / groups);
    g.sub = spatial;
    g.groups_per = groups;
    g.channels = c;
    g.nparam = np;
    int64_t rows = volume / g.block;
    norm_rows_kernel<<<(unsigned)rows, row_threads(g.block), 0, x->stream>>>(
        x->din[0], x->dout[0], dt, x->din[1], x->in[1].dtype, x->din[2], x->in[2].dtype, g);
    CU_LAUNCHED();
    return KILN_OK;
}

/* ---------------------------------------------------------------- reduce */

/* Kept dims (output order) and reduced dims with their input strides. */
typedef struct red_geo {
    cu_strided kept, red;
    int64_t nred;
    int op, select_last;
} red_geo;

/* Accumulator of one partial reduction: value (sum, product, extreme or max for logsumexp) and
 * position (arg ops; -1 when empty). */
struct red_acc {
    float v;
    int64_t pos;
};

__device__ __forceinline__ float red_init(int op) {
    switch (op) {
    case KILN_REDUCE_PROD: return 1.0f;
    case KILN_REDUCE_MAX: return -INFINITY;
    case KILN_REDUCE_MIN: return INFINITY;
    default: return 0.0f;
    }
}

/* Whether (v2, p2) beats (v1, p1) in an arg reduction: NaN counts as the extreme; ties go to
 * the first (or, with select_last, the last) position. Order-independent, so partial results
 * combine in any order. */
__device__ __forceinline__ bool arg_better(bool is_max, bool last, float v1, int64_t p1, float v2, int64_t p2) {
    if (p2 < 0) return false;
    if (p1 < 0) return true;
    bool n1 = isnan(v1), n2 = isnan(v2);
    if (n1 != n2) return n2;
    bool eq = n1 || v1 == v2;
    if (eq) return last ? p2 > p1 : p2 < p1;
    return is_max ? v2 > v1 : v2 < v1;
}

__device__ __forceinline__ void red_add(int op, bool last, red_acc &a, float v, int64_t pos, float shift) {
    switch (op) {
    case KILN_REDUCE_SUM:
    case KILN_REDUCE_MEAN:
    case KILN_REDUCE_LOG_SUM: a.v += v; break;
    case KILN_REDUCE_L1: a.v += fabsf(v); break;
    case KILN_REDUCE_L2:
    case KILN_REDUCE_SUM_SQUARE: a.v += v * v; break;
    case KILN_REDUCE_PROD: a.v *= v; break;
    case KILN_REDUCE_MAX:
        if (!isnan(a.v) && (isnan(v) || v > a.v)) a.v = v;
        break;
    case KILN_REDUCE_MIN:
        if (!isnan(a.v) && (isnan(v) || v < a.v)) a.v = v;
        break;
    case KILN_REDUCE_LOG_SUM_EXP: a.v += expf(v - shift); break;
    case KILN_REDUCE_ARGMAX:
    case KILN_REDUCE_ARGMIN:
        if (arg_better(op == KILN_REDUCE_ARGMAX, last, a.v, a.pos, v, pos)) a.v = v, a.pos = pos;
        break;
    }
}

__device__ __forceinline__ void red_merge(int op, bool last, red_acc &a, const red_acc &b) {
    switch (op) {
    case KILN_REDUCE_PROD: a.v *= b.v; break;
    case KILN_REDUCE_MAX:
    case KILN_REDUCE_MIN:
        if (!isnan(a.v) && (isnan(b.v) || (op == KILN_REDUCE_MAX ? b.v > a.v : b.v < a.v))) a.v = b.v;
        break;
    case KILN_REDUCE_ARGMAX:
    case KILN_REDUCE_ARGMIN:
        if (arg_better(op == KILN_REDUCE_ARGMAX, last, a.v, a.pos, b.v, b.pos)) a = b;
        break;
    default: a.v += b.v; break;
    }
}

/* Reduces the elements [start, nred) in steps of `step` of output element o. The log-sum-exp
 * pass adds exp(v - shift). */
__device__ __forceinline__ red_acc red_partial(const void *x, int dt, const red_geo &g, int op, int64_t base,
                                               int64_t start, int64_t step, float shift) {
    red_acc a = {red_init(op), -1};
    for (int64_t q = start; q < g.nred; q += step) red_add(op, g.select_last, a, cu_ldf(x, dt, base + cu_offset(g.red, q)), q, shift);
    return a;
}

__device__ __forceinline__ void red_store(void *y, int to, int64_t o, int op, const red_acc &a, float shift,
                                          int64_t nred) {
    float r = a.v;
    switch (op) {
    case KILN_REDUCE_ARGMAX:
    case KILN_REDUCE_ARGMIN: ((int64_t *)y)[o] = a.pos; return;
    case KILN_REDUCE_MEAN: r = a.v / (float)nred; break;
    case KILN_REDUCE_L2: r = sqrtf(a.v); break;
    case KILN_REDUCE_LOG_SUM: r = logf(a.v); break;
    case KILN_REDUCE_LOG_SUM_EXP: r = isinf(shift) ? shift : shift + logf(a.v); break;
    default: break;
    }
    cu_stf(y, to, o, r);
}

/* Many outputs: one thread each. */
__global__ void reduce_thread_kernel(const void *x, int dt, void *y, int to, red_geo g, int64_t nout) {
    CU_FOR(o, nout) {
        int64_t base = cu_offset(g.kept, o);
        float shift = 0;
        if (g.op == KILN_REDUCE_LOG_SUM_EXP) shift = red_partial(x, dt, g, KILN_REDUCE_MAX, base, 0, 1, 0).v;
        red_acc a = red_partial(x, dt, g, g.op, base, 0, 1, shift);
        red_store(y, to, o, g.op, a, shift, g.nred);
    }
}

/* Few outputs: one block each. */
__device__ red_acc block_reduce(red_acc a, int op, bool last) {
    __shared__ float sv[32];
    __shared__ int64_t sp[32];
    for (int o = 16; o > 0; o >>= 1) {
        red_acc b = {__shfl_xor_sync(0xffffffffu, a.v, o), __shfl_xor_sync(0xffffffffu, a.pos, o)};
        red_merge(op, last, a, b);
    }
    int w = threadIdx.x >> 5, lane = threadIdx.x & 31, nw = blockDim.x >> 5;
    __syncthreads();
    if (lane == 0) {
        sv[w] = a.v;
        sp[w] = a.pos;
    }
    __syncthreads();
    a = {sv[0], sp[0]};
    for (int k = 1; k < nw; k++) red_merge(op, last, a, red_acc{sv[k], sp[k]});
    return a;
}

__global__ void reduce_block_kernel(const void *x, int dt, void *y, int to, red_geo g) {
    int64_t o = blockIdx.x, base = cu_offset(g.kept, o);
    float shift = 0;
    if (g.op == KILN_REDUCE_LOG_SUM_EXP)
        shift = block_reduce(red_partial(x, dt, g, KILN_REDUCE_MAX, base, threadIdx.x, blockDim.x, 0),
                             KILN_REDUCE_MAX, false).v;
    red_acc a = block_reduce(red_partial(x, dt, g, g.op, base, threadIdx.x, blockDim.x, shift), g.op, g.select_last);
    if (threadIdx.x == 0) red_store(y, to, o, g.op, a, shift, g.nred);
}

kiln_status cu_reduce(cu_exec *x) {
    const kiln_layer *l = x->layer;
    const kiln__value *in = &x->in[0];
    kiln__reduce_axes ax;
    KILN__TRY(kiln__reduce_resolve(l, x->in, &ax));
    if (ax.nb_unknown >= 0)
        return kiln__layer_error(l, KILN_UNSUPPORTED, "the reduce axes must be known on the host (constants or "
                                 "shape computations) for CUDA");
    if (x->mode == CU_PLAN) return KILN_OK;
    int64_t nout = kiln__dims_volume(&x->out[0].dims);
    if (nout <= 0) return KILN_OK;
    if (ax.identity) {
        size_t bytes = (size_t)nout * kiln_dtype_bits(in->dtype) / 8;
        CU_CHECK(cudaMemcpyAsync(x->dout[0], x->din[0], bytes, cudaMemcpyDeviceToDevice, x->stream));
        return KILN_OK;
    }
    red_geo g;
    memset(&g, 0, sizeof g);
    g.op = l->p.reduce.op;
    g.select_last = l->p.reduce.select_last;
    g.nred = 1;
    int64_t strides[KILN_MAX_DIMS];
    cu_contiguous_strides(&in->dims, strides);
    for (int32_t i = 0; i < in->dims.nb_dims; i++) {
        int64_t size = in->dims.d[i];
        cu_strided *w = (ax.mask & (1u << i)) ? &g.red : &g.kept;
        if (ax.mask & (1u << i)) g.nred *= size;
        if (w->rank > 0 && w->s[w->rank - 1] == strides[i] * size) { /* adjacent: merge */
            w->d[w->rank - 1] *= size;
            w->s[w->rank - 1] = strides[i];
            continue;
        }
        w->d[w->rank] = size;
        w->s[w->rank++] = strides[i];
    }
    if (g.kept.rank == 0) {
        g.kept.rank = 1;
        g.kept.d[0] = 1;
    }
    if (g.red.rank == 0) {
        g.red.rank = 1;
        g.red.d[0] = 1;
    }
    if ((g.op == KILN_REDUCE_ARGMAX || g.op == KILN_REDUCE_ARGMIN) && g.nred == 0)
        return kiln__layer_error(l, KILN_INVALID_ARGUMENT, "arg reduction over an empty dim");
    int dt = in->dtype, to = x->out[0].dtype;
    if (nout >= 2048 || g.nred < 64)
        reduce_thread_kernel<<<cu_blocks(nout, CU_THREADS), CU_THREADS, 0, x->stream>>>(x->din[0], dt, x->dout[0], to,
                                                                                         g, nout);
    else
        reduce_block_kernel<<<(unsigned)nout, CU_THREADS, 0, x->stream>>>(x->din[0], dt, x->dout[0], to, g);
    CU_LAUNCHED();
    return KILN_OK;
}
