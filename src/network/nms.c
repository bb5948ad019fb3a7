/* NonMaxSuppression (ONNX NonMaxSuppression-11): the selection itself lives here because the
 * output length depends on it; shape inference runs it once the inputs are known and the CPU
 * kernel runs it again to write the indices. */
#include "vision_layers.h"

#include "../cpu/cpu.h" /* kiln__load_f64 */

#include <stdlib.h>

typedef struct nms_cand {
    double score;
    int64_t idx;
} nms_cand;

/* Highest score first; equal scores by lower box index, as the reference's sort. */
static int cand_cmp(const void *a, const void *b) {
    const nms_cand *x = a, *y = b;
    if (x->score != y->score) return x->score > y->score ? -1 : 1;
    return (x->idx > y->idx) - (x->idx < y->idx);
}

/* Box i as x1 <= x2, y1 <= y2 corners. */
static void corners(const kiln__value *boxes, int64_t base, bool center, double *c) {
    double v[4];
    for (int32_t k = 0; k < 4; k++) v[k] = kiln__load_f64(boxes->data, boxes->dtype, base + k);
    if (center) {
        c[0] = v[0] - v[2] / 2;
        c[2] = v[0] + v[2] / 2;
        c[1] = v[1] - v[3] / 2;
        c[3] = v[1] + v[3] / 2;
    } else {
        c[0] = KILN__MIN(v[1], v[3]);
        c[2] = KILN__MAX(v[1], v[3]);
        c[1] = KILN__MIN(v[0], v[2]);
        c[3] = KILN__MAX(v[0], v[2]);
    }
}

static bool suppresses(const double *a, const double *b, double iou_threshold) {
    double ix = KILN__MIN(a[2], b[2]) - KILN__MAX(a[0], b[0]);
    double iy = KILN__MIN(a[3], b[3]) - KILN__MAX(a[1], b[1]);
    if (ix <= 0 || iy <= 0) return false;
    double inter = ix * iy, area_a = (a[2] - a[0]) * (a[3] - a[1]), area_b = (b[2] - b[0]) * (b[3] - b[1]);
    double uni = area_a + area_b - inter;
    if (area_a <= 0 || area_b <= 0 || uni <= 0) return false;
    return inter / uni > iou_threshold;
}

static bool given(const kiln_layer *layer, const kiln__value *in, int32_t i) {
    return kiln__has_input(layer, in, i) && kiln__dims_volume(&in[i].dims) != 0;
}

static kiln_status check(const kiln_layer *layer, const kiln__value *in) {
    if (layer->nb_inputs < 2 || layer->nb_inputs > 5 || in[0].dtype == KILN_DTYPE_UNDEFINED ||
        in[1].dtype == KILN_DTYPE_UNDEFINED)
        return kiln__layer_error(layer, KILN_INVALID_ARGUMENT, "has %d inputs, expected boxes, scores and up to 3 more",
                                 layer->nb_inputs);
    const kiln_dims *b = &in[0].dims, *s = &in[1].dims;
    if (!kiln__dtype_is_float(in[0].dtype) || !kiln__dtype_is_float(in[1].dtype) || b->nb_dims != 3 ||
        s->nb_dims != 3 || (b->d[2] >= 0 && b->d[2] != 4))
        return kiln__layer_error(layer, KILN_INVALID_ARGUMENT, "boxes must be float [B, N, 4] and scores [B, C, N]");
    if ((b->d[0] >= 0 && s->d[0] >= 0 && b->d[0] != s->d[0]) || (b->d[1] >= 0 && s->d[2] >= 0 && b->d[1] != s->d[2]))
        return kiln__layer_error(layer, KILN_INVALID_ARGUMENT, "boxes [%lld, %lld, 4] do not match scores [%lld, %lld, %lld]",
                                 (long long)b->d[0], (long long)b->d[1], (long long)s->d[0], (long long)s->d[1],
                                 (long long)s->d[2]);
    if (given(layer, in, 2) && in[2].dtype != KILN_INT64 && in[2].dtype != KILN_INT32)
        return kiln__layer_error(layer, KILN_INVALID_ARGUMENT, "max_output_boxes_per_class must be int64");
    for (int32_t i = 3; i < 5; i++)
        if (given(layer, in, i) && !kiln__dtype_is_float(in[i].dtype))
            return kiln__layer_error(layer, KILN_INVALID_ARGUMENT, "input %d (a threshold) must be float", i);
    return KILN_OK;
}

kiln_status kiln__nms_run(const kiln_layer *layer, const kiln__value *in, const kiln__alloc *alloc, int64_t *out,
                          int64_t capacity, int64_t *count) {
    const kiln__nms_params *p = (const kiln__nms_params *)layer->p.bytes;
    int64_t batches = in[0].dims.d[0], n = in[0].dims.d[1], classes = in[1].dims.d[1];
    int64_t max_out = given(layer, in, 2) ? kiln__value_int(&in[2], 0) : 0;
    double iou = given(layer, in, 3) ? kiln__load_f64(in[3].data, in[3].dtype, 0) : 0;
    bool has_score = given(layer, in, 4);
    double score_thr = has_score ? kiln__load_f64(in[4].data, in[4].dtype, 0) : 0;
    *count = 0;
    if (max_out <= 0 || n == 0) return KILN_OK;
    nms_cand *cand = kiln__malloc(alloc, (size_t)n * sizeof *cand);
    int64_t *sel = kiln__malloc(alloc, (size_t)n * sizeof *sel);
    if (!cand || !sel) {
        kiln__free(alloc, cand);
        kiln__free(alloc, sel);
        return kiln__layer_error(layer, KILN_OUT_OF_MEMORY, "no memory for %lld boxes", (long long)n);
    }
    for (int64_t b = 0; b < batches; b++)
        for (int64_t c = 0; c < classes; c++) {
            int64_t nc = 0, ns = 0;
            for (int64_t i = 0; i < n; i++) {
                double s = kiln__load_f64(in[1].data, in[1].dtype, (b * classes + c) * n + i);
                if (!has_score || s > score_thr) cand[nc++] = (nms_cand){s, i};
            }
            qsort(cand, (size_t)nc, sizeof *cand, cand_cmp);
            for (int64_t i = 0; i < nc && ns < max_out; i++) {
                double a[4], o[4];
                corners(&in[0], (b * n + cand[i].idx) * 4, p->center_point_box != 0, a);
                bool keep = true;
                for (int64_t k = 0; k < ns && keep; k++) {
                    corners(&in[0], (b * n + sel[k]) * 4, p->center_point_box != 0, o);
                    keep = !suppresses(a, o, iou);
                }
                if (!keep) continue;
                sel[ns++] = cand[i].idx;
                if (out && *count < capacity) {
                    out[*count * 3] = b;
                    out[*count * 3 + 1] = c;
                    out[*count * 3 + 2] = cand[i].idx;
                }
                (*count)++;
            }
        }
    kiln__free(alloc, cand);
    kiln__free(alloc, sel);
    return KILN_OK;
}

kiln_status kiln__nms_count(const kiln_layer *layer, const kiln__value *inputs, int64_t *count) {
    return kiln__nms_run(layer, inputs, &layer->net->alloc, NULL, 0, count);
}

static kiln_status nms_infer(const kiln_layer *layer, const kiln__value *in, kiln__value *out) {
    KILN__TRY(check(layer, in));
    out[0].dtype = KILN_INT64;
    out[0].dims.nb_dims = 2;
    out[0].dims.d[0] = -1;
    out[0].dims.d[1] = 3;
    bool known = kiln__dims_volume(&in[0].dims) >= 0 && kiln__dims_volume(&in[1].dims) >= 0;
    for (int32_t i = 0; i < layer->nb_inputs && known; i++)
        known = !kiln__has_input(layer, in, i) || in[i].data || kiln__dims_volume(&in[i].dims) == 0;
    if (known) KILN__TRY(kiln__nms_count(layer, in, &out[0].dims.d[0]));
    return KILN_OK;
}

static void nms_describe(const kiln_layer *layer, kiln__buf *out) {
    const kiln__nms_params *p = (const kiln__nms_params *)layer->p.bytes;
    kiln__buf_printf(out, "center_point_box=%d", p->center_point_box);
}

const kiln__layer_ops kiln__nms_ops = {"NMS", nms_infer, nms_describe};
