/* Matmul through cuBLASLt: out = alpha * op(a) op(b) + beta * c, numpy batch broadcasting,
 * then the fused activation. Row-major products run as the column-major product of the
 * transposes (Y^T = op(B)^T op(A)^T), so no data is transposed. A batch of a's against an
 * unbatched b is one tall product; other broadcast batches are first expanded into scratch. */
#include "cu_dev.cuh"

#include <string.h>

typedef struct mm_geo {
    int64_t m, n, k, batch;
    bool fold;        /* a's batches folded into m (b unbatched, a not transposed) */
    bool expand_a, expand_b;
    bool b_batched;   /* b has one matrix per batch (after expansion) */
    int32_t ob;       /* number of output batch dims */
    kiln_dims obatch; /* output batch dims */
} mm_geo;

static int64_t batch_volume(const kiln_dims *d, int32_t nb) {
    int64_t v = 1;
    for (int32_t i = 0; i < nb; i++) v *= d->d[i];
    return v;
}

/* Whether an operand's batch dims equal the output's (so its matrices are already laid out
 * one per output batch). */
static bool same_batch(const kiln_dims *d, int32_t nb, const kiln_dims *obatch) {
    int64_t v = batch_volume(d, nb);
    if (v != batch_volume(obatch, obatch->nb_dims)) return false;
    int32_t pad = obatch->nb_dims - nb;
    for (int32_t i = 0; i < obatch->nb_dims; i++) {
        int64_t di = i >= pad ? d->d[i - pad] : 1;
        if (di != obatch->d[i] && v != 1) return false;
    }
    return true;
}

static void mm_geometry(const kiln_layer *l, const kiln__value *in, const kiln__value *out, mm_geo *g) {
    const kiln__matmul_params *p = &l->p.matmul;
    const kiln_dims *a = &in[0].dims, *b = &in[1].dims, *o = &out[0].dims;
    int32_t ra = a->nb_dims, rb = b->nb_dims;
    memset(g, 0, sizeof *g);
    g->m = ra == 1 ? 1 : a->d[ra - 2 + (p->op_a ? 1 : 0)];
    g->k = ra == 1 ? a->d[0] : a->d[ra - 1 - (p->op_a ? 1 : 0)];
    g->n = rb == 1 ? 1 : b->d[rb - 1 - (p->op_b ? 1 : 0)];
    g->ob = o->nb_dims - (ra > 1) - (rb > 1);
    g->obatch.nb_dims = g->ob;
    for (int32_t i = 0; i < g->ob; i++) g->obatch.d[i] = o->d[i];
    g->batch = batch_volume(o, g->ob);
    int32_t nba = ra > 2 ? ra - 2 : 0, nbb = rb > 2 ? rb - 2 : 0;
    int64_t va = batch_volume(a, nba), vb = batch_volume(b, nbb);
    if (vb == 1 && !p->op_a && same_batch(a, nba, &g->obatch)) {
        g->fold = true;
        return;
    }
    g->expand_a = g->batch > 1 && !(va == g->batch && same_batch(a, nba, &g->obatch));
    g->expand_b = g->batch > 1 && !(vb == g->batch && same_batch(b, nbb, &g->obatch));
    g->b_batched = g->batch > 1;
}

static cudaDataType_t lt_type(kiln_dtype t) {
    return t == KILN_FLOAT16 ? CUDA_R_16F : t == KILN_BFLOAT16 ? CUDA_R_16BF : CUDA_R_32F;
}

static kiln_status layout(cublasLtMatrixLayout_t *lay, cudaDataType_t t, int64_t rows, int64_t cols, int64_t ld,
                          int64_t batch, int64_t stride) {
    LT_CHECK(cu_cublaslt.cublasLtMatrixLayoutCreate(lay, t, (uint64_t)rows, (uint64_t)cols, ld));
    if (batch > 1) {
        int32_t count = (int32_t)batch;
        LT_CHECK(cu_cublaslt.cublasLtMatrixLayoutSetAttribute(*lay, CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT, &count,
                                                              sizeof count));
        LT_CHECK(cu_cublaslt.cublasLtMatrixLayoutSetAttribute(*lay, CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET,
                                                              &stride, sizeof stride));
    }
    return KILN_OK;
}

static kiln_status mm_plan(cu_exec *x, const mm_geo *g) {
    const kiln__matmul_params *p = &x->layer->p.matmul;
    cu_layer_state *ls = x->ls;
    kiln_dtype dt = x->in[0].dtype;
    cudaDataType_t t = lt_type(dt);
    cublasComputeType_t ct =
        dt == KILN_FLOAT32 && (x->flags & KILN_FLAG_TF32) ? CUBLAS_COMPUTE_32F_FAST_TF32 : CUBLAS_COMPUTE_32F;
    LT_CHECK(cu_cublaslt.cublasLtMatmulDescCreate(&ls->mm, ct, CUDA_R_32F));
    cublasOperation_t ta = p->op_b ? CUBLAS_OP_T : CUBLAS_OP_N, tb = p->op_a ? CUBLAS_OP_T : CUBLAS_OP_N;
    LT_CHECK(cu_cublaslt.cublasLtMatmulDescSetAttribute(ls->mm, CUBLASLT_MATMUL_DESC_TRANSA, &ta, sizeof ta));
    LT_CHECK(cu_cublaslt.cublasLtMatmulDescSetAttribute(ls->mm, CUBLASLT_MATMUL_DESC_TRANSB, &tb, sizeof tb));
    int64_t m = g->fold ? g->m * g->batch : g->m, batch = g->fold ? 1 : g->batch;
    /* cuBLAS A = our b, cuBLAS B = our a, D = Y^T (n x m). */
    KILN__TRY(layout(&ls->la, t, p->op_b ? g->k : g->n, p->op_b ? g->n : g->k, p->op_b ? g->k : g->n, batch,
                     g->b_batched ? g->k * g->n : 0));
    KILN__TRY(layout(&ls->lb, t, p->op_a ? m : g->k, p->op_a ? g->k : m, p->op_a ? m : g->k, batch, g->m * g->k));
    KILN__TRY(layout(&ls->lc, t, g->n, m, g->n, batch, g->m * g->n));
    cublasLtMatmulPreference_t pref;
    LT_CHECK(cu_cublaslt.cublasLtMatmulPreferenceCreate(&pref));
    size_t ws = x->s->lt_ws_bytes;
    cublasStatus_t bs = cu_cublaslt.cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES,
                                                                         &ws, sizeof ws);
    cublasLtMatmulHeuristicResult_t res;
    int found = 0;
    if (bs == CUBLAS_STATUS_SUCCESS)
        bs = cu_cublaslt.cublasLtMatmulAlgoGetHeuristic(x->s->lt, ls->mm, ls->la, ls->lb, ls->lc, ls->lc, pref, 1, &res,
                                                        &found);
    cu_cublaslt.cublasLtMatmulPreferenceDestroy(pref);
    if (bs != CUBLAS_STATUS_SUCCESS)
        return kiln__layer_error(x->layer, KILN_DEVICE_ERROR, "cublasLtMatmulAlgoGetHeuristic failed: %s",
                                 cu_cublaslt.cublasLtGetStatusString(bs));
    if (!found)
        return kiln__layer_error(x->layer, KILN_UNSUPPORTED, "cuBLASLt has no algorithm for %lldx%lldx%lld (batch %lld)",
                                 (long long)g->m, (long long)g->n, (long long)g->k, (long long)g->batch);
    ls->mm_algo = res.algo;
    return KILN_OK;
}

/* Copies an operand's matrices, broadcast over the output batch dims, contiguously into dst. */
static kiln_status expand(cu_exec *x, const mm_geo *g, int32_t i, void *dst) {
    const kiln_dims *d = &x->in[i].dims;
    int32_t r = d->nb_dims, nb = r > 2 ? r - 2 : 0;
    kiln_dims bd = {nb, {0}};
    for (int32_t k = 0; k < nb; k++) bd.d[k] = d->d[k];
    int64_t dims[KILN_MAX_DIMS], ss[KILN_MAX_DIMS], ds[KILN_MAX_DIMS];
    cu_broadcast_strides(&bd, &g->obatch, ss);
    int64_t rows = r >= 2 ? d->d[r - 2] : 1, cols = d->d[r - 1], mat = rows * cols;
    for (int32_t k = 0; k < g->ob; k++) {
        dims[k] = g->obatch.d[k];
        ss[k] *= mat;
    }
    dims[g->ob] = mat;
    ss[g->ob] = 1;
    kiln_dims full = {g->ob + 1, {0}};
    for (int32_t k = 0; k <= g->ob; k++) full.d[k] = dims[k];
    cu_contiguous_strides(&full, ds);
    return cu_copy_strided(x->stream, x->din[i], 0, ss, dst, 0, ds, dims, g->ob + 1, kiln_dtype_bits(x->in[i].dtype) / 8);
}

kiln_status cu_matmul(cu_exec *x) {
    const kiln_layer *l = x->layer;
    const kiln__matmul_params *p = &l->p.matmul;
    mm_geo g;
    mm_geometry(l, x->in, x->out, &g);
    kiln_dtype dt = x->in[0].dtype;
    size_t es = kiln_dtype_bits(dt) / 8;
    size_t a_bytes = g.expand_a ? cu_align((size_t)(g.batch * g.m * g.k) * es) : 0;
    size_t b_bytes = g.expand_b ? cu_align((size_t)(g.batch * g.k * g.n) * es) : 0;
    int64_t ny = g.batch * g.m * g.n;
    bool has_c = kiln__has_input(l, x->in, 2) && p->beta != 0.0f;
    if (x->mode == CU_PLAN) {
        if (ny == 0 || g.k == 0) return KILN_OK;
        x->ls->scratch = a_bytes + b_bytes;
        return mm_plan(x, &g);
    }
    if (ny == 0) return KILN_OK;
    if (has_c) { /* y = c broadcast, then the product accumulates onto it with beta */
        const kiln_dims *od = &x->out[0].dims;
        int64_t cs[KILN_MAX_DIMS], ys[KILN_MAX_DIMS];
        cu_broadcast_strides(&x->in[2].dims, od, cs);
        cu_contiguous_strides(od, ys);
        KILN__TRY(cu_copy_strided(x->stream, x->din[2], 0, cs, x->dout[0], 0, ys, od->d, od->nb_dims, es));
    } else if (g.k == 0) {
        CU_CHECK(cudaMemsetAsync(x->dout[0], 0, (size_t)ny * es, x->stream));
    }
    if (g.k == 0) {
        if (has_c && p->beta != 1.0f)
            return kiln__layer_error(l, KILN_UNSUPPORTED, "an empty inner dim with beta %g is not supported on CUDA",
                                     p->beta);
        return cu_epilogue(x->stream, x->dout[0], dt, NULL, NULL, ny, 1, 1, &p->act);
    }
    const void *a = x->din[0], *b = x->din[1];
    char *scratch = (char *)x->scratch;
    if (g.expand_a) {
        KILN__TRY(expand(x, &g, 0, scratch));
        a = scratch;
    }
    if (g.expand_b) {
        KILN__TRY(expand(x, &g, 1, scratch + a_bytes));
        b = scratch + a_bytes;
    }
    float alpha = p->alpha, beta = has_c ? p->beta : 0.0f;
    LT_CHECK(cu_cublaslt.cublasLtMatmul(x->s->lt, x->ls->mm, &alpha, b, x->ls->la, a, x->ls->lb, &beta, x->dout[0],
                                        x->ls->lc, x->dout[0], x->ls->lc, &x->ls->mm_algo, x->s->lt_ws,
                                        x->s->lt_ws_bytes, x->stream));
    return cu_epilogue(x->stream, x->dout[0], dt, NULL, NULL, ny, 1, 1, &p->act);
}
