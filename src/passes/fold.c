/* Constant folding on the engine's network: a layer whose inputs are all constants is computed
 * once at build time with its CPU kernel and replaced by constant layers. The ONNX importer
 * folds as it imports; networks built through the API (weights transposed or reshaped by
 * layers, say) are folded here. Outputs are bounded in size, so Expand/Tile/Fill-like layers
 * do not turn into huge weights. */
#include "graph.h"
#include "passes.h"

#include "../cpu/cpu.h"

#include <string.h>

#define FOLD_MAX_BYTES ((size_t)64 << 20)
#define FOLD_FREE_GROWTH ((size_t)1 << 20)

/* Layers computed at run time on purpose: fresh random samples, and the quantize/dequantize
 * pairs that mark where int8 weights stay int8. */
static bool keep_type(kiln_layer_type t) {
    return t == KILN_LAYER_CONSTANT || t == KILN_LAYER_RANDOM || t == KILN_LAYER_QUANTIZE ||
           t == KILN_LAYER_DEQUANTIZE;
}

/* The constant values of l's inputs in `in`, their total bytes in *bytes; false when some
 * input is not a constant with fixed-size values. */
static bool constant_inputs(const kiln_layer *l, kiln__value *in, size_t *bytes) {
    *bytes = 0;
    bool any = false;
    for (int32_t k = 0; k < l->nb_inputs; k++) {
        const kiln_tensor *t = l->inputs[k];
        memset(&in[k], 0, sizeof in[k]);
        if (!t) continue;
        const kiln_layer *c = t->producer;
        size_t need;
        if (!c || c->type != KILN_LAYER_CONSTANT || !kiln__dtype_bytes(t->dtype, kiln__dims_volume(&t->dims), &need) ||
            need != c->weights_bytes)
            return false;
        in[k] = (kiln__value){t->dtype, t->dims, c->weights, c->weights_bytes, KILN__LAYOUT_PLAIN};
        *bytes += need;
        any = true;
    }
    return any;
}

/* Output k of l becomes the constant layer c: c writes l's old output tensor (its name and
 * readers stay), l writes c's fresh tensor, which no one reads. */
static void hand_over(kiln_layer *l, int32_t k, kiln_layer *c, const kiln__value *v) {
    kiln_tensor *old = l->outputs[k], *fresh = c->outputs[0];
    old->producer = c;
    old->producer_output = 0;
    old->dtype = v->dtype;
    old->dims = v->dims;
    c->outputs[0] = old;
    fresh->producer = l;
    fresh->producer_output = k;
    l->outputs[k] = fresh;
}

/* Computes l into out[] (allocated here) when it is small enough; *done false to leave it. */
static kiln_status evaluate(kiln_network *net, const kiln_layer *l, const kiln__value *in, size_t in_bytes,
                            kiln__value *out, bool *done) {
    *done = false;
    const kiln__layer_ops *ops = kiln__layer_ops_for(l->type);
    kiln__cpu_kernel_fn kernel = kiln__cpu_kernel_for(l->type);
    if (!ops || !kernel) return KILN_OK;
    memset(out, 0, sizeof *out * (size_t)l->nb_outputs);
    /* An invalid layer is left for the engine's validation to report with full context. */
    if (ops->infer(l, in, out) != KILN_OK) return KILN_OK;
    size_t total = 0, limit = in_bytes * 2 + FOLD_FREE_GROWTH;
    for (int32_t k = 0; k < l->nb_outputs; k++) {
        size_t bytes;
        if (out[k].dtype == KILN_STRING || !kiln__dtype_bytes(out[k].dtype, kiln__dims_volume(&out[k].dims), &bytes))
            return KILN_OK;
        out[k].bytes = bytes;
        total += bytes;
    }
    if (total > FOLD_MAX_BYTES || total > limit) return KILN_OK;
    kiln_status st = KILN_OK;
    for (int32_t k = 0; st == KILN_OK && k < l->nb_outputs; k++) {
        out[k].data = kiln__malloc_aligned(&net->alloc, out[k].bytes ? out[k].bytes : 1, 64);
        if (!out[k].data) st = KILN_OUT_OF_MEMORY;
    }
    if (st == KILN_OK) {
        kiln__cpu_ctx ctx = {.pool = NULL, .alloc = &net->alloc};
        st = kernel(l, in, out, &ctx);
        *done = st == KILN_OK;
        /* A kernel that cannot run it now fails the same way at run time, where it is reported. */
        if (st != KILN_OUT_OF_MEMORY) st = KILN_OK;
    }
    if (!*done)
        for (int32_t k = 0; k < l->nb_outputs; k++) kiln__free(&net->alloc, out[k].data);
    return st;
}

kiln_status kiln__pass_fold_constants(kiln_network *net, int32_t *folded) {
    *folded = 0;
    kiln__value in[64], out[16];
    int64_t nb_layers = net->nb_layers; /* new constants land after these */
    kiln_status st = KILN_OK;
    for (int64_t i = 0; st == KILN_OK && i < nb_layers; i++) {
        kiln_layer *l = net->layers[i];
        size_t in_bytes;
        if (keep_type(l->type) || l->nb_inputs > 64 || l->nb_outputs > 16 || !constant_inputs(l, in, &in_bytes))
            continue;
        bool done;
        st = evaluate(net, l, in, in_bytes, out, &done);
        if (st != KILN_OK || !done) continue;
        for (int32_t k = 0; st == KILN_OK && k < l->nb_outputs; k++) {
            kiln_layer *c;
            st = kiln__network_add_constant_raw(net, out[k].dtype, &out[k].dims, out[k].data, out[k].bytes, &c);
            if (st == KILN_OK) hand_over(l, k, c, &out[k]);
        }
        for (int32_t k = 0; k < l->nb_outputs; k++) kiln__free(&net->alloc, out[k].data);
        /* l now reads constants but writes only unread tensors: remove_dead drops it. */
        if (st == KILN_OK) ++*folded;
    }
    KILN__TRY(st);
    return *folded ? kiln__graph_tidy(net) : KILN_OK;
}
