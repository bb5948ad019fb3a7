/* RNN/GRU/LSTM kernel. Inputs are widened to double once; each (direction, batch row) runs
 * its recurrence independently, so those pairs are spread over the pool. */
#include "cpu.h"
#include "../network/misc_layers.h"

#include <math.h>
#include <string.h>

typedef struct rnn_job {
    const kiln__rnn_params *p;
    int64_t seq, batch, in, h, g, dirs;
    const double *x, *w, *r, *bias, *init_h, *init_c, *peep; /* bias/init/peep may be NULL */
    const int64_t *lens;
    double *y, *yh, *yc; /* Y may be NULL when only the final states are wanted */
    double *scratch;     /* per task: state h, state c, gates (g*h), recurrent part (g*h) */
} rnn_job;

static double act(const kiln__act *a, double v) {
    switch (a->kind) {
    case KILN__RNN_ACT_AFFINE: return a->alpha * v + a->beta;
    case KILN_ACT_SIGMOID: return 1.0 / (1.0 + exp(-v));
    case KILN_ACT_TANH: return tanh(v);
    case KILN_ACT_RELU: return v < 0 ? 0 : v;
    default: return kiln__act_f32(a->kind, a->alpha, a->beta, (float)v);
    }
}

static double clip(const kiln__rnn_params *p, double v) {
    if (!p->has_clip) return v;
    return v < -p->clip ? -p->clip : v > p->clip ? p->clip : v;
}

/* out[k] = sum_i v[i] * m[k, i] over k < rows (m row-major, cols wide). */
static void matvec(const double *m, const double *v, int64_t rows, int64_t cols, double *out) {
    for (int64_t k = 0; k < rows; k++) {
        const double *row = m + k * cols;
        double s = 0;
        for (int64_t i = 0; i < cols; i++) s += row[i] * v[i];
        out[k] = s;
    }
}

static void rnn_task(const rnn_job *j, int64_t task) {
    const kiln__rnn_params *p = j->p;
    int64_t d = task / j->batch, b = task % j->batch, h = j->h, g = j->g, gh = g * h;
    bool reverse = p->direction == KILN__RNN_REVERSE || d == 1;
    const kiln__act *acts = &p->acts[d * kiln__rnn_nb_acts(p->cell)];
    double *hs = j->scratch + task * (2 * h + 2 * gh), *cs = hs + h, *gx = cs + h, *gr = gx + gh;
    const double *w = j->w + d * gh * j->in, *r = j->r + d * gh * h;
    const double *wb = j->bias ? j->bias + d * 2 * gh : NULL, *rb = wb ? wb + gh : NULL;
    const double *pi = j->peep ? j->peep + d * 3 * h : NULL, *po = pi ? pi + h : NULL, *pf = pi ? pi + 2 * h : NULL;
    int64_t st_off = p->layout ? (b * j->dirs + d) * h : (d * j->batch + b) * h;
    for (int64_t k = 0; k < h; k++) {
        hs[k] = j->init_h ? j->init_h[st_off + k] : 0;
        cs[k] = j->init_c ? j->init_c[st_off + k] : 0;
    }
    int64_t len = j->lens ? j->lens[b] : j->seq;
    for (int64_t step = 0; step < j->seq; step++) {
        int64_t t = reverse ? len - 1 - step : step;
        if (step >= len) t = step; /* past the sequence: only zeros are written */
        int64_t y_off = p->layout ? ((b * j->seq + t) * j->dirs + d) * h : ((t * j->dirs + d) * j->batch + b) * h;
        if (step >= len) {
            if (j->y) memset(j->y + y_off, 0, sizeof(double) * (size_t)h);
            continue;
        }
        const double *xt = j->x + (p->layout ? (b * j->seq + t) : (t * j->batch + b)) * j->in;
        matvec(w, xt, gh, j->in, gx);
        if (wb)
            for (int64_t k = 0; k < gh; k++) gx[k] += wb[k];
        if (p->cell == KILN__RNN_GRU && !p->linear_before_reset) {
            /* The candidate's recurrent term needs r first: (r . H) R_h^T. */
            matvec(r, hs, 2 * h, h, gr);
            for (int64_t k = 0; k < 2 * h; k++) gr[k] += rb ? rb[k] : 0;
        } else {
            matvec(r, hs, gh, h, gr);
            if (rb)
                for (int64_t k = 0; k < gh; k++) gr[k] += rb[k];
        }
        switch (p->cell) {
        case KILN__RNN_SIMPLE:
            for (int64_t k = 0; k < h; k++) hs[k] = act(&acts[0], clip(p, gx[k] + gr[k]));
            break;
        case KILN__RNN_GRU: {
            /* gx/gr gate blocks: z, r, h. gx's z block becomes z, its r block r. */
            for (int64_t k = 0; k < 2 * h; k++) gx[k] = act(&acts[0], clip(p, gx[k] + gr[k]));
            double *z = gx, *rg = gx + h, *cand = gx + 2 * h;
            if (p->linear_before_reset) {
                for (int64_t k = 0; k < h; k++) cand[k] = act(&acts[1], clip(p, cand[k] + rg[k] * gr[2 * h + k]));
            } else {
                double *rh = gr; /* the z/r recurrent terms are used up: reuse their room */
                for (int64_t k = 0; k < h; k++) rh[k] = rg[k] * hs[k];
                matvec(r + 2 * h * h, rh, h, h, gr + h);
                for (int64_t k = 0; k < h; k++)
                    cand[k] = act(&acts[1], clip(p, cand[k] + gr[h + k] + (rb ? rb[2 * h + k] : 0)));
            }
            for (int64_t k = 0; k < h; k++) hs[k] = (1 - z[k]) * cand[k] + z[k] * hs[k];
            break;
        }
        case KILN__RNN_LSTM:
            for (int64_t k = 0; k < h; k++) {
                double gi = gx[k] + gr[k], go = gx[h + k] + gr[h + k];
                double gf = gx[2 * h + k] + gr[2 * h + k], gc = gx[3 * h + k] + gr[3 * h + k];
                double i = act(&acts[0], clip(p, gi + (pi ? pi[k] * cs[k] : 0)));
                double f = p->input_forget ? 1 - i : act(&acts[0], clip(p, gf + (pf ? pf[k] * cs[k] : 0)));
                double c = act(&acts[1], clip(p, gc));
                cs[k] = f * cs[k] + i * c;
                double o = act(&acts[0], clip(p, go + (po ? po[k] * cs[k] : 0)));
                hs[k] = o * act(&acts[2], cs[k]);
            }
            break;
        default: break;
        }
        if (j->y) memcpy(j->y + y_off, hs, sizeof(double) * (size_t)h);
    }
    memcpy(j->yh + st_off, hs, sizeof(double) * (size_t)h);
    memcpy(j->yc + st_off, cs, sizeof(double) * (size_t)h);
}

static void rnn_range(void *arg, int64_t begin, int64_t end) {
    for (int64_t t = begin; t < end; t++) rnn_task(arg, t);
}

/* Widens an optional input to double into dst (NULL when absent). */
static const double *widen(const kiln_layer *layer, const kiln__value *inputs, int32_t i, double *dst) {
    if (!kiln__has_input(layer, inputs, i)) return NULL;
    int64_t n = kiln__dims_volume(&inputs[i].dims);
    for (int64_t k = 0; k < n; k++) dst[k] = kiln__load_f64(inputs[i].data, inputs[i].dtype, k);
    return dst;
}

kiln_status kiln__cpu_rnn(const kiln_layer *layer, const kiln__value *inputs, kiln__value *outputs,
                          kiln__cpu_ctx *ctx) {
    const kiln__rnn_params *p = (const kiln__rnn_params *)layer->p.bytes;
    rnn_job j = {.p = p, .h = p->hidden_size, .g = kiln__rnn_gates(p->cell)};
    j.dirs = p->direction == KILN__RNN_BIDIRECTIONAL ? 2 : 1;
    j.seq = inputs[0].dims.d[p->layout ? 1 : 0];
    j.batch = inputs[0].dims.d[p->layout ? 0 : 1];
    j.in = inputs[0].dims.d[2];
    /* Sizes of every buffer, in doubles, in one allocation: inputs 0..3, 5..7, Y, Y_h, Y_c,
     * scratch; then the lengths as int64. */
    int64_t sizes[13] = {0};
    for (int32_t i = 0; i < layer->nb_inputs && i < 8; i++)
        if (i != 4 && kiln__has_input(layer, inputs, i)) sizes[i] = kiln__dims_volume(&inputs[i].dims);
    int64_t state = j.dirs * j.batch * j.h;
    sizes[8] = kiln__dims_volume(&outputs[0].dims);
    sizes[9] = state;
    sizes[10] = state;
    sizes[11] = j.dirs * j.batch * (2 * j.h + 2 * j.g * j.h);
    sizes[12] = j.batch;
    int64_t total = 0;
    for (int32_t i = 0; i < 13; i++) total += sizes[i];
    double *buf = kiln__malloc(ctx->alloc, sizeof(double) * (size_t)(total ? total : 1));
    if (!buf) return kiln__layer_error(layer, KILN_OUT_OF_MEMORY, "out of memory for %lld values", (long long)total);
    double *at[13];
    int64_t off = 0;
    for (int32_t i = 0; i < 13; i++) {
        at[i] = buf + off;
        off += sizes[i];
    }
    j.x = widen(layer, inputs, 0, at[0]);
    j.w = widen(layer, inputs, 1, at[1]);
    j.r = widen(layer, inputs, 2, at[2]);
    j.bias = widen(layer, inputs, 3, at[3]);
    j.init_h = widen(layer, inputs, 5, at[5]);
    j.init_c = widen(layer, inputs, 6, at[6]);
    j.peep = widen(layer, inputs, 7, at[7]);
    j.y = at[8];
    j.yh = at[9];
    j.yc = at[10];
    j.scratch = at[11];
    if (kiln__has_input(layer, inputs, 4)) {
        int64_t *lens = (int64_t *)at[12];
        for (int64_t b = 0; b < j.batch; b++) {
            int64_t len = kiln__value_int(&inputs[4], b);
            if (len < 0 || len > j.seq) {
                kiln__free(ctx->alloc, buf);
                return kiln__layer_error(layer, KILN_INVALID_ARGUMENT, "sequence_lens[%lld] is %lld, expected 0..%lld",
                                         (long long)b, (long long)len, (long long)j.seq);
            }
            lens[b] = len;
        }
        j.lens = lens;
    }
    kiln__parallel_for(ctx->pool, j.dirs * j.batch, 1, rnn_range, &j);
    const double *res[3] = {j.y, j.yh, j.yc};
    for (int32_t o = 0; o < layer->nb_outputs; o++) {
        int64_t n = kiln__dims_volume(&outputs[o].dims);
        for (int64_t k = 0; k < n; k++) kiln__store_f64(outputs[o].data, outputs[o].dtype, k, res[o][k]);
    }
    kiln__free(ctx->alloc, buf);
    return KILN_OK;
}
