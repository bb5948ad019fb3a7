/* CPU convolution: kiln's sgemm per (image, group) with the bias / residual / activation epilogue
 * fused into the GEMM's stores, over the input itself for 1x1 stride-1 convolutions, over an
 * im2col matrix the GEMM packs straight from the input with SIMD (an im2col scratch matrix
 * without), Winograd F(4x4, 3x3) for 3x3 stride-1 ones (conv_winograd.c), with AVX-512 direct
 * over a padded copy of the input (the row GEMM or the channel-vector GEMM), the GEMM transposed
 * for small planes on AVX2, direct SIMD kernels for depthwise convolutions (along rows, or over
 * blocks of 16 channels on small planes), float16/bfloat16 through float32, and a plain loop for
 * float64. 1-D and 2-D convolutions run as 3-D ones with leading unit dims. */
#include "conv_common.h"
#include "conv_winograd.h"
#include "gemm.h"
#include "vmath.h"

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
    bool implicit;   /* the GEMM packs the col matrix from the input itself (SIMD; wpack set) */
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

/* The vector depthwise path reads the input planes in place: for each output row pair, every
 * tap row (kz, ky) points at its input row, or at a row of zeros where it falls in the padding,
 * and tap kx's loads are masked to the outputs whose input column lies inside the row, so the
 * borders need neither a padded copy nor scalar code; vectors of outputs inside [ilo, ihi) load
 * without masks. At stride 2 a load covers twice the width and keeps the even lanes. Bias,
 * residual and relu/clip are applied before the stores. */
typedef struct dw_job {
    const conv_job *j;
    const float *zeros;        /* in[2] zeros: the tap rows that fall in the padding */
    int64_t s;                 /* the stride along x: 1 or 2 */
    int64_t nrows, kw;         /* (kz, ky) tap rows, kx taps */
    int64_t xoff[DW_MAX_TAPS]; /* tap kx: its input column minus ox * s */
    int64_t lo[DW_MAX_TAPS], hi[DW_MAX_TAPS]; /* tap kx: the outputs whose column is inside the row */
    int64_t ilo, ihi;          /* the outputs whose taps all lie inside the row */
    bool avx512;
} dw_job;

/* Everything one output row pair needs. */
typedef struct dw_rowpair {
    const dw_job *d;
    const float *src0[DW_MAX_ROWS], *src1[DW_MAX_ROWS]; /* tap row r's input row, per output row */
    const float *w;
    float bias;
    float *y0, *y1;       /* y1 NULL: one row */
    const float *r0, *r1; /* residual rows or NULL */
    int64_t out_w;
    bool clamp;
    float lo, hi;
} dw_rowpair;

/* Bits [a, b) of a 32-bit mask, the bounds clamped to [0, 32]. */
static inline uint32_t bit_range(int64_t a, int64_t b) {
    a = KILN__MAX(a, 0);
    b = KILN__MIN(b, 32);
    if (b <= a) return 0;
    return (b >= 32 ? 0xFFFFFFFFu : (1u << b) - 1) & ~((1u << a) - 1);
}

/* Of `lanes` outputs from x0, those tap kx reads inside the row, as a lane mask (s == 1) or as
 * the mask of the even elements of a load twice as wide (s == 2). */
static inline uint32_t dw_tap_mask(const dw_job *d, int64_t kx, int64_t x0, int64_t lanes) {
    int64_t a = KILN__MAX(d->lo[kx] - x0, 0), b = KILN__MIN(d->hi[kx] - x0, lanes);
    if (d->s == 1) return bit_range(a, b);
    return a < b ? bit_range(2 * a, 2 * b) & 0x55555555u : 0;
}

/* 16 lanes from p (lane l at p[l * s]) with mask m from dw_tap_mask; s is a constant where inlined. */
__attribute__((target("avx512f"), always_inline)) static inline __m512 load16(const float *p, uint32_t m, int64_t s) {
    if (s == 1) return m == 0xFFFF ? _mm512_loadu_ps(p) : _mm512_maskz_loadu_ps((__mmask16)m, p);
    __m512i even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    return _mm512_permutex2var_ps(_mm512_maskz_loadu_ps((__mmask16)m, p), even,
                                  _mm512_maskz_loadu_ps((__mmask16)(m >> 16), p + 16));
}

/* Outputs [ox, ox + 16 * nv) of the row pair (AVX-512), through per-tap masks when masked (else
 * all inside [ilo, ihi)); nv, two, s and masked are constants where inlined. */
__attribute__((target("avx512f"), always_inline)) static inline void dw_block512(const dw_rowpair *rp, int64_t ox, int nv,
                                                                               bool two, int64_t s, bool masked,
                                                                               int64_t kw) {
    const dw_job *d = rp->d;
    uint32_t m[4][DW_MAX_TAPS], full = s == 1 ? 0xFFFFu : 0x55555555u;
    for (int v = 0; v < (masked ? nv : 0); v++)
        for (int64_t kx = 0; kx < kw; kx++) m[v][kx] = dw_tap_mask(d, kx, ox + 16 * v, 16);
    __m512 a0[4], a1[4];
    for (int v = 0; v < nv; v++) a0[v] = a1[v] = _mm512_set1_ps(rp->bias);
    for (int64_t r = 0; r < d->nrows; r++) {
        const float *s0 = rp->src0[r] + ox * s, *s1 = rp->src1[r] + ox * s, *w = rp->w + r * kw;
        for (int64_t kx = 0; kx < kw; kx++) {
            __m512 wv = _mm512_set1_ps(w[kx]);
            int64_t o = d->xoff[kx];
            for (int v = 0; v < nv; v++) a0[v] = _mm512_fmadd_ps(wv, load16(s0 + o + 16 * v * s, masked ? m[v][kx] : full, s), a0[v]);
            if (two)
                for (int v = 0; v < nv; v++)
                    a1[v] = _mm512_fmadd_ps(wv, load16(s1 + o + 16 * v * s, masked ? m[v][kx] : full, s), a1[v]);
        }
    }
    __m512 lo = _mm512_set1_ps(rp->lo), hi = _mm512_set1_ps(rp->hi);
    for (int v = 0; v < nv; v++) {
        int64_t x0 = ox + 16 * v;
        __mmask16 sm = (__mmask16)bit_range(0, rp->out_w - x0);
        for (int row = 0; row < (two ? 2 : 1); row++) {
            __m512 a = row ? a1[v] : a0[v];
            const float *res = row ? rp->r1 : rp->r0;
            if (res) a = _mm512_add_ps(a, _mm512_maskz_loadu_ps(sm, res + x0));
            if (rp->clamp) a = _mm512_min_ps(_mm512_max_ps(a, lo), hi);
            _mm512_mask_storeu_ps((row ? rp->y1 : rp->y0) + x0, sm, a);
        }
    }
}

/* A row pair: vectors with outputs outside [ilo, ihi) one at a time through masks, the
 * others up to 4 at a time without. */
__attribute__((target("avx512f"), always_inline)) static inline void dw_rowpair512_s(const dw_rowpair *rp, int64_t s, int64_t kw) {
    const dw_job *d = rp->d;
    bool two = rp->y1 != NULL;
    for (int64_t ox = 0; ox < rp->out_w;) {
        if (ox < d->ilo || ox + 16 > d->ihi) {
            if (two)
                dw_block512(rp, ox, 1, true, s, true, kw);
            else
                dw_block512(rp, ox, 1, false, s, true, kw);
            ox += 16;
            continue;
        }
        int nv = (int)KILN__MIN(4, (d->ihi - ox) / 16);
        switch (nv * 2 + two) {
        case 2: dw_block512(rp, ox, 1, false, s, false, kw); break;
        case 3: dw_block512(rp, ox, 1, true, s, false, kw); break;
        case 4: dw_block512(rp, ox, 2, false, s, false, kw); break;
        case 5: dw_block512(rp, ox, 2, true, s, false, kw); break;
        case 6: dw_block512(rp, ox, 3, false, s, false, kw); break;
        case 7: dw_block512(rp, ox, 3, true, s, false, kw); break;
        case 8: dw_block512(rp, ox, 4, false, s, false, kw); break;
        default: dw_block512(rp, ox, 4, true, s, false, kw); break;
        }
        ox += 16 * nv;
    }
}

__attribute__((target("avx512f"))) static void dw_rowpair512(const dw_rowpair *rp) {
    /* 3 taps across (the usual kernel) with constant loops, its masks in registers. */
    bool k3 = rp->d->kw == 3;
    if (rp->d->s == 1)
        k3 ? dw_rowpair512_s(rp, 1, 3) : dw_rowpair512_s(rp, 1, rp->d->kw);
    else
        k3 ? dw_rowpair512_s(rp, 2, 3) : dw_rowpair512_s(rp, 2, rp->d->kw);
}

/* The AVX2 form of an 8-bit lane mask. */
__attribute__((target("avx2"))) static inline __m256i mask8(uint32_t bits) {
    __m256i b = _mm256_setr_epi32(1, 2, 4, 8, 16, 32, 64, 128);
    return _mm256_cmpeq_epi32(_mm256_and_si256(_mm256_set1_epi32((int)(bits & 0xFF)), b), b);
}

/* 8 lanes from p (lane l at p[l * s]) with the masks of elements [0, 8) and [8, 16), masked-out
 * lanes zero; full: all 8 lanes wanted and inside the row (the masks are ignored at stride 1). */
__attribute__((target("avx2"), always_inline)) static inline __m256 load8(const float *p, __m256i m0, __m256i m1,
                                                                         int64_t s, bool full) {
    if (s == 1) return full ? _mm256_loadu_ps(p) : _mm256_maskload_ps(p, m0);
    __m256 t = _mm256_shuffle_ps(_mm256_maskload_ps(p, m0), _mm256_maskload_ps(p + 8, m1), 0x88);
    return _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(t), 0xD8));
}

/* The same with AVX2: 8 outputs per vector. */
__attribute__((target("avx2,fma"), always_inline)) static inline void dw_block256(const dw_rowpair *rp, int64_t ox, int nv,
                                                                                bool two, int64_t s, bool masked,
                                                                               int64_t kw) {
    const dw_job *d = rp->d;
    __m256i m[4][DW_MAX_TAPS][2], full = mask8(0x55);
    for (int v = 0; v < (masked ? nv : 0); v++)
        for (int64_t kx = 0; kx < kw; kx++) {
            uint32_t bits = dw_tap_mask(d, kx, ox + 8 * v, 8);
            m[v][kx][0] = mask8(bits);
            m[v][kx][1] = mask8(bits >> 8);
        }
    __m256 a0[4], a1[4];
    for (int v = 0; v < nv; v++) a0[v] = a1[v] = _mm256_set1_ps(rp->bias);
    for (int64_t r = 0; r < d->nrows; r++) {
        const float *s0 = rp->src0[r] + ox * s, *s1 = rp->src1[r] + ox * s, *w = rp->w + r * kw;
        for (int64_t kx = 0; kx < kw; kx++) {
            __m256 wv = _mm256_set1_ps(w[kx]);
            int64_t o = d->xoff[kx];
            for (int v = 0; v < nv; v++)
                a0[v] = _mm256_fmadd_ps(wv, load8(s0 + o + 8 * v * s, masked ? m[v][kx][0] : full, masked ? m[v][kx][1] : full, s, !masked),
                                        a0[v]);
            if (two)
                for (int v = 0; v < nv; v++)
                    a1[v] = _mm256_fmadd_ps(wv, load8(s1 + o + 8 * v * s, masked ? m[v][kx][0] : full, masked ? m[v][kx][1] : full, s, !masked),
                                        a1[v]);
        }
    }
    __m256 lo = _mm256_set1_ps(rp->lo), hi = _mm256_set1_ps(rp->hi);
    for (int v = 0; v < nv; v++) {
        int64_t x0 = ox + 8 * v;
        __m256i sm = mask8(bit_range(0, rp->out_w - x0));
        for (int row = 0; row < (two ? 2 : 1); row++) {
            __m256 a = row ? a1[v] : a0[v];
            const float *res = row ? rp->r1 : rp->r0;
            if (res) a = _mm256_add_ps(a, _mm256_maskload_ps(res + x0, sm));
            if (rp->clamp) a = _mm256_min_ps(_mm256_max_ps(a, lo), hi);
            _mm256_maskstore_ps((row ? rp->y1 : rp->y0) + x0, sm, a);
        }
    }
}

__attribute__((target("avx2,fma"), always_inline)) static inline void dw_rowpair256_s(const dw_rowpair *rp, int64_t s, int64_t kw) {
    const dw_job *d = rp->d;
    bool two = rp->y1 != NULL;
    for (int64_t ox = 0; ox < rp->out_w;) {
        if (ox < d->ilo || ox + 8 > d->ihi) {
            if (two)
                dw_block256(rp, ox, 1, true, s, true, kw);
            else
                dw_block256(rp, ox, 1, false, s, true, kw);
            ox += 8;
            continue;
        }
        int nv = (int)KILN__MIN(4, (d->ihi - ox) / 8);
        switch (nv * 2 + two) {
        case 2: dw_block256(rp, ox, 1, false, s, false, kw); break;
        case 3: dw_block256(rp, ox, 1, true, s, false, kw); break;
        case 4: dw_block256(rp, ox, 2, false, s, false, kw); break;
        case 5: dw_block256(rp, ox, 2, true, s, false, kw); break;
        case 6: dw_block256(rp, ox, 3, false, s, false, kw); break;
        case 7: dw_block256(rp, ox, 3, true, s, false, kw); break;
        case 8: dw_block256(rp, ox, 4, false, s, false, kw); break;
        default: dw_block256(rp, ox, 4, true, s, false, kw); break;
        }
        ox += 8 * nv;
    }
}

__attribute__((target("avx2,fma"))) static void dw_rowpair256(const dw_rowpair *rp) {
    /* 3 taps across (the usual kernel) with constant loops, its masks in registers. */
    bool k3 = rp->d->kw == 3;
    if (rp->d->s == 1)
        k3 ? dw_rowpair256_s(rp, 1, 3) : dw_rowpair256_s(rp, 1, rp->d->kw);
    else
        k3 ? dw_rowpair256_s(rp, 2, 3) : dw_rowpair256_s(rp, 2, rp->d->kw);
}

/* Input row (iz, iy) of plane x, or the zero row where it lies in the padding. */
static const float *dw_in_row(const dw_job *d, const float *x, int64_t iz, int64_t iy) {
    const conv_geom *g = &d->j->g;
    if (iz < 0 || iz >= g->in[0] || iy < 0 || iy >= g->in[1]) return d->zeros;
    return x + (iz * g->in[1] + iy) * g->in[2];
}

static void depthwise_plane_simd(const dw_job *d, int64_t n, int64_t c) {
    const conv_job *j = d->j;
    const conv_geom *g = &j->g;
    const float *x = j->x + (n * g->c + c) * g->in_plane;
    float *y = j->y + (n * g->m + c) * g->out_plane;
    const float *res = j->res ? j->res + (n * g->m + c) * g->out_plane : NULL;
    int kind = j->act->kind;
    dw_rowpair rp = {.d = d, .w = j->w + c * g->kvol, .bias = j->bias ? j->bias[c] : 0.0f, .out_w = g->out[2],
                     .clamp = kind == KILN_ACT_RELU || kind == KILN_ACT_CLIP,
                     .lo = kind == KILN_ACT_CLIP ? j->act->alpha : 0.0f,
                     .hi = kind == KILN_ACT_CLIP ? j->act->beta : __builtin_inff()};
    int64_t ow = g->out[2];
    for (int64_t oz = 0; oz < g->out[0]; oz++)
        for (int64_t oy = 0; oy < g->out[1]; oy += 2) {
            int64_t o = (oz * g->out[1] + oy) * ow;
            bool two = oy + 1 < g->out[1];
            for (int64_t kz = 0, r = 0; kz < g->k[0]; kz++)
                for (int64_t ky = 0; ky < g->k[1]; ky++, r++) {
                    int64_t iz = oz * g->s[0] - g->pb[0] + kz * g->d[0];
                    int64_t iy = oy * g->s[1] - g->pb[1] + ky * g->d[1];
                    rp.src0[r] = dw_in_row(d, x, iz, iy);
                    rp.src1[r] = dw_in_row(d, x, iz, iy + g->s[1]);
                }
            rp.y0 = y + o;
            rp.y1 = two ? y + o + ow : NULL;
            rp.r0 = res ? res + o : NULL;
            rp.r1 = res && two ? res + o + ow : NULL;
            if (d->avx512)
                dw_rowpair512(&rp);
            else
                dw_rowpair256(&rp);
            if (kind >= 0 && !rp.clamp) kiln__apply_act_f32(j->act, y + o, two ? 2 * ow : ow);
        }
}

static void dw_simd_range(void *arg, int64_t begin, int64_t end) {
    const dw_job *d = arg;
    for (int64_t t = begin; t < end; t++) depthwise_plane_simd(d, t / d->j->g.c, t % d->j->g.c);
}

static void depthwise_range(void *arg, int64_t begin, int64_t end) {
    const conv_job *j = arg;
    for (int64_t t = begin; t < end; t++) depthwise_plane(j, t / j->g.c, t % j->g.c);
}

/* Planes (image, channel) are independent: the pool spreads them over its threads. */
/* Small planes (MobileNet's 7x7 and 14x14 with hundreds of channels): rows of 7 or 14 outputs
 * would all be masked edge vectors in the row kernels above. Each plane is copied instead into a
 * zero-padded buffer (a few hundred floats), and every output row is then full-width vectors of
 * plain loads and FMAs, one store mask for the row's end. 2-D, x-stride 1 or 2, AVX-512. */
#define DWS_MAX_IN_PLANE 1024 /* input values per channel */
#define DWS_SLACK 64          /* floats past the padded plane that full-width loads may touch */

typedef struct dws_job {
    const conv_job *j;
    int64_t ph, pw;   /* the padded plane */
    float *scratch;   /* per slot: ph * pw + DWS_SLACK floats */
    int64_t per_slot, slots;
} dws_job;

/* 2-D only: the depth axis must be trivial, padding included (a padded depth makes planes of bias). */
static bool dws_applies(const conv_geom *g) {
    return kiln__cpu_simd() == KILN__SIMD_AVX512 && g->k[0] == 1 && g->in[0] == 1 && g->out[0] == 1 &&
           g->pb[0] == 0 && g->s[2] <= 2 &&
           g->in_plane <= DWS_MAX_IN_PLANE && g->k[1] * g->k[2] <= DW_MAX_TAPS;
}

__attribute__((target("avx512f,avx2,fma"))) static void dws_plane(const dws_job *d, int64_t n, int64_t c,
                                                                  float *pad) {
    const conv_job *j = d->j;
    const conv_geom *g = &j->g;
    const float *x = j->x + (n * g->c + c) * g->in_plane, *w = j->w + c * g->kvol;
    float *y = j->y + (n * g->m + c) * g->out_plane;
    const float *res = j->res ? j->res + (n * g->m + c) * g->out_plane : NULL;
    memset(pad, 0, (size_t)(d->ph * d->pw + DWS_SLACK) * sizeof *pad);
    for (int64_t iy = 0; iy < g->in[1]; iy++)
        memcpy(pad + (iy + g->pb[1]) * d->pw + g->pb[2], x + iy * g->in[2], (size_t)g->in[2] * sizeof *x);
    int64_t ow = g->out[2], sx = g->s[2], kh = g->k[1], kw = g->k[2];
    int kind = j->act->kind;
    bool clamp = kind == KILN_ACT_RELU || kind == KILN_ACT_CLIP;
    __m512 lo = _mm512_set1_ps(kind == KILN_ACT_CLIP ? j->act->alpha : 0.0f);
    __m512 hi = _mm512_set1_ps(kind == KILN_ACT_CLIP ? j->act->beta : __builtin_inff());
    const __m512i evens = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    for (int64_t oy = 0; oy < g->out[1]; oy++) {
        float *yr = y + oy * ow;
        for (int64_t ox = 0; ox < ow; ox += 16) {
            __mmask16 m = (__mmask16)(ow - ox >= 16 ? 0xFFFF : (1u << (ow - ox)) - 1);
            __m512 acc = _mm512_set1_ps(j->bias ? j->bias[c] : 0.0f);
            for (int64_t ky = 0; ky < kh; ky++) {
                const float *row = pad + (oy * g->s[1] + ky * g->d[1]) * d->pw + ox * sx;
                for (int64_t kx = 0; kx < kw; kx++) {
                    const float *p = row + kx * g->d[2];
                    __m512 v = sx == 1 ? _mm512_loadu_ps(p)
                                       : _mm512_permutex2var_ps(_mm512_loadu_ps(p), evens, _mm512_loadu_ps(p + 16));
                    acc = _mm512_fmadd_ps(_mm512_set1_ps(w[ky * kw + kx]), v, acc);
                }
            }
            if (res) acc = _mm512_add_ps(acc, _mm512_maskz_loadu_ps(m, res + oy * ow + ox));
            if (clamp) acc = _mm512_min_ps(_mm512_max_ps(acc, lo), hi);
            _mm512_mask_storeu_ps(yr + ox, m, acc);
        }
    }
    if (kind >= 0 && !clamp) kiln__apply_act_f32(j->act, y, g->out_plane);
}

static void dws_range(void *arg, int64_t begin, int64_t end) {
    const dws_job *d = arg;
    for (int64_t s = begin; s < end; s++) {
        float *pad = d->scratch + s * d->per_slot;
        for (int64_t t = s; t < d->j->g.n * d->j->g.c; t += d->slots) dws_plane(d, t / d->j->g.c, t % d->j->g.c, pad);
    }
}

static kiln_status depthwise_small(conv_job *j, kiln__cpu_ctx *ctx) {
    const conv_geom *g = &j->g;
    /* Rows and columns the outputs reach (full-width loads at stride 2 read up to 32 more). */
    int64_t reach_y = (g->out[1] - 1) * g->s[1] + (g->k[1] - 1) * g->d[1] + 1;
    int64_t reach_x = ((g->out[2] + 15) / 16 * 16 - 1) * g->s[2] + (g->k[2] - 1) * g->d[2] + 1 + 16;
    dws_job d = {.j = j, .ph = KILN__MAX(reach_y, g->in[1] + g->pb[1]), .pw = KILN__MAX(reach_x, g->in[2] + g->pb[2])};
    d.per_slot = (d.ph * d.pw + DWS_SLACK + 15) / 16 * 16;
    d.slots = KILN__MIN(kiln__pool_threads(ctx->pool), g->n * g->c);
    d.scratch = kiln__malloc_aligned(ctx->alloc, (size_t)(d.slots * d.per_slot) * sizeof(float), 64);
    if (!d.scratch) return KILN_OUT_OF_MEMORY;
    if (d.slots > 1)
        kiln__parallel_for(ctx->pool, d.slots, 1, dws_range, &d);
    else
        dws_range(&d, 0, 1);
    kiln__free(ctx->alloc, d.scratch);
    return KILN_OK;
}

/* Depthwise over blocks of 16 channels (AVX-512): on small planes a vector along a row wastes most
 * of its lanes (9 of 16 on 7x7 outputs). Here a block's inputs are transposed into a zero-padded
 * position-major scratch [hp][wp][16], each output position is then one vector of the block's 16
 * channels (one FMA per tap, the taps' weights held in registers), and 16 positions at a time
 * are transposed back into the output planes. On large planes the transposes cost about what
 * the row vectors waste, so those stay on the row path. */
#define DWC_MAX_PLANE 784
#define DWC_BLOCK 16

typedef struct dwc_job {
    const conv_job *j;
    int64_t hp, wp;     /* the padded input the outputs reach */
    float *scratch;     /* per slot: hp * wp * 16 floats */
    int64_t per_slot, slots, blocks;
} dwc_job;

static bool dwc_applies(const conv_geom *g) {
    return kiln__cpu_simd() == KILN__SIMD_AVX512 && g->k[0] == 1 && g->in[0] == 1 && g->out[0] == 1 &&
           g->pb[0] == 0 && g->out_plane <= DWC_MAX_PLANE && g->kvol <= DW_MAX_TAPS;
}

/* What a block's outputs need besides the sums: its bias as the sums' start, its residual planes,
 * and the activation (a clamp in registers, others over the planes afterwards). */
typedef struct dwc_out {
    __m512 bias, lo, hi;
    bool clamp;
    const float *res; /* the block's first residual plane, or NULL */
    float *y;         /* its first output plane */
    int nc;           /* its channels */
} dwc_out;

/* The outputs of one block: 16 positions at a time, each the sum over kv taps (kv constant for
 * 3x3 kernels, so their weights stay in registers), transposed into the output planes. */
__attribute__((target("avx512f,avx2,fma"), always_inline)) static inline void dwc_outputs(
    const dwc_job *d, const float *xs, const __m512 *wv, const int64_t *toff, int kv, const dwc_out *o) {
    const conv_geom *g = &d->j->g;
    int64_t wo = g->out[2], plane = g->out_plane, step_x = g->s[2] * DWC_BLOCK;
    int64_t step_row = g->s[1] * d->wp * DWC_BLOCK - wo * step_x; /* from past a row's end to the next row */
    const float *base = xs;
    int64_t ox = 0;
    for (int64_t pos0 = 0; pos0 < plane; pos0 += 16) {
        int cnt = (int)KILN__MIN(16, plane - pos0);
        __m512 r[16];
        for (int p = 0; p < 16; p++) {
            r[p] = o->bias;
            if (p >= cnt) continue;
            for (int t = 0; t < kv; t++) r[p] = _mm512_fmadd_ps(wv[t], _mm512_loadu_ps(base + toff[t]), r[p]);
            base += step_x;
            if (++ox == wo) {
                ox = 0;
                base += step_row;
            }
        }
        kiln__vm_transpose16(r);
        __mmask16 keep = (__mmask16)((1u << cnt) - 1);
        for (int c = 0; c < o->nc; c++) {
            __m512 v = r[c];
            if (o->res) v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(keep, o->res + c * plane + pos0));
            if (o->clamp) v = _mm512_min_ps(_mm512_max_ps(v, o->lo), o->hi);
            _mm512_mask_storeu_ps(o->y + c * plane + pos0, keep, v);
        }
    }
}

__attribute__((target("avx512f,avx2,fma"))) static void dwc_outputs_3x3(const dwc_job *d, const float *xs,
                                                                        const __m512 *wv, const int64_t *toff,
                                                                        const dwc_out *o) {
    dwc_outputs(d, xs, wv, toff, 9, o);
}

__attribute__((target("avx512f,avx2,fma"))) static void dwc_outputs_any(const dwc_job *d, const float *xs,
                                                                        const __m512 *wv, const int64_t *toff,
                                                                        const dwc_out *o) {
    dwc_outputs(d, xs, wv, toff, (int)d->j->g.kvol, o);
}

/* Channels [c0, c0 + 16) of image n. */
__attribute__((target("avx512f,avx2,fma"))) static void dwc_block(const dwc_job *d, int64_t n, int64_t c0, float *xs) {
    const conv_job *j = d->j;
    const conv_geom *g = &j->g;
    int nc = (int)KILN__MIN(DWC_BLOCK, g->c - c0);
    const float *x = j->x + (n * g->c + c0) * g->in_plane;
    /* Only the padding is zeroed: the scratch is as large as the block's input. */
    int64_t cols = KILN__MAX(0, KILN__MIN(g->in[2], d->wp - g->pb[2])); /* input columns the outputs reach */
    int64_t row0 = KILN__MIN(g->pb[1], d->hp), row1 = KILN__MIN(g->pb[1] + g->in[1], d->hp);
    int64_t col0 = KILN__MIN(g->pb[2], d->wp), col1 = col0 + cols;
    size_t lane_bytes = DWC_BLOCK * sizeof *xs;
    memset(xs, 0, (size_t)(row0 * d->wp) * lane_bytes);
    memset(xs + row1 * d->wp * DWC_BLOCK, 0, (size_t)((d->hp - row1) * d->wp) * lane_bytes);
    for (int64_t ty = row0; ty < row1; ty++) {
        memset(xs + ty * d->wp * DWC_BLOCK, 0, (size_t)col0 * lane_bytes);
        memset(xs + (ty * d->wp + col1) * DWC_BLOCK, 0, (size_t)(d->wp - col1) * lane_bytes);
    }
    for (int64_t iy = 0; iy < g->in[1] && iy + g->pb[1] < d->hp; iy++) {
        float *dst = xs + ((iy + g->pb[1]) * d->wp + g->pb[2]) * DWC_BLOCK;
        for (int64_t ix0 = 0; ix0 < cols; ix0 += 16) {
            int cnt = (int)KILN__MIN(16, cols - ix0);
            __mmask16 keep = (__mmask16)((1u << cnt) - 1);
            __m512 r[16];
            for (int c = 0; c < 16; c++)
                r[c] = c < nc ? _mm512_maskz_loadu_ps(keep, x + c * g->in_plane + iy * g->in[2] + ix0)
                              : _mm512_setzero_ps();
            kiln__vm_transpose16(r);
            for (int p = 0; p < cnt; p++) _mm512_storeu_ps(dst + (ix0 + p) * DWC_BLOCK, r[p]);
        }
    }
    __m512 wv[DW_MAX_TAPS];
    int64_t toff[DW_MAX_TAPS];
    for (int64_t t = 0; t < g->kvol; t++) {
        float w16[DWC_BLOCK] = {0};
        for (int c = 0; c < nc; c++) w16[c] = j->w[(c0 + c) * g->kvol + t];
        wv[t] = _mm512_loadu_ps(w16);
        toff[t] = (t / g->k[2] * g->d[1] * d->wp + t % g->k[2] * g->d[2]) * DWC_BLOCK;
    }
    int kind = j->act->kind;
    dwc_out o = {.clamp = kind == KILN_ACT_RELU || kind == KILN_ACT_CLIP, .nc = nc,
                 .y = j->y + (n * g->m + c0) * g->out_plane,
                 .res = j->res ? j->res + (n * g->m + c0) * g->out_plane : NULL};
    float b16[DWC_BLOCK] = {0};
    for (int c = 0; c < nc && j->bias; c++) b16[c] = j->bias[c0 + c];
    o.bias = _mm512_loadu_ps(b16);
    o.lo = _mm512_set1_ps(kind == KILN_ACT_CLIP ? j->act->alpha : 0.0f);
    o.hi = _mm512_set1_ps(kind == KILN_ACT_CLIP ? j->act->beta : __builtin_inff());
    if (g->kvol == 9)
        dwc_outputs_3x3(d, xs, wv, toff, &o);
    else
        dwc_outputs_any(d, xs, wv, toff, &o);
    if (kind >= 0 && !o.clamp)
        for (int c = 0; c < nc; c++) kiln__apply_act_f32(j->act, o.y + c * g->out_plane, g->out_plane);
}

static void dwc_range(void *arg, int64_t begin, int64_t end) {
    const dwc_job *d = arg;
    int64_t tasks = d->j->g.n * d->blocks;
    for (int64_t s = begin; s < end; s++)
        for (int64_t t = s; t < tasks; t += d->slots)
            dwc_block(d, t / d->blocks, t % d->blocks * DWC_BLOCK, d->scratch + s * d->per_slot);
}

static kiln_status depthwise_blocked(conv_job *j, kiln__cpu_ctx *ctx) {
    const conv_geom *g = &j->g;
    dwc_job d = {.j = j, .hp = (g->out[1] - 1) * g->s[1] + (g->k[1] - 1) * g->d[1] + 1,
                 .wp = (g->out[2] - 1) * g->s[2] + (g->k[2] - 1) * g->d[2] + 1, .blocks = (g->c + 15) / 16};
    d.per_slot = d.hp * d.wp * DWC_BLOCK;
    d.slots = KILN__MIN(kiln__pool_threads(ctx->pool), g->n * d.blocks);
    size_t bytes;
    if (!kiln__mul_size((size_t)(d.slots * d.per_slot), sizeof(float), &bytes))
        return kiln__error(KILN_OUT_OF_MEMORY, "depthwise scratch size overflows");
    d.scratch = kiln__malloc_aligned(ctx->alloc, bytes, 64);
    if (!d.scratch) return KILN_OUT_OF_MEMORY;
    if (d.slots > 1)
        kiln__parallel_for(ctx->pool, d.slots, 1, dwc_range, &d);
    else
        dwc_range(&d, 0, 1);
    kiln__free(ctx->alloc, d.scratch);
    return KILN_OK;
}

static kiln_status depthwise(conv_job *j, kiln__cpu_ctx *ctx) {
    const conv_geom *g = &j->g;
    if (dwc_applies(g)) return depthwise_blocked(j, ctx);
    if (dws_applies(g)) return depthwise_small(j, ctx);
    if (kiln__cpu_simd() == KILN__SIMD_NONE || g->k[0] * g->k[1] > DW_MAX_ROWS || g->k[2] > DW_MAX_TAPS ||
        g->s[2] > 2) {
        kiln__parallel_for(ctx->pool, g->n * g->c, 1, depthwise_range, j);
        return KILN_OK;
    }
    dw_job d = {.j = j, .s = g->s[2], .nrows = g->k[0] * g->k[1], .kw = g->k[2],
                .avx512 = kiln__cpu_simd() == KILN__SIMD_AVX512};
    d.ilo = 0;
    d.ihi = g->out[2];
    for (int64_t kx = 0; kx < g->k[2]; kx++) {
        d.xoff[kx] = kx * g->d[2] - g->pb[2];
        kiln__conv_valid_range(d.xoff[kx], g->s[2], g->in[2], g->out[2], &d.lo[kx], &d.hi[kx]);
        d.ilo = KILN__MAX(d.ilo, d.lo[kx]);
        d.ihi = KILN__MIN(d.ihi, d.hi[kx]);
    }
    float *zeros = kiln__calloc(ctx->alloc, (size_t)g->in[2], sizeof(float));
    if (!zeros) return KILN_OUT_OF_MEMORY;
    d.zeros = zeros;
    kiln__parallel_for(ctx->pool, g->n * g->c, 1, dw_simd_range, &d);
    kiln__free(ctx->alloc, zeros);
    return KILN_OK;
}

/* ---------------------------------------------------------------- implicit im2col */

/* With SIMD the GEMM packs the col matrix of one (image, group) straight from its input through
 * kiln__sgemm_packed_src, one panel of nr columns (output positions) at a time, so no col matrix
 * is written and read again. K rows are decoded in chunks; a panel's lanes split into segments
 * lying on one output row, and a K row reads each segment with one masked load per vector (two
 * and a lane shuffle at stride 2), lanes outside the input row or the panel left zero. Other
 * strides go lane by lane. */
#define COL_ROWS 64   /* K rows decoded at once */
#define COL_MAX_NR 32 /* the widest panel (AVX-512) */

typedef struct col_src {
    const conv_geom *g;
    const float *x; /* the group's input */
} col_src;

/* K row r = (c, kz, ky, kx) of the col matrix. */
typedef struct col_row {
    int64_t coff;             /* channel c's plane offset */
    int64_t zoff, yoff, xoff; /* input index minus output index * stride, per dim */
    int64_t lo, hi;           /* the output x whose input x lies inside the row */
} col_row;

/* Lanes [a, b) of a panel that lie on one output row. */
typedef struct col_seg {
    int64_t a, b;
    int64_t ox0;    /* lane a's output x */
    int64_t zs, ys; /* the row's oz * s[0], oy * s[1] */
} col_seg;

static void col_rows(const conv_geom *g, int64_t r0, int64_t count, col_row *rw) {
    for (int64_t i = 0; i < count; i++) {
        int64_t r = r0 + i, kr = r % g->kvol;
        int64_t kz = kr / (g->k[1] * g->k[2]), ky = kr / g->k[2] % g->k[1], kx = kr % g->k[2];
        col_row *w = &rw[i];
        w->coff = r / g->kvol * g->in_plane;
        w->zoff = kz * g->d[0] - g->pb[0];
        w->yoff = ky * g->d[1] - g->pb[1];
        w->xoff = kx * g->d[2] - g->pb[2];
        kiln__conv_valid_range(w->xoff, g->s[2], g->in[2], g->out[2], &w->lo, &w->hi);
    }
}

/* Splits the lanes [0, w) of a panel starting at output position o (w <= COL_MAX_NR) into
 * segments; returns their count. */
static int col_segments(const conv_geom *g, int64_t o, int64_t w, col_seg *seg) {
    int nseg = 0;
    for (int64_t l = 0; l < w;) {
        int64_t p = o + l, ox = p % g->out[2], row = p / g->out[2];
        int64_t len = KILN__MIN(w - l, g->out[2] - ox);
        seg[nseg++] = (col_seg){l, l + len, ox, row / g->out[1] * g->s[0], row % g->out[1] * g->s[1]};
        l += len;
    }
    return nseg;
}

/* What K row rw reads for segment sg: the lanes [*la, *lb) inside the input, and the address of
 * lane 0 (lane l reads base[l * s[2]]); NULL when the segment reads only padding. */
static inline const float *col_seg_src(const col_src *cs, const col_row *rw, const col_seg *sg, int64_t *la,
                                       int64_t *lb) {
    const conv_geom *g = cs->g;
    int64_t iz = sg->zs + rw->zoff, iy = sg->ys + rw->yoff;
    if (iz < 0 || iz >= g->in[0] || iy < 0 || iy >= g->in[1]) return NULL;
    *la = sg->a + KILN__MAX(rw->lo - sg->ox0, 0);
    *lb = sg->a + KILN__MIN(rw->hi - sg->ox0, sg->b - sg->a);
    if (*la >= *lb) return NULL;
    return cs->x + rw->coff + (iz * g->in[1] + iy) * g->in[2] + rw->xoff + (sg->ox0 - sg->a) * g->s[2];
}

/* nrows K rows of one 32-lane panel (AVX-512), row i at dst + 32 i; s[2] is 1 or 2. */
__attribute__((target("avx512f"))) static void col_panel512(const col_src *cs, const col_row *rw, int64_t nrows,
                                                            const col_seg *seg, int nseg, float *dst) {
    int64_t s = cs->g->s[2];
    for (int64_t i = 0; i < nrows; i++, dst += 32) {
        __m512 v0 = _mm512_setzero_ps(), v1 = v0;
        for (int t = 0; t < nseg; t++) {
            int64_t la, lb;
            const float *base = col_seg_src(cs, &rw[i], &seg[t], &la, &lb);
            if (!base) continue;
            for (int h = 0; h < 2; h++) {
                int64_t a = KILN__MAX(la - 16 * h, 0), b = KILN__MIN(lb - 16 * h, 16);
                if (a >= b) continue;
                const float *p = base + 16 * h * s;
                __mmask16 m = (__mmask16)bit_range(a, b);
                __m512 x = s == 1 ? _mm512_maskz_loadu_ps(m, p) : load16(p, bit_range(2 * a, 2 * b) & 0x55555555u, 2);
                if (h)
                    v1 = _mm512_mask_mov_ps(v1, m, x);
                else
                    v0 = _mm512_mask_mov_ps(v0, m, x);
            }
        }
        _mm512_storeu_ps(dst, v0);
        _mm512_storeu_ps(dst + 16, v1);
    }
}

/* The same for a 16-lane panel (AVX2); masked-out lanes load as zeros, so segments combine by or. */
__attribute__((target("avx2,fma"))) static void col_panel256(const col_src *cs, const col_row *rw, int64_t nrows,
                                                             const col_seg *seg, int nseg, float *dst) {
    int64_t s = cs->g->s[2];
    for (int64_t i = 0; i < nrows; i++, dst += 16) {
        __m256 v0 = _mm256_setzero_ps(), v1 = v0;
        for (int t = 0; t < nseg; t++) {
            int64_t la, lb;
            const float *base = col_seg_src(cs, &rw[i], &seg[t], &la, &lb);
            if (!base) continue;
            for (int h = 0; h < 2; h++) {
                int64_t a = KILN__MAX(la - 8 * h, 0), b = KILN__MIN(lb - 8 * h, 8);
                if (a >= b) continue;
                const float *p = base + 8 * h * s;
                uint32_t bits = s == 1 ? bit_range(a, b) : bit_range(2 * a, 2 * b) & 0x5555u;
                __m256 x = load8(p, mask8(bits), mask8(bits >> 8), s, false);
                if (h)
                    v1 = _mm256_or_ps(v1, x);
                else
                    v0 = _mm256_or_ps(v0, x);
            }
        }
        _mm256_storeu_ps(dst, v0);
        _mm256_storeu_ps(dst + 8, v1);
    }
}

/* Any stride and panel width, lane by lane: the w lanes from output position o, zero-padded to nr. */
static void col_panel_any(const col_src *cs, const col_row *rw, int64_t nrows, int64_t o, int64_t w, int64_t nr,
                          float *dst) {
    const conv_geom *g = cs->g;
    for (int64_t i = 0; i < nrows; i++, dst += nr) {
        for (int64_t l = 0; l < nr; l++) {
            int64_t p = o + l, ox = p % g->out[2], row = p / g->out[2];
            int64_t iz = row / g->out[1] * g->s[0] + rw[i].zoff, iy = row % g->out[1] * g->s[1] + rw[i].yoff;
            int64_t ix = ox * g->s[2] + rw[i].xoff;
            bool inside = l < w && iz >= 0 && iz < g->in[0] && iy >= 0 && iy < g->in[1] && ix >= 0 && ix < g->in[2];
            dst[l] = inside ? cs->x[rw[i].coff + (iz * g->in[1] + iy) * g->in[2] + ix] : 0.0f;
        }
    }
}

/* kiln__gemm_pack_b_fn over the col matrix of arg (a col_src). */
static void col_pack(const void *arg, int64_t p0, int64_t kc, int64_t j0, int64_t cols, int64_t nr, float *dst) {
    const col_src *cs = arg;
    const conv_geom *g = cs->g;
    bool vec = g->s[2] <= 2 && (nr == 16 || nr == COL_MAX_NR);
    col_row rw[COL_ROWS];
    col_seg seg[COL_MAX_NR];
    for (int64_t r0 = 0; r0 < kc; r0 += COL_ROWS) {
        int64_t nrows = KILN__MIN(COL_ROWS, kc - r0);
        col_rows(g, p0 + r0, nrows, rw);
        for (int64_t q = 0; q < cols; q += nr) {
            float *pd = dst + q * kc + r0 * nr; /* panel q / nr, row r0 */
            int64_t w = KILN__MIN(nr, cols - q);
            if (!vec) {
                col_panel_any(cs, rw, nrows, j0 + q, w, nr, pd);
                continue;
            }
            int nseg = col_segments(g, j0 + q, w, seg);
            if (nr == 16)
                col_panel256(cs, rw, nrows, seg, nseg, pd);
            else
                col_panel512(cs, rw, nrows, seg, nseg, pd);
        }
    }
}

/* y_g[mg, plane] = w_g[mg, cg*kvol] x col + epilogue for image n, group grp: col is x itself for
 * pointwise convolutions, packed from x by the GEMM when implicit, else the im2col matrix in col. */
static kiln_status group_gemm(const conv_job *j, int64_t n, int64_t grp, const float *col, kiln__pool *pool,
                              const kiln__alloc *alloc) {
    const conv_geom *g = &j->g;
    int64_t kdim = g->cg * g->kvol, first = n * g->m + grp * g->mg;
    const float *xg = j->x + (n * g->c + grp * g->cg) * g->in_plane;
    const float *b = j->pointwise ? xg : col;
    const float *wpack = j->wpack ? j->wpack + grp * kiln__sgemm_packed_a_floats(g->mg, kdim) : NULL;
    float *y = j->y + first * g->out_plane;
    kiln__gemm_epilogue ep = {j->bias ? j->bias + grp * g->mg : NULL, j->res ? j->res + first * g->out_plane : NULL,
                              g->out_plane, j->act};
    if (j->implicit) {
        col_src cs = {g, xg};
        return kiln__sgemm_packed_src(pool, alloc, g->mg, g->out_plane, kdim, wpack, col_pack, &cs, 0.0f, y,
                                      g->out_plane, &ep);
    }
    if (wpack)
        return kiln__sgemm_packed(pool, alloc, g->mg, g->out_plane, kdim, j->w + grp * g->mg * kdim, kdim, wpack, b,
                                  g->out_plane, 0.0f, y, g->out_plane, &ep);
    return kiln__sgemm(pool, alloc, false, false, g->mg, g->out_plane, kdim, 1.0f, j->w + grp * g->mg * kdim, kdim, b,
                       g->out_plane, 0.0f, y, g->out_plane, &ep);
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
        float *col = j->col ? j->col + s * j->col_size : NULL;
        for (int64_t t = s; t < tasks; t += j->slots) {
            int64_t n = t / g->groups, grp = t % g->groups;
            if (col) im2col(g, j->x + (n * g->c + grp * g->cg) * g->in_plane, col, 0, g->cg * g->kvol);
            kiln_status st = group_gemm(j, n, grp, col, NULL, sa->alloc);
            if (st != KILN_OK) atomic_store(&j->status, st);
        }
    }
}

static void im2col_range(void *arg, int64_t begin, int64_t end) {
    const conv_job *j = arg;
    im2col(&j->g, j->xg, j->col, begin, end);
}

/* How the weights are packed: A panels of the row GEMM, W^T as B panels (narrow planes), or the
 * channel-vector GEMM's panels (one group). */
enum { WPACK_A, WPACK_BT, WPACK_CV };

static int64_t wpack_floats(const conv_geom *g, int layout) {
    int64_t kdim = g->cg * g->kvol;
    return layout == WPACK_BT ? kiln__sgemm_packed_b_floats(kdim, g->m)
           : layout == WPACK_CV ? kiln__sgemm_cv_packed_floats(g->m, kdim)
                                : kiln__sgemm_packed_a_floats(g->mg, kdim) * g->groups;
}

/* The weights of every group packed into dst, wpack_floats(layout) floats. */
static void pack_weights(const conv_job *j, int layout, float *dst) {
    const conv_geom *g = &j->g;
    int64_t kdim = g->cg * g->kvol, per_group = kiln__sgemm_packed_a_floats(g->mg, kdim);
    if (layout == WPACK_BT) {
        kiln__sgemm_pack_b(true, kdim, g->m, j->w, kdim, dst);
    } else if (layout == WPACK_CV) {
        kiln__sgemm_cv_pack(g->m, kdim, j->w, kdim, dst);
    } else {
        for (int64_t grp = 0; grp < g->groups; grp++)
            kiln__sgemm_pack_a(g->mg, kdim, j->w + grp * g->mg * kdim, kdim, dst + grp * per_group);
    }
}

/* The context's cache block of packed weights: a header, then the packed floats at offset 64. */
typedef struct wpack_header {
    const void *src; /* the constant weights they came from */
    int64_t m, kdim, groups;
    int32_t layout; /* WPACK_* */
    int32_t simd;   /* B panels depend on the kernels' level */
} wpack_header;
#define WPACK_OFFSET 64

/* Constant weights are packed on a context's first run and kept in its layer slot (the GEMM
 * would otherwise repack them for every tile). NULL when they cannot be cached. */
static const float *cached_wpack(const kiln_layer *layer, const void *w_src, const conv_job *j, int layout,
                                 kiln__cpu_ctx *ctx) {
    const conv_geom *g = &j->g;
    int simd = kiln__cpu_simd();
    if (!ctx->cache || simd == KILN__SIMD_NONE) return NULL;
    const kiln_tensor *wt = layer->inputs[1];
    if (!wt || !wt->producer || wt->producer->type != KILN_LAYER_CONSTANT) return NULL;
    int64_t kdim = g->cg * g->kvol;
    int64_t floats = wpack_floats(g, layout);
    wpack_header *h = *ctx->cache;
    if (h && h->src == w_src && h->m == g->m && h->kdim == kdim && h->groups == g->groups &&
        h->layout == layout && (layout != WPACK_BT || h->simd == simd))
        return (const float *)((const char *)h + WPACK_OFFSET);
    kiln__free(ctx->alloc, h);
    *ctx->cache = NULL;
    size_t bytes;
    if (!kiln__mul_size((size_t)floats, sizeof(float), &bytes) || bytes > SIZE_MAX - WPACK_OFFSET) return NULL;
    h = kiln__malloc_aligned(ctx->alloc, bytes + WPACK_OFFSET, 64);
    if (!h) return NULL; /* runs unpacked */
    *h = (wpack_header){w_src, g->m, kdim, g->groups, layout, simd};
    float *dst = (float *)((char *)h + WPACK_OFFSET);
    pack_weights(j, layout, dst);
    kiln__cpu_release_weights(ctx, j->w, (size_t)(g->m * kdim) * sizeof(float)); /* the GEMM reads the packed copy */
    *ctx->cache = h;
    return dst;
}

/* ------------------------------------------------- narrow planes: the GEMM transposed */

/* A plane of 49 or 196 outputs fills 64 or 224 lanes of the 32-wide GEMM panels: up to a third of
 * the work wasted. Transposed, T[plane, m] = col^T W^T puts the plane on the micro-kernel's
 * 12/6-row side and the output maps (a multiple of 32 in real networks) on the vector side; a
 * pass then writes y = act(T^T + bias + residual). Used when it saves at least a tenth, and only
 * for long sums (measured: with K below NARROW_MIN_K, as in MobileNetV2's 1x1 layers, the
 * transposing pass costs more than the lanes saved). */
#define NARROW_MAX_PLANE 256
#define NARROW_MIN_MAPS 32
#define NARROW_MIN_K 512

static bool narrow_plane(const conv_geom *g) {
    int simd = kiln__cpu_simd();
    if (simd == KILN__SIMD_NONE || g->groups != 1 || g->out_plane > NARROW_MAX_PLANE || g->m < NARROW_MIN_MAPS ||
        g->cg * g->kvol < NARROW_MIN_K)
        return false;
    int64_t nr = simd == KILN__SIMD_AVX512 ? 32 : 16, n = g->out_plane;
    int64_t lanes = (n + nr - 1) / nr * nr, mlanes = (g->m + nr - 1) / nr * nr;
    int64_t rows = simd == KILN__SIMD_AVX512 ? n / 12 * 12 + (n % 12 + 5) / 6 * 6 : (n + 5) / 6 * 6;
    return (double)rows * (double)mlanes * 10.0 < (double)lanes * (double)g->m * 9.0;
}

typedef struct narrow_out {
    const conv_job *j;
    const float *t; /* T [plane, m] of one image */
    int64_t image;
} narrow_out;

/* Output maps [m0, m1) of one image from T: transpose, bias, residual, activation. T is read in
 * blocks of NARROW_BLOCK maps, each of its rows once (a column of T at a time would touch a
 * cache line per value). */
#define NARROW_BLOCK 16

static void narrow_rows(void *arg, int64_t m0, int64_t m1) {
    const narrow_out *no = arg;
    const conv_job *j = no->j;
    int64_t plane = j->g.out_plane, m = j->g.m;
    float *y0 = j->y + no->image * m * plane;
    for (int64_t mb = m0; mb < m1; mb += NARROW_BLOCK) {
        int64_t nb = KILN__MIN(NARROW_BLOCK, m1 - mb);
        for (int64_t p = 0; p < plane; p++) {
            const float *t = no->t + p * m + mb;
            for (int64_t i = 0; i < nb; i++) y0[(mb + i) * plane + p] = t[i];
        }
    }
    epilogue(j, no->image, m0, m1);
}

static kiln_status conv_narrow(conv_job *j, const float *wt_pack, kiln__cpu_ctx *ctx) {
    const conv_geom *g = &j->g;
    int64_t kdim = g->c * g->kvol, plane = g->out_plane;
    size_t col_bytes = 0, t_bytes;
    if ((!j->pointwise && !kiln__mul_size((size_t)(kdim * plane), sizeof(float), &col_bytes)) ||
        !kiln__mul_size((size_t)(plane * g->m), sizeof(float), &t_bytes))
        return kiln__error(KILN_OUT_OF_MEMORY, "convolution scratch size overflows");
    float *t = kiln__malloc_aligned(ctx->alloc, t_bytes, 64);
    j->col = col_bytes ? kiln__malloc_aligned(ctx->alloc, col_bytes, 64) : NULL;
    kiln_status st = t && (!col_bytes || j->col) ? KILN_OK : KILN_OUT_OF_MEMORY;
    for (int64_t n = 0; n < g->n && st == KILN_OK; n++) {
        const float *a = j->x + n * g->c * g->in_plane;
        if (j->col) {
            j->xg = a;
            kiln__parallel_for(ctx->pool, kdim, 1, im2col_range, j);
            a = j->col;
        }
        st = kiln__sgemm_packed_b(ctx->pool, ctx->alloc, true, true, plane, g->m, kdim, 1.0f, a, plane, j->w, kdim,
                                  wt_pack, 0.0f, t, g->m, NULL);
        narrow_out no = {j, t, n};
        if (st == KILN_OK) kiln__parallel_for(ctx->pool, g->m, 16, narrow_rows, &no);
    }
    kiln__free(ctx->alloc, t);
    kiln__free(ctx->alloc, j->col);
    return st;
}

/* j->wpack for the paths that need packed weights: the cached copy, or (weights not cached) one
 * packed for this run into *tmp, which the caller frees. */
static kiln_status packed_weights(const kiln_layer *layer, const void *w_src, conv_job *j, int layout,
                                  kiln__cpu_ctx *ctx, float **tmp) {
    *tmp = NULL;
    j->wpack = cached_wpack(layer, w_src, j, layout, ctx);
    if (j->wpack) return KILN_OK;
    size_t wbytes;
    if (!kiln__mul_size((size_t)wpack_floats(&j->g, layout), sizeof(float), &wbytes))
        return kiln__error(KILN_OUT_OF_MEMORY, "convolution weight packing size overflows");
    *tmp = kiln__malloc_aligned(ctx->alloc, KILN__MAX(wbytes, 1), 64);
    if (!*tmp) return KILN_OUT_OF_MEMORY;
    pack_weights(j, layout, *tmp);
    j->wpack = *tmp;
    return KILN_OK;
}

/* Winograd's transformed weights are 4x the size of the direct path's: with few tiles, reading
 * them costs more than the multiplications saved (measured at batch 1: 14x14 outputs, 16 tiles,
 * 256 maps: direct 1.85 ms against 2.3 ms; 28x28, 49 tiles, 128 maps: Winograd 1.18 against 1.7). */
#define WINOGRAD_OVER_DIRECT_TILES 49

static int64_t winograd_tiles(const conv_geom *g) { return g->n * ((g->out[1] + 3) / 4) * ((g->out[2] + 3) / 4); }

/* ------------------------------------------------- direct: B read in place from a padded input */

/* 2-D convolutions of one group (AVX-512) without an im2col matrix: each image's input is copied
 * once into zero-padded planes split by stride phase, plane (c, py, px) holding padded rows
 * t * sy + py and columns u * sx + px, Hq x Wq of them. Tap (c, ky, kx) of output (oy, ox) then
 * lies at a fixed offset plus oy * Wq + ox, so the GEMM reads its B rows in place at those offsets
 * over a grid of Ho x Wq outputs; the Wq - Wo columns past each row's end are computed and
 * dropped. With one K block the GEMM stores each grid row's first Wo straight into y with the
 * bias, residual and activation; with more, its partial sums split across y's rows cost more than
 * a grid buffer copied into y afterwards (measured: 14x14, 2304 long sums: 2.3 against 1.83 ms).
 * Only the phases some tap reads are copied (a 1x1 stride-2 convolution copies one quarter of its
 * input). */
#define DIRECT_SLACK 64 /* floats past the last plane: the grid's last panel reads up to 31 more */
#define DIRECT_MAX_WASTE 1.3 /* grid lanes (rounded up to 32) per output at most */
#define DIRECT_STRAIGHT_MAX_K 192 /* the GEMM's K block: up to this, the grid goes straight into y */

typedef struct direct_geom {
    int64_t sy, sx, hq, wq, pq; /* pq: the plane, hq * wq */
    int64_t nph, phase[4];      /* phases read, and each phase's slot (py * sx + px) or -1 */
    int64_t grid;               /* ho * wq */
} direct_geom;

/* The stride phase (py * sx + px) that tap (ky, kx) reads. */
static int64_t direct_phase(const conv_geom *g, const direct_geom *dg, int64_t ky, int64_t kx) {
    return ky * g->d[1] % dg->sy * dg->sx + kx * g->d[2] % dg->sx;
}

static bool direct_geom_init(const conv_geom *g, direct_geom *dg) {
    if (kiln__cpu_simd() != KILN__SIMD_AVX512 || g->groups != 1 || g->k[0] != 1 || g->in[0] != 1 ||
        g->out[0] != 1 || g->pb[0] != 0 || g->s[1] > 2 || g->s[2] > 2 || (g->kvol == 1 && g->s[1] * g->s[2] == 1))
        return false;
    *dg = (direct_geom){.sy = g->s[1], .sx = g->s[2]};
    dg->hq = g->out[1] + (g->k[1] - 1) * g->d[1] / dg->sy;
    dg->wq = g->out[2] + (g->k[2] - 1) * g->d[2] / dg->sx;
    dg->pq = dg->hq * dg->wq;
    dg->grid = g->out[1] * dg->wq;
    for (int64_t i = 0; i < 4; i++) dg->phase[i] = -1;
    for (int64_t ky = 0; ky < g->k[1]; ky++)
        for (int64_t kx = 0; kx < g->k[2]; kx++) {
            int64_t ph = direct_phase(g, dg, ky, kx);
            if (dg->phase[ph] < 0) dg->phase[ph] = dg->nph++;
        }
    return true;
}

/* The row GEMM computes the whole grid, rounded up to its 32-wide panels. */
static bool direct_grid_ok(const conv_geom *g, const direct_geom *dg) {
    return (double)((dg->grid + 31) / 32 * 32) <= DIRECT_MAX_WASTE * (double)g->out_plane;
}

/* ------------------------------------------------- the channel-vector GEMM (AVX-512) */

/* kiln__sgemm_cv puts 32 output maps on the vector side and broadcasts each output position from
 * the input read in place: no lanes wasted on planes of 49 or 196 positions, no B packing, no grid
 * columns computed and dropped. Its stores transpose 32 x 14 accumulators in registers, which
 * long sums hide; it streams B once per 32 maps, which small planes keep in cache. Elsewhere the
 * row GEMM is used where its lanes are nearly all used. Measured per layer in ResNet-50 (1 thread):
 * 14x14 3x3 256 maps 9.35 -> 8.18 ms, 1024->256 1x1 on 14x14 4.33 -> 3.77; but 256->64 1x1 on
 * 56x56 1.86 -> 2.28, and 64->256 there (sums of 64) 4.27 -> 6.77. */
#define CV_MIN_K 256           /* from this sum length on, on planes of at most CV_MAX_PLANE */
#define CV_MAX_PLANE 1024
#define CV_MAX_ROW_WASTE 1.05  /* otherwise where the row GEMM's lanes (or grid) waste more than this */
#define CV_MAX_MAP_WASTE 1.125 /* output maps rounded up to 32 per map, at most */

static bool cv_applies(const conv_geom *g, const direct_geom *dg, bool direct, bool pointwise) {
    if (kiln__cpu_simd() != KILN__SIMD_AVX512 || g->groups != 1 || (!direct && !pointwise) ||
        (double)((g->m + 31) / 32 * 32) > CV_MAX_MAP_WASTE * (double)g->m)
        return false;
    if (g->cg * g->kvol >= CV_MIN_K && g->out_plane <= CV_MAX_PLANE) return true;
    int64_t lanes = direct ? dg->grid : g->out_plane;
    return (double)((lanes + 31) / 32 * 32) > CV_MAX_ROW_WASTE * (double)g->out_plane;
}

/* A 1x1 stride-1 convolution: B is the input itself, one row of out_plane positions per image. */
static kiln_status conv_cv_pointwise(conv_job *j, kiln__cpu_ctx *ctx) {
    const conv_geom *g = &j->g;
    int64_t *off = kiln__malloc(ctx->alloc, (size_t)g->c * sizeof *off);
    if (!off) return KILN_OUT_OF_MEMORY;
    for (int64_t c = 0; c < g->c; c++) off[c] = c * g->in_plane;
    kiln_status st = KILN_OK;
    for (int64_t n = 0; n < g->n && st == KILN_OK; n++) {
        int64_t first = n * g->m * g->out_plane;
        kiln__gemm_epilogue ep = {j->bias, j->res ? j->res + first : NULL, g->out_plane, j->act};
        st = kiln__sgemm_cv(ctx->pool, g->m, g->out_plane, g->c, j->wpack, j->x + n * g->c * g->in_plane, off,
                            g->out_plane, g->out_plane, j->y + first, g->out_plane, &ep);
    }
    kiln__free(ctx->alloc, off);
    return st;
}

typedef struct direct_job {
    const conv_job *j;
    const direct_geom *dg;
    const float *x; /* the image */
    float *xq;      /* its phase planes */
    const float *grid; /* the GEMM's grid buffer, or NULL (stored straight into y) */
    float *y;          /* the image's output */
    int64_t n;         /* the image */
} direct_job;

/* Phase planes of channels [c0, c1). */
static void direct_copy_range(void *arg, int64_t c0, int64_t c1) {
    const direct_job *dj = arg;
    const conv_geom *g = &dj->j->g;
    const direct_geom *dg = dj->dg;
    for (int64_t c = c0; c < c1; c++)
        for (int64_t ph = 0; ph < dg->sy * dg->sx; ph++) {
            if (dg->phase[ph] < 0) continue;
            int64_t py = ph / dg->sx, px = ph % dg->sx;
            float *dst = dj->xq + (c * dg->nph + dg->phase[ph]) * dg->pq;
            const float *xc = dj->x + c * g->in_plane;
            int64_t lo, hi; /* columns u whose input column u * sx + px - pb lies inside */
            kiln__conv_valid_range(px - g->pb[2], dg->sx, g->in[2], dg->wq, &lo, &hi);
            for (int64_t t = 0; t < dg->hq; t++, dst += dg->wq) {
                int64_t iy = t * dg->sy + py - g->pb[1];
                if (iy < 0 || iy >= g->in[1] || hi <= lo) {
                    memset(dst, 0, (size_t)dg->wq * sizeof *dst);
                    continue;
                }
                const float *row = xc + iy * g->in[2] + px - g->pb[2];
                memset(dst, 0, (size_t)lo * sizeof *dst);
                if (dg->sx == 1)
                    memcpy(dst + lo, row + lo, (size_t)(hi - lo) * sizeof *dst);
                else
                    for (int64_t u = lo; u < hi; u++) dst[u] = row[u * dg->sx];
                memset(dst + hi, 0, (size_t)(dg->wq - hi) * sizeof *dst);
            }
        }
}

/* Output maps [m0, m1) of the image from the grid buffer, then bias, residual and activation. */
static void direct_out_range(void *arg, int64_t m0, int64_t m1) {
    const direct_job *dj = arg;
    const conv_geom *g = &dj->j->g;
    for (int64_t m = m0; m < m1; m++)
        for (int64_t oy = 0; oy < g->out[1]; oy++)
            memcpy(dj->y + m * g->out_plane + oy * g->out[2], dj->grid + m * dj->dg->grid + oy * dj->dg->wq,
                   (size_t)g->out[2] * sizeof(float));
    epilogue(dj->j, dj->n, m0, m1);
}

/* cv: through the channel-vector GEMM, which reads only the grid's first Wo columns of each row. */
static kiln_status conv_direct(conv_job *j, const direct_geom *dg, bool cv, kiln__cpu_ctx *ctx) {
    const conv_geom *g = &j->g;
    int64_t kdim = g->c * g->kvol;
    bool buffered = !cv && dg->wq != g->out[2] && kdim > DIRECT_STRAIGHT_MAX_K;
    size_t xq_bytes, off_bytes, grid_bytes = 0;
    if (!kiln__mul_size((size_t)(g->c * dg->nph * dg->pq + DIRECT_SLACK), sizeof(float), &xq_bytes) ||
        !kiln__mul_size((size_t)kdim, sizeof(int64_t), &off_bytes) ||
        (buffered && !kiln__mul_size((size_t)(g->m * dg->grid), sizeof(float), &grid_bytes)))
        return kiln__error(KILN_OUT_OF_MEMORY, "convolution scratch size overflows");
    float *xq = kiln__malloc_aligned(ctx->alloc, xq_bytes, 64);
    int64_t *off = kiln__malloc(ctx->alloc, off_bytes);
    float *grid = buffered ? kiln__malloc_aligned(ctx->alloc, grid_bytes, 64) : NULL;
    kiln_status st = xq && off && (grid || !buffered) ? KILN_OK : KILN_OUT_OF_MEMORY;
    if (st == KILN_OK) {
        memset(xq + g->c * dg->nph * dg->pq, 0, DIRECT_SLACK * sizeof(float));
        for (int64_t c = 0, k = 0; c < g->c; c++)
            for (int64_t ky = 0; ky < g->k[1]; ky++)
                for (int64_t kx = 0; kx < g->k[2]; kx++, k++) {
                    off[k] = (c * dg->nph + dg->phase[direct_phase(g, dg, ky, kx)]) * dg->pq + ky * g->d[1] / dg->sy * dg->wq +
                             kx * g->d[2] / dg->sx;
                }
    }
    for (int64_t n = 0; n < g->n && st == KILN_OK; n++) {
        int64_t first = n * g->m * g->out_plane;
        direct_job dj = {j, dg, j->x + n * g->c * g->in_plane, xq, grid, j->y + first, n};
        kiln__parallel_for(ctx->pool, g->c, 1, direct_copy_range, &dj);
        if (buffered) {
            st = kiln__sgemm_packed_rows(ctx->pool, ctx->alloc, g->m, dg->grid, kdim, j->wpack, xq, off, grid,
                                         dg->grid, dg->grid, dg->grid, NULL);
            if (st == KILN_OK) kiln__parallel_for(ctx->pool, g->m, 16, direct_out_range, &dj);
            continue;
        }
        kiln__gemm_epilogue ep = {j->bias, j->res ? j->res + first : NULL, g->out_plane, j->act};
        if (cv) { /* a grid without dropped columns is one row: blocks may then span its rows */
            int64_t wo = dg->wq == g->out[2] ? g->out_plane : g->out[2], wq = dg->wq == g->out[2] ? wo : dg->wq;
            st = kiln__sgemm_cv(ctx->pool, g->m, g->out_plane, kdim, j->wpack, xq, off, wq, wo, dj.y, g->out_plane,
                                &ep);
            continue;
        }
        st = kiln__sgemm_packed_rows(ctx->pool, ctx->alloc, g->m, dg->grid, kdim, j->wpack, xq, off, dj.y,
                                     g->out_plane, dg->wq, g->out[2], &ep);
    }
    kiln__free(ctx->alloc, grid);
    kiln__free(ctx->alloc, off);
    kiln__free(ctx->alloc, xq);
    return st;
}

static kiln_status conv_f32(const kiln_layer *layer, const void *w_src, conv_job *j, kiln__cpu_ctx *ctx) {
    const conv_geom *g = &j->g;
    if (g->groups == g->c && g->m == g->c) return depthwise(j, ctx);
    j->pointwise = g->kvol == 1;
    for (int32_t i = 0; i < 3; i++)
        j->pointwise = j->pointwise && g->s[i] == 1 && g->pb[i] == 0 && g->out[i] == g->in[i];
    direct_geom dg;
    bool direct = direct_geom_init(g, &dg);
    bool cv = cv_applies(g, &dg, direct, j->pointwise);
    direct = direct && (cv || direct_grid_ok(g, &dg));
    if (kiln__winograd_applies(g) && (!direct || winograd_tiles(g) >= WINOGRAD_OVER_DIRECT_TILES))
        return kiln__winograd_conv(g, j->x, j->w, w_src, j->bias, j->res, j->act, j->y, ctx, layer);
    if (direct || cv) {
        float *wtmp = NULL;
        kiln_status st = packed_weights(layer, w_src, j, cv ? WPACK_CV : WPACK_A, ctx, &wtmp);
        if (st == KILN_OK) st = direct ? conv_direct(j, &dg, cv, ctx) : conv_cv_pointwise(j, ctx);
        kiln__free(ctx->alloc, wtmp);
        return st;
    }
    if (narrow_plane(g)) {
        const float *wt_pack = cached_wpack(layer, w_src, j, WPACK_BT, ctx);
        if (wt_pack) return conv_narrow(j, wt_pack, ctx);
    }
    int64_t tasks = g->n * g->groups, threads = kiln__pool_threads(ctx->pool);
    j->implicit = !j->pointwise && kiln__cpu_simd() != KILN__SIMD_NONE;
    float *wtmp = NULL;
    if (j->implicit) {
        kiln_status st = packed_weights(layer, w_src, j, WPACK_A, ctx, &wtmp);
        if (st != KILN_OK) return st;
    } else {
        j->wpack = cached_wpack(layer, w_src, j, WPACK_A, ctx);
    }
    j->col_size = j->pointwise || j->implicit ? 0 : g->cg * g->kvol * g->out_plane;
    /* Many small (image, group) tasks: one pipeline per thread. Otherwise each task in turn,
     * with im2col (or the GEMM's packing) and the GEMM spread over the threads. */
    double flops = 2.0 * (double)g->mg * (double)g->out_plane * (double)(g->cg * g->kvol);
    j->slots = threads > 1 && tasks >= threads && flops < KILN__SMALL_GEMM_FLOPS ? threads : 1;
    size_t bytes = 0;
    if (j->col_size && !kiln__mul_size((size_t)(j->slots * j->col_size), sizeof(float), &bytes)) {
        kiln__free(ctx->alloc, wtmp);
        return kiln__error(KILN_OUT_OF_MEMORY, "convolution scratch size overflows");
    }
    j->col = bytes ? kiln__malloc_aligned(ctx->alloc, bytes, 64) : NULL;
    if (bytes && !j->col) {
        kiln__free(ctx->alloc, wtmp);
        return KILN_OUT_OF_MEMORY;
    }
    atomic_init(&j->status, KILN_OK);
    kiln_status st = KILN_OK;
    if (j->slots > 1) {
        slot_arg sa = {j, ctx->alloc};
        kiln__parallel_for(ctx->pool, j->slots, 1, slot_range, &sa);
        st = atomic_load(&j->status);
    } else {
        for (int64_t t = 0; t < tasks && st == KILN_OK; t++) {
            int64_t n = t / g->groups, grp = t % g->groups;
            if (j->col) {
                j->xg = j->x + (n * g->c + grp * g->cg) * g->in_plane;
                kiln__parallel_for(ctx->pool, g->cg * g->kvol, 1, im2col_range, j);
            }
            st = group_gemm(j, n, grp, j->col, ctx->pool, ctx->alloc);
        }
    }
    kiln__free(ctx->alloc, j->col);
    kiln__free(ctx->alloc, wtmp);
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
