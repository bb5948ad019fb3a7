/* Device memory and streams for CUDA engines. The tool loads the CUDA runtime with dlopen on
 * first use, so it builds and runs without the CUDA toolkit and only needs it where a CUDA
 * engine is run. */
#include "cli.h"

#include <dlfcn.h>
#include <stddef.h>

typedef int (*malloc_fn)(void **, size_t);
typedef int (*free_fn)(void *);
typedef int (*memcpy_fn)(void *, const void *, size_t, int);
typedef int (*stream_create_fn)(void **);
typedef int (*stream_fn)(void *);
typedef const char *(*error_string_fn)(int);

static struct {
    int tried, ok;
    malloc_fn malloc;
    free_fn free;
    memcpy_fn memcpy;
    stream_create_fn stream_create;
    stream_fn stream_sync, stream_destroy;
    error_string_fn error_string;
} cuda;

enum { CUDA_MEMCPY_H2D = 1, CUDA_MEMCPY_D2H = 2 };

static int load(void) {
    if (cuda.tried) return cuda.ok;
    cuda.tried = 1;
    static const char *names[] = {"libcudart.so.13", "libcudart.so.12", "libcudart.so"};
    void *lib = NULL;
    for (size_t i = 0; i < sizeof names / sizeof names[0] && !lib; i++) lib = dlopen(names[i], RTLD_NOW | RTLD_LOCAL);
    if (!lib) {
        cli_error("this engine runs on CUDA but the CUDA runtime (libcudart.so) could not be loaded: %s", dlerror());
        return 0;
    }
    /* POSIX allows converting dlsym's void * to function pointers. */
    *(void **)&cuda.malloc = dlsym(lib, "cudaMalloc");
    *(void **)&cuda.free = dlsym(lib, "cudaFree");
    *(void **)&cuda.memcpy = dlsym(lib, "cudaMemcpy");
    *(void **)&cuda.stream_create = dlsym(lib, "cudaStreamCreate");
    *(void **)&cuda.stream_sync = dlsym(lib, "cudaStreamSynchronize");
    *(void **)&cuda.stream_destroy = dlsym(lib, "cudaStreamDestroy");
    *(void **)&cuda.error_string = dlsym(lib, "cudaGetErrorString");
    cuda.ok = cuda.malloc && cuda.free && cuda.memcpy && cuda.stream_create && cuda.stream_sync &&
              cuda.stream_destroy && cuda.error_string;
    if (!cuda.ok) cli_error("the CUDA runtime library lacks the functions the tool needs");
    return cuda.ok;
}

static int check(int err, const char *what) {
    if (err == 0) return CLI_OK;
    cli_error("%s: %s", what, cuda.error_string(err));
    return CLI_FAIL;
}

int cli_cuda_malloc(void **ptr, size_t size) {
    if (!load()) return CLI_FAIL;
    return check(cuda.malloc(ptr, size), "cudaMalloc");
}

void cli_cuda_free(void *ptr) {
    if (load()) cuda.free(ptr);
}

int cli_cuda_copy(void *dst, const void *src, size_t size, int to_device) {
    if (!load()) return CLI_FAIL;
    if (size == 0) return CLI_OK;
    return check(cuda.memcpy(dst, src, size, to_device ? CUDA_MEMCPY_H2D : CUDA_MEMCPY_D2H), "cudaMemcpy");
}

int cli_cuda_stream_create(void **stream) {
    if (!load()) return CLI_FAIL;
    return check(cuda.stream_create(stream), "cudaStreamCreate");
}

int cli_cuda_stream_sync(void *stream) {
    if (!load()) return CLI_FAIL;
    return check(cuda.stream_sync(stream), "cudaStreamSynchronize");
}

void cli_cuda_stream_destroy(void *stream) {
    if (stream && load()) cuda.stream_destroy(stream);
}
