/* Layer fusion on the engine's network: batch normalization folded into the preceding
 * convolution's weights, a residual add and an activation folded into the convolution's
 * epilogue, an activation folded into a matmul's epilogue. */
#include "graph.h"
#include "passes.h"

#include <math.h>
#include <string.h>

static const kiln_layer *constant_of(const kiln_tensor *t, kiln_dtype dtype, int64_t count) {
    if (!t || !t->producer || t->producer->type != KILN_LAYER_CONSTANT || t->dtype != dtype) return NULL;
    if (kiln__dims_volume(&t->dims) != count) return NULL;
    return t->producer;
}

/* A new float32 constant; it lands at the end of the layer list until the pass re-sorts. */
static kiln_status new_constant(kiln_network *net, const kiln_dims *dims, const float *values, kiln_tensor **out) {
    kiln_layer *l;
    size_t bytes = (size_t)kiln__dims_volume(dims) * sizeof(float);
    KILN__TRY(kiln__network_add_constant_raw(net, KILN_FLOAT32, dims, values, bytes, &l));
    *out = l->outputs[0];
    return KILN_OK;
}

static kiln_tensor *conv_input(const kiln_layer *l, int32_t i) { return i < l->nb_inputs ? l->inputs[i] : NULL; }

/* conv -> batchnorm with constant float32 weights: scale each output map's filter and bias. */
static kiln_status fold_batchnorm(kiln_network *net, kiln_layer *conv, kiln_layer *bn, bool *done) {
    *done = false;
    int64_t maps = conv->p.conv.nb_output_maps;
    const kiln_tensor *kt = conv_input(conv, 1);
    if (!kt || kt->dtype != KILN_FLOAT32 || bn->nb_inputs < 5 || maps <= 0) return KILN_OK;
    const kiln_layer *scale = constant_of(bn->inputs[1], KILN_FLOAT32, maps);
    const kiln_layer *shift = constant_of(bn->inputs[2], KILN_FLOAT32, maps);
    const kiln_layer *mean = constant_of(bn->inputs[3], KILN_FLOAT32, maps);
    const kiln_layer *var = constant_of(bn->inputs[4], KILN_FLOAT32, maps);
    int64_t kcount = kiln__dims_volume(&kt->dims);
    const kiln_layer *kernel = constant_of(kt, KILN_FLOAT32, kcount);
    const kiln_tensor *bt = conv_input(conv, 2);
    const kiln_layer *bias = bt ? constant_of(bt, KILN_FLOAT32, maps) : NULL;
    if (!scale || !shift || !mean || !var || !kernel || kcount <= 0 || kcount % maps || (bt && !bias)) return KILN_OK;
    float *w = kiln__malloc(&net->alloc, (size_t)kcount * sizeof *w);
    float *b = kiln__malloc(&net->alloc, (size_t)maps * sizeof *b);
    kiln_status st = w && b ? KILN_OK : KILN_OUT_OF_MEMORY;
    if (st == KILN_OK) {
        const float *kw = kernel->weights, *s = scale->weights, *sh = shift->weights, *m = mean->weights,
                    *v = var->weights, *cb = bias ? bias->weights : NULL;
        int64_t per_map = kcount / maps;
        for (int64_t o = 0; o < maps; o++) {
            double f = s[o] / sqrt((double)v[o] + bn->p.norm.epsilon);
            for (int64_t i = 0; i < per_map; i++) w[o * per_map + i] = (float)(kw[o * per_map + i] * f);
            b[o] = (float)(((cb ? cb[o] : 0.0) - m[o]) * f + sh[o]);
        }
        kiln_tensor *nw, *nb;
        kiln_dims bd = {1, {maps}};
        st = new_constant(net, &kt->dims, w, &nw);
        if (st == KILN_OK) st = new_constant(net, &bd, b, &nb);
        if (st == KILN_OK) st = kiln__graph_set_input(conv, 1, nw);
        if (st == KILN_OK) st = kiln__graph_set_input(conv, 2, nb);
        if (st == KILN_OK) {
            kiln__graph_absorb(conv, bn);
            *done = true;
        }
    }
    kiln__free(&net->alloc, w);
    kiln__free(&net->alloc, b);
    return st;
}

static bool fusable_conv(const kiln_layer *l) {
    return l->type == KILN_LAYER_CONVOLUTION && l->outputs[0]->dtype == KILN_FLOAT32 && l->p.conv.act.kind < 0;
}

/* Round 1 (residual adds) decides on shape facts taken after round 0's rewrites. */
static kiln_status facts_for_round(kiln_network *net, const kiln__shape_points *pts, int round,
                                   kiln__shape_facts *f) {
    memset(f, 0, sizeof *f);
    return round == 1 ? kiln__shape_facts_eval(net, pts, f) : KILN_OK;
}

kiln_status kiln__pass_fuse(kiln_network *net, const kiln__shape_points *pts, int32_t *fused) {
    *fused = 0;
    for (int round = 0; round < 3; round++) {
        kiln__shape_facts facts;
        KILN__TRY(facts_for_round(net, pts, round, &facts));
        int32_t *consumers;
        kiln_status cst = kiln__graph_consumers(net, &consumers);
        if (cst != KILN_OK) {
            kiln__shape_facts_free(net, &facts);
            return cst;
        }
        /* Layers absorbed this round are dead but still wired; never match them again. */
        int64_t nb_layers = net->nb_layers;
        bool *absorbed = kiln__calloc(&net->alloc, (size_t)(nb_layers ? nb_layers : 1), sizeof *absorbed);
        kiln_status st = absorbed ? KILN_OK : KILN_OUT_OF_MEMORY;
        for (int64_t i = 0; st == KILN_OK && i < nb_layers; i++) {
            kiln_layer *l = net->layers[i];
            if (absorbed[i] || (l->type != KILN_LAYER_CONVOLUTION && l->type != KILN_LAYER_MATMUL)) continue;
            kiln_layer *next = kiln__graph_sole_consumer(net, consumers, l->outputs[0]);
            if (!next || next->index >= nb_layers || absorbed[next->index] || next->inputs[0] == NULL) continue;
            bool done = false;
            if (round == 0 && fusable_conv(l) && conv_input(l, 3) == NULL && next->type == KILN_LAYER_NORMALIZATION &&
                next->p.norm.type == KILN_NORM_BATCH && next->inputs[0] == l->outputs[0]) {
                st = fold_batchnorm(net, l, next, &done);
            } else if (round == 1 && fusable_conv(l) && conv_input(l, 3) == NULL &&
                       next->type == KILN_LAYER_ELEMENTWISE && next->p.ew.op == KILN_EW_ADD && next->nb_inputs == 2) {
                kiln_tensor *other = next->inputs[0] == l->outputs[0] ? next->inputs[1] : next->inputs[0];
                /* The epilogue reads the residual with the output's layout, no broadcasting: its
                 * dims must be the output's exactly (the conv's shape inference checks that again
                 * on every run, so a shape the facts missed fails rather than computes wrong). */
                if (other && other != l->outputs[0] && other->dtype == KILN_FLOAT32 &&
                    kiln__shape_facts_all(&facts, other, l->outputs[0], kiln__dims_equal)) {
                    st = kiln__graph_set_input(l, 3, other);
                    if (st == KILN_OK) {
                        kiln__graph_absorb(l, next);
                        done = true;
                    }
                }
            } else if (round == 2 && next->type == KILN_LAYER_ACTIVATION && next->inputs[0] == l->outputs[0] &&
                       l->outputs[0]->dtype == KILN_FLOAT32) {
                kiln__act *act = l->type == KILN_LAYER_CONVOLUTION ? &l->p.conv.act : &l->p.matmul.act;
                if (act->kind < 0) {
                    *act = (kiln__act){next->p.act.kind, next->p.act.alpha, next->p.act.beta};
                    kiln__graph_absorb(l, next);
                    done = true;
                }
            }
            if (done) {
                absorbed[next->index] = true;
                ++*fused;
            }
        }
        kiln__free(&net->alloc, absorbed);
        kiln__free(&net->alloc, consumers);
        kiln__shape_facts_free(net, &facts);
        KILN__TRY(st);
        KILN__TRY(kiln__graph_tidy(net));
    }
    return KILN_OK;
}
