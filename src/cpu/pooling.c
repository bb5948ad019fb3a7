/* CPU pooling: max (with optional ONNX indices), average and Lp over 1-3 spatial dims (run as
 * 3-D with leading unit dims) or globally. Accumulates in double; float16/bfloat16 run
 * through float32. */
#include "cpu.h"

#include <math.h>

typedef struct pool_job {
    int64_t c, in[3], out[3], k[3], s[3], d[3], pb[3], pe[3], in_plane, out_plane, kvol;
    int32_t type, count_include_pad, global;
    double p;
    bool is64; /* x and y are double (else float) */
    const void *x;
    void *y;
    int64_t *idx; /* max pooling's indices output, or NULL */
} pool_job;

static inline double ld(const pool_job *j, int64_t i) {
    return j->is64 ? ((const double *)j->x)[i] : (double)((const float *)j->x)[i];
}

static inline void st(const pool_job *j, int64_t i, double v) {
    if (j->is64)
        ((double *)j->y)[i] = v;
    else
        ((float *)j->y)[i] = (float)v;
}

static double lp_finish(double sum, double p) { return p == 1.0 ? sum : p == 2.0 ? sqrt(sum) : pow(sum, 1.0 / p); }

static void global_plane(const pool_job *j, int64_t t) {
    int64_t base = t * j->in_plane, best_i = 0;
    double acc = j->type == KILN_POOL_MAX ? -INFINITY : 0.0;
    for (int64_t i = 0; i < j->in_plane; i++) {
        double v = ld(j, base + i);
        if (j->type == KILN_POOL_MAX) {
            if (v > acc || i == 0) acc = v, best_i = i;
        } else if (j->type == KILN_POOL_AVERAGE) {
            acc += v;
        } else {
            acc += pow(fabs(v), j->p);
        }
    }
    if (j->type == KILN_POOL_AVERAGE) acc /= (double)j->in_plane;
    if (j->type == KILN_POOL_LP) acc = lp_finish(acc, j->p);
    st(j, t, acc);
    if (j->idx) j->idx[t] = base + best_i;
}

static void window_plane(const pool_job *j, int64_t t) {
    int64_t xbase = t * j->in_plane, o = t * j->out_plane;
    for (int64_t oz = 0; oz < j->out[0]; oz++)
        for (int64_t oy = 0; oy < j->out[1]; oy++)
            for (int64_t ox = 0; ox < j->out[2]; ox++, o++) {
                int64_t z0 = oz * j->s[0] - j->pb[0], y0 = oy * j->s[1] - j->pb[1], x0 = ox * j->s[2] - j->pb[2];
                double acc = j->type == KILN_POOL_MAX ? -INFINITY : 0.0;
                int64_t best = -1, n_in = 0, n_pad = 0;
                for (int64_t kz = 0; kz < j->k[0]; kz++) {
                    int64_t iz = z0 + kz * j->d[0];
                    if (iz < -j->pb[0] || iz >= j->in[0] + j->pe[0]) continue;
                    for (int64_t ky = 0; ky < j->k[1]; ky++) {
                        int64_t iy = y0 + ky * j->d[1];
                        if (iy < -j->pb[1] || iy >= j->in[1] + j->pe[1]) continue;
                        for (int64_t kx = 0; kx < j->k[2]; kx++) {
                            int64_t ix = x0 + kx * j->d[2];
                            if (ix < -j->pb[2] || ix >= j->in[2] + j->pe[2]) continue;
                            n_pad++;
                            if (iz < 0 || iz >= j->in[0] || iy < 0 || iy >= j->in[1] || ix < 0 || ix >= j->in[2])
                                continue;
                            n_in++;
                            int64_t i = (iz * j->in[1] + iy) * j->in[2] + ix;
                            double v = ld(j, xbase + i);
                            if (j->type == KILN_POOL_MAX) {
                                if (v > acc || best < 0) acc = v, best = i;
                            } else if (j->type == KILN_POOL_AVERAGE) {
                                acc += v;
                            } else {
                                acc += pow(fabs(v), j->p);
                            }
                        }
                    }
                }
                if (j->type == KILN_POOL_AVERAGE) {
                    int64_t div = j->count_include_pad ? n_pad : n_in;
                    acc = div ? acc / (double)div : 0.0;
                } else if (j->type == KILN_POOL_LP) {
                    acc = lp_finish(acc, j->p);
                }
                st(j, o, acc);
                if (j->idx) j->idx[o] = best < 0 ? -1 : xbase + best;
            }
}

static void pool_range(void *arg, int64_t begin, int64_t end) {
    const pool_job *j = arg;
    for (int64_t t = begin; t < end; t++) {
        if (j->global)
            global_plane(j, t);
        else
            window_plane(j, t);
    }
}

kiln_status kiln__cpu_pooling(const kiln_layer *layer, const kiln__value *in, kiln__value *out, kiln__cpu_ctx *ctx) {
    const kiln__pool_params *p = &layer->p.pool;
    const kiln_dims *xd = &in[0].dims, *yd = &out[0].dims;
    pool_job j = {.type = p->type, .count_include_pad = p->count_include_pad, .global = p->global,
                  .p = p->lp_norm > 0 ? p->lp_norm : 2};
    int64_t planes = xd->d[0] * xd->d[1];
    j.in_plane = j.out_plane = j.kvol = 1;
    for (int32_t i = 2; i < xd->nb_dims; i++) {
        j.in_plane *= xd->d[i];
        j.out_plane *= yd->d[i];
    }
    if (!p->global) {
        int32_t ns = p->nb_spatial, off = 3 - ns;
        for (int32_t a = 0; a < 3; a++) {
            int32_t i = a - off;
            if (i < 0) {
                j.in[a] = j.out[a] = j.k[a] = j.s[a] = j.d[a] = 1;
                j.pb[a] = j.pe[a] = 0;
                continue;
            }
            j.in[a] = xd->d[2 + i];
            j.out[a] = yd->d[2 + i];
            j.k[a] = p->window[i];
            j.s[a] = p->stride[i];
            j.d[a] = p->dilation[i];
            if (p->auto_pad == KILN__PAD_SAME_UPPER || p->auto_pad == KILN__PAD_SAME_LOWER) {
                int64_t total = (j.out[a] - 1) * j.s[a] + j.d[a] * (j.k[a] - 1) + 1 - j.in[a];
                total = KILN__MAX(total, 0);
                j.pb[a] = p->auto_pad == KILN__PAD_SAME_UPPER ? total / 2 : total - total / 2;
                j.pe[a] = total - j.pb[a];
            } else if (p->auto_pad == KILN__PAD_VALID) {
                j.pb[a] = j.pe[a] = 0;
            } else {
                j.pb[a] = p->pad_begin[i];
                j.pe[a] = p->pad_end[i];
            }
            j.kvol *= j.k[a];
        }
    }
    int64_t nx = planes * j.in_plane, ny = planes * j.out_plane;
    if (ny == 0) return KILN_OK;
    j.idx = layer->nb_outputs > 1 ? out[1].data : NULL;
    int64_t work = p->global ? j.in_plane : j.out_plane * j.kvol;
    int64_t grain = KILN__MAX(1, 32768 / KILN__MAX(work, 1));
    kiln_dtype t = in[0].dtype;
    if (t == KILN_FLOAT32 || t == KILN_FLOAT64) {
        j.is64 = t == KILN_FLOAT64;
        j.x = in[0].data;
        j.y = out[0].data;
        kiln__parallel_for(ctx->pool, planes, grain, pool_range, &j);
        return KILN_OK;
    }
    if (t != KILN_FLOAT16 && t != KILN_BFLOAT16)
        return kiln__layer_error(layer, KILN_UNSUPPORTED, "no CPU pooling for dtype %s", kiln_dtype_name(t));
    float *x = kiln__malloc_aligned(ctx->alloc, (size_t)KILN__MAX(nx, 1) * sizeof(float), 64);
    float *y = kiln__malloc_aligned(ctx->alloc, (size_t)ny * sizeof(float), 64);
    if (!x || !y) {
        kiln__free(ctx->alloc, x);
        kiln__free(ctx->alloc, y);
        return KILN_OUT_OF_MEMORY;
    }
    const uint16_t *hx = in[0].data;
    for (int64_t i = 0; i < nx; i++) x[i] = t == KILN_FLOAT16 ? kiln__half_to_float(hx[i]) : kiln__bf16_to_float(hx[i]);
    j.x = x;
    j.y = y;
    kiln__parallel_for(ctx->pool, planes, grain, pool_range, &j);
    uint16_t *hy = out[0].data;
    for (int64_t i = 0; i < ny; i++) hy[i] = t == KILN_FLOAT16 ? kiln__float_to_half(y[i]) : kiln__float_to_bf16(y[i]);
    kiln__free(ctx->alloc, x);
    kiln__free(ctx->alloc, y);
    return KILN_OK;
}
