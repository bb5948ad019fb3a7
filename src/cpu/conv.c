/* CPU convolution: kiln's sgemm per (image, group) with the bias / residual / activation epilogue
 * fused into the GEMM's stores, over the input itself for 1x1 stride-1 convolutions, over an
 * im2col matrix the GEMM packs straight from the input with SIMD (an im2col scratch matrix
 * without), Winograd F(4x4, 3x3) for 3x3 stride-1 ones (conv_winograd.c), with AVX-512 direct
 * over a padded copy of the input (the row GEMM or the channel-vector GEMM), the GEMM transposed
 * for small planes on AVX2, direct SIMD kernels for depthwise convolutions (conv_depthwise.c),
 * float16/bfloat16 through float32, and a plain loop for float64. 1-D and 2-D convolutions run as
 * 3-D ones with leading unit dims. */
#include "conv_common.h"
#include "conv_simd.h"
#include "conv_winograd.h"
#include "gemm.h"

#include <immintrin.h>
#include <limits.h>
#include <stdatomic.h>
#include <string.h>

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
    bool x_blocked, y_blocked; /* x or y in NCHW16C (kiln__cpu_blocked_edge) */
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

/* The same for a 16-lane panel (AVX2); masked-out lanes load as zeros, so segments combine by or.
 * A panel on one output row whose 16 lanes all read inside the input row loads whole vectors (at
 * stride 2 two vectors per 8 lanes, the even elements kept), where the masks cost the stem of
 * MobileNetV2 (3 -> 32, 3x3 stride 2) as much as its GEMM. */
__attribute__((target("avx2,fma"))) static void col_panel256(const col_src *cs, const col_row *rw, int64_t nrows,
                                                             const col_seg *seg, int nseg, float *dst) {
    int64_t s = cs->g->s[2];
    const float *end = cs->x + cs->g->cg * cs->g->in_plane; /* whole vectors read no further */
    for (int64_t i = 0; i < nrows; i++, dst += 16) {
        __m256 v0 = _mm256_setzero_ps(), v1 = v0;
        for (int t = 0; t < nseg; t++) {
            int64_t la, lb;
            const float *base = col_seg_src(cs, &rw[i], &seg[t], &la, &lb);
            if (!base) continue;
            if (la == 0 && lb == 16 && base + 16 * s <= end) {
                if (s == 1) {
                    v0 = _mm256_loadu_ps(base);
                    v1 = _mm256_loadu_ps(base + 8);
                } else {
                    __m256 e0 = _mm256_shuffle_ps(_mm256_loadu_ps(base), _mm256_loadu_ps(base + 8), 0x88);
                    __m256 e1 = _mm256_shuffle_ps(_mm256_loadu_ps(base + 16), _mm256_loadu_ps(base + 24), 0x88);
                    /* shuffle_ps works within 128-bit lanes: the 64-bit permute puts its halves in order */
                    v0 = _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(e0), 0xD8));
                    v1 = _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(e1), 0xD8));
                }
                break;
            }
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
    h = kiln__malloc_large(ctx->alloc, bytes + WPACK_OFFSET);
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
    const float *r0 = j->res ? j->res + no->image * m * plane : NULL;
    for (int64_t mb = m0; mb < m1; mb += NARROW_BLOCK) {
        int64_t nb = KILN__MIN(NARROW_BLOCK, m1 - mb);
        for (int64_t p = 0; p < plane; p++) {
            const float *t = no->t + p * m + mb;
            if (r0)
                for (int64_t i = 0; i < nb; i++) y0[(mb + i) * plane + p] = t[i] + r0[(mb + i) * plane + p];
            else
                for (int64_t i = 0; i < nb; i++) y0[(mb + i) * plane + p] = t[i];
        }
    }
    /* the residual went in with the copy: y may be the residual's memory */
    kiln__conv_epilogue(&j->g, j->y, j->bias, NULL, j->act, no->image, m0, m1);
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

/* Winograd F(4x4)'s transformed weights are 4x the size of the direct path's: with few tiles,
 * reading them costs more than the multiplications saved (measured at batch 1: 14x14 outputs, 16
 * tiles, 256 maps: direct 1.85 ms against 2.3 ms; 28x28, 49 tiles, 128 maps: Winograd 1.18 against
 * 1.7). Below that, F(2x2) takes the planes it can (kiln__winograd_f2_applies), and the stride-2
 * decomposition the stride-2 layers (kiln__winograd_s2_applies). */
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

/* Stride-1 1x1 layers in NCHW with sums shorter than CV_POINTWISE_MIN_K run as one K block of the
 * row GEMM, whose epilogue runs in registers: it wins even with a seventh of its lanes wasted
 * (14x14 outputs, 1 thread: kiln__sgemm_cv 0.74 ms, the row GEMM 0.68 for 256->1024 with a
 * residual, and 0.43 against 0.36 for 128->1024), not with a third (7x7). An NCHW16C input keeps
 * kiln__sgemm_cv (blocked_ok), which reads it in place. */
#define CV_POINTWISE_MIN_K 384
#define CV_POINTWISE_ROW_WASTE 1.25

static bool row_pointwise_wins(const conv_geom *g) {
    return g->cg < CV_POINTWISE_MIN_K &&
           (double)((g->out_plane + 31) / 32 * 32) <= CV_POINTWISE_ROW_WASTE * (double)g->out_plane;
}

/* A 1x1 stride-1 layer kiln__sgemm_cv takes with its maps' lanes nearly all used. */
static bool cv_pointwise(const conv_geom *g) {
    return kiln__cpu_simd() == KILN__SIMD_AVX512 && g->groups == 1 && g->kvol == 1 && g->k[0] == 1 &&
           g->in[0] == 1 && g->s[1] == 1 && g->s[2] == 1 && g->pb[1] == 0 && g->pb[2] == 0 &&
           g->out[1] == g->in[1] && g->out[2] == g->in[2] && g->c > 0 &&
           (double)((g->m + 31) / 32 * 32) <= CV_MAX_MAP_WASTE * (double)g->m;
}

/* A 1x1 stride-1 convolution: B is the input itself, one row of out_plane positions per image. */
static kiln_status conv_cv_pointwise(conv_job *j, kiln__cpu_ctx *ctx) {
    const conv_geom *g = &j->g;
    int64_t *off = kiln__malloc(ctx->alloc, (size_t)g->c * sizeof *off);
    if (!off) return KILN_OUT_OF_MEMORY;
    for (int64_t c = 0; c < g->c; c++) off[c] = j->x_blocked ? (c / 16 * g->in_plane * 16 + c % 16) : c * g->in_plane;
    kiln_status st = KILN_OK;
    for (int64_t n = 0; n < g->n && st == KILN_OK; n++) {
        int64_t first = n * g->m * g->out_plane;
        kiln__gemm_epilogue ep = {j->bias, j->res ? j->res + first : NULL, g->out_plane, j->act};
        st = kiln__sgemm_cv(ctx->pool, g->m, g->out_plane, g->c, j->wpack, j->x + n * g->c * g->in_plane, off,
                            g->out_plane, g->out_plane, j->y + first, g->out_plane,
                            KILN__CV_STREAM_B | (j->x_blocked ? KILN__CV_B_BLOCKED : 0) |
                                (j->y_blocked ? KILN__CV_C_BLOCKED : 0),
                            &ep);
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

/* n zeros at dst: the padding around a phase plane's row is a float or two (and a padding row
 * of a small plane one vector), for which a call to memset per row cost more than the stores. */
__attribute__((target("avx512f"))) static inline void zero_floats(float *dst, int64_t n) {
    if (n > 16) {
        memset(dst, 0, (size_t)n * sizeof *dst);
        return;
    }
    _mm512_mask_storeu_ps(dst, (__mmask16)((1u << n) - 1), _mm512_setzero_ps());
}

/* Phase planes [p0, p1) of the image, plane p being phase p % (sy * sx) of channel p / (sy * sx)
 * (by plane, not by channel: the stem's 3 channels would keep a fourth thread idle). */
__attribute__((target("avx512f"))) static void direct_copy_range(void *arg, int64_t p0, int64_t p1) {
    const direct_job *dj = arg;
    const __m512i evens = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    const conv_geom *g = &dj->j->g;
    const direct_geom *dg = dj->dg;
    for (int64_t p = p0; p < p1; p++) {
        int64_t c = p / (dg->sy * dg->sx), ph = p % (dg->sy * dg->sx);
        if (dg->phase[ph] < 0) continue;
        int64_t py = ph / dg->sx, px = ph % dg->sx;
        float *dst = dj->xq + (c * dg->nph + dg->phase[ph]) * dg->pq;
        const float *xc = dj->x + c * g->in_plane;
        int64_t lo, hi; /* columns u whose input column u * sx + px - pb lies inside */
        kiln__conv_valid_range(px - g->pb[2], dg->sx, g->in[2], dg->wq, &lo, &hi);
        for (int64_t t = 0; t < dg->hq; t++, dst += dg->wq) {
            int64_t iy = t * dg->sy + py - g->pb[1];
            if (iy < 0 || iy >= g->in[1] || hi <= lo) {
                zero_floats(dst, dg->wq);
                continue;
            }
            const float *row = xc + iy * g->in[2] + px - g->pb[2];
            zero_floats(dst, lo);
            if (dg->sx == 1 && hi - lo <= 16) { /* 14x14 and 7x7 planes: a row is one vector */
                __mmask16 keep = (__mmask16)((1u << (hi - lo)) - 1);
                _mm512_mask_storeu_ps(dst + lo, keep, _mm512_maskz_loadu_ps(keep, row + lo));
            } else if (dg->sx == 1) {
                memcpy(dst + lo, row + lo, (size_t)(hi - lo) * sizeof *dst);
            } else { /* stride 2: the even ones of 32 inputs; the loads end before row[2 * (hi - 1)] */
                int64_t u = lo;
                for (; u + 16 < hi; u += 16)
                    _mm512_storeu_ps(dst + u, _mm512_permutex2var_ps(_mm512_loadu_ps(row + 2 * u), evens,
                                                                     _mm512_loadu_ps(row + 2 * u + 16)));
                /* The last 1 to 16 outputs through masks, from inputs row[2u .. 2(hi - 1)]: element by
                 * element they were a third of the copy (3x3 stride 2 from 56x56: rows of 28). */
                int64_t inputs = 2 * (hi - u) - 1;
                __mmask16 first = (__mmask16)(inputs >= 16 ? 0xffffu : (1u << inputs) - 1);
                __mmask16 second = (__mmask16)(inputs > 16 ? (1u << (inputs - 16)) - 1 : 0);
                __m512 even = _mm512_permutex2var_ps(_mm512_maskz_loadu_ps(first, row + 2 * u), evens,
                                                     _mm512_maskz_loadu_ps(second, row + 2 * u + 16));
                _mm512_mask_storeu_ps(dst + u, (__mmask16)((1u << (hi - u)) - 1), even);
            }
            zero_floats(dst + hi, dg->wq - hi);
        }
    }
}

/* Output maps [m0, m1) of the image from the grid buffer, then bias, residual and activation. */
static void direct_out_range(void *arg, int64_t m0, int64_t m1) {
    const direct_job *dj = arg;
    const conv_geom *g = &dj->j->g;
    const float *res = dj->j->res ? dj->j->res + dj->n * g->m * g->out_plane : NULL;
    for (int64_t m = m0; m < m1; m++)
        for (int64_t oy = 0; oy < g->out[1]; oy++) {
            float *y = dj->y + m * g->out_plane + oy * g->out[2];
            const float *src = dj->grid + m * dj->dg->grid + oy * dj->dg->wq;
            if (res) {
                const float *r = res + m * g->out_plane + oy * g->out[2];
                for (int64_t x = 0; x < g->out[2]; x++) y[x] = src[x] + r[x];
            } else {
                memcpy(y, src, (size_t)g->out[2] * sizeof(float));
            }
        }
    /* the residual went in with the copy: y may be the residual's memory */
    kiln__conv_epilogue(g, dj->j->y, dj->j->bias, NULL, dj->j->act, dj->n, m0, m1);
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
        kiln__parallel_for(ctx->pool, g->c * dg->sy * dg->sx, 1, direct_copy_range, &dj);
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
                                j->y_blocked ? KILN__CV_C_BLOCKED : 0, &ep);
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
    bool depthwise = g->groups == g->c && g->m == g->c;
    if ((j->y_blocked || j->x_blocked) && !depthwise) { /* kiln__cpu_blocked_edge chose it */
        direct_geom dg;
        bool direct = !cv_pointwise(g) && direct_geom_init(g, &dg);
        j->pointwise = !direct;
        float *wtmp = NULL;
        kiln_status st = packed_weights(layer, w_src, j, WPACK_CV, ctx, &wtmp);
        if (st == KILN_OK) st = direct ? conv_direct(j, &dg, true, ctx) : conv_cv_pointwise(j, ctx);
        kiln__free(ctx->alloc, wtmp);
        return st;
    }
    if (depthwise)
        return kiln__conv_depthwise(g, j->x, j->x_blocked, j->w, j->bias, j->res, j->act, j->y, j->y_blocked, ctx);
    j->pointwise = g->kvol == 1;
    for (int32_t i = 0; i < 3; i++)
        j->pointwise = j->pointwise && g->s[i] == 1 && g->pb[i] == 0 && g->out[i] == g->in[i];
    direct_geom dg;
    bool direct = direct_geom_init(g, &dg);
    bool cv = cv_applies(g, &dg, direct, j->pointwise) && !(j->pointwise && row_pointwise_wins(g));
    direct = direct && (cv || direct_grid_ok(g, &dg));
    if (kiln__winograd_applies(g) && (!direct || winograd_tiles(g) >= WINOGRAD_OVER_DIRECT_TILES))
        return kiln__winograd_conv(g, j->x, j->w, w_src, j->bias, j->res, j->act, j->y, ctx, layer);
    if (kiln__winograd_f2_applies(g))
        return kiln__winograd_f2_conv(g, j->x, j->w, w_src, j->bias, j->res, j->act, j->y, ctx, layer);
    if (kiln__winograd_s2_applies(g))
        return kiln__winograd_s2_conv(g, j->x, j->w, w_src, j->bias, j->res, j->act, j->y, ctx, layer);
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

/* ---------------------------------------------------------------- NCHW16C edges */

/* Around depthwise layers on small planes, activations pass in channel blocks: the pointwise
 * layer before one writes them straight from the channel-vector GEMM's accumulators (no
 * transposes), the depthwise kernel reads them without transposing its input (it otherwise
 * transposes 16 input positions per block for each output position, four at stride 2) and writes
 * its outputs untransposed, and the pointwise layer after it reads them with B's columns 16 floats
 * apart. A pointwise layer between two others that take blocks (a projection feeding the next
 * expansion) reads and writes them both.
 *
 * Into pooling (kiln__cpu_pool_blocked_ok), other 2-D convolutions of one group that Winograd
 * does not take write blocks through the direct path's channel-vector GEMM, which then stores its
 * accumulators untransposed: ResNet's 7x7 stem (3 channels, 147 long sums) into max pooling, 1
 * thread: 1.92 -> 1.70 ms; 2 threads: 1.46 -> 1.14. Shorter sums are left to the row GEMM. */
#define DIRECT_BLOCKED_MIN_K 128

static bool direct_blocked_ok(const conv_geom *g) {
    direct_geom dg;
    return !cv_pointwise(g) && direct_geom_init(g, &dg) && !kiln__winograd_applies(g) && g->m % 16 == 0 &&
           g->cg * g->kvol >= DIRECT_BLOCKED_MIN_K &&
           (double)((g->m + 31) / 32 * 32) <= CV_MAX_MAP_WASTE * (double)g->m;
}

/* A pointwise layer of few maps reading NCHW16C takes kiln__sgemm_cv even for sums shorter than
 * CV_MIN_K: a position's 16 channels of a block then share one cache line, while the row GEMM
 * in NCHW reads its few rows of A against B rows strided a plane apart. Measured with the input
 * in L3, 1 thread: 192->32 on 28x28 0.069 ms against 0.088, 144->32 0.052 against 0.066, 192->64
 * on 14x14 0.032 against 0.039; with more maps the row GEMM keeps the lead (256->128 on 56x56
 * 1.44-1.85 ms against 1.26-1.45, 128->512 on 28x28 0.81-0.92 against 0.61-0.64). */
#define CV_BLOCKED_MAX_MAPS 64
#define CV_BLOCKED_MIN_K 128

static bool blocked_ok(const conv_geom *g, bool x_blocked, bool y_blocked, bool has_res) {
    if (g->groups == g->c && g->m == g->c) /* depthwise */
        return g->c % 16 == 0 && kiln__conv_depthwise_blocked_ok(g) && !(y_blocked && has_res);
    if (y_blocked && direct_blocked_ok(g)) return !x_blocked && !has_res;
    if (y_blocked) return cv_pointwise(g) && g->m % 16 == 0 && (!x_blocked || g->c % 16 == 0) && !has_res;
    direct_geom unused = {0};
    return cv_pointwise(g) && g->c % 16 == 0 &&
           (cv_applies(g, &unused, false, true) || (g->m <= CV_BLOCKED_MAX_MAPS && g->c >= CV_BLOCKED_MIN_K));
}

bool kiln__cpu_blocked_pair(const kiln_layer *producer, const kiln_layer *reader) {
    return producer->type == KILN_LAYER_CONVOLUTION &&
           (reader->type == KILN_LAYER_CONVOLUTION || reader->type == KILN_LAYER_POOLING) && producer->nb_outputs == 1;
}

bool kiln__cpu_blocked_edge(const kiln_layer *producer, const kiln__value *p_in, const kiln__value *t,
                            const kiln_layer *reader, const kiln__value *r_in, const kiln__value *r_out) {
    if (!kiln__cpu_blocked_pair(producer, reader) || p_in[0].dtype != KILN_FLOAT32 || t->dtype != KILN_FLOAT32 ||
        r_out[0].dtype != KILN_FLOAT32 || t->dims.nb_dims != 4 ||
        kiln__dims_volume(&r_out[0].dims) <= 0 || kiln__dims_volume(&t->dims) <= 0)
        return false;
    conv_geom gp, gr;
    kiln__conv_geom_init(producer, p_in, t, &gp);
    bool p_res = kiln__conv_optional(producer, p_in, 3) != NULL;
    if (!blocked_ok(&gp, p_in[0].layout == KILN__LAYOUT_NCHW16C, true, p_res)) return false;
    if (reader->type == KILN_LAYER_POOLING) return kiln__cpu_pool_blocked_ok(reader, r_in, r_out);
    if (direct_blocked_ok(&gp)) return false;
    kiln__conv_geom_init(reader, r_in, r_out, &gr);
    return blocked_ok(&gr, true, false, kiln__conv_optional(reader, r_in, 3) != NULL);
}

bool kiln__cpu_conv_inplace_ok(const kiln_layer *layer, const kiln__value *in, const kiln__value *out) {
    if (layer->type != KILN_LAYER_CONVOLUTION || layer->nb_inputs <= 3 || in[0].dtype != KILN_FLOAT32 ||
        in[3].dtype != KILN_FLOAT32 || out[0].dtype != KILN_FLOAT32 || !kiln__dims_equal(&in[3].dims, &out[0].dims))
        return false;
    conv_geom g;
    kiln__conv_geom_init(layer, in, out, &g);
    return !(g.groups == g.c && g.m == g.c);
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
    conv_job j = {.g = g, .x = f.x, .w = f.w, .bias = f.bias, .res = f.res, .y = f.y, .act = &p->act,
                  .x_blocked = in[0].layout == KILN__LAYOUT_NCHW16C,
                  .y_blocked = out[0].layout == KILN__LAYOUT_NCHW16C};
    if ((j.x_blocked || j.y_blocked) && !blocked_ok(&g, j.x_blocked, j.y_blocked, f.res != NULL))
        return kiln__conv_f32_end(ctx, out, kiln__layer_error(layer, KILN_INTERNAL_ERROR,
                                                              "no kernel for this convolution in NCHW16C"), &f);
    return kiln__conv_f32_end(ctx, out, conv_f32(layer, in[1].data, &j, ctx), &f);
}
