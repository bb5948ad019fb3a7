/* The misc-family layers (Random, RNN, TreeEnsemble, TfIdf, LabelEncoder): each CPU kernel
 * against a reference written here on fresh random inputs, plus their shape inference and
 * the errors for malformed tables. */
#include "layer_harness.h"
#include "network/misc_layers.h"

LH_LINK(random)
LH_LINK(rnn)
LH_LINK(tree_ensemble)
LH_LINK(tfidf)
LH_LINK(label_encoder)

static void set_params(kiln_layer *l, const void *p, size_t size) { memcpy(l->p.bytes, p, size); }

/* Runs infer then the kernel for a layer with several outputs; outputs are malloc'ed. */
static kiln_status run_multi(const kiln_layer *l, const kiln__value *in, kiln__value *out) {
    memset(out, 0, sizeof *out * (size_t)l->nb_outputs);
    kiln_status st = kiln__layer_ops_for(l->type)->infer(l, in, out);
    if (st != KILN_OK) return st;
    for (int32_t o = 0; o < l->nb_outputs; o++) {
        kiln__dtype_bytes(out[o].dtype, kiln__dims_volume(&out[o].dims), &out[o].bytes);
        out[o].data = malloc(out[o].bytes ? out[o].bytes : 1);
        memset(out[o].data, 0xCD, out[o].bytes);
    }
    kiln__cpu_ctx ctx = {.pool = lh_pool, .alloc = &lh_alloc};
    return kiln__cpu_kernel_for(l->type)(l, in, out, &ctx);
}

/* ---------------------------------------------------------------- Random */

/* The generator as misc_layers.h documents it, written out again. */
static uint64_t ref_bits(uint64_t seed, uint64_t c) {
    uint64_t z = seed + (c + 1) * 0x9E3779B97F4A7C15ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}
static double ref_u(uint64_t seed, uint64_t c) { return (double)(ref_bits(seed, c) >> 11) / 9007199254740992.0; }

static void test_random(void) {
    uint64_t seed = kt_rand_u64();
    kiln_layer l = lh_layer(KILN_LAYER_RANDOM, 1);
    kiln__value in[1] = {{0}}, out;
    /* Uniform with static dims, float64 output: exact. */
    kiln__random_params p = {
        .dist = KILN__RAND_UNIFORM, .dtype = KILN_FLOAT64, .seed = seed, .a = -2, .b = 3, .dims = DIMS(3, 70, 50)};
    set_params(&l, &p, sizeof p);
    KT_OK(lh_run(&l, in, &out));
    KT_CHECK(out.dtype == KILN_FLOAT64 && kiln__dims_equal(&out.dims, &p.dims));
    int64_t n = 3 * 70 * 50, bad = 0;
    double mean = 0;
    for (int64_t i = 0; i < n; i++) {
        double v = ((double *)out.data)[i];
        bad += v != -2 + 5 * ref_u(seed, (uint64_t)i) || v < -2 || v >= 3;
        mean += v / (double)n;
    }
    KT_CHECK(bad == 0);
    KT_CHECK(fabs(mean - 0.5) < 0.1); /* 10500 draws: the standard error is 0.014 */
    free(out.data);
    /* Normal like an input's dims, float32. */
    float *shape_src = calloc(4096, sizeof(float));
    in[0] = lh_val(KILN_FLOAT32, DIMS(64, 64), shape_src);
    p = (kiln__random_params){.dist = KILN__RAND_NORMAL, .seed = seed, .a = 1.5, .b = 0.5};
    set_params(&l, &p, sizeof p);
    KT_OK(lh_run(&l, in, &out));
    KT_CHECK(out.dtype == KILN_FLOAT32 && out.dims.nb_dims == 2 && out.dims.d[1] == 64);
    float *ref = malloc(4096 * sizeof(float));
    double m1 = 0, m2 = 0;
    for (int64_t i = 0; i < 4096; i++) {
        double z = sqrt(-2 * log(1 - ref_u(seed, 2 * (uint64_t)i))) * cos(2 * M_PI * ref_u(seed, 2 * (uint64_t)i + 1));
        ref[i] = (float)(1.5 + 0.5 * z);
        m1 += ((float *)out.data)[i] / 4096.0;
        m2 += ((float *)out.data)[i] * (double)((float *)out.data)[i] / 4096.0;
    }
    kt_close("normal", out.data, ref, 4096, 1e-6f, 1e-6f);
    KT_CHECK(fabs(m1 - 1.5) < 0.05 && fabs(sqrt(m2 - m1 * m1) - 0.5) < 0.05);
    free(out.data);
    /* Bernoulli to int32 and bool. */
    float *prob = malloc(4096 * sizeof(float));
    kt_fill(prob, 4096, 0, 1);
    in[0] = lh_val(KILN_FLOAT32, DIMS(4096), prob);
    p = (kiln__random_params){.dist = KILN__RAND_BERNOULLI, .dtype = KILN_INT32, .seed = seed};
    set_params(&l, &p, sizeof p);
    KT_OK(lh_run(&l, in, &out));
    bad = 0;
    for (int64_t i = 0; i < 4096; i++) bad += ((int32_t *)out.data)[i] != (ref_u(seed, (uint64_t)i) < prob[i]);
    KT_CHECK(bad == 0);
    free(out.data);
    /* Multinomial: inverse CDF over the softmax of each row. */
    int64_t rows = 5, classes = 7, samples = 300;
    float *logits = malloc((size_t)(rows * classes) * sizeof(float));
    kt_fill(logits, rows * classes, -2, 2);
    logits[3] = -INFINITY; /* a class that can never be drawn */
    in[0] = lh_val(KILN_FLOAT32, DIMS(rows, classes), logits);
    p = (kiln__random_params){
        .dist = KILN__RAND_MULTINOMIAL, .dtype = KILN_INT64, .seed = seed, .sample_size = samples};
    set_params(&l, &p, sizeof p);
    KT_OK(lh_run(&l, in, &out));
    KT_CHECK(out.dtype == KILN_INT64 && out.dims.d[0] == rows && out.dims.d[1] == samples);
    bad = 0;
    for (int64_t r = 0; r < rows; r++) {
        double mx = -INFINITY, tot = 0;
        for (int64_t k = 0; k < classes; k++) mx = fmax(mx, logits[r * classes + k]);
        for (int64_t k = 0; k < classes; k++) tot += exp(logits[r * classes + k] - mx);
        for (int64_t s = 0; s < samples; s++) {
            double u = ref_u(seed, (uint64_t)(r * samples + s)) * tot, acc = 0;
            int64_t want = classes - 1;
            for (int64_t k = 0; k < classes; k++) {
                acc += exp(logits[r * classes + k] - mx);
                if (u < acc) {
                    want = k;
                    break;
                }
            }
            int64_t got = ((int64_t *)out.data)[r * samples + s];
            bad += got != want || (r == 0 && got == 3);
        }
    }
    KT_CHECK(bad == 0);
    free(out.data);
    /* Errors: an integer uniform, a 1-D multinomial, a negative dim. */
    p = (kiln__random_params){.dist = KILN__RAND_UNIFORM, .dtype = KILN_INT32, .dims = DIMS(2)};
    set_params(&l, &p, sizeof p);
    in[0] = (kiln__value){0};
    KT_STATUS(lh_infer(&l, in, &out), KILN_UNSUPPORTED);
    KT_CHECK(lh_names_layer());
    p = (kiln__random_params){.dist = KILN__RAND_UNIFORM, .dtype = KILN_FLOAT32, .dims = DIMS(2, -3)};
    set_params(&l, &p, sizeof p);
    KT_STATUS(lh_infer(&l, in, &out), KILN_INVALID_ARGUMENT);
    p = (kiln__random_params){.dist = KILN__RAND_MULTINOMIAL, .dtype = KILN_INT32, .sample_size = 2};
    set_params(&l, &p, sizeof p);
    in[0] = lh_val(KILN_FLOAT32, DIMS(7), logits);
    KT_STATUS(lh_infer(&l, in, &out), KILN_INVALID_ARGUMENT);
    free(shape_src);
    free(ref);
    free(prob);
    free(logits);
}

/* ---------------------------------------------------------------- RNN */

typedef struct rnn_case {
    int32_t cell, direction, layout;
    int64_t seq, batch, in, h;
    bool bias, lens, init, peep, clip, lbr, input_forget;
} rnn_case;

static double sigm(double x) { return 1 / (1 + exp(-x)); }
static double clamp(const rnn_case *c, double v) { return c->clip ? fmin(fmax(v, -0.9), 0.9) : v; }

/* Straightforward per-step recurrence with the ONNX equations; activations: RNN tanh... unless
 * the case uses the alternative set (relu for RNN). */
static void rnn_reference(const rnn_case *c, const float *x, const float *w, const float *r, const float *b,
                          const int32_t *lens, const float *h0, const float *c0, const float *pp, float *y, float *yh,
                          float *yc) {
    int64_t g = kiln__rnn_gates(c->cell), h = c->h, dirs = c->direction == KILN__RNN_BIDIRECTIONAL ? 2 : 1;
    double *hs = malloc(sizeof(double) * (size_t)h), *cs = malloc(sizeof(double) * (size_t)h);
    double *hn = malloc(sizeof(double) * (size_t)h), *gate = malloc(sizeof(double) * (size_t)(g * h));
    for (int64_t d = 0; d < dirs; d++)
        for (int64_t bb = 0; bb < c->batch; bb++) {
            int64_t len = lens ? lens[bb] : c->seq;
            bool rev = c->direction == KILN__RNN_REVERSE || d == 1;
            int64_t so = c->layout ? (bb * dirs + d) * h : (d * c->batch + bb) * h;
            for (int64_t k = 0; k < h; k++) {
                hs[k] = h0 ? h0[so + k] : 0;
                cs[k] = c0 ? c0[so + k] : 0;
            }
            for (int64_t t = 0; t < c->seq; t++) {
                int64_t yo = c->layout ? ((bb * c->seq + t) * dirs + d) * h : ((t * dirs + d) * c->batch + bb) * h;
                for (int64_t k = 0; k < h; k++) y[yo + k] = 0;
            }
            for (int64_t s = 0; s < len; s++) {
                int64_t t = rev ? len - 1 - s : s;
                const float *xt = x + (c->layout ? bb * c->seq + t : t * c->batch + bb) * c->in;
                /* gate[q] = W x + Wb (+ R h + Rb for all but the GRU candidate without lbr) */
                for (int64_t q = 0; q < g * h; q++) {
                    double v = 0;
                    for (int64_t i = 0; i < c->in; i++) v += w[(d * g * h + q) * c->in + i] * xt[i];
                    if (b) v += b[d * 2 * g * h + q];
                    gate[q] = v;
                }
                double rh[64]; /* R h + Rb per gate row (h * g <= 64 in these cases) */
                for (int64_t q = 0; q < g * h; q++) {
                    double v = 0;
                    for (int64_t i = 0; i < h; i++) v += r[(d * g * h + q) * h + i] * hs[i];
                    rh[q] = v + (b ? b[d * 2 * g * h + g * h + q] : 0);
                }
                if (c->cell == KILN__RNN_SIMPLE) {
                    for (int64_t k = 0; k < h; k++) hn[k] = tanh(clamp(c, gate[k] + rh[k]));
                } else if (c->cell == KILN__RNN_GRU) {
                    for (int64_t k = 0; k < h; k++) {
                        double z = sigm(clamp(c, gate[k] + rh[k])), rr = sigm(clamp(c, gate[h + k] + rh[h + k]));
                        double cand;
                        if (c->lbr) {
                            cand = tanh(clamp(c, gate[2 * h + k] + rr * rh[2 * h + k]));
                        } else {
                            double v = 0;
                            for (int64_t i = 0; i < h; i++) {
                                double ri = sigm(clamp(c, gate[h + i] + rh[h + i]));
                                v += r[(d * g * h + 2 * h + k) * h + i] * ri * hs[i];
                            }
                            cand = tanh(clamp(c, gate[2 * h + k] + v + (b ? b[d * 2 * g * h + g * h + 2 * h + k] : 0)));
                        }
                        hn[k] = (1 - z) * cand + z * hs[k];
                    }
                } else {
                    for (int64_t k = 0; k < h; k++) {
                        const float *pd = pp ? pp + d * 3 * h : NULL;
                        double i = sigm(clamp(c, gate[k] + rh[k] + (pd ? pd[k] * cs[k] : 0)));
                        double f =
                            c->input_forget
                                ? 1 - i
                                : sigm(clamp(c, gate[2 * h + k] + rh[2 * h + k] + (pd ? pd[2 * h + k] * cs[k] : 0)));
                        double cc = tanh(clamp(c, gate[3 * h + k] + rh[3 * h + k]));
                        cs[k] = f * cs[k] + i * cc;
                        double o = sigm(clamp(c, gate[h + k] + rh[h + k] + (pd ? pd[h + k] * cs[k] : 0)));
                        hn[k] = o * tanh(cs[k]);
                    }
                }
                memcpy(hs, hn, sizeof(double) * (size_t)h);
                int64_t yo = c->layout ? ((bb * c->seq + t) * dirs + d) * h : ((t * dirs + d) * c->batch + bb) * h;
                for (int64_t k = 0; k < h; k++) y[yo + k] = (float)hs[k];
            }
            for (int64_t k = 0; k < h; k++) {
                yh[so + k] = (float)hs[k];
                if (yc) yc[so + k] = (float)cs[k];
            }
        }
    free(hs);
    free(cs);
    free(hn);
    free(gate);
}

static float *rand_buf(int64_t n, float lo, float hi) {
    float *p = malloc(sizeof(float) * (size_t)(n ? n : 1));
    kt_fill(p, n, lo, hi);
    return p;
}

static void run_rnn_case(const rnn_case *c) {
    int64_t g = kiln__rnn_gates(c->cell), h = c->h, dirs = c->direction == KILN__RNN_BIDIRECTIONAL ? 2 : 1;
    float *x = rand_buf(c->seq * c->batch * c->in, -1, 1), *w = rand_buf(dirs * g * h * c->in, -0.7f, 0.7f);
    float *r = rand_buf(dirs * g * h * h, -0.7f, 0.7f), *b = rand_buf(dirs * 2 * g * h, -0.5f, 0.5f);
    float *h0 = rand_buf(dirs * c->batch * h, -1, 1), *c0 = rand_buf(dirs * c->batch * h, -1, 1);
    float *pp = rand_buf(dirs * 3 * h, -0.5f, 0.5f);
    int32_t *lens = malloc(sizeof(int32_t) * (size_t)c->batch);
    for (int64_t i = 0; i < c->batch; i++) lens[i] = (int32_t)kt_randi(0, c->seq);
    kiln_layer l = lh_layer(KILN_LAYER_RNN, c->cell == KILN__RNN_LSTM ? 8 : 6);
    l.nb_outputs = c->cell == KILN__RNN_LSTM ? 3 : 2;
    kiln__rnn_params p = {.cell = c->cell,
                          .direction = c->direction,
                          .hidden_size = h,
                          .layout = c->layout,
                          .linear_before_reset = c->lbr,
                          .input_forget = c->input_forget,
                          .has_clip = c->clip,
                          .clip = 0.9f};
    int32_t per = kiln__rnn_nb_acts(c->cell);
    for (int32_t i = 0; i < per * dirs; i++) {
        int32_t k = i % per;
        p.acts[i].kind = c->cell == KILN__RNN_SIMPLE || k > 0 ? KILN_ACT_TANH : KILN_ACT_SIGMOID;
    }
    set_params(&l, &p, sizeof p);
    kiln__value in[8] = {{0}}, out[3];
    in[0] = lh_val(KILN_FLOAT32, c->layout ? DIMS(c->batch, c->seq, c->in) : DIMS(c->seq, c->batch, c->in), x);
    in[1] = lh_val(KILN_FLOAT32, DIMS(dirs, g * h, c->in), w);
    in[2] = lh_val(KILN_FLOAT32, DIMS(dirs, g * h, h), r);
    if (c->bias) in[3] = lh_val(KILN_FLOAT32, DIMS(dirs, 2 * g * h), b);
    if (c->lens) in[4] = lh_val(KILN_INT32, DIMS(c->batch), lens);
    kiln_dims sd = c->layout ? DIMS(c->batch, dirs, h) : DIMS(dirs, c->batch, h);
    if (c->init) in[5] = lh_val(KILN_FLOAT32, sd, h0);
    if (c->init && c->cell == KILN__RNN_LSTM) in[6] = lh_val(KILN_FLOAT32, sd, c0);
    if (c->peep) in[7] = lh_val(KILN_FLOAT32, DIMS(dirs, 3 * h), pp);
    KT_OK(run_multi(&l, in, out));
    int64_t ny = c->seq * dirs * c->batch * h, ns = dirs * c->batch * h;
    float *ry = malloc(sizeof(float) * (size_t)ny), *rh = malloc(sizeof(float) * (size_t)ns);
    float *rc = malloc(sizeof(float) * (size_t)ns);
    rnn_reference(c, x, w, r, c->bias ? b : NULL, c->lens ? lens : NULL, c->init ? h0 : NULL,
                  c->init && c->cell == KILN__RNN_LSTM ? c0 : NULL, c->peep ? pp : NULL, ry, rh, rc);
    char what[64];
    snprintf(what, sizeof what, "rnn cell %d dir %d layout %d Y", c->cell, c->direction, c->layout);
    KT_CHECK(kiln__dims_volume(&out[0].dims) == ny && out[0].dims.d[c->layout ? 2 : 1] == dirs);
    kt_close(what, out[0].data, ry, ny, 1e-4f, 1e-5f);
    kt_close("Y_h", out[1].data, rh, ns, 1e-4f, 1e-5f);
    if (c->cell == KILN__RNN_LSTM) kt_close("Y_c", out[2].data, rc, ns, 1e-4f, 1e-5f);
    for (int32_t o = 0; o < l.nb_outputs; o++) free(out[o].data);
    free(x), free(w), free(r), free(b), free(h0), free(c0), free(pp), free(lens), free(ry), free(rh), free(rc);
}

static void test_rnn(void) {
    static const rnn_case CASES[] = {
        {KILN__RNN_SIMPLE, KILN__RNN_FORWARD, 0, 5, 3, 4, 6, false, false, false, false, false, false, false},
        {KILN__RNN_SIMPLE, KILN__RNN_BIDIRECTIONAL, 1, 4, 2, 3, 5, true, true, true, false, true, false, false},
        {KILN__RNN_GRU, KILN__RNN_FORWARD, 0, 6, 3, 4, 5, true, false, true, false, false, false, false},
        {KILN__RNN_GRU, KILN__RNN_REVERSE, 0, 5, 4, 3, 4, true, true, false, false, false, true, false},
        {KILN__RNN_GRU, KILN__RNN_BIDIRECTIONAL, 1, 4, 3, 2, 5, true, true, true, false, true, false, false},
        {KILN__RNN_LSTM, KILN__RNN_FORWARD, 0, 5, 3, 4, 4, true, false, true, true, false, false, false},
        {KILN__RNN_LSTM, KILN__RNN_BIDIRECTIONAL, 0, 6, 4, 3, 5, true, true, true, true, false, false, false},
        {KILN__RNN_LSTM, KILN__RNN_REVERSE, 1, 4, 2, 5, 3, false, true, true, false, true, false, true},
    };
    for (size_t i = 0; i < KILN__ARRAY_LEN(CASES); i++) run_rnn_case(&CASES[i]);
    /* Errors: W of the wrong gate count, initial_c on a GRU, a sequence length past seq. */
    kiln_layer l = lh_layer(KILN_LAYER_RNN, 6);
    l.nb_outputs = 2;
    kiln__rnn_params p = {
        .cell = KILN__RNN_GRU, .hidden_size = 4, .acts = {{KILN_ACT_SIGMOID, 0, 0}, {KILN_ACT_TANH, 0, 0}}};
    set_params(&l, &p, sizeof p);
    float buf[512] = {0};
    int32_t lens[2] = {3, 9};
    kiln__value in[6] = {lh_val(KILN_FLOAT32, DIMS(3, 2, 5), buf), lh_val(KILN_FLOAT32, DIMS(1, 8, 5), buf),
                         lh_val(KILN_FLOAT32, DIMS(1, 12, 4), buf)},
                out[3];
    KT_STATUS(lh_infer(&l, in, out), KILN_INVALID_ARGUMENT);
    KT_CHECK(lh_names_layer() && strstr(kiln_last_error(), "input 1 (W)"));
    in[1] = lh_val(KILN_FLOAT32, DIMS(1, 12, 5), buf);
    in[4] = lh_val(KILN_INT32, DIMS(2), lens);
    KT_STATUS(run_multi(&l, in, out), KILN_INVALID_ARGUMENT);
    KT_CHECK(strstr(kiln_last_error(), "sequence_lens[1] is 9") != NULL);
    for (int32_t o = 0; o < 2; o++) free(out[o].data);
    l = lh_layer(KILN_LAYER_RNN, 8);
    set_params(&l, &p, sizeof p);
    kiln__value in8[8] = {in[0], in[1], in[2], {0}, {0}, {0}, lh_val(KILN_FLOAT32, DIMS(1, 2, 4), buf)};
    KT_STATUS(lh_infer(&l, in8, out), KILN_INVALID_ARGUMENT);
}

/* ---------------------------------------------------------------- TreeEnsemble */

typedef struct tree_model {
    int64_t nodes, leaves, trees, features, targets, nb_members;
    int64_t *table, *roots, *leaf_target;
    double *splits, *leaf_weight, *members;
} tree_model;

/* Builds `trees` random complete trees of depth 1..3 with random modes (including set
 * membership), plus one tree that is a single leaf. */
static void tree_build(tree_model *m) {
    m->features = 5;
    m->targets = 3;
    m->trees = 4;
    int64_t cap = 64;
    m->table = calloc((size_t)(cap * KILN__TREE_COLS), sizeof(int64_t));
    m->splits = calloc((size_t)cap, sizeof(double));
    m->roots = calloc((size_t)(m->trees + 1), sizeof(int64_t));
    m->leaf_target = calloc((size_t)cap, sizeof(int64_t));
    m->leaf_weight = calloc((size_t)cap, sizeof(double));
    m->members = calloc((size_t)cap * 4, sizeof(double));
    m->nodes = m->leaves = m->nb_members = 0;
    for (int64_t t = 0; t < m->trees; t++) {
        int64_t depth = kt_randi(1, 3), first = m->nodes, count = (1 << depth) - 1;
        m->roots[t] = first;
        for (int64_t k = 0; k < count; k++) {
            int64_t *row = m->table + (first + k) * KILN__TREE_COLS;
            row[KILN__TREE_COL_FEATURE] = kt_randi(0, m->features - 1);
            row[KILN__TREE_COL_MODE] = kt_randi(0, 6);
            row[KILN__TREE_COL_MISSING_TRUE] = kt_randi(0, 1);
            m->splits[first + k] = kt_randf(-1, 1);
            if (row[KILN__TREE_COL_MODE] == KILN__TREE_MEMBER) {
                row[KILN__TREE_COL_SET_BEGIN] = m->nb_members;
                for (int64_t s = kt_randi(0, 3); s > 0; s--) m->members[m->nb_members++] = (double)kt_randi(-2, 2);
                row[KILN__TREE_COL_SET_END] = m->nb_members;
            }
            for (int side = 0; side < 2; side++) {
                int64_t child = 2 * k + 1 + side;
                bool leaf = child >= count;
                row[side ? KILN__TREE_COL_FALSE_LEAF : KILN__TREE_COL_TRUE_LEAF] = leaf;
                if (leaf) {
                    m->leaf_target[m->leaves] = kt_randi(0, m->targets - 1);
                    m->leaf_weight[m->leaves] = kt_randf(-2, 2);
                    row[side ? KILN__TREE_COL_FALSE_ID : KILN__TREE_COL_TRUE_ID] = m->leaves++;
                } else {
                    row[side ? KILN__TREE_COL_FALSE_ID : KILN__TREE_COL_TRUE_ID] = first + child;
                }
            }
        }
        m->nodes += count;
    }
    m->leaf_target[m->leaves] = kt_randi(0, m->targets - 1);
    m->leaf_weight[m->leaves] = kt_randf(-2, 2);
    m->roots[m->trees++] = -1 - m->leaves++;
}

static double tree_ref_walk(const tree_model *m, const float *x, int64_t id, int64_t *target) {
    if (id < 0) {
        *target = m->leaf_target[-1 - id];
        return m->leaf_weight[-1 - id];
    }
    const int64_t *row = m->table + id * KILN__TREE_COLS;
    double v = x[row[KILN__TREE_COL_FEATURE]], s = m->splits[id];
    bool t;
    if (isnan(v) && row[KILN__TREE_COL_MISSING_TRUE])
        t = true;
    else
        switch (row[KILN__TREE_COL_MODE]) {
        case 0: t = v <= s; break;
        case 1: t = v < s; break;
        case 2: t = v >= s; break;
        case 3: t = v > s; break;
        case 4: t = v == s; break;
        case 5: t = v != s; break;
        default:
            t = false;
            for (int64_t k = row[KILN__TREE_COL_SET_BEGIN]; k < row[KILN__TREE_COL_SET_END]; k++)
                t |= m->members[k] == v;
        }
    int64_t next = row[t ? KILN__TREE_COL_TRUE_ID : KILN__TREE_COL_FALSE_ID];
    bool leaf = row[t ? KILN__TREE_COL_TRUE_LEAF : KILN__TREE_COL_FALSE_LEAF];
    return tree_ref_walk(m, x, leaf ? -1 - next : next, target);
}

static void tree_reference(const tree_model *m, const kiln__tree_params *p, const float *x, int64_t rows, float *y) {
    for (int64_t r = 0; r < rows; r++) {
        double acc[8] = {0};
        bool hit[8] = {0};
        for (int64_t t = 0; t < m->trees; t++) {
            int64_t target;
            double w = tree_ref_walk(m, x + r * m->features, m->roots[t], &target);
            if (p->aggregate == KILN__TREE_MIN)
                acc[target] = hit[target] ? fmin(acc[target], w) : w;
            else if (p->aggregate == KILN__TREE_MAX)
                acc[target] = hit[target] ? fmax(acc[target], w) : w;
            else
                acc[target] += w;
            hit[target] = true;
        }
        double sum = 0;
        for (int64_t k = 0; k < m->targets; k++) {
            if (p->aggregate == KILN__TREE_AVERAGE) acc[k] /= (double)m->trees;
            sum += exp(acc[k]);
        }
        for (int64_t k = 0; k < m->targets; k++) {
            double v = acc[k];
            if (p->post == KILN__TREE_POST_LOGISTIC) v = 1 / (1 + exp(-v));
            if (p->post == KILN__TREE_POST_SOFTMAX) v = exp(v) / sum;
            y[r * m->targets + k] = (float)v;
        }
    }
}

static kiln__value *tree_values(const tree_model *m, kiln__value *in, float *x, int64_t rows) {
    in[0] = lh_val(KILN_FLOAT32, DIMS(rows, m->features), x);
    in[1] = lh_val(KILN_INT64, DIMS(m->nodes, KILN__TREE_COLS), m->table);
    in[2] = lh_val(KILN_FLOAT64, DIMS(m->nodes), m->splits);
    in[3] = lh_val(KILN_INT64, DIMS(m->trees), m->roots);
    in[4] = lh_val(KILN_INT64, DIMS(m->leaves), m->leaf_target);
    in[5] = lh_val(KILN_FLOAT64, DIMS(m->leaves), m->leaf_weight);
    in[6] = lh_val(KILN_FLOAT64, DIMS(m->nb_members), m->members);
    return in;
}

static void test_tree_ensemble(void) {
    for (int rep = 0; rep < 4; rep++) {
        tree_model m;
        tree_build(&m);
        int64_t rows = 40;
        float *x = malloc(sizeof(float) * (size_t)(rows * m.features));
        for (int64_t i = 0; i < rows * m.features; i++)
            x[i] = kt_randi(0, 3) == 0 ? (float)kt_randi(-2, 2) : kt_randi(0, 9) == 0 ? NAN : kt_randf(-1.2f, 1.2f);
        kiln__value in[7];
        tree_values(&m, in, x, rows);
        kiln_layer l = lh_layer(KILN_LAYER_TREE_ENSEMBLE, 7);
        static const int32_t AGG[4] = {KILN__TREE_SUM, KILN__TREE_AVERAGE, KILN__TREE_MIN, KILN__TREE_MAX};
        static const int32_t POST[3] = {KILN__TREE_POST_NONE, KILN__TREE_POST_LOGISTIC, KILN__TREE_POST_SOFTMAX};
        kiln__tree_params p = {.n_targets = m.targets, .aggregate = AGG[rep], .post = POST[rep % 3]};
        set_params(&l, &p, sizeof p);
        kiln__value out;
        KT_OK(lh_run(&l, in, &out));
        float *ref = malloc(sizeof(float) * (size_t)(rows * m.targets));
        tree_reference(&m, &p, x, rows, ref);
        KT_CHECK(out.dims.d[0] == rows && out.dims.d[1] == m.targets);
        kt_close("tree ensemble", out.data, ref, rows * m.targets, 1e-6f, 1e-6f);
        free(out.data);
        if (rep == 0) {
            /* A cycle, a root out of range and a feature past X's width are refused. */
            int64_t keep = m.table[KILN__TREE_COL_TRUE_ID], keep_leaf = m.table[KILN__TREE_COL_TRUE_LEAF];
            m.table[KILN__TREE_COL_TRUE_ID] = 0;
            m.table[KILN__TREE_COL_TRUE_LEAF] = 0;
            KT_STATUS(lh_run(&l, in, &out), KILN_INVALID_ARGUMENT);
            free(out.data);
            KT_CHECK(strstr(kiln_last_error(), "cycle") != NULL);
            m.table[KILN__TREE_COL_TRUE_ID] = keep;
            m.table[KILN__TREE_COL_TRUE_LEAF] = keep_leaf;
            m.roots[0] = m.nodes;
            KT_STATUS(lh_run(&l, in, &out), KILN_INVALID_ARGUMENT);
            free(out.data);
            m.roots[0] = 0;
            m.table[KILN__TREE_COL_FEATURE] = m.features;
            KT_STATUS(lh_run(&l, in, &out), KILN_INVALID_ARGUMENT);
            free(out.data);
            KT_CHECK(lh_names_layer());
        }
        free(ref);
        free(x);
        free(m.table), free(m.splits), free(m.roots), free(m.leaf_target), free(m.leaf_weight), free(m.members);
    }
}

/* ---------------------------------------------------------------- TfIdf */

static void test_tfidf(void) {
    /* A random pool of unigrams, bigrams and trigrams over tokens 0..4, as the importer
     * lays it out (sorted, unique), checked against a brute-force count. */
    int32_t max_gram = 3, width = 2 + max_gram;
    int64_t grams[60 * 5] = {0}, count = 0, out_size = 9;
    for (int32_t n = 1; n <= max_gram; n++) {
        int64_t want = n == 1 ? 3 : 8;
        for (int64_t g = 0; g < want; g++) {
            int64_t row[5] = {n, kt_randi(0, out_size - 1)};
            for (int32_t k = 0; k < n; k++) row[2 + k] = kt_randi(0, 4);
            /* insertion in order, skipping duplicates */
            int64_t pos = 0, cmp = 1;
            for (; pos < count; pos++) {
                const int64_t *o = grams + pos * width;
                cmp = o[0] != n ? (o[0] < n ? -1 : 1) : 0;
                for (int32_t k = 0; k < n && !cmp; k++) cmp = o[2 + k] < row[2 + k] ? -1 : o[2 + k] > row[2 + k];
                if (cmp >= 0) break;
            }
            if (pos < count && cmp == 0) continue;
            memmove(grams + (pos + 1) * width, grams + pos * width, sizeof(int64_t) * (size_t)((count - pos) * width));
            memcpy(grams + pos * width, row, sizeof row);
            count++;
        }
    }
    float weights[9];
    kt_fill(weights, 9, 0.5f, 2);
    int64_t rows = 3, cols = 14;
    int32_t x[3 * 14];
    for (int64_t i = 0; i < rows * cols; i++) x[i] = (int32_t)kt_randi(0, 4);
    for (int32_t mode = 0; mode < 3; mode++) {
        kiln__tfidf_params p = {
            .mode = mode, .min_gram = mode == 0 ? 1 : 2, .max_gram = 3, .max_skip = mode, .output_size = out_size};
        kiln_layer l = lh_layer(KILN_LAYER_TFIDF, 3);
        set_params(&l, &p, sizeof p);
        kiln__value in[3] = {lh_val(KILN_INT32, DIMS(rows, cols), x), lh_val(KILN_INT64, DIMS(count, width), grams),
                             mode ? lh_val(KILN_FLOAT32, DIMS(out_size), weights) : (kiln__value){0}},
                    out;
        KT_OK(lh_run(&l, in, &out));
        float ref[3 * 9] = {0};
        for (int64_t r = 0; r < rows; r++) {
            for (int64_t g = 0; g < count; g++) {
                const int64_t *row = grams + g * width;
                int64_t n = row[0], hits = 0;
                if (n < p.min_gram || n > p.max_gram) continue;
                for (int64_t d = 1; d <= (n == 1 ? 1 : p.max_skip + 1); d++)
                    for (int64_t s = 0; s + (n - 1) * d < cols; s++) {
                        bool eq = true;
                        for (int64_t k = 0; k < n; k++) eq &= x[r * cols + s + k * d] == row[2 + k];
                        hits += eq;
                    }
                ref[r * out_size + row[1]] += (float)hits;
            }
            for (int64_t i = 0; i < out_size; i++) {
                float w = mode ? weights[i] : 1, *v = &ref[r * out_size + i];
                *v = mode == KILN__TFIDF_IDF ? (*v > 0 ? w : 0) : mode == KILN__TFIDF_TFIDF ? *v * w : *v;
            }
        }
        KT_CHECK(out.dims.nb_dims == 2 && out.dims.d[1] == out_size && out.dtype == KILN_FLOAT32);
        kt_close("tfidf", out.data, ref, rows * out_size, 1e-6f, 0);
        free(out.data);
        if (mode == 0) {
            /* A 1-D input gives a 1-D output; an output index past the size is refused. */
            in[0] = lh_val(KILN_INT32, DIMS(cols), x);
            KT_OK(lh_run(&l, in, &out));
            KT_CHECK(out.dims.nb_dims == 1);
            kt_close("tfidf 1-D", out.data, ref, out_size, 1e-6f, 0);
            free(out.data);
            grams[1] = out_size;
            KT_STATUS(lh_run(&l, in, &out), KILN_INVALID_ARGUMENT);
            free(out.data);
            grams[1] = 0;
            in[0] = lh_val(KILN_FLOAT32, DIMS(cols), x);
            KT_STATUS(lh_infer(&l, in, &out), KILN_UNSUPPORTED);
        }
    }
}

/* ---------------------------------------------------------------- LabelEncoder */

static void test_label_encoder(void) {
    /* int64 keys -> float values */
    int64_t keys[20], n = 0;
    for (int64_t k = -30; k < 30 && n < 20; k += kt_randi(1, 4)) keys[n++] = k;
    float vals[20], dflt = -7.5f;
    kt_fill(vals, n, -1, 1);
    int64_t x[200];
    for (int i = 0; i < 200; i++) x[i] = kt_randi(-35, 35);
    kiln_layer l = lh_layer(KILN_LAYER_LABEL_ENCODER, 4);
    kiln__value in[4] = {lh_val(KILN_INT64, DIMS(10, 20), x), lh_val(KILN_INT64, DIMS(n), keys),
                         lh_val(KILN_FLOAT32, DIMS(n), vals), lh_val(KILN_FLOAT32, DIMS0, &dflt)},
                out;
    KT_OK(lh_run(&l, in, &out));
    float ref[200];
    for (int i = 0; i < 200; i++) {
        ref[i] = dflt;
        for (int64_t k = 0; k < n; k++)
            if (keys[k] == x[i]) ref[i] = vals[k];
    }
    KT_CHECK(out.dtype == KILN_FLOAT32 && out.dims.nb_dims == 2);
    kt_close("label encoder int", out.data, ref, 200, 0, 0);
    free(out.data);
    /* float keys with NaN last -> int32 values */
    float fk[6] = {-1.5f, 0, 0.25f, 2, 3.5f, NAN}, fx[64];
    int32_t iv[6] = {10, 11, 12, 13, 14, 15}, idef = -1, iout_ref[64];
    for (int i = 0; i < 64; i++) {
        int pick = (int)kt_randi(0, 7);
        fx[i] = pick < 6 ? fk[pick] : kt_randf(-3, 3);
        iout_ref[i] = pick < 6 ? iv[pick] : idef;
    }
    kiln__value fin[4] = {lh_val(KILN_FLOAT32, DIMS(64), fx), lh_val(KILN_FLOAT32, DIMS(6), fk),
                          lh_val(KILN_INT32, DIMS(6), iv), lh_val(KILN_INT32, DIMS(1), &idef)};
    KT_OK(lh_run(&l, fin, &out));
    int bad = 0;
    for (int i = 0; i < 64; i++) bad += ((int32_t *)out.data)[i] != iout_ref[i];
    KT_CHECK(bad == 0);
    free(out.data);
    /* keys of another dtype than X, and values/keys of different lengths, are refused */
    fin[1] = lh_val(KILN_INT64, DIMS(6), keys);
    KT_STATUS(lh_infer(&l, fin, &out), KILN_INVALID_ARGUMENT);
    fin[1] = lh_val(KILN_FLOAT32, DIMS(5), fk);
    KT_STATUS(lh_infer(&l, fin, &out), KILN_INVALID_ARGUMENT);
    KT_CHECK(lh_names_layer());
}

int main(void) {
    lh_init();
    test_random();
    test_rnn();
    test_tree_ensemble();
    test_tfidf();
    test_label_encoder();
    lh_done();
    return kt_summary("misc_layers");
}
