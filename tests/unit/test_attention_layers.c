/* The linear attention layer (ONNX LinearAttention): its CPU kernel against two references
 * written here on fresh random inputs (the spec's step-by-step recurrence, and for the
 * linear and gated rules the closed form o_t = scale * sum_{s<=t} decay(s..t] (q_t.k_s) v_s),
 * and its shape inference, including the errors. */
#include "layer_harness.h"
#include "network/linear_attention.h"

LH_LINK(linear_attention)

typedef struct la_case {
    int64_t b, t, hq, hkv, dk, dv;
    int gated, delta;
    int decay_per_head; /* decay [B, T, Hkv] instead of [B, T, Hkv*dk] */
    int beta_shared;    /* beta [B, T, 1] instead of [B, T, Hkv] */
    int past;
    float scale; /* 0: default */
} la_case;

typedef struct la_data {
    float *q, *k, *v, *past, *decay, *beta;
    int64_t decay_w, beta_w;
} la_data;

static void la_alloc(const la_case *c, la_data *d) {
    d->decay_w = c->decay_per_head ? c->hkv : c->hkv * c->dk;
    d->beta_w = c->beta_shared ? 1 : c->hkv;
    d->q = malloc(sizeof(float) * (size_t)(c->b * c->t * c->hq * c->dk));
    d->k = malloc(sizeof(float) * (size_t)(c->b * c->t * c->hkv * c->dk));
    d->v = malloc(sizeof(float) * (size_t)(c->b * c->t * c->hkv * c->dv));
    d->past = malloc(sizeof(float) * (size_t)(c->b * c->hkv * c->dk * c->dv));
    d->decay = malloc(sizeof(float) * (size_t)(c->b * c->t * d->decay_w));
    d->beta = malloc(sizeof(float) * (size_t)(c->b * c->t * d->beta_w));
    kt_fill(d->q, c->b * c->t * c->hq * c->dk, -1, 1);
    kt_fill(d->k, c->b * c->t * c->hkv * c->dk, -1, 1);
    kt_fill(d->v, c->b * c->t * c->hkv * c->dv, -1, 1);
    kt_fill(d->past, c->b * c->hkv * c->dk * c->dv, -0.5f, 0.5f);
    kt_fill(d->decay, c->b * c->t * d->decay_w, -0.7f, 0.0f); /* log decay: exp in (0.5, 1] */
    kt_fill(d->beta, c->b * c->t * d->beta_w, 0.0f, 1.0f);
}

static void la_free(la_data *d) {
    free(d->q);
    free(d->k);
    free(d->v);
    free(d->past);
    free(d->decay);
    free(d->beta);
}

static double la_scale(const la_case *c) { return c->scale != 0 ? c->scale : 1.0 / sqrt((double)c->dk); }

/* The spec's recurrence, one (batch, kv head) state at a time. */
static void la_reference(const la_case *c, const la_data *d, float *out, float *present) {
    int64_t group = c->hq / c->hkv;
    double *s = malloc(sizeof(double) * (size_t)(c->dk * c->dv));
    double *vt = malloc(sizeof(double) * (size_t)c->dv);
    for (int64_t b = 0; b < c->b; b++)
        for (int64_t h = 0; h < c->hkv; h++) {
            for (int64_t i = 0; i < c->dk * c->dv; i++)
                s[i] = c->past ? d->past[((b * c->hkv + h) * c->dk) * c->dv + i] : 0.0;
            for (int64_t t = 0; t < c->t; t++) {
                const float *k = d->k + (b * c->t + t) * c->hkv * c->dk + h * c->dk;
                const float *v = d->v + (b * c->t + t) * c->hkv * c->dv + h * c->dv;
                if (c->gated)
                    for (int64_t i = 0; i < c->dk; i++) {
                        float g = c->decay_per_head ? d->decay[(b * c->t + t) * c->hkv + h]
                                                    : d->decay[(b * c->t + t) * c->hkv * c->dk + h * c->dk + i];
                        for (int64_t m = 0; m < c->dv; m++) s[i * c->dv + m] *= exp((double)g);
                    }
                for (int64_t m = 0; m < c->dv; m++) {
                    vt[m] = v[m];
                    if (c->delta) {
                        double r = 0;
                        for (int64_t i = 0; i < c->dk; i++) r += s[i * c->dv + m] * k[i];
                        double beta = d->beta[(b * c->t + t) * d->beta_w + (c->beta_shared ? 0 : h)];
                        vt[m] = beta * (v[m] - r);
                    }
                }
                for (int64_t i = 0; i < c->dk; i++)
                    for (int64_t m = 0; m < c->dv; m++) s[i * c->dv + m] += k[i] * vt[m];
                for (int64_t g = 0; g < group; g++) {
                    int64_t hq = h * group + g;
                    const float *q = d->q + (b * c->t + t) * c->hq * c->dk + hq * c->dk;
                    for (int64_t m = 0; m < c->dv; m++) {
                        double acc = 0;
                        for (int64_t i = 0; i < c->dk; i++) acc += q[i] * s[i * c->dv + m];
                        out[(b * c->t + t) * c->hq * c->dv + hq * c->dv + m] = (float)(la_scale(c) * acc);
                    }
                }
            }
            for (int64_t i = 0; i < c->dk * c->dv; i++) present[((b * c->hkv + h) * c->dk) * c->dv + i] = (float)s[i];
        }
    free(s);
    free(vt);
}

/* Linear and gated rules without a past state, in closed form (no recurrence). */
static void la_closed_form(const la_case *c, const la_data *d, float *out) {
    int64_t group = c->hq / c->hkv;
    for (int64_t b = 0; b < c->b; b++)
        for (int64_t hq = 0; hq < c->hq; hq++)
            for (int64_t t = 0; t < c->t; t++)
                for (int64_t m = 0; m < c->dv; m++) {
                    int64_t h = hq / group;
                    const float *q = d->q + (b * c->t + t) * c->hq * c->dk + hq * c->dk;
                    double acc = 0;
                    for (int64_t s = 0; s <= t; s++) {
                        const float *k = d->k + (b * c->t + s) * c->hkv * c->dk + h * c->dk;
                        double vsm = d->v[(b * c->t + s) * c->hkv * c->dv + h * c->dv + m];
                        for (int64_t i = 0; i < c->dk; i++) {
                            double logdecay = 0;
                            for (int64_t r = s + 1; c->gated && r <= t; r++) {
                                const float *g = d->decay + (b * c->t + r) * d->decay_w;
                                logdecay += c->decay_per_head ? g[h] : g[h * c->dk + i];
                            }
                            acc += exp(logdecay) * q[i] * k[i] * vsm;
                        }
                    }
                    out[(b * c->t + t) * c->hq * c->dv + hq * c->dv + m] = (float)(la_scale(c) * acc);
                }
}

static kiln_layer la_layer(const la_case *c) {
    kiln_layer l = lh_layer(KILN_LAYER_LINEAR_ATTENTION, 6);
    l.nb_outputs = 2;
    kiln__linear_attention_params p = {.q_num_heads = (int32_t)c->hq, .kv_num_heads = (int32_t)c->hkv,
                                       .gated = c->gated, .delta = c->delta, .scale = c->scale};
    memcpy(l.p.bytes, &p, sizeof p);
    return l;
}

static void la_values(const la_case *c, const la_data *d, kiln__value *in) {
    memset(in, 0, 6 * sizeof *in);
    in[0] = lh_val(KILN_FLOAT32, DIMS(c->b, c->t, c->hq * c->dk), d->q);
    in[1] = lh_val(KILN_FLOAT32, DIMS(c->b, c->t, c->hkv * c->dk), d->k);
    in[2] = lh_val(KILN_FLOAT32, DIMS(c->b, c->t, c->hkv * c->dv), d->v);
    if (c->past) in[3] = lh_val(KILN_FLOAT32, DIMS(c->b, c->hkv, c->dk, c->dv), d->past);
    if (c->gated) in[4] = lh_val(KILN_FLOAT32, DIMS(c->b, c->t, d->decay_w), d->decay);
    if (c->delta) in[5] = lh_val(KILN_FLOAT32, DIMS(c->b, c->t, d->beta_w), d->beta);
}

/* infer + kernel for the two outputs (the harness runs single-output layers). */
static kiln_status la_run(const kiln_layer *l, const kiln__value *in, kiln__value *out) {
    memset(out, 0, 2 * sizeof *out);
    kiln_status st = kiln__layer_ops_for(l->type)->infer(l, in, out);
    if (st != KILN_OK) return st;
    for (int i = 0; i < 2; i++) {
        kiln__dtype_bytes(out[i].dtype, kiln__dims_volume(&out[i].dims), &out[i].bytes);
        out[i].data = malloc(out[i].bytes ? out[i].bytes : 1);
        memset(out[i].data, 0xCD, out[i].bytes);
    }
    kiln__cpu_ctx ctx = {.pool = lh_pool, .alloc = &lh_alloc};
    return kiln__cpu_kernel_for(l->type)(l, in, out, &ctx);
}

static void check_case(const char *what, la_case c) {
    la_data d;
    la_alloc(&c, &d);
    kiln_layer l = la_layer(&c);
    kiln__value in[6], out[2];
    la_values(&c, &d, in);
    KT_OK(la_run(&l, in, out));
    int64_t no = c.b * c.t * c.hq * c.dv, ns = c.b * c.hkv * c.dk * c.dv;
    KT_CHECK(kiln__dims_equal(&out[0].dims, &DIMS(c.b, c.t, c.hq * c.dv)));
    KT_CHECK(kiln__dims_equal(&out[1].dims, &DIMS(c.b, c.hkv, c.dk, c.dv)));
    float *ref = malloc(sizeof(float) * (size_t)no), *ref_state = malloc(sizeof(float) * (size_t)ns);
    la_reference(&c, &d, ref, ref_state);
    char name[96];
    snprintf(name, sizeof name, "%s output", what);
    kt_close(name, out[0].data, ref, no, 1e-4f, 1e-5f);
    snprintf(name, sizeof name, "%s present_state", what);
    kt_close(name, out[1].data, ref_state, ns, 1e-4f, 1e-5f);
    if (!c.delta && !c.past) {
        la_closed_form(&c, &d, ref);
        snprintf(name, sizeof name, "%s closed form", what);
        kt_close(name, out[0].data, ref, no, 1e-4f, 1e-5f);
    }
    free(ref);
    free(ref_state);
    free(out[0].data);
    free(out[1].data);
    la_free(&d);
}

static void test_rules(void) {
    check_case("linear", (la_case){.b = 2, .t = 5, .hq = 3, .hkv = 3, .dk = 4, .dv = 6});
    check_case("linear gqa scale",
               (la_case){.b = 1, .t = 7, .hq = 6, .hkv = 2, .dk = 5, .dv = 3, .scale = 0.3f});
    check_case("gated per key", (la_case){.b = 2, .t = 6, .hq = 2, .hkv = 2, .dk = 3, .dv = 4, .gated = 1});
    check_case("gated per head",
               (la_case){.b = 2, .t = 6, .hq = 4, .hkv = 2, .dk = 3, .dv = 4, .gated = 1, .decay_per_head = 1});
    check_case("delta past", (la_case){.b = 2, .t = 4, .hq = 2, .hkv = 2, .dk = 4, .dv = 4, .delta = 1, .past = 1});
    check_case("gated delta shared beta mqa",
               (la_case){.b = 3, .t = 5, .hq = 4, .hkv = 1, .dk = 6, .dv = 2, .gated = 1, .delta = 1,
                         .beta_shared = 1});
    check_case("gated delta past decode",
               (la_case){.b = 2, .t = 1, .hq = 2, .hkv = 2, .dk = 8, .dv = 8, .gated = 1, .delta = 1, .past = 1});
    /* Random sizes. */
    for (int i = 0; i < 4; i++) {
        int64_t hkv = kt_randi(1, 3);
        la_case c = {.b = kt_randi(1, 3), .t = kt_randi(1, 9), .hq = hkv * kt_randi(1, 3), .hkv = hkv,
                     .dk = kt_randi(1, 7), .dv = kt_randi(1, 7), .gated = (int)kt_randi(0, 1),
                     .delta = (int)kt_randi(0, 1), .decay_per_head = (int)kt_randi(0, 1),
                     .beta_shared = (int)kt_randi(0, 1), .past = (int)kt_randi(0, 1)};
        check_case("random", c);
    }
}

/* 16-bit activations with a float32 state: outputs in the query's dtype, the state in its own. */
static void test_fp16(void) {
    la_case c = {.b = 2, .t = 3, .hq = 2, .hkv = 1, .dk = 4, .dv = 4, .gated = 1, .delta = 1, .past = 1};
    la_data d;
    la_alloc(&c, &d);
    uint16_t q[48], k[24], v[24], decay[24], beta[6];
    for (int i = 0; i < 48; i++) q[i] = kiln__float_to_half(d.q[i]), d.q[i] = kiln__half_to_float(q[i]);
    for (int i = 0; i < 24; i++) {
        k[i] = kiln__float_to_half(d.k[i]), d.k[i] = kiln__half_to_float(k[i]);
        v[i] = kiln__float_to_half(d.v[i]), d.v[i] = kiln__half_to_float(v[i]);
        decay[i] = kiln__float_to_half(d.decay[i]), d.decay[i] = kiln__half_to_float(decay[i]);
    }
    for (int i = 0; i < 6; i++) beta[i] = kiln__float_to_half(d.beta[i]), d.beta[i] = kiln__half_to_float(beta[i]);
    kiln_layer l = la_layer(&c);
    kiln__value in[6], out[2];
    la_values(&c, &d, in);
    in[0] = lh_val(KILN_FLOAT16, in[0].dims, q);
    in[1] = lh_val(KILN_FLOAT16, in[1].dims, k);
    in[2] = lh_val(KILN_FLOAT16, in[2].dims, v);
    in[4] = lh_val(KILN_FLOAT16, in[4].dims, decay);
    in[5] = lh_val(KILN_FLOAT16, in[5].dims, beta);
    KT_OK(la_run(&l, in, out));
    KT_CHECK(out[0].dtype == KILN_FLOAT16 && out[1].dtype == KILN_FLOAT32);
    float ref[48], ref_state[32], got[48];
    la_reference(&c, &d, ref, ref_state);
    for (int i = 0; i < 48; i++) got[i] = kiln__half_to_float(((uint16_t *)out[0].data)[i]);
    kt_close("fp16 output", got, ref, 48, 2e-3f, 1e-3f);
    kt_close("fp16 present_state", out[1].data, ref_state, 32, 1e-5f, 1e-6f);
    free(out[0].data);
    free(out[1].data);
    la_free(&d);
}

static kiln_status infer_case(const la_case *c, kiln__value *in, kiln__value *out) {
    kiln_layer l = la_layer(c);
    memset(out, 0, 2 * sizeof *out);
    return kiln__layer_ops_for(l.type)->infer(&l, in, out);
}

static void test_infer_errors(void) {
    la_case c = {.b = 2, .t = 3, .hq = 4, .hkv = 2, .dk = 4, .dv = 5, .gated = 1, .delta = 1, .past = 1};
    la_data d;
    la_alloc(&c, &d);
    kiln__value in[6], out[2];
    la_values(&c, &d, in);
    KT_OK(infer_case(&c, in, out));
    /* Unknown batch and time carry through; the state's dims come from the past state. */
    kiln__value u[6];
    memcpy(u, in, sizeof u);
    for (int i = 0; i < 6; i++)
        if (i != 3) u[i].dims.d[0] = u[i].dims.d[1] = -1;
    KT_OK(infer_case(&c, u, out));
    KT_CHECK(kiln__dims_equal(&out[0].dims, &DIMS(-1, -1, 20)) && kiln__dims_equal(&out[1].dims, &DIMS(2, 2, 4, 5)));

    la_case bad = c;
    bad.hq = 3; /* not a multiple of kv heads */
    KT_STATUS(infer_case(&bad, in, out), KILN_INVALID_ARGUMENT);
    KT_CHECK(lh_names_layer() && strstr(kiln_last_error(), "q_num_heads 3"));
    bad = c;
    bad.gated = 0; /* decay given to a rule without gating */
    KT_STATUS(infer_case(&bad, in, out), KILN_INVALID_ARGUMENT);
    KT_CHECK(strstr(kiln_last_error(), "input 4 (decay) is given"));
    kiln__value w[6];
    memcpy(w, in, sizeof w);
    w[5] = lh_val(KILN_DTYPE_UNDEFINED, DIMS0, NULL); /* beta missing for a delta rule */
    KT_STATUS(infer_case(&c, w, out), KILN_INVALID_ARGUMENT);
    KT_CHECK(strstr(kiln_last_error(), "input 5 (beta) is missing"));
    memcpy(w, in, sizeof w);
    w[1].dims.d[2] = 12; /* key width != kv_heads * d_k */
    KT_STATUS(infer_case(&c, w, out), KILN_INVALID_ARGUMENT);
    KT_CHECK(strstr(kiln_last_error(), "input 1 (key) has width 12, expected 8"));
    memcpy(w, in, sizeof w);
    w[4].dims.d[2] = 3; /* decay neither per head nor per key dim */
    KT_STATUS(infer_case(&c, w, out), KILN_INVALID_ARGUMENT);
    KT_CHECK(strstr(kiln_last_error(), "input 4 (decay) has width 3"));
    memcpy(w, in, sizeof w);
    w[3].dims = DIMS(2, 2, 5, 4); /* past state transposed */
    KT_STATUS(infer_case(&c, w, out), KILN_INVALID_ARGUMENT);
    KT_CHECK(strstr(kiln_last_error(), "input 3 (past_state) has dims"));
    memcpy(w, in, sizeof w);
    w[2].dims.d[1] = 4; /* value with another time length */
    KT_STATUS(infer_case(&c, w, out), KILN_INVALID_ARGUMENT);
    KT_CHECK(strstr(kiln_last_error(), "input 2 (value) has batch and time dims"));
    memcpy(w, in, sizeof w);
    w[1].dtype = KILN_FLOAT16;
    KT_STATUS(infer_case(&c, w, out), KILN_INVALID_ARGUMENT);
    KT_CHECK(strstr(kiln_last_error(), "input 1 (key) has dtype float16"));
    la_free(&d);
}

int main(void) {
    lh_init();
    test_rules();
    test_fp16();
    test_infer_errors();
    lh_done();
    return kt_summary("attention_layers");
}
