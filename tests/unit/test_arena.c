/* Activation memory planning: tensors alive at the same time never share bytes, except a fused
 * convolution's output written over the residual it reads last (ResNet's blocks), and not for a
 * depthwise one or a residual read again later. The engine's results equal the unfused network's,
 * run by the evaluator without a plan. */
#include "kiln.h"
#include "pass_harness.h"

static kiln_tensor *conv(kiln_tensor *x, int32_t maps, int64_t k, int32_t groups) {
    kiln_dims xd;
    KT_OK(kiln_tensor_shape(x, &xd));
    int64_t n = maps * (xd.d[1] / groups) * k * k;
    float *w = malloc((size_t)n * sizeof *w), bias[64];
    float scale = 1.0f / sqrtf((float)(n / maps)); /* activations stay near 1 through the chain */
    kt_fill(w, n, -scale, scale);
    kt_fill(bias, maps, -0.5f, 0.5f);
    kiln_convolution_desc d = {.struct_size = sizeof d, .nb_output_maps = maps, .kernel = {k, k},
                               .padding_begin = {k / 2, k / 2}, .padding_end = {k / 2, k / 2}, .groups = groups};
    kiln_layer *l = NULL;
    KT_OK(kiln_network_add_convolution(g_net, x, &d, (kiln_weights){KILN_FLOAT32, w, n},
                                       (kiln_weights){KILN_FLOAT32, bias, maps}, &l));
    free(w);
    return out0(l);
}

static kiln_tensor *relu(kiln_tensor *x) { return act(x, KILN_ACT_RELU, 0, 0); }

/* The first layer of the engine's network that writes tensor t. */
static const kiln_layer *producer(const kiln_network *net, const kiln_tensor *t) {
    for (int64_t i = 0; i < net->nb_layers; i++)
        for (int32_t k = 0; k < net->layers[i]->nb_outputs; k++)
            if (net->layers[i]->outputs[k] == t) return net->layers[i];
    return NULL;
}

/* Plans the engine network's arena for its build-time shapes and checks it: tensors whose
 * lifetimes overlap are disjoint unless one is a convolution's output over its residual. Returns
 * how many convolutions write over their residual; *dw_inplace counts the depthwise ones. */
static int check_plan(const kiln_engine *eng, int *dw_inplace) {
    const kiln_network *net = eng->net;
    kiln__alloc alloc;
    kiln__alloc_init(&alloc, NULL);
    kiln__eval ev;
    KT_OK(kiln__eval_init(&ev, net, &alloc, NULL));
    for (int32_t i = 0; i < net->nb_inputs; i++) kiln__eval_set_input(&ev, i, &net->inputs[i]->dims, NULL);
    KT_OK(kiln__eval_run(&ev, KILN__EVAL_SHAPES));
    kiln__arena_plan plan;
    KT_OK(kiln__arena_plan_make(net, ev.values, &alloc, &plan));
    int64_t nt = net->nb_tensors, *first = malloc((size_t)nt * sizeof *first), *last = malloc((size_t)nt * sizeof *last);
    for (int64_t t = 0; t < nt; t++) first[t] = last[t] = -1;
    for (int64_t i = 0; i < net->nb_layers; i++) {
        const kiln_layer *l = net->layers[i];
        for (int32_t k = 0; k < l->nb_outputs; k++) first[l->outputs[k]->index] = i;
        for (int32_t k = 0; k < l->nb_inputs; k++)
            if (l->inputs[k]) last[l->inputs[k]->index] = i;
    }
    int inplace = 0;
    *dw_inplace = 0;
    for (int64_t i = 0; i < net->nb_layers; i++) {
        const kiln_layer *l = net->layers[i];
        if (l->type != KILN_LAYER_CONVOLUTION || l->nb_inputs < 4 || !l->inputs[3]) continue;
        int64_t r = l->inputs[3]->index, o = l->outputs[0]->index;
        if (plan.offsets[r] < 0 || plan.offsets[r] != plan.offsets[o]) continue;
        KT_CHECK(last[r] == i);
        inplace++;
        if (l->p.conv.groups > 1) ++*dw_inplace;
    }
    for (int64_t a = 0; a < nt; a++)
        for (int64_t b = a + 1; b < nt; b++) {
            if (plan.offsets[a] < 0 || plan.offsets[b] < 0 || first[a] < 0 || first[b] < 0) continue;
            int64_t end_a = net->tensors[a]->is_output ? net->nb_layers : KILN__MAX(last[a], first[a]);
            int64_t end_b = net->tensors[b]->is_output ? net->nb_layers : KILN__MAX(last[b], first[b]);
            if (end_a < first[b] || end_b < first[a]) continue; /* never alive together */
            bool handover = (end_a == first[b] && plan.offsets[a] == plan.offsets[b] &&
                             producer(net, net->tensors[b])->nb_inputs > 3 &&
                             producer(net, net->tensors[b])->inputs[3] == net->tensors[a]) ||
                            (end_b == first[a] && plan.offsets[a] == plan.offsets[b] &&
                             producer(net, net->tensors[a])->nb_inputs > 3 &&
                             producer(net, net->tensors[a])->inputs[3] == net->tensors[b]);
            bool disjoint = (uint64_t)plan.offsets[a] + plan.bytes[a] <= (uint64_t)plan.offsets[b] ||
                            (uint64_t)plan.offsets[b] + plan.bytes[b] <= (uint64_t)plan.offsets[a];
            if (!handover && !disjoint) {
                fprintf(stderr, "tensors %s and %s are alive together and overlap\n", net->tensors[a]->name,
                        net->tensors[b]->name);
                KT_CHECK(0);
            }
        }
    free(first);
    free(last);
    kiln__arena_plan_free(&alloc, &plan);
    kiln__eval_free(&ev);
    return inplace;
}

/* Two residual blocks in a row (the second's residual is the first's output, itself written over
 * the stem's), a depthwise layer adding a residual, and a 1x1 layer whose residual is read again
 * after it. */
static void test_residual_chain(void) {
    begin(KILN_FLOAT32);
    kiln_tensor *x = input("x", &(kiln_dims){4, {1, 32, 12, 12}});
    kiln_tensor *stem = relu(conv(x, 32, 3, 1));
    kiln_tensor *b1 = relu(ew(conv(relu(conv(stem, 16, 1, 1)), 32, 1, 1), KILN_EW_ADD, stem));
    kiln_tensor *b2 = relu(ew(conv(relu(conv(b1, 16, 3, 1)), 32, 1, 1), KILN_EW_ADD, b1));
    kiln_tensor *dw = ew(conv(conv(b2, 32, 1, 1), 32, 3, 32), KILN_EW_ADD, b2);
    kiln_tensor *again = ew(conv(conv(dw, 32, 1, 1), 32, 1, 1), KILN_EW_ADD, dw);
    kiln_tensor *y = conv(ew(again, KILN_EW_MUL, dw), 8, 1, 1);
    KT_OK(kiln_network_mark_output(g_net, y));
    kiln_builder_config *cfg = NULL;
    kiln_engine *eng = NULL;
    KT_OK(kiln_builder_config_create(g_b, &cfg));
    KT_OK(kiln_builder_build_engine(g_b, g_net, cfg, &eng));
    if (eng) {
        int dw_inplace = 0, inplace = check_plan(eng, &dw_inplace);
        KT_CHECK(inplace == 2); /* both blocks; not the depthwise layer, nor the residual read again */
        KT_CHECK(dw_inplace == 0);
    }
    kiln_engine_destroy(eng);
    kiln_builder_config_destroy(cfg);
    finish("residual chain", y, 11, NULL);
}

/* An allocator that records the requests it serves. */
typedef struct seen_alloc {
    size_t size, alignment;
    int calls;
} seen_alloc;

static void *seen_malloc(void *user, size_t size, size_t alignment) {
    seen_alloc *s = user;
    s->size = size;
    s->alignment = alignment;
    s->calls++;
    void *p = NULL;
    return posix_memalign(&p, alignment < sizeof(void *) ? sizeof(void *) : alignment, size) ? NULL : p;
}

static void seen_free(void *user, void *ptr) {
    (void)user;
    free(ptr);
}

/* Large blocks (the arena, packed weights): 2 MiB aligned from the default allocator, so their
 * whole pages can be huge ones; a user allocator gets the plain request. */
static void test_large_blocks(void) {
    kiln__alloc def;
    kiln__alloc_init(&def, NULL);
    size_t sizes[] = {100, ((size_t)2 << 20) - 64, (size_t)5 << 20 | 12345};
    for (int i = 0; i < 3; i++) {
        unsigned char *p = kiln__malloc_large(&def, sizes[i]);
        KT_CHECK(p != NULL);
        if (!p) continue;
        uintptr_t align = sizes[i] >= ((size_t)2 << 20) ? (uintptr_t)2 << 20 : 64;
        KT_CHECK((uintptr_t)p % align == 0);
        memset(p, 0x5a, sizes[i]);
        KT_CHECK(p[0] == 0x5a && p[sizes[i] - 1] == 0x5a);
        kiln__free(&def, p);
    }
    seen_alloc seen = {0};
    kiln_allocator user = {seen_malloc, seen_free, &seen};
    kiln__alloc ua;
    kiln__alloc_init(&ua, &user);
    void *p = kiln__malloc_large(&ua, (size_t)3 << 20);
    KT_CHECK(p != NULL && seen.calls == 1 && seen.size == (size_t)3 << 20 && seen.alignment == 64);
    kiln__free(&ua, p);
}

int main(void) {
    kt_seed();
    test_large_blocks();
    test_residual_chain();
    return kt_summary("test_arena");
}
