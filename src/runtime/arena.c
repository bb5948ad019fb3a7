/* Activation memory planning: one arena per context and input shape, tensors placed by
 * lifetime so that tensors never live at the same time share bytes. A convolution whose residual
 * it reads last writes its output over the residual (kiln__cpu_conv_inplace_ok): the two share
 * one slot, whose lifetime runs from the residual's producer to the output's last reader; a chain
 * of them (ResNet's blocks) shares one. */
#include "eval.h"

#include <stdlib.h>
#include <string.h>

#define KILN__ARENA_ALIGN 64

typedef struct slot {
    int64_t tensor;
    int64_t start, end; /* layer indices: produced at start, last read at end */
    uint64_t bytes;
} slot;

#define MAX_INPLACE_INPUTS 4 /* a convolution's x, w, bias, residual */

/* The tensor whose slot layer i's output takes over, or -1: a convolution's residual that it reads
 * last, produced by a layer into a slot of the same size, read by no other input of the layer. */
static int64_t inplace_source(const kiln_network *net, int64_t i, const kiln__value *shapes, const int64_t *last_use,
                              const int64_t *slot_of) {
    const kiln_layer *l = net->layers[i];
    if (l->type != KILN_LAYER_CONVOLUTION || l->nb_outputs != 1 || l->nb_inputs != MAX_INPLACE_INPUTS ||
        !l->inputs[3])
        return -1;
    const kiln_tensor *r = l->inputs[3];
    if (r->is_output || l->outputs[0]->is_output || last_use[r->index] != i || slot_of[r->index] < 0) return -1;
    kiln__value in[MAX_INPLACE_INPUTS];
    for (int32_t k = 0; k < MAX_INPLACE_INPUTS; k++) {
        if (k < 3 && l->inputs[k] == r) return -1;
        in[k] = l->inputs[k] ? shapes[l->inputs[k]->index] : (kiln__value){0};
    }
    return kiln__cpu_conv_inplace_ok(l, in, &shapes[l->outputs[0]->index]) ? r->index : -1;
}

static int by_size_desc(const void *a, const void *b) {
    const slot *x = a, *y = b;
    if (x->bytes != y->bytes) return x->bytes < y->bytes ? 1 : -1;
    return x->tensor < y->tensor ? -1 : x->tensor > y->tensor;
}

void kiln__arena_plan_free(const kiln__alloc *alloc, kiln__arena_plan *plan) {
    kiln__free(alloc, plan->offsets);
    kiln__free(alloc, plan->bytes);
    plan->offsets = NULL;
    plan->bytes = NULL;
    plan->size = 0;
}

kiln_status kiln__arena_plan_make(const kiln_network *net, const kiln__value *shapes, const kiln__alloc *alloc,
                                  kiln__arena_plan *plan) {
    plan->offsets = NULL;
    plan->bytes = NULL;
    plan->size = 0;
    int64_t nt = net->nb_tensors ? net->nb_tensors : 1;
    int64_t *offsets = kiln__malloc(alloc, (size_t)nt * sizeof *offsets);
    uint64_t *sizes = kiln__calloc(alloc, (size_t)nt, sizeof *sizes);
    int64_t *last_use = kiln__malloc(alloc, (size_t)nt * sizeof *last_use);
    int64_t *slot_of = kiln__malloc(alloc, (size_t)nt * sizeof *slot_of); /* the tensor's slot, or -1 */
    int64_t *root = kiln__malloc(alloc, (size_t)nt * sizeof *root);       /* the tensor the slot is for */
    slot *slots = kiln__malloc(alloc, (size_t)nt * sizeof *slots);
    kiln_status st = offsets && sizes && last_use && slot_of && root && slots ? KILN_OK : KILN_OUT_OF_MEMORY;
    int64_t nb_slots = 0;
    if (st == KILN_OK) {
        for (int64_t t = 0; t < nt; t++) {
            offsets[t] = -1;
            last_use[t] = -1;
            slot_of[t] = -1;
            root[t] = t;
        }
        for (int64_t i = 0; i < net->nb_layers; i++)
            for (int32_t k = 0; k < net->layers[i]->nb_inputs; k++)
                if (net->layers[i]->inputs[k]) last_use[net->layers[i]->inputs[k]->index] = i;
        for (int64_t i = 0; i < net->nb_layers; i++) {
            const kiln_layer *l = net->layers[i];
            if (l->type == KILN_LAYER_CONSTANT) continue; /* read in place from the weights */
            int64_t source = inplace_source(net, i, shapes, last_use, slot_of);
            for (int32_t k = 0; k < l->nb_outputs; k++) {
                const kiln_tensor *t = l->outputs[k];
                size_t bytes;
                int64_t volume = kiln__dims_volume(&shapes[t->index].dims);
                if (volume < 0 || !kiln__dtype_bytes(shapes[t->index].dtype, volume, &bytes)) continue;
                uint64_t aligned = (bytes + KILN__ARENA_ALIGN - 1) / KILN__ARENA_ALIGN * KILN__ARENA_ALIGN;
                int64_t end = t->is_output ? net->nb_layers : KILN__MAX(last_use[t->index], i);
                slot *src = source >= 0 ? &slots[slot_of[source]] : NULL;
                if (src && src->bytes == aligned) {
                    root[t->index] = root[source];
                    slot_of[t->index] = slot_of[source];
                    src->end = KILN__MAX(src->end, end);
                    continue;
                }
                slot_of[t->index] = nb_slots;
                slot *s = &slots[nb_slots++];
                s->tensor = t->index;
                s->start = i;
                s->end = end;
                s->bytes = aligned;
            }
        }
        /* Largest first, each at the lowest offset free of every placed, overlapping-in-time slot. */
        qsort(slots, (size_t)nb_slots, sizeof *slots, by_size_desc);
        for (int64_t i = 0; i < nb_slots; i++) {
            uint64_t offset = 0;
            bool moved = true;
            while (moved) {
                moved = false;
                for (int64_t j = 0; j < i; j++) {
                    const slot *o = &slots[j];
                    if (o->end < slots[i].start || slots[i].end < o->start) continue;
                    uint64_t ob = (uint64_t)offsets[o->tensor];
                    if (offset < ob + o->bytes && ob < offset + slots[i].bytes) {
                        offset = ob + o->bytes;
                        moved = true;
                    }
                }
            }
            offsets[slots[i].tensor] = (int64_t)offset;
            sizes[slots[i].tensor] = slots[i].bytes;
            if (offset + slots[i].bytes > plan->size) plan->size = offset + slots[i].bytes;
        }
    }
    for (int64_t t = 0; st == KILN_OK && t < nt; t++)
        if (root[t] != t) {
            offsets[t] = offsets[root[t]];
            sizes[t] = sizes[root[t]];
        }
    kiln__free(alloc, last_use);
    kiln__free(alloc, slot_of);
    kiln__free(alloc, root);
    kiln__free(alloc, slots);
    if (st != KILN_OK) {
        kiln__free(alloc, offsets);
        kiln__free(alloc, sizes);
        return st;
    }
    plan->offsets = offsets;
    plan->bytes = sizes;
    return KILN_OK;
}
