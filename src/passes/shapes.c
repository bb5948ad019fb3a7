/* Shape facts for the fusion passes. Build-time dims are -1 wherever they follow a dynamic input
 * dim, so a test like "the residual has exactly the conv output's dims" never holds on them for
 * a model exported with a dynamic batch. The passes instead evaluate every tensor's dims (the
 * evaluator's SHAPES mode, each layer's own shape inference) at the input shapes that bound the
 * profiles: each profile's min, opt and max and the corners of its min..max box, and fuse when
 * the condition holds at all of them.
 *
 * Why that is sound: agreement at those points is evidence, not proof, for the shapes between
 * them (a dim could be an odd function of the inputs). So every fusion that relies on it is one
 * whose fused layer checks the condition again on the actual dims before it computes: the layer's
 * shape inference runs before every CPU kernel and in the CUDA backend's host shape pass, and the
 * convolution's requires its residual to have exactly its output's dims, the matmul's requires c
 * to broadcast to its result without growing it. A shape where the build's conclusion would not
 * hold fails there with an error naming the layer, never with a wrong result. Symbolic tracking
 * (which input dim each -1 follows) would be a proof but needs a rule per layer type, where the
 * evaluator reuses the inference every layer has. The corners tell apart dims that follow
 * different input dims with the same range (one input's batch and another's), which min, opt and
 * max alone would take for equal. */
#include "shapes.h"

#include "../runtime/eval.h"

#include <string.h>

/* Corners are taken for profiles with at most this many varying dims (2^6 shapes); beyond that
 * min, opt and max alone, and the run-time check covers the rest. */
#define MAX_CORNER_DIMS 6
/* Points in all; each costs one shape evaluation of the network per pass that needs facts. */
#define MAX_POINTS 96

static const kiln__profile_dims *entry_for(const kiln__profile *p, const char *name) {
    for (int32_t i = 0; i < p->nb_entries; i++)
        if (strcmp(p->entries[i].input, name) == 0) return &p->entries[i];
    return NULL;
}

/* Appends row (nb_inputs dims) unless it is there already or the points are full. */
static void add_point(kiln__shape_points *pts, const kiln_dims *row) {
    for (int32_t p = 0; p < pts->nb_points; p++) {
        const kiln_dims *have = pts->inputs + (int64_t)p * pts->nb_inputs;
        bool same = true;
        for (int64_t i = 0; same && i < pts->nb_inputs; i++) same = kiln__dims_equal(&have[i], &row[i]);
        if (same) return;
    }
    if (pts->nb_points == MAX_POINTS) return;
    memcpy(pts->inputs + (int64_t)pts->nb_points * pts->nb_inputs, row, (size_t)pts->nb_inputs * sizeof *row);
    pts->nb_points++;
}

/* The corner of profile p whose varying dims take their max where `mask` has a bit, else min. */
static void corner(const kiln_network *net, const kiln__profile *p, uint32_t mask, kiln_dims *row) {
    int32_t bit = 0;
    for (int64_t i = 0; i < net->nb_inputs; i++) {
        const kiln__profile_dims *e = entry_for(p, net->inputs[i]->name);
        row[i] = e ? e->dims[KILN_PROFILE_MIN] : net->inputs[i]->dims;
        if (!e) continue;
        for (int32_t j = 0; j < row[i].nb_dims; j++)
            if (e->dims[KILN_PROFILE_MIN].d[j] != e->dims[KILN_PROFILE_MAX].d[j] && ((mask >> bit++) & 1u))
                row[i].d[j] = e->dims[KILN_PROFILE_MAX].d[j];
    }
}

static int32_t varying_dims(const kiln_network *net, const kiln__profile *p) {
    int32_t n = 0;
    for (int64_t i = 0; i < net->nb_inputs; i++) {
        const kiln__profile_dims *e = entry_for(p, net->inputs[i]->name);
        for (int32_t j = 0; e && j < e->dims[KILN_PROFILE_MIN].nb_dims; j++)
            n += e->dims[KILN_PROFILE_MIN].d[j] != e->dims[KILN_PROFILE_MAX].d[j];
    }
    return n;
}

kiln_status kiln__shape_points_make(const kiln_network *net, const struct kiln__profile *profiles,
                                    int32_t nb_profiles, kiln__shape_points *pts) {
    memset(pts, 0, sizeof *pts);
    pts->nb_inputs = net->nb_inputs;
    if (net->nb_inputs == 0) return KILN_OK;
    pts->inputs = kiln__calloc(&net->alloc, (size_t)(MAX_POINTS + 1) * (size_t)net->nb_inputs, sizeof *pts->inputs);
    if (!pts->inputs) return KILN_OUT_OF_MEMORY;
    kiln_dims *row = pts->inputs + (int64_t)MAX_POINTS * net->nb_inputs; /* scratch row */
    if (nb_profiles == 0) {
        for (int64_t i = 0; i < net->nb_inputs; i++) {
            row[i] = net->inputs[i]->dims;
            if (kiln__dims_volume(&row[i]) < 0) return KILN_OK;
        }
        add_point(pts, row);
        return KILN_OK;
    }
    /* Every profile's min, opt and max first, so the cap only ever drops corners. */
    for (int32_t p = 0; p < nb_profiles; p++)
        for (int k = KILN_PROFILE_MIN; k <= KILN_PROFILE_MAX; k++) {
            for (int64_t i = 0; i < net->nb_inputs; i++) {
                const kiln__profile_dims *e = entry_for(&profiles[p], net->inputs[i]->name);
                row[i] = e ? e->dims[k] : net->inputs[i]->dims;
            }
            add_point(pts, row);
        }
    for (int32_t p = 0; p < nb_profiles; p++) {
        int32_t n = varying_dims(net, &profiles[p]);
        if (n > MAX_CORNER_DIMS) continue;
        for (uint32_t mask = 0; mask < (1u << n); mask++) {
            corner(net, &profiles[p], mask, row);
            add_point(pts, row);
        }
    }
    return KILN_OK;
}

void kiln__shape_points_free(const kiln_network *net, kiln__shape_points *pts) {
    kiln__free(&net->alloc, pts->inputs);
    memset(pts, 0, sizeof *pts);
}

static bool all_known(const kiln_network *net) {
    for (int64_t t = 0; t < net->nb_tensors; t++)
        if (kiln__dims_volume(&net->tensors[t]->dims) < 0) return false;
    return true;
}

kiln_status kiln__shape_facts_eval(const kiln_network *net, const kiln__shape_points *pts, kiln__shape_facts *f) {
    memset(f, 0, sizeof *f);
    if (!pts || pts->nb_points == 0 || pts->nb_inputs != net->nb_inputs || all_known(net)) return KILN_OK;
    f->nb_tensors = net->nb_tensors;
    f->dims = kiln__calloc(&net->alloc, (size_t)pts->nb_points * (size_t)net->nb_tensors, sizeof *f->dims);
    if (!f->dims) return KILN_OUT_OF_MEMORY;
    for (int32_t p = 0; p < pts->nb_points; p++) {
        kiln__eval ev;
        kiln_status st = kiln__eval_init(&ev, net, &net->alloc, NULL);
        if (st != KILN_OK) {
            kiln__shape_facts_free(net, f);
            return st;
        }
        for (int64_t i = 0; i < net->nb_inputs; i++)
            kiln__eval_set_input(&ev, i, &pts->inputs[(int64_t)p * net->nb_inputs + i], NULL);
        st = kiln__eval_run(&ev, KILN__EVAL_SHAPES);
        if (st == KILN_OK) {
            kiln_dims *rowp = f->dims + (int64_t)f->nb_points * f->nb_tensors;
            for (int64_t t = 0; t < net->nb_tensors; t++) rowp[t] = ev.values[t].dims;
            f->nb_points++;
        }
        kiln__eval_free(&ev);
        /* Other failures mark shapes the engine rejects at run time: no fact comes from them. */
        if (st == KILN_OUT_OF_MEMORY) {
            kiln__shape_facts_free(net, f);
            return st;
        }
    }
    return KILN_OK;
}

void kiln__shape_facts_free(const kiln_network *net, kiln__shape_facts *f) {
    kiln__free(&net->alloc, f->dims);
    memset(f, 0, sizeof *f);
}

static bool known(const kiln_dims *d) { return d->nb_dims >= 0 && kiln__dims_volume(d) >= 0; }

bool kiln__shape_facts_all(const kiln__shape_facts *f, const kiln_tensor *a, const kiln_tensor *b,
                           kiln__dims_pred pred) {
    if (known(&a->dims) && known(&b->dims)) return pred(&a->dims, &b->dims);
    if (f->nb_points == 0 || a->index >= f->nb_tensors || b->index >= f->nb_tensors) return false;
    for (int32_t p = 0; p < f->nb_points; p++) {
        const kiln_dims *da = &f->dims[(int64_t)p * f->nb_tensors + a->index];
        const kiln_dims *db = &f->dims[(int64_t)p * f->nb_tensors + b->index];
        if (!known(da) || !known(db) || !pred(da, db)) return false;
    }
    return true;
}
