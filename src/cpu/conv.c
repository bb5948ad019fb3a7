/* CPU convolution: im2col (none for 1x1 stride-1 convolutions) + kiln's sgemm per (image, group)
 * with the bias / residual / activation epilogue fused into the GEMM's stores, a direct AVX2
 * kernel for depthwise convolutions, float16/bfloat16 through float32, and a plain loop for
 * float64. 1-D and 2-D convolutions run as 3-D ones with leading unit dims. */
#include "gemm.h"

#include <immintrin.h>
#include <limits.h>
#include <stdatomic.h>
#include <string.h>

/* Below this many flops per GEMM, running several (image, group) GEMMs at once, one per
 * thread, beats spreading each over the threads. */
#define KILN__SMALL_GEMM_FLOPS 8e6

/* Depthwise rows gather at most this many (kz, ky) input rows per output row. */
#define DW_MAX_ROWS 64

/* Geometry with spatial dims padded to 3 (leading dims of size 1). */
typedef struct conv_geom {
    int64_t n, c, m, groups, cg, mg;
    int64_t in[3], out[3], k[3], s[3], d[3], pb[3];
    int64_t in_plane, out_plane, kvol;
} conv_geom;

typedef struct conv_job {
    conv_geom g;
    const float *x, *w, *bias, *res;
    float *y;
    const kiln__act *act;
    float *col;      /* im2col scratch: one block of col_size per slot */
    int64_t col_size;
    int64_t slots;   /* parallel slots, each with its own col block */
    bool pointwise;  /* 1x1 kernel, stride 1, no pads: the input is its own col matrix */
    const float *xg; /* serial-task mode: the input of the (image, group) being worked on */
    atomic_int status; /* the first failure of a parallel GEMM task */
} conv_job;

static void geom_init(const kiln_layer *layer, const kiln__value *in, const kiln__value *out, conv_geom *g) {
    const kiln__conv_params *p = &layer->p.conv;
    int32_t ns = p->nb_spatial, off = 3 - ns;
    g->n = in[0].dims.d[0];
    g->c = in[0].dims.d[1];
    g->m = out[0].dims.d[1];
    g->groups = p->groups;
    g->cg = g->c / g->groups;
    g->mg = g->m / g->groups;
    g->in_plane = g->out_plane = g->kvol = 1;
    for (int32_t j = 0; j < 3; j++) {
        int32_t i = j - off;
        if (i < 0) {
            g->in[j] = g->out[j] = g->k[j] = g->s[j] = g->d[j] = 1;
            g->pb[j] = 0;
        } else {
            g->in[j] = in[0].dims.d[2 + i];
            g->out[j] = out[0].dims.d[2 + i];
            g->k[j] = in[1].dims.d[2 + i];
            g->s[j] = p->stride[i];
            g->d[j] = p->dilation[i];
            if (p->auto_pad == KILN__PAD_SAME_UPPER || p->auto_pad == KILN__PAD_SAME_LOWER) {
                int64_t total = (g->out[j] - 1) * g->s[j] + g->d[j] * (g->k[j] - 1) + 1 - g->in[j];
                total = KILN__MAX(total, 0);
                g->pb[j] = p->auto_pad == KILN__PAD_SAME_UPPER ? total / 2 : total - total / 2;
            } else {
                g->pb[j] = p->auto_pad == KILN__PAD_VALID ? 0 : p->pad_begin[i];
            }
        }
        g->in_plane *= g->in[j];
        g->out_plane *= g->out[j];
        g->kvol *= g->k[j];
    }
}

/* Output positions [lo, hi) along the last dim whose input index o*s + base lies in [0, n). */
static void valid_range(int64_t base, int64_t s, int64_t n, int64_t out, int64_t *lo, int64_t *hi) {
    int64_t l = base >= 0 ? 0 : (-base + s - 1) / s;
    int64_t h = n - base <= 0 ? 0 : (n - base + s - 1) / s;
    *lo = KILN__MIN(l, out);
    *hi = KILN__MAX(*lo, KILN__MIN(h, out));
}

/* Rows [r0, r1) of the col matrix [cg * kvol, out_plane] of one group's input. */
static void im2col(const conv_geom *g, const float *x, float *col, int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; r++) {
        int64_t c = r / g->kvol, kr = r % g->kvol;
        int64_t kz = kr / (g->k[1] * g->k[2]), ky = kr / g->k[2] % g->k[1], kx = kr % g->k[2];
        const float *xc = x + c * g->in_plane;
        float *dst = col + r * g->out_plane;
        int64_t base_x = kx * g->d[2] - g->pb[2], lo, hi;
        valid_range(base_x, g->s[2], g->in[2], g->out[2], &lo, &hi);
        for (int64_t oz = 0; oz < g->out[0]; oz++) {
            int64_t iz = oz * g->s[0] - g->pb[0] + kz * g->d[0];
            for (int64_t oy = 0; oy < g->out[1]; oy++, dst += g->out[2]) {
                int64_t iy = oy * g->s[1] - g->pb[1] + ky * g->d[1];
                if (iz < 0 || iz >= g->in[0] || iy < 0 || iy >= g->in[1]) {
                    memset(dst, 0, (size_t)g->out[2] * sizeof *dst);
                    continue;
                }
                const float *xrow = xc + (iz * g->in[1] + iy) * g->in[2];
                for (int64_t ox = 0; ox < lo; ox++) dst[ox] = 0;
                if (g->s[2] == 1 && hi > lo)
                    memcpy(dst + lo, xrow + lo + base_x, (size_t)(hi - lo) * sizeof *dst);
                else
                    for (int64_t ox = lo; ox < hi; ox++) dst[ox] = xrow[ox * g->s[2] + base_x];
                for (int64_t ox = hi; ox < g->out[2]; ox++) dst[ox] = 0;
            }
        }
    }
}

/* Adds bias and residual and applies the activation to output maps [m0, m1) of image n. */
static void epilogue(const conv_job *j, int64_t n, int64_t m0, int64_t m1) {
    int64_t plane = j->g.out_plane;
    for (int64_t m = m0; m < m1; m++) {
        float *y = j->y + (n * j->g.m + m) * plane;
        float b = j->bias ? j->bias[m] : 0.0f;
        if (j->res) {
            const float *r = j->res + (n * j->g.m + m) * plane;
            for (int64_t i = 0; i < plane; i++) y[i] += b + r[i];
        } else if (j->bias) {
            for (int64_t i = 0; i < plane; i++) y[i] += b;
        }
        if (j->act->kind >= 0) kiln__apply_act_f32(j->act, y, plane);
    }
}

/* One depthwise plane, portable: output map c of image n from input channel c. */
static void depthwise_plane(const conv_job *j, int64_t n, int64_t c) {
    const conv_geom *g = &j->g;
    const float *x = j->x + (n * g->c + c) * g->in_plane;
    const float *w = j->w + c * g->kvol;
    float *y = j->y + (n * g->m + c) * g->out_plane;
    memset(y, 0, (size_t)g->out_plane * sizeof *y);
    for (int64_t kz = 0, t = 0; kz < g->k[0]; kz++)
        for (int64_t ky = 0; ky < g->k[1]; ky++)
            for (int64_t kx = 0; kx < g->k[2]; kx++, t++) {
                float wv = w[t];
                int64_t base_x = kx * g->d[2] - g->pb[2], lo, hi;
                valid_range(base_x, g->s[2], g->in[2], g->out[2], &lo, &hi);
                for (int64_t oz = 0; oz < g->out[0]; oz++) {
                    int64_t iz = oz * g->s[0] - g->pb[0] + kz * g->d[0];
                    if (iz < 0 || iz >= g->in[0]) continue;
                    for (int64_t oy = 0; oy < g->out[1]; oy++) {
                        int64_t iy = oy * g->s[1] - g->pb[1] + ky * g->d[1];
                        if (iy < 0 || iy >= g->in[1]) continue;
                        const float *xrow = x + (iz * g->in[1] + iy) * g->in[2];
                        float *yrow = y + (oz * g->out[1] + oy) * g->out[2];
                        if (g->s[2] == 1)
                            for (int64_t ox = lo; ox < hi; ox++) yrow[ox] += wv * xrow[ox + base_x];
                        else
                            for (int64_t ox = lo; ox < hi; ox++) yrow[ox] += wv * xrow[ox * g->s[2] + base_x];
                    }
                }
            }
    epilogue(j, n, c, c + 1);
}

/* The input rows (and their kernel rows) that output row (oz, oy) of one plane reads. */
typedef struct dw_rows {
    const float *x[DW_MAX_ROWS], *w[DW_MAX_ROWS];
    int32_t count;
} dw_rows;

static void dw_gather_rows(const conv_geom *g, const float *x, const float *w, int64_t oz, int64_t oy, dw_rows *r) {
    r->count = 0;
    for (int64_t kz = 0; kz < g->k[0]; kz++) {
        int64_t iz = oz * g->s[0] - g->pb[0] + kz * g->d[0];
        if (iz < 0 || iz >= g->in[0]) continue;
        for (int64_t ky = 0; ky < g->k[1]; ky++) {
            int64_t iy = oy * g->s[1] - g->pb[1] + ky * g->d[1];
            if (iy < 0 || iy >= g->in[1]) continue;
            r->x[r->count] = x + (iz * g->in[1] + iy) * g->in[2];
            r->w[r->count++] = w + (kz * g->k[1] + ky) * g->k[2];
        }
    }
}

/* Eight consecutive inputs at stride s (1 or 2) from p. */
__attribute__((target("avx2,fma"))) static inline __m256 dw_load(const float *p, int64_t s) {
    if (s == 1) return _mm256_loadu_ps(p);
    __m256 e = _mm256_shuffle_ps(_mm256_loadu_ps(p), _mm256_loadu_ps(p + 8), 0x88);
    return _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(e), 0xD8));
}

/* One depthwise plane with AVX2: each output row accumulates all its taps in registers, 32 or 8
 * outputs at a time where every tap lies inside the input row, one at a time at the borders;
 * bias, residual and relu/clip are applied before the store. Strides along the row of 1 or 2. */
__attribute__((target("avx2,fma"))) static void depthwise_plane_avx2(const conv_job *j, int64_t n, int64_t c) {
    const conv_geom *g = &j->g;
    const float *x = j->x + (n * g->c + c) * g->in_plane, *w = j->w + c * g->kvol;
    float *y = j->y + (n * g->m + c) * g->out_plane;
    const float *res = j->res ? j->res + (n * g->m + c) * g->out_plane : NULL;
    float bias = j->bias ? j->bias[c] : 0.0f;
    int64_t kw = g->k[2], s = g->s[2], d = g->d[2], pb = g->pb[2], in_w = g->in[2], out_w = g->out[2];
    /* Vector blocks of 8 outputs start in [vlo, vmax]: the first tap's first input is >= 0 and
     * the last tap's last loaded input (8 * s of them) is < in_w. */
    int64_t reach = in_w + pb - (kw - 1) * d;
    int64_t vlo = (pb + s - 1) / s, vmax = reach >= 0 ? reach / s - 8 : -1;
    int kind = j->act->kind;
    bool clamp = kind == KILN_ACT_RELU || kind == KILN_ACT_CLIP;
    float lo_v = kind == KILN_ACT_CLIP ? j->act->alpha : 0.0f;
    float hi_v = kind == KILN_ACT_CLIP ? j->act->beta : __builtin_inff();
    __m256 lo = _mm256_set1_ps(lo_v), hi = _mm256_set1_ps(hi_v);
    dw_rows r;
    for (int64_t oz = 0; oz < g->out[0]; oz++)
        for (int64_t oy = 0; oy < g->out[1]; oy++) {
            dw_gather_rows(g, x, w, oz, oy, &r);
            int64_t row = (oz * g->out[1] + oy) * out_w;
            float *yr = y + row;
            const float *rr = res ? res + row : NULL;
            int64_t ox = 0;
            while (ox < out_w) {
                if (ox >= vlo && ox + 32 <= out_w && ox + 24 <= vmax) {
                    __m256 a0 = _mm256_set1_ps(bias), a1 = a0, a2 = a0, a3 = a0;
                    for (int32_t i = 0; i < r.count; i++) {
                        const float *xp = r.x[i] + ox * s - pb;
                        for (int64_t kx = 0; kx < kw; kx++, xp += d) {
                            __m256 wv = _mm256_set1_ps(r.w[i][kx]);
                            a0 = _mm256_fmadd_ps(wv, dw_load(xp, s), a0);
                            a1 = _mm256_fmadd_ps(wv, dw_load(xp + 8 * s, s), a1);
                            a2 = _mm256_fmadd_ps(wv, dw_load(xp + 16 * s, s), a2);
                            a3 = _mm256_fmadd_ps(wv, dw_load(xp + 24 * s, s), a3);
                        }
                    }
                    if (rr) {
                        a0 = _mm256_add_ps(a0, _mm256_loadu_ps(rr + ox));
                        a1 = _mm256_add_ps(a1, _mm256_loadu_ps(rr + ox + 8));
                        a2 = _mm256_add_ps(a2, _mm256_loadu_ps(rr + ox + 16));
                        a3 = _mm256_add_ps(a3, _mm256_loadu_ps(rr + ox + 24));
                    }
                    if (clamp) {
                        a0 = _mm256_min_ps(_mm256_max_ps(a0, lo), hi);
                        a1 = _mm256_min_ps(_mm256_max_ps(a1, lo), hi);
                        a2 = _mm256_min_ps(_mm256_max_ps(a2, lo), hi);
                        a3 = _mm256_min_ps(_mm256_max_ps(a3, lo), hi);
                    }
                    _mm256_storeu_ps(yr + ox, a0);
                    _mm256_storeu_ps(yr + ox + 8, a1);
                    _mm256_storeu_ps(yr + ox + 16, a2);
                    _mm256_storeu_ps(yr + ox + 24, a3);
                    ox += 32;
                } else if (ox >= vlo && ox + 8 <= out_w && ox <= vmax) {
                    /* Two accumulators split the taps so the FMA chain is half as long. */
                    __m256 a0 = _mm256_set1_ps(bias), a1 = _mm256_setzero_ps();
                    for (int32_t i = 0; i < r.count; i++) {
                        const float *xp = r.x[i] + ox * s - pb;
                        int64_t kx = 0;
                        for (; kx + 1 < kw; kx += 2, xp += 2 * d) {
                            a0 = _mm256_fmadd_ps(_mm256_set1_ps(r.w[i][kx]), dw_load(xp, s), a0);
                            a1 = _mm256_fmadd_ps(_mm256_set1_ps(r.w[i][kx + 1]), dw_load(xp + d, s), a1);
                        }
                        if (kx < kw) a0 = _mm256_fmadd_ps(_mm256_set1_ps(r.w[i][kx]), dw_load(xp, s), a0);
                    }
                    a0 = _mm256_add_ps(a0, a1);
                    if (rr) a0 = _mm256_add_ps(a0, _mm256_loadu_ps(rr + ox));
                    if (clamp) a0 = _mm256_min_ps(_mm256_max_ps(a0, lo), hi);
                    _mm256_storeu_ps(yr + ox, a0);
                    ox += 8;
                } else {
                    float acc = bias;
                    for (int32_t i = 0; i < r.count; i++)
                        for (int64_t kx = 0; kx < kw; kx++) {
                            int64_t ix = ox * s - pb + kx * d;
                            if (ix >= 0 && ix < in_w) acc += r.w[i][kx] * r.x[i][ix];
                        }
                    if (rr) acc += rr[ox];
                    if (clamp) acc = acc < lo_v ? lo_v : (acc > hi_v ? hi_v : acc);
                    yr[ox] = acc;
                    ox++;
                }
            }
            if (kind >= 0 && !clamp) kiln__apply_act_f32(j->act, yr, out_w);
        }
}

static void depthwise_range(void *arg, int64_t begin, int64_t end) {
    const conv_job *j = arg;
    bool simd = kiln__cpu_simd() >= KILN__SIMD_AVX2 && (j->g.s[2] == 1 || j->g.s[2] == 2) && j->g.k[0] * j->g.k[1] <= DW_MAX_ROWS;
    for (int64_t t = begin; t < end; t++) {
        if (simd)
            depthwise_plane_avx2(j, t / j->g.c, t % j->g.c);
        else
            depthwise_plane(j, t / j->g.c, t % j->g.c);
    }
}

/* y_g[mg, plane] = w_g[mg, cg*kvol] x col (or x itself for pointwise convolutions) + epilogue,
 * for image n, group grp; col holds the im2col matrix unless pointwise. */
static kiln_status group_gemm(const conv_job *j, int64_t n, int64_t grp, const float *col, kiln__pool *pool,
                              const kiln__alloc *alloc) {
    const conv_geom *g = &j->g;
    int64_t kdim = g->cg * g->kvol, first = n * g->m + grp * g->mg;
    const float *b = j->pointwise ? j->x + (n * g->c + grp * g->cg) * g->in_plane : col;
    kiln__gemm_epilogue ep = {j->bias ? j->bias + grp * g->mg : NULL, j->res ? j->res + first * g->out_plane : NULL,
                              g->out_plane, j->act};
    return kiln__sgemm(pool, alloc, false, false, g->mg, g->out_plane, kdim, 1.0f, j->w + grp * g->mg * kdim, kdim, b,
                       g->out_plane, 0.0f, j->y + first * g->out_plane, g->out_plane, &ep);
}

typedef struct slot_arg {
    conv_job *j;
    const kiln__alloc *alloc;
} slot_arg;

static void slot_range(void *arg, int64_t begin, int64_t end) {
    const slot_arg *sa = arg;
    conv_job *j = sa->j;
    const conv_geom *g = &j->g;
    int64_t tasks = g->n * g->groups;
    for (int64_t s = begin; s < end; s++) {
        float *col = j->col + s * j->col_size;
        for (int64_t t = s; t < tasks; t += j->slots) {
            int64_t n = t / g->groups, grp = t % g->groups;
            if (!j->pointwise) im2col(g, j->x + (n * g->c + grp * g->cg) * g->in_plane, col, 0, g->cg * g->kvol);
            kiln_status st = group_gemm(j, n, grp, col, NULL, sa->alloc);
            if (st != KILN_OK) atomic_store(&j->status, st);
        }
    }
}

static void im2col_range(void *arg, int64_t begin, int64_t end) {
    const conv_job *j = arg;
    im2col(&j->g, j->xg, j->col, begin, end);
}

static kiln_status conv_f32(conv_job *j, kiln__cpu_ctx *ctx) {
    const conv_geom *g = &j->g;
    if (g->groups == g->c && g->m == g->c) {
        kiln__parallel_for(ctx->pool, g->n * g->c, 1, depthwise_range, j);
        return KILN_OK;
    }
    int64_t tasks = g->n * g->groups, threads = kiln__pool_threads(ctx->pool);
    j->pointwise = g->kvol == 1;
    for (int32_t i = 0; i < 3; i++)
        j->pointwise = j->pointwise && g->s[i] == 1 && g->pb[i] == 0 && g->out[i] == g->in[i];
    j->col_size = j->pointwise ? 0 : g->cg * g->kvol * g->out_plane;
    /* Many small (image, group) tasks: one pipeline per thread. Otherwise each task in turn,
     * with im2col and the GEMM spread over the threads. */
    double flops = 2.0 * (double)g->mg * (double)g->out_plane * (double)(g->cg * g->kvol);
    j->slots = threads > 1 && tasks >= threads && flops < KILN__SMALL_GEMM_FLOPS ? threads : 1;
    size_t bytes = 0;
    if (j->col_size && !kiln__mul_size((size_t)(j->slots * j->col_size), sizeof(float), &bytes))
        return kiln__error(KILN_OUT_OF_MEMORY, "convolution scratch size overflows");
    j->col = bytes ? kiln__malloc_aligned(ctx->alloc, bytes, 64) : NULL;
    if (bytes && !j->col) return KILN_OUT_OF_MEMORY;
    atomic_init(&j->status, KILN_OK);
    kiln_status st = KILN_OK;
    if (j->slots > 1) {
        slot_arg sa = {j, ctx->alloc};
        kiln__parallel_for(ctx->pool, j->slots, 1, slot_range, &sa);
        st = atomic_load(&j->status);
    } else {
        for (int64_t t = 0; t < tasks && st == KILN_OK; t++) {
            int64_t n = t / g->groups, grp = t % g->groups;
            if (!j->pointwise) {
                j->xg = j->x + (n * g->c + grp * g->cg) * g->in_plane;
                kiln__parallel_for(ctx->pool, g->cg * g->kvol, 1, im2col_range, j);
            }
            st = group_gemm(j, n, grp, j->col, ctx->pool, ctx->alloc);
        }
    }
    kiln__free(ctx->alloc, j->col);
    return st;
}

/* ---------------------------------------------------------------- float64: direct loops */

static double act_f64(const kiln__act *a, double x) {
    switch (a->kind) {
    case KILN_ACT_RELU: return x > 0 ? x : 0;
    case KILN_ACT_LEAKY_RELU: return x >= 0 ? x : a->alpha * x;
    case KILN_ACT_CLIP: return x < a->alpha ? a->alpha : (x > a->beta ? a->beta : x);
    default: return kiln__act_f32(a->kind, a->alpha, a->beta, (float)x);
    }
}

typedef struct conv_job64 {
    conv_geom g;
    const double *x, *w, *bias, *res;
    double *y;
    const kiln__act *act;
} conv_job64;

static void conv64_range(void *arg, int64_t begin, int64_t end) {
    const conv_job64 *j = arg;
    const conv_geom *g = &j->g;
    for (int64_t t = begin; t < end; t++) {
        int64_t n = t / g->m, m = t % g->m, grp = m / g->mg;
        double *y = j->y + t * g->out_plane;
        const double *res = j->res ? j->res + t * g->out_plane : NULL;
        for (int64_t oz = 0, o = 0; oz < g->out[0]; oz++)
            for (int64_t oy = 0; oy < g->out[1]; oy++)
                for (int64_t ox = 0; ox < g->out[2]; ox++, o++) {
                    double acc = j->bias ? j->bias[m] : 0.0;
                    for (int64_t c = 0; c < g->cg; c++) {
                        const double *x = j->x + (n * g->c + grp * g->cg + c) * g->in_plane;
                        const double *w = j->w + (m * g->cg + c) * g->kvol;
                        for (int64_t kz = 0; kz < g->k[0]; kz++) {
                            int64_t iz = oz * g->s[0] - g->pb[0] + kz * g->d[0];
                            if (iz < 0 || iz >= g->in[0]) continue;
                            for (int64_t ky = 0; ky < g->k[1]; ky++) {
                                int64_t iy = oy * g->s[1] - g->pb[1] + ky * g->d[1];
                                if (iy < 0 || iy >= g->in[1]) continue;
                                for (int64_t kx = 0; kx < g->k[2]; kx++) {
                                    int64_t ix = ox * g->s[2] - g->pb[2] + kx * g->d[2];
                                    if (ix < 0 || ix >= g->in[2]) continue;
                                    acc += w[(kz * g->k[1] + ky) * g->k[2] + kx] *
                                           x[(iz * g->in[1] + iy) * g->in[2] + ix];
                                }
                            }
                        }
                    }
                    if (res) acc += res[o];
                    y[o] = j->act->kind >= 0 ? act_f64(j->act, acc) : acc;
                }
    }
}

/* ---------------------------------------------------------------- half types through float32 */

static float *to_f32(const kiln__alloc *alloc, const kiln__value *v, int64_t count) {
    if (!v || !v->data) return NULL;
    float *f = kiln__malloc_aligned(alloc, (size_t)KILN__MAX(count, 1) * sizeof(float), 64);
    if (!f) return NULL;
    const uint16_t *h = v->data;
    for (int64_t i = 0; i < count; i++)
        f[i] = v->dtype == KILN_FLOAT16 ? kiln__half_to_float(h[i]) : kiln__bf16_to_float(h[i]);
    return f;
}

static void from_f32(const float *f, kiln_dtype dtype, void *out, int64_t count) {
    uint16_t *h = out;
    for (int64_t i = 0; i < count; i++)
        h[i] = dtype == KILN_FLOAT16 ? kiln__float_to_half(f[i]) : kiln__float_to_bf16(f[i]);
}

kiln_status kiln__cpu_conv(const kiln_layer *layer, const kiln__value *in, kiln__value *out, kiln__cpu_ctx *ctx) {
    const kiln__conv_params *p = &layer->p.conv;
    conv_geom g;
    geom_init(layer, in, out, &g);
    const kiln__value *bias = layer->nb_inputs > 2 && in[2].data ? &in[2] : NULL;
    const kiln__value *res = layer->nb_inputs > 3 && in[3].data ? &in[3] : NULL;
    int64_t ny = g.n * g.m * g.out_plane;
    if (ny == 0) return KILN_OK;
    if (g.out_plane > INT_MAX || g.cg * g.kvol > INT_MAX || g.mg > INT_MAX)
        return kiln__layer_error(layer, KILN_UNSUPPORTED, "the GEMM dims exceed the BLAS int range");
    kiln_dtype t = in[0].dtype;
    if (t == KILN_FLOAT64) {
        conv_job64 j = {g, in[0].data, in[1].data, bias ? bias->data : NULL, res ? res->data : NULL, out[0].data,
                        &p->act};
        kiln__parallel_for(ctx->pool, g.n * g.m, 1, conv64_range, &j);
        return KILN_OK;
    }
    conv_job j = {.g = g, .act = &p->act};
    if (t == KILN_FLOAT32) {
        j.x = in[0].data;
        j.w = in[1].data;
        j.bias = bias ? bias->data : NULL;
        j.res = res ? res->data : NULL;
        j.y = out[0].data;
        return conv_f32(&j, ctx);
    }
    if (t != KILN_FLOAT16 && t != KILN_BFLOAT16)
        return kiln__layer_error(layer, KILN_UNSUPPORTED, "no CPU convolution for dtype %s", kiln_dtype_name(t));
    float *x = to_f32(ctx->alloc, &in[0], g.n * g.c * g.in_plane);
    float *w = to_f32(ctx->alloc, &in[1], g.m * g.cg * g.kvol);
    float *b = to_f32(ctx->alloc, bias, g.m);
    float *r = to_f32(ctx->alloc, res, ny);
    float *y = kiln__malloc_aligned(ctx->alloc, (size_t)ny * sizeof(float), 64);
    kiln_status st = KILN_OUT_OF_MEMORY;
    if (x && w && y && (b || !bias) && (r || !res)) {
        j.x = x;
        j.w = w;
        j.bias = b;
        j.res = r;
        j.y = y;
        st = conv_f32(&j, ctx);
        if (st == KILN_OK) from_f32(y, t, out[0].data, ny);
    }
    kiln__free(ctx->alloc, x);
    kiln__free(ctx->alloc, w);
    kiln__free(ctx->alloc, b);
    kiln__free(ctx->alloc, r);
    kiln__free(ctx->alloc, y);
    return st;
}
