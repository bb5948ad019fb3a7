/* A matmul without c whose only reader adds a tensor with rows n wide (attention's mask
 * [batch, 1, 1, n] on the scores, a [m, n] block) takes that tensor as its c input with beta 1:
 * the CPU GEMM adds it in its epilogue, so the scores are written once instead of three times.
 * Constant biases along the last dim are kiln__pass_fuse_matmul_bias's; this takes the rest. */
#include "graph.h"
#include "passes.h"

/* Whether y + t has y's dims and t's rows are n wide: t has at most y's rank, its last dim is
 * y's (known), the one before it 1 or y's, and every other dim 1, y's (known), or unknown in
 * both (the batch; the matmul checks at run time that c does not grow its result). */
static bool rows_of(const kiln_dims *d, const kiln_dims *y) {
    int32_t r = d->nb_dims, ry = y->nb_dims;
    if (r < 1 || r > ry || y->d[ry - 1] < 1 || d->d[r - 1] != y->d[ry - 1]) return false;
    for (int32_t i = 0; i + 1 < r; i++) {
        int64_t dt = d->d[i], dy = y->d[ry - r + i];
        if (dt != 1 && !(dt == dy && (dt > 0 || i + 2 < r))) return false;
    }
    return true;
}

kiln_status kiln__pass_fuse_matmul_add(kiln_network *net, const kiln__shape_points *pts, int32_t *fused) {
    *fused = 0;
    kiln__shape_facts facts;
    KILN__TRY(kiln__shape_facts_eval(net, pts, &facts));
    int32_t *consumers;
    kiln_status st = kiln__graph_consumers(net, &consumers);
    if (st != KILN_OK) {
        kiln__shape_facts_free(net, &facts);
        return st;
    }
    for (int64_t i = 0; st == KILN_OK && i < net->nb_layers; i++) {
        kiln_layer *mm = net->layers[i];
        if (mm->type != KILN_LAYER_MATMUL || (mm->nb_inputs > 2 && mm->inputs[2]) || mm->p.matmul.act.kind >= 0 ||
            mm->inputs[0]->dims.nb_dims < 2 || mm->inputs[1]->dims.nb_dims < 2)
            continue;
        kiln_tensor *y = mm->outputs[0];
        if (y->dtype != KILN_FLOAT32 && y->dtype != KILN_FLOAT16) continue;
        kiln_layer *add = kiln__graph_sole_consumer(net, consumers, y);
        if (!add || add->type != KILN_LAYER_ELEMENTWISE || add->p.ew.op != KILN_EW_ADD || add->nb_inputs != 2)
            continue;
        kiln_tensor *t = add->inputs[0] == y ? add->inputs[1] : add->inputs[0];
        /* Where build-time dims leave it open (the batch and sequence dims of an exported
         * transformer), the rows are checked at every shape the profiles bound. */
        if (!t || t == y || t->dtype != y->dtype || add->outputs[0]->dtype != y->dtype ||
            !(rows_of(&t->dims, &y->dims) || kiln__shape_facts_all(&facts, t, y, rows_of)))
            continue;
        st = kiln__graph_set_input(mm, 2, t);
        if (st != KILN_OK) break;
        mm->p.matmul.beta = 1.0f;
        kiln__graph_absorb(mm, add);
        ++*fused;
    }
    kiln__free(&net->alloc, consumers);
    kiln__shape_facts_free(net, &facts);
    KILN__TRY(st);
    return *fused ? kiln__graph_tidy(net) : KILN_OK;
}
