/* Select kernel: where(cond, a, b) with broadcasting. The output is walked in runs over its
 * trailing dims along which every operand either moves one element per output element or
 * stays put (broadcast), so the per-element work is a pick and a copy; 4-byte elements (float32
 * attention scores and masks) get their own loop. */
#include "tensor_kernels.h"

typedef struct select_job {
    const kiln_dims *out;
    int64_t sc[KILN_MAX_DIMS], sa[KILN_MAX_DIMS], sb[KILN_MAX_DIMS];
    int64_t run;         /* output elements per run */
    int64_t ic, ia, ib;  /* each operand's step within a run: 1 or 0 */
    const uint8_t *c;
    const char *a, *b;
    char *y;
    size_t es;
} select_job;

/* The step combinations of exported models get loops of their own that the compiler vectorizes:
 * a mask against two scalars, and a scalar against a tensor on either side (transformers'
 * attention zeroes NaN scores with where(isnan(p), 0, p)). Both sides are loaded before the
 * pick, since a load under the condition is control flow to the vectorizer. Element by element,
 * that where cost as much as the softmax before it. */
static void select_run_f32(const uint8_t *c, int64_t ic, const float *a, int64_t ia, const float *b, int64_t ib,
                           float *y, int64_t n) {
    if (ic && ia && ib) {
        for (int64_t i = 0; i < n; i++) {
            float av = a[i], bv = b[i];
            y[i] = c[i] ? av : bv;
        }
    } else if (ic && !ia && ib) {
        const float av = a[0];
        for (int64_t i = 0; i < n; i++) {
            float bv = b[i];
            y[i] = c[i] ? av : bv;
        }
    } else if (ic && ia && !ib) {
        const float bv = b[0];
        for (int64_t i = 0; i < n; i++) {
            float av = a[i];
            y[i] = c[i] ? av : bv;
        }
    } else if (ic && !ia && !ib) {
        const float av = a[0], bv = b[0];
        for (int64_t i = 0; i < n; i++) y[i] = c[i] ? av : bv;
    } else {
        for (int64_t i = 0; i < n; i++) y[i] = c[i * ic] ? a[i * ia] : b[i * ib];
    }
}

static void select_range(void *arg, int64_t begin, int64_t end) {
    const select_job *j = arg;
    int64_t es = (int64_t)j->es;
    for (int64_t r = begin; r < end; r++) {
        int64_t e = r * j->run;
        const uint8_t *c = j->c + kiln__offset_of(e, j->out, j->sc);
        const char *a = j->a + kiln__offset_of(e, j->out, j->sa) * es;
        const char *b = j->b + kiln__offset_of(e, j->out, j->sb) * es;
        char *y = j->y + e * es;
        if (es == 4) {
            select_run_f32(c, j->ic, (const float *)a, j->ia, (const float *)b, j->ib, (float *)y, j->run);
            continue;
        }
        for (int64_t i = 0; i < j->run; i++)
            kiln__copy_elem(y + i * es, c[i * j->ic] ? a + i * j->ia * es : b + i * j->ib * es, j->es);
    }
}

kiln_status kiln__cpu_select(const kiln_layer *layer, const kiln__value *inputs, kiln__value *outputs,
                             kiln__cpu_ctx *ctx) {
    (void)layer;
    select_job j = {.out = &outputs[0].dims, .c = inputs[0].data, .a = inputs[1].data, .b = inputs[2].data,
                    .y = outputs[0].data, .es = kiln__elem_bytes(outputs[0].dtype)};
    kiln__broadcast_strides(&inputs[0].dims, j.out, j.sc);
    kiln__broadcast_strides(&inputs[1].dims, j.out, j.sa);
    kiln__broadcast_strides(&inputs[2].dims, j.out, j.sb);
    int64_t total = kiln__dims_volume(j.out);
    if (total == 0) return KILN_OK;
    /* The longest run of trailing dims over which every operand is contiguous or broadcast. */
    int32_t d = j.out->nb_dims;
    j.ic = j.ia = j.ib = 1;
    while (d > 0) {
        int64_t ic = kiln__run_step(j.out, j.sc, d - 1), ia = kiln__run_step(j.out, j.sa, d - 1),
                ib = kiln__run_step(j.out, j.sb, d - 1);
        if (ic < 0 || ia < 0 || ib < 0) break;
        j.ic = ic;
        j.ia = ia;
        j.ib = ib;
        d--;
    }
    j.run = 1;
    for (int32_t i = d; i < j.out->nb_dims; i++) j.run *= j.out->d[i];
    int64_t runs = total / j.run;
    kiln__parallel_for(ctx->pool, runs, KILN__MAX(1, 16384 / j.run), select_range, &j);
    return KILN_OK;
}
