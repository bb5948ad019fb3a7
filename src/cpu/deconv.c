/* CPU deconvolution (ONNX ConvTranspose): per (image, group) col = w_g^T x x_g with kiln's sgemm, then
 * col2im scatters the columns into the output, then the bias / residual / activation epilogue.
 * float16/bfloat16 run through float32; float64 is a plain scatter loop. */
#include "conv_common.h"
#include "gemm.h"

#include <limits.h>
#include <stdatomic.h>
#include <string.h>

typedef struct deconv_job {
    kiln__conv_geom g;
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

/* Output map m (within group grp) of image n: scatter its col rows, then the epilogue. */
static void col2im_map(const deconv_job *j, const float *col, int64_t n, int64_t grp, int64_t mi) {
    const kiln__conv_geom *g = &j->g;
    int64_t m = grp * g->mg + mi;
    float *y = j->y + (n * g->m + m) * g->out_plane;
    memset(y, 0, (size_t)g->out_plane * sizeof *y);
    const float *src = col + mi * g->kvol * g->in_plane;
    for (int64_t kz = 0; kz < g->k[0]; kz++)
        for (int64_t ky = 0; ky < g->k[1]; ky++)
            for (int64_t kx = 0; kx < g->k[2]; kx++, src += g->in_plane) {
                int64_t base_x = kx * g->d[2] - g->pb[2], lo, hi;
                kiln__conv_valid_range(base_x, g->s[2], g->out[2], g->in[2], &lo, &hi);
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
    const kiln__conv_geom *g = &j->g;
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
    const kiln__conv_geom *g = &j->g;
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

typedef struct deconv_job64 {
    kiln__conv_geom g;
    const double *x, *w, *bias, *res;
    double *y;
    const kiln__act *act;
} deconv_job64;

static void deconv64_range(void *arg, int64_t begin, int64_t end) {
    const deconv_job64 *j = arg;
    const kiln__conv_geom *g = &j->g;
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
            y[o] = j->act->kind >= 0 ? kiln__conv_act_f64(j->act, v) : v;
        }
    }
}

kiln_status kiln__cpu_deconv(const kiln_layer *layer, const kiln__value *in, kiln__value *out, kiln__cpu_ctx *ctx) {
    const kiln__conv_params *p = &layer->p.conv;
    kiln__conv_geom g;
    kiln__conv_geom_init(layer, in, out, &g);
    if (g.n * g.m * g.out_plane == 0) return KILN_OK;
    if (g.in_plane > INT_MAX || g.mg * g.kvol > INT_MAX || g.cg > INT_MAX)
        return kiln__layer_error(layer, KILN_UNSUPPORTED, "the GEMM dims exceed the BLAS int range");
    if (in[0].dtype == KILN_FLOAT64) {
        const kiln__value *bias = kiln__conv_optional(layer, in, 2), *res = kiln__conv_optional(layer, in, 3);
        deconv_job64 j = {g, in[0].data, in[1].data, bias ? bias->data : NULL, res ? res->data : NULL, out[0].data,
                          &p->act};
        kiln__parallel_for(ctx->pool, g.n * g.m, 1, deconv64_range, &j);
        return KILN_OK;
    }
    /* float16/bfloat16 run through float32 copies. */
    kiln__conv_f32 f;
    kiln_status st = kiln__conv_f32_begin(layer, in, out, &g, ctx, &f);
    if (st != KILN_OK) return st;
    deconv_job j = {.g = g, .x = f.x, .w = f.w, .bias = f.bias, .res = f.res, .y = f.y, .act = &p->act};
    return kiln__conv_f32_end(ctx, out, deconv_f32(&j, ctx), &f);
}
