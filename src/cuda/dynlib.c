/* Loading cuDNN and cuBLASLt on first CUDA use (dynlib.h). */
#include "dynlib.h"

#include "core/core.h"

#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

cu_cudnn_api cu_cudnn;
cu_cublaslt_api cu_cublaslt;

static pthread_once_t load_once = PTHREAD_ONCE_INIT;
static char load_error[768]; /* empty when both libraries loaded */

/* Opens the first of `names` that loads; on failure records what was tried and why. */
static void *open_first(const char *what, const char *const *names, size_t n) {
    char tried[128] = "", reason[512] = "";
    for (size_t i = 0; i < n; i++) {
        void *lib = dlopen(names[i], RTLD_NOW | RTLD_LOCAL);
        if (lib) return lib;
        /* The first name's reason is the telling one (the versioned soname this kiln expects);
         * copied now because the next dlopen overwrites it. */
        const char *e = dlerror();
        if (i == 0 && e) snprintf(reason, sizeof reason, "%s", e);
        size_t used = strlen(tried);
        snprintf(tried + used, sizeof tried - used, "%s%s", i ? ", " : "", names[i]);
    }
    snprintf(load_error, sizeof load_error,
             "the CUDA backend needs %s, which could not be loaded (tried %s): %s; install it or add its directory "
             "to LD_LIBRARY_PATH",
             what, tried, reason);
    return NULL;
}

/* Looks one symbol up; on failure records which library lacks it. */
static bool find(void *lib, const char *lib_what, const char *name, void **slot) {
    dlerror();
    *slot = dlsym(lib, name);
    if (*slot) return true;
    const char *e = dlerror();
    snprintf(load_error, sizeof load_error, "the loaded %s has no %s (%s): it is too old or not the expected library",
             lib_what, name, e ? e : "null symbol");
    return false;
}

/* POSIX allows converting dlsym's void * to function pointers through the object pointer. */
#define CU_FIND_CUDNN(f) ok = ok && find(dnn, "cuDNN", #f, (void **)&cu_cudnn.f);
#define CU_FIND_CUBLASLT(f) ok = ok && find(lt, "cuBLASLt", #f, (void **)&cu_cublaslt.f);

static void load(void) {
    static const char *const DNN_NAMES[] = {"libcudnn.so.9", "libcudnn.so"};
    static const char *const LT_NAMES[] = {"libcublasLt.so.13", "libcublasLt.so.12", "libcublasLt.so"};
    void *dnn = open_first("cuDNN 9", DNN_NAMES, KILN__ARRAY_LEN(DNN_NAMES));
    void *lt = dnn ? open_first("cuBLASLt", LT_NAMES, KILN__ARRAY_LEN(LT_NAMES)) : NULL;
    bool ok = dnn && lt;
    CU_CUDNN_FUNCTIONS(CU_FIND_CUDNN)
    CU_CUBLASLT_FUNCTIONS(CU_FIND_CUBLASLT)
    if (ok) return;
    /* Unusable: drop what was mapped and leave no half-filled table behind. */
    memset(&cu_cudnn, 0, sizeof cu_cudnn);
    memset(&cu_cublaslt, 0, sizeof cu_cublaslt);
    if (lt) dlclose(lt);
    if (dnn) dlclose(dnn);
}

kiln_status cu_libs_load(void) {
    if (pthread_once(&load_once, load) != 0)
        return kiln__error(KILN_DEVICE_ERROR, "the CUDA backend could not load cuDNN and cuBLASLt");
    if (load_error[0]) return kiln__error(KILN_DEVICE_ERROR, "%s", load_error);
    return KILN_OK;
}
