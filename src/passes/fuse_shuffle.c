/* A transpose and a reshape next to each other become one shuffle layer (transpose, reshape,
 * transpose), so the reshape no longer copies the tensor: attention splits heads by a reshape
 * and a transpose and joins them by a transpose and a reshape (BERT-base: 48 copies of 128 x 768
 * per inference). */
#include "graph.h"
#include "passes.h"

#include <string.h>

static bool reshape_only(const kiln_layer *l) {
    return l->type == KILN_LAYER_SHUFFLE && !l->p.shuffle.has_first_perm && !l->p.shuffle.has_second_perm;
}

static bool transpose_only(const kiln_layer *l) {
    const kiln__shuffle_params *p = &l->p.shuffle;
    return l->type == KILN_LAYER_SHUFFLE && p->has_first_perm && !p->has_reshape && !p->has_second_perm &&
           (l->nb_inputs < 2 || !l->inputs[1]);
}

kiln_status kiln__pass_fuse_shuffles(kiln_network *net, int32_t *fused) {
    *fused = 0;
    int32_t *consumers;
    KILN__TRY(kiln__graph_consumers(net, &consumers));
    kiln_status st = KILN_OK;
    for (int64_t i = 0; st == KILN_OK && i < net->nb_layers; i++) {
        kiln_layer *first = net->layers[i];
        if (first->type != KILN_LAYER_SHUFFLE || !first->inputs[0]) continue;
        kiln_layer *second = kiln__graph_sole_consumer(net, consumers, first->outputs[0]);
        if (!second || second->inputs[0] != first->outputs[0]) continue;
        kiln__shuffle_params *p = &first->p.shuffle;
        const kiln__shuffle_params *q = &second->p.shuffle;
        if (reshape_only(first) && transpose_only(second)) {
            memcpy(p->second_perm, q->first_perm, sizeof p->second_perm);
            p->has_second_perm = 1;
        } else if (transpose_only(first) && reshape_only(second)) {
            /* The reshape then applies to the transposed tensor, as it did: its 0s copy its dims. */
            p->reshape = q->reshape;
            p->has_reshape = q->has_reshape;
            p->allow_zero = q->allow_zero;
            if (second->nb_inputs > 1 && second->inputs[1]) st = kiln__graph_set_input(first, 1, second->inputs[1]);
            if (st != KILN_OK) break;
        } else {
            continue;
        }
        kiln__graph_absorb(first, second);
        ++*fused;
    }
    kiln__free(&net->alloc, consumers);
    KILN__TRY(st);
    return *fused ? kiln__graph_tidy(net) : KILN_OK;
}
