/* CPU depthwise convolution (one input channel per output map), float32: a portable loop, vector
 * kernels along rows that read the input in place (AVX2/AVX-512), a padded-plane kernel for small
 * planes, a kernel over a ring of padded rows for large planes at x-stride 1, and a kernel over
 * blocks of 16 channels (AVX-512). */
#include "conv_common.h"
#include "conv_simd.h"
#include "gemm.h"
#include "vmath.h"

#include <immintrin.h>
#include <string.h>

/* The vector depthwise path takes kernels of at most this many (kz, ky) rows and kx taps. */
#define DW_MAX_ROWS 64
#define DW_MAX_TAPS 64

typedef kiln__conv_geom conv_geom;

typedef struct dw_conv {
    conv_geom g;
    const float *x, *w, *bias, *res;
    float *y;
    const kiln__act *act;
    bool x_blocked, y_blocked; /* x, y in NCHW16C (the channel-block kernel only) */
} dw_conv;

static void epilogue(const dw_conv *j, int64_t n, int64_t m0, int64_t m1) {
    kiln__conv_epilogue(&j->g, j->y, j->bias, j->res, j->act, n, m0, m1);
}

/* One depthwise plane, portable: output map c of image n from input channel c. */
static void depthwise_plane(const dw_conv *j, int64_t n, int64_t c) {
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
    const dw_conv *j;
    const float *zeros;        /* in[2] zeros: the tap rows that fall in the padding */
    int64_t s;                 /* the stride along x: 1 or 2 */
    int64_t nrows, kw;         /* (kz, ky) tap rows, kx taps */
    int64_t xoff[DW_MAX_TAPS]; /* tap kx: its input column minus ox * s */
    int64_t lo[DW_MAX_TAPS], hi[DW_MAX_TAPS]; /* tap kx: the outputs whose column is inside the row */
    int64_t ilo, ihi;          /* the outputs whose taps all lie inside the row */
    bool avx512;
    bool adjacent3;            /* 3 taps across one column apart (dilation 1) */
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

/* Channel c's weights, bias and clamp for the row kernels (rows and sources set per row pair). */
static dw_rowpair dw_channel_rowpair(const dw_conv *j, int64_t c) {
    int kind = j->act->kind;
    return (dw_rowpair){.w = j->w + c * j->g.kvol, .bias = j->bias ? j->bias[c] : 0.0f, .out_w = j->g.out[2],
                        .clamp = kind == KILN_ACT_RELU || kind == KILN_ACT_CLIP,
                        .lo = kind == KILN_ACT_CLIP ? j->act->alpha : 0.0f,
                        .hi = kind == KILN_ACT_CLIP ? j->act->beta : __builtin_inff()};
}

/* The output row at offset o of plane y (and of its residual res, or NULL), and the row after it
 * when two. */
static void dw_rowpair_at(dw_rowpair *rp, float *y, const float *res, int64_t o, bool two) {
    rp->y0 = y + o;
    rp->y1 = two ? y + o + rp->out_w : NULL;
    rp->r0 = res ? res + o : NULL;
    rp->r1 = res && two ? res + o + rp->out_w : NULL;
}

/* Of `lanes` outputs from x0, those tap kx reads inside the row, as a lane mask (s == 1) or as
 * the mask of the even elements of a load twice as wide (s == 2). */
static inline uint32_t dw_tap_mask(const dw_job *d, int64_t kx, int64_t x0, int64_t lanes) {
    int64_t a = KILN__MAX(d->lo[kx] - x0, 0), b = KILN__MIN(d->hi[kx] - x0, lanes);
    if (d->s == 1) return bit_range(a, b);
    return a < b ? bit_range(2 * a, 2 * b) & 0x55555555u : 0;
}

/* Stores the sums a0 (a1: the pair's second row) of outputs [ox, ox + 16 * nv) of a row pair
 * (AVX-512), the residual added and relu/clip applied, masked at the row's end. */
__attribute__((target("avx512f"), always_inline)) static inline void dw_store512(const dw_rowpair *rp, int64_t ox,
                                                                               int nv, bool two, const __m512 *a0,
                                                                               const __m512 *a1) {
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

/* The sums of an inside vector group at stride 2 with 3 adjacent taps: each 32 input columns are
 * loaded once and split into their even and odd columns (two permutes); the taps read the evens,
 * the odds, and the evens one lane on (valignd with the next group's evens), where the general
 * loop loads and permutes each tap's columns apart (6 loads and 3 permutes per vector and row,
 * against 2 and 3 here). MobileNetV2's 96 maps from 112x112, alone, in-process A/B: 5-5.5% faster
 * on the GPU machine's Xeon at 1 and 2 threads, 10% on the AMD EPYC; inside the network on the
 * EPYC 0.323 -> 0.302 ms at 1 thread. */
__attribute__((target("avx512f"), always_inline)) static inline void dw_block512_s2x3(const dw_rowpair *rp, int64_t ox,
                                                                                    int nv, bool two, __m512 *a0,
                                                                                    __m512 *a1) {
    const dw_job *d = rp->d;
    const __m512i evens = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    const __m512i odds = _mm512_setr_epi32(1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31);
    for (int64_t r = 0; r < d->nrows; r++) {
        const float *w = rp->w + r * 3;
        __m512 w0 = _mm512_set1_ps(w[0]), w1 = _mm512_set1_ps(w[1]), w2 = _mm512_set1_ps(w[2]);
        for (int row = 0; row < (two ? 2 : 1); row++) {
            /* input column 2 * ox + xoff[0] on: tap 0 of output ox */
            const float *base = (row ? rp->src1[r] : rp->src0[r]) + 2 * ox + d->xoff[0];
            __m512 *acc = row ? a1 : a0, e[4], o[4];
            for (int v = 0; v < nv; v++) {
                __m512 lo = _mm512_loadu_ps(base + 32 * v), hi = _mm512_loadu_ps(base + 32 * v + 16);
                e[v] = _mm512_permutex2var_ps(lo, evens, hi);
                o[v] = _mm512_permutex2var_ps(lo, odds, hi);
            }
            for (int v = 0; v < nv; v++) {
                __m512 en = v + 1 < nv ? e[v + 1] : _mm512_set1_ps(base[32 * nv]);
                __m512 shifted = _mm512_castsi512_ps(
                    _mm512_alignr_epi32(_mm512_castps_si512(en), _mm512_castps_si512(e[v]), 1));
                acc[v] = _mm512_fmadd_ps(w0, e[v], acc[v]);
                acc[v] = _mm512_fmadd_ps(w1, o[v], acc[v]);
                acc[v] = _mm512_fmadd_ps(w2, shifted, acc[v]);
            }
        }
    }
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
    if (s == 2 && kw == 3 && !masked && d->adjacent3) {
        dw_block512_s2x3(rp, ox, nv, two, a0, a1);
    } else {
        for (int64_t r = 0; r < d->nrows; r++) {
            const float *s0 = rp->src0[r] + ox * s, *s1 = rp->src1[r] + ox * s, *w = rp->w + r * kw;
            for (int64_t kx = 0; kx < kw; kx++) {
                __m512 wv = _mm512_set1_ps(w[kx]);
                int64_t o = d->xoff[kx];
                for (int v = 0; v < nv; v++)
                    a0[v] = _mm512_fmadd_ps(wv, load16(s0 + o + 16 * v * s, masked ? m[v][kx] : full, s), a0[v]);
                if (two)
                    for (int v = 0; v < nv; v++)
                        a1[v] = _mm512_fmadd_ps(wv, load16(s1 + o + 16 * v * s, masked ? m[v][kx] : full, s), a1[v]);
            }
        }
    }
    dw_store512(rp, ox, nv, two, a0, a1);
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

/* dw_store512 with AVX2: 8 outputs per vector. */
__attribute__((target("avx2,fma"), always_inline)) static inline void dw_store256(const dw_rowpair *rp, int64_t ox,
                                                                                int nv, bool two, const __m256 *a0,
                                                                                const __m256 *a1) {
    __m256 lo = _mm256_set1_ps(rp->lo), hi = _mm256_set1_ps(rp->hi);
    for (int v = 0; v < nv; v++) {
        int64_t x0 = ox + 8 * v;
        bool whole = x0 + 8 <= rp->out_w;
        __m256i sm = mask8(bit_range(0, rp->out_w - x0));
        for (int row = 0; row < (two ? 2 : 1); row++) {
            __m256 a = row ? a1[v] : a0[v];
            const float *res = row ? rp->r1 : rp->r0;
            float *y = (row ? rp->y1 : rp->y0) + x0;
            if (res) a = _mm256_add_ps(a, whole ? _mm256_loadu_ps(res + x0) : _mm256_maskload_ps(res + x0, sm));
            if (rp->clamp) a = _mm256_min_ps(_mm256_max_ps(a, lo), hi);
            if (whole)
                _mm256_storeu_ps(y, a);
            else
                _mm256_maskstore_ps(y, sm, a);
        }
    }
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
    dw_store256(rp, ox, nv, two, a0, a1);
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
    const dw_conv *j = d->j;
    const conv_geom *g = &j->g;
    const float *x = j->x + (n * g->c + c) * g->in_plane;
    float *y = j->y + (n * g->m + c) * g->out_plane;
    const float *res = j->res ? j->res + (n * g->m + c) * g->out_plane : NULL;
    int kind = j->act->kind;
    dw_rowpair rp = dw_channel_rowpair(j, c);
    rp.d = d;
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
            dw_rowpair_at(&rp, y, res, o, two);
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
    const dw_conv *j = arg;
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
    const dw_conv *j;
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
    const dw_conv *j = d->j;
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

/* Scratch for `slots` threads, each rows x cols x lanes floats plus slack, rounded up to 16 floats
 * (64-byte aligned slots of *per_slot floats), allocated into *scratch. KILN_OUT_OF_MEMORY when
 * the size overflows (pads and dilations are the layer's attributes: any size) or memory runs out. */
static kiln_status slot_scratch(kiln__cpu_ctx *ctx, int64_t rows, int64_t cols, int64_t lanes, int64_t slack,
                                int64_t slots, int64_t *per_slot, float **scratch) {
    size_t floats, bytes;
    *scratch = NULL;
    if (!kiln__mul_size((size_t)rows, (size_t)cols, &floats) || !kiln__mul_size(floats, (size_t)lanes, &floats) ||
        floats > (size_t)INT64_MAX / 2)
        return kiln__error(KILN_OUT_OF_MEMORY, "depthwise scratch size overflows");
    floats = (floats + (size_t)slack + 15) / 16 * 16;
    *per_slot = (int64_t)floats;
    if (!kiln__mul_size(floats, (size_t)slots, &bytes) || !kiln__mul_size(bytes, sizeof(float), &bytes))
        return kiln__error(KILN_OUT_OF_MEMORY, "depthwise scratch size overflows");
    *scratch = kiln__malloc_aligned(ctx->alloc, bytes, 64);
    return *scratch ? KILN_OK : KILN_OUT_OF_MEMORY;
}

static kiln_status depthwise_small(dw_conv *j, kiln__cpu_ctx *ctx) {
    const conv_geom *g = &j->g;
    /* Rows and columns the outputs reach (full-width loads at stride 2 read up to 32 more). */
    int64_t reach_y = (g->out[1] - 1) * g->s[1] + (g->k[1] - 1) * g->d[1] + 1;
    int64_t reach_x = ((g->out[2] + 15) / 16 * 16 - 1) * g->s[2] + (g->k[2] - 1) * g->d[2] + 1 + 16;
    dws_job d = {.j = j, .ph = KILN__MAX(reach_y, g->in[1] + g->pb[1]), .pw = KILN__MAX(reach_x, g->in[2] + g->pb[2])};
    d.slots = KILN__MIN(kiln__pool_threads(ctx->pool), g->n * g->c);
    KILN__TRY(slot_scratch(ctx, d.ph, d.pw, 1, DWS_SLACK, d.slots, &d.per_slot, &d.scratch));
    kiln__parallel_for(ctx->pool, d.slots, 1, dws_range, &d);
    kiln__free(ctx->alloc, d.scratch);
    return KILN_OK;
}

/* Large 2-D planes at x-stride 1 (AVX-512): each input row the windows reach is copied once into
 * a ring of zero-padded rows that stays in L1, so that every tap of every output vector is an
 * unmasked load (or a lane shift of two) and an FMA, over two output rows of up to four vectors
 * each; the row kernels above mask their edge vectors tap by tap. MobileNetV2's 32 maps on
 * 112x112, alone, 1 thread: 0.209 -> 0.147 ms on the AMD EPYC, 0.250 -> 0.209 on the GPU
 * machine's Xeon (2 threads 0.148 -> 0.139); inside the network 0.236 -> 0.195 ms on the EPYC.
 * At stride 2, with each row split into its even and odd columns, the EPYC gained 15% and the
 * Xeon lost 8% (1 thread) and 36% (2 threads): that stride stays on the row kernels. */
#define DWP_RING 16 /* padded rows held (a power of two): a row pair's windows span at most this many */

typedef struct dwp_job {
    const dw_conv *j;
    int64_t slot_floats; /* one padded row */
    float *scratch;      /* per slot: DWP_RING rows */
    int64_t per_slot, slots;
} dwp_job;

static bool dwp_applies(const conv_geom *g) {
    return kiln__cpu_simd() == KILN__SIMD_AVX512 && g->k[0] == 1 && g->in[0] == 1 && g->out[0] == 1 &&
           g->pb[0] == 0 && g->s[2] == 1 && g->kvol <= DW_MAX_TAPS &&
           (g->k[1] - 1) * g->d[1] + g->s[1] + 1 <= DWP_RING;
}

/* Input row iy of plane x into slot dst, zero-padded to the slot's width: masked loads at the
 * row's ends (lanes outside the row are not read), plain ones between them. */
__attribute__((target("avx512f,avx2,fma"))) static void dwp_load_row(const dwp_job *d, const float *x, int64_t iy,
                                                                     float *dst) {
    const conv_geom *g = &d->j->g;
    if (iy < 0 || iy >= g->in[1]) {
        for (int64_t q = 0; q < d->slot_floats; q += 16) _mm512_storeu_ps(dst + q, _mm512_setzero_ps());
        return;
    }
    /* padded column q of the row is input column q - pb, inside [0, in[2]) */
    const float *src = x + iy * g->in[2] - g->pb[2];
    int64_t lo = g->pb[2], hi = g->pb[2] + g->in[2];
    for (int64_t q = 0; q < d->slot_floats; q += 16) {
        bool inside = q >= lo && q + 16 <= hi;
        _mm512_storeu_ps(dst + q, inside ? _mm512_loadu_ps(src + q)
                                         : _mm512_maskz_loadu_ps((__mmask16)bit_range(lo - q, hi - q), src + q));
    }
}

/* The sums of taps ky of one output row into a[0 .. nv), from its tap row's slot p at output
 * column ox: 3 taps across at dilation 1 (x3) as loads at vector boundaries, the taps one and two
 * columns further on assembled from two of them (valignd): loads across cache lines cost Zen 4
 * about twice the FMA they feed. Else one load per tap at its offset. */
__attribute__((target("avx512f,avx2,fma"), always_inline)) static inline void dwp_taps(const dwp_job *d, __m512 *a,
                                                                                      const float *p, const float *w,
                                                                                      int nv, int64_t kw, bool x3) {
    if (!x3) {
        int64_t dx = d->j->g.d[2];
        for (int64_t kx = 0; kx < kw; kx++) {
            __m512 wv = _mm512_set1_ps(w[kx]);
            for (int v = 0; v < nv; v++) a[v] = _mm512_fmadd_ps(wv, _mm512_loadu_ps(p + kx * dx + 16 * v), a[v]);
        }
        return;
    }
    __m512 w0 = _mm512_set1_ps(w[0]), w1 = _mm512_set1_ps(w[1]), w2 = _mm512_set1_ps(w[2]);
    __m512 cur = _mm512_loadu_ps(p);
    for (int v = 0; v < nv; v++) {
        __m512 next = _mm512_loadu_ps(p + 16 * (v + 1));
        __m512i ci = _mm512_castps_si512(cur), ni = _mm512_castps_si512(next);
        a[v] = _mm512_fmadd_ps(w0, cur, a[v]);
        a[v] = _mm512_fmadd_ps(w1, _mm512_castsi512_ps(_mm512_alignr_epi32(ni, ci, 1)), a[v]);
        a[v] = _mm512_fmadd_ps(w2, _mm512_castsi512_ps(_mm512_alignr_epi32(ni, ci, 2)), a[v]);
        cur = next;
    }
}

/* Outputs [ox, ox + 16 * nv) of one row (two: of two rows) from the tap rows' slots s0 (s1);
 * nv, two, kh, kw and x3 are constants where inlined. */
__attribute__((target("avx512f,avx2,fma"), always_inline)) static inline void dwp_block(
    const dwp_job *d, const float *const *s0, const float *const *s1, const dw_rowpair *rp, int64_t ox, int nv,
    bool two, int64_t kh, int64_t kw, bool x3) {
    __m512 a0[4], a1[4];
    for (int v = 0; v < nv; v++) a0[v] = a1[v] = _mm512_set1_ps(rp->bias);
    for (int64_t ky = 0; ky < kh; ky++) {
        dwp_taps(d, a0, s0[ky] + ox, rp->w + ky * kw, nv, kw, x3);
        if (two) dwp_taps(d, a1, s1[ky] + ox, rp->w + ky * kw, nv, kw, x3);
    }
    dw_store512(rp, ox, nv, two, a0, a1);
}

/* A row (pair) of outputs, up to four vectors at a time. */
__attribute__((target("avx512f,avx2,fma"), always_inline)) static inline void dwp_rows_k(
    const dwp_job *d, const float *const *s0, const float *const *s1, const dw_rowpair *rp, int64_t kh, int64_t kw,
    bool x3) {
    bool two = rp->y1 != NULL;
    for (int64_t ox = 0; ox < rp->out_w; ox += 64) {
        int nv = (int)KILN__MIN(4, (rp->out_w - ox + 15) / 16);
        switch (nv * 2 + two) {
        case 2: dwp_block(d, s0, s1, rp, ox, 1, false, kh, kw, x3); break;
        case 3: dwp_block(d, s0, s1, rp, ox, 1, true, kh, kw, x3); break;
        case 4: dwp_block(d, s0, s1, rp, ox, 2, false, kh, kw, x3); break;
        case 5: dwp_block(d, s0, s1, rp, ox, 2, true, kh, kw, x3); break;
        case 6: dwp_block(d, s0, s1, rp, ox, 3, false, kh, kw, x3); break;
        case 7: dwp_block(d, s0, s1, rp, ox, 3, true, kh, kw, x3); break;
        case 8: dwp_block(d, s0, s1, rp, ox, 4, false, kh, kw, x3); break;
        default: dwp_block(d, s0, s1, rp, ox, 4, true, kh, kw, x3); break;
        }
    }
}

__attribute__((target("avx512f,avx2,fma"))) static void dwp_rows(const dwp_job *d, const float *const *s0,
                                                                 const float *const *s1, const dw_rowpair *rp) {
    const conv_geom *g = &d->j->g;
    if (g->k[1] == 3 && g->k[2] == 3 && g->d[2] == 1) /* the usual kernel: constant loops, aligned loads */
        dwp_rows_k(d, s0, s1, rp, 3, 3, true);
    else
        dwp_rows_k(d, s0, s1, rp, g->k[1], g->k[2], false);
}

static void dwp_plane(const dwp_job *d, int64_t n, int64_t c, float *ring) {
    const dw_conv *j = d->j;
    const conv_geom *g = &j->g;
    const float *x = j->x + (n * g->c + c) * g->in_plane;
    float *y = j->y + (n * g->m + c) * g->out_plane;
    const float *res = j->res ? j->res + (n * g->m + c) * g->out_plane : NULL;
    int kind = j->act->kind;
    dw_rowpair rp = dw_channel_rowpair(j, c);
    const float *s0[DW_MAX_TAPS], *s1[DW_MAX_TAPS];
    int64_t ow = g->out[2], kh = g->k[1], next = -g->pb[1]; /* next: the first input row not in the ring */
    for (int64_t oy = 0; oy < g->out[1]; oy += 2) {
        bool two = oy + 1 < g->out[1];
        int64_t top = oy * g->s[1] - g->pb[1], last = top + (two ? g->s[1] : 0) + (kh - 1) * g->d[1];
        for (; next <= last; next++)
            dwp_load_row(d, x, next, ring + ((next + g->pb[1]) & (DWP_RING - 1)) * d->slot_floats);
        for (int64_t ky = 0; ky < kh; ky++) {
            int64_t iy = top + ky * g->d[1];
            s0[ky] = ring + ((iy + g->pb[1]) & (DWP_RING - 1)) * d->slot_floats;
            s1[ky] = ring + ((iy + g->s[1] + g->pb[1]) & (DWP_RING - 1)) * d->slot_floats;
        }
        int64_t o = oy * ow;
        dw_rowpair_at(&rp, y, res, o, two);
        dwp_rows(d, s0, s1, &rp);
        if (kind >= 0 && !rp.clamp) kiln__apply_act_f32(j->act, y + o, two ? 2 * ow : ow);
    }
}

/* Slot s: its contiguous share of the (image, channel) planes. */
static void dwp_range(void *arg, int64_t begin, int64_t end) {
    const dwp_job *d = arg;
    int64_t planes = d->j->g.n * d->j->g.c;
    for (int64_t s = begin; s < end; s++)
        for (int64_t t = s * planes / d->slots; t < (s + 1) * planes / d->slots; t++)
            dwp_plane(d, t / d->j->g.c, t % d->j->g.c, d->scratch + s * d->per_slot);
}

static kiln_status depthwise_padded_rows(dw_conv *j, kiln__cpu_ctx *ctx) {
    const conv_geom *g = &j->g;
    /* Full vectors read up to the last output vector's end, and one vector more (x3), past the
     * row's start. */
    int64_t reach = KILN__MAX(16, (g->k[2] - 1) * g->d[2] + 15) / 16 * 16;
    dwp_job d = {.j = j, .slot_floats = (g->out[2] + 15) / 16 * 16 + reach};
    d.slots = KILN__MIN(kiln__pool_threads(ctx->pool), g->n * g->c);
    KILN__TRY(slot_scratch(ctx, DWP_RING, d.slot_floats, 1, 0, d.slots, &d.per_slot, &d.scratch));
    kiln__parallel_slots(ctx->pool, d.slots, dwp_range, &d);
    kiln__free(ctx->alloc, d.scratch);
    return KILN_OK;
}

/* 2-D depthwise with AVX2 alone: each plane's input rows are copied, as the outputs reach them,
 * into a ring of zero-padded rows (at x-stride 2 split into their even columns, then their odd
 * ones), so that every tap of every output vector is one unmasked load at a fixed offset and an
 * FMA. The row kernels above build a lane mask per tap and vector near the borders (on 7- and
 * 14-wide planes, every vector) and at stride 2 gather each tap's even columns apart. */
#define DWA_RING 32 /* padded rows held (a power of two): one block's windows span at most this many */
#define DWA_CHAINS 8 /* output vectors summed at once: Zen 3's FMA latency (4) times its 2 pipes */

typedef struct dwa_job {
    const dw_conv *j;
    int64_t row_floats;       /* one ring row (stride 2: its even columns, then its odd ones) */
    int64_t half;             /* stride 2: where a ring row's odd columns start */
    int64_t off[DW_MAX_TAPS]; /* tap kx: its place in a ring row, less the output column */
    const __m256i *lanes;     /* per 8 columns of a padded row: those inside the input row */
    int64_t rows, nv;         /* a block: rows x nv output vectors, rows * nv == DWA_CHAINS */
    float *scratch;           /* per slot: DWA_RING ring rows */
    int64_t per_slot, slots;
} dwa_job;

static bool dwa_applies(const conv_geom *g) {
    return kiln__cpu_simd() == KILN__SIMD_AVX2 && g->k[0] == 1 && g->in[0] == 1 && g->out[0] == 1 &&
           g->pb[0] == 0 && g->s[2] <= 2 && g->kvol <= DW_MAX_TAPS &&
           (DWA_CHAINS - 1) * g->s[1] + (g->k[1] - 1) * g->d[1] + 1 <= DWA_RING;
}

/* Input row iy of plane x into ring row dst, zero-padded: the lanes outside the input row are
 * masked off (not read); at stride 2 each 16 padded columns are split into 8 even and 8 odd. */
__attribute__((target("avx2,fma"), always_inline)) static inline void dwa_load_row(const dwa_job *d, const float *x,
                                                                                 int64_t iy, float *dst) {
    const conv_geom *g = &d->j->g;
    if (iy < 0 || iy >= g->in[1]) {
        for (int64_t q = 0; q < d->row_floats; q += 8) _mm256_storeu_ps(dst + q, _mm256_setzero_ps());
        return;
    }
    /* padded column q is input column q - pb */
    const float *src = x + iy * g->in[2] - g->pb[2];
    if (g->s[2] == 1) {
        for (int64_t q = 0; q < d->row_floats; q += 8)
            _mm256_storeu_ps(dst + q, _mm256_maskload_ps(src + q, d->lanes[q / 8]));
        return;
    }
    for (int64_t q = 0; q < d->row_floats; q += 16) {
        __m256 a = _mm256_maskload_ps(src + q, d->lanes[q / 8]), b = _mm256_maskload_ps(src + q + 8, d->lanes[q / 8 + 1]);
        /* shuffle_ps works within 128-bit lanes: the 64-bit permute puts its halves in order */
        __m256d even = _mm256_castps_pd(_mm256_shuffle_ps(a, b, 0x88));
        __m256d odd = _mm256_castps_pd(_mm256_shuffle_ps(a, b, 0xDD));
        _mm256_storeu_ps(dst + q / 2, _mm256_castpd_ps(_mm256_permute4x64_pd(even, 0xD8)));
        _mm256_storeu_ps(dst + d->half + q / 2, _mm256_castpd_ps(_mm256_permute4x64_pd(odd, 0xD8)));
    }
}

/* What a plane's output vectors share besides their sums. */
typedef struct dwa_out {
    __m256 bias, lo, hi; /* lo, hi: the clamp of relu/clip */
    __m256i tail;        /* the store mask of a row's last vector */
    int64_t ow;
    bool clamp;
    bool spill; /* a row is one block's vectors and its last one's extra lanes fit in the next row:
                   that vector is stored whole into the next row, which is stored after it
                   (masked stores cost Zen 3 several times a plain one) */
} dwa_out;

/* Outputs [ox, ox + 8 * nv) of `rows` output rows from row y on (res: the residual at the same
 * place, or NULL), from each row's tap rows in the ring, src[r][ky]; the first `live` rows are
 * stored (the others repeat row 0), the last of them the plane's last when `plane_end`. Each (row, vector) sums its taps in its own register, so that
 * DWA_CHAINS FMAs are in flight: one 8-wide vector per row of a 7x7 plane would otherwise wait on
 * each of its 9 taps in turn. rows, nv, kh and kw are constants where inlined. */
__attribute__((target("avx2,fma"), always_inline)) static inline void dwa_block(
    const dwa_job *d, const dwa_out *o, const float *const src[][DW_MAX_TAPS], const float *w, float *y,
    const float *res, int64_t ox, int rows, int live, bool plane_end, int nv, int64_t kh, int64_t kw) {
    __m256 a[DWA_CHAINS][4];
    for (int r = 0; r < rows; r++)
        for (int v = 0; v < nv; v++) a[r][v] = o->bias;
    for (int64_t ky = 0; ky < kh; ky++)
        for (int64_t kx = 0; kx < kw; kx++) {
            __m256 wt = _mm256_set1_ps(w[ky * kw + kx]);
            for (int r = 0; r < rows; r++) {
                const float *p = src[r][ky] + ox + d->off[kx];
                for (int v = 0; v < nv; v++) a[r][v] = _mm256_fmadd_ps(wt, _mm256_loadu_ps(p + 8 * v), a[r][v]);
            }
        }
    for (int r = 0; r < live; r++)
        for (int v = 0; v < nv; v++) {
            int64_t at = r * o->ow + ox + 8 * v;
            bool whole = ox + 8 * v + 8 <= o->ow || (o->spill && (r + 1 < live || !plane_end));
            __m256 t = a[r][v];
            if (res) t = _mm256_add_ps(t, whole ? _mm256_loadu_ps(res + at) : _mm256_maskload_ps(res + at, o->tail));
            if (o->clamp) t = _mm256_min_ps(_mm256_max_ps(t, o->lo), o->hi);
            if (whole)
                _mm256_storeu_ps(y + at, t);
            else
                _mm256_maskstore_ps(y + at, o->tail, t);
        }
}

/* A block of rows, 8 * nv outputs of each at a time (fewer at the rows' ends); rows, nv, kh and
 * kw are constants where inlined. */
__attribute__((target("avx2,fma"), always_inline)) static inline void dwa_rows(
    const dwa_job *d, const dwa_out *o, const float *const src[][DW_MAX_TAPS], const float *w, float *y,
    const float *res, int rows, int live, bool plane_end, int nv, int64_t kh, int64_t kw) {
    for (int64_t ox = 0; ox < o->ow; ox += 8 * nv) {
        switch (KILN__MIN(nv, (o->ow - ox + 7) / 8)) {
        case 1: dwa_block(d, o, src, w, y, res, ox, rows, live, plane_end, 1, kh, kw); break;
        case 2: dwa_block(d, o, src, w, y, res, ox, rows, live, plane_end, 2, kh, kw); break;
        case 3: dwa_block(d, o, src, w, y, res, ox, rows, live, plane_end, 3, kh, kw); break;
        default: dwa_block(d, o, src, w, y, res, ox, rows, live, plane_end, 4, kh, kw); break;
        }
    }
}

/* Plane (n, c), its kernel kh x kw (constants where inlined): blocks of d->rows output rows in
 * order, each input row copied into the ring once the first block reaches it; the residual added
 * and relu/clip applied before the stores. */
__attribute__((target("avx2,fma"), always_inline)) static inline void dwa_plane_k(const dwa_job *d, int64_t n,
                                                                                int64_t c, float *ring,
                                                                                int64_t kh, int64_t kw) {
    const dw_conv *j = d->j;
    const conv_geom *g = &j->g;
    const float *x = j->x + (n * g->c + c) * g->in_plane, *w = j->w + c * g->kvol;
    float *y = j->y + (n * g->m + c) * g->out_plane;
    const float *res = j->res ? j->res + (n * g->m + c) * g->out_plane : NULL;
    int kind = j->act->kind;
    int64_t ow = g->out[2], next = -g->pb[1]; /* next: the first input row not in the ring */
    dwa_out o = {.bias = _mm256_set1_ps(j->bias ? j->bias[c] : 0.0f),
                 .lo = _mm256_set1_ps(kind == KILN_ACT_CLIP ? j->act->alpha : 0.0f),
                 .hi = _mm256_set1_ps(kind == KILN_ACT_CLIP ? j->act->beta : __builtin_inff()),
                 .tail = mask8(bit_range(0, ow - (ow - 1) / 8 * 8)), .ow = ow,
                 .clamp = kind == KILN_ACT_RELU || kind == KILN_ACT_CLIP, .spill = ow <= 8 * d->nv && 2 * ow >= (ow + 7) / 8 * 8};
    const float *src[DWA_CHAINS][DW_MAX_TAPS];
    for (int64_t oy = 0; oy < g->out[1]; oy += d->rows) {
        int live = (int)KILN__MIN(d->rows, g->out[1] - oy);
        int64_t top = oy * g->s[1] - g->pb[1], last = top + (live - 1) * g->s[1] + (kh - 1) * g->d[1];
        for (next = KILN__MAX(next, top); next <= last; next++)
            dwa_load_row(d, x, next, ring + ((next + g->pb[1]) & (DWA_RING - 1)) * d->row_floats);
        for (int64_t r = 0; r < d->rows; r++)
            for (int64_t ky = 0; ky < kh; ky++) {
                int64_t iy = top + (r < live ? r : 0) * g->s[1] + ky * g->d[1];
                src[r][ky] = ring + ((iy + g->pb[1]) & (DWA_RING - 1)) * d->row_floats;
            }
        float *yr = y + oy * ow;
        const float *rr = res ? res + oy * ow : NULL;
        bool end = oy + live == g->out[1];
        if (d->nv == 1)
            dwa_rows(d, &o, src, w, yr, rr, 8, live, end, 1, kh, kw);
        else if (d->nv == 2)
            dwa_rows(d, &o, src, w, yr, rr, 4, live, end, 2, kh, kw);
        else
            dwa_rows(d, &o, src, w, yr, rr, 2, live, end, 4, kh, kw);
        if (kind >= 0 && !o.clamp) kiln__apply_act_f32(j->act, yr, live * ow);
    }
}

__attribute__((target("avx2,fma"))) static void dwa_plane(const dwa_job *d, int64_t n, int64_t c, float *ring) {
    const conv_geom *g = &d->j->g;
    if (g->k[1] == 3 && g->k[2] == 3) /* the usual kernel: constant loops */
        dwa_plane_k(d, n, c, ring, 3, 3);
    else
        dwa_plane_k(d, n, c, ring, g->k[1], g->k[2]);
}

/* Slot s: its contiguous share of the (image, channel) planes. */
static void dwa_range(void *arg, int64_t begin, int64_t end) {
    const dwa_job *d = arg;
    int64_t planes = d->j->g.n * d->j->g.c;
    for (int64_t s = begin; s < end; s++)
        for (int64_t t = s * planes / d->slots; t < (s + 1) * planes / d->slots; t++)
            dwa_plane(d, t / d->j->g.c, t % d->j->g.c, d->scratch + s * d->per_slot);
}

__attribute__((target("avx2,fma"))) static void dwa_set_lanes(const conv_geom *g, int64_t row_floats,
                                                              __m256i *lanes) {
    for (int64_t q = 0; q < row_floats; q += 8) lanes[q / 8] = mask8(bit_range(g->pb[2] - q, g->pb[2] + g->in[2] - q));
}

static kiln_status depthwise_avx2(dw_conv *j, kiln__cpu_ctx *ctx) {
    const conv_geom *g = &j->g;
    /* Columns that full vectors of outputs read: up to the last vector's end, past the last tap. */
    int64_t out_cols = (g->out[2] + 7) / 8 * 8, taps = (g->k[2] - 1) * g->d[2];
    dwa_job d = {.j = j};
    if (g->s[2] == 1) {
        d.row_floats = (KILN__MAX(out_cols + taps, g->pb[2] + g->in[2]) + 7) / 8 * 8;
        for (int64_t kx = 0; kx < g->k[2]; kx++) d.off[kx] = kx * g->d[2];
    } else {
        /* padded column 2 * ox + t is even column ox + t / 2 (t even) or odd column ox + t / 2 */
        d.row_floats = (KILN__MAX(2 * (out_cols + taps / 2), g->pb[2] + g->in[2]) + 15) / 16 * 16;
        d.half = d.row_floats / 2;
        for (int64_t kx = 0; kx < g->k[2]; kx++) {
            int64_t t = kx * g->d[2];
            d.off[kx] = t / 2 + (t % 2 ? d.half : 0);
        }
    }
    d.nv = g->out[2] <= 8 ? 1 : g->out[2] <= 16 ? 2 : 4;
    d.rows = DWA_CHAINS / d.nv;
    d.slots = KILN__MIN(kiln__pool_threads(ctx->pool), g->n * g->c);
    __m256i *lanes = kiln__malloc_aligned(ctx->alloc, (size_t)d.row_floats / 8 * sizeof *lanes, 32);
    if (!lanes) return KILN_OUT_OF_MEMORY;
    dwa_set_lanes(g, d.row_floats, lanes);
    d.lanes = lanes;
    kiln_status st = slot_scratch(ctx, DWA_RING, d.row_floats, 1, 0, d.slots, &d.per_slot, &d.scratch);
    if (st == KILN_OK) kiln__parallel_slots(ctx->pool, d.slots, dwa_range, &d);
    kiln__free(ctx->alloc, d.scratch);
    kiln__free(ctx->alloc, lanes);
    return st;
}

/* Depthwise over blocks of 16 channels (AVX-512): on small planes a vector along a row wastes most
 * of its lanes (9 of 16 on 7x7 outputs). Here a block's inputs are copied into a zero-padded
 * position-major scratch [hp][wp][16] (transposed when NCHW; NCHW16C ones may be read in place
 * instead, dwc_in_place), each output position is then one vector of the block's 16
 * channels (one FMA per tap, the taps' weights held in registers), and 16 positions at a time
 * are transposed back into the output planes. On large planes the transposes cost about what
 * the row vectors waste, so those stay on the row path, except stride-1 planes up to 56x56
 * (MobileNetV2's 144 maps on 56x56 inside the network: 0.24 ms against 0.30 at 1 thread, 0.149
 * against 0.173 at 2; at stride 2 onto 56x56, 96 maps: 0.39 against 0.33). NCHW16C edges stop
 * at DWC_MAX_PLANE: on 56x56 the pointwise layers beside them are faster on the row GEMM in NCHW
 * than on the channel-vector GEMM in blocks (24 -> 144: 0.116 ms against 0.155). */
#define DWC_MAX_PLANE 784
#define DWC_MAX_PLANE_S1 3136
#define DWC_BLOCK 16

typedef struct dwc_job {
    const dw_conv *j;
    int64_t hp, wp;     /* the padded input the outputs reach */
    float *scratch;     /* per slot: hp * wp * 16 floats (per_slot, rounded up) */
    int64_t per_slot, slots, blocks;
    bool by_rows;
} dwc_job;

static bool dwc_applies(const conv_geom *g) {
    return kiln__cpu_simd() == KILN__SIMD_AVX512 && g->k[0] == 1 && g->in[0] == 1 && g->out[0] == 1 &&
           g->pb[0] == 0 && g->kvol <= DW_MAX_TAPS &&
           g->out_plane <= (g->s[1] == 1 && g->s[2] == 1 ? DWC_MAX_PLANE_S1 : DWC_MAX_PLANE);
}

/* What a block's outputs need besides the sums: its bias as the sums' start, its residual planes,
 * and the activation (a clamp in registers, others over the planes afterwards). */
typedef struct dwc_out {
    __m512 bias, lo, hi;
    bool clamp;
    const float *res; /* the block's first residual plane, or NULL */
    float *y;         /* its first output plane */
    int nc;           /* its channels */
    bool blocked;     /* y in NCHW16C: [position][16] (no residual) */
} dwc_out;

/* Stores 16 positions' sums r (cnt of them real) from position pos0 on: as they are into an
 * NCHW16C output, else transposed into the block's output planes with the residual added. */
__attribute__((target("avx512f,avx2,fma"), always_inline)) static inline void dwc_store(const dwc_out *o, __m512 *r,
                                                                                       int64_t pos0, int cnt,
                                                                                       int64_t plane) {
    if (o->blocked) {
        for (int p = 0; p < cnt; p++)
            _mm512_storeu_ps(o->y + (pos0 + p) * DWC_BLOCK,
                             o->clamp ? _mm512_min_ps(_mm512_max_ps(r[p], o->lo), o->hi) : r[p]);
        return;
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

/* The outputs of one block from its zero-padded copy xs: 16 positions at a time, each the sum
 * over kv taps (kv constant for 3x3 kernels, so their weights stay in registers). */
__attribute__((target("avx512f,avx2,fma"), always_inline)) static inline void dwc_outputs(
    const dwc_job *d, const float *xs, const __m512 *wv, const int64_t *toff, int kv, const dwc_out *o,
    int64_t oy0, int64_t oy1) {
    const conv_geom *g = &d->j->g;
    int64_t wo = g->out[2], plane = g->out_plane, step_x = g->s[2] * DWC_BLOCK;
    int64_t step_row = g->s[1] * d->wp * DWC_BLOCK - wo * step_x; /* from past a row's end to the next row */
    const float *base = xs;
    int64_t ox = 0, end = oy1 * wo;
    for (int64_t pos0 = oy0 * wo; pos0 < end; pos0 += 16) {
        int cnt = (int)KILN__MIN(16, end - pos0);
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
        dwc_store(o, r, pos0, cnt, plane);
    }
}

/* The same from the block's NCHW16C input x itself ([in[1]][in[2]][16]): a window that crosses
 * the padding sums only its taps inside. Tap t lies dy[t] rows and dx[t] columns from a window's
 * start. A loop of its own, not a mode of dwc_outputs: with the two merged, GCC reloaded the
 * weights and offsets on every tap and the copied path ran 10-30% slower. */
__attribute__((target("avx512f,avx2,fma"), always_inline)) static inline void dwc_outputs_in_place(
    const dwc_job *d, const float *x, const __m512 *wv, const int64_t *dy, const int64_t *dx, int kv,
    const dwc_out *o, int64_t oy0, int64_t oy1) {
    const conv_geom *g = &d->j->g;
    int64_t h = g->in[1], w = g->in[2], wo = g->out[2], plane = g->out_plane, sy = g->s[1], sx = g->s[2];
    int64_t reach_y = (g->k[1] - 1) * g->d[1], last_x = w - 1 - (g->k[2] - 1) * g->d[2] + g->pb[2];
    /* Output columns [ox_lo, ox_hi) have their whole window inside the row. */
    int64_t ox_lo = (g->pb[2] + sx - 1) / sx, ox_hi = last_x >= 0 ? KILN__MIN(wo, last_x / sx + 1) : 0;
    int64_t toff[DW_MAX_TAPS];
    for (int t = 0; t < kv; t++) toff[t] = (dy[t] * w + dx[t]) * DWC_BLOCK;
    int64_t ox = 0, iy = oy0 * sy - g->pb[1], ix = -g->pb[2], end = oy1 * wo; /* the window's start */
    bool row_inside = iy >= 0 && iy + reach_y < h;
    for (int64_t pos0 = oy0 * wo; pos0 < end; pos0 += 16) {
        int cnt = (int)KILN__MIN(16, end - pos0);
        __m512 r[16];
        for (int p = 0; p < 16; p++) {
            r[p] = o->bias;
            if (p >= cnt) continue;
            if (row_inside && ox >= ox_lo && ox < ox_hi) {
                const float *base = x + (iy * w + ix) * DWC_BLOCK;
                for (int t = 0; t < kv; t++) r[p] = _mm512_fmadd_ps(wv[t], _mm512_loadu_ps(base + toff[t]), r[p]);
            } else {
                for (int t = 0; t < kv; t++) {
                    int64_t ty = iy + dy[t], tx = ix + dx[t];
                    if (ty >= 0 && tx >= 0 && ty < h && tx < w)
                        r[p] = _mm512_fmadd_ps(wv[t], _mm512_loadu_ps(x + (ty * w + tx) * DWC_BLOCK), r[p]);
                }
            }
            ix += sx;
            if (++ox == wo) {
                ox = 0;
                ix = -g->pb[2];
                iy += sy;
                row_inside = iy >= 0 && iy + reach_y < h;
            }
        }
        dwc_store(o, r, pos0, cnt, plane);
    }
}

__attribute__((target("avx512f,avx2,fma"))) static void dwc_outputs_3x3(const dwc_job *d, const float *xs,
                                                                        const __m512 *wv, const int64_t *toff,
                                                                        const dwc_out *o, int64_t oy0, int64_t oy1) {
    dwc_outputs(d, xs, wv, toff, 9, o, oy0, oy1);
}

__attribute__((target("avx512f,avx2,fma"))) static void dwc_outputs_any(const dwc_job *d, const float *xs,
                                                                        const __m512 *wv, const int64_t *toff,
                                                                        const dwc_out *o, int64_t oy0, int64_t oy1) {
    dwc_outputs(d, xs, wv, toff, (int)d->j->g.kvol, o, oy0, oy1);
}

__attribute__((target("avx512f,avx2,fma"))) static void dwc_outputs_in_place_3x3(const dwc_job *d, const float *x,
                                                                                 const __m512 *wv, const int64_t *dy,
                                                                                 const int64_t *dx, const dwc_out *o,
                                                                                 int64_t oy0, int64_t oy1) {
    dwc_outputs_in_place(d, x, wv, dy, dx, 9, o, oy0, oy1);
}

__attribute__((target("avx512f,avx2,fma"))) static void dwc_outputs_in_place_any(const dwc_job *d, const float *x,
                                                                                 const __m512 *wv, const int64_t *dy,
                                                                                 const int64_t *dx, const dwc_out *o,
                                                                                 int64_t oy0, int64_t oy1) {
    dwc_outputs_in_place(d, x, wv, dy, dx, (int)d->j->g.kvol, o, oy0, oy1);
}

/* An NCHW16C input is read in place at stride 2 and on planes from 28x28 on, where copying it
 * was most of the layer's time (MobileNetV2, 1 thread: 144 maps from 56x56 at stride 2, 0.130 ->
 * 0.065 ms; 192 from 28x28 at stride 2, 0.033 -> 0.016; 192 on 28x28, 0.076 -> 0.060). On 14x14
 * and 7x7 at stride 1 a third to a half of the windows cross the padding, and the copy (into L1)
 * is cheaper than checking their taps (576 maps on 14x14: 0.040 ms copied, 0.047 in place; 960
 * on 7x7: 0.025 against 0.031). */
static bool dwc_in_place(const conv_geom *g, bool x_blocked) {
    return x_blocked && (g->s[1] > 1 || g->s[2] > 1 || g->in_plane >= 784);
}

/* Output rows [oy0, oy1) of channels [c0, c0 + 16) of image n. Unless its input is read in place
 * (dwc_in_place), the input rows they reach are copied into xs, zero-padded (transposed when
 * NCHW), first. */
__attribute__((target("avx512f,avx2,fma"))) static void dwc_block(const dwc_job *d, int64_t n, int64_t c0, float *xs,
                                                                  int64_t oy0, int64_t oy1) {
    const dw_conv *j = d->j;
    const conv_geom *g = &j->g;
    int nc = (int)KILN__MIN(DWC_BLOCK, g->c - c0);
    const float *x = j->x + (n * g->c + c0) * g->in_plane;
    bool in_place = dwc_in_place(g, j->x_blocked);
    if (!in_place) {
        /* Padded rows [ty0, ty1) land in xs from its start. */
        int64_t ty0 = oy0 * g->s[1], ty1 = KILN__MIN(d->hp, (oy1 - 1) * g->s[1] + (g->k[1] - 1) * g->d[1] + 1);
        int64_t cols = KILN__MAX(0, KILN__MIN(g->in[2], d->wp - g->pb[2])); /* input columns the outputs reach */
        int64_t col0 = KILN__MIN(g->pb[2], d->wp), col1 = col0 + cols;
        size_t lane_bytes = DWC_BLOCK * sizeof *xs;
        for (int64_t ty = ty0; ty < ty1; ty++) {
            float *row = xs + (ty - ty0) * d->wp * DWC_BLOCK;
            int64_t iy = ty - g->pb[1];
            if (iy < 0 || iy >= g->in[1]) {
                memset(row, 0, (size_t)d->wp * lane_bytes);
                continue;
            }
            memset(row, 0, (size_t)col0 * lane_bytes);
            memset(row + col1 * DWC_BLOCK, 0, (size_t)(d->wp - col1) * lane_bytes);
            float *dst = row + col0 * DWC_BLOCK;
            if (j->x_blocked) { /* the block's rows are [in[2]][16] already */
                memcpy(dst, x + iy * g->in[2] * DWC_BLOCK, (size_t)cols * lane_bytes);
                continue;
            }
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
    }
    __m512 wv[DW_MAX_TAPS];
    int64_t toff[DW_MAX_TAPS], dy[DW_MAX_TAPS], dx[DW_MAX_TAPS];
    for (int64_t t = 0; t < g->kvol; t++) {
        float w16[DWC_BLOCK] = {0};
        for (int c = 0; c < nc; c++) w16[c] = j->w[(c0 + c) * g->kvol + t];
        wv[t] = _mm512_loadu_ps(w16);
        dy[t] = t / g->k[2] * g->d[1];
        dx[t] = t % g->k[2] * g->d[2];
        toff[t] = (dy[t] * d->wp + dx[t]) * DWC_BLOCK;
    }
    int kind = j->act->kind;
    dwc_out o = {.clamp = kind == KILN_ACT_RELU || kind == KILN_ACT_CLIP, .nc = nc, .blocked = j->y_blocked,
                 .y = j->y + (n * g->m + c0) * g->out_plane,
                 .res = j->res ? j->res + (n * g->m + c0) * g->out_plane : NULL};
    float b16[DWC_BLOCK] = {0};
    for (int c = 0; c < nc && j->bias; c++) b16[c] = j->bias[c0 + c];
    o.bias = _mm512_loadu_ps(b16);
    o.lo = _mm512_set1_ps(kind == KILN_ACT_CLIP ? j->act->alpha : 0.0f);
    o.hi = _mm512_set1_ps(kind == KILN_ACT_CLIP ? j->act->beta : __builtin_inff());
    if (in_place && g->kvol == 9)
        dwc_outputs_in_place_3x3(d, x, wv, dy, dx, &o, oy0, oy1);
    else if (in_place)
        dwc_outputs_in_place_any(d, x, wv, dy, dx, &o, oy0, oy1);
    else if (g->kvol == 9)
        dwc_outputs_3x3(d, xs, wv, toff, &o, oy0, oy1);
    else
        dwc_outputs_any(d, xs, wv, toff, &o, oy0, oy1);
    int64_t first = oy0 * g->out[2], count = (oy1 - oy0) * g->out[2];
    if (kind >= 0 && !o.clamp && o.blocked)
        kiln__apply_act_f32(j->act, o.y + first * DWC_BLOCK, count * DWC_BLOCK);
    else if (kind >= 0 && !o.clamp)
        for (int c = 0; c < nc; c++) kiln__apply_act_f32(j->act, o.y + c * g->out_plane + first, count);
}

/* Each thread takes its contiguous share of the (image, block) tasks, so that its channels are
 * those the channel-vector GEMM's same thread wrote when it split the layer before by maps. From
 * 28x28 inputs on (at two threads or more), its share of the output rows of every block instead:
 * the pointwise layers on either side split their positions the same way (kiln__sgemm_cv's split
 * by positions), so a thread reads what its own core wrote but for the window's halo rows.
 * Measured inside MobileNetV2 at 2 threads (per-layer medians, the two splits alternating in one
 * process): 144 maps from 56x56 at stride 2 0.050 -> 0.032 ms and the projection after it 0.044
 * -> 0.037; 192 maps on 28x28 0.039 -> 0.037 and 0.052 -> 0.045 after; 192 from 28x28 at stride
 * 2 0.018 -> 0.016; the whole network 0.9% faster. On 14x14 (+-5%) and 7x7 (1.4-1.6x slower: of
 * nine padded rows a thread copies five or six for its three or four) the split by channels
 * stays. */
#define DWC_ROWS_MIN_PLANE 784

/* Pieces of a thread's output rows (kiln__parallel_shares) are at least this many rows: each
 * copies its window's halo rows again. */
#define DWC_MIN_PIECE_ROWS 4

/* A piece of a thread's share: output rows [begin, end) of every (image, block) task, or tasks
 * [begin, end) whole. */
static void dwc_range(void *arg, int64_t begin, int64_t end) {
    const dwc_job *d = arg;
    int64_t tasks = d->j->g.n * d->blocks, ho = d->j->g.out[1];
    float *xs = d->scratch ? d->scratch + KILN__MIN(kiln__pool_thread(), d->slots - 1) * d->per_slot : NULL;
    if (d->by_rows) {
        for (int64_t t = 0; t < tasks; t++) dwc_block(d, t / d->blocks, t % d->blocks * DWC_BLOCK, xs, begin, end);
        return;
    }
    for (int64_t t = begin; t < end; t++) dwc_block(d, t / d->blocks, t % d->blocks * DWC_BLOCK, xs, 0, ho);
}

static kiln_status depthwise_blocked(dw_conv *j, kiln__cpu_ctx *ctx) {
    const conv_geom *g = &j->g;
    dwc_job d = {.j = j, .hp = (g->out[1] - 1) * g->s[1] + (g->k[1] - 1) * g->d[1] + 1,
                 .wp = (g->out[2] - 1) * g->s[2] + (g->k[2] - 1) * g->d[2] + 1, .blocks = (g->c + 15) / 16};
    int64_t threads = kiln__pool_threads(ctx->pool);
    d.by_rows = threads > 1 && g->in_plane >= DWC_ROWS_MIN_PLANE;
    d.slots = KILN__MIN(threads, d.by_rows ? g->out[1] : g->n * d.blocks);
    if (!dwc_in_place(g, j->x_blocked))
        KILN__TRY(slot_scratch(ctx, d.hp, d.wp, DWC_BLOCK, 0, d.slots, &d.per_slot, &d.scratch));
    kiln__parallel_shares(ctx->pool, d.by_rows ? g->out[1] : g->n * d.blocks, d.by_rows ? DWC_MIN_PIECE_ROWS : 1,
                          dwc_range, &d);
    kiln__free(ctx->alloc, d.scratch);
    return KILN_OK;
}

bool kiln__conv_depthwise_blocked_ok(const kiln__conv_geom *g) { return dwc_applies(g) && g->out_plane <= DWC_MAX_PLANE; }

kiln_status kiln__conv_depthwise(const kiln__conv_geom *geom, const float *x, bool x_blocked, const float *w,
                                 const float *bias, const float *res, const kiln__act *act, float *y,
                                 bool y_blocked, kiln__cpu_ctx *ctx) {
    dw_conv job = {*geom, x, w, bias, res, y, act, x_blocked, y_blocked}, *j = &job;
    const conv_geom *g = &j->g;
    if (dwc_applies(g) && !(y_blocked && res)) return depthwise_blocked(j, ctx);
    if (x_blocked || y_blocked)
        return kiln__error(KILN_INTERNAL_ERROR, "depthwise convolution: no kernel for NCHW16C here");
    if (dws_applies(g)) return depthwise_small(j, ctx);
    if (dwp_applies(g)) return depthwise_padded_rows(j, ctx);
    if (dwa_applies(g)) return depthwise_avx2(j, ctx);
    if (kiln__cpu_simd() == KILN__SIMD_NONE || g->k[0] * g->k[1] > DW_MAX_ROWS || g->k[2] > DW_MAX_TAPS ||
        g->s[2] > 2) {
        kiln__parallel_for(ctx->pool, g->n * g->c, 1, depthwise_range, j);
        return KILN_OK;
    }
    dw_job d = {.j = j, .s = g->s[2], .nrows = g->k[0] * g->k[1], .kw = g->k[2],
                .avx512 = kiln__cpu_simd() == KILN__SIMD_AVX512};
    d.ilo = 0;
    d.ihi = g->out[2];
    d.adjacent3 = g->k[2] == 3 && g->d[2] == 1;
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
