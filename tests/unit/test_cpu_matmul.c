/* Matmul: the CPU kernel against a naive reference on random inputs (batch broadcasting, 1-D
 * operands, transposes, Gemm alpha/beta/C broadcasting, fused activation, float and integer
 * dtypes, serial and threaded), shape inference and its errors, the network API (matmul, fully
 * connected) and an end-to-end engine run. */
#include "cpu/gemm.h"
#include "cpu_kernel_test.h"

/* Named so the linker pulls these kernels out of the static library (the registry's references
 * are weak); the fully connected layer runs a shuffle before its matmul. */
kiln_status kiln__cpu_matmul(const kiln_layer *, const kiln__value *, kiln__value *, kiln__cpu_ctx *);
kiln_status kiln__cpu_shuffle(const kiln_layer *, const kiln__value *, kiln__value *, kiln__cpu_ctx *);

static bool is_int(kiln_dtype t) { return t == KILN_INT32 || t == KILN_INT64 || t == KILN_UINT32 || t == KILN_UINT64; }

typedef struct mm_case {
    kiln_dims a, b, c;
    int has_c, op_a, op_b, act;
    float alpha, beta;
} mm_case;

static kiln_layer make_layer(const mm_case *mc) {
    kiln_layer l;
    memset(&l, 0, sizeof l);
    l.type = KILN_LAYER_MATMUL;
    l.name = "mm_t";
    l.nb_inputs = mc->has_c ? 3 : 2;
    l.nb_outputs = 1;
    l.p.matmul.op_a = mc->op_a;
    l.p.matmul.op_b = mc->op_b;
    l.p.matmul.alpha = mc->alpha;
    l.p.matmul.beta = mc->beta;
    l.p.matmul.act.kind = mc->act;
    l.p.matmul.act.alpha = 0.1f;
    return l;
}

/* numpy.matmul by the book: promote 1-D operands, broadcast the batch, strip the promoted dims.
 * Products of integers wrap as in numpy (64-bit here, then truncated by ck_store()). */
static kiln_dims reference(const mm_case *mc, kiln_dtype t, const double *a, const double *b, const double *c,
                           double *y) {
    kiln_dims A = mc->a, B = mc->b;
    if (A.nb_dims == 1) A = (kiln_dims){2, {1, mc->a.d[0]}};
    if (B.nb_dims == 1) B = (kiln_dims){2, {mc->b.d[0], 1}};
    int ra = A.nb_dims, rb = B.nb_dims, nb = KILN__MAX(ra, rb) - 2;
    int64_t M = mc->op_a ? A.d[ra - 1] : A.d[ra - 2], K = mc->op_a ? A.d[ra - 2] : A.d[ra - 1];
    int64_t N = mc->op_b ? B.d[rb - 2] : B.d[rb - 1];
    kiln_dims o = {0};
    for (int i = 0; i < nb; i++) {
        int ia = i - (nb - (ra - 2)), ib = i - (nb - (rb - 2));
        int64_t da = ia >= 0 ? A.d[ia] : 1, db = ib >= 0 ? B.d[ib] : 1;
        o.d[o.nb_dims++] = da == 1 ? db : da;
    }
    int64_t batches = 1;
    for (int i = 0; i < nb; i++) batches *= o.d[i];
    if (mc->a.nb_dims > 1) o.d[o.nb_dims++] = M;
    if (mc->b.nb_dims > 1) o.d[o.nb_dims++] = N;
    for (int64_t bt = 0; bt < batches; bt++) {
        int64_t rem = bt, aoff = 0, boff = 0, sa = M * K, sb = K * N;
        for (int i = nb - 1; i >= 0; i--) {
            int64_t idx = rem % o.d[i];
            rem /= o.d[i];
            int ia = i - (nb - (ra - 2)), ib = i - (nb - (rb - 2));
            int64_t da = ia >= 0 ? A.d[ia] : 1, db = ib >= 0 ? B.d[ib] : 1;
            aoff += (da == 1 ? 0 : idx) * sa;
            boff += (db == 1 ? 0 : idx) * sb;
            sa *= da;
            sb *= db;
        }
        for (int64_t m = 0; m < M; m++)
            for (int64_t n = 0; n < N; n++) {
                double acc = 0;
                uint64_t iacc = 0;
                for (int64_t k = 0; k < K; k++) {
                    double av = a[aoff + (mc->op_a ? k * M + m : m * K + k)];
                    double bv = b[boff + (mc->op_b ? n * K + k : k * N + n)];
                    acc += av * bv;
                    iacc += (uint64_t)(int64_t)av * (uint64_t)(int64_t)bv;
                }
                y[(bt * M + m) * N + n] = is_int(t) ? (double)(int64_t)iacc : acc;
            }
    }
    int64_t ny = kiln__dims_volume(&o);
    for (int64_t f = 0; f < ny; f++) {
        double v = mc->alpha * y[f];
        if (mc->has_c && mc->beta != 0) {
            int64_t rem = f, ci = 0, stride = 1;
            for (int i = o.nb_dims - 1; i >= 0; i--) {
                int64_t idx = rem % o.d[i];
                rem /= o.d[i];
                int cd = i - (o.nb_dims - mc->c.nb_dims);
                if (cd < 0) continue;
                ci += (mc->c.d[cd] == 1 ? 0 : idx) * stride;
                stride *= mc->c.d[cd];
            }
            v += mc->beta * c[ci];
        }
        if (mc->act == KILN_ACT_RELU) v = v > 0 ? v : 0;
        if (mc->act == KILN_ACT_SIGMOID) v = 1 / (1 + exp(-v));
        y[f] = v;
    }
    return o;
}

static void *rand_data(kiln_dtype t, const kiln_dims *d, double **ref) {
    int64_t n = kiln__dims_volume(d);
    void *p = malloc((size_t)KILN__MAX(n, 1) * ck_esize(t));
    *ref = malloc(sizeof(double) * (size_t)KILN__MAX(n, 1));
    for (int64_t i = 0; i < n; i++) {
        double v = is_int(t) ? (double)kt_randi(t == KILN_UINT32 || t == KILN_UINT64 ? 0 : -9, 9) : kt_randf(-1, 1);
        ck_store(p, t, i, v);
        (*ref)[i] = ck_load(p, t, i);
    }
    return p;
}

static void run_case(const char *what, const mm_case *mc, kiln_dtype t, kiln__pool *pool) {
    char label[160];
    snprintf(label, sizeof label, "%s [%s, %s]", what, kiln_dtype_name(t), pool ? "threads" : "serial");
    double *ra, *rb, *rc = NULL;
    kiln__value in[3];
    memset(in, 0, sizeof in);
    in[0] = (kiln__value){t, mc->a, rand_data(t, &mc->a, &ra), 0, KILN__LAYOUT_PLAIN};
    in[1] = (kiln__value){t, mc->b, rand_data(t, &mc->b, &rb), 0, KILN__LAYOUT_PLAIN};
    if (mc->has_c) in[2] = (kiln__value){t, mc->c, rand_data(t, &mc->c, &rc), 0, KILN__LAYOUT_PLAIN};
    kiln_layer l = make_layer(mc);
    kiln__value o[1];
    memset(o, 0, sizeof o);
    KT_OK(kiln__layer_ops_for(KILN_LAYER_MATMUL)->infer(&l, in, o));
    int64_t cap = 1;
    for (int i = 0; i < mc->a.nb_dims; i++) cap *= mc->a.d[i] + 1;
    for (int i = 0; i < mc->b.nb_dims; i++) cap *= mc->b.d[i] + 1;
    double *ry = malloc(sizeof(double) * (size_t)cap);
    kiln_dims want_dims = reference(mc, t, ra, rb, rc, ry);
    KT_CHECK(o[0].dtype == t && kiln__dims_equal(&o[0].dims, &want_dims));
    if (kiln__dims_equal(&o[0].dims, &want_dims)) {
        int64_t ny = kiln__dims_volume(&want_dims);
        o[0].data = malloc((size_t)KILN__MAX(ny, 1) * ck_esize(t));
        kiln__cpu_ctx ctx = {.pool = pool, .alloc = &g_alloc};
        KT_OK(kiln__cpu_kernel_for(KILN_LAYER_MATMUL)(&l, in, o, &ctx));
        if (is_int(t)) {
            /* Exact: compare after truncating the reference to the dtype. */
            void *want = malloc((size_t)KILN__MAX(ny, 1) * ck_esize(t));
            for (int64_t i = 0; i < ny; i++) {
                if (t == KILN_INT32 || t == KILN_UINT32)
                    ((uint32_t *)want)[i] = (uint32_t)(uint64_t)(int64_t)ry[i];
                else
                    ((uint64_t *)want)[i] = (uint64_t)(int64_t)ry[i];
            }
            KT_CHECK(memcmp(want, o[0].data, (size_t)ny * ck_esize(t)) == 0);
            free(want);
        } else {
            float *got = malloc(sizeof(float) * (size_t)KILN__MAX(ny, 1));
            float *want = malloc(sizeof(float) * (size_t)KILN__MAX(ny, 1));
            for (int64_t i = 0; i < ny; i++) {
                got[i] = (float)ck_load(o[0].data, t, i);
                want[i] = (float)ry[i];
            }
            float tol = t == KILN_FLOAT64 ? 1e-6f : t == KILN_FLOAT32 ? 1e-4f : t == KILN_FLOAT16 ? 1e-2f : 4e-2f;
            kt_close(label, got, want, ny, tol, tol);
            free(got);
            free(want);
        }
        free(o[0].data);
    }
    for (int i = 0; i < 3; i++) free(in[i].data);
    free(ra);
    free(rb);
    free(rc);
    free(ry);
}

static void run_all(const char *what, const mm_case *mc) {
    static const kiln_dtype types[] = {KILN_FLOAT32, KILN_FLOAT16, KILN_BFLOAT16, KILN_FLOAT64,
                                       KILN_INT32,   KILN_INT64,   KILN_UINT32,   KILN_UINT64};
    for (size_t i = 0; i < KILN__ARRAY_LEN(types); i++)
        if (!is_int(types[i]) || (mc->act < 0 && mc->alpha == truncf(mc->alpha) && mc->beta == truncf(mc->beta)))
            run_case(what, mc, types[i], NULL);
    run_case(what, mc, KILN_FLOAT32, g_pool);
}

static mm_case mm(kiln_dims a, kiln_dims b) {
    mm_case mc = {.a = a, .b = b, .act = -1, .alpha = 1, .beta = 1};
    return mc;
}

static void test_kernels(void) {
    mm_case mc = mm((kiln_dims){2, {5, 7}}, (kiln_dims){2, {7, 3}});
    run_all("2-D", &mc);
    mc = mm((kiln_dims){3, {4, 5, 7}}, (kiln_dims){3, {4, 7, 6}});
    run_all("batched", &mc);
    mc = mm((kiln_dims){4, {2, 1, 5, 7}}, (kiln_dims){3, {3, 7, 6}});
    run_all("batch broadcast both ways", &mc);
    mc = mm((kiln_dims){3, {6, 5, 7}}, (kiln_dims){2, {7, 4}});
    run_all("3-D x 2-D (folded)", &mc);
    mc = mm((kiln_dims){2, {5, 7}}, (kiln_dims){3, {6, 7, 4}});
    run_all("2-D x 3-D", &mc);
    mc = mm((kiln_dims){1, {7}}, (kiln_dims){2, {7, 4}});
    run_all("1-D x 2-D", &mc);
    mc = mm((kiln_dims){2, {3, 7}}, (kiln_dims){1, {7}});
    run_all("2-D x 1-D", &mc);
    mc = mm((kiln_dims){1, {9}}, (kiln_dims){1, {9}});
    run_all("1-D x 1-D", &mc);
    mc = mm((kiln_dims){1, {5}}, (kiln_dims){3, {3, 5, 2}});
    run_all("1-D x 3-D", &mc);
    mc = mm((kiln_dims){4, {2, 3, 4, 5}}, (kiln_dims){1, {5}});
    run_all("4-D x 1-D", &mc);
    for (int op = 0; op < 4; op++) {
        mc = mm((kiln_dims){3, {3, op & 1 ? 7 : 5, op & 1 ? 5 : 7}},
                (kiln_dims){3, {1, op & 2 ? 6 : 7, op & 2 ? 7 : 6}});
        mc.op_a = op & 1;
        mc.op_b = (op >> 1) & 1;
        run_all("transposes, batched", &mc);
        mc.a = (kiln_dims){4, {2, 3, op & 1 ? 7 : 5, op & 1 ? 5 : 7}};
        mc.b = (kiln_dims){2, {op & 2 ? 6 : 7, op & 2 ? 7 : 6}};
        run_all("transposes, b without batch", &mc);
    }
    /* Gemm: alpha, beta and C broadcast onto [M, N]. */
    static const kiln_dims cs[] = {{0, {0}}, {1, {1}}, {1, {6}}, {2, {5, 1}}, {2, {1, 6}}, {2, {5, 6}}};
    for (size_t i = 0; i < KILN__ARRAY_LEN(cs); i++) {
        mc = mm((kiln_dims){2, {7, 5}}, (kiln_dims){2, {6, 7}});
        mc.op_a = mc.op_b = 1;
        mc.has_c = 1;
        mc.c = cs[i];
        mc.alpha = 2;
        mc.beta = 3;
        run_all("gemm c broadcast", &mc);
        mc.beta = 0;
        run_all("gemm beta 0", &mc);
    }
    mc = mm((kiln_dims){3, {4, 5, 7}}, (kiln_dims){3, {4, 7, 6}});
    mc.has_c = 1;
    mc.c = (kiln_dims){3, {4, 1, 6}};
    mc.alpha = 0.5f;
    mc.beta = -1;
    run_all("batched with c", &mc);
    mc.act = KILN_ACT_RELU;
    run_all("batched with c, relu", &mc);
    mc.act = KILN_ACT_SIGMOID;
    mc.c = (kiln_dims){1, {6}};
    run_all("batched with bias, sigmoid", &mc);
    /* c with beta 1 goes through the GEMM's epilogue where its rows are n wide (one row for all,
     * or [m, n] blocks, broadcast over batch dims); other c shapes are copied into y first. */
    static const struct {
        kiln_dims a, b, c;
    } ep[] = {
        {{3, {2, 5, 7}}, {2, {7, 6}}, {1, {6}}},                    /* folded, a bias row */
        {{3, {2, 5, 7}}, {2, {7, 6}}, {3, {1, 1, 6}}},              /* folded, the row with batch dims */
        {{3, {2, 5, 7}}, {2, {7, 6}}, {3, {2, 5, 6}}},              /* folded, a residual */
        {{3, {2, 5, 7}}, {2, {7, 6}}, {2, {5, 6}}},                 /* folded, one block for every batch */
        {{3, {2, 5, 7}}, {2, {7, 6}}, {3, {2, 1, 6}}},              /* folded, a row per batch */
        {{4, {2, 3, 5, 7}}, {4, {2, 3, 7, 6}}, {4, {2, 1, 1, 6}}}, /* attention's mask */
        {{4, {2, 3, 5, 7}}, {4, {1, 3, 7, 6}}, {3, {3, 5, 6}}},    /* a block per head */
        {{4, {2, 3, 5, 7}}, {3, {3, 7, 6}}, {4, {2, 3, 5, 6}}},    /* whole, not folded */
        {{3, {2, 5, 7}}, {3, {2, 7, 6}}, {2, {5, 1}}},              /* a column: copied */
        {{2, {5, 7}}, {2, {7, 1}}, {1, {1}}},                       /* n = 1 */
    };
    for (size_t i = 0; i < KILN__ARRAY_LEN(ep); i++)
        for (int v = 0; v < 3; v++) {
            mc = mm(ep[i].a, ep[i].b);
            mc.has_c = 1;
            mc.c = ep[i].c;
            mc.alpha = v == 1 ? 0.125f : 1.0f;
            mc.beta = v == 2 ? 2.0f : 1.0f;
            mc.act = v == 1 ? KILN_ACT_RELU : -1;
            run_all("c through the epilogue", &mc);
        }
    mc = mm((kiln_dims){2, {4, 0}}, (kiln_dims){2, {0, 3}});
    mc.has_c = 1;
    mc.c = (kiln_dims){1, {3}};
    run_all("empty inner dim", &mc);
    for (int it = 0; it < 30; it++) {
        int ra = (int)kt_randi(1, 4), rb = (int)kt_randi(1, 4);
        int64_t M = kt_randi(1, 9), K = kt_randi(1, 9), N = kt_randi(1, 9);
        mc = mm((kiln_dims){.nb_dims = ra}, (kiln_dims){.nb_dims = rb});
        mc.op_a = ra > 1 && kt_randi(0, 1);
        mc.op_b = rb > 1 && kt_randi(0, 1);
        for (int i = 0; i < ra - 2; i++) mc.a.d[i] = kt_randi(1, 3);
        for (int i = 0; i < rb - 2; i++) mc.b.d[i] = kt_randi(1, 3);
        /* Make the batch dims broadcastable: where both are > 1, use a's. */
        for (int i = 0; i < KILN__MIN(ra, rb) - 2; i++)
            if (mc.a.d[ra - 3 - i] > 1 && mc.b.d[rb - 3 - i] > 1) mc.b.d[rb - 3 - i] = mc.a.d[ra - 3 - i];
        if (ra == 1) mc.a.d[0] = K;
        else {
            mc.a.d[ra - 2] = mc.op_a ? K : M;
            mc.a.d[ra - 1] = mc.op_a ? M : K;
        }
        if (rb == 1) mc.b.d[0] = K;
        else {
            mc.b.d[rb - 2] = mc.op_b ? N : K;
            mc.b.d[rb - 1] = mc.op_b ? K : N;
        }
        run_case("random matmul", &mc, KILN_FLOAT32, it % 2 ? g_pool : NULL);
        run_case("random matmul", &mc, KILN_INT64, NULL);
    }
    /* Integer products wrap as in numpy. */
    mc = mm((kiln_dims){2, {1, 2}}, (kiln_dims){2, {2, 1}});
    int32_t a32[2] = {65536, 3}, b32[2] = {65536, 5}, y32[1];
    kiln__value in[2] = {{KILN_INT32, mc.a, a32, 8, KILN__LAYOUT_PLAIN}, {KILN_INT32, mc.b, b32, 8, KILN__LAYOUT_PLAIN}};
    kiln__value out[1] = {{KILN_INT32, {2, {1, 1}}, y32, 4, KILN__LAYOUT_PLAIN}};
    kiln_layer l = make_layer(&mc);
    kiln__cpu_ctx ctx = {.alloc = &g_alloc};
    KT_OK(kiln__cpu_matmul(&l, in, out, &ctx));
    KT_CHECK(y32[0] == 15);
}

/* y = a op(b) + act by the book, float32 in, double sums. */
static void ref_f32(const float *a, const float *b, int64_t m, int64_t k, int64_t n, bool op_b, int act, float *y) {
    for (int64_t i = 0; i < m; i++)
        for (int64_t j = 0; j < n; j++) {
            double s = 0;
            for (int64_t q = 0; q < k; q++) s += (double)a[i * k + q] * (op_b ? b[j * k + q] : b[q * n + j]);
            y[i * n + j] = act >= 0 ? kiln__act_f32(act, 0.1f, 0.0f, (float)s) : (float)s;
        }
}

/* One run of a matmul whose b comes from a constant layer, with the context's cache slot. */
static void run_const_b(const char *what, int64_t batch, int64_t m, int64_t k, int64_t n, bool op_b, int act,
                        float *b, void **slot, kiln__pool *pool, const float *b_ref) {
    kiln_layer cl;
    memset(&cl, 0, sizeof cl);
    cl.type = KILN_LAYER_CONSTANT;
    kiln_tensor bt;
    memset(&bt, 0, sizeof bt);
    bt.producer = &cl;
    kiln_tensor *ins[2] = {NULL, &bt};
    mm_case mc = mm((kiln_dims){3, {batch, m, k}}, op_b ? (kiln_dims){2, {n, k}} : (kiln_dims){2, {k, n}});
    mc.op_b = op_b;
    mc.act = act;
    kiln_layer l = make_layer(&mc);
    l.inputs = ins;
    float *a = malloc((size_t)(batch * m * k) * sizeof *a), *y = malloc((size_t)(batch * m * n) * sizeof *y);
    float *want = malloc((size_t)(batch * m * n) * sizeof *want);
    kt_fill(a, batch * m * k, -1, 1);
    ref_f32(a, b_ref, batch * m, k, n, op_b, act, want);
    kiln__value in[2] = {{KILN_FLOAT32, mc.a, a, 0, KILN__LAYOUT_PLAIN}, {KILN_FLOAT32, mc.b, b, 0, KILN__LAYOUT_PLAIN}};
    kiln__value out[1] = {{KILN_FLOAT32, {3, {batch, m, n}}, y, 0, KILN__LAYOUT_PLAIN}};
    kiln__cpu_ctx ctx = {.pool = pool, .alloc = &g_alloc, .cache = slot};
    KT_OK(kiln__cpu_matmul(&l, in, out, &ctx));
    char label[200];
    snprintf(label, sizeof label, "constant b (%s): %lldx%lldx%lldx%lld op_b=%d act=%d %s", what, (long long)batch,
             (long long)m, (long long)k, (long long)n, op_b, act, pool ? "threads" : "serial");
    kt_close(label, y, want, batch * m * n, 1e-4f, 1e-4f * (float)k);
    free(a);
    free(y);
    free(want);
}

/* A constant b is packed on the first run and kept in the cache slot: later runs read the
 * packed copy (b's memory overwritten after the first run must not matter), a different
 * constant, shape or kernel level repacks. */
static void test_constant_b(void) {
    static const int acts[] = {-1, KILN_ACT_GELU_ERF, KILN_ACT_RELU, KILN_ACT_ELU};
    for (int it = 0; it < 12; it++) {
        int64_t batch = kt_randi(1, 3), m = kt_randi(1, 70), k = kt_randi(1, 300), n = kt_randi(1, 1200);
        if (it == 0) m = 128, k = 96, n = 1100; /* several tiles across: A packed once for them */
        bool op_b = it % 2;
        int act = acts[it % 4];
        kiln__pool *pool = it % 3 ? g_pool : NULL;
        float *b = malloc((size_t)(k * n) * sizeof *b), *keep = malloc((size_t)(k * n) * sizeof *keep);
        kt_fill(b, k * n, -1, 1);
        memcpy(keep, b, (size_t)(k * n) * sizeof *b);
        void *slot = NULL;
        run_const_b("first run", batch, m, k, n, op_b, act, b, &slot, pool, keep);
        KT_CHECK(slot != NULL || kiln__cpu_simd() == KILN__SIMD_NONE);
        void *first = slot;
        if (slot) {
            /* Only the packed copy can give the right answer now. */
            for (int64_t i = 0; i < k * n; i++) b[i] = NAN;
            run_const_b("cached", batch, m, k, n, op_b, act, b, &slot, pool, keep);
            KT_CHECK(slot == first);
            memcpy(b, keep, (size_t)(k * n) * sizeof *b);
        }
        /* Another constant in the same slot. */
        float *b2 = malloc((size_t)(k * n) * sizeof *b2);
        kt_fill(b2, k * n, -1, 1);
        run_const_b("another constant", batch, m, k, n, op_b, act, b2, &slot, pool, b2);
        /* The same memory as the other shape (b transposed the other way): repacked. */
        run_const_b("other shape", batch, m, n, k, !op_b, act, b2, &slot, pool, b2);
        /* Other kernels, other panel layout: repacked, then back. */
        if (kiln__cpu_simd() == KILN__SIMD_AVX512) {
            kiln__cpu_set_simd(KILN__SIMD_AVX2);
            run_const_b("avx2 after avx512", batch, m, k, n, op_b, act, b2, &slot, pool, b2);
            kiln__cpu_set_simd(KILN__SIMD_AVX512);
            run_const_b("avx512 again", batch, m, k, n, op_b, act, b2, &slot, pool, b2);
        }
        kiln__free(&g_alloc, slot);
        free(b);
        free(b2);
        free(keep);
    }
}

static kiln_status infer(mm_case mc, kiln_dtype t, kiln_dims *out) {
    kiln_layer l = make_layer(&mc);
    kiln__value in[3] = {{.dtype = t, .dims = mc.a}, {.dtype = t, .dims = mc.b}, {.dtype = t, .dims = mc.c}};
    kiln__value o[1];
    kiln_status st = kiln__layer_ops_for(KILN_LAYER_MATMUL)->infer(&l, in, o);
    if (st == KILN_OK && out) *out = o[0].dims;
    if (st != KILN_OK) KT_CHECK(strstr(kiln_last_error(), "mm_t") != NULL);
    return st;
}

static void test_infer(void) {
    kiln_dims o;
    KT_OK(infer(mm((kiln_dims){3, {-1, 5, 7}}, (kiln_dims){2, {-1, 4}}), KILN_FLOAT32, &o));
    KT_CHECK(o.nb_dims == 3 && o.d[0] == -1 && o.d[1] == 5 && o.d[2] == 4);
    KT_OK(infer(mm((kiln_dims){1, {7}}, (kiln_dims){1, {7}}), KILN_FLOAT32, &o));
    KT_CHECK(o.nb_dims == 0);
    KT_STATUS(infer(mm((kiln_dims){2, {5, 7}}, (kiln_dims){2, {6, 4}}), KILN_FLOAT32, NULL), KILN_INVALID_ARGUMENT);
    KT_STATUS(infer(mm((kiln_dims){3, {2, 5, 7}}, (kiln_dims){3, {3, 7, 4}}), KILN_FLOAT32, NULL),
              KILN_INVALID_ARGUMENT);
    KT_STATUS(infer(mm((kiln_dims){0}, (kiln_dims){2, {6, 4}}), KILN_FLOAT32, NULL), KILN_INVALID_ARGUMENT);
    mm_case mc = mm((kiln_dims){1, {7}}, (kiln_dims){2, {7, 4}});
    mc.op_a = 1;
    KT_STATUS(infer(mc, KILN_FLOAT32, NULL), KILN_INVALID_ARGUMENT);
    mc = mm((kiln_dims){2, {5, 7}}, (kiln_dims){2, {7, 4}});
    mc.has_c = 1;
    mc.c = (kiln_dims){1, {5}};
    KT_STATUS(infer(mc, KILN_FLOAT32, NULL), KILN_INVALID_ARGUMENT);
    mc.c = (kiln_dims){2, {5, 1}};
    KT_OK(infer(mc, KILN_FLOAT32, NULL));
    mc.act = KILN_ACT_RELU;
    KT_STATUS(infer(mc, KILN_INT32, NULL), KILN_UNSUPPORTED);
    mc.act = -1;
    mc.alpha = 0.5f;
    KT_STATUS(infer(mc, KILN_INT32, NULL), KILN_UNSUPPORTED);
    KT_STATUS(infer(mc, KILN_INT8, NULL), KILN_UNSUPPORTED);
    mc = mm((kiln_dims){2, {5, 7}}, (kiln_dims){2, {7, 4}});
    mc.op_b = 1;
    kiln_layer l = make_layer(&mc);
    kiln__buf desc;
    kiln__buf_init(&desc, &g_alloc);
    kiln__layer_ops_for(KILN_LAYER_MATMUL)->describe(&l, &desc);
    kiln__buf_append(&desc, "", 1);
    KT_CHECK(desc.data && strstr((char *)desc.data, "op_a=none op_b=transpose"));
    kiln__buf_free(&desc);
    kiln__value in[2] = {{.dtype = KILN_FLOAT32, .dims = mc.a}, {.dtype = KILN_FLOAT16, .dims = mc.b}}, out[1];
    KT_STATUS(kiln__layer_ops_for(KILN_LAYER_MATMUL)->infer(&l, in, out), KILN_INVALID_ARGUMENT);
}

static void test_api_and_engine(void) {
    kiln_builder *b;
    kiln_network *net;
    KT_OK(kiln_builder_create(NULL, &b));
    KT_OK(kiln_network_create(b, &net));
    kiln_dims ad = {3, {2, 4, 6}}, bd = {2, {5, 6}}, xd = {4, {3, 2, 2, 3}};
    kiln_tensor *a, *bt, *x;
    KT_OK(kiln_network_add_input(net, "a", KILN_FLOAT32, &ad, &a));
    KT_OK(kiln_network_add_input(net, "b", KILN_FLOAT32, &bd, &bt));
    KT_OK(kiln_network_add_input(net, "x", KILN_FLOAT32, &xd, &x));
    kiln_layer *ml, *fl;
    KT_OK(kiln_network_add_matmul(net, a, KILN_MATRIX_NONE, bt, KILN_MATRIX_TRANSPOSE, &ml));
    kiln_dims od;
    KT_OK(kiln_tensor_shape(kiln_layer_output(ml, 0), &od));
    KT_CHECK(od.nb_dims == 3 && od.d[0] == 2 && od.d[1] == 4 && od.d[2] == 5);
    KT_STATUS(kiln_network_add_matmul(net, a, KILN_MATRIX_NONE, bt, KILN_MATRIX_NONE, NULL), KILN_INVALID_ARGUMENT);
    KT_STATUS(kiln_network_add_matmul(net, a, 5, bt, KILN_MATRIX_NONE, NULL), KILN_INVALID_ARGUMENT);
    float k[4 * 12], bias[4];
    kt_fill(k, 48, -1, 1);
    kt_fill(bias, 4, -1, 1);
    KT_STATUS(kiln_network_add_fully_connected(net, x, 4, (kiln_weights){KILN_FLOAT32, k, 40}, (kiln_weights){0}, NULL),
              KILN_INVALID_ARGUMENT);
    KT_OK(kiln_network_add_fully_connected(net, x, 4, (kiln_weights){KILN_FLOAT32, k, 48},
                                           (kiln_weights){KILN_FLOAT32, bias, 4}, &fl));
    if (fl) {
        KT_OK(kiln_tensor_shape(kiln_layer_output(fl, 0), &od));
        KT_CHECK(od.nb_dims == 2 && od.d[0] == 3 && od.d[1] == 4);
        KT_OK(kiln_network_mark_output(net, kiln_layer_output(fl, 0)));
    }
    KT_OK(kiln_network_mark_output(net, kiln_layer_output(ml, 0)));
    /* A 2-D input needs no flattening: the layer is the matmul itself. */
    kiln_network *net_v;
    KT_OK(kiln_network_create(b, &net_v));
    kiln_dims vd = {2, {-1, 12}};
    kiln_tensor *v;
    kiln_layer *vl;
    KT_OK(kiln_network_add_input(net_v, "v", KILN_FLOAT32, &vd, &v));
    KT_OK(kiln_network_add_fully_connected(net_v, v, 4, (kiln_weights){KILN_FLOAT32, k, 48}, (kiln_weights){0}, &vl));
    KT_OK(kiln_tensor_shape(kiln_layer_output(vl, 0), &od));
    KT_CHECK(od.nb_dims == 2 && od.d[0] == -1 && od.d[1] == 4 && kiln_layer_get_type(vl) == KILN_LAYER_MATMUL);
    kiln_network_destroy(net_v);

    kiln_builder_config *cfg;
    kiln_engine *eng = NULL;
    kiln_context *ctx = NULL;
    KT_OK(kiln_builder_config_create(b, &cfg));
    KT_OK(kiln_builder_build_engine(b, net, cfg, &eng));
    if (eng) KT_OK(kiln_engine_create_context(eng, &ctx));
    if (ctx && fl) {
        float av[48], bv[30], xv[36];
        kt_fill(av, 48, -1, 1);
        kt_fill(bv, 30, -1, 1);
        kt_fill(xv, 36, -1, 1);
        KT_OK(kiln_context_set_tensor_address(ctx, "a", av, sizeof av));
        KT_OK(kiln_context_set_tensor_address(ctx, "b", bv, sizeof bv));
        KT_OK(kiln_context_set_tensor_address(ctx, "x", xv, sizeof xv));
        KT_OK(kiln_context_execute(ctx));
        void *mp = NULL, *fp = NULL;
        KT_OK(kiln_context_get_tensor_address(ctx, kiln_tensor_name(kiln_layer_output(ml, 0)), &mp));
        KT_OK(kiln_context_get_tensor_address(ctx, kiln_tensor_name(kiln_layer_output(fl, 0)), &fp));
        float want_m[40], want_f[12];
        for (int bb = 0; bb < 2; bb++)
            for (int i = 0; i < 4; i++)
                for (int j = 0; j < 5; j++) {
                    double s = 0;
                    for (int q = 0; q < 6; q++) s += (double)av[(bb * 4 + i) * 6 + q] * bv[j * 6 + q];
                    want_m[(bb * 4 + i) * 5 + j] = (float)s;
                }
        for (int n = 0; n < 3; n++)
            for (int o = 0; o < 4; o++) {
                double s = bias[o];
                for (int q = 0; q < 12; q++) s += (double)xv[n * 12 + q] * k[o * 12 + q];
                want_f[n * 4 + o] = (float)s;
            }
        if (mp) kt_close("engine matmul", mp, want_m, 40, 1e-5f, 1e-5f);
        if (fp) kt_close("engine fully connected", fp, want_f, 12, 1e-5f, 1e-5f);
    }
    kiln_context_destroy(ctx);
    kiln_engine_destroy(eng);
    kiln_builder_config_destroy(cfg);
    kiln_network_destroy(net);
    kiln_builder_destroy(b);
}

int main(void) {
    ck_init();
    KT_CHECK(kiln__cpu_kernel_for(KILN_LAYER_MATMUL) == kiln__cpu_matmul);
    KT_CHECK(kiln__cpu_kernel_for(KILN_LAYER_SHUFFLE) == kiln__cpu_shuffle);
    test_kernels();
    test_constant_b();
    test_infer();
    test_api_and_engine();
    ck_done();
    return kt_summary("test_cpu_matmul");
}
