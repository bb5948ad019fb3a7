#include "eval.h"

#include <string.h>
#include <time.h>

/* Shape-mode values are computed only for tensors this small: shape tensors and their kin. */
#define KILN__FOLD_MAX_ELEMENTS 65536

kiln_status kiln__eval_init(kiln__eval *ev, const kiln_network *net, const kiln__alloc *alloc, kiln__pool *pool) {
    memset(ev, 0, sizeof *ev);
    ev->net = net;
    ev->alloc = alloc;
    ev->pool = pool;
    size_t n = (size_t)(net->nb_tensors ? net->nb_tensors : 1);
    ev->values = kiln__calloc(alloc, n, sizeof *ev->values);
    ev->owned = kiln__calloc(alloc, n, sizeof *ev->owned);
    ev->uses_left = kiln__calloc(alloc, n, sizeof *ev->uses_left);
    ev->sole_reader = kiln__calloc(alloc, n, sizeof *ev->sole_reader);
    if (!ev->values || !ev->owned || !ev->uses_left || !ev->sole_reader) {
        kiln__eval_free(ev);
        return KILN_OUT_OF_MEMORY;
    }
    for (int64_t i = 0; i < net->nb_tensors; i++) {
        ev->values[i].dtype = net->tensors[i]->dtype;
        ev->values[i].dims = net->tensors[i]->dims;
    }
    for (int64_t i = 0; i < net->nb_layers; i++) {
        const kiln_layer *l = net->layers[i];
        for (int32_t k = 0; k < l->nb_inputs; k++) {
            const kiln_tensor *t = l->inputs[k];
            if (!t) continue;
            ev->uses_left[t->index]++;
            ev->sole_reader[t->index] = k == 0 && !t->is_output ? l : NULL;
        }
    }
    for (int64_t i = 0; i < net->nb_tensors; i++) {
        if (ev->uses_left[i] != 1) ev->sole_reader[i] = NULL;
        ev->uses_left[i] = 0;
    }
    return KILN_OK;
}

static void release(kiln__eval *ev, int64_t t) {
    if (ev->owned[t]) {
        kiln__free(ev->alloc, ev->values[t].data);
        ev->live_bytes -= ev->values[t].bytes;
        ev->owned[t] = false;
    }
    ev->values[t].data = NULL;
}

void kiln__eval_free(kiln__eval *ev) {
    if (ev->values && ev->owned)
        for (int64_t i = 0; i < ev->net->nb_tensors; i++) release(ev, i);
    kiln__free(ev->alloc, ev->values);
    kiln__free(ev->alloc, ev->owned);
    kiln__free(ev->alloc, ev->uses_left);
    kiln__free(ev->alloc, ev->sole_reader);
    ev->values = NULL;
    ev->owned = NULL;
    ev->uses_left = NULL;
    ev->sole_reader = NULL;
}

void kiln__eval_set_input(kiln__eval *ev, int64_t input, const kiln_dims *dims, void *data) {
    const kiln_tensor *t = ev->net->inputs[input];
    kiln__value *v = &ev->values[t->index];
    v->dims = *dims;
    v->data = data;
    size_t bytes = 0;
    kiln__dtype_bytes(v->dtype, kiln__dims_volume(dims), &bytes);
    v->bytes = bytes;
}

void kiln__eval_bind(kiln__eval *ev, int64_t tensor, void *data, size_t bytes) {
    ev->values[tensor].data = data;
    ev->values[tensor].bytes = bytes;
}

static bool dims_known(const kiln_dims *d) { return kiln__dims_volume(d) >= 0; }

/* Whether a layer's outputs can be computed now in shape mode. */
static bool foldable(const kiln_layer *l, const kiln__value *in, const kiln__value *out) {
    for (int32_t k = 0; k < l->nb_outputs; k++) {
        int64_t vol = kiln__dims_volume(&out[k].dims);
        if (vol < 0 || vol > KILN__FOLD_MAX_ELEMENTS || out[k].dtype == KILN_STRING) return false;
    }
    if (l->type == KILN_LAYER_SHAPE) return dims_known(&in[0].dims);
    for (int32_t k = 0; k < l->nb_inputs; k++)
        if (l->inputs[k] && !in[k].data && kiln__dims_volume(&in[k].dims) != 0) return false;
    return true;
}

#define MAX_INPUTS 64
#define MAX_OUTPUTS 16

/* l's input values as they stand, absent optional ones zeroed, and its outputs zeroed. */
static void layer_values(const kiln__eval *ev, const kiln_layer *l, kiln__value *in, kiln__value *out) {
    for (int32_t k = 0; k < l->nb_inputs; k++) {
        if (l->inputs[k]) {
            in[k] = ev->values[l->inputs[k]->index];
        } else {
            memset(&in[k], 0, sizeof in[k]);
        }
    }
    memset(out, 0, sizeof(out[0]) * (size_t)l->nb_outputs);
}

/* The layout tensor t (an output of l, whose inputs are in) is written in: NCHW16C where l's and
 * its sole reader's CPU kernels agree on it for these shapes, else plain. */
static int32_t output_layout(const kiln__eval *ev, const kiln_layer *l, const kiln__value *in, int64_t t) {
    const kiln_layer *reader = ev->sole_reader[t];
    if (!reader || !kiln__cpu_blocked_pair(l, reader) || reader->nb_inputs > MAX_INPUTS ||
        reader->nb_outputs > MAX_OUTPUTS)
        return KILN__LAYOUT_PLAIN;
    kiln__value r_in[MAX_INPUTS], r_out[MAX_OUTPUTS];
    layer_values(ev, reader, r_in, r_out);
    const kiln__layer_ops *ops = kiln__layer_ops_for(reader->type);
    if (!ops || ops->infer(reader, r_in, r_out) != KILN_OK) return KILN__LAYOUT_PLAIN; /* it fails itself later */
    return kiln__cpu_blocked_edge(l, in, &ev->values[t], reader, r_in, r_out) ? KILN__LAYOUT_NCHW16C
                                                                               : KILN__LAYOUT_PLAIN;
}

static kiln_status run_layer(kiln__eval *ev, const kiln_layer *l, kiln__eval_mode mode) {
    kiln__value in[MAX_INPUTS], out[MAX_OUTPUTS];
    if (l->nb_inputs > MAX_INPUTS || l->nb_outputs > MAX_OUTPUTS)
        return kiln__layer_error(l, KILN_UNSUPPORTED, "too many inputs or outputs");
    layer_values(ev, l, in, out);
    const kiln__layer_ops *ops = kiln__layer_ops_for(l->type);
    if (!ops) return kiln__layer_error(l, KILN_UNSUPPORTED, "layer type %d is not implemented", (int)l->type);
    KILN__TRY(ops->infer(l, in, out));
    bool compute = mode == KILN__EVAL_EXECUTE || foldable(l, in, out);
    for (int32_t k = 0; k < l->nb_outputs; k++) {
        kiln__value *v = &ev->values[l->outputs[k]->index];
        void *bound = v->data;
        size_t bound_bytes = v->bytes;
        v->dtype = out[k].dtype;
        v->dims = out[k].dims;
        v->data = NULL;
        v->bytes = 0;
        v->layout = KILN__LAYOUT_PLAIN;
        if (!compute) continue;
        if (!dims_known(&v->dims))
            return kiln__layer_error(l, KILN_INTERNAL_ERROR, "output %d has unknown dims at run time", k);
        size_t bytes;
        if (!kiln__dtype_bytes(v->dtype, kiln__dims_volume(&v->dims), &bytes))
            return kiln__layer_error(l, KILN_UNSUPPORTED, "output %d has dtype %s without a fixed size", k,
                                     kiln_dtype_name(v->dtype));
        v->bytes = bytes;
        if (bound && bound_bytes >= bytes) {
            v->data = bound; /* the caller's output buffer */
            continue;
        }
        if (bound)
            return kiln__layer_error(l, KILN_INVALID_ARGUMENT,
                                     "the buffer bound for output '%s' holds %zu bytes, %zu needed",
                                     l->outputs[k]->name, bound_bytes, bytes);
        if (l->type == KILN_LAYER_CONSTANT && l->weights_bytes == bytes) {
            v->data = l->weights; /* constants are read in place */
            continue;
        }
        int64_t planned = ev->plan ? ev->plan->offsets[l->outputs[k]->index] : -1;
        if (planned >= 0 && bytes <= ev->plan->bytes[l->outputs[k]->index]) {
            v->data = ev->arena + planned;
            continue;
        }
        v->data = kiln__malloc_aligned(ev->alloc, bytes ? bytes : 1, 64);
        if (!v->data) return kiln__layer_error(l, KILN_OUT_OF_MEMORY, "no memory for output %d (%zu bytes)", k, bytes);
        ev->owned[l->outputs[k]->index] = true;
        ev->live_bytes += bytes;
        if (ev->live_bytes > ev->peak_bytes) ev->peak_bytes = ev->live_bytes;
    }
    if (!compute || (l->type == KILN_LAYER_CONSTANT && ev->values[l->outputs[0]->index].data == l->weights))
        return KILN_OK;
    kiln__cpu_kernel_fn kernel = kiln__cpu_kernel_for(l->type);
    if (!kernel) return kiln__layer_error(l, KILN_UNSUPPORTED, "the CPU backend has no kernel for this layer");
    for (int32_t k = 0; k < l->nb_outputs; k++) {
        int64_t t = l->outputs[k]->index;
        if (mode == KILN__EVAL_EXECUTE) ev->values[t].layout = output_layout(ev, l, in, t);
        out[k] = ev->values[t];
    }
    kiln__cpu_ctx ctx = {.pool = ev->pool, .alloc = ev->alloc,
                         .cache = ev->layer_cache && mode == KILN__EVAL_EXECUTE ? &ev->layer_cache[l->index] : NULL,
                         .map = ev->map};
    return kernel(l, in, out, &ctx);
}

static int64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* Only successful runs count: a failing layer ends the execution anyway. */
static kiln_status run_layer_timed(kiln__eval *ev, const kiln_layer *l, kiln__eval_mode mode, kiln__layer_timing *t) {
    int64_t start = now_ns();
    KILN__TRY(run_layer(ev, l, mode));
    t->total_ns += now_ns() - start;
    t->count++;
    return KILN_OK;
}

kiln_status kiln__eval_run(kiln__eval *ev, kiln__eval_mode mode) {
    const kiln_network *net = ev->net;
    if (mode == KILN__EVAL_EXECUTE) {
        for (int64_t i = 0; i < net->nb_tensors; i++) ev->uses_left[i] = 0;
        for (int64_t i = 0; i < net->nb_layers; i++)
            for (int32_t k = 0; k < net->layers[i]->nb_inputs; k++)
                if (net->layers[i]->inputs[k]) ev->uses_left[net->layers[i]->inputs[k]->index]++;
    }
    kiln__layer_timing *timing = mode == KILN__EVAL_EXECUTE ? ev->timing : NULL;
    for (int64_t i = 0; i < net->nb_layers; i++) {
        const kiln_layer *l = net->layers[i];
        if (timing) {
            KILN__TRY(run_layer_timed(ev, l, mode, &timing[i]));
        } else {
            KILN__TRY(run_layer(ev, l, mode));
        }
        if (mode != KILN__EVAL_EXECUTE) continue;
        /* Free intermediates whose last consumer has run. */
        for (int32_t k = 0; k < l->nb_inputs; k++) {
            const kiln_tensor *t = l->inputs[k];
            if (t && --ev->uses_left[t->index] == 0 && !t->is_output) release(ev, t->index);
        }
    }
    return KILN_OK;
}
