/* CPU convolution: im2col (none for 1x1 stride-1 convolutions) + kiln's sgemm per (image, group)
 * with the bias / residual / activation epilogue fused into the GEMM's stores, a direct AVX2
 * kernel for depthwise convolutions, float16/bfloat16 through float32, and a plain loop for
 * float64. 1-D and 2-D convolutions run as 3-D ones with leading unit dims. */
#include "conv_common.h"
#include "gemm.h"

#include <immintrin.h>
#include <limits.h>
#include <stdatomic.h>
#include <string.h>

/* The vector depthwise path takes kernels of at most this many (kz, ky) rows and kx taps. */
#define DW_MAX_ROWS 64
#define DW_MAX_TAPS 64

typedef kiln__conv_geom conv_geom;

typedef struct conv_job {
    conv_geom g;
    const float *x, *w, *bias, *res;
    const float *wpack; /* w packed for the GEMM, one block per group, or NULL */
    float *y;
    const kiln__act *act;
    float *col;      /* im2col scratch: one block of col_size per slot */
    int64_t col_size;
    int64_t slots;   /* parallel slots, each with its own col block */
    bool pointwise;  /* 1x1 kernel, stride 1, no pads: the input is its own col matrix */
    const float *xg; /* serial-task mode: the input of the (image, group) being worked on */
    atomic_int status; /* the first failure of a parallel GEMM task */
} conv_job;

/* Rows [r0, r1) of the col matrix [cg * kvol, out_plane] of one group's input. */
static void im2col(const conv_geom *g, const float *x, float *col, int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; r++) {
        int64_t c = r / g->kvol, kr = r % g->kvol;
        int64_t kz = kr / (g->k[1] * g->k[2]), ky = kr / g->k[2] % g->k[1], kx = kr % g->k[2];
        const float *xc = x + c * g->in_plane;
        float *dst = col + r * g->out_plane;
        int64_t base_x = kx * g->d[2] - g->pb[2], lo, hi;
        kiln__conv_valid_range(base_x, g->s[2], g->in[2], g->out[2], &lo, &hi);
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
                kiln__conv_valid_range(base_x, g->s[2], g->in[2], g->out[2], &lo, &hi);
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

/* The vector depthwise path works on a zero-padded copy of each input plane, so every output is
 * vector work: rows padded along y/z by the pads, along x by the pads plus slack up to whole
 * vectors, and stored as s phases (s: the stride along x; phase ph holds padded columns ph, ph +
 * s, ...), so the input of tap kx for 16 consecutive outputs is one contiguous load at any
 * stride. Output rows are done in pairs, with bias, residual and relu/clip applied before the
 * store and partial vectors stored through masks. */
typedef struct dw_plan {
    int64_t phase;            /* floats per phase of a padded row (a multiple of 16) */
    int64_t row;              /* floats per padded row: s * phase */
    int64_t rows_y, rows_z;   /* padded rows per slice, slices */
    int64_t pair;             /* floats from one output row's inputs to the next's: s_y rows */
    int64_t nrows, kw;        /* (kz, ky) taps, kx taps */
    int64_t yoff[DW_MAX_ROWS]; /* tap (kz, ky): its row's offset from the output row's first */
    int64_t xoff[DW_MAX_TAPS]; /* tap kx: its column's offset within a padded row */
} dw_plan;

static void dw_plan_init(const conv_geom *g, dw_plan *p) {
    int64_t s = g->s[2], kreach = (g->k[2] - 1) * g->d[2];
    p->phase = ((g->out[2] + 15) / 16 * 16 + kreach / s + 1 + 15) / 16 * 16;
    p->row = s * p->phase;
    p->rows_y = (g->out[1] - 1) * g->s[1] + (g->k[1] - 1) * g->d[1] + 1;
    p->rows_z = (g->out[0] - 1) * g->s[0] + (g->k[0] - 1) * g->d[0] + 1;
    p->pair = g->s[1] * p->row;
    p->kw = g->k[2];
    p->nrows = g->k[0] * g->k[1];
    for (int64_t kz = 0, r = 0; kz < g->k[0]; kz++)
        for (int64_t ky = 0; ky < g->k[1]; ky++, r++) p->yoff[r] = (kz * g->d[0] * p->rows_y + ky * g->d[1]) * p->row;
    for (int64_t kx = 0; kx < g->k[2]; kx++) {
        int64_t o = kx * g->d[2];
        p->xoff[kx] = o % s * p->phase + o / s;
    }
}

/* Floats of one slot's scratch: the padded plane, then one linear padded row. */
static int64_t dw_scratch_floats(const dw_plan *p) { return p->rows_z * p->rows_y * p->row + p->row; }

/* Splits a linear padded row into its 2 phases (AVX-512 shuffles). */
__attribute__((target("avx512f"))) static void dw_phases2_512(const float *lin, int64_t phase, float *dst) {
    __m512i even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    __m512i odd = _mm512_add_epi32(even, _mm512_set1_epi32(1));
    for (int64_t q = 0; q < phase; q += 16) {
        __m512 a = _mm512_loadu_ps(lin + 2 * q), b = _mm512_loadu_ps(lin + 2 * q + 16);
        _mm512_storeu_ps(dst + q, _mm512_permutex2var_ps(a, even, b));
        _mm512_storeu_ps(dst + phase + q, _mm512_permutex2var_ps(a, odd, b));
    }
}

/* Splits a linear padded row into its s phases. */
static void dw_phases(const float *lin, int64_t s, int64_t phase, float *dst, bool avx512) {
    if (s == 2 && avx512) {
        dw_phases2_512(lin, phase, dst);
        return;
    }
    for (int64_t ph = 0; ph < s; ph++)
        for (int64_t q = 0; q < phase; q++) dst[ph * phase + q] = lin[q * s + ph];
}

/* Copies input plane x into the padded, phase-split layout at buf (lin: one row of scratch). */
static void dw_pad_plane(const conv_geom *g, const dw_plan *p, const float *x, float *buf, float *lin, bool avx512) {
    int64_t s = g->s[2], pl = g->pb[2];
    /* Input columns [c0, c1) land at padded columns [c0 + pl, c1 + pl) < row. */
    int64_t c0 = KILN__MIN(KILN__MAX(0, -pl), g->in[2]);
    int64_t c1 = KILN__MAX(c0, KILN__MIN(g->in[2], p->row - pl));
    for (int64_t pz = 0; pz < p->rows_z; pz++) {
        int64_t iz = pz - g->pb[0];
        for (int64_t py = 0; py < p->rows_y; py++) {
            int64_t iy = py - g->pb[1];
            float *dst = buf + (pz * p->rows_y + py) * p->row;
            if (iz < 0 || iz >= g->in[0] || iy < 0 || iy >= g->in[1] || c1 <= c0) {
                memset(dst, 0, (size_t)p->row * sizeof *dst);
                continue;
            }
            const float *src = x + (iz * g->in[1] + iy) * g->in[2];
            float *row = s == 1 ? dst : lin;
            memset(row, 0, (size_t)(c0 + pl) * sizeof *row);
            memcpy(row + c0 + pl, src + c0, (size_t)(c1 - c0) * sizeof *row);
            memset(row + c1 + pl, 0, (size_t)(p->row - c1 - pl) * sizeof *row);
            if (s > 1) dw_phases(lin, s, p->phase, dst, avx512);
        }
    }
}

/* Everything one output row pair needs. */
typedef struct dw_rowpair {
    const dw_plan *p;
    const float *src; /* the padded inputs of the first row's first tap row */
    const float *w;
    float bias;
    float *y0, *y1;         /* y1 NULL: one row */
    const float *r0, *r1;   /* residual rows or NULL */
    int64_t out_w;
    bool clamp;
    float lo, hi;
} dw_rowpair;

/* Outputs [ox, ox + 16 * nv) of the row pair (AVX-512); nv and two are constants where inlined. */
__attribute__((target("avx512f"), always_inline)) static inline void dw_block512(const dw_rowpair *rp, int64_t ox, int nv,
                                                                               bool two) {
    const dw_plan *p = rp->p;
    __m512 a0[4], a1[4];
    for (int v = 0; v < nv; v++) a0[v] = a1[v] = _mm512_set1_ps(rp->bias);
    for (int64_t r = 0; r < p->nrows; r++) {
        const float *s0 = rp->src + p->yoff[r] + ox, *s1 = s0 + p->pair, *w = rp->w + r * p->kw;
        for (int64_t kx = 0; kx < p->kw; kx++) {
            __m512 wv = _mm512_set1_ps(w[kx]);
            int64_t o = p->xoff[kx];
            for (int v = 0; v < nv; v++) a0[v] = _mm512_fmadd_ps(wv, _mm512_loadu_ps(s0 + o + 16 * v), a0[v]);
            if (two)
                for (int v = 0; v < nv; v++) a1[v] = _mm512_fmadd_ps(wv, _mm512_loadu_ps(s1 + o + 16 * v), a1[v]);
        }
    }
    __m512 lo = _mm512_set1_ps(rp->lo), hi = _mm512_set1_ps(rp->hi);
    for (int v = 0; v < nv; v++) {
        int64_t x0 = ox + 16 * v, left = rp->out_w - x0;
        __mmask16 m = (__mmask16)(left >= 16 ? 0xFFFF : (1u << left) - 1);
        for (int row = 0; row < (two ? 2 : 1); row++) {
            __m512 a = row ? a1[v] : a0[v];
            const float *res = row ? rp->r1 : rp->r0;
            if (res) a = _mm512_add_ps(a, _mm512_maskz_loadu_ps(m, res + x0));
            if (rp->clamp) a = _mm512_min_ps(_mm512_max_ps(a, lo), hi);
            _mm512_mask_storeu_ps((row ? rp->y1 : rp->y0) + x0, m, a);
        }
    }
}

__attribute__((target("avx512f"))) static void dw_rowpair512(const dw_rowpair *rp) {
    bool two = rp->y1 != NULL;
    for (int64_t ox = 0; ox < rp->out_w; ox += 64) {
        int nv = (int)KILN__MIN(4, (rp->out_w - ox + 15) / 16);
        switch (nv * 2 + two) {
        case 2: dw_block512(rp, ox, 1, false); break;
        case 3: dw_block512(rp, ox, 1, true); break;
        case 4: dw_block512(rp, ox, 2, false); break;
        case 5: dw_block512(rp, ox, 2, true); break;
        case 6: dw_block512(rp, ox, 3, false); break;
        case 7: dw_block512(rp, ox, 3, true); break;
        case 8: dw_block512(rp, ox, 4, false); break;
        default: dw_block512(rp, ox, 4, true); break;
        }
    }
}

/* The same with AVX2: 8 outputs per vector, partial vectors through masks. */
__attribute__((target("avx2,fma"), always_inline)) static inline void dw_block256(const dw_rowpair *rp, int64_t ox, int nv,
                                                                                bool two) {
    const dw_plan *p = rp->p;
    __m256 a0[4], a1[4];
    for (int v = 0; v < nv; v++) a0[v] = a1[v] = _mm256_set1_ps(rp->bias);
    for (int64_t r = 0; r < p->nrows; r++) {
        const float *s0 = rp->src + p->yoff[r] + ox, *s1 = s0 + p->pair, *w = rp->w + r * p->kw;
        for (int64_t kx = 0; kx < p->kw; kx++) {
            __m256 wv = _mm256_set1_ps(w[kx]);
            int64_t o = p->xoff[kx];
            for (int v = 0; v < nv; v++) a0[v] = _mm256_fmadd_ps(wv, _mm256_loadu_ps(s0 + o + 8 * v), a0[v]);
            if (two)
                for (int v = 0; v < nv; v++) a1[v] = _mm256_fmadd_ps(wv, _mm256_loadu_ps(s1 + o + 8 * v), a1[v]);
        }
    }
    __m256 lo = _mm256_set1_ps(rp->lo), hi = _mm256_set1_ps(rp->hi);
    for (int v = 0; v < nv; v++) {
        int64_t x0 = ox + 8 * v, left = rp->out_w - x0;
        __m256i m = _mm256_cmpgt_epi32(_mm256_set1_epi32((int)KILN__MIN(left, 8)),
                                       _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
        for (int row = 0; row < (two ? 2 : 1); row++) {
            __m256 a = row ? a1[v] : a0[v];
            const float *res = row ? rp->r1 : rp->r0;
            if (res) a = _mm256_add_ps(a, _mm256_maskload_ps(res + x0, m));
            if (rp->clamp) a = _mm256_min_ps(_mm256_max_ps(a, lo), hi);
            _mm256_maskstore_ps((row ? rp->y1 : rp->y0) + x0, m, a);
        }
    }
}

__attribute__((target("avx2,fma"))) static void dw_rowpair256(const dw_rowpair *rp) {
    bool two = rp->y1 != NULL;
    for (int64_t ox = 0; ox < rp->out_w; ox += 32) {
        int nv = (int)KILN__MIN(4, (rp->out_w - ox + 7) / 8);
        switch (nv * 2 + two) {
        case 2: dw_block256(rp, ox, 1, false); break;
        case 3: dw_block256(rp, ox, 1, true); break;
        case 4: dw_block256(rp, ox, 2, false); break;
        case 5: dw_block256(rp, ox, 2, true); break;
        case 6: dw_block256(rp, ox, 3, false); break;
        case 7: dw_block256(rp, ox, 3, true); break;
        case 8: dw_block256(rp, ox, 4, false); break;
        default: dw_block256(rp, ox, 4, true); break;
        }
    }
}

/* One plane through the padded copy in buf. */
static void depthwise_plane_simd(const conv_job *j, const dw_plan *p, int64_t n, int64_t c, float *buf, bool avx512) {
    const conv_geom *g = &j->g;
    dw_pad_plane(g, p, j->x + (n * g->c + c) * g->in_plane, buf, buf + p->rows_z * p->rows_y * p->row, avx512);
    float *y = j->y + (n * g->m + c) * g->out_plane;
    const float *res = j->res ? j->res + (n * g->m + c) * g->out_plane : NULL;
    int kind = j->act->kind;
    dw_rowpair rp = {.p = p, .w = j->w + c * g->kvol, .bias = j->bias ? j->bias[c] : 0.0f, .out_w = g->out[2],
                     .clamp = kind == KILN_ACT_RELU || kind == KILN_ACT_CLIP,
                     .lo = kind == KILN_ACT_CLIP ? j->act->alpha : 0.0f,
                     .hi = kind == KILN_ACT_CLIP ? j->act->beta : __builtin_inff()};
    int64_t ow = g->out[2];
    for (int64_t oz = 0; oz < g->out[0]; oz++)
        for (int64_t oy = 0; oy < g->out[1]; oy += 2) {
            int64_t o = (oz * g->out[1] + oy) * ow;
            bool two = oy + 1 < g->out[1];
            rp.src = buf + (oz * g->s[0] * p->rows_y + oy * g->s[1]) * p->row;
            rp.y0 = y + o;
            rp.y1 = two ? y + o + ow : NULL;
            rp.r0 = res ? res + o : NULL;
            rp.r1 = res && two ? res + o + ow : NULL;
            if (avx512)
                dw_rowpair512(&rp);
            else
                dw_rowpair256(&rp);
            if (kind >= 0 && !rp.clamp) kiln__apply_act_f32(j->act, y + o, two ? 2 * ow : ow);
        }
}

typedef struct dw_job {
    const conv_job *j;
    dw_plan plan;
    float *scratch; /* slots blocks of dw_scratch_floats */
    int64_t slots;
    bool avx512;
} dw_job;

static void dw_slot_range(void *arg, int64_t begin, int64_t end) {
    const dw_job *d = arg;
    const conv_geom *g = &d->j->g;
    for (int64_t s = begin; s < end; s++) {
        float *buf = d->scratch + s * dw_scratch_floats(&d->plan);
        for (int64_t t = s; t < g->n * g->c; t += d->slots) depthwise_plane_simd(d->j, &d->plan, t / g->c, t % g->c, buf, d->avx512);
    }
}

static void depthwise_range(void *arg, int64_t begin, int64_t end) {
    const conv_job *j = arg;
    for (int64_t t = begin; t < end; t++) depthwise_plane(j, t / j->g.c, t % j->g.c);
}

static kiln_status depthwise(conv_job *j, kiln__cpu_ctx *ctx) {
    const conv_geom *g = &j->g;
    if (kiln__cpu_simd() == KILN__SIMD_NONE || g->k[0] * g->k[1] > DW_MAX_ROWS || g->k[2] > DW_MAX_TAPS) {
        kiln__parallel_for(ctx->pool, g->n * g->c, 1, depthwise_range, j);
        return KILN_OK;
    }
    dw_job d = {.j = j, .avx512 = kiln__cpu_simd() == KILN__SIMD_AVX512};
    dw_plan_init(g, &d.plan);
    d.slots = KILN__MIN(kiln__pool_threads(ctx->pool), g->n * g->c);
    size_t bytes;
    if (!kiln__mul_size((size_t)d.slots * (size_t)dw_scratch_floats(&d.plan), sizeof(float), &bytes))
        return kiln__error(KILN_OUT_OF_MEMORY, "depthwise convolution scratch size overflows");
    d.scratch = kiln__malloc_aligned(ctx->alloc, bytes, 64);
    if (!d.scratch) return KILN_OUT_OF_MEMORY;
    if (d.slots > 1)
        kiln__parallel_for(ctx->pool, d.slots, 1, dw_slot_range, &d);
    else
        dw_slot_range(&d, 0, 1);
    kiln__free(ctx->alloc, d.scratch);
    return KILN_OK;
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
    if (j->wpack)
        return kiln__sgemm_packed(pool, alloc, g->mg, g->out_plane, kdim, j->w + grp * g->mg * kdim, kdim,
                                  j->wpack + grp * kiln__sgemm_packed_a_floats(g->mg, kdim), b, g->out_plane, 0.0f,
                                  j->y + first * g->out_plane, g->out_plane, &ep);
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

/* The context's cache block of packed weights: a header, then the packed floats at offset 64. */
typedef struct wpack_header {
    const void *src; /* the constant weights they came from */
    int64_t m, kdim, groups;
} wpack_header;
#define WPACK_OFFSET 64

/* Constant weights are packed for the GEMM on a context's first run and kept in its layer slot
 * (the GEMM would otherwise repack them for every tile). NULL when they cannot be cached. */
static const float *cached_wpack(const kiln_layer *layer, const void *w_src, const conv_job *j, kiln__cpu_ctx *ctx) {
    const conv_geom *g = &j->g;
    if (!ctx->cache || kiln__cpu_simd() == KILN__SIMD_NONE) return NULL;
    const kiln_tensor *wt = layer->inputs[1];
    if (!wt || !wt->producer || wt->producer->type != KILN_LAYER_CONSTANT) return NULL;
    int64_t kdim = g->cg * g->kvol, per_group = kiln__sgemm_packed_a_floats(g->mg, kdim);
    wpack_header *h = *ctx->cache;
    if (h && h->src == w_src && h->m == g->m && h->kdim == kdim && h->groups == g->groups)
        return (const float *)((const char *)h + WPACK_OFFSET);
    kiln__free(ctx->alloc, h);
    *ctx->cache = NULL;
    size_t bytes;
    if (!kiln__mul_size((size_t)(per_group * g->groups), sizeof(float), &bytes) || bytes > SIZE_MAX - WPACK_OFFSET)
        return NULL;
    h = kiln__malloc_aligned(ctx->alloc, bytes + WPACK_OFFSET, 64);
    if (!h) return NULL; /* runs unpacked */
    *h = (wpack_header){w_src, g->m, kdim, g->groups};
    float *dst = (float *)((char *)h + WPACK_OFFSET);
    for (int64_t grp = 0; grp < g->groups; grp++)
        kiln__sgemm_pack_a(g->mg, kdim, j->w + grp * g->mg * kdim, kdim, dst + grp * per_group);
    *ctx->cache = h;
    return dst;
}

static kiln_status conv_f32(const kiln_layer *layer, const void *w_src, conv_job *j, kiln__cpu_ctx *ctx) {
    const conv_geom *g = &j->g;
    if (g->groups == g->c && g->m == g->c) return depthwise(j, ctx);
    j->wpack = cached_wpack(layer, w_src, j, ctx);
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
                    y[o] = j->act->kind >= 0 ? kiln__conv_act_f64(j->act, acc) : acc;
                }
    }
}

kiln_status kiln__cpu_conv(const kiln_layer *layer, const kiln__value *in, kiln__value *out, kiln__cpu_ctx *ctx) {
    const kiln__conv_params *p = &layer->p.conv;
    conv_geom g;
    kiln__conv_geom_init(layer, in, out, &g);
    if (g.n * g.m * g.out_plane == 0) return KILN_OK;
    if (g.out_plane > INT_MAX || g.cg * g.kvol > INT_MAX || g.mg > INT_MAX)
        return kiln__layer_error(layer, KILN_UNSUPPORTED, "the GEMM dims exceed the BLAS int range");
    if (in[0].dtype == KILN_FLOAT64) {
        const kiln__value *bias = kiln__conv_optional(layer, in, 2), *res = kiln__conv_optional(layer, in, 3);
        conv_job64 j = {g, in[0].data, in[1].data, bias ? bias->data : NULL, res ? res->data : NULL, out[0].data,
                        &p->act};
        kiln__parallel_for(ctx->pool, g.n * g.m, 1, conv64_range, &j);
        return KILN_OK;
    }
    /* float16/bfloat16 run through float32 copies. */
    kiln__conv_f32 f;
    kiln_status st = kiln__conv_f32_begin(layer, in, out, &g, ctx, &f);
    if (st != KILN_OK) return st;
    conv_job j = {.g = g, .x = f.x, .w = f.w, .bias = f.bias, .res = f.res, .y = f.y, .act = &p->act};
    return kiln__conv_f32_end(ctx, out, conv_f32(layer, in[1].data, &j, ctx), &f);
}
