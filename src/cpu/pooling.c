/* CPU pooling: max (with optional ONNX indices), average and Lp over 1-3 spatial dims (run as
 * 3-D with leading unit dims) or globally. Float32 max/average without indices or dilation over
 * 1-2 spatial dims take a fast float path; the rest accumulates in double. float16/bfloat16
 * run through float32. */
#include "cpu.h"
#include "gemm.h"
#include "vmath.h"

#include <immintrin.h>
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

/* Float32 max/average over 2-D windows without dilation (1-D runs as 2-D): each output row
 * first reduces its valid input rows column by column into `col` (contiguous, vectorizes),
 * then reduces kx windows of `col`; the interior columns (window fully inside the input) run
 * without bounds checks. Max propagates NaN; sums are float32 (at most a few hundred terms). */
static float max_nan(float a, float v) { return v > a || v != v ? v : a; }

/* max_nan on 16 lanes: vmaxps returns its second operand when either is NaN, so a NaN already in
 * a is put back. */
__attribute__((target("avx512f"), always_inline)) static inline __m512 max_nan16(__m512 a, __m512 v) {
    return _mm512_mask_mov_ps(_mm512_max_ps(a, v), _mm512_cmp_ps_mask(a, a, _CMP_UNORD_Q), a);
}

/* col[i] = max_nan(col[i], r[i]) for i < n. */
__attribute__((target("avx512f"))) static void max_rows512(float *col, const float *r, int64_t n) {
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) _mm512_storeu_ps(col + i, max_nan16(_mm512_loadu_ps(col + i), _mm512_loadu_ps(r + i)));
    __mmask16 m = (__mmask16)((1u << (n - i)) - 1);
    _mm512_mask_storeu_ps(col + i, m, max_nan16(_mm512_maskz_loadu_ps(m, col + i), _mm512_maskz_loadu_ps(m, r + i)));
}

/* y[o] = max of c[2o], c[2o + 1], c[2o + 2] for o in [o0, o1), 16 at a time while the loads
 * (up to c[2o + 33]) stay below c_end; returns the first o left to do. */
__attribute__((target("avx512f"))) static int64_t max3s2_512(float *y, const float *c, int64_t o0, int64_t o1,
                                                             const float *c_end) {
    const __m512i evens = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    const __m512i odds = _mm512_add_epi32(evens, _mm512_set1_epi32(1));
    int64_t o = o0;
    for (; o + 16 <= o1 && c + 2 * o + 34 <= c_end; o += 16) {
        const float *p = c + 2 * o;
        __m512 lo = _mm512_loadu_ps(p), hi = _mm512_loadu_ps(p + 16);
        __m512 lo2 = _mm512_loadu_ps(p + 2), hi2 = _mm512_loadu_ps(p + 18);
        __m512 v = max_nan16(_mm512_permutex2var_ps(lo, evens, hi), _mm512_permutex2var_ps(lo, odds, hi));
        _mm512_storeu_ps(y + o, max_nan16(v, _mm512_permutex2var_ps(lo2, evens, hi2)));
    }
    return o;
}

static void fast_plane(const pool_job *j, int64_t t, float *col) {
    const float *x = (const float *)j->x + t * j->in_plane;
    float *y = (float *)j->y + t * j->out_plane;
    int64_t ih = j->in[1], iw = j->in[2], oh = j->out[1], ow = j->out[2];
    int64_t kh = j->k[1], kw = j->k[2], sh = j->s[1], sw = j->s[2], pt = j->pb[1], pl = j->pb[2];
    bool is_max = j->type == KILN_POOL_MAX, avx512 = kiln__cpu_simd() == KILN__SIMD_AVX512;
    /* Interior output columns: ox in [ox0, ox1) read iw columns ox*sw - pl .. + kw - 1 all inside. */
    int64_t ox0 = (pl + sw - 1) / sw, ox1 = iw - kw + pl >= 0 ? (iw - kw + pl) / sw + 1 : 0;
    ox0 = KILN__MIN(ox0, ow);
    ox1 = KILN__MAX(KILN__MIN(ox1, ow), ox0);
    for (int64_t oy = 0; oy < oh; oy++, y += ow) {
        int64_t y0 = oy * sh - pt, ky0 = KILN__MAX(0, -y0), ky1 = KILN__MIN(kh, ih - y0);
        if (ky1 <= ky0) { /* the window sees only padding */
            for (int64_t ox = 0; ox < ow; ox++) y[ox] = is_max ? -INFINITY : 0.0f;
            continue;
        }
        const float *r = x + (y0 + ky0) * iw;
        for (int64_t i = 0; i < iw; i++) col[i] = r[i];
        for (int64_t ky = ky0 + 1; ky < ky1; ky++) {
            r = x + (y0 + ky) * iw;
            if (is_max && avx512)
                max_rows512(col, r, iw);
            else if (is_max)
                for (int64_t i = 0; i < iw; i++) col[i] = max_nan(col[i], r[i]);
            else
                for (int64_t i = 0; i < iw; i++) col[i] += r[i];
        }
        /* Rows counted by the divisor: inside the input, or inside the padding too. */
        int64_t rows_in = ky1 - ky0;
        int64_t rows_pad = KILN__MIN(kh, ih + j->pe[1] - y0) - KILN__MAX(0, -pt - y0);
        for (int64_t ox = 0; ox < ow; ox++) {
            if (ox == ox0 && ox1 > ox0) { /* interior */
                if (is_max && kw == 3 && sw == 2) {
                    int64_t o = avx512 ? max3s2_512(y, col - pl, ox0, ox1, col + iw) : ox0;
                    for (; o < ox1; o++) {
                        const float *c = col + o * 2 - pl;
                        y[o] = max_nan(max_nan(c[0], c[1]), c[2]);
                    }
                } else if (is_max && kw == 2 && sw == 2) {
                    for (int64_t o = ox0; o < ox1; o++) {
                        const float *c = col + o * 2 - pl;
                        y[o] = max_nan(c[0], c[1]);
                    }
                } else {
                    float inv = 1.0f / (float)(rows_in * kw), inv_pad = 1.0f / (float)(rows_pad * kw);
                    float scale = j->count_include_pad ? inv_pad : inv;
                    for (int64_t o = ox0; o < ox1; o++) {
                        const float *c = col + o * sw - pl;
                        float acc = c[0];
                        for (int64_t kx = 1; kx < kw; kx++) acc = is_max ? max_nan(acc, c[kx]) : acc + c[kx];
                        y[o] = is_max ? acc : acc * scale;
                    }
                }
                ox = ox1 - 1;
                continue;
            }
            int64_t x0 = ox * sw - pl, kx0 = KILN__MAX(0, -x0), kx1 = KILN__MIN(kw, iw - x0);
            if (kx1 <= kx0) {
                y[ox] = is_max ? -INFINITY : 0.0f;
                continue;
            }
            float acc = col[x0 + kx0];
            for (int64_t kx = kx0 + 1; kx < kx1; kx++) acc = is_max ? max_nan(acc, col[x0 + kx]) : acc + col[x0 + kx];
            if (!is_max) {
                int64_t cols_pad = KILN__MIN(kw, iw + j->pe[2] - x0) - KILN__MAX(0, -pl - x0);
                acc /= (float)(j->count_include_pad ? rows_pad * cols_pad : rows_in * (kx1 - kx0));
            }
            y[ox] = acc;
        }
    }
}

/* Global average/max over contiguous float32 planes. */
static void fast_global(const pool_job *j, int64_t t) {
    int64_t n = j->in_plane;
    const float *x = n ? (const float *)j->x + t * n : NULL; /* an empty plane may come with no data at all */
    float acc[8];
    for (int k = 0; k < 8; k++) acc[k] = j->type == KILN_POOL_MAX ? -INFINITY : 0.0f;
    int64_t i = 0;
    /* Eight independent accumulators: vectorizes, and shortens the sum's rounding chains. */
    for (; i + 8 <= n; i += 8)
        for (int k = 0; k < 8; k++) acc[k] = j->type == KILN_POOL_MAX ? max_nan(acc[k], x[i + k]) : acc[k] + x[i + k];
    for (int k = 0; i < n; i++, k++) acc[k] = j->type == KILN_POOL_MAX ? max_nan(acc[k], x[i]) : acc[k] + x[i];
    float r = acc[0];
    for (int k = 1; k < 8; k++) r = j->type == KILN_POOL_MAX ? max_nan(r, acc[k]) : r + acc[k];
    ((float *)j->y)[t] = j->type == KILN_POOL_MAX ? r : r / (float)n;
}

static bool fast_ok(const pool_job *j) {
    if (j->is64 || j->idx || (j->type != KILN_POOL_MAX && j->type != KILN_POOL_AVERAGE)) return false;
    if (j->global) return true;
    return j->in[0] == 1 && j->k[0] == 1 && j->pb[0] == 0 && j->pe[0] == 0 && j->out[0] == 1 && j->d[1] == 1 &&
           j->d[2] == 1;
}

static void pool_range(void *arg, int64_t begin, int64_t end) {
    const pool_job *j = arg;
    if (fast_ok(j) && j->global) {
        for (int64_t t = begin; t < end; t++) fast_global(j, t);
        return;
    }
    if (fast_ok(j)) {
        float col[1024]; /* one reduced input row; wider rows take the general path */
        if (j->in[2] <= 1024) {
            for (int64_t t = begin; t < end; t++) fast_plane(j, t, col);
            return;
        }
    }
    for (int64_t t = begin; t < end; t++) {
        if (j->global)
            global_plane(j, t);
        else
            window_plane(j, t);
    }
}

/* The job's geometry (window, strides, pads: SAME resolved) and its planes (images x channels). */
static void pool_geom(const kiln_layer *layer, const kiln__value *in, const kiln__value *out, pool_job *jp,
                      int64_t *planes_out) {
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
    *jp = j;
    *planes_out = planes;
}

/* ---------------------------------------------------------------- NCHW16C input */

/* A convolution that writes NCHW16C (kiln__cpu_blocked_edge) hands it to max or average pooling
 * over 2-D windows: each output position is then a few vector loads of 16 channels, with no
 * rows to reduce and no lanes to shuffle; 16 positions at a time are transposed in registers
 * into the NCHW output. */
bool kiln__cpu_pool_blocked_ok(const kiln_layer *layer, const kiln__value *in, const kiln__value *out) {
    const kiln__pool_params *p = &layer->p.pool;
    if (kiln__cpu_simd() != KILN__SIMD_AVX512 || in[0].dtype != KILN_FLOAT32 || in[0].dims.nb_dims != 4 ||
        layer->nb_outputs != 1 || p->global || (p->type != KILN_POOL_MAX && p->type != KILN_POOL_AVERAGE) ||
        in[0].dims.d[1] % 16 != 0)
        return false;
    pool_job j;
    int64_t planes;
    pool_geom(layer, in, out, &j, &planes);
    return j.d[1] == 1 && j.d[2] == 1 && j.pb[1] >= 0 && j.pb[2] >= 0;
}

/* Output rows [begin, end) of all (image, channel block) pairs: row t is row t % oh of block
 * t / oh, written to the block's 16 channel planes. */
__attribute__((target("avx512f"))) static void blocked_rows(void *arg, int64_t begin, int64_t end) {
    const pool_job *j = arg;
    int64_t ih = j->in[1], iw = j->in[2], oh = j->out[1], ow = j->out[2];
    int64_t kh = j->k[1], kw = j->k[2], sh = j->s[1], sw = j->s[2], pt = j->pb[1], pl = j->pb[2];
    bool is_max = j->type == KILN_POOL_MAX;
    for (int64_t t = begin; t < end; t++) {
        int64_t oy = t % oh, blk = t / oh;
        const float *x = (const float *)j->x + blk * j->in_plane * 16;
        float *y = (float *)j->y + blk * 16 * j->out_plane + oy * ow;
        int64_t y0 = oy * sh - pt, ky0 = KILN__MAX(0, -y0), ky1 = KILN__MIN(kh, ih - y0);
        int64_t rows_pad = KILN__MIN(kh, ih + j->pe[1] - y0) - KILN__MAX(0, -pt - y0);
        for (int64_t ox0 = 0; ox0 < ow; ox0 += 16) {
            int nx = (int)KILN__MIN(16, ow - ox0);
            __m512 r[16];
            for (int q = 0; q < 16; q++) {
                r[q] = _mm512_setzero_ps();
                if (q >= nx) continue;
                int64_t x0 = (ox0 + q) * sw - pl, kx0 = KILN__MAX(0, -x0), kx1 = KILN__MIN(kw, iw - x0);
                __m512 acc = is_max ? _mm512_set1_ps(-INFINITY) : _mm512_setzero_ps();
                for (int64_t ky = ky0; ky < ky1; ky++)
                    for (int64_t kx = kx0; kx < kx1; kx++) {
                        __m512 v = _mm512_loadu_ps(x + ((y0 + ky) * iw + x0 + kx) * 16);
                        acc = is_max ? max_nan16(acc, v) : _mm512_add_ps(acc, v);
                    }
                if (!is_max) { /* the divisor counts the window inside the input, or inside the padding too */
                    int64_t cols_pad = KILN__MIN(kw, iw + j->pe[2] - x0) - KILN__MAX(0, -pl - x0);
                    int64_t count = j->count_include_pad ? rows_pad * cols_pad
                                                         : KILN__MAX(0, ky1 - ky0) * KILN__MAX(0, kx1 - kx0);
                    acc = count > 0 ? _mm512_mul_ps(acc, _mm512_set1_ps(1.0f / (float)count)) : _mm512_setzero_ps();
                }
                r[q] = acc;
            }
            kiln__vm_transpose16(r);
            __mmask16 keep = (__mmask16)((1u << nx) - 1);
            for (int l = 0; l < 16; l++) _mm512_mask_storeu_ps(y + l * j->out_plane + ox0, keep, r[l]);
        }
    }
}

kiln_status kiln__cpu_pooling(const kiln_layer *layer, const kiln__value *in, kiln__value *out, kiln__cpu_ctx *ctx) {
    const kiln__pool_params *p = &layer->p.pool;
    pool_job j;
    int64_t planes;
    pool_geom(layer, in, out, &j, &planes);
    if (in[0].layout == KILN__LAYOUT_NCHW16C) {
        if (!kiln__cpu_pool_blocked_ok(layer, in, out))
            return kiln__layer_error(layer, KILN_INTERNAL_ERROR, "no kernel for this pooling in NCHW16C");
        j.x = in[0].data;
        j.y = out[0].data;
        int64_t rows = planes / 16 * j.out[1], groups_per_row = (j.out[2] + 15) / 16;
        if (rows > 0) /* chunks of about 64 groups of 16 positions */
            kiln__parallel_for(ctx->pool, rows, KILN__MAX(1, 64 / groups_per_row), blocked_rows, &j);
        return KILN_OK;
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
