/* Winograd F(4x4, 3x3) (Lavin & Gray, points 0, +-1, +-2, inf) for float32 3x3 stride-1
 * convolutions. Each 4x4 block of outputs comes from a 6x6 input tile (tiles overlap by 2):
 * V = B^T d B per tile and channel, U = G g G^T per map and channel (once per layer, cached),
 * 36 GEMMs M[ij] = U[ij] V[ij] over channels, then Y = A^T M A per tile with the bias, residual
 * and activation. Tiles of all images are laid out one tile row after another and processed in
 * blocks of whole tile rows so the V and M scratch stays moderate. The transforms run on rows
 * of tiles with the tile index innermost and contiguous, so the compiler vectorizes them.
 * Further down: F(2x2, 3x3) for small planes and its stride-2 counterpart, both with AVX-512
 * transforms and their GEMMs through the channel-vector GEMM. */
#include "conv_winograd.h"
#include "conv_simd.h"
#include "gemm.h"

#include <limits.h>
#include <stdatomic.h>
#include <string.h>

#define NPTS 36                  /* 6x6 transformed points per tile */
#define F2_PTS 16                /* F(2x2, 3x3): 4x4 */
#define CHUNK 64                 /* tiles per row piece in the transforms (their stack buffers) */
/* V and M scratch per block of tile rows: small enough to stay in L2 between the transforms and
 * the GEMMs, but at least BLOCK_TILES tiles so the GEMMs are not too narrow. */
#define BLOCK_BYTES (1 << 20)
#define BLOCK_TILES 48
#define HEADER_OFFSET 64
/* With this many tiles per thread or more, each thread runs the three steps over its own tile
 * rows (split_range) instead of all threads sharing each step of each block: V and M then stay
 * in the core that wrote them, and a layer is one parallel loop instead of three per block.
 * ResNet-50's 3x3 layers on 56x56 (196 tiles), 2 threads, inside the network (per-layer medians,
 * the two ways alternating in one process): 0.92 -> 0.80, 0.89 -> 0.75, 0.88 -> 0.73 ms. Fewer
 * tiles per thread would make the GEMMs too narrow (28x28 has 49 in all). */
#define SPLIT_MIN_TILES 48
/* Smaller convolutions run faster through im2col + GEMM (measured, 1 thread, AVX-512): with few
 * tiles the 4x larger transformed weights cost more to read than the multiplications saved, and
 * with few channels the transforms outweigh the GEMMs. */
#define MIN_CHANNELS 16
#define MIN_MAPS 16
#define MIN_TILES 16        /* over the batch */
#define FEW_CHANNELS 32     /* below this many channels ... */
#define FEW_CHANNELS_TILES 49 /* ... at least this many tiles */

/* The cache slot's block: this header, then the packed U matrices (one per point) at
 * HEADER_OFFSET. */
typedef struct wino_header {
    uint32_t magic, zero; /* zero: read as the convolution block's pointer, never a valid one */
    const void *src;
    int64_t m, c;
} wino_header;

typedef struct wino_kind wino_kind;

typedef struct wino_job {
    const wino_kind *kind;
    const kiln__conv_geom *g;
    const float *x, *w, *bias, *res;
    float *y;
    const kiln__act *act;
    float *u;        /* raw U [points][m][c] while the weights are transformed */
    float *upack;    /* packed U: a block of ustride floats per point */
    int64_t ustride;
    float *v, *mo;   /* V [points][c][vld], M [points][m][nt] */
    int64_t vld;     /* V's rows: the tiles of the layer's largest block */
    const int64_t *off; /* row k of V[ij] (channel k) for the channel-vector GEMM */
    int64_t ty, tx;  /* tiles per image down and across */
    int64_t r0, nt;  /* the block: first global tile row (image * ty + row), tiles; F(2x2) and
                      * stride 2: the image, and the tiles of its block */
    int64_t row0, rows; /* F(2x2) and stride 2: the block's tile rows of image r0 */
    const kiln__alloc *alloc;
    atomic_int status;
} wino_job;

static int64_t round16(int64_t v) { return (v + 15) / 16 * 16; }

/* The geometries the transforms handle, whatever their size. */
static bool supported(const kiln__conv_geom *g) {
    if (kiln__cpu_simd() == KILN__SIMD_NONE || g->groups != 1 || g->k[0] != 1 || g->k[1] != 3 || g->k[2] != 3 ||
        g->in[0] != 1 || g->out[0] != 1 || g->pb[0] != 0)
        return false;
    for (int i = 0; i < 3; i++)
        if (g->s[i] != 1 || g->d[i] != 1) return false;
    for (int i = 1; i < 3; i++) {
        int64_t pe = g->out[i] - g->in[i] + 2 - g->pb[i];
        if (g->pb[i] < 0 || g->pb[i] > 2 || pe < 0 || pe > 2 || g->out[i] < 1) return false;
    }
    return g->c <= INT_MAX / NPTS && g->m <= INT_MAX / NPTS;
}

bool kiln__winograd_applies(const kiln__conv_geom *g) {
    int64_t tiles = g->n * ((g->out[1] + 3) / 4) * ((g->out[2] + 3) / 4);
    return supported(g) && g->c >= MIN_CHANNELS && g->m >= MIN_MAPS && tiles >= MIN_TILES &&
           (g->c >= FEW_CHANNELS || tiles >= FEW_CHANNELS_TILES);
}

/* ---------------------------------------------------------------- weights */

/* Raw U of maps [m0, m1): u[ij][map][channel] = (G g G^T)[i][j]. */
static void weights_f4_range(void *arg, int64_t m0, int64_t m1) {
    static const double gm[6][3] = {{0.25, 0, 0},           {-1.0 / 6, -1.0 / 6, -1.0 / 6},
                                    {-1.0 / 6, 1.0 / 6, -1.0 / 6}, {1.0 / 24, 1.0 / 12, 1.0 / 6},
                                    {1.0 / 24, -1.0 / 12, 1.0 / 6}, {0, 0, 1}};
    const wino_job *j = arg;
    int64_t m = j->g->m, c = j->g->c;
    for (int64_t mm = m0; mm < m1; mm++)
        for (int64_t cc = 0; cc < c; cc++) {
            const float *k = j->w + (mm * c + cc) * 9;
            double t[6][3];
            for (int i = 0; i < 6; i++)
                for (int b = 0; b < 3; b++)
                    t[i][b] = gm[i][0] * k[b] + gm[i][1] * k[3 + b] + gm[i][2] * k[6 + b];
            for (int i = 0; i < 6; i++)
                for (int jj = 0; jj < 6; jj++)
                    j->u[(int64_t)(i * 6 + jj) * m * c + mm * c + cc] =
                        (float)(t[i][0] * gm[jj][0] + t[i][1] * gm[jj][1] + t[i][2] * gm[jj][2]);
        }
}

/* Raw U of maps [m0, m1) for a 4x3 G: u[ij][map][channel] = (G g G^T)[i][j]. */
static void weights_4x3(const wino_job *j, const float gm[4][3], int64_t m0, int64_t m1) {
    int64_t m = j->g->m, c = j->g->c;
    for (int64_t mm = m0; mm < m1; mm++)
        for (int64_t cc = 0; cc < c; cc++) {
            const float *k = j->w + (mm * c + cc) * 9;
            float t[4][3];
            for (int i = 0; i < 4; i++)
                for (int b = 0; b < 3; b++) t[i][b] = gm[i][0] * k[b] + gm[i][1] * k[3 + b] + gm[i][2] * k[6 + b];
            for (int i = 0; i < 4; i++)
                for (int jj = 0; jj < 4; jj++)
                    j->u[(int64_t)(i * 4 + jj) * m * c + mm * c + cc] =
                        t[i][0] * gm[jj][0] + t[i][1] * gm[jj][1] + t[i][2] * gm[jj][2];
        }
}

/* F(2x2, 3x3): G = [1 0 0; 1/2 1/2 1/2; 1/2 -1/2 1/2; 0 0 1], exact in float32. */
static void weights_f2_range(void *arg, int64_t m0, int64_t m1) {
    static const float gm[4][3] = {{1, 0, 0}, {0.5f, 0.5f, 0.5f}, {0.5f, -0.5f, 0.5f}, {0, 0, 1}};
    weights_4x3(arg, gm, m0, m1);
}

/* Stride 2 (below): G = [1 0 0; 1 0 1; 0 0 1; 0 1 0] (its fifth row repeats the fourth), the 16
 * distinct U. */
static void weights_s2_range(void *arg, int64_t m0, int64_t m1) {
    static const float gm[4][3] = {{1, 0, 0}, {1, 0, 1}, {0, 0, 1}, {0, 1, 0}};
    weights_4x3(arg, gm, m0, m1);
}

/* What tells the transforms apart where they share code: the weights' transform and their
 * packing (for the row GEMM or the channel-vector GEMM), and the cache block's magic. */
struct wino_kind {
    uint32_t magic;
    int64_t npts;
    kiln__range_fn weights_range;
    bool cv_packed;
};
static const wino_kind F4 = {KILN__WINOGRAD_MAGIC, NPTS, weights_f4_range, false};
static const wino_kind F4_CV = {KILN__WINOGRAD_CV_MAGIC, NPTS, weights_f4_range, true};
static const wino_kind F2 = {KILN__WINOGRAD_F2_MAGIC, F2_PTS, weights_f2_range, true};
static const wino_kind S2 = {KILN__WINOGRAD_S2_MAGIC, F2_PTS, weights_s2_range, true};

static void pack_range(void *arg, int64_t b, int64_t e) {
    const wino_job *j = arg;
    int64_t m = j->g->m, c = j->g->c;
    for (int64_t ij = b; ij < e; ij++) {
        if (j->kind->cv_packed)
            kiln__sgemm_cv_pack(m, c, j->u + ij * m * c, c, j->upack + ij * j->ustride);
        else
            kiln__sgemm_pack_a(m, c, j->u + ij * m * c, c, j->upack + ij * j->ustride);
    }
}

static bool weights_constant(const kiln_layer *layer) {
    const kiln_tensor *wt = layer && layer->inputs && layer->nb_inputs > 1 ? layer->inputs[1] : NULL;
    return wt && wt->producer && wt->producer->type == KILN_LAYER_CONSTANT;
}

/* Sets j->upack: from the cache slot when it holds these weights, else transformed and packed
 * now, into the slot (constant weights) or into *owned (freed by the caller). */
static kiln_status packed_weights(wino_job *j, const void *w_src, kiln__cpu_ctx *ctx, const kiln_layer *layer,
                                  float **owned) {
    const kiln__conv_geom *g = j->g;
    const wino_kind *kind = j->kind;
    j->ustride = round16(kind->cv_packed ? kiln__sgemm_cv_packed_floats(g->m, g->c)
                                         : kiln__sgemm_packed_a_floats(g->m, g->c));
    bool cached = ctx->cache && weights_constant(layer);
    if (cached) {
        wino_header *h = *ctx->cache;
        if (h && h->magic == kind->magic && h->src == w_src && h->m == g->m && h->c == g->c) {
            j->upack = (float *)((char *)h + HEADER_OFFSET);
            return KILN_OK;
        }
        kiln__free(ctx->alloc, h); /* another shape's or the convolution's: replaced */
        *ctx->cache = NULL;
    }
    size_t bytes, ubytes;
    if (!kiln__mul_size((size_t)(kind->npts * j->ustride), sizeof(float), &bytes) || bytes > SIZE_MAX - HEADER_OFFSET ||
        !kiln__mul_size((size_t)(kind->npts * g->m * g->c), sizeof(float), &ubytes))
        return kiln__error(KILN_OUT_OF_MEMORY, "Winograd weight size overflows");
    char *block = cached ? kiln__malloc_large(ctx->alloc, bytes + HEADER_OFFSET)
                         : kiln__malloc_aligned(ctx->alloc, bytes, 64);
    j->u = kiln__malloc_aligned(ctx->alloc, ubytes, 64);
    if (!block || !j->u) {
        kiln__free(ctx->alloc, block);
        kiln__free(ctx->alloc, j->u);
        return KILN_OUT_OF_MEMORY;
    }
    j->upack = (float *)(block + (cached ? HEADER_OFFSET : 0));
    kiln__parallel_for(ctx->pool, g->m, 4, kind->weights_range, j);
    kiln__parallel_for(ctx->pool, kind->npts, 1, pack_range, j);
    kiln__free(ctx->alloc, j->u);
    j->u = NULL;
    if (cached) {
        *(wino_header *)block = (wino_header){kind->magic, 0, w_src, g->m, g->c};
        *ctx->cache = block;
        kiln__cpu_release_weights(ctx, j->w, (size_t)(g->m * g->c * 9) * sizeof(float)); /* U is read instead */
    } else {
        *owned = (float *)block;
    }
    return KILN_OK;
}

/* ---------------------------------------------------------------- input transform */

/* One row i of B^T d B for nc tiles: d's columns 4t + 0..5 are phases 0..3 of tile t (a0..a3)
 * and 0..1 of tile t + 1; output j goes to row j of v (stride vs). */
__attribute__((target("avx2,fma"))) static inline void bt_row(const float *restrict a0, const float *restrict a1,
                                                             const float *restrict a2, const float *restrict a3,
                                                             int64_t nc, float *restrict v0, float *restrict v1,
                                                             float *restrict v2, float *restrict v3,
                                                             float *restrict v4, float *restrict v5) {
    for (int64_t t = 0; t < nc; t++) {
        float d0 = a0[t], d1 = a1[t], d2 = a2[t], d3 = a3[t], d4 = a0[t + 1], d5 = a1[t + 1];
        v0[t] = 4 * d0 - 5 * d2 + d4;
        v1[t] = -4 * (d1 + d2) + d3 + d4;
        v2[t] = 4 * (d1 - d2) - d3 + d4;
        v3[t] = 2 * (d3 - d1) - d2 + d4;
        v4[t] = 2 * (d1 - d3) - d2 + d4;
        v5[t] = 4 * d1 - 5 * d3 + d5;
    }
}

/* V rows of channel cc for the block's tiles. Per tile row and piece of nc tiles: the 6 input
 * rows are split by column phase (ph[k][r][t] = row k, column 4t + r of the padded input), so the
 * vertical pass B^T d and the horizontal pass (. B) both run over t with unit stride. */
__attribute__((target("avx2,fma"))) static void input_channel(const wino_job *j, int64_t cc) {
    const kiln__conv_geom *g = j->g;
    int64_t h = g->in[1], w = g->in[2], c = g->c, vstride = c * j->vld;
    float row[4 * (CHUNK + 1)], ph[6][4 * (CHUNK + 1)], tv[6][4 * (CHUNK + 1)];
    for (int64_t rr = 0; rr * j->tx < j->nt; rr++) {
        int64_t gr = j->r0 + rr, n = gr / j->ty, ty = gr % j->ty;
        const float *xc = j->x + (n * c + cc) * g->in_plane;
        for (int64_t t0 = 0; t0 < j->tx; t0 += CHUNK) {
            int64_t nc = KILN__MIN(CHUNK, j->tx - t0), p = nc + 1, cols = 4 * p, x0 = 4 * t0 - g->pb[2];
            int64_t lo = KILN__MAX(0, -x0), hi = KILN__MIN(cols, w - x0); /* columns inside the input */
            for (int k = 0; k < 6; k++) {
                int64_t iy = 4 * ty - g->pb[1] + k;
                if (iy < 0 || iy >= h || hi <= lo) {
                    memset(row, 0, (size_t)cols * sizeof *row);
                } else {
                    memset(row, 0, (size_t)lo * sizeof *row);
                    memcpy(row + lo, xc + iy * w + x0 + lo, (size_t)(hi - lo) * sizeof *row);
                    memset(row + hi, 0, (size_t)(cols - hi) * sizeof *row);
                }
                for (int64_t t = 0; t < p; t++)
                    for (int r = 0; r < 4; r++) ph[k][r * p + t] = row[4 * t + r];
            }
            for (int64_t e = 0; e < cols; e++) {
                float d0 = ph[0][e], d1 = ph[1][e], d2 = ph[2][e], d3 = ph[3][e], d4 = ph[4][e], d5 = ph[5][e];
                tv[0][e] = 4 * d0 - 5 * d2 + d4;
                tv[1][e] = -4 * (d1 + d2) + d3 + d4;
                tv[2][e] = 4 * (d1 - d2) - d3 + d4;
                tv[3][e] = 2 * (d3 - d1) - d2 + d4;
                tv[4][e] = 2 * (d1 - d3) - d2 + d4;
                tv[5][e] = 4 * d1 - 5 * d3 + d5;
            }
            float *vb = j->v + cc * j->vld + rr * j->tx + t0;
            for (int i = 0; i < 6; i++) {
                float *v = vb + i * 6 * vstride;
                bt_row(tv[i], tv[i] + p, tv[i] + 2 * p, tv[i] + 3 * p, nc, v, v + vstride, v + 2 * vstride,
                       v + 3 * vstride, v + 4 * vstride, v + 5 * vstride);
            }
        }
    }
}

static void input_range(void *arg, int64_t b, int64_t e) {
    for (int64_t cc = b; cc < e; cc++) input_channel(arg, cc);
}

/* ---------------------------------------------------------------- GEMMs */

static void gemm_range(void *arg, int64_t b, int64_t e) {
    wino_job *j = arg;
    int64_t m = j->g->m, c = j->g->c, nt = j->nt;
    for (int64_t ij = b; ij < e; ij++) {
        const float *u = j->upack + ij * j->ustride, *v = j->v + ij * c * j->vld;
        float *mo = j->mo + ij * m * nt;
        kiln_status st = j->kind->cv_packed
                             ? kiln__sgemm_cv(NULL, m, nt, c, u, v, j->off, nt, nt, mo, nt, 0, NULL)
                             : kiln__sgemm_packed(NULL, j->alloc, m, nt, c, NULL, c, u, v, j->vld, 0.0f, mo, nt, NULL);
        if (st != KILN_OK) atomic_store(&j->status, st);
    }
}

/* ---------------------------------------------------------------- output transform */

/* Y = A^T M A for map mm over the block's tiles: the rows of 4 tiles' outputs are interleaved
 * into ybuf, then cropped into y with the bias, residual and activation. */
__attribute__((target("avx2,fma"))) static void output_map(const wino_job *j, int64_t mm) {
    const kiln__conv_geom *g = j->g;
    int64_t m = g->m, oh = g->out[1], ow = g->out[2], pstride = m * j->nt;
    float bias = j->bias ? j->bias[mm] : 0.0f;
    float s[4][6][CHUNK], ybuf[4][4 * CHUNK];
    for (int64_t rr = 0; rr * j->tx < j->nt; rr++) {
        int64_t gr = j->r0 + rr, n = gr / j->ty, ty = gr % j->ty;
        for (int64_t t0 = 0; t0 < j->tx; t0 += CHUNK) {
            int64_t nc = KILN__MIN(CHUNK, j->tx - t0);
            const float *mb = j->mo + mm * j->nt + rr * j->tx + t0;
            for (int jj = 0; jj < 6; jj++) {
                const float *p0 = mb + jj * pstride, *p1 = p0 + 6 * pstride, *p2 = p1 + 6 * pstride,
                            *p3 = p2 + 6 * pstride, *p4 = p3 + 6 * pstride, *p5 = p4 + 6 * pstride;
                for (int64_t t = 0; t < nc; t++) {
                    float m0 = p0[t], m1 = p1[t], m2 = p2[t], m3 = p3[t], m4 = p4[t], m5 = p5[t];
                    s[0][jj][t] = m0 + m1 + m2 + m3 + m4;
                    s[1][jj][t] = m1 - m2 + 2 * (m3 - m4);
                    s[2][jj][t] = m1 + m2 + 4 * (m3 + m4);
                    s[3][jj][t] = m1 - m2 + 8 * (m3 - m4) + m5;
                }
            }
            for (int r = 0; r < 4; r++)
                for (int64_t t = 0; t < nc; t++) {
                    float m0 = s[r][0][t], m1 = s[r][1][t], m2 = s[r][2][t], m3 = s[r][3][t], m4 = s[r][4][t],
                          m5 = s[r][5][t];
                    ybuf[r][4 * t] = m0 + m1 + m2 + m3 + m4;
                    ybuf[r][4 * t + 1] = m1 - m2 + 2 * (m3 - m4);
                    ybuf[r][4 * t + 2] = m1 + m2 + 4 * (m3 + m4);
                    ybuf[r][4 * t + 3] = m1 - m2 + 8 * (m3 - m4) + m5;
                }
            int64_t x0 = 4 * t0, width = KILN__MIN(4 * nc, ow - x0);
            for (int r = 0; r < 4 && 4 * ty + r < oh; r++) {
                int64_t o = (n * m + mm) * g->out_plane + (4 * ty + r) * ow + x0;
                float *yr = j->y + o;
                if (j->res) {
                    const float *rs = j->res + o;
                    for (int64_t x = 0; x < width; x++) yr[x] = ybuf[r][x] + bias + rs[x];
                } else {
                    for (int64_t x = 0; x < width; x++) yr[x] = ybuf[r][x] + bias;
                }
                if (j->act->kind >= 0) kiln__apply_act_f32(j->act, yr, width);
            }
        }
    }
}

static void output_range(void *arg, int64_t b, int64_t e) {
    const wino_job *j = arg;
    for (int64_t mm = b; mm < e; mm++) output_map(j, mm);
}

/* ---------------------------------------------------------------- driver */

/* A piece of one thread's share (kiln__winograd_conv's split by tile rows, kiln__parallel_shares):
 * tile rows [r0, r1) in blocks of at most block_rows, each through the three steps on this thread
 * alone, with this thread's scratch. */
typedef struct wino_split {
    const wino_job *j;
    int64_t block_rows, slots;
    float *v, *mo; /* per slot: vfloats and mfloats */
    int64_t vfloats, mfloats;
    atomic_int status;
} wino_split;

static void split_range(void *arg, int64_t r0, int64_t r1) {
    wino_split *sp = arg;
    const kiln__conv_geom *g = sp->j->g;
    int64_t s = KILN__MIN(kiln__pool_thread(), sp->slots - 1);
    wino_job t = *sp->j; /* the layer's job with this slot's scratch and status */
    t.v = sp->v + s * sp->vfloats;
    t.mo = sp->mo + s * sp->mfloats;
    atomic_init(&t.status, KILN_OK);
    for (t.r0 = r0; t.r0 < r1; t.r0 += sp->block_rows) {
        t.nt = KILN__MIN(sp->block_rows, r1 - t.r0) * t.tx;
        input_range(&t, 0, g->c);
        gemm_range(&t, 0, NPTS);
        if (atomic_load(&t.status) != KILN_OK) break;
        output_range(&t, 0, g->m);
    }
    if (atomic_load(&t.status) != KILN_OK) atomic_store(&sp->status, atomic_load(&t.status));
}

/* Pieces of a thread's tile rows hold at least this many tiles: two rows of 56x56's, whose 28
 * tiles use 7/8 of the GEMM's lanes as its 98-tile share does 3/4. */
#define SPLIT_MIN_PIECE_TILES 24

/* F(4x4)'s GEMMs (maps x tiles x channels) go through the channel-vector GEMM where the row
 * GEMM's 32-wide panels would waste a quarter of their lanes (ResNet-50's 3x3 layers on 28x28: 49
 * tiles, 64 lanes) and the sums are long enough to hide its transposing stores. Those layers
 * inside the network on the 2-core AMD machine (per-layer medians, the two ways alternating in one
 * process): 1.19-1.29 -> 0.99-1.05 ms at 1 thread, 0.69-0.74 -> 0.64-0.70 at 2. Their 36 GEMMs alone
 * (128 maps x 49 tiles x 128 channels, U from memory, 1 thread) on the GPU machine's Xeon:
 * 0.63-0.85 -> 0.63-0.65 ms. */
#define F4_CV_MIN_CHANNELS 128
#define F4_CV_MIN_WASTE 1.25
#define F4_CV_MAX_MAP_WASTE 1.125

static bool f4_through_cv(const kiln__conv_geom *g, int64_t nt) {
    return kiln__cpu_simd() == KILN__SIMD_AVX512 && g->c >= F4_CV_MIN_CHANNELS &&
           (double)((nt + 31) / 32 * 32) >= F4_CV_MIN_WASTE * (double)nt &&
           (double)((g->m + 31) / 32 * 32) <= F4_CV_MAX_MAP_WASTE * (double)g->m;
}

kiln_status kiln__winograd_conv(const kiln__conv_geom *g, const float *x, const float *w, const void *w_src,
                                const float *bias, const float *res, const kiln__act *act, float *y,
                                kiln__cpu_ctx *ctx, const kiln_layer *layer) {
    if (!supported(g))
        return kiln__error(KILN_INTERNAL_ERROR, "Winograd convolution called for a geometry it does not take");
    wino_job j = {.kind = &F4, .g = g, .x = x, .w = w, .bias = bias, .res = res, .y = y, .act = act,
                  .alloc = ctx->alloc};
    j.ty = (g->out[1] + 3) / 4;
    j.tx = (g->out[2] + 3) / 4;
    int64_t rows = g->n * j.ty, row_bytes = NPTS * (g->c + g->m) * j.tx * (int64_t)sizeof(float);
    int64_t block_rows = KILN__MIN(rows, KILN__MAX(BLOCK_BYTES / row_bytes, (BLOCK_TILES + j.tx - 1) / j.tx));
    int64_t threads = kiln__pool_threads(ctx->pool);
    bool split = threads > 1 && rows * j.tx / threads >= SPLIT_MIN_TILES;
    wino_split sp = {.j = &j, .slots = KILN__MIN(threads, rows)};
    if (split) block_rows = KILN__MIN(block_rows, (rows + sp.slots - 1) / sp.slots);
    if (block_rows * j.tx > INT_MAX) return kiln__error(KILN_UNSUPPORTED, "Winograd tile count exceeds the int range");
    j.vld = block_rows * j.tx;
    if (f4_through_cv(g, j.vld)) j.kind = &F4_CV;
    float *owned = NULL;
    kiln_status st = packed_weights(&j, w_src, ctx, layer, &owned);
    if (st != KILN_OK) return st;
    size_t vbytes, mbytes, obytes;
    if (!kiln__mul_size((size_t)(NPTS * g->c), (size_t)j.vld * sizeof(float), &vbytes) ||
        !kiln__mul_size((size_t)(NPTS * g->m), (size_t)j.vld * sizeof(float), &mbytes) ||
        !kiln__mul_size((size_t)g->c, sizeof(int64_t), &obytes)) {
        kiln__free(ctx->alloc, owned);
        return kiln__error(KILN_OUT_OF_MEMORY, "Winograd scratch size overflows");
    }
    int64_t *off = j.kind->cv_packed ? kiln__malloc(ctx->alloc, obytes) : NULL;
    if (j.kind->cv_packed && !off) {
        kiln__free(ctx->alloc, owned);
        return KILN_OUT_OF_MEMORY;
    }
    for (int64_t k = 0; off && k < g->c; k++) off[k] = k * j.vld;
    j.off = off;
    if (split) {
        sp.block_rows = block_rows;
        sp.vfloats = (int64_t)(vbytes / sizeof(float) + 15) / 16 * 16;
        sp.mfloats = (int64_t)(mbytes / sizeof(float) + 15) / 16 * 16;
        atomic_init(&sp.status, KILN_OK);
        size_t bytes;
        st = kiln__mul_size((size_t)(sp.vfloats + sp.mfloats), (size_t)sp.slots * sizeof(float), &bytes)
                 ? KILN_OK
                 : kiln__error(KILN_OUT_OF_MEMORY, "Winograd scratch size overflows");
        sp.v = st == KILN_OK ? kiln__malloc_aligned(ctx->alloc, bytes, 64) : NULL;
        if (st == KILN_OK && !sp.v) st = KILN_OUT_OF_MEMORY;
        if (st == KILN_OK) {
            sp.mo = sp.v + sp.slots * sp.vfloats;
            kiln__parallel_shares(ctx->pool, rows, (SPLIT_MIN_PIECE_TILES + j.tx - 1) / j.tx, split_range, &sp);
            st = atomic_load(&sp.status);
        }
        kiln__free(ctx->alloc, sp.v);
        kiln__free(ctx->alloc, off);
        kiln__free(ctx->alloc, owned);
        return st;
    }
    j.v = kiln__malloc_aligned(ctx->alloc, vbytes, 64);
    j.mo = kiln__malloc_aligned(ctx->alloc, mbytes, 64);
    st = j.v && j.mo ? KILN_OK : KILN_OUT_OF_MEMORY;
    atomic_init(&j.status, KILN_OK);
    for (j.r0 = 0; j.r0 < rows && st == KILN_OK; j.r0 += block_rows) {
        j.nt = KILN__MIN(block_rows, rows - j.r0) * j.tx;
        kiln__parallel_for(ctx->pool, g->c, 1, input_range, &j);
        kiln__parallel_for(ctx->pool, NPTS, 1, gemm_range, &j);
        st = atomic_load(&j.status);
        if (st == KILN_OK) kiln__parallel_for(ctx->pool, g->m, 1, output_range, &j);
    }
    kiln__free(ctx->alloc, j.v);
    kiln__free(ctx->alloc, j.mo);
    kiln__free(ctx->alloc, off);
    kiln__free(ctx->alloc, owned);
    return st;
}

/* ---------------------------------------------------------------- F(2x2, 3x3), small planes */

/* Planes of 14x14 and 7x7 outputs have too few 4x4 tiles for F(4x4): its U, 4x the weights, costs
 * more to read than it saves (above). F(2x2, 3x3) (points 0, +-1, inf) needs 16 / 9 of the weights
 * and 2.25x fewer multiplications; with 49 or 16 tiles its GEMMs (maps x tiles x channels) go
 * through the channel-vector GEMM, which wastes no lanes on 49 tiles and streams its U panels
 * ahead. Its transforms add and subtract only, so F(2x2) rounds like the direct sums. Threads
 * split the maps: each reads only its own maps' U. ResNet-50's 3x3 layers on 14x14 (256 maps, 49
 * tiles) inside the network on the 2-core AMD machine (per-layer medians, F(2x2) and the direct
 * path alternating in one process): 2.10 -> 1.16 ms at 1 thread, 1.15 -> 0.75 at 2; the network
 * 8% and 6% faster. On the GPU machine's Xeon: 3.47-3.55 -> 1.68-1.76 ms at 1 thread, 1.46-1.49 ->
 * 0.94-0.95 at 2; the network 9% and 5% faster. On 7x7 (512 maps, 16 tiles, 4 of them mostly
 * padding) its 16.8 MB of U come from memory for 134 MFLOP: 2.12 -> 1.70 ms at 1 thread and 1.12 ->
 * 0.98 at 2 on the AMD machine, but 1.70-1.78 -> 2.09-2.26 and 1.10-1.13 -> 1.27-1.32 on the Xeon,
 * whose faster FMAs leave the weights' stream the larger share. */
#define F2_MIN_TILES 25   /* tiles per image: planes of 9x9 and more */
#define F2_MAX_TILES 64   /* ... up to 16x16 */
#define F2_MAX_TX 15      /* tiles across: a tile row's 2 tx + 2 input columns fit two vectors */
#define F2_MIN_CHANNELS 64 /* shorter sums leave the transforms a large share */
#define F2_MIN_MAPS 32
#define F2_MAX_MAP_WASTE 1.125 /* maps rounded up to the GEMM's 32 per map, at most */
/* Maps per run of the 16 GEMMs and their output transform, M in the thread's scratch between them:
 * ResNet-50's 3x3 layers on 14x14 (256 maps) ran 4-6% faster with all of a thread's maps in one
 * run than in runs of 64 (fewer, longer GEMMs, each V[ij] passed once), on the 2-core AMD machine
 * at 1 and 2 threads; runs of 32 were 1-2% slower than 64. */
#define F2_GROUP_MAPS 256

bool kiln__winograd_f2_applies(const kiln__conv_geom *g) {
    int64_t ty = (g->out[1] + 1) / 2, tx = (g->out[2] + 1) / 2;
    return kiln__cpu_simd() == KILN__SIMD_AVX512 && supported(g) && ty * tx >= F2_MIN_TILES &&
           ty * tx <= F2_MAX_TILES && tx <= F2_MAX_TX &&
           g->c >= F2_MIN_CHANNELS && g->m >= F2_MIN_MAPS &&
           (double)((g->m + 31) / 32 * 32) <= F2_MAX_MAP_WASTE * (double)g->m;
}

/* V[ij][cc][t] = (B^T d B)[i][j] for every tile t of image j->r0, B^T = [1 0 -1 0; 0 1 1 0;
 * 0 -1 1 0; 0 1 0 -1]. A tile row's four input rows are loaded as two vectors each over its 2 tx + 2
 * padded columns (masked: the padding reads as zeros); B^T's rows combine them, and each combined
 * row's even and odd columns, one and two tiles on, give the tx values of its four points. */
__attribute__((target("avx512f"))) static void f2_input_channel(const wino_job *j, int64_t cc) {
    const kiln__conv_geom *g = j->g;
    int64_t h = g->in[1], w = g->in[2], pl = g->pb[2], tx = j->tx, pstride = g->c * j->vld;
    const __m512i even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    const __m512i odd = _mm512_add_epi32(even, _mm512_set1_epi32(1));
    const __m512i even1 = _mm512_add_epi32(even, _mm512_set1_epi32(2));
    const __m512i odd1 = _mm512_add_epi32(even, _mm512_set1_epi32(3));
    uint32_t cols = bit_range(pl, pl + w) & bit_range(0, 2 * tx + 2);
    __mmask16 c0 = (__mmask16)cols, c1 = (__mmask16)(cols >> 16), keep = (__mmask16)((1u << tx) - 1);
    const float *xc = j->x + (j->r0 * g->c + cc) * g->in_plane;
    float *v = j->v + cc * j->vld;
    for (int64_t ty = j->row0; ty < j->row0 + j->rows; ty++, v += tx) {
        __m512 lo[4], hi[4];
        for (int r = 0; r < 4; r++) {
            int64_t iy = 2 * ty + r - g->pb[1];
            if (iy < 0 || iy >= h) {
                lo[r] = hi[r] = _mm512_setzero_ps();
                continue;
            }
            const float *row = xc + iy * w - pl; /* padded column 0; the mask skips the columns before xc */
            lo[r] = _mm512_maskz_loadu_ps(c0, row);
            hi[r] = _mm512_maskz_loadu_ps(c1, row + 16);
        }
        __m512 rl[4] = {_mm512_sub_ps(lo[0], lo[2]), _mm512_add_ps(lo[1], lo[2]), _mm512_sub_ps(lo[2], lo[1]),
                        _mm512_sub_ps(lo[1], lo[3])};
        __m512 rh[4] = {_mm512_sub_ps(hi[0], hi[2]), _mm512_add_ps(hi[1], hi[2]), _mm512_sub_ps(hi[2], hi[1]),
                        _mm512_sub_ps(hi[1], hi[3])};
        for (int i = 0; i < 4; i++) {
            __m512 e = _mm512_permutex2var_ps(rl[i], even, rh[i]), o = _mm512_permutex2var_ps(rl[i], odd, rh[i]);
            __m512 e1 = _mm512_permutex2var_ps(rl[i], even1, rh[i]), o1 = _mm512_permutex2var_ps(rl[i], odd1, rh[i]);
            float *vi = v + (int64_t)(4 * i) * pstride;
            _mm512_mask_storeu_ps(vi, keep, _mm512_sub_ps(e, e1));
            _mm512_mask_storeu_ps(vi + pstride, keep, _mm512_add_ps(o, e1));
            _mm512_mask_storeu_ps(vi + 2 * pstride, keep, _mm512_sub_ps(e1, o));
            _mm512_mask_storeu_ps(vi + 3 * pstride, keep, _mm512_sub_ps(o, o1));
        }
    }
}

/* Output row o of a map (rows of ow <= 30) from its even and odd columns, with the bias and the
 * residual rm (each row read before it is stored: y may be the residual). */
__attribute__((target("avx512f"), always_inline)) static inline void store_row(__m512 even, __m512 odd, __m512 bias,
                                                                              const float *rm, float *ym, int64_t o,
                                                                              __mmask16 c0, __mmask16 c1) {
    const __m512i lo_idx = _mm512_setr_epi32(0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23);
    const __m512i hi_idx = _mm512_setr_epi32(8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31);
    __m512 y0 = _mm512_add_ps(_mm512_permutex2var_ps(even, lo_idx, odd), bias);
    __m512 y1 = _mm512_add_ps(_mm512_permutex2var_ps(even, hi_idx, odd), bias);
    if (rm) {
        y0 = _mm512_add_ps(y0, _mm512_maskz_loadu_ps(c0, rm + o));
        y1 = _mm512_add_ps(y1, _mm512_maskz_loadu_ps(c1, rm + o + 16));
    }
    _mm512_mask_storeu_ps(ym + o, c0, y0);
    _mm512_mask_storeu_ps(ym + o + 16, c1, y1);
}

/* Y = A^T M A, A^T = [1 1 1 0; 0 1 -1 -1], for maps [m0, m1) of image j->r0 from mo[ij][map - m0][t]:
 * a tile row's two output rows, even and odd columns interleaved in registers, then the bias,
 * the residual (each row read before it is stored: y may be the residual) and the activation. */
__attribute__((target("avx512f"))) static void f2_output(const wino_job *j, const float *mo, int64_t m0,
                                                          int64_t m1) {
    const kiln__conv_geom *g = j->g;
    int64_t oh = g->out[1], ow = g->out[2], tx = j->tx, nt = j->nt, pstride = (m1 - m0) * nt;
    uint32_t cols = bit_range(0, ow);
    __mmask16 c0 = (__mmask16)cols, c1 = (__mmask16)(cols >> 16), keep = (__mmask16)((1u << tx) - 1);
    for (int64_t mm = m0; mm < m1; mm++) {
        int64_t plane = (j->r0 * g->m + mm) * g->out_plane;
        float *ym = j->y + plane;
        const float *rm = j->res ? j->res + plane : NULL;
        __m512 bias = _mm512_set1_ps(j->bias ? j->bias[mm] : 0.0f);
        const float *mb = mo + (mm - m0) * nt;
        for (int64_t ty = j->row0; ty < j->row0 + j->rows; ty++, mb += tx) {
            __m512 s[2][4];
            for (int jj = 0; jj < 4; jj++) {
                __m512 p0 = _mm512_maskz_loadu_ps(keep, mb + jj * pstride);
                __m512 p1 = _mm512_maskz_loadu_ps(keep, mb + (4 + jj) * pstride);
                __m512 p2 = _mm512_maskz_loadu_ps(keep, mb + (8 + jj) * pstride);
                __m512 p3 = _mm512_maskz_loadu_ps(keep, mb + (12 + jj) * pstride);
                s[0][jj] = _mm512_add_ps(_mm512_add_ps(p0, p1), p2);
                s[1][jj] = _mm512_sub_ps(_mm512_sub_ps(p1, p2), p3);
            }
            for (int r = 0; r < 2 && 2 * ty + r < oh; r++)
                store_row(_mm512_add_ps(_mm512_add_ps(s[r][0], s[r][1]), s[r][2]),
                          _mm512_sub_ps(_mm512_sub_ps(s[r][1], s[r][2]), s[r][3]), bias, rm, ym, (2 * ty + r) * ow,
                          c0, c1);
        }
        if (j->act->kind >= 0) kiln__apply_act_f32(j->act, ym, g->out_plane);
    }
}

/* Per thread of F(2x2) and stride 2: its V and M (see small_piece). */
typedef struct f2_split {
    const wino_job *j;
    float *v, *mo;      /* per slot: vfloats (V) and mfloats (M) */
    int64_t slots, vfloats, mfloats;
    bool *v_ready;      /* per slot: V holds the whole image's transform (few tiles) */
    atomic_int status;
} f2_split;

static void small_piece(void *arg, int64_t b, int64_t e);

/* F(2x2)'s and stride 2's driver once the weights are packed: per slot V (points x c x vld) and M
 * (points x a run of maps x vld), V's row offsets, and small_piece over the threads' shares per
 * image. */
static kiln_status small_run(wino_job *j, f2_split *sp, int64_t points, kiln__cpu_ctx *ctx) {
    const kiln__conv_geom *g = j->g;
    sp->vfloats = (points * g->c * j->vld + 15) / 16 * 16;
    sp->mfloats = points * KILN__MIN(F2_GROUP_MAPS, (g->m + 31) / 32 * 32) * j->vld;
    size_t bytes, obytes;
    if (!kiln__mul_size((size_t)(sp->slots * (sp->vfloats + sp->mfloats)), sizeof(float), &bytes) ||
        !kiln__mul_size((size_t)g->c, sizeof(int64_t), &obytes))
        return kiln__error(KILN_OUT_OF_MEMORY, "Winograd scratch size overflows");
    sp->v = kiln__malloc_aligned(ctx->alloc, bytes, 64);
    sp->v_ready = kiln__malloc(ctx->alloc, (size_t)sp->slots * sizeof *sp->v_ready);
    int64_t *off = kiln__malloc(ctx->alloc, obytes);
    kiln_status st = sp->v && sp->v_ready && off ? KILN_OK : KILN_OUT_OF_MEMORY;
    if (st == KILN_OK) {
        sp->mo = sp->v + sp->slots * sp->vfloats;
        for (int64_t k = 0; k < g->c; k++) off[k] = k * j->vld;
        j->off = off;
    }
    bool whole = j->vld == j->ty * j->tx;
    int64_t units = whole ? (g->m + 31) / 32 : j->ty, min_piece = whole ? 1 : j->vld / j->tx;
    for (j->r0 = 0; j->r0 < g->n && st == KILN_OK; j->r0++) { /* r0: the image */
        atomic_init(&sp->status, KILN_OK);
        for (int64_t s = 0; s < sp->slots; s++) sp->v_ready[s] = false;
        kiln__parallel_shares(ctx->pool, units, min_piece, small_piece, sp);
        st = atomic_load(&sp->status);
    }
    kiln__free(ctx->alloc, off);
    kiln__free(ctx->alloc, sp->v_ready);
    kiln__free(ctx->alloc, sp->v);
    return st;
}

kiln_status kiln__winograd_f2_conv(const kiln__conv_geom *g, const float *x, const float *w, const void *w_src,
                                   const float *bias, const float *res, const kiln__act *act, float *y,
                                   kiln__cpu_ctx *ctx, const kiln_layer *layer) {
    wino_job j = {.kind = &F2, .g = g, .x = x, .w = w, .bias = bias, .res = res, .y = y, .act = act,
                  .alloc = ctx->alloc};
    j.ty = (g->out[1] + 1) / 2;
    j.tx = (g->out[2] + 1) / 2;
    j.nt = j.ty * j.tx;
    if (kiln__cpu_simd() != KILN__SIMD_AVX512 || !supported(g) || j.tx > F2_MAX_TX || j.nt > F2_MAX_TILES)
        return kiln__error(KILN_INTERNAL_ERROR, "Winograd F(2x2) convolution called for a geometry it does not take");
    float *owned = NULL;
    kiln_status st = packed_weights(&j, w_src, ctx, layer, &owned);
    if (st != KILN_OK) return st;
    j.vld = j.nt;
    f2_split sp = {.j = &j, .slots = KILN__MIN(kiln__pool_threads(ctx->pool), (g->m + 31) / 32)};
    st = small_run(&j, &sp, F2_PTS, ctx);
    kiln__free(ctx->alloc, owned);
    return st;
}

/* ---------------------------------------------------------------- stride 2 */

/* A 3x3 stride-2 convolution splits by input column (and row) parity: y0 = w0 x0 + w1 x1 + w2 x2
 * and y1 = w0 x2 + w1 x3 + w2 x4 are a 2-tap convolution of the even inputs, F(2, 2) in 3
 * multiplications ((x0 - x2) w0, x2 (w0 + w2), (x4 - x2) w2), plus w1 times each odd input: 5
 * instead of 6 per 2 outputs. Nested in two dimensions: 25 GEMMs instead of 36 multiplications per
 * 2x2 outputs, over 5x5 input tiles 4 apart, V = B^T d B with B^T = [1 0 -1 0 0; 0 0 1 0 0;
 * 0 0 -1 0 1; 0 1 0 0 0; 0 0 0 1 0], U = G g G^T (G above, 5x3), Y = A^T M A with A^T = [1 1 0 1 0;
 * 0 1 1 0 1]. G's last two rows are equal, so the 25 points share 16 U (16 / 9 of the weights, as
 * F(2x2)): the points of one U are one GEMM over their tiles side by side. All coefficients are
 * 0 and +-1: the sums round like the direct ones. As F(2x2), the threads split the maps and each
 * transforms the whole input. Planes of more tiles go in blocks of tile rows, each thread its own
 * rows with all the maps: a whole V of 196 tiles (2.5 MB from 128x56x56) left L2, and writing it
 * took a quarter of the time (0.93-1.26 of the direct path's). ResNet-50's 3x3 stride-2 layers
 * inside the network (per-layer medians, this and the direct path alternating in one process):
 * from 256x28x28, 2.29 -> 1.96 ms at 1 thread and 1.19 -> 1.17 at 2 on the 2-core AMD machine,
 * 0.77-0.84 of the direct path's time at 1 thread and 0.84 at 2 on the GPU machine's Xeon (four
 * runs); from 128x56x56 in blocks, 0.93 and 0.96 on the AMD machine, 0.82-0.96 and 0.87-0.89 on the
 * Xeon. With 16 tiles (512x14x14) U comes from memory as for F(2x2) on 7x7. */
#define S2_MIN_TILES 25    /* 2x2 output tiles per image: 9x9 outputs and more */
#define S2_MAX_TILES 256   /* ... up to 32x32 */
#define S2_BLOCK_TILES 64  /* beyond this many, blocks of tile rows of at most this many tiles */
#define S2_MAX_TX 15     /* tiles across: a tile row's 4 tx + 1 input columns fit four vectors */

/* The 16 U classes, row-major over (i, j) in 0..3, and their points (pi, pj) in 0..4: class (i, j)
 * holds (i + a, j + b) for a < mult(i), b < mult(j), mult(3) = 2. V and M keep a class's points
 * next to each other, in that order, from slot s2_first[class]. */
static const int s2_first[16] = {0, 1, 2, 3, 5, 6, 7, 8, 10, 11, 12, 13, 15, 17, 19, 21};
static int s2_mult(int i) { return i == 3 ? 2 : 1; }
static int s2_slot(int pi, int pj) {
    int i = pi < 3 ? pi : 3, jj = pj < 3 ? pj : 3;
    return s2_first[i * 4 + jj] + (pi - i) * s2_mult(jj) + (pj - jj);
}

static bool supported_s2(const kiln__conv_geom *g) {
    if (kiln__cpu_simd() != KILN__SIMD_AVX512 || g->groups != 1 || g->k[0] != 1 || g->k[1] != 3 || g->k[2] != 3 ||
        g->in[0] != 1 || g->out[0] != 1 || g->pb[0] != 0 || g->s[0] != 1)
        return false;
    for (int i = 1; i < 3; i++)
        if (g->s[i] != 2 || g->d[i] != 1 || g->pb[i] < 0 || g->pb[i] > 2 || g->out[i] < 1) return false;
    return (g->out[2] + 1) / 2 <= S2_MAX_TX && g->c <= INT_MAX / 25 && g->m <= INT_MAX / 25;
}

bool kiln__winograd_s2_applies(const kiln__conv_geom *g) {
    int64_t tiles = (g->out[1] + 1) / 2 * ((g->out[2] + 1) / 2);
    return supported_s2(g) && tiles >= S2_MIN_TILES && tiles <= S2_MAX_TILES && g->c >= F2_MIN_CHANNELS &&
           g->m >= F2_MIN_MAPS && (double)((g->m + 31) / 32 * 32) <= F2_MAX_MAP_WASTE * (double)g->m;
}

/* The five columns of B^T d for every tile of a row of 4 tx + 1 padded inputs in r[0..3]: lane t
 * of h[b] is point b of tile t. */
__attribute__((target("avx512f"), always_inline)) static inline void s2_columns(const __m512 *r, __m512 *h) {
    const __m512i by4 = _mm512_setr_epi32(0, 4, 8, 12, 16, 20, 24, 28, 0, 4, 8, 12, 16, 20, 24, 28);
    __m512 p[4];
    for (int k = 0; k < 4; k++) {
        __m512i idx = _mm512_add_epi32(by4, _mm512_set1_epi32(k));
        __m512 lo = _mm512_permutex2var_ps(r[0], idx, r[1]), hi = _mm512_permutex2var_ps(r[2], idx, r[3]);
        p[k] = _mm512_shuffle_f32x4(lo, hi, 0x44); /* columns 4t + k */
    }
    __m512 next = _mm512_castsi512_ps(_mm512_alignr_epi32(_mm512_setzero_si512(), _mm512_castps_si512(p[0]), 1));
    h[0] = _mm512_sub_ps(p[0], p[2]);
    h[1] = p[2];
    h[2] = _mm512_sub_ps(next, p[2]);
    h[3] = p[1];
    h[4] = p[3];
}

/* V[slot][cc][t] for every tile t of image j->r0: per tile row, the five input rows (masked: the
 * padding reads as zeros) are combined down by B^T's rows, then each combination across. */
__attribute__((target("avx512f"))) static void s2_input_channel(const wino_job *j, int64_t cc) {
    const kiln__conv_geom *g = j->g;
    int64_t h = g->in[1], w = g->in[2], pl = g->pb[2], tx = j->tx, pstride = g->c * j->vld;
    __mmask16 cols[4], keep = (__mmask16)((1u << tx) - 1);
    for (int q = 0; q < 4; q++) /* padded columns 16q.. inside the input and the tile row */
        cols[q] = (__mmask16)(bit_range(pl - 16 * q, pl + w - 16 * q) & bit_range(-16 * q, 4 * tx + 1 - 16 * q));
    const float *xc = j->x + (j->r0 * g->c + cc) * g->in_plane;
    float *v = j->v + cc * j->vld;
    for (int64_t ty = j->row0; ty < j->row0 + j->rows; ty++, v += tx) {
        __m512 d[5][4];
        for (int r = 0; r < 5; r++) {
            int64_t iy = 4 * ty + r - g->pb[1];
            for (int q = 0; q < 4; q++)
                d[r][q] = iy < 0 || iy >= h ? _mm512_setzero_ps()
                                            : _mm512_maskz_loadu_ps(cols[q], xc + iy * w - pl + 16 * q);
        }
        __m512 down[5][4];
        for (int q = 0; q < 4; q++) {
            down[0][q] = _mm512_sub_ps(d[0][q], d[2][q]);
            down[1][q] = d[2][q];
            down[2][q] = _mm512_sub_ps(d[4][q], d[2][q]);
            down[3][q] = d[1][q];
            down[4][q] = d[3][q];
        }
        for (int a = 0; a < 5; a++) {
            __m512 across[5];
            s2_columns(down[a], across);
            for (int b = 0; b < 5; b++) _mm512_mask_storeu_ps(v + s2_slot(a, b) * pstride, keep, across[b]);
        }
    }
}

/* Y = A^T M A for maps [m0, m1) over the block's tile rows of image j->r0, the point of slot p of
 * map i at mo[(s2_first[class] * mg + i * mult + index) * nt] (each class's GEMM writes its points
 * side by side in every map's row), then the bias, the residual and the activation as f2_output. */
__attribute__((target("avx512f"))) static void s2_output(const wino_job *j, const float *mo, int64_t m0, int64_t m1) {
    const kiln__conv_geom *g = j->g;
    int64_t oh = g->out[1], ow = g->out[2], tx = j->tx, nt = j->nt, mg = m1 - m0;
    uint32_t cols = bit_range(0, ow);
    __mmask16 c0 = (__mmask16)cols, c1 = (__mmask16)(cols >> 16), keep = (__mmask16)((1u << tx) - 1);
    int64_t at[5][5], step[5][5]; /* each point's offset for map m0 and its step per map, in floats */
    for (int pi = 0; pi < 5; pi++)
        for (int pj = 0; pj < 5; pj++) {
            int i = pi < 3 ? pi : 3, jj = pj < 3 ? pj : 3, mult = s2_mult(i) * s2_mult(jj);
            int index = (pi - i) * s2_mult(jj) + (pj - jj);
            at[pi][pj] = (s2_first[i * 4 + jj] * mg + index) * nt;
            step[pi][pj] = mult * nt;
        }
    for (int64_t mm = m0; mm < m1; mm++) {
        int64_t plane = (j->r0 * g->m + mm) * g->out_plane;
        float *ym = j->y + plane;
        const float *rm = j->res ? j->res + plane : NULL;
        __m512 bias = _mm512_set1_ps(j->bias ? j->bias[mm] : 0.0f);
        for (int64_t ty = j->row0; ty < j->row0 + j->rows; ty++) {
            __m512 s[2][5];
            for (int pj = 0; pj < 5; pj++) {
                __m512 p[5];
                for (int pi = 0; pi < 5; pi++)
                    p[pi] = _mm512_maskz_loadu_ps(keep,
                                                  mo + at[pi][pj] + (mm - m0) * step[pi][pj] + (ty - j->row0) * tx);
                s[0][pj] = _mm512_add_ps(_mm512_add_ps(p[0], p[1]), p[3]);
                s[1][pj] = _mm512_add_ps(_mm512_add_ps(p[1], p[2]), p[4]);
            }
            for (int r = 0; r < 2 && 2 * ty + r < oh; r++)
                store_row(_mm512_add_ps(_mm512_add_ps(s[r][0], s[r][1]), s[r][3]),
                          _mm512_add_ps(_mm512_add_ps(s[r][1], s[r][2]), s[r][4]), bias, rm, ym, (2 * ty + r) * ow,
                          c0, c1);
        }
        if (j->act->kind >= 0) { /* the block's output rows only: others may be another thread's */
            int64_t y0 = 2 * j->row0, y1 = KILN__MIN(oh, 2 * (j->row0 + j->rows));
            kiln__apply_act_f32(j->act, ym + y0 * ow, (y1 - y0) * ow);
        }
    }
}

/* V of the block j: every channel's input transform. */
static void small_input(const wino_job *j) {
    for (int64_t cc = 0; cc < j->g->c; cc++) {
        if (j->kind == &S2)
            s2_input_channel(j, cc);
        else
            f2_input_channel(j, cc);
    }
}

/* Maps [m0, m1) of the block j (V transformed) in runs of F2_GROUP_MAPS: 16 GEMMs, one per U over
 * its points' tiles side by side (F(2x2): one point each), then the output transform. */
static kiln_status small_block(const wino_job *j, int64_t m0, int64_t m1, float *mo) {
    int64_t c = j->g->c, nt = j->nt;
    bool s2 = j->kind == &S2;
    for (; m0 < m1; m0 += F2_GROUP_MAPS) {
        int64_t mg = KILN__MIN(F2_GROUP_MAPS, m1 - m0);
        for (int cl = 0; cl < 16; cl++) {
            int64_t points = s2 ? s2_mult(cl / 4) * s2_mult(cl % 4) : 1, p0 = s2 ? s2_first[cl] : cl;
            /* column q: tile q % nt of point p0 + q / nt */
            kiln_status st = kiln__sgemm_cv(NULL, mg, points * nt, c, j->upack + cl * j->ustride + m0 * c,
                                            j->v + p0 * c * j->vld, j->off, c * j->vld, nt, mo + p0 * mg * nt,
                                            points * nt, 0, NULL);
            if (st != KILN_OK) return st;
        }
        if (s2)
            s2_output(j, mo, m0, m0 + mg);
        else
            f2_output(j, mo, m0, m0 + mg);
    }
    return KILN_OK;
}

/* A piece of one thread's share of F(2x2) or stride 2 (kiln__parallel_shares), with the thread's
 * own V and M. Few tiles (a block is the image): the 32-map panels [b, e), the thread having
 * transformed the whole input itself before its first piece: a tenth of the layer's work, against
 * a barrier between the transform and the GEMMs and half of V read from the other core (ResNet-50's
 * 3x3 layers on 14x14 at 2 threads on the 2-core AMD machine: 4% faster per layer, and 30% when
 * the other core was busy with another process, which the barrier waited for). Many tiles (stride
 * 2): tile rows [b, e) in blocks of vld tiles, all maps, so that V and M stay in L2 (U, for few
 * channels, is the smaller). */
static void small_piece(void *arg, int64_t b, int64_t e) {
    f2_split *sp = arg;
    const wino_job *lj = sp->j;
    int64_t m = lj->g->m, s = KILN__MIN(kiln__pool_thread(), sp->slots - 1);
    wino_job t = *lj;
    t.v = sp->v + s * sp->vfloats;
    float *mo = sp->mo + s * sp->mfloats;
    kiln_status st = KILN_OK;
    if (t.vld == t.ty * t.tx) {
        t.row0 = 0;
        t.rows = t.ty;
        t.nt = t.vld;
        if (!sp->v_ready[s]) small_input(&t);
        sp->v_ready[s] = true;
        st = small_block(&t, b * 32, KILN__MIN(m, e * 32), mo);
    } else {
        int64_t per = t.vld / t.tx;
        for (t.row0 = b; t.row0 < e && st == KILN_OK; t.row0 += per) {
            t.rows = KILN__MIN(per, e - t.row0);
            t.nt = t.rows * t.tx;
            small_input(&t);
            st = small_block(&t, 0, m, mo);
        }
    }
    if (st != KILN_OK) atomic_store(&sp->status, st);
}

kiln_status kiln__winograd_s2_conv(const kiln__conv_geom *g, const float *x, const float *w, const void *w_src,
                                   const float *bias, const float *res, const kiln__act *act, float *y,
                                   kiln__cpu_ctx *ctx, const kiln_layer *layer) {
    if (!supported_s2(g))
        return kiln__error(KILN_INTERNAL_ERROR, "Winograd stride-2 convolution called for a geometry it does not take");
    wino_job j = {.kind = &S2, .g = g, .x = x, .w = w, .bias = bias, .res = res, .y = y, .act = act,
                  .alloc = ctx->alloc};
    j.ty = (g->out[1] + 1) / 2;
    j.tx = (g->out[2] + 1) / 2;
    int64_t threads = kiln__pool_threads(ctx->pool);
    bool blocks = j.ty * j.tx > S2_BLOCK_TILES;
    j.vld = blocks ? KILN__MAX(1, S2_BLOCK_TILES / j.tx) * j.tx : j.ty * j.tx;
    float *owned = NULL;
    kiln_status st = packed_weights(&j, w_src, ctx, layer, &owned);
    if (st != KILN_OK) return st;
    f2_split sp = {.j = &j, .slots = KILN__MIN(threads, blocks ? j.ty : (g->m + 31) / 32)};
    st = small_run(&j, &sp, 25, ctx);
    kiln__free(ctx->alloc, owned);
    return st;
}
