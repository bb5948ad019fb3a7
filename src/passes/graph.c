/* Small graph queries and rewrites shared by the pattern passes. */
#include "graph.h"

kiln_status kiln__graph_consumers(const kiln_network *net, int32_t **out) {
    int32_t *c = kiln__calloc(&net->alloc, (size_t)(net->nb_tensors ? net->nb_tensors : 1), sizeof *c);
    if (!c) return KILN_OUT_OF_MEMORY;
    for (int64_t i = 0; i < net->nb_layers; i++)
        for (int32_t k = 0; k < net->layers[i]->nb_inputs; k++)
            if (net->layers[i]->inputs[k]) c[net->layers[i]->inputs[k]->index]++;
    for (int64_t i = 0; i < net->nb_outputs; i++) c[net->outputs[i]->index]++;
    *out = c;
    return KILN_OK;
}

bool kiln__graph_private(const int32_t *consumers, const kiln_tensor *t) {
    return t && t->producer && !t->is_output && !t->is_input && consumers[t->index] == 1;
}

kiln_layer *kiln__graph_sole_consumer(const kiln_network *net, const int32_t *consumers, const kiln_tensor *t) {
    if (!kiln__graph_private(consumers, t)) return NULL;
    for (int64_t i = 0; i < net->nb_layers; i++)
        for (int32_t k = 0; k < net->layers[i]->nb_inputs; k++)
            if (net->layers[i]->inputs[k] == t) return net->layers[i];
    return NULL;
}

bool kiln__graph_scalar(const kiln_tensor *t, int32_t max_rank, double *value) {
    if (!t || !t->producer || t->producer->type != KILN_LAYER_CONSTANT || t->dims.nb_dims > max_rank) return false;
    if (kiln__dims_volume(&t->dims) != 1) return false;
    const kiln_layer *c = t->producer;
    if (t->dtype == KILN_FLOAT32 && c->weights_bytes == sizeof(float)) {
        *value = *(const float *)c->weights;
        return true;
    }
    if (t->dtype == KILN_FLOAT16 && c->weights_bytes == sizeof(uint16_t)) {
        *value = kiln__half_to_float(*(const uint16_t *)c->weights);
        return true;
    }
    return false;
}

void kiln__graph_absorb(kiln_layer *first, kiln_layer *second) {
    kiln_tensor *mid = first->outputs[0], *out = second->outputs[0];
    first->outputs[0] = out;
    out->producer = first;
    out->producer_output = 0;
    second->outputs[0] = mid;
    mid->producer = second;
    mid->producer_output = 0;
    for (int32_t k = 0; k < second->nb_inputs; k++) second->inputs[k] = NULL;
}

kiln_status kiln__graph_set_input(kiln_layer *l, int32_t index, kiln_tensor *t) {
    if (index >= l->nb_inputs) {
        kiln_tensor **grown = kiln__calloc(&l->net->alloc, (size_t)index + 1, sizeof *grown);
        if (!grown) return KILN_OUT_OF_MEMORY;
        for (int32_t k = 0; k < l->nb_inputs; k++) grown[k] = l->inputs[k];
        kiln__free(&l->net->alloc, l->inputs);
        l->inputs = grown;
        l->nb_inputs = index + 1;
    }
    l->inputs[index] = t;
    return KILN_OK;
}

kiln_status kiln__graph_tidy(kiln_network *net) {
    KILN__TRY(kiln__network_toposort(net));
    return kiln__network_remove_dead(net);
}
