/* Pooling: max (with the optional ONNX indices output), average and Lp over 1-3 spatial dims
 * (run as 3-D with leading unit dims), one thread per output; global pooling, one block per
 * plane. Accumulates in float; same window rules as src/cpu/pooling.c. */
#include "cu_dev.cuh"

typedef struct pool_geo {
    int64_t in[3], out[3], k[3], s[3], d[3], pb[3], pe[3];
    int64_t in_plane, out_plane, planes;
    int32_t type, count_include_pad;
    float p;
} pool_geo;

__device__ __forceinline__ float lp_finish(float sum, float p) {
    return p == 1.0f ? sum : p == 2.0f ? sqrtf(sum) : powf(sum, 1.0f / p);
}

__global__ void pool_window_kernel(const void *x, void *y, int dt, int64_t *idx, pool_geo g, int64_t n) {
    CU_FOR(o, n) {
        int64_t t = o / g.out_plane, r = o % g.out_plane;
        int64_t ox = r % g.out[2], oy = r / g.out[2] % g.out[1], oz = r / (g.out[2] * g.out[1]);
        int64_t z0 = oz * g.s[0] - g.pb[0], y0 = oy * g.s[1] - g.pb[1], x0 = ox * g.s[2] - g.pb[2];
        int64_t xbase = t * g.in_plane, best = -1, n_in = 0, n_pad = 0;
        float acc = g.type == KILN_POOL_MAX ? -INFINITY : 0.0f;
        for (int64_t kz = 0; kz < g.k[0]; kz++) {
            int64_t iz = z0 + kz * g.d[0];
            if (iz < -g.pb[0] || iz >= g.in[0] + g.pe[0]) continue;
            for (int64_t ky = 0; ky < g.k[1]; ky++) {
                int64_t iy = y0 + ky * g.d[1];
                if (iy < -g.pb[1] || iy >= g.in[1] + g.pe[1]) continue;
                for (int64_t kx = 0; kx < g.k[2]; kx++) {
                    int64_t ix = x0 + kx * g.d[2];
                    if (ix < -g.pb[2] || ix >= g.in[2] + g.pe[2]) continue;
                    n_pad++;
                    if (iz < 0 || iz >= g.in[0] || iy < 0 || iy >= g.in[1] || ix < 0 || ix >= g.in[2]) continue;
                    n_in++;
                    int64_t i = (iz * g.in[1] + iy) * g.in[2] + ix;
                    float v = cu_ldf(x, dt, xbase + i);
                    if (g.type == KILN_POOL_MAX) {
                        if (v > acc || best < 0) acc = v, best = i;
                    } else if (g.type == KILN_POOL_AVERAGE) {
                        acc += v;
                    } else {
                        acc += powf(fabsf(v), g.p);
                    }
                }
            }
        }
        if (g.type == KILN_POOL_AVERAGE) {
            int64_t div = g.count_include_pad ? n_pad : n_in;
            acc = div ? acc / (float)div : 0.0f;
        } else if (g.type == KILN_POOL_LP) {
            acc = lp_finish(acc, g.p);
        }
        cu_stf(y, dt, o, acc);
        if (idx) idx[o] = best < 0 ? -1 : xbase + best;
    }
}

/* One block per plane. Max keeps the first maximum's index, as the CPU kernel does. */
__global__ void pool_global_kernel(const void *x, void *y, int dt, int64_t *idx, pool_geo g) {
    __shared__ float sh[32];
    __shared__ int64_t shi[32];
    int64_t t = blockIdx.x, base = t * g.in_plane;
    float acc = g.type == KILN_POOL_MAX ? -INFINITY : 0.0f;
    int64_t best = -1;
    for (int64_t i = threadIdx.x; i < g.in_plane; i += blockDim.x) {
        float v = cu_ldf(x, dt, base + i);
        if (g.type == KILN_POOL_MAX) {
            if (v > acc || best < 0) acc = v, best = i;
        } else if (g.type == KILN_POOL_AVERAGE) {
            acc += v;
        } else {
            acc += powf(fabsf(v), g.p);
        }
    }
    if (g.type != KILN_POOL_MAX) {
        float sum = cu_block_sum(acc, sh);
        if (threadIdx.x == 0) {
            float r = g.type == KILN_POOL_AVERAGE ? sum / (float)g.in_plane : lp_finish(sum, g.p);
            cu_stf(y, dt, t, r);
        }
        return;
    }
    /* Max with index: warp then block combine; ties and NaN keep the smaller index. */
    for (int o = 16; o > 0; o >>= 1) {
        float v = __shfl_xor_sync(0xffffffffu, acc, o);
        int64_t b = __shfl_xor_sync(0xffffffffu, best, o);
        if (b >= 0 && (best < 0 || v > acc || (v == acc && b < best))) acc = v, best = b;
    }
    int w = threadIdx.x >> 5, lane = threadIdx.x & 31, nw = blockDim.x >> 5;
    if (lane == 0) {
        sh[w] = acc;
        shi[w] = best;
    }
    __syncthreads();
    if (threadIdx.x == 0) {
        for (int k = 1; k < nw; k++)
            if (shi[k] >= 0 && (best < 0 || sh[k] > acc || (sh[k] == acc && shi[k] < best))) acc = sh[k], best = shi[k];
        cu_stf(y, dt, t, acc);
        if (idx) idx[t] = base + (best < 0 ? 0 : best);
    }
}

kiln_status cu_pooling(cu_exec *x) {
    if (x->mode == CU_PLAN) return KILN_OK;
    const kiln__pool_params *p = &x->layer->p.pool;
    const kiln_dims *xd = &x->in[0].dims, *yd = &x->out[0].dims;
    pool_geo g = {};
    g.type = p->type;
    g.count_include_pad = p->count_include_pad;
    g.p = (float)(p->lp_norm > 0 ? p->lp_norm : 2);
    g.planes = xd->d[0] * xd->d[1];
    g.in_plane = g.out_plane = 1;
    for (int32_t i = 2; i < xd->nb_dims; i++) {
        g.in_plane *= xd->d[i];
        g.out_plane *= yd->d[i];
    }
    int64_t ny = g.planes * g.out_plane;
    if (ny == 0) return KILN_OK;
    int64_t *idx = x->layer->nb_outputs > 1 ? (int64_t *)x->dout[1] : NULL;
    int dt = x->in[0].dtype;
    if (p->global) {
        if (g.in_plane == 0)
            return kiln__layer_error(x->layer, KILN_INVALID_ARGUMENT, "global pooling over an empty plane");
        pool_global_kernel<<<(unsigned)g.planes, CU_THREADS, 0, x->stream>>>(x->din[0], x->dout[0], dt, idx, g);
        CU_LAUNCHED();
        return KILN_OK;
    }
    int32_t ns = p->nb_spatial, off = 3 - ns;
    for (int32_t a = 0; a < 3; a++) {
        int32_t i = a - off;
        if (i < 0) {
            g.in[a] = g.out[a] = g.k[a] = g.s[a] = g.d[a] = 1;
            g.pb[a] = g.pe[a] = 0;
            continue;
        }
        g.in[a] = xd->d[2 + i];
        g.out[a] = yd->d[2 + i];
        g.k[a] = p->window[i];
        g.s[a] = p->stride[i];
        g.d[a] = p->dilation[i];
        if (p->auto_pad == KILN__PAD_SAME_UPPER || p->auto_pad == KILN__PAD_SAME_LOWER) {
            int64_t total = KILN__MAX((g.out[a] - 1) * g.s[a] + g.d[a] * (g.k[a] - 1) + 1 - g.in[a], 0);
            g.pb[a] = p->auto_pad == KILN__PAD_SAME_UPPER ? total / 2 : total - total / 2;
            g.pe[a] = total - g.pb[a];
        } else if (p->auto_pad == KILN__PAD_VALID) {
            g.pb[a] = g.pe[a] = 0;
        } else {
            g.pb[a] = p->pad_begin[i];
            g.pe[a] = p->pad_end[i];
        }
    }
    pool_window_kernel<<<cu_blocks(ny, CU_THREADS), CU_THREADS, 0, x->stream>>>(x->din[0], x->dout[0], dt, idx, g, ny);
    CU_LAUNCHED();
    return KILN_OK;
}
