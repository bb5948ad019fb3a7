/* The public API end to end: object lifetimes, documented errors, build/serialize/run,
 * dynamic shapes with profiles, concurrent contexts, and allocation fault injection. */
#include "kiln.h"
#include "kt.h"

#include <pthread.h>
#include <stdbool.h>

/* ------------------------------------------------------------ a counting, failing allocator */

typedef struct fault_alloc {
    pthread_mutex_t lock;
    long count;     /* allocations so far */
    long fail_at;   /* fail the allocation with this number (1-based); 0 = never */
    long live;      /* blocks not yet freed */
    bool failed;
} fault_alloc;

static void *fault_malloc(void *user, size_t size, size_t alignment) {
    fault_alloc *fa = user;
    pthread_mutex_lock(&fa->lock);
    long n = ++fa->count;
    bool fail = fa->fail_at && n == fa->fail_at;
    if (fail) fa->failed = true;
    if (!fail) fa->live++;
    pthread_mutex_unlock(&fa->lock);
    if (fail) return NULL;
    void *p = NULL;
    if (alignment < sizeof(void *)) alignment = sizeof(void *);
    if (posix_memalign(&p, alignment, size) != 0) {
        pthread_mutex_lock(&fa->lock);
        fa->live--;
        pthread_mutex_unlock(&fa->lock);
        return NULL;
    }
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

/* ------------------------------------------------------------ a small network
 * y = relu(x @ W + b) * 2 - x[..., :4], with x: [batch, 8] (batch dynamic when asked). */

enum { IN = 8, HID = 4 };
static float W[IN * HID], B[HID];

static kiln_status make_network(kiln_builder *b, bool dynamic, kiln_network **out) {
    kiln_network *net = NULL;
    kiln_status st = kiln_network_create(b, &net);
    kiln_tensor *x = NULL;
    kiln_layer *wl = NULL, *bl = NULL, *mm = NULL, *add = NULL, *act = NULL, *two = NULL, *mul = NULL, *sl = NULL,
               *sub = NULL;
    kiln_dims xd = {2, {dynamic ? -1 : 3, IN}};
    kiln_dims wd = {2, {IN, HID}}, bd = {2, {1, HID}}, sd = {0, {0}};
    static const float two_v = 2.0f;
    if (st == KILN_OK) st = kiln_network_add_input(net, "x", KILN_FLOAT32, &xd, &x);
    if (st == KILN_OK && dynamic) st = kiln_tensor_set_dim_name(x, 0, "batch");
    if (st == KILN_OK) st = kiln_network_add_constant(net, &wd, (kiln_weights){KILN_FLOAT32, W, IN * HID}, &wl);
    if (st == KILN_OK) st = kiln_network_add_constant(net, &bd, (kiln_weights){KILN_FLOAT32, B, HID}, &bl);
    if (st == KILN_OK)
        st = kiln_network_add_matmul(net, x, KILN_MATRIX_NONE, kiln_layer_output(wl, 0), KILN_MATRIX_NONE, &mm);
    if (st == KILN_OK)
        st = kiln_network_add_elementwise(net, kiln_layer_output(mm, 0), kiln_layer_output(bl, 0), KILN_EW_ADD, &add);
    if (st == KILN_OK) st = kiln_network_add_activation(net, kiln_layer_output(add, 0), KILN_ACT_RELU, 0, 0, &act);
    if (st == KILN_OK) st = kiln_network_add_constant(net, &sd, (kiln_weights){KILN_FLOAT32, &two_v, 1}, &two);
    if (st == KILN_OK)
        st = kiln_network_add_elementwise(net, kiln_layer_output(act, 0), kiln_layer_output(two, 0), KILN_EW_MUL, &mul);
    if (st == KILN_OK) {
        kiln_dims start = {2, {0, 0}}, size = {2, {dynamic ? 1 : 3, HID}}, stride = {2, {1, 1}};
        st = kiln_network_add_slice(net, x, &start, &size, &stride, &sl);
    }
    if (st == KILN_OK && !dynamic)
        st = kiln_network_add_elementwise(net, kiln_layer_output(mul, 0), kiln_layer_output(sl, 0), KILN_EW_SUB, &sub);
    if (st == KILN_OK && dynamic) /* broadcast the first row: works for every batch */
        st = kiln_network_add_elementwise(net, kiln_layer_output(mul, 0), kiln_layer_output(sl, 0), KILN_EW_SUB, &sub);
    if (st == KILN_OK) st = kiln_layer_set_name(sub, "final_sub");
    if (st == KILN_OK) st = kiln_tensor_set_name(kiln_layer_output(sub, 0), "y");
    if (st == KILN_OK) st = kiln_network_mark_output(net, kiln_layer_output(sub, 0));
    if (st != KILN_OK) {
        kiln_network_destroy(net);
        return st;
    }
    *out = net;
    return KILN_OK;
}

static void reference(const float *x, int64_t batch, bool dynamic, float *y) {
    for (int64_t n = 0; n < batch; n++)
        for (int j = 0; j < HID; j++) {
            float acc = B[j];
            for (int k = 0; k < IN; k++) acc += x[n * IN + k] * W[k * HID + j];
            float r = acc > 0 ? acc : 0;
            const float *xs = dynamic ? x : x + n * IN;
            y[n * HID + j] = r * 2.0f - xs[j];
        }
}

static kiln_status build(kiln_builder *b, kiln_network *net, bool dynamic, kiln_engine **engine) {
    kiln_builder_config *cfg = NULL;
    kiln_optimization_profile *prof = NULL;
    kiln_status st = kiln_builder_config_create(b, &cfg);
    if (st == KILN_OK && dynamic) {
        st = kiln_optimization_profile_create(b, &prof);
        kiln_dims lo = {2, {1, IN}}, opt = {2, {4, IN}}, hi = {2, {16, IN}};
        if (st == KILN_OK) st = kiln_optimization_profile_set_dims(prof, "x", KILN_PROFILE_MIN, &lo);
        if (st == KILN_OK) st = kiln_optimization_profile_set_dims(prof, "x", KILN_PROFILE_OPT, &opt);
        if (st == KILN_OK) st = kiln_optimization_profile_set_dims(prof, "x", KILN_PROFILE_MAX, &hi);
        if (st == KILN_OK) st = kiln_builder_config_add_profile(cfg, prof);
    }
    if (st == KILN_OK) st = kiln_builder_build_engine(b, net, cfg, engine);
    kiln_optimization_profile_destroy(prof);
    kiln_builder_config_destroy(cfg);
    return st;
}

/* Runs one batch through a context and checks it against the reference. */
static kiln_status run_and_check(kiln_context *ctx, int64_t batch, bool dynamic, bool bind_output, int *mismatch) {
    float x[16 * IN], y[16 * HID], want[16 * HID];
    kt_fill(x, batch * IN, -1, 1);
    reference(x, batch, dynamic, want);
    kiln_dims d = {2, {batch, IN}};
    kiln_status st = KILN_OK;
    if (dynamic) st = kiln_context_set_input_shape(ctx, "x", &d);
    if (st == KILN_OK) st = kiln_context_set_tensor_address(ctx, "x", x, (size_t)batch * IN * sizeof(float));
    /* Bindings persist across runs: unbind to get context-owned output memory. */
    if (st == KILN_OK) st = kiln_context_set_tensor_address(ctx, "y", bind_output ? y : NULL, bind_output ? sizeof y : 0);
    if (st == KILN_OK) st = kiln_context_execute(ctx);
    const float *out = y;
    if (st == KILN_OK && !bind_output) {
        void *p;
        st = kiln_context_get_tensor_address(ctx, "y", &p);
        out = p;
    }
    if (st == KILN_OK) {
        kiln_dims od;
        st = kiln_context_get_tensor_shape(ctx, "y", &od);
        if (st == KILN_OK && !(od.nb_dims == 2 && od.d[0] == batch && od.d[1] == HID)) *mismatch = 1;
        for (int64_t i = 0; st == KILN_OK && i < batch * HID; i++)
            if (fabsf(out[i] - want[i]) > 1e-5f + 1e-5f * fabsf(want[i])) {
                if (!*mismatch) fprintf(stderr, "batch %lld element %lld: got %g expected %g\n", (long long)batch,
                                        (long long)i, out[i], want[i]);
                *mismatch = 1;
            }
    }
    return st;
}

static void test_basics(void) {
    KT_CHECK(kiln_version() == KILN_VERSION);
    KT_CHECK(strcmp(kiln_version_string(), "0.1.0") == 0);
    KT_CHECK(strcmp(kiln_status_name(KILN_OK), "KILN_OK") == 0);
    KT_CHECK(strcmp(kiln_status_name(KILN_INCOMPATIBLE), "KILN_INCOMPATIBLE") == 0);
    KT_CHECK(strcmp(kiln_status_name((kiln_status)999), "KILN_UNKNOWN_STATUS") == 0);
    KT_CHECK(strcmp(kiln_dtype_name(KILN_FLOAT16), "float16") == 0);
    KT_CHECK(kiln_dtype_bits(KILN_INT4) == 4 && kiln_dtype_bits(KILN_INT64) == 64 && kiln_dtype_bits(KILN_STRING) == 0);
    KT_CHECK(kiln_device_available(KILN_DEVICE_CPU) == 1);
    /* Destroy functions accept NULL. */
    kiln_builder_destroy(NULL);
    kiln_network_destroy(NULL);
    kiln_builder_config_destroy(NULL);
    kiln_optimization_profile_destroy(NULL);
    kiln_timing_cache_destroy(NULL);
    kiln_runtime_destroy(NULL);
    kiln_engine_destroy(NULL);
    kiln_context_destroy(NULL);
    kiln_blob_destroy(NULL);
    KT_STATUS(kiln_builder_create(NULL, NULL), KILN_INVALID_ARGUMENT);
    KT_CHECK(strstr(kiln_last_error(), "NULL") != NULL);
    kiln_builder_options bad = {0};
    kiln_builder *b = NULL;
    KT_STATUS(kiln_builder_create(&bad, &b), KILN_INVALID_ARGUMENT);
    KT_CHECK(b == NULL);
}

static int log_lines;
static void count_log(void *user, kiln_log_level level, const char *msg) {
    (void)user;
    (void)level;
    (void)msg;
    log_lines++;
}

static void test_network_errors(void) {
    kiln_logger logger = {count_log, NULL, KILN_LOG_VERBOSE};
    kiln_builder_options opts = {sizeof opts, NULL, &logger};
    kiln_builder *b = NULL;
    KT_OK(kiln_builder_create(&opts, &b));
    kiln_network *net = NULL;
    KT_OK(kiln_network_create(b, &net));
    kiln_tensor *x = NULL, *x2 = NULL;
    kiln_dims d = {2, {2, 3}};
    KT_OK(kiln_network_add_input(net, "x", KILN_FLOAT32, &d, &x));
    KT_STATUS(kiln_network_add_input(net, "x", KILN_FLOAT32, &d, &x2), KILN_INVALID_ARGUMENT);
    KT_CHECK(strstr(kiln_last_error(), "already exists") != NULL);
    KT_STATUS(kiln_network_add_input(net, "", KILN_FLOAT32, &d, &x2), KILN_INVALID_ARGUMENT);
    KT_STATUS(kiln_network_add_input(net, NULL, KILN_FLOAT32, &d, &x2), KILN_INVALID_ARGUMENT);
    kiln_dims bad_rank = {9, {0}};
    KT_STATUS(kiln_network_add_input(net, "r", KILN_FLOAT32, &bad_rank, &x2), KILN_INVALID_ARGUMENT);
    kiln_dims bad_dim = {1, {-5}};
    KT_STATUS(kiln_network_add_input(net, "r", KILN_FLOAT32, &bad_dim, &x2), KILN_INVALID_ARGUMENT);
    KT_STATUS(kiln_network_add_input(net, "s", KILN_STRING, &d, &x2), KILN_UNSUPPORTED);
    KT_STATUS(kiln_tensor_set_dim_name(x, 5, "n"), KILN_INVALID_ARGUMENT);
    KT_CHECK(kiln_network_num_inputs(net) == 1 && kiln_network_input(net, 0) == x && !kiln_network_input(net, 1));
    KT_CHECK(kiln_network_find_tensor(net, "x") == x && !kiln_network_find_tensor(net, "nope"));
    KT_CHECK(kiln_tensor_dtype(x) == KILN_FLOAT32);
    /* Constants: count must match dims. */
    float v[6] = {0};
    kiln_layer *c = NULL;
    KT_STATUS(kiln_network_add_constant(net, &d, (kiln_weights){KILN_FLOAT32, v, 5}, &c), KILN_INVALID_ARGUMENT);
    KT_OK(kiln_network_add_constant(net, &d, (kiln_weights){KILN_FLOAT32, v, 6}, &c));
    KT_CHECK(kiln_layer_get_type(c) == KILN_LAYER_CONSTANT);
    KT_CHECK(strcmp(kiln_layer_type_name(KILN_LAYER_CONSTANT), "Constant") == 0);
    KT_CHECK(kiln_layer_num_outputs(c) == 1 && kiln_layer_num_inputs(c) == 0 && !kiln_layer_output(c, 1));
    /* Shape errors name the layer. */
    kiln_dims d2 = {2, {4, 5}};
    kiln_layer *c2 = NULL, *e = NULL;
    float v2[20] = {0};
    KT_OK(kiln_network_add_constant(net, &d2, (kiln_weights){KILN_FLOAT32, v2, 20}, &c2));
    int before = kiln_network_num_layers(net);
    KT_STATUS(kiln_network_add_elementwise(net, x, kiln_layer_output(c2, 0), KILN_EW_ADD, &e), KILN_INVALID_ARGUMENT);
    KT_CHECK(strstr(kiln_last_error(), "ElementWise") != NULL);
    KT_CHECK(kiln_network_num_layers(net) == before); /* a failed add leaves the network as it was */
    /* A tensor from another network is refused. */
    kiln_network *other = NULL;
    kiln_tensor *y = NULL;
    KT_OK(kiln_network_create(b, &other));
    KT_OK(kiln_network_add_input(other, "y", KILN_FLOAT32, &d, &y));
    KT_STATUS(kiln_network_add_elementwise(net, x, y, KILN_EW_ADD, &e), KILN_INVALID_ARGUMENT);
    KT_STATUS(kiln_network_mark_output(net, y), KILN_INVALID_ARGUMENT);
    KT_STATUS(kiln_tensor_set_name(kiln_layer_output(c, 0), "x"), KILN_INVALID_ARGUMENT);
    /* Building a network with no outputs fails clearly. */
    kiln_builder_config *cfg = NULL;
    kiln_engine *eng = NULL;
    KT_OK(kiln_builder_config_create(b, &cfg));
    KT_STATUS(kiln_builder_build_engine(b, net, cfg, &eng), KILN_INVALID_ARGUMENT);
    KT_CHECK(strstr(kiln_last_error(), "no outputs") != NULL);
    KT_STATUS(kiln_builder_config_set_flags(cfg, 1u << 20), KILN_INVALID_ARGUMENT);
    KT_OK(kiln_builder_config_set_flags(cfg, KILN_FLAG_FP16 | KILN_FLAG_TF32));
    KT_CHECK(kiln_builder_config_flags(cfg) == (KILN_FLAG_FP16 | KILN_FLAG_TF32));
    KT_STATUS(kiln_builder_config_set_device(cfg, (kiln_device_type)7), KILN_INVALID_ARGUMENT);
    if (!kiln_device_available(KILN_DEVICE_CUDA)) {
        KT_OK(kiln_builder_config_set_device(cfg, KILN_DEVICE_CUDA));
        KT_OK(kiln_network_mark_output(net, kiln_layer_output(c, 0)));
        KT_STATUS(kiln_builder_build_engine(b, net, cfg, &eng), KILN_UNSUPPORTED);
    }
    kiln_builder_config_destroy(cfg);
    kiln_network_destroy(other);
    kiln_network_destroy(net);
    kiln_builder_destroy(b);
}

static void test_static_engine(void) {
    kt_fill(W, IN * HID, -1, 1);
    kt_fill(B, HID, -0.5f, 0.5f);
    kiln_builder *b = NULL;
    kiln_network *net = NULL;
    kiln_engine *eng = NULL, *eng2 = NULL;
    kiln_runtime *rt = NULL;
    kiln_blob *blob = NULL;
    KT_OK(kiln_builder_create(NULL, &b));
    KT_OK(make_network(b, false, &net));
    kiln_dims yd;
    KT_OK(kiln_tensor_shape(kiln_network_find_tensor(net, "y"), &yd));
    KT_CHECK(yd.nb_dims == 2 && yd.d[0] == 3 && yd.d[1] == HID);
    KT_OK(build(b, net, false, &eng));
    kiln_network_destroy(net); /* the engine does not need the network */
    if (!eng) {
        kiln_builder_destroy(b);
        return;
    }
    KT_CHECK(kiln_engine_device(eng) == KILN_DEVICE_CPU);
    KT_CHECK(kiln_engine_num_io_tensors(eng) == 2);
    KT_CHECK(strcmp(kiln_engine_io_tensor_name(eng, 0), "x") == 0);
    KT_CHECK(strcmp(kiln_engine_io_tensor_name(eng, 1), "y") == 0);
    KT_CHECK(kiln_engine_io_tensor_name(eng, 2) == NULL);
    KT_CHECK(kiln_engine_tensor_io_mode(eng, "x") == KILN_IO_INPUT);
    KT_CHECK(kiln_engine_tensor_io_mode(eng, "y") == KILN_IO_OUTPUT);
    KT_CHECK(kiln_engine_tensor_io_mode(eng, "z") == KILN_IO_NONE);
    KT_CHECK(kiln_engine_tensor_dtype(eng, "y") == KILN_FLOAT32);
    KT_STATUS(kiln_engine_tensor_shape(eng, "z", &yd), KILN_NOT_FOUND);
    KT_CHECK(kiln_engine_num_layers(eng) > 5);
    char info[512];
    int32_t last = kiln_engine_num_layers(eng) - 1;
    int64_t len = kiln_engine_layer_info(eng, last, info, sizeof info);
    KT_CHECK(len > 0 && strstr(info, "final_sub") != NULL && strstr(info, "ElementWise") != NULL);
    KT_CHECK(kiln_engine_layer_info(eng, 999, info, sizeof info) == -1);
    kiln_blob *json = NULL;
    KT_OK(kiln_engine_inspect_json(eng, &json));
    KT_CHECK(json && kiln_blob_size(json) > 10 && ((const char *)kiln_blob_data(json))[0] == '{');
    kiln_blob_destroy(json);

    /* Run before binding the input: a clear error, not a crash. */
    kiln_context *ctx = NULL;
    KT_OK(kiln_engine_create_context(eng, &ctx));
    KT_STATUS(kiln_context_execute(ctx), KILN_INVALID_STATE);
    KT_CHECK(strstr(kiln_last_error(), "'x'") != NULL);
    void *p;
    KT_STATUS(kiln_context_get_tensor_address(ctx, "y", &p), KILN_INVALID_STATE);
    KT_STATUS(kiln_context_set_tensor_address(ctx, "nope", &p, 4), KILN_NOT_FOUND);
    kiln_dims wrong = {2, {4, IN}};
    KT_STATUS(kiln_context_set_input_shape(ctx, "x", &wrong), KILN_INVALID_ARGUMENT);
    float small[2];
    KT_OK(kiln_context_set_tensor_address(ctx, "x", small, sizeof small));
    KT_STATUS(kiln_context_execute(ctx), KILN_INVALID_ARGUMENT);
    int mismatch = 0;
    KT_OK(run_and_check(ctx, 3, false, true, &mismatch));
    KT_OK(run_and_check(ctx, 3, false, false, &mismatch));
    KT_CHECK(!mismatch);
    KT_CHECK(kiln_context_activation_bytes(ctx) > 0);
    kiln_context_destroy(ctx);

    /* Serialize, deserialize, run the copy. */
    KT_OK(kiln_engine_serialize(eng, &blob));
    kiln_runtime_options ro = {sizeof ro, NULL, NULL, 2};
    KT_OK(kiln_runtime_create(&ro, &rt));
    if (blob) KT_OK(kiln_runtime_deserialize_engine(rt, kiln_blob_data(blob), kiln_blob_size(blob), &eng2));
    if (eng2) {
        kiln_blob *blob2 = NULL;
        KT_OK(kiln_engine_serialize(eng2, &blob2));
        KT_CHECK(blob2 && kiln_blob_size(blob2) == kiln_blob_size(blob) &&
                 memcmp(kiln_blob_data(blob2), kiln_blob_data(blob), kiln_blob_size(blob)) == 0);
        kiln_blob_destroy(blob2);
        KT_OK(kiln_engine_create_context(eng2, &ctx));
        mismatch = 0;
        KT_OK(run_and_check(ctx, 3, false, true, &mismatch));
        KT_CHECK(!mismatch);
        kiln_context_destroy(ctx);
    }
    kiln_engine *bad = (kiln_engine *)&bad; /* failures must store NULL */
    KT_STATUS(kiln_runtime_deserialize_engine(rt, "garbage", 7, &bad), KILN_INVALID_ARGUMENT);
    KT_CHECK(bad == NULL);
    KT_STATUS(kiln_runtime_load_engine(rt, "/nonexistent/plan", &bad), KILN_IO_ERROR);
    KT_CHECK(bad == NULL);
    kiln_engine_destroy(eng2);
    kiln_blob_destroy(blob);
    kiln_engine_destroy(eng);
    kiln_runtime_destroy(rt);
    kiln_builder_destroy(b);
}

typedef struct thread_job {
    kiln_engine *engine;
    int failures;
} thread_job;

static void *thread_main(void *arg) {
    thread_job *job = arg;
    kiln_context *ctx = NULL;
    if (kiln_engine_create_context(job->engine, &ctx) != KILN_OK) {
        job->failures++;
        return NULL;
    }
    for (int i = 0; i < 50; i++) {
        int mismatch = 0;
        /* Each thread draws from the shared generator under no lock: inputs need only be varied. */
        if (run_and_check(ctx, 1 + i % 16, true, i % 2 == 0, &mismatch) != KILN_OK || mismatch) job->failures++;
    }
    kiln_context_destroy(ctx);
    return NULL;
}

static void test_dynamic_and_threads(void) {
    kiln_builder *b = NULL;
    kiln_network *net = NULL;
    kiln_engine *eng = NULL;
    KT_OK(kiln_builder_create(NULL, &b));
    KT_OK(make_network(b, true, &net));
    kiln_dims yd;
    KT_OK(kiln_tensor_shape(kiln_network_find_tensor(net, "y"), &yd));
    KT_CHECK(yd.nb_dims == 2 && yd.d[0] == -1 && yd.d[1] == HID);
    /* Dynamic input without a profile: refused with a message naming the input. */
    kiln_builder_config *cfg = NULL;
    KT_OK(kiln_builder_config_create(b, &cfg));
    KT_STATUS(kiln_builder_build_engine(b, net, cfg, &eng), KILN_INVALID_ARGUMENT);
    KT_CHECK(strstr(kiln_last_error(), "'x'") != NULL && strstr(kiln_last_error(), "profile") != NULL);
    /* Profile errors. */
    kiln_optimization_profile *prof = NULL;
    KT_OK(kiln_optimization_profile_create(b, &prof));
    kiln_dims lo = {2, {8, IN}}, hi = {2, {2, IN}};
    KT_OK(kiln_optimization_profile_set_dims(prof, "x", KILN_PROFILE_MIN, &lo));
    KT_STATUS(kiln_builder_config_add_profile(cfg, prof), KILN_INVALID_ARGUMENT); /* opt/max missing */
    KT_OK(kiln_optimization_profile_set_dims(prof, "x", KILN_PROFILE_OPT, &hi));
    KT_OK(kiln_optimization_profile_set_dims(prof, "x", KILN_PROFILE_MAX, &hi));
    kiln_dims got;
    KT_OK(kiln_optimization_profile_get_dims(prof, "x", KILN_PROFILE_MIN, &got));
    KT_CHECK(got.d[0] == 8);
    KT_STATUS(kiln_optimization_profile_get_dims(prof, "q", KILN_PROFILE_MIN, &got), KILN_NOT_FOUND);
    KT_OK(kiln_builder_config_add_profile(cfg, prof));
    KT_STATUS(kiln_builder_build_engine(b, net, cfg, &eng), KILN_INVALID_ARGUMENT); /* min > max */
    KT_CHECK(strstr(kiln_last_error(), "min <= opt <= max") != NULL);
    kiln_optimization_profile_destroy(prof);
    kiln_builder_config_destroy(cfg);

    KT_OK(build(b, net, true, &eng));
    kiln_network_destroy(net);
    if (eng) {
        KT_CHECK(kiln_engine_num_profiles(eng) == 1);
        KT_OK(kiln_engine_profile_dims(eng, 0, "x", KILN_PROFILE_MAX, &got));
        KT_CHECK(got.d[0] == 16);
        KT_OK(kiln_engine_tensor_shape(eng, "y", &got));
        KT_CHECK(got.nb_dims == 2 && got.d[0] == -1 && got.d[1] == HID);
        KT_CHECK(kiln_engine_tensor_dim_name(eng, "x", 0) && strcmp(kiln_engine_tensor_dim_name(eng, "x", 0), "batch") == 0);
        KT_CHECK(kiln_engine_tensor_dim_name(eng, "x", 1) == NULL);
        kiln_context *ctx = NULL;
        KT_OK(kiln_engine_create_context(eng, &ctx));
        float x[IN];
        KT_OK(kiln_context_set_tensor_address(ctx, "x", x, sizeof x));
        KT_STATUS(kiln_context_execute(ctx), KILN_INVALID_STATE); /* shape not set yet */
        KT_STATUS(kiln_context_get_tensor_shape(ctx, "y", &got), KILN_INVALID_STATE);
        kiln_dims too_big = {2, {17, IN}};
        KT_STATUS(kiln_context_set_input_shape(ctx, "x", &too_big), KILN_INVALID_ARGUMENT);
        KT_CHECK(strstr(kiln_last_error(), "outside profile") != NULL);
        kiln_dims five = {2, {5, IN}};
        KT_OK(kiln_context_set_input_shape(ctx, "x", &five));
        KT_OK(kiln_context_get_tensor_shape(ctx, "y", &got));
        KT_CHECK(got.d[0] == 5);
        KT_STATUS(kiln_context_set_profile(ctx, 3), KILN_NOT_FOUND);
        kiln_context_destroy(ctx);

        thread_job jobs[4];
        pthread_t threads[4];
        for (int i = 0; i < 4; i++) {
            jobs[i] = (thread_job){eng, 0};
            pthread_create(&threads[i], NULL, thread_main, &jobs[i]);
        }
        for (int i = 0; i < 4; i++) {
            pthread_join(threads[i], NULL);
            KT_CHECK(jobs[i].failures == 0);
        }
    }
    kiln_engine_destroy(eng);
    kiln_builder_destroy(b);
}

/* The whole flow (network, build, serialize, deserialize, run) with allocation N failing,
 * for every N until it succeeds: each failure is KILN_OUT_OF_MEMORY and nothing leaks. */
static kiln_status whole_flow(const kiln_allocator *allocator) {
    kiln_builder_options bo = {sizeof bo, allocator, NULL};
    kiln_runtime_options ro = {sizeof ro, allocator, NULL, 1};
    kiln_builder *b = NULL;
    kiln_network *net = NULL;
    kiln_engine *eng = NULL, *eng2 = NULL;
    kiln_runtime *rt = NULL;
    kiln_blob *blob = NULL;
    kiln_context *ctx = NULL;
    kiln_status st = kiln_builder_create(&bo, &b);
    if (st == KILN_OK) st = make_network(b, true, &net);
    if (st == KILN_OK) st = build(b, net, true, &eng);
    if (st == KILN_OK) st = kiln_engine_serialize(eng, &blob);
    if (st == KILN_OK) st = kiln_runtime_create(&ro, &rt);
    if (st == KILN_OK) st = kiln_runtime_deserialize_engine(rt, kiln_blob_data(blob), kiln_blob_size(blob), &eng2);
    if (st == KILN_OK) st = kiln_engine_create_context(eng2, &ctx);
    int mismatch = 0;
    if (st == KILN_OK) st = run_and_check(ctx, 4, true, false, &mismatch);
    if (st == KILN_OK && mismatch) st = KILN_INTERNAL_ERROR;
    kiln_context_destroy(ctx);
    kiln_engine_destroy(eng2);
    kiln_runtime_destroy(rt);
    kiln_blob_destroy(blob);
    kiln_engine_destroy(eng);
    kiln_network_destroy(net);
    kiln_builder_destroy(b);
    return st;
}

static void test_fault_injection(void) {
    fault_alloc fa = {.lock = PTHREAD_MUTEX_INITIALIZER};
    kiln_allocator a = {fault_malloc, fault_free, &fa};
    int bad = 0;
    long n;
    for (n = 1; n < 100000; n++) {
        fa.count = 0;
        fa.fail_at = n;
        fa.failed = false;
        kiln_status st = whole_flow(&a);
        if (fa.live != 0) {
            fprintf(stderr, "allocation %ld failing leaked %ld blocks\n", n, fa.live);
            bad++;
        }
        if (!fa.failed) {
            KT_CHECK(st == KILN_OK);
            break;
        }
        if (st != KILN_OUT_OF_MEMORY) {
            fprintf(stderr, "allocation %ld failing gave %s: %s\n", n, kiln_status_name(st), kiln_last_error());
            bad++;
        }
        if (bad > 10) break;
    }
    printf("fault injection: %ld allocations exercised\n", n);
    KT_CHECK(bad == 0);
    KT_CHECK(n > 20);
}

int main(void) {
    kt_seed();
    test_basics();
    test_network_errors();
    test_static_engine();
    test_dynamic_and_threads();
    test_fault_injection();
    return kt_summary("test_api");
}
