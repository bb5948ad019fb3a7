/* Per-layer profiling of execution contexts (kiln_context_set_profiling and friends): counts,
 * names and times per engine layer, on/off/reset, errors, and allocation failure. */
#include "kiln.h"
#include "kt.h"

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>

/* ------------------------------------------------------------ a counting, failing allocator
 * (locked: the CPU kernels may allocate from worker threads) */

typedef struct fault_alloc {
    pthread_mutex_t lock;
    long count;   /* allocations so far */
    long fail_at; /* fail the allocation with this number (1-based); 0 = never */
    long live;    /* blocks not yet freed */
} fault_alloc;

static void *fault_malloc(void *user, size_t size, size_t alignment) {
    fault_alloc *fa = user;
    pthread_mutex_lock(&fa->lock);
    bool fail = ++fa->count == fa->fail_at;
    pthread_mutex_unlock(&fa->lock);
    void *p = NULL;
    if (alignment < sizeof(void *)) alignment = sizeof(void *);
    if (fail || posix_memalign(&p, alignment, size) != 0) return NULL;
    pthread_mutex_lock(&fa->lock);
    fa->live++;
    pthread_mutex_unlock(&fa->lock);
    return p;
}

static void fault_free(void *user, void *ptr) {
    fault_alloc *fa = user;
    if (!ptr) return;
    pthread_mutex_lock(&fa->lock);
    fa->live--;
    pthread_mutex_unlock(&fa->lock);
    free(ptr);
}

/* ------------------------------------------------------------ the network
 * y = softmax(relu(x @ W + b)) and z = tanh(x), with x: [ROWS, IN]. */

enum { ROWS = 32, IN = 64, HID = 96 };
static float W[IN * HID], B[HID];

static kiln_status make_network(kiln_builder *b, kiln_network **out) {
    kiln_network *net = NULL;
    kiln_status st = kiln_network_create(b, &net);
    kiln_tensor *x = NULL;
    kiln_layer *wl = NULL, *bl = NULL, *mm = NULL, *add = NULL, *act = NULL, *sm = NULL, *th = NULL;
    kiln_dims xd = {2, {ROWS, IN}}, wd = {2, {IN, HID}}, bd = {2, {1, HID}};
    if (st == KILN_OK) st = kiln_network_add_input(net, "x", KILN_FLOAT32, &xd, &x);
    if (st == KILN_OK) st = kiln_network_add_constant(net, &wd, (kiln_weights){KILN_FLOAT32, W, IN * HID}, &wl);
    if (st == KILN_OK) st = kiln_network_add_constant(net, &bd, (kiln_weights){KILN_FLOAT32, B, HID}, &bl);
    if (st == KILN_OK)
        st = kiln_network_add_matmul(net, x, KILN_MATRIX_NONE, kiln_layer_output(wl, 0), KILN_MATRIX_NONE, &mm);
    if (st == KILN_OK)
        st = kiln_network_add_elementwise(net, kiln_layer_output(mm, 0), kiln_layer_output(bl, 0), KILN_EW_ADD, &add);
    if (st == KILN_OK) st = kiln_network_add_activation(net, kiln_layer_output(add, 0), KILN_ACT_RELU, 0, 0, &act);
    if (st == KILN_OK) st = kiln_network_add_softmax(net, kiln_layer_output(act, 0), -1, 0, &sm);
    if (st == KILN_OK) st = kiln_tensor_set_name(kiln_layer_output(sm, 0), "y");
    if (st == KILN_OK) st = kiln_network_mark_output(net, kiln_layer_output(sm, 0));
    if (st == KILN_OK) st = kiln_network_add_activation(net, x, KILN_ACT_TANH, 0, 0, &th);
    if (st == KILN_OK) st = kiln_tensor_set_name(kiln_layer_output(th, 0), "z");
    if (st == KILN_OK) st = kiln_network_mark_output(net, kiln_layer_output(th, 0));
    if (st != KILN_OK) {
        kiln_network_destroy(net);
        return st;
    }
    *out = net;
    return KILN_OK;
}

static kiln_status build_engine(kiln_builder *b, kiln_engine **engine) {
    kiln_network *net = NULL;
    kiln_builder_config *cfg = NULL;
    kiln_status st = make_network(b, &net);
    if (st == KILN_OK) st = kiln_builder_config_create(b, &cfg);
    if (st == KILN_OK) st = kiln_builder_config_set_device(cfg, KILN_DEVICE_CPU);
    if (st == KILN_OK) st = kiln_builder_build_engine(b, net, cfg, engine);
    kiln_builder_config_destroy(cfg);
    kiln_network_destroy(net);
    return st;
}

static float X[ROWS * IN], Y[ROWS * HID], Z[ROWS * IN];

static kiln_status bind(kiln_context *ctx) {
    kiln_status st = kiln_context_set_tensor_address(ctx, "x", X, sizeof X);
    if (st == KILN_OK) st = kiln_context_set_tensor_address(ctx, "y", Y, sizeof Y);
    if (st == KILN_OK) st = kiln_context_set_tensor_address(ctx, "z", Z, sizeof Z);
    return st;
}

static double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec * 1e-6;
}

static int32_t nb_entries(const kiln_context *ctx) {
    int32_t n = -1;
    KT_OK(kiln_context_profiling_num_layers(ctx, &n));
    return n;
}

static kiln_layer_profile entry(const kiln_context *ctx, int32_t i) {
    kiln_layer_profile p = {.struct_size = sizeof p};
    KT_OK(kiln_context_profiling_layer(ctx, i, &p));
    return p;
}

/* Every entry has `count` executions; returns the summed time. */
static double check_counts(const kiln_context *ctx, int64_t count) {
    double sum = 0;
    int bad = 0;
    for (int32_t i = 0; i < nb_entries(ctx); i++) {
        kiln_layer_profile p = entry(ctx, i);
        if (p.count != count || !(p.total_ms >= 0)) {
            if (!bad) fprintf(stderr, "layer %d (%s): count %lld, expected %lld; %g ms\n", i, p.name ? p.name : "?",
                              (long long)p.count, (long long)count, p.total_ms);
            bad = 1;
        }
        sum += p.total_ms;
    }
    KT_CHECK(!bad);
    return sum;
}

static void test_profiling(void) {
    kt_fill(W, IN * HID, -0.2f, 0.2f);
    kt_fill(B, HID, -0.1f, 0.1f);
    kt_fill(X, ROWS * IN, -1, 1);
    fault_alloc fa = {.lock = PTHREAD_MUTEX_INITIALIZER};
    kiln_allocator allocator = {fault_malloc, fault_free, &fa};
    kiln_builder_options opts = {sizeof opts, &allocator, NULL};
    kiln_builder *b = NULL;
    kiln_engine *engine = NULL;
    kiln_context *ctx = NULL, *other = NULL;
    KT_OK(kiln_builder_create(&opts, &b));
    KT_OK(build_engine(b, &engine));
    if (!engine) goto done;
    int32_t nb_layers = kiln_engine_num_layers(engine);
    KT_CHECK(nb_layers >= 2);
    KT_OK(kiln_engine_create_context(engine, &ctx));
    KT_OK(kiln_engine_create_context(engine, &other));
    if (!ctx || !other) goto done;
    KT_OK(bind(ctx));
    KT_OK(bind(other));

    /* Never enabled: no entries, and runs add none. */
    KT_CHECK(nb_entries(ctx) == 0);
    KT_OK(kiln_context_execute(ctx));
    KT_CHECK(nb_entries(ctx) == 0);
    float y_plain[ROWS * HID];
    memcpy(y_plain, Y, sizeof Y);
    kiln_layer_profile p = {.struct_size = sizeof p};
    KT_STATUS(kiln_context_profiling_layer(ctx, 0, &p), KILN_NOT_FOUND);
    KT_CHECK(strstr(kiln_last_error(), "never enabled") != NULL);

    /* Enabling fails cleanly when the accumulators cannot be allocated, then works. */
    fa.fail_at = fa.count + 1;
    KT_STATUS(kiln_context_set_profiling(ctx, 1), KILN_OUT_OF_MEMORY);
    fa.fail_at = 0;
    KT_CHECK(nb_entries(ctx) == 0);
    KT_OK(kiln_context_execute(ctx));
    KT_CHECK(nb_entries(ctx) == 0);
    KT_OK(kiln_context_set_profiling(ctx, 1));
    KT_CHECK(nb_entries(ctx) == nb_layers);
    check_counts(ctx, 0);

    /* N profiled runs: one count per run per layer, the engine's names and types, and layer
     * times that fit inside the wall time of the runs. */
    int64_t runs = kt_randi(3, 12);
    double t0 = now_ms();
    for (int64_t r = 0; r < runs; r++) KT_OK(kiln_context_execute(ctx));
    double wall = now_ms() - t0;
    KT_CHECK(memcmp(Y, y_plain, sizeof Y) == 0); /* profiling does not change results */
    double sum = check_counts(ctx, runs);
    KT_CHECK(sum > 0 && sum <= wall);
    char info[1024];
    for (int32_t i = 0; i < nb_layers; i++) {
        p = entry(ctx, i);
        KT_CHECK(p.name && p.type_name && (int)p.type >= 0 && p.type < KILN_LAYER_TYPE_COUNT);
        if (!p.name || !p.type_name) continue;
        KT_CHECK(strcmp(p.type_name, kiln_layer_type_name(p.type)) == 0);
        /* layer_info starts "<name> [<type>] ". */
        char head[KILN_MAX_NAME + 64];
        snprintf(head, sizeof head, "%s [%s] ", p.name, p.type_name);
        KT_CHECK(kiln_engine_layer_info(engine, i, info, sizeof info) > 0 && strncmp(info, head, strlen(head)) == 0);
    }

    /* Contexts keep separate accumulators. */
    KT_OK(kiln_context_execute(other));
    KT_CHECK(nb_entries(other) == 0);
    check_counts(ctx, runs);

    /* Off: results stay readable and do not grow; on again: they grow from there. */
    KT_OK(kiln_context_set_profiling(ctx, 0));
    for (int r = 0; r < 3; r++) KT_OK(kiln_context_execute(ctx));
    KT_CHECK(nb_entries(ctx) == nb_layers);
    KT_CHECK(check_counts(ctx, runs) == sum);
    KT_OK(kiln_context_set_profiling(ctx, 1));
    KT_OK(kiln_context_execute(ctx));
    check_counts(ctx, runs + 1);

    /* Reset zeroes the entries and keeps profiling on. */
    KT_OK(kiln_context_reset_profiling(ctx));
    KT_CHECK(nb_entries(ctx) == nb_layers);
    KT_CHECK(check_counts(ctx, 0) == 0);
    KT_OK(kiln_context_execute(ctx));
    check_counts(ctx, 1);
    KT_OK(kiln_context_reset_profiling(other)); /* never enabled: nothing to reset */

    /* A failing execution adds nothing. */
    KT_OK(kiln_context_reset_profiling(ctx));
    KT_OK(kiln_context_set_tensor_address(ctx, "x", X, sizeof X - 4));
    KT_STATUS(kiln_context_execute(ctx), KILN_INVALID_ARGUMENT);
    check_counts(ctx, 0);
    KT_OK(bind(ctx));

    /* A caller built against a shorter struct gets only the fields that fit. */
    kiln_layer_profile shorter;
    memset(&shorter, 0x5a, sizeof shorter);
    shorter.struct_size = offsetof(kiln_layer_profile, type);
    KT_OK(kiln_context_profiling_layer(ctx, 0, &shorter));
    KT_CHECK(shorter.name == entry(ctx, 0).name && shorter.type_name == entry(ctx, 0).type_name);
    KT_CHECK(shorter.struct_size == offsetof(kiln_layer_profile, type));
    KT_CHECK(shorter.count == (int64_t)0x5a5a5a5a5a5a5a5aLL);

    /* Errors. */
    int32_t n = 0;
    KT_STATUS(kiln_context_set_profiling(NULL, 1), KILN_INVALID_ARGUMENT);
    KT_STATUS(kiln_context_profiling_num_layers(NULL, &n), KILN_INVALID_ARGUMENT);
    KT_STATUS(kiln_context_profiling_num_layers(ctx, NULL), KILN_INVALID_ARGUMENT);
    KT_STATUS(kiln_context_profiling_layer(NULL, 0, &p), KILN_INVALID_ARGUMENT);
    KT_STATUS(kiln_context_profiling_layer(ctx, 0, NULL), KILN_INVALID_ARGUMENT);
    KT_STATUS(kiln_context_reset_profiling(NULL), KILN_INVALID_ARGUMENT);
    KT_STATUS(kiln_context_profiling_layer(ctx, -1, &p), KILN_NOT_FOUND);
    KT_STATUS(kiln_context_profiling_layer(ctx, nb_layers, &p), KILN_NOT_FOUND);
    KT_CHECK(strstr(kiln_last_error(), "out of range") != NULL);
    p.struct_size = 0;
    KT_STATUS(kiln_context_profiling_layer(ctx, 0, &p), KILN_INVALID_ARGUMENT);

done:
    /* Destroyed with profiling on: everything is freed. */
    kiln_context_destroy(ctx);
    kiln_context_destroy(other);
    kiln_engine_destroy(engine);
    kiln_builder_destroy(b);
    KT_CHECK(fa.live == 0);
}

int main(void) {
    kt_seed();
    test_profiling();
    return kt_summary("test_profile");
}
