/* The graph simplifications that run before kiln__pass_fuse. */
#include "passes.h"

kiln_status kiln__pass_simplify(kiln_network *net, const kiln__shape_points *pts, int32_t *changed) {
    int32_t folded = 0, acts = 0, biases = 0, adds = 0, shuffles = 0;
    *changed = 0;
    KILN__TRY(kiln__pass_fold_constants(net, &folded));
    KILN__TRY(kiln__pass_fuse_activations(net, &acts));
    KILN__TRY(kiln__pass_fuse_matmul_bias(net, pts, &biases));
    KILN__TRY(kiln__pass_fuse_matmul_add(net, pts, &adds));
    KILN__TRY(kiln__pass_fuse_shuffles(net, &shuffles));
    kiln__logf(&net->log, KILN_LOG_VERBOSE,
               "folded %d constant layers, made %d activations, fused %d matmul biases and %d matmul adds, merged %d "
               "shuffles",
               folded, acts, biases, adds, shuffles);
    *changed = folded + acts + biases + adds + shuffles;
    return KILN_OK;
}
