/* kiln__pass_fuse_shuffles: a reshape and a transpose next to each other become one shuffle
 * layer, with static or run-time reshape dims, and give what the evaluator gives for the two
 * layers; a tensor with a second reader keeps both. */
#include "pass_harness.h"

static kiln_tensor *shuffle(kiln_tensor *x, const int32_t *first, const kiln_dims *reshape, kiln_tensor *shape,
                            const int32_t *second) {
    kiln_shuffle_desc d = {.struct_size = sizeof d};
    if (first) {
        d.has_first_transpose = 1;
        memcpy(d.first_transpose, first, (size_t)x->dims.nb_dims * sizeof *first);
    }
    if (reshape) {
        d.has_reshape = 1;
        d.reshape = *reshape;
    }
    if (second) {
        d.has_second_transpose = 1;
        memcpy(d.second_transpose, second, KILN_MAX_DIMS * sizeof *second);
    }
    kiln_layer *l = NULL;
    KT_OK(kiln_network_add_shuffle(g_net, x, &d, shape, &l));
    return out0(l);
}

static kiln_tensor *shape_constant(const int64_t *dims, int64_t n) {
    kiln_layer *l = NULL;
    KT_OK(kiln_network_add_constant(g_net, &(kiln_dims){1, {n}}, (kiln_weights){KILN_INT64, dims, n}, &l));
    return out0(l);
}

static const int32_t heads_perm[KILN_MAX_DIMS] = {0, 2, 1, 3};

/* Splitting heads: [2, 6, 8] -> [2, 6, 2, 4] -> [2, 2, 6, 4]. */
static void split_heads(kiln_dtype dt, bool runtime_dims) {
    begin(dt);
    kiln_tensor *x = input("x", &(kiln_dims){3, {2, 6, 8}});
    static const int64_t dims[] = {0, 0, 2, 4};
    kiln_tensor *r = runtime_dims ? shuffle(x, NULL, NULL, shape_constant(dims, 4), NULL)
                                  : shuffle(x, NULL, &(kiln_dims){4, {2, 6, 2, 4}}, NULL, NULL);
    finish(runtime_dims ? "split heads, run-time dims" : "split heads", shuffle(r, heads_perm, NULL, NULL, NULL), 1,
           "second_perm=[0,2,1,3]");
}

/* Joining heads: [2, 2, 6, 4] -> [2, 6, 2, 4] -> [2, 6, 8], the reshape's 0s copying the
 * transposed tensor's dims. */
static void join_heads(kiln_dtype dt, bool runtime_dims) {
    begin(dt);
    kiln_tensor *x = input("x", &(kiln_dims){4, {2, 2, 6, 4}});
    kiln_tensor *t = shuffle(x, heads_perm, NULL, NULL, NULL);
    static const int64_t dims[] = {0, 0, -1};
    kiln_tensor *y = runtime_dims ? shuffle(t, NULL, NULL, shape_constant(dims, 3), NULL)
                                  : shuffle(t, NULL, &(kiln_dims){3, {0, 0, -1}}, NULL, NULL);
    KT_CHECK(runtime_dims || (y->dims.nb_dims == 3 && y->dims.d[1] == 6 && y->dims.d[2] == 8));
    finish(runtime_dims ? "join heads, run-time dims" : "join heads", y, 1, "first_perm=[0,2,1,3]");
}

/* The reshaped tensor also feeds an add: both shuffles stay. */
static void shared(void) {
    begin(KILN_FLOAT32);
    kiln_tensor *x = input("x", &(kiln_dims){3, {2, 9, 4}});
    kiln_tensor *r = shuffle(x, NULL, &(kiln_dims){4, {2, 3, 3, 4}}, NULL, NULL);
    finish("shared reshape", ew(shuffle(r, heads_perm, NULL, NULL, NULL), KILN_EW_ADD, r), 3, NULL);
}

/* Transpose, reshape, transpose: the first two merge; the result already transposes first, so
 * the last stays. */
static void chain(void) {
    begin(KILN_FLOAT32);
    kiln_tensor *x = input("x", &(kiln_dims){4, {2, 2, 6, 4}});
    kiln_tensor *j = shuffle(shuffle(x, heads_perm, NULL, NULL, NULL), NULL, &(kiln_dims){3, {2, 6, 8}}, NULL, NULL);
    static const int32_t swap[KILN_MAX_DIMS] = {0, 2, 1};
    finish("transpose, reshape, transpose", shuffle(j, swap, NULL, NULL, NULL), 2, "reshape=[2,6,8]");
}

int main(void) {
    kt_seed();
    for (int dt = 0; dt < 2; dt++) {
        kiln_dtype t = dt ? KILN_FLOAT16 : KILN_FLOAT32;
        split_heads(t, false);
        split_heads(t, true);
        join_heads(t, false);
        join_heads(t, true);
    }
    shared();
    chain();
    return kt_summary("test_passes_shuffle");
}
