/* Small graph queries and rewrites shared by the pattern passes. */
#ifndef KILN_PASSES_GRAPH_H
#define KILN_PASSES_GRAPH_H

#include "../network/ir.h"

/* consumers[t]: number of layer inputs reading tensor t, plus one when it is a network output.
 * Freed with kiln__free(&net->alloc, ...). */
kiln_status kiln__graph_consumers(const kiln_network *net, int32_t **out);
/* Whether t is computed by a layer and read by exactly one layer input (and is no output):
 * the layer computing it may be dropped when its one reader is. */
bool kiln__graph_private(const int32_t *consumers, const kiln_tensor *t);
/* The one layer reading t when kiln__graph_private(t), else NULL. */
kiln_layer *kiln__graph_sole_consumer(const kiln_network *net, const int32_t *consumers, const kiln_tensor *t);
/* Whether t is the output of a constant layer holding one float32/float16 value with rank at
 * most max_rank (so broadcasting it never grows another operand's rank); *value gets it. */
bool kiln__graph_scalar(const kiln_tensor *t, int32_t max_rank, double *value);
/* `first` takes over `second`'s output tensor; `second` keeps `first`'s old output, which no one
 * reads, and loses its inputs, so kiln__network_remove_dead drops it. */
void kiln__graph_absorb(kiln_layer *first, kiln_layer *second);
/* Sets input `index` of l, growing its input list with absent inputs as needed. */
kiln_status kiln__graph_set_input(kiln_layer *l, int32_t index, kiln_tensor *t);
/* Restores topological order and drops layers that no output needs (after a rewrite). */
kiln_status kiln__graph_tidy(kiln_network *net);

#endif
