/* Unique (ONNX Unique-11): the grouping lives here because the output lengths depend on it;
 * shape inference runs it once x is known and the CPU kernel runs it again to write the
 * outputs. x is viewed as [outer, n, inner] around the axis (n = all elements, outer = inner = 1
 * without one); slice i is x[:, i, :], compared element by element in that order. */
#include "vision_layers.h"

#include "../cpu/cpu.h" /* kiln__load_f64, kiln__load_i64 */

#include <string.h>

typedef struct uq_view {
    const kiln__value *x;
    int64_t outer, n, inner;
    bool is_float;
} uq_view;

static kiln_status uq_check(const kiln_layer *layer, const kiln__value *x, uq_view *v) {
    const kiln__unique_params *p = (const kiln__unique_params *)layer->p.bytes;
    if (layer->nb_inputs != 1 || x->dtype == KILN_DTYPE_UNDEFINED)
        return kiln__layer_error(layer, KILN_INVALID_ARGUMENT, "has %d inputs, expected 1", layer->nb_inputs);
    if (layer->nb_outputs < 1 || layer->nb_outputs > 4)
        return kiln__layer_error(layer, KILN_INVALID_ARGUMENT, "has %d outputs, expected 1 to 4", layer->nb_outputs);
    if (!kiln__dtype_is_float(x->dtype) && !kiln__dtype_is_integer(x->dtype) && x->dtype != KILN_BOOL)
        return kiln__layer_error(layer, KILN_UNSUPPORTED, "dtype %s is not supported", kiln_dtype_name(x->dtype));
    v->x = x;
    v->is_float = kiln__dtype_is_float(x->dtype);
    v->outer = v->inner = 1;
    v->n = kiln__dims_volume(&x->dims);
    if (!p->has_axis) return KILN_OK;
    int32_t axis;
    if (!kiln__norm_axis(p->axis, x->dims.nb_dims, &axis))
        return kiln__layer_error(layer, KILN_INVALID_ARGUMENT, "axis %d is out of range for rank %d", p->axis,
                                 x->dims.nb_dims);
    v->n = x->dims.d[axis];
    for (int32_t i = 0; i < x->dims.nb_dims; i++) {
        if (i < axis) v->outer *= x->dims.d[i];
        if (i > axis) v->inner *= x->dims.d[i];
    }
    return KILN_OK;
}

static int uq_cmp(const uq_view *v, int64_t a, int64_t b) {
    for (int64_t o = 0; o < v->outer; o++)
        for (int64_t t = 0; t < v->inner; t++) {
            int64_t ea = (o * v->n + a) * v->inner + t, eb = (o * v->n + b) * v->inner + t;
            if (v->is_float) {
                double x = kiln__load_f64(v->x->data, v->x->dtype, ea), y = kiln__load_f64(v->x->data, v->x->dtype, eb);
                if (x != y) return x < y ? -1 : 1;
            } else if (v->x->dtype == KILN_UINT64) {
                uint64_t x = ((const uint64_t *)v->x->data)[ea], y = ((const uint64_t *)v->x->data)[eb];
                if (x != y) return x < y ? -1 : 1;
            } else {
                int64_t x = kiln__load_i64(v->x->data, v->x->dtype, ea), y = kiln__load_i64(v->x->data, v->x->dtype, eb);
                if (x != y) return x < y ? -1 : 1;
            }
        }
    return 0;
}

/* Stable merge sort of order[0..n) by slice value. */
static void uq_sort(const uq_view *v, int64_t *order, int64_t *tmp, int64_t n) {
    for (int64_t width = 1; width < n; width *= 2) {
        for (int64_t lo = 0; lo < n; lo += 2 * width) {
            int64_t mid = KILN__MIN(lo + width, n), hi = KILN__MIN(lo + 2 * width, n), i = lo, j = mid, k = lo;
            while (i < mid && j < hi) tmp[k++] = uq_cmp(v, order[j], order[i]) < 0 ? order[j++] : order[i++];
            while (i < mid) tmp[k++] = order[i++];
            while (j < hi) tmp[k++] = order[j++];
        }
        memcpy(order, tmp, (size_t)n * sizeof *order);
    }
}

kiln_status kiln__unique_run(const kiln_layer *layer, const kiln__value *x, const kiln__alloc *alloc,
                             kiln__value *outs, int64_t *count) {
    const kiln__unique_params *p = (const kiln__unique_params *)layer->p.bytes;
    uq_view v;
    KILN__TRY(uq_check(layer, x, &v));
    int64_t n = v.n;
    /* order: slices sorted; group: output position of each slice; first: first index per group. */
    int64_t *buf = kiln__malloc(alloc, 4 * (size_t)(n ? n : 1) * sizeof *buf);
    if (!buf) return kiln__layer_error(layer, KILN_OUT_OF_MEMORY, "no memory to sort %lld slices", (long long)n);
    int64_t *order = buf, *tmp = buf + n, *group = buf + 2 * n, *first = buf + 3 * n;
    for (int64_t i = 0; i < n; i++) order[i] = i;
    uq_sort(&v, order, tmp, n);
    int64_t u = 0;
    for (int64_t i = 0; i < n; i++) {
        if (i == 0 || uq_cmp(&v, order[i - 1], order[i]) != 0) first[u++] = order[i];
        group[order[i]] = u - 1;
    }
    if (!p->sorted) {
        /* Renumber the groups by first occurrence: scan x in order. */
        for (int64_t g = 0; g < u; g++) tmp[g] = -1;
        int64_t next = 0;
        for (int64_t i = 0; i < n; i++)
            if (tmp[group[i]] < 0) {
                tmp[group[i]] = next;
                first[next++] = i;
            }
        for (int64_t i = 0; i < n; i++) group[i] = tmp[group[i]];
    }
    *count = u;
    if (outs && kiln__dims_volume(&outs[0].dims) != v.outer * u * v.inner) {
        kiln__free(alloc, buf);
        return kiln__layer_error(layer, KILN_INTERNAL_ERROR, "found %lld unique values, shape inference said otherwise",
                                 (long long)u);
    }
    if (outs) {
        size_t es = kiln__elem_bytes(x->dtype);
        for (int64_t o = 0; o < v.outer; o++)
            for (int64_t g = 0; g < u; g++)
                memcpy((uint8_t *)outs[0].data + (size_t)((o * u + g) * v.inner) * es,
                       (const uint8_t *)x->data + (size_t)((o * n + first[g]) * v.inner) * es, (size_t)v.inner * es);
        if (layer->nb_outputs > 1 && outs[1].data) memcpy(outs[1].data, first, (size_t)u * sizeof *first);
        if (layer->nb_outputs > 2 && outs[2].data) memcpy(outs[2].data, group, (size_t)n * sizeof *group);
        if (layer->nb_outputs > 3 && outs[3].data) {
            int64_t *counts = outs[3].data;
            for (int64_t g = 0; g < u; g++) counts[g] = 0;
            for (int64_t i = 0; i < n; i++) counts[group[i]]++;
        }
    }
    kiln__free(alloc, buf);
    return KILN_OK;
}

static kiln_status unique_infer(const kiln_layer *layer, const kiln__value *in, kiln__value *out) {
    const kiln__unique_params *p = (const kiln__unique_params *)layer->p.bytes;
    uq_view v;
    KILN__TRY(uq_check(layer, &in[0], &v));
    int64_t u = -1;
    if (in[0].data && kiln__dims_volume(&in[0].dims) >= 0)
        KILN__TRY(kiln__unique_run(layer, &in[0], &layer->net->alloc, NULL, &u));
    out[0].dtype = in[0].dtype;
    if (p->has_axis) {
        int32_t axis;
        kiln__norm_axis(p->axis, in[0].dims.nb_dims, &axis);
        out[0].dims = in[0].dims;
        out[0].dims.d[axis] = u;
    } else {
        out[0].dims = (kiln_dims){1, {u}};
    }
    for (int32_t i = 1; i < layer->nb_outputs; i++) {
        out[i].dtype = KILN_INT64;
        out[i].dims = (kiln_dims){1, {i == 2 ? v.n : u}};
    }
    return KILN_OK;
}

static void unique_describe(const kiln_layer *layer, kiln__buf *out) {
    const kiln__unique_params *p = (const kiln__unique_params *)layer->p.bytes;
    if (p->has_axis) kiln__buf_printf(out, "axis=%d sorted=%d", p->axis, p->sorted);
    else kiln__buf_printf(out, "flattened sorted=%d", p->sorted);
}

const kiln__layer_ops kiln__unique_ops = {"Unique", unique_infer, unique_describe};
