/* kiln__pass_fuse_matmul_add: the Add of a non-constant tensor with rows as wide as a matmul's
 * result (attention's mask, a residual block) becomes the matmul's c. The engine must have the
 * expected compute layers and give what the evaluator gives for the unfused network; an Add
 * that is not such a row add (a column, a rank-growing tensor, a second reader of the matmul's
 * result, a 1-D operand) keeps its layer. */
#include "kiln.h"
#include "pass_harness.h"

static kiln_tensor *matmul_ops(kiln_tensor *a, kiln_tensor *b, kiln_matrix_op op_b) {
    kiln_layer *l = NULL;
    KT_OK(kiln_network_add_matmul(g_net, a, KILN_MATRIX_NONE, b, op_b, &l));
    return out0(l);
}

/* Scores of attention with 3 heads: q [2, 3, 5, 8] times k [2, 3, 5, 8] transposed, scaled. */
static kiln_tensor *scores(void) {
    kiln_tensor *q = input("q", &(kiln_dims){4, {2, 3, 5, 8}}), *k = input("k", &(kiln_dims){4, {2, 3, 5, 8}});
    return ew(matmul_ops(q, k, KILN_MATRIX_TRANSPOSE), KILN_EW_DIV, cst(2.8284271f));
}

static void positive(kiln_dtype dt) {
    begin(dt);
    kiln_tensor *s = scores();
    finish("attention mask input", ew(s, KILN_EW_ADD, input("mask", &(kiln_dims){4, {2, 1, 1, 5}})), 1, "c=1");
    /* The mask computed as BERT does ((1 - mask) times a large negative): the Mul stays, the Add
     * goes. The factor is small here because the inputs are random in [-1, 1], not 0/1: with
     * float16, -100 times them rounds to steps of 1/16, and where the sum then nearly cancels,
     * the unfused reference differs from the fused sum by that much (seed 19065390721: -0.1384
     * against -0.1328). */
    begin(dt);
    s = scores();
    kiln_tensor *m = ew(input("mask", &(kiln_dims){4, {2, 1, 1, 5}}), KILN_EW_MUL, cst(-2.0f));
    finish("attention mask computed", ew(m, KILN_EW_ADD, s), 2, "beta=1 c=1");
    /* A mask per head and query: [3, 5, 5] blocks. */
    begin(dt);
    s = scores();
    finish("attention bias blocks", ew(s, KILN_EW_ADD, input("bias", &(kiln_dims){3, {3, 5, 5}})), 1, "c=1");
    /* A residual of the whole result, then an activation, which joins the float32 epilogue too. */
    begin(dt);
    kiln_tensor *x = input("x", &(kiln_dims){3, {2, 5, 16}});
    kiln_tensor *y = matmul(x, cst_dims(&(kiln_dims){2, {16, 8}}, -0.3f, 0.3f));
    finish("residual then relu", act(ew(y, KILN_EW_ADD, input("r", &(kiln_dims){3, {2, 5, 8}})), KILN_ACT_RELU, 0, 0),
           dt == KILN_FLOAT32 ? 1 : 2, "c=1");
}

static void negative(void) {
    /* A column [5, 1] is not a row add. */
    begin(KILN_FLOAT32);
    kiln_tensor *s = scores();
    finish("column", ew(s, KILN_EW_ADD, input("col", &(kiln_dims){2, {5, 1}})), 2, NULL);
    /* A rank-5 tensor grows the result. */
    begin(KILN_FLOAT32);
    s = scores();
    finish("rank-growing", ew(s, KILN_EW_ADD, input("big", &(kiln_dims){5, {1, 1, 1, 1, 5}})), 2, NULL);
    /* A mask that repeats the scores over a batch dim of 1 grows them too. */
    begin(KILN_FLOAT32);
    kiln_tensor *q = input("q", &(kiln_dims){4, {1, 3, 5, 8}}), *k = input("k", &(kiln_dims){4, {1, 3, 5, 8}});
    s = matmul_ops(q, k, KILN_MATRIX_TRANSPOSE);
    finish("batch-growing", ew(s, KILN_EW_ADD, input("mask", &(kiln_dims){4, {2, 1, 1, 5}})), 2, NULL);
    /* The scores are read twice (the scaling still becomes alpha). */
    begin(KILN_FLOAT32);
    s = scores();
    kiln_tensor *sum = ew(s, KILN_EW_ADD, input("mask", &(kiln_dims){4, {2, 1, 1, 5}}));
    finish("second reader", ew(sum, KILN_EW_MUL, s), 3, NULL);
    /* A 1-D b: the result has no rows of n. */
    begin(KILN_FLOAT32);
    kiln_tensor *x = input("x", &(kiln_dims){3, {2, 5, 16}});
    kiln_tensor *y = matmul(x, cst_dims(&(kiln_dims){1, {16}}, -0.3f, 0.3f));
    finish("vector b", ew(y, KILN_EW_ADD, input("r", &(kiln_dims){2, {2, 5}})), 2, NULL);
}

int main(void) {
    kt_seed();
    positive(KILN_FLOAT32);
    positive(KILN_FLOAT16);
    negative();
    return kt_summary("test_passes_matmul_add");
}
