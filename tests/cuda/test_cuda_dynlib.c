/* Run-time loading of cuDNN and cuBLASLt by the CUDA backend (src/cuda/dynlib.c). A CPU engine
 * built and run by a CUDA-enabled kiln must map no CUDA library; afterwards the loader, raced
 * from several threads, either resolves every function it lists (checked by calling the ones
 * that need no GPU) or fails cleanly with an error naming the library. Needs no GPU. */
#include "cuda/dynlib.h"
#include "kiln.h"
#include "kt.h"

#include <dlfcn.h>
#include <pthread.h>

/* Every CUDA library kiln has linked or loads, under each soname it may carry. */
static const char *const CUDA_LIBS[] = {
    "libcudnn.so.9",   "libcudnn.so",   "libcublasLt.so.13", "libcublasLt.so.12", "libcublasLt.so",
    "libcudart.so.13", "libcudart.so.12", "libcudart.so",    "libnvrtc.so.13",    "libcuda.so.1",
};

static int loaded(const char *name) {
    void *lib = dlopen(name, RTLD_NOW | RTLD_NOLOAD);
    if (lib) dlclose(lib);
    return lib != NULL;
}

enum { IN = 24 };

/* y = relu(x) + c on the CPU, against a reference; n rows drawn at random. */
static void run_cpu_engine(void) {
    int64_t n = kt_randi(1, 8);
    float c[IN], x[8 * IN], y[8 * IN];
    kt_fill(c, IN, -1, 1);
    kt_fill(x, n * IN, -2, 2);
    kiln_builder *b = NULL;
    kiln_network *net = NULL;
    kiln_builder_config *cfg = NULL;
    kiln_engine *e = NULL;
    kiln_context *ctx = NULL;
    kiln_tensor *xt = NULL;
    kiln_layer *cl = NULL, *act = NULL, *add = NULL;
    kiln_dims xd = {2, {n, IN}}, cd = {2, {1, IN}};
    KT_OK(kiln_builder_create(NULL, &b));
    if (b) KT_OK(kiln_network_create(b, &net));
    if (!net) goto done;
    KT_OK(kiln_network_add_input(net, "x", KILN_FLOAT32, &xd, &xt));
    KT_OK(kiln_network_add_constant(net, &cd, (kiln_weights){KILN_FLOAT32, c, IN}, &cl));
    if (xt) KT_OK(kiln_network_add_activation(net, xt, KILN_ACT_RELU, 0, 0, &act));
    if (act && cl)
        KT_OK(kiln_network_add_elementwise(net, kiln_layer_output(act, 0), kiln_layer_output(cl, 0), KILN_EW_ADD, &add));
    if (!add) goto done;
    kiln_tensor *yt = kiln_layer_output(add, 0);
    KT_OK(kiln_tensor_set_name(yt, "y"));
    KT_OK(kiln_network_mark_output(net, yt));
    KT_OK(kiln_builder_config_create(b, &cfg));
    if (cfg) KT_OK(kiln_builder_config_set_device(cfg, KILN_DEVICE_CPU));
    if (cfg) KT_OK(kiln_builder_build_engine(b, net, cfg, &e));
    if (e) KT_OK(kiln_engine_create_context(e, &ctx));
    if (!ctx) goto done;
    KT_OK(kiln_context_set_tensor_address(ctx, "x", x, sizeof(float) * (size_t)(n * IN)));
    KT_OK(kiln_context_set_tensor_address(ctx, "y", y, sizeof(float) * (size_t)(n * IN)));
    KT_OK(kiln_context_execute(ctx));
    int bad = 0;
    for (int64_t i = 0; i < n * IN; i++) bad += y[i] != (x[i] > 0 ? x[i] : 0) + c[i % IN];
    KT_CHECK(bad == 0);
done:
    kiln_context_destroy(ctx);
    kiln_engine_destroy(e);
    kiln_builder_config_destroy(cfg);
    kiln_network_destroy(net);
    kiln_builder_destroy(b);
}

typedef struct {
    kiln_status st;
    char msg[1024];
} load_result;

static void *load_thread(void *arg) {
    load_result *r = arg;
    r->st = cu_libs_load();
    snprintf(r->msg, sizeof r->msg, "%s", r->st == KILN_OK ? "" : kiln_last_error());
    return NULL;
}

#define KT_DNN_LOADED(f) KT_CHECK(cu_cudnn.f != NULL);
#define KT_LT_LOADED(f) KT_CHECK(cu_cublaslt.f != NULL);
#define KT_DNN_CLEARED(f) KT_CHECK(cu_cudnn.f == NULL);
#define KT_LT_CLEARED(f) KT_CHECK(cu_cublaslt.f == NULL);

int main(void) {
    kt_seed();
    run_cpu_engine();
    for (size_t i = 0; i < sizeof CUDA_LIBS / sizeof CUDA_LIBS[0]; i++)
        if (loaded(CUDA_LIBS[i])) {
            fprintf(stderr, "a CPU engine loaded %s\n", CUDA_LIBS[i]);
            KT_CHECK(!"no CUDA library is loaded by CPU work");
        }

    /* The first load raced from several threads: one outcome for all. */
    load_result r[4];
    pthread_t th[4];
    for (int i = 0; i < 4; i++) KT_CHECK(pthread_create(&th[i], NULL, load_thread, &r[i]) == 0);
    for (int i = 0; i < 4; i++) pthread_join(th[i], NULL);
    for (int i = 1; i < 4; i++) KT_CHECK(r[i].st == r[0].st && strcmp(r[i].msg, r[0].msg) == 0);
    KT_CHECK(cu_libs_load() == r[0].st);

    if (r[0].st == KILN_OK) {
        CU_CUDNN_FUNCTIONS(KT_DNN_LOADED)
        CU_CUBLASLT_FUNCTIONS(KT_LT_LOADED)
        if (cu_cudnn.cudnnGetVersion) KT_CHECK(cu_cudnn.cudnnGetVersion() / 10000 == 9);
        if (cu_cudnn.cudnnGetErrorString)
            KT_CHECK(strstr(cu_cudnn.cudnnGetErrorString(CUDNN_STATUS_BAD_PARAM), "BAD_PARAM") != NULL);
        if (cu_cublaslt.cublasLtGetStatusString) {
            const char *ok = cu_cublaslt.cublasLtGetStatusString(CUBLAS_STATUS_SUCCESS);
            const char *bad = cu_cublaslt.cublasLtGetStatusString(CUBLAS_STATUS_NOT_INITIALIZED);
            KT_CHECK(ok && bad && bad[0] && strcmp(ok, bad) != 0);
        }
        KT_CHECK(loaded("libcudnn.so.9") || loaded("libcudnn.so"));
        printf("cuDNN %zu and cuBLASLt loaded\n", cu_cudnn.cudnnGetVersion ? cu_cudnn.cudnnGetVersion() : 0);
    } else {
        printf("not loadable here: %s\n", r[0].msg);
        KT_CHECK(r[0].st == KILN_DEVICE_ERROR);
        KT_CHECK(strstr(r[0].msg, "cuDNN") != NULL || strstr(r[0].msg, "cuBLASLt") != NULL);
        CU_CUDNN_FUNCTIONS(KT_DNN_CLEARED)
        CU_CUBLASLT_FUNCTIONS(KT_LT_CLEARED)
    }
    return kt_summary("test_cuda_dynlib");
}
