/* CPU matmul: out = alpha * op(a) op(b) + beta * c with numpy batch broadcasting and 1-D
 * operands, then the fused activation. float32 through kiln's sgemm (activation fused; a c
 * with beta 1 whose rows are n wide, a bias row or attention's mask or a whole [m, n] block, is
 * added by the GEMM's epilogue straight from where it lies, so y is not prefilled),
 * float64 through OpenBLAS's dgemm split by rows over the pool (one call per batch, or one for
 * all batches when b has none), half types through float32, integers (wrapping, as numpy)
 * through plain loops. A float32 b that is one constant matrix (a linear layer's weights) is
 * packed for the GEMM on a context's first run and kept in the layer's cache slot. */
#include "gemm.h"

#include <cblas.h>
#include <limits.h>
#include <stdatomic.h>
#include <string.h>

typedef struct mm_job {
    int64_t batches, m, k, n;
    const int64_t *aoff, *boff, *coff; /* element offset of each batch's matrix in a, b and res */
    int32_t op_a, op_b;
    double alpha, beta; /* beta is 0 when c is absent or added through res: y was not prefilled */
    kiln_dtype dtype;
    const void *a, *b;
    void *y;
    const float *res; /* float32 c added by the epilogue (rows ldr apart), or NULL */
    const float *bpack; /* float32 b packed once (the same matrix for every batch), or NULL */
    int64_t ldr;
    kiln__pool *pool;     /* threads for one batch's GEMM; NULL when batches run in parallel */
    const kiln__alloc *alloc;
    const kiln__act *act; /* fused into float32 GEMMs */
    atomic_int status;    /* the first failure among the batches */
    int64_t batch;        /* float64: the batch whose rows are being split */
} mm_job;

/* Rows [r0, r1) of one float64 batch. */
static void dgemm_rows(void *arg, int64_t r0, int64_t r1) {
    const mm_job *j = arg;
    int n = (int)j->n, k = (int)j->k;
    int lda = (int)KILN__MAX(1, j->op_a ? j->m : k), ldb = KILN__MAX(1, j->op_b ? k : n);
    const double *a = (const double *)j->a + j->aoff[j->batch] + (j->op_a ? r0 : r0 * lda);
    cblas_dgemm(CblasRowMajor, j->op_a ? CblasTrans : CblasNoTrans, j->op_b ? CblasTrans : CblasNoTrans,
                (int)(r1 - r0), n, k, j->alpha, a, lda, (const double *)j->b + j->boff[j->batch], ldb, j->beta,
                (double *)j->y + (j->batch * j->m + r0) * j->n, KILN__MAX(1, n));
}

static void gemm_one(mm_job *j, int64_t batch) {
    if (j->dtype == KILN_FLOAT64) {
        if (j->pool) {
            j->batch = batch;
            int64_t grain = KILN__MAX(1, (int64_t)(2e5 / ((double)j->n * (double)j->k + 1.0)));
            kiln__parallel_for(j->pool, j->m, grain, dgemm_rows, j);
        } else {
            mm_job one = *j; /* batches run in parallel: each its own row-range job */
            one.batch = batch;
            dgemm_rows(&one, 0, j->m);
        }
        return;
    }
    kiln__gemm_epilogue ep = {.act = j->act, .res = j->res ? j->res + j->coff[batch] : NULL, .ldr = j->ldr};
    kiln_status st = kiln__sgemm_packed_b(j->pool, j->alloc, j->op_a, j->op_b, j->m, j->n, j->k, (float)j->alpha,
                                          (const float *)j->a + j->aoff[batch], j->op_a ? j->m : j->k,
                                          (const float *)j->b + j->boff[batch], j->op_b ? j->k : j->n, j->bpack,
                                          (float)j->beta, (float *)j->y + batch * j->m * j->n, j->n, &ep);
    if (st != KILN_OK) atomic_store(&j->status, st);
}

static uint64_t ld_int(const void *p, kiln_dtype t, int64_t i) {
    switch (t) {
    case KILN_INT32: return (uint64_t)(int64_t)((const int32_t *)p)[i];
    case KILN_UINT32: return ((const uint32_t *)p)[i];
    default: return ((const uint64_t *)p)[i];
    }
}

static void st_int(void *p, kiln_dtype t, int64_t i, uint64_t v) {
    if (t == KILN_INT32 || t == KILN_UINT32)
        ((uint32_t *)p)[i] = (uint32_t)v;
    else
        ((uint64_t *)p)[i] = v;
}

/* Integer matmul in wrapping 64-bit arithmetic, truncated to the dtype's width. */
static void int_one(const mm_job *j, int64_t batch) {
    uint64_t alpha = (uint64_t)(int64_t)j->alpha, beta = (uint64_t)(int64_t)j->beta;
    int64_t sam = j->op_a ? 1 : j->k, sak = j->op_a ? j->m : 1;
    int64_t sbk = j->op_b ? 1 : j->n, sbn = j->op_b ? j->k : 1;
    for (int64_t r = 0; r < j->m; r++)
        for (int64_t c = 0; c < j->n; c++) {
            uint64_t acc = 0;
            for (int64_t q = 0; q < j->k; q++)
                acc += ld_int(j->a, j->dtype, j->aoff[batch] + r * sam + q * sak) *
                       ld_int(j->b, j->dtype, j->boff[batch] + q * sbk + c * sbn);
            int64_t o = (batch * j->m + r) * j->n + c;
            uint64_t prev = j->beta != 0 ? beta * ld_int(j->y, j->dtype, o) : 0;
            st_int(j->y, j->dtype, o, alpha * acc + prev);
        }
}

static void batch_range(void *arg, int64_t begin, int64_t end) {
    mm_job *j = arg;
    for (int64_t b = begin; b < end; b++) {
        if (kiln__dtype_is_float(j->dtype))
            gemm_one(j, b);
        else
            int_one(j, b);
    }
}

/* Copies c, broadcast, into every element of y (dims od); elements of esz bytes. */
static void fill_broadcast(const kiln_dims *od, const kiln_dims *cd, const void *c, void *y, size_t esz) {
    int32_t r = od->nb_dims;
    /* c equal to y's trailing dims and 1 (or absent) before them (a bias row, an [m, n] block):
     * y is that block repeated, copied whole. */
    int64_t block = 1, total_y = kiln__dims_volume(od);
    int32_t lead = cd->nb_dims <= r ? cd->nb_dims - 1 : -1;
    if (cd->nb_dims > r) block = 0;
    while (lead >= 0 && cd->d[lead] == od->d[r - cd->nb_dims + lead]) block *= cd->d[lead--];
    while (lead >= 0 && cd->d[lead] == 1) lead--;
    if (lead < 0 && block > 0) {
        for (int64_t e = 0; e < total_y; e += block) memcpy((char *)y + e * esz, c, (size_t)block * esz);
        return;
    }
    int64_t cs[KILN_MAX_DIMS], idx[KILN_MAX_DIMS] = {0}, total = kiln__dims_volume(od);
    int64_t run = 1;
    for (int32_t i = r - 1; i >= 0; i--) {
        int32_t ci = i - (r - cd->nb_dims);
        int64_t dim = ci >= 0 ? cd->d[ci] : 1;
        cs[i] = dim == 1 ? 0 : run;
        run *= dim;
    }
    const char *src = c;
    char *dst = y;
    int64_t off = 0;
    for (int64_t e = 0; e < total; e++) {
        memcpy(dst + e * esz, src + off * esz, esz);
        for (int32_t i = r - 1; i >= 0; i--) {
            off += cs[i];
            if (++idx[i] < od->d[i]) break;
            off -= cs[i] * idx[i];
            idx[i] = 0;
        }
    }
}

static double act_f64(const kiln__act *a, double x) {
    switch (a->kind) {
    case KILN_ACT_RELU: return x > 0 ? x : 0;
    case KILN_ACT_LEAKY_RELU: return x >= 0 ? x : a->alpha * x;
    case KILN_ACT_CLIP: return x < a->alpha ? a->alpha : (x > a->beta ? a->beta : x);
    default: return kiln__act_f32(a->kind, a->alpha, a->beta, (float)x);
    }
}

/* Runs the job on y (prefilled with c when beta != 0), then the activation. */
static kiln_status run_job(mm_job *j, const kiln__act *act, int64_t ny, kiln__cpu_ctx *ctx) {
    /* Small matrices: one batch per thread; large ones: each GEMM spread over the threads.
     * Integer loops always split over batches. */
    double flops = 2.0 * (double)j->m * (double)j->n * (double)j->k;
    bool split = !kiln__dtype_is_float(j->dtype) || flops < 8e6;
    j->alloc = ctx->alloc;
    j->act = act;
    atomic_init(&j->status, KILN_OK);
    if (split && j->batches > 1 && ctx->pool && kiln__pool_threads(ctx->pool) > 1) {
        j->pool = NULL;
        kiln__parallel_for(ctx->pool, j->batches, 1, batch_range, j);
    } else {
        j->pool = ctx->pool;
        batch_range(j, 0, j->batches);
    }
    kiln_status st = atomic_load(&j->status);
    if (st != KILN_OK || act->kind < 0 || j->dtype == KILN_FLOAT32) return st;
    if (j->dtype == KILN_FLOAT64)
        for (int64_t i = 0; i < ny; i++) ((double *)j->y)[i] = act_f64(act, ((double *)j->y)[i]);
    else
        kiln__apply_act_f32(act, j->y, ny);
    return KILN_OK;
}

static float *to_f32(const kiln__alloc *alloc, const kiln__value *v, int64_t count) {
    float *f = kiln__malloc_aligned(alloc, (size_t)KILN__MAX(count, 1) * sizeof(float), 64);
    if (!f || !v) return f;
    const uint16_t *h = v->data;
    for (int64_t i = 0; i < count; i++)
        f[i] = v->dtype == KILN_FLOAT16 ? kiln__half_to_float(h[i]) : kiln__bf16_to_float(h[i]);
    return f;
}

/* The context's cache block of packed b: a header, then the packed floats at offset 64. */
typedef struct bpack_header {
    const void *src; /* the constant b they came from */
    int64_t k, n;
    int32_t op_b, simd; /* the packing depends on the kernels' level */
} bpack_header;
#define BPACK_OFFSET 64

/* Sets j->bpack to b packed for the GEMM, from the layer's cache slot when it still matches (the
 * same constant, shape and kernel level), else packed now and kept there. Left NULL when b is
 * not one constant matrix or there is no slot: the GEMM packs it per call. */
static kiln_status cached_bpack(const kiln_layer *layer, const kiln__value *b, mm_job *j, kiln__cpu_ctx *ctx) {
    int simd = kiln__cpu_simd();
    if (!ctx->cache || simd == KILN__SIMD_NONE || b->dtype != KILN_FLOAT32 || b->dims.nb_dims > 2) return KILN_OK;
    const kiln_tensor *bt = layer->inputs[1];
    if (!bt || !bt->producer || bt->producer->type != KILN_LAYER_CONSTANT) return KILN_OK;
    bpack_header *h = *ctx->cache;
    if (h && h->src == b->data && h->k == j->k && h->n == j->n && h->op_b == j->op_b && h->simd == simd) {
        j->bpack = (const float *)((const char *)h + BPACK_OFFSET);
        return KILN_OK;
    }
    kiln__free(ctx->alloc, h);
    *ctx->cache = NULL;
    size_t bytes;
    if (!kiln__mul_size((size_t)kiln__sgemm_packed_b_floats(j->k, j->n), sizeof(float), &bytes) ||
        bytes > SIZE_MAX - BPACK_OFFSET)
        return kiln__layer_error(layer, KILN_OUT_OF_MEMORY, "packed weights of %lldx%lld floats overflow the size",
                                 (long long)j->k, (long long)j->n);
    h = kiln__malloc_large(ctx->alloc, bytes + BPACK_OFFSET);
    if (!h) return KILN_OUT_OF_MEMORY;
    *h = (bpack_header){b->data, j->k, j->n, j->op_b, simd};
    float *dst = (float *)((char *)h + BPACK_OFFSET);
    kiln__sgemm_pack_b(j->op_b, j->k, j->n, b->data, j->op_b ? j->k : j->n, dst);
    kiln__cpu_release_weights(ctx, b->data, b->bytes); /* the GEMM reads only the packed copy */
    *ctx->cache = h;
    j->bpack = dst;
    return KILN_OK;
}

kiln_status kiln__cpu_matmul(const kiln_layer *layer, const kiln__value *in, kiln__value *out, kiln__cpu_ctx *ctx) {
    const kiln__matmul_params *p = &layer->p.matmul;
    const kiln_dims *ad = &in[0].dims, *bd = &in[1].dims, *od = &out[0].dims;
    const kiln__value *c = layer->nb_inputs > 2 && in[2].data ? &in[2] : NULL;
    int32_t ra = ad->nb_dims, rb = bd->nb_dims;
    mm_job j = {.op_a = p->op_a, .op_b = p->op_b, .alpha = p->alpha, .beta = c ? p->beta : 0.0,
                .dtype = in[0].dtype};
    j.m = ra == 1 ? 1 : ad->d[ra - 2 + (p->op_a ? 1 : 0)];
    j.k = ra == 1 ? ad->d[0] : ad->d[ra - 1 - (p->op_a ? 1 : 0)];
    j.n = rb == 1 ? 1 : bd->d[rb - 1 - (p->op_b ? 1 : 0)];
    int64_t ny = kiln__dims_volume(od);
    if (ny == 0) return KILN_OK;
    if (j.m > INT_MAX || j.n > INT_MAX || j.k > INT_MAX)
        return kiln__layer_error(layer, KILN_UNSUPPORTED, "matrix dims %lldx%lldx%lld exceed the BLAS int range",
                                 (long long)j.m, (long long)j.k, (long long)j.n);

    /* Batch offsets: out batch dims broadcast a's and b's (right-aligned, size-1 dims repeat). */
    int32_t nbr = od->nb_dims - (ra > 1) - (rb > 1);
    j.batches = 1;
    for (int32_t i = 0; i < nbr; i++) j.batches *= od->d[i];
    /* c through the epilogue: float (not float64) with beta 1, y ending in [m, n], c's last dim
     * n and the one before it 1 (ldr 0: one row for every row of y) or m. */
    const kiln_dims *cd = c ? &c->dims : NULL;
    int32_t rc = cd ? cd->nb_dims : 0;
    bool res = c && p->beta == 1.0f && in[0].dtype != KILN_FLOAT64 && kiln__dtype_is_float(in[0].dtype) && ra > 1 &&
               rb > 1 && rc >= 1 && cd->d[rc - 1] == j.n && (rc == 1 || cd->d[rc - 2] == 1 || cd->d[rc - 2] == j.m);
    int64_t c_rows = res && rc >= 2 ? cd->d[rc - 2] : 1;
    bool fold = rb <= 2 && !p->op_a && ra > 2; /* a's batches stack into one [batches * m, k] matrix */
    bool whole = false; /* c holds every row of y: under fold, one [batches * m, n] block */
    if (fold && res) {
        whole = c_rows == j.m && rc == od->nb_dims;
        for (int32_t i = 0; i < rc - 2; i++) whole = whole && cd->d[i] == od->d[i];
        res = whole || kiln__dims_volume(cd) == j.n; /* or the same row for all */
    }
    int64_t nb_off = fold ? 1 : j.batches;
    int64_t *offs = kiln__malloc(ctx->alloc, (size_t)nb_off * 3 * sizeof(int64_t));
    if (!offs) return KILN_OUT_OF_MEMORY;
    j.aoff = offs;
    j.boff = offs + nb_off;
    j.coff = offs + 2 * nb_off;
    j.ldr = (fold ? whole : c_rows > 1) ? j.n : 0;
    if (fold) {
        offs[0] = offs[1] = offs[2] = 0;
        j.m *= j.batches;
        j.batches = 1;
    } else {
        int64_t sa[KILN_MAX_DIMS], sb[KILN_MAX_DIMS], sc[KILN_MAX_DIMS], idx[KILN_MAX_DIMS] = {0};
        int64_t run_a = j.m * j.k, run_b = j.k * j.n, run_c = c_rows * j.n;
        for (int32_t i = nbr - 1; i >= 0; i--) {
            int32_t ia = i - (nbr - KILN__MAX(ra - 2, 0)), ib = i - (nbr - KILN__MAX(rb - 2, 0));
            int32_t ic = i - (nbr - KILN__MAX(rc - 2, 0));
            int64_t da = ia >= 0 ? ad->d[ia] : 1, db = ib >= 0 ? bd->d[ib] : 1, dc = res && ic >= 0 ? cd->d[ic] : 1;
            sa[i] = da == 1 ? 0 : run_a;
            sb[i] = db == 1 ? 0 : run_b;
            sc[i] = dc == 1 ? 0 : run_c;
            run_a *= da;
            run_b *= db;
            run_c *= dc;
        }
        int64_t oa = 0, ob = 0, oc = 0;
        for (int64_t b = 0; b < j.batches; b++) {
            offs[b] = oa;
            offs[nb_off + b] = ob;
            offs[2 * nb_off + b] = oc;
            for (int32_t i = nbr - 1; i >= 0; i--) {
                oa += sa[i];
                ob += sb[i];
                oc += sc[i];
                if (++idx[i] < od->d[i]) break;
                oa -= sa[i] * idx[i];
                ob -= sb[i] * idx[i];
                oc -= sc[i] * idx[i];
                idx[i] = 0;
            }
        }
    }
    if (res) j.beta = 0; /* c goes in through the epilogue */

    kiln_status st = KILN_OK;
    kiln_dtype t = in[0].dtype;
    if (t == KILN_FLOAT16 || t == KILN_BFLOAT16) {
        int64_t na = kiln__dims_volume(ad), nbv = kiln__dims_volume(bd);
        float *a = to_f32(ctx->alloc, &in[0], na), *b = to_f32(ctx->alloc, &in[1], nbv);
        float *cf = c ? to_f32(ctx->alloc, c, kiln__dims_volume(&c->dims)) : NULL;
        float *y = to_f32(ctx->alloc, NULL, ny);
        if (a && b && y && (cf || !c)) {
            if (j.beta != 0) fill_broadcast(od, &c->dims, cf, y, sizeof(float));
            j.res = res ? cf : NULL;
            j.dtype = KILN_FLOAT32;
            j.a = a;
            j.b = b;
            j.y = y;
            st = run_job(&j, &p->act, ny, ctx);
            uint16_t *h = out[0].data;
            for (int64_t i = 0; i < ny; i++)
                h[i] = t == KILN_FLOAT16 ? kiln__float_to_half(y[i]) : kiln__float_to_bf16(y[i]);
        } else {
            st = KILN_OUT_OF_MEMORY;
        }
        kiln__free(ctx->alloc, a);
        kiln__free(ctx->alloc, b);
        kiln__free(ctx->alloc, cf);
        kiln__free(ctx->alloc, y);
    } else {
        size_t esz = kiln_dtype_bits(t) / 8;
        if (j.beta != 0) fill_broadcast(od, &c->dims, c->data, out[0].data, esz);
        j.res = res ? c->data : NULL;
        if (t == KILN_FLOAT32) st = cached_bpack(layer, &in[1], &j, ctx);
        j.a = in[0].data;
        j.b = in[1].data;
        j.y = out[0].data;
        if (st == KILN_OK) st = run_job(&j, &p->act, ny, ctx);
    }
    kiln__free(ctx->alloc, offs);
    return st;
}
