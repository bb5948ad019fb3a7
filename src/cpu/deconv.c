/* CPU deconvolution (ONNX ConvTranspose): per (image, group) col = w_g^T x x_g with kiln's sgemm, then
 * col2im scatters the columns into the output, then the bias / residual / activation epilogue.
 * float16/bfloat16 run through float32; float64 is a plain scatter loop. */
#include "gemm.h"

#include <limits.h>
#include <stdatomic.h>
#include <string.h>

/* Below this many flops per GEMM, running several GEMMs at once, one per thread, beats
 * spreading each over the threads. */
#define KILN__SMALL_GEMM_FLOPS 8e6

/* Geometry with spatial dims padded to 3 (leading dims of size 1). */
typedef struct deconv_geom {
    int64_t n, c, m, groups, cg, mg;
    int64_t in[3], out[3], k[3], s[3], d[3], pb[3];
    int64_t in_plane, out_plane, kvol;
} deconv_geom;

typedef struct deconv_job {
    deconv_geom g;
    const float *x, *w, *bias, *res;
    float *y;
    const kiln__act *act;
    float *col; /* one block of col_size per slot */
    int64_t col_size, slots;
    /* Serial-task mode: the (image, group) whose col matrix is in col. */
    int64_t n_cur, grp_cur;
    const kiln__alloc *alloc;
    atomic_int status; /* the first failure of a parallel GEMM task */
} deconv_job;

static int64_t floor_half(int64_t v) { return v >= 0 ? v / 2 : -((-v + 1) / 2); }

static void geom_init(const kiln_layer *layer, const kiln__value *in, const kiln__value *out, deconv_geom *g) {
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
            /* ONNX ConvTranspose: with output_shape or SAME, the pads split the total padding;
             * SAME_UPPER puts the smaller half first. */
            int64_t total = g->s[j] * (g->in[j] - 1) + p->output_padding[i] + g->d[j] * (g->k[j] - 1) + 1 - g->out[j];
            if (p->auto_pad == KILN__PAD_SAME_UPPER)
                g->pb[j] = floor_half(total);
            else if (p->auto_pad == KILN__PAD_SAME_LOWER || p->has_output_shape)
                g->pb[j] = total - floor_half(total);
            else
                g->pb[j] = p->auto_pad == KILN__PAD_VALID ? 0 : p->pad_begin[i];
        }
        g->in_plane *= g->in[j];
        g->out_plane *= g->out[j];
        g->kvol *= g->k[j];
    }
}

/* Input positions [lo, hi) along the last dim whose output index i*s + base lies in [0, n). */
static void valid_range(int64_t base, int64_t s, int64_t n, int64_t count, int64_t *lo, int64_t *hi) {
    int64_t l = base >= 0 ? 0 : (-base + s - 1) / s;
    int64_t h = n - base <= 0 ? 0 : (n - base + s - 1) / s;
    *lo = KILN__MIN(l, count);
    *hi = KILN__MAX(*lo, KILN__MIN(h, count));
}

/* Output map m (within group grp) of image n: scatter its col rows, then the epilogue. */
static void col2im_map(const deconv_job *j, const float *col, int64_t n, int64_t grp, int64_t mi) {
    const deconv_geom *g = &j->g;
    int64_t m = grp * g->mg + mi;
    float *y = j->y + (n * g->m + m) * g->out_plane;
    memset(y, 0, (size_t)g->out_plane * sizeof *y);
    const float *src = col + mi * g->kvol * g->in_plane;
    for (int64_t kz = 0; kz < g->k[0]; kz++)
        for (int64_t ky = 0; ky < g->k[1]; ky++)
            for (int64_t kx = 0; kx < g->k[2]; kx++, src += g->in_plane) {
                int64_t base_x = kx * g->d[2] - g->pb[2], lo, hi;
                valid_range(base_x, g->s[2], g->out[2], g->in[2], &lo, &hi);
                for (int64_t iz = 0; iz < g->in[0]; iz++) {
                    int64_t oz = iz * g->s[0] - g->pb[0] + kz * g->d[0];
                    if (oz < 0 || oz >= g->out[0]) continue;
                    for (int64_t iy = 0; iy < g->in[1]; iy++) {
                        int64_t oy = iy * g->s[1] - g->pb[1] + ky * g->d[1];
                        if (oy < 0 || oy >= g->out[1]) continue;
                        const float *crow = src + (iz * g->in[1] + iy) * g->in[2];
                        float *yrow = y + (oz * g->out[1] + oy) * g->out[2];
                        for (int64_t ix = lo; ix < hi; ix++) yrow[ix * g->s[2] + base_x] += crow[ix];
                    }
                }
            }
    float b = j->bias ? j->bias[m] : 0.0f;
    if (j->res) {
        const float *r = j->res + (n * g->m + m) * g->out_plane;
        for (int64_t i = 0; i < g->out_plane; i++) y[i] += b + r[i];
    } else if (j->bias) {
        for (int64_t i = 0; i < g->out_plane; i++) y[i] += b;
    }
    if (j->act->kind >= 0) kiln__apply_act_f32(j->act, y, g->out_plane);
}

static kiln_status gemm_task(const deconv_job *j, int64_t n, int64_t grp, float *col, kiln__pool *pool) {
    const deconv_geom *g = &j->g;
    int64_t rows = g->mg * g->kvol;
    return kiln__sgemm(pool, j->alloc, true, false, rows, g->in_plane, g->cg, 1.0f, j->w + grp * g->cg * rows, rows,
                       j->x + (n * g->c + grp * g->cg) * g->in_plane, g->in_plane, 0.0f, col, g->in_plane, NULL);
}

static void slot_range(void *arg, int64_t begin, int64_t end) {
    deconv_job *j = arg;
    int64_t tasks = j->g.n * j->g.groups;
    for (int64_t s = begin; s < end; s++) {
        float *col = j->col + s * j->col_size;
        for (int64_t t = s; t < tasks; t += j->slots) {
            int64_t n = t / j->g.groups, grp = t % j->g.groups;
            kiln_status st = gemm_task(j, n, grp, col, NULL);
            if (st != KILN_OK) {
                atomic_store(&j->status, st);
                continue;
            }
            for (int64_t mi = 0; mi < j->g.mg; mi++) col2im_map(j, col, n, grp, mi);
        }
    }
}

static void col2im_range(void *arg, int64_t begin, int64_t end) {
    const deconv_job *j = arg;
    for (int64_t mi = begin; mi < end; mi++) col2im_map(j, j->col, j->n_cur, j->grp_cur, mi);
}

static kiln_status deconv_f32(deconv_job *j, kiln__cpu_ctx *ctx) {
    const deconv_geom *g = &j->g;
    int64_t tasks = g->n * g->groups, threads = ctx->pool ? kiln__pool_threads(ctx->pool) : 1;
    /* Many small tasks: one pipeline per thread; otherwise each GEMM uses all the threads. */
    double flops = 2.0 * (double)g->mg * (double)g->kvol * (double)g->in_plane * (double)g->cg;
    j->slots = threads > 1 && tasks >= threads && flops < KILN__SMALL_GEMM_FLOPS ? threads : 1;
    j->col_size = g->mg * g->kvol * g->in_plane;
    size_t bytes;
    if (!kiln__mul_size((size_t)(j->slots * j->col_size), sizeof(float), &bytes))
        return kiln__error(KILN_OUT_OF_MEMORY, "deconvolution scratch size overflows");
    j->col = kiln__malloc_aligned(ctx->alloc, KILN__MAX(bytes, 1), 64);
    if (!j->col) return KILN_OUT_OF_MEMORY;
    j->alloc = ctx->alloc;
    atomic_init(&j->status, KILN_OK);
    kiln_status st = KILN_OK;
    if (j->slots > 1) {
        kiln__parallel_for(ctx->pool, j->slots, 1, slot_range, j);
        st = atomic_load(&j->status);
    } else {
        for (int64_t t = 0; t < tasks && st == KILN_OK; t++) {
            j->n_cur = t / g->groups;
            j->grp_cur = t % g->groups;
            st = gemm_task(j, j->n_cur, j->grp_cur, j->col, ctx->pool);
            if (st == KILN_OK) kiln__parallel_for(ctx->pool, g->mg, 1, col2im_range, j);
        }
    }
    kiln__free(ctx->alloc, j->col);
    return st;
}

/* ---------------------------------------------------------------- float64: a scatter loop */

static double act_f64(const kiln__act *a, double x) {
    switch (a->kind) {
    case KILN_ACT_RELU: return x > 0 ? x : 0;
    case KILN_ACT_LEAKY_RELU: return x >= 0 ? x : a->alpha * x;
    case KILN_ACT_CLIP: return x < a->alpha ? a->alpha : (x > a->beta ? a->beta : x);
    default: return kiln__act_f32(a->kind, a->alpha, a->beta, (float)x);
    }
}

typedef struct deconv_job64 {
    deconv_geom g;
    const double *x, *w, *bias, *res;
    double *y;
    const kiln__act *act;
} deconv_job64;

static void deconv64_range(void *arg, int64_t begin, int64_t end) {
    const deconv_job64 *j = arg;
    const deconv_geom *g = &j->g;
    for (int64_t t = begin; t < end; t++) {
        int64_t n = t / g->m, m = t % g->m, grp = m / g->mg, mi = m % g->mg;
        double *y = j->y + t * g->out_plane;
        for (int64_t o = 0; o < g->out_plane; o++) y[o] = j->bias ? j->bias[m] : 0.0;
        for (int64_t c = 0; c < g->cg; c++) {
            const double *x = j->x + (n * g->c + grp * g->cg + c) * g->in_plane;
            const double *w = j->w + ((grp * g->cg + c) * g->mg + mi) * g->kvol;
            for (int64_t iz = 0, i = 0; iz < g->in[0]; iz++)
                for (int64_t iy = 0; iy < g->in[1]; iy++)
                    for (int64_t ix = 0; ix < g->in[2]; ix++, i++)
                        for (int64_t kz = 0, tap = 0; kz < g->k[0]; kz++)
                            for (int64_t ky = 0; ky < g->k[1]; ky++)
                                for (int64_t kx = 0; kx < g->k[2]; kx++, tap++) {
                                    int64_t oz = iz * g->s[0] - g->pb[0] + kz * g->d[0];
                                    int64_t oy = iy * g->s[1] - g->pb[1] + ky * g->d[1];
                                    int64_t ox = ix * g->s[2] - g->pb[2] + kx * g->d[2];
                                    if (oz < 0 || oz >= g->out[0] || oy < 0 || oy >= g->out[1] || ox < 0 ||
                                        ox >= g->out[2])
                                        continue;
                                    y[(oz * g->out[1] + oy) * g->out[2] + ox] += w[tap] * x[i];
                                }
        }
        for (int64_t o = 0; o < g->out_plane; o++) {
            double v = y[o] + (j->res ? j->res[t * g->out_plane + o] : 0.0);
            y[o] = j->act->kind >= 0 ? act_f64(j->act, v) : v;
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

kiln_status kiln__cpu_deconv(const kiln_layer *layer, const kiln__value *in, kiln__value *out, kiln__cpu_ctx *ctx) {
    const kiln__conv_params *p = &layer->p.conv;
    deconv_geom g;
    geom_init(layer, in, out, &g);
    const kiln__value *bias = layer->nb_inputs > 2 && in[2].data ? &in[2] : NULL;
    const kiln__value *res = layer->nb_inputs > 3 && in[3].data ? &in[3] : NULL;
    int64_t ny = g.n * g.m * g.out_plane;
    if (ny == 0) return KILN_OK;
    if (g.in_plane > INT_MAX || g.mg * g.kvol > INT_MAX || g.cg > INT_MAX)
        return kiln__layer_error(layer, KILN_UNSUPPORTED, "the GEMM dims exceed the BLAS int range");
    kiln_dtype t = in[0].dtype;
    if (t == KILN_FLOAT64) {
        deconv_job64 j = {g, in[0].data, in[1].data, bias ? bias->data : NULL, res ? res->data : NULL, out[0].data,
                          &p->act};
        kiln__parallel_for(ctx->pool, g.n * g.m, 1, deconv64_range, &j);
        return KILN_OK;
    }
    deconv_job j = {.g = g, .act = &p->act};
    if (t == KILN_FLOAT32) {
        j.x = in[0].data;
        j.w = in[1].data;
        j.bias = bias ? bias->data : NULL;
        j.res = res ? res->data : NULL;
        j.y = out[0].data;
        return deconv_f32(&j, ctx);
    }
    if (t != KILN_FLOAT16 && t != KILN_BFLOAT16)
        return kiln__layer_error(layer, KILN_UNSUPPORTED, "no CPU deconvolution for dtype %s", kiln_dtype_name(t));
    float *x = to_f32(ctx->alloc, &in[0], g.n * g.c * g.in_plane);
    float *w = to_f32(ctx->alloc, &in[1], g.c * g.mg * g.kvol);
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
        st = deconv_f32(&j, ctx);
        if (st == KILN_OK) from_f32(y, t, out[0].data, ny);
    }
    kiln__free(ctx->alloc, x);
    kiln__free(ctx->alloc, w);
    kiln__free(ctx->alloc, b);
    kiln__free(ctx->alloc, r);
    kiln__free(ctx->alloc, y);
    return st;
}
