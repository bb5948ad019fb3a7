/* TopK kernel: per row along the axis, sort (value, index) pairs and keep the first k. Equal
 * values keep the lower index first (ONNX); NaN counts as larger than every number. */
#include "tensor_kernels.h"

#include <math.h>
#include <stdlib.h>

typedef struct topk_item {
    double f;
    int64_t i;
    int64_t idx;
} topk_item;

static int by_index(const topk_item *a, const topk_item *b) { return (a->idx > b->idx) - (a->idx < b->idx); }

static int cmp_f(const topk_item *a, const topk_item *b) {
    bool na = isnan(a->f), nb = isnan(b->f);
    if (na || nb) return na - nb;
    return (a->f > b->f) - (a->f < b->f);
}

static int cmp_i(const topk_item *a, const topk_item *b) { return (a->i > b->i) - (a->i < b->i); }

static int largest_f(const void *pa, const void *pb) {
    int c = cmp_f(pb, pa);
    return c ? c : by_index(pa, pb);
}
static int smallest_f(const void *pa, const void *pb) {
    int c = cmp_f(pa, pb);
    return c ? c : by_index(pa, pb);
}
static int largest_i(const void *pa, const void *pb) {
    int c = cmp_i(pb, pa);
    return c ? c : by_index(pa, pb);
}
static int smallest_i(const void *pa, const void *pb) {
    int c = cmp_i(pa, pb);
    return c ? c : by_index(pa, pb);
}
static int index_order(const void *pa, const void *pb) { return by_index(pa, pb); }

kiln_status kiln__cpu_topk(const kiln_layer *layer, const kiln__value *inputs, kiln__value *outputs,
                           kiln__cpu_ctx *ctx) {
    const kiln__topk_params *p = (const kiln__topk_params *)layer->p.bytes;
    const kiln__value *x = &inputs[0];
    int32_t rank = x->dims.nb_dims, axis;
    kiln__norm_axis(p->axis, rank, &axis);
    int64_t n = x->dims.d[axis], k = outputs[0].dims.d[axis], outer = 1, inner = 1;
    for (int32_t i = 0; i < axis; i++) outer *= x->dims.d[i];
    for (int32_t i = axis + 1; i < rank; i++) inner *= x->dims.d[i];
    if (k == 0 || outer * inner == 0) return KILN_OK;
    bool is_float = kiln__dtype_is_float(x->dtype);
    size_t es = kiln__elem_bytes(x->dtype);
    topk_item *items = kiln__malloc(ctx->alloc, sizeof *items * (size_t)n);
    if (!items) return kiln__layer_error(layer, KILN_OUT_OF_MEMORY, "no memory for %lld items", (long long)n);
    int (*cmp)(const void *, const void *) =
        is_float ? (p->largest ? largest_f : smallest_f) : (p->largest ? largest_i : smallest_i);
    const char *src = x->data;
    char *vals = outputs[0].data;
    int64_t *idx = outputs[1].data;
    for (int64_t o = 0; o < outer; o++)
        for (int64_t in = 0; in < inner; in++) {
            for (int64_t j = 0; j < n; j++) {
                int64_t e = (o * n + j) * inner + in;
                items[j].idx = j;
                if (is_float) items[j].f = kiln__load_f64(src, x->dtype, e);
                else items[j].i = kiln__load_i64(src, x->dtype, e);
            }
            qsort(items, (size_t)n, sizeof *items, cmp);
            if (!p->sorted) qsort(items, (size_t)k, sizeof *items, index_order);
            for (int64_t j = 0; j < k; j++) {
                int64_t e = (o * k + j) * inner + in;
                kiln__copy_elem(vals + e * (int64_t)es, src + ((o * n + items[j].idx) * inner + in) * (int64_t)es, es);
                idx[e] = items[j].idx;
            }
        }
    kiln__free(ctx->alloc, items);
    return KILN_OK;
}
