/* Gather kernels. Every index is checked (and negative ones wrapped) in one serial pass before
 * any copy, so a bad index is an error naming the layer, never a read out of bounds. */
#include "cpu.h"
#include "../network/layer_resolve.h"

#include <string.h>

static inline int64_t index_at(const kiln__value *idx, int64_t i) {
    return idx->dtype == KILN_INT32 ? ((const int32_t *)idx->data)[i] : ((const int64_t *)idx->data)[i];
}

static kiln_status bad_index(const kiln_layer *layer, int64_t pos, int64_t v, int64_t dim) {
    return kiln__layer_error(layer, KILN_INVALID_ARGUMENT, "index %lld (at position %lld) is out of range [-%lld, %lld)",
                             (long long)v, (long long)pos, (long long)dim, (long long)dim);
}

typedef struct gather_job {
    const char *src;
    char *dst;
    const int64_t *idx; /* wrapped indices (default/elements) or data offsets (nd) */
    int64_t n, inner, dim;
    size_t es;
    /* elements */
    int32_t rank, axis;
    int64_t out_dims[KILN_MAX_DIMS], data_stride[KILN_MAX_DIMS];
} gather_job;

/* Default: item (o, j) copies data[o, idx[j], :] to out[o, j, :]. */
static void take_range(void *arg, int64_t begin, int64_t end) {
    const gather_job *g = arg;
    size_t bytes = (size_t)g->inner * g->es;
    for (int64_t it = begin; it < end; it++) {
        int64_t o = it / g->n, j = it % g->n;
        memcpy(g->dst + (size_t)it * bytes, g->src + (size_t)((o * g->dim + g->idx[j]) * g->inner) * g->es, bytes);
    }
}

/* ND: item i copies a block of `inner` elements from data offset idx[i]. */
static void block_range(void *arg, int64_t begin, int64_t end) {
    const gather_job *g = arg;
    size_t bytes = (size_t)g->inner * g->es;
    for (int64_t it = begin; it < end; it++)
        memcpy(g->dst + (size_t)it * bytes, g->src + (size_t)g->idx[it] * g->es, bytes);
}

static void elements_range(void *arg, int64_t begin, int64_t end) {
    const gather_job *g = arg;
    for (int64_t e = begin; e < end; e++) {
        int64_t rest = e, off = 0;
        for (int32_t k = g->rank - 1; k >= 0; k--) {
            int64_t c = rest % g->out_dims[k];
            rest /= g->out_dims[k];
            off += (k == g->axis ? g->idx[e] : c) * g->data_stride[k];
        }
        memcpy(g->dst + (size_t)e * g->es, g->src + (size_t)off * g->es, g->es);
    }
}

kiln_status kiln__cpu_gather(const kiln_layer *layer, const kiln__value *inputs, kiln__value *outputs,
                             kiln__cpu_ctx *ctx) {
    const kiln__gather_params *p = &layer->p.gather;
    const kiln__value *data = &inputs[0], *iv = &inputs[1];
    kiln__value *y = &outputs[0];
    const kiln_dims *dd = &data->dims, *id = &iv->dims;
    int32_t r = dd->nb_dims, q = id->nb_dims;
    int64_t nidx = kiln__dims_volume(id), out_volume = kiln__dims_volume(&y->dims);
    gather_job g = {.src = data->data, .dst = y->data, .es = kiln__elem_bytes(data->dtype)};
    if (out_volume == 0) return KILN_OK;
    int64_t nwork = p->mode == KILN_GATHER_ND ? (q > 0 ? nidx / KILN__MAX(id->d[q - 1], 1) : 0) : nidx;
    int64_t *idx = kiln__malloc(ctx->alloc, sizeof(int64_t) * (size_t)KILN__MAX(nwork, 1));
    if (!idx) return kiln__layer_error(layer, KILN_OUT_OF_MEMORY, "no memory for %lld indices", (long long)nwork);
    g.idx = idx;
    kiln_status st = KILN_OK;
    int64_t stride[KILN_MAX_DIMS], s = 1;
    for (int32_t k = r - 1; k >= 0; k--) {
        stride[k] = s;
        s *= dd->d[k];
    }
    if (p->mode == KILN_GATHER_DEFAULT || p->mode == KILN_GATHER_ELEMENTS) {
        int32_t axis;
        kiln__norm_axis(p->axis, r, &axis);
        int64_t dim = dd->d[axis];
        for (int64_t j = 0; j < nidx && st == KILN_OK; j++) {
            int64_t v = index_at(iv, j), w = v < 0 ? v + dim : v;
            if (w < 0 || w >= dim) st = bad_index(layer, j, v, dim);
            idx[j] = w;
        }
        if (st == KILN_OK && p->mode == KILN_GATHER_DEFAULT) {
            g.dim = dim;
            g.n = nidx;
            g.inner = stride[axis];
            int64_t items = out_volume / g.inner;
            kiln__parallel_for(ctx->pool, items, KILN__MAX(1, 4096 / g.inner), take_range, &g);
        } else if (st == KILN_OK) {
            g.rank = r;
            g.axis = axis;
            memcpy(g.out_dims, id->d, sizeof g.out_dims);
            memcpy(g.data_stride, stride, sizeof g.data_stride);
            kiln__parallel_for(ctx->pool, nidx, 4096, elements_range, &g);
        }
    } else {
        int32_t b = p->axis;
        int64_t k = id->d[q - 1];
        int64_t groups_per_batch = 1; /* index tuples per batch entry */
        for (int32_t i = b; i < q - 1; i++) groups_per_batch *= id->d[i];
        int64_t batch_stride = b > 0 ? stride[b - 1] : 0;
        for (int64_t t = 0; t < nwork && st == KILN_OK; t++) {
            int64_t off = (t / KILN__MAX(groups_per_batch, 1)) * batch_stride;
            for (int64_t c = 0; c < k && st == KILN_OK; c++) {
                int64_t dim = dd->d[b + c], v = index_at(iv, t * k + c), w = v < 0 ? v + dim : v;
                if (w < 0 || w >= dim) st = bad_index(layer, t * k + c, v, dim);
                off += w * stride[b + c];
            }
            idx[t] = off;
        }
        g.inner = stride[b + k - 1]; /* elements of data[b+k:] */
        if (st == KILN_OK) kiln__parallel_for(ctx->pool, nwork, KILN__MAX(1, 4096 / g.inner), block_range, &g);
    }
    kiln__free(ctx->alloc, idx);
    return st;
}
