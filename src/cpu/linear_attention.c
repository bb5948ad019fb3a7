/* Linear attention kernel: one work item per (batch, kv head) runs the whole recurrence over
 * time with its state in double, then stores present_state. */
#include "cpu.h"

#include "../network/linear_attention.h"

#include <math.h>
#include <string.h>

typedef struct la_job {
    const kiln__linear_attention_params *p;
    const kiln__value *in;
    kiln__value *out;
    int64_t t_len, dk, dv, decay_w, beta_w;
    double scale;
    double *scratch; /* per item: state dk*dv, k dk, v dv */
} la_job;

static void la_range(void *arg, int64_t begin, int64_t end) {
    const la_job *j = arg;
    const kiln__value *in = j->in;
    int64_t hq = j->p->q_num_heads, hkv = j->p->kv_num_heads, group = hq / hkv;
    int64_t dk = j->dk, dv = j->dv, per = dk * dv + dk + dv;
    kiln_dtype qt = in[0].dtype;
    for (int64_t item = begin; item < end; item++) {
        int64_t b = item / hkv, h = item % hkv;
        double *s = j->scratch + item * per, *k = s + dk * dv, *v = k + dk;
        if (in[3].data) {
            int64_t base = item * dk * dv;
            for (int64_t i = 0; i < dk * dv; i++) s[i] = kiln__load_f64(in[3].data, in[3].dtype, base + i);
        } else {
            memset(s, 0, (size_t)(dk * dv) * sizeof *s);
        }
        for (int64_t t = 0; t < j->t_len; t++) {
            int64_t row = b * j->t_len + t;
            if (j->p->gated) {
                int64_t dbase = row * j->decay_w;
                for (int64_t d = 0; d < dk; d++) {
                    int64_t di = j->decay_w == hkv ? dbase + h : dbase + h * dk + d;
                    double g = exp(kiln__load_f64(in[4].data, qt, di));
                    for (int64_t m = 0; m < dv; m++) s[d * dv + m] *= g;
                }
            }
            for (int64_t d = 0; d < dk; d++) k[d] = kiln__load_f64(in[1].data, qt, row * hkv * dk + h * dk + d);
            for (int64_t m = 0; m < dv; m++) v[m] = kiln__load_f64(in[2].data, qt, row * hkv * dv + h * dv + m);
            if (j->p->delta) {
                double beta = kiln__load_f64(in[5].data, qt, row * j->beta_w + (j->beta_w == 1 ? 0 : h));
                for (int64_t m = 0; m < dv; m++) {
                    double r = 0;
                    for (int64_t d = 0; d < dk; d++) r += s[d * dv + m] * k[d];
                    v[m] = beta * (v[m] - r);
                }
            }
            for (int64_t d = 0; d < dk; d++)
                for (int64_t m = 0; m < dv; m++) s[d * dv + m] += k[d] * v[m];
            for (int64_t g = h * group; g < (h + 1) * group; g++) {
                int64_t qbase = row * hq * dk + g * dk, obase = row * hq * dv + g * dv;
                for (int64_t m = 0; m < dv; m++) {
                    double acc = 0;
                    for (int64_t d = 0; d < dk; d++) acc += kiln__load_f64(in[0].data, qt, qbase + d) * s[d * dv + m];
                    kiln__store_f64(j->out[0].data, qt, obase + m, j->scale * acc);
                }
            }
        }
        for (int64_t i = 0; i < dk * dv; i++)
            kiln__store_f64(j->out[1].data, j->out[1].dtype, item * dk * dv + i, s[i]);
    }
}

kiln_status kiln__cpu_linear_attention(const kiln_layer *layer, const kiln__value *inputs, kiln__value *outputs,
                                       kiln__cpu_ctx *ctx) {
    const kiln__linear_attention_params *p = (const kiln__linear_attention_params *)layer->p.bytes;
    const kiln_dims *sd = &outputs[1].dims;
    int64_t items = sd->d[0] * sd->d[1], dk = sd->d[2], dv = sd->d[3];
    la_job job = {.p = p, .in = inputs, .out = outputs, .t_len = inputs[0].dims.d[1], .dk = dk, .dv = dv,
                  .decay_w = inputs[4].data ? inputs[4].dims.d[2] : 0,
                  .beta_w = inputs[5].data ? inputs[5].dims.d[2] : 0,
                  .scale = p->scale != 0 ? (double)p->scale : 1.0 / sqrt((double)(dk > 0 ? dk : 1))};
    size_t n = (size_t)(items * (dk * dv + dk + dv));
    if (n == 0) return KILN_OK;
    job.scratch = kiln__malloc(ctx->alloc, n * sizeof(double));
    if (!job.scratch) return kiln__layer_error(layer, KILN_OUT_OF_MEMORY, "no memory for %zu state values", n);
    kiln__parallel_for(ctx->pool, items, 1, la_range, &job);
    kiln__free(ctx->alloc, job.scratch);
    return KILN_OK;
}
