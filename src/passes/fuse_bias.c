/* MatMul followed by the Add of a constant bias along the last dim (every exported Linear layer
 * whose input has more than two dims: BERT, ViT) becomes the matmul's c input with beta 1; a
 * Mul or Div by a scalar constant right after a matmul without c (attention's scores / sqrt(d))
 * or on an input read by the matmul alone (transformers' scaled_dot_product_attention export
 * scales q and k^T by sqrt(1/sqrt(d)) each) becomes its alpha. */
#include "graph.h"
#include "passes.h"

static bool float_dtype(kiln_dtype t) { return t == KILN_FLOAT32 || t == KILN_FLOAT16; }

/* Whether adding `bias` to a tensor of dims `out` is the same as the matmul's broadcast of c:
 * bias has at most out's rank, every dim but the last is 1, and the last is 1 or out's last
 * (known). Then the Add's result has exactly out's dims. */
static bool bias_along_last_dim(const kiln_dims *b, const kiln_dims *out) {
    if (b->nb_dims > out->nb_dims || kiln__dims_volume(b) < 1) return false;
    if (b->nb_dims == 0) return true;
    for (int32_t i = 0; i + 1 < b->nb_dims; i++)
        if (b->d[i] != 1) return false;
    int64_t last = b->d[b->nb_dims - 1], out_last = out->d[out->nb_dims - 1];
    return last == 1 || (out_last >= 0 && last == out_last);
}

/* Whether `scaling` multiplies or divides one operand by a scalar constant without changing its
 * dims or dtype; *x gets that operand and *factor what the result is x times. */
static bool scalar_scaling(const kiln_layer *scaling, kiln_tensor **x, double *factor) {
    if (!scaling || scaling->type != KILN_LAYER_ELEMENTWISE || scaling->nb_inputs != 2) return false;
    kiln_tensor *a = scaling->inputs[0], *b = scaling->inputs[1], *y = scaling->outputs[0];
    double s;
    if (!a || !b || !float_dtype(y->dtype)) return false;
    if (scaling->p.ew.op == KILN_EW_MUL && a->dtype == y->dtype && kiln__graph_scalar(b, a->dims.nb_dims, &s)) {
        *x = a;
    } else if (scaling->p.ew.op == KILN_EW_MUL && b->dtype == y->dtype && kiln__graph_scalar(a, b->dims.nb_dims, &s)) {
        *x = b;
    } else if (scaling->p.ew.op == KILN_EW_DIV && a->dtype == y->dtype && kiln__graph_scalar(b, a->dims.nb_dims, &s) &&
               s != 0) {
        *x = a;
        s = 1.0 / s;
    } else {
        return false;
    }
    *factor = s;
    return true;
}

kiln_status kiln__pass_fuse_matmul_bias(kiln_network *net, const kiln__shape_points *pts, int32_t *fused) {
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
        if (mm->type != KILN_LAYER_MATMUL || !float_dtype(mm->outputs[0]->dtype)) continue;
        /* alpha scales op(a) op(b) alone, so this holds with c and an activation too. */
        for (int32_t k = 0; k < 2; k++) {
            kiln_tensor *in = mm->inputs[k], *x;
            double f;
            if (kiln__graph_private(consumers, in) && scalar_scaling(in->producer, &x, &f)) {
                mm->inputs[k] = x; /* the scaling layer is left without readers: tidying drops it */
                consumers[x->index]++;
                consumers[in->index]--;
                mm->p.matmul.alpha = (float)(mm->p.matmul.alpha * f);
                ++*fused;
            }
        }
        if ((mm->nb_inputs > 2 && mm->inputs[2]) || mm->p.matmul.act.kind >= 0) continue;
        kiln_tensor *y = mm->outputs[0];
        kiln_layer *add = kiln__graph_sole_consumer(net, consumers, y);
        double s;
        if (add && add->type == KILN_LAYER_ELEMENTWISE && add->nb_inputs == 2 && add->outputs[0]->dtype == y->dtype &&
            ((add->p.ew.op == KILN_EW_MUL && (add->inputs[0] == y || add->inputs[1] == y) &&
              kiln__graph_scalar(add->inputs[add->inputs[0] == y], y->dims.nb_dims, &s)) ||
             (add->p.ew.op == KILN_EW_DIV && add->inputs[0] == y &&
              kiln__graph_scalar(add->inputs[1], y->dims.nb_dims, &s) && s != 0))) {
            mm->p.matmul.alpha = (float)(add->p.ew.op == KILN_EW_MUL ? mm->p.matmul.alpha * s : mm->p.matmul.alpha / s);
            kiln__graph_absorb(mm, add);
            ++*fused;
            /* The scaled result may itself get a bias: look again at the same matmul. */
            y = mm->outputs[0];
            add = kiln__graph_sole_consumer(net, consumers, y);
        }
        if (!add || add->type != KILN_LAYER_ELEMENTWISE || add->p.ew.op != KILN_EW_ADD || add->nb_inputs != 2)
            continue;
        kiln_tensor *bias = add->inputs[0] == y ? add->inputs[1] : add->inputs[0];
        if (!bias || bias == y || !bias->producer || bias->producer->type != KILN_LAYER_CONSTANT ||
            bias->dtype != y->dtype || add->outputs[0]->dtype != y->dtype ||
            !(bias_along_last_dim(&bias->dims, &y->dims) ||
              kiln__shape_facts_all(&facts, bias, y, bias_along_last_dim)))
            continue;
        st = kiln__graph_set_input(mm, 2, bias);
        if (st != KILN_OK) break;
        mm->p.matmul.beta = 1.0f;
        kiln__graph_absorb(mm, add);
        /* The bias keeps its count: it moved from the Add to the matmul. */
        ++*fused;
    }
    kiln__free(&net->alloc, consumers);
    kiln__shape_facts_free(net, &facts);
    KILN__TRY(st);
    return *fused ? kiln__graph_tidy(net) : KILN_OK;
}
